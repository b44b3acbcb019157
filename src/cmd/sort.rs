//! SORT and SORT_RO without I/O: the options, the keys a BY or GET pattern names for an element, the
//! reads one shard answers (the source collection, the values of pattern keys it owns), and the order.
//! The command itself runs in server/sort.rs, which gathers pattern values from whichever shards own
//! their keys (a pattern can name any key) under one multi-shard transaction. Semantics are Valkey's
//! (sort.c): numeric order by default with ties broken by the element's bytes, ALPHA in byte order, a BY
//! pattern without `*` skips sorting, LIMIT's window, GET `#` for the element, `key->field` for a hash
//! field, and a missing BY value sorting as 0 (or first, with ALPHA).

use super::args::{eq, int};
use super::CmdError;
use crate::shard::Shard;
use crate::store::types::{Coll, HASH, LIST, SET, STRING};
use bytes::Bytes;
use std::cmp::Ordering;

#[derive(Debug, Default, Clone)]
pub struct SortArgs {
    pub desc: bool,
    pub alpha: bool,
    /// LIMIT offset count, as given.
    pub limit: Option<(i64, i64)>,
    pub store: Option<Bytes>,
    /// A BY pattern with a `*` (None when absent or when it skips sorting).
    pub by: Option<Bytes>,
    /// BY without `*`: keep the collection's order.
    pub dontsort: bool,
    pub gets: Vec<Bytes>,
}

impl SortArgs {
    /// Whether the command reads keys other than its source (so may need every shard).
    pub fn reads_patterns(&self) -> bool {
        self.by.is_some() || self.gets.iter().any(|g| &g[..] != b"#")
    }
}

/// The options after the key; `readonly` (SORT_RO) refuses STORE as a syntax error, as in Valkey.
pub fn parse(a: &[Bytes], readonly: bool) -> Result<SortArgs, CmdError> {
    let mut s = SortArgs::default();
    let mut j = 2;
    while j < a.len() {
        let left = a.len() - j - 1;
        let w = &a[j];
        if eq(w, "asc") {
            s.desc = false;
        } else if eq(w, "desc") {
            s.desc = true;
        } else if eq(w, "alpha") {
            s.alpha = true;
        } else if eq(w, "limit") && left >= 2 {
            s.limit = Some((int(&a[j + 1])?, int(&a[j + 2])?));
            j += 2;
        } else if !readonly && eq(w, "store") && left >= 1 {
            s.store = Some(a[j + 1].clone());
            j += 1;
        } else if eq(w, "by") && left >= 1 {
            if a[j + 1].contains(&b'*') {
                s.by = Some(a[j + 1].clone());
                s.dontsort = false;
            } else {
                s.by = None;
                s.dontsort = true;
            }
            j += 1;
        } else if eq(w, "get") && left >= 1 {
            s.gets.push(a[j + 1].clone());
            j += 1;
        } else {
            return Err(CmdError::Syntax);
        }
        j += 1;
    }
    Ok(s)
}

/// What a pattern names for one element.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Named {
    /// `#`: the element itself.
    Elem,
    /// Nothing (a GET pattern without `*`).
    Nothing,
    /// A string key, or a hash key and field (`key->field`).
    Key(Vec<u8>, Option<Vec<u8>>),
}

/// Valkey's substitution: the first `*` becomes the element; `->field` after it (non-empty) names a
/// hash field.
pub fn resolve(pattern: &[u8], elem: &[u8]) -> Named {
    if pattern == b"#" {
        return Named::Elem;
    }
    let Some(star) = pattern.iter().position(|&c| c == b'*') else {
        return Named::Nothing;
    };
    let after = &pattern[star + 1..];
    let arrow = after
        .windows(2)
        .position(|w| w == b"->")
        .filter(|&i| i + 2 < after.len());
    let (post, field) = match arrow {
        Some(i) => (&after[..i], Some(after[i + 2..].to_vec())),
        None => (after, None),
    };
    let mut key = Vec::with_capacity(pattern.len() + elem.len());
    key.extend_from_slice(&pattern[..star]);
    key.extend_from_slice(elem);
    key.extend_from_slice(post);
    Named::Key(key, field)
}

/// The value a resolved key names on the shard that owns it: a string's bytes, or a hash's field; None
/// for a missing key, a missing field or another type.
pub fn lookup(
    sh: &mut Shard,
    db: usize,
    key: &[u8],
    field: Option<&[u8]>,
    now: u64,
) -> Option<Vec<u8>> {
    let e = sh.ks.get(db, key, now)?;
    match (field, e.kind()) {
        (None, STRING) => Some(e.value().to_vec()),
        (Some(f), HASH) => match e.coll() {
            Some(Coll::Hash(h)) => h.get(f).map(<[u8]>::to_vec),
            _ => None,
        },
        _ => None,
    }
}

