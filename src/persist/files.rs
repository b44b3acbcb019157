//! Where persistence keeps its files under `dir` (docs/persistence.md):
//!
//! - `<appenddirname>/<appendfilename>.s<shard>.<start>.wal`: WAL segments of shard `shard`, named by the
//!   log offset they start at (20 decimal digits, so names sort in log order);
//! - `<appenddirname>/<appendfilename>.s<shard>.spare`: the next segment, zero-filled ahead of need;
//! - `<dbfilename>.s<shard>`: shard `shard`'s latest snapshot (written as `.tmp`, renamed when whole).

use crate::config::Settings;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct Files {
    pub wal_dir: PathBuf,
    prefix: String,
    snapshot: PathBuf,
    pub shard: usize,
}

impl Files {
    /// Paths are under `dir` (the process's working directory after start-up), absolute so that every
    /// message names the file an operator can find.
    pub fn new(s: &Settings, shard: usize) -> Files {
        let dir = std::env::current_dir().unwrap_or_default();
        Files {
            wal_dir: dir.join(&s.appenddirname),
            prefix: format!("{}.s{shard}.", s.appendfilename),
            snapshot: dir.join(format!("{}.s{shard}", s.dbfilename)),
            shard,
        }
    }

    pub fn segment(&self, start: u64) -> PathBuf {
        self.wal_dir.join(format!("{}{start:020}.wal", self.prefix))
    }

    pub fn spare(&self) -> PathBuf {
        self.wal_dir.join(format!("{}spare", self.prefix))
    }

    pub fn snapshot(&self) -> &Path {
        &self.snapshot
    }

    pub fn snapshot_tmp(&self) -> PathBuf {
        let mut p = self.snapshot.clone().into_os_string();
        p.push(".tmp");
        p.into()
    }

    /// This shard's segments on disk: (start offset, path), in log order.
    pub fn segments(&self) -> std::io::Result<Vec<(u64, PathBuf)>> {
        let mut out = Vec::new();
        let rd = match std::fs::read_dir(&self.wal_dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e),
        };
        for e in rd {
            let e = e?;
            let name = e.file_name();
            let Some(name) = name.to_str() else { continue };
            let Some(rest) = name.strip_prefix(&self.prefix) else {
                continue;
            };
            if let Some(start) = rest.strip_suffix(".wal").and_then(|n| n.parse().ok()) {
                out.push((start, e.path()));
            }
        }
        out.sort();
        Ok(out)
    }
}
