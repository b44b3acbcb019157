//! Durability mode as a user and an operator meet it (docs/durability.md): writes refused before they
//! apply when too few replicas are eligible; acknowledged means every eligible replica applied it; a
//! replica is granted after it caught up and revoked when its link drops, when it stops acknowledging,
//! when it resyncs, or when FORGET says so; timeouts say the outcome is not known; readers of an
//! uncommitted key wait; only an eligible replica may be promoted.

mod common;
use common::repl::{field, follow, info, num, wait_caught_up};
use common::{err, eventually, q, Server};
use std::time::{Duration, Instant};

fn primary(extra: &[&str]) -> Server {
    let mut args = vec!["--shards", "2", "--durability", "yes"];
    args.extend_from_slice(extra);
    Server::start(&args)
}

/// A replica of `p` (durability on, as an operator configures every node).
fn replica_of(p: &Server) -> Server {
    let r = Server::start(&["--shards", "2", "--durability", "yes"]);
    follow(&r, p);
    r
}

fn slave_eligible(p: &Server, i: usize) -> bool {
    field(&mut p.conn(), "replication", &format!("slave{i}")).contains("eligible=yes")
}

fn self_eligible(r: &Server) -> bool {
    field(&mut r.conn(), "replication", "eligible") == "yes"
}

fn wait_eligible(p: &Server, r: &Server) {
    assert!(
        eventually(30, || self_eligible(r)
            && num(
                &mut p.conn(),
                "replication",
                "durability_eligible_replicas"
            ) >= 1),
        "not granted.\nprimary:\n{}\nreplica:\n{}",
        p.log_text(),
        r.log_text()
    );
}

fn node_id(s: &Server) -> String {
    field(&mut s.conn(), "server", "tandem_node_id")
}

/// Replies waiting for acknowledgements on the primary (DURABILITY STATUS).
fn waiting(p: &Server) -> i64 {
    let v: Vec<redis::Value> = q(&mut p.conn(), &["DURABILITY", "STATUS"]).unwrap();
    let i = v
        .iter()
        .position(|x| matches!(x, redis::Value::BulkString(b) if b == b"waiting"))
        .unwrap();
    match &v[i + 1] {
        redis::Value::Int(n) => *n,
        other => panic!("{other:?}"),
    }
}

#[test]
fn writes_are_refused_until_a_replica_is_eligible_then_acknowledged_only_once_replicated() {
    let p = primary(&[]);
    let mut c = p.conn();
    assert_eq!(
        err(&mut c, &["SET", "k", "v"]),
        "NOREPLICAS Not enough eligible replicas: 0 of 1"
    );
    // Refused before it applied anything; reads are served.
    assert_eq!(q::<Option<String>>(&mut c, &["GET", "k"]).unwrap(), None);
    let r = replica_of(&p);
    wait_eligible(&p, &r);
    assert!(slave_eligible(&p, 0));
    // Every acknowledged write is on the replica when its reply arrives: read it there at once.
    let mut rc = r.conn();
    for i in 0..200 {
        let (k, v) = (format!("key:{i}"), format!("v{i}"));
        let _: () = q(&mut c, &["SET", &k, &v]).unwrap();
        assert_eq!(q::<String>(&mut rc, &["GET", &k]).unwrap(), v, "{k}");
    }
    // Pipelined and multi-shard writes too.
    let mut pipe = redis::pipe();
    for i in 0..100 {
        pipe.cmd("INCR").arg(format!("n:{}", i % 7));
    }
    pipe.cmd("MSET")
        .arg("m:a")
        .arg("1")
        .arg("m:b")
        .arg("2")
        .arg("m:c")
        .arg("3");
    let _: Vec<redis::Value> = pipe.query(&mut c).unwrap();
    let total: i64 = (0..7)
        .map(|i| q::<i64>(&mut rc, &["GET", &format!("n:{i}")]).unwrap())
        .sum();
    assert_eq!(total, 100);
    assert_eq!(
        q::<Vec<String>>(&mut rc, &["MGET", "m:a", "m:b", "m:c"]).unwrap(),
        vec!["1", "2", "3"]
    );
}

#[test]
fn a_stopped_replica_times_writes_out_then_is_revoked_and_the_write_commits_later() {
    let p = primary(&["--durability-timeout", "300"]);
    let r = replica_of(&p);
    wait_eligible(&p, &r);
    let mut c = p.conn();
    r.freeze();
    let started = Instant::now();
    let e = err(&mut c, &["SET", "late", "1"]);
    assert!(e.starts_with("TIMEOUT ") && e.contains("not known"), "{e}");
    assert!(started.elapsed() >= Duration::from_millis(250));
    // Applied but not committed: readers wait for it too, and get the same answer.
    let e = err(&mut c, &["GET", "late"]);
    assert!(e.starts_with("TIMEOUT "), "{e}");
    assert!(eventually(10, || num(
        &mut p.conn(),
        "replication",
        "durability_eligible_replicas"
    ) == 0));
    assert!(p
        .log_text()
        .contains("no acknowledgement within durability-timeout"));
    assert_eq!(
        err(&mut c, &["SET", "other", "1"]),
        "NOREPLICAS Not enough eligible replicas: 0 of 1"
    );
    r.thaw();
    wait_eligible(&p, &r);
    // The timed-out write stayed in the log and committed once the replica caught up.
    assert_eq!(q::<String>(&mut c, &["GET", "late"]).unwrap(), "1");
    assert_eq!(q::<String>(&mut r.conn(), &["GET", "late"]).unwrap(), "1");
}

