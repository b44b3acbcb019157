//! A client connection: accept, read, parse, hand batches to dispatch (server/dispatch.rs), write; and
//! between batches, a move to the shard its keys live on (server/migrate.rs).
//!
//! Invariant: every byte read is either parsed into a command that runs, or kept (read buffer, parser)
//! until the rest of its command arrives, including across a move.

use super::Local;
use crate::resp::{Proto, ProtocolError, Reply, RequestParser};
use crate::runtime::{self, AsyncListener, TcpStream};
use crate::shard::ClientInfo;
use bytes::{Bytes, BytesMut};
use compio::buf::BufResult;
use compio::io::{AsyncReadExt, AsyncWriteExt};
use futures_util::future::{select, Either};
use std::cell::RefCell;
use std::net::SocketAddr;
use std::pin::pin;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::Duration;

const READ_CHUNK: usize = 16 * 1024;
/// At most this many commands are dispatched per batch, bounding per-batch memory for huge pipelines.
const MAX_BATCH: usize = 1024;

pub async fn accept_loop(local: Rc<Local>, listener: AsyncListener) {
    loop {
        let seen = local.shutdown.generation();
        let accepted = match select(
            pin!(listener.accept()),
            pin!(local.shutdown.wait_since(seen)),
        )
        .await
        {
            Either::Left((r, _)) => r,
            Either::Right(_) => {
                if local.shared.shutdown.load(Ordering::Acquire) {
                    return;
                }
                continue;
            }
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!("Accepting client connection: {e}");
                runtime::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        local.shard.borrow_mut().stats.connections_received += 1;
        runtime::spawn(serve(local.clone(), stream, peer)).detach();
    }
}

/// Why a connection is refused before it may send anything.
fn refusal(local: &Local, peer: &SocketAddr) -> Option<&'static str> {
    protected_mode_refusal(&local.shard.borrow().settings, peer)
}

/// Valkey's protected mode: with no password set, only loopback clients are served. An IPv4-mapped IPv6
/// loopback address counts as loopback.
pub fn protected_mode_refusal(
    s: &crate::config::Settings,
    peer: &SocketAddr,
) -> Option<&'static str> {
    let loopback = match peer.ip() {
        std::net::IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map_or(v6.is_loopback(), |v4| v4.is_loopback()),
        ip => ip.is_loopback(),
    };
    if s.protected_mode && s.requirepass.is_none() && !loopback {
        return Some(
            "-DENIED Running in protected mode because protected mode is enabled and no password is set for \
             the default user. In this mode connections are only accepted from the loopback interface. If you \
             want to connect from external computers, you may adopt one of the following solutions: 1) Just \
             disable protected mode sending the command 'CONFIG SET protected-mode no' from the loopback \
             interface by connecting from the same host the server is running, however MAKE SURE the server is \
             not publicly accessible from internet if you do so. Use CONFIG REWRITE to make this change \
             permanent. 2) Alternatively you can just disable the protected mode by editing the configuration \
             file, and setting the protected mode option to 'no', and then restarting the server. 3) If you \
             started the server manually just for testing, restart it with the '--protected-mode no' option. \
             4) Set up an authentication password for the default user. NOTE: You only need to do one of the \
             above things in order for the server to start accepting connections from the outside.\r\n",
        );
    }
    None
}

pub async fn serve(local: Rc<Local>, mut stream: TcpStream, peer: SocketAddr) {
    let _ = stream.set_nodelay(true);
    let maxclients = local.shard.borrow().settings.maxclients;
    let n = local.shared.connected.fetch_add(1, Ordering::AcqRel) + 1;
    let refused = if n > maxclients {
        local.shard.borrow_mut().stats.rejected_connections += 1;
        Some("-ERR max number of clients reached\r\n")
    } else {
        refusal(&local, &peer)
    };
    if let Some(msg) = refused {
        let _ = stream.write_all(msg.as_bytes().to_vec()).await;
        let _ = stream.close().await;
        local.shared.connected.fetch_sub(1, Ordering::AcqRel);
        return;
    }
    let id = local.shared.next_client_id.fetch_add(1, Ordering::Relaxed) + 1;
    let now = runtime::now_ms();
    let info = Rc::new(RefCell::new(ClientInfo {
        id,
        addr: peer.to_string(),
        laddr: stream
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default(),
        resp: 2,
        created_ms: now,
        last_ms: now,
        last_cmd: "NULL",
        ..Default::default()
    }));
    local.shard.borrow_mut().clients.insert(id, info.clone());
    let authed = local.shard.borrow().settings.requirepass.is_none();
    let conn = Conn::new(local.clone(), info, authed);
    drive(
        local,
        stream,
        conn,
        BytesMut::with_capacity(READ_CHUNK),
        RequestParser::new(),
    )
    .await;
}

