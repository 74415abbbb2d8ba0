//! Tests on two windows of counts over the same bins (histogram buckets in ascending order,
//! or categories): what `histogram:` and `categories:` rules, raw-value rules with `bins:`,
//! `eval --counts` and `POST /api/v1/evaluate` run. Pure.
//!
//! - `ks` on bucketed data: the statistic is taken at the bucket edges, where both empirical
//!   distribution functions are known: `D = max |R(e)/n - C(e)/m|` over the edges, `R` and
//!   `C` the cumulative counts. That is exactly `scipy.stats.ks_2samp` on the data with every
//!   observation replaced by its bucket's upper edge, and so is the p-value (same `n`, `m`,
//!   `D`, method `asymp`: the exact method costs `n·m` steps, and a histogram's windows hold
//!   thousands to millions of observations). It is a valid, conservative p-value for the
//!   unbucketed data: D at
//!   the edges is at most D over the line, so under no drift `P(D_edges >= d) <= P(D >= d)`.
//!   The counts must be whole numbers for it (rounded here: float histograms count weights).
//! - `chi2` and `gtest`: `chi2_contingency` on the 2×k table after sparse bins are merged
//!   ([`merge_sparse`]: Cochran's rule, expected count at least 5 in every cell).
//! - `psi`, `jensenshannon`, `hellinger`: distances on the bins as they are; no p-value.

use super::chi2::{chi2_contingency, Lambda};
use super::divergence::{hellinger, jensenshannon, psi, Base};
use super::ks::{p_value_of, Alternative, Method};

/// A test of two windows of counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinnedTest {
    /// Two-sample KS at the bucket edges (ordered bins only).
    Ks,
    /// Pearson's chi-squared test of homogeneity.
    Chi2,
    /// The G-test (log-likelihood ratio) of homogeneity.
    Gtest,
    /// Population stability index.
    Psi,
    /// Jensen-Shannon distance, as SciPy returns it.
    JensenShannon(Base),
    /// Hellinger distance.
    Hellinger,
}

impl BinnedTest {
    /// The `detector:` name.
    pub fn name(self) -> &'static str {
        match self {
            BinnedTest::Ks => "ks",
            BinnedTest::Chi2 => "chi2",
            BinnedTest::Gtest => "gtest",
            BinnedTest::Psi => "psi",
            BinnedTest::JensenShannon(_) => "jensenshannon",
            BinnedTest::Hellinger => "hellinger",
        }
    }

    /// The test of a `detector:` name (`jensenshannon` in base 2).
    pub fn parse(name: &str) -> Option<BinnedTest> {
        Some(match name {
            "ks" => BinnedTest::Ks,
            "chi2" => BinnedTest::Chi2,
            "gtest" => BinnedTest::Gtest,
            "psi" => BinnedTest::Psi,
            "jensenshannon" => BinnedTest::JensenShannon(Base::Two),
            "hellinger" => BinnedTest::Hellinger,
            _ => return None,
        })
    }

    /// Does it give a p-value (else its statistic is compared with a threshold)?
    pub fn has_p_value(self) -> bool {
        matches!(self, BinnedTest::Ks | BinnedTest::Chi2 | BinnedTest::Gtest)
    }
}

/// What a test of counts found.
#[derive(Debug, Clone, PartialEq)]
pub struct BinnedOutcome {
    pub statistic: f64,
    pub p_value: Option<f64>,
    /// Bins tested (after merging, for `chi2` and `gtest`).
    pub bins: usize,
    /// Degrees of freedom, for `chi2` and `gtest`.
    pub dof: Option<usize>,
}

/// Why two windows of counts cannot be tested.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BinnedError {
    #[error("the windows have {reference} and {current} bins; they must have the same bins")]
    Mismatch { reference: usize, current: usize },
    #[error("no bins")]
    Empty,
    #[error("{window} count of bin {bin} is {value}: a count must be a finite number >= 0")]
    BadCount {
        window: &'static str,
        bin: usize,
        value: f64,
    },
    #[error("the {window} window holds no observations")]
    NoObservations { window: &'static str },
    #[error("{0}")]
    Detector(String),
}

/// Runs `test` on counts per bin (index `i` the same bin in both; for `ks`, bins in
/// ascending order of their edges). `yates`: Yates' correction for a 2×2 `chi2`/`gtest`.
pub fn test_counts(
    test: BinnedTest,
    reference: &[f64],
    current: &[f64],
    yates: bool,
) -> Result<BinnedOutcome, BinnedError> {
    if reference.len() != current.len() {
        return Err(BinnedError::Mismatch {
            reference: reference.len(),
            current: current.len(),
        });
    }
    if reference.is_empty() {
        return Err(BinnedError::Empty);
    }
    for (window, v) in [("reference", reference), ("current", current)] {
        if let Some(bin) = v.iter().position(|x| !x.is_finite() || *x < 0.0) {
            return Err(BinnedError::BadCount {
                window,
                bin,
                value: v[bin],
            });
        }
        if v.iter().all(|&x| x == 0.0) {
            return Err(BinnedError::NoObservations { window });
        }
    }
    let detector = |e: String| BinnedError::Detector(e);
    match test {
        BinnedTest::Ks => {
            let (d, n, m) = ks_statistic_binned(reference, current);
            let p = p_value_of(n, m, d, Alternative::TwoSided, Method::Asymp);
            Ok(BinnedOutcome {
                statistic: d,
                p_value: Some(p),
                bins: reference.len(),
                dof: None,
            })
        }
        BinnedTest::Chi2 | BinnedTest::Gtest => {
            let (a, b) = merge_sparse(reference, current);
            let lambda = if test == BinnedTest::Chi2 {
                Lambda::Pearson
            } else {
                Lambda::LogLikelihood
            };
            let c = chi2_contingency(&[&a[..], &b[..]], yates, lambda)
                .map_err(|e| detector(e.to_string()))?;
            Ok(BinnedOutcome {
                statistic: c.statistic,
                p_value: Some(c.p_value),
                bins: a.len(),
                dof: Some(c.dof),
            })
        }
        BinnedTest::Psi | BinnedTest::JensenShannon(_) | BinnedTest::Hellinger => {
            let statistic = match test {
                BinnedTest::Psi => psi(reference, current),
                BinnedTest::Hellinger => hellinger(reference, current),
                BinnedTest::JensenShannon(base) => jensenshannon(reference, current, base),
                _ => unreachable!("matched above"),
            }
            .map_err(|e| detector(e.to_string()))?;
            Ok(BinnedOutcome {
                statistic,
                p_value: None,
                bins: reference.len(),
                dof: None,
            })
        }
    }
}

