//! The handle a shard thread works through: `Local` (this shard's state, and the way to every other shard:
//! direct calls on its own, messages to the others, multi-shard transactions `Tx`), `Shared` (what all
//! shard threads share: the mesh and a few atomics), and `current_local` for work that arrives by message
//! and must become a task of the shard it runs on.
//!
//! Invariants: a `Local` is owned by its shard thread and never crosses threads; a transaction locks its
//! shards in ascending order and releases every lock it holds or asked for when dropped (shard/tx.rs).

use crate::runtime;
use crate::shard::mesh::{Job, Kind, Mesh};
use crate::shard::notify::Notify;
use crate::shard::Shard;
use futures_channel::oneshot;
use std::cell::RefCell;
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
    /// Shards whose connections have not all closed since shutdown began. A closing connection may
    /// still call another shard (a blocked client leaving its keys' wait lists): no shard stops
    /// answering messages before this is 0.
    pub closing_shards: AtomicUsize,
    pub start_ms: u64,
    pub run_id: String,
    /// Stable across restarts (kept in `dir`): how a primary knows its replicas.
    pub node_id: String,
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
    /// Signalled when units were sealed (the WAL driver waits on it) and when the driver went idle at
    /// shutdown.
    pub wal: Notify,
    pub wal_idle: Notify,
    /// An empty shard over every slot that multi-key commands across shards run in (server/gathered.rs),
    /// kept between uses: building one allocates a table per slot. Taken for the duration of a use, and
    /// put back only if left empty.
    pub scratch: RefCell<Option<Box<Shard>>>,
    /// Transactions of this thread's connections waiting for the one in flight (`tx_combined`).
    pub tx_queue: RefCell<TxQueue>,
}

/// Multi-shard transactions queued on one thread: while one runs, the next ones gather, and all of them
/// run as the next transaction.
#[derive(Default)]
pub struct TxQueue {
    waiting: Vec<Waiting>,
    running: bool,
}

/// A transaction asked for: its parts, whether it writes, and whom to tell when it ran.
type Waiting = (Vec<(usize, Job)>, bool, oneshot::Sender<()>);

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
        let (grew, events) = {
            let mut sh = self.shard.borrow_mut();
            // Waiters of keys written by what just ran are served before anything else runs
            // (shard/blocking.rs), and in the same log unit.
            if sh.blocked.has_ready() {
                sh.serve_ready();
            }
            if sh.ks.hooks.capture && !sh.locked() {
                sh.seal_unit();
            }
            let events = sh.take_key_events();
            (std::mem::take(&mut sh.repl.grew), events)
        };
        if grew {
            self.journal.notify();
            self.wal.notify();
        }
        if let Some(events) = events {
            self.publish_key_events(events);
        }
    }

    /// Keyspace events this shard raised, published like PUBLISH: to this shard's subscribers now, and
    /// by one message to every other shard (in order: a shard's messages to another are run in order).
    #[cold]
    fn publish_key_events(&self, events: Vec<(Vec<u8>, Vec<u8>)>) {
        let events = Arc::new(events);
        for s in (0..self.nshards()).filter(|&s| s != self.id) {
            let ev = events.clone();
            self.shared.mesh.send(
                s,
                Kind::Normal,
                Box::new(move |sh| {
                    for (ch, msg) in ev.iter() {
                        sh.publish_here(false, ch, msg);
                    }
                }),
            );
        }
        let mut sh = self.shard.borrow_mut();
        for (ch, msg) in events.iter() {
            sh.publish_here(false, ch, msg);
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
        self.run_now(kind, f)
    }

    /// Runs `f` on this shard under `kind` now (the caller knows the lock lets it), then what follows any
    /// work here: waking what waited for the shard if this released it, and `after_work`.
    fn run_now<R>(&self, kind: Kind, f: impl FnOnce(&mut Shard) -> R) -> R {
        let mut sh = self.shard.borrow_mut();
        debug_assert!(sh.lock.is_free_for(kind));
        let was_locked = sh.locked();
        let out = sh.with_lock_kind(kind, f);
        drop(sh);
        self.released_if(was_locked);
        self.after_work();
        out
    }

    /// Whether a transaction keeps every shard until it ends: a write one while the WAL holds write
    /// transactions until their parts are on disk (appendfsync always; see `Tx`'s Drop).
    fn keeps_shards(&self, write: bool) -> bool {
        write && self.shard.borrow().wal_holds()
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

    /// The transaction a caller already holds over these shards (EXEC's), or one begun here.
    pub async fn tx_or_held<'a>(
        self: &Rc<Self>,
        held: Option<&'a Tx>,
        shards: Vec<usize>,
        write: bool,
    ) -> TxRef<'a> {
        match held {
            Some(t) => TxRef::Held(t),
            None => TxRef::Own(self.begin_tx(shards, write).await),
        }
    }

    /// Starts a multi-shard transaction over `shards` (see shard/tx.rs): locks them in ascending order.
    /// A `write` transaction logs one unit on each of its shards (shard/log.rs), so a replica applies it
    /// whole.
    pub async fn begin_tx(self: &Rc<Self>, mut shards: Vec<usize>, write: bool) -> Tx {
        shards.sort_unstable();
        shards.dedup();
        let parts = shards
            .into_iter()
            .map(|s| (s, Box::new(|_: &mut Shard| ()) as Part<()>));
        self.lock_parts(parts.collect(), write, false).await.0
    }
}

