//! A shard's replication backlog: the most recent bytes of its journal in a fixed-size ring, addressed by
//! absolute offset (the count of journal bytes ever appended), so a replica that lost its link can resume
//! from its own offset while the ring still holds it.
//!
//! Invariants: `end - first <= capacity`; the bytes at offsets `first..end` are exactly the last ones
//! appended; the ring's memory grows with what it holds (doubling) up to `capacity` and never beyond, so
//! a large repl-backlog-size costs only what is written; appending never allocates once the ring is full.

#[derive(Debug)]
pub struct Backlog {
    buf: Vec<u8>,
    capacity: usize,
    /// Absolute offset one past the last byte appended.
    end: u64,
    /// Absolute offset of the oldest byte still held.
    first: u64,
    /// The offset stored at position 0: positions are `(offset - base) % capacity`, so until the ring
    /// first wraps its bytes are a prefix of `buf` and `buf` need only be that long.
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
            end: start,
            first: start,
            base: start,
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Bytes of memory the ring holds now (at most `capacity`).
    pub fn allocated(&self) -> usize {
        self.buf.len()
    }

    /// Offset of the oldest byte held (equal to `end_offset` when empty).
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
        ((offset - self.base) % self.capacity as u64) as usize
    }

    pub fn append(&mut self, mut data: &[u8]) {
        if data.len() >= self.capacity {
            // Only the tail fits; skip what would be overwritten anyway.
            let skip = data.len() - self.capacity;
            self.end += skip as u64;
            data = &data[skip..];
        }
        let need = (self.end + data.len() as u64 - self.base).min(self.capacity as u64) as usize;
        if self.buf.len() < need {
            let grow = need.max(self.buf.len() * 2).min(self.capacity);
            self.buf.resize(grow, 0);
        }
        let start = self.pos(self.end);
        let first_part = data.len().min(self.capacity - start);
        self.buf[start..start + first_part].copy_from_slice(&data[..first_part]);
        self.buf[..data.len() - first_part].copy_from_slice(&data[first_part..]);
        self.end += data.len() as u64;
        self.first = self
            .first
            .max(self.end.saturating_sub(self.capacity as u64));
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
        let first_part = len.min(self.capacity - start);
        Some((
            &self.buf[start..start + first_part],
            &self.buf[..len - first_part],
        ))
    }

    /// Changes the capacity (CONFIG SET repl-backlog-size), keeping as many of the newest bytes as fit.
    pub fn resize(&mut self, capacity: usize) {
        assert!(capacity > 0, "backlog capacity must be positive");
        let keep_from = self.first.max(self.end.saturating_sub(capacity as u64));
        let kept: Vec<u8> = match self.read_from(keep_from) {
            Some((a, b)) => [a, b].concat(),
            None => Vec::new(),
        };
        *self = Backlog::new(capacity, keep_from);
        self.append(&kept);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn contents(b: &Backlog, from: u64) -> Option<Vec<u8>> {
        b.read_from(from).map(|(x, y)| [x, y].concat())
    }

    #[test]
    fn memory_follows_use_up_to_capacity() {
        let mut b = Backlog::new(1 << 20, 12_345);
        assert_eq!(b.allocated(), 0);
        b.append(&[7; 100]);
        assert!(
            b.allocated() >= 100 && b.allocated() < 1024,
            "{}",
            b.allocated()
        );
        for _ in 0..30_000 {
            b.append(&[1; 100]);
        }
        assert_eq!(b.allocated(), 1 << 20, "never beyond capacity");
        assert_eq!(b.len(), 1 << 20);
        assert_eq!(contents(&b, b.end_offset() - 3), Some(vec![1, 1, 1]));
    }

    #[test]
    fn offsets_wrap_and_expire() {
        let mut b = Backlog::new(8, 100);
        assert_eq!((b.first_offset(), b.end_offset(), b.len()), (100, 100, 0));
        assert_eq!(contents(&b, 100), Some(vec![]));
        b.append(b"abcdef");
        assert_eq!(contents(&b, 102), Some(b"cdef".to_vec()));
        b.append(b"ghij");
        assert_eq!((b.first_offset(), b.end_offset()), (102, 110));
        assert_eq!(contents(&b, 102), Some(b"cdefghij".to_vec()));
        assert_eq!(contents(&b, 101), None, "overwritten");
        assert_eq!(contents(&b, 111), None, "not yet written");
        b.append(b"0123456789ABC");
        // Longer than the ring: only its last 8 bytes are kept, at offsets 115..123.
        assert_eq!((b.first_offset(), b.end_offset()), (115, 123));
        assert_eq!(contents(&b, 115), Some(b"56789ABC".to_vec()));
        b.resize(3);
        assert_eq!(contents(&b, b.first_offset()), Some(b"ABC".to_vec()));
        assert_eq!(b.end_offset(), 123);
    }

    proptest! {
        /// Against a model that keeps everything: the backlog holds exactly the last `cap` bytes.
        #[test]
        fn matches_a_model(cap in 1usize..64, start in 0u64..1000, chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..100), 0..20)) {
            let mut b = Backlog::new(cap, start);
            let mut all = Vec::new();
            for c in &chunks {
                b.append(c);
                all.extend_from_slice(c);
                let end = start + all.len() as u64;
                prop_assert_eq!(b.end_offset(), end);
                let first = end - (all.len().min(cap)) as u64;
                prop_assert_eq!(b.first_offset(), first);
                for from in first..=end {
                    let want = all[(from - start) as usize..].to_vec();
                    prop_assert_eq!(contents(&b, from), Some(want));
                }
                if first > start {
                    prop_assert_eq!(contents(&b, first - 1), None);
                }
            }
        }
    }
}
