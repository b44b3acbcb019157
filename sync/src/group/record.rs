//! The replication group's record: its members, the epoch, the primary of that epoch and the eligible set.
//!
//! The control plane (raft, `node.rs`) replicates a log of `Entry`s; every node applies the same entries in
//! the same order and so holds the same record. An entry is a compare-and-set: it names what its proposer
//! saw (the epoch, or the record's version) and is accepted only if that still holds and its preconditions
//! hold when it is applied, so a stale, duplicated or reordered proposal becomes a refusal, never a
//! surprise. Invariants (property-tested below):
//! - `version` grows by one with every entry that changes the record, and only then; `epoch` never shrinks
//!   and grows only when the primary changes (Found, Takeover), so an epoch has one primary.
//! - An eligible member is a data member (not a witness), not the primary, eligible in its current
//!   incarnation: a restart (a Join with a higher incarnation) ends eligibility, because memory is gone.
//! - Promote only makes an eligible member primary: it holds every write acknowledged in its epoch, since
//!   no write could be acknowledged without it. Eligibility is granted again in every new epoch (every
//!   other replica may hold writes the new primary lacks, and must resync first).

use std::collections::BTreeMap;

/// A member's id in the group and in raft: the first 16 hex digits of its node-id, never 0 (raft's
/// "none").
pub type MemberId = u64;

/// The member id a node-id (40 lowercase hex digits) maps to, or None if it is malformed or maps to 0.
pub fn member_id(node_id: &str) -> Option<MemberId> {
    let head = node_id.get(..16)?;
    if node_id.len() != 40 || !node_id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(head, 16).ok().filter(|&id| id != 0)
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub node_id: String,
    /// The address clients and replicas reach it at (host:port).
    pub addr: String,
    /// A witness votes on the record and holds no data: never eligible, never primary.
    pub witness: bool,
    /// Chosen by the node at every start, larger than any before (it persists the last one).
    pub incarnation: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Record {
    pub version: u64,
    pub epoch: u64,
    pub members: BTreeMap<MemberId, Member>,
    /// The primary of `epoch` and the incarnation it was made primary in. If the member's incarnation has
    /// moved on since, the primary restarted: it does not serve until a Resume (or another is promoted).
    pub primary: Option<(MemberId, u64)>,
    /// Eligible replicas, each with the incarnation it was granted in.
    pub eligible: BTreeMap<MemberId, u64>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    /// A node joins, or announces a new incarnation after a restart (which ends its eligibility).
    Join {
        id: MemberId,
        node_id: String,
        addr: String,
        witness: bool,
        incarnation: u64,
    },
    /// A member leaves the group (not the primary: hand the role over first).
    Leave { id: MemberId, version: u64 },
    /// The first primary of a group that never had one.
    Found { id: MemberId, incarnation: u64 },
    /// The serving primary grants eligibility to a replica in its current incarnation, at the version it
    /// saw: a grant delayed past any other change can never apply, so a primary that sees the version move
    /// on without its grant may stop waiting for that replica.
    Grant {
        by: MemberId,
        version: u64,
        id: MemberId,
        incarnation: u64,
    },
    /// The primary of `epoch` (or an operator through it) revokes a replica's eligibility.
    Revoke {
        by: MemberId,
        epoch: u64,
        id: MemberId,
    },
    /// A node becomes primary of a new epoch, at the version its proposer saw.
    Takeover {
        how: Takeover,
        id: MemberId,
        incarnation: u64,
        version: u64,
    },
}

/// How a Takeover makes a node primary; each has its own precondition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Takeover {
    /// An eligible replica (failover, or a manual FAILOVER): it holds every acknowledged write.
    Promote,
    /// After an outage, the recorded primary in its new incarnation (its own persistence covers every
    /// acknowledged write; the proposer checked that).
    Resume,
    /// The operator's override: any data member, whatever it holds (acknowledged writes may be lost;
    /// documented as such).
    Force,
}

