//! Server-level behaviour: start-up configuration, CONFIG, INFO, CLIENT, AUTH, limits, shutdown.

mod common;
use common::{err, q, Server};
use redis::{cmd, Value};

#[test]
fn version_help_and_bad_config() {
    let bin = env!("CARGO_BIN_EXE_tandem-server");
    let out = std::process::Command::new(bin)
        .arg("--version")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("Tandem server v="));
    let out = std::process::Command::new(bin)
        .arg("--help")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("Usage: tandem-server"));
    let err = Server::try_start(&["--maxmemory", "lots"])
        .err()
        .expect("refused");
    assert!(
        err.contains("--maxmemory lots") && err.contains("memory value"),
        "{err}"
    );
    let dir = std::env::temp_dir().join(format!("tandem-test-{}.conf", std::process::id()));
    std::fs::write(&dir, "port 0\n# comment\nno-such-directive yes\n").unwrap();
    let out = std::process::Command::new(bin).arg(&dir).output().unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && text.contains("line 3") && text.contains("no-such-directive"),
        "{text}"
    );
    std::fs::remove_file(dir).ok();
}

#[test]
fn config_file_with_command_line_override() {
    let dir = std::env::temp_dir().join(format!("tandem-test-ok-{}.conf", std::process::id()));
    std::fs::write(&dir, "maxclients 77\nhz 20\nlist-max-listpack-size -3\n").unwrap();
    let s = Server::start(&[dir.to_str().unwrap(), "--hz", "30"]);
    let c = &mut s.conn();
    let got: Vec<String> = q(
        c,
        &[
            "CONFIG",
            "GET",
            "maxclients",
            "hz",
            "list-max-listpack-size",
        ],
    )
    .unwrap();
    let map: std::collections::HashMap<_, _> = got
        .chunks(2)
        .map(|p| (p[0].clone(), p[1].clone()))
        .collect();
    assert_eq!(map["maxclients"], "77");
    assert_eq!(map["hz"], "30", "command line wins over the file");
    assert_eq!(
        map["list-max-listpack-size"], "-3",
        "no-effect knobs are kept"
    );
    std::fs::remove_file(dir).ok();
}

#[test]
fn config_get_set_resetstat() {
    let s = Server::start(&["--shards", "2"]);
    let c = &mut s.conn();
    let all: Vec<String> = q(c, &["CONFIG", "GET", "*"]).unwrap();
    assert!(all.len() > 60);
    let m: Vec<String> = q(c, &["CONFIG", "GET", "maxmemory*"]).unwrap();
    let names: Vec<&str> = m.chunks(2).map(|p| p[0].as_str()).collect();
    assert_eq!(
        names,
        vec!["maxmemory", "maxmemory-policy", "maxmemory-samples"]
    );
    assert!(m.chunks(2).any(|p| p[0] == "maxmemory" && p[1] == "0"));
    assert_eq!(
        q::<String>(c, &["CONFIG", "SET", "maxmemory", "10mb", "timeout", "300"]).unwrap(),
        "OK"
    );
    let v: Vec<String> = q(c, &["CONFIG", "GET", "maxmemory"]).unwrap();
    assert_eq!(v[1], "10485760");
    assert_eq!(
        err(c, &["CONFIG", "SET", "port", "1"]),
        "ERR CONFIG SET failed (possibly related to argument 'port') - can't set immutable config"
    );
    assert_eq!(err(c, &["CONFIG", "SET", "hz", "x"]), "ERR CONFIG SET failed (possibly related to argument 'hz') - argument couldn't be parsed into an integer");
    assert!(err(c, &["CONFIG", "SET", "bogus", "1"]).contains("Unknown option"));
    q::<()>(c, &["SET", "a", "1"]).unwrap();
    assert_eq!(q::<String>(c, &["CONFIG", "RESETSTAT"]).unwrap(), "OK");
    let info: String = q(c, &["INFO", "stats"]).unwrap();
    assert!(info.contains("keyspace_hits:0"), "{info}");
}

