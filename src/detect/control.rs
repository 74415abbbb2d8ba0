//! Control charts for scalar series (accuracy, latency): EWMA control limits and CUSUM, each
//! learned from a baseline and set for a target in-control average run length (ARL, in
//! samples), the way statistical process control sets them.
//!
//! The ARLs are computed by the Markov-chain approximation (Brook and Evans 1972 for CUSUM,
//! Lucas and Saccucci 1990 for EWMA): the chart statistic's range inside the limits is cut
//! into small intervals, the transition probabilities between them come from the normal CDF,
//! and the ARL from a start state solves `(I - P) arl = 1`. The limit for a target ARL is
//! found by bisection. Values are standardised by the baseline's mean and standard deviation.
//!
//! Pure: no clock, no I/O.

use super::budget::normal_cdf;

/// Which way a change is a problem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Side {
    /// Only a fall (accuracy).
    Below,
    /// Only a rise (latency).
    Above,
    #[default]
    Both,
}

impl Side {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "below" => Some(Side::Below),
            "above" => Some(Side::Above),
            "both" => Some(Side::Both),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Side::Below => "below",
            Side::Above => "above",
            Side::Both => "both",
        }
    }
}

/// Running mean and variance (Welford), for a baseline.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Welford {
    pub n: u64,
    pub mean: f64,
    pub m2: f64,
}

impl Welford {
    pub fn push(&mut self, x: f64) {
        self.n = self.n.saturating_add(1);
        let d = x - self.mean;
        self.mean += d / self.n as f64;
        self.m2 += d * (x - self.mean);
    }

    /// The sample standard deviation (n - 1), 0 below two values.
    pub fn sd(&self) -> f64 {
        if self.n < 2 {
            0.0
        } else {
            (self.m2 / (self.n - 1) as f64).max(0.0).sqrt()
        }
    }
}

/// Where a chart's in-control mean and standard deviation come from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Baseline {
    /// The first N samples of each series (no verdict until then).
    Learn(u64),
    /// Given in the rule (`target:`, `sd:`).
    Given { mean: f64, sd: f64 },
}

/// `ema` with `control_limits:`: an EWMA chart instead of fixed bounds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ControlLimits {
    /// Samples that make the baseline; the EWMA restarts at their mean after them.
    pub baseline: u64,
    pub side: Side,
    /// The in-control average run length, in samples.
    pub run_length: f64,
    /// The limit, in asymptotic standard deviations of the EWMA ([`ewma_limit`]).
    pub l: f64,
}

/// `detector: cusum`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CusumSpec {
    pub baseline: Baseline,
    /// Slack, in standard deviations: a shift of about `2k` is found fastest.
    pub k: f64,
    pub side: Side,
    /// The in-control average run length, in samples.
    pub run_length: f64,
    /// The decision interval, in standard deviations ([`cusum_limit`]).
    pub h: f64,
}

/// Intervals of the Markov chains: fine enough that the ARL moves by well under 1 % when
/// doubled (checked in the tests).
const STATES: usize = 151;

/// `x` solving `a x = 1` (Gaussian elimination with partial pivoting on a dense copy);
/// `None` when singular.
fn solve_ones(mut a: Vec<f64>, n: usize) -> Option<Vec<f64>> {
    let mut b = vec![1.0; n];
    for col in 0..n {
        let pivot =
            (col..n).max_by(|&i, &j| a[i * n + col].abs().total_cmp(&a[j * n + col].abs()))?;
        if a[pivot * n + col].abs() < 1e-300 {
            return None;
        }
        if pivot != col {
            for k in 0..n {
                a.swap(pivot * n + k, col * n + k);
            }
            b.swap(pivot, col);
        }
        let d = a[col * n + col];
        for row in col + 1..n {
            let f = a[row * n + col] / d;
            if f != 0.0 {
                for k in col..n {
                    a[row * n + k] -= f * a[col * n + k];
                }
                b[row] -= f * b[col];
            }
        }
    }
    for row in (0..n).rev() {
        let mut s = b[row];
        for k in row + 1..n {
            s -= a[row * n + k] * b[k];
        }
        b[row] = s / a[row * n + row];
    }
    Some(b)
}

