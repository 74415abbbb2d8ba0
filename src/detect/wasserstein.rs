//! The Wasserstein-1 (earth mover's) distance between two samples, optionally weighted, as
//! `scipy.stats.wasserstein_distance` (SciPy 1.17.1) computes it; and the CDF distance both
//! it and [`super::energy`] are made of (SciPy's `_cdf_distance`).
//!
//! `l_p(u, v) = (integral of |U - V|^p)^(1/p)` over the two empirical CDFs: the pooled values
//! are sorted, and between each pair of neighbours `x_k <= x_{k+1}` both CDFs are constant:
//! `U = #(u <= x_k) / n` (or the cumulative weight of those values over the total weight),
//! likewise `V`; the integral is `sum(|U - V|^p (x_{k+1} - x_k))`. SciPy adds that sum with a
//! BLAS dot product, whose order of additions depends on the CPU; here it is added as
//! `np.sum` adds, pairwise ([`super::sum`]), so results can differ from SciPy's in the last
//! bits (they agree to about 1e-16 relative on the reference vectors).
//!
//! Pure: no I/O, no panics. Empty samples, non-finite values, weights of the wrong length,
//! negative or non-finite weights and weights that do not sum to a positive finite number are
//! errors. Values spread wider than `f64::MAX` give an infinite distance.

use std::borrow::Cow;

use super::sort::{ascending, sorted_cow};
use super::sum::{numpy_sum, top_split, StreamSum};

/// Why a distance cannot be computed.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DistanceError {
    #[error("the {which} sample is empty")]
    EmptySample { which: &'static str },
    #[error("the {which} sample holds a non-finite value (NaN or infinity) at index {index}")]
    NonFinite { which: &'static str, index: usize },
    #[error("the {which} sample has {values} values but {weights} weights")]
    WeightsLength {
        which: &'static str,
        values: usize,
        weights: usize,
    },
    #[error("the {which} weight at index {index} is negative or not finite")]
    BadWeight { which: &'static str, index: usize },
    #[error("the {which} weights must have a positive, finite sum")]
    BadWeightSum { which: &'static str },
}

const REFERENCE: &str = "reference";
const CURRENT: &str = "current";

/// `scipy.stats.wasserstein_distance(reference, current, reference_weights,
/// current_weights)`. Without weights every value weighs the same; arrays given by value
/// (`Vec<f64>`) are then sorted in place, borrowed ones (`&[f64]`) into copies.
pub fn wasserstein_distance<'a, 'b>(
    reference: impl Into<Cow<'a, [f64]>>,
    current: impl Into<Cow<'b, [f64]>>,
    reference_weights: Option<&[f64]>,
    current_weights: Option<&[f64]>,
) -> Result<f64, DistanceError> {
    cdf_distance(
        Power::One,
        reference.into(),
        current.into(),
        reference_weights,
        current_weights,
    )
}

/// [`wasserstein_distance`] without weights, on samples the caller keeps sorted ascending
/// (`-0.0` and `0.0` in either order; `debug_assert`ed): nothing copied or sorted.
pub fn wasserstein_distance_sorted(
    reference: &[f64],
    current: &[f64],
) -> Result<f64, DistanceError> {
    cdf_distance_sorted(Power::One, reference, current)
}

/// Which `l_p` distance [`cdf_distance`] integrates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Power {
    /// `integral |U - V|`: the Wasserstein distance.
    One,
    /// `sqrt(integral (U - V)^2)`: the energy distance over `sqrt(2)`.
    Two,
}

/// One sample sorted, with its cumulative weights when it has weights.
struct Empirical<'s> {
    sorted: Cow<'s, [f64]>,
    /// `[0, w_0, w_0 + w_1, ...]` in sorted order (NumPy's `cumsum`, left to right).
    cumulative: Option<Vec<f64>>,
}

/// The errors of a sample without weights.
fn check_values(values: &[f64], which: &'static str) -> Result<(), DistanceError> {
    if values.is_empty() {
        return Err(DistanceError::EmptySample { which });
    }
    if let Some(index) = values.iter().position(|x| !x.is_finite()) {
        return Err(DistanceError::NonFinite { which, index });
    }
    Ok(())
}

impl Empirical<'_> {
    /// A weighted sample: its values put in order with their weights.
    fn weighted(
        values: &[f64],
        weights: &[f64],
        which: &'static str,
    ) -> Result<Empirical<'static>, DistanceError> {
        check_values(values, which)?;
        if weights.len() != values.len() {
            return Err(DistanceError::WeightsLength {
                which,
                values: values.len(),
                weights: weights.len(),
            });
        }
        if let Some(index) = weights.iter().position(|w| !(w.is_finite() && *w >= 0.0)) {
            return Err(DistanceError::BadWeight { which, index });
        }
        let total = numpy_sum(weights);
        if !(total > 0.0 && total.is_finite()) {
            return Err(DistanceError::BadWeightSum { which });
        }
        let mut order: Vec<usize> = (0..values.len()).collect();
        order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
        let sorted = order.iter().map(|&k| values[k]).collect();
        let mut cumulative = Vec::with_capacity(values.len() + 1);
        cumulative.push(0.0);
        let mut acc = 0.0;
        for (i, &k) in order.iter().enumerate() {
            acc = if i == 0 { weights[k] } else { acc + weights[k] };
            cumulative.push(acc);
        }
        Ok(Empirical {
            sorted: Cow::Owned(sorted),
            cumulative: Some(cumulative),
        })
    }

    /// A sample without weights, already sorted.
    fn unweighted(sorted: Cow<'_, [f64]>) -> Empirical<'_> {
        Empirical {
            sorted,
            cumulative: None,
        }
    }

    /// The CDF after the first `count` sorted values.
    fn cdf(&self, count: usize) -> f64 {
        match &self.cumulative {
            None => count as f64 / self.sorted.len() as f64,
            Some(c) => c[count] / c[c.len() - 1],
        }
    }
}

