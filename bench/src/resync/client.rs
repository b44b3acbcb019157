//! A small blocking RESP client for the scenario runner's control traffic (INFO, REPLICAOF, DEBUG, ...);
//! the load itself goes through `load`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Vec<Value>),
}

impl Value {
    pub fn text(&self) -> String {
        match self {
            Value::Simple(s) | Value::Error(s) => s.clone(),
            Value::Int(n) => n.to_string(),
            Value::Bulk(Some(b)) => String::from_utf8_lossy(b).into_owned(),
            Value::Bulk(None) => String::new(),
            Value::Array(v) => v.iter().map(Value::text).collect::<Vec<_>>().join(" "),
        }
    }
}

pub struct Client {
    r: BufReader<TcpStream>,
    w: TcpStream,
}

/// A command as a RESP array of bulk strings (the server's own encoder for its replication links).
pub fn encode(args: &[&[u8]]) -> Vec<u8> {
    tandem_server::repl::net::command(args)
}

impl Client {
    pub fn connect(port: u16) -> std::io::Result<Client> {
        let s = TcpStream::connect(("127.0.0.1", port))?;
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(Duration::from_secs(600)))?;
        Ok(Client {
            r: BufReader::with_capacity(1 << 16, s.try_clone()?),
            w: s,
        })
    }

    /// Replies slower than `d` fail the call (a stopped server must not hang its clients).
    pub fn set_timeout(&mut self, d: Duration) {
        let _ = self.w.set_read_timeout(Some(d));
    }

    pub fn cmd(&mut self, args: &[&str]) -> std::io::Result<Value> {
        let a: Vec<&[u8]> = args.iter().map(|s| s.as_bytes()).collect();
        self.w.write_all(&encode(&a))?;
        self.read()
    }

    /// Sends many commands at once without reading their replies (`read` them in order).
    pub fn send(&mut self, cmds: &[Vec<Vec<u8>>]) -> std::io::Result<()> {
        let mut out = Vec::new();
        for c in cmds {
            let a: Vec<&[u8]> = c.iter().map(|x| &x[..]).collect();
            out.extend_from_slice(&encode(&a));
        }
        self.w.write_all(&out)
    }

    /// Sends many commands at once, then reads their replies; returns the error replies.
    pub fn pipeline(&mut self, cmds: &[Vec<Vec<u8>>]) -> std::io::Result<Vec<String>> {
        let mut out = Vec::new();
        for c in cmds {
            let a: Vec<&[u8]> = c.iter().map(|x| &x[..]).collect();
            out.extend_from_slice(&encode(&a));
        }
        self.w.write_all(&out)?;
        let mut errs = Vec::new();
        for _ in cmds {
            if let Value::Error(e) = self.read()? {
                errs.push(e);
            }
        }
        Ok(errs)
    }

    pub fn read(&mut self) -> std::io::Result<Value> {
        let mut line = String::new();
        if self.r.read_line(&mut line)? == 0 {
            return Err(std::io::Error::other("connection closed"));
        }
        let line = line.trim_end_matches(['\r', '\n']);
        let (t, rest) = line.split_at(1.min(line.len()));
        let n = || {
            rest.parse::<i64>()
                .map_err(|_| std::io::Error::other(format!("bad reply line {line:?}")))
        };
        Ok(match t {
            "+" => Value::Simple(rest.into()),
            "-" => Value::Error(rest.into()),
            ":" => Value::Int(n()?),
            "$" | "=" => {
                let len = n()?;
                if len < 0 {
                    Value::Bulk(None)
                } else {
                    let mut b = vec![0u8; len as usize + 2];
                    self.r.read_exact(&mut b)?;
                    b.truncate(len as usize);
                    Value::Bulk(Some(b))
                }
            }
            "*" => {
                let len = n()?;
                let mut v = Vec::new();
                for _ in 0..len.max(0) {
                    v.push(self.read()?);
                }
                Value::Array(v)
            }
            _ => return Err(std::io::Error::other(format!("bad reply line {line:?}"))),
        })
    }

    /// `INFO section` as (field, value) pairs.
    pub fn info(&mut self, section: &str) -> std::io::Result<Vec<(String, String)>> {
        let text = self.cmd(&["INFO", section])?.text();
        Ok(text
            .lines()
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.to_string(), v.trim().to_string()))
            .collect())
    }

    pub fn info_field(&mut self, section: &str, name: &str) -> std::io::Result<String> {
        Ok(self
            .info(section)?
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
            .unwrap_or_default())
    }
}
