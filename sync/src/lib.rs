//! tandem-sync: Tandem's replication machinery, storage-agnostic: it knows nothing of RESP or commands;
//! the server implements its traits and feeds it bytes.
//!
//! Module map:
//! - `backlog`: a shard's bounded ring of recent journal bytes, addressed by absolute offset.
//! - `replid`: 40-hex replication ids, replid2 after promotion, and the PSYNC continue-or-full decision.
//! - `frame`: the checksummed frame every Tandem-to-Tandem replication stream is made of
//!   (docs/replication-format.md).
//! - `link`: a replica's link to its primary as a state machine without I/O (phases, keepalive, acks,
//!   silence, backoff).
//! - `quorum`: durability mode's commit rule on one shard: eligible replicas, their acks, the commit point
//!   and the writes waiting for it (grant, revoke, release), without I/O.
//! - `dirty`: durability mode's keys with uncommitted writes, which reads must wait for.
//! - `snapshot`: the record format of snapshot chunks (one key each).
//! - `spool`: the replica's per-flow journal buffer during a full sync (memory, then a temporary file).
//! - `unit`: the log unit, the commit unit of a shard's log (backlog, journal flows, replica apply, WAL).
//! - `assemble`: a replica's reassembly of multi-shard transactions from their units on several flows.
//! - `acks`: replicas' per-shard acknowledgements, WAIT's count and min-replicas' good count.
//! - `wal`: the write-ahead log: segment format, a shard's writer without I/O, recovery's reading, and a
//!   fault-injecting disk for crash tests.
//! - `group`: the replication group's control plane (record, entries, raft-driven node), without I/O.

pub mod acks;
pub mod assemble;
pub mod backlog;
pub mod dirty;
pub mod frame;
pub mod group;
pub mod link;
pub mod quorum;
pub mod replid;
pub mod snapshot;
pub mod spool;
pub mod unit;
pub mod wal;
