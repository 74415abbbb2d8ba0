//! The two-sample Cramér-von Mises test with `scipy.stats.cramervonmises_2samp`'s semantics
//! (SciPy 1.17.1).
//!
//! What is reproduced, step for step:
//!
//! - **Statistic** `T = U / (n m (n + m)) - (4 n m - 1) / (6 (n + m))` with
//!   `U = n sum_i (r(x_i) - i)^2 + m sum_j (r(y_j) - j)^2`, the ranks `r` taken in the pooled
//!   sample with ties given their mid-rank (`rankdata(method="average")`); the two sums added
//!   as NumPy adds them ([`super::sum`]); the integer ratios correctly rounded, as Python
//!   divides integers.
//! - **`method`**: `auto` is exact when `max(n, m) <= 20`, asymptotic otherwise.
//! - **Exact p-value**: the frequency table of `U` over all `C(n + m, n)` rank assignments by
//!   the recursion of Xiao, Gordon and Yakovlev (2006), SciPy's `_pval_cvm_2samp_exact`, in
//!   exact integers; `p = #(U' >= U) / C(n + m, n)`, `U` compared through SciPy's float
//!   `zeta` (NumPy's float floor division). Refused beyond [`MAX_EXACT_N`] values a side.
//! - **Asymptotic p-value**: `T` normalised by its mean and variance under the null (Anderson
//!   1962, equations 11, 14 and 15), then `1 - cdf(tn)` with the limiting one-sample
//!   distribution `_cdf_cvm_inf` (Csörgő and Faraway 1996, equation 1.2): its series summed
//!   until a term falls below 1e-7, as SciPy sums it, with `K_1/4` from [`super::bessel`];
//!   1 when `tn < 0.003`, and clipped at 0 below.
//!
//! Pure: no I/O, no panics. Samples need at least 2 values each (as SciPy), finite.

use super::bessel::kv;
use super::cephes::{lgam, Dd};
use std::borrow::Cow;

use super::sort::{ascending, sorted_cows, PARALLEL_MIN_LEN};
use super::sum::StreamSum;

/// `max(n, m)` up to which `auto` computes the exact p-value.
const MAX_AUTO_N: usize = 20;

/// The exact p-value is refused when `max(n, m)` exceeds this: the tables grow with
/// `lcm(n, m)^2 (n + m)` (in an unoptimised build 20 against 21 took 0.15 s, 31 against 50
/// 11 s, 49 against 50 73 s), while `auto` only asks for it up to 20.
pub const MAX_EXACT_N: usize = 30;

/// How the p-value is requested (SciPy's `method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CvmMethod {
    #[default]
    Auto,
    Exact,
    Asymptotic,
}

impl CvmMethod {
    /// SciPy's spelling: `"auto"`, `"exact"` or `"asymptotic"`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "auto" => Some(CvmMethod::Auto),
            "exact" => Some(CvmMethod::Exact),
            "asymptotic" => Some(CvmMethod::Asymptotic),
            _ => None,
        }
    }

    /// `"auto"`, `"exact"` or `"asymptotic"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            CvmMethod::Auto => "auto",
            CvmMethod::Exact => "exact",
            CvmMethod::Asymptotic => "asymptotic",
        }
    }
}

/// The p-value method that ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CvmMethodUsed {
    Exact,
    Asymptotic,
}

impl CvmMethodUsed {
    /// `"exact"` or `"asymptotic"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            CvmMethodUsed::Exact => "exact",
            CvmMethodUsed::Asymptotic => "asymptotic",
        }
    }
}

/// The outcome of one test (SciPy's `CramerVonMisesResult`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CvmResult {
    /// `T`.
    pub statistic: f64,
    /// In [0, 1].
    pub p_value: f64,
    pub method: CvmMethodUsed,
}

/// Why a test cannot run.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CvmError {
    #[error("the {which} sample has {len} values; the Cramér-von Mises test needs at least 2")]
    TooFewValues { which: &'static str, len: usize },
    #[error("the {which} sample holds a non-finite value (NaN or infinity) at index {index}")]
    NonFinite { which: &'static str, index: usize },
    #[error(
        "the exact p-value for {n} and {m} values is too costly to compute (more than \
         {MAX_EXACT_N} values a side); use the asymptotic method"
    )]
    ExactTooLarge { n: usize, m: usize },
}

