//! A replica's link to its primary as a state machine without I/O (raft-rs style: `step` an event, `tick`
//! the clock, carry out the returned actions). The server's controller owns the sockets and the flows;
//! this decides the phases, the keepalives and acknowledgements, the primary's silence, and the backoff
//! between attempts. Time is injected (milliseconds of any monotonic clock), so every schedule can be
//! replayed in tests.
//!
//! Phases: `Connecting` (TCP, AUTH, REPLCONF, PSYNC) → `Loading` (a full sync: snapshots load, log
//! spooled) or straight to `Live` (a partial resync) → `Live`; any failure or cancellation → `Backoff`
//! → `Connecting` again; `Stopped` once REPLICAOF moves on.
//!
//! Invariants: while loading, the primary hears from the replica at least four times per timeout (a
//! bare newline), so a sync of any length survives; a live replica acknowledges every `ack_ms`; a primary
//! silent for `timeout_ms` ends the attempt; retries come at once, then back off to a second, and a link
//! that lived `healthy_ms` starts a new series.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Connecting,
    Loading,
    Live,
    Backoff,
    Stopped,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The primary answered PSYNC: a full sync (flows load) or a continuation (flows are live).
    Synced { full: bool },
    /// Every flow of the attempt is live.
    FlowsLive,
    /// Bytes arrived from the primary on the control connection.
    Heard,
    /// The attempt ended: connection lost, a flow failed, the primary refused.
    Failed(String),
    /// REPLICAOF changed or stopped: no more attempts.
    Stop,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Open the control connection and handshake.
    Connect,
    /// Lift LOADING: the dataset is complete and follows the primary.
    GoLive,
    /// Send a bare newline on the control connection.
    Keepalive,
    /// Send REPLCONF ACK with every flow's applied offset.
    Ack,
    /// End the attempt: cancel its flows, with this reason in the log.
    Abort(String),
    /// Start the next attempt after this many ms.
    RetryIn(u64),
}

#[derive(Debug, Clone)]
pub struct Link {
    phase: Phase,
    timeout_ms: u64,
    ack_ms: u64,
    healthy_ms: u64,
    /// Failed attempts in a row.
    failures: u32,
    attempt_started: u64,
    last_heard: u64,
    last_sent: u64,
    retry_at: u64,
}

impl Link {
    /// A link that starts connecting at `now`; `timeout_ms` is repl-timeout.
    pub fn new(now: u64, timeout_ms: u64) -> Self {
        Link {
            phase: Phase::Connecting,
            timeout_ms: timeout_ms.max(1),
            ack_ms: 1000,
            healthy_ms: 5000,
            failures: 0,
            attempt_started: now,
            last_heard: now,
            last_sent: now,
            retry_at: now,
        }
    }

