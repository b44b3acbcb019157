//! Snapshot chunks, loaded by the replica shard that owns their slot.

use super::flow::Flow;
use super::*;

impl Flow {
    /// Loads one snapshot chunk on the replica shard that owns its slot, which parses it and builds the
    /// entries itself (its allocator, its cache). A chunk for this thread's shard is loaded right away;
    /// others travel by message, up to `WINDOW` in flight so reading the socket does not wait for them.
    pub(super) async fn load_chunk(
        &self,
        payload: Bytes,
        inflight: &mut VecDeque<Loading>,
    ) -> io::Result<u64> {
        let (slot, _) = tandem_sync::snapshot::chunk(&payload).map_err(|e| err(e.to_string()))?;
        let t = slot_owner(slot, self.local.nshards());
        if t == self.local.id {
            return self
                .local
                .call(t, Kind::Normal, move |sh| load_into(sh, &payload))
                .await
                .map_err(err);
        }
        inflight.push_back(
            self.local
                .send_call(t, Kind::Normal, move |sh| load_into(sh, &payload)),
        );
        let mut keys = 0;
        while inflight.len() > WINDOW {
            if let Some(rx) = inflight.pop_front() {
                keys += finish_one(rx).await?;
            }
        }
        Ok(keys)
    }
}

pub(super) type Loading = futures_channel::oneshot::Receiver<Result<u64, String>>;
const WINDOW: usize = 8;

pub(super) async fn finish_one(rx: Loading) -> io::Result<u64> {
    rx.await.map_err(|_| err("shard gone"))?.map_err(err)
}

/// Inserts a chunk's records into this shard; returns the key count.
pub(crate) fn load_into(sh: &mut Shard, payload: &[u8]) -> Result<u64, String> {
    let (slot, recs) = tandem_sync::snapshot::chunk(payload).map_err(|e| e.to_string())?;
    let slot = slot as usize;
    if !sh.ks.owned_slots().contains(&slot) {
        return Err(format!("chunk of slot {slot} sent to the wrong shard"));
    }
    let n = sh.ks.databases();
    let mut keys = 0;
    for r in recs {
        let r = r.map_err(|e| e.to_string())?;
        let db = r.db as usize;
        if db >= n {
            return Err(format!("snapshot names database {db}, this server has {n}"));
        }
        if cfg!(debug_assertions) && key_slot(r.key) as usize != slot {
            return Err("key in the wrong slot's chunk".into());
        }
        let e = Entry::from_image(r.key, r.kind, r.value, r.expire_at, &sh.ks.limits)
            .ok_or_else(|| format!("malformed value of type {} in a snapshot chunk", r.kind))?;
        sh.ks.insert_entry_in_slot(db, slot, e);
        keys += 1;
    }
    Ok(keys)
}
