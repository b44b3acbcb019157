//! Counting: HDR histograms of latency (µs) per command kind, errors by prefix, and per-second intervals.

use hdrhistogram::Histogram;
use serde::Serialize;
use std::collections::BTreeMap;

pub fn histogram() -> Histogram<u64> {
    // 1 µs to 60 s at 3 significant digits.
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds")
}

#[derive(Clone)]
pub struct KindStats {
    pub hist: Histogram<u64>,
    pub errors: BTreeMap<String, u64>,
}

impl Default for KindStats {
    fn default() -> Self {
        KindStats {
            hist: histogram(),
            errors: BTreeMap::new(),
        }
    }
}

impl KindStats {
    pub fn record(&mut self, usec: u64, error: Option<&str>) {
        self.hist.saturating_record(usec.max(1));
        if let Some(e) = error {
            *self.errors.entry(e.to_string()).or_default() += 1;
        }
    }

    pub fn merge(&mut self, o: &KindStats) {
        self.hist.add(&o.hist).expect("same bounds");
        for (k, v) in &o.errors {
            *self.errors.entry(k.clone()).or_default() += v;
        }
    }

    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// What one thread saw in one second of the run.
#[derive(Clone)]
pub struct Interval {
    pub second: u64,
    pub ops: u64,
    pub errors: u64,
    pub hist: Histogram<u64>,
}

/// A summary line of the report (per kind, per second, and in total).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Summary {
    pub count: u64,
    pub ops_per_sec: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub errors: u64,
}

impl Summary {
    pub fn of(h: &Histogram<u64>, errors: u64, seconds: f64) -> Summary {
        let ms = |q: f64| {
            if h.is_empty() {
                0.0
            } else {
                h.value_at_quantile(q) as f64 / 1000.0
            }
        };
        Summary {
            count: h.len(),
            ops_per_sec: if seconds > 0.0 {
                h.len() as f64 / seconds
            } else {
                0.0
            },
            p50_ms: ms(0.5),
            p90_ms: ms(0.9),
            p99_ms: ms(0.99),
            p999_ms: ms(0.999),
            max_ms: if h.is_empty() {
                0.0
            } else {
                h.max() as f64 / 1000.0
            },
            errors,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_arithmetic() {
        let mut k = KindStats::default();
        for us in 1..=1000 {
            k.record(us, None);
        }
        k.record(5000, Some("ERR"));
        let s = Summary::of(&k.hist, k.error_count(), 2.0);
        assert_eq!(s.count, 1001);
        assert!((s.ops_per_sec - 500.5).abs() < 1e-9);
        assert!((s.p50_ms - 0.5).abs() < 0.002, "{s:?}");
        assert!((s.p99_ms - 0.991).abs() < 0.002, "{s:?}");
        assert!((s.max_ms - 5.0).abs() < 0.01);
        assert_eq!(s.errors, 1);
        let mut m = KindStats::default();
        m.merge(&k);
        m.merge(&k);
        assert_eq!((m.hist.len(), m.errors["ERR"]), (2002, 2));
    }
}
