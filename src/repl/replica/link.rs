//! The link's controller and its control connection: they carry out what the link state machine decides.

use super::handshake::attempt;
use super::*;

/// Milliseconds on the controller's monotonic clock (the link state machine's time).
pub(super) struct Clock(pub(super) Instant);

impl Clock {
    pub(super) fn now(&self) -> u64 {
        self.0.elapsed().as_millis() as u64
    }
}

/// Keeps the link to the primary: attempts, and between them the backoff the link state machine
/// (tandem_sync::link) decides.
pub(super) async fn controller(local: Rc<Local>, gen: u64) {
    let clock = Clock(Instant::now());
    let timeout_ms = local.shard.borrow().settings.repl_timeout_secs * 1000;
    let mut link = Link::new(clock.now(), timeout_ms);
    while current(&local, gen) {
        let res = attempt(&local, gen, &mut link, &clock).await;
        if !current(&local, gen) {
            link.step(LinkEvent::Stop, clock.now());
            return;
        }
        let why = match res {
            Ok(()) => "link closed".to_string(),
            Err(e) => e.to_string(),
        };
        let mut delay = 0;
        for a in link.step(LinkEvent::Failed(why.clone()), clock.now()) {
            if let Action::RetryIn(ms) = a {
                delay = ms;
            }
        }
        tracing::warn!("MASTER <-> REPLICA sync: {why}; retrying in {delay} ms");
        local.shared.repl.link_up.store(false, Ordering::Release);
        gate::update(&local.shared, &local.shard.borrow().settings);
        with_link(&local, gen, |l| {
            l.up = false;
        });
        runtime::sleep(Duration::from_millis(delay)).await;
        // The backoff is over: the machine says connect (its only action from Backoff).
        link.tick(clock.now());
    }
}

/// The link is up: every flow is live (LOADING lifted, INFO and ROLE say so).
fn go_live(local: &Local, gen: u64, p: &SyncProgress, settings: &crate::config::Settings) {
    p.finished_ms.store(runtime::now_ms(), Ordering::Release);
    local.shared.repl.loading.store(false, Ordering::Release);
    local.shared.repl.link_up.store(true, Ordering::Release);
    gate::update(&local.shared, settings);
    with_link(local, gen, |l| {
        l.up = true;
    });
    if p.full && settings.appendonly {
        // The WAL's history ended with the full sync: a snapshot of what was loaded starts a new one
        // (persist/snapshot.rs), as Valkey rewrites its AOF after a full sync.
        let l = runtime::current_local();
        runtime::spawn(async move {
            if let Err(e) = crate::persist::snapshot::save(&l, true).await {
                tracing::warn!(
                    "the snapshot after the full sync failed: {e}; the WAL stays detached"
                );
            }
        })
        .detach();
    }
    tracing::info!(
        "MASTER <-> REPLICA sync: Finished with success ({} in {:.3}s)",
        if p.full {
            "full sync"
        } else {
            "partial resync"
        },
        p.started.elapsed().as_secs_f64()
    );
}

/// `REPLCONF ACK <total> <o0,o1,..>`, and in failover mode the group epoch this replica knows (so a
/// primary the group replaced learns it from its replica's next ack).
fn ack_command(local: &Local, p: &SyncProgress) -> Vec<u8> {
    let offs = p.offsets();
    let total = offs.iter().sum::<u64>().to_string();
    let list = offs
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let r = &local.shared.repl;
    if r.group.load(Ordering::Acquire) {
        let epoch = r.epoch.load(Ordering::Acquire).to_string();
        return net::command(&[
            b"REPLCONF",
            b"ACK",
            total.as_bytes(),
            list.as_bytes(),
            epoch.as_bytes(),
        ]);
    }
    net::command(&[b"REPLCONF", b"ACK", total.as_bytes(), list.as_bytes()])
}

/// The control connection after PSYNC: carries out what the link state machine decides (go live,
/// keepalives while loading, ACKs once live, giving up on a silent primary), answers GETACK, and watches
/// the flows and the generation (REPLICAOF changes).
#[allow(clippy::too_many_arguments)]
pub(super) async fn control(
    local: &Rc<Local>,
    gen: u64,
    s: &mut TcpStream,
    mut buf: BytesMut,
    p: &Arc<SyncProgress>,
    settings: &crate::config::Settings,
    link: &mut Link,
    clock: &Clock,
) -> io::Result<()> {
    let mut w = s.clone();
    let mut parser = RequestParser::new();
    // The bytes the machine's actions send, if any; an Abort ends the attempt.
    let act = |acts: Vec<Action>| -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        for a in acts {
            match a {
                Action::GoLive => go_live(local, gen, p, settings),
                Action::Ack => out.extend(ack_command(local, p)),
                Action::Keepalive => out.push(b'\n'),
                Action::Abort(why) => return Err(err(why)),
                Action::Connect | Action::RetryIn(_) => {}
            }
        }
        Ok(out)
    };
    // A partial resync's flows are live from the start: the machine goes live at once.
    let out = act(link.step(LinkEvent::Synced { full: p.full }, clock.now()))?;
    if !out.is_empty() {
        net::write(&mut w, out).await?;
    }
    loop {
        if buf.capacity() - buf.len() < 1024 {
            buf.reserve(4096);
        }
        let mut read = pin!(s.append(std::mem::take(&mut buf)));
        loop {
            match select(
                read.as_mut(),
                pin!(runtime::sleep(Duration::from_millis(10))),
            )
            .await
            {
                Either::Left((BufResult(res, b), _)) => {
                    buf = b;
                    match res {
                        Ok(0) => return Err(err("connection with master lost")),
                        Err(e) => return Err(e),
                        Ok(_) => {}
                    }
                    link.step(LinkEvent::Heard, clock.now());
                    with_link(local, gen, |l| {
                        l.last_io_ms = runtime::now_ms();
                    });
                    break;
                }
                Either::Right(_) => {
                    if !current(local, gen) {
                        return Ok(());
                    }
                    if let Some(why) = p.failure() {
                        return Err(err(why));
                    }
                    let mut acts = Vec::new();
                    if link.phase() == LinkPhase::Loading && p.all_live() {
                        acts.extend(link.step(LinkEvent::FlowsLive, clock.now()));
                    }
                    acts.extend(link.tick(clock.now()));
                    let out = act(acts)?;
                    if !out.is_empty() {
                        net::write(&mut w, out).await?;
                    }
                }
            }
        }
        while let Ok(Some(cmd)) = parser.next(&mut buf, 1 << 20, true) {
            if link.phase() == LinkPhase::Live
                && cmd.len() >= 2
                && cmd[0].eq_ignore_ascii_case(b"replconf")
                && cmd[1].eq_ignore_ascii_case(b"getack")
            {
                net::write(&mut w, ack_command(local, p)).await?;
            }
        }
    }
}