const REFERENCE: &str = "reference";
const CURRENT: &str = "current";

/// `scipy.stats.cramervonmises_2samp(reference, current, method)`. Arrays given by value
/// (`Vec<f64>`) are sorted in place, borrowed ones (`&[f64]`) into copies.
pub fn cramervonmises_2samp<'a, 'b>(
    reference: impl Into<Cow<'a, [f64]>>,
    current: impl Into<Cow<'b, [f64]>>,
    method: CvmMethod,
) -> Result<CvmResult, CvmError> {
    let (reference, current) = (reference.into(), current.into());
    let exact = check(&reference, &current, method)?;
    let (xa, ya) = sorted_cows(reference, current);
    Ok(from_sorted(&xa, &ya, exact))
}

/// [`cramervonmises_2samp`] on samples the caller keeps sorted ascending (`-0.0` and `0.0` in
/// either order; `debug_assert`ed): nothing copied or sorted.
pub fn cramervonmises_2samp_sorted(
    reference: &[f64],
    current: &[f64],
    method: CvmMethod,
) -> Result<CvmResult, CvmError> {
    let exact = check(reference, current, method)?;
    debug_assert!(ascending(reference), "reference not sorted");
    debug_assert!(ascending(current), "current not sorted");
    Ok(from_sorted(reference, current, exact))
}

/// The errors of bad input, in the order SciPy raises them; else whether the p-value is exact.
fn check(reference: &[f64], current: &[f64], method: CvmMethod) -> Result<bool, CvmError> {
    for (which, s) in [(REFERENCE, reference), (CURRENT, current)] {
        if s.len() < 2 {
            return Err(CvmError::TooFewValues {
                which,
                len: s.len(),
            });
        }
        if let Some(index) = s.iter().position(|x| !x.is_finite()) {
            return Err(CvmError::NonFinite { which, index });
        }
    }
    let (nx, ny) = (reference.len(), current.len());
    let exact = match method {
        CvmMethod::Auto => nx.max(ny) <= MAX_AUTO_N,
        CvmMethod::Exact => true,
        CvmMethod::Asymptotic => false,
    };
    if exact && nx.max(ny) > MAX_EXACT_N {
        return Err(CvmError::ExactTooLarge { n: nx, m: ny });
    }
    Ok(exact)
}

/// The test on two valid samples, both sorted.
fn from_sorted(xa: &[f64], ya: &[f64], exact: bool) -> CvmResult {
    let (nx, ny) = (xa.len(), ya.len());
    let u = rank_sum_u(xa, ya);

    let (nx_i, ny_i) = (nx as i128, ny as i128);
    let k = nx_i * ny_i;
    let n_all = nx_i + ny_i;
    // t = u / (k*N) - (4*k - 1)/(6*N): a float over an int NumPy rounds to f64, and a Python
    // int ratio, correctly rounded.
    let statistic = u / (k * n_all) as f64 - int_ratio(4 * k - 1, 6 * n_all);

    let (p_value, method) = if exact {
        (pval_exact(u, nx, ny), CvmMethodUsed::Exact)
    } else {
        (
            pval_asymptotic(statistic, nx_i, ny_i),
            CvmMethodUsed::Asymptotic,
        )
    };
    CvmResult {
        statistic,
        p_value,
        method,
    }
}

/// `U = n sum (r(x_i) - i)^2 + m sum (r(y_j) - j)^2` over the sorted samples, mid-ranks in the
/// pooled sample (`-0.0 == 0.0`). Each sum is a walk of its own sample past the other (side
/// by side on large inputs), its squares summed as they come, in NumPy's order.
fn rank_sum_u(xa: &[f64], ya: &[f64]) -> f64 {
    let (sx, sy) = if xa.len().min(ya.len()) >= PARALLEL_MIN_LEN {
        rayon::join(|| rank_squares(xa, ya), || rank_squares(ya, xa))
    } else {
        (rank_squares(xa, ya), rank_squares(ya, xa))
    };
    xa.len() as f64 * sx + ya.len() as f64 * sy
}

