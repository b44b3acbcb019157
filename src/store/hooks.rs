//! What a keyspace mutation does besides changing a table, for replication:
//! - **capture** (the shard's log is on): in *verbatim* mode (a deterministic command of the table is
//!   running) the write is only noted, and the command is logged as itself once it returns; in *state*
//!   mode (non-deterministic commands, and operations that are not table commands) the key is recorded as
//!   dirty and its resulting state (SET with an absolute expiry, or DEL) is logged. An expiry is logged at
//!   once as a DEL, whatever the mode, so it precedes the command that met it (shard/log.rs);
//! - **copy before write**: for each point-in-time snapshot in progress, the first write to a key of a
//!   slot not yet sent keeps the key's state as it was (its old value, or "did not exist"). When the walk
//!   reaches the slot it sends those kept states instead of the current ones, so what it sends is exactly
//!   the data at the snapshot's start, with no fork and no pause.
//!
//! - **wholesale changes**: FLUSHDB and FLUSHALL hand the flushed tables of unsent slots to the snapshot
//!   (moved, not copied: the memory a fork would have kept), which sends them in place of the live ones;
//!   SWAPDB only changes which live database each of the snapshot's databases is read from. So none of them
//!   interrupts a full sync.
//!
//! Invariants: a slot is serialized once per snapshot; a key's state is kept at most once per snapshot,
//! and only while its slot is unsent and not frozen; the snapshot's databases are numbered as at its
//! start (`dbmap` says where each lives now). The extra memory is the kept states of keys written during
//! the snapshot (not whole slots: at 10k writes/s into slots of hundreds of keys, copying slots cost more
//! than the snapshot itself), the tables flushed before their slot was sent, and the pieces of the slot
//! being sent.

use super::entry::Entry;
use super::keyspace::SlotData;
use std::collections::HashMap;
use std::collections::VecDeque;
use std::rc::Rc;
use tandem_sync::unit::UnitWriter;

/// Records are grouped in pieces of about this size (each a frame payload).
pub const PIECE_BYTES: usize = 256 << 10;

/// A key's state at the snapshot point: its type, its value's bytes (a collection's byte form), and its
/// expiry; or None if it did not exist. A collection is copied whole, once per snapshot at most: the
/// first write to a big collection of an unsent slot costs one serialization of it, later writes nothing.
pub type Old = Option<(u8, Vec<u8>, Option<u64>)>;

/// The kept states of one slot, per database.
pub type Kept = Vec<HashMap<Vec<u8>, Old>>;

pub struct Hooks {
    /// Log capture is on (this shard is a primary with a backlog).
    pub capture: bool,
    /// State mode: writes record their key as dirty. Off only while a verbatim command runs.
    pub track: bool,
    /// A write happened since the flag was last cleared (verbatim mode's "log this command").
    pub wrote: bool,
    /// State mode: (db, key) written since the shard last logged their states.
    pub dirty: Vec<(usize, Vec<u8>)>,
    /// The open log unit: records made since the shard last sealed one.
    pub unit: UnitWriter,
    /// A non-deterministic command's record of what it did (SPOP: the SREM of the members it popped),
    /// logged in place of the command itself.
    pub rewrite: Option<Vec<Vec<u8>>>,
    pub snapshots: Vec<SlotSnapshot>,
    /// Durability mode: every key the open unit writes (and whether it flushes or swaps wholesale), made
    /// dirty until the unit commits (repl/durable.rs).
    pub touch: bool,
    /// Dirty-key buckets (tandem_sync::dirty) of the keys the open unit wrote.
    pub touched: Vec<u32>,
    pub touched_all: bool,
    pub watched: Watched,
    /// Keyspace notifications (events.rs): off unless notify-keyspace-events enables a class.
    pub events: super::events::KeyEvents,
}

/// WATCHed keys: per database, key → (sequence number of its last write since watched, watchers). Looked
/// up by borrowed key, so a write costs no allocation to check whether it is watched.
#[derive(Default)]
pub struct Watched {
    dbs: HashMap<usize, HashMap<Vec<u8>, (u64, u32)>>,
    seq: u64,
    len: usize,
}

impl Watched {
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Watched keys (each once, however many watchers).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Adds a watcher of `key`; its write sequence now.
    pub fn watch(&mut self, db: usize, key: &[u8]) -> u64 {
        let m = self.dbs.entry(db).or_default();
        if let Some(w) = m.get_mut(key) {
            w.1 += 1;
            return w.0;
        }
        m.insert(key.to_vec(), (0, 1));
        self.len += 1;
        0
    }

