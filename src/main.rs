//! `tandem-server [CONFIG_FILE] [--directive value ...]`

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use tandem_server::config::{split_cli, Config};
use tandem_server::server::{self, Shared};
use tandem_server::{runtime, shard::mesh::Mesh};

#[global_allocator]
static GLOBAL: tandem_server::alloc::Counting = tandem_server::alloc::Counting;

const USAGE: &str = "Usage: tandem-server [/path/to/tandem.conf] [options] [-]
       tandem-server -v or --version
       tandem-server -h or --help

Examples:
       tandem-server (run the server with default config)
       tandem-server /etc/tandem/6379.conf
       tandem-server --port 7777
       tandem-server --port 0 --shards 2   (port 0: pick a free port, printed at start-up)
       tandem-server /etc/mytandem.conf --loglevel verbose

Every directive of the configuration file may be given as --directive value.
See docs/config.md for the directives.";

fn random_hex(n: usize) -> String {
    use rand::TryRngCore;
    let mut rng = rand::rngs::OsRng;
    let mut b = vec![0u8; n / 2];
    rng.try_fill_bytes(&mut b).expect("OS randomness");
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn init_logging(level: &str, file: &str) {
    let max = match level {
        "debug" => tracing::Level::DEBUG,
        "verbose" | "notice" => tracing::Level::INFO,
        _ => tracing::Level::WARN,
    };
    let builder = tracing_subscriber::fmt()
        .with_max_level(max)
        .with_target(false)
        .with_ansi(false);
    if file.is_empty() {
        builder.with_writer(std::io::stdout).init();
    } else {
        match std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(file)
        {
            Ok(f) => builder.with_writer(std::sync::Mutex::new(f)).init(),
            Err(e) => {
                eprintln!("Can't open the log file: {e}");
                std::process::exit(1);
            }
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return;
    }
    if args.iter().any(|a| a == "-v" || a == "--version") {
        println!(
            "Tandem server v={} valkey_api={} redis_api={} bits=64 malloc=jemalloc-5.3.0",
            env!("CARGO_PKG_VERSION"),
            server::info::VALKEY_VERSION,
            server::info::REDIS_VERSION
        );
        return;
    }
    let (file, cli) = match split_cli(&args) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("FATAL CONFIG FILE ERROR: command line: {e}");
            std::process::exit(1);
        }
    };
    let config = match Config::load(file.as_deref(), &cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    let settings = config.settings();
    init_logging(&settings.loglevel, &settings.logfile);
    if let Err(e) = std::env::set_current_dir(&settings.dir) {
        tracing::error!("Can't chdir to '{}': {e}", settings.dir.display());
        std::process::exit(1);
    }
    let node_id = match server::load_node_id(std::path::Path::new("."), || random_hex(40)) {
        Ok(id) => id,
        Err(e) => {
            tracing::error!("{e}");
            std::process::exit(1);
        }
    };
    let shards = settings.shards;
    // Persistence: every shard's WAL is read and checked before anything serves (docs/persistence.md).
    let recover = tandem_server::persist::recover::wanted(&settings);
    let mut plans = if recover {
        match tandem_server::persist::recover::prepare(&settings, shards) {
            Ok(p) => p.into_iter().map(Some).collect(),
            Err(e) => {
                tracing::error!("{e}");
                std::process::exit(1);
            }
        }
    } else {
        Vec::new()
    };
    let recovered = plans
        .first()
        .and_then(|p| p.as_ref())
        .and_then(|p| p.identity.clone());
    let cached = recovered.as_ref().map(|id| {
        let ends = plans.iter().flatten().map(|p| p.end).collect::<Vec<_>>();
        (id.replid, ends)
    });
    let (port, listeners) = match server::open_listeners(&config, shards) {
        Ok(x) => x,
        Err(e) => {
            tracing::error!("{e}");
            std::process::exit(1);
        }
    };
    let shared = Arc::new(Shared {
        mesh: Mesh::new(shards),
        next_client_id: AtomicU64::new(0),
        next_tx: AtomicU64::new(0),
        connected: AtomicUsize::new(0),
        shutdown: AtomicBool::new(false),
        closing_shards: AtomicUsize::new(shards),
        start_ms: runtime::now_ms(),
        run_id: random_hex(40),
        node_id,
        port,
        config_file: file
            .as_ref()
            .and_then(|f| std::fs::canonicalize(f).ok())
            .map(|p| p.display().to_string()),
        executable: std::env::current_exe()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        repl: Default::default(),
        // A recovered replica keeps its primary's id to continue from; a restarted primary takes a new
        // one (its recovered history stays reachable as the previous id: persist::start_shard).
        replid: match &recovered {
            Some(id) if settings.replicaof.is_some() => id.replid,
            _ => tandem_sync::replid::ReplId::parse(random_hex(40).as_bytes())
                .expect("40 hex characters"),
        },
    });
    tracing::info!(
        "Tandem version={} pid={} shards={shards} just started",
        env!("CARGO_PKG_VERSION"),
        std::process::id()
    );
    // Refusals that hold from the start (durability mode with no eligible replica yet; in failover mode,
    // no data is served before the group's record says this node may).
    shared
        .repl
        .group
        .store(settings.failover && !settings.witness, Ordering::Release);
    if recover {
        shared.repl.recovering.store(shards, Ordering::Release);
    }
    shared.repl.last_save_ok.store(true, Ordering::Release);
    tandem_server::repl::gate::update(&shared, &settings);
    let config = Arc::new(config);
    let mut threads = Vec::new();
    for (id, l) in listeners.into_iter().enumerate() {
        let (shared, config) = (shared.clone(), config.clone());
        let boot = server::Boot {
            plan: plans.get_mut(id).and_then(Option::take),
            cached: if id == 0 { cached.clone() } else { None },
        };
        let seed: u64 = u64::from_str_radix(&random_hex(16), 16).unwrap_or(id as u64);
        // Pinned only when asked (server-cpulist), as in Valkey: with other busy processes on the same
        // cores (a load generator, say), the kernel places unpinned threads better (docs/performance.md).
        let core = (!settings.cpus.is_empty()).then(|| settings.cpus[id % settings.cpus.len()]);
        let t = runtime::spawn_shard_thread(format!("shard-{id}"), core, move || {
            server::shard_main(id, shared, config, l, seed, boot)
        });
        match t {
            Ok(t) => threads.push(t),
            Err(e) => {
                tracing::error!("Can't start shard {id}: {e}");
                std::process::exit(1);
            }
        }
    }
    {
        let shared = shared.clone();
        let mut signals = signal_hook::iterator::Signals::new([
            signal_hook::consts::SIGTERM,
            signal_hook::consts::SIGINT,
        ])
        .expect("signal handler");
        std::thread::spawn(move || {
            if let Some(sig) = signals.forever().next() {
                let name = if sig == signal_hook::consts::SIGINT {
                    "SIGINT"
                } else {
                    "SIGTERM"
                };
                tracing::info!("Received {name} scheduling shutdown...");
                server::request_shutdown(&shared);
            }
        });
    }
    if recover {
        // Ready means the data is back: every shard recovers in parallel on its own thread.
        let t = std::time::Instant::now();
        while shared.repl.recovering.load(Ordering::Acquire) > 0 {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        tracing::info!(
            "DB loaded from append only file: {:.3} seconds",
            t.elapsed().as_secs_f64()
        );
    }
    tracing::info!("Server initialized on port {port} with {shards} shards");
    tracing::info!("Ready to accept connections tcp");
    for t in threads {
        let _ = t.join();
    }
    tracing::info!("Tandem is now ready to exit, bye bye...");
}
