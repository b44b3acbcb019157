//! Socket helpers of the replication streams: reads that give up when the sync is cancelled or the peer is
//! silent too long, frame and line reading over a buffer, and writes of whole commands.

use crate::runtime::{self, TcpStream};
use bytes::BytesMut;
use compio::buf::BufResult;
use compio::io::{AsyncReadExt, AsyncWriteExt};
use futures_util::future::{select, Either};
use std::io;
use std::pin::pin;
use std::time::{Duration, Instant};
use tandem_sync::frame::Frame;

/// How often a blocked read re-checks its cancel condition.
const POLL: Duration = Duration::from_millis(20);

pub fn err(msg: impl Into<String>) -> io::Error {
    io::Error::other(msg.into())
}

/// Reads more bytes into `buf`; fails on EOF, on `timeout` without data, or when `cancelled()` says so.
/// The read stays pinned across the periodic checks, so no byte is lost to a timer.
pub async fn read_more(
    stream: &mut TcpStream,
    buf: &mut BytesMut,
    timeout: Duration,
    cancelled: impl Fn() -> bool,
) -> io::Result<usize> {
    if buf.capacity() - buf.len() < 64 << 10 {
        buf.reserve(256 << 10);
    }
    let owned = std::mem::take(buf);
    let mut read = pin!(stream.append(owned));
    let deadline = Instant::now() + timeout;
    loop {
        match select(read.as_mut(), pin!(runtime::sleep(POLL))).await {
            Either::Left((BufResult(res, b), _)) => {
                *buf = b;
                return match res {
                    Ok(0) => Err(err("connection closed by the primary")),
                    Ok(n) => Ok(n),
                    Err(e) => Err(e),
                };
            }
            Either::Right(_) => {
                if cancelled() {
                    return Err(err("cancelled"));
                }
                if Instant::now() >= deadline {
                    return Err(err(format!(
                        "no data for {}s (repl-timeout)",
                        timeout.as_secs()
                    )));
                }
            }
        }
    }
}

/// Reads the next frame and the bytes it took on the wire (compressed, header included); an error reply
/// (`-ERR ...`) from the primary instead of a frame is returned as an error with its text.
pub async fn read_frame(
    stream: &mut TcpStream,
    buf: &mut BytesMut,
    timeout: Duration,
    cancelled: &impl Fn() -> bool,
) -> io::Result<(Frame, usize)> {
    loop {
        if buf.first() == Some(&b'-') {
            if let Some(line) = take_line(buf) {
                return Err(err(format!("primary refused the flow: {line}")));
            }
        } else {
            let before = buf.len();
            if let Some(f) = Frame::decode(buf).map_err(|e| err(format!("bad frame: {e}")))? {
                return Ok((f, before - buf.len()));
            }
        }
        read_more(stream, buf, timeout, cancelled).await?;
    }
}

/// Takes one `\r\n`-terminated line off the front of `buf`.
pub fn take_line(buf: &mut BytesMut) -> Option<String> {
    let pos = memchr::memmem::find(buf, b"\r\n")?;
    let line = buf.split_to(pos + 2);
    Some(String::from_utf8_lossy(&line[..pos]).into_owned())
}

pub async fn read_line(
    stream: &mut TcpStream,
    buf: &mut BytesMut,
    timeout: Duration,
    cancelled: &impl Fn() -> bool,
) -> io::Result<String> {
    loop {
        if let Some(l) = take_line(buf) {
            return Ok(l);
        }
        read_more(stream, buf, timeout, cancelled).await?;
    }
}

/// Encodes a command as a RESP array of bulk strings.
pub fn command(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

pub async fn write(stream: &mut TcpStream, data: Vec<u8>) -> io::Result<()> {
    let BufResult(res, _) = stream.write_all(data).await;
    res
}

/// Connects to `host:port` within `timeout`, from `bind-source-addr` when it is set (as Valkey's
/// outgoing replication and cluster-bus connections do).
pub async fn connect(host: &str, port: u16, timeout: Duration) -> io::Result<TcpStream> {
    // A bare IPv6 address (as the group record's addresses are split) gets its brackets back.
    let addr = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let source = runtime::current_local()
        .shard
        .borrow()
        .settings
        .bind_source_addr;
    let target: Option<std::net::SocketAddr> = addr.parse().ok();
    let a2 = addr.clone();
    let open = async move {
        match (source, target) {
            (Some(src), Some(to)) => {
                let s = if to.is_ipv4() {
                    compio::net::TcpSocket::new_v4().await?
                } else {
                    compio::net::TcpSocket::new_v6().await?
                };
                s.bind(std::net::SocketAddr::new(src, 0)).await?;
                s.connect(to).await
            }
            _ => TcpStream::connect(a2).await,
        }
    };
    match select(pin!(open), pin!(runtime::sleep(timeout))).await {
        Either::Left((r, _)) => {
            let s = r?;
            let _ = s.set_nodelay(true);
            Ok(s)
        }
        Either::Right(_) => Err(err(format!("timeout connecting to {addr}"))),
    }
}
