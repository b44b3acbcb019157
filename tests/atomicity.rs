//! MSET, RENAME and MSETNX are atomic across shards: concurrent readers never see half of one.

mod common;
use common::Server;
use redis::cmd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tandem_server::slot::{key_slot, slot_owner};

/// Keys that fall on both shards of a 2-shard server, checked rather than assumed.
fn keys_on_both_shards() -> Vec<String> {
    let keys: Vec<String> = ["a", "b", "c", "d"].iter().map(|s| s.to_string()).collect();
    let owners: std::collections::HashSet<usize> = keys
        .iter()
        .map(|k| slot_owner(key_slot(k.as_bytes()), 2))
        .collect();
    assert_eq!(owners.len(), 2, "the test needs keys on both shards");
    keys
}

#[test]
fn mget_never_sees_half_an_mset() {
    let s = Server::start(&["--shards", "2"]);
    let keys = keys_on_both_shards();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (url, keys, stop) = (s.url(), keys.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut c = redis::Client::open(url).unwrap().get_connection().unwrap();
            let mut round = 0u64;
            while !stop.load(Ordering::Relaxed) && round < 3000 {
                let mut m = cmd("MSET");
                for k in &keys {
                    m.arg(k).arg(round);
                }
                m.query::<()>(&mut c).unwrap();
                round += 1;
            }
            round
        })
    };
    let mut c = s.conn();
    let mut checks = 0;
    for _ in 0..3000 {
        let vals: Vec<Option<u64>> = cmd("MGET").arg(&keys).query(&mut c).unwrap();
        if vals[0].is_some() {
            assert!(
                vals.iter().all(|v| *v == vals[0]),
                "torn MSET observed: {vals:?}"
            );
            checks += 1;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let rounds = writer.join().unwrap();
    assert!(checks > 0 && rounds > 0);
}

#[test]
fn renames_back_and_forth_never_lose_or_duplicate() {
    let s = Server::start(&["--shards", "2"]);
    let mut c = s.conn();
    assert_ne!(slot_owner(key_slot(b"a"), 2), slot_owner(key_slot(b"b"), 2));
    cmd("SET")
        .arg("a")
        .arg("payload")
        .query::<()>(&mut c)
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let mover = {
        let (url, stop) = (s.url(), stop.clone());
        std::thread::spawn(move || {
            let mut c = redis::Client::open(url).unwrap().get_connection().unwrap();
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) && n < 2000 {
                let (from, to) = if n % 2 == 0 { ("a", "b") } else { ("b", "a") };
                cmd("RENAME").arg(from).arg(to).query::<()>(&mut c).unwrap();
                n += 1;
            }
        })
    };
    for _ in 0..2000 {
        let n: i64 = cmd("EXISTS").arg("a").arg("b").query(&mut c).unwrap();
        assert_eq!(n, 1, "exactly one of the two names exists at any time");
    }
    stop.store(true, Ordering::Relaxed);
    mover.join().unwrap();
}

/// A pipeline's consecutive commands across shards run in one transaction: a reader pipelining MGETs
/// never sees half of any MSET a writer pipelines, and each pipeline's replies match its commands.
#[test]
fn pipelined_msets_and_mgets_stay_whole() {
    let s = Server::start(&["--shards", "2"]);
    let keys = keys_on_both_shards();
    let writer = {
        let (url, keys) = (s.url(), keys.clone());
        std::thread::spawn(move || {
            let mut c = redis::Client::open(url).unwrap().get_connection().unwrap();
            for batch in 0..300u64 {
                let mut p = redis::pipe();
                for i in 0..8 {
                    let mut m = cmd("MSET");
                    for k in &keys {
                        m.arg(k).arg(batch * 8 + i);
                    }
                    p.add_command(m);
                    // Read back within the pipeline: the MSET just before is seen whole.
                    p.add_command(cmd("MGET").arg(&keys).clone());
                }
                let replies: Vec<redis::Value> = p.query(&mut c).unwrap();
                for (i, pair) in replies.chunks(2).enumerate() {
                    assert_eq!(pair[0], redis::Value::Okay);
                    let vals: Vec<u64> = redis::from_redis_value(&pair[1]).unwrap();
                    assert_eq!(vals, vec![batch * 8 + i as u64; keys.len()]);
                }
            }
        })
    };
    let mut c = s.conn();
    let mut checks = 0;
    while !writer.is_finished() {
        let mut p = redis::pipe();
        for _ in 0..8 {
            p.add_command(cmd("MGET").arg(&keys).clone());
        }
        let all: Vec<Vec<Option<u64>>> = p.query(&mut c).unwrap();
        for vals in all.into_iter().filter(|v| v[0].is_some()) {
            assert!(
                vals.iter().all(|v| *v == vals[0]),
                "torn MSET observed: {vals:?}"
            );
            checks += 1;
        }
    }
    writer.join().unwrap();
    assert!(checks > 0);
}