    /// The write sequence of a watched key.
    pub fn seq(&self, db: usize, key: &[u8]) -> Option<u64> {
        self.dbs.get(&db)?.get(key).map(|w| w.0)
    }

    /// Drops one watcher of `key`.
    pub fn unwatch(&mut self, db: usize, key: &[u8]) {
        let Some(m) = self.dbs.get_mut(&db) else {
            return;
        };
        if let Some(w) = m.get_mut(key) {
            w.1 -= 1;
            if w.1 == 0 {
                m.remove(key);
                self.len -= 1;
                if m.is_empty() {
                    self.dbs.remove(&db);
                }
            }
        }
    }

    /// A write to `key`: a WATCH of it sees the change.
    pub fn touch(&mut self, db: usize, key: &[u8]) {
        if let Some(w) = self.dbs.get_mut(&db).and_then(|m| m.get_mut(key)) {
            self.seq += 1;
            w.0 = self.seq;
        }
    }

    /// The watched keys of `db`.
    pub fn keys_of(&self, db: usize) -> impl Iterator<Item = &[u8]> {
        self.dbs
            .get(&db)
            .into_iter()
            .flat_map(|m| m.keys().map(Vec::as_slice))
    }

    /// A replica's FLUSHDB, FLUSHALL, SWAPDB: every watched key of `db` (all databases if None) counts as
    /// written.
    pub fn touch_db(&mut self, db: Option<usize>) {
        for (d, m) in self.dbs.iter_mut() {
            if db.is_none_or(|x| x == *d) {
                for w in m.values_mut() {
                    self.seq += 1;
                    w.0 = self.seq;
                }
            }
        }
    }
}

impl Default for Hooks {
    fn default() -> Self {
        Hooks {
            capture: false,
            track: true,
            wrote: false,
            dirty: Vec::new(),
            unit: UnitWriter::default(),
            rewrite: None,
            snapshots: Vec::new(),
            touch: false,
            touched: Vec::new(),
            touched_all: false,
            watched: Watched::default(),
            events: Default::default(),
        }
    }
}

impl Hooks {
    #[inline]
    pub fn active(&self) -> bool {
        self.capture || !self.snapshots.is_empty() || !self.watched.is_empty() || self.events.on()
    }

    /// A write of `key` by a command or operation.
    pub fn written(&mut self, db: usize, key: &[u8]) {
        self.wrote = true;
        if self.track {
            self.dirty.push((db, key.to_vec()));
        }
        if self.touch {
            self.touched.push(tandem_sync::dirty::bucket(db, key));
        }
    }

    /// `key` expired and is being deleted: logged now, so the replica deletes it before applying what
    /// follows (the command that met the expired key, if any).
    pub fn expired(&mut self, db: usize, key: &[u8]) {
        self.unit.record(db, &[&b"DEL"[..], key]);
        if self.touch {
            self.touched.push(tandem_sync::dirty::bucket(db, key));
        }
    }
}

/// What a snapshot's serializer needs to write one slot as of the snapshot point.
pub struct SlotView<'a> {
    pub kept: Option<&'a Kept>,
    /// Per snapshot database, the table a flush replaced, if any.
    pub frozen: Option<&'a [Option<Rc<SlotData>>]>,
    /// Snapshot database d lives in live database dbmap[d].
    pub dbmap: &'a [usize],
}

pub struct SlotSnapshot {
    pub id: u64,
    /// Per owned slot (index from the shard's first slot): already serialized.
    sent: Vec<bool>,
    /// Next slot the walk serializes.
    cursor: usize,
    queue: VecDeque<Vec<u8>>,
    kept: HashMap<usize, Kept>,
    /// Per unsent slot, per snapshot database: its table as it was when a FLUSH replaced it.
    frozen: HashMap<usize, Vec<Option<Rc<SlotData>>>>,
    /// Snapshot database d is live database dbmap[d] (SWAPDB during the snapshot).
    dbmap: Vec<usize>,
    /// Bytes of kept states now, at most, and in total (the copy-on-write cost).
    pub kept_bytes: usize,
    pub peak_kept_bytes: usize,
    pub copied_bytes: u64,
    pub keys: u64,
}

impl SlotSnapshot {
    pub fn new(id: u64, slots: usize, dbs: usize) -> Self {
        SlotSnapshot {
            id,
            sent: vec![false; slots],
            cursor: 0,
            queue: VecDeque::new(),
            kept: HashMap::new(),
            frozen: HashMap::new(),
            dbmap: (0..dbs).collect(),
            kept_bytes: 0,
            peak_kept_bytes: 0,
            copied_bytes: 0,
            keys: 0,
        }
    }

