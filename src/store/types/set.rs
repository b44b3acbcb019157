//! The set type: a sorted array of integers while every member is one (`intset`, up to
//! set-max-intset-entries), a pack while small (`listpack`), a segmented table of elements beyond
//! (`hashtable`). Conversions follow Valkey's: never back to a smaller encoding.

use super::elem::{table, Elem};
use super::limits::Limits;
use crate::store::pack::Pack;
use crate::store::segtable::SegTable;

pub enum Set {
    Ints(Vec<i64>),
    Pack(Pack),
    Table(SegTable<Elem>),
}

/// Valkey's string2ll: a canonical decimal that fits an i64 (no sign '+', no leading zeros, no spaces).
pub fn canonical_int(b: &[u8]) -> Option<i64> {
    if b.is_empty() || b.len() > 20 {
        return None;
    }
    let s = std::str::from_utf8(b).ok()?;
    let v: i64 = s.parse().ok()?;
    let mut buf = itoa::Buffer::new();
    (buf.format(v).as_bytes() == b).then_some(v)
}

impl Clone for Set {
    fn clone(&self) -> Self {
        match self {
            Set::Ints(v) => Set::Ints(v.clone()),
            Set::Pack(p) => Set::Pack(p.clone()),
            Set::Table(t) => {
                let mut n = table();
                for e in t.iter() {
                    n.insert(Elem::new(e.field(), b""));
                }
                Set::Table(n)
            }
        }
    }
}

impl Set {
    /// An empty set for a first member `first` when `hint` members are about to be added (Valkey's
    /// setTypeCreate).
    pub fn for_first(first: &[u8], hint: usize, lim: &Limits) -> Set {
        if canonical_int(first).is_some() && hint <= lim.set_intset_entries {
            Set::Ints(Vec::new())
        } else if hint <= lim.set_entries && first.len() <= lim.set_value {
            Set::Pack(Pack::new())
        } else {
            Set::Table(table())
        }
    }

    /// A set of these members, built in one pass in the encoding Valkey would give it (loading a
    /// snapshot); None if a member repeats.
    pub fn from_members(items: &[&[u8]], lim: &Limits) -> Option<Set> {
        if items.len() <= lim.set_intset_entries {
            let ints: Option<Vec<i64>> = items.iter().map(|m| canonical_int(m)).collect();
            if let Some(mut v) = ints {
                v.sort_unstable();
                if v.windows(2).any(|w| w[0] == w[1]) {
                    return None;
                }
                return Some(Set::Ints(v));
            }
        }
        if items.len() <= lim.set_entries && items.iter().all(|m| m.len() <= lim.set_value) {
            if !super::distinct(items.iter().copied()) {
                return None;
            }
            let mut p = Pack::new();
            items.iter().for_each(|m| p.push_back(m));
            return Some(Set::Pack(p));
        }
        let mut t = table();
        for m in items {
            if t.insert(Elem::new(m, b"")).is_some() {
                return None;
            }
        }
        Some(Set::Table(t))
    }

