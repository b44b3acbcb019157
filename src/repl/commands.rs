//! The replication commands a client or a replica sends, and INFO's replication section.

use super::primary::{FlowKind, Takeover};
use super::replica;
use super::replica::Phase;
use crate::cmd::args::{eq, int};
use crate::cmd::{CmdError, CmdResult};
use crate::resp::Reply;
use crate::runtime;
use crate::runtime::Local;
use bytes::Bytes;
use std::fmt::Write;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tandem_sync::replid::{PsyncDecision, ReplId};

fn new_replid(local: &Local) -> ReplId {
    use rand::RngCore;
    let mut b = [0u8; 20];
    local.shard.borrow_mut().rng.fill_bytes(&mut b);
    ReplId::from_random(b)
}

/// Turns every shard into a primary at once (one transaction over all shards, so no client sees some
/// shards promoted and others not): each keeps the old replication id as replid2 up to its offset, which
/// is the end of the last unit it applied, and starts logging.
async fn promote(local: &Rc<Local>, id: ReplId, applied: Option<Vec<u64>>) {
    let n = local.nshards();
    let tx = local.begin_tx((0..n).collect(), false).await;
    let all = tx.shards().to_vec();
    tx.each(&all, move |sh| {
        // A mirrored shard's offset is what its flow applied; a mismatch would break the others' resync.
        if let Some(o) = applied.as_ref().filter(|o| o.len() == sh.nshards) {
            if sh.repl.offset() != o[sh.id] {
                tracing::warn!(
                    "shard {}: log offset {} differs from the applied {}; starting the backlog there",
                    sh.id,
                    sh.repl.offset(),
                    o[sh.id]
                );
                sh.reset_journal(o[sh.id]);
            }
        }
        let end = sh.repl.offset();
        sh.repl.identity.promote(id, end);
        sh.wal_identity();
        sh.repl.is_replica = false;
        sh.ks.passive_expiry = false;
        sh.ensure_backlog();
    })
    .await;
}

/// What each shard reports about its journal.
#[derive(Clone)]
struct ShardJournal {
    offset: u64,
    first: Option<u64>,
    histlen: usize,
    capacity: usize,
    replid: ReplId,
    replid2: ReplId,
    second_offset: i64,
    /// Point-in-time snapshots being taken, and the bytes their copies-before-write hold.
    snapshots: usize,
    kept_bytes: usize,
}

async fn journals(local: &Rc<Local>) -> Vec<ShardJournal> {
    local
        .broadcast(|sh| {
            sh.seal_unit();
            let b = sh.repl.backlog.as_ref();
            ShardJournal {
                offset: sh.repl.offset(),
                first: b.map(|b| b.first_offset()),
                histlen: b.map_or(0, |b| b.len()),
                capacity: b.map_or(0, |b| b.capacity()),
                replid: sh.repl.identity.replid,
                replid2: sh.repl.identity.replid2,
                second_offset: sh.repl.identity.second_offset,
                snapshots: sh.ks.hooks.snapshots.len(),
                kept_bytes: sh.ks.hooks.snapshots.iter().map(|s| s.kept_bytes).sum(),
            }
        })
        .await
}

/// What the replication commands need of the connection that runs them (kept in the connection).
#[derive(Default)]
pub struct ReplClient {
    /// The connection's client id: a replica's session id after PSYNC.
    pub id: u64,
    /// The client ran a write command (WAIT waits for nothing otherwise).
    pub wrote: bool,
    /// REPLCONF listening-port.
    pub port: u16,
    /// REPLCONF node-id: the replica's stable id (kept in its `dir`).
    pub node_id: String,
    /// REPLCONF incarnation: which life of that node this is (failover mode; 0 if not said).
    pub incarnation: u64,
    /// REPLCONF epoch: the group epoch the replica knows (failover mode; 0 if not said).
    pub epoch: u64,
    /// The replication log version the replica announced (`REPLCONF capa tandem-log<v>`), 0 if none.
    pub log_version: u8,
    /// Set by PSYNC and TFLOW: once the replies are written the socket becomes a replication stream.
    pub takeover: Option<Takeover>,
}

