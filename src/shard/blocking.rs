//! Connections blocked on keys of this shard (BLPOP and the rest, server/blocking.rs), in arrival order
//! per key. A write to a key with waiters wakes the first of them only; it retries its pop, and when it
//! leaves (served, timed out, unblocked) the next one is woken if the key still holds elements. So
//! waiters are served in the order they blocked, as in Valkey, and one push wakes one waiter, not all.

use super::Shard;
use crate::shard::mesh::Kind;
use bytes::Bytes;
use std::collections::{HashMap, VecDeque};

#[derive(Default)]
pub struct Blocked {
    /// (db, key) → waiting (client id, the shard its connection lives on), first come first.
    waiters: HashMap<(usize, Bytes), VecDeque<(u64, usize)>>,
}

impl Blocked {
    pub fn is_empty(&self) -> bool {
        self.waiters.is_empty()
    }
}

/// Marks a blocked client of this shard ready and wakes its connection.
fn wake_here(sh: &Shard, client: u64) {
    if let Some(c) = sh.clients.get(&client) {
        let mut c = c.borrow_mut();
        c.ready = true;
        if let Some(w) = c.waker.take() {
            w.wake();
        }
    }
}

/// Wakes a blocked client wherever its connection lives (`sh` is the shard running this).
fn wake(sh: &Shard, client: u64, shard: usize) {
    if shard == sh.id {
        wake_here(sh, client);
    } else {
        crate::runtime::current_local().shared.mesh.send(
            shard,
            Kind::Normal,
            Box::new(move |other: &mut Shard| wake_here(other, client)),
        );
    }
}

impl Shard {
    pub fn block_on(&mut self, db: usize, key: Bytes, client: u64, shard: usize) {
        let q = self.blocked.waiters.entry((db, key)).or_default();
        if !q.iter().any(|w| w.0 == client) {
            q.push_back((client, shard));
        }
    }

    /// A waiter leaves; the next one is woken if the key is ready for it.
    pub fn unblock_from(&mut self, db: usize, key: &[u8], client: u64) {
        let k = (db, Bytes::copy_from_slice(key));
        let Some(q) = self.blocked.waiters.get_mut(&k) else {
            return;
        };
        let was_first = q.front().is_some_and(|w| w.0 == client);
        q.retain(|w| w.0 != client);
        if q.is_empty() {
            self.blocked.waiters.remove(&k);
        } else if was_first {
            self.signal_ready(db, key);
        }
    }

    /// After SWAPDB: every key waited on in either database may now hold elements (Valkey wakes them
    /// too; an expired one does not wake its waiter).
    pub fn signal_swapped(&mut self, a: usize, b: usize) {
        let keys: Vec<(usize, Bytes)> = self
            .blocked
            .waiters
            .keys()
            .filter(|(db, _)| *db == a || *db == b)
            .cloned()
            .collect();
        for (db, key) in keys {
            self.signal_ready(db, &key);
        }
    }

    /// After a write to `key`: wakes its first waiter if the key now holds a list or sorted set.
    pub fn signal_ready(&mut self, db: usize, key: &[u8]) {
        if self.blocked.is_empty() {
            return;
        }
        let k = (db, Bytes::copy_from_slice(key));
        let Some(&(client, shard)) = self.blocked.waiters.get(&k).and_then(|q| q.front()) else {
            return;
        };
        let now = crate::runtime::now_ms();
        if self
            .ks
            .peek(db, key, now)
            .is_some_and(|e| e.coll().is_some())
        {
            wake(self, client, shard);
        }
    }
}
