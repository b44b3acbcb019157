//! A key command whose keys span shards and that has no merge rule (SINTERSTORE, LMOVE, ZUNION...): under
//! one transaction over the keys' shards, copies of its keys are gathered into a scratch shard, the
//! command's own handler runs there, and the keys it changed are written back to their shards. So every
//! multi-key command has one implementation, and is atomic for every other client.
//!
//! Cost: each key is copied once to the coordinator and, if changed, once back (the scratch shard itself
//! is built once per shard thread and kept: `Local::scratch`); the shard log records the
//! changed keys' resulting states (a collection as its whole value), as for any multi-key write across
//! slots (shard/log.rs).

use super::conn::Conn;
use crate::cmd::exec::{execute_part, Exec};
use crate::cmd::{CmdResult, Spec};
use crate::resp::Reply;
use crate::runtime;
use crate::shard::mesh::Job;
use crate::shard::Shard;
use crate::store::Entry;
use bytes::Bytes;
use futures_channel::oneshot;

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
        let owners: Vec<usize> = keys.iter().map(|k| self.shard_of(k)).collect();
        let (db, now) = (self.db, runtime::now_ms());
        // A read takes its copies in a combined transaction (its parts run as the shards are locked,
        // server/split.rs) and needs no lock after; a write holds its shards until written back.
        let (tx, mut fetched) = if spec.is_write() || held.is_some() {
            let tx = self
                .local
                .tx_or_held(held, owners.clone(), spec.is_write())
                .await;
            let mut fetched = Vec::with_capacity(keys.len());
            for (k, &s) in keys.iter().zip(&owners) {
                let key = k.clone();
                fetched.push(tx.on(s, move |sh| sh.ks.get(db, &key, now).cloned()).await);
            }
            (Some(tx), fetched)
        } else {
            (None, self.fetch_combined(db, now, &keys, &owners).await)
        };
        let mut scratch = self.local.scratch.borrow_mut().take().unwrap_or_else(|| {
            let sh = self.local.shard.borrow();
            Box::new(Shard::new(
                0,
                1,
                sh.config.clone(),
                now,
                tandem_sync::replid::ReplId::from_random([0; 20]),
            ))
        });
        {
            // The handler reads the configuration the shard has now (CONFIG SET since the last use).
            let sh = self.local.shard.borrow();
            scratch.settings = sh.settings.clone();
            scratch.ks.limits = sh.ks.limits;
        }
        // Events are raised where the keys live, when they are written back.
        scratch.ks.hooks.events.flags = 0;
        // A key the handler writes is one whose WATCH sequence in the scratch shard moves (as for WATCH
        // itself: written even if to the same value, as Valkey's signalModifiedKey counts it); only those
        // go back to their shards.
        let mut before = Vec::with_capacity(keys.len());
        for (k, e) in keys.iter().zip(fetched.iter_mut()) {
            if let Some(e) = e.take() {
                scratch.ks.insert_entry(0, e);
            }
            before.push(scratch.ks.watch(0, k, now));
        }
        let ex = Exec::new(0, now);
        let mut out = Reply::new(self.proto);
        execute_part(&mut scratch, spec, &a, &ex, &mut out);
        if let Some(tx) = tx.as_ref().filter(|_| spec.is_write()) {
            for ((k, &s), (seq, existed)) in keys.iter().zip(&owners).zip(&before) {
                if !scratch.ks.watch_changed(0, k, *seq, *existed, now) {
                    continue;
                }
                let after = scratch.ks.remove(0, k, now);
                let (key, args) = (k.clone(), a.clone());
                tx.on(s, move |sh| {
                    sh.ks.remove(db, &key, now);
                    let exists = after.is_some();
                    if let Some(e) = after {
                        sh.ks.insert_entry(db, e);
                        sh.signal_ready(db, &key);
                    }
                    if let Some(e) =
                        crate::cmd::events::of(spec).filter(|_| sh.ks.hooks.events.on())
                    {
                        crate::cmd::events::raise(sh, e, &args, db, &key, exists);
                    }
                })
                .await;
            }
        }
        // Left empty for the next use (a read leaves its copies there); one that is not is dropped.
        for k in &keys {
            scratch.ks.hooks.watched.unwatch(0, k);
            scratch.ks.remove(0, k, now);
        }
        if scratch.ks.total_keys() == 0 && scratch.ks.hooks.watched.is_empty() {
            *self.local.scratch.borrow_mut() = Some(scratch);
        }
        r.raw(&out.buf);
        Ok(())
    }

    /// Copies of `keys` (on `owners`) taken in one transaction combined with others (`Local::tx_combined`).
    async fn fetch_combined(
        &self,
        db: usize,
        now: u64,
        keys: &[Bytes],
        owners: &[usize],
    ) -> Vec<Option<Entry>> {
        let mut shards: Vec<usize> = owners.to_vec();
        shards.sort_unstable();
        shards.dedup();
        let mut rxs = Vec::with_capacity(shards.len());
        let jobs: Vec<(usize, Job)> = shards
            .iter()
            .map(|&s| {
                let mine: Vec<Bytes> = keys
                    .iter()
                    .zip(owners)
                    .filter(|(_, &o)| o == s)
                    .map(|(k, _)| k.clone())
                    .collect();
                let (tx, rx) = oneshot::channel();
                rxs.push(rx);
                let job: Job = Box::new(move |sh| {
                    let got: Vec<Option<Entry>> = mine
                        .iter()
                        .map(|k| sh.ks.get(db, k, now).cloned())
                        .collect();
                    let _ = tx.send(got);
                });
                (s, job)
            })
            .collect();
        self.local.tx_combined(jobs, false).await;
        let mut per_shard = Vec::with_capacity(shards.len());
        for rx in rxs {
            per_shard.push(rx.await.expect("every part ran").into_iter());
        }
        owners
            .iter()
            .map(|o| {
                let i = shards.binary_search(o).expect("an owner's shard");
                per_shard[i].next().expect("one copy per key")
            })
            .collect()
    }
}