#[test]
fn a_read_of_an_uncommitted_key_waits_for_its_commit() {
    let p = primary(&["--durability-timeout", "20000"]);
    let r = replica_of(&p);
    wait_eligible(&p, &r);
    let _: () = q(&mut p.conn(), &["SET", "clean", "c"]).unwrap();
    r.freeze();
    let writer = {
        let mut c = p.conn();
        std::thread::spawn(move || q::<String>(&mut c, &["SET", "k", "new"]))
    };
    assert!(eventually(10, || waiting(&p) == 1));
    let reader = {
        let mut c = p.conn();
        std::thread::spawn(move || q::<String>(&mut c, &["GET", "k"]))
    };
    assert!(eventually(10, || waiting(&p) == 2), "the read waits");
    // A key with nothing pending is served at once.
    assert_eq!(q::<String>(&mut p.conn(), &["GET", "clean"]).unwrap(), "c");
    assert!(!writer.is_finished() && !reader.is_finished());
    r.thaw();
    assert_eq!(writer.join().unwrap().unwrap(), "OK");
    assert_eq!(reader.join().unwrap().unwrap(), "new");
    assert_eq!(q::<String>(&mut r.conn(), &["GET", "k"]).unwrap(), "new");
}

#[test]
fn forget_takes_a_stopped_replica_out_of_the_quorum_at_once() {
    let p = primary(&["--durability-timeout", "60000"]);
    let (a, b) = (replica_of(&p), replica_of(&p));
    wait_eligible(&p, &a);
    wait_eligible(&p, &b);
    assert!(eventually(30, || num(
        &mut p.conn(),
        "replication",
        "durability_eligible_replicas"
    ) == 2));
    let b_id = node_id(&b);
    b.freeze();
    let writer = {
        let mut c = p.conn();
        std::thread::spawn(move || q::<String>(&mut c, &["SET", "k", "v"]))
    };
    assert!(eventually(10, || waiting(&p) == 1));
    let started = Instant::now();
    let _: () = q(&mut p.conn(), &["DURABILITY", "FORGET", &b_id]).unwrap();
    assert_eq!(writer.join().unwrap().unwrap(), "OK");
    assert!(started.elapsed() < Duration::from_secs(5), "not at once");
    assert_eq!(q::<String>(&mut a.conn(), &["GET", "k"]).unwrap(), "v");
    assert_eq!(
        err(&mut p.conn(), &["DURABILITY", "FORGET", "nosuch"]),
        "ERR No such replica: give its node_id (INFO replication) or its session"
    );
    b.thaw();
}

#[test]
fn a_cut_link_revokes_and_the_new_session_is_granted_again() {
    let p = primary(&[]);
    let r = replica_of(&p);
    wait_eligible(&p, &r);
    let mut c = p.conn();
    let _: () = q(&mut c, &["SET", "a", "1"]).unwrap();
    let killed: i64 = q(&mut r.conn(), &["CLIENT", "KILL", "TYPE", "master"]).unwrap();
    assert_eq!(killed, 1);
    assert!(eventually(10, || num(
        &mut p.conn(),
        "replication",
        "tandem_durability_revokes"
    ) >= 1));
    assert!(p.log_text().contains("is no longer eligible"));
    wait_eligible(&p, &r);
    assert!(num(&mut p.conn(), "replication", "tandem_durability_grants") >= 2);
    let _: () = q(&mut c, &["SET", "a", "2"]).unwrap();
    assert_eq!(q::<String>(&mut r.conn(), &["GET", "a"]).unwrap(), "2");
}

