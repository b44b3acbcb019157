//! Durability mode's commit rule on one shard, as a state machine without I/O: which replicas count, what
//! they acknowledged, how far the shard's log is committed, and the writes (and reads of uncommitted keys)
//! waiting for it. Every primary shard keeps one; the eligible set is the same on every shard because only
//! the primary's shard 0 changes it, granting under a writer pause that covers all shards and revoking by
//! message to every shard (docs/durability.md).
//!
//! Rules (shared/reference/durability-design.md, Kafka's ISR):
//! - a replica is granted only when it has acknowledged exactly the shard's log end (`grant` refuses
//!   otherwise; the caller holds writers paused so the end cannot move between the check and the grant);
//! - the commit point is the least offset every eligible replica acknowledged, and it advances only while
//!   at least `need` replicas are eligible; it never moves back and never passes the log end;
//! - a revoked replica stops counting at once, so the commit point can only grow by revoking, never admit
//!   a write fewer replicas hold than were eligible when it committed;
//! - a waiter is released exactly when the commit point reaches its target; `laggards` names the eligible
//!   replicas that kept a waiter past the timeout, for the caller to revoke.
//!
//! `T` is whatever the caller wakes a waiter with (a channel's sender in the server, a number in tests).

use std::collections::{BTreeMap, BTreeSet, HashMap};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantRefused {
    /// The replica has not acknowledged the log end: (acknowledged, end).
    Behind(u64, u64),
    /// Nothing acknowledged yet on this shard.
    Unknown,
}

#[derive(Debug)]
struct Waiter<T> {
    since_ms: u64,
    wake: T,
}

#[derive(Debug)]
pub struct ShardQuorum<T> {
    need: usize,
    end: u64,
    commit: u64,
    eligible: BTreeSet<u64>,
    acks: HashMap<u64, u64>,
    /// Keyed by (target, arrival), so releasing is a walk from the front.
    waiters: BTreeMap<(u64, u64), Waiter<T>>,
    seq: u64,
    /// With a WAL at `appendfsync always`: the offset this node's own log is on stable storage up to. The
    /// commit point never passes it, replicas or not.
    local: Option<u64>,
}

impl<T> ShardQuorum<T> {
    /// A shard whose log ends (and is committed) at `end`.
    pub fn new(need: usize, end: u64) -> Self {
        ShardQuorum {
            need,
            end,
            commit: end,
            eligible: BTreeSet::new(),
            acks: HashMap::new(),
            waiters: BTreeMap::new(),
            seq: 0,
            local: None,
        }
    }

    pub fn commit(&self) -> u64 {
        self.commit
    }

    pub fn end(&self) -> u64 {
        self.end
    }

    pub fn need(&self) -> usize {
        self.need
    }

