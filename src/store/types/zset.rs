//! The sorted set type. While small (`listpack`): a pack of alternating member and score (8 bytes, f64
//! little-endian), kept in (score, member) order. Beyond zset-max-listpack-entries or -value (`skiplist`,
//! Valkey's name for it): each element is one node (a `Blob` holding `score | member`) owned by a segmented
//! table keyed by member, and the order is a list of sorted chunks of at most `CHUNK` pointers to those
//! same nodes, so an insert moves at most a chunk of pointers, a rank costs a walk over chunk lengths
//! rather than a skiplist's pointer chase per level, and a member is stored once.
//!
//! Invariants: the chunks hold exactly one pointer to each node of the table and no other pointer (so a
//! node is removed from the chunks before the table drops it, and a pointer read from a chunk is always to
//! a live node); chunks are non-empty and in (score, member) order; scores are never NaN.

use super::blob::{Blob, BlobRef};
use super::limits::Limits;
use crate::store::pack::Pack;
use crate::store::segtable::{Keyed, SegTable};
use std::cmp::Ordering;
use std::hash::BuildHasher;

const CHUNK: usize = 512;

pub fn cmp(a: (f64, &[u8]), b: (f64, &[u8])) -> Ordering {
    a.0.partial_cmp(&b.0)
        .unwrap_or(Ordering::Equal)
        .then_with(|| a.1.cmp(b.1))
}

/// A big sorted set's element: score (8 bytes little-endian) then member, in one block.
pub struct Node(Blob);

impl Node {
    fn new(m: &[u8], s: f64) -> Node {
        Node(Blob::new(&[&s.to_le_bytes(), m]))
    }

    pub fn member(&self) -> &[u8] {
        &self.0.bytes()[8..]
    }

    pub fn score(&self) -> f64 {
        score_of(&self.0.bytes()[..8])
    }
}

impl Keyed for Node {
    #[inline]
    fn key(&self) -> &[u8] {
        self.member()
    }
}

/// A chunk's pointer to a node of the same sorted set's table.
#[derive(Clone, Copy)]
struct Ptr(BlobRef);

impl Ptr {
    #[inline]
    fn get<'a>(self) -> (f64, &'a [u8]) {
        // SAFETY: by the module's invariant a chunk only holds pointers to live nodes of its set's table,
        // and the caller's borrow of the set keeps them alive.
        let b = unsafe { self.0.bytes() };
        (score_of(&b[..8]), &b[8..])
    }
}

fn node_table() -> SegTable<Node> {
    SegTable::with_segment_max(
        std::collections::hash_map::RandomState::new().hash_one(0u8),
        896,
    )
}

/// The big encoding's order: sorted chunks of pointers into the table.
#[derive(Default)]
pub struct Ranked {
    chunks: Vec<Vec<Ptr>>,
}

impl Ranked {
    /// The chunk where (score, member) belongs.
    fn chunk_for(&self, s: f64, m: &[u8]) -> usize {
        let c = self
            .chunks
            .partition_point(|c| cmp(c[c.len() - 1].get(), (s, m)) == Ordering::Less);
        c.min(self.chunks.len().saturating_sub(1))
    }

    fn insert(&mut self, p: Ptr) {
        if self.chunks.is_empty() {
            self.chunks.push(vec![p]);
            return;
        }
        let (s, m) = p.get();
        let c = self.chunk_for(s, m);
        let ch = &mut self.chunks[c];
        let at = ch.partition_point(|x| cmp(x.get(), (s, m)) == Ordering::Less);
        ch.insert(at, p);
        if ch.len() > CHUNK * 2 {
            let tail = ch.split_off(CHUNK);
            // Both halves at their length: elements added in order fill chunks only up to CHUNK + 1.
            ch.shrink_to_fit();
            self.chunks.insert(c + 1, tail);
        }
    }

