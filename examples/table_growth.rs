//! Worst single-insert time while a table grows to N keys: Tandem's SegTable against one hashbrown map
//! (which rehashes everything when it doubles). Run: `cargo run --release --example table_growth [N]`.
//! Prints the slowest inserts and how many took over 1 ms; numbers are wall-clock on this machine.

use std::time::Instant;

// The server's allocator, so allocation costs are those the server pays.
#[global_allocator]
static GLOBAL: tandem_server::alloc::Counting = tandem_server::alloc::Counting;
use tandem_server::store::segtable::SegTable;
use tandem_server::store::Entry;

/// Inserts keys 0..n with `insert`, timing each; reports the slowest and how many took over 1 ms.
fn measure(name: &str, n: usize, mut insert: impl FnMut(String)) {
    let (mut worst, mut over_1ms) = (Vec::new(), 0);
    let start = Instant::now();
    for i in 0..n {
        let key = format!("key:{i}");
        let t0 = Instant::now();
        insert(key);
        let ns = t0.elapsed().as_nanos();
        over_1ms += (ns > 1_000_000) as usize;
        if ns > 200_000 {
            worst.push((ns, i));
        }
    }
    let total = start.elapsed().as_secs_f64();
    worst.sort_unstable_by(|a, b| b.cmp(a));
    let top: Vec<String> = worst
        .iter()
        .take(3)
        .map(|(ns, i)| format!("{:.3} ms at {i}", *ns as f64 / 1e6))
        .collect();
    println!(
        "{name:<22} {n} inserts in {total:.1} s; slowest: {}; inserts over 1 ms: {over_1ms}",
        top.join(", ")
    );
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_000_000);
    let mut table = SegTable::new(42);
    measure("SegTable", n, |k| {
        table.insert(Entry::new(k.as_bytes(), &[0u8; 16], None));
    });
    drop(table);
    // The server's structure: one shard owning all 16384 slots, a table per slot.
    let mut ks = tandem_server::store::Keyspace::new(0..tandem_server::slot::SLOTS, 1, 42);
    measure("Keyspace (slot tables)", n, |k| {
        ks.set(0, k.as_bytes(), &[0u8; 100], None, 0);
    });
    drop(ks);
    let mut map: hashbrown::HashMap<Vec<u8>, Vec<u8>, foldhash::fast::RandomState> =
        Default::default();
    measure("hashbrown::HashMap", n, |k| {
        map.insert(k.into_bytes(), vec![0u8; 16]);
    });
}
