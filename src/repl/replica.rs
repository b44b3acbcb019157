//! The replica side: a controller on shard 0 that keeps the link to the primary (handshake, PSYNC, ACKs,
//! reconnects), and per primary shard a flow that loads the snapshot and applies the journal.
//!
//! Full sync, parallel and dual-channel: flow `i` (primary shard i) runs on replica shard `i % M` and has
//! two connections: the snapshot stream, loaded as it arrives (records routed by slot to whichever replica
//! shard owns them), and the journal stream from the snapshot point, kept in a spool (memory, then a file
//! under `dir`) until the snapshot is loaded and then applied. The replica answers LOADING until every
//! flow is live; any failure (bad frame, lost connection, primary refusing) cancels every flow, logs the
//! reason, and the next attempt (at once, then backing off) starts again from an empty dataset: a
//! half-loaded dataset is never served as complete.

use super::journal::{self, Record};
use super::net::{self, err};
use super::{gate, LinkStatus};
use crate::cmd::exec::{execute_part, Exec};
use crate::resp::{Proto, Reply, RequestParser};
use crate::runtime::{self, TcpStream};
use crate::server::Local;
use crate::shard::mesh::Kind;
use crate::shard::Shard;
use crate::slot::{key_slot, shard_slots, slot_owner};
use crate::store::Entry;
use bytes::{Bytes, BytesMut};
use compio::buf::BufResult;
use compio::io::AsyncReadExt;
use futures_util::future::{select, Either};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::io;
use std::pin::pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tandem_sync::frame::FrameKind;
use tandem_sync::replid::ReplId;
use tandem_sync::spool::Spool;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    Connecting = 0,
    Loading = 1,
    Replaying = 2,
    Live = 3,
}

impl Phase {
    pub fn name(v: u8) -> &'static str {
        match v {
            0 => "connecting",
            1 => "loading",
            2 => "replaying",
            _ => "live",
        }
    }
}

#[derive(Default)]
pub struct FlowProgress {
    /// Journal offset of primary shard i applied here (a record boundary).
    pub applied: AtomicU64,
    pub phase: AtomicU8,
    pub snapshot_bytes: AtomicU64,
    pub snapshot_keys: AtomicU64,
    /// Keys the primary said its snapshot holds (0 until the end frame).
    pub snapshot_total: AtomicU64,
    pub buffered_bytes: AtomicU64,
}

/// One link attempt's flows, shared by the threads that run them.
pub struct SyncProgress {
    pub flows: Vec<FlowProgress>,
    pub full: bool,
    pub started: Instant,
    pub finished_ms: AtomicU64,
    failed: Mutex<Option<String>>,
    cancelled: AtomicBool,
    alive: AtomicUsize,
}

impl SyncProgress {
    fn new(n: usize, full: bool, from: &[u64]) -> Self {
        let flows: Vec<FlowProgress> = (0..n).map(|_| FlowProgress::default()).collect();
        for (f, &o) in flows.iter().zip(from) {
            f.applied.store(o, Ordering::Relaxed);
        }
        SyncProgress {
            flows,
            full,
            started: Instant::now(),
            finished_ms: AtomicU64::new(0),
            failed: Mutex::new(None),
            cancelled: AtomicBool::new(false),
            alive: AtomicUsize::new(0),
        }
    }

    pub fn cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Acquire)
    }

    fn fail(&self, why: String) {
        let mut f = self.failed.lock().expect("progress lock");
        if f.is_none() {
            *f = Some(why);
        }
        self.cancelled.store(true, Ordering::Release);
    }

    fn failure(&self) -> Option<String> {
        self.failed.lock().expect("progress lock").clone()
    }

    /// CLIENT KILL TYPE master: ends the attempt now (flows and control notice at once).
    pub fn kill(&self) {
        self.fail("link killed (CLIENT KILL TYPE master)".into());
    }

    /// Ends this attempt's flows (a new REPLICAOF, or a link restart).
    pub fn cancel(&self) {
        self.fail("replication restarted".into());
    }

    /// Resolves once no flow of this attempt runs any more (bounded: flows notice within 100 ms).
    pub async fn wait_stopped(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.alive.load(Ordering::Acquire) > 0 && Instant::now() < deadline {
            runtime::sleep(Duration::from_millis(5)).await;
        }
    }

    pub fn all_live(&self) -> bool {
        self.flows
            .iter()
            .all(|f| f.phase.load(Ordering::Acquire) == Phase::Live as u8)
    }

    pub fn offsets(&self) -> Vec<u64> {
        self.flows
            .iter()
            .map(|f| f.applied.load(Ordering::Acquire))
            .collect()
    }
}

