//! Connection migration (server/migrate.rs): a connection whose commands keep going to one other shard
//! moves there, keeping its state and every byte it sent; one that spreads its keys, or holds state a shard
//! keeps for it, stays.

mod common;
use common::Server;
use redis::cmd;
use tandem_server::slot::{key_slot, slot_owner};

/// One key on each shard of a 2-shard server, checked rather than assumed.
fn key_per_shard() -> [&'static str; 2] {
    let keys = ["b", "a"];
    assert_eq!(slot_owner(key_slot(b"b"), 2), 0);
    assert_eq!(slot_owner(key_slot(b"a"), 2), 1);
    keys
}

/// Runs a command given as words; its reply converted.
fn q<T: redis::FromRedisValue>(c: &mut redis::Connection, args: &[&str]) -> T {
    common::q(c, args).unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

fn migrated(c: &mut redis::Connection) -> u64 {
    let info: String = q(c, &["INFO", "stats"]);
    info.lines()
        .find_map(|l| l.strip_prefix("migrated_connections:"))
        .expect("migrated_connections in INFO stats")
        .trim()
        .parse()
        .unwrap()
}

/// Runs 100 INCRs on each shard's key in turn: the connection was accepted on one of the two, so one of
/// the runs went to the other shard for long enough to move it.
fn incr_on_each_shard(c: &mut redis::Connection) {
    for k in key_per_shard() {
        for i in 1..=100 {
            let n: i64 = q(c, &["INCR", k]);
            assert_eq!(n, i);
        }
    }
}

#[test]
fn a_connection_moves_to_its_keys_shard_keeping_its_state() {
    let s = Server::start(&["--shards", "2"]);
    let mut c = s.conn();
    let _: () = q(&mut c, &["SELECT", "3"]);
    let _: () = q(&mut c, &["CLIENT", "SETNAME", "mover"]);
    let id: i64 = q(&mut c, &["CLIENT", "ID"]);
    incr_on_each_shard(&mut c);
    assert!(migrated(&mut c) >= 1);
    // Same client, same database, same name, still listed once.
    assert_eq!(q::<i64>(&mut c, &["CLIENT", "ID"]), id);
    let info: String = q(&mut c, &["CLIENT", "INFO"]);
    assert!(
        info.contains("name=mover") && info.contains(" db=3 "),
        "{info}"
    );
    let list: String = q(&mut c, &["CLIENT", "LIST"]);
    assert_eq!(
        list.lines()
            .filter(|l| l.starts_with(&format!("id={id} ")))
            .count(),
        1,
        "{list}"
    );
    let mut other = s.conn();
    let _: () = q(&mut other, &["SELECT", "3"]);
    assert_eq!(q::<i64>(&mut other, &["GET", "a"]), 100);
    assert_eq!(q::<i64>(&mut other, &["GET", "b"]), 100);
    let clients: String = q(&mut other, &["INFO", "clients"]);
    assert!(clients.contains("connected_clients:2\r\n"), "{clients}");
}

#[test]
fn a_moving_connection_keeps_the_bytes_of_its_unfinished_command() {
    let s = Server::start(&["--shards", "2"]);
    let mut raw = s.raw();
    // Every write carries the end of one INCR and the start of the next, so the server always holds half
    // a command when it may move the connection.
    let incr = |k: &str| format!("*2\r\n$4\r\nINCR\r\n$1\r\n{k}\r\n").into_bytes();
    for k in key_per_shard() {
        let first = incr(k);
        let half = first.len() / 2;
        raw.write(&first[..half]);
        for i in 1..=100 {
            let mut bytes = first[half..].to_vec();
            if i < 100 {
                bytes.extend_from_slice(&first[..half]);
            }
            raw.write(&bytes);
            assert_eq!(raw.read_line(), format!(":{i}"));
        }
    }
    let mut c = s.conn();
    assert!(migrated(&mut c) >= 1);
    assert_eq!(q::<i64>(&mut c, &["GET", "a"]), 100);
    assert_eq!(q::<i64>(&mut c, &["GET", "b"]), 100);
}

#[test]
fn a_connection_spreading_its_keys_stays() {
    let s = Server::start(&["--shards", "2"]);
    let mut c = s.conn();
    let [a, b] = key_per_shard();
    for _ in 0..200 {
        let _: () = q(&mut c, &["SET", a, "1"]);
        let _: () = q(&mut c, &["SET", b, "1"]);
    }
    assert_eq!(migrated(&mut c), 0);
}

#[test]
fn a_watching_connection_stays_and_exec_sees_the_change() {
    let s = Server::start(&["--shards", "2"]);
    let mut c = s.conn();
    let _: () = q(&mut c, &["WATCH", "w"]);
    incr_on_each_shard(&mut c);
    assert_eq!(migrated(&mut c), 0);
    let mut other = s.conn();
    let _: () = q(&mut other, &["SET", "w", "changed"]);
    let _: () = q(&mut c, &["MULTI"]);
    let _: () = q(&mut c, &["SET", "w", "mine"]);
    let r: redis::Value = cmd("EXEC").query(&mut c).unwrap();
    assert_eq!(r, redis::Value::Nil);
    assert_eq!(q::<String>(&mut other, &["GET", "w"]), "changed");
}

#[test]
fn migrate_connections_no_keeps_every_connection_where_it_was_accepted() {
    let s = Server::start(&["--shards", "2"]);
    let mut c = s.conn();
    let _: () = q(&mut c, &["CONFIG", "SET", "migrate-connections", "no"]);
    incr_on_each_shard(&mut c);
    assert_eq!(migrated(&mut c), 0);
}
