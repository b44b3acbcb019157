//! Connection migration: a connection whose key commands keep going to one other shard moves to that
//! shard, so its commands run there directly instead of crossing threads twice each (a request message and
//! a reply message, each waking the other thread). Applications commonly work one key, or keys of one hash
//! tag, per connection; without this, with N shards, N-1 of every N such connections pay the hop on every
//! command (Dragonfly migrates connections for the same reason).
//!
//! Invariants:
//! - A connection moves only between commands: every reply so far is written, nothing is held (durability
//!   mode settles before replies are written), and it has no state a shard keeps for it besides its
//!   `ClientInfo` (no MULTI, WATCH, subscription, blocked wait, pending push, replica handshake). What it
//!   has read but not run (the parser's partial command, unparsed bytes) travels with it, so no byte is lost
//!   or reordered.
//! - It moves after `STREAK` consecutive batches that all ran on the same other shard: a connection
//!   spreading its keys over shards never builds such a streak by chance, so it stays where it was accepted.
//! - Its client id, name, database, protocol and counters move with it; `connected_clients` does not change.
//!   While the move's message is in flight the client is in no shard's table (CLIENT LIST may miss it for
//!   that instant; a CLIENT KILL sent then finds nothing).

use super::conn::{Conn, ReplyMode};
use super::Local;
use crate::resp::{Proto, RequestParser};
use crate::runtime::{self, TcpStream};
use crate::shard::mesh::Kind;
use crate::shard::ClientInfo;
use bytes::BytesMut;
use std::cell::RefCell;
use std::rc::Rc;

/// Consecutive batches on one other shard after which a connection moves there.
pub const STREAK: u32 = 32;

/// Where a connection's recent batches ran: the shard, and how many batches in a row ran only there.
#[derive(Debug, Default, Clone, Copy)]
pub struct Affinity {
    shard: usize,
    streak: u32,
}

impl Affinity {
    /// Records a batch that ran entirely on `shard` (None: on several, or none). Returns the shard to move
    /// to once the streak is long enough and that shard is not `me`.
    pub fn note(&mut self, shard: Option<usize>, me: usize) -> Option<usize> {
        match shard {
            Some(s) if s != me => {
                if self.shard == s {
                    self.streak += 1;
                } else {
                    *self = Affinity {
                        shard: s,
                        streak: 1,
                    };
                }
                (self.streak >= STREAK).then_some(s)
            }
            _ => {
                self.streak = 0;
                None
            }
        }
    }

    pub fn reset(&mut self) {
        self.streak = 0;
    }
}

/// Everything of a connection but its shard's handles: what travels to the shard it moves to.
pub struct Moving {
    info: ClientInfo,
    db: usize,
    proto: Proto,
    authed: bool,
    wrote: bool,
    reply_mode: ReplyMode,
    rbuf: BytesMut,
    parser: RequestParser,
}

impl Conn {
    /// Whether the connection holds no state a shard keeps for it (besides its ClientInfo), so it may move.
    pub(super) fn movable(&self) -> bool {
        let info = self.info.borrow();
        self.multi.is_none()
            && self.watched.is_empty()
            && self.subs.is_empty()
            && self.reply_mode == ReplyMode::On
            && !self.closing
            && self.repl.takeover.is_none()
            && self.repl.port == 0
            && self.repl.node_id.is_empty()
            && info.push.is_empty()
            && !info.blocked
            && !info.killed
            && self.local.shard.borrow().settings.migrate_connections
    }
}

/// Hands the connection to shard `to`: it leaves this shard's client table and continues as a task there.
pub async fn hand_over(
    local: Rc<Local>,
    stream: TcpStream,
    conn: Conn,
    rbuf: BytesMut,
    parser: RequestParser,
    to: usize,
) {
    let id = conn.id;
    local.shard.borrow_mut().clients.remove(&id);
    let mut info = std::mem::take(&mut *conn.info.borrow_mut());
    info.waker = None;
    let moving = Moving {
        info,
        db: conn.db,
        proto: conn.proto,
        authed: conn.authed,
        wrote: conn.repl.wrote,
        reply_mode: conn.reply_mode,
        rbuf,
        parser,
    };
    // A duplicate of the descriptor travels by message; ours closes with `stream` (each ring only touches
    // descriptors of its own thread).
    let std_stream = match runtime::detach(&stream) {
        Ok(s) => s,
        Err(e) => return lost(&local, id, to, e),
    };
    drop(stream);
    local.shard.borrow_mut().stats.migrated_connections += 1;
    local.shared.mesh.send(
        to,
        Kind::Normal,
        Box::new(move |_| {
            let local = runtime::current_local();
            match runtime::attach(std_stream) {
                Ok(s) => runtime::spawn(arrive(local, s, moving)).detach(),
                Err(e) => lost(&local, id, to, e),
            }
        }),
    );
}

/// A connection that could not move is closed (its socket is dropped) and no longer counted.
fn lost(local: &Local, id: u64, to: usize, e: std::io::Error) {
    tracing::warn!("Moving client id={id} to shard {to}: {e}");
    local
        .shared
        .connected
        .fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
}

/// The connection's life on the shard it moved to.
async fn arrive(local: Rc<Local>, stream: TcpStream, m: Moving) {
    let id = m.info.id;
    let info = Rc::new(RefCell::new(m.info));
    local.shard.borrow_mut().clients.insert(id, info.clone());
    let mut conn = Conn::new(local.clone(), info, m.authed);
    conn.db = m.db;
    conn.proto = m.proto;
    conn.repl.wrote = m.wrote;
    conn.reply_mode = m.reply_mode;
    super::conn::drive(local, stream, conn, m.rbuf, m.parser).await;
}

#[cfg(test)]
mod tests {
    use super::{Affinity, STREAK};

    #[test]
    fn moves_only_after_a_streak_on_one_other_shard() {
        let mut a = Affinity::default();
        for _ in 0..STREAK - 1 {
            assert_eq!(a.note(Some(1), 0), None);
        }
        assert_eq!(a.note(Some(1), 0), Some(1));
        // A batch on this shard, on several shards, or on another shard starts over.
        for breaker in [Some(0), None, Some(2)] {
            let mut a = Affinity::default();
            for _ in 0..STREAK - 1 {
                a.note(Some(1), 0);
            }
            assert_eq!(a.note(breaker, 0), None);
            assert_eq!(a.note(Some(1), 0), None);
        }
    }

    #[test]
    fn alternating_shards_never_move() {
        let mut a = Affinity::default();
        for i in 0..10 * STREAK {
            assert_eq!(a.note(Some(1 + (i as usize % 2)), 0), None);
        }
    }
}
