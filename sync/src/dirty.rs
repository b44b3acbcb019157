//! Durability mode's dirty keys on one shard: the keys whose latest write is not committed yet, each with
//! the log offset that must commit before the key may be read (docs/durability.md). A read of such a key
//! waits for that offset; a key with nothing pending costs one empty-map check.
//!
//! Invariants: a key's offset is that of its latest write (offsets only grow); `prune(c)` forgets exactly
//! the keys whose offset is at most `c`; a wholesale change (FLUSHDB, FLUSHALL, SWAPDB) makes every key of
//! the shard dirty up to its offset (`all`).

use std::collections::{HashMap, VecDeque};

#[derive(Debug, Default)]
pub struct DirtyKeys {
    /// Per database: key -> offset of its latest uncommitted write.
    dbs: Vec<HashMap<Box<[u8]>, u64>>,
    /// (offset, db, key) in write order, for pruning from the front.
    order: VecDeque<(u64, usize, Box<[u8]>)>,
    /// Every key of the shard is dirty up to this offset (a flush or swap).
    all: u64,
}

impl DirtyKeys {
    pub fn is_empty(&self) -> bool {
        self.order.is_empty() && self.all == 0
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// `key` of `db` was written by a unit ending at `offset`.
    pub fn mark(&mut self, db: usize, key: &[u8], offset: u64) {
        if self.dbs.len() <= db {
            self.dbs.resize_with(db + 1, HashMap::new);
        }
        let k: Box<[u8]> = key.into();
        self.dbs[db].insert(k.clone(), offset);
        self.order.push_back((offset, db, k));
    }

    /// Every key is dirty up to `offset`.
    pub fn mark_all(&mut self, offset: u64) {
        self.all = self.all.max(offset);
    }

    /// The offset a read of `key` must wait for, if the key has an uncommitted write.
    #[inline]
    pub fn hold(&self, db: usize, key: &[u8]) -> Option<u64> {
        let k = self.dbs.get(db).and_then(|m| m.get(key)).copied();
        match (k, self.all) {
            (k, 0) => k,
            (Some(k), a) => Some(k.max(a)),
            (None, a) => Some(a),
        }
    }

    /// The commit point reached `commit`: keys written at or before it are clean.
    pub fn prune(&mut self, commit: u64) {
        if self.all <= commit {
            self.all = 0;
        }
        while let Some((o, _, _)) = self.order.front() {
            if *o > commit {
                break;
            }
            let (o, db, k) = self.order.pop_front().expect("front exists");
            if let Some(m) = self.dbs.get_mut(db) {
                if m.get(&k) == Some(&o) {
                    m.remove(&k);
                }
            }
        }
    }

    pub fn clear(&mut self) {
        self.dbs.clear();
        self.order.clear();
        self.all = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_key_is_dirty_until_its_latest_write_commits() {
        let mut d = DirtyKeys::default();
        assert!(d.is_empty());
        d.mark(0, b"k", 10);
        d.mark(1, b"k", 12);
        d.mark(0, b"k", 20);
        assert_eq!(d.hold(0, b"k"), Some(20));
        assert_eq!(d.hold(1, b"k"), Some(12));
        assert_eq!(d.hold(0, b"other"), None);
        d.prune(12);
        assert_eq!(
            d.hold(0, b"k"),
            Some(20),
            "its latest write is not committed"
        );
        assert_eq!(d.hold(1, b"k"), None);
        d.mark_all(30);
        assert_eq!(d.hold(0, b"other"), Some(30));
        assert_eq!(d.hold(0, b"k"), Some(30));
        d.prune(30);
        assert!(d.is_empty());
        assert_eq!(d.hold(0, b"k"), None);
    }

    proptest! {
        /// Against a model: a key's hold is the offset of its latest write when that is above the commit
        /// point, and nothing otherwise.
        #[test]
        fn holds_match_a_model(ops in prop::collection::vec((0usize..2, 0u8..4, 0u64..4), 1..60)) {
            let mut d = DirtyKeys::default();
            let mut model: HashMap<(usize, u8), u64> = HashMap::new();
            let (mut at, mut commit) = (0u64, 0u64);
            for (db, key, step) in ops {
                if step == 0 {
                    commit = at;
                    d.prune(commit);
                } else {
                    at += step;
                    d.mark(db, &[key], at);
                    model.insert((db, key), at);
                }
                for db in 0..2 {
                    for key in 0..4u8 {
                        let want = model.get(&(db, key)).copied().filter(|&o| o > commit);
                        prop_assert_eq!(d.hold(db, &[key]), want);
                    }
                }
            }
        }
    }
}