#[test]
fn info_sections_and_fields() {
    let s = Server::start(&["--shards", "2"]);
    let c = &mut s.conn();
    q::<()>(c, &["SET", "a", "1"]).unwrap();
    q::<()>(c, &["SET", "b", "2", "EX", "100"]).unwrap();
    q::<Option<String>>(c, &["GET", "a"]).unwrap();
    q::<Option<String>>(c, &["GET", "zz"]).unwrap();
    let info: String = q(c, &["INFO"]).unwrap();
    for field in [
        "redis_version:7.2.4",
        "valkey_version:",
        "tandem_version:",
        "process_id:",
        "run_id:",
        "tcp_port:",
        "connected_clients:1",
        "used_memory:",
        "used_memory_rss:",
        "maxmemory:0",
        "loading:0",
        "rdb_bgsave_in_progress:0",
        "total_commands_processed:",
        "keyspace_hits:1",
        "keyspace_misses:1",
        "role:master",
        "master_replid:",
        "used_cpu_user:",
        "db0:keys=2,expires=1",
    ] {
        assert!(info.contains(field), "missing {field}");
    }
    assert!(
        !info.contains("cmdstat_"),
        "commandstats is not a default section"
    );
    let cs: String = q(c, &["INFO", "commandstats"]).unwrap();
    assert!(
        cs.contains("cmdstat_set:calls=2") && cs.contains("cmdstat_get:calls=2"),
        "{cs}"
    );
    let two: String = q(c, &["INFO", "server", "clients"]).unwrap();
    assert!(two.contains("# Server") && two.contains("# Clients") && !two.contains("# Memory"));
}

#[test]
fn client_commands() {
    let s = Server::start(&["--shards", "2"]);
    let c = &mut s.conn();
    let c2 = &mut s.conn();
    let id2: i64 = q(c2, &["CLIENT", "ID"]).unwrap();
    q::<()>(c, &["CLIENT", "SETNAME", "first"]).unwrap();
    assert_eq!(q::<String>(c, &["CLIENT", "GETNAME"]).unwrap(), "first");
    assert_eq!(
        err(c, &["CLIENT", "SETNAME", "a b"]),
        "ERR Client names cannot contain spaces, newlines or special characters."
    );
    q::<()>(c, &["CLIENT", "SETINFO", "LIB-NAME", "mylib"]).unwrap();
    // The harness's readiness connection closes asynchronously; wait until only ours remain.
    assert!(common::eventually(5, || q::<String>(
        c,
        &["CLIENT", "LIST"]
    )
    .unwrap()
    .lines()
    .count()
        == 2));
    let list: String = q(c, &["CLIENT", "LIST"]).unwrap();
    assert!(list.contains("name=first") && list.contains("lib-name=mylib"));
    let mine: String = q(c, &["CLIENT", "INFO"]).unwrap();
    assert!(mine.contains("name=first"));
    assert_eq!(
        q::<i64>(c, &["CLIENT", "KILL", "ID", &id2.to_string()]).unwrap(),
        1
    );
    assert!(
        q::<String>(c2, &["PING"]).is_err(),
        "killed connection is closed"
    );
    assert!(common::eventually(5, || q::<String>(
        c,
        &["CLIENT", "LIST"]
    )
    .unwrap()
    .lines()
    .count()
        == 1));
}

#[test]
fn client_pause_delays_writes_not_reads() {
    let s = Server::start(&["--shards", "2"]);
    let c = &mut s.conn();
    q::<()>(c, &["SET", "k", "v"]).unwrap();
    q::<()>(c, &["CLIENT", "PAUSE", "400", "WRITE"]).unwrap();
    let start = std::time::Instant::now();
    assert_eq!(q::<String>(c, &["GET", "k"]).unwrap(), "v");
    assert!(start.elapsed().as_millis() < 300, "reads are not paused");
    q::<()>(c, &["SET", "k", "w"]).unwrap();
    assert!(
        start.elapsed().as_millis() >= 350,
        "writes wait for the pause to end"
    );
    q::<()>(c, &["CLIENT", "PAUSE", "100000"]).unwrap();
    let mut other = s.conn();
    let h = std::thread::spawn(move || {
        let t = std::time::Instant::now();
        let _: String = cmd("GET").arg("k").query(&mut other).unwrap();
        t.elapsed()
    });
    let mut admin = s.conn();
    // Wait until the reader's GET has reached the server and is held by the pause.
    assert!(common::eventually(5, || q::<String>(
        &mut admin,
        &["CLIENT", "LIST"]
    )
    .unwrap()
    .contains("cmd=get")));
    // CLIENT is never paused, so an admin can always unpause.
    let t = std::time::Instant::now();
    q::<()>(&mut admin, &["CLIENT", "UNPAUSE"]).unwrap();
    assert!(t.elapsed().as_secs() < 5);
    assert!(
        h.join().unwrap().as_secs() < 5,
        "the paused reader resumes on UNPAUSE"
    );
}

