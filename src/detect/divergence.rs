//! Distances between two histograms over the same bins (counts or proportions): the
//! Jensen-Shannon distance (`scipy.spatial.distance.jensenshannon`, SciPy 1.17.1), the
//! Hellinger distance and the population stability index (PSI), neither of which SciPy has.
//!
//! Each histogram is first normalised to sum 1, so raw counts are valid input; index `i` of
//! both is the same bin. Bins empty in both contribute 0 to every measure.
//!
//! - **Jensen-Shannon**, computed as SciPy does it operation for operation: `p / sum(p)`,
//!   `m = (p + q) / 2`, `js = sum(rel_entr(p, m)) + sum(rel_entr(q, m))` (NumPy's sums,
//!   [`super::sum`]), divided by `ln 2` for base 2, then `sqrt(js / 2)`. Where rounding makes
//!   `js` slightly negative SciPy returns NaN; here it is clamped to 0 first.
//! - **Hellinger**, `sqrt(sum((sqrt(p_i) - sqrt(q_i))^2) / 2)`, in [0, 1]: 0 for proportional
//!   histograms, 1 for disjoint ones. This form has no cancellation, unlike
//!   `sqrt(1 - sum(sqrt(p_i q_i)))`, which it equals.
//! - **PSI**, `sum((q_i - p_i) ln(q_i / p_i))` over the proportions `p` (reference) and `q`
//!   (current). A proportion that is 0 in one histogram only would make a term infinite;
//!   such a proportion is replaced by [`PSI_EPSILON`] (1e-4, the usual convention; the others
//!   are left as they are, not renormalised), so a bin of proportion `p` that empties adds
//!   about `p ln(p / 1e-4)` (0.075 for a 1.5 % bin) instead of infinity. A bin empty in both
//!   stays out. PSI is symmetric in its arguments.
//!
//! Pure: no I/O, no panics. Empty, mismatched, negative, non-finite or all-zero histograms
//! are errors naming the histogram and the bin.

use super::sum::numpy_sum;

/// What a proportion of 0 (in one histogram only) becomes in [`psi`].
pub const PSI_EPSILON: f64 = 1e-4;

/// The logarithm of the Jensen-Shannon divergence (SciPy's `base`: 2, or `None` for `e`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Base {
    /// Bits: the distance is in [0, 1].
    #[default]
    Two,
    /// Nats: the distance is in [0, sqrt(ln 2)].
    Natural,
}

impl Base {
    /// `"2"` or `"e"`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "2" => Some(Base::Two),
            "e" => Some(Base::Natural),
            _ => None,
        }
    }

    /// `"2"` or `"e"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Base::Two => "2",
            Base::Natural => "e",
        }
    }
}

