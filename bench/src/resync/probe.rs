//! The write probe of the rejoin scenario: SETs at a fixed rate against whichever server is the primary
//! now, reconnecting when it changes or dies, recording per-second latency and errors, so the write
//! availability the clients saw can be told from the figures.

use super::client::Client;
use crate::load::report::Second;
use crate::load::stats::{histogram, Summary};
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct Probe {
    pub target: Arc<AtomicU16>,
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<ProbeReport>,
    pub started: Instant,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ProbeReport {
    pub per_second: Vec<Second>,
    pub ok: u64,
    pub failed: u64,
    /// Longest stretch without a successful write (s).
    pub longest_gap_s: f64,
}

impl Probe {
    pub fn start(port: u16, rate: u64) -> Probe {
        let target = Arc::new(AtomicU16::new(port));
        let stop = Arc::new(AtomicBool::new(false));
        let (t2, s2) = (target.clone(), stop.clone());
        let started = Instant::now();
        let handle = std::thread::spawn(move || run(t2, s2, rate.max(1), started));
        Probe {
            target,
            stop,
            handle,
            started,
        }
    }

    pub fn finish(self) -> ProbeReport {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().expect("probe thread")
    }
}

fn run(target: Arc<AtomicU16>, stop: Arc<AtomicBool>, rate: u64, start: Instant) -> ProbeReport {
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let mut conn: Option<(u16, Client)> = None;
    let mut hist = histogram();
    let mut second = 0u64;
    let (mut ops, mut errors) = (0u64, 0u64);
    let mut per_second = Vec::new();
    let (mut ok, mut failed) = (0u64, 0u64);
    let mut last_ok = start;
    let mut longest = Duration::ZERO;
    let mut next = Instant::now();
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        if now < next {
            std::thread::sleep(next - now);
        }
        next += interval;
        let s = start.elapsed().as_secs();
        while s > second {
            let sum = Summary::of(&hist, errors, 1.0);
            per_second.push(Second {
                second: second + 1,
                ops,
                errors,
                p50_ms: sum.p50_ms,
                p99_ms: sum.p99_ms,
                p999_ms: sum.p999_ms,
                max_ms: sum.max_ms,
            });
            hist = histogram();
            ops = 0;
            errors = 0;
            second += 1;
        }
        let port = target.load(Ordering::Relaxed);
        if conn.as_ref().is_none_or(|(p, _)| *p != port) {
            conn = Client::connect(port).ok().map(|c| (port, c));
        }
        let t0 = Instant::now();
        let res = match conn.as_mut() {
            Some((_, c)) => c.cmd(&["SET", &format!("probe:{}", i % 10_000), &i.to_string()]),
            None => Err(std::io::Error::other("no connection")),
        };
        i += 1;
        match res {
            Ok(super::client::Value::Simple(_)) => {
                hist.saturating_record(t0.elapsed().as_micros().max(1) as u64);
                ops += 1;
                ok += 1;
                longest = longest.max(t0 - last_ok);
                last_ok = Instant::now();
            }
            Ok(_) => {
                errors += 1;
                failed += 1;
            }
            Err(_) => {
                errors += 1;
                failed += 1;
                conn = None;
            }
        }
    }
    ProbeReport {
        per_second,
        ok,
        failed,
        longest_gap_s: longest
            .max(last_ok.elapsed().min(Duration::ZERO))
            .as_secs_f64(),
    }
}
