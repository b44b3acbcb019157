//! Per-shard counters; INFO sums them over shards.

use std::collections::HashMap;

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
    pub per_cmd: HashMap<&'static str, CmdStat>,
    pub hits: u64,
    pub misses: u64,
    pub connections_received: u64,
    pub rejected_connections: u64,
    pub net_input_bytes: u64,
    pub net_output_bytes: u64,
    pub error_replies: u64,
}

impl Stats {
    pub fn call(&mut self, name: &'static str, usec: u64, failed: bool) {
        self.commands += 1;
        let s = self.per_cmd.entry(name).or_default();
        s.calls += 1;
        s.usec += usec;
        if failed {
            s.failed += 1;
            self.error_replies += 1;
        }
    }

    pub fn rejected(&mut self, name: &'static str) {
        self.per_cmd.entry(name).or_default().rejected += 1;
        self.error_replies += 1;
    }

    pub fn hit(&mut self, hit: bool) {
        if hit {
            self.hits += 1;
        } else {
            self.misses += 1;
        }
    }

    pub fn merge(&mut self, o: &Stats) {
        self.commands += o.commands;
        for (k, v) in &o.per_cmd {
            let s = self.per_cmd.entry(k).or_default();
            s.calls += v.calls;
            s.usec += v.usec;
            s.rejected += v.rejected;
            s.failed += v.failed;
        }
        self.hits += o.hits;
        self.misses += o.misses;
        self.connections_received += o.connections_received;
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
