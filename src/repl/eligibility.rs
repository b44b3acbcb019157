//! Durability mode's eligible set, decided on shard 0 (docs/durability.md): granting a replica that caught
//! up, revoking one that was lost, fell silent, resynced or was forgotten.
//!
//! - **Grant.** Shard 0's cron picks an online replica session that is not eligible. If its acks are
//!   within `NEAR` bytes of every shard's log end, writers are paused by a transaction over every shard
//!   (as a manual failover pauses them), and the replica is granted once it has acknowledged every
//!   shard's log end exactly (`ShardQuorum::grant` checks it on each shard), or the attempt is given up
//!   after `MAX_PAUSE`. The grant is a record of shard 0's log (`DURABILITY GRANTED <node> <session>`),
//!   so the replica learns it in order: after every write it already holds.
//! - **Revoke.** The session's entry stops being eligible on shard 0, then every shard is told; each
//!   stops waiting for it only when it learns (a shard that has not learned yet still waits for it, so no
//!   write commits with fewer replicas than were eligible when it was made). A `DURABILITY REVOKED`
//!   record tells the replica if it still listens.
//!
//! Invariants: only shard 0 changes the eligible set; a grant happens only with every shard locked and
//! every shard's log end acknowledged; a session is granted at most once (a reconnect is a new session,
//! ineligible until granted).

use super::gate;
use super::registry::Revoking;
use crate::runtime::{self, Local};
use crate::shard::mesh::Kind;
use crate::shard::Shard;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tandem_sync::group::record::{member_id, Entry};

/// A replica this close to every shard's log end (bytes, summed) is worth pausing writers for.
const NEAR: u64 = 256 << 10;
/// The longest writers stay paused for one grant attempt.
const MAX_PAUSE: Duration = Duration::from_millis(50);

/// Shard 0's periodic check: start a grant for one candidate, or clear everything if the mode is off.
pub fn cron(local: &Rc<Local>) {
    let mut sh = local.shard.borrow_mut();
    // In failover mode with durability off, the group grants online replicas (repl/group/act.rs).
    if !sh.settings.durability && sh.group.is_some() {
        return;
    }
    if !sh.settings.durability || sh.repl.is_replica {
        let all: Vec<u64> = sh
            .registry
            .replicas
            .iter()
            .filter(|(_, e)| e.eligible)
            .map(|(&id, _)| id)
            .collect();
        for id in all {
            revoke(&mut sh, local, id, "durability mode is off");
        }
        return;
    }
    if sh.registry.granting || runtime::now_ms() < sh.registry.grant_retry_at_ms {
        return;
    }
    // A session whose grant is in the group's hands, or whose revoke is, is not tried again until that
    // settles (repl/group/act.rs): granting it meanwhile could leave it eligible in the record while
    // the shards, told of the revoke, no longer wait for it.
    let reg = &sh.registry;
    let candidate = reg
        .replicas
        .iter()
        .find(|(id, e)| {
            !e.eligible
                && !e.forgotten
                && e.grant_pending.is_none()
                && !reg.revoking.iter().any(|r| r.session == **id)
                && e.state == super::registry::ReplicaState::Online
        })
        .map(|(&id, _)| id);
    if let Some(id) = candidate {
        sh.registry.granting = true;
        drop(sh);
        let local2 = local.clone();
        runtime::spawn(async move {
            try_grant(&local2, id).await;
            local2.shard.borrow_mut().registry.granting = false;
        })
        .detach();
    }
}

async fn try_grant(local: &Rc<Local>, r: u64) {
    let n = local.nshards();
    let near = local
        .broadcast(move |sh| sh.durable.q.lag(r))
        .await
        .into_iter()
        .try_fold(0u64, |acc, lag| acc.checked_add(lag?))
        .is_some_and(|lag| lag <= NEAR);
    if !near {
        return;
    }
    let all: Vec<usize> = (0..n).collect();
    let tx = local.begin_tx(all.clone(), false).await;
    let paused = Instant::now();
    let caught_up = loop {
        if !tx
            .on(0, move |sh| sh.registry.replicas.contains_key(&r))
            .await
        {
            break false;
        }
        let ok = tx
            .each(&all, move |sh| sh.durable.q.caught_up(r).is_ok())
            .await;
        if ok.iter().all(|&x| x) {
            break true;
        }
        if paused.elapsed() >= MAX_PAUSE {
            break false;
        }
        runtime::sleep(Duration::from_micros(200)).await;
    };
    if !caught_up {
        drop(tx);
        let mut sh = local.shard.borrow_mut();
        let reg = &mut sh.registry;
        reg.grant_failures = (reg.grant_failures + 1).min(6);
        let wait = (100u64 << reg.grant_failures).min(5000);
        reg.grant_retry_at_ms = runtime::now_ms() + wait;
        tracing::info!(
            "replica session {r}: not caught up within the grant pause; next attempt in {wait} ms"
        );
        return;
    }
    local.shard.borrow_mut().registry.grant_failures = 0;
    let granted = tx.each(&all, move |sh| sh.durable.q.grant(r).is_ok()).await;
    let pause_us = paused.elapsed().as_micros() as u64;
    let ok = granted.iter().all(|&x| x);
    let msg = tx
        .on(0, move |sh| {
            let Some(e) = sh.registry.replicas.get_mut(&r) else {
                return Err("its link was lost during the pause");
            };
            if !ok {
                return Err("it fell behind");
            }
            if !sh.settings.durability {
                return Err("durability mode was turned off");
            }
            if sh.group.is_some() {
                return propose_grant(sh, r);
            }
            e.eligible = true;
            let who = announce(sh, r, b"GRANTED");
            // Admission follows the registry at once (INFO must not show it eligible while writes
            // are still refused).
            publish(sh, &runtime::current_local());
            let reg = &mut sh.registry;
            reg.grants += 1;
            reg.last_grant_pause_us = pause_us;
            reg.max_grant_pause_us = reg.max_grant_pause_us.max(pause_us);
            Ok(who)
        })
        .await;
    drop(tx);
    match msg {
        Ok(who) => {
            tracing::info!("{who}: granted after a writer pause of {pause_us} us")
        }
        Err(why) => {
            // Partly granted shards must not keep counting it.
            let mut sh = local.shard.borrow_mut();
            revoke_everywhere(&mut sh, local, r);
            tracing::info!("replica session {r}: grant abandoned: {why}");
        }
    }
}

