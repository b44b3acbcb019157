//! Expiry beyond lazy deletion on access: the active cycle that walks slot tables segment by segment
//! (`active_expire`), and the expired keys of one slot SCAN meets (`expire_slot`). A child module of
//! keyspace.rs, so it keeps the counters' invariants with the same private access.

use super::{is_expired, Entry, Keyspace};

impl Keyspace {
    /// Deletes the expired keys of `slot` that `matches` (SCAN: only the keys its MATCH and TYPE let
    /// through, as in Valkey).
    pub fn expire_slot(
        &mut self,
        db: usize,
        slot: usize,
        now: u64,
        matches: impl Fn(&Entry) -> bool,
    ) {
        if self.passive_expiry || !self.slots.contains(&slot) {
            return;
        }
        let idx = slot - self.slots.start;
        let expired: Vec<Vec<u8>> = match self.slot_ref(db, idx) {
            Some(s) if s.expires > 0 => s
                .table
                .iter()
                .filter(|e| is_expired(e, now) && matches(e))
                .map(|e| e.key().to_vec())
                .collect(),
            _ => return,
        };
        for k in expired {
            self.expire_if_needed(db, &k, now);
        }
    }

    /// One run of the active expiry cycle: deletes expired keys segment by segment in slots that hold keys
    /// with an expiry, resuming where the last run stopped, until `out_of_time()` says the budget is spent.
    pub fn active_expire(&mut self, now: u64, mut out_of_time: impl FnMut() -> bool) -> usize {
        if !self.active_expire_enabled {
            return 0;
        }
        let mut removed_total = 0;
        let (mut db, mut idx, mut seg) = self.cursor;
        let ndb = self.dbs.len();
        let mut visited_dbs = 0;
        while visited_dbs <= ndb {
            if db >= ndb {
                db = 0;
            }
            let d = &mut self.dbs[db];
            if d.expires == 0 || idx >= d.slots.len() {
                db += 1;
                idx = 0;
                seg = 0;
                visited_dbs += 1;
                continue;
            }
            if let Some(slot) = Some(&mut d.slots[idx]).filter(|s| s.expires > 0) {
                if seg < slot.table.segment_count() {
                    if self.hooks.active()
                        && slot.table.segment_iter(seg).any(|e| is_expired(e, now))
                    {
                        let dead: Vec<Vec<u8>> = slot
                            .table
                            .segment_iter(seg)
                            .filter(|e| is_expired(e, now))
                            .map(|e| e.key().to_vec())
                            .collect();
                        for k in dead {
                            self.before_expiry(db, idx, &k);
                        }
                    }
                    let d = &mut self.dbs[db];
                    let slot = &mut d.slots[idx];
                    let mut expired_here = 0;
                    let removed = slot.table.retain_in_segment(seg, |e| {
                        let dead = is_expired(e, now);
                        expired_here += dead as usize;
                        !dead
                    });
                    debug_assert_eq!(removed, expired_here);
                    slot.expires -= removed;
                    d.expires -= removed;
                    d.keys -= removed;
                    removed_total += removed;
                    seg += 1;
                    if out_of_time() {
                        break;
                    }
                    continue;
                }
            }
            idx += 1;
            seg = 0;
        }
        self.cursor = (db, idx, seg);
        self.stats.expired += removed_total as u64;
        self.dirty.add(removed_total as u64);
        removed_total
    }
}
