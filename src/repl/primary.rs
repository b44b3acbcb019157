//! The primary side of replication: a replica's control session, and the per-shard flows it opens.
//!
//! A replica (docs/replication.md) sends PSYNC on its control connection; the answer decides between
//! continuing every shard's journal from the replica's offsets and a full sync. Then it opens, for each
//! primary shard, one connection per stream (`TFLOW`): the snapshot flow (full sync only) and the journal
//! flow. A flow connection is accepted by whichever shard the kernel picked and then handed to the shard
//! whose data it carries, so every shard streams its own partition from its own thread.
//!
//! Bounded memory: a journal flow reads from the shard's backlog and never buffers beyond one frame; a
//! replica too slow for the backlog loses the flow (and resyncs) instead of growing a buffer here.

use super::registry::{ReplicaEntry, ReplicaState};
use crate::resp::RequestParser;
use crate::runtime::Local;
use crate::runtime::{self, TcpStream};
use bytes::BytesMut;
use compio::buf::BufResult;
use compio::io::{AsyncReadExt, AsyncWriteExt};
use futures_util::future::{select, Either};
use futures_util::StreamExt;
use std::pin::pin;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tandem_sync::acks::Ack;
use tandem_sync::frame::{Frame, FrameKind};

/// What a connection turns into after PSYNC or TFLOW.
#[derive(Debug)]
pub enum Takeover {
    Session {
        id: u64,
        node_id: String,
        incarnation: u64,
        ip: String,
        port: u16,
        full: bool,
    },
    Flow {
        session: u64,
        shard: usize,
        kind: FlowKind,
    },
}

#[derive(Debug, Clone, Copy)]
pub enum FlowKind {
    Snapshot { lz4: bool },
    Journal { from: u64, lz4: bool },
}

/// Largest journal frame sent at once.
const JOURNAL_FRAME: usize = 4 << 20;

pub async fn take_over(local: Rc<Local>, stream: TcpStream, t: Takeover) {
    match t {
        Takeover::Session {
            id,
            node_id,
            incarnation,
            ip,
            port,
            full,
        } => session(local, stream, id, (node_id, incarnation), ip, port, full).await,
        Takeover::Flow {
            session,
            shard,
            kind,
        } => {
            if shard == local.id {
                run_flow(local, stream, session, kind).await;
                return;
            }
            // Hand the socket to its shard: a duplicate of the descriptor travels by message, ours closes.
            match runtime::detach(&stream) {
                Ok(std_stream) => {
                    drop(stream);
                    local.shared.mesh.send(
                        shard,
                        crate::shard::mesh::Kind::Normal,
                        Box::new(move |_| {
                            let local = crate::runtime::current_local();
                            match runtime::attach(std_stream) {
                                Ok(s) => runtime::spawn(run_flow(local, s, session, kind)).detach(),
                                Err(e) => tracing::warn!("replication flow: {e}"),
                            }
                        }),
                    );
                }
                Err(e) => tracing::warn!("replication flow: {e}"),
            }
        }
    }
}

async fn run_flow(local: Rc<Local>, stream: TcpStream, session: u64, kind: FlowKind) {
    let res = match kind {
        FlowKind::Snapshot { lz4 } => snapshot_flow(&local, stream, session, lz4).await,
        FlowKind::Journal { from, lz4 } => journal_flow(&local, stream, session, from, lz4).await,
    };
    if let Err(e) = res {
        tracing::info!("shard {}: replication flow ended: {e}", local.id);
    }
}

async fn write_frame(stream: &mut TcpStream, out: BytesMut) -> std::io::Result<BytesMut> {
    let BufResult(res, mut buf) = stream.write_all(out).await;
    res?;
    buf.clear();
    Ok(buf)
}

/// Writes `data`, giving up after `timeout`: a replica that stopped reading (SIGSTOP, a stuck host) must
/// not keep a snapshot's copies alive forever.
async fn write_within(
    stream: &mut TcpStream,
    data: Vec<u8>,
    timeout: Duration,
) -> std::io::Result<()> {
    match select(pin!(stream.write_all(data)), pin!(runtime::sleep(timeout))).await {
        Either::Left((BufResult(res, _), _)) => res,
        Either::Right(_) => Err(std::io::Error::other(format!(
            "the replica read nothing for {}s (repl-timeout): snapshot dropped",
            timeout.as_secs()
        ))),
    }
}

/// The largest payload a snapshot chunk frame carries; a larger chunk (one big value) continues in the
/// next frames (FLAG_MORE).
const CHUNK_FRAME: usize = 4 << 20;

