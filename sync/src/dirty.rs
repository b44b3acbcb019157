//! Durability mode's dirty keys on one shard: a read of a key whose latest write has not committed must
//! wait for that write's log offset (docs/durability.md). Kept as a fixed table of offsets indexed by a
//! hash of (db, key): a write raises its bucket to its unit's end; a read waits for its bucket's offset
//! if that is above the commit point. Two keys sharing a bucket can make a read wait for a write it does
//! not depend on (never the reverse), which costs latency, never correctness; the table never allocates
//! on the write path and a shard with nothing pending answers with one comparison.
//!
//! Invariants: a bucket's offset is at least that of the latest write of every key hashed to it; `max`
//! is at least every bucket's offset; a wholesale change (FLUSHDB, FLUSHALL, SWAPDB) makes every key dirty
//! up to its offset (`all`).

/// Buckets per shard (a power of two): 8 bytes each.
pub const BUCKETS: usize = 1 << 14;

#[derive(Debug)]
pub struct DirtyKeys {
    table: Box<[u64]>,
    /// The largest offset marked (a read with `max <= commit` needs no lookup).
    max: u64,
    /// Every key is dirty up to this offset (a flush or swap).
    all: u64,
}

impl Default for DirtyKeys {
    /// Empty: the table is allocated by the first write (a shard never in durability mode pays nothing).
    fn default() -> Self {
        DirtyKeys {
            table: Box::new([]),
            max: 0,
            all: 0,
        }
    }
}

/// The bucket of `key` in database `db` (FxHash-style: fast, and only ever compared within a process).
#[inline]
pub fn bucket(db: usize, key: &[u8]) -> u32 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let mut h = (db as u64).wrapping_mul(K);
    let mut chunks = key.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_le_bytes(c.try_into().expect("8 bytes"));
        h = (h.rotate_left(5) ^ w).wrapping_mul(K);
    }
    for &b in chunks.remainder() {
        h = (h.rotate_left(5) ^ b as u64).wrapping_mul(K);
    }
    ((h >> 32) as usize & (BUCKETS - 1)) as u32
}

impl DirtyKeys {
    /// Whether anything may be pending above `commit`.
    #[inline]
    pub fn pending(&self, commit: u64) -> bool {
        self.max > commit
    }

    /// The keys of bucket `b` were written by a unit ending at `offset`.
    pub fn mark(&mut self, b: u32, offset: u64) {
        if self.table.is_empty() {
            self.table = vec![0; BUCKETS].into_boxed_slice();
        }
        let slot = &mut self.table[b as usize];
        *slot = (*slot).max(offset);
        self.max = self.max.max(offset);
    }

    /// Every key is dirty up to `offset`.
    pub fn mark_all(&mut self, offset: u64) {
        self.all = self.all.max(offset);
        self.max = self.max.max(offset);
    }

    /// The offset a read of `key` must wait for, if it may have an uncommitted write.
    #[inline]
    pub fn hold(&self, db: usize, key: &[u8], commit: u64) -> Option<u64> {
        if self.max <= commit {
            return None;
        }
        let o = self
            .table
            .get(bucket(db, key) as usize)
            .copied()
            .unwrap_or(0)
            .max(self.all);
        (o > commit).then_some(o)
    }

    pub fn clear(&mut self) {
        self.table.fill(0);
        self.max = 0;
        self.all = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    #[test]
    fn a_key_is_dirty_until_its_latest_write_commits() {
        let mut d = DirtyKeys::default();
        assert!(!d.pending(0));
        d.mark(bucket(0, b"k"), 10);
        d.mark(bucket(1, b"k"), 12);
        d.mark(bucket(0, b"k"), 20);
        assert_eq!(d.hold(0, b"k", 0), Some(20));
        assert!(d.hold(1, b"k", 0).is_some_and(|o| o >= 12));
        assert_eq!(d.hold(0, b"k", 20), None, "committed");
        assert!(d.pending(19) && !d.pending(20));
        d.mark_all(30);
        assert_eq!(d.hold(0, b"other", 20), Some(30));
        assert_eq!(d.hold(0, b"k", 30), None);
        d.clear();
        assert_eq!(d.hold(0, b"k", 0), None);
    }

    #[test]
    fn keys_spread_over_the_buckets() {
        let mut seen = std::collections::HashSet::new();
        for i in 0..4096 {
            seen.insert(bucket(0, format!("key:{i:08}").as_bytes()));
        }
        assert!(seen.len() > 3500, "{} buckets for 4096 keys", seen.len());
        assert_ne!(bucket(0, b"k"), bucket(1, b"k"));
    }

    proptest! {
        /// Against a model of exact keys: a read of a key whose latest write is above the commit point
        /// always waits for at least that write; with nothing pending, nothing waits.
        #[test]
        fn never_misses_an_uncommitted_write(ops in prop::collection::vec((0usize..2, 0u16..600, 0u64..4), 1..80)) {
            let mut d = DirtyKeys::default();
            let mut model: HashMap<(usize, u16), u64> = HashMap::new();
            let (mut at, mut commit) = (0u64, 0u64);
            for (db, key, step) in ops {
                if step == 0 {
                    commit = at;
                } else {
                    at += step;
                    d.mark(bucket(db, &key.to_le_bytes()), at);
                    model.insert((db, key), at);
                }
                for (&(db, key), &o) in &model {
                    let h = d.hold(db, &key.to_le_bytes(), commit);
                    if o > commit {
                        prop_assert!(h.is_some_and(|x| x >= o));
                    }
                }
                if commit == at {
                    prop_assert!(!d.pending(commit));
                }
            }
        }
    }
}
