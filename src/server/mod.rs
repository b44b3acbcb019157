//! The server: start-up (listeners, shard threads and their main tasks: inbox, cron, accept loops) and
//! shutdown. The per-shard `Local` handle they run on is runtime/local.rs.

pub mod across;
pub mod blocking;
pub mod client_cmd;
pub mod conn;
pub mod debug;
pub mod dispatch;
pub mod gathered;
pub mod info;
pub mod introspect;
pub mod keyspace_wide;
pub mod migrate;
pub mod multi;
pub mod pubsub;
pub mod scripting;
pub mod sort;
pub mod special;
pub mod split;

use crate::config::Config;
use crate::runtime;
pub use crate::runtime::{current_local, Local, Shared, Tx};
use crate::shard::mesh::Kind;
use crate::shard::notify::Notify;
use crate::shard::Shard;
use std::cell::RefCell;
use std::net::{SocketAddr, TcpListener};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// The node's stable id: 40 lowercase hex characters kept in `tandem-node-id` under `dir` (the working
/// directory at start-up), created with `fresh()` the first time, so a replica is known to its primary by
/// the same id across reconnects and restarts (durability mode grants eligibility to an id). A file that is
/// not such an id stops start-up with one line naming it.
pub fn load_node_id(
    dir: &std::path::Path,
    fresh: impl FnOnce() -> String,
) -> Result<String, String> {
    let path = dir.join("tandem-node-id");
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let id = text.trim();
            if id.len() == 40
                && id
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            {
                Ok(id.to_string())
            } else {
                Err(format!(
                    "Bad node id file '{}': expected 40 lowercase hex characters",
                    path.display()
                ))
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let id = fresh();
            std::fs::write(&path, format!("{id}\n"))
                .map_err(|e| format!("Can't write the node id file '{}': {e}", path.display()))?;
            Ok(id)
        }
        Err(e) => Err(format!(
            "Can't read the node id file '{}': {e}",
            path.display()
        )),
    }
}

/// Resolves the bind list (`127.0.0.1 -::1`: a leading '-' means "skip if unavailable").
pub fn bind_addrs(bind: &[String], port: u16) -> Vec<(SocketAddr, bool)> {
    bind.iter()
        .filter_map(|b| {
            let (optional, host) = match b.strip_prefix('-') {
                Some(h) => (true, h),
                None => (false, b.as_str()),
            };
            let host = if host == "*" { "0.0.0.0" } else { host };
            let ip: std::net::IpAddr = host.parse().ok()?;
            Some((SocketAddr::new(ip, port), optional))
        })
        .collect()
}

/// Opens `shards` listeners per bind address on one port (resolving port 0 once, on the first bind).
pub fn open_listeners(
    config: &Config,
    shards: usize,
) -> std::io::Result<(u16, Vec<Vec<TcpListener>>)> {
    let settings = config.settings();
    let mut port = settings.port;
    let mut per_shard: Vec<Vec<TcpListener>> = (0..shards).map(|_| Vec::new()).collect();
    let addrs = bind_addrs(&settings.bind, port);
    if addrs.is_empty() {
        return Err(std::io::Error::other(format!(
            "no valid bind address in '{}'",
            settings.bind.join(" ")
        )));
    }
    for (addr, optional) in addrs {
        let mut opened = Vec::new();
        for _ in 0..shards {
            let a = SocketAddr::new(addr.ip(), port);
            match runtime::reuseport_listener(a) {
                Ok(l) => {
                    if port == 0 {
                        port = l.local_addr()?.port();
                    }
                    opened.push(l);
                }
                Err(e) if optional => {
                    tracing::warn!("Could not bind {a} (optional): {e}");
                    opened.clear();
                    break;
                }
                Err(e) => {
                    return Err(std::io::Error::new(
                        e.kind(),
                        format!("Could not create server TCP listening socket {a}: {e}"),
                    ))
                }
            }
        }
        for (s, l) in opened.into_iter().enumerate() {
            per_shard[s].push(l);
        }
    }
    Ok((port, per_shard))
}

/// Runs one shard until shutdown: the inbox, the periodic cron, and the accept loops.
/// What a shard starts from besides its configuration: what it recovers from disk (appendonly yes), and on
/// shard 0 of a recovered replica where its link continues from.
#[derive(Default)]
pub struct Boot {
    pub plan: Option<crate::persist::recover::ShardPlan>,
    pub cached: Option<(tandem_sync::replid::ReplId, Vec<u64>)>,
}

