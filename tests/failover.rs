//! Failover as an operator meets it (docs/failover.md): a group of real servers with `failover yes`
//! promotes an eligible replica by itself when the primary dies or stops, a paused old primary serves
//! nothing once another could, the old primary rejoins as a replica of its successor, and a witness lets
//! a group of two data nodes fail over. Timers are shortened (failover 1 s, lease 500 ms) so each test
//! takes seconds; every wait is a condition polled with a deadline.

mod common;
use common::repl::{digest, field, num};
use common::{eventually, q, Server};
use std::path::PathBuf;

static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// A member: its directory and port outlive its process, so it can be killed and restarted as itself.
struct Member {
    dir: PathBuf,
    port: u16,
    extra: Vec<String>,
    server: Option<Server>,
}

impl Member {
    fn start(seed: Option<&Member>, extra: &[&str]) -> Member {
        let dir = std::env::temp_dir().join(format!(
            "tandem-failover-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let mut extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        if let Some(s) = seed {
            extra.extend(["--replicaof".into(), "127.0.0.1".into(), s.port.to_string()]);
        }
        let mut m = Member {
            dir,
            port: 0,
            extra,
            server: None,
        };
        m.restart();
        m
    }

    /// Starts the process (again), on the same port and directory.
    fn restart(&mut self) {
        let port = self.port.to_string();
        let mut args = vec![
            "--shards",
            "2",
            "--failover",
            "yes",
            "--failover-timeout",
            "1000",
            "--failover-lease",
            "500",
            "--dir",
            self.dir.to_str().unwrap(),
            "--port",
            &port,
        ];
        args.extend(self.extra.iter().map(String::as_str));
        let s = Server::start(&args);
        self.port = s.port;
        self.server = Some(s);
    }

    fn s(&self) -> &Server {
        self.server.as_ref().expect("running")
    }

    fn kill9(&mut self) {
        let mut s = self.server.take().expect("running");
        s.child.kill().unwrap();
        s.child.wait().unwrap();
    }

    fn conn(&self) -> redis::Connection {
        self.s().conn()
    }

    fn state(&self) -> String {
        field(&mut self.conn(), "replication", "group_state")
    }

    fn eligible(&self) -> bool {
        field(&mut self.conn(), "replication", "eligible") == "yes"
    }

    /// A connection the node closes (a restarted old primary closes its clients when it learns who
    /// replaced it) does not accept writes either.
    fn accepts_writes(&self) -> bool {
        redis::Client::open(self.s().url())
            .and_then(|c| c.get_connection())
            .is_ok_and(|mut c| q::<String>(&mut c, &["SET", "probe", "1"]).is_ok())
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.server.take();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A founder and `replicas` members that joined it, every replica eligible.
fn group(replicas: usize, extra: &[&str]) -> Vec<Member> {
    let founder = Member::start(None, extra);
    assert!(
        eventually(20, || founder.state() == "serving"),
        "founder never served:\n{}",
        founder.s().log_text()
    );
    let mut g = vec![founder];
    for _ in 0..replicas {
        let m = Member::start(Some(&g[0]), extra);
        g.push(m);
    }
    for m in &g[1..] {
        assert!(
            eventually(30, || m.eligible() && m.state() == "following"),
            "member never became an eligible replica:\n{}\n{}",
            q::<String>(&mut m.conn(), &["INFO", "replication"]).unwrap(),
            m.s().log_text()
        );
    }
    g
}

/// Every replica (g[1..]) applied the primary's (g[0]) log end.
fn wait_caught_up(g: &[Member]) {
    let end = num(&mut g[0].conn(), "replication", "master_repl_offset");
    for m in &g[1..] {
        assert!(eventually(20, || num(
            &mut m.conn(),
            "replication",
            "slave_repl_offset"
        ) == end));
    }
}

fn the_serving_one(g: &[Member]) -> Option<usize> {
    g.iter()
        .position(|m| m.server.is_some() && m.state() == "serving" && m.accepts_writes())
}

#[test]
fn kill_9_of_the_primary_promotes_a_replica_and_the_old_primary_rejoins_it() {
    let mut g = group(2, &[]);
    let mut c = g[0].conn();
    for i in 0..500 {
        let _: () = q(&mut c, &["SET", &format!("k{i}"), &i.to_string()]).unwrap();
    }
    wait_caught_up(&g);
    g[0].kill9();
    let mut new = None;
    assert!(
        eventually(30, || {
            new = the_serving_one(&g[1..]).map(|i| i + 1);
            new.is_some()
        }),
        "no replica took over:\n{}\n{}",
        g[1].s().log_text(),
        g[2].s().log_text()
    );
    let p = new.unwrap();
    let mut pc = g[p].conn();
    assert_eq!(q::<String>(&mut pc, &["GET", "k499"]).unwrap(), "499");
    assert_eq!(q::<i64>(&mut pc, &["DBSIZE"]).unwrap(), 501);
    assert_eq!(field(&mut pc, "replication", "group_epoch"), "2");
    // The old primary comes back as itself: it follows its successor and catches up from it.
    g[0].restart();
    let old = &g[0];
    // Polled on fresh connections that may fail: a restarted old primary closes its clients when it
    // learns it was deposed (repl/group/act.rs), which can fall between two polls or inside one.
    let rejoined = || -> redis::RedisResult<bool> {
        let mut c = redis::Client::open(old.s().url())?.get_connection()?;
        let info: String = common::q(&mut c, &["INFO", "replication"])?;
        let has = |k: &str, v: &str| info.lines().any(|l| l.trim() == format!("{k}:{v}"));
        let mine: String = common::q(&mut c, &["DEBUG", "DIGEST"])?;
        Ok(has("master_port", &g[p].port.to_string())
            && has("master_link_status", "up")
            && mine == digest(&mut g[p].conn()))
    };
    assert!(
        eventually(30, || rejoined().unwrap_or(false)),
        "the old primary did not rejoin:\n{}",
        old.s().log_text()
    );
    assert!(!old.accepts_writes());
    assert!(eventually(30, || old.eligible()));
}

#[test]
fn a_paused_primary_serves_nothing_once_another_could() {
    let g = group(2, &[]);
    let _: () = q(&mut g[0].conn(), &["SET", "before", "1"]).unwrap();
    // The client is connected before the pause: its first command after it must be refused.
    let mut stale = g[0].conn();
    g[0].s().freeze();
    let mut new = None;
    assert!(eventually(30, || {
        new = the_serving_one(&g[1..]).map(|i| i + 1);
        new.is_some()
    }));
    let _: () = q(&mut g[new.unwrap()].conn(), &["SET", "after", "2"]).unwrap();
    g[0].s().thaw();
    // Neither a write nor a read: the zombie's lease ran out while it was stopped (refused), or it has
    // learned already that it was deposed (it closes its clients' connections).
    let w = q::<String>(&mut stale, &["SET", "zombie", "1"]).unwrap_err();
    let r = q::<Option<String>>(&mut stale, &["GET", "before"]).unwrap_err();
    for e in [&w, &r] {
        assert!(
            e.is_io_error() || matches!(e.code(), Some("TRYAGAIN" | "READONLY")),
            "{e}"
        );
    }
    // It then follows the new primary and holds what was written there.
    assert!(
        eventually(30, || q::<Option<String>>(
            &mut g[0].conn(),
            &["GET", "after"]
        )
        .ok()
        .flatten()
        .as_deref()
            == Some("2")),
        "{}",
        g[0].s().log_text()
    );
    assert_eq!(
        q::<Option<String>>(&mut g[new.unwrap()].conn(), &["GET", "zombie"]).unwrap(),
        None
    );
}

#[test]
fn a_witness_lets_two_data_nodes_fail_over() {
    let mut g = group(1, &[]);
    let w = Member::start(Some(&g[0]), &["--witness"]);
    assert!(eventually(30, || {
        let info = q::<String>(&mut g[0].conn(), &["INFO", "replication"]).unwrap();
        info.contains("witness=yes") && info.matches("voter=yes").count() == 3
    }));
    assert!(q::<String>(&mut w.conn(), &["SET", "x", "1"]).is_err());
    g[0].kill9();
    assert!(
        eventually(30, || the_serving_one(&g[1..]).is_some()),
        "{}\n{}",
        g[1].s().log_text(),
        w.s().log_text()
    );
}

#[test]
fn durability_mode_loses_no_acknowledged_write_when_the_primary_is_killed() {
    let mut g = group(2, &["--durability", "yes"]);
    let port = g[0].port;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut acked = Vec::new();
            let Ok(client) = redis::Client::open(format!("redis://127.0.0.1:{port}/")) else {
                return acked;
            };
            let Ok(mut c) = client.get_connection() else {
                return acked;
            };
            let mut i = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                i += 1;
                match q::<String>(&mut c, &["SET", &format!("w{i}"), &i.to_string()]) {
                    Ok(_) => acked.push(i),
                    Err(e) if e.is_io_error() => break,
                    Err(_) => {}
                }
            }
            acked
        })
    };
    assert!(eventually(10, || num(
        &mut g[0].conn(),
        "replication",
        "master_repl_offset"
    ) > 20_000));
    g[0].kill9();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let acked = writer.join().unwrap();
    assert!(acked.len() > 100, "{} writes acknowledged", acked.len());
    let mut new = None;
    assert!(eventually(30, || {
        new = g[1..]
            .iter()
            .position(|m| m.state() == "serving")
            .map(|i| i + 1);
        new.is_some()
    }));
    let mut c = g[new.unwrap()].conn();
    let lost: Vec<u64> = acked
        .iter()
        .copied()
        .filter(|i| {
            // A lease lapse under load answers TRYAGAIN: asked again until the node serves.
            let mut got = None;
            assert!(eventually(30, || {
                got = q::<Option<String>>(&mut c, &["GET", &format!("w{i}")]).ok();
                got.is_some()
            }));
            got.flatten().is_none()
        })
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged writes lost",
        lost.len(),
        acked.len()
    );
}

