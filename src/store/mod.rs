//! Storage owned by one shard: entries, segmented tables, and the keyspace (databases of slots); `reload`
//! rebuilds every collection as a snapshot load would (DEBUG RELOAD).

pub mod dirty;
pub mod entry;
pub mod events;
pub mod glob;
pub mod hooks;
#[cfg(test)]
mod hooks_tests;
pub mod keyspace;
pub mod pack;
pub mod reload;
pub mod segtable;
pub mod stats;
pub mod types;

pub use entry::Entry;
pub use keyspace::{EntryMut, Keyspace};
