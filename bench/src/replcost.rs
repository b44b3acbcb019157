//! `tandem-bench repl-cost`: what replication costs a write, measured on servers it starts itself (a
//! primary and one replica of any Redis-compatible binary, alternating with `--compare`):
//! - WAIT latency: one client does `SET` then `WAIT 1 0`, sequentially; the time of each WAIT (how long
//!   until the replica acknowledged the write) and of the pair, as p50/p99;
//! - stream bytes: how far the primary's replication offset moves per `SET` of `--value-size` bytes and per
//!   `INCR`, one command per request, and per SET in pipelines of 16.

use crate::resync::client::Client;
use crate::resync::server::Server;
use hdrhistogram::Histogram;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug, Clone)]
pub struct ReplCostArgs {
    /// The server binary (tandem-server, redis-server, valkey-server).
    #[arg(long, default_value = "target/release/tandem-server")]
    pub server_bin: PathBuf,
    /// A second binary measured alternately with the first.
    #[arg(long)]
    pub compare: Option<PathBuf>,
    /// SET + WAIT pairs per round.
    #[arg(long, default_value_t = 20_000)]
    pub requests: u64,
    #[arg(long, default_value_t = 100)]
    pub value_size: usize,
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Tandem's shards on each side.
    #[arg(long, default_value_t = 2)]
    pub shards: usize,
    #[arg(long, default_value = "target/perf/repl-cost")]
    pub out_dir: PathBuf,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Figures {
    pub wait_p50_us: f64,
    pub wait_p99_us: f64,
    pub pair_p50_us: f64,
    pub pair_p99_us: f64,
    pub bytes_per_set: f64,
    pub bytes_per_incr: f64,
    pub bytes_per_pipelined_set: f64,
}

fn offset(c: &mut Client) -> Result<i64, String> {
    c.info_field("replication", "master_repl_offset")
        .map_err(|e| e.to_string())?
        .parse()
        .map_err(|e| format!("master_repl_offset: {e}"))
}

fn check(v: std::io::Result<crate::resync::client::Value>) -> Result<String, String> {
    match v.map_err(|e| e.to_string())? {
        crate::resync::client::Value::Error(e) => Err(e),
        v => Ok(v.text()),
    }
}

/// Waits until the replica's link is up and it holds everything the primary logged.
fn caught_up(p: &mut Client, r: &mut Client) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        let want = offset(p)?;
        let link = r
            .info_field("replication", "master_link_status")
            .map_err(|e| e.to_string())?;
        let have: i64 = r
            .info_field("replication", "slave_repl_offset")
            .map_err(|e| e.to_string())?
            .parse()
            .unwrap_or(-1);
        if link == "up" && have >= want {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Err("the replica did not catch up within 120 s".into())
}

/// One round on `bin`: a fresh primary and replica.
pub fn measure(
    args: &ReplCostArgs,
    bin: &std::path::Path,
    round: usize,
) -> Result<Figures, String> {
    let dir = args.out_dir.join(format!("round-{round}"));
    let primary = Server::start(bin, &dir, "primary", args.shards, None)?;
    let replica = Server::start(bin, &dir, "replica", args.shards, None)?;
    let (mut p, mut r) = (primary.client()?, replica.client()?);
    check(r.cmd(&["REPLICAOF", "127.0.0.1", &primary.port.to_string()]))?;
    check(p.cmd(&["SET", "warm", "up"]))?;
    caught_up(&mut p, &mut r)?;
    let value = "v".repeat(args.value_size);
    let mut wait = Histogram::<u64>::new(3).expect("histogram");
    let mut pair = Histogram::<u64>::new(3).expect("histogram");
    for i in 0..args.requests {
        let t0 = Instant::now();
        check(p.cmd(&["SET", &format!("key:{:012}", i % 100_000), &value]))?;
        let t1 = Instant::now();
        let n = check(p.cmd(&["WAIT", "1", "0"]))?;
        let t2 = Instant::now();
        if n != "1" {
            return Err(format!("WAIT 1 0 answered {n}"));
        }
        wait.record((t2 - t1).as_micros() as u64).ok();
        pair.record((t2 - t0).as_micros() as u64).ok();
    }
    // Stream bytes: offsets move by what the primary logs (Tandem: units; Valkey/Redis: RESP commands).
    let n = 10_000u64;
    caught_up(&mut p, &mut r)?;
    let o0 = offset(&mut p)?;
    for i in 0..n {
        check(p.cmd(&["SET", &format!("key:{:012}", i), &value]))?;
    }
    let o1 = offset(&mut p)?;
    for i in 0..n {
        check(p.cmd(&["INCR", &format!("ctr:{:012}", i % 1000)]))?;
    }
    let o2 = offset(&mut p)?;
    let batch: Vec<Vec<Vec<u8>>> = (0..16)
        .map(|j| {
            vec![
                b"SET".to_vec(),
                format!("key:{:012}", j).into_bytes(),
                value.clone().into_bytes(),
            ]
        })
        .collect();
    for _ in 0..n / 16 {
        p.pipeline(&batch).map_err(|e| e.to_string())?;
    }
    let o3 = offset(&mut p)?;
    let pct = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64;
    Ok(Figures {
        wait_p50_us: pct(&wait, 0.5),
        wait_p99_us: pct(&wait, 0.99),
        pair_p50_us: pct(&pair, 0.5),
        pair_p99_us: pct(&pair, 0.99),
        bytes_per_set: (o1 - o0) as f64 / n as f64,
        bytes_per_incr: (o2 - o1) as f64 / n as f64,
        bytes_per_pipelined_set: (o3 - o2) as f64 / (n / 16 * 16) as f64,
    })
}

/// The median of `v` (NaN if empty).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn medians(f: &[Figures]) -> Figures {
    let m = |g: fn(&Figures) -> f64| median(f.iter().map(g).collect());
    Figures {
        wait_p50_us: m(|x| x.wait_p50_us),
        wait_p99_us: m(|x| x.wait_p99_us),
        pair_p50_us: m(|x| x.pair_p50_us),
        pair_p99_us: m(|x| x.pair_p99_us),
        bytes_per_set: m(|x| x.bytes_per_set),
        bytes_per_incr: m(|x| x.bytes_per_incr),
        bytes_per_pipelined_set: m(|x| x.bytes_per_pipelined_set),
    }
}

