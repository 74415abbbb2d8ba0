//! Two-sample Kolmogorov–Smirnov test with `scipy.stats.ks_2samp`'s semantics (SciPy 1.17.1).
//!
//! `reference` is SciPy's `data1` and `current` its `data2`. What is reproduced, rule by rule:
//!
//! - **Statistic and location.** For every `x` of `sorted(reference) ++ sorted(current)`,
//!   `diff(x) = (#ref <= x) as f64 / n as f64 - (#cur <= x) as f64 / m as f64` (this float
//!   form, whose rounding decides ties); the location is the value at the *first* index of the
//!   largest (smallest) `diff` in that concatenated order. It is computed by a merge walk
//!   over the two sorted samples, without materialising `diff`: equal values share the same
//!   `diff`, so the first index of an extreme is the first element of the first group reaching
//!   it in the reference part, else in the current part. `-0.0 == 0.0` when counting. Large
//!   samples are walked only where an extreme can be: exact counts per segment of the value
//!   axis bound `diff` inside each segment, and the other segments are skipped (sorted
//!   input: segments of 64 values found by galloping; unsorted input: value buckets counted
//!   in one pass, and only the candidate buckets' values collected, sorted and walked, so a
//!   large sample is never sorted at all; with few distinct values, as in rounded data, a
//!   bucket that holds a single value is one group whose `diff` its counts give exactly, so
//!   it is neither collected nor sorted), and only for the side of `diff` the alternative
//!   needs (for `two-sided`, the side that can still win). The bounds are exact integers;
//!   with `n*m <= 2^49` a float `diff` can never beat one from a larger exact value, so the
//!   result is the plain walk's, bit for bit (see "Walking only where an extreme can be").
//! - **Sign.** `greater` reports `max diff` with sign +1, `less` reports `clip(-min diff, 0, 1)`
//!   with sign -1, `two-sided` the `less` triple only when strictly larger.
//! - **p-value.** `auto` is exact iff `max(n, m) <= 10000`; a forced `exact` falls back to
//!   asymptotic when `lcm(n, m)` is too large for SciPy's int32 lattice or when the exact lattice
//!   computation fails (overflow, or a result outside [0, 1]); when exact is attempted `D` is
//!   first rounded to `h / lcm(n, m)`. Exact p-values use SciPy's lattice-path recursions
//!   (the two-sided one computing several lattice rows at once, same operations, same bits);
//!   asymptotic two-sided uses [`super::kstwo::sf`]`(D, round(n*m/(n+m)))` (not the Kolmogorov
//!   limit) and one-sided uses Hodges' approximation.
//!
//! Pure: no I/O, no locks, no panics on any input; NaN and ±inf are rejected with an error.
//! [`ks_2samp`] on 2^17 values or more runs its counting passes for the two samples as two
//! tasks of rayon's pool (`rayon::join`).

mod walk;

use super::cephes::binom;
use super::kstwo;
use super::sort::{ascending, sort_samples};
use walk::{extremes, unsorted_extremes, Extremes};

/// Which alternative hypothesis is tested (SciPy's `alternative`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Alternative {
    #[default]
    TwoSided,
    Less,
    Greater,
}

impl Alternative {
    /// SciPy's spelling: `"two-sided"`, `"less"` or `"greater"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Alternative::TwoSided => "two-sided",
            Alternative::Less => "less",
            Alternative::Greater => "greater",
        }
    }

    /// Parses SciPy's spelling (exactly `"two-sided"`, `"less"` or `"greater"`).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "two-sided" => Some(Alternative::TwoSided),
            "less" => Some(Alternative::Less),
            "greater" => Some(Alternative::Greater),
            _ => None,
        }
    }
}

/// How the p-value is requested (SciPy's `method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Method {
    #[default]
    Auto,
    Exact,
    Asymp,
}

impl Method {
    /// SciPy's spelling: `"auto"`, `"exact"` or `"asymp"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Method::Auto => "auto",
            Method::Exact => "exact",
            Method::Asymp => "asymp",
        }
    }

    /// Parses SciPy's spelling (exactly `"auto"`, `"exact"` or `"asymp"`).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "auto" => Some(Method::Auto),
            "exact" => Some(Method::Exact),
            "asymp" => Some(Method::Asymp),
            _ => None,
        }
    }
}

/// The p-value method that actually ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MethodUsed {
    Exact,
    Asymp,
}

impl MethodUsed {
    /// `"exact"` or `"asymp"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            MethodUsed::Exact => "exact",
            MethodUsed::Asymp => "asymp",
        }
    }
}

/// The outcome of one test, field for field SciPy's `KstestResult`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KsResult {
    /// `D`; rounded to `h / lcm(n, m)` whenever the exact p-value was attempted.
    pub statistic: f64,
    /// In [0, 1]. NaN only where SciPy gives NaN: asymptotic two-sided with `n = m = 1`.
    pub p_value: f64,
    /// SciPy's `statistic_location`: the data value where `D` is reached. Compare with `==`:
    /// a winning zero may come back as `-0.0` or `0.0`.
    pub location: f64,
    /// SciPy's `statistic_sign`: +1 when the reference ECDF is above the current one there.
    pub sign: i8,
    /// What actually ran.
    pub method: MethodUsed,
}

