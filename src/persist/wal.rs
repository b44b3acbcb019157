//! A shard's WAL driver: a task of the shard's runtime that performs what the shard's writer
//! (tandem_sync::wal::Writer) asks, one operation at a time, through io_uring, and reports back. While a
//! write and its `fdatasync` are on the disk, units sealed meanwhile gather in the writer and the next
//! write takes them all (group commit: one sync per turn, however many clients wait on it).
//!
//! Segments are created full-size and zero-filled (so a sync commits data blocks only); the next one is
//! prepared in the background as `spare` while the current one fills, so rolling to it costs a rename.
//!
//! Invariants: the writer learns of every operation's outcome; a failure is logged once, refuses writes
//! process-wide (`-MISCONF`), and only after the writer erased what never became durable do waiting
//! clients get their error (shard/wal.rs).

use super::files::Files;
use crate::runtime::file::{sync_dir, File};
use crate::runtime::{self, Local};
use futures_util::future::select;
use std::cell::Cell;
use std::path::Path;
use std::pin::pin;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tandem_sync::wal::writer::Ticket;
use tandem_sync::wal::{Fsync, Op};

/// Test-only fault injection (DEBUG WAL-FAIL): the next write or sync fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inject {
    Write,
    Sync,
}

const ZEROS: usize = 1 << 20;

/// Writes a zero-filled file of `size` bytes at `path` and syncs it.
async fn zero_file(path: &Path, size: u64) -> std::io::Result<()> {
    let f = File::create(path).await?;
    let mut at = 0;
    while at < size {
        let n = (size - at).min(ZEROS as u64) as usize;
        f.write_all_at(vec![0; n], at).await?;
        at += n as u64;
    }
    f.sync_data().await
}

/// The open segment: its start, a handle for plain writes and syncs, and one for durable writes.
struct Open {
    seg: u64,
    f: File,
    dsync: File,
    size: u64,
}

impl Open {
    async fn open(seg: u64, path: &Path) -> std::io::Result<Open> {
        Ok(Open {
            seg,
            f: File::open_rw(path).await?,
            dsync: File::open_dsync(path).await?,
            size: std::fs::metadata(path)?.len(),
        })
    }
}

struct Driver {
    files: Files,
    cur: Option<Rc<Open>>,
    /// The spare segment's size once it is ready on disk; 0 while it is being made or absent.
    spare: Rc<Cell<u64>>,
    making_spare: Rc<Cell<bool>>,
}

fn injected() -> std::io::Error {
    std::io::Error::other("injected failure (DEBUG WAL-FAIL)")
}

/// Performs a write on the open segment `o`.
async fn write(o: Rc<Open>, op: Op, inject: Option<Inject>) -> std::io::Result<()> {
    let Op::Write {
        pos, data, sync, ..
    } = op
    else {
        unreachable!("only writes run concurrently")
    };
    if inject == Some(Inject::Write) || (sync && inject == Some(Inject::Sync)) {
        // A failed write may still have put some of its bytes on the disk.
        let half = data[..data.len() / 2].to_vec();
        let _ = o.f.write_all_at(half, pos).await;
        return Err(injected());
    }
    let f = if sync { &o.dsync } else { &o.f };
    f.write_all_at(data, pos).await
}

impl Driver {
    /// Performs an operation that runs alone (the writer issues nothing else meanwhile).
    async fn perform(&mut self, op: Op, inject: Option<Inject>) -> std::io::Result<()> {
        match op {
            Op::Create { seg, header, size } => {
                let path = self.files.segment(seg);
                // A spare still being made is waited for (it was started a whole segment ago).
                while self.making_spare.get() {
                    runtime::sleep(Duration::from_millis(1)).await;
                }
                if self.spare.get() >= size {
                    std::fs::rename(self.files.spare(), &path)?;
                    self.spare.set(0);
                } else {
                    let tmp = self.files.spare();
                    zero_file(&tmp, size).await?;
                    std::fs::rename(&tmp, &path)?;
                }
                let o = Open::open(seg, &path).await?;
                o.dsync.write_all_at(header, 0).await?;
                sync_dir(&self.files.wal_dir)?;
                self.cur = Some(Rc::new(o));
                Ok(())
            }
            Op::Write { .. } => write(self.file(&op)?, op, inject).await,
            Op::Sync { .. } => {
                if inject == Some(Inject::Sync) {
                    return Err(injected());
                }
                self.file(&op)?.f.sync_data().await
            }
            Op::Zero { pos, len, .. } => {
                self.file(&op)?
                    .dsync
                    .write_all_at(vec![0; len as usize], pos)
                    .await
            }
        }
    }

    fn file(&self, op: &Op) -> std::io::Result<Rc<Open>> {
        let seg = match op {
            Op::Write { seg, .. } | Op::Sync { seg } | Op::Zero { seg, .. } => *seg,
            Op::Create { seg, .. } => *seg,
        };
        match &self.cur {
            Some(o) if o.seg == seg => Ok(o.clone()),
            _ => Err(std::io::Error::other(format!("segment {seg} is not open"))),
        }
    }

    /// Prepares the next segment in the background, once the current one is half full.
    fn maybe_make_spare(&self, pos: u64, size: u64) {
        if self.making_spare.get() || self.spare.get() >= size || pos < size / 2 {
            return;
        }
        let (path, spare, making) = (
            self.files.spare(),
            self.spare.clone(),
            self.making_spare.clone(),
        );
        making.set(true);
        runtime::spawn(async move {
            match zero_file(&path, size).await {
                Ok(()) => spare.set(size),
                Err(e) => tracing::warn!("WAL: preparing the next segment failed: {e}"),
            }
            making.set(false);
        })
        .detach();
    }
}

