//! A shard: one thread, one compio runtime, the data of one range of hash slots, and the connections it
//! accepted. Other shards reach its data only through its inbox (`mesh`).

pub mod blocking;
pub mod log;
pub mod mesh;
pub mod notify;
pub mod pubsub;
pub mod stats;
pub mod tx;
pub mod wal;

use crate::alloc;
use crate::config::{Config, Settings};
use crate::repl::registry::Registry;
use crate::repl::state::ShardRepl;
use crate::repl::LinkStatus;
use crate::store::Keyspace;
use rand::rngs::SmallRng;
pub use stats::Stats;
use std::collections::BTreeMap;
use std::sync::Arc;
pub use tx::LockState;

/// What CLIENT LIST shows of a connection; owned by the connection, registered with its shard.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    pub id: u64,
    pub addr: String,
    pub laddr: String,
    pub name: String,
    pub lib_name: String,
    pub lib_ver: String,
    pub db: usize,
    pub resp: u8,
    pub created_ms: u64,
    pub last_ms: u64,
    pub last_cmd: &'static str,
    pub qbuf: usize,
    pub killed: bool,
    /// The connection's task while it waits (read, pause): woken on kill, unpause and shutdown. One slot
    /// per client, replaced on each wait, so it never grows.
    pub waker: Option<std::task::Waker>,
    /// Pub/sub messages not yet written (shard/pubsub.rs), and since when they exceed the soft limit.
    pub push: Vec<u8>,
    pub push_soft_since: Option<u64>,
    /// Blocked on keys (server/blocking.rs): a shard says one of them may be ready; CLIENT UNBLOCK's
    /// request (Some(true): with an error).
    pub blocked: bool,
    pub ready: bool,
    pub unblock: Option<bool>,
}

/// CLIENT PAUSE state, one copy per shard (set by broadcast).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PauseKind {
    Write,
    All,
}

pub struct Shard {
    pub id: usize,
    pub nshards: usize,
    pub ks: Keyspace,
    pub config: Arc<Config>,
    pub settings: Arc<Settings>,
    /// Version of `config` (CONFIG SET numbers its updates on shard 0).
    pub config_version: u64,
    pub stats: Stats,
    pub rng: SmallRng,
    pub lock: LockState,
    pub clients: BTreeMap<u64, std::rc::Rc<std::cell::RefCell<ClientInfo>>>,
    /// Subscriptions of this shard's connections.
    pub pubsub: pubsub::PubSub,
    /// Connections blocked on this shard's keys.
    pub blocked: blocking::Blocked,
    pub pause: Option<(PauseKind, u64)>,
    /// This shard's journal and replication identity.
    pub repl: ShardRepl,
    /// Shard 0 only: the replicas of this primary, and this replica's link to its primary.
    pub registry: Registry,
    pub link: Option<LinkStatus>,
    /// Bumped by every REPLICAOF: a controller whose generation is stale stops.
    pub link_gen: u64,
    /// Durability mode's commit rule and dirty keys on this shard (repl/durable.rs).
    pub durable: crate::repl::durable::Durable,
    /// Shard 0 in failover mode: this member's control plane (repl/group).
    pub group: Option<Box<crate::repl::group::Group>>,
    /// The write-ahead log (appendonly yes), docs/persistence.md.
    pub wal: Option<wal::ShardWal>,
}

impl Shard {
    pub fn new(
        id: usize,
        nshards: usize,
        config: Arc<Config>,
        seed: u64,
        replid: tandem_sync::replid::ReplId,
    ) -> Self {
        use rand::SeedableRng;
        let settings = Arc::new(config.settings());
        let mut sh = Shard {
            id,
            nshards,
            ks: Keyspace::new(
                crate::slot::shard_slots(id, nshards),
                settings.databases,
                seed,
            ),
            config,
            settings,
            config_version: 0,
            stats: Stats::default(),
            rng: SmallRng::seed_from_u64(seed ^ 0x9e37_79b9_7f4a_7c15),
            lock: LockState::default(),
            clients: BTreeMap::new(),
            pubsub: Default::default(),
            blocked: Default::default(),
            pause: None,
            repl: ShardRepl::new(tandem_sync::replid::Identity::new(replid)),
            registry: Registry::default(),
            link: None,
            link_gen: 0,
            durable: Default::default(),
            group: None,
            wal: None,
        };
        sh.ks.limits = sh.settings.limits;
        sh.ks.hooks.events.flags = sh.settings.notify_keyspace_events;
        sh.durable_configure();
        sh
    }

    /// Marks this shard's clients that `pick` chooses as killed and wakes them (they close at their next
    /// step); returns how many.
    pub fn kill_clients(&self, mut pick: impl FnMut(&ClientInfo) -> bool) -> usize {
        let mut n = 0;
        for c in self.clients.values() {
            let mut c = c.borrow_mut();
            if !c.killed && pick(&c) {
                c.killed = true;
                n += 1;
                if let Some(w) = c.waker.take() {
                    w.wake();
                }
            }
        }
        n
    }

    pub fn over_maxmemory(&self) -> bool {
        let max = self.settings.maxmemory;
        max > 0 && alloc::used_memory() > max
    }

    pub fn set_config(&mut self, config: Arc<Config>) {
        self.settings = Arc::new(config.settings());
        // The plain-node threshold is DEBUG's (per process, as in Valkey), not the configuration's.
        let plain = self.ks.limits.list_packed_threshold;
        self.ks.limits = self.settings.limits;
        self.ks.limits.list_packed_threshold = plain;
        self.ks.hooks.events = crate::store::events::KeyEvents {
            flags: self.settings.notify_keyspace_events,
            ..Default::default()
        };
        self.config = config;
        self.durable_configure();
    }

    /// Wakes every waiting connection of this shard so it re-checks its state (killed, paused, shutdown).
    pub fn wake_clients(&self) {
        for c in self.clients.values() {
            if let Some(w) = c.borrow_mut().waker.take() {
                w.wake();
            }
        }
    }

    pub fn rand_below(&mut self, n: usize) -> usize {
        use rand::Rng;
        if n == 0 {
            0
        } else {
            self.rng.random_range(0..n)
        }
    }
}
