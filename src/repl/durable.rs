//! Durability mode on one primary shard (docs/durability.md): the shard's commit rule (tandem_sync's
//! `ShardQuorum`: eligible replicas, their acks on this shard, the commit point, the replies waiting for
//! it) and its dirty keys (keys whose latest write has not committed, which reads wait for).
//!
//! How a reply is held: a batch of commands runs as usual; in durability mode the shard then seals its
//! unit at once and gives each command the offset it depends on (a write: its unit's end; a read of a
//! dirty key: that key's write; a read after a write of the same batch: the batch's unit). If the largest
//! is above the commit point, a waiter is registered and the connection sends the batch's replies only
//! when it is released, or answers the commands still uncommitted at durability-timeout with an error
//! (`TIMEOUT_ERR`). Nothing is rolled back: a write that timed out stays in the log and commits when the
//! replicas catch up; until then readers of its keys wait too.
//!
//! Invariants: the eligible set changes only by shard 0 (grant, under a pause of every shard; revoke, by
//! message to every shard); acks of a replica's journal flow on this shard arrive on this shard's thread;
//! a shard with durability off or no log pays one branch per batch.

use crate::cmd::Spec;
use crate::shard::Shard;
use bytes::Bytes;
use futures_channel::oneshot;
use tandem_sync::dirty::DirtyKeys;
use tandem_sync::quorum::ShardQuorum;

pub const TIMEOUT_ERR: &str = "TIMEOUT Not acknowledged by every eligible replica within \
durability-timeout: the outcome of this write is not known yet (it commits once the replicas catch up)";
pub const TIMEOUT_READ_ERR: &str =
    "TIMEOUT This read depends on a write not acknowledged by every \
eligible replica within durability-timeout: its outcome is not known yet";

/// A hold placeholder: "this batch's own unit", resolved to its end once sealed.
const THIS_UNIT: u64 = u64::MAX;

pub struct Durable {
    pub on: bool,
    /// Replies also wait for this shard's WAL (`appendfsync always`; shard/wal.rs).
    pub wal_hold: bool,
    pub q: ShardQuorum<oneshot::Sender<()>>,
    pub dirty: DirtyKeys,
}

impl Default for Durable {
    fn default() -> Self {
        Durable {
            on: false,
            wal_hold: false,
            q: ShardQuorum::new(1, 0),
            dirty: DirtyKeys::default(),
        }
    }
}

/// What a batch's replies wait for on one shard: each command's offset (0: nothing), and the receiver
/// released when the shard's commit point reaches the largest.
pub struct Held {
    pub shard: usize,
    pub per_cmd: Vec<u64>,
    pub rx: oneshot::Receiver<()>,
}

fn wake(ws: Vec<oneshot::Sender<()>>) {
    for w in ws {
        let _ = w.send(());
    }
}

impl Shard {
    /// Applies the durability settings (at start and on every CONFIG SET).
    /// Applies the durability settings and the WAL's state (at start, on every CONFIG SET, and whenever
    /// the WAL's durable point moves): with `appendfsync always` the commit point is also bounded by what
    /// this shard's WAL has on stable storage.
    pub fn durable_configure(&mut self) {
        let (on, need) = (self.settings.durability, self.settings.durability_replicas);
        let was = self.durable.on || self.durable.wal_hold;
        self.durable.on = on;
        self.durable.wal_hold = self.wal_holds();
        let local = match &self.wal {
            Some(w) if self.durable.wal_hold => Some(w.w.synced()),
            _ => None,
        };
        self.durable_sync_touch();
        let mut ws = self.durable.q.set_local(local);
        if on {
            ws.extend(self.durable.q.set_need(need));
        } else if self.durable.q.need() > 0 || self.durable.q.eligible().next().is_some() {
            ws.extend(self.durable.q.clear());
        }
        if was && !(on || self.durable.wal_hold) {
            self.durable_forget_dirty();
        }
        wake(ws);
    }

    /// This shard stops logging as a primary: waiting replies are dropped (their clients answer that the
    /// outcome is not known), nothing is dirty any more, nothing counts.
    pub fn durable_abandon(&mut self) {
        let end = self.repl.offset();
        self.durable.q.abandon(end);
        self.durable_sync_touch();
        self.durable_forget_dirty();
    }

    /// Nothing is dirty any more: neither the table nor the open unit's keys.
    fn durable_forget_dirty(&mut self) {
        self.durable.dirty.clear();
        let h = &mut self.ks.hooks;
        h.touched.clear();
        h.touched_all = false;
    }

