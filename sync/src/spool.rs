//! The replica's buffer for one flow's journal while that flow's snapshot is still loading: in memory up to
//! a limit, then appended to a temporary file, and replayed in arrival order once the snapshot is loaded.
//! This is what moves the buffering of a full sync's concurrent writes from the primary (where Redis keeps
//! it in a replica output buffer whose limit makes syncs loop) to the replica, where it is bounded only by
//! disk.
//!
//! Invariant: pieces come out in the order they went in; once anything went to the file, every later piece
//! goes there too until the spool is drained. File I/O is plain blocking `std::fs` on purpose: it happens
//! only during a full sync, on the page cache, in pieces of at most one frame.

use bytes::Bytes;
use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

pub struct Spool {
    mem: VecDeque<(u64, Bytes)>,
    mem_bytes: usize,
    limit: usize,
    dir: PathBuf,
    name: String,
    file: Option<SpoolFile>,
    /// Bytes ever buffered (memory and file), for INFO.
    pub total_bytes: u64,
}

struct SpoolFile {
    path: PathBuf,
    writer: Option<BufWriter<File>>,
    reader: Option<BufReader<File>>,
    pending: usize,
    bytes: u64,
}

impl Spool {
    /// `name` must be unique among the spools of `dir` (the caller uses its run id and flow number).
    pub fn new(limit: usize, dir: &Path, name: String) -> Self {
        Spool {
            mem: VecDeque::new(),
            mem_bytes: 0,
            limit,
            dir: dir.to_path_buf(),
            name,
            file: None,
            total_bytes: 0,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.mem.is_empty() && self.file.as_ref().is_none_or(|f| f.pending == 0)
    }

    pub fn memory_bytes(&self) -> usize {
        self.mem_bytes
    }

    pub fn file_bytes(&self) -> u64 {
        self.file.as_ref().map_or(0, |f| f.bytes)
    }

    pub fn push(&mut self, offset: u64, data: Bytes) -> io::Result<()> {
        self.total_bytes += data.len() as u64;
        if self.file.is_none() && self.mem_bytes + data.len() <= self.limit {
            self.mem_bytes += data.len();
            self.mem.push_back((offset, data));
            return Ok(());
        }
        if self.file.is_none() {
            let path = self
                .dir
                .join(format!("temp-tandem-sync-{}.spool", self.name));
            let f = File::options()
                .create(true)
                .truncate(true)
                .read(true)
                .write(true)
                .open(&path)?;
            // A second open, not a dup: reader and writer need file positions of their own.
            let r = File::open(&path)?;
            self.file = Some(SpoolFile {
                reader: Some(BufReader::new(r)),
                writer: Some(BufWriter::with_capacity(1 << 20, f)),
                path,
                pending: 0,
                bytes: 0,
            });
        }
        let f = self.file.as_mut().expect("opened above");
        let w = f.writer.as_mut().expect("writer lives until drop");
        w.write_all(&offset.to_le_bytes())?;
        w.write_all(&(data.len() as u32).to_le_bytes())?;
        w.write_all(&data)?;
        f.pending += 1;
        f.bytes += data.len() as u64;
        Ok(())
    }

    /// The oldest piece, if any.
    pub fn pop(&mut self) -> io::Result<Option<(u64, Bytes)>> {
        if let Some((o, d)) = self.mem.pop_front() {
            self.mem_bytes -= d.len();
            return Ok(Some((o, d)));
        }
        let Some(f) = self.file.as_mut().filter(|f| f.pending > 0) else {
            return Ok(None);
        };
        f.writer.as_mut().expect("writer").flush()?;
        let r = f.reader.as_mut().expect("reader");
        let mut head = [0u8; 12];
        r.read_exact(&mut head)?;
        let offset = u64::from_le_bytes(head[..8].try_into().expect("8"));
        let len = u32::from_le_bytes(head[8..].try_into().expect("4")) as usize;
        let mut data = vec![0u8; len];
        r.read_exact(&mut data)?;
        f.pending -= 1;
        Ok(Some((offset, Bytes::from(data))))
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        if let Some(f) = self.file.take() {
            drop(f.writer);
            drop(f.reader);
            let _ = std::fs::remove_file(&f.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("tandem-spool-{}-{tag}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn spills_to_a_file_and_removes_it() {
        let dir = tmpdir("spill");
        let mut s = Spool::new(10, &dir, "t".into());
        s.push(0, Bytes::from_static(b"12345")).unwrap();
        s.push(5, Bytes::from_static(b"6789")).unwrap();
        assert_eq!(s.file_bytes(), 0);
        s.push(9, Bytes::from_static(b"abc")).unwrap();
        s.push(12, Bytes::from_static(b"d")).unwrap();
        assert_eq!((s.memory_bytes(), s.file_bytes()), (9, 4));
        let path = dir.join("temp-tandem-sync-t.spool");
        assert!(path.exists());
        let mut got = Vec::new();
        while let Some((o, d)) = s.pop().unwrap() {
            got.push((o, d.to_vec()));
        }
        assert_eq!(
            got,
            vec![
                (0, b"12345".to_vec()),
                (5, b"6789".to_vec()),
                (9, b"abc".to_vec()),
                (12, b"d".to_vec())
            ]
        );
        assert!(s.is_empty());
        drop(s);
        assert!(!path.exists());
    }

    proptest! {
        #[test]
        fn order_is_kept_across_memory_and_file(pieces in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..50), 0..40), limit in 0usize..200, pops in prop::collection::vec(any::<bool>(), 0..80)) {
            let dir = tmpdir("prop");
            let mut s = Spool::new(limit, &dir, format!("p{limit}"));
            let mut want = std::collections::VecDeque::new();
            let mut it = pieces.into_iter().enumerate();
            for pop in pops {
                if pop {
                    let got = s.pop().unwrap().map(|(o, d)| (o, d.to_vec()));
                    prop_assert_eq!(got, want.pop_front());
                } else if let Some((i, p)) = it.next() {
                    s.push(i as u64, Bytes::from(p.clone())).unwrap();
                    want.push_back((i as u64, p));
                }
            }
            while let Some(w) = want.pop_front() {
                prop_assert_eq!(s.pop().unwrap().map(|(o, d)| (o, d.to_vec())), Some(w));
            }
            prop_assert!(s.is_empty());
        }
    }
}
