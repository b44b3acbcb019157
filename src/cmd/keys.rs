//! Generic key commands that run on the shard owning their key(s).

use super::args::{eq, help, int, lower};
use super::exec::Exec;
use super::{CmdError, CmdResult};
use crate::resp::{parse_i64_strict, Reply};
use crate::shard::Shard;
use crate::store::entry::LRU_MASK;
use bytes::Bytes;

pub fn del(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    let n = a[1..]
        .iter()
        .filter(|k| sh.ks.remove(ex.db, k, ex.now).is_some())
        .count();
    r.int(n as i64);
    Ok(())
}

/// EXISTS and TOUCH: counts keys (a key named twice counts twice), stamping their access time.
pub fn exists(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    let n = a[1..]
        .iter()
        .filter(|k| sh.ks.get(ex.db, k, ex.now).is_some())
        .count();
    r.int(n as i64);
    Ok(())
}

pub fn type_(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    r.simple(match sh.ks.get(ex.db, &a[1], ex.now) {
        Some(e) => crate::store::types::type_name(e.kind()),
        None => "none",
    });
    Ok(())
}

#[derive(Clone, Copy)]
struct Cond {
    nx: bool,
    xx: bool,
    gt: bool,
    lt: bool,
}

fn parse_cond(opts: &[Bytes]) -> Result<Cond, CmdError> {
    let mut c = Cond {
        nx: false,
        xx: false,
        gt: false,
        lt: false,
    };
    for o in opts {
        match lower(o).as_str() {
            "nx" => c.nx = true,
            "xx" => c.xx = true,
            "gt" => c.gt = true,
            "lt" => c.lt = true,
            _ => {
                return Err(CmdError::other(format!(
                    "ERR Unsupported option {}",
                    String::from_utf8_lossy(o)
                )))
            }
        }
    }
    if c.nx && (c.xx || c.gt || c.lt) {
        return Err(CmdError::other(
            "ERR NX and XX, GT or LT options at the same time are not compatible",
        ));
    }
    if c.gt && c.lt {
        return Err(CmdError::other(
            "ERR GT and LT options at the same time are not compatible",
        ));
    }
    Ok(c)
}

/// The EXPIRE family: `unit` converts the argument to ms, `absolute` says whether it is a timestamp.
fn expire_generic(
    sh: &mut Shard,
    ex: &Exec,
    a: &[Bytes],
    r: &mut Reply,
    unit: i64,
    absolute: bool,
    cmd: &'static str,
) -> CmdResult {
    let v = int(&a[2])?;
    let cond = parse_cond(&a[3..])?;
    let at = v
        .checked_mul(unit)
        .and_then(|ms| {
            if absolute {
                Some(ms)
            } else {
                ms.checked_add(ex.now as i64)
            }
        })
        .ok_or(CmdError::InvalidExpire(cmd))?;
    let Some(mut e) = sh.ks.get_mut(ex.db, &a[1], ex.now) else {
        r.int(0);
        return Ok(());
    };
    let cur = e.expire_at();
    let ok = match cur {
        None => !cond.xx && !cond.gt,
        Some(c) => !cond.nx && (!cond.gt || at > c as i64) && (!cond.lt || at < c as i64),
    };
    if !ok {
        r.int(0);
        return Ok(());
    }
    let deleted = at <= ex.now as i64;
    if deleted {
        drop(e);
        sh.ks.remove(ex.db, &a[1], 0);
    } else {
        e.set_expire(Some(at as u64));
        drop(e);
    }
    // EXPIRE and PEXPIRE are relative: logged as what they did, with an absolute time (table flag
    // LOG_REWRITE), so replicas agree and a big collection is never shipped whole for a TTL change.
    if sh.ks.hooks.capture {
        let at = itoa::Buffer::new().format(at).as_bytes().to_vec();
        sh.ks.hooks.rewrite = Some(if deleted {
            vec![b"DEL".to_vec(), a[1].to_vec()]
        } else {
            vec![b"PEXPIREAT".to_vec(), a[1].to_vec(), at]
        });
    }
    r.int(1);
    Ok(())
}

pub fn expire(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    expire_generic(sh, ex, a, r, 1000, false, "expire")
}
pub fn pexpire(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    expire_generic(sh, ex, a, r, 1, false, "pexpire")
}
pub fn expireat(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    expire_generic(sh, ex, a, r, 1000, true, "expireat")
}
pub fn pexpireat(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    expire_generic(sh, ex, a, r, 1, true, "pexpireat")
}

/// TTL family: -2 for a missing key, -1 for no expiry, else the remaining or absolute time.
fn ttl_generic(
    sh: &mut Shard,
    ex: &Exec,
    key: &[u8],
    r: &mut Reply,
    f: impl Fn(u64, u64) -> i64,
) -> CmdResult {
    match sh.ks.get(ex.db, key, ex.now) {
        None => r.int(-2),
        Some(e) => match e.expire_at() {
            None => r.int(-1),
            Some(t) => r.int(f(t, ex.now)),
        },
    }
    Ok(())
}

