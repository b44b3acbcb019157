//! tandem-bench: measurements of Tandem the way operators measure Valkey.
//!
//! Module map:
//! - `load`: the memtier-style load generator: `options` (arguments and their validation), `keys` (key
//!   patterns), `resp` (reply framing and error prefixes), `stats` (HDR histograms per command and per
//!   second), `client` (one connection's request loop), `report` (text and JSON), and `mod.rs` (threads
//!   on the project's runtime, the live line, the end).
//! - `resync`: scenarios that start their own servers and measure replica (re)synchronisation
//!   (`server`, `client`, `scenario`, `chart`).
//! - `faults`: the fault suite: three nodes behind relays, a register workload with a history checker
//!   (`history`), a seeded schedule of kills, stops, cuts and promotions; `auto`, the same with the
//!   servers deciding failover.
//! - `failover`: failover mode's figures: kill -9 of the primary until writes are acknowledged again,
//!   the old primary's rejoin, and what the machinery costs steady-state throughput.
//! - `replcost`: what replication costs a write: WAIT latency after a SET, stream bytes per SET and INCR.
//! - `durability`: durability mode's cost (SET throughput and latency against asynchronous and against
//!   SET + WAIT elsewhere), the writer pause of a grant, and the time to eligible after a restart.

pub mod durability;
pub mod failover;
pub mod faults;
pub mod load;
pub mod replcost;
pub mod resync;
