//! Configuration: the directive table (data), parsing of `valkey.conf`-style files and `--directive value`
//! arguments, CONFIG GET/SET validation, and the typed `Settings` view the shards read.
//!
//! Each shard owns a copy of `Settings`; CONFIG SET validates here once, then the new copy is sent to every
//! shard by message (no shared mutable configuration).

use crate::resp::split_inline_args;
use crate::store::glob::glob_match;
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Int {
        min: i64,
        max: i64,
    },
    Memory,
    Bool,
    Enum(&'static [&'static str]),
    Text,
    /// Space-separated list of addresses (bind).
    List,
    /// Valkey's cpulist syntax: "0-7:2,9" (ranges with an optional step, comma-separated).
    CpuList,
}

#[derive(Debug)]
struct Directive {
    name: &'static str,
    kind: Kind,
    default: &'static str,
    /// Can CONFIG SET change it at run time?
    mutable: bool,
    /// False for Valkey tuning knobs Tandem accepts and returns but has no use for (docs/config.md).
    effect: bool,
}

const fn d(name: &'static str, kind: Kind, default: &'static str, mutable: bool) -> Directive {
    Directive {
        name,
        kind,
        default,
        mutable,
        effect: true,
    }
}
const fn knob(name: &'static str, kind: Kind, default: &'static str) -> Directive {
    Directive {
        name,
        kind,
        default,
        mutable: true,
        effect: false,
    }
}

const LOGLEVELS: &[&str] = &["debug", "verbose", "notice", "warning", "nothing"];
const DEBUG_GATE: &[&str] = &["no", "yes", "local"];
const U32: Kind = Kind::Int {
    min: 0,
    max: u32::MAX as i64,
};
const POS: Kind = Kind::Int {
    min: 1,
    max: i32::MAX as i64,
};