/// Makes this replica a primary (shard 0's task): its flows are stopped and every shard promoted with a
/// new replication id. `check` refuses a replica that may lack acknowledged writes (a user's REPLICAOF NO
/// ONE); the group's record, which promotes only eligible replicas, skips it. Ok(false): already primary.
pub async fn become_primary(local: &Rc<Local>, check: bool) -> Result<bool, &'static str> {
    let id = new_replid(local);
    let l = local.clone();
    if !l.shared.repl.is_replica.load(Ordering::Acquire) {
        return Ok(false);
    }
    if check {
        if let Some(why) = replica::promotion_refusal(&l) {
            return Err(why);
        }
    }
    // No flow of the old link applies anything once this returns.
    let applied = replica::stop(&l).await?;
    promote(&l, id, applied).await;
    replica::promoted(&l);
    tracing::info!("MASTER MODE enabled; new replication id {id}");
    Ok(true)
}

/// Follows `host:port` (shard 0's task); false if this node follows it already.
pub async fn follow(l: &Rc<Local>, host: String, port: u16) -> bool {
    let same = l
        .shard
        .borrow()
        .link
        .as_ref()
        .is_some_and(|k| k.host == host && k.port == port);
    if same {
        return false;
    }
    if !l.shared.repl.is_replica.load(Ordering::Acquire) {
        // A primary turning replica offers its own history to continue from: its previous id's when it
        // wrote nothing under its own (a restarted primary, or one promoted and never written to), as a
        // new primary can know only that one.
        let ends = l
            .broadcast(|sh| {
                sh.seal_unit();
                let end = sh.repl.offset();
                (end, sh.repl.identity.offered(end))
            })
            .await;
        let id = if ends.iter().all(|e| e.1 == ends[0].1) {
            ends[0].1
        } else {
            l.shard.borrow().repl.identity.replid
        };
        let offsets = ends.into_iter().map(|e| e.0).collect();
        l.shard.borrow_mut().link = Some(super::LinkStatus::new(
            String::new(),
            0,
            0,
            Some((id, offsets)),
        ));
    } else {
        let cached = replica::halt(l).await;
        if let Some(k) = l.shard.borrow_mut().link.as_mut() {
            k.cached = cached;
        }
    }
    replica::start(l, host, port);
    true
}

pub async fn replicaof(local: &Rc<Local>, a: &[Bytes], r: &mut Reply) -> CmdResult {
    if local.shard.borrow().settings.failover {
        return Err(CmdError::other(
            "ERR this node is in failover mode: its replication group decides who is primary \
             (use FAILOVER to hand the primary role over; docs/failover.md)",
        ));
    }
    if eq(&a[1], "no") && eq(&a[2], "one") {
        local
            .run_on(0, |l| async move { become_primary(&l, true).await })
            .await
            .map_err(CmdError::other)?;
        r.ok();
        return Ok(());
    }
    let host = String::from_utf8_lossy(&a[1]).into_owned();
    let port = int(&a[2])
        .ok()
        .filter(|p| (1..=65535).contains(p))
        .ok_or_else(|| CmdError::other("ERR Invalid master port"))? as u16;
    let changed = local
        .run_on(0, move |l| async move { follow(&l, host, port).await })
        .await;
    if changed {
        r.ok();
    } else {
        r.simple("OK Already connected to specified master");
    }
    Ok(())
}