/// Records an operation's outcome with the writer, and acts on what it changed.
fn complete(
    local: &Local,
    ticket: Ticket,
    r: std::io::Result<()>,
    kind: Option<(bool, u64)>,
    us: u64,
) {
    let mut sh = local.shard.borrow_mut();
    if let (Some(w), Some((sync, bytes))) = (sh.wal.as_mut(), kind) {
        let st = &mut w.stats;
        if sync {
            st.syncs += 1;
            st.sync_us += us;
            st.sync_max_us = st.sync_max_us.max(us);
        }
        if bytes > 0 {
            st.writes += 1;
            st.bytes += bytes;
            st.write_us += us;
        }
    }
    let p = sh.wal_done(ticket, r.map_err(|e| e.to_string()), runtime::mono_ms());
    drop(sh);
    if p.synced {
        local.journal.notify();
    }
    if let Some(e) = p.failed {
        report_failure(local, &e);
    }
    // The driver may issue more now.
    local.wal.notify();
}

/// Runs shard `local`'s WAL until shutdown, then writes and syncs everything it holds.
pub async fn run(local: Rc<Local>, files: Files, cur: Option<(u64, std::path::PathBuf)>) {
    let _ = std::fs::remove_file(files.spare());
    let cur = match cur {
        Some((seg, path)) => match Open::open(seg, &path).await {
            Ok(o) => Some(Rc::new(o)),
            Err(e) => {
                tracing::error!("Can't open WAL segment {}: {e}", path.display());
                std::process::exit(1);
            }
        },
        None => None,
    };
    let mut d = Driver {
        files,
        cur,
        spare: Rc::new(Cell::new(0)),
        making_spare: Rc::new(Cell::new(false)),
    };
    loop {
        let seen = local.wal.generation();
        let now = runtime::mono_ms();
        let shutdown = local.shared.shutdown.load(Ordering::Acquire);
        let (next, idle, pending) = {
            let mut sh = local.shard.borrow_mut();
            let Some(wal) = sh.wal.as_mut() else { return };
            if shutdown {
                // Everything written is synced before the process exits, whatever the policy.
                wal.w.set_fsync(Fsync::Always);
            }
            let next = wal.w.poll(now);
            let inject = match &next {
                Some((_, Op::Write { .. } | Op::Sync { .. })) => wal.inject.take(),
                _ => None,
            };
            (
                next.map(|(t, op)| (t, op, inject)),
                wal.w.idle(),
                wal.w.has_pending(),
            )
        };
        let Some((ticket, op, inject)) = next else {
            if shutdown && idle {
                local.wal_idle.notify();
                return;
            }
            // Woken by new units or a completion; the timer serves units being gathered, everysec's
            // sync and a failed undo's retry.
            let ms = if pending {
                tandem_sync::wal::writer::GATHER_MS
            } else {
                100
            };
            let _ = select(
                pin!(local.wal.wait_since(seen)),
                pin!(runtime::sleep(Duration::from_millis(ms))),
            )
            .await;
            continue;
        };
        let kind = match &op {
            Op::Write { data, sync, .. } => Some((*sync, data.len() as u64)),
            Op::Sync { .. } => Some((true, 0)),
            _ => None,
        };
        if let (Op::Write { pos, .. }, Some(o)) = (&op, &d.cur) {
            d.maybe_make_spare(*pos, o.size);
        }
        let t = std::time::Instant::now();
        if let Op::Write { .. } = op {
            // Writes run concurrently (the writer bounds how many): the loop goes on issuing.
            let file = d.file(&op);
            let l = local.clone();
            runtime::spawn(async move {
                let r = match file {
                    Ok(o) => write(o, op, inject).await,
                    Err(e) => Err(e),
                };
                complete(&l, ticket, r, kind, t.elapsed().as_micros() as u64);
            })
            .detach();
            continue;
        }
        let r = d.perform(op, inject).await;
        complete(&local, ticket, r, kind, t.elapsed().as_micros() as u64);
    }
}

/// A write or sync failed: logged, and writes are refused everywhere from now on.
fn report_failure(local: &Local, e: &str) {
    tracing::error!(
        "shard {}: writing the WAL failed: {e}. Writes are refused (MISCONF) until a restart; \
         writes not yet on disk are reported as failed and will not be recovered",
        local.id
    );
    let r = &local.shared.repl;
    let _ = r.wal_error.set(e.to_string());
    let settings = local.shard.borrow().settings.clone();
    crate::repl::gate::update(&local.shared, &settings);
}

/// Waits until this shard's WAL has written and synced everything (at shutdown; the driver syncs
/// regardless of the policy once the shutdown flag is set).
pub async fn drain(local: &Local) {
    loop {
        let idle = local
            .shard
            .borrow()
            .wal
            .as_ref()
            .is_none_or(|w| w.w.idle() || w.failed);
        if idle {
            return;
        }
        let seen = local.wal_idle.generation();
        local.wal.notify();
        let _ = select(
            pin!(local.wal_idle.wait_since(seen)),
            pin!(runtime::sleep(Duration::from_millis(10))),
        )
        .await;
    }
}

/// MISCONF's text for a write refused after a WAL failure (Valkey's wording for its AOF).
pub fn misconf(e: &str) -> String {
    format!("MISCONF Errors writing to the WAL: {e}; writes are refused until the server restarts")
}
