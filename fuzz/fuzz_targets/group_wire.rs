//! Any bytes fed to the decoders of what members send each other (`group::wire`) and of what a member
//! keeps on disk (`group::saved`) give a value or an error, never a panic. A decoded message encodes to
//! bytes that decode to the same message (raft's protobuf part need not be byte-identical); saved state
//! re-encodes to exactly its bytes. The input is tried as it is and with a matching checksum appended,
//! so the fuzzer explores the fields behind the checksum.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tandem_sync::group::{saved, wire};

fn check(b: &[u8]) {
    if let Ok(w) = wire::decode(b) {
        assert_eq!(wire::decode(&wire::encode(&w)).as_ref(), Ok(&w));
    }
    if let Ok(s) = saved::decode(b) {
        assert_eq!(saved::encode(&s), b);
    }
}

fuzz_target!(|data: &[u8]| {
    check(data);
    let mut sealed = data.to_vec();
    sealed.extend_from_slice(&crc32c::crc32c(data).to_le_bytes());
    check(&sealed);
});
