//! Hash slots: Redis Cluster's CRC16 (XMODEM) of the key, or of its `{hash tag}`, modulo 16384.

pub const SLOTS: usize = 16384;

/// CRC16/XMODEM (poly 0x1021, init 0), the checksum Redis Cluster hashes keys with. The `crc` crate's
/// slicing-by-16 tables make it a few cycles per byte; it runs once or twice per command.
static CRC16: crc::Crc<u16, crc::Table<16>> =
    crc::Crc::<u16, crc::Table<16>>::new(&crc::CRC_16_XMODEM);

pub fn crc16(data: &[u8]) -> u16 {
    CRC16.checksum(data)
}

/// The part of the key that is hashed: the content of the first `{...}` if it is non-empty, else the key.
pub fn hash_tag(key: &[u8]) -> &[u8] {
    if let Some(open) = memchr::memchr(b'{', key) {
        if let Some(len) = memchr::memchr(b'}', &key[open + 1..]) {
            if len > 0 {
                return &key[open + 1..open + 1 + len];
            }
        }
    }
    key
}

pub fn key_slot(key: &[u8]) -> u16 {
    crc16(hash_tag(key)) & (SLOTS as u16 - 1)
}

/// Slots are split into contiguous ranges, one per shard, so that a shard's partition is one range.
pub fn slot_owner(slot: u16, shards: usize) -> usize {
    slot as usize * shards / SLOTS
}

/// The first slot owned by `shard`, and one past its last.
pub fn shard_slots(shard: usize, shards: usize) -> std::ops::Range<usize> {
    let first = (shard * SLOTS).div_ceil(shards);
    let end = ((shard + 1) * SLOTS).div_ceil(shards);
    first..end
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc16_reference_vectors() {
        // The reference value from the Redis Cluster specification.
        assert_eq!(crc16(b"123456789"), 0x31C3);
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"bar"), 5061);
        assert_eq!(key_slot(b""), 0);
    }

    #[test]
    fn hash_tags() {
        assert_eq!(
            key_slot(b"{user1000}.following"),
            key_slot(b"{user1000}.followers")
        );
        assert_eq!(hash_tag(b"foo{}{bar}"), b"foo{}{bar}");
        assert_eq!(hash_tag(b"foo{{bar}}zap"), b"{bar");
        assert_eq!(hash_tag(b"foo{bar}{zap}"), b"bar");
    }

    #[test]
    fn ranges_partition_the_slots() {
        for shards in 1..=7 {
            let mut next = 0;
            for s in 0..shards {
                let r = shard_slots(s, shards);
                assert_eq!(r.start, next);
                for slot in [r.start, r.end - 1] {
                    assert_eq!(
                        slot_owner(slot as u16, shards),
                        s,
                        "shards={shards} slot={slot}"
                    );
                }
                next = r.end;
            }
            assert_eq!(next, SLOTS);
        }
    }
}
