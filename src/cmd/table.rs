//! The command table. Arity follows Valkey: positive = exact argument count (name included), negative = at
//! least that many. Keys are at `first_key..=last_key` by `step` (last_key -1 = the last argument).

use super::exec::Exec;
use super::{
    bits, block, dump, hash, hll, keys, list, set, setops as so, sort, strings, zset, CmdResult,
};
use crate::resp::Reply;
use crate::shard::Shard;
use bytes::Bytes;
use hashbrown::HashMap;
use std::sync::LazyLock;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flags(pub u32);

impl Flags {
    pub const WRITE: u32 = 1;
    pub const READONLY: u32 = 1 << 1;
    pub const DENYOOM: u32 = 1 << 2;
    pub const ADMIN: u32 = 1 << 3;
    pub const FAST: u32 = 1 << 4;
    /// Allowed before AUTH.
    pub const NO_AUTH: u32 = 1 << 5;
    pub const LOADING: u32 = 1 << 6;
    pub const STALE: u32 = 1 << 7;
    /// Never journaled or replicated even if it writes (DEBUG SLEEP, CLIENT ...).
    pub const NO_PROPAGATE: u32 = 1 << 8;
    pub const NOSCRIPT: u32 = 1 << 9;
    /// Non-deterministic: logged as the resulting state of the keys it wrote, not as itself (shard/log.rs).
    pub const LOG_STATE: u32 = 1 << 10;
    /// Logged as state when its options carry a relative expiry (EX, PX), as itself otherwise.
    pub const LOG_STATE_IF_RELATIVE: u32 = 1 << 11;
    /// Non-deterministic, logged as the deterministic command its handler says it amounted to (SPOP as
    /// the SREM of the members it popped; shard/log.rs).
    pub const LOG_REWRITE: u32 = 1 << 12;
    /// May wait for other clients: a key command blocks until a key is ready (server/blocking.rs) and runs
    /// once, without blocking, inside MULTI; WAIT waits for replicas. Either starts a batch of its own on
    /// its connection, so the replies before it are written first.
    pub const BLOCKING: u32 = 1 << 13;
    /// Refused inside MULTI, dooming the transaction (SAVE, SHUTDOWN, PSYNC).
    pub const NO_MULTI: u32 = 1 << 14;

    pub fn has(self, f: u32) -> bool {
        self.0 & f != 0
    }

    /// Names as COMMAND INFO lists them.
    pub fn names(self) -> Vec<&'static str> {
        let all = [
            (Self::WRITE, "write"),
            (Self::READONLY, "readonly"),
            (Self::DENYOOM, "denyoom"),
            (Self::ADMIN, "admin"),
            (Self::NOSCRIPT, "noscript"),
            (Self::LOADING, "loading"),
            (Self::STALE, "stale"),
            (Self::FAST, "fast"),
            (Self::NO_AUTH, "no_auth"),
            (Self::BLOCKING, "blocking"),
            (Self::NO_MULTI, "no_multi"),
        ];
        all.iter()
            .filter(|(f, _)| self.has(*f))
            .map(|(_, n)| *n)
            .collect()
    }
}

/// Finds a command's key positions in its arguments.
pub type KeysFn = fn(&[Bytes]) -> Vec<usize>;

pub type KeyFn = fn(&mut Shard, &Exec, &[Bytes], &mut Reply) -> CmdResult;

/// How a key command whose keys fall on several shards is split and its replies merged. The parts run as
/// one multi-shard transaction (docs/architecture.md), so no client sees half of the command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Merge {
    /// One key per position (MGET): concatenate the parts' array elements in key order.
    Gather,
    /// Integer replies summed (DEL, EXISTS, UNLINK, TOUCH).
    Sum,
    /// Pairs of key and value (MSET): every part replies +OK.
    AllOk,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Special {
    Ping,
    Echo,
    Hello,
    Auth,
    Select,
    Quit,
    Reset,
    Client,
    Command,
    Info,
    Config,
    Dbsize,
    Flushdb,
    Flushall,
    Swapdb,
    Time,
    Shutdown,
    Debug,
    Keys,
    Scan,
    Randomkey,
    Msetnx,
    Rename,
    Renamenx,
    Copy,
    Move,
    Sort,
    SortRo,
    Lcs,
    Replicaof,
    Role,
    Wait,
    Replconf,
    Tgroup,
    Failover,
    Psync,
    Tflow,
    Durability,
    Save,
    Bgsave,
    Lastsave,
    Multi,
    Exec,
    Discard,
    Watch,
    Unwatch,
    Subscribe,
    Unsubscribe,
    Psubscribe,
    Punsubscribe,
    Ssubscribe,
    Sunsubscribe,
    Publish,
    Spublish,
    Pubsub,
    Function,
    Script,
    Eval,
}

impl Special {
    /// Key commands that a connection runs across shards itself (server/across.rs, server/sort.rs):
    /// EXEC runs them inside its transaction, over their keys' shards.
    pub fn is_key_command(self) -> bool {
        matches!(
            self,
            Special::Msetnx
                | Special::Rename
                | Special::Renamenx
                | Special::Copy
                | Special::Move
                | Special::Sort
                | Special::SortRo
        )
    }
}

#[derive(Clone, Copy)]
pub enum Handler {
    /// Runs where the keys live; `Some(merge)` if it may span shards.
    Key(KeyFn, Option<Merge>),
    Special(Special),
}

pub struct Spec {
    pub name: &'static str,
    pub arity: i32,
    pub flags: Flags,
    pub first_key: i32,
    pub last_key: i32,
    pub step: i32,
    pub handler: Handler,
    pub group: &'static str,
    pub summary: &'static str,
    /// Keys found by reading the arguments (a `numkeys` argument), instead of first/last/step.
    pub keys: Option<KeysFn>,
    /// A blocking pop's argument form (server/blocking.rs reads its timeout and the keys it waits on by it).
    pub block: Option<BlockForm>,
}