static DIRECTIVES: &[Directive] = &[
    d("port", Kind::Int { min: 0, max: 65535 }, "6379", false),
    d("bind", Kind::List, "127.0.0.1 -::1", false),
    // The source address of outgoing connections (replication links, group messages), as in Valkey.
    d("bind-source-addr", Kind::Text, "", false),
    d("shards", Kind::Int { min: 0, max: 1024 }, "0", false),
    d("dir", Kind::Text, ".", false),
    d(
        "databases",
        Kind::Int {
            min: 1,
            max: i32::MAX as i64,
        },
        "16",
        false,
    ),
    d("requirepass", Kind::Text, "", true),
    d("protected-mode", Kind::Bool, "yes", true),
    d("maxclients", POS, "10000", true),
    // Tandem's own: a connection whose key commands keep going to one other shard moves there
    // (server/migrate.rs).
    d("migrate-connections", Kind::Bool, "yes", true),
    d("maxmemory", Kind::Memory, "0", true),
    d(
        "maxmemory-policy",
        Kind::Enum(&["noeviction"]),
        "noeviction",
        true,
    ),
    d(
        "timeout",
        Kind::Int {
            min: 0,
            max: i32::MAX as i64,
        },
        "0",
        true,
    ),
    d("loglevel", Kind::Enum(LOGLEVELS), "notice", true),
    d("logfile", Kind::Text, "", false),
    d("hz", Kind::Int { min: 1, max: 500 }, "10", true),
    d("proto-max-bulk-len", Kind::Memory, "512mb", true),
    // Only the pubsub class has an effect (shard/pubsub.rs): a subscriber past the hard limit, or past the
    // soft one for its seconds, is closed.
    d(
        "client-output-buffer-limit",
        Kind::Text,
        "normal 0 0 0 slave 256mb 64mb 60 pubsub 32mb 8mb 60",
        true,
    ),
    d("client-query-buffer-limit", Kind::Memory, "1gb", true),
    d("enable-debug-command", Kind::Enum(DEBUG_GATE), "no", false),
    d("server-cpulist", Kind::CpuList, "", false),
    d("daemonize", Kind::Enum(&["no"]), "no", false),
    d("cluster-enabled", Kind::Enum(&["no"]), "no", false),
    // replication (docs/replication.md)
    d("replicaof", Kind::List, "", false),
    d("masterauth", Kind::Text, "", true),
    d("masteruser", Kind::Text, "", true),
    d("replica-read-only", Kind::Bool, "yes", true),
    d("replica-serve-stale-data", Kind::Bool, "yes", true),
    d("repl-backlog-size", Kind::Memory, "10mb", true),
    d("repl-timeout", POS, "60", true),
    d("repl-ping-replica-period", POS, "10", true),
    d("min-replicas-to-write", U32, "0", true),
    d("min-replicas-max-lag", U32, "10", true),
    // Tandem's own: memory a replica buffers per flow during a full sync before spilling to `dir`.
    d("repl-sync-buffer-memory", Kind::Memory, "64mb", true),
    // Tandem's own: durability mode (docs/durability.md): a write is acknowledged only once every eligible
    // replica holds it, and refused while fewer than durability-replicas are eligible.
    d("durability", Kind::Bool, "no", true),
    d("durability-replicas", U32, "1", true),
    d(
        "durability-timeout",
        Kind::Int {
            min: 1,
            max: 86_400_000,
        },
        "1000",
        true,
    ),
    // Tandem's own: failover (docs/failover.md). A node with failover on is a member of its replication
    // group: the group's record decides who is primary, and a primary serves only under its lease.
    d("failover", Kind::Bool, "no", false),
    // A witness votes in its group and holds no data (`tandem-server --witness --replicaof host port`).
    d("witness", Kind::Bool, "no", false),
    // Silence of the primary after which the group promotes an eligible replica (ms).
    d(
        "failover-timeout",
        Kind::Int {
            min: 200,
            max: 3_600_000,
        },
        "3000",
        false,
    ),
    // How long a confirmed lease renewal lets the primary serve (ms); a new primary waits it out.
    d(
        "failover-lease",
        Kind::Int {
            min: 100,
            max: 3_600_000,
        },
        "2000",
        false,
    ),
    // Tandem's own: a replica asks its primary for LZ4-compressed frames (off: loopback and fast links
    // gain nothing from it, docs/benchmarks.md).
    d("repl-compression", Kind::Enum(&["no", "lz4"]), "no", true),
    // Test-only: the primary corrupts its Nth snapshot chunk (1-based) once, to exercise the retry path.
    d("debug-repl-corrupt-chunk", U32, "0", true),
    // Test-only, Valkey's: microseconds a replica waits per key of a full sync's snapshot it loads (the
    // log received meanwhile is buffered; tests use it to make a sync last).
    d("key-load-delay", U32, "0", true),
    knob("repl-diskless-sync", Kind::Bool, "yes"),
    knob("repl-diskless-sync-delay", U32, "5"),
    knob("repl-diskless-sync-max-replicas", U32, "0"),
    knob(
        "repl-diskless-load",
        Kind::Enum(&["disabled", "on-empty-db", "swapdb"]),
        "disabled",
    ),
    knob("dual-channel-replication-enabled", Kind::Bool, "no"),
    knob("repl-backlog-ttl", U32, "3600"),
    knob("replica-priority", U32, "100"),
    knob("repl-disable-tcp-nodelay", Kind::Bool, "no"),
    knob("save", Kind::Text, ""),
    // Persistence (docs/persistence.md): a per-shard write-ahead log of the replication log's units under
    // dir/appenddirname, snapshots in dir/dbfilename.
    d("appendonly", Kind::Bool, "no", false),
    d(
        "appendfsync",
        Kind::Enum(&["always", "everysec", "no"]),
        "everysec",
        true,
    ),
    d("appendfilename", Kind::Text, "appendonly.aof", false),
    d("appenddirname", Kind::Text, "appendonlydir", false),
    d("dbfilename", Kind::Text, "dump.rdb", false),
    // A torn unit at the WAL's end (a crash cut its write) is dropped and logged; `no` refuses to start.
    d("aof-load-truncated", Kind::Bool, "yes", false),
    // Tandem's own: a checksum error before the WAL's end stops start-up unless this says to truncate the
    // log there (losing what follows it).
    d("wal-truncate-corrupt", Kind::Bool, "no", false),
    // Tandem's own: the size segment files are created with (zero-filled ahead, docs/persistence.md).
    d("wal-segment-size", Kind::Memory, "64mb", false),
    // Snapshot chunks LZ4-compressed (where it helps), as Valkey's RDB is LZF-compressed.
    d("rdbcompression", Kind::Bool, "yes", true),
    knob("rdbchecksum", Kind::Bool, "yes"),
    knob(
        "rdb-key-save-delay",
        Kind::Int {
            min: i32::MIN as i64,
            max: i32::MAX as i64,
        },
        "0",
    ),
    knob("activerehashing", Kind::Bool, "yes"),
    knob("activedefrag", Kind::Bool, "no"),
    knob("lazyfree-lazy-eviction", Kind::Bool, "no"),
    knob("lazyfree-lazy-expire", Kind::Bool, "no"),
    knob("lazyfree-lazy-server-del", Kind::Bool, "no"),
    knob("lazyfree-lazy-user-del", Kind::Bool, "no"),
    knob("lazyfree-lazy-user-flush", Kind::Bool, "no"),
    d("hash-max-listpack-entries", U32, "128", true),
    d("hash-max-listpack-value", U32, "64", true),
    knob("hash-max-ziplist-entries", U32, "128"),
    knob("hash-max-ziplist-value", U32, "64"),
    // Collections leave their compact encodings past these (docs/memory.md); the old ziplist names are
    // accepted with no effect.
    d(
        "list-max-listpack-size",
        Kind::Int {
            min: i32::MIN as i64,
            max: i32::MAX as i64,
        },
        "-2",
        true,
    ),
    knob(
        "list-max-ziplist-size",
        Kind::Int {
            min: i32::MIN as i64,
            max: i32::MAX as i64,
        },
        "-2",
    ),
    knob("list-compress-depth", U32, "0"),
    d("set-max-intset-entries", U32, "512", true),
    d("set-max-listpack-entries", U32, "128", true),
    d("set-max-listpack-value", U32, "64", true),
    d("zset-max-listpack-entries", U32, "128", true),
    d("zset-max-listpack-value", U32, "64", true),
    knob("zset-max-ziplist-entries", U32, "128"),
    knob("zset-max-ziplist-value", U32, "64"),
    knob("hll-sparse-max-bytes", U32, "3000"),
    knob("stream-node-max-bytes", Kind::Memory, "4096"),
    knob("stream-node-max-entries", U32, "100"),
    knob("io-threads", POS, "1"),
    knob("io-threads-do-reads", Kind::Bool, "no"),
    knob("tcp-backlog", U32, "511"),
    knob("tcp-keepalive", U32, "300"),
    knob("maxmemory-samples", POS, "5"),
    knob("latency-monitor-threshold", U32, "0"),
    knob(
        "slowlog-log-slower-than",
        Kind::Int {
            min: -1,
            max: i64::MAX,
        },
        "10000",
    ),
    knob("slowlog-max-len", U32, "128"),
    d("notify-keyspace-events", Kind::Text, "", true),
    knob("lua-time-limit", U32, "5000"),
    knob("busy-reply-threshold", U32, "5000"),
    knob("always-show-logo", Kind::Bool, "no"),
    knob("set-proc-title", Kind::Bool, "yes"),
    knob(
        "supervised",
        Kind::Enum(&["no", "upstart", "systemd", "auto"]),
        "no",
    ),
    knob("pidfile", Kind::Text, ""),
    knob("jemalloc-bg-thread", Kind::Bool, "yes"),
];

