//! Hashes, lists, sets and sorted sets against a real 2-shard server: Valkey's replies and errors, and
//! the generic commands (TYPE, OBJECT ENCODING, RENAME, COPY, DUMP/RESTORE, expiry) on every type.

mod common;
use common::{err, q, Server};

const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";

#[test]
fn hashes() {
    let s = Server::start(&["--shards", "2"]);
    let c = &mut s.conn();
    assert_eq!(q::<i64>(c, &["HSET", "h", "a", "1", "b", "2"]).unwrap(), 2);
    assert_eq!(q::<i64>(c, &["HSET", "h", "a", "3", "c", "4"]).unwrap(), 1);
    assert_eq!(q::<String>(c, &["HMSET", "h", "d", "5"]).unwrap(), "OK");
    assert_eq!(
        q::<Option<String>>(c, &["HGET", "h", "a"]).unwrap(),
        Some("3".into())
    );
    assert_eq!(
        q::<Vec<Option<String>>>(c, &["HMGET", "h", "a", "zz", "d"]).unwrap(),
        vec![Some("3".into()), None, Some("5".into())]
    );
    assert_eq!(q::<i64>(c, &["HLEN", "h"]).unwrap(), 4);
    assert_eq!(q::<i64>(c, &["HSETNX", "h", "a", "x"]).unwrap(), 0);
    assert_eq!(q::<i64>(c, &["HINCRBY", "h", "a", "10"]).unwrap(), 13);
    assert_eq!(
        q::<String>(c, &["HINCRBYFLOAT", "h", "f", "1.5"]).unwrap(),
        "1.5"
    );
    assert_eq!(
        err(c, &["HINCRBY", "h", "f", "1"]),
        "ERR hash value is not an integer"
    );
    assert_eq!(q::<i64>(c, &["HSTRLEN", "h", "a"]).unwrap(), 2);
    let mut all: Vec<String> = q(c, &["HKEYS", "h"]).unwrap();
    all.sort();
    assert_eq!(all, vec!["a", "b", "c", "d", "f"]);
    assert_eq!(
        q::<i64>(c, &["HDEL", "h", "a", "b", "c", "d", "nope"]).unwrap(),
        4
    );
    assert_eq!(q::<i64>(c, &["HDEL", "h", "f"]).unwrap(), 1);
    assert_eq!(
        q::<i64>(c, &["EXISTS", "h"]).unwrap(),
        0,
        "an emptied hash is deleted"
    );
    assert_eq!(
        err(c, &["HSET", "h", "a"]),
        "ERR wrong number of arguments for 'hset' command"
    );
    q::<()>(c, &["SET", "str", "v"]).unwrap();
    assert_eq!(err(c, &["HGET", "str", "a"]), WRONGTYPE);
    q::<()>(c, &["HSET", "h", "a", "1"]).unwrap();
    assert_eq!(err(c, &["GET", "h"]), WRONGTYPE);
    assert_eq!(err(c, &["INCR", "h"]), WRONGTYPE);
    // Encodings follow hash-max-listpack-entries.
    assert_eq!(
        q::<String>(c, &["OBJECT", "ENCODING", "h"]).unwrap(),
        "listpack"
    );
    for i in 0..200 {
        q::<()>(c, &["HSET", "h", &format!("f{i}"), "v"]).unwrap();
    }
    assert_eq!(
        q::<String>(c, &["OBJECT", "ENCODING", "h"]).unwrap(),
        "hashtable"
    );
    assert_eq!(q::<i64>(c, &["HLEN", "h"]).unwrap(), 201);
    let picked: Vec<String> = q(c, &["HRANDFIELD", "h", "5"]).unwrap();
    let mut uniq = picked.clone();
    uniq.sort();
    uniq.dedup();
    assert_eq!((picked.len(), uniq.len()), (5, 5), "distinct fields");
    // HSCAN returns every field once over a full iteration.
    let mut cursor = "0".to_string();
    let mut seen = std::collections::HashSet::new();
    loop {
        let (next, items): (String, Vec<String>) =
            q(c, &["HSCAN", "h", &cursor, "COUNT", "50"]).unwrap();
        for kv in items.chunks(2) {
            seen.insert(kv[0].clone());
        }
        if next == "0" {
            break;
        }
        cursor = next;
    }
    assert_eq!(seen.len(), 201);
}

