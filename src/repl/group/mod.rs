//! The replication group's control plane in the server (docs/failover.md): shard 0 runs this node's
//! `tandem_sync::group::node::Node` (raft-rs deciding the group record), driven by one task that feeds
//! it what peers sent, ticks it, saves its state under `dir` before anything it says leaves, sends its
//! messages, publishes the primary's lease for connections to check, and makes the data path follow the
//! record (`act`).
//!
//! - `net`: the transport (TGROUP on the peers' client ports).
//! - `act`: the data path obeying the record: promotion, following the record's primary, eligibility
//!   granted and revoked through record entries.
//! - `failover_cmd`: FAILOVER (manual handoff) and FAILOVER TAKEOVER (the operator's resume).
//!
//! Invariants: only this driver touches the node; the saved file is written (and synced) before the
//! messages of the step that changed it are queued; `serve_until` is non-zero only while the node may
//! serve, and is the end of its lease on the monotonic clock every thread reads.

pub mod act;
pub mod failover_cmd;
pub mod net;

use crate::runtime::{self, Local};
use crate::shard::notify::Notify;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tandem_sync::group::node::{storage, Msg, Node, Timing};
use tandem_sync::group::record::{member_id, Entry, MemberId, Report};
use tandem_sync::group::saved::{self, Saved};
use tandem_sync::group::wire::{self, Body, Wire};

/// The file under `dir` that holds this member's control-plane state (group/saved.rs's format).
pub const FILE: &str = "tandem-group";
/// How often the driver runs when nothing arrives (raft's own tick is coarser: Timing::tick).
const STEP: Duration = Duration::from_millis(20);
/// How often a node asks to join, or proposes what it is still waiting for.
const RETRY_MS: u64 = 500;

pub struct Group {
    pub me: MemberId,
    pub node_id: String,
    /// This node's client address as peers reach it (`host:port`).
    pub addr: String,
    pub incarnation: u64,
    pub witness: bool,
    /// Where to ask to join while this node has no control-plane state (its `replicaof`).
    pub seed: Option<String>,
    pub node: Option<Node>,
    pub timing: Timing,
    pub inbox: Vec<Wire>,
    pub wake: Rc<Notify>,
    peers: net::Peers,
    /// Addresses learned from messages (a joining node is not in the record yet).
    addrs: std::collections::BTreeMap<MemberId, String>,
    path: PathBuf,
    /// Every primary shard's applied offset as last measured (the report's offsets).
    pub offsets: Vec<u64>,
    last_join: u64,
    last_found: u64,
    /// A promotion or a change of primary the record asked for is being carried out.
    pub acting: bool,
    /// The last failure to save the state: nothing is sent while saving fails.
    pub save_error: Option<String>,
    /// Messages that are not the node's (welcomes, join requests), sent with its outbox.
    replies: Vec<(MemberId, String, Body)>,
    /// Messages received and queued for sending (INFO).
    received: u64,
    sent: u64,
    /// DEBUG GROUP-CUT: drop what arrives, what leaves (the fault suite's partitions of the control
    /// plane; the data links are not touched).
    pub cut: (bool, bool),
    /// The log said once why a restarted primary waits.
    pub said_waiting: bool,
}

fn timing(s: &crate::config::Settings) -> Timing {
    Timing {
        lease: s.failover_lease_ms,
        renew: (s.failover_lease_ms / 4).max(25),
        failover: s.failover_timeout_ms,
        ..Timing::default()
    }
}

