//! The shard log as an operator meets it: big values replicate, long syncs finish whatever repl-timeout
//! is, one unit larger than a shard's backlog share keeps the replica, multi-shard writes are atomic on
//! a replica of another shard count, promotion is exact and refused mid-sync, versions are negotiated.

mod common;
use common::repl::{digest, field, follow, num, wait_caught_up};
use common::{eventually, q, Server};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use tandem_server::slot::{key_slot, slot_owner};

/// A key of `prefix` that lives on shard `shard` of `n`.
fn key_on(prefix: &str, shard: usize, n: usize, skip: usize) -> String {
    (0..)
        .map(|i| format!("{prefix}{i}"))
        .filter(|k| slot_owner(key_slot(k.as_bytes()), n) == shard)
        .nth(skip)
        .unwrap()
}

/// A primary with `keys` populated keys of `size` bytes, and a replica whose full sync from it is under way.
fn syncing_pair(keys: &str, size: &str) -> (Server, Server) {
    let primary = Server::start(&["--shards", "2"]);
    let _: String = q(
        &mut primary.conn(),
        &["DEBUG", "POPULATE", keys, "key", size],
    )
    .unwrap();
    let replica = Server::start(&["--shards", "2"]);
    follow(&replica, &primary);
    let mut r = replica.conn();
    assert!(eventually(30, || field(
        &mut r,
        "replication",
        "master_sync_in_progress"
    ) == "1"));
    (primary, replica)
}

#[test]
fn values_of_64_mib_replicate_by_snapshot_and_by_log() {
    let primary = Server::start(&["--shards", "2"]);
    let mut p = primary.conn();
    let big = vec![b'v'; 64 << 20];
    let _: () = redis::cmd("SET")
        .arg("big:1")
        .arg(&big)
        .query(&mut p)
        .unwrap();
    let replica = Server::start(&["--shards", "2"]);
    follow(&replica, &primary);
    wait_caught_up(&primary, &replica, 120);
    let mut r = replica.conn();
    let got: Vec<u8> = q(&mut r, &["GET", "big:1"]).unwrap();
    assert_eq!(got.len(), big.len());
    // And one written while the replica follows the log.
    let _: () = redis::cmd("SET")
        .arg("big:2")
        .arg(&big)
        .query(&mut p)
        .unwrap();
    wait_caught_up(&primary, &replica, 120);
    assert_eq!(q::<i64>(&mut r, &["STRLEN", "big:2"]).unwrap(), 64 << 20);
    assert_eq!(digest(&mut r), digest(&mut p));
    assert_eq!(num(&mut p, "stats", "sync_full"), 1, "no sync started over");
}

#[test]
fn a_full_sync_longer_than_repl_timeout_finishes() {
    let primary = Server::start(&["--shards", "2", "--repl-timeout", "1"]);
    let mut p = primary.conn();
    let _: String = q(&mut p, &["DEBUG", "POPULATE", "3000000", "key", "100"]).unwrap();
    let replica = Server::start(&["--shards", "2", "--repl-timeout", "1"]);
    let started = std::time::Instant::now();
    follow(&replica, &primary);
    wait_caught_up(&primary, &replica, 120);
    let took = started.elapsed();
    // The test shows something only if the sync outlasted the timeout several times over.
    assert!(took.as_secs_f64() > 2.0, "sync took only {took:?}");
    assert_eq!(
        num(&mut p, "stats", "sync_full"),
        1,
        "the sync finished at its first attempt"
    );
    assert_eq!(digest(&mut replica.conn()), digest(&mut p));
}

#[test]
fn a_unit_larger_than_the_backlog_share_does_not_drop_the_replica() {
    // 16 shards share the default 10 MB backlog: 640 KiB each, less than one 2 MiB value.
    let primary = Server::start(&["--shards", "16"]);
    let replica = Server::start(&["--shards", "2"]);
    let mut p = primary.conn();
    let _: () = q(&mut p, &["SET", "small", "1"]).unwrap();
    follow(&replica, &primary);
    wait_caught_up(&primary, &replica, 60);
    let big = vec![b'x'; 2 << 20];
    for i in 0..3 {
        let _: () = redis::cmd("SET")
            .arg(format!("big:{i}"))
            .arg(&big)
            .query(&mut p)
            .unwrap();
        wait_caught_up(&primary, &replica, 60);
    }
    assert_eq!(num(&mut p, "stats", "sync_full"), 1);
    assert_eq!(num(&mut p, "replication", "connected_slaves"), 1);
    assert_eq!(digest(&mut replica.conn()), digest(&mut p));
}

