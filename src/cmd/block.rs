//! The blocking pops (BLPOP, BRPOP, BLMOVE, BRPOPLPUSH, BLMPOP, BZPOPMIN, BZPOPMAX, BZMPOP) as key
//! commands: one non-blocking attempt. This is what runs inside MULTI (Valkey's rule: a blocking command
//! in a transaction does not block) and each time a blocked connection is woken (server/blocking.rs,
//! which does the waiting); an attempt that finds nothing replies with a null.

use super::args::float;
use super::coll::read;
use super::exec::Exec;
use super::setops::{lmpop_from, mpop_args, zmpop_from};
use super::{CmdError, CmdResult};
use crate::resp::Reply;
use crate::shard::Shard;
use crate::store::types::{LIST, ZSET};
use bytes::Bytes;

/// A timeout argument in seconds: None blocks forever (0); Valkey's errors otherwise.
pub fn timeout_ms(a: &[u8]) -> Result<Option<u64>, CmdError> {
    // Valkey reads the timeout with strtold, which takes a hexadecimal integer too.
    let hex = std::str::from_utf8(a)
        .ok()
        .and_then(|s| s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")))
        .and_then(|h| u128::from_str_radix(h, 16).ok())
        .map(|v| v as f64);
    let t = match hex {
        Some(v) => v,
        None => {
            float(a).map_err(|_| CmdError::other("ERR timeout is not a float or out of range"))?
        }
    };
    if t < 0.0 {
        return Err(CmdError::other("ERR timeout is negative"));
    }
    let ms = t * 1000.0;
    if !ms.is_finite() || ms > i64::MAX as f64 / 2.0 {
        return Err(CmdError::other("ERR timeout is out of range"));
    }
    Ok((ms >= 1.0 || t > 0.0)
        .then_some(ms.ceil() as u64)
        .filter(|m| *m > 0))
}

fn bpop(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply, left: bool) -> CmdResult {
    timeout_ms(&a[a.len() - 1])?;
    for k in &a[1..a.len() - 1] {
        if read(sh, ex, k, LIST)?.is_some() {
            let v = super::list::pop_n(sh, ex, k, left, 1)?;
            r.array(2);
            r.bulk(k);
            r.bulk(&v[0]);
            return Ok(());
        }
    }
    r.null_array();
    Ok(())
}

pub fn blpop(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    bpop(sh, ex, a, r, true)
}

pub fn brpop(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    bpop(sh, ex, a, r, false)
}

fn bzpop(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply, max: bool) -> CmdResult {
    timeout_ms(&a[a.len() - 1])?;
    for k in &a[1..a.len() - 1] {
        if read(sh, ex, k, ZSET)?.is_some() {
            let v = super::zset::pop_n(sh, ex, k, max, 1)?;
            r.array(3);
            r.bulk(k);
            r.bulk(&v[0].0);
            r.double(v[0].1);
            return Ok(());
        }
    }
    r.null_array();
    Ok(())
}

pub fn bzpopmin(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    bzpop(sh, ex, a, r, false)
}

pub fn bzpopmax(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    bzpop(sh, ex, a, r, true)
}

/// BLMOVE and BRPOPLPUSH: `mv` (LMOVE, RPOPLPUSH) on the arguments before the timeout at `timeout`.
fn bmove(
    sh: &mut Shard,
    ex: &Exec,
    a: &[Bytes],
    r: &mut Reply,
    timeout: usize,
    mv: fn(&mut Shard, &Exec, &[Bytes], &mut Reply) -> CmdResult,
) -> CmdResult {
    timeout_ms(&a[timeout])?;
    // As Valkey: an empty source blocks (or, where it may not block, answers nil) whatever the
    // destination holds; the destination's type matters once there is something to move (a wake-up's
    // WRONGTYPE with a list at the source is the answer: server/blocking.rs).
    if read(sh, ex, &a[1], LIST)?.is_none() {
        r.null();
        return Ok(());
    }
    mv(sh, ex, &a[..timeout], r)
}

pub fn blmove(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    bmove(sh, ex, a, r, 5, super::setops::lmove)
}

pub fn brpoplpush(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    bmove(sh, ex, a, r, 3, super::setops::rpoplpush)
}

pub fn blmpop(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    timeout_ms(&a[1])?;
    let (keys, left, count) = mpop_args(a, 2, ["left", "right"])?;
    if !lmpop_from(sh, ex, keys, left, count, r)? {
        r.null_array();
    }
    Ok(())
}

pub fn bzmpop(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    timeout_ms(&a[1])?;
    let (keys, min, count) = mpop_args(a, 2, ["min", "max"])?;
    if !zmpop_from(sh, ex, keys, min, count, r)? {
        r.null_array();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_follow_valkey() {
        assert_eq!(timeout_ms(b"0").unwrap(), None);
        assert_eq!(timeout_ms(b"0.5").unwrap(), Some(500));
        assert_eq!(timeout_ms(b"2").unwrap(), Some(2000));
        assert_eq!(timeout_ms(b"0.0001").unwrap(), Some(1));
        assert!(timeout_ms(b"-1").is_err());
        assert!(timeout_ms(b"abc").is_err());
        assert!(timeout_ms(b"inf").is_err());
        // strtold's hexadecimal, as Valkey reads it.
        assert_eq!(timeout_ms(b"0x2").unwrap(), Some(2000));
        assert_eq!(
            timeout_ms(b"0x7FFFFFFFFFFFFF").unwrap_err().message(),
            "ERR timeout is out of range"
        );
    }
}
