//! The server: start-up (listeners, shard threads), the per-shard `Local` handle through which a
//! connection reaches its own shard directly and other shards by message, and shutdown.

pub mod client_cmd;
pub mod conn;
pub mod debug;
pub mod info;
pub mod introspect;
pub mod special;

use crate::config::Config;
use crate::runtime;
use crate::shard::mesh::{Kind, Mesh};
use crate::shard::notify::Notify;
use crate::shard::Shard;
use futures_channel::oneshot;
use std::cell::RefCell;
use std::net::{SocketAddr, TcpListener};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

/// What all shards share: the mesh and a few process-wide counters (atomics; no locks on any path).
pub struct Shared {
    pub mesh: Mesh,
    pub next_client_id: AtomicU64,
    pub next_tx: AtomicU64,
    pub connected: AtomicUsize,
    pub shutdown: AtomicBool,
    pub start_ms: u64,
    pub run_id: String,
    pub port: u16,
    pub config_file: Option<String>,
    pub executable: String,
    pub repl: crate::repl::ReplShared,
    /// The replication id every shard starts with.
    pub replid: tandem_sync::replid::ReplId,
}

thread_local! {
    /// The shard this thread runs, for work that arrives by message and must become a task of the shard
    /// (replication flows). Set once per shard thread; never shared across threads.
    static CURRENT: RefCell<Option<Rc<Local>>> = const { RefCell::new(None) };
}

/// The `Local` of the calling shard thread.
pub fn current_local() -> Rc<Local> {
    CURRENT.with(|c| c.borrow().clone().expect("called on a shard thread"))
}

/// One shard's view of the world, owned by its thread.
pub struct Local {
    pub id: usize,
    pub shard: RefCell<Shard>,
    pub shared: Arc<Shared>,
    /// Signalled when this shard's transaction lock is released.
    pub unlocked: Notify,
    /// Signalled on shutdown (accept loops and the shard's main task wait on it).
    pub shutdown: Notify,
    /// Signalled when this shard's journal grew (its journal flows wait on it).
    pub journal: Notify,
}

impl Local {
    pub fn nshards(&self) -> usize {
        self.shared.mesh.shards()
    }

    /// After a transition on this shard: if it went from locked to free, run what waited for it (deferred
    /// messages, then this shard's own waiting connections).
    fn released_if(&self, was_locked: bool) {
        let mut sh = self.shard.borrow_mut();
        if was_locked && !sh.locked() {
            sh.drain_deferred();
            drop(sh);
            self.unlocked.notify();
        }
    }

    /// After work on this shard: seal what it logged into a unit (unless a transaction holds the shard:
    /// its part is sealed when it releases it) and wake the journal flows.
    pub fn after_work(&self) {
        let grew = {
            let mut sh = self.shard.borrow_mut();
            if sh.ks.hooks.capture && !sh.locked() {
                sh.seal_unit();
            }
            std::mem::take(&mut sh.repl.grew)
        };
        if grew {
            self.journal.notify();
        }
    }

    /// Runs `f` as a task on shard `to` (with that shard's `Local`), outside any borrow of its state, and
    /// returns its result: for work that needs the shard's tasks or other shards (replication control).
    pub async fn run_on<R, F, Fut>(self: &Rc<Self>, to: usize, f: F) -> R
    where
        R: Send + 'static,
        F: FnOnce(Rc<Local>) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = R> + 'static,
    {
        if to == self.id {
            return f(self.clone()).await;
        }
        let (tx, rx) = oneshot::channel();
        self.shared.mesh.send(
            to,
            Kind::Normal,
            Box::new(move |_| {
                let local = current_local();
                runtime::spawn(async move {
                    let _ = tx.send(f(local).await);
                })
                .detach();
            }),
        );
        rx.await.expect("shard threads live as long as the process")
    }

    /// Waits until no transaction holds this shard (for commands run directly on it).
    pub async fn wait_unlocked(&self) {
        loop {
            let seen = self.unlocked.generation();
            if !self.shard.borrow().locked() {
                return;
            }
            self.unlocked.wait_since(seen).await;
        }
    }

    /// Runs `f` on shard `to` under `kind`'s locking rules and returns its result.
    pub async fn call<R, F>(&self, to: usize, kind: Kind, f: F) -> R
    where
        R: Send + 'static,
        F: FnOnce(&mut Shard) -> R + Send + 'static,
    {
        if to == self.id {
            return self.call_local(kind, f).await;
        }
        self.send_call(to, kind, f)
            .await
            .expect("shard threads live as long as the process")
    }

    async fn call_local<R, F: FnOnce(&mut Shard) -> R>(&self, kind: Kind, f: F) -> R {
        loop {
            let seen = self.unlocked.generation();
            if self.shard.borrow().lock.is_free_for(kind) {
                break;
            }
            self.unlocked.wait_since(seen).await;
        }
        let mut sh = self.shard.borrow_mut();
        let was_locked = sh.locked();
        let out = sh.with_lock_kind(kind, f);
        drop(sh);
        self.released_if(was_locked);
        self.after_work();
        out
    }