    fn remove(&mut self, s: f64, m: &[u8]) {
        let c = self.chunk_for(s, m);
        let ch = &mut self.chunks[c];
        let at = ch.partition_point(|x| cmp(x.get(), (s, m)) == Ordering::Less);
        debug_assert!(at < ch.len() && ch[at].get().1 == m);
        ch.remove(at);
        if ch.is_empty() {
            self.chunks.remove(c);
        }
    }

    /// Elements before the first one for which `at_or_after` holds (they are ordered so it is monotone).
    fn count_before(&self, at_or_after: impl Fn(f64, &[u8]) -> bool) -> usize {
        let c = self.chunks.partition_point(|c| {
            let (s, m) = c[c.len() - 1].get();
            !at_or_after(s, m)
        });
        let before: usize = self.chunks[..c].iter().map(|c| c.len()).sum();
        before
            + self.chunks.get(c).map_or(0, |ch| {
                ch.partition_point(|x| {
                    let (s, m) = x.get();
                    !at_or_after(s, m)
                })
            })
    }

    fn iter_from(&self, mut i: usize) -> impl Iterator<Item = (&[u8], f64)> + '_ {
        let mut c = 0;
        while c < self.chunks.len() && i >= self.chunks[c].len() {
            i -= self.chunks[c].len();
            c += 1;
        }
        self.chunks[c.min(self.chunks.len())..]
            .iter()
            .flatten()
            .skip(i)
            .map(|x| {
                let (s, m) = x.get();
                (m, s)
            })
    }
}

pub enum ZSet {
    Pack(Pack),
    Big(SegTable<Node>, Ranked),
}

impl Default for ZSet {
    fn default() -> Self {
        ZSet::Pack(Pack::new())
    }
}

impl Clone for ZSet {
    fn clone(&self) -> Self {
        match self {
            ZSet::Pack(p) => ZSet::Pack(p.clone()),
            ZSet::Big(_, r) => {
                // In order, so the copy's chunks are built without a search.
                let mut t = node_table();
                let chunks = r
                    .chunks
                    .iter()
                    .map(|c| {
                        c.iter()
                            .map(|p| {
                                let (s, m) = p.get();
                                let n = Node::new(m, s);
                                let p = Ptr(n.0.as_ref());
                                t.insert(n);
                                p
                            })
                            .collect()
                    })
                    .collect();
                ZSet::Big(t, Ranked { chunks })
            }
        }
    }
}

fn score_of(b: &[u8]) -> f64 {
    f64::from_le_bytes(b.try_into().expect("8-byte score"))
}

impl ZSet {
    /// An empty sorted set suited to `hint` elements of which the first is `first` (Valkey's
    /// zsetTypeCreate).
    pub fn for_first(first: &[u8], hint: usize, lim: &Limits) -> ZSet {
        if hint <= lim.zset_entries && first.len() <= lim.zset_value && lim.zset_entries > 0 {
            ZSet::Pack(Pack::new())
        } else {
            ZSet::Big(node_table(), Ranked::default())
        }
    }

    /// A sorted set of these (member, score) pairs, given in order (a byte form's), built in one pass;
    /// None if they are out of order or a member repeats.
    pub fn from_sorted(items: &[(&[u8], f64)], lim: &Limits) -> Option<ZSet> {
        if items
            .windows(2)
            .any(|w| cmp((w[0].1, w[0].0), (w[1].1, w[1].0)) != Ordering::Less)
            || !super::distinct(items.iter().map(|x| x.0))
        {
            return None;
        }
        let first = items.first()?.0;
        let mut z = ZSet::for_first(first, items.len(), lim);
        if items.iter().any(|x| x.0.len() > lim.zset_value) {
            z = ZSet::Big(node_table(), Ranked::default());
        }
        match &mut z {
            ZSet::Pack(p) => {
                for (m, s) in items {
                    p.push_back(m);
                    p.push_back(&s.to_le_bytes());
                }
            }
            ZSet::Big(t, r) => {
                r.chunks = items
                    .chunks(CHUNK)
                    .map(|c| {
                        c.iter()
                            .map(|(m, s)| {
                                let n = Node::new(m, *s);
                                let p = Ptr(n.0.as_ref());
                                t.insert(n);
                                p
                            })
                            .collect()
                    })
                    .collect();
            }
        }
        Some(z)
    }

