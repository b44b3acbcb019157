//! What a keyspace mutation does besides changing a table, for replication:
//! - **capture**: the key is recorded as dirty; the shard later journals its resulting state (a SET with
//!   an absolute expiry, or a DEL), which makes every effect deterministic whatever command caused it;
//! - **copy before write**: for each point-in-time snapshot in progress, a slot not yet sent is serialized
//!   as it is *before* the write changes it. The snapshot walks slots in order and sends queued copies
//!   first, so what it sends is exactly the data at its start, with no fork and no pause.
//!
//! Invariant: a slot is serialized at most once per snapshot (`sent`), either by the walk or by a write;
//! the extra memory is the queue of copied slots not yet on the socket.

use std::collections::VecDeque;

/// Records are grouped in pieces of about this size (each a frame payload).
pub const PIECE_BYTES: usize = 256 << 10;

#[derive(Default)]
pub struct Hooks {
    /// Journal capture is on (this shard has a backlog and is a primary).
    pub capture: bool,
    /// (db, key) touched since the shard last drained them into its journal.
    pub dirty: Vec<(usize, Vec<u8>)>,
    pub snapshots: Vec<SlotSnapshot>,
}

impl Hooks {
    #[inline]
    pub fn active(&self) -> bool {
        self.capture || !self.snapshots.is_empty()
    }
}

pub struct SlotSnapshot {
    pub id: u64,
    /// Per owned slot (index from the shard's first slot): already serialized.
    sent: Vec<bool>,
    /// Next slot the walk serializes.
    cursor: usize,
    queue: VecDeque<Vec<u8>>,
    pub queued_bytes: usize,
    /// Bytes serialized because a write reached an unsent slot first (the copy-on-write cost).
    pub copied_bytes: u64,
    pub peak_queued_bytes: usize,
    pub keys: u64,
}

impl SlotSnapshot {
    pub fn new(id: u64, slots: usize) -> Self {
        SlotSnapshot {
            id,
            sent: vec![false; slots],
            cursor: 0,
            queue: VecDeque::new(),
            queued_bytes: 0,
            copied_bytes: 0,
            peak_queued_bytes: 0,
            keys: 0,
        }
    }

    /// Called before slot `idx` changes: copies it if this snapshot has not sent it yet.
    pub fn before_write(
        &mut self,
        idx: usize,
        serialize: impl FnOnce(usize) -> (Vec<Vec<u8>>, u64),
    ) {
        if self.sent[idx] {
            return;
        }
        self.sent[idx] = true;
        let (pieces, keys) = serialize(idx);
        self.keys += keys;
        for p in pieces {
            self.copied_bytes += p.len() as u64;
            self.queued_bytes += p.len();
            self.queue.push_back(p);
        }
        self.peak_queued_bytes = self.peak_queued_bytes.max(self.queued_bytes);
    }

    /// The next piece to send: copies made by writes first, then the walk's next unsent slot. None when
    /// every slot has been sent.
    pub fn next_piece(
        &mut self,
        serialize: impl Fn(usize) -> (Vec<Vec<u8>>, u64),
    ) -> Option<Vec<u8>> {
        loop {
            if let Some(p) = self.queue.pop_front() {
                self.queued_bytes -= p.len();
                return Some(p);
            }
            while self.cursor < self.sent.len() && self.sent[self.cursor] {
                self.cursor += 1;
            }
            if self.cursor >= self.sent.len() {
                return None;
            }
            let idx = self.cursor;
            self.sent[idx] = true;
            let (pieces, keys) = serialize(idx);
            self.keys += keys;
            self.queue
                .extend(pieces.into_iter().inspect(|p| self.queued_bytes += p.len()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_slot_once_writes_first() {
        let mut s = SlotSnapshot::new(1, 4);
        let ser = |i: usize| (vec![vec![i as u8]], 1);
        s.before_write(2, ser);
        s.before_write(2, |_| panic!("slot 2 copied twice"));
        let mut got = Vec::new();
        got.push(s.next_piece(ser).unwrap());
        s.before_write(3, ser);
        while let Some(p) = s.next_piece(ser) {
            got.push(p);
        }
        assert_eq!(got, vec![vec![2], vec![3], vec![0], vec![1]]);
        assert_eq!((s.keys, s.copied_bytes, s.queued_bytes), (4, 2, 0));
    }

    #[test]
    fn empty_slots_yield_nothing() {
        let mut s = SlotSnapshot::new(1, 3);
        assert_eq!(s.next_piece(|_| (Vec::new(), 0)), None);
    }
}
