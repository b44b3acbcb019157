//! Bitmaps on strings: SETBIT, GETBIT, BITCOUNT, BITPOS, BITOP, BITFIELD, BITFIELD_RO (Valkey's replies and
//! errors). Bit 0 is the most significant bit of byte 0, as in Valkey.

use super::args::{eq, int};
use super::exec::Exec;
use super::strings::check_len;
use super::{CmdError, CmdResult};
use crate::resp::Reply;
use crate::shard::Shard;
use crate::store::types::STRING;
use bytes::Bytes;

/// Bytes (a string's, or an HLL's registers) and the key's expiry.
type Valued = (Vec<u8>, Option<u64>);

fn bad_offset() -> CmdError {
    CmdError::other("ERR bit offset is not an integer or out of range")
}

/// A bit offset: 0..2^32 (Valkey's 512 MB string limit in bits).
fn bit_offset(a: &[u8]) -> Result<u64, CmdError> {
    let v = int(a).map_err(|_| bad_offset())?;
    if !(0..(4i64 << 30)).contains(&v) {
        return Err(bad_offset());
    }
    Ok(v as u64)
}

fn value_of(sh: &mut Shard, ex: &Exec, key: &[u8]) -> Result<Option<Valued>, CmdError> {
    Ok(sh
        .ks
        .get_kind(ex.db, key, ex.now, STRING)?
        .map(|e| (e.value().to_vec(), e.expire_at())))
}

pub fn setbit(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    let off = bit_offset(&a[2])?;
    let on = match &a[3][..] {
        b"1" => true,
        b"0" => false,
        _ => return Err(CmdError::other("ERR bit is not an integer or out of range")),
    };
    let byte = (off / 8) as usize;
    check_len(sh, byte as u64 + 1)?;
    let mask = 0x80u8 >> (off % 8);
    let flip = |b: &mut u8| {
        let old = *b & mask != 0;
        if on {
            *b |= mask;
        } else {
            *b &= !mask;
        }
        old
    };
    // The bit is set in place: a SETBIT on a big bitmap costs no copy of it unless it grows. One that
    // finds the bit as asked changes nothing (no dirty count, event or WATCH), as in Valkey.
    let found = sh
        .ks
        .get_kind(ex.db, &a[1], ex.now, STRING)?
        .map(|e| (e.value().len(), e.value().get(byte).map(|b| b & mask != 0)));
    if let Some((_, Some(bit))) = found {
        if bit == on {
            r.int(bit as i64);
            return Ok(());
        }
    }
    let old = match found.map(|f| f.0) {
        Some(len) => {
            let mut e = sh.ks.get_mut(ex.db, &a[1], ex.now).expect("checked above");
            let old = if byte < len {
                flip(&mut e.value_mut()[byte])
            } else {
                let mut v = e.value().to_vec();
                v.resize(byte + 1, 0);
                let old = flip(&mut v[byte]);
                let exp = e.expire_at();
                e.set_value(&v, exp);
                old
            };
            e.mark_raw();
            old
        }
        None => {
            let mut v = vec![0u8; byte + 1];
            let old = flip(&mut v[byte]);
            sh.ks.set_raw(ex.db, &a[1], &v, None, ex.now);
            old
        }
    };
    r.int(old as i64);
    Ok(())
}

pub fn getbit(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    let off = bit_offset(&a[2])?;
    let bit = sh
        .ks
        .get_kind(ex.db, &a[1], ex.now, STRING)?
        .and_then(|e| e.value().get((off / 8) as usize).copied())
        .is_some_and(|b| b & (0x80 >> (off % 8)) != 0);
    r.int(bit as i64);
    Ok(())
}

/// BITCOUNT's and BITPOS's `[start [end [BYTE|BIT]]]` from argument `at` on, in Valkey's order: start,
/// the unit (unknown: a syntax error before end is read), then end. None when no start is given.
fn range_args(a: &[Bytes], at: usize) -> Result<Option<(i64, Option<i64>, bool)>, CmdError> {
    if a.len() <= at {
        return Ok(None);
    }
    let start = int(&a[at])?;
    let bits = match a.get(at + 2) {
        None => false,
        Some(u) if eq(u, "bit") => true,
        Some(u) if eq(u, "byte") => false,
        Some(_) => return Err(CmdError::Syntax),
    };
    let end = a.get(at + 1).map(|e| int(e)).transpose()?;
    Ok(Some((start, end, bits)))
}

