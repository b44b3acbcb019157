//! A group grown the way the server grows one: a founder alone, members joining one by one (raft voters
//! added by the leader as the record gains members), a member restarted from its saved state, and a
//! failover among the joined members. Messages pass through the wire format, so the bytes are exercised
//! too; delivery is immediate and in order (the seeded faults are group_sim.rs's business).

use std::collections::BTreeMap;

use tandem_sync::group::node::{storage, Msg, Node, Timing};
use tandem_sync::group::record::{Entry, MemberId, Report};
use tandem_sync::group::saved;
use tandem_sync::group::wire::{self, Body, Wire};

struct Net {
    nodes: BTreeMap<MemberId, Node>,
    /// What each node last asked to keep on disk.
    saved: BTreeMap<MemberId, saved::Saved>,
    down: Vec<MemberId>,
    now: u64,
}

impl Net {
    fn deliver(&mut self) {
        for _ in 0..100 {
            let mut moved = false;
            let ids: Vec<MemberId> = self.nodes.keys().copied().collect();
            for from in ids {
                let out = self.nodes.get_mut(&from).unwrap().take_outbox();
                for o in out {
                    moved = true;
                    if self.down.contains(&from) || self.down.contains(&o.to) {
                        continue;
                    }
                    let body = match o.msg {
                        Msg::Raft(m) => Body::Raft(m),
                        Msg::Report(r) => Body::Report(r),
                    };
                    let bytes = wire::encode(&Wire {
                        from,
                        addr: format!("n{from}:1"),
                        body,
                    });
                    let w = wire::decode(&bytes).expect("own bytes decode");
                    let msg = match w.body {
                        Body::Raft(m) => Msg::Raft(m),
                        Body::Report(r) => Msg::Report(r),
                        _ => unreachable!(),
                    };
                    if let Some(n) = self.nodes.get_mut(&o.to) {
                        n.step(w.from, msg, self.now);
                    }
                }
            }
            if !moved {
                return;
            }
        }
    }

    fn run(&mut self, ms: u64) {
        let end = self.now + ms;
        while self.now < end {
            self.now += 10;
            for (id, n) in self.nodes.iter_mut() {
                if !self.down.contains(id) {
                    n.set_report(Report {
                        incarnation: n.incarnation,
                        epoch: n.record.epoch,
                        offsets: vec![0],
                    });
                    n.tick(self.now);
                }
            }
            self.deliver();
            // What the server saves after every step must always encode and decode (a member that
            // has heard a term but holds no entry yet included).
            for (id, n) in self.nodes.iter_mut() {
                if let Some(s) = n.take_saved() {
                    let back = saved::decode(&saved::encode(&s)).expect("decodes");
                    assert_eq!(back, s);
                    self.saved.insert(*id, back);
                }
            }
        }
    }

    /// Proposes on whichever node leads (retrying as the server does) until `done` holds on `on`.
    fn propose_until(&mut self, e: Entry, on: MemberId, done: impl Fn(&Node) -> bool) {
        for _ in 0..200 {
            if done(&self.nodes[&on]) {
                return;
            }
            let now = self.now;
            if let Some(l) = self.nodes.values().find_map(|n| n.leader()) {
                let _ = self.nodes.get_mut(&l).unwrap().propose(&e, now);
            }
            self.run(50);
        }
        panic!("{e:?} never took effect on {on}");
    }
}

fn join(id: MemberId, inc: u64) -> Entry {
    Entry::Join {
        id,
        node_id: format!("{id:016x}{}", "0".repeat(24)),
        addr: format!("n{id}:1"),
        witness: false,
        incarnation: inc,
    }
}

/// A member that has heard a leader's term before any entry saves a state with no log (the server's
/// first save of a joiner).
#[test]
fn a_term_without_entries_is_saved() {
    use raft::prelude::{Message, MessageType};
    let mut n = Node::new(2, 1, storage(&[1]), Timing::default(), 5, 0).unwrap();
    let mut m = Message::default();
    m.set_msg_type(MessageType::MsgHeartbeat);
    m.from = 1;
    m.to = 2;
    m.term = 3;
    n.step(1, Msg::Raft(Box::new(m)), 10);
    let s = n.take_saved().expect("the term changed");
    assert_eq!(
        (s.term, s.entries.len(), s.genesis.clone()),
        (3, 0, vec![1])
    );
    assert!(!n.take_outbox().is_empty(), "the heartbeat is answered");
}

#[test]
fn members_join_one_by_one_restart_and_fail_over() {
    let t = Timing::default();
    let mut net = Net {
        nodes: BTreeMap::new(),
        saved: BTreeMap::new(),
        down: vec![],
        now: 0,
    };
    // The founder leads alone at once and founds the group.
    let mut a = Node::new(1, 1, storage(&[1]), t.clone(), 11, 0).unwrap();
    a.campaign(0);
    assert!(a.is_leader());
    net.nodes.insert(1, a);
    net.propose_until(join(1, 1), 1, |n| n.record.members.contains_key(&1));
    net.propose_until(
        Entry::Found {
            id: 1,
            incarnation: 1,
        },
        1,
        |n| n.is_primary(),
    );
    net.run(600);
    assert!(net.nodes[&1].can_serve(net.now), "a founder serves at once");

    // Two members join from the genesis they were welcomed with; the leader makes them voters.
    for id in [2, 3] {
        let genesis = net.nodes[&1].genesis().to_vec();
        let n = Node::new(id, 1, storage(&genesis), t.clone(), id * 7, net.now).unwrap();
        net.nodes.insert(id, n);
        net.propose_until(join(id, 1), id, |n| n.record.members.contains_key(&id));
    }
    net.run(1000);
    for n in net.nodes.values() {
        assert_eq!(n.voters(), vec![1, 2, 3], "node {}", n.id);
        assert_eq!(n.record, net.nodes[&1].record);
    }

    // A member restarted from its saved bytes rebuilds the same record and voters.
    let s = net.saved[&3].clone();
    let c = Node::new(3, 2, s.storage().unwrap(), t.clone(), 99, net.now).unwrap();
    assert_eq!(c.record, net.nodes[&3].record);
    assert_eq!(c.voters(), vec![1, 2, 3]);
    net.nodes.insert(3, c);
    net.propose_until(join(3, 2), 3, |n| n.record.members[&3].incarnation == 2);

    // The primary grants member 2, then dies: the new raft leader promotes 2.
    let v = net.nodes[&1].record.version;
    net.propose_until(
        Entry::Grant {
            by: 1,
            version: v,
            id: 2,
            incarnation: 1,
        },
        2,
        |n| n.record.is_eligible(2, 1),
    );
    net.down.push(1);
    net.run(t.failover + 3000 + t.takeover_wait());
    let b = &net.nodes[&2];
    assert!(b.is_primary(), "record: {:?}", b.record);
    assert!(b.can_serve(net.now));
    assert_eq!(b.record.epoch, 2);
    assert!(!net.nodes[&3].can_serve(net.now));
}
