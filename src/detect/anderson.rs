//! The k-sample Anderson-Darling test (Scholz and Stephens 1987) with
//! `scipy.stats.anderson_ksamp(samples, variant=...)`'s semantics (SciPy 1.17.1).
//!
//! What is reproduced, step for step:
//!
//! - **`A2kN`**, one of the paper's three statistics (`variant`): `midrank` (equation 7,
//!   mid-rank empirical CDFs, for continuous and discrete data; SciPy's default), `right`
//!   (equation 6, right-continuous CDFs, for discrete data) or `continuous` (equation 3,
//!   which does not handle ties). Each sample's terms are added as NumPy adds them
//!   ([`super::sum`]). Where SciPy multiplies counts in `int64` (the `right` and `continuous`
//!   variants) the products are exact here (`i128`), then rounded to `f64` as NumPy rounds an
//!   `int64`; they differ only where SciPy's `int64` products would overflow (around 10^5
//!   observations and more).
//! - **The normalised statistic** `A2 = (A2kN - (k - 1)) / sigma_N`, with `sigma_N^2` from the
//!   paper's `a, b, c, d` terms, the harmonic sums added in SciPy's order.
//! - **Critical values** `b0 + b1 / sqrt(k - 1) + b2 / (k - 1)` (the paper's table 2) for
//!   the significance levels [`SIGNIFICANCE_LEVELS`].
//! - **p-value** interpolated: a least-squares quadratic of `ln(level)` on the critical
//!   values (`np.polyfit`; here Householder QR on the same column-scaled Vandermonde matrix,
//!   where NumPy calls LAPACK's SVD solver: the coefficients agree to rounding), then
//!   `exp(fit(A2))`; capped at 0.25 when `A2` is below the smallest critical value and floored
//!   at 0.001 above the largest, as SciPy does ([`PvalueLimit`] says which).
//!
//! Pure: no I/O, no panics. Fewer than 2 samples, an empty sample, non-finite values, a single
//! distinct value, or fewer than 4 observations in all are errors (SciPy raises for the first
//! three; with 3 observations its variance divides by 0).

use std::borrow::Cow;

use super::sort::{
    ascending, merge_sorted, sort_both, sort_samples, sorted_cows, PARALLEL_MIN_LEN,
};
use super::sum::{numpy_sum, top_split, StreamSum};

/// The significance levels of [`AndersonResult::critical_values`], in that order.
pub const SIGNIFICANCE_LEVELS: [f64; 7] = [0.25, 0.1, 0.05, 0.025, 0.01, 0.005, 0.001];

/// Scholz and Stephens' table 2: `critical = B0 + B1 / sqrt(k - 1) + B2 / (k - 1)`.
const B0: [f64; 7] = [0.675, 1.281, 1.645, 1.96, 2.326, 2.573, 3.085];
const B1: [f64; 7] = [-0.245, 0.25, 0.678, 1.149, 1.822, 2.364, 3.615];
const B2: [f64; 7] = [-0.105, -0.305, -0.362, -0.391, -0.396, -0.345, -0.154];

/// Which of the paper's statistics (SciPy's `variant`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Variant {
    /// Equation 7: mid-rank empirical CDFs; continuous and discrete data.
    #[default]
    Midrank,
    /// Equation 6: right-continuous empirical CDFs; discrete data.
    Right,
    /// Equation 3: continuous data without ties (ties are not adjusted for).
    Continuous,
}

impl Variant {
    /// SciPy's spelling: `"midrank"`, `"right"` or `"continuous"`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "midrank" => Some(Variant::Midrank),
            "right" => Some(Variant::Right),
            "continuous" => Some(Variant::Continuous),
            _ => None,
        }
    }

    /// `"midrank"`, `"right"` or `"continuous"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Variant::Midrank => "midrank",
            Variant::Right => "right",
            Variant::Continuous => "continuous",
        }
    }
}

/// Why the p-value is a bound rather than an interpolation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PvalueLimit {
    /// The statistic is below the smallest critical value: the p-value is at least 0.25.
    Capped,
    /// The statistic is above the largest critical value: the p-value is at most 0.001.
    Floored,
}

impl PvalueLimit {
    /// `"capped"` or `"floored"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            PvalueLimit::Capped => "capped",
            PvalueLimit::Floored => "floored",
        }
    }
}

