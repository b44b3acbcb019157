//! A WAL segment file: a header naming whose log it holds and where it starts, then the shard's log units
//! back to back, exactly as the backlog and the journal flows carry them (unit.rs), then zeros: segments
//! are created full-size and zero-filled, so appending a unit rewrites data blocks only and an
//! `fdatasync` has no file-size metadata to commit (docs/persistence.md). Little-endian:
//!
//! ```text
//!   0  magic          8  "TANDWAL\0"
//!   8  version        2  VERSION
//!  10  shard          2  the shard whose log this is
//!  12  shards         2  shards of the server that wrote it (a restart must have as many)
//!  14  flags          1  bit 0 (BASED): a chain begins here on a snapshot taken at `start`
//!  15  reserved       1  0
//!  16  start          8  log offset of the first unit in this segment
//!  24  second_offset  8  i64: replid2 is valid up to this offset (Valkey's second_replid_offset), -1: none
//!  32  replid        40  the replication id these offsets belong to (hex)
//!  72  replid2       40  the previous id (hex; all '0' when none)
//! 112  reserved      12  0
//! 124  crc32c         4  CRC-32C of bytes 0..124
//! 128  units ...         each: its length first, its CRC-32C last (the unit's commit marker)
//!   .  zeros             a length of 0 where a unit would begin ends the log
//! ```
//!
//! Invariants: a unit counts only whole, with its checksum, at the offset the previous one ended; the first
//! unit that fails is either a **torn tail** (a write cut by a crash: nothing whole follows it) or
//! **corruption** (a whole, valid unit follows at the offset it should: bytes that were durable changed).

use crate::replid::{Identity, ReplId};
use crate::unit::{peek_len, Unit, MIN_LEN};

pub const MAGIC: [u8; 8] = *b"TANDWAL\0";
/// A snapshot file's header has the same layout under its own magic (snapfile.rs).
pub const SNAPSHOT_MAGIC: [u8; 8] = *b"TANDSNAP";
const FLAG_BASED: u8 = 1;
pub const VERSION: u16 = 1;
pub const HEADER_LEN: usize = 128;

/// What a segment's header says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub shard: u16,
    pub shards: u16,
    pub start: u64,
    pub identity: Identity,
    /// The first segment of a chain whose history before `start` is a snapshot taken there (a replica
    /// after a full sync): without that snapshot the chain cannot be replayed, and recovery discards it.
    pub based: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("not a Tandem WAL segment (bad magic)")]
    Magic,
    #[error("WAL segment version {0} is not supported (this server reads version {VERSION})")]
    Version(u16),
    #[error("WAL segment header is shorter than {HEADER_LEN} bytes")]
    Short,
    #[error("WAL segment header checksum mismatch")]
    Checksum,
    #[error("WAL segment header is malformed: {0}")]
    Malformed(&'static str),
}

impl Header {
    pub fn encode(&self) -> Vec<u8> {
        self.encode_as(&MAGIC)
    }

    pub fn decode(b: &[u8]) -> Result<Header, HeaderError> {
        Self::decode_as(b, &MAGIC)
    }

    pub fn encode_as(&self, magic: &[u8; 8]) -> Vec<u8> {
        let mut b = Vec::with_capacity(HEADER_LEN);
        b.extend_from_slice(magic);
        b.extend_from_slice(&VERSION.to_le_bytes());
        b.extend_from_slice(&self.shard.to_le_bytes());
        b.extend_from_slice(&self.shards.to_le_bytes());
        b.extend_from_slice(&[if self.based { FLAG_BASED } else { 0 }, 0]);
        b.extend_from_slice(&self.start.to_le_bytes());
        b.extend_from_slice(&self.identity.second_offset.to_le_bytes());
        b.extend_from_slice(self.identity.replid.as_str().as_bytes());
        b.extend_from_slice(self.identity.replid2.as_str().as_bytes());
        b.extend_from_slice(&[0; 12]);
        let crc = crc32c::crc32c(&b);
        b.extend_from_slice(&crc.to_le_bytes());
        debug_assert_eq!(b.len(), HEADER_LEN);
        b
    }

    pub fn decode_as(b: &[u8], magic: &[u8; 8]) -> Result<Header, HeaderError> {
        if b.len() < 8 || b[..8] != *magic {
            return Err(HeaderError::Magic);
        }
        if b.len() < HEADER_LEN {
            return Err(HeaderError::Short);
        }
        let version = u16::from_le_bytes([b[8], b[9]]);
        if version != VERSION {
            return Err(HeaderError::Version(version));
        }
        let stored = u32::from_le_bytes(b[124..128].try_into().expect("4 bytes"));
        if crc32c::crc32c(&b[..124]) != stored {
            return Err(HeaderError::Checksum);
        }
        if b[14] & !FLAG_BASED != 0 || b[15] != 0 || b[112..124].iter().any(|&x| x != 0) {
            return Err(HeaderError::Malformed("reserved bytes set"));
        }
        let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        let replid = ReplId::parse(&b[32..72]).ok_or(HeaderError::Malformed("replid"))?;
        let replid2 = ReplId::parse(&b[72..112]).ok_or(HeaderError::Malformed("replid2"))?;
        let (shard, shards) = (
            u16::from_le_bytes([b[10], b[11]]),
            u16::from_le_bytes([b[12], b[13]]),
        );
        if shards == 0 || shard >= shards {
            return Err(HeaderError::Malformed("shard"));
        }
        Ok(Header {
            shard,
            shards,
            start: u64_at(16),
            identity: Identity {
                replid,
                replid2,
                second_offset: u64_at(24) as i64,
            },
            based: b[14] & FLAG_BASED != 0,
        })
    }
}

