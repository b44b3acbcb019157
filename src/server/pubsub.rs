//! Pub/sub commands (Valkey's replies): SUBSCRIBE, UNSUBSCRIBE, PSUBSCRIBE, PUNSUBSCRIBE, SSUBSCRIBE,
//! SUNSUBSCRIBE, PUBLISH, SPUBLISH, PUBSUB. Subscriptions are registered on the connection's own shard;
//! PUBLISH reaches every shard (shard/pubsub.rs delivers) and is logged, so subscribers on replicas get
//! it too, as in Valkey.

use super::conn::Conn;
use crate::cmd::args::lower;
use crate::cmd::{CmdError, CmdResult};
use crate::resp::{Proto, Reply};
use crate::shard::pubsub::Space;
use bytes::Bytes;

/// Commands a RESP2 connection may run while subscribed.
pub fn allowed_when_subscribed(name: &str) -> bool {
    matches!(
        name,
        "subscribe"
            | "unsubscribe"
            | "psubscribe"
            | "punsubscribe"
            | "ssubscribe"
            | "sunsubscribe"
            | "ping"
            | "quit"
            | "reset"
    )
}

fn kind_words(space: Space) -> (&'static str, &'static str) {
    match space {
        Space::Channel => ("subscribe", "unsubscribe"),
        Space::Pattern => ("psubscribe", "punsubscribe"),
        Space::Shard => ("ssubscribe", "sunsubscribe"),
    }
}

/// One subscription reply: [kind, name or nil, count], a push in RESP3.
fn sub_reply(r: &mut Reply, kind: &str, name: Option<&[u8]>, count: usize) {
    if r.proto == Proto::Resp3 {
        r.raw(b">3\r\n");
    } else {
        r.array(3);
    }
    r.bulk(kind.as_bytes());
    match name {
        Some(n) => r.bulk(n),
        None => r.null(),
    }
    r.int(count as i64);
}

impl Conn {
    pub fn subscribed(&self) -> bool {
        !self.subs.is_empty()
    }

    /// The count Valkey reports after a (un)subscription: channels and patterns, or shard channels.
    fn sub_count(&self, space: Space) -> usize {
        self.subs
            .iter()
            .filter(|(s, _)| (*s == Space::Shard) == (space == Space::Shard))
            .count()
    }

    pub fn subscribe(&mut self, space: Space, a: &[Bytes], r: &mut Reply) -> CmdResult {
        let (word, _) = kind_words(space);
        for name in &a[1..] {
            if self.subs.insert((space, name.clone())) {
                self.local
                    .shard
                    .borrow_mut()
                    .pubsub
                    .add(space, name.clone(), self.id);
            }
            sub_reply(r, word, Some(name), self.sub_count(space));
        }
        Ok(())
    }

    pub fn unsubscribe(&mut self, space: Space, a: &[Bytes], r: &mut Reply) -> CmdResult {
        let (_, word) = kind_words(space);
        if !self.subscribed() {
            // Valkey 8: not in subscribed mode.
            return Err(CmdError::other(format!(
                "NOSUB '{word}' command executed not in subscribed mode"
            )));
        }
        let names: Vec<Bytes> = if a.len() > 1 {
            a[1..].to_vec()
        } else {
            self.subs
                .iter()
                .filter(|(s, _)| *s == space)
                .map(|(_, n)| n.clone())
                .collect()
        };
        if names.is_empty() {
            sub_reply(r, word, None, self.sub_count(space));
        }
        for name in names {
            if self.subs.remove(&(space, name.clone())) {
                self.local
                    .shard
                    .borrow_mut()
                    .pubsub
                    .remove(space, &name, self.id);
            }
            sub_reply(r, word, Some(&name), self.sub_count(space));
        }
        Ok(())
    }

    /// Drops every subscription (RESET, disconnect).
    pub fn unsubscribe_all(&mut self) {
        let mut sh = self.local.shard.borrow_mut();
        for (space, name) in std::mem::take(&mut self.subs) {
            sh.pubsub.remove(space, &name, self.id);
        }
    }

    pub async fn publish(&mut self, sharded: bool, a: &[Bytes], r: &mut Reply) -> CmdResult {
        let (ch, msg) = (a[1].clone(), a[2].clone());
        {
            // Logged where it was published (a record without a key): replicas deliver it to theirs.
            let mut sh = self.local.shard.borrow_mut();
            if sh.ks.hooks.capture {
                let name: &[u8] = if sharded { b"SPUBLISH" } else { b"PUBLISH" };
                sh.log_control(&[name, &ch, &msg]);
                sh.seal_unit();
            }
        }
        let n: usize = self
            .local
            .broadcast(move |sh| sh.publish_here(sharded, &ch, &msg))
            .await
            .into_iter()
            .sum();
        r.int(n as i64);
        Ok(())
    }

    pub async fn pubsub_cmd(&mut self, a: &[Bytes], r: &mut Reply) -> CmdResult {
        let sub = lower(&a[1]);
        match sub.as_str() {
            "channels" | "shardchannels" if a.len() <= 3 => {
                let space = if sub == "channels" { Space::Channel } else { Space::Shard };
                let pat = a.get(2).cloned();
                let mut names: Vec<Bytes> = self
                    .local
                    .broadcast(move |sh| sh.pubsub.names(space, pat.as_deref()))
                    .await
                    .into_iter()
                    .flatten()
                    .collect();
                names.sort();
                names.dedup();
                r.array(names.len());
                names.iter().for_each(|n| r.bulk(n));
            }
            "numsub" | "shardnumsub" => {
                let space = if sub == "numsub" { Space::Channel } else { Space::Shard };
                let chans: Vec<Bytes> = a[2..].to_vec();
                let c2 = chans.clone();
                let counts: Vec<Vec<usize>> = self
                    .local
                    .broadcast(move |sh| c2.iter().map(|c| sh.pubsub.count(space, c)).collect())
                    .await;
                r.map(chans.len());
                for (i, c) in chans.iter().enumerate() {
                    r.bulk(c);
                    r.int(counts.iter().map(|v| v[i]).sum::<usize>() as i64);
                }
            }
            "numpat" if a.len() == 2 => {
                let mut pats: Vec<Bytes> = self
                    .local
                    .broadcast(|sh| sh.pubsub.names(Space::Pattern, None))
                    .await
                    .into_iter()
                    .flatten()
                    .collect();
                pats.sort();
                pats.dedup();
                r.int(pats.len() as i64);
            }
            "help" if a.len() == 2 => crate::cmd::args::help(
                r,
                &[
                    "PUBSUB <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                    "CHANNELS [<pattern>]",
                    "    Return the currently active channels matching a <pattern> (default: '*').",
                    "NUMPAT",
                    "    Return number of subscriptions to patterns.",
                    "NUMSUB [<channel> ...]",
                    "    Return the number of subscribers for the specified channels, excluding",
                    "    pattern subscriptions(default: no channels).",
                    "SHARDCHANNELS [<pattern>]",
                    "    Return the currently active shard level channels matching a <pattern> (default: '*').",
                    "SHARDNUMSUB [<shardchannel> ...]",
                    "    Return the number of subscribers for the specified shard level channel(s)",
                    "HELP",
                    "    Print this help.",
                ],
            ),
            _ => {
                return Err(CmdError::UnknownSubcommand {
                    sub: String::from_utf8_lossy(&a[1]).into(),
                    cmd: "PUBSUB".into(),
                })
            }
        }
        Ok(())
    }
}
