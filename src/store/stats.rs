//! What a shard's keyspace counts for INFO: expired keys, and the running command's lookups.

#[derive(Default, Debug, Clone, Copy)]
pub struct ExpireStats {
    pub expired: u64,
}

/// Lookups of the running command (`Keyspace::get`): the execution path counts them as keyspace hits
/// and misses when the command is a read, as Valkey counts a read command's lookups and not a write's.
#[derive(Default, Debug, Clone, Copy)]
pub struct Lookups {
    pub hits: u64,
    pub misses: u64,
}
