//! A shard's replication backlog: its most recent log units in a ring, addressed by absolute offset (the
//! count of log bytes ever appended), so a replica that lost its link can resume from its own offset while
//! the ring still holds it.
//!
//! Invariants:
//! - it holds whole units only: `first` is always a unit boundary (each unit begins with its 4-byte
//!   length, see unit.rs), so a partial resync can only start at a unit, never inside one;
//! - the bytes at offsets `first..end` are exactly the last units appended;
//! - it holds at most `capacity` bytes, except that the newest unit is always held whole: a unit larger
//!   than the capacity replaces everything and the ring grows to its size (the sending side's allowance),
//!   shrinking back to `capacity` once a later unit pushes it out. So one large write never drops a
//!   replica that is following the stream; memory is at most max(capacity, the largest unit held);
//! - the ring's memory grows with what it holds (doubling), so a large repl-backlog-size costs only what is
//!   written; appending never allocates once the ring is full.

use crate::unit::peek_len;

#[derive(Debug)]
pub struct Backlog {
    buf: Vec<u8>,
    /// The configured size (repl-backlog-size's share).
    capacity: usize,
    /// The ring's size: `capacity`, or the size of a larger unit it holds.
    ring: usize,
    /// Absolute offset one past the last byte appended.
    end: u64,
    /// Absolute offset of the oldest unit still held.
    first: u64,
    /// The offset stored at position 0: positions are `(offset - base) % ring`, so until the ring first
    /// wraps its bytes are a prefix of `buf` and `buf` need only be that long.
    base: u64,
}

