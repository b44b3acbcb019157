//! Commands over several collections: set algebra (SINTER, SUNION, SDIFF, their STORE forms, SINTERCARD,
//! SMOVE), list moves (LMOVE, RPOPLPUSH, LMPOP) and sorted-set algebra (ZUNION, ZINTER, ZDIFF, their STORE
//! forms, ZINTERCARD, ZRANGESTORE, ZMPOP). They run as key commands on the shard holding every key; when
//! the keys span shards the server runs the same handler over copies of them under one transaction
//! (server::special, `run_gathered`), so there is one implementation of each.

use super::args::{eq, float, int};
use super::coll::read;
use super::exec::Exec;
use super::set::set_of;
use super::zset::{parse_range, reply_pairs, run_range, zset_of};
use super::{CmdError, CmdResult};
use crate::resp::Reply;
use crate::shard::Shard;
use crate::store::types::{Coll, Set, ZSet, LIST, SET, ZSET};
use crate::store::Entry;
use bytes::Bytes;
use std::collections::{HashMap, HashSet};

/// Every key's members (a missing key is an empty set); WRONGTYPE if one is not a set.
fn members_of(
    sh: &mut Shard,
    ex: &Exec,
    keys: &[Bytes],
) -> Result<Vec<Option<HashSet<Vec<u8>>>>, CmdError> {
    let mut out = Vec::with_capacity(keys.len());
    for k in keys {
        out.push(set_of(read(sh, ex, k, SET)?).map(|s| s.members().into_iter().collect()));
    }
    Ok(out)
}

#[derive(Clone, Copy, PartialEq)]
enum Op {
    Inter,
    Union,
    Diff,
}

fn combine(sets: Vec<Option<HashSet<Vec<u8>>>>, op: Op) -> Vec<Vec<u8>> {
    let mut it = sets.into_iter();
    let first = it.next().flatten().unwrap_or_default();
    let mut acc = first;
    for s in it {
        let s = s.unwrap_or_default();
        match op {
            Op::Inter => acc.retain(|m| s.contains(m)),
            Op::Union => acc.extend(s),
            Op::Diff => acc.retain(|m| !s.contains(m)),
        }
    }
    let mut v: Vec<Vec<u8>> = acc.into_iter().collect();
    v.sort_unstable();
    v
}

/// Replaces `dst` with a set of `members` (deleting it when there are none).
fn store_set(sh: &mut Shard, ex: &Exec, dst: &[u8], members: &[Vec<u8>]) {
    sh.ks.remove(ex.db, dst, ex.now);
    if let Some(first) = members.first() {
        let lim = sh.ks.limits;
        let mut s = Set::for_first(first, members.len(), &lim);
        for m in members {
            s.add(m, &lim);
        }
        sh.ks
            .insert_entry(ex.db, Entry::with_coll(dst, Coll::Set(s), None));
    }
}

fn setop(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply, op: Op, store: bool) -> CmdResult {
    let keys = if store { &a[2..] } else { &a[1..] };
    let sets = members_of(sh, ex, keys)?;
    let out = combine(sets, op);
    if store {
        store_set(sh, ex, &a[1], &out);
        r.int(out.len() as i64);
    } else {
        r.set(out.len());
        out.iter().for_each(|m| r.bulk(m));
    }
    Ok(())
}

pub fn sinter(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    setop(sh, ex, a, r, Op::Inter, false)
}
pub fn sunion(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    setop(sh, ex, a, r, Op::Union, false)
}
pub fn sdiff(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    setop(sh, ex, a, r, Op::Diff, false)
}
pub fn sinterstore(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    setop(sh, ex, a, r, Op::Inter, true)
}
pub fn sunionstore(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    setop(sh, ex, a, r, Op::Union, true)
}
pub fn sdiffstore(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    setop(sh, ex, a, r, Op::Diff, true)
}

