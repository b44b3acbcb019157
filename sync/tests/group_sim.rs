//! Deterministic simulation of a replication group: every node's control plane (`group::node::Node`, raft
//! included) plus a model of its data path, in one thread, on virtual time. A seeded scheduler delays,
//! reorders, duplicates and drops messages, cuts links one way or both, crashes nodes (memory lost, raft
//! storage kept, a new incarnation at restart), pauses them (SIGSTOP: their clocks run on) and gives every
//! clock its own rate. After every step it checks:
//! - never two nodes able to serve (accept writes, answer reads) at the same moment;
//! - every acknowledged write is in the log of every node that serves after it was acknowledged;
//! - an eligible replica never replaces its log (a full sync) while eligible;
//! - a node's epoch never goes back within one life.
//!
//! A failing seed replays exactly: `SEED=<n> cargo test -p tandem-sync --test group_sim one_seed`.

use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::rc::Rc;

use tandem_sync::group::node::{storage, Msg, Node, Timing};
use tandem_sync::group::record::{Entry, MemberId, Report};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, per_million: u64) -> bool {
        self.below(1_000_000) < per_million
    }
}

#[derive(Clone, Debug)]
enum Data {
    /// The primary's whole log (the model sends state, not deltas) in its epoch.
    Append { epoch: u64, log: Log },
    Ack {
        epoch: u64,
        incarnation: u64,
        len: usize,
    },
}

#[derive(Debug)]
enum Payload {
    Ctl(Msg),
    Data(Data),
}

struct InFlight {
    at: u64,
    seq: u64,
    from: MemberId,
    to: MemberId,
    payload: Payload,
}

