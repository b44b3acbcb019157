//! Blocking pops against real processes: waiters on keys of different shards served in arrival order,
//! timeouts, CLIENT UNBLOCK, moves that wake waiters, and no blocking inside MULTI.

mod common;
use common::repl::num;
use common::{q, Server};
use std::time::Instant;
use tandem_server::slot::{key_slot, slot_owner};

/// Waits until the server reports `n` blocked clients.
fn blocked(s: &Server, n: i64) {
    let c = &mut s.conn();
    assert!(
        common::eventually(20, || num(c, "clients", "blocked_clients") == n),
        "expected {n} blocked clients"
    );
}

#[test]
fn waiters_are_served_in_arrival_order() {
    let s = Server::start(&["--shards", "3"]);
    let mut waiters = Vec::new();
    for i in 0..4 {
        let mut r = s.raw();
        // Each waits on its own key first and on the shared one ("q"), whose shard differs from some.
        r.send(&["BLPOP", &format!("own{i}"), "q", "0"]);
        blocked(&s, i + 1);
        waiters.push(r);
    }
    let c = &mut s.conn();
    assert_eq!(q::<i64>(c, &["RPUSH", "q", "a", "b", "c"]).unwrap(), 3);
    for (i, want) in ["a", "b", "c"].iter().enumerate() {
        assert_eq!(waiters[i].read_reply(), vec!["*2", "$1", "q", "$1", want]);
    }
    blocked(&s, 1);
    assert_eq!(q::<i64>(c, &["LPUSH", "own3", "x"]).unwrap(), 1);
    assert_eq!(waiters[3].read_reply(), vec!["*2", "$4", "own3", "$1", "x"]);
    blocked(&s, 0);
    assert_eq!(q::<i64>(c, &["EXISTS", "q", "own3"]).unwrap(), 0);
}

#[test]
fn timeouts_unblock_and_multi() {
    let s = Server::start(&["--shards", "2"]);
    let c = &mut s.conn();
    let t = Instant::now();
    assert_eq!(
        q::<Option<Vec<String>>>(c, &["BRPOP", "nothing", "0.3"]).unwrap(),
        None
    );
    assert!(t.elapsed().as_millis() >= 290, "waited its timeout");
    assert_eq!(
        common::err(c, &["BLPOP", "k", "-1"]),
        "ERR timeout is negative"
    );
    assert_eq!(
        common::err(c, &["BLPOP", "k", "x"]),
        "ERR timeout is not a float or out of range"
    );
    // Inside MULTI a blocking pop does not block.
    q::<()>(c, &["MULTI"]).unwrap();
    q::<()>(c, &["BLPOP", "nothing", "0"]).unwrap();
    let v: redis::Value = q(c, &["EXEC"]).unwrap();
    assert_eq!(v, redis::Value::Array(vec![redis::Value::Nil]));
    // CLIENT UNBLOCK: as a timeout, or with an error.
    for (mode, want) in [
        ("TIMEOUT", vec!["*-1"]),
        (
            "ERROR",
            vec!["-UNBLOCKED client unblocked via CLIENT UNBLOCK"],
        ),
    ] {
        let mut w = s.raw();
        w.send(&["CLIENT", "ID"]);
        let id = w.read_reply()[0][1..].to_string();
        w.send(&["BZPOPMIN", "z1", "z2", "0"]);
        blocked(&s, 1);
        assert_eq!(q::<i64>(c, &["CLIENT", "UNBLOCK", &id, mode]).unwrap(), 1);
        assert_eq!(w.read_reply(), want);
        blocked(&s, 0);
        assert_eq!(
            q::<i64>(c, &["CLIENT", "UNBLOCK", &id]).unwrap(),
            0,
            "not blocked any more"
        );
    }
}

#[test]
fn moves_and_sorted_sets_wake_waiters_across_shards() {
    let s = Server::start(&["--shards", "3"]);
    let c = &mut s.conn();
    let mut mover = s.raw();
    mover.send(&["BLMOVE", "src", "dst", "LEFT", "RIGHT", "0"]);
    blocked(&s, 1);
    let mut popper = s.raw();
    popper.send(&["BLMPOP", "0", "2", "empty", "dst", "LEFT", "COUNT", "2"]);
    blocked(&s, 2);
    q::<()>(c, &["RPUSH", "src", "v"]).unwrap();
    assert_eq!(mover.read_reply(), vec!["$1", "v"]);
    // The move pushed to dst, which wakes the BLMPOP waiting on it.
    assert_eq!(
        popper.read_reply(),
        vec!["*2", "$3", "dst", "*1", "$1", "v"]
    );
    let mut z = s.raw();
    z.send(&["BZPOPMAX", "za", "zb", "0"]);
    blocked(&s, 1);
    q::<()>(c, &["ZADD", "zb", "1", "one", "2", "two"]).unwrap();
    assert_eq!(
        z.read_reply(),
        vec!["*3", "$2", "zb", "$3", "two", "$1", "2"]
    );
    blocked(&s, 0);
}

