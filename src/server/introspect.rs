//! COMMAND: COUNT, INFO, DOCS, LIST, GETKEYS, all read from the command table.

use super::conn::Conn;
use crate::cmd::args::lower;
use crate::cmd::{lookup, CmdError, CmdResult, Spec, TABLE};
use crate::resp::Reply;
use crate::store::glob::glob_match;
use bytes::Bytes;

fn write_info(r: &mut Reply, s: &Spec) {
    r.array(10);
    r.bulk(s.name.as_bytes());
    r.int(s.arity as i64);
    let flags = s.flags.names();
    r.set(flags.len());
    flags.iter().for_each(|f| r.simple(f));
    r.int(s.first_key as i64);
    r.int(s.last_key as i64);
    r.int(s.step as i64);
    let cat = format!(
        "@{}",
        if s.group == "generic" {
            "keyspace"
        } else {
            s.group
        }
    );
    r.set(1);
    r.simple(&cat);
    r.set(0);
    r.set(0);
    r.array(0);
}

impl Conn {
    pub fn command(&mut self, a: &[Bytes], r: &mut Reply) -> CmdResult {
        if a.len() == 1 {
            r.array(TABLE.len());
            TABLE.iter().for_each(|s| write_info(r, s));
            return Ok(());
        }
        let sub = lower(&a[1]);
        match sub.as_str() {
            "count" if a.len() == 2 => r.int(TABLE.len() as i64),
            "info" => {
                if a.len() == 2 {
                    r.array(TABLE.len());
                    TABLE.iter().for_each(|s| write_info(r, s));
                } else {
                    r.array(a.len() - 2);
                    for name in &a[2..] {
                        match lookup(name) {
                            Some(s) => write_info(r, s),
                            None => r.null_array(),
                        }
                    }
                }
            }
            "docs" => {
                let specs: Vec<&Spec> = if a.len() == 2 {
                    TABLE.iter().collect()
                } else {
                    a[2..].iter().filter_map(|n| lookup(n)).collect()
                };
                r.map(specs.len());
                for s in specs {
                    r.bulk(s.name.as_bytes());
                    r.map(3);
                    r.bulk(b"summary");
                    r.bulk(s.summary.as_bytes());
                    r.bulk(b"since");
                    r.bulk(b"1.0.0");
                    r.bulk(b"group");
                    r.bulk(s.group.as_bytes());
                }
            }
            "list" => {
                let pattern = match a.len() {
                    2 => None,
                    5 if lower(&a[2]) == "filterby" && lower(&a[3]) == "pattern" => {
                        Some(a[4].clone())
                    }
                    5 if lower(&a[2]) == "filterby" && lower(&a[3]) == "module" => {
                        r.array(0);
                        return Ok(());
                    }
                    _ => return Err(CmdError::Syntax),
                };
                let names: Vec<&str> = TABLE
                    .iter()
                    .map(|s| s.name)
                    .filter(|n| {
                        pattern
                            .as_ref()
                            .is_none_or(|p| glob_match(p, n.as_bytes(), true))
                    })
                    .collect();
                r.array(names.len());
                names.iter().for_each(|n| r.bulk(n.as_bytes()));
            }
            "getkeys" if a.len() >= 3 => {
                let Some(s) = lookup(&a[2]) else {
                    return Err(CmdError::other("ERR Invalid command specified"));
                };
                let args = &a[2..];
                if !s.arity_ok(args.len()) {
                    return Err(CmdError::other(
                        "ERR Invalid number of arguments specified for command",
                    ));
                }
                let keys: Vec<usize> = s.keys_of(args);
                if keys.is_empty() {
                    return Err(CmdError::other("ERR The command has no key arguments"));
                }
                r.array(keys.len());
                keys.iter().for_each(|&p| r.bulk(&args[p]));
            }
            "help" if a.len() == 2 => crate::cmd::args::help(
                r,
                &[
                    "COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                    "(no subcommand)",
                    "    Return details about all commands.",
                    "COUNT",
                    "    Return the total number of commands in this server.",
                    "LIST",
                    "    Return a list of all commands in this server.",
                    "INFO [<command-name> ...]",
                    "    Return details about multiple commands.",
                    "DOCS [<command-name> ...]",
                    "    Return documentation details about multiple commands.",
                    "GETKEYS <full-command>",
                    "    Return the keys from a full command.",
                    "HELP",
                    "    Print this help.",
                ],
            ),
            _ => {
                return Err(CmdError::UnknownSubcommand {
                    sub: String::from_utf8_lossy(&a[1]).into(),
                    cmd: "COMMAND".into(),
                })
            }
        }
        Ok(())
    }
}
