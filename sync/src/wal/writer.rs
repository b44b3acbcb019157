//! One shard's WAL writer as a state machine without I/O: the shard appends sealed units, `poll` names the
//! next file operation, the caller performs it and reports with `done`. One operation is in flight at a
//! time, so group commit is what happens naturally: while one write and its sync are on the disk, every
//! unit sealed meanwhile waits in `pending` and the next write takes them all.
//!
//! Invariants:
//! - `synced <= written <= end`; `synced` only grows, and every unit below it is on stable storage (a
//!   reply held for `appendfsync always` is released against it);
//! - a segment is created only when the previous one is synced whole, so only the newest segment can end
//!   in a torn unit;
//! - after a failed write or sync nothing more is written: the bytes between `synced` and what was written
//!   are overwritten with zeros and synced (`Op::Zero`) before `undone()` is true, and only then may a
//!   client be told its write failed; so a unit reported as failed can never be recovered.

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
    /// Write `data` at file position `pos` of segment `seg`.
    Write { seg: u64, pos: u64, data: Vec<u8> },
    /// `fdatasync` segment `seg`.
    Sync { seg: u64 },
    /// Overwrite `len` bytes at `pos` of segment `seg` with zeros, then sync it.
    Zero { seg: u64, pos: u64, len: u64 },
}

#[derive(Debug, Clone, Copy)]
enum Inflight {
    Create { seg: u64, size: u64 },
    Write { len: u64, end: u64 },
    Sync { upto: u64 },
    Zero,
}

#[derive(Debug, Clone, Copy)]
struct Seg {
    start: u64,
    /// The next write's file position.
    pos: u64,
    size: u64,
}

/// Where a writer begins: a new segment at `offset`, or the end of an existing one (after recovery).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    Fresh {
        offset: u64,
    },
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
    /// The bytes from `written` to `end`, and the end offset of each unit among them.
    pending: Vec<u8>,
    bounds: VecDeque<u64>,
    written: u64,
    synced: u64,
    inflight: Option<Inflight>,
    last_sync_ms: u64,
    roll: bool,
    failed: Option<String>,
    undone: bool,
    retry_at: u64,
    /// Bytes of a write that failed part-way (all of them may be on the disk).
    torn_len: u64,
}

/// A failed undo is retried this long after (a dead disk is not spun on).
const RETRY_MS: u64 = 1000;

