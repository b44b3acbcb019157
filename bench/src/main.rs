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
