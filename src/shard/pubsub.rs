//! Pub/sub delivery on one shard: the subscriptions of this shard's own connections (a connection lives
//! on one shard, so subscribing is local), and the delivery of a published message to them. PUBLISH
//! reaches every shard by message (server/pubsub.rs), and every replica through the log.
//!
//! A message is encoded for each subscriber's protocol and appended to its pending pushes, which its
//! connection writes as soon as it is woken. The pushes are bounded by client-output-buffer-limit pubsub:
//! past the hard limit, or past the soft limit for longer than its seconds, the subscriber is closed, as
//! in Valkey; memory never grows without bound for a slow subscriber.

use super::{ClientInfo, Shard};
use crate::store::glob::glob_match;
use bytes::Bytes;
use std::collections::HashMap;

/// Which namespace a subscription is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Space {
    Channel,
    Pattern,
    /// SSUBSCRIBE / SPUBLISH.
    Shard,
}

#[derive(Default)]
pub struct PubSub {
    channels: HashMap<Bytes, Vec<u64>>,
    patterns: HashMap<Bytes, Vec<u64>>,
    shard_channels: HashMap<Bytes, Vec<u64>>,
}

impl PubSub {
    fn map(&mut self, space: Space) -> &mut HashMap<Bytes, Vec<u64>> {
        match space {
            Space::Channel => &mut self.channels,
            Space::Pattern => &mut self.patterns,
            Space::Shard => &mut self.shard_channels,
        }
    }

    pub fn add(&mut self, space: Space, name: Bytes, client: u64) {
        let v = self.map(space).entry(name).or_default();
        if !v.contains(&client) {
            v.push(client);
        }
    }

    pub fn remove(&mut self, space: Space, name: &[u8], client: u64) {
        let m = self.map(space);
        if let Some(v) = m.get_mut(name) {
            v.retain(|c| *c != client);
            if v.is_empty() {
                m.remove(name);
            }
        }
    }

    /// Names with at least one subscriber matching `pattern` (PUBSUB CHANNELS / SHARDCHANNELS).
    pub fn names(&self, space: Space, pattern: Option<&[u8]>) -> Vec<Bytes> {
        let m = match space {
            Space::Channel => &self.channels,
            Space::Pattern => &self.patterns,
            Space::Shard => &self.shard_channels,
        };
        m.keys()
            .filter(|k| pattern.is_none_or(|p| glob_match(p, k, false)))
            .cloned()
            .collect()
    }

    pub fn count(&self, space: Space, name: &[u8]) -> usize {
        let m = match space {
            Space::Channel => &self.channels,
            Space::Pattern => &self.patterns,
            Space::Shard => &self.shard_channels,
        };
        m.get(name).map_or(0, |v| v.len())
    }
}

