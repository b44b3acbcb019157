//! CLIENT subcommands. Connections are registered with the shard that accepted them; commands that look
//! at all clients (LIST, KILL, PAUSE) ask every shard.

use super::conn::Conn;
use crate::cmd::args::{help, int, lower};
use crate::cmd::{CmdError, CmdResult};
use crate::resp::Reply;
use crate::runtime;
use crate::shard::{ClientInfo, PauseKind};
use bytes::Bytes;

/// Client names may not contain spaces, newlines or special characters (Valkey's rule).
pub fn valid_name(n: &[u8]) -> Result<String, CmdError> {
    if n.iter().any(|&c| !(b'!'..=b'~').contains(&c)) {
        return Err(CmdError::other(
            "ERR Client names cannot contain spaces, newlines or special characters.",
        ));
    }
    Ok(String::from_utf8_lossy(n).into_owned())
}

fn describe(c: &ClientInfo, now: u64) -> String {
    format!(
        "id={} addr={} laddr={} fd=0 name={} age={} idle={} flags=N db={} sub=0 psub=0 ssub=0 multi=-1 watch=0 \
         qbuf={} qbuf-free=0 argv-mem=0 multi-mem=0 rbs=16384 rbp=0 obl=0 oll=0 omem=0 tot-mem=0 events=r \
         cmd={} user=default redir=-1 resp={} lib-name={} lib-ver={}",
        c.id,
        c.addr,
        c.laddr,
        c.name,
        now.saturating_sub(c.created_ms) / 1000,
        now.saturating_sub(c.last_ms) / 1000,
        c.db,
        c.qbuf,
        c.last_cmd,
        c.resp,
        c.lib_name,
        c.lib_ver
    )
}

/// A CLIENT KILL filter (new form) or the old `CLIENT KILL addr:port`.
#[derive(Clone, Default)]
struct KillFilter {
    id: Option<u64>,
    addr: Option<String>,
    laddr: Option<String>,
    skip: Option<u64>,
    maxage: Option<u64>,
    type_normal_only: Option<bool>,
    /// TYPE master: the replica's link to its primary (not a registered client here).
    master: bool,
}

impl KillFilter {
    fn matches(&self, c: &ClientInfo, now: u64) -> bool {
        self.id.is_none_or(|i| i == c.id)
            && self.addr.as_ref().is_none_or(|a| *a == c.addr)
            && self.laddr.as_ref().is_none_or(|a| *a == c.laddr)
            && self.skip != Some(c.id)
            && self
                .maxage
                .is_none_or(|m| now.saturating_sub(c.created_ms) / 1000 >= m)
            && self.type_normal_only.unwrap_or(true)
    }
}

