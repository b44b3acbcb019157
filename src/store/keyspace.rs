//! One shard's keyspace: `databases` databases, each holding one segmented table per owned hash slot.
//!
//! Invariants:
//! - a key lives in the table of its own slot, and only slots in `slots` (this shard's range) exist here;
//! - `Db::keys` equals the sum of the slot tables' lengths and `expires` the number of entries with an
//!   expiry; both are kept by the mutation methods and by `EntryMut`'s drop, never by callers;
//! - an expired key is invisible: reads delete it on the way (lazy expiry, on a primary) and the active
//!   cycle deletes the rest a bounded number of segments at a time.

use super::dirty::Dirty;
use super::entry::Entry;
use super::events;
use super::hooks::{Hooks, SlotSnapshot};
use super::segtable::SegTable;
pub use super::stats::{ExpireStats, Lookups};
use super::types::Limits;
use crate::slot::key_slot;
use std::ops::Range;

/// A key holds a value of another type than the command works on (WRONGTYPE).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WrongType;

pub struct SlotData {
    pub table: SegTable,
    pub expires: usize,
}

#[derive(Default)]
pub struct Db {
    /// Indexed by slot - first owned slot; allocated on the first write to this database.
    pub(super) slots: Vec<SlotData>,
    keys: usize,
    expires: usize,
}

pub struct Keyspace {
    slots: Range<usize>,
    pub(super) dbs: Vec<Db>,
    seed: u64,
    /// Where the active expiry cycle resumes: (db, slot index, segment).
    cursor: (usize, usize, usize),
    pub active_expire_enabled: bool,
    /// A replica's keyspace: expired keys are hidden from reads but only deleted when the primary says so,
    /// so the replica never diverges from the primary's journal.
    pub passive_expiry: bool,
    pub stats: ExpireStats,
    pub lookups: Lookups,
    pub hooks: Hooks,
    /// When collections leave their compact encodings (from the configuration).
    pub limits: Limits,
    /// Changes since the last saved snapshot (dirty.rs).
    pub dirty: Dirty,
}

/// A mutable handle on an entry that keeps the expiry counters right whatever the caller changes.
pub struct EntryMut<'a> {
    entry: &'a mut Entry,
    had_expire: bool,
    slot_expires: &'a mut usize,
    db_expires: &'a mut usize,
}

impl std::ops::Deref for EntryMut<'_> {
    type Target = Entry;
    fn deref(&self) -> &Entry {
        self.entry
    }
}

impl std::ops::DerefMut for EntryMut<'_> {
    fn deref_mut(&mut self) -> &mut Entry {
        self.entry
    }
}

impl Drop for EntryMut<'_> {
    fn drop(&mut self) {
        match (self.had_expire, self.entry.expire_at().is_some()) {
            (false, true) => {
                *self.slot_expires += 1;
                *self.db_expires += 1;
            }
            (true, false) => {
                *self.slot_expires -= 1;
                *self.db_expires -= 1;
            }
            _ => {}
        }
    }
}

fn is_expired(e: &Entry, now: u64) -> bool {
    matches!(e.expire_at(), Some(t) if t <= now)
}

impl Keyspace {
    pub fn new(slots: Range<usize>, databases: usize, seed: u64) -> Self {
        Keyspace {
            slots,
            dbs: (0..databases).map(|_| Db::default()).collect(),
            seed,
            cursor: (0, 0, 0),
            active_expire_enabled: true,
            passive_expiry: false,
            stats: ExpireStats::default(),
            lookups: Lookups::default(),
            hooks: Hooks::default(),
            limits: Limits::default(),
            dirty: Dirty::default(),
        }
    }

    pub fn databases(&self) -> usize {
        self.dbs.len()
    }

    pub fn owned_slots(&self) -> Range<usize> {
        self.slots.clone()
    }

    fn index(&self, key: &[u8]) -> usize {
        let slot = key_slot(key) as usize;
        debug_assert!(
            self.slots.contains(&slot),
            "slot {slot} is not owned by this shard"
        );
        slot - self.slots.start
    }

    fn slot_ref(&self, db: usize, idx: usize) -> Option<&SlotData> {
        self.dbs[db].slots.get(idx)
    }

