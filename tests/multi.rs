//! MULTI/EXEC/WATCH against real processes: queued replies and EXECABORT as in Valkey, atomicity across
//! shards under concurrent writers, WATCH, and transactions replicated whole.

mod common;
use common::repl::{digest, follow, wait_caught_up};
use common::{err, q, Server};

#[test]
fn queued_commands_errors_and_execabort() {
    let s = Server::start(&["--shards", "2"]);
    // Raw replies: a client library turns an EXEC array holding an error into an error.
    let mut raw = s.raw();
    let mut say = |cmd: &[&str]| raw.say(cmd);
    assert_eq!(say(&["MULTI"]), vec!["+OK"]);
    assert_eq!(say(&["SET", "a", "1"]), vec!["+QUEUED"]);
    assert_eq!(say(&["HSET", "a", "f", "v"]), vec!["+QUEUED"]);
    assert_eq!(say(&["INCR", "a"]), vec!["+QUEUED"]);
    assert_eq!(
        say(&["EXEC"]),
        vec![
            "*3",
            "+OK",
            "-WRONGTYPE Operation against a key holding the wrong kind of value",
            ":2"
        ],
        "a command error does not stop the rest"
    );
    // A nested MULTI, a WATCH inside MULTI (with or without keys) and a denyoom command over maxmemory
    // are refused and doom the transaction (Valkey's).
    for bad in [
        &["MULTI"][..],
        &["WATCH", "x"],
        &["WATCH"],
        &["LPUSH", "l", "v"],
    ] {
        assert_eq!(say(&["MULTI"]), vec!["+OK"]);
        if bad[0] == "LPUSH" {
            let mut admin = s.conn();
            q::<()>(&mut admin, &["CONFIG", "SET", "maxmemory", "1"]).unwrap();
        }
        let e = say(bad);
        let mut admin = s.conn();
        q::<()>(&mut admin, &["CONFIG", "SET", "maxmemory", "0"]).unwrap();
        assert!(
            e[0] == "-ERR MULTI calls can not be nested"
                || e[0] == "-ERR WATCH inside MULTI is not allowed"
                || e[0] == "-ERR wrong number of arguments for 'watch' command"
                || e[0].starts_with("-OOM command not allowed"),
            "{e:?}"
        );
        assert_eq!(
            say(&["EXEC"]),
            vec!["-EXECABORT Transaction discarded because of previous errors."]
        );
    }
    let c = &mut s.conn();
    assert_eq!(q::<String>(c, &["MULTI"]).unwrap(), "OK");
    assert!(err(c, &["NOSUCHCMD"]).starts_with("ERR unknown command 'NOSUCHCMD'"));
    assert_eq!(
        err(c, &["GET"]),
        "ERR wrong number of arguments for 'get' command"
    );
    assert_eq!(
        err(c, &["EXEC"]),
        "EXECABORT Transaction discarded because of previous errors."
    );
    assert_eq!(err(c, &["EXEC"]), "ERR EXEC without MULTI");
    assert_eq!(err(c, &["DISCARD"]), "ERR DISCARD without MULTI");
    q::<()>(c, &["MULTI"]).unwrap();
    q::<()>(c, &["SET", "a", "discarded"]).unwrap();
    assert_eq!(q::<String>(c, &["DISCARD"]).unwrap(), "OK");
    assert_eq!(q::<String>(c, &["GET", "a"]).unwrap(), "2");
}

#[test]
fn watch_aborts_exec_when_the_key_changed() {
    let s = Server::start(&["--shards", "2"]);
    let (c, other) = (&mut s.conn(), &mut s.conn());
    q::<()>(c, &["SET", "w", "1"]).unwrap();
    q::<()>(c, &["WATCH", "w", "unrelated"]).unwrap();
    q::<()>(other, &["SET", "w", "2"]).unwrap();
    q::<()>(c, &["MULTI"]).unwrap();
    q::<()>(c, &["SET", "w", "3"]).unwrap();
    assert_eq!(q::<Option<Vec<String>>>(c, &["EXEC"]).unwrap(), None);
    assert_eq!(q::<String>(c, &["GET", "w"]).unwrap(), "2");
    // Not changed: EXEC runs; the watch is gone after EXEC.
    q::<()>(c, &["WATCH", "w"]).unwrap();
    q::<()>(other, &["SET", "elsewhere", "x"]).unwrap();
    q::<()>(c, &["MULTI"]).unwrap();
    q::<()>(c, &["SET", "w", "4"]).unwrap();
    assert_eq!(q::<Vec<String>>(c, &["EXEC"]).unwrap(), vec!["OK"]);
    // Expiry of a watched key counts as a change.
    q::<()>(c, &["SET", "t", "1", "PX", "50"]).unwrap();
    q::<()>(c, &["WATCH", "t"]).unwrap();
    assert!(common::eventually(5, || q::<Option<String>>(
        other,
        &["GET", "t"]
    )
    .unwrap()
    .is_none()));
    q::<()>(c, &["MULTI"]).unwrap();
    q::<()>(c, &["SET", "t", "2"]).unwrap();
    assert_eq!(q::<Option<Vec<String>>>(c, &["EXEC"]).unwrap(), None);
    // UNWATCH forgets.
    q::<()>(c, &["WATCH", "w"]).unwrap();
    q::<()>(other, &["SET", "w", "5"]).unwrap();
    q::<()>(c, &["UNWATCH"]).unwrap();
    q::<()>(c, &["MULTI"]).unwrap();
    q::<()>(c, &["GET", "w"]).unwrap();
    assert_eq!(q::<Vec<String>>(c, &["EXEC"]).unwrap(), vec!["5"]);
}