/// A transaction's work on one shard (`Local::begin_tx_with`).
pub type Part<R> = Box<dyn FnOnce(&mut Shard) -> R + Send>;

impl Local {
    /// `begin_tx` that runs each shard's part in the message that locks it: two-phase locking allows work
    /// under a lock before the next lock is taken, and the transaction is still seen whole (every shard it
    /// has worked on stays locked until the last one is taken). The last shard's part also releases that
    /// shard (`Kind::Once`) unless the WAL must hold it: every other lock is held by then, so nothing can
    /// see that shard's part without the others'. A shard is held for one hop less per part (MSET, MGET,
    /// DEL across shards: one message per shard in all). `parts` holds each shard at most once; the
    /// results come back in ascending shard order, with the transaction holding the other shards.
    pub async fn begin_tx_with<R: Send + 'static>(
        self: &Rc<Self>,
        mut parts: Vec<(usize, Part<R>)>,
        write: bool,
    ) -> (Tx, Vec<R>) {
        parts.sort_unstable_by_key(|p| p.0);
        debug_assert!(parts.windows(2).all(|w| w[0].0 != w[1].0));
        let release_last = !self.keeps_shards(write);
        self.lock_parts(parts, write, release_last).await
    }

    /// Locks the shards of `parts` (ascending, each once) in order, running each part in its lock message;
    /// with `release_last`, the last message also releases its shard.
    async fn lock_parts<R: Send + 'static>(
        self: &Rc<Self>,
        parts: Vec<(usize, Part<R>)>,
        write: bool,
        release_last: bool,
    ) -> (Tx, Vec<R>) {
        let id = self.shared.next_tx.fetch_add(1, Ordering::Relaxed) + 1;
        let n = parts.len();
        let now = runtime::now_ms();
        let mut tx = Tx {
            local: self.clone(),
            id,
            shards: Vec::new(),
            write,
        };
        let mut out = Vec::with_capacity(n);
        for (i, (s, part)) in parts.into_iter().enumerate() {
            let once = release_last && i + 1 == n;
            let kind = if once { Kind::Once(id) } else { Kind::Lock(id) };
            if !once {
                // Recorded before the await, so a cancelled coordinator still releases it (see Drop).
                tx.shards.push(s);
            }
            let r = self
                .call(s, kind, move |sh| {
                    sh.log_tx_begin(id, n, write, now);
                    part(sh)
                })
                .await;
            out.push(r);
        }
        (tx, out)
    }
}

impl Local {
    /// Runs `parts` (work on shards, each shard at most once) as one transaction with the others this
    /// thread's connections asked for meanwhile: a shard locked by a transaction is held for at least a
    /// round trip between threads, so one transaction per command caps every command across shards at
    /// one per round trip, while one for everything that queued during the previous one does not. Each
    /// shard runs the parts it is given in the order they were asked for; the transaction is seen whole,
    /// so each one in it is. Returns when every part has run.
    pub async fn tx_combined(self: &Rc<Self>, parts: Vec<(usize, Job)>, write: bool) {
        let (done, rx) = oneshot::channel();
        let start = {
            let mut q = self.tx_queue.borrow_mut();
            q.waiting.push((parts, write, done));
            !std::mem::replace(&mut q.running, true)
        };
        if start {
            // A task of its own: a caller that goes away (its connection closed) cannot strand the others.
            let me = self.clone();
            runtime::spawn(async move { me.drive_tx_queue().await }).detach();
        }
        let _ = rx.await;
    }

