//! `tandem-bench faults`: the project's own fault suite. Three nodes of any Redis-compatible binary on
//! loopback (a primary and two replicas, each replica's link through a relay that can cut, hold or delay
//! it), a register workload with a history (history.rs), and a seeded schedule of faults: kill -9 of the
//! primary followed by promotion of the most advanced replica (the harness plays the operator), SIGSTOP
//! of a replica or briefly of the primary, links cut, held or delayed, replica restarts. At the end every node
//! follows the last primary, the history is checked and the digests compared.
//!
//! `--wait-all`: a write counts as acknowledged only when `WAIT 2 <ms>` reports both replicas; then no
//! acknowledged write may be lost and no read may be stale.
//!
//! `--durability`: every node runs in durability mode (durability-replicas 1): a write is acknowledged by
//! its own reply, refused ones count as failed, timed-out ones as unknown; the operator (the harness)
//! fails over only to a replica that both the primary and the replica itself report eligible, checked
//! just before the primary is killed. Then no acknowledged write may be lost and no read may be stale.

pub mod auto;
pub mod history;

use crate::resync::client::{Client, Value};
use crate::resync::proxy::Proxy;
use crate::resync::server::{wait_until, Server};
use history::{Event, Op, Outcome, Verdict};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug, Clone, serde::Serialize)]
pub struct FaultArgs {
    #[arg(long, default_value = "target/release/tandem-server")]
    pub server_bin: PathBuf,
    /// Seeds the fault schedule and the workload's key choices: a run replays its schedule.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// How long faults are injected.
    #[arg(long, default_value_t = 60)]
    pub seconds: u64,
    /// Acknowledge a write only once WAIT counted both replicas.
    #[arg(long)]
    pub wait_all: bool,
    /// Run every node in durability mode and promote only eligible replicas.
    #[arg(long, conflicts_with = "wait_all")]
    pub durability: bool,
    /// The servers decide failover (failover yes; faults/auto.rs) instead of the harness.
    #[arg(long, conflicts_with = "wait_all")]
    pub auto: bool,
    /// Every node runs with its WAL (appendonly yes, appendfsync always), and the faults include a full
    /// outage: every node killed at once, then restarted from its WAL (docs/persistence.md).
    #[arg(long, conflicts_with = "auto")]
    pub wal: bool,
    #[arg(long, default_value_t = 2)]
    pub shards: usize,
    #[arg(long, default_value_t = 50)]
    pub keys: usize,
    #[arg(long, default_value_t = 4)]
    pub writers: usize,
    #[arg(long, default_value_t = 2)]
    pub readers: usize,
    /// Keys of 100 bytes loaded before the run (DEBUG POPULATE), so full syncs take a while and a
    /// failover can meet a replica still loading.
    #[arg(long, default_value_t = 200_000)]
    pub filler: u64,
    #[arg(long, default_value = "target/perf/faults")]
    pub out_dir: PathBuf,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct FaultReport {
    pub seed: u64,
    pub wait_all: bool,
    pub durability: bool,
    pub faults: Vec<String>,
    pub failovers: u64,
    pub verdict: Verdict,
    pub digests_equal: bool,
}

/// Who serves now: the epoch (bumped by every promotion) and the primary's port.
#[derive(Clone, Copy)]
struct Serving {
    epoch: u64,
    port: u16,
}

struct Shared {
    serving: Mutex<Serving>,
    /// Each epoch's start state, read from the new primary before clients may reach it.
    starts: Mutex<HashMap<u64, Vec<u64>>>,
    stop: AtomicBool,
    events: Mutex<Vec<Event>>,
    start: Instant,
    /// Writes ever acknowledged (progress the faults wait for).
    acked: AtomicU64,
}

impl Shared {
    fn now_us(&self) -> u64 {
        self.start.elapsed().as_micros() as u64
    }

