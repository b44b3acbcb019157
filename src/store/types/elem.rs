//! An element of a big hash or set: field and value in one block behind a thin pointer (a `Blob` holding
//! `varint field_len | field | value`), held by a segmented table keyed by the field, so a big hash costs
//! one block and one 8-byte table slot per field, and grows one segment at a time (no whole-table rehash).

use super::blob::Blob;
use crate::store::segtable::{Keyed, SegTable};
use std::hash::BuildHasher;

pub struct Elem(Blob);

impl Elem {
    pub fn new(field: &[u8], value: &[u8]) -> Elem {
        let mut head = [0u8; 10];
        let mut n = 0;
        let mut v = field.len();
        while v >= 0x80 {
            head[n] = v as u8 | 0x80;
            v >>= 7;
            n += 1;
        }
        head[n] = v as u8;
        Elem(Blob::new(&[&head[..=n], field, value]))
    }

    #[inline]
    fn split(&self) -> (&[u8], usize, usize) {
        let b = self.0.bytes();
        let (mut len, mut shift, mut p) = (0usize, 0, 0);
        loop {
            let x = b[p];
            p += 1;
            len |= ((x & 0x7f) as usize) << shift;
            if x < 0x80 {
                return (b, p, len);
            }
            shift += 7;
        }
    }

    #[inline]
    pub fn field(&self) -> &[u8] {
        let (b, p, len) = self.split();
        &b[p..p + len]
    }

    pub fn value(&self) -> &[u8] {
        let (b, p, len) = self.split();
        &b[p + len..]
    }

    pub fn allocated(&self) -> usize {
        self.0.allocated()
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
