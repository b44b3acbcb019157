//! DEBUG: SLEEP, POPULATE, DIGEST, DIGEST-VALUE, SET-ACTIVE-EXPIRE, GROUP-CUT (Tandem: cuts this member's
//! control-plane messages one way or both, for the fault suite); gated by enable-debug-command.

use super::conn::Conn;
use crate::cmd::args::{help, int, lower};
use crate::cmd::{CmdError, CmdResult};
use crate::resp::Reply;
use crate::runtime;
use crate::slot::{key_slot, slot_owner};
use crate::store::Entry;
use bytes::Bytes;

/// Digest of one key: SHA1 over (db, key, value, expiry). DEBUG DIGEST XORs these, so the result does not
/// depend on iteration order, hence not on how keys are spread over shards.
pub fn key_digest(db: usize, e: &Entry) -> [u8; 20] {
    let mut h = sha1_smol::Sha1::new();
    h.update(&(db as u64).to_le_bytes());
    h.update(&(e.key().len() as u64).to_le_bytes());
    h.update(e.key());
    match e.coll() {
        None => h.update(e.value()),
        Some(c) => h.update(&c.digest()),
    }
    h.update(&e.expire_at().unwrap_or(0).to_le_bytes());
    h.digest().bytes()
}

/// DEBUG DIGEST-VALUE: a string's SHA1, or a collection's order-independent digest (store::types).
fn value_digest(e: &Entry) -> [u8; 20] {
    match e.coll() {
        Some(c) => c.digest(),
        None => {
            let mut h = sha1_smol::Sha1::new();
            h.update(e.value());
            h.digest().bytes()
        }
    }
}