    fn serving(&self) -> Serving {
        *self.serving.lock().expect("serving")
    }
}

pub(crate) fn value_of(key: usize, index: u64) -> String {
    format!("k{key}:{index}")
}

/// The write index a read returned: Some(0) for nil, None for something never written to `key`.
pub(crate) fn parse_read(key: usize, v: &Value) -> Option<u64> {
    match v {
        Value::Bulk(None) => Some(0),
        Value::Bulk(Some(b)) => {
            let s = std::str::from_utf8(b).ok()?;
            let (k, i) = s.strip_prefix('k')?.split_once(':')?;
            (k.parse::<usize>().ok()? == key).then_some(())?;
            i.parse().ok()
        }
        _ => None,
    }
}

pub(crate) fn key_name(key: usize) -> String {
    format!("reg:{key}")
}

/// A client's connection to the current primary, renewed when the epoch changes or the link breaks.
struct Conn {
    at: Option<(u64, Client)>,
}

impl Conn {
    fn get(&mut self, sh: &Shared) -> Option<(u64, &mut Client)> {
        let s = sh.serving();
        if self.at.as_ref().is_none_or(|(e, _)| *e != s.epoch) {
            self.at = Client::connect(s.port).ok().map(|mut c| {
                c.set_timeout(Duration::from_secs(2));
                (s.epoch, c)
            });
        }
        self.at.as_mut().map(|(e, c)| (*e, c))
    }
}

fn writer(sh: Arc<Shared>, id: usize, args: FaultArgs) {
    let mine: Vec<usize> = (0..args.keys).filter(|k| k % args.writers == id).collect();
    let mut next: Vec<u64> = vec![0; args.keys];
    let mut conn = Conn { at: None };
    let mut rng = SmallRng::seed_from_u64(args.seed ^ ((id as u64 + 1) * 0x9e37_79b9));
    while !sh.stop.load(Ordering::Relaxed) {
        let key = mine[rng.random_range(0..mine.len())];
        let Some((epoch, c)) = conn.get(&sh) else {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        };
        next[key] += 1;
        let index = next[key];
        let start = sh.now_us();
        let reply = c.cmd(&["SET", &key_name(key), &value_of(key, index)]);
        let mut outcome = match &reply {
            Ok(Value::Simple(s)) if s == "OK" => Outcome::Ok,
            // Durability mode: applied, not acknowledged in time; it may still commit.
            Ok(Value::Error(e)) if e.starts_with("TIMEOUT") => Outcome::Unknown,
            Ok(Value::Error(_)) => Outcome::Failed,
            _ => Outcome::Unknown,
        };
        if outcome == Outcome::Ok && args.wait_all {
            outcome = match c.cmd(&["WAIT", "2", "1000"]) {
                Ok(Value::Int(n)) if n >= 2 => Outcome::Ok,
                _ => Outcome::Unknown,
            };
        }
        if reply.is_err() {
            conn.at = None;
        }
        let end = sh.now_us();
        if outcome == Outcome::Ok {
            sh.acked.fetch_add(1, Ordering::Relaxed);
        }
        sh.events.lock().expect("events").push(Event {
            op: Op::Write {
                key,
                index,
                outcome,
            },
            start_us: start,
            end_us: end,
            epoch,
        });
    }
}

fn reader(sh: Arc<Shared>, id: usize, args: FaultArgs) {
    let mut conn = Conn { at: None };
    let mut rng = SmallRng::seed_from_u64(args.seed ^ ((id as u64 + 101) * 0x85eb_ca6b));
    while !sh.stop.load(Ordering::Relaxed) {
        let key = rng.random_range(0..args.keys);
        let Some((epoch, c)) = conn.get(&sh) else {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        };
        let start = sh.now_us();
        match c.cmd(&["GET", &key_name(key)]) {
            Ok(v @ Value::Bulk(_)) => {
                let end = sh.now_us();
                sh.events.lock().expect("events").push(Event {
                    op: Op::Read {
                        key,
                        value: parse_read(key, &v),
                    },
                    start_us: start,
                    end_us: end,
                    epoch,
                });
            }
            Ok(_) => {}
            Err(_) => conn.at = None,
        }
    }
}

/// The three nodes and the relays in front of the primary.
struct Cluster {
    nodes: Vec<Server>,
    primary: usize,
    relays: Vec<Option<Proxy>>,
    durability: bool,
}

/// The settings every node runs with (set again after a restart).
fn configure(s: &Server, durability: bool) -> Result<(), String> {
    command(s, &["CONFIG", "SET", "repl-timeout", "5"])?;
    if durability {
        command(s, &["CONFIG", "SET", "durability", "yes"])?;
    }
    Ok(())
}

/// `args` on `server`, retried on a fresh connection (a busy machine may reset one); the error names the
/// node and the command.
fn command(server: &Server, args: &[&str]) -> Result<Value, String> {
    let mut last = String::new();
    for _ in 0..3 {
        match server.client().and_then(|mut c| ok(c.cmd(args))) {
            Ok(v) => return Ok(v),
            Err(e) => last = e,
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!(
        "{} on port {}: {last}",
        args.join(" "),
        server.port
    ))
}

fn ok(v: std::io::Result<Value>) -> Result<Value, String> {
    match v.map_err(|e| e.to_string())? {
        Value::Error(e) => Err(e),
        v => Ok(v),
    }
}

impl Cluster {
    fn info(&self, i: usize, field: &str) -> Option<String> {
        let mut c = self.nodes[i].client().ok()?;
        c.set_timeout(Duration::from_secs(2));
        c.info_field("replication", field).ok()
    }

    /// Points replica `i` at the primary through a fresh relay.
    fn follow(&mut self, i: usize) -> Result<(), String> {
        let relay = Proxy::start(self.nodes[self.primary].port).map_err(|e| e.to_string())?;
        command(
            &self.nodes[i],
            &["REPLICAOF", "127.0.0.1", &relay.port.to_string()],
        )?;
        self.relays[i] = Some(relay);
        Ok(())
    }

    fn replicas(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| i != self.primary)
            .collect()
    }

    /// A replica that could take over: link up and not loading.
    fn synced(&self, i: usize) -> bool {
        self.info(i, "master_link_status").as_deref() == Some("up")
            && self.info(i, "master_sync_in_progress").as_deref() == Some("0")
    }

    fn offset(&self, i: usize) -> i64 {
        self.info(i, "slave_repl_offset")
            .and_then(|v| v.parse().ok())
            .unwrap_or(-1)
    }

    fn restart(&mut self, i: usize) -> Result<(), String> {
        self.nodes[i].kill();
        self.nodes[i].restart()?;
        self.nodes[i].wait_ready(Duration::from_secs(30))?;
        configure(&self.nodes[i], self.durability)?;
        self.follow(i)
    }

    /// A full outage: every node killed at once, then the primary restarted from its WAL (on its port,
    /// where the clients come back) and the replicas made to follow it again.
    fn outage(&mut self) -> Result<(), String> {
        for n in &mut self.nodes {
            n.kill();
        }
        let p = self.primary;
        self.nodes[p].restart()?;
        self.nodes[p].wait_ready(Duration::from_secs(60))?;
        configure(&self.nodes[p], self.durability)?;
        for i in self.replicas() {
            self.nodes[i].restart()?;
            self.nodes[i].wait_ready(Duration::from_secs(60))?;
            configure(&self.nodes[i], self.durability)?;
            self.follow(i)?;
        }
        Ok(())
    }

    /// Durability mode: replica `i` is eligible as the primary and the replica both report it.
    fn eligible(&self, i: usize) -> bool {
        let node = self.nodes[i]
            .client()
            .and_then(|mut c| {
                c.info_field("server", "tandem_node_id")
                    .map_err(|e| e.to_string())
            })
            .unwrap_or_default();
        let on_primary = (0..self.nodes.len()).any(|k| {
            self.info(self.primary, &format!("slave{k}"))
                .is_some_and(|l| l.contains(&format!("node_id={node},eligible=yes")))
        });
        on_primary && self.info(i, "eligible").as_deref() == Some("yes")
    }

    /// Every node's replication section, for a failure to say where the cluster stood.
    fn describe(&self) -> String {
        (0..self.nodes.len())
            .map(|i| {
                let text = self.nodes[i]
                    .client()
                    .and_then(|mut c| {
                        c.set_timeout(Duration::from_secs(2));
                        c.cmd(&["INFO", "replication"]).map_err(|e| e.to_string())
                    })
                    .map(|v| match v {
                        Value::Bulk(Some(b)) => String::from_utf8_lossy(&b).replace("\r\n", " "),
                        other => format!("{other:?}"),
                    })
                    .unwrap_or_else(|e| e);
                format!("[node{i} port {}] {text}", self.nodes[i].port)
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// A replica the operator may promote now.
    fn could_take_over(&self, i: usize) -> bool {
        if self.durability {
            self.eligible(i)
        } else {
            self.synced(i)
        }
    }
}

/// Runs the suite; the report says what the history and the digests showed.
pub fn run(args: FaultArgs) -> Result<FaultReport, String> {
    if args.auto {
        return auto::run(args);
    }
    let dir = args.out_dir.join(format!(
        "seed-{}-{}",
        args.seed,
        mode(args.durability, args.wait_all).0
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let wal: Vec<String> = if args.wal {
        // Small segments: six segment files (and their spares) per node, not 64 MiB each.
        [
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--wal-segment-size",
            "4mb",
        ]
        .map(String::from)
        .to_vec()
    } else {
        Vec::new()
    };
    let nodes: Vec<Server> = (0..3)
        .map(|i| {
            let s = Server::start_with(
                &args.server_bin,
                &dir,
                &format!("node{i}"),
                args.shards,
                None,
                &wal,
            )?;
            configure(&s, args.durability)?;
            Ok(s)
        })
        .collect::<Result<_, String>>()?;
    let mut cl = Cluster {
        nodes,
        primary: 0,
        relays: vec![None, None, None],
        durability: args.durability,
    };
    if args.filler > 0 {
        let n = args.filler.to_string();
        command(&cl.nodes[0], &["DEBUG", "POPULATE", &n, "filler", "100"])?;
    }
    for i in cl.replicas() {
        cl.follow(i)?;
    }
    let sh = Arc::new(Shared {
        serving: Mutex::new(Serving {
            epoch: 1,
            port: cl.nodes[0].port,
        }),
        starts: Mutex::new(HashMap::new()),
        stop: AtomicBool::new(false),
        events: Mutex::new(Vec::new()),
        start: Instant::now(),
        acked: AtomicU64::new(0),
    });
    // Generous: the test suite runs several of these at once on two cores.
    wait_until(Duration::from_secs(180), || {
        cl.replicas()
            .iter()
            .all(|&i| cl.synced(i) && (!args.durability || cl.eligible(i)))
            .then_some(())
    })
    .ok_or_else(|| format!("replicas did not sync at the start: {}", cl.describe()))?;
    let threads = spawn_workload(&sh, &args, writer, reader);
    let mut rng = SmallRng::seed_from_u64(args.seed);
    let mut faults = Vec::new();
    let mut failovers = 0;
    let end = Instant::now() + Duration::from_secs(args.seconds);
    while Instant::now() < end {
        // Let the workload make progress between faults.
        let before = sh.acked.load(Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(rng.random_range(500..1500)));
        wait_until(Duration::from_secs(30), || {
            (sh.acked.load(Ordering::Relaxed) > before + 20).then_some(())
        });
        let pause = Duration::from_millis(rng.random_range(300..2000));
        let reps = cl.replicas();
        let r = reps[rng.random_range(0..reps.len())];
        let what = rng.random_range(0..if args.wal { 8 } else { 7 });
        let line = match what {
            7 => {
                cl.outage()?;
                "kill -9 of every node, all restarted from their WALs".to_string()
            }
            // An operator fails over only when some replica could take over.
            0 if reps.iter().any(|&i| cl.could_take_over(i)) => {
                failovers += 1;
                failover(&mut cl, &sh, args.keys)?
            }
            1 => {
                stop_for(&cl.nodes[r], pause);
                format!("SIGSTOP replica node{r} for {pause:?}")
            }
            2 => {
                if let Some(p) = &cl.relays[r] {
                    p.cut();
                    std::thread::sleep(pause);
                    p.resume();
                }
                format!("cut node{r}'s link for {pause:?}")
            }
            3 => {
                if let Some(p) = &cl.relays[r] {
                    p.hold();
                    std::thread::sleep(pause);
                    p.release();
                }
                format!("held node{r}'s link for {pause:?}")
            }
            4 => {
                cl.restart(r)?;
                format!("kill -9 and restart of replica node{r}")
            }
            5 => {
                let ms = rng.random_range(5..80);
                if let Some(p) = &cl.relays[r] {
                    p.delay(ms);
                    std::thread::sleep(pause);
                    p.delay(0);
                }
                format!("delayed node{r}'s link by {ms} ms for {pause:?}")
            }
            _ => {
                let p = cl.primary;
                let short = Duration::from_millis(rng.random_range(50..300));
                stop_for(&cl.nodes[p], short);
                format!("SIGSTOP primary node{p} for {short:?}")
            }
        };
        faults.push(format!("{:.1}s {line}", sh.start.elapsed().as_secs_f64()));
    }
    sh.stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    // Settle: every replica synced and holding everything the primary logged.
    let p = cl.primary;
    let settled = wait_until(Duration::from_secs(120), || {
        let want = cl.info(p, "master_repl_offset").unwrap_or_default();
        cl.replicas()
            .iter()
            .all(|&i| cl.synced(i) && cl.info(i, "slave_repl_offset") == Some(want.clone()))
            .then_some(())
    });
    if settled.is_none() {
        eprintln!("the replicas did not settle: {}", cl.describe());
    }
    let final_index = read_all(&cl, p, args.keys)?;
    let digests: Vec<String> = (0..cl.nodes.len())
        .map(|i| {
            cl.nodes[i]
                .client()
                .and_then(|mut c| c.cmd(&["DEBUG", "DIGEST"]).map_err(|e| e.to_string()))
                .map(|v| v.text())
                .unwrap_or_default()
        })
        .collect();
    let digests_equal = settled.is_some() && digests.iter().all(|d| d == &digests[0]);
    let events = std::mem::take(&mut *sh.events.lock().expect("events"));
    let starts = std::mem::take(&mut *sh.starts.lock().expect("starts"));
    let verdict = history::check(&events, &starts, &final_index);
    let report = FaultReport {
        seed: args.seed,
        wait_all: args.wait_all,
        durability: args.durability,
        faults,
        failovers,
        verdict,
        digests_equal,
    };
    Ok(report.saved_in(&dir))
}

impl FaultReport {
    /// Writes the report as `report.json` in `dir` (best effort: the run's result is the value).
    pub(crate) fn saved_in(self, dir: &std::path::Path) -> FaultReport {
        std::fs::create_dir_all(dir).ok();
        if let Ok(j) = serde_json::to_string_pretty(&self) {
            let _ = std::fs::write(dir.join("report.json"), j);
        }
        self
    }
}

/// kill -9 of the primary; like an operator, the harness promotes the replica with the highest offset
/// that accepts the promotion (a replica still loading refuses it; in durability mode, only a replica
/// eligible just before the kill is tried, and an ineligible one refuses anyway), and the others (the old
/// primary restarted empty) follow it. Returns the line for the report.
fn failover(cl: &mut Cluster, sh: &Shared, keys: usize) -> Result<String, String> {
    let old = cl.primary;
    let mut candidates: Vec<usize> = cl
        .replicas()
        .into_iter()
        .filter(|&i| !cl.durability || cl.eligible(i))
        .collect();
    cl.nodes[old].kill();
    let mut refusals = Vec::new();
    let best = wait_until(Duration::from_secs(60), || {
        candidates.sort_by_key(|&i| (std::cmp::Reverse(cl.offset(i)), i));
        candidates.iter().copied().find(|&i| {
            let r = cl.nodes[i]
                .client()
                .and_then(|mut c| ok(c.cmd(&["REPLICAOF", "NO", "ONE"])));
            if let Err(e) = &r {
                refusals.push(format!("node{i}: {e}"));
            }
            r.is_ok()
        })
    })
    .ok_or_else(|| format!("no replica could be promoted: {refusals:?}"))?;
    cl.primary = best;
    let start = read_all(cl, best, keys)?;
    {
        let mut s = sh.serving.lock().expect("serving");
        sh.starts.lock().expect("starts").insert(s.epoch + 1, start);
        s.epoch += 1;
        s.port = cl.nodes[best].port;
    }
    for i in cl.replicas() {
        if i == old {
            cl.nodes[i].restart()?;
            cl.nodes[i].wait_ready(Duration::from_secs(30))?;
            configure(&cl.nodes[i], cl.durability)?;
        }
        cl.follow(i)?;
    }
    Ok(format!(
        "kill -9 of primary node{old}; node{best} promoted (offset {})",
        cl.offset(best).max(0)
    ))
}

/// The run's mode: a short name (its output directory) and how the report says it.
fn mode(durability: bool, wait_all: bool) -> (&'static str, &'static str) {
    if durability {
        ("durability", "durability mode")
    } else if wait_all {
        ("wait", "WAIT for all replicas")
    } else {
        ("async", "asynchronous")
    }
}

/// Every key's write index on node `i` (u64::MAX for a value never written).
fn read_all(cl: &Cluster, i: usize, keys: usize) -> Result<Vec<u64>, String> {
    let mut c = cl.nodes[i].client()?;
    (0..keys)
        .map(|key| {
            let v = c.cmd(&["GET", &key_name(key)]).map_err(|e| e.to_string())?;
            Ok(parse_read(key, &v).unwrap_or(u64::MAX))
        })
        .collect()
}

pub(crate) fn signal(s: &Server, sig: i32) {
    // SAFETY: a signal to a child process this harness started.
    unsafe { libc::kill(s.pid() as i32, sig) };
}

/// SIGSTOP of `s` for `d`, then SIGCONT.
pub(crate) fn stop_for(s: &Server, d: Duration) {
    signal(s, libc::SIGSTOP);
    std::thread::sleep(d);
    signal(s, libc::SIGCONT);
}

/// The workload's threads: `writers` writers and `readers` readers over the shared state `sh`.
pub(crate) fn spawn_workload<S: Send + Sync + 'static>(
    sh: &Arc<S>,
    args: &FaultArgs,
    writer: fn(Arc<S>, usize, FaultArgs),
    reader: fn(Arc<S>, usize, FaultArgs),
) -> Vec<std::thread::JoinHandle<()>> {
    let mut threads = Vec::new();
    for id in 0..args.writers {
        let (sh, a) = (sh.clone(), args.clone());
        threads.push(std::thread::spawn(move || writer(sh, id, a)));
    }
    for id in 0..args.readers {
        let (sh, a) = (sh.clone(), args.clone());
        threads.push(std::thread::spawn(move || reader(sh, id, a)));
    }
    threads
}

pub fn print(r: &FaultReport) {
    let v = &r.verdict;
    println!(
        "seed {} ({}): {} faults, {} failovers; ops attempted {} writes + {} reads, acknowledged {}; \
         lost {}, stale {}, unexpected {}, flips {}, two writers {}; digests equal: {}",
        r.seed,
        mode(r.durability, r.wait_all).1,
        r.faults.len(),
        r.failovers,
        v.writes,
        v.reads,
        v.acknowledged,
        v.lost,
        v.stale,
        v.unexpected,
        v.flips,
        v.two_writers,
        r.digests_equal
    );
    for e in &v.examples {
        println!("  {e}");
    }
}