#[test]
fn keys_that_did_not_change_logically_do_not_abort_exec() {
    let s = Server::start(&["--shards", "2", "--enable-debug-command", "yes"]);
    let (c, other) = (&mut s.conn(), &mut s.conn());
    let exec_runs = |c: &mut redis::Connection| {
        q::<()>(c, &["MULTI"]).unwrap();
        q::<()>(c, &["PING"]).unwrap();
        q::<Option<Vec<String>>>(c, &["EXEC"]).unwrap().is_some()
    };
    // A key already expired when watched is deleted by a later read: nothing changed.
    q::<()>(c, &["DEBUG", "SET-ACTIVE-EXPIRE", "0"]).unwrap();
    q::<()>(c, &["SET", "stale", "v", "PX", "1"]).unwrap();
    // OBJECT reads without deleting: the key is expired but still held (DBSIZE counts it).
    assert!(common::eventually(5, || q::<String>(
        other,
        &["OBJECT", "ENCODING", "stale"]
    )
    .is_err()));
    assert_eq!(q::<i64>(other, &["DBSIZE"]).unwrap(), 1);
    q::<()>(c, &["WATCH", "stale"]).unwrap();
    assert_eq!(q::<i64>(other, &["EXISTS", "stale"]).unwrap(), 0);
    assert!(exec_runs(c), "the deletion of an expired key is no change");
    // FLUSHDB and SWAPDB touch only watched keys that exist on one side.
    q::<()>(c, &["WATCH", "absent"]).unwrap();
    q::<()>(other, &["FLUSHDB"]).unwrap();
    assert!(exec_runs(c), "FLUSHDB of a missing key is no change");
    q::<()>(c, &["WATCH", "absent"]).unwrap();
    q::<()>(other, &["SWAPDB", "0", "1"]).unwrap();
    assert!(exec_runs(c), "SWAPDB of two missing keys is no change");
    q::<()>(other, &["SELECT", "1"]).unwrap();
    q::<()>(other, &["SET", "absent", "in-db-1"]).unwrap();
    q::<()>(c, &["WATCH", "absent"]).unwrap();
    q::<()>(other, &["SWAPDB", "0", "1"]).unwrap();
    assert!(!exec_runs(c), "SWAPDB bringing the key in is a change");
    q::<()>(c, &["WATCH", "absent"]).unwrap();
    q::<()>(other, &["FLUSHALL"]).unwrap();
    assert!(!exec_runs(c), "FLUSHALL of a present key is a change");
    // SMOVE of a member the destination already holds does not write the destination.
    q::<i64>(other, &["SADD", "{s}src", "a", "b"]).unwrap();
    q::<i64>(other, &["SADD", "{s}dst", "a"]).unwrap();
    q::<()>(c, &["WATCH", "{s}dst"]).unwrap();
    assert_eq!(
        q::<i64>(other, &["SMOVE", "{s}src", "{s}dst", "a"]).unwrap(),
        1
    );
    assert!(exec_runs(c), "the destination did not change");
}