#[test]
fn lists() {
    let s = Server::start(&["--shards", "2"]);
    let c = &mut s.conn();
    assert_eq!(q::<i64>(c, &["RPUSH", "l", "a", "b", "c"]).unwrap(), 3);
    assert_eq!(q::<i64>(c, &["LPUSH", "l", "z"]).unwrap(), 4);
    assert_eq!(
        q::<Vec<String>>(c, &["LRANGE", "l", "0", "-1"]).unwrap(),
        vec!["z", "a", "b", "c"]
    );
    assert_eq!(
        q::<Vec<String>>(c, &["LRANGE", "l", "-2", "100"]).unwrap(),
        vec!["b", "c"]
    );
    assert_eq!(
        q::<Option<String>>(c, &["LINDEX", "l", "-1"]).unwrap(),
        Some("c".into())
    );
    assert_eq!(q::<String>(c, &["LSET", "l", "1", "A"]).unwrap(), "OK");
    assert_eq!(err(c, &["LSET", "l", "9", "x"]), "ERR index out of range");
    assert_eq!(err(c, &["LSET", "nolist", "0", "x"]), "ERR no such key");
    assert_eq!(
        q::<i64>(c, &["LINSERT", "l", "BEFORE", "b", "x"]).unwrap(),
        5
    );
    assert_eq!(
        q::<i64>(c, &["LINSERT", "l", "AFTER", "nope", "x"]).unwrap(),
        -1
    );
    assert_eq!(q::<i64>(c, &["LPOS", "l", "x"]).unwrap(), 2);
    assert_eq!(q::<i64>(c, &["LREM", "l", "0", "x"]).unwrap(), 1);
    assert_eq!(
        q::<Vec<String>>(c, &["LPOP", "l", "2"]).unwrap(),
        vec!["z", "A"]
    );
    assert_eq!(
        q::<Option<String>>(c, &["RPOP", "l"]).unwrap(),
        Some("c".into())
    );
    assert_eq!(q::<i64>(c, &["LPUSHX", "nolist", "a"]).unwrap(), 0);
    assert_eq!(
        err(c, &["LPOP", "l", "-1"]),
        "ERR value is out of range, must be positive"
    );
    assert_eq!(
        q::<Option<String>>(c, &["RPOP", "l"]).unwrap(),
        Some("b".into())
    );
    assert_eq!(
        q::<i64>(c, &["EXISTS", "l"]).unwrap(),
        0,
        "an emptied list is deleted"
    );
    // A list bigger than one node: quicklist, and indexes across nodes.
    let vals: Vec<String> = (0..3000).map(|i| format!("value-{i}")).collect();
    let mut args = vec!["RPUSH", "big"];
    args.extend(vals.iter().map(|s| s.as_str()));
    assert_eq!(q::<i64>(c, &args).unwrap(), 3000);
    assert_eq!(
        q::<String>(c, &["OBJECT", "ENCODING", "big"]).unwrap(),
        "quicklist"
    );
    assert_eq!(
        q::<String>(c, &["LINDEX", "big", "2500"]).unwrap(),
        "value-2500"
    );
    assert_eq!(
        q::<String>(c, &["LTRIM", "big", "1000", "-1001"]).unwrap(),
        "OK"
    );
    assert_eq!(q::<i64>(c, &["LLEN", "big"]).unwrap(), 1000);
    assert_eq!(
        q::<Vec<String>>(c, &["LRANGE", "big", "0", "1"]).unwrap(),
        vec!["value-1000", "value-1001"]
    );
}

#[test]
fn sets() {
    let s = Server::start(&["--shards", "2"]);
    let c = &mut s.conn();
    assert_eq!(q::<i64>(c, &["SADD", "s", "1", "2", "3", "2"]).unwrap(), 3);
    assert_eq!(
        q::<String>(c, &["OBJECT", "ENCODING", "s"]).unwrap(),
        "intset"
    );
    assert_eq!(q::<i64>(c, &["SADD", "s", "x"]).unwrap(), 1);
    assert_eq!(
        q::<String>(c, &["OBJECT", "ENCODING", "s"]).unwrap(),
        "listpack"
    );
    assert_eq!(q::<i64>(c, &["SISMEMBER", "s", "x"]).unwrap(), 1);
    assert_eq!(
        q::<Vec<i64>>(c, &["SMISMEMBER", "s", "1", "9"]).unwrap(),
        vec![1, 0]
    );
    assert_eq!(q::<i64>(c, &["SCARD", "s"]).unwrap(), 4);
    assert_eq!(q::<i64>(c, &["SREM", "s", "1", "9"]).unwrap(), 1);
    let mut m: Vec<String> = q(c, &["SMEMBERS", "s"]).unwrap();
    m.sort();
    assert_eq!(m, vec!["2", "3", "x"]);
    let popped: Vec<String> = q(c, &["SPOP", "s", "2"]).unwrap();
    assert_eq!(popped.len(), 2);
    assert_eq!(q::<i64>(c, &["SCARD", "s"]).unwrap(), 1);
    assert_eq!(
        q::<Vec<String>>(c, &["SRANDMEMBER", "s", "-3"])
            .unwrap()
            .len(),
        3
    );
    q::<String>(c, &["SPOP", "s"]).unwrap();
    assert_eq!(q::<i64>(c, &["EXISTS", "s"]).unwrap(), 0);
    for i in 0..600 {
        q::<()>(c, &["SADD", "ints", &i.to_string()]).unwrap();
    }
    assert_eq!(
        q::<String>(c, &["OBJECT", "ENCODING", "ints"]).unwrap(),
        "hashtable"
    );
    assert_eq!(q::<i64>(c, &["SCARD", "ints"]).unwrap(), 600);
    assert_eq!(
        err(c, &["SPOP", "ints", "-1"]),
        "ERR value is out of range, must be positive"
    );
}

