//! Sorted set commands on one key (Valkey's replies and errors). ZRANGESTORE, ZUNION, ZINTER, ZDIFF, their
//! STORE forms, ZINTERCARD and ZMPOP, whose keys may live on several shards, are in the server layer.

use super::args::{eq, float, int};
use super::coll::{
    count_arg, drop_if_empty, index_range, random_choice, read, remove_items, scan_args,
    scan_reply, write,
};
use super::exec::Exec;
use super::{CmdError, CmdResult};
use crate::resp::Reply;
use crate::shard::Shard;
use crate::store::types::{Coll, Limits, ZSet, ZSET};
use bytes::Bytes;

pub fn zset_of(c: Option<&Coll>) -> Option<&ZSet> {
    match c {
        Some(Coll::ZSet(z)) => Some(z),
        _ => None,
    }
}

pub fn zset_mut(c: Option<&mut Coll>) -> &mut ZSet {
    match c {
        Some(Coll::ZSet(z)) => z,
        _ => unreachable!("checked to be a sorted set"),
    }
}

fn not_float() -> CmdError {
    CmdError::other("ERR min or max is not a float")
}

/// A score bound: `value`, `(value` (exclusive), `-inf`, `+inf`.
#[derive(Clone, Copy, Debug)]
pub struct ScoreBound {
    pub v: f64,
    pub excl: bool,
}

pub fn score_bound(a: &[u8]) -> Result<ScoreBound, CmdError> {
    let (excl, rest) = match a.first() {
        Some(b'(') => (true, &a[1..]),
        _ => (false, a),
    };
    let v = float(rest).map_err(|_| not_float())?;
    Ok(ScoreBound { v, excl })
}

/// A lex bound: `[m`, `(m`, `-`, `+`.
#[derive(Clone, Debug)]
pub enum LexBound {
    Min,
    Max,
    Incl(Vec<u8>),
    Excl(Vec<u8>),
}

pub fn lex_bound(a: &[u8]) -> Result<LexBound, CmdError> {
    match a.first() {
        Some(b'-') if a.len() == 1 => Ok(LexBound::Min),
        Some(b'+') if a.len() == 1 => Ok(LexBound::Max),
        Some(b'[') => Ok(LexBound::Incl(a[1..].to_vec())),
        Some(b'(') => Ok(LexBound::Excl(a[1..].to_vec())),
        _ => Err(CmdError::other(
            "ERR min or max not valid string range item",
        )),
    }
}

/// Ranks `[lo, hi)` of the elements with scores within min..max.
pub fn score_ranks(z: &ZSet, min: ScoreBound, max: ScoreBound) -> (usize, usize) {
    let lo = z.count_before(|s, _| if min.excl { s > min.v } else { s >= min.v });
    let hi = z.count_before(|s, _| if max.excl { s >= max.v } else { s > max.v });
    (lo, hi.max(lo))
}

/// Ranks `[lo, hi)` of the members within the lex range (meaningful when all scores are equal).
pub fn lex_ranks(z: &ZSet, min: &LexBound, max: &LexBound) -> (usize, usize) {
    let lo = match min {
        LexBound::Min => 0,
        LexBound::Max => z.len(),
        LexBound::Incl(m) => z.count_before(|_, x| x >= &m[..]),
        LexBound::Excl(m) => z.count_before(|_, x| x > &m[..]),
    };
    let hi = match max {
        LexBound::Min => 0,
        LexBound::Max => z.len(),
        LexBound::Incl(m) => z.count_before(|_, x| x > &m[..]),
        LexBound::Excl(m) => z.count_before(|_, x| x >= &m[..]),
    };
    (lo, hi.max(lo))
}

/// Replies with (member, score) pairs: members only, or with scores (flat in RESP2, pairs in RESP3).
pub fn reply_pairs(r: &mut Reply, items: &[(Vec<u8>, f64)], withscores: bool) {
    let pairs = withscores && r.is_resp3();
    r.array(items.len() * if withscores && !pairs { 2 } else { 1 });
    for (m, s) in items {
        if pairs {
            r.array(2);
        }
        r.bulk(m);
        if withscores {
            r.double(*s);
        }
    }
}

fn new_zset(first: &[u8], hint: usize) -> impl Fn(&Limits) -> Coll + '_ {
    move |l| Coll::ZSet(ZSet::for_first(first, hint, l))
}

