//! Effects that are not plain SETs reach the replica: expiry (as DEL from the primary), DEL, FLUSHALL,
//! FLUSHDB and SWAPDB; with equal shard counts, so the replica keeps the primary's streams verbatim.

mod common;
use common::repl::{digest, follow, wait_caught_up};
use common::{eventually, q, Server};

#[test]
fn expiry_deletion_and_flushes_propagate() {
    let primary = Server::start(&["--shards", "2"]);
    let replica = Server::start(&["--shards", "2"]);
    let (mut p, mut r) = (primary.conn(), replica.conn());
    for i in 0..100 {
        let _: () = q(&mut p, &["SET", &format!("live:{i}"), "v"]).unwrap();
        let _: () = q(&mut p, &["SET", &format!("short:{i}"), "v", "PX", "300"]).unwrap();
    }
    follow(&replica, &primary);
    wait_caught_up(&primary, &replica, 60);
    // The replica never expires on its own clock (it only hides), so its key count falls to the
    // primary's only through the DELs the primary journals when it expires them.
    assert!(eventually(20, || {
        let n: i64 = q(&mut p, &["DBSIZE"]).unwrap();
        n == 100
    }));
    wait_caught_up(&primary, &replica, 30);
    let n: i64 = q(&mut r, &["DBSIZE"]).unwrap();
    assert_eq!(n, 100, "expired keys deleted on the replica too");
    let _: i64 = q(&mut p, &["DEL", "live:1", "live:2"]).unwrap();
    let _: () = q(&mut p, &["SELECT", "1"]).unwrap();
    let _: () = q(&mut p, &["SET", "in-db1", "x"]).unwrap();
    let _: () = q(&mut p, &["SWAPDB", "0", "1"]).unwrap();
    wait_caught_up(&primary, &replica, 30);
    assert_eq!(digest(&mut r), digest(&mut p));
    let got: Option<String> = q(&mut r, &["GET", "in-db1"]).unwrap();
    assert_eq!(got.as_deref(), Some("x"), "SWAPDB moved db1 into db0");
    let _: () = q(&mut r, &["SELECT", "1"]).unwrap();
    let n: i64 = q(&mut r, &["DBSIZE"]).unwrap();
    assert_eq!(n, 98, "the old db0 (minus two DELs) is db1 now");
    let _: () = q(&mut p, &["FLUSHDB"]).unwrap();
    wait_caught_up(&primary, &replica, 30);
    assert_eq!(q::<i64>(&mut r, &["DBSIZE"]).unwrap(), 0, "FLUSHDB of db1");
    let _: () = q(&mut r, &["SELECT", "0"]).unwrap();
    assert_eq!(q::<i64>(&mut r, &["DBSIZE"]).unwrap(), 1);
    let _: () = q(&mut p, &["SELECT", "0"]).unwrap();
    let _: () = q(&mut p, &["FLUSHALL"]).unwrap();
    let _: () = q(&mut p, &["SET", "after", "flush"]).unwrap();
    wait_caught_up(&primary, &replica, 30);
    assert_eq!(q::<i64>(&mut r, &["DBSIZE"]).unwrap(), 1);
    assert_eq!(digest(&mut r), digest(&mut p));
}

#[test]
fn lz4_compressed_streams_give_the_same_data() {
    let primary = Server::start(&["--shards", "2"]);
    let replica = Server::start(&["--shards", "1", "--repl-compression", "lz4"]);
    let (mut p, mut r) = (primary.conn(), replica.conn());
    let _: String = q(&mut p, &["DEBUG", "POPULATE", "50000", "key", "200"]).unwrap();
    follow(&replica, &primary);
    wait_caught_up(&primary, &replica, 60);
    // The snapshot's wire bytes show the compression was negotiated and used: 50000 values of 200
    // compressible bytes took well under half of their size.
    let wire: u64 = common::repl::info(&mut r, "replication")
        .lines()
        .filter_map(|l| l.split("snapshot_bytes=").nth(1))
        .map(|v| v.split(',').next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert!(
        wire > 0 && wire < 50_000 * 200 / 2,
        "snapshot wire bytes {wire}"
    );
    for i in 0..200 {
        let _: () = q(&mut p, &["SET", &format!("k{i}"), &"z".repeat(500)]).unwrap();
    }
    wait_caught_up(&primary, &replica, 60);
    assert_eq!(digest(&mut r), digest(&mut p));
}