    /// `tx_combined` with each part's result, in the order of `parts`.
    pub async fn tx_combined_with<R: Send + 'static>(
        self: &Rc<Self>,
        parts: Vec<(usize, Part<R>)>,
        write: bool,
    ) -> Vec<R> {
        let mut rxs = Vec::with_capacity(parts.len());
        let jobs: Vec<(usize, Job)> = parts
            .into_iter()
            .map(|(s, part)| {
                let (tx, rx) = oneshot::channel();
                rxs.push(rx);
                let job: Job = Box::new(move |sh| {
                    let _ = tx.send(part(sh));
                });
                (s, job)
            })
            .collect();
        self.tx_combined(jobs, write).await;
        let mut out = Vec::with_capacity(rxs.len());
        for rx in rxs {
            out.push(
                rx.await
                    .expect("every part ran before the transaction ended"),
            );
        }
        out
    }

    async fn drive_tx_queue(self: Rc<Self>) {
        loop {
            let batch = {
                let mut q = self.tx_queue.borrow_mut();
                if q.waiting.is_empty() {
                    q.running = false;
                    return;
                }
                std::mem::take(&mut q.waiting)
            };
            let write = batch.iter().any(|b| b.1);
            let mut per: std::collections::BTreeMap<usize, Vec<Job>> = Default::default();
            let mut dones = Vec::with_capacity(batch.len());
            for (parts, _, done) in batch {
                for (s, job) in parts {
                    per.entry(s).or_default().push(job);
                }
                dones.push(done);
            }
            let parts: Vec<(usize, Part<()>)> = per
                .into_iter()
                .map(|(s, jobs)| {
                    let run: Part<()> = Box::new(move |sh| jobs.into_iter().for_each(|j| j(sh)));
                    (s, run)
                })
                .collect();
            let (tx, _) = self.begin_tx_with(parts, write).await;
            drop(tx);
            for d in dones {
                let _ = d.send(());
            }
        }
    }
}

/// A multi-shard transaction in progress. Dropping it releases every lock it holds or asked for.
pub struct Tx {
    local: Rc<Local>,
    id: u64,
    shards: Vec<usize>,
    write: bool,
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

    /// Runs `f` on `shard` and releases it in the same message: the transaction's last work there. The
    /// result arrives on the receiver. With a WAL that holds write transactions (see Drop) the shard stays
    /// held until the transaction is dropped.
    pub fn release_with<R, F>(&mut self, shard: usize, f: F) -> oneshot::Receiver<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut Shard) -> R + Send + 'static,
    {
        debug_assert!(self.shards.contains(&shard));
        let keep = self.local.keeps_shards(self.write);
        let kind = if keep {
            Kind::InTx(self.id)
        } else {
            self.shards.retain(|&s| s != shard);
            Kind::Unlock(self.id)
        };
        if shard != self.local.id {
            return self.local.send_call(shard, kind, f);
        }
        let (tx, rx) = oneshot::channel();
        let _ = tx.send(self.local.run_now(kind, f));
        rx
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
        if !self.shards.is_empty() && self.local.keeps_shards(self.write) {
            // appendfsync always: a write transaction keeps its shards until every part is on disk, so
            // nothing logged after it on any of them can be durable (and acknowledged) without it, and
            // recovery may drop a transaction missing a part with everything after it (persist/recover.rs).
            let tx = Tx {
                local: self.local.clone(),
                id: self.id,
                shards: std::mem::take(&mut self.shards),
                write: false,
            };
            runtime::spawn(async move {
                let shards = tx.shards.clone();
                let waits = tx.each(&shards, |sh| sh.wal_seal_part()).await;
                // Other shards' inbox turns wake their drivers; this one's is woken here.
                tx.local.wal.notify();
                for rx in waits.into_iter().flatten() {
                    // Err: the WAL failed; the part never commits, the locks go anyway.
                    let _ = rx.await;
                }
                drop(tx);
            })
            .detach();
            return;
        }
        for &s in &self.shards {
            if s == self.local.id {
                let held = self.local.shard.borrow().lock.holder == Some(self.id);
                if held {
                    self.local.run_now(Kind::Unlock(self.id), |_| ());
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

/// Makes `local` this thread's `current_local` (once, when the shard thread starts).
pub fn install(local: Rc<Local>) {
    CURRENT.with(|c| *c.borrow_mut() = Some(local));
}

/// A transaction held by the caller, or owned (and released when this is dropped).
pub enum TxRef<'a> {
    Held(&'a Tx),
    Own(Tx),
}

impl std::ops::Deref for TxRef<'_> {
    type Target = Tx;
    fn deref(&self) -> &Tx {
        match self {
            TxRef::Held(t) => t,
            TxRef::Own(t) => t,
        }
    }
}
