//! A key and its string value in one heap block, referenced by a thin pointer.
//!
//! Layout (little-endian): `flags: u8 | lru: u24 (seconds) | key_len: u32 | val_len: u32 | [expire_at_ms: u64 if HAS_EXPIRE] | key |
//! value`. One allocation per key and an 8-byte handle in the table is what keeps a key near 140 bytes of
//! memory for a 100-byte value (see docs/memory.md). Integers are stored as their decimal text: they are short
//! and live inline in the block, so they need no allocation of their own either.
//!
//! A collection (hash, list, set, sorted set) keeps the same block with its type in flag bits 1-3 and, as
//! its 8-byte value, the address of its `Coll` (boxed): the entry owns it and frees it when dropped (a big
//! one on a background thread, so DEL of a million-element hash does not stall the shard).
//!
//! Invariant: `ptr` always points to a live block whose header describes its own length exactly; every
//! constructor writes the header first and every accessor derives slices from it. A block whose type bits
//! are not 0 holds exactly 8 value bytes: a pointer from `Box::into_raw`, owned by this entry alone.

use std::alloc::{alloc, dealloc, handle_alloc_error, Layout};
use std::ptr::NonNull;

use super::types::Coll;

const HAS_EXPIRE: u8 = 1;
const TYPE_SHIFT: u8 = 1;
const TYPE_MASK: u8 = 0b1110;
/// A string last written in place (APPEND, SETRANGE, SETBIT, BITFIELD): OBJECT ENCODING says "raw", as
/// Valkey does for a string it modified in place, whatever the bytes.
const RAW: u8 = 0b1_0000;
/// Collections with more elements than this are freed on a background thread.
const LAZYFREE_MIN: usize = 1024;
const HEADER: usize = 12;
/// The LRU clock wraps every 2^24 seconds (194 days), as Valkey's does.
pub const LRU_MASK: u32 = (1 << 24) - 1;

pub struct Entry {
    ptr: NonNull<u8>,
}

// SAFETY: an Entry uniquely owns its block, like a Box<[u8]>. It is deliberately not Sync: `touch` writes
// the access clock through `&self`.
unsafe impl Send for Entry {}

