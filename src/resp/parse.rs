//! Incremental request parser.
//!
//! Invariant: the parser consumes bytes from the front of the connection's buffer as soon as an element is
//! complete, keeping the arguments parsed so far, so a command arriving in many reads costs O(bytes) in all,
//! never a re-scan from its start. Limits and error texts follow Valkey's `processMultibulkBuffer` and
//! `processInlineBuffer`.

use bytes::{Buf, Bytes, BytesMut};

/// Longest inline command, and longest `*N` / `$N` header line, Valkey accepts (PROTO_INLINE_MAX_SIZE).
pub const PROTO_INLINE_MAX_SIZE: usize = 64 * 1024;
/// Before AUTH, Valkey refuses larger commands to keep unauthenticated clients cheap.
const UNAUTH_MAX_ARGS: i64 = 10;
const UNAUTH_MAX_BULK: i64 = 16384;

/// A protocol violation: the connection gets `-ERR Protocol error: <msg>` and is closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Protocol error: {0}")]
pub struct ProtocolError(pub String);

#[derive(Debug, Default)]
pub struct RequestParser {
    /// Arguments still expected for the multibulk command in progress (0 = between commands).
    pending: usize,
    /// Length of the bulk whose header was consumed but whose payload has not fully arrived.
    bulk_len: Option<usize>,
    args: Vec<Bytes>,
    /// Bytes of the arguments already parsed for the command in progress.
    args_bytes: usize,
}

impl RequestParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// True while a command is partially read; the connection uses it for the query-buffer limit.
    pub fn in_progress(&self) -> bool {
        self.pending > 0
    }

    /// Bytes the unfinished command holds in parsed arguments; with what is still in the read buffer, what
    /// client-query-buffer-limit bounds.
    pub fn held_bytes(&self) -> usize {
        self.args_bytes
    }

    /// Parses the next complete command from `buf`. `Ok(None)` means more bytes are needed.
    /// Empty commands (`*0`, `*-1`, blank inline lines) are skipped as Valkey does.
    pub fn next(
        &mut self,
        buf: &mut BytesMut,
        max_bulk: usize,
        authenticated: bool,
    ) -> Result<Option<Vec<Bytes>>, ProtocolError> {
        loop {
            if self.pending == 0 {
                if buf.is_empty() {
                    return Ok(None);
                }
                if buf[0] != b'*' {
                    match parse_inline(buf)? {
                        None => return Ok(None),
                        Some(args) if args.is_empty() => continue,
                        Some(args) => return Ok(Some(args)),
                    }
                }
                let Some((n, used)) = read_line_int(buf, "too big mbulk count string")? else {
                    return Ok(None);
                };
                if n > i32::MAX as i64 || (!authenticated && n > UNAUTH_MAX_ARGS) {
                    return Err(ProtocolError(
                        if n > i32::MAX as i64 {
                            "invalid multibulk length"
                        } else {
                            "unauthenticated multibulk length"
                        }
                        .into(),
                    ));
                }
                buf.advance(used);
                if n <= 0 {
                    continue;
                }
                self.pending = n as usize;
                // Cap the preallocation: the count is client-controlled.
                self.args = Vec::with_capacity(self.pending.min(1024));
            }
            while self.pending > 0 {
                let len = match self.bulk_len {
                    Some(len) => len,
                    None => {
                        if buf.is_empty() {
                            return Ok(None);
                        }
                        if buf[0] != b'$' {
                            return Err(ProtocolError(format!(
                                "expected '$', got '{}'",
                                buf[0] as char
                            )));
                        }
                        let Some((n, used)) = read_line_int(buf, "too big bulk count string")?
                        else {
                            return Ok(None);
                        };
                        if n < 0 || n as u64 > max_bulk as u64 {
                            return Err(ProtocolError("invalid bulk length".into()));
                        }
                        if !authenticated && n > UNAUTH_MAX_BULK {
                            return Err(ProtocolError("unauthenticated bulk length".into()));
                        }
                        buf.advance(used);
                        let len = n as usize;
                        self.bulk_len = Some(len);
                        // Room for a big argument up front saves copies, but only up to 1 MiB: a header
                        // alone must not make the server allocate proto-max-bulk-len bytes.
                        let want = (len + 2).min(1 << 20);
                        if buf.capacity() - buf.len() < want {
                            buf.reserve(want);
                        }
                        len
                    }
                };
                if buf.len() < len + 2 {
                    return Ok(None);
                }
                let arg = buf.split_to(len).freeze();
                buf.advance(2);
                self.args_bytes += len;
                self.args.push(arg);
                self.bulk_len = None;
                self.pending -= 1;
            }
            self.args_bytes = 0;
            return Ok(Some(std::mem::take(&mut self.args)));
        }
    }
}

