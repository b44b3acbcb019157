//! A TCP relay between a replica and its primary, so the scenarios can cut the replication link for a
//! chosen time on any server: while cut, every relayed connection is closed and new ones are refused
//! (accepted and closed at once), as a network partition looks to both ends. While held, connections stay
//! open but nothing is forwarded (a stalled network: bytes wait in the kernel's buffers).

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct Proxy {
    pub port: u16,
    cut: Arc<AtomicBool>,
    held: Arc<AtomicBool>,
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
                        relay(client.try_clone().ok(), server.try_clone().ok(), h2.clone());
                        relay(Some(server), Some(client), h2.clone());
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(1)),
                }
            }
        });
        Ok(Proxy {
            port,
            cut,
            held,
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
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.cut();
    }
}

fn relay(from: Option<TcpStream>, to: Option<TcpStream>, held: Arc<AtomicBool>) {
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
