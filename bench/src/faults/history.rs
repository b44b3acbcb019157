//! The history of a register workload and its checker. Every key has one writer, which writes unique
//! values in sequence (index 1, 2, ...), so a value names the write that produced it. Operations carry
//! their start and end on one monotonic clock and the *epoch* that served them (a node's time as primary:
//! it changes at every promotion). At each promotion the harness reads every key from the new primary
//! before any client may: the epoch's *start state*.
//!
//! What is counted:
//! - **unexpected**: a read returned a value never written to that key;
//! - **lost**: an acknowledged write that the next epoch's start state does not hold (lost at a
//!   failover), or that the final state does not reflect;
//! - **stale**: a read older than a write acknowledged before the read began and not lost;
//! - **flips**: a read that returned neither its epoch's start state nor a value written through that
//!   epoch: the node's data changed under its clients without a write (the signature of serving before a
//!   promotion completed). A lost asynchronous write explains a stale read after a failover, never a flip.

use std::collections::HashMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The write was acknowledged (in `--wait-all` mode: and WAIT counted every replica).
    Ok,
    /// An error reply that says the write did not happen (READONLY, LOADING, ...).
    Failed,
    /// The outcome is not known (connection lost, WAIT short of every replica).
    Unknown,
}

#[derive(Debug, Clone)]
pub enum Op {
    Write {
        key: usize,
        index: u64,
        outcome: Outcome,
    },
    /// `value`: the index of the write it returned, 0 for no value, None for a value never written.
    Read { key: usize, value: Option<u64> },
}

#[derive(Debug, Clone)]
pub struct Event {
    pub op: Op,
    pub start_us: u64,
    pub end_us: u64,
    pub epoch: u64,
}

#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Verdict {
    pub writes: u64,
    pub acknowledged: u64,
    pub reads: u64,
    pub unexpected: u64,
    pub lost: u64,
    pub stale: u64,
    pub flips: u64,
    /// `--auto`: writes an older epoch acknowledged after a later one had (faults/auto.rs).
    pub two_writers: u64,
    /// A few examples of each problem, for the report.
    pub examples: Vec<String>,
}

impl Verdict {
    /// Every mode: nothing unexpected, no flip, no stale read a loss does not explain. With WAIT for all
    /// replicas: nothing acknowledged lost either.
    pub fn clean(&self, durable: bool) -> bool {
        self.unexpected == 0
            && self.flips == 0
            && self.stale == 0
            && self.two_writers == 0
            && (!durable || self.lost == 0)
    }
}

/// Checks `events` against each epoch's start state (`starts[epoch][key]`, index of the key's value, 0 for
/// none; epoch 1 starts empty) and the final state `final_index[key]`.
pub fn check(events: &[Event], starts: &HashMap<u64, Vec<u64>>, final_index: &[u64]) -> Verdict {
    check_inner(events, Some(starts), final_index, false)
}

/// The same without start states (the servers decided the failovers, so nobody read a new primary
/// before its clients did): losses are judged by the final state and reads by staleness; flips are not
/// counted. `lossy` (asynchronous replication): a read is judged only against writes of its own epoch
/// or later ones.
pub fn check_without_starts(events: &[Event], final_index: &[u64], lossy: bool) -> Verdict {
    check_inner(events, None, final_index, lossy)
}