#[test]
fn sorted_sets() {
    let s = Server::start(&["--shards", "2"]);
    let c = &mut s.conn();
    assert_eq!(
        q::<i64>(c, &["ZADD", "z", "1", "a", "2", "b", "3", "c"]).unwrap(),
        3
    );
    assert_eq!(
        q::<i64>(c, &["ZADD", "z", "CH", "5", "a", "2", "b"]).unwrap(),
        1
    );
    assert_eq!(
        q::<i64>(c, &["ZADD", "z", "NX", "9", "a", "4", "d"]).unwrap(),
        1
    );
    assert_eq!(
        q::<Option<String>>(c, &["ZADD", "z", "XX", "INCR", "1", "nope"]).unwrap(),
        None
    );
    assert_eq!(
        q::<String>(c, &["ZADD", "z", "INCR", "0.5", "a"]).unwrap(),
        "5.5"
    );
    assert_eq!(
        q::<i64>(c, &["ZADD", "z", "GT", "CH", "1", "a"]).unwrap(),
        0
    );
    assert_eq!(
        err(c, &["ZADD", "z", "NX", "XX", "1", "a"]),
        "ERR XX and NX options at the same time are not compatible"
    );
    assert_eq!(
        err(c, &["ZADD", "z", "GT", "LT", "1", "a"]),
        "ERR GT, LT, and/or NX options at the same time are not compatible"
    );
    assert_eq!(
        err(c, &["ZADD", "z", "x", "a"]),
        "ERR value is not a valid float"
    );
    // b=2 c=3 d=4 a=5.5
    assert_eq!(
        q::<Vec<String>>(c, &["ZRANGE", "z", "0", "-1"]).unwrap(),
        vec!["b", "c", "d", "a"]
    );
    assert_eq!(
        q::<Vec<String>>(c, &["ZRANGE", "z", "0", "1", "REV", "WITHSCORES"]).unwrap(),
        vec!["a", "5.5", "d", "4"]
    );
    assert_eq!(
        q::<Vec<String>>(
            c,
            &["ZRANGE", "z", "(2", "+inf", "BYSCORE", "LIMIT", "1", "2"]
        )
        .unwrap(),
        vec!["d", "a"]
    );
    assert_eq!(
        q::<Vec<String>>(c, &["ZREVRANGEBYSCORE", "z", "4", "2"]).unwrap(),
        vec!["d", "c", "b"]
    );
    assert_eq!(q::<i64>(c, &["ZCOUNT", "z", "-inf", "(4"]).unwrap(), 2);
    assert_eq!(
        err(c, &["ZCOUNT", "z", "x", "1"]),
        "ERR min or max is not a float"
    );
    assert_eq!(q::<Option<i64>>(c, &["ZRANK", "z", "d"]).unwrap(), Some(2));
    assert_eq!(
        q::<Option<i64>>(c, &["ZREVRANK", "z", "d"]).unwrap(),
        Some(1)
    );
    assert_eq!(
        q::<Option<String>>(c, &["ZSCORE", "z", "c"]).unwrap(),
        Some("3".into())
    );
    assert_eq!(q::<String>(c, &["ZINCRBY", "z", "-10", "c"]).unwrap(), "-7");
    assert_eq!(
        q::<Vec<String>>(c, &["ZPOPMIN", "z"]).unwrap(),
        vec!["c", "-7"]
    );
    assert_eq!(
        q::<Vec<String>>(c, &["ZPOPMAX", "z", "2"]).unwrap(),
        vec!["a", "5.5", "d", "4"]
    );
    assert_eq!(q::<i64>(c, &["ZCARD", "z"]).unwrap(), 1);
    q::<()>(c, &["ZADD", "lex", "0", "a", "0", "b", "0", "c", "0", "d"]).unwrap();
    assert_eq!(
        q::<Vec<String>>(c, &["ZRANGEBYLEX", "lex", "(a", "[c"]).unwrap(),
        vec!["b", "c"]
    );
    assert_eq!(q::<i64>(c, &["ZLEXCOUNT", "lex", "-", "+"]).unwrap(), 4);
    assert_eq!(
        err(c, &["ZLEXCOUNT", "lex", "a", "+"]),
        "ERR min or max not valid string range item"
    );
    assert_eq!(
        q::<i64>(c, &["ZREMRANGEBYLEX", "lex", "[b", "[c"]).unwrap(),
        2
    );
    // Past zset-max-listpack-entries: the big encoding, same answers.
    for i in 0..300 {
        q::<()>(c, &["ZADD", "big", &(i % 17).to_string(), &format!("m{i}")]).unwrap();
    }
    assert_eq!(
        q::<String>(c, &["OBJECT", "ENCODING", "big"]).unwrap(),
        "skiplist"
    );
    let all: Vec<String> = q(c, &["ZRANGE", "big", "0", "-1", "WITHSCORES"]).unwrap();
    let scores: Vec<f64> = all.chunks(2).map(|p| p[1].parse().unwrap()).collect();
    assert!(scores.windows(2).all(|w| w[0] <= w[1]), "ascending");
    assert_eq!(q::<i64>(c, &["ZCOUNT", "big", "3", "3"]).unwrap(), 18);
    assert_eq!(
        q::<i64>(c, &["ZREMRANGEBYRANK", "big", "0", "99"]).unwrap(),
        100
    );
    assert_eq!(q::<i64>(c, &["ZCARD", "big"]).unwrap(), 200);
}