/// Serves a connection until it closes or moves to another shard (server/migrate.rs).
pub(super) async fn drive(
    local: Rc<Local>,
    mut stream: TcpStream,
    mut conn: Conn,
    rbuf: BytesMut,
    parser: RequestParser,
) {
    let id = conn.id;
    let moved = conn.run(&mut stream, rbuf, parser).await;
    // The socket's close waits for every handle of it.
    conn.socket = None;
    if let Some((to, rbuf, parser)) = moved {
        super::migrate::hand_over(local, stream, conn, rbuf, parser, to).await;
        return;
    }
    conn.unwatch_all().await;
    conn.unsubscribe_all();
    local.shard.borrow_mut().clients.remove(&id);
    local.shared.connected.fetch_sub(1, Ordering::AcqRel);
    if let Some(t) = conn.repl.takeover.take() {
        // A replica's session or flow: no longer a client (Valkey does not count replicas either).
        crate::repl::primary::take_over(local.clone(), stream, t).await;
    } else {
        let _ = stream.close().await;
    }
    if local.shared.shutdown.load(Ordering::Acquire) {
        local.shutdown.notify();
    }
}

pub struct Conn {
    pub local: Rc<Local>,
    pub info: Rc<RefCell<ClientInfo>>,
    pub id: u64,
    pub db: usize,
    pub proto: Proto,
    pub authed: bool,
    /// Set by QUIT, SHUTDOWN, CLIENT KILL of itself: close once the replies so far are written.
    pub closing: bool,
    /// What the replication commands keep of this connection (REPLCONF, WAIT, PSYNC's takeover).
    pub repl: crate::repl::commands::ReplClient,
    /// Between MULTI and EXEC: the queued commands (server/multi.rs).
    pub multi: Option<super::multi::MultiState>,
    pub watched: Vec<super::multi::Watch>,
    /// Pub/sub subscriptions (server/pubsub.rs).
    pub subs: std::collections::BTreeSet<(crate::shard::pubsub::Space, Bytes)>,
    pub reply_mode: ReplyMode,
    /// Where its recent batches ran, and the shard it should move to (server/migrate.rs).
    pub(super) affinity: super::migrate::Affinity,
    pub(super) move_to: Option<usize>,
    /// A handle of the connection's socket while it is served, for noticing its close while a blocking
    /// command waits (nothing reads the socket then).
    pub(super) socket: Option<TcpStream>,
    /// The last command name looked up in the table (see `Conn::spec`).
    last_name: LastName,
}

/// A pipeline repeats one command: remembering the last name's spec lets the table's lookup (lower-casing,
/// hashing) run once per run of equal names instead of at each step that needs the spec.
#[derive(Default)]
struct LastName {
    name: [u8; 16],
    len: usize,
    spec: Option<&'static crate::cmd::Spec>,
}

/// CLIENT REPLY: whether the connection's replies are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyMode {
    On,
    Off,
    /// The next command's reply is dropped (set by CLIENT REPLY SKIP).
    SkipNext,
}

impl Conn {
    pub(super) fn new(local: Rc<Local>, info: Rc<RefCell<ClientInfo>>, authed: bool) -> Conn {
        let id = info.borrow().id;
        Conn {
            local,
            info,
            id,
            db: 0,
            proto: Proto::Resp2,
            authed,
            closing: false,
            repl: crate::repl::commands::ReplClient {
                id,
                ..Default::default()
            },
            multi: None,
            watched: Vec::new(),
            subs: Default::default(),
            reply_mode: ReplyMode::On,
            affinity: Default::default(),
            move_to: None,
            socket: None,
            last_name: LastName::default(),
        }
    }