pub async fn role(local: &Rc<Local>, r: &mut Reply) -> CmdResult {
    let js = journals(local).await;
    let total: u64 = js.iter().map(|j| j.offset).sum();
    let info = local
        .call(0, crate::shard::mesh::Kind::Normal, |sh| {
            let link = sh.link.as_ref().map(|l| {
                let state = match (&l.progress, l.up) {
                    (_, true) => "connected",
                    (Some(_), false) => "sync",
                    (None, false) => "connecting",
                };
                let applied: u64 = l.progress.as_ref().map_or(0, |p| p.offsets().iter().sum());
                (l.host.clone(), l.port, state, applied)
            });
            let replicas: Vec<(String, u16, u64)> = sh
                .registry
                .replicas
                .values()
                .map(|e| (e.ip.clone(), e.port, e.ack.total()))
                .collect();
            (link, replicas)
        })
        .await;
    match info {
        (Some((host, port, state, applied)), _)
            if local.shared.repl.is_replica.load(Ordering::Acquire) =>
        {
            r.array(5);
            r.bulk(b"slave");
            r.bulk(host.as_bytes());
            r.int(port as i64);
            r.bulk(state.as_bytes());
            r.int(applied as i64);
        }
        (_, replicas) => {
            r.array(3);
            r.bulk(b"master");
            r.int(total as i64);
            r.array(replicas.len());
            for (ip, port, off) in replicas {
                r.array(3);
                r.bulk(ip.as_bytes());
                r.bulk(port.to_string().as_bytes());
                r.bulk(off.to_string().as_bytes());
            }
        }
    }
    Ok(())
}

pub async fn wait(local: &Rc<Local>, c: &ReplClient, a: &[Bytes], r: &mut Reply) -> CmdResult {
    if local.shared.repl.is_replica.load(Ordering::Acquire) {
        return Err(CmdError::other(
                "ERR WAIT cannot be used with replica instances. Please also note that since Redis 4.0 if a replica is configured to be writable (which is not the default) writes to replicas are just local and are not propagated.",
            ));
    }
    let need = int(&a[1])?.max(0) as usize;
    let timeout =
        int(&a[2]).map_err(|_| CmdError::other("ERR timeout is not an integer or out of range"))?;
    if timeout < 0 {
        return Err(CmdError::other("ERR timeout is negative"));
    }
    // The client's last write is in every shard's journal up to its current end (a superset of the
    // client's own writes); a client that never wrote waits for nothing.
    let target: Vec<u64> = if c.wrote {
        journals(local).await.iter().map(|j| j.offset).collect()
    } else {
        vec![0; local.nshards()]
    };
    let t2 = target.clone();
    let waiting = local
        .call(0, crate::shard::mesh::Kind::Normal, move |sh| {
            sh.registry.wait(t2, need)
        })
        .await;
    // Satisfied now or when the acks arrive (the count comes with them); only a timeout asks again.
    let reached = match waiting {
        Ok(n) => Some(n),
        Err(rx) if timeout == 0 => rx.await.ok(),
        Err(rx) => match futures_util::future::select(
            rx,
            std::pin::pin!(runtime::sleep(Duration::from_millis(timeout as u64))),
        )
        .await
        {
            futures_util::future::Either::Left((n, _)) => n.ok(),
            futures_util::future::Either::Right(_) => None,
        },
    };
    let n = match reached {
        Some(n) => n,
        None => {
            local
                .call(0, crate::shard::mesh::Kind::Normal, move |sh| {
                    sh.registry.count_holding(&target)
                })
                .await
        }
    };
    r.int(n as i64);
    Ok(())
}

pub fn replconf(c: &mut ReplClient, a: &[Bytes], r: &mut Reply) -> CmdResult {
    if a.len().is_multiple_of(2) {
        return Err(CmdError::Syntax);
    }
    for pair in a[1..].chunks(2) {
        let opt = String::from_utf8_lossy(&pair[0]).to_ascii_lowercase();
        match opt.as_str() {
            "listening-port" => {
                c.port = int(&pair[1])
                    .ok()
                    .filter(|p| (0..=65535).contains(p))
                    .ok_or(CmdError::NotInteger)? as u16;
            }
            "capa" => {
                if let Some(v) = pair[1]
                    .strip_prefix(b"tandem-log")
                    .and_then(|v| std::str::from_utf8(v).ok())
                    .and_then(|v| v.parse().ok())
                {
                    c.log_version = v;
                }
            }
            "node-id" => {
                c.node_id = String::from_utf8_lossy(&pair[1]).chars().take(64).collect();
            }
            "epoch" => {
                c.epoch = int(&pair[1])
                    .ok()
                    .filter(|&n| n >= 0)
                    .ok_or(CmdError::NotInteger)? as u64;
            }
            "incarnation" => {
                c.incarnation = int(&pair[1])
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or(CmdError::NotInteger)? as u64;
            }
            "ip-address" | "version" | "rdb-only" | "rdb-filter-only" => {}
            // Only meaningful on a replica's control session; never answered.
            "ack" | "getack" | "fack" => return Ok(()),
            _ => {
                return Err(CmdError::other(format!(
                    "ERR Unrecognized REPLCONF option: {opt}"
                )))
            }
        }
    }
    r.ok();
    Ok(())
}

