//! Reply framing: how long the next complete reply is, and its error prefix if it is an error. Every reply
//! is read whole and checked; nothing is skipped on trust.

/// A complete reply at the start of a buffer.
#[derive(Debug, PartialEq, Eq)]
pub struct Framed {
    pub len: usize,
    /// The first word of an error reply (`ERR`, `WRONGTYPE`, `OOM`...).
    pub error: Option<String>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum FrameError {
    /// The bytes are not RESP: the connection is unusable.
    Malformed(String),
}

fn line(buf: &[u8], at: usize) -> Option<(&[u8], usize)> {
    let rel = memchr::memchr(b'\n', &buf[at..])?;
    let end = at + rel;
    if end == at || buf[end - 1] != b'\r' {
        return None;
    }
    Some((&buf[at..end - 1], end + 1))
}

fn count(body: &[u8]) -> Result<i64, FrameError> {
    std::str::from_utf8(body)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            FrameError::Malformed(format!("bad length '{}'", String::from_utf8_lossy(body)))
        })
}

/// Frames the reply starting at `at`; Ok(None) if incomplete.
fn frame_at(buf: &[u8], at: usize) -> Result<Option<(usize, Option<String>)>, FrameError> {
    if at >= buf.len() {
        return Ok(None);
    }
    let Some((body, next)) = line(buf, at + 1) else {
        return Ok(None);
    };
    match buf[at] {
        b'+' | b':' | b'_' | b',' | b'#' | b'(' => Ok(Some((next, None))),
        b'-' => {
            let word = body.split(|&c| c == b' ').next().unwrap_or(b"");
            Ok(Some((
                next,
                Some(String::from_utf8_lossy(word).into_owned()),
            )))
        }
        b'$' | b'=' | b'!' => {
            let n = count(body)?;
            if n < 0 {
                return Ok(Some((next, None)));
            }
            let end = next + n as usize + 2;
            if buf.len() < end {
                return Ok(None);
            }
            let err = (buf[at] == b'!').then(|| {
                let b = &buf[next..next + n as usize];
                String::from_utf8_lossy(b.split(|&c| c == b' ').next().unwrap_or(b"")).into_owned()
            });
            Ok(Some((end, err)))
        }
        b'*' | b'~' | b'>' | b'%' | b'|' => {
            let n = count(body)?;
            let items = if matches!(buf[at], b'%' | b'|') {
                2 * n.max(0)
            } else {
                n.max(0)
            };
            let mut pos = next;
            let mut first_err = None;
            for _ in 0..items {
                match frame_at(buf, pos)? {
                    None => return Ok(None),
                    Some((p, e)) => {
                        pos = p;
                        first_err = first_err.or(e);
                    }
                }
            }
            Ok(Some((pos, first_err)))
        }
        other => Err(FrameError::Malformed(format!(
            "unexpected reply type byte 0x{other:02x}"
        ))),
    }
}

/// Frames the reply at the start of `buf`.
pub fn frame(buf: &[u8]) -> Result<Option<Framed>, FrameError> {
    Ok(frame_at(buf, 0)?.map(|(len, error)| Framed { len, error }))
}

/// Encodes one command as a RESP multibulk.
pub fn encode(out: &mut Vec<u8>, args: &[&[u8]]) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_every_type_and_waits_for_incomplete() {
        let cases: &[(&[u8], usize, Option<&str>)] = &[
            (b"+OK\r\n", 5, None),
            (b"-ERR bad thing\r\n", 16, Some("ERR")),
            (b"-OOM command not allowed\r\n", 26, Some("OOM")),
            (b"$3\r\nabc\r\n", 9, None),
            (b"$-1\r\n", 5, None),
            (b"*2\r\n$1\r\na\r\n-WRONGTYPE x\r\n", 25, Some("WRONGTYPE")),
            (b"%1\r\n+k\r\n:1\r\n", 12, None),
            (b"_\r\n", 3, None),
        ];
        for (wire, len, err) in cases {
            let f = frame(wire).unwrap().unwrap();
            assert_eq!(
                (f.len, f.error.as_deref()),
                (*len, *err),
                "{}",
                String::from_utf8_lossy(wire)
            );
            for cut in 0..wire.len() {
                assert_eq!(
                    frame(&wire[..cut]).unwrap(),
                    None,
                    "prefix of {} at {cut}",
                    String::from_utf8_lossy(wire)
                );
            }
        }
        assert!(frame(b"?x\r\n").is_err());
    }

    #[test]
    fn encodes_multibulk() {
        let mut v = Vec::new();
        encode(&mut v, &[b"SET", b"k", b""]);
        assert_eq!(v, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n");
    }
}
