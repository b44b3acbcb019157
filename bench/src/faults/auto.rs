//! `tandem-bench faults --auto`: the fault suite with the servers deciding failover (`failover yes`,
//! docs/failover.md). Three members on loopback (a founder and two that joined it), the register
//! workload of history.rs, and a seeded schedule: kill -9 of the primary (restarted as itself once
//! another serves), SIGSTOP of the primary past the failover timeout (a zombie, resumed), brief stops of
//! the primary, stops and restarts of a replica, and the primary's control plane cut one way or both
//! past the failover timeout (DEBUG GROUP-CUT: its group messages dropped in, out or both; the data
//! links stay up), and, where iptables can be used, the primary or a replica cut off from the other
//! nodes both ways (each node listens and connects from its own loopback address, `bind-source-addr`,
//! and a firewall rule drops everything from or to it; the harness's clients still reach it). Nobody plays the operator: clients find the node that
//! says it serves and go elsewhere when it refuses them.
//!
//! What is checked, besides history.rs's lost and stale counts: **two writers**: a write one node
//! acknowledged that began after another node, in a later epoch, had already acknowledged one (the old
//! primary still accepting writes once the new one did). Epochs are the group's own (INFO group_epoch,
//! read when a client connects), so the checker's per-epoch start states are not known and its flip
//! count is not computed in this mode.

use super::history::{self, Event, Op, Outcome};
use super::{key_name, parse_read, value_of, FaultArgs, FaultReport};
use crate::resync::client::{Client, Value};
use crate::resync::server::{wait_until, Server};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The group's timers in this suite (short, so a run sees many failovers).
const FAILOVER_MS: u64 = 1000;
const LEASE_MS: u64 = 500;

struct Shared {
    ports: Vec<u16>,
    stop: AtomicBool,
    events: Mutex<Vec<(Event, u16)>>,
    start: Instant,
    acked: AtomicU64,
}

impl Shared {
    fn now_us(&self) -> u64 {
        self.start.elapsed().as_micros() as u64
    }

    /// Records an operation begun at `start_us` and ending now, served by `port` in `epoch`.
    fn record(&self, op: Op, start_us: u64, epoch: u64, port: u16) {
        let e = Event {
            op,
            start_us,
            end_us: self.now_us(),
            epoch,
        };
        self.events.lock().expect("events").push((e, port));
    }
}

fn field(port: u16, name: &str) -> Option<String> {
    let mut c = Client::connect(port).ok()?;
    c.set_timeout(Duration::from_millis(500));
    c.info_field("replication", name).ok()
}

/// A connection to a node that says it serves, with the group epoch it serves in.
fn find_serving(sh: &Shared) -> Option<(u64, u16, Client)> {
    for &p in &sh.ports {
        if field(p, "group_state").as_deref() != Some("serving") {
            continue;
        }
        let epoch = field(p, "group_epoch")?.parse().ok()?;
        let mut c = Client::connect(p).ok()?;
        c.set_timeout(Duration::from_secs(2));
        return Some((epoch, p, c));
    }
    None
}

struct Conn {
    at: Option<(u64, u16, Client)>,
}

impl Conn {
    fn get(&mut self, sh: &Shared) -> Option<(u64, u16, &mut Client)> {
        if self.at.is_none() {
            self.at = find_serving(sh);
        }
        self.at.as_mut().map(|(e, p, c)| (*e, *p, c))
    }
}

fn refused(e: &str) -> bool {
    [
        "TRYAGAIN",
        "READONLY",
        "NOREPLICAS",
        "LOADING",
        "MASTERDOWN",
    ]
    .iter()
    .any(|p| e.starts_with(p))
}