impl PartialEq for InFlight {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for InFlight {}
impl PartialOrd for InFlight {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for InFlight {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (o.at, o.seq).cmp(&(self.at, self.seq))
    }
}

/// A log of write ids, each with the hash of the whole log up to it: two logs agree up to a position
/// exactly when their hashes there agree, so prefix checks cost O(1). Shared, copied on write.
type Log = Rc<Vec<(u64, u64)>>;

fn chain(prev: u64, w: u64) -> u64 {
    (prev ^ w.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .wrapping_mul(0xBF58_476D_1CE4_E5B9)
        .rotate_left(31)
}

/// Whether `a` is a prefix of `b`.
fn prefix(a: &Log, b: &Log) -> bool {
    a.len() <= b.len() && a.last().is_none_or(|x| b[a.len() - 1].1 == x.1)
}

/// A data node's model: its log of write ids, and as primary the replicas' acks and its wait set.
#[derive(Default)]
struct DataPath {
    log: Log,
    acks: BTreeMap<MemberId, (u64, usize)>,
    /// Grants proposed and not yet applied or dead: the version each was proposed at.
    granting: BTreeMap<MemberId, u64>,
    /// Writes waiting for acknowledgement: (log length that covers it, write id, since).
    waiting: Vec<(usize, u64, u64)>,
    last_revoke: u64,
    last_append: u64,
    /// The epoch whose primary last sent this replica its log.
    log_epoch: u64,
}

struct Live {
    ctl: Node,
    data: DataPath,
    epoch_seen: u64,
    paused_until: u64,
}

struct Sim {
    rng: Rng,
    now: u64,
    seq: u64,
    timing: Timing,
    ids: Vec<MemberId>,
    witness: BTreeSet<MemberId>,
    nodes: BTreeMap<MemberId, Option<Live>>,
    stores: BTreeMap<MemberId, raft::storage::MemStorage>,
    incarnation: BTreeMap<MemberId, u64>,
    down_until: BTreeMap<MemberId, u64>,
    clock: BTreeMap<MemberId, (u64, u64)>,
    cut: BTreeSet<(MemberId, MemberId)>,
    heal_at: u64,
    net: BinaryHeap<InFlight>,
    acked: Vec<u64>,
    /// Per epoch, the highest acknowledged position and the log hash there: within an epoch the log only
    /// grows, so a log that agrees there holds every write acknowledged in that epoch.
    acked_tip: BTreeMap<u64, (usize, u64)>,
    next_write: u64,
    need: usize,
    // Counters, to show the runs are not vacuous.
    epochs: u64,
    faults: u64,
}

fn node_id(id: MemberId) -> String {
    format!("{id:016x}{}", "a".repeat(24))
}

impl Sim {
    fn new(seed: u64, data_nodes: usize, witness: bool) -> Sim {
        let mut ids: Vec<MemberId> = (1..=data_nodes as u64).collect();
        let mut wit = BTreeSet::new();
        if witness {
            let w = data_nodes as u64 + 1;
            ids.push(w);
            wit.insert(w);
        }
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let mut s = Sim {
            now: 0,
            seq: 0,
            timing: Timing::default(),
            witness: wit,
            nodes: BTreeMap::new(),
            stores: ids.iter().map(|&i| (i, storage(&ids))).collect(),
            incarnation: BTreeMap::new(),
            down_until: BTreeMap::new(),
            clock: BTreeMap::new(),
            cut: BTreeSet::new(),
            heal_at: 0,
            net: BinaryHeap::new(),
            acked: Vec::new(),
            acked_tip: BTreeMap::new(),
            next_write: 1,
            need: 1,
            epochs: 0,
            faults: 0,
            ids: ids.clone(),
            rng: Rng(0),
        };
        for &id in &ids {
            // Each clock: an offset and a rate within ±0.5% of real time (Timing's bound is 1% apart).
            let rate = 995_000 + rng.below(10_001);
            s.clock.insert(id, (rng.below(1_000_000), rate));
        }
        s.rng = rng;
        for id in ids {
            s.start(id);
        }
        s
    }

    fn local(&self, id: MemberId) -> u64 {
        let (off, rate) = self.clock[&id];
        off + self.now * rate / 1_000_000
    }

    fn start(&mut self, id: MemberId) {
        let inc = self.incarnation.entry(id).or_insert(0);
        *inc += 1;
        let inc = *inc;
        let now = self.local(id);
        let seed = self.rng.next();
        let ctl = Node::new(
            id,
            inc,
            self.stores[&id].clone(),
            self.timing.clone(),
            seed,
            now,
        )
        .expect("raft config");
        self.nodes.insert(
            id,
            Some(Live {
                ctl,
                data: DataPath::default(),
                epoch_seen: 0,
                paused_until: 0,
            }),
        );
    }

    fn send(&mut self, from: MemberId, to: MemberId, payload: Payload) {
        if self.cut.contains(&(from, to)) || self.rng.chance(20_000) {
            return;
        }
        let copies = if self.rng.chance(10_000) { 2 } else { 1 };
        for _ in 0..copies {
            self.seq += 1;
            let at = self.now + 1 + self.rng.below(20);
            let payload = match &payload {
                Payload::Ctl(m) => Payload::Ctl(m.clone()),
                Payload::Data(d) => Payload::Data(d.clone()),
            };
            self.net.push(InFlight {
                at,
                seq: self.seq,
                from,
                to,
                payload,
            });
        }
    }

    fn flush(&mut self, id: MemberId) {
        let outs = match self.nodes.get_mut(&id) {
            Some(Some(l)) => l.ctl.take_outbox(),
            _ => return,
        };
        for o in outs {
            self.send(id, o.to, Payload::Ctl(o.msg));
        }
    }

    fn faults(&mut self) {
        if self.now >= self.heal_at && !self.cut.is_empty() {
            self.cut.clear();
        }
        // At most one node crashed or paused at a time, so a majority can always act.
        let troubled = self.ids.iter().any(|id| {
            self.down_until.get(id).is_some_and(|&t| t > self.now)
                || matches!(&self.nodes[id], Some(l) if l.paused_until > self.now)
        });
        if troubled || !self.rng.chance(400) {
            return;
        }
        self.faults += 1;
        let victim = self.ids[self.rng.below(self.ids.len() as u64) as usize];
        match self.rng.below(4) {
            0 => {
                // kill -9: memory gone, raft storage kept.
                self.nodes.insert(victim, None);
                self.down_until
                    .insert(victim, self.now + 300 + self.rng.below(3000));
            }
            1 => {
                let d = 300 + self.rng.below(8000);
                if let Some(Some(l)) = self.nodes.get_mut(&victim) {
                    l.paused_until = self.now + d;
                }
            }
            2 => {
                // Cut the victim off, one way or both.
                let dir = self.rng.below(3);
                for &o in &self.ids {
                    if o != victim {
                        if dir != 1 {
                            self.cut.insert((victim, o));
                        }
                        if dir != 2 {
                            self.cut.insert((o, victim));
                        }
                    }
                }
                self.heal_at = self.now + 300 + self.rng.below(6000);
            }
            _ => {
                // One link, one way.
                let other = self.ids[self.rng.below(self.ids.len() as u64) as usize];
                if other != victim {
                    self.cut.insert((victim, other));
                    self.heal_at = self.now + 300 + self.rng.below(4000);
                }
            }
        }
    }

    fn step(&mut self) {
        self.now += 5;
        self.faults();
        for id in self.ids.clone() {
            if self.nodes[&id].is_none() && self.down_until.get(&id).is_some_and(|&t| t <= self.now)
            {
                self.down_until.remove(&id);
                self.start(id);
            }
        }
        // Deliver what is due; a paused node's messages wait in its socket.
        let mut later = Vec::new();
        while self.net.peek().is_some_and(|m| m.at <= self.now) {
            let m = self.net.pop().expect("peeked");
            match &self.nodes[&m.to] {
                None => continue,
                Some(l) if l.paused_until > self.now => {
                    later.push(m);
                    continue;
                }
                _ => {}
            }
            let now = self.local(m.to);
            match m.payload {
                Payload::Ctl(msg) => {
                    if let Some(Some(l)) = self.nodes.get_mut(&m.to) {
                        l.ctl.step(m.from, msg, now);
                    }
                    self.flush(m.to);
                }
                Payload::Data(d) => self.data(m.from, m.to, d),
            }
        }
        for mut m in later {
            m.at = self.now + 5;
            self.net.push(m);
        }
        for id in self.ids.clone() {
            let acting = matches!(&self.nodes[&id], Some(l) if l.paused_until <= self.now);
            if !acting {
                continue;
            }
            let now = self.local(id);
            self.control(id, now);
            self.flush(id);
            if !self.witness.contains(&id) {
                self.primary_duties(id, now);
            }
            self.flush(id);
        }
        self.check();
    }

    /// The control plane's part: tick, join after a start, report, found the group.
    fn control(&mut self, id: MemberId, now: u64) {
        let witness = self.witness.contains(&id);
        let Some(Some(l)) = self.nodes.get_mut(&id) else {
            return;
        };
        l.ctl.tick(now);
        let inc = l.ctl.incarnation;
        let me = l.ctl.record.members.get(&id).map(|m| m.incarnation);
        if me != Some(inc) && now % 200 < 5 {
            let _ = l.ctl.propose(
                &Entry::Join {
                    id,
                    node_id: node_id(id),
                    addr: format!("n{id}"),
                    witness,
                    incarnation: inc,
                },
                now,
            );
        }
        // Node 1 founds the group once every member has joined (only ever accepted once).
        if id == 1
            && l.ctl.record.primary.is_none()
            && l.ctl.record.members.len() == self.ids.len()
            && now % 200 < 5
        {
            let _ = l.ctl.propose(
                &Entry::Found {
                    id,
                    incarnation: inc,
                },
                now,
            );
        }
        if !witness {
            l.ctl.set_report(Report {
                incarnation: inc,
                epoch: l.ctl.record.epoch,
                offsets: vec![l.data.log.len() as u64],
            });
        }
        let applied = l.ctl.take_applied();
        for a in applied {
            if let Entry::Found { .. } | Entry::Takeover { .. } = a.entry {
                self.epochs = self.epochs.max(a.epoch);
            }
        }
    }

    fn primary_duties(&mut self, id: MemberId, now: u64) {
        let need = self.need;
        let mut to_send = Vec::new();
        {
            let Some(Some(l)) = self.nodes.get_mut(&id) else {
                return;
            };
            let rec = &l.ctl.record;
            if !l.ctl.is_primary() {
                l.data.waiting.clear();
                l.data.granting.clear();
                return;
            }
            let serving = l.ctl.can_serve(now);
            if serving && self.rng.chance(300_000) {
                let w = self.next_write;
                self.next_write += 1;
                let prev = l.data.log.last().map_or(0, |x| x.1);
                Rc::make_mut(&mut l.data.log).push((w, chain(prev, w)));
                let at = l.data.log.len();
                l.data.waiting.push((at, w, now));
            }
            // Grants no longer possible (the version moved on without them) stop being waited for.
            let v = rec.version;
            l.data
                .granting
                .retain(|r, pv| *pv == v && !rec.eligible.contains_key(r));
            let wait: BTreeSet<MemberId> = rec
                .eligible
                .keys()
                .chain(l.data.granting.keys())
                .copied()
                .collect();
            // Commit: every replica waited for has the write, and at least `need` are waited for.
            if wait.len() >= need && serving {
                let min = wait
                    .iter()
                    .map(|r| l.data.acks.get(r).map_or(0, |a| a.1))
                    .min()
                    .unwrap_or(0);
                let (done, rest): (Vec<_>, Vec<_>) =
                    l.data.waiting.drain(..).partition(|(len, ..)| *len <= min);
                l.data.waiting = rest;
                if let Some((len, ..)) = done.last() {
                    let mark = (*len, l.data.log[*len - 1].1);
                    let e = l.ctl.record.epoch;
                    let best = self.acked_tip.entry(e).or_insert(mark);
                    if mark.0 >= best.0 {
                        *best = mark;
                    }
                }
                self.acked.extend(done.iter().map(|(_, w, _)| *w));
            }
            // Grant a caught-up replica in its current incarnation; revoke one that keeps a write waiting.
            let ready: Option<(MemberId, u64)> = rec
                .members
                .iter()
                .filter(|(r, m)| {
                    **r != id
                        && !m.witness
                        && !rec.eligible.contains_key(r)
                        && !l.data.granting.contains_key(r)
                        && l.data.acks.get(r) == Some(&(m.incarnation, l.data.log.len()))
                })
                .map(|(r, m)| (*r, m.incarnation))
                .next();
            if let Some((r, incarnation)) = ready {
                let g = Entry::Grant {
                    by: id,
                    version: v,
                    id: r,
                    incarnation,
                };
                if l.ctl.propose(&g, now).is_ok() {
                    l.data.granting.insert(r, v);
                }
            }
            let rec = &l.ctl.record;
            let oldest = l.data.waiting.first().map(|w| w.2);
            if oldest.is_some_and(|t| now.saturating_sub(t) > 1000)
                && now.saturating_sub(l.data.last_revoke) > 500
            {
                let len = l.data.log.len();
                let slow: Vec<MemberId> = rec
                    .eligible
                    .keys()
                    .filter(|r| l.data.acks.get(r).map_or(0, |a| a.1) < len)
                    .copied()
                    .collect();
                let epoch = rec.epoch;
                for r in slow {
                    let _ = l.ctl.propose(
                        &Entry::Revoke {
                            by: id,
                            epoch,
                            id: r,
                        },
                        now,
                    );
                }
                l.data.last_revoke = now;
            }
            if now.saturating_sub(l.data.last_append) >= 10 {
                l.data.last_append = now;
                let epoch = l.ctl.record.epoch;
                for r in l.ctl.record.members.keys() {
                    if *r != id && !self.witness.contains(r) {
                        to_send.push((
                            *r,
                            Data::Append {
                                epoch,
                                log: l.data.log.clone(),
                            },
                        ));
                    }
                }
            }
        }
        for (to, d) in to_send {
            self.send(id, to, Payload::Data(d));
        }
    }

    fn data(&mut self, from: MemberId, to: MemberId, d: Data) {
        let Some(Some(l)) = self.nodes.get_mut(&to) else {
            return;
        };
        let rec = &l.ctl.record;
        match d {
            Data::Append { epoch, log } => {
                if epoch != rec.epoch || rec.serving_primary() != Some(from) {
                    return;
                }
                let mine = &l.data.log;
                let extends = prefix(mine, &log);
                let stale = prefix(&log, mine);
                if epoch == l.data.log_epoch && stale {
                    // An older state overtaken by a newer one of the same epoch (the model's messages
                    // reorder; a stream would not): nothing new, but the replica still says what it holds.
                } else {
                    if !extends {
                        // A full sync (the log differs, or holds more than the new primary's: writes of
                        // an older epoch it must drop): only ever of a replica that is not eligible.
                        assert!(
                            !rec.is_eligible(to, l.ctl.incarnation),
                            "eligible replica {to} replaces its log (epoch {epoch})"
                        );
                    }
                    l.data.log = log;
                    l.data.log_epoch = epoch;
                }
                let ack = Data::Ack {
                    epoch,
                    incarnation: l.ctl.incarnation,
                    len: l.data.log.len(),
                };
                self.send(to, from, Payload::Data(ack));
            }
            Data::Ack {
                epoch,
                incarnation,
                len,
            } => {
                if epoch == rec.epoch && l.ctl.is_primary() {
                    l.data.acks.insert(from, (incarnation, len));
                }
            }
        }
    }

    fn check(&mut self) {
        let mut serving = Vec::new();
        for id in self.ids.clone() {
            let now = self.local(id);
            if let Some(Some(l)) = self.nodes.get_mut(&id) {
                if l.paused_until > self.now {
                    continue;
                }
                let e = l.ctl.record.epoch;
                assert!(
                    e >= l.epoch_seen,
                    "node {id}: epoch went back {} -> {e}",
                    l.epoch_seen
                );
                l.epoch_seen = e;
                if l.ctl.can_serve(now) {
                    serving.push(id);
                    for (e, (pos, h)) in &self.acked_tip {
                        assert!(
                            l.data.log.len() >= *pos && l.data.log[pos - 1].1 == *h,
                            "node {id} serves without the writes acknowledged in epoch {e}"
                        );
                    }
                }
            }
        }
        assert!(
            serving.len() <= 1,
            "two nodes serve at {} ms: {serving:?}",
            self.now
        );
    }
}

fn run(seed: u64, seconds: u64, data_nodes: usize, witness: bool) -> (u64, usize, u64) {
    let mut s = Sim::new(seed, data_nodes, witness);
    while s.now < seconds * 1000 {
        s.step();
    }
    (s.epochs, s.acked.len(), s.faults)
}

#[test]
fn one_seed() {
    let seed = std::env::var("SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let (epochs, acked, faults) = run(seed, 60, 3, false);
    eprintln!("seed {seed}: {epochs} epochs, {acked} acknowledged writes, {faults} faults");
}

/// Runs `SIM_SEEDS` seeds (1000 by default) from `first`: the invariants hold in every step of every
/// run (checked inside), and the runs do fail over and do acknowledge writes (so the checks saw
/// something).
fn many(first: u64, data_nodes: usize, witness: bool) {
    let seeds: u64 = std::env::var("SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    let (mut failovers, mut acked) = (0, 0);
    for seed in first..first + seeds {
        let (epochs, a, _) = run(seed, 30, data_nodes, witness);
        // The founding makes epoch 1; every later epoch is a failover.
        failovers += epochs.saturating_sub(1);
        acked += a;
    }
    eprintln!("{seeds} runs: {failovers} failovers, {acked} acknowledged writes");
    assert!(
        failovers > seeds / 10,
        "failovers happen: {failovers} over {seeds} runs"
    );
    assert!(
        acked > seeds as usize * 100,
        "writes are acknowledged: {acked}"
    );
}

#[test]
fn many_seeds_three_data_nodes() {
    many(0, 3, false);
}

#[test]
fn many_seeds_two_data_nodes_and_a_witness() {
    many(1000, 2, true);
}
