//! One node's control plane, without I/O: raft-rs's `RawNode` deciding the group record, the lease the
//! primary serves under, and the failover rule the raft leader applies.
//!
//! Time and randomness are given: every call takes the node's own monotonic clock (`now`, ms), and raft's
//! election timeouts come from the seed the node was made with (raft-rs draws them from the thread's RNG;
//! they are overwritten whenever raft resets them), so a simulation replays exactly. Messages come in
//! through `step` and go out through `take_outbox`.
//!
//! Why it is safe (docs/failover.md says it at length):
//! - **One writer per epoch.** The record names the primary of each epoch; entries are compare-and-set
//!   (record.rs), so a promotion happens only of a replica still eligible at the version its proposer saw.
//! - **Lease.** The primary serves only until `sent + lease` for the latest renewal it sent at `sent` that
//!   came back confirmed: a raft read-index round (the leader checks a quorum still follows it) after which
//!   the applied record still names this node primary of its epoch. Any promotion of another node is
//!   therefore committed after `sent`; the promoted node waits `lease * (1 + d) / (1 - d)` on its own
//!   clock after it learns of its promotion (d: the clock-rate bound) before it serves, by which time the
//!   old lease has run out on any clock within the bound.
//! - **Failover.** The raft leader (which need not be the data primary) promotes when the serving primary
//!   has been silent for `failover` (its reports since this node leads; the raft messages it sent before)
//!   and this node has led for a second of reports; the candidate is chosen by `record::candidate` from
//!   the reports it heard within `failover`.

use std::collections::BTreeMap;

use protobuf::Message as _;
use raft::prelude::{
    ConfChange, ConfChangeType, ConfChangeV2, ConfState, Entry as RaftEntry, EntryType, Message,
};
use raft::storage::MemStorage;
use raft::{GetEntriesContext, RawNode, ReadOnlyOption, StateRole, Storage};

use super::codec;
use super::record::{candidate, Entry, MemberId, Record, Report, Takeover};
use super::saved::Saved;

/// The control plane's timers, in ms of a node's own clock.
#[derive(Clone, Debug)]
pub struct Timing {
    pub tick: u64,
    pub election_ticks: usize,
    pub heartbeat_ticks: usize,
    /// How long a confirmed renewal lets the primary serve, counted from when the renewal was sent.
    pub lease: u64,
    /// How often the primary renews (several renewals per lease, so one lost message does not stop it).
    pub renew: u64,
    /// Silence of the serving primary after which the raft leader promotes a candidate.
    pub failover: u64,
    /// Bound on how much two clocks' rates may differ, in parts per million.
    pub drift_ppm: u64,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            tick: 100,
            election_ticks: 10,
            heartbeat_ticks: 2,
            lease: 2000,
            renew: 500,
            failover: 3000,
            drift_ppm: 10_000,
        }
    }
}

impl Timing {
    /// How long a newly promoted primary waits before serving: the longest the old lease can still run
    /// on the old primary's clock, measured on the new one's.
    pub fn takeover_wait(&self) -> u64 {
        let d = self.drift_ppm as u128;
        (self.lease as u128 * (1_000_000 + d)).div_ceil(1_000_000 - d) as u64 + self.tick
    }
}

/// What nodes say to each other.
#[derive(Clone, Debug)]
pub enum Msg {
    Raft(Box<Message>),
    /// A data node's state, to the raft leader (also its liveness).
    Report(Report),
}

/// A message to send: to whom, what.
#[derive(Clone, Debug)]
pub struct Out {
    pub to: MemberId,
    pub msg: Msg,
}

/// A record change this node applied, for whoever drives the data path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    pub entry: Entry,
    pub version: u64,
    pub epoch: u64,
}