fn check_inner(
    events: &[Event],
    starts: Option<&HashMap<u64, Vec<u64>>>,
    final_index: &[u64],
    lossy: bool,
) -> Verdict {
    let mut v = Verdict::default();
    let note = |v: &mut Verdict, s: String| {
        if v.examples.len() < 20 {
            v.examples.push(s);
        }
    };
    let start_of =
        |epoch: u64, key: usize| starts.and_then(|s| s.get(&epoch)).map_or(0, |s| s[key]);
    // Per key: acknowledged writes (completion time, index, lost?).
    let mut acked: HashMap<usize, Vec<(u64, u64, bool, u64)>> = HashMap::new();
    // Per (epoch, key): indexes written through that epoch (attempted: any outcome may have applied).
    let mut written_in: HashMap<(u64, usize), Vec<u64>> = HashMap::new();
    for e in events {
        if let Op::Write {
            key,
            index,
            outcome,
        } = e.op
        {
            v.writes += 1;
            if outcome == Outcome::Ok {
                v.acknowledged += 1;
                let final_i = final_index.get(key).copied().unwrap_or(0);
                let next_start = starts.and_then(|s| s.get(&(e.epoch + 1))).map(|s| s[key]);
                let lost = final_i < index || next_start.is_some_and(|s| s < index);
                if lost {
                    v.lost += 1;
                    note(
                        &mut v,
                        format!(
                            "lost: key {key} write {index} acknowledged in epoch {}; next epoch starts at {:?}, final {final_i}",
                            e.epoch, next_start
                        ),
                    );
                }
                acked
                    .entry(key)
                    .or_default()
                    .push((e.end_us, index, lost, e.epoch));
            }
            if outcome != Outcome::Failed {
                written_in.entry((e.epoch, key)).or_default().push(index);
            }
        }
    }
    for a in acked.values_mut() {
        a.sort_unstable();
    }
    let mut reads: Vec<&Event> = events
        .iter()
        .filter(|e| matches!(e.op, Op::Read { .. }))
        .collect();
    reads.sort_by_key(|e| e.start_us);
    for e in reads {
        let Op::Read { key, value } = e.op else {
            continue;
        };
        v.reads += 1;
        let Some(got) = value else {
            v.unexpected += 1;
            note(
                &mut v,
                format!("unexpected: key {key} read a value never written"),
            );
            continue;
        };
        // The newest write acknowledged before this read began and not lost since (asynchronous mode
        // without start states: a write an earlier epoch acknowledged may have been lost at a failover
        // a later write masks, so only writes of the read's epoch or a later one count).
        let (newest, newest_epoch, newest_end) = acked.get(&key).map_or((0, 0, 0), |a| {
            a.iter()
                .take_while(|(end, ..)| *end < e.start_us)
                .filter(|(_, _, lost, epoch)| !lost && (!lossy || *epoch >= e.epoch))
                .map(|&(end, i, _, epoch)| (i, epoch, end))
                .max()
                .unwrap_or((0, 0, 0))
        });
        if got < newest {
            v.stale += 1;
            note(
                &mut v,
                format!(
                    "stale: key {key} read write {got} in epoch {} at {}-{} us after write {newest} was acknowledged in epoch {newest_epoch} at {newest_end} us",
                    e.epoch, e.start_us, e.end_us
                ),
            );
        }
        let through_epoch = written_in
            .get(&(e.epoch, key))
            .is_some_and(|w| w.contains(&got));
        if starts.is_some() && got != start_of(e.epoch, key) && !through_epoch {
            v.flips += 1;
            note(
                &mut v,
                format!(
                    "flip: epoch {} served key {key} as write {got}: not its start state ({}) nor written through it",
                    e.epoch,
                    start_of(e.epoch, key)
                ),
            );
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(key: usize, index: u64, outcome: Outcome, t: (u64, u64), epoch: u64) -> Event {
        Event {
            op: Op::Write {
                key,
                index,
                outcome,
            },
            start_us: t.0,
            end_us: t.1,
            epoch,
        }
    }

    fn r(key: usize, value: Option<u64>, t: (u64, u64), epoch: u64) -> Event {
        Event {
            op: Op::Read { key, value },
            start_us: t.0,
            end_us: t.1,
            epoch,
        }
    }

    #[test]
    fn a_clean_history() {
        let h = vec![
            w(0, 1, Outcome::Ok, (0, 10), 1),
            r(0, Some(1), (20, 30), 1),
            w(0, 2, Outcome::Unknown, (40, 50), 1),
            r(0, Some(2), (60, 70), 1),
            // Failover: epoch 2 starts with write 2.
            r(0, Some(2), (80, 90), 2),
        ];
        let starts = HashMap::from([(2, vec![2])]);
        let v = check(&h, &starts, &[2]);
        assert!(v.clean(true), "{v:?}");
        assert_eq!((v.writes, v.acknowledged, v.reads), (2, 1, 3));
    }

    #[test]
    fn a_write_lost_at_failover_explains_a_stale_read_but_not_a_flip() {
        let h = vec![
            w(0, 1, Outcome::Ok, (0, 10), 1),
            w(0, 2, Outcome::Ok, (20, 30), 1),
            // Epoch 2 started with write 1 only: write 2 was lost, so reading 1 is not stale.
            r(0, Some(1), (40, 50), 2),
            w(0, 3, Outcome::Ok, (55, 58), 2),
            r(0, Some(3), (60, 70), 2),
        ];
        let starts = HashMap::from([(2, vec![1])]);
        let v = check(&h, &starts, &[3]);
        assert_eq!((v.lost, v.stale, v.flips), (1, 0, 0), "{v:?}");
        assert!(v.clean(false) && !v.clean(true));
    }

    #[test]
    fn stale_flips_and_unexpected_values_are_counted() {
        let h = vec![
            w(0, 1, Outcome::Ok, (0, 10), 1),
            w(0, 2, Outcome::Ok, (20, 30), 1),
            // Epoch 2 started holding write 2, yet served 1 (stale and a flip), then 2 again.
            r(0, Some(1), (40, 50), 2),
            r(0, Some(2), (60, 70), 2),
            r(0, None, (80, 90), 2),
        ];
        let starts = HashMap::from([(2, vec![2])]);
        let v = check(&h, &starts, &[2]);
        assert_eq!(
            (v.lost, v.stale, v.flips, v.unexpected),
            (0, 1, 1, 1),
            "{v:?}"
        );
        assert!(!v.clean(false));
    }

    #[test]
    fn a_write_through_the_epoch_is_no_flip() {
        let h = vec![
            r(0, Some(0), (0, 5), 3),
            w(0, 7, Outcome::Unknown, (10, 20), 3),
            r(0, Some(7), (30, 40), 3),
        ];
        let v = check(&h, &HashMap::new(), &[7]);
        assert_eq!(v.flips, 0, "{v:?}");
    }

    /// Without start states, asynchronous: a write an earlier epoch acknowledged may be lost, so a
    /// later epoch reading older is not stale; a node of an older epoch reading older than a write a
    /// newer epoch acknowledged (a zombie serving) is, whatever the mode.
    #[test]
    fn without_starts_an_earlier_epoch_may_lose_a_write_a_zombie_may_not_read_stale() {
        let lost_at_failover = vec![
            w(0, 1, Outcome::Ok, (0, 10), 1),
            w(0, 2, Outcome::Ok, (20, 30), 1),
            r(0, Some(1), (40, 50), 2),
            w(0, 3, Outcome::Ok, (60, 70), 2),
        ];
        assert_eq!(check_without_starts(&lost_at_failover, &[3], true).stale, 0);
        assert_eq!(
            check_without_starts(&lost_at_failover, &[3], false).stale,
            1
        );
        let zombie = vec![
            w(0, 1, Outcome::Ok, (0, 10), 1),
            w(0, 2, Outcome::Ok, (20, 30), 2),
            r(0, Some(1), (40, 50), 1),
        ];
        assert_eq!(check_without_starts(&zombie, &[2], true).stale, 1);
    }
}
