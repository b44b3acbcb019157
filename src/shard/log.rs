//! The shard's log: what its writes append, in commit units (tandem_sync::unit), to its backlog.
//!
//! - A batch the shard executes together (a pipelined group, the messages of one inbox turn) appends one
//!   unit; the part of a multi-shard write transaction that runs here is a unit of its own, tagged with the
//!   transaction's id and its number of participating shards, sealed when the transaction releases this
//!   shard (so every participant logs exactly one unit for it, possibly empty, and a replica can apply the
//!   transaction whole).
//! - The command table's flags decide what a command logs, not its handler: a deterministic command is
//!   logged as itself if it wrote anything; one flagged `LOG_STATE` (or `LOG_STATE_IF_RELATIVE` with EX/PX)
//!   is logged as the resulting state of the keys it wrote (SET with an absolute PXAT, a collection as
//!   `RESTORE key <abs> <payload> REPLACE ABSTTL`, or DEL). One flagged `LOG_REWRITE` is logged as the
//!   deterministic command its handler says it amounted to (SPOP as an SREM of what it popped, EXPIRE as
//!   PEXPIREAT), so a write to a big collection never ships the collection. A multi-key write whose keys
//!   are in several slots is logged as states (a replica with another shard count may hold them apart).
//!   Operations that are not table commands (RENAME, COPY, MOVE, MSETNX parts, writes back of a gathered
//!   run) are logged as states too. Expiries are DELs logged the moment they happen (store/hooks.rs).
//! - Every unit carries the command clock its records were made with; a replica applies them with that
//!   clock, so a command that met a key alive on the primary meets it alive on the replica too.
//!
//! Invariants: capture is on exactly when this shard is a primary with a backlog; a unit is sealed only at
//! a batch's end, at a transaction's lock and at its release, never inside a command; state records are
//! flushed before any later record, so records keep the order of the effects.

use super::Shard;
use crate::cmd::{Flags, Spec};
use bytes::Bytes;
use tandem_sync::unit::TxTag;

/// How a command is logged (decided by its table flags and, for relative-expiry options, its arguments).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogMode {
    Verbatim,
    State,
    /// The handler leaves the record of what it did in `hooks.rewrite` (SPOP: an SREM of what it popped).
    Rewrite,
}

/// Whether a command's options include a relative expiry (EX or PX), which only the state can log.
fn has_relative_expiry(args: &[Bytes]) -> bool {
    args.iter()
        .skip(2)
        .any(|a| a.eq_ignore_ascii_case(b"ex") || a.eq_ignore_ascii_case(b"px"))
}

/// Whether a command's keys are in more than one hash slot: a replica with another shard count may hold
/// them on different shards, where one record of the command cannot be applied.
fn spans_slots(spec: &Spec, args: &[Bytes]) -> bool {
    let keys = spec.keys_of(args);
    let mut slots = keys.iter().map(|&p| crate::slot::key_slot(&args[p]));
    match slots.next() {
        Some(first) => slots.any(|s| s != first),
        None => false,
    }
}

pub fn mode_of(spec: &Spec, args: &[Bytes]) -> LogMode {
    // A multi-key write other than the splittable ones (MSET, DEL...) is logged as the states of the keys
    // it wrote when its keys are in several slots.
    if matches!(spec.handler, crate::cmd::Handler::Key(_, None))
        && spec.first_key > 0
        && (spec.last_key != spec.first_key || spec.keys.is_some())
        && spans_slots(spec, args)
    {
        return LogMode::State;
    }
    if spec.flags.has(Flags::LOG_REWRITE) {
        return LogMode::Rewrite;
    }
    if spec.flags.has(Flags::LOG_STATE)
        || (spec.flags.has(Flags::LOG_STATE_IF_RELATIVE) && has_relative_expiry(args))
    {
        LogMode::State
    } else {
        LogMode::Verbatim
    }
}

impl Shard {
    /// Whether a table command must be logged: capture on, a write, not excluded from propagation.
    #[inline]
    pub fn logs(&self, spec: &Spec) -> bool {
        self.ks.hooks.capture && spec.is_write() && !spec.flags.has(Flags::NO_PROPAGATE)
    }

