//! The log unit: the commit unit of a shard's log. What a shard executes together (a batch of commands, or
//! its part of a multi-shard transaction) becomes one unit; the backlog holds units, the journal flows send
//! them, a replica applies them whole, and the WAL will write them. One format for all of these
//! (docs/replication-format.md). Little-endian:
//!
//! ```text
//!  0  len      4  bytes of the whole unit: header, records and the trailing CRC
//!  4  magic    1  0xD7
//!  5  version  1  VERSION (negotiated in the handshake: `REPLCONF capa tandem-log<version>`)
//!  6  flags    1  bit 0: part of a multi-shard transaction (txid and parts are meaningful)
//!  7  reserved 1  0
//!  8  start    8  log offset of this unit's first byte (its position in the shard's log)
//! 16  time     8  the primary's command clock (ms since the epoch) its records were made with
//! 24  count    4  records
//!     only in a transaction's part (flag bit 0):
//! 28  parts    2  shards taking part (each logs one unit with this txid)
//! 30  reserved 2  0
//! 32  txid     8  the transaction's id, unique on the primary
//! 28 or 40        records: db varint, argc varint, argc × (len varint, bytes)
//!  .  crc32c   4  CRC-32C of every byte before it
//! ```
//!
//! A record is a command of the server's command table (its name first): the server decides which records
//! a command produces; this crate knows nothing of their meaning. Invariants: a unit is accepted only whole
//! and with its checksum, at the offset its header names; nothing of a partial unit is ever applied or
//! counted.

use bytes::BufMut;

pub const MAGIC: u8 = 0xD7;
pub const VERSION: u8 = 1;
/// The header of a plain unit; a transaction's part has `TX_HEADER_LEN` (parts and txid follow).
pub const HEADER_LEN: usize = 28;
pub const TX_HEADER_LEN: usize = 40;
pub const TRAILER_LEN: usize = 4;
/// The smallest unit: a header and a CRC, no records.
pub const MIN_LEN: usize = HEADER_LEN + TRAILER_LEN;
const FLAG_TX: u8 = 1;

fn header_len(tx: bool) -> usize {
    if tx {
        TX_HEADER_LEN
    } else {
        HEADER_LEN
    }
}

/// A transaction's identity in its units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TxTag {
    pub txid: u64,
    pub parts: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    #[error("bad unit magic {0:#04x}")]
    Magic(u8),
    #[error("unsupported log version {0} (this node speaks {VERSION})")]
    Version(u8),
    #[error("reserved bits set in a unit header")]
    Reserved,
    #[error("unit length {0} is impossible")]
    Length(usize),
    #[error("unit checksum mismatch: stored {stored:08x}, data gives {actual:08x}")]
    Checksum { stored: u32, actual: u32 },
    #[error("unit at offset {found} where {expected} was expected")]
    Offset { expected: u64, found: u64 },
    #[error("malformed record {0} in a unit")]
    Record(u32),
}

pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*pos)?;
        *pos += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// Encodes one record: the database and the command's arguments, name first.
pub fn put_record<A: AsRef<[u8]>>(out: &mut Vec<u8>, db: usize, args: &[A]) {
    put_varint(out, db as u64);
    put_varint(out, args.len() as u64);
    for a in args {
        let a = a.as_ref();
        put_varint(out, a.len() as u64);
        out.extend_from_slice(a);
    }
}

/// The unit being built on a shard: records appended as commands run, sealed into bytes at the end of the
/// batch or transaction part. Reused across units (its buffer keeps its capacity).
/// Allocates nothing until its first record (taking it out of a shard with `mem::take` is free).
#[derive(Debug, Default)]
pub struct UnitWriter {
    /// Room for the header, then the records; empty until the first record.
    buf: Vec<u8>,
    count: u32,
    time: u64,
    tx: Option<TxTag>,
}

impl UnitWriter {
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn time(&self) -> u64 {
        self.time
    }

    /// Sets the clock the next records are made with; only while the unit is empty (callers seal first).
    pub fn set_time(&mut self, now: u64) {
        debug_assert!(self.is_empty());
        self.time = now;
    }

    /// Makes the open (empty) unit a transaction part: it is sealed even if no record is added.
    pub fn begin_tx(&mut self, tag: TxTag) {
        debug_assert!(self.is_empty());
        self.tx = Some(tag);
    }