/// The source's elements, on its shard: a list in order, a set in iteration order, a sorted set by
/// score (the order BY without `*` keeps). A missing key is empty; another type is WRONGTYPE.
pub fn source(
    sh: &mut Shard,
    db: usize,
    key: &[u8],
    now: u64,
) -> Result<(u8, Vec<Vec<u8>>), CmdError> {
    let Some(e) = sh.ks.get(db, key, now) else {
        return Ok((LIST, Vec::new()));
    };
    let kind = e.kind();
    let out = match e.coll() {
        Some(Coll::List(l)) => l.iter().map(<[u8]>::to_vec).collect(),
        Some(Coll::Set(s)) => {
            let mut v = Vec::with_capacity(s.len());
            s.each(|m| v.push(m.to_vec()));
            v
        }
        Some(Coll::ZSet(z)) => z.iter_from(0).map(|(m, _)| m.to_vec()).collect(),
        _ => return Err(CmdError::WrongType),
    };
    Ok((kind, out))
}

/// LIMIT's window over `len` elements as Valkey computes it: the half-open range of positions kept.
pub fn window(limit: Option<(i64, i64)>, len: usize) -> std::ops::Range<usize> {
    let n = len as i64;
    let (start, count) = limit.unwrap_or((0, -1));
    let mut start = start.clamp(0, n);
    let count = count.clamp(-1, n);
    let mut end = if count < 0 { n - 1 } else { start + count - 1 };
    if start >= n {
        start = n - 1;
        end = n - 2;
    }
    end = end.min(n - 1);
    if end < start {
        return 0..0;
    }
    start as usize..end as usize + 1
}

/// A number as strtod reads a whole string (what SORT compares without ALPHA); None if it is not one,
/// or is NaN, or overflows.
fn score(v: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(v).ok()?.trim_start();
    let f: f64 = s.parse().ok()?;
    let infinite_literal = s
        .trim_start_matches(['+', '-'])
        .get(..3)
        .is_some_and(|p| p.eq_ignore_ascii_case("inf"));
    (!f.is_nan() && (f.is_finite() || infinite_literal)).then_some(f)
}

/// Orders `elems` (of a collection of type `kind`) and keeps LIMIT's window. `by` holds each element's
/// BY value when sorting by a pattern.
pub fn order(
    kind: u8,
    mut elems: Vec<Vec<u8>>,
    by: Option<Vec<Option<Vec<u8>>>>,
    s: &SortArgs,
) -> Result<Vec<Vec<u8>>, CmdError> {
    // A set kept unsorted is stored sorted (Valkey: deterministic for replication).
    let dontsort = s.dontsort && !(kind == SET && s.store.is_some());
    let alpha = s.alpha || (s.dontsort && kind == SET && s.store.is_some());
    if dontsort {
        if s.desc && kind != SET {
            elems.reverse();
        }
        let w = window(s.limit, elems.len());
        return Ok(elems.drain(w).collect());
    }
    let by = by.filter(|_| s.by.is_some() && !(s.dontsort && kind == SET));
    let mut items: Vec<(Vec<u8>, Option<Vec<u8>>, f64)> = Vec::with_capacity(elems.len());
    let mut bad = false;
    for (i, e) in elems.into_iter().enumerate() {
        let byval = by.as_ref().map(|b| b[i].clone());
        let mut sc = 0.0;
        if !alpha {
            let v = match &byval {
                Some(Some(v)) => Some(v.as_slice()),
                Some(None) => None,
                None => Some(e.as_slice()),
            };
            if let Some(v) = v {
                match score(v) {
                    Some(f) => sc = f,
                    None => bad = true,
                }
            }
        }
        items.push((e, byval.flatten(), sc));
    }
    if bad {
        return Err(CmdError::other(
            "ERR One or more scores can't be converted into double",
        ));
    }
    let by_pattern = by.is_some();
    items.sort_by(|a, b| {
        let c = if !alpha {
            a.2.partial_cmp(&b.2)
                .unwrap_or(Ordering::Equal)
                .then_with(|| a.0.cmp(&b.0))
        } else if by_pattern {
            a.1.cmp(&b.1)
        } else {
            a.0.cmp(&b.0)
        };
        if s.desc {
            c.reverse()
        } else {
            c
        }
    });
    let w = window(s.limit, items.len());
    Ok(items.drain(w).map(|(e, _, _)| e).collect())
}

