//! Dispatch of a connection's commands.
//!
//! A pipeline's consecutive key commands are grouped; those whose keys live on this shard run here
//! directly, the others go as **one message per target shard**, all in flight at once, and the replies are
//! written back in command order. Commands on the same key always go to the same shard in order, so per-key
//! order is kept. Consecutive key commands across shards with a merge rule (MSET, MGET, DEL...) form a
//! run of their own, one transaction (server/split.rs). Anything else (connection state, server-wide,
//! other multi-shard commands) is a barrier: it runs alone, after everything before it completed. In
//! durability mode a reply waits for its commit (`settle`) and becomes a timeout error if that does not
//! come.

use super::conn::{Conn, ReplyMode};
use super::split::Split;
use crate::cmd::exec::{execute_batch, Exec};
use crate::cmd::{CmdError, Flags, Handler, Spec};
use crate::repl::durable::{Held, TIMEOUT_ERR, TIMEOUT_READ_ERR};
use crate::resp::{Proto, Reply};
use crate::runtime;
use crate::shard::blocking::is_null;
use crate::shard::mesh::Kind;
use crate::shard::PauseKind;
use crate::slot::{key_slot, slot_owner};
use bytes::Bytes;
use futures_util::future::{select, Either};
use std::pin::pin;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// What a pipelined command joins: the group of key commands on one shard each, or the run of split
/// commands across shards.
enum Class {
    One(&'static Spec, usize),
    Split(Split),
}

/// A key command ready to run on one shard.
struct Ready {
    spec: &'static Spec,
    args: Vec<Bytes>,
}
impl Conn {
    /// Where a key command runs: its shard, or None if its keys span shards.
    pub(super) fn target_shard(&self, spec: &Spec, args: &[Bytes]) -> Option<usize> {
        let n = self.local.nshards();
        let mut target = None;
        for p in spec.keys_of(args) {
            let s = slot_owner(key_slot(&args[p]), n);
            match target {
                None => target = Some(s),
                Some(t) if t != s => return None,
                _ => {}
            }
        }
        Some(target.unwrap_or(self.local.id))
    }

    /// The error the replication gate gives `spec` now, if any (repl/mod.rs `gate::refusal`): one branch
    /// when the gate is open, as it is for every command then.
    pub(super) fn gate_refusal(&self, spec: &Spec) -> Option<std::borrow::Cow<'static, str>> {
        let g = self.local.shared.repl.gate.load(Ordering::Relaxed);
        if g == 0 {
            return None;
        }
        crate::repl::gate::refusal(g, spec, &self.local.shared.repl)
    }

    /// CLIENT PAUSE applies to every command but CLIENT itself, so UNPAUSE always gets through.
    fn paused_for(&self, spec: &Spec) -> bool {
        if spec.name == "client" {
            return false;
        }
        match self.local.shard.borrow().pause {
            Some((PauseKind::All, _)) => true,
            Some((PauseKind::Write, _)) => spec.is_write(),
            None => false,
        }
    }

    /// A key command that can join the current group (`One`: with its target shard), or the current run
    /// of split commands across shards (`Split`).
    fn classify(&mut self, args: &[Bytes]) -> Option<Class> {
        let spec = self.spec(&args[0])?;
        if !matches!(spec.handler, Handler::Key(..))
            || !spec.arity_ok(args.len())
            || spec.flags.has(Flags::BLOCKING)
        {
            return None;
        }
        if !self.authed || self.paused_for(spec) {
            return None;
        }
        if self.gate_refusal(spec).is_some() {
            return None;
        }
        if let Some(s) = self.target_shard(spec, args) {
            return Some(Class::One(spec, s));
        }
        let Handler::Key(_, Some(merge)) = spec.handler else {
            return None;
        };
        // Durability mode settles each command across shards alone, and over maxmemory one that may use
        // memory is refused: both in run_one.
        {
            let sh = self.local.shard.borrow();
            if sh.durable_active() || (spec.flags.has(Flags::DENYOOM) && sh.over_maxmemory()) {
                return None;
            }
        }
        self.split(spec, args, merge).ok().map(Class::Split)
    }