/// Parses `numkeys key... [LIMIT n]` (SINTERCARD, ZINTERCARD): the keys and the limit (0 = none).
/// Their errors differ as in Valkey (SINTERCARD's are set.c's, ZINTERCARD's the other sorted-set
/// operations').
fn card_args(a: &[Bytes], zset: bool) -> Result<(&[Bytes], usize), CmdError> {
    let n = if zset {
        match int(&a[1])? {
            n if n < 1 => {
                return Err(CmdError::other(
                    "ERR at least 1 input key is needed for 'zintercard' command",
                ))
            }
            n if n as usize > a.len() - 2 => return Err(CmdError::Syntax),
            n => n as usize,
        }
    } else {
        match int(&a[1]) {
            Ok(n) if n > 0 && n as usize > a.len() - 2 => {
                return Err(CmdError::other(
                    "ERR Number of keys can't be greater than number of args",
                ))
            }
            Ok(n) if n > 0 => n as usize,
            _ => return Err(CmdError::other("ERR numkeys should be greater than 0")),
        }
    };
    let keys = &a[2..2 + n];
    let mut limit = 0;
    let mut i = 2 + n;
    while i < a.len() {
        if eq(&a[i], "limit") && i + 1 < a.len() {
            let l = int(&a[i + 1]).unwrap_or(-1);
            if l < 0 {
                return Err(CmdError::other("ERR LIMIT can't be negative"));
            }
            limit = l as usize;
            i += 2;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    Ok((keys, limit))
}

pub fn sintercard(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    let (keys, limit) = card_args(a, false)?;
    let n = combine(members_of(sh, ex, keys)?, Op::Inter).len();
    r.int(if limit > 0 { n.min(limit) } else { n } as i64);
    Ok(())
}

pub fn smove(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    let (src, dst, m) = (&a[1], &a[2], &a[3]);
    let has = set_of(read(sh, ex, src, SET)?).is_some_and(|s| s.contains(m));
    // A destination that already holds the member is not written (a WATCH of it is not touched).
    let dst_has = set_of(read(sh, ex, dst, SET)?).is_some_and(|s| s.contains(m));
    if !has {
        r.int(0);
        return Ok(());
    }
    if src == dst {
        r.int(1);
        return Ok(());
    }
    let srem = [Bytes::from_static(b"SREM"), src.clone(), m.clone()];
    let sadd = [Bytes::from_static(b"SADD"), dst.clone(), m.clone()];
    let mut scratch = Reply::new(crate::resp::Proto::Resp2);
    super::set::srem(sh, ex, &srem, &mut scratch)?;
    if !dst_has {
        super::set::sadd(sh, ex, &sadd, &mut scratch)?;
    }
    r.int(1);
    Ok(())
}

fn side(a: &[u8]) -> Result<bool, CmdError> {
    if eq(a, "left") {
        Ok(true)
    } else if eq(a, "right") {
        Ok(false)
    } else {
        Err(CmdError::Syntax)
    }
}

/// Moves one element from `src`'s end to `dst`'s end; None if `src` is missing.
fn move_one(
    sh: &mut Shard,
    ex: &Exec,
    src: &[u8],
    dst: &[u8],
    from_left: bool,
    to_left: bool,
) -> Result<Option<Vec<u8>>, CmdError> {
    if read(sh, ex, src, LIST)?.is_none() {
        return Ok(None);
    }
    read(sh, ex, dst, LIST)?;
    let v = super::list::pop_n(sh, ex, src, from_left, 1)?
        .pop()
        .expect("non-empty list");
    let lim = sh.ks.limits;
    let make = |_: &crate::store::types::Limits| Coll::List(Default::default());
    let mut e = super::coll::write(sh, ex, dst, LIST, Some(&make))?.expect("made");
    let l = super::list::list_mut(e.coll_mut());
    if to_left {
        l.push_front(&v, &lim);
    } else {
        l.push_back(&v, &lim);
    }
    Ok(Some(v))
}

pub fn lmove(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    let (from, to) = (side(&a[3])?, side(&a[4])?);
    match move_one(sh, ex, &a[1], &a[2], from, to)? {
        Some(v) => r.bulk(&v),
        None => r.null(),
    }
    Ok(())
}

pub fn rpoplpush(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    match move_one(sh, ex, &a[1], &a[2], false, true)? {
        Some(v) => r.bulk(&v),
        None => r.null(),
    }
    Ok(())
}

/// Parses `numkeys key... WHERE [COUNT n]` from a[at..] (LMPOP, ZMPOP and their blocking forms).
pub fn mpop_args<'a>(
    a: &'a [Bytes],
    at: usize,
    words: [&str; 2],
) -> Result<(&'a [Bytes], bool, usize), CmdError> {
    let n = match int(&a[at]) {
        Ok(n) if n > 0 => n as usize,
        _ => return Err(CmdError::other("ERR numkeys should be greater than 0")),
    };
    if n >= a.len() - at - 1 {
        // No room for the direction after the keys.
        return Err(CmdError::Syntax);
    }
    let keys = &a[at + 1..at + 1 + n];
    let mut i = at + 1 + n;
    let w = a.get(i).ok_or(CmdError::Syntax)?;
    let first = if eq(w, words[0]) {
        true
    } else if eq(w, words[1]) {
        false
    } else {
        return Err(CmdError::Syntax);
    };
    i += 1;
    let mut count = 1;
    if i < a.len() {
        if eq(&a[i], "count") && i + 2 == a.len() {
            // Valkey's getRangeLongFromObjectOrReply: one message for a bad or out-of-range count.
            count = match int(&a[i + 1]) {
                Ok(c) if c > 0 => c as usize,
                _ => return Err(CmdError::other("ERR count should be greater than 0")),
            };
        } else {
            return Err(CmdError::Syntax);
        }
    }
    Ok((keys, first, count))
}

/// LMPOP's work: pops from the first non-empty list; false if every list is empty.
pub fn lmpop_from(
    sh: &mut Shard,
    ex: &Exec,
    keys: &[Bytes],
    left: bool,
    count: usize,
    r: &mut Reply,
) -> Result<bool, CmdError> {
    for k in keys {
        if read(sh, ex, k, LIST)?.is_some() {
            let got = super::list::pop_n(sh, ex, k, left, count)?;
            r.array(2);
            r.bulk(k);
            r.array(got.len());
            got.iter().for_each(|v| r.bulk(v));
            return Ok(true);
        }
    }
    Ok(false)
}

pub fn lmpop(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    let (keys, left, count) = mpop_args(a, 1, ["left", "right"])?;
    if !lmpop_from(sh, ex, keys, left, count, r)? {
        r.null_array();
    }
    Ok(())
}

/// ZMPOP's work: pops from the first non-empty sorted set; false if every one is empty.
pub fn zmpop_from(
    sh: &mut Shard,
    ex: &Exec,
    keys: &[Bytes],
    min: bool,
    count: usize,
    r: &mut Reply,
) -> Result<bool, CmdError> {
    for k in keys {
        if read(sh, ex, k, ZSET)?.is_some() {
            let got = super::zset::pop_n(sh, ex, k, !min, count)?;
            r.array(2);
            r.bulk(k);
            reply_pairs_nested(r, &got);
            return Ok(true);
        }
    }
    Ok(false)
}

/// ZMPOP's elements: always [member, score] pairs, in RESP2 too.
fn reply_pairs_nested(r: &mut Reply, items: &[(Vec<u8>, f64)]) {
    r.array(items.len());
    for (m, s) in items {
        r.array(2);
        r.bulk(m);
        r.double(*s);
    }
}

pub fn zmpop(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    let (keys, min, count) = mpop_args(a, 1, ["min", "max"])?;
    if !zmpop_from(sh, ex, keys, min, count, r)? {
        r.null_array();
    }
    Ok(())
}

#[derive(Clone, Copy, PartialEq)]
enum Agg {
    Sum,
    Min,
    Max,
}

/// A sorted set or a set (scores 1) as (member, score) pairs; WRONGTYPE for other types.
/// (member, score) pairs.
type Scored = Vec<(Vec<u8>, f64)>;

fn zinput(sh: &mut Shard, ex: &Exec, k: &[u8]) -> Result<Option<Scored>, CmdError> {
    let Some(e) = sh.ks.get(ex.db, k, ex.now) else {
        return Ok(None);
    };
    match e.coll() {
        Some(Coll::ZSet(z)) => Ok(Some(z.iter_from(0).map(|(m, s)| (m.to_vec(), s)).collect())),
        Some(Coll::Set(s)) => Ok(Some(s.members().into_iter().map(|m| (m, 1.0)).collect())),
        _ => Err(CmdError::WrongType),
    }
}

/// ZUNION/ZINTER/ZDIFF and their STORE forms: `[dst] numkeys key... [WEIGHTS w...] [AGGREGATE x]
/// [WITHSCORES]`.
fn zsetop(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply, op: Op, store: bool) -> CmdResult {
    let name = String::from_utf8_lossy(&a[0]).to_lowercase();
    let at = if store { 2 } else { 1 };
    let n = int(&a[at])?;
    if n < 1 {
        return Err(CmdError::other(format!(
            "ERR at least 1 input key is needed for '{name}' command"
        )));
    }
    let n = n as usize;
    if n > a.len() - at - 1 {
        return Err(CmdError::Syntax);
    }
    let keys = &a[at + 1..at + 1 + n];
    let mut weights = vec![1.0; n];
    let (mut agg, mut withscores) = (Agg::Sum, false);
    let mut i = at + 1 + n;
    while i < a.len() {
        if op != Op::Diff && eq(&a[i], "weights") && i + n < a.len() {
            for (j, w) in weights.iter_mut().enumerate() {
                *w = float(&a[i + 1 + j])
                    .map_err(|_| CmdError::other("ERR weight value is not a float"))?;
            }
            i += n + 1;
        } else if op != Op::Diff && eq(&a[i], "aggregate") && i + 1 < a.len() {
            agg = match String::from_utf8_lossy(&a[i + 1]).to_lowercase().as_str() {
                "sum" => Agg::Sum,
                "min" => Agg::Min,
                "max" => Agg::Max,
                _ => return Err(CmdError::Syntax),
            };
            i += 2;
        } else if !store && eq(&a[i], "withscores") {
            withscores = true;
            i += 1;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    let mut inputs = Vec::with_capacity(n);
    for k in keys {
        inputs.push(zinput(sh, ex, k)?);
    }
    let mut acc: HashMap<Vec<u8>, f64> = HashMap::new();
    let add = |x: f64, y: f64| {
        let s = x + y;
        if s.is_nan() {
            0.0
        } else {
            s
        }
    };
    for (idx, inp) in inputs.iter().enumerate() {
        let items = inp.as_deref().unwrap_or(&[]);
        let w = weights[idx];
        let weighted = |s: f64| {
            let v = s * w;
            if v.is_nan() {
                0.0
            } else {
                v
            }
        };
        match op {
            Op::Union => {
                for (m, s) in items {
                    let v = weighted(*s);
                    acc.entry(m.clone())
                        .and_modify(|c| {
                            *c = match agg {
                                Agg::Sum => add(*c, v),
                                Agg::Min => c.min(v),
                                Agg::Max => c.max(v),
                            }
                        })
                        .or_insert(v);
                }
            }
            Op::Inter if idx == 0 => {
                acc = items
                    .iter()
                    .map(|(m, s)| (m.clone(), weighted(*s)))
                    .collect();
            }
            Op::Inter => {
                let here: HashMap<&[u8], f64> = items.iter().map(|(m, s)| (&m[..], *s)).collect();
                acc.retain(|m, _| here.contains_key(&m[..]));
                for (m, c) in acc.iter_mut() {
                    let v = weighted(here[&m[..]]);
                    *c = match agg {
                        Agg::Sum => add(*c, v),
                        Agg::Min => c.min(v),
                        Agg::Max => c.max(v),
                    };
                }
            }
            Op::Diff if idx == 0 => {
                acc = items.iter().map(|(m, s)| (m.clone(), *s)).collect();
            }
            Op::Diff => {
                for (m, _) in items {
                    acc.remove(m);
                }
            }
        }
    }
    let mut out: Vec<(Vec<u8>, f64)> = acc.into_iter().collect();
    out.sort_by(|x, y| crate::store::types::zset::cmp((x.1, &x.0), (y.1, &y.0)));
    if store {
        store_zset(sh, ex, &a[1], &out);
        r.int(out.len() as i64);
    } else {
        reply_pairs(r, &out, withscores);
    }
    Ok(())
}

fn store_zset(sh: &mut Shard, ex: &Exec, dst: &[u8], items: &[(Vec<u8>, f64)]) {
    sh.ks.remove(ex.db, dst, ex.now);
    if let Some((first, _)) = items.first() {
        let lim = sh.ks.limits;
        let mut z = ZSet::for_first(first, items.len(), &lim);
        for (m, s) in items {
            z.insert(m, *s, &lim);
        }
        sh.ks
            .insert_entry(ex.db, Entry::with_coll(dst, Coll::ZSet(z), None));
    }
}

pub fn zunion(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    zsetop(sh, ex, a, r, Op::Union, false)
}
pub fn zinter(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    zsetop(sh, ex, a, r, Op::Inter, false)
}
pub fn zdiff(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    zsetop(sh, ex, a, r, Op::Diff, false)
}
pub fn zunionstore(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    zsetop(sh, ex, a, r, Op::Union, true)
}
pub fn zinterstore(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    zsetop(sh, ex, a, r, Op::Inter, true)
}
pub fn zdiffstore(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    zsetop(sh, ex, a, r, Op::Diff, true)
}

pub fn zintercard(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    let (keys, limit) = card_args(a, true)?;
    let mut acc: Option<HashSet<Vec<u8>>> = None;
    for k in keys {
        let items: HashSet<Vec<u8>> = zinput(sh, ex, k)?
            .unwrap_or_default()
            .into_iter()
            .map(|x| x.0)
            .collect();
        acc = Some(match acc {
            None => items,
            Some(mut a) => {
                a.retain(|m| items.contains(m));
                a
            }
        });
    }
    let n = acc.map_or(0, |a| a.len());
    r.int(if limit > 0 { n.min(limit) } else { n } as i64);
    Ok(())
}

/// ZRANGESTORE dst src min max [BYSCORE|BYLEX] [REV] [LIMIT offset count]
pub fn zrangestore(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    let q = parse_range(a, 3, true)?;
    let items = zset_of(read(sh, ex, &a[2], ZSET)?).map_or_else(Vec::new, |z| run_range(z, &q));
    store_zset(sh, ex, &a[1], &items);
    r.int(items.len() as i64);
    Ok(())
}