#[test]
fn a_move_to_a_wrong_type_destination_blocks_and_answers_wrongtype_when_served() {
    let s = Server::start(&["--shards", "2"]);
    let c = &mut s.conn();
    q::<()>(c, &["SET", "{t}dst", "not a list"]).unwrap();
    let mut w = s.raw();
    w.send(&["BRPOPLPUSH", "{t}src", "{t}dst", "0"]);
    blocked(&s, 1);
    // A source that becomes another type does not serve the waiter: it stays blocked.
    q::<()>(c, &["SET", "{t}src", "a string"]).unwrap();
    q::<i64>(c, &["DEL", "{t}src"]).unwrap();
    blocked(&s, 1);
    q::<i64>(c, &["RPUSH", "{t}src", "a", "b"]).unwrap();
    assert!(w.read_reply()[0].starts_with("-WRONGTYPE"));
    blocked(&s, 0);
    // Nothing moved: the source keeps its elements in order.
    assert_eq!(
        q::<Vec<String>>(c, &["LRANGE", "{t}src", "0", "-1"]).unwrap(),
        vec!["a", "b"]
    );
}

#[test]
fn swapdb_wakes_a_client_blocked_on_a_key_it_brings_in() {
    let s = Server::start(&["--shards", "2"]);
    let c = &mut s.conn();
    q::<()>(c, &["SELECT", "1"]).unwrap();
    q::<i64>(c, &["RPUSH", "k", "hello"]).unwrap();
    let mut w = s.raw();
    w.send(&["SELECT", "9"]);
    w.read_reply();
    w.send(&["BRPOP", "k", "0"]);
    blocked(&s, 1);
    q::<()>(c, &["SWAPDB", "1", "9"]).unwrap();
    assert_eq!(w.read_reply(), vec!["*2", "$1", "k", "$5", "hello"]);
}

#[test]
fn a_key_expiring_inside_the_exec_that_woke_a_waiter_does_not_serve_it() {
    let s = Server::start(&["--shards", "2", "--enable-debug-command", "yes"]);
    let c = &mut s.conn();
    q::<()>(c, &["DEBUG", "SET-ACTIVE-EXPIRE", "0"]).unwrap();
    let mut w = s.raw();
    w.send(&["BZPOPMIN", "z", "1"]);
    blocked(&s, 1);
    // The waiter is woken by the ZADD but runs after EXEC releases the key's shard, when the key has
    // expired: it must see the time it runs at, not the time its retry was sent.
    let start = Instant::now();
    let _: redis::Value = redis::pipe()
        .atomic()
        .cmd("ZADD")
        .arg("z")
        .arg(1)
        .arg("one")
        .cmd("PEXPIRE")
        .arg("z")
        .arg(100)
        .cmd("DEBUG")
        .arg("SLEEP")
        .arg("0.2")
        .query(c)
        .unwrap();
    assert_eq!(w.read_reply(), vec!["*-1"], "timed out, not served");
    assert!(start.elapsed().as_millis() >= 700, "served at its timeout");
}

#[test]
fn a_key_renamed_copied_or_moved_into_place_wakes_its_waiter() {
    let s = Server::start(&["--shards", "2"]);
    let c = &mut s.conn();
    // old (slot 5439) and foo (slot 12182): different shards of 2.
    for (i, how) in [
        &["RENAME", "old", "foo"][..],
        &["COPY", "old", "foo"],
        &["MOVE", "old", "0"],
    ]
    .iter()
    .enumerate()
    {
        q::<()>(c, &["SELECT", "1"]).unwrap();
        q::<i64>(c, &["RPUSH", "old", "x"]).unwrap();
        let mut w = s.raw();
        let db = if how[0] == "MOVE" { "0" } else { "1" };
        w.send(&["SELECT", db]);
        w.read_reply();
        let key = if how[0] == "MOVE" { "old" } else { "foo" };
        w.send(&["BLPOP", key, "0"]);
        blocked(&s, 1);
        let _: redis::Value = q(c, how).unwrap();
        assert_eq!(
            w.read_reply(),
            vec![
                "*2".to_string(),
                format!("${}", key.len()),
                key.into(),
                "$1".into(),
                "x".into()
            ],
            "case {i}: {how:?}"
        );
        blocked(&s, 0);
        q::<()>(c, &["FLUSHALL"]).unwrap();
    }
}

