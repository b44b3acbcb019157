//! List commands on one key (Valkey's replies and errors). LMOVE, RPOPLPUSH and LMPOP, whose keys may live
//! on several shards, are in `setops.rs`;
//! across shards they run over gathered copies (server/gathered.rs).

use super::args::{eq, int};
use super::coll::{count_arg, drop_if_empty, index_range, read, write};
use super::exec::Exec;
use super::{CmdError, CmdResult};
use crate::resp::Reply;
use crate::shard::Shard;
use crate::store::types::{Coll, List, LIST};
use bytes::Bytes;

fn new_list(_: &crate::store::types::Limits) -> Coll {
    Coll::List(List::default())
}

fn list(c: Option<&Coll>) -> Option<&List> {
    match c {
        Some(Coll::List(l)) => Some(l),
        _ => None,
    }
}

pub fn list_mut(c: Option<&mut Coll>) -> &mut List {
    match c {
        Some(Coll::List(l)) => l,
        _ => unreachable!("checked to be a list"),
    }
}

fn push(
    sh: &mut Shard,
    ex: &Exec,
    a: &[Bytes],
    r: &mut Reply,
    left: bool,
    create: bool,
) -> CmdResult {
    let lim = sh.ks.limits;
    let make: Option<&dyn Fn(&crate::store::types::Limits) -> Coll> =
        if create { Some(&new_list) } else { None };
    let Some(mut e) = write(sh, ex, &a[1], LIST, make)? else {
        r.int(0);
        return Ok(());
    };
    let l = list_mut(e.coll_mut());
    for v in &a[2..] {
        if left {
            l.push_front(v, &lim);
        } else {
            l.push_back(v, &lim);
        }
    }
    r.int(l.len() as i64);
    Ok(())
}

pub fn lpush(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    push(sh, ex, a, r, true, true)
}

pub fn rpush(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    push(sh, ex, a, r, false, true)
}

pub fn lpushx(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    push(sh, ex, a, r, true, false)
}

pub fn rpushx(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    push(sh, ex, a, r, false, false)
}

/// Pops up to `n` elements from one end of the list at `key` (deleting it when emptied).
pub fn pop_n(
    sh: &mut Shard,
    ex: &Exec,
    key: &[u8],
    left: bool,
    n: usize,
) -> Result<Vec<Vec<u8>>, CmdError> {
    let lim = sh.ks.limits;
    let Some(mut e) = write(sh, ex, key, LIST, None)? else {
        return Ok(Vec::new());
    };
    let l = list_mut(e.coll_mut());
    let mut out = Vec::with_capacity(n.min(l.len()));
    while out.len() < n {
        match if left { l.pop_front() } else { l.pop_back() } {
            Some(v) => out.push(v),
            None => break,
        }
    }
    l.shrunk(&lim);
    drop(e);
    drop_if_empty(sh, ex, key);
    Ok(out)
}

fn pop(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply, left: bool) -> CmdResult {
    if a.len() > 3 {
        return Err(CmdError::WrongArity(
            String::from_utf8_lossy(&a[0]).to_lowercase(),
        ));
    }
    let count = match a.get(2) {
        Some(c) => Some(count_arg(c)?),
        None => None,
    };
    if read(sh, ex, &a[1], LIST)?.is_none() {
        match count {
            Some(_) => r.null_array(),
            None => r.null(),
        }
        return Ok(());
    }
    if count == Some(0) {
        // Valkey: an empty array, and nothing written.
        r.array(0);
        return Ok(());
    }
    let got = pop_n(sh, ex, &a[1], left, count.unwrap_or(1))?;
    match count {
        None => r.bulk(&got[0]),
        Some(_) => {
            r.array(got.len());
            got.iter().for_each(|v| r.bulk(v));
        }
    }
    Ok(())
}

pub fn lpop(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    pop(sh, ex, a, r, true)
}

pub fn rpop(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    pop(sh, ex, a, r, false)
}

pub fn llen(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    r.int(list(read(sh, ex, &a[1], LIST)?).map_or(0, |l| l.len()) as i64);
    Ok(())
}

pub fn lrange(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    let (start, end) = (int(&a[2])?, int(&a[3])?);
    let Some(l) = list(read(sh, ex, &a[1], LIST)?) else {
        r.array(0);
        return Ok(());
    };
    match index_range(start, end, l.len()) {
        Some((s, e)) => {
            let items = l.range(s, e);
            // One growth of the reply for the whole range (a bulk header is at most 15 bytes).
            r.reserve(items.iter().map(|v| v.len() + 15).sum::<usize>() + 15);
            r.array(items.len());
            items.iter().for_each(|v| r.bulk(v));
        }
        None => r.array(0),
    }
    Ok(())
}

fn resolve(i: i64, len: usize) -> Option<usize> {
    let i = if i < 0 { i + len as i64 } else { i };
    (0..len as i64).contains(&i).then_some(i as usize)
}

pub fn lindex(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    let i = int(&a[2])?;
    match list(read(sh, ex, &a[1], LIST)?).and_then(|l| resolve(i, l.len()).and_then(|i| l.get(i)))
    {
        Some(v) => r.bulk(v),
        None => r.null(),
    }
    Ok(())
}

