//! Keyspace notifications (notify-keyspace-events) against real processes: events of writes on either
//! shard reach pattern subscribers on every shard, in Valkey's names and channels; emptied and removed
//! keys raise `del`; expiry raises `expired` with no client touching the key; the class letters are
//! validated and shown as Valkey shows them; a replica raises the events of what it applies.

mod common;
use common::repl::{follow, wait_caught_up};
use common::{err, q, Raw, Server};

/// A psubscribed connection's next (pattern, channel, message), as text.
fn next_event(sub: &mut Raw) -> (String, String) {
    let m = sub.read_reply();
    assert_eq!(m.len(), 9, "a pmessage: {m:?}");
    assert_eq!(m[2], "pmessage");
    (m[6].clone(), m[8].clone())
}

fn subscriber(s: &Server, pattern: &str) -> Raw {
    let mut sub = s.raw();
    sub.send(&["PSUBSCRIBE", pattern]);
    assert_eq!(sub.read_reply()[2], "psubscribe");
    sub
}

/// A command and the (channel, message) pairs it raises.
type Expect<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)]);

fn ev(ch: &str, msg: &str) -> (String, String) {
    (ch.to_string(), msg.to_string())
}

#[test]
fn events_of_writes_on_either_shard_reach_subscribers_on_every_shard() {
    let s = Server::start(&["--shards", "2", "--notify-keyspace-events", "KEA"]);
    // Several subscribers: the kernel spreads connections over both shards' listeners.
    let mut subs: Vec<Raw> = (0..4).map(|_| subscriber(&s, "__key*__:*")).collect();
    let c = &mut s.conn();
    // foo and mylist hash to different slots; with 2 shards one of them is remote to any connection.
    let writes: [Expect; 4] = [
        (
            &["SET", "foo", "bar"],
            &[("__keyspace@0__:foo", "set"), ("__keyevent@0__:set", "foo")],
        ),
        (
            &["LPUSH", "mylist", "a"],
            &[
                ("__keyspace@0__:mylist", "lpush"),
                ("__keyevent@0__:lpush", "mylist"),
            ],
        ),
        (
            &["HSET", "{foo}h", "f", "1"],
            &[
                ("__keyspace@0__:{foo}h", "hset"),
                ("__keyevent@0__:hset", "{foo}h"),
            ],
        ),
        (
            &["INCRBY", "n", "5"],
            &[
                ("__keyspace@0__:n", "incrby"),
                ("__keyevent@0__:incrby", "n"),
            ],
        ),
    ];
    for (cmd, want) in writes {
        let _: redis::Value = q(c, cmd).unwrap();
        for sub in subs.iter_mut() {
            for (ch, msg) in want {
                assert_eq!(next_event(sub), ev(ch, msg), "after {cmd:?}");
            }
        }
    }
}

#[test]
fn emptied_and_removed_keys_raise_del() {
    let s = Server::start(&["--shards", "2", "--notify-keyspace-events", "KA"]);
    let mut sub = subscriber(&s, "__keyspace@0__:*");
    let c = &mut s.conn();
    q::<i64>(c, &["RPUSH", "l", "x"]).unwrap();
    q::<Option<String>>(c, &["RPOP", "l"]).unwrap();
    assert_eq!(next_event(&mut sub), ev("__keyspace@0__:l", "rpush"));
    assert_eq!(next_event(&mut sub), ev("__keyspace@0__:l", "rpop"));
    assert_eq!(
        next_event(&mut sub),
        ev("__keyspace@0__:l", "del"),
        "the pop emptied the list"
    );
    // A STORE form with an empty result deletes its destination: `del`, not the command's event.
    q::<i64>(c, &["SADD", "{s}dst", "m"]).unwrap();
    q::<i64>(c, &["SINTERSTORE", "{s}dst", "{s}none", "{s}dst"]).unwrap();
    assert_eq!(next_event(&mut sub), ev("__keyspace@0__:{s}dst", "sadd"));
    assert_eq!(next_event(&mut sub), ev("__keyspace@0__:{s}dst", "del"));
    // An EXPIRE in the past deletes the key.
    q::<()>(c, &["SET", "k", "v"]).unwrap();
    q::<i64>(c, &["EXPIRE", "k", "-1"]).unwrap();
    assert_eq!(next_event(&mut sub), ev("__keyspace@0__:k", "set"));
    assert_eq!(next_event(&mut sub), ev("__keyspace@0__:k", "del"));
    // Removals that find nothing raise nothing: the next event is the SREM that removed.
    q::<i64>(c, &["SADD", "s2", "a", "b"]).unwrap();
    q::<i64>(c, &["SREM", "s2", "nope"]).unwrap();
    q::<i64>(c, &["SREM", "s2", "a"]).unwrap();
    assert_eq!(next_event(&mut sub), ev("__keyspace@0__:s2", "sadd"));
    assert_eq!(next_event(&mut sub), ev("__keyspace@0__:s2", "srem"));
}

#[test]
fn a_key_expiring_untouched_raises_expired() {
    let s = Server::start(&["--shards", "2", "--notify-keyspace-events", "Ex"]);
    let mut sub = subscriber(&s, "__keyevent@*__:expired");
    let c = &mut s.conn();
    q::<()>(c, &["SELECT", "3"]).unwrap();
    q::<()>(c, &["PSETEX", "gone", "20", "v"]).unwrap();
    // Nobody reads the key: the shard's active expiry finds it.
    assert_eq!(next_event(&mut sub), ev("__keyevent@3__:expired", "gone"));
}