    /// repl-timeout changed (read again at each attempt).
    pub fn set_timeout(&mut self, timeout_ms: u64) {
        self.timeout_ms = timeout_ms.max(1);
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// How often the replica speaks while loading: four times per timeout, at most every second.
    pub fn keepalive_ms(&self) -> u64 {
        (self.timeout_ms / 4).clamp(1, 1000)
    }

    /// Delay before attempt number `failures` (1-based) in a row.
    pub fn backoff_ms(failures: u32) -> u64 {
        match failures {
            0 | 1 => 0,
            2 => 100,
            3 => 250,
            4 => 500,
            _ => 1000,
        }
    }

    pub fn step(&mut self, ev: Event, now: u64) -> Vec<Action> {
        match (self.phase, ev) {
            (Phase::Stopped, _) => vec![],
            (_, Event::Stop) => {
                let was = self.phase;
                self.phase = Phase::Stopped;
                match was {
                    Phase::Loading | Phase::Live => {
                        vec![Action::Abort("replication stopped".into())]
                    }
                    _ => vec![],
                }
            }
            (Phase::Connecting, Event::Synced { full }) => {
                self.last_heard = now;
                self.last_sent = now;
                if full {
                    self.phase = Phase::Loading;
                    vec![]
                } else {
                    self.go_live(now)
                }
            }
            (Phase::Loading, Event::FlowsLive) => self.go_live(now),
            (Phase::Connecting | Phase::Loading | Phase::Live, Event::Heard) => {
                self.last_heard = now;
                vec![]
            }
            (Phase::Connecting | Phase::Loading | Phase::Live, Event::Failed(why)) => {
                self.fail(now, why)
            }
            _ => vec![],
        }
    }

    fn go_live(&mut self, now: u64) -> Vec<Action> {
        self.phase = Phase::Live;
        self.last_sent = now;
        vec![Action::GoLive, Action::Ack]
    }

    fn fail(&mut self, now: u64, why: String) -> Vec<Action> {
        // A link that lived a while was healthy: its loss starts a new series of retries.
        self.failures = if now.saturating_sub(self.attempt_started) > self.healthy_ms {
            1
        } else {
            self.failures + 1
        };
        self.phase = Phase::Backoff;
        let delay = Self::backoff_ms(self.failures);
        self.retry_at = now + delay;
        vec![Action::Abort(why), Action::RetryIn(delay)]
    }

    pub fn tick(&mut self, now: u64) -> Vec<Action> {
        match self.phase {
            Phase::Backoff if now >= self.retry_at => {
                self.phase = Phase::Connecting;
                self.attempt_started = now;
                self.last_heard = now;
                self.last_sent = now;
                vec![Action::Connect]
            }
            Phase::Loading | Phase::Live
                if now.saturating_sub(self.last_heard) > self.timeout_ms =>
            {
                self.fail(now, "MASTER timeout: no data nor PING received".into())
            }
            Phase::Loading if now.saturating_sub(self.last_sent) >= self.keepalive_ms() => {
                self.last_sent = now;
                vec![Action::Keepalive]
            }
            Phase::Live if now.saturating_sub(self.last_sent) >= self.ack_ms => {
                self.last_sent = now;
                vec![Action::Ack]
            }
            _ => vec![],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_full_sync_then_live() {
        let mut l = Link::new(0, 60_000);
        assert_eq!(l.step(Event::Synced { full: true }, 10), vec![]);
        assert_eq!(l.phase(), Phase::Loading);
        // Loading for two minutes with the primary's PINGs: keepalives every second, never a timeout.
        let mut keepalives = 0;
        for t in (20..120_000).step_by(10) {
            if t % 10_000 == 0 {
                l.step(Event::Heard, t);
            }
            for a in l.tick(t) {
                assert_eq!(a, Action::Keepalive);
                keepalives += 1;
            }
        }
        assert!((110..=121).contains(&keepalives), "{keepalives}");
        assert_eq!(
            l.step(Event::FlowsLive, 120_000),
            vec![Action::GoLive, Action::Ack]
        );
        assert_eq!(l.tick(120_500), vec![]);
        assert_eq!(l.tick(121_000), vec![Action::Ack]);
    }

    #[test]
    fn a_partial_resync_is_live_at_once() {
        let mut l = Link::new(0, 60_000);
        assert_eq!(
            l.step(Event::Synced { full: false }, 5),
            vec![Action::GoLive, Action::Ack]
        );
        assert_eq!(l.phase(), Phase::Live);
    }

    #[test]
    fn silence_ends_the_attempt_and_retries_back_off() {
        let mut l = Link::new(0, 1000);
        l.step(Event::Synced { full: true }, 0);
        assert_eq!(l.keepalive_ms(), 250);
        assert_eq!(l.tick(250), vec![Action::Keepalive]);
        let a = l.tick(1001);
        assert!(matches!(&a[..], [Action::Abort(w), Action::RetryIn(0)] if w.contains("timeout")));
        assert_eq!(l.tick(1001), vec![Action::Connect]);
        let mut delays = Vec::new();
        for i in 0..5u64 {
            let t = 2000 + i * 2000;
            l.step(Event::Failed("refused".into()), t);
            delays.push(l.retry_at - t);
            assert_eq!(l.tick(l.retry_at), vec![Action::Connect]);
        }
        assert_eq!(delays, vec![100, 250, 500, 1000, 1000]);
        // A link that lived longer than healthy_ms starts a new series.
        l.step(Event::Synced { full: false }, 20_000);
        let a = l.step(Event::Failed("lost".into()), 40_000);
        assert_eq!(a[1], Action::RetryIn(0));
    }

    #[test]
    fn stop_is_final() {
        let mut l = Link::new(0, 1000);
        l.step(Event::Synced { full: true }, 0);
        assert_eq!(
            l.step(Event::Stop, 5),
            vec![Action::Abort("replication stopped".into())]
        );
        assert_eq!(l.tick(100_000), vec![]);
        assert_eq!(l.step(Event::Synced { full: false }, 100_001), vec![]);
        assert_eq!(l.phase(), Phase::Stopped);
    }

    proptest! {
        /// Any schedule of events and ticks: a primary that keeps talking (at least every timeout/2)
        /// never times a loading or live link out; the replica is never silent longer than its keepalive
        /// period while loading, nor longer than a second plus a tick while live; a timeout only follows
        /// real silence.
        #[test]
        fn deterministic_schedules(seed in any::<u64>(), timeout in 1u64..5000, talkative in any::<bool>()) {
            let mut x = seed | 1;
            let mut rnd = |n: u64| { x ^= x << 13; x ^= x >> 7; x ^= x << 17; x % n };
            let mut l = Link::new(0, timeout);
            let mut now = 0u64;
            let mut last_sent = 0u64;
            let mut last_heard = 0u64;
            for _ in 0..2000 {
                now += 1 + rnd(20);
                if talkative && now - last_heard >= timeout / 2 {
                    l.step(Event::Heard, now);
                    last_heard = now;
                }
                let ev = match rnd(40) {
                    0 => Some(Event::Synced { full: rnd(2) == 0 }),
                    1 => Some(Event::FlowsLive),
                    2 => Some(Event::Failed("x".into())),
                    _ => None,
                };
                let phase_before = l.phase();
                let mut acts = ev.map(|e| l.step(e, now)).unwrap_or_default();
                if matches!(l.phase(), Phase::Loading | Phase::Live) && phase_before == Phase::Connecting {
                    last_sent = now;
                    last_heard = now;
                }
                acts.extend(l.tick(now));
                for a in &acts {
                    match a {
                        Action::Keepalive | Action::Ack => last_sent = now,
                        Action::Abort(w) if w.contains("timeout") => {
                            prop_assert!(!talkative, "timed out a primary that talks");
                            prop_assert!(now - last_heard > timeout);
                        }
                        _ => {}
                    }
                }
                match l.phase() {
                    Phase::Loading => prop_assert!(now - last_sent <= l.keepalive_ms() + 20),
                    Phase::Live => prop_assert!(now - last_sent <= 1000 + 20),
                    _ => {}
                }
            }
        }
    }
}