    /// Before a logged table command runs with clock `now`.
    pub fn log_before(&mut self, mode: LogMode, now: u64) {
        let h = &self.ks.hooks;
        if !h.unit.is_empty() && h.unit.time() != now && self.lock.holder.is_none() {
            // Records of one unit share one clock; outside a transaction a new clock starts a new unit.
            self.seal_unit();
        }
        if self.ks.hooks.unit.is_empty() {
            self.ks.hooks.unit.set_time(now);
        }
        if mode != LogMode::State {
            self.log_states();
            let h = &mut self.ks.hooks;
            h.track = false;
            h.wrote = false;
        }
    }

    /// After a logged table command returned.
    pub fn log_after(&mut self, mode: LogMode, db: usize, args: &[Bytes]) {
        match mode {
            LogMode::Verbatim => {
                let h = &mut self.ks.hooks;
                h.track = true;
                if h.wrote {
                    h.unit.record(db, args);
                }
            }
            LogMode::Rewrite => {
                let h = &mut self.ks.hooks;
                h.track = true;
                let rewrite = h.rewrite.take();
                if let (true, Some(rw)) = (h.wrote, rewrite) {
                    h.unit.record(db, &rw);
                }
            }
            LogMode::State => self.log_states(),
        }
    }

    /// Appends a record that is not a key's state (FLUSHDB, FLUSHALL, SWAPDB), after what came before it.
    /// Every key of the shard is dirty until it commits (durability mode).
    pub fn log_record(&mut self, db: usize, args: &[&[u8]]) {
        self.append_record(db, args);
        self.ks.hooks.touched_all |= self.ks.hooks.touch;
    }

    /// Appends a control record that changes no key (durability mode's grants and revokes).
    pub fn log_control(&mut self, args: &[&[u8]]) {
        self.append_record(0, args);
    }

    fn append_record(&mut self, db: usize, args: &[&[u8]]) {
        if !self.ks.hooks.capture {
            return;
        }
        self.log_states();
        self.ks.hooks.unit.record(db, args);
    }

    /// Turns the keys written in state mode into records of their resulting state.
    pub fn log_states(&mut self) {
        if self.ks.hooks.dirty.is_empty() {
            return;
        }
        let mut dirty = std::mem::take(&mut self.ks.hooks.dirty);
        // Out of the keyspace while it is read (taking it allocates nothing).
        let mut unit = std::mem::take(&mut self.ks.hooks.unit);
        // Units opened by an expiry carry no clock yet; a state is read at the time it is logged.
        let now = match unit.time() {
            0 => crate::runtime::now_ms(),
            t => t,
        };
        let mut last: Option<&(usize, Vec<u8>)> = None;
        for d in &dirty {
            // A key written twice in a row needs one record of its final state.
            if last == Some(d) {
                continue;
            }
            last = Some(d);
            let (db, key) = (d.0, &d.1[..]);
            match self.ks.peek(db, key, now) {
                // A collection's whole state: a RESTORE of its DUMP payload with an absolute expiry.
                Some(e) if e.kind() != 0 => {
                    let t = itoa::Buffer::new()
                        .format(e.expire_at().unwrap_or(0))
                        .as_bytes()
                        .to_vec();
                    let p = crate::cmd::dump::payload(e);
                    unit.record(db, &[&b"RESTORE"[..], key, &t, &p, b"REPLACE", b"ABSTTL"])
                }
                Some(e) => match e.expire_at() {
                    None => unit.record(db, &[&b"SET"[..], key, e.value()]),
                    Some(t) => {
                        let t = itoa::Buffer::new().format(t).as_bytes().to_vec();
                        unit.record(db, &[&b"SET"[..], key, e.value(), b"PXAT", &t])
                    }
                },
                None => unit.record(db, &[&b"DEL"[..], key]),
            }
        }
        dirty.clear();
        self.ks.hooks.dirty = dirty;
        self.ks.hooks.unit = unit;
    }

    /// Closes the open unit into the backlog. Returns whether a unit was appended.
    pub fn seal_unit(&mut self) -> bool {
        if !self.ks.hooks.capture {
            return false;
        }
        self.log_states();
        let start = self.repl.offset();
        let b = self
            .repl
            .backlog
            .as_mut()
            .expect("capture is on only with a backlog");
        let wal = &mut self.wal;
        let mut unlogged = None;
        let sealed = self.ks.hooks.unit.seal_to(start, |unit| {
            b.append(unit);
            match wal.as_mut() {
                Some(w) if w.attached && w.w.end() == start => w.w.append(unit),
                // After a failure nothing is written, and the WAL stays attached (its holds keep
                // failing reads of keys whose writes were lost).
                Some(w) if w.attached && w.w.failed().is_none() => unlogged = Some(unit.to_vec()),
                _ => {}
            }
        });
        if let Some(u) = unlogged {
            // The log jumped: wal_append detaches (and says so).
            self.wal_append(start, &u);
        }
        self.repl.grew |= sealed;
        // The commit rule tracks the log end whether or not the mode is on, so turning it on finds the
        // acknowledgements and the end in step.
        self.durable_sealed();
        sealed
    }