pub fn ttl(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    ttl_generic(sh, ex, &a[1], r, |t, now| {
        ((t.saturating_sub(now) + 500) / 1000) as i64
    })
}
pub fn pttl(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    ttl_generic(sh, ex, &a[1], r, |t, now| t.saturating_sub(now) as i64)
}
pub fn expiretime(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    ttl_generic(sh, ex, &a[1], r, |t, _| (t / 1000) as i64)
}
pub fn pexpiretime(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    ttl_generic(sh, ex, &a[1], r, |t, _| t as i64)
}

pub fn persist(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    match sh.ks.get_mut(ex.db, &a[1], ex.now) {
        Some(mut e) if e.expire_at().is_some() => {
            e.set_expire(None);
            r.int(1);
        }
        _ => r.int(0),
    }
    Ok(())
}

/// Valkey's encodings for strings: "int" for values that are a 64-bit integer in canonical form, "embstr"
/// up to 44 bytes, "raw" beyond. Tandem stores all three in the entry's own block (docs/memory.md); the name
/// is reported so tools that inspect encodings keep working.
pub fn encoding_of(e: &crate::store::Entry) -> &'static str {
    let v = e.value();
    if e.is_raw() {
        "raw"
    } else if v.len() <= 20 && parse_i64_strict(v).is_some() {
        "int"
    } else if v.len() <= 44 {
        "embstr"
    } else {
        "raw"
    }
}

pub fn object(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    let sub = lower(&a[1]);
    if sub == "help" && a.len() == 2 {
        help(
            r,
            &[
                "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "ENCODING <key>",
                "    Return the kind of internal representation used in order to store the value",
                "    associated with a <key>.",
                "FREQ <key>",
                "    Return the access frequency index of the <key>. The returned integer is",
                "    proportional to the logarithm of the recent access frequency of the key.",
                "IDLETIME <key>",
                "    Return the idle time of the <key>, that is the approximated number of",
                "    seconds elapsed since the last access to the key.",
                "REFCOUNT <key>",
                "    Return the number of references of the value associated with the specified",
                "    <key>.",
                "HELP",
                "    Print this help.",
            ],
        );
        return Ok(());
    }
    if a.len() != 3 || !["encoding", "freq", "idletime", "refcount"].contains(&sub.as_str()) {
        return Err(CmdError::UnknownSubcommand {
            sub: String::from_utf8_lossy(&a[1]).into(),
            cmd: "OBJECT".into(),
        });
    }
    // OBJECT must not refresh the access time it reports: peek, don't get.
    let Some(e) = sh.ks.peek(ex.db, &a[2], ex.now) else {
        r.null();
        return Ok(());
    };
    match sub.as_str() {
        "encoding" => match e.coll() {
            Some(c) => r.bulk(c.encoding().as_bytes()),
            None => r.bulk(encoding_of(e).as_bytes()),
        },
        "refcount" => r.int(1),
        "idletime" => {
            let now = (ex.now / 1000) as u32 & LRU_MASK;
            r.int(now.wrapping_sub(e.lru()) as i64 & LRU_MASK as i64);
        }
        _ => {
            return Err(CmdError::other(
                "ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that \
                 when switching between policies at runtime LRU and LFU data will take some time to adjust.",
            ))
        }
    }
    Ok(())
}

/// Helper for tests and SELECT/MOVE/SWAPDB: parses a database index with Valkey's errors.
pub fn parse_db(arg: &[u8], databases: usize) -> Result<usize, CmdError> {
    let v = parse_i64_strict(arg).ok_or(CmdError::other("ERR invalid DB index"))?;
    if v < 0 || v as usize >= databases {
        return Err(CmdError::DbIndexOutOfRange);
    }
    Ok(v as usize)
}

/// MEMORY USAGE key [SAMPLES n] (every type: the entry's block, its table slot, and a collection's own
/// allocations), MEMORY HELP.
pub fn memory(sh: &mut Shard, ex: &Exec, a: &[Bytes], r: &mut Reply) -> CmdResult {
    let sub = lower(&a[1]);
    match sub.as_str() {
        "help" if a.len() == 2 => {
            super::args::help(
                r,
                &[
                    "MEMORY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                    "USAGE <key> [SAMPLES <count>]",
                    "    Return memory in bytes used by <key> and its value. Nested values are",
                    "    counted whole (Tandem does not sample).",
                    "HELP",
                    "    Print this help.",
                ],
            );
            Ok(())
        }
        "usage" if a.len() == 3 || (a.len() == 5 && eq(&a[3], "samples")) => {
            if a.len() == 5 {
                int(&a[4])?;
            }
            match sh.ks.peek(ex.db, &a[2], ex.now) {
                Some(e) => {
                    let slot = 2 * std::mem::size_of::<usize>();
                    let coll = e.coll().map_or(0, |c| c.allocated());
                    r.int((e.block_size() + slot + coll) as i64);
                }
                None => r.null(),
            }
            Ok(())
        }
        _ => Err(CmdError::UnknownSubcommand {
            sub: String::from_utf8_lossy(&a[1]).into(),
            cmd: "MEMORY".into(),
        }),
    }
}
