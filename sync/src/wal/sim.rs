//! A storage backend that fails on purpose, for crash tests of the writer and recovery (as redb tests its
//! own): it performs the writer's operations on in-memory files and models what a disk and an OS may do:
//! fail or tear the Nth write, fail the Nth sync (after which any prefix of the unsynced writes may or may
//! not have reached the platter, as Linux's fsync errors allow), fail the Nth segment creation, and at a
//! power cut keep only what was synced plus any in-order prefix of the rest, the last write possibly
//! cut at any byte.

use super::writer::Op;
use std::collections::BTreeMap;

/// Which operations fail (1-based counts over the disk's life).
#[derive(Debug, Clone, Default)]
pub struct Faults {
    pub fail_write: Option<u64>,
    /// The Nth write puts a prefix of its bytes in the cache, then fails.
    pub tear_write: Option<u64>,
    pub fail_sync: Option<u64>,
    pub fail_create: Option<u64>,
}

#[derive(Debug, Clone, Default)]
pub struct SimFile {
    /// What survives a power cut for sure.
    pub durable: Vec<u8>,
    /// What a read sees now (the page cache).
    pub cache: Vec<u8>,
    /// Writes since the last successful sync, in order: (position, bytes).
    unsynced: Vec<(usize, Vec<u8>)>,
}

#[derive(Debug)]
pub struct SimDisk {
    pub files: BTreeMap<u64, SimFile>,
    pub faults: Faults,
    pub writes: u64,
    pub syncs: u64,
    pub creates: u64,
    rng: u64,
}

fn put(buf: &mut Vec<u8>, pos: usize, data: &[u8]) {
    if buf.len() < pos + data.len() {
        buf.resize(pos + data.len(), 0);
    }
    buf[pos..pos + data.len()].copy_from_slice(data);
}

impl SimDisk {
    pub fn new(seed: u64, faults: Faults) -> Self {
        SimDisk {
            files: BTreeMap::new(),
            faults,
            writes: 0,
            syncs: 0,
            creates: 0,
            rng: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
        }
    }

    fn rand(&mut self, n: u64) -> u64 {
        // xorshift64*: deterministic per seed.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D) % n.max(1)
    }

    /// Performs `op` as a disk would, with the configured faults.
    pub fn apply(&mut self, op: &Op) -> Result<(), String> {
        self.start(op)?;
        self.finish(op)
    }

    /// The part of `op` that happens when it is issued: a write reaches the cache (the whole of any
    /// other operation happens here).
    pub fn start(&mut self, op: &Op) -> Result<(), String> {
        match op {
            Op::Create { seg, header, size } => {
                self.creates += 1;
                if self.faults.fail_create == Some(self.creates) {
                    return Err("injected: create failed".into());
                }
                let mut b = header.clone();
                b.resize(*size as usize, 0);
                self.files.insert(
                    *seg,
                    SimFile {
                        durable: b.clone(),
                        cache: b,
                        unsynced: Vec::new(),
                    },
                );
                Ok(())
            }
            Op::Write { seg, pos, data, .. } => self.write(*seg, *pos as usize, data),
            Op::Sync { seg } => self.sync(*seg),
            Op::Zero { seg, pos, len } => {
                self.write(*seg, *pos as usize, &vec![0; *len as usize])?;
                self.sync(*seg)
            }
        }
    }

    /// The part of `op` that happens when it completes: a durable write's sync.
    pub fn finish(&mut self, op: &Op) -> Result<(), String> {
        match op {
            // O_DSYNC makes this write's own bytes durable, not the file's.
            Op::Write {
                seg,
                pos,
                data,
                sync: true,
            } => {
                self.syncs += 1;
                let f = self.files.get_mut(seg).ok_or("no such segment")?;
                if self.faults.fail_sync == Some(self.syncs) {
                    return Err("injected: durable write failed".into());
                }
                let p = *pos as usize;
                // Only if the cache still holds these bytes (nothing erased them since).
                if f.cache.get(p..p + data.len()) == Some(&data[..]) {
                    put(&mut f.durable, p, data);
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn write(&mut self, seg: u64, pos: usize, data: &[u8]) -> Result<(), String> {
        self.writes += 1;
        let n = self.writes;
        if self.faults.fail_write == Some(n) {
            return Err("injected: write failed".into());
        }
        let torn = self.faults.tear_write == Some(n);
        let keep = if torn {
            self.rand(data.len() as u64) as usize
        } else {
            data.len()
        };
        let f = self.files.get_mut(&seg).ok_or("no such segment")?;
        put(&mut f.cache, pos, &data[..keep]);
        f.unsynced.push((pos, data[..keep].to_vec()));
        if torn {
            return Err("injected: torn write".into());
        }
        Ok(())
    }

    fn sync(&mut self, seg: u64) -> Result<(), String> {
        self.syncs += 1;
        if self.faults.fail_sync == Some(self.syncs) {
            // Any prefix of what was written may have reached the disk anyway.
            let k = self.rand(self.files[&seg].unsynced.len() as u64 + 1) as usize;
            let f = self.files.get_mut(&seg).ok_or("no such segment")?;
            for (pos, d) in &f.unsynced[..k] {
                put(&mut f.durable, *pos, d);
            }
            return Err("injected: sync failed".into());
        }
        let f = self.files.get_mut(&seg).ok_or("no such segment")?;
        f.durable = f.cache.clone();
        f.unsynced.clear();
        Ok(())
    }

    /// Power is lost: each file keeps what was synced, then an in-order prefix of its unsynced writes,
    /// the last of them possibly cut.
    pub fn power_cut(&mut self) {
        let segs: Vec<u64> = self.files.keys().copied().collect();
        for seg in segs {
            let n = self.files[&seg].unsynced.len() as u64;
            let k = self.rand(n + 1) as usize;
            let cut = self.rand(u64::MAX);
            let f = self.files.get_mut(&seg).expect("listed");
            let mut b = f.durable.clone();
            for (i, (pos, d)) in f.unsynced.iter().enumerate().take(k) {
                let d = if i + 1 == k {
                    &d[..(cut % (d.len() as u64 + 1)) as usize]
                } else {
                    &d[..]
                };
                put(&mut b, *pos, d);
            }
            f.durable = b.clone();
            f.cache = b;
            f.unsynced.clear();
        }
    }
}