/// `PSYNC <replid|?> <offset> TANDEM <shards> <o0,o1,..|->`: Valkey's PSYNC plus every shard's offset.
pub async fn psync(
    local: &Rc<Local>,
    c: &mut ReplClient,
    addr: &str,
    a: &[Bytes],
    r: &mut Reply,
) -> CmdResult {
    if a.len() != 6 || !eq(&a[3], "tandem") {
        return Err(CmdError::other(
                "ERR Tandem replicates only to Tandem replicas (PSYNC <replid> <offset> TANDEM <shards> <offsets>)",
            ));
    }
    if local.shared.repl.is_replica.load(Ordering::Acquire) {
        return Err(CmdError::other(
            "ERR Tandem does not chain replicas: point this replica at the primary",
        ));
    }
    // Failover mode: only the record's primary in this life hands out its data. A restarted primary
    // the record has not replaced yet holds nothing; a replica syncing from it would wipe writes the
    // group may still promote it for.
    let refusal = local
        .run_on(0, |l| async move {
            let sh = l.shard.borrow();
            let g = sh.group.as_deref()?;
            let primary = g.node.as_ref().is_some_and(|n| n.is_primary());
            (!primary).then_some(
                "ERR this node is not its replication group's primary in this life (failover mode); \
                 see INFO replication group_primary",
            )
        })
        .await;
    if let Some(why) = refusal {
        return Err(CmdError::other(why));
    }
    if local.shared.repl.fence(c.epoch) {
        tracing::warn!(
            "A replica knows group epoch {}, newer than this node's record: deposed, serving nothing",
            c.epoch
        );
        return Err(CmdError::other(
            "ERR this primary's group epoch is older than the replica's: it has been replaced",
        ));
    }
    let id = if &a[1][..] == b"?" {
        None
    } else {
        Some(ReplId::parse(&a[1]).ok_or_else(|| CmdError::other("ERR invalid replication id"))?)
    };
    let theirs = int(&a[4])? as usize;
    let offsets: Vec<u64> = if &a[5][..] == b"-" {
        Vec::new()
    } else {
        std::str::from_utf8(&a[5])
            .ok()
            .and_then(|s| s.split(',').map(|x| x.parse().ok()).collect())
            .ok_or_else(|| CmdError::other("ERR invalid offsets"))?
    };
    if c.log_version != tandem_sync::unit::VERSION {
        tracing::warn!(
            "Refusing replica {}: it speaks replication log version {} and this primary writes {}",
            addr,
            c.log_version,
            tandem_sync::unit::VERSION
        );
        return Err(CmdError::other(format!(
                "ERR this primary writes replication log version {} (REPLCONF capa tandem-log{}); the replica announced {}",
                tandem_sync::unit::VERSION,
                tandem_sync::unit::VERSION,
                c.log_version
            )));
    }
    let n = local.nshards();
    let offsets = Some(offsets).filter(|o| o.len() == theirs && theirs == n);
    let o2 = offsets.clone();
    // Decided, and for a full sync the snapshot taken, with every shard held at once: a cut consistent
    // across shards, so no multi-shard transaction is half in the snapshot and half in the log.
    let tx = local.begin_tx((0..n).collect(), false).await;
    let all = tx.shards().to_vec();
    let decisions = tx
        .each(&all, move |sh| {
            sh.ensure_backlog();
            sh.seal_unit();
            let d = match &o2 {
                Some(o) => sh.repl.decide(id, o[sh.id]),
                None => sh.repl.decide(None, 0),
            };
            (d, sh.repl.identity.replid, sh.repl.offset())
        })
        .await;
    let mut decisions = decisions;
    let cont = offsets.is_some() && decisions.iter().all(|d| d.0 == PsyncDecision::Continue);
    if !cont {
        let session = c.id;
        let now = runtime::now_ms();
        let points = tx
            .each(&all, move |sh| sh.begin_cut_snapshot(session, now))
            .await;
        for (d, p) in decisions.iter_mut().zip(points) {
            d.2 = p;
        }
    }
    drop(tx);
    let replid = decisions[0].1;
    let total: u64 = decisions.iter().map(|d| d.2).sum();
    let reason = if id.is_some() && offsets.is_none() {
        "the replica follows a different shard count".to_string()
    } else {
        decisions
            .iter()
            .find_map(|d| match &d.0 {
                PsyncDecision::Full(why) => Some(format!("{why:?}")),
                _ => None,
            })
            .unwrap_or_default()
    };
    let asked = id.is_some();
    local
        .call(0, crate::shard::mesh::Kind::Normal, move |sh| {
            if cont {
                sh.registry.sync_partial_ok += 1;
            } else {
                sh.registry.sync_full += 1;
                if asked {
                    sh.registry.sync_partial_err += 1;
                }
            }
        })
        .await;
    let peer_ip = addr
        .rsplit_once(':')
        .map(|(h, _)| h.trim_matches(|c| c == '[' || c == ']').to_string())
        .unwrap_or_default();
    if cont {
        tracing::info!(
            "Partial resynchronization request from {peer_ip}:{} accepted",
            c.port
        );
        r.simple(&format!("CONTINUE {replid} {} {n}", c.id));
    } else {
        tracing::info!(
            "Full resync requested by replica {peer_ip}:{} ({reason})",
            c.port
        );
        r.simple(&format!("FULLRESYNC {replid} {total} {} {n}", c.id));
    }
    c.takeover = Some(Takeover::Session {
        id: c.id,
        node_id: c.node_id.clone(),
        incarnation: c.incarnation,
        ip: peer_ip,
        port: c.port,
        full: !cont,
    });
    Ok(())
}

