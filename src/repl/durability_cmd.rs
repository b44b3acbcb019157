//! The DURABILITY command (docs/durability.md): STATUS shows the mode, the replication factor, every
//! replica with its eligibility, acknowledged offsets and lag, and the replies waiting; FORGET takes a
//! replica out of the write quorum at once (a replica being retired), instead of waiting for its timeout.

use super::eligibility;
use crate::cmd::{CmdError, CmdResult};
use crate::resp::Reply;
use crate::runtime::Local;
use crate::shard::mesh::Kind;
use bytes::Bytes;
use std::rc::Rc;

struct Row {
    session: u64,
    node: String,
    addr: String,
    eligible: bool,
    acked: Vec<u64>,
}

pub async fn durability(local: &Rc<Local>, a: &[Bytes], r: &mut Reply) -> CmdResult {
    let sub = String::from_utf8_lossy(&a[1]).to_ascii_lowercase();
    match (sub.as_str(), a.len()) {
        ("status", 2) => status(local, r).await,
        ("forget", 3) => {
            let id = String::from_utf8_lossy(&a[2]).into_owned();
            let found = local
                .call(0, Kind::Normal, move |sh| {
                    let l = crate::runtime::current_local();
                    let sessions: Vec<u64> = sh
                        .registry
                        .replicas
                        .iter()
                        .filter(|(s, e)| e.node_id == id || s.to_string() == id)
                        .map(|(&s, _)| s)
                        .collect();
                    for &s in &sessions {
                        if let Some(e) = sh.registry.replicas.get_mut(&s) {
                            e.forgotten = true;
                        }
                        eligibility::revoke(sh, &l, s, "forgotten (DURABILITY FORGET)");
                    }
                    !sessions.is_empty()
                })
                .await;
            if !found {
                return Err(CmdError::other(
                    "ERR No such replica: give its node_id (INFO replication) or its session",
                ));
            }
            r.ok();
            Ok(())
        }
        ("help", 2) => {
            crate::cmd::args::help(
                r,
                &[
                    "DURABILITY <subcommand> [<arg> ...]. Subcommands are:",
                    "STATUS",
                    "    The mode, durability-replicas, every replica's eligibility, acknowledged",
                    "    offsets and lag, and the replies waiting for acknowledgements.",
                    "FORGET <node-id>",
                    "    Take the replica out of the write quorum at once (until it reconnects).",
                    "HELP",
                    "    Print this help.",
                ],
            );
            Ok(())
        }
        ("status" | "forget" | "help", _) => Err(CmdError::WrongArity(format!("durability|{sub}"))),
        _ => Err(CmdError::UnknownSubcommand {
            sub: String::from_utf8_lossy(&a[1]).into(),
            cmd: "DURABILITY".into(),
        }),
    }
}

async fn status(local: &Rc<Local>, r: &mut Reply) -> CmdResult {
    let per_shard: Vec<(u64, u64, usize)> = local
        .broadcast(|sh| {
            (
                sh.repl.offset(),
                sh.durable.q.commit(),
                sh.durable.q.waiting(),
            )
        })
        .await;
    let (on, need, timeout, rows) = local
        .call(0, Kind::Normal, |sh| {
            let rows: Vec<Row> = sh
                .registry
                .replicas
                .iter()
                .map(|(&session, e)| Row {
                    session,
                    node: e.node_id.clone(),
                    addr: format!("{}:{}", e.ip, e.port),
                    eligible: e.eligible,
                    acked: e.ack.offsets.clone(),
                })
                .collect();
            (
                sh.settings.durability,
                sh.settings.durability_replicas,
                sh.settings.durability_timeout_ms,
                rows,
            )
        })
        .await;
    let ends: Vec<u64> = per_shard.iter().map(|p| p.0).collect();
    let join = |v: &[u64]| v.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
    r.map(8);
    r.bulk(b"mode");
    r.bulk(if on { b"yes" } else { b"no" });
    r.bulk(b"durability-replicas");
    r.int(need as i64);
    r.bulk(b"durability-timeout");
    r.int(timeout as i64);
    r.bulk(b"eligible");
    r.int(rows.iter().filter(|x| x.eligible).count() as i64);
    r.bulk(b"log-offsets");
    r.bulk(join(&ends).as_bytes());
    r.bulk(b"commit-offsets");
    r.bulk(join(&per_shard.iter().map(|p| p.1).collect::<Vec<_>>()).as_bytes());
    r.bulk(b"waiting");
    r.int(per_shard.iter().map(|p| p.2).sum::<usize>() as i64);
    r.bulk(b"replicas");
    r.array(rows.len());
    for x in &rows {
        let lag: u64 = ends
            .iter()
            .zip(x.acked.iter().chain(std::iter::repeat(&0)))
            .map(|(e, a)| e.saturating_sub(*a))
            .sum();
        r.map(6);
        r.bulk(b"node-id");
        r.bulk(x.node.as_bytes());
        r.bulk(b"session");
        r.int(x.session as i64);
        r.bulk(b"address");
        r.bulk(x.addr.as_bytes());
        r.bulk(b"eligible");
        r.bulk(if x.eligible { b"yes" } else { b"no" });
        r.bulk(b"acked-offsets");
        r.bulk(join(&x.acked).as_bytes());
        r.bulk(b"lag-bytes");
        r.int(lag as i64);
    }
    Ok(())
}