/// Valkey's old names of the encoding thresholds, aliases of the listpack ones (as in Valkey).
const ALIASES: &[(&str, &str)] = &[
    ("hash-max-ziplist-entries", "hash-max-listpack-entries"),
    ("hash-max-ziplist-value", "hash-max-listpack-value"),
    ("zset-max-ziplist-entries", "zset-max-listpack-entries"),
    ("zset-max-ziplist-value", "zset-max-listpack-value"),
    ("list-max-ziplist-size", "list-max-listpack-size"),
];

fn directive(name: &str) -> Option<&'static Directive> {
    let name = ALIASES
        .iter()
        .find(|(old, _)| old.eq_ignore_ascii_case(name))
        .map_or(name, |(_, new)| new);
    DIRECTIVES
        .iter()
        .find(|d| d.name.eq_ignore_ascii_case(name))
}

/// The pubsub class of client-output-buffer-limit (`class hard soft seconds`, repeated).
fn pubsub_limit(v: &str) -> crate::shard::pubsub::PushLimit {
    let w: Vec<&str> = v.split_whitespace().collect();
    let mut lim = crate::shard::pubsub::PushLimit {
        hard: 32 << 20,
        soft: 8 << 20,
        soft_secs: 60,
    };
    for c in w.chunks(4) {
        if let [class, hard, soft, secs] = c {
            if class.eq_ignore_ascii_case("pubsub") {
                lim.hard = parse_memory(hard).unwrap_or(0) as usize;
                lim.soft = parse_memory(soft).unwrap_or(0) as usize;
                lim.soft_secs = secs.parse().unwrap_or(0);
            }
        }
    }
    lim
}

