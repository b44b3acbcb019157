//! The snapshot chunk: the payload of a `SnapshotChunk` frame, records of keys of **one hash slot**, whole
//! records only, so it can be loaded on its own as soon as it arrives and routed by its slot without
//! hashing any key. Layout, little-endian (docs/replication-format.md): `slot u16`, then records:
//!
//! ```text
//!  0  db        2   database index
//!  2  key_len   4
//!  6  val_len   4
//! 10  expire_at 8   absolute expiry in ms since the epoch, 0 = none
//! 18  type      1   0 string (value: its bytes), 1 list, 2 set, 3 sorted set, 4 hash (value: the
//!                   collection's byte form, docs/replication-format.md "Collections")
//! 19  key       key_len
//!  .  value     val_len
//! ```
//!
//! The chunk itself is protected by the frame's CRC-32C; a record that runs past the end of its chunk is
//! an error, never a partly loaded key.

use bytes::BufMut;

pub const RECORD_HEADER: usize = 19;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    pub db: u16,
    pub key: &'a [u8],
    pub value: &'a [u8],
    /// The value's type code (0: a string).
    pub kind: u8,
    /// Absolute ms since the epoch; `None` for keys without a TTL.
    pub expire_at: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("snapshot chunk truncated at byte {0}")]
pub struct Truncated(pub usize);

pub const CHUNK_HEADER: usize = 2;

/// Starts a chunk of slot `slot`'s records.
pub fn begin_chunk(out: &mut impl BufMut, slot: u16) {
    out.put_u16_le(slot);
}

/// Splits a chunk into its slot and its records.
pub fn chunk(payload: &[u8]) -> Result<(u16, Records<'_>), Truncated> {
    if payload.len() < CHUNK_HEADER {
        return Err(Truncated(0));
    }
    Ok((
        u16::from_le_bytes([payload[0], payload[1]]),
        records(&payload[CHUNK_HEADER..]),
    ))
}

pub fn encoded_len(key: &[u8], value: &[u8]) -> usize {
    RECORD_HEADER + key.len() + value.len()
}

pub fn encode(out: &mut impl BufMut, r: &Record<'_>) {
    out.put_u16_le(r.db);
    out.put_u32_le(r.key.len() as u32);
    out.put_u32_le(r.value.len() as u32);
    out.put_u64_le(r.expire_at.unwrap_or(0));
    out.put_u8(r.kind);
    out.put_slice(r.key);
    out.put_slice(r.value);
}

/// Iterates over the records of one chunk payload.
pub struct Records<'a> {
    buf: &'a [u8],
    pos: usize,
}

pub fn records(buf: &[u8]) -> Records<'_> {
    Records { buf, pos: 0 }
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<Record<'a>, Truncated>;

    fn next(&mut self) -> Option<Self::Item> {
        let rest = &self.buf[self.pos..];
        if rest.is_empty() {
            return None;
        }
        if rest.len() < RECORD_HEADER {
            let at = self.pos;
            self.pos = self.buf.len();
            return Some(Err(Truncated(at)));
        }
        let db = u16::from_le_bytes([rest[0], rest[1]]);
        let kl = u32::from_le_bytes(rest[2..6].try_into().expect("4")) as usize;
        let vl = u32::from_le_bytes(rest[6..10].try_into().expect("4")) as usize;
        let exp = u64::from_le_bytes(rest[10..18].try_into().expect("8"));
        let kind = rest[18];
        let total = RECORD_HEADER
            .checked_add(kl)
            .and_then(|t| t.checked_add(vl));
        match total {
            Some(t) if t <= rest.len() => {
                let key = &rest[RECORD_HEADER..RECORD_HEADER + kl];
                let value = &rest[RECORD_HEADER + kl..t];
                self.pos += t;
                Some(Ok(Record {
                    db,
                    key,
                    value,
                    kind,
                    expire_at: (exp != 0).then_some(exp),
                }))
            }
            _ => {
                let at = self.pos;
                self.pos = self.buf.len();
                Some(Err(Truncated(at)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    /// If this changes, the format changed: bump the frame VERSION and update docs/replication-format.md.
    #[test]
    fn golden_bytes() {
        let mut out = Vec::new();
        encode(
            &mut out,
            &Record {
                db: 2,
                key: b"k",
                value: b"vv",
                kind: 4,
                expire_at: Some(0x0102_0304_0506_0708),
            },
        );
        encode(
            &mut out,
            &Record {
                db: 0,
                key: b"a",
                value: b"",
                kind: 0,
                expire_at: None,
            },
        );
        assert_eq!(
            hex(&out),
            "020001000000020000000807060504030201046b7676\
             0000010000000000000000000000000000000061"
        );
        let got: Vec<_> = records(&out).collect::<Result<_, _>>().unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].expire_at, Some(0x0102_0304_0506_0708));
        assert_eq!((got[0].kind, got[1].kind), (4, 0));
        assert_eq!(
            (got[1].key, got[1].value, got[1].expire_at),
            (&b"a"[..], &b""[..], None)
        );
    }

    #[test]
    fn truncation_is_an_error_not_a_partial_key() {
        let mut out = Vec::new();
        let r = Record {
            db: 0,
            key: b"key",
            value: b"value",
            kind: 0,
            expire_at: None,
        };
        encode(&mut out, &r);
        for cut in 1..out.len() {
            let got: Vec<_> = records(&out[..cut]).collect();
            assert_eq!(got, vec![Err(Truncated(0))], "cut at {cut}");
        }
        let mut huge = out.clone();
        huge[2..6].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(records(&huge).next(), Some(Err(Truncated(0))));
    }

    #[test]
    fn chunk_names_its_slot() {
        let mut out = Vec::new();
        begin_chunk(&mut out, 0x1234);
        encode(
            &mut out,
            &Record {
                db: 1,
                key: b"k",
                value: b"v",
                kind: 2,
                expire_at: None,
            },
        );
        assert_eq!(&out[..2], &[0x34, 0x12]);
        let (slot, recs) = chunk(&out).unwrap();
        assert_eq!(slot, 0x1234);
        assert_eq!(recs.count(), 1);
        assert_eq!(chunk(&[1]).err(), Some(Truncated(0)));
    }

    proptest! {
        #[test]
        fn round_trip(recs in prop::collection::vec((any::<u16>(), prop::collection::vec(any::<u8>(), 0..40), prop::collection::vec(any::<u8>(), 0..100), prop::option::of(1u64..)), 0..20)) {
            let mut out = Vec::new();
            for (db, k, v, e) in &recs {
                encode(&mut out, &Record { db: *db, key: k, value: v, kind: (*db % 5) as u8, expire_at: *e });
            }
            let got: Vec<_> = records(&out).collect::<Result<_, _>>().unwrap();
            prop_assert_eq!(got.len(), recs.len());
            for (g, (db, k, v, e)) in got.iter().zip(&recs) {
                prop_assert_eq!((g.db, g.key, g.value, g.expire_at), (*db, &k[..], &v[..], *e));
            }
        }
    }
}
