//! Crash tests of the WAL writer and recovery against a disk that fails on purpose (wal/sim.rs): for many
//! seeds, units are appended and written with group commit while the Nth write fails or tears, the Nth sync
//! fails or the Nth segment creation fails, then power is cut at a random moment. Recovery must give back
//! a prefix of the units appended, byte for byte, containing every unit that was acknowledged (synced) and
//! none that was reported failed (only once the writer undid it).

use tandem_sync::replid::{Identity, ReplId};
use tandem_sync::unit::UnitWriter;
use tandem_sync::wal::recover::chain;
use tandem_sync::wal::sim::{Faults, SimDisk};
use tandem_sync::wal::writer::Config;
use tandem_sync::wal::{Fsync, Op, Start, Writer};

struct Rng(u64);
impl Rng {
    fn next(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

fn unit(start: u64, i: u64, size: usize) -> Vec<u8> {
    let mut w = UnitWriter::default();
    w.set_time(i);
    let key = format!("k{i}");
    w.record(0, &[&b"SET"[..], key.as_bytes(), &vec![b'v'; size]]);
    w.seal(start).unwrap()
}

#[derive(Default, Debug)]
struct Outcome {
    acked: u64,
    refused: u64,
    recovered: u64,
    failures: u64,
}

/// One run: returns what happened, panicking on any violation.
fn run(seed: u64) -> Outcome {
    let mut rng = Rng(seed * 2654435761 + 1);
    let mut pick = |n: u64| rng.next(n);
    let faults = Faults {
        fail_write: (pick(3) == 0).then(|| 1 + pick(30)),
        tear_write: (pick(3) == 0).then(|| 1 + pick(30)),
        fail_sync: (pick(3) == 0).then(|| 1 + pick(30)),
        fail_create: (pick(6) == 0).then(|| 1 + pick(4)),
    };
    let mut disk = SimDisk::new(seed, faults);
    let id = Identity::new(ReplId::from_random([seed as u8; 20]));
    let cfg = Config {
        shard: 0,
        shards: 1,
        segment_size: 512 + pick(4096),
        fsync: [Fsync::Always, Fsync::Always, Fsync::EverySec, Fsync::No][pick(4) as usize],
    };
    let mut w = Writer::new(
        cfg,
        id,
        Start::Fresh {
            offset: 0,
            based: false,
        },
    );
    // Every unit appended: (start, bytes).
    let mut units: Vec<(u64, Vec<u8>)> = Vec::new();
    let (mut acked_upto, mut refused_from) = (0u64, None::<u64>);
    let steps = 20 + pick(200);
    let mut now = 0;
    let mut flight: Vec<(u64, Op)> = Vec::new();
    for i in 0..steps {
        now += pick(300);
        for _ in 0..pick(4) {
            let start = w.end();
            let u = unit(start, i, pick(3) as usize * 100);
            w.append(&u);
            if w.failed().is_none() {
                units.push((start, u));
            }
        }
        // Operations are issued while others are in flight, and complete in any order.
        for _ in 0..pick(8) {
            if pick(2) == 0 {
                if let Some((t, op)) = w.poll(now) {
                    let r = disk.start(&op);
                    match (&op, r) {
                        (Op::Write { .. }, Ok(())) => flight.push((t, op)),
                        (_, r) => w.done(t, r, now),
                    }
                    continue;
                }
            }
            if !flight.is_empty() {
                let (t, op) = flight.remove(pick(flight.len() as u64) as usize);
                let r = disk.finish(&op);
                w.done(t, r, now);
            }
        }
        // A client is told its write is acknowledged once synced, failed once undone.
        acked_upto = acked_upto.max(w.synced());
        if w.undone() && refused_from.is_none() {
            refused_from = Some(w.synced());
        }
    }
    disk.power_cut();
    let files: Vec<(u64, Vec<u8>)> = disk
        .files
        .iter()
        .map(|(s, f)| (*s, f.durable.clone()))
        .collect();
    let segs: Vec<(u64, &[u8])> = files.iter().map(|(s, b)| (*s, &b[..])).collect();
    let c = chain(&segs, 0, 0, 1).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
    let mut recovered = Vec::new();
    for (seg, f) in c.units(0) {
        let b = &files.iter().find(|x| x.0 == seg).unwrap().1;
        recovered.push((f.offset, b[f.pos..f.pos + f.len].to_vec()));
    }
    // A prefix of what was appended, byte for byte.
    assert!(recovered.len() <= units.len(), "seed {seed}");
    for (r, u) in recovered.iter().zip(&units) {
        assert_eq!(r, u, "seed {seed}: recovered unit differs");
    }
    assert_eq!(
        c.end,
        recovered.last().map_or(0, |r| r.0 + r.1.len() as u64)
    );
    assert!(
        c.end >= acked_upto,
        "seed {seed}: acknowledged {acked_upto}, recovered to {}",
        c.end
    );
    if let Some(f) = refused_from {
        assert!(
            c.end <= f,
            "seed {seed}: a unit reported failed (from {f}) came back (log to {})",
            c.end
        );
    }
    Outcome {
        acked: units
            .iter()
            .filter(|u| u.0 + u.1.len() as u64 <= acked_upto)
            .count() as u64,
        refused: refused_from.map_or(0, |f| units.iter().filter(|u| u.0 >= f).count() as u64),
        recovered: recovered.len() as u64,
        failures: w.failed().is_some() as u64,
    }
}

#[test]
fn no_acknowledged_unit_is_lost_and_no_failed_one_comes_back() {
    let mut total = Outcome::default();
    for seed in 1..=3000 {
        let o = run(seed);
        total.acked += o.acked;
        total.refused += o.refused;
        total.recovered += o.recovered;
        total.failures += o.failures;
    }
    // The runs exercised both sides of the promise.
    assert!(total.acked > 10_000, "{total:?}");
    assert!(total.refused > 1_000, "{total:?}");
    assert!(total.failures > 500, "{total:?}");
    eprintln!("{total:?}");
}

/// A writer of shard 0 of 1 with 1 MiB segments, starting a log at 0.
fn fresh(fsync: Fsync) -> Writer {
    let cfg = Config {
        shard: 0,
        shards: 1,
        segment_size: 1 << 20,
        fsync,
    };
    let start = Start::Fresh {
        offset: 0,
        based: false,
    };
    Writer::new(cfg, Identity::new(ReplId::zero()), start)
}

/// Group commit: units appended while the disk is busy are written by one durable write (`O_DSYNC`) that
/// covers them all.
#[test]
fn one_sync_covers_every_unit_waiting() {
    let mut disk = SimDisk::new(1, Faults::default());
    let mut w = fresh(Fsync::Always);
    let (t, op) = w.poll(0).unwrap();
    w.done(t, disk.apply(&op), 0);
    for i in 0..50 {
        let u = unit(w.end(), i, 10);
        w.append(&u);
    }
    let mut ops = 0;
    while let Some((t, op)) = w.poll(0) {
        w.done(t, disk.apply(&op), 0);
        ops += 1;
    }
    assert_eq!((ops, disk.writes, disk.syncs), (1, 1, 1));
    assert_eq!(w.synced(), w.end());
}

/// everysec syncs at most once a second; no never syncs on its own.
#[test]
fn fsync_policies_decide_when_to_sync() {
    for (policy, at_500, at_1000) in [
        (Fsync::EverySec, 0, 1),
        (Fsync::No, 0, 0),
        (Fsync::Always, 1, 1),
    ] {
        let mut disk = SimDisk::new(1, Faults::default());
        let mut w = fresh(policy);
        let drive = |w: &mut Writer, disk: &mut SimDisk, now| {
            while let Some((t, op)) = w.poll(now) {
                w.done(t, disk.apply(&op), now);
            }
        };
        drive(&mut w, &mut disk, 1000);
        let u = unit(w.end(), 1, 10);
        w.append(&u);
        drive(&mut w, &mut disk, 1500);
        assert_eq!(disk.syncs, at_500, "{policy:?}");
        drive(&mut w, &mut disk, 2000);
        assert_eq!(disk.syncs, at_1000, "{policy:?}");
    }
}
