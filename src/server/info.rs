//! INFO, with Valkey's section and field names so tools and exporters read it unchanged.

use super::conn::Conn;
use crate::alloc;
use crate::cmd::args::lower;
use crate::cmd::CmdResult;
use crate::resp::Reply;
use crate::runtime;
use crate::shard::Stats;
use bytes::Bytes;
use std::fmt::Write;

/// The Redis API level Valkey 8 reports in `redis_version`.
pub const REDIS_VERSION: &str = "7.2.4";
/// The Valkey API level Tandem emulates.
pub const VALKEY_VERSION: &str = "8.0.1";
pub const TANDEM_VERSION: &str = env!("CARGO_PKG_VERSION");

const DEFAULT: &[&str] = &[
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
    "cpu",
    "keyspace",
];
const ALL: &[&str] = &[
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
    "cpu",
    "commandstats",
    "keyspace",
];

/// What each shard reports for INFO.
struct ShardReport {
    stats: Stats,
    keys: Vec<(usize, usize)>,
    expired: u64,
    dirty: u64,
    clients: usize,
    /// Blocked, subscribed, watching connections; watched keys.
    blocked: usize,
    pubsub: usize,
    watched_keys: usize,
    table_bytes: usize,
    wal: Option<crate::shard::wal::WalStats>,
}

fn cpu_times() -> (f64, f64) {
    // SAFETY: getrusage fills the struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    (t(ru.ru_stime), t(ru.ru_utime))
}

fn human(bytes: u64) -> String {
    let b = bytes as f64;
    if b < 1024.0 {
        format!("{bytes}B")
    } else if b < 1024.0 * 1024.0 {
        format!("{:.2}K", b / 1024.0)
    } else if b < 1024.0 * 1024.0 * 1024.0 {
        format!("{:.2}M", b / 1024.0 / 1024.0)
    } else {
        format!("{:.2}G", b / 1024.0 / 1024.0 / 1024.0)
    }
}

