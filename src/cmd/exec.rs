//! The one execution path for key commands: client commands (local or sent to the owning shard), replica
//! apply and (next) WAL replay. Statuses become RESP errors here and only here, and what a command wrote is
//! logged here (shard/log.rs), decided by the table's flags.

use super::table::{Flags, Handler, Spec};
use crate::resp::Reply;
use crate::shard::Shard;
use bytes::Bytes;

/// Per-command execution context: the selected database and the command's clock (ms since the epoch),
/// read once per batch so that every key of a command sees the same time, as in Valkey.
#[derive(Debug, Clone, Copy)]
pub struct Exec {
    pub db: usize,
    pub now: u64,
    /// Whether the run counts in the command statistics. A blocking command's attempts do not: as in
    /// Valkey it counts once, when it is served, times out or is unblocked (server/blocking.rs).
    pub counted: bool,
}

impl Exec {
    pub fn new(db: usize, now: u64) -> Exec {
        Exec {
            db,
            now,
            counted: true,
        }
    }
}

pub fn execute(sh: &mut Shard, spec: &'static Spec, args: &[Bytes], ex: &Exec, r: &mut Reply) {
    let Handler::Key(f, _) = spec.handler else {
        unreachable!("{} is not a key command", spec.name);
    };
    if spec.flags.has(Flags::DENYOOM) && sh.over_maxmemory() {
        // Refused before it ran: a rejected call even for a blocking command's attempt.
        sh.stats.rejected(spec);
        r.error(&super::CmdError::Oom.message());
        return;
    }
    let changes = sh.ks.dirty.count();
    let res = run_command(sh, f, spec, args, ex, r);
    if !sh.blocked.is_empty() && spec.is_write() && sh.ks.dirty.count() != changes {
        // Blocked pops waiting on a key this command changed (shard/blocking.rs). A write that
        // changed nothing signals nothing: a waiter's own attempt that could not be served must not
        // make its key ready again.
        for p in spec.keys_of(args) {
            sh.signal_ready(ex.db, &args[p]);
        }
    }
    if ex.counted {
        sh.stats.call(spec, res.is_err());
    }
    if let Err(e) = res {
        r.error(&e.message());
    }
}

/// Runs one shard's part of a multi-shard command: no statistics (the coordinator counts the command
/// once) and no OOM check (made once, before any part runs, so a command is refused whole or not at all).
pub fn execute_part(sh: &mut Shard, spec: &'static Spec, args: &[Bytes], ex: &Exec, r: &mut Reply) {
    let Handler::Key(f, _) = spec.handler else {
        unreachable!("{} is not a key command", spec.name);
    };
    if let Err(e) = run_command(sh, f, spec, args, ex, r) {
        r.error(&e.message());
    }
}

/// Runs a handler as one command: its changes count once (store/dirty.rs), and a read command's lookups
/// are its keyspace hits and misses (a write's are not, as in Valkey).
#[inline]
fn run_command(
    sh: &mut Shard,
    f: super::table::KeyFn,
    spec: &'static Spec,
    args: &[Bytes],
    ex: &Exec,
    r: &mut Reply,
) -> super::CmdResult {
    sh.ks.lookups = Default::default();
    sh.ks.dirty.begin_command();
    let res = run_events(sh, f, spec, args, ex, r);
    sh.ks.dirty.end_command();
    if !spec.is_write() {
        let l = sh.ks.lookups;
        sh.stats.hits += l.hits;
        sh.stats.misses += l.misses;
    }
    res
}

/// Runs a handler through `run_logged`, then turns what it wrote into keyspace events (cmd/events.rs).
/// One branch when notifications are off.
#[inline]
fn run_events(
    sh: &mut Shard,
    f: super::table::KeyFn,
    spec: &'static Spec,
    args: &[Bytes],
    ex: &Exec,
    r: &mut Reply,
) -> super::CmdResult {
    if !sh.ks.hooks.events.on() {
        return run_logged(sh, f, spec, args, ex, r);
    }
    sh.ks.hooks.events.begin();
    let res = run_logged(sh, f, spec, args, ex, r);
    super::events::after(sh, spec, args, ex);
    res
}

/// Runs a handler, logging what it wrote as the table's flags say (shard/log.rs). One branch when the
/// shard's log is off.
#[inline]
fn run_logged(
    sh: &mut Shard,
    f: super::table::KeyFn,
    spec: &'static Spec,
    args: &[Bytes],
    ex: &Exec,
    r: &mut Reply,
) -> super::CmdResult {
    if !sh.logs(spec) {
        return f(sh, ex, args, r);
    }
    let mode = crate::shard::log::mode_of(spec, args);
    sh.log_before(mode, ex.now);
    let res = f(sh, ex, args, r);
    sh.log_after(mode, ex.db, args);
    res
}

/// Runs a batch of key commands on their shard, replies appended to `r`, each reply's end offset pushed to
/// `ends`. The clock is read once per batch for INFO commandstats. In durability mode, returns what the
/// replies must wait for (repl/durable.rs); None otherwise, for one branch per batch.
pub fn execute_batch<'a>(
    sh: &mut Shard,
    cmds: impl Iterator<Item = (&'static Spec, &'a [Bytes])> + Clone,
    ex: &Exec,
    r: &mut Reply,
    mut ends: Option<&mut Vec<usize>>,
) -> Option<crate::repl::durable::Held> {
    let start = std::time::Instant::now();
    let mut n = 0u64;
    if cmds.clone().nth(1).is_some() {
        for (spec, args) in cmds.clone() {
            if spec.first_key == 1 && args.len() > 1 && ex.db < sh.ks.databases() {
                sh.ks.warm(ex.db, &args[1]);
            }
        }
    }
    let mut holds = sh.durable_active().then(Vec::new);
    for (spec, args) in cmds.clone() {
        match holds.as_mut() {
            None => execute(sh, spec, args, ex, r),
            Some(h) => {
                let mark = sh.durable_mark();
                execute(sh, spec, args, ex, r);
                h.push(sh.durable_cmd_hold(mark, spec, args, ex.db));
            }
        }
        // A command's waiters are served before the next command of the batch (shard/blocking.rs).
        if sh.blocked.has_ready() {
            sh.serve_ready();
        }
        if let Some(e) = ends.as_deref_mut() {
            e.push(r.len());
        }
        n += 1;
    }
    let per = start.elapsed().as_micros() as u64 / n.max(1);
    for (spec, _) in cmds {
        sh.stats.add_usec(spec, per);
    }
    holds.and_then(|h| sh.durable_hold(h, ex.now))
}