    pub(super) async fn run_batch(&mut self, cmds: Vec<Vec<Bytes>>, out: &mut Vec<u8>) {
        {
            // The table's own name: no allocation per batch.
            let last = cmds
                .last()
                .map(|l| self.spec(&l[0]).map_or("unknown", |s| s.name));
            let mut info = self.info.borrow_mut();
            info.last_ms = runtime::now_ms();
            if let Some(last) = last {
                info.last_cmd = last;
            }
        }
        let mut group: Vec<(usize, Ready)> = Vec::new();
        let mut splits: Vec<Split> = Vec::new();
        for args in cmds {
            if self.closing {
                break;
            }
            if self.multi.is_some()
                || (self.subscribed() && self.proto == Proto::Resp2)
                || self.reply_mode != ReplyMode::On
            {
                self.flush(&mut group, &mut splits, out).await;
                let mut r = Reply::new(self.proto);
                let before = self.reply_mode;
                // Subscription confirmations are pushes (in RESP2 too), sent whatever CLIENT REPLY
                // says, as in Valkey.
                let push = self
                    .spec(&args[0])
                    .is_some_and(|s| s.name.ends_with("subscribe"));
                if !self.queue_in_multi(&args, &mut r) {
                    self.run_one(args, &mut r).await;
                }
                // CLIENT REPLY: OFF drops every reply, SKIP the next command's; CLIENT REPLY ON answers.
                let after = self.reply_mode;
                let keep = if after != before {
                    after == ReplyMode::On
                } else {
                    before == ReplyMode::On
                };
                if before == ReplyMode::SkipNext && after == ReplyMode::SkipNext {
                    self.reply_mode = ReplyMode::On;
                }
                if !keep && !push {
                    r.buf.clear();
                }
                out.extend_from_slice(&r.buf);
                continue;
            }
            match self.classify(&args) {
                Some(Class::One(spec, shard)) => {
                    if !splits.is_empty() {
                        self.run_split_group(std::mem::take(&mut splits), out).await;
                    }
                    self.repl.wrote |= spec.is_write();
                    group.push((shard, Ready { spec, args }));
                    continue;
                }
                Some(Class::Split(sp)) => {
                    if !group.is_empty() {
                        self.run_group(std::mem::take(&mut group), out).await;
                    }
                    self.repl.wrote |= sp.spec.is_write();
                    splits.push(sp);
                    continue;
                }
                None => {}
            }
            self.flush(&mut group, &mut splits, out).await;
            let mut r = Reply::new(self.proto);
            self.run_one(args, &mut r).await;
            out.extend_from_slice(&r.buf);
        }
        self.flush(&mut group, &mut splits, out).await;
    }

    /// Runs what is grouped (at most one of the two is non-empty).
    async fn flush(
        &mut self,
        group: &mut Vec<(usize, Ready)>,
        splits: &mut Vec<Split>,
        out: &mut Vec<u8>,
    ) {
        if !group.is_empty() {
            self.run_group(std::mem::take(group), out).await;
        }
        if !splits.is_empty() {
            self.run_split_group(std::mem::take(splits), out).await;
        }
    }

    /// Runs consecutive split commands in one transaction (server/split.rs); statistics as run_one's.
    async fn run_split_group(&mut self, splits: Vec<Split>, out: &mut Vec<u8>) {
        let start = std::time::Instant::now();
        let specs: Vec<&'static Spec> = splits.iter().map(|s| s.spec).collect();
        for reply in self.run_splits(splits).await {
            out.extend_from_slice(&reply);
        }
        let per = start.elapsed().as_micros() as u64 / specs.len() as u64;
        let mut sh = self.local.shard.borrow_mut();
        for spec in specs {
            sh.stats.call(spec, false);
            sh.stats.add_usec(spec, per);
        }
    }

