//! `tandem-bench durability`: what durability mode costs and how it behaves, on servers it starts itself
//! (a primary and two replicas, fresh for every measurement, modes alternating within each round):
//! - `throughput`: SET ops/s and p50/p99 latency with `--clients` connections at pipeline 1 and 16, for
//!   Tandem asynchronous and in durability mode, and (with `--compare`) the other server asynchronous and
//!   doing `WAIT <replicas> 0` after every SET (after every pipeline of 16 at P=16);
//! - `grant`: the longest stall a client sees while a replica is granted again and again (its link killed
//!   to start a new session), under a steady `--rate` of SETs, against the same run with no grants;
//! - `restart`: time from a replica's kill -9 and restart until it is eligible again, with `--keys` keys,
//!   under `--rate` SETs/s.

use crate::replcost::median;
use crate::resync::client::{Client, Value};
use crate::resync::server::{wait_until, Server};
use hdrhistogram::Histogram;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug, Clone)]
pub struct DurabilityArgs {
    /// throughput | grant | restart
    #[arg(long, default_value = "throughput")]
    pub scenario: String,
    #[arg(long, default_value = "target/release/tandem-server")]
    pub server_bin: PathBuf,
    /// Another server (redis-server, valkey-server) measured asynchronous and with SET + WAIT.
    #[arg(long)]
    pub compare: Option<PathBuf>,
    #[arg(long, default_value_t = 50)]
    pub clients: usize,
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    #[arg(long, default_value_t = 2)]
    pub replicas: usize,
    #[arg(long, default_value_t = 2)]
    pub shards: usize,
    #[arg(long, default_value_t = 32)]
    pub value_size: usize,
    /// Pipeline depths the throughput scenario measures.
    #[arg(long, value_delimiter = ',', default_values_t = [1usize, 16])]
    pub pipelines: Vec<usize>,
    /// SETs per second of the background load (grant, restart).
    #[arg(long, default_value_t = 10_000)]
    pub rate: u64,
    /// Keys loaded before the restart scenario (DEBUG POPULATE).
    #[arg(long, default_value_t = 5_000_000)]
    pub keys: u64,
    /// How the grant scenario makes replicas be granted again: toggle | reconnect.
    #[arg(long, default_value = "toggle")]
    pub grant_by: String,
    #[arg(long, default_value = "target/perf/durability")]
    pub out_dir: PathBuf,
}

fn ok(v: std::io::Result<Value>) -> Result<String, String> {
    match v.map_err(|e| e.to_string())? {
        Value::Error(e) => Err(e),
        v => Ok(v.text()),
    }
}

fn info(s: &Server, section: &str, field: &str) -> String {
    s.client()
        .and_then(|mut c| c.info_field(section, field).map_err(|e| e.to_string()))
        .unwrap_or_default()
}

fn wait_for(within: Duration, mut f: impl FnMut() -> bool) -> Result<(), String> {
    wait_until(within, || f().then_some(())).ok_or_else(|| "condition not met in time".into())
}

/// A primary and `n` replicas of `bin`, caught up; in durability mode once all are eligible.
struct Group {
    primary: Server,
    replicas: Vec<Server>,
}

