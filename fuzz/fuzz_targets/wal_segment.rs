//! The WAL reader on arbitrary bytes: scanning a segment and chaining segments never panics, and every
//! unit it returns decodes whole at the offset and position it names.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tandem_sync::unit::Unit;
use tandem_sync::wal::recover::chain;
use tandem_sync::wal::segment::scan;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = scan(data) {
        let mut at = s.header.start;
        for u in &s.units {
            assert_eq!(u.offset, at);
            let unit = Unit::decode(&data[u.pos..]).unwrap().unwrap();
            assert_eq!((unit.start, unit.len()), (u.offset, u.len));
            at += u.len as u64;
        }
        assert_eq!(at, s.end);
    }
    // Two segments cut from the same bytes.
    let mid = data.len() / 2;
    let _ = chain(&[(0, &data[..mid]), (1, &data[mid..])], 0, 0, 1);
});
