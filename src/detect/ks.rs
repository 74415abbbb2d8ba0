//! Two-sample Kolmogorov–Smirnov test with `scipy.stats.ks_2samp`'s semantics (SciPy 1.17.1).
//!
//! `reference` is SciPy's `data1` and `current` its `data2`. What is reproduced, rule by rule:
//!
//! - **Statistic and location.** For every `x` of `sorted(reference) ++ sorted(current)`,
//!   `diff(x) = (#ref <= x) as f64 / n as f64 - (#cur <= x) as f64 / m as f64` (this float
//!   form, whose rounding decides ties); the location is the value at the *first* index of the
//!   largest (smallest) `diff` in that concatenated order. It is computed by one O(n+m) merge
//!   walk over the two sorted slices, without materialising `diff`: equal values share the same
//!   `diff`, so the first index of an extreme is the first element of the first group reaching
//!   it in the reference part, else in the current part. `-0.0 == 0.0` when counting.
//! - **Sign.** `greater` reports `max diff` with sign +1, `less` reports `clip(-min diff, 0, 1)`
//!   with sign -1, `two-sided` the `less` triple only when strictly larger.
//! - **p-value.** `auto` is exact iff `max(n, m) <= 10000`; a forced `exact` falls back to
//!   asymptotic when `lcm(n, m)` is too large for SciPy's int32 lattice or when the exact lattice
//!   computation fails (overflow, or a result outside [0, 1]); when exact is attempted `D` is
//!   first rounded to `h / lcm(n, m)`. Exact p-values use SciPy's lattice-path recursions;
//!   asymptotic two-sided uses [`super::kstwo::sf`]`(D, round(n*m/(n+m)))` (not the Kolmogorov
//!   limit) and one-sided uses Hodges' approximation.
//!
//! Pure: no I/O, no locks, no panics on any input; NaN and ±inf are rejected with an error.

use super::cephes::binom;
use super::kstwo;

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