    pub fn record<A: AsRef<[u8]>>(&mut self, db: usize, args: &[A]) {
        if self.buf.is_empty() {
            self.buf.resize(header_len(self.tx.is_some()), 0);
        }
        put_record(&mut self.buf, db, args);
        self.count += 1;
    }

    /// The unit's size if it were sealed now.
    pub fn len(&self) -> usize {
        self.buf.len().max(header_len(self.tx.is_some())) + TRAILER_LEN
    }

    /// Closes the unit at log offset `start` and returns its bytes, or None when there is nothing to log
    /// (no record, and not a transaction part). The writer is empty afterwards.
    pub fn seal(&mut self, start: u64) -> Option<Vec<u8>> {
        let mut out = None;
        self.seal_to(start, |b| out = Some(b.to_vec()));
        out
    }

    /// `seal`, handing the unit's bytes to `f` in place (the writer keeps its buffer for the next unit:
    /// no allocation per unit). Returns whether there was a unit.
    pub fn seal_to(&mut self, start: u64, f: impl FnOnce(&[u8])) -> bool {
        if self.count == 0 && self.tx.is_none() {
            return false;
        }
        let hlen = header_len(self.tx.is_some());
        let tx = self.tx.take();
        let out = &mut self.buf;
        out.resize(out.len().max(hlen), 0);
        let len = out.len() + TRAILER_LEN;
        let h = &mut out[..hlen];
        h[0..4].copy_from_slice(&(len as u32).to_le_bytes());
        h[4] = MAGIC;
        h[5] = VERSION;
        h[6] = if tx.is_some() { FLAG_TX } else { 0 };
        h[7] = 0;
        h[8..16].copy_from_slice(&start.to_le_bytes());
        h[16..24].copy_from_slice(&self.time.to_le_bytes());
        h[24..28].copy_from_slice(&self.count.to_le_bytes());
        if let Some(tag) = tx {
            h[28..30].copy_from_slice(&tag.parts.to_le_bytes());
            h[30..32].copy_from_slice(&[0, 0]);
            h[32..40].copy_from_slice(&tag.txid.to_le_bytes());
        }
        let crc = crc32c::crc32c(out);
        out.put_u32_le(crc);
        f(out);
        // A buffer that held one huge unit is not kept for the small ones that follow.
        if out.capacity() > 1 << 20 {
            *out = Vec::new();
        } else {
            out.clear();
        }
        self.count = 0;
        true
    }
}

/// The length a unit's first bytes announce, if at least 4 of them are there.
pub fn peek_len(buf: &[u8]) -> Option<usize> {
    buf.get(..4)
        .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")) as usize)
}

/// A checked unit, borrowed from the bytes it was decoded from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unit<'a> {
    pub start: u64,
    pub time: u64,
    pub count: u32,
    pub tx: Option<TxTag>,
    /// The whole unit as it was received (what a replica keeps verbatim).
    pub bytes: &'a [u8],
}

impl<'a> Unit<'a> {
    /// Decodes the unit at the front of `buf`: Ok(None) if it is not all there yet. The checksum and the
    /// records' framing are verified before it is returned, so a returned unit applies whole.
    pub fn decode(buf: &'a [u8]) -> Result<Option<Unit<'a>>, UnitError> {
        let Some(len) = peek_len(buf) else {
            return Ok(None);
        };
        if len < MIN_LEN {
            return Err(UnitError::Length(len));
        }
        if buf.len() >= 6 {
            if buf[4] != MAGIC {
                return Err(UnitError::Magic(buf[4]));
            }
            if buf[5] != VERSION {
                return Err(UnitError::Version(buf[5]));
            }
        }
        if buf.len() < len {
            return Ok(None);
        }
        let b = &buf[..len];
        let stored = u32::from_le_bytes(b[len - 4..].try_into().expect("4 bytes"));
        let actual = crc32c::crc32c(&b[..len - 4]);
        if stored != actual {
            return Err(UnitError::Checksum { stored, actual });
        }
        let flags = b[6];
        if flags & !FLAG_TX != 0 || b[7] != 0 {
            return Err(UnitError::Reserved);
        }
        if len < header_len(flags & FLAG_TX != 0) + TRAILER_LEN {
            return Err(UnitError::Length(len));
        }
        if flags & FLAG_TX != 0 && (b[30] != 0 || b[31] != 0) {
            return Err(UnitError::Reserved);
        }
        let unit = Unit::trusted(b);
        // Framing of every record checked now: applying never meets a half-readable unit.
        let mut n = 0u32;
        for r in unit.records() {
            r?;
            n += 1;
        }
        if n != unit.count {
            return Err(UnitError::Record(n));
        }
        Ok(Some(unit))
    }

    /// A unit that `decode` accepted before (its bytes unchanged since), read without checking again.
    pub fn trusted(b: &'a [u8]) -> Unit<'a> {
        let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        Unit {
            start: u64_at(8),
            time: u64_at(16),
            count: u32::from_le_bytes(b[24..28].try_into().expect("4 bytes")),
            tx: (b[6] & FLAG_TX != 0).then(|| TxTag {
                txid: u64_at(32),
                parts: u16::from_le_bytes([b[28], b[29]]),
            }),
            bytes: b,
        }
    }

    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The log offset just past this unit.
    pub fn end(&self) -> u64 {
        self.start + self.bytes.len() as u64
    }

    pub fn records(&self) -> Records<'a> {
        Records {
            buf: &self.bytes[header_len(self.tx.is_some())..self.bytes.len() - TRAILER_LEN],
            pos: 0,
            index: 0,
        }
    }
}

/// One record: the database and the command's arguments (name first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<'a> {
    pub db: usize,
    pub args: Vec<&'a [u8]>,
}

