//! Pub/sub against real processes: delivery across shards (connections land on either shard), patterns,
//! Valkey's subscription replies and subscribed-mode errors, RESP3 pushes, a slow subscriber closed at
//! client-output-buffer-limit, and messages published on a primary reaching its replicas' subscribers.

mod common;
use common::repl::{follow, wait_caught_up};
use common::{q, Server};

#[test]
fn messages_reach_every_subscriber_on_every_shard() {
    let s = Server::start(&["--shards", "2"]);
    // Several subscribers: the kernel spreads connections over both shards' listeners.
    let mut subs: Vec<common::Raw> = (0..6).map(|_| s.raw()).collect();
    for (i, sub) in subs.iter_mut().enumerate() {
        if i % 2 == 0 {
            sub.send(&["SUBSCRIBE", "news", "other"]);
            assert_eq!(
                sub.read_reply(),
                vec!["*3", "$9", "subscribe", "$4", "news", ":1"]
            );
            assert_eq!(
                sub.read_reply(),
                vec!["*3", "$9", "subscribe", "$5", "other", ":2"]
            );
        } else {
            sub.send(&["PSUBSCRIBE", "n*"]);
            assert_eq!(
                sub.read_reply(),
                vec!["*3", "$10", "psubscribe", "$2", "n*", ":1"]
            );
        }
    }
    let c = &mut s.conn();
    assert_eq!(q::<i64>(c, &["PUBLISH", "news", "hello"]).unwrap(), 6);
    for (i, sub) in subs.iter_mut().enumerate() {
        let got = sub.read_reply();
        if i % 2 == 0 {
            assert_eq!(
                got,
                vec!["*3", "$7", "message", "$4", "news", "$5", "hello"]
            );
        } else {
            assert_eq!(
                got,
                vec!["*4", "$8", "pmessage", "$2", "n*", "$4", "news", "$5", "hello"]
            );
        }
    }
    assert_eq!(
        q::<Vec<String>>(c, &["PUBSUB", "CHANNELS"]).unwrap(),
        vec!["news", "other"]
    );
    assert_eq!(
        q::<Vec<(String, i64)>>(c, &["PUBSUB", "NUMSUB", "news", "none"]).unwrap(),
        vec![("news".into(), 3), ("none".into(), 0)]
    );
    assert_eq!(q::<i64>(c, &["PUBSUB", "NUMPAT"]).unwrap(), 1);
    // Subscribed RESP2 connections accept only the subscription commands, PING, QUIT and RESET.
    let sub = &mut subs[0];
    sub.send(&["GET", "x"]);
    assert_eq!(
        sub.read_reply(),
        vec!["-ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context"]
    );
    sub.send(&["PING"]);
    assert_eq!(sub.read_reply(), vec!["*2", "$4", "pong", "$0", ""]);
    sub.send(&["UNSUBSCRIBE"]);
    let mut got = sub.read_reply();
    got.extend(sub.read_reply());
    assert!(
        got.contains(&":1".to_string()) && got.contains(&":0".to_string()),
        "{got:?}"
    );
    sub.send(&["GET", "x"]);
    assert_eq!(sub.read_reply(), vec!["$-1"], "no longer subscribed");
    assert_eq!(q::<i64>(c, &["PUBLISH", "news", "again"]).unwrap(), 5);
    // Closed subscribers are forgotten.
    drop(subs);
    assert!(common::eventually(10, || q::<i64>(
        c,
        &["PUBLISH", "news", "x"]
    )
    .unwrap()
        == 0));
}

#[test]
fn resp3_subscribers_get_pushes_and_may_run_commands() {
    let s = Server::start(&["--shards", "2"]);
    let mut sub = s.raw();
    sub.send(&["HELLO", "3"]);
    sub.read_reply();
    sub.send(&["SUBSCRIBE", "ch"]);
    assert_eq!(
        sub.read_reply(),
        vec![">3", "$9", "subscribe", "$2", "ch", ":1"]
    );
    sub.send(&["SET", "k", "v"]);
    assert_eq!(
        sub.read_reply(),
        vec!["+OK"],
        "RESP3 allows commands while subscribed"
    );
    let c = &mut s.conn();
    assert_eq!(q::<i64>(c, &["PUBLISH", "ch", "m"]).unwrap(), 1);
    assert_eq!(
        sub.read_reply(),
        vec![">3", "$7", "message", "$2", "ch", "$1", "m"]
    );
    sub.send(&["SSUBSCRIBE", "sc"]);
    assert_eq!(
        sub.read_reply(),
        vec![">3", "$10", "ssubscribe", "$2", "sc", ":1"]
    );
    assert_eq!(q::<i64>(c, &["SPUBLISH", "sc", "s"]).unwrap(), 1);
    assert_eq!(
        sub.read_reply(),
        vec![">3", "$8", "smessage", "$2", "sc", "$1", "s"]
    );
    assert_eq!(
        q::<Vec<String>>(c, &["PUBSUB", "SHARDCHANNELS"]).unwrap(),
        vec!["sc"]
    );
}

#[test]
fn a_subscriber_that_does_not_read_is_closed_at_its_output_limit() {
    let s = Server::start(&[
        "--shards",
        "2",
        "--client-output-buffer-limit",
        "pubsub 2mb 1mb 1",
    ]);
    let mut sub = s.raw();
    sub.send(&["SUBSCRIBE", "flood"]);
    sub.read_reply();
    let c = &mut s.conn();
    let msg = "x".repeat(64 * 1024);
    // Far more than the socket buffers and the limit hold; the subscriber reads nothing.
    let mut delivered = 0;
    for _ in 0..2000 {
        delivered += q::<i64>(c, &["PUBLISH", "flood", &msg]).unwrap();
        if q::<Vec<(String, i64)>>(c, &["PUBSUB", "NUMSUB", "flood"]).unwrap()[0].1 == 0 {
            break;
        }
    }
    assert!(
        delivered < 2000,
        "the subscriber was closed, not buffered without bound ({delivered} delivered)"
    );
    assert!(common::eventually(10, || q::<Vec<(String, i64)>>(
        c,
        &["PUBSUB", "NUMSUB", "flood"]
    )
    .unwrap()[0]
        .1
        == 0));
    // The log is read from the server's stderr by another thread: it may lag the close.
    assert!(common::eventually(10, || s.log_text().contains(
        "scheduled to be closed ASAP for overcoming of output buffer limits"
    )));
}

#[test]
fn a_message_published_on_the_primary_reaches_subscribers_of_its_replica() {
    let primary = Server::start(&["--shards", "2"]);
    let replica = Server::start(&["--shards", "3"]);
    follow(&replica, &primary);
    wait_caught_up(&primary, &replica, 60);
    let mut sub = replica.raw();
    sub.send(&["SUBSCRIBE", "events"]);
    sub.read_reply();
    let c = &mut primary.conn();
    assert_eq!(
        q::<i64>(c, &["PUBLISH", "events", "from-primary"]).unwrap(),
        0,
        "no subscriber on the primary"
    );
    assert_eq!(
        sub.read_reply(),
        vec!["*3", "$7", "message", "$6", "events", "$12", "from-primary"]
    );
}