/// ZADD key [NX|XX] [GT|LT] [CH] [INCR] score member [score member ...]
pub fn zadd(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    let (mut nx, mut xx, mut gt, mut lt, mut ch, mut incr) =
        (false, false, false, false, false, false);
    let mut i = 2;
    while i < a.len() {
        let o = &a[i];
        if eq(o, "nx") {
            nx = true;
        } else if eq(o, "xx") {
            xx = true;
        } else if eq(o, "gt") {
            gt = true;
        } else if eq(o, "lt") {
            lt = true;
        } else if eq(o, "ch") {
            ch = true;
        } else if eq(o, "incr") {
            incr = true;
        } else {
            break;
        }
        i += 1;
    }
    let rest = &a[i..];
    if rest.is_empty() || !rest.len().is_multiple_of(2) {
        return Err(CmdError::Syntax);
    }
    if nx && xx {
        return Err(CmdError::other(
            "ERR XX and NX options at the same time are not compatible",
        ));
    }
    if (nx && (gt || lt)) || (gt && lt) {
        return Err(CmdError::other(
            "ERR GT, LT, and/or NX options at the same time are not compatible",
        ));
    }
    if incr && rest.len() > 2 {
        return Err(CmdError::other(
            "ERR INCR option supports a single increment-element pair",
        ));
    }
    let mut pairs = Vec::with_capacity(rest.len() / 2);
    for p in rest.chunks(2) {
        pairs.push((float(&p[0])?, &p[1]));
    }
    let z = zset_of(read(sh, ex, &a[1], ZSET)?);
    if z.is_none() && xx {
        if incr {
            r.null();
        } else {
            r.int(0);
        }
        return Ok(());
    }
    // Decide every change first (read only), so a command that changes nothing writes (and logs) nothing.
    let mut changes: Vec<(&[u8], f64, bool)> = Vec::new();
    let (mut added, mut updated) = (0, 0);
    let mut incr_result = None;
    for (s, m) in &pairs {
        let cur = z.and_then(|z| z.score(m));
        // A member given twice: the later pair sees the earlier change.
        let cur = changes
            .iter()
            .rev()
            .find(|c| c.0 == &m[..])
            .map(|c| c.1)
            .or(cur);
        let new = match (cur, incr) {
            (Some(c), true) => c + s,
            _ => *s,
        };
        if new.is_nan() {
            return Err(CmdError::other("ERR resulting score is not a number (NaN)"));
        }
        let ok = match cur {
            None => !xx,
            Some(c) => !nx && (!gt || new > c) && (!lt || new < c),
        };
        if !ok {
            continue;
        }
        incr_result = Some(new);
        if cur == Some(new) {
            continue;
        }
        match cur {
            None => added += 1,
            Some(_) => updated += 1,
        }
        changes.push((m, new, cur.is_none()));
    }
    if !changes.is_empty() {
        let lim = sh.ks.limits;
        let make = new_zset(changes[0].0, changes.len());
        let mut e = write(sh, ex, &a[1], ZSET, Some(&make))?.expect("made");
        let z = zset_mut(e.coll_mut());
        for (m, s, _) in &changes {
            z.insert(m, *s, &lim);
        }
    }
    if incr {
        match incr_result {
            Some(s) => r.double(s),
            None => r.null(),
        }
    } else {
        r.int(if ch { added + updated } else { added });
    }
    Ok(())
}

pub fn zincrby(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    let by = float(&a[2])?;
    let cur = zset_of(read(sh, ex, &a[1], ZSET)?).and_then(|z| z.score(&a[3]));
    let new = cur.unwrap_or(0.0) + by;
    if new.is_nan() {
        return Err(CmdError::other("ERR resulting score is not a number (NaN)"));
    }
    let lim = sh.ks.limits;
    let make = new_zset(&a[3], 1);
    let mut e = write(sh, ex, &a[1], ZSET, Some(&make))?.expect("made");
    zset_mut(e.coll_mut()).insert(&a[3], new, &lim);
    r.double(new);
    Ok(())
}

pub fn zrem(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    let n = remove_items(
        sh,
        ex,
        &a[1],
        ZSET,
        &a[2..],
        |c, m| zset_of(Some(c)).is_some_and(|z| z.score(m).is_some()),
        |c, m| zset_mut(Some(c)).remove(m),
    )?;
    r.int(n);
    Ok(())
}