/// `sum (r(a_i) - i)^2` over sorted `a`, `r` its mid-rank in `a` pooled with sorted `b`.
fn rank_squares(a: &[f64], b: &[f64]) -> f64 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU has AVX-512F, checked just above: all the function needs.
        return unsafe { rank_squares_avx512(a, b) };
    }
    rank_squares_walk(a, b, skip_below)
}

/// The walk of [`rank_squares`], with `skip(b, j, v)`: the first index from `j` on whose
/// value in `b` is not below `v`.
#[inline(always)]
fn rank_squares_walk(a: &[f64], b: &[f64], skip: impl Fn(&[f64], usize, f64) -> usize) -> f64 {
    let mut sum = StreamSum::new(a.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() {
        let v = a[i];
        j = skip(b, j, v);
        let (i0, j0) = (i, j);
        while i < a.len() && a[i] == v {
            i += 1;
        }
        let mut j1 = j;
        while j1 < b.len() && b[j1] == v {
            j1 += 1;
        }
        // The values below `v` in both samples, then the average of the ranks of the
        // group: before+1 ..= before+count, exact in f64.
        let (before, count) = (i0 + j0, (i - i0) + (j1 - j0));
        let rank = before as f64 + (count as f64 + 1.0) / 2.0;
        for k in i0..i {
            let d = rank - (k + 1) as f64;
            sum.push(d * d);
        }
    }
    sum.finish()
}

/// The first index from `j` on whose value in sorted `b` is not below `v`, one at a time.
#[inline(always)]
fn skip_below(b: &[f64], mut j: usize, v: f64) -> usize {
    while j < b.len() && b[j] < v {
        j += 1;
    }
    j
}

/// [`rank_squares`] skipping through `b` eight values at a time: how many of `b`'s values
/// fall between two of `a`'s is as good as random, so the one-at-a-time loop's exit is
/// mispredicted about once a value; one compare of eight is almost always enough.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn rank_squares_avx512(a: &[f64], b: &[f64]) -> f64 {
    rank_squares_walk(a, b, |b, mut j, v| {
        use std::arch::x86_64::{_mm512_cmp_pd_mask, _mm512_loadu_pd, _mm512_set1_pd, _CMP_LT_OQ};
        let vv = _mm512_set1_pd(v);
        while j + 8 <= b.len() {
            // SAFETY: b[j .. j + 8] is in bounds (checked by the loop).
            let x = unsafe { _mm512_loadu_pd(b.as_ptr().add(j)) };
            // `b` is sorted (and finite): the values below `v` are a prefix of these eight.
            let n = _mm512_cmp_pd_mask::<_CMP_LT_OQ>(x, vv).trailing_ones() as usize;
            j += n;
            if n < 8 {
                return j;
            }
        }
        skip_below(b, j, v)
    })
}

/// `num / den` correctly rounded, as Python divides two integers (exact operands below 2^53
/// divide directly; larger ones in double-double, whose high part is the rounded quotient).
fn int_ratio(num: i128, den: i128) -> f64 {
    const EXACT: i128 = 1 << 53;
    if num.abs() < EXACT && den.abs() < EXACT {
        return num as f64 / den as f64;
    }
    let split = |x: i128| {
        let hi = x as f64;
        Dd::new(hi) + (x - hi as i128) as f64
    };
    (split(num) / split(den)).hi
}

