//! The replica end of one primary shard's streams: the snapshot, and the log spooled then applied.

use super::apply::Carry;
use super::load::{finish_one, Loading};
use super::*;
use crate::shard::notify::Notify;
use std::cell::Cell;

/// The replica end of one primary shard's streams.
pub(super) struct Flow {
    pub(super) local: Rc<Local>,
    pub(super) p: Arc<SyncProgress>,
    pub(super) host: String,
    pub(super) port: u16,
    pub(super) session: u64,
    pub(super) i: usize,
    pub(super) n: usize,
}

/// The journal's side of a full sync, shared by a flow's two tasks on its thread.
pub(super) struct Pending {
    pub(super) spool: Spool,
    pub(super) live: bool,
    pub(super) carry: Carry,
    /// The journal connection's acknowledgement writer, once that connection is open.
    pub(super) acks: Option<Rc<Acks>>,
}

/// The one writer of a journal connection's acknowledgements. Whoever advances the flow's applied offset
/// signals it: the journal task per burst of frames, and the snapshot side once it has replayed the
/// spool. The latter matters because a replay may end with no frame left to come (an idle primary), and
/// without its acknowledgement the primary would count the replica behind forever (durability mode would
/// never grant it). One writer, so frames on the connection never interleave.
#[derive(Default)]
pub(super) struct Acks {
    wake: Notify,
    closed: Cell<bool>,
}

impl Acks {
    pub(super) fn signal(&self) {
        self.wake.notify();
    }
}

/// Closes the writer when the journal task ends, however it ends.
struct CloseAcks(Rc<Acks>);

impl Drop for CloseAcks {
    fn drop(&mut self) {
        self.0.closed.set(true);
        self.0.wake.notify();
    }
}

/// Sends flow `i`'s applied offset whenever it moved past what was last sent; ends when the journal task
/// does or the connection fails (the journal's read then fails too).
async fn send_acks(
    mut w: TcpStream,
    acks: Rc<Acks>,
    p: Arc<SyncProgress>,
    i: usize,
    mut acked: u64,
) {
    loop {
        let seen = acks.wake.generation();
        if acks.closed.get() {
            return;
        }
        let applied = p.flows[i].applied.load(Ordering::Acquire);
        if applied == acked {
            acks.wake.wait_since(seen).await;
            continue;
        }
        acked = applied;
        let mut out = BytesMut::new();
        Frame {
            kind: FrameKind::Ack,
            shard: i as u16,
            offset: applied,
            more: false,
            payload: Bytes::new(),
        }
        .encode(&mut out);
        if net::write(&mut w, out.to_vec()).await.is_err() {
            return;
        }
    }
}

impl Flow {
    pub(super) fn progress(&self) -> &FlowProgress {
        &self.p.flows[self.i]
    }

    pub(super) fn never(&self) -> Duration {
        // Streams may be idle for hours; liveness is the control connection's job.
        Duration::from_secs(u32::MAX as u64)
    }

    /// Opens a flow connection; returns it with whatever was read past the AUTH reply (frames).
    async fn open(&self, args: &[&[u8]]) -> io::Result<(TcpStream, BytesMut)> {
        let mut s = net::connect(&self.host, self.port, Duration::from_secs(10)).await?;
        let settings = self.local.shard.borrow().settings.clone();
        let mut args = args.to_vec();
        if settings.repl_lz4 {
            args.push(b"LZ4");
        }
        // Every flow is a connection of its own and authenticates like the control one; AUTH and TFLOW
        // go together, and AUTH's one-line reply comes before the frames.
        let mut out = Vec::new();
        if let Some(pass) = &settings.masterauth {
            out = match &settings.masteruser {
                Some(u) => net::command(&[b"AUTH", u.as_bytes(), pass.as_bytes()]),
                None => net::command(&[b"AUTH", pass.as_bytes()]),
            };
        }
        out.extend(net::command(&args));
        net::write(&mut s, out).await?;
        let mut buf = BytesMut::with_capacity(1 << 20);
        if settings.masterauth.is_some() {
            let p = self.p.clone();
            let line = net::read_line(&mut s, &mut buf, Duration::from_secs(10), &move || {
                p.cancelled()
            })
            .await?;
            if line != "+OK" {
                return Err(err(format!("flow AUTH refused: {line}")));
            }
        }
        Ok((s, buf))
    }

