//! One-shot evaluation of any detector, for `POST /api/v1/evaluate`: the request's inputs and
//! options in, a report out. Pure; every error names the field that is wrong.
//!
//! Inputs: `reference`/`current` values (with `reference_weights`/`current_weights` for
//! `wasserstein` and `energy`), or `reference_counts`/`current_counts` (per bucket or
//! category, same order) for the binned detectors `chi2`, `gtest`, `psi`, `jensenshannon`
//! and `hellinger`. Values given to a binned detector are binned on the reference's
//! quantiles (`bins`, default 10: the `i / bins` quantiles as inner edges, duplicates dropped, a value on an edge in the bin below).
//!
//! Sparse bins: for `chi2` and `gtest`, bins empty in both windows are dropped, then adjacent
//! bins are merged from the left until every bin's expected count under independence is at
//! least 5 (Cochran's rule; a last short bin joins the one before it), so the chi-squared
//! approximation holds. The report's `bins` says how many were tested. `psi`,
//! `jensenshannon` and `hellinger` take the bins as they are.

use serde::Serialize;

use super::anderson::{anderson_2samp, Variant};
pub use super::binned::merge_sparse;
use super::binned::{test_counts, BinnedTest};
use super::cvm::{cramervonmises_2samp, CvmMethod};
use super::divergence::Base;
use super::energy::energy_distance;
use super::ks::{Alternative, Method};
use super::report::ks_report;
use super::sort::sort_samples;
use super::wasserstein::wasserstein_distance;

/// Detectors `POST /api/v1/evaluate` takes.
pub const DETECTORS: &[&str] = &[
    "ks",
    "cvm",
    "anderson",
    "wasserstein",
    "energy",
    "chi2",
    "gtest",
    "psi",
    "jensenshannon",
    "hellinger",
];

/// What to evaluate (the request body, parsed by the caller).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Request {
    pub detector: String,
    pub reference: Option<Vec<f64>>,
    pub current: Option<Vec<f64>>,
    pub reference_weights: Option<Vec<f64>>,
    pub current_weights: Option<Vec<f64>>,
    pub reference_counts: Option<Vec<f64>>,
    pub current_counts: Option<Vec<f64>>,
    pub alternative: Option<String>,
    pub method: Option<String>,
    pub variant: Option<String>,
    /// `2` or `"e"`.
    pub base: Option<String>,
    pub yates: bool,
    pub bins: Option<usize>,
    pub alpha: Option<f64>,
    /// The effect-size floor of a p-value detector.
    pub statistic: Option<f64>,
    /// What a detector without a p-value compares its statistic with.
    pub threshold: Option<f64>,
}

/// The answer: `{"detector", "statistic", "p_value" (null without one), "status", ...}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub detector: String,
    pub statistic: f64,
    pub p_value: Option<f64>,
    /// `stable`, `warning` or `drifted`; `null` for a detector without a p-value when no
    /// `threshold` was given.
    pub status: Option<&'static str>,
    pub n_reference: f64,
    pub n_current: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dof: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bins: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
}

/// A request that cannot be evaluated: the message names the field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct EvaluateError(pub String);

fn err<T>(message: impl Into<String>) -> Result<T, EvaluateError> {
    Err(EvaluateError(message.into()))
}

fn values<'a>(
    v: &'a Option<Vec<f64>>,
    name: &str,
    detector: &str,
) -> Result<&'a [f64], EvaluateError> {
    match v {
        Some(v) => Ok(v),
        None => err(format!("{name}: required for detector {detector:?}")),
    }
}

/// The values of a field the caller gives away (to be sorted in place).
fn owned_values(
    v: &mut Option<Vec<f64>>,
    name: &str,
    detector: &str,
) -> Result<Vec<f64>, EvaluateError> {
    v.take()
        .ok_or_else(|| EvaluateError(format!("{name}: required for detector {detector:?}")))
}