/// SciPy's `_pval_cvm_2samp_asymptotic(t, N, nx, ny, k)`.
fn pval_asymptotic(t: f64, nx: i128, ny: i128) -> f64 {
    let k = nx * ny;
    let n = nx + ny;
    let et = (1.0 + int_ratio(1, n)) / 6.0;
    // vt = (N+1)(4kN - 3(nx^2 + ny^2) - 2k) / (45 N^2 4k), Python integers then one division.
    let num = (4 * k)
        .checked_mul(n)
        .map(|four_kn| four_kn - 3 * (nx * nx + ny * ny) - 2 * k)
        .and_then(|inner| inner.checked_mul(n + 1));
    let den = (45 * n * n).checked_mul(4 * k);
    let vt = match (num, den) {
        (Some(num), Some(den)) => int_ratio(num, den),
        // Beyond i128 (some 10^9 values a side): the same formula in floating point.
        _ => {
            let (nf, kf) = (n as f64, k as f64);
            let (xf, yf) = (nx as f64, ny as f64);
            (nf + 1.0) * (4.0 * kf * nf - 3.0 * (xf * xf + yf * yf) - 2.0 * kf)
                / (45.0 * nf * nf * 4.0 * kf)
        }
    };
    let tn = int_ratio(1, 6) + (t - et) / (45.0 * vt).sqrt();
    if tn >= 0.003 {
        (1.0 - cdf_cvm_inf(tn)).max(0.0)
    } else {
        // SciPy: cdf(tn) < 1.28e-18 there, so p = 1.
        1.0
    }
}

/// SciPy's `_cdf_cvm_inf(x)`: the CDF of the limiting Cramér-von Mises distribution,
/// `sum_k Gamma(k + 1/2) / (Gamma(k + 1) pi^{3/2} sqrt(x)) sqrt(4k + 1) e^{-q} K_{1/4}(q)` with
/// `q = (4k + 1)^2 / (16 x)`, summed until a term is below 1e-7 (that term included).
pub fn cdf_cvm_inf(x: f64) -> f64 {
    let pi_15 = std::f64::consts::PI.powf(1.5);
    let mut total = 0.0;
    let mut k = 0u32;
    loop {
        let kf = f64::from(k);
        let u = (lgam(kf + 0.5) - lgam(kf + 1.0)).exp() / (pi_15 * x.sqrt());
        let y = f64::from(4 * k + 1);
        let q = y * y / (16.0 * x);
        let b = kv(0.25, q);
        let z = u * y.sqrt() * (-q).exp() * b;
        total += z;
        // SciPy goes on while |z| >= 1e-7; this also stops on NaN, and the cap is far beyond
        // any convergent x.
        if z.abs() < 1e-7 || z.is_nan() || k == 100_000 {
            return total;
        }
        k += 1;
    }
}

