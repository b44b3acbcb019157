//! The WAL reader on arbitrary bytes: scanning a segment and chaining segments never panics, and every
//! unit it returns decodes whole at the offset and position it names. Most inputs get a valid header in
//! front (random bytes rarely pass its CRC-32C), so the unit scan and the torn-or-corrupt decision behind
//! it are what gets explored.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tandem_sync::replid::{Identity, ReplId};
use tandem_sync::unit::Unit;
use tandem_sync::wal::recover::chain;
use tandem_sync::wal::segment::{scan, Header, Tail};

fuzz_target!(|data: &[u8]| {
    let raw = data.first().is_some_and(|b| b & 1 == 1);
    let bytes = if raw {
        data.to_vec()
    } else {
        let start = data.get(1..9).map_or(0, |b| u64::from_le_bytes(b.try_into().unwrap()) >> 8);
        let mut b = Header {
            shard: 0,
            shards: 1,
            start,
            identity: Identity::new(ReplId::zero()),
            based: false,
        }
        .encode();
        b.extend_from_slice(data.get(9..).unwrap_or(&[]));
        b
    };
    if let Ok(s) = scan(&bytes) {
        let mut at = s.header.start;
        for u in &s.units {
            assert_eq!(u.offset, at);
            let unit = Unit::decode(&bytes[u.pos..]).unwrap().unwrap();
            assert_eq!((unit.start, unit.len()), (u.offset, u.len));
            at += u.len as u64;
        }
        assert_eq!(at, s.end);
        if let Tail::Torn { pos, junk, .. } = s.tail {
            assert_eq!(pos, s.end_pos);
            assert!(pos + junk <= bytes.len());
        }
    }
    let mid = bytes.len() / 2;
    let _ = chain(&[(0, &bytes[..mid]), (1, &bytes[mid..])], 0, 0, 1);
});
