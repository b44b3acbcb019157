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
        }
    }
}

impl Limits {
    /// Whether a list node holding `count` elements in `bytes` may take one more of `len` bytes.
    pub fn list_node_fits(&self, count: usize, bytes: usize, len: usize) -> bool {
        if self.list_size > 0 {
            count < self.list_size as usize
        } else {
            let max = 4096usize << (self.list_size.unsigned_abs().clamp(1, 5) - 1);
            bytes + len + 2 <= max
        }
    }
}
