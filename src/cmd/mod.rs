//! Commands. The table (`table.rs`) is data: name, arity, flags, key positions and handler. The flags, not
//! the handlers, decide what is refused under OOM, what needs no AUTH, and what is logged and how
//! (shard/log.rs).
//!
//! Handlers come in two kinds:
//! - `Handler::Key`: runs on the shard that owns the command's keys, synchronously, writing into a `Reply`.
//!   This is the one execution path for client commands (and, with replication, replica apply and WAL
//!   replay): `exec::execute`.
//! - `Handler::Special`: needs the connection or several shards (HELLO, INFO, MSET across shards, ...);
//!   implemented by the server layer, which may send messages to shards.

pub mod args;
pub mod bits;
pub mod block;
pub mod coll;
pub mod dump;
pub mod error;
pub mod events;
pub mod exec;
pub mod hash;
pub mod hll;
pub mod keys;
pub mod list;
pub mod set;
pub mod setops;
pub mod sort;
pub mod strings;
pub mod table;
pub mod zset;

pub use error::{CmdError, CmdResult};
pub use table::{lookup, Flags, Handler, Merge, Spec, Special, TABLE};
