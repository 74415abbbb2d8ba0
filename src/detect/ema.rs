//! Exponential moving average and its verdict against a bound.

use super::Verdict;

#[derive(Debug, Clone, PartialEq)]
pub struct EmaSpec {
    /// ema_0 = x_0; ema_t = s*x_t + (1-s)*ema_{t-1}; s in (0, 1].
    pub smoothing: f64,
    pub bound: EmaBound,
    /// Optional warning band on the same side as `bound`.
    pub warning: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum EmaBound {
    /// An EWMA chart: limits learned from a baseline (decided by the engine, which holds it).
    Control(super::control::ControlLimits),
    /// Drifted when the EMA falls below this (accuracy).
    Below(f64),
    /// Drifted when the EMA rises above this (latency).
    Above(f64),
}

/// One EMA step: `ema_0 = x_0`, `ema_t = s*x_t + (1-s)*ema_{t-1}`, written exactly so (no
/// fused multiply-add, not `prev + s*(x-prev)`), which is what the reference vectors hold.
pub fn step(prev: Option<f64>, x: f64, smoothing: f64) -> f64 {
    match prev {
        None => x,
        // Clamped between the previous EMA and x: rounding must never carry the EMA past
        // both (a constant 0.8 at s=0.3 would otherwise give 0.7999999999999999 and trip
        // `below: 0.8`). Bit-exact with every reference vector.
        Some(p) => {
            let e = smoothing * x + (1.0 - smoothing) * p;
            e.clamp(p.min(x), p.max(x))
        }
    }
}

/// EMA over a whole slice, one value per step.
pub fn series(values: &[f64], smoothing: f64) -> Vec<f64> {
    let mut prev = None;
    values
        .iter()
        .map(|&x| {
            let e = step(prev, x, smoothing);
            prev = Some(e);
            e
        })
        .collect()
}

/// Drifted beyond the bound, warning inside the optional warning band, else stable.
/// The bound is strict: an EMA exactly at `below`/`above` is not drifted.
pub fn verdict(ema: f64, spec: &EmaSpec) -> Verdict {
    match spec.bound {
        // Needs the baseline: see `control_verdict`.
        EmaBound::Control(_) => Verdict::Stable,
        EmaBound::Below(b) => {
            if ema < b {
                Verdict::Drifted
            } else if spec.warning.is_some_and(|w| ema < w) {
                Verdict::Warning
            } else {
                Verdict::Stable
            }
        }
        EmaBound::Above(b) => {
            if ema > b {
                Verdict::Drifted
            } else if spec.warning.is_some_and(|w| ema > w) {
                Verdict::Warning
            } else {
                Verdict::Stable
            }
        }
    }
}

/// The EWMA chart's statistic (the EMA's distance from the baseline mean in asymptotic EWMA
/// standard deviations) and verdict; `None` while the baseline is short or flat.
pub fn control_verdict(
    ema: f64,
    smoothing: f64,
    baseline: &super::control::Welford,
    limits: &super::control::ControlLimits,
) -> Option<(f64, Verdict)> {
    use super::control::Side;
    let sd = baseline.sd();
    if baseline.n < limits.baseline || sd.is_nan() || sd <= 0.0 {
        return None;
    }
    let z = (ema - baseline.mean) / (sd * (smoothing / (2.0 - smoothing)).sqrt());
    let out = match limits.side {
        Side::Below => -z > limits.l,
        Side::Above => z > limits.l,
        Side::Both => z.abs() > limits.l,
    };
    Some((
        z,
        if out {
            Verdict::Drifted
        } else {
            Verdict::Stable
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ema_of_a_constant_stream_is_that_constant() {
        for (x, s) in [(0.8, 0.3), (0.1, 0.3), (0.85, 0.2), (0.9, 0.2), (0.1, 0.2)] {
            let e = series(&[x; 20], s);
            assert!(
                e.iter().all(|&v| v == x),
                "constant {x} at smoothing {s}: {e:?}"
            );
        }
    }

    #[test]
    fn bands() {
        let spec = EmaSpec {
            smoothing: 0.2,
            bound: EmaBound::Below(0.85),
            warning: Some(0.9),
        };
        assert_eq!(verdict(0.95, &spec), Verdict::Stable);
        assert_eq!(verdict(0.9, &spec), Verdict::Stable);
        assert_eq!(verdict(0.87, &spec), Verdict::Warning);
        assert_eq!(verdict(0.84, &spec), Verdict::Drifted);
        let spec = EmaSpec {
            smoothing: 0.2,
            bound: EmaBound::Above(0.5),
            warning: None,
        };
        assert_eq!(verdict(0.5, &spec), Verdict::Stable);
        assert_eq!(verdict(0.51, &spec), Verdict::Drifted);
    }
}
