//! One shard's WAL writer as a state machine without I/O: the shard appends sealed units, `poll` names the
//! next file operation (with a ticket), the caller performs it and reports with `done(ticket, result)`.
//!
//! Group commit: every write takes all the units pending when it is issued, and one write is on the disk
//! at a time, so units sealed while it is in flight go together in the next. With `appendfsync always`
//! writes are durable (`O_DSYNC`: a write and its sync in one operation); otherwise syncs follow the
//! policy. One at a time is deliberate: a durable write issued only after the previous one is on stable
//! storage means a crash can tear only the last unit, so damage before it is corruption, never a crash's
//! doing (segment.rs); concurrent durable writes also measured slower here (docs/persistence.md).
//!
//! Invariants:
//! - `synced <= written <= submitted <= end`; `synced` only grows, and every unit below it is on stable
//!   storage (a reply held for `appendfsync always` is released against it);
//! - a unit at log offset `o` of segment `s` is at file position `HEADER_LEN + o - s`;
//! - a segment is created only once every write to the previous one completed and it is synced whole, so
//!   only the newest segment can end in a torn unit;
//! - after a failed write or sync nothing more is issued: once every write in flight has completed, the
//!   bytes from `synced` to the last position written are overwritten with zeros and synced
//!   (`Op::Zero`) before `undone()` is true, and only then may a client be told its write failed; so a
//!   unit reported as failed can never be recovered.

use super::segment::{Header, HEADER_LEN};
use crate::replid::Identity;
use std::collections::VecDeque;

/// Valkey's `appendfsync`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fsync {
    Always,
    EverySec,
    No,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub shard: u16,
    pub shards: u16,
    /// Bytes a segment is created with (a larger unit makes its segment larger).
    pub segment_size: u64,
    pub fsync: Fsync,
}

/// A file operation for the caller to perform. Segments are named by the log offset they start at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Create segment `seg`: `header`, then zeros up to `size` bytes; sync it and its directory.
    Create {
        seg: u64,
        header: Vec<u8>,
        size: u64,
    },
    /// Write `data` at file position `pos` of segment `seg`; with `sync`, durably (as an `O_DSYNC` write:
    /// complete only once on stable storage).
    Write {
        seg: u64,
        pos: u64,
        data: Vec<u8>,
        sync: bool,
    },
    /// `fdatasync` segment `seg`.
    Sync { seg: u64 },
    /// Overwrite `len` bytes at `pos` of segment `seg` with zeros, durably.
    Zero { seg: u64, pos: u64, len: u64 },
}

/// Names an operation `poll` issued, for `done`.
pub type Ticket = u64;

#[derive(Debug, Clone, Copy)]
enum Exclusive {
    Create { seg: u64, size: u64 },
    Sync { upto: u64 },
    Zero,
}

#[derive(Debug, Clone, Copy)]
struct InWrite {
    ticket: Ticket,
    end: u64,
    sync: bool,
    done: bool,
}

#[derive(Debug, Clone, Copy)]
struct Seg {
    start: u64,
    /// The next write's file position (past every write issued).
    pos: u64,
    size: u64,
}

impl Seg {
    fn pos_of(&self, offset: u64) -> u64 {
        HEADER_LEN as u64 + offset - self.start
    }
}

/// Where a writer begins: a new segment at `offset`, or the end of an existing one (after recovery).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// `based`: the history before `offset` is a snapshot taken there (the first segment says so).
    Fresh { offset: u64, based: bool },
    Continue {
        seg: u64,
        pos: u64,
        size: u64,
        offset: u64,
    },
}

#[derive(Debug)]
pub struct Writer {
    cfg: Config,
    identity: Identity,
    seg: Option<Seg>,
    end: u64,
    /// The bytes from `submitted` to `end`, and the end offset of each unit among them.
    pending: Vec<u8>,
    bounds: VecDeque<u64>,
    submitted: u64,
    written: u64,
    synced: u64,
    exclusive: Option<(Ticket, Exclusive)>,
    /// The write in flight (at most one; a queue keeps completion in issue order explicit).
    writes: VecDeque<InWrite>,
    next_ticket: Ticket,
    last_sync_ms: u64,
    roll: bool,
    failed: Option<String>,
    undone: bool,
    retry_at: u64,
    /// The next segment created begins a chain based on a snapshot (its header says so).
    based: bool,
    /// When the oldest pending unit was first seen by `poll` (gathering without `always`).
    pending_since: Option<u64>,
}

/// A failed undo is retried this long after (a dead disk is not spun on).
const RETRY_MS: u64 = 1000;
/// Without `appendfsync always`, pending units are written once they are this many bytes or this old.
pub const GATHER_BYTES: usize = 256 << 10;
pub const GATHER_MS: u64 = 10;