    pub fn len(&self) -> usize {
        match self {
            ZSet::Pack(p) => p.len() / 2,
            ZSet::Big(t, _) => t.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn encoding(&self) -> &'static str {
        match self {
            ZSet::Pack(_) => "listpack",
            ZSet::Big(..) => "skiplist",
        }
    }

    fn pack_pairs(p: &Pack) -> impl Iterator<Item = (&[u8], f64)> + '_ {
        let mut it = p.iter();
        std::iter::from_fn(move || Some((it.next()?, score_of(it.next()?))))
    }

    pub fn score(&self, m: &[u8]) -> Option<f64> {
        match self {
            ZSet::Pack(p) => p.find(m, 2).map(|pos| score_of(p.get_at(p.next_pos(pos)))),
            ZSet::Big(t, _) => t.get(m).map(Node::score),
        }
    }

    /// Sets a member's score; returns whether the member is new.
    pub fn insert(&mut self, m: &[u8], s: f64, lim: &Limits) -> bool {
        let existed = self.remove(m);
        if let ZSet::Pack(p) = self {
            if p.len() / 2 >= lim.zset_entries || m.len() > lim.zset_value {
                self.convert();
            } else {
                let mut pos = 0;
                while pos < p.end() {
                    let mm = p.get_at(pos);
                    let sp = p.next_pos(pos);
                    if cmp((score_of(p.get_at(sp)), mm), (s, m)) == Ordering::Greater {
                        break;
                    }
                    pos = p.next_pos(sp);
                }
                p.insert_at(pos, &s.to_le_bytes());
                p.insert_at(pos, m);
                return !existed;
            }
        }
        let ZSet::Big(t, r) = self else {
            unreachable!("converted above")
        };
        let n = Node::new(m, s);
        r.insert(Ptr(n.0.as_ref()));
        t.insert(n);
        !existed
    }

    pub fn remove(&mut self, m: &[u8]) -> bool {
        match self {
            ZSet::Pack(p) => match p.find(m, 2) {
                Some(pos) => {
                    p.remove_at(pos, 2);
                    true
                }
                None => false,
            },
            ZSet::Big(t, r) => match t.remove(m) {
                // The node stays alive (in `n`) until its pointer has left the chunks.
                Some(n) => {
                    r.remove(n.score(), m);
                    true
                }
                None => false,
            },
        }
    }

    fn convert(&mut self) {
        if let ZSet::Pack(p) = self {
            // The pack is in order: chunks are cut from it directly.
            let mut t = node_table();
            let mut r = Ranked::default();
            for (m, s) in Self::pack_pairs(p) {
                let n = Node::new(m, s);
                match r.chunks.last_mut() {
                    Some(c) if c.len() < CHUNK => c.push(Ptr(n.0.as_ref())),
                    _ => r.chunks.push(vec![Ptr(n.0.as_ref())]),
                }
                t.insert(n);
            }
            *self = ZSet::Big(t, r);
        }
    }

    /// Elements before the first for which `at_or_after(score, member)` holds (monotone in the order).
    pub fn count_before(&self, at_or_after: impl Fn(f64, &[u8]) -> bool) -> usize {
        match self {
            ZSet::Pack(p) => Self::pack_pairs(p)
                .take_while(|(m, s)| !at_or_after(*s, m))
                .count(),
            ZSet::Big(_, r) => r.count_before(at_or_after),
        }
    }

    /// 0-based ascending rank of a member.
    pub fn rank(&self, m: &[u8]) -> Option<usize> {
        let s = self.score(m)?;
        Some(self.count_before(|xs, xm| cmp((xs, xm), (s, m)) != Ordering::Less))
    }

