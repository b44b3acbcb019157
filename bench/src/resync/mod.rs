//! `tandem-bench resync`: scenarios that start their own servers on free loopback ports and measure how
//! fast a replica is back, what it costs the primary, and whether the data ended equal.
//!
//! - `server`: processes of any Redis-compatible binary, their configuration and /proc figures;
//! - `client`: a small blocking RESP client for control traffic;
//! - `scenario`: new-replica, partial and rejoin-old-primary; `probe`: the rejoin scenario's writer;
//!   `proxy`: the relay that cuts a replication link for a chosen time;
//! - `chart`: the SVG of ops/s and p99 per second with the phases shaded.

pub mod chart;
pub mod client;
pub mod probe;
pub mod proxy;
pub mod scenario;
pub mod server;

use scenario::Run;
use std::path::PathBuf;

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Scenario {
    NewReplica,
    Partial,
    RejoinOldPrimary,
}

#[derive(clap::Args, Debug, Clone, serde::Serialize)]
pub struct ResyncArgs {
    #[arg(value_enum)]
    pub scenario: Scenario,
    /// The server binary (tandem-server, redis-server, valkey-server).
    #[arg(long, default_value = "target/release/tandem-server")]
    pub server_bin: PathBuf,
    /// A second binary run alternately with the first; ratios are printed at the end.
    #[arg(long)]
    pub compare: Option<PathBuf>,
    #[arg(long, default_value_t = 1_000_000)]
    pub keys: u64,
    #[arg(long, default_value_t = 100)]
    pub value_size: usize,
    /// Random (incompressible) values written by the bench instead of DEBUG POPULATE's.
    #[arg(long)]
    pub random_values: bool,
    /// Hashes instead of strings: each of the --keys keys a hash of this many fields (`f<j>`), each value
    /// --value-size bytes, written by pipelined HSETs.
    #[arg(long, default_value_t = 0)]
    pub hash_fields: usize,
    /// SET/s on the primary during the measurement (0 = idle; the rejoin probe writes at least 1000/s).
    #[arg(long, default_value_t = 0)]
    pub load_rate: u64,
    /// Shards of Tandem's primary (other servers have one thread).
    #[arg(long, default_value_t = 2)]
    pub primary_shards: usize,
    #[arg(long, default_value_t = 2)]
    pub replica_shards: usize,
    /// Runs per binary; medians are reported.
    #[arg(long, default_value_t = 1)]
    pub rounds: usize,
    /// partial: cut the link for this long through a relay (0: kill it with CLIENT KILL TYPE master).
    #[arg(long, default_value_t = 0.0)]
    pub cut_seconds: f64,
    /// Seconds before a sync counts as failed.
    #[arg(long, default_value_t = 600)]
    pub timeout: u64,
    /// Where the JSON report and the charts go.
    #[arg(long, default_value = "resync-out")]
    pub out_dir: PathBuf,
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

#[derive(serde::Serialize)]
struct Summary {
    server: String,
    runs: usize,
    link_up_s: f64,
    caught_up_s: f64,
    primary_rss_growth_mb: f64,
    primary_fork_private_mb: f64,
    sync_p99_ms: f64,
    primary_cpu_s: f64,
    replica_cpu_s: f64,
    all_data_equal: bool,
}

fn summarize(server: &str, runs: &[Run]) -> Summary {
    let m = |f: fn(&Run) -> f64| median(runs.iter().map(f).collect());
    Summary {
        server: server.into(),
        runs: runs.len(),
        link_up_s: m(|r| r.link_up_s),
        caught_up_s: m(|r| r.caught_up_s),
        primary_rss_growth_mb: m(|r| r.primary_rss_growth_bytes as f64 / 1e6),
        primary_fork_private_mb: m(|r| r.primary_fork_private_bytes as f64 / 1e6),
        sync_p99_ms: m(|r| r.sync_p99_ms),
        primary_cpu_s: m(|r| r.primary_cpu_s),
        replica_cpu_s: m(|r| r.replica_cpu_s),
        all_data_equal: runs.iter().all(|r| r.data_equal),
    }
}

pub fn run(a: ResyncArgs) -> Result<(), String> {
    if a.rounds == 0 || a.keys == 0 {
        return Err("--rounds and --keys must be at least 1".into());
    }
    std::fs::create_dir_all(&a.out_dir).map_err(|e| format!("{}: {e}", a.out_dir.display()))?;
    let mut bins = vec![a.server_bin.clone()];
    bins.extend(a.compare.clone());
    for b in &bins {
        server::Kind::of(b)?;
    }
    let mut runs: Vec<Vec<Run>> = bins.iter().map(|_| Vec::new()).collect();
    for round in 0..a.rounds {
        // Alternate which binary goes first, so drift on a noisy machine hurts both alike.
        let order: Vec<usize> = if round % 2 == 0 {
            (0..bins.len()).collect()
        } else {
            (0..bins.len()).rev().collect()
        };
        for i in order {
            let bin = &bins[i];
            let work = a
                .out_dir
                .join(format!("work-{}-{round}-{i}", std::process::id()));
            let res = match a.scenario {
                Scenario::NewReplica => scenario::new_replica(bin, &a, &work),
                Scenario::Partial => scenario::partial(bin, &a, &work),
                Scenario::RejoinOldPrimary => scenario::rejoin(bin, &a, &work),
            };
            let _ = std::fs::remove_dir_all(&work);
            let run = res.map_err(|e| format!("{} round {round}: {e}", bin.display()))?;
            eprintln!(
                "round {round} {:?}: link up {:.3} s, caught up {:.3} s, primary RSS +{:.1} MB (fork private {:.1} MB), sync p99 {:.2} ms, full {} partial {}, data equal {}",
                run.kind,
                run.link_up_s,
                run.caught_up_s,
                run.primary_rss_growth_bytes as f64 / 1e6,
                run.primary_fork_private_bytes as f64 / 1e6,
                run.sync_p99_ms,
                run.full_syncs,
                run.partial_syncs,
                run.data_equal
            );
            let name = format!("{:?}-{:?}-{round}", a.scenario, run.kind).to_lowercase();
            std::fs::write(a.out_dir.join(format!("{name}.svg")), scenario::chart(&run))
                .map_err(|e| e.to_string())?;
            runs[i].push(run);
        }
    }
    let summaries: Vec<Summary> = bins
        .iter()
        .zip(&runs)
        .map(|(b, r)| summarize(&b.display().to_string(), r))
        .collect();
    println!(
        "{:<40} {:>6} {:>10} {:>11} {:>12} {:>10} {:>9} {:>8} {:>8} {:>6}",
        "server",
        "runs",
        "link up s",
        "caught up s",
        "prim RSS MB",
        "fork MB",
        "p99 ms",
        "CPU P s",
        "CPU R s",
        "equal"
    );
    for s in &summaries {
        println!(
            "{:<40} {:>6} {:>10.3} {:>11.3} {:>12.1} {:>10.1} {:>9.2} {:>8.2} {:>8.2} {:>6}",
            s.server,
            s.runs,
            s.link_up_s,
            s.caught_up_s,
            s.primary_rss_growth_mb,
            s.primary_fork_private_mb,
            s.sync_p99_ms,
            s.primary_cpu_s,
            s.replica_cpu_s,
            s.all_data_equal
        );
    }
    if summaries.len() == 2 {
        println!(
            "ratio (second / first): caught up {:.2}x, link up {:.2}x",
            summaries[1].caught_up_s / summaries[0].caught_up_s,
            summaries[1].link_up_s / summaries[0].link_up_s
        );
    }
    let json = serde_json::json!({ "options": a, "summaries": summaries, "runs": runs });
    let path = a
        .out_dir
        .join(format!("{:?}.json", a.scenario).to_lowercase());
    std::fs::write(
        &path,
        serde_json::to_string_pretty(&json).map_err(|e| e.to_string())?,
    )
    .map_err(|e| format!("{}: {e}", path.display()))?;
    println!("report: {}", path.display());
    if runs.iter().flatten().any(|r| !r.data_equal) {
        return Err("a replica ended with data different from its primary".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(vec![]).is_nan());
    }
}
