//! Summaries of repeated measurements: median, quartiles, extremes and high percentiles, and
//! ratios against a baseline.

use std::time::Duration;

/// A summary of a set of samples (any unit; durations are summarised in milliseconds).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub count: usize,
    pub min: f64,
    pub p25: f64,
    pub median: f64,
    pub p75: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

/// The `q`-quantile (0..=1) of sorted samples, interpolated linearly between the closest ranks.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    match sorted.len() {
        0 => f64::NAN,
        1 => sorted[0],
        n => {
            let rank = q.clamp(0.0, 1.0) * (n - 1) as f64;
            let low = rank.floor() as usize;
            let high = rank.ceil() as usize;
            let weight = rank - low as f64;
            sorted[low] * (1.0 - weight) + sorted[high] * weight
        }
    }
}

impl Summary {
    /// No samples: every figure NaN (printed as "-").
    pub fn empty() -> Self {
        Self {
            count: 0,
            min: f64::NAN,
            p25: f64::NAN,
            median: f64::NAN,
            p75: f64::NAN,
            p99: f64::NAN,
            max: f64::NAN,
            mean: f64::NAN,
        }
    }

    /// Summarises `samples`; `None` when there are none (or only NaNs).
    pub fn of(samples: &[f64]) -> Option<Self> {
        let mut sorted: Vec<f64> = samples.iter().copied().filter(|v| !v.is_nan()).collect();
        if sorted.is_empty() {
            return None;
        }
        sorted.sort_by(f64::total_cmp);
        let mean = sorted.iter().sum::<f64>() / sorted.len() as f64;
        Some(Self {
            count: sorted.len(),
            min: sorted[0],
            p25: quantile(&sorted, 0.25),
            median: quantile(&sorted, 0.5),
            p75: quantile(&sorted, 0.75),
            p99: quantile(&sorted, 0.99),
            max: sorted[sorted.len() - 1],
            mean,
        })
    }

    /// Summarises durations in milliseconds.
    pub fn of_durations(samples: &[Duration]) -> Option<Self> {
        let ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
        Self::of(&ms)
    }
}

/// `value / baseline`, or NaN when the baseline is zero or missing.
pub fn ratio(value: f64, baseline: f64) -> f64 {
    if baseline == 0.0 || baseline.is_nan() {
        f64::NAN
    } else {
        value / baseline
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quartiles_interpolate_between_ranks() {
        let s = Summary::of(&[4.0, 1.0, 3.0, 2.0, 5.0]).unwrap();
        assert_eq!(s.count, 5);
        assert_eq!((s.min, s.median, s.max), (1.0, 3.0, 5.0));
        assert_eq!((s.p25, s.p75), (2.0, 4.0));
        assert!((s.p99 - 4.96).abs() < 1e-9);
        assert_eq!(s.mean, 3.0);
        let even = Summary::of(&[1.0, 2.0, 3.0, 4.0]).unwrap();
        assert_eq!(even.median, 2.5);
    }

    #[test]
    fn empty_and_single_samples() {
        assert!(Summary::of(&[]).is_none());
        assert!(Summary::of(&[f64::NAN]).is_none());
        let one = Summary::of(&[7.0]).unwrap();
        assert_eq!(
            (one.min, one.median, one.p99, one.max),
            (7.0, 7.0, 7.0, 7.0)
        );
    }

    #[test]
    fn durations_are_in_milliseconds() {
        let s = Summary::of_durations(&[Duration::from_micros(1500), Duration::from_millis(3)])
            .unwrap();
        assert_eq!(s.median, 2.25);
    }

    #[test]
    fn ratios_guard_against_a_zero_baseline() {
        assert_eq!(ratio(3.0, 2.0), 1.5);
        assert!(ratio(1.0, 0.0).is_nan());
        assert!(ratio(1.0, f64::NAN).is_nan());
    }
}