/// The outcome of one test (SciPy's `Anderson_ksampResult`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AndersonResult {
    /// The normalised statistic `A2` (can be negative).
    pub statistic: f64,
    /// Interpolated, or 0.25 / 0.001 when `limited` says so.
    pub p_value: f64,
    /// `None` when the p-value is interpolated.
    pub limited: Option<PvalueLimit>,
    /// The critical values at [`SIGNIFICANCE_LEVELS`]; they depend only on the number of
    /// samples.
    pub critical_values: [f64; 7],
    /// The statistic before normalisation, `A2kN` (SciPy does not return it).
    pub a2kn: f64,
}

impl AndersonResult {
    /// A p-value that goes on below SciPy's floor of 0.001, for two samples: SciPy's
    /// interpolated one where it has one, else the asymptotic tail of `A2kN`,
    /// [`asymptotic_sf`]. A rule's level can be far below 0.001 (a false-alarm budget over
    /// thousands of tests a day), and a floored p-value could never reach it.
    pub fn p_value_below_floor(&self) -> f64 {
        match self.limited {
            Some(PvalueLimit::Floored) => asymptotic_sf(self.a2kn).min(self.p_value),
            _ => self.p_value,
        }
    }
}

/// `P(A2 > x)` of the two-sample statistic's limit, `sum_j Z_j^2 / (j (j + 1))` (Anderson
/// and Darling 1952), in its upper tail: `sqrt(3) erfc(sqrt(x))`. The largest weight is 1/2,
/// so the tail is that of `Z^2 / 2`, `erfc(sqrt(x))`, times `prod_{j >= 2} (1 - 2 / (j (j +
/// 1)))^(-1/2)`, which telescopes to `sqrt(3)`. Within 1 % of the exact limit from p = 0.01
/// down (at x = 3.857, SciPy's 1 % critical value of the limit, it gives 0.0101); the
/// calibration harness checks its finite-sample tail.
pub fn asymptotic_sf(x: f64) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    if x <= 0.0 {
        return 1.0;
    }
    (3f64.sqrt() * super::cephes::erfc(x.sqrt())).min(1.0)
}

/// Why the test cannot run.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum AndersonError {
    #[error("the Anderson-Darling test needs at least 2 samples, got {samples}")]
    TooFewSamples { samples: usize },
    #[error("sample {sample} is empty")]
    EmptySample { sample: usize },
    #[error("sample {sample} holds a non-finite value (NaN or infinity) at index {index}")]
    NonFinite { sample: usize, index: usize },
    #[error("the samples hold a single distinct value")]
    OneDistinctValue,
    #[error("the Anderson-Darling test needs at least 4 observations in all, got {total}")]
    TooFewObservations { total: usize },
}

/// `scipy.stats.anderson_ksamp([reference, current], variant=variant)`. For `midrank`,
/// arrays given by value (`Vec<f64>`) are sorted in place, borrowed ones (`&[f64]`) into
/// copies.
pub fn anderson_2samp<'a, 'b>(
    reference: impl Into<Cow<'a, [f64]>>,
    current: impl Into<Cow<'b, [f64]>>,
    variant: Variant,
) -> Result<AndersonResult, AndersonError> {
    let (reference, current) = (reference.into(), current.into());
    if !matches!(variant, Variant::Midrank) {
        return anderson_ksamp(&[&*reference, &*current], variant);
    }
    check(&[&*reference, &*current])?;
    let (a, b) = sorted_cows(reference, current);
    midrank_two_result(&a, &b)
}

/// [`anderson_2samp`] with `midrank` on samples the caller keeps sorted ascending (`-0.0` and
/// `0.0` in either order; `debug_assert`ed): nothing copied or sorted.
pub fn anderson_2samp_sorted(
    reference: &[f64],
    current: &[f64],
) -> Result<AndersonResult, AndersonError> {
    check(&[reference, current])?;
    debug_assert!(ascending(reference), "reference not sorted");
    debug_assert!(ascending(current), "current not sorted");
    midrank_two_result(reference, current)
}