#[test]
fn save_shutdown_and_oom_refuse_the_transaction_whole() {
    let s = Server::start(&["--shards", "2"]);
    let c = &mut s.conn();
    for cmd in [&["SAVE"][..], &["SHUTDOWN", "NOSAVE"]] {
        q::<()>(c, &["MULTI"]).unwrap();
        assert_eq!(err(c, cmd), "ERR Command not allowed inside a transaction");
        assert_eq!(
            err(c, &["EXEC"]),
            "EXECABORT Transaction discarded because of previous errors."
        );
    }
    // Over maxmemory at EXEC (not when queued), a transaction with a write that may use memory is
    // refused before anything runs; one of reads only runs.
    let admin = &mut s.conn();
    q::<()>(c, &["SET", "x", "1"]).unwrap();
    q::<()>(c, &["MULTI"]).unwrap();
    q::<()>(c, &["SET", "x", "2"]).unwrap();
    q::<()>(c, &["GET", "x"]).unwrap();
    q::<()>(admin, &["CONFIG", "SET", "maxmemory", "1"]).unwrap();
    assert_eq!(
        err(c, &["EXEC"]),
        "EXECABORT Transaction discarded because of: OOM command not allowed when used memory > 'maxmemory'."
    );
    q::<()>(c, &["MULTI"]).unwrap();
    q::<()>(c, &["GET", "x"]).unwrap();
    assert_eq!(q::<Vec<String>>(c, &["EXEC"]).unwrap(), vec!["1"]);
    q::<()>(admin, &["CONFIG", "SET", "maxmemory", "0"]).unwrap();
}

/// RENAME, COPY and SORT ... STORE queued in MULTI run inside EXEC's transaction: a reader never sees
/// the key between the two renames of one EXEC (old and dst hash to different shards of 2).
#[test]
fn key_commands_across_shards_run_inside_execs_transaction() {
    let s = Server::start(&["--shards", "2"]);
    let c = &mut s.conn();
    q::<()>(c, &["SET", "old", "v"]).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let mut wc = s.conn();
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let (a, b): (String, String) = redis::pipe()
                    .atomic()
                    .cmd("RENAME")
                    .arg("old")
                    .arg("dst")
                    .cmd("RENAME")
                    .arg("dst")
                    .arg("old")
                    .query(&mut wc)
                    .unwrap();
                assert_eq!((a.as_str(), b.as_str()), ("OK", "OK"));
                n += 1;
            }
            n
        })
    };
    let mut reads = 0;
    while reads < 30000 {
        let v: Option<String> = q(c, &["GET", "old"]).unwrap();
        assert_eq!(
            v.as_deref(),
            Some("v"),
            "read {reads} saw the key between two renames"
        );
        reads += 1;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(writer.join().unwrap() > 0);
    // The other key specials in MULTI: their replies in place.
    q::<i64>(c, &["RPUSH", "l", "3", "1", "2"]).unwrap();
    let (copied, sorted, stored): (i64, Vec<String>, i64) = redis::pipe()
        .atomic()
        .cmd("COPY")
        .arg("old")
        .arg("dst")
        .cmd("SORT")
        .arg("l")
        .cmd("SORT")
        .arg("l")
        .arg("DESC")
        .arg("STORE")
        .arg("dst2")
        .query(c)
        .unwrap();
    assert_eq!(
        (copied, sorted, stored),
        (1, vec!["1".into(), "2".into(), "3".into()], 3)
    );
}

