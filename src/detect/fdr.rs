//! Multiple-testing adjustments of the p-values of one evaluation (one per series of a rule):
//! Benjamini-Hochberg and Benjamini-Yekutieli as `scipy.stats.false_discovery_control`
//! (SciPy 1.17.1) computes them, and Bonferroni.
//!
//! A hypothesis is rejected at level `q` where its adjusted p-value is `<= q`. BH and BY, step
//! for step as SciPy: sort the `m` p-values, multiply the `i`-th smallest by `m / i` (and, for
//! BY, by `sum(1 / i)`, added as NumPy adds), take the running minimum from the largest down,
//! put them back in the input order and clip to [0, 1]. A single p-value (or none) comes back
//! as it is. Bonferroni is `min(m p, 1)`.
//!
//! Pure: no I/O, no panics; a p-value outside [0, 1] (or NaN) is an error naming its index.

use super::sum::numpy_sum;

/// Which false-discovery-rate procedure (SciPy's `method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FdrMethod {
    /// Benjamini-Hochberg: independent or positively dependent tests.
    #[default]
    Bh,
    /// Benjamini-Yekutieli: any dependence, more conservative.
    By,
}

impl FdrMethod {
    /// SciPy's spelling: `"bh"` or `"by"`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "bh" => Some(FdrMethod::Bh),
            "by" => Some(FdrMethod::By),
            _ => None,
        }
    }

    /// `"bh"` or `"by"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            FdrMethod::Bh => "bh",
            FdrMethod::By => "by",
        }
    }
}

/// Why p-values cannot be adjusted.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FdrError {
    #[error("p-value {value} at index {index} is not in [0, 1]")]
    OutOfRange { index: usize, value: f64 },
}

fn validate(ps: &[f64]) -> Result<(), FdrError> {
    match ps.iter().position(|p| !(0.0..=1.0).contains(p)) {
        Some(index) => Err(FdrError::OutOfRange {
            index,
            value: ps[index],
        }),
        None => Ok(()),
    }
}

/// `scipy.stats.false_discovery_control(ps, method)`: the adjusted p-values, in the order of
/// `ps`.
pub fn false_discovery_control(ps: &[f64], method: FdrMethod) -> Result<Vec<f64>, FdrError> {
    validate(ps)?;
    let m = ps.len();
    if m <= 1 {
        return Ok(ps.to_vec());
    }
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| ps[a].total_cmp(&ps[b]));
    let mut sorted: Vec<f64> = order
        .iter()
        .enumerate()
        .map(|(j, &k)| ps[k] * (m as f64 / (j + 1) as f64))
        .collect();
    if method == FdrMethod::By {
        let harmonic = numpy_sum(&(1..=m).map(|i| 1.0 / i as f64).collect::<Vec<_>>());
        for p in &mut sorted {
            *p *= harmonic;
        }
    }
    for j in (0..m - 1).rev() {
        sorted[j] = sorted[j].min(sorted[j + 1]);
    }
    let mut adjusted = vec![0.0; m];
    for (&k, &p) in order.iter().zip(&sorted) {
        adjusted[k] = p.clamp(0.0, 1.0);
    }
    Ok(adjusted)
}

/// Bonferroni: each p-value times the number of tests, capped at 1.
pub fn bonferroni(ps: &[f64]) -> Result<Vec<f64>, FdrError> {
    validate(ps)?;
    let m = ps.len() as f64;
    Ok(ps.iter().map(|p| (p * m).min(1.0)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bh_by_hand() {
        // Sorted: 0.01 * 4/1, 0.02 * 4/2, 0.03 * 4/3, 0.5 * 4/4; the running minimum from the
        // top gives the three smallest 0.03 * (4/3), which rounds below 0.04.
        let got = false_discovery_control(&[0.5, 0.03, 0.01, 0.02], FdrMethod::Bh).unwrap();
        let third = 0.03 * (4.0 / 3.0);
        assert_eq!(got, vec![0.5, third, third, third]);
    }

    #[test]
    fn bonferroni_caps_at_one() {
        assert_eq!(bonferroni(&[0.01, 0.4]).unwrap(), vec![0.02, 0.8]);
        assert_eq!(bonferroni(&[0.6, 0.0]).unwrap(), vec![1.0, 0.0]);
        assert_eq!(bonferroni(&[]).unwrap(), Vec::<f64>::new());
    }

    #[test]
    fn out_of_range_is_an_error() {
        assert_eq!(
            false_discovery_control(&[0.1, 1.5], FdrMethod::By),
            Err(FdrError::OutOfRange {
                index: 1,
                value: 1.5
            })
        );
        assert!(bonferroni(&[f64::NAN]).is_err());
        assert!(false_discovery_control(&[-0.0, 0.3], FdrMethod::Bh).is_ok());
    }
}