/// Commands across shards, on one shard, and connection commands mixed in one pipeline answer in order,
/// each seeing the ones before it.
#[test]
fn a_mixed_pipeline_answers_in_order() {
    let s = Server::start(&["--shards", "2"]);
    let mut c = s.conn();
    assert_ne!(slot_owner(key_slot(b"a"), 2), slot_owner(key_slot(b"b"), 2));
    let replies: Vec<redis::Value> = redis::pipe()
        .cmd("SET")
        .arg("a")
        .arg("x")
        .cmd("MSET")
        .arg("a")
        .arg("1")
        .arg("b")
        .arg("2")
        .cmd("GET")
        .arg("a")
        .cmd("MGET")
        .arg("a")
        .arg("b")
        .arg("c")
        .cmd("DEL")
        .arg("a")
        .arg("b")
        .arg("c")
        .cmd("EXISTS")
        .arg("a")
        .arg("b")
        .cmd("SET")
        .arg("a")
        .arg("3")
        .cmd("PING")
        .cmd("MSET")
        .arg("b")
        .arg("4")
        .arg("a")
        .arg("5")
        .cmd("MGET")
        .arg("b")
        .arg("a")
        .query(&mut c)
        .unwrap();
    let text: Vec<String> = replies.iter().map(|v| format!("{v:?}")).collect();
    let expect = [
        "ok",
        "ok",
        "bulk-string('\"1\"')",
        "array([bulk-string('\"1\"'), bulk-string('\"2\"'), nil])",
        "int(2)",
        "int(0)",
        "ok",
        "simple-string(\"PONG\")",
        "ok",
        "array([bulk-string('\"4\"'), bulk-string('\"5\"')])",
    ];

    assert_eq!(text, expect);
}

/// Members moved back and forth between two sets on different shards (SMOVE over gathered copies) are
/// always in exactly one of them for a reader taking both at once.
fn smoves_keep_every_member_in_one_set(s: &Server) {
    let mut c = s.conn();
    assert_ne!(slot_owner(key_slot(b"a"), 2), slot_owner(key_slot(b"b"), 2));
    let members: Vec<String> = (0..20).map(|i| i.to_string()).collect();
    cmd("SADD")
        .arg("a")
        .arg(&members)
        .query::<()>(&mut c)
        .unwrap();
    let movers: Vec<_> = (0..2)
        .map(|w| {
            let url = s.url();
            std::thread::spawn(move || {
                let mut c = redis::Client::open(url).unwrap().get_connection().unwrap();
                let mut moved = 0;
                for i in 0..1500 {
                    let m = ((i * 7 + w * 3) % 20).to_string();
                    let (from, to) = if (i + w) % 2 == 0 {
                        ("a", "b")
                    } else {
                        ("b", "a")
                    };
                    moved += cmd("SMOVE")
                        .arg(from)
                        .arg(to)
                        .arg(m)
                        .query::<i64>(&mut c)
                        .unwrap();
                }
                moved
            })
        })
        .collect();
    let mut checks = 0;
    while movers.iter().any(|m| !m.is_finished()) || checks == 0 {
        let union: Vec<String> = cmd("SUNION").arg("a").arg("b").query(&mut c).unwrap();
        assert_eq!(union.len(), 20, "a member was in neither set");
        let both: Vec<String> = cmd("SINTER").arg("a").arg("b").query(&mut c).unwrap();
        assert!(both.is_empty(), "members in both sets: {both:?}");
        checks += 1;
    }
    let moved: i64 = movers.into_iter().map(|m| m.join().unwrap()).sum();
    assert!(moved > 0);
    let (na, nb): (i64, i64) = redis::pipe()
        .cmd("SCARD")
        .arg("a")
        .cmd("SCARD")
        .arg("b")
        .query(&mut c)
        .unwrap();
    assert_eq!(na + nb, 20);
}

#[test]
fn smoves_across_shards_keep_every_member_in_one_set() {
    smoves_keep_every_member_in_one_set(&Server::start(&["--shards", "2"]));
}

/// The same with a WAL that holds write transactions until their parts are on disk (their shards are
/// released only then).
#[test]
fn smoves_across_shards_with_a_wal_keep_every_member_in_one_set() {
    // The WAL goes to the directory the harness makes for the server.
    let s = Server::start(&[
        "--shards",
        "2",
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
    ]);
    smoves_keep_every_member_in_one_set(&s);
}
