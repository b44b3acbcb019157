//! Typed command statuses, turned into RESP error text in exactly one place (`CmdError::message`).

use std::borrow::Cow;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CmdError {
    UnknownCommand {
        name: String,
        args: String,
    },
    UnknownSubcommand {
        sub: String,
        cmd: String,
    },
    WrongArity(String),
    WrongType,
    NotInteger,
    NotFloat,
    Overflow,
    IncrNanOrInf,
    Syntax,
    NoSuchKey,
    NoAuth,
    WrongPass,
    Oom,
    MaxClients,
    InvalidExpire(&'static str),
    DbIndexOutOfRange,
    SameObject,
    StringTooLong,
    OffsetOutOfRange,
    DebugDisabled(String),
    /// Any other error, with its prefix (`ERR ...`, `NOPROTO ...`).
    Other(Cow<'static, str>),
}

impl CmdError {
    pub fn other(s: impl Into<Cow<'static, str>>) -> Self {
        CmdError::Other(s.into())
    }

    pub fn message(&self) -> Cow<'static, str> {
        use CmdError::*;
        match self {
            UnknownCommand { name, args } => {
                format!("ERR unknown command '{name}', with args beginning with: {args}").into()
            }
            UnknownSubcommand { sub, cmd } => {
                format!("ERR unknown subcommand '{sub}'. Try {cmd} HELP.").into()
            }
            WrongArity(name) => format!("ERR wrong number of arguments for '{name}' command").into(),
            WrongType => "WRONGTYPE Operation against a key holding the wrong kind of value".into(),
            NotInteger => "ERR value is not an integer or out of range".into(),
            NotFloat => "ERR value is not a valid float".into(),
            Overflow => "ERR increment or decrement would overflow".into(),
            IncrNanOrInf => "ERR increment would produce NaN or Infinity".into(),
            Syntax => "ERR syntax error".into(),
            NoSuchKey => "ERR no such key".into(),
            NoAuth => "NOAUTH Authentication required.".into(),
            WrongPass => "WRONGPASS invalid username-password pair or user is disabled.".into(),
            Oom => "OOM command not allowed when used memory > 'maxmemory'.".into(),
            MaxClients => "ERR max number of clients reached".into(),
            InvalidExpire(cmd) => format!("ERR invalid expire time in '{cmd}' command").into(),
            DbIndexOutOfRange => "ERR DB index is out of range".into(),
            SameObject => "ERR source and destination objects are the same".into(),
            StringTooLong => "ERR string exceeds maximum allowed size (proto-max-bulk-len)".into(),
            OffsetOutOfRange => "ERR offset is out of range".into(),
            DebugDisabled(cmd) => format!(
                "ERR {cmd} command not allowed. If the enable-debug-command option is set to \"local\", \
                 you can run it from a local connection, otherwise you need to set this option in the \
                 configuration file, and then restart the server."
            )
            .into(),
            Other(s) => s.clone(),
        }
    }
}

pub type CmdResult = Result<(), CmdError>;

/// How Valkey quotes the arguments in the unknown-command message: `'a' 'b' `, at most 128 chars each.
pub fn quote_args(args: &[bytes::Bytes]) -> String {
    let mut s = String::new();
    for a in args.iter().take(32) {
        let text = String::from_utf8_lossy(&a[..a.len().min(128)]);
        s.push('\'');
        s.push_str(&text);
        s.push_str("' ");
    }
    s
}

impl From<crate::store::keyspace::WrongType> for CmdError {
    fn from(_: crate::store::keyspace::WrongType) -> Self {
        CmdError::WrongType
    }
}
