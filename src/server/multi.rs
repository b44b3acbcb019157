//! MULTI, EXEC, DISCARD, WATCH, UNWATCH.
//!
//! Between MULTI and EXEC a connection queues its commands (+QUEUED); one refused while queuing (unknown,
//! wrong arity) makes EXEC answer EXECABORT. EXEC takes one multi-shard transaction over every shard its
//! key commands and watched keys live on (shard/tx.rs), checks the watches under it, and runs the queue
//! in order inside it: no other client sees part of it, and each shard logs its part as one transaction
//! unit, so a replica applies it whole. Server commands that address every shard (FLUSHALL, DBSIZE, KEYS,
//! INFO, CONFIG...) run between two such transactions, in their place in the queue.
//!
//! WATCH registers the key on its shard (store::keyspace `watch`): every write, deletion or expiry of it
//! bumps its sequence, and EXEC compares.

use super::conn::Conn;
use crate::cmd::exec::{execute, Exec};
use crate::cmd::{lookup, CmdError, CmdResult, Handler, Special};
use crate::resp::Reply;
use crate::runtime;
use bytes::Bytes;

#[derive(Default)]
pub struct MultiState {
    pub queued: Vec<Vec<Bytes>>,
    /// A command was refused while queuing: EXEC answers EXECABORT.
    pub aborted: bool,
}

/// A WATCHed key and what its shard said at WATCH time.
pub struct Watch {
    db: usize,
    key: Bytes,
    shard: usize,
    seq: u64,
    existed: bool,
}

/// Commands that run at once even inside MULTI.
pub fn runs_in_multi(name: &[u8]) -> bool {
    ["exec", "discard", "multi", "watch", "quit", "reset"]
        .iter()
        .any(|n| name.eq_ignore_ascii_case(n.as_bytes()))
}

/// Connection commands that need no other shard: they run in place inside EXEC's transaction. DEBUG
/// SLEEP stalls this shard with the transaction held, as Valkey's stalls the whole server inside EXEC.
fn inline(which: Special, args: &[Bytes]) -> bool {
    match which {
        Special::Ping | Special::Echo | Special::Select | Special::Time => true,
        Special::Debug => args
            .get(1)
            .is_some_and(|a| a.eq_ignore_ascii_case(b"sleep")),
        _ => false,
    }
}

impl Conn {
    /// Inside MULTI: queues a command, or refuses it (and dooms the transaction). Returns false if the
    /// command must run now instead.
    pub fn queue_in_multi(&mut self, args: &[Bytes], r: &mut Reply) -> bool {
        if self.multi.is_none() {
            return false;
        }
        // As Valkey's processCommand: a command refused before it could queue (or run, for the commands
        // that run inside MULTI) dooms the transaction.
        let err = match lookup(&args[0]) {
            None => Some(CmdError::UnknownCommand {
                name: String::from_utf8_lossy(&args[0]).into_owned(),
                args: crate::cmd::error::quote_args(&args[1..]),
            }),
            Some(spec) if !spec.arity_ok(args.len()) => {
                Some(CmdError::WrongArity(spec.name.into()))
            }
            Some(_) if !self.authed => Some(CmdError::NoAuth),
            Some(spec) if spec.flags.has(crate::cmd::Flags::NO_MULTI) => Some(CmdError::other(
                "ERR Command not allowed inside a transaction",
            )),
            Some(spec)
                if spec.flags.has(crate::cmd::Flags::DENYOOM)
                    && self.local.shard.borrow().over_maxmemory() =>
            {
                Some(CmdError::Oom)
            }
            // A read-only replica, too few good or eligible replicas, a failed WAL: as Valkey, refused
            // at queue time (a write queued on a replica would otherwise run there and diverge it).
            Some(spec) => self.gate_refusal(spec).map(CmdError::other),
        };
        if err.is_none() && runs_in_multi(&args[0]) {
            return false;
        }
        let st = self.multi.as_mut().expect("checked");
        match err {
            Some(e) => {
                st.aborted = true;
                r.error(&e.message());
            }
            None => {
                st.queued.push(args.to_vec());
                r.simple("QUEUED");
            }
        }
        true
    }

    pub fn multi_cmd(&mut self, r: &mut Reply) -> CmdResult {
        if let Some(st) = self.multi.as_mut() {
            // Valkey: the error also dooms the transaction.
            st.aborted = true;
            return Err(CmdError::other("ERR MULTI calls can not be nested"));
        }
        self.multi = Some(MultiState::default());
        r.ok();
        Ok(())
    }

    pub async fn discard_cmd(&mut self, r: &mut Reply) -> CmdResult {
        if self.multi.take().is_none() {
            return Err(CmdError::other("ERR DISCARD without MULTI"));
        }
        self.unwatch_all().await;
        r.ok();
        Ok(())
    }

    pub async fn watch_cmd(&mut self, a: &[Bytes], r: &mut Reply) -> CmdResult {
        if let Some(st) = self.multi.as_mut() {
            st.aborted = true;
            return Err(CmdError::other("ERR WATCH inside MULTI is not allowed"));
        }
        for k in &a[1..] {
            let (db, shard, key, now) = (self.db, self.shard_of(k), k.clone(), runtime::now_ms());
            let kk = key.clone();
            let (seq, existed) = self
                .local
                .call(shard, crate::shard::mesh::Kind::Normal, move |sh| {
                    sh.ks.watch(db, &kk, now)
                })
                .await;
            self.watched.push(Watch {
                db,
                key,
                shard,
                seq,
                existed,
            });
        }
        r.ok();
        Ok(())
    }