pub async fn shard_main(
    id: usize,
    shared: Arc<Shared>,
    config: Arc<Config>,
    listeners: Vec<TcpListener>,
    seed: u64,
    boot: Boot,
) {
    let nshards = shared.mesh.shards();
    let local = Rc::new(Local {
        id,
        shard: RefCell::new(Shard::new(id, nshards, config, seed, shared.replid)),
        shared: shared.clone(),
        unlocked: Notify::default(),
        shutdown: Notify::default(),
        journal: Notify::default(),
        wal: Notify::default(),
        wal_idle: Notify::default(),
        scratch: RefCell::new(None),
        tx_queue: RefCell::default(),
    });
    runtime::local::install(local.clone());
    if let Some(plan) = boot.plan {
        crate::persist::start_shard(&local, plan).await;
    }
    if id == 0 {
        let (failover, witness, replicaof) = {
            let s = &local.shard.borrow().settings;
            (s.failover, s.witness, s.replicaof.clone())
        };
        if failover {
            crate::repl::group::start(&local);
        }
        if witness {
            // A witness votes and holds no data: it refuses writes as a replica does, and follows no one.
            local.shared.repl.is_replica.store(true, Ordering::Release);
            crate::repl::gate::update(&local.shared, &local.shard.borrow().settings);
        } else if let Some((host, port)) = replicaof {
            // A recovered replica continues from what it recovered (a partial resync if the primary
            // still has it), once every shard has.
            while local.shared.repl.recovering.load(Ordering::Acquire) > 0 {
                runtime::sleep(std::time::Duration::from_millis(1)).await;
            }
            if let Some(c) = boot.cached {
                local.shard.borrow_mut().link =
                    Some(crate::repl::LinkStatus::new(host.clone(), port, 0, Some(c)));
            }
            let l = local.clone();
            runtime::spawn(async move { crate::repl::replica::start(&l, host, port) }).detach();
        }
    }
    runtime::spawn(inbox_loop(local.clone())).detach();
    runtime::spawn(cron(local.clone())).detach();
    for l in listeners {
        match runtime::to_async(l) {
            Ok(l) => runtime::spawn(conn::accept_loop(local.clone(), l)).detach(),
            Err(e) => tracing::warn!("shard {id}: listener: {e}"),
        }
    }
    // The shard lives until shutdown.
    loop {
        let seen = local.shutdown.generation();
        if shared.shutdown.load(Ordering::Acquire) {
            break;
        }
        local.shutdown.wait_since(seen).await;
    }
    // Connections see the flag when woken, close their sockets and deregister; wait for them.
    while !local.shard.borrow().clients.is_empty() {
        local.shard.borrow().wake_clients();
        let seen = local.shutdown.generation();
        futures_util::future::select(
            std::pin::pin!(local.shutdown.wait_since(seen)),
            std::pin::pin!(runtime::sleep(std::time::Duration::from_millis(20))),
        )
        .await;
    }
    // Other shards' closing connections may still call this one: it answers until they are all gone.
    shared.closing_shards.fetch_sub(1, Ordering::AcqRel);
    while shared.closing_shards.load(Ordering::Acquire) > 0 {
        runtime::sleep(std::time::Duration::from_millis(5)).await;
    }
    // Everything logged is on disk before the process exits.
    crate::persist::wal::drain(&local).await;
}

async fn inbox_loop(local: Rc<Local>) {
    let mut batch = Vec::new();
    loop {
        std::future::poll_fn(|cx| local.shared.mesh.inbox(local.id).poll_drain(cx, &mut batch))
            .await;
        let was_locked = local.shard.borrow().locked();
        {
            let mut sh = local.shard.borrow_mut();
            for msg in batch.drain(..) {
                sh.deliver(msg);
            }
        }
        let now_locked = local.shard.borrow().locked();
        if was_locked && !now_locked {
            local.unlocked.notify();
        }
        local.after_work();
        if local.shared.shutdown.load(Ordering::Acquire) {
            local.shutdown.notify();
            local.shard.borrow().wake_clients();
        }
    }
}

/// Periodic work, `hz` times a second: the active expiry cycle, bounded to a quarter of each period as in
/// Valkey (ACTIVE_EXPIRE_CYCLE_SLOW_TIME_PERC), and CLIENT PAUSE expiry.
async fn cron(local: Rc<Local>) {
    loop {
        let hz = local.shard.borrow().settings.hz.max(1);
        let period = std::time::Duration::from_micros(1_000_000 / hz as u64);
        runtime::sleep(period).await;
        if local.shard.borrow().locked() {
            continue;
        }
        let budget = period / 4;
        let start = std::time::Instant::now();
        let now = runtime::now_ms();
        let mut sh = local.shard.borrow_mut();
        // A replica deletes expired keys only when its primary's log says so.
        if !sh.repl.is_replica {
            sh.ks.active_expire(now, || start.elapsed() >= budget);
        }
        if !sh.repl.pending_snapshots.is_empty() {
            let timeout = sh.settings.repl_timeout_secs.max(1) * 1000;
            sh.expire_pending_snapshots(now, timeout);
        }
        if let Some((_, until)) = sh.pause {
            if until <= now {
                sh.pause = None;
                sh.wake_clients();
            }
        }
        for r in sh.durable_cron(now) {
            crate::repl::eligibility::request_revoke(
                &local,
                r,
                "no acknowledgement within durability-timeout",
            );
        }
        if local.id == 0 {
            let s = &sh.settings;
            let good = sh.registry.good(now, s.min_replicas_max_lag_secs * 1000);
            local
                .shared
                .repl
                .good_replicas
                .store(good, Ordering::Release);
            crate::repl::gate::update(&local.shared, s);
        }
        drop(sh);
        if local.id == 0 {
            crate::repl::eligibility::cron(&local);
        }
        local.after_work();
    }
}

/// Asks every shard to stop; used by SHUTDOWN and the signal handler.
pub fn request_shutdown(shared: &Shared) {
    shared.shutdown.store(true, Ordering::Release);
    for s in 0..shared.mesh.shards() {
        // An empty message wakes the inbox loop, which wakes the shard's connections.
        shared.mesh.send(s, Kind::Normal, Box::new(|_| ()));
    }
}

#[cfg(test)]
mod tests {
    use super::load_node_id;

    #[test]
    fn the_node_id_is_created_once_and_kept() {
        let dir = std::env::temp_dir().join(format!("tandem-node-id-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let a = load_node_id(&dir, || "ab".repeat(20)).unwrap();
        let b = load_node_id(&dir, || panic!("must not create a second id")).unwrap();
        assert_eq!(
            (a.as_str(), b.as_str()),
            ("ab".repeat(20).as_str(), a.as_str())
        );
        std::fs::write(dir.join("tandem-node-id"), "not an id\n").unwrap();
        let e = load_node_id(&dir, || "cd".repeat(20)).unwrap_err();
        assert!(e.starts_with("Bad node id file"), "{e}");
        std::fs::remove_dir_all(&dir).ok();
    }
}
