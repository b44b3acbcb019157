//! Durability mode's write quorum and replica eligibility as a state machine without I/O (issue 9's
//! foundation; the server does not drive it yet). Time is injected (ms); the caller carries out actions.
//!
//! Rules (shared/reference/durability-design.md, Kafka's ISR):
//! - every replica starts ineligible; once its acknowledged offsets equal the primary's log ends on every
//!   shard, the machine asks to pause writers (`PauseWriters`); with writers paused the caller confirms
//!   (`confirm_grant`), the equality is checked again and only then is the replica `Grant`ed;
//! - a write is admitted only while at least `need` replicas are eligible; once applied (`submit` with its
//!   log ends) it commits when every replica eligible at that moment holds it; a replica that stops
//!   acknowledging for `timeout_ms`, loses its link, needs a full sync or is forgotten is `Revoke`d first,
//!   and only then stops being waited for;
//! - a write not committed within `timeout_ms` is reported `Unknown` (it stays pending and may commit
//!   later): never acknowledged by fewer replicas than were eligible when it commits.

use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Pause client writes so the replica's offsets can be compared with a log that does not move.
    PauseWriters(u64),
    /// The replica is eligible from now on (send the grant, ordered in its stream); resume writers.
    Grant(u64),
    /// Resume writers without a grant (the replica fell behind meanwhile).
    ResumeWriters,
    /// The replica is no longer eligible.
    Revoke(u64, &'static str),
    /// The write is held by every eligible replica: its reply may go.
    Commit(u64),
    /// The write timed out: its outcome is not known yet.
    Unknown(u64),
}

#[derive(Debug, Clone)]
struct Replica {
    eligible: bool,
    acked: Vec<u64>,
    last_ack_ms: u64,
}

#[derive(Debug, Clone)]
struct Pending {
    target: Vec<u64>,
    deadline_ms: u64,
    reported: bool,
}

#[derive(Debug, Clone)]
pub struct Quorum {
    need: usize,
    timeout_ms: u64,
    /// The primary's log end per shard.
    ends: Vec<u64>,
    replicas: BTreeMap<u64, Replica>,
    pending: BTreeMap<u64, Pending>,
    /// The replica a pause was asked for, if any.
    pausing: Option<u64>,
}

fn holds(acked: &[u64], target: &[u64]) -> bool {
    target
        .iter()
        .enumerate()
        .all(|(s, &t)| acked.get(s).is_some_and(|&a| a >= t))
}

impl Quorum {
    pub fn new(shards: usize, need: usize, timeout_ms: u64) -> Self {
        Quorum {
            need,
            timeout_ms,
            ends: vec![0; shards],
            replicas: BTreeMap::new(),
            pending: BTreeMap::new(),
            pausing: None,
        }
    }

    pub fn eligible(&self) -> Vec<u64> {
        self.replicas
            .iter()
            .filter(|(_, r)| r.eligible)
            .map(|(&id, _)| id)
            .collect()
    }

    /// Whether a write may be applied now: Err((eligible, need)) for `-NOREPLICAS ... <k> of <N>`.
    pub fn admit(&self) -> Result<(), (usize, usize)> {
        let k = self.eligible().len();
        if k >= self.need {
            Ok(())
        } else {
            Err((k, self.need))
        }
    }

    /// The primary's log grew on `shard` to `end`.
    pub fn appended(&mut self, shard: usize, end: u64) {
        self.ends[shard] = self.ends[shard].max(end);
    }

    /// A replica (re)connected: a new incarnation, ineligible until granted.
    pub fn connected(&mut self, id: u64, now: u64) -> Vec<Action> {
        let mut out = self.revoke(id, "reconnected");
        self.replicas.insert(
            id,
            Replica {
                eligible: false,
                acked: vec![0; self.ends.len()],
                last_ack_ms: now,
            },
        );
        out.extend(self.settle(now));
        out
    }

    /// The replica acknowledged `offsets` (only ever growing per shard).
    pub fn acked(&mut self, id: u64, offsets: &[u64], now: u64) -> Vec<Action> {
        let Some(r) = self.replicas.get_mut(&id) else {
            return vec![];
        };
        for (a, &o) in r.acked.iter_mut().zip(offsets) {
            *a = (*a).max(o);
        }
        r.last_ack_ms = now;
        let mut out = self.settle(now);
        if self.pausing.is_none() && !r_eligible(&self.replicas, id) && self.caught_up(id) {
            self.pausing = Some(id);
            out.push(Action::PauseWriters(id));
        }
        out
    }

