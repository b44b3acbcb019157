//! Journal records: the deterministic effects a primary shard appends to its backlog and a replica applies.
//!
//! A record is a RESP array of bulk strings whose first element is the database (docs/replication-format.md):
//! `[db, "SET", key, value]`, `[db, "SET", key, value, "PXAT", ms]`, `[db, "DEL", key]`,
//! `[db, "FLUSHDB"]`, `["0", "FLUSHALL"]`, `["0", "SWAPDB", a, b]`. A key's record is its *resulting
//! state* after a command (captured by the keyspace hooks), never the command itself: INCRBYFLOAT, APPEND,
//! GETEX, EXPIRE and the rest all become a SET with an absolute expiry or a DEL, so applying is
//! deterministic and idempotent. Every record carries its database, so a stream can be resumed at any
//! record boundary without a SELECT in front.
//!
//! FLUSHDB, FLUSHALL and SWAPDB stand for "in the slots of the shard that journaled them": each primary
//! shard journals its own, and a replica applies it to those slots only.

use bytes::{Buf, Bytes, BytesMut};

fn bulk(out: &mut Vec<u8>, b: &[u8]) {
    out.push(b'$');
    out.extend_from_slice(itoa::Buffer::new().format(b.len()).as_bytes());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(b);
    out.extend_from_slice(b"\r\n");
}

fn head(out: &mut Vec<u8>, n: usize, db: usize) {
    out.push(b'*');
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
    out.extend_from_slice(b"\r\n");
    bulk(out, itoa::Buffer::new().format(db).as_bytes());
}

pub fn set(out: &mut Vec<u8>, db: usize, key: &[u8], value: &[u8], expire_at: Option<u64>) {
    match expire_at {
        None => {
            head(out, 4, db);
            bulk(out, b"SET");
            bulk(out, key);
            bulk(out, value);
        }
        Some(t) => {
            head(out, 6, db);
            bulk(out, b"SET");
            bulk(out, key);
            bulk(out, value);
            bulk(out, b"PXAT");
            bulk(out, itoa::Buffer::new().format(t).as_bytes());
        }
    }
}

pub fn del(out: &mut Vec<u8>, db: usize, key: &[u8]) {
    head(out, 3, db);
    bulk(out, b"DEL");
    bulk(out, key);
}

pub fn flush(out: &mut Vec<u8>, db: Option<usize>) {
    head(out, 2, db.unwrap_or(0));
    bulk(
        out,
        if db.is_some() {
            b"FLUSHDB"
        } else {
            b"FLUSHALL"
        },
    );
}

pub fn swapdb(out: &mut Vec<u8>, a: usize, b: usize) {
    head(out, 4, 0);
    bulk(out, b"SWAPDB");
    bulk(out, itoa::Buffer::new().format(a).as_bytes());
    bulk(out, itoa::Buffer::new().format(b).as_bytes());
}

/// A parsed record: database and the command's arguments (name first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub db: usize,
    pub args: Vec<Bytes>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed journal record at byte {0}")]
pub struct Malformed(pub usize);

/// Parses every whole record at the front of `buf`, leaving an incomplete tail in place (a frame may end
/// inside a record). Stateless between calls: what is consumed is exactly the records returned, so the
/// stream offset of the first unconsumed byte is always a record boundary.
pub fn parse(buf: &mut BytesMut, out: &mut Vec<Record>) -> Result<(), Malformed> {
    loop {
        match parse_one(&buf[..]) {
            Ok(Some((len, spans))) => {
                let frozen = buf.split_to(len).freeze();
                let mut args: Vec<Bytes> = spans.iter().map(|&(a, b)| frozen.slice(a..b)).collect();
                let db_arg = args.remove(0);
                let db = std::str::from_utf8(&db_arg)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .ok_or(Malformed(0))?;
                if args.is_empty() {
                    return Err(Malformed(0));
                }
                out.push(Record { db, args });
            }
            Ok(None) => return Ok(()),
            Err(at) => return Err(Malformed(at)),
        }
    }
}

fn line(buf: &[u8], at: usize) -> Result<Option<(i64, usize)>, usize> {
    let Some(rel) = memchr::memchr(b'\n', &buf[at..]) else {
        return if buf.len() - at > 32 {
            Err(at)
        } else {
            Ok(None)
        };
    };
    let end = at + rel;
    if end == at || buf[end - 1] != b'\r' {
        return Err(at);
    }
    let n = std::str::from_utf8(&buf[at + 1..end - 1])
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or(at)?;
    Ok(Some((n, end + 1)))
}