/// Why an entry was refused. Refusals are normal: they are how stale proposals die.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the record is at version {now}, the proposal saw {saw}")]
    Version { saw: u64, now: u64 },
    #[error("the group is in epoch {now}, the proposal was made in {saw}")]
    Epoch { saw: u64, now: u64 },
    #[error("{0:016x} is not a member of the group")]
    NotMember(MemberId),
    #[error("{0:016x} is a witness")]
    Witness(MemberId),
    #[error("{id:016x} is in incarnation {now}, the proposal names {saw}")]
    Incarnation { id: MemberId, saw: u64, now: u64 },
    #[error("{0:016x} is not eligible")]
    NotEligible(MemberId),
    #[error("{0:016x} is not the primary")]
    NotPrimary(MemberId),
    #[error("{0:016x} is the primary")]
    IsPrimary(MemberId),
    #[error("the group already has a primary")]
    Founded,
    #[error("the member id {0:016x} belongs to another node-id")]
    IdTaken(MemberId),
}

impl Record {
    /// Applies an entry: Ok(true) if it changed the record (version bumped), Ok(false) if it was already
    /// in effect (a duplicate), Err if refused (the record is unchanged).
    pub fn apply(&mut self, e: &Entry) -> Result<bool, Refusal> {
        let changed = self.check(e)?;
        if !changed {
            return Ok(false);
        }
        match e {
            Entry::Join {
                id,
                node_id,
                addr,
                witness,
                incarnation,
            } => {
                let m = Member {
                    node_id: node_id.clone(),
                    addr: addr.clone(),
                    witness: *witness,
                    incarnation: *incarnation,
                };
                self.members.insert(*id, m);
                if !self.is_eligible(*id, *incarnation) {
                    self.eligible.remove(id);
                }
            }
            Entry::Leave { id, .. } => {
                self.members.remove(id);
                self.eligible.remove(id);
            }
            Entry::Grant {
                id, incarnation, ..
            } => {
                self.eligible.insert(*id, *incarnation);
            }
            Entry::Revoke { id, .. } => {
                self.eligible.remove(id);
            }
            Entry::Found { id, incarnation }
            | Entry::Takeover {
                id, incarnation, ..
            } => {
                self.epoch += 1;
                self.primary = Some((*id, *incarnation));
                self.eligible.clear();
            }
        }
        self.version += 1;
        Ok(true)
    }

    /// Whether `e` would be accepted, and whether it would change anything.
    pub fn check(&self, e: &Entry) -> Result<bool, Refusal> {
        match e {
            Entry::Join {
                id,
                node_id,
                addr,
                witness,
                incarnation,
            } => match self.members.get(id) {
                Some(m) if &m.node_id != node_id => Err(Refusal::IdTaken(*id)),
                Some(m) if *incarnation < m.incarnation => Err(Refusal::Incarnation {
                    id: *id,
                    saw: *incarnation,
                    now: m.incarnation,
                }),
                // A member's kind is fixed when it first joins.
                Some(m) if m.witness != *witness => Err(Refusal::Witness(*id)),
                Some(m) => Ok(m.incarnation != *incarnation || &m.addr != addr),
                None => Ok(true),
            },
            Entry::Leave { id, version } => {
                self.version_is(*version)?;
                if self.primary.map(|p| p.0) == Some(*id) {
                    return Err(Refusal::IsPrimary(*id));
                }
                Ok(self.members.contains_key(id))
            }
            Entry::Found { id, incarnation } => {
                if self.primary.is_some() {
                    return Err(Refusal::Founded);
                }
                self.data_member(*id, *incarnation)?;
                Ok(true)
            }
            Entry::Grant {
                by,
                version,
                id,
                incarnation,
            } => {
                self.version_is(*version)?;
                self.proposed_by_primary(*by, self.epoch)?;
                if id == by {
                    return Err(Refusal::IsPrimary(*id));
                }
                self.data_member(*id, *incarnation)?;
                Ok(!self.is_eligible(*id, *incarnation))
            }
            Entry::Revoke { by, epoch, id } => {
                self.proposed_by_primary(*by, *epoch)?;
                Ok(self.eligible.contains_key(id))
            }
            Entry::Takeover {
                how,
                id,
                incarnation,
                version,
            } => {
                self.version_is(*version)?;
                self.data_member(*id, *incarnation)?;
                match how {
                    Takeover::Promote if !self.is_eligible(*id, *incarnation) => {
                        Err(Refusal::NotEligible(*id))
                    }
                    Takeover::Resume if self.primary.map(|p| p.0) != Some(*id) => {
                        Err(Refusal::NotPrimary(*id))
                    }
                    _ => Ok(true),
                }
            }
        }
    }

