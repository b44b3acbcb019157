//! Any byte sequence, delivered in any chunking, must parse into commands, wait for more bytes, or give a
//! protocol error: never panic, never loop, never hold more than it was given. The first byte picks the
//! chunk size so the fuzzer also explores how requests are split across reads.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use tandem_server::resp::{split_inline_args, RequestParser};

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, rest)) = data.split_first() else { return };
    let chunk = (chunk as usize % 64) + 1;
    let authenticated = chunk % 2 == 0;
    let mut parser = RequestParser::new();
    let mut buf = BytesMut::new();
    let mut consumed_args = 0usize;
    'feed: for piece in rest.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            match parser.next(&mut buf, 4096, authenticated) {
                Ok(Some(args)) => {
                    assert!(!args.is_empty());
                    consumed_args += args.iter().map(|a| a.len()).sum::<usize>();
                    assert!(consumed_args <= rest.len());
                }
                Ok(None) => break,
                Err(_) => break 'feed,
            }
        }
    }
    let _ = split_inline_args(rest);
});
