//! Log units as they arrive on a flow: applied in order, whole; transactions reassembled across flows.

use super::flow::Flow;
use super::*;

impl Flow {
    /// Applies log bytes at `offset`: every whole unit they complete, in order; an incomplete one waits in
    /// `carry` for the next frame. A plain unit is applied at once; a transaction's part waits until every
    /// part has arrived on its flow, and then the whole transaction is applied at once (apply.rs).
    pub(super) async fn apply(
        &self,
        offset: u64,
        data: Bytes,
        carry: &mut Carry,
    ) -> io::Result<()> {
        if offset != carry.next + carry.buf.len() as u64 {
            return Err(err(format!(
                "log bytes at offset {offset} where {} was expected",
                carry.next + carry.buf.len() as u64
            )));
        }
        // Whole units come straight out of the frame when nothing is carried over (the common case).
        let bytes = if carry.buf.is_empty() {
            data
        } else {
            carry.buf.extend_from_slice(&data);
            // A unit larger than a frame keeps accumulating until it is whole (no copy per frame).
            if tandem_sync::unit::peek_len(&carry.buf).is_some_and(|l| l > carry.buf.len()) {
                return Ok(());
            }
            std::mem::take(&mut carry.buf).freeze()
        };
        let mut next = carry.next;
        let mut spans = Vec::new();
        {
            let mut units = Vec::new();
            if let Err(e) = split_units(&bytes, &mut next, &mut units) {
                // Mid-unit where this replica's history ended (the primary's diverged from it after a
                // restart or a failover) or corrupt: continuing again would fail the same way forever.
                let why = format!(
                    "flow {}: the primary's log at offset {next} is not a continuation of this \
                     replica's ({e}); the next attempt is a full sync",
                    self.i
                );
                tracing::warn!("{why}");
                self.p.diverge(why.clone());
                return Err(err(why));
            }
            spans.extend(units.iter().map(|u| (u.len(), u.end(), u.tx)));
        }
        // Consecutive plain units go to the shards as one group (one message per target shard, not one
        // round trip per unit); a transaction's part first applies what came before it.
        let mut at = 0;
        let mut plain: Vec<Received> = Vec::new();
        for (len, end, tx) in spans {
            let part = Received {
                from: self.i,
                bytes: bytes.slice(at..at + len),
            };
            at += len;
            match tx {
                None => plain.push(part),
                Some(tag) => {
                    self.apply_plain(&mut plain, carry.next).await?;
                    self.tx_part(tag, part, end).await?;
                }
            }
            carry.next = end;
        }
        self.apply_plain(&mut plain, carry.next).await?;
        carry.buf = BytesMut::from(&bytes[at..]);
        Ok(())
    }

    /// Applies the plain units gathered so far, whole, and advances the flow's offset to `end`.
    async fn apply_plain(&self, units: &mut Vec<Received>, end: u64) -> io::Result<()> {
        if units.is_empty() {
            return Ok(());
        }
        apply_group(&self.local, units, self.n).await.map_err(err)?;
        units.clear();
        self.progress().applied.store(end, Ordering::Release);
        Ok(())
    }

    /// One part of a multi-shard transaction: the flow that brings the last part applies them all and
    /// advances every participating flow's offset before the others continue, so a flow's offset never
    /// counts a transaction that is not applied, nor misses one that is.
    async fn tx_part(&self, tag: TxTag, part: Received, end: u64) -> io::Result<()> {
        let (done, rx) = futures_channel::oneshot::channel();
        let complete = self.p.gather.lock().expect("gather lock").add(
            tag,
            TxPart {
                part,
                end,
                flow: self.i,
                done,
            },
        );
        let Some(parts) = complete else {
            let mut rx = rx;
            loop {
                match select(&mut rx, pin!(runtime::sleep(Duration::from_millis(20)))).await {
                    Either::Left((Ok(res), _)) => return res.map_err(err),
                    Either::Left((Err(_), _)) => return Err(err("transaction abandoned")),
                    Either::Right(_) if self.p.cancelled() => return Err(err("cancelled")),
                    Either::Right(_) => {}
                }
            }
        };
        let group: Vec<Received> = parts.iter().map(|p| p.part.clone()).collect();
        let res = apply_group(&self.local, &group, self.n).await;
        if res.is_ok() {
            for p in &parts {
                self.p.flows[p.flow].applied.store(p.end, Ordering::Release);
            }
        }
        for p in parts {
            let _ = p.done.send(res.clone());
        }
        res.map_err(err)
    }
}

/// Bytes of a unit not complete yet, and the log offset of its first byte.
pub struct Carry {
    buf: BytesMut,
    next: u64,
}

impl Carry {
    pub(super) fn at(next: u64) -> Self {
        Carry {
            buf: BytesMut::new(),
            next,
        }
    }
}

/// A transaction's part waiting for the others.
pub struct TxPart {
    part: Received,
    end: u64,
    flow: usize,
    done: futures_channel::oneshot::Sender<Result<(), String>>,
}
