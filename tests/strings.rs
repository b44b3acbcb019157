//! String commands against a real 2-shard server, compared with Valkey's documented replies.

mod common;
use common::{err, q, Server};
use redis::Value;

#[test]
fn set_options() {
    let s = Server::start(&["--shards", "2"]);
    let c = &mut s.conn();
    assert_eq!(q::<String>(c, &["SET", "k", "v1"]).unwrap(), "OK");
    assert_eq!(
        q::<Option<String>>(c, &["SET", "k", "v2", "NX"]).unwrap(),
        None
    );
    assert_eq!(
        q::<Option<String>>(c, &["SET", "k", "v2", "XX", "GET"]).unwrap(),
        Some("v1".into())
    );
    assert_eq!(
        q::<Option<String>>(c, &["SET", "nokey", "v", "XX"]).unwrap(),
        None
    );
    assert_eq!(
        q::<String>(c, &["SET", "k", "v3", "EX", "100"]).unwrap(),
        "OK"
    );
    let ttl: i64 = q(c, &["TTL", "k"]).unwrap();
    assert!((99..=100).contains(&ttl), "{ttl}");
    q::<()>(c, &["SET", "k", "v4", "KEEPTTL"]).unwrap();
    assert!(q::<i64>(c, &["PTTL", "k"]).unwrap() > 90_000);
    q::<()>(c, &["SET", "k", "v5"]).unwrap();
    assert_eq!(
        q::<i64>(c, &["TTL", "k"]).unwrap(),
        -1,
        "plain SET clears the TTL"
    );
    assert_eq!(
        err(c, &["SET", "k", "v", "EX", "0"]),
        "ERR invalid expire time in 'set' command"
    );
    assert_eq!(
        err(c, &["SET", "k", "v", "EX", "x"]),
        "ERR value is not an integer or out of range"
    );
    assert_eq!(err(c, &["SET", "k", "v", "NX", "XX"]), "ERR syntax error");
    assert_eq!(
        err(c, &["SET", "k", "v", "EX", "10", "PX", "10"]),
        "ERR syntax error"
    );
    assert_eq!(
        err(c, &["SET", "k", "v", "EX", "9223372036854775807"]),
        "ERR invalid expire time in 'set' command"
    );
    // An absolute time in the past sets and removes at once.
    assert_eq!(
        q::<String>(c, &["SET", "past", "v", "PXAT", "1"]).unwrap(),
        "OK"
    );
    assert_eq!(q::<i64>(c, &["EXISTS", "past"]).unwrap(), 0);
}

#[test]
fn counters() {
    let s = Server::start(&["--shards", "2"]);
    let c = &mut s.conn();
    assert_eq!(q::<i64>(c, &["INCR", "n"]).unwrap(), 1);
    assert_eq!(q::<i64>(c, &["INCRBY", "n", "41"]).unwrap(), 42);
    assert_eq!(q::<i64>(c, &["DECRBY", "n", "2"]).unwrap(), 40);
    assert_eq!(q::<i64>(c, &["DECR", "n"]).unwrap(), 39);
    q::<()>(c, &["SET", "big", "9223372036854775807"]).unwrap();
    assert_eq!(
        err(c, &["INCR", "big"]),
        "ERR increment or decrement would overflow"
    );
    q::<()>(c, &["SET", "s", "abc"]).unwrap();
    assert_eq!(
        err(c, &["INCR", "s"]),
        "ERR value is not an integer or out of range"
    );
    q::<()>(c, &["SET", "sp", " 1"]).unwrap();
    assert_eq!(
        err(c, &["INCR", "sp"]),
        "ERR value is not an integer or out of range"
    );
    assert_eq!(
        q::<String>(c, &["INCRBYFLOAT", "f", "10.5"]).unwrap(),
        "10.5"
    );
    assert_eq!(
        q::<String>(c, &["INCRBYFLOAT", "f", "0.1"]).unwrap(),
        "10.6"
    );
    assert_eq!(q::<String>(c, &["INCRBYFLOAT", "f", "-5.6"]).unwrap(), "5");
    assert_eq!(
        q::<String>(c, &["INCRBYFLOAT", "g", "5.0e3"]).unwrap(),
        "5000"
    );
    assert_eq!(
        err(c, &["INCRBYFLOAT", "f", "abc"]),
        "ERR value is not a valid float"
    );
    q::<()>(c, &["SET", "inf", "1e308"]).unwrap();
    assert_eq!(
        err(c, &["INCRBYFLOAT", "inf", "1e308"]),
        "ERR increment would produce NaN or Infinity"
    );
    // INCR, INCRBYFLOAT and APPEND keep an existing TTL.
    q::<()>(c, &["SET", "t", "1", "EX", "100"]).unwrap();
    q::<i64>(c, &["INCR", "t"]).unwrap();
    assert!(q::<i64>(c, &["TTL", "t"]).unwrap() > 0);
    q::<String>(c, &["INCRBYFLOAT", "t", "0.5"]).unwrap();
    assert!(q::<i64>(c, &["TTL", "t"]).unwrap() > 0);
    assert_eq!(q::<i64>(c, &["APPEND", "t", "0"]).unwrap(), 4);
    assert_eq!(q::<String>(c, &["GET", "t"]).unwrap(), "2.50");
    assert!(q::<i64>(c, &["TTL", "t"]).unwrap() > 0);
}

