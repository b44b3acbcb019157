//! Tandem: a Valkey-compatible in-memory key-value server, thread-per-core and shared-nothing.
//!
//! Module map (the tree reads like the architecture, see docs/architecture.md):
//! - `runtime`: the thin layer over compio (io_uring): shard threads, SO_REUSEPORT listeners, timers, and
//!   `local`, the per-shard `Local` handle (direct calls, messages, transactions `Tx`, combined ones).
//! - `server`: start-up, connections (`conn`; `dispatch` of their commands, `migrate` to their keys' shard),
//!   and the commands that need a connection or several shards
//!   (`special`, `split`, `gathered`, `across`, `keyspace_wide`, `multi`, `sort`, `info`, `client_cmd`,
//!   `debug`, `introspect`).
//! - `shard`: a shard's state (`Shard`), its `log` (commit units), its inbox in the `mesh`, multi-shard
//!   transaction locks (`tx`), counters (`stats`), and a single-thread `notify`.
//! - `cmd`: the command table (data) and its keyspace `events`, argument helpers, typed errors, the one
//!   execution path (`exec`), and the key commands (`strings`, `keys`, the collection types' handlers).
//! - `repl`: replication: the primary's flows, the replica's controller and flows, how units apply, WAIT,
//!   INFO replication (the storage-agnostic parts are in the tandem-sync crate).
//! - `persist`: the write-ahead log, snapshots and recovery (formats in tandem-sync's `wal`).
//! - `store`: storage a shard owns: compact entries, segmented tables, the keyspace of slots, and what a
//!   command's writes mean besides the table (`hooks`: log, snapshots, WATCH, keyspace `events`).
//! - `resp`: request parser and reply encoder (RESP2/RESP3).
//! - `config`: the directive table, config files, CONFIG GET/SET.
//! - `slot`: CRC16 hash slots and their ranges per shard.
//! - `alloc`: the counting global allocator behind used_memory and maxmemory.

pub mod alloc;
pub mod cmd;
pub mod config;
pub mod persist;
pub mod repl;
pub mod resp;
pub mod runtime;
pub mod server;
pub mod shard;
pub mod slot;
pub mod store;