pub struct Node {
    pub id: MemberId,
    pub incarnation: u64,
    pub record: Record,
    raw: RawNode<MemStorage>,
    /// The voters the group was founded with (the storage's initial configuration; the membership
    /// changes since are entries of the log, applied again at every start).
    genesis: Vec<MemberId>,
    /// Raft's log or hard state changed since the last `take_saved`.
    dirty: bool,
    timing: Timing,
    rng: u64,
    last_tick: u64,
    role: (u64, StateRole),
    outbox: Vec<Out>,
    applied: Vec<Applied>,
    /// Reports heard (as raft leader): when, and what.
    heard: BTreeMap<MemberId, (u64, Report)>,
    /// When a raft message last came from each member (in any role): before this node led, the only
    /// sign of the primary's life it has.
    seen: BTreeMap<MemberId, u64>,
    started: u64,
    leader_since: Option<u64>,
    /// The version a promotion was last proposed at, and when.
    proposed: Option<(u64, u64)>,
    report: Option<Report>,
    last_report: u64,
    // The primary's side.
    read_seq: u64,
    reads: BTreeMap<u64, u64>,
    confirmed: Vec<(u64, u64)>,
    last_renew: Option<u64>,
    lease_until: u64,
    /// When this node, primary of the record's epoch, may start serving (its predecessor's lease is out).
    serve_after: u64,
}

fn logger() -> slog::Logger {
    slog::Logger::root(slog::Discard, slog::o!())
}

/// Fresh raft storage for a group whose voters are `voters` (a node's persisted storage is passed as is).
pub fn storage(voters: &[MemberId]) -> MemStorage {
    MemStorage::new_with_conf_state(ConfState::from((voters.to_vec(), vec![])))
}

impl Node {
    /// A node starting (or restarting: `store` keeps what it persisted, and the record is rebuilt by
    /// applying the log again) in `incarnation`, at `now`.
    pub fn new(
        id: MemberId,
        incarnation: u64,
        store: MemStorage,
        timing: Timing,
        seed: u64,
        now: u64,
    ) -> raft::Result<Node> {
        let cfg = raft::Config {
            id,
            election_tick: timing.election_ticks,
            heartbeat_tick: timing.heartbeat_ticks,
            applied: 0,
            max_size_per_msg: 1 << 20,
            max_inflight_msgs: 256,
            check_quorum: true,
            pre_vote: true,
            read_only_option: ReadOnlyOption::Safe,
            ..Default::default()
        };
        cfg.validate()?;
        let genesis = store.initial_state()?.conf_state.voters;
        let raw = RawNode::new(&cfg, store, &logger())?;
        let role = (raw.raft.term, raw.raft.state);
        let mut n = Node {
            id,
            incarnation,
            record: Record::default(),
            raw,
            genesis,
            dirty: false,
            timing,
            rng: seed | 1,
            last_tick: now,
            role,
            outbox: Vec::new(),
            applied: Vec::new(),
            heard: BTreeMap::new(),
            seen: BTreeMap::new(),
            started: now,
            leader_since: None,
            proposed: None,
            report: None,
            last_report: 0,
            read_seq: 0,
            reads: BTreeMap::new(),
            confirmed: Vec::new(),
            last_renew: None,
            lease_until: 0,
            serve_after: u64::MAX,
        };
        n.randomize_election();
        n.drain(now);
        Ok(n)
    }

    fn next_rand(&mut self) -> u64 {
        // xorshift64*: a fixed, seedable sequence.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn randomize_election(&mut self) {
        let min = self.timing.election_ticks as u64;
        let t = min + self.next_rand() % min;
        self.raw.raft.set_randomized_election_timeout(t as usize);
    }

    /// Raft resets its election timeout (from the thread's RNG) whenever its term or role changes; ours
    /// replaces it, so runs replay.
    fn after_raft(&mut self, now: u64) {
        let role = (self.raw.raft.term, self.raw.raft.state);
        if role != self.role {
            self.role = role;
            self.randomize_election();
            if role.1 == StateRole::Leader {
                self.leader_since = Some(now);
                self.heard.clear();
            } else {
                self.leader_since = None;
            }
        }
    }