    /// Writers are paused for `id`: grant it if it still holds exactly the log.
    pub fn confirm_grant(&mut self, id: u64, now: u64) -> Vec<Action> {
        if self.pausing != Some(id) {
            return vec![];
        }
        self.pausing = None;
        if !self.caught_up(id) {
            return vec![Action::ResumeWriters];
        }
        if let Some(r) = self.replicas.get_mut(&id) {
            r.eligible = true;
        }
        let mut out = vec![Action::Grant(id)];
        out.extend(self.settle(now));
        out
    }

    fn caught_up(&self, id: u64) -> bool {
        self.replicas.get(&id).is_some_and(|r| r.acked == self.ends)
    }

    /// The link dropped, or the replica needs a full sync: ineligible at once.
    pub fn lost(&mut self, id: u64, why: &'static str, now: u64) -> Vec<Action> {
        let mut out = self.revoke(id, why);
        self.replicas.remove(&id);
        out.extend(self.settle(now));
        out
    }

    /// DURABILITY FORGET: out of the quorum at once.
    pub fn forget(&mut self, id: u64, now: u64) -> Vec<Action> {
        self.lost(id, "forgotten", now)
    }

    fn revoke(&mut self, id: u64, why: &'static str) -> Vec<Action> {
        if self.pausing == Some(id) {
            self.pausing = None;
        }
        match self.replicas.get_mut(&id) {
            Some(r) if r.eligible => {
                r.eligible = false;
                vec![Action::Revoke(id, why)]
            }
            _ => vec![],
        }
    }

    /// A write was applied; `target` is the log end per shard it needs held.
    pub fn submit(&mut self, write: u64, target: Vec<u64>, now: u64) -> Vec<Action> {
        self.pending.insert(
            write,
            Pending {
                target,
                deadline_ms: now + self.timeout_ms,
                reported: false,
            },
        );
        self.settle(now)
    }

    /// Commits every pending write every eligible replica holds (with at least `need` eligible).
    fn settle(&mut self, _now: u64) -> Vec<Action> {
        let eligible: Vec<&Replica> = self.replicas.values().filter(|r| r.eligible).collect();
        if eligible.len() < self.need {
            return vec![];
        }
        let done: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| eligible.iter().all(|r| holds(&r.acked, &p.target)))
            .map(|(&w, _)| w)
            .collect();
        done.into_iter()
            .map(|w| {
                self.pending.remove(&w);
                Action::Commit(w)
            })
            .collect()
    }

    pub fn tick(&mut self, now: u64) -> Vec<Action> {
        let mut out = Vec::new();
        let silent: Vec<u64> = self
            .replicas
            .iter()
            .filter(|(_, r)| r.eligible && now.saturating_sub(r.last_ack_ms) > self.timeout_ms)
            .map(|(&id, _)| id)
            .collect();
        for id in silent {
            out.extend(self.revoke(id, "no acknowledgement within durability-timeout"));
        }
        out.extend(self.settle(now));
        for (&w, p) in self.pending.iter_mut() {
            if !p.reported && now >= p.deadline_ms {
                p.reported = true;
                out.push(Action::Unknown(w));
            }
        }
        out
    }
}

