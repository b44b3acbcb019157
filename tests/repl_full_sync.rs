//! Full sync across shard counts: a 2-shard primary with keys with and without TTLs, written to all the
//! time, feeds 1- and 3-shard replicas; they end with the primary's digest and values.

mod common;
use common::repl::{digest, field, follow, num, wait_caught_up, Writer};
use common::{eventually, q, Server};

#[test]
fn two_shard_primary_feeds_one_and_three_shard_replicas_under_writes() {
    let primary = Server::start(&["--shards", "2"]);
    let mut p = primary.conn();
    let _: String = q(&mut p, &["DEBUG", "POPULATE", "200000", "key", "100"]).unwrap();
    let mut pipe = redis::pipe();
    for i in 0..20_000 {
        pipe.cmd("SET")
            .arg(format!("ttl:{i}"))
            .arg(i)
            .arg("EX")
            .arg(10_000 + i);
    }
    let _: redis::Value = pipe.query(&mut p).unwrap();
    let writer = Writer::start(&primary, 50_000);
    let r1 = Server::start(&["--shards", "1"]);
    // This one spools the log of the writes made during its sync to a file (no memory allowance); the
    // writer runs throughout, and the replica's log shows the file was really written. Its load is slowed
    // (about a second per flow) so that writes certainly arrive while it loads, however busy the machine.
    let dir = std::env::temp_dir().join(format!("tandem-spool-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let r3 = Server::start(&[
        "--shards",
        "3",
        "--repl-sync-buffer-memory",
        "0",
        "--key-load-delay",
        "10",
        "--dir",
        dir.to_str().unwrap(),
    ]);
    follow(&r1, &primary);
    follow(&r3, &primary);
    // Writes keep running through both syncs and after them.
    let ops = writer.ops.clone();
    let before = ops.load(std::sync::atomic::Ordering::Relaxed);
    wait_caught_up(&primary, &r1, 120);
    wait_caught_up(&primary, &r3, 120);
    assert!(
        eventually(30, || ops.load(std::sync::atomic::Ordering::Relaxed)
            > before + 500),
        "writes kept flowing during the syncs"
    );
    let written = writer.stop();
    assert!(written > 500);
    wait_caught_up(&primary, &r1, 60);
    wait_caught_up(&primary, &r3, 60);
    let want = digest(&mut p);
    for r in [&r1, &r3] {
        let mut c = r.conn();
        assert_eq!(digest(&mut c), want, "replica log:\n{}", r.log_text());
        for k in ["key:0", "key:199999", "ttl:7", "n:3", "f:4", "w:42"] {
            let a: Option<String> = q(&mut p, &["GET", k]).unwrap();
            let b: Option<String> = q(&mut c, &["GET", k]).unwrap();
            assert_eq!(a, b, "{k}");
            let ta: i64 = q(&mut p, &["PEXPIRETIME", k]).unwrap();
            let tb: i64 = q(&mut c, &["PEXPIRETIME", k]).unwrap();
            assert_eq!(ta, tb, "absolute expiry of {k}");
        }
        assert_eq!(field(&mut c, "replication", "role"), "slave");
        assert_eq!(field(&mut c, "replication", "master_sync_in_progress"), "0");
        assert_eq!(
            common::err(&mut c, &["SET", "x", "1"]),
            "READONLY You can't write against a read only replica."
        );
    }
    assert_eq!(num(&mut p, "replication", "connected_slaves"), 2);
    // Logged once per flow that spilled (robust to a later reconnect resetting INFO's counters).
    assert!(
        r3.log_text().contains("goes to a spool file under dir"),
        "writes made during the sync went through the spool file"
    );
    let spool_files = std::fs::read_dir(&dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("temp-tandem-sync")
        })
        .count();
    assert_eq!(spool_files, 0, "the spool file is removed once replayed");
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(num(&mut p, "stats", "sync_full"), 2);
    let role: Vec<redis::Value> = q(&mut p, &["ROLE"]).unwrap();
    assert_eq!(role[0], redis::Value::BulkString(b"master".to_vec()));
}
