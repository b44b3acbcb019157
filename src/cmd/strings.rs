//! String commands that run on the shard owning their key(s).

use super::args::{eq, float, int};
use super::exec::Exec;
use super::{CmdError, CmdResult};
use crate::resp::Reply;
use crate::shard::Shard;
use crate::store::types::STRING;
use bytes::Bytes;

pub fn get(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    let hit = sh.ks.get_kind(ex.db, &a[1], ex.now, STRING)?;
    match hit {
        Some(e) => r.bulk(e.value()),
        None => r.null(),
    }
    Ok(())
}

/// The expiry options shared by SET and GETEX.
#[derive(Debug, PartialEq)]
enum Ttl {
    Unchanged,
    Keep,
    Persist,
    At(u64),
}

/// Parses `EX s | PX ms | EXAT s | PXAT ms` at `a[i]`, returning the absolute expiry in ms. Valkey's rules:
/// the number must be an integer > 0, and neither the unit conversion nor adding `now` may overflow.
fn parse_ttl_option(
    a: &[Bytes],
    i: usize,
    now: u64,
    cmd: &'static str,
) -> Result<Option<u64>, CmdError> {
    let opt = &a[i];
    let (unit_ms, absolute) = if eq(opt, "ex") {
        (1000, false)
    } else if eq(opt, "px") {
        (1, false)
    } else if eq(opt, "exat") {
        (1000, true)
    } else if eq(opt, "pxat") {
        (1, true)
    } else {
        return Ok(None);
    };
    let v = int(a.get(i + 1).ok_or(CmdError::Syntax)?)?;
    if v <= 0 {
        return Err(CmdError::InvalidExpire(cmd));
    }
    let ms = (v as u64)
        .checked_mul(unit_ms)
        .filter(|m| *m <= i64::MAX as u64)
        .ok_or(CmdError::InvalidExpire(cmd))?;
    let at = if absolute {
        Some(ms)
    } else {
        ms.checked_add(now).filter(|m| *m <= i64::MAX as u64)
    };
    at.map(Some).ok_or(CmdError::InvalidExpire(cmd))
}

pub fn set(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    let (mut nx, mut xx, mut get) = (false, false, false);
    let mut ttl = Ttl::Unchanged;
    let mut i = 3;
    while i < a.len() {
        if let Some(at) = parse_ttl_option(a, i, ex.now, "set")? {
            if ttl != Ttl::Unchanged {
                return Err(CmdError::Syntax);
            }
            ttl = Ttl::At(at);
            i += 2;
            continue;
        }
        let o = &a[i];
        if eq(o, "nx") && !xx {
            nx = true;
        } else if eq(o, "xx") && !nx {
            xx = true;
        } else if eq(o, "get") {
            get = true;
        } else if eq(o, "keepttl") && ttl == Ttl::Unchanged {
            ttl = Ttl::Keep;
        } else {
            return Err(CmdError::Syntax);
        }
        i += 1;
    }
    let (key, val) = (&a[1], &a[2]);
    // The old entry matters only to NX, XX, GET and KEEPTTL: a plain SET goes straight to one upsert.
    let mut old_expire = None;
    if nx || xx || get || ttl == Ttl::Keep {
        let old = if get {
            sh.ks.get_kind(ex.db, key, ex.now, STRING)?
        } else {
            sh.ks.get(ex.db, key, ex.now)
        };
        let exists = old.is_some();
        old_expire = old.and_then(|e| e.expire_at());
        if get {
            match old {
                Some(e) => r.bulk(e.value()),
                None => r.null(),
            }
        }
        if (nx && exists) || (xx && !exists) {
            if !get {
                r.null();
            }
            return Ok(());
        }
    }
    let expire_at = match ttl {
        Ttl::At(t) => Some(t),
        Ttl::Keep => old_expire,
        _ => None,
    };
    sh.ks.set(ex.db, key, val, expire_at, ex.now);
    if let Some(t) = expire_at {
        // An absolute time already past: the key is set and gone at once, as in Valkey.
        if t <= ex.now {
            sh.ks.remove(ex.db, key, 0);
        }
    }
    if !get {
        r.ok();
    }
    Ok(())
}

