//! What the replication hooks (store/hooks.rs) see of a keyspace: point-in-time snapshots against writes,
//! flushes and swaps made while they are walked (what is sent is exactly the state at the snapshot's
//! start), and log capture of every mutation, expiries included.

use super::Keyspace;
use crate::slot::key_slot;

type Rec = (u16, Vec<u8>, Vec<u8>, Option<u64>);

/// Every live entry of the first `dbs` databases, sorted: what a snapshot taken now must send.
fn state(k: &Keyspace, dbs: usize) -> Vec<Rec> {
    let mut v: Vec<Rec> = (0..dbs)
        .flat_map(|db| {
            k.entries(db, 0).map(move |e| {
                (
                    db as u16,
                    e.key().to_vec(),
                    e.value().to_vec(),
                    e.expire_at(),
                )
            })
        })
        .collect();
    v.sort();
    v
}

fn snapshot_contents(k: &mut Keyspace, id: u64) -> Vec<Rec> {
    let mut out = Vec::new();
    while let Some(p) = k.snapshot_piece(id) {
        for r in tandem_sync::snapshot::chunk(&p[tandem_sync::frame::HEADER_LEN..])
            .unwrap()
            .1
        {
            let r = r.unwrap();
            out.push((r.db, r.key.to_vec(), r.value.to_vec(), r.expire_at));
        }
    }
    out.sort();
    out
}

#[test]
fn snapshot_is_the_state_at_its_start_despite_writes() {
    let mut k = Keyspace::new(100..200, 4, 1);
    let keys: Vec<Vec<u8>> = (0..3000)
        .map(|i| format!("k{i}").into_bytes())
        .filter(|key| (100..200).contains(&(key_slot(key) as usize)))
        .collect();
    for (i, key) in keys.iter().enumerate() {
        k.set(i % 2, key, b"old", (i % 3 == 0).then_some(1_000_000), 0);
    }
    let want = state(&k, 2);
    k.begin_snapshot(7);
    // Writes of every kind interleaved with the walk.
    let mut got = Vec::new();
    let mut n = 0;
    while let Some(p) = k.snapshot_piece(7) {
        for r in tandem_sync::snapshot::chunk(&p[tandem_sync::frame::HEADER_LEN..])
            .unwrap()
            .1
        {
            let r = r.unwrap();
            got.push((r.db, r.key.to_vec(), r.value.to_vec(), r.expire_at));
        }
        for key in keys.iter().skip(n).step_by(7).take(20) {
            k.set(0, key, b"new", None, 0);
            k.remove(1, key, 0);
            if let Some(mut e) = k.get_mut(0, key, 0) {
                e.set_expire(Some(5));
            }
        }
        n += 1;
    }
    got.sort();
    assert_eq!(got, want);
    assert!(k.snapshot(7).is_none(), "forgotten once complete");
    // A second snapshot sees the new state.
    k.begin_snapshot(8);
    let now: Vec<_> = snapshot_contents(&mut k, 8);
    assert_ne!(now, want);
}

/// FLUSHDB, FLUSHALL and SWAPDB in the middle of a snapshot, mixed with writes to every database:
/// the snapshot still sends exactly the state at its start, whatever the order of events.
#[test]
fn snapshot_survives_flushes_and_swaps() {
    for seed in 0..40u64 {
        let mut k = Keyspace::new(100..200, 4, 1);
        let keys: Vec<Vec<u8>> = (0..2000)
            .map(|i| format!("k{i}").into_bytes())
            .filter(|key| (100..200).contains(&(key_slot(key) as usize)))
            .collect();
        for (i, key) in keys.iter().enumerate() {
            k.set(i % 3, key, format!("old{i}").as_bytes(), None, 0);
        }
        let want = state(&k, 4);
        k.begin_snapshot(7);
        let mut got = Vec::new();
        let mut x = seed * 2654435761 + 1;
        let mut rnd = |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % n) as usize
        };
        while let Some(p) = k.snapshot_piece(7) {
            for r in tandem_sync::snapshot::chunk(&p[tandem_sync::frame::HEADER_LEN..])
                .unwrap()
                .1
            {
                let r = r.unwrap();
                got.push((r.db, r.key.to_vec(), r.value.to_vec(), r.expire_at));
            }
            for _ in 0..5 {
                let key = &keys[rnd(keys.len() as u64)];
                match rnd(20) {
                    0 => k.swap_db(rnd(4), rnd(4)),
                    1 => k.flush_db(rnd(4)),
                    2 => (0..4).for_each(|d| k.flush_db(d)),
                    3..=9 => {
                        k.set(rnd(4), key, b"new", None, 0);
                    }
                    _ => {
                        k.remove(rnd(4), key, 0);
                    }
                }
            }
        }
        got.sort();
        assert_eq!(got, want, "seed {seed}");
    }
}

#[test]
fn capture_records_every_mutation_and_logs_expiry_at_once() {
    let mut k = Keyspace::new(0..crate::slot::SLOTS, 16, 3);
    k.hooks.capture = true;
    k.set(0, b"a", b"1", None, 0);
    k.set(0, b"b", b"1", Some(10), 0);
    k.get_mut(0, b"a", 0).unwrap().set_expire(Some(20));
    assert!(k.get(0, b"zz", 0).is_none());
    assert!(k.hooks.unit.is_empty(), "no expiry yet");
    assert!(k.get(0, b"b", 50).is_none(), "lazily expired");
    k.active_expire(100, || false);
    let keys: Vec<_> = k.hooks.dirty.iter().map(|(_, key)| key.clone()).collect();
    assert_eq!(keys, vec![b"a".to_vec(), b"b".to_vec(), b"a".to_vec()]);
    // The two expiries (lazy, then active) were logged as DELs, in order, in the open unit.
    let unit = k.hooks.unit.seal(0).unwrap();
    let u = tandem_sync::unit::Unit::decode(&unit).unwrap().unwrap();
    let dels: Vec<Vec<Vec<u8>>> = u
        .records()
        .map(|r| r.unwrap().args.iter().map(|a| a.to_vec()).collect())
        .collect();
    assert_eq!(
        dels,
        vec![
            vec![b"DEL".to_vec(), b"b".to_vec()],
            vec![b"DEL".to_vec(), b"a".to_vec()]
        ]
    );
    // In verbatim mode a write is only noted.
    k.hooks.dirty.clear();
    k.hooks.track = false;
    k.hooks.wrote = false;
    k.set(0, b"c", b"1", None, 0);
    assert!(k.hooks.wrote && k.hooks.dirty.is_empty());
}