/// Failover mode: the grant becomes a record entry; the replica counts once the record takes it
/// (repl/group/act.rs), and every shard waits for it from now on.
fn propose_grant(sh: &mut Shard, r: u64) -> Result<String, &'static str> {
    let e = &sh.registry.replicas[&r];
    let (Some(id), inc) = (member_id(&e.node_id), e.incarnation) else {
        return Err("it has no node id");
    };
    if inc == 0 {
        return Err("it did not say its incarnation");
    }
    let who = format!("Replica {}:{} (member {id:016x})", e.ip, e.port);
    let g = sh.group.as_deref_mut().expect("failover mode");
    let (Some(n), me) = (g.node.as_ref(), g.me) else {
        return Err("this node has not joined its group");
    };
    let version = n.record.version;
    g.propose(&Entry::Grant {
        by: me,
        version,
        id,
        incarnation: inc,
    })
    .map_err(|_| "the group has no leader to take the grant")?;
    let e = sh.registry.replicas.get_mut(&r).expect("checked");
    e.grant_pending = Some((version, runtime::mono_ms()));
    Ok(format!(
        "{who}: grant proposed to the group at version {version};"
    ))
}

/// Logs shard 0's control record `DURABILITY <what> <node-id> <session>` for session `r` (which the
/// registry holds) and returns how the log names the replica.
fn announce(sh: &mut Shard, r: u64, what: &[u8]) -> String {
    let e = &sh.registry.replicas[&r];
    let who = format!(
        "Replica {}:{} (node {}, session {r})",
        e.ip, e.port, e.node_id
    );
    let node = e.node_id.clone();
    sh.log_control(&[
        b"DURABILITY",
        what,
        node.as_bytes(),
        r.to_string().as_bytes(),
    ]);
    who
}

/// Publishes the eligible count for admission (gate) from shard 0's registry.
pub(crate) fn publish(sh: &Shard, local: &Local) {
    local
        .shared
        .repl
        .eligible
        .store(sh.registry.eligible_count(), Ordering::Release);
    gate::update(&local.shared, &sh.settings);
}

/// On shard 0: session `r` is no longer eligible (if it was). Returns whether it was.
pub fn revoke(sh: &mut Shard, local: &Local, r: u64, why: &str) -> bool {
    let group = sh.group.is_some();
    let Some(e) = sh.registry.replicas.get_mut(&r) else {
        return false;
    };
    if group && (e.eligible || e.grant_pending.is_some()) {
        // Failover mode: admission stops counting it now; the shards keep waiting for it until the
        // record has dropped it (repl/group/act.rs), so no write commits without a replica the group
        // could still promote.
        if let Some(id) = member_id(&e.node_id) {
            sh.registry.revoking.push(Revoking {
                session: r,
                id,
                incarnation: e.incarnation,
                grant_version: e.grant_pending.map(|p| p.0),
                proposed_ms: 0,
            });
            e.eligible = false;
            e.grant_pending = None;
            sh.registry.revokes += 1;
            tracing::warn!(
                "Replica {}:{} (session {r}) is being revoked: {why}",
                e.ip,
                e.port
            );
            publish(sh, local);
            return true;
        }
    }
    if !e.eligible {
        return false;
    }
    e.eligible = false;
    sh.registry.revokes += 1;
    let who = announce(sh, r, b"REVOKED");
    tracing::warn!("{who} is no longer eligible: {why}");
    revoke_everywhere(sh, local, r);
    publish(sh, local);
    true
}

/// Tells every shard to stop counting session `r` (shard 0, the caller, at once).
pub(crate) fn revoke_everywhere(sh: &mut Shard, local: &Local, r: u64) {
    sh.durable_revoke(r);
    for s in 1..local.nshards() {
        local
            .shared
            .mesh
            .send(s, Kind::Normal, Box::new(move |sh| sh.durable_revoke(r)));
    }
}

/// From any shard: ask shard 0 to revoke session `r`.
pub fn request_revoke(local: &Local, r: u64, why: &'static str) {
    local.shared.mesh.send(
        0,
        Kind::Normal,
        Box::new(move |sh| {
            let local = runtime::current_local();
            revoke(sh, &local, r, why);
        }),
    );
}
