//! Key commands whose keys span shards and that have a merge rule (MGET, MSET, DEL, EXISTS, UNLINK,
//! TOUCH...): the command is split into one part per shard, the parts run in one transaction, and their
//! replies are merged (`Merge`). Commands without a merge rule run over gathered copies instead
//! (server/gathered.rs).
//!
//! A transaction of its own runs each shard's part in the message that locks the shard
//! (`Local::begin_tx_with`): one message per shard in all. A pipeline's consecutive split commands share
//! one transaction (`run_splits`), each shard running its parts of all of them in command order: the run
//! is atomic as a whole, so each command in it is, and a pipeline of N cross-shard MSETs costs one
//! transaction instead of N (each holds every shard it touches for at least a round trip).

use super::conn::Conn;
use crate::cmd::exec::{execute_part, Exec};
use crate::cmd::{lookup, CmdError, CmdResult, Merge, Spec};
use crate::resp::{Proto, Reply};
use crate::runtime::local::Part;
use crate::runtime::Tx;
use crate::shard::Shard;
use bytes::Bytes;

/// A split command: per shard (in the order of its keys' first appearance), the part's arguments and the
/// indexes of its keys among the command's keys.
pub(super) struct Split {
    pub spec: &'static Spec,
    merge: Merge,
    /// The connection's database and clock, and its protocol (a combined transaction runs several
    /// connections' commands: server/split.rs `run_splits`).
    ex: Exec,
    proto: Proto,
    nkeys: usize,
    parts: Vec<(usize, Vec<Bytes>, Vec<usize>)>,
}

/// A part's reply, and each key's reply end for a Gather merge.
type PartOut = (Vec<u8>, Vec<usize>);

impl Conn {
    /// Splits `a` by shard; Valkey's arity error for an MSET-like command with a key left without a value.
    pub(super) fn split(
        &self,
        spec: &'static Spec,
        a: &[Bytes],
        merge: Merge,
    ) -> Result<Split, CmdError> {
        if merge == Merge::AllOk && a.len().is_multiple_of(2) {
            return Err(CmdError::WrongArity(spec.name.into()));
        }
        let step = spec.step.max(1) as usize;
        let positions: Vec<usize> = spec.keys_of(a);
        let mut parts: Vec<(usize, Vec<Bytes>, Vec<usize>)> = Vec::new();
        for (i, &p) in positions.iter().enumerate() {
            let s = self.shard_of(&a[p]);
            let idx = match parts.iter().position(|(ps, _, _)| *ps == s) {
                Some(x) => x,
                None => {
                    parts.push((s, vec![a[0].clone()], Vec::new()));
                    parts.len() - 1
                }
            };
            parts[idx].1.extend_from_slice(&a[p..p + step]);
            parts[idx].2.push(i);
        }
        Ok(Split {
            spec,
            merge,
            ex: self.exec(),
            proto: self.proto,
            nkeys: positions.len(),
            parts,
        })
    }

    /// A key command whose keys span shards: split by shard, run the parts in one transaction, merge.
    pub async fn run_split(
        &mut self,
        spec: &'static Spec,
        a: Vec<Bytes>,
        merge: Option<Merge>,
        r: &mut Reply,
    ) -> CmdResult {
        self.run_split_in(None, spec, a, merge, r).await
    }

    /// `run_split` inside a transaction that already holds the keys' shards (EXEC), or in its own.
    pub async fn run_split_in(
        &mut self,
        held: Option<&Tx>,
        spec: &'static Spec,
        a: Vec<Bytes>,
        merge: Option<Merge>,
        r: &mut Reply,
    ) -> CmdResult {
        let Some(merge) = merge else {
            return self.run_gathered(held, spec, a, r).await;
        };
        let split = self.split(spec, &a, merge)?;
        let Some(tx) = held else {
            let out = self.run_splits(vec![split]).await;
            r.raw(&out[0]);
            return Ok(());
        };
        let (ex, proto) = (split.ex, split.proto);
        let mut replies = Vec::with_capacity(split.parts.len());
        for (s, args, _) in &split.parts {
            let args = args.clone();
            replies.push(
                tx.on(*s, move |sh| split_part(sh, spec, merge, &args, &ex, proto))
                    .await,
            );
        }
        merge_into(&split, &replies, r);
        Ok(())
    }