pub fn setnx(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    if sh.ks.get(ex.db, &a[1], ex.now).is_some() {
        r.int(0);
    } else {
        sh.ks.set(ex.db, &a[1], &a[2], None, ex.now);
        r.int(1);
    }
    Ok(())
}

fn set_with_ttl(
    sh: &mut Shard,
    ex: &Exec,
    a: &[Bytes],
    r: &mut Reply,
    unit: u64,
    cmd: &'static str,
) -> CmdResult {
    let v = int(&a[2])?;
    if v <= 0 {
        return Err(CmdError::InvalidExpire(cmd));
    }
    let at = (v as u64)
        .checked_mul(unit)
        .and_then(|ms| ms.checked_add(ex.now))
        .filter(|m| *m <= i64::MAX as u64)
        .ok_or(CmdError::InvalidExpire(cmd))?;
    sh.ks.set(ex.db, &a[1], &a[3], Some(at), ex.now);
    r.ok();
    Ok(())
}

pub fn setex(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    set_with_ttl(sh, ex, a, r, 1000, "setex")
}

pub fn psetex(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    set_with_ttl(sh, ex, a, r, 1, "psetex")
}

pub fn getset(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    match sh.ks.get_kind(ex.db, &a[1], ex.now, STRING)? {
        Some(e) => r.bulk(e.value()),
        None => r.null(),
    }
    sh.ks.set(ex.db, &a[1], &a[2], None, ex.now);
    Ok(())
}

pub fn getdel(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    sh.ks.get_kind(ex.db, &a[1], ex.now, STRING)?;
    match sh.ks.remove(ex.db, &a[1], ex.now) {
        Some(e) => r.bulk(e.value()),
        None => r.null(),
    }
    Ok(())
}