/// `scipy.stats.anderson_ksamp(samples, variant=variant)` on `k >= 2` samples.
pub fn anderson_ksamp<S: AsRef<[f64]>>(
    samples: &[S],
    variant: Variant,
) -> Result<AndersonResult, AndersonError> {
    check(samples)?;
    if let ([a, b], Variant::Midrank) = (samples, variant) {
        // Two samples, midrank (the rules' case): walked once, nothing pooled or stored.
        let (a, b) = sorted_cows(Cow::Borrowed(a.as_ref()), Cow::Borrowed(b.as_ref()));
        return midrank_two_result(&a, &b);
    }
    let mut sorted: Vec<Vec<f64>> = samples.iter().map(|s| s.as_ref().to_vec()).collect();
    let pooled = if let [a, b] = sorted.as_mut_slice() {
        // Two samples (the rules' case): sorted side by side, pooled by a merge.
        sort_both(a, b);
        merge_sorted(a, b)
    } else {
        sorted.iter_mut().for_each(|s| sort_samples(s));
        let mut pooled: Vec<f64> = sorted.iter().flatten().copied().collect();
        sort_samples(&mut pooled);
        pooled
    };
    let n_total = pooled.len();
    let distinct = Distinct::of(&pooled);
    if distinct.values.len() < 2 {
        return Err(AndersonError::OneDistinctValue);
    }
    if n_total < 4 {
        return Err(AndersonError::TooFewObservations { total: n_total });
    }

    let a2kn = match variant {
        Variant::Midrank => midrank(&sorted, &distinct, n_total),
        Variant::Right => right(&sorted, &distinct, n_total),
        Variant::Continuous => continuous(&sorted, &pooled),
    };
    let sizes: Vec<usize> = sorted.iter().map(Vec::len).collect();
    Ok(conclude(a2kn, &sizes))
}

/// The normalised statistic, critical values and p-value of `A2kN` over samples of `sizes`.
fn conclude(a2kn: f64, sizes: &[usize]) -> AndersonResult {
    let statistic = normalise(a2kn, sizes, sizes.iter().sum());
    let critical_values = critical_values(sizes.len());
    let (p_value, limited) = p_value(statistic, &critical_values);
    AndersonResult {
        statistic,
        p_value,
        limited,
        critical_values,
        a2kn,
    }
}

/// The errors of bad samples, in the order SciPy raises them.
fn check<S: AsRef<[f64]>>(samples: &[S]) -> Result<(), AndersonError> {
    if samples.len() < 2 {
        return Err(AndersonError::TooFewSamples {
            samples: samples.len(),
        });
    }
    for (sample, s) in samples.iter().enumerate() {
        let s = s.as_ref();
        if s.is_empty() {
            return Err(AndersonError::EmptySample { sample });
        }
        if let Some(index) = s.iter().position(|x| !x.is_finite()) {
            return Err(AndersonError::NonFinite { sample, index });
        }
    }
    Ok(())
}

/// The two-sample `midrank` test on two valid samples, both sorted: one walk, nothing pooled
/// or stored.
fn midrank_two_result(a: &[f64], b: &[f64]) -> Result<AndersonResult, AndersonError> {
    Ok(conclude(midrank_two(a, b)?, &[a.len(), b.len()]))
}

/// The distinct values of the pooled sorted sample (`np.unique`, `-0.0 == 0.0`), where each
/// starts in it and how often it occurs.
struct Distinct {
    values: Vec<f64>,
    first: Vec<usize>,
    count: Vec<usize>,
}

impl Distinct {
    fn of(pooled: &[f64]) -> Self {
        let mut d = Distinct {
            values: Vec::new(),
            first: Vec::new(),
            count: Vec::new(),
        };
        let mut start = 0;
        while start < pooled.len() {
            let x = pooled[start];
            let mut end = start + 1;
            while end < pooled.len() && pooled[end] == x {
                end += 1;
            }
            d.values.push(x);
            d.first.push(start);
            d.count.push(end - start);
            start = end;
        }
        d
    }
}

/// For each value `z` of `at` (ascending): how many values of the sorted `sample` are `< z`
/// and `<= z` (`searchsorted` left and right).
fn counts_at(sample: &[f64], at: &[f64]) -> Vec<(usize, usize)> {
    let mut p = 0;
    at.iter()
        .map(|&z| {
            while p < sample.len() && sample[p] < z {
                p += 1;
            }
            let left = p;
            let mut q = p;
            while q < sample.len() && sample[q] <= z {
                q += 1;
            }
            (left, q)
        })
        .collect()
}

