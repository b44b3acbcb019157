//! Recovery at start-up (docs/persistence.md): every shard's segments are read and checked in parallel,
//! before any shard serves; then each shard thread replays its own units through the replica's apply path
//! (`repl::apply::replay`) and continues writing where its log ended.
//!
//! Decisions: a torn unit at the end of a shard's newest segment is dropped, logged and erased (unless
//! `aof-load-truncated no`: start-up stops); a checksum error before the end stops start-up naming the file
//! and offset, unless `wal-truncate-corrupt yes` (the log is cut there: erased from that unit on); a
//! multi-shard transaction whose parts are not all on disk is dropped on every shard with everything after
//! it (it was never acknowledged: its coordinator releases the shards only once every part is synced, so
//! nothing after it was acknowledged either).

use super::files::Files;
use crate::config::Settings;
use bytes::Bytes;
use std::collections::HashMap;
use std::path::PathBuf;
use tandem_sync::replid::Identity;
use tandem_sync::unit::Unit;
use tandem_sync::wal::recover::{chain, ChainError};
use tandem_sync::wal::Start;

/// What one shard recovers: the units to replay, where its log ends and under which identity, and where
/// its writer continues.
#[derive(Debug, Default)]
pub struct ShardPlan {
    /// The snapshot part to load first, and the log offset it was taken at.
    pub snapshot: Option<(PathBuf, u64)>,
    pub units: Vec<Bytes>,
    pub identity: Option<Identity>,
    pub end: u64,
    /// The newest segment, to continue in: (start, path, position after the last unit, file size).
    pub last: Option<(u64, PathBuf, u64, u64)>,
}

impl ShardPlan {
    pub fn writer_start(&self) -> Start {
        match &self.last {
            Some((seg, _, pos, size)) => Start::Continue {
                seg: *seg,
                pos: *pos,
                size: *size,
                offset: self.end,
            },
            None => Start::Fresh {
                offset: self.end,
                based: false,
            },
        }
    }
}

/// Erases `len` bytes at `pos` of `path` (zeros, synced): what recovery dropped must not be found again
/// once new units are written after it.
fn erase(path: &std::path::Path, pos: u64, len: u64) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new().write(true).open(path)?;
    f.write_all_at(&vec![0; len as usize], pos)?;
    f.sync_data()
}

/// The non-zero bytes from `pos` on (what an erase must cover).
fn junk_from(b: &[u8], pos: usize) -> u64 {
    b[pos..]
        .iter()
        .rposition(|&x| x != 0)
        .map_or(0, |i| i as u64 + 1)
}

/// Reads and checks shard `shard`'s snapshot part and (with `appendonly yes`) its segments.
fn read_shard(s: &Settings, shard: usize, shards: usize) -> Result<ShardPlan, String> {
    let files = Files::new(s, shard);
    let snap = super::snapshot::read_header(files.snapshot())?;
    if let Some(h) = &snap {
        if h.shard as usize != shard || h.shards as usize != shards {
            return Err(format!(
                "Snapshot {} was written by shard {} of {}; start with {} shards",
                files.snapshot().display(),
                h.shard,
                h.shards,
                h.shards
            ));
        }
    }
    let from = snap.as_ref().map_or(0, |h| h.start);
    let mut plan = ShardPlan {
        snapshot: snap
            .as_ref()
            .map(|h| (files.snapshot().to_path_buf(), h.start)),
        identity: snap.as_ref().map(|h| h.identity.clone()),
        end: from,
        ..Default::default()
    };
    if !s.appendonly {
        return Ok(plan);
    }
    loop {
        let segs = files.segments().map_err(|e| {
            format!(
                "Can't read the WAL directory {}: {e}",
                files.wal_dir.display()
            )
        })?;
        let mut data = Vec::with_capacity(segs.len());
        for (start, path) in &segs {
            let b = std::fs::read(path)
                .map_err(|e| format!("Can't read WAL segment {}: {e}", path.display()))?;
            data.push((*start, path.clone(), b));
        }
        let views: Vec<(u64, &[u8])> = data.iter().map(|(s, _, b)| (*s, &b[..])).collect();
        let path_of = |seg: u64| {
            data.iter()
                .find(|d| d.0 == seg)
                .map_or_else(PathBuf::new, |d| d.1.clone())
        };
        let c = match chain(&views, from, shard as u16, shards as u16) {
            Ok(c) => c,
            Err(ChainError::Scan {
                seg,
                err:
                    tandem_sync::wal::segment::ScanError::Corrupt {
                        pos,
                        offset,
                        reason,
                    },
            }) => {
                let path = path_of(seg);
                if !s.wal_truncate_corrupt {
                    return Err(format!(
                        "Bad WAL segment {}: checksum error at file offset {pos} (log offset {offset}): \
                         {reason}. Start with wal-truncate-corrupt yes to cut the log there (everything \
                         after it is lost)",
                        path.display()
                    ));
                }
                tracing::warn!(
                    "WAL segment {}: corrupt unit at file offset {pos} (log offset {offset}): {reason}; \
                     cutting the log there (wal-truncate-corrupt yes)",
                    path.display()
                );
                let b = &data.iter().find(|d| d.0 == seg).expect("scanned").2;
                erase(&path, pos as u64, junk_from(b, pos)).map_err(|e| e.to_string())?;
                for (start, p, _) in &data {
                    if *start > seg {
                        std::fs::remove_file(p).map_err(|e| e.to_string())?;
                    }
                }
                continue;
            }
            Err(e) => {
                let seg = match &e {
                    ChainError::Scan { seg, .. }
                    | ChainError::TornInside { seg, .. }
                    | ChainError::Layout { seg, .. } => Some(*seg),
                    _ => None,
                };
                return Err(match seg {
                    Some(seg) => format!("Bad WAL {}: {e}", path_of(seg).display()),
                    None => format!("Bad WAL of shard {shard}: {e}"),
                });
            }
        };
        if let Some(t) = &c.torn {
            let path = path_of(t.seg);
            if !s.aof_load_truncated {
                return Err(format!(
                    "WAL segment {} ends in a torn unit at file offset {} ({}); start with \
                     aof-load-truncated yes to drop it",
                    path.display(),
                    t.pos,
                    t.reason
                ));
            }
            tracing::warn!(
                "WAL segment {}: dropping a torn unit at file offset {} (log offset {}): {}",
                path.display(),
                t.pos,
                t.offset,
                t.reason
            );
            erase(&path, t.pos as u64, t.junk as u64).map_err(|e| e.to_string())?;
        }
        if !c.discarded.is_empty() {
            tracing::warn!(
                "WAL of shard {shard}: discarding a chain begun on a snapshot that was never saved \
                 (a full sync interrupted by a crash); recovering from the snapshot before it"
            );
            for seg in &c.discarded {
                std::fs::remove_file(path_of(*seg)).map_err(|e| e.to_string())?;
            }
        }
        if let Some(h) = &c.header {
            plan.identity = Some(h.identity.clone());
        }
        plan.end = c.end;
        for (seg, f) in c.units(from) {
            let b = &data.iter().find(|d| d.0 == seg).expect("scanned").2;
            plan.units
                .push(Bytes::copy_from_slice(&b[f.pos..f.pos + f.len]));
        }
        if let Some(l) = c.links.last() {
            let seg = l.scanned.header.start;
            let size = data.iter().find(|d| d.0 == seg).expect("scanned").2.len() as u64;
            plan.last = Some((seg, path_of(seg), l.scanned.end_pos as u64, size));
        }
        return Ok(plan);
    }
}