/// Values or counts, one of the two, for a binned detector.
fn binned(r: &Request) -> Result<(Vec<f64>, Vec<f64>), EvaluateError> {
    match (&r.reference_counts, &r.current_counts, &r.reference, &r.current) {
        (Some(a), Some(b), None, None) => {
            if a.len() != b.len() {
                return err(format!(
                    "current_counts: {} counts, but reference_counts has {}: one count per bucket or category, in the same order",
                    b.len(),
                    a.len()
                ));
            }
            if a.is_empty() {
                return err("reference_counts: empty");
            }
            Ok((a.clone(), b.clone()))
        }
        (None, None, Some(a), Some(b)) => {
            let bins = r.bins.unwrap_or(10);
            if !(2..=10_000).contains(&bins) {
                return err(format!("bins: must be between 2 and 10000, got {bins}"));
            }
            quantile_bins(a, b, bins)
        }
        _ => err(format!(
            "detector {:?} takes either reference_counts and current_counts, or reference and current values (binned on the reference's quantiles, `bins`)",
            r.detector
        )),
    }
}

/// Counts of `reference` and `current` in bins whose inner edges are the reference's
/// `i / bins` quantiles (type 1: the smallest value with at least that share at or below
/// it), duplicate edges dropped; a value equal to an edge goes to the bin below it (the
/// edge is that bin's largest reference value).
pub fn quantile_bins(
    reference: &[f64],
    current: &[f64],
    bins: usize,
) -> Result<(Vec<f64>, Vec<f64>), EvaluateError> {
    for (name, v) in [("reference", reference), ("current", current)] {
        if v.is_empty() {
            return err(format!("{name}: empty"));
        }
        if let Some(i) = v.iter().position(|x| !x.is_finite()) {
            return err(format!("{name}[{i}]: not a finite number"));
        }
    }
    let mut sorted = reference.to_vec();
    sort_samples(&mut sorted);
    let n = sorted.len();
    let mut edges: Vec<f64> = (1..bins)
        .map(|i| sorted[((i * n).div_ceil(bins)).clamp(1, n) - 1])
        .collect();
    edges.dedup();
    let count = |v: &[f64]| {
        let mut c = vec![0.0; edges.len() + 1];
        for &x in v {
            c[edges.partition_point(|&e| e < x)] += 1.0;
        }
        c
    };
    Ok((count(reference), count(current)))
}