/// A walk over the groups of equal values (`-0.0 == 0.0`) of two sorted samples pooled, in
/// order, from positions `i` of `a` and `j` of `b` (where a group starts).
struct Groups<'s> {
    a: &'s [f64],
    b: &'s [f64],
    i: usize,
    j: usize,
}

impl Iterator for Groups<'_> {
    /// How many values of `a` are below the group's value and at or below it; the same for `b`.
    type Item = ((usize, usize), (usize, usize));

    fn next(&mut self) -> Option<Self::Item> {
        let (a, b) = (self.a, self.b);
        let v = match (a.get(self.i), b.get(self.j)) {
            (Some(&x), Some(&y)) => x.min(y),
            (Some(&x), None) => x,
            (None, Some(&y)) => y,
            (None, None) => return None,
        };
        let (i0, j0) = (self.i, self.j);
        while self.i < a.len() && a[self.i] == v {
            self.i += 1;
        }
        while self.j < b.len() && b[self.j] == v {
            self.j += 1;
        }
        Some(((i0, self.i), (j0, self.j)))
    }
}

/// [`midrank`] for two sorted samples, without pooling them: the distinct values are counted
/// (the halves below and from `a`'s median on side by side), then each sample's terms are
/// summed as they come, in NumPy's order: the two halves of NumPy's first split side by side.
fn midrank_two(a: &[f64], b: &[f64]) -> Result<f64, AndersonError> {
    let n_total = a.len() + b.len();
    let groups = |i, j| Groups { a, b, i, j };
    // No group straddles a value: everything below `a`'s median, and the rest.
    let (ia, jb) = match a.get(a.len() / 2) {
        Some(&v) => (a.partition_point(|&x| x < v), b.partition_point(|&y| y < v)),
        None => (0, 0),
    };
    let count_below = |_: ()| {
        groups(0, 0)
            .take_while(|&((i0, _), (j0, _))| i0 < ia || j0 < jb)
            .count()
    };
    let (below, from) = if n_total >= PARALLEL_MIN_LEN {
        rayon::join(|| count_below(()), || groups(ia, jb).count())
    } else {
        (count_below(()), groups(ia, jb).count())
    };
    let distinct = below + from;
    if distinct < 2 {
        return Err(AndersonError::OneDistinctValue);
    }
    if n_total < 4 {
        return Err(AndersonError::TooFewObservations { total: n_total });
    }
    let n = n_total as f64;
    let (na, nb) = (a.len() as f64, b.len() as f64);
    // The two samples' sums of `count` terms from the group the walk starts at.
    let sums = |walk: Groups, count: usize| {
        let (mut sum_a, mut sum_b) = (StreamSum::new(count), StreamSum::new(count));
        for ((i0, i1), (j0, j1)) in walk.take(count) {
            let lj = ((i1 - i0) + (j1 - j0)) as f64;
            let bj = (i0 + j0) as f64 + lj / 2.0;
            let denominator = bj * (n - bj) - (n_total * ((i1 - i0) + (j1 - j0))) as f64 / 4.0;
            let term = |left: usize, right: usize, ni: f64| {
                let m = right as f64 - (right - left) as f64 / 2.0;
                let d = n * m - bj * ni;
                lj / n * (d * d) / denominator
            };
            sum_a.push(term(i0, i1, na));
            sum_b.push(term(j0, j1, nb));
        }
        (sum_a, sum_b)
    };
    let (sa, sb) = match top_split(distinct).filter(|_| n_total >= PARALLEL_MIN_LEN) {
        Some(n2) => {
            // The second half starts at group `n2`: from the median's group when it is at or
            // past it, else from the start.
            let second = || {
                let mut walk = if n2 >= below {
                    groups(ia, jb)
                } else {
                    groups(0, 0)
                };
                let skip = if n2 >= below { n2 - below } else { n2 };
                if skip > 0 {
                    walk.nth(skip - 1);
                }
                sums(walk, distinct - n2)
            };
            let ((la, lb), (ra, rb)) = rayon::join(|| sums(groups(0, 0), n2), second);
            (
                0.0 + (la.finish_part() + ra.finish_part()),
                0.0 + (lb.finish_part() + rb.finish_part()),
            )
        }
        None => {
            let (sa, sb) = sums(groups(0, 0), distinct);
            (sa.finish(), sb.finish())
        }
    };
    let a2akn = 0.0 + sa / na + sb / nb;
    Ok(a2akn * ((n - 1.0) / n))
}