/// Starts (or restarts) following `host:port`; runs on shard 0.
pub fn start(local: &Rc<Local>, host: String, port: u16) {
    let gen = {
        let mut sh = local.shard.borrow_mut();
        sh.link_gen += 1;
        let cached = sh.link.take().and_then(|l| l.cached);
        sh.link = Some(LinkStatus::new(host, port, sh.link_gen, cached));
        sh.link_gen
    };
    local.shared.repl.is_replica.store(true, Ordering::Release);
    gate::update(&local.shared, &local.shard.borrow().settings);
    runtime::spawn(controller(local.clone(), gen)).detach();
}

/// Stops following (REPLICAOF NO ONE); runs on shard 0. The running controller notices the generation
/// change and cancels its flows.
pub fn stop(local: &Rc<Local>) {
    let mut sh = local.shard.borrow_mut();
    sh.link_gen += 1;
    if let Some(l) = sh.link.take() {
        if let Some(p) = l.progress {
            p.fail("replication stopped (REPLICAOF NO ONE)".into());
        }
    }
    local.shared.repl.is_replica.store(false, Ordering::Release);
    local.shared.repl.loading.store(false, Ordering::Release);
    local.shared.repl.link_up.store(false, Ordering::Release);
    gate::update(&local.shared, &sh.settings);
}

/// The progress of the current link's attempt: cancelled and stopped, and what a reconnect may continue
/// from (a completed sync's offsets), for a REPLICAOF that changes primary.
pub async fn halt(local: &Rc<Local>) -> Option<(ReplId, Vec<u64>)> {
    let (progress, replid, cached) = {
        let sh = local.shard.borrow();
        let l = sh.link.as_ref()?;
        (l.progress.clone(), l.replid, l.cached.clone())
    };
    let Some(p) = progress else { return cached };
    p.cancel();
    p.wait_stopped().await;
    let complete = !p.full || p.finished_ms.load(Ordering::Acquire) > 0;
    match (complete, replid) {
        (true, Some(id)) => Some((id, p.offsets())),
        _ => None,
    }
}

/// Runs `f` on the link status if it still belongs to generation `gen` (a stale attempt must not touch
/// the status of the link that replaced it).
fn with_link(local: &Local, gen: u64, f: impl FnOnce(&mut LinkStatus)) {
    if let Some(l) = local
        .shard
        .borrow_mut()
        .link
        .as_mut()
        .filter(|l| l.gen == gen)
    {
        f(l);
    }
}

fn current(local: &Local, gen: u64) -> bool {
    local.shard.borrow().link_gen == gen
}

/// Delay before reconnect attempt number `failures` (1-based) in a row: the first at once (a killed link
/// comes back by partial resync within milliseconds), then backing off to a second.
fn retry_delay(failures: u32) -> Duration {
    Duration::from_millis(match failures {
        0 | 1 => 0,
        2 => 100,
        3 => 250,
        4 => 500,
        _ => 1000,
    })
}

async fn controller(local: Rc<Local>, gen: u64) {
    let mut failures = 0u32;
    while current(&local, gen) {
        let started = Instant::now();
        let res = attempt(&local, gen).await;
        if !current(&local, gen) {
            return;
        }
        // A link that lived a while was healthy: its loss starts a new series of retries.
        failures = if started.elapsed() > Duration::from_secs(5) {
            1
        } else {
            failures + 1
        };
        let delay = retry_delay(failures);
        if let Err(e) = res {
            tracing::warn!(
                "MASTER <-> REPLICA sync: {e}; retrying in {} ms",
                delay.as_millis()
            );
        }
        local.shared.repl.link_up.store(false, Ordering::Release);
        gate::update(&local.shared, &local.shard.borrow().settings);
        with_link(&local, gen, |l| {
            l.up = false;
        });
        runtime::sleep(delay).await;
    }
}