/// How a blocking pop lays out its arguments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockForm {
    /// `key [key ...] timeout`, waiting on every key; each key alone is `cmd key timeout` (BLPOP, BZPOPMIN).
    Keys,
    /// `source destination ... timeout`, waiting on the source only (BLMOVE, BRPOPLPUSH).
    Move,
    /// `timeout numkeys key [key ...] ...`, waiting on every key (BLMPOP, BZMPOP).
    NumKeys,
}

/// `numkeys` at `at`, the keys right after it (clamped to the arguments: a bad count is the handler's
/// error to report).
fn numkeys_at(args: &[Bytes], at: usize) -> Vec<usize> {
    let n = args
        .get(at)
        .and_then(|a| crate::resp::parse_i64_strict(a))
        .filter(|n| *n > 0)
        .unwrap_or(0) as usize;
    (at + 1..(at + 1).saturating_add(n).min(args.len())).collect()
}

/// SINTERCARD, ZUNION, LMPOP...: `numkeys key [key ...]` from position 1.
fn nk1(args: &[Bytes]) -> Vec<usize> {
    numkeys_at(args, 1)
}

/// BLMPOP, BZMPOP: `timeout numkeys key [key ...]`.
fn nk2(args: &[Bytes]) -> Vec<usize> {
    numkeys_at(args, 2)
}

/// ZUNIONSTORE...: `destination numkeys key [key ...]`.
fn dest_nk2(args: &[Bytes]) -> Vec<usize> {
    let mut v = vec![1];
    v.extend(numkeys_at(args, 2));
    v
}

impl Spec {
    /// The table's entry of a blocking pop.
    const fn blocks(mut self, form: BlockForm) -> Spec {
        self.block = Some(form);
        self
    }

    pub fn arity_ok(&self, argc: usize) -> bool {
        let a = self.arity;
        (a > 0 && argc == a as usize) || (a < 0 && argc >= (-a) as usize)
    }

    /// Positions of the keys in `args` (the name is position 0).
    pub fn key_positions(&self, argc: usize) -> impl Iterator<Item = usize> {
        let first = self.first_key.max(0) as usize;
        let last = if self.last_key < 0 {
            argc as i32 + self.last_key
        } else {
            self.last_key
        };
        let step = self.step.max(1) as usize;
        let end = if self.first_key <= 0 {
            0
        } else {
            (last + 1).max(0) as usize
        };
        (first..end.min(argc)).step_by(step)
    }

    /// Positions of the keys in `args`, for every command (numkeys ones included).
    pub fn keys_of(&self, args: &[Bytes]) -> Vec<usize> {
        match self.keys {
            Some(f) => f(args),
            None => self.key_positions(args.len()).collect(),
        }
    }

    /// Position in `TABLE`, for per-command arrays (statistics).
    pub fn index(&'static self) -> usize {
        (self as *const Spec as usize - TABLE.as_ptr() as usize) / std::mem::size_of::<Spec>()
    }

    pub fn is_write(&self) -> bool {
        self.flags.has(Flags::WRITE)
    }
}

const W: u32 = Flags::WRITE;
const R: u32 = Flags::READONLY;
const OOM: u32 = Flags::DENYOOM;
const F: u32 = Flags::FAST;
const A: u32 = Flags::ADMIN;
const NA: u32 = Flags::NO_AUTH;
const LS: u32 = Flags::LOADING | Flags::STALE;
const NP: u32 = Flags::NO_PROPAGATE;
const ST: u32 = Flags::LOG_STATE;
const STR: u32 = Flags::LOG_STATE_IF_RELATIVE;
const RW: u32 = Flags::LOG_REWRITE;
const BL: u32 = Flags::BLOCKING;
const NM: u32 = Flags::NO_MULTI;

macro_rules! spec {
    ($name:literal, $arity:expr, $flags:expr, $fk:expr, $lk:expr, $st:expr, $h:expr, $group:literal, $sum:literal) => {
        Spec {
            name: $name,
            arity: $arity,
            flags: Flags($flags),
            first_key: $fk,
            last_key: $lk,
            step: $st,
            handler: $h,
            group: $group,
            summary: $sum,
            keys: None,
            block: None,
        }
    };
    ($name:literal, $arity:expr, $flags:expr, keys $kf:expr, $h:expr, $group:literal, $sum:literal) => {
        Spec {
            name: $name,
            arity: $arity,
            flags: Flags($flags),
            first_key: 1,
            last_key: 1,
            step: 1,
            handler: $h,
            group: $group,
            summary: $sum,
            keys: Some($kf),
            block: None,
        }
    };
}

use Handler::{Key as K, Special as S};
use Special as X;

