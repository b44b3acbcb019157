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

use super::apply::{apply_group, Received};
use super::net::{self, err};
use super::{gate, LinkStatus};
use crate::resp::RequestParser;
use crate::runtime::{self, TcpStream};
use crate::server::Local;
use crate::shard::mesh::Kind;
use crate::shard::Shard;
use crate::slot::{key_slot, slot_owner};
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
use tandem_sync::assemble::TxAssembler;
use tandem_sync::frame::{Frame, FrameKind};
use tandem_sync::link::{Action, Event as LinkEvent, Link, Phase as LinkPhase};
use tandem_sync::replid::ReplId;
use tandem_sync::spool::Spool;
use tandem_sync::unit::{split_units, TxTag};

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
    /// Log offset of primary shard i applied here: the end of the last whole unit applied.
    pub applied: AtomicU64,
    pub phase: AtomicU8,
    pub snapshot_bytes: AtomicU64,
    pub snapshot_keys: AtomicU64,
    /// Keys the primary said its snapshot holds (0 until the end frame).
    pub snapshot_total: AtomicU64,
    pub buffered_bytes: AtomicU64,
    /// Of those, bytes the spool wrote to its file (memory allowance exceeded).
    pub spool_file_bytes: AtomicU64,
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
    /// Parts of multi-shard transactions waiting for their siblings on other flows.
    gather: Mutex<TxAssembler<TxPart>>,
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
            gather: Mutex::new(TxAssembler::default()),
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

    /// Resolves once no flow of this attempt runs any more (flows notice cancellation within 20 ms and
    /// finish the group they are applying); false if one is still running after 30 s.
    pub async fn wait_stopped(&self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.alive.load(Ordering::Acquire) > 0 {
            if Instant::now() >= deadline {
                return false;
            }
            runtime::sleep(Duration::from_millis(2)).await;
        }
        true
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

/// The replication log version this replica applies, announced in the handshake.
static LOG_CAPA: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| format!("tandem-log{}", tandem_sync::unit::VERSION));

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

/// Why this replica cannot be promoted now, if it cannot: a full sync in progress holds a partial dataset.
pub fn promotion_refusal(local: &Local) -> Option<&'static str> {
    let sh = local.shard.borrow();
    let p = sh.link.as_ref()?.progress.as_ref()?;
    (p.full && p.finished_ms.load(Ordering::Acquire) == 0).then_some(
        "ERR can't promote this replica: a full sync is in progress and its dataset is incomplete; \
         wait until master_sync_in_progress is 0",
    )
}

/// Stops following (REPLICAOF NO ONE); runs on shard 0. The flows are cancelled and waited for; writes
/// stay refused (the node is still a replica) until `promote` has turned every shard into a primary.
/// Returns the offsets the flows applied, or an error if one of them did not stop.
pub async fn stop(local: &Rc<Local>) -> Result<Option<Vec<u64>>, &'static str> {
    let progress = {
        let mut sh = local.shard.borrow_mut();
        sh.link_gen += 1;
        sh.link.take().and_then(|l| l.progress)
    };
    let Some(p) = progress else {
        return Ok(None);
    };
    p.fail("replication stopped (REPLICAOF NO ONE)".into());
    if !p.wait_stopped().await {
        return Err("ERR the replication flows did not stop within 30 s; try again");
    }
    Ok(Some(p.offsets()))
}