    /// The snapshot's number of live database `live`.
    fn snap_db(&self, live: usize) -> usize {
        self.dbmap.iter().position(|&d| d == live).unwrap_or(live)
    }

    fn is_frozen(&self, idx: usize, db: usize) -> bool {
        self.frozen
            .get(&idx)
            .is_some_and(|f| f.get(db).is_some_and(Option::is_some))
    }

    /// Called before key `key` of live database `live` in slot `idx` changes; `now` gives its current
    /// state.
    pub fn before_write(
        &mut self,
        idx: usize,
        live: usize,
        dbs: usize,
        key: &[u8],
        now: impl FnOnce() -> Old,
    ) {
        let db = self.snap_db(live);
        if self.sent[idx] || self.is_frozen(idx, db) {
            return;
        }
        let per_db = self
            .kept
            .entry(idx)
            .or_insert_with(|| (0..dbs).map(|_| HashMap::new()).collect());
        if per_db[db].contains_key(key) {
            return;
        }
        let old = now();
        let size = key.len() + old.as_ref().map_or(0, |(_, v, _)| v.len()) + 48;
        self.kept_bytes += size;
        self.copied_bytes += size as u64;
        self.peak_kept_bytes = self.peak_kept_bytes.max(self.kept_bytes);
        per_db[db].insert(key.to_vec(), old);
    }

    /// Live database `live` is being flushed: the snapshot keeps, for each unsent slot, the table it had
    /// (if it had not kept one already from an earlier flush).
    pub fn freeze(&mut self, live: usize, tables: &[Rc<SlotData>]) {
        let db = self.snap_db(live);
        let dbs = self.dbmap.len();
        for (idx, t) in tables.iter().enumerate() {
            if self.sent[idx] || t.table.is_empty() || self.is_frozen(idx, db) {
                // An empty table held nothing of the snapshot that the kept states do not.
                continue;
            }
            let f = self
                .frozen
                .entry(idx)
                .or_insert_with(|| (0..dbs).map(|_| None).collect());
            f[db] = Some(t.clone());
        }
    }

    /// Live databases `a` and `b` swapped.
    pub fn swapped(&mut self, a: usize, b: usize) {
        for d in self.dbmap.iter_mut() {
            if *d == a {
                *d = b;
            } else if *d == b {
                *d = a;
            }
        }
    }