/// Drops, on every shard, each multi-shard transaction not all of whose parts were recovered, with
/// everything after it on that shard (and erases those bytes).
fn drop_incomplete(plans: &mut [ShardPlan]) -> Result<(), String> {
    let mut seen: HashMap<u64, (u16, usize)> = HashMap::new();
    for p in plans.iter() {
        for u in &p.units {
            if let Some(t) = Unit::trusted(u).tx {
                seen.entry(t.txid).or_insert((t.parts, 0)).1 += 1;
            }
        }
    }
    for p in plans.iter_mut() {
        let cut = p.units.iter().position(|u| {
            Unit::trusted(u)
                .tx
                .is_some_and(|t| seen.get(&t.txid).is_some_and(|&(n, got)| got < n as usize))
        });
        let Some(i) = cut else { continue };
        let first = Unit::trusted(&p.units[i]).start;
        let Some((_, path, pos, _)) = p.last.as_mut() else {
            continue;
        };
        let dropped: u64 = p.units[i..].iter().map(|u| u.len() as u64).sum();
        tracing::warn!(
            "WAL {}: dropping {} bytes from log offset {first}: a multi-shard transaction whose parts \
             did not all reach the disk",
            path.display(),
            dropped
        );
        if *pos < dropped {
            return Err(format!(
                "WAL {}: an incomplete multi-shard transaction spans segments",
                path.display()
            ));
        }
        *pos -= dropped;
        erase(path, *pos, dropped).map_err(|e| e.to_string())?;
        p.units.truncate(i);
        p.end = first;
    }
    Ok(())
}

/// Whether start-up has anything to recover: `appendonly yes`, a snapshot of shard 0, or a file at
/// `dbfilename` itself (which Tandem never writes: a foreign one is refused in `prepare`).
pub fn wanted(s: &Settings) -> bool {
    s.appendonly
        || Files::new(s, 0).snapshot().exists()
        || std::path::Path::new(&s.dbfilename).exists()
}

/// Reads every shard's snapshot part and WAL (in parallel) and decides what each loads and replays. An
/// error is one line for the log.
pub fn prepare(s: &Settings, shards: usize) -> Result<Vec<ShardPlan>, String> {
    let dir = Files::new(s, 0).wal_dir;
    if s.appendonly {
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("Can't create the WAL directory {}: {e}", dir.display()))?;
    }
    // Tandem's snapshots are `<dbfilename>.s<shard>`; a file at `dbfilename` itself is someone else's (a
    // Valkey RDB, say): starting empty beside it would look like lost data.
    let foreign = std::env::current_dir()
        .unwrap_or_default()
        .join(&s.dbfilename);
    if foreign.exists() {
        return Err(format!(
            "{} is not a Tandem snapshot (Tandem writes {}.s<shard>; it does not load RDB files): move \
             it away or set another dbfilename",
            foreign.display(),
            s.dbfilename
        ));
    }
    let extra_snapshot = Files::new(s, shards).snapshot().to_path_buf();
    if extra_snapshot.exists() {
        return Err(format!(
            "Snapshot {} was written by a server with more than {shards} shards; start with the same \
             number of shards",
            extra_snapshot.display()
        ));
    }
    // Segments of a shard this server does not have: written with more shards.
    let extra = Files::new(s, shards)
        .segments()
        .map_err(|e| format!("Can't read the WAL directory {}: {e}", dir.display()))?;
    if !extra.is_empty() {
        return Err(format!(
            "The WAL in {} was written by a server with more than {shards} shards; start with the same \
             number of shards",
            dir.display()
        ));
    }
    let mut plans: Vec<ShardPlan> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..shards)
            .map(|i| sc.spawn(move || read_shard(s, i, shards)))
            .collect();
        hs.into_iter()
            .map(|h| h.join().expect("recovery thread"))
            .collect::<Result<_, _>>()
    })?;
    drop_incomplete(&mut plans)?;
    Ok(plans)
}