/// A reader on a replica with another shard count never sees part of an MSET that spans shards.
#[test]
fn multi_shard_writes_apply_atomically_on_a_replica() {
    let primary = Server::start(&["--shards", "2"]);
    let replica = Server::start(&["--shards", "3"]);
    follow(&replica, &primary);
    wait_caught_up(&primary, &replica, 60);
    // Keys on both primary shards and on all three replica shards.
    let keys: Vec<String> = (0..3)
        .map(|s| key_on("r", s, 3, 0))
        .chain((0..2).map(|s| key_on("p", s, 2, 0)))
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicU64::new(0));
    let reader = {
        let (stop, reads, keys) = (stop.clone(), reads.clone(), keys.clone());
        let mut r = replica.conn();
        std::thread::spawn(move || {
            let mut torn = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let vals: Vec<Option<String>> =
                    redis::cmd("MGET").arg(&keys).query(&mut r).unwrap();
                if vals.iter().any(|v| v != &vals[0]) {
                    torn.push(vals);
                }
                reads.fetch_add(1, Ordering::Relaxed);
            }
            torn
        })
    };
    let mut p = primary.conn();
    for i in 0..2000 {
        let mut cmd = redis::cmd("MSET");
        for k in &keys {
            cmd.arg(k).arg(i);
        }
        let _: () = cmd.query(&mut p).unwrap();
    }
    wait_caught_up(&primary, &replica, 60);
    assert!(eventually(30, || reads.load(Ordering::Relaxed) > 200));
    stop.store(true, Ordering::Relaxed);
    let torn = reader.join().unwrap();
    assert!(
        torn.is_empty(),
        "the replica served torn MSETs: {:?}",
        &torn[..torn.len().min(3)]
    );
    assert_eq!(digest(&mut replica.conn()), digest(&mut p));
}

#[test]
fn promotion_is_refused_while_a_full_sync_loads() {
    let (primary, replica) = syncing_pair("1000000", "100");
    let mut r = replica.conn();
    let e = common::err(&mut r, &["REPLICAOF", "NO", "ONE"]);
    assert!(e.contains("full sync is in progress"), "{e}");
    assert_eq!(field(&mut r, "replication", "role"), "slave");
    // Once loaded, it can be promoted, and then it takes writes.
    wait_caught_up(&primary, &replica, 120);
    let _: String = q(&mut r, &["REPLICAOF", "NO", "ONE"]).unwrap();
    let _: () = q(&mut r, &["SET", "after", "1"]).unwrap();
}

/// A shard that never received a write still has the primary's offset after a promotion, so the other
/// replicas continue from the promoted one by partial resync.
#[test]
fn promotion_keeps_the_offset_of_idle_shards() {
    let primary = Server::start(&["--shards", "4"]);
    let a = Server::start(&["--shards", "4"]);
    let b = Server::start(&["--shards", "4"]);
    let mut p = primary.conn();
    // A first replica makes the primary log; writes on every shard then put every shard's offset above 0,
    // so A and B sync fully at non-zero points; after that only shard 0 is written.
    let first = Server::start(&["--shards", "1"]);
    follow(&first, &primary);
    wait_caught_up(&primary, &first, 60);
    for s in 0..4 {
        for i in 0..20 {
            let _: () = q(&mut p, &["SET", &key_on("all", s, 4, i), "v"]).unwrap();
        }
    }
    follow(&a, &primary);
    follow(&b, &primary);
    wait_caught_up(&primary, &a, 60);
    wait_caught_up(&primary, &b, 60);
    for i in 0..50 {
        let _: () = q(&mut p, &["SET", &key_on("k", 0, 4, i), "v"]).unwrap();
    }
    wait_caught_up(&primary, &a, 60);
    wait_caught_up(&primary, &b, 60);
    let offsets_before = field(&mut a.conn(), "replication", "tandem_shard_offsets");
    assert_eq!(
        offsets_before,
        field(&mut p, "replication", "tandem_shard_offsets")
    );
    drop(primary);
    let mut ac = a.conn();
    let _: String = q(&mut ac, &["REPLICAOF", "NO", "ONE"]).unwrap();
    assert_eq!(
        field(&mut ac, "replication", "tandem_shard_offsets"),
        offsets_before,
        "every shard keeps the offset it applied"
    );
    follow(&b, &a);
    assert!(eventually(30, || num(&mut ac, "stats", "sync_partial_ok") == 1));
    assert_eq!(num(&mut ac, "stats", "sync_full"), 0);
    let _: () = q(&mut ac, &["SET", "after-promotion", "1"]).unwrap();
    wait_caught_up(&a, &b, 60);
    assert_eq!(digest(&mut b.conn()), digest(&mut ac));
}

