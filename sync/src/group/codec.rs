//! The bytes of a group entry, as the control plane's log carries them (docs/failover.md "Entry format").
//!
//! ```text
//!  0  magic    2  b"TG"
//!  2  version  1  1
//!  3  kind     1  1 Join, 2 Leave, 3 Found, 4 Grant, 5 Revoke, 6/7/8 Takeover Promote/Resume/Force
//!  4  fields      per kind, in declaration order: u64 little-endian; strings as u32 length + bytes
//!                 (UTF-8, at most 1024 bytes); bools as one byte 0 or 1
//!  n  crc32c   4  CRC-32C of bytes 0..n
//! ```
//!
//! Decoding refuses anything else (trailing bytes included): an entry is applied whole or not at all.

use super::record::{Entry, Takeover};

pub const MAGIC: [u8; 2] = *b"TG";
pub const VERSION: u8 = 1;
const MAX_STR: usize = 1024;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("group entry too short")]
    Short,
    #[error("bad group entry magic")]
    Magic,
    #[error("unsupported group entry version {0}")]
    Version(u8),
    #[error("unknown group entry kind {0}")]
    Kind(u8),
    #[error("group entry checksum mismatch")]
    Checksum,
    #[error("malformed group entry field")]
    Field,
    #[error("{0} trailing bytes after the group entry")]
    Trailing(usize),
}

pub fn encode(e: &Entry) -> Vec<u8> {
    let mut w = Vec::with_capacity(64);
    w.extend_from_slice(&MAGIC);
    w.push(VERSION);
    let u = |w: &mut Vec<u8>, v: u64| w.extend_from_slice(&v.to_le_bytes());
    match e {
        Entry::Join {
            id,
            node_id,
            addr,
            witness,
            incarnation,
        } => {
            w.push(1);
            u(&mut w, *id);
            for s in [node_id, addr] {
                w.extend_from_slice(&(s.len() as u32).to_le_bytes());
                w.extend_from_slice(s.as_bytes());
            }
            w.push(*witness as u8);
            u(&mut w, *incarnation);
        }
        Entry::Leave { id, version } => {
            w.push(2);
            u(&mut w, *id);
            u(&mut w, *version);
        }
        Entry::Found { id, incarnation } => {
            w.push(3);
            u(&mut w, *id);
            u(&mut w, *incarnation);
        }
        Entry::Grant {
            by,
            version,
            id,
            incarnation,
        } => {
            w.push(4);
            for v in [by, version, id, incarnation] {
                u(&mut w, *v);
            }
        }
        Entry::Revoke { by, epoch, id } => {
            w.push(5);
            for v in [by, epoch, id] {
                u(&mut w, *v);
            }
        }
        Entry::Takeover {
            how,
            id,
            incarnation,
            version,
        } => {
            w.push(match how {
                Takeover::Promote => 6,
                Takeover::Resume => 7,
                Takeover::Force => 8,
            });
            for v in [id, incarnation, version] {
                u(&mut w, *v);
            }
        }
    }
    seal(&mut w);
    w
}

/// Reads the fields of the control plane's formats (entries, wire messages, saved state).
pub(super) struct Reader<'a> {
    pub b: &'a [u8],
}

impl Reader<'_> {
    pub fn take(&mut self, n: usize) -> Result<&[u8], CodecError> {
        if self.b.len() < n {
            return Err(CodecError::Field);
        }
        let (h, t) = self.b.split_at(n);
        self.b = t;
        Ok(h)
    }
    pub fn u64(&mut self) -> Result<u64, CodecError> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8")))
    }
    pub fn string(&mut self) -> Result<String, CodecError> {
        let n = u32::from_le_bytes(self.take(4)?.try_into().expect("4")) as usize;
        if n > MAX_STR {
            return Err(CodecError::Field);
        }
        String::from_utf8(self.take(n)?.to_vec()).map_err(|_| CodecError::Field)
    }
    pub fn u32(&mut self) -> Result<u32, CodecError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4")))
    }
    /// A u32 length and that many bytes, at most `max`.
    pub fn bytes(&mut self, max: usize) -> Result<&[u8], CodecError> {
        let n = self.u32()? as usize;
        if n > max {
            return Err(CodecError::Field);
        }
        self.take(n)
    }
    /// A u32 count and that many u64s, at most `max`.
    pub fn u64s(&mut self, max: usize) -> Result<Vec<u64>, CodecError> {
        let n = self.u32()? as usize;
        if n > max {
            return Err(CodecError::Field);
        }
        (0..n).map(|_| self.u64()).collect()
    }
    pub fn bool(&mut self) -> Result<bool, CodecError> {
        match self.take(1)?[0] {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(CodecError::Field),
        }
    }
}

/// Appends the CRC-32C of everything in `w` (every control-plane format ends so).
pub(super) fn seal(w: &mut Vec<u8>) {
    let crc = crc32c::crc32c(w);
    w.extend_from_slice(&crc.to_le_bytes());
}

