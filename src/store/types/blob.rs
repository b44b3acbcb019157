//! `Blob`: an owned, immutable byte string behind a thin pointer (8 bytes, where `Box<[u8]>` takes 16):
//! one block holding a varint length then the bytes. Big collections hold one per element in a table slot,
//! so the 8 bytes saved per slot, divided by the table's occupancy, are 10-18 bytes per element.
//! `BlobRef` is a non-owning copy of the pointer, for a second index over the same elements (a sorted
//! set's order).
//!
//! Invariants: a Blob's block is allocated by `Blob::new` with the layout `layout(len)` (alignment 1) and
//! freed once, by its drop; its bytes never change. A `BlobRef` is read only while the Blob it was taken
//! from is alive (its owner keeps that true; see zset.rs).

use std::alloc::{alloc, dealloc, handle_alloc_error, Layout};
use std::ptr::NonNull;

pub struct Blob(NonNull<u8>);

// SAFETY: a Blob owns its block exclusively (like Box<[u8]>) and the bytes are never mutated after
// creation, so moving it to or sharing it with another thread is as safe as for Box<[u8]>.
unsafe impl Send for Blob {}
unsafe impl Sync for Blob {}

fn varint_len(mut n: usize) -> usize {
    let mut k = 1;
    while n >= 0x80 {
        n >>= 7;
        k += 1;
    }
    k
}

fn layout(len: usize) -> Layout {
    Layout::from_size_align(varint_len(len) + len, 1).expect("blob size fits isize")
}

/// The bytes of the block at `p`.
///
/// # Safety
/// `p` must point to a live block written by `Blob::new`.
#[inline]
unsafe fn bytes<'a>(p: NonNull<u8>) -> &'a [u8] {
    let p = p.as_ptr();
    let (mut len, mut shift, mut i) = (0usize, 0, 0);
    loop {
        let b = *p.add(i);
        i += 1;
        len |= ((b & 0x7f) as usize) << shift;
        if b < 0x80 {
            break;
        }
        shift += 7;
    }
    std::slice::from_raw_parts(p.add(i), len)
}

impl Blob {
    /// A block holding the concatenation of `parts`.
    pub fn new(parts: &[&[u8]]) -> Blob {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let layout = layout(len);
        // SAFETY: the layout has a non-zero size (at least the one-byte length); every byte of the block
        // is written below before it is read.
        unsafe {
            let p = alloc(layout);
            let Some(p) = NonNull::new(p) else {
                handle_alloc_error(layout)
            };
            let mut at = 0;
            let mut v = len;
            while v >= 0x80 {
                *p.as_ptr().add(at) = v as u8 | 0x80;
                v >>= 7;
                at += 1;
            }
            *p.as_ptr().add(at) = v as u8;
            at += 1;
            for part in parts {
                std::ptr::copy_nonoverlapping(part.as_ptr(), p.as_ptr().add(at), part.len());
                at += part.len();
            }
            Blob(p)
        }
    }

    #[inline]
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: self owns a live block written by new().
        unsafe { bytes(self.0) }
    }

    /// Bytes of its block (what the allocator was asked for).
    pub fn allocated(&self) -> usize {
        layout(self.bytes().len()).size()
    }

    pub fn as_ref(&self) -> BlobRef {
        BlobRef(self.0)
    }
}

impl Drop for Blob {
    fn drop(&mut self) {
        let layout = layout(self.bytes().len());
        // SAFETY: allocated by new() with this same layout (the length is read from the block itself) and
        // freed only here.
        unsafe { dealloc(self.0.as_ptr(), layout) }
    }
}

/// A non-owning pointer to a Blob's block.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct BlobRef(NonNull<u8>);

// SAFETY: a BlobRef is only dereferenced by the owner of the Blob it points to (a sorted set holding both),
// which moves between threads as a whole.
unsafe impl Send for BlobRef {}
unsafe impl Sync for BlobRef {}

impl BlobRef {
    /// The bytes of the Blob this was taken from.
    ///
    /// # Safety
    /// That Blob must still be alive, and stay alive while the slice is used.
    #[inline]
    pub unsafe fn bytes<'a>(self) -> &'a [u8] {
        bytes(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::Blob;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn holds_the_concatenation_of_its_parts(a in prop::collection::vec(any::<u8>(), 0..300), b in prop::collection::vec(any::<u8>(), 0..20000)) {
            let blob = Blob::new(&[&a, &b]);
            let mut want = a.clone();
            want.extend_from_slice(&b);
            prop_assert_eq!(blob.bytes(), &want[..]);
            prop_assert_eq!(unsafe { blob.as_ref().bytes() }, &want[..]);
            let header = if want.len() < 0x80 { 1 } else if want.len() < 0x4000 { 2 } else { 3 };
            prop_assert_eq!(blob.allocated(), want.len() + header);
        }
    }

    #[test]
    fn empty_blob() {
        let b = Blob::new(&[]);
        assert!(b.bytes().is_empty());
        assert_eq!(b.allocated(), 1);
    }
}
