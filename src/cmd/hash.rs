//! Hash commands (Valkey's replies and errors).

use super::args::{eq, float, int};
use super::coll::{random_choice, read, remove_items, scan_args, scan_reply, write};
use super::exec::Exec;
use super::{CmdError, CmdResult};
use crate::resp::Reply;
use crate::shard::Shard;
use crate::store::types::{Coll, Hash, HASH};
use bytes::Bytes;

fn new_hash(_: &crate::store::types::Limits) -> Coll {
    Coll::Hash(Hash::default())
}

fn hash(c: Option<&Coll>) -> Option<&Hash> {
    match c {
        Some(Coll::Hash(h)) => Some(h),
        _ => None,
    }
}

fn hash_mut(c: Option<&mut Coll>) -> &mut Hash {
    match c {
        Some(Coll::Hash(h)) => h,
        _ => unreachable!("checked to be a hash"),
    }
}

/// HSET key field value [field value ...] (and HMSET, which replies +OK).
pub fn hset(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    if !a.len().is_multiple_of(2) {
        return Err(CmdError::WrongArity(
            String::from_utf8_lossy(&a[0]).to_lowercase(),
        ));
    }
    let lim = sh.ks.limits;
    let mut e = write(sh, ex, &a[1], HASH, Some(&new_hash))?.expect("made");
    let h = hash_mut(e.coll_mut());
    let mut added = 0;
    for fv in a[2..].chunks(2) {
        added += h.set(&fv[0], &fv[1], &lim) as i64;
    }
    if eq(&a[0], "hmset") {
        r.ok();
    } else {
        r.int(added);
    }
    Ok(())
}

pub fn hsetnx(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    if hash(read(sh, ex, &a[1], HASH)?).is_some_and(|h| h.get(&a[2]).is_some()) {
        r.int(0);
        return Ok(());
    }
    let lim = sh.ks.limits;
    let mut e = write(sh, ex, &a[1], HASH, Some(&new_hash))?.expect("made");
    hash_mut(e.coll_mut()).set(&a[2], &a[3], &lim);
    r.int(1);
    Ok(())
}

pub fn hget(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    match hash(read(sh, ex, &a[1], HASH)?).and_then(|h| h.get(&a[2])) {
        Some(v) => r.bulk(v),
        None => r.null(),
    }
    Ok(())
}

pub fn hmget(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    let h = hash(read(sh, ex, &a[1], HASH)?);
    r.array(a.len() - 2);
    for f in &a[2..] {
        match h.and_then(|h| h.get(f)) {
            Some(v) => r.bulk(v),
            None => r.null(),
        }
    }
    Ok(())
}

pub fn hdel(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    let n = remove_items(
        sh,
        ex,
        &a[1],
        HASH,
        &a[2..],
        |c, f| hash(Some(c)).is_some_and(|h| h.get(f).is_some()),
        |c, f| hash_mut(Some(c)).del(f),
    )?;
    r.int(n);
    Ok(())
}

pub fn hlen(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    r.int(hash(read(sh, ex, &a[1], HASH)?).map_or(0, |h| h.len()) as i64);
    Ok(())
}

pub fn hexists(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    let has = hash(read(sh, ex, &a[1], HASH)?).is_some_and(|h| h.get(&a[2]).is_some());
    r.int(has as i64);
    Ok(())
}

pub fn hstrlen(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    let n = hash(read(sh, ex, &a[1], HASH)?)
        .and_then(|h| h.get(&a[2]))
        .map_or(0, |v| v.len());
    r.int(n as i64);
    Ok(())
}

/// HGETALL, HKEYS, HVALS.
fn hall(sh: &mut Shard, ex: &Exec, key: &[u8], r: &mut Reply, keys: bool, vals: bool) -> CmdResult {
    let Some(h) = hash(read(sh, ex, key, HASH)?) else {
        if keys && vals {
            r.map(0);
        } else {
            r.array(0);
        }
        return Ok(());
    };
    if keys && vals {
        r.map(h.len());
    } else {
        r.array(h.len());
    }
    for (f, v) in h.iter() {
        if keys {
            r.bulk(f);
        }
        if vals {
            r.bulk(v);
        }
    }
    Ok(())
}

