//! When a collection leaves its compact encoding: Valkey's directives (hash-max-listpack-entries and the
//! rest), read from the configuration by each shard.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub hash_entries: usize,
    pub hash_value: usize,
    pub set_intset_entries: usize,
    pub set_entries: usize,
    pub set_value: usize,
    pub zset_entries: usize,
    pub zset_value: usize,
    /// list-max-listpack-size: > 0 elements per node, -1..-5 node bytes of 4 KiB..64 KiB.
    pub list_size: i64,
    /// An element at least this long makes a list a quicklist (Valkey's "plain node" threshold, set by
    /// DEBUG QUICKLIST-PACKED-THRESHOLD; 1 GiB otherwise).
    pub list_packed_threshold: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            hash_entries: 128,
            hash_value: 64,
            set_intset_entries: 512,
            set_entries: 128,
            set_value: 64,
            zset_entries: 128,
            zset_value: 64,
            list_size: -2,
            list_packed_threshold: 1 << 30,
        }
    }
}

impl Limits {
    /// Whether a list node holding `count` elements in `bytes` may take one more of `len` bytes. A count
    /// limit also keeps nodes within 8 KiB (Valkey's SIZE_SAFETY_LIMIT).
    pub fn list_node_fits(&self, count: usize, bytes: usize, len: usize) -> bool {
        let grown = bytes.saturating_add(len + 2);
        if self.list_size > 0 {
            count < self.list_size as usize && grown <= 8192
        } else {
            grown <= self.list_node_bytes()
        }
    }

    fn list_node_bytes(&self) -> usize {
        4096usize << (self.list_size.unsigned_abs().clamp(1, 5) - 1)
    }

    /// Whether a quicklist of one node this full goes back to a listpack: at most half the limit, so a
    /// list near the threshold does not convert back and forth (Valkey's listTypeTryConvertQuicklist).
    pub fn list_node_half(&self, count: usize, bytes: usize) -> bool {
        if self.list_size > 0 {
            count <= self.list_size as usize / 2
        } else {
            bytes <= self.list_node_bytes() / 2
        }
    }
}
