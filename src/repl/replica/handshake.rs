//! One link attempt: connect, AUTH, REPLCONF, PSYNC, then one flow per primary shard.

use super::flow::Flow;
use super::link::{control, Clock};
use super::*;

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

pub(super) async fn attempt(
    local: &Rc<Local>,
    gen: u64,
    link: &mut Link,
    clock: &Clock,
) -> io::Result<()> {
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
    // Failover mode: which life of this node, and the newest group epoch it knows (a primary older
    // than that learns it was replaced).
    let group = local.shard.borrow().group.as_ref().map(|g| {
        let epoch = g.node.as_ref().map_or(0, |n| n.record.epoch);
        (g.incarnation.to_string(), epoch.to_string())
    });
    if let Some((inc, epoch)) = group {
        ask(
            &mut s,
            &mut buf,
            &[
                b"REPLCONF",
                b"incarnation",
                inc.as_bytes(),
                b"epoch",
                epoch.as_bytes(),
            ],
            timeout,
            &cancel,
        )
        .await?;
    }
    let my_port = local.shared.port.to_string();
    ask(
        &mut s,
        &mut buf,
        &[
            b"REPLCONF",
            b"listening-port",
            my_port.as_bytes(),
            b"node-id",
            local.shared.node_id.as_bytes(),
        ],
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
    // A new session: ineligible until this primary grants it (repl/eligibility.rs).
    local
        .shared
        .repl
        .self_eligible
        .store(false, Ordering::Release);
    local.shared.repl.session.store(session, Ordering::Release);
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
                // The WAL's history ends here: it is written again once a snapshot covers the new one.
                sh.wal_detach();
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
        let key_load_delay_us = settings.key_load_delay_us;
        let spool_name = format!("{}-{i}", local.shared.run_id);
        p.alive.fetch_add(1, Ordering::AcqRel);
        local.shared.mesh.send(
            i % m,
            Kind::Normal,
            Box::new(move |_| {
                let local = crate::runtime::current_local();
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
                        flow.full(dir, limit, spool_name, key_load_delay_us).await
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
    // A completed sync can be continued from where its flows stopped; an incomplete full sync, or a log
    // that diverged from this replica's history, cannot.
    let cached = progress.continuable().then(|| (replid, progress.offsets()));
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
        sh.durable_abandon();
    } else {
        sh.reset_journal(at);
    }
    sh.repl.is_replica = true;
    sh.repl.identity.replid = replid;
    sh.wal_identity();
    sh.ks.passive_expiry = true;
    sh.ks.hooks.snapshots.clear();
}