    /// Runs a group of key commands: remote shards' parts are sent first (one message each) so they run
    /// in parallel with the local part; replies are then written in command order.
    async fn run_group(&mut self, group: Vec<(usize, Ready)>, out: &mut Vec<u8>) {
        // The clock is read where the commands run (run_remote, and the fast path below).
        let db = self.db;
        let proto = self.proto;
        let me = self.local.id;
        let n = self.local.nshards();
        let first = group[0].0;
        let only = group.iter().all(|(s, _)| *s == first).then_some(first);
        if let Some(to) = self.affinity.note(only, me) {
            self.move_to = Some(to);
        }
        // Fast path: everything is local and nothing is held (durability mode's batches take the path
        // below, which can put a timeout error in place of any reply).
        if only == Some(me) && !self.local.shard.borrow().durable_active() {
            self.local.wait_unlocked().await;
            let ex = Exec::new(db, runtime::now_ms());
            let mut r = Reply {
                buf: std::mem::take(out),
                proto,
            };
            let held = execute_batch(
                &mut self.local.shard.borrow_mut(),
                group.iter().map(|(_, c)| (c.spec, &c.args[..])),
                &ex,
                &mut r,
                None,
            );
            debug_assert!(held.is_none(), "no holds with durability inactive");
            *out = r.buf;
            self.local.after_work();
            return;
        }
        let mut per_shard: Vec<Vec<Ready>> = (0..n).map(|_| Vec::new()).collect();
        let mut order: Vec<(usize, usize)> = Vec::with_capacity(group.len());
        for (s, c) in group {
            order.push((s, per_shard[s].len()));
            per_shard[s].push(c);
        }
        let mut pending = Vec::new();
        for (s, cmds) in per_shard.iter_mut().enumerate() {
            if s == me || cmds.is_empty() {
                continue;
            }
            let cmds = std::mem::take(cmds);
            pending.push((
                s,
                self.local.send_call(s, Kind::Normal, move |sh| {
                    run_remote(sh, cmds, db, proto, true)
                }),
            ));
        }
        let mut results: Vec<Option<Ran>> = (0..n).map(|_| None).collect();
        if !per_shard[me].is_empty() {
            let cmds = std::mem::take(&mut per_shard[me]);
            self.local.wait_unlocked().await;
            let mut sh = self.local.shard.borrow_mut();
            results[me] = Some(run_remote(&mut sh, cmds, db, proto, true));
            drop(sh);
            self.local.after_work();
        }
        for (s, rx) in pending {
            results[s] = Some(rx.await.expect("shard alive"));
        }
        let helds: Vec<Held> = results
            .iter_mut()
            .filter_map(|r| r.as_mut().and_then(|r| r.held.take()))
            .collect();
        let mut failed: Vec<Vec<bool>> = (0..n).map(|_| Vec::new()).collect();
        if !helds.is_empty() {
            for (s, f) in self.settle(helds).await {
                failed[s] = f;
            }
        }
        for (s, i) in order {
            let ran = results[s].as_ref().expect("answered");
            if failed[s].get(i).copied().unwrap_or(false) {
                out.extend_from_slice(&timeout_reply(ran.specs[i], proto));
                continue;
            }
            let start = if i == 0 { 0 } else { ran.ends[i - 1] };
            out.extend_from_slice(&ran.buf[start..ran.ends[i]]);
        }
    }

