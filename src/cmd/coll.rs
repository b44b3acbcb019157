//! What every collection command needs: its key's value read or written as the right type (WRONGTYPE
//! otherwise), created on first write, deleted when emptied (no key holds an empty collection), and the
//! shared argument forms (COUNT, SCAN cursors, random picks).

use super::args::{eq, int};
use super::exec::Exec;
use super::CmdError;
use crate::resp::Reply;
use crate::shard::Shard;
use crate::store::glob::glob_match;
use crate::store::types::{Coll, Limits};
use crate::store::{Entry, EntryMut};

/// The collection at `key` if it has type `kind`; None if the key is missing; WRONGTYPE otherwise.
pub fn read<'a>(
    sh: &'a mut Shard,
    ex: &Exec,
    key: &[u8],
    kind: u8,
) -> Result<Option<&'a Coll>, CmdError> {
    Ok(sh
        .ks
        .get_kind(ex.db, key, ex.now, kind)?
        .and_then(|e| e.coll()))
}

/// The entry at `key` for a write, made with `make` if missing (None then, without `make`).
pub fn write<'a>(
    sh: &'a mut Shard,
    ex: &Exec,
    key: &[u8],
    kind: u8,
    make: Option<&dyn Fn(&Limits) -> Coll>,
) -> Result<Option<EntryMut<'a>>, CmdError> {
    let lim = sh.ks.limits;
    let new = make.map(|m| move || Entry::with_coll(key, m(&lim), None));
    let new = new.as_ref().map(|f| f as &dyn Fn() -> Entry);
    Ok(sh.ks.get_mut_kind(ex.db, key, ex.now, kind, new)?)
}

/// Deletes `key` if its collection is empty (after a removal): a `del` event after the command's own.
pub fn drop_if_empty(sh: &mut Shard, ex: &Exec, key: &[u8]) {
    if sh
        .ks
        .peek(ex.db, key, ex.now)
        .and_then(|e| e.coll())
        .is_some_and(|c| c.is_empty())
    {
        sh.ks.remove(ex.db, key, ex.now);
        let ev = &mut sh.ks.hooks.events;
        if ev.on() {
            ev.emptied.push((ex.db, key.to_vec()));
        }
    }
}

/// A positive COUNT argument (LPOP/SPOP style): Valkey's wording when it is negative.
pub fn count_arg(a: &[u8]) -> Result<usize, CmdError> {
    let n = int(a)?;
    if n < 0 {
        return Err(CmdError::other(
            "ERR value is out of range, must be positive",
        ));
    }
    Ok(n as usize)
}

/// Resolves a Valkey index range (negative from the end) over `len` elements: the half-open range, or
/// None when empty.
pub fn index_range(start: i64, end: i64, len: usize) -> Option<(usize, usize)> {
    let len = len as i64;
    let s = if start < 0 {
        (start + len).max(0)
    } else {
        start
    };
    let e = if end < 0 { end + len } else { end.min(len - 1) };
    (s <= e && s < len).then(|| (s as usize, e as usize + 1))
}

/// The options of HSCAN, SSCAN, ZSCAN: `cursor [MATCH pattern] [COUNT n] [NOVALUES]`.
pub struct ScanArgs {
    pub cursor: usize,
    pub pattern: Option<Vec<u8>>,
    pub count: usize,
    pub novalues: bool,
}

