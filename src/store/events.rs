//! Keyspace notifications' raw material (`notify-keyspace-events`, docs/commands.md): the classes and
//! their letters as Valkey spells them, and what one shard's keyspace noticed while a command ran. The
//! keyspace records the keys a command wrote, the keys it deleted because they were emptied, and the
//! events it raises itself (`expired`, `new`); cmd/events.rs turns the written keys into the command's
//! events (the table of events is data, like the command table), and the shard publishes them
//! (shard/pubsub.rs) once its work is done.
//!
//! Invariant: with no class enabled (`flags == 0`, the default) nothing is recorded, and the keyspace's
//! hooks stay off for notifications: a write pays one branch.

/// `__keyspace@<db>__:<key>` channels (K).
pub const KEYSPACE: u32 = 1;
/// `__keyevent@<db>__:<event>` channels (E).
pub const KEYEVENT: u32 = 1 << 1;
pub const GENERIC: u32 = 1 << 2;
pub const STRING: u32 = 1 << 3;
pub const LIST: u32 = 1 << 4;
pub const SET: u32 = 1 << 5;
pub const HASH: u32 = 1 << 6;
pub const ZSET: u32 = 1 << 7;
pub const EXPIRED: u32 = 1 << 8;
pub const EVICTED: u32 = 1 << 9;
pub const STREAM: u32 = 1 << 10;
/// Key misses of read commands; not part of A, as in Valkey.
pub const KEY_MISS: u32 = 1 << 11;
pub const MODULE: u32 = 1 << 13;
/// Keys created; not part of A, as in Valkey.
pub const NEW: u32 = 1 << 14;
/// A: every class but key misses and new keys.
pub const ALL: u32 =
    GENERIC | STRING | LIST | SET | HASH | ZSET | EXPIRED | EVICTED | STREAM | MODULE;

/// Parses Valkey's class letters; None on a letter that names no class.
pub fn parse_flags(s: &str) -> Option<u32> {
    let mut f = 0;
    for c in s.chars() {
        f |= match c {
            'A' => ALL,
            'g' => GENERIC,
            '$' => STRING,
            'l' => LIST,
            's' => SET,
            'h' => HASH,
            'z' => ZSET,
            'x' => EXPIRED,
            'e' => EVICTED,
            'K' => KEYSPACE,
            'E' => KEYEVENT,
            't' => STREAM,
            'm' => KEY_MISS,
            'd' => MODULE,
            'n' => NEW,
            _ => return None,
        };
    }
    Some(f)
}

/// The letters CONFIG GET answers for `f`: Valkey's canonical order ("A" for all of A's classes).
pub fn flags_string(f: u32) -> String {
    let mut s = String::new();
    if f & ALL == ALL {
        s.push('A');
    } else {
        let letters = [
            (GENERIC, 'g'),
            (STRING, '$'),
            (LIST, 'l'),
            (SET, 's'),
            (HASH, 'h'),
            (ZSET, 'z'),
            (EXPIRED, 'x'),
            (EVICTED, 'e'),
            (STREAM, 't'),
            (MODULE, 'd'),
            (NEW, 'n'),
        ];
        s.extend(letters.iter().filter(|(b, _)| f & b != 0).map(|(_, c)| c));
    }
    if f & ALL == ALL && f & NEW != 0 {
        s.push('n');
    }
    for (b, c) in [(KEYSPACE, 'K'), (KEYEVENT, 'E'), (KEY_MISS, 'm')] {
        if f & b != 0 {
            s.push(c);
        }
    }
    s
}

/// One event: its class, its name, and the key it happened to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub class: u32,
    pub event: &'static str,
    pub db: usize,
    pub key: Vec<u8>,
}

/// What one shard noticed; see the module doc.
#[derive(Debug, Default)]
pub struct KeyEvents {
    /// The enabled classes (0: notifications off).
    pub flags: u32,
    /// Keys the running command wrote (repeats allowed: the command's events dedupe them).
    pub written: Vec<(usize, Vec<u8>)>,
    /// Keys the running command deleted because it emptied them (a `del` after its own event).
    pub emptied: Vec<(usize, Vec<u8>)>,
    /// Keys the running command looked up and did not find (`keymiss` if it is a read command), kept only
    /// when that class is enabled.
    pub missed: Vec<(usize, Vec<u8>)>,
    /// Events ready to publish, in order.
    pub out: Vec<Notice>,
}

impl KeyEvents {
    #[inline]
    pub fn on(&self) -> bool {
        self.flags != 0
    }

    /// Queues `event` for publishing if its class is enabled and a channel kind (K or E) is.
    pub fn emit(&mut self, class: u32, event: &'static str, db: usize, key: &[u8]) {
        if self.flags & class != 0 && self.flags & (KEYSPACE | KEYEVENT) != 0 {
            self.out.push(Notice {
                class,
                event,
                db,
                key: key.to_vec(),
            });
        }
    }

    /// Starts a command: what an earlier operation outside any command wrote is not this command's.
    pub fn begin(&mut self) {
        self.written.clear();
        self.emptied.clear();
        self.missed.clear();
    }

    /// The channel and message of each queued event, per the K and E flags.
    pub fn drain_messages(&mut self) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut msgs = Vec::new();
        for n in self.out.drain(..) {
            let db = itoa::Buffer::new().format(n.db).to_owned();
            if self.flags & KEYSPACE != 0 {
                let mut ch = format!("__keyspace@{db}__:").into_bytes();
                ch.extend_from_slice(&n.key);
                msgs.push((ch, n.event.as_bytes().to_vec()));
            }
            if self.flags & KEYEVENT != 0 {
                let ch = format!("__keyevent@{db}__:{}", n.event).into_bytes();
                msgs.push((ch, n.key));
            }
        }
        msgs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_letters_round_trip_in_valkeys_order() {
        for (given, shown) in [
            ("gKE", "gKE"),
            ("$lshzxeKE", "$lshzxeKE"),
            ("KA", "AK"),
            ("EA", "AE"),
            ("", ""),
            ("En", "nE"),
            ("AnKm", "AnKm"),
            ("Kz", "zK"),
        ] {
            let f = parse_flags(given).expect(given);
            assert_eq!(flags_string(f), shown, "{given}");
        }
        assert_eq!(parse_flags("KEq"), None);
        assert_eq!(parse_flags("A").map(|f| f & (NEW | KEY_MISS)), Some(0));
    }

    #[test]
    fn only_enabled_classes_are_queued_and_channels_follow_k_and_e() {
        let mut ev = KeyEvents {
            flags: parse_flags("Kl").unwrap(),
            ..Default::default()
        };
        ev.emit(STRING, "set", 0, b"foo");
        ev.emit(LIST, "lpush", 3, b"q");
        assert_eq!(
            ev.drain_messages(),
            vec![(b"__keyspace@3__:q".to_vec(), b"lpush".to_vec())]
        );
        ev.flags = parse_flags("KEg").unwrap();
        ev.emit(GENERIC, "del", 0, b"k");
        assert_eq!(
            ev.drain_messages(),
            vec![
                (b"__keyspace@0__:k".to_vec(), b"del".to_vec()),
                (b"__keyevent@0__:del".to_vec(), b"k".to_vec())
            ]
        );
        // Classes without K or E publish nothing (Valkey's rule too).
        ev.flags = parse_flags("g").unwrap();
        ev.emit(GENERIC, "del", 0, b"k");
        assert!(ev.out.is_empty());
    }
}