#[test]
fn generic_commands_handle_every_type() {
    let s = Server::start(&["--shards", "2"]);
    let c = &mut s.conn();
    q::<()>(c, &["HSET", "h", "f", "v"]).unwrap();
    q::<()>(c, &["RPUSH", "l", "a"]).unwrap();
    q::<()>(c, &["SADD", "s", "m"]).unwrap();
    q::<()>(c, &["ZADD", "z", "1", "m"]).unwrap();
    for (k, t) in [("h", "hash"), ("l", "list"), ("s", "set"), ("z", "zset")] {
        assert_eq!(q::<String>(c, &["TYPE", k]).unwrap(), t);
        let (_, keys): (String, Vec<String>) =
            q(c, &["SCAN", "0", "TYPE", t, "COUNT", "1000"]).unwrap();
        assert_eq!(keys, vec![k.to_string()], "SCAN TYPE {t}");
        let dv = |c: &mut redis::Connection, k: &str| {
            q::<Vec<String>>(c, &["DEBUG", "DIGEST-VALUE", k]).unwrap()[0].clone()
        };
        let before = dv(c, k);
        assert_ne!(before, "0".repeat(40));
        // RENAME moves across shards (keys {k}x hash elsewhere), COPY copies, DUMP/RESTORE round-trips.
        let moved = format!("{k}-moved-elsewhere");
        q::<()>(c, &["RENAME", k, &moved]).unwrap();
        assert_eq!(dv(c, &moved), before);
        assert_eq!(q::<i64>(c, &["COPY", &moved, k]).unwrap(), 1);
        let payload: Vec<u8> = q(c, &["DUMP", k]).unwrap();
        let restored = format!("{k}-restored");
        let mut cmd = redis::cmd("RESTORE");
        cmd.arg(&restored)
            .arg(100000)
            .arg(payload.clone())
            .arg("REPLACE");
        let _: () = cmd.query(c).unwrap();
        assert_eq!(dv(c, &restored), before);
        assert!(q::<i64>(c, &["PTTL", &restored]).unwrap() > 90_000);
        let mut bad = payload.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        let mut cmd = redis::cmd("RESTORE");
        cmd.arg("x").arg(0).arg(bad).arg("REPLACE");
        let e: redis::RedisError = cmd.query::<()>(c).unwrap_err();
        assert!(
            e.to_string()
                .contains("DUMP payload version or checksum are wrong"),
            "{e}"
        );
        // Expiry works on every type.
        q::<()>(c, &["PEXPIRE", &moved, "1"]).unwrap();
        assert!(common::eventually(5, || q::<i64>(c, &["EXISTS", &moved])
            .unwrap()
            == 0));
    }
    assert_eq!(
        err(c, &["RESTORE", "h", "0", "x"]),
        "BUSYKEY Target key name already exists."
    );
    // SET replaces any type; DEL removes any type.
    q::<()>(c, &["SET", "h", "now a string"]).unwrap();
    assert_eq!(q::<String>(c, &["TYPE", "h"]).unwrap(), "string");
    assert_eq!(q::<i64>(c, &["DEL", "l", "s", "z"]).unwrap(), 3);
}