/// Sends one command and reads its one-line reply; an error reply is an error.
async fn ask(
    s: &mut TcpStream,
    buf: &mut BytesMut,
    args: &[&[u8]],
    timeout: Duration,
    cancel: &impl Fn() -> bool,
) -> io::Result<String> {
    net::write(s, net::command(args)).await?;
    let line = net::read_line(s, buf, timeout, cancel).await?;
    if let Some(e) = line.strip_prefix('-') {
        return Err(err(format!(
            "MASTER aborted replication with an error: {e}"
        )));
    }
    Ok(line)
}

async fn attempt(local: &Rc<Local>, gen: u64) -> io::Result<()> {
    let (host, port, settings, cached) = {
        let sh = local.shard.borrow();
        let l = sh.link.as_ref().ok_or_else(|| err("no link"))?;
        (
            l.host.clone(),
            l.port,
            sh.settings.clone(),
            l.cached.clone(),
        )
    };
    let timeout = Duration::from_secs(settings.repl_timeout_secs);
    let cancel = || !current(local, gen);
    tracing::info!("Connecting to MASTER {host}:{port}");
    let mut s = net::connect(&host, port, timeout.min(Duration::from_secs(10))).await?;
    let mut buf = BytesMut::with_capacity(4096);
    if let Some(pass) = &settings.masterauth {
        match &settings.masteruser {
            Some(u) => {
                ask(
                    &mut s,
                    &mut buf,
                    &[b"AUTH", u.as_bytes(), pass.as_bytes()],
                    timeout,
                    &cancel,
                )
                .await?
            }
            None => {
                ask(
                    &mut s,
                    &mut buf,
                    &[b"AUTH", pass.as_bytes()],
                    timeout,
                    &cancel,
                )
                .await?
            }
        };
    }
    ask(&mut s, &mut buf, &[b"PING"], timeout, &cancel).await?;
    let my_port = local.shared.port.to_string();
    ask(
        &mut s,
        &mut buf,
        &[b"REPLCONF", b"listening-port", my_port.as_bytes()],
        timeout,
        &cancel,
    )
    .await?;
    ask(
        &mut s,
        &mut buf,
        &[
            b"REPLCONF",
            b"capa",
            b"eof",
            b"capa",
            b"psync2",
            b"capa",
            b"tandem1",
        ],
        timeout,
        &cancel,
    )
    .await?;
    let (id_arg, off_arg, n_arg, list) = match &cached {
        Some((id, offs)) => (
            id.as_str().to_string(),
            (offs.iter().sum::<u64>() + 1).to_string(),
            offs.len().to_string(),
            offs.iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(","),
        ),
        None => ("?".into(), "-1".into(), "0".into(), "-".into()),
    };
    let line = ask(
        &mut s,
        &mut buf,
        &[
            b"PSYNC",
            id_arg.as_bytes(),
            off_arg.as_bytes(),
            b"TANDEM",
            n_arg.as_bytes(),
            list.as_bytes(),
        ],
        timeout,
        &cancel,
    )
    .await?;
    let words: Vec<&str> = line.trim_start_matches('+').split(' ').collect();
    let (full, replid, session, n) = match words[..] {
        ["FULLRESYNC", id, _total, session, n] => (true, id, session, n),
        ["CONTINUE", id, session, n] => (false, id, session, n),
        _ => return Err(err(format!("unexpected PSYNC reply: {line}"))),
    };
    let replid = ReplId::parse(replid.as_bytes()).ok_or_else(|| err("bad replication id"))?;
    let session: u64 = session.parse().map_err(|_| err("bad session"))?;
    let n: usize = n.parse().map_err(|_| err("bad shard count"))?;
    if n == 0 || n > 4096 {
        return Err(err("bad shard count"));
    }
    let from = if full {
        vec![0; n]
    } else {
        cached
            .map(|c| c.1)
            .filter(|o| o.len() == n)
            .ok_or_else(|| err("CONTINUE without matching offsets"))?
    };
    if full {
        tracing::info!("Full resync from master: {replid}, {n} primary shards");
        local.shared.repl.loading.store(true, Ordering::Release);
        gate::update(&local.shared, &settings);
        // Whatever was here is replaced: flush before any flow loads.
        local
            .broadcast(move |sh| {
                for d in 0..sh.ks.databases() {
                    sh.ks.flush_db(d);
                }
                become_replica(sh, replid);
            })
            .await;
    } else {
        tracing::info!("Successful partial resynchronization with master {replid}");
        local.broadcast(move |sh| become_replica(sh, replid)).await;
    }
    let progress = Arc::new(SyncProgress::new(n, full, &from));
    with_link(local, gen, |l| {
        l.progress = Some(progress.clone());
        l.primary_shards = n;
        l.replid = Some(replid);
        l.last_io_ms = runtime::now_ms();
    });
    let m = local.nshards();
    for (i, &from_i) in from.iter().enumerate() {
        let p = progress.clone();
        let host = host.clone();
        let dir = settings.dir.clone();
        let limit = settings.repl_sync_buffer_memory;
        let spool_name = format!("{}-{i}", local.shared.run_id);
        p.alive.fetch_add(1, Ordering::AcqRel);
        local.shared.mesh.send(
            i % m,
            Kind::Normal,
            Box::new(move |_| {
                let local = crate::server::current_local();
                let flow = Flow {
                    local,
                    p,
                    host,
                    port,
                    session,
                    i,
                    n,
                };
                runtime::spawn(async move {
                    let res = if full {
                        flow.full(dir, limit, spool_name).await
                    } else {
                        flow.p.flows[i]
                            .phase
                            .store(Phase::Live as u8, Ordering::Release);
                        flow.journal(from_i, None).await
                    };
                    if let Err(e) = res {
                        flow.p.fail(format!("flow {i}: {e}"));
                    }
                    flow.p.alive.fetch_sub(1, Ordering::AcqRel);
                })
                .detach();
            }),
        );
    }
    let res = control(local, gen, &mut s, buf, &progress, &settings).await;
    progress.fail(match &res {
        Ok(()) => "link closed".into(),
        Err(e) => e.to_string(),
    });
    // No flow may touch the data after this attempt ends (the next one may flush it).
    progress.wait_stopped().await;
    // A completed sync can be continued from where its flows stopped; an incomplete full sync cannot.
    let cached = (!progress.full || progress.finished_ms.load(Ordering::Acquire) > 0)
        .then(|| (replid, progress.offsets()));
    with_link(local, gen, |l| {
        l.cached = cached;
        l.up = false;
    });
    res
}

