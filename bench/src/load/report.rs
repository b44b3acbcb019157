//! The end-of-run report: per kind and total, plus the per-second series; printed and written as JSON.

use super::options::LoadArgs;
use super::stats::Summary;
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Serialize)]
pub struct Second {
    pub second: u64,
    pub ops: u64,
    pub errors: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub options: LoadArgs,
    pub seconds: f64,
    pub total: Summary,
    pub per_command: BTreeMap<String, Summary>,
    pub errors_by_prefix: BTreeMap<String, u64>,
    pub per_second: Vec<Second>,
}

impl Report {
    pub fn print(&self) {
        println!();
        println!(
            "{:<8} {:>12} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9} {:>8}",
            "Type",
            "Ops/sec",
            "Count",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "p99.9 ms",
            "max ms",
            "Errors"
        );
        let row = |name: &str, s: &Summary| {
            println!(
                "{:<8} {:>12.2} {:>10} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>8}",
                name,
                s.ops_per_sec,
                s.count,
                s.p50_ms,
                s.p90_ms,
                s.p99_ms,
                s.p999_ms,
                s.max_ms,
                s.errors
            )
        };
        for (name, s) in &self.per_command {
            row(name, s);
        }
        row("Totals", &self.total);
        for (prefix, n) in &self.errors_by_prefix {
            println!("errors -{prefix}: {n}");
        }
    }
}