/// Checks a sealed message's magic, version and CRC-32C trailer; returns the bytes between the version
/// and the trailer.
pub(super) fn unseal<'a>(b: &'a [u8], magic: &[u8], version: u8) -> Result<&'a [u8], CodecError> {
    let head = magic.len() + 1;
    if b.len() < head + 1 + 4 {
        return Err(CodecError::Short);
    }
    if &b[..magic.len()] != magic {
        return Err(CodecError::Magic);
    }
    if b[magic.len()] != version {
        return Err(CodecError::Version(b[magic.len()]));
    }
    let (body, crc) = b.split_at(b.len() - 4);
    if crc32c::crc32c(body) != u32::from_le_bytes(crc.try_into().expect("4")) {
        return Err(CodecError::Checksum);
    }
    Ok(&body[head..])
}

/// CRC-32C computed bit by bit (Castagnoli, reflected, polynomial 0x82F63B78): the golden tests'
/// independent check of the table-driven crate.
#[cfg(test)]
pub(crate) fn bitwise_crc32c(b: &[u8]) -> u32 {
    let mut c = !0u32;
    for &x in b {
        c ^= x as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0x82F6_3B78
            } else {
                c >> 1
            };
        }
    }
    !c
}

/// Asserts that flipping any single bit of `bytes` makes `decode` refuse them (the checksum, or a
/// field check, catches it): the formats' shared test.
#[cfg(test)]
pub(crate) fn assert_every_bit_flip_refused<T>(
    bytes: &[u8],
    decode: impl Fn(&[u8]) -> Result<T, CodecError>,
) {
    for i in 0..bytes.len() * 8 {
        let mut c = bytes.to_vec();
        c[i / 8] ^= 1 << (i % 8);
        assert!(decode(&c).is_err(), "bit {i}");
    }
}

pub fn decode(b: &[u8]) -> Result<Entry, CodecError> {
    let body = unseal(b, &MAGIC, VERSION)?;
    let mut r = Reader { b: &body[1..] };
    let e = match body[0] {
        1 => Entry::Join {
            id: r.u64()?,
            node_id: r.string()?,
            addr: r.string()?,
            witness: r.bool()?,
            incarnation: r.u64()?,
        },
        2 => Entry::Leave {
            id: r.u64()?,
            version: r.u64()?,
        },
        3 => Entry::Found {
            id: r.u64()?,
            incarnation: r.u64()?,
        },
        4 => Entry::Grant {
            by: r.u64()?,
            version: r.u64()?,
            id: r.u64()?,
            incarnation: r.u64()?,
        },
        5 => Entry::Revoke {
            by: r.u64()?,
            epoch: r.u64()?,
            id: r.u64()?,
        },
        k @ 6..=8 => Entry::Takeover {
            how: [Takeover::Promote, Takeover::Resume, Takeover::Force][k as usize - 6],
            id: r.u64()?,
            incarnation: r.u64()?,
            version: r.u64()?,
        },
        k => return Err(CodecError::Kind(k)),
    };
    if !r.b.is_empty() {
        return Err(CodecError::Trailing(r.b.len()));
    }
    Ok(e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Golden bytes, worked out by hand from the layout above (CRC-32C by an independent implementation:
    /// computed with a bitwise CRC-32C in Python, polynomial 0x82F63B78).
    #[test]
    fn golden_grant() {
        let e = Entry::Grant {
            by: 1,
            version: 2,
            id: 3,
            incarnation: 4,
        };
        let b = encode(&e);
        let mut want = b"TG\x01\x04".to_vec();
        for v in [1u64, 2, 3, 4] {
            want.extend_from_slice(&v.to_le_bytes());
        }
        assert_eq!(&b[..b.len() - 4], &want[..]);
        assert_eq!(hex(&b[b.len() - 4..]), GOLDEN_GRANT_CRC);
        assert_eq!(decode(&b), Ok(e));
    }

    const GOLDEN_GRANT_CRC: &str = "38264c1a";

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn every_bit_flip_is_refused() {
        let b = encode(&Entry::Join {
            id: 7,
            node_id: "n".into(),
            addr: "127.0.0.1:6379".into(),
            witness: false,
            incarnation: 9,
        });
        assert_every_bit_flip_refused(&b, decode);
        assert!(decode(&b[..b.len() - 1]).is_err());
    }

    fn any_entry() -> impl Strategy<Value = Entry> {
        let n = any::<u64>();
        prop_oneof![
            (n, ".{0,40}", ".{0,30}", any::<bool>(), n).prop_map(
                |(id, node_id, addr, witness, incarnation)| Entry::Join {
                    id,
                    node_id,
                    addr,
                    witness,
                    incarnation
                }
            ),
            (n, n).prop_map(|(id, version)| Entry::Leave { id, version }),
            (n, n).prop_map(|(id, incarnation)| Entry::Found { id, incarnation }),
            (n, n, n, n).prop_map(|(by, version, id, incarnation)| {
                Entry::Grant {
                    by,
                    version,
                    id,
                    incarnation,
                }
            }),
            (n, n, n).prop_map(|(by, epoch, id)| Entry::Revoke { by, epoch, id }),
            (0u8..3, n, n, n).prop_map(|(k, id, incarnation, version)| Entry::Takeover {
                how: [Takeover::Promote, Takeover::Resume, Takeover::Force][k as usize],
                id,
                incarnation,
                version,
            }),
        ]
    }

    proptest! {
        #[test]
        fn round_trip(e in any_entry()) {
            prop_assert_eq!(decode(&encode(&e)), Ok(e));
        }

        #[test]
        fn garbage_never_panics(b in proptest::collection::vec(any::<u8>(), 0..80)) {
            let _ = decode(&b);
        }
    }
}