    /// Keys written are tracked exactly when holds are computed: the mode on and this shard logging. Called
    /// whenever either changes.
    pub fn durable_sync_touch(&mut self) {
        self.ks.hooks.touch = self.durable_active();
    }

    /// A unit was just sealed (or nothing was): its keys become dirty up to its end.
    pub fn durable_sealed(&mut self) {
        let end = self.repl.offset();
        let h = &mut self.ks.hooks;
        if std::mem::take(&mut h.touched_all) {
            self.durable.dirty.mark_all(end);
        }
        for b in h.touched.drain(..) {
            self.durable.dirty.mark(b, end);
        }
        wake(self.durable.q.appended(end));
    }

    /// Replica session `r` acknowledged this shard's log up to `offset` (its journal flow, on this thread).
    pub fn durable_ack(&mut self, r: u64, offset: u64) {
        let ws = self.durable.q.ack(r, offset);
        wake(ws);
    }

    /// Session `r` is no longer eligible.
    pub fn durable_revoke(&mut self, r: u64) {
        let ws = self.durable.q.revoke(r);
        wake(ws);
    }

    /// Whether batch holds are computed here: durability on, and this shard logs.
    #[inline]
    pub fn durable_active(&self) -> bool {
        (self.durable.on || self.durable.wal_hold) && self.ks.hooks.capture
    }

    /// Before a command of a held batch runs: how many keys the open unit wrote so far.
    #[inline]
    pub fn durable_mark(&self) -> usize {
        self.ks.hooks.touched.len() + self.ks.hooks.touched_all as usize
    }

    /// After a command of a held batch ran (`mark` from before it): the offset its reply depends on.
    pub fn durable_cmd_hold(&self, mark: usize, spec: &Spec, args: &[Bytes], db: usize) -> u64 {
        if self.durable_mark() != mark || (mark > 0 && !spec.is_write()) {
            // It wrote, or it read after a write of its own batch (which it may have seen).
            return THIS_UNIT;
        }
        let (d, commit) = (&self.durable.dirty, self.durable.q.commit());
        if !d.pending(commit) {
            return 0;
        }
        spec.keys_of(args)
            .into_iter()
            .filter_map(|p| d.hold(db, &args[p], commit))
            .max()
            .unwrap_or(0)
    }

    /// After a held batch: seals its unit, resolves its holds, and registers a waiter if any hold is above
    /// the commit point.
    pub fn durable_hold(&mut self, mut per_cmd: Vec<u64>, now_ms: u64) -> Option<Held> {
        if per_cmd.contains(&THIS_UNIT) {
            debug_assert!(!self.locked(), "batches run on unlocked shards");
            self.seal_unit();
            let end = self.repl.offset();
            for h in per_cmd.iter_mut().filter(|h| **h == THIS_UNIT) {
                *h = end;
            }
        }
        let max = per_cmd.iter().copied().max().unwrap_or(0);
        if max > self.durable.q.commit() && self.wal_failed() {
            // What it waits for will never be durable: it fails now (its sender is dropped).
            let (_, rx) = oneshot::channel();
            return Some(Held {
                shard: self.id,
                per_cmd,
                rx,
            });
        }
        if max <= self.durable.q.commit() {
            // Nothing to wait for (reads of clean keys): no channel, no waiter.
            return None;
        }
        let (tx, rx) = oneshot::channel();
        match self.durable.q.wait(max, now_ms, tx) {
            Some(_) => None,
            None => Some(Held {
                shard: self.id,
                per_cmd,
                rx,
            }),
        }
    }

    /// For a command that did not run as a batch (spanning shards, or server-wide): waits for this
    /// shard's whole log if it wrote or if anything here is dirty.
    pub fn durable_hold_all(&mut self, wrote: bool, now_ms: u64) -> Option<Held> {
        if !self.durable_active()
            || (!wrote && !self.durable.dirty.pending(self.durable.q.commit()))
        {
            return None;
        }
        if !self.locked() {
            self.seal_unit();
        }
        let end = self.repl.offset();
        self.durable_hold(vec![end], now_ms)
    }

    /// Called by the shard's cron: drops waiters whose client left, and names the eligible replicas that
    /// kept a write waiting past durability-timeout (to be revoked).
    pub fn durable_cron(&mut self, now_ms: u64) -> Vec<u64> {
        if !self.durable.on {
            return Vec::new();
        }
        let timeout = self.settings.durability_timeout_ms;
        let late = self.durable.q.laggards(now_ms, timeout);
        self.durable
            .q
            .prune(now_ms, timeout.saturating_mul(2), |w| w.is_canceled());
        late
    }
}