/// A start/end pair (bytes, or bits if `bits`) over `len` bytes as an inclusive bit range, Valkey's
/// conversions: negative counts from the end, both clamped into the value; None when empty.
fn span(mut s: i64, mut e: i64, bits: bool, len: usize) -> Option<(u64, u64)> {
    let total = if bits { len as i64 * 8 } else { len as i64 };
    if s < 0 {
        s += total;
    }
    if e < 0 {
        e += total;
    }
    let s = s.max(0);
    let e = e.max(0).min(total - 1);
    if total == 0 || s > e {
        return None;
    }
    Some(if bits {
        (s as u64, e as u64)
    } else {
        (s as u64 * 8, e as u64 * 8 + 7)
    })
}

fn bit_at(v: &[u8], i: u64) -> bool {
    v[(i / 8) as usize] & (0x80 >> (i % 8)) != 0
}

pub fn bitcount(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    if a.len() > 5 {
        return Err(CmdError::Syntax);
    }
    // Every argument is checked before the key is looked up; end defaults to the last byte.
    let args = range_args(a, 2)?;
    let e = sh.ks.get_kind(ex.db, &a[1], ex.now, STRING)?;
    let v = e.map_or(&[][..], |e| e.value());
    let range = match args {
        Some((s, e, bits)) => {
            let e = e.unwrap_or(v.len() as i64 - 1);
            // Both negative with start after end counts nothing (before any clamping, as Valkey).
            if s < 0 && e < 0 && s > e {
                None
            } else {
                span(s, e, bits, v.len())
            }
        }
        None if v.is_empty() => None,
        None => Some((0, v.len() as u64 * 8 - 1)),
    };
    let n = match range {
        None => 0,
        Some((s, e)) => {
            let (sb, eb) = ((s / 8) as usize, (e / 8) as usize);
            let mut n: u64 = v[sb..=eb].iter().map(|b| b.count_ones() as u64).sum();
            for i in sb as u64 * 8..s {
                n -= bit_at(v, i) as u64;
            }
            for i in e + 1..(eb as u64 + 1) * 8 {
                n -= bit_at(v, i) as u64;
            }
            n
        }
    };
    r.int(n as i64);
    Ok(())
}

pub fn bitpos(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    if a.len() > 6 {
        return Err(CmdError::Syntax);
    }
    // Valkey's order: every argument is checked before the key is looked up.
    let want = match int(&a[2])? {
        1 => true,
        0 => false,
        _ => return Err(CmdError::other("ERR The bit argument must be 1 or 0.")),
    };
    let args = range_args(a, 3)?;
    let Some(v) = sh
        .ks
        .get_kind(ex.db, &a[1], ex.now, STRING)?
        .map(|e| e.value())
    else {
        r.int(if want { -1 } else { 0 });
        return Ok(());
    };
    let end_given = a.len() >= 5;
    let range = match args {
        None => (!v.is_empty()).then(|| (0, v.len() as u64 * 8 - 1)),
        Some((s, e, bits)) => span(s, e.unwrap_or(v.len() as i64 - 1), bits, v.len()),
    };
    let Some((s, e)) = range else {
        r.int(-1);
        return Ok(());
    };
    for i in s..=e {
        if bit_at(v, i) == want {
            r.int(i as i64);
            return Ok(());
        }
    }
    // Looking for a clear bit with no end given: the string is padded with zeros on the right.
    r.int(if !want && !end_given {
        e as i64 + 1
    } else {
        -1
    });
    Ok(())
}

