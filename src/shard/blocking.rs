//! Connections blocked on keys of this shard (BLPOP and the rest, server/blocking.rs), in arrival order
//! per key, and their serving.
//!
//! A write to a key with waiters marks it ready; the shard serves its ready keys when the command that
//! wrote finishes (after each command of a batch, and when a multi-shard transaction releases the shard:
//! after EXEC as a whole), before any other command runs, as Valkey does. So a pipelined `LPUSH k v` then
//! `LPOP k` from another client cannot take the element from a waiter that blocked first.
//!
//! Serving runs the first waiter's command here when every key it names lives on this shard (`WaitCmd`):
//! the reply waits in `served` until the connection takes it with its next attempt, or when it leaves,
//! so a reply is never lost to a timeout racing with it. A waiter whose keys span shards, and any waiter
//! in durability mode (whose replies wait for replicas), is woken instead and retries its command; when
//! it leaves the next one is signalled. Either way waiters are served in the order they blocked and one
//! push serves as many waiters as it has elements for.

use super::Shard;
use crate::cmd::exec::{execute, Exec};
use crate::cmd::Spec;
use crate::resp::{Proto, Reply};
use crate::shard::mesh::Kind;
use bytes::Bytes;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// A waiter's command, run by the shard that holds every key it names.
pub struct WaitCmd {
    pub spec: &'static Spec,
    pub args: Vec<Bytes>,
    pub db: usize,
    pub proto: Proto,
}

struct Waiter {
    client: u64,
    /// The shard its connection lives on.
    shard: usize,
    cmd: Option<Arc<WaitCmd>>,
}

#[derive(Default)]
pub struct Blocked {
    /// (db, key) → waiters, first come first.
    waiters: HashMap<(usize, Bytes), VecDeque<Waiter>>,
    /// Keys with waiters written since the last serve, in the order they were written.
    ready: Vec<(usize, Bytes)>,
    /// Replies of waiters served here, until their connection takes them.
    served: HashMap<u64, Vec<u8>>,
    /// A waiter's own attempt is running (server/dispatch.rs): serving waits until it is over, or the
    /// shard would serve that waiter a second time from what its attempt just wrote.
    pub attempting: bool,
}

impl Blocked {
    pub fn is_empty(&self) -> bool {
        self.waiters.is_empty()
    }

    /// Whether some waiter can be served now.
    #[inline]
    pub fn has_ready(&self) -> bool {
        !self.ready.is_empty() && !self.attempting
    }

    /// The reply served to `client` here, if any (taken: it is delivered once).
    pub fn take_served(&mut self, client: u64) -> Option<Vec<u8>> {
        if self.served.is_empty() {
            return None;
        }
        self.served.remove(&client)
    }
}

/// Whether a reply is a null (a pop that found nothing).
pub fn is_null(buf: &[u8]) -> bool {
    buf == b"*-1\r\n" || buf == b"$-1\r\n" || buf == b"_\r\n"
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
    /// `client` waits on `key`; `cmd` is its command if every key it names lives on this shard.
    pub fn block_on(
        &mut self,
        db: usize,
        key: Bytes,
        client: u64,
        shard: usize,
        cmd: Option<Arc<WaitCmd>>,
    ) {
        let q = self.blocked.waiters.entry((db, key)).or_default();
        if !q.iter().any(|w| w.client == client) {
            q.push_back(Waiter { client, shard, cmd });
        }
    }

    /// A waiter leaves; the next one is signalled if it was first. Returns a reply served to it here
    /// that it has not taken yet (it must answer with it: the command ran).
    pub fn unblock_from(&mut self, db: usize, key: &[u8], client: u64) -> Option<Vec<u8>> {
        self.leave_queue(db, key, client);
        self.blocked.take_served(client)
    }

    /// After SWAPDB: every key waited on in either database may now hold elements (Valkey wakes them
    /// too; an expired one does not serve its waiter).
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

    /// After a write to `key`: if it has waiters, it is served when the writing command is done.
    pub fn signal_ready(&mut self, db: usize, key: &[u8]) {
        if self.blocked.is_empty() {
            return;
        }
        let k = (db, Bytes::copy_from_slice(key));
        if self.blocked.waiters.contains_key(&k) && !self.blocked.ready.contains(&k) {
            self.blocked.ready.push(k);
        }
    }

    /// Serves the waiters of the keys written since the last call, in the order the keys were written,
    /// each key's waiters in the order they blocked. A served command's own writes (a move's push) may
    /// make more keys ready; they are served in the same call. Not while a multi-shard transaction holds
    /// the shard: its release serves them.
    pub fn serve_ready(&mut self) {
        while self.blocked.has_ready() && !self.locked() {
            let (db, key) = self.blocked.ready.remove(0);
            self.serve_key(db, &key);
        }
    }

    fn serve_key(&mut self, db: usize, key: &Bytes) {
        let k = (db, key.clone());
        loop {
            let Some(w) = self.blocked.waiters.get(&k).and_then(|q| q.front()) else {
                return;
            };
            let (client, shard, cmd) = (w.client, w.shard, w.cmd.clone());
            let now = crate::runtime::now_ms();
            if self
                .ks
                .peek(db, key, now)
                .is_none_or(|e| e.coll().is_none())
            {
                return;
            }
            let Some(cmd) = cmd.filter(|_| !self.durable_active()) else {
                // It retries itself; when it leaves, the next waiter is signalled.
                wake(self, client, shard);
                return;
            };
            let mut r = Reply::new(cmd.proto);
            let ex = Exec {
                counted: false,
                ..Exec::new(cmd.db, now)
            };
            execute(self, cmd.spec, &cmd.args, &ex, &mut r);
            if is_null(&r.buf) || r.buf.first() == Some(&b'-') {
                // Not servable by this key (another type, a destination of the wrong type): its own
                // attempt decides whether that is its answer or it keeps waiting. Whatever the failed
                // run touched does not make the key ready again (that would loop).
                self.blocked.ready.retain(|r| *r != k);
                wake(self, client, shard);
                return;
            }
            for p in cmd.spec.keys_of(&cmd.args) {
                self.leave_queue(cmd.db, &cmd.args[p], client);
            }
            self.blocked.served.insert(client, r.buf);
            wake(self, client, shard);
        }
    }

    /// Takes a waiter out of one key's queue; the key's next waiter is signalled if it was first.
    fn leave_queue(&mut self, db: usize, key: &[u8], client: u64) {
        let k = (db, Bytes::copy_from_slice(key));
        let Some(q) = self.blocked.waiters.get_mut(&k) else {
            return;
        };
        let was_first = q.front().is_some_and(|w| w.client == client);
        q.retain(|w| w.client != client);
        if q.is_empty() {
            self.blocked.waiters.remove(&k);
        } else if was_first {
            self.signal_ready(db, key);
        }
    }
}
