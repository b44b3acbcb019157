//! Generic key commands on a 3-shard server (keys spread over shards).

mod common;
use common::{err, eventually, q, Server};
use std::collections::HashSet;

#[test]
fn expire_family_and_conditions() {
    let s = Server::start(&["--shards", "3"]);
    let c = &mut s.conn();
    q::<()>(c, &["SET", "k", "v"]).unwrap();
    assert_eq!(q::<i64>(c, &["EXPIRE", "k", "100", "XX"]).unwrap(), 0);
    assert_eq!(q::<i64>(c, &["EXPIRE", "k", "100", "NX"]).unwrap(), 1);
    assert_eq!(q::<i64>(c, &["EXPIRE", "k", "50", "GT"]).unwrap(), 0);
    assert_eq!(q::<i64>(c, &["EXPIRE", "k", "200", "GT"]).unwrap(), 1);
    assert_eq!(q::<i64>(c, &["EXPIRE", "k", "50", "LT"]).unwrap(), 1);
    assert_eq!(
        err(c, &["EXPIRE", "k", "5", "NX", "XX"]),
        "ERR NX and XX, GT or LT options at the same time are not compatible"
    );
    assert_eq!(
        err(c, &["EXPIRE", "k", "5", "GT", "LT"]),
        "ERR GT and LT options at the same time are not compatible"
    );
    assert_eq!(
        err(c, &["EXPIRE", "k", "5", "FOO"]),
        "ERR Unsupported option FOO"
    );
    assert_eq!(
        err(c, &["EXPIRE", "k", "9223372036854775807"]),
        "ERR invalid expire time in 'expire' command"
    );
    let t: i64 = q(c, &["EXPIRETIME", "k"]).unwrap();
    let pt: i64 = q(c, &["PEXPIRETIME", "k"]).unwrap();
    assert_eq!(t, pt / 1000);
    assert_eq!(q::<i64>(c, &["PERSIST", "k"]).unwrap(), 1);
    assert_eq!(q::<i64>(c, &["TTL", "k"]).unwrap(), -1);
    assert_eq!(q::<i64>(c, &["TTL", "missing"]).unwrap(), -2);
    assert_eq!(
        q::<i64>(c, &["PEXPIREAT", "k", "1"]).unwrap(),
        1,
        "a past time deletes"
    );
    assert_eq!(q::<i64>(c, &["EXISTS", "k"]).unwrap(), 0);
}

#[test]
fn lazy_and_active_expiry() {
    let s = Server::start(&["--shards", "2", "--hz", "50"]);
    let c = &mut s.conn();
    for i in 0..200 {
        q::<()>(c, &["SET", &format!("tmp:{i}"), "v", "PX", "30"]).unwrap();
    }
    q::<()>(c, &["SET", "keep", "v"]).unwrap();
    // Nobody reads the keys: only the active cycle can remove them.
    assert!(
        eventually(10, || q::<i64>(c, &["DBSIZE"]).unwrap() == 1),
        "active expiry removed the keys"
    );
    let info: String = q(c, &["INFO", "stats"]).unwrap();
    assert!(info.contains("expired_keys:200"), "{info}");
    // Lazy expiry with the active cycle off: the dead key stays in the table until a read meets it, and
    // that read deletes it (DBSIZE counts it until then, expired_keys counts it after).
    q::<()>(c, &["DEBUG", "SET-ACTIVE-EXPIRE", "0"]).unwrap();
    q::<()>(c, &["SET", "lazy", "v", "PX", "1"]).unwrap();
    let server_ms = |c: &mut redis::Connection| {
        let t: Vec<String> = q(c, &["TIME"]).unwrap();
        t[0].parse::<u64>().unwrap() * 1000 + t[1].parse::<u64>().unwrap() / 1000
    };
    let set_at = server_ms(c);
    assert!(eventually(5, || server_ms(c) > set_at + 5));
    assert_eq!(
        q::<i64>(c, &["DBSIZE"]).unwrap(),
        2,
        "not deleted before it is read"
    );
    assert_eq!(q::<Option<String>>(c, &["GET", "lazy"]).unwrap(), None);
    assert_eq!(q::<i64>(c, &["DBSIZE"]).unwrap(), 1, "the read deleted it");
    let info: String = q(c, &["INFO", "stats"]).unwrap();
    assert!(info.contains("expired_keys:201"), "{info}");
}

