//! The scenarios: `new-replica` (a fresh replica of a loaded primary, idle or under write load) and
//! `partial` (a replica's link killed under load, recovered without a full sync). Each starts its own
//! servers, measures, checks the data set, and returns a `Run`.

use super::chart::{svg, Phase};
use super::client::Client;
use super::server::{sample, Kind, ProcSample, Server};
use super::ResyncArgs;
use crate::load::options::LoadArgs;
use crate::load::report::{Report, Second};
use serde::Serialize;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Serialize)]
pub struct Run {
    pub scenario: String,
    pub server: String,
    pub kind: Kind,
    pub keys: u64,
    pub value_size: usize,
    pub random_values: bool,
    pub load_rate: u64,
    pub primary_shards: usize,
    pub replica_shards: usize,
    pub dataset_bytes: u64,
    /// From REPLICAOF (or the link kill) to master_link_status:up.
    pub link_up_s: f64,
    /// From REPLICAOF (or the link kill) to the replica holding the primary's offset of that moment.
    pub caught_up_s: f64,
    pub primary_rss_growth_bytes: i64,
    /// Private memory of the primary's children (a fork's copy-on-write), at its peak.
    pub primary_fork_private_bytes: u64,
    pub primary_peak_rss_bytes: u64,
    pub replica_peak_rss_bytes: u64,
    pub primary_cpu_s: f64,
    pub replica_cpu_s: f64,
    /// Worst per-second p99 and max of the load's requests while the sync ran.
    pub sync_p99_ms: f64,
    pub sync_max_ms: f64,
    pub load_errors: u64,
    pub full_syncs: i64,
    pub partial_syncs: i64,
    pub data_equal: bool,
    /// Longest stretch without a successful write seen by the clients (rejoin scenario).
    pub write_gap_s: f64,
    pub per_second: Vec<Second>,
    pub phases: Vec<(String, f64, f64)>,
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

fn num(c: &mut Client, section: &str, name: &str) -> Result<i64, String> {
    Ok(c.info_field(section, name)
        .map_err(err)?
        .parse()
        .unwrap_or(-1))
}

/// Fills the primary: DEBUG POPULATE, or random (incompressible) values written by pipelines.
fn populate(p: &Server, a: &ResyncArgs) -> Result<(), String> {
    let mut c = p.client()?;
    if !a.random_values && a.hash_fields == 0 {
        let v = c
            .cmd(&[
                "DEBUG",
                "POPULATE",
                &a.keys.to_string(),
                "key",
                &a.value_size.to_string(),
            ])
            .map_err(err)?;
        return match v {
            super::client::Value::Error(e) => Err(format!("DEBUG POPULATE: {e}")),
            _ => Ok(()),
        };
    }
    let threads = 4u64;
    let per = a.keys.div_ceil(threads);
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let port = p.port;
            let size = a.value_size;
            let fields = a.hash_fields;
            let (lo, hi) = (t * per, ((t + 1) * per).min(a.keys));
            std::thread::spawn(move || -> Result<(), String> {
                use rand::{Rng, SeedableRng};
                let mut rng = rand::rngs::SmallRng::seed_from_u64(t);
                let mut c = Client::connect(port).map_err(err)?;
                let mut i = lo;
                while i < hi {
                    let end = (i + if fields > 0 { 50 } else { 1000 }).min(hi);
                    let cmds: Vec<Vec<Vec<u8>>> = (i..end)
                        .map(|k| {
                            let mut v = vec![0u8; size];
                            rng.fill(&mut v[..]);
                            if fields == 0 {
                                return vec![b"SET".to_vec(), format!("key:{k}").into_bytes(), v];
                            }
                            let mut cmd = vec![b"HSET".to_vec(), format!("key:{k}").into_bytes()];
                            for j in 0..fields {
                                cmd.push(format!("f{j}").into_bytes());
                                rng.fill(&mut v[..]);
                                cmd.push(v.clone());
                            }
                            cmd
                        })
                        .collect();
                    let errs = c.pipeline(&cmds).map_err(err)?;
                    if let Some(e) = errs.first() {
                        return Err(format!("populate: {e}"));
                    }
                    i = end;
                }
                Ok(())
            })
        })
        .collect();
    for h in handles {
        h.join()
            .map_err(|_| "populate thread panicked".to_string())??;
    }
    Ok(())
}

