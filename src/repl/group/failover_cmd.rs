//! FAILOVER in failover mode (docs/failover.md "Manual failover"):
//! - `FAILOVER [TO host port] [TIMEOUT ms] [FORCE]` on the serving primary hands the primary role to a
//!   replica with no write lost: writes are paused, the target is waited for until it has applied every
//!   shard's log end, and the group record promotes it (Promote if it is eligible; a caught-up replica
//!   that is not is taken by Force, which loses nothing since it holds every write). Without TO the most
//!   advanced eligible replica is chosen. On TIMEOUT the handoff is abandoned, unless FORCE says to
//!   promote the target anyway (it may then lack writes, as in Valkey).
//! - `FAILOVER TAKEOVER` on any data member makes it primary whatever the group's state: the operator's
//!   way out of a full outage (every node restarted, so none is eligible). It resumes this node if the
//!   record names it primary in an earlier incarnation, and forces it otherwise. Acknowledged writes
//!   that this node lacks are lost: until the WAL restores a restarted node's data, that is all of them.

use crate::cmd::args::{int, lower};
use crate::cmd::{CmdError, CmdResult};
use crate::repl::registry::ReplicaState;
use crate::resp::Reply;
use crate::runtime::{self, Local};
use crate::shard::PauseKind;
use bytes::Bytes;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tandem_sync::group::record::{member_id, Entry, Takeover};

/// How long a handoff waits for the target without TIMEOUT.
const DEFAULT_TIMEOUT_MS: u64 = 60_000;
/// How long the group may take to apply the promotion.
const APPLY_TIMEOUT_MS: u64 = 10_000;

struct Args {
    to: Option<(String, u16)>,
    timeout: Option<u64>,
    force: bool,
    takeover: bool,
}

fn parse(a: &[Bytes]) -> Result<Args, CmdError> {
    let mut x = Args {
        to: None,
        timeout: None,
        force: false,
        takeover: false,
    };
    let mut i = 1;
    while i < a.len() {
        match lower(&a[i]).as_str() {
            "to" if i + 2 < a.len() => {
                let host = String::from_utf8_lossy(&a[i + 1]).into_owned();
                let port = int(&a[i + 2])
                    .ok()
                    .filter(|p| (1..=65535).contains(p))
                    .ok_or(CmdError::other("ERR Invalid port"))?;
                x.to = Some((host, port as u16));
                i += 3;
            }
            "timeout" if i + 1 < a.len() => {
                let ms = int(&a[i + 1])
                    .ok()
                    .filter(|&t| t > 0)
                    .ok_or(CmdError::other(
                        "ERR FAILOVER timeout must be greater than 0",
                    ))?;
                x.timeout = Some(ms as u64);
                i += 2;
            }
            "force" => {
                x.force = true;
                i += 1;
            }
            "takeover" => {
                x.takeover = true;
                i += 1;
            }
            "abort" => return Err(CmdError::other("ERR No failover in progress.")),
            _ => return Err(CmdError::Syntax),
        }
    }
    if x.force && (x.to.is_none() || x.timeout.is_none()) {
        return Err(CmdError::other(
            "ERR FORCE option requires both a timeout and target HOST and IP.",
        ));
    }
    Ok(x)
}

pub async fn failover(local: &Rc<Local>, a: &[Bytes], r: &mut Reply) -> CmdResult {
    let x = parse(a)?;
    if !local.shard.borrow().settings.failover {
        return Err(CmdError::other(
            "ERR FAILOVER needs failover mode in Tandem (failover yes; docs/failover.md)",
        ));
    }
    let res = if x.takeover {
        local.run_on(0, |l| async move { takeover(&l).await }).await
    } else {
        local
            .run_on(0, move |l| async move { handoff(&l, x).await })
            .await
    };
    res.map_err(CmdError::other)?;
    r.ok();
    Ok(())
}

/// Proposes the takeover of `id` in `inc` and waits until the record's primary is `(id, inc)`. The
/// entry carries the record version it saw, so a change in between (a member joining) refuses it: it is
/// proposed again at the new version, and again every 500 ms in case a leader change lost it.
async fn promote(local: &Rc<Local>, how: Takeover, id: u64, inc: u64) -> Result<(), String> {
    let start = runtime::mono_ms();
    let mut proposed: Option<(u64, u64)> = None;
    loop {
        let (done, version) = with_group(local, |g| {
            let n = g
                .node
                .as_ref()
                .ok_or("ERR this node has not joined its group")?;
            Ok((n.record.primary == Some((id, inc)), n.record.version))
        })?;
        if done {
            return Ok(());
        }
        let now = runtime::mono_ms();
        if now - start > APPLY_TIMEOUT_MS {
            return Err(
                "ERR the group did not apply the promotion (is a majority of it reachable?)".into(),
            );
        }
        if proposed.is_none_or(|(v, at)| v != version || now - at >= 500) {
            let e = Entry::Takeover {
                how,
                id,
                incarnation: inc,
                version,
            };
            // No leader known right now: tried again on the next round.
            let _ = with_group(local, |g| g.propose(&e));
            proposed = Some((version, now));
        }
        runtime::sleep(Duration::from_millis(10)).await;
    }
}

