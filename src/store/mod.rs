//! Storage owned by one shard: entries, segmented tables, and the keyspace (databases of slots).

pub mod dirty;
pub mod entry;
pub mod events;
pub mod glob;
pub mod hooks;
#[cfg(test)]
mod hooks_tests;
pub mod keyspace;
pub mod pack;
pub mod segtable;
pub mod stats;
pub mod types;

pub use entry::Entry;
pub use keyspace::{EntryMut, Keyspace};
