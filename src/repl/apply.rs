//! How a replica applies log units: every record goes through the command table's execution path, the
//! same one client commands take (`execute_part`), with the clock the primary's unit carries.
//!
//! A *group* is what must be applied atomically: one plain unit, or every part of a multi-shard
//! transaction. Its records are routed to the replica shards that own their keys (a record whose keys
//! span replica shards is split as the primary splits a client's MSET or DEL); slot-scoped records
//! (FLUSHDB, FLUSHALL, SWAPDB) go to the replica shards holding some of the originating primary shard's
//! slots. A group that touches one replica shard is one message to it; one that touches several runs as a
//! multi-shard transaction of the replica's own (shard/tx.rs), so no reader sees part of it.
//!
//! Invariants: a group is applied whole or not at all (a record the table refuses fails the whole sync,
//! which starts over); when the two sides' shard counts are equal, replica shard j keeps primary shard j's
//! units verbatim in its backlog in the same step as it applies them, so its offset is always the end of
//! the last unit it applied.

use crate::cmd::exec::{execute_part, Exec};
use crate::cmd::{lookup, Handler, Merge};
use crate::resp::{Proto, Reply};
use crate::runtime::Local;
use crate::shard::mesh::Kind;
use crate::shard::Shard;
use crate::slot::{key_slot, shard_slots, slot_owner};
use bytes::Bytes;
use std::rc::Rc;
use std::sync::Arc;
use tandem_sync::unit::Unit;

/// One received unit of primary shard `from`, checked (its bytes are a whole, verified unit).
#[derive(Clone)]
pub struct Received {
    pub from: usize,
    pub bytes: Bytes,
}

impl Received {
    pub fn unit(&self) -> Unit<'_> {
        Unit::trusted(&self.bytes)
    }
}

/// A record ready to apply on one replica shard.
struct Op {
    from: usize,
    time: u64,
    db: usize,
    args: Vec<Bytes>,
}

/// What one replica shard does for a group: its records, and the units it keeps verbatim.
#[derive(Default)]
struct Work {
    ops: Vec<Op>,
    keep: Vec<(u64, Bytes)>,
}

fn is_slot_scoped(name: &[u8]) -> bool {
    name.eq_ignore_ascii_case(b"flushdb")
        || name.eq_ignore_ascii_case(b"flushall")
        || name.eq_ignore_ascii_case(b"swapdb")
}

/// Replica shards holding some of primary shard `i`'s (of `n`) slots, when the replica has `m` shards.
fn overlapping(i: usize, n: usize, m: usize) -> std::ops::Range<usize> {
    let r = shard_slots(i, n);
    if r.is_empty() {
        return 0..0;
    }
    slot_owner(r.start as u16, m)..slot_owner((r.end - 1) as u16, m) + 1
}

/// Splits a record by the replica shard owning each of its keys.
fn route(
    args: Vec<Bytes>,
    from: usize,
    n: usize,
    m: usize,
) -> Result<Vec<(usize, Vec<Bytes>)>, String> {
    let name = &args[0];
    if is_slot_scoped(name) {
        return Ok(overlapping(from, n, m).map(|t| (t, args.clone())).collect());
    }
    let spec = lookup(name).ok_or_else(|| {
        format!(
            "unknown command '{}' in the replication log",
            String::from_utf8_lossy(name)
        )
    })?;
    let Handler::Key(_, merge) = spec.handler else {
        return Err(format!("'{}' cannot be applied from the log", spec.name));
    };
    if !spec.arity_ok(args.len()) {
        return Err(format!("wrong arity for '{}' in the log", spec.name));
    }
    let positions: Vec<usize> = spec.keys_of(&args);
    let owner = |p: usize| slot_owner(key_slot(&args[p]), m);
    let Some(&first) = positions.first() else {
        return Err(format!("'{}' in the log names no key", spec.name));
    };
    let t = owner(first);
    if positions.iter().all(|&p| owner(p) == t) {
        return Ok(vec![(t, args)]);
    }
    if merge.is_none() || merge == Some(Merge::Gather) {
        return Err(format!("'{}' in the log spans shards", spec.name));
    }
    let step = spec.step.max(1) as usize;
    let mut parts: Vec<(usize, Vec<Bytes>)> = Vec::new();
    for &p in &positions {
        let t = owner(p);
        let i = match parts.iter().position(|x| x.0 == t) {
            Some(i) => i,
            None => {
                parts.push((t, vec![args[0].clone()]));
                parts.len() - 1
            }
        };
        parts[i].1.extend_from_slice(&args[p..p + step]);
    }
    Ok(parts)
}