impl Conn {
    pub async fn client(&mut self, a: &[Bytes], r: &mut Reply) -> CmdResult {
        let sub = lower(&a[1]);
        match (sub.as_str(), a.len()) {
            ("id", 2) => r.int(self.id as i64),
            ("reply", 3) => {
                // The mode takes effect from the next command (conn.rs drops replies accordingly); only
                // ON answers.
                self.reply_mode = match lower(&a[2]).as_str() {
                    "on" => {
                        r.ok();
                        super::conn::ReplyMode::On
                    }
                    "off" => super::conn::ReplyMode::Off,
                    "skip" => super::conn::ReplyMode::SkipNext,
                    _ => return Err(CmdError::Syntax),
                };
            }
            ("unblock", 3 | 4) => {
                let id = int(&a[2]).map_err(|_| CmdError::other("ERR value is not an integer or out of range"))?;
                let error = match a.get(3).map(|m| lower(m)) {
                    None => false,
                    Some(m) if m == "timeout" => false,
                    Some(m) if m == "error" => true,
                    Some(_) => return Err(super::blocking::bad_unblock_mode()),
                };
                let hit = self
                    .local
                    .broadcast(move |sh| super::blocking::unblock_client(sh, id as u64, error))
                    .await
                    .into_iter()
                    .any(|x| x);
                r.int(hit as i64);
            }
            ("getname", 2) => {
                let n = self.info.borrow().name.clone();
                if n.is_empty() {
                    r.null()
                } else {
                    r.bulk(n.as_bytes())
                }
            }
            ("setname", 3) => {
                self.info.borrow_mut().name = valid_name(&a[2])?;
                r.ok();
            }
            ("setinfo", 4) => {
                let v = valid_name(&a[3]).map_err(|_| CmdError::other("ERR lib-name and lib-ver cannot contain spaces, newlines or special characters."))?;
                match lower(&a[2]).as_str() {
                    "lib-name" => self.info.borrow_mut().lib_name = v,
                    "lib-ver" => self.info.borrow_mut().lib_ver = v,
                    _ => return Err(CmdError::other(format!("ERR Unrecognized option '{}'", String::from_utf8_lossy(&a[2])))),
                }
                r.ok();
            }
            ("info", 2) => {
                let line = describe(&self.info.borrow(), runtime::now_ms());
                r.verbatim(format!("{line}\n").as_bytes());
            }
            ("list", _) => {
                let mut ids: Option<Vec<u64>> = None;
                let mut i = 2;
                while i < a.len() {
                    match lower(&a[i]).as_str() {
                        "type" if i + 1 < a.len() => {
                            let t = lower(&a[i + 1]);
                            if !["normal", "master", "replica", "slave", "pubsub"].contains(&t.as_str()) {
                                return Err(CmdError::other(format!("ERR Unknown client type '{t}'")));
                            }
                            if t != "normal" {
                                ids = Some(Vec::new());
                            }
                            i += 2;
                        }
                        "id" if i + 1 < a.len() => {
                            let mut v = Vec::new();
                            for x in &a[i + 1..] {
                                let id = int(x).ok().filter(|n| *n > 0).ok_or(CmdError::other("ERR Invalid client ID"))?;
                                v.push(id as u64);
                            }
                            ids = Some(v);
                            i = a.len();
                        }
                        _ => return Err(CmdError::Syntax),
                    }
                }
                let now = runtime::now_ms();
                let parts = self
                    .local
                    .broadcast(move |sh| {
                        sh.clients
                            .values()
                            .map(|c| c.borrow().clone())
                            .filter(|c| ids.as_ref().is_none_or(|v| v.contains(&c.id)))
                            .map(|c| (c.id, describe(&c, now)))
                            .collect::<Vec<_>>()
                    })
                    .await;
                let mut all: Vec<(u64, String)> = parts.into_iter().flatten().collect();
                all.sort_by_key(|x| x.0);
                let text: String = all.into_iter().map(|(_, l)| l + "\n").collect();
                r.verbatim(text.as_bytes());
            }
            ("kill", _) => self.client_kill(a, r).await?,
            ("pause", 3 | 4) => {
                let ms = int(&a[2]).ok().filter(|v| *v >= 0).ok_or(CmdError::other("ERR timeout is not an integer or out of range"))?;
                let kind = match a.get(3).map(|m| lower(m)) {
                    None => PauseKind::All,
                    Some(m) if m == "all" => PauseKind::All,
                    Some(m) if m == "write" => PauseKind::Write,
                    _ => return Err(CmdError::Syntax),
                };
                let until = runtime::now_ms() + ms as u64;
                self.local.broadcast(move |sh| sh.pause = Some((kind, until))).await;
                r.ok();
            }
            ("unpause", 2) => {
                self.local
                    .broadcast(|sh| {
                        sh.pause = None;
                        sh.wake_clients();
                    })
                    .await;
                r.ok();
            }
            ("help", 2) => help(r, &[
                "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "GETNAME", "    Return the name of the current connection.",
                "ID", "    Return the ID of the current connection.",
                "INFO", "    Return information about the current client connection.",
                "KILL <ip:port>", "    Kill connection made from <ip:port>.",
                "KILL <option> <value> [<option> <value> [...]]", "    Kill connections. Options are: ID, ADDR, LADDR, TYPE, USER, SKIPME, MAXAGE.",
                "LIST [options ...]", "    Return information about client connections.",
                "PAUSE <timeout> [WRITE|ALL]", "    Suspend all, or just write, clients for <timeout> milliseconds.",
                "SETINFO <option> <value>", "    Set client meta attr. Options are: LIB-NAME, LIB-VER.",
                "SETNAME <name>", "    Assign the name <name> to the current connection.",
                "UNPAUSE", "    Stop the current client pause, resuming traffic.",
                "HELP", "    Print this help.",
            ]),
            ("id" | "getname" | "setname" | "setinfo" | "info" | "pause" | "unpause", _) => {
                return Err(CmdError::WrongArity(format!("client|{sub}")))
            }
            _ => return Err(CmdError::UnknownSubcommand { sub: String::from_utf8_lossy(&a[1]).into(), cmd: "CLIENT".into() }),
        }
        Ok(())
    }

