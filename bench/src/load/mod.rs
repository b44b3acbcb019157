//! The load generator: `threads` threads on the project's io_uring runtime, each with `clients`
//! connections; a live line every second; a report at the end.

pub mod client;
pub mod keys;
pub mod options;
pub mod report;
pub mod resp;
pub mod stats;

use client::{Conn, ThreadStats};
use report::{Report, Second};
use stats::{histogram, Interval, KindStats, Summary};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

enum Event {
    Interval(Interval),
    Done(Result<Vec<KindStats>, String>),
}

pub fn run(args: options::LoadArgs) -> Result<Report, String> {
    run_plan(args.plan()?)
}

/// Runs a validated plan (the resync scenarios keep `plan.stop` to end it).
pub fn run_plan(plan: options::Plan) -> Result<Report, String> {
    let plan = Arc::new(plan);
    let (tx, rx) = mpsc::channel::<Event>();
    let start = Instant::now();
    let threads = plan.args.threads;
    let mut handles = Vec::new();
    for t in 0..threads {
        let (plan, tx) = (plan.clone(), tx.clone());
        let h = tandem_server::runtime::spawn_shard_thread(format!("bench-{t}"), None, move || {
            thread_main(t, plan, tx, start)
        })
        .map_err(|e| format!("thread: {e}"))?;
        handles.push(h);
    }
    drop(tx);
    let mut seconds: BTreeMap<u64, (usize, Interval)> = BTreeMap::new();
    let mut per_second = Vec::new();
    let mut finals = Vec::new();
    let mut failure = None;
    for ev in rx {
        match ev {
            Event::Interval(iv) => {
                let entry = seconds.entry(iv.second).or_insert_with(|| {
                    (
                        0,
                        Interval {
                            second: iv.second,
                            ops: 0,
                            errors: 0,
                            hist: histogram(),
                        },
                    )
                });
                entry.0 += 1;
                entry.1.ops += iv.ops;
                entry.1.errors += iv.errors;
                entry.1.hist.add(&iv.hist).expect("same bounds");
                if entry.0 == threads {
                    let (_, iv) = seconds.remove(&iv.second).expect("present");
                    let s = Summary::of(&iv.hist, iv.errors, 1.0);
                    let sec = Second {
                        second: iv.second + 1,
                        ops: iv.ops,
                        errors: iv.errors,
                        p50_ms: s.p50_ms,
                        p99_ms: s.p99_ms,
                        p999_ms: s.p999_ms,
                        max_ms: s.max_ms,
                    };
                    if !plan.args.quiet {
                        eprintln!("[{:>4}s] {:>10} ops/s  p99 {:>7.3} ms  p99.9 {:>7.3} ms  max {:>8.3} ms  errors {}", sec.second, sec.ops, sec.p99_ms, sec.p999_ms, sec.max_ms, sec.errors);
                    }
                    per_second.push(sec);
                }
            }
            Event::Done(Ok(k)) => finals.push(k),
            Event::Done(Err(e)) => failure = Some(e),
        }
    }
    for h in handles {
        let _ = h.join();
    }
    if let Some(e) = failure {
        return Err(e);
    }
    let elapsed = start.elapsed().as_secs_f64();
    let mut merged: Vec<KindStats> = plan.kinds.iter().map(|_| KindStats::default()).collect();
    for f in &finals {
        for (m, k) in merged.iter_mut().zip(f) {
            m.merge(k);
        }
    }
    let mut total = KindStats::default();
    let mut per_command = BTreeMap::new();
    for (kind, m) in plan.kinds.iter().zip(&merged) {
        total.merge(m);
        per_command.insert(
            kind.name.clone(),
            Summary::of(&m.hist, m.error_count(), elapsed),
        );
    }
    let report = Report {
        options: plan.args.clone(),
        seconds: elapsed,
        total: Summary::of(&total.hist, total.error_count(), elapsed),
        per_command,
        errors_by_prefix: total.errors.clone(),
        per_second,
    };
    if !plan.silent {
        report.print();
    }
    if let Some(path) = &plan.args.json_out {
        let text = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
        std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(report)
}

async fn thread_main(t: usize, plan: Arc<options::Plan>, tx: mpsc::Sender<Event>, start: Instant) {
    let stats = Rc::new(RefCell::new(ThreadStats::new(plan.kinds.len())));
    let remaining = Rc::new(std::cell::Cell::new(plan.args.clients));
    let failure: Rc<RefCell<Option<String>>> = Rc::new(RefCell::new(None));
    for c in 0..plan.args.clients {
        let conn = Conn {
            plan: plan.clone(),
            stats: stats.clone(),
            index: t * plan.args.clients + c,
            start,
        };
        let (remaining, failure) = (remaining.clone(), failure.clone());
        compio::runtime::spawn(async move {
            if let Err(e) = conn.run().await {
                failure.borrow_mut().get_or_insert(e);
            }
            remaining.set(remaining.get() - 1);
        })
        .detach();
    }
    // The ticker: one interval per wall-clock second since the common start.
    let mut second = 0u64;
    loop {
        let due = start + Duration::from_secs(second + 1);
        while remaining.get() > 0 && Instant::now() < due {
            compio::time::sleep((due - Instant::now()).min(Duration::from_millis(50))).await;
        }
        let iv = {
            let mut st = stats.borrow_mut();
            let iv = std::mem::replace(
                &mut st.interval,
                Interval {
                    second: second + 1,
                    ops: 0,
                    errors: 0,
                    hist: histogram(),
                },
            );
            Interval { second, ..iv }
        };
        let _ = tx.send(Event::Interval(iv));
        second += 1;
        if remaining.get() == 0 {
            break;
        }
    }
    let result = match failure.borrow_mut().take() {
        Some(e) => Err(e),
        None => Ok(stats.borrow().kinds.clone()),
    };
    let _ = tx.send(Event::Done(result));
}
