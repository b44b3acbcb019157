//! Partial resync: after a killed link, through replid2 after a promotion, and its refusal when the
//! backlog no longer holds the gap.

mod common;
use common::repl::{digest, field, follow, num, wait_caught_up};
use common::{eventually, q, Server};

fn fill(c: &mut redis::Connection, prefix: &str, n: usize, size: usize) {
    let v = "x".repeat(size);
    let mut pipe = redis::pipe();
    for i in 0..n {
        pipe.cmd("SET")
            .arg(format!("{prefix}:{i}"))
            .arg(&v)
            .ignore();
    }
    let _: () = pipe.query(c).unwrap();
}

#[test]
fn killed_link_comes_back_by_partial_resync() {
    let primary = Server::start(&["--shards", "2"]);
    let replica = Server::start(&["--shards", "1"]);
    let (mut p, mut r) = (primary.conn(), replica.conn());
    fill(&mut p, "a", 5000, 50);
    follow(&replica, &primary);
    wait_caught_up(&primary, &replica, 60);
    assert_eq!(num(&mut p, "stats", "sync_full"), 1);
    let killed: i64 = q(&mut r, &["CLIENT", "KILL", "TYPE", "master"]).unwrap();
    assert_eq!(killed, 1);
    fill(&mut p, "b", 2000, 50);
    assert!(eventually(30, || num(&mut p, "stats", "sync_partial_ok") == 1));
    wait_caught_up(&primary, &replica, 60);
    assert_eq!(num(&mut p, "stats", "sync_full"), 1, "no second full sync");
    assert_eq!(digest(&mut r), digest(&mut p));
}

#[test]
fn gap_larger_than_the_backlog_means_full_sync() {
    // 16 KiB of backlog per shard.
    let primary = Server::start(&["--shards", "2", "--repl-backlog-size", "32kb"]);
    let replica = Server::start(&["--shards", "2"]);
    let (mut p, mut r) = (primary.conn(), replica.conn());
    fill(&mut p, "a", 1000, 50);
    follow(&replica, &primary);
    wait_caught_up(&primary, &replica, 60);
    // Frozen, the replica reads nothing while 20 MB (more than the socket buffers hold) go through a
    // 32 KiB backlog.
    replica.freeze();
    fill(&mut p, "b", 100_000, 200);
    replica.thaw();
    assert!(eventually(60, || num(&mut p, "stats", "sync_full") == 2));
    wait_caught_up(&primary, &replica, 60);
    assert_eq!(num(&mut p, "stats", "sync_partial_ok"), 0);
    assert!(num(&mut p, "stats", "sync_partial_err") >= 1);
    assert_eq!(digest(&mut r), digest(&mut p));
}

#[test]
fn promoted_replica_continues_the_others_through_replid2() {
    let primary = Server::start(&["--shards", "2"]);
    let a = Server::start(&["--shards", "2"]);
    let b = Server::start(&["--shards", "2"]);
    let mut p = primary.conn();
    fill(&mut p, "a", 3000, 50);
    follow(&a, &primary);
    follow(&b, &primary);
    wait_caught_up(&primary, &a, 60);
    wait_caught_up(&primary, &b, 60);
    fill(&mut p, "b", 500, 50);
    wait_caught_up(&primary, &a, 60);
    wait_caught_up(&primary, &b, 60);
    let old_id = field(&mut p, "replication", "master_replid");
    drop(primary);
    let (mut ca, mut cb) = (a.conn(), b.conn());
    let _: () = q(&mut ca, &["REPLICAOF", "NO", "ONE"]).unwrap();
    assert_eq!(field(&mut ca, "replication", "role"), "master");
    assert_eq!(field(&mut ca, "replication", "master_replid2"), old_id);
    assert_ne!(field(&mut ca, "replication", "master_replid"), old_id);
    let _: () = q(&mut ca, &["SET", "written-on-a", "1"]).unwrap();
    follow(&b, &a);
    wait_caught_up(&a, &b, 60);
    assert_eq!(
        num(&mut ca, "stats", "sync_partial_ok"),
        1,
        "{}",
        a.log_text()
    );
    assert_eq!(num(&mut ca, "stats", "sync_full"), 0);
    let got: Option<String> = q(&mut cb, &["GET", "written-on-a"]).unwrap();
    assert_eq!(got.as_deref(), Some("1"));
    assert_eq!(digest(&mut cb), digest(&mut ca));
}