/// Reads this member's saved state: None if there is none yet; an error names the file.
pub fn load(dir: &Path) -> Result<Option<Saved>, String> {
    let path = dir.join(FILE);
    match std::fs::read(&path) {
        Ok(b) => saved::decode(&b).map(Some).map_err(|e| {
            format!(
                "Bad group state file '{}': {e} (remove it to join the group afresh)",
                path.display()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!(
            "Can't read the group state file '{}': {e}",
            path.display()
        )),
    }
}

/// Replaces the file whole: a crash leaves the old state or the new one.
fn store(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_data()?;
    std::fs::rename(&tmp, path)?;
    if let Some(d) = path.parent() {
        std::fs::File::open(d)?.sync_all()?;
    }
    Ok(())
}

/// The address peers reach this node at: the first bind address (a wildcard means loopback) and port.
fn announce(s: &crate::config::Settings, port: u16) -> String {
    let host = s
        .bind
        .first()
        .map(|b| b.trim_start_matches('-'))
        .filter(|b| !["*", "0.0.0.0", "::", "::*"].contains(b))
        .unwrap_or("127.0.0.1");
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// On shard 0 at start-up, with failover on: loads or founds this member's state and starts the driver.
/// A group state file that cannot be read stops start-up with one line naming it.
pub fn start(local: &Rc<Local>) {
    let settings = local.shard.borrow().settings.clone();
    // The process runs in `dir` (main changes to it before the shards start).
    let here = Path::new(".");
    let saved = match load(here) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("{e}");
            std::process::exit(1);
        }
    };
    let node_id = local.shared.node_id.clone();
    let me = member_id(&node_id).expect("node ids are 40 hex characters");
    let timing = timing(&settings);
    let now = runtime::mono_ms();
    let seed = rand_seed(local);
    let incarnation = saved.as_ref().map_or(1, |s| s.incarnation + 1);
    let mut g = Group {
        me,
        node_id,
        addr: announce(&settings, local.shared.port),
        incarnation,
        witness: settings.witness,
        seed: settings.replicaof.as_ref().map(|(h, p)| format!("{h}:{p}")),
        node: None,
        timing: timing.clone(),
        inbox: Vec::new(),
        wake: Rc::new(Notify::default()),
        peers: net::Peers::default(),
        addrs: Default::default(),
        path: here.join(FILE),
        offsets: Vec::new(),
        last_join: 0,
        last_found: 0,
        acting: false,
        save_error: None,
        replies: Vec::new(),
        received: 0,
        sent: 0,
        cut: (false, false),
        said_waiting: false,
    };
    match saved {
        Some(s) => {
            // A restart is a new incarnation, kept before anything else happens, so a second restart
            // never reuses it.
            let s = Saved { incarnation, ..s };
            if let Err(e) = store(&g.path, &saved::encode(&s)) {
                tracing::error!("Can't write the group state file: {e}");
                std::process::exit(1);
            }
            match s
                .storage()
                .and_then(|st| Node::new(me, incarnation, st, timing, seed, now))
            {
                Ok(n) => g.node = Some(n),
                Err(e) => {
                    tracing::error!("Bad group state in '{FILE}': {e}");
                    std::process::exit(1);
                }
            }
            tracing::info!("Group: member {me:016x} restarted in incarnation {incarnation}");
        }
        None if g.seed.is_none() && !g.witness => {
            // No group to join: this node founds one, alone, and leads it at once.
            let mut n = Node::new(me, incarnation, storage(&[me]), timing, seed, now)
                .expect("a fresh node");
            n.campaign(now);
            g.node = Some(n);
            tracing::info!("Group: member {me:016x} founds a new replication group");
        }
        None => tracing::info!(
            "Group: member {me:016x} will join the group of {}",
            g.seed.as_deref().unwrap_or("?")
        ),
    }
    local.shared.repl.group.store(!g.witness, Ordering::Release);
    local.shard.borrow_mut().group = Some(Box::new(g));
    crate::repl::gate::update(&local.shared, &settings);
    runtime::spawn(driver(local.clone())).detach();
}

/// Runs `f` on this node's group (it lives on shard 0); None when the node is not in failover mode.
pub fn with<R>(local: &Local, f: impl FnOnce(&mut Group) -> R) -> Option<R> {
    local.shard.borrow_mut().group.as_deref_mut().map(f)
}

/// `host:port` or `[v6]:port` as (host without brackets, port).
pub fn split_addr(a: &str) -> Option<(String, u16)> {
    let (h, p) = a.rsplit_once(':')?;
    let h = h.trim_start_matches('[').trim_end_matches(']');
    Some((h.to_string(), p.parse().ok()?))
}

fn rand_seed(local: &Local) -> u64 {
    use rand::RngCore;
    local.shard.borrow_mut().rng.next_u64()
}

async fn driver(local: Rc<Local>) {
    use futures_util::future::select;
    use std::pin::pin;
    let wake = match local.shard.borrow().group.as_ref() {
        Some(g) => g.wake.clone(),
        None => return,
    };
    let mut measured = 0;
    loop {
        let seen = wake.generation();
        select(pin!(wake.wait_since(seen)), pin!(runtime::sleep(STEP))).await;
        if local.shared.shutdown.load(Ordering::Acquire) {
            return;
        }
        let now = runtime::mono_ms();
        if now.saturating_sub(measured) >= 100 {
            measured = now;
            let offsets = act::offsets(&local).await;
            if let Some(g) = local.shard.borrow_mut().group.as_deref_mut() {
                g.offsets = offsets;
            }
        }
        // A node whose control plane died would serve on as a replica the group can no longer steer
        // (its lease stops it serving as a primary): better gone, for its supervisor to restart it as
        // a new incarnation, than half alive.
        let round = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            step(&local, runtime::mono_ms());
            act::follow_record(&local);
        }));
        if round.is_err() {
            tracing::error!("Group: the control plane's driver panicked; exiting");
            std::process::abort();
        }
    }
}

