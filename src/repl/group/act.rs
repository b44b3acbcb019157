//! The data path obeying the group record (docs/failover.md "Data path"):
//! - **Role.** The record's primary in this incarnation promotes itself; every other data member follows
//!   the record's primary at the address the record gives (a deposed primary so becomes a replica of its
//!   successor, and catches up by partial resync or the parallel full sync). A member the record names
//!   primary in an older incarnation (it restarted) does neither: it waits for the group to promote
//!   another, and serves nothing meanwhile.
//! - **Eligibility.** A replica is eligible when the record says so for its incarnation. The primary's
//!   grants and revokes are record entries: a grant (repl/eligibility.rs, after the writer pause) counts
//!   once applied, and a revoked session is still waited for by every shard until the record no longer
//!   lists it (and no grant of it can still apply), so the committed eligible set is always a subset of
//!   the replicas every write waits for. In asynchronous mode (durability off) an online replica is
//!   granted without a pause: eligibility there only says who may be promoted.

use crate::repl::eligibility;
use crate::repl::registry::ReplicaState;
use crate::runtime::{self, Local};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use tandem_sync::group::record::{member_id, Entry, MemberId};

/// The offsets this node reports: as a replica, what its flows applied of each primary shard; as a
/// primary, its shards' log ends.
pub async fn offsets(local: &Rc<Local>) -> Vec<u64> {
    if local.shared.repl.is_replica.load(Ordering::Acquire) {
        let sh = local.shard.borrow();
        return sh
            .link
            .as_ref()
            .and_then(|l| l.progress.as_ref())
            .map(|p| p.offsets())
            .unwrap_or_default();
    }
    local.broadcast(|sh| sh.repl.offset()).await
}

enum Want {
    Nothing,
    Primary,
    Follow(String, u16),
}

/// Shard 0, after every driver step: role, this replica's eligibility, the primary's grants and revokes.
pub fn follow_record(local: &Rc<Local>) {
    let want = {
        let mut sh = local.shard.borrow_mut();
        let Some(g) = sh.group.as_deref() else {
            return;
        };
        let Some(n) = g.node.as_ref() else {
            return;
        };
        if g.witness {
            return;
        }
        let eligible = n.record.is_eligible(g.me, g.incarnation);
        local
            .shared
            .repl
            .self_eligible
            .store(eligible, Ordering::Release);
        let waiting =
            matches!(n.record.primary, Some((p, inc)) if p == g.me && inc != g.incarnation);
        let want = match n.record.primary {
            Some((p, inc)) if p == g.me && inc == g.incarnation => Want::Primary,
            Some((p, _)) if p != g.me => n
                .record
                .members
                .get(&p)
                .and_then(|m| super::split_addr(&m.addr))
                .map_or(Want::Nothing, |(h, p)| Want::Follow(h, p)),
            _ => Want::Nothing,
        };
        let primary = !local.shared.repl.is_replica.load(Ordering::Acquire);
        if primary && n.is_primary() {
            eligibility_duties(&mut sh, local);
        }
        let g = sh.group.as_deref_mut().expect("checked");
        if waiting && !g.said_waiting {
            g.said_waiting = true;
            tracing::warn!(
                "Group: this node was the primary in an earlier life and restarted without its data; it \
                 serves nothing until the group promotes an eligible replica. After a full outage none is \
                 eligible: FAILOVER TAKEOVER on a member resumes the group, losing the acknowledged writes \
                 that member lacks (docs/failover.md)"
            );
        }
        want
    };
    let is_replica = local.shared.repl.is_replica.load(Ordering::Acquire);
    let following = local
        .shard
        .borrow()
        .link
        .as_ref()
        .map(|l| (l.host.clone(), l.port));
    let act = match want {
        Want::Primary => is_replica,
        Want::Follow(ref h, p) => !is_replica || following != Some((h.clone(), p)),
        Want::Nothing => false,
    };
    if !act || super::with(local, |g| std::mem::replace(&mut g.acting, true)) != Some(false) {
        return;
    }
    let l = local.clone();
    runtime::spawn(async move {
        match want {
            Want::Primary => match crate::repl::commands::become_primary(&l, false).await {
                Ok(_) => tracing::info!("Group: promoted by the record; primary of its epoch"),
                Err(e) => tracing::warn!("Group: promotion failed: {e}"),
            },
            Want::Follow(h, p) => {
                tracing::info!("Group: the record's primary is {h}:{p}; following it");
                let was_primary = !l.shared.repl.is_replica.load(Ordering::Acquire);
                crate::repl::commands::follow(&l, h, p).await;
                if was_primary {
                    // Its clients came for the primary: they are told by a closed connection, as
                    // Sentinel's reconfiguration does, and find the new one (a deposed primary would
                    // otherwise go on answering their reads as a replica, behind the new primary).
                    disconnect_clients(&l).await;
                }
            }
            Want::Nothing => {}
        }
        super::with(&l, |g| g.acting = false);
    })
    .detach();
}

