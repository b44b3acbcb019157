//! The write-ahead log (docs/persistence.md): each shard writes the same log units its replicas receive to
//! segment files, and a restart replays them after the shard's snapshot.
//!
//! - `segment`: a segment file's header and the reading of its units (torn tail or corruption).
//! - `writer`: one shard's writer as a state machine without I/O (group commit, fsync policy, failure and
//!   undo).
//! - `recover`: the chain of a shard's segments, what to replay from a snapshot's offset.
//! - `sim`: a fault-injecting disk for crash tests.

pub mod recover;
pub mod segment;
pub mod sim;
pub mod writer;

pub use writer::{Fsync, Op, Start, Writer};