pub fn bitop(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    let op = String::from_utf8_lossy(&a[1]).to_ascii_lowercase();
    if !["and", "or", "xor", "not"].contains(&op.as_str()) {
        return Err(CmdError::Syntax);
    }
    if op == "not" && a.len() != 4 {
        return Err(CmdError::other(
            "ERR BITOP NOT must be called with a single source key.",
        ));
    }
    let mut srcs = Vec::new();
    for k in &a[3..] {
        srcs.push(value_of(sh, ex, k)?.map(|x| x.0).unwrap_or_default());
    }
    let len = srcs.iter().map(|v| v.len()).max().unwrap_or(0);
    let mut out = vec![0u8; len];
    for (i, o) in out.iter_mut().enumerate() {
        let b = |v: &Vec<u8>| v.get(i).copied().unwrap_or(0);
        *o = match op.as_str() {
            "not" => !b(&srcs[0]),
            "and" => srcs.iter().fold(0xff, |acc, v| acc & b(v)),
            "or" => srcs.iter().fold(0, |acc, v| acc | b(v)),
            _ => srcs.iter().fold(0, |acc, v| acc ^ b(v)),
        };
    }
    if out.is_empty() {
        sh.ks.remove(ex.db, &a[2], ex.now);
    } else {
        sh.ks.set(ex.db, &a[2], &out, None, ex.now);
    }
    r.int(len as i64);
    Ok(())
}

#[derive(Clone, Copy)]
struct Field {
    signed: bool,
    bits: u32,
}

fn field_type(a: &[u8]) -> Result<Field, CmdError> {
    let bad = || {
        CmdError::other(
            "ERR Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is.",
        )
    };
    let (signed, rest) = match a.first() {
        Some(b'i') | Some(b'I') => (true, &a[1..]),
        Some(b'u') | Some(b'U') => (false, &a[1..]),
        _ => return Err(bad()),
    };
    let bits: u32 = std::str::from_utf8(rest)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(bad)?;
    if bits == 0 || (signed && bits > 64) || (!signed && bits > 63) {
        return Err(bad());
    }
    Ok(Field { signed, bits })
}

/// An offset: a bit position, or `#n` for the n-th field of this type.
fn field_offset(a: &[u8], f: Field) -> Result<u64, CmdError> {
    let (mul, rest) = match a.first() {
        Some(b'#') => (f.bits as i64, &a[1..]),
        _ => (1, a),
    };
    let v = int(rest).map_err(|_| bad_offset())?;
    let off = v
        .checked_mul(mul)
        .filter(|o| (0..(4i64 << 30)).contains(o))
        .ok_or_else(bad_offset)?;
    Ok(off as u64)
}

fn read_field(v: &(impl Bytes8 + ?Sized), off: u64, f: Field) -> i64 {
    let mut x: u64 = 0;
    for i in 0..f.bits as u64 {
        let p = off + i;
        let bit = v.byte((p / 8) as usize) & (0x80 >> (p % 8)) != 0;
        x = (x << 1) | bit as u64;
    }
    if f.signed && f.bits < 64 && x & (1 << (f.bits - 1)) != 0 {
        (x | (u64::MAX << f.bits)) as i64
    } else {
        x as i64
    }
}

/// Writes a field into `v`, which the caller has sized to hold it.
fn write_field(v: &mut (impl Bytes8 + ?Sized), off: u64, f: Field, val: i64) {
    let x = val as u64;
    for i in 0..f.bits as u64 {
        let p = off + i;
        let bit = (x >> (f.bits as u64 - 1 - i)) & 1 == 1;
        let m = 0x80u8 >> (p % 8);
        let at = (p / 8) as usize;
        let b = v.byte(at);
        v.set_byte(at, if bit { b | m } else { b & !m });
    }
}

/// Bytes that BITFIELD's fields are read from and written to: a string's own bytes, or `Patched`.
trait Bytes8 {
    /// The byte at `i`; past the end, 0 (a string reads as zero-padded).
    fn byte(&self, i: usize) -> u8;
    fn set_byte(&mut self, i: usize, b: u8);
}

impl Bytes8 for [u8] {
    fn byte(&self, i: usize) -> u8 {
        self.get(i).copied().unwrap_or(0)
    }

    fn set_byte(&mut self, i: usize, b: u8) {
        self[i] = b;
    }
}