    pub(super) async fn full(
        &self,
        dir: std::path::PathBuf,
        limit: usize,
        name: String,
        key_load_delay_us: u64,
    ) -> io::Result<()> {
        let mut inflight = VecDeque::new();
        let res = self
            .full_sync(dir, limit, name, key_load_delay_us, &mut inflight)
            .await;
        // Chunks already sent to other shards are waited for, whatever happened: none may land after this
        // flow has stopped (a new attempt's flush, or a promotion, comes next).
        while let Some(rx) = inflight.pop_front() {
            let _ = rx.await;
        }
        res
    }

    async fn full_sync(
        &self,
        dir: std::path::PathBuf,
        limit: usize,
        name: String,
        key_load_delay_us: u64,
        inflight: &mut VecDeque<Loading>,
    ) -> io::Result<()> {
        let (sess, idx) = (self.session.to_string(), self.i.to_string());
        let (mut s, mut buf) = self
            .open(&[b"TFLOW", sess.as_bytes(), idx.as_bytes(), b"SNAPSHOT"])
            .await?;
        let p = self.p.clone();
        let cancel = move || p.cancelled();
        let (begin, _) = net::read_frame(&mut s, &mut buf, self.never(), &cancel).await?;
        if begin.kind != FrameKind::SnapshotBegin || begin.shard as usize != self.i {
            return Err(err("snapshot stream did not start with its begin frame"));
        }
        let point = begin.offset;
        if let Some(b) = begin.payload.get(..8) {
            let total = u64::from_le_bytes(b.try_into().expect("8"));
            self.progress()
                .snapshot_total
                .store(total, Ordering::Relaxed);
        }
        self.progress().applied.store(point, Ordering::Release);
        if self.local.nshards() == self.n {
            // This shard mirrors primary shard i: its offset is the snapshot point until units follow
            // (an idle shard must still have the right offset if this node is promoted).
            self.local
                .call(self.i, Kind::Normal, move |sh| sh.reset_journal(point))
                .await;
        }
        self.progress()
            .phase
            .store(Phase::Loading as u8, Ordering::Release);
        let pending = Rc::new(RefCell::new(Pending {
            spool: Spool::new(limit, &dir, name),
            live: false,
            carry: Carry::at(point),
            acks: None,
        }));
        // The journal from the snapshot point, on its own connection, buffered until the snapshot is in.
        let journal = Flow {
            local: self.local.clone(),
            p: self.p.clone(),
            host: self.host.clone(),
            port: self.port,
            session: self.session,
            i: self.i,
            n: self.n,
        };
        self.p.alive.fetch_add(1, Ordering::AcqRel);
        let pj = pending.clone();
        runtime::spawn(async move {
            if let Err(e) = journal.journal(point, Some(pj)).await {
                journal.p.fail(format!("flow {} journal: {e}", journal.i));
            }
            journal.p.alive.fetch_sub(1, Ordering::AcqRel);
        })
        .detach();
        // A chunk larger than a frame (one big value) arrives in several frames.
        let mut partial = BytesMut::new();
        loop {
            let (f, wire) = net::read_frame(&mut s, &mut buf, self.never(), &cancel).await?;
            self.progress()
                .snapshot_bytes
                .fetch_add(wire as u64, Ordering::Relaxed);
            match f.kind {
                FrameKind::SnapshotChunk if f.more => partial.extend_from_slice(&f.payload),
                FrameKind::SnapshotChunk => {
                    let payload = if partial.is_empty() {
                        f.payload
                    } else {
                        partial.extend_from_slice(&f.payload);
                        std::mem::take(&mut partial).freeze()
                    };
                    let keys = self.load_chunk(payload, inflight).await?;
                    self.progress()
                        .snapshot_keys
                        .fetch_add(keys, Ordering::Relaxed);
                    // Test-only (`key-load-delay`): a slow load, without blocking the shard's thread.
                    if key_load_delay_us > 0 && keys > 0 {
                        runtime::sleep(Duration::from_micros(keys * key_load_delay_us)).await;
                    }
                }
                FrameKind::SnapshotEnd => {
                    while let Some(rx) = inflight.pop_front() {
                        let k = finish_one(rx).await?;
                        self.progress()
                            .snapshot_keys
                            .fetch_add(k, Ordering::Relaxed);
                    }
                    let total = f
                        .payload
                        .get(..8)
                        .map_or(0, |b| u64::from_le_bytes(b.try_into().expect("8")));
                    self.progress()
                        .snapshot_total
                        .store(total, Ordering::Relaxed);
                    break;
                }
                k => return Err(err(format!("unexpected {k:?} frame in a snapshot stream"))),
            }
            if self.p.cancelled() {
                return Err(err("cancelled"));
            }
        }
        drop(s);
        self.progress()
            .phase
            .store(Phase::Replaying as u8, Ordering::Release);
        loop {
            let next = pending.borrow_mut().spool.pop()?;
            match next {
                Some((offset, data)) => {
                    let mut carry =
                        std::mem::replace(&mut pending.borrow_mut().carry, Carry::at(0));
                    let r = self.apply(offset, data, &mut carry).await;
                    pending.borrow_mut().carry = carry;
                    r?;
                }
                None => {
                    // No await between the emptiness check and the switch: the journal task cannot
                    // spool anything in between. The drained spool (and its file) goes now, not
                    // when the flow ends.
                    let mut pd = pending.borrow_mut();
                    pd.live = true;
                    pd.spool = Spool::new(0, &dir, String::new());
                    if let Some(a) = &pd.acks {
                        a.signal();
                    }
                    break;
                }
            }
        }
        self.progress()
            .phase
            .store(Phase::Live as u8, Ordering::Release);
        Ok(())
    }

