//! Blocking pops: BLPOP, BRPOP, BLMOVE, BRPOPLPUSH, BLMPOP, BZPOPMIN, BZPOPMAX, BZMPOP.
//!
//! The connection registers as a waiter on the shard of each key it waits for (shard/blocking.rs), then
//! attempts the command (cmd/block.rs, one non-blocking try); while the attempt finds nothing it waits to
//! be woken by a write to one of the keys, CLIENT UNBLOCK, its timeout, or its close, and attempts again.
//! Registering before the first attempt means no push between the attempt and the wait is missed. When
//! every key is on one shard, that shard runs the command itself as soon as a write readies a key
//! (serving its waiters in arrival order) and keeps the reply until the connection's next attempt takes
//! it; otherwise each key's waiters are woken one at a time in arrival order and retry.

use super::conn::Conn;
use super::dispatch::Attempt;
use crate::cmd::block::timeout_ms;
use crate::cmd::table::BlockForm;
use crate::cmd::{CmdError, Spec};
use crate::resp::Reply;
use crate::runtime;
use crate::shard::blocking::{is_null, WaitCmd};
use crate::shard::mesh::Kind;
use bytes::Bytes;
use futures_util::future::{select, Either};
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

impl Conn {
    /// Runs a blocking command outside MULTI. It counts once in the command statistics, whatever its
    /// attempts were: when served, when it fails, when it times out or is unblocked (Valkey's rule; its
    /// attempts are not counted where they run).
    pub async fn run_blocking(&mut self, spec: &'static Spec, args: Vec<Bytes>, r: &mut Reply) {
        let out = self.block(spec, args).await;
        // An OOM refusal was counted as rejected where the attempt ran.
        if !out.starts_with(b"-OOM") {
            let failed = out.first() == Some(&b'-');
            self.local.shard.borrow_mut().stats.call(spec, failed);
        }
        r.raw(&out);
    }

    async fn block(&mut self, spec: &'static Spec, args: Vec<Bytes>) -> Vec<u8> {
        let form = spec.block.unwrap_or(BlockForm::Keys);
        let mpop = form == BlockForm::NumKeys;
        let tpos = if mpop { 1 } else { args.len() - 1 };
        let timeout = match timeout_ms(&args[tpos]) {
            Ok(t) => t,
            Err(e) => {
                let mut r = Reply::new(self.proto);
                r.error(&e.message());
                return r.buf;
            }
        };
        let deadline = timeout.map(|t| runtime::now_ms() + t);
        let positions = spec.keys_of(&args);
        if mpop && positions.is_empty() {
            // A bad numkeys: the attempt reports it.
            return self.attempt(spec, &args, &[]).await;
        }
        let moves = form == BlockForm::Move;
        let mut keys: Vec<Bytes> = positions.iter().map(|&p| args[p].clone()).collect();
        if moves {
            keys.truncate(1);
        }
        keys.dedup();
        {
            let mut i = self.info.borrow_mut();
            i.blocked = true;
            i.unblock = None;
        }
        let (db, id, me) = (self.db, self.id, self.local.id);
        // With every key on one shard, that shard can run the command itself when a key is written.
        let cmd = self.target_shard(spec, &args).map(|_| {
            Arc::new(WaitCmd {
                spec,
                args: args.clone(),
                db,
                proto: self.proto,
            })
        });
        for k in &keys {
            let (k, cmd) = (k.clone(), cmd.clone());
            let s = self.shard_of(&k);
            self.local
                .call(s, Kind::Normal, move |sh| sh.block_on(db, k, id, me, cmd))
                .await;
        }
        let mut first = true;
        let mut hung_up = false;
        let outcome = loop {
            self.info.borrow_mut().ready = false;
            let out = self.attempt(spec, &args, &keys).await;
            // A key that became another type while this waited does not serve it (it stays blocked, as
            // in Valkey); only the first attempt reports WRONGTYPE. A move whose source holds a list is
            // served: its WRONGTYPE is the destination's, and is its answer (Valkey's too).
            let mut wrong_later = !first && out.starts_with(b"-WRONGTYPE");
            if wrong_later && moves {
                let src = self.fetch_with(&keys[..1], |e| e.kind()).await;
                wrong_later = src[0] != Some(crate::store::types::LIST);
            }
            first = false;
            if !is_null(&out) && !wrong_later {
                break Some(out);
            }
            let woken = pin!(self.until(|c| {
                let i = c.info.borrow();
                i.ready || i.unblock.is_some() || c.should_stop()
            }));
            // A client that hung up while blocked is gone (Valkey frees it): it must not be served an
            // element nobody will read.
            let gone = pin!(self.hangup());
            let waited = select(woken, gone);
            let left = deadline.map(|d| Duration::from_millis(d.saturating_sub(runtime::now_ms())));
            let timer = pin!(async {
                match left {
                    Some(l) => runtime::sleep(l).await,
                    None => std::future::pending().await,
                }
            });
            match select(waited, timer).await {
                Either::Right(_) => break None,
                Either::Left((Either::Right(_), _)) => {
                    hung_up = true;
                    break None;
                }
                Either::Left(_) => {}
            }
            if self.should_stop() {
                break None;
            }
            match self.info.borrow_mut().unblock.take() {
                Some(true) => {
                    let mut e = Reply::new(self.proto);
                    e.error("UNBLOCKED client unblocked via CLIENT UNBLOCK");
                    break Some(e.buf);
                }
                Some(false) => break None,
                None => {}
            }
        };
        // A reply a shard served meanwhile is the answer whatever ended the wait (a timeout, CLIENT
        // UNBLOCK, a WRONGTYPE seen just before): the command ran there and its element left the key.
        // Only a connection closing drops it.
        let mut served = None;
        for k in keys {
            let s = self.shard_of(&k);
            let got = self
                .local
                .call(s, Kind::Normal, move |sh| sh.unblock_from(db, &k, id))
                .await;
            served = served.or(got);
        }
        self.info.borrow_mut().blocked = false;
        if hung_up {
            self.closing = true;
        }
        served.or(outcome).unwrap_or_else(|| {
            let mut r = Reply::new(self.proto);
            r.null_array();
            r.buf
        })
    }