/// Valkey's `memtoull`: an integer with an optional unit (b, k, kb, m, mb, g, gb; k = 1000, kb = 1024).
pub fn parse_memory(s: &str) -> Option<u64> {
    let lower = s.to_ascii_lowercase();
    let split = lower
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(lower.len());
    let (num, unit) = lower.split_at(split);
    let mul: u64 = match unit {
        "" | "b" => 1,
        "k" => 1000,
        "kb" => 1024,
        "m" => 1000 * 1000,
        "mb" => 1024 * 1024,
        "g" => 1000 * 1000 * 1000,
        "gb" => 1024 * 1024 * 1024,
        _ => return None,
    };
    num.parse::<u64>().ok()?.checked_mul(mul)
}

fn validate(d: &Directive, raw: &str) -> Result<String, String> {
    match d.kind {
        Kind::Int { min, max } => match raw.parse::<i64>() {
            Ok(v) if v >= min && v <= max => Ok(v.to_string()),
            Ok(_) => Err(format!(
                "argument must be between {min} and {max} inclusive"
            )),
            Err(_) => Err("argument couldn't be parsed into an integer".into()),
        },
        Kind::Memory => parse_memory(raw)
            .map(|v| v.to_string())
            .ok_or_else(|| "argument must be a memory value".into()),
        Kind::Bool => match raw.to_ascii_lowercase().as_str() {
            "yes" | "no" => Ok(raw.to_ascii_lowercase()),
            _ => Err("argument must be 'yes' or 'no'".into()),
        },
        Kind::Enum(opts) => {
            let l = raw.to_ascii_lowercase();
            if opts.contains(&l.as_str()) {
                Ok(l)
            } else if d.name == "maxmemory-policy" {
                Err("Tandem supports only the noeviction policy for now".into())
            } else {
                Err(format!(
                    "argument(s) must be one of the following: {}",
                    opts.join(", ")
                ))
            }
        }
        Kind::List if d.name == "replicaof" => {
            let v: Vec<&str> = raw.split_whitespace().collect();
            match v[..] {
                [] => Ok(String::new()),
                [_, p] if p.parse::<u16>().is_ok_and(|p| p > 0) => Ok(v.join(" ")),
                _ => Err("replicaof takes a host and a port".into()),
            }
        }
        Kind::Text if d.name == "notify-keyspace-events" => crate::store::events::parse_flags(raw)
            .map(crate::store::events::flags_string)
            .ok_or_else(|| "Invalid event class character. Use 'Ag$lshzxeKEtmdn'.".into()),
        Kind::Text | Kind::List => Ok(raw.to_string()),
        Kind::CpuList => parse_cpulist(raw)
            .map(|_| raw.to_string())
            .ok_or_else(|| "invalid cpulist".into()),
    }
}

/// Parses Valkey's cpulist ("0-3,8-15:2"); Some(empty) for "".
pub fn parse_cpulist(s: &str) -> Option<Vec<usize>> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (range, step) = match part.split_once(':') {
            Some((r, st)) => (r, st.parse::<usize>().ok().filter(|v| *v > 0)?),
            None => (part, 1),
        };
        let (a, b) = match range.split_once('-') {
            Some((a, b)) => (a.parse::<usize>().ok()?, b.parse::<usize>().ok()?),
            None => {
                let v = range.parse::<usize>().ok()?;
                (v, v)
            }
        };
        if a > b || b > 4096 {
            return None;
        }
        out.extend((a..=b).step_by(step));
    }
    Some(out)
}

/// All directives' values as text: what CONFIG GET returns.
#[derive(Debug, Clone)]
pub struct Config {
    values: BTreeMap<&'static str, String>,
}

