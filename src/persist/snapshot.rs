//! Snapshots (docs/persistence.md): SAVE, BGSAVE and a replica's full sync write every shard's part of a
//! point-in-time snapshot to `dir/<dbfilename>.s<i>`, without fork and without stopping writes: a cut
//! over every shard (one transaction) begins each shard's copy-before-write snapshot at its log offset,
//! exactly as a full sync's PSYNC does, then each shard writes its part as the same checksummed chunk
//! frames the snapshot flow sends, one slot per turn, between client requests.
//!
//! File: a 128-byte header (the WAL segment header's layout under magic "TANDSNAP": shard, shards, the
//! log offset of the cut as `start`, the replication identity), then SnapshotChunk frames, then a
//! SnapshotEnd frame carrying the key count. A part is written as `.tmp`, synced, and renamed over the
//! old one only when whole; then the WAL segments it covers are deleted.

use super::files::Files;
use crate::runtime::file::{sync_dir, File};
use crate::runtime::{self, Local};
use crate::shard::Shard;
use bytes::BytesMut;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use tandem_sync::frame::{Frame, FrameKind};
use tandem_sync::replid::Identity;
use tandem_sync::wal::segment::{Header, HEADER_LEN, SNAPSHOT_MAGIC};

/// A part is written in pieces of about this size.
const WRITE_BYTES: usize = 4 << 20;

/// Reads a snapshot part's header; None if there is no such file.
pub fn read_header(path: &Path) -> Result<Option<Header>, String> {
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("Can't open snapshot {}: {e}", path.display())),
    };
    let mut b = vec![0; HEADER_LEN];
    f.read_exact(&mut b)
        .map_err(|e| format!("Bad snapshot {}: {e}", path.display()))?;
    Header::decode_as(&b, &SNAPSHOT_MAGIC)
        .map(Some)
        .map_err(|e| {
            format!("Bad snapshot {}: {}", path.display(), e).replace("WAL segment", "snapshot")
        })
}

/// Loads a snapshot part into shard `sh`, checking every frame; returns the keys loaded.
pub fn load(sh: &mut Shard, path: &Path) -> Result<u64, String> {
    let bad = |e: String| format!("Bad snapshot {}: {e}", path.display());
    let mut f = std::fs::File::open(path).map_err(|e| bad(e.to_string()))?;
    let mut head = vec![0; HEADER_LEN];
    f.read_exact(&mut head).map_err(|e| bad(e.to_string()))?;
    let mut buf = BytesMut::with_capacity(8 << 20);
    let mut partial = BytesMut::new();
    let mut keys = 0u64;
    let mut eof = false;
    loop {
        match Frame::decode(&mut buf).map_err(|e| bad(e.to_string()))? {
            Some(fr) => match fr.kind {
                FrameKind::SnapshotChunk if fr.more => partial.extend_from_slice(&fr.payload),
                FrameKind::SnapshotChunk => {
                    let payload = if partial.is_empty() {
                        fr.payload
                    } else {
                        partial.extend_from_slice(&fr.payload);
                        std::mem::take(&mut partial).freeze()
                    };
                    keys += crate::repl::replica::load::load_into(sh, &payload).map_err(bad)?;
                }
                FrameKind::SnapshotEnd => {
                    let want = fr
                        .payload
                        .get(..8)
                        .map_or(u64::MAX, |b| u64::from_le_bytes(b.try_into().expect("8")));
                    if want != keys {
                        return Err(bad(format!("it holds {keys} keys, its end says {want}")));
                    }
                    return Ok(keys);
                }
                k => return Err(bad(format!("unexpected {k:?} frame"))),
            },
            None if eof => return Err(bad("it ends before its end frame".into())),
            None => {
                let at = buf.len();
                buf.resize(at + (8 << 20), 0);
                let n = f.read(&mut buf[at..]).map_err(|e| bad(e.to_string()))?;
                buf.truncate(at + n);
                eof = n == 0;
            }
        }
    }
}

/// A shard's part of a snapshot being taken.
struct Cut {
    id: u64,
    point: u64,
    identity: Identity,
    /// The shard's change count at the cut: what the snapshot holds (store/dirty.rs).
    dirty: u64,
}