/// A SET-only load at `rate` ops/s over the populated keys, running until stopped.
struct Load {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    handle: std::thread::JoinHandle<Result<Report, String>>,
    started: Instant,
}

impl Load {
    fn start(port: u16, a: &ResyncArgs) -> Result<Option<Load>, String> {
        if a.load_rate == 0 {
            return Ok(None);
        }
        let args = LoadArgs {
            host: "127.0.0.1".into(),
            port,
            threads: 1,
            clients: 10,
            pipeline: 1,
            ratio: "1:0".into(),
            data_size: a.value_size,
            key_prefix: "key:".into(),
            key_minimum: 0,
            key_maximum: a.keys.max(1) - 1,
            key_pattern: "R".into(),
            test_time: Some(24 * 3600),
            requests: None,
            rate: Some(a.load_rate),
            commands: Vec::new(),
            resp3: false,
            auth: None,
            json_out: None,
            quiet: true,
        };
        let mut plan = args.plan()?;
        plan.silent = true;
        let stop = plan.stop.clone();
        let started = Instant::now();
        let handle = std::thread::spawn(move || crate::load::run_plan(plan));
        Ok(Some(Load {
            stop,
            handle,
            started,
        }))
    }

    fn finish(self) -> Result<Report, String> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle
            .join()
            .map_err(|_| "load thread panicked".to_string())?
    }
}

/// Polls until the replica's link is up and it holds the primary's offset of that moment; samples both
/// processes meanwhile. Returns (link_up_s, caught_up_s, peaks).
struct Watch {
    link_up: f64,
    caught_up: f64,
    primary_peak_rss: u64,
    fork_private: u64,
    replica_peak_rss: u64,
}

