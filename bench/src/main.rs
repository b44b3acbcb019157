//! `tandem-bench load ...`: see `tandem-bench --help`.

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "tandem-bench",
    version,
    about = "Load generator and resync scenarios for Tandem and other Redis-compatible servers"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// memtier_benchmark-style load: ops/s, latency percentiles, errors by prefix.
    Load(tandem_bench::load::options::LoadArgs),
    /// Replica (re)synchronisation scenarios on servers it starts itself: new-replica, partial.
    Resync(tandem_bench::resync::ResyncArgs),
    /// What replication costs a write: WAIT latency after a SET, stream bytes per SET and INCR.
    ReplCost(tandem_bench::replcost::ReplCostArgs),
    /// Durability mode: throughput and latency, grant pauses, time to eligible after a restart.
    Durability(tandem_bench::durability::DurabilityArgs),
    /// The fault suite: kills, stops, cut links and promotions under a checked register workload.
    Faults(tandem_bench::faults::FaultArgs),
    /// Failover mode: kill -9 until writes are acknowledged again, the old primary's rejoin, the cost.
    Failover(tandem_bench::failover::FailoverArgs),
}

fn main() {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Resync(args) => {
            if let Err(e) = tandem_bench::resync::run(args) {
                eprintln!("tandem-bench: {e}");
                std::process::exit(1);
            }
        }
        Cmd::Faults(args) => match tandem_bench::faults::run(args) {
            Ok(r) => {
                tandem_bench::faults::print(&r);
                let durable = r.wait_all || r.durability;
                if !r.verdict.clean(durable) || !r.digests_equal {
                    std::process::exit(2);
                }
            }
            Err(e) => {
                eprintln!("tandem-bench: {e}");
                std::process::exit(1);
            }
        },
        Cmd::Failover(args) => {
            if let Err(e) = tandem_bench::failover::run(args) {
                eprintln!("tandem-bench: {e}");
                std::process::exit(1);
            }
        }
        Cmd::Durability(args) => {
            if let Err(e) = tandem_bench::durability::run(args) {
                eprintln!("tandem-bench: {e}");
                std::process::exit(1);
            }
        }
        Cmd::ReplCost(args) => {
            if let Err(e) = tandem_bench::replcost::run(args) {
                eprintln!("tandem-bench: {e}");
                std::process::exit(1);
            }
        }
        Cmd::Load(args) => match tandem_bench::load::run(args) {
            Ok(report) => {
                if report.total.errors > 0 {
                    std::process::exit(2);
                }
            }
            Err(e) => {
                eprintln!("tandem-bench: {e}");
                std::process::exit(1);
            }
        },
    }
}
