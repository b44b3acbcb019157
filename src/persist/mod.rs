//! Persistence (docs/persistence.md): each shard's write-ahead log of its replication log's units, its
//! snapshots, and recovery at start-up. The formats and the writer's logic without I/O are in
//! tandem-sync's `wal`; this module does the file I/O and plugs them into shards.
//!
//! Module map:
//! - `files`: where the WAL segments and snapshots live under `dir`.
//! - `recover`: start-up: every shard's segments read and checked in parallel, what each replays.
//! - `snapshot`: SAVE, BGSAVE and a replica's full sync: point-in-time parts without fork; loading them.
//! - `wal`: a shard's WAL driver: performs the writer's operations through io_uring, publishes the
//!   durable point, reports failures.

pub mod files;
pub mod recover;
pub mod snapshot;
pub mod wal;

use crate::runtime::{self, Local};
use std::rc::Rc;
use std::sync::atomic::Ordering;

/// This shard's WAL writer, beginning at `start`, per the settings.
fn writer(sh: &crate::shard::Shard, start: tandem_sync::wal::Start) -> crate::shard::wal::ShardWal {
    let s = &sh.settings;
    let cfg = tandem_sync::wal::writer::Config {
        shard: sh.id as u16,
        shards: sh.nshards as u16,
        segment_size: s.wal_segment_size,
        fsync: s.appendfsync,
    };
    crate::shard::wal::ShardWal {
        w: tandem_sync::wal::Writer::new(cfg, sh.repl.identity.clone(), start),
        attached: true,
        failed: false,
        inject: None,
        stats: Default::default(),
        part_waiters: Vec::new(),
    }
}

/// Start-up of one shard with something to recover (a snapshot, or `appendonly yes`): loads its
/// snapshot part and replays its WAL units (on its own thread, in parallel with the other shards), then
/// starts writing its WAL where the log ended.
pub async fn start_shard(local: &Rc<Local>, plan: recover::ShardPlan) {
    let t = std::time::Instant::now();
    let (files, appendonly) = {
        let sh = local.shard.borrow();
        (
            files::Files::new(&sh.settings, local.id),
            sh.settings.appendonly,
        )
    };
    let units = plan.units.len();
    {
        let mut guard = local.shard.borrow_mut();
        let sh = &mut *guard;
        if let Some(id) = &plan.identity {
            sh.repl.identity = id.clone();
        }
        if let Some((path, point)) = &plan.snapshot {
            if let Err(e) = snapshot::load(sh, path) {
                tracing::error!("{e}");
                std::process::exit(1);
            }
            sh.reset_journal(*point);
        }
        for u in &plan.units {
            if let Err(e) = crate::repl::apply::replay(sh, u) {
                tracing::error!("shard {}: replaying the WAL failed: {e}", local.id);
                std::process::exit(1);
            }
        }
        if sh.repl.offset() != plan.end {
            sh.reset_journal(plan.end);
        }
        if appendonly {
            sh.ensure_backlog();
            sh.wal = Some(writer(sh, plan.writer_start()));
            sh.durable_configure();
        }
        if plan.identity.is_some() && sh.settings.replicaof.is_none() {
            // Valkey's rule for a restarted primary: a new id, the recovered history reachable under the
            // old one up to where it ends here. A replica that got more of that history than this WAL
            // kept (sent before its fsync, or never acknowledged) so gets a full sync, where a
            // continuation under the old id would splice two histories mid-unit. The WAL's next unit
            // starts a segment under the new identity (its current one holds the old history).
            sh.repl.identity.promote(local.shared.replid, plan.end);
            sh.wal_identity();
        }
    }
    if appendonly {
        let cur = plan
            .last
            .as_ref()
            .map(|(seg, path, _, _)| (*seg, path.clone()));
        runtime::spawn(wal::run(local.clone(), files, cur)).detach();
    }
    let keys = local.shard.borrow().ks.total_keys();
    tracing::info!(
        "shard {}: recovered {keys} keys ({} from a snapshot, {units} WAL units) to log offset {} in {:.3}s",
        local.id,
        if plan.snapshot.is_some() { "loaded" } else { "none" },
        plan.end,
        t.elapsed().as_secs_f64()
    );
    let r = &local.shared.repl;
    if r.recovering.fetch_sub(1, Ordering::AcqRel) == 1 {
        let settings = local.shard.borrow().settings.clone();
        crate::repl::gate::update(&local.shared, &settings);
    }
}