/// A blocking command counts once in INFO commandstats, however many attempts it took and however it
/// ended (Valkey's accounting), and over keys of several shards too.
#[test]
fn a_blocking_command_counts_once_in_commandstats() {
    let s = Server::start(&["--shards", "2"]);
    let c = &mut s.conn();
    let blpop = |c: &mut redis::Connection| common::repl::field(c, "commandstats", "cmdstat_blpop");
    // Keys of both shards.
    let (a, b) = ("a", "b");
    let shard = |k: &str| slot_owner(key_slot(k.as_bytes()), 2);
    assert_ne!(shard(a), shard(b));
    q::<()>(c, &["CONFIG", "RESETSTAT"]).unwrap();
    let mut w = s.raw();
    w.send(&["BLPOP", a, b, "0"]);
    blocked(&s, 1);
    // A write to another key of the same shard wakes nothing; one to a waited key serves it.
    assert_eq!(q::<i64>(c, &["RPUSH", b, "x"]).unwrap(), 1);
    assert_eq!(w.read_reply(), vec!["*2", "$1", "b", "$1", "x"]);
    assert!(blpop(c).starts_with("calls=1,"), "{}", blpop(c));
    // Timed out: one call.
    q::<()>(c, &["CONFIG", "RESETSTAT"]).unwrap();
    assert_eq!(
        q::<Option<Vec<String>>>(c, &["BLPOP", a, b, "0.05"]).unwrap(),
        None
    );
    assert!(blpop(c).starts_with("calls=1,"), "{}", blpop(c));
    // Unblocked by CLIENT UNBLOCK: one call.
    q::<()>(c, &["CONFIG", "RESETSTAT"]).unwrap();
    w.send(&["CLIENT", "ID"]);
    let id = w.read_line()[1..].to_string();
    w.send(&["BLPOP", a, b, "0"]);
    blocked(&s, 1);
    assert_eq!(q::<i64>(c, &["CLIENT", "UNBLOCK", &id]).unwrap(), 1);
    assert_eq!(w.read_line(), "*-1");
    assert!(blpop(c).starts_with("calls=1,"), "{}", blpop(c));
}

/// A waiter is served when the write that readied its key finishes, before the writer's next command
/// (Valkey's order): a pipelined push then pop or blocking pop from another client cannot take the
/// element from a client that blocked first.
#[test]
fn a_waiter_is_served_before_the_pushing_clients_next_command() {
    let s = Server::start(&["--shards", "2"]);
    let c = &mut s.conn();
    let mut first = s.raw();
    first.send(&["BLPOP", "q", "0"]);
    blocked(&s, 1);
    let mut p = s.raw();
    p.write(b"LPUSH q 1\r\nLPOP q\r\nLPUSH q 2\r\nBLPOP q 0\r\n");
    assert_eq!(first.read_reply(), vec!["*2", "$1", "q", "$1", "1"]);
    assert_eq!(p.read_line(), ":1");
    assert_eq!(p.read_line(), "$-1", "the waiter took the element");
    assert_eq!(p.read_line(), ":1");
    // Its own BLPOP found the second element.
    assert_eq!(p.read_reply(), vec!["*2", "$1", "q", "$1", "2"]);
    blocked(&s, 0);
    assert_eq!(q::<i64>(c, &["EXISTS", "q"]).unwrap(), 0);
    // The replies before a blocking command reach the client before it waits.
    p.write(b"LPUSH other x\r\nBLPOP q 0\r\n");
    assert_eq!(p.read_line(), ":1");
    blocked(&s, 1);
    assert_eq!(q::<i64>(c, &["LPUSH", "q", "3"]).unwrap(), 1);
    assert_eq!(p.read_reply(), vec!["*2", "$1", "q", "$1", "3"]);
}