/// Writers move units between keys on different shards in transactions; a reader never sees a total
/// other than the constant one.
#[test]
fn exec_is_atomic_across_shards_under_concurrent_writers() {
    let s = Server::start(&["--shards", "3"]);
    let c = &mut s.conn();
    let keys = ["acct:1", "acct:2", "acct:3", "acct:4"];
    for k in keys {
        q::<()>(c, &["SET", k, "1000"]).unwrap();
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..3 {
        let mut wc = s.conn();
        let stop = stop.clone();
        writers.push(std::thread::spawn(move || {
            let mut i = w;
            let mut done = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let (from, to) = (keys[i % 4], keys[(i + 1 + w) % 4]);
                let mut p = redis::pipe();
                p.atomic()
                    .cmd("DECRBY")
                    .arg(from)
                    .arg(7)
                    .cmd("INCRBY")
                    .arg(to)
                    .arg(7)
                    .cmd("HINCRBY")
                    .arg("log")
                    .arg(w)
                    .arg(1);
                let _: redis::Value = p.query(&mut wc).unwrap();
                i += 1;
                done += 1;
            }
            done
        }));
    }
    let mut reads = 0;
    while reads < 2000 {
        let v: Vec<i64> = q(c, &["MGET", keys[0], keys[1], keys[2], keys[3]]).unwrap();
        assert_eq!(
            v.iter().sum::<i64>(),
            4000,
            "a transaction was seen half done: {v:?}"
        );
        reads += 1;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let total: i64 = writers.into_iter().map(|h| h.join().unwrap()).sum();
    assert!(total > 10, "writers ran: {total}");
    let logged: Vec<i64> = q(c, &["HVALS", "log"]).unwrap();
    assert_eq!(logged.iter().sum::<i64>(), total);
}

/// FLUSHALL, DBSIZE and KEYS inside EXEC run in its transaction: a reader never sees the keys the
/// transaction set before its FLUSHALL, nor the empty keyspace between the FLUSHALL and the sets after it.
#[test]
fn a_flushall_inside_exec_stays_inside_it() {
    let s = Server::start(&["--shards", "2"]);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (mut wc, stop) = (s.conn(), stop.clone());
        std::thread::spawn(move || {
            let mut rounds = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && rounds < 2000 {
                let (n, keys): (i64, Vec<String>) = redis::pipe()
                    .atomic()
                    .cmd("MSET")
                    .arg("a")
                    .arg("x")
                    .arg("b")
                    .arg("x")
                    .ignore()
                    .cmd("FLUSHALL")
                    .ignore()
                    .cmd("SET")
                    .arg("a")
                    .arg("y")
                    .ignore()
                    .cmd("DBSIZE")
                    .cmd("KEYS")
                    .arg("*")
                    .cmd("SET")
                    .arg("b")
                    .arg("y")
                    .ignore()
                    .query(&mut wc)
                    .unwrap();
                assert_eq!((n, keys), (1, vec!["a".to_string()]));
                rounds += 1;
            }
            rounds
        })
    };
    let c = &mut s.conn();
    let mut seen_done = 0;
    while seen_done < 500 && !writer.is_finished() {
        let v: Vec<Option<String>> = q(c, &["MGET", "a", "b"]).unwrap();
        match v.as_slice() {
            [None, None] if seen_done == 0 => {}
            [Some(a), Some(b)] if a == "y" && b == "y" => seen_done += 1,
            _ => panic!("a transaction was seen half done: {v:?}"),
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(writer.join().unwrap() > 0);
    assert!(seen_done > 0);
}

#[test]
fn a_transaction_is_replicated_whole_to_other_shard_counts() {
    let primary = Server::start(&["--shards", "2"]);
    let replica = Server::start(&["--shards", "3"]);
    follow(&replica, &primary);
    let c = &mut primary.conn();
    for i in 0..200 {
        let mut p = redis::pipe();
        p.atomic()
            .cmd("SADD")
            .arg(format!("s{i}"))
            .arg(i)
            .cmd("RPUSH")
            .arg(format!("l{}", i % 7))
            .arg(i)
            .cmd("SUNIONSTORE")
            .arg(format!("u{i}"))
            .arg(format!("s{i}"))
            .arg("s0")
            .cmd("INCR")
            .arg("n");
        let _: redis::Value = p.query(c).unwrap();
    }
    wait_caught_up(&primary, &replica, 60);
    assert_eq!(digest(&mut replica.conn()), digest(c));
    assert_eq!(q::<i64>(&mut replica.conn(), &["GET", "n"]).unwrap(), 200);
}

/// A read-only replica refuses a write queued in MULTI as Valkey does (the error at queue time, EXEC then
/// EXECABORT), and a write queued before the node became a replica is refused at EXEC: neither runs.
#[test]
fn a_read_only_replica_refuses_writes_queued_in_multi() {
    let p = Server::start(&["--shards", "2"]);
    let r = Server::start(&["--shards", "2"]);
    let mut raw = r.raw();
    let mut say = |cmd: &[&str]| raw.say(cmd);
    // Queued while still a primary, EXEC after it became a replica.
    assert_eq!(say(&["MULTI"]), vec!["+OK"]);
    assert_eq!(say(&["SET", "early", "1"]), vec!["+QUEUED"]);
    follow(&r, &p);
    // Past its sync (while loading, everything is refused with LOADING).
    wait_caught_up(&p, &r, 30);
    assert_eq!(
        say(&["EXEC"]),
        vec!["-EXECABORT Transaction discarded because of: READONLY You can't write against a read only replica."]
    );
    assert_eq!(say(&["MULTI"]), vec!["+OK"]);
    assert_eq!(say(&["GET", "k"]), vec!["+QUEUED"]);
    assert_eq!(
        say(&["LPUSH", "q", "1"]),
        vec!["-READONLY You can't write against a read only replica."]
    );
    assert_eq!(
        say(&["BLPOP", "q", "0"]),
        vec!["-READONLY You can't write against a read only replica."]
    );
    assert_eq!(
        say(&["EXEC"]),
        vec!["-EXECABORT Transaction discarded because of previous errors."]
    );
    // Reads still queue and run.
    assert_eq!(say(&["MULTI"]), vec!["+OK"]);
    assert_eq!(say(&["EXISTS", "q", "early"]), vec!["+QUEUED"]);
    assert_eq!(say(&["EXEC"]), vec!["*1", ":0"]);
}