/// SciPy's `_cdf_distance(p, ...)` for `p = 1` or `2`.
pub(crate) fn cdf_distance(
    power: Power,
    reference: Cow<'_, [f64]>,
    current: Cow<'_, [f64]>,
    reference_weights: Option<&[f64]>,
    current_weights: Option<&[f64]>,
) -> Result<f64, DistanceError> {
    // The two samples are sorted side by side (on large inputs).
    let (u, v) = if reference.len().min(current.len()) >= super::sort::PARALLEL_MIN_LEN {
        rayon::join(
            || side(reference, reference_weights, REFERENCE),
            || side(current, current_weights, CURRENT),
        )
    } else {
        (
            side(reference, reference_weights, REFERENCE),
            side(current, current_weights, CURRENT),
        )
    };
    Ok(integrate(power, &u?, &v?))
}

/// One sample of [`cdf_distance`], checked and sorted.
fn side<'s>(
    values: Cow<'s, [f64]>,
    weights: Option<&[f64]>,
    which: &'static str,
) -> Result<Empirical<'s>, DistanceError> {
    match weights {
        None => {
            check_values(&values, which)?;
            Ok(Empirical::unweighted(sorted_cow(values)))
        }
        Some(w) => Empirical::weighted(&values, w, which),
    }
}

/// [`cdf_distance`] without weights on two samples kept sorted ascending.
pub(crate) fn cdf_distance_sorted(
    power: Power,
    reference: &[f64],
    current: &[f64],
) -> Result<f64, DistanceError> {
    check_values(reference, REFERENCE)?;
    check_values(current, CURRENT)?;
    debug_assert!(ascending(reference), "reference not sorted");
    debug_assert!(ascending(current), "current not sorted");
    Ok(integrate(
        power,
        &Empirical::unweighted(Cow::Borrowed(reference)),
        &Empirical::unweighted(Cow::Borrowed(current)),
    ))
}

/// The `l_p` distance between two empirical CDFs.
fn integrate(power: Power, u: &Empirical<'_>, v: &Empirical<'_>) -> f64 {
    let (us, vs) = (&u.sorted, &v.sorted);

    // The pooled values in order (a merge of the two sorted samples, `u` first on ties),
    // walked once: for each pooled value but the last, the counts at or below it
    // (`searchsorted(..., 'right')`), the CDFs there and the step to the next value. The
    // terms are summed as they come, in NumPy's order; on large inputs the two halves of
    // NumPy's first split side by side.
    let terms = (us.len() + vs.len()).saturating_sub(1);
    let integral = match top_split(terms).filter(|_| terms >= super::sort::PARALLEL_MIN_LEN) {
        Some(n2) => {
            let (left, right) = rayon::join(
                || cdf_terms(u, v, power, (0, 0), n2),
                || cdf_terms(u, v, power, merged_at(us, vs, n2), terms - n2),
            );
            0.0 + (left.finish_part() + right.finish_part())
        }
        None => cdf_terms(u, v, power, (0, 0), terms).finish(),
    };
    match power {
        Power::One => integral,
        Power::Two => integral.sqrt(),
    }
}

/// Where the merge of sorted `us` and `vs` (`us` first on ties) stands after `k` values:
/// how many of each it has taken.
fn merged_at(us: &[f64], vs: &[f64], k: usize) -> (usize, usize) {
    // The number `i` taken from `us` is the one where what is left of each comes after what
    // was taken of the other; the first condition only fails for `i` too small, the second
    // only for `i` too large, so a binary search finds it.
    let (mut lo, mut hi) = (k.saturating_sub(vs.len()), k.min(us.len()));
    while lo < hi {
        let i = lo + (hi - lo) / 2;
        let j = k - i;
        // Too few from `us` when its next value would come before the last one taken of `vs`.
        if j > 0 && i < us.len() && vs[j - 1] >= us[i] {
            lo = i + 1;
        } else {
            hi = i;
        }
    }
    (lo, k - lo)
}

