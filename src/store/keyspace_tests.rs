//! Unit tests of the keyspace (a child module of keyspace.rs, kept apart for its length).
use super::*;
use crate::slot::SLOTS;

fn ks() -> Keyspace {
    Keyspace::new(0..SLOTS, 16, 3)
}

#[test]
fn counters_follow_every_mutation() {
    let mut k = ks();
    assert!(!k.set(0, b"a", b"1", None, 0));
    assert!(k.set(0, b"a", b"2", Some(100), 0));
    k.set(0, b"b", b"1", Some(50), 0);
    assert_eq!((k.len(0), k.expires(0)), (2, 2));
    k.get_mut(0, b"a", 0).unwrap().set_expire(None);
    assert_eq!(k.expires(0), 1);
    // b expires at 50: a read at 60 deletes it lazily.
    assert!(k.get(0, b"b", 60).is_none());
    assert_eq!((k.len(0), k.expires(0), k.stats.expired), (1, 0, 1));
    k.insert_entry(1, Entry::new(b"a", b"x", Some(9)));
    assert_eq!((k.len(1), k.expires(1)), (1, 1));
    k.swap_db(0, 1);
    assert_eq!(k.get(0, b"a", 0).unwrap().value(), b"x");
    assert!(k.remove(0, b"a", 0).is_some());
    assert_eq!((k.len(0), k.expires(0)), (0, 0));
    // Removing a key that was already dead is its expiry: counted, and not reported as removed.
    k.set(0, b"dead", b"v", Some(5), 0);
    assert!(k.remove(0, b"dead", 10).is_none());
    assert_eq!((k.len(0), k.expires(0), k.stats.expired), (0, 0, 2));
}

#[test]
fn active_expiry_is_bounded_and_completes() {
    let mut k = ks();
    for i in 0..5000 {
        let exp = if i % 2 == 0 { Some(10) } else { None };
        k.set(0, format!("k{i}").as_bytes(), b"v", exp, 0);
    }
    // One segment per run: many runs are needed, each bounded.
    let mut runs = 0;
    while k.expires(0) > 0 {
        k.active_expire(100, || true);
        runs += 1;
        assert!(runs < 100_000);
    }
    assert!(runs > 1);
    assert_eq!(k.len(0), 2500);
    assert_eq!(k.entries(0, 100).count(), 2500);
}

#[test]
fn expired_keys_are_invisible_to_iteration_and_random() {
    let mut k = ks();
    k.set(0, b"gone", b"v", Some(5), 0);
    k.set(0, b"here", b"v", None, 0);
    assert_eq!(
        k.entries(0, 10)
            .map(|e| e.key().to_vec())
            .collect::<Vec<_>>(),
        vec![b"here".to_vec()]
    );
    for r in 0..20 {
        assert_eq!(k.random_key(0, 10, |n| (r * 7919) % n).unwrap(), b"here");
    }
}

#[test]
fn replica_keyspace_hides_but_keeps_expired_keys() {
    let mut k = ks();
    k.passive_expiry = true;
    k.set(0, b"a", b"1", Some(10), 0);
    assert!(k.get(0, b"a", 50).is_none());
    assert_eq!(k.len(0), 1, "deleted only when the primary says so");
}

#[test]
fn slot_range_flush_and_swap() {
    let mut k = ks();
    let (a, b) = (b"a".as_slice(), b"b".as_slice());
    let (sa, sb) = (key_slot(a) as usize, key_slot(b) as usize);
    assert_ne!(sa, sb);
    k.set(0, a, b"1", Some(99), 0);
    k.set(0, b, b"2", None, 0);
    k.set(1, a, b"3", None, 0);
    k.swap_slots(0, 1, sa..sa + 1);
    assert_eq!(k.get(0, a, 0).unwrap().value(), b"3");
    assert_eq!(k.get(1, a, 0).unwrap().value(), b"1");
    assert_eq!(k.get(0, b, 0).unwrap().value(), b"2", "other slots stay");
    assert_eq!(
        (k.len(0), k.expires(0), k.len(1), k.expires(1)),
        (2, 0, 1, 1)
    );
    k.flush_slots(None, sa..sa + 1);
    assert_eq!((k.len(0), k.len(1), k.expires(1)), (1, 0, 0));
    k.flush_slots(Some(0), 0..SLOTS);
    assert_eq!(k.total_keys(), 0);
}