/// Encodes a push of `parts` (bulk strings) as RESP2 array or RESP3 push.
pub fn encode_push(resp3: bool, parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(parts.iter().map(|p| p.len() + 16).sum::<usize>() + 8);
    out.push(if resp3 { b'>' } else { b'*' });
    out.extend_from_slice(parts.len().to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
    for p in parts {
        out.push(b'$');
        out.extend_from_slice(p.len().to_string().as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(p);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// client-output-buffer-limit for the pubsub class: (hard bytes, soft bytes, soft seconds); 0 = none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PushLimit {
    pub hard: usize,
    pub soft: usize,
    pub soft_secs: u64,
}

/// Appends a push to a client, enforcing the limit; returns whether it was queued.
pub fn push_to(c: &mut ClientInfo, parts: &[&[u8]], lim: PushLimit, now_ms: u64) -> bool {
    if c.killed {
        return false;
    }
    c.push.extend_from_slice(&encode_push(c.resp == 3, parts));
    let len = c.push.len();
    let over_soft = lim.soft > 0 && len > lim.soft;
    if !over_soft {
        c.push_soft_since = None;
    }
    let soft_expired = over_soft
        && match c.push_soft_since {
            None => {
                c.push_soft_since = Some(now_ms);
                lim.soft_secs == 0
            }
            Some(t) => now_ms.saturating_sub(t) >= lim.soft_secs * 1000,
        };
    if (lim.hard > 0 && len > lim.hard) || soft_expired {
        tracing::warn!(
            "Client id={} addr={} scheduled to be closed ASAP for overcoming of output buffer limits.",
            c.id,
            c.addr
        );
        c.killed = true;
        c.push = Vec::new();
    }
    if let Some(w) = c.waker.take() {
        w.wake();
    }
    !c.killed
}

impl Shard {
    /// Connections of this shard with at least one subscription.
    pub fn pubsub_clients(&self) -> usize {
        let p = &self.pubsub;
        let mut ids: Vec<u64> = p
            .channels
            .values()
            .chain(p.patterns.values())
            .chain(p.shard_channels.values())
            .flatten()
            .copied()
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids.len()
    }

    /// The keyspace events this shard's work raised (store/events.rs), as channel and message; None
    /// when there are none (one branch after each piece of work).
    #[inline]
    pub fn take_key_events(&mut self) -> Option<Vec<(Vec<u8>, Vec<u8>)>> {
        let ev = &mut self.ks.hooks.events;
        if !ev.on() {
            return None;
        }
        // Keys written outside a key command (their events, if any, were raised where they were
        // written): forgotten here so that they never pile up.
        ev.begin();
        if ev.out.is_empty() {
            return None;
        }
        Some(ev.drain_messages())
    }

    /// Delivers a published message to this shard's subscribers; returns how many received it.
    pub fn publish_here(&mut self, sharded: bool, channel: &[u8], msg: &[u8]) -> usize {
        let lim = self.settings.pubsub_limit;
        let now = crate::runtime::now_ms();
        let mut n = 0;
        let space = if sharded {
            Space::Shard
        } else {
            Space::Channel
        };
        let kind: &[u8] = if sharded { b"smessage" } else { b"message" };
        let subs: Vec<u64> = self
            .pubsub
            .map(space)
            .get(channel)
            .cloned()
            .unwrap_or_default();
        for id in subs {
            if let Some(c) = self.clients.get(&id) {
                n += push_to(&mut c.borrow_mut(), &[kind, channel, msg], lim, now) as usize;
            }
        }
        if !sharded {
            let matching: Vec<(Bytes, Vec<u64>)> = self
                .pubsub
                .patterns
                .iter()
                .filter(|(p, _)| glob_match(p, channel, false))
                .map(|(p, v)| (p.clone(), v.clone()))
                .collect();
            for (p, ids) in matching {
                for id in ids {
                    if let Some(c) = self.clients.get(&id) {
                        let m: &[&[u8]] = &[b"pmessage", &p, channel, msg];
                        n += push_to(&mut c.borrow_mut(), m, lim, now) as usize;
                    }
                }
            }
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slow_subscriber_is_closed_at_the_limits_not_buffered_forever() {
        let lim = PushLimit {
            hard: 1000,
            soft: 500,
            soft_secs: 2,
        };
        let mut c = ClientInfo {
            resp: 2,
            ..Default::default()
        };
        let msg = [b'x'; 100];
        let mut t = 0;
        while push_to(&mut c, &[b"message", b"ch", &msg], lim, t) {
            t += 100;
            assert!(c.push.len() <= lim.hard + 200);
        }
        assert!(
            c.killed && c.push.is_empty(),
            "closed past the soft limit's time or the hard limit"
        );
        let mut c = ClientInfo {
            resp: 3,
            ..Default::default()
        };
        assert!(push_to(&mut c, &[b"message", b"ch", b"hi"], lim, 0));
        assert_eq!(c.push, b">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n");
        let mut c = ClientInfo::default();
        let hard_only = PushLimit {
            hard: 300,
            soft: 0,
            soft_secs: 0,
        };
        assert!(push_to(&mut c, &[b"a", b"b", &msg], hard_only, 0));
        assert!(push_to(&mut c, &[b"a", b"b", &msg], hard_only, 0));
        assert!(!push_to(&mut c, &[b"a", b"b", &msg], hard_only, 0));
    }
}