fn watch(p: &Server, r: &Server, t0: Instant, timeout: Duration) -> Result<Watch, String> {
    let (mut pc, mut rc) = (p.client()?, r.client()?);
    let mut w = Watch {
        link_up: -1.0,
        caught_up: -1.0,
        primary_peak_rss: 0,
        fork_private: 0,
        replica_peak_rss: 0,
    };
    let mut target: Option<i64> = None;
    loop {
        let ps = sample(p.pid());
        let rs = sample(r.pid());
        w.primary_peak_rss = w.primary_peak_rss.max(ps.rss);
        w.fork_private = w.fork_private.max(ps.children_private);
        w.replica_peak_rss = w.replica_peak_rss.max(rs.rss);
        let info = rc.info("replication").map_err(err)?;
        let get = |k: &str| {
            info.iter()
                .find(|(a, _)| a == k)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        if w.link_up < 0.0 && get("master_link_status") == "up" {
            w.link_up = t0.elapsed().as_secs_f64();
            target = Some(num(&mut pc, "replication", "master_repl_offset")?);
        }
        if let Some(t) = target {
            let off: i64 = get("slave_repl_offset").parse().unwrap_or(-1);
            if off >= t {
                w.caught_up = t0.elapsed().as_secs_f64();
                return Ok(w);
            }
        }
        if t0.elapsed() > timeout {
            return Err(format!(
                "replica not caught up after {}s",
                timeout.as_secs()
            ));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// What every scenario measures the same way. `w` comes from `watch(serving, syncing, ..)`: the serving
/// side is the primary the replica syncs from (the promoted replica, in the rejoin scenario), and the
/// samples are taken before and after the measured phase.
struct Measured<'a> {
    scenario: &'a str,
    bin: &'a Path,
    kind: Kind,
    dataset: u64,
    w: &'a Watch,
    serving: (ProcSample, ProcSample),
    syncing: (ProcSample, ProcSample),
}

impl Measured<'_> {
    /// The run with the common fields filled; the scenario sets its counts, latencies and phases.
    fn run(self, a: &ResyncArgs) -> Run {
        let (w, (sb, sa), (yb, ya)) = (self.w, self.serving, self.syncing);
        Run {
            scenario: self.scenario.into(),
            server: self.bin.display().to_string(),
            kind: self.kind,
            keys: a.keys,
            value_size: a.value_size,
            random_values: a.random_values,
            load_rate: a.load_rate,
            primary_shards: a.primary_shards,
            replica_shards: a.replica_shards,
            dataset_bytes: self.dataset,
            link_up_s: w.link_up,
            caught_up_s: w.caught_up,
            primary_rss_growth_bytes: w.primary_peak_rss as i64 - sb.rss as i64,
            primary_fork_private_bytes: w.fork_private,
            primary_peak_rss_bytes: w.primary_peak_rss,
            replica_peak_rss_bytes: w.replica_peak_rss,
            primary_cpu_s: sa.cpu_seconds - sb.cpu_seconds,
            replica_cpu_s: ya.cpu_seconds - yb.cpu_seconds,
            sync_p99_ms: 0.0,
            sync_max_ms: 0.0,
            load_errors: 0,
            full_syncs: 0,
            partial_syncs: 0,
            data_equal: false,
            write_gap_s: 0.0,
            per_second: Vec::new(),
            phases: Vec::new(),
        }
    }
}

fn digests_equal(p: &Server, r: &Server) -> Result<bool, String> {
    let (mut pc, mut rc) = (p.client()?, r.client()?);
    // Idle now: wait until the replica holds everything, then compare.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let want = num(&mut pc, "replication", "master_repl_offset")?;
        let got = num(&mut rc, "replication", "slave_repl_offset")?;
        if got == want || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let a = pc.cmd(&["DEBUG", "DIGEST"]).map_err(err)?.text();
    let b = rc.cmd(&["DEBUG", "DIGEST"]).map_err(err)?.text();
    Ok(a == b && !a.is_empty())
}

fn window(report: &Option<Report>, from: f64, to: f64) -> (f64, f64, u64, Vec<Second>) {
    let Some(rep) = report else {
        return (0.0, 0.0, 0, Vec::new());
    };
    let inside: Vec<&Second> = rep
        .per_second
        .iter()
        .filter(|s| (s.second as f64) > from && (s.second as f64 - 1.0) < to)
        .collect();
    (
        inside.iter().map(|s| s.p99_ms).fold(0.0, f64::max),
        inside.iter().map(|s| s.max_ms).fold(0.0, f64::max),
        rep.total.errors,
        rep.per_second.clone(),
    )
}

pub fn new_replica(bin: &Path, a: &ResyncArgs, dir: &Path) -> Result<Run, String> {
    let p = Server::start(bin, dir, "primary", a.primary_shards, None)?;
    populate(&p, a)?;
    let dataset = p
        .client()?
        .info_field("memory", "used_memory")
        .map_err(err)?
        .parse()
        .unwrap_or(0);
    let r = Server::start(bin, dir, "replica", a.replica_shards, None)?;
    let load = Load::start(p.port, a)?;
    if load.is_some() {
        std::thread::sleep(Duration::from_secs(2)); // a steady load before the sync starts
    }
    let before_p = sample(p.pid());
    let before_r = sample(r.pid());
    let t0 = Instant::now();
    let load_t0 = load
        .as_ref()
        .map_or(0.0, |l| (t0 - l.started).as_secs_f64());
    let mut rc = r.client()?;
    let v = rc
        .cmd(&["REPLICAOF", "127.0.0.1", &p.port.to_string()])
        .map_err(err)?;
    if let super::client::Value::Error(e) = v {
        return Err(format!("REPLICAOF: {e}"));
    }
    let w = watch(&p, &r, t0, Duration::from_secs(a.timeout))?;
    let after_p = sample(p.pid());
    let after_r = sample(r.pid());
    if load.is_some() {
        std::thread::sleep(Duration::from_secs(2));
    }
    let report = load.map(Load::finish).transpose()?;
    let (p99, max, errors, per_second) = window(&report, load_t0, load_t0 + w.caught_up);
    let mut pc = p.client()?;
    let base = Measured {
        scenario: "new-replica",
        bin,
        kind: p.kind,
        dataset,
        w: &w,
        serving: (before_p, after_p),
        syncing: (before_r, after_r),
    }
    .run(a);
    Ok(Run {
        sync_p99_ms: p99,
        sync_max_ms: max,
        load_errors: errors,
        full_syncs: num(&mut pc, "stats", "sync_full")?,
        partial_syncs: num(&mut pc, "stats", "sync_partial_ok")?,
        data_equal: digests_equal(&p, &r)?,
        per_second,
        phases: vec![("sync".into(), load_t0, load_t0 + w.caught_up)],
        ..base
    })
}

/// A populated primary and a replica already caught up with it; and the primary's used_memory.
fn synced_pair(bin: &Path, a: &ResyncArgs, dir: &Path) -> Result<(Server, Server, u64), String> {
    synced_pair_via(bin, a, dir, None).map(|(p, r, d, _)| (p, r, d))
}

/// `synced_pair`, optionally with the replica reaching its primary through a relay that can cut the link.
fn synced_pair_via(
    bin: &Path,
    a: &ResyncArgs,
    dir: &Path,
    relay: Option<()>,
) -> Result<(Server, Server, u64, Option<super::proxy::Proxy>), String> {
    let p = Server::start(bin, dir, "primary", a.primary_shards, None)?;
    populate(&p, a)?;
    let dataset = p
        .client()?
        .info_field("memory", "used_memory")
        .map_err(err)?
        .parse()
        .unwrap_or(0);
    let r = Server::start(bin, dir, "replica", a.replica_shards, None)?;
    let proxy = relay
        .map(|_| super::proxy::Proxy::start(p.port).map_err(err))
        .transpose()?;
    let via = proxy.as_ref().map_or(p.port, |x| x.port);
    r.client()?
        .cmd(&["REPLICAOF", "127.0.0.1", &via.to_string()])
        .map_err(err)?;
    watch(&p, &r, Instant::now(), Duration::from_secs(a.timeout))?;
    Ok((p, r, dataset, proxy))
}

pub fn partial(bin: &Path, a: &ResyncArgs, dir: &Path) -> Result<Run, String> {
    let (p, r, dataset, proxy) = synced_pair_via(bin, a, dir, (a.cut_seconds > 0.0).then_some(()))?;
    let mut rc = r.client()?;
    let mut pc = p.client()?;
    let full_before = num(&mut pc, "stats", "sync_full")?;
    let partial_before = num(&mut pc, "stats", "sync_partial_ok")?;
    let load = Load::start(p.port, a)?;
    if load.is_some() {
        std::thread::sleep(Duration::from_secs(2));
    }
    let before_p = sample(p.pid());
    let before_r = sample(r.pid());
    let load_start = load.as_ref().map(|l| l.started);
    let mut phases = Vec::new();
    if let Some(x) = &proxy {
        // A partition of the chosen length; recovery is measured from its end.
        let cut_at = Instant::now();
        x.cut();
        std::thread::sleep(Duration::from_secs_f64(a.cut_seconds));
        x.resume();
        if let Some(s) = load_start {
            phases.push((
                "link cut".to_string(),
                (cut_at - s).as_secs_f64(),
                s.elapsed().as_secs_f64(),
            ));
        }
    } else {
        rc.cmd(&["CLIENT", "KILL", "TYPE", "master"]).map_err(err)?;
    }
    let t0 = Instant::now();
    let load_t0 = load_start.map_or(0.0, |s| (t0 - s).as_secs_f64());
    // The link must go down before "up" means anything.
    let deadline = Instant::now() + Duration::from_secs(10);
    while rc
        .info_field("replication", "master_link_status")
        .map_err(err)?
        == "up"
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(1));
    }
    let w = watch(&p, &r, t0, Duration::from_secs(a.timeout))?;
    let after_p = sample(p.pid());
    let after_r = sample(r.pid());
    if load.is_some() {
        std::thread::sleep(Duration::from_secs(2));
    }
    let report = load.map(Load::finish).transpose()?;
    let (p99, max, errors, per_second) = window(&report, load_t0, load_t0 + w.caught_up);
    let base = Measured {
        scenario: "partial",
        bin,
        kind: p.kind,
        dataset,
        w: &w,
        serving: (before_p, after_p),
        syncing: (before_r, after_r),
    }
    .run(a);
    phases.push(("back → caught up".into(), load_t0, load_t0 + w.caught_up));
    Ok(Run {
        sync_p99_ms: p99,
        sync_max_ms: max,
        load_errors: errors,
        full_syncs: num(&mut pc, "stats", "sync_full")? - full_before,
        partial_syncs: num(&mut pc, "stats", "sync_partial_ok")? - partial_before,
        data_equal: digests_equal(&p, &r)?,
        per_second,
        phases,
        ..base
    })
}