pub fn lset(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    let i = int(&a[2])?;
    let Some(l) = list(read(sh, ex, &a[1], LIST)?) else {
        return Err(CmdError::NoSuchKey);
    };
    let Some(i) = resolve(i, l.len()) else {
        return Err(CmdError::other("ERR index out of range"));
    };
    let lim = sh.ks.limits;
    let mut e = write(sh, ex, &a[1], LIST, None)?.expect("checked");
    list_mut(e.coll_mut()).set(i, &a[3], &lim);
    r.ok();
    Ok(())
}

pub fn linsert(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    let after = if eq(&a[2], "after") {
        true
    } else if eq(&a[2], "before") {
        false
    } else {
        return Err(CmdError::Syntax);
    };
    let Some(l) = list(read(sh, ex, &a[1], LIST)?) else {
        r.int(0);
        return Ok(());
    };
    let Some(at) = l.iter().position(|v| v == &a[3][..]) else {
        r.int(-1);
        return Ok(());
    };
    let lim = sh.ks.limits;
    let mut e = write(sh, ex, &a[1], LIST, None)?.expect("checked");
    let l = list_mut(e.coll_mut());
    l.insert(at + after as usize, &a[4], &lim);
    r.int(l.len() as i64);
    Ok(())
}

pub fn lrem(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    let count = int(&a[2])?;
    let Some(l) = list(read(sh, ex, &a[1], LIST)?) else {
        r.int(0);
        return Ok(());
    };
    let hits: Vec<usize> = l
        .iter()
        .enumerate()
        .filter(|(_, v)| *v == &a[3][..])
        .map(|(i, _)| i)
        .collect();
    let take: Vec<usize> = match count {
        0 => hits,
        c if c > 0 => hits.into_iter().take(c as usize).collect(),
        c => hits
            .into_iter()
            .rev()
            .take(c.unsigned_abs() as usize)
            .collect(),
    };
    if take.is_empty() {
        r.int(0);
        return Ok(());
    }
    let lim = sh.ks.limits;
    let mut e = write(sh, ex, &a[1], LIST, None)?.expect("checked");
    let l = list_mut(e.coll_mut());
    let mut sorted = take.clone();
    sorted.sort_unstable();
    for i in sorted.iter().rev() {
        l.remove(*i);
    }
    l.shrunk(&lim);
    drop(e);
    drop_if_empty(sh, ex, &a[1]);
    r.int(take.len() as i64);
    Ok(())
}

pub fn ltrim(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    let (start, end) = (int(&a[2])?, int(&a[3])?);
    let Some(l) = list(read(sh, ex, &a[1], LIST)?) else {
        r.ok();
        return Ok(());
    };
    let keep = index_range(start, end, l.len());
    if keep == Some((0, l.len())) {
        r.ok();
        return Ok(());
    }
    let lim = sh.ks.limits;
    let mut e = write(sh, ex, &a[1], LIST, None)?.expect("checked");
    let l = list_mut(e.coll_mut());
    match keep {
        Some((s, en)) => l.keep(s, en),
        None => l.keep(0, 0),
    }
    l.shrunk(&lim);
    drop(e);
    drop_if_empty(sh, ex, &a[1]);
    r.ok();
    Ok(())
}

/// LPOS key element [RANK rank] [COUNT num-matches] [MAXLEN len].
pub fn lpos(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    let (mut rank, mut count, mut maxlen) = (1i64, None, 0usize);
    let mut i = 3;
    while i < a.len() {
        let v = a.get(i + 1).ok_or(CmdError::Syntax)?;
        if eq(&a[i], "rank") {
            rank = int(v)?;
            if rank == i64::MIN {
                return Err(CmdError::other(
                    "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807",
                ));
            }
            if rank == 0 {
                return Err(CmdError::other(
                    "ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list",
                ));
            }
        } else if eq(&a[i], "count") {
            let c = int(v)?;
            if c < 0 {
                return Err(CmdError::other("ERR COUNT can't be negative"));
            }
            count = Some(c as usize);
        } else if eq(&a[i], "maxlen") {
            let m = int(v)?;
            if m < 0 {
                return Err(CmdError::other("ERR MAXLEN can't be negative"));
            }
            maxlen = m as usize;
        } else {
            return Err(CmdError::Syntax);
        }
        i += 2;
    }
    let Some(l) = list(read(sh, ex, &a[1], LIST)?) else {
        match count {
            Some(_) => r.array(0),
            None => r.null(),
        }
        return Ok(());
    };
    let len = l.len();
    let limit = if maxlen == 0 { len } else { maxlen.min(len) };
    let want = match count {
        Some(0) => usize::MAX,
        Some(c) => c,
        None => 1,
    };
    let mut skip = rank.unsigned_abs() as usize - 1;
    let mut found = Vec::new();
    let mut visit = |idx: usize, v: &[u8]| {
        if v == &a[2][..] {
            if skip > 0 {
                skip -= 1;
            } else {
                found.push(idx);
            }
        }
        found.len() < want
    };
    if rank > 0 {
        for (idx, v) in l.iter().enumerate().take(limit) {
            if !visit(idx, v) {
                break;
            }
        }
    } else {
        for (k, v) in l.iter().rev().enumerate().take(limit) {
            if !visit(len - 1 - k, v) {
                break;
            }
        }
    }
    match count {
        Some(_) => {
            r.array(found.len());
            found.iter().for_each(|i| r.int(*i as i64));
        }
        None => match found.first() {
            Some(i) => r.int(*i as i64),
            None => r.null(),
        },
    }
    Ok(())
}