impl Writer {
    pub fn new(cfg: Config, identity: Identity, start: Start) -> Self {
        let (seg, offset) = match start {
            Start::Fresh { offset } => (None, offset),
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
            ),
        };
        Writer {
            cfg,
            identity,
            seg,
            end: offset,
            pending: Vec::new(),
            bounds: VecDeque::new(),
            written: offset,
            synced: offset,
            inflight: None,
            last_sync_ms: 0,
            roll: false,
            failed: None,
            undone: false,
            retry_at: 0,
            torn_len: 0,
        }
    }

    pub fn fsync(&self) -> Fsync {
        self.cfg.fsync
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

    pub fn busy(&self) -> bool {
        self.inflight.is_some()
    }

    /// Whether there is anything to do now (a caller with nothing in flight may sleep otherwise).
    pub fn idle(&self) -> bool {
        self.inflight.is_none()
            && (self.failed.is_some() && (self.undone || self.written == self.synced)
                || self.pending.is_empty() && self.written == self.synced && self.seg.is_some())
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

    /// The next operation to perform, if any (none while one is in flight).
    pub fn poll(&mut self, now_ms: u64) -> Option<Op> {
        if self.inflight.is_some() {
            return None;
        }
        if self.failed.is_some() {
            return self.poll_undo(now_ms);
        }
        let seg = match self.seg {
            Some(s) if !self.roll && !self.full(&s) => s,
            _ => {
                if self.seg.is_some() && self.pending.is_empty() && !self.roll {
                    return self.poll_sync(now_ms);
                }
                if self.seg.is_some() && self.written > self.synced {
                    // A segment is closed only synced whole.
                    return Some(self.sync_op());
                }
                let (seg, size) = (self.written, self.cfg.segment_size.max(HEADER_LEN as u64));
                self.roll = false;
                self.inflight = Some(Inflight::Create { seg, size });
                let header = Header {
                    shard: self.cfg.shard,
                    shards: self.cfg.shards,
                    start: seg,
                    identity: self.identity.clone(),
                };
                return Some(Op::Create {
                    seg,
                    header: header.encode(),
                    size,
                });
            }
        };
        if !self.pending.is_empty() {
            // Whole units that fit, or the first one alone in an empty segment.
            let room = seg.size.saturating_sub(seg.pos);
            let mut upto = self.written;
            for &b in &self.bounds {
                if b - self.written <= room || upto == self.written && seg.pos == HEADER_LEN as u64
                {
                    upto = b;
                } else {
                    break;
                }
            }
            let n = (upto - self.written) as usize;
            let data: Vec<u8> = self.pending.drain(..n).collect();
            while self.bounds.front().is_some_and(|&b| b <= upto) {
                self.bounds.pop_front();
            }
            self.inflight = Some(Inflight::Write {
                len: n as u64,
                end: upto,
            });
            return Some(Op::Write {
                seg: seg.start,
                pos: seg.pos,
                data,
            });
        }
        self.poll_sync(now_ms)
    }

    /// The current segment cannot take the next pending unit (and holds some already).
    fn full(&self, s: &Seg) -> bool {
        match self.bounds.front() {
            Some(&b) => s.pos > HEADER_LEN as u64 && s.pos + (b - self.written) > s.size,
            None => false,
        }
    }

    fn poll_sync(&mut self, now_ms: u64) -> Option<Op> {
        if self.written == self.synced {
            return None;
        }
        let due = match self.cfg.fsync {
            Fsync::Always => true,
            Fsync::EverySec => now_ms.saturating_sub(self.last_sync_ms) >= 1000,
            Fsync::No => false,
        };
        due.then(|| self.sync_op())
    }

    fn sync_op(&mut self) -> Op {
        let seg = self.seg.expect("written bytes are in a segment").start;
        self.inflight = Some(Inflight::Sync { upto: self.written });
        Op::Sync { seg }
    }

    fn poll_undo(&mut self, now_ms: u64) -> Option<Op> {
        if self.undone || now_ms < self.retry_at {
            return None;
        }
        let Some(seg) = self.seg else {
            self.undone = true;
            return None;
        };
        // Every unit at or past `synced` is in the current segment (segments close synced), and its
        // bytes start at the position `synced` maps to; what may have reached the disk ends at `pos`
        // (or past it, for a write that failed part-way: its full length is erased).
        let from = seg.pos - (self.written - self.synced.max(seg.start));
        let len = seg.pos + self.torn_len - from;
        self.inflight = Some(Inflight::Zero);
        Some(Op::Zero {
            seg: seg.start,
            pos: from,
            len,
        })
    }

    /// The operation from the last `poll` completed (`Err`: it failed; its effect on the file is unknown).
    pub fn done(&mut self, result: Result<(), String>, now_ms: u64) {
        let op = self.inflight.take().expect("an operation was in flight");
        match (op, result) {
            (Inflight::Create { seg, size }, Ok(())) => {
                self.seg = Some(Seg {
                    start: seg,
                    pos: HEADER_LEN as u64,
                    size,
                });
                // Creating a segment syncs it.
                self.last_sync_ms = now_ms;
            }
            (Inflight::Write { len, end }, Ok(())) => {
                let s = self.seg.as_mut().expect("a write goes to a segment");
                s.pos += len;
                s.size = s.size.max(s.pos);
                self.written = end;
            }
            (Inflight::Sync { upto }, Ok(())) => {
                self.synced = self.synced.max(upto);
                self.last_sync_ms = now_ms;
            }
            (Inflight::Zero, Ok(())) => self.undone = true,
            (Inflight::Zero, Err(_)) => self.retry_at = now_ms + RETRY_MS,
            (Inflight::Write { len, .. }, Err(e)) => {
                // Part of it may be on the disk: the undo covers its whole length.
                self.torn_len = len;
                self.fail(e);
            }
            (Inflight::Create { .. }, Err(e)) => {
                // The new segment may exist without every unit of the old one synced: nothing was
                // written to it, so the undo concerns the old one.
                self.fail(e)
            }
            (Inflight::Sync { .. }, Err(e)) => self.fail(e),
        }
    }

    fn fail(&mut self, e: String) {
        self.failed = Some(e);
        self.pending.clear();
        self.bounds.clear();
        self.end = self.written;
        if self.written == self.synced && self.torn_len == 0 {
            self.undone = true;
        }
    }
}
