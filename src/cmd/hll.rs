//! HyperLogLog: PFADD, PFCOUNT, PFMERGE, in Valkey's dense representation (a string: "HYLL", encoding,
//! 3 unused bytes, an 8-byte cached cardinality, then 16384 six-bit registers), with its hash
//! (MurmurHash64A, seed 0xadc83b19) and its estimator (Ertl's), so counts match Valkey's. Tandem always
//! writes the dense form (12 KiB per key); Valkey's sparse form of small counts is read too.

use super::exec::Exec;
use super::{CmdError, CmdResult};
use crate::resp::Reply;
use crate::shard::Shard;
use crate::store::types::STRING;
use bytes::Bytes;

/// Bytes (a string's, or an HLL's registers) and the key's expiry.
type Valued = (Vec<u8>, Option<u64>);

const P: u32 = 14;
const M: usize = 1 << P;
const Q: u32 = 64 - P;
const HDR: usize = 16;
const DENSE_LEN: usize = HDR + M * 6 / 8;

fn not_hll() -> CmdError {
    CmdError::other("WRONGTYPE Key is not a valid HyperLogLog string value.")
}

fn murmur64a(key: &[u8], seed: u64) -> u64 {
    const MUL: u64 = 0xc6a4a7935bd1e995;
    let mut h = seed ^ (key.len() as u64).wrapping_mul(MUL);
    let chunks = key.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        let mut k = u64::from_le_bytes(c.try_into().expect("8"));
        k = k.wrapping_mul(MUL);
        k ^= k >> 47;
        k = k.wrapping_mul(MUL);
        h ^= k;
        h = h.wrapping_mul(MUL);
    }
    if !rest.is_empty() {
        for (i, b) in rest.iter().enumerate() {
            h ^= (*b as u64) << (8 * i);
        }
        h = h.wrapping_mul(MUL);
    }
    h ^= h >> 47;
    h = h.wrapping_mul(MUL);
    h ^= h >> 47;
    h
}

/// (register index, run length) of an element, as Valkey's hllPatLen.
fn pat_len(e: &[u8]) -> (usize, u8) {
    let h = murmur64a(e, 0xadc83b19);
    let idx = (h & (M as u64 - 1)) as usize;
    let rest = (h >> P) | (1u64 << Q);
    (idx, rest.trailing_zeros() as u8 + 1)
}

/// The registers of a stored HLL (dense or sparse), or None if the bytes are not one.
fn registers(v: &[u8]) -> Option<Vec<u8>> {
    if v.len() < HDR || &v[..4] != b"HYLL" {
        return None;
    }
    let mut regs = vec![0u8; M];
    match v[4] {
        0 if v.len() == DENSE_LEN => {
            for (i, r) in regs.iter_mut().enumerate() {
                let bit = i * 6;
                let (b0, fb) = (bit / 8, bit % 8);
                let lo = v[HDR + b0] as u16;
                let hi = *v.get(HDR + b0 + 1).unwrap_or(&0) as u16;
                *r = (((lo >> fb) | (hi << (8 - fb))) & 63) as u8;
            }
        }
        1 => {
            let mut idx = 0usize;
            let mut p = HDR;
            while p < v.len() {
                let op = v[p];
                if op & 0xc0 == 0 {
                    idx += (op & 0x3f) as usize + 1;
                    p += 1;
                } else if op & 0xc0 == 0x40 {
                    idx += ((((op & 0x3f) as usize) << 8) | *v.get(p + 1)? as usize) + 1;
                    p += 2;
                } else {
                    let val = ((op >> 2) & 0x1f) + 1;
                    let run = (op & 3) as usize + 1;
                    for _ in 0..run {
                        *regs.get_mut(idx)? = val;
                        idx += 1;
                    }
                    p += 1;
                }
            }
            if idx != M {
                return None;
            }
        }
        _ => return None,
    }
    Some(regs)
}

fn dense(regs: &[u8]) -> Vec<u8> {
    let mut v = vec![0u8; DENSE_LEN];
    v[..4].copy_from_slice(b"HYLL");
    // The cached cardinality is marked invalid (bit 7 of its last byte), as after Valkey's writes.
    v[15] = 0x80;
    for (i, &r) in regs.iter().enumerate() {
        let bit = i * 6;
        let (b0, fb) = (bit / 8, bit % 8);
        let val = (r as u16 & 63) << fb;
        v[HDR + b0] |= val as u8;
        if fb > 2 {
            v[HDR + b0 + 1] |= (val >> 8) as u8;
        }
    }
    v
}