/// SciPy's `_anderson_ksamp_midrank`.
fn midrank(sorted: &[Vec<f64>], distinct: &Distinct, n_total: usize) -> f64 {
    let n = n_total as f64;
    let b: Vec<f64> = distinct
        .first
        .iter()
        .zip(&distinct.count)
        .map(|(&first, &l)| first as f64 + l as f64 / 2.0)
        .collect();
    let mut a2akn = 0.0;
    for s in sorted {
        let ni = s.len() as f64;
        let counts = counts_at(s, &distinct.values);
        let inner: Vec<f64> = counts
            .iter()
            .enumerate()
            .map(|(j, &(left, right))| {
                let lj = distinct.count[j] as f64;
                let m = right as f64 - (right - left) as f64 / 2.0;
                let d = n * m - b[j] * ni;
                lj / n * (d * d) / (b[j] * (n - b[j]) - (n_total * distinct.count[j]) as f64 / 4.0)
            })
            .collect();
        a2akn += numpy_sum(&inner) / ni;
    }
    a2akn * ((n - 1.0) / n)
}

/// SciPy's `_anderson_ksamp_right`.
fn right(sorted: &[Vec<f64>], distinct: &Distinct, n_total: usize) -> f64 {
    let n = n_total as f64;
    let at = &distinct.values[..distinct.values.len() - 1];
    let mut cumulative = Vec::with_capacity(at.len());
    let mut acc = 0usize;
    for &l in &distinct.count[..at.len()] {
        acc += l;
        cumulative.push(acc);
    }
    let mut a2kn = 0.0;
    for s in sorted {
        let ni = s.len();
        let counts = counts_at(s, at);
        let inner: Vec<f64> = counts
            .iter()
            .enumerate()
            .map(|(j, &(_, right))| {
                let lj = distinct.count[j] as f64;
                let bj = cumulative[j];
                let d = (n_total * right) as i128 - (bj * ni) as i128;
                lj / n * ((d * d) as f64) / ((bj * (n_total - bj)) as f64)
            })
            .collect();
        a2kn += numpy_sum(&inner) / ni as f64;
    }
    a2kn
}

/// SciPy's `_anderson_ksamp_continuous`.
fn continuous(sorted: &[Vec<f64>], pooled: &[f64]) -> f64 {
    let n_total = pooled.len();
    let at = &pooled[..n_total - 1];
    let mut a2kn = 0.0;
    for s in sorted {
        let ni = s.len();
        let counts = counts_at(s, at);
        let inner: Vec<f64> = counts
            .iter()
            .enumerate()
            .map(|(t, &(_, right))| {
                let j = t + 1;
                let d = (n_total * right) as i128 - (j * ni) as i128;
                ((d * d) as f64) / ((j * (n_total - j)) as f64)
            })
            .collect();
        a2kn += numpy_sum(&inner) / ni as f64;
    }
    a2kn / n_total as f64
}

/// `(A2kN - (k - 1)) / sigma_N`, with SciPy's `H`, `h`, `g`, `a`, `b`, `c`, `d`.
fn normalise(a2kn: f64, sizes: &[usize], n_total: usize) -> f64 {
    let n = n_total as f64;
    let k = sizes.len() as f64;
    let big_h = numpy_sum(&sizes.iter().map(|&s| 1.0 / s as f64).collect::<Vec<_>>());
    // hs_cs = cumsum(1 / [N-1, N-2, ..., 2]); h = hs_cs[-1] + 1; g = sum(hs_cs / [2, ..., N-1]),
    // summed as the cumulative sums come (NumPy's order), not stored.
    let mut g = StreamSum::new(n_total - 2);
    let mut acc = 0.0;
    for (t, i) in (2..n_total).rev().enumerate() {
        let x = 1.0 / i as f64;
        acc = if t == 0 { x } else { acc + x };
        g.push(acc / (t + 2) as f64);
    }
    let h = acc + 1.0;
    let g = g.finish();
    let k2 = k * k;
    let a = (4.0 * g - 6.0) * (k - 1.0) + (10.0 - 6.0 * g) * big_h;
    let b = (2.0 * g - 4.0) * k2 + 8.0 * h * k + (2.0 * g - 14.0 * h - 4.0) * big_h - 8.0 * h
        + 4.0 * g
        - 6.0;
    let c = (6.0 * h + 2.0 * g - 2.0) * k2
        + (4.0 * h - 4.0 * g + 6.0) * k
        + (2.0 * h - 6.0) * big_h
        + 4.0 * h;
    let d = (2.0 * h + 6.0) * k2 - 4.0 * h * k;
    let n3 = (n_total as u128).pow(3) as f64;
    let n2 = (n_total as u128).pow(2) as f64;
    let sigmasq = (a * n3 + b * n2 + c * n + d) / ((n - 1.0) * (n - 2.0) * (n - 3.0));
    (a2kn - (k - 1.0)) / sigmasq.sqrt()
}

