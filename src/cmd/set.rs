//! Set commands on one key (Valkey's replies and errors). The multi-key ones (SMOVE, SINTER and the rest),
//! whose keys may live on several shards, are in `setops.rs`;
//! across shards they run over gathered copies (server/gathered.rs).

use super::coll::{
    count_arg, drop_if_empty, random_choice, read, remove_items, scan_args, scan_reply, write,
};
use super::exec::Exec;
use super::{CmdError, CmdResult};
use crate::resp::Reply;
use crate::shard::Shard;
use crate::store::types::{Coll, Set, SET};
use bytes::Bytes;

pub fn set_of(c: Option<&Coll>) -> Option<&Set> {
    match c {
        Some(Coll::Set(s)) => Some(s),
        _ => None,
    }
}

pub fn set_mut(c: Option<&mut Coll>) -> &mut Set {
    match c {
        Some(Coll::Set(s)) => s,
        _ => unreachable!("checked to be a set"),
    }
}

pub fn sadd(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    let lim = sh.ks.limits;
    let (first, hint) = (a[2].clone(), a.len() - 2);
    let make = move |l: &crate::store::types::Limits| Coll::Set(Set::for_first(&first, hint, l));
    let mut e = write(sh, ex, &a[1], SET, Some(&make))?.expect("made");
    let s = set_mut(e.coll_mut());
    let n = a[2..].iter().filter(|m| s.add(m, &lim)).count();
    r.int(n as i64);
    Ok(())
}

pub fn srem(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    let n = remove_items(
        sh,
        ex,
        &a[1],
        SET,
        &a[2..],
        |c, m| set_of(Some(c)).is_some_and(|s| s.contains(m)),
        |c, m| set_mut(Some(c)).remove(m),
    )?;
    r.int(n);
    Ok(())
}

pub fn smembers(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    match set_of(read(sh, ex, &a[1], SET)?) {
        Some(s) => {
            r.set(s.len());
            s.each(|m| r.bulk(m));
        }
        None => r.set(0),
    }
    Ok(())
}

pub fn sismember(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    let has = set_of(read(sh, ex, &a[1], SET)?).is_some_and(|s| s.contains(&a[2]));
    r.int(has as i64);
    Ok(())
}

pub fn smismember(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    let s = set_of(read(sh, ex, &a[1], SET)?);
    r.array(a.len() - 2);
    for m in &a[2..] {
        r.int(s.is_some_and(|s| s.contains(m)) as i64);
    }
    Ok(())
}

pub fn scard(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    r.int(set_of(read(sh, ex, &a[1], SET)?).map_or(0, |s| s.len()) as i64);
    Ok(())
}

/// SPOP key [count]. Logged as the SREM of the members it popped (table flag LOG_REWRITE), so replicas
/// and the WAL remove exactly those, whatever their own random choice would be.
pub fn spop(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    if a.len() > 3 {
        return Err(CmdError::Syntax);
    }
    let count = match a.get(2) {
        Some(c) => Some(count_arg(c)?),
        None => None,
    };
    let seed = sh.rand_below(usize::MAX) as u64;
    let Some(s) = set_of(read(sh, ex, &a[1], SET)?) else {
        match count {
            Some(_) => r.set(0),
            None => r.null(),
        }
        return Ok(());
    };
    let victims: Vec<Vec<u8>> = match count {
        None => vec![s.random(seed).expect("non-empty")],
        Some(0) => {
            r.set(0);
            return Ok(());
        }
        Some(n) if n >= s.len() => s.members(),
        Some(n) => random_choice(
            s.len(),
            n as i64,
            seed,
            |r| s.random(r).expect("non-empty"),
            |m| m,
            || s.members(),
        ),
    };
    let mut e = write(sh, ex, &a[1], SET, None)?.expect("checked");
    let s = set_mut(e.coll_mut());
    for m in &victims {
        s.remove(m);
    }
    drop(e);
    drop_if_empty(sh, ex, &a[1]);
    if sh.ks.hooks.capture {
        let mut rw: Vec<Vec<u8>> = vec![b"SREM".to_vec(), a[1].to_vec()];
        rw.extend(victims.iter().cloned());
        sh.ks.hooks.rewrite = Some(rw);
    }
    match count {
        None => r.bulk(&victims[0]),
        Some(_) => {
            r.set(victims.len());
            victims.iter().for_each(|m| r.bulk(m));
        }
    }
    Ok(())
}

pub fn srandmember(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    if a.len() > 3 {
        return Err(CmdError::Syntax);
    }
    let count = super::coll::random_count(a.get(2))?;
    let seed = sh.rand_below(usize::MAX) as u64;
    let Some(s) = set_of(read(sh, ex, &a[1], SET)?) else {
        match count {
            Some(_) => r.array(0),
            None => r.null(),
        }
        return Ok(());
    };
    match count {
        None => r.bulk(&s.random(seed).expect("non-empty")),
        Some(n) => {
            let picks = random_choice(
                s.len(),
                n,
                seed,
                |r| s.random(r).expect("non-empty"),
                |m| m,
                || s.members(),
            );
            r.array(picks.len());
            picks.iter().for_each(|m| r.bulk(m));
        }
    }
    Ok(())
}

pub fn sscan(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    let sa = scan_args(a, false)?;
    let Some(s) = set_of(read(sh, ex, &a[1], SET)?) else {
        scan_reply(r, &sa, &mut |_, _| 0);
        return Ok(());
    };
    scan_reply(r, &sa, &mut |c, f| s.scan_step(c, |m| f(m, None)));
    Ok(())
}