/// One round: what arrived, time, proposals this node is waiting on, saving, sending, the lease.
fn step(local: &Local, now: u64) {
    let mut sh = local.shard.borrow_mut();
    let auth = sh.settings.masterauth.clone();
    let Some(g) = sh.group.as_deref_mut() else {
        return;
    };
    for w in std::mem::take(&mut g.inbox) {
        g.receive(w, now);
    }
    g.maintain(now);
    g.flush(auth);
    let r = &local.shared.repl;
    let epoch = g.node.as_ref().map_or(0, |n| n.record.epoch);
    r.epoch.store(epoch, Ordering::Release);
    // A replica said it knows a newer epoch than this record: deposed, whatever the record says yet.
    let fenced = r.fence_epoch.load(Ordering::Acquire) > epoch;
    let until = match &g.node {
        Some(n) if !g.witness && !fenced && n.can_serve(now) => n.lease_until(),
        _ => 0,
    };
    r.serve_until.store(until, Ordering::Release);
}

impl Group {
    /// INFO replication's group fields (docs/failover.md "INFO").
    pub fn info(&self, now: u64) -> String {
        use std::fmt::Write;
        let mut w = String::new();
        let _ = write!(
            w,
            "failover:yes\r\ngroup_member:{:016x}\r\ngroup_incarnation:{}\r\ngroup_witness:{}\r\n\
             group_messages_received:{}\r\ngroup_messages_sent:{}\r\n",
            self.me,
            self.incarnation,
            if self.witness { "yes" } else { "no" },
            self.received,
            self.sent,
        );
        let Some(n) = self.node.as_ref() else {
            w.push_str("group_state:joining\r\n");
            return w;
        };
        let r = &n.record;
        let serving = !self.witness && n.can_serve(now);
        let state = match r.primary {
            _ if self.save_error.is_some() => "cannot-save-state",
            _ if r.members.get(&self.me).map(|m| m.incarnation) != Some(self.incarnation) => {
                "joining"
            }
            None => "founding",
            Some((p, inc)) if p == self.me && inc == self.incarnation && serving => "serving",
            Some((p, inc)) if p == self.me && inc == self.incarnation => "waiting-for-lease",
            // The record names this node primary in an earlier life: another must be promoted (or
            // an operator resumes it: FAILOVER RESUME).
            Some((p, _)) if p == self.me => "restarted-primary-waiting-for-failover",
            Some(_) => "following",
        };
        let hex = |id: Option<MemberId>| id.map_or("-".to_string(), |i| format!("{i:016x}"));
        let _ = write!(
            w,
            "group_state:{state}\r\ngroup_epoch:{}\r\ngroup_version:{}\r\ngroup_primary:{}\r\n\
             group_leader:{}\r\ngroup_lease_remaining_ms:{}\r\ngroup_members:{}\r\n",
            r.epoch,
            r.version,
            hex(r.primary.map(|p| p.0)),
            hex(n.leader()),
            if serving {
                n.lease_until().saturating_sub(now)
            } else {
                0
            },
            r.members.len(),
        );
        let voters = n.voters();
        for (i, (id, m)) in r.members.iter().enumerate() {
            let _ = write!(
                w,
                "group_member{i}:id={id:016x},addr={},witness={},incarnation={},eligible={},voter={}\r\n",
                m.addr,
                if m.witness { "yes" } else { "no" },
                m.incarnation,
                if r.is_eligible(*id, m.incarnation) { "yes" } else { "no" },
                if voters.contains(id) { "yes" } else { "no" },
            );
        }
        w
    }