/// A whole unit found in a segment: its log offset and where its bytes are in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found {
    pub offset: u64,
    pub pos: usize,
    pub len: usize,
}

/// How a segment's units end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tail {
    /// Zeros (or the file's end) where the next unit would begin.
    Clean,
    /// A unit cut by a crash at `pos` (log offset `offset`): it and the `junk` bytes from `pos` on that are
    /// not zero are dropped.
    Torn {
        pos: usize,
        offset: u64,
        junk: usize,
        reason: String,
    },
}

/// One segment read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scanned {
    pub header: Header,
    pub units: Vec<Found>,
    /// Log offset just past the last whole unit (the header's start when there is none).
    pub end: u64,
    /// File position just past the last whole unit.
    pub end_pos: usize,
    pub tail: Tail,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScanError {
    #[error("{0}")]
    Header(#[from] HeaderError),
    /// Bytes that were a durable part of the log no longer check: a valid unit follows the bad one.
    #[error("corrupt unit at file offset {pos} (log offset {offset}): {reason}")]
    Corrupt {
        pos: usize,
        offset: u64,
        reason: String,
    },
}

/// Reads a segment: its header, every whole unit from the start on, and how the units end.
pub fn scan(b: &[u8]) -> Result<Scanned, ScanError> {
    let header = Header::decode(b)?;
    let mut units = Vec::new();
    let (mut pos, mut offset) = (HEADER_LEN, header.start);
    let tail = loop {
        let rest = &b[pos..];
        match peek_len(rest) {
            None if rest.iter().all(|&x| x == 0) => break Tail::Clean,
            Some(0) => {
                if rest.iter().all(|&x| x == 0) {
                    break Tail::Clean;
                }
                break torn(
                    b,
                    pos,
                    offset,
                    0,
                    "a zero length before non-zero bytes".into(),
                )?;
            }
            _ => {}
        }
        let bad = match Unit::decode(rest) {
            Ok(Some(u)) if u.start == offset => {
                units.push(Found {
                    offset,
                    pos,
                    len: u.len(),
                });
                pos += u.len();
                offset += u.len() as u64;
                continue;
            }
            Ok(Some(u)) => format!(
                "unit names log offset {} where {offset} was expected",
                u.start
            ),
            Ok(None) => "the unit runs past the end of the file".to_string(),
            Err(e) => e.to_string(),
        };
        let len = peek_len(rest).unwrap_or(0);
        break torn(b, pos, offset, len, bad)?;
    };
    Ok(Scanned {
        header,
        units,
        end: offset,
        end_pos: pos,
        tail,
    })
}

/// Classifies the first bad unit at `pos` (announcing `len` bytes): corruption if a whole unit with the
/// next offset follows where it says it ends, else a torn tail.
fn torn(b: &[u8], pos: usize, offset: u64, len: usize, reason: String) -> Result<Tail, ScanError> {
    if len >= MIN_LEN && pos + len < b.len() {
        let next = offset + len as u64;
        if let Ok(Some(u)) = Unit::decode(&b[pos + len..]) {
            if u.start == next {
                return Err(ScanError::Corrupt {
                    pos,
                    offset,
                    reason,
                });
            }
        }
    }
    let junk = b[pos..].iter().rposition(|&x| x != 0).map_or(0, |i| i + 1);
    Ok(Tail::Torn {
        pos,
        offset,
        junk,
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::codec::bitwise_crc32c;
    use crate::unit::UnitWriter;

    fn ident() -> Identity {
        Identity {
            replid: ReplId::from_random([0xab; 20]),
            replid2: ReplId::zero(),
            second_offset: -1,
        }
    }

    fn header(start: u64) -> Header {
        Header {
            shard: 1,
            shards: 2,
            start,
            identity: ident(),
            based: false,
        }
    }

    fn unit(start: u64, key: &str) -> Vec<u8> {
        let mut w = UnitWriter::default();
        w.set_time(1000);
        w.record(0, &[&b"SET"[..], key.as_bytes(), b"value"]);
        w.seal(start).unwrap()
    }

    /// A segment of `units` (each SET of its key) then `zeros` zero bytes.
    fn segment(start: u64, keys: &[&str], zeros: usize) -> (Vec<u8>, Vec<u64>) {
        let mut b = header(start).encode();
        let mut offsets = Vec::new();
        let mut at = start;
        for k in keys {
            let u = unit(at, k);
            offsets.push(at);
            at += u.len() as u64;
            b.extend_from_slice(&u);
        }
        b.resize(b.len() + zeros, 0);
        (b, offsets)
    }

    /// The exact header bytes; the CRC is checked with an independent bitwise CRC-32C. If this changes,
    /// the WAL format changed: bump VERSION and update docs/persistence.md.
    #[test]
    fn golden_header() {
        let h = Header {
            shard: 1,
            shards: 2,
            start: 0x0102_0304,
            identity: Identity {
                replid: ReplId::from_random([0x11; 20]),
                replid2: ReplId::from_random([0x22; 20]),
                second_offset: 77,
            },
            based: true,
        };
        let b = h.encode();
        let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
        let mut want = String::from("54414e4457414c0001000100020001000403020100000000");
        want += "4d00000000000000";
        want += &"31".repeat(40);
        want += &"32".repeat(40);
        want += &"00".repeat(12);
        let crc = bitwise_crc32c(&b[..124]);
        want += &crc
            .to_le_bytes()
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect::<String>();
        assert_eq!(hex, want);
        assert_eq!(Header::decode(&b), Ok(h));
    }

    #[test]
    fn every_bit_flip_of_a_header_is_refused() {
        let b = header(9).encode();
        for i in 0..b.len() {
            for bit in 0..8 {
                let mut bad = b.clone();
                bad[i] ^= 1 << bit;
                assert!(Header::decode(&bad).is_err(), "byte {i} bit {bit}");
            }
        }
    }

    #[test]
    fn a_clean_segment_gives_every_unit_and_its_end() {
        let (b, offsets) = segment(500, &["a", "b", "c"], 4096);
        let s = scan(&b).unwrap();
        assert_eq!(s.tail, Tail::Clean);
        assert_eq!(
            s.units.iter().map(|u| u.offset).collect::<Vec<_>>(),
            offsets
        );
        assert_eq!(s.end_pos, b.len() - 4096);
        assert_eq!(s.end, 500 + (s.end_pos - HEADER_LEN) as u64);
        // Without trailing zeros (a file cut at a unit's end) it is clean too.
        let (b, _) = segment(500, &["a"], 0);
        assert_eq!(scan(&b).unwrap().tail, Tail::Clean);
    }

    /// A unit cut anywhere (its bytes partly written, the rest still zeros) is a torn tail: the units
    /// before it are kept, it is not.
    #[test]
    fn a_unit_cut_anywhere_is_a_torn_tail() {
        let (whole, _) = segment(0, &["a", "b"], 256);
        let s = scan(&whole).unwrap();
        let last = s.units[1];
        for cut in last.pos + 1..last.pos + last.len {
            let mut b = whole.clone();
            b[cut..].fill(0);
            let s = scan(&b).unwrap();
            assert_eq!(s.units.len(), 1, "cut at {cut}");
            match s.tail {
                Tail::Torn { pos, junk, .. } => {
                    assert_eq!(pos, last.pos);
                    assert!(junk <= cut - pos);
                }
                // Cutting only trailing zero bytes of the last record can leave it whole: impossible,
                // the CRC is last.
                Tail::Clean => panic!("cut at {cut} went unnoticed"),
            }
        }
    }

    /// A bit flipped in a unit that a valid unit follows is corruption (naming the position); in the last
    /// unit it is a torn tail.
    #[test]
    fn damage_before_the_tail_is_corruption() {
        let (b, _) = segment(0, &["a", "b", "c"], 64);
        let s = scan(&b).unwrap();
        let (first, last) = (s.units[0], s.units[2]);
        let mut bad = b.clone();
        bad[first.pos + 20] ^= 4;
        assert_eq!(
            scan(&bad).map(|_| ()).unwrap_err(),
            ScanError::Corrupt {
                pos: first.pos,
                offset: 0,
                reason: match Unit::decode(&bad[first.pos..]) {
                    Err(e) => e.to_string(),
                    _ => unreachable!(),
                }
            }
        );
        let mut bad = b.clone();
        bad[last.pos + 20] ^= 4;
        let s = scan(&bad).unwrap();
        assert_eq!(s.units.len(), 2);
        assert!(matches!(s.tail, Tail::Torn { pos, .. } if pos == last.pos));
    }

    #[test]
    fn a_unit_at_the_wrong_offset_ends_the_log() {
        let mut b = header(0).encode();
        b.extend_from_slice(&unit(0, "a"));
        b.extend_from_slice(&unit(12345, "b"));
        let s = scan(&b).unwrap();
        assert_eq!(s.units.len(), 1);
        assert!(matches!(s.tail, Tail::Torn { .. }));
    }
}
