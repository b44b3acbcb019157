//! Key patterns: which key number each request uses.

use rand::rngs::SmallRng;
use rand::Rng;
use rand_distr::{Distribution, Normal};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum KeyPattern {
    Random,
    Sequential,
    Gaussian,
}

impl KeyPattern {
    pub fn parse(s: &str) -> Result<Self, String> {
        match s.trim() {
            "R" | "r" => Ok(KeyPattern::Random),
            "S" | "s" => Ok(KeyPattern::Sequential),
            "G" | "g" => Ok(KeyPattern::Gaussian),
            other => Err(format!("unknown key pattern '{other}' (R, S or G)")),
        }
    }
}

/// Produces key numbers in [min, max]. Sequential keys are split among connections: connection i of n
/// walks its own stride, so together they cover the range without repeating while it lasts.
pub struct KeyGen {
    min: u64,
    span: u64,
    next_seq: u64,
    stride: u64,
    normal: Normal<f64>,
}

impl KeyGen {
    pub fn new(min: u64, max: u64, conn: usize, conns: usize) -> Self {
        let span = max - min + 1;
        let mid = min as f64 + span as f64 / 2.0;
        KeyGen {
            min,
            span,
            next_seq: conn as u64,
            stride: conns as u64,
            normal: Normal::new(mid, (span as f64 / 6.0).max(1.0)).expect("valid normal"),
        }
    }

    pub fn next(&mut self, p: KeyPattern, rng: &mut SmallRng) -> u64 {
        match p {
            KeyPattern::Random => self.min + rng.random_range(0..self.span),
            KeyPattern::Sequential => {
                let k = self.min + self.next_seq % self.span;
                self.next_seq += self.stride;
                k
            }
            KeyPattern::Gaussian => {
                let v = self.normal.sample(rng).round();
                (v.max(self.min as f64) as u64).min(self.min + self.span - 1)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn patterns_stay_in_range_and_sequential_covers_it() {
        let mut rng = SmallRng::seed_from_u64(1);
        let mut seen = std::collections::HashSet::new();
        for conn in 0..3 {
            let mut g = KeyGen::new(10, 39, conn, 3);
            for _ in 0..10 {
                seen.insert(g.next(KeyPattern::Sequential, &mut rng));
            }
        }
        assert_eq!(seen, (10..=39).collect());
        let mut g = KeyGen::new(100, 199, 0, 1);
        let mut sum = 0.0;
        for _ in 0..10_000 {
            let r = g.next(KeyPattern::Random, &mut rng);
            let n = g.next(KeyPattern::Gaussian, &mut rng);
            assert!((100..=199).contains(&r) && (100..=199).contains(&n));
            sum += n as f64;
        }
        assert!(
            (sum / 10_000.0 - 150.0).abs() < 2.0,
            "gaussian centred on the range"
        );
    }
}
