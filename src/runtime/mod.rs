//! The thin layer over compio (io_uring, thread per core): shard threads pinned to cores, listeners opened
//! with SO_REUSEPORT so every shard accepts on the same port, and timers; and `local`, the handle each
//! shard thread works through (`Local`, `Tx`, `Shared`, `current_local`); `file`, positioned and synced
//! file writes through the ring; `hangup`, noticing a peer's close while nothing reads its socket.
//! Nothing else in Tandem names compio's runtime directly, so swapping or tuning it stays local here.

pub mod file;
pub mod hangup;
pub mod local;

pub use local::{current_local, Local, Shared, Tx};

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

pub use compio::net::{TcpListener as AsyncListener, TcpStream};
pub use compio::runtime::spawn;

/// Starts a thread running `f` inside a fresh compio runtime, pinned to `core` when given.
pub fn spawn_shard_thread<F, Fut>(
    name: String,
    core: Option<usize>,
    f: F,
) -> io::Result<std::thread::JoinHandle<()>>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    std::thread::Builder::new().name(name).spawn(move || {
        if let Some(c) = core {
            pin_to_core(c);
        }
        let rt = build_runtime().expect("io_uring runtime");
        rt.block_on(f());
    })
}

/// A shard's ring is submitted to only by its own thread, which lets the kernel run completion work when the
/// thread asks for events (DEFER_TASKRUN) instead of interrupting it with IPIs while it runs: on loopback
/// that interruption, and the socket-lock contention it causes with the sender's softirq, was the largest
/// cost of a small request (see docs/performance.md).
fn build_runtime() -> io::Result<compio::runtime::Runtime> {
    let mut proactor = compio::driver::ProactorBuilder::new();
    proactor
        .capacity(4096)
        .single_issuer(true)
        .defer_taskrun(true)
        .coop_taskrun(true);
    compio::runtime::RuntimeBuilder::new()
        .with_proactor(proactor)
        .build()
}

fn pin_to_core(core: usize) {
    // SAFETY: plain libc call on a zeroed cpu_set_t for the current thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(core, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// Opens a listening socket with SO_REUSEPORT (one per shard on the same address).
pub fn reuseport_listener(addr: SocketAddr) -> io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let domain = if addr.is_ipv6() {
        Domain::IPV6
    } else {
        Domain::IPV4
    };
    let s = Socket::new(domain, Type::STREAM, Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.bind(&addr.into())?;
    s.listen(511)?;
    s.set_nonblocking(true)?;
    Ok(s.into())
}

/// A blocking-mode-agnostic duplicate of a connection's socket, to hand it to another shard's thread (each
/// ring only ever touches descriptors of its own thread). The caller drops the original.
pub fn detach(s: &TcpStream) -> io::Result<std::net::TcpStream> {
    use std::os::fd::AsFd;
    Ok(std::net::TcpStream::from(s.as_fd().try_clone_to_owned()?))
}

/// Adopts a socket detached on another shard.
pub fn attach(s: std::net::TcpStream) -> io::Result<TcpStream> {
    TcpStream::from_std(s)
}

pub fn to_async(l: TcpListener) -> io::Result<AsyncListener> {
    AsyncListener::from_std(l)
}

pub async fn sleep(d: Duration) {
    compio::time::sleep(d).await
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Milliseconds of CLOCK_MONOTONIC: never goes back and ignores wall-clock changes, so leases and
/// timeouts measured with it hold however the system time is set. The same clock on every thread.
pub fn mono_ms() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes only the timespec it is given; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
}

pub fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}