    /// Reads primary shard i's journal from `from`; spools it while `pending` says the snapshot is not
    /// loaded yet, applies it otherwise.
    pub(super) async fn journal(
        &self,
        from: u64,
        pending: Option<Rc<RefCell<Pending>>>,
    ) -> io::Result<()> {
        let (sess, idx, off) = (
            self.session.to_string(),
            self.i.to_string(),
            from.to_string(),
        );
        let (mut s, mut buf) = self
            .open(&[
                b"TFLOW",
                sess.as_bytes(),
                idx.as_bytes(),
                b"JOURNAL",
                off.as_bytes(),
            ])
            .await?;

        let p = self.p.clone();
        let cancel = move || p.cancelled();
        let mut expected = from;
        let mut own_carry = Carry::at(from);
        // Acknowledgements go back on this connection as soon as a frame's units are applied.
        let acks = Rc::new(Acks::default());
        let _close = CloseAcks(acks.clone());
        runtime::spawn(send_acks(
            s.clone(),
            acks.clone(),
            self.p.clone(),
            self.i,
            from,
        ))
        .detach();
        if let Some(pd) = &pending {
            pd.borrow_mut().acks = Some(acks.clone());
        }
        loop {
            let (f, _) = net::read_frame(&mut s, &mut buf, self.never(), &cancel).await?;
            // Checked per frame too: under a steady stream the read never idles long enough for its
            // own check.
            if self.p.cancelled() {
                return Err(err("cancelled"));
            }
            if f.kind != FrameKind::Journal || f.offset != expected {
                return Err(err(format!(
                    "journal frame {:?} at offset {} where {expected} was expected",
                    f.kind, f.offset
                )));
            }
            expected += f.payload.len() as u64;
            match &pending {
                Some(pd) if !pd.borrow().live => {
                    self.progress()
                        .buffered_bytes
                        .fetch_add(f.payload.len() as u64, Ordering::Relaxed);
                    let mut pd = pd.borrow_mut();
                    let before = pd.spool.file_bytes();
                    pd.spool.push(f.offset, f.payload)?;
                    let after = pd.spool.file_bytes();
                    if before == 0 && after > 0 {
                        tracing::info!(
                            "flow {}: the log received while loading goes to a spool file under dir",
                            self.i
                        );
                    }
                    self.progress()
                        .spool_file_bytes
                        .store(after, Ordering::Relaxed);
                }
                Some(pd) => {
                    let mut carry = std::mem::replace(&mut pd.borrow_mut().carry, Carry::at(0));
                    let r = self.apply(f.offset, f.payload, &mut carry).await;
                    pd.borrow_mut().carry = carry;
                    r?;
                }
                None => self.apply(f.offset, f.payload, &mut own_carry).await?,
            }
            // One acknowledgement per burst: when the next frame is already here, its own (higher)
            // acknowledgement follows at once and covers this one.
            if !Frame::buffered(&buf) {
                acks.signal();
            }
        }
    }
}