/// A snapshot piece (written after `HEADER_LEN` reserved bytes) as chunk frames starting at byte `sent`
/// of the stream: sealed in place when it fits one frame uncompressed, else split (FLAG_MORE) and
/// optionally compressed. The snapshot flow sends these; a snapshot file holds the same (persist).
pub fn frame_piece(piece: Vec<u8>, shard: u16, sent: u64, lz4: bool) -> Vec<u8> {
    if lz4 || piece.len() - tandem_sync::frame::HEADER_LEN > CHUNK_FRAME {
        let payload = bytes::Bytes::from(piece).slice(tandem_sync::frame::HEADER_LEN..);
        let mut o = BytesMut::new();
        let mut at = 0;
        loop {
            let end = (at + CHUNK_FRAME).min(payload.len());
            Frame {
                kind: FrameKind::SnapshotChunk,
                shard,
                offset: sent + o.len() as u64,
                more: end < payload.len(),
                payload: payload.slice(at..end),
            }
            .encode_with(&mut o, lz4);
            at = end;
            if at >= payload.len() {
                break;
            }
        }
        o.into()
    } else {
        // The piece was written with room for its header: seal it in place, send it as it is.
        let mut piece = piece;
        Frame::seal(&mut piece, FrameKind::SnapshotChunk, shard, sent);
        piece
    }
}

/// Streams this shard's part of the point-in-time snapshot that PSYNC took for `session` (at a cut
/// consistent across shards): the begin frame with its log offset, the slots (copies made by writes first),
/// then the end frame with the key count.
async fn snapshot_flow(
    local: &Rc<Local>,
    mut stream: TcpStream,
    session: u64,
    lz4: bool,
) -> std::io::Result<()> {
    let started = std::time::Instant::now();
    let (snap, corrupt_at, timeout) = {
        let mut sh = local.shard.borrow_mut();
        let Some(snap) = sh.repl.take_pending_snapshot(session) else {
            return Err(std::io::Error::other(format!(
                "no snapshot taken for session {session} on shard {} (expired or already streamed)",
                local.id
            )));
        };
        (
            snap,
            sh.settings.debug_repl_corrupt_chunk,
            Duration::from_secs(sh.settings.repl_timeout_secs.max(1)),
        )
    };
    let (id, point) = (snap.id, snap.point);
    let shard = local.id as u16;
    let guard = SnapshotGuard { local, id };
    let mut out = BytesMut::with_capacity(1 << 20);
    Frame {
        kind: FrameKind::SnapshotBegin,
        shard,
        offset: point,
        more: false,
        // The key count at the snapshot point (exact: the snapshot is point-in-time), for progress.
        payload: snap.keys.to_le_bytes().to_vec().into(),
    }
    .encode(&mut out);
    out = write_frame(&mut stream, out).await?;
    let mut sent = 0u64;
    let mut chunks = 0u64;
    let mut keys;
    loop {
        let piece = {
            let mut sh = local.shard.borrow_mut();
            let Some(s) = sh.ks.snapshot(id) else {
                return Err(std::io::Error::other(
                    "snapshot aborted by FLUSHALL, FLUSHDB or SWAPDB; the replica will retry",
                ));
            };
            // Read before the call that completes the snapshot (and forgets it): that call can only
            // have walked empty slots.
            keys = s.keys;
            sh.ks.snapshot_piece(id)
        };
        let Some(piece) = piece else { break };
        chunks += 1;
        let mut frame = frame_piece(piece, shard, sent, lz4);
        sent += frame.len() as u64;
        if corrupt_at > 0
            && chunks == corrupt_at
            && !local.shared.repl.corrupted.swap(true, Ordering::AcqRel)
        {
            // Test-only (debug-repl-corrupt-chunk): flip a payload bit after the checksum was computed.
            let last = frame.len() - 1;
            frame[last] ^= 0x01;
            tracing::warn!(
                "shard {}: corrupting snapshot chunk {chunks} (debug-repl-corrupt-chunk)",
                local.id
            );
        }
        // One piece (a slot, at most PIECE_BYTES unless one value is larger) per turn: the write's await
        // lets the shard's client connections run between pieces, so a request waits for at most one
        // piece of serialization.
        write_within(&mut stream, frame, timeout).await?;
        yield_now().await;
    }
    Frame {
        kind: FrameKind::SnapshotEnd,
        shard,
        offset: point,
        more: false,
        payload: keys.to_le_bytes().to_vec().into(),
    }
    .encode(&mut out);
    write_within(&mut stream, out.to_vec(), timeout).await?;
    drop(guard);
    tracing::info!(
        "shard {}: snapshot sent: {keys} keys, {sent} bytes in {:.3}s",
        local.id,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Gives the shard's other tasks a turn (a write to a socket with room completes without suspending).
async fn yield_now() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            return std::task::Poll::Ready(());
        }
        yielded = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    })
    .await
}

/// Forgets an unfinished snapshot when its flow ends early, so writes stop copying slots for it.
pub(crate) struct SnapshotGuard<'a> {
    pub(crate) local: &'a Rc<Local>,
    pub(crate) id: u64,
}