/// Reads `<prefix><integer>\r` + one more byte, as Valkey does (it skips the byte after `\r` unchecked).
/// Returns the value and the bytes consumed, or None when the line is incomplete.
fn read_line_int(buf: &[u8], too_big: &'static str) -> Result<Option<(i64, usize)>, ProtocolError> {
    let Some(cr) = memchr::memchr(b'\r', buf) else {
        if buf.len() > PROTO_INLINE_MAX_SIZE {
            return Err(ProtocolError(too_big.into()));
        }
        return Ok(None);
    };
    if cr + 1 >= buf.len() {
        return Ok(None);
    }
    let digits = &buf[1..cr];
    let Some(n) = parse_i64_strict(digits) else {
        let what = if buf[0] == b'*' {
            "invalid multibulk length"
        } else {
            "invalid bulk length"
        };
        return Err(ProtocolError(what.into()));
    };
    Ok(Some((n, cr + 2)))
}

/// Valkey's `string2ll`: optional '-', no '+', no leading zeros, no spaces, fits in i64.
pub fn parse_i64_strict(s: &[u8]) -> Option<i64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    if s == b"0" {
        return Some(0);
    }
    let (neg, digits) = match s[0] {
        b'-' => (true, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() || digits[0] == b'0' {
        return None;
    }
    let mut v: u64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add((c - b'0') as u64)?;
    }
    if neg {
        if v > i64::MAX as u64 + 1 {
            return None;
        }
        Some((v as i64).wrapping_neg())
    } else {
        i64::try_from(v).ok()
    }
}

fn parse_inline(buf: &mut BytesMut) -> Result<Option<Vec<Bytes>>, ProtocolError> {
    let Some(nl) = memchr::memchr(b'\n', buf) else {
        if buf.len() > PROTO_INLINE_MAX_SIZE {
            return Err(ProtocolError("too big inline request".into()));
        }
        return Ok(None);
    };
    let line = buf.split_to(nl + 1);
    let mut end = nl;
    if end > 0 && line[end - 1] == b'\r' {
        end -= 1;
    }
    match split_inline_args(&line[..end]) {
        Some(args) => Ok(Some(args.into_iter().map(Bytes::from).collect())),
        None => Err(ProtocolError("unbalanced quotes in request".into())),
    }
}

