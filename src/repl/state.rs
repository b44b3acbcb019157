//! A shard's replication state: its log's backlog and offset, and the replication identity. What is logged
//! and when units are sealed is shard/log.rs.
//!
//! Invariants:
//! - the shard's offset is the count of log bytes it ever produced (or, on a replica whose shard count
//!   equals the primary's, received verbatim from the matching primary shard), whether or not a backlog
//!   exists, and always a unit boundary; master_repl_offset is the sum over shards;
//! - capture is on exactly when this shard is a primary with a backlog (created when the first replica
//!   asks to sync, as in Valkey), so a server that never had a replica pays nothing for logging.

use crate::shard::Shard;
use tandem_sync::backlog::Backlog;
use tandem_sync::replid::{Identity, PsyncDecision};

/// A snapshot begun at a PSYNC's cut, waiting for the replica's snapshot flow to stream it.
pub struct PendingSnapshot {
    pub session: u64,
    pub id: u64,
    /// The shard's log offset at the cut.
    pub point: u64,
    /// Keys at the cut (exact), for the replica's progress.
    pub keys: u64,
    pub since_ms: u64,
}

pub struct ShardRepl {
    pub backlog: Option<Backlog>,
    pub pending_snapshots: Vec<PendingSnapshot>,
    /// The offset when there is no backlog.
    base_offset: u64,
    pub identity: Identity,
    pub is_replica: bool,
    pub next_snapshot_id: u64,
    /// The journal grew since the shard last woke its journal flows (`Local::after_work`).
    pub grew: bool,
}

impl ShardRepl {
    pub fn new(identity: Identity) -> Self {
        ShardRepl {
            backlog: None,
            pending_snapshots: Vec::new(),
            base_offset: 0,
            identity,
            is_replica: false,
            next_snapshot_id: 1,
            grew: false,
        }
    }

    pub fn take_pending_snapshot(&mut self, session: u64) -> Option<PendingSnapshot> {
        let i = self
            .pending_snapshots
            .iter()
            .position(|p| p.session == session)?;
        Some(self.pending_snapshots.swap_remove(i))
    }

    pub fn offset(&self) -> u64 {
        self.backlog
            .as_ref()
            .map_or(self.base_offset, |b| b.end_offset())
    }

    /// Valkey's PSYNC rule applied to this shard: `applied` is the replica's offset (bytes it has).
    pub fn decide(&self, id: Option<tandem_sync::replid::ReplId>, applied: u64) -> PsyncDecision {
        let (first, end) = match &self.backlog {
            Some(b) => (b.first_offset(), b.end_offset()),
            // Without a backlog nothing can be continued but an offset equal to ours.
            None => (self.base_offset, self.base_offset),
        };
        // Valkey's offsets are one-based (the next byte wanted): shift ours.
        self.identity
            .decide(id, applied as i64 + 1, first + 1, end + 1)
    }
}

impl Shard {
    fn backlog_capacity(&self) -> usize {
        (self.settings.repl_backlog_size / self.nshards).max(16 * 1024)
    }

    /// Creates the backlog if there is none (first replica), starting at the current offset.
    pub fn ensure_backlog(&mut self) {
        if self.repl.backlog.is_none() {
            let cap = self.backlog_capacity();
            self.repl.backlog = Some(Backlog::new(cap, self.repl.base_offset));
        }
        self.ks.hooks.capture = !self.repl.is_replica;
        self.durable_sync_touch();
    }

    /// Part of a PSYNC's cut (every shard at once, inside one transaction): begins this shard's
    /// point-in-time snapshot for `session` at its current log offset, which it returns.
    pub fn begin_cut_snapshot(&mut self, session: u64, now_ms: u64) -> u64 {
        self.ensure_backlog();
        self.seal_unit();
        let id = self.repl.next_snapshot_id;
        self.repl.next_snapshot_id += 1;
        self.ks.begin_snapshot(id);
        let point = self.repl.offset();
        self.repl.pending_snapshots.push(PendingSnapshot {
            session,
            id,
            point,
            keys: self.ks.total_keys() as u64,
            since_ms: now_ms,
        });
        point
    }

    /// Drops snapshots whose flow never came for them within `timeout_ms` (the replica went away), and
    /// with them the copies their writes kept.
    pub fn expire_pending_snapshots(&mut self, now_ms: u64, timeout_ms: u64) {
        let (stale, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut self.repl.pending_snapshots)
            .into_iter()
            .partition(|p| now_ms.saturating_sub(p.since_ms) > timeout_ms);
        self.repl.pending_snapshots = keep;
        for p in stale {
            tracing::warn!(
                "shard {}: snapshot for replica session {} never streamed; dropped",
                self.id,
                p.session
            );
            self.ks.end_snapshot(p.id);
        }
    }

    /// A replica shard whose slots are exactly those of primary shard `id` keeps that shard's units
    /// verbatim, at the primary's offsets, so after a promotion the other replicas can continue from it.
    pub fn log_verbatim(&mut self, offset: u64, unit: &[u8]) {
        let cap = self.backlog_capacity();
        let b = self
            .repl
            .backlog
            .get_or_insert_with(|| Backlog::new(cap, offset));
        if b.end_offset() != offset {
            *b = Backlog::new(cap, offset);
        }
        b.append(unit);
        self.repl.grew = true;
        self.wal_append(offset, unit);
    }

    /// Sets this shard's offset with no backlog history (after a full sync, on a shard whose stream is not
    /// kept verbatim, or when becoming a replica).
    pub fn reset_journal(&mut self, offset: u64) {
        self.repl.backlog = None;
        self.repl.base_offset = offset;
        self.ks.hooks.dirty.clear();
        self.ks.hooks.unit = Default::default();
        self.ks.hooks.capture = false;
        self.durable_abandon();
    }
}