impl Drop for SnapshotGuard<'_> {
    fn drop(&mut self) {
        self.local.shard.borrow_mut().ks.end_snapshot(self.id);
    }
}

/// Streams this shard's log from `from`, as it grows, until the replica goes away or falls behind the
/// backlog. The replica's acknowledgements come back on the same connection (Ack frames) and go straight
/// to the registry, so WAIT learns of them within a round trip.
async fn journal_flow(
    local: &Rc<Local>,
    mut stream: TcpStream,
    session: u64,
    from: u64,
    lz4: bool,
) -> std::io::Result<()> {
    let mut at = from;
    let shard = local.id as u16;
    let mut out = BytesMut::with_capacity(64 << 10);
    // The replica holds the log up to where it asked to continue (a partial resync), or will once its
    // snapshot is loaded (a full sync: it cannot be granted before it is live, registry.rs).
    local.shard.borrow_mut().durable_ack(session, from);
    let acks = runtime::spawn(read_acks(local.clone(), stream.clone(), session, local.id));
    let res = async {
        loop {
            if local.shared.shutdown.load(Ordering::Acquire) {
                return Ok(());
            }
            let seen = local.journal.generation();
            let chunk = {
                let mut sh = local.shard.borrow_mut();
                if !sh.locked() {
                    sh.seal_unit();
                }
                let Some(b) = sh.repl.backlog.as_ref() else {
                    return Err(std::io::Error::other("no backlog on this shard"));
                };
                if at < b.first_offset() || at > b.end_offset() {
                    return Err(std::io::Error::other(format!(
                        "offset {at} is no longer in the backlog ({}..{}); the replica must resync",
                        b.first_offset(),
                        b.end_offset()
                    )));
                }
                // With appendfsync always only what is durable here leaves (shard/wal.rs).
                let limit = sh.wal_sendable(b.end_offset()).saturating_sub(at) as usize;
                b.read_from(at).and_then(|(x, y)| {
                    let n = (x.len() + y.len()).min(JOURNAL_FRAME).min(limit);
                    if n == 0 {
                        return None;
                    }
                    let mut v = Vec::with_capacity(n);
                    v.extend_from_slice(&x[..x.len().min(n)]);
                    v.extend_from_slice(&y[..n - v.len()]);
                    Some(v)
                })
            };
            match chunk {
                Some(data) => {
                    let n = data.len() as u64;
                    Frame {
                        kind: FrameKind::Journal,
                        shard,
                        offset: at,
                        more: false,
                        payload: data.into(),
                    }
                    .encode_with(&mut out, lz4);
                    out = write_frame(&mut stream, out).await?;
                    at += n;
                }
                None => {
                    let stop = local.shutdown.generation();
                    select(
                        pin!(local.journal.wait_since(seen)),
                        pin!(local.shutdown.wait_since(stop)),
                    )
                    .await;
                }
            }
        }
    }
    .await;
    drop(acks);
    local.shard.borrow_mut().durable.q.disconnected(session);
    super::eligibility::request_revoke(local, session, "its journal flow ended");
    res
}

/// Reads a journal flow's Ack frames and records them: on this shard at once (durability mode's commit
/// point), and with the replica's entry on shard 0 (WAIT, INFO), one message per read however many acks it
/// held.
async fn read_acks(local: Rc<Local>, mut stream: TcpStream, session: u64, shard: usize) {
    let mut buf = BytesMut::with_capacity(4096);
    loop {
        let mut latest = None;
        loop {
            match Frame::decode(&mut buf) {
                Ok(Some(f)) if f.kind == FrameKind::Ack => latest = Some(f.offset),
                Ok(None) => break,
                _ => return,
            }
        }
        if let Some(offset) = latest {
            local.shard.borrow_mut().durable_ack(session, offset);
            local.shared.mesh.send(
                0,
                crate::shard::mesh::Kind::Normal,
                Box::new(move |sh| {
                    sh.registry
                        .ack_shard(session, shard, offset, runtime::now_ms())
                }),
            );
        }
        if buf.capacity() - buf.len() < 1024 {
            buf.reserve(4096);
        }
        let BufResult(res, b) = stream.append(buf).await;
        buf = b;
        if !matches!(res, Ok(n) if n > 0) {
            return;
        }
    }
}