/// Valkey's `sdssplitargs`: whitespace-separated words, "double quotes" with C escapes (\n \r \t \b \a
/// \\ \" \xHH), 'single quotes' with only \' escaped. A closing quote must be followed by a space or the
/// end. Returns None for unbalanced quotes. Used for inline commands and config files alike.
pub fn split_inline_args(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    // Valkey splits a C string: a NUL byte ends the line.
    let line = &line[..memchr::memchr(0, line).unwrap_or(line.len())];
    let mut out = Vec::new();
    let mut i = 0;
    let n = line.len();
    loop {
        while i < n && line[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= n {
            return Some(out);
        }
        let mut cur = Vec::new();
        let mut inq = false;
        let mut insq = false;
        loop {
            if inq {
                if i >= n {
                    return None;
                }
                let c = line[i];
                if c == b'\\'
                    && i + 3 < n
                    && line[i + 1] == b'x'
                    && is_hex(line[i + 2])
                    && is_hex(line[i + 3])
                {
                    cur.push(hex(line[i + 2]) * 16 + hex(line[i + 3]));
                    i += 3;
                } else if c == b'\\' && i + 1 < n {
                    i += 1;
                    cur.push(match line[i] {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 8,
                        b'a' => 7,
                        o => o,
                    });
                } else if c == b'"' {
                    if i + 1 < n && !line[i + 1].is_ascii_whitespace() {
                        return None;
                    }
                    i += 1;
                    break;
                } else {
                    cur.push(c);
                }
            } else if insq {
                if i >= n {
                    return None;
                }
                let c = line[i];
                if c == b'\\' && i + 1 < n && line[i + 1] == b'\'' {
                    i += 1;
                    cur.push(b'\'');
                } else if c == b'\'' {
                    if i + 1 < n && !line[i + 1].is_ascii_whitespace() {
                        return None;
                    }
                    i += 1;
                    break;
                } else {
                    cur.push(c);
                }
            } else {
                if i >= n {
                    break;
                }
                match line[i] {
                    b' ' | b'\n' | b'\r' | b'\t' => break,
                    b'"' => inq = true,
                    b'\'' => insq = true,
                    c => cur.push(c),
                }
            }
            i += 1;
        }
        out.push(cur);
    }
}

fn is_hex(c: u8) -> bool {
    c.is_ascii_hexdigit()
}

fn hex(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        _ => c - b'A' + 10,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MAX: usize = 512 * 1024 * 1024;

    fn parse_all(input: &[u8]) -> Result<Vec<Vec<Bytes>>, ProtocolError> {
        let mut p = RequestParser::new();
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        while let Some(cmd) = p.next(&mut buf, MAX, true)? {
            out.push(cmd);
        }
        Ok(out)
    }

    fn encode(args: &[Vec<u8>]) -> Vec<u8> {
        let mut v = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            v.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            v.extend_from_slice(a);
            v.extend_from_slice(b"\r\n");
        }
        v
    }

    #[test]
    fn multibulk_and_inline() {
        let cmds = parse_all(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\nPING\r\nset a \"b c\"\n").unwrap();
        assert_eq!(cmds.len(), 3);
        assert_eq!(cmds[0], vec![Bytes::from("GET"), Bytes::from("k")]);
        assert_eq!(cmds[1], vec![Bytes::from("PING")]);
        assert_eq!(
            cmds[2],
            vec![Bytes::from("set"), Bytes::from("a"), Bytes::from("b c")]
        );
    }

    #[test]
    fn errors_use_valkey_words() {
        assert_eq!(
            parse_all(b"*1\r\n+x\r\n").unwrap_err().to_string(),
            "Protocol error: expected '$', got '+'"
        );
        assert_eq!(
            parse_all(b"*x\r\n").unwrap_err().0,
            "invalid multibulk length"
        );
        assert_eq!(
            parse_all(b"*1\r\n$-5\r\n").unwrap_err().0,
            "invalid bulk length"
        );
        assert_eq!(
            parse_all(b"set \"a\n").unwrap_err().0,
            "unbalanced quotes in request"
        );
        let big = vec![b'a'; PROTO_INLINE_MAX_SIZE + 1];
        assert_eq!(parse_all(&big).unwrap_err().0, "too big inline request");
        let mut p = RequestParser::new();
        let mut buf = BytesMut::from(&b"*100\r\n"[..]);
        assert_eq!(
            p.next(&mut buf, MAX, false).unwrap_err().0,
            "unauthenticated multibulk length"
        );
        let mut buf = BytesMut::from(&b"*1\r\n$10\r\n"[..]);
        assert_eq!(
            p.next(&mut buf, 5, true).unwrap_err().0,
            "invalid bulk length"
        );
    }

    #[test]
    fn empty_commands_are_skipped() {
        assert_eq!(
            parse_all(b"*0\r\n\r\n*-1\r\nPING\r\n").unwrap(),
            vec![vec![Bytes::from("PING")]]
        );
    }

    #[test]
    fn inline_quoting() {
        assert_eq!(
            split_inline_args(br#"a "x\x41\n" 'it\'s'"#).unwrap(),
            vec![b"a".to_vec(), b"xA\n".to_vec(), b"it's".to_vec()]
        );
        assert!(split_inline_args(br#""a"b"#).is_none());
        assert!(split_inline_args(b"'abc").is_none());
        assert_eq!(split_inline_args(b"a\0b c").unwrap(), vec![b"a".to_vec()]);
    }

    #[test]
    fn strict_integers() {
        assert_eq!(parse_i64_strict(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_i64_strict(b"9223372036854775807"), Some(i64::MAX));
        for bad in [
            &b"9223372036854775808"[..],
            b"01",
            b"+1",
            b" 1",
            b"-",
            b"",
            b"-0",
            b"1.0",
        ] {
            assert_eq!(parse_i64_strict(bad), None, "{:?}", bad);
        }
    }

    proptest! {
        /// Any command, split at any points, parses back to itself.
        #[test]
        fn round_trip_any_split(args in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 1..6),
                                cuts in prop::collection::vec(0usize..200, 0..6)) {
            let wire = encode(&args);
            let mut p = RequestParser::new();
            let mut buf = BytesMut::new();
            let mut got = None;
            let mut pos = 0;
            let mut points: Vec<usize> = cuts.into_iter().map(|c| c % (wire.len() + 1)).collect();
            points.sort();
            points.push(wire.len());
            for end in points {
                if end < pos { continue; }
                buf.extend_from_slice(&wire[pos..end]);
                pos = end;
                if let Some(cmd) = p.next(&mut buf, MAX, true).unwrap() {
                    got = Some(cmd);
                }
            }
            let got: Vec<Vec<u8>> = got.expect("complete").into_iter().map(|b| b.to_vec()).collect();
            prop_assert_eq!(got, args);
            prop_assert!(buf.is_empty());
        }

        /// Arbitrary bytes never panic: they parse, wait for more, or give a protocol error.
        #[test]
        fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..300)) {
            let mut p = RequestParser::new();
            let mut buf = BytesMut::from(&data[..]);
            for _ in 0..400 {
                match p.next(&mut buf, 1000, true) {
                    Ok(Some(_)) => continue,
                    Ok(None) | Err(_) => break,
                }
            }
        }
    }
}