/// Multi-key commands give the same answers whether their keys share a shard ({tag}) or not.
#[test]
fn multi_key_commands_across_shards_and_within_one() {
    let s = Server::start(&["--shards", "3"]);
    let c = &mut s.conn();
    for (p, q_) in [("", ""), ("{t}", "{t}")] {
        let k = |n: &str| format!("{p}{n}{q_}");
        q::<()>(c, &["SADD", &k("a"), "1", "2", "3"]).unwrap();
        q::<()>(c, &["SADD", &k("b"), "2", "3", "4"]).unwrap();
        let mut inter: Vec<String> = q(c, &["SINTER", &k("a"), &k("b")]).unwrap();
        inter.sort();
        assert_eq!(inter, vec!["2", "3"]);
        assert_eq!(
            q::<i64>(c, &["SUNIONSTORE", &k("u"), &k("a"), &k("b")]).unwrap(),
            4
        );
        assert_eq!(
            q::<i64>(c, &["SDIFFSTORE", &k("d"), &k("a"), &k("b")]).unwrap(),
            1
        );
        assert_eq!(
            q::<i64>(c, &["SINTERCARD", "2", &k("a"), &k("b"), "LIMIT", "1"]).unwrap(),
            1
        );
        assert_eq!(q::<i64>(c, &["SMOVE", &k("a"), &k("b"), "1"]).unwrap(), 1);
        assert_eq!(q::<i64>(c, &["SCARD", &k("b")]).unwrap(), 4);
        q::<()>(c, &["RPUSH", &k("l"), "x", "y"]).unwrap();
        assert_eq!(
            q::<String>(c, &["LMOVE", &k("l"), &k("m"), "LEFT", "RIGHT"]).unwrap(),
            "x"
        );
        assert_eq!(
            q::<String>(c, &["RPOPLPUSH", &k("l"), &k("m")]).unwrap(),
            "y"
        );
        assert_eq!(q::<i64>(c, &["EXISTS", &k("l")]).unwrap(), 0);
        assert_eq!(
            q::<Vec<String>>(c, &["LRANGE", &k("m"), "0", "-1"]).unwrap(),
            vec!["y", "x"]
        );
        let popped: (String, Vec<String>) = q(
            c,
            &["LMPOP", "2", &k("none"), &k("m"), "LEFT", "COUNT", "5"],
        )
        .unwrap();
        assert_eq!(popped, (k("m"), vec!["y".to_string(), "x".to_string()]));
        q::<()>(c, &["ZADD", &k("z1"), "1", "a", "2", "b"]).unwrap();
        q::<()>(c, &["ZADD", &k("z2"), "3", "b", "4", "c"]).unwrap();
        assert_eq!(
            q::<Vec<String>>(c, &["ZUNION", "2", &k("z1"), &k("z2"), "WITHSCORES"]).unwrap(),
            vec!["a", "1", "c", "4", "b", "5"]
        );
        assert_eq!(
            q::<i64>(
                c,
                &[
                    "ZINTERSTORE",
                    &k("zi"),
                    "2",
                    &k("z1"),
                    &k("z2"),
                    "WEIGHTS",
                    "2",
                    "3",
                    "AGGREGATE",
                    "MAX"
                ]
            )
            .unwrap(),
            1
        );
        assert_eq!(
            q::<Vec<String>>(c, &["ZRANGE", &k("zi"), "0", "-1", "WITHSCORES"]).unwrap(),
            vec!["b", "9"]
        );
        assert_eq!(
            q::<i64>(c, &["ZRANGESTORE", &k("zr"), &k("z2"), "0", "0"]).unwrap(),
            1
        );
        assert_eq!(
            q::<Vec<String>>(c, &["ZDIFF", "2", &k("z2"), &k("zr")]).unwrap(),
            vec!["c"]
        );
        assert_eq!(
            q::<i64>(c, &["ZINTERCARD", "2", &k("z1"), &k("z2")]).unwrap(),
            1
        );
        assert_eq!(
            common::err(c, &["ZUNIONSTORE", &k("x"), "0", &k("z1")]),
            "ERR at least 1 input key is needed for 'zunionstore' command"
        );
        q::<()>(c, &["SET", &k("str"), "v"]).unwrap();
        assert_eq!(err(c, &["SINTER", &k("a"), &k("str")]), WRONGTYPE);
        assert_eq!(
            err(c, &["LMOVE", &k("str"), &k("m"), "LEFT", "LEFT"]),
            WRONGTYPE
        );
        q::<()>(c, &["FLUSHALL"]).unwrap();
    }
}

/// Commands across shards run in a scratch shard each thread keeps between uses: a result is encoded by the
/// configuration of the moment, and nothing a command read stays behind for the next.
#[test]
fn commands_across_shards_follow_config_between_uses() {
    let s = Server::start(&["--shards", "2"]);
    let c = &mut s.conn();
    q::<()>(c, &["SADD", "a", "1", "2"]).unwrap();
    q::<()>(c, &["SADD", "b", "3"]).unwrap();
    for _ in 0..3 {
        assert_eq!(q::<i64>(c, &["SUNIONSTORE", "u", "a", "b"]).unwrap(), 3);
        assert_eq!(
            q::<String>(c, &["OBJECT", "ENCODING", "u"]).unwrap(),
            "intset"
        );
    }
    q::<()>(c, &["CONFIG", "SET", "set-max-intset-entries", "2"]).unwrap();
    assert_eq!(q::<i64>(c, &["SUNIONSTORE", "u", "a", "b"]).unwrap(), 3);
    assert_eq!(
        q::<String>(c, &["OBJECT", "ENCODING", "u"]).unwrap(),
        "listpack"
    );
    // A read across shards, then a write whose source is gone: the earlier copies are not seen.
    let mut all: Vec<String> = q(c, &["SUNION", "a", "b"]).unwrap();
    all.sort();
    assert_eq!(all, vec!["1", "2", "3"]);
    q::<()>(c, &["DEL", "b"]).unwrap();
    assert_eq!(q::<i64>(c, &["SUNIONSTORE", "u", "a", "b"]).unwrap(), 2);
    assert_eq!(q::<i64>(c, &["SINTERSTORE", "u", "a", "b"]).unwrap(), 0);
    assert_eq!(q::<i64>(c, &["EXISTS", "u"]).unwrap(), 0);
}