pub static TABLE: &[Spec] = &[
    // connection
    spec!("ping", -1, F | LS | NA, 0, 0, 0, S(X::Ping), "connection", "Returns the server's liveliness response."),
    spec!("echo", 2, F | LS, 0, 0, 0, S(X::Echo), "connection", "Returns the given string."),
    spec!("hello", -1, F | LS | NA, 0, 0, 0, S(X::Hello), "connection", "Handshakes with the server."),
    spec!("auth", -2, F | LS | NA, 0, 0, 0, S(X::Auth), "connection", "Authenticates the connection."),
    spec!("select", 2, F | LS, 0, 0, 0, S(X::Select), "connection", "Changes the selected database."),
    spec!("quit", -1, F | LS | NA, 0, 0, 0, S(X::Quit), "connection", "Closes the connection."),
    spec!("reset", 1, F | LS | NA, 0, 0, 0, S(X::Reset), "connection", "Resets the connection."),
    spec!("client", -2, LS | NP, 0, 0, 0, S(X::Client), "connection", "A container for client connection commands."),
    // server
    spec!("command", -1, LS, 0, 0, 0, S(X::Command), "server", "Returns detailed information about all commands."),
    spec!("info", -1, LS, 0, 0, 0, S(X::Info), "server", "Returns information and statistics about the server."),
    spec!("config", -2, A | LS | NP, 0, 0, 0, S(X::Config), "server", "A container for server configuration commands."),
    spec!("dbsize", 1, R | F, 0, 0, 0, S(X::Dbsize), "server", "Returns the number of keys in the database."),
    spec!("flushdb", -1, W, 0, 0, 0, S(X::Flushdb), "server", "Removes all keys from the current database."),
    spec!("flushall", -1, W, 0, 0, 0, S(X::Flushall), "server", "Removes all keys from all databases."),
    spec!("swapdb", 3, W | F, 0, 0, 0, S(X::Swapdb), "server", "Swaps two databases."),
    spec!("time", 1, F | LS, 0, 0, 0, S(X::Time), "server", "Returns the server time."),
    spec!("shutdown", -1, A | LS | NP | NA | NM, 0, 0, 0, S(X::Shutdown), "server", "Shuts down the server."),
    spec!("debug", -2, A | LS | NP, 0, 0, 0, S(X::Debug), "server", "A container for debugging commands."),
    // replication (docs/replication.md)
    spec!("replicaof", 3, A | LS | NP | Flags::NOSCRIPT, 0, 0, 0, S(X::Replicaof), "server", "Configures a server as replica of another, or promotes it to a master."),
    spec!("slaveof", 3, A | LS | NP | Flags::NOSCRIPT, 0, 0, 0, S(X::Replicaof), "server", "Sets a server as a replica of another, or promotes it to being a master."),
    spec!("role", 1, F | LS | Flags::NOSCRIPT, 0, 0, 0, S(X::Role), "server", "Returns the replication role."),
    spec!("wait", 3, BL, 0, 0, 0, S(X::Wait), "generic", "Blocks until the asynchronous replication of all preceding write commands sent by the connection is completed."),
    spec!("failover", -1, A | Flags::STALE | Flags::NOSCRIPT, 0, 0, 0, S(X::Failover), "server", "Hands the primary role to a replica (in failover mode, through the group record; TAKEOVER: the operator's resume after a full outage)."),
    spec!("tgroup", 2, A | LS | NP | Flags::NOSCRIPT, 0, 0, 0, S(X::Tgroup), "server", "Tandem, internal: a message between the members of a replication group (docs/failover.md)."),
    spec!("replconf", -1, A | LS | NP | Flags::NOSCRIPT, 0, 0, 0, S(X::Replconf), "server", "An internal command for configuring the replication stream."),
    spec!("psync", -3, A | NP | Flags::NOSCRIPT | NM, 0, 0, 0, S(X::Psync), "server", "An internal command used in replication."),
    spec!("tflow", -4, A | NP | Flags::NOSCRIPT | NM, 0, 0, 0, S(X::Tflow), "server", "Tandem-internal: opens one stream of a replica's sync (docs/replication.md)."),
    spec!("save", 1, A | Flags::NOSCRIPT | NM, 0, 0, 0, S(X::Save), "server", "Synchronously saves the database(s) to disk (every shard's point-in-time part, docs/persistence.md)."),
    spec!("bgsave", -1, A | Flags::NOSCRIPT, 0, 0, 0, S(X::Bgsave), "server", "Asynchronously saves the database(s) to disk."),
    spec!("lastsave", 1, F | LS, 0, 0, 0, S(X::Lastsave), "server", "Returns the Unix timestamp of the last successful save to disk."),
    spec!("durability", -2, A | LS | Flags::STALE | Flags::NOSCRIPT, 0, 0, 0, S(X::Durability), "server", "Tandem: durability mode's status, and FORGET to take a replica out of the write quorum (docs/durability.md)."),
    // transactions (server/multi.rs)
    spec!("multi", 1, F | LS | Flags::NOSCRIPT, 0, 0, 0, S(X::Multi), "transactions", "Starts a transaction."),
    spec!("exec", 1, LS | Flags::NOSCRIPT, 0, 0, 0, S(X::Exec), "transactions", "Executes all commands in a transaction."),
    spec!("discard", 1, F | LS | Flags::NOSCRIPT, 0, 0, 0, S(X::Discard), "transactions", "Discards a transaction."),
    spec!("watch", -2, F | LS | Flags::NOSCRIPT, 1, -1, 1, S(X::Watch), "transactions", "Monitors changes to keys to determine the execution of a transaction."),
    spec!("unwatch", 1, F | LS | Flags::NOSCRIPT, 0, 0, 0, S(X::Unwatch), "transactions", "Forgets about watched keys of a transaction."),
    // pub/sub (server/pubsub.rs)
    spec!("subscribe", -2, LS | Flags::NOSCRIPT, 0, 0, 0, S(X::Subscribe), "pubsub", "Listens for messages published to channels."),
    spec!("unsubscribe", -1, LS | Flags::NOSCRIPT, 0, 0, 0, S(X::Unsubscribe), "pubsub", "Stops listening to messages posted to channels."),
    spec!("psubscribe", -2, LS | Flags::NOSCRIPT, 0, 0, 0, S(X::Psubscribe), "pubsub", "Listens for messages published to channels that match one or more patterns."),
    spec!("punsubscribe", -1, LS | Flags::NOSCRIPT, 0, 0, 0, S(X::Punsubscribe), "pubsub", "Stops listening to messages published to channels that match one or more patterns."),
    spec!("ssubscribe", -2, LS | Flags::NOSCRIPT, 0, 0, 0, S(X::Ssubscribe), "pubsub", "Listens for messages published to shard channels."),
    spec!("sunsubscribe", -1, LS | Flags::NOSCRIPT, 0, 0, 0, S(X::Sunsubscribe), "pubsub", "Stops listening to messages posted to shard channels."),
    spec!("publish", 3, F | LS, 0, 0, 0, S(X::Publish), "pubsub", "Posts a message to a channel."),
    spec!("spublish", 3, F | LS, 0, 0, 0, S(X::Spublish), "pubsub", "Post a message to a shard channel"),
    spec!("pubsub", -2, LS, 0, 0, 0, S(X::Pubsub), "pubsub", "A container for Pub/Sub commands."),
    // scripting: introspection only (server/scripting.rs)
    spec!("function", -2, LS | Flags::NOSCRIPT, 0, 0, 0, S(X::Function), "scripting", "A container for function commands."),
    spec!("script", -2, LS | Flags::NOSCRIPT, 0, 0, 0, S(X::Script), "scripting", "A container for Lua scripts management commands."),
    spec!("eval", -3, Flags::NOSCRIPT, 0, 0, 0, S(X::Eval), "scripting", "Executes a server-side Lua script (not yet in Tandem)."),
    spec!("evalsha", -3, Flags::NOSCRIPT, 0, 0, 0, S(X::Eval), "scripting", "Executes a server-side Lua script by SHA1 digest."),
    spec!("eval_ro", -3, Flags::NOSCRIPT, 0, 0, 0, S(X::Eval), "scripting", "Executes a read-only server-side Lua script."),
    spec!("evalsha_ro", -3, Flags::NOSCRIPT, 0, 0, 0, S(X::Eval), "scripting", "Executes a read-only server-side Lua script by SHA1 digest."),
    spec!("fcall", -3, Flags::NOSCRIPT, 0, 0, 0, S(X::Eval), "scripting", "Invokes a function."),
    spec!("fcall_ro", -3, Flags::NOSCRIPT, 0, 0, 0, S(X::Eval), "scripting", "Invokes a read-only function."),
    // strings
    spec!("get", 2, R | F, 1, 1, 1, K(strings::get, None), "string", "Returns the string value of a key."),
    spec!("set", -3, W | OOM | STR, 1, 1, 1, K(strings::set, None), "string", "Sets the string value of a key."),
    spec!("setnx", 3, W | OOM | F, 1, 1, 1, K(strings::setnx, None), "string", "Set the value of a key only when the key doesn't exist."),
    spec!("setex", 4, W | OOM | ST, 1, 1, 1, K(strings::setex, None), "string", "Sets the value and expiration time of a key."),
    spec!("psetex", 4, W | OOM | ST, 1, 1, 1, K(strings::psetex, None), "string", "Sets the value and expiration time in milliseconds of a key."),
    spec!("getset", 3, W | OOM | F, 1, 1, 1, K(strings::getset, None), "string", "Returns the previous value of a key after setting it to a new value."),
    spec!("getdel", 2, W | F, 1, 1, 1, K(strings::getdel, None), "string", "Returns the value of a key after deleting it."),
    spec!("getex", -2, W | F | STR, 1, 1, 1, K(strings::getex, None), "string", "Returns the value of a key after setting its expiration time."),
    spec!("mget", -2, R | F, 1, -1, 1, K(strings::mget, Some(Merge::Gather)), "string", "Atomically returns the values of one or more keys."),
    spec!("mset", -3, W | OOM, 1, -1, 2, K(strings::mset, Some(Merge::AllOk)), "string", "Atomically sets one or more keys to values."),
    spec!("msetnx", -3, W | OOM, 1, -1, 2, S(X::Msetnx), "string", "Atomically sets one or more keys only when none of them exist."),
    spec!("append", 3, W | OOM | F, 1, 1, 1, K(strings::append, None), "string", "Appends a string to the value of a key."),
    spec!("strlen", 2, R | F, 1, 1, 1, K(strings::strlen, None), "string", "Returns the length of a string value."),
    spec!("incr", 2, W | OOM | F, 1, 1, 1, K(strings::incr, None), "string", "Increments the integer value of a key by one."),
    spec!("decr", 2, W | OOM | F, 1, 1, 1, K(strings::decr, None), "string", "Decrements the integer value of a key by one."),
    spec!("incrby", 3, W | OOM | F, 1, 1, 1, K(strings::incrby, None), "string", "Increments the integer value of a key by a number."),
    spec!("decrby", 3, W | OOM | F, 1, 1, 1, K(strings::decrby, None), "string", "Decrements a number from the integer value of a key."),
    spec!("incrbyfloat", 3, W | OOM | F | ST, 1, 1, 1, K(strings::incrbyfloat, None), "string", "Increment the floating point value of a key by a number."),
    spec!("getrange", 4, R, 1, 1, 1, K(strings::getrange, None), "string", "Returns a substring of the string stored at a key."),
    spec!("substr", 4, R, 1, 1, 1, K(strings::getrange, None), "string", "Returns a substring from a string value."),
    spec!("setrange", 4, W | OOM, 1, 1, 1, K(strings::setrange, None), "string", "Overwrites a part of a string value with another by an offset."),
    spec!("lcs", -3, R, 1, 2, 1, S(X::Lcs), "string", "Finds the longest common substring."),
    // keys
    spec!("del", -2, W, 1, -1, 1, K(keys::del, Some(Merge::Sum)), "generic", "Deletes one or more keys."),
    spec!("unlink", -2, W | F, 1, -1, 1, K(keys::del, Some(Merge::Sum)), "generic", "Asynchronously deletes one or more keys."),
    spec!("exists", -2, R | F, 1, -1, 1, K(keys::exists, Some(Merge::Sum)), "generic", "Determines whether one or more keys exist."),
    spec!("touch", -2, R | F, 1, -1, 1, K(keys::exists, Some(Merge::Sum)), "generic", "Returns the number of existing keys out of those specified after updating the time they were last accessed."),
    spec!("type", 2, R | F, 1, 1, 1, K(keys::type_, None), "generic", "Determines the type of value stored at a key."),
    spec!("rename", 3, W, 1, 2, 1, S(X::Rename), "generic", "Renames a key and overwrites the destination."),
    spec!("renamenx", 3, W | F, 1, 2, 1, S(X::Renamenx), "generic", "Renames a key only when the target key name doesn't exist."),
    spec!("copy", -3, W | OOM, 1, 2, 1, S(X::Copy), "generic", "Copies the value of a key to a new key."),
    spec!("move", 3, W | F, 1, 1, 1, S(X::Move), "generic", "Moves a key to another database."),
    spec!("sort", -2, W | OOM, keys sort::keys, S(X::Sort), "generic", "Sorts the elements in a list, a set, or a sorted set, optionally storing the result."),
    spec!("sort_ro", -2, R, 1, 1, 1, S(X::SortRo), "generic", "Returns the sorted elements of a list, a set, or a sorted set."),
    spec!("keys", 2, R, 0, 0, 0, S(X::Keys), "generic", "Returns all key names that match a pattern."),
    spec!("scan", -2, R, 0, 0, 0, S(X::Scan), "generic", "Iterates over the key names in the database."),
    spec!("randomkey", 1, R, 0, 0, 0, S(X::Randomkey), "generic", "Returns a random key name from the database."),
    spec!("expire", -3, W | F | RW, 1, 1, 1, K(keys::expire, None), "generic", "Sets the expiration time of a key in seconds."),
    spec!("pexpire", -3, W | F | RW, 1, 1, 1, K(keys::pexpire, None), "generic", "Sets the expiration time of a key in milliseconds."),
    spec!("expireat", -3, W | F, 1, 1, 1, K(keys::expireat, None), "generic", "Sets the expiration time of a key to a Unix timestamp."),
    spec!("pexpireat", -3, W | F, 1, 1, 1, K(keys::pexpireat, None), "generic", "Sets the expiration time of a key to a Unix milliseconds timestamp."),
    spec!("ttl", 2, R | F, 1, 1, 1, K(keys::ttl, None), "generic", "Returns the expiration time in seconds of a key."),
    spec!("pttl", 2, R | F, 1, 1, 1, K(keys::pttl, None), "generic", "Returns the expiration time in milliseconds of a key."),
    spec!("expiretime", 2, R | F, 1, 1, 1, K(keys::expiretime, None), "generic", "Returns the expiration time of a key as a Unix timestamp."),
    spec!("pexpiretime", 2, R | F, 1, 1, 1, K(keys::pexpiretime, None), "generic", "Returns the expiration time of a key as a Unix milliseconds timestamp."),
    spec!("persist", 2, W | F, 1, 1, 1, K(keys::persist, None), "generic", "Removes the expiration time of a key."),
    spec!("object", -2, R, 2, 2, 1, K(keys::object, None), "generic", "A container for object introspection commands."),
    spec!("memory", -2, R, 2, 2, 1, K(keys::memory, None), "server", "A container for memory diagnostics commands."),
    spec!("dump", 2, R, 1, 1, 1, K(dump::dump, None), "generic", "Returns a serialized representation of the value stored at a key."),
    spec!("restore", -4, W | OOM | ST, 1, 1, 1, K(dump::restore, None), "generic", "Creates a key from the serialized representation of a value."),
    // hashes
    spec!("hset", -4, W | OOM | F, 1, 1, 1, K(hash::hset, None), "hash", "Creates or modifies the value of a field in a hash."),
    spec!("hmset", -4, W | OOM | F, 1, 1, 1, K(hash::hset, None), "hash", "Sets the values of multiple fields."),
    spec!("hsetnx", 4, W | OOM | F, 1, 1, 1, K(hash::hsetnx, None), "hash", "Sets the value of a field in a hash only when the field doesn't exist."),
    spec!("hget", 3, R | F, 1, 1, 1, K(hash::hget, None), "hash", "Returns the value of a field in a hash."),
    spec!("hmget", -3, R | F, 1, 1, 1, K(hash::hmget, None), "hash", "Returns the values of all fields in a hash."),
    spec!("hdel", -3, W | F, 1, 1, 1, K(hash::hdel, None), "hash", "Deletes one or more fields and their values from a hash."),
    spec!("hlen", 2, R | F, 1, 1, 1, K(hash::hlen, None), "hash", "Returns the number of fields in a hash."),
    spec!("hexists", 3, R | F, 1, 1, 1, K(hash::hexists, None), "hash", "Determines whether a field exists in a hash."),
    spec!("hstrlen", 3, R | F, 1, 1, 1, K(hash::hstrlen, None), "hash", "Returns the length of the value of a field."),
    spec!("hgetall", 2, R, 1, 1, 1, K(hash::hgetall, None), "hash", "Returns all fields and values in a hash."),
    spec!("hkeys", 2, R, 1, 1, 1, K(hash::hkeys, None), "hash", "Returns all fields in a hash."),
    spec!("hvals", 2, R, 1, 1, 1, K(hash::hvals, None), "hash", "Returns all values in a hash."),
    spec!("hincrby", 4, W | OOM | F, 1, 1, 1, K(hash::hincrby, None), "hash", "Increments the integer value of a field in a hash by a number."),
    spec!("hincrbyfloat", 4, W | OOM | F, 1, 1, 1, K(hash::hincrbyfloat, None), "hash", "Increments the floating point value of a field by a number."),
    spec!("hrandfield", -2, R, 1, 1, 1, K(hash::hrandfield, None), "hash", "Returns one or more random fields from a hash."),
    spec!("hscan", -3, R, 1, 1, 1, K(hash::hscan, None), "hash", "Iterates over fields and values of a hash."),
    // lists
    spec!("lpush", -3, W | OOM | F, 1, 1, 1, K(list::lpush, None), "list", "Prepends one or more elements to a list."),
    spec!("rpush", -3, W | OOM | F, 1, 1, 1, K(list::rpush, None), "list", "Appends one or more elements to a list."),
    spec!("lpushx", -3, W | OOM | F, 1, 1, 1, K(list::lpushx, None), "list", "Prepends one or more elements to a list only when the list exists."),
    spec!("rpushx", -3, W | OOM | F, 1, 1, 1, K(list::rpushx, None), "list", "Appends an element to a list only when the list exists."),
    spec!("lpop", -2, W | F, 1, 1, 1, K(list::lpop, None), "list", "Returns the first elements in a list after removing it."),
    spec!("rpop", -2, W | F, 1, 1, 1, K(list::rpop, None), "list", "Returns and removes the last elements of a list."),
    spec!("llen", 2, R | F, 1, 1, 1, K(list::llen, None), "list", "Returns the length of a list."),
    spec!("lrange", 4, R, 1, 1, 1, K(list::lrange, None), "list", "Returns a range of elements from a list."),
    spec!("lindex", 3, R, 1, 1, 1, K(list::lindex, None), "list", "Returns an element from a list by its index."),
    spec!("lset", 4, W | OOM, 1, 1, 1, K(list::lset, None), "list", "Sets the value of an element in a list by its index."),
    spec!("linsert", 5, W | OOM, 1, 1, 1, K(list::linsert, None), "list", "Inserts an element before or after another element in a list."),
    spec!("lrem", 4, W, 1, 1, 1, K(list::lrem, None), "list", "Removes elements from a list."),
    spec!("ltrim", 4, W, 1, 1, 1, K(list::ltrim, None), "list", "Removes elements from both ends a list."),
    spec!("lpos", -3, R, 1, 1, 1, K(list::lpos, None), "list", "Returns the index of matching elements in a list."),
    // sets
    spec!("sadd", -3, W | OOM | F, 1, 1, 1, K(set::sadd, None), "set", "Adds one or more members to a set."),
    spec!("srem", -3, W | F, 1, 1, 1, K(set::srem, None), "set", "Removes one or more members from a set."),
    spec!("smembers", 2, R, 1, 1, 1, K(set::smembers, None), "set", "Returns all members of a set."),
    spec!("sismember", 3, R | F, 1, 1, 1, K(set::sismember, None), "set", "Determines whether a member belongs to a set."),
    spec!("smismember", -3, R | F, 1, 1, 1, K(set::smismember, None), "set", "Determines whether multiple members belong to a set."),
    spec!("scard", 2, R | F, 1, 1, 1, K(set::scard, None), "set", "Returns the number of members in a set."),
    spec!("spop", -2, W | F | RW, 1, 1, 1, K(set::spop, None), "set", "Returns one or more random members from a set after removing them."),
    spec!("srandmember", -2, R, 1, 1, 1, K(set::srandmember, None), "set", "Get one or multiple random members from a set."),
    spec!("sscan", -3, R, 1, 1, 1, K(set::sscan, None), "set", "Iterates over members of a set."),
    // sorted sets
    spec!("zadd", -4, W | OOM | F, 1, 1, 1, K(zset::zadd, None), "sorted-set", "Adds one or more members to a sorted set, or updates their scores."),
    spec!("zincrby", 4, W | OOM | F, 1, 1, 1, K(zset::zincrby, None), "sorted-set", "Increments the score of a member in a sorted set."),
    spec!("zrem", -3, W | F, 1, 1, 1, K(zset::zrem, None), "sorted-set", "Removes one or more members from a sorted set."),
    spec!("zscore", 3, R | F, 1, 1, 1, K(zset::zscore, None), "sorted-set", "Returns the score of a member in a sorted set."),
    spec!("zmscore", -3, R | F, 1, 1, 1, K(zset::zmscore, None), "sorted-set", "Returns the score of one or more members in a sorted set."),
    spec!("zcard", 2, R | F, 1, 1, 1, K(zset::zcard, None), "sorted-set", "Returns the number of members in a sorted set."),
    spec!("zcount", 4, R | F, 1, 1, 1, K(zset::zcount, None), "sorted-set", "Returns the count of members in a sorted set that have scores within a range."),
    spec!("zlexcount", 4, R | F, 1, 1, 1, K(zset::zlexcount, None), "sorted-set", "Returns the number of members in a sorted set within a lexicographical range."),
    spec!("zrange", -4, R, 1, 1, 1, K(zset::zrange, None), "sorted-set", "Returns members in a sorted set within a range of indexes."),
    spec!("zrevrange", -4, R, 1, 1, 1, K(zset::zrevrange, None), "sorted-set", "Returns members in a sorted set within a range of indexes in reverse order."),
    spec!("zrangebyscore", -4, R, 1, 1, 1, K(zset::zrangebyscore, None), "sorted-set", "Returns members in a sorted set within a range of scores."),
    spec!("zrevrangebyscore", -4, R, 1, 1, 1, K(zset::zrevrangebyscore, None), "sorted-set", "Returns members in a sorted set within a range of scores in reverse order."),
    spec!("zrangebylex", -4, R, 1, 1, 1, K(zset::zrangebylex, None), "sorted-set", "Returns members in a sorted set within a lexicographical range."),
    spec!("zrevrangebylex", -4, R, 1, 1, 1, K(zset::zrevrangebylex, None), "sorted-set", "Returns members in a sorted set within a lexicographical range in reverse order."),
    spec!("zrank", -3, R | F, 1, 1, 1, K(zset::zrank, None), "sorted-set", "Returns the index of a member in a sorted set ordered by ascending scores."),
    spec!("zrevrank", -3, R | F, 1, 1, 1, K(zset::zrevrank, None), "sorted-set", "Returns the index of a member in a sorted set ordered by descending scores."),
    spec!("zpopmin", -2, W | F, 1, 1, 1, K(zset::zpopmin, None), "sorted-set", "Returns the lowest-scoring members from a sorted set after removing them."),
    spec!("zpopmax", -2, W | F, 1, 1, 1, K(zset::zpopmax, None), "sorted-set", "Returns the highest-scoring members from a sorted set after removing them."),
    spec!("zrandmember", -2, R, 1, 1, 1, K(zset::zrandmember, None), "sorted-set", "Returns one or more random members from a sorted set."),
    spec!("zremrangebyrank", 4, W, 1, 1, 1, K(zset::zremrangebyrank, None), "sorted-set", "Removes members in a sorted set within a range of indexes."),
    spec!("zremrangebyscore", 4, W, 1, 1, 1, K(zset::zremrangebyscore, None), "sorted-set", "Removes members in a sorted set within a range of scores."),
    spec!("zremrangebylex", 4, W, 1, 1, 1, K(zset::zremrangebylex, None), "sorted-set", "Removes members in a sorted set within a lexicographical range."),
    spec!("zscan", -3, R, 1, 1, 1, K(zset::zscan, None), "sorted-set", "Iterates over members and scores of a sorted set."),
    // several collections (setops.rs; across shards through server::special's gathered run)
    spec!("sinter", -2, R, 1, -1, 1, K(so::sinter, None), "set", "Returns the intersect of multiple sets."),
    spec!("sunion", -2, R, 1, -1, 1, K(so::sunion, None), "set", "Returns the union of multiple sets."),
    spec!("sdiff", -2, R, 1, -1, 1, K(so::sdiff, None), "set", "Returns the difference of multiple sets."),
    spec!("sinterstore", -3, W | OOM, 1, -1, 1, K(so::sinterstore, None), "set", "Stores the intersect of multiple sets in a key."),
    spec!("sunionstore", -3, W | OOM, 1, -1, 1, K(so::sunionstore, None), "set", "Stores the union of multiple sets in a key."),
    spec!("sdiffstore", -3, W | OOM, 1, -1, 1, K(so::sdiffstore, None), "set", "Stores the difference of multiple sets in a key."),
    spec!("sintercard", -3, R, keys nk1, K(so::sintercard, None), "set", "Returns the number of members of the intersect of multiple sets."),
    spec!("smove", 4, W | F, 1, 2, 1, K(so::smove, None), "set", "Moves a member from one set to another."),
    spec!("lmove", 5, W | OOM, 1, 2, 1, K(so::lmove, None), "list", "Returns an element after popping it from one list and pushing it to another."),
    spec!("rpoplpush", 3, W | OOM, 1, 2, 1, K(so::rpoplpush, None), "list", "Returns the last element of a list after removing and pushing it to another list."),
    spec!("lmpop", -4, W, keys nk1, K(so::lmpop, None), "list", "Returns multiple elements from a list after removing them."),
    spec!("zunion", -3, R, keys nk1, K(so::zunion, None), "sorted-set", "Returns the union of multiple sorted sets."),
    spec!("zinter", -3, R, keys nk1, K(so::zinter, None), "sorted-set", "Returns the intersect of multiple sorted sets."),
    spec!("zdiff", -3, R, keys nk1, K(so::zdiff, None), "sorted-set", "Returns the difference between multiple sorted sets."),
    spec!("zunionstore", -4, W | OOM, keys dest_nk2, K(so::zunionstore, None), "sorted-set", "Stores the union of multiple sorted sets in a key."),
    spec!("zinterstore", -4, W | OOM, keys dest_nk2, K(so::zinterstore, None), "sorted-set", "Stores the intersect of multiple sorted sets in a key."),
    spec!("zdiffstore", -4, W | OOM, keys dest_nk2, K(so::zdiffstore, None), "sorted-set", "Stores the difference of multiple sorted sets in a key."),
    spec!("zintercard", -3, R, keys nk1, K(so::zintercard, None), "sorted-set", "Returns the number of members of the intersect of multiple sorted sets."),
    spec!("zrangestore", -5, W | OOM, 1, 2, 1, K(so::zrangestore, None), "sorted-set", "Stores a range of members from sorted set in a key."),
    spec!("zmpop", -4, W, keys nk1, K(so::zmpop, None), "sorted-set", "Returns the highest- or lowest-scoring members from one or more sorted sets after removing them."),
    // blocking pops (block.rs; the waiting is server/blocking.rs)
    spec!("blpop", -3, W | BL, 1, -2, 1, K(block::blpop, None), "list", "Removes and returns the first element in a list. Blocks until an element is available otherwise.").blocks(BlockForm::Keys),
    spec!("brpop", -3, W | BL, 1, -2, 1, K(block::brpop, None), "list", "Removes and returns the last element in a list. Blocks until an element is available otherwise.").blocks(BlockForm::Keys),
    spec!("blmove", 6, W | OOM | BL, 1, 2, 1, K(block::blmove, None), "list", "Pops an element from a list, pushes it to another list and returns it. Blocks until an element is available otherwise.").blocks(BlockForm::Move),
    spec!("brpoplpush", 4, W | OOM | BL, 1, 2, 1, K(block::brpoplpush, None), "list", "Pops an element from a list, pushes it to another list and returns it. Block until an element is available otherwise.").blocks(BlockForm::Move),
    spec!("blmpop", -5, W | BL, keys nk2, K(block::blmpop, None), "list", "Pops the first element from one of multiple lists. Blocks until an element is available otherwise.").blocks(BlockForm::NumKeys),
    spec!("bzpopmin", -3, W | F | BL, 1, -2, 1, K(block::bzpopmin, None), "sorted-set", "Removes and returns the member with the lowest score from one or more sorted sets. Blocks until a member is available otherwise.").blocks(BlockForm::Keys),
    spec!("bzpopmax", -3, W | F | BL, 1, -2, 1, K(block::bzpopmax, None), "sorted-set", "Removes and returns the member with the highest score from one or more sorted sets. Blocks until a member available otherwise.").blocks(BlockForm::Keys),
    spec!("bzmpop", -5, W | BL, keys nk2, K(block::bzmpop, None), "sorted-set", "Removes and returns a member by score from one or more sorted sets. Blocks until a member is available otherwise.").blocks(BlockForm::NumKeys),
    // bitmaps (bits.rs)
    spec!("setbit", 4, W | OOM, 1, 1, 1, K(bits::setbit, None), "bitmap", "Sets or clears the bit at offset of the string value. Creates the key if it doesn't exist."),
    spec!("getbit", 3, R | F, 1, 1, 1, K(bits::getbit, None), "bitmap", "Returns a bit value by offset."),
    spec!("bitcount", -2, R, 1, 1, 1, K(bits::bitcount, None), "bitmap", "Counts the number of set bits (population counting) in a string."),
    spec!("bitpos", -3, R, 1, 1, 1, K(bits::bitpos, None), "bitmap", "Finds the first set (1) or clear (0) bit in a string."),
    spec!("bitop", -4, W | OOM, 2, -1, 1, K(bits::bitop, None), "bitmap", "Performs bitwise operations on multiple strings, and stores the result."),
    spec!("bitfield", -2, W | OOM, 1, 1, 1, K(bits::bitfield, None), "bitmap", "Performs arbitrary bitfield integer operations on strings."),
    spec!("bitfield_ro", -2, R | F, 1, 1, 1, K(bits::bitfield_ro, None), "bitmap", "Performs arbitrary read-only bitfield integer operations on strings."),
    // HyperLogLog (hll.rs)
    spec!("pfadd", -2, W | OOM | F, 1, 1, 1, K(hll::pfadd, None), "hyperloglog", "Adds elements to a HyperLogLog key. Creates the key if it doesn't exist."),
    spec!("pfcount", -2, R, 1, -1, 1, K(hll::pfcount, None), "hyperloglog", "Returns the approximated cardinality of the set(s) observed by the HyperLogLog key(s)."),
    spec!("pfmerge", -2, W | OOM, 1, -1, 1, K(hll::pfmerge, None), "hyperloglog", "Merges one or more HyperLogLog values into a single key."),
];