pub struct Records<'a> {
    buf: &'a [u8],
    pos: usize,
    index: u32,
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<Record<'a>, UnitError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.buf.len() {
            return None;
        }
        let bad = UnitError::Record(self.index);
        self.index += 1;
        let mut rec = || -> Option<Record<'a>> {
            let db = get_varint(self.buf, &mut self.pos)?;
            let argc = get_varint(self.buf, &mut self.pos)?;
            // Every argument takes at least its length byte: a corrupt count cannot make us allocate.
            if argc == 0 || argc > (self.buf.len() - self.pos) as u64 {
                return None;
            }
            let mut args = Vec::with_capacity(argc as usize);
            for _ in 0..argc {
                let len = get_varint(self.buf, &mut self.pos)?;
                if len > (self.buf.len() - self.pos) as u64 {
                    return None;
                }
                let end = self.pos + len as usize;
                args.push(&self.buf[self.pos..end]);
                self.pos = end;
            }
            Some(Record {
                db: usize::try_from(db).ok()?,
                args,
            })
        };
        match rec() {
            Some(r) => Some(Ok(r)),
            None => {
                self.pos = self.buf.len();
                Some(Err(bad))
            }
        }
    }
}

/// Splits a stream of units: takes every whole unit at the front of `buf`, checking that each starts at
/// `*next` (the offset the stream has reached) and advancing it. Returns how many bytes they take; what
/// follows them is an incomplete unit, kept for the next call.
pub fn split_units<'a>(
    buf: &'a [u8],
    next: &mut u64,
    out: &mut Vec<Unit<'a>>,
) -> Result<usize, UnitError> {
    let mut at = 0;
    while let Some(u) = Unit::decode(&buf[at..])? {
        if u.start != *next {
            return Err(UnitError::Offset {
                expected: *next,
                found: u.start,
            });
        }
        *next = u.end();
        at += u.len();
        out.push(u);
    }
    Ok(at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    /// The exact bytes of two known units, their CRC-32C computed independently (a bitwise Python
    /// implementation checked against the standard "123456789" vector). If this changes, the log format changed: bump VERSION and
    /// update docs/replication-format.md.
    #[test]
    fn golden_units() {
        let mut w = UnitWriter::default();
        w.set_time(0x0102_0304_0506_0708);
        w.record(3, &[&b"SET"[..], b"k", b"v"]);
        let plain = w.seal(100).unwrap();
        assert_eq!(
            hex(&plain),
            "2a000000d7010000640000000000000008070605040302010100000003030353\
             4554016b0176355cbb98"
        );
        w.set_time(7);
        w.begin_tx(TxTag { txid: 9, parts: 2 });
        let tx = w.seal(142).unwrap();
        assert_eq!(
            hex(&tx),
            "2c000000d70101008e00000000000000070000000000000000000000020000000900000000000000ce734521"
        );
        let mut next = 100;
        let wire = [plain.clone(), tx.clone()].concat();
        let mut units = Vec::new();
        assert_eq!(split_units(&wire, &mut next, &mut units), Ok(wire.len()));
        assert_eq!(next, 142 + tx.len() as u64);
        assert_eq!(units[0].time, 0x0102_0304_0506_0708);
        assert_eq!(
            units[0].records().map(Result::unwrap).collect::<Vec<_>>(),
            vec![Record {
                db: 3,
                args: vec![&b"SET"[..], b"k", b"v"]
            }]
        );
        assert_eq!(units[1].tx, Some(TxTag { txid: 9, parts: 2 }));
        assert!(units[1].is_empty());
        assert_eq!(w.seal(200), None, "an empty plain unit logs nothing");
    }

    #[test]
    fn every_single_bit_corruption_is_detected() {
        let mut w = UnitWriter::default();
        w.set_time(5);
        w.record(0, &[&b"INCR"[..], b"counter"]);
        w.record(1, &[&b"DEL"[..], b"a", b"b"]);
        let good = w.seal(0).unwrap();
        for i in 0..good.len() {
            for bit in 0..8 {
                let mut bad = good.clone();
                bad[i] ^= 1 << bit;
                match Unit::decode(&bad) {
                    Err(_) => {}
                    // A corrupted length can make the unit look longer: it waits, never yields.
                    Ok(None) => assert!(i < 4, "byte {i} bit {bit}: waited"),
                    Ok(Some(u)) => panic!("byte {i} bit {bit}: corrupt unit accepted: {u:?}"),
                }
            }
        }
    }

    #[test]
    fn a_gap_or_a_foreign_version_is_an_error() {
        let mut w = UnitWriter::default();
        w.record(0, &[&b"DEL"[..], b"a"]);
        let u = w.seal(10).unwrap();
        let mut next = 11;
        assert_eq!(
            split_units(&u, &mut next, &mut Vec::new()),
            Err(UnitError::Offset {
                expected: 11,
                found: 10
            })
        );
        let mut v2 = u.clone();
        v2[5] = 2;
        assert_eq!(Unit::decode(&v2), Err(UnitError::Version(2)));
        assert_eq!(Unit::decode(&v2[..6]), Err(UnitError::Version(2)));
    }

    proptest! {
        /// Units of arbitrary records, cut anywhere: whole units come back exactly, the rest waits.
        #[test]
        fn round_trip_in_any_pieces(
            units in prop::collection::vec((any::<u64>(), prop::option::of((any::<u64>(), 1u16..64)),
                prop::collection::vec((0usize..20, prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 1..5)), 0..6)), 1..6),
            piece in 1usize..64)
        {
            let mut w = UnitWriter::default();
            let mut wire = Vec::new();
            let mut want = Vec::new();
            let start = 1000u64;
            for (time, tx, recs) in &units {
                w.set_time(*time);
                if let Some((txid, parts)) = tx {
                    w.begin_tx(TxTag { txid: *txid, parts: *parts });
                }
                for (db, args) in recs {
                    w.record(*db, args);
                }
                if let Some(b) = w.seal(start + wire.len() as u64) {
                    want.push((*time, tx.map(|(t, p)| TxTag { txid: t, parts: p }), recs.clone()));
                    wire.extend_from_slice(&b);
                }
            }
            let mut buf = Vec::new();
            let mut next = start;
            let mut got = Vec::new();
            for chunk in wire.chunks(piece) {
                buf.extend_from_slice(chunk);
                let mut units = Vec::new();
                let used = split_units(&buf, &mut next, &mut units).unwrap();
                for u in &units {
                    let recs: Vec<(usize, Vec<Vec<u8>>)> = u.records()
                        .map(|r| { let r = r.unwrap(); (r.db, r.args.iter().map(|a| a.to_vec()).collect()) })
                        .collect();
                    got.push((u.time, u.tx, recs));
                }
                buf.drain(..used);
            }
            prop_assert!(buf.is_empty());
            prop_assert_eq!(next, start + wire.len() as u64);
            prop_assert_eq!(got, want);
        }

        /// Arbitrary bytes never panic the decoder, and anything it accepts re-encodes to the same bytes.
        #[test]
        fn garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(Some(u)) = Unit::decode(&bytes) {
                let mut w = UnitWriter::default();
                w.set_time(u.time);
                if let Some(t) = u.tx { w.begin_tx(t); }
                for r in u.records() { let r = r.unwrap(); w.record(r.db, &r.args); }
                prop_assert_eq!(w.seal(u.start).unwrap(), u.bytes.to_vec());
            }
        }
    }
}
