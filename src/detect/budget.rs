//! False-alarm budgets: from `false_alarms: 1/30d` to the level one test is held to.
//!
//! **The method: Boole's inequality over time.** A series enters `drifted` only at an
//! evaluation whose test gives a p-value at or below the level. Without drift every p-value the
//! detectors return is valid, `P(p <= a) <= a`, whatever the window sizes, the overlap of
//! successive windows and the arrival rate (the KS and CvM statistics depend only on ranks).
//! A series is tested at most once per evaluation interval, and not at all when no sample
//! arrived since its last test, so over a period `T` it is tested at most `T / interval`
//! times, and the expected number of false entries into `drifted` is at most
//! `(T / interval) * level`. The level
//!
//! ```text
//! level = events * interval / T                  (scope: series)
//! level = events * interval / T / series          (scope: rule, the series of this evaluation)
//! ```
//!
//! therefore keeps the expected false `drifted` events within `events` per `T` by the union
//! bound alone: no simulation, no assumption on the dependence between overlapping windows.
//! `for:` and `keep_firing_for:` can only lower the count.
//!
//! It is conservative by the mean size of a clump of exceedances (overlapping windows give
//! runs of small p-values that enter `drifted` once). The price in power is small: a KS
//! test's critical distance grows as `sqrt(ln(2 / level))`, so a level ten times smaller moves
//! it by a few per cent. `bench/calibration` measures both, the false alarms per series-day
//! and the detection delay, over simulated streams.
//!
//! Pure: no clock, no I/O.

use std::fmt;
use std::time::Duration;

use super::fdr::{self, FdrMethod};

/// `false_alarms: EVENTS/PERIOD`: at most `events` false `drifted` events per `period`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FalseAlarms {
    pub events: f64,
    pub period: Duration,
}

impl FalseAlarms {
    /// The default when a rule sets neither `alpha` nor `false_alarms`: one per 30 days.
    pub const DEFAULT: FalseAlarms = FalseAlarms {
        events: 1.0,
        period: Duration::from_secs(30 * 86_400),
    };

    /// Expected false `drifted` events per day this budget allows.
    pub fn per_day(&self) -> f64 {
        self.events * 86_400.0 / self.period.as_secs_f64()
    }
}

impl fmt::Display for FalseAlarms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.period.as_secs();
        let period = if secs.is_multiple_of(86_400) {
            format!("{}d", secs / 86_400)
        } else if secs.is_multiple_of(3_600) {
            format!("{}h", secs / 3_600)
        } else if secs.is_multiple_of(60) {
            format!("{}m", secs / 60)
        } else {
            format!("{}s", self.period.as_secs_f64())
        };
        write!(f, "{}/{period}", self.events)
    }
}

/// Which series share one budget (`false_alarms_scope`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scope {
    /// Each series may false-alarm as often as the budget says.
    #[default]
    Series,
    /// The rule's series together may false-alarm as often as the budget says.
    Rule,
}

impl Scope {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "series" => Some(Scope::Series),
            "rule" => Some(Scope::Rule),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Series => "series",
            Scope::Rule => "rule",
        }
    }
}

/// What one test's p-value is compared with.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Level {
    /// `alpha:` as written: no calibration.
    Alpha(f64),
    /// `false_alarms:` (the default): the level that keeps false `drifted` events within it.
    Budget {
        false_alarms: FalseAlarms,
        scope: Scope,
    },
}

impl Default for Level {
    fn default() -> Self {
        Level::Budget {
            false_alarms: FalseAlarms::DEFAULT,
            scope: Scope::Series,
        }
    }
}

impl Level {
    /// The level of one series' test at one evaluation of a group evaluated every `interval`,
    /// `series` being the rule's series tested at this evaluation (only scope `rule` uses it).
    pub fn per_test(&self, interval: Duration, series: usize) -> f64 {
        match *self {
            Level::Alpha(a) => a,
            Level::Budget {
                false_alarms,
                scope,
            } => {
                let tests = false_alarms.period.as_secs_f64() / interval.as_secs_f64().max(1e-3);
                let share = match scope {
                    Scope::Series => 1.0,
                    Scope::Rule => series.max(1) as f64,
                };
                (false_alarms.events / tests / share).min(1.0)
            }
        }
    }
}

/// `correction:` across the series of a rule tested at one evaluation (and `eval
/// --correction` across a dataset's columns).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Correction {
    #[default]
    None,
    Bonferroni,
    /// Benjamini-Hochberg at the level: under no drift at all, the chance that any series is
    /// flagged is at most the level (Simes), so it also keeps a rule-wide budget.
    Bh,
}

impl Correction {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "none" => Some(Correction::None),
            "bonferroni" => Some(Correction::Bonferroni),
            "bh" => Some(Correction::Bh),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Correction::None => "none",
            Correction::Bonferroni => "bonferroni",
            Correction::Bh => "bh",
        }
    }
}

