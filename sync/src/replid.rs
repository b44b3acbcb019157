//! Replication ids and the partial-resync decision, as Valkey defines them: a 40-hex-character id, the
//! previous id (replid2) kept after a promotion together with the offset up to which it is valid, and the
//! rule for serving `PSYNC <replid> <offset>` from the backlog.

use std::fmt;

/// A 40-character lowercase hex replication id.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReplId([u8; 40]);

impl ReplId {
    /// An id from 20 random bytes (randomness is injected, so tests are deterministic).
    pub fn from_random(bytes: [u8; 20]) -> Self {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = [0u8; 40];
        for (i, b) in bytes.iter().enumerate() {
            out[2 * i] = HEX[(b >> 4) as usize];
            out[2 * i + 1] = HEX[(b & 15) as usize];
        }
        ReplId(out)
    }

    /// The all-zero id Valkey shows as master_replid2 when there is none.
    pub fn zero() -> Self {
        ReplId([b'0'; 40])
    }

    pub fn parse(s: &[u8]) -> Option<Self> {
        if s.len() != 40
            || !s
                .iter()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c))
        {
            return None;
        }
        let mut out = [0u8; 40];
        out.copy_from_slice(s);
        Some(ReplId(out))
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("hex is ASCII")
    }
}

impl fmt::Debug for ReplId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ReplId({})", self.as_str())
    }
}

impl fmt::Display for ReplId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A node's replication identity: its current id and, after a promotion, the previous one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub replid: ReplId,
    pub replid2: ReplId,
    /// Offsets up to this one (exclusive of later history) are valid under `replid2`; -1 if none.
    pub second_offset: i64,
}

/// What a primary answers to a PSYNC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PsyncDecision {
    /// Continue from the requested offset (`+CONTINUE <replid>`).
    Continue,
    /// Full sync (`+FULLRESYNC <replid> <offset>`), with the reason for the log and INFO.
    Full(FullReason),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FullReason {
    /// `PSYNC ? -1`: the replica asked for it.
    Requested,
    /// The id is neither our current one nor the previous one within its validity.
    UnknownReplId,
    /// The offset is not (or no longer) in the backlog.
    OffsetOutOfBacklog,
}

impl Identity {
    pub fn new(replid: ReplId) -> Self {
        Identity {
            replid,
            replid2: ReplId::zero(),
            second_offset: -1,
        }
    }

    /// `REPLICAOF NO ONE`: keep the history reachable under the old id up to `offset + 1`, take a new id.
    pub fn promote(&mut self, new_id: ReplId, offset: u64) {
        self.replid2 = self.replid;
        self.second_offset = offset as i64 + 1;
        self.replid = new_id;
    }

    /// The id to offer for continuing a history that ends at `end`: the previous one when nothing was
    /// written under the current one since the promotion (`end` is exactly where the previous one ends),
    /// else the current one.
    pub fn offered(&self, end: u64) -> ReplId {
        if self.second_offset == end as i64 + 1 {
            self.replid2
        } else {
            self.replid
        }
    }

    /// Valkey's rule (`primaryTryPartialResynchronization`): the id must be ours, or our previous one with
    /// the offset not past where that history ends; then the offset must be within `[first, end]` of
    /// the backlog.
    pub fn decide(
        &self,
        replid: Option<ReplId>,
        offset: i64,
        backlog_first: u64,
        backlog_end: u64,
    ) -> PsyncDecision {
        let Some(id) = replid else {
            return PsyncDecision::Full(FullReason::Requested);
        };
        let known = id == self.replid
            || (id == self.replid2 && self.second_offset >= 0 && offset <= self.second_offset);
        if !known {
            return PsyncDecision::Full(FullReason::UnknownReplId);
        }
        if offset < 0 || (offset as u64) < backlog_first || offset as u64 > backlog_end {
            return PsyncDecision::Full(FullReason::OffsetOutOfBacklog);
        }
        PsyncDecision::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> ReplId {
        ReplId::from_random([n; 20])
    }

    #[test]
    fn ids_are_forty_hex_chars() {
        let a = ReplId::from_random([0xab; 20]);
        assert_eq!(a.as_str(), "ab".repeat(20));
        assert_eq!(ReplId::parse(a.as_str().as_bytes()), Some(a));
        assert_eq!(ReplId::parse(b"xyz"), None);
        assert_eq!(ReplId::parse(&[b'G'; 40]), None);
        assert_eq!(ReplId::zero().as_str(), "0".repeat(40));
    }

    #[test]
    fn a_history_is_offered_under_the_id_it_was_written_under() {
        let mut me = Identity::new(id(1));
        assert_eq!(me.offered(0), id(1));
        me.promote(id(2), 100);
        assert_eq!(
            me.offered(100),
            id(1),
            "nothing written since the promotion"
        );
        assert_eq!(me.offered(120), id(2), "written under the new id");
    }

    #[test]
    fn psync_rules() {
        let mut me = Identity::new(id(1));
        assert_eq!(
            me.decide(None, -1, 0, 100),
            PsyncDecision::Full(FullReason::Requested)
        );
        assert_eq!(me.decide(Some(id(1)), 50, 10, 100), PsyncDecision::Continue);
        assert_eq!(
            me.decide(Some(id(1)), 100, 10, 100),
            PsyncDecision::Continue,
            "nothing missed yet"
        );
        assert_eq!(
            me.decide(Some(id(1)), 5, 10, 100),
            PsyncDecision::Full(FullReason::OffsetOutOfBacklog)
        );
        assert_eq!(
            me.decide(Some(id(1)), 101, 10, 100),
            PsyncDecision::Full(FullReason::OffsetOutOfBacklog)
        );
        assert_eq!(
            me.decide(Some(id(9)), 50, 10, 100),
            PsyncDecision::Full(FullReason::UnknownReplId)
        );
        // Promotion at offset 100: the old primary's other replicas continue through replid2.
        me.promote(id(2), 100);
        assert_eq!(
            (me.replid, me.replid2, me.second_offset),
            (id(2), id(1), 101)
        );
        assert_eq!(
            me.decide(Some(id(1)), 101, 10, 150),
            PsyncDecision::Continue
        );
        assert_eq!(
            me.decide(Some(id(1)), 102, 10, 150),
            PsyncDecision::Full(FullReason::UnknownReplId),
            "history diverged after the promotion"
        );
        assert_eq!(
            me.decide(Some(id(2)), 120, 10, 150),
            PsyncDecision::Continue
        );
    }
}