/// Why two histograms cannot be compared.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DivergenceError {
    #[error("the histograms are empty")]
    Empty,
    #[error("the reference histogram has {reference} bins, the current one {current}")]
    LengthMismatch { reference: usize, current: usize },
    #[error("the {which} histogram holds a non-finite value at bin {index}")]
    NonFinite { which: &'static str, index: usize },
    #[error("the {which} histogram holds a negative value at bin {index}")]
    Negative { which: &'static str, index: usize },
    #[error("the {which} histogram sums to 0")]
    ZeroTotal { which: &'static str },
}

const REFERENCE: &str = "reference";
const CURRENT: &str = "current";

fn validate_one(h: &[f64], which: &'static str) -> Result<(), DivergenceError> {
    for (index, &x) in h.iter().enumerate() {
        if !x.is_finite() {
            return Err(DivergenceError::NonFinite { which, index });
        }
        if x < 0.0 {
            return Err(DivergenceError::Negative { which, index });
        }
    }
    Ok(())
}

/// Both histograms normalised by their NumPy sums (`p / np.sum(p)`).
fn normalised(reference: &[f64], current: &[f64]) -> Result<(Vec<f64>, Vec<f64>), DivergenceError> {
    if reference.len() != current.len() {
        return Err(DivergenceError::LengthMismatch {
            reference: reference.len(),
            current: current.len(),
        });
    }
    if reference.is_empty() {
        return Err(DivergenceError::Empty);
    }
    validate_one(reference, REFERENCE)?;
    validate_one(current, CURRENT)?;
    let scale = |h: &[f64], which| {
        let total = numpy_sum(h);
        if total > 0.0 && total.is_finite() {
            Ok(h.iter().map(|x| x / total).collect::<Vec<f64>>())
        } else if total > 0.0 {
            // Finite counts whose sum overflows: scale down first (exact, a power of two).
            let h: Vec<f64> = h.iter().map(|x| x * 0.5f64.powi(64)).collect();
            let total = numpy_sum(&h);
            Ok(h.iter().map(|x| x / total).collect())
        } else {
            Err(DivergenceError::ZeroTotal { which })
        }
    };
    Ok((scale(reference, REFERENCE)?, scale(current, CURRENT)?))
}

/// `scipy.special.rel_entr(x, y)` for `x, y >= 0` (xsf `convex_analysis.h`): `x ln(x / y)`,
/// through `log1p` when `x / y` is within (1/2, 2), through `ln x - ln y` when `x / y` would
/// underflow or overflow; 0 when `x == 0`.
fn rel_entr(x: f64, y: f64) -> f64 {
    if x <= 0.0 || y <= 0.0 {
        return if x == 0.0 && y >= 0.0 {
            0.0
        } else {
            f64::INFINITY
        };
    }
    let ratio = x / y;
    if 0.5 < ratio && ratio < 2.0 {
        x * ((x - y) / y).ln_1p()
    } else if f64::MIN_POSITIVE < ratio && ratio < f64::INFINITY {
        x * ratio.ln()
    } else {
        x * (x.ln() - y.ln())
    }
}

/// The Jensen-Shannon distance, `scipy.spatial.distance.jensenshannon(reference, current,
/// base)`: the square root of the divergence, symmetric, 0 for proportional histograms.
pub fn jensenshannon(
    reference: &[f64],
    current: &[f64],
    base: Base,
) -> Result<f64, DivergenceError> {
    let (p, q) = normalised(reference, current)?;
    let m: Vec<f64> = p.iter().zip(&q).map(|(a, b)| (a + b) / 2.0).collect();
    let left = numpy_sum(
        &p.iter()
            .zip(&m)
            .map(|(&a, &b)| rel_entr(a, b))
            .collect::<Vec<_>>(),
    );
    let right = numpy_sum(
        &q.iter()
            .zip(&m)
            .map(|(&a, &b)| rel_entr(a, b))
            .collect::<Vec<_>>(),
    );
    let mut js = left + right;
    if base == Base::Two {
        js /= std::f64::consts::LN_2;
    }
    Ok((js.max(0.0) / 2.0).sqrt())
}

/// The Hellinger distance between the two normalised histograms, in [0, 1].
pub fn hellinger(reference: &[f64], current: &[f64]) -> Result<f64, DivergenceError> {
    let (p, q) = normalised(reference, current)?;
    let sum: f64 = p
        .iter()
        .zip(&q)
        .map(|(a, b)| {
            let d = a.sqrt() - b.sqrt();
            d * d
        })
        .sum();
    Ok((sum / 2.0).sqrt().min(1.0))
}

/// The population stability index of `current` against `reference` (see the module notes for
/// the [`PSI_EPSILON`] convention). 0 for proportional histograms; by the usual rule of thumb
/// below 0.1 is stable, 0.1 to 0.25 a moderate shift, above 0.25 a major one.
pub fn psi(reference: &[f64], current: &[f64]) -> Result<f64, DivergenceError> {
    let (p, q) = normalised(reference, current)?;
    let mut total = 0.0;
    for (&a, &b) in p.iter().zip(&q) {
        if a == 0.0 && b == 0.0 {
            continue;
        }
        let a = if a == 0.0 { PSI_EPSILON } else { a };
        let b = if b == 0.0 { PSI_EPSILON } else { b };
        total += (b - a) * (b / a).ln();
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scipy_doc_examples() {
        // scipy.spatial.distance.jensenshannon([1.0, 0.0], [0.5, 0.5], 2.0)
        assert_eq!(
            jensenshannon(&[1.0, 0.0], &[0.5, 0.5], Base::Two),
            Ok(0.5579230452841438)
        );
        assert_eq!(
            jensenshannon(&[1.0, 0.0, 0.0], &[0.0, 1.0, 0.0], Base::Two),
            Ok(1.0)
        );
    }

    #[test]
    fn psi_by_hand() {
        // (0.6 - 0.5) ln(0.6 / 0.5) + (0.4 - 0.5) ln(0.4 / 0.5)
        let want = 0.1 * (1.2f64).ln() - 0.1 * (0.8f64).ln();
        let got = psi(&[50.0, 50.0], &[60.0, 40.0]).unwrap();
        assert!((got - want).abs() < 1e-15, "{got} vs {want}");
        // A bin emptied: 0.5 becomes 1e-4.
        let got = psi(&[1.0, 1.0], &[0.0, 2.0]).unwrap();
        let want = (PSI_EPSILON - 0.5) * (PSI_EPSILON / 0.5).ln() + 0.5 * 2f64.ln();
        assert!((got - want).abs() < 1e-15, "{got} vs {want}");
    }

    #[test]
    fn hellinger_of_disjoint_is_one() {
        assert_eq!(hellinger(&[1.0, 0.0], &[0.0, 3.0]), Ok(1.0));
        assert_eq!(hellinger(&[2.0, 4.0], &[1.0, 2.0]), Ok(0.0));
    }

    #[test]
    fn huge_counts_do_not_overflow() {
        let d = jensenshannon(&[1e308, 1e308], &[1e308, 1e308], Base::Two).unwrap();
        assert_eq!(d, 0.0);
    }

    #[test]
    fn bad_histograms_are_errors() {
        assert_eq!(
            jensenshannon(&[], &[], Base::Two),
            Err(DivergenceError::Empty)
        );
        assert_eq!(
            hellinger(&[1.0], &[1.0, 2.0]),
            Err(DivergenceError::LengthMismatch {
                reference: 1,
                current: 2
            })
        );
        assert_eq!(
            psi(&[1.0, -1.0], &[1.0, 2.0]),
            Err(DivergenceError::Negative {
                which: "reference",
                index: 1
            })
        );
        assert_eq!(
            psi(&[1.0, 1.0], &[1.0, f64::NAN]),
            Err(DivergenceError::NonFinite {
                which: "current",
                index: 1
            })
        );
        assert_eq!(
            jensenshannon(&[0.0, 0.0], &[1.0, 2.0], Base::Natural),
            Err(DivergenceError::ZeroTotal { which: "reference" })
        );
    }
}
