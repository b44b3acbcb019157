//! The wire protocol over raw TCP: pipelining, inline commands, RESP3, errors that close the connection.

mod common;
use common::Server;
use std::io::Write;

#[test]
fn pipeline_keeps_order_across_shards() {
    let s = Server::start(&["--shards", "2"]);
    let mut c = s.raw();
    let mut wire = Vec::new();
    for i in 0..500 {
        wire.extend_from_slice(
            format!(
                "*3\r\n$3\r\nSET\r\n${}\r\nk{i}\r\n${}\r\n{i}\r\n",
                format!("k{i}").len(),
                i.to_string().len()
            )
            .as_bytes(),
        );
        wire.extend_from_slice(
            format!("*2\r\n$4\r\nINCR\r\n${}\r\nk{i}\r\n", format!("k{i}").len()).as_bytes(),
        );
        wire.extend_from_slice(b"PING\r\n");
    }
    c.write(&wire);
    for i in 0..500 {
        assert_eq!(c.read_line(), "+OK");
        assert_eq!(c.read_line(), format!(":{}", i + 1));
        assert_eq!(c.read_line(), "+PONG");
    }
}

#[test]
fn inline_commands_and_quotes() {
    let s = Server::start(&[]);
    let mut c = s.raw();
    c.write(b"SET greeting \"hello world\"\r\nGET greeting\r\n\r\nEXISTS greeting nope\n");
    assert_eq!(c.read_line(), "+OK");
    assert_eq!(c.read_reply(), vec!["$11", "hello world"]);
    assert_eq!(c.read_line(), ":1");
}

#[test]
fn a_command_split_over_many_writes() {
    let s = Server::start(&[]);
    let mut c = s.raw();
    let value = "v".repeat(200_000);
    let wire = format!(
        "*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n${}\r\n{}\r\n",
        value.len(),
        value
    );
    for chunk in wire.as_bytes().chunks(7919) {
        c.s.write_all(chunk).unwrap();
    }
    assert_eq!(c.read_line(), "+OK");
    c.send(&["STRLEN", "big"]);
    assert_eq!(c.read_line(), ":200000");
}

#[test]
fn protocol_errors_reply_then_close() {
    let s = Server::start(&[]);
    for (bad, msg) in [
        (
            &b"*1\r\n+PING\r\n"[..],
            "-ERR Protocol error: expected '$', got '+'",
        ),
        (b"*abc\r\n", "-ERR Protocol error: invalid multibulk length"),
        (b"*1\r\n$-3\r\n", "-ERR Protocol error: invalid bulk length"),
        (
            b"SET a \"unterminated\r\n",
            "-ERR Protocol error: unbalanced quotes in request",
        ),
    ] {
        let mut c = s.raw();
        c.write(b"PING\r\n");
        c.write(bad);
        assert_eq!(
            c.read_line(),
            "+PONG",
            "commands before the error are served"
        );
        assert_eq!(c.read_line(), msg);
        assert!(c.closed(), "connection closed after {msg}");
    }
    // The server is still fine.
    let mut c = s.raw();
    c.send(&["PING"]);
    assert_eq!(c.read_line(), "+PONG");
}

#[test]
fn proto_max_bulk_len_and_query_buffer_limit() {
    let s = Server::start(&[
        "--proto-max-bulk-len",
        "10mb",
        "--client-query-buffer-limit",
        "2mb",
    ]);
    let mut c = s.raw();
    c.write(b"*2\r\n$4\r\nECHO\r\n$20000000\r\n");
    assert_eq!(c.read_line(), "-ERR Protocol error: invalid bulk length");
    assert!(c.closed());
    // One big argument arriving: the unfinished command passes the limit and the client is closed.
    let mut c = s.raw();
    c.write(b"*2\r\n$4\r\nECHO\r\n$5000000\r\n");
    let chunk = vec![b'x'; 64 * 1024];
    for _ in 0..48 {
        if c.s.write_all(&chunk).is_err() {
            break;
        }
    }
    assert!(c.closed(), "a client over the query buffer limit is closed");
    // Many small arguments: what the parser already holds counts too, so it cannot grow without bound.
    let mut c = s.raw();
    c.write(b"*100000\r\n");
    let arg = format!("$1000\r\n{}\r\n", "x".repeat(1000));
    for _ in 0..3000 {
        if c.s.write_all(arg.as_bytes()).is_err() {
            break;
        }
    }
    assert!(c.closed(), "accumulated arguments count against the limit");
    // Under the limit, a big value goes through.
    let mut c = s.raw();
    let v = "y".repeat(1_500_000);
    c.send(&["SET", "big", &v]);
    assert_eq!(c.read_line(), "+OK");
}

#[test]
fn resp3_hello_and_types() {
    let s = Server::start(&[]);
    let mut c = s.raw();
    c.send(&["HELLO", "3"]);
    let hello = c.read_reply();
    assert_eq!(hello[0], "%7");
    assert!(
        hello.windows(2).any(|w| w[0] == "proto" && w[1] == ":3"),
        "{hello:?}"
    );
    c.send(&["GET", "nope"]);
    assert_eq!(c.read_line(), "_");
    c.send(&["CONFIG", "GET", "port"]);
    assert_eq!(c.read_reply()[0], "%1");
    c.send(&["HELLO", "4"]);
    assert_eq!(c.read_line(), "-NOPROTO unsupported protocol version");
    c.send(&["HELLO", "2"]);
    assert_eq!(c.read_reply()[0], "*14");
    c.send(&["GET", "nope"]);
    assert_eq!(c.read_line(), "$-1");
}

#[test]
fn error_replies_in_valkey_words() {
    let s = Server::start(&[]);
    let mut c = s.raw();
    c.send(&["FOOBAR", "a", "b"]);
    assert_eq!(
        c.read_line(),
        "-ERR unknown command 'FOOBAR', with args beginning with: 'a' 'b' "
    );
    c.send(&["GET"]);
    assert_eq!(
        c.read_line(),
        "-ERR wrong number of arguments for 'get' command"
    );
    c.send(&["CLIENT", "NOPE"]);
    assert_eq!(
        c.read_line(),
        "-ERR unknown subcommand 'NOPE'. Try CLIENT HELP."
    );
    c.send(&["DEBUG", "NOPE"]);
    assert_eq!(
        c.read_line(),
        "-ERR unknown subcommand 'NOPE'. Try DEBUG HELP."
    );
}
