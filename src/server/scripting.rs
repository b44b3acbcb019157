//! FUNCTION and SCRIPT introspection, truthful for a server that holds no scripts (tools call them on
//! connect), and a clear error for loading or running one: Tandem does not run scripts yet.

use super::conn::Conn;
use crate::cmd::args::{eq, lower};
use crate::cmd::{CmdError, CmdResult};
use crate::resp::Reply;
use bytes::Bytes;

fn not_yet(what: &str) -> CmdError {
    CmdError::other(format!(
        "ERR Tandem does not run scripts yet ({what}); see docs/commands.md"
    ))
}

impl Conn {
    pub fn function_cmd(&mut self, a: &[Bytes], r: &mut Reply) -> CmdResult {
        match lower(&a[1]).as_str() {
            "list" => {
                // Options are checked as Valkey does; there is nothing to list.
                let mut i = 2;
                while i < a.len() {
                    if eq(&a[i], "withcode") {
                        i += 1;
                    } else if eq(&a[i], "libraryname") && i + 1 < a.len() {
                        i += 2;
                    } else {
                        return Err(CmdError::other(format!(
                            "ERR Unknown argument {}",
                            String::from_utf8_lossy(&a[i])
                        )));
                    }
                }
                r.array(0);
            }
            "flush" if a.len() <= 3 => {
                if a.len() == 3 && !eq(&a[2], "async") && !eq(&a[2], "sync") {
                    return Err(CmdError::other(
                        "ERR FUNCTION FLUSH only supports SYNC|ASYNC option",
                    ));
                }
                r.ok();
            }
            "stats" if a.len() == 2 => {
                r.map(2);
                r.bulk(b"running_script");
                r.null();
                r.bulk(b"engines");
                r.map(0);
            }
            "dump" if a.len() == 2 => r.null(),
            "kill" if a.len() == 2 => {
                return Err(CmdError::other(
                    "NOTBUSY No scripts in execution right now.",
                ))
            }
            "load" | "restore" | "delete" => return Err(not_yet("FUNCTION")),
            _ => {
                return Err(CmdError::UnknownSubcommand {
                    sub: String::from_utf8_lossy(&a[1]).into(),
                    cmd: "FUNCTION".into(),
                })
            }
        }
        Ok(())
    }

    pub fn script_cmd(&mut self, a: &[Bytes], r: &mut Reply) -> CmdResult {
        match lower(&a[1]).as_str() {
            "exists" if a.len() >= 3 => {
                r.array(a.len() - 2);
                for _ in &a[2..] {
                    r.int(0);
                }
            }
            "flush" if a.len() <= 3 => {
                if a.len() == 3 && !eq(&a[2], "async") && !eq(&a[2], "sync") {
                    return Err(CmdError::other(
                        "ERR SCRIPT FLUSH only support SYNC|ASYNC option",
                    ));
                }
                r.ok();
            }
            "kill" if a.len() == 2 => {
                return Err(CmdError::other(
                    "NOTBUSY No scripts in execution right now.",
                ))
            }
            "load" if a.len() == 3 => return Err(not_yet("SCRIPT LOAD")),
            _ => {
                return Err(CmdError::UnknownSubcommand {
                    sub: String::from_utf8_lossy(&a[1]).into(),
                    cmd: "SCRIPT".into(),
                })
            }
        }
        Ok(())
    }

    /// EVAL, EVALSHA, FCALL and their _RO forms.
    pub fn run_script(&mut self, a: &[Bytes]) -> CmdResult {
        let name = lower(&a[0]);
        if name.starts_with("evalsha") {
            // Truthful: no script is loaded, so no SHA matches.
            return Err(CmdError::other(
                "NOSCRIPT No matching script. Please use EVAL.",
            ));
        }
        if name.starts_with("fcall") {
            return Err(CmdError::other("ERR Function not found"));
        }
        Err(not_yet("EVAL"))
    }
}