#[test]
fn a_replica_in_a_full_sync_is_not_eligible_until_it_caught_up() {
    let p = primary(&[]);
    let r = replica_of(&p);
    wait_eligible(&p, &r);
    // The replica leaves, and the primary then logs far more than its backlog holds: following again
    // takes a full sync. (Writing first and leaving after raced the replica's stream: had it applied
    // everything by then, it continued partially.)
    let _: () = q(&mut r.conn(), &["REPLICAOF", "NO", "ONE"]).unwrap();
    let _: String = q(
        &mut p.conn(),
        &["DEBUG", "POPULATE", "1000000", "key", "100"],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    follow(&r, &p);
    assert!(eventually(30, || field(
        &mut r.conn(),
        "replication",
        "master_sync_in_progress"
    ) == "1"));
    assert!(!self_eligible(&r));
    assert!(!slave_eligible(&p, 0));
    wait_caught_up(&p, &r, 120);
    wait_eligible(&p, &r);
    assert_eq!(num(&mut p.conn(), "stats", "sync_full"), 2);
}

#[test]
fn only_an_eligible_replica_may_be_promoted() {
    let p = primary(&[]);
    let r = replica_of(&p);
    wait_eligible(&p, &r);
    // Forgotten, it is no longer eligible (and not granted again in this session).
    let _: () = q(&mut p.conn(), &["DURABILITY", "FORGET", &node_id(&r)]).unwrap();
    assert!(eventually(10, || !self_eligible(&r)));
    let e = err(&mut r.conn(), &["REPLICAOF", "NO", "ONE"]);
    assert!(e.contains("not eligible in durability mode"), "{e}");
    assert_eq!(field(&mut r.conn(), "replication", "role"), "slave");
    // Granted again in a new session, it may be promoted; then it is a primary with no eligible
    // replica, so it refuses writes.
    let killed: i64 = q(&mut r.conn(), &["CLIENT", "KILL", "TYPE", "master"]).unwrap();
    assert_eq!(killed, 1);
    wait_eligible(&p, &r);
    let _: () = q(&mut r.conn(), &["REPLICAOF", "NO", "ONE"]).unwrap();
    assert_eq!(
        err(&mut r.conn(), &["SET", "x", "1"]),
        "NOREPLICAS Not enough eligible replicas: 0 of 1"
    );
}

#[test]
fn durability_turns_on_and_off_at_runtime() {
    let p = Server::start(&["--shards", "2"]);
    let r = Server::start(&["--shards", "2"]);
    follow(&r, &p);
    wait_caught_up(&p, &r, 30);
    let mut c = p.conn();
    let _: () = q(&mut c, &["CONFIG", "SET", "durability-replicas", "2"]).unwrap();
    let _: () = q(&mut c, &["CONFIG", "SET", "durability", "yes"]).unwrap();
    assert!(eventually(30, || slave_eligible(&p, 0)));
    assert_eq!(
        err(&mut c, &["SET", "k", "v"]),
        "NOREPLICAS Not enough eligible replicas: 1 of 2"
    );
    let _: () = q(&mut c, &["CONFIG", "SET", "durability-replicas", "1"]).unwrap();
    let _: () = q(&mut c, &["SET", "k", "v"]).unwrap();
    let _: () = q(&mut c, &["CONFIG", "SET", "durability", "no"]).unwrap();
    assert!(eventually(10, || !slave_eligible(&p, 0)));
    r.freeze();
    // Asynchronous again: nothing waits for the stopped replica.
    let _: () = q(&mut c, &["SET", "k", "w"]).unwrap();
    r.thaw();
    // On again with no write since: the replica, acknowledged up to the revoke records logged while
    // the mode was off, is granted again.
    let _: () = q(&mut c, &["CONFIG", "SET", "durability", "yes"]).unwrap();
    assert!(eventually(30, || slave_eligible(&p, 0)), "{}", p.log_text());
    let _: () = q(&mut c, &["SET", "k", "x"]).unwrap();
    assert_eq!(q::<String>(&mut r.conn(), &["GET", "k"]).unwrap(), "x");
    assert_eq!(
        err(&mut c, &["CONFIG", "SET", "durability-timeout", "0"]),
        "ERR CONFIG SET failed (possibly related to argument 'durability-timeout') - argument must be between 1 and 86400000 inclusive"
    );
}

/// The log a replica spooled while loading its snapshot is acknowledged once replayed, even when no write
/// follows: otherwise an idle primary counts the replica behind forever and never grants it (the fault
/// suite's "replicas did not sync at the start").
#[test]
fn a_replica_that_spooled_the_log_while_loading_is_granted_with_no_write_after() {
    let p = Server::start(&["--shards", "2"]);
    let _: String = q(&mut p.conn(), &["DEBUG", "POPULATE", "2000", "key", "10"]).unwrap();
    let r = Server::start(&["--shards", "2", "--key-load-delay", "500"]);
    follow(&r, &p);
    let mut c = p.conn();
    let loading = |flow: usize| {
        field(&mut r.conn(), "replication", &format!("tandem_flow{flow}")).contains("phase=loading")
    };
    assert!(eventually(30, || loading(0) && loading(1)));
    // Writes to both shards while both flows load: they are spooled, not applied.
    for i in 0..50 {
        let _: () = q(&mut c, &["SET", &format!("w{i}"), "v"]).unwrap();
    }
    let spooled = |flow: usize| {
        let f = field(&mut r.conn(), "replication", &format!("tandem_flow{flow}"));
        f.contains("phase=loading") && !f.contains("buffered_bytes=0,")
    };
    assert!(
        spooled(0) && spooled(1),
        "{}",
        info(&mut r.conn(), "replication")
    );
    wait_caught_up(&p, &r, 60);
    let _: () = q(&mut c, &["CONFIG", "SET", "durability", "yes"]).unwrap();
    let _: () = q(&mut r.conn(), &["CONFIG", "SET", "durability", "yes"]).unwrap();
    wait_eligible(&p, &r);
}