/// Why a test could not run.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum KsError {
    #[error("the {which} sample is empty")]
    EmptySample { which: &'static str },
    #[error("the {which} sample holds a non-finite value (NaN or infinity) at index {index}")]
    NonFinite { which: &'static str, index: usize },
}

const REFERENCE: &str = "reference";
const CURRENT: &str = "current";

/// `max(n, m)` up to which `auto` computes the exact p-value (SciPy's `MAX_AUTO_N`).
const MAX_AUTO_N: usize = 10_000;

fn check_sizes(reference: &[f64], current: &[f64]) -> Result<(), KsError> {
    if reference.is_empty() {
        return Err(KsError::EmptySample { which: REFERENCE });
    }
    if current.is_empty() {
        return Err(KsError::EmptySample { which: CURRENT });
    }
    Ok(())
}

fn validate(reference: &[f64], current: &[f64]) -> Result<(), KsError> {
    check_sizes(reference, current)?;
    if let Some(index) = reference.iter().position(|x| !x.is_finite()) {
        return Err(KsError::NonFinite {
            which: REFERENCE,
            index,
        });
    }
    if let Some(index) = current.iter().position(|x| !x.is_finite()) {
        return Err(KsError::NonFinite {
            which: CURRENT,
            index,
        });
    }
    Ok(())
}

/// Two-sample KS test, `scipy.stats.ks_2samp(reference, current, alternative, method)`.
///
/// Small samples are sorted (copies, by [`sort_samples`]) and walked as in
/// [`ks_2samp_sorted`]. Large ones are not sorted at all: a few passes count the values per
/// value bucket, and only the buckets that can hold the extremes are sorted and walked (see
/// "Walking only where an extreme can be" in the source); samples of 2^17 values or more in
/// all run the two samples' passes side by side on rayon's pool. Errors name the sample and
/// the index in the slice as given.
pub fn ks_2samp(
    reference: &[f64],
    current: &[f64],
    alternative: Alternative,
    method: Method,
) -> Result<KsResult, KsError> {
    check_sizes(reference, current)?;
    // Large samples: no sort at all, only the values near the extremes are sorted.
    let ext = match unsorted_extremes(reference, current, alternative) {
        Some(ext) => ext,
        None => {
            validate(reference, current)?;
            // The radix sort puts -0.0 before 0.0 (total_cmp order); either order gives the
            // same counts, and this one matches SciPy's reported location in
            // `negzero_location_test`.
            let mut a = reference.to_vec();
            let mut b = current.to_vec();
            sort_samples(&mut a);
            sort_samples(&mut b);
            extremes(&a, &b, alternative)
        }
    };
    Ok(conclude(
        ext,
        reference.len(),
        current.len(),
        alternative,
        method,
    ))
}

/// Two-sample KS test on samples the caller keeps sorted ascending (the hot path).
///
/// Both slices must be sorted ascending (`-0.0` and `0.0` in either order); this is
/// `debug_assert`ed. O(n + m) for the statistic, no allocation.
pub fn ks_2samp_sorted(
    reference: &[f64],
    current: &[f64],
    alternative: Alternative,
    method: Method,
) -> Result<KsResult, KsError> {
    validate(reference, current)?;
    debug_assert!(ascending(reference), "reference not sorted");
    debug_assert!(ascending(current), "current not sorted");
    let ext = extremes(reference, current, alternative);
    Ok(conclude(
        ext,
        reference.len(),
        current.len(),
        alternative,
        method,
    ))
}

/// The statistic alone of two samples kept sorted ascending: for a caller that compares it
/// with a critical distance found once by [`p_value_of`] (the calibration harness).
pub fn statistic_sorted(reference: &[f64], current: &[f64], alternative: Alternative) -> f64 {
    pick(&extremes(reference, current, alternative), alternative).0
}

/// The p-value [`ks_2samp`] reports for statistic `d` of samples of sizes `n` and `m`.
pub fn p_value_of(n: usize, m: usize, d: f64, alternative: Alternative, method: Method) -> f64 {
    if n == 0 || m == 0 {
        return f64::NAN;
    }
    p_value(n, m, d, alternative, method).1
}

/// `(D, location, sign)` for `alternative` from the extremes, as SciPy picks them.
fn pick(ext: &Extremes, alternative: Alternative) -> (f64, f64, i8) {
    // minS = clip(-diff[argmin], 0, 1), numpy's clip: max first, then min.
    let neg = -ext.min_diff;
    let min_s = if neg > 0.0 { neg } else { 0.0 };
    let min_s = if min_s < 1.0 { min_s } else { 1.0 };
    let max_s = ext.max_diff;
    match alternative {
        Alternative::Less => (min_s, ext.min_loc, -1),
        Alternative::TwoSided if min_s > max_s => (min_s, ext.min_loc, -1),
        _ => (max_s, ext.max_loc, 1),
    }
}

/// The statistic, its location and sign from the extremes, then the p-value.
fn conclude(
    ext: Extremes,
    n: usize,
    m: usize,
    alternative: Alternative,
    method: Method,
) -> KsResult {
    let (d, location, sign) = pick(&ext, alternative);
    let (statistic, p_value, method) = p_value(n, m, d, alternative, method);
    KsResult {
        statistic,
        p_value,
        location,
        sign,
        method,
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// `(statistic, p, method used)` for `D = d` from samples of sizes `n1`, `n2`.
fn p_value(
    n1: usize,
    n2: usize,
    d: f64,
    alternative: Alternative,
    method: Method,
) -> (f64, f64, MethodUsed) {
    let (n1, n2) = (n1 as u64, n2 as u64);
    let g = gcd(n1, n2);
    let n1g = n1 / g;
    let n2g = n2 / g;
    let try_exact = match method {
        Method::Auto => n1.max(n2) <= MAX_AUTO_N as u64,
        // "If lcm(n1, n2) is too big, switch from exact to asymp" (int32 lattice).
        Method::Exact => (n1g as f64) < f64::from(i32::MAX) / (n2g as f64),
        Method::Asymp => false,
    };
    let mut d = d;
    if try_exact {
        let (ok, d_rounded, prob) = attempt_exact(n1, n2, g, d, alternative);
        d = d_rounded;
        if ok {
            return (d, clip01(prob), MethodUsed::Exact);
        }
    }
    (
        d,
        clip01(asymptotic(n1, n2, d, alternative)),
        MethodUsed::Asymp,
    )
}

fn clip01(p: f64) -> f64 {
    if p.is_nan() {
        return p;
    }
    let p = if p > 0.0 { p } else { 0.0 };
    if p < 1.0 {
        p
    } else {
        1.0
    }
}

/// Smirnov's asymptotics as SciPy applies them.
fn asymptotic(n1: u64, n2: u64, d: f64, alternative: Alternative) -> f64 {
    let (m, n) = if n1 >= n2 {
        (n1 as f64, n2 as f64)
    } else {
        (n2 as f64, n1 as f64)
    };
    let en = m * n / (m + n);
    match alternative {
        Alternative::TwoSided => kstwo::sf(d, en.round_ties_even()),
        _ => {
            let z = en.sqrt() * d;
            // Hodges' approximation, Eqn 5.3; m is the larger size.
            let expt = -2.0 * (z * z) - 2.0 * z * (m + 2.0 * n) / (m * n * (m + n)).sqrt() / 3.0;
            expt.exp()
        }
    }
}

/// SciPy's `_attempt_exact_2kssamp`: `(success, rounded d, p)`.
fn attempt_exact(n1: u64, n2: u64, g: u64, d: f64, alternative: Alternative) -> (bool, f64, f64) {
    let lcm = (n1 / g) as u128 * n2 as u128;
    let lcm_f = lcm as f64;
    let h_f = (d * lcm_f).round_ties_even();
    let h = if h_f > 0.0 { h_f as u64 } else { 0 };
    let d = (h as f64) * 1.0 / lcm_f;
    if h == 0 {
        return (true, d, 1.0);
    }
    let prob = match alternative {
        Alternative::TwoSided => {
            if n1 == n2 {
                Some(prob_outside_square(n1, h))
            } else {
                Some(outer_prob_inside_method(n1, n2, g, h))
            }
        }
        _ => {
            if n1 == n2 {
                // binom(2n, n-h) / binom(2n, n), evaluated as a product.
                let n1f = n1 as f64;
                let mut p = 1.0;
                for j in 0..h {
                    let jf = j as f64;
                    p *= (n1f - jf) / (n1f + jf + 1.0);
                }
                Some(p)
            } else {
                one_sided_unequal(n1, n2, g, h)
            }
        }
    };
    match prob {
        Some(p) if (0.0..=1.0).contains(&p) => (true, d, p),
        _ => (false, d, f64::NAN),
    }
}

/// `num_paths / binom(n1+n2, n1)`, or `None` where SciPy's floating-point checks fail.
fn one_sided_unequal(n1: u64, n2: u64, g: u64, h: u64) -> Option<f64> {
    let bin = binom((n1 + n2) as f64, n1 as f64);
    if !bin.is_finite() {
        return None;
    }
    let num_paths = count_paths_outside(n1, n2, g, h)?;
    if num_paths > bin {
        return None;
    }
    Some(num_paths / bin)
}

/// SciPy's `_compute_prob_outside_square(n, h)`: `P(D_{n,n} >= h/n)`.
///
/// `2 * (C(2n, n-h) - C(2n, n-2h) + ...) / C(2n, n)` by a Horner-like scheme.
fn prob_outside_square(n: u64, h: u64) -> f64 {
    let nf = n as f64;
    let mut p = 0.0;
    let mut k = n / h;
    loop {
        let kh = (k * h) as f64;
        let mut p1 = 1.0;
        for j in 0..h {
            let jf = j as f64;
            p1 = (nf - kh - jf) * p1 / (nf + kh + jf + 1.0);
        }
        p = p1 * (1.0 - p);
        if k == 0 {
            break;
        }
        k -= 1;
    }
    2.0 * p
}

/// SciPy's `_compute_outer_prob_inside_method(m, n, g, h)`: the proportion of lattice paths
/// that leave the band `|x/m - y/n| < h/lcm`, computed directly as `1 - p` (Viehmann).
///
/// Row `i` of the lattice is `R_i[jj] = (P_i[jj] * i + R_i[jj-1] * j) / (i + j)` over the
/// band `j = minj_i + jj`, where `P_i[jj]` is row `i-1` at `jj + shift_i` (1 outside what row
/// `i-1` stored). Each cell is a division on the row's dependency chain, so one row at a time
/// runs at the division's latency. [`LATTICE_ROWS`] consecutive rows are computed together
/// instead, each lagging the one above by `shift + 2` cells so that what it reads was written
/// a step earlier: independent chains, the same operations on the same operands in the same
/// order, so the same bits as SciPy's row-by-row loop (kept as `outer_prob_rowwise` in the
/// tests, which compare the two).
fn outer_prob_inside_method(m: u64, n: u64, g: u64, h: u64) -> f64 {
    let (m, n) = if m < n { (n, m) } else { (m, n) };
    let (m, n, g, h) = (m as i64, n as i64, g as i64, h as i64);
    let mg = m / g;
    let ng = n / g;
    let mgf = mg as f64;
    let maxj0: i64 = ((h as f64) / mgf).ceil().min((n + 1) as f64) as i64;
    let len_a = (2 * maxj0 + 2).min(n + 1).max(1) as usize;
    let mut rows = Vec::with_capacity(m.max(0) as usize);
    let mut lastminj = 0i64;
    for i in 1..=m {
        let minj = ((((ng * i - h) as f64) / mgf).floor() as i64 + 1)
            .max(0)
            .min(n);
        let maxj = (((ng * i + h) as f64) / mgf).ceil().min((n + 1) as f64) as i64;
        if maxj <= minj {
            // SciPy returns at the first such row; nothing before it matters.
            return 1.0;
        }
        rows.push(LatticeRow {
            minj: minj as usize,
            width: (maxj - minj) as usize,
            shift: (minj - lastminj) as usize,
            fi: i as f64,
            val0: if minj == 0 { 0.0 } else { 1.0 },
        });
        lastminj = minj;
    }
    let Some(&last) = rows.last() else {
        return 1.0;
    };
    // Row 0: zeros on 0..maxj0 (then ones, which `lim` stands for).
    let mut a = vec![0.0f64; len_a];
    let mut lim = (maxj0.max(0) as usize).min(len_a);
    for group in rows.chunks(LATTICE_ROWS) {
        lim = lattice_rows(group, &mut a, lim);
    }
    let idx = last.width - 1;
    if idx < lim {
        a[idx]
    } else {
        1.0
    }
}

/// Rows computed together by [`outer_prob_inside_method`].
const LATTICE_ROWS: usize = 6;

/// One row of the lattice: its band `minj..minj + width`, how far `minj` moved from the row
/// above, `i` as a float, and the value left of the band.
#[derive(Debug, Clone, Copy)]
struct LatticeRow {
    minj: usize,
    width: usize,
    shift: usize,
    fi: f64,
    val0: f64,
}

/// Computes `rows` (at most [`LATTICE_ROWS`]) in place in `a`, whose first `lim` cells hold
/// the row above them (cells past `lim` count as 1); returns the new `lim`.
fn lattice_rows(rows: &[LatticeRow], a: &mut [f64], lim: usize) -> usize {
    const K: usize = LATTICE_ROWS;
    let k = rows.len().min(K);
    let len_a = a.len();
    let mut off = [0usize; K];
    let mut lims = [0usize; K];
    let mut val = [0.0f64; K];
    let mut prev_lim = lim;
    for q in 0..k {
        if q > 0 {
            off[q] = off[q - 1] + rows[q].shift + 2;
        }
        lims[q] = prev_lim;
        prev_lim = rows[q].width.min(len_a);
        val[q] = rows[q].val0;
    }
    let end = (0..k).map(|q| off[q] + rows[q].width).max().unwrap_or(0);
    // One step of every row that is inside its band at time t.
    let step = |t: usize, val: &mut [f64; K], a: &mut [f64]| {
        for q in 0..k {
            let row = &rows[q];
            let Some(jj) = t.checked_sub(off[q]) else {
                continue;
            };
            if jj >= row.width {
                continue;
            }
            let idx = jj + row.shift;
            let prev = if idx < lims[q] { a[idx] } else { 1.0 };
            let j = (jj + row.minj) as f64;
            val[q] = (prev * row.fi + val[q] * j) / (row.fi + j);
            if jj < len_a {
                a[jj] = val[q];
            }
        }
    };
    // Steady state, when a full group has every row inside its band: no per-row checks but
    // the read limit.
    let (t0, t1) = if k == K {
        let t0 = off[K - 1];
        let t1 = (0..K).map(|q| off[q] + rows[q].width).min().unwrap_or(0);
        (t0, t1.max(t0))
    } else {
        (end, end)
    };
    for t in 0..t0 {
        step(t, &mut val, a);
    }
    let mut fi = [0.0f64; K];
    let mut jf = [0.0f64; K];
    let mut jj = [0usize; K];
    let mut shift = [0usize; K];
    for q in 0..k {
        fi[q] = rows[q].fi;
        shift[q] = rows[q].shift;
        jj[q] = t0.saturating_sub(off[q]);
        jf[q] = (jj[q] + rows[q].minj) as f64;
    }
    for _ in t0..t1 {
        let mut prev = [1.0f64; K];
        for q in 0..K {
            let idx = jj[q] + shift[q];
            if idx < lims[q] {
                prev[q] = a[idx];
            }
        }
        for q in 0..K {
            val[q] = (prev[q] * fi[q] + val[q] * jf[q]) / (fi[q] + jf[q]);
        }
        for q in 0..K {
            if jj[q] < len_a {
                a[jj[q]] = val[q];
            }
            jj[q] += 1;
            jf[q] += 1.0;
        }
    }
    for t in t1..end {
        step(t, &mut val, a);
    }
    prev_lim
}

/// SciPy's `_count_paths_outside_method(m, n, g, h)`: the number of lattice paths from (0, 0)
/// to (m, n) that reach `m*y <= n*x - h*g` (Hodges), in floating point. `None` where SciPy's
/// `errstate(over/invalid="raise")` would raise.
fn count_paths_outside(m: u64, n: u64, g: u64, h: u64) -> Option<f64> {
    let (m, n) = if m < n { (n, m) } else { (m, n) };
    let mg = m / g;
    let ng = n / g;
    // lxj = n + (mg - h) // mg, with Python's floor division (h may exceed mg).
    let (mg_i, h_i, n_i, ng_i) = (mg as i128, h as i128, n as i128, ng as i128);
    let lxj = n_i + (mg_i - h_i).div_euclid(mg_i);
    if lxj <= 0 {
        return Some(binom((m + n) as f64, n as f64));
    }
    let lxj = lxj as usize;
    // x values where n*x/m + ng*h crosses an integer.
    let xj: Vec<f64> = (0..lxj as i128)
        .map(|j| (h_i + mg_i * j + ng_i - 1).div_euclid(ng_i) as f64)
        .collect();
    let mut b = vec![0.0f64; lxj];
    b[0] = 1.0;
    for j in 1..lxj {
        let jf = j as f64;
        let mut bj = binom(xj[j] + jf, jf);
        for i in 0..j {
            let ji = (j - i) as f64;
            let bin = binom(xj[j] - xj[i] + ji, ji);
            bj -= bin * b[i];
        }
        if !bj.is_finite() {
            return None;
        }
        b[j] = bj;
    }
    let (mf, nf) = (m as f64, n as f64);
    let mut num_paths = 0.0;
    for j in 0..lxj {
        let jf = j as f64;
        let bin = binom((mf - xj[j]) + (nf - jf), nf - jf);
        num_paths += b[j] * bin;
    }
    num_paths.is_finite().then_some(num_paths)
}

#[cfg(test)]
mod tests {
    use super::walk::*;
    use super::*;
    use crate::detect::sort::{from_sort_key, sort_key};

    fn run(a: &[f64], b: &[f64], alt: Alternative, method: Method) -> KsResult {
        match ks_2samp(a, b, alt, method) {
            Ok(r) => r,
            Err(e) => panic!("unexpected error {e}"),
        }
    }

    /// SciPy's loop as it is written, one row at a time: the oracle for
    /// [`outer_prob_inside_method`].
    fn outer_prob_rowwise(m: u64, n: u64, g: u64, h: u64) -> f64 {
        let (m, n) = if m < n { (n, m) } else { (m, n) };
        let (m, n, g, h) = (m as i64, n as i64, g as i64, h as i64);
        let mg = m / g;
        let ng = n / g;
        let mgf = mg as f64;
        let mut minj: i64 = 0;
        let mut maxj: i64 = ((h as f64) / mgf).ceil().min((n + 1) as f64) as i64;
        let mut curlen = maxj - minj;
        let len_a = (2 * maxj + 2).min(n + 1).max(1) as usize;
        let mut a = vec![1.0f64; len_a];
        for e in a.iter_mut().take((maxj - minj).max(0) as usize) {
            *e = 0.0;
        }
        for i in 1..=m {
            let lastminj = minj;
            let lastlen = curlen;
            minj = ((((ng * i - h) as f64) / mgf).floor() as i64 + 1).max(0);
            minj = minj.min(n);
            maxj = (((ng * i + h) as f64) / mgf).ceil().min((n + 1) as f64) as i64;
            if maxj <= minj {
                return 1.0;
            }
            let fi = i as f64;
            let mut val = if minj == 0 { 0.0 } else { 1.0 };
            let shift = (minj - lastminj) as usize;
            let width = (maxj - minj) as usize;
            for jj in 0..width {
                let j = (jj as i64 + minj) as f64;
                // Entries past the stored window are 1 (paths that already left the band).
                let prev = a.get(jj + shift).copied().unwrap_or(1.0);
                val = (prev * fi + val * j) / (fi + j);
                if let Some(slot) = a.get_mut(jj) {
                    *slot = val;
                }
            }
            curlen = maxj - minj;
            if lastlen > curlen {
                // Set some carried-over elements to 1.
                let from = (maxj - minj) as usize;
                let to = ((maxj - minj + (lastlen - curlen)) as usize).min(len_a);
                for e in a.iter_mut().take(to).skip(from) {
                    *e = 1.0;
                }
            }
        }
        a.get((maxj - minj - 1).max(0) as usize)
            .copied()
            .unwrap_or(1.0)
    }

    #[test]
    fn interleaved_lattice_rows_give_scipys_bits() {
        // Every (m, n, h) with m, n < 24, and random larger ones.
        for m in 1..24u64 {
            for n in 1..24u64 {
                let g = gcd(m, n);
                for h in 1..=(m / g * n) {
                    let want = outer_prob_rowwise(m, n, g, h);
                    let got = outer_prob_inside_method(m, n, g, h);
                    assert_eq!(
                        got.to_bits(),
                        want.to_bits(),
                        "m={m} n={n} h={h}: {got} {want}"
                    );
                }
            }
        }
        let mut rng = Lcg(3);
        for _ in 0..25 {
            let m = 1 + rng.below(1500);
            let n = 1 + rng.below(1500);
            let g = gcd(m, n);
            let h = 1 + rng.below(m / g * n / 6 + 1);
            let want = outer_prob_rowwise(m, n, g, h);
            let got = outer_prob_inside_method(m, n, g, h);
            assert_eq!(
                got.to_bits(),
                want.to_bits(),
                "m={m} n={n} h={h}: {got} {want}"
            );
        }
    }

    fn plain(a: &[f64], b: &[f64]) -> Extremes {
        let mut x = a.to_vec();
        let mut y = b.to_vec();
        x.sort_unstable_by(f64::total_cmp);
        y.sort_unstable_by(f64::total_cmp);
        let mut t = Tracker::new(a.len(), b.len());
        t.walk(&x, &y, 0, 0);
        t.finish()
    }

    const ALTERNATIVES: [Alternative; 3] = [
        Alternative::TwoSided,
        Alternative::Less,
        Alternative::Greater,
    ];

    /// What SciPy reports from the extremes, as bits: the pruned walks may leave the side an
    /// alternative does not use (or that cannot win) short of the plain walk's.
    fn picked(e: &Extremes, alternative: Alternative) -> (u64, u64, i8) {
        let (d, loc, sign) = pick(e, alternative);
        (d.to_bits(), loc.to_bits(), sign)
    }

    struct Lcg(u64);

    impl Lcg {
        fn next(&mut self) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            self.0 >> 11
        }
        fn below(&mut self, k: u64) -> u64 {
            self.next() % k
        }
        fn unit(&mut self) -> f64 {
            self.next() as f64 / (1u64 << 53) as f64
        }
        /// One value of kind `kind`: continuous, ties, signed zeros, wide magnitudes,
        /// subnormals, huge values, a constant.
        fn value(&mut self, kind: u64, shift: f64) -> f64 {
            match kind {
                0 => self.unit() + shift,
                1 => self.below(5) as f64 + if shift > 0.0 { 1.0 } else { 0.0 },
                2 => {
                    if self.below(2) == 0 {
                        0.0
                    } else {
                        -0.0
                    }
                }
                3 => {
                    ((self.unit() * 80.0 - 40.0) + shift).exp()
                        * if self.below(2) == 0 { 1.0 } else { -1.0 }
                }
                4 => {
                    f64::from_bits(self.below(1 << 52))
                        * if self.below(2) == 0 { 1.0 } else { -1.0 }
                }
                5 => {
                    [f64::MAX, -f64::MAX, 1.7e308, -1.7e308, 0.0, -0.0, 1.0][self.below(7) as usize]
                }
                6 => 2.5,
                7 => (self.below(1000) as f64 / 10.0).round() + shift,
                // Mostly moderate, a few huge outliers (clamped into the edge buckets).
                8 => match self.below(50) {
                    0 => f64::MAX,
                    1 => -1e300,
                    _ => self.unit() + shift,
                },
                // Rounded to 0.01 (few distinct values, one a bucket when samples are large).
                10 => {
                    ((self.unit() + self.unit() + self.unit() - 1.5 + shift) * 100.0).round()
                        / 100.0
                }
                // Rounded to 0.01 with signed zeros and a few values sharing a bucket.
                11 => match self.below(20) {
                    0 => -0.0,
                    1 => 0.0,
                    2 => 0.5 + self.below(3) as f64 * 1e-12,
                    _ => ((self.unit() - 0.5 + shift) * 100.0).round() / 100.0,
                },
                // The current sample entirely above the reference (D = 1 at the edge).
                _ => self.unit() + if shift > 0.0 { 10.0 } else { 0.0 },
            }
        }
    }

    #[test]
    fn both_runs_both_sides_and_resumes_a_panic_of_either() {
        for parallel in [false, true] {
            assert_eq!(both(parallel, || 1, || "two"), (1, "two"));
            for left in [false, true] {
                let caught = std::panic::catch_unwind(|| {
                    both(
                        parallel,
                        || assert!(!left, "left side"),
                        || assert!(left, "right side"),
                    )
                });
                let message = caught.err().and_then(|p| {
                    p.downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| p.downcast_ref::<String>().cloned())
                });
                let want = if left { "left side" } else { "right side" };
                assert_eq!(message.as_deref(), Some(want), "parallel {parallel}");
            }
        }
    }

    #[test]
    fn pruned_walks_agree_with_the_plain_walk() {
        let mut rng = Lcg(7);
        for case in 0..1800u64 {
            let kind = case % 12;
            let (n, m) = match case % 5 {
                0 => (1 + rng.below(40) as usize, 1 + rng.below(40) as usize),
                1 => (1 + rng.below(3000) as usize, 1 + rng.below(30) as usize),
                2 => (1 + rng.below(30) as usize, 1 + rng.below(3000) as usize),
                _ => (1 + rng.below(3000) as usize, 1 + rng.below(3000) as usize),
            };
            let shift = [0.0, 0.01, 0.3][rng.below(3) as usize];
            let shift = if kind == 9 { 1.0 } else { shift };
            let a: Vec<f64> = (0..n).map(|_| rng.value(kind, 0.0)).collect();
            let mut b: Vec<f64> = (0..m).map(|_| rng.value(kind, shift)).collect();
            if case % 11 == 0 {
                // Identical samples: every group end has diff 0 when n == m.
                b = a.clone();
            }
            let plain = plain(&a, &b);
            let (mut x, mut y) = (a.clone(), b.clone());
            x.sort_unstable_by(f64::total_cmp);
            y.sort_unstable_by(f64::total_cmp);
            for alt in ALTERNATIVES {
                let want = picked(&plain, alt);
                let blocked = blocked_extremes(&x, &y, alt);
                assert_eq!(
                    picked(&blocked, alt),
                    want,
                    "blocked {alt:?}, case {case} kind {kind} n {n} m {m}"
                );
                for (parallel, slack, tied) in [
                    (false, 1 << 20, false),
                    (true, 1 << 20, false),
                    (false, 0, false),
                    (false, 1 << 20, true),
                    (true, 1 << 20, true),
                ] {
                    let bucketed = bucketed_extremes_with(&a, &b, alt, parallel, slack, tied)
                        .unwrap_or_else(|| panic!("case {case}: finite values rejected"));
                    assert_eq!(
                        picked(&bucketed, alt),
                        want,
                        "bucketed {alt:?} tied {tied}, case {case} kind {kind} n {n} m {m}"
                    );
                }
            }
        }
    }

    #[test]
    fn large_samples_take_the_pruned_paths_and_agree() {
        let mut rng = Lcg(99);
        for kind in [0, 1, 3, 7, 8, 9, 10, 11] {
            let a: Vec<f64> = (0..150_000).map(|_| rng.value(kind, 0.0)).collect();
            let b: Vec<f64> = (0..90_000).map(|_| rng.value(kind, 0.002)).collect();
            let plain = plain(&a, &b);
            let (mut x, mut y) = (a.clone(), b.clone());
            x.sort_unstable_by(f64::total_cmp);
            y.sort_unstable_by(f64::total_cmp);
            for alt in ALTERNATIVES {
                let want = picked(&plain, alt);
                let got = unsorted_extremes(&a, &b, alt).unwrap_or_else(|| panic!("not pruned"));
                assert_eq!(picked(&got, alt), want, "kind {kind} {alt:?}");
                assert_eq!(
                    picked(&extremes(&x, &y, alt), alt),
                    want,
                    "kind {kind} {alt:?}"
                );
            }
        }
    }

    #[test]
    fn tied_large_samples_give_the_sorted_paths_result_bit_for_bit() {
        // D, p, location and sign of `ks_2samp` (bucketed; on these samples the candidates
        // are many, so the one-value-bucket path) against sorting both and walking all.
        let mut rng = Lcg(1526);
        for (kind, n, m) in [
            (10, 300_000, 200_000),
            (11, 150_000, 150_000),
            (1, 70_000, 9_000),
            (0, 150_000, 90_000),
        ] {
            for shift in [0.0, 0.004, 0.05] {
                let a: Vec<f64> = (0..n).map(|_| rng.value(kind, 0.0)).collect();
                let b: Vec<f64> = (0..m).map(|_| rng.value(kind, shift)).collect();
                let (mut x, mut y) = (a.clone(), b.clone());
                x.sort_unstable_by(f64::total_cmp);
                y.sort_unstable_by(f64::total_cmp);
                for alt in ALTERNATIVES {
                    for method in [Method::Auto, Method::Asymp] {
                        let got = ks_2samp(&a, &b, alt, method).map(|r| {
                            (
                                r.statistic.to_bits(),
                                r.p_value.to_bits(),
                                r.location.to_bits(),
                                r.sign,
                            )
                        });
                        let want = ks_2samp_sorted(&x, &y, alt, method).map(|r| {
                            (
                                r.statistic.to_bits(),
                                r.p_value.to_bits(),
                                r.location.to_bits(),
                                r.sign,
                            )
                        });
                        assert_eq!(got, want, "kind {kind} shift {shift} {alt:?} {method:?}");
                        let plain = plain(&a, &b);
                        let (d, loc, sign) = pick(&plain, alt);
                        let got = got.unwrap_or_else(|e| panic!("{e}"));
                        assert_eq!((got.0, got.2, got.3), (d.to_bits(), loc.to_bits(), sign));
                    }
                }
            }
        }
    }

    #[test]
    fn non_finite_values_are_reported_by_index_on_every_path() {
        for len in [10usize, 5000, 200_000] {
            let a: Vec<f64> = (0..len).map(|i| i as f64).collect();
            let mut b = a.clone();
            b[len / 2] = f64::INFINITY;
            b[len - 1] = f64::NAN;
            assert_eq!(
                ks_2samp(&a, &b, Alternative::TwoSided, Method::Auto),
                Err(KsError::NonFinite {
                    which: CURRENT,
                    index: len / 2
                })
            );
            assert_eq!(
                ks_2samp(&b, &a, Alternative::TwoSided, Method::Auto),
                Err(KsError::NonFinite {
                    which: REFERENCE,
                    index: len / 2
                })
            );
        }
    }

    #[test]
    fn histogram_spots_non_finite_anywhere() {
        let mut v: Vec<f64> = (0..37).map(|i| i as f64 - 3.0).collect();
        let map = BucketMap::new(-3.0, 33.0, 1024);
        assert_eq!(map.histogram(&v).map(|c| c.iter().sum::<u32>()), Some(37));
        for i in [0, 7, 8, 31, 32, 36] {
            for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
                let keep = v[i];
                v[i] = bad;
                assert_eq!(map.histogram(&v), None, "{i} {bad}");
                v[i] = keep;
            }
        }
    }

    #[test]
    fn gathers_take_exactly_the_values_of_their_buckets() {
        let mut rng = Lcg(17);
        for kind in [0, 2, 3, 4, 5, 7, 8] {
            let v: Vec<f64> = (0..3001).map(|_| rng.value(kind, 0.0)).collect();
            for (lo, hi) in [
                (0.1, 0.9),
                (-1e10, 1e10),
                (0.0, 0.0),
                (-3.0, 50.0),
                (-0.0, 1e-300),
            ] {
                let map = BucketMap::new(lo, hi, 1024);
                for hulls in [
                    vec![(0, 0)],
                    vec![(1023, 1023)],
                    vec![(0, 5), (1000, 1023)],
                    vec![(3, 900)],
                    vec![(0, 0), (7, 7), (512, 600), (1023, 1023)],
                    vec![],
                ] {
                    let inside = |k: usize| hulls.iter().any(|&(f, l)| f <= k && k <= l);
                    let want: Vec<u64> = v
                        .iter()
                        .filter(|&&x| inside(map.bucket(x)))
                        .map(|x| x.to_bits())
                        .collect();
                    let values: Vec<(f64, f64)> = hulls
                        .iter()
                        .map(|&(f, l)| (map.first_value_from(f), map.last_value_to(l)))
                        .collect();
                    let got: Vec<u64> = gather_hulls(&v, &values, 0)
                        .iter()
                        .map(|x| x.to_bits())
                        .collect();
                    assert_eq!(got, want, "hulls: kind {kind} range {lo} {hi} {hulls:?}");
                    let mut bits = vec![0u64; 16];
                    for k in (0..1024).filter(|&k| inside(k)) {
                        bits[k >> 6] |= 1 << (k & 63);
                    }
                    let got: Vec<u64> = map
                        .gather_bits(&v, &bits, 0)
                        .iter()
                        .map(|x| x.to_bits())
                        .collect();
                    assert_eq!(got, want, "bits: kind {kind} range {lo} {hi} {hulls:?}");
                }
            }
        }
    }

    #[test]
    fn bucket_boundaries_are_found_exactly() {
        for (lo, hi) in [(-1.0, 1.0), (0.1, 0.9), (-1e300, 1e300), (0.0, 1e-300)] {
            let map = BucketMap::new(lo, hi, 1024);
            for k in [1, 2, 100, 511, 512, 513, 1000, 1023] {
                let first = map.first_value_from(k);
                assert!(map.bucket(first) >= k, "{lo} {hi} {k}");
                let below = from_sort_key(sort_key(first) - 1);
                assert!(map.bucket(below) < k, "{lo} {hi} {k}: {below} {first}");
                let last = map.last_value_to(k - 1);
                assert!(map.bucket(last) < k);
                let above = from_sort_key(sort_key(last) + 1);
                assert!(map.bucket(above) >= k, "{lo} {hi} {k}: {last} {above}");
            }
            assert_eq!(map.first_value_from(0), -f64::MAX);
            assert_eq!(map.last_value_to(1023), f64::MAX);
        }
    }

    #[test]
    fn hulls_join_the_cheapest_gaps_within_the_slack() {
        assert_eq!(
            GATHER_HULLS, 4,
            "the cases below are written for four hulls"
        );
        let ca = [1u32, 0, 2, 3, 0, 1, 1, 4, 0, 2, 3, 1];
        let cb = [0u32, 1, 1, 0, 2, 2, 0, 1, 1, 1, 0, 2];
        let run = |first: usize, last: usize| Run {
            first,
            last,
            i0: 0,
            j0: 0,
            na: 0,
            nb: 0,
        };
        let runs = [
            run(0, 0),
            run(2, 2),
            run(5, 5),
            run(7, 7),
            run(9, 9),
            run(11, 11),
        ];
        // Gaps hold 1 (bucket 1), 5 (3-4), 1 (6), 1 (8) and 3 (10) values: the first two
        // cheapest joins take in 2.
        let want = vec![(0, 2), (5, 7), (9, 9), (11, 11)];
        assert_eq!(hulls(&runs, &ca, &cb, 4, 100), Some(want.clone()));
        assert_eq!(hulls(&runs, &ca, &cb, 4, 2), Some(want));
        assert_eq!(hulls(&runs, &ca, &cb, 4, 1), None);
        assert_eq!(
            hulls(&runs[..4], &ca, &cb, 4, 0),
            Some(vec![(0, 0), (2, 2), (5, 5), (7, 7)])
        );
        assert_eq!(hulls(&[], &ca, &cb, 4, 0), Some(vec![]));
        // Down to one hull: every gap is taken in (1 + 5 + 1 + 1 + 3 = 11).
        assert_eq!(hulls(&runs, &ca, &cb, 1, 11), Some(vec![(0, 11)]));
        assert_eq!(hulls(&runs, &ca, &cb, 1, 10), None);
    }

    #[test]
    fn upper_bound_from_gallops_correctly() {
        let v = [0.0, 1.0, 1.0, 1.0, 2.0, 3.0, 3.0, 5.0];
        for from in 0..=v.len() {
            for x in [-1.0, 0.0, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0] {
                if from > 0 && v[from - 1] > x {
                    continue;
                }
                let want = v.partition_point(|&y| y <= x).max(from);
                assert_eq!(upper_bound_from(&v, from, x), want, "{from} {x}");
            }
        }
    }

    #[test]
    fn bucket_map_is_monotone_at_the_edges() {
        let map = BucketMap::new(-f64::MAX, f64::MAX, 1024);
        let xs = [
            -f64::MAX,
            -1e300,
            -1.0,
            -0.0,
            0.0,
            5e-324,
            1.0,
            1e300,
            f64::MAX,
        ];
        for w in xs.windows(2) {
            assert!(map.bucket(w[0]) <= map.bucket(w[1]));
        }
        assert_eq!(map.bucket(-0.0), map.bucket(0.0));
        // A span so small the scale would overflow: held at f64::MAX, positions stay finite
        // (degenerate buckets, still monotone).
        let tiny = BucketMap::new(0.0, 1e-320, 1 << 16);
        assert_eq!(tiny.scale, f64::MAX);
        assert_eq!(tiny.bucket(-0.0), 0);
        assert_eq!(tiny.bucket(0.0), 0);
        assert!(tiny.rounded(1e-320).is_finite());
        assert!(tiny.bucket(1e300) == (1 << 16) - 1);
        // Halving rounds the smallest subnormal away: a zero span, one bucket.
        let gone = BucketMap::new(0.0, 5e-324, 1 << 16);
        assert_eq!(gone.bucket(5e-324), 0);
        let flat = BucketMap::new(2.0, 2.0, 1024);
        assert_eq!(flat.bucket(2.0), 0);
    }

    #[test]
    fn names_roundtrip() {
        for a in [
            Alternative::TwoSided,
            Alternative::Less,
            Alternative::Greater,
        ] {
            assert_eq!(Alternative::parse(a.as_str()), Some(a));
        }
        for m in [Method::Auto, Method::Exact, Method::Asymp] {
            assert_eq!(Method::parse(m.as_str()), Some(m));
        }
        assert_eq!(Alternative::parse("two_sided"), None);
        assert_eq!(Method::parse("Exact"), None);
        assert_eq!(MethodUsed::Exact.as_str(), "exact");
        assert_eq!(MethodUsed::Asymp.as_str(), "asymp");
    }

    #[test]
    fn separated_samples_have_exact_p() {
        // D = 1, p = 2 / C(8, 4) = 1/35.
        let r = run(
            &[1.0, 2.0, 3.0, 4.0],
            &[5.0, 6.0, 7.0, 8.0],
            Alternative::TwoSided,
            Method::Auto,
        );
        assert_eq!(r.statistic, 1.0);
        assert!((r.p_value - 2.0 / 70.0).abs() < 1e-15);
        assert_eq!(r.location, 4.0);
        assert_eq!(r.sign, 1);
        assert_eq!(r.method, MethodUsed::Exact);
    }

    #[test]
    fn square_rounding_above_one_falls_back_like_scipy() {
        // n = m = 5, D = 1/5: SciPy's _compute_prob_outside_square(5, 1) = 1.0000000000000002,
        // which fails the [0, 1] check, so SciPy switches to asymp.
        assert!(prob_outside_square(5, 1) > 1.0);
        let r = run(
            &[1.0, 2.0, 3.0, 4.0, 5.5],
            &[1.5, 2.5, 3.5, 4.5, 5.0],
            Alternative::TwoSided,
            Method::Auto,
        );
        assert_eq!(r.statistic, 0.2);
        assert_eq!(r.method, MethodUsed::Asymp);
    }

    #[test]
    fn outer_inside_matches_square_for_equal_sizes_when_in_range() {
        for (n, h) in [(10u64, 3u64), (20, 5), (50, 7)] {
            let a = outer_prob_inside_method(n, n, n, h);
            let b = prob_outside_square(n, h);
            assert!((a - b).abs() < 1e-13, "{n} {h}: {a} vs {b}");
        }
    }

    #[test]
    fn tails_in_walk() {
        // Reference entirely above the current sample.
        let r = run(
            &[10.0, 11.0],
            &[1.0, 2.0, 3.0],
            Alternative::TwoSided,
            Method::Auto,
        );
        assert_eq!(r.statistic, 1.0);
        assert_eq!(r.sign, -1);
        assert_eq!(r.location, 3.0);
    }
}
