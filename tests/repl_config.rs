//! Replication settings an operator relies on: masterauth, the replicaof directive at start-up, ROLE,
//! replica-serve-stale-data, and REPLICAOF's replies.

mod common;
use common::repl::{field, wait_caught_up};
use common::{err, eventually, q, Server};

#[test]
fn masterauth_and_the_replicaof_directive() {
    let primary = Server::start(&["--requirepass", "s3cret"]);
    let port = primary.port.to_string();
    let mut p = primary.conn();
    let _: () = q(&mut p, &["AUTH", "s3cret"]).unwrap();
    let _: () = q(&mut p, &["SET", "k", "v"]).unwrap();
    // Without the password the link never comes up, and the reason is logged.
    let refused = Server::start(&["--replicaof", "127.0.0.1", &port]);
    assert!(
        eventually(20, || refused.log_text().contains("NOAUTH")),
        "{}",
        refused.log_text()
    );
    assert_eq!(
        field(&mut refused.conn(), "replication", "master_link_status"),
        "down"
    );
    let replica = Server::start(&["--replicaof", "127.0.0.1", &port, "--masterauth", "s3cret"]);
    let mut r = replica.conn();
    assert!(eventually(30, || field(
        &mut r,
        "replication",
        "master_link_status"
    ) == "up"));
    let got: Option<String> = q(&mut r, &["GET", "k"]).unwrap();
    assert_eq!(got.as_deref(), Some("v"));
    let role: Vec<redis::Value> = q(&mut r, &["ROLE"]).unwrap();
    assert_eq!(role[0], redis::Value::BulkString(b"slave".to_vec()));
    assert_eq!(role[2], redis::Value::Int(primary.port as i64));
    assert_eq!(role[3], redis::Value::BulkString(b"connected".to_vec()));
    let again: String = q(&mut r, &["REPLICAOF", "127.0.0.1", &port]).unwrap();
    assert_eq!(again, "OK Already connected to specified master");
    assert_eq!(
        err(&mut r, &["REPLICAOF", "127.0.0.1", "70000"]),
        "ERR Invalid master port"
    );
}

#[test]
fn stale_data_refused_while_the_link_is_down() {
    let primary = Server::start(&[]);
    let replica = Server::start(&["--replica-serve-stale-data", "no"]);
    common::repl::follow(&replica, &primary);
    wait_caught_up(&primary, &replica, 30);
    let mut r = replica.conn();
    let _: Option<String> = q(&mut r, &["GET", "k"]).unwrap();
    drop(primary);
    assert!(eventually(30, || q::<Option<String>>(
        &mut r,
        &["GET", "k"]
    )
    .is_err()));
    assert_eq!(
        err(&mut r, &["GET", "k"]),
        "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'."
    );
    // Commands flagged stale still answer, and promotion lifts the refusal.
    let _: String = q(&mut r, &["PING"]).unwrap();
    let _: () = q(&mut r, &["REPLICAOF", "NO", "ONE"]).unwrap();
    let _: () = q(&mut r, &["SET", "k", "mine"]).unwrap();
    assert_eq!(field(&mut r, "replication", "role"), "master");
}

/// A node keeps its id across restarts (the file in `dir`), and a primary lists its replicas by that id.
#[test]
fn node_id_survives_restart_and_the_primary_knows_it() {
    let dir = std::env::temp_dir().join(format!("tandem-nodeid-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let d = dir.to_str().unwrap();
    let primary = Server::start(&["--shards", "1"]);
    let replica = Server::start(&["--shards", "1", "--dir", d]);
    let id = common::repl::field(&mut replica.conn(), "server", "tandem_node_id");
    assert_eq!(id.len(), 40, "{id}");
    assert_ne!(
        id,
        common::repl::field(&mut primary.conn(), "server", "tandem_node_id")
    );
    common::repl::follow(&replica, &primary);
    common::repl::wait_caught_up(&primary, &replica, 30);
    let slave0 = common::repl::field(&mut primary.conn(), "replication", "slave0");
    assert!(slave0.contains(&format!(",node_id={id},")), "{slave0}");
    replica.stop();
    let again = Server::start(&["--shards", "1", "--dir", d]);
    assert_eq!(
        common::repl::field(&mut again.conn(), "server", "tandem_node_id"),
        id
    );
    std::fs::remove_dir_all(&dir).ok();
}
