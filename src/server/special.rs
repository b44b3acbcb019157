//! Commands that need the connection or several shards: the dispatcher of `Special` commands, and the
//! connection's own (HELLO, AUTH, CONFIG). Key commands across shards are in server/across.rs;
//! multi-shard ones use transactions (shard/tx.rs).

use super::conn::Conn;
use crate::cmd::args::{eq, int, lower};
use crate::cmd::{CmdError, CmdResult, Special};
use crate::repl::commands as repl;
use crate::resp::{Proto, Reply};
use crate::runtime;
use crate::shard::mesh::Kind;
use crate::shard::pubsub::Space;
use crate::slot::{key_slot, slot_owner};
use bytes::Bytes;
use std::sync::Arc;

impl Conn {
    pub fn shard_of(&self, key: &[u8]) -> usize {
        slot_owner(key_slot(key), self.local.nshards())
    }

    pub async fn special(&mut self, which: Special, a: &[Bytes], r: &mut Reply) -> CmdResult {
        match which {
            Special::Ping if self.subscribed() && self.proto == Proto::Resp2 => {
                // Subscribed RESP2 connections get PING's answer as a message-like array.
                if a.len() > 2 {
                    return Err(CmdError::WrongArity("ping".into()));
                }
                r.array(2);
                r.bulk(b"pong");
                r.bulk(a.get(1).map_or(&b""[..], |b| &b[..]));
                Ok(())
            }
            Special::Ping => {
                match a.len() {
                    1 => r.simple("PONG"),
                    2 => r.bulk(&a[1]),
                    _ => return Err(CmdError::WrongArity("ping".into())),
                }
                Ok(())
            }
            Special::Echo => {
                r.bulk(&a[1]);
                Ok(())
            }
            Special::Multi => self.multi_cmd(r),
            Special::Subscribe => self.subscribe(Space::Channel, a, r),
            Special::Psubscribe => self.subscribe(Space::Pattern, a, r),
            Special::Ssubscribe => self.subscribe(Space::Shard, a, r),
            Special::Unsubscribe => self.unsubscribe(Space::Channel, a, r),
            Special::Punsubscribe => self.unsubscribe(Space::Pattern, a, r),
            Special::Sunsubscribe => self.unsubscribe(Space::Shard, a, r),
            Special::Publish => self.publish(false, a, r).await,
            Special::Spublish => self.publish(true, a, r).await,
            Special::Pubsub => self.pubsub_cmd(a, r).await,
            Special::Function => self.function_cmd(a, r),
            Special::Script => self.script_cmd(a, r),
            Special::Eval => self.run_script(a),
            Special::Exec => Box::pin(self.exec_cmd(r)).await,
            Special::Discard => self.discard_cmd(r).await,
            Special::Watch => self.watch_cmd(a, r).await,
            Special::Unwatch => self.unwatch_cmd(r).await,
            Special::Hello => self.hello(a, r),
            Special::Auth => self.auth(a, r),
            Special::Select => {
                let db = crate::cmd::args::int(&a[1])?;
                if db < 0 || db as usize >= self.local.shard.borrow().settings.databases {
                    return Err(CmdError::DbIndexOutOfRange);
                }
                self.db = db as usize;
                self.info.borrow_mut().db = self.db;
                r.ok();
                Ok(())
            }
            Special::Quit => {
                r.ok();
                self.closing = true;
                Ok(())
            }
            Special::Reset => {
                self.unsubscribe_all();
                self.multi = None;
                self.unwatch_all().await;
                self.db = 0;
                self.proto = Proto::Resp2;
                r.proto = Proto::Resp2;
                self.authed = self.local.shard.borrow().settings.requirepass.is_none();
                let mut info = self.info.borrow_mut();
                info.name.clear();
                info.db = 0;
                info.resp = 2;
                r.simple("RESET");
                Ok(())
            }
            Special::Client => self.client(a, r).await,
            Special::Command => self.command(a, r),
            Special::Info => self.info_cmd(a, r).await,
            Special::Config => self.config(a, r).await,
            Special::Dbsize
            | Special::Flushdb
            | Special::Flushall
            | Special::Swapdb
            | Special::Keys
            | Special::Randomkey => self.keyspace_wide(None, which, a, r).await,
            Special::Time => {
                let us = runtime::now_us();
                r.array(2);
                r.bulk_int((us / 1_000_000) as i64);
                r.bulk_int((us % 1_000_000) as i64);
                Ok(())
            }
            Special::Shutdown => {
                for o in &a[1..] {
                    if !["nosave", "save", "now", "force", "abort"].contains(&lower(o).as_str()) {
                        return Err(CmdError::Syntax);
                    }
                }
                if a[1..].iter().any(|o| eq(o, "abort")) {
                    return Err(CmdError::other("ERR No shutdown in progress."));
                }
                tracing::info!("User requested shutdown...");
                if a[1..].iter().any(|o| eq(o, "save")) {
                    tracing::info!("Saving the final snapshot before exiting.");
                    if let Err(e) = crate::persist::snapshot::save(&self.local, false).await {
                        return Err(CmdError::other(format!(
                            "ERR Errors trying to SHUTDOWN. Check logs. ({e})"
                        )));
                    }
                }
                super::request_shutdown(&self.local.shared);
                self.closing = true;
                Ok(())
            }
            Special::Debug => self.debug(a, r).await,
            Special::Scan => self.scan(a, r).await,
            // Special::is_key_command (listed here for the exhaustive match).
            Special::Msetnx
            | Special::Rename
            | Special::Renamenx
            | Special::Copy
            | Special::Sort
            | Special::SortRo
            | Special::Move => self.key_special(None, which, a, r).await,
            Special::Replicaof => repl::replicaof(&self.local, a, r).await,
            Special::Role => repl::role(&self.local, r).await,
            Special::Durability => crate::repl::durability_cmd::durability(&self.local, a, r).await,
            Special::Save => {
                crate::persist::snapshot::save(&self.local, false)
                    .await
                    .map_err(CmdError::other)?;
                r.ok();
                Ok(())
            }
            Special::Bgsave => {
                if a.len() > 2 || (a.len() == 2 && !eq(&a[1], "schedule")) {
                    return Err(CmdError::Syntax);
                }
                if self
                    .local
                    .shared
                    .repl
                    .saving
                    .load(std::sync::atomic::Ordering::Acquire)
                {
                    return Err(CmdError::other("ERR Background save already in progress"));
                }
                let l = self.local.clone();
                runtime::spawn(async move {
                    let _ = crate::persist::snapshot::save(&l, false).await;
                })
                .detach();
                r.simple("Background saving started");
                Ok(())
            }
            Special::Lastsave => {
                let t = self
                    .local
                    .shared
                    .repl
                    .last_save_s
                    .load(std::sync::atomic::Ordering::Acquire);
                r.int(if t == 0 {
                    (self.local.shared.start_ms / 1000) as i64
                } else {
                    t as i64
                });
                Ok(())
            }
            Special::Wait => repl::wait(&self.local, &self.repl, a, r).await,
            Special::Replconf => repl::replconf(&mut self.repl, a, r),
            Special::Failover => {
                crate::repl::group::failover_cmd::failover(&self.local, a, r).await
            }
            Special::Tgroup => crate::repl::group::net::tgroup(&self.local, a, r).await,
            Special::Psync => {
                let addr = self.info.borrow().addr.clone();
                let res = repl::psync(&self.local, &mut self.repl, &addr, a, r).await;
                // The socket becomes a replication stream once the reply is out.
                self.closing |= self.repl.takeover.is_some();
                res
            }
            Special::Tflow => {
                let res = repl::tflow(&self.local, &mut self.repl, a, r);
                self.closing |= self.repl.takeover.is_some();
                res
            }
            Special::Lcs => {
                let vals = self
                    .fetch_with(&[a[1].clone(), a[2].clone()], |e| {
                        (e.kind(), e.value().to_vec())
                    })
                    .await;
                if vals.iter().flatten().any(|(k, _)| *k != 0) {
                    return Err(CmdError::WrongType);
                }
                let vals: Vec<Option<Vec<u8>>> =
                    vals.into_iter().map(|v| v.map(|(_, b)| b)).collect();
                let empty: &[u8] = &[];
                let x = vals[0].as_deref().unwrap_or(empty);
                let y = vals[1].as_deref().unwrap_or(empty);
                crate::cmd::strings::lcs(x, y, &a[3..], r)?;
                Ok(())
            }
        }
    }

