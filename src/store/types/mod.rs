//! Collection values (Valkey's types besides strings), each with a compact encoding while small and one
//! that grows without stop-the-world work when big, and the byte form every one of them takes in
//! snapshots, DUMP payloads and copy-before-write states (docs/replication-format.md, "Collections").
//!
//! - `pack`-based small encodings live in `crate::store::pack`; `blob` is a byte string behind a thin
//!   pointer; `elem` is a big hash's or set's element;
//! - `hash`, `list`, `set`, `zset`: the types; `limits`: their conversion thresholds;
//! - this file: `Coll`, the byte form (`encode`/`decode`), digests and sizes.

pub mod blob;
pub mod elem;
pub mod hash;
pub mod limits;
pub mod list;
pub mod set;
pub mod zset;

pub use hash::Hash;
pub use limits::Limits;
pub use list::List;
pub use set::Set;
pub use zset::ZSet;

/// Type codes, as in RDB's type order; 0 is a string (not a `Coll`).
pub const STRING: u8 = 0;
pub const LIST: u8 = 1;
pub const SET: u8 = 2;
pub const ZSET: u8 = 3;
pub const HASH: u8 = 4;

#[derive(Clone)]
pub enum Coll {
    List(List),
    Set(Set),
    ZSet(ZSet),
    Hash(Hash),
}

/// TYPE's answer for a type code.
pub fn type_name(kind: u8) -> &'static str {
    match kind {
        LIST => "list",
        SET => "set",
        ZSET => "zset",
        HASH => "hash",
        _ => "string",
    }
}

