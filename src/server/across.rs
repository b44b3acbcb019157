//! Key commands whose keys may span shards that a connection runs itself: MSETNX, RENAME, COPY, MOVE (a
//! key's entry moves between shards under one transaction, EXEC's when queued), SORT (server/sort.rs) and
//! SCAN (slot by slot, shard by shard). Commands with a merge rule run split by shard (server/split.rs),
//! other multi-key commands over gathered copies (server/gathered.rs).

use super::conn::Conn;
use crate::cmd::args::{eq, int, lower};
use crate::cmd::keys::parse_db;
use crate::cmd::{CmdError, CmdResult, Spec, Special};
use crate::resp::Reply;
use crate::runtime::{self, Tx};
use crate::shard::mesh::Kind;
use crate::slot::{key_slot, shard_slots, slot_owner, SLOTS};
use crate::store::events;
use crate::store::glob::glob_match;
use crate::store::Entry;
use bytes::Bytes;
use std::sync::Arc;

impl Conn {
    /// Reads what `f` takes of several keys atomically (one transaction over their shards).
    pub async fn fetch_with<T: Send + 'static>(
        &self,
        keys: &[Bytes],
        f: fn(&Entry) -> T,
    ) -> Vec<Option<T>> {
        let shards: Vec<usize> = keys.iter().map(|k| self.shard_of(k)).collect();
        let tx = self.local.begin_tx(shards.clone(), false).await;
        let mut out = Vec::with_capacity(keys.len());
        for (k, s) in keys.iter().zip(shards) {
            let (db, key, now) = (self.db, k.clone(), runtime::now_ms());
            out.push(tx.on(s, move |sh| sh.ks.get(db, &key, now).map(f)).await);
        }
        out
    }

    /// The key commands a connection runs across shards itself (MSETNX, RENAME, RENAMENX, COPY, MOVE,
    /// SORT, SORT_RO), inside the transaction EXEC holds over their shards (`held`), or in their own.
    pub(super) async fn key_special(
        &mut self,
        held: Option<&Tx>,
        which: Special,
        a: &[Bytes],
        r: &mut Reply,
    ) -> CmdResult {
        match which {
            Special::Msetnx => self.msetnx(held, a, r).await,
            Special::Rename | Special::Renamenx => {
                self.rename(held, a, r, which == Special::Renamenx).await
            }
            Special::Copy => self.copy(held, a, r).await,
            Special::Move => self.move_key(held, a, r).await,
            Special::Sort | Special::SortRo => {
                self.sort_cmd(held, a, r, which == Special::SortRo).await
            }
            _ => unreachable!("{which:?} is not a key special"),
        }
    }

    /// The shards `key_special` needs for `a` (EXEC locks them with the rest of its queue): its keys',
    /// and every shard for a SORT whose patterns name other keys.
    pub(super) fn key_special_shards(
        &self,
        which: Special,
        spec: &Spec,
        a: &[Bytes],
    ) -> Vec<usize> {
        let mut v: Vec<usize> = spec
            .keys_of(a)
            .iter()
            .map(|&p| self.shard_of(&a[p]))
            .collect();
        if matches!(which, Special::Sort | Special::SortRo)
            && crate::cmd::sort::parse(a, which == Special::SortRo)
                .is_ok_and(|s| s.reads_patterns())
        {
            v.extend(0..self.local.nshards());
        }
        v
    }

    async fn move_key(&mut self, held: Option<&Tx>, a: &[Bytes], r: &mut Reply) -> CmdResult {
        let n = self.local.shard.borrow().settings.databases;
        int(&a[2])?;
        let dst = parse_db(&a[2], n)?;
        if dst == self.db {
            return Err(CmdError::SameObject);
        }
        let (src, key, now) = (self.db, a[1].clone(), runtime::now_ms());
        let job = move |sh: &mut crate::shard::Shard| {
            if sh.ks.get(dst, &key, now).is_some() {
                return false;
            }
            match sh.ks.remove(src, &key, now) {
                Some(e) => {
                    sh.ks.insert_entry(dst, e);
                    let ev = &mut sh.ks.hooks.events;
                    ev.emit(events::GENERIC, "move_from", src, &key);
                    ev.emit(events::GENERIC, "move_to", dst, &key);
                    sh.signal_ready(dst, &key);
                    true
                }
                None => false,
            }
        };
        let shard = self.shard_of(&a[1]);
        let moved = match held {
            Some(tx) => tx.on(shard, job).await,
            None => self.local.call(shard, Kind::Normal, job).await,
        };
        r.int(moved as i64);
        Ok(())
    }

    async fn msetnx(&mut self, held: Option<&Tx>, a: &[Bytes], r: &mut Reply) -> CmdResult {
        if a.len().is_multiple_of(2) {
            return Err(CmdError::WrongArity("msetnx".into()));
        }
        if self.local.shard.borrow().over_maxmemory() {
            return Err(CmdError::Oom);
        }
        let pairs: Vec<(Bytes, Bytes)> = a[1..]
            .chunks(2)
            .map(|c| (c[0].clone(), c[1].clone()))
            .collect();
        let shards: Vec<usize> = pairs.iter().map(|(k, _)| self.shard_of(k)).collect();
        let tx = self.local.tx_or_held(held, shards.clone(), true).await;
        let mut uniq = shards.clone();
        uniq.sort_unstable();
        uniq.dedup();
        let (db, now) = (self.db, runtime::now_ms());
        let keys = Arc::new(pairs);
        let k2 = keys.clone();
        let any = tx
            .each(&uniq, move |sh| {
                k2.iter().any(|(k, _)| {
                    slot_owner(key_slot(k), sh.nshards) == sh.id && sh.ks.get(db, k, now).is_some()
                })
            })
            .await;
        if any.into_iter().any(|x| x) {
            r.int(0);
            return Ok(());
        }
        tx.each(&uniq, move |sh| {
            for (k, v) in keys.iter() {
                if slot_owner(key_slot(k), sh.nshards) == sh.id {
                    sh.ks.set(db, k, v, None, now);
                    sh.ks.hooks.events.emit(events::STRING, "set", db, k);
                }
            }
        })
        .await;
        r.int(1);
        Ok(())
    }

    async fn rename(
        &mut self,
        held: Option<&Tx>,
        a: &[Bytes],
        r: &mut Reply,
        nx: bool,
    ) -> CmdResult {
        let (src, dst) = (a[1].clone(), a[2].clone());
        let (s1, s2) = (self.shard_of(&src), self.shard_of(&dst));
        let (db, now) = (self.db, runtime::now_ms());
        let tx = self.local.tx_or_held(held, vec![s1, s2], true).await;
        let k = src.clone();
        let exists = tx.on(s1, move |sh| sh.ks.get(db, &k, now).is_some()).await;
        if !exists {
            return Err(CmdError::NoSuchKey);
        }
        if src == dst {
            if nx {
                r.int(0);
            } else {
                r.ok();
            }
            return Ok(());
        }
        if nx {
            let k = dst.clone();
            if tx.on(s2, move |sh| sh.ks.get(db, &k, now).is_some()).await {
                r.int(0);
                return Ok(());
            }
        }
        let e = tx
            .on(s1, move |sh| {
                let e = sh.ks.remove(db, &src, now).expect("checked under lock");
                sh.ks
                    .hooks
                    .events
                    .emit(events::GENERIC, "rename_from", db, &src);
                e
            })
            .await;
        tx.on(s2, move |sh| {
            sh.ks.remove(db, &dst, now);
            sh.ks.insert_entry(db, e.rekey(&dst));
            sh.ks
                .hooks
                .events
                .emit(events::GENERIC, "rename_to", db, &dst);
            sh.signal_ready(db, &dst);
        })
        .await;
        if nx {
            r.int(1);
        } else {
            r.ok();
        }
        Ok(())
    }

    async fn copy(&mut self, held: Option<&Tx>, a: &[Bytes], r: &mut Reply) -> CmdResult {
        let nd = self.local.shard.borrow().settings.databases;
        let (mut dst_db, mut replace) = (self.db, false);
        let mut i = 3;
        while i < a.len() {
            if eq(&a[i], "replace") {
                replace = true;
            } else if eq(&a[i], "db") && i + 1 < a.len() {
                int(&a[i + 1])?;
                dst_db = parse_db(&a[i + 1], nd)?;
                i += 1;
            } else {
                return Err(CmdError::Syntax);
            }
            i += 1;
        }
        let (src, dst) = (a[1].clone(), a[2].clone());
        if src == dst && dst_db == self.db {
            return Err(CmdError::SameObject);
        }
        let (s1, s2) = (self.shard_of(&src), self.shard_of(&dst));
        let (db, now) = (self.db, runtime::now_ms());
        let tx = self.local.tx_or_held(held, vec![s1, s2], true).await;
        let dst_key = dst.clone();
        let Some(e) = tx
            .on(s1, move |sh| {
                sh.ks.get(db, &src, now).map(|e| e.clone_as(&dst_key))
            })
            .await
        else {
            r.int(0);
            return Ok(());
        };
        let done = tx
            .on(s2, move |sh| {
                if sh.ks.get(dst_db, &dst, now).is_some() && !replace {
                    return false;
                }
                sh.ks.remove(dst_db, &dst, now);
                sh.ks.insert_entry(dst_db, e);
                sh.ks
                    .hooks
                    .events
                    .emit(events::GENERIC, "copy_to", dst_db, &dst);
                sh.signal_ready(dst_db, &dst);
                true
            })
            .await;
        r.int(done as i64);
        Ok(())
    }

    /// SCAN: the cursor is the next hash slot to visit. Each call returns whole slots until COUNT keys are
    /// gathered, so a key present for the whole iteration is returned (exactly once, since keys never move
    /// between slots).
    pub(super) async fn scan(&mut self, a: &[Bytes], r: &mut Reply) -> CmdResult {
        let cursor: u64 = std::str::from_utf8(&a[1])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or(CmdError::other("ERR invalid cursor"))?;
        let (mut pattern, mut count, mut typ) = (None, 10usize, None);
        let mut i = 2;
        while i < a.len() {
            if i + 1 >= a.len() {
                return Err(CmdError::Syntax);
            }
            match lower(&a[i]).as_str() {
                "match" => pattern = Some(a[i + 1].clone()),
                "count" => {
                    let c = int(&a[i + 1])?;
                    if c < 1 {
                        return Err(CmdError::Syntax);
                    }
                    count = c as usize;
                }
                "type" => {
                    let t = lower(&a[i + 1]);
                    if !["string", "list", "set", "zset", "hash", "stream"].contains(&t.as_str()) {
                        return Err(CmdError::other(format!("ERR unknown type name '{t}'")));
                    }
                    typ = Some(t)
                }
                _ => return Err(CmdError::Syntax),
            }
            i += 2;
        }
        let n = self.local.nshards();
        let mut slot = (cursor as usize).min(SLOTS);
        let mut keys: Vec<Bytes> = Vec::new();
        while slot < SLOTS && keys.len() < count {
            let s = slot_owner(slot as u16, n);
            let end = shard_slots(s, n).end;
            let (db, now, want) = (self.db, runtime::now_ms(), count - keys.len());
            let (pat, typ) = (pattern.clone(), typ.clone());
            let (got, next) = self
                .local
                .call(s, Kind::Normal, move |sh| {
                    let mut out = Vec::new();
                    let mut sl = slot;
                    let wanted = |e: &Entry| {
                        typ.as_deref()
                            .is_none_or(|t| t == crate::store::types::type_name(e.kind()))
                            && pat.as_ref().is_none_or(|p| glob_match(p, e.key(), false))
                    };
                    while sl < end && out.len() < want {
                        sh.ks.expire_slot(db, sl, now, wanted);
                        for e in sh.ks.slot_entries(db, sl, now) {
                            if wanted(e) {
                                out.push(Bytes::copy_from_slice(e.key()));
                            }
                        }
                        sl += 1;
                    }
                    (out, sl)
                })
                .await;
            keys.extend(got);
            slot = next;
        }
        let next = if slot >= SLOTS { 0 } else { slot };
        r.array(2);
        r.bulk(next.to_string().as_bytes());
        r.array(keys.len());
        keys.iter().for_each(|k| r.bulk(k));
        Ok(())
    }
}