fn r_eligible(replicas: &BTreeMap<u64, Replica>, id: u64) -> bool {
    replicas.get(&id).is_some_and(|r| r.eligible)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn grant_after_catch_up_then_commit_and_revoke() {
        let mut q = Quorum::new(2, 1, 1000);
        assert_eq!(q.admit(), Err((0, 1)));
        q.appended(0, 100);
        q.appended(1, 50);
        q.connected(7, 0);
        assert_eq!(q.acked(7, &[100, 40], 10), vec![]);
        assert_eq!(q.acked(7, &[100, 50], 20), vec![Action::PauseWriters(7)]);
        assert_eq!(q.confirm_grant(7, 21), vec![Action::Grant(7)]);
        assert_eq!(q.admit(), Ok(()));
        q.appended(0, 130);
        assert_eq!(q.submit(1, vec![130, 50], 30), vec![]);
        assert_eq!(q.acked(7, &[130, 50], 40), vec![Action::Commit(1)]);
        // Silent past the timeout: revoked, and writes are refused.
        q.appended(0, 160);
        assert_eq!(q.submit(2, vec![160, 50], 50), vec![]);
        let a = q.tick(1100);
        assert!(a.contains(&Action::Revoke(
            7,
            "no acknowledgement within durability-timeout"
        )));
        assert!(
            !a.contains(&Action::Commit(2)),
            "never committed by fewer than need"
        );
        assert_eq!(q.tick(1100), vec![]);
        assert_eq!(q.admit(), Err((0, 1)));
        assert!(q.tick(1051).is_empty());
    }

    #[test]
    fn a_replica_that_falls_behind_during_the_pause_is_not_granted() {
        let mut q = Quorum::new(1, 1, 1000);
        q.appended(0, 10);
        q.connected(1, 0);
        assert_eq!(q.acked(1, &[10], 1), vec![Action::PauseWriters(1)]);
        q.appended(0, 20);
        assert_eq!(q.confirm_grant(1, 2), vec![Action::ResumeWriters]);
        assert!(q.eligible().is_empty());
    }

    #[test]
    fn forget_unblocks_at_once_and_a_reconnect_is_ineligible() {
        let mut q = Quorum::new(1, 1, 1000);
        for id in [1, 2] {
            q.connected(id, 0);
            q.acked(id, &[0], 0);
            q.confirm_grant(id, 0);
        }
        assert_eq!(q.eligible(), vec![1, 2]);
        q.appended(0, 5);
        assert_eq!(q.submit(9, vec![5], 1), vec![]);
        assert_eq!(q.acked(1, &[5], 2), vec![]);
        assert_eq!(
            q.forget(2, 3),
            vec![Action::Revoke(2, "forgotten"), Action::Commit(9)]
        );
        assert_eq!(q.connected(1, 4), vec![Action::Revoke(1, "reconnected")]);
        assert!(q.eligible().is_empty());
    }

    /// Runs a seeded schedule of appends, acks, pauses, grants, losses, forgets, writes and ticks, checking
    /// after every action: a write commits only when at least `need` replicas are eligible and every
    /// eligible one holds it; a grant happens only at offsets equal to the log's ends; a revoked replica
    /// never counts. Returns (grants, commits) so the schedules can be shown to exercise both.
    fn run_schedule(seed: u64, need: usize, shards: usize) -> Result<(usize, usize), String> {
        let mut x = seed | 1;
        let mut rnd = |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        let mut q = Quorum::new(shards, need, 500);
        let (mut now, mut next_write) = (0u64, 0u64);
        let (mut grants, mut commits) = (0, 0);
        let mut acked_model: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
        let mut targets: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
        for _ in 0..400 {
            now += rnd(50);
            let id = rnd(3);
            let acts = match rnd(9) {
                0 => {
                    let s = rnd(shards as u64) as usize;
                    let e = q.ends[s] + rnd(10);
                    q.appended(s, e);
                    vec![]
                }
                1 => {
                    acked_model.insert(id, vec![0; shards]);
                    q.connected(id, now)
                }
                2 | 3 => {
                    // A replica acknowledges at most what the primary logged.
                    let offs: Vec<u64> = q.ends.iter().map(|&e| e - rnd(2).min(e)).collect();
                    if let Some(m) = acked_model.get_mut(&id) {
                        for (a, o) in m.iter_mut().zip(&offs) {
                            *a = (*a).max(*o);
                        }
                    }
                    q.acked(id, &offs, now)
                }
                4 => q.confirm_grant(id, now),
                5 => {
                    acked_model.remove(&id);
                    if rnd(2) == 0 {
                        q.lost(id, "lost", now)
                    } else {
                        q.forget(id, now)
                    }
                }
                6 if q.admit().is_ok() => {
                    next_write += 1;
                    targets.insert(next_write, q.ends.clone());
                    q.submit(next_write, q.ends.clone(), now)
                }
                _ => q.tick(now),
            };
            for a in acts {
                match a {
                    Action::Commit(w) => {
                        commits += 1;
                        let el = q.eligible();
                        if el.len() < need {
                            return Err(format!(
                                "write {w} committed with {} eligible of {need}",
                                el.len()
                            ));
                        }
                        for r in el {
                            if !holds(&acked_model[&r], &targets[&w]) {
                                return Err(format!(
                                    "write {w} committed, eligible replica {r} lacks it"
                                ));
                            }
                        }
                    }
                    Action::Grant(r) => {
                        grants += 1;
                        if acked_model[&r] != q.ends {
                            return Err(format!("replica {r} granted behind the log"));
                        }
                    }
                    _ => {}
                }
            }
        }
        Ok((grants, commits))
    }

    #[test]
    fn schedules_exercise_grants_and_commits() {
        let (mut g, mut c) = (0, 0);
        for seed in 0..200 {
            let (a, b) = run_schedule(seed, 1 + (seed % 2) as usize, 2).unwrap();
            g += a;
            c += b;
        }
        assert!(g > 50 && c > 50, "grants {g}, commits {c}");
    }

    proptest! {
        #[test]
        fn invariants_hold_on_any_schedule(seed in any::<u64>(), need in 0usize..3, shards in 1usize..3) {
            let r = run_schedule(seed, need, shards);
            prop_assert!(r.is_ok(), "{:?}", r);
        }
    }
}