    /// The table's entry for a command name (None: unknown), remembered for the next lookup of the same
    /// bytes.
    pub(super) fn spec(&mut self, name: &[u8]) -> Option<&'static crate::cmd::Spec> {
        let c = &mut self.last_name;
        if name.len() == c.len && c.name[..c.len] == *name {
            return c.spec;
        }
        let spec = crate::cmd::lookup(name);
        if name.len() <= c.name.len() {
            c.name[..name.len()].copy_from_slice(name);
            c.len = name.len();
            c.spec = spec;
        }
        spec
    }

    /// Whether a command may wait for other clients (the table's `blocking` flag: the blocking pops,
    /// WAIT).
    fn may_block(&mut self, cmd: &[Bytes]) -> bool {
        cmd.first()
            .and_then(|name| self.spec(name))
            .is_some_and(|spec| spec.flags.has(crate::cmd::Flags::BLOCKING))
    }

    /// Resolves once `cond` holds, re-checked whenever the shard wakes this client (kill, unpause,
    /// shutdown). The client's single waker slot is replaced, never appended to.
    pub(super) async fn until(&self, cond: impl Fn(&Self) -> bool) {
        std::future::poll_fn(|cx| {
            if cond(self) {
                return std::task::Poll::Ready(());
            }
            let mut info = self.info.borrow_mut();
            if !info.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                info.waker = Some(cx.waker().clone());
            }
            std::task::Poll::Pending
        })
        .await
    }

    /// Whether pub/sub messages wait to be written.
    fn has_push(&self) -> bool {
        !self.info.borrow().push.is_empty()
    }

    /// Writes the pending pub/sub messages; false if the connection failed.
    async fn flush_pushes(&self, w: &mut TcpStream) -> bool {
        let bytes = std::mem::take(&mut self.info.borrow_mut().push);
        if bytes.is_empty() {
            return true;
        }
        let len = bytes.len();
        // A subscriber that stops reading is closed at its limit (shard/pubsub.rs) even while this write
        // waits for it.
        let write = pin!(w.write_all(bytes));
        let stop = pin!(self.until(|c| c.should_stop()));
        match select(write, stop).await {
            Either::Left((BufResult(res, _), _)) => {
                self.local.shard.borrow_mut().stats.net_output_bytes += len as u64;
                res.is_ok()
            }
            Either::Right(_) => false,
        }
    }

    pub(super) fn should_stop(&self) -> bool {
        self.info.borrow().killed || self.local.shared.shutdown.load(Ordering::Acquire)
    }

    /// Serves the connection; Some when it should move to another shard, with what it has read but not
    /// run.
    async fn run(
        &mut self,
        stream: &mut TcpStream,
        mut rbuf: BytesMut,
        mut parser: RequestParser,
    ) -> Option<(usize, BytesMut, RequestParser)> {
        let mut out: Vec<u8> = Vec::with_capacity(READ_CHUNK);
        let mut writer = stream.clone();
        self.socket = Some(stream.clone());
        loop {
            if self.should_stop() {
                return None;
            }
            if let Some(to) = self.move_to.take() {
                if self.movable() {
                    return Some((to, rbuf, parser));
                }
                self.affinity.reset();
            }
            if rbuf.capacity() - rbuf.len() < READ_CHUNK / 4 {
                rbuf.reserve(READ_CHUNK);
            }
            let timeout = self.local.shard.borrow().settings.timeout_secs;
            let deadline =
                (timeout > 0).then(|| std::time::Instant::now() + Duration::from_secs(timeout));
            // The read stays alive across wake-ups: it is abandoned (cancelled with whatever it read) only
            // when the connection closes anyway (killed, shutdown, idle timeout), so no byte is ever lost.
            let BufResult(res, buf) = {
                let mut read = pin!(stream.append(rbuf));
                // Pub/sub messages are written while the read waits (on a second handle of the socket).
                loop {
                    let stop = pin!(self.until(|c| c.should_stop() || c.has_push()));
                    let outcome = match deadline.filter(|_| !self.subscribed()) {
                        None => match select(read.as_mut(), stop).await {
                            Either::Left((r, _)) => Some(r),
                            Either::Right(_) => None,
                        },
                        Some(d) => {
                            let idle = pin!(runtime::sleep(
                                d.saturating_duration_since(std::time::Instant::now())
                            ));
                            match select(read.as_mut(), select(stop, idle)).await {
                                Either::Left((r, _)) => Some(r),
                                Either::Right((Either::Right(_), _)) => return None,
                                Either::Right(_) => None,
                            }
                        }
                    };
                    match outcome {
                        Some(r) => break r,
                        None if self.should_stop() => return None,
                        None => {
                            if !self.flush_pushes(&mut writer).await {
                                return None;
                            }
                        }
                    }
                }
            };
            rbuf = buf;
            match res {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.local.shard.borrow_mut().stats.net_input_bytes += n as u64,
            }
            let (max_bulk, qlimit) = {
                let sh = self.local.shard.borrow();
                (
                    sh.settings.proto_max_bulk_len,
                    sh.settings.client_query_buffer_limit,
                )
            };
            // A command that may block starts a batch of its own, so the replies of the commands before it
            // are written before it waits (as Valkey writes them before a client blocks).
            let mut blocking_next: Option<Vec<Bytes>> = None;
            loop {
                let mut cmds: Vec<Vec<Bytes>> = blocking_next.take().into_iter().collect();
                let mut proto_err: Option<ProtocolError> = None;
                while cmds.len() < MAX_BATCH {
                    match parser.next(&mut rbuf, max_bulk, self.authed) {
                        Ok(Some(c)) if !cmds.is_empty() && self.may_block(&c) => {
                            blocking_next = Some(c);
                            break;
                        }
                        Ok(Some(c)) => cmds.push(c),
                        Ok(None) => break,
                        Err(e) => {
                            proto_err = Some(e);
                            break;
                        }
                    }
                }
                let more = cmds.len() == MAX_BATCH || blocking_next.is_some();
                if !cmds.is_empty() {
                    self.run_batch(cmds, &mut out).await;
                }
                if let Some(e) = &proto_err {
                    let mut r = Reply::new(self.proto);
                    r.error(&format!("ERR {e}"));
                    out.extend_from_slice(&r.buf);
                    self.closing = true;
                }
                if !out.is_empty() {
                    let len = out.len();
                    let BufResult(res, buf) = stream.write_all(out).await;
                    out = buf;
                    out.clear();
                    if res.is_err() {
                        return None;
                    }
                    self.local.shard.borrow_mut().stats.net_output_bytes += len as u64;
                }
                if self.closing {
                    return None;
                }
                if !more {
                    break;
                }
            }
            if parser.in_progress() && rbuf.len() + parser.held_bytes() > qlimit {
                tracing::warn!(
                    "Closing client that reached max query buffer length (id={})",
                    self.id
                );
                return None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::protected_mode_refusal;
    use crate::config::Config;

    #[test]
    fn protected_mode_refuses_only_remote_clients_without_a_password() {
        let open = Config::default().settings();
        for (peer, refused) in [
            ("127.0.0.1:5000", false),
            ("[::1]:5000", false),
            ("[::ffff:127.0.0.1]:5000", false),
            ("192.0.2.7:5000", true),
            ("[2001:db8::1]:5000", true),
        ] {
            let r = protected_mode_refusal(&open, &peer.parse().unwrap());
            assert_eq!(r.is_some(), refused, "{peer}");
            if let Some(msg) = r {
                assert!(
                    msg.starts_with("-DENIED Running in protected mode") && msg.ends_with("\r\n")
                );
            }
        }
        let mut with_pass = Config::default();
        with_pass
            .set_many(&[("requirepass".into(), "x".into())])
            .unwrap();
        assert!(
            protected_mode_refusal(&with_pass.settings(), &"192.0.2.7:1".parse().unwrap())
                .is_none()
        );
        let mut off = Config::default();
        off.set_many(&[("protected-mode".into(), "no".into())])
            .unwrap();
        assert!(protected_mode_refusal(&off.settings(), &"192.0.2.7:1".parse().unwrap()).is_none());
    }
}
