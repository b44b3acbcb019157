//! A short load run against a real tandem-server: every request the generator counts is one the server
//! counts (total_commands_processed), and every reply was checked.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use tandem_bench::load::{self, options::LoadArgs};

/// The server binary of this workspace (built by `cargo test --workspace`, or built here if missing).
fn server_bin() -> std::path::PathBuf {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    let bin = root.join("target").join(profile).join("tandem-server");
    if !bin.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut c = Command::new(cargo);
        c.current_dir(&root)
            .args(["build", "-p", "tandem-server", "--bin", "tandem-server"]);
        if profile == "release" {
            c.arg("--release");
        }
        assert!(c.status().unwrap().success());
    }
    bin
}

/// Kills the server even when an assertion fails (an orphan would keep the test's output pipes open).
struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn processed(c: &mut redis::Connection) -> u64 {
    let info: String = redis::cmd("INFO").arg("stats").query(c).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("total_commands_processed:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

fn args(port: u16, extra: &[&str]) -> LoadArgs {
    use clap::Parser;
    #[derive(Parser)]
    struct A {
        #[command(flatten)]
        a: LoadArgs,
    }
    let port = port.to_string();
    let mut v = vec!["load", "--port", &port, "--quiet"];
    v.extend_from_slice(extra);
    A::parse_from(v).a
}

#[test]
fn request_count_matches_the_server() {
    let mut server = Server(
        Command::new(server_bin())
            .args(["--port", "0", "--shards", "2"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut lines = BufReader::new(server.0.stdout.take().unwrap()).lines();
    let port: u16 = loop {
        let line = lines.next().expect("server output").unwrap();
        if let Some(rest) = line.split("Server initialized on port ").nth(1) {
            break rest.split_whitespace().next().unwrap().parse().unwrap();
        }
    };
    std::thread::spawn(move || lines.for_each(drop));
    // One connection for both INFOs: a new connection's handshake (CLIENT SETINFO) would be counted too.
    let mut c = redis::Client::open(format!("redis://127.0.0.1:{port}/"))
        .unwrap()
        .get_connection()
        .unwrap();
    let before = processed(&mut c);
    let report = load::run(args(
        port,
        &[
            "--threads",
            "2",
            "--clients",
            "5",
            "--requests",
            "300",
            "--pipeline",
            "4",
            "--ratio",
            "1:3",
            "--key-maximum",
            "1000",
        ],
    ))
    .unwrap();
    let after = processed(&mut c);
    assert_eq!(report.total.count, 2 * 5 * 300);
    assert_eq!(report.total.errors, 0);
    // The first INFO is counted once it has run, so it is part of the delta.
    assert_eq!(after - before, report.total.count + 1);
    assert_eq!(
        report.per_command["SET"].count + report.per_command["GET"].count,
        3000
    );
    // Error replies are counted by prefix, not hidden: INCR on a non-integer value.
    let report = load::run(args(
        port,
        &[
            "--threads",
            "1",
            "--clients",
            "2",
            "--requests",
            "50",
            "--command",
            "SET __key__ abc",
            "--command",
            "INCR __key__",
            "--key-pattern",
            "S",
            "--key-maximum",
            "0",
        ],
    ))
    .unwrap();
    assert_eq!(report.errors_by_prefix.get("ERR"), Some(&50));
    assert_eq!(report.per_command["INCR"].errors, 50);
}
