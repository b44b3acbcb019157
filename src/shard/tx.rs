//! Multi-shard atomic operations: the one mechanism behind MSET, MSETNX, RENAME, COPY, multi-shard MGET,
//! DEL and EXISTS, FLUSHALL and SWAPDB, and later MULTI/EXEC.
//!
//! A transaction names the shards it touches and locks them **in ascending shard order**, waiting at each
//! until it is granted; a shard locked by a transaction runs only that transaction's messages and defers
//! everything else (other shards' messages in FIFO order, its own connections wait on `unlocked`). Then
//! the transaction runs its hops (closures on one or all of its shards), and only after every hop is done
//! does it release all locks. Hence:
//! - no client can observe half of a transaction: every key it touches is unreachable from its first write
//!   until its last one is applied everywhere;
//! - no deadlock: every transaction acquires in the same global order, and a waiting one holds only locks
//!   on lower shards than the one it waits for.
//!
//! The granularity is the shard; key-level locks are a later refinement with the same interface.

use super::mesh::{Job, Kind, Msg};
use super::Shard;
use std::collections::VecDeque;

#[derive(Default)]
pub struct LockState {
    pub holder: Option<u64>,
    pub deferred: VecDeque<Msg>,
}

impl LockState {
    pub fn is_free_for(&self, kind: Kind) -> bool {
        match (self.holder, kind) {
            (None, Kind::Normal | Kind::Lock(_) | Kind::Once(_)) => true,
            (Some(h), Kind::InTx(t) | Kind::Unlock(t)) => h == t,
            _ => false,
        }
    }
}

impl Shard {
    /// Delivers one message from the inbox: runs it now if the lock allows, else defers it. After an
    /// unlock, deferred messages run in arrival order until one of them takes the lock again.
    pub fn deliver(&mut self, msg: Msg) {
        if !self.lock.deferred.is_empty() || !self.lock.is_free_for(msg.kind) {
            // Keep FIFO: while anything is deferred, later arrivals queue behind it, except messages of
            // the transaction that holds the lock (it is waiting for them).
            if self.lock.holder.is_some() && self.lock.is_free_for(msg.kind) {
                self.run_msg(msg);
            } else {
                self.lock.deferred.push_back(msg);
            }
            return;
        }
        self.run_msg(msg);
    }

    fn run_msg(&mut self, msg: Msg) {
        self.run_job(msg.kind, msg.job);
        self.drain_deferred();
    }

    /// Runs `f` under `kind`'s lock transition: a Lock takes the shard before `f`, an Unlock releases it
    /// after. The one place these transitions happen, for messages and for direct calls alike. Callers
    /// ensure `is_free_for(kind)`; after an Unlock they run `drain_deferred`.
    pub fn with_lock_kind<R>(&mut self, kind: Kind, f: impl FnOnce(&mut Shard) -> R) -> R {
        if let Kind::Lock(t) | Kind::Once(t) = kind {
            self.lock.holder = Some(t);
        }
        let out = f(self);
        if let Kind::Unlock(_) | Kind::Once(_) = kind {
            self.lock.holder = None;
            // The transaction's part of this shard's log is complete: it becomes a unit now.
            self.seal_unit();
        }
        out
    }

    pub fn run_job(&mut self, kind: Kind, job: Job) {
        self.with_lock_kind(kind, job)
    }

    /// Runs deferred messages that may now run: in order while the shard is free, and, while a transaction
    /// holds it, that transaction's own messages (an Unlock sent by a cancelled coordinator can arrive
    /// before its Lock is granted, and must not be stranded behind others).
    pub fn drain_deferred(&mut self) {
        loop {
            let pos = match self.lock.holder {
                None if !self.lock.deferred.is_empty() => 0,
                None => break,
                Some(_) => match self
                    .lock
                    .deferred
                    .iter()
                    .position(|m| self.lock.is_free_for(m.kind))
                {
                    Some(p) => p,
                    None => break,
                },
            };
            let next = self.lock.deferred.remove(pos).expect("position in range");
            if !self.lock.is_free_for(next.kind) {
                // An InTx/Unlock of a transaction that holds nothing: its coordinator was cancelled
                // before its lock was granted, and its Lock is still queued; keep the order.
                self.lock.deferred.push_back(next);
                if self
                    .lock
                    .deferred
                    .iter()
                    .all(|m| !self.lock.is_free_for(m.kind))
                {
                    break;
                }
                continue;
            }
            self.run_job(next.kind, next.job);
        }
    }

    pub fn locked(&self) -> bool {
        self.lock.holder.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use std::sync::{Arc, Mutex};

    fn shard() -> Shard {
        Shard::new(
            0,
            1,
            Arc::new(Config::default()),
            1,
            tandem_sync::replid::ReplId::zero(),
        )
    }

    fn logger(log: &Arc<Mutex<Vec<&'static str>>>, name: &'static str) -> Job {
        let log = log.clone();
        Box::new(move |_| log.lock().unwrap().push(name))
    }

    /// Delivers a message that logs `name` when it runs.
    fn deliver(
        sh: &mut Shard,
        log: &Arc<Mutex<Vec<&'static str>>>,
        kind: Kind,
        name: &'static str,
    ) {
        let job = logger(log, name);
        sh.deliver(Msg { kind, job });
    }

    #[test]
    fn a_locked_shard_defers_others_in_order() {
        let mut sh = shard();
        let log = Arc::new(Mutex::new(Vec::new()));
        deliver(&mut sh, &log, Kind::Lock(1), "lock1");
        deliver(&mut sh, &log, Kind::Normal, "a");
        deliver(&mut sh, &log, Kind::Lock(2), "lock2");
        deliver(&mut sh, &log, Kind::Normal, "b");
        deliver(&mut sh, &log, Kind::InTx(1), "tx1");
        assert_eq!(*log.lock().unwrap(), vec!["lock1", "tx1"]);
        deliver(&mut sh, &log, Kind::Unlock(1), "unlock1");
        // a runs, then lock2 takes the lock; b waits behind it.
        assert_eq!(
            *log.lock().unwrap(),
            vec!["lock1", "tx1", "unlock1", "a", "lock2"]
        );
        assert_eq!(sh.lock.holder, Some(2));
        deliver(&mut sh, &log, Kind::Unlock(2), "unlock2");
        assert_eq!(log.lock().unwrap().last(), Some(&"b"));
        assert!(!sh.locked() && sh.lock.deferred.is_empty());
    }

    #[test]
    fn a_once_waits_its_turn_runs_and_releases() {
        let mut sh = shard();
        let log = Arc::new(Mutex::new(Vec::new()));
        deliver(&mut sh, &log, Kind::Lock(1), "lock1");
        deliver(&mut sh, &log, Kind::Once(2), "once2");
        deliver(&mut sh, &log, Kind::Normal, "a");
        assert_eq!(*log.lock().unwrap(), vec!["lock1"]);
        deliver(&mut sh, &log, Kind::Unlock(1), "unlock1");
        // The Once ran holding the shard, and left it free: what waited behind it ran too.
        assert_eq!(*log.lock().unwrap(), vec!["lock1", "unlock1", "once2", "a"]);
        assert!(!sh.locked() && sh.lock.deferred.is_empty());
        let seen = Arc::new(Mutex::new(None));
        let s2 = seen.clone();
        sh.deliver(Msg {
            kind: Kind::Once(3),
            job: Box::new(move |sh| *s2.lock().unwrap() = sh.lock.holder),
        });
        assert_eq!(*seen.lock().unwrap(), Some(3));
        assert!(!sh.locked());
    }
}
