//! The one execution path for key commands: client commands (local or sent to the owning shard), and, with
//! replication, replica apply and WAL replay. Statuses become RESP errors here and only here.

use super::table::{Flags, Handler, Spec};
use crate::resp::Reply;
use crate::shard::Shard;
use bytes::Bytes;
use std::time::Instant;

/// Per-command execution context: the selected database and the command's clock (ms since the epoch),
/// read once per batch so that every key of a command sees the same time, as in Valkey.
#[derive(Debug, Clone, Copy)]
pub struct Exec {
    pub db: usize,
    pub now: u64,
}

pub fn execute(sh: &mut Shard, spec: &'static Spec, args: &[Bytes], ex: &Exec, r: &mut Reply) {
    let Handler::Key(f, _) = spec.handler else {
        unreachable!("{} is not a key command", spec.name);
    };
    if spec.flags.has(Flags::DENYOOM) && sh.over_maxmemory() {
        sh.stats.rejected(spec.name);
        r.error(&super::CmdError::Oom.message());
        return;
    }
    let start = Instant::now();
    let res = f(sh, ex, args, r);
    sh.stats
        .call(spec.name, start.elapsed().as_micros() as u64, res.is_err());
    if let Err(e) = res {
        r.error(&e.message());
    }
}
