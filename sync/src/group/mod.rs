//! The replication group's control plane, without I/O: the record the group agrees on (members, epoch,
//! primary, eligible set) and the machinery that agrees on it.
//!
//! - `codec`: the bytes of an entry in the control plane's log.
//! - `node`: one node's control plane: raft-rs's RawNode, the primary's lease, the leader's failover rule.
//! - `record`: the record and its compare-and-set entries; the failover candidate rule.
//! - `saved`: the bytes a member keeps across restarts (incarnation, founding voters, raft state and log).
//! - `wire`: the bytes of a message between members.
pub mod codec;
pub mod node;
pub mod record;
pub mod saved;
pub mod wire;
