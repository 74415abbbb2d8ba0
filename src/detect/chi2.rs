//! Contingency-table tests on r×k tables of counts, with
//! `scipy.stats.chi2_contingency(observed, correction, lambda_)`'s semantics (SciPy 1.17.1):
//! Pearson's chi-squared (`chi2`), the G-test (`gtest`, `lambda_="log-likelihood"`) and the
//! other Cressie-Read power divergences.
//!
//! Row 0 is the reference, row 1 the current window (more rows are more windows); columns are
//! bins or categories. What is reproduced, step for step:
//!
//! - **Expected frequencies** `row_sum[i] * col_sum[j] / total`, the sums added in NumPy's
//!   order ([`super::sum`]: rows and the total pairwise, columns row after row). A zero
//!   expected frequency (an all-zero row or column) is an error, as SciPy raises: callers drop
//!   empty categories first.
//! - **Degrees of freedom** `(r - 1)(k - 1)`. With none (one row or one column) the statistic
//!   is 0 and the p-value 1.
//! - **Yates' correction** only when asked and `dof == 1`: each count moves towards its
//!   expected value by `min(0.5, |expected - observed|)`.
//! - **Statistic** the sum of the power-divergence terms for `lambda`: `(o - e)^2 / e` for
//!   1 (Pearson), `2 o ln(o / e)` for 0 (G), `2 e ln(e / o)` for -1, else
//!   `o ((o / e)^lambda - 1) / (lambda (lambda + 1) / 2)`; the p-value is the chi-squared
//!   survival function `chdtrc(dof, statistic)` (`cephes::chdtrc`).
//!
//! Pure: no I/O, no panics. Counts may be fractional; negative or non-finite counts and ragged
//! tables are errors. Where SciPy's statistic is NaN (a zero count with `-1 < lambda < 0` or
//! `lambda < -1`) this is an error too; `lambda = -1` with a zero count gives +inf and p = 0,
//! as SciPy does.

use super::cephes::chdtrc;
use super::sum::numpy_sum;

/// The power-divergence statistic (SciPy's `lambda_`; `None` there is Pearson).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Lambda {
    /// `"pearson"`, 1: Pearson's chi-squared.
    #[default]
    Pearson,
    /// `"log-likelihood"`, 0: the G-test.
    LogLikelihood,
    /// `"freeman-tukey"`, -1/2.
    FreemanTukey,
    /// `"mod-log-likelihood"`, -1.
    ModLogLikelihood,
    /// `"neyman"`, -2.
    Neyman,
    /// `"cressie-read"`, 2/3.
    CressieRead,
    /// Any other finite power.
    Value(f64),
}

impl Lambda {
    /// SciPy's names: `"pearson"`, `"log-likelihood"`, `"freeman-tukey"`,
    /// `"mod-log-likelihood"`, `"neyman"`, `"cressie-read"`.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "pearson" => Some(Lambda::Pearson),
            "log-likelihood" => Some(Lambda::LogLikelihood),
            "freeman-tukey" => Some(Lambda::FreemanTukey),
            "mod-log-likelihood" => Some(Lambda::ModLogLikelihood),
            "neyman" => Some(Lambda::Neyman),
            "cressie-read" => Some(Lambda::CressieRead),
            _ => None,
        }
    }

    /// The power, as SciPy's `_power_div_lambda_names` maps the names.
    pub fn value(self) -> f64 {
        match self {
            Lambda::Pearson => 1.0,
            Lambda::LogLikelihood => 0.0,
            Lambda::FreemanTukey => -0.5,
            Lambda::ModLogLikelihood => -1.0,
            Lambda::Neyman => -2.0,
            Lambda::CressieRead => 2.0 / 3.0,
            Lambda::Value(v) => v,
        }
    }
}

/// The outcome of one test, SciPy's `Chi2ContingencyResult`.
#[derive(Debug, Clone, PartialEq)]
pub struct Chi2Result {
    /// The power-divergence statistic (0 when `dof == 0`). May be +inf (`lambda = -1` with a
    /// zero count).
    pub statistic: f64,
    /// `chdtrc(dof, statistic)`, in [0, 1]; 1 when `dof == 0`.
    pub p_value: f64,
    /// `(rows - 1) * (columns - 1)`.
    pub dof: usize,
    /// The expected frequencies under independence, one row per row of the table.
    pub expected: Vec<Vec<f64>>,
}