    /// Runs split commands in one transaction of their own (combined with other connections' on this
    /// thread: `Local::tx_combined`); their replies, in order.
    pub(super) async fn run_splits(&mut self, splits: Vec<Split>) -> Vec<Vec<u8>> {
        let write = splits.iter().any(|s| s.spec.is_write());
        // Per shard: (command, part) of every part it runs, in command order.
        let mut shards: Vec<(usize, Vec<(usize, usize)>)> = Vec::new();
        for (c, sp) in splits.iter().enumerate() {
            for (p, (s, _, _)) in sp.parts.iter().enumerate() {
                match shards.iter_mut().find(|(x, _)| x == s) {
                    Some((_, v)) => v.push((c, p)),
                    None => shards.push((*s, vec![(c, p)])),
                }
            }
        }
        let jobs: Vec<(usize, Part<Vec<PartOut>>)> = shards
            .iter()
            .map(|(s, which)| {
                let work: Vec<(&'static Spec, Merge, Vec<Bytes>, Exec, Proto)> = which
                    .iter()
                    .map(|&(c, p)| {
                        let sp = &splits[c];
                        (sp.spec, sp.merge, sp.parts[p].1.clone(), sp.ex, sp.proto)
                    })
                    .collect();
                let job: Part<Vec<PartOut>> = Box::new(move |sh| {
                    work.iter()
                        .map(|(spec, merge, args, ex, proto)| {
                            split_part(sh, spec, *merge, args, ex, *proto)
                        })
                        .collect()
                });
                (*s, job)
            })
            .collect();
        let ran = self.local.tx_combined_with(jobs, write).await;
        let mut replies: Vec<Vec<Option<PartOut>>> = splits
            .iter()
            .map(|sp| sp.parts.iter().map(|_| None).collect())
            .collect();
        for ((_, which), outs) in shards.iter().zip(ran) {
            for (&(c, p), o) in which.iter().zip(outs) {
                replies[c][p] = Some(o);
            }
        }
        splits
            .iter()
            .zip(replies)
            .map(|(sp, rs)| {
                let rs: Vec<PartOut> = rs.into_iter().map(|o| o.expect("every part ran")).collect();
                let mut r = Reply::new(sp.proto);
                merge_into(sp, &rs, &mut r);
                r.buf
            })
            .collect()
    }
}

/// One shard's part of a split command: its reply, and each key's reply end for a Gather merge (one GET
/// per key, so the replies can be interleaved back into key order).
fn split_part(
    sh: &mut Shard,
    spec: &'static Spec,
    merge: Merge,
    args: &[Bytes],
    ex: &Exec,
    proto: Proto,
) -> PartOut {
    let mut r = Reply::new(proto);
    let mut ends = Vec::new();
    if merge == Merge::Gather {
        let get = lookup(b"get").expect("get");
        for k in &args[1..] {
            execute_part(
                sh,
                get,
                &[Bytes::from_static(b"get"), k.clone()],
                ex,
                &mut r,
            );
            ends.push(r.len());
        }
    } else {
        execute_part(sh, spec, args, ex, &mut r);
        ends.push(r.len());
    }
    (r.buf, ends)
}

/// The command's reply from its parts' replies (in `split.parts` order).
fn merge_into(split: &Split, replies: &[PartOut], r: &mut Reply) {
    match split.merge {
        Merge::Gather => {
            let mut per_key: Vec<&[u8]> = vec![&[]; split.nkeys];
            for ((_, _, idxs), (buf, ends)) in split.parts.iter().zip(replies) {
                for (j, &ki) in idxs.iter().enumerate() {
                    let start = if j == 0 { 0 } else { ends[j - 1] };
                    per_key[ki] = &buf[start..ends[j]];
                }
            }
            r.array(per_key.len());
            per_key.iter().for_each(|b| r.raw(b));
        }
        Merge::Sum => {
            let mut total = 0i64;
            for (buf, _) in replies {
                match buf
                    .strip_prefix(b":")
                    .and_then(|b| std::str::from_utf8(b).ok())
                    .and_then(|s| s.trim_end().parse::<i64>().ok())
                {
                    Some(n) => total += n,
                    None => {
                        r.raw(buf);
                        return;
                    }
                }
            }
            r.int(total);
        }
        Merge::AllOk => match replies.iter().find(|(b, _)| !b.starts_with(b"+OK")) {
            Some((b, _)) => r.raw(b),
            None => r.ok(),
        },
    }
}