    /// Waits for held replies (durability mode) until they commit or durability-timeout passes. Returns,
    /// per shard that held some, which of its commands are still uncommitted (their replies become
    /// errors: the outcome is not known).
    async fn settle(&self, helds: Vec<Held>) -> Vec<(usize, Vec<bool>)> {
        // Replies held only for this node's WAL wait for the disk however long it takes (as Valkey's
        // appendfsync always does), with no timer; durability mode's wait for replicas is bounded.
        let timeout = {
            let s = &self.local.shard.borrow().settings;
            s.durability.then_some(s.durability_timeout_ms)
        };
        let deadline = timeout.map(|t| std::time::Instant::now() + Duration::from_millis(t));
        let mut out = Vec::with_capacity(helds.len());
        for h in helds {
            let commit = match deadline {
                None => match h.rx.await {
                    Ok(()) => u64::MAX,
                    Err(_) => 0,
                },
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(std::time::Instant::now());
                    match select(h.rx, pin!(runtime::sleep(left))).await {
                        Either::Left((Ok(()), _)) => u64::MAX,
                        // Dropped: this shard stopped being a primary (or its WAL failed); nothing it
                        // held will commit here.
                        Either::Left((Err(_), _)) => 0,
                        Either::Right(_) => {
                            self.local
                                .call(h.shard, Kind::Normal, |sh| sh.durable.q.commit())
                                .await
                        }
                    }
                }
            };
            out.push((h.shard, h.per_cmd.iter().map(|&t| t > commit).collect()));
        }
        out
    }

    /// Durability mode, for a command that did not run as one shard's batch: waits for every shard it may
    /// have written or read uncommitted data on. Whether its reply must become the timeout error.
    async fn settle_all(&self, spec: &Spec) -> bool {
        let write = spec.is_write();
        if !write && !spec.flags.has(Flags::READONLY) {
            return false;
        }
        let now = runtime::now_ms();
        let helds: Vec<Held> = self
            .local
            .broadcast(move |sh| sh.durable_hold_all(write, now))
            .await
            .into_iter()
            .flatten()
            .collect();
        !helds.is_empty() && self.settle(helds).await.iter().any(|f| f.1.contains(&true))
    }

    /// A command that runs alone: errors found before dispatch, connection and server commands, and key
    /// commands whose keys span shards.
    async fn run_one(&mut self, args: Vec<Bytes>, r: &mut Reply) {
        let Some(spec) = self.spec(&args[0]) else {
            let name = String::from_utf8_lossy(&args[0]).into_owned();
            let e = CmdError::UnknownCommand {
                name,
                args: crate::cmd::error::quote_args(&args[1..]),
            };
            self.fail(r, e);
            return;
        };
        if !self.authed && !spec.flags.has(Flags::NO_AUTH) {
            self.fail(r, CmdError::NoAuth);
            return;
        }
        if self.subscribed()
            && self.proto == Proto::Resp2
            && !super::pubsub::allowed_when_subscribed(spec.name)
        {
            self.fail(
                r,
                CmdError::other(format!(
                    "ERR Can't execute '{}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context",
                    spec.name
                )),
            );
            return;
        }
        if !spec.arity_ok(args.len()) {
            self.fail(r, CmdError::WrongArity(spec.name.into()));
            return;
        }
        if let Some(msg) = self.gate_refusal(spec) {
            self.fail(r, CmdError::other(msg));
            return;
        }
        self.repl.wrote |= spec.is_write();
        while self.paused_for(spec) && !self.should_stop() {
            let until = self.local.shard.borrow().pause.map_or(0, |p| p.1);
            let wait = Duration::from_millis(until.saturating_sub(runtime::now_ms()).max(1));
            let lifted = pin!(self.until(|c| !c.paused_for(spec) || c.should_stop()));
            select(lifted, pin!(runtime::sleep(wait))).await;
            let mut sh = self.local.shard.borrow_mut();
            if sh.pause.is_some_and(|p| p.1 <= runtime::now_ms()) {
                sh.pause = None;
            }
        }
        let start = std::time::Instant::now();
        let res = match spec.handler {
            Handler::Key(..) if spec.flags.has(Flags::BLOCKING) && self.multi.is_none() => {
                // Statistics are recorded where its attempts run.
                return self.run_blocking(spec, args, r).await;
            }
            Handler::Key(_, merge) => match self.target_shard(spec, &args) {
                Some(shard) => {
                    let out = self.run_key_on(shard, spec, args).await;
                    r.raw(&out);
                    // Statistics were recorded where it ran.
                    return;
                }
                None if spec.flags.has(Flags::DENYOOM)
                    && self.local.shard.borrow().over_maxmemory() =>
                {
                    Err(CmdError::Oom)
                }
                None => self.run_split(spec, args, merge, r).await,
            },
            Handler::Special(which) => self.special(which, &args, r).await,
        };
        let usec = start.elapsed().as_micros() as u64;
        // Every shard logs or none does (capture starts in one transaction over all shards), so this
        // shard says whether the others hold anything; a replica or a primary without a log skips the
        // broadcast.
        let durability = {
            let mut sh = self.local.shard.borrow_mut();
            sh.stats.call(spec, res.is_err());
            sh.stats.add_usec(spec, usec);
            sh.durable_active()
        };
        if let Err(e) = res {
            r.error(&e.message());
        }
        if durability && self.settle_all(spec).await {
            r.buf.clear();
            r.raw(&timeout_reply(spec, self.proto));
        }
    }

    /// Runs a key command on the shard holding its keys; its reply (a timeout error in its place if
    /// durability mode could not confirm it).
    pub(super) async fn run_key_on(
        &mut self,
        shard: usize,
        spec: &'static Spec,
        args: Vec<Bytes>,
    ) -> Vec<u8> {
        self.run_key_as(shard, spec, args, None).await
    }

    /// `run_key_on`, or with `attempt` a blocking command's attempt (server/blocking.rs): run uncounted
    /// in the statistics, after taking any reply the shard already served the client (shard/blocking.rs);
    /// a reply that serves it takes it out of its keys' queues in the same step, so the shard cannot
    /// serve it a second time.
    pub(super) async fn run_key_as(
        &mut self,
        shard: usize,
        spec: &'static Spec,
        args: Vec<Bytes>,
        attempt: Option<Attempt>,
    ) -> Vec<u8> {
        let (db, proto) = (self.db, self.proto);
        let ran = self
            .local
            .call(shard, Kind::Normal, move |sh| {
                let Some(a) = attempt else {
                    return run_remote(sh, vec![Ready { spec, args }], db, proto, true);
                };
                if let Some(buf) = sh.blocked.take_served(a.client) {
                    return Ran {
                        buf,
                        ends: Vec::new(),
                        specs: Vec::new(),
                        held: None,
                    };
                }
                sh.blocked.attempting = true;
                let ran = run_remote(sh, vec![Ready { spec, args }], db, proto, false);
                sh.blocked.attempting = false;
                if !is_null(&ran.buf) && ran.buf.first() != Some(&b'-') {
                    for k in &a.keys {
                        // Nothing was served to it meanwhile: serving waited for its attempt.
                        let none = sh.unblock_from(db, k, a.client);
                        debug_assert!(none.is_none());
                    }
                }
                // The keys it wrote are served when this call is done (after_work).
                ran
            })
            .await;
        let failed = match ran.held {
            Some(h) => self.settle(vec![h]).await[0].1[0],
            None => false,
        };
        if failed {
            timeout_reply(spec, proto)
        } else {
            ran.buf
        }
    }

    fn fail(&self, r: &mut Reply, e: CmdError) {
        self.local.shard.borrow_mut().stats.error_replies += 1;
        r.error(&e.message());
    }

    pub fn exec(&self) -> Exec {
        Exec::new(self.db, runtime::now_ms())
    }
}