/// The sum of `count` terms of the CDF integral from merge position `start` (values taken of
/// `u` and of `v`), as a [`StreamSum`].
fn cdf_terms(
    u: &Empirical,
    v: &Empirical,
    power: Power,
    start: (usize, usize),
    count: usize,
) -> StreamSum {
    let (us, vs) = (&u.sorted, &v.sorted);
    let mut sum = StreamSum::new(count);
    let (mut a, mut b) = start;
    let mut pooled = std::iter::from_fn(|| {
        let x = match (us.get(a), vs.get(b)) {
            (Some(&x), Some(&y)) if y < x => {
                b += 1;
                y
            }
            (Some(&x), _) => {
                a += 1;
                x
            }
            (None, Some(&y)) => {
                b += 1;
                y
            }
            (None, None) => return None,
        };
        Some(x)
    });
    // Every value before the start is at or below the first one walked.
    let (mut i, mut j) = start;
    if let Some(mut x) = pooled.next() {
        for next in pooled.take(count) {
            while i < us.len() && us[i] <= x {
                i += 1;
            }
            while j < vs.len() && vs[j] <= x {
                j += 1;
            }
            let d = u.cdf(i) - v.cdf(j);
            let delta = next - x;
            sum.push(match power {
                Power::One => d.abs() * delta,
                Power::Two => d * d * delta,
            });
            x = next;
        }
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_merge_position_is_where_the_merge_stands() {
        let us = [1.0, 2.0, 2.0, 5.0, 7.0];
        let vs = [0.0, 2.0, 3.0, 7.0, 9.0, 9.0];
        // The merge, `us` first on ties, one step at a time.
        let (mut i, mut j) = (0, 0);
        for k in 0..=us.len() + vs.len() {
            assert_eq!(merged_at(&us, &vs, k), (i, j), "after {k}");
            if j < vs.len() && (i == us.len() || vs[j] < us[i]) {
                j += 1;
            } else {
                i += 1;
            }
        }
    }

    #[test]
    fn the_halves_side_by_side_are_the_one_walk_bit_for_bit() {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut draw = |n: usize, round: f64| -> Vec<f64> {
            (0..n)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let u = (x >> 11) as f64 / (1u64 << 53) as f64;
                    (u * u * round).round() / round
                })
                .collect()
        };
        for round in [1e3, 1e12] {
            let (a, b) = (draw(120_000, round), draw(90_000, round));
            let (u, v) = (
                side(Cow::Borrowed(&a), None, REFERENCE).expect("values"),
                side(Cow::Borrowed(&b), None, CURRENT).expect("values"),
            );
            let terms = a.len() + b.len() - 1;
            for power in [Power::One, Power::Two] {
                let one = cdf_terms(&u, &v, power, (0, 0), terms).finish();
                let one = match power {
                    Power::One => one,
                    Power::Two => one.sqrt(),
                };
                let two = cdf_distance(power, Cow::Borrowed(&a), Cow::Borrowed(&b), None, None)
                    .expect("distance");
                assert_eq!(two.to_bits(), one.to_bits(), "{power:?}, 1/{round}");
            }
        }
    }

    #[test]
    fn scipy_doc_examples() {
        assert_eq!(
            wasserstein_distance(&[0.0, 1.0, 3.0], &[5.0, 6.0, 8.0], None, None),
            Ok(5.0)
        );
        assert_eq!(
            wasserstein_distance(
                &[0.0, 1.0],
                &[0.0, 1.0],
                Some(&[3.0, 1.0]),
                Some(&[2.0, 2.0])
            ),
            Ok(0.25)
        );
    }

    #[test]
    fn bad_inputs_are_errors() {
        assert_eq!(
            wasserstein_distance(&[], &[1.0], None, None),
            Err(DistanceError::EmptySample { which: "reference" })
        );
        assert_eq!(
            wasserstein_distance(&[1.0], &[f64::NAN], None, None),
            Err(DistanceError::NonFinite {
                which: "current",
                index: 0
            })
        );
        assert_eq!(
            wasserstein_distance(&[1.0, 2.0], &[1.0], Some(&[1.0]), None),
            Err(DistanceError::WeightsLength {
                which: "reference",
                values: 2,
                weights: 1
            })
        );
        assert_eq!(
            wasserstein_distance(&[1.0], &[1.0, 2.0], None, Some(&[1.0, -1.0])),
            Err(DistanceError::BadWeight {
                which: "current",
                index: 1
            })
        );
        assert_eq!(
            wasserstein_distance(&[1.0], &[1.0, 2.0], None, Some(&[0.0, 0.0])),
            Err(DistanceError::BadWeightSum { which: "current" })
        );
        assert_eq!(
            wasserstein_distance(&[1.0, 2.0], &[1.0], Some(&[f64::MAX, f64::MAX]), None),
            Err(DistanceError::BadWeightSum { which: "reference" })
        );
    }

    #[test]
    fn values_spread_past_f64_max_give_infinity() {
        let d = wasserstein_distance(&[-f64::MAX], &[f64::MAX], None, None).unwrap();
        assert_eq!(d, f64::INFINITY);
    }
}
