//! `load` arguments, named and defaulted like memtier_benchmark's, and their validation into a `Plan`.

use super::keys::KeyPattern;
use serde::Serialize;
use std::path::PathBuf;

#[derive(clap::Args, Debug, Clone, Serialize)]
pub struct LoadArgs {
    /// Server address.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    #[arg(long, short = 'p', default_value_t = 6379)]
    pub port: u16,
    /// Worker threads, each running its own io_uring runtime.
    #[arg(long, short = 't', default_value_t = 4)]
    pub threads: usize,
    /// Connections per thread.
    #[arg(long, short = 'c', default_value_t = 50)]
    pub clients: usize,
    /// Requests sent together per connection before reading their replies.
    #[arg(long, default_value_t = 1)]
    pub pipeline: usize,
    /// SET:GET ratio, e.g. 1:10.
    #[arg(long, default_value = "1:10")]
    pub ratio: String,
    /// Value size in bytes for SET (and __data__).
    #[arg(long, short = 'd', default_value_t = 32)]
    pub data_size: usize,
    #[arg(long, default_value = "memtier-")]
    pub key_prefix: String,
    #[arg(long, default_value_t = 0)]
    pub key_minimum: u64,
    #[arg(long, default_value_t = 10_000_000)]
    pub key_maximum: u64,
    /// R (uniform random), S (sequential), G (gaussian); "SET:GET" form (e.g. S:R) accepted.
    #[arg(long, default_value = "R")]
    pub key_pattern: String,
    /// Run for this many seconds (instead of --requests).
    #[arg(long)]
    pub test_time: Option<u64>,
    /// Requests per connection (memtier's meaning); default 10000 unless --test-time.
    #[arg(long, short = 'n')]
    pub requests: Option<u64>,
    /// Total request rate limit (ops/s over all connections).
    #[arg(long)]
    pub rate: Option<u64>,
    /// A command template instead of SET/GET, e.g. "SET __key__ __data__"; repeat for several.
    #[arg(long = "command")]
    pub commands: Vec<String>,
    /// Speak RESP3 (HELLO 3 on connect).
    #[arg(long)]
    pub resp3: bool,
    /// Password (AUTH on connect).
    #[arg(long, short = 'a')]
    pub auth: Option<String>,
    /// Write the full report as JSON here.
    #[arg(long)]
    pub json_out: Option<PathBuf>,
    /// No live line every second.
    #[arg(long)]
    pub quiet: bool,
}

/// One kind of request: its name in reports and its argument template.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CommandKind {
    pub name: String,
    pub template: Vec<String>,
    /// Relative weight in the mix.
    pub weight: u32,
    pub pattern: KeyPattern,
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub args: LoadArgs,
    pub kinds: Vec<CommandKind>,
    pub connections: usize,
    /// Requests per connection, when not time-bound.
    pub requests: Option<u64>,
    pub test_time: Option<u64>,
    /// Seconds between two requests of one connection, when rate-limited.
    pub interval_per_conn: Option<f64>,
    /// Set to end the run early (the resync scenarios run load until their measurement is done).
    pub stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// No end-of-run table (the scenarios print their own).
    pub silent: bool,
}

fn parse_ratio(s: &str) -> Result<(u32, u32), String> {
    let (a, b) = s
        .split_once(':')
        .ok_or_else(|| format!("--ratio '{s}': expected SET:GET, e.g. 1:10"))?;
    let p = |x: &str| {
        x.trim()
            .parse::<u32>()
            .map_err(|_| format!("--ratio '{s}': '{x}' is not a whole number"))
    };
    let (a, b) = (p(a)?, p(b)?);
    if a == 0 && b == 0 {
        return Err(format!("--ratio '{s}': both sides are 0"));
    }
    Ok((a, b))
}

