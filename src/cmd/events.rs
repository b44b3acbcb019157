//! The keyspace events of the write commands (notify-keyspace-events), as data beside the command table:
//! the event each key a command wrote gets, in Valkey's names and classes. After a command runs,
//! `after` turns what the keyspace recorded (store/events.rs) into events: the command's event for each
//! key it wrote, in the order first written, then a `del` for each key it emptied. `expired` and `new`
//! are raised by the keyspace itself, as they happen. Commands that move keys between shards or
//! databases (RENAME, MOVE, COPY, MSETNX across shards; server/) raise theirs where they write.
//!
//! A command that took its key for writing but changed nothing (SADD of members already there) still
//! raises its event: the keyspace sees the write, not its effect. Removals that find nothing (SREM,
//! HDEL, ZREM of absent members) write nothing and raise nothing, as in Valkey.

use super::args::eq;
use super::exec::Exec;
use super::table::{Spec, TABLE};
use crate::shard::Shard;
use crate::store::events::{GENERIC, HASH, KEY_MISS, LIST, SET, STRING, ZSET};
use bytes::Bytes;
use std::sync::LazyLock;

type Named = (u32, &'static str);

/// What each written key of a command raises.
#[derive(Clone, Copy)]
pub enum Ev {
    /// This event.
    Each(u32, &'static str),
    /// This event if the key exists after the command, `del` if the command removed it (a STORE form
    /// with an empty result, an EXPIRE in the past).
    OrDel(u32, &'static str),
    /// Events that depend on the arguments and on which key (LMOVE's source and destination).
    By(fn(&[Bytes], &[u8]) -> Vec<Named>),
}

use Ev::{By, Each, OrDel};

static EVENTS: &[(&str, Ev)] = &[
    // strings
    ("set", By(set_events)),
    ("setnx", Each(STRING, "set")),
    (
        "setex",
        By(|_, _| vec![(STRING, "set"), (GENERIC, "expire")]),
    ),
    (
        "psetex",
        By(|_, _| vec![(STRING, "set"), (GENERIC, "expire")]),
    ),
    ("getset", Each(STRING, "set")),
    ("getdel", Each(GENERIC, "del")),
    ("getex", By(getex_events)),
    ("mset", Each(STRING, "set")),
    ("append", Each(STRING, "append")),
    ("incr", Each(STRING, "incrby")),
    ("decr", Each(STRING, "incrby")),
    ("incrby", Each(STRING, "incrby")),
    ("decrby", Each(STRING, "incrby")),
    ("incrbyfloat", Each(STRING, "incrbyfloat")),
    ("setrange", Each(STRING, "setrange")),
    ("setbit", Each(STRING, "setbit")),
    ("bitfield", Each(STRING, "setbit")),
    ("bitop", OrDel(STRING, "set")),
    ("pfadd", Each(STRING, "pfadd")),
    ("pfmerge", Each(STRING, "pfadd")),
    // keys
    ("del", Each(GENERIC, "del")),
    ("unlink", Each(GENERIC, "del")),
    ("expire", OrDel(GENERIC, "expire")),
    ("pexpire", OrDel(GENERIC, "expire")),
    ("expireat", OrDel(GENERIC, "expire")),
    ("pexpireat", OrDel(GENERIC, "expire")),
    ("persist", Each(GENERIC, "persist")),
    ("restore", Each(GENERIC, "restore")),
    // hashes
    ("hset", Each(HASH, "hset")),
    ("hmset", Each(HASH, "hset")),
    ("hsetnx", Each(HASH, "hset")),
    ("hdel", Each(HASH, "hdel")),
    ("hincrby", Each(HASH, "hincrby")),
    ("hincrbyfloat", Each(HASH, "hincrbyfloat")),
    // lists
    ("lpush", Each(LIST, "lpush")),
    ("lpushx", Each(LIST, "lpush")),
    ("rpush", Each(LIST, "rpush")),
    ("rpushx", Each(LIST, "rpush")),
    ("lpop", Each(LIST, "lpop")),
    ("rpop", Each(LIST, "rpop")),
    ("blpop", Each(LIST, "lpop")),
    ("brpop", Each(LIST, "rpop")),
    ("lset", Each(LIST, "lset")),
    ("linsert", Each(LIST, "linsert")),
    ("lrem", Each(LIST, "lrem")),
    ("ltrim", Each(LIST, "ltrim")),
    ("lmove", By(|a, k| lmove_events(a, k, 3))),
    ("blmove", By(|a, k| lmove_events(a, k, 3))),
    ("rpoplpush", By(|a, k| lmove_events(a, k, 0))),
    ("brpoplpush", By(|a, k| lmove_events(a, k, 0))),
    (
        "lmpop",
        By(|a, _| vec![mpop_event(a, 1, ["lpop", "rpop"], LIST)]),
    ),
    (
        "blmpop",
        By(|a, _| vec![mpop_event(a, 2, ["lpop", "rpop"], LIST)]),
    ),
    // sets
    ("sadd", Each(SET, "sadd")),
    ("srem", Each(SET, "srem")),
    ("spop", Each(SET, "spop")),
    (
        "smove",
        By(|a, k| {
            vec![if *k == a[1] {
                (SET, "srem")
            } else {
                (SET, "sadd")
            }]
        }),
    ),
    ("sinterstore", OrDel(SET, "sinterstore")),
    ("sunionstore", OrDel(SET, "sunionstore")),
    ("sdiffstore", OrDel(SET, "sdiffstore")),
    // sorted sets
    ("zadd", By(zadd_events)),
    ("zincrby", Each(ZSET, "zincr")),
    ("zrem", Each(ZSET, "zrem")),
    ("zremrangebyrank", Each(ZSET, "zremrangebyrank")),
    ("zremrangebyscore", Each(ZSET, "zremrangebyscore")),
    ("zremrangebylex", Each(ZSET, "zremrangebylex")),
    ("zpopmin", Each(ZSET, "zpopmin")),
    ("zpopmax", Each(ZSET, "zpopmax")),
    ("bzpopmin", Each(ZSET, "zpopmin")),
    ("bzpopmax", Each(ZSET, "zpopmax")),
    (
        "zmpop",
        By(|a, _| vec![mpop_event(a, 1, ["zpopmin", "zpopmax"], ZSET)]),
    ),
    (
        "bzmpop",
        By(|a, _| vec![mpop_event(a, 2, ["zpopmin", "zpopmax"], ZSET)]),
    ),
    ("zunionstore", OrDel(ZSET, "zunionstore")),
    ("zinterstore", OrDel(ZSET, "zinterstore")),
    ("zdiffstore", OrDel(ZSET, "zdiffstore")),
    ("zrangestore", OrDel(ZSET, "zrangestore")),
];

/// The table's events by command position (`Spec::index`).
static BY_SPEC: LazyLock<Vec<Option<Ev>>> = LazyLock::new(|| {
    TABLE
        .iter()
        .map(|s| EVENTS.iter().find(|(n, _)| *n == s.name).map(|(_, e)| *e))
        .collect()
});

/// The events of a key command's table entry (None: it raises none of its own).
pub fn of(spec: &'static Spec) -> Option<Ev> {
    BY_SPEC[spec.index()]
}

fn has_option(a: &[Bytes], from: usize, words: &[&str]) -> bool {
    a.iter().skip(from).any(|x| words.iter().any(|w| eq(x, w)))
}

const TTL_WORDS: &[&str] = &["ex", "px", "exat", "pxat"];

fn set_events(a: &[Bytes], _: &[u8]) -> Vec<Named> {
    let mut v = vec![(STRING, "set")];
    if has_option(a, 3, TTL_WORDS) {
        v.push((GENERIC, "expire"));
    }
    v
}

fn getex_events(a: &[Bytes], _: &[u8]) -> Vec<Named> {
    if has_option(a, 2, TTL_WORDS) {
        vec![(GENERIC, "expire")]
    } else if has_option(a, 2, &["persist"]) {
        vec![(GENERIC, "persist")]
    } else {
        Vec::new()
    }
}

/// LMOVE src dst WHERE WHERE (`sides` at 3), RPOPLPUSH src dst (0: right to left): the source's pop,
/// the destination's push (both when they are one list).
fn lmove_events(a: &[Bytes], key: &[u8], sides: usize) -> Vec<Named> {
    let (from_left, to_left) = match sides {
        0 => (false, true),
        i => (
            a.get(i).is_some_and(|x| eq(x, "left")),
            a.get(i + 1).is_some_and(|x| eq(x, "left")),
        ),
    };
    let mut v = Vec::new();
    if *key == a[1] {
        v.push((LIST, if from_left { "lpop" } else { "rpop" }));
    }
    if *key == a[2] {
        v.push((LIST, if to_left { "lpush" } else { "rpush" }));
    }
    v
}

/// LMPOP / ZMPOP (`numkeys` at `at`): the side word follows the keys.
fn mpop_event(a: &[Bytes], at: usize, names: [&'static str; 2], class: u32) -> Named {
    let n = a
        .get(at)
        .and_then(|x| crate::resp::parse_i64_strict(x))
        .unwrap_or(0)
        .max(0) as usize;
    let first = a
        .get(at + 1 + n)
        .is_some_and(|x| eq(x, "left") || eq(x, "min"));
    (class, if first { names[0] } else { names[1] })
}

fn zadd_events(a: &[Bytes], _: &[u8]) -> Vec<Named> {
    let opts = a.iter().skip(2).take_while(|x| {
        ["nx", "xx", "gt", "lt", "ch", "incr"]
            .iter()
            .any(|w| eq(x, w))
    });
    let incr = opts.into_iter().any(|x| eq(x, "incr"));
    vec![(ZSET, if incr { "zincr" } else { "zadd" })]
}

/// After a key command ran on this shard: its events, then the `del` of each key it emptied.
pub fn after(sh: &mut Shard, spec: &'static Spec, args: &[Bytes], ex: &Exec) {
    let ev = &mut sh.ks.hooks.events;
    let mut written = std::mem::take(&mut ev.written);
    let emptied = std::mem::take(&mut ev.emptied);
    if let Some(e) = of(spec) {
        let mut seen: std::collections::HashSet<(usize, &[u8])> = Default::default();
        for (db, key) in written.iter() {
            if seen.insert((*db, key.as_slice())) {
                let exists = sh.ks.peek(*db, key, ex.now).is_some();
                raise(sh, e, args, *db, key, exists);
            }
        }
    }
    for (db, key) in emptied {
        sh.ks.hooks.events.emit(GENERIC, "del", db, &key);
    }
    // A read command's misses (a write's lookups raise nothing, as in Valkey).
    let missed = std::mem::take(&mut sh.ks.hooks.events.missed);
    if !spec.is_write() {
        for (db, key) in &missed {
            sh.ks.hooks.events.emit(KEY_MISS, "keymiss", *db, key);
        }
    }
    // The buffer goes back: a command per call should not allocate it anew.
    written.clear();
    sh.ks.hooks.events.written = written;
}

/// Raises `e` for one key a command wrote (`exists`: the key is there after the command).
pub fn raise(sh: &mut Shard, e: Ev, args: &[Bytes], db: usize, key: &[u8], exists: bool) {
    let ev = &mut sh.ks.hooks.events;
    match e {
        Each(class, name) => ev.emit(class, name, db, key),
        OrDel(class, name) if exists => ev.emit(class, name, db, key),
        OrDel(..) => ev.emit(GENERIC, "del", db, key),
        By(f) => {
            for (class, name) in f(args, key) {
                ev.emit(class, name, db, key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_named_command_is_in_the_table_and_writes() {
        for (name, _) in EVENTS {
            let spec = TABLE
                .iter()
                .find(|s| s.name == *name)
                .unwrap_or_else(|| panic!("{name} is not a command"));
            assert!(spec.is_write(), "{name} does not write");
        }
    }

    fn args(s: &str) -> Vec<Bytes> {
        s.split(' ')
            .map(|w| Bytes::copy_from_slice(w.as_bytes()))
            .collect()
    }

    #[test]
    fn argument_dependent_events_follow_the_options() {
        assert_eq!(set_events(&args("SET k v"), b"k"), vec![(STRING, "set")]);
        assert_eq!(
            set_events(&args("SET k v KEEPTTL GET px 10"), b"k"),
            vec![(STRING, "set"), (GENERIC, "expire")]
        );
        assert_eq!(
            lmove_events(&args("LMOVE a b LEFT RIGHT"), b"a", 3),
            vec![(LIST, "lpop")]
        );
        assert_eq!(
            lmove_events(&args("LMOVE a b LEFT RIGHT"), b"b", 3),
            vec![(LIST, "rpush")]
        );
        assert_eq!(
            lmove_events(&args("RPOPLPUSH a a"), b"a", 0),
            vec![(LIST, "rpop"), (LIST, "lpush")]
        );
        assert_eq!(
            mpop_event(
                &args("BLMPOP 0 2 left right RIGHT COUNT 2"),
                2,
                ["lpop", "rpop"],
                LIST
            ),
            (LIST, "rpop")
        );
        assert_eq!(
            mpop_event(&args("ZMPOP 1 min MIN"), 1, ["zpopmin", "zpopmax"], ZSET),
            (ZSET, "zpopmin")
        );
        assert_eq!(
            zadd_events(&args("ZADD z XX INCR 1 m"), b"z"),
            vec![(ZSET, "zincr")]
        );
        assert_eq!(
            zadd_events(&args("ZADD z 1 incr"), b"z"),
            vec![(ZSET, "zadd")]
        );
        assert_eq!(
            getex_events(&args("GETEX k PERSIST"), b"k"),
            vec![(GENERIC, "persist")]
        );
        assert!(getex_events(&args("GETEX k"), b"k").is_empty());
    }
}