pub fn chart(run: &Run) -> String {
    let phases: Vec<Phase> = run
        .phases
        .iter()
        .map(|(n, a, b)| Phase {
            name: n.clone(),
            from: *a,
            to: *b,
        })
        .collect();
    svg(
        &format!(
            "{} {:?}: {} keys, {} B values, load {} SET/s, caught up in {:.2} s",
            run.scenario, run.kind, run.keys, run.value_size, run.load_rate, run.caught_up_s
        ),
        &run.per_second,
        &phases,
    )
}

/// rejoin-old-primary: primary P with replica R under a write probe; P is killed (SIGKILL), R promoted,
/// P restarted (empty: no persistence) and made R's replica. Measures from P's restart until it is
/// caught up, and the writes the probe's client saw throughout.
pub fn rejoin(bin: &Path, a: &ResyncArgs, dir: &Path) -> Result<Run, String> {
    let (mut p, r, dataset) = synced_pair(bin, a, dir)?;
    let mut rc = r.client()?;
    let probe = super::probe::Probe::start(p.port, a.load_rate.max(1000));
    std::thread::sleep(Duration::from_secs(2));
    let probe_start = probe.started;
    let at = |t: Instant| (t - probe_start).as_secs_f64();
    let t_kill = Instant::now();
    p.kill();
    // The orchestrator's part: promote the replica and send the clients there.
    rc.cmd(&["REPLICAOF", "NO", "ONE"]).map_err(err)?;
    probe.target.store(r.port, Ordering::Relaxed);
    let t_promoted = Instant::now();
    std::thread::sleep(Duration::from_secs(1));
    let before_r = sample(r.pid());
    let t_restart = Instant::now();
    p.restart()?;
    p.wait_ready(Duration::from_secs(60))?;
    let before_p = sample(p.pid());
    let mut pc = p.client()?;
    let v = pc
        .cmd(&["REPLICAOF", "127.0.0.1", &r.port.to_string()])
        .map_err(err)?;
    if let super::client::Value::Error(e) = v {
        return Err(format!("REPLICAOF: {e}"));
    }
    // Here the restarted P is the replica and R the primary.
    let w = watch(&r, &p, t_restart, Duration::from_secs(a.timeout))?;
    let t_caught = t_restart + Duration::from_secs_f64(w.caught_up);
    let after_p = sample(p.pid());
    let after_r = sample(r.pid());
    std::thread::sleep(Duration::from_secs(2));
    let rep = probe.finish();
    let inside: Vec<&Second> = rep
        .per_second
        .iter()
        .filter(|s| (s.second as f64) > at(t_restart) && (s.second as f64 - 1.0) < at(t_caught))
        .collect();
    let mut c = r.client()?;
    // Here R (the promoted replica) serves and the restarted P syncs.
    let base = Measured {
        scenario: "rejoin-old-primary",
        bin,
        kind: p.kind,
        dataset,
        w: &w,
        serving: (before_r, after_r),
        syncing: (before_p, after_p),
    }
    .run(a);
    Ok(Run {
        load_rate: a.load_rate.max(1000),
        sync_p99_ms: inside.iter().map(|s| s.p99_ms).fold(0.0, f64::max),
        sync_max_ms: inside.iter().map(|s| s.max_ms).fold(0.0, f64::max),
        load_errors: rep.failed,
        full_syncs: num(&mut c, "stats", "sync_full")?,
        partial_syncs: num(&mut c, "stats", "sync_partial_ok")?,
        data_equal: digests_equal(&r, &p)?,
        write_gap_s: rep.longest_gap_s,
        per_second: rep.per_second,
        phases: vec![
            (
                "primary killed → replica promoted".into(),
                at(t_kill),
                at(t_promoted),
            ),
            (
                "old primary restarted → caught up".into(),
                at(t_restart),
                at(t_caught),
            ),
        ],
        ..base
    })
}