fn become_replica(sh: &mut Shard, replid: ReplId) {
    sh.reset_journal(0);
    sh.repl.is_replica = true;
    sh.repl.identity.replid = replid;
    sh.ks.passive_expiry = true;
    sh.ks.hooks.snapshots.clear();
}

/// The link is up: every flow is live (LOADING lifted, INFO and ROLE say so).
fn go_live(local: &Local, gen: u64, p: &SyncProgress, settings: &crate::config::Settings) {
    p.finished_ms.store(runtime::now_ms(), Ordering::Release);
    local.shared.repl.loading.store(false, Ordering::Release);
    local.shared.repl.link_up.store(true, Ordering::Release);
    gate::update(&local.shared, settings);
    with_link(local, gen, |l| {
        l.up = true;
    });
    tracing::info!(
        "MASTER <-> REPLICA sync: Finished with success ({} in {:.3}s)",
        if p.full {
            "full sync"
        } else {
            "partial resync"
        },
        p.started.elapsed().as_secs_f64()
    );
}

fn ack_command(p: &SyncProgress) -> Vec<u8> {
    let offs = p.offsets();
    let total = offs.iter().sum::<u64>().to_string();
    let list = offs
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(",");
    net::command(&[b"REPLCONF", b"ACK", total.as_bytes(), list.as_bytes()])
}