fn print(name: &str, f: &Figures) {
    println!(
        "{name}: WAIT p50 {:.0} us p99 {:.0} us; SET+WAIT p50 {:.0} us p99 {:.0} us; \
         stream bytes per SET {:.1}, per INCR {:.1}, per pipelined SET {:.1}",
        f.wait_p50_us,
        f.wait_p99_us,
        f.pair_p50_us,
        f.pair_p99_us,
        f.bytes_per_set,
        f.bytes_per_incr,
        f.bytes_per_pipelined_set
    );
}

pub fn run(args: ReplCostArgs) -> Result<(), String> {
    let bins: Vec<PathBuf> = std::iter::once(args.server_bin.clone())
        .chain(args.compare.clone())
        .collect();
    let mut all: Vec<Vec<Figures>> = bins.iter().map(|_| Vec::new()).collect();
    for round in 0..args.rounds {
        for (i, bin) in bins.iter().enumerate() {
            let f = measure(&args, bin, round * bins.len() + i)?;
            print(&format!("round {round} {}", bin.display()), &f);
            all[i].push(f);
        }
    }
    let meds: Vec<Figures> = all.iter().map(|f| medians(f)).collect();
    for (bin, m) in bins.iter().zip(&meds) {
        print(&format!("median {}", bin.display()), m);
    }
    if meds.len() == 2 {
        println!(
            "ratio first/second: WAIT p50 {:.2}x p99 {:.2}x; stream bytes per SET {:.2}x, per INCR {:.2}x",
            meds[0].wait_p50_us / meds[1].wait_p50_us,
            meds[0].wait_p99_us / meds[1].wait_p99_us,
            meds[0].bytes_per_set / meds[1].bytes_per_set,
            meds[0].bytes_per_incr / meds[1].bytes_per_incr,
        );
    }
    Ok(())
}
