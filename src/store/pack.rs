//! A pack: small collections in one allocation, as Valkey's listpack. Elements are byte strings laid out
//! back to back, each as `varint len | bytes | backlen` (backlen: the same varint's bytes in reverse
//! order, so the last element is found from the end, as listpack's), so a hash of a few fields costs one
//! block plus two or three bytes per element instead of an allocation per element.
//!
//! Positions are byte offsets of an element's length prefix; they stay valid until the next change.
//! Invariant: `buf` is exactly `n` well-formed elements (every constructor and change keeps it so).

#[derive(Clone, Default, Debug, PartialEq, Eq)]
pub struct Pack {
    buf: Vec<u8>,
    n: u32,
}

#[inline]
fn varint_len(mut v: usize) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

#[inline]
fn put_varint(out: &mut Vec<u8>, mut v: usize) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// An element's whole encoding: length, bytes, and the length again backwards.
#[inline]
fn encode(out: &mut Vec<u8>, e: &[u8]) {
    let start = out.len();
    put_varint(out, e.len());
    let n = out.len() - start;
    out.extend_from_slice(e);
    for i in (0..n).rev() {
        out.push(out[start + i]);
    }
}

/// The start of the element that ends at `end` (reading its backlen).
#[inline]
fn start_before(buf: &[u8], end: usize) -> usize {
    let (mut len, mut shift, mut p) = (0usize, 0, end);
    loop {
        p -= 1;
        let b = buf[p];
        len |= ((b & 0x7f) as usize) << shift;
        if b < 0x80 {
            break;
        }
        shift += 7;
    }
    let n = end - p;
    p - len - n
}

/// Reads the element at `pos`: (its bytes, the position after it).
#[inline]
fn read_at(buf: &[u8], pos: usize) -> (&[u8], usize) {
    let (mut len, mut shift, mut p) = (0usize, 0, pos);
    loop {
        let b = buf[p];
        p += 1;
        len |= ((b & 0x7f) as usize) << shift;
        if b < 0x80 {
            break;
        }
        shift += 7;
    }
    let n = p - pos;
    (&buf[p..p + len], p + len + n)
}

impl Pack {
    pub fn new() -> Pack {
        Pack::default()
    }

    pub fn len(&self) -> usize {
        self.n as usize
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Bytes of the pack's payload (what a `*-max-listpack-size` limit in bytes compares against).
    pub fn bytes(&self) -> usize {
        self.buf.len()
    }

    /// Memory held (the allocation).
    pub fn allocated(&self) -> usize {
        self.buf.capacity()
    }

    pub fn iter(&self) -> PackIter<'_> {
        PackIter {
            buf: &self.buf,
            pos: 0,
        }
    }

    /// Elements with their positions.
    pub fn positions(&self) -> impl Iterator<Item = (usize, &[u8])> + '_ {
        let mut pos = 0;
        std::iter::from_fn(move || {
            (pos < self.buf.len()).then(|| {
                let at = pos;
                let (e, next) = read_at(&self.buf, pos);
                pos = next;
                (at, e)
            })
        })
    }

    pub fn get_at(&self, pos: usize) -> &[u8] {
        read_at(&self.buf, pos).0
    }

    /// The position after the element at `pos`.
    pub fn next_pos(&self, pos: usize) -> usize {
        read_at(&self.buf, pos).1
    }

    pub fn end(&self) -> usize {
        self.buf.len()
    }

    /// The position of the last element (the pack must not be empty).
    pub fn last_pos(&self) -> usize {
        start_before(&self.buf, self.buf.len())
    }

    pub fn push_back(&mut self, e: &[u8]) {
        encode(&mut self.buf, e);
        self.n += 1;
    }

    pub fn insert_at(&mut self, pos: usize, e: &[u8]) {
        let mut enc = Vec::with_capacity(2 * varint_len(e.len()) + e.len());
        encode(&mut enc, e);
        self.buf.splice(pos..pos, enc);
        self.n += 1;
    }

    pub fn push_front(&mut self, e: &[u8]) {
        self.insert_at(0, e);
    }

    /// Removes `count` elements starting at `pos`.
    pub fn remove_at(&mut self, pos: usize, count: usize) {
        let mut end = pos;
        for _ in 0..count {
            end = read_at(&self.buf, end).1;
        }
        self.buf.drain(pos..end);
        self.n -= count as u32;
    }

    /// Replaces the element at `pos`.
    pub fn replace_at(&mut self, pos: usize, e: &[u8]) {
        let end = read_at(&self.buf, pos).1;
        let mut enc = Vec::with_capacity(2 * varint_len(e.len()) + e.len());
        encode(&mut enc, e);
        self.buf.splice(pos..end, enc);
    }

    /// Position of the first element equal to `e` among every `stride`-th (fields of a hash: stride 2).
    pub fn find(&self, e: &[u8], stride: usize) -> Option<usize> {
        let mut pos = 0;
        let mut i = 0usize;
        while pos < self.buf.len() {
            let (x, next) = read_at(&self.buf, pos);
            if i.is_multiple_of(stride) && x == e {
                return Some(pos);
            }
            pos = next;
            i += 1;
        }
        None
    }

    pub fn shrink(&mut self) {
        if self.buf.capacity() > self.buf.len() * 2 + 64 {
            self.buf.shrink_to_fit();
        }
    }
}

pub struct PackIter<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for PackIter<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        if self.pos >= self.buf.len() {
            return None;
        }
        let (e, next) = read_at(self.buf, self.pos);
        self.pos = next;
        Some(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Every change keeps the pack equal to a Vec model.
        #[test]
        fn behaves_like_a_vec(ops in prop::collection::vec((0u8..5, any::<u16>(), prop::collection::vec(any::<u8>(), 0..300)), 1..200)) {
            let mut p = Pack::new();
            let mut m: Vec<Vec<u8>> = Vec::new();
            for (op, i, v) in ops {
                let pos_of = |p: &Pack, k: usize| p.positions().nth(k).map(|x| x.0).unwrap_or(p.end());
                match op {
                    0 => { p.push_back(&v); m.push(v); }
                    1 => { p.push_front(&v); m.insert(0, v); }
                    2 if !m.is_empty() => { let k = i as usize % m.len(); let at = pos_of(&p, k); p.remove_at(at, 1); m.remove(k); }
                    3 if !m.is_empty() => { let k = i as usize % m.len(); let at = pos_of(&p, k); p.replace_at(at, &v); m[k] = v; }
                    _ => { let k = i as usize % (m.len() + 1); let at = pos_of(&p, k); p.insert_at(at, &v); m.insert(k, v); }
                }
                prop_assert_eq!(p.len(), m.len());
            }
            prop_assert_eq!(p.iter().map(|e| e.to_vec()).collect::<Vec<_>>(), m.clone());
            if let Some(x) = m.first() {
                prop_assert_eq!(p.find(x, 1), Some(0));
                let last = p.last_pos();
                prop_assert_eq!(p.get_at(last), &m[m.len() - 1][..]);
                prop_assert_eq!(p.next_pos(last), p.end());
            }
        }
    }
}
