//! A collection's byte form (snapshot records, DUMP payloads): any bytes either decode to a value whose
//! byte form decodes to an equal one, or are refused; never a panic. Tight thresholds make every encoding
//! and conversion reachable.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tandem_server::store::types::{Coll, Limits};

fuzz_target!(|data: &[u8]| {
    let Some((&kind, body)) = data.split_first() else {
        return;
    };
    let lim = Limits {
        hash_entries: 4,
        hash_value: 8,
        set_intset_entries: 4,
        set_entries: 4,
        set_value: 8,
        zset_entries: 4,
        zset_value: 8,
        list_size: 3,
    };
    if let Some(c) = Coll::decode(kind % 6, body, &lim) {
        let mut again = Vec::new();
        c.encode(&mut again);
        let d = Coll::decode(c.kind(), &again, &lim).expect("a value's own byte form decodes");
        assert_eq!(d.digest(), c.digest());
        assert_eq!(d.len(), c.len());
    }
});