pub fn zscore(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    match zset_of(read(sh, ex, &a[1], ZSET)?).and_then(|z| z.score(&a[2])) {
        Some(s) => r.double(s),
        None => r.null(),
    }
    Ok(())
}

pub fn zmscore(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    let z = zset_of(read(sh, ex, &a[1], ZSET)?);
    r.array(a.len() - 2);
    for m in &a[2..] {
        match z.and_then(|z| z.score(m)) {
            Some(s) => r.double(s),
            None => r.null(),
        }
    }
    Ok(())
}

pub fn zcard(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    r.int(zset_of(read(sh, ex, &a[1], ZSET)?).map_or(0, |z| z.len()) as i64);
    Ok(())
}

pub fn zcount(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    let (min, max) = (score_bound(&a[2])?, score_bound(&a[3])?);
    let n = zset_of(read(sh, ex, &a[1], ZSET)?).map_or(0, |z| {
        let (lo, hi) = score_ranks(z, min, max);
        hi - lo
    });
    r.int(n as i64);
    Ok(())
}

pub fn zlexcount(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    let (min, max) = (lex_bound(&a[2])?, lex_bound(&a[3])?);
    let n = zset_of(read(sh, ex, &a[1], ZSET)?).map_or(0, |z| {
        let (lo, hi) = lex_ranks(z, &min, &max);
        hi - lo
    });
    r.int(n as i64);
    Ok(())
}

/// What a ZRANGE-family command selects.
#[derive(Clone, Debug)]
pub enum By {
    Rank(i64, i64),
    Score(ScoreBound, ScoreBound),
    Lex(LexBound, LexBound),
}

/// A parsed range query: ZRANGE's general form and the older commands mapped onto it.
#[derive(Clone, Debug)]
pub struct RangeQuery {
    pub by: By,
    pub rev: bool,
    pub limit: Option<(i64, i64)>,
    pub withscores: bool,
}

/// Parses `min max [BYSCORE|BYLEX] [REV] [LIMIT offset count] [WITHSCORES]` from a[i..] (ZRANGE and
/// ZRANGESTORE, which refuses WITHSCORES).
pub fn parse_range(a: &[Bytes], i: usize, store: bool) -> Result<RangeQuery, CmdError> {
    let (mut byscore, mut bylex, mut rev, mut withscores, mut limit) =
        (false, false, false, false, None);
    let mut j = i + 2;
    while j < a.len() {
        let o = &a[j];
        if eq(o, "byscore") {
            byscore = true;
        } else if eq(o, "bylex") {
            bylex = true;
        } else if eq(o, "rev") {
            rev = true;
        } else if eq(o, "withscores") && !store {
            withscores = true;
        } else if eq(o, "limit") && j + 2 < a.len() {
            limit = Some((int(&a[j + 1])?, int(&a[j + 2])?));
            j += 2;
        } else {
            return Err(CmdError::Syntax);
        }
        j += 1;
    }
    if byscore && bylex {
        return Err(CmdError::Syntax);
    }
    if limit.is_some() && !byscore && !bylex {
        return Err(CmdError::other(
            "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX",
        ));
    }
    if withscores && bylex {
        return Err(CmdError::other(
            "ERR syntax error, WITHSCORES not supported in combination with BYLEX",
        ));
    }
    // With REV the first argument is the upper bound.
    let (lo, hi) = if rev && (byscore || bylex) {
        (&a[i + 1], &a[i])
    } else {
        (&a[i], &a[i + 1])
    };
    let by = if byscore {
        By::Score(score_bound(lo)?, score_bound(hi)?)
    } else if bylex {
        By::Lex(lex_bound(lo)?, lex_bound(hi)?)
    } else {
        By::Rank(int(lo)?, int(hi)?)
    };
    Ok(RangeQuery {
        by,
        rev,
        limit,
        withscores,
    })
}

