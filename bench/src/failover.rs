//! `tandem-bench failover`: what failover mode (`failover yes`, docs/failover.md) gives and costs, on
//! groups it starts itself (a founder and two members that joined it):
//! - `kill`: under a steady `--rate` of SETs with `--keys` keys loaded, kill -9 of the primary; the time
//!   until a write is acknowledged again (by whichever node the group promoted; in durability mode that
//!   includes the remaining replica's resync and grant). With `--rejoin`, the old primary is then
//!   restarted as itself: the time until it follows the new primary with its sync done (caught up), and
//!   until the record makes it eligible again.
//! - `cost`: SET throughput and p99 of a group with failover on against the same group without it
//!   (plain replication), modes alternating in every round.

use crate::durability::{load, medians, Load};
use crate::replcost::median;
use crate::resync::client::{Client, Value};
use crate::resync::server::{wait_until, Server};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug, Clone)]
pub struct FailoverArgs {
    /// kill | cost
    #[arg(long, default_value = "kill")]
    pub scenario: String,
    #[arg(long, default_value = "target/release/tandem-server")]
    pub server_bin: PathBuf,
    #[arg(long, default_value_t = 10)]
    pub rounds: usize,
    #[arg(long, default_value_t = 1_000_000)]
    pub keys: u64,
    /// SETs per second of the steady load (kill).
    #[arg(long, default_value_t = 10_000)]
    pub rate: u64,
    /// Durability mode on every node (kill).
    #[arg(long)]
    pub durability: bool,
    /// Restart the old primary after the failover and time its rejoin (kill).
    #[arg(long)]
    pub rejoin: bool,
    #[arg(long, default_value_t = 2)]
    pub shards: usize,
    /// Connections and seconds of each cost measurement.
    #[arg(long, default_value_t = 50)]
    pub clients: usize,
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    #[arg(long, value_delimiter = ',', default_values_t = [1usize, 16])]
    pub pipelines: Vec<usize>,
    #[arg(long, default_value = "target/perf/failover")]
    pub out_dir: PathBuf,
}

fn field(port: u16, name: &str) -> String {
    Client::connect(port)
        .and_then(|mut c| {
            c.set_timeout(Duration::from_millis(500));
            c.info_field("replication", name)
        })
        .unwrap_or_default()
}

fn wait_for(within: Duration, mut f: impl FnMut() -> bool) -> Result<(), String> {
    wait_until(within, || f().then_some(())).ok_or_else(|| "condition not met in time".into())
}

/// A founder with `keys` keys and two members that joined it, every replica eligible.
fn group(args: &FailoverArgs, dir: &Path, durability: bool) -> Result<Vec<Server>, String> {
    let mut extra: Vec<String> = vec!["--failover".into(), "yes".into()];
    if durability {
        extra.extend(["--durability".into(), "yes".into()]);
    }
    let start = |name: &str, seed: Option<u16>| {
        let mut e = extra.clone();
        if let Some(p) = seed {
            e.extend(["--replicaof".into(), "127.0.0.1".into(), p.to_string()]);
        }
        Server::start_with(&args.server_bin, dir, name, args.shards, None, &e)
    };
    let founder = start("node0", None)?;
    wait_for(Duration::from_secs(30), || {
        field(founder.port, "group_state") == "serving"
    })?;
    if args.keys > 0 {
        let mut c = founder.client()?;
        c.set_timeout(Duration::from_secs(600));
        c.cmd(&["DEBUG", "POPULATE", &args.keys.to_string(), "key", "100"])
            .map_err(|e| e.to_string())?;
    }
    let p = founder.port;
    let nodes = vec![founder, start("node1", Some(p))?, start("node2", Some(p))?];
    wait_for(Duration::from_secs(600), || {
        nodes[1..]
            .iter()
            .all(|n| field(n.port, "eligible") == "yes")
    })
    .map_err(|_| "the members were not granted".to_string())?;
    Ok(nodes)
}

/// A writer at `rate` SETs/s (batches of 10 every 10/rate s) to whichever node serves; its latest
/// acknowledgement as `µs since base << 16 | port of the node that gave it`.
fn writer(
    ports: Vec<u16>,
    rate: u64,
    base: Instant,
    last_ack: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) {
    let batch = 10usize;
    let interval = Duration::from_secs_f64(batch as f64 / rate as f64);
    let mut next = Instant::now();
    let mut conn: Option<(u16, Client)> = None;
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        }
        next += interval;
        if conn.is_none() {
            conn = ports
                .iter()
                .find(|&&p| field(p, "group_state") == "serving")
                .and_then(|&p| Client::connect(p).ok().map(|c| (p, c)));
            if let Some((_, c)) = conn.as_mut() {
                c.set_timeout(Duration::from_secs(2));
            }
        }
        let Some((port, c)) = conn.as_mut() else {
            continue;
        };
        let cmds: Vec<Vec<Vec<u8>>> = (0..batch)
            .map(|_| {
                i += 1;
                vec![
                    b"SET".to_vec(),
                    format!("load:{}", i % 100_000).into_bytes(),
                    b"v".to_vec(),
                ]
            })
            .collect();
        let mut good = c.send(&cmds).is_ok();
        for _ in 0..batch {
            match c.read() {
                Ok(Value::Simple(_)) if good => {
                    let at = base.elapsed().as_micros() as u64;
                    last_ack.store(at << 16 | *port as u64, Ordering::Relaxed);
                }
                Ok(_) => good = false,
                Err(_) => {
                    good = false;
                    break;
                }
            }
        }
        if !good {
            conn = None;
        }
    }
}

