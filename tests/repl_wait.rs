//! WAIT counts replicas holding the client's last write and times out while one is frozen;
//! min-replicas-to-write refuses writes without enough good replicas.

mod common;
use common::repl::{follow, wait_caught_up};
use common::{err, eventually, q, Server};
use std::time::{Duration, Instant};

#[test]
fn wait_counts_and_times_out_with_a_stopped_replica() {
    let primary = Server::start(&["--shards", "2"]);
    let replica = Server::start(&["--shards", "1"]);
    let mut p = primary.conn();
    let mut fresh = primary.conn();
    follow(&replica, &primary);
    wait_caught_up(&primary, &replica, 60);
    // A client that wrote nothing has nothing to wait for: every connected replica counts.
    assert_eq!(q::<i64>(&mut fresh, &["WAIT", "1", "0"]).unwrap(), 1);
    let _: () = q(&mut p, &["SET", "k", "v1"]).unwrap();
    assert_eq!(q::<i64>(&mut p, &["WAIT", "1", "5000"]).unwrap(), 1);
    let got: Option<String> = q(&mut replica.conn(), &["GET", "k"]).unwrap();
    assert_eq!(
        got.as_deref(),
        Some("v1"),
        "WAIT returned only once the replica had the write"
    );
    // Asking for more replicas than exist: the count reached, after the timeout.
    let t = Instant::now();
    assert_eq!(q::<i64>(&mut p, &["WAIT", "2", "300"]).unwrap(), 1);
    assert!(t.elapsed() >= Duration::from_millis(290));
    replica.freeze();
    let _: () = q(&mut p, &["SET", "k", "v2"]).unwrap();
    let t = Instant::now();
    assert_eq!(q::<i64>(&mut p, &["WAIT", "1", "400"]).unwrap(), 0);
    let waited = t.elapsed();
    assert!(
        waited >= Duration::from_millis(390) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
    replica.thaw();
    assert_eq!(q::<i64>(&mut p, &["WAIT", "1", "10000"]).unwrap(), 1);
    let mut r = replica.conn();
    assert!(err(&mut r, &["WAIT", "1", "0"]).starts_with("ERR WAIT cannot be used with replica"));
    assert_eq!(err(&mut p, &["WAIT", "1", "-1"]), "ERR timeout is negative");
}

fn set_error(c: &mut redis::Connection) -> String {
    match q::<()>(c, &["SET", "a", "1"]) {
        Ok(()) => String::new(),
        Err(e) => format!("{} {}", e.code().unwrap_or("?"), e.detail().unwrap_or("")),
    }
}

#[test]
fn min_replicas_to_write() {
    let primary = Server::start(&[
        "--min-replicas-to-write",
        "1",
        "--min-replicas-max-lag",
        "10",
    ]);
    let mut p = primary.conn();
    const REFUSED: &str = "NOREPLICAS Not enough good replicas to write.";
    assert!(eventually(5, || set_error(&mut p) == REFUSED));
    // Reads are never refused.
    let _: Option<String> = q(&mut p, &["GET", "a"]).unwrap();
    let replica = Server::start(&[]);
    follow(&replica, &primary);
    wait_caught_up(&primary, &replica, 60);
    assert!(eventually(10, || set_error(&mut p).is_empty()));
    drop(replica);
    assert!(eventually(30, || set_error(&mut p) == REFUSED));
}
