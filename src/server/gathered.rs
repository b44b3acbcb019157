//! A key command whose keys span shards and that has no merge rule (SINTERSTORE, LMOVE, ZUNION...): under
//! one transaction over the keys' shards, copies of its keys are gathered into a scratch shard, the
//! command's own handler runs there, and the keys it changed are written back to their shards. So every
//! multi-key command has one implementation, and is atomic for every other client.
//!
//! Where the handler runs: a read, on the connection's thread over copies taken in a combined transaction
//! (server/split.rs); a write, on the last shard it locks, in the message that locks it, with the other
//! shards' copies sent as they were locked (`write_last`: two hops between threads in all); inside EXEC,
//! on the connection's thread, a hop per shard read and per shard written back.
//!
//! Cost: each key is copied once and, if changed, once back (the scratch shard itself is built once per
//! shard thread and kept: `Local::scratch`); the shard log records the changed keys' resulting states (a
//! collection as its whole value), as for any multi-key write across slots (shard/log.rs).

use super::conn::Conn;
use crate::cmd::exec::{execute_part, Exec};
use crate::cmd::{CmdResult, Spec};
use crate::resp::{Proto, Reply};
use crate::runtime;
use crate::runtime::local::{Local, Part};
use crate::shard::Shard;
use crate::slot::{key_slot, slot_owner};
use crate::store::Entry;
use bytes::Bytes;
use std::sync::{Arc, Mutex};

/// A key's copy, or the state a command left it in.
type Copy = (Bytes, Option<Entry>);

/// What the handler's run gives: its reply, and the keys of other shards it wrote.
type Ran = (Vec<u8>, Vec<Copy>);

impl Conn {
    pub async fn run_gathered(
        &mut self,
        held: Option<&crate::runtime::Tx>,
        spec: &'static Spec,
        a: Vec<Bytes>,
        r: &mut Reply,
    ) -> CmdResult {
        let mut keys: Vec<Bytes> = spec.keys_of(&a).into_iter().map(|p| a[p].clone()).collect();
        keys.sort();
        keys.dedup();
        let groups = self.by_shard(keys);
        let (db, now) = (self.db, runtime::now_ms());
        if !spec.is_write() && held.is_none() {
            // A read takes its copies in a combined transaction (its parts run as the shards are locked,
            // server/split.rs) and needs no lock after.
            let parts: Vec<(usize, Part<Vec<Copy>>)> = groups
                .into_iter()
                .map(|(s, mine)| {
                    let part: Part<_> =
                        Box::new(move |sh: &mut Shard| copies_of(sh, db, mine, now));
                    (s, part)
                })
                .collect();
            let copies = self.local.tx_combined_with(parts, false).await;
            let (out, _) = self.in_scratch(spec, &a, copies.into_iter().flatten().collect(), now);
            r.raw(&out);
            return Ok(());
        }
        let Some(tx) = held else {
            return self.write_last(spec, a, groups, r).await;
        };
        // Inside EXEC's transaction: a hop per shard read and per shard written back.
        let mut copies = Vec::new();
        for (s, mine) in groups {
            copies.extend(tx.on(s, move |sh| copies_of(sh, db, mine, now)).await);
        }
        let (out, changed) = self.in_scratch(spec, &a, copies, now);
        for (s, mine) in self.by_shard(changed) {
            let args = a.clone();
            tx.on(s, move |sh| write_back(sh, spec, &args, db, mine, now))
                .await;
        }
        r.raw(&out);
        Ok(())
    }

    /// Keys (or key states) grouped by the shard that owns each, shards ascending, each group in the
    /// order given.
    fn by_shard<T: AsKey>(&self, items: Vec<T>) -> Vec<(usize, Vec<T>)> {
        let mut groups: Vec<(usize, Vec<T>)> = Vec::new();
        for it in items {
            let s = self.shard_of(it.key());
            match groups.binary_search_by_key(&s, |g| g.0) {
                Ok(i) => groups[i].1.push(it),
                Err(i) => groups.insert(i, (s, vec![it])),
            }
        }
        groups
    }

    /// `in_scratch` on this connection's thread.
    fn in_scratch(&self, spec: &'static Spec, a: &[Bytes], copies: Vec<Copy>, now: u64) -> Ran {
        let sh = self.local.shard.borrow();
        in_scratch(&self.local, &sh, spec, a, copies, now, self.proto)
    }