    pub fn len(&self) -> usize {
        match self {
            Set::Ints(v) => v.len(),
            Set::Pack(p) => p.len(),
            Set::Table(t) => t.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn encoding(&self) -> &'static str {
        match self {
            Set::Ints(_) => "intset",
            Set::Pack(_) => "listpack",
            Set::Table(_) => "hashtable",
        }
    }

    pub fn contains(&self, m: &[u8]) -> bool {
        match self {
            Set::Ints(v) => canonical_int(m).is_some_and(|i| v.binary_search(&i).is_ok()),
            Set::Pack(p) => p.find(m, 1).is_some(),
            Set::Table(t) => t.get(m).is_some(),
        }
    }

    /// Adds a member; returns whether it is new.
    pub fn add(&mut self, m: &[u8], lim: &Limits) -> bool {
        match self {
            Set::Ints(v) => {
                if let Some(i) = canonical_int(m) {
                    match v.binary_search(&i) {
                        Ok(_) => return false,
                        Err(at) => v.insert(at, i),
                    }
                    if v.len() > lim.set_intset_entries {
                        self.convert(false);
                    }
                    return true;
                }
                let fits = v.len() < lim.set_entries && m.len() <= lim.set_value;
                self.convert(fits);
            }
            Set::Pack(p) => {
                if p.find(m, 1).is_some() {
                    return false;
                }
                if p.len() < lim.set_entries && m.len() <= lim.set_value {
                    p.push_back(m);
                    return true;
                }
                self.convert(false);
            }
            Set::Table(_) => {}
        }
        match self {
            Set::Pack(p) => {
                if p.find(m, 1).is_some() {
                    return false;
                }
                p.push_back(m);
                true
            }
            Set::Table(t) => t.insert(Elem::new(m, b"")).is_none(),
            Set::Ints(_) => unreachable!("converted above"),
        }
    }

    pub fn remove(&mut self, m: &[u8]) -> bool {
        match self {
            Set::Ints(v) => match canonical_int(m).map(|i| v.binary_search(&i)) {
                Some(Ok(at)) => {
                    v.remove(at);
                    true
                }
                _ => false,
            },
            Set::Pack(p) => match p.find(m, 1) {
                Some(pos) => {
                    p.remove_at(pos, 1);
                    true
                }
                None => false,
            },
            Set::Table(t) => t.remove(m).is_some(),
        }
    }

    /// To a pack (`to_pack`) or a table.
    fn convert(&mut self, to_pack: bool) {
        let members = self.members();
        if to_pack {
            let mut p = Pack::new();
            for m in &members {
                p.push_back(m);
            }
            *self = Set::Pack(p);
        } else {
            let mut t = table();
            for m in &members {
                t.insert(Elem::new(m, b""));
            }
            *self = Set::Table(t);
        }
    }

    /// Calls `f` with every member (integers of an intset formatted on the way).
    /// One SSCAN step from `cursor` (SegTable::scan_step); a compact set is one step.
    pub fn scan_step(&self, cursor: u64, mut f: impl FnMut(&[u8])) -> u64 {
        match self {
            Set::Table(t) => t.scan_step(cursor, |e| f(e.field())),
            _ => {
                self.each(f);
                0
            }
        }
    }

    pub fn each(&self, mut f: impl FnMut(&[u8])) {
        match self {
            Set::Ints(v) => {
                let mut b = itoa::Buffer::new();
                for i in v {
                    f(b.format(*i).as_bytes());
                }
            }
            Set::Pack(p) => p.iter().for_each(f),
            Set::Table(t) => t.iter().for_each(|e| f(e.field())),
        }
    }

    pub fn members(&self) -> Vec<Vec<u8>> {
        let mut out = Vec::with_capacity(self.len());
        self.each(|m| out.push(m.to_vec()));
        out
    }

    /// A member chosen with `r` (SPOP, SRANDMEMBER).
    pub fn random(&self, r: u64) -> Option<Vec<u8>> {
        if self.is_empty() {
            return None;
        }
        match self {
            Set::Ints(v) => Some(v[r as usize % v.len()].to_string().into_bytes()),
            Set::Pack(p) => p.iter().nth(r as usize % p.len()).map(|m| m.to_vec()),
            Set::Table(t) => t.random(r).map(|e| e.field().to_vec()),
        }
    }

    pub fn allocated(&self) -> usize {
        match self {
            Set::Ints(v) => v.capacity() * 8,
            Set::Pack(p) => p.allocated(),
            Set::Table(t) => t.table_bytes() + t.iter().map(|e| e.allocated()).sum::<usize>(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    proptest! {
        /// Against a BTreeSet model, through intset, pack and table.
        #[test]
        fn behaves_like_a_set(ops in prop::collection::vec((0u8..4, 0u16..400), 1..800)) {
            let lim = Limits { set_intset_entries: 50, set_entries: 30, ..Limits::default() };
            let mut s: Option<Set> = None;
            let mut m: BTreeSet<Vec<u8>> = BTreeSet::new();
            for (op, k) in ops {
                let v = if op == 3 { format!("m{k}") } else { k.to_string() }.into_bytes();
                let set = s.get_or_insert_with(|| Set::for_first(&v, 1, &lim));
                if op == 2 {
                    prop_assert_eq!(set.remove(&v), m.remove(&v));
                } else {
                    prop_assert_eq!(set.add(&v, &lim), m.insert(v.clone()));
                }
                prop_assert_eq!(set.len(), m.len());
                prop_assert!(set.contains(&v) == m.contains(&v));
            }
            let set = s.unwrap();
            let got: BTreeSet<Vec<u8>> = set.members().into_iter().collect();
            prop_assert_eq!(got, m);
        }
    }

    #[test]
    fn encodings_follow_valkeys_thresholds() {
        let lim = Limits::default();
        let mut s = Set::for_first(b"1", 1, &lim);
        for i in 0..512 {
            s.add(i.to_string().as_bytes(), &lim);
        }
        assert_eq!(s.encoding(), "intset");
        s.add(b"512", &lim);
        assert_eq!(s.encoding(), "hashtable");
        let mut s = Set::for_first(b"1", 1, &lim);
        s.add(b"1", &lim);
        s.add(b"a", &lim);
        assert_eq!(s.encoding(), "listpack");
        assert!(s.contains(b"1") && s.contains(b"a") && !s.contains(b"01"));
        assert_eq!(canonical_int(b"-12"), Some(-12));
        assert_eq!(canonical_int(b"012"), None);
        assert_eq!(canonical_int(b"+1"), None);
    }
}
