//! Replication, server side (docs/replication.md). The storage-agnostic machinery (frames, backlog,
//! snapshot records, spool, acks, PSYNC rule) lives in tandem-sync; this module plugs it into shards.
//!
//! Module map:
//! - `state`: a shard's log backlog, offset and identity (what is logged: shard/log.rs).
//! - `apply`: how a replica applies log units (routing, atomic groups, the one execution path).
//! - `durability_cmd`: DURABILITY STATUS and FORGET.
//! - `durable`: durability mode on one shard: its commit point, held replies and dirty keys.
//! - `eligibility`: durability mode's eligible set, granted and revoked by shard 0.
//! - `group`: failover: the replication group's control plane on shard 0 and the data path obeying it.
//! - `registry`: the primary's replicas, their acks and WAIT's waiters (owned by shard 0).
//! - `primary`: the control session of a replica and the per-shard snapshot and journal flows.
//! - `replica`: the controller of a replica's link and the flows that load and apply.
//! - `commands`: REPLICAOF/SLAVEOF, ROLE, WAIT, REPLCONF, PSYNC, TFLOW and INFO replication.
//! - `net`: socket helpers of the streams.

pub mod apply;
pub mod commands;
pub mod durability_cmd;
pub mod durable;
pub mod eligibility;
pub mod group;
pub mod net;
pub mod primary;
pub mod registry;
pub mod replica;
pub mod state;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use tandem_sync::replid::ReplId;

/// Process-wide replication flags every connection reads (atomics, written by shard 0's controller and
/// cron, by REPLICAOF, and by CONFIG SET through `gate::update`).
#[derive(Default)]
pub struct ReplShared {
    pub is_replica: AtomicBool,
    pub loading: AtomicBool,
    pub link_up: AtomicBool,
    /// Replicas that acknowledged within min-replicas-max-lag (shard 0's cron).
    pub good_replicas: AtomicUsize,
    /// What clients are refused, as `gate` bits; 0 on a healthy primary, so the hot path pays one load.
    pub gate: AtomicU8,
    /// debug-repl-corrupt-chunk fired already.
    pub corrupted: AtomicBool,
    /// Primary, durability mode: replicas eligible now, and durability-replicas (shard 0 writes both).
    pub eligible: AtomicUsize,
    pub durability_need: AtomicUsize,
    /// Replica: this node was granted eligibility by its primary for the current link (`session`).
    pub self_eligible: AtomicBool,
    pub session: AtomicU64,
    /// Failover (docs/failover.md): this data node is a member of a replication group, so as primary it
    /// serves only under its lease: until `serve_until` (runtime::mono_ms), which shard 0's group driver
    /// publishes and which is 0 while it may not serve.
    pub group: AtomicBool,
    pub serve_until: AtomicU64,
    /// The group epoch this node's record is at, and the newest epoch a replica said it knows (in its
    /// handshake or acks): a primary whose record is older than that stops serving at once, before its
    /// record catches up (repl/group).
    pub epoch: AtomicU64,
    pub fence_epoch: AtomicU64,
    /// The first WAL write or sync failure (docs/persistence.md): writes are refused with MISCONF.
    pub wal_error: std::sync::OnceLock<String>,
    /// Shards still recovering from disk at start-up: clients get LOADING meanwhile.
    pub recovering: AtomicUsize,
    /// A snapshot is being saved (SAVE, BGSAVE, a replica's full sync); the last one's outcome and time.
    pub saving: AtomicBool,
    pub last_save_ok: AtomicBool,
    pub last_save_s: AtomicU64,
}

impl ReplShared {
    /// Failover mode, primary side: a replica knows epoch `e`. Newer than this node's record: it is
    /// deposed, and serves nothing from now on (true then).
    pub fn fence(&self, e: u64) -> bool {
        if !self.group.load(Ordering::Acquire) || e <= self.epoch.load(Ordering::Acquire) {
            return false;
        }
        self.fence_epoch.fetch_max(e, Ordering::AcqRel);
        self.serve_until.store(0, Ordering::Release);
        true
    }
}

/// A replica's link, as shard 0 knows it (INFO, ROLE).
pub struct LinkStatus {
    pub host: String,
    pub port: u16,
    pub gen: u64,
    pub up: bool,
    pub last_io_ms: u64,
    pub progress: Option<Arc<replica::SyncProgress>>,
    pub replid: Option<ReplId>,
    pub primary_shards: usize,
    /// Where a reconnect continues from: the primary's id and every primary shard's applied offset.
    pub cached: Option<(ReplId, Vec<u64>)>,
}