/// The elements a range query selects, in reply order.
pub fn run_range(z: &ZSet, q: &RangeQuery) -> Vec<(Vec<u8>, f64)> {
    let len = z.len();
    let (lo, hi) = match &q.by {
        By::Rank(s, e) => {
            // Ranks count from the end with REV.
            match index_range(*s, *e, len) {
                Some((s, e)) if q.rev => (len - e, len - s),
                Some(x) => x,
                None => return Vec::new(),
            }
        }
        By::Score(min, max) => score_ranks(z, *min, *max),
        By::Lex(min, max) => lex_ranks(z, min, max),
    };
    let (mut lo, mut hi) = (lo, hi);
    if let Some((off, count)) = q.limit {
        if off < 0 {
            return Vec::new();
        }
        let off = off as usize;
        let n = if count < 0 {
            usize::MAX
        } else {
            count as usize
        };
        if q.rev {
            hi = hi.saturating_sub(off).max(lo);
            lo = hi.saturating_sub(n).max(lo);
        } else {
            lo = (lo + off).min(hi);
            hi = lo.saturating_add(n).min(hi);
        }
    }
    let mut out: Vec<(Vec<u8>, f64)> = z
        .range(lo, hi)
        .into_iter()
        .map(|(m, s)| (m.to_vec(), s))
        .collect();
    if q.rev {
        out.reverse();
    }
    out
}

fn range_reply(sh: &mut Shard, ex: &Exec, key: &[u8], q: &RangeQuery, r: &mut Reply) -> CmdResult {
    let items = zset_of(read(sh, ex, key, ZSET)?).map_or_else(Vec::new, |z| run_range(z, q));
    reply_pairs(r, &items, q.withscores);
    Ok(())
}

pub fn zrange(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    let q = parse_range(a, 2, false)?;
    range_reply(sh, ex, &a[1], &q, r)
}

