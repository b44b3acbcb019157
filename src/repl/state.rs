//! A shard's replication state: its journal (backlog + offset), the replication identity, and the drain
//! that turns the keys its commands touched into journal records.
//!
//! Invariants:
//! - the shard's offset is the count of journal bytes it ever produced (or, on a replica whose shard count
//!   equals the primary's, received verbatim from the matching primary shard), whether or not a backlog
//!   exists; master_repl_offset is the sum over shards;
//! - capture is on exactly when this shard is a primary with a backlog (created when the first replica
//!   asks to sync, as in Valkey), so a server that never had a replica pays nothing for journaling.

use super::journal;
use crate::shard::Shard;
use tandem_sync::backlog::Backlog;
use tandem_sync::replid::{Identity, PsyncDecision};

pub struct ShardRepl {
    pub backlog: Option<Backlog>,
    /// The offset when there is no backlog.
    base_offset: u64,
    pub identity: Identity,
    pub is_replica: bool,
    pub next_snapshot_id: u64,
    scratch: Vec<u8>,
    /// The journal grew since the shard last woke its journal flows (`Local::after_work`).
    pub grew: bool,
}

impl ShardRepl {
    pub fn new(identity: Identity) -> Self {
        ShardRepl {
            backlog: None,
            base_offset: 0,
            identity,
            is_replica: false,
            next_snapshot_id: 1,
            scratch: Vec::new(),
            grew: false,
        }
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
    }

    /// Turns the keys touched since the last drain into records (their state now) and appends them.
    /// Returns whether anything was appended (journal flows then wake up).
    pub fn journal_drain(&mut self) -> bool {
        if self.ks.hooks.dirty.is_empty() {
            return false;
        }
        let dirty = std::mem::take(&mut self.ks.hooks.dirty);
        let mut out = std::mem::take(&mut self.repl.scratch);
        out.clear();
        let now = crate::runtime::now_ms();
        let mut last: Option<&(usize, Vec<u8>)> = None;
        for d in &dirty {
            // A key touched twice in a row needs one record of its final state.
            if last == Some(d) {
                continue;
            }
            last = Some(d);
            let (db, key) = (d.0, &d.1[..]);
            match self.ks.peek(db, key, now) {
                Some(e) => journal::set(&mut out, db, key, e.value(), e.expire_at()),
                None => journal::del(&mut out, db, key),
            }
        }
        let mut dirty = dirty;
        dirty.clear();
        self.ks.hooks.dirty = dirty;
        if let Some(b) = self.repl.backlog.as_mut() {
            b.append(&out);
            self.repl.grew = true;
        }
        self.repl.scratch = out;
        true
    }

    /// Appends a record that is not one key's state (FLUSHDB, FLUSHALL, SWAPDB), after the keys touched
    /// before it, so the order of effects is kept.
    pub fn journal_special(&mut self, rec: impl FnOnce(&mut Vec<u8>)) -> bool {
        if !self.ks.hooks.capture {
            return false;
        }
        self.journal_drain();
        let mut out = Vec::new();
        rec(&mut out);
        if let Some(b) = self.repl.backlog.as_mut() {
            b.append(&out);
            self.repl.grew = true;
        }
        true
    }

    /// A replica shard whose slots are exactly those of primary shard `id` keeps that shard's stream
    /// verbatim, at the primary's offsets, so after a promotion the other replicas can continue from it.
    pub fn journal_verbatim(&mut self, offset: u64, data: &[u8]) {
        let cap = self.backlog_capacity();
        let b = self
            .repl
            .backlog
            .get_or_insert_with(|| Backlog::new(cap, offset));
        if b.end_offset() != offset {
            *b = Backlog::new(cap, offset);
        }
        b.append(data);
        self.repl.grew = true;
    }

    /// Sets this shard's offset with no backlog history (after a full sync, on a shard whose stream is not
    /// kept verbatim, or when becoming a replica).
    pub fn reset_journal(&mut self, offset: u64) {
        self.repl.backlog = None;
        self.repl.base_offset = offset;
        self.ks.hooks.dirty.clear();
        self.ks.hooks.capture = false;
    }
}
