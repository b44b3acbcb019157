//! The bytes of a message between a group's members (docs/failover.md "Wire format"), carried as the
//! argument of the internal command `TGROUP` on the receiver's client port.
//!
//! ```text
//!  0  magic    2  b"TW"
//!  2  version  1  1
//!  3  kind     1  1 Raft, 2 Report, 3 Join, 4 Welcome
//!  4  from     8  the sender's member id, u64 little-endian
//! 12  addr        the sender's client address "host:port" (u32 length + UTF-8, at most 1024)
//!  n  body        Raft: u32 length + raft-rs's protobuf encoding of its Message (at most 8 MiB)
//!                 Report: incarnation u64, epoch u64, u32 count + that many u64 shard offsets (≤ 16384)
//!                 Join: node-id string, witness bool, incarnation u64
//!                 Welcome: u32 count + that many u64 member ids (the group's founding voters, ≤ 64)
//!  m  crc32c   4  CRC-32C of bytes 0..m
//! ```
//!
//! Why the sender's address travels in every message: a member answers whoever wrote to it (a joining
//! node is not in the record yet, and a restarted one may have moved). Raft's own bytes are protobuf
//! (raft-rs's codec); docs/dependencies.md says why only authenticated members may send them.

use protobuf::Message as _;
use raft::prelude::Message;

use super::codec::{seal, unseal, CodecError, Reader};
use super::record::{MemberId, Report};

pub const MAGIC: [u8; 2] = *b"TW";
pub const VERSION: u8 = 1;
const MAX_RAFT: usize = 8 << 20;
const MAX_SHARDS: usize = 16384;
const MAX_GENESIS: usize = 64;