/// The control connection after PSYNC: answers GETACK, acknowledges every second once live, watches
/// the flows, the primary's silence (repl-timeout) and the generation (REPLICAOF changes).
async fn control(
    local: &Rc<Local>,
    gen: u64,
    s: &mut TcpStream,
    mut buf: BytesMut,
    p: &Arc<SyncProgress>,
    settings: &crate::config::Settings,
) -> io::Result<()> {
    let timeout = Duration::from_secs(settings.repl_timeout_secs);
    let mut w = s.clone();
    let mut parser = RequestParser::new();
    let mut last_io = Instant::now();
    let mut last_ack = Instant::now();
    let mut live = false;
    // A partial resync's flows are live from the start: no need to wait for the first tick.
    if p.all_live() {
        live = true;
        go_live(local, gen, p, settings);
        net::write(&mut w, ack_command(p)).await?;
    }
    loop {
        if buf.capacity() - buf.len() < 1024 {
            buf.reserve(4096);
        }
        let mut read = pin!(s.append(std::mem::take(&mut buf)));
        loop {
            match select(
                read.as_mut(),
                pin!(runtime::sleep(Duration::from_millis(10))),
            )
            .await
            {
                Either::Left((BufResult(res, b), _)) => {
                    buf = b;
                    match res {
                        Ok(0) => return Err(err("connection with master lost")),
                        Err(e) => return Err(e),
                        Ok(_) => {}
                    }
                    last_io = Instant::now();
                    with_link(local, gen, |l| {
                        l.last_io_ms = runtime::now_ms();
                    });
                    break;
                }
                Either::Right(_) => {
                    if !current(local, gen) {
                        return Ok(());
                    }
                    if let Some(why) = p.failure() {
                        return Err(err(why));
                    }
                    if last_io.elapsed() > timeout {
                        return Err(err("MASTER timeout: no data nor PING received"));
                    }
                    if !live && p.all_live() {
                        live = true;
                        go_live(local, gen, p, settings);
                        net::write(&mut w, ack_command(p)).await?;
                        last_ack = Instant::now();
                    }
                    if live && last_ack.elapsed() >= Duration::from_secs(1) {
                        net::write(&mut w, ack_command(p)).await?;
                        last_ack = Instant::now();
                    }
                }
            }
        }
        while let Ok(Some(cmd)) = parser.next(&mut buf, 1 << 20, true) {
            if live
                && cmd.len() >= 2
                && cmd[0].eq_ignore_ascii_case(b"replconf")
                && cmd[1].eq_ignore_ascii_case(b"getack")
            {
                net::write(&mut w, ack_command(p)).await?;
                last_ack = Instant::now();
            }
        }
    }
}

/// The replica end of one primary shard's streams.
struct Flow {
    local: Rc<Local>,
    p: Arc<SyncProgress>,
    host: String,
    port: u16,
    session: u64,
    i: usize,
    n: usize,
}

/// The journal's side of a full sync, shared by a flow's two tasks on its thread.
struct Pending {
    spool: Spool,
    live: bool,
    carry: BytesMut,
}

impl Flow {
    fn progress(&self) -> &FlowProgress {
        &self.p.flows[self.i]
    }

