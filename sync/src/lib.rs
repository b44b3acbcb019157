//! tandem-sync: Tandem's replication machinery, storage-agnostic: it knows nothing of RESP or commands;
//! the server implements its traits and feeds it bytes.
//!
//! Module map:
//! - `backlog`: a shard's bounded ring of recent journal bytes, addressed by absolute offset.
//! - `replid`: 40-hex replication ids, replid2 after promotion, and the PSYNC continue-or-full decision.
//! - `frame`: the checksummed frame every Tandem-to-Tandem replication stream is made of
//!   (docs/replication-format.md).
//!
//! Coming with issue 3: the journal record format, the snapshot format, and the full-sync and ack state
//! machines (no I/O: `step(msg)`, `tick(now)`, outputs to send).

pub mod backlog;
pub mod frame;
pub mod replid;