/// A replica's control connection after PSYNC: registered with shard 0, it carries the replica's
/// `REPLCONF ACK` lines in and `REPLCONF GETACK *` / `PING` out.
async fn session(
    local: Rc<Local>,
    stream: TcpStream,
    id: u64,
    (node_id, incarnation): (String, u64),
    ip: String,
    port: u16,
    full: bool,
) {
    let (poke_tx, mut poke_rx) = futures_channel::mpsc::channel::<()>(1);
    let state = if full {
        ReplicaState::Syncing
    } else {
        ReplicaState::Online
    };
    let n = local.nshards();
    local
        .call(0, crate::shard::mesh::Kind::Normal, move |sh| {
            // The same node in an older session (a reconnect the primary has not noticed yet) stops
            // counting: a new session is ineligible until granted.
            let older: Vec<u64> = sh
                .registry
                .replicas
                .iter()
                .filter(|(_, e)| !node_id.is_empty() && e.node_id == node_id)
                .map(|(&i, _)| i)
                .collect();
            let l = runtime::current_local();
            for o in older {
                super::eligibility::revoke(sh, &l, o, "it reconnected (a new session)");
            }
            sh.registry.replicas.insert(
                id,
                ReplicaEntry {
                    node_id,
                    ip,
                    port,
                    state,
                    ack: Ack {
                        offsets: vec![0; n],
                        at_ms: runtime::now_ms(),
                    },
                    poke: poke_tx,
                    eligible: false,
                    forgotten: false,
                    incarnation,
                    grant_pending: None,
                },
            );
        })
        .await;
    let done = Rc::new(std::cell::Cell::new(false));
    let writer = {
        let mut stream = stream.clone();
        let done = done.clone();
        let local = local.clone();
        runtime::spawn(async move {
            while !done.get() {
                // PINGs come at least three times per repl-timeout, so a replica never takes a healthy
                // primary for a silent one, whatever the two settings are.
                let period = {
                    let s = &local.shard.borrow().settings;
                    (s.repl_ping_period_secs * 1000)
                        .min(s.repl_timeout_secs * 1000 / 3)
                        .max(100)
                };
                let msg: &[u8] = match select(
                    poke_rx.next(),
                    pin!(runtime::sleep(Duration::from_millis(period))),
                )
                .await
                {
                    Either::Left((Some(()), _)) => {
                        b"*3\r\n$8\r\nREPLCONF\r\n$6\r\nGETACK\r\n$1\r\n*\r\n"
                    }
                    Either::Left((None, _)) => return,
                    Either::Right(_) => b"*1\r\n$4\r\nPING\r\n",
                };
                if done.get() {
                    return;
                }
                let BufResult(res, _) = stream.write_all(msg.to_vec()).await;
                if res.is_err() {
                    return;
                }
            }
        })
    };
    let mut stream = stream;
    let mut parser = RequestParser::new();
    let mut buf = BytesMut::with_capacity(4096);
    loop {
        let timeout = local.shard.borrow().settings.repl_timeout_secs;
        if buf.capacity() - buf.len() < 1024 {
            buf.reserve(4096);
        }
        let read = pin!(stream.append(buf));
        let (res, b) = match select(read, pin!(runtime::sleep(Duration::from_secs(timeout)))).await
        {
            Either::Left((BufResult(r, b), _)) => (r, b),
            Either::Right(_) => {
                tracing::warn!("Disconnecting timedout replica (no ACK for {timeout}s): id {id}");
                break;
            }
        };
        buf = b;
        match res {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let mut acks = None;
        while let Ok(Some(cmd)) = parser.next(&mut buf, 1 << 20, true) {
            if cmd.len() >= 4
                && cmd[0].eq_ignore_ascii_case(b"replconf")
                && cmd[1].eq_ignore_ascii_case(b"ack")
            {
                let offsets: Option<Vec<u64>> = std::str::from_utf8(&cmd[3])
                    .ok()
                    .and_then(|s| s.split(',').map(|x| x.parse().ok()).collect());
                if let Some(o) = offsets {
                    acks = Some(o);
                }
                // Failover mode: the epoch the replica knows; newer than ours means replaced.
                let epoch = cmd
                    .get(4)
                    .and_then(|e| std::str::from_utf8(e).ok()?.parse().ok());
                if epoch.is_some_and(|e| local.shared.repl.fence(e)) {
                    tracing::warn!(
                        "Replica {id} acknowledges in a newer group epoch: deposed, serving nothing"
                    );
                }
            }
        }
        if let Some(offsets) = acks {
            local.shared.mesh.send(
                0,
                crate::shard::mesh::Kind::Normal,
                Box::new(move |sh| {
                    if let Some(r) = sh.registry.replicas.get_mut(&id) {
                        r.state = ReplicaState::Online;
                    }
                    sh.registry.ack(id, offsets, runtime::now_ms());
                }),
            );
        }
    }
    done.set(true);
    drop(writer);
    local
        .call(0, crate::shard::mesh::Kind::Normal, move |sh| {
            let l = runtime::current_local();
            super::eligibility::revoke(sh, &l, id, "its link was lost");
            sh.registry.remove(id);
        })
        .await;
    tracing::info!("Connection with replica {id} lost.");
}
