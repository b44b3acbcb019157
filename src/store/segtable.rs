//! A hash table that grows one segment at a time (extendible hashing), so no insert ever rehashes more than
//! one segment of at most `SEG_MAX_ITEMS` entries: a shard can grow to tens of millions of keys with flat tail
//! latency, where a single hashbrown table stalls for 157 ms at 7.3M entries when it doubles.
//!
//! The directory maps hash bits 24.. (`depth` of them) to segments; each segment is a small hashbrown table.
//! hashbrown itself uses the low bits (bucket) and the top 7 bits (tag), so the directory bits do not bias
//! either. A full segment splits in two by its next directory bit; when its depth equals the directory's,
//! the directory doubles first (a copy of at most a few thousand u32s).

use super::entry::Entry;

/// What a segmented table holds: anything that knows its own key (keyspace entries, and the elements of big
/// hashes and sets).
pub trait Keyed {
    fn key(&self) -> &[u8];
}

impl Keyed for Entry {
    #[inline]
    fn key(&self) -> &[u8] {
        Entry::key(self)
    }
}
use hashbrown::hash_table::{Entry as HEntry, HashTable};
use std::hash::BuildHasher;

/// A segment splits instead of growing past this many entries (hashbrown holds 7/8 of its buckets).
pub const SEG_MAX_ITEMS: usize = 7168;
const DIR_SHIFT: u32 = 24;

pub struct Segment<T = Entry> {
    depth: u32,
    table: HashTable<T>,
}

/// Segment 0 lives inline and the directory stays empty until the first split, so a small table (most
/// slots hold a few thousand keys at most) costs one hashbrown probe with no extra indirection.
pub struct SegTable<T = Entry> {
    hasher: foldhash::fast::FixedState,
    depth: u32,
    /// Empty while depth == 0.
    dir: Vec<u32>,
    head: Segment<T>,
    /// Segments 1.. (index i is at more[i - 1]).
    more: Vec<Segment<T>>,
    len: usize,
    /// A segment splits instead of growing past this many entries.
    seg_max: usize,
}

impl<T: Keyed> Default for Segment<T> {
    fn default() -> Self {
        Segment {
            depth: 0,
            table: HashTable::new(),
        }
    }
}

impl<T: Keyed> SegTable<T> {
    pub fn new(seed: u64) -> Self {
        SegTable {
            hasher: foldhash::fast::FixedState::with_seed(seed),
            depth: 0,
            dir: Vec::new(),
            head: Segment::default(),
            more: Vec::new(),
            len: 0,
            seg_max: SEG_MAX_ITEMS,
        }
    }