    fn slot_data(&mut self, db: usize, idx: usize) -> &mut SlotData {
        let n = self.slots.len();
        let seed = self.seed;
        let d = &mut self.dbs[db];
        // A database's slot array is allocated on its first write; empty slot tables allocate nothing.
        if d.slots.is_empty() {
            d.slots.resize_with(n, || SlotData {
                table: SegTable::new(seed),
                expires: 0,
            });
        }
        &mut d.slots[idx]
    }

    /// Replication hooks before slot `idx` of `db` changes because of `key` (hooks.rs). One predictable
    /// branch when no replication is going on.
    #[inline]
    fn before_write(&mut self, db: usize, idx: usize, key: &[u8]) {
        if self.hooks.active() {
            self.before_write_slow(db, idx, key, false);
        }
    }

    /// `before_write` for a key deleted because it expired.
    #[inline]
    fn before_expiry(&mut self, db: usize, idx: usize, key: &[u8]) {
        if self.hooks.active() {
            self.before_write_slow(db, idx, key, true);
        }
    }

    #[cold]
    fn before_write_slow(&mut self, db: usize, idx: usize, key: &[u8], expiry: bool) {
        // An expiry is no write for WATCH: a key live when watched is seen gone by EXEC
        // (`watch_changed`), and one already expired when watched did not change (Valkey's rule).
        if !expiry {
            self.hooks.watched.touch(db, key);
        }
        let Keyspace { dbs, hooks, .. } = self;
        let ndbs = dbs.len();
        for snap in &mut hooks.snapshots {
            snap.before_write(idx, db, ndbs, key, || {
                dbs[db]
                    .slots
                    .get(idx)
                    .and_then(|s| s.table.get(key))
                    .map(|e| {
                        let (kind, bytes) = e.image();
                        (kind, bytes.into_owned(), e.expire_at())
                    })
            });
        }
        if hooks.capture {
            if expiry {
                hooks.expired(db, key);
            } else {
                hooks.written(db, key);
            }
        }
        if hooks.events.on() {
            if expiry {
                hooks.events.emit(events::EXPIRED, "expired", db, key);
            } else {
                hooks.events.written.push((db, key.to_vec()));
            }
        }
    }

    /// WATCH: registers a watcher of `key`; returns what EXEC compares (its write sequence, and whether it
    /// existed).
    pub fn watch(&mut self, db: usize, key: &[u8], now: u64) -> (u64, bool) {
        let exists = self.peek(db, key, now).is_some();
        (self.hooks.watched.watch(db, key), exists)
    }

    /// Whether `key` changed since a WATCH that saw (seq, existed): written, deleted, or expired since.
    pub fn watch_changed(&self, db: usize, key: &[u8], seq: u64, existed: bool, now: u64) -> bool {
        self.hooks.watched.seq(db, key) != Some(seq)
            || (existed && self.peek(db, key, now).is_none())
    }

    /// Drops one watcher of `key`.
    pub fn unwatch(&mut self, db: usize, key: &[u8]) {
        self.hooks.watched.unwatch(db, key);
    }

    /// Starts a point-in-time snapshot of every slot of this shard (all databases).
    pub fn begin_snapshot(&mut self, id: u64) {
        self.hooks
            .snapshots
            .push(SlotSnapshot::new(id, self.slots.len(), self.dbs.len()));
    }

    /// The snapshot's next piece of records, or None when it is complete (and then forgotten).
    pub fn snapshot_piece(&mut self, id: u64) -> Option<Vec<u8>> {
        let first = self.slots.start;
        let Keyspace { dbs, hooks, .. } = self;
        let i = hooks.snapshots.iter().position(|s| s.id == id)?;
        let p = hooks.snapshots[i]
            .next_piece(|idx, view| super::hooks::serialize_slot(dbs, first, idx, view));
        if p.is_none() {
            hooks.snapshots.swap_remove(i);
        }
        p
    }

    pub fn snapshot(&self, id: u64) -> Option<&SlotSnapshot> {
        self.hooks.snapshots.iter().find(|s| s.id == id)
    }

    pub fn end_snapshot(&mut self, id: u64) {
        self.hooks.snapshots.retain(|s| s.id != id);
    }

