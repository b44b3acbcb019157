//! Recovery's reading of one shard's segments: which units to replay after a snapshot taken at log offset
//! `from`, where the log ends, and what a crash left torn.
//!
//! Rules (docs/persistence.md): segments form one chain, each starting where the previous ended; only the
//! newest may end in a torn unit (the writer closes a segment only synced whole), which is dropped and
//! reported; a torn or corrupt unit anywhere else, a gap, or a chain that does not reach back to `from`
//! is an error naming the segment and the file offset, because acknowledged writes may be behind it.

use super::segment::{scan, Found, Header, ScanError, Scanned, Tail};

/// One segment of the chain, read back.
#[derive(Debug, Clone)]
pub struct Link {
    pub scanned: Scanned,
}

/// The torn unit ending the newest segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Torn {
    /// The segment (by its start offset), the file position of the torn unit and how many bytes after it
    /// are not zero.
    pub seg: u64,
    pub pos: usize,
    pub junk: usize,
    pub offset: u64,
    pub reason: String,
}

#[derive(Debug)]
pub struct Chain {
    /// The newest segment's header: the identity and shard layout the log ends with.
    pub header: Option<Header>,
    pub links: Vec<Link>,
    /// Where the log ends (the offset the next unit gets).
    pub end: u64,
    pub torn: Option<Torn>,
    /// Segments (by start) of a chain based on a snapshot that does not exist: to be deleted.
    pub discarded: Vec<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    #[error("WAL segment {seg}: {err}")]
    Scan { seg: u64, err: ScanError },
    #[error("WAL segment {seg}: torn unit at file offset {pos} before newer segments (log offset {offset}): {reason}")]
    TornInside {
        seg: u64,
        pos: usize,
        offset: u64,
        reason: String,
    },
    #[error(
        "WAL segments are not contiguous: one ends at log offset {end}, the next starts at {next}"
    )]
    Gap { end: u64, next: u64 },
    #[error("the WAL starts at log offset {first} but recovery needs it from {from} (no snapshot covers the rest)")]
    Missing { from: u64, first: u64 },
    #[error(
        "WAL segment {seg} was written by shard {shard} of {shards}, not shard {want} of {want_of}"
    )]
    Layout {
        seg: u64,
        shard: u16,
        shards: u16,
        want: u16,
        want_of: u16,
    },
}

/// Reads segments given as (name's start offset, bytes) of shard `shard` of `shards`, for a replay from
/// `from` (a snapshot's offset, or 0 without one).
pub fn chain(
    segs: &[(u64, &[u8])],
    from: u64,
    shard: u16,
    shards: u16,
) -> Result<Chain, ChainError> {
    let mut links = Vec::with_capacity(segs.len());
    for &(seg, b) in segs {
        let scanned = scan(b).map_err(|err| ChainError::Scan { seg, err })?;
        let h = &scanned.header;
        if h.shard != shard || h.shards != shards {
            return Err(ChainError::Layout {
                seg,
                shard: h.shard,
                shards: h.shards,
                want: shard,
                want_of: shards,
            });
        }
        links.push(Link { scanned });
    }
    links.sort_by_key(|l| l.scanned.header.start);
    // Segments wholly before the snapshot are history it covers (kept only until they are deleted).
    let newest = links.len().saturating_sub(1);
    let mut i = 0;
    links.retain(|l| {
        let keep = l.scanned.end > from || i == newest;
        i += 1;
        keep
    });
    let Some(first) = links.first() else {
        return Ok(Chain {
            header: None,
            links,
            end: from,
            torn: None,
            discarded: Vec::new(),
        });
    };
    if first.scanned.header.start > from && first.scanned.header.based {
        // A chain begun on a snapshot that was never saved (a crash while a replica saved the snapshot
        // of its full sync): it cannot be replayed, and what it held can be synced again.
        let discarded = links.iter().map(|l| l.scanned.header.start).collect();
        return Ok(Chain {
            header: None,
            links: Vec::new(),
            end: from,
            torn: None,
            discarded,
        });
    }
    if first.scanned.header.start > from || first.scanned.end < from {
        return Err(ChainError::Missing {
            from,
            first: first.scanned.header.start,
        });
    }
    for w in links.windows(2) {
        let (a, b) = (&w[0].scanned, &w[1].scanned);
        if let Tail::Torn {
            pos,
            offset,
            reason,
            ..
        } = &a.tail
        {
            return Err(ChainError::TornInside {
                seg: a.header.start,
                pos: *pos,
                offset: *offset,
                reason: reason.clone(),
            });
        }
        if b.header.start != a.end {
            return Err(ChainError::Gap {
                end: a.end,
                next: b.header.start,
            });
        }
    }
    let last = &links.last().expect("not empty").scanned;
    let torn = match &last.tail {
        Tail::Clean => None,
        Tail::Torn {
            pos,
            offset,
            junk,
            reason,
        } => Some(Torn {
            seg: last.header.start,
            pos: *pos,
            junk: *junk,
            offset: *offset,
            reason: reason.clone(),
        }),
    };
    Ok(Chain {
        header: Some(last.header.clone()),
        end: last.end,
        torn,
        links,
        discarded: Vec::new(),
    })
}

impl Chain {
    /// The units to replay (at or after `from`), in log order, with their segment's start offset.
    pub fn units(&self, from: u64) -> impl Iterator<Item = (u64, Found)> + '_ {
        self.links.iter().flat_map(move |l| {
            l.scanned
                .units
                .iter()
                .filter(move |u| u.offset >= from)
                .map(move |u| (l.scanned.header.start, *u))
        })
    }
}
