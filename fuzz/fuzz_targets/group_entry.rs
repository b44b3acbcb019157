//! Any bytes fed to the group entry decoder (what a node does with its control-plane log) give an entry or
//! an error, never a panic; an accepted entry re-encodes to exactly the bytes it came from, and applying it
//! to a record either changes the record or leaves it exactly as it was. The input is tried as it is and
//! with a matching checksum appended, so the fuzzer explores the fields behind the checksum.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tandem_sync::group::{codec, record::Record};

fn check(b: &[u8]) {
    let Ok(e) = codec::decode(b) else { return };
    assert_eq!(codec::encode(&e), b);
    let mut r = Record::default();
    let before = r.clone();
    if !matches!(r.apply(&e), Ok(true)) {
        assert_eq!(r, before);
    }
}

fuzz_target!(|data: &[u8]| {
    check(data);
    let mut sealed = data.to_vec();
    sealed.extend_from_slice(&crc32c::crc32c(data).to_le_bytes());
    check(&sealed);
});
