//! The primary's list of replicas, owned by shard 0 (other shards ask it by message): their addresses,
//! sync state, acknowledgements, the WAIT calls waiting on them, and the sync counters of INFO stats.

use futures_channel::{mpsc, oneshot};
use std::collections::BTreeMap;
use tandem_sync::acks::{count_holding, good_replicas};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicaState {
    /// Full sync in progress (Valkey's wait_bgsave / send_bulk).
    Syncing,
    Online,
}

pub struct ReplicaEntry {
    /// The replica's stable id (REPLCONF node-id; empty if it sent none).
    pub node_id: String,
    pub ip: String,
    pub port: u16,
    pub state: ReplicaState,
    pub ack: tandem_sync::acks::Ack,
    /// Nudges the replica's session to send REPLCONF GETACK now (WAIT).
    pub poke: mpsc::Sender<()>,
    /// Durability mode: this session counts for writes (repl/eligibility.rs).
    pub eligible: bool,
    /// DURABILITY FORGET: never granted again in this session.
    pub forgotten: bool,
    /// Failover mode: the replica's incarnation (REPLCONF incarnation; 0 if it sent none), and a grant
    /// proposed to the group at a record version, when (repl/group/act.rs).
    pub incarnation: u64,
    pub grant_pending: Option<(u64, u64)>,
}

/// Failover mode: a session no longer counted for admission that every shard still waits for until the
/// group's record no longer lists its member eligible (repl/group/act.rs).
pub struct Revoking {
    pub session: u64,
    pub id: tandem_sync::group::record::MemberId,
    pub incarnation: u64,
    /// The version a grant of it was proposed at, if one was in flight: until the record moves past it
    /// that grant could still apply.
    pub grant_version: Option<u64>,
    pub proposed_ms: u64,
}

struct Waiter {
    target: Vec<u64>,
    need: usize,
    tx: oneshot::Sender<usize>,
}

#[derive(Default)]
pub struct Registry {
    pub replicas: BTreeMap<u64, ReplicaEntry>,
    waiters: Vec<Waiter>,
    pub sync_full: u64,
    pub sync_partial_ok: u64,
    pub sync_partial_err: u64,
    /// Durability mode (repl/eligibility.rs): a grant is being tried, and what grants and revokes did.
    pub granting: bool,
    /// After a grant attempt that paused writers in vain, the next waits (backing off to 5 s), so a
    /// replica that cannot catch up does not pause writers every cron tick.
    pub grant_retry_at_ms: u64,
    pub grant_failures: u32,
    pub grants: u64,
    pub revokes: u64,
    pub last_grant_pause_us: u64,
    pub max_grant_pause_us: u64,
    pub revoking: Vec<Revoking>,
}

impl Registry {
    pub fn count_holding(&self, target: &[u64]) -> usize {
        count_holding(self.replicas.values().map(|r| &r.ack), target)
    }

    pub fn good(&self, now_ms: u64, max_lag_ms: u64) -> usize {
        good_replicas(
            self.replicas
                .values()
                .filter(|r| r.state == ReplicaState::Online)
                .map(|r| &r.ack),
            now_ms,
            max_lag_ms,
        )
    }

    pub fn poke_all(&mut self) {
        for r in self.replicas.values_mut() {
            let _ = r.poke.try_send(());
        }
    }

    /// Registers a WAIT; None if it is already satisfied.
    /// Registers a WAIT: Ok(count) if it is satisfied already, else a receiver that gets the count once
    /// it is.
    pub fn wait(
        &mut self,
        target: Vec<u64>,
        need: usize,
    ) -> Result<usize, oneshot::Receiver<usize>> {
        let have = self.count_holding(&target);
        if have >= need {
            return Ok(have);
        }
        let (tx, rx) = oneshot::channel();
        self.waiters.push(Waiter { target, need, tx });
        self.poke_all();
        Err(rx)
    }

    /// The control connection's REPLCONF ACK with every shard's offset (each kept at its maximum: flow acks
    /// may have told more already).
    pub fn ack(&mut self, id: u64, offsets: Vec<u64>, now_ms: u64) {
        if let Some(r) = self.replicas.get_mut(&id) {
            if r.ack.offsets.len() != offsets.len() {
                r.ack.offsets = vec![0; offsets.len()];
            }
            for (o, n) in r.ack.offsets.iter_mut().zip(offsets) {
                *o = (*o).max(n);
            }
            r.ack.at_ms = now_ms;
        }
        self.wake_waiters();
    }

    /// A journal flow's acknowledgement: replica `id` applied primary shard `shard`'s log up to `offset`.
    /// Offsets of one session only grow; an older ack arriving late changes nothing.
    pub fn ack_shard(&mut self, id: u64, shard: usize, offset: u64, now_ms: u64) {
        if let Some(r) = self.replicas.get_mut(&id) {
            if let Some(o) = r.ack.offsets.get_mut(shard) {
                *o = (*o).max(offset);
            }
            r.ack.at_ms = now_ms;
        }
        self.wake_waiters();
    }

    pub fn remove(&mut self, id: u64) {
        self.replicas.remove(&id);
    }

    pub fn eligible_count(&self) -> usize {
        self.replicas.values().filter(|r| r.eligible).count()
    }

    fn wake_waiters(&mut self) {
        let waiters = std::mem::take(&mut self.waiters);
        for w in waiters {
            if w.tx.is_canceled() {
                continue;
            }
            let have = self.count_holding(&w.target);
            if have >= w.need {
                let _ = w.tx.send(have);
            } else {
                self.waiters.push(w);
            }
        }
    }
}
