//! The one-shot KS report shared by `driftgauge eval` and `POST /api/v1/evaluate`.

use serde::Serialize;

use super::ks::{ks_2samp, Alternative, KsError, Method};
use super::Verdict;

/// `{"detector":"ks","statistic":D,"p_value":p,"status":..,"n_reference":n,"n_current":m,
/// "statistic_location":x,"statistic_sign":1|-1,"method":"exact|asymp"}`
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KsReport {
    pub detector: &'static str,
    pub statistic: f64,
    pub p_value: f64,
    pub status: &'static str,
    pub n_reference: usize,
    pub n_current: usize,
    pub statistic_location: f64,
    pub statistic_sign: i8,
    pub method: &'static str,
}

/// Runs KS once. `status` is `drifted` when p <= alpha (and D >= `statistic` when given),
/// `warning` when p <= alpha but D is below `statistic`, else `stable`.
pub fn ks_report(
    reference: &[f64],
    current: &[f64],
    alternative: Alternative,
    method: Method,
    alpha: f64,
    statistic: Option<f64>,
) -> Result<KsReport, KsError> {
    let r = ks_2samp(reference, current, alternative, method)?;
    let status = ks_verdict(r.statistic, r.p_value, alpha, statistic).as_str();
    Ok(KsReport {
        detector: "ks",
        statistic: r.statistic,
        p_value: r.p_value,
        status,
        n_reference: reference.len(),
        n_current: current.len(),
        statistic_location: r.location,
        statistic_sign: r.sign,
        method: r.method.as_str(),
    })
}

/// p <= alpha is evidence of drift; with evidence, D >= `threshold` (when set) is drifted,
/// else warning. A NaN p-value (scipy's answer for n = m = 1, asymptotic) is no evidence.
pub fn ks_verdict(d: f64, p: f64, alpha: f64, threshold: Option<f64>) -> Verdict {
    // `p <= alpha` is false for a NaN p.
    Verdict::of(p <= alpha, d, threshold)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts() {
        assert_eq!(ks_verdict(0.5, 0.2, 0.05, None), Verdict::Stable);
        assert_eq!(ks_verdict(0.5, 0.05, 0.05, None), Verdict::Drifted);
        assert_eq!(ks_verdict(0.1, 0.01, 0.05, Some(0.2)), Verdict::Warning);
        assert_eq!(ks_verdict(0.2, 0.01, 0.05, Some(0.2)), Verdict::Drifted);
        assert_eq!(
            ks_verdict(1.0, f64::NAN, 0.05, None),
            Verdict::Stable,
            "NaN p is no evidence"
        );
    }
}
