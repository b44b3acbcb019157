//! The control plane's transport: one outgoing connection per peer, to its client port, carrying each
//! message (group/wire.rs bytes) as the internal command `TGROUP <bytes>`; and that command's handler,
//! which hands what arrives to shard 0's group driver.
//!
//! Raft tolerates lost, repeated and reordered messages, so the transport is best effort: a peer's queue
//! is bounded (the oldest message is dropped when it is full), a broken connection is reopened after a
//! pause, and nothing is retried. Each connection authenticates with `masterauth` when it is set, as a
//! replica's link does.

use crate::cmd::{CmdError, CmdResult};
use crate::repl::net::{command, connect, read_line, write};
use crate::resp::Reply;
use crate::runtime::{self, Local};
use crate::shard::mesh::Kind;
use bytes::{Bytes, BytesMut};
use futures_channel::mpsc;
use futures_util::StreamExt;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;
use tandem_sync::group::record::MemberId;
use tandem_sync::group::wire;

/// Messages a peer's queue holds before the oldest is dropped (raft resends what matters).
const QUEUE: usize = 1024;
/// How long a peer's reply may take before its connection is taken for broken.
const REPLY_TIMEOUT: Duration = Duration::from_secs(2);

struct Peer {
    addr: String,
    tx: mpsc::Sender<Vec<u8>>,
}

/// The outgoing connections, by member id (0: the address a node asks to join through).
#[derive(Default)]
pub struct Peers {
    peers: BTreeMap<MemberId, Peer>,
}

impl Peers {
    /// Queues `bytes` for member `to` at `addr` (a connection to a new address replaces the old one).
    pub fn send(&mut self, to: MemberId, addr: &str, bytes: Vec<u8>, auth: Option<String>) {
        if self.peers.get(&to).is_none_or(|p| p.addr != addr) {
            let (tx, rx) = mpsc::channel(QUEUE);
            runtime::spawn(connection(addr.to_string(), rx, auth)).detach();
            self.peers.insert(
                to,
                Peer {
                    addr: addr.to_string(),
                    tx,
                },
            );
        }
        let p = self.peers.get_mut(&to).expect("inserted above");
        // A full queue means the peer is unreachable or slow: this message is dropped.
        let _ = p.tx.try_send(bytes);
    }
}

/// Sends what `rx` yields to `addr` until the queue's sender is dropped, reconnecting after failures.
async fn connection(addr: String, mut rx: mpsc::Receiver<Vec<u8>>, auth: Option<String>) {
    let mut pending: Option<Vec<u8>> = None;
    loop {
        let Ok(mut s) = open(&addr, auth.as_deref()).await else {
            runtime::sleep(Duration::from_millis(200)).await;
            // Messages queued while the peer was unreachable are stale: raft sends fresh ones.
            while rx.try_recv().is_ok() {}
            continue;
        };
        let mut buf = BytesMut::new();
        loop {
            let first = match pending.take() {
                Some(m) => m,
                None => match rx.next().await {
                    Some(m) => m,
                    None => return,
                },
            };
            let mut out = command(&[b"TGROUP", &first]);
            let mut n = 1;
            while let Ok(m) = rx.try_recv() {
                out.extend_from_slice(&command(&[b"TGROUP", &m]));
                n += 1;
            }
            if write(&mut s, out).await.is_err() || !replies(&mut s, &mut buf, n).await {
                break;
            }
        }
    }
}

async fn open(addr: &str, auth: Option<&str>) -> std::io::Result<runtime::TcpStream> {
    let (host, port) = super::split_addr(addr)
        .ok_or_else(|| std::io::Error::other(format!("bad peer address {addr}")))?;
    let mut s = connect(&host, port, Duration::from_secs(1)).await?;
    if let Some(pass) = auth {
        write(&mut s, command(&[b"AUTH", pass.as_bytes()])).await?;
        let mut buf = BytesMut::new();
        if !replies(&mut s, &mut buf, 1).await {
            return Err(std::io::Error::other("AUTH failed"));
        }
    }
    Ok(s)
}

/// Reads `n` one-line replies; false if one is an error or they do not come in time.
async fn replies(s: &mut runtime::TcpStream, buf: &mut BytesMut, n: usize) -> bool {
    for _ in 0..n {
        match read_line(s, buf, REPLY_TIMEOUT, &|| false).await {
            Ok(l) if !l.starts_with('-') => {}
            Ok(l) => {
                tracing::debug!("group peer refused a message: {l}");
                return false;
            }
            Err(_) => return false,
        }
    }
    true
}

/// `TGROUP <bytes>`: a message from a member (or a node asking to join). Decoded here, handled by shard
/// 0's driver. A node that is not in failover mode refuses it.
pub async fn tgroup(local: &Rc<Local>, a: &[Bytes], r: &mut Reply) -> CmdResult {
    if !local.shard.borrow().settings.failover {
        return Err(CmdError::other(
            "ERR this node is not in failover mode (failover no)",
        ));
    }
    let w =
        wire::decode(&a[1]).map_err(|e| CmdError::other(format!("ERR bad group message: {e}")))?;
    local.shared.mesh.send(
        0,
        Kind::Normal,
        Box::new(move |sh| {
            if let Some(g) = sh.group.as_deref_mut().filter(|g| !g.cut.0) {
                g.inbox.push(w);
                g.wake.notify();
            }
        }),
    );
    r.ok();
    Ok(())
}
