//! What a member keeps of the control plane across restarts (docs/failover.md "Saved state"): its
//! incarnation, the group's founding voters, raft's hard state and log. The record is not kept: it is
//! rebuilt by applying the log again, as are the membership changes since the founding voters.
//!
//! ```text
//!  0  magic        2  b"TS"
//!  2  version      1  1
//!  3  incarnation  8  u64 little-endian (the one this process runs in)
//! 11  genesis         u32 count + that many u64 member ids (≤ 64)
//!  n  term, vote, commit: u64 each
//!     entries         u32 count, then each: type u8 (0 normal, 1 conf change, 2 conf change v2),
//!                     index u64, term u64, data (u32 length + bytes, ≤ 8 MiB)
//!  m  crc32c       4  CRC-32C of bytes 0..m
//! ```
//!
//! The file is replaced whole (write, fsync, rename), so it is either the old state or the new one.

use raft::prelude::{ConfState, Entry as RaftEntry, EntryType, HardState};
use raft::storage::MemStorage;

use super::codec::{seal, unseal, CodecError, Reader};
use super::record::MemberId;

pub const MAGIC: [u8; 2] = *b"TS";
pub const VERSION: u8 = 1;
const MAX_DATA: usize = 8 << 20;
const MAX_GENESIS: usize = 64;
const MAX_ENTRIES: usize = 1 << 24;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Saved {
    pub incarnation: u64,
    pub genesis: Vec<MemberId>,
    pub term: u64,
    pub vote: u64,
    pub commit: u64,
    pub entries: Vec<RaftEntry>,
}

impl Saved {
    /// Raft storage holding this state: the founding voters, then the log and hard state.
    pub fn storage(&self) -> raft::Result<MemStorage> {
        let s = MemStorage::new_with_conf_state(ConfState::from((self.genesis.clone(), vec![])));
        {
            let mut w = s.wl();
            w.append(&self.entries)?;
            w.set_hardstate(HardState {
                term: self.term,
                vote: self.vote,
                commit: self.commit,
                ..Default::default()
            });
        }
        Ok(s)
    }
}

pub fn encode(s: &Saved) -> Vec<u8> {
    let mut w = Vec::with_capacity(64 + s.entries.len() * 48);
    w.extend_from_slice(&MAGIC);
    w.push(VERSION);
    w.extend_from_slice(&s.incarnation.to_le_bytes());
    w.extend_from_slice(&(s.genesis.len() as u32).to_le_bytes());
    for g in &s.genesis {
        w.extend_from_slice(&g.to_le_bytes());
    }
    for v in [s.term, s.vote, s.commit] {
        w.extend_from_slice(&v.to_le_bytes());
    }
    w.extend_from_slice(&(s.entries.len() as u32).to_le_bytes());
    for e in &s.entries {
        w.push(match e.get_entry_type() {
            EntryType::EntryNormal => 0,
            EntryType::EntryConfChange => 1,
            EntryType::EntryConfChangeV2 => 2,
        });
        w.extend_from_slice(&e.index.to_le_bytes());
        w.extend_from_slice(&e.term.to_le_bytes());
        w.extend_from_slice(&(e.data.len() as u32).to_le_bytes());
        w.extend_from_slice(&e.data);
    }
    seal(&mut w);
    w
}