/// `TFLOW <session> <shard> SNAPSHOT | JOURNAL <offset> [LZ4]`: this connection becomes one stream of a
/// replica's sync, served by the shard it names. No reply: frames follow.
pub fn tflow(local: &Rc<Local>, c: &mut ReplClient, a: &[Bytes], _r: &mut Reply) -> CmdResult {
    let shard = int(&a[2])?;
    if shard < 0 || shard as usize >= local.nshards() {
        return Err(CmdError::other("ERR no such shard"));
    }
    // An optional trailing LZ4 asks for compressed frames.
    let lz4 = a.len() > 4 && eq(&a[a.len() - 1], "lz4");
    let n = a.len() - lz4 as usize;
    let kind = match (
        n,
        String::from_utf8_lossy(&a[3]).to_ascii_lowercase().as_str(),
    ) {
        (4, "snapshot") => FlowKind::Snapshot { lz4 },
        (5, "journal") => FlowKind::Journal {
            from: int(&a[4])?.max(0) as u64,
            lz4,
        },
        _ => return Err(CmdError::Syntax),
    };
    let session = int(&a[1])
        .ok()
        .filter(|s| *s >= 0)
        .ok_or_else(|| CmdError::other("ERR invalid session"))? as u64;
    c.takeover = Some(Takeover::Flow {
        session,
        shard: shard as usize,
        kind,
    });
    Ok(())
}