    fn version_is(&self, saw: u64) -> Result<(), Refusal> {
        if saw == self.version {
            Ok(())
        } else {
            Err(Refusal::Version {
                saw,
                now: self.version,
            })
        }
    }

    fn proposed_by_primary(&self, by: MemberId, epoch: u64) -> Result<(), Refusal> {
        if epoch != self.epoch {
            return Err(Refusal::Epoch {
                saw: epoch,
                now: self.epoch,
            });
        }
        if self.serving_primary() == Some(by) {
            Ok(())
        } else {
            Err(Refusal::NotPrimary(by))
        }
    }

    fn data_member(&self, id: MemberId, incarnation: u64) -> Result<(), Refusal> {
        let m = self.members.get(&id).ok_or(Refusal::NotMember(id))?;
        if m.witness {
            return Err(Refusal::Witness(id));
        }
        if m.incarnation != incarnation {
            return Err(Refusal::Incarnation {
                id,
                saw: incarnation,
                now: m.incarnation,
            });
        }
        Ok(())
    }

    /// The member serving as primary right now: the recorded primary, if it is still in the incarnation it
    /// was made primary in (a restarted primary serves only after a Resume).
    pub fn serving_primary(&self) -> Option<MemberId> {
        let (p, inc) = self.primary?;
        (self.members.get(&p)?.incarnation == inc).then_some(p)
    }

    /// Whether `id` in `incarnation` is eligible.
    pub fn is_eligible(&self, id: MemberId, incarnation: u64) -> bool {
        self.eligible.get(&id) == Some(&incarnation)
    }
}

/// What a data node last said about itself to whoever chooses a candidate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    pub incarnation: u64,
    pub epoch: u64,
    /// Applied offsets, one per shard of the primary's log.
    pub offsets: Vec<u64>,
}