#[test]
fn rename_copy_move_across_shards() {
    let s = Server::start(&["--shards", "3"]);
    let c = &mut s.conn();
    // Find two keys on different slots far apart (different shards with 3 shards): "a" and "b" qualify
    // whatever the split, and the semantics must not depend on it anyway.
    q::<()>(c, &["SET", "src", "v", "EX", "100"]).unwrap();
    assert_eq!(q::<String>(c, &["RENAME", "src", "dst"]).unwrap(), "OK");
    assert_eq!(q::<Option<String>>(c, &["GET", "src"]).unwrap(), None);
    assert_eq!(q::<String>(c, &["GET", "dst"]).unwrap(), "v");
    assert!(
        q::<i64>(c, &["TTL", "dst"]).unwrap() > 0,
        "RENAME keeps the TTL"
    );
    assert_eq!(err(c, &["RENAME", "nosuch", "x"]), "ERR no such key");
    q::<()>(c, &["SET", "other", "o"]).unwrap();
    assert_eq!(q::<i64>(c, &["RENAMENX", "dst", "other"]).unwrap(), 0);
    assert_eq!(q::<i64>(c, &["RENAMENX", "dst", "fresh"]).unwrap(), 1);
    assert_eq!(q::<String>(c, &["RENAME", "fresh", "fresh"]).unwrap(), "OK");
    assert_eq!(q::<i64>(c, &["COPY", "fresh", "other"]).unwrap(), 0);
    assert_eq!(
        q::<i64>(c, &["COPY", "fresh", "other", "REPLACE"]).unwrap(),
        1
    );
    assert_eq!(q::<String>(c, &["GET", "other"]).unwrap(), "v");
    assert_eq!(
        q::<i64>(c, &["COPY", "fresh", "indb3", "DB", "3"]).unwrap(),
        1
    );
    assert_eq!(
        err(c, &["COPY", "fresh", "fresh"]),
        "ERR source and destination objects are the same"
    );
    assert_eq!(q::<i64>(c, &["MOVE", "fresh", "5"]).unwrap(), 1);
    assert_eq!(q::<i64>(c, &["EXISTS", "fresh"]).unwrap(), 0);
    q::<()>(c, &["SELECT", "5"]).unwrap();
    assert_eq!(q::<String>(c, &["GET", "fresh"]).unwrap(), "v");
    q::<()>(c, &["SELECT", "3"]).unwrap();
    assert_eq!(q::<String>(c, &["GET", "indb3"]).unwrap(), "v");
    assert_eq!(err(c, &["SELECT", "16"]), "ERR DB index is out of range");
    assert_eq!(
        err(c, &["MOVE", "indb3", "3"]),
        "ERR source and destination objects are the same"
    );
    // Valkey's words for a bad index: not a number, or out of range.
    assert_eq!(
        err(c, &["MOVE", "indb3", "x"]),
        "ERR value is not an integer or out of range"
    );
    assert_eq!(
        err(c, &["MOVE", "indb3", "99"]),
        "ERR DB index is out of range"
    );
    assert_eq!(err(c, &["SWAPDB", "x", "1"]), "ERR invalid first DB index");
    assert_eq!(err(c, &["SWAPDB", "1", "x"]), "ERR invalid second DB index");
    assert_eq!(
        err(c, &["SWAPDB", "1", "99"]),
        "ERR DB index is out of range"
    );
}