    pub fn leader(&self) -> Option<MemberId> {
        Some(self.raw.raft.leader_id).filter(|&l| l != raft::INVALID_ID)
    }

    pub fn is_leader(&self) -> bool {
        self.raw.raft.state == StateRole::Leader
    }

    pub fn raft_term(&self) -> u64 {
        self.raw.raft.term
    }

    /// The group's members that raft counts as voters now.
    pub fn voters(&self) -> Vec<MemberId> {
        let mut v: Vec<MemberId> = self.raw.raft.prs().iter().map(|(id, _)| *id).collect();
        v.sort_unstable();
        v
    }

    pub fn genesis(&self) -> &[MemberId] {
        &self.genesis
    }

    /// Starts an election now (a group's founder, alone, leads at once instead of after a timeout).
    pub fn campaign(&mut self, now: u64) {
        let _ = self.raw.campaign();
        self.after_raft(now);
        self.drain(now);
    }

    /// Everything to keep on disk, if it changed since the last call; it must be on disk before the
    /// outbox is sent (raft's rule: a vote or an appended entry is durable before anyone hears of it).
    pub fn take_saved(&mut self) -> Option<Saved> {
        if !std::mem::take(&mut self.dirty) {
            return None;
        }
        let store = &self.raw.raft.raft_log.store;
        let hs = store.rl().hard_state().clone();
        let last = store.last_index().unwrap_or(0);
        // MemStorage indexes its first entry unchecked: an empty log is asked for nothing.
        let entries = if last == 0 {
            Vec::new()
        } else {
            store
                .entries(1, last + 1, None, GetEntriesContext::empty(false))
                .unwrap_or_default()
        };
        Some(Saved {
            incarnation: self.incarnation,
            genesis: self.genesis.clone(),
            term: hs.term,
            vote: hs.vote,
            commit: hs.commit,
            entries,
        })
    }

    /// The data path's latest state of this node (sent to the leader every tick).
    pub fn set_report(&mut self, r: Report) {
        self.report = Some(r);
    }

    /// Proposes an entry; Err if there is no leader to take it now (the caller retries later).
    pub fn propose(&mut self, e: &Entry, now: u64) -> raft::Result<()> {
        let r = self.raw.propose(vec![], codec::encode(e));
        self.after_raft(now);
        self.drain(now);
        r
    }

    pub fn step(&mut self, from: MemberId, msg: Msg, now: u64) {
        match msg {
            Msg::Raft(m) => {
                self.seen.insert(from, now);
                // Errors are messages of an unknown peer or a stale term: raft ignores them, so do we.
                let _ = self.raw.step(*m);
                self.after_raft(now);
            }
            Msg::Report(r) => {
                if self.is_leader() {
                    self.heard.insert(from, (now, r));
                }
            }
        }
        self.drain(now);
    }

    /// Advances time: raft ticks, the primary's renewals, reports, the leader's failover check.
    pub fn tick(&mut self, now: u64) {
        while now.saturating_sub(self.last_tick) >= self.timing.tick {
            self.last_tick += self.timing.tick;
            self.raw.tick();
            self.after_raft(now);
        }
        if self.is_primary()
            && self
                .last_renew
                .is_none_or(|t| now.saturating_sub(t) >= self.timing.renew)
        {
            self.last_renew = Some(now);
            self.read_seq += 1;
            self.reads.insert(self.read_seq, now);
            self.raw.read_index(self.read_seq.to_le_bytes().to_vec());
        }
        if now.saturating_sub(self.last_report) >= self.timing.tick {
            if let (Some(r), Some(l)) = (self.report.clone(), self.leader()) {
                self.last_report = now;
                if l == self.id {
                    self.heard.insert(self.id, (now, r));
                } else {
                    self.outbox.push(Out {
                        to: l,
                        msg: Msg::Report(r),
                    });
                }
            }
        }
        self.failover_check(now);
        self.add_members(now);
        self.drain(now);
    }