/// A blocking command's attempt: the waiting client, and the keys it waits on at the attempt's shard.
pub(super) struct Attempt {
    pub client: u64,
    pub keys: Vec<Bytes>,
}

/// What a shard answers for a batch: the concatenated replies, where each one ends and, in durability
/// mode, what the replies wait for with the commands' specs (for a timeout error in place of a reply;
/// empty when nothing is held).
struct Ran {
    buf: Vec<u8>,
    ends: Vec<usize>,
    specs: Vec<&'static Spec>,
    held: Option<Held>,
}

/// Runs commands on their shard. The clock is read here, when they run: a batch that waited for a
/// transaction to release the shard must not see the time it was sent at (a key that expired meanwhile
/// is gone for it).
fn run_remote(
    sh: &mut crate::shard::Shard,
    cmds: Vec<Ready>,
    db: usize,
    proto: Proto,
    counted: bool,
) -> Ran {
    let ex = Exec {
        counted,
        ..Exec::new(db, runtime::now_ms())
    };
    let mut r = Reply::new(proto);
    let mut ends = Vec::with_capacity(cmds.len());
    let held = execute_batch(
        sh,
        cmds.iter().map(|c| (c.spec, &c.args[..])),
        &ex,
        &mut r,
        Some(&mut ends),
    );
    // The specs are needed only to put a timeout error in place of a held reply.
    let specs = match held {
        Some(_) => cmds.iter().map(|c| c.spec).collect(),
        None => Vec::new(),
    };
    Ran {
        buf: r.buf,
        ends,
        specs,
        held,
    }
}

/// The reply of a command whose outcome is not known at durability-timeout.
fn timeout_reply(spec: &Spec, proto: Proto) -> Vec<u8> {
    let mut r = Reply::new(proto);
    // A WAL failure: what was held will never be durable here, and is not recovered either.
    if let Some(e) = crate::runtime::current_local().shared.repl.wal_error.get() {
        r.error(&crate::persist::wal::misconf(e));
        return r.buf;
    }
    r.error(if spec.is_write() {
        TIMEOUT_ERR
    } else {
        TIMEOUT_READ_ERR
    });
    r.buf
}
