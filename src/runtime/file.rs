//! Files through the shard's io_uring (compio): positioned writes and `fdatasync` for the WAL, so a sync
//! in flight never blocks the shard thread. Directory syncs and renames are rare (a segment a few times a
//! minute at most) and use std.

use compio::io::AsyncWriteAtExt;
use std::io;
use std::path::Path;

pub struct File(compio::fs::File);

impl File {
    /// Opens an existing file for reading and writing.
    pub async fn open_rw(path: &Path) -> io::Result<File> {
        let f = compio::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .await?;
        Ok(File(f))
    }

    /// Opens an existing file for writes that complete only once on stable storage (`O_DSYNC`): a write
    /// and its `fdatasync` in one operation.
    pub async fn open_dsync(path: &Path) -> io::Result<File> {
        let f = compio::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_DSYNC)
            .open(path)
            .await?;
        Ok(File(f))
    }

    /// Creates (or truncates) a file for writing.
    pub async fn create(path: &Path) -> io::Result<File> {
        Ok(File(compio::fs::File::create(path).await?))
    }

    pub async fn write_all_at(&self, data: Vec<u8>, pos: u64) -> io::Result<()> {
        let mut f = &self.0;
        let compio::BufResult(r, _) = f.write_all_at(data, pos).await;
        r
    }

    pub async fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data().await
    }
}

/// Makes a directory's entries (a created, renamed or removed file) durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}
