//! Argument parsing shared by handlers, with Valkey's rules and errors.

use super::error::CmdError;
pub use crate::resp::parse_i64_strict;
use crate::resp::Reply;

pub fn int(arg: &[u8]) -> Result<i64, CmdError> {
    parse_i64_strict(arg).ok_or(CmdError::NotInteger)
}

/// Valkey's `string2ld`-style float parsing: no spaces, no hex, "inf"/"-inf" allowed, NaN refused.
pub fn float(arg: &[u8]) -> Result<f64, CmdError> {
    let s = std::str::from_utf8(arg).map_err(|_| CmdError::NotFloat)?;
    if s.is_empty() || s.starts_with(char::is_whitespace) || s.ends_with(char::is_whitespace) {
        return Err(CmdError::NotFloat);
    }
    let v: f64 = match s.to_ascii_lowercase().as_str() {
        "inf" | "+inf" | "infinity" | "+infinity" => f64::INFINITY,
        "-inf" | "-infinity" => f64::NEG_INFINITY,
        l if l.contains("nan") || l.starts_with("0x") => return Err(CmdError::NotFloat),
        _ => s.parse().map_err(|_| CmdError::NotFloat)?,
    };
    if v.is_nan() {
        return Err(CmdError::NotFloat);
    }
    Ok(v)
}

pub fn eq(arg: &[u8], word: &str) -> bool {
    arg.eq_ignore_ascii_case(word.as_bytes())
}

pub fn lower(arg: &[u8]) -> String {
    String::from_utf8_lossy(arg).to_ascii_lowercase()
}

/// Lines of a HELP reply, as a status-string array.
pub fn help(reply: &mut Reply, lines: &[&str]) {
    reply.array(lines.len());
    for l in lines {
        reply.simple(l);
    }
}