/// The candidate a failover promotes: an eligible replica whose latest report is of its eligible
/// incarnation and the current epoch; among them one no other beats on every shard's offset (offsets are
/// compared shard by shard: a sum could prefer a replica lacking writes another holds), the lowest id
/// among those. Every node that sees the same record and reports chooses the same candidate.
pub fn candidate(record: &Record, reports: &BTreeMap<MemberId, Report>) -> Option<MemberId> {
    let fresh: Vec<(MemberId, &Report)> = record
        .eligible
        .iter()
        .filter_map(|(id, inc)| {
            let r = reports.get(id)?;
            (r.incarnation == *inc && r.epoch == record.epoch).then_some((*id, r))
        })
        .collect();
    let beats = |a: &Report, b: &Report| {
        a.offsets.len() == b.offsets.len()
            && a.offsets.iter().zip(&b.offsets).all(|(x, y)| x >= y)
            && a.offsets != b.offsets
    };
    fresh
        .iter()
        .filter(|(_, r)| !fresh.iter().any(|(_, o)| beats(o, r)))
        .map(|(id, _)| *id)
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn join(id: MemberId, inc: u64, witness: bool) -> Entry {
        Entry::Join {
            id,
            node_id: format!("{id:016x}{}", "0".repeat(24)),
            addr: format!("127.0.0.1:{}", 7000 + id),
            witness,
            incarnation: inc,
        }
    }

    fn take(how: Takeover, id: MemberId, incarnation: u64, version: u64) -> Entry {
        Entry::Takeover {
            how,
            id,
            incarnation,
            version,
        }
    }

    fn founded() -> Record {
        let mut r = Record::default();
        for (id, w) in [(1, false), (2, false), (3, false), (4, true)] {
            r.apply(&join(id, 1, w)).unwrap();
        }
        r.apply(&Entry::Found {
            id: 1,
            incarnation: 1,
        })
        .unwrap();
        r
    }

    #[test]
    fn member_ids_come_from_node_ids() {
        let n = "00000000000000ab0123456789abcdef01234567";
        assert_eq!(member_id(n), Some(0xab));
        assert_eq!(member_id(&"0".repeat(40)), None);
        assert_eq!(member_id("abc"), None);
        assert_eq!(member_id(&"g".repeat(40)), None);
    }

    #[test]
    fn a_grant_needs_the_current_primary_and_incarnation() {
        let mut r = founded();
        let g = |by, version, id, incarnation| Entry::Grant {
            by,
            version,
            id,
            incarnation,
        };
        let v = r.version;
        assert_eq!(r.apply(&g(2, v, 3, 1)), Err(Refusal::NotPrimary(2)));
        assert!(matches!(
            r.apply(&g(1, v - 1, 3, 1)),
            Err(Refusal::Version { .. })
        ));
        assert!(matches!(
            r.apply(&g(1, v, 3, 7)),
            Err(Refusal::Incarnation { .. })
        ));
        assert_eq!(r.apply(&g(1, v, 4, 1)), Err(Refusal::Witness(4)));
        assert_eq!(r.apply(&g(1, v, 1, 1)), Err(Refusal::IsPrimary(1)));
        assert_eq!(r.apply(&g(1, v, 3, 1)), Ok(true));
        assert!(
            matches!(r.apply(&g(1, v, 3, 1)), Err(Refusal::Version { .. })),
            "a duplicate is refused"
        );
        assert_eq!(r.version, v + 1);
        assert!(r.is_eligible(3, 1));
    }

    #[test]
    fn a_restart_ends_eligibility_and_a_restarted_primary_does_not_serve() {
        let mut r = founded();
        r.apply(&Entry::Grant {
            by: 1,
            version: r.version,
            id: 2,
            incarnation: 1,
        })
        .unwrap();
        r.apply(&join(2, 2, false)).unwrap();
        assert!(r.eligible.is_empty());
        assert!(matches!(
            r.apply(&join(2, 1, false)),
            Err(Refusal::Incarnation { .. })
        ));
        assert_eq!(r.serving_primary(), Some(1));
        r.apply(&join(1, 2, false)).unwrap();
        assert_eq!(r.serving_primary(), None);
        // Its old incarnation can no longer grant.
        assert_eq!(
            r.apply(&Entry::Grant {
                by: 1,
                version: r.version,
                id: 2,
                incarnation: 2
            }),
            Err(Refusal::NotPrimary(1))
        );
        let v = r.version;
        assert_eq!(
            r.apply(&take(Takeover::Resume, 2, 2, v)),
            Err(Refusal::NotPrimary(2))
        );
        r.apply(&take(Takeover::Resume, 1, 2, v)).unwrap();
        assert_eq!((r.serving_primary(), r.epoch), (Some(1), 2));
    }

    #[test]
    fn promote_only_an_eligible_candidate_at_the_version_it_saw() {
        let mut r = founded();
        let p = |id, version| take(Takeover::Promote, id, 1, version);
        assert_eq!(r.apply(&p(2, r.version)), Err(Refusal::NotEligible(2)));
        r.apply(&Entry::Grant {
            by: 1,
            version: r.version,
            id: 2,
            incarnation: 1,
        })
        .unwrap();
        assert!(matches!(
            r.apply(&p(2, r.version - 1)),
            Err(Refusal::Version { .. })
        ));
        r.apply(&p(2, r.version)).unwrap();
        assert_eq!((r.primary, r.epoch), (Some((2, 1)), 2));
        assert!(
            r.eligible.is_empty(),
            "every replica is granted again by the new primary"
        );
        // The deposed primary's revoke fails its epoch check.
        assert!(matches!(
            r.apply(&Entry::Revoke {
                by: 1,
                epoch: 1,
                id: 3
            }),
            Err(Refusal::Epoch { .. })
        ));
    }

    #[test]
    fn the_candidate_is_compared_shard_by_shard() {
        let mut r = founded();
        for id in [2, 3] {
            r.apply(&Entry::Grant {
                by: 1,
                version: r.version,
                id,
                incarnation: 1,
            })
            .unwrap();
        }
        let rep = |offsets: Vec<u64>| Report {
            incarnation: 1,
            epoch: 1,
            offsets,
        };
        let mut reps = BTreeMap::new();
        reps.insert(2, rep(vec![10, 5]));
        reps.insert(3, rep(vec![10, 6]));
        assert_eq!(
            candidate(&r, &reps),
            Some(3),
            "3 holds everything 2 does, and more"
        );
        reps.insert(2, rep(vec![11, 5]));
        assert_eq!(
            candidate(&r, &reps),
            Some(2),
            "neither dominates: lowest id"
        );
        reps.insert(2, rep(vec![100, 100]));
        reps.get_mut(&2).unwrap().incarnation = 2;
        assert_eq!(
            candidate(&r, &reps),
            Some(3),
            "a report of another incarnation does not count"
        );
        reps.remove(&3);
        reps.get_mut(&2).unwrap().incarnation = 1;
        reps.get_mut(&2).unwrap().epoch = 0;
        assert_eq!(candidate(&r, &reps), None, "nor one of another epoch");
    }

    fn any_entry() -> impl Strategy<Value = Entry> {
        let id = 1u64..6;
        let inc = 1u64..4;
        let small = 0u64..8;
        prop_oneof![
            (id.clone(), inc.clone(), any::<bool>()).prop_map(|(i, n, w)| join(i, n, w && i == 5)),
            (id.clone(), small.clone()).prop_map(|(id, version)| Entry::Leave { id, version }),
            (id.clone(), inc.clone())
                .prop_map(|(id, incarnation)| Entry::Found { id, incarnation }),
            (id.clone(), small.clone(), id.clone(), inc.clone()).prop_map(
                |(by, version, id, incarnation)| {
                    Entry::Grant {
                        by,
                        version,
                        id,
                        incarnation,
                    }
                }
            ),
            (id.clone(), small.clone(), id.clone()).prop_map(|(by, epoch, id)| Entry::Revoke {
                by,
                epoch,
                id
            }),
            (0u8..3, id, inc, small).prop_map(|(how, id, incarnation, version)| {
                let how = [Takeover::Promote, Takeover::Resume, Takeover::Force][how as usize];
                take(how, id, incarnation, version)
            }),
        ]
    }

    /// Entries proposed with the record's real version and epoch often enough to be accepted.
    fn aimed(r: &Record, e: Entry) -> Entry {
        match e {
            Entry::Leave { id, version } if version % 2 == 0 => Entry::Leave {
                id,
                version: r.version,
            },
            Entry::Grant {
                version,
                id,
                incarnation,
                ..
            } if version % 2 == 0 => Entry::Grant {
                by: r.primary.map_or(1, |p| p.0),
                version: r.version,
                id,
                incarnation: r.members.get(&id).map_or(incarnation, |m| m.incarnation),
            },
            Entry::Takeover {
                how: Takeover::Promote,
                id,
                version,
                ..
            } if version % 2 == 0 => take(
                Takeover::Promote,
                id,
                r.members.get(&id).map_or(1, |m| m.incarnation),
                r.version,
            ),
            e => e,
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        /// Over any sequence of entries: versions count changes, epochs only grow and one primary per epoch,
        /// promotions only of eligible members, eligible members are current-incarnation data replicas, a
        /// refused entry changes nothing and a repeated one is a no-op.
        #[test]
        fn the_record_keeps_its_invariants(raw in proptest::collection::vec(any_entry(), 1..60)) {
            let mut r = Record::default();
            let mut primaries: BTreeMap<u64, (MemberId, u64)> = BTreeMap::new();
            for e in raw {
                let e = aimed(&r, e);
                let before = r.clone();
                match r.apply(&e) {
                    Err(_) => prop_assert_eq!(&r, &before),
                    Ok(false) => prop_assert_eq!(&r, &before),
                    Ok(true) => {
                        prop_assert_eq!(r.version, before.version + 1);
                        prop_assert!(r.epoch >= before.epoch);
                        if r.epoch != before.epoch {
                            prop_assert_eq!(r.epoch, before.epoch + 1);
                            prop_assert!(r.primary.is_some());
                        } else {
                            prop_assert_eq!(r.primary, before.primary);
                        }
                        if let Entry::Takeover { how: Takeover::Promote, id, incarnation, .. } = &e {
                            prop_assert!(before.is_eligible(*id, *incarnation));
                        }
                        let mut again = r.clone();
                        prop_assert!(matches!(again.apply(&e), Ok(false) | Err(_)));
                        prop_assert_eq!(&again, &r, "a repeated entry changes nothing");
                    }
                }
                if let Some(p) = r.primary {
                    let seen = *primaries.entry(r.epoch).or_insert(p);
                    prop_assert_eq!(seen, p, "one primary per epoch");
                }
                for (id, inc) in &r.eligible {
                    let m = r.members.get(id);
                    prop_assert!(m.is_some_and(|m| !m.witness && m.incarnation == *inc));
                    prop_assert!(r.primary.map(|p| p.0) != Some(*id));
                }
            }
        }
    }
}