/// Why a table cannot be tested.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum Chi2Error {
    #[error("the table has no cells")]
    Empty,
    #[error("row {row} has {len} cells, row 0 has {expected}")]
    Ragged {
        row: usize,
        len: usize,
        expected: usize,
    },
    #[error("the count at row {row}, column {col} is not finite")]
    NonFinite { row: usize, col: usize },
    #[error("the count at row {row}, column {col} is negative")]
    Negative { row: usize, col: usize },
    #[error(
        "the expected frequency at row {row}, column {col} is 0 (an empty row or column; \
         drop empty categories first)"
    )]
    ZeroExpected { row: usize, col: usize },
    #[error("lambda must be finite")]
    NonFiniteLambda,
    #[error("the power divergence with lambda {lambda} is undefined for a zero count")]
    Undefined { lambda: f64 },
}

/// `scipy.stats.chi2_contingency(observed, correction, lambda_)` on an r×k table of counts
/// (`observed[i][j]`, row 0 the reference). `correction` is Yates' continuity correction,
/// applied only when `dof == 1` (SciPy's default is `true`; driftgauge's `yates` option
/// defaults to `false`).
pub fn chi2_contingency<R: AsRef<[f64]>>(
    observed: &[R],
    correction: bool,
    lambda: Lambda,
) -> Result<Chi2Result, Chi2Error> {
    let lambda_value = lambda.value();
    if !lambda_value.is_finite() {
        return Err(Chi2Error::NonFiniteLambda);
    }
    let rows = observed.len();
    let cols = observed.first().map_or(0, |r| r.as_ref().len());
    if rows == 0 || cols == 0 {
        return Err(Chi2Error::Empty);
    }
    let mut flat = Vec::with_capacity(rows * cols);
    for (row, r) in observed.iter().enumerate() {
        let r = r.as_ref();
        if r.len() != cols {
            return Err(Chi2Error::Ragged {
                row,
                len: r.len(),
                expected: cols,
            });
        }
        for (col, &x) in r.iter().enumerate() {
            if !x.is_finite() {
                return Err(Chi2Error::NonFinite { row, col });
            }
            if x < 0.0 {
                return Err(Chi2Error::Negative { row, col });
            }
        }
        flat.extend_from_slice(r);
    }

    // Margins as `np.apply_over_axes(np.sum, ...)` adds them: each row pairwise; each column
    // row after row (pairwise when the table is a single column, which NumPy then sees as
    // contiguous).
    let row_sums: Vec<f64> = flat.chunks_exact(cols).map(numpy_sum).collect();
    let col_sums: Vec<f64> = if cols == 1 {
        vec![numpy_sum(&flat)]
    } else {
        let mut sums = vec![0.0; cols];
        for r in flat.chunks_exact(cols) {
            for (s, &x) in sums.iter_mut().zip(r) {
                *s += x;
            }
        }
        sums
    };
    let total = numpy_sum(&flat);
    let mut expected_flat = Vec::with_capacity(rows * cols);
    for (row, &rs) in row_sums.iter().enumerate() {
        for (col, &cs) in col_sums.iter().enumerate() {
            let e = rs * cs / total;
            // `!(e != 0)` also catches a NaN from 0/0 (an all-zero table).
            if e == 0.0 || e.is_nan() {
                return Err(Chi2Error::ZeroExpected { row, col });
            }
            expected_flat.push(e);
        }
    }
    let expected: Vec<Vec<f64>> = expected_flat
        .chunks_exact(cols)
        .map(<[f64]>::to_vec)
        .collect();

    let dof = (rows - 1) * (cols - 1);
    if dof == 0 {
        return Ok(Chi2Result {
            statistic: 0.0,
            p_value: 1.0,
            dof,
            expected,
        });
    }
    if dof == 1 && correction {
        for (o, &e) in flat.iter_mut().zip(&expected_flat) {
            let diff = e - *o;
            let direction = if diff > 0.0 {
                1.0
            } else if diff < 0.0 {
                -1.0
            } else {
                0.0
            };
            *o += diff.abs().min(0.5) * direction;
        }
    }
    let statistic = power_divergence(&flat, &expected_flat, lambda_value);
    if statistic.is_nan() {
        return Err(Chi2Error::Undefined {
            lambda: lambda_value,
        });
    }
    Ok(Chi2Result {
        statistic,
        p_value: chdtrc(dof as f64, statistic),
        dof,
        expected,
    })
}

