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
//!
//! Files: `link` (the controller and the control connection, driven by tandem_sync::link), `handshake`
//! (connect, AUTH, REPLCONF, PSYNC, and starting the flows), `flow` (a primary shard's snapshot and journal
//! streams), `load` (snapshot chunks into the owning shards), `apply` (log units, in order, transactions
//! reassembled across flows).

mod apply;
mod flow;
mod handshake;
mod link;
pub(crate) mod load;

use super::apply::{apply_group, Received};
use super::net::{self, err};
use super::{gate, LinkStatus};
use crate::resp::RequestParser;
use crate::runtime::Local;
use crate::runtime::{self, TcpStream};
use crate::shard::mesh::Kind;
use crate::shard::Shard;
use crate::slot::{key_slot, slot_owner};
use crate::store::Entry;
use apply::TxPart;
use bytes::{Bytes, BytesMut};
use compio::buf::BufResult;
use compio::io::AsyncReadExt;
use futures_util::future::{select, Either};
use link::controller;
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
    /// A flow received bytes that are no log units where its history ended: the primary's history is
    /// not a continuation of this replica's, so nothing may be continued from this attempt.
    diverged: AtomicBool,
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
            diverged: AtomicBool::new(false),
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

    /// Ends the attempt on a log that does not continue this replica's history; the next one is a
    /// full sync.
    fn diverge(&self, why: String) {
        self.diverged.store(true, Ordering::Release);
        self.fail(why);
    }

    /// Whether what this attempt applied can be continued from by the next one: a partial sync's or a
    /// finished full sync's, unless the log diverged.
    fn continuable(&self) -> bool {
        (!self.full || self.finished_ms.load(Ordering::Acquire) > 0)
            && !self.diverged.load(Ordering::Acquire)
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
    if sh.settings.durability && !local.shared.repl.self_eligible.load(Ordering::Acquire) {
        return Some(
            "ERR can't promote this replica: it is not eligible in durability mode, so it may lack \
             acknowledged writes (only a replica its primary granted holds every one; see INFO \
             replication eligible)",
        );
    }
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
    local
        .shared
        .repl
        .self_eligible
        .store(false, Ordering::Release);
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
    match (p.continuable(), replid) {
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
