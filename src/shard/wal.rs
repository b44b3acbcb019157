//! A shard's write-ahead log state (docs/persistence.md): the writer (tandem_sync::wal) its sealed units go
//! to, and what its durable point decides: which replies are released (`appendfsync always`, through the
//! commit rule of repl/durable.rs) and how far the journal flows may send. The file I/O is persist/wal.rs.
//!
//! Invariants: with `appendfsync always` nothing leaves this node (a reply, a reply depending on a dirty
//! key, a journal byte) before the unit holding it is on stable storage; after a write or sync failure
//! nothing more is logged, and waiting replies fail only once the writer erased what never became durable.

use super::Shard;
use tandem_sync::wal::{Fsync, Writer};

pub struct ShardWal {
    pub w: Writer,
    /// Units are written only while attached: a log that restarted at an offset no snapshot covers (a
    /// replica's full sync) is written again once a snapshot at that offset is saved.
    pub attached: bool,
    /// The failure was made safe and reported: new holds fail at once.
    pub failed: bool,
    /// Test-only (DEBUG WAL-FAIL): the next write or sync fails.
    pub inject: Option<crate::persist::wal::Inject>,
    pub stats: WalStats,
    /// Write transactions' parts waiting to be durable here (offset, release): only the local disk,
    /// not the replicas, so a transaction holds its shards for one sync at most.
    pub part_waiters: Vec<(u64, futures_channel::oneshot::Sender<()>)>,
}

/// Counters for INFO persistence.
#[derive(Debug, Default, Clone)]
pub struct WalStats {
    pub writes: u64,
    pub bytes: u64,
    pub write_us: u64,
    pub syncs: u64,
    pub sync_us: u64,
    pub sync_max_us: u64,
}

impl WalStats {
    pub fn merge(&mut self, o: &WalStats) {
        self.writes += o.writes;
        self.bytes += o.bytes;
        self.write_us += o.write_us;
        self.syncs += o.syncs;
        self.sync_us += o.sync_us;
        self.sync_max_us = self.sync_max_us.max(o.sync_max_us);
    }
}

/// What a completed operation changed, for the driver to act on.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct WalProgress {
    /// The durable point moved (journal flows may send more).
    pub synced: bool,
    /// Writing just failed, with this error (reported once).
    pub failed: Option<String>,
}

impl Shard {
    /// A sealed unit starting at `start` (this shard's own, or a replica's verbatim copy of its primary's).
    pub fn wal_append(&mut self, start: u64, unit: &[u8]) {
        let Some(wal) = self.wal.as_mut() else { return };
        if !wal.attached || wal.w.failed().is_some() {
            return;
        }
        if wal.w.end() != start {
            // The log jumped (a new history): nothing is written until a snapshot covers the new start.
            tracing::warn!(
                "shard {}: the log restarts at offset {start} (the WAL ended at {}); WAL detached until \
                 a snapshot at the new offset is saved",
                self.id,
                wal.w.end()
            );
            wal.attached = false;
            self.durable_configure();
            return;
        }
        wal.w.append(unit);
    }

    /// The shard's replication identity changed (promotion, a new primary): later segments carry it.
    pub fn wal_identity(&mut self) {
        if let Some(w) = self.wal.as_mut() {
            w.w.set_identity(self.repl.identity.clone());
        }
    }

    /// The data is being replaced (a replica's full sync): nothing more is written to this history.
    pub fn wal_detach(&mut self) {
        if let Some(w) = self.wal.as_mut() {
            w.attached = false;
        }
        self.durable_configure();
    }

    /// Under a write transaction's lock, after its last hop: seals its part now and returns what is
    /// released once the part is durable here (None: nothing to wait for).
    pub fn wal_seal_part(&mut self) -> Option<futures_channel::oneshot::Receiver<()>> {
        if self.lock.holder.is_some() {
            self.seal_unit();
        }
        if !self.wal_holds() {
            return None;
        }
        let end = self.repl.offset();
        let wal = self.wal.as_mut()?;
        if wal.w.synced() >= end || wal.failed {
            return None;
        }
        let (tx, rx) = futures_channel::oneshot::channel();
        wal.part_waiters.push((end, tx));
        Some(rx)
    }

    /// Whether this shard's replies wait for its WAL (`appendfsync always`, attached). After a failure
    /// too: reads of keys whose writes never became durable must keep failing.
    pub fn wal_holds(&self) -> bool {
        self.wal
            .as_ref()
            .is_some_and(|w| w.attached && w.w.fsync() == Fsync::Always)
    }

    /// Whether writing failed for good (until a restart).
    pub fn wal_failed(&self) -> bool {
        self.wal.as_ref().is_some_and(|w| w.failed)
    }

    /// How far this shard's log may be sent to replicas: with `appendfsync always`, only what is durable
    /// here, so a write that fails here can never reach (and be promoted on) a replica.
    pub fn wal_sendable(&self, end: u64) -> u64 {
        match &self.wal {
            Some(w) if w.attached && w.w.fsync() == Fsync::Always => end.min(w.w.synced()),
            _ => end,
        }
    }

    /// The driver's operation completed: records it and applies what it changed to held replies.
    pub fn wal_done(
        &mut self,
        ticket: tandem_sync::wal::writer::Ticket,
        r: Result<(), String>,
        now_ms: u64,
    ) -> WalProgress {
        let Some(wal) = self.wal.as_mut() else {
            return WalProgress::default();
        };
        let (before, was_failed) = (wal.w.synced(), wal.w.failed().is_some());
        wal.w.done(ticket, r, now_ms);
        let mut p = WalProgress {
            synced: wal.w.synced() != before,
            failed: None,
        };
        if !was_failed {
            p.failed = wal.w.failed().map(String::from);
        }
        let synced = wal.w.synced();
        for (_, w) in wal.part_waiters.extract_if(.., |(at, _)| *at <= synced) {
            let _ = w.send(());
        }
        if wal.w.undone() && !wal.failed {
            // Only now may a client hear that its write failed: the bytes are gone from the disk.
            wal.failed = true;
            // Transactions waiting on parts that will never be durable let go of their shards.
            wal.part_waiters.clear();
            self.durable.q.drop_waiters();
            self.durable_configure();
        } else if p.synced {
            self.durable_configure();
        }
        p
    }
}
