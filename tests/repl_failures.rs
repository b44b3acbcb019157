//! A sync that goes wrong ends in a clean retry, never in a half-loaded dataset served as complete.

mod common;
use common::repl::{digest, field, follow, num, wait_caught_up};
use common::{eventually, q, Server};

#[test]
fn corrupt_chunk_is_detected_and_the_sync_retried() {
    let primary = Server::start(&["--shards", "2", "--debug-repl-corrupt-chunk", "2"]);
    let mut p = primary.conn();
    let _: String = q(&mut p, &["DEBUG", "POPULATE", "100000", "key", "100"]).unwrap();
    let replica = Server::start(&["--shards", "2"]);
    follow(&replica, &primary);
    wait_caught_up(&primary, &replica, 60);
    assert_eq!(digest(&mut replica.conn()), digest(&mut p));
    assert_eq!(
        num(&mut p, "stats", "sync_full"),
        2,
        "one failed sync, one retry"
    );
    let log = replica.log_text();
    assert!(log.contains("checksum mismatch"), "{log}");
}

#[test]
fn replica_killed_mid_sync_then_restarted_syncs_fully() {
    let primary = Server::start(&["--shards", "2"]);
    let mut p = primary.conn();
    let _: String = q(&mut p, &["DEBUG", "POPULATE", "1000000", "key", "200"]).unwrap();
    let replica = Server::start(&["--shards", "1"]);
    let mut r = replica.conn();
    follow(&replica, &primary);
    // Mid-sync: loading, some keys in, not all. Until done, clients get LOADING, never partial data.
    assert!(eventually(60, || {
        let i = q::<String>(&mut r, &["INFO", "replication"]).unwrap();
        i.contains("master_sync_in_progress:1") && !i.contains("tandem_sync_keys_received:0\r")
    }));
    let e = common::err(&mut r, &["GET", "key:1"]);
    assert!(e.starts_with("LOADING"), "{e}");
    drop(r);
    drop(replica);
    let again = Server::start(&["--shards", "1"]);
    follow(&again, &primary);
    wait_caught_up(&primary, &again, 120);
    assert_eq!(digest(&mut again.conn()), digest(&mut p));
    assert_eq!(field(&mut again.conn(), "persistence", "loading"), "0");
    // The primary forgot the dead replica and its unfinished snapshot.
    assert!(eventually(30, || num(
        &mut p,
        "replication",
        "connected_slaves"
    ) == 1));
}