    /// Reads a key, deleting it first if it has expired, and stamps its access time. One CRC16 and one hash
    /// per call; the second probe after the expiry check hits lines the first one just loaded.
    pub fn get(&mut self, db: usize, key: &[u8], now: u64) -> Option<&Entry> {
        let idx = self.index(key);
        let found = self.dbs[db].slots.get(idx).and_then(|slot| {
            let h = slot.table.hash(key);
            slot.table
                .get_hashed(h, key)
                .map(|e| (h, is_expired(e, now)))
        });
        let h = match found {
            Some((h, false)) => h,
            Some((_, true)) if !self.passive_expiry => {
                // Rare: the second index computation in remove_raw costs nothing that matters here.
                self.remove_raw(db, key, true);
                self.stats.expired += 1;
                self.missed(db, key);
                return None;
            }
            _ => {
                self.missed(db, key);
                return None;
            }
        };
        self.lookups.hits += 1;
        let e = self.dbs[db].slots[idx].table.get_hashed(h, key)?;
        e.touch(now / 1000);
        Some(e)
    }

    fn missed(&mut self, db: usize, key: &[u8]) {
        self.lookups.misses += 1;
        if self.hooks.events.flags & events::KEY_MISS != 0 {
            self.hooks.events.missed.push((db, key.to_vec()));
        }
    }

    /// `get` for a command that works on values of type `kind` only: another type is an error.
    pub fn get_kind(
        &mut self,
        db: usize,
        key: &[u8],
        now: u64,
        kind: u8,
    ) -> Result<Option<&Entry>, WrongType> {
        match self.get(db, key, now) {
            Some(e) if e.kind() != kind => Err(WrongType),
            x => Ok(x),
        }
    }

    /// Touches the memory a lookup of `key` will need, with no other effect. Called for every command of a
    /// pipelined batch before any runs: short independent probes let the CPU overlap their cache misses,
    /// which the long dependent work of executing each command in turn cannot.
    #[inline]
    pub fn warm(&self, db: usize, key: &[u8]) {
        let slot = key_slot(key) as usize;
        let Some(idx) = slot
            .checked_sub(self.slots.start)
            .filter(|_| self.slots.contains(&slot))
        else {
            return;
        };
        if let Some(e) = self.slot_ref(db, idx).and_then(|s| s.table.get(key)) {
            std::hint::black_box(e.expire_at());
        }
    }

    /// Reads a key without lazy deletion (replica reads, DEBUG, OBJECT); expired keys are still hidden.
    pub fn peek(&self, db: usize, key: &[u8], now: u64) -> Option<&Entry> {
        let idx = self.index(key);
        self.slot_ref(db, idx)?
            .table
            .get(key)
            .filter(|e| !is_expired(e, now))
    }