fn kill(args: &FailoverArgs) -> Result<(), String> {
    let (mut gaps, mut caught, mut eligible) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..args.rounds {
        let dir = args.out_dir.join(format!("kill-r{round}"));
        let _ = std::fs::remove_dir_all(&dir);
        let mut nodes = group(args, &dir, args.durability)?;
        let ports: Vec<u16> = nodes.iter().map(|n| n.port).collect();
        let base = Instant::now();
        let last_ack = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let w = {
            let (ports, la, st, rate) = (ports.clone(), last_ack.clone(), stop.clone(), args.rate);
            std::thread::spawn(move || writer(ports, rate, base, la, st))
        };
        std::thread::sleep(Duration::from_secs(2));
        let killed = base.elapsed().as_micros() as u64;
        nodes[0].kill();
        // The first acknowledgement after the kill by another node (a reply of the dead one that was
        // already on its way does not count).
        let by_other = || {
            let v = last_ack.load(Ordering::Relaxed);
            (v >> 16 > killed && (v & 0xffff) as u16 != ports[0]).then_some(v)
        };
        wait_for(Duration::from_secs(120), || by_other().is_some())
            .map_err(|_| "writes were never acknowledged again".to_string())?;
        let v = by_other().unwrap_or(0);
        let gap = ((v >> 16) - killed) as f64 / 1e6;
        let new = ports
            .iter()
            .position(|&p| p == (v & 0xffff) as u16)
            .unwrap_or(0);
        let mut line =
            format!("round {round}: writes acknowledged again {gap:.2} s after kill -9 (node{new} promoted)");
        gaps.push(gap);
        if args.rejoin {
            let t0 = Instant::now();
            nodes[0].restart()?;
            nodes[0].wait_ready(Duration::from_secs(30))?;
            let p0 = ports[0];
            wait_for(Duration::from_secs(600), || {
                field(p0, "master_link_status") == "up"
                    && field(p0, "master_sync_in_progress") == "0"
            })?;
            let c = t0.elapsed().as_secs_f64();
            wait_for(Duration::from_secs(600), || field(p0, "eligible") == "yes")?;
            let e = t0.elapsed().as_secs_f64();
            line += &format!(
                "; old primary caught up {c:.2} s and eligible {e:.2} s after its restart"
            );
            caught.push(c);
            eligible.push(e);
        }
        println!("{line}");
        stop.store(true, Ordering::Relaxed);
        let _ = w.join();
    }
    let worst = gaps.iter().copied().fold(0.0, f64::max);
    println!(
        "kill -9 -> writes acknowledged again ({} keys, {} SET/s, {}): median {:.2} s, worst {worst:.2} s over {} runs",
        args.keys,
        args.rate,
        if args.durability { "durability mode" } else { "asynchronous" },
        median(gaps.clone()),
        gaps.len()
    );
    if args.rejoin {
        println!(
            "old primary restarted -> caught up: median {:.2} s; -> eligible: median {:.2} s",
            median(caught),
            median(eligible)
        );
    }
    Ok(())
}

fn cost(args: &FailoverArgs) -> Result<(), String> {
    for &pipeline in &args.pipelines {
        let (mut on, mut off) = (Vec::new(), Vec::new());
        for round in 0..args.rounds {
            for failover in [false, true] {
                let dir = args
                    .out_dir
                    .join(format!("cost-p{pipeline}-r{round}-{failover}"));
                let _ = std::fs::remove_dir_all(&dir);
                let a = FailoverArgs {
                    keys: 0,
                    ..args.clone()
                };
                let primary = if failover {
                    group(&a, &dir, false)?
                } else {
                    plain_group(&a, &dir)?
                };
                let l = load(
                    primary[0].port,
                    args.clients,
                    pipeline,
                    None,
                    args.seconds as f64,
                    None,
                    32,
                    None,
                )?;
                println!(
                    "P={pipeline} round {round} failover {}: {:.0} ops/s, p99 {:.0} us, errors {}",
                    if failover { "on" } else { "off" },
                    l.ops_per_sec,
                    l.p99_us,
                    l.errors
                );
                if failover { &mut on } else { &mut off }.push(l);
            }
        }
        let (m_on, m_off): (Load, Load) = (medians(&on), medians(&off));
        println!(
            "P={pipeline} median: failover on {:.0} ops/s (p99 {:.0} us), off {:.0} ops/s (p99 {:.0} us): {:.3}x throughput, cost {:.1}%",
            m_on.ops_per_sec,
            m_on.p99_us,
            m_off.ops_per_sec,
            m_off.p99_us,
            m_on.ops_per_sec / m_off.ops_per_sec,
            100.0 * (1.0 - m_on.ops_per_sec / m_off.ops_per_sec)
        );
    }
    Ok(())
}

/// The same three nodes with plain replication (REPLICAOF), caught up.
fn plain_group(args: &FailoverArgs, dir: &Path) -> Result<Vec<Server>, String> {
    let p = Server::start(&args.server_bin, dir, "node0", args.shards, None)?;
    let mut nodes = vec![p];
    for i in 1..3 {
        let r = Server::start(
            &args.server_bin,
            dir,
            &format!("node{i}"),
            args.shards,
            None,
        )?;
        r.client()?
            .cmd(&["REPLICAOF", "127.0.0.1", &nodes[0].port.to_string()])
            .map_err(|e| e.to_string())?;
        nodes.push(r);
    }
    wait_for(Duration::from_secs(60), || {
        nodes[1..]
            .iter()
            .all(|n| field(n.port, "master_link_status") == "up")
    })?;
    Ok(nodes)
}

pub fn run(args: FailoverArgs) -> Result<(), String> {
    match args.scenario.as_str() {
        "kill" => kill(&args),
        "cost" => cost(&args),
        s => Err(format!("unknown scenario {s}: kill or cost")),
    }
}