fn critical_values(k: usize) -> [f64; 7] {
    let m = (k - 1) as f64;
    let mut c = [0.0; 7];
    for (i, c) in c.iter_mut().enumerate() {
        *c = B0[i] + B1[i] / m.sqrt() + B2[i] / m;
    }
    c
}

fn p_value(statistic: f64, critical: &[f64; 7]) -> (f64, Option<PvalueLimit>) {
    let min = critical.iter().copied().fold(f64::INFINITY, f64::min);
    let max = critical.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if statistic < min {
        return (0.25, Some(PvalueLimit::Capped));
    }
    if statistic > max {
        return (0.001, Some(PvalueLimit::Floored));
    }
    let log_sig = SIGNIFICANCE_LEVELS.map(f64::ln);
    let [c0, c1, c2] = polyfit2(critical, &log_sig);
    (((c0 * statistic + c1) * statistic + c2).exp(), None)
}

/// `np.polyfit(x, y, 2)` for 7 points: the least-squares `[c0, c1, c2]` of
/// `y ~ c0 x^2 + c1 x + c2`, solved on the Vandermonde matrix with its columns scaled to unit
/// norm (as NumPy scales them), by Householder QR.
#[allow(clippy::needless_range_loop)] // matrix code reads better with indices
fn polyfit2(x: &[f64; 7], y: &[f64; 7]) -> [f64; 3] {
    let mut a = [[0.0f64; 3]; 7];
    for (row, &xi) in a.iter_mut().zip(x) {
        *row = [xi * xi, xi, 1.0];
    }
    let mut scale = [0.0f64; 3];
    for (c, s) in scale.iter_mut().enumerate() {
        *s = a.iter().map(|r| r[c] * r[c]).sum::<f64>().sqrt();
    }
    for row in &mut a {
        for c in 0..3 {
            row[c] /= scale[c];
        }
    }
    let mut rhs = *y;
    for col in 0..3 {
        let norm = (col..7).map(|r| a[r][col] * a[r][col]).sum::<f64>().sqrt();
        if norm == 0.0 {
            continue;
        }
        let alpha = if a[col][col] > 0.0 { -norm } else { norm };
        let mut v = [0.0f64; 7];
        for r in col..7 {
            v[r] = a[r][col];
        }
        v[col] -= alpha;
        let vv: f64 = (col..7).map(|r| v[r] * v[r]).sum();
        if vv == 0.0 {
            continue;
        }
        for c in col..3 {
            let dot: f64 = (col..7).map(|r| v[r] * a[r][c]).sum();
            let f = 2.0 * dot / vv;
            for r in col..7 {
                a[r][c] -= f * v[r];
            }
        }
        let dot: f64 = (col..7).map(|r| v[r] * rhs[r]).sum();
        let f = 2.0 * dot / vv;
        for r in col..7 {
            rhs[r] -= f * v[r];
        }
    }
    // Back substitution on the upper triangle.
    let mut coef = [0.0f64; 3];
    for c in (0..3).rev() {
        let s: f64 = (c + 1..3).map(|j| a[c][j] * coef[j]).sum();
        coef[c] = (rhs[c] - s) / a[c][c];
    }
    for (c, s) in coef.iter_mut().zip(scale) {
        *c /= s;
    }
    coef
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn borrowed_given_and_sorted_samples_are_one_midrank_test() {
        for (a, b, sa, sb) in crate::detect::cvm::tests::sample_pairs() {
            let borrowed = anderson_2samp(&a, &b, Variant::Midrank);
            let given = anderson_2samp(a.clone(), b.clone(), Variant::Midrank);
            let k = anderson_ksamp(&[&a, &b], Variant::Midrank);
            let sorted = anderson_2samp_sorted(&sa, &sb);
            let (n, m) = (a.len(), b.len());
            let bits = |r: &Result<AndersonResult, AndersonError>| {
                r.as_ref()
                    .map(|r| (r.statistic.to_bits(), r.p_value.to_bits(), r.a2kn.to_bits()))
                    .ok()
            };
            assert!(bits(&borrowed).is_some(), "{n} {m}: {borrowed:?}");
            for other in [&given, &k, &sorted] {
                assert_eq!(bits(other), bits(&borrowed), "{n} {m}");
            }
        }
        assert_eq!(
            anderson_2samp(vec![1.0, 2.0], vec![0.5, f64::INFINITY], Variant::Midrank)
                .map(|r| r.statistic),
            Err(AndersonError::NonFinite {
                sample: 1,
                index: 1
            })
        );
    }

    #[test]
    #[allow(clippy::approx_constant)] // 2.718 is a critical value, not e
    fn scipy_small_example() {
        // scipy.stats.anderson_ksamp([[0.1, 0.5, 0.9], [0.2, 0.3, 0.6, 0.7]],
        //                            variant="midrank")
        let r = anderson_2samp(&[0.1, 0.5, 0.9], &[0.2, 0.3, 0.6, 0.7], Variant::Midrank).unwrap();
        assert_eq!(r.statistic, -0.8107333768451597);
        assert_eq!(r.p_value, 0.25);
        assert_eq!(r.limited, Some(PvalueLimit::Capped));
        assert_eq!(
            r.critical_values,
            [
                0.32500000000000007,
                1.226,
                1.9609999999999999,
                2.718,
                3.752,
                4.592,
                6.546
            ]
        );
    }

    #[test]
    fn the_two_sample_walk_is_the_pooled_midrank_bit_for_bit() {
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        let mut draw = |n: usize, shift: f64, round: f64| -> Vec<f64> {
            (0..n)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let u = (x >> 11) as f64 / (1u64 << 53) as f64;
                    ((u * u + shift) * round).round() / round
                })
                .collect()
        };
        // Large enough for the side-by-side walks; ties (rounded values) and none; zeros of
        // both signs.
        for (n, m, round) in [
            (150_000, 90_000, 1e4),
            (80_000, 200_000, 1e12),
            (70_000, 70_000, 50.0),
        ] {
            let (mut a, mut b) = (draw(n, 0.0, round), draw(m, 0.01, round));
            a[7] = -0.0;
            b[9] = 0.0;
            sort_both(&mut a, &mut b);
            let pooled = merge_sorted(&a, &b);
            let want = midrank(&[a.clone(), b.clone()], &Distinct::of(&pooled), n + m);
            let got = midrank_two(&a, &b).expect("many distinct values");
            assert_eq!(
                got.to_bits(),
                want.to_bits(),
                "{n} x {m}, rounded to 1/{round}"
            );
        }
    }

    #[test]
    fn polyfit_recovers_a_quadratic() {
        let x = [0.3, 1.2, 1.9, 2.7, 3.7, 4.6, 6.5];
        let y = x.map(|t| 0.5 * t * t - 2.0 * t + 3.0);
        let c = polyfit2(&x, &y);
        for (got, want) in c.iter().zip([0.5, -2.0, 3.0]) {
            assert!((got - want).abs() < 1e-13, "{c:?}");
        }
    }

    #[test]
    fn bad_inputs_are_errors() {
        let one: [&[f64]; 1] = [&[1.0, 2.0]];
        assert_eq!(
            anderson_ksamp(&one, Variant::Midrank),
            Err(AndersonError::TooFewSamples { samples: 1 })
        );
        assert_eq!(
            anderson_2samp(&[1.0, 2.0], &[], Variant::Right),
            Err(AndersonError::EmptySample { sample: 1 })
        );
        assert_eq!(
            anderson_2samp(&[1.0, f64::NAN], &[1.0], Variant::Right),
            Err(AndersonError::NonFinite {
                sample: 0,
                index: 1
            })
        );
        assert_eq!(
            anderson_2samp(&[1.0, 1.0], &[1.0, -0.0 + 1.0], Variant::Midrank),
            Err(AndersonError::OneDistinctValue)
        );
        assert_eq!(
            anderson_2samp(&[1.0, 2.0], &[3.0], Variant::Continuous),
            Err(AndersonError::TooFewObservations { total: 3 })
        );
    }
}