pub fn scan_args(a: &[bytes::Bytes], novalues_ok: bool) -> Result<ScanArgs, CmdError> {
    let cursor = std::str::from_utf8(&a[2])
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or(CmdError::other("ERR invalid cursor"))? as usize;
    let mut s = ScanArgs {
        cursor,
        pattern: None,
        count: 10,
        novalues: false,
    };
    let mut i = 3;
    while i < a.len() {
        if eq(&a[i], "match") && i + 1 < a.len() {
            s.pattern = Some(a[i + 1].to_vec());
            i += 2;
        } else if eq(&a[i], "count") && i + 1 < a.len() {
            let c = int(&a[i + 1])?;
            if c < 1 {
                return Err(CmdError::Syntax);
            }
            s.count = c as usize;
            i += 2;
        } else if novalues_ok && (eq(&a[i], "novalues") || eq(&a[i], "noscores")) {
            s.novalues = true;
            i += 1;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    Ok(s)
}

/// One step of a collection's SCAN: visits the elements of the cursor's bucket (name, and value or
/// score when the type has one) and returns the next cursor (0: done).
pub type ScanStep<'a> = dyn FnMut(u64, &mut dyn FnMut(&[u8], Option<&[u8]>)) -> u64 + 'a;

/// Replies to a collection SCAN: steps from the cursor until COUNT elements were visited, the scan is
/// done, or ten steps per COUNT were taken (Valkey's bound). A compact collection is one step, so it is
/// returned whole in one call, as Valkey does; a big one's cursor is its table's reverse-binary cursor
/// (store/segtable.rs), so an element present for the whole scan is returned.
pub fn scan_reply(r: &mut Reply, s: &ScanArgs, step: &mut ScanStep<'_>) {
    let mut out: Vec<(Vec<u8>, Option<Vec<u8>>)> = Vec::new();
    let mut cursor = s.cursor as u64;
    let (mut visited, mut steps) = (0usize, 0usize);
    loop {
        cursor = step(cursor, &mut |k, v| {
            visited += 1;
            if s.pattern.as_ref().is_none_or(|p| glob_match(p, k, false)) {
                out.push((k.to_vec(), v.map(<[u8]>::to_vec)));
            }
        });
        steps += 1;
        if cursor == 0 || visited >= s.count || steps >= s.count.saturating_mul(10) {
            break;
        }
    }
    r.array(2);
    r.bulk(itoa::Buffer::new().format(cursor).as_bytes());
    let n: usize = out
        .iter()
        .map(|(_, v)| 1 + (v.is_some() && !s.novalues) as usize)
        .sum();
    r.array(n);
    for (k, v) in out {
        r.bulk(&k);
        if let (Some(v), false) = (v, s.novalues) {
            r.bulk(&v);
        }
    }
}

/// A random choice of `count` among a collection's `len` elements, Valkey's rules: a positive count gives
/// distinct elements (all of them if it is at least `len`), a negative one |count| elements that may
/// repeat. `draw(r)` is one element chosen with `r` (bounded work: a table's random element walks one
/// segment at most), `key` what makes two elements the same, `all` every element. A small count draws
/// (distinct ones by rejection, Valkey's SRANDMEMBER "case 4": under 1.5 draws per pick since it asks a
/// third of the elements at most), so SRANDMEMBER 5 of a million members never copies the million; only
/// a count of a third of the collection or more takes every element and shuffles a prefix.
pub fn random_choice<T>(
    len: usize,
    count: i64,
    seed: u64,
    draw: impl Fn(u64) -> T,
    key: impl Fn(&T) -> &[u8],
    all: impl FnOnce() -> Vec<T>,
) -> Vec<T> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
    if len == 0 || count == 0 {
        return Vec::new();
    }
    if count < 0 {
        return (0..count.unsigned_abs())
            .map(|_| draw(rng.random()))
            .collect();
    }
    let n = count as usize;
    if n.saturating_mul(3) > len {
        let mut items = all();
        let n = n.min(items.len());
        for i in 0..n {
            let j = rng.random_range(i..items.len());
            items.swap(i, j);
        }
        items.truncate(n);
        return items;
    }
    let mut seen = std::collections::HashSet::with_capacity(n);
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let t = draw(rng.random());
        if seen.insert(key(&t).to_vec()) {
            out.push(t);
        }
    }
    out
}

/// HDEL, SREM, ZREM: removes `items` from the collection at `key` (of type `kind`) and deletes the key
/// when emptied; returns how many were removed. Writes (and so logs) nothing when none is there.
pub fn remove_items(
    sh: &mut Shard,
    ex: &Exec,
    key: &[u8],
    kind: u8,
    items: &[bytes::Bytes],
    has: impl Fn(&Coll, &[u8]) -> bool,
    remove: impl Fn(&mut Coll, &[u8]) -> bool,
) -> Result<i64, CmdError> {
    let Some(c) = read(sh, ex, key, kind)? else {
        return Ok(0);
    };
    if !items.iter().any(|m| has(c, m)) {
        return Ok(0);
    }
    let mut e = write(sh, ex, key, kind, None)?.expect("checked");
    let c = e.coll_mut().expect("a collection");
    let n = items.iter().filter(|m| remove(c, m)).count();
    drop(e);
    drop_if_empty(sh, ex, key);
    Ok(n as i64)
}

/// The count of HRANDFIELD, SRANDMEMBER, ZRANDMEMBER: absent, or an integer whose magnitude Valkey bounds.
pub fn random_count(a: Option<&bytes::Bytes>) -> Result<Option<i64>, CmdError> {
    let Some(c) = a else { return Ok(None) };
    let n = int(c)?;
    if n.unsigned_abs() > (i64::MAX as u64) / 2 {
        return Err(CmdError::other("ERR value is out of range"));
    }
    Ok(Some(n))
}

#[cfg(test)]
mod tests {
    use super::random_choice;
    use std::cell::Cell;

    /// Elements 0..len as their decimal bytes; `draw` picks by `r % len`, and `all` says when it runs.
    fn choose(len: usize, count: i64, copied: &Cell<bool>) -> Vec<Vec<u8>> {
        random_choice(
            len,
            count,
            7,
            |r| (r as usize % len).to_string().into_bytes(),
            |m| m,
            || {
                copied.set(true);
                (0..len).map(|i| i.to_string().into_bytes()).collect()
            },
        )
    }

    #[test]
    fn random_choices_follow_valkeys_rules_and_copy_only_for_large_counts() {
        let copied = Cell::new(false);
        // A few of many: distinct, and the collection is never copied.
        let few = choose(1_000_000, 5, &copied);
        assert_eq!(few.len(), 5);
        assert_eq!(
            few.iter().collect::<std::collections::HashSet<_>>().len(),
            5
        );
        assert!(!copied.get());
        // Negative: that many, repeats allowed, no copy.
        assert_eq!(choose(3, -10, &copied).len(), 10);
        assert!(!copied.get());
        // A third or more: distinct elements out of a copy; at least all of them: every element.
        let most = choose(30, 20, &copied);
        assert!(copied.get());
        assert_eq!(
            most.iter().collect::<std::collections::HashSet<_>>().len(),
            20
        );
        let mut every = choose(30, 100, &copied);
        every.sort();
        let mut want: Vec<Vec<u8>> = (0..30).map(|i: usize| i.to_string().into_bytes()).collect();
        want.sort();
        assert_eq!(every, want);
        assert!(choose(0, 5, &copied).is_empty() && choose(5, 0, &copied).is_empty());
    }
}