#[test]
fn classes_are_validated_and_shown_as_valkey_shows_them() {
    let s = Server::start(&["--shards", "2"]);
    let c = &mut s.conn();
    let get = |c: &mut redis::Connection| -> String {
        q::<Vec<String>>(c, &["CONFIG", "GET", "notify-keyspace-events"]).unwrap()[1].clone()
    };
    assert_eq!(get(c), "");
    for (set, shown) in [
        ("KA", "AK"),
        ("gKE", "gKE"),
        ("$lshzxeKE", "$lshzxeKE"),
        ("En", "nE"),
    ] {
        q::<()>(c, &["CONFIG", "SET", "notify-keyspace-events", set]).unwrap();
        assert_eq!(get(c), shown);
    }
    assert!(err(c, &["CONFIG", "SET", "notify-keyspace-events", "KQ"])
        .contains("Invalid event class character. Use 'Ag$lshzxeKEtmdn'."));
    assert_eq!(get(c), "nE", "a refused value changes nothing");
    // Off again: a write raises nothing, so the next message a subscriber sees is a plain PUBLISH.
    q::<()>(c, &["CONFIG", "SET", "notify-keyspace-events", ""]).unwrap();
    let mut sub = s.raw();
    sub.send(&["PSUBSCRIBE", "*"]);
    sub.read_reply();
    q::<()>(c, &["SET", "brand-new", "v"]).unwrap();
    q::<i64>(c, &["PUBLISH", "marker", "m"]).unwrap();
    assert_eq!(next_event(&mut sub), ev("marker", "m"));
}

#[test]
fn renames_and_moves_across_shards_raise_their_pairs() {
    let s = Server::start(&["--shards", "2", "--notify-keyspace-events", "Kg"]);
    let mut sub = subscriber(&s, "__keyspace@*__:*");
    let c = &mut s.conn();
    // old (slot 5439, shard 0 of 2) and dst (slot 9394, shard 1).
    q::<()>(c, &["SET", "old", "v"]).unwrap();
    q::<()>(c, &["RENAME", "old", "dst"]).unwrap();
    let mut got = vec![next_event(&mut sub), next_event(&mut sub)];
    got.sort();
    assert_eq!(
        got,
        vec![
            ev("__keyspace@0__:dst", "rename_to"),
            ev("__keyspace@0__:old", "rename_from")
        ]
    );
    q::<i64>(c, &["MOVE", "dst", "2"]).unwrap();
    assert_eq!(next_event(&mut sub), ev("__keyspace@0__:dst", "move_from"));
    assert_eq!(next_event(&mut sub), ev("__keyspace@2__:dst", "move_to"));
    q::<()>(c, &["SELECT", "2"]).unwrap();
    q::<i64>(c, &["COPY", "dst", "cpy"]).unwrap();
    assert_eq!(next_event(&mut sub), ev("__keyspace@2__:cpy", "copy_to"));
}

#[test]
fn a_replica_raises_the_events_of_what_it_applies() {
    let primary = Server::start(&["--shards", "2"]);
    let replica = Server::start(&["--shards", "3", "--notify-keyspace-events", "KEl"]);
    follow(&replica, &primary);
    wait_caught_up(&primary, &replica, 60);
    let mut sub = subscriber(&replica, "__keyevent@0__:*");
    let c = &mut primary.conn();
    q::<i64>(c, &["RPUSH", "q", "job"]).unwrap();
    assert_eq!(next_event(&mut sub), ev("__keyevent@0__:rpush", "q"));
}

/// A read command's lookup of a missing key raises `keymiss` (class m) and counts as a keyspace miss; a
/// found key is a hit; a write's lookups are neither, as in Valkey.
#[test]
fn read_misses_raise_keymiss_and_reads_count_hits_and_misses() {
    let s = Server::start(&["--shards", "2", "--notify-keyspace-events", "Em"]);
    let mut sub = subscriber(&s, "__keyevent@0__:*");
    let c = &mut s.conn();
    let stat = |c: &mut redis::Connection, f: &str| common::repl::num(c, "stats", f);
    q::<i64>(c, &["HSET", "h", "f", "1"]).unwrap();
    q::<i64>(c, &["RPUSH", "l", "x"]).unwrap();
    // Writes of missing keys: no miss, no event.
    q::<i64>(c, &["HSET", "h2", "f", "1"]).unwrap();
    q::<i64>(c, &["DEL", "nothing"]).unwrap();
    assert_eq!(
        (stat(c, "keyspace_hits"), stat(c, "keyspace_misses")),
        (0, 0)
    );
    assert_eq!(
        q::<Option<String>>(c, &["HGET", "h", "f"])
            .unwrap()
            .as_deref(),
        Some("1")
    );
    assert_eq!(
        q::<Vec<String>>(c, &["LRANGE", "l", "0", "-1"]).unwrap(),
        vec!["x"]
    );
    assert_eq!(
        q::<Option<String>>(c, &["HGET", "missing", "f"]).unwrap(),
        None
    );
    assert_eq!(q::<Option<String>>(c, &["GET", "gone"]).unwrap(), None);
    assert_eq!(
        (stat(c, "keyspace_hits"), stat(c, "keyspace_misses")),
        (2, 2)
    );
    assert_eq!(
        next_event(&mut sub),
        ev("__keyevent@0__:keymiss", "missing")
    );
    assert_eq!(next_event(&mut sub), ev("__keyevent@0__:keymiss", "gone"));
}
