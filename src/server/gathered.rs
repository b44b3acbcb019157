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
use crate::shard::Shard;
use bytes::Bytes;

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
        let tx = self
            .local
            .tx_or_held(held, owners.clone(), spec.is_write())
            .await;
        let (db, now) = (self.db, runtime::now_ms());
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
        for (k, &s) in keys.iter().zip(&owners) {
            let key = k.clone();
            let e = tx.on(s, move |sh| sh.ks.get(db, &key, now).cloned()).await;
            if let Some(e) = e {
                scratch.ks.insert_entry(0, e);
            }
            before.push(scratch.ks.watch(0, k, now));
        }
        let ex = Exec::new(0, now);
        let mut out = Reply::new(self.proto);
        execute_part(&mut scratch, spec, &a, &ex, &mut out);
        if spec.is_write() {
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
}