impl Shard {
    /// Part of a snapshot's cut (inside a transaction over every shard): seals the open unit and begins
    /// this shard's point-in-time copy at its log offset. With `rebase` (a replica's full sync) this
    /// shard's WAL starts a new chain there, based on this snapshot.
    fn begin_save(&mut self, rebase: bool) -> Cut {
        self.seal_unit();
        let id = self.repl.next_snapshot_id;
        self.repl.next_snapshot_id += 1;
        self.ks.begin_snapshot(id);
        let point = self.repl.offset();
        if rebase && self.wal.is_some() {
            // The old history is gone from memory: its segments go, and the WAL starts a new chain here
            // (a crash before this snapshot is saved finds a chain based on a snapshot that does not
            // exist, and discards it: persist/recover.rs).
            let files = Files::new(&self.settings, self.id);
            for (_, p) in files.segments().unwrap_or_default() {
                let _ = std::fs::remove_file(p);
            }
            let _ = sync_dir(&files.wal_dir);
            self.wal = Some(super::writer(
                self,
                tandem_sync::wal::Start::Fresh {
                    offset: point,
                    based: true,
                },
            ));
        }
        Cut {
            id,
            point,
            identity: self.repl.identity.clone(),
            dirty: self.ks.dirty.count(),
        }
    }
}

/// Writes shard `l`'s part of snapshot `cut` to its temporary file; returns (path, keys, bytes).
async fn write_part(l: Rc<Local>, cut: Cut) -> Result<(PathBuf, u64, u64), String> {
    let (files, shards, lz4) = {
        let sh = l.shard.borrow();
        (
            Files::new(&sh.settings, l.id),
            sh.nshards,
            sh.settings.rdbcompression,
        )
    };
    let tmp = files.snapshot_tmp();
    // The full sync's guard: a part that stops early stops writes copying slots for it.
    let guard = crate::repl::primary::SnapshotGuard {
        local: &l,
        id: cut.id,
    };
    let err = |e: std::io::Error| format!("writing {}: {e}", tmp.display());
    let f = File::create(&tmp).await.map_err(err)?;
    let header = Header {
        shard: l.id as u16,
        shards: shards as u16,
        start: cut.point,
        identity: cut.identity,
        based: false,
    };
    f.write_all_at(header.encode_as(&SNAPSHOT_MAGIC), 0)
        .await
        .map_err(err)?;
    let mut at = HEADER_LEN as u64;
    let mut sent = 0u64;
    let keys;
    // Pieces (a slot each) are gathered into writes of about WRITE_BYTES.
    let mut out: Vec<u8> = Vec::with_capacity(WRITE_BYTES + (1 << 20));
    loop {
        let piece = {
            let mut sh = l.shard.borrow_mut();
            let Some(k) = sh.ks.snapshot(cut.id).map(|s| s.keys) else {
                return Err("snapshot aborted by FLUSHALL, FLUSHDB or SWAPDB".into());
            };
            let p = sh.ks.snapshot_piece(cut.id);
            if p.is_none() {
                keys = k;
                break;
            }
            p
        };
        let frame = crate::repl::primary::frame_piece(piece.expect("some"), l.id as u16, sent, lz4);
        sent += frame.len() as u64;
        out.extend_from_slice(&frame);
        if out.len() >= WRITE_BYTES {
            let n = out.len() as u64;
            let full = std::mem::replace(&mut out, Vec::with_capacity(WRITE_BYTES + (1 << 20)));
            f.write_all_at(full, at).await.map_err(err)?;
            at += n;
        }
    }
    drop(guard);
    let mut end = BytesMut::from(&out[..]);
    Frame {
        kind: FrameKind::SnapshotEnd,
        shard: l.id as u16,
        offset: cut.point,
        more: false,
        payload: keys.to_le_bytes().to_vec().into(),
    }
    .encode(&mut end);
    let n = end.len() as u64;
    f.write_all_at(end.to_vec(), at).await.map_err(err)?;
    f.sync_data().await.map_err(err)?;
    Ok((tmp, keys, at + n))
}