/// ZREVRANGE, ZRANGEBYSCORE, ZREVRANGEBYSCORE, ZRANGEBYLEX, ZREVRANGEBYLEX: their arguments as ZRANGE's.
fn legacy(a: &[Bytes], by: &str, rev: bool) -> Result<RangeQuery, CmdError> {
    let mut args: Vec<Bytes> = a[..4].to_vec();
    if !by.is_empty() {
        args.push(Bytes::copy_from_slice(by.as_bytes()));
    }
    if rev {
        args.push(Bytes::from_static(b"REV"));
    }
    let mut i = 4;
    while i < a.len() {
        if eq(&a[i], "withscores") && by != "BYLEX" {
            args.push(a[i].clone());
            i += 1;
        } else if eq(&a[i], "limit") && !by.is_empty() && i + 2 < a.len() {
            args.extend_from_slice(&a[i..i + 3]);
            i += 3;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    parse_range(&args, 2, false)
}

pub fn zrevrange(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    let q = legacy(a, "", true)?;
    range_reply(sh, ex, &a[1], &q, r)
}

pub fn zrangebyscore(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    let q = legacy(a, "BYSCORE", false)?;
    range_reply(sh, ex, &a[1], &q, r)
}

pub fn zrevrangebyscore(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    let q = legacy(a, "BYSCORE", true)?;
    range_reply(sh, ex, &a[1], &q, r)
}

pub fn zrangebylex(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    let q = legacy(a, "BYLEX", false)?;
    range_reply(sh, ex, &a[1], &q, r)
}

pub fn zrevrangebylex(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    let q = legacy(a, "BYLEX", true)?;
    range_reply(sh, ex, &a[1], &q, r)
}

fn rank(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply, rev: bool) -> CmdResult {
    let withscore = match a.get(3) {
        Some(w) if eq(w, "withscore") && a.len() == 4 => true,
        Some(_) => return Err(CmdError::Syntax),
        None => false,
    };
    let z = zset_of(read(sh, ex, &a[1], ZSET)?);
    match z.and_then(|z| Some((z.rank(&a[2])?, z.score(&a[2])?, z.len()))) {
        Some((rk, s, len)) => {
            let rk = if rev { len - 1 - rk } else { rk };
            if withscore {
                r.array(2);
                r.int(rk as i64);
                r.double(s);
            } else {
                r.int(rk as i64);
            }
        }
        None if withscore => r.null_array(),
        None => r.null(),
    }
    Ok(())
}

pub fn zrank(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    rank(sh, ex, a, r, false)
}

pub fn zrevrank(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    rank(sh, ex, a, r, true)
}

/// Pops up to `n` of the lowest (or highest) elements of the sorted set at `key`.
pub fn pop_n(
    sh: &mut Shard,
    ex: &Exec,
    key: &[u8],
    max: bool,
    n: usize,
) -> Result<Vec<(Vec<u8>, f64)>, CmdError> {
    let Some(z) = zset_of(read(sh, ex, key, ZSET)?) else {
        return Ok(Vec::new());
    };
    let len = z.len();
    let take = n.min(len);
    let mut got: Vec<(Vec<u8>, f64)> = if max {
        let mut v: Vec<_> = z
            .range(len - take, len)
            .into_iter()
            .map(|(m, s)| (m.to_vec(), s))
            .collect();
        v.reverse();
        v
    } else {
        z.range(0, take)
            .into_iter()
            .map(|(m, s)| (m.to_vec(), s))
            .collect()
    };
    if got.is_empty() {
        return Ok(got);
    }
    let mut e = write(sh, ex, key, ZSET, None)?.expect("checked");
    let z = zset_mut(e.coll_mut());
    for (m, _) in &got {
        z.remove(m);
    }
    drop(e);
    drop_if_empty(sh, ex, key);
    got.shrink_to_fit();
    Ok(got)
}

fn zpop(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply, max: bool) -> CmdResult {
    if a.len() > 3 {
        return Err(CmdError::Syntax);
    }
    let count = match a.get(2) {
        Some(c) => Some(count_arg(c)?),
        None => None,
    };
    let got = pop_n(sh, ex, &a[1], max, count.unwrap_or(1))?;
    if count.is_none() && r.is_resp3() {
        // RESP3 without COUNT: one [member, score] pair, or an empty array.
        match got.first() {
            Some((m, s)) => {
                r.array(2);
                r.bulk(m);
                r.double(*s);
            }
            None => r.array(0),
        }
        return Ok(());
    }
    reply_pairs(r, &got, true);
    Ok(())
}

pub fn zpopmin(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    zpop(sh, ex, a, r, false)
}

pub fn zpopmax(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    zpop(sh, ex, a, r, true)
}

pub fn zrandmember(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    let count = super::coll::random_count(a.get(2))?;
    let withscores = match a.get(3) {
        Some(w) if eq(w, "withscores") && a.len() == 4 => true,
        Some(_) => return Err(CmdError::Syntax),
        None => false,
    };
    let seed = sh.rand_below(usize::MAX) as u64;
    let Some(z) = zset_of(read(sh, ex, &a[1], ZSET)?) else {
        match count {
            Some(_) => r.array(0),
            None => r.null(),
        }
        return Ok(());
    };
    match count {
        None => r.bulk(z.random(seed).expect("non-empty").0),
        Some(n) => {
            let items: Vec<(Vec<u8>, f64)> = random_choice(
                z.len(),
                n,
                seed,
                |r| z.random(r).expect("non-empty"),
                |p| p.0,
                || z.range(0, z.len()),
            )
            .into_iter()
            .map(|(m, s)| (m.to_vec(), s))
            .collect();
            reply_pairs(r, &items, withscores);
        }
    }
    Ok(())
}

fn remrange(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply, by: By) -> CmdResult {
    let Some(z) = zset_of(read(sh, ex, &a[1], ZSET)?) else {
        r.int(0);
        return Ok(());
    };
    let q = RangeQuery {
        by,
        rev: false,
        limit: None,
        withscores: false,
    };
    let victims = run_range(z, &q);
    if victims.is_empty() {
        r.int(0);
        return Ok(());
    }
    let mut e = write(sh, ex, &a[1], ZSET, None)?.expect("checked");
    let z = zset_mut(e.coll_mut());
    for (m, _) in &victims {
        z.remove(m);
    }
    drop(e);
    drop_if_empty(sh, ex, &a[1]);
    r.int(victims.len() as i64);
    Ok(())
}

pub fn zremrangebyrank(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    let by = By::Rank(int(&a[2])?, int(&a[3])?);
    remrange(sh, ex, a, r, by)
}

pub fn zremrangebyscore(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    let by = By::Score(score_bound(&a[2])?, score_bound(&a[3])?);
    remrange(sh, ex, a, r, by)
}

pub fn zremrangebylex(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    let by = By::Lex(lex_bound(&a[2])?, lex_bound(&a[3])?);
    remrange(sh, ex, a, r, by)
}

pub fn zscan(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    let sa = scan_args(a, true)?;
    let Some(z) = zset_of(read(sh, ex, &a[1], ZSET)?) else {
        scan_reply(r, &sa, &mut |_, _| 0);
        return Ok(());
    };
    scan_reply(r, &sa, &mut |c, f| {
        z.scan_step(c, |m, s| {
            f(m, Some(crate::resp::format_double(s).as_bytes()))
        })
    });
    Ok(())
}