/// The node is a primary now that every shard is (called on shard 0 after the promotion's transaction):
/// clients' writes are let in.
pub fn promoted(local: &Local) {
    local.shared.repl.is_replica.store(false, Ordering::Release);
    local.shared.repl.loading.store(false, Ordering::Release);
    local.shared.repl.link_up.store(false, Ordering::Release);
    gate::update(&local.shared, &local.shard.borrow().settings);
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

/// Milliseconds on the controller's monotonic clock (the link state machine's time).
struct Clock(Instant);

impl Clock {
    fn now(&self) -> u64 {
        self.0.elapsed().as_millis() as u64
    }
}

/// Keeps the link to the primary: attempts, and between them the backoff the link state machine
/// (tandem_sync::link) decides.
async fn controller(local: Rc<Local>, gen: u64) {
    let clock = Clock(Instant::now());
    let timeout_ms = local.shard.borrow().settings.repl_timeout_secs * 1000;
    let mut link = Link::new(clock.now(), timeout_ms);
    while current(&local, gen) {
        let res = attempt(&local, gen, &mut link, &clock).await;
        if !current(&local, gen) {
            link.step(LinkEvent::Stop, clock.now());
            return;
        }
        let why = match res {
            Ok(()) => "link closed".to_string(),
            Err(e) => e.to_string(),
        };
        let mut delay = 0;
        for a in link.step(LinkEvent::Failed(why.clone()), clock.now()) {
            if let Action::RetryIn(ms) = a {
                delay = ms;
            }
        }
        tracing::warn!("MASTER <-> REPLICA sync: {why}; retrying in {delay} ms");
        local.shared.repl.link_up.store(false, Ordering::Release);
        gate::update(&local.shared, &local.shard.borrow().settings);
        with_link(&local, gen, |l| {
            l.up = false;
        });
        runtime::sleep(Duration::from_millis(delay)).await;
        // The backoff is over: the machine says connect (its only action from Backoff).
        link.tick(clock.now());
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

async fn attempt(local: &Rc<Local>, gen: u64, link: &mut Link, clock: &Clock) -> io::Result<()> {
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
    link.set_timeout(settings.repl_timeout_secs * 1000);
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
            LOG_CAPA.as_bytes(),
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
                become_replica(sh, replid, 0);
            })
            .await;
    } else {
        tracing::info!("Successful partial resynchronization with master {replid}");
        let mirrored = (local.nshards() == n).then(|| from.clone());
        local
            .broadcast(move |sh| {
                let at = mirrored.as_ref().map_or(0, |o| o[sh.id]);
                become_replica(sh, replid, at)
            })
            .await;
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
    let res = control(local, gen, &mut s, buf, &progress, &settings, link, clock).await;
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

/// This shard now follows a primary from log offset `at` (its mirrored primary shard's, or 0): a backlog
/// that already ends there is kept (after a promotion the other replicas continue from it), anything else
/// starts empty at `at`.
fn become_replica(sh: &mut Shard, replid: ReplId, at: u64) {
    if sh.repl.backlog.is_some() && sh.repl.offset() == at && at > 0 {
        sh.seal_unit();
        sh.ks.hooks.capture = false;
    } else {
        sh.reset_journal(at);
    }
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

/// The control connection after PSYNC: carries out what the link state machine decides (go live,
/// keepalives while loading, ACKs once live, giving up on a silent primary), answers GETACK, and watches
/// the flows and the generation (REPLICAOF changes).
#[allow(clippy::too_many_arguments)]
async fn control(
    local: &Rc<Local>,
    gen: u64,
    s: &mut TcpStream,
    mut buf: BytesMut,
    p: &Arc<SyncProgress>,
    settings: &crate::config::Settings,
    link: &mut Link,
    clock: &Clock,
) -> io::Result<()> {
    let mut w = s.clone();
    let mut parser = RequestParser::new();
    // The bytes the machine's actions send, if any; an Abort ends the attempt.
    let act = |acts: Vec<Action>| -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        for a in acts {
            match a {
                Action::GoLive => go_live(local, gen, p, settings),
                Action::Ack => out.extend(ack_command(p)),
                Action::Keepalive => out.push(b'\n'),
                Action::Abort(why) => return Err(err(why)),
                Action::Connect | Action::RetryIn(_) => {}
            }
        }
        Ok(out)
    };
    // A partial resync's flows are live from the start: the machine goes live at once.
    let out = act(link.step(LinkEvent::Synced { full: p.full }, clock.now()))?;
    if !out.is_empty() {
        net::write(&mut w, out).await?;
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
                    link.step(LinkEvent::Heard, clock.now());
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
                    let mut acts = Vec::new();
                    if link.phase() == LinkPhase::Loading && p.all_live() {
                        acts.extend(link.step(LinkEvent::FlowsLive, clock.now()));
                    }
                    acts.extend(link.tick(clock.now()));
                    let out = act(acts)?;
                    if !out.is_empty() {
                        net::write(&mut w, out).await?;
                    }
                }
            }
        }
        while let Ok(Some(cmd)) = parser.next(&mut buf, 1 << 20, true) {
            if link.phase() == LinkPhase::Live
                && cmd.len() >= 2
                && cmd[0].eq_ignore_ascii_case(b"replconf")
                && cmd[1].eq_ignore_ascii_case(b"getack")
            {
                net::write(&mut w, ack_command(p)).await?;
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
    carry: Carry,
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
        let mut inflight = VecDeque::new();
        let res = self.full_sync(dir, limit, name, &mut inflight).await;
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
        let mut own_carry = Carry::at(from);
        // Acknowledgements go back on this connection as soon as a frame's units are applied.
        let mut w = s.clone();
        let mut acked = from;
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
                    pd.spool.push(f.offset, f.payload)?;
                    self.progress()
                        .spool_file_bytes
                        .store(pd.spool.file_bytes(), Ordering::Relaxed);
                }
                Some(pd) => {
                    let mut carry = std::mem::replace(&mut pd.borrow_mut().carry, Carry::at(0));
                    let r = self.apply(f.offset, f.payload, &mut carry).await;
                    pd.borrow_mut().carry = carry;
                    r?;
                }
                None => self.apply(f.offset, f.payload, &mut own_carry).await?,
            }
            let applied = self.progress().applied.load(Ordering::Acquire);
            if applied != acked {
                acked = applied;
                let mut out = BytesMut::new();
                Frame {
                    kind: FrameKind::Ack,
                    shard: self.i as u16,
                    offset: applied,
                    more: false,
                    payload: Bytes::new(),
                }
                .encode(&mut out);
                net::write(&mut w, out.to_vec()).await?;
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

    /// Applies log bytes at `offset`: every whole unit they complete, in order; an incomplete one waits in
    /// `carry` for the next frame. A plain unit is applied at once; a transaction's part waits until every
    /// part has arrived on its flow, and then the whole transaction is applied at once (apply.rs).
    async fn apply(&self, offset: u64, data: Bytes, carry: &mut Carry) -> io::Result<()> {
        if offset != carry.next + carry.buf.len() as u64 {
            return Err(err(format!(
                "log bytes at offset {offset} where {} was expected",
                carry.next + carry.buf.len() as u64
            )));
        }
        // Whole units come straight out of the frame when nothing is carried over (the common case).
        let bytes = if carry.buf.is_empty() {
            data
        } else {
            carry.buf.extend_from_slice(&data);
            std::mem::take(&mut carry.buf).freeze()
        };
        let mut next = carry.next;
        let mut spans = Vec::new();
        {
            let mut units = Vec::new();
            split_units(&bytes, &mut next, &mut units).map_err(|e| err(e.to_string()))?;
            spans.extend(units.iter().map(|u| (u.len(), u.end(), u.tx)));
        }
        let mut at = 0;
        for (len, end, tx) in spans {
            let part = Received {
                from: self.i,
                bytes: bytes.slice(at..at + len),
            };
            at += len;
            match tx {
                None => {
                    apply_group(&self.local, std::slice::from_ref(&part), self.n)
                        .await
                        .map_err(err)?;
                    self.progress().applied.store(end, Ordering::Release);
                }
                Some(tag) => self.tx_part(tag, part, end).await?,
            }
            carry.next = end;
        }
        carry.buf = BytesMut::from(&bytes[at..]);
        Ok(())
    }

    /// One part of a multi-shard transaction: the flow that brings the last part applies them all and
    /// advances every participating flow's offset before the others continue, so a flow's offset never
    /// counts a transaction that is not applied, nor misses one that is.
    async fn tx_part(&self, tag: TxTag, part: Received, end: u64) -> io::Result<()> {
        let (done, rx) = futures_channel::oneshot::channel();
        let complete = self.p.gather.lock().expect("gather lock").add(
            tag,
            TxPart {
                part,
                end,
                flow: self.i,
                done,
            },
        );
        let Some(parts) = complete else {
            let mut rx = rx;
            loop {
                match select(&mut rx, pin!(runtime::sleep(Duration::from_millis(20)))).await {
                    Either::Left((Ok(res), _)) => return res.map_err(err),
                    Either::Left((Err(_), _)) => return Err(err("transaction abandoned")),
                    Either::Right(_) if self.p.cancelled() => return Err(err("cancelled")),
                    Either::Right(_) => {}
                }
            }
        };
        let group: Vec<Received> = parts.iter().map(|p| p.part.clone()).collect();
        let res = apply_group(&self.local, &group, self.n).await;
        if res.is_ok() {
            for p in &parts {
                self.p.flows[p.flow].applied.store(p.end, Ordering::Release);
            }
        }
        for p in parts {
            let _ = p.done.send(res.clone());
        }
        res.map_err(err)
    }
}

/// Bytes of a unit not complete yet, and the log offset of its first byte.
pub struct Carry {
    buf: BytesMut,
    next: u64,
}

impl Carry {
    fn at(next: u64) -> Self {
        Carry {
            buf: BytesMut::new(),
            next,
        }
    }
}

/// A transaction's part waiting for the others.
pub struct TxPart {
    part: Received,
    end: u64,
    flow: usize,
    done: futures_channel::oneshot::Sender<Result<(), String>>,
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