impl Writer {
    pub fn new(cfg: Config, identity: Identity, start: Start) -> Self {
        let (seg, offset, based) = match start {
            Start::Fresh { offset, based } => (None, offset, based),
            Start::Continue {
                seg,
                pos,
                size,
                offset,
            } => (
                Some(Seg {
                    start: seg,
                    pos,
                    size,
                }),
                offset,
                false,
            ),
        };
        Writer {
            cfg,
            identity,
            seg,
            end: offset,
            pending: Vec::new(),
            bounds: VecDeque::new(),
            submitted: offset,
            written: offset,
            synced: offset,
            exclusive: None,
            writes: VecDeque::new(),
            next_ticket: 1,
            last_sync_ms: 0,
            roll: false,
            failed: None,
            undone: false,
            retry_at: 0,
            based,
            pending_since: None,
        }
    }

    pub fn fsync(&self) -> Fsync {
        self.cfg.fsync
    }

    /// Units are waiting to be written (the caller should poll again within `GATHER_MS`).
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    pub fn set_fsync(&mut self, f: Fsync) {
        self.cfg.fsync = f;
    }

    /// The log offset after the last unit appended.
    pub fn end(&self) -> u64 {
        self.end
    }

    /// Every unit below this offset is on stable storage.
    pub fn synced(&self) -> u64 {
        self.synced
    }

    pub fn written(&self) -> u64 {
        self.written
    }

    /// Why writing stopped, if it did.
    pub fn failed(&self) -> Option<&str> {
        self.failed.as_deref()
    }

    /// After a failure: whether the bytes that never became durable have been erased (only then is a
    /// failed write's absence proven).
    pub fn undone(&self) -> bool {
        self.failed.is_some() && self.undone
    }

    /// Nothing in flight and nothing to do until more is appended (or, after a failure, the undo is
    /// done).
    pub fn idle(&self) -> bool {
        let quiet = self.exclusive.is_none() && self.writes.is_empty();
        quiet
            && match self.failed {
                Some(_) => self.undone,
                None => {
                    self.pending.is_empty() && self.written == self.synced && self.seg.is_some()
                }
            }
    }

    /// Appends a sealed unit, which must begin where the log ends. Ignored once writing has failed (the
    /// shard refuses writes then).
    pub fn append(&mut self, unit: &[u8]) {
        if self.failed.is_some() {
            return;
        }
        self.pending.extend_from_slice(unit);
        self.end += unit.len() as u64;
        self.bounds.push_back(self.end);
    }

    /// The shard's replication identity changed (a promotion): the next unit starts a new segment whose
    /// header carries it.
    pub fn set_identity(&mut self, identity: Identity) {
        if identity != self.identity {
            self.identity = identity;
            self.roll = true;
        }
    }

    fn ticket(&mut self) -> Ticket {
        self.next_ticket += 1;
        self.next_ticket
    }

    fn exclusive(&mut self, e: Exclusive, op: Op) -> Option<(Ticket, Op)> {
        let t = self.ticket();
        self.exclusive = Some((t, e));
        Some((t, op))
    }

    /// The next operation to perform, if any can start now.
    pub fn poll(&mut self, now_ms: u64) -> Option<(Ticket, Op)> {
        if self.exclusive.is_some() {
            return None;
        }
        if self.failed.is_some() {
            // A write still in flight could land after an erase: wait for every one.
            return if self.writes.is_empty() {
                self.poll_undo(now_ms)
            } else {
                None
            };
        }
        let seg = match self.seg {
            Some(s) if !self.roll && !self.full(&s) => s,
            _ => {
                if !self.writes.is_empty() {
                    return None;
                }
                if self.seg.is_some() && self.pending.is_empty() && !self.roll {
                    return self.poll_sync(now_ms);
                }
                if self.seg.is_some() && self.written > self.synced {
                    // A segment is closed only synced whole.
                    return self.sync_op();
                }
                let (seg, size) = (self.written, self.cfg.segment_size.max(HEADER_LEN as u64));
                self.roll = false;
                let header = Header {
                    shard: self.cfg.shard,
                    shards: self.cfg.shards,
                    start: seg,
                    identity: self.identity.clone(),
                    based: std::mem::take(&mut self.based),
                }
                .encode();
                return self.exclusive(
                    Exclusive::Create { seg, size },
                    Op::Create { seg, header, size },
                );
            }
        };
        let always = self.cfg.fsync == Fsync::Always;
        if always && self.written > self.synced && self.writes.is_empty() {
            // Plain writes from before the policy changed: sync them before writing durably.
            return self.sync_op();
        }
        if !self.pending.is_empty() && self.writes.is_empty() {
            // Without `always` nobody waits on a write: small ones are gathered for a while, so the disk
            // (and the kernel worker doing the write) is not woken for every batch.
            let since = *self.pending_since.get_or_insert(now_ms);
            if always
                || self.pending.len() >= GATHER_BYTES
                || now_ms.saturating_sub(since) >= GATHER_MS
            {
                self.pending_since = None;
                return Some(self.write_op(seg, always));
            }
        }
        if self.writes.is_empty() {
            return self.poll_sync(now_ms);
        }
        None
    }