/// Applies a group (one plain unit, or all parts of one transaction) atomically on this replica, whose
/// primary has `n` shards.
pub async fn apply_group(local: &Rc<Local>, group: &[Received], n: usize) -> Result<(), String> {
    let m = local.nshards();
    let mut work: Vec<Work> = (0..m).map(|_| Work::default()).collect();
    for part in group {
        let u = part.unit();
        for r in u.records() {
            let r = r.map_err(|e| e.to_string())?;
            if r.args
                .first()
                .is_some_and(|a| a.eq_ignore_ascii_case(b"durability"))
            {
                control(local, &r.args);
                continue;
            }
            if let Some(sharded) = publish_record(&r.args) {
                // A message published on the primary: this node's subscribers get it too (Valkey's).
                let (ch, msg) = (
                    Bytes::copy_from_slice(r.args[1]),
                    Bytes::copy_from_slice(r.args[2]),
                );
                for s in 0..m {
                    let (ch, msg) = (ch.clone(), msg.clone());
                    local.shared.mesh.send(
                        s,
                        Kind::Normal,
                        Box::new(move |sh| {
                            sh.publish_here(sharded, &ch, &msg);
                        }),
                    );
                }
                continue;
            }
            let args: Vec<Bytes> = r.args.iter().map(|a| part.bytes.slice_ref(a)).collect();
            for (t, args) in route(args, part.from, n, m)? {
                work[t].ops.push(Op {
                    from: part.from,
                    time: u.time,
                    db: r.db,
                    args,
                });
            }
        }
        if m == n {
            work[part.from].keep.push((u.start, part.bytes.clone()));
        }
    }
    let targets: Vec<usize> = (0..m)
        .filter(|&t| !work[t].ops.is_empty() || !work[t].keep.is_empty())
        .collect();
    match targets[..] {
        [] => Ok(()),
        [t] => {
            let w = std::mem::take(&mut work[t]);
            local
                .call(t, Kind::Normal, move |sh| apply_work(sh, &w, n))
                .await
        }
        _ => {
            let work = Arc::new(work);
            let tx = local.begin_tx(targets.clone(), false).await;
            let results = tx
                .each(&targets, move |sh| apply_work(sh, &work[sh.id], n))
                .await;
            drop(tx);
            results.into_iter().collect()
        }
    }
}

/// Recovery (persist/recover.rs): replays one of this shard's own units from its WAL, through the same
/// execution path, and keeps it in the backlog (so replicas continue from a restarted primary). The unit
/// was checked when read; its records all belong to this shard (same slots, same shard count).
pub fn replay(sh: &mut Shard, unit: &Bytes) -> Result<(), String> {
    let u = Unit::trusted(unit);
    let mut w = Work::default();
    for r in u.records() {
        let r = r.map_err(|e| e.to_string())?;
        if r.args
            .first()
            .is_some_and(|a| a.eq_ignore_ascii_case(b"durability"))
            || publish_record(&r.args).is_some()
        {
            // Grants and revokes belong to the sessions of the process that logged them; messages were
            // for the subscribers of that time.
            continue;
        }
        let args: Vec<Bytes> = r.args.iter().map(|a| unit.slice_ref(a)).collect();
        if !is_slot_scoped(&args[0]) {
            route(args.clone(), sh.id, sh.nshards, sh.nshards)?;
        }
        w.ops.push(Op {
            from: sh.id,
            time: u.time,
            db: r.db,
            args,
        });
    }
    w.keep.push((u.start, unit.clone()));
    let n = sh.nshards;
    apply_work(sh, &w, n)
}

/// Applies one replica shard's share of a group, then keeps the units it mirrors.
fn apply_work(sh: &mut Shard, w: &Work, n: usize) -> Result<(), String> {
    let mut sink = Reply::new(Proto::Resp2);
    let dbs = sh.ks.databases();
    for op in &w.ops {
        if op.db >= dbs {
            return Err(format!(
                "the log names database {}, this server has {dbs}",
                op.db
            ));
        }
        let name = &op.args[0];
        if is_slot_scoped(name) {
            apply_slot_scoped(sh, op, shard_slots(op.from, n))?;
            continue;
        }
        let spec = lookup(name).expect("routed records are in the table");
        sink.buf.clear();
        let ex = Exec::new(op.db, op.time);
        execute_part(sh, spec, &op.args, &ex, &mut sink);
        if sink.buf.first() == Some(&b'-') {
            return Err(format!(
                "applying {}: {}",
                spec.name,
                String::from_utf8_lossy(&sink.buf).trim_end()
            ));
        }
    }
    for (start, unit) in &w.keep {
        sh.log_verbatim(*start, unit);
    }
    Ok(())
}