/// Bitmaps and HyperLogLogs, with the answers redis-server 7.0.15 gives for the same commands.
#[test]
fn bitmaps_and_hyperloglogs() {
    let s = Server::start(&["--shards", "2"]);
    let c = &mut s.conn();
    assert_eq!(q::<i64>(c, &["SETBIT", "b", "100", "1"]).unwrap(), 0);
    assert_eq!(q::<i64>(c, &["SETBIT", "b", "100", "1"]).unwrap(), 1);
    assert_eq!(q::<i64>(c, &["GETBIT", "b", "100"]).unwrap(), 1);
    assert_eq!(q::<i64>(c, &["BITPOS", "b", "1"]).unwrap(), 100);
    assert_eq!(q::<i64>(c, &["BITPOS", "b", "0"]).unwrap(), 0);
    assert_eq!(
        err(c, &["SETBIT", "b", "-1", "1"]),
        "ERR bit offset is not an integer or out of range"
    );
    assert_eq!(
        err(c, &["SETBIT", "b", "1", "2"]),
        "ERR bit is not an integer or out of range"
    );
    q::<()>(c, &["SET", "s", "foobar"]).unwrap();
    assert_eq!(q::<i64>(c, &["BITCOUNT", "s"]).unwrap(), 26);
    assert_eq!(q::<i64>(c, &["BITCOUNT", "s", "1", "1"]).unwrap(), 6);
    assert_eq!(
        q::<i64>(c, &["BITCOUNT", "s", "5", "30", "BIT"]).unwrap(),
        17
    );
    // Valkey 8's start-only form ("oobar" has 22 bits set, "r" 4), a negative start after a negative
    // end counts nothing, and an unknown unit is a syntax error even for a missing key.
    assert_eq!(q::<i64>(c, &["BITCOUNT", "s", "1"]).unwrap(), 22);
    assert_eq!(q::<i64>(c, &["BITCOUNT", "s", "-1"]).unwrap(), 4);
    assert_eq!(q::<i64>(c, &["BITCOUNT", "s", "-6", "-7"]).unwrap(), 0);
    assert_eq!(
        q::<i64>(c, &["BITCOUNT", "s", "-6", "-15", "BIT"]).unwrap(),
        0
    );
    assert_eq!(
        err(c, &["BITCOUNT", "nokey", "0", "1", "hello"]),
        "ERR syntax error"
    );
    // BITPOS checks its arguments before the key too.
    assert_eq!(
        err(c, &["BITPOS", "nokey", "0", "1", "2", "hello"]),
        "ERR syntax error"
    );
    assert_eq!(
        err(c, &["BITPOS", "nokey", "a"]),
        "ERR value is not an integer or out of range"
    );
    assert_eq!(
        err(c, &["BITPOS", "nokey", "2"]),
        "ERR The bit argument must be 1 or 0."
    );
    // SETBIT and BITFIELD that leave the string as it was change nothing (Valkey's dirty count).
    let dirty = |c: &mut redis::Connection| {
        common::repl::num(c, "persistence", "rdb_changes_since_last_save")
    };
    q::<()>(c, &["SET", "f", "foobar"]).unwrap();
    let before = dirty(c);
    q::<i64>(c, &["SETBIT", "f", "1", "1"]).unwrap();
    let _: Vec<i64> = q(c, &["BITFIELD", "f", "SET", "u8", "0", "102"]).unwrap();
    assert_eq!(dirty(c), before, "'f' is 102 and its bit 1 is set");
    let _: Vec<i64> = q(c, &["BITFIELD", "f", "SET", "u8", "0", "103"]).unwrap();
    assert_eq!(dirty(c), before + 1);
    assert_eq!(q::<String>(c, &["GET", "f"]).unwrap(), "goobar");
    assert_eq!(q::<i64>(c, &["BITOP", "NOT", "d", "s"]).unwrap(), 6);
    assert_eq!(
        q::<Vec<u8>>(c, &["GET", "d"]).unwrap(),
        vec![0x99, 0x90, 0x90, 0x9d, 0x9e, 0x8d]
    );
    assert_eq!(q::<i64>(c, &["BITOP", "AND", "x", "s", "d"]).unwrap(), 6);
    assert_eq!(q::<i64>(c, &["BITCOUNT", "x"]).unwrap(), 0);
    assert_eq!(
        err(c, &["BITOP", "NOT", "d", "s", "s"]),
        "ERR BITOP NOT must be called with a single source key."
    );
    let v: Vec<Option<i64>> = q(
        c,
        &[
            "BITFIELD", "bf", "INCRBY", "u2", "100", "1", "GET", "i5", "0", "SET", "i8", "#1",
            "-100", "OVERFLOW", "SAT", "INCRBY", "u4", "0", "100",
        ],
    )
    .unwrap();
    assert_eq!(v, vec![Some(1), Some(0), Some(0), Some(15)]);
    assert_eq!(
        err(c, &["BITFIELD_RO", "bf", "SET", "u8", "0", "1"]),
        "ERR BITFIELD_RO only supports the GET subcommand"
    );
    q::<()>(c, &["HSET", "h", "f", "v"]).unwrap();
    assert_eq!(err(c, &["SETBIT", "h", "1", "1"]), WRONGTYPE);
    // HyperLogLog: Valkey's hash and estimator give Valkey's counts.
    for i in 1..=30 {
        let mut cmd = redis::cmd("PFADD");
        cmd.arg("hll");
        for j in 1..=300 {
            cmd.arg(format!("e{i}-{j}"));
        }
        let _: i64 = cmd.query(c).unwrap();
    }
    assert_eq!(q::<i64>(c, &["PFCOUNT", "hll"]).unwrap(), 9032);
    assert_eq!(q::<i64>(c, &["PFADD", "hll2", "a", "b", "c"]).unwrap(), 1);
    assert_eq!(q::<i64>(c, &["PFADD", "hll2", "a"]).unwrap(), 0);
    assert_eq!(q::<i64>(c, &["PFCOUNT", "hll2", "hll"]).unwrap(), 9034);
    assert_eq!(
        q::<String>(c, &["PFMERGE", "merged", "hll2", "hll"]).unwrap(),
        "OK"
    );
    assert_eq!(q::<i64>(c, &["PFCOUNT", "merged"]).unwrap(), 9034);
    assert_eq!(
        err(c, &["PFADD", "s", "x"]),
        "WRONGTYPE Key is not a valid HyperLogLog string value."
    );
}