impl Backlog {
    /// An empty backlog whose next byte will have offset `start` (a replica's or a restarted primary's
    /// position).
    pub fn new(capacity: usize, start: u64) -> Self {
        assert!(capacity > 0, "backlog capacity must be positive");
        Backlog {
            buf: Vec::new(),
            capacity,
            ring: capacity,
            end: start,
            first: start,
            base: start,
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Bytes of memory the ring holds now.
    pub fn allocated(&self) -> usize {
        self.buf.len()
    }

    /// Offset of the oldest unit held (equal to `end_offset` when empty).
    pub fn first_offset(&self) -> u64 {
        self.first
    }

    pub fn end_offset(&self) -> u64 {
        self.end
    }

    /// Bytes currently held (INFO's repl_backlog_histlen).
    pub fn len(&self) -> usize {
        (self.end - self.first) as usize
    }

    pub fn is_empty(&self) -> bool {
        self.end == self.first
    }

    fn pos(&self, offset: u64) -> usize {
        ((offset - self.base) % self.ring as u64) as usize
    }

    /// The length of the unit held at `offset` (read from its first 4 bytes, which may wrap).
    fn unit_len_at(&self, offset: u64) -> usize {
        let p = self.pos(offset);
        let mut b = [0u8; 4];
        for (i, x) in b.iter_mut().enumerate() {
            // One division for the four bytes; the ring may wrap between them.
            let q = p + i;
            *x = self.buf[if q >= self.ring { q - self.ring } else { q }];
        }
        peek_len(&b).expect("4 bytes")
    }

    /// Appends one whole unit (its first 4 bytes are its length), evicting the oldest whole units to make
    /// room.
    pub fn append(&mut self, unit: &[u8]) {
        debug_assert_eq!(peek_len(unit), Some(unit.len()), "not a whole unit");
        let n = unit.len();
        let limit = self.capacity.max(n);
        while self.len() + n > limit && !self.is_empty() {
            let l = self.unit_len_at(self.first);
            self.first += l as u64;
        }
        if limit != self.ring {
            // Grow to hold one unit larger than the capacity, or shrink back once it is gone.
            let kept: Vec<u8> = self
                .read_from(self.first)
                .map(|(a, b)| [a, b].concat())
                .unwrap_or_default();
            let first = self.first;
            self.buf = Vec::new();
            self.ring = limit;
            self.base = first;
            self.end = first;
            self.write(&kept);
        }
        self.write(unit);
    }

    fn write(&mut self, data: &[u8]) {
        let need = (self.end + data.len() as u64 - self.base).min(self.ring as u64) as usize;
        if self.buf.len() < need {
            let grow = need.max(self.buf.len() * 2).min(self.ring);
            self.buf.resize(grow, 0);
        }
        let start = self.pos(self.end);
        let first_part = data.len().min(self.ring - start);
        self.buf[start..start + first_part].copy_from_slice(&data[..first_part]);
        self.buf[..data.len() - first_part].copy_from_slice(&data[first_part..]);
        self.end += data.len() as u64;
    }

    /// The bytes from `offset` to the end, as up to two slices (the ring may wrap); None if `offset` is
    /// no longer (or not yet) held.
    pub fn read_from(&self, offset: u64) -> Option<(&[u8], &[u8])> {
        if offset < self.first || offset > self.end {
            return None;
        }
        let len = (self.end - offset) as usize;
        if len == 0 {
            return Some((&[], &[]));
        }
        let start = self.pos(offset);
        let first_part = len.min(self.ring - start);
        Some((
            &self.buf[start..start + first_part],
            &self.buf[..len - first_part],
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::unit::UnitWriter;
    use proptest::prelude::*;

    fn contents(b: &Backlog, from: u64) -> Option<Vec<u8>> {
        b.read_from(from).map(|(x, y)| [x, y].concat())
    }

    /// A unit of about `size` bytes at `start`.
    fn unit(start: u64, size: usize) -> Vec<u8> {
        let mut w = UnitWriter::default();
        let pad = size.saturating_sub(crate::unit::MIN_LEN + 8);
        w.record(0, &[&b"SET"[..], &vec![b'x'; pad]]);
        w.seal(start).unwrap()
    }

    #[test]
    fn memory_follows_use_up_to_capacity() {
        let mut b = Backlog::new(1 << 20, 12_345);
        assert_eq!(b.allocated(), 0);
        let u = unit(b.end_offset(), 100);
        b.append(&u);
        assert!(
            b.allocated() >= 90 && b.allocated() < 1024,
            "{}",
            b.allocated()
        );
        for _ in 0..30_000 {
            let u = unit(b.end_offset(), 100);
            b.append(&u);
        }
        assert_eq!(b.allocated(), 1 << 20, "never beyond capacity");
        assert!(b.len() <= 1 << 20 && b.len() > (1 << 20) - 200);
    }

    #[test]
    fn evicts_whole_units_and_keeps_the_newest_whole() {
        let mut b = Backlog::new(300, 100);
        let mut starts = Vec::new();
        for _ in 0..5 {
            starts.push(b.end_offset());
            let u = unit(b.end_offset(), 100);
            b.append(&u);
        }
        // Every held position is a unit start: reading from `first` yields whole units.
        assert!(starts.contains(&b.first_offset()));
        assert!(b.len() <= 300);
        let from = b.first_offset();
        let held = contents(&b, from).unwrap();
        let mut next = from;
        let mut units = Vec::new();
        assert_eq!(
            crate::unit::split_units(&held, &mut next, &mut units),
            Ok(held.len())
        );
        // A unit larger than the capacity: held whole (the ring grows), everything older goes.
        let big_at = b.end_offset();
        let big = unit(big_at, 1000);
        b.append(&big);
        assert_eq!((b.first_offset(), b.end_offset()), (big_at, big_at + 1000));
        assert_eq!(contents(&b, big_at), Some(big));
        assert!(b.allocated() >= 1000);
        // The next unit pushes it out and the ring shrinks back to the capacity.
        let after = b.end_offset();
        let small = unit(after, 100);
        b.append(&small);
        assert_eq!(b.first_offset(), after);
        assert_eq!(contents(&b, after), Some(small));
        assert!(b.allocated() <= 300, "{}", b.allocated());
    }

    proptest! {
        /// Against a model that keeps every unit: the backlog holds the longest suffix of whole units that
        /// fits in its capacity, and at least the newest one.
        #[test]
        fn matches_a_model(cap in 44usize..400, start in 0u64..1000, sizes in prop::collection::vec(44usize..200, 0..30)) {
            let mut b = Backlog::new(cap, start);
            let mut all: Vec<Vec<u8>> = Vec::new();
            for size in sizes {
                let u = unit(b.end_offset(), size);
                b.append(&u);
                all.push(u);
                let end = start + all.iter().map(Vec::len).sum::<usize>() as u64;
                prop_assert_eq!(b.end_offset(), end);
                let mut keep = 0;
                let mut held = 0;
                for u in all.iter().rev() {
                    if keep > 0 && held + u.len() > cap { break; }
                    held += u.len();
                    keep += 1;
                }
                let want: Vec<u8> = all[all.len() - keep..].concat();
                prop_assert_eq!(b.first_offset(), end - held as u64);
                prop_assert_eq!(contents(&b, b.first_offset()), Some(want));
                prop_assert_eq!(contents(&b, b.first_offset().wrapping_sub(1)), None);
            }
        }
    }
}