/// What a save did.
#[derive(Debug, Clone)]
pub struct Saved {
    pub keys: u64,
    pub bytes: u64,
    pub secs: f64,
}

/// Takes a snapshot of every shard (one at a time per process: `Err` names the one in progress). With
/// `rebase`, every shard's WAL restarts as a new chain on it (a replica after a full sync).
pub async fn save(local: &Rc<Local>, rebase: bool) -> Result<Saved, String> {
    let r = &local.shared.repl;
    if r.saving.swap(true, Ordering::AcqRel) {
        return Err("ERR Background save already in progress".into());
    }
    let t = std::time::Instant::now();
    let res = save_inner(local, rebase).await;
    let r = &local.shared.repl;
    r.last_save_ok.store(res.is_ok(), Ordering::Release);
    if res.is_ok() {
        r.last_save_s
            .store(runtime::now_ms() / 1000, Ordering::Release);
    }
    r.saving.store(false, Ordering::Release);
    match &res {
        Ok(s) => tracing::info!(
            "Snapshot saved: {} keys, {} bytes in {:.3}s",
            s.keys,
            s.bytes,
            t.elapsed().as_secs_f64()
        ),
        Err(e) => tracing::warn!("Snapshot failed: {e}"),
    }
    res
}

async fn save_inner(local: &Rc<Local>, rebase: bool) -> Result<Saved, String> {
    let t = std::time::Instant::now();
    let n = local.nshards();
    let all: Vec<usize> = (0..n).collect();
    if rebase {
        // The old chains end here: wait until no WAL operation is in flight on any shard (nothing is
        // appended to a detached WAL, so once idle it stays idle).
        loop {
            let idle = local
                .broadcast(|sh| sh.wal.as_ref().is_none_or(|w| w.w.idle() || w.failed))
                .await;
            if idle.iter().all(|&x| x) {
                break;
            }
            runtime::sleep(std::time::Duration::from_millis(5)).await;
        }
    }
    let tx = local.begin_tx(all.clone(), false).await;
    let cuts = tx.each(&all, move |sh| sh.begin_save(rebase)).await;
    drop(tx);
    if rebase {
        local.broadcast(|sh| sh.durable_configure()).await;
    }
    let dirty: Vec<u64> = cuts.iter().map(|c| c.dirty).collect();
    let mut parts = Vec::with_capacity(n);
    let mut waits = Vec::with_capacity(n);
    for (i, cut) in cuts.into_iter().enumerate() {
        let point = cut.point;
        waits.push((
            i,
            point,
            local.run_on(i, move |l| async move { write_part(l, cut).await }),
        ));
    }
    for (i, point, w) in waits {
        parts.push((i, point, w.await?));
    }
    let (mut keys, mut bytes) = (0, 0);
    let dir = std::env::current_dir().unwrap_or_default();
    for (i, point, (tmp, k, b)) in parts {
        keys += k;
        bytes += b;
        let files = Files::new(&local.shard.borrow().settings, i);
        std::fs::rename(&tmp, files.snapshot())
            .map_err(|e| format!("renaming {}: {e}", tmp.display()))?;
        sync_dir(&dir).map_err(|e| e.to_string())?;
        delete_covered(&files, point);
    }
    for (i, d) in dirty.into_iter().enumerate() {
        local
            .call(i, crate::shard::mesh::Kind::Normal, move |sh| {
                sh.ks.dirty.saved(d)
            })
            .await;
    }
    Ok(Saved {
        keys,
        bytes,
        secs: t.elapsed().as_secs_f64(),
    })
}

/// Deletes the WAL segments wholly before `point` (the snapshot covers them): every segment whose
/// successor starts at or before it. The newest segment is never deleted.
fn delete_covered(files: &Files, point: u64) {
    let Ok(segs) = files.segments() else { return };
    let mut gone = false;
    for w in segs.windows(2) {
        if w[1].0 <= point {
            match std::fs::remove_file(&w[0].1) {
                Ok(()) => gone = true,
                Err(e) => tracing::warn!("can't delete {}: {e}", w[0].1.display()),
            }
        }
    }
    if gone {
        let _ = sync_dir(&files.wal_dir);
    }
}