    fn receive(&mut self, w: Wire, now: u64) {
        self.received += 1;
        self.addrs.insert(w.from, w.addr.clone());
        match w.body {
            Body::Raft(m) => {
                if let Some(n) = self.node.as_mut() {
                    n.step(w.from, Msg::Raft(m), now);
                }
            }
            Body::Report(r) => {
                if let Some(n) = self.node.as_mut() {
                    n.step(w.from, Msg::Report(r), now);
                }
            }
            Body::Join {
                node_id,
                witness,
                incarnation,
            } => {
                let Some(n) = self.node.as_mut() else { return };
                if member_id(&node_id) != Some(w.from) {
                    return;
                }
                let e = Entry::Join {
                    id: w.from,
                    node_id,
                    addr: w.addr.clone(),
                    witness,
                    incarnation,
                };
                // Proposed here; raft forwards it to the leader (a repeat is a no-op).
                let _ = n.propose(&e, now);
                let genesis = n.genesis().to_vec();
                self.send(w.from, &w.addr, Body::Welcome { genesis });
            }
            Body::Welcome { genesis } => {
                if self.node.is_some() || genesis.is_empty() {
                    return;
                }
                let seed = now ^ self.me;
                match Node::new(
                    self.me,
                    self.incarnation,
                    storage(&genesis),
                    self.timing.clone(),
                    seed,
                    now,
                ) {
                    Ok(mut n) => {
                        // The founding voters are saved at once: a restart rejoins the same group.
                        let _ = n.propose(&self.join_entry(), now);
                        self.node = Some(n);
                        tracing::info!("Group: joining (welcomed by {:016x})", w.from);
                    }
                    Err(e) => tracing::warn!("Group: can't start from the welcome: {e}"),
                }
            }
        }
    }

    fn join_entry(&self) -> Entry {
        Entry::Join {
            id: self.me,
            node_id: self.node_id.clone(),
            addr: self.addr.clone(),
            witness: self.witness,
            incarnation: self.incarnation,
        }
    }

    /// Ticks the node and (re)proposes what this node waits for: its own Join in this incarnation, and
    /// the founding entry of a group it founded. Without a node, asks its seed to let it join.
    fn maintain(&mut self, now: u64) {
        let joined = self.node.as_ref().is_some_and(|n| {
            n.record.members.get(&self.me).map(|m| m.incarnation) == Some(self.incarnation)
        });
        if !joined && now.saturating_sub(self.last_join) >= RETRY_MS {
            self.last_join = now;
            self.ask_to_join(now);
        }
        let Some(n) = self.node.as_mut() else {
            return;
        };
        if !self.witness {
            n.set_report(Report {
                incarnation: self.incarnation,
                epoch: n.record.epoch,
                offsets: self.offsets.clone(),
            });
        }
        n.tick(now);
        if joined
            && n.record.primary.is_none()
            && n.genesis() == [self.me]
            && !self.witness
            && now.saturating_sub(self.last_found) >= RETRY_MS
        {
            self.last_found = now;
            let e = Entry::Found {
                id: self.me,
                incarnation: self.incarnation,
            };
            let _ = n.propose(&e, now);
        }
    }