#[derive(Clone, Debug, PartialEq)]
pub enum Body {
    Raft(Box<Message>),
    Report(Report),
    /// A node asks to join the group (sent to the address it was given: its `replicaof`).
    Join {
        node_id: String,
        witness: bool,
        incarnation: u64,
    },
    /// The answer to Join: the voters the group was founded with, which every member's raft storage
    /// starts from (the membership changes since are in the log).
    Welcome {
        genesis: Vec<MemberId>,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub struct Wire {
    pub from: MemberId,
    pub addr: String,
    pub body: Body,
}

fn string(w: &mut Vec<u8>, s: &str) {
    w.extend_from_slice(&(s.len() as u32).to_le_bytes());
    w.extend_from_slice(s.as_bytes());
}

fn u64s(w: &mut Vec<u8>, v: &[u64]) {
    w.extend_from_slice(&(v.len() as u32).to_le_bytes());
    for x in v {
        w.extend_from_slice(&x.to_le_bytes());
    }
}

pub fn encode(m: &Wire) -> Vec<u8> {
    let mut w = Vec::with_capacity(64);
    w.extend_from_slice(&MAGIC);
    w.push(VERSION);
    w.push(match m.body {
        Body::Raft(_) => 1,
        Body::Report(_) => 2,
        Body::Join { .. } => 3,
        Body::Welcome { .. } => 4,
    });
    w.extend_from_slice(&m.from.to_le_bytes());
    string(&mut w, &m.addr);
    match &m.body {
        Body::Raft(msg) => {
            // Encoding a well-formed message into a Vec cannot fail.
            let b = msg.write_to_bytes().unwrap_or_default();
            w.extend_from_slice(&(b.len() as u32).to_le_bytes());
            w.extend_from_slice(&b);
        }
        Body::Report(r) => {
            w.extend_from_slice(&r.incarnation.to_le_bytes());
            w.extend_from_slice(&r.epoch.to_le_bytes());
            u64s(&mut w, &r.offsets);
        }
        Body::Join {
            node_id,
            witness,
            incarnation,
        } => {
            string(&mut w, node_id);
            w.push(*witness as u8);
            w.extend_from_slice(&incarnation.to_le_bytes());
        }
        Body::Welcome { genesis } => u64s(&mut w, genesis),
    }
    seal(&mut w);
    w
}

pub fn decode(b: &[u8]) -> Result<Wire, CodecError> {
    let body = unseal(b, &MAGIC, VERSION)?;
    let mut r = Reader { b: &body[1..] };
    let from = r.u64()?;
    let addr = r.string()?;
    let body = match body[0] {
        1 => {
            let m = Message::parse_from_bytes(r.bytes(MAX_RAFT)?).map_err(|_| CodecError::Field)?;
            Body::Raft(Box::new(m))
        }
        2 => Body::Report(Report {
            incarnation: r.u64()?,
            epoch: r.u64()?,
            offsets: r.u64s(MAX_SHARDS)?,
        }),
        3 => Body::Join {
            node_id: r.string()?,
            witness: r.bool()?,
            incarnation: r.u64()?,
        },
        4 => Body::Welcome {
            genesis: r.u64s(MAX_GENESIS)?,
        },
        k => return Err(CodecError::Kind(k)),
    };
    if !r.b.is_empty() {
        return Err(CodecError::Trailing(r.b.len()));
    }
    Ok(Wire { from, addr, body })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::codec::{assert_every_bit_flip_refused, bitwise_crc32c};
    use proptest::prelude::*;
    use raft::prelude::MessageType;

    fn report() -> Wire {
        Wire {
            from: 0x0102_0304_0506_0708,
            addr: "h:1".into(),
            body: Body::Report(Report {
                incarnation: 2,
                epoch: 3,
                offsets: vec![4],
            }),
        }
    }

    /// The bytes of a Report, spelled out field by field; the CRC comes from an independent bitwise
    /// CRC-32C (Castagnoli, reflected, polynomial 0x82F63B78) run over bytes 0..45.
    #[test]
    fn golden_report() {
        let mut want = Vec::new();
        want.extend_from_slice(b"TW\x01\x02");
        want.extend_from_slice(&[8, 7, 6, 5, 4, 3, 2, 1]);
        want.extend_from_slice(&[3, 0, 0, 0]);
        want.extend_from_slice(b"h:1");
        want.extend_from_slice(&[2, 0, 0, 0, 0, 0, 0, 0]);
        want.extend_from_slice(&[3, 0, 0, 0, 0, 0, 0, 0]);
        want.extend_from_slice(&[1, 0, 0, 0]);
        want.extend_from_slice(&[4, 0, 0, 0, 0, 0, 0, 0]);
        let crc = bitwise_crc32c(&want);
        want.extend_from_slice(&crc.to_le_bytes());
        assert_eq!(encode(&report()), want);
        assert_eq!(decode(&want), Ok(report()));
    }

    #[test]
    fn raft_messages_round_trip() {
        let mut m = Message::default();
        m.set_msg_type(MessageType::MsgHeartbeat);
        m.to = 7;
        m.from = 9;
        m.term = 42;
        m.commit = 5;
        let w = Wire {
            from: 9,
            addr: "10.0.0.1:6379".into(),
            body: Body::Raft(Box::new(m)),
        };
        assert_eq!(decode(&encode(&w)), Ok(w));
    }

    #[test]
    fn every_bit_flip_is_refused() {
        assert_every_bit_flip_refused(&encode(&report()), decode);
    }

    proptest! {
        #[test]
        fn join_and_welcome_round_trip(
            from in any::<u64>(), inc in any::<u64>(), witness in any::<bool>(),
            node in "[0-9a-f]{0,40}", genesis in proptest::collection::vec(any::<u64>(), 0..8),
        ) {
            for body in [
                Body::Join { node_id: node.clone(), witness, incarnation: inc },
                Body::Welcome { genesis: genesis.clone() },
            ] {
                let w = Wire { from, addr: "a:1".into(), body };
                prop_assert_eq!(decode(&encode(&w)), Ok(w));
            }
        }

        #[test]
        fn garbage_never_panics(b in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode(&b);
            // Garbage with a valid seal reaches the field parsers.
            let mut v = b"TW\x01".to_vec();
            v.extend_from_slice(&b);
            seal(&mut v);
            let _ = decode(&v);
        }
    }
}
