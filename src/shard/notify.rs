//! A single-thread notification: tasks of one shard wait for an event another task of that shard signals
//! (a multi-shard lock released, a pause lifted, shutdown). A generation counter means a notify between the
//! creation of a wait and its first poll is never missed.

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::task::{Poll, Waker};

#[derive(Default)]
pub struct Notify {
    generation: Cell<u64>,
    waiters: RefCell<Vec<Waker>>,
}

impl Notify {
    pub fn notify(&self) {
        self.generation.set(self.generation.get() + 1);
        for w in self.waiters.take() {
            w.wake();
        }
    }

    pub fn generation(&self) -> u64 {
        self.generation.get()
    }

    /// Resolves at the first notify after `seen` (a value from `generation()`).
    pub async fn wait_since(&self, seen: u64) {
        poll_fn(|cx| {
            if self.generation.get() != seen {
                Poll::Ready(())
            } else {
                // One entry per waiting task however often it is polled: the list stays bounded.
                let mut w = self.waiters.borrow_mut();
                if !w.iter().any(|x| x.will_wake(cx.waker())) {
                    w.push(cx.waker().clone());
                }
                Poll::Pending
            }
        })
        .await
    }
}
