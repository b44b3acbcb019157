//! RESP: the request parser (RESP multibulk and inline commands) and the reply encoder (RESP2/RESP3).

mod parse;
mod reply;

pub use parse::{
    parse_i64_strict, split_inline_args, ProtocolError, RequestParser, PROTO_INLINE_MAX_SIZE,
};
pub use reply::{format_double, Proto, Reply};