impl Bytes8 for Vec<u8> {
    fn byte(&self, i: usize) -> u8 {
        self[..].byte(i)
    }

    fn set_byte(&mut self, i: usize, b: u8) {
        self[i] = b;
    }
}

/// A string's bytes with the writes of a BITFIELD kept beside them: run first, so a command whose
/// writes leave every byte as it was changes nothing (no dirty count, no event, no WATCH), as Valkey
/// counts only changes; and one that changes bytes writes just those into the string.
struct Patched<'a> {
    base: &'a [u8],
    patch: Vec<(usize, u8)>,
}

impl Bytes8 for Patched<'_> {
    fn byte(&self, i: usize) -> u8 {
        match self.patch.iter().rev().find(|p| p.0 == i) {
            Some(p) => p.1,
            None => self.base.byte(i),
        }
    }

    fn set_byte(&mut self, i: usize, b: u8) {
        self.patch.push((i, b));
    }
}

impl Patched<'_> {
    /// The final value of each byte that differs from the string's.
    fn changes(&self) -> Vec<(usize, u8)> {
        let mut out: Vec<(usize, u8)> = Vec::new();
        for &(i, _) in &self.patch {
            let b = self.byte(i);
            if b != self.base.byte(i) && !out.iter().any(|o| o.0 == i) {
                out.push((i, b));
            }
        }
        out
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Overflow {
    Wrap,
    Sat,
    Fail,
}

/// The field's value after adding `by` to `cur` under `ov`; None when FAIL refuses it.
fn add_field(cur: i64, by: i64, f: Field, ov: Overflow) -> Option<i64> {
    let (min, max): (i128, i128) = if f.signed {
        (-(1i128 << (f.bits - 1)), (1i128 << (f.bits - 1)) - 1)
    } else {
        (0, (1i128 << f.bits) - 1)
    };
    let sum = cur as i128 + by as i128;
    if (min..=max).contains(&sum) {
        return Some(sum as i64);
    }
    match ov {
        Overflow::Fail => None,
        Overflow::Sat => Some(if sum > max { max as i64 } else { min as i64 }),
        Overflow::Wrap => {
            let span = 1i128 << f.bits;
            let mut w = (sum - min).rem_euclid(span) + min;
            if !f.signed {
                w = sum.rem_euclid(span);
            }
            Some(w as i64)
        }
    }
}

fn bitfield_gen(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply, ro: bool) -> CmdResult {
    enum Op {
        Get(Field, u64),
        Set(Field, u64, i64),
        Incr(Field, u64, i64),
    }
    let mut ops = Vec::new();
    let mut ovs = Vec::new();
    let mut ov = Overflow::Wrap;
    let mut i = 2;
    while i < a.len() {
        let w = String::from_utf8_lossy(&a[i]).to_ascii_lowercase();
        match w.as_str() {
            "get" if i + 2 < a.len() => {
                let f = field_type(&a[i + 1])?;
                ops.push(Op::Get(f, field_offset(&a[i + 2], f)?));
                i += 3;
            }
            "set" | "incrby" if i + 3 < a.len() => {
                if ro {
                    return Err(CmdError::other(
                        "ERR BITFIELD_RO only supports the GET subcommand",
                    ));
                }
                let f = field_type(&a[i + 1])?;
                let off = field_offset(&a[i + 2], f)?;
                let v = int(&a[i + 3])?;
                ops.push(if w == "set" {
                    Op::Set(f, off, v)
                } else {
                    Op::Incr(f, off, v)
                });
                i += 4;
            }
            "overflow" if i + 1 < a.len() => {
                if ro {
                    return Err(CmdError::other(
                        "ERR BITFIELD_RO only supports the GET subcommand",
                    ));
                }
                ov = match String::from_utf8_lossy(&a[i + 1])
                    .to_ascii_lowercase()
                    .as_str()
                {
                    "wrap" => Overflow::Wrap,
                    "sat" => Overflow::Sat,
                    "fail" => Overflow::Fail,
                    _ => return Err(CmdError::other("ERR Invalid OVERFLOW type specified")),
                };
                i += 2;
                continue;
            }
            _ => return Err(CmdError::Syntax),
        }
        ovs.push(ov);
    }
    // Like Valkey, a command with a write grows the string to its highest written byte before running
    // (creating the key if missing), and the size limit is checked before anything runs.
    let need = ops
        .iter()
        .map(|op| match *op {
            Op::Get(..) => 0,
            Op::Set(f, off, _) | Op::Incr(f, off, _) => (off + f.bits as u64).div_ceil(8),
        })
        .max()
        .unwrap_or(0);
    if need == 0 {
        let e = sh.ks.get_kind(ex.db, &a[1], ex.now, STRING)?;
        let v = e.map_or(&[][..], |e| e.value());
        r.array(ops.len());
        for op in &ops {
            if let Op::Get(f, off) = *op {
                r.int(read_field(v, off, f));
            }
        }
        return Ok(());
    }
    check_len(sh, need)?;
    let run = |v: &mut dyn Bytes8, r: &mut Reply| {
        r.array(ops.len());
        for (op, ov) in ops.iter().zip(&ovs) {
            match *op {
                Op::Get(f, off) => r.int(read_field(v, off, f)),
                Op::Set(f, off, val) => {
                    let old = read_field(v, off, f);
                    match add_field(0, val, f, *ov) {
                        Some(nv) => {
                            write_field(v, off, f, nv);
                            r.int(old);
                        }
                        None => r.null(),
                    }
                }
                Op::Incr(f, off, by) => match add_field(read_field(v, off, f), by, f, *ov) {
                    Some(nv) => {
                        write_field(v, off, f, nv);
                        r.int(nv);
                    }
                    None => r.null(),
                },
            }
        }
    };
    let len = sh
        .ks
        .get_kind(ex.db, &a[1], ex.now, STRING)?
        .map(|e| e.value().len());
    match len {
        // Long enough: the fields run against the string with their writes kept aside, and only the
        // bytes that changed are written in place, so a BITFIELD on a big bitmap copies none of it.
        Some(len) if len as u64 >= need => {
            let changes = {
                let e = sh.ks.get_kind(ex.db, &a[1], ex.now, STRING)?;
                let mut p = Patched {
                    base: e.expect("checked above").value(),
                    patch: Vec::new(),
                };
                run(&mut p, r);
                p.changes()
            };
            if !changes.is_empty() {
                let mut e = sh.ks.get_mut(ex.db, &a[1], ex.now).expect("checked above");
                let v = e.value_mut();
                for (i, b) in changes {
                    v[i] = b;
                }
                e.mark_raw();
            }
        }
        _ => {
            let (mut v, exp) = value_of(sh, ex, &a[1])?.unwrap_or_default();
            v.resize(v.len().max(need as usize), 0);
            run(&mut v, r);
            sh.ks.set_raw(ex.db, &a[1], &v, exp, ex.now);
        }
    }
    Ok(())
}

pub fn bitfield(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    bitfield_gen(sh, ex, a, r, false)
}

pub fn bitfield_ro(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    bitfield_gen(sh, ex, a, r, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_read_write_and_overflow_like_valkey() {
        // Sized by the caller (bits 100..105 end in byte 13).
        let mut v = vec![0u8; 14];
        let u8f = Field {
            signed: false,
            bits: 8,
        };
        let i5 = Field {
            signed: true,
            bits: 5,
        };
        write_field(&mut v, 0, u8f, 255);
        assert_eq!(read_field(&v, 0, u8f), 255);
        assert_eq!(add_field(255, 10, u8f, Overflow::Wrap), Some(9));
        assert_eq!(add_field(255, 10, u8f, Overflow::Sat), Some(255));
        assert_eq!(add_field(255, 10, u8f, Overflow::Fail), None);
        assert_eq!(add_field(15, 1, i5, Overflow::Wrap), Some(-16));
        assert_eq!(add_field(-16, -1, i5, Overflow::Sat), Some(-16));
        write_field(&mut v, 100, i5, -3);
        assert_eq!(read_field(&v, 100, i5), -3);
        assert_eq!(v[12..], [0b0000_1110, 0b1000_0000]);
    }
}