    /// The next piece to send, None when every slot has been sent. `serialize(idx, view)` writes slot
    /// `idx` as of the snapshot point: for each snapshot database, its frozen table or else the live one
    /// it maps to, except the kept keys, then the kept states.
    pub fn next_piece(
        &mut self,
        serialize: impl Fn(usize, &SlotView<'_>) -> (Vec<Vec<u8>>, u64),
    ) -> Option<Vec<u8>> {
        loop {
            if let Some(p) = self.queue.pop_front() {
                return Some(p);
            }
            while self.cursor < self.sent.len() && self.sent[self.cursor] {
                self.cursor += 1;
            }
            if self.cursor >= self.sent.len() {
                return None;
            }
            let idx = self.cursor;
            self.sent[idx] = true;
            let kept = self.kept.remove(&idx);
            let frozen = self.frozen.remove(&idx);
            let (pieces, keys) = serialize(
                idx,
                &SlotView {
                    kept: kept.as_ref(),
                    frozen: frozen.as_deref(),
                    dbmap: &self.dbmap,
                },
            );
            if let Some(k) = kept {
                let freed: usize = k
                    .iter()
                    .flat_map(|m| m.iter())
                    .map(|(key, old)| key.len() + old.as_ref().map_or(0, |(_, v, _)| v.len()) + 48)
                    .sum();
                self.kept_bytes -= freed;
            }
            self.keys += keys;
            self.queue.extend(pieces);
        }
    }
}

/// Serializes slot `idx` of every database as snapshot chunks (tandem_sync::snapshot) of about PIECE_BYTES,
/// each preceded by room for its frame header; returns the pieces and the key count.
pub(super) fn serialize_slot(
    dbs: &[super::keyspace::Db],
    first_slot: usize,
    idx: usize,
    view: &SlotView<'_>,
) -> (Vec<Vec<u8>>, u64) {
    use tandem_sync::frame::HEADER_LEN;
    use tandem_sync::snapshot::{begin_chunk, encode, encoded_len, Record, CHUNK_HEADER};
    // Each piece starts with room for its frame header, so the sender seals it in place (no copy).
    const EMPTY: usize = HEADER_LEN + CHUNK_HEADER;
    let slot_no = (first_slot + idx) as u16;
    let mut pieces = Vec::new();
    let mut cur: Vec<u8> = Vec::new();
    let mut keys = 0;
    let mut emit = |r: Record<'_>| {
        let n = encoded_len(r.key, r.value);
        if cur.len() > EMPTY && cur.len() + n > PIECE_BYTES {
            pieces.push(std::mem::take(&mut cur));
        }
        if cur.is_empty() {
            cur.reserve((n + EMPTY).max(16 << 10));
            cur.resize(HEADER_LEN, 0);
            begin_chunk(&mut cur, slot_no);
        }
        encode(&mut cur, &r);
        keys += 1;
    };
    let mut handles: Vec<&Entry> = Vec::new();
    for db in 0..dbs.len() {
        let kept_here = view.kept.and_then(|k| k.get(db)).filter(|m| !m.is_empty());
        let frozen = view.frozen.and_then(|f| f[db].as_deref());
        if let Some(slot) = frozen.or_else(|| dbs[view.dbmap[db]].slots.get(idx)) {
            // The table's handles are contiguous; the blocks they point to are not. Prefetching a few
            // blocks ahead overlaps those cache misses instead of paying them one after another.
            handles.clear();
            handles.extend(slot.table.iter());
            for (i, e) in handles.iter().enumerate() {
                if let Some(ahead) = handles.get(i + 8) {
                    ahead.prefetch();
                }
                // A key written since the snapshot started is sent as it was then (below).
                if kept_here.is_some_and(|m| m.contains_key(e.key())) {
                    continue;
                }
                let (kind, value) = e.image();
                emit(Record {
                    db: db as u16,
                    key: e.key(),
                    value: &value,
                    kind,
                    expire_at: e.expire_at(),
                });
            }
        }
        for (key, old) in kept_here.into_iter().flatten() {
            if let Some((kind, value, expire_at)) = old {
                emit(Record {
                    db: db as u16,
                    key,
                    value,
                    kind: *kind,
                    expire_at: *expire_at,
                });
            }
        }
    }
    if cur.len() > EMPTY {
        pieces.push(cur);
    }
    (pieces, keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A toy slot: keys with values; serialize applies the kept states like the keyspace does.
    fn ser<'a>(
        slots: &'a [Vec<(&'static str, &'static str)>],
    ) -> impl Fn(usize, &SlotView<'_>) -> (Vec<Vec<u8>>, u64) + 'a {
        move |idx, view| {
            let kept = view.kept;
            let mut out = Vec::new();
            for (k, v) in &slots[idx] {
                if kept.is_some_and(|m| m[0].contains_key(k.as_bytes())) {
                    continue;
                }
                out.push(format!("{k}={v}").into_bytes());
            }
            for (k, old) in kept.map(|m| m[0].iter()).into_iter().flatten() {
                if let Some((_, v, _)) = old {
                    out.push([&k[..], b"=", &v[..]].concat());
                }
            }
            let n = out.len() as u64;
            (out, n)
        }
    }

    #[test]
    fn kept_states_replace_current_ones_once() {
        let mut s = SlotSnapshot::new(1, 2, 1);
        // Slot 1 at the snapshot point: a=1, b=2. Then: a changes twice, c is created, b is deleted.
        s.before_write(1, 0, 1, b"a", || Some((0, b"1".to_vec(), None)));
        s.before_write(1, 0, 1, b"a", || panic!("a kept twice"));
        s.before_write(1, 0, 1, b"c", || None);
        s.before_write(1, 0, 1, b"b", || Some((0, b"2".to_vec(), None)));
        assert!(s.kept_bytes > 0);
        let now = vec![vec![("x", "0")], vec![("a", "3"), ("c", "new")]];
        let mut got = Vec::new();
        while let Some(p) = s.next_piece(ser(&now)) {
            got.push(String::from_utf8(p).unwrap());
        }
        got.sort();
        assert_eq!(got, vec!["a=1", "b=2", "x=0"]);
        assert_eq!((s.keys, s.kept_bytes), (3, 0));
        // Once a slot is sent, writes to it keep nothing.
        s.before_write(0, 0, 1, b"x", || panic!("slot already sent"));
    }

    #[test]
    fn empty_slots_yield_nothing() {
        let mut s = SlotSnapshot::new(1, 3, 1);
        assert_eq!(s.next_piece(|_, _| (Vec::new(), 0)), None);
    }
}