/// Start-up errors name the directive and where it came from.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("FATAL CONFIG FILE ERROR: {origin}: '{line}': {msg}")]
    Bad {
        origin: String,
        line: String,
        msg: String,
    },
    #[error("FATAL CONFIG FILE ERROR: can't open config file '{0}': {1}")]
    Open(String, std::io::Error),
}

impl Default for Config {
    fn default() -> Self {
        // Defaults go through the same validation as user values, so CONFIG GET shows them normalised
        // (memory in bytes) and the typed view parses them.
        let values = DIRECTIVES
            .iter()
            .map(|d| {
                (
                    d.name,
                    validate(d, d.default).unwrap_or_else(|e| panic!("default of {}: {e}", d.name)),
                )
            })
            .collect();
        Config { values }
    }
}

impl Config {
    /// Builds the configuration from a file (if any) and then the command-line directives, which win.
    pub fn load(file: Option<&str>, cli: &[(String, Vec<String>)]) -> Result<Config, ConfigError> {
        let mut c = Config::default();
        if let Some(path) = file {
            let text =
                std::fs::read_to_string(path).map_err(|e| ConfigError::Open(path.into(), e))?;
            for (i, line) in text.lines().enumerate() {
                let origin = format!("{path}, line {}", i + 1);
                let trimmed = line.trim();
                if trimmed.is_empty() || trimmed.starts_with('#') {
                    continue;
                }
                let bad = |msg: &str| ConfigError::Bad {
                    origin: origin.clone(),
                    line: trimmed.into(),
                    msg: msg.into(),
                };
                let args = split_inline_args(trimmed.as_bytes())
                    .ok_or_else(|| bad("Unbalanced quotes in configuration line"))?;
                let args: Vec<String> = args
                    .into_iter()
                    .map(|a| String::from_utf8_lossy(&a).into_owned())
                    .collect();
                c.apply_startup(&args[0], &args[1..]).map_err(|m| bad(&m))?;
            }
        }
        for (name, vals) in cli {
            c.apply_startup(name, vals)
                .map_err(|msg| ConfigError::Bad {
                    origin: "command line".into(),
                    line: format!("--{name} {}", vals.join(" ")),
                    msg,
                })?;
        }
        Ok(c)
    }

    fn apply_startup(&mut self, name: &str, vals: &[String]) -> Result<(), String> {
        let d = directive(name)
            .ok_or_else(|| "Bad directive or wrong number of arguments".to_string())?;
        let raw = if d.kind == Kind::List || d.name == "save" {
            vals.join(" ")
        } else if vals.len() == 1 {
            vals[0].clone()
        } else {
            return Err("wrong number of arguments".into());
        };
        let v = validate(d, &raw)?;
        self.values.insert(d.name, v);
        Ok(())
    }

    /// CONFIG GET: every (name, value) whose name matches one of the glob patterns.
    pub fn get_matching(&self, patterns: &[&[u8]]) -> Vec<(&'static str, String)> {
        self.values
            .iter()
            .filter(|(k, _)| patterns.iter().any(|p| glob_match(p, k.as_bytes(), true)))
            .map(|(k, v)| {
                // An old name shows the value of the name it stands for, as in Valkey.
                let v = ALIASES
                    .iter()
                    .find(|(old, _)| old == k)
                    .and_then(|(_, new)| self.values.get(new))
                    .unwrap_or(v);
                (*k, v.clone())
            })
            .collect()
    }

    /// CONFIG SET of several pairs, all or nothing; errors use Valkey's wording.
    pub fn set_many(&mut self, pairs: &[(String, String)]) -> Result<(), String> {
        let mut next = self.clone();
        for (name, raw) in pairs {
            let fail = |m: &str| {
                format!("ERR CONFIG SET failed (possibly related to argument '{name}') - {m}")
            };
            let Some(d) = directive(name) else {
                return Err(fail(&format!(
                    "Unknown option or number of arguments for CONFIG SET - '{name}'"
                )));
            };
            if !d.mutable {
                return Err(fail("can't set immutable config"));
            }
            let v = validate(d, raw).map_err(|m| fail(&m))?;
            next.values.insert(d.name, v);
        }
        *self = next;
        Ok(())
    }

    pub fn get(&self, name: &str) -> &str {
        self.values.get(name).map(String::as_str).unwrap_or("")
    }

    fn int(&self, name: &str) -> i64 {
        self.get(name).parse().unwrap_or(0)
    }