    /// A write of the pending units that fit (or the first one alone in an empty segment).
    fn write_op(&mut self, seg: Seg, sync: bool) -> (Ticket, Op) {
        let room = seg.size.saturating_sub(seg.pos);
        let mut upto = self.submitted;
        for &b in &self.bounds {
            if b - self.submitted <= room || upto == self.submitted && seg.pos == HEADER_LEN as u64
            {
                upto = b;
            } else {
                break;
            }
        }
        let n = (upto - self.submitted) as usize;
        let data: Vec<u8> = self.pending.drain(..n).collect();
        while self.bounds.front().is_some_and(|&b| b <= upto) {
            self.bounds.pop_front();
        }
        let s = self.seg.as_mut().expect("writes go to a segment");
        let pos = s.pos;
        s.pos += n as u64;
        s.size = s.size.max(s.pos);
        self.submitted = upto;
        let ticket = self.ticket();
        self.writes.push_back(InWrite {
            ticket,
            end: upto,
            sync,
            done: false,
        });
        (
            ticket,
            Op::Write {
                seg: seg.start,
                pos,
                data,
                sync,
            },
        )
    }

    /// The current segment cannot take the next pending unit (and holds some already).
    fn full(&self, s: &Seg) -> bool {
        match self.bounds.front() {
            Some(&b) => s.pos > HEADER_LEN as u64 && s.pos + (b - self.submitted) > s.size,
            None => false,
        }
    }

    fn poll_sync(&mut self, now_ms: u64) -> Option<(Ticket, Op)> {
        if self.written == self.synced {
            return None;
        }
        let due = match self.cfg.fsync {
            Fsync::Always => true,
            Fsync::EverySec => now_ms.saturating_sub(self.last_sync_ms) >= 1000,
            Fsync::No => false,
        };
        if due {
            self.sync_op()
        } else {
            None
        }
    }

    fn sync_op(&mut self) -> Option<(Ticket, Op)> {
        let seg = self.seg.expect("written bytes are in a segment").start;
        let upto = self.written;
        self.exclusive(Exclusive::Sync { upto }, Op::Sync { seg })
    }

    fn poll_undo(&mut self, now_ms: u64) -> Option<(Ticket, Op)> {
        if self.undone || now_ms < self.retry_at {
            return None;
        }
        let Some(seg) = self.seg else {
            self.undone = true;
            return None;
        };
        // Every unit at or past `synced` is in the current segment (segments close synced); anything
        // issued may have reached the disk, up to the last position written.
        let from = seg.pos_of(self.synced.max(seg.start));
        if seg.pos <= from {
            self.undone = true;
            return None;
        }
        let op = Op::Zero {
            seg: seg.start,
            pos: from,
            len: seg.pos - from,
        };
        self.exclusive(Exclusive::Zero, op)
    }

    /// Operation `ticket` completed (`Err`: it failed; its effect on the file is unknown).
    pub fn done(&mut self, ticket: Ticket, result: Result<(), String>, now_ms: u64) {
        if let Some((t, e)) = self.exclusive {
            if t == ticket {
                self.exclusive = None;
                return self.done_exclusive(e, result, now_ms);
            }
        }
        // An unknown ticket belongs to no operation of this writer (a writer replaced while idle
        // cannot have any): nothing to record.
        let Some(i) = self.writes.iter().position(|w| w.ticket == ticket) else {
            return;
        };
        if let Err(e) = result {
            self.writes.remove(i);
            return self.fail(e);
        }
        self.writes[i].done = true;
        while self.writes.front().is_some_and(|w| w.done) {
            let w = self.writes.pop_front().expect("front");
            if self.failed.is_some() {
                // Completed after an earlier failure: not counted; the undo erases it.
                continue;
            }
            self.written = w.end;
            if w.sync {
                self.synced = w.end;
                self.last_sync_ms = now_ms;
            }
        }
    }

    fn done_exclusive(&mut self, e: Exclusive, result: Result<(), String>, now_ms: u64) {
        match (e, result) {
            (Exclusive::Create { seg, size }, Ok(())) => {
                self.seg = Some(Seg {
                    start: seg,
                    pos: HEADER_LEN as u64,
                    size,
                });
                // Creating a segment syncs it.
                self.last_sync_ms = now_ms;
            }
            (Exclusive::Sync { upto }, Ok(())) => {
                self.synced = self.synced.max(upto);
                self.last_sync_ms = now_ms;
            }
            (Exclusive::Zero, Ok(())) => self.undone = true,
            (Exclusive::Zero, Err(_)) => self.retry_at = now_ms + RETRY_MS,
            // A failed creation wrote nothing to the new segment; the old one was synced whole.
            (Exclusive::Create { .. }, Err(e)) | (Exclusive::Sync { .. }, Err(e)) => self.fail(e),
        }
    }

    fn fail(&mut self, e: String) {
        if self.failed.is_none() {
            self.failed = Some(e);
        }
        self.pending.clear();
        self.bounds.clear();
        self.end = self.submitted;
    }
}
