//! Commands over every shard's keys: DBSIZE, KEYS, RANDOMKEY, FLUSHDB, FLUSHALL, SWAPDB. Alone, the
//! writes run as one transaction over every shard and the reads shard by shard (as Valkey's, they see no
//! single instant when others write meanwhile); inside EXEC they all run in EXEC's transaction, which
//! then holds every shard, so the transaction stays atomic for every other client.

use super::conn::Conn;
use crate::cmd::args::{eq, int};
use crate::cmd::keys::parse_db;
use crate::cmd::{CmdError, CmdResult, Special};
use crate::resp::Reply;
use crate::runtime::{self, Tx};
use crate::shard::mesh::Kind;
use crate::shard::Shard;
use crate::store::glob::glob_match;
use bytes::Bytes;

impl Special {
    /// Commands `Conn::keyspace_wide` runs: EXEC locks every shard for them.
    pub fn is_keyspace_wide(self) -> bool {
        matches!(
            self,
            Special::Dbsize
                | Special::Flushdb
                | Special::Flushall
                | Special::Swapdb
                | Special::Keys
                | Special::Randomkey
        )
    }
}

impl Conn {
    /// Runs `f` on every shard: in `held` (EXEC's, holding every shard), or as a broadcast.
    async fn on_all<R, F>(&self, held: Option<&Tx>, f: F) -> Vec<R>
    where
        R: Send + 'static,
        F: Fn(&mut Shard) -> R + Send + Clone + 'static,
    {
        match held {
            Some(tx) => {
                let all: Vec<usize> = (0..self.local.nshards()).collect();
                tx.each(&all, f).await
            }
            None => self.local.broadcast(f).await,
        }
    }

    pub(super) async fn keyspace_wide(
        &mut self,
        held: Option<&Tx>,
        which: Special,
        a: &[Bytes],
        r: &mut Reply,
    ) -> CmdResult {
        let db = self.db;
        match which {
            Special::Dbsize => {
                let n: usize = self
                    .on_all(held, move |sh| sh.ks.len(db))
                    .await
                    .into_iter()
                    .sum();
                r.int(n as i64);
            }
            Special::Keys => {
                let (pat, now) = (a[1].clone(), runtime::now_ms());
                let parts = self
                    .on_all(held, move |sh| {
                        sh.ks
                            .entries(db, now)
                            .filter(|e| glob_match(&pat, e.key(), false))
                            .map(|e| Bytes::copy_from_slice(e.key()))
                            .collect::<Vec<_>>()
                    })
                    .await;
                let total: usize = parts.iter().map(Vec::len).sum();
                r.array(total);
                parts.iter().flatten().for_each(|k| r.bulk(k));
            }
            Special::Randomkey => {
                let n = self.local.nshards();
                let start = self.local.shard.borrow_mut().rand_below(n);
                for i in 0..n {
                    let s = (start + i) % n;
                    let now = runtime::now_ms();
                    let pick = move |sh: &mut Shard| {
                        let mut x = sh.rand_below(usize::MAX);
                        sh.ks.random_key(db, now, |m| {
                            x = x
                                .wrapping_mul(6364136223846793005)
                                .wrapping_add(1442695040888963407);
                            (x >> 17) % m
                        })
                    };
                    let k = match held {
                        Some(tx) => tx.on(s, pick).await,
                        None => self.local.call(s, Kind::Normal, pick).await,
                    };
                    if let Some(k) = k {
                        r.bulk(&k);
                        return Ok(());
                    }
                }
                r.null();
            }
            Special::Flushdb | Special::Flushall => {
                if a.len() > 2 || (a.len() == 2 && !eq(&a[1], "async") && !eq(&a[1], "sync")) {
                    return Err(CmdError::Syntax);
                }
                let only = (which == Special::Flushdb).then_some(db);
                self.write_all(held, move |sh| {
                    match only {
                        Some(d) => sh.ks.flush_db(d),
                        None => (0..sh.ks.databases()).for_each(|d| sh.ks.flush_db(d)),
                    }
                    match only {
                        Some(d) => sh.log_record(d, &[b"FLUSHDB"]),
                        None => sh.log_record(0, &[b"FLUSHALL"]),
                    }
                })
                .await;
                r.ok();
            }
            Special::Swapdb => {
                let n = self.local.shard.borrow().settings.databases;
                // Valkey's words: a non-integer index names its position, a bad number the range.
                int(&a[1]).map_err(|_| CmdError::other("ERR invalid first DB index"))?;
                int(&a[2]).map_err(|_| CmdError::other("ERR invalid second DB index"))?;
                let (x, y) = (parse_db(&a[1], n)?, parse_db(&a[2], n)?);
                self.write_all(held, move |sh| {
                    sh.ks.swap_db(x, y);
                    sh.signal_swapped(x, y);
                    let (a, b) = (x.to_string(), y.to_string());
                    sh.log_record(0, &[b"SWAPDB", a.as_bytes(), b.as_bytes()]);
                })
                .await;
                r.ok();
            }
            _ => unreachable!("{which:?} is not keyspace-wide"),
        }
        Ok(())
    }

    /// Runs a write on every shard in one transaction (EXEC's, or its own).
    async fn write_all<F>(&self, held: Option<&Tx>, f: F)
    where
        F: Fn(&mut Shard) + Send + Clone + 'static,
    {
        let all: Vec<usize> = (0..self.local.nshards()).collect();
        let tx = self.local.tx_or_held(held, all.clone(), true).await;
        tx.each(&all, f).await;
    }
}
