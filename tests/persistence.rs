//! The write-ahead log with real processes (docs/persistence.md): acknowledged writes survive kill -9, a
//! write the WAL failed is refused and never recovered, torn tails and corruption at start-up, and the
//! identity that lets replicas continue a restarted primary by partial resync.

mod common;
use common::repl::{digest, field, follow, num, wait_caught_up};
use common::{eventually, q, Server};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// A directory kept across a server's restarts, removed at the end of the test.
struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        let d = std::env::temp_dir().join(format!("tandem-wal-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Dir(d)
    }

    fn arg(&self) -> &str {
        self.0.to_str().unwrap()
    }

    /// Every WAL segment of shard `shard`, in log order.
    fn segments(&self, shard: usize) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(self.0.join("appendonlydir"))
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                let n = p.file_name().unwrap().to_str().unwrap();
                n.starts_with(&format!("appendonly.aof.s{shard}.")) && n.ends_with(".wal")
            })
            .collect();
        v.sort();
        v
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn start(dir: &Dir, extra: &[&str]) -> Server {
    let mut args = vec![
        "--shards",
        "2",
        "--dir",
        dir.arg(),
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
        "--wal-segment-size",
        "1mb",
    ];
    args.extend_from_slice(extra);
    Server::start(&args)
}

/// Clients write (single keys and MSETs across shards) until the server is killed with SIGKILL; after a
/// restart every write that was acknowledged is there.
#[test]
fn acknowledged_writes_survive_kill_9() {
    let dir = Dir::new("kill9");
    let server = start(&dir, &[]);
    let acked = Arc::new(Mutex::new(Vec::<(String, String)>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    for t in 0..4 {
        let (acked, stop, url) = (acked.clone(), stop.clone(), server.url());
        threads.push(std::thread::spawn(move || {
            let mut c = redis::Client::open(url).unwrap().get_connection().unwrap();
            let mut i = 0u64;
            while !stop.load(Ordering::Acquire) {
                i += 1;
                let (k1, k2) = (format!("t{t}:a:{i}"), format!("t{t}:b:{i}"));
                let r: redis::RedisResult<()> = if i.is_multiple_of(4) {
                    redis::cmd("MSET")
                        .arg(&k1)
                        .arg(i)
                        .arg(&k2)
                        .arg(i)
                        .query(&mut c)
                } else {
                    redis::cmd("SET").arg(&k1).arg(i).query(&mut c)
                };
                match r {
                    Ok(()) => {
                        let mut a = acked.lock().unwrap();
                        a.push((k1, i.to_string()));
                        if i.is_multiple_of(4) {
                            a.push((k2, i.to_string()));
                        }
                    }
                    Err(_) => return, // the server is gone
                }
            }
        }));
    }
    assert!(eventually(30, || acked.lock().unwrap().len() > 3000));
    drop(server); // SIGKILL in the middle of the writes
    stop.store(true, Ordering::Release);
    for t in threads {
        t.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    let server = start(&dir, &[]);
    let mut c = server.conn();
    let mut missing = Vec::new();
    for chunk in acked.chunks(500) {
        let keys: Vec<&str> = chunk.iter().map(|(k, _)| k.as_str()).collect();
        let vals: Vec<Option<String>> = redis::cmd("MGET").arg(&keys).query(&mut c).unwrap();
        for ((k, want), got) in chunk.iter().zip(vals) {
            if got.as_deref() != Some(want.as_str()) {
                missing.push((k.clone(), got));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged writes lost: {:?}",
        missing.len(),
        acked.len(),
        &missing[..missing.len().min(5)]
    );
    // Every MSET is whole: both of its keys or neither.
    let n: i64 = q(&mut c, &["DBSIZE"]).unwrap();
    assert!(n as usize >= acked.len());
}

/// A write whose WAL write failed gets MISCONF, is not readable, later writes are refused, and after a
/// restart it is absent while what was acknowledged before is there.
#[test]
fn a_write_the_wal_failed_is_refused_and_never_recovered() {
    for how in ["write", "sync"] {
        let dir = Dir::new(&format!("fail-{how}"));
        let server = start(&dir, &[]);
        let mut c = server.conn();
        let _: () = q(&mut c, &["SET", "before", "1"]).unwrap();
        let _: () = q(&mut c, &["DEBUG", "WAL-FAIL", how]).unwrap();
        // One key per shard: one of them meets the failure first; whichever it is fails, and after it
        // everything is refused.
        let e1 = common::err(&mut c, &["SET", "failed:{a}", "x"]);
        let e2 = common::err(&mut c, &["SET", "failed:{b}", "x"]);
        assert!(
            e1.starts_with("MISCONF") || e2.starts_with("MISCONF"),
            "{e1} / {e2}"
        );
        let e = common::err(&mut c, &["SET", "later", "x"]);
        assert!(e.starts_with("MISCONF"), "{e}");
        assert_eq!(field(&mut c, "persistence", "aof_last_write_status"), "err");
        // A failed write is never visible: its key reads as an error, not as the value.
        for k in ["failed:{a}", "failed:{b}"] {
            let r: redis::RedisResult<Option<String>> = q(&mut c, &["GET", k]);
            assert!(
                !matches!(r, Ok(Some(_))),
                "{k} visible after a failed write: {r:?}"
            );
        }
        let before: String = q(&mut c, &["GET", "before"]).unwrap();
        assert_eq!(before, "1", "clean keys are still served");
        drop(server);
        let server = start(&dir, &[]);
        let mut c = server.conn();
        let got: (
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
        ) = redis::cmd("MGET")
            .arg(&["before", "failed:{a}", "failed:{b}", "later"])
            .query(&mut c)
            .unwrap();
        assert_eq!(got, (Some("1".into()), None, None, None), "{how}");
    }
}

/// Flips one byte at `pos` of `path`.
fn flip(path: &Path, pos: u64) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut b = [0u8];
    f.read_exact_at(&mut b, pos).unwrap();
    b[0] ^= 0x40;
    f.write_all_at(&b, pos).unwrap();
}

/// The end of the units in a segment (where its zeros begin).
fn units_end(path: &Path) -> u64 {
    let b = std::fs::read(path).unwrap();
    b.iter().rposition(|&x| x != 0).unwrap() as u64 + 1
}

/// One shard, ten SETs (ten units), a clean stop: the segment that holds them.
fn ten_units_then_stop(dir: &Dir) -> PathBuf {
    let server = start(dir, &["--shards", "1"]);
    let mut c = server.conn();
    for i in 0..10 {
        let _: () = q(&mut c, &["SET", &format!("k{i}"), "v"]).unwrap();
    }
    assert_eq!(server.stop().code(), Some(0));
    dir.segments(0).pop().unwrap()
}

#[test]
fn a_torn_last_unit_is_dropped_and_logged() {
    let dir = Dir::new("torn");
    let seg = ten_units_then_stop(&dir);
    // The last byte of the last unit (its CRC): as if the crash cut its write.
    flip(&seg, units_end(&seg) - 1);
    let server = start(&dir, &["--shards", "1"]);
    let mut c = server.conn();
    let n: i64 = q(&mut c, &["DBSIZE"]).unwrap();
    assert_eq!(n, 9, "the torn unit (k9) is dropped, the rest kept");
    assert!(server.log_text().contains("dropping a torn unit"));
    // Writing continues where the log now ends, and survives another restart.
    let _: () = q(&mut c, &["SET", "after", "1"]).unwrap();
    drop(server);
    let server = start(&dir, &["--shards", "1"]);
    let n: i64 = q(&mut server.conn(), &["DBSIZE"]).unwrap();
    assert_eq!(n, 10);
}

#[test]
fn corruption_before_the_end_stops_start_up_unless_told_to_truncate() {
    let dir = Dir::new("corrupt");
    let seg = ten_units_then_stop(&dir);
    // A byte inside the first unit (after the 128-byte header), whole units after it.
    flip(&seg, 128 + 30);
    let args = [
        "--shards",
        "1",
        "--dir",
        dir.arg(),
        "--appendonly",
        "yes",
        "--wal-segment-size",
        "1mb",
    ];
    let e = Server::try_start(&args).err().expect("start-up refused");
    assert!(
        e.contains(seg.to_str().unwrap()) && e.contains("file offset 128"),
        "{e}"
    );
    let mut args = args.to_vec();
    args.extend(["--wal-truncate-corrupt", "yes"]);
    let server = Server::start(&args);
    let n: i64 = q(&mut server.conn(), &["DBSIZE"]).unwrap();
    assert_eq!(n, 0, "cut at the first unit");
}

/// A restarted primary takes a new replication id and keeps its recovered history as replid2 (Valkey's
/// rule): its replica continues by partial resync.
#[test]
fn replicas_continue_a_restarted_primary_by_partial_resync() {
    let dir = Dir::new("primary");
    let primary = start(&dir, &[]);
    let port = primary.port.to_string();
    let replica = Server::start(&["--shards", "2"]);
    let mut p = primary.conn();
    for i in 0..2000 {
        let _: () = q(&mut p, &["SET", &format!("k{i}"), &i.to_string()]).unwrap();
    }
    follow(&replica, &primary);
    wait_caught_up(&primary, &replica, 60);
    let (id, off) = (
        field(&mut p, "replication", "master_replid"),
        num(&mut p, "replication", "master_repl_offset"),
    );
    assert_eq!(primary.stop().code(), Some(0));
    let primary = start(&dir, &["--port", &port]);
    let mut p = primary.conn();
    assert_ne!(field(&mut p, "replication", "master_replid"), id);
    assert_eq!(field(&mut p, "replication", "master_replid2"), id);
    assert_eq!(num(&mut p, "replication", "second_repl_offset"), off + 1);
    assert_eq!(num(&mut p, "replication", "master_repl_offset"), off);
    let _: () = q(&mut p, &["SET", "after", "restart"]).unwrap();
    assert!(eventually(30, || num(&mut p, "stats", "sync_partial_ok") >= 1));
    wait_caught_up(&primary, &replica, 60);
    assert_eq!(num(&mut p, "stats", "sync_full"), 0, "no full sync");
    assert_eq!(digest(&mut replica.conn()), digest(&mut p));
    // Its WAL holds the history written under the second life's id: the third life continues that.
    let second = field(&mut p, "replication", "master_replid");
    let _: () = q(&mut p, &["SET", "second", "life"]).unwrap();
    wait_caught_up(&primary, &replica, 60);
    assert_eq!(primary.stop().code(), Some(0));
    let primary = start(&dir, &["--port", &port]);
    let mut p = primary.conn();
    assert_eq!(field(&mut p, "replication", "master_replid2"), second);
    assert!(eventually(30, || num(&mut p, "stats", "sync_partial_ok") >= 1));
    assert_eq!(num(&mut p, "stats", "sync_full"), 0, "no full sync");
}

/// A replica that holds more of a primary's history than the primary recovered (here: the primary's
/// directory put back to an older copy) is not continued under the old id into the log the primary went
/// on writing, which would splice two histories mid-unit: it gets a full sync and ends equal to it.
#[test]
fn a_replica_ahead_of_its_restarted_primary_gets_a_full_sync() {
    let (dir, old) = (Dir::new("ahead"), Dir::new("ahead-old"));
    let primary = start(&dir, &[]);
    let port = primary.port.to_string();
    let replica = Server::start(&["--shards", "2"]);
    let mut p = primary.conn();
    for i in 0..100 {
        let _: () = q(&mut p, &["SET", &format!("k{i}"), &i.to_string()]).unwrap();
    }
    follow(&replica, &primary);
    wait_caught_up(&primary, &replica, 60);
    assert_eq!(primary.stop().code(), Some(0));
    copy_dir(&dir.0, &old.0);
    let primary = start(&dir, &["--port", &port]);
    let mut p = primary.conn();
    for i in 0..1000 {
        let _: () = q(&mut p, &["SET", &format!("j{i}"), &i.to_string()]).unwrap();
    }
    wait_caught_up(&primary, &replica, 60);
    // The replica waits elsewhere, keeping what it would continue from.
    let mut r = replica.conn();
    let _: () = q(&mut r, &["REPLICAOF", "127.0.0.1", "1"]).unwrap();
    assert_eq!(primary.stop().code(), Some(0));
    std::fs::remove_dir_all(&dir.0).unwrap();
    copy_dir(&old.0, &dir.0);
    let primary = start(&dir, &["--port", &port]);
    let mut p = primary.conn();
    // Past the replica's offsets on every shard, under a history without the j keys.
    for i in 0..3000 {
        let _: () = q(&mut p, &["SET", &format!("l{i}"), &i.to_string()]).unwrap();
    }
    follow(&replica, &primary);
    wait_caught_up(&primary, &replica, 60);
    assert_eq!(digest(&mut r), digest(&mut p), "{}", replica.log_text());
    assert_eq!(q::<i64>(&mut r, &["EXISTS", "j0"]).unwrap(), 0);
    assert_eq!(num(&mut p, "stats", "sync_full"), 1);
    assert_eq!(num(&mut p, "stats", "sync_partial_ok"), 0);
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

#[test]
fn start_up_with_a_foreign_file_fails_with_one_line() {
    let dir = Dir::new("foreign");
    std::fs::create_dir_all(dir.0.join("appendonlydir")).unwrap();
    let bad = dir
        .0
        .join("appendonlydir/appendonly.aof.s0.00000000000000000000.wal");
    std::fs::write(&bad, b"*1\r\n$4\r\nPING\r\n").unwrap();
    let e = Server::try_start(&["--shards", "1", "--dir", dir.arg(), "--appendonly", "yes"])
        .err()
        .expect("refused");
    assert!(
        e.contains(bad.to_str().unwrap()) && e.contains("not a Tandem WAL segment"),
        "{e}"
    );
}

/// SAVE without a WAL: a restart loads the snapshot (what came after it is not there: nothing logged it).
#[test]
fn a_snapshot_is_loaded_at_start() {
    let dir = Dir::new("save");
    let args = ["--shards", "2", "--dir", dir.arg()];
    let server = Server::start(&args);
    let mut c = server.conn();
    for i in 0..1000 {
        let _: () = q(&mut c, &["SET", &format!("k{i}"), &i.to_string()]).unwrap();
    }
    let _: () = q(&mut c, &["SET", "ttl", "v", "EX", "1000"]).unwrap();
    let _: () = q(&mut c, &["SAVE"]).unwrap();
    let saved: i64 = q(&mut c, &["LASTSAVE"]).unwrap();
    let d = digest(&mut c);
    let _: () = q(&mut c, &["SET", "after", "1"]).unwrap();
    drop(server);
    let server = Server::start(&args);
    let mut c = server.conn();
    assert_eq!(digest(&mut c), d);
    let ttl: i64 = q(&mut c, &["TTL", "ttl"]).unwrap();
    assert!(ttl > 900, "{ttl}");
    assert!(saved > 0);
}

/// BGSAVE with the WAL on: a restart loads the snapshot and replays only the WAL after it; segments the
/// snapshot covers are deleted.
#[test]
fn a_snapshot_and_the_wal_after_it_are_recovered() {
    let dir = Dir::new("bgsave");
    let server = start(&dir, &["--shards", "1"]);
    let mut c = server.conn();
    let v = "x".repeat(1000);
    for i in 0..3000 {
        let _: () = q(&mut c, &["SET", &format!("a{i}"), &v]).unwrap();
    }
    let before = dir.segments(0).len();
    assert!(before >= 3, "3 MB in 1 MB segments: {before}");
    let r: String = q(&mut c, &["BGSAVE"]).unwrap();
    assert_eq!(r, "Background saving started");
    assert!(eventually(30, || num(
        &mut c,
        "persistence",
        "rdb_bgsave_in_progress"
    ) == 0));
    assert_eq!(field(&mut c, "persistence", "rdb_last_bgsave_status"), "ok");
    assert!(dir.segments(0).len() < before, "covered segments deleted");
    for i in 0..100 {
        let _: () = q(&mut c, &["SET", &format!("b{i}"), "1"]).unwrap();
    }
    let d = digest(&mut c);
    drop(server);
    let server = start(&dir, &["--shards", "1"]);
    assert_eq!(digest(&mut server.conn()), d);
    let log = server.log_text();
    assert!(
        log.contains("loaded from a snapshot, 100 WAL units"),
        "{log}"
    );
}

/// A replica with the WAL on restarts and continues by partial resync (its full sync's snapshot started
/// its WAL; what it applied after is in it).
#[test]
fn a_restarted_replica_continues_by_partial_resync() {
    let dir = Dir::new("replica");
    let primary = Server::start(&["--shards", "2"]);
    let mut p = primary.conn();
    for i in 0..2000 {
        let _: () = q(&mut p, &["SET", &format!("k{i}"), &i.to_string()]).unwrap();
    }
    let replica = start(&dir, &[]);
    follow(&replica, &primary);
    wait_caught_up(&primary, &replica, 60);
    let mut r = replica.conn();
    // The snapshot that starts the replica's WAL after its full sync.
    assert!(eventually(30, || num(
        &mut r,
        "persistence",
        "rdb_bgsave_in_progress"
    ) == 0
        && q::<i64>(&mut r, &["LASTSAVE"]).unwrap() > 0
        && replica.log_text().contains("Snapshot saved")));
    for i in 0..500 {
        let _: () = q(&mut p, &["SET", &format!("j{i}"), &i.to_string()]).unwrap();
    }
    wait_caught_up(&primary, &replica, 60);
    let port = primary.port.to_string();
    drop(replica); // kill -9
    for i in 0..500 {
        let _: () = q(&mut p, &["SET", &format!("l{i}"), &i.to_string()]).unwrap();
    }
    let replica = start(&dir, &["--replicaof", "127.0.0.1", &port]);
    wait_caught_up(&primary, &replica, 60);
    assert_eq!(
        num(&mut p, "stats", "sync_full"),
        1,
        "{}",
        replica.log_text()
    );
    assert!(num(&mut p, "stats", "sync_partial_ok") >= 1);
    assert_eq!(digest(&mut replica.conn()), digest(&mut p));
}

/// Durability mode over a full outage: primary and replica both killed during writes, both restarted from
/// their WALs: every write acknowledged (by the replica and the primary's disk) is on the primary, and the
/// replica continues from it by partial resync.
#[test]
fn a_full_outage_in_durability_mode_loses_no_acknowledged_write() {
    let (pd, rd) = (Dir::new("outage-p"), Dir::new("outage-r"));
    let durable = ["--durability", "yes", "--durability-timeout", "5000"];
    let primary = start(&pd, &durable);
    let port = primary.port.to_string();
    let replica = start(&rd, &["--replicaof", "127.0.0.1", &port]);
    let mut p = primary.conn();
    assert!(eventually(30, || num(
        &mut p,
        "replication",
        "durability_eligible_replicas"
    ) == 1));
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    for t in 0..4 {
        let (acked, stop, url) = (acked.clone(), stop.clone(), primary.url());
        threads.push(std::thread::spawn(move || {
            let mut c = redis::Client::open(url).unwrap().get_connection().unwrap();
            for i in 0.. {
                if stop.load(Ordering::Acquire) {
                    return;
                }
                let k = format!("t{t}:{i}");
                match redis::cmd("SET").arg(&k).arg(i).query::<()>(&mut c) {
                    Ok(()) => acked.lock().unwrap().push(k),
                    Err(_) => return,
                }
            }
        }));
    }
    assert!(eventually(30, || acked.lock().unwrap().len() > 1000));
    drop(replica);
    drop(primary);
    stop.store(true, Ordering::Release);
    for t in threads {
        t.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    let primary = start(&pd, &[&durable[..], &["--port", &port]].concat());
    let replica = start(&rd, &["--replicaof", "127.0.0.1", &port]);
    let mut p = primary.conn();
    for chunk in acked.chunks(500) {
        let n: i64 = redis::cmd("EXISTS").arg(chunk).query(&mut p).unwrap();
        assert_eq!(n as usize, chunk.len(), "an acknowledged write was lost");
    }
    wait_caught_up(&primary, &replica, 60);
    assert_eq!(digest(&mut replica.conn()), digest(&mut p));
    assert_eq!(
        num(&mut p, "stats", "sync_full"),
        0,
        "the replica continued"
    );
}

/// A file at `dbfilename` itself (an RDB from Valkey, say) is not loaded silently: start-up says why.
#[test]
fn start_up_beside_a_foreign_dump_file_fails_with_one_line() {
    let dir = Dir::new("rdb");
    std::fs::write(dir.0.join("dump.rdb"), b"REDIS0011\xfa").unwrap();
    let e = Server::try_start(&["--shards", "1", "--dir", dir.arg()])
        .err()
        .expect("refused");
    assert!(e.contains("dump.rdb is not a Tandem snapshot"), "{e}");
}

/// Collections of every type come back from a snapshot and the WAL after it: the snapshot carries their
/// byte form, the WAL the commands (SPOP as the SREM it amounted to).
#[test]
fn collections_survive_a_restart_from_snapshot_and_wal() {
    let dir = Dir::new("types");
    let server = start(&dir, &[]);
    let mut c = server.conn();
    for i in 0..500 {
        let mut p = redis::pipe();
        p.cmd("HSET").arg("h").arg(format!("f{i}")).arg(i);
        p.cmd("RPUSH").arg("l").arg(i);
        p.cmd("SADD").arg("s").arg(format!("m{i}"));
        p.cmd("ZADD").arg("z").arg(i).arg(format!("m{i}"));
        let _: redis::Value = p.query(&mut c).unwrap();
    }
    let _: String = q(&mut c, &["SAVE"]).unwrap();
    let _: i64 = q(&mut c, &["HDEL", "h", "f1"]).unwrap();
    let _: Vec<String> = q(&mut c, &["SPOP", "s", "10"]).unwrap();
    let _: Vec<String> = q(&mut c, &["ZPOPMAX", "z", "3"]).unwrap();
    let _: i64 = q(&mut c, &["LPUSH", "l", "head"]).unwrap();
    let _: i64 = q(&mut c, &["SADD", "small", "1", "2"]).unwrap();
    let d = digest(&mut c);
    drop(server);
    let server = start(&dir, &[]);
    let mut c = server.conn();
    assert_eq!(digest(&mut c), d);
    assert_eq!(q::<i64>(&mut c, &["SCARD", "s"]).unwrap(), 490);
    assert_eq!(q::<String>(&mut c, &["LINDEX", "l", "0"]).unwrap(), "head");
    assert_eq!(
        q::<String>(&mut c, &["OBJECT", "ENCODING", "small"]).unwrap(),
        "intset"
    );
}

/// INFO's rdb_changes_since_last_save: a write that changed something counts, on either shard; a read
/// and a write that changed nothing do not; SAVE brings it back to what came after its cut.
#[test]
fn changes_since_the_last_save_are_counted_until_a_save() {
    let dir = Dir::new("dirty");
    let server = Server::start(&["--shards", "2", "--dir", dir.arg()]);
    let mut c = server.conn();
    let dirty = |c: &mut redis::Connection| num(c, "persistence", "rdb_changes_since_last_save");
    assert_eq!(dirty(&mut c), 0);
    for k in ["a", "b", "c", "d"] {
        let _: () = q(&mut c, &["SET", k, "1"]).unwrap();
    }
    assert_eq!(dirty(&mut c), 4);
    let _: i64 = q(&mut c, &["RPUSH", "list", "x", "y", "z"]).unwrap();
    let _: Option<String> = q(&mut c, &["GET", "a"]).unwrap();
    let _: i64 = q(&mut c, &["DEL", "missing"]).unwrap();
    assert_eq!(dirty(&mut c), 5);
    // A pop that empties the list is one change (its key's removal is part of it).
    let _: Vec<String> = q(&mut c, &["LPOP", "list", "3"]).unwrap();
    assert_eq!(dirty(&mut c), 6);
    let _: () = q(&mut c, &["SAVE"]).unwrap();
    assert_eq!(dirty(&mut c), 0);
    let _: i64 = q(&mut c, &["DEL", "a", "b", "c", "d"]).unwrap();
    assert!(dirty(&mut c) >= 2, "keys of both shards deleted");
}
