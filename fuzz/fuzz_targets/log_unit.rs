//! Any byte sequence fed to the log-unit stream splitter (what a replica does with journal frames, and
//! what WAL recovery will do with a file) must yield whole checked units, wait for more, or give an error:
//! never panic, never loop, never allocate from a corrupt length. Every accepted unit re-encodes to exactly
//! its bytes, and `Unit::trusted` reads the same header `decode` checked.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tandem_sync::unit::{split_units, Unit, UnitWriter};

fuzz_target!(|data: &[u8]| {
    let mut units = Vec::new();
    let mut next = data.get(8..16).map_or(0, |b| u64::from_le_bytes(b.try_into().unwrap()));
    let Ok(used) = split_units(data, &mut next, &mut units) else { return };
    assert!(used <= data.len());
    for u in units {
        assert_eq!(Unit::trusted(u.bytes), u);
        let mut w = UnitWriter::default();
        w.set_time(u.time);
        if let Some(t) = u.tx {
            w.begin_tx(t);
        }
        for r in u.records() {
            let r = r.expect("decode checked every record");
            w.record(r.db, &r.args);
        }
        assert_eq!(w.seal(u.start).expect("a unit"), u.bytes);
    }
});