/// INFO replication, and the sync counters of INFO stats.
pub async fn info_section(local: &Rc<Local>) -> (String, (u64, u64, u64)) {
    let js = journals(local).await;
    let now = runtime::now_ms();
    let (link, replicas, counters, durability) = local
        .call(0, crate::shard::mesh::Kind::Normal, move |sh| {
            let link = sh.link.as_ref().map(|l| {
                (
                    l.host.clone(),
                    l.port,
                    l.up,
                    l.last_io_ms,
                    l.progress.clone(),
                    l.replid,
                )
            });
            #[allow(clippy::type_complexity)]
            let reps: Vec<(String, u16, &'static str, Vec<u64>, u64, String, bool)> = sh
                .registry
                .replicas
                .values()
                .map(|e| {
                    (
                        e.ip.clone(),
                        e.port,
                        match e.state {
                            super::registry::ReplicaState::Online => "online",
                            super::registry::ReplicaState::Syncing => "wait_bgsave",
                        },
                        e.ack.offsets.clone(),
                        e.ack.at_ms,
                        e.node_id.clone(),
                        e.eligible,
                    )
                })
                .collect();
            let reg = &sh.registry;
            let durability = format!(
                "durability:{}\r\ndurability_replicas:{}\r\ndurability_eligible_replicas:{}\r\n\
                 tandem_durability_grants:{}\r\ntandem_durability_revokes:{}\r\n\
                 tandem_durability_last_grant_pause_us:{}\r\ntandem_durability_max_grant_pause_us:{}\r\n",
                if sh.settings.durability { "yes" } else { "no" },
                sh.settings.durability_replicas,
                reg.eligible_count(),
                reg.grants,
                reg.revokes,
                reg.last_grant_pause_us,
                reg.max_grant_pause_us,
            );
            let mut durability = durability;
            durability.push_str(&match sh.group.as_deref() {
                Some(g) => g.info(runtime::mono_ms()),
                None => "failover:no\r\n".into(),
            });
            (
                link,
                reps,
                (reg.sync_full, reg.sync_partial_ok, reg.sync_partial_err),
                durability,
            )
        })
        .await;
    let is_replica = local.shared.repl.is_replica.load(Ordering::Acquire);
    let own: u64 = js.iter().map(|j| j.offset).sum();
    let mut w = String::new();
    let j0 = js[0].clone();
    if let (true, Some((host, port, up, last_io, progress, replid))) = (is_replica, &link) {
        let applied: u64 = progress.as_ref().map_or(0, |p| p.offsets().iter().sum());
        let syncing = progress
            .as_ref()
            .is_some_and(|p| p.full && p.finished_ms.load(Ordering::Acquire) == 0);
        let _ = write!(
            w,
            "role:slave\r\nmaster_host:{host}\r\nmaster_port:{port}\r\nmaster_link_status:{}\r\nmaster_last_io_seconds_ago:{}\r\n\
             master_sync_in_progress:{}\r\nslave_read_repl_offset:{applied}\r\nslave_repl_offset:{applied}\r\n",
            if *up { "up" } else { "down" },
            if *last_io == 0 { -1 } else { (now.saturating_sub(*last_io) / 1000) as i64 },
            syncing as u8,
        );
        let eligible = local.shared.repl.self_eligible.load(Ordering::Acquire);
        let _ = write!(w, "eligible:{}\r\n", if eligible { "yes" } else { "no" });
        if let (true, Some(p)) = (syncing, progress) {
            let got: u64 = p
                .flows
                .iter()
                .map(|f| f.snapshot_keys.load(Ordering::Relaxed))
                .sum();
            let total: u64 = p
                .flows
                .iter()
                .map(|f| f.snapshot_total.load(Ordering::Relaxed))
                .sum();
            let read: u64 = p
                .flows
                .iter()
                .map(|f| f.snapshot_bytes.load(Ordering::Relaxed))
                .sum();
            let perc = if total > 0 {
                got as f64 * 100.0 / total as f64
            } else {
                0.0
            };
            let _ = write!(
                w,
                "master_sync_total_bytes:-1\r\nmaster_sync_read_bytes:{read}\r\nmaster_sync_left_bytes:-1\r\n\
                 master_sync_perc:{perc:.2}\r\nmaster_sync_last_io_seconds_ago:0\r\ntandem_sync_keys_received:{got}\r\n"
            );
        }
        if let Some(p) = progress {
            for (i, f) in p.flows.iter().enumerate() {
                let _ = write!(
                    w,
                    "tandem_flow{i}:phase={},offset={},snapshot_bytes={},snapshot_keys={},snapshot_total_keys={},buffered_bytes={},spool_file_bytes={}\r\n",
                    Phase::name(f.phase.load(Ordering::Relaxed)),
                    f.applied.load(Ordering::Relaxed),
                    f.snapshot_bytes.load(Ordering::Relaxed),
                    f.snapshot_keys.load(Ordering::Relaxed),
                    f.snapshot_total.load(Ordering::Relaxed),
                    f.buffered_bytes.load(Ordering::Relaxed),
                    f.spool_file_bytes.load(Ordering::Relaxed),
                );
            }
            let secs = match p.finished_ms.load(Ordering::Relaxed) {
                0 => p.started.elapsed().as_secs_f64(),
                _ => -1.0,
            };
            if secs >= 0.0 {
                let _ = write!(w, "tandem_sync_elapsed_seconds:{secs:.3}\r\n");
            }
        }
        let _ = write!(
            w,
            "slave_priority:100\r\nslave_read_only:{}\r\nreplica_announced:1\r\nconnected_slaves:0\r\n\
             master_failover_state:no-failover\r\nmaster_replid:{}\r\nmaster_replid2:{}\r\nmaster_repl_offset:{applied}\r\n",
            local.shard.borrow().settings.replica_read_only as u8,
            replid.unwrap_or(j0.replid),
            j0.replid2,
        );
    } else {
        let _ = write!(w, "role:master\r\nconnected_slaves:{}\r\n", replicas.len());
        let target: Vec<u64> = js.iter().map(|j| j.offset).collect();
        for (i, (ip, port, state, offs, at, node, eligible)) in replicas.iter().enumerate() {
            let acked: u64 = offs.iter().sum();
            let lag_bytes: u64 = target
                .iter()
                .zip(offs.iter().chain(std::iter::repeat(&0)))
                .map(|(t, o)| t.saturating_sub(*o))
                .sum();
            let lag_ms = now.saturating_sub(*at);
            let _ = write!(
                w,
                "slave{i}:ip={ip},port={port},state={state},offset={acked},lag={},lag_bytes={lag_bytes},lag_ms={lag_ms},node_id={node},eligible={}\r\n",
                lag_ms / 1000,
                if *eligible { "yes" } else { "no" }
            );
        }
        let _ = write!(
            w,
            "master_failover_state:no-failover\r\nmaster_replid:{}\r\nmaster_replid2:{}\r\nmaster_repl_offset:{own}\r\n",
            j0.replid, j0.replid2,
        );
    }
    let second = if j0.second_offset < 0 {
        -1
    } else {
        js.iter().map(|j| j.second_offset - 1).sum::<i64>() + 1
    };
    let active = js.iter().any(|j| j.first.is_some());
    let _ = write!(
        w,
        "second_repl_offset:{second}\r\nrepl_backlog_active:{}\r\nrepl_backlog_size:{}\r\nrepl_backlog_first_byte_offset:{}\r\n\
         repl_backlog_histlen:{}\r\ntandem_shard_offsets:{}\r\ntandem_snapshots_in_progress:{}\r\n\
         tandem_snapshot_kept_bytes:{}\r\n",
        active as u8,
        js.iter().map(|j| j.capacity).sum::<usize>(),
        js.iter().map(|j| j.first.unwrap_or(j.offset)).sum::<u64>() + 1,
        js.iter().map(|j| j.histlen).sum::<usize>(),
        js.iter().map(|j| j.offset.to_string()).collect::<Vec<_>>().join(","),
        js.iter().map(|j| j.snapshots).sum::<usize>(),
        js.iter().map(|j| j.kept_bytes).sum::<usize>(),
    );
    w.push_str(&durability);
    (w, counters)
}