#[test]
fn requirepass_and_auth() {
    let s = Server::start(&["--requirepass", "sesame"]);
    let mut raw = s.raw();
    raw.send(&["GET", "k"]);
    assert_eq!(raw.read_line(), "-NOAUTH Authentication required.");
    raw.send(&["AUTH", "wrong"]);
    assert_eq!(
        raw.read_line(),
        "-WRONGPASS invalid username-password pair or user is disabled."
    );
    raw.send(&["AUTH", "sesame"]);
    assert_eq!(raw.read_line(), "+OK");
    raw.send(&["GET", "k"]);
    assert_eq!(raw.read_line(), "$-1");
    let mut raw = s.raw();
    raw.send(&["HELLO", "3", "AUTH", "default", "sesame"]);
    assert_eq!(raw.read_reply()[0], "%7");
    let c = &mut redis::Client::open(format!("redis://:sesame@127.0.0.1:{}/", s.port))
        .unwrap()
        .get_connection()
        .unwrap();
    assert_eq!(q::<String>(c, &["PING"]).unwrap(), "PONG");
    let open = Server::start(&[]);
    let c = &mut open.conn();
    assert!(err(c, &["AUTH", "x"])
        .starts_with("ERR AUTH <password> called without any password configured"));
}

#[test]
fn maxclients_and_maxmemory() {
    let s = Server::start(&["--maxclients", "2", "--shards", "2"]);
    let _a = s.conn();
    let _b = s.conn();
    let mut third = s.raw();
    assert_eq!(third.read_line(), "-ERR max number of clients reached");
    drop(_a);
    let s = Server::start(&["--maxmemory", "1"]);
    let c = &mut s.conn();
    assert_eq!(
        err(c, &["SET", "k", "v"]),
        "OOM command not allowed when used memory > 'maxmemory'."
    );
    assert_eq!(
        q::<i64>(c, &["DEL", "k"]).unwrap(),
        0,
        "commands that free memory still run"
    );
    assert_eq!(
        err(c, &["MSETNX", "a", "1", "b", "2"]),
        "OOM command not allowed when used memory > 'maxmemory'."
    );
}

#[test]
fn debug_gate_digest_and_populate() {
    let gated = Server::try_start(&["--enable-debug-command", "no"]).unwrap();
    let c = &mut gated.conn();
    assert!(err(c, &["DEBUG", "DIGEST"]).starts_with("ERR DEBUG command not allowed."));
    // Same data, different shard counts: same digest.
    let one = Server::start(&["--shards", "1"]);
    let three = Server::start(&["--shards", "3"]);
    let mut digests = Vec::new();
    for s in [&one, &three] {
        let c = &mut s.conn();
        assert_eq!(
            q::<String>(c, &["DEBUG", "DIGEST"]).unwrap(),
            "0".repeat(40)
        );
        q::<()>(c, &["DEBUG", "POPULATE", "1000", "key", "10"]).unwrap();
        q::<()>(c, &["SET", "t", "v", "PXAT", "99999999999999"]).unwrap();
        q::<()>(c, &["SELECT", "2"]).unwrap();
        q::<()>(c, &["SET", "indb2", "v"]).unwrap();
        assert_eq!(q::<i64>(c, &["DBSIZE"]).unwrap(), 1);
        q::<()>(c, &["SELECT", "0"]).unwrap();
        assert_eq!(q::<i64>(c, &["DBSIZE"]).unwrap(), 1001);
        let v: Vec<u8> = q(c, &["GET", "key:7"]).unwrap();
        assert_eq!(v, b"value:7\0\0\0");
        digests.push(q::<String>(c, &["DEBUG", "DIGEST"]).unwrap());
        let dv: Vec<String> = q(c, &["DEBUG", "DIGEST-VALUE", "key:1", "nope"]).unwrap();
        digests.push(dv.join(","));
    }
    assert_eq!(digests[0], digests[2]);
    assert_eq!(digests[1], digests[3]);
    assert_ne!(digests[0], "0".repeat(40));
    let c = &mut one.conn();
    q::<()>(c, &["SET", "key:1", "changed"]).unwrap();
    assert_ne!(q::<String>(c, &["DEBUG", "DIGEST"]).unwrap(), digests[0]);
}

