//! An element of a big hash or set: field and value in one allocation (`varint field_len | field | value`),
//! held by a segmented table keyed by the field, so a big hash costs one block and one table slot per
//! field, and grows one segment at a time (no whole-table rehash).

use crate::store::segtable::{Keyed, SegTable};
use std::hash::BuildHasher;

pub struct Elem(Box<[u8]>);

impl Elem {
    pub fn new(field: &[u8], value: &[u8]) -> Elem {
        let mut b = Vec::with_capacity(field.len() + value.len() + 3);
        let mut v = field.len();
        while v >= 0x80 {
            b.push(v as u8 | 0x80);
            v >>= 7;
        }
        b.push(v as u8);
        b.extend_from_slice(field);
        b.extend_from_slice(value);
        Elem(b.into_boxed_slice())
    }

    #[inline]
    fn split(&self) -> (usize, usize) {
        let (mut len, mut shift, mut p) = (0usize, 0, 0);
        loop {
            let b = self.0[p];
            p += 1;
            len |= ((b & 0x7f) as usize) << shift;
            if b < 0x80 {
                return (p, len);
            }
            shift += 7;
        }
    }

    pub fn field(&self) -> &[u8] {
        let (p, len) = self.split();
        &self.0[p..p + len]
    }

    pub fn value(&self) -> &[u8] {
        let (p, len) = self.split();
        &self.0[p + len..]
    }

    pub fn allocated(&self) -> usize {
        self.0.len()
    }
}

impl Keyed for Elem {
    #[inline]
    fn key(&self) -> &[u8] {
        self.field()
    }
}

/// A new table for elements, with a per-table random hash seed (no two tables share an order an attacker
/// could learn), and segments of at most 896 elements (a hashbrown table of 1024 buckets): SPOP, HRANDFIELD
/// and SRANDMEMBER pick a random segment and walk at most that one.
pub fn table() -> SegTable<Elem> {
    SegTable::with_segment_max(
        std::collections::hash_map::RandomState::new().hash_one(0u8),
        896,
    )
}