    fn hello(&mut self, a: &[Bytes], r: &mut Reply) -> CmdResult {
        let mut proto = self.proto;
        let mut i = 1;
        if a.len() > 1 {
            let v = int(&a[1]).map_err(|_| {
                CmdError::other("ERR Protocol version is not an integer or out of range")
            })?;
            proto = match v {
                2 => Proto::Resp2,
                3 => Proto::Resp3,
                _ => return Err(CmdError::other("NOPROTO unsupported protocol version")),
            };
            i = 2;
        }
        let mut name = None;
        while i < a.len() {
            if eq(&a[i], "auth") && i + 2 < a.len() {
                self.check_password(&a[i + 1], &a[i + 2])?;
                i += 3;
            } else if eq(&a[i], "setname") && i + 1 < a.len() {
                name = Some(super::client_cmd::valid_name(&a[i + 1])?);
                i += 2;
            } else {
                return Err(CmdError::other(format!(
                    "ERR Syntax error in HELLO option '{}'",
                    String::from_utf8_lossy(&a[i])
                )));
            }
        }
        if !self.authed {
            return Err(CmdError::other("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time"));
        }
        self.proto = proto;
        r.proto = proto;
        let mut info = self.info.borrow_mut();
        info.resp = if proto == Proto::Resp3 { 3 } else { 2 };
        if let Some(n) = name {
            info.name = n;
        }
        drop(info);
        r.map(7);
        r.bulk(b"server");
        r.bulk(b"valkey");
        r.bulk(b"version");
        r.bulk(super::info::VALKEY_VERSION.as_bytes());
        r.bulk(b"proto");
        r.int(if proto == Proto::Resp3 { 3 } else { 2 });
        r.bulk(b"id");
        r.int(self.id as i64);
        r.bulk(b"mode");
        r.bulk(b"standalone");
        r.bulk(b"role");
        r.bulk(b"master");
        r.bulk(b"modules");
        r.array(0);
        Ok(())
    }