pub fn hgetall(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    hall(sh, ex, &a[1], r, true, true)
}

pub fn hkeys(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    hall(sh, ex, &a[1], r, true, false)
}

pub fn hvals(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    hall(sh, ex, &a[1], r, false, true)
}

pub fn hincrby(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    let by = int(&a[3])?;
    let cur = match hash(read(sh, ex, &a[1], HASH)?).and_then(|h| h.get(&a[2])) {
        Some(v) => super::args::parse_i64_strict(v)
            .ok_or(CmdError::other("ERR hash value is not an integer"))?,
        None => 0,
    };
    let next = cur.checked_add(by).ok_or(CmdError::Overflow)?;
    let lim = sh.ks.limits;
    let mut e = write(sh, ex, &a[1], HASH, Some(&new_hash))?.expect("made");
    hash_mut(e.coll_mut()).set(&a[2], itoa::Buffer::new().format(next).as_bytes(), &lim);
    r.int(next);
    Ok(())
}

pub fn hincrbyfloat(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    let by = float(&a[3])?;
    if !by.is_finite() {
        return Err(CmdError::other("ERR value is NaN or Infinity"));
    }
    let cur = match hash(read(sh, ex, &a[1], HASH)?).and_then(|h| h.get(&a[2])) {
        Some(v) => float(v).map_err(|_| CmdError::other("ERR hash value is not a float"))?,
        None => 0.0,
    };
    let next = cur + by;
    if !next.is_finite() {
        return Err(CmdError::IncrNanOrInf);
    }
    // The form INCRBYFLOAT writes (Valkey's "human friendly" long double: no exponent).
    let text = format!("{next}");
    let lim = sh.ks.limits;
    let mut e = write(sh, ex, &a[1], HASH, Some(&new_hash))?.expect("made");
    hash_mut(e.coll_mut()).set(&a[2], text.as_bytes(), &lim);
    r.bulk(text.as_bytes());
    Ok(())
}

/// HRANDFIELD key [count [WITHVALUES]]: a positive count gives distinct fields, a negative one may
/// repeat them.
pub fn hrandfield(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    let count = super::coll::random_count(a.get(2))?;
    let withvalues = match a.get(3) {
        Some(w) if eq(w, "withvalues") && a.len() == 4 => true,
        Some(_) => return Err(CmdError::Syntax),
        None => false,
    };
    let seed = sh.rand_below(usize::MAX) as u64;
    let Some(h) = hash(read(sh, ex, &a[1], HASH)?) else {
        match count {
            None => r.null(),
            Some(_) => r.array(0),
        }
        return Ok(());
    };
    if count.is_none() {
        let (f, _) = h.random(seed).expect("non-empty");
        r.bulk(f);
        return Ok(());
    }
    let picks = random_choice(
        h.len(),
        count.unwrap_or(1),
        seed,
        |r| h.random(r).expect("non-empty"),
        |p| p.0,
        || h.iter().collect(),
    );
    let pairs = withvalues && r.is_resp3();
    r.array(picks.len() * if withvalues && !pairs { 2 } else { 1 });
    for (f, v) in picks {
        if pairs {
            r.array(2);
        }
        r.bulk(f);
        if withvalues {
            r.bulk(v);
        }
    }
    Ok(())
}

pub fn hscan(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    let s = scan_args(a, true)?;
    let Some(h) = hash(read(sh, ex, &a[1], HASH)?) else {
        scan_reply(r, &s, &mut |_, _| 0);
        return Ok(());
    };
    scan_reply(r, &s, &mut |c, f| h.scan_step(c, |k, v| f(k, Some(v))));
    Ok(())
}