    /// A multi-shard transaction just took this shard (called inside its lock): what came before it is
    /// sealed, and a write transaction's part opens as a unit of its own.
    pub fn log_tx_begin(&mut self, txid: u64, parts: usize, write: bool, now: u64) {
        if !self.ks.hooks.capture {
            return;
        }
        self.seal_unit();
        if write {
            let u = &mut self.ks.hooks.unit;
            u.set_time(now);
            u.begin_tx(TxTag {
                txid,
                parts: parts as u16,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::cmd::exec::{execute, Exec};
    use crate::cmd::lookup;
    use crate::config::Config;
    use crate::resp::{Proto, Reply};
    use crate::shard::Shard;
    use bytes::Bytes;
    use std::sync::Arc;
    use tandem_sync::replid::ReplId;
    use tandem_sync::unit::split_units;

    fn primary() -> Shard {
        let mut sh = Shard::new(
            0,
            1,
            Arc::new(Config::default()),
            1,
            ReplId::from_random([7; 20]),
        );
        sh.ensure_backlog();
        sh
    }

    /// Runs commands as one batch at clock `now`, seals, and returns each unit's records (as strings).
    fn logged(sh: &mut Shard, now: u64, cmds: &[&[&str]]) -> Vec<Vec<Vec<String>>> {
        let from = sh.repl.offset();
        let mut r = Reply::new(Proto::Resp2);
        for c in cmds {
            let args: Vec<Bytes> = c
                .iter()
                .map(|a| Bytes::copy_from_slice(a.as_bytes()))
                .collect();
            let spec = lookup(&args[0]).unwrap();
            execute(sh, spec, &args, &Exec::new(0, now), &mut r);
        }
        sh.seal_unit();
        let b = sh.repl.backlog.as_ref().unwrap();
        let (x, y) = b.read_from(from).unwrap();
        let bytes = [x, y].concat();
        let mut next = from;
        let mut units = Vec::new();
        split_units(&bytes, &mut next, &mut units).unwrap();
        units
            .iter()
            .map(|u| {
                u.records()
                    .map(|r| {
                        r.unwrap()
                            .args
                            .iter()
                            .map(|a| String::from_utf8_lossy(a).into_owned())
                            .collect()
                    })
                    .collect()
            })
            .collect()
    }

    fn rec(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    /// The table's flags decide what is logged: deterministic writes as themselves, relative expiries and
    /// INCRBYFLOAT as the resulting state with an absolute PXAT, nothing for reads or writes that changed
    /// nothing; one unit per batch.
    #[test]
    fn the_table_decides_what_is_logged() {
        let mut sh = primary();
        let now = 1_700_000_000_000;
        let units = logged(
            &mut sh,
            now,
            &[
                &["SET", "k", "v"],
                &["GET", "k"],
                &["SET", "t", "v", "EX", "10"],
                &["SET", "a", "1", "PXAT", "1800000000000"],
                &["INCR", "n"],
                &["INCRBYFLOAT", "f", "1.5"],
                &["EXPIRE", "k", "100"],
                &["SETNX", "k", "other"],
                &["DEL", "nosuch"],
                &["APPEND", "k", "w"],
            ],
        );
        assert_eq!(units.len(), 1, "one batch, one unit");
        assert_eq!(
            units[0],
            vec![
                rec(&["SET", "k", "v"]),
                rec(&["SET", "t", "v", "PXAT", "1700000010000"]),
                rec(&["SET", "a", "1", "PXAT", "1800000000000"]),
                rec(&["INCR", "n"]),
                rec(&["SET", "f", "1.5"]),
                rec(&["PEXPIREAT", "k", "1700000100000"]),
                rec(&["APPEND", "k", "w"]),
            ]
        );
        // An expiry met by a command is logged as a DEL before the command.
        let later = 1_800_000_000_001;
        let units = logged(&mut sh, later, &[&["INCR", "a"]]);
        assert_eq!(units, vec![vec![rec(&["DEL", "a"]), rec(&["INCR", "a"])]]);
    }
}