fn group(
    args: &DurabilityArgs,
    bin: &Path,
    dir: &Path,
    durable: bool,
    populate: u64,
) -> Result<Group, String> {
    let primary = Server::start(bin, dir, "primary", args.shards, None)?;
    if populate > 0 {
        let n = populate.to_string();
        ok(primary
            .client()?
            .cmd(&["DEBUG", "POPULATE", &n, "key", "100"]))?;
    }
    let mut replicas = Vec::new();
    for i in 0..args.replicas {
        let r = Server::start(bin, dir, &format!("replica{i}"), args.shards, None)?;
        if durable {
            ok(r.client()?.cmd(&["CONFIG", "SET", "durability", "yes"]))?;
        }
        ok(r.client()?
            .cmd(&["REPLICAOF", "127.0.0.1", &primary.port.to_string()]))?;
        replicas.push(r);
    }
    let g = Group { primary, replicas };
    if durable {
        ok(g.primary
            .client()?
            .cmd(&["CONFIG", "SET", "durability", "yes"]))?;
    }
    let want = args.replicas.to_string();
    wait_for(Duration::from_secs(600), || {
        g.replicas
            .iter()
            .all(|r| info(r, "replication", "master_link_status") == "up")
            && (!durable || info(&g.primary, "replication", "durability_eligible_replicas") == want)
    })
    .map_err(|_| "replicas did not sync (or were not granted)".to_string())?;
    Ok(g)
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Load {
    pub ops_per_sec: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub max_us: f64,
    pub errors: u64,
}

/// `clients` connections writing SETs in pipelines of `pipeline` (each followed by `WAIT <wait> 0` if
/// given) for `secs`, or paced to `rate` ops/s in total; latency per pipeline. Connections are spread
/// over at most `LOAD_THREADS` threads, each sending on all of its connections and then reading their
/// replies (as memtier's event loop does), so the client does not take the servers' CPU on a small machine.
#[allow(clippy::too_many_arguments)]
pub(crate) fn load(
    port: u16,
    clients: usize,
    pipeline: usize,
    wait: Option<usize>,
    secs: f64,
    rate: Option<u64>,
    value_size: usize,
    stop: Option<Arc<AtomicBool>>,
) -> Result<Load, String> {
    let value = vec![b'v'; value_size];
    let start = Instant::now();
    let nthreads = clients.clamp(1, LOAD_THREADS);
    let threads: Vec<_> = (0..nthreads)
        .map(|t| {
            let value = value.clone();
            let stop = stop.clone();
            let mine = clients / nthreads + usize::from(t < clients % nthreads);
            std::thread::spawn(move || -> Result<(Histogram<u64>, u64, u64), String> {
                let mut conns = (0..mine)
                    .map(|_| Client::connect(port).map_err(|e| e.to_string()))
                    .collect::<Result<Vec<_>, _>>()?;
                let mut h = Histogram::<u64>::new(3).expect("histogram");
                let (mut ops, mut errors, mut i) = (0u64, 0u64, t as u64 * 1_000_003);
                let interval = rate.map(|r| {
                    Duration::from_secs_f64(nthreads as f64 * (mine * pipeline) as f64 / r as f64)
                });
                let mut next = Instant::now();
                while start.elapsed().as_secs_f64() < secs
                    && !stop.as_ref().is_some_and(|s| s.load(Ordering::Relaxed))
                {
                    if let Some(iv) = interval {
                        let now = Instant::now();
                        if next > now {
                            std::thread::sleep(next - now);
                        }
                        next += iv;
                    }
                    let mut sent = Vec::with_capacity(conns.len());
                    for c in conns.iter_mut() {
                        let mut batch: Vec<Vec<Vec<u8>>> = (0..pipeline)
                            .map(|_| {
                                i += 1;
                                vec![
                                    b"SET".to_vec(),
                                    format!("key:{:08}", i % 100_000).into_bytes(),
                                    value.clone(),
                                ]
                            })
                            .collect();
                        if let Some(n) = wait {
                            batch.push(vec![
                                b"WAIT".to_vec(),
                                n.to_string().into_bytes(),
                                b"0".to_vec(),
                            ]);
                        }
                        c.send(&batch).map_err(|e| e.to_string())?;
                        sent.push((Instant::now(), batch.len()));
                    }
                    for (c, (t0, n)) in conns.iter_mut().zip(sent) {
                        for _ in 0..n {
                            if let Value::Error(_) = c.read().map_err(|e| e.to_string())? {
                                errors += 1;
                            }
                        }
                        h.record(t0.elapsed().as_micros() as u64).ok();
                        ops += pipeline as u64;
                    }
                }
                Ok((h, ops, errors))
            })
        })
        .collect();
    let mut all = Histogram::<u64>::new(3).expect("histogram");
    let (mut ops, mut errors) = (0, 0);
    for t in threads {
        let (h, o, e) = t.join().map_err(|_| "load thread panicked")??;
        all.add(&h).ok();
        ops += o;
        errors += e;
    }
    let took = start.elapsed().as_secs_f64();
    Ok(Load {
        ops_per_sec: ops as f64 / took,
        p50_us: all.value_at_quantile(0.5) as f64,
        p99_us: all.value_at_quantile(0.99) as f64,
        max_us: all.max() as f64,
        errors,
    })
}

/// Client threads of the load (connections are multiplexed over them).
const LOAD_THREADS: usize = 2;

fn print(name: &str, l: &Load) {
    println!(
        "{name}: {:.0} ops/s, p50 {:.0} us, p99 {:.0} us, max {:.0} us, errors {}",
        l.ops_per_sec, l.p50_us, l.p99_us, l.max_us, l.errors
    );
}

pub(crate) fn medians(v: &[Load]) -> Load {
    let m = |g: fn(&Load) -> f64| median(v.iter().map(g).collect());
    Load {
        ops_per_sec: m(|x| x.ops_per_sec),
        p50_us: m(|x| x.p50_us),
        p99_us: m(|x| x.p99_us),
        max_us: m(|x| x.max_us),
        errors: v.iter().map(|x| x.errors).sum(),
    }
}

fn throughput(args: &DurabilityArgs) -> Result<(), String> {
    // (label, binary, durability mode, WAIT after each pipeline)
    let mut modes: Vec<(String, PathBuf, bool, Option<usize>)> = vec![
        ("tandem async".into(), args.server_bin.clone(), false, None),
        (
            "tandem durability".into(),
            args.server_bin.clone(),
            true,
            None,
        ),
    ];
    if let Some(c) = &args.compare {
        let name = c
            .file_name()
            .map_or("compare".into(), |n| n.to_string_lossy().into_owned());
        modes.push((format!("{name} async"), c.clone(), false, None));
        modes.push((
            format!("{name} SET+WAIT {}", args.replicas),
            c.clone(),
            false,
            Some(args.replicas),
        ));
    }
    for &pipeline in &args.pipelines {
        let mut all: Vec<Vec<Load>> = modes.iter().map(|_| Vec::new()).collect();
        for round in 0..args.rounds {
            for (i, (label, bin, durable, wait)) in modes.iter().enumerate() {
                let dir = args.out_dir.join(format!("p{pipeline}-r{round}-m{i}"));
                let g = group(args, bin, &dir, *durable, 0)?;
                let l = load(
                    g.primary.port,
                    args.clients,
                    pipeline,
                    *wait,
                    args.seconds as f64,
                    None,
                    args.value_size,
                    None,
                )?;
                print(&format!("P={pipeline} round {round} {label}"), &l);
                all[i].push(l);
            }
        }
        let meds: Vec<Load> = all.iter().map(|v| medians(v)).collect();
        for ((label, ..), m) in modes.iter().zip(&meds) {
            print(&format!("P={pipeline} median {label}"), m);
        }
        println!(
            "P={pipeline} tandem durability / async: throughput {:.2}x, p99 {:.2}x",
            meds[1].ops_per_sec / meds[0].ops_per_sec,
            meds[1].p99_us / meds[0].p99_us
        );
        if meds.len() == 4 {
            println!(
                "P={pipeline} comparison SET+WAIT / async: throughput {:.2}x, p99 {:.2}x; tandem durability / comparison SET+WAIT: {:.2}x",
                meds[3].ops_per_sec / meds[2].ops_per_sec,
                meds[3].p99_us / meds[2].p99_us,
                meds[1].ops_per_sec / meds[3].ops_per_sec
            );
        }
    }
    Ok(())
}

/// Under `rate` SETs/s on 10 connections: the longest stall a client sees while replicas are granted
/// again and again, against the same run without grants. `--grant-by toggle` (default) revokes every
/// replica by turning the mode off and on (durability-replicas 0, so writes go on meanwhile): only the
/// grant's pause is measured. `--grant-by reconnect` kills a replica's link instead: the reconnect, its
/// partial resync and the grant together.
fn grant(args: &DurabilityArgs) -> Result<(), String> {
    let mut with = Vec::new();
    let mut without = Vec::new();
    let mut pauses = Vec::new();
    let toggle = args.grant_by == "toggle";
    for round in 0..args.rounds {
        for regrant in [false, true] {
            let dir = args.out_dir.join(format!("grant-r{round}-{regrant}"));
            let g = group(args, &args.server_bin, &dir, true, 0)?;
            if toggle {
                ok(g.primary
                    .client()?
                    .cmd(&["CONFIG", "SET", "durability-replicas", "0"]))?;
            }
            let port = g.primary.port;
            let (rate, secs, vs) = (args.rate, args.seconds as f64, args.value_size);
            let loader =
                std::thread::spawn(move || load(port, 10, 1, None, secs, Some(rate), vs, None));
            let started = Instant::now();
            let grants_now = || -> u64 {
                info(&g.primary, "replication", "tandem_durability_grants")
                    .parse()
                    .unwrap_or(0)
            };
            let first = grants_now();
            while regrant && started.elapsed().as_secs_f64() < secs - 1.0 {
                let before = grants_now();
                let want = if toggle {
                    let mut p = g.primary.client()?;
                    ok(p.cmd(&["CONFIG", "SET", "durability", "no"]))?;
                    wait_for(Duration::from_secs(10), || {
                        info(&g.primary, "replication", "durability_eligible_replicas") == "0"
                    })?;
                    ok(p.cmd(&["CONFIG", "SET", "durability", "yes"]))?;
                    before + args.replicas as u64
                } else {
                    let r = &g.replicas[args.replicas - 1];
                    ok(r.client()?.cmd(&["CLIENT", "KILL", "TYPE", "master"]))?;
                    before + 1
                };
                wait_for(Duration::from_secs(10), || grants_now() >= want)?;
            }
            let grants = grants_now() - first;
            let l = loader.join().map_err(|_| "load thread panicked")??;
            let max_pause: f64 = info(
                &g.primary,
                "replication",
                "tandem_durability_max_grant_pause_us",
            )
            .parse()
            .unwrap_or(0.0);
            println!(
                "round {round} {}: {grants} grants; longest server pause {max_pause:.0} us",
                if regrant {
                    "with re-grants"
                } else {
                    "no grants"
                }
            );
            print("  client", &l);
            if regrant {
                with.push(l);
                pauses.push(max_pause);
            } else {
                without.push(l);
            }
        }
    }
    let (w, wo) = (medians(&with), medians(&without));
    print("median with re-grants", &w);
    print("median without", &wo);
    println!(
        "longest client stall: {:.0} us with grants vs {:.0} us without; longest server pause (median of rounds) {:.0} us",
        w.max_us,
        wo.max_us,
        median(pauses)
    );
    Ok(())
}

/// Time from a replica's kill -9 and restart until it is eligible again.
fn restart(args: &DurabilityArgs) -> Result<(), String> {
    let mut times = Vec::new();
    for round in 0..args.rounds {
        let dir = args.out_dir.join(format!("restart-r{round}"));
        let mut g = group(args, &args.server_bin, &dir, true, args.keys)?;
        let stop = Arc::new(AtomicBool::new(false));
        let (port, rate, vs, st) = (g.primary.port, args.rate, args.value_size, stop.clone());
        let loader =
            std::thread::spawn(move || load(port, 10, 1, None, 1e9, Some(rate), vs, Some(st)));
        std::thread::sleep(Duration::from_secs(1));
        let r = g.replicas.last_mut().expect("a replica");
        r.kill();
        let t0 = Instant::now();
        r.restart()?;
        r.wait_ready(Duration::from_secs(30))?;
        ok(r.client()?.cmd(&["CONFIG", "SET", "durability", "yes"]))?;
        ok(r.client()?
            .cmd(&["REPLICAOF", "127.0.0.1", &g.primary.port.to_string()]))?;
        let r = g.replicas.last().expect("a replica");
        wait_for(Duration::from_secs(600), || {
            info(r, "replication", "eligible") == "yes"
        })?;
        let took = t0.elapsed().as_secs_f64();
        let keys = ok(r.client()?.cmd(&["DBSIZE"]))?;
        stop.store(true, Ordering::Relaxed);
        let l = loader.join().map_err(|_| "load thread panicked")??;
        println!(
            "round {round}: eligible again {took:.2} s after the restart, holding {keys} keys ({} populated, load {:.0} SET/s, p99 {:.0} us, errors {})",
            args.keys, l.ops_per_sec, l.p99_us, l.errors
        );
        times.push(took);
    }
    println!(
        "median time to eligible after a restart: {:.2} s",
        median(times)
    );
    Ok(())
}

pub fn run(args: DurabilityArgs) -> Result<(), String> {
    match args.scenario.as_str() {
        "throughput" => throughput(&args),
        "grant" => grant(&args),
        "restart" => restart(&args),
        s => Err(format!(
            "unknown scenario {s}: throughput, grant or restart"
        )),
    }
}