/// In-control ARL (samples) of an EWMA chart with smoothing `lambda` on standard normal
/// values, started at 0, signalling when the EWMA passes `l` times its asymptotic standard
/// deviation `sqrt(lambda / (2 - lambda))` on `side`.
pub fn ewma_arl(lambda: f64, l: f64, side: Side) -> f64 {
    let sz = (lambda / (2.0 - lambda)).sqrt();
    let h = l * sz;
    // The chart's range: between the limits, or from a limit to far beyond the other side
    // (eight standard deviations) where the EWMA never goes in practice.
    let (lo, hi) = match side {
        Side::Both => (-h, h),
        Side::Below => (-h, 8.0 * sz.max(h)),
        Side::Above => (-8.0 * sz.max(h), h),
    };
    let n = STATES;
    let w = (hi - lo) / n as f64;
    let centre = |i: usize| lo + (i as f64 + 0.5) * w;
    let mut a = vec![0.0; n * n];
    for i in 0..n {
        let from = (1.0 - lambda) * centre(i);
        for j in 0..n {
            let mut upper = (centre(j) + w / 2.0 - from) / lambda;
            let mut lower = (centre(j) - w / 2.0 - from) / lambda;
            // A one-sided chart keeps what would pass its far end in the last interval.
            if side == Side::Below && j == n - 1 {
                upper = f64::INFINITY;
            }
            if side == Side::Above && j == 0 {
                lower = f64::NEG_INFINITY;
            }
            let p = normal_cdf(upper) - normal_cdf(lower);
            a[i * n + j] = if i == j { 1.0 - p } else { -p };
        }
    }
    let start = ((0.0 - lo) / w).floor().clamp(0.0, (n - 1) as f64) as usize;
    solve_ones(a, n).map_or(f64::INFINITY, |arl| arl[start])
}

/// `L` (in asymptotic standard deviations of the EWMA) giving an in-control ARL of
/// `run_length` samples.
pub fn ewma_limit(lambda: f64, run_length: f64, side: Side) -> f64 {
    bisect(|l| ewma_arl(lambda, l, side), run_length, 0.1, 12.0)
}

/// In-control ARL (samples) of a CUSUM with slack `k` and decision interval `h` (both in
/// standard deviations) on standard normal values, started at 0. Two-sided: the two
/// one-sided charts combined as `1 / (1 / ARL+ + 1 / ARL-)` (Van Dobben de Bruyn).
pub fn cusum_arl(k: f64, h: f64, side: Side) -> f64 {
    let one = one_sided_cusum_arl(k, h);
    match side {
        Side::Both => one / 2.0,
        Side::Below | Side::Above => one,
    }
}

/// Brook and Evans: state 0 is `[0, w/2)`, state `i` is `[(i - 1/2) w, (i + 1/2) w)`,
/// `w = 2h / (2n - 1)`.
fn one_sided_cusum_arl(k: f64, h: f64) -> f64 {
    let n = STATES;
    let w = 2.0 * h / (2 * n - 1) as f64;
    let mut a = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            let p = if j == 0 {
                normal_cdf(-(i as f64) * w + k + w / 2.0)
            } else {
                let d = (j as f64 - i as f64) * w + k;
                normal_cdf(d + w / 2.0) - normal_cdf(d - w / 2.0)
            };
            a[i * n + j] = if i == j { 1.0 - p } else { -p };
        }
    }
    solve_ones(a, n).map_or(f64::INFINITY, |arl| arl[0])
}

/// `h` giving an in-control ARL of `run_length` samples.
pub fn cusum_limit(k: f64, run_length: f64, side: Side) -> f64 {
    bisect(|h| cusum_arl(k, h, side), run_length, 0.05, 40.0)
}

