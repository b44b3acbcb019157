//! Test harness: real `tandem-server` processes on free ports (port 0), readiness by PING, never sleeps
//! to synchronise (polls a condition with a deadline where the server works asynchronously).
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

static NEXT_DIR: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

pub struct Server {
    pub child: Child,
    pub port: u16,
    pub log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    /// The directory made for it (when the test named none), removed with it.
    own_dir: Option<std::path::PathBuf>,
}

impl Server {
    pub fn start(args: &[&str]) -> Server {
        Self::try_start(args).expect("server started")
    }

    /// Starts the server; Err(log) if it exited before becoming ready.
    pub fn try_start(args: &[&str]) -> Result<Server, String> {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tandem-server"));
        // A config file path must come first, as for valkey-server.
        let (file, rest) = match args.first() {
            Some(f) if !f.starts_with("--") => (Some(*f), &args[1..]),
            _ => (None, args),
        };
        cmd.args(file)
            .args(["--port", "0", "--enable-debug-command", "yes"])
            .args(rest);
        // Each server its own directory (its node id, spool files), unless the test names one.
        let own_dir = (!rest.contains(&"--dir")).then(|| {
            let dir = std::env::temp_dir().join(format!(
                "tandem-test-{}-{}",
                std::process::id(),
                NEXT_DIR.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&dir).expect("test dir");
            cmd.args(["--dir", dir.to_str().expect("utf-8 temp dir")]);
            dir
        });
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn tandem-server");
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let l2 = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("Server initialized on port ").nth(1) {
                    let port: u16 = rest.split_whitespace().next().unwrap().parse().unwrap();
                    let _ = tx.send(port);
                }
                l2.lock().unwrap().push(line);
            }
        });
        let l3 = log.clone();
        std::thread::spawn(move || {
            // Line by line: a panic on one shard thread is seen while the process lives on.
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                l3.lock().unwrap().push(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        let port = loop {
            if let Ok(p) = rx.recv_timeout(Duration::from_millis(50)) {
                break p;
            }
            if let Ok(Some(_)) = child.try_wait() {
                // Give the stderr reader a moment to collect the message, then report it.
                let wait_until = Instant::now() + Duration::from_secs(2);
                while log.lock().unwrap().is_empty() && Instant::now() < wait_until {
                    std::thread::yield_now();
                }
                if let Some(d) = &own_dir {
                    let _ = std::fs::remove_dir_all(d);
                }
                return Err(log.lock().unwrap().join("\n"));
            }
            assert!(
                Instant::now() < deadline,
                "server did not start: {:?}",
                log.lock().unwrap()
            );
        };
        let s = Server {
            child,
            port,
            log,
            own_dir,
        };
        // Ready when a PING is answered. A server restarted on its old port (a failover test's kill
        // and restart) was seen to reset the very first connection, so each try is a new one.
        let ready = eventually(10, || {
            let Ok(t) = TcpStream::connect(("127.0.0.1", s.port)) else {
                return false;
            };
            t.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut c = Raw {
                s: t,
                buf: Vec::new(),
            };
            c.send(&["PING"]);
            c.read_line() == "+PONG"
        });
        assert!(ready, "no PONG; log:\n{}", s.log_text());
        Ok(s)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    pub fn conn(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .unwrap()
            .get_connection()
            .unwrap()
    }

    pub fn raw(&self) -> Raw {
        let s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Raw { s, buf: Vec::new() }
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn stop(mut self) -> std::process::ExitStatus {
        // SAFETY: sending a signal to our own child process.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let status = wait_timeout(&mut self.child, Duration::from_secs(10))
            .expect("server exits after SIGTERM");
        // Dropping kills nothing now (the child has exited and was reaped) and removes its directory.
        drop(self);
        status
    }

    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// SIGSTOP, returning once every thread of the process is stopped: kill(2) only queues the signal,
    /// and a thread already running finishes its work first (a test that writes right after the kill
    /// could otherwise see the "stopped" server acknowledge it).
    pub fn freeze(&self) {
        let pid = self.child.id();
        // SAFETY: sending a signal to our own child process.
        unsafe { libc::kill(pid as i32, libc::SIGSTOP) };
        let stopped = || {
            let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
                return false;
            };
            tasks.flatten().all(|t| {
                std::fs::read_to_string(t.path().join("stat")).is_ok_and(|st| {
                    // The state follows the parenthesised command name.
                    st.rsplit_once(") ")
                        .is_some_and(|(_, rest)| rest.starts_with('T') || rest.starts_with('t'))
                })
            })
        };
        assert!(eventually(10, stopped), "process {pid} did not stop");
    }

    pub fn thaw(&self) {
        // SAFETY: sending a signal to our own child process.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGCONT) };
    }
}

pub fn wait_timeout(child: &mut Child, d: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + d;
    loop {
        if let Ok(Some(st)) = child.try_wait() {
            return Some(st);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(d) = &self.own_dir {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

/// Runs a command given as words and converts the reply.
pub fn q<T: redis::FromRedisValue>(
    c: &mut redis::Connection,
    args: &[&str],
) -> redis::RedisResult<T> {
    let mut command = redis::cmd(args[0]);
    for a in &args[1..] {
        command.arg(*a);
    }
    command.query(c)
}

/// Runs a command that must fail; returns "CODE detail" as the server wrote it.
pub fn err(c: &mut redis::Connection, args: &[&str]) -> String {
    let e = q::<redis::Value>(c, args).expect_err("expected an error reply");
    format!("{} {}", e.code().unwrap_or("?"), e.detail().unwrap_or(""))
}

/// Polls `cond` until it holds or `secs` pass (for effects the server makes on its own clock).
pub fn eventually(secs: u64, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// A raw RESP connection for protocol-level tests.
pub struct Raw {
    pub s: TcpStream,
    buf: Vec<u8>,
}

impl Raw {
    pub fn send(&mut self, args: &[&str]) {
        let mut v = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            v.extend_from_slice(format!("${}\r\n{}\r\n", a.len(), a).as_bytes());
        }
        self.s.write_all(&v).unwrap();
    }

    pub fn write(&mut self, bytes: &[u8]) {
        self.s.write_all(bytes).unwrap();
    }

    fn fill(&mut self) -> bool {
        let mut tmp = [0u8; 65536];
        match self.s.read(&mut tmp) {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&tmp[..n]);
                true
            }
        }
    }

    /// One line without CRLF; "" at EOF.
    pub fn read_line(&mut self) -> String {
        loop {
            if let Some(p) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&self.buf[..p]).into_owned();
                self.buf.drain(..p + 2);
                return line;
            }
            if !self.fill() {
                return String::new();
            }
        }
    }

    /// Sends a command and reads its whole reply (`read_reply`).
    pub fn say(&mut self, args: &[&str]) -> Vec<String> {
        self.send(args);
        self.read_reply()
    }

    /// One whole reply, flattened to its lines (bulk payloads included).
    pub fn read_reply(&mut self) -> Vec<String> {
        let line = self.read_line();
        let mut out = vec![line.clone()];
        let count = |l: &str| l[1..].parse::<i64>().unwrap_or(-1);
        match line.as_bytes().first() {
            Some(b'$') | Some(b'=') if count(&line) >= 0 => out.push(self.read_line()),
            Some(b'*') | Some(b'~') | Some(b'>') => {
                for _ in 0..count(&line).max(0) {
                    out.extend(self.read_reply());
                }
            }
            Some(b'%') => {
                for _ in 0..2 * count(&line).max(0) {
                    out.extend(self.read_reply());
                }
            }
            _ => {}
        }
        out
    }

    /// True if the server closed (or reset) the connection, reading and discarding anything before the
    /// close. False if it stays open until the read timeout: a timeout is not a close.
    pub fn closed(&mut self) -> bool {
        self.buf.clear();
        let mut tmp = [0u8; 65536];
        loop {
            match self.s.read(&mut tmp) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return false
                }
                Err(_) => return true,
            }
        }
    }
}

pub mod repl;
