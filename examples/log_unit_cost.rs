//! What logging costs a SET, in process: the keyspace write alone, then the same write logged as one
//! unit per SET (a client at pipeline 1: record, seal with its CRC-32C, append to the backlog) and as one
//! unit per 16 SETs (pipeline 16). Run: `cargo run --release --example log_unit_cost [N]`. Medians of 9
//! interleaved runs of N SETs of 100-byte values over 100k keys; wall-clock on this machine.

use std::time::Instant;
use tandem_server::slot::SLOTS;
use tandem_server::store::Keyspace;
use tandem_sync::backlog::Backlog;
use tandem_sync::unit::UnitWriter;

#[global_allocator]
static GLOBAL: tandem_server::alloc::Counting = tandem_server::alloc::Counting;

fn run(n: usize, keys: &[Vec<u8>], per_unit: usize) -> f64 {
    let mut ks = Keyspace::new(0..SLOTS, 1, 7);
    for k in keys {
        ks.set(0, k, &[b'v'; 100], None, 0);
    }
    let mut unit = UnitWriter::default();
    let mut backlog = Backlog::new(10 << 20, 0);
    let value = [b'w'; 100];
    let t0 = Instant::now();
    for i in 0..n {
        let key = &keys[i % keys.len()];
        ks.set(0, key, &value, None, 0);
        if per_unit > 0 {
            unit.record(0, &[&b"SET"[..], key, &value]);
            if (i + 1) % per_unit == 0 {
                let at = backlog.end_offset();
                unit.seal_to(at, |u| backlog.append(u));
            }
        }
    }
    t0.elapsed().as_nanos() as f64 / n as f64
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(2_000_000);
    let keys: Vec<Vec<u8>> = (0..100_000)
        .map(|i| format!("key:{i:012}").into_bytes())
        .collect();
    // Interleaved repetitions, so a slow moment of the machine hits every configuration alike.
    let configs = [
        ("SET alone", 0),
        ("logged, 1 SET per unit", 1),
        ("logged, 16 SETs per unit", 16),
    ];
    let mut samples: Vec<Vec<f64>> = configs.iter().map(|_| Vec::new()).collect();
    for _ in 0..9 {
        for (i, (_, per)) in configs.iter().enumerate() {
            samples[i].push(run(n, &keys, *per));
        }
    }
    let rows: Vec<(&str, f64)> = configs
        .iter()
        .zip(samples)
        .map(|((name, _), s)| (*name, median(s)))
        .collect();
    let base = rows[0].1;
    for (name, ns) in rows {
        println!(
            "{name:28} {ns:7.1} ns/SET  ({:+.1} ns, {:+.0}% of the SET)",
            ns - base,
            (ns - base) / base * 100.0
        );
    }
}
