//! DEBUG RELOAD's effect on the data: every collection is rebuilt from its byte form, in the encoding a
//! snapshot load would give it under the current limits (Valkey saves and loads its RDB, and a list whose
//! quicklist has one small node comes back a listpack). Values and keys are unchanged, so a snapshot in
//! progress, the log and WATCH see nothing; it walks the whole keyspace at once, as Valkey's RELOAD
//! blocks the server (a debugging command, never on a client's path).

use super::keyspace::Keyspace;
use super::types::Coll;

impl Keyspace {
    /// Rebuilds every collection's encoding; returns how many changed encoding.
    pub fn reload_encodings(&mut self) -> usize {
        let lim = self.limits;
        let mut changed = 0;
        let mut bytes = Vec::new();
        for db in &mut self.dbs {
            for slot in &mut db.slots {
                slot.table.for_each_mut(|e| {
                    let Some(c) = e.coll_mut() else { return };
                    bytes.clear();
                    c.encode(&mut bytes);
                    if let Some(fresh) = Coll::decode(c.kind(), &bytes, &lim) {
                        changed += usize::from(fresh.encoding() != c.encoding());
                        *c = fresh;
                    }
                });
            }
        }
        changed
    }
}