    /// Resolves when the client closed its connection (never, for a connection with no socket).
    async fn hangup(&self) {
        match &self.socket {
            Some(s) => runtime::hangup::peer_closed(s).await,
            None => std::future::pending().await,
        }
    }

    /// One non-blocking attempt. Keys on one shard: the command itself there. Otherwise each key in
    /// order as a command of its own (a pop from the first that has something), and moves through the
    /// multi-shard path.
    async fn attempt(&mut self, spec: &'static Spec, args: &[Bytes], keys: &[Bytes]) -> Vec<u8> {
        let client = self.id;
        if let Some(s) = self.target_shard(spec, args) {
            let keys = keys.to_vec();
            return self
                .run_key_as(s, spec, args.to_vec(), Some(Attempt { client, keys }))
                .await;
        }
        let form = spec.block.unwrap_or(BlockForm::Keys);
        if form == BlockForm::Move {
            let mut r = Reply::new(self.proto);
            if let Err(e) = self.run_split(spec, args.to_vec(), None, &mut r).await {
                r.error(&e.message());
            }
            return r.buf;
        }
        for p in spec.keys_of(args) {
            let one: Vec<Bytes> = if form == BlockForm::NumKeys {
                let n: usize = std::str::from_utf8(&args[2])
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                let mut v = vec![
                    args[0].clone(),
                    args[1].clone(),
                    Bytes::from_static(b"1"),
                    args[p].clone(),
                ];
                v.extend_from_slice(&args[3 + n..]);
                v
            } else {
                vec![
                    args[0].clone(),
                    args[p].clone(),
                    args[args.len() - 1].clone(),
                ]
            };
            let s = self.shard_of(&args[p]);
            let keys = Vec::new();
            let out = self
                .run_key_as(s, spec, one, Some(Attempt { client, keys }))
                .await;
            if !is_null(&out) {
                return out;
            }
        }
        let mut r = Reply::new(self.proto);
        r.null_array();
        r.buf
    }
}

/// CLIENT UNBLOCK's work on one shard: whether the client was blocked here (and is now told to stop).
pub fn unblock_client(sh: &mut crate::shard::Shard, id: u64, error: bool) -> bool {
    let Some(c) = sh.clients.get(&id) else {
        return false;
    };
    let mut c = c.borrow_mut();
    if !c.blocked {
        return false;
    }
    c.unblock = Some(error);
    if let Some(w) = c.waker.take() {
        w.wake();
    }
    true
}

/// The error a bad CLIENT UNBLOCK mode gets.
pub fn bad_unblock_mode() -> CmdError {
    CmdError::other("ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR")
}
