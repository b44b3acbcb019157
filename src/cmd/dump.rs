//! DUMP and RESTORE. A payload is Tandem's own serialization, framed as Valkey frames its: the value's type
//! and byte form (store::types), a 2-byte version, and a CRC-64 (Redis' polynomial) of everything before
//! it. Valkey refuses Tandem's payloads (their version is above any RDB version) and Tandem refuses
//! Valkey's, both with Valkey's message. RESTORE with ABSTTL is also how the shard log carries the whole
//! state of a collection (shard/log.rs).

use super::args::{eq, int};
use super::exec::Exec;
use super::{CmdError, CmdResult};
use crate::resp::Reply;
use crate::shard::Shard;
use crate::store::Entry;
use bytes::Bytes;

/// 'T', 'D' little-endian: above every RDB version, so Valkey's RESTORE refuses it cleanly.
const VERSION: u16 = 0x4454;
const CRC64: crc::Crc<u64> = crc::Crc::<u64>::new(&crc::CRC_64_REDIS);

/// The DUMP payload of an entry's value.
pub fn payload(e: &Entry) -> Vec<u8> {
    let (kind, bytes) = e.image();
    let mut out = Vec::with_capacity(bytes.len() + 11);
    out.push(kind);
    out.extend_from_slice(&bytes);
    out.extend_from_slice(&VERSION.to_le_bytes());
    let crc = CRC64.checksum(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// The (type, bytes) a payload carries, if its version and checksum are right.
fn open(p: &[u8]) -> Option<(u8, &[u8])> {
    if p.len() < 11 {
        return None;
    }
    let (body, crc) = p.split_at(p.len() - 8);
    if CRC64.checksum(body).to_le_bytes() != crc {
        return None;
    }
    let (data, ver) = body.split_at(body.len() - 2);
    (ver == VERSION.to_le_bytes()).then(|| (data[0], &data[1..]))
}

pub fn dump(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    match sh.ks.get(ex.db, &a[1], ex.now) {
        Some(e) => r.bulk(&payload(e)),
        None => r.null(),
    }
    Ok(())
}

/// RESTORE key ttl serialized-value [REPLACE] [ABSTTL] [IDLETIME seconds] [FREQ frequency]
pub fn restore(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    let (mut replace, mut absttl, mut lru_given, mut lfu_given) = (false, false, false, false);
    let mut i = 4;
    while i < a.len() {
        if eq(&a[i], "replace") {
            replace = true;
        } else if eq(&a[i], "absttl") {
            absttl = true;
        } else if eq(&a[i], "idletime") && i + 1 < a.len() && !lfu_given {
            if int(&a[i + 1])? < 0 {
                return Err(CmdError::other("ERR Invalid IDLETIME value, must be >= 0"));
            }
            lru_given = true;
            i += 1;
        } else if eq(&a[i], "freq") && i + 1 < a.len() && !lru_given {
            let f = int(&a[i + 1])?;
            if !(0..=255).contains(&f) {
                return Err(CmdError::other(
                    "ERR Invalid FREQ value, must be >= 0 and <= 255",
                ));
            }
            lfu_given = true;
            i += 1;
        } else {
            return Err(CmdError::Syntax);
        }
        i += 1;
    }
    let ttl = int(&a[2])?;
    if ttl < 0 {
        return Err(CmdError::other("ERR Invalid TTL value, must be >= 0"));
    }
    if !replace && sh.ks.get(ex.db, &a[1], ex.now).is_some() {
        return Err(CmdError::other("BUSYKEY Target key name already exists."));
    }
    let (kind, bytes) = open(&a[3]).ok_or(CmdError::other(
        "ERR DUMP payload version or checksum are wrong",
    ))?;
    let expire_at = match (ttl, absttl) {
        (0, _) => None,
        (t, true) => Some(t as u64),
        (t, false) => Some(ex.now.saturating_add(t as u64)),
    };
    let e = Entry::from_image(&a[1], kind, bytes, expire_at, &sh.ks.limits)
        .ok_or(CmdError::other("ERR Bad data format"))?;
    sh.ks.remove(ex.db, &a[1], ex.now);
    // An absolute expiry already past: the key is replaced by nothing, as in Valkey.
    if expire_at.is_none_or(|t| t > ex.now) {
        sh.ks.insert_entry(ex.db, e);
    }
    r.ok();
    Ok(())
}