/// SORT's keys for the command table: the source, and the last STORE destination (Valkey's
/// sortGetKeys: LIMIT skips two arguments, GET and BY one).
pub fn keys(a: &[Bytes]) -> Vec<usize> {
    let mut store = None;
    let mut i = 2;
    while i < a.len() {
        if eq(&a[i], "limit") {
            i += 2;
        } else if eq(&a[i], "get") || eq(&a[i], "by") {
            i += 1;
        } else if eq(&a[i], "store") && i + 1 < a.len() {
            store = Some(i + 1);
        }
        i += 1;
    }
    std::iter::once(1).chain(store).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<Bytes> {
        s.split(' ')
            .map(|w| Bytes::copy_from_slice(w.as_bytes()))
            .collect()
    }

    fn v(s: &[&str]) -> Vec<Vec<u8>> {
        s.iter().map(|x| x.as_bytes().to_vec()).collect()
    }

    #[test]
    fn patterns_substitute_the_first_star_and_name_hash_fields() {
        assert_eq!(resolve(b"#", b"3"), Named::Elem);
        assert_eq!(resolve(b"fixed", b"3"), Named::Nothing);
        assert_eq!(resolve(b"w_*", b"3"), Named::Key(b"w_3".to_vec(), None));
        assert_eq!(
            resolve(b"o_*->name", b"3"),
            Named::Key(b"o_3".to_vec(), Some(b"name".to_vec()))
        );
        // An empty field is no dereference; only the first star is substituted.
        assert_eq!(resolve(b"o_*->", b"3"), Named::Key(b"o_3->".to_vec(), None));
        assert_eq!(resolve(b"a*b*", b"x"), Named::Key(b"axb*".to_vec(), None));
    }

    #[test]
    fn options_parse_as_valkey_and_store_is_refused_by_sort_ro() {
        let s = parse(
            &args("SORT k BY w_* LIMIT 1 2 GET # GET o_*->f DESC ALPHA STORE d"),
            false,
        )
        .unwrap();
        assert!(s.desc && s.alpha && !s.dontsort);
        assert_eq!(s.limit, Some((1, 2)));
        assert_eq!(s.store.as_deref(), Some(&b"d"[..]));
        assert_eq!(s.gets.len(), 2);
        assert!(parse(&args("SORT k BY nosort"), false).unwrap().dontsort);
        assert!(matches!(
            parse(&args("SORT k STORE d"), true),
            Err(CmdError::Syntax)
        ));
        assert!(matches!(
            parse(&args("SORT k LIMIT 1"), false),
            Err(CmdError::Syntax)
        ));
        assert!(parse(&args("SORT k LIMIT x 1"), false).is_err());
        assert_eq!(
            keys(&args("SORT k BY store GET store LIMIT 0 1 STORE dst")),
            vec![1, 10]
        );
        assert_eq!(
            keys(&args("SORT abc store invalid store stillbad store def")),
            vec![1, 7]
        );
    }

    #[test]
    fn numeric_and_alpha_orders_and_limit_windows_are_valkeys() {
        let s = SortArgs::default();
        assert_eq!(
            order(LIST, v(&["3", "1", "2", "1.5", "-inf"]), None, &s).unwrap(),
            v(&["-inf", "1", "1.5", "2", "3"])
        );
        assert!(order(LIST, v(&["1", "x"]), None, &s).is_err());
        let alpha = SortArgs {
            alpha: true,
            desc: true,
            ..Default::default()
        };
        assert_eq!(
            order(SET, v(&["b", "a", "c"]), None, &alpha).unwrap(),
            v(&["c", "b", "a"])
        );
        // Ties in numeric order go by the element's bytes.
        assert_eq!(
            order(LIST, v(&["01", "1", "1.0"]), None, &s).unwrap(),
            v(&["01", "1", "1.0"])
        );
        // BY values: a missing one sorts as 0.
        let by = SortArgs {
            by: Some(Bytes::from_static(b"w_*")),
            ..Default::default()
        };
        let vals = Some(vec![Some(b"5".to_vec()), None, Some(b"-1".to_vec())]);
        assert_eq!(
            order(LIST, v(&["a", "b", "c"]), vals, &by).unwrap(),
            v(&["c", "b", "a"])
        );
        // LIMIT: Valkey's clamping.
        assert_eq!(window(Some((1, 2)), 5), 1..3);
        assert_eq!(window(Some((-3, 2)), 5), 0..2);
        assert_eq!(window(Some((4, -1)), 5), 4..5);
        assert_eq!(window(Some((9, 2)), 5), 0..0);
        assert_eq!(window(Some((0, 0)), 5), 0..0);
        assert_eq!(window(None, 0), 0..0);
        // BY without a star keeps the order; DESC reverses a list's, not a set's.
        let keep = SortArgs {
            dontsort: true,
            desc: true,
            limit: Some((0, 2)),
            ..Default::default()
        };
        assert_eq!(
            order(LIST, v(&["x", "y", "z"]), None, &keep).unwrap(),
            v(&["z", "y"])
        );
        assert_eq!(
            order(SET, v(&["x", "y", "z"]), None, &keep).unwrap(),
            v(&["x", "y"])
        );
        // ... unless a set is stored: then it is sorted ALPHA, for a deterministic result.
        let keep_store = SortArgs {
            store: Some(Bytes::from_static(b"d")),
            ..keep
        };
        assert_eq!(
            order(SET, v(&["y", "x", "z"]), None, &keep_store).unwrap(),
            v(&["z", "y"])
        );
    }
}