    pub fn eligible(&self) -> impl Iterator<Item = u64> + '_ {
        self.eligible.iter().copied()
    }

    pub fn is_eligible(&self, r: u64) -> bool {
        self.eligible.contains(&r)
    }

    pub fn acked(&self, r: u64) -> Option<u64> {
        self.acks.get(&r).copied()
    }

    pub fn waiting(&self) -> usize {
        self.waiters.len()
    }

    /// Writes may be admitted: at least `need` replicas count.
    pub fn enough(&self) -> bool {
        self.eligible.len() >= self.need
    }

    /// This node's own log is durable up to `synced` (None: it has no WAL holding writes): the commit
    /// point is at most that.
    pub fn set_local(&mut self, synced: Option<u64>) -> Vec<T> {
        self.local = synced;
        self.settle()
    }

    /// Drops every waiter (released with nothing: what they wait for will never commit here).
    pub fn drop_waiters(&mut self) {
        self.waiters.clear();
    }

    /// The replication factor changed; a lower one may commit what waited.
    pub fn set_need(&mut self, need: usize) -> Vec<T> {
        self.need = need;
        self.settle()
    }

    /// The shard's log grew to `end` (a unit was sealed).
    pub fn appended(&mut self, end: u64) -> Vec<T> {
        self.end = self.end.max(end);
        self.settle()
    }

    /// Replica `r` acknowledged this shard's log up to `offset` (acks of one connection only grow; an
    /// older one arriving late changes nothing).
    pub fn ack(&mut self, r: u64, offset: u64) -> Vec<T> {
        let a = self.acks.entry(r).or_insert(0);
        *a = (*a).max(offset);
        if self.eligible.contains(&r) {
            self.settle()
        } else {
            Vec::new()
        }
    }

    /// How many bytes of this shard's log `r` has not acknowledged (None: nothing heard from it yet on a
    /// log that is not empty).
    pub fn lag(&self, r: u64) -> Option<u64> {
        match self.acks.get(&r) {
            Some(&a) => Some(self.end.saturating_sub(a)),
            None => (self.end == 0).then_some(0),
        }
    }

    /// Whether `r` holds exactly this shard's log now.
    pub fn caught_up(&self, r: u64) -> Result<(), GrantRefused> {
        match self.lag(r) {
            Some(0) => Ok(()),
            Some(lag) => Err(GrantRefused::Behind(self.end - lag, self.end)),
            None => Err(GrantRefused::Unknown),
        }
    }

    /// Makes `r` count, only if it holds exactly the log (the caller has writers paused on every shard).
    pub fn grant(&mut self, r: u64) -> Result<(), GrantRefused> {
        self.caught_up(r)?;
        let a = self.acks.entry(r).or_insert(0);
        *a = (*a).max(self.end);
        self.eligible.insert(r);
        Ok(())
    }

    /// `r` no longer counts (link lost, full sync, timeout, FORGET, or the mode turned off).
    pub fn revoke(&mut self, r: u64) -> Vec<T> {
        if self.eligible.remove(&r) {
            self.settle()
        } else {
            Vec::new()
        }
    }

    /// `r`'s connection to this shard is gone: its acknowledgements are forgotten. It keeps counting (with
    /// what it acknowledged) until it is revoked, so nothing commits without it meanwhile.
    pub fn disconnected(&mut self, r: u64) {
        if !self.eligible.contains(&r) {
            self.acks.remove(&r);
        }
    }

    /// Durability mode turned off: no replica counts or is needed; what waited is released up to the
    /// local log's durable point (everything, without a WAL holding writes).
    pub fn clear(&mut self) -> Vec<T> {
        self.eligible.clear();
        self.need = 0;
        self.settle()
    }

    /// This shard stops being a primary (or its log restarts at `end`): nothing counts any more, and the
    /// waiters are dropped, not released: what they wait for will never be acknowledged here.
    pub fn abandon(&mut self, end: u64) {
        self.eligible.clear();
        self.acks.clear();
        self.waiters.clear();
        self.end = end;
        self.commit = end;
    }

    /// Waits for the commit point to reach `target`; gives `wake` back if it already has.
    pub fn wait(&mut self, target: u64, now_ms: u64, wake: T) -> Option<T> {
        if target <= self.commit {
            return Some(wake);
        }
        self.seq += 1;
        self.waiters.insert(
            (target, self.seq),
            Waiter {
                since_ms: now_ms,
                wake,
            },
        );
        None
    }

    /// Drops waiters older than `age_ms` that nobody listens to any more (`gone`), so a stuck commit point
    /// holds no memory for clients that left (younger ones still name laggards).
    pub fn prune(&mut self, now_ms: u64, age_ms: u64, gone: impl Fn(&T) -> bool) {
        self.waiters
            .retain(|_, w| now_ms.saturating_sub(w.since_ms) <= age_ms || !gone(&w.wake));
    }

    /// Eligible replicas that have kept a waiter for longer than `timeout_ms`.
    pub fn laggards(&self, now_ms: u64, timeout_ms: u64) -> Vec<u64> {
        let Some(oldest) = self
            .waiters
            .iter()
            .filter(|(_, w)| now_ms.saturating_sub(w.since_ms) > timeout_ms)
            .map(|(&(t, _), _)| t)
            .min()
        else {
            return Vec::new();
        };
        self.eligible
            .iter()
            .filter(|r| self.acks.get(r).is_none_or(|&a| a < oldest))
            .copied()
            .collect()
    }

    fn settle(&mut self) -> Vec<T> {
        // The commit point only grows; `end` can only have grown too.
        if !self.enough() {
            return Vec::new();
        }
        let point = self
            .eligible
            .iter()
            .map(|r| self.acks.get(r).copied().unwrap_or(0))
            .min()
            .unwrap_or(self.end)
            .min(self.end)
            .min(self.local.unwrap_or(u64::MAX));
        if point <= self.commit {
            return Vec::new();
        }
        self.commit = point;
        let mut out = Vec::new();
        while let Some(e) = self.waiters.first_entry() {
            if e.key().0 > point {
                break;
            }
            out.push(e.remove().wake);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn grant_only_when_caught_up_then_commit_follows_the_slowest() {
        let mut q: ShardQuorum<u32> = ShardQuorum::new(1, 100);
        assert!(!q.enough());
        assert_eq!(q.grant(7), Err(GrantRefused::Unknown));
        q.ack(7, 90);
        assert_eq!(q.grant(7), Err(GrantRefused::Behind(90, 100)));
        q.ack(7, 100);
        assert_eq!(q.grant(7), Ok(()));
        q.ack(8, 100);
        q.grant(8).unwrap();
        assert!(q.enough());
        assert_eq!(q.appended(150), Vec::<u32>::new());
        assert_eq!(q.wait(150, 0, 1), None);
        assert_eq!(q.wait(120, 0, 2), None);
        assert_eq!(q.ack(7, 150), Vec::<u32>::new(), "8 has not got it");
        assert_eq!(q.ack(8, 130), vec![2]);
        assert_eq!(q.commit(), 130);
        // Revoking the slow one lets the write commit: it is held by every replica still eligible.
        assert_eq!(q.revoke(8), vec![1]);
        assert_eq!(q.wait(150, 0, 3), Some(3), "already committed");
    }

    #[test]
    fn nothing_commits_below_need_and_laggards_are_named() {
        let mut q: ShardQuorum<u32> = ShardQuorum::new(2, 0);
        q.grant(1).unwrap();
        q.appended(10);
        assert_eq!(q.wait(10, 0, 1), None);
        assert_eq!(q.ack(1, 10), Vec::<u32>::new(), "one of two eligible");
        assert!(q.laggards(500, 1000).is_empty());
        q.ack(2, 0);
        q.grant(2).unwrap_err();
        assert_eq!(q.set_need(1), vec![1]);
        q.appended(20);
        q.wait(20, 100, 2);
        assert_eq!(q.laggards(1200, 1000), vec![1]);
        assert_eq!(q.clear(), vec![2]);
        assert_eq!(q.commit(), 20);
    }

    /// With a WAL holding writes, nothing commits past what is on stable storage here, with or without
    /// replicas; turning durability mode off releases only up to it.
    #[test]
    fn the_local_log_bounds_the_commit_point() {
        let mut q: ShardQuorum<u32> = ShardQuorum::new(0, 0);
        q.set_local(Some(0));
        q.appended(10);
        assert_eq!(q.wait(10, 0, 1), None);
        assert_eq!(q.commit(), 0);
        assert_eq!(q.set_local(Some(10)), vec![1]);
        // Durability mode on too: both must hold it.
        q.set_need(1);
        q.ack(2, 10);
        q.grant(2).unwrap();
        q.appended(20);
        q.wait(20, 0, 2);
        assert!(q.ack(2, 20).is_empty(), "replica has it, the disk not yet");
        assert!(q.set_local(Some(15)).is_empty());
        assert_eq!(q.set_local(Some(20)), vec![2]);
        q.appended(30);
        q.wait(30, 0, 3);
        assert!(q.clear().is_empty(), "mode off: still waits for the disk");
        assert_eq!(q.set_local(Some(30)), vec![3]);
    }

    #[test]
    fn an_ack_ahead_of_the_known_end_is_kept() {
        // The shard learns of its own log end after the replica acknowledged it (the mode was off).
        let mut q: ShardQuorum<u32> = ShardQuorum::new(1, 10);
        q.ack(4, 30);
        q.appended(30);
        assert_eq!(q.grant(4), Ok(()));
        q.appended(40);
        q.wait(40, 0, 1);
        assert_eq!(q.ack(4, 40), vec![1]);
    }

    #[test]
    fn a_disconnected_eligible_replica_holds_the_commit_until_revoked() {
        let mut q: ShardQuorum<u32> = ShardQuorum::new(1, 0);
        q.grant(3).unwrap();
        q.appended(5);
        q.wait(5, 0, 9);
        q.disconnected(3);
        assert_eq!(
            q.ack(3, 5),
            vec![9],
            "a late ack of the old link still counts"
        );
        q.appended(8);
        q.wait(8, 0, 10);
        q.disconnected(3);
        assert_eq!(q.commit(), 5);
        assert_eq!(q.revoke(3), Vec::<u32>::new(), "need 1, none left");
        assert_eq!(q.set_need(0), vec![10]);
    }

    /// A seeded schedule of appends, acks, grants, revokes, need changes and waits on one shard, checked
    /// after every step: a released waiter's target is held by every replica eligible at its release, and
    /// at least `need` were eligible; grants happen only at the log end; the commit point never moves
    /// back nor passes the end. Returns (grants, releases), to show the schedules exercise both.
    fn run_schedule(seed: u64, need: usize) -> Result<(usize, usize), String> {
        let mut x = seed | 1;
        let mut rnd = |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        let mut q: ShardQuorum<u64> = ShardQuorum::new(need, 0);
        let mut held: HashMap<u64, u64> = HashMap::new();
        let mut targets: HashMap<u64, u64> = HashMap::new();
        let (mut grants, mut released, mut next, mut now) = (0, 0, 0u64, 0u64);
        let mut last_commit = 0;
        for _ in 0..300 {
            now += rnd(30);
            let r = rnd(3);
            let out = match rnd(8) {
                0 | 1 => {
                    let e = q.end() + rnd(10);
                    q.appended(e)
                }
                2 | 3 => {
                    let o = held.get(&r).copied().unwrap_or(0) + rnd(8);
                    let o = o.min(q.end());
                    held.insert(r, o);
                    q.ack(r, o)
                }
                4 => {
                    if q.grant(r).is_ok() {
                        grants += 1;
                        if held.get(&r).copied().unwrap_or(0) != q.end() {
                            return Err(format!("{r} granted behind the end"));
                        }
                    }
                    vec![]
                }
                5 => {
                    if rnd(4) == 0 {
                        // The replica still holds what it acknowledged; the shard forgets the link.
                        q.disconnected(r);
                    }
                    q.revoke(r)
                }
                6 if q.enough() => {
                    next += 1;
                    let t = q.end() - rnd(3).min(q.end());
                    targets.insert(next, t);
                    q.wait(t, now, next).into_iter().collect()
                }
                _ => q.set_need(need),
            };
            for w in out {
                released += 1;
                let el: Vec<u64> = q.eligible().collect();
                if el.len() < need {
                    return Err(format!("released with {} eligible of {need}", el.len()));
                }
                for e in el {
                    if held.get(&e).copied().unwrap_or(0) < targets[&w] {
                        return Err(format!("waiter {w} released, {e} lacks it"));
                    }
                }
            }
            if q.commit() < last_commit || q.commit() > q.end() {
                return Err(format!("commit moved to {} from {last_commit}", q.commit()));
            }
            last_commit = q.commit();
        }
        Ok((grants, released))
    }

    #[test]
    fn schedules_exercise_grants_and_releases() {
        let (mut g, mut r) = (0, 0);
        for seed in 0..300 {
            let (a, b) = run_schedule(seed, 1 + (seed % 2) as usize).unwrap();
            g += a;
            r += b;
        }
        assert!(g > 100 && r > 50, "grants {g}, releases {r}");
    }

    proptest! {
        #[test]
        fn invariants_hold_on_any_schedule(seed in any::<u64>(), need in 0usize..3) {
            let r = run_schedule(seed, need);
            prop_assert!(r.is_ok(), "{:?}", r);
        }
    }
}