type Spans = Vec<(usize, usize)>;

fn parse_one(buf: &[u8]) -> Result<Option<(usize, Spans)>, usize> {
    if buf.is_empty() {
        return Ok(None);
    }
    if buf[0] != b'*' {
        return Err(0);
    }
    let Some((n, mut at)) = line(buf, 0)? else {
        return Ok(None);
    };
    if !(2..=1024 * 1024).contains(&n) {
        return Err(0);
    }
    let mut spans = Vec::with_capacity(n as usize);
    for _ in 0..n {
        if at >= buf.len() {
            return Ok(None);
        }
        if buf[at] != b'$' {
            return Err(at);
        }
        let Some((len, start)) = line(buf, at)? else {
            return Ok(None);
        };
        if len < 0 {
            return Err(at);
        }
        let end = start + len as usize;
        if buf.len() < end + 2 {
            return Ok(None);
        }
        if &buf[end..end + 2] != b"\r\n" {
            return Err(end);
        }
        spans.push((start, end));
        at = end + 2;
    }
    Ok(Some((at, spans)))
}

/// Skips whole records until `buf` is empty; for tests and tools.
pub fn count(mut data: &[u8]) -> Result<usize, Malformed> {
    let mut n = 0;
    while !data.is_empty() {
        match parse_one(data) {
            Ok(Some((len, _))) => {
                data.advance(len);
                n += 1;
            }
            Ok(None) => return Err(Malformed(0)),
            Err(at) => return Err(Malformed(at)),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(r: &Record) -> Vec<&[u8]> {
        r.args.iter().map(|a| &a[..]).collect()
    }

    /// If this changes, the journal format changed: update docs/replication-format.md.
    #[test]
    fn golden_records() {
        let mut out = Vec::new();
        set(&mut out, 3, b"k", b"v", Some(1700000000000));
        del(&mut out, 0, b"k");
        flush(&mut out, None);
        assert_eq!(
            String::from_utf8(out.clone()).unwrap(),
            "*6\r\n$1\r\n3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n$4\r\nPXAT\r\n$13\r\n1700000000000\r\n\
             *3\r\n$1\r\n0\r\n$3\r\nDEL\r\n$1\r\nk\r\n\
             *2\r\n$1\r\n0\r\n$8\r\nFLUSHALL\r\n"
        );
        assert_eq!(count(&out), Ok(3));
    }

    #[test]
    fn parses_across_any_split_and_consumes_only_whole_records() {
        let mut wire = Vec::new();
        set(&mut wire, 0, b"a", b"1", None);
        swapdb(&mut wire, 1, 2);
        flush(&mut wire, Some(5));
        set(&mut wire, 15, b"b\r\n", b"", Some(9));
        for cut in 0..=wire.len() {
            let mut buf = BytesMut::from(&wire[..cut]);
            let mut got = Vec::new();
            parse(&mut buf, &mut got).unwrap();
            buf.extend_from_slice(&wire[cut..]);
            parse(&mut buf, &mut got).unwrap();
            assert!(buf.is_empty());
            assert_eq!(got.len(), 4, "cut {cut}");
            assert_eq!(
                (got[0].db, args(&got[0])),
                (0, vec![&b"SET"[..], b"a", b"1"])
            );
            assert_eq!(args(&got[1]), vec![&b"SWAPDB"[..], b"1", b"2"]);
            assert_eq!((got[2].db, args(&got[2])), (5, vec![&b"FLUSHDB"[..]]));
            assert_eq!(
                (got[3].db, args(&got[3])),
                (15, vec![&b"SET"[..], b"b\r\n", b"", b"PXAT", b"9"])
            );
        }
    }

    #[test]
    fn garbage_is_an_error() {
        for bad in [
            &b"+OK\r\n"[..],
            b"*1\r\n$1\r\n0\r\n",
            b"*2\r\n$1\r\nx\r\n$3\r\nDEL\r\n",
            b"*2\r\n$1\r\n0\r\n$3\r\nDELxx",
        ] {
            let mut buf = BytesMut::from(bad);
            assert!(parse(&mut buf, &mut Vec::new()).is_err(), "{bad:?}");
        }
    }
}
