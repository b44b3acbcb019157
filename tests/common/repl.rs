//! Helpers for replication tests: INFO fields, digests, "caught up" conditions, a background writer.
#![allow(dead_code)]

use super::{eventually, q, Server};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

pub fn info(c: &mut redis::Connection, section: &str) -> String {
    q::<String>(c, &["INFO", section]).unwrap()
}

/// One `field:value` of INFO `section`.
pub fn field(c: &mut redis::Connection, section: &str, name: &str) -> String {
    info(c, section)
        .lines()
        .find_map(|l| {
            l.strip_prefix(&format!("{name}:"))
                .map(|v| v.trim().to_string())
        })
        .unwrap_or_default()
}

pub fn num(c: &mut redis::Connection, section: &str, name: &str) -> i64 {
    field(c, section, name).parse().unwrap_or(-1)
}

pub fn digest(c: &mut redis::Connection) -> String {
    q::<String>(c, &["DEBUG", "DIGEST"]).unwrap()
}

/// Points `replica` at `primary`.
pub fn follow(replica: &Server, primary: &Server) {
    let mut c = replica.conn();
    let _: String = q(
        &mut c,
        &["REPLICAOF", "127.0.0.1", &primary.port.to_string()],
    )
    .unwrap();
}

/// True once the replica's link is up and it has applied everything the primary journaled.
pub fn caught_up(primary: &Server, replica: &Server) -> bool {
    let (mut p, mut r) = (primary.conn(), replica.conn());
    if field(&mut r, "replication", "master_link_status") != "up" {
        return false;
    }
    let want = num(&mut p, "replication", "master_repl_offset");
    want >= 0 && num(&mut r, "replication", "slave_repl_offset") == want
}

pub fn wait_caught_up(primary: &Server, replica: &Server, secs: u64) {
    assert!(
        eventually(secs, || caught_up(primary, replica)),
        "replica did not catch up.\nprimary:\n{}\nreplica:\n{}\nreplica log:\n{}",
        info(&mut primary.conn(), "replication"),
        info(&mut replica.conn(), "replication"),
        replica.log_text()
    );
}

/// Writes of every kind against a server from a thread until stopped: SET, SET with TTL, INCR,
/// INCRBYFLOAT, APPEND, EXPIRE, PERSIST, DEL, MSET across shards, GETDEL.
pub struct Writer {
    stop: Arc<AtomicBool>,
    pub ops: Arc<AtomicU64>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Writer {
    pub fn start(server: &Server, keys: u64) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let ops = Arc::new(AtomicU64::new(0));
        let mut c = server.conn();
        let (s2, o2) = (stop.clone(), ops.clone());
        let handle = std::thread::spawn(move || {
            let mut i: u64 = 0;
            while !s2.load(Ordering::Relaxed) {
                let k = format!("w:{}", (i * 7919) % keys);
                let k2 = format!("w:{}", (i * 104729 + 1) % keys);
                let mut p = redis::pipe();
                match i % 10 {
                    0 => p.cmd("SET").arg(&k).arg(i),
                    1 => p.cmd("SET").arg(&k).arg("ttl").arg("EX").arg(1000),
                    2 => p.cmd("INCR").arg(format!("n:{}", i % 50)),
                    3 => p.cmd("INCRBYFLOAT").arg(format!("f:{}", i % 50)).arg("0.5"),
                    4 => p.cmd("APPEND").arg(&k).arg("x"),
                    5 => p.cmd("EXPIRE").arg(&k).arg(500),
                    6 => p.cmd("PERSIST").arg(&k2),
                    7 => p.cmd("DEL").arg(&k2),
                    8 => p.cmd("MSET").arg(&k).arg("m1").arg(&k2).arg("m2"),
                    _ => p.cmd("GETDEL").arg(&k2),
                };
                // Values written are checked by digest; replies only need to be read.
                let _: redis::RedisResult<redis::Value> = p.query(&mut c);
                o2.fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
        });
        Writer {
            stop,
            ops,
            handle: Some(handle),
        }
    }

    pub fn stop(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.take().unwrap().join().unwrap();
        self.ops.load(Ordering::Relaxed)
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