impl LoadArgs {
    pub fn plan(self) -> Result<Plan, String> {
        if self.threads == 0 || self.clients == 0 || self.pipeline == 0 {
            return Err("--threads, --clients and --pipeline must be at least 1".into());
        }
        if self.key_minimum > self.key_maximum {
            return Err(format!(
                "--key-minimum {} is above --key-maximum {}",
                self.key_minimum, self.key_maximum
            ));
        }
        if self.test_time.is_some() && self.requests.is_some() {
            return Err("give --test-time or --requests, not both".into());
        }
        if self.test_time == Some(0) || self.requests == Some(0) || self.rate == Some(0) {
            return Err("--test-time, --requests and --rate must be positive".into());
        }
        let (set_pat, get_pat) = match self.key_pattern.split_once(':') {
            Some((a, b)) => (KeyPattern::parse(a)?, KeyPattern::parse(b)?),
            None => {
                let p = KeyPattern::parse(&self.key_pattern)?;
                (p, p)
            }
        };
        let kinds = if self.commands.is_empty() {
            let (set_w, get_w) = parse_ratio(&self.ratio)?;
            let mut v = Vec::new();
            if set_w > 0 {
                v.push(CommandKind {
                    name: "SET".into(),
                    template: vec!["SET".into(), "__key__".into(), "__data__".into()],
                    weight: set_w,
                    pattern: set_pat,
                });
            }
            if get_w > 0 {
                v.push(CommandKind {
                    name: "GET".into(),
                    template: vec!["GET".into(), "__key__".into()],
                    weight: get_w,
                    pattern: get_pat,
                });
            }
            v
        } else {
            let mut v = Vec::new();
            for c in &self.commands {
                let words: Vec<String> = c.split_whitespace().map(String::from).collect();
                if words.is_empty() {
                    return Err("--command: empty template".into());
                }
                v.push(CommandKind {
                    name: words[0].to_ascii_uppercase(),
                    template: words,
                    weight: 1,
                    pattern: set_pat,
                });
            }
            v
        };
        let connections = self.threads * self.clients;
        let requests = if self.test_time.is_some() {
            None
        } else {
            Some(self.requests.unwrap_or(10_000))
        };
        let interval_per_conn = self.rate.map(|r| connections as f64 / r as f64);
        Ok(Plan {
            test_time: self.test_time,
            args: self,
            kinds,
            connections,
            requests,
            interval_per_conn,
            stop: Default::default(),
            silent: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        a: LoadArgs,
    }

    fn plan(args: &[&str]) -> Result<Plan, String> {
        let mut v = vec!["t"];
        v.extend_from_slice(args);
        T::try_parse_from(v).map_err(|e| e.to_string())?.a.plan()
    }

    #[test]
    fn defaults_follow_memtier() {
        let p = plan(&[]).unwrap();
        assert_eq!(
            (p.args.threads, p.args.clients, p.args.data_size),
            (4, 50, 32)
        );
        assert_eq!(p.connections, 200);
        assert_eq!(p.requests, Some(10_000));
        assert_eq!(
            p.kinds
                .iter()
                .map(|k| (k.name.as_str(), k.weight))
                .collect::<Vec<_>>(),
            vec![("SET", 1), ("GET", 10)]
        );
    }

    #[test]
    fn options_are_validated() {
        assert!(plan(&["--ratio", "x"]).unwrap_err().contains("--ratio"));
        assert!(plan(&["--ratio", "0:0"]).is_err());
        assert!(plan(&["--key-minimum", "5", "--key-maximum", "1"]).is_err());
        assert!(plan(&["--test-time", "1", "--requests", "5"]).is_err());
        assert!(plan(&["--key-pattern", "Q"])
            .unwrap_err()
            .contains("key pattern"));
        assert!(plan(&["--threads", "0"]).is_err());
        let p = plan(&[
            "--ratio",
            "1:0",
            "--key-pattern",
            "S:R",
            "--rate",
            "1000",
            "--threads",
            "2",
            "--clients",
            "5",
        ])
        .unwrap();
        assert_eq!(p.kinds.len(), 1);
        assert_eq!(p.kinds[0].pattern, KeyPattern::Sequential);
        assert!(
            (p.interval_per_conn.unwrap() - 0.01).abs() < 1e-12,
            "10 connections share 1000/s: 10 ms each"
        );
        let p = plan(&[
            "--command",
            "INCR __key__",
            "--command",
            "set __key__ __data__",
            "--test-time",
            "3",
        ])
        .unwrap();
        assert_eq!(
            p.kinds.iter().map(|k| k.name.clone()).collect::<Vec<_>>(),
            vec!["INCR", "SET"]
        );
        assert_eq!(p.requests, None);
    }
}