impl LinkStatus {
    pub fn new(host: String, port: u16, gen: u64, cached: Option<(ReplId, Vec<u64>)>) -> Self {
        LinkStatus {
            host,
            port,
            gen,
            up: false,
            last_io_ms: 0,
            progress: None,
            replid: None,
            primary_shards: 0,
            cached,
        }
    }
}

pub mod gate {
    use super::*;
    use crate::config::Settings;
    use crate::runtime::Shared;

    pub const LOADING: u8 = 1;
    pub const READONLY: u8 = 2;
    pub const MASTERDOWN: u8 = 4;
    pub const NOREPLICAS: u8 = 8;
    /// Durability mode with fewer eligible replicas than durability-replicas.
    pub const NOELIGIBLE: u8 = 16;
    /// A primary in a replication group: it serves only while its lease lasts (checked per command).
    pub const LEASE: u8 = 32;
    /// The WAL failed: writes are refused (persist/wal.rs).
    pub const MISCONF: u8 = 64;

    /// Recomputes what clients are refused from the flags and the settings.
    pub fn update(shared: &Shared, s: &Settings) {
        let r = &shared.repl;
        let replica = r.is_replica.load(Ordering::Acquire);
        let mut g = 0;
        if replica && r.loading.load(Ordering::Acquire) || r.recovering.load(Ordering::Acquire) > 0
        {
            g |= LOADING;
        }
        if r.wal_error.get().is_some() {
            g |= MISCONF;
        }
        if replica && s.replica_read_only {
            g |= READONLY;
        }
        if replica && !r.link_up.load(Ordering::Acquire) && !s.replica_serve_stale_data {
            g |= MASTERDOWN;
        }
        if !replica
            && s.min_replicas_to_write > 0
            && r.good_replicas.load(Ordering::Acquire) < s.min_replicas_to_write
        {
            g |= NOREPLICAS;
        }
        if !replica && r.group.load(Ordering::Acquire) {
            g |= LEASE;
        }
        r.durability_need
            .store(s.durability_replicas, Ordering::Release);
        if !replica && s.durability && r.eligible.load(Ordering::Acquire) < s.durability_replicas {
            g |= NOELIGIBLE;
        }
        r.gate.store(g, Ordering::Release);
    }

    /// The error a command gets under gate `g`, if any (Valkey's texts; durability mode's own).
    pub fn refusal(
        g: u8,
        spec: &crate::cmd::Spec,
        r: &ReplShared,
    ) -> Option<std::borrow::Cow<'static, str>> {
        use crate::cmd::Flags;
        if g & LOADING != 0 && !spec.flags.has(Flags::LOADING) {
            return Some("LOADING Valkey is loading the dataset in memory".into());
        }
        // Data commands only: replication's own (PSYNC, REPLCONF) and the group's go on.
        if g & LEASE != 0
            && (spec.is_write() || spec.flags.has(Flags::READONLY))
            && crate::runtime::mono_ms() >= r.serve_until.load(Ordering::Acquire)
        {
            return Some(
                "TRYAGAIN This primary holds no lease from its replication group (a failover is \
                 deciding who serves, or the group's majority is unreachable); see INFO replication"
                    .into(),
            );
        }
        if g & MASTERDOWN != 0 && !spec.flags.has(Flags::STALE) {
            return Some(
                "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'."
                    .into(),
            );
        }
        if spec.is_write() {
            if g & MISCONF != 0 {
                let e = r.wal_error.get().map_or("", |e| e.as_str());
                return Some(crate::persist::wal::misconf(e).into());
            }
            if g & READONLY != 0 {
                return Some("READONLY You can't write against a read only replica.".into());
            }
            if g & NOREPLICAS != 0 {
                return Some("NOREPLICAS Not enough good replicas to write.".into());
            }
            if g & NOELIGIBLE != 0 {
                return Some(
                    format!(
                        "NOREPLICAS Not enough eligible replicas: {} of {}",
                        r.eligible.load(Ordering::Acquire),
                        r.durability_need.load(Ordering::Acquire)
                    )
                    .into(),
                );
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A replica that knows a newer epoch deposes its primary at once; an equal or older one, or a node
    /// not in failover mode, changes nothing.
    #[test]
    fn a_newer_epoch_fences_the_primary() {
        let r = ReplShared::default();
        r.serve_until.store(u64::MAX, Ordering::Release);
        r.epoch.store(3, Ordering::Release);
        assert!(!r.fence(9), "not in failover mode");
        r.group.store(true, Ordering::Release);
        assert!(!r.fence(3));
        assert!(!r.fence(2));
        assert_eq!(r.serve_until.load(Ordering::Acquire), u64::MAX);
        assert!(r.fence(4));
        assert_eq!(r.serve_until.load(Ordering::Acquire), 0);
        assert_eq!(r.fence_epoch.load(Ordering::Acquire), 4);
    }
}