#[test]
fn ranges_and_appends() {
    let s = Server::start(&["--shards", "2"]);
    let c = &mut s.conn();
    assert_eq!(q::<i64>(c, &["APPEND", "a", "Hello"]).unwrap(), 5);
    assert_eq!(q::<i64>(c, &["APPEND", "a", " World"]).unwrap(), 11);
    assert_eq!(q::<i64>(c, &["STRLEN", "a"]).unwrap(), 11);
    assert_eq!(
        q::<String>(c, &["GETRANGE", "a", "0", "4"]).unwrap(),
        "Hello"
    );
    assert_eq!(
        q::<String>(c, &["GETRANGE", "a", "-5", "-1"]).unwrap(),
        "World"
    );
    assert_eq!(q::<String>(c, &["GETRANGE", "a", "5", "3"]).unwrap(), "");
    assert_eq!(q::<String>(c, &["GETRANGE", "a", "-1", "-5"]).unwrap(), "");
    assert_eq!(
        q::<String>(c, &["SUBSTR", "a", "0", "100"]).unwrap(),
        "Hello World"
    );
    assert_eq!(q::<i64>(c, &["SETRANGE", "a", "6", "Redis"]).unwrap(), 11);
    assert_eq!(q::<String>(c, &["GET", "a"]).unwrap(), "Hello Redis");
    assert_eq!(q::<i64>(c, &["SETRANGE", "pad", "3", "x"]).unwrap(), 4);
    assert_eq!(q::<Vec<u8>>(c, &["GET", "pad"]).unwrap(), b"\0\0\0x");
    assert_eq!(q::<i64>(c, &["SETRANGE", "none", "5", ""]).unwrap(), 0);
    assert_eq!(q::<i64>(c, &["EXISTS", "none"]).unwrap(), 0);
    assert_eq!(
        err(c, &["SETRANGE", "a", "-1", "x"]),
        "ERR offset is out of range"
    );
    assert_eq!(
        err(c, &["SETRANGE", "a", "536870912", "x"]),
        "ERR string exceeds maximum allowed size (proto-max-bulk-len)"
    );
}

#[test]
fn get_variants() {
    let s = Server::start(&["--shards", "2"]);
    let c = &mut s.conn();
    q::<()>(c, &["SET", "k", "v"]).unwrap();
    assert_eq!(
        q::<Option<String>>(c, &["GETSET", "k", "w"]).unwrap(),
        Some("v".into())
    );
    assert_eq!(
        q::<Option<String>>(c, &["GETEX", "k", "EX", "50"]).unwrap(),
        Some("w".into())
    );
    assert!(q::<i64>(c, &["TTL", "k"]).unwrap() > 0);
    assert_eq!(
        q::<Option<String>>(c, &["GETEX", "k", "PERSIST"]).unwrap(),
        Some("w".into())
    );
    assert_eq!(q::<i64>(c, &["TTL", "k"]).unwrap(), -1);
    assert_eq!(
        err(c, &["GETEX", "k", "EX", "1", "PERSIST"]),
        "ERR syntax error"
    );
    assert_eq!(
        q::<Option<String>>(c, &["GETDEL", "k"]).unwrap(),
        Some("w".into())
    );
    assert_eq!(q::<Option<String>>(c, &["GETDEL", "k"]).unwrap(), None);
    assert_eq!(q::<i64>(c, &["SETNX", "n", "1"]).unwrap(), 1);
    assert_eq!(q::<i64>(c, &["SETNX", "n", "2"]).unwrap(), 0);
    assert_eq!(q::<String>(c, &["SETEX", "e", "10", "v"]).unwrap(), "OK");
    assert_eq!(
        q::<String>(c, &["PSETEX", "pe", "10000", "v"]).unwrap(),
        "OK"
    );
    assert!(q::<i64>(c, &["PTTL", "pe"]).unwrap() > 9000);
    assert_eq!(
        err(c, &["SETEX", "e", "-1", "v"]),
        "ERR invalid expire time in 'setex' command"
    );
}

#[test]
fn lcs_like_valkey() {
    let s = Server::start(&["--shards", "2"]);
    let c = &mut s.conn();
    // The example from Valkey's documentation; the two keys hash to different slots.
    q::<()>(c, &["MSET", "key1", "ohmytext", "key2", "mynewtext"]).unwrap();
    assert_eq!(q::<String>(c, &["LCS", "key1", "key2"]).unwrap(), "mytext");
    assert_eq!(q::<i64>(c, &["LCS", "key1", "key2", "LEN"]).unwrap(), 6);
    let v: Value = q(
        c,
        &[
            "LCS",
            "key1",
            "key2",
            "IDX",
            "MINMATCHLEN",
            "4",
            "WITHMATCHLEN",
        ],
    )
    .unwrap();
    let pair = |a, b| Value::Array(vec![Value::Int(a), Value::Int(b)]);
    let bulk = |s: &str| Value::BulkString(s.as_bytes().to_vec());
    let want = Value::Array(vec![
        bulk("matches"),
        Value::Array(vec![Value::Array(vec![
            pair(4, 7),
            pair(5, 8),
            Value::Int(4),
        ])]),
        bulk("len"),
        Value::Int(6),
    ]);
    assert_eq!(v, want);
}