#[test]
fn a_replica_of_another_log_version_is_refused_clearly() {
    let primary = Server::start(&["--shards", "1"]);
    let mut c = primary.raw();
    c.send(&["REPLCONF", "capa", "tandem-log99"]);
    assert_eq!(c.read_line(), "+OK");
    c.send(&["PSYNC", "?", "-1", "TANDEM", "0", "-"]);
    let line = c.read_line();
    assert!(
        line.starts_with("-ERR this primary writes replication log version 1"),
        "{line}"
    );
    assert!(eventually(10, || primary
        .log_text()
        .contains("speaks replication log version 99")));
}

/// A replica that stops reading (SIGSTOP) mid-sync loses its snapshot after repl-timeout: the primary
/// stops keeping copies for it. Resumed, it syncs again and ends equal.
#[test]
fn a_snapshot_whose_replica_stopped_reading_is_dropped() {
    let primary = Server::start(&["--shards", "2", "--repl-timeout", "5"]);
    let mut p = primary.conn();
    // Far more than the socket buffers hold, so the snapshot flows really block on the stopped replica.
    let _: String = q(&mut p, &["DEBUG", "POPULATE", "1000000", "key", "100"]).unwrap();
    let replica = Server::start(&["--shards", "2"]);
    let mut r = replica.conn();
    follow(&replica, &primary);
    assert!(eventually(30, || num(
        &mut r,
        "replication",
        "master_sync_read_bytes"
    ) > 0));
    replica.freeze();
    assert!(num(&mut p, "replication", "tandem_snapshots_in_progress") > 0);
    // Writes to unsent slots make the snapshot keep old states meanwhile.
    for i in 0..500 {
        let _: () = q(&mut p, &["SET", &format!("key:{i}"), "new"]).unwrap();
    }
    assert!(
        eventually(30, || num(
            &mut p,
            "replication",
            "tandem_snapshots_in_progress"
        ) == 0),
        "snapshot never dropped"
    );
    assert_eq!(num(&mut p, "replication", "tandem_snapshot_kept_bytes"), 0);
    assert!(primary.log_text().contains("read nothing for 5s"));
    replica.thaw();
    wait_caught_up(&primary, &replica, 120);
    assert_eq!(digest(&mut r), digest(&mut p));
}

/// FLUSHALL every 100 ms while a 2M-key snapshot streams: the sync finishes at its first attempt (the
/// flushed tables of unsent slots go to the snapshot instead of aborting it) and the data ends equal.
#[test]
fn flushall_during_a_full_sync_does_not_restart_it() {
    let (primary, replica) = syncing_pair("2000000", "50");
    let (mut p, mut r) = (primary.conn(), replica.conn());
    let stop = Arc::new(AtomicBool::new(false));
    let flushes = {
        let stop = stop.clone();
        let mut c = primary.conn();
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let _: () = q(&mut c, &["FLUSHALL"]).unwrap();
                let _: () = q(&mut c, &["SET", &format!("after:{n}"), "v"]).unwrap();
                let _: () = q(&mut c, &["SWAPDB", "0", "1"]).unwrap();
                n += 1;
                // The workload's pace (one FLUSHALL per 100 ms), not a synchronisation.
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            n
        })
    };
    wait_caught_up(&primary, &replica, 180);
    stop.store(true, Ordering::Relaxed);
    let n = flushes.join().unwrap();
    assert!(n >= 3, "only {n} FLUSHALLs happened during the sync");
    wait_caught_up(&primary, &replica, 60);
    assert_eq!(
        num(&mut p, "stats", "sync_full"),
        1,
        "the sync never started over"
    );
    assert_eq!(digest(&mut r), digest(&mut p));
}