fn validate(reference: &[f64], current: &[f64]) -> Result<(), KsError> {
    if reference.is_empty() {
        return Err(KsError::EmptySample { which: REFERENCE });
    }
    if current.is_empty() {
        return Err(KsError::EmptySample { which: CURRENT });
    }
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
/// Sorts copies of both samples, then calls [`ks_2samp_sorted`]. Errors name the sample and
/// the index in the slice as given.
pub fn ks_2samp(
    reference: &[f64],
    current: &[f64],
    alternative: Alternative,
    method: Method,
) -> Result<KsResult, KsError> {
    validate(reference, current)?;
    let mut a = reference.to_vec();
    let mut b = current.to_vec();
    // total_cmp puts -0.0 before 0.0; either order gives the same counts, and this one matches
    // SciPy's reported location in `negzero_location_test`.
    a.sort_unstable_by(f64::total_cmp);
    b.sort_unstable_by(f64::total_cmp);
    ks_2samp_sorted(&a, &b, alternative, method)
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
    debug_assert!(
        reference.windows(2).all(|w| w[0] <= w[1]),
        "reference not sorted"
    );
    debug_assert!(
        current.windows(2).all(|w| w[0] <= w[1]),
        "current not sorted"
    );
    let ext = extremes(reference, current);
    // minS = clip(-diff[argmin], 0, 1), numpy's clip: max first, then min.
    let neg = -ext.min_diff;
    let min_s = if neg > 0.0 { neg } else { 0.0 };
    let min_s = if min_s < 1.0 { min_s } else { 1.0 };
    let max_s = ext.max_diff;
    let (d, location, sign) = match alternative {
        Alternative::Less => (min_s, ext.min_loc, -1),
        Alternative::TwoSided if min_s > max_s => (min_s, ext.min_loc, -1),
        _ => (max_s, ext.max_loc, 1),
    };
    let (statistic, p_value, method) =
        p_value(reference.len(), current.len(), d, alternative, method);
    Ok(KsResult {
        statistic,
        p_value,
        location,
        sign,
        method,
    })
}

/// The extremes of `diff` over `sorted(a) ++ sorted(b)`, with the value at the first index of
/// each.
struct Extremes {
    max_diff: f64,
    max_loc: f64,
    min_diff: f64,
    min_loc: f64,
}

/// One merge walk over distinct values. For each group of equal values (`==`, so `-0.0` and
/// `0.0` together) the counts `i = #a <= v` and `j = #b <= v` give the group's `diff`; every
/// element of the group, in `a` or in `b`, has that same `diff`. Tracking the first strict
/// improvement separately over the groups present in `a` and those present in `b` and then
/// preferring `a` on ties reproduces numpy's `argmax`/`argmin` over the concatenation.
fn extremes(a: &[f64], b: &[f64]) -> Extremes {
    let n = a.len();
    let m = b.len();
    let nf = n as f64;
    let mf = m as f64;
    let (mut i, mut j) = (0usize, 0usize);
    let (mut a_max, mut a_max_loc) = (f64::NEG_INFINITY, 0.0);
    let (mut a_min, mut a_min_loc) = (f64::INFINITY, 0.0);
    let (mut b_max, mut b_max_loc) = (f64::NEG_INFINITY, 0.0);
    let (mut b_min, mut b_min_loc) = (f64::INFINITY, 0.0);

    while i < n && j < m {
        let (x, y) = (a[i], b[j]);
        if x < y {
            // Group only in `a`.
            let i0 = i;
            i += 1;
            while i < n && a[i] <= x {
                i += 1;
            }
            let d = i as f64 / nf - j as f64 / mf;
            if d > a_max {
                a_max = d;
                a_max_loc = a[i0];
            }
            if d < a_min {
                a_min = d;
                a_min_loc = a[i0];
            }
        } else if y < x {
            // Group only in `b`.
            let j0 = j;
            j += 1;
            while j < m && b[j] <= y {
                j += 1;
            }
            let d = i as f64 / nf - j as f64 / mf;
            if d > b_max {
                b_max = d;
                b_max_loc = b[j0];
            }
            if d < b_min {
                b_min = d;
                b_min_loc = b[j0];
            }
        } else {
            // x == y: the group is in both.
            let (i0, j0) = (i, j);
            i += 1;
            while i < n && a[i] <= x {
                i += 1;
            }
            j += 1;
            while j < m && b[j] <= x {
                j += 1;
            }
            let d = i as f64 / nf - j as f64 / mf;
            if d > a_max {
                a_max = d;
                a_max_loc = a[i0];
            }
            if d < a_min {
                a_min = d;
                a_min_loc = a[i0];
            }
            if d > b_max {
                b_max = d;
                b_max_loc = b[j0];
            }
            if d < b_min {
                b_min = d;
                b_min_loc = b[j0];
            }
        }
    }
    // Tails: only one sample left; the other's count is final.
    while i < n {
        let x = a[i];
        let i0 = i;
        i += 1;
        while i < n && a[i] <= x {
            i += 1;
        }
        let d = i as f64 / nf - j as f64 / mf;
        if d > a_max {
            a_max = d;
            a_max_loc = a[i0];
        }
        if d < a_min {
            a_min = d;
            a_min_loc = a[i0];
        }
    }
    while j < m {
        let y = b[j];
        let j0 = j;
        j += 1;
        while j < m && b[j] <= y {
            j += 1;
        }
        let d = i as f64 / nf - j as f64 / mf;
        if d > b_max {
            b_max = d;
            b_max_loc = b[j0];
        }
        if d < b_min {
            b_min = d;
            b_min_loc = b[j0];
        }
    }

    // The reference part comes first in the concatenation, so it wins ties.
    let (max_diff, max_loc) = if a_max >= b_max {
        (a_max, a_max_loc)
    } else {
        (b_max, b_max_loc)
    };
    let (min_diff, min_loc) = if a_min <= b_min {
        (a_min, a_min_loc)
    } else {
        (b_min, b_min_loc)
    };
    Extremes {
        max_diff,
        max_loc,
        min_diff,
        min_loc,
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
fn outer_prob_inside_method(m: u64, n: u64, g: u64, h: u64) -> f64 {
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
    use super::*;

    fn run(a: &[f64], b: &[f64], alt: Alternative, method: Method) -> KsResult {
        match ks_2samp(a, b, alt, method) {
            Ok(r) => r,
            Err(e) => panic!("unexpected error {e}"),
        }
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