/// Evaluates `r`. The request is taken by value: the raw-value detectors sort its arrays in
/// place rather than copying them.
pub fn evaluate(mut r: Request) -> Result<Report, EvaluateError> {
    let alpha = r.alpha.unwrap_or(0.05);
    if !(alpha > 0.0 && alpha < 1.0) {
        return err(format!("alpha: must be in (0, 1), got {alpha}"));
    }
    if let Some(t) = r.threshold.filter(|t| !t.is_finite()) {
        return err(format!("threshold: must be a finite number, got {t}"));
    }
    let detector = r.detector.clone();
    let d = detector.as_str();
    let (floor, threshold) = (r.statistic, r.threshold);
    let report = |statistic: f64, p: Option<f64>, n: (f64, f64)| Report {
        detector: d.to_string(),
        statistic,
        p_value: p,
        status: match p {
            Some(p) => Some(super::Verdict::of(p <= alpha, statistic, floor).as_str()),
            None => threshold.map(|t| if statistic >= t { "drifted" } else { "stable" }),
        },
        n_reference: n.0,
        n_current: n.1,
        method: None,
        dof: None,
        bins: None,
        threshold: if p.is_none() { threshold } else { None },
    };
    match d {
        "ks" if r.reference_counts.is_some() || r.current_counts.is_some() => {
            let (a, b) = binned(&r)?;
            binned_report(&r, d, &a, &b, report)
        }
        "ks" => {
            let (a, b) = (
                values(&r.reference, "reference", d)?,
                values(&r.current, "current", d)?,
            );
            let alternative = match r.alternative.as_deref() {
                None => Alternative::TwoSided,
                Some(s) => match Alternative::parse(s) {
                    Some(a) => a,
                    None => {
                        return err(format!(
                            "alternative: unknown {s:?} (two-sided, less or greater)"
                        ))
                    }
                },
            };
            let method = match r.method.as_deref() {
                None => Method::Auto,
                Some(s) => match Method::parse(s) {
                    Some(m) => m,
                    None => return err(format!("method: unknown {s:?} (auto, exact or asymp)")),
                },
            };
            let k = ks_report(a, b, alternative, method, alpha, r.statistic)
                .map_err(|e| EvaluateError(e.to_string()))?;
            let mut out = report(
                k.statistic,
                Some(k.p_value),
                (a.len() as f64, b.len() as f64),
            );
            out.method = Some(k.method);
            Ok(out)
        }
        "cvm" => {
            let (a, b) = (
                owned_values(&mut r.reference, "reference", d)?,
                owned_values(&mut r.current, "current", d)?,
            );
            let n = (a.len() as f64, b.len() as f64);
            let method = match r.method.as_deref() {
                None => CvmMethod::Auto,
                Some(s) => match CvmMethod::parse(s) {
                    Some(m) => m,
                    None => {
                        return err(format!("method: unknown {s:?} (auto, exact or asymptotic)"))
                    }
                },
            };
            let c = cramervonmises_2samp(a, b, method).map_err(|e| EvaluateError(e.to_string()))?;
            let mut out = report(c.statistic, Some(c.p_value), n);
            out.method = Some(c.method.as_str());
            Ok(out)
        }
        "anderson" => {
            let (a, b) = (
                owned_values(&mut r.reference, "reference", d)?,
                owned_values(&mut r.current, "current", d)?,
            );
            let n = (a.len() as f64, b.len() as f64);
            let variant = match r.variant.as_deref() {
                None => Variant::Midrank,
                Some(s) => match Variant::parse(s) {
                    Some(v) => v,
                    None => {
                        return err(format!(
                            "variant: unknown {s:?} (midrank, right or continuous)"
                        ))
                    }
                },
            };
            let x = anderson_2samp(a, b, variant).map_err(|e| EvaluateError(e.to_string()))?;
            // SciPy's p-value, capped and floored as SciPy does (the rules go on below the
            // floor; this answers as SciPy would).
            Ok(report(x.statistic, Some(x.p_value), n))
        }
        "wasserstein" | "energy" => {
            let (a, b) = (
                owned_values(&mut r.reference, "reference", d)?,
                owned_values(&mut r.current, "current", d)?,
            );
            let n = (a.len() as f64, b.len() as f64);
            let (wa, wb) = (r.reference_weights.as_deref(), r.current_weights.as_deref());
            let distance = if d == "wasserstein" {
                wasserstein_distance(a, b, wa, wb)
            } else {
                energy_distance(a, b, wa, wb)
            }
            .map_err(|e| EvaluateError(e.to_string()))?;
            Ok(report(distance, None, n))
        }
        "chi2" | "gtest" | "psi" | "jensenshannon" | "hellinger" => {
            let (a, b) = binned(&r)?;
            binned_report(&r, d, &a, &b, report)
        }
        other => err(format!(
            "unknown detector {other:?}: /api/v1/evaluate takes {}",
            DETECTORS.join(", ")
        )),
    }
}