    fn never(&self) -> Duration {
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

    async fn full(&self, dir: std::path::PathBuf, limit: usize, name: String) -> io::Result<()> {
        let (sess, idx) = (self.session.to_string(), self.i.to_string());
        let (mut s, mut buf) = self
            .open(&[b"TFLOW", sess.as_bytes(), idx.as_bytes(), b"SNAPSHOT"])
            .await?;
        let p = self.p.clone();
        let cancel = move || p.cancelled();
        let begin = net::read_frame(&mut s, &mut buf, self.never(), &cancel).await?;
        let mut inflight = VecDeque::new();
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
        self.progress()
            .phase
            .store(Phase::Loading as u8, Ordering::Release);
        let pending = Rc::new(RefCell::new(Pending {
            spool: Spool::new(limit, &dir, name),
            live: false,
            carry: BytesMut::new(),
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
        loop {
            let f = net::read_frame(&mut s, &mut buf, self.never(), &cancel).await?;
            match f.kind {
                FrameKind::SnapshotChunk => {
                    let keys = self.load_chunk(f.payload.clone(), &mut inflight).await?;
                    self.progress()
                        .snapshot_bytes
                        .fetch_add(f.payload.len() as u64, Ordering::Relaxed);
                    self.progress()
                        .snapshot_keys
                        .fetch_add(keys, Ordering::Relaxed);
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
                    let mut carry = std::mem::take(&mut pending.borrow_mut().carry);
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
    async fn journal(&self, from: u64, pending: Option<Rc<RefCell<Pending>>>) -> io::Result<()> {
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
        let mut own_carry = BytesMut::new();
        loop {
            let f = net::read_frame(&mut s, &mut buf, self.never(), &cancel).await?;
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
                    pd.borrow_mut().spool.push(f.offset, f.payload)?;
                }
                Some(pd) => {
                    let mut carry = std::mem::take(&mut pd.borrow_mut().carry);
                    let r = self.apply(f.offset, f.payload, &mut carry).await;
                    pd.borrow_mut().carry = carry;
                    r?;
                }
                None => self.apply(f.offset, f.payload, &mut own_carry).await?,
            }
        }
    }

    /// Loads one snapshot chunk on the replica shard that owns its slot, which parses it and builds the
    /// entries itself (its allocator, its cache). A chunk for this thread's shard is loaded right away;
    /// others travel by message, up to `WINDOW` in flight so reading the socket does not wait for them.
    async fn load_chunk(
        &self,
        payload: Bytes,
        inflight: &mut VecDeque<Loading>,
    ) -> io::Result<u64> {
        let (slot, _) = tandem_sync::snapshot::chunk(&payload).map_err(|e| err(e.to_string()))?;
        let t = slot_owner(slot, self.local.nshards());
        if t == self.local.id {
            return self
                .local
                .call(t, Kind::Normal, move |sh| load_into(sh, &payload))
                .await
                .map_err(err);
        }
        inflight.push_back(
            self.local
                .send_call(t, Kind::Normal, move |sh| load_into(sh, &payload)),
        );
        let mut keys = 0;
        while inflight.len() > WINDOW {
            if let Some(rx) = inflight.pop_front() {
                keys += finish_one(rx).await?;
            }
        }
        Ok(keys)
    }

    /// Applies journal bytes at `offset`: whole records go to the shards that own their keys; a replica
    /// shard whose slots are exactly primary shard i's also keeps the bytes verbatim in its backlog.
    async fn apply(&self, offset: u64, data: Bytes, carry: &mut BytesMut) -> io::Result<()> {
        carry.extend_from_slice(&data);
        let mut recs = Vec::new();
        journal::parse(carry, &mut recs).map_err(|e| err(e.to_string()))?;
        let applied = offset + data.len() as u64 - carry.len() as u64;
        let m = self.local.nshards();
        let verbatim = m == self.n;
        let mut per: Vec<Vec<Record>> = (0..m).map(|_| Vec::new()).collect();
        for r in recs {
            let name = r.args[0].to_ascii_uppercase();
            match &name[..] {
                b"SET" | b"DEL" if r.args.len() >= 2 => {
                    per[slot_owner(key_slot(&r.args[1]), m)].push(r);
                }
                b"FLUSHDB" | b"FLUSHALL" | b"SWAPDB" => {
                    for v in per.iter_mut() {
                        v.push(r.clone());
                    }
                }
                _ => {
                    return Err(err(format!(
                        "unknown journal record {:?}",
                        String::from_utf8_lossy(&name)
                    )))
                }
            }
        }
        let mut waits = Vec::new();
        let (i, n) = (self.i, self.n);
        for (t, recs) in per.into_iter().enumerate() {
            let keep = verbatim && t == i;
            if recs.is_empty() && !keep {
                continue;
            }
            let data = keep.then(|| data.clone());
            waits.push(self.local.send_call(t, Kind::Normal, move |sh| {
                let r = apply_records(sh, i, n, &recs);
                if let Some(d) = data {
                    sh.journal_verbatim(offset, &d);
                }
                r
            }));
        }
        for w in waits {
            w.await.map_err(|_| err("shard gone"))?.map_err(err)?;
        }
        self.progress().applied.store(applied, Ordering::Release);
        Ok(())
    }
}

type Loading = futures_channel::oneshot::Receiver<Result<u64, String>>;
const WINDOW: usize = 8;

async fn finish_one(rx: Loading) -> io::Result<u64> {
    rx.await.map_err(|_| err("shard gone"))?.map_err(err)
}

/// Inserts a chunk's records into this shard; returns the key count.
fn load_into(sh: &mut Shard, payload: &[u8]) -> Result<u64, String> {
    let (slot, recs) = tandem_sync::snapshot::chunk(payload).map_err(|e| e.to_string())?;
    let slot = slot as usize;
    if !sh.ks.owned_slots().contains(&slot) {
        return Err(format!("chunk of slot {slot} sent to the wrong shard"));
    }
    let n = sh.ks.databases();
    let mut keys = 0;
    for r in recs {
        let r = r.map_err(|e| e.to_string())?;
        let db = r.db as usize;
        if db >= n {
            return Err(format!("snapshot names database {db}, this server has {n}"));
        }
        if cfg!(debug_assertions) && key_slot(r.key) as usize != slot {
            return Err("key in the wrong slot's chunk".into());
        }
        sh.ks
            .insert_entry_in_slot(db, slot, Entry::new(r.key, r.value, r.expire_at));
        keys += 1;
    }
    Ok(keys)
}

/// Applies records of primary shard `i` (of `n`) on one replica shard, through the same execution path as
/// client commands (SET, DEL) or, for the slot-scoped server-wide records, the keyspace directly.
pub fn apply_records(sh: &mut Shard, i: usize, n: usize, recs: &[Record]) -> Result<(), String> {
    let now = runtime::now_ms();
    let range = shard_slots(i, n);
    let mut sink = Reply::new(Proto::Resp2);
    let dbs = sh.ks.databases();
    for r in recs {
        if r.db >= dbs {
            return Err(format!(
                "journal names database {}, this server has {dbs}",
                r.db
            ));
        }
        let name = r.args[0].to_ascii_uppercase();
        match &name[..] {
            b"SET" | b"DEL" => {
                let spec = crate::cmd::lookup(&name).expect("in the table");
                sink.buf.clear();
                execute_part(sh, spec, &r.args, &Exec { db: r.db, now }, &mut sink);
                if sink.buf.first() == Some(&b'-') {
                    return Err(format!(
                        "applying {}: {}",
                        String::from_utf8_lossy(&name),
                        String::from_utf8_lossy(&sink.buf)
                    ));
                }
            }
            b"FLUSHDB" => sh.ks.flush_slots(Some(r.db), range.clone()),
            b"FLUSHALL" => sh.ks.flush_slots(None, range.clone()),
            b"SWAPDB" if r.args.len() == 3 => {
                let p = |b: &Bytes| {
                    std::str::from_utf8(b)
                        .ok()
                        .and_then(|s| s.parse::<usize>().ok())
                };
                match (p(&r.args[1]), p(&r.args[2])) {
                    (Some(a), Some(b)) if a < dbs && b < dbs => {
                        sh.ks.swap_slots(a, b, range.clone())
                    }
                    _ => return Err("bad SWAPDB record".into()),
                }
            }
            _ => {
                return Err(format!(
                    "unknown journal record {}",
                    String::from_utf8_lossy(&name)
                ))
            }
        }
    }
    Ok(())
}
