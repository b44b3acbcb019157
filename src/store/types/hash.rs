//! The hash type: a pack of alternating fields and values while small (`listpack`), a segmented table of
//! elements once it passes hash-max-listpack-entries or a field or value passes hash-max-listpack-value
//! (`hashtable`). A hash never converts back, as in Valkey.

use super::elem::{table, Elem};
use super::limits::Limits;
use crate::store::pack::Pack;
use crate::store::segtable::SegTable;

pub enum Hash {
    Pack(Pack),
    Table(SegTable<Elem>),
}

impl Default for Hash {
    fn default() -> Self {
        Hash::Pack(Pack::new())
    }
}

impl Clone for Hash {
    fn clone(&self) -> Self {
        match self {
            Hash::Pack(p) => Hash::Pack(p.clone()),
            Hash::Table(_) => {
                let mut t = table();
                for (f, v) in self.iter() {
                    t.insert(Elem::new(f, v));
                }
                Hash::Table(t)
            }
        }
    }
}

impl Hash {
    /// A hash of these pairs, built in one pass in the encoding their count and sizes ask for (loading a
    /// snapshot); None if a field repeats.
    pub fn from_pairs(items: &[(&[u8], &[u8])], lim: &Limits) -> Option<Hash> {
        let small = items.len() <= lim.hash_entries
            && items
                .iter()
                .all(|(f, v)| f.len() <= lim.hash_value && v.len() <= lim.hash_value);
        if small {
            if !super::distinct(items.iter().map(|x| x.0)) {
                return None;
            }
            let mut p = Pack::new();
            for (f, v) in items {
                p.push_back(f);
                p.push_back(v);
            }
            return Some(Hash::Pack(p));
        }
        let mut t = table();
        for (f, v) in items {
            if t.insert(Elem::new(f, v)).is_some() {
                return None;
            }
        }
        Some(Hash::Table(t))
    }

    pub fn len(&self) -> usize {
        match self {
            Hash::Pack(p) => p.len() / 2,
            Hash::Table(t) => t.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn encoding(&self) -> &'static str {
        match self {
            Hash::Pack(_) => "listpack",
            Hash::Table(_) => "hashtable",
        }
    }

    pub fn get(&self, field: &[u8]) -> Option<&[u8]> {
        match self {
            Hash::Pack(p) => p.find(field, 2).map(|pos| p.get_at(p.next_pos(pos))),
            Hash::Table(t) => t.get(field).map(|e| e.value()),
        }
    }

    /// Sets a field; returns whether it is new.
    pub fn set(&mut self, field: &[u8], value: &[u8], lim: &Limits) -> bool {
        if let Hash::Pack(p) = self {
            if field.len() > lim.hash_value || value.len() > lim.hash_value {
                self.convert();
            } else if let Some(pos) = p.find(field, 2) {
                let vpos = p.next_pos(pos);
                p.replace_at(vpos, value);
                return false;
            } else if p.len() / 2 < lim.hash_entries {
                p.push_back(field);
                p.push_back(value);
                return true;
            } else {
                self.convert();
            }
        }
        let Hash::Table(t) = self else {
            unreachable!("converted above")
        };
        t.insert(Elem::new(field, value)).is_none()
    }

    pub fn del(&mut self, field: &[u8]) -> bool {
        match self {
            Hash::Pack(p) => match p.find(field, 2) {
                Some(pos) => {
                    p.remove_at(pos, 2);
                    true
                }
                None => false,
            },
            Hash::Table(t) => t.remove(field).is_some(),
        }
    }

    fn convert(&mut self) {
        if let Hash::Pack(p) = self {
            let mut t = table();
            let mut it = p.iter();
            while let (Some(f), Some(v)) = (it.next(), it.next()) {
                t.insert(Elem::new(f, v));
            }
            *self = Hash::Table(t);
        }
    }

    pub fn iter(&self) -> Box<dyn Iterator<Item = (&[u8], &[u8])> + '_> {
        match self {
            Hash::Pack(p) => {
                let mut it = p.iter();
                Box::new(std::iter::from_fn(move || Some((it.next()?, it.next()?))))
            }
            Hash::Table(t) => Box::new(t.iter().map(|e| (e.field(), e.value()))),
        }
    }

    /// One HSCAN step from `cursor` (SegTable::scan_step); a packed hash is one step.
    pub fn scan_step(&self, cursor: u64, mut f: impl FnMut(&[u8], &[u8])) -> u64 {
        match self {
            Hash::Table(t) => t.scan_step(cursor, |e| f(e.field(), e.value())),
            Hash::Pack(_) => {
                self.iter().for_each(|(k, v)| f(k, v));
                0
            }
        }
    }

    /// A field chosen with `r` (HRANDFIELD).
    pub fn random(&self, r: u64) -> Option<(&[u8], &[u8])> {
        match self {
            Hash::Pack(p) if !p.is_empty() => self.iter().nth(r as usize % (p.len() / 2)),
            Hash::Pack(_) => None,
            Hash::Table(t) => t.random(r).map(|e| (e.field(), e.value())),
        }
    }

    pub fn allocated(&self) -> usize {
        match self {
            Hash::Pack(p) => p.allocated(),
            Hash::Table(t) => t.table_bytes() + t.iter().map(|e| e.allocated()).sum::<usize>(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    proptest! {
        /// Against a HashMap model, through the conversion from pack to table.
        #[test]
        fn behaves_like_a_hashmap(ops in prop::collection::vec((0u8..3, 0u16..300, 0usize..80), 1..600)) {
            let lim = Limits { hash_entries: 40, hash_value: 60, ..Limits::default() };
            let mut h = Hash::default();
            let mut m: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
            for (op, k, vlen) in ops {
                let f = format!("f{k}").into_bytes();
                match op {
                    0 | 1 => {
                        let v = vec![b'v'; vlen];
                        prop_assert_eq!(h.set(&f, &v, &lim), m.insert(f, v).is_none());
                    }
                    _ => { prop_assert_eq!(h.del(&f), m.remove(&f).is_some()); }
                }
                prop_assert_eq!(h.len(), m.len());
            }
            for (f, v) in &m {
                prop_assert_eq!(h.get(f), Some(&v[..]));
            }
            let mut got: Vec<_> = h.iter().map(|(f, v)| (f.to_vec(), v.to_vec())).collect();
            got.sort();
            let mut want: Vec<_> = m.into_iter().collect();
            want.sort();
            prop_assert_eq!(got, want);
            let c = h.clone();
            prop_assert_eq!(c.len(), h.len());
        }
    }

    #[test]
    fn converts_past_the_limits() {
        let lim = Limits::default();
        let mut h = Hash::default();
        for i in 0..128 {
            h.set(format!("f{i}").as_bytes(), b"v", &lim);
        }
        assert_eq!(h.encoding(), "listpack");
        h.set(b"one-more", b"v", &lim);
        assert_eq!(h.encoding(), "hashtable");
        let mut h = Hash::default();
        h.set(b"f", &[b'x'; 65], &lim);
        assert_eq!(
            (h.encoding(), h.get(b"f").map(|v| v.len())),
            ("hashtable", Some(65))
        );
    }
}