/// NumPy's float floor division (`npy_divmod`): `(a - fmod(a, b)) / b`, adjusted to the
/// floor, rounded to the nearest integer when it is off by more than half.
fn npy_floor_divide(a: f64, b: f64) -> f64 {
    if b == 0.0 {
        return a / b;
    }
    let m = a % b;
    let mut div = (a - m) / b;
    if m != 0.0 && ((b < 0.0) != (m < 0.0)) {
        div -= 1.0;
    }
    if div != 0.0 {
        let mut floordiv = div.floor();
        if div - floordiv > 0.5 {
            floordiv += 1.0;
        }
        floordiv
    } else {
        0.0f64.copysign(a / b)
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// SciPy's `_pval_cvm_2samp_exact(s, m, n)` with `s = U`, `m = nx`, `n = ny`: the frequency
/// tables `g_{u,v}` of Xiao et al. as sorted `(value, count)` runs, merged cell by cell.
fn pval_exact(s: f64, m: usize, n: usize) -> f64 {
    let (mu, nu) = (m as u64, n as u64);
    let lcm = mu / gcd(mu, nu) * nu;
    let a = lcm / mu;
    let b = lcm / nu;
    let mn = mu * nu;
    // zeta = lcm^2 (m + n) (6 s - mn (4 mn - 1)) // (6 mn^2), in SciPy's mix of int64 and
    // float64.
    let zeta = npy_floor_divide(
        (lcm * lcm * (mu + nu)) as f64 * (6.0 * s - (mn * (4 * mn - 1)) as f64),
        (6 * mn * mn) as f64,
    );

    type Table = Vec<(u64, u128)>;
    let merge = |x: &Table, y: &Table| -> Table {
        let mut out = Vec::with_capacity(x.len() + y.len());
        let (mut i, mut j) = (0, 0);
        while i < x.len() && j < y.len() {
            match x[i].0.cmp(&y[j].0) {
                std::cmp::Ordering::Less => {
                    out.push(x[i]);
                    i += 1;
                }
                std::cmp::Ordering::Greater => {
                    out.push(y[j]);
                    j += 1;
                }
                std::cmp::Ordering::Equal => {
                    out.push((x[i].0, x[i].1 + y[j].1));
                    i += 1;
                    j += 1;
                }
            }
        }
        out.extend_from_slice(&x[i..]);
        out.extend_from_slice(&y[j..]);
        out
    };

    let mut gs: Vec<Table> = vec![Vec::new(); m + 1];
    gs[0] = vec![(0, 1)];
    for u in 0..=nu {
        let mut next: Vec<Table> = Vec::with_capacity(m + 1);
        let mut tmp: Table = Vec::new();
        for (v, g) in gs.iter().enumerate() {
            tmp = merge(&tmp, g);
            let d = (a * v as u64).abs_diff(b * u);
            let res = d * d;
            for e in &mut tmp {
                e.0 += res;
            }
            next.push(tmp.clone());
        }
        gs = next;
    }
    let mut hits: u128 = 0;
    let mut combinations: u128 = 0;
    for &(value, count) in &gs[m] {
        combinations += count;
        if value as f64 >= zeta {
            hits += count;
        }
    }
    // np.sum(freq[...]) / math.comb(m + n, m): the counts sum to the binomial.
    let (h, c) = (hits as i128, combinations as i128);
    int_ratio(h, c)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A seeded sample on a grid (ties, signed zeros), unsorted.
    pub(crate) fn grid_sample(seed: u64, n: usize, grid: f64) -> Vec<f64> {
        let mut state = seed;
        (0..n)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let x = (((state >> 33) as f64 / (1u64 << 31) as f64 - 0.5) * grid).round() / grid;
                if x == 0.0 && state & 1 == 1 {
                    -0.0
                } else {
                    x
                }
            })
            .collect()
    }

    /// Pairs of samples on both sides of the radix sort's and the side-by-side thresholds,
    /// unsorted and sorted.
    pub(crate) type Pair = (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>);
    pub(crate) fn sample_pairs() -> impl Iterator<Item = Pair> {
        [
            (5, 3, 4.0),
            (300, 200, 16.0),
            (3000, 2500, 1e6),
            (70_000, 66_000, 1e9),
        ]
        .into_iter()
        .map(|(n, m, grid)| {
            let (a, b) = (
                grid_sample(n as u64, n, grid),
                grid_sample(m as u64 + 7, m, grid),
            );
            let sorted = |v: &[f64]| {
                let mut v = v.to_vec();
                v.sort_unstable_by(f64::total_cmp);
                v
            };
            let (sa, sb) = (sorted(&a), sorted(&b));
            (a, b, sa, sb)
        })
    }

    #[test]
    fn borrowed_given_and_sorted_samples_are_one_test() {
        for (a, b, sa, sb) in sample_pairs() {
            let borrowed = cramervonmises_2samp(&a, &b, CvmMethod::Asymptotic);
            let given = cramervonmises_2samp(a.clone(), b.clone(), CvmMethod::Asymptotic);
            let sorted = cramervonmises_2samp_sorted(&sa, &sb, CvmMethod::Asymptotic);
            let bits = |r: &Result<CvmResult, CvmError>| {
                r.as_ref()
                    .map(|r| (r.statistic.to_bits(), r.p_value.to_bits()))
                    .ok()
            };
            let (n, m) = (a.len(), b.len());
            assert!(bits(&borrowed).is_some(), "{n} {m}: {borrowed:?}");
            assert_eq!(bits(&given), bits(&borrowed), "{n} {m}");
            assert_eq!(bits(&sorted), bits(&borrowed), "{n} {m}");
        }
        // Bad input is named by its place in the caller's order, before anything is sorted.
        assert_eq!(
            cramervonmises_2samp(
                vec![3.0, 1.0, f64::NAN, 0.0],
                vec![1.0, 2.0],
                CvmMethod::Auto
            ),
            Err(CvmError::NonFinite {
                which: REFERENCE,
                index: 2
            })
        );
    }

    #[test]
    fn the_eight_at_a_time_walk_is_the_one_at_a_time_walk_bit_for_bit() {
        // A seeded LCG; values on a coarse grid for ties, signed zeros among them, runs of
        // `b` longer than eight between two values of `a`, and sizes around the tail of 8.
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) as f64 / (1u64 << 31) as f64
        };
        for (na, nb, grid) in [
            (1, 1, 4.0),
            (7, 9, 4.0),
            (50, 500, 64.0),
            (333, 40, 16.0),
            (2000, 2001, 1e6),
        ] {
            for _ in 0..20 {
                let mut draw = |n: usize, spread: f64| -> Vec<f64> {
                    let mut v: Vec<f64> = (0..n)
                        .map(|_| {
                            let x = ((next() - 0.5) * spread * grid).round() / grid;
                            if x == 0.0 && next() < 0.5 {
                                -0.0
                            } else {
                                x
                            }
                        })
                        .collect();
                    v.sort_by(f64::total_cmp);
                    v
                };
                let (a, b) = (draw(na, 1.0), draw(nb, 3.0));
                for (x, y) in [(&a, &b), (&b, &a)] {
                    let one = rank_squares_walk(x, y, skip_below);
                    assert_eq!(
                        rank_squares(x, y).to_bits(),
                        one.to_bits(),
                        "{na} {nb} {grid}"
                    );
                }
            }
        }
    }

    #[test]
    fn tiny_exact_ties_matches_scipy() {
        // The vectors' `tiny_exact_ties`.
        let r = cramervonmises_2samp(&[1.0, 1.0, 2.0], &[1.0, 2.0, 2.0, 3.0], CvmMethod::Exact)
            .unwrap();
        assert_eq!(r.statistic, 0.15476190476190466);
        assert_eq!(r.p_value, 0.4857142857142857);
        assert_eq!(r.method, CvmMethodUsed::Exact);
    }

    #[test]
    fn cdf_cvm_inf_matches_scipy() {
        // scipy.stats._hypotests._cdf_cvm_inf at a few points (SciPy 1.17.1).
        for (x, want) in [
            (0.003, 1.2748440417041988e-18),
            (0.01, 5.864432809868958e-06),
            (0.1, 0.4151265615932029),
            (0.5, 0.9601667824343907),
            (2.0, 0.9999872192637342),
            (5.0, 0.9999999999513484),
        ] {
            let got = cdf_cvm_inf(x);
            assert!(
                (got - want).abs() < 1e-14,
                "cdf({x}) = {got:e}, want {want:e}"
            );
        }
    }

    #[test]
    fn int_ratio_rounds_like_python() {
        assert_eq!(int_ratio(1, 3), 1.0 / 3.0);
        // Python: ((1 << 60) + 1) / 3 and 3**70 / 7**30, where float(3**70) / float(7**30)
        // is 111057177.03844835.
        assert_eq!(int_ratio((1 << 60) + 1, 3), 3.843071682022823e17);
        assert_eq!(int_ratio(3i128.pow(70), 7i128.pow(30)), 111057177.03844833);
    }

    #[test]
    fn floor_divide_like_numpy() {
        assert_eq!(npy_floor_divide(7.0, 2.0), 3.0);
        assert_eq!(npy_floor_divide(-7.0, 2.0), -4.0);
        assert_eq!(npy_floor_divide(6.0, 3.0), 2.0);
        assert!(npy_floor_divide(0.0, -3.0).is_sign_negative());
    }

    #[test]
    fn bad_inputs_are_errors() {
        assert_eq!(
            cramervonmises_2samp(&[1.0], &[1.0, 2.0], CvmMethod::Auto),
            Err(CvmError::TooFewValues {
                which: "reference",
                len: 1
            })
        );
        assert_eq!(
            cramervonmises_2samp(&[1.0, 2.0], &[1.0, f64::INFINITY], CvmMethod::Auto),
            Err(CvmError::NonFinite {
                which: "current",
                index: 1
            })
        );
        let big: Vec<f64> = (0..60).map(f64::from).collect();
        assert_eq!(
            cramervonmises_2samp(&big, &big, CvmMethod::Exact),
            Err(CvmError::ExactTooLarge { n: 60, m: 60 })
        );
    }
}