    /// Until the record holds this node in this incarnation: proposes its Join here (a member that knows
    /// the leader forwards it) and asks its seed and every member it knows to propose it (a node that
    /// is not a voter yet knows no leader, and one proposal can be lost with a leader change).
    fn ask_to_join(&mut self, now: u64) {
        let e = self.join_entry();
        let mut to: Vec<(MemberId, String)> = self.seed.iter().map(|s| (0, s.clone())).collect();
        if let Some(n) = self.node.as_mut() {
            let _ = n.propose(&e, now);
            to.extend(
                n.record
                    .members
                    .iter()
                    .filter(|(id, _)| **id != self.me)
                    .map(|(id, m)| (*id, m.addr.clone())),
            );
        }
        for (id, addr) in to {
            let body = Body::Join {
                node_id: self.node_id.clone(),
                witness: self.witness,
                incarnation: self.incarnation,
            };
            self.send(id, &addr, body);
        }
    }

    /// Proposes `e` now (from the data path: grants, revokes, operator commands). Err: no leader known.
    pub fn propose(&mut self, e: &Entry) -> Result<(), String> {
        let n = self
            .node
            .as_mut()
            .ok_or("this node has not joined its group yet")?;
        n.propose(e, runtime::mono_ms())
            .map_err(|e| e.to_string())?;
        self.wake.notify();
        Ok(())
    }

    /// Saves what changed, then sends what the node said.
    fn flush(&mut self, auth: Option<String>) {
        let Some(n) = self.node.as_mut() else {
            self.flush_peers(Vec::new(), auth);
            return;
        };
        if let Some(s) = n.take_saved() {
            if let Err(e) = store(&self.path, &saved::encode(&s)) {
                // Raft's promises need the state on disk before anyone hears of it: say nothing.
                let msg = format!("Can't write the group state file '{FILE}': {e}");
                if self.save_error.as_deref() != Some(msg.as_str()) {
                    tracing::error!("{msg}");
                }
                self.save_error = Some(msg);
                n.take_outbox();
                return;
            }
            self.save_error = None;
        }
        let out = n.take_outbox();
        self.flush_peers(out, auth);
    }

    fn flush_peers(&mut self, out: Vec<tandem_sync::group::node::Out>, auth: Option<String>) {
        for o in out {
            let body = match o.msg {
                Msg::Raft(m) => Body::Raft(m),
                Msg::Report(r) => Body::Report(r),
            };
            let addr = self
                .node
                .as_ref()
                .and_then(|n| n.record.members.get(&o.to))
                .map(|m| m.addr.clone())
                .or_else(|| self.addrs.get(&o.to).cloned());
            if let Some(addr) = addr {
                self.send_with(o.to, &addr, body, auth.clone());
            }
        }
        for (to, addr, body) in std::mem::take(&mut self.replies) {
            self.send_with(to, &addr, body, auth.clone());
        }
    }

    fn send(&mut self, to: MemberId, addr: &str, body: Body) {
        self.replies.push((to, addr.to_string(), body));
    }

    fn send_with(&mut self, to: MemberId, addr: &str, body: Body, auth: Option<String>) {
        if self.cut.1 {
            return;
        }
        let bytes = wire::encode(&Wire {
            from: self.me,
            addr: self.addr.clone(),
            body,
        });
        self.sent += 1;
        self.peers.send(to, addr, bytes, auth);
    }
}

#[cfg(test)]
mod tests {
    use super::split_addr;

    /// Record addresses come back as a host `net::connect` can bracket again, IPv6 included.
    #[test]
    fn addresses_split_with_or_without_brackets() {
        assert_eq!(split_addr("10.0.0.1:7001"), Some(("10.0.0.1".into(), 7001)));
        assert_eq!(split_addr("[::1]:7001"), Some(("::1".into(), 7001)));
        assert_eq!(split_addr("host"), None);
        assert_eq!(split_addr("h:notaport"), None);
    }
}
