//! SORT and SORT_RO across shards (the logic is cmd/sort.rs): the source is read on its shard, the values
//! its BY and GET patterns name are fetched from whichever shards own them (one message per shard per
//! pattern), and a STORE destination is written on its shard, all under one multi-shard transaction: over
//! every shard when a pattern names other keys (a pattern can name any key, so every shard is locked for
//! the read), over the source's and destination's shards otherwise. So SORT is atomic for every other
//! client, as in Valkey, and a STORE is logged as the destination's resulting state.

use super::conn::Conn;
use crate::cmd::sort::{self, Named, SortArgs};
use crate::cmd::{CmdError, CmdResult};
use crate::resp::Reply;
use crate::runtime::{self, Tx};
use crate::store::types::{Coll, List};
use crate::store::{events, Entry};
use bytes::Bytes;

impl Conn {
    pub(super) async fn sort_cmd(
        &mut self,
        held: Option<&Tx>,
        a: &[Bytes],
        r: &mut Reply,
        readonly: bool,
    ) -> CmdResult {
        let s = sort::parse(a, readonly)?;
        if s.store.is_some() && self.local.shard.borrow().over_maxmemory() {
            return Err(CmdError::Oom);
        }
        let src = a[1].clone();
        let mut shards = vec![self.shard_of(&src)];
        if let Some(d) = &s.store {
            shards.push(self.shard_of(d));
        }
        if s.reads_patterns() {
            shards.extend(0..self.local.nshards());
        }
        let tx = self.local.tx_or_held(held, shards, s.store.is_some()).await;
        let (db, now) = (self.db, runtime::now_ms());
        let (kind, elems) = tx
            .on(self.shard_of(&src), move |sh| {
                sort::source(sh, db, &src, now)
            })
            .await?;
        let by = match &s.by {
            Some(p) if !elems.is_empty() => Some(self.pattern_values(&tx, p, &elems).await),
            _ => None,
        };
        let picked = sort::order(kind, elems, by, &s)?;
        let mut gets = Vec::with_capacity(s.gets.len());
        for g in &s.gets {
            gets.push(self.pattern_values(&tx, g, &picked).await);
        }
        match s.store.clone() {
            None => reply(r, &s, &picked, &gets),
            Some(dst) => {
                let n = self.store(&tx, dst, &s, picked, gets).await;
                r.int(n as i64);
            }
        }
        Ok(())
    }

    /// The value `pattern` names for each element (None: missing), fetched shard by shard.
    async fn pattern_values(
        &self,
        tx: &Tx,
        pattern: &Bytes,
        elems: &[Vec<u8>],
    ) -> Vec<Option<Vec<u8>>> {
        let mut out: Vec<Option<Vec<u8>>> = vec![None; elems.len()];
        // Per shard: (element position, key, hash field) of the lookups it answers.
        type Wanted = Vec<(usize, Vec<u8>, Option<Vec<u8>>)>;
        let mut per_shard: Vec<(usize, Wanted)> = Vec::new();
        for (i, e) in elems.iter().enumerate() {
            match sort::resolve(pattern, e) {
                Named::Elem => out[i] = Some(e.clone()),
                Named::Nothing => {}
                Named::Key(k, f) => {
                    let s = self.shard_of(&k);
                    match per_shard.iter_mut().find(|(x, _)| *x == s) {
                        Some((_, v)) => v.push((i, k, f)),
                        None => per_shard.push((s, vec![(i, k, f)])),
                    }
                }
            }
        }
        let (db, now) = (self.db, runtime::now_ms());
        for (s, wanted) in per_shard {
            let got = tx
                .on(s, move |sh| {
                    wanted
                        .into_iter()
                        .map(|(i, k, f)| (i, sort::lookup(sh, db, &k, f.as_deref(), now)))
                        .collect::<Vec<_>>()
                })
                .await;
            for (i, v) in got {
                out[i] = v;
            }
        }
        out
    }

    /// STORE: the output as a list at `dst` (a missing GET value as an empty string), or `dst` deleted
    /// when the output is empty; returns the output's length.
    async fn store(
        &self,
        tx: &Tx,
        dst: Bytes,
        s: &SortArgs,
        picked: Vec<Vec<u8>>,
        gets: Vec<Vec<Option<Vec<u8>>>>,
    ) -> usize {
        let mut out: Vec<Vec<u8>> = Vec::new();
        for (i, e) in picked.into_iter().enumerate() {
            if s.gets.is_empty() {
                out.push(e);
            } else {
                out.extend(gets.iter().map(|g| g[i].clone().unwrap_or_default()));
            }
        }
        let n = out.len();
        let (db, now) = (self.db, runtime::now_ms());
        tx.on(self.shard_of(&dst), move |sh| {
            let existed = sh.ks.remove(db, &dst, now).is_some();
            if out.is_empty() {
                if existed {
                    sh.ks.hooks.events.emit(events::GENERIC, "del", db, &dst);
                }
                return;
            }
            let lim = sh.ks.limits;
            let mut l = List::default();
            for v in &out {
                l.push_back(v, &lim);
            }
            sh.ks
                .insert_entry(db, Entry::with_coll(&dst, Coll::List(l), None));
            sh.ks.hooks.events.emit(events::LIST, "sortstore", db, &dst);
            sh.signal_ready(db, &dst);
        })
        .await;
        n
    }
}

/// The reply without STORE: the elements, or per element its GET values (null when missing).
fn reply(r: &mut Reply, s: &SortArgs, picked: &[Vec<u8>], gets: &[Vec<Option<Vec<u8>>>]) {
    if s.gets.is_empty() {
        r.array(picked.len());
        picked.iter().for_each(|e| r.bulk(e));
        return;
    }
    r.array(picked.len() * gets.len());
    for i in 0..picked.len() {
        for g in gets {
            match &g[i] {
                Some(v) => r.bulk(v),
                None => r.null(),
            }
        }
    }
}