impl Entry {
    /// Asks the CPU to start loading the block (snapshot walks, whose other work would otherwise wait on
    /// one cache miss per key).
    #[inline]
    pub fn prefetch(&self) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: prefetching is a hint; the address is that of a live block.
        unsafe {
            std::arch::x86_64::_mm_prefetch(
                self.ptr.as_ptr() as *const i8,
                std::arch::x86_64::_MM_HINT_T0,
            )
        };
    }

    pub fn new(key: &[u8], value: &[u8], expire_at: Option<u64>) -> Entry {
        Self::build(key, &[value], expire_at)
    }

    /// Builds an entry whose value is the concatenation of `parts` (APPEND, SETRANGE), in one allocation.
    pub fn build(key: &[u8], parts: &[&[u8]], expire_at: Option<u64>) -> Entry {
        Self::build_kind(0, key, parts, expire_at)
    }

    /// A collection's entry: the entry owns `coll` from now on.
    pub fn with_coll(key: &[u8], coll: Coll, expire_at: Option<u64>) -> Entry {
        let kind = coll.kind();
        let raw = Box::into_raw(Box::new(coll)) as usize;
        Self::build_kind(kind, key, &[&raw.to_le_bytes()], expire_at)
    }

    fn build_kind(kind: u8, key: &[u8], parts: &[&[u8]], expire_at: Option<u64>) -> Entry {
        let val_len: usize = parts.iter().map(|p| p.len()).sum();
        let ext = if expire_at.is_some() { 8 } else { 0 };
        let size = HEADER + ext + key.len() + val_len;
        assert!(
            key.len() <= u32::MAX as usize && val_len <= u32::MAX as usize,
            "entry too large"
        );
        let layout = Layout::from_size_align(size, 1).expect("layout");
        // SAFETY: size >= HEADER > 0; every byte of the block is written below before it is read.
        unsafe {
            let p = alloc(layout);
            let Some(ptr) = NonNull::new(p) else {
                handle_alloc_error(layout)
            };
            *p = (kind << TYPE_SHIFT) | if expire_at.is_some() { HAS_EXPIRE } else { 0 };
            p.add(1).cast::<[u8; 3]>().write([0; 3]);
            p.add(4)
                .cast::<[u8; 4]>()
                .write((key.len() as u32).to_le_bytes());
            p.add(8)
                .cast::<[u8; 4]>()
                .write((val_len as u32).to_le_bytes());
            let mut off = HEADER;
            if let Some(t) = expire_at {
                p.add(off).cast::<[u8; 8]>().write(t.to_le_bytes());
                off += 8;
            }
            std::ptr::copy_nonoverlapping(key.as_ptr(), p.add(off), key.len());
            off += key.len();
            for part in parts {
                std::ptr::copy_nonoverlapping(part.as_ptr(), p.add(off), part.len());
                off += part.len();
            }
            Entry { ptr }
        }
    }

    fn header(&self) -> (u8, usize, usize) {
        // SAFETY: the header's 9 bytes are always initialised (type invariant).
        unsafe {
            let p = self.ptr.as_ptr();
            let k = u32::from_le_bytes(p.add(4).cast::<[u8; 4]>().read());
            let v = u32::from_le_bytes(p.add(8).cast::<[u8; 4]>().read());
            (*p, k as usize, v as usize)
        }
    }

    fn data_offset(flags: u8) -> usize {
        HEADER + if flags & HAS_EXPIRE != 0 { 8 } else { 0 }
    }

    pub fn key(&self) -> &[u8] {
        let (flags, k, _) = self.header();
        // SAFETY: the block holds k key bytes at this offset (type invariant).
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr().add(Self::data_offset(flags)), k) }
    }

    /// Marks a string as modified in place (its OBJECT ENCODING becomes "raw" until it is rewritten).
    pub fn mark_raw(&mut self) {
        if self.kind() == 0 {
            // SAFETY: the flags byte is always initialised; only the RAW bit changes.
            unsafe { *self.ptr.as_ptr() |= RAW }
        }
    }

    pub fn is_raw(&self) -> bool {
        self.header().0 & RAW != 0
    }

    /// The type code (`store::types`): 0 for a string.
    #[inline]
    pub fn kind(&self) -> u8 {
        (self.header().0 & TYPE_MASK) >> TYPE_SHIFT
    }

    fn coll_ptr(&self) -> Option<*mut Coll> {
        (self.kind() != 0).then(|| {
            let raw: [u8; 8] = self.raw_value().try_into().expect("8 value bytes");
            usize::from_le_bytes(raw) as *mut Coll
        })
    }

    pub fn coll(&self) -> Option<&Coll> {
        // SAFETY: a collection's value bytes are the address of a live Box<Coll> this entry owns.
        self.coll_ptr().map(|p| unsafe { &*p })
    }

    pub fn coll_mut(&mut self) -> Option<&mut Coll> {
        // SAFETY: as for coll(); &mut self makes the access unique.
        self.coll_ptr().map(|p| unsafe { &mut *p })
    }

    /// A string's bytes; empty for a collection (whose bytes are a pointer no caller may see). Commands
    /// check `kind()` first and answer WRONGTYPE.
    pub fn value(&self) -> &[u8] {
        if self.kind() != 0 {
            return &[];
        }
        self.raw_value()
    }

    fn raw_value(&self) -> &[u8] {
        let (flags, k, v) = self.header();
        // SAFETY: as for key().
        unsafe {
            std::slice::from_raw_parts(self.ptr.as_ptr().add(Self::data_offset(flags) + k), v)
        }
    }

    /// The value's bytes for an in-place overwrite of the same length (SET of a same-size value, SETRANGE).
    pub fn value_mut(&mut self) -> &mut [u8] {
        assert_eq!(self.kind(), 0, "value_mut of a collection");
        let (flags, k, v) = self.header();
        // SAFETY: as for key(); &mut self makes the access unique.
        unsafe {
            std::slice::from_raw_parts_mut(self.ptr.as_ptr().add(Self::data_offset(flags) + k), v)
        }
    }

    pub fn expire_at(&self) -> Option<u64> {
        let (flags, _, _) = self.header();
        if flags & HAS_EXPIRE == 0 {
            return None;
        }
        // SAFETY: HAS_EXPIRE means 8 bytes of expiry follow the header.
        Some(u64::from_le_bytes(unsafe {
            self.ptr.as_ptr().add(HEADER).cast::<[u8; 8]>().read()
        }))
    }

    /// Changes the expiry. Adding or removing it changes the block's layout, so that rebuilds the block;
    /// changing an existing one writes in place.
    pub fn set_expire(&mut self, expire_at: Option<u64>) {
        match (self.expire_at(), expire_at) {
            (Some(_), Some(t)) => {
                // SAFETY: HAS_EXPIRE is set, so the 8 bytes exist.
                unsafe {
                    self.ptr
                        .as_ptr()
                        .add(HEADER)
                        .cast::<[u8; 8]>()
                        .write(t.to_le_bytes())
                }
            }
            (None, None) => {}
            _ => {
                let lru = self.lru();
                let new = Self::build_kind(self.kind(), self.key(), &[self.raw_value()], expire_at);
                new.touch(lru as u64);
                // The new block took over the collection's pointer: the old block goes without it.
                std::mem::replace(self, new).free_block_only();
            }
        }
    }

    /// The same value under another key (RENAME): a collection moves, it is not copied.
    pub fn rekey(self, key: &[u8]) -> Entry {
        let new = Self::build_kind(self.kind(), key, &[self.raw_value()], self.expire_at());
        new.touch(self.lru() as u64);
        self.free_block_only();
        new
    }

    /// A copy of the value under another key (COPY).
    pub fn clone_as(&self, key: &[u8]) -> Entry {
        match self.coll() {
            Some(c) => Entry::with_coll(key, c.clone(), self.expire_at()),
            None => Entry::new(key, self.value(), self.expire_at()),
        }
    }

    /// Frees the block and not what a collection's pointer owns (it moved to another block).
    fn free_block_only(self) {
        let this = std::mem::ManuallyDrop::new(self);
        let layout = Layout::from_size_align(this.block_size(), 1).expect("layout");
        // SAFETY: the block was allocated with exactly this layout; `this` is never used again.
        unsafe { dealloc(this.ptr.as_ptr(), layout) }
    }

    /// Replaces the value, keeping the expiry unless `expire_at` says otherwise.
    pub fn set_value(&mut self, value: &[u8], expire_at: Option<u64>) {
        if self.kind() == 0
            && value.len() == self.value().len()
            && expire_at.is_some() == self.expire_at().is_some()
        {
            self.value_mut().copy_from_slice(value);
            self.set_expire(expire_at);
            // A whole new value: its encoding is again what its bytes say.
            // SAFETY: the flags byte is always initialised; only the RAW bit changes.
            unsafe { *self.ptr.as_ptr() &= !RAW }
        } else {
            let lru = self.lru();
            *self = Entry::new(self.key(), value, expire_at);
            self.touch(lru as u64);
        }
    }

    /// The value as snapshots and DUMP carry it: its type and its bytes (a collection's byte form).
    pub fn image(&self) -> (u8, std::borrow::Cow<'_, [u8]>) {
        match self.coll() {
            None => (0, std::borrow::Cow::Borrowed(self.value())),
            Some(c) => {
                let mut b = Vec::new();
                c.encode(&mut b);
                (c.kind(), std::borrow::Cow::Owned(b))
            }
        }
    }

    /// Rebuilds an entry from its image; None if the bytes are not a well-formed value of that type.
    pub fn from_image(
        key: &[u8],
        kind: u8,
        bytes: &[u8],
        expire_at: Option<u64>,
        lim: &super::types::Limits,
    ) -> Option<Entry> {
        if kind == 0 {
            return Some(Entry::new(key, bytes, expire_at));
        }
        Coll::decode(kind, bytes, lim).map(|c| Entry::with_coll(key, c, expire_at))
    }

    /// Last access time in seconds, modulo 2^24 (OBJECT IDLETIME).
    pub fn lru(&self) -> u32 {
        // SAFETY: header bytes 1..4 are always initialised.
        let b = unsafe { self.ptr.as_ptr().add(1).cast::<[u8; 3]>().read() };
        u32::from_le_bytes([b[0], b[1], b[2], 0])
    }

    /// Stamps the access clock. Takes `&self` so reads need no mutable lookup: the clock bytes are never
    /// part of a slice handed out (`key()`/`value()` start after the header), the block is reached only
    /// through this raw pointer, and `Entry` is not Sync, so the write cannot race or alias a reference.
    pub fn touch(&self, now_secs: u64) {
        let b = ((now_secs as u32) & LRU_MASK).to_le_bytes();
        // SAFETY: see above; bytes 1..4 of the block are the clock.
        unsafe {
            self.ptr
                .as_ptr()
                .add(1)
                .cast::<[u8; 3]>()
                .write([b[0], b[1], b[2]])
        }
    }

    /// Bytes requested from the allocator for this key (the table's slot is counted by the table).
    pub fn block_size(&self) -> usize {
        let (flags, k, v) = self.header();
        Self::data_offset(flags) + k + v
    }
}