/// `PUBLISH channel message` (Some(false)) or `SPUBLISH ...` (Some(true)): a record of no key.
fn publish_record(args: &[&[u8]]) -> Option<bool> {
    match args {
        [name, _, _] if name.eq_ignore_ascii_case(b"publish") => Some(false),
        [name, _, _] if name.eq_ignore_ascii_case(b"spublish") => Some(true),
        _ => None,
    }
}

/// A durability-mode control record (repl/eligibility.rs): `DURABILITY GRANTED|REVOKED <node> <session>`.
/// It changes no key; it tells the replica it names, in this session, whether it is eligible. Others
/// (other replicas, or this one in an older session) ignore it.
fn control(local: &Local, args: &[&[u8]]) {
    let [_, what, node, session] = args else {
        return;
    };
    let r = &local.shared.repl;
    // In failover mode the group's record says whether this replica is eligible (repl/group/act.rs).
    if r.group.load(std::sync::atomic::Ordering::Acquire) {
        return;
    }
    let ours = *node == local.shared.node_id.as_bytes()
        && std::str::from_utf8(session)
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            == Some(r.session.load(std::sync::atomic::Ordering::Acquire));
    if !ours {
        return;
    }
    let granted = what.eq_ignore_ascii_case(b"granted");
    r.self_eligible
        .store(granted, std::sync::atomic::Ordering::Release);
    tracing::info!(
        "durability: this replica is {} by its primary",
        if granted {
            "eligible (granted)"
        } else {
            "no longer eligible (revoked)"
        }
    );
}

/// FLUSHDB, FLUSHALL and SWAPDB of one primary shard cover that shard's slots only.
fn apply_slot_scoped(sh: &mut Shard, op: &Op, range: std::ops::Range<usize>) -> Result<(), String> {
    let dbs = sh.ks.databases();
    let name = op.args[0].to_ascii_uppercase();
    match (&name[..], op.args.len()) {
        (b"FLUSHDB", 1) => sh.ks.flush_slots(Some(op.db), range),
        (b"FLUSHALL", 1) => sh.ks.flush_slots(None, range),
        (b"SWAPDB", 3) => {
            let p = |b: &Bytes| {
                std::str::from_utf8(b)
                    .ok()
                    .and_then(|s| s.parse::<usize>().ok())
                    .filter(|&d| d < dbs)
            };
            match (p(&op.args[1]), p(&op.args[2])) {
                (Some(a), Some(b)) => sh.ks.swap_slots(a, b, range),
                _ => return Err("bad SWAPDB record".into()),
            }
        }
        _ => return Err("bad slot-scoped record".into()),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    /// Keys that live on different replica shards when it has `m` of them.
    fn keys_on_two_shards(m: usize) -> (String, String) {
        let k1 = "a".to_string();
        let s1 = slot_owner(key_slot(k1.as_bytes()), m);
        let k2 = (0..1000)
            .map(|i| format!("k{i}"))
            .find(|k| slot_owner(key_slot(k.as_bytes()), m) != s1)
            .unwrap();
        (k1, k2)
    }

    #[test]
    fn records_are_split_by_the_replica_shard_of_each_key() {
        let (k1, k2) = keys_on_two_shards(3);
        let mset = vec![b("MSET"), b(&k1), b("1"), b(&k2), b("2")];
        let parts = route(mset, 0, 1, 3).unwrap();
        assert_eq!(parts.len(), 2);
        for (t, args) in &parts {
            assert_eq!(args.len(), 3);
            assert_eq!(slot_owner(key_slot(&args[1]), 3), *t);
        }
        let one = route(vec![b("INCR"), b(&k1)], 0, 1, 3).unwrap();
        assert_eq!(
            one,
            vec![(
                slot_owner(key_slot(k1.as_bytes()), 3),
                vec![b("INCR"), b(&k1)]
            )]
        );
        assert!(route(vec![b("NOSUCH"), b("x")], 0, 1, 3).is_err());
        assert!(route(vec![b("INCR")], 0, 1, 3).is_err(), "arity");
    }

    #[test]
    fn slot_scoped_records_reach_the_shards_overlapping_the_primary_shard() {
        // Primary shard 1 of 2 holds slots 8192..16384: replica shards 1 and 2 of 3 overlap it.
        let parts = route(vec![b("FLUSHALL")], 1, 2, 3).unwrap();
        assert_eq!(parts.iter().map(|p| p.0).collect::<Vec<_>>(), vec![1, 2]);
        let same = route(vec![b("FLUSHALL")], 1, 2, 2).unwrap();
        assert_eq!(same.iter().map(|p| p.0).collect::<Vec<_>>(), vec![1]);
    }
}
