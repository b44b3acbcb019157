//! A TCP relay between a replica and its primary, so the scenarios can cut the replication link for a
//! chosen time on any server: while cut, every relayed connection is closed and new ones are refused
//! (accepted and closed at once), as a network partition looks to both ends. While held, connections stay
//! open but nothing is forwarded (a stalled network: bytes wait in the kernel's buffers). With a delay,
//! every chunk waits that long before it is forwarded (a slow link).

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct Proxy {
    pub port: u16,
    cut: Arc<AtomicBool>,
    held: Arc<AtomicBool>,
    delay_ms: Arc<AtomicU64>,
    open: Arc<Mutex<Vec<TcpStream>>>,
    stop: Arc<AtomicBool>,
}

impl Proxy {
    pub fn start(target: u16) -> std::io::Result<Proxy> {
        let l = TcpListener::bind("127.0.0.1:0")?;
        let port = l.local_addr()?.port();
        l.set_nonblocking(true)?;
        let cut = Arc::new(AtomicBool::new(false));
        let held = Arc::new(AtomicBool::new(false));
        let delay_ms = Arc::new(AtomicU64::new(0));
        let d2 = delay_ms.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let open: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (c2, s2, o2, h2) = (cut.clone(), stop.clone(), open.clone(), held.clone());
        std::thread::spawn(move || {
            while !s2.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((client, _)) => {
                        let _ = client.set_nonblocking(false);
                        if c2.load(Ordering::Relaxed) {
                            continue; // dropped: refused while cut
                        }
                        let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                            continue;
                        };
                        let _ = (client.set_nodelay(true), server.set_nodelay(true));
                        if let (Ok(a), Ok(b)) = (client.try_clone(), server.try_clone()) {
                            let mut v = o2.lock().expect("proxy list");
                            v.push(a);
                            v.push(b);
                        }
                        let link = (h2.clone(), d2.clone());
                        relay(
                            client.try_clone().ok(),
                            server.try_clone().ok(),
                            link.clone(),
                        );
                        relay(Some(server), Some(client), link);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(1)),
                }
            }
        });
        Ok(Proxy {
            port,
            cut,
            held,
            delay_ms,
            open,
            stop,
        })
    }

    /// Closes every relayed connection and refuses new ones until `resume`.
    pub fn cut(&self) {
        self.cut.store(true, Ordering::Relaxed);
        for s in self.open.lock().expect("proxy list").drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    pub fn resume(&self) {
        self.cut.store(false, Ordering::Relaxed);
    }

    /// Stops forwarding in both directions, connections left open, until `release`.
    pub fn hold(&self) {
        self.held.store(true, Ordering::Relaxed);
    }

    pub fn release(&self) {
        self.held.store(false, Ordering::Relaxed);
    }

    /// Every chunk relayed from now on waits `ms` first (0: none).
    pub fn delay(&self, ms: u64) {
        self.delay_ms.store(ms, Ordering::Relaxed);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.cut();
    }
}

fn relay(
    from: Option<TcpStream>,
    to: Option<TcpStream>,
    (held, delay_ms): (Arc<AtomicBool>, Arc<AtomicU64>),
) {
    let (Some(mut from), Some(mut to)) = (from, to) else {
        return;
    };
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 << 10];
        loop {
            while held.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(1));
            }
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let d = delay_ms.load(Ordering::Relaxed);
                    if d > 0 {
                        std::thread::sleep(Duration::from_millis(d));
                    }
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to.shutdown(Shutdown::Both);
        let _ = from.shutdown(Shutdown::Both);
    });
}