pub fn getex(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    let mut ttl = Ttl::Unchanged;
    let mut i = 2;
    while i < a.len() {
        if let Some(at) = parse_ttl_option(a, i, ex.now, "getex")? {
            if ttl != Ttl::Unchanged {
                return Err(CmdError::Syntax);
            }
            ttl = Ttl::At(at);
            i += 2;
        } else if eq(&a[i], "persist") && ttl == Ttl::Unchanged {
            ttl = Ttl::Persist;
            i += 1;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    sh.ks.get_kind(ex.db, &a[1], ex.now, STRING)?;
    let Some(mut e) = sh.ks.get_mut(ex.db, &a[1], ex.now) else {
        r.null();
        return Ok(());
    };
    r.bulk(e.value());
    match ttl {
        Ttl::At(t) if t <= ex.now => {
            drop(e);
            sh.ks.remove(ex.db, &a[1], 0);
        }
        Ttl::At(t) => e.set_expire(Some(t)),
        Ttl::Persist => e.set_expire(None),
        _ => {}
    }
    Ok(())
}

pub fn mget(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    r.array(a.len() - 1);
    for k in &a[1..] {
        // A key of another type reads as missing (Valkey's MGET).
        let hit = sh.ks.get(ex.db, k, ex.now).filter(|e| e.kind() == STRING);
        match hit {
            Some(e) => r.bulk(e.value()),
            None => r.null(),
        }
    }
    Ok(())
}

pub fn mset(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    if a.len().is_multiple_of(2) {
        return Err(CmdError::WrongArity("mset".into()));
    }
    for kv in a[1..].chunks(2) {
        sh.ks.set(ex.db, &kv[0], &kv[1], None, ex.now);
    }
    r.ok();
    Ok(())
}

/// A string may not grow past proto-max-bulk-len (Valkey's checkStringLength).
pub(super) fn check_len(sh: &Shard, len: u64) -> CmdResult {
    if len > sh.settings.proto_max_bulk_len as u64 {
        return Err(CmdError::StringTooLong);
    }
    Ok(())
}

pub fn append(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    let max = sh.settings.proto_max_bulk_len;
    sh.ks.get_kind(ex.db, &a[1], ex.now, STRING)?;
    let appended = match sh.ks.get_mut(ex.db, &a[1], ex.now) {
        Some(mut e) => {
            let total = e.value().len() + a[2].len();
            if total > max {
                return Err(CmdError::StringTooLong);
            }
            let mut rebuilt =
                crate::store::Entry::build(e.key(), &[e.value(), &a[2]], e.expire_at());
            rebuilt.touch(ex.now / 1000);
            rebuilt.mark_raw();
            *e = rebuilt;
            Some(total)
        }
        None => None,
    };
    let new_len = match appended {
        Some(total) => total,
        None => {
            sh.ks.set(ex.db, &a[1], &a[2], None, ex.now);
            a[2].len()
        }
    };
    r.int(new_len as i64);
    Ok(())
}

pub fn strlen(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    r.int(
        sh.ks
            .get_kind(ex.db, &a[1], ex.now, STRING)?
            .map_or(0, |e| e.value().len()) as i64,
    );
    Ok(())
}

fn incr_by(sh: &mut Shard, ex: &Exec, key: &[u8], by: i64, r: &mut Reply) -> CmdResult {
    // One lookup reads the value and the expiry the new value keeps.
    let (cur, expire_at) = match sh.ks.get_kind(ex.db, key, ex.now, STRING)? {
        Some(e) => (
            super::args::parse_i64_strict(e.value()).ok_or(CmdError::NotInteger)?,
            e.expire_at(),
        ),
        None => (0, None),
    };
    let next = cur.checked_add(by).ok_or(CmdError::Overflow)?;
    sh.ks.set(
        ex.db,
        key,
        itoa::Buffer::new().format(next).as_bytes(),
        expire_at,
        ex.now,
    );
    r.int(next);
    Ok(())
}

pub fn incr(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    incr_by(sh, ex, &a[1], 1, r)
}

pub fn decr(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    incr_by(sh, ex, &a[1], -1, r)
}

pub fn incrby(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    incr_by(sh, ex, &a[1], int(&a[2])?, r)
}

pub fn decrby(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    let by = int(&a[2])?;
    if by == i64::MIN {
        return Err(CmdError::other("ERR decrement would overflow"));
    }
    incr_by(sh, ex, &a[1], -by, r)
}

pub fn incrbyfloat(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    let by = float(&a[2])?;
    let (cur, expire_at) = match sh.ks.get_kind(ex.db, &a[1], ex.now, STRING)? {
        Some(e) => (float(e.value())?, e.expire_at()),
        None => (0.0, None),
    };
    let next = cur + by;
    if !next.is_finite() {
        return Err(CmdError::IncrNanOrInf);
    }
    // Valkey's "human friendly" form: fixed point, no exponent, no trailing zeros; Rust's Display for f64
    // prints exactly that (shortest round-trip digits, never an exponent).
    let text = format!("{next}").into_bytes();
    sh.ks.set(ex.db, &a[1], &text, expire_at, ex.now);
    r.bulk(&text);
    Ok(())
}

pub fn getrange(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    let (mut start, mut end) = (int(&a[2])?, int(&a[3])?);
    let Some(e) = sh.ks.get_kind(ex.db, &a[1], ex.now, STRING)? else {
        r.bulk(b"");
        return Ok(());
    };
    let v = e.value();
    let len = v.len() as i64;
    if start < 0 && end < 0 && start > end {
        r.bulk(b"");
        return Ok(());
    }
    if start < 0 {
        start += len;
    }
    if end < 0 {
        end += len;
    }
    start = start.max(0);
    end = end.max(0);
    if end >= len {
        end = len - 1;
    }
    if start > end || len == 0 {
        r.bulk(b"");
    } else {
        r.bulk(&v[start as usize..=end as usize]);
    }
    Ok(())
}

pub fn setrange(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    let offset = int(&a[2])?;
    if offset < 0 {
        return Err(CmdError::OffsetOutOfRange);
    }
    let offset = offset as usize;
    let patch = &a[3];
    let cur_len = sh
        .ks
        .get_kind(ex.db, &a[1], ex.now, STRING)?
        .map(|e| e.value().len());
    if patch.is_empty() {
        r.int(cur_len.unwrap_or(0) as i64);
        return Ok(());
    }
    check_len(sh, offset as u64 + patch.len() as u64)?;
    let new_len = cur_len.unwrap_or(0).max(offset + patch.len());
    let existed = cur_len.is_some();
    if existed {
        let mut e = sh.ks.get_mut(ex.db, &a[1], ex.now).expect("checked above");
        if e.value().len() >= offset + patch.len() {
            e.value_mut()[offset..offset + patch.len()].copy_from_slice(patch);
        } else {
            let mut v = e.value().to_vec();
            v.resize(new_len, 0);
            v[offset..offset + patch.len()].copy_from_slice(patch);
            let exp = e.expire_at();
            e.set_value(&v, exp);
        }
        e.mark_raw();
    } else {
        let mut v = vec![0u8; new_len];
        v[offset..].copy_from_slice(patch);
        sh.ks.set_raw(ex.db, &a[1], &v, None, ex.now);
    }
    r.int(new_len as i64);
    Ok(())
}

/// LCS over two values already fetched (the keys may live on two shards; the caller gathers them).
pub fn lcs(a: &[u8], b: &[u8], opts: &[Bytes], r: &mut Reply) -> CmdResult {
    let (mut want_len, mut want_idx, mut with_len, mut min_len) = (false, false, false, 0i64);
    let mut i = 0;
    while i < opts.len() {
        let o = &opts[i];
        if eq(o, "len") {
            want_len = true;
        } else if eq(o, "idx") {
            want_idx = true;
        } else if eq(o, "withmatchlen") {
            with_len = true;
        } else if eq(o, "minmatchlen") && i + 1 < opts.len() {
            min_len = int(&opts[i + 1])?.max(0);
            i += 1;
        } else {
            return Err(CmdError::Syntax);
        }
        i += 1;
    }
    if want_len && want_idx {
        return Err(CmdError::other(
            "ERR If you want both the length and indexes, please just use IDX.",
        ));
    }
    let (n, m) = (a.len(), b.len());
    if (n + 1).checked_mul(m + 1).is_none_or(|c| c > 1 << 30) {
        return Err(CmdError::other(
            "ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len",
        ));
    }
    // dp[i][j] = LCS length of a[..i] and b[..j].
    let w = m + 1;
    let mut dp = vec![0u32; (n + 1) * w];
    for i in 1..=n {
        for j in 1..=m {
            dp[i * w + j] = if a[i - 1] == b[j - 1] {
                dp[(i - 1) * w + j - 1] + 1
            } else {
                dp[(i - 1) * w + j].max(dp[i * w + j - 1])
            };
        }
    }
    let total = dp[n * w + m] as usize;
    if want_len {
        r.int(total as i64);
        return Ok(());
    }
    // Walk back from the end, collecting the string and (for IDX) the matching ranges, like Valkey.
    let mut out = vec![0u8; total];
    let mut idx = total;
    let (mut i, mut j) = (n, m);
    let mut matches: Vec<((usize, usize), (usize, usize))> = Vec::new();
    let mut cur: Option<((usize, usize), (usize, usize))> = None;
    while i > 0 && j > 0 {
        if a[i - 1] == b[j - 1] {
            idx -= 1;
            out[idx] = a[i - 1];
            match cur.as_mut() {
                Some(((as_, _), (bs, _))) if *as_ == i && *bs == j => {
                    *as_ = i - 1;
                    *bs = j - 1;
                }
                _ => {
                    if let Some(c) = cur.take() {
                        matches.push(c);
                    }
                    cur = Some(((i - 1, i - 1), (j - 1, j - 1)));
                }
            }
            i -= 1;
            j -= 1;
        } else if dp[(i - 1) * w + j] > dp[i * w + j - 1] {
            i -= 1;
        } else {
            j -= 1;
        }
    }
    if let Some(c) = cur.take() {
        matches.push(c);
    }
    if !want_idx {
        r.bulk(&out);
        return Ok(());
    }
    let kept: Vec<_> = matches
        .into_iter()
        .filter(|((s, e), _)| (e - s + 1) as i64 >= min_len)
        .collect();
    r.map(2);
    r.bulk(b"matches");
    r.array(kept.len());
    for ((as_, ae), (bs, be)) in kept {
        r.array(if with_len { 3 } else { 2 });
        r.array(2);
        r.int(as_ as i64);
        r.int(ae as i64);
        r.array(2);
        r.int(bs as i64);
        r.int(be as i64);
        if with_len {
            r.int((ae - as_ + 1) as i64);
        }
    }
    r.bulk(b"len");
    r.int(total as i64);
    Ok(())
}