    /// Elements in ascending order from rank `start`.
    /// One ZSCAN step from `cursor` (SegTable::scan_step over the member table); a packed sorted set
    /// is one step.
    pub fn scan_step(&self, cursor: u64, mut f: impl FnMut(&[u8], f64)) -> u64 {
        match self {
            ZSet::Big(t, _) => t.scan_step(cursor, |n| f(n.member(), n.score())),
            _ => {
                self.iter_from(0).for_each(|(m, s)| f(m, s));
                0
            }
        }
    }

    pub fn iter_from(&self, start: usize) -> Box<dyn Iterator<Item = (&[u8], f64)> + '_> {
        match self {
            ZSet::Pack(p) => Box::new(Self::pack_pairs(p).skip(start)),
            ZSet::Big(_, r) => Box::new(r.iter_from(start)),
        }
    }

    /// Ranks `start..end`, ascending.
    pub fn range(&self, start: usize, end: usize) -> Vec<(&[u8], f64)> {
        self.iter_from(start)
            .take(end.saturating_sub(start))
            .collect()
    }

    /// A member chosen with `r` (ZRANDMEMBER).
    pub fn random(&self, r: u64) -> Option<(&[u8], f64)> {
        match self {
            ZSet::Pack(p) if !p.is_empty() => Self::pack_pairs(p).nth(r as usize % (p.len() / 2)),
            ZSet::Pack(_) => None,
            ZSet::Big(t, _) => t.random(r).map(|n| (n.member(), n.score())),
        }
    }

    pub fn allocated(&self) -> usize {
        match self {
            ZSet::Pack(p) => p.allocated(),
            ZSet::Big(t, r) => {
                t.table_bytes()
                    + t.iter().map(|n| n.0.allocated()).sum::<usize>()
                    + r.chunks
                        .iter()
                        .map(|c| c.capacity() * std::mem::size_of::<Ptr>())
                        .sum::<usize>()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    proptest! {
        /// Against a model (a map and a sorted Vec), through the conversion to the big encoding and across
        /// chunk splits.
        #[test]
        fn behaves_like_a_sorted_model(ops in prop::collection::vec((0u8..3, 0u16..3000, -50i32..50), 1..1500)) {
            let lim = Limits { zset_entries: 20, ..Limits::default() };
            let mut z = ZSet::default();
            let mut m: HashMap<Vec<u8>, f64> = HashMap::new();
            for (op, k, sc) in ops {
                let mem = format!("m{k}").into_bytes();
                let s = sc as f64 / 2.0;
                if op == 2 {
                    prop_assert_eq!(z.remove(&mem), m.remove(&mem).is_some());
                } else {
                    prop_assert_eq!(z.insert(&mem, s, &lim), m.insert(mem.clone(), s).is_none());
                }
                prop_assert_eq!(z.len(), m.len());
            }
            let mut want: Vec<(Vec<u8>, f64)> = m.iter().map(|(k, v)| (k.clone(), *v)).collect();
            want.sort_by(|a, b| cmp((a.1, &a.0), (b.1, &b.0)));
            let got: Vec<(Vec<u8>, f64)> = z.iter_from(0).map(|(k, v)| (k.to_vec(), v)).collect();
            prop_assert_eq!(&got, &want);
            for (i, (k, v)) in want.iter().enumerate().step_by(7) {
                prop_assert_eq!(z.rank(k), Some(i));
                prop_assert_eq!(z.score(k), Some(*v));
                prop_assert_eq!(z.range(i, i + 3), want[i..(i + 3).min(want.len())].iter().map(|(k, v)| (&k[..], *v)).collect::<Vec<_>>());
            }
            let below = want.iter().filter(|x| x.1 < 3.0).count();
            prop_assert_eq!(z.count_before(|s, _| s >= 3.0), below);
            // A clone owns its own nodes: it reads the same after the original is gone.
            let copy = z.clone();
            drop(z);
            let got: Vec<(Vec<u8>, f64)> = copy.iter_from(0).map(|(k, v)| (k.to_vec(), v)).collect();
            prop_assert_eq!(&got, &want);
            for (k, v) in want.iter().step_by(11) {
                prop_assert_eq!(copy.score(k), Some(*v));
            }
        }
    }
}