    pub fn settings(&self) -> Settings {
        let shards = match self.int("shards") {
            0 => std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            n => n as usize,
        };
        Settings {
            port: self.int("port") as u16,
            bind: self
                .get("bind")
                .split_whitespace()
                .map(String::from)
                .collect(),
            shards,
            bind_source_addr: self.get("bind-source-addr").parse().ok(),
            dir: PathBuf::from(self.get("dir")),
            databases: self.int("databases") as usize,
            requirepass: Some(self.get("requirepass").to_string()).filter(|s| !s.is_empty()),
            protected_mode: self.get("protected-mode") == "yes",
            maxclients: self.int("maxclients") as usize,
            migrate_connections: self.get("migrate-connections") == "yes",
            maxmemory: self.int("maxmemory") as u64,
            timeout_secs: self.int("timeout") as u64,
            loglevel: self.get("loglevel").to_string(),
            logfile: self.get("logfile").to_string(),
            hz: self.int("hz") as u32,
            proto_max_bulk_len: self.int("proto-max-bulk-len") as usize,
            client_query_buffer_limit: self.int("client-query-buffer-limit") as usize,
            enable_debug_command: self.get("enable-debug-command").to_string(),
            cpus: parse_cpulist(self.get("server-cpulist")).unwrap_or_default(),
            replicaof: {
                let v: Vec<&str> = self.get("replicaof").split_whitespace().collect();
                match v[..] {
                    [h, p] => p.parse().ok().map(|p| (h.to_string(), p)),
                    _ => None,
                }
            },
            masterauth: Some(self.get("masterauth").to_string()).filter(|s| !s.is_empty()),
            masteruser: Some(self.get("masteruser").to_string()).filter(|s| !s.is_empty()),
            replica_read_only: self.get("replica-read-only") == "yes",
            replica_serve_stale_data: self.get("replica-serve-stale-data") == "yes",
            repl_backlog_size: (self.int("repl-backlog-size") as usize).max(1),
            repl_timeout_secs: self.int("repl-timeout") as u64,
            repl_ping_period_secs: self.int("repl-ping-replica-period") as u64,
            min_replicas_to_write: self.int("min-replicas-to-write") as usize,
            min_replicas_max_lag_secs: self.int("min-replicas-max-lag") as u64,
            repl_sync_buffer_memory: self.int("repl-sync-buffer-memory") as usize,
            durability: self.get("durability") == "yes",
            durability_replicas: self.int("durability-replicas") as usize,
            durability_timeout_ms: self.int("durability-timeout") as u64,
            repl_lz4: self.get("repl-compression") == "lz4",
            failover: self.get("failover") == "yes" || self.get("witness") == "yes",
            witness: self.get("witness") == "yes",
            failover_timeout_ms: self.int("failover-timeout") as u64,
            failover_lease_ms: self.int("failover-lease") as u64,
            debug_repl_corrupt_chunk: self.int("debug-repl-corrupt-chunk") as u64,
            key_load_delay_us: self.int("key-load-delay") as u64,
            pubsub_limit: pubsub_limit(self.get("client-output-buffer-limit")),
            notify_keyspace_events: crate::store::events::parse_flags(
                self.get("notify-keyspace-events"),
            )
            .unwrap_or(0),
            limits: crate::store::types::Limits {
                hash_entries: self.int("hash-max-listpack-entries") as usize,
                hash_value: self.int("hash-max-listpack-value") as usize,
                set_intset_entries: self.int("set-max-intset-entries") as usize,
                set_entries: self.int("set-max-listpack-entries") as usize,
                set_value: self.int("set-max-listpack-value") as usize,
                zset_entries: self.int("zset-max-listpack-entries") as usize,
                zset_value: self.int("zset-max-listpack-value") as usize,
                // Valkey's reading of out-of-range sizes: 0 is one element, below -5 is -5 (64 KiB).
                list_size: match self.int("list-max-listpack-size") {
                    0 => 1,
                    n => n.max(-5),
                },
                ..Default::default()
            },
            appendonly: self.get("appendonly") == "yes",
            rdbcompression: self.get("rdbcompression") == "yes",
            appendfsync: match self.get("appendfsync") {
                "always" => tandem_sync::wal::Fsync::Always,
                "no" => tandem_sync::wal::Fsync::No,
                _ => tandem_sync::wal::Fsync::EverySec,
            },
            appendfilename: self.get("appendfilename").to_string(),
            appenddirname: self.get("appenddirname").to_string(),
            dbfilename: self.get("dbfilename").to_string(),
            aof_load_truncated: self.get("aof-load-truncated") == "yes",
            wal_truncate_corrupt: self.get("wal-truncate-corrupt") == "yes",
            wal_segment_size: (self.int("wal-segment-size") as u64).max(64 << 10),
        }
    }