static INDEX: LazyLock<HashMap<&'static str, &'static Spec, foldhash::fast::RandomState>> =
    LazyLock::new(|| TABLE.iter().map(|s| (s.name, s)).collect());

/// Case-insensitive lookup without allocating for names up to 32 bytes.
pub fn lookup(name: &[u8]) -> Option<&'static Spec> {
    let mut buf = [0u8; 32];
    if name.len() > buf.len() {
        return None;
    }
    for (d, s) in buf.iter_mut().zip(name) {
        *d = s.to_ascii_lowercase();
    }
    let lower = std::str::from_utf8(&buf[..name.len()]).ok()?;
    INDEX.get(lower).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_positions_follow_the_spec() {
        let mset = lookup(b"MSET").unwrap();
        assert_eq!(mset.key_positions(5).collect::<Vec<_>>(), vec![1, 3]);
        let del = lookup(b"del").unwrap();
        assert_eq!(del.key_positions(4).collect::<Vec<_>>(), vec![1, 2, 3]);
        let obj = lookup(b"object").unwrap();
        assert_eq!(obj.key_positions(3).collect::<Vec<_>>(), vec![2]);
        assert_eq!(obj.key_positions(2).count(), 0, "OBJECT HELP has no key");
        assert_eq!(lookup(b"ping").unwrap().key_positions(2).count(), 0);
        assert!(lookup(b"nosuchcommand").is_none());
        for (i, s) in TABLE.iter().enumerate() {
            assert_eq!(s.index(), i);
        }
    }

    #[test]
    fn writes_and_reads_are_flagged() {
        for s in TABLE {
            if let Handler::Key(..) = s.handler {
                assert!(
                    s.flags.has(Flags::WRITE) ^ s.flags.has(Flags::READONLY),
                    "{}",
                    s.name
                );
            }
            assert!(s.arity != 0, "{}", s.name);
        }
    }

    /// Every blocking command that runs where its keys live is a pop with a form server/blocking.rs reads
    /// (WAIT, the other BLOCKING command, is special); a form's keys are where it says.
    #[test]
    fn blocking_pops_have_a_form() {
        for s in TABLE {
            let keyed = matches!(s.handler, Handler::Key(..));
            assert_eq!(
                s.block.is_some(),
                keyed && s.flags.has(Flags::BLOCKING),
                "{}",
                s.name
            );
        }
        let args = |v: &[&str]| {
            v.iter()
                .map(|a| Bytes::from(a.to_string()))
                .collect::<Vec<_>>()
        };
        let blmpop = lookup(b"blmpop").unwrap();
        assert_eq!(blmpop.block, Some(BlockForm::NumKeys));
        let a = args(&["blmpop", "0", "2", "k1", "k2", "LEFT"]);
        assert_eq!(blmpop.keys_of(&a), vec![3, 4]);
        let blmove = lookup(b"blmove").unwrap();
        assert_eq!(blmove.block, Some(BlockForm::Move));
        assert_eq!(
            blmove.keys_of(&args(&["blmove", "s", "d", "LEFT", "RIGHT", "0"]))[0],
            1
        );
        assert_eq!(lookup(b"bzpopmax").unwrap().block, Some(BlockForm::Keys));
    }
}