    pub async fn unwatch_cmd(&mut self, r: &mut Reply) -> CmdResult {
        self.unwatch_all().await;
        r.ok();
        Ok(())
    }

    /// Forgets every WATCH of this connection (EXEC, DISCARD, UNWATCH, RESET, disconnect).
    pub async fn unwatch_all(&mut self) {
        for w in std::mem::take(&mut self.watched) {
            let _ = self
                .local
                .call(w.shard, crate::shard::mesh::Kind::Normal, move |sh| {
                    sh.ks.unwatch(w.db, &w.key)
                })
                .await;
        }
    }

    pub async fn exec_cmd(&mut self, r: &mut Reply) -> CmdResult {
        let Some(st) = self.multi.take() else {
            return Err(CmdError::other("ERR EXEC without MULTI"));
        };
        if st.aborted {
            self.unwatch_all().await;
            return Err(CmdError::other(
                "EXECABORT Transaction discarded because of previous errors.",
            ));
        }
        // Over maxmemory, a transaction with a command that may use memory is refused whole, before
        // anything runs (Valkey's rule, and its words).
        let denyoom = st
            .queued
            .iter()
            .any(|a| lookup(&a[0]).is_some_and(|s| s.flags.has(crate::cmd::Flags::DENYOOM)));
        if denyoom && self.local.shard.borrow().over_maxmemory() {
            self.unwatch_all().await;
            return Err(CmdError::other(format!(
                "EXECABORT Transaction discarded because of: {}",
                CmdError::Oom.message()
            )));
        }
        // A write queued before this node became a read-only replica (or lost its good replicas): EXEC
        // itself counts as a write then, and is refused whole (Valkey's processCommand).
        let refused = st
            .queued
            .iter()
            .filter_map(|a| lookup(&a[0]))
            .filter(|spec| spec.is_write())
            .find_map(|spec| self.gate_refusal(spec));
        if let Some(msg) = refused {
            self.unwatch_all().await;
            return Err(CmdError::other(format!(
                "EXECABORT Transaction discarded because of: {msg}"
            )));
        }
        // Shards of every key command (followed through SELECTs) and of every watched key.
        let mut shards: Vec<usize> = self.watched.iter().map(|w| w.shard).collect();
        let mut write = false;
        for args in &st.queued {
            if let Some(spec) = lookup(&args[0]) {
                match spec.handler {
                    Handler::Key(..) => {
                        shards.extend(spec.keys_of(args).iter().map(|&p| self.shard_of(&args[p])));
                        write |= spec.is_write();
                    }
                    Handler::Special(w) if w.is_key_command() => {
                        shards.extend(self.key_special_shards(w, spec, args));
                        write |= spec.is_write();
                    }
                    Handler::Special(w) if w.is_keyspace_wide() => {
                        shards.extend(0..self.local.nshards());
                        write |= spec.is_write();
                    }
                    Handler::Special(_) => {}
                }
            }
        }
        if shards.is_empty() {
            shards.push(self.local.id);
        }
        let mut tx = Some(self.local.begin_tx(shards.clone(), write).await);
        for w in &self.watched {
            let (db, key, seq, existed, now) =
                (w.db, w.key.clone(), w.seq, w.existed, runtime::now_ms());
            let changed = tx
                .as_ref()
                .expect("held")
                .on(w.shard, move |sh| {
                    sh.ks.watch_changed(db, &key, seq, existed, now)
                })
                .await;
            if changed {
                drop(tx);
                self.unwatch_all().await;
                r.null_array();
                return Ok(());
            }
        }
        r.array(st.queued.len());
        for args in st.queued {
            let spec = lookup(&args[0]).expect("checked when queued");
            let mut out = Reply::new(self.proto);
            // Key commands, and server-wide ones over every shard's keys, run in EXEC's transaction,
            // begun at the first of them.
            let in_tx = match spec.handler {
                Handler::Key(..) => true,
                Handler::Special(w) => w.is_key_command() || w.is_keyspace_wide(),
            };
            if in_tx && tx.is_none() {
                tx = Some(self.local.begin_tx(shards.clone(), write).await);
            }
            match spec.handler {
                Handler::Key(_, merge) => {
                    let held = tx.as_ref().expect("held");
                    let res = match self.target_shard(spec, &args) {
                        Some(s) => {
                            let ex = Exec::new(self.db, runtime::now_ms());
                            let proto = self.proto;
                            out = held
                                .on(s, move |sh| {
                                    let mut o = Reply::new(proto);
                                    execute(sh, spec, &args, &ex, &mut o);
                                    o
                                })
                                .await;
                            Ok(())
                        }
                        None => {
                            self.run_split_in(Some(held), spec, args, merge, &mut out)
                                .await
                        }
                    };
                    if let Err(e) = res {
                        out.error(&e.message());
                    }
                }
                Handler::Special(which) if in_tx => {
                    let held = tx.as_ref().expect("held");
                    let res = if which.is_key_command() {
                        self.key_special(Some(held), which, &args, &mut out).await
                    } else {
                        self.keyspace_wide(Some(held), which, &args, &mut out).await
                    };
                    if let Err(e) = res {
                        out.error(&e.message());
                    }
                }
                Handler::Special(which) => {
                    if !inline(which, &args) {
                        // Server-wide commands take their own transaction, between two of EXEC's.
                        drop(tx.take());
                    }
                    if let Err(e) = self.special(which, &args, &mut out).await {
                        out.error(&e.message());
                    }
                }
            }
            r.raw(&out.buf);
        }
        drop(tx);
        self.unwatch_all().await;
        Ok(())
    }
}