/// What tools call on connect answers truthfully for a server without scripts; running one is a clear
/// error. MEMORY USAGE covers every type.
#[test]
fn scripting_introspection_and_memory_usage() {
    let s = Server::start(&["--shards", "2"]);
    let c = &mut s.conn();
    assert_eq!(
        q::<Vec<String>>(c, &["FUNCTION", "LIST"]).unwrap(),
        Vec::<String>::new()
    );
    assert_eq!(q::<String>(c, &["FUNCTION", "FLUSH"]).unwrap(), "OK");
    assert_eq!(q::<String>(c, &["SCRIPT", "FLUSH"]).unwrap(), "OK");
    assert_eq!(
        q::<Vec<i64>>(c, &["SCRIPT", "EXISTS", "a", "b"]).unwrap(),
        vec![0, 0]
    );
    assert_eq!(
        err(c, &["EVALSHA", "abc", "0"]),
        "NOSCRIPT No matching script. Please use EVAL."
    );
    assert!(err(c, &["EVAL", "return 1", "0"]).starts_with("ERR Tandem does not run scripts yet"));
    q::<()>(c, &["SET", "str", "v"]).unwrap();
    let mut args = vec!["RPUSH".to_string(), "l".into()];
    args.extend((0..1000).map(|i| format!("element-{i}")));
    let args: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
    q::<()>(c, &args).unwrap();
    let small: i64 = q(c, &["MEMORY", "USAGE", "str"]).unwrap();
    let big: i64 = q(c, &["MEMORY", "USAGE", "l"]).unwrap();
    assert!(small > 0 && small < 100, "{small}");
    assert!(
        big > 10_000,
        "a 1000-element list counts its elements: {big}"
    );
    assert_eq!(
        q::<Option<i64>>(c, &["MEMORY", "USAGE", "none"]).unwrap(),
        None
    );
}