/// SciPy's `_power_divergence` statistic: the sum of the terms, added as `np.sum` adds them.
fn power_divergence(observed: &[f64], expected: &[f64], lambda: f64) -> f64 {
    let terms: Vec<f64> = if lambda == 1.0 {
        observed
            .iter()
            .zip(expected)
            .map(|(&o, &e)| (o - e) * (o - e) / e)
            .collect()
    } else if lambda == 0.0 {
        observed
            .iter()
            .zip(expected)
            .map(|(&o, &e)| 2.0 * xlogy(o, o / e))
            .collect()
    } else if lambda == -1.0 {
        observed
            .iter()
            .zip(expected)
            .map(|(&o, &e)| 2.0 * xlogy(e, e / o))
            .collect()
    } else {
        let scale = 0.5 * lambda * (lambda + 1.0);
        observed
            .iter()
            .zip(expected)
            .map(|(&o, &e)| {
                let ratio = o / e;
                // NumPy computes `x ** 0.5` as `sqrt(x)`.
                let pow = if lambda == 0.5 {
                    ratio.sqrt()
                } else {
                    ratio.powf(lambda)
                };
                o * (pow - 1.0) / scale
            })
            .collect()
    };
    numpy_sum(&terms)
}

/// `scipy.special.xlogy`: `x * ln(y)`, and 0 when `x == 0` (unless `y` is NaN).
fn xlogy(x: f64, y: f64) -> f64 {
    if x == 0.0 && !y.is_nan() {
        0.0
    } else {
        x * y.ln()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pearson_two_by_two() {
        // scipy.stats.chi2_contingency([[10, 20], [30, 40]], correction=False)
        let r = chi2_contingency(&[[10.0, 20.0], [30.0, 40.0]], false, Lambda::Pearson).unwrap();
        assert_eq!(r.statistic, 0.7936507936507936);
        assert_eq!(r.p_value, 0.37299848361348686);
        assert_eq!(r.dof, 1);
        assert_eq!(r.expected, vec![vec![12.0, 18.0], vec![28.0, 42.0]]);
    }

    #[test]
    fn bad_tables_are_errors() {
        let empty: [[f64; 0]; 0] = [];
        assert_eq!(
            chi2_contingency(&empty, false, Lambda::Pearson),
            Err(Chi2Error::Empty)
        );
        let ragged: Vec<Vec<f64>> = vec![vec![1.0, 2.0], vec![3.0]];
        assert_eq!(
            chi2_contingency(&ragged, false, Lambda::Pearson),
            Err(Chi2Error::Ragged {
                row: 1,
                len: 1,
                expected: 2
            })
        );
        assert_eq!(
            chi2_contingency(&[[1.0, -2.0], [3.0, 4.0]], false, Lambda::Pearson),
            Err(Chi2Error::Negative { row: 0, col: 1 })
        );
        assert_eq!(
            chi2_contingency(&[[1.0, 2.0], [f64::NAN, 4.0]], false, Lambda::Pearson),
            Err(Chi2Error::NonFinite { row: 1, col: 0 })
        );
        assert_eq!(
            chi2_contingency(&[[1.0, 0.0], [3.0, 0.0]], false, Lambda::Pearson),
            Err(Chi2Error::ZeroExpected { row: 0, col: 1 })
        );
        assert_eq!(
            chi2_contingency(&[[0.0, 0.0], [0.0, 0.0]], false, Lambda::Pearson),
            Err(Chi2Error::ZeroExpected { row: 0, col: 0 })
        );
        assert_eq!(
            chi2_contingency(&[[1.0, 0.0], [3.0, 4.0]], false, Lambda::FreemanTukey),
            Err(Chi2Error::Undefined { lambda: -0.5 })
        );
        assert_eq!(
            chi2_contingency(
                &[[1.0, 2.0], [3.0, 4.0]],
                false,
                Lambda::Value(f64::INFINITY)
            ),
            Err(Chi2Error::NonFiniteLambda)
        );
    }

    #[test]
    fn mod_log_likelihood_with_a_zero_count_is_infinite() {
        let r =
            chi2_contingency(&[[1.0, 0.0], [3.0, 4.0]], false, Lambda::ModLogLikelihood).unwrap();
        assert_eq!(r.statistic, f64::INFINITY);
        assert_eq!(r.p_value, 0.0);
    }
}