fn with_group<R>(
    local: &Local,
    f: impl FnOnce(&mut super::Group) -> Result<R, String>,
) -> Result<R, String> {
    super::with(local, f).unwrap_or_else(|| Err("ERR this node is not in failover mode".into()))
}

async fn takeover(local: &Rc<Local>) -> Result<(), String> {
    let (how, me, inc) = with_group(local, |g| {
        if g.witness {
            return Err("ERR a witness holds no data and cannot be primary".into());
        }
        let n = g
            .node
            .as_ref()
            .ok_or("ERR this node has not joined its group")?;
        let r = &n.record;
        if r.members.get(&g.me).map(|m| m.incarnation) != Some(g.incarnation) {
            return Err("ERR this node has not joined its group in this incarnation yet".into());
        }
        if r.primary == Some((g.me, g.incarnation)) {
            return Err("ERR this node is already the primary of its group".into());
        }
        let how = match r.primary {
            Some((p, _)) if p == g.me => Takeover::Resume,
            _ => Takeover::Force,
        };
        Ok((how, g.me, g.incarnation))
    })?;
    tracing::warn!("FAILOVER TAKEOVER ({how:?}): acknowledged writes this node lacks are lost");
    promote(local, how, me, inc).await
}

async fn handoff(local: &Rc<Local>, x: Args) -> Result<(), String> {
    if local.shared.repl.is_replica.load(Ordering::Acquire) {
        return Err("ERR FAILOVER is not valid when server is a replica.".into());
    }
    let (session, id, inc, eligible) = {
        let sh = local.shard.borrow();
        let g = sh.group.as_deref().ok_or("ERR not in failover mode")?;
        let n = g
            .node
            .as_ref()
            .ok_or("ERR this node has not joined its group")?;
        if !n.can_serve(runtime::mono_ms()) {
            return Err("ERR FAILOVER: this primary does not hold its lease".into());
        }
        let online = sh
            .registry
            .replicas
            .iter()
            .filter(|(_, e)| e.state == ReplicaState::Online);
        let pick = match &x.to {
            Some((host, port)) => {
                let (s, e) = sh
                    .registry
                    .replicas
                    .iter()
                    .find(|(_, e)| &e.ip == host && e.port == *port)
                    .ok_or("ERR FAILOVER target HOST and PORT is not a replica.")?;
                if e.state != ReplicaState::Online {
                    return Err("ERR FAILOVER target replica is not online.".into());
                }
                Some((*s, e))
            }
            None => online
                .filter(|(_, e)| {
                    member_id(&e.node_id).is_some_and(|id| n.record.is_eligible(id, e.incarnation))
                })
                .max_by_key(|(_, e)| e.ack.offsets.iter().sum::<u64>())
                .map(|(s, e)| (*s, e)),
        };
        let (s, e) = pick.ok_or("ERR FAILOVER requires connected replicas.")?;
        let id = member_id(&e.node_id).ok_or("ERR FAILOVER target has no node id")?;
        (
            s,
            id,
            e.incarnation,
            n.record.is_eligible(id, e.incarnation),
        )
    };
    let timeout = x.timeout.unwrap_or(DEFAULT_TIMEOUT_MS);
    let until = runtime::now_ms() + timeout + APPLY_TIMEOUT_MS;
    local
        .broadcast(move |sh| sh.pause = Some((PauseKind::Write, until)))
        .await;
    let res = handoff_paused(local, session, id, inc, eligible, timeout, x.force).await;
    local
        .broadcast(|sh| {
            sh.pause = None;
            sh.wake_clients();
        })
        .await;
    res
}

async fn handoff_paused(
    local: &Rc<Local>,
    session: u64,
    id: u64,
    inc: u64,
    eligible: bool,
    timeout: u64,
    force: bool,
) -> Result<(), String> {
    let ends = local
        .broadcast(|sh| {
            sh.seal_unit();
            sh.repl.offset()
        })
        .await;
    let start = runtime::mono_ms();
    let caught_up = loop {
        let acked = {
            let mut sh = local.shard.borrow_mut();
            sh.registry.poke_all();
            sh.registry
                .replicas
                .get(&session)
                .map(|e| e.ack.offsets.clone())
        };
        let Some(acked) = acked else {
            return Err("ERR FAILOVER target replica disconnected.".into());
        };
        if acked.len() == ends.len() && acked.iter().zip(&ends).all(|(a, e)| a >= e) {
            break true;
        }
        if runtime::mono_ms() - start > timeout {
            break false;
        }
        runtime::sleep(Duration::from_millis(5)).await;
    };
    if !caught_up && !force {
        return Err(
            "ERR FAILOVER target replica did not catch up within the timeout; aborted".into(),
        );
    }
    // A caught-up replica holds every write, so promoting it loses nothing even if it was never
    // granted (asynchronous mode grants only online replicas): the record takes it as Force.
    let how = if eligible && caught_up {
        Takeover::Promote
    } else {
        Takeover::Force
    };
    tracing::info!("FAILOVER: handing the primary role to member {id:016x} ({how:?})");
    promote(local, how, id, inc).await?;
    // Writers are released only after this node stopped serving.
    local.shared.repl.serve_until.store(0, Ordering::Release);
    Ok(())
}