    /// Names of the accepted directives that have no effect in Tandem (for docs and tests).
    pub fn no_effect_directives() -> impl Iterator<Item = &'static str> {
        DIRECTIVES.iter().filter(|d| !d.effect).map(|d| d.name)
    }
}

/// The typed view of the configuration used on the hot path.
#[derive(Debug, Clone)]
pub struct Settings {
    pub port: u16,
    pub bind: Vec<String>,
    pub shards: usize,
    /// Source address of outgoing connections (`bind-source-addr`).
    pub bind_source_addr: Option<std::net::IpAddr>,
    pub dir: PathBuf,
    pub databases: usize,
    pub requirepass: Option<String>,
    pub protected_mode: bool,
    pub migrate_connections: bool,
    pub maxclients: usize,
    pub maxmemory: u64,
    pub timeout_secs: u64,
    pub loglevel: String,
    pub logfile: String,
    pub hz: u32,
    pub proto_max_bulk_len: usize,
    pub client_query_buffer_limit: usize,
    pub enable_debug_command: String,
    /// CPUs the shard threads are pinned to (shard i to cpus[i % len]); empty = not pinned.
    pub cpus: Vec<usize>,
    pub replicaof: Option<(String, u16)>,
    pub masterauth: Option<String>,
    pub masteruser: Option<String>,
    pub replica_read_only: bool,
    pub replica_serve_stale_data: bool,
    /// Total over the shards; each shard's backlog holds its share.
    pub repl_backlog_size: usize,
    pub repl_timeout_secs: u64,
    pub repl_ping_period_secs: u64,
    pub min_replicas_to_write: usize,
    pub min_replicas_max_lag_secs: u64,
    pub repl_sync_buffer_memory: usize,
    pub durability: bool,
    /// Eligible replicas a write needs (the replication factor besides the primary).
    pub durability_replicas: usize,
    pub durability_timeout_ms: u64,
    pub repl_lz4: bool,
    /// docs/failover.md: a member of a replication group (a witness always is).
    pub failover: bool,
    pub witness: bool,
    pub failover_timeout_ms: u64,
    pub failover_lease_ms: u64,
    pub debug_repl_corrupt_chunk: u64,
    pub key_load_delay_us: u64,
    pub pubsub_limit: crate::shard::pubsub::PushLimit,
    /// Enabled keyspace notification classes (store/events.rs).
    pub notify_keyspace_events: u32,
    pub limits: crate::store::types::Limits,
    pub appendonly: bool,
    pub rdbcompression: bool,
    pub appendfsync: tandem_sync::wal::Fsync,
    pub appendfilename: String,
    pub appenddirname: String,
    pub dbfilename: String,
    pub aof_load_truncated: bool,
    pub wal_truncate_corrupt: bool,
    pub wal_segment_size: u64,
}

/// Splits `--name v1 v2 --other v` into directives; the first argument may be a config file path.
/// Directives given on the command line: name and its values.
pub type CliDirectives = Vec<(String, Vec<String>)>;

pub fn split_cli(args: &[String]) -> Result<(Option<String>, CliDirectives), String> {
    let mut file = None;
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for (i, a) in args.iter().enumerate() {
        if let Some(name) = a.strip_prefix("--") {
            out.push((name.to_string(), Vec::new()));
        } else if let Some(last) = out.last_mut() {
            last.1.push(a.clone());
        } else if i == 0 {
            file = Some(a.clone());
        } else {
            return Err(format!("unexpected argument '{a}'"));
        }
    }
    // `--witness` alone means `--witness yes` (the switch the failover docs show).
    for (name, values) in out.iter_mut() {
        if name == "witness" && values.is_empty() {
            values.push("yes".into());
        }
    }
    Ok((file, out))
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