#[test]
fn scan_keys_randomkey_type_object() {
    let s = Server::start(&["--shards", "3"]);
    let c = &mut s.conn();
    let mut want = HashSet::new();
    for i in 0..500 {
        let k = format!("user:{i}");
        q::<()>(c, &["SET", &k, &i.to_string()]).unwrap();
        want.insert(k);
    }
    q::<()>(c, &["SET", "other", "x"]).unwrap();
    let mut got = HashSet::new();
    let mut cursor = "0".to_string();
    let mut calls = 0;
    loop {
        let (next, keys): (String, Vec<String>) =
            q(c, &["SCAN", &cursor, "MATCH", "user:*", "COUNT", "50"]).unwrap();
        got.extend(keys);
        calls += 1;
        cursor = next;
        if cursor == "0" {
            break;
        }
    }
    assert_eq!(got, want);
    assert!(calls > 3, "COUNT bounds each call ({calls} calls)");
    let keys: Vec<String> = q(c, &["KEYS", "user:1?"]).unwrap();
    assert_eq!(keys.len(), 10);
    let all: Vec<String> = q(c, &["KEYS", "*"]).unwrap();
    assert_eq!(all.len(), 501);
    let (_, none): (String, Vec<String>) =
        q(c, &["SCAN", "0", "TYPE", "list", "COUNT", "10000"]).unwrap();
    assert!(none.is_empty());
    let rk: String = q(c, &["RANDOMKEY"]).unwrap();
    assert!(want.contains(&rk) || rk == "other");
    assert_eq!(q::<String>(c, &["TYPE", "other"]).unwrap(), "string");
    assert_eq!(q::<String>(c, &["TYPE", "nope"]).unwrap(), "none");
    assert_eq!(
        q::<String>(c, &["OBJECT", "ENCODING", "user:7"]).unwrap(),
        "int"
    );
    assert_eq!(
        q::<String>(c, &["OBJECT", "ENCODING", "other"]).unwrap(),
        "embstr"
    );
    q::<()>(c, &["SET", "long", &"x".repeat(100)]).unwrap();
    assert_eq!(
        q::<String>(c, &["OBJECT", "ENCODING", "long"]).unwrap(),
        "raw"
    );
    assert!(q::<i64>(c, &["OBJECT", "IDLETIME", "long"]).unwrap() <= 1);
    assert!(err(c, &["OBJECT", "FREQ", "long"])
        .starts_with("ERR An LFU maxmemory policy is not selected"));
    assert_eq!(
        q::<Option<String>>(c, &["OBJECT", "ENCODING", "nope"]).unwrap(),
        None
    );
    q::<()>(c, &["FLUSHDB"]).unwrap();
    assert_eq!(q::<Option<String>>(c, &["RANDOMKEY"]).unwrap(), None);
}

#[test]
fn multi_key_commands_span_shards() {
    let s = Server::start(&["--shards", "3"]);
    let c = &mut s.conn();
    let keys: Vec<String> = (0..30).map(|i| format!("k{i}")).collect();
    let mut mset = vec!["MSET"];
    for k in &keys {
        mset.push(k);
        mset.push(k);
    }
    q::<()>(c, &mset).unwrap();
    let mut mget = vec!["MGET"];
    mget.extend(keys.iter().map(String::as_str));
    mget.push("missing");
    let vals: Vec<Option<String>> = q(c, &mget).unwrap();
    assert_eq!(vals.len(), 31);
    for (k, v) in keys.iter().zip(&vals) {
        assert_eq!(
            v.as_deref(),
            Some(k.as_str()),
            "values come back in key order"
        );
    }
    assert_eq!(vals[30], None);
    assert_eq!(
        q::<i64>(c, &["EXISTS", "k1", "k2", "k1", "nope"]).unwrap(),
        3
    );
    assert_eq!(q::<i64>(c, &["TOUCH", "k1", "k2", "nope"]).unwrap(), 2);
    assert_eq!(q::<i64>(c, &["MSETNX", "k1", "x", "new1", "y"]).unwrap(), 0);
    assert_eq!(
        q::<i64>(c, &["EXISTS", "new1"]).unwrap(),
        0,
        "MSETNX sets nothing if any key exists"
    );
    assert_eq!(
        q::<i64>(c, &["MSETNX", "new1", "x", "new2", "y", "new3", "z"]).unwrap(),
        1
    );
    assert_eq!(
        q::<i64>(c, &["DEL", "k1", "k2", "k3", "nope", "new1"]).unwrap(),
        4
    );
    assert_eq!(q::<i64>(c, &["UNLINK", "k4", "k5"]).unwrap(), 2);
    assert_eq!(q::<i64>(c, &["DBSIZE"]).unwrap(), 30 - 5 + 2);
    assert_eq!(
        err(c, &["MSET", "a", "1", "b"]),
        "ERR wrong number of arguments for 'mset' command"
    );
}