fn sigma(mut x: f64) -> f64 {
    if x == 1.0 {
        return f64::INFINITY;
    }
    let (mut y, mut z) = (1.0, x);
    loop {
        x *= x;
        let zp = z;
        z += x * y;
        y += y;
        if zp == z {
            return z;
        }
    }
}

fn tau(mut x: f64) -> f64 {
    if x == 0.0 || x == 1.0 {
        return 0.0;
    }
    let (mut y, mut z) = (1.0, 1.0 - x);
    loop {
        x = x.sqrt();
        let zp = z;
        y *= 0.5;
        z -= (1.0 - x).powi(2) * y;
        if zp == z {
            return z / 3.0;
        }
    }
}

fn count(regs: &[u8]) -> u64 {
    let mut histo = [0u32; 64];
    for &r in regs {
        histo[r as usize] += 1;
    }
    let m = M as f64;
    let mut z = m * tau((m - histo[Q as usize + 1] as f64) / m);
    for j in (1..=Q as usize).rev() {
        z += histo[j] as f64;
        z *= 0.5;
    }
    z += m * sigma(histo[0] as f64 / m);
    (0.721_347_520_444_481_7 * m * m / z).round() as u64
}

/// The registers at `key`: None if missing; WRONGTYPE for another type or a string that is not an HLL.
fn load(sh: &mut Shard, ex: &Exec, key: &[u8]) -> Result<Option<Valued>, CmdError> {
    match sh.ks.get_kind(ex.db, key, ex.now, STRING)? {
        None => Ok(None),
        Some(e) => Ok(Some((
            registers(e.value()).ok_or_else(not_hll)?,
            e.expire_at(),
        ))),
    }
}

pub fn pfadd(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    let (mut regs, exp, mut changed) = match load(sh, ex, &a[1])? {
        Some((regs, exp)) => (regs, exp, false),
        None => (vec![0u8; M], None, true),
    };
    for e in &a[2..] {
        let (i, n) = pat_len(e);
        if regs[i] < n {
            regs[i] = n;
            changed = true;
        }
    }
    if changed {
        sh.ks.set(ex.db, &a[1], &dense(&regs), exp, ex.now);
    }
    r.int(changed as i64);
    Ok(())
}

pub fn pfcount(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    let mut acc = vec![0u8; M];
    for k in &a[1..] {
        if let Some((regs, _)) = load(sh, ex, k)? {
            acc.iter_mut().zip(regs).for_each(|(x, y)| *x = (*x).max(y));
        }
    }
    r.int(count(&acc) as i64);
    Ok(())
}

pub fn pfmerge(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    let mut acc = vec![0u8; M];
    let mut exp = None;
    for (i, k) in a[1..].iter().enumerate() {
        if let Some((regs, e)) = load(sh, ex, k)? {
            if i == 0 {
                exp = e;
            }
            acc.iter_mut().zip(regs).for_each(|(x, y)| *x = (*x).max(y));
        }
    }
    sh.ks.set(ex.db, &a[1], &dense(&acc), exp, ex.now);
    r.ok();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_within_the_standard_error_and_round_trips() {
        let mut regs = vec![0u8; M];
        for i in 0..100_000u32 {
            let (j, n) = pat_len(format!("element:{i}").as_bytes());
            regs[j] = regs[j].max(n);
        }
        let c = count(&regs) as f64;
        assert!((c - 100_000.0).abs() / 100_000.0 < 0.02, "{c}");
        assert_eq!(registers(&dense(&regs)).unwrap(), regs);
        assert_eq!(count(&[0u8; M]), 0);
        // Valkey's sparse form of an empty HLL: one XZERO opcode covering all 16384 registers.
        let mut sparse = b"HYLL\x01\0\0\0\0\0\0\0\0\0\0\0".to_vec();
        sparse.extend_from_slice(&[0x40 | 0x3f, 0xff]);
        assert_eq!(registers(&sparse).unwrap(), vec![0u8; M]);
        assert!(registers(b"not an hll").is_none());
    }
}