    async fn client_kill(&mut self, a: &[Bytes], r: &mut Reply) -> CmdResult {
        let old_form = a.len() == 3;
        let mut f = KillFilter::default();
        if old_form {
            f.addr = Some(String::from_utf8_lossy(&a[2]).into_owned());
        } else {
            if a.len() < 4 || !a.len().is_multiple_of(2) {
                return Err(CmdError::Syntax);
            }
            f.skip = Some(self.id);
            for kv in a[2..].chunks(2) {
                let v = String::from_utf8_lossy(&kv[1]).into_owned();
                match lower(&kv[0]).as_str() {
                    "id" => {
                        f.id = Some(
                            v.parse()
                                .ok()
                                .filter(|n| *n > 0)
                                .ok_or(CmdError::other("ERR client-id should be greater than 0"))?,
                        )
                    }
                    "addr" => f.addr = Some(v),
                    "laddr" => f.laddr = Some(v),
                    "user" => {}
                    "maxage" => f.maxage = Some(v.parse().map_err(|_| CmdError::NotInteger)?),
                    "skipme" => match v.to_ascii_lowercase().as_str() {
                        "yes" => f.skip = Some(self.id),
                        "no" => f.skip = None,
                        _ => return Err(CmdError::Syntax),
                    },
                    "type" => match v.to_ascii_lowercase().as_str() {
                        "normal" => f.type_normal_only = Some(true),
                        "master" => {
                            f.type_normal_only = Some(false);
                            f.master = true;
                        }
                        "replica" | "slave" | "pubsub" => f.type_normal_only = Some(false),
                        _ => return Err(CmdError::other(format!("ERR Unknown client type '{v}'"))),
                    },
                    _ => return Err(CmdError::Syntax),
                }
            }
        }
        let now = runtime::now_ms();
        let me = self.id;
        let link_killed = if f.master && f.id.is_none() && f.addr.is_none() && f.laddr.is_none() {
            self.local
                .call(0, crate::shard::mesh::Kind::Normal, |sh| {
                    match sh.link.as_mut() {
                        Some(l) if l.progress.is_some() => {
                            if let Some(p) = &l.progress {
                                p.kill();
                            }
                            1
                        }
                        _ => 0,
                    }
                })
                .await
        } else {
            0
        };
        let killed: usize = link_killed
            + self
                .local
                .broadcast(move |sh| sh.kill_clients(|c| f.matches(c, now)))
                .await
                .into_iter()
                .sum::<usize>();
        if self.info.borrow().killed && me == self.id {
            self.closing = true;
        }
        if old_form {
            if killed == 0 {
                return Err(CmdError::other("ERR No such client"));
            }
            r.ok();
        } else {
            r.int(killed as i64);
        }
        Ok(())
    }
}