impl Conn {
    pub async fn info_cmd(&mut self, a: &[Bytes], r: &mut Reply) -> CmdResult {
        let mut wanted: Vec<String> = a[1..].iter().map(|s| lower(s)).collect();
        if wanted.is_empty() || wanted.iter().any(|w| w == "default") {
            wanted.extend(DEFAULT.iter().map(|s| s.to_string()));
        }
        if wanted.iter().any(|w| w == "all" || w == "everything") {
            wanted.extend(ALL.iter().map(|s| s.to_string()));
        }
        let reports = self
            .local
            .broadcast(|sh| ShardReport {
                stats: sh.stats.clone(),
                keys: (0..sh.ks.databases())
                    .map(|d| (sh.ks.len(d), sh.ks.expires(d)))
                    .collect(),
                expired: sh.ks.stats.expired,
                dirty: sh.ks.dirty.count(),
                clients: sh.clients.len(),
                blocked: sh.clients.values().filter(|c| c.borrow().blocked).count(),
                pubsub: sh.pubsub_clients(),
                watched_keys: sh.ks.hooks.watched.len(),
                table_bytes: sh.ks.table_bytes(),
                wal: sh.wal.as_ref().map(|w| w.stats.clone()),
            })
            .await;
        let (repl_text, (sync_full, sync_ok, sync_err)) =
            crate::repl::commands::info_section(&self.local).await;
        let loading = self
            .local
            .shared
            .repl
            .loading
            .load(std::sync::atomic::Ordering::Acquire);
        let mut total = Stats::default();
        reports.iter().for_each(|rep| total.merge(&rep.stats));
        let sh = self.local.shard.borrow();
        let settings = sh.settings.clone();
        drop(sh);
        let shared = &self.local.shared;
        let now = runtime::now_ms();
        let uptime = now.saturating_sub(shared.start_ms) / 1000;
        let mut out = String::new();
        let mut first = true;
        for section in ALL {
            if !wanted.iter().any(|w| w == section) {
                continue;
            }
            if !first {
                out.push_str("\r\n");
            }
            first = false;
            let title = section[..1].to_uppercase() + &section[1..];
            let _ = write!(out, "# {title}\r\n");
            let w = &mut out;
            match *section {
                "server" => {
                    let _ = write!(
                        w,
                        "redis_version:{REDIS_VERSION}\r\nserver_name:valkey\r\nvalkey_version:{VALKEY_VERSION}\r\ntandem_version:{TANDEM_VERSION}\r\n\
                         redis_git_sha1:00000000\r\nredis_git_dirty:0\r\nredis_build_id:0\r\nserver_mode:standalone\r\nredis_mode:standalone\r\n\
                         os:{} {}\r\narch_bits:64\r\nmultiplexing_api:io_uring\r\nprocess_id:{}\r\nprocess_supervised:no\r\nrun_id:{}\r\n\
                         tcp_port:{}\r\nserver_time_usec:{}\r\nuptime_in_seconds:{uptime}\r\nuptime_in_days:{}\r\nhz:{}\r\nconfigured_hz:{}\r\n\
                         lru_clock:{}\r\nexecutable:{}\r\nconfig_file:{}\r\nshards:{}\r\ntandem_node_id:{}\r\n",
                        std::env::consts::OS,
                        std::env::consts::ARCH,
                        std::process::id(),
                        shared.run_id,
                        shared.port,
                        runtime::now_us(),
                        uptime / 86400,
                        settings.hz,
                        settings.hz,
                        (now / 1000) & 0xFF_FFFF,
                        shared.executable,
                        shared.config_file.as_deref().unwrap_or(""),
                        self.local.nshards(),
                        shared.node_id,
                    );
                }
                "clients" => {
                    let n: usize = reports.iter().map(|r| r.clients).sum();
                    let blocked: usize = reports.iter().map(|r| r.blocked).sum();
                    let pubsub: usize = reports.iter().map(|r| r.pubsub).sum();
                    let watched: usize = reports.iter().map(|r| r.watched_keys).sum();
                    let _ = write!(
                        w,
                        "connected_clients:{n}\r\ncluster_connections:0\r\nmaxclients:{}\r\nclient_recent_max_input_buffer:0\r\n\
                         client_recent_max_output_buffer:0\r\nblocked_clients:{blocked}\r\ntracking_clients:0\r\npubsub_clients:{pubsub}\r\n\
                         watching_clients:0\r\nclients_in_timeout_table:{blocked}\r\ntotal_watched_keys:{watched}\r\ntotal_blocking_keys:0\r\n",
                        settings.maxclients
                    );
                }
                "memory" => {
                    let used = alloc::used_memory();
                    let rss = alloc::rss_bytes();
                    let tables: usize = reports.iter().map(|r| r.table_bytes).sum();
                    let frag = if used > 0 {
                        rss as f64 / used as f64
                    } else {
                        0.0
                    };
                    let _ = write!(
                        w,
                        "used_memory:{used}\r\nused_memory_human:{}\r\nused_memory_rss:{rss}\r\nused_memory_rss_human:{}\r\n\
                         used_memory_peak:{used}\r\nused_memory_dataset_tables:{tables}\r\nmaxmemory:{}\r\nmaxmemory_human:{}\r\n\
                         maxmemory_policy:noeviction\r\nmem_fragmentation_ratio:{frag:.2}\r\nmem_allocator:jemalloc-5.3.0\r\n",
                        human(used),
                        human(rss),
                        settings.maxmemory,
                        human(settings.maxmemory)
                    );
                }
                "persistence" => {
                    let mut wal = crate::shard::wal::WalStats::default();
                    reports
                        .iter()
                        .flat_map(|r| &r.wal)
                        .for_each(|s| wal.merge(s));
                    let on = reports.iter().any(|r| r.wal.is_some());
                    let err = shared.repl.wal_error.get();
                    let _ = write!(
                        w,
                        "loading:{}\r\nasync_loading:0\r\ncurrent_cow_peak:0\r\nrdb_changes_since_last_save:{}\r\nrdb_bgsave_in_progress:{}\r\n\
                         rdb_last_save_time:{}\r\nrdb_last_bgsave_status:{}\r\naof_enabled:{}\r\naof_rewrite_in_progress:0\r\n\
                         aof_last_write_status:{}\r\naof_last_error:{}\r\ntandem_wal_writes:{}\r\ntandem_wal_bytes:{}\r\n\
                         tandem_wal_write_usec:{}\r\ntandem_wal_syncs:{}\r\ntandem_wal_sync_usec:{}\r\ntandem_wal_sync_max_usec:{}\r\n",
                        (loading || shared.repl.recovering.load(std::sync::atomic::Ordering::Acquire) > 0) as u8,
                        reports.iter().map(|r| r.dirty).sum::<u64>(),
                        shared.repl.saving.load(std::sync::atomic::Ordering::Acquire) as u8,
                        match shared.repl.last_save_s.load(std::sync::atomic::Ordering::Acquire) {
                            0 => shared.start_ms / 1000,
                            t => t,
                        },
                        if !shared.repl.last_save_ok.load(std::sync::atomic::Ordering::Acquire) {
                            "err"
                        } else {
                            "ok"
                        },
                        on as u8,
                        if err.is_some() { "err" } else { "ok" },
                        err.map_or("", |e| e.as_str()),
                        wal.writes,
                        wal.bytes,
                        wal.write_us,
                        wal.syncs,
                        wal.sync_us,
                        wal.sync_max_us,
                    );
                }
                "stats" => {
                    let expired: u64 = reports.iter().map(|r| r.expired).sum();
                    let secs = (now.saturating_sub(shared.start_ms) as f64 / 1000.0).max(0.001);
                    let _ = write!(
                        w,
                        "total_connections_received:{}\r\ntotal_commands_processed:{}\r\ninstantaneous_ops_per_sec:{}\r\n\
                         total_net_input_bytes:{}\r\ntotal_net_output_bytes:{}\r\nrejected_connections:{}\r\nsync_full:{sync_full}\r\n\
                         sync_partial_ok:{sync_ok}\r\nsync_partial_err:{sync_err}\r\nexpired_keys:{expired}\r\nevicted_keys:0\r\nkeyspace_hits:{}\r\n\
                         keyspace_misses:{}\r\npubsub_channels:0\r\npubsub_patterns:0\r\ntotal_error_replies:{}\r\n\
                         migrated_connections:{}\r\n",
                        total.connections_received,
                        total.commands,
                        (total.commands as f64 / secs) as u64,
                        total.net_input_bytes,
                        total.net_output_bytes,
                        total.rejected_connections,
                        total.hits,
                        total.misses,
                        total.error_replies,
                        total.migrated_connections
                    );
                }
                "replication" => w.push_str(&repl_text),
                "cpu" => {
                    let (sys, user) = cpu_times();
                    let _ = write!(w, "used_cpu_sys:{sys:.6}\r\nused_cpu_user:{user:.6}\r\n");
                }
                "commandstats" => {
                    let mut names: Vec<_> = crate::cmd::TABLE
                        .iter()
                        .zip(&total.per_cmd)
                        .filter(|(_, s)| s.calls + s.rejected > 0)
                        .map(|(spec, s)| (spec.name, s))
                        .collect();
                    names.sort_by_key(|(k, _)| *k);
                    for (name, s) in names {
                        let per = if s.calls > 0 {
                            s.usec as f64 / s.calls as f64
                        } else {
                            0.0
                        };
                        let _ = write!(
                            w,
                            "cmdstat_{name}:calls={},usec={},usec_per_call={per:.2},rejected_calls={},failed_calls={}\r\n",
                            s.calls, s.usec, s.rejected, s.failed
                        );
                    }
                }
                "keyspace" => {
                    let ndb = reports.first().map_or(0, |r| r.keys.len());
                    for db in 0..ndb {
                        let keys: usize = reports.iter().map(|r| r.keys[db].0).sum();
                        let exp: usize = reports.iter().map(|r| r.keys[db].1).sum();
                        if keys > 0 {
                            let _ = write!(w, "db{db}:keys={keys},expires={exp},avg_ttl=0\r\n");
                        }
                    }
                }
                _ => {}
            }
        }
        r.verbatim(out.as_bytes());
        Ok(())
    }
}