#[test]
fn a_primary_restarted_at_once_is_replaced_and_wipes_no_replica() {
    let mut g = group(2, &[]);
    for i in 0..200 {
        let _: () = q(&mut g[0].conn(), &["SET", &format!("k{i}"), "v"]).unwrap();
    }
    wait_caught_up(&g);
    // Back before the group noticed: empty, in a new incarnation, and not the primary of any life.
    g[0].kill9();
    g[0].restart();
    assert!(!g[0].accepts_writes());
    let mut new = None;
    assert!(eventually(30, || {
        new = the_serving_one(&g[1..]).map(|i| i + 1);
        new.is_some()
    }));
    assert_eq!(
        q::<i64>(&mut g[new.unwrap()].conn(), &["DBSIZE"]).unwrap(),
        201
    );
    assert!(eventually(30, || q::<i64>(&mut g[0].conn(), &["DBSIZE"])
        .is_ok_and(|n| n == 201)));
}

#[test]
fn manual_failover_hands_the_primary_role_over_with_no_write_lost() {
    let g = group(2, &[]);
    let mut c = g[0].conn();
    for i in 0..300 {
        let _: () = q(&mut c, &["SET", &format!("k{i}"), "v"]).unwrap();
    }
    let to = g[2].port.to_string();
    let e = q::<String>(
        &mut c,
        &["FAILOVER", "TO", "127.0.0.1", "1", "TIMEOUT", "100"],
    );
    assert_eq!(
        e.unwrap_err().detail(),
        Some("FAILOVER target HOST and PORT is not a replica.")
    );
    let _: () = q(
        &mut c,
        &["FAILOVER", "TO", "127.0.0.1", &to, "TIMEOUT", "5000"],
    )
    .unwrap();
    assert!(eventually(30, || g[2].state() == "serving" && g[2].accepts_writes()));
    assert_eq!(q::<i64>(&mut g[2].conn(), &["DBSIZE"]).unwrap(), 301);
    assert!(eventually(30, || field(
        &mut g[0].conn(),
        "replication",
        "master_port"
    ) == to));
    assert!(eventually(30, || field(
        &mut g[1].conn(),
        "replication",
        "master_port"
    ) == to));
    let e = q::<String>(&mut g[0].conn(), &["FAILOVER"]).unwrap_err();
    assert_eq!(
        e.detail(),
        Some("FAILOVER is not valid when server is a replica.")
    );
}

#[test]
fn after_a_full_outage_the_group_waits_until_an_operator_takes_over() {
    let mut g = group(2, &[]);
    let _: () = q(&mut g[0].conn(), &["SET", "k", "v"]).unwrap();
    for m in g.iter_mut() {
        m.kill9();
    }
    for m in g.iter_mut() {
        m.restart();
    }
    // Nobody is eligible in a new life and the old primary's memory is gone: nobody serves on its own.
    assert!(eventually(20, || g[0].state()
        == "restarted-primary-waiting-for-failover"));
    // The log says why, and what the operator can do.
    assert!(eventually(10, || g[0]
        .s()
        .log_text()
        .contains("FAILOVER TAKEOVER on a member resumes the group")));
    for m in &g {
        assert!(!m.accepts_writes());
    }
    assert!(eventually(20, || g[1].state() != "joining"));
    let _: () = q(&mut g[1].conn(), &["FAILOVER", "TAKEOVER"]).unwrap();
    assert!(eventually(30, || g[1].state() == "serving" && g[1].accepts_writes()));
    for m in [&g[0], &g[2]] {
        assert!(eventually(30, || field(
            &mut m.conn(),
            "replication",
            "master_port"
        ) == g[1].port.to_string()));
    }
}