fn writer(sh: Arc<Shared>, id: usize, args: FaultArgs) {
    let mine: Vec<usize> = (0..args.keys).filter(|k| k % args.writers == id).collect();
    let mut next: Vec<u64> = vec![0; args.keys];
    let mut conn = Conn { at: None };
    let mut rng = SmallRng::seed_from_u64(args.seed ^ ((id as u64 + 1) * 0x9e37_79b9));
    while !sh.stop.load(Ordering::Relaxed) {
        let key = mine[rng.random_range(0..mine.len())];
        let Some((epoch, port, c)) = conn.get(&sh) else {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        };
        next[key] += 1;
        let index = next[key];
        let start = sh.now_us();
        let reply = c.cmd(&["SET", &key_name(key), &value_of(key, index)]);
        let outcome = match &reply {
            Ok(Value::Simple(s)) if s == "OK" => Outcome::Ok,
            Ok(Value::Error(e)) if refused(e) => Outcome::Failed,
            _ => Outcome::Unknown,
        };
        if outcome != Outcome::Ok {
            // Refused or cut off: look for whoever serves now.
            conn.at = None;
        }
        let op = Op::Write {
            key,
            index,
            outcome,
        };
        sh.record(op, start, epoch, port);
        if outcome == Outcome::Ok {
            sh.acked.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn reader(sh: Arc<Shared>, id: usize, args: FaultArgs) {
    let mut conn = Conn { at: None };
    let mut rng = SmallRng::seed_from_u64(args.seed ^ ((id as u64 + 101) * 0x85eb_ca6b));
    while !sh.stop.load(Ordering::Relaxed) {
        let key = rng.random_range(0..args.keys);
        let Some((epoch, port, c)) = conn.get(&sh) else {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        };
        let start = sh.now_us();
        match c.cmd(&["GET", &key_name(key)]) {
            Ok(v @ Value::Bulk(_)) => {
                let op = Op::Read {
                    key,
                    value: parse_read(key, &v),
                };
                sh.record(op, start, epoch, port);
            }
            _ => conn.at = None,
        }
    }
}

/// Acknowledged writes of an older epoch that began after a later epoch had acknowledged one.
fn two_writers(events: &[(Event, u16)]) -> (u64, Vec<String>) {
    // The earliest acknowledgement of each epoch.
    let mut first_ack: HashMap<u64, (u64, u16)> = HashMap::new();
    for (e, port) in events {
        if matches!(
            e.op,
            Op::Write {
                outcome: Outcome::Ok,
                ..
            }
        ) {
            let f = first_ack.entry(e.epoch).or_insert((e.end_us, *port));
            if e.end_us < f.0 {
                *f = (e.end_us, *port);
            }
        }
    }
    let mut n = 0;
    let mut examples = Vec::new();
    for (e, port) in events {
        if !matches!(
            e.op,
            Op::Write {
                outcome: Outcome::Ok,
                ..
            }
        ) {
            continue;
        }
        let later = first_ack
            .iter()
            .filter(|(&ep, &(at, _))| ep > e.epoch && at < e.start_us)
            .min_by_key(|(&ep, _)| ep);
        if let Some((ep, (at, p))) = later {
            n += 1;
            if examples.len() < 10 {
                examples.push(format!(
                    "two writers: port {port} (epoch {}) acknowledged a write begun at {} us, after port {p} (epoch {ep}) acknowledged one at {at} us",
                    e.epoch, e.start_us
                ));
            }
        }
    }
    (n, examples)
}

/// Node `i`'s own loopback address: its listener (besides 127.0.0.1, where the harness's clients come
/// in) and the source of its outgoing connections, so a firewall rule can cut it off from the others.
fn node_ip(i: usize) -> String {
    format!("127.0.0.{}", 11 + i)
}

fn start_node(
    args: &FaultArgs,
    dir: &std::path::Path,
    i: usize,
    seed: Option<u16>,
) -> Result<Server, String> {
    let ip = node_ip(i);
    let mut extra: Vec<String> = [
        "--bind",
        &ip,
        "127.0.0.1",
        "--bind-source-addr",
        &ip,
        "--failover",
        "yes",
        "--failover-timeout",
        &FAILOVER_MS.to_string(),
        "--failover-lease",
        &LEASE_MS.to_string(),
        "--repl-timeout",
        "5",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if args.durability {
        extra.extend(["--durability".into(), "yes".into()]);
    }
    if let Some(p) = seed {
        extra.extend(["--replicaof".into(), node_ip(0), p.to_string()]);
    }
    Server::start_with(
        &args.server_bin,
        dir,
        &format!("node{i}"),
        args.shards,
        None,
        &extra,
    )
}

/// Cuts node `i` off from the other nodes both ways (every packet from or to its own address dropped)
/// while it lives; the harness's clients, on 127.0.0.1, still reach it. None where iptables cannot be
/// used (not installed, no privilege).
struct Cut {
    ip: String,
}

impl Cut {
    fn rules(ip: &str) -> [[String; 6]; 2] {
        let r = |dir: &str| {
            [
                "INPUT".to_string(),
                dir.to_string(),
                ip.to_string(),
                "-j".to_string(),
                "DROP".to_string(),
                "-w".to_string(),
            ]
        };
        [r("-s"), r("-d")]
    }

    fn start(i: usize) -> Option<Cut> {
        let ip = node_ip(i);
        for rule in Self::rules(&ip) {
            let ok = std::process::Command::new("iptables")
                .arg("-I")
                .args(&rule)
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                drop(Cut { ip });
                return None;
            }
        }
        Some(Cut { ip })
    }

    fn available() -> bool {
        std::process::Command::new("iptables")
            .args(["-w", "-L", "INPUT", "-n"])
            .output()
            .is_ok_and(|o| o.status.success())
    }
}

impl Drop for Cut {
    fn drop(&mut self) {
        for rule in Self::rules(&self.ip) {
            let _ = std::process::Command::new("iptables")
                .arg("-D")
                .args(&rule)
                .output();
        }
    }
}

fn serving(nodes: &[Option<Server>]) -> Option<usize> {
    nodes.iter().position(|n| {
        n.as_ref()
            .is_some_and(|s| field(s.port, "group_state").as_deref() == Some("serving"))
    })
}

pub fn run(args: FaultArgs) -> Result<FaultReport, String> {
    let dir = args.out_dir.join(format!(
        "seed-{}-auto-{}",
        args.seed,
        if args.durability {
            "durability"
        } else {
            "async"
        }
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let n0 = start_node(&args, &dir, 0, None)?;
    wait_until(Duration::from_secs(30), || {
        (field(n0.port, "group_state").as_deref() == Some("serving")).then_some(())
    })
    .ok_or("the founder never served")?;
    if args.filler > 0 {
        let mut c = n0.client()?;
        c.cmd(&[
            "DEBUG",
            "POPULATE",
            &args.filler.to_string(),
            "filler",
            "100",
        ])
        .map_err(|e| e.to_string())?;
    }
    let seed_port = n0.port;
    let mut nodes: Vec<Option<Server>> = vec![Some(n0)];
    for i in 1..3 {
        nodes.push(Some(start_node(&args, &dir, i, Some(seed_port))?));
    }
    let ports: Vec<u16> = nodes.iter().flatten().map(|s| s.port).collect();
    wait_until(Duration::from_secs(60), || {
        ports[1..]
            .iter()
            .all(|&p| field(p, "eligible").as_deref() == Some("yes"))
            .then_some(())
    })
    .ok_or("the replicas were never granted at the start")?;
    let sh = Arc::new(Shared {
        ports: ports.clone(),
        stop: AtomicBool::new(false),
        events: Mutex::new(Vec::new()),
        start: Instant::now(),
        acked: AtomicU64::new(0),
    });
    let threads = super::spawn_workload(&sh, &args, writer, reader);
    let mut rng = SmallRng::seed_from_u64(args.seed);
    let mut faults = Vec::new();
    // Firewall cuts where iptables works (root, iptables installed); the rest of the schedule anyway.
    let firewall = Cut::available();
    if !firewall {
        faults.push("(no iptables here: no firewall cuts in this run)".to_string());
    }
    let end = Instant::now() + Duration::from_secs(args.seconds);
    while Instant::now() < end {
        let before = sh.acked.load(Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(rng.random_range(500..1500)));
        wait_until(Duration::from_secs(60), || {
            (sh.acked.load(Ordering::Relaxed) > before + 20).then_some(())
        })
        .ok_or_else(|| format!("no progress after the faults {faults:?}"))?;
        let Some(p) = serving(&nodes) else {
            continue;
        };
        let others: Vec<usize> = (0..3).filter(|&i| i != p).collect();
        let r = others[rng.random_range(0..2)];
        let line = match rng.random_range(0..if firewall { 11 } else { 9 }) {
            0 | 1 => {
                let mut s = nodes[p].take().expect("serving");
                s.kill();
                let new = wait_until(Duration::from_secs(60), || serving(&nodes))
                    .ok_or_else(|| format!("nobody took over from node{p}"))?;
                s.restart()?;
                s.wait_ready(Duration::from_secs(30))?;
                nodes[p] = Some(s);
                format!("kill -9 of primary node{p}; node{new} took over; node{p} restarted")
            }
            2 => {
                let stop = Duration::from_millis(FAILOVER_MS + rng.random_range(1000..3000));
                super::stop_for(nodes[p].as_ref().expect("serving"), stop);
                format!("SIGSTOP primary node{p} for {stop:?} (a zombie), resumed")
            }
            3 => {
                let short = Duration::from_millis(rng.random_range(50..300));
                super::stop_for(nodes[p].as_ref().expect("serving"), short);
                format!("SIGSTOP primary node{p} for {short:?}")
            }
            4 => {
                let pause = Duration::from_millis(rng.random_range(300..2000));
                super::stop_for(nodes[r].as_ref().expect("running"), pause);
                format!("SIGSTOP replica node{r} for {pause:?}")
            }
            6..=8 => {
                // The primary's control plane cut: it cannot hear the group, cannot speak to it, or
                // neither (DEBUG GROUP-CUT; its data links stay up), past the failover timeout.
                let how = ["in", "out", "both"][rng.random_range(0..3)];
                let cut = Duration::from_millis(FAILOVER_MS + rng.random_range(500..2500));
                let port = nodes[p].as_ref().expect("serving").port;
                let debug = |mode: &str| {
                    Client::connect(port)
                        .and_then(|mut c| c.cmd(&["DEBUG", "GROUP-CUT", mode]))
                        .map_err(|e| e.to_string())
                };
                debug(how)?;
                std::thread::sleep(cut);
                debug("none")?;
                format!("cut primary node{p}'s group messages ({how}) for {cut:?}")
            }
            9 | 10 => {
                // A node cut off both ways by the firewall, data links and group messages alike:
                // the primary (past the failover timeout) or a replica.
                let (who, what) = if rng.random_range(0..2) == 0 {
                    (p, "primary")
                } else {
                    (r, "replica")
                };
                let cut = Duration::from_millis(FAILOVER_MS + rng.random_range(500..2500));
                let guard = Cut::start(who).ok_or("iptables refused a rule")?;
                std::thread::sleep(cut);
                drop(guard);
                format!("cut {what} node{who} off both ways (firewall) for {cut:?}")
            }
            _ => {
                let s = nodes[r].as_mut().expect("running");
                s.kill();
                s.restart()?;
                s.wait_ready(Duration::from_secs(30))?;
                format!("kill -9 and restart of replica node{r}")
            }
        };
        faults.push(format!("{:.1}s {line}", sh.start.elapsed().as_secs_f64()));
    }
    sh.stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    // Settle: one node serves and the others hold everything it logged.
    let settled = wait_until(Duration::from_secs(120), || {
        let p = serving(&nodes)?;
        let want = field(ports[p], "master_repl_offset")?;
        (0..3)
            .filter(|&i| i != p)
            .all(|i| {
                field(ports[i], "master_link_status").as_deref() == Some("up")
                    && field(ports[i], "slave_repl_offset").as_deref() == Some(want.as_str())
            })
            .then_some(p)
    });
    let p = settled
        .or_else(|| serving(&nodes))
        .ok_or("nobody serves at the end")?;
    // Every promotion the group made (kills, stops and cuts alike): its epoch counts them.
    let epoch: u64 = field(ports[p], "group_epoch")
        .and_then(|e| e.parse().ok())
        .unwrap_or(1);
    let failovers = epoch.saturating_sub(1);
    let mut c = Client::connect(ports[p]).map_err(|e| e.to_string())?;
    let final_index: Vec<u64> = (0..args.keys)
        .map(|key| {
            let v = c.cmd(&["GET", &key_name(key)]).map_err(|e| e.to_string())?;
            Ok(parse_read(key, &v).unwrap_or(u64::MAX))
        })
        .collect::<Result<_, String>>()?;
    let digests: Vec<String> = ports
        .iter()
        .map(|&port| {
            Client::connect(port)
                .and_then(|mut c| c.cmd(&["DEBUG", "DIGEST"]))
                .map(|v| v.text())
                .unwrap_or_default()
        })
        .collect();
    let digests_equal = settled.is_some() && digests.iter().all(|d| d == &digests[0]);
    let tagged = std::mem::take(&mut *sh.events.lock().expect("events"));
    let (dual, dual_examples) = two_writers(&tagged);
    let events: Vec<Event> = tagged.into_iter().map(|(e, _)| e).collect();
    let mut verdict = history::check_without_starts(&events, &final_index, !args.durability);
    verdict.two_writers = dual;
    verdict.examples.extend(dual_examples);
    let report = FaultReport {
        seed: args.seed,
        wait_all: false,
        durability: args.durability,
        faults,
        failovers,
        verdict,
        digests_equal,
    };
    Ok(report.saved_in(&dir))
}