pub fn decode(b: &[u8]) -> Result<Saved, CodecError> {
    // The body after the version starts with the incarnation (no kind byte in this format).
    let body = unseal(b, &MAGIC, VERSION)?;
    let mut r = Reader { b: body };
    let incarnation = r.u64()?;
    let genesis = r.u64s(MAX_GENESIS)?;
    let (term, vote, commit) = (r.u64()?, r.u64()?, r.u64()?);
    let n = r.u32()? as usize;
    if n > MAX_ENTRIES {
        return Err(CodecError::Field);
    }
    let mut entries = Vec::with_capacity(n.min(4096));
    let mut last = None;
    for _ in 0..n {
        let mut e = RaftEntry::default();
        e.set_entry_type(match r.take(1)?[0] {
            0 => EntryType::EntryNormal,
            1 => EntryType::EntryConfChange,
            2 => EntryType::EntryConfChangeV2,
            _ => return Err(CodecError::Field),
        });
        e.index = r.u64()?;
        e.term = r.u64()?;
        e.data = r.bytes(MAX_DATA)?.to_vec().into();
        // Raft's log is contiguous from index 1 (nothing is compacted yet).
        if e.index != last.map_or(1, |l: u64| l + 1) {
            return Err(CodecError::Field);
        }
        last = Some(e.index);
        entries.push(e);
    }
    if !r.b.is_empty() {
        return Err(CodecError::Trailing(r.b.len()));
    }
    Ok(Saved {
        incarnation,
        genesis,
        term,
        vote,
        commit,
        entries,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::codec::{assert_every_bit_flip_refused, bitwise_crc32c};
    use proptest::prelude::*;

    fn entry(index: u64, term: u64, data: &[u8]) -> RaftEntry {
        RaftEntry {
            index,
            term,
            data: data.to_vec().into(),
            ..Default::default()
        }
    }

    fn sample() -> Saved {
        Saved {
            incarnation: 3,
            genesis: vec![9],
            term: 2,
            vote: 9,
            commit: 1,
            entries: vec![entry(1, 2, b"x")],
        }
    }

    /// Spelled out byte by byte; the CRC from an independent bitwise CRC-32C.
    #[test]
    fn golden_saved() {
        let mut want = b"TS\x01".to_vec();
        want.extend_from_slice(&3u64.to_le_bytes());
        want.extend_from_slice(&[1, 0, 0, 0]);
        want.extend_from_slice(&9u64.to_le_bytes());
        for v in [2u64, 9, 1] {
            want.extend_from_slice(&v.to_le_bytes());
        }
        want.extend_from_slice(&[1, 0, 0, 0, 0]);
        want.extend_from_slice(&1u64.to_le_bytes());
        want.extend_from_slice(&2u64.to_le_bytes());
        want.extend_from_slice(&[1, 0, 0, 0, b'x']);
        let crc = bitwise_crc32c(&want);
        want.extend_from_slice(&crc.to_le_bytes());
        assert_eq!(encode(&sample()), want);
        assert_eq!(decode(&want), Ok(sample()));
    }

    #[test]
    fn storage_holds_the_log_and_hard_state() {
        use raft::Storage;
        let st = sample().storage().unwrap();
        let init = st.initial_state().unwrap();
        assert_eq!(init.conf_state.voters, vec![9]);
        assert_eq!((init.hard_state.term, init.hard_state.commit), (2, 1));
        assert_eq!(st.last_index().unwrap(), 1);
    }

    #[test]
    fn a_gap_in_the_log_is_refused() {
        let mut s = sample();
        s.entries.push(entry(3, 2, b"y"));
        assert_eq!(decode(&encode(&s)), Err(CodecError::Field));
    }

    #[test]
    fn every_bit_flip_is_refused() {
        assert_every_bit_flip_refused(&encode(&sample()), decode);
    }

    proptest! {
        #[test]
        fn round_trip(inc in any::<u64>(), term in any::<u64>(), n in 0u64..20,
                      data in proptest::collection::vec(any::<u8>(), 0..40)) {
            let s = Saved {
                incarnation: inc, genesis: vec![1, 2], term, vote: 1, commit: n,
                entries: (1..=n).map(|i| entry(i, term, &data)).collect(),
            };
            prop_assert_eq!(decode(&encode(&s)), Ok(s));
        }

        #[test]
        fn garbage_never_panics(b in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode(&b);
            let mut v = b"TS\x01".to_vec();
            v.extend_from_slice(&b);
            seal(&mut v);
            let _ = decode(&v);
        }
    }
}
