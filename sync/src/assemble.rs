//! Reassembly of multi-shard transactions on a replica. Each primary shard that took part in a write
//! transaction logs one unit tagged with the transaction's id and the number of parts; those units arrive
//! on different flows, in any order relative to each other. The replica applies a transaction only once it
//! holds every part, all together, so no reader (and no promoted replica) sees part of it.
//!
//! Invariants: a transaction is released exactly once, with exactly `parts` parts; a part never waits for
//! another transaction (a primary seals a transaction's parts in its lock order, so parts of different
//! transactions cannot form a cycle across flows).

use crate::unit::TxTag;
use std::collections::HashMap;

pub struct TxAssembler<P> {
    open: HashMap<u64, (u16, Vec<P>)>,
}

impl<P> Default for TxAssembler<P> {
    fn default() -> Self {
        TxAssembler {
            open: HashMap::new(),
        }
    }
}

impl<P> TxAssembler<P> {
    /// Adds one part; returns every part of the transaction once the last one arrived.
    pub fn add(&mut self, tag: TxTag, part: P) -> Option<Vec<P>> {
        let parts = tag.parts.max(1);
        let e = self
            .open
            .entry(tag.txid)
            .or_insert_with(|| (parts, Vec::with_capacity(parts as usize)));
        e.1.push(part);
        if e.1.len() >= e.0 as usize {
            return self.open.remove(&tag.txid).map(|(_, p)| p);
        }
        None
    }

    /// Transactions still missing parts.
    pub fn waiting(&self) -> usize {
        self.open.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn tag(txid: u64, parts: u16) -> TxTag {
        TxTag { txid, parts }
    }

    #[test]
    fn released_once_complete() {
        let mut a = TxAssembler::default();
        assert_eq!(a.add(tag(1, 1), "solo"), Some(vec!["solo"]));
        assert_eq!(a.add(tag(2, 3), "a"), None);
        assert_eq!(a.add(tag(3, 2), "x"), None);
        assert_eq!(a.add(tag(2, 3), "b"), None);
        assert_eq!(a.waiting(), 2);
        assert_eq!(a.add(tag(2, 3), "c"), Some(vec!["a", "b", "c"]));
        assert_eq!(a.add(tag(3, 2), "y"), Some(vec!["x", "y"]));
        assert_eq!(a.waiting(), 0);
    }

    proptest! {
        /// Parts of many transactions, delivered in any interleaving: each transaction is released exactly
        /// once, with all of its parts, at the arrival of its last part.
        #[test]
        fn any_interleaving(sizes in prop::collection::vec(1u16..6, 1..10), seed in any::<u64>()) {
            let mut parts: Vec<(u64, u16, u16)> = Vec::new();
            for (t, &n) in sizes.iter().enumerate() {
                for p in 0..n { parts.push((t as u64, n, p)); }
            }
            // A seeded shuffle.
            let mut x = seed | 1;
            for i in (1..parts.len()).rev() {
                x ^= x << 13; x ^= x >> 7; x ^= x << 17;
                parts.swap(i, (x % (i as u64 + 1)) as usize);
            }
            let mut a = TxAssembler::default();
            let mut released = vec![0u32; sizes.len()];
            for (i, &(t, n, p)) in parts.iter().enumerate() {
                if let Some(all) = a.add(tag(t, n), p) {
                    prop_assert_eq!(all.len(), n as usize);
                    released[t as usize] += 1;
                    let last = parts[i + 1..].iter().all(|q| q.0 != t);
                    prop_assert!(last);
                }
            }
            prop_assert!(released.iter().all(|&r| r == 1));
            prop_assert_eq!(a.waiting(), 0);
        }
    }
}