    /// The leader makes every member of the record a raft voter, one change at a time (raft allows one
    /// pending configuration change). Members are never removed here: a Leave entry is the way out.
    fn add_members(&mut self, now: u64) {
        if !self.is_leader() || self.raw.raft.has_pending_conf() {
            return;
        }
        let voters = self.voters();
        let Some(&id) = self.record.members.keys().find(|m| !voters.contains(m)) else {
            return;
        };
        let mut cc = ConfChange::default();
        cc.set_change_type(ConfChangeType::AddNode);
        cc.node_id = id;
        let _ = self.raw.propose_conf_change(vec![], cc);
        self.after_raft(now);
    }

    /// Whether the record (as applied here) names this node, in this incarnation, primary. It may still
    /// not serve: see `can_serve`.
    pub fn is_primary(&self) -> bool {
        self.record.primary == Some((self.id, self.incarnation))
    }

    /// Whether this node may accept writes and serve reads now: it is the primary of the latest epoch it
    /// knows, holds a lease, and has waited out its predecessor's.
    pub fn can_serve(&self, now: u64) -> bool {
        self.is_primary()
            && self.record.serving_primary() == Some(self.id)
            && now >= self.serve_after
            && now < self.lease_until
    }

    /// Until when (this node's clock) its lease lets it serve; 0 if it has none.
    pub fn lease_until(&self) -> u64 {
        self.lease_until
    }

    fn failover_check(&mut self, now: u64) {
        let Some(since) = self.leader_since else {
            return;
        };
        let f = self.timing.failover;
        // A new leader first collects reports for a second (every member sends one per tick, so a
        // live primary is heard many times over; a missed one would cost a needless failover).
        let collect = 10 * self.timing.tick;
        if self.record.primary.is_none() || now.saturating_sub(since) < collect.min(f) {
            return;
        }
        // The serving primary is alive while it reports in the incarnation it serves in. Before this
        // node led, the raft messages it had from the primary are the sign of life (a new leader need
        // not wait a whole `failover` to learn what the followers knew: the old leader, often the
        // primary itself, fell silent before the election); they never count after this node leads
        // (they do not say the incarnation).
        let alive = self.record.serving_primary().is_some_and(|p| {
            let reported = self.heard.get(&p).and_then(|(at, r)| {
                (Some((p, r.incarnation)) == self.record.primary).then_some(*at)
            });
            let before = self.seen.get(&p).map(|&t| t.min(since));
            let last = reported.max(before).unwrap_or(0).max(self.started);
            now.saturating_sub(last) < f
        });
        if alive {
            return;
        }
        let v = self.record.version;
        if self
            .proposed
            .is_some_and(|(pv, at)| pv == v && now.saturating_sub(at) < f)
        {
            return;
        }
        let fresh: BTreeMap<MemberId, Report> = self
            .heard
            .iter()
            .filter(|(_, (at, _))| now.saturating_sub(*at) < f)
            .map(|(id, (_, r))| (*id, r.clone()))
            .collect();
        let Some(c) = candidate(&self.record, &fresh) else {
            return;
        };
        let e = Entry::Takeover {
            how: Takeover::Promote,
            id: c,
            incarnation: self.record.eligible[&c],
            version: v,
        };
        self.proposed = Some((v, now));
        let _ = self.raw.propose(vec![], codec::encode(&e));
        self.after_raft(now);
    }