/// Which of `p_values` are evidence of drift at `level` after `correction`. A NaN p-value is
/// never evidence and takes no part in a correction.
pub fn evidence(p_values: &[f64], level: f64, correction: Correction) -> Vec<bool> {
    let valid: Vec<usize> = (0..p_values.len())
        .filter(|&i| (0.0..=1.0).contains(&p_values[i]))
        .collect();
    let ps: Vec<f64> = valid.iter().map(|&i| p_values[i]).collect();
    let adjusted = match correction {
        Correction::None => Ok(ps),
        Correction::Bonferroni => fdr::bonferroni(&ps),
        Correction::Bh => fdr::false_discovery_control(&ps, FdrMethod::Bh),
    };
    let mut out = vec![false; p_values.len()];
    // The p-values were checked above, so adjusting cannot fail.
    if let Ok(adjusted) = adjusted {
        for (&i, p) in valid.iter().zip(adjusted) {
            out[i] = p <= level;
        }
    }
    out
}

/// The most false `drifted` events per series-day that testing at `level` every `interval`
/// can give (the union bound; overlapping windows give fewer).
pub fn false_alarms_per_day(level: f64, interval: Duration) -> f64 {
    level * 86_400.0 / interval.as_secs_f64().max(1e-3)
}

/// The two-sided KS distance a test of `n` against `m` values needs to reach `level`
/// (the asymptotic Kolmogorov tail `2 exp(-2 t^2)`, close to exact in the tail).
pub fn ks_critical_distance(n: usize, m: usize, level: f64) -> f64 {
    if n == 0 || m == 0 || level.is_nan() || level <= 0.0 {
        return f64::NAN;
    }
    let (n, m) = (n as f64, m as f64);
    ((2.0 / level.min(1.0)).ln() / 2.0 * (n + m) / (n * m)).sqrt()
}

/// The standard normal CDF.
pub fn normal_cdf(x: f64) -> f64 {
    0.5 * super::cephes::erfc(-x / std::f64::consts::SQRT_2)
}

/// The mean shift, in standard deviations, at which two normal distributions of equal
/// variance are at KS distance `d` (`d = 2 Phi(delta / 2) - 1`).
pub fn normal_shift_for_distance(d: f64) -> f64 {
    if !(0.0..1.0).contains(&d) {
        return f64::NAN;
    }
    // Bisection on a monotone function: 200 halvings of [0, 40] are far below f64 spacing.
    let (mut lo, mut hi) = (0.0f64, 40.0f64);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if 2.0 * normal_cdf(mid / 2.0) - 1.0 < d {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_budget_at_15s_is_one_test_in_172800() {
        let level = Level::default().per_test(Duration::from_secs(15), 7);
        assert!((level - 15.0 / (30.0 * 86_400.0)).abs() < 1e-18, "{level}");
        // Scope rule divides by the series tested.
        let rule = Level::Budget {
            false_alarms: FalseAlarms::DEFAULT,
            scope: Scope::Rule,
        };
        assert!((rule.per_test(Duration::from_secs(15), 4) - level / 4.0).abs() < 1e-18);
        assert_eq!(
            Level::Alpha(0.05).per_test(Duration::from_secs(15), 9),
            0.05
        );
        // The union bound brings it back to the budget.
        let per_day = false_alarms_per_day(level, Duration::from_secs(15));
        assert!((per_day - 1.0 / 30.0).abs() < 1e-12, "{per_day}");
    }

    #[test]
    fn a_budget_above_one_per_test_is_capped() {
        let lax = Level::Budget {
            false_alarms: FalseAlarms {
                events: 1000.0,
                period: Duration::from_secs(1),
            },
            scope: Scope::Series,
        };
        assert_eq!(lax.per_test(Duration::from_secs(15), 1), 1.0);
    }

    #[test]
    fn evidence_with_each_correction() {
        let ps = [0.001, 0.02, 0.04, f64::NAN, 0.5];
        assert_eq!(
            evidence(&ps, 0.05, Correction::None),
            [true, true, true, false, false]
        );
        // Four valid p-values: Bonferroni multiplies by 4.
        assert_eq!(
            evidence(&ps, 0.05, Correction::Bonferroni),
            [true, false, false, false, false]
        );
        // BH: 0.001*4/1, 0.02*4/2 = 0.04, 0.04*4/3 = 0.053 -> the first two.
        assert_eq!(
            evidence(&ps, 0.05, Correction::Bh),
            [true, true, false, false, false]
        );
        assert!(evidence(&[], 0.05, Correction::Bh).is_empty());
    }

    #[test]
    fn budgets_print_as_written() {
        assert_eq!(FalseAlarms::DEFAULT.to_string(), "1/30d");
        let b = FalseAlarms {
            events: 2.0,
            period: Duration::from_secs(3_600),
        };
        assert_eq!(b.to_string(), "2/1h");
        assert!((b.per_day() - 48.0).abs() < 1e-12);
    }

    #[test]
    fn ks_critical_distance_and_normal_shift() {
        // sqrt(ln(2/0.05)/2 * 2/100) = 0.1921 for 100 against 100 at 0.05.
        let d = ks_critical_distance(100, 100, 0.05);
        assert!((d - 0.192_064).abs() < 1e-5, "{d}");
        assert!(ks_critical_distance(0, 5, 0.05).is_nan());
        // Phi(0.25) - Phi(-0.25) = 0.19741: a 0.5 sd shift.
        let s = normal_shift_for_distance(0.197_413_3);
        assert!((s - 0.5).abs() < 1e-5, "{s}");
        assert!((normal_cdf(1.959_963_984_540_054) - 0.975).abs() < 1e-12);
    }
}
