//! One connection's request loop: build up to `pipeline` requests, send them together, read and check
//! every reply, record each one's latency from the moment its batch was sent.

use super::keys::KeyGen;
use super::options::Plan;
use super::resp::{encode, frame};
use super::stats::{histogram, Interval, KindStats};
use bytes::{Buf, BytesMut};
use compio::buf::BufResult;
use compio::io::{AsyncReadExt, AsyncWriteExt};
use compio::net::TcpStream;
use rand::rngs::SmallRng;
use rand::SeedableRng;
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What the connections of one thread count together.
pub struct ThreadStats {
    pub kinds: Vec<KindStats>,
    pub interval: Interval,
}

impl ThreadStats {
    pub fn new(kinds: usize) -> Self {
        ThreadStats {
            kinds: (0..kinds).map(|_| KindStats::default()).collect(),
            interval: Interval {
                second: 0,
                ops: 0,
                errors: 0,
                hist: histogram(),
            },
        }
    }
}

pub struct Conn {
    pub plan: Arc<Plan>,
    pub stats: Rc<RefCell<ThreadStats>>,
    pub index: usize,
    pub start: Instant,
}

/// The weighted mix, expanded: kind i appears weight_i times, so a connection cycles through it.
fn schedule(plan: &Plan) -> Vec<usize> {
    plan.kinds
        .iter()
        .enumerate()
        .flat_map(|(i, k)| std::iter::repeat_n(i, k.weight as usize))
        .collect()
}

async fn read_reply(stream: &mut TcpStream, buf: &mut BytesMut) -> Result<Option<String>, String> {
    loop {
        match frame(buf).map_err(|e| format!("{e:?}"))? {
            Some(f) => {
                buf.advance(f.len);
                return Ok(f.error);
            }
            None => {
                if buf.capacity() - buf.len() < 4096 {
                    buf.reserve(16384);
                }
                let BufResult(res, b) = stream.append(std::mem::take(buf)).await;
                *buf = b;
                match res {
                    Ok(0) => return Err("server closed the connection".into()),
                    Ok(_) => {}
                    Err(e) => return Err(format!("read: {e}")),
                }
            }
        }
    }
}

async fn send(stream: &mut TcpStream, out: Vec<u8>) -> Result<Vec<u8>, String> {
    let BufResult(res, out) = stream.write_all(out).await;
    res.map_err(|e| format!("write: {e}"))?;
    Ok(out)
}

impl Conn {
    pub async fn run(self) -> Result<(), String> {
        let a = &self.plan.args;
        let mut stream = TcpStream::connect((a.host.as_str(), a.port))
            .await
            .map_err(|e| format!("connect {}:{}: {e}", a.host, a.port))?;
        let _ = stream.set_nodelay(true);
        let mut inbuf = BytesMut::with_capacity(16384);
        let mut out = Vec::with_capacity(4096);
        // Handshake: failures here are configuration errors, not load errors.
        let mut hello: Vec<Vec<&[u8]>> = Vec::new();
        if let Some(p) = &a.auth {
            hello.push(vec![b"AUTH", p.as_bytes()]);
        }
        if a.resp3 {
            hello.push(vec![b"HELLO", b"3"]);
        }
        for cmd in hello {
            out.clear();
            encode(&mut out, &cmd);
            out = send(&mut stream, out).await?;
            if let Some(e) = read_reply(&mut stream, &mut inbuf).await? {
                return Err(format!("{} refused: {e}", String::from_utf8_lossy(cmd[0])));
            }
        }
        let mut rng = SmallRng::seed_from_u64(0x5eed ^ self.index as u64);
        let mut keys = KeyGen::new(
            a.key_minimum,
            a.key_maximum,
            self.index,
            self.plan.connections,
        );
        let data = vec![b'x'; a.data_size];
        let mix = schedule(&self.plan);
        let mut turn = self.index % mix.len();
        let deadline = self
            .plan
            .test_time
            .map(|t| self.start + Duration::from_secs(t));
        let mut sent = 0u64;
        let mut next_send = Instant::now();
        let mut batch: Vec<usize> = Vec::with_capacity(a.pipeline);
        let mut key = Vec::with_capacity(a.key_prefix.len() + 20);
        loop {
            if deadline.is_some_and(|d| Instant::now() >= d)
                || self.plan.requests.is_some_and(|n| sent >= n)
                || self.plan.stop.load(std::sync::atomic::Ordering::Relaxed)
            {
                return Ok(());
            }
            out.clear();
            batch.clear();
            while batch.len() < a.pipeline && self.plan.requests.is_none_or(|n| sent < n) {
                let k = mix[turn];
                turn = (turn + 1) % mix.len();
                let kind = &self.plan.kinds[k];
                key.clear();
                key.extend_from_slice(a.key_prefix.as_bytes());
                key.extend_from_slice(keys.next(kind.pattern, &mut rng).to_string().as_bytes());
                let args: Vec<&[u8]> = kind
                    .template
                    .iter()
                    .map(|w| match w.as_str() {
                        "__key__" => &key[..],
                        "__data__" => &data[..],
                        other => other.as_bytes(),
                    })
                    .collect();
                encode(&mut out, &args);
                batch.push(k);
                sent += 1;
            }
            if let Some(iv) = self.plan.interval_per_conn {
                let now = Instant::now();
                if next_send > now {
                    compio::time::sleep(next_send - now).await;
                }
                next_send += Duration::from_secs_f64(iv * batch.len() as f64);
            }
            let t0 = Instant::now();
            out = send(&mut stream, out).await?;
            for &k in &batch {
                let err = read_reply(&mut stream, &mut inbuf).await?;
                let usec = t0.elapsed().as_micros() as u64;
                let mut st = self.stats.borrow_mut();
                st.kinds[k].record(usec, err.as_deref());
                st.interval.ops += 1;
                st.interval.errors += err.is_some() as u64;
                st.interval.hist.saturating_record(usec.max(1));
            }
        }
    }
}