#[test]
fn encodings_follow_valkeys_conversions() {
    let s = Server::start(&["--shards", "2", "--enable-debug-command", "yes"]);
    let c = &mut s.conn();
    let enc = |c: &mut redis::Connection, k: &str| -> String {
        q(c, &["OBJECT", "ENCODING", k]).unwrap()
    };
    // A string modified in place is raw until it is set again.
    let _: () = q(c, &["SET", "n", "1"]).unwrap();
    assert_eq!(enc(c, "n"), "int");
    let _: i64 = q(c, &["APPEND", "n", "2"]).unwrap();
    assert_eq!(enc(c, "n"), "raw");
    let _: i64 = q(c, &["INCR", "n"]).unwrap();
    assert_eq!(enc(c, "n"), "int");
    let _: i64 = q(c, &["SETRANGE", "n", "0", "9"]).unwrap();
    assert_eq!(enc(c, "n"), "raw");
    // SETBIT in place, and growing the string: raw, value and expiry kept.
    let _: () = q(c, &["SET", "b", "1", "EX", "100"]).unwrap();
    assert_eq!(enc(c, "b"), "int");
    assert_eq!(q::<i64>(c, &["SETBIT", "b", "6", "1"]).unwrap(), 0);
    assert_eq!(enc(c, "b"), "raw");
    assert_eq!(q::<String>(c, &["GET", "b"]).unwrap(), "3");
    assert_eq!(q::<i64>(c, &["SETBIT", "b", "15", "1"]).unwrap(), 0);
    assert_eq!(q::<Vec<u8>>(c, &["GET", "b"]).unwrap(), b"3\x01");
    assert_eq!(enc(c, "b"), "raw");
    assert!(q::<i64>(c, &["TTL", "b"]).unwrap() > 0);
    assert_eq!(q::<i64>(c, &["BITCOUNT", "b"]).unwrap(), 5);
    // A list: quicklist past one node (4 elements here), listpack again at half a node.
    let _: () = q(c, &["CONFIG", "SET", "list-max-listpack-size", "4"]).unwrap();
    let _: i64 = q(c, &["RPUSH", "l", "a", "b", "c", "d"]).unwrap();
    assert_eq!(enc(c, "l"), "listpack");
    let _: i64 = q(c, &["RPUSH", "l", "e"]).unwrap();
    assert_eq!(enc(c, "l"), "quicklist");
    let _: Vec<String> = q(c, &["RPOP", "l", "2"]).unwrap();
    assert_eq!(enc(c, "l"), "quicklist");
    let _: String = q(c, &["RPOP", "l"]).unwrap();
    assert_eq!(enc(c, "l"), "listpack");
    // One element bigger than a node (8 KiB by default) is a quicklist from the start.
    let _: () = q(c, &["CONFIG", "SET", "list-max-listpack-size", "-2"]).unwrap();
    let big = "x".repeat(8192);
    let _: i64 = q(c, &["LPUSH", "big", &big]).unwrap();
    assert_eq!(enc(c, "big"), "quicklist");
    // DEBUG RELOAD gives every collection the encoding a load would: a quicklist left with one node of 3
    // (more than half of 4: it stayed a quicklist) fits a listpack; a hash grown past its limit and
    // shrunk back fits one too. The data is unchanged.
    let _: () = q(c, &["CONFIG", "SET", "list-max-listpack-size", "4"]).unwrap();
    let _: i64 = q(c, &["RPUSH", "r", "a", "b", "c", "d", "e"]).unwrap();
    let _: Vec<String> = q(c, &["RPOP", "r", "2"]).unwrap();
    assert_eq!(enc(c, "r"), "quicklist");
    let _: () = q(c, &["CONFIG", "SET", "hash-max-listpack-entries", "2"]).unwrap();
    let _: i64 = q(c, &["HSET", "h", "f1", "1", "f2", "2", "f3", "3"]).unwrap();
    let _: i64 = q(c, &["HDEL", "h", "f3"]).unwrap();
    assert_eq!(enc(c, "h"), "hashtable");
    let before: String = q(c, &["DEBUG", "DIGEST"]).unwrap();
    let _: () = q(c, &["DEBUG", "RELOAD"]).unwrap();
    assert_eq!(enc(c, "r"), "listpack");
    assert_eq!(enc(c, "h"), "listpack");
    assert_eq!(enc(c, "big"), "quicklist");
    assert_eq!(q::<String>(c, &["DEBUG", "DIGEST"]).unwrap(), before);
    assert_eq!(
        q::<Vec<String>>(c, &["LRANGE", "r", "0", "-1"]).unwrap(),
        ["a", "b", "c"]
    );
}

#[test]
fn numkeys_and_count_errors_in_valkeys_words() {
    let s = Server::start(&["--shards", "2"]);
    let c = &mut s.conn();
    for args in [
        &["SINTERCARD", "0", "s"][..],
        &["SINTERCARD", "a", "s"],
        &["LMPOP", "-1", "l", "LEFT"],
        &["ZMPOP", "a", "z", "MIN"],
    ] {
        assert_eq!(
            err(c, args),
            "ERR numkeys should be greater than 0",
            "{args:?}"
        );
    }
    assert_eq!(
        err(c, &["ZINTERCARD", "0", "z"]),
        "ERR at least 1 input key is needed for 'zintercard' command"
    );
    for args in [
        &["ZMPOP", "1", "z", "MIN", "COUNT", "0"][..],
        &["LMPOP", "1", "l", "LEFT", "COUNT", "a"],
    ] {
        assert_eq!(
            err(c, args),
            "ERR count should be greater than 0",
            "{args:?}"
        );
    }
    assert_eq!(
        err(c, &["HINCRBYFLOAT", "h", "f", "+inf"]),
        "ERR value is NaN or Infinity"
    );
    assert_eq!(
        q::<String>(c, &["HINCRBYFLOAT", "h", "f", "0.0000005"]).unwrap(),
        "0.0000005"
    );
}
