//! Per-shard counters; INFO sums them over shards.

use crate::cmd::{Spec, TABLE};

#[derive(Debug, Clone, Copy, Default)]
pub struct CmdStat {
    pub calls: u64,
    pub usec: u64,
    pub rejected: u64,
    pub failed: u64,
}

#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub commands: u64,
    /// Indexed by `Spec::index()`; empty until the first command.
    pub per_cmd: Vec<CmdStat>,
    pub hits: u64,
    pub misses: u64,
    pub connections_received: u64,
    /// Connections this shard handed to another (server/migrate.rs).
    pub migrated_connections: u64,
    pub rejected_connections: u64,
    pub net_input_bytes: u64,
    pub net_output_bytes: u64,
    pub error_replies: u64,
}

impl Stats {
    fn slot(&mut self, spec: &'static Spec) -> &mut CmdStat {
        if self.per_cmd.is_empty() {
            self.per_cmd = vec![CmdStat::default(); TABLE.len()];
        }
        &mut self.per_cmd[spec.index()]
    }

    pub fn call(&mut self, spec: &'static Spec, failed: bool) {
        self.commands += 1;
        let s = self.slot(spec);
        s.calls += 1;
        if failed {
            s.failed += 1;
            self.error_replies += 1;
        }
    }

    /// Time is measured per batch of commands and shared among them (one clock read per batch, not two
    /// per command); totals stay exact, per-call averages are approximate within a batch.
    pub fn add_usec(&mut self, spec: &'static Spec, usec: u64) {
        self.slot(spec).usec += usec;
    }

    pub fn rejected(&mut self, spec: &'static Spec) {
        self.slot(spec).rejected += 1;
        self.error_replies += 1;
    }

    pub fn merge(&mut self, o: &Stats) {
        self.commands += o.commands;
        if self.per_cmd.is_empty() && !o.per_cmd.is_empty() {
            self.per_cmd = vec![CmdStat::default(); TABLE.len()];
        }
        for (s, v) in self.per_cmd.iter_mut().zip(&o.per_cmd) {
            s.calls += v.calls;
            s.usec += v.usec;
            s.rejected += v.rejected;
            s.failed += v.failed;
        }
        self.hits += o.hits;
        self.misses += o.misses;
        self.connections_received += o.connections_received;
        self.migrated_connections += o.migrated_connections;
        self.rejected_connections += o.rejected_connections;
        self.net_input_bytes += o.net_input_bytes;
        self.net_output_bytes += o.net_output_bytes;
        self.error_replies += o.error_replies;
    }

    /// CONFIG RESETSTAT.
    pub fn reset(&mut self) {
        *self = Stats::default();
    }
}