    /// A table whose segments split at `seg_max` entries (a big collection's elements use smaller ones,
    /// so that a random pick walks at most one small segment).
    pub fn with_segment_max(seed: u64, seg_max: usize) -> Self {
        SegTable {
            seg_max: seg_max.max(16),
            ..SegTable::new(seed)
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[inline]
    pub fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    #[inline]
    fn seg_of(&self, hash: u64) -> usize {
        if self.depth == 0 {
            return 0;
        }
        let mask = (1u64 << self.depth) - 1;
        self.dir[((hash >> DIR_SHIFT) & mask) as usize] as usize
    }

    #[inline]
    fn seg(&self, i: usize) -> &Segment<T> {
        if i == 0 {
            &self.head
        } else {
            &self.more[i - 1]
        }
    }

    #[inline]
    fn seg_mut(&mut self, i: usize) -> &mut Segment<T> {
        pick(&mut self.head, &mut self.more, i)
    }

    fn segments(&self) -> impl Iterator<Item = &Segment<T>> {
        std::iter::once(&self.head).chain(self.more.iter())
    }

    pub fn get(&self, key: &[u8]) -> Option<&T> {
        self.get_hashed(self.hash(key), key)
    }

    /// Lookup with a hash from `hash()`, so a caller that probes twice hashes once.
    #[inline]
    pub fn get_hashed(&self, h: u64, key: &[u8]) -> Option<&T> {
        self.seg(self.seg_of(h)).table.find(h, |e| e.key() == key)
    }

    pub fn get_mut(&mut self, key: &[u8]) -> Option<&mut T> {
        self.get_mut_hashed(self.hash(key), key)
    }

    #[inline]
    pub fn get_mut_hashed(&mut self, h: u64, key: &[u8]) -> Option<&mut T> {
        let s = self.seg_of(h);
        self.seg_mut(s).table.find_mut(h, |e| e.key() == key)
    }

    /// Inserts or replaces; returns the replaced entry.
    pub fn insert(&mut self, entry: T) -> Option<T> {
        let h = self.hash(entry.key());
        let mut s = self.seg_of(h);
        if let Some(old) = self
            .seg_mut(s)
            .table
            .find_mut(h, |e| e.key() == entry.key())
        {
            return Some(std::mem::replace(old, entry));
        }
        let seg = self.seg(s);
        if seg.table.len() >= self.seg_max && seg.table.len() == seg.table.capacity() {
            self.split(s);
            s = self.seg_of(h);
        }
        let hasher = self.hasher.clone();
        self.seg_mut(s)
            .table
            .insert_unique(h, entry, |e| hasher.hash_one(e.key()));
        self.len += 1;
        None
    }

    pub fn remove(&mut self, key: &[u8]) -> Option<T> {
        let h = self.hash(key);
        let s = self.seg_of(h);
        match pick(&mut self.head, &mut self.more, s)
            .table
            .find_entry(h, |e| e.key() == key)
        {
            Ok(occ) => {
                self.len -= 1;
                Some(occ.remove().0)
            }
            Err(_) => None,
        }
    }

    fn split(&mut self, s: usize) {
        let d = self.seg(s).depth;
        if self.dir.is_empty() {
            self.dir.push(0);
        }
        if d == self.depth {
            // Entry i and i + 2^depth share their low `depth` bits, hence their segment.
            self.dir.extend_from_within(..);
            self.depth += 1;
        }
        let new_idx = self.more.len() as u32 + 1;
        let hasher = self.hasher.clone();
        let old = std::mem::take(&mut self.seg_mut(s).table);
        let half = old.len() / 2 + old.len() / 4;
        let mut low = HashTable::with_capacity(half);
        let mut high = HashTable::with_capacity(half);
        for e in old {
            let h = hasher.hash_one(e.key());
            let t = if (h >> (DIR_SHIFT + d)) & 1 == 0 {
                &mut low
            } else {
                &mut high
            };
            t.insert_unique(h, e, |e| hasher.hash_one(e.key()));
        }
        *self.seg_mut(s) = Segment {
            depth: d + 1,
            table: low,
        };
        self.more.push(Segment {
            depth: d + 1,
            table: high,
        });
        for (i, slot) in self.dir.iter_mut().enumerate() {
            if *slot as usize == s && (i >> d) & 1 == 1 {
                *slot = new_idx;
            }
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.segments().flat_map(|s| s.table.iter())
    }

    /// Every element, mutably. The caller must not change what an element's key hashes to.
    pub fn for_each_mut(&mut self, mut f: impl FnMut(&mut T)) {
        self.head.table.iter_mut().for_each(&mut f);
        for s in &mut self.more {
            s.table.iter_mut().for_each(&mut f);
        }
    }

    /// An element chosen with `r`: a directory entry (segments in proportion to their share of the hash
    /// space, which tracks their share of the elements), then an element of that segment. Costs at most one
    /// segment's walk, never the whole table's.
    pub fn random(&self, r: u64) -> Option<&T> {
        if self.len == 0 {
            return None;
        }
        let n = self.segment_count();
        let mut s = if self.depth == 0 {
            0
        } else {
            self.dir[(r as usize) % self.dir.len()] as usize
        };
        for _ in 0..n {
            let t = &self.seg(s).table;
            if !t.is_empty() {
                return t.iter().nth((r >> 32) as usize % t.len());
            }
            s = (s + 1) % n;
        }
        None
    }

    /// One step of a SCAN (Valkey's reverse-binary cursor, over the directory's bits): calls `f` for
    /// each element whose directory bits are the cursor's, and returns the next cursor (0 once every
    /// bucket was visited). An element present for a whole scan is returned at least once whatever the
    /// table does meanwhile (segments split and never merge, the directory only doubles), and a step
    /// costs one segment's walk, wherever the cursor is.
    pub fn scan_step(&self, cursor: u64, mut f: impl FnMut(&T)) -> u64 {
        let mask: u64 = if self.depth == 0 {
            0
        } else {
            (1 << self.depth) - 1
        };
        let v = cursor & mask;
        let seg = if self.depth == 0 {
            &self.head
        } else {
            self.seg(self.dir[v as usize] as usize)
        };
        for e in seg.table.iter() {
            if mask == 0 || (self.hasher.hash_one(e.key()) >> DIR_SHIFT) & mask == v {
                f(e);
            }
        }
        (cursor | !mask)
            .reverse_bits()
            .wrapping_add(1)
            .reverse_bits()
    }

    pub fn segment_count(&self) -> usize {
        1 + self.more.len()
    }

    /// Keeps the entries of segment `seg` for which `keep` is true; returns how many were removed. Lets the
    /// active expiry cycle work one bounded segment at a time.
    pub fn retain_in_segment(&mut self, seg: usize, mut keep: impl FnMut(&T) -> bool) -> usize {
        if seg >= self.segment_count() {
            return 0;
        }
        let segment = self.seg_mut(seg);
        let before = segment.table.len();
        segment.table.retain(|e| keep(e));
        let removed = before - segment.table.len();
        self.len -= removed;
        removed
    }

    pub fn segment_iter(&self, seg: usize) -> impl Iterator<Item = &T> {
        (seg < self.segment_count())
            .then(|| self.seg(seg))
            .into_iter()
            .flat_map(|s| s.table.iter())
    }

    /// Bytes held by the table itself (buckets and control bytes), excluding the entries' blocks.
    pub fn table_bytes(&self) -> usize {
        self.segments()
            .map(|s| s.table.allocation_size())
            .sum::<usize>()
            + self.dir.capacity() * 4
            + self.more.capacity() * std::mem::size_of::<Segment<T>>()
    }

    /// Uses the hashbrown entry API so a lookup-then-insert hashes and probes once.
    pub fn entry_or_insert_with(&mut self, key: &[u8], make: impl FnOnce() -> T) -> (&mut T, bool) {
        let h = self.hash(key);
        let s = self.seg_of(h);
        let seg = self.seg(s);
        let full = seg.table.len() >= self.seg_max && seg.table.len() == seg.table.capacity();
        if full && seg.table.find(h, |e| e.key() == key).is_none() {
            self.split(s);
        }
        let s = self.seg_of(h);
        let hasher = self.hasher.clone();
        match pick(&mut self.head, &mut self.more, s).table.entry(
            h,
            |e| e.key() == key,
            |e| hasher.hash_one(e.key()),
        ) {
            HEntry::Occupied(o) => (o.into_mut(), false),
            HEntry::Vacant(v) => {
                self.len += 1;
                (v.insert(make()).into_mut(), true)
            }
        }
    }
}

/// Segment `i` by disjoint field borrows, so callers can update `len` while holding it.
#[inline]
fn pick<'a, T>(
    head: &'a mut Segment<T>,
    more: &'a mut [Segment<T>],
    i: usize,
) -> &'a mut Segment<T> {
    if i == 0 {
        head
    } else {
        &mut more[i - 1]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn grows_by_splitting_and_finds_everything() {
        let mut t = SegTable::new(7);
        let n = SEG_MAX_ITEMS * 9 + 123;
        for i in 0..n {
            assert!(t
                .insert(Entry::new(
                    format!("k{i}").as_bytes(),
                    &i.to_le_bytes(),
                    None
                ))
                .is_none());
        }
        assert_eq!(t.len(), n);
        assert!(t.segment_count() >= 9, "segments: {}", t.segment_count());
        for seg in t.segments() {
            assert!(seg.table.len() <= SEG_MAX_ITEMS);
        }
        for i in 0..n {
            assert_eq!(
                t.get(format!("k{i}").as_bytes()).unwrap().value(),
                &i.to_le_bytes()
            );
        }
        assert_eq!(t.iter().count(), n);
        for i in (0..n).step_by(2) {
            assert!(t.remove(format!("k{i}").as_bytes()).is_some());
        }
        assert_eq!(t.len(), n / 2);
        assert!(t.get(b"k0").is_none() && t.get(b"k1").is_some());
    }

    #[test]
    fn behaves_like_a_hashmap() {
        use proptest::prelude::*;
        proptest!(|(ops in prop::collection::vec((0u8..3, 0u16..3000), 1..4000))| {
            let mut t = SegTable::new(1);
            let mut m: HashMap<u16, u16> = HashMap::new();
            for (i, (op, k)) in ops.into_iter().enumerate() {
                let key = k.to_string();
                match op {
                    0 => {
                        let (e, _) = t.entry_or_insert_with(key.as_bytes(), || Entry::new(key.as_bytes(), b"", None));
                        e.set_value(&(i as u16).to_le_bytes(), None);
                        m.insert(k, i as u16);
                    }
                    1 => { prop_assert_eq!(t.remove(key.as_bytes()).is_some(), m.remove(&k).is_some()); }
                    _ => { t.insert(Entry::new(key.as_bytes(), &(i as u16).to_le_bytes(), None)); m.insert(k, i as u16); }
                }
            }
            prop_assert_eq!(t.len(), m.len());
            for (k, v) in &m {
                prop_assert_eq!(t.get(k.to_string().as_bytes()).map(|e| e.value().to_vec()), Some(v.to_le_bytes().to_vec()));
            }
        });
    }
    #[test]
    fn a_scan_returns_every_element_present_throughout_while_the_table_changes() {
        use proptest::prelude::*;
        proptest!(ProptestConfig::with_cases(64), |(
            seed in 0u64..1000,
            start in 0usize..3000,
            churn in prop::collection::vec((any::<bool>(), 0u32..20_000), 0..400),
        )| {
            // Small segments, so that the scan meets splits and directory doublings.
            let mut t = SegTable::with_segment_max(seed, 64);
            let key = |i: u32| format!("k{i}").into_bytes();
            for i in 0..start as u32 {
                t.insert(Entry::new(&key(i), b"", None));
            }
            // Keys below `start` that the churn never removes are present for the whole scan.
            let removed: std::collections::HashSet<u32> =
                churn.iter().filter(|(ins, _)| !ins).map(|(_, k)| *k).collect();
            let mut seen = std::collections::HashSet::new();
            let (mut cursor, mut steps, mut churn) = (0u64, 0usize, churn.into_iter());
            loop {
                cursor = t.scan_step(cursor, |e| { seen.insert(e.key().to_vec()); });
                steps += 1;
                // Between steps: up to three inserts or removes.
                for (ins, k) in churn.by_ref().take(3) {
                    if ins { t.insert(Entry::new(&key(k), b"", None)); } else { t.remove(&key(k)); }
                }
                if cursor == 0 { break; }
                prop_assert!(steps < 1_000_000);
            }
            for i in (0..start as u32).filter(|i| !removed.contains(i)) {
                prop_assert!(seen.contains(&key(i)), "k{} was present throughout and not returned", i);
            }
        });
    }
}