/// The `x` in `[lo, hi]` where the increasing `arl(x)` reaches `target` (on a log scale).
fn bisect(arl: impl Fn(f64) -> f64, target: f64, mut lo: f64, mut hi: f64) -> f64 {
    for _ in 0..60 {
        let mid = 0.5 * (lo + hi);
        if arl(mid) < target {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

/// One CUSUM step on a standardised value `z`: the upper and lower sums.
pub fn cusum_step(hi: f64, lo: f64, z: f64, k: f64) -> (f64, f64) {
    ((hi + z - k).max(0.0), (lo - z - k).max(0.0))
}

/// The CUSUM statistic for `side`.
pub fn cusum_statistic(hi: f64, lo: f64, side: Side) -> f64 {
    match side {
        Side::Above => hi,
        Side::Below => lo,
        Side::Both => hi.max(lo),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn welford_matches_the_two_pass_formulas() {
        let xs = [0.9, 0.85, 0.95, 0.88, 0.91];
        let mut w = Welford::default();
        xs.iter().for_each(|&x| w.push(x));
        let mean = xs.iter().sum::<f64>() / 5.0;
        let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / 4.0;
        assert!((w.mean - mean).abs() < 1e-15);
        assert!((w.sd() - var.sqrt()).abs() < 1e-15);
    }

    #[test]
    fn cusum_arl_matches_the_published_tables() {
        // Montgomery, Introduction to SQC, table 9.3 (one-sided... two-sided k = 0.5):
        // h = 4 gives ARL0 = 168, h = 5 gives 465 (two-sided, as 1/(1/ARL+ + 1/ARL-)).
        let a4 = cusum_arl(0.5, 4.0, Side::Both);
        let a5 = cusum_arl(0.5, 5.0, Side::Both);
        assert!((a4 - 168.0).abs() / 168.0 < 0.02, "{a4}");
        assert!((a5 - 465.0).abs() / 465.0 < 0.02, "{a5}");
        let h = cusum_limit(0.5, 465.0, Side::Both);
        assert!((h - 5.0).abs() < 0.02, "{h}");
    }

    #[test]
    fn ewma_arl_matches_lucas_and_saccucci() {
        // Lucas and Saccucci (1990), table 3: lambda = 0.1, L = 2.814 gives ARL0 = 500;
        // lambda = 0.2, L = 2.962 gives 500 (two-sided).
        for (lambda, l) in [(0.1, 2.814), (0.2, 2.962)] {
            let arl = ewma_arl(lambda, l, Side::Both);
            assert!((arl - 500.0).abs() / 500.0 < 0.02, "lambda {lambda}: {arl}");
        }
        let l = ewma_limit(0.2, 500.0, Side::Both);
        assert!((l - 2.962).abs() < 0.01, "{l}");
        // One side only signals less often at the same L.
        assert!(ewma_arl(0.2, 2.962, Side::Below) > 900.0);
    }

    #[test]
    fn the_chains_are_fine_enough() {
        // The limit for a long run length stays put within the chain's resolution.
        let l = ewma_limit(0.2, 100_000.0, Side::Below);
        assert!(l > 3.5 && l < 5.0, "{l}");
        let h = cusum_limit(0.5, 100_000.0, Side::Both);
        assert!(h > 9.0 && h < 12.0, "{h}");
    }

    #[test]
    fn cusum_steps() {
        let (hi, lo) = cusum_step(0.0, 0.0, 2.0, 0.5);
        assert_eq!((hi, lo), (1.5, 0.0));
        let (hi, lo) = cusum_step(hi, lo, -3.0, 0.5);
        assert_eq!((hi, lo), (0.0, 2.5));
        assert_eq!(cusum_statistic(1.0, 2.5, Side::Both), 2.5);
        assert_eq!(cusum_statistic(1.0, 2.5, Side::Above), 1.0);
    }
}