/// Whether `items` has no two equal keys (sorting references: n log n, no hashing).
fn distinct<'a>(keys: impl Iterator<Item = &'a [u8]>) -> bool {
    let mut v: Vec<&[u8]> = keys.collect();
    v.sort_unstable();
    v.windows(2).all(|w| w[0] != w[1])
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Option<u64> {
        let (mut v, mut shift) = (0u64, 0);
        loop {
            let (&b, rest) = self.0.split_first()?;
            self.0 = rest;
            if shift > 63 {
                return None;
            }
            v |= ((b & 0x7f) as u64) << shift;
            if b < 0x80 {
                return Some(v);
            }
            shift += 7;
        }
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.varint()? as usize;
        if n > self.0.len() {
            return None;
        }
        let (b, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(b)
    }

    fn score(&mut self) -> Option<f64> {
        if self.0.len() < 8 {
            return None;
        }
        let (b, rest) = self.0.split_at(8);
        self.0 = rest;
        let s = f64::from_le_bytes(b.try_into().ok()?);
        (!s.is_nan()).then_some(s)
    }
}

impl Coll {
    pub fn kind(&self) -> u8 {
        match self {
            Coll::List(_) => LIST,
            Coll::Set(_) => SET,
            Coll::ZSet(_) => ZSET,
            Coll::Hash(_) => HASH,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Coll::List(l) => l.len(),
            Coll::Set(s) => s.len(),
            Coll::ZSet(z) => z.len(),
            Coll::Hash(h) => h.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn encoding(&self) -> &'static str {
        match self {
            Coll::List(l) => l.encoding(),
            Coll::Set(s) => s.encoding(),
            Coll::ZSet(z) => z.encoding(),
            Coll::Hash(h) => h.encoding(),
        }
    }

    /// Heap bytes held besides the entry's own block (MEMORY USAGE).
    pub fn allocated(&self) -> usize {
        std::mem::size_of::<Coll>()
            + match self {
                Coll::List(l) => l.allocated(),
                Coll::Set(s) => s.allocated(),
                Coll::ZSet(z) => z.allocated(),
                Coll::Hash(h) => h.allocated(),
            }
    }

    /// The byte form: `varint count`, then per element `varint len | bytes` (a hash: field then value; a
    /// sorted set: member then an 8-byte little-endian f64 score, in score order; a list in order).
    pub fn encode(&self, out: &mut Vec<u8>) {
        put_varint(out, self.len() as u64);
        match self {
            Coll::List(l) => l.iter().for_each(|v| put_bytes(out, v)),
            Coll::Set(s) => s.each(|m| put_bytes(out, m)),
            Coll::ZSet(z) => z.iter_from(0).for_each(|(m, s)| {
                put_bytes(out, m);
                out.extend_from_slice(&s.to_le_bytes());
            }),
            Coll::Hash(h) => h.iter().for_each(|(f, v)| {
                put_bytes(out, f);
                put_bytes(out, v);
            }),
        }
    }

    /// Rebuilds a value of type `kind` from its byte form, in the encoding `lim` gives its size. None if the
    /// bytes are not exactly one well-formed value (or it is empty: no key holds an empty collection).
    pub fn decode(kind: u8, b: &[u8], lim: &Limits) -> Option<Coll> {
        let mut r = Reader(b);
        let n = r.varint()? as usize;
        if n == 0 || n > b.len() {
            return None;
        }
        let c = match kind {
            LIST => {
                let mut l = List::default();
                for _ in 0..n {
                    l.push_back(r.bytes()?, lim);
                }
                Coll::List(l)
            }
            SET => {
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(r.bytes()?);
                }
                Coll::Set(Set::from_members(&items, lim)?)
            }
            ZSET => {
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    let m = r.bytes()?;
                    items.push((m, r.score()?));
                }
                Coll::ZSet(ZSet::from_sorted(&items, lim)?)
            }
            HASH => {
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push((r.bytes()?, r.bytes()?));
                }
                Coll::Hash(Hash::from_pairs(&items, lim)?)
            }
            _ => return None,
        };
        r.0.is_empty().then_some(c)
    }

    /// DEBUG DIGEST-VALUE's input: a list in order; the elements of a set, hash or sorted set each hashed
    /// alone and XORed, so two nodes whose tables iterate in different orders agree.
    pub fn digest(&self) -> [u8; 20] {
        fn one(parts: &[&[u8]]) -> [u8; 20] {
            let mut h = sha1_smol::Sha1::new();
            for p in parts {
                h.update(&(p.len() as u64).to_le_bytes());
                h.update(p);
            }
            h.digest().bytes()
        }
        let mut acc = one(&[&[self.kind()]]);
        let mut xor = |d: [u8; 20]| acc.iter_mut().zip(d).for_each(|(a, b)| *a ^= b);
        match self {
            Coll::List(l) => {
                let mut h = sha1_smol::Sha1::new();
                for v in l.iter() {
                    h.update(&(v.len() as u64).to_le_bytes());
                    h.update(v);
                }
                xor(h.digest().bytes());
            }
            Coll::Set(s) => s.each(|m| xor(one(&[m]))),
            Coll::ZSet(z) => z
                .iter_from(0)
                .for_each(|(m, s)| xor(one(&[m, &s.to_le_bytes()]))),
            Coll::Hash(h) => h.iter().for_each(|(f, v)| xor(one(&[f, v]))),
        }
        acc
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// If this changes, the format changed: bump the frame version (snapshots) and update
    /// docs/replication-format.md "Collections".
    #[test]
    fn golden_byte_forms() {
        let lim = Limits::default();
        let mut z = ZSet::default();
        z.insert(b"b", 2.0, &lim);
        z.insert(b"a", 1.5, &lim);
        let mut l = List::default();
        l.push_back(b"x", &lim);
        l.push_back(b"", &lim);
        let hex = |c: Coll| {
            let mut b = Vec::new();
            c.encode(&mut b);
            b.iter().map(|x| format!("{x:02x}")).collect::<String>()
        };
        assert_eq!(
            hex(Coll::ZSet(z)),
            "020161000000000000f83f01620000000000000040"
        );
        assert_eq!(hex(Coll::List(l)), "02017800");
        let mut h = Hash::default();
        h.set(b"f", b"vv", &lim);
        assert_eq!(hex(Coll::Hash(h)), "0101660276 76".replace(' ', ""));
    }

    /// Every type's byte form decodes to an equal value (same digest), in the encoding its size asks for;
    /// cut or padded bytes are refused.
    #[test]
    fn byte_form_round_trips() {
        let lim = Limits::default();
        let mut l = List::default();
        let mut s = Set::for_first(b"a", 3, &lim);
        let mut z = ZSet::default();
        let mut h = Hash::default();
        for i in 0..300 {
            let v = format!("e{i}");
            l.push_back(v.as_bytes(), &lim);
            s.add(v.as_bytes(), &lim);
            z.insert(v.as_bytes(), (i % 7) as f64, &lim);
            h.set(v.as_bytes(), &[b'x'; 3], &lim);
        }
        for c in [Coll::List(l), Coll::Set(s), Coll::ZSet(z), Coll::Hash(h)] {
            let mut b = Vec::new();
            c.encode(&mut b);
            let d = Coll::decode(c.kind(), &b, &lim).expect("decodes");
            assert_eq!((d.digest(), d.encoding()), (c.digest(), c.encoding()));
            assert!(Coll::decode(c.kind(), &b[..b.len() - 1], &lim).is_none());
            let mut longer = b.clone();
            longer.push(0);
            assert!(Coll::decode(c.kind(), &longer, &lim).is_none());
        }
        assert!(Coll::decode(HASH, &[0], &lim).is_none(), "empty");
        assert!(
            Coll::decode(9, &[1, 1, b'a'], &lim).is_none(),
            "unknown type"
        );
    }
}