    /// A write in a transaction of its own: each shard but the last sends copies of its keys as it is
    /// locked; the last (locked last, so the transaction holds everything by then) runs the handler over
    /// them and its own, writes its own keys back and is released in the same message (`Kind::Once`);
    /// then each other shard whose keys changed is written back and released in one message. Two hops in
    /// all between threads, however many keys (a hop per key read and written before).
    async fn write_last(
        &mut self,
        spec: &'static Spec,
        a: Vec<Bytes>,
        groups: Vec<(usize, Vec<Bytes>)>,
        r: &mut Reply,
    ) -> CmdResult {
        let (db, now, proto) = (self.db, runtime::now_ms(), self.proto);
        let last = groups.last().expect("a command across shards has keys").0;
        let gathered: Arc<Mutex<Vec<Copy>>> = Arc::default();
        let mut parts: Vec<(usize, Part<Option<Ran>>)> = Vec::new();
        for (s, mine) in groups {
            let gathered = gathered.clone();
            let args = a.clone();
            let part: Part<_> = if s != last {
                Box::new(move |sh: &mut Shard| {
                    let copies = copies_of(sh, db, mine, now);
                    gathered.lock().expect("not poisoned").extend(copies);
                    None
                })
            } else {
                Box::new(move |sh: &mut Shard| {
                    let mut copies = std::mem::take(&mut *gathered.lock().expect("not poisoned"));
                    copies.extend(copies_of(sh, db, mine, now));
                    let local = runtime::current_local();
                    let (out, changed) = in_scratch(&local, sh, spec, &args, copies, now, proto);
                    let n = sh.nshards;
                    let (own, others): (Vec<Copy>, Vec<Copy>) = changed
                        .into_iter()
                        .partition(|(k, _)| slot_owner(key_slot(k), n) == sh.id);
                    write_back(sh, spec, &args, db, own, now);
                    Some((out, others))
                })
            };
            parts.push((s, part));
        }
        let (mut tx, mut ran) = self.local.begin_tx_with(parts, true).await;
        let (out, others) = ran.pop().flatten().expect("the last shard ran the command");
        let mut pending = Vec::new();
        for (s, mine) in self.by_shard(others) {
            let args = a.clone();
            pending.push(tx.release_with(s, move |sh: &mut Shard| {
                write_back(sh, spec, &args, db, mine, now)
            }));
        }
        for p in pending {
            let _ = p.await;
        }
        drop(tx);
        r.raw(&out);
        Ok(())
    }
}

/// What `Conn::by_shard` groups: a key, or a key's state.
trait AsKey {
    fn key(&self) -> &[u8];
}

impl AsKey for Bytes {
    fn key(&self) -> &[u8] {
        self
    }
}

impl AsKey for Copy {
    fn key(&self) -> &[u8] {
        &self.0
    }
}

/// Copies of `keys` as this shard holds them.
fn copies_of(sh: &mut Shard, db: usize, keys: Vec<Bytes>, now: u64) -> Vec<Copy> {
    keys.into_iter()
        .map(|k| {
            let e = sh.ks.get(db, &k, now).cloned();
            (k, e)
        })
        .collect()
}

/// Runs `spec` over `copies` in this thread's scratch shard (built once and kept: `Local::scratch`),
/// configured as `sh` is now; returns the reply and the state of every key the handler wrote. A key it
/// writes is one whose WATCH sequence in the scratch moves (as for WATCH itself: written even if to the
/// same value, as Valkey's signalModifiedKey counts it). The scratch is left empty.
fn in_scratch(
    local: &Local,
    sh: &Shard,
    spec: &'static Spec,
    a: &[Bytes],
    copies: Vec<Copy>,
    now: u64,
    proto: Proto,
) -> (Vec<u8>, Vec<Copy>) {
    let mut scratch = local.scratch.borrow_mut().take().unwrap_or_else(|| {
        Box::new(Shard::new(
            0,
            1,
            sh.config.clone(),
            now,
            tandem_sync::replid::ReplId::from_random([0; 20]),
        ))
    });
    // The handler reads the configuration the shard has now (CONFIG SET since the last use).
    scratch.settings = sh.settings.clone();
    scratch.ks.limits = sh.ks.limits;
    // Events are raised where the keys live, when they are written back.
    scratch.ks.hooks.events.flags = 0;
    let mut before = Vec::with_capacity(copies.len());
    let mut keys = Vec::with_capacity(copies.len());
    for (k, e) in copies {
        if let Some(e) = e {
            scratch.ks.insert_entry(0, e);
        }
        before.push(scratch.ks.watch(0, &k, now));
        keys.push(k);
    }
    let mut out = Reply::new(proto);
    execute_part(&mut scratch, spec, a, &Exec::new(0, now), &mut out);
    let mut changed = Vec::new();
    for (k, (seq, existed)) in keys.iter().zip(before) {
        if spec.is_write() && scratch.ks.watch_changed(0, k, seq, existed, now) {
            changed.push((k.clone(), scratch.ks.remove(0, k, now)));
        }
        scratch.ks.hooks.watched.unwatch(0, k);
        scratch.ks.remove(0, k, now);
    }
    // Kept for the next use only if empty.
    if scratch.ks.total_keys() == 0 && scratch.ks.hooks.watched.is_empty() {
        *local.scratch.borrow_mut() = Some(scratch);
    }
    (out.buf, changed)
}

/// Puts the keys' states after a gathered command back on their shard, with the command's event and the
/// wake-up of clients blocked on them.
fn write_back(
    sh: &mut Shard,
    spec: &'static Spec,
    args: &[Bytes],
    db: usize,
    keys: Vec<Copy>,
    now: u64,
) {
    for (key, after) in keys {
        sh.ks.remove(db, &key, now);
        let exists = after.is_some();
        if let Some(e) = after {
            sh.ks.insert_entry(db, e);
            sh.signal_ready(db, &key);
        }
        if let Some(e) = crate::cmd::events::of(spec).filter(|_| sh.ks.hooks.events.on()) {
            crate::cmd::events::raise(sh, e, args, db, &key, exists);
        }
    }
}