impl Clone for Entry {
    fn clone(&self) -> Self {
        let e = match self.coll() {
            Some(c) => Entry::with_coll(self.key(), c.clone(), self.expire_at()),
            None => Entry::new(self.key(), self.value(), self.expire_at()),
        };
        e.touch(self.lru() as u64);
        e
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        if let Some(p) = self.coll_ptr() {
            // SAFETY: the pointer came from Box::into_raw and this entry owns it (type invariant).
            let coll = unsafe { Box::from_raw(p) };
            if coll.len() > LAZYFREE_MIN {
                rayon::spawn(move || drop(coll));
            }
        }
        let layout = Layout::from_size_align(self.block_size(), 1).expect("layout");
        // SAFETY: the block was allocated with exactly this layout (size derives from the header).
        unsafe { dealloc(self.ptr.as_ptr(), layout) }
    }
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("key", &String::from_utf8_lossy(self.key()))
            .field("kind", &self.kind())
            .field("value_len", &self.value().len())
            .field("expire_at", &self.expire_at())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip_through_every_change() {
        let mut e = Entry::new(b"key:1", b"hello", None);
        assert_eq!(
            (e.key(), e.value(), e.expire_at()),
            (&b"key:1"[..], &b"hello"[..], None)
        );
        e.set_expire(Some(42));
        assert_eq!(
            (e.key(), e.value(), e.expire_at()),
            (&b"key:1"[..], &b"hello"[..], Some(42))
        );
        e.set_value(b"world", Some(43));
        assert_eq!((e.value(), e.expire_at()), (&b"world"[..], Some(43)));
        e.set_value(b"longer value", None);
        assert_eq!(
            (e.key(), e.value(), e.expire_at()),
            (&b"key:1"[..], &b"longer value"[..], None)
        );
        let c = e.clone();
        assert_eq!((c.key(), c.value()), (e.key(), e.value()));
        let big = Entry::build(b"", &[b"ab", b"", b"cd"], Some(u64::MAX));
        assert_eq!(
            (big.key(), big.value(), big.expire_at()),
            (&b""[..], &b"abcd"[..], Some(u64::MAX))
        );
        assert_eq!(
            Entry::new(b"key:0", &[0u8; 100], None).block_size(),
            12 + 5 + 100
        );
        let mut t = Entry::new(b"k", b"v", None);
        t.touch((1 << 24) + 77);
        assert_eq!(t.lru(), 77);
        t.set_expire(Some(5));
        assert_eq!((t.lru(), t.key(), t.value()), (77, &b"k"[..], &b"v"[..]));
    }
}
