//! Log2 latency histograms as the kernel programs keep them: bucket `i` counts values in
//! `[2^i, 2^(i+1))` nanoseconds.
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LogHistogram(pub Vec<u64>);

impl LogHistogram {
    pub fn count(&self) -> u64 {
        self.0.iter().sum()
    }

    pub fn add(&mut self, other: &LogHistogram) {
        if self.0.len() < other.0.len() {
            self.0.resize(other.0.len(), 0);
        }
        for (a, b) in self.0.iter_mut().zip(&other.0) {
            *a += b;
        }
    }

    /// The value at quantile `q` (0..=1) in nanoseconds, interpolated linearly inside its
    /// bucket; None when empty. Resolution is a factor of two: reports say so.
    pub fn quantile_ns(&self, q: f64) -> Option<f64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = (q.clamp(0.0, 1.0) * total as f64).max(1.0);
        let mut seen = 0.0;
        for (i, &n) in self.0.iter().enumerate() {
            if n == 0 {
                continue;
            }
            let next = seen + n as f64;
            if next >= rank {
                let low = if i == 0 { 0.0 } else { (1u64 << i) as f64 };
                let high = (1u64 << (i + 1)) as f64;
                return Some(low + (high - low) * ((rank - seen) / n as f64));
            }
            seen = next;
        }
        None
    }

    /// Upper bound of the highest non-empty bucket.
    pub fn max_ns(&self) -> Option<f64> {
        self.0
            .iter()
            .rposition(|&n| n > 0)
            .map(|i| (1u64 << (i + 1)) as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_fall_in_the_right_bucket() {
        // 90 values in [1024, 2048), 10 in [1 Mi, 2 Mi).
        let mut h = vec![0u64; 36];
        h[10] = 90;
        h[20] = 10;
        let h = LogHistogram(h);
        let p50 = h.quantile_ns(0.5).expect("non-empty");
        assert!((1024.0..2048.0).contains(&p50), "{p50}");
        let p99 = h.quantile_ns(0.99).expect("non-empty");
        assert!((1048576.0..2097152.0).contains(&p99), "{p99}");
        assert_eq!(h.max_ns(), Some(2097152.0));
    }

    #[test]
    fn empty_and_merge() {
        let mut a = LogHistogram(vec![0; 4]);
        assert_eq!(a.quantile_ns(0.5), None);
        a.add(&LogHistogram(vec![0, 2, 0, 0, 1]));
        assert_eq!(a.count(), 3);
        assert_eq!(a.0.len(), 5);
    }
}