/// Waiters readied by an EXEC are served after it, in the order its commands wrote their keys, and a
/// move served among them readies its destination for the next (Valkey's "nested unblock").
#[test]
fn waiters_readied_by_an_exec_are_served_after_it_in_write_order() {
    let s = Server::start(&["--shards", "2"]);
    let c = &mut s.conn();
    let mut w1 = s.raw();
    w1.send(&["BRPOPLPUSH", "{t}l1", "{t}l3", "0"]);
    blocked(&s, 1);
    let mut w2 = s.raw();
    w2.send(&["BLPOP", "{t}l2", "0"]);
    blocked(&s, 2);
    let mut w3 = s.raw();
    w3.send(&["BLMPOP", "0", "2", "{t}l2", "{t}l3", "LEFT", "COUNT", "1"]);
    blocked(&s, 3);
    q::<()>(c, &["MULTI"]).unwrap();
    q::<()>(c, &["LPUSH", "{t}l1", "1"]).unwrap();
    q::<()>(c, &["LPUSH", "{t}l2", "2"]).unwrap();
    let _: redis::Value = q(c, &["EXEC"]).unwrap();
    blocked(&s, 0);
    assert_eq!(w1.read_reply(), vec!["$1", "1"]);
    assert_eq!(w2.read_reply(), vec!["*2", "$5", "{t}l2", "$1", "2"]);
    assert_eq!(w3.read_reply(), vec!["*2", "$5", "{t}l3", "*1", "$1", "1"]);
}

/// A blocking pop of a list that has elements takes one, on either shard, and leaves the rest: its own
/// attempt's write does not serve it a second time.
#[test]
fn a_blocking_pop_of_a_list_with_elements_takes_one() {
    let s = Server::start(&["--shards", "2"]);
    let c = &mut s.conn();
    for k in ["a", "b"] {
        q::<i64>(c, &["RPUSH", k, "1", "2", "3"]).unwrap();
        let got: Vec<String> = q(c, &["BLPOP", k, "0"]).unwrap();
        assert_eq!(got, vec![k, "1"]);
        let got: Vec<String> = q(c, &["BLMOVE", k, k, "LEFT", "RIGHT", "0"])
            .map(|v: String| vec![v])
            .unwrap();
        assert_eq!(got, vec!["2"]);
        assert_eq!(
            q::<Vec<String>>(c, &["LRANGE", k, "0", "-1"]).unwrap(),
            vec!["3", "2"]
        );
    }
}

/// SIGTERM with clients blocked on keys of one shard: whichever shard their connections live on, every
/// one leaves its keys' wait lists and the server exits (a shard that exited as soon as its own clients
/// were gone left another shard's closing client waiting for its answer forever; 8 runs in 10 hung).
#[test]
fn shutdown_with_clients_blocked_on_another_shard_exits() {
    let s = Server::start(&["--shards", "2"]);
    let keys: Vec<String> = (0..)
        .map(|i| format!("k{i}"))
        .filter(|k| slot_owner(key_slot(k.as_bytes()), 2) == 0)
        .take(4)
        .collect();
    let mut waiters = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        let mut r = s.raw();
        r.send(&["BLPOP", k, "0"]);
        blocked(&s, i as i64 + 1);
        waiters.push(r);
    }
    // stop() fails the test if the server has not exited 10 s after SIGTERM.
    assert!(s.stop().success());
}

/// A client that hangs up while blocked is gone at once (Valkey frees it): it is no longer counted, and a
/// push that follows goes to the next waiter or stays in the list, never to the closed connection.
#[test]
fn a_blocked_client_that_hangs_up_is_not_served() {
    let s = Server::start(&["--shards", "2"]);
    let mut gone = s.raw();
    gone.send(&["BLPOP", "q", "0"]);
    blocked(&s, 1);
    let mut next = s.raw();
    next.send(&["BLPOP", "q", "0"]);
    blocked(&s, 2);
    drop(gone);
    blocked(&s, 1);
    let c = &mut s.conn();
    assert_eq!(q::<i64>(c, &["RPUSH", "q", "a"]).unwrap(), 1);
    assert_eq!(next.read_reply(), vec!["*2", "$1", "q", "$1", "a"]);
    blocked(&s, 0);
    let mut last = s.raw();
    last.send(&["BLPOP", "q", "0"]);
    blocked(&s, 1);
    drop(last);
    blocked(&s, 0);
    assert_eq!(q::<i64>(c, &["RPUSH", "q", "b"]).unwrap(), 1);
    assert_eq!(
        q::<Vec<String>>(c, &["LRANGE", "q", "0", "-1"]).unwrap(),
        ["b"]
    );
    // This connection and `next`: the two that hung up are closed.
    assert!(common::eventually(10, || num(
        c,
        "clients",
        "connected_clients"
    ) == 2));
}
