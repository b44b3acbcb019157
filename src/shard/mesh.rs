//! The mesh: one inbox per shard, shared by all shards. A message is a closure run on the target shard with
//! `&mut Shard`. Senders batch: a connection sends all the commands of a pipeline bound for one shard as one
//! message, and the target drains its whole inbox per wake-up, so a pipeline pays one cross-thread wake-up
//! per shard, not per command.

use super::Shard;
use atomic_waker::AtomicWaker;
use std::sync::Mutex;
use std::task::{Context, Poll};

pub type Job = Box<dyn FnOnce(&mut Shard) + Send>;

/// Where a message stands with respect to multi-shard transactions (see tx.rs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Ordinary work; waits while another transaction holds the shard.
    Normal,
    /// Takes the shard's lock for transaction `tx` (waits its turn), then runs.
    Lock(u64),
    /// Runs under transaction `tx`'s lock.
    InTx(u64),
    /// Runs, then releases transaction `tx`'s lock.
    Unlock(u64),
    /// Lock, run and Unlock in one step: a transaction's part on its last shard, when nothing needs that
    /// shard held after it (runtime/local.rs `begin_tx_with`).
    Once(u64),
}

pub struct Msg {
    pub kind: Kind,
    pub job: Job,
}

#[derive(Default)]
pub struct Inbox {
    queue: Mutex<Vec<Msg>>,
    waker: AtomicWaker,
}

impl Inbox {
    pub fn push(&self, msg: Msg) {
        self.queue.lock().expect("inbox poisoned").push(msg);
        self.waker.wake();
    }

    /// Moves every queued message into `out`; pending (with the waker registered) when there are none.
    pub fn poll_drain(&self, cx: &mut Context<'_>, out: &mut Vec<Msg>) -> Poll<()> {
        self.waker.register(cx.waker());
        let mut q = self.queue.lock().expect("inbox poisoned");
        if q.is_empty() {
            return Poll::Pending;
        }
        std::mem::swap(&mut *q, out);
        Poll::Ready(())
    }
}

pub struct Mesh {
    inboxes: Vec<Inbox>,
}

impl Mesh {
    pub fn new(shards: usize) -> Self {
        Mesh {
            inboxes: (0..shards).map(|_| Inbox::default()).collect(),
        }
    }

    pub fn shards(&self) -> usize {
        self.inboxes.len()
    }

    pub fn send(&self, to: usize, kind: Kind, job: Job) {
        self.inboxes[to].push(Msg { kind, job });
    }

    pub fn inbox(&self, shard: usize) -> &Inbox {
        &self.inboxes[shard]
    }
}
