//! Replication of every type: full syncs across shard counts carry collections (and the writes made
//! during them), the log carries each write as the command it was (one HSET ships one field), and the
//! non-deterministic ones as what they did (SPOP as SREM).

mod common;
use common::repl::{digest, follow, num, wait_caught_up};
use common::{q, Server};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// Fills `c` with collections of every type, small and big.
fn fill(c: &mut redis::Connection) {
    let mut p = redis::pipe();
    for i in 0..300 {
        p.cmd("HSET")
            .arg(format!("h:{i}"))
            .arg("a")
            .arg(i)
            .arg("b")
            .arg("x");
        p.cmd("RPUSH").arg(format!("l:{i}")).arg(i).arg("y");
        p.cmd("SADD").arg(format!("s:{i}")).arg(i).arg("m");
        p.cmd("ZADD")
            .arg(format!("z:{i}"))
            .arg(i)
            .arg("m")
            .arg(1.5)
            .arg("n");
        p.cmd("PEXPIRE").arg(format!("z:{i}")).arg(10_000_000);
    }
    for i in 0..5000 {
        p.cmd("HSET").arg("bighash").arg(format!("f{i}")).arg(i);
        p.cmd("RPUSH").arg("biglist").arg(format!("e{i}"));
        p.cmd("SADD").arg("bigset").arg(format!("m{i}"));
        p.cmd("ZADD")
            .arg("bigzset")
            .arg(i % 100)
            .arg(format!("m{i}"));
    }
    let _: redis::Value = p.query(c).unwrap();
}

/// Collection writes of every kind from a thread until stopped.
fn writer(server: &Server) -> (Arc<AtomicBool>, Arc<AtomicU64>, std::thread::JoinHandle<()>) {
    let stop = Arc::new(AtomicBool::new(false));
    let ops = Arc::new(AtomicU64::new(0));
    let mut c = server.conn();
    let (s2, o2) = (stop.clone(), ops.clone());
    let h = std::thread::spawn(move || {
        let mut i: u64 = 0;
        while !s2.load(Ordering::Relaxed) {
            let k = i % 300;
            let mut p = redis::pipe();
            match i % 10 {
                0 => p
                    .cmd("HSET")
                    .arg(format!("h:{k}"))
                    .arg(format!("f{i}"))
                    .arg(i),
                1 => p.cmd("HDEL").arg(format!("h:{k}")).arg("a"),
                2 => p.cmd("LPUSH").arg(format!("l:{k}")).arg(i),
                3 => p.cmd("RPOP").arg(format!("l:{k}")),
                4 => p.cmd("SPOP").arg("bigset"),
                5 => p
                    .cmd("ZINCRBY")
                    .arg("bigzset")
                    .arg(1)
                    .arg(format!("m{}", i % 5000)),
                6 => p.cmd("ZPOPMIN").arg(format!("z:{k}")),
                // Multi-key writes across slots (logged as the states they made).
                8 => p
                    .cmd("SUNIONSTORE")
                    .arg(format!("u:{k}"))
                    .arg(format!("s:{k}"))
                    .arg(format!("s:{}", k + 1)),
                9 => p
                    .cmd("LMOVE")
                    .arg(format!("l:{k}"))
                    .arg(format!("l:{}", k + 1))
                    .arg("LEFT")
                    .arg("RIGHT"),
                _ => p
                    .cmd("HINCRBYFLOAT")
                    .arg("bighash")
                    .arg(format!("f{}", i % 5000))
                    .arg("0.25"),
            };
            let _: redis::RedisResult<redis::Value> = p.query(&mut c);
            o2.fetch_add(1, Ordering::Relaxed);
            i += 1;
        }
    });
    (stop, ops, h)
}

#[test]
fn collections_sync_to_other_shard_counts_under_writes() {
    let primary = Server::start(&["--shards", "2"]);
    let mut p = primary.conn();
    fill(&mut p);
    let (stop, ops, h) = writer(&primary);
    let r1 = Server::start(&["--shards", "1"]);
    let r3 = Server::start(&["--shards", "3", "--key-load-delay", "20"]);
    follow(&r1, &primary);
    follow(&r3, &primary);
    wait_caught_up(&primary, &r1, 120);
    wait_caught_up(&primary, &r3, 120);
    assert!(common::eventually(30, || ops.load(Ordering::Relaxed) > 1000));
    stop.store(true, Ordering::Relaxed);
    h.join().unwrap();
    wait_caught_up(&primary, &r1, 60);
    wait_caught_up(&primary, &r3, 60);
    let want = digest(&mut p);
    for r in [&r1, &r3] {
        let mut c = r.conn();
        assert_eq!(digest(&mut c), want, "replica log:\n{}", r.log_text());
        for k in ["bighash", "biglist", "bigset", "bigzset", "z:7"] {
            assert_eq!(
                q::<String>(&mut c, &["OBJECT", "ENCODING", k]).unwrap(),
                q::<String>(&mut p, &["OBJECT", "ENCODING", k]).unwrap(),
                "{k}"
            );
            assert_eq!(
                q::<i64>(&mut c, &["PEXPIRETIME", k]).unwrap(),
                q::<i64>(&mut p, &["PEXPIRETIME", k]).unwrap()
            );
        }
    }
}

#[test]
fn one_hset_on_a_big_hash_ships_one_field_and_spop_ships_what_it_popped() {
    let primary = Server::start(&["--shards", "2"]);
    let replica = Server::start(&["--shards", "1"]);
    follow(&replica, &primary);
    let mut p = primary.conn();
    for chunk in 0..200 {
        let mut cmd = redis::cmd("HSET");
        cmd.arg("huge");
        for i in 0..1000 {
            cmd.arg(format!("field:{}", chunk * 1000 + i))
                .arg("some value");
        }
        let _: i64 = cmd.query(&mut p).unwrap();
    }
    assert_eq!(q::<i64>(&mut p, &["HLEN", "huge"]).unwrap(), 200_000);
    wait_caught_up(&primary, &replica, 60);
    let before = num(&mut p, "replication", "master_repl_offset");
    let _: i64 = q(&mut p, &["HSET", "huge", "field:7", "changed"]).unwrap();
    let shipped = num(&mut p, "replication", "master_repl_offset") - before;
    // A unit header and CRC plus the record: tens of bytes, where the hash is megabytes.
    assert!(
        shipped > 0 && shipped < 200,
        "one HSET shipped {shipped} bytes"
    );
    let before = num(&mut p, "replication", "master_repl_offset");
    let _: i64 = q(&mut p, &["PEXPIRE", "huge", "100000000"]).unwrap();
    let shipped = num(&mut p, "replication", "master_repl_offset") - before;
    assert!(shipped < 200, "a TTL change shipped {shipped} bytes");
    let mut c = replica.conn();
    let mut args = vec!["SADD".to_string(), "s".into()];
    args.extend((0..1000).map(|i| format!("m{i}")));
    let args: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
    let _: i64 = q(&mut p, &args).unwrap();
    for _ in 0..50 {
        let _: Vec<String> = q(&mut p, &["SPOP", "s", "3"]).unwrap();
    }
    wait_caught_up(&primary, &replica, 60);
    assert_eq!(q::<i64>(&mut c, &["SCARD", "s"]).unwrap(), 850);
    assert_eq!(digest(&mut c), digest(&mut p));
    assert_eq!(
        q::<String>(&mut c, &["HGET", "huge", "field:7"]).unwrap(),
        "changed"
    );
}