    pub fn get_mut(&mut self, db: usize, key: &[u8], now: u64) -> Option<EntryMut<'_>> {
        let idx = self.index(key);
        self.expire_if_needed_at(db, idx, key, now);
        self.get_mut_at(db, idx, key, now)
    }

    /// `get_mut` for a command that works on values of type `kind` only (another type is an error),
    /// creating the key with `make` when it is missing and `make` is given; one slot hash for all of it.
    pub fn get_mut_kind(
        &mut self,
        db: usize,
        key: &[u8],
        now: u64,
        kind: u8,
        make: Option<&dyn Fn() -> Entry>,
    ) -> Result<Option<EntryMut<'_>>, WrongType> {
        let idx = self.index(key);
        self.expire_if_needed_at(db, idx, key, now);
        match self.slot_ref(db, idx).and_then(|s| s.table.get(key)) {
            Some(e) if e.kind() != kind => return Err(WrongType),
            Some(_) => {}
            None => match make {
                Some(make) => self.insert_entry(db, make()),
                None => return Ok(None),
            },
        }
        Ok(self.get_mut_at(db, idx, key, now))
    }

    fn get_mut_at(&mut self, db: usize, idx: usize, key: &[u8], now: u64) -> Option<EntryMut<'_>> {
        if self.hooks.active()
            && self
                .slot_ref(db, idx)
                .is_some_and(|s| s.table.get(key).is_some())
        {
            self.before_write(db, idx, key);
        }
        let d = &mut self.dbs[db];
        let slot = d.slots.get_mut(idx)?;
        let entry = slot.table.get_mut(key)?;
        self.dirty.changed();
        entry.touch(now / 1000);
        Some(EntryMut {
            had_expire: entry.expire_at().is_some(),
            entry,
            slot_expires: &mut slot.expires,
            db_expires: &mut d.expires,
        })
    }

    /// Sets a key to `value` with `expire_at`, in one lookup; returns whether the key existed (live) before.
    pub fn set(
        &mut self,
        db: usize,
        key: &[u8],
        value: &[u8],
        expire_at: Option<u64>,
        now: u64,
    ) -> bool {
        self.set_marked(db, key, value, expire_at, now, false)
    }

    /// `set` for a string rewritten in place (SETBIT, BITFIELD, a new SETRANGE): OBJECT ENCODING says
    /// "raw" (Entry::mark_raw), in the same lookup.
    pub fn set_raw(
        &mut self,
        db: usize,
        key: &[u8],
        value: &[u8],
        expire_at: Option<u64>,
        now: u64,
    ) -> bool {
        self.set_marked(db, key, value, expire_at, now, true)
    }

    fn set_marked(
        &mut self,
        db: usize,
        key: &[u8],
        value: &[u8],
        expire_at: Option<u64>,
        now: u64,
        raw: bool,
    ) -> bool {
        self.expire_if_needed(db, key, now);
        let idx = self.index(key);
        self.before_write(db, idx, key);
        self.dirty.changed();
        self.slot_data(db, idx);
        let d = &mut self.dbs[db];
        let slot = &mut d.slots[idx];
        let (entry, inserted) = slot
            .table
            .entry_or_insert_with(key, || Entry::new(key, value, expire_at));
        entry.touch(now / 1000);
        if inserted {
            if raw {
                entry.mark_raw();
            }
            d.keys += 1;
            if self.hooks.events.on() {
                self.hooks.events.emit(events::NEW, "new", db, key);
            }
            if expire_at.is_some() {
                slot.expires += 1;
                d.expires += 1;
            }
            return false;
        }
        let mut e = EntryMut {
            had_expire: entry.expire_at().is_some(),
            entry,
            slot_expires: &mut slot.expires,
            db_expires: &mut d.expires,
        };
        e.set_value(value, expire_at);
        if raw {
            e.mark_raw();
        }
        true
    }

    /// Inserts a whole entry (COPY, RENAME, MOVE, snapshot load), replacing any existing one.
    /// A key it creates is a `new` keyspace event.
    pub fn insert_entry(&mut self, db: usize, entry: Entry) {
        let slot = key_slot(entry.key()) as usize;
        self.dirty.changed();
        if !self.hooks.events.on() {
            self.insert_entry_in_slot(db, slot, entry);
            return;
        }
        let key = entry.key().to_vec();
        if self.insert_entry_in_slot(db, slot, entry) {
            self.hooks.events.emit(events::NEW, "new", db, &key);
        }
    }

    /// `insert_entry` for a caller that knows the key's slot (a snapshot chunk names it), raising no
    /// event (a load is not a command); returns whether the key is new.
    pub fn insert_entry_in_slot(&mut self, db: usize, slot: usize, entry: Entry) -> bool {
        debug_assert_eq!(slot, key_slot(entry.key()) as usize);
        assert!(
            self.slots.contains(&slot),
            "slot {slot} is not owned by this shard"
        );
        let idx = slot - self.slots.start;
        self.before_write(db, idx, entry.key());
        let has_expire = entry.expire_at().is_some();
        let slot = self.slot_data(db, idx);
        let old = slot.table.insert(entry);
        let old_expire = old.as_ref().is_some_and(|o| o.expire_at().is_some());
        slot.expires = slot.expires + has_expire as usize - old_expire as usize;
        let d = &mut self.dbs[db];
        d.expires = d.expires + has_expire as usize - old_expire as usize;
        if old.is_none() {
            d.keys += 1;
        }
        old.is_none()
    }

    /// Removes a key; returns it if it was live.
    pub fn remove(&mut self, db: usize, key: &[u8], now: u64) -> Option<Entry> {
        let e = self.remove_raw(db, key, false)?;
        if is_expired(&e, now) {
            // It was already dead: removing it is its expiry, counted like any other.
            self.stats.expired += 1;
            return None;
        }
        Some(e)
    }

    fn remove_raw(&mut self, db: usize, key: &[u8], expiry: bool) -> Option<Entry> {
        let idx = self.index(key);
        if self.hooks.active()
            && self
                .slot_ref(db, idx)
                .is_some_and(|s| s.table.get(key).is_some())
        {
            if expiry {
                self.before_expiry(db, idx, key);
            } else {
                self.before_write(db, idx, key);
            }
        }
        let d = &mut self.dbs[db];
        let slot = d.slots.get_mut(idx)?;
        let e = slot.table.remove(key)?;
        self.dirty.changed();
        d.keys -= 1;
        if e.expire_at().is_some() {
            slot.expires -= 1;
            d.expires -= 1;
        }
        Some(e)
    }

    fn expire_if_needed(&mut self, db: usize, key: &[u8], now: u64) {
        let idx = self.index(key);
        self.expire_if_needed_at(db, idx, key, now);
    }

    fn expire_if_needed_at(&mut self, db: usize, idx: usize, key: &[u8], now: u64) {
        let expired = self
            .slot_ref(db, idx)
            .and_then(|s| {
                if s.expires > 0 {
                    s.table.get(key)
                } else {
                    None
                }
            })
            .is_some_and(|e| is_expired(e, now));
        if expired {
            self.remove_raw(db, key, true);
            self.stats.expired += 1;
        }
    }

    pub fn len(&self, db: usize) -> usize {
        self.dbs[db].keys
    }

    pub fn expires(&self, db: usize) -> usize {
        self.dbs[db].expires
    }

    pub fn total_keys(&self) -> usize {
        self.dbs.iter().map(|d| d.keys).sum()
    }

    /// Empties database `db`. A snapshot in progress takes the tables of its unsent slots (hooks.rs), so
    /// the flush does not interrupt it.
    pub fn flush_db(&mut self, db: usize) {
        self.touch_watched_live(db, None);
        let old = std::mem::take(&mut self.dbs[db]);
        self.dirty.add(old.keys as u64);
        if self.hooks.snapshots.is_empty() || old.slots.is_empty() {
            return;
        }
        let tables: Vec<std::rc::Rc<SlotData>> =
            old.slots.into_iter().map(std::rc::Rc::new).collect();
        for snap in &mut self.hooks.snapshots {
            snap.freeze(db, &tables);
        }
    }

    pub fn swap_db(&mut self, a: usize, b: usize) {
        self.touch_watched_live(a, Some(b));
        self.touch_watched_live(b, Some(a));
        self.dirty.changed();
        self.dbs.swap(a, b);
        for snap in &mut self.hooks.snapshots {
            snap.swapped(a, b);
        }
    }

    /// FLUSHDB, FLUSHALL, SWAPDB: a watched key of `db` counts as written if it is live there or in
    /// `other` (the database swapped in), as in Valkey: a key missing or expired on both sides did not
    /// change.
    fn touch_watched_live(&mut self, db: usize, other: Option<usize>) {
        if self.hooks.watched.is_empty() {
            return;
        }
        let now = crate::runtime::now_ms();
        let live: Vec<Vec<u8>> = self
            .hooks
            .watched
            .keys_of(db)
            .filter(|k| {
                self.peek(db, k, now).is_some()
                    || other.is_some_and(|o| self.peek(o, k, now).is_some())
            })
            .map(<[u8]>::to_vec)
            .collect();
        for k in live {
            self.hooks.watched.touch(db, &k);
        }
    }

    /// Empties the given slots (absolute numbers, clipped to this shard's) of `db`, or of every database:
    /// a replica applying one primary shard's FLUSHDB/FLUSHALL, which covers only that shard's slots.
    pub fn flush_slots(&mut self, db: Option<usize>, slots: Range<usize>) {
        self.hooks.watched.touch_db(db);
        let (lo, hi) = (
            slots.start.max(self.slots.start),
            slots.end.min(self.slots.end),
        );
        let dbs = match db {
            Some(d) => d..d + 1,
            None => 0..self.dbs.len(),
        };
        for d in dbs {
            if lo >= hi || self.dbs[d].slots.is_empty() {
                continue;
            }
            for slot in lo..hi {
                let idx = slot - self.slots.start;
                let seed = self.seed;
                let db = &mut self.dbs[d];
                let old = std::mem::replace(
                    &mut db.slots[idx],
                    SlotData {
                        table: SegTable::new(seed),
                        expires: 0,
                    },
                );
                db.keys -= old.table.len();
                db.expires -= old.expires;
                self.dirty.add(old.table.len() as u64);
            }
        }
    }

    /// Swaps databases `a` and `b` in the given slots only (a replica applying one primary shard's SWAPDB).
    pub fn swap_slots(&mut self, a: usize, b: usize, slots: Range<usize>) {
        self.hooks.watched.touch_db(Some(a));
        self.hooks.watched.touch_db(Some(b));
        let (lo, hi) = (
            slots.start.max(self.slots.start),
            slots.end.min(self.slots.end),
        );
        if a == b || lo >= hi {
            return;
        }
        let first = self.slots.start;
        self.slot_data(a, 0);
        self.slot_data(b, 0);
        for slot in lo..hi {
            let idx = slot - first;
            let (x, y) = if a < b {
                let (l, r) = self.dbs.split_at_mut(b);
                (&mut l[a], &mut r[0])
            } else {
                let (l, r) = self.dbs.split_at_mut(a);
                (&mut r[0], &mut l[b])
            };
            let (nx, ex) = (x.slots[idx].table.len(), x.slots[idx].expires);
            let (ny, ey) = (y.slots[idx].table.len(), y.slots[idx].expires);
            std::mem::swap(&mut x.slots[idx], &mut y.slots[idx]);
            x.keys = x.keys + ny - nx;
            x.expires = x.expires + ey - ex;
            y.keys = y.keys + nx - ny;
            y.expires = y.expires + ex - ey;
        }
    }

    /// Live entries of one slot (by absolute slot number) in database `db`.
    pub fn slot_entries(&self, db: usize, slot: usize, now: u64) -> impl Iterator<Item = &Entry> {
        let idx = slot
            .checked_sub(self.slots.start)
            .filter(|_| self.slots.contains(&slot));
        idx.and_then(|i| self.slot_ref(db, i))
            .into_iter()
            .flat_map(|s| s.table.iter())
            .filter(move |e| !is_expired(e, now))
    }

    pub fn entries(&self, db: usize, now: u64) -> impl Iterator<Item = &Entry> {
        self.dbs[db]
            .slots
            .iter()
            .flat_map(|s| s.table.iter())
            .filter(move |e| !is_expired(e, now))
    }

    /// A uniformly chosen non-empty slot, then a uniformly chosen live key in it (close to Valkey's
    /// RANDOMKEY, which is also not exactly uniform over keys).
    pub fn random_key(
        &self,
        db: usize,
        now: u64,
        mut rand: impl FnMut(usize) -> usize,
    ) -> Option<Vec<u8>> {
        let d = &self.dbs[db];
        if d.keys == 0 {
            return None;
        }
        let n = d.slots.len();
        let start = rand(n);
        for i in 0..n {
            let Some(slot) = Some(&d.slots[(start + i) % n]).filter(|s| !s.table.is_empty()) else {
                continue;
            };
            let live: Vec<&Entry> = slot.table.iter().filter(|e| !is_expired(e, now)).collect();
            if !live.is_empty() {
                return Some(live[rand(live.len())].key().to_vec());
            }
        }
        None
    }

    /// Bytes of table structure (not entries), for MEMORY-style reporting.
    pub fn table_bytes(&self) -> usize {
        self.dbs
            .iter()
            .flat_map(|d| d.slots.iter())
            .map(|s| s.table.table_bytes() + std::mem::size_of::<SlotData>())
            .sum::<usize>()
            + self
                .dbs
                .iter()
                .map(|d| d.slots.capacity() * 8)
                .sum::<usize>()
    }
}

#[path = "keyspace_expiry.rs"]
mod expiry;

#[cfg(test)]
#[path = "keyspace_tests.rs"]
mod tests;
