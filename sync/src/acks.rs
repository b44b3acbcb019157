//! Acknowledgements: what each replica holds, per primary shard, and the questions asked of it: how many
//! replicas hold a given write (WAIT), and how many are "good" for min-replicas-to-write. Pure functions of
//! the recorded acks and an injected clock.

/// One replica's latest acknowledgement.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ack {
    /// Per primary shard, the journal offset the replica has applied (one past its last byte).
    pub offsets: Vec<u64>,
    /// When it arrived (ms, the caller's clock).
    pub at_ms: u64,
}

impl Ack {
    /// Whether this replica holds everything up to `target` on every shard. A replica that acknowledged
    /// fewer shards than the target names holds nothing of the missing ones.
    pub fn holds(&self, target: &[u64]) -> bool {
        target
            .iter()
            .enumerate()
            .all(|(s, &t)| t == 0 || self.offsets.get(s).is_some_and(|&o| o >= t))
    }

    /// Sum over shards: the single offset Valkey tools read (slaveN offset=..).
    pub fn total(&self) -> u64 {
        self.offsets.iter().sum()
    }
}

/// WAIT's count: replicas whose last ack holds `target`.
pub fn count_holding<'a>(acks: impl IntoIterator<Item = &'a Ack>, target: &[u64]) -> usize {
    acks.into_iter().filter(|a| a.holds(target)).count()
}

/// min-replicas-to-write: replicas that acknowledged within `max_lag_ms` of `now_ms`.
pub fn good_replicas<'a>(
    acks: impl IntoIterator<Item = &'a Ack>,
    now_ms: u64,
    max_lag_ms: u64,
) -> usize {
    acks.into_iter()
        .filter(|a| now_ms.saturating_sub(a.at_ms) <= max_lag_ms)
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ack(o: &[u64], at: u64) -> Ack {
        Ack {
            offsets: o.to_vec(),
            at_ms: at,
        }
    }

    #[test]
    fn wait_counts_replicas_holding_every_shard() {
        let acks = [ack(&[10, 20], 0), ack(&[10, 19], 0), ack(&[9], 0)];
        assert_eq!(count_holding(&acks, &[10, 20]), 1);
        assert_eq!(count_holding(&acks, &[10, 0]), 2, "shard 1 not written");
        assert_eq!(
            count_holding(&acks, &[0, 0]),
            3,
            "nothing written: every replica holds it"
        );
        assert_eq!(
            count_holding(&acks, &[0, 1]),
            2,
            "a missing shard holds nothing"
        );
        assert_eq!(acks[0].total(), 30);
    }

    #[test]
    fn good_replicas_by_lag() {
        let acks = [ack(&[1], 1000), ack(&[1], 5000), ack(&[1], 9000)];
        assert_eq!(good_replicas(&acks, 10_000, 5_000), 2);
        assert_eq!(good_replicas(&acks, 10_000, 0), 0);
        assert_eq!(good_replicas(&acks, 9_000, 0), 1);
    }
}