#[test]
fn flush_swapdb_time_echo() {
    let s = Server::start(&["--shards", "2"]);
    let c = &mut s.conn();
    q::<()>(c, &["MSET", "a", "1", "b", "2"]).unwrap();
    q::<()>(c, &["SWAPDB", "0", "1"]).unwrap();
    assert_eq!(q::<i64>(c, &["DBSIZE"]).unwrap(), 0);
    q::<()>(c, &["SELECT", "1"]).unwrap();
    assert_eq!(q::<i64>(c, &["DBSIZE"]).unwrap(), 2);
    assert_eq!(
        err(c, &["SWAPDB", "0", "99"]),
        "ERR DB index is out of range"
    );
    q::<()>(c, &["FLUSHDB"]).unwrap();
    assert_eq!(q::<i64>(c, &["DBSIZE"]).unwrap(), 0);
    q::<()>(c, &["SET", "x", "1"]).unwrap();
    q::<()>(c, &["FLUSHALL", "ASYNC"]).unwrap();
    assert_eq!(q::<i64>(c, &["DBSIZE"]).unwrap(), 0);
    assert_eq!(err(c, &["FLUSHALL", "NOW"]), "ERR syntax error");
    let (secs, usecs): (String, String) = q(c, &["TIME"]).unwrap();
    assert!(
        secs.parse::<u64>().unwrap() > 1_700_000_000 && usecs.parse::<u64>().unwrap() < 1_000_000
    );
    assert_eq!(q::<String>(c, &["ECHO", "hi"]).unwrap(), "hi");
    let n: i64 = q(c, &["COMMAND", "COUNT"]).unwrap();
    assert!(n > 60);
    let keys: Vec<String> = q(c, &["COMMAND", "GETKEYS", "MSET", "a", "1", "b", "2"]).unwrap();
    assert_eq!(keys, vec!["a", "b"]);
    let docs: Value = q(c, &["COMMAND", "DOCS", "get"]).unwrap();
    assert!(format!("{docs:?}").contains("Returns the string value of a key."));
}

#[test]
fn shutdown_and_sigterm_exit_cleanly() {
    let s = Server::start(&["--shards", "2"]);
    let _idle = s.conn();
    assert!(
        s.stop().success(),
        "SIGTERM exits 0 with a client connected"
    );
    let mut s = Server::start(&["--shards", "2"]);
    let mut raw = s.raw();
    raw.send(&["SHUTDOWN", "NOSAVE"]);
    assert!(raw.closed());
    let st = common::wait_timeout(&mut s.child, std::time::Duration::from_secs(10)).expect("exits");
    assert!(st.success());
}

#[test]
fn idle_clients_are_closed_after_timeout() {
    let s = Server::start(&["--timeout", "1"]);
    let mut c = s.raw();
    c.send(&["PING"]);
    assert_eq!(c.read_line(), "+PONG");
    let t = std::time::Instant::now();
    assert!(c.closed(), "an idle client is closed");
    assert!(
        t.elapsed() >= std::time::Duration::from_millis(900),
        "not before the timeout"
    );
}

#[test]
fn logfile_receives_the_log() {
    let log = std::env::temp_dir().join(format!("tandem-log-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&log);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tandem-server"))
        .args(["--port", "0", "--logfile", log.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut port = None;
    assert!(common::eventually(10, || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        port = text
            .split("Server initialized on port ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next()?.parse::<u16>().ok());
        port.is_some() && text.contains("Ready to accept connections tcp")
    }));
    let c = &mut redis::Client::open(format!("redis://127.0.0.1:{}/", port.unwrap()))
        .unwrap()
        .get_connection()
        .unwrap();
    assert_eq!(q::<String>(c, &["PING"]).unwrap(), "PONG");
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    assert!(
        common::wait_timeout(&mut child, std::time::Duration::from_secs(10))
            .unwrap()
            .success(),
        "SIGINT exits 0"
    );
    let mut out = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut out).unwrap();
    assert!(
        !out.contains("Ready to accept"),
        "nothing logged to stdout when a logfile is set"
    );
    assert!(std::fs::read_to_string(&log)
        .unwrap()
        .contains("Received SIGINT"));
    std::fs::remove_file(&log).ok();
}

#[test]
fn concurrent_config_sets_leave_every_shard_agreeing() {
    let s = Server::start(&["--shards", "2"]);
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let url = s.url();
            std::thread::spawn(move || {
                let c = &mut redis::Client::open(url).unwrap().get_connection().unwrap();
                for i in 0..50 {
                    q::<()>(
                        c,
                        &[
                            "CONFIG",
                            "SET",
                            "hz",
                            &(10 + (w * 50 + i) % 400).to_string(),
                        ],
                    )
                    .unwrap();
                }
            })
        })
        .collect();
    writers.into_iter().for_each(|w| w.join().unwrap());
    // Connections land on both shards; every one must read the same final value.
    let seen: std::collections::HashSet<String> = (0..20)
        .map(|_| {
            let c = &mut s.conn();
            let v: Vec<String> = q(c, &["CONFIG", "GET", "hz"]).unwrap();
            let info: String = q(c, &["INFO", "server"]).unwrap();
            assert!(
                info.contains(&format!("hz:{}", v[1])),
                "INFO agrees with CONFIG GET"
            );
            v[1].clone()
        })
        .collect();
    assert_eq!(seen.len(), 1, "shards disagree: {seen:?}");
}