/// A binned detector's report on counts per bin (`ks` on bucketed counts included).
fn binned_report(
    r: &Request,
    d: &str,
    a: &[f64],
    b: &[f64],
    report: impl Fn(f64, Option<f64>, (f64, f64)) -> Report,
) -> Result<Report, EvaluateError> {
    for (name, v) in [("reference_counts", a), ("current_counts", b)] {
        if let Some(i) = v.iter().position(|x| !x.is_finite() || *x < 0.0) {
            return err(format!("{name}[{i}]: a count must be a finite number >= 0"));
        }
    }
    let test = match (d, r.base.as_deref()) {
        ("jensenshannon", None | Some("2")) => BinnedTest::JensenShannon(Base::Two),
        ("jensenshannon", Some("e")) => BinnedTest::JensenShannon(Base::Natural),
        ("jensenshannon", Some(s)) => return err(format!("base: unknown {s:?} (2 or e)")),
        _ => {
            BinnedTest::parse(d).ok_or_else(|| EvaluateError(format!("unknown detector {d:?}")))?
        }
    };
    let n = (a.iter().sum::<f64>(), b.iter().sum::<f64>());
    let out = test_counts(test, a, b, r.yates).map_err(|e| EvaluateError(e.to_string()))?;
    let mut rep = report(out.statistic, out.p_value, n);
    rep.dof = out.dof;
    rep.bins = Some(out.bins);
    Ok(rep)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::chi2::{chi2_contingency, Lambda};

    fn req(detector: &str) -> Request {
        Request {
            detector: detector.into(),
            ..Request::default()
        }
    }

    #[test]
    fn quantile_bins_split_the_reference_evenly() {
        let reference: Vec<f64> = (0..100).map(f64::from).collect();
        let (a, b) = quantile_bins(&reference, &[-1.0, 10.0, 99.5, 1e9], 4).unwrap();
        assert_eq!(a, [25.0, 25.0, 25.0, 25.0]);
        // Edges 24, 49, 74: -1 and 10 below the first, 99.5 and 1e9 above the last.
        assert_eq!(b, [2.0, 0.0, 0.0, 2.0]);
        // Ties collapse edges.
        let (a, _) = quantile_bins(&[1.0; 10], &[1.0], 5).unwrap();
        assert_eq!(a, [10.0, 0.0]);
    }

    #[test]
    fn sparse_bins_merge_until_each_expects_five() {
        let (a, b) = merge_sparse(
            &[10.0, 0.0, 1.0, 1.0, 30.0, 2.0],
            &[10.0, 0.0, 1.0, 2.0, 30.0, 1.0],
        );
        // Totals 44 and 44: a column needs 10 in all. 20 | (empty) | 1+1+1+2=5 <10 ... +60
        // -> 65 | 3 left joins the last.
        assert_eq!(a, [10.0, 34.0]);
        assert_eq!(b, [10.0, 34.0]);
    }

    #[test]
    fn chi2_on_counts_is_scipys_on_the_merged_table() {
        let mut r = req("chi2");
        r.reference_counts = Some(vec![50.0, 30.0, 20.0]);
        r.current_counts = Some(vec![30.0, 30.0, 40.0]);
        let out = evaluate(r.clone()).unwrap();
        let direct = chi2_contingency(
            &[[50.0, 30.0, 20.0], [30.0, 30.0, 40.0]],
            false,
            Lambda::Pearson,
        )
        .unwrap();
        assert_eq!(
            (out.statistic, out.p_value, out.dof),
            (direct.statistic, Some(direct.p_value), Some(2))
        );
        assert_eq!(out.status, Some("drifted"));
    }

    #[test]
    fn detectors_without_a_p_value_need_a_threshold_for_a_status() {
        let mut r = req("wasserstein");
        r.reference = Some(vec![0.0, 1.0, 3.0]);
        r.current = Some(vec![5.0, 6.0, 8.0]);
        let out = evaluate(r.clone()).unwrap();
        assert_eq!((out.statistic, out.p_value, out.status), (5.0, None, None));
        r.threshold = Some(1.0);
        assert_eq!(evaluate(r.clone()).unwrap().status, Some("drifted"));
    }

    #[test]
    fn errors_name_the_field() {
        let mut r = req("psi");
        r.reference_counts = Some(vec![1.0, 2.0]);
        r.current_counts = Some(vec![1.0]);
        assert!(evaluate(r.clone())
            .unwrap_err()
            .0
            .starts_with("current_counts: 1 counts, but reference_counts has 2"));
        assert!(evaluate(req("cvm"))
            .unwrap_err()
            .0
            .starts_with("reference: required"));
        assert!(evaluate(req("t-test"))
            .unwrap_err()
            .0
            .starts_with("unknown detector \"t-test\""));
        let mut r = req("jensenshannon");
        r.reference_counts = Some(vec![1.0, 2.0]);
        r.current_counts = Some(vec![1.0, -2.0]);
        assert_eq!(
            evaluate(r.clone()).unwrap_err().0,
            "current_counts[1]: a count must be a finite number >= 0"
        );
    }
}
