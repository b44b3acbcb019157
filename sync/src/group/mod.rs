//! The replication group's control plane, without I/O: the record the group agrees on (members, epoch,
//! primary, eligible set) and the machinery that agrees on it.
//!
//! - `record`: the record and its compare-and-set entries; the failover candidate rule.
pub mod record;