    fn check_password(&mut self, user: &[u8], pass: &[u8]) -> CmdResult {
        let required = self.local.shard.borrow().settings.requirepass.clone();
        match required {
            None if user == b"default" => {
                self.authed = true;
                Ok(())
            }
            Some(p) if user == b"default" && p.as_bytes() == pass => {
                self.authed = true;
                Ok(())
            }
            _ => Err(CmdError::WrongPass),
        }
    }

    fn auth(&mut self, a: &[Bytes], r: &mut Reply) -> CmdResult {
        if a.len() > 3 {
            return Err(CmdError::Syntax);
        }
        if a.len() == 2 && self.local.shard.borrow().settings.requirepass.is_none() {
            return Err(CmdError::other("ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?"));
        }
        let (user, pass) = if a.len() == 3 {
            (&a[1][..], &a[2][..])
        } else {
            (&b"default"[..], &a[1][..])
        };
        self.check_password(user, pass)?;
        r.ok();
        Ok(())
    }

    async fn config(&mut self, a: &[Bytes], r: &mut Reply) -> CmdResult {
        let sub = lower(&a[1]);
        match sub.as_str() {
            "get" if a.len() >= 3 => {
                let config = self.local.shard.borrow().config.clone();
                let pats: Vec<&[u8]> = a[2..].iter().map(|b| &b[..]).collect();
                let found = config.get_matching(&pats);
                r.map(found.len());
                for (k, v) in found {
                    r.bulk(k.as_bytes());
                    r.bulk(v.as_bytes());
                }
                Ok(())
            }
            "set" if a.len() >= 4 && a.len().is_multiple_of(2) => {
                let pairs: Vec<(String, String)> = a[2..]
                    .chunks(2)
                    .map(|c| (lower(&c[0]), String::from_utf8_lossy(&c[1]).into_owned()))
                    .collect();
                // Shard 0 holds the authoritative copy: updates are serialised there and numbered, then
                // broadcast; a shard applies a copy only if it is newer than its own, so two concurrent
                // CONFIG SETs cannot leave a shard with the older one.
                let (updated, version) = self
                    .local
                    .call(0, Kind::Normal, move |sh| {
                        let mut c = (*sh.config).clone();
                        c.set_many(&pairs)?;
                        let c = Arc::new(c);
                        sh.config_version += 1;
                        sh.set_config(c.clone());
                        Ok::<_, String>((c, sh.config_version))
                    })
                    .await
                    .map_err(CmdError::other)?;
                self.local
                    .broadcast(move |sh| {
                        if version > sh.config_version {
                            sh.config_version = version;
                            sh.set_config(updated.clone());
                        }
                    })
                    .await;
                // What clients are refused follows the new settings at once (min-replicas, durability).
                crate::repl::gate::update(&self.local.shared, &self.local.shard.borrow().settings);
                r.ok();
                Ok(())
            }
            "resetstat" if a.len() == 2 => {
                self.local.broadcast(|sh| sh.stats.reset()).await;
                r.ok();
                Ok(())
            }
            "rewrite" if a.len() == 2 => Err(CmdError::other(
                "ERR The server is running without a config file",
            )),
            "help" if a.len() == 2 => {
                crate::cmd::args::help(
                    r,
                    &[
                        "CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                        "GET <pattern>",
                        "    Return parameters matching the glob-like <pattern> and their values.",
                        "SET <directive> <value>",
                        "    Set the configuration <directive> to <value>.",
                        "RESETSTAT",
                        "    Reset statistics reported by the INFO command.",
                        "HELP",
                        "    Print this help.",
                    ],
                );
                Ok(())
            }
            "get" | "set" | "resetstat" | "rewrite" => {
                Err(CmdError::WrongArity(format!("config|{sub}")))
            }
            _ => Err(CmdError::UnknownSubcommand {
                sub: String::from_utf8_lossy(&a[1]).into(),
                cmd: "CONFIG".into(),
            }),
        }
    }
}
