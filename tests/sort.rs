//! SORT and SORT_RO against real processes: BY and GET patterns naming keys on every shard, STORE to a
//! destination on another shard (and its replication), and Valkey's errors.

mod common;
use common::repl::{follow, wait_caught_up};
use common::{err, q, Server};

/// ids 0..n in a list, with weight_<id> = (n - id) * 10 and obj_<id> = {name: "n<id>"}: the weights and
/// objects hash to slots on both shards.
fn dataset(c: &mut redis::Connection, n: i64) {
    for id in 0..n {
        q::<i64>(c, &["RPUSH", "ids", &id.to_string()]).unwrap();
        q::<()>(
            c,
            &["SET", &format!("weight_{id}"), &((n - id) * 10).to_string()],
        )
        .unwrap();
        q::<i64>(
            c,
            &["HSET", &format!("obj_{id}"), "name", &format!("n{id}")],
        )
        .unwrap();
    }
}

#[test]
fn by_and_get_patterns_read_keys_on_every_shard() {
    let s = Server::start(&["--shards", "2"]);
    let c = &mut s.conn();
    dataset(c, 20);
    // Heaviest id first is the lightest weight: BY weight_* reverses the list.
    let by: Vec<String> = q(c, &["SORT", "ids", "BY", "weight_*"]).unwrap();
    let want: Vec<String> = (0..20).rev().map(|i| i.to_string()).collect();
    assert_eq!(by, want);
    let got: Vec<Option<String>> = q(
        c,
        &[
            "SORT",
            "ids",
            "BY",
            "weight_*",
            "LIMIT",
            "2",
            "3",
            "GET",
            "#",
            "GET",
            "obj_*->name",
            "GET",
            "nokey_*",
        ],
    )
    .unwrap();
    let want: Vec<Option<String>> = [17, 16, 15]
        .iter()
        .flat_map(|i| [Some(i.to_string()), Some(format!("n{i}")), None])
        .collect();
    assert_eq!(got, want);
    // The same read through SORT_RO; BY without a star keeps the list's order.
    let ro: Vec<String> = q(
        c,
        &["SORT_RO", "ids", "BY", "nosort", "DESC", "LIMIT", "0", "2"],
    )
    .unwrap();
    assert_eq!(ro, vec!["19", "18"]);
}

#[test]
fn store_writes_the_result_on_its_shard_and_replicates_it() {
    let primary = Server::start(&["--shards", "2"]);
    let replica = Server::start(&["--shards", "3"]);
    follow(&replica, &primary);
    wait_caught_up(&primary, &replica, 60);
    let c = &mut primary.conn();
    dataset(c, 10);
    // ids and out hash to different shards of 2 (slots 3296 and 16101).
    let n: i64 = q(
        c,
        &[
            "SORT",
            "ids",
            "BY",
            "weight_*",
            "GET",
            "obj_*->name",
            "STORE",
            "out",
        ],
    )
    .unwrap();
    assert_eq!(n, 10);
    let want: Vec<String> = (0..10).rev().map(|i| format!("n{i}")).collect();
    assert_eq!(
        q::<Vec<String>>(c, &["LRANGE", "out", "0", "-1"]).unwrap(),
        want
    );
    // An empty result deletes the destination.
    assert_eq!(
        q::<i64>(c, &["SORT", "missing", "STORE", "out"]).unwrap(),
        0
    );
    assert_eq!(q::<i64>(c, &["EXISTS", "out"]).unwrap(), 0);
    q::<i64>(c, &["SORT", "ids", "DESC", "STORE", "out2"]).unwrap();
    wait_caught_up(&primary, &replica, 60);
    let r = &mut replica.conn();
    assert_eq!(q::<i64>(r, &["EXISTS", "out"]).unwrap(), 0);
    let want: Vec<String> = (0..10).rev().map(|i| i.to_string()).collect();
    assert_eq!(
        q::<Vec<String>>(r, &["LRANGE", "out2", "0", "-1"]).unwrap(),
        want
    );
}

#[test]
fn errors_are_valkeys() {
    let s = Server::start(&["--shards", "2"]);
    let c = &mut s.conn();
    q::<()>(c, &["SET", "str", "x"]).unwrap();
    assert!(err(c, &["SORT", "str"]).starts_with("WRONGTYPE"));
    q::<i64>(c, &["RPUSH", "l", "1", "a"]).unwrap();
    assert_eq!(
        err(c, &["SORT", "l"]),
        "ERR One or more scores can't be converted into double"
    );
    assert_eq!(
        q::<Vec<String>>(c, &["SORT", "l", "ALPHA"]).unwrap(),
        vec!["1", "a"]
    );
    assert!(err(c, &["SORT_RO", "l", "STORE", "d"]).contains("syntax error"));
    assert!(err(c, &["SORT", "l", "LIMIT", "x", "1"]).contains("not an integer"));
    assert_eq!(
        q::<Vec<String>>(
            c,
            &["COMMAND", "GETKEYS", "SORT", "abc", "STORE", "a", "STORE", "def"]
        )
        .unwrap(),
        vec!["abc", "def"]
    );
}
