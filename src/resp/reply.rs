//! Reply encoder: the sink every command handler writes into, never a socket.
//!
//! The same handler serves RESP2 and RESP3 clients; the sink picks the wire form (maps become flat arrays in
//! RESP2, nulls become `$-1`, doubles become bulk strings, and so on).

/// The protocol a connection speaks (HELLO 2|3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Proto {
    #[default]
    Resp2,
    Resp3,
}

#[derive(Debug, Default)]
pub struct Reply {
    pub buf: Vec<u8>,
    pub proto: Proto,
}

impl Reply {
    pub fn new(proto: Proto) -> Self {
        Self {
            buf: Vec::with_capacity(64),
            proto,
        }
    }

    /// Room for `n` more bytes, so a long reply grows its buffer once.
    pub fn reserve(&mut self, n: usize) {
        self.buf.reserve(n);
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    fn header(&mut self, tag: u8, n: i64) {
        self.buf.push(tag);
        self.buf
            .extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
        self.buf.extend_from_slice(b"\r\n");
    }

    pub fn ok(&mut self) {
        self.buf.extend_from_slice(b"+OK\r\n");
    }

    pub fn simple(&mut self, s: &str) {
        self.buf.push(b'+');
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.extend_from_slice(b"\r\n");
    }

    /// An error line; `msg` carries its prefix (`ERR ...`, `WRONGTYPE ...`). CR/LF would break framing, so
    /// they are replaced by spaces as Valkey does.
    pub fn error(&mut self, msg: &str) {
        self.buf.push(b'-');
        for &b in msg.as_bytes() {
            self.buf
                .push(if b == b'\r' || b == b'\n' { b' ' } else { b });
        }
        self.buf.extend_from_slice(b"\r\n");
    }

    pub fn int(&mut self, n: i64) {
        self.header(b':', n);
    }

    pub fn bulk(&mut self, s: &[u8]) {
        self.header(b'$', s.len() as i64);
        self.buf.extend_from_slice(s);
        self.buf.extend_from_slice(b"\r\n");
    }

    pub fn bulk_int(&mut self, n: i64) {
        self.bulk(itoa::Buffer::new().format(n).as_bytes());
    }

    pub fn null(&mut self) {
        match self.proto {
            Proto::Resp2 => self.buf.extend_from_slice(b"$-1\r\n"),
            Proto::Resp3 => self.buf.extend_from_slice(b"_\r\n"),
        }
    }

    pub fn null_array(&mut self) {
        match self.proto {
            Proto::Resp2 => self.buf.extend_from_slice(b"*-1\r\n"),
            Proto::Resp3 => self.buf.extend_from_slice(b"_\r\n"),
        }
    }

    pub fn is_resp3(&self) -> bool {
        self.proto == Proto::Resp3
    }

    pub fn array(&mut self, n: usize) {
        self.header(b'*', n as i64);
    }

    pub fn set(&mut self, n: usize) {
        let tag = if self.proto == Proto::Resp3 {
            b'~'
        } else {
            b'*'
        };
        self.header(tag, n as i64);
    }

    /// A map of `n` pairs: `%n` in RESP3, an array of 2n in RESP2.
    pub fn map(&mut self, n: usize) {
        match self.proto {
            Proto::Resp2 => self.header(b'*', 2 * n as i64),
            Proto::Resp3 => self.header(b'%', n as i64),
        }
    }

    pub fn boolean(&mut self, b: bool) {
        match self.proto {
            Proto::Resp2 => self.int(b as i64),
            Proto::Resp3 => self
                .buf
                .extend_from_slice(if b { b"#t\r\n" } else { b"#f\r\n" }),
        }
    }

    /// A double: `,` in RESP3, a bulk string formatted like Valkey's `%.17g` in RESP2.
    pub fn double(&mut self, d: f64) {
        let s = format_double(d);
        match self.proto {
            Proto::Resp2 => self.bulk(s.as_bytes()),
            Proto::Resp3 => {
                self.buf.push(b',');
                self.buf.extend_from_slice(s.as_bytes());
                self.buf.extend_from_slice(b"\r\n");
            }
        }
    }

    /// A verbatim string (INFO, CLIENT INFO, LCS...): `=len\r\ntxt:...` in RESP3, a bulk string in RESP2.
    pub fn verbatim(&mut self, s: &[u8]) {
        match self.proto {
            Proto::Resp2 => self.bulk(s),
            Proto::Resp3 => {
                self.header(b'=', s.len() as i64 + 4);
                self.buf.extend_from_slice(b"txt:");
                self.buf.extend_from_slice(s);
                self.buf.extend_from_slice(b"\r\n");
            }
        }
    }

    /// Appends another reply's bytes (a sub-reply computed on another shard).
    pub fn raw(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }
}

/// Shortest representation that round-trips, with Valkey's spelling of infinities.
pub fn format_double(d: f64) -> String {
    if d.is_infinite() {
        return if d > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if d.is_nan() {
        return "nan".into();
    }
    if d == d.trunc() && d.abs() < 1e17 {
        return format!("{}", d as i64);
    }
    let mut b = ryu::Buffer::new();
    let s = b.format_finite(d);
    // ryu writes 1e20 as "1e20"; Valkey writes "1e+20".
    match s.find('e') {
        Some(i) if !s[i + 1..].starts_with('-') => format!("{}e+{}", &s[..i], &s[i + 1..]),
        _ => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resp2_and_resp3_forms() {
        let mut r2 = Reply::new(Proto::Resp2);
        let mut r3 = Reply::new(Proto::Resp3);
        for r in [&mut r2, &mut r3] {
            r.map(1);
            r.bulk(b"k");
            r.null();
            r.double(1.5);
            r.boolean(true);
        }
        assert_eq!(r2.buf, b"*2\r\n$1\r\nk\r\n$-1\r\n$3\r\n1.5\r\n:1\r\n");
        assert_eq!(r3.buf, b"%1\r\n$1\r\nk\r\n_\r\n,1.5\r\n#t\r\n");
    }

    #[test]
    fn errors_cannot_break_framing() {
        let mut r = Reply::new(Proto::Resp2);
        r.error("ERR a\r\nb");
        assert_eq!(r.buf, b"-ERR a  b\r\n");
    }

    #[test]
    fn doubles_like_valkey() {
        assert_eq!(format_double(3.0), "3");
        assert_eq!(format_double(0.1), "0.1");
        assert_eq!(format_double(-2.5e-7), "-2.5e-7");
        assert_eq!(format_double(f64::INFINITY), "inf");
        assert_eq!(format_double(1e20), "1e+20");
    }
}