/// Closes every client connection of every shard (the group's own connections reopen by themselves).
async fn disconnect_clients(local: &Rc<Local>) {
    let n: usize = local
        .broadcast(|sh| sh.kill_clients(|_| true))
        .await
        .into_iter()
        .sum();
    tracing::info!("Group: deposed; closed {n} client connections");
}

/// The serving primary's part: grants that applied (or can no longer apply), revokes the record has
/// taken, and in asynchronous mode grants of online replicas.
fn eligibility_duties(sh: &mut crate::shard::Shard, local: &Local) {
    let now = runtime::mono_ms();
    let durability = sh.settings.durability;
    let g = sh.group.as_deref_mut().expect("group mode");
    let n = g.node.as_ref().expect("checked by the caller");
    let (version, epoch, me) = (n.record.version, n.record.epoch, g.me);
    let eligible_in_record = |id: MemberId, inc: u64| n.record.is_eligible(id, inc);
    let mut proposals: Vec<Entry> = Vec::new();
    let mut settled: Vec<u64> = Vec::new();
    let mut changed = false;
    let revoking: Vec<u64> = sh.registry.revoking.iter().map(|r| r.session).collect();
    // Members with a revoke in flight (of any session: a reconnect revokes the old one): the record's
    // eligibility of them is the old grant's until the revoke lands, so it says nothing of a new one.
    let revoking_ids: Vec<MemberId> = sh.registry.revoking.iter().map(|r| r.id).collect();
    for (session, e) in sh.registry.replicas.iter_mut() {
        let Some(id) = member_id(&e.node_id) else {
            continue;
        };
        if revoking.contains(session) || revoking_ids.contains(&id) {
            continue;
        }
        let grant = Entry::Grant {
            by: me,
            version,
            id,
            incarnation: e.incarnation,
        };
        match e.grant_pending {
            Some(_) if eligible_in_record(id, e.incarnation) => {
                e.grant_pending = None;
                e.eligible = true;
                changed = true;
                tracing::info!(
                    "Replica {}:{} is eligible (the record took the grant)",
                    e.ip,
                    e.port
                );
            }
            // The grant saw an older version (it can never apply), or was lost with a leader change:
            // proposed again. The shards wait for the replica all along, so it still holds every
            // acknowledged write.
            Some((v, at)) if v != version || now.saturating_sub(at) >= super::RETRY_MS => {
                e.grant_pending = Some((version, now));
                proposals.push(grant);
            }
            Some(_) => {}
            None if !durability
                && !e.eligible
                && !e.forgotten
                && e.state == ReplicaState::Online
                && e.incarnation != 0 =>
            {
                e.grant_pending = Some((version, now));
                proposals.push(grant);
            }
            // Counted eligible while the record no longer says so (a grant taken from an older
            // session's record entry): granted again; the shards have waited for it all along.
            None if e.eligible && !eligible_in_record(id, e.incarnation) && e.incarnation != 0 => {
                e.grant_pending = Some((version, now));
                proposals.push(grant);
            }
            None => {}
        }
    }
    let mut still = Vec::new();
    for mut r in std::mem::take(&mut sh.registry.revoking) {
        let can_still_apply = r.grant_version == Some(version);
        if !eligible_in_record(r.id, r.incarnation) && !can_still_apply {
            settled.push(r.session);
            continue;
        }
        if eligible_in_record(r.id, r.incarnation)
            && now.saturating_sub(r.proposed_ms) >= super::RETRY_MS
        {
            r.proposed_ms = now;
            proposals.push(Entry::Revoke {
                by: me,
                epoch,
                id: r.id,
            });
        }
        still.push(r);
    }
    sh.registry.revoking = still;
    for e in &proposals {
        let _ = g.propose(e);
    }
    for s in settled {
        eligibility::revoke_everywhere(sh, local, s);
    }
    if changed {
        eligibility::publish(sh, local);
    }
}