    /// Sends `f` to another shard; the receiver resolves with its result.
    pub fn send_call<R, F>(&self, to: usize, kind: Kind, f: F) -> oneshot::Receiver<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut Shard) -> R + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        self.shared.mesh.send(
            to,
            kind,
            Box::new(move |sh| {
                let _ = tx.send(f(sh));
            }),
        );
        rx
    }

    /// Runs `f` on every shard (not atomically) and collects the results in shard order.
    pub async fn broadcast<R, F>(&self, f: F) -> Vec<R>
    where
        R: Send + 'static,
        F: Fn(&mut Shard) -> R + Send + Clone + 'static,
    {
        let rxs: Vec<_> = (0..self.nshards())
            .filter(|&s| s != self.id)
            .map(|s| (s, self.send_call(s, Kind::Normal, f.clone())))
            .collect();
        let mine = self.call_local(Kind::Normal, f).await;
        let mut out: Vec<Option<R>> = (0..self.nshards()).map(|_| None).collect();
        out[self.id] = Some(mine);
        for (s, rx) in rxs {
            out[s] = Some(rx.await.expect("shard alive"));
        }
        out.into_iter()
            .map(|r| r.expect("every shard answered"))
            .collect()
    }

    /// Starts a multi-shard transaction over `shards` (see shard/tx.rs): locks them in ascending order.
    /// A `write` transaction logs one unit on each of its shards (shard/log.rs), so a replica applies it
    /// whole.
    pub async fn begin_tx(self: &Rc<Self>, mut shards: Vec<usize>, write: bool) -> Tx {
        shards.sort_unstable();
        shards.dedup();
        let id = self.shared.next_tx.fetch_add(1, Ordering::Relaxed) + 1;
        let parts = shards.len();
        let now = runtime::now_ms();
        let mut tx = Tx {
            local: self.clone(),
            id,
            shards: Vec::new(),
        };
        for s in shards {
            // Recorded before the await, so a cancelled coordinator still releases it (see Drop).
            tx.shards.push(s);
            self.call(s, Kind::Lock(id), move |sh| {
                sh.log_tx_begin(id, parts, write, now)
            })
            .await;
        }
        tx
    }
}

/// A multi-shard transaction in progress. Dropping it releases every lock it holds or asked for.
pub struct Tx {
    local: Rc<Local>,
    id: u64,
    shards: Vec<usize>,
}

impl Tx {
    pub fn shards(&self) -> &[usize] {
        &self.shards
    }

    /// Runs `f` on one of the transaction's shards.
    pub async fn on<R, F>(&self, shard: usize, f: F) -> R
    where
        R: Send + 'static,
        F: FnOnce(&mut Shard) -> R + Send + 'static,
    {
        debug_assert!(self.shards.contains(&shard));
        self.local.call(shard, Kind::InTx(self.id), f).await
    }

    /// Runs `f(shard)` on each listed shard at once and returns the results in the same order.
    pub async fn each<R, F>(&self, shards: &[usize], f: F) -> Vec<R>
    where
        R: Send + 'static,
        F: Fn(&mut Shard) -> R + Send + Clone + 'static,
    {
        let mut remote = Vec::new();
        let mut out: Vec<Option<R>> = shards.iter().map(|_| None).collect();
        for (i, &s) in shards.iter().enumerate() {
            if s != self.local.id {
                remote.push((i, self.local.send_call(s, Kind::InTx(self.id), f.clone())));
            }
        }
        for (i, &s) in shards.iter().enumerate() {
            if s == self.local.id {
                out[i] = Some(self.local.call_local(Kind::InTx(self.id), f.clone()).await);
            }
        }
        for (i, rx) in remote {
            out[i] = Some(rx.await.expect("shard alive"));
        }
        out.into_iter().map(|r| r.expect("answered")).collect()
    }
}

impl Drop for Tx {
    fn drop(&mut self) {
        for &s in &self.shards {
            if s == self.local.id {
                let mut sh = self.local.shard.borrow_mut();
                if sh.lock.holder == Some(self.id) {
                    sh.with_lock_kind(Kind::Unlock(self.id), |_| ());
                    drop(sh);
                    self.local.released_if(true);
                    self.local.after_work();
                }
            } else {
                self.local
                    .shared
                    .mesh
                    .send(s, Kind::Unlock(self.id), Box::new(|_| ()));
            }
        }
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
pub async fn shard_main(
    id: usize,
    shared: Arc<Shared>,
    config: Arc<Config>,
    listeners: Vec<TcpListener>,
    seed: u64,
) {
    let nshards = shared.mesh.shards();
    let local = Rc::new(Local {
        id,
        shard: RefCell::new(Shard::new(id, nshards, config, seed, shared.replid)),
        shared: shared.clone(),
        unlocked: Notify::default(),
        shutdown: Notify::default(),
        journal: Notify::default(),
    });
    CURRENT.with(|c| *c.borrow_mut() = Some(local.clone()));
    if id == 0 {
        if let Some((host, port)) = local.shard.borrow().settings.replicaof.clone() {
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
