//! The list type: a deque of packs (Valkey's quicklist of listpacks). Its encoding follows Valkey's
//! conversions: `listpack` until an addition would not fit one node of list-max-listpack-size (or adds an
//! element past the plain-node threshold), then `quicklist` until a removal leaves one node at most half
//! full. Pushes and pops at either end touch one node of bounded size; an index walks node counts, then one
//! node.
//!
//! Invariants: `len` is the sum of the nodes' lengths; no node is empty; more than one node means
//! `quick`.

use super::limits::Limits;
use crate::store::pack::Pack;
use std::collections::VecDeque;

#[derive(Clone, Default)]
pub struct List {
    nodes: VecDeque<Pack>,
    len: usize,
    /// The quicklist encoding (see the module's text).
    quick: bool,
}

impl List {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn encoding(&self) -> &'static str {
        if self.quick {
            "quicklist"
        } else {
            "listpack"
        }
    }

    /// After an element of `len` bytes was added. (The plain-node threshold does not matter here: Valkey
    /// makes plain nodes only in a quicklist.)
    fn grew(&mut self, len: usize, lim: &Limits) {
        if !self.quick && (self.nodes.len() > 1 || !lim.list_node_fits(0, 0, len)) {
            self.quick = true;
        }
    }

    /// After removals (pops, LREM, LTRIM): a quicklist left with one node at most half full becomes a
    /// listpack again, unless that node holds an element past the plain-node threshold (Valkey keeps a
    /// quicklist whose one node is plain).
    pub fn shrunk(&mut self, lim: &Limits) {
        if self.quick && self.nodes.len() == 1 {
            let n = &self.nodes[0];
            if lim.list_node_half(n.len(), n.bytes())
                && n.iter().all(|v| v.len() < lim.list_packed_threshold)
            {
                self.quick = false;
            }
        }
    }

    pub fn push_back(&mut self, v: &[u8], lim: &Limits) {
        match self.nodes.back_mut() {
            Some(n) if lim.list_node_fits(n.len(), n.bytes(), v.len()) => n.push_back(v),
            _ => {
                let mut n = Pack::new();
                n.push_back(v);
                self.nodes.push_back(n);
            }
        }
        self.len += 1;
        self.grew(v.len(), lim);
    }

    pub fn push_front(&mut self, v: &[u8], lim: &Limits) {
        match self.nodes.front_mut() {
            Some(n) if lim.list_node_fits(n.len(), n.bytes(), v.len()) => n.push_front(v),
            _ => {
                let mut n = Pack::new();
                n.push_back(v);
                self.nodes.push_front(n);
            }
        }
        self.len += 1;
        self.grew(v.len(), lim);
    }

    pub fn pop_front(&mut self) -> Option<Vec<u8>> {
        let n = self.nodes.front_mut()?;
        let v = n.get_at(0).to_vec();
        n.remove_at(0, 1);
        if n.is_empty() {
            self.nodes.pop_front();
        }
        self.len -= 1;
        Some(v)
    }

    pub fn pop_back(&mut self) -> Option<Vec<u8>> {
        let n = self.nodes.back_mut()?;
        let pos = n.last_pos();
        let v = n.get_at(pos).to_vec();
        n.remove_at(pos, 1);
        if n.is_empty() {
            self.nodes.pop_back();
        }
        self.len -= 1;
        Some(v)
    }

    /// (node, position in it) of element `i` (< len).
    fn locate(&self, mut i: usize) -> (usize, usize) {
        for (k, n) in self.nodes.iter().enumerate() {
            if i < n.len() {
                let pos = n.positions().nth(i).map(|x| x.0).expect("i < node length");
                return (k, pos);
            }
            i -= n.len();
        }
        unreachable!("index past the list's length")
    }

    pub fn get(&self, i: usize) -> Option<&[u8]> {
        (i < self.len).then(|| {
            let (k, pos) = self.locate(i);
            self.nodes[k].get_at(pos)
        })
    }

    /// LSET. Valkey's conversions around a replacement: before it, a listpack that could not take `v`
    /// as one more element becomes a quicklist (its check for additions, applied to the replacement as
    /// is); after it, the shrinking rule (a small value in place of a big one).
    pub fn set(&mut self, i: usize, v: &[u8], lim: &Limits) -> bool {
        if i >= self.len {
            return false;
        }
        if !self.quick && !lim.list_node_fits(self.nodes[0].len(), self.nodes[0].bytes(), v.len()) {
            self.quick = true;
        }
        let (k, pos) = self.locate(i);
        self.nodes[k].replace_at(pos, v);
        self.grew(v.len(), lim);
        self.shrunk(lim);
        true
    }

    /// Inserts `v` so that it becomes element `i` (0..=len).
    pub fn insert(&mut self, i: usize, v: &[u8], lim: &Limits) {
        if i == 0 {
            return self.push_front(v, lim);
        }
        if i >= self.len {
            return self.push_back(v, lim);
        }
        let (k, pos) = self.locate(i);
        let n = &mut self.nodes[k];
        n.insert_at(pos, v);
        self.len += 1;
        if !lim.list_node_fits(n.len() - 1, n.bytes(), 0) && n.len() > 1 {
            // Split the grown node in two halves (bounded by the node size).
            let half = n.len() / 2;
            let at = n.positions().nth(half).map(|x| x.0).expect("half < len");
            let mut tail = Pack::new();
            let mut p = at;
            while p < n.end() {
                tail.push_back(n.get_at(p));
                p = n.next_pos(p);
            }
            n.remove_at(at, n.len() - half);
            self.nodes.insert(k + 1, tail);
        }
        self.grew(v.len(), lim);
    }

    /// Removes element `i`.
    pub fn remove(&mut self, i: usize) {
        let (k, pos) = self.locate(i);
        self.nodes[k].remove_at(pos, 1);
        if self.nodes[k].is_empty() {
            self.nodes.remove(k);
        }
        self.len -= 1;
    }

    /// Keeps elements `start..end` only (LTRIM), dropping whole nodes where it can.
    pub fn keep(&mut self, start: usize, end: usize) {
        let end = end.min(self.len);
        if start >= end {
            *self = List::default();
            return;
        }
        for _ in 0..(self.len - end) {
            self.pop_back();
        }
        let mut drop = start;
        while drop > 0 {
            let n = self.nodes.front_mut().expect("start < len");
            if n.len() <= drop {
                drop -= n.len();
                self.len -= n.len();
                self.nodes.pop_front();
            } else {
                n.remove_at(0, drop);
                self.len -= drop;
                drop = 0;
            }
        }
    }

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &[u8]> + '_ {
        self.nodes.iter().flat_map(|n| n.iter().collect::<Vec<_>>())
    }

    /// Elements `start..end` in order, walking to `start` by node counts.
    pub fn range(&self, start: usize, end: usize) -> Vec<&[u8]> {
        let end = end.min(self.len);
        let mut out = Vec::with_capacity(end.saturating_sub(start));
        let mut skip = start;
        for n in &self.nodes {
            if out.len() >= end.saturating_sub(start) {
                break;
            }
            if skip >= n.len() {
                skip -= n.len();
                continue;
            }
            for v in n.iter().skip(skip) {
                if out.len() >= end - start {
                    break;
                }
                out.push(v);
            }
            skip = 0;
        }
        out
    }

    pub fn allocated(&self) -> usize {
        self.nodes.iter().map(|n| n.allocated()).sum::<usize>()
            + self.nodes.capacity() * std::mem::size_of::<Pack>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Against a VecDeque model, with nodes small enough that every operation crosses nodes.
        #[test]
        fn behaves_like_a_deque(ops in prop::collection::vec((0u8..9, any::<u16>()), 1..500)) {
            let lim = Limits { list_size: 5, ..Limits::default() };
            let mut l = List::default();
            let mut m: VecDeque<Vec<u8>> = VecDeque::new();
            for (op, x) in ops {
                let v = x.to_string().into_bytes();
                let i = if m.is_empty() { 0 } else { x as usize % m.len() };
                match op {
                    0 => { l.push_back(&v, &lim); m.push_back(v); }
                    1 => { l.push_front(&v, &lim); m.push_front(v); }
                    2 => { prop_assert_eq!(l.pop_front(), m.pop_front()); l.shrunk(&lim); }
                    3 => { prop_assert_eq!(l.pop_back(), m.pop_back()); l.shrunk(&lim); }
                    4 => { l.insert(i, &v, &lim); m.insert(i, v); }
                    5 if !m.is_empty() => { l.remove(i); m.remove(i); l.shrunk(&lim); }
                    6 if !m.is_empty() => { prop_assert!(l.set(i, &v, &lim)); m[i] = v; }
                    7 if m.len() > 2 => { l.keep(1, m.len() - 1); m.pop_front(); m.pop_back(); l.shrunk(&lim); }
                    _ => { prop_assert_eq!(l.get(i).map(|x| x.to_vec()), m.get(i).cloned()); }
                }
                prop_assert_eq!(l.len(), m.len());
                // More than one node is always a quicklist; one node at most half full after a removal
                // never is.
                prop_assert!(l.nodes.len() <= 1 || l.encoding() == "quicklist");
                if op != 0 && op != 1 && op != 4 && op != 6 && l.nodes.len() == 1 && l.len() <= 2 {
                    prop_assert_eq!(l.encoding(), "listpack");
                }
            }
            prop_assert_eq!(l.iter().map(|x| x.to_vec()).collect::<Vec<_>>(), m.iter().cloned().collect::<Vec<_>>());
            let (a, b) = (m.len() / 3, m.len() / 2 + 1);
            prop_assert_eq!(l.range(a, b).into_iter().map(|x| x.to_vec()).collect::<Vec<_>>(), m.iter().skip(a).take(b.saturating_sub(a)).cloned().collect::<Vec<_>>());
        }
    }

    #[test]
    fn converts_as_valkey_does() {
        let lim = Limits {
            list_size: 4,
            ..Limits::default()
        };
        let mut l = List::default();
        for i in 0..4 {
            l.push_back(format!("{i}").as_bytes(), &lim);
        }
        assert_eq!(l.encoding(), "listpack");
        l.push_back(b"4", &lim);
        assert_eq!(l.encoding(), "quicklist");
        // Back to one node of 3 (more than half of 4): still a quicklist; at 2, a listpack again.
        l.pop_back();
        l.pop_back();
        l.shrunk(&lim);
        assert_eq!(l.encoding(), "quicklist");
        l.pop_back();
        l.shrunk(&lim);
        assert_eq!(l.encoding(), "listpack");
        // LSET: a full listpack becomes a quicklist (Valkey checks it as an addition); a small value in
        // place of a big one in a quicklist's only node makes it a listpack again.
        let lim3 = Limits {
            list_size: 3,
            ..Limits::default()
        };
        let mut s = List::default();
        for v in [b"a", b"b", b"c"] {
            s.push_back(v, &lim3);
        }
        assert_eq!(s.encoding(), "listpack");
        s.set(0, b"hello", &lim3);
        assert_eq!(s.encoding(), "quicklist");
        let lim1 = Limits {
            list_size: -1,
            ..Limits::default()
        };
        let mut s = List::default();
        s.push_back(&[b'x'; 5000], &lim1);
        assert_eq!(s.encoding(), "quicklist");
        s.set(0, b"c", &lim1);
        assert_eq!(s.encoding(), "listpack");
        // An element that fills a node by itself is a quicklist from the start.
        let mut big = List::default();
        big.push_back(&[b'x'; 8192], &Limits::default());
        assert_eq!(big.encoding(), "quicklist");
        // Left with one node holding an element past the plain-node threshold: still a quicklist.
        for (threshold, after) in [(100, "quicklist"), (1 << 30, "listpack")] {
            let lim = Limits {
                list_size: 2,
                list_packed_threshold: threshold,
                ..Limits::default()
            };
            let mut p = List::default();
            for v in [&[b'x'; 100][..], b"a", b"b"] {
                p.push_back(v, &lim);
            }
            assert_eq!(p.encoding(), "quicklist");
            p.pop_back();
            p.pop_back();
            p.shrunk(&lim);
            assert_eq!(p.encoding(), after);
        }
    }
}