    /// Handles everything raft has ready: persists, sends, applies, confirms renewals.
    fn drain(&mut self, now: u64) {
        while self.raw.has_ready() {
            let store = self.raw.raft.raft_log.store.clone();
            let mut rd = self.raw.ready();
            self.send(rd.take_messages());
            if *rd.snapshot() != raft::prelude::Snapshot::default() {
                // Snapshots are not produced yet (the log is not compacted); one arriving is a bug.
                let _ = store.wl().apply_snapshot(rd.snapshot().clone());
            }
            let committed = rd.take_committed_entries();
            self.apply(committed, now);
            if !rd.entries().is_empty() {
                self.dirty = true;
                let _ = store.wl().append(rd.entries());
            }
            if let Some(hs) = rd.hs() {
                self.dirty = true;
                store.wl().set_hardstate(hs.clone());
            }
            for rs in rd.take_read_states() {
                let seq = rs
                    .request_ctx
                    .get(..8)
                    .map(|b| u64::from_le_bytes(b.try_into().expect("8")));
                if let Some(sent) = seq.and_then(|s| self.reads.remove(&s)) {
                    self.confirmed.push((rs.index, sent));
                }
            }
            self.send(rd.take_persisted_messages());
            let mut light = self.raw.advance(rd);
            if let Some(c) = light.commit_index() {
                self.dirty = true;
                store.wl().mut_hard_state().set_commit(c);
            }
            self.send(light.take_messages());
            let committed = light.take_committed_entries();
            self.apply(committed, now);
            self.raw.advance_apply();
            self.after_raft(now);
        }
        self.confirm();
        // Renewals never answered (no leader, lost messages) are forgotten after a lease.
        let lease = self.timing.lease;
        self.reads
            .retain(|_, sent| now.saturating_sub(*sent) < lease);
    }

    fn send(&mut self, msgs: Vec<Message>) {
        for m in msgs {
            self.outbox.push(Out {
                to: m.to,
                msg: Msg::Raft(Box::new(m)),
            });
        }
    }

    fn apply(&mut self, entries: Vec<RaftEntry>, now: u64) {
        for e in entries {
            match e.get_entry_type() {
                EntryType::EntryConfChange => {
                    if let Ok(cc) = ConfChange::parse_from_bytes(&e.data) {
                        let _ = self.raw.apply_conf_change(&cc);
                    }
                    continue;
                }
                EntryType::EntryConfChangeV2 => {
                    if let Ok(cc) = ConfChangeV2::parse_from_bytes(&e.data) {
                        let _ = self.raw.apply_conf_change(&cc);
                    }
                    continue;
                }
                EntryType::EntryNormal if e.data.is_empty() => continue,
                EntryType::EntryNormal => {}
            }
            // An entry that does not decode was never proposed by a node of this version: skipped by every
            // node alike, so records stay equal.
            let Ok(entry) = codec::decode(&e.data) else {
                continue;
            };
            let epoch = self.record.epoch;
            if let Ok(true) = self.record.apply(&entry) {
                if self.record.epoch != epoch && self.is_primary() {
                    // Renewals sent before this epoch say nothing about it.
                    self.reads.clear();
                    self.confirmed.clear();
                    self.serve_after = match entry {
                        // A group's first primary has no predecessor whose lease could run.
                        Entry::Found { .. } => now,
                        _ => now + self.timing.takeover_wait(),
                    };
                    self.lease_until = 0;
                    self.last_renew = None;
                }
                self.applied.push(Applied {
                    entry,
                    version: self.record.version,
                    epoch: self.record.epoch,
                });
            }
        }
    }

    /// A renewal counts once the record is applied up to the index it was confirmed at and still names
    /// this node primary of its epoch.
    fn confirm(&mut self) {
        let applied = self.raw.raft.raft_log.applied;
        let mine = self.is_primary();
        let lease = self.timing.lease;
        let mut until = self.lease_until;
        self.confirmed.retain(|&(index, sent)| {
            if index > applied {
                return true;
            }
            if mine {
                until = until.max(sent + lease);
            }
            false
        });
        self.lease_until = until;
    }

    pub fn take_outbox(&mut self) -> Vec<Out> {
        std::mem::take(&mut self.outbox)
    }

    pub fn take_applied(&mut self) -> Vec<Applied> {
        std::mem::take(&mut self.applied)
    }
}