fn hex(d: &[u8; 20]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

fn xor_into(acc: &mut [u8; 20], d: &[u8; 20]) {
    acc.iter_mut().zip(d).for_each(|(a, b)| *a ^= b);
}

impl Conn {
    fn debug_allowed(&self) -> bool {
        let sh = self.local.shard.borrow();
        match sh.settings.enable_debug_command.as_str() {
            "yes" => true,
            "local" => self
                .info
                .borrow()
                .addr
                .parse::<std::net::SocketAddr>()
                .is_ok_and(|a| a.ip().is_loopback()),
            _ => false,
        }
    }

    pub async fn debug(&mut self, a: &[Bytes], r: &mut Reply) -> CmdResult {
        if !self.debug_allowed() {
            return Err(CmdError::DebugDisabled("DEBUG".into()));
        }
        let sub = lower(&a[1]);
        match sub.as_str() {
            "help" => help(r, &[
                "DEBUG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "DIGEST", "    Output a hex signature representing the current DB content.",
                "DIGEST-VALUE <key> [<key> ...]", "    Output a hex signature of the values of all the specified keys.",
                "POPULATE <count> [<prefix>] [<size>]", "    Create <count> string keys named key:<num>. If <prefix> is specified then it is used instead of the 'key' prefix.",
                "SET-ACTIVE-EXPIRE <0|1>", "    Setting it to 0 disables expiring keys in background when they are not accessed.",
                "SLEEP <seconds>", "    Stop the server for <seconds>. Decimals allowed.",
                "GROUP-CUT <IN|OUT|BOTH|NONE>", "    Tandem: drop this member's incoming and/or outgoing group messages (failover mode).",
                "WAL-FAIL <WRITE|SYNC>", "    Tandem: every shard's next WAL write (or sync) fails, as a failing disk's would.",
            ]),
            "wal-fail" if a.len() == 3 => {
                use crate::persist::wal::Inject;
                let what = match lower(&a[2]).as_str() {
                    "write" => Inject::Write,
                    "sync" => Inject::Sync,
                    _ => return Err(CmdError::Syntax),
                };
                let set = self
                    .local
                    .broadcast(move |sh| sh.wal.as_mut().map(|w| w.inject = Some(what)).is_some())
                    .await;
                if !set.iter().any(|&x| x) {
                    return Err(CmdError::other("ERR appendonly is off"));
                }
                r.ok();
            }
            "group-cut" if a.len() == 3 => {
                let (cut_in, cut_out) = match lower(&a[2]).as_str() {
                    "in" => (true, false),
                    "out" => (false, true),
                    "both" => (true, true),
                    "none" => (false, false),
                    _ => return Err(CmdError::Syntax),
                };
                let set = self
                    .local
                    .run_on(0, move |l| async move {
                        let mut sh = l.shard.borrow_mut();
                        let g = sh.group.as_deref_mut()?;
                        g.cut = (cut_in, cut_out);
                        Some(())
                    })
                    .await;
                if set.is_none() {
                    return Err(CmdError::other("ERR this node is not in failover mode"));
                }
                r.ok();
            }
            "sleep" if a.len() == 3 => {
                let secs: f64 = std::str::from_utf8(&a[2]).ok().and_then(|s| s.parse().ok()).ok_or(CmdError::NotFloat)?;
                // Like Valkey, this stalls the server thread that runs it (this shard), on purpose.
                std::thread::sleep(std::time::Duration::from_secs_f64(secs.max(0.0)));
                r.ok();
            }
            // Valkey's RELOAD saves the RDB and loads it back. Tandem's data is what it would load; what
            // a load changes is encodings (store/reload.rs), so that is what this does. Nothing is saved.
            "reload" => {
                self.local
                    .broadcast(|sh| sh.ks.reload_encodings())
                    .await;
                r.ok();
            }
            // An element this long makes its list a quicklist (Valkey keeps it in a "plain" node of its
            // own; Tandem's nodes hold it like any other).
            "quicklist-packed-threshold" if a.len() == 3 => {
                let n = crate::config::parse_memory(&String::from_utf8_lossy(&a[2]))
                    .filter(|&n| n <= (1u64 << 32) - (1 << 20))
                    .ok_or_else(|| CmdError::other("ERR argument must be a memory value bigger than 1 and smaller than 4gb"))?;
                // 0 restores the default, as in Valkey.
                let n = if n == 0 { 1 << 30 } else { n as usize };
                self.local
                    .broadcast(move |sh| sh.ks.limits.list_packed_threshold = n)
                    .await;
                r.ok();
            }
            "object" if a.len() == 3 => {
                let (db, key, now) = (self.db, a[2].clone(), runtime::now_ms());
                let s = self.shard_of(&key);
                let line = self
                    .local
                    .call(s, crate::shard::mesh::Kind::Normal, move |sh| {
                        sh.ks.peek(db, &key, now).map(|e| {
                            let enc = match e.coll() {
                                Some(c) => c.encoding(),
                                None => crate::cmd::keys::encoding_of(e),
                            };
                            let (_, image) = e.image();
                            let idle = ((now / 1000) as u32 & crate::store::entry::LRU_MASK)
                                .wrapping_sub(e.lru())
                                & crate::store::entry::LRU_MASK;
                            format!(
                                "Value at:0x0 refcount:1 encoding:{enc} serializedlength:{} lru:{} lru_seconds_idle:{idle}",
                                image.len(),
                                e.lru()
                            )
                        })
                    })
                    .await;
                match line {
                    Some(l) => r.simple(&l),
                    None => return Err(CmdError::NoSuchKey),
                }
            }
            "set-active-expire" if a.len() == 3 => {
                let on = int(&a[2])? != 0;
                self.local.broadcast(move |sh| sh.ks.active_expire_enabled = on).await;
                r.ok();
            }
            "populate" if (3..=5).contains(&a.len()) => {
                let count = int(&a[2])?;
                if count < 0 {
                    return Err(CmdError::other("ERR count can't be negative"));
                }
                let prefix = a.get(3).cloned().unwrap_or_else(|| Bytes::from_static(b"key"));
                let size = match a.get(4) {
                    Some(s) => {
                        let v = int(s)?;
                        if v < 0 {
                            return Err(CmdError::other("ERR size can't be negative"));
                        }
                        Some(v as usize)
                    }
                    None => None,
                };
                let db = self.db;
                // Every shard walks the whole count and keeps the keys of its own slots, all in parallel.
                self.local
                    .broadcast(move |sh| {
                        let now = runtime::now_ms();
                        let mut key = Vec::with_capacity(prefix.len() + 21);
                        let mut val = Vec::new();
                        for i in 0..count as u64 {
                            key.clear();
                            key.extend_from_slice(&prefix);
                            key.push(b':');
                            key.extend_from_slice(itoa::Buffer::new().format(i).as_bytes());
                            if slot_owner(key_slot(&key), sh.nshards) != sh.id || sh.ks.peek(db, &key, now).is_some() {
                                continue;
                            }
                            val.clear();
                            val.extend_from_slice(b"value:");
                            val.extend_from_slice(itoa::Buffer::new().format(i).as_bytes());
                            if let Some(sz) = size {
                                val.resize(sz, 0);
                            }
                            sh.ks.set(db, &key, &val, None, now);
                        }
                    })
                    .await;
                r.ok();
            }
            "digest" if a.len() == 2 => {
                let now = runtime::now_ms();
                let parts = self
                    .local
                    .broadcast(move |sh| {
                        let mut acc = [0u8; 20];
                        let mut any = false;
                        for db in 0..sh.ks.databases() {
                            for e in sh.ks.entries(db, now) {
                                xor_into(&mut acc, &key_digest(db, e));
                                any = true;
                            }
                        }
                        (acc, any)
                    })
                    .await;
                let mut acc = [0u8; 20];
                parts.iter().for_each(|(d, _)| xor_into(&mut acc, d));
                r.simple(&hex(&acc));
            }
            "digest-value" => {
                let vals = self.fetch_with(&a[2..], value_digest).await;
                r.array(vals.len());
                for v in vals {
                    r.simple(&hex(&v.unwrap_or([0u8; 20])));
                }
            }
            _ => return Err(CmdError::UnknownSubcommand { sub: String::from_utf8_lossy(&a[1]).into(), cmd: "DEBUG".into() }),
        }
        Ok(())
    }
}
