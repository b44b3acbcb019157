//! Server processes for the scenarios: any Redis-compatible binary (tandem-server, redis-server,
//! valkey-server), started on a free loopback port in a temporary directory with the configuration the
//! scenario needs translated to its dialect, and measured through /proc.

use super::client::Client;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Kind {
    Tandem,
    Redis,
    Valkey,
}

impl Kind {
    /// Recognises a binary by its `--version` line.
    pub fn of(bin: &Path) -> Result<Kind, String> {
        let out = Command::new(bin)
            .arg("--version")
            .output()
            .map_err(|e| format!("{}: {e}", bin.display()))?;
        let v = String::from_utf8_lossy(&out.stdout);
        if v.starts_with("Tandem") {
            Ok(Kind::Tandem)
        } else if v.starts_with("Valkey") {
            Ok(Kind::Valkey)
        } else if v.starts_with("Redis") {
            Ok(Kind::Redis)
        } else {
            Err(format!("{}: unknown server ({})", bin.display(), v.trim()))
        }
    }
}

pub struct Server {
    pub kind: Kind,
    pub port: u16,
    pub child: Child,
    pub dir: PathBuf,
    pub bin: PathBuf,
    pub args: Vec<String>,
    pub log: PathBuf,
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Server {
    /// Starts `bin` on `port` (a free one if None) with `shards` shards (Tandem) and diskless, dual-channel
    /// where available, no persistence.
    pub fn start(
        bin: &Path,
        dir: &Path,
        name: &str,
        shards: usize,
        port: Option<u16>,
    ) -> Result<Server, String> {
        Self::start_with(bin, dir, name, shards, port, &[])
    }

    /// `start` with more directives (`--name value` words) after the usual ones.
    pub fn start_with(
        bin: &Path,
        dir: &Path,
        name: &str,
        shards: usize,
        port: Option<u16>,
        extra: &[String],
    ) -> Result<Server, String> {
        let kind = Kind::of(bin)?;
        let port = port.unwrap_or_else(free_port);
        let dir = dir.join(name);
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let mut args: Vec<String> = vec![
            "--port".into(),
            port.to_string(),
            "--bind".into(),
            "127.0.0.1".into(),
            "--dir".into(),
            dir.display().to_string(),
            "--enable-debug-command".into(),
            "yes".into(),
            "--save".into(),
            "".into(),
            "--appendonly".into(),
            "no".into(),
            "--repl-diskless-sync".into(),
            "yes".into(),
            "--repl-diskless-sync-delay".into(),
            "0".into(),
            "--repl-backlog-size".into(),
            "64mb".into(),
        ];
        match kind {
            Kind::Tandem => args.extend(["--shards".into(), shards.to_string()]),
            Kind::Redis | Kind::Valkey => {
                args.extend(["--protected-mode".into(), "no".into()]);
                // The replica output buffer limit would otherwise end long syncs under load.
                args.extend([
                    "--client-output-buffer-limit".into(),
                    "replica 0 0 0".into(),
                ]);
            }
        }
        if kind == Kind::Valkey {
            args.extend(["--dual-channel-replication-enabled".into(), "yes".into()]);
        }
        args.extend(extra.iter().cloned());
        let log = dir.join("server.log");
        let s = Server {
            kind,
            port,
            child: spawn(bin, &args, &log)?,
            dir,
            bin: bin.to_path_buf(),
            args,
            log,
        };
        s.wait_ready(Duration::from_secs(30))?;
        Ok(s)
    }

    pub fn wait_ready(&self, within: Duration) -> Result<(), String> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(mut c) = Client::connect(self.port) {
                if let Ok(v) = c.cmd(&["PING"]) {
                    if v.text() == "PONG" {
                        return Ok(());
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Err(format!(
            "server on port {} did not answer PING (log: {})",
            self.port,
            self.log.display()
        ))
    }

    pub fn client(&self) -> Result<Client, String> {
        Client::connect(self.port).map_err(|e| format!("connect {}: {e}", self.port))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the same binary again with the same arguments (after a kill).
    pub fn restart(&mut self) -> Result<(), String> {
        self.child = spawn(&self.bin, &self.args, &self.log)?;
        Ok(())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

fn spawn(bin: &Path, args: &[String], log: &Path) -> Result<Child, String> {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| e.to_string())?;
    Command::new(bin)
        .args(args)
        .stdout(Stdio::from(out.try_clone().map_err(|e| e.to_string())?))
        .stderr(Stdio::from(out))
        .spawn()
        .map_err(|e| format!("{}: {e}", bin.display()))
}

/// What /proc says of a process (and its children: Redis forks for a sync).
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct ProcSample {
    pub rss: u64,
    /// Private dirty memory of child processes (a fork's copy-on-write).
    pub children_private: u64,
    pub cpu_seconds: f64,
}

fn status_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn cpu_seconds(pid: u32) -> f64 {
    let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = s.rsplit_once(')').map_or("", |x| x.1);
    let f: Vec<&str> = rest.split_whitespace().collect();
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let get = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime, stime, cutime, cstime are fields 14-17 of /proc/pid/stat (11-14 after the ')'): a finished
    // fork's time is in the parent's cutime/cstime.
    (get(11) + get(12) + get(13) + get(14)) / ticks
}

fn children(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .map(|s| {
            s.split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

fn private_dirty_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Private_Dirty:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

pub fn sample(pid: u32) -> ProcSample {
    let kids = children(pid);
    ProcSample {
        rss: status_kb(pid, "VmRSS:") * 1024,
        children_private: kids.iter().map(|&k| private_dirty_kb(k) * 1024).sum(),
        cpu_seconds: cpu_seconds(pid) + kids.iter().map(|&k| cpu_seconds(k)).sum::<f64>(),
    }
}

/// Polls `f` every 20 ms until it gives something or `within` passes.
pub fn wait_until<T>(within: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