/// `(D, n, m)` of bucketed counts: D at the bucket edges, computed as `ks_2samp` computes it
/// on the expanded data (`R(e)/n - C(e)/m`), with the totals rounded to whole observations.
pub fn ks_statistic_binned(reference: &[f64], current: &[f64]) -> (f64, usize, usize) {
    let whole = |v: &[f64]| -> Vec<f64> { v.iter().map(|x| x.round()).collect() };
    let (a, b) = (whole(reference), whole(current));
    let (n, m) = (a.iter().sum::<f64>(), b.iter().sum::<f64>());
    let (mut ca, mut cb, mut d) = (0.0, 0.0, 0.0f64);
    for (x, y) in a.iter().zip(&b) {
        ca += x;
        cb += y;
        d = d.max((ca / n - cb / m).abs());
    }
    (d.min(1.0), n as usize, m as usize)
}

/// Drops bins empty in both rows, then merges adjacent bins from the left until every
/// expected count under homogeneity is at least 5 (Cochran's rule; a last short bin joins
/// the one before it), so the chi-squared approximation holds.
pub fn merge_sparse(a: &[f64], b: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let (ta, tb) = (a.iter().sum::<f64>(), b.iter().sum::<f64>());
    let total = ta + tb;
    let (mut out_a, mut out_b) = (Vec::with_capacity(a.len()), Vec::with_capacity(a.len()));
    let (mut acc_a, mut acc_b) = (0.0, 0.0);
    let enough = |x: f64, y: f64| {
        let col = x + y;
        total > 0.0 && col * ta.min(tb) / total >= 5.0
    };
    for (&x, &y) in a.iter().zip(b) {
        if x == 0.0 && y == 0.0 {
            continue;
        }
        acc_a += x;
        acc_b += y;
        if enough(acc_a, acc_b) {
            out_a.push(acc_a);
            out_b.push(acc_b);
            (acc_a, acc_b) = (0.0, 0.0);
        }
    }
    if acc_a + acc_b > 0.0 {
        match (out_a.last_mut(), out_b.last_mut()) {
            (Some(la), Some(lb)) => {
                *la += acc_a;
                *lb += acc_b;
            }
            _ => {
                out_a.push(acc_a);
                out_b.push(acc_b);
            }
        }
    }
    (out_a, out_b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ks_on_buckets_is_ks_on_the_bucket_edges() {
        // Edges 1, 2, 3: reference [1,1,2,3], current [2,3,3].
        let (d, n, m) = ks_statistic_binned(&[2.0, 1.0, 1.0], &[0.0, 1.0, 2.0]);
        assert_eq!((n, m), (4, 3));
        // At edge 1: 2/4 - 0 = 0.5; at 2: 3/4 - 1/3; at 3: 0.
        assert_eq!(d, 0.5);
        let out = test_counts(BinnedTest::Ks, &[2.0, 1.0, 1.0], &[0.0, 1.0, 2.0], false).unwrap();
        // scipy.stats.ks_2samp([1,1,2,3], [2,3,3], method="asymp").pvalue
        let want = 0.5;
        let p = out.p_value.unwrap();
        assert!((p - want).abs() < 1e-12, "{p}");
    }

    #[test]
    fn chi2_merges_sparse_bins_and_distances_have_no_p_value() {
        let out = test_counts(
            BinnedTest::Chi2,
            &[100.0, 100.0, 1.0],
            &[100.0, 100.0, 0.0],
            false,
        )
        .unwrap();
        assert_eq!(out.bins, 2, "the sparse last bin joined the one before it");
        assert_eq!(out.dof, Some(1));
        let out = test_counts(BinnedTest::Hellinger, &[1.0, 0.0], &[0.0, 3.0], false).unwrap();
        assert_eq!((out.statistic, out.p_value), (1.0, None));
    }

    #[test]
    fn bad_counts_are_named() {
        let e = test_counts(BinnedTest::Chi2, &[1.0, -1.0], &[1.0, 1.0], false).unwrap_err();
        assert_eq!(
            e.to_string(),
            "reference count of bin 1 is -1: a count must be a finite number >= 0"
        );
        let e = test_counts(BinnedTest::Ks, &[0.0, 0.0], &[1.0, 1.0], false).unwrap_err();
        assert_eq!(
            e,
            BinnedError::NoObservations {
                window: "reference"
            }
        );
        let e = test_counts(BinnedTest::Psi, &[1.0], &[1.0, 1.0], false).unwrap_err();
        assert!(matches!(e, BinnedError::Mismatch { .. }));
    }
}
