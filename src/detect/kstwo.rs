//! The exact finite-n one-sample two-sided KS distribution, `scipy.stats.kstwo`, as SciPy 1.17.1
//! computes it (`scipy/stats/_ksstats.py`, Simard & L'Ecuyer 2011), with the one-sided
//! `scipy.special.smirnov` (xsf `cephes/kolmogorov.h`) it calls.
//!
//! This is not the Kolmogorov limit (`kstwobign`): the two differ by percent in the body and by
//! orders of magnitude in the tails. `ks_2samp`'s asymptotic two-sided p-value is
//! `sf(D, round(n*m/(n+m)))`.
//!
//! The port keeps SciPy's branch structure and operation order. SciPy evaluates a few spots in
//! `long double` and with numpy's SIMD `exp`/`log`/BLAS; those contribute differences of the
//! order of 1e-15 relative, far inside the 1e-9 contract.

// Constants are copied digit for digit from the C/Python sources; each parses to the same double.
#![allow(clippy::excessive_precision)]

use super::cephes::{self, Dd};

const E128: i32 = 128;
const EP128: f64 = 3.402_823_669_209_385e38; // 2^128
const EM128: f64 = 2.938_735_877_055_719e-39; // 2^-128
const MIN_LOG: f64 = -708.0;
const STIRLING_COEFFS: [f64; 8] = [
    -2.955065359477124183e-2,
    6.4102564102564102564e-3,
    -1.9175269175269175269e-3,
    8.4175084175084175084e-4,
    -5.952380952380952381e-4,
    7.9365079365079365079e-4,
    -2.7777777777777777778e-3,
    8.3333333333333333333e-2,
];

/// `clip(p, 0, 1)` as numpy does it (NaN propagates).
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

/// `scipy.stats.kstwo.sf(x, n)`: `P(D_n >= x)` for the two-sided one-sample statistic.
///
/// `n` must be a whole number `>= 1`, otherwise the result is NaN (as SciPy's `badvalue`).
/// Where SciPy sums the Birnbaum–Tingey series term by term in double-double arithmetic
/// (`smirnov`, about `n` terms, for `n >= 1000` that is milliseconds to a third of a
/// second), the sum is evaluated by quadrature instead (see "smirnov's lower series by
/// quadrature" in the source), or in plain doubles from each term's logarithm where the
/// quadrature declines; Durbin's matrix power keeps one row of the product (see
/// `kolmogn_dmtw_cdf`). All within a few 1e-13 relative of [`sf_reference`] (`cargo bench
/// --bench ks -- --kstwo-grid` checks a dense grid).
pub fn sf(x: f64, n: f64) -> f64 {
    sf_with(x, n, Sum::Fast)
}

/// [`sf`] evaluated exactly as SciPy does, every term of every series: the oracle for
/// [`sf`]'s fast path. Slow for large `n` (about 0.2 s at `n = 5e5`).
pub fn sf_reference(x: f64, n: f64) -> f64 {
    sf_with(x, n, Sum::TermByTerm)
}

/// How `smirnov`'s lower series is summed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sum {
    /// By quadrature where that is accurate, else term by term.
    Fast,
    /// Term by term, as SciPy.
    TermByTerm,
}

fn sf_with(x: f64, n: f64, sum: Sum) -> f64 {
    // rv_continuous.sf: argument check, then support [0.5/n, 1].
    if !(n >= 1.0 && n == n.round_ties_even()) || x.is_nan() {
        return f64::NAN;
    }
    if x <= 0.5 / n {
        return 1.0;
    }
    if x >= 1.0 {
        return 0.0;
    }
    if n > i64::MAX as f64 {
        return f64::NAN;
    }
    kolmogn_sf(n as i64, x, sum)
}

/// `_kolmogn(n, x, cdf=False)`.
fn kolmogn_sf(n: i64, x: f64, sum: Sum) -> f64 {
    if x >= 1.0 {
        return 0.0;
    }
    if x <= 0.0 {
        return 1.0;
    }
    let nf = n as f64;
    let t = nf * x;
    if t <= 1.0 {
        // Ruben-Gambino: 1/2n <= x <= 1/n
        if t <= 0.5 {
            return 1.0;
        }
        let prob = if n <= 140 {
            let rn = 1.0 / nf;
            let f = 2.0 * t - 1.0;
            let mut prod = 1.0;
            for i in 1..=n {
                prod *= (i as f64) * rn * f;
            }
            prod
        } else {
            (log_nfactorial_div_n_pow_n(nf) + nf * (2.0 * t - 1.0).ln()).exp()
        };
        return clip01(1.0 - prob);
    }
    if t >= nf - 1.0 {
        // Ruben-Gambino
        return clip01(2.0 * (1.0 - x).powf(nf));
    }
    if x >= 0.5 {
        // Exact: 2 * smirnov
        return clip01(2.0 * smirnov_sf(n, x, sum));
    }
    let nxsquared = t * x;
    if n <= 140 {
        if nxsquared <= 0.754693 {
            let prob = clip01(kolmogn_dmtw_cdf(n, x, sum));
            return clip01(1.0 - prob);
        }
        if nxsquared <= 4.0 {
            let prob = clip01(kolmogn_pomeranz_cdf(n, x));
            return clip01(1.0 - prob);
        }
        // Miller approximation of 2*smirnov.
        return clip01(2.0 * smirnov_sf(n, x, sum));
    }
    // SF and CDF have different cutoffs on nxsquared.
    if nxsquared >= 370.0 {
        return 0.0;
    }
    if nxsquared >= 2.2 {
        return clip01(2.0 * smirnov_sf(n, x, sum));
    }
    // Fall through and compute the SF as 1 - CDF (nxsquared < 18 here).
    let cdfprob = if n <= 100_000 && nf * x.powf(1.5) <= 1.4 {
        clip01(kolmogn_dmtw_cdf(n, x, sum))
    } else {
        kolmogn_pelz_good_cdf(nf, x)
    };
    clip01(1.0 - cdfprob)
}

/// `log(n! / n**n)` by Stirling's series.
fn log_nfactorial_div_n_pow_n(n: f64) -> f64 {
    let rn = 1.0 / n;
    let log_2pi = (2.0 * std::f64::consts::PI).ln();
    // np.polyval: y = y*x + c, starting from 0.
    let x = rn / n;
    let mut poly = 0.0;
    for c in STIRLING_COEFFS {
        poly = poly * x + c;
    }
    n.ln() / 2.0 - n + log_2pi / 2.0 + rn * poly
}

/// `a @ b` for `m × m` matrices in row-major order; with 256-bit vectors where the CPU has
/// them. Either way the same multiplications and additions in the same order (no fused
/// multiply-add), so the result is bit for bit the same.
fn matmul(a: &[f64], b: &[f64], m: usize) -> Vec<f64> {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, checked just above; that is all `matmul_avx2` needs.
        return unsafe { matmul_avx2(a, b, m) };
    }
    matmul_plain(a, b, m)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn matmul_avx2(a: &[f64], b: &[f64], m: usize) -> Vec<f64> {
    matmul_plain(a, b, m)
}

#[inline(always)]
fn matmul_plain(a: &[f64], b: &[f64], m: usize) -> Vec<f64> {
    let mut c = vec![0.0; m * m];
    for i in 0..m {
        for k in 0..m {
            let aik = a[i * m + k];
            if aik == 0.0 {
                continue;
            }
            let brow = &b[k * m..(k + 1) * m];
            let crow = &mut c[i * m..(i + 1) * m];
            for (cij, &bkj) in crow.iter_mut().zip(brow) {
                *cij += aik * bkj;
            }
        }
    }
    c
}

/// `_kolmogn_DMTW(n, d, cdf=True)`: Durbin's matrix algorithm as Marsaglia-Tsang-Wang.
///
/// `H^n[k-1][k-1] * n!/n^n`. SciPy (and [`Sum::TermByTerm`]) square and multiply whole
/// matrices and multiply by `n!/n^n` one factor at a time. [`Sum::Fast`] keeps only row `k-1`
/// of the product (a vector times each power of two `H` the exponent's bits call for: the
/// powers commute), squares with fused multiply-adds where the CPU has them, and takes
/// `n!/n^n` from Stirling's series in the log. Same result to a few 1e-13 relative (checked
/// against the reference in the tests), a third of the work.
fn kolmogn_dmtw_cdf(n: i64, d: f64, sum: Sum) -> f64 {
    if d >= 1.0 {
        return 1.0;
    }
    let nf = n as f64;
    let nd = nf * d;
    if nd <= 0.5 {
        return 0.0;
    }
    let k = nd.ceil() as usize;
    let h = k as f64 - nd;
    let m = 2 * k - 1;

    // SciPy's `np.power(h, arange(1, m+1))`; the fast path multiplies instead (each power
    // within `j` roundings of it: well inside what the matrix power's own rounding gives).
    let mut v: Vec<f64> = if sum == Sum::Fast {
        let mut hj = 1.0;
        (1..=m)
            .map(|_| {
                hj *= h;
                1.0 - hj
            })
            .collect()
    } else {
        (1..=m).map(|j| 1.0 - h.powf(j as f64)).collect()
    };
    let mut w = vec![0.0; m];
    let mut fac = 1.0;
    for j in 1..=m {
        w[j - 1] = fac;
        fac /= j as f64; // may underflow, harmless
        v[j - 1] *= fac;
    }
    let base = (2.0 * h - 1.0).max(0.0);
    let tt = base.powf(m as f64) - 2.0 * h.powf(m as f64);
    v[m - 1] = (1.0 + tt) * fac;

    let mut hm = vec![0.0; m * m];
    for i in 1..m {
        // H[i-1:, i] = w[:m-i+1]
        for r in (i - 1)..m {
            hm[r * m + i] = w[r - (i - 1)];
        }
    }
    for r in 0..m {
        hm[r * m] = v[r];
    }
    for c in 0..m {
        hm[(m - 1) * m + c] = v[m - 1 - c];
    }
    if sum == Sum::Fast {
        return dmtw_by_row(n, hm, m, k);
    }

    let mut hpwr = vec![0.0; m * m];
    for i in 0..m {
        hpwr[i * m + i] = 1.0;
    }
    let mut nn = n;
    let mut expnt: i64 = 0;
    let mut hexpnt: i64 = 0;
    while nn > 0 {
        if nn % 2 == 1 {
            hpwr = matmul(&hpwr, &hm, m);
            expnt += hexpnt;
        }
        hm = matmul(&hm, &hm, m);
        hexpnt *= 2;
        if hm[(k - 1) * m + (k - 1)].abs() > EP128 {
            for e in hm.iter_mut() {
                *e /= EP128;
            }
            hexpnt += i64::from(E128);
        }
        nn /= 2;
    }
    let mut p = hpwr[(k - 1) * m + (k - 1)];
    // Multiply by n!/n^n.
    for i in 1..=n {
        p = (i as f64) * p / nf;
        if p.abs() < EM128 {
            p *= EP128;
            expnt -= i64::from(E128);
        }
    }
    if expnt != 0 {
        p = cephes::ldexp(p, expnt.clamp(-100_000, 100_000) as i32);
    }
    p
}

/// [`kolmogn_dmtw_cdf`]'s fast path from the matrix `H` (`m × m`, row-major) on.
fn dmtw_by_row(n: i64, h: Vec<f64>, m: usize, k: usize) -> f64 {
    // H in rows padded to a multiple of 8 with zeros (the padding stays zero under squaring).
    let s = m.div_ceil(8) * 8;
    let mut hm = vec![0.0; m * s];
    for (row, src) in hm.chunks_exact_mut(s).zip(h.chunks_exact(m)) {
        row[..m].copy_from_slice(src);
    }
    let mut sq = vec![0.0; m * s];
    // Row k-1 of the product of the powers taken so far, and the power of 2 it is scaled by.
    let mut row: Option<Vec<f64>> = None;
    let (mut expnt, mut hexpnt) = (0i64, 0i64);
    let mut nn = n;
    loop {
        if nn % 2 == 1 {
            let mut r = match row.take() {
                None => hm[(k - 1) * s..(k - 1) * s + m].to_vec(),
                Some(r) => row_times(&r, &hm, m, s),
            };
            expnt += hexpnt;
            if r.iter().any(|x| x.abs() > EP128) {
                r.iter_mut().for_each(|x| *x /= EP128);
                expnt += i64::from(E128);
            }
            row = Some(r);
        }
        nn /= 2;
        if nn == 0 {
            break;
        }
        square(&hm, &mut sq, m, s);
        std::mem::swap(&mut hm, &mut sq);
        hexpnt *= 2;
        if hm[(k - 1) * s + (k - 1)].abs() > EP128 {
            hm.iter_mut().for_each(|e| *e /= EP128);
            hexpnt += i64::from(E128);
        }
    }
    let p = row.map_or(0.0, |r| r[k - 1]);
    if p <= 0.0 || !p.is_finite() {
        return p.max(0.0);
    }
    let ln_fact = if n <= 140 {
        // Exact enough as a sum of logs at this size.
        (1..=n).map(|i| (i as f64 / n as f64).ln()).sum::<f64>()
    } else {
        log_nfactorial_div_n_pow_n(n as f64)
    };
    (p.ln() + ln_fact + expnt as f64 * std::f64::consts::LN_2).exp()
}

/// `r @ b` for a row vector `r` of length `m` and an `m × m` matrix in rows of stride `s`.
fn row_times(r: &[f64], b: &[f64], m: usize, s: usize) -> Vec<f64> {
    let mut out = vec![0.0; m];
    for (k, &rk) in r.iter().enumerate() {
        for (o, &bkj) in out.iter_mut().zip(&b[k * s..k * s + m]) {
            *o += rk * bkj;
        }
    }
    out
}

/// `c = a @ a` for a persymmetric `m × m` matrix (`a[i][j] = a[m-1-j][m-1-i]`, as Durbin's
/// matrix and its powers are) in rows of stride `s` (a multiple of 4), padded with zeros, as
/// `c`'s padding must be too. With fused multiply-adds on 256-bit vectors where the CPU has
/// them: each entry rounds once a step instead of twice, so not bit for bit the plain product.
fn square(a: &[f64], c: &mut [f64], m: usize, s: usize) {
    assert!(s.is_multiple_of(4) && s >= m && a.len() >= m * s && c.len() >= m * s);
    #[cfg(target_arch = "x86_64")]
    if s.is_multiple_of(8) && std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU has AVX-512F (checked just above), `s` is a multiple of 8, and the
        // lengths and stride were checked by the assertion: all `square_avx512` needs.
        unsafe { square_avx512(a, c, m, s) };
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has AVX2 and FMA (checked just above), and the lengths and stride
        // were checked by the assertion, which is all `square_fma` reads and writes within.
        unsafe { square_fma(a, c, m, s) };
        return;
    }
    square_plain(a, c, m, s);
}

/// [`square`] without vectors.
fn square_plain(a: &[f64], c: &mut [f64], m: usize, s: usize) {
    for i in 0..m {
        let crow = &mut c[i * s..(i + 1) * s];
        crow.fill(0.0);
        for k in 0..m {
            let aik = a[i * s + k];
            for (cij, &akj) in crow.iter_mut().zip(&a[k * s..(k + 1) * s]) {
                *cij += aik * akj;
            }
        }
    }
}

/// [`square`] on AVX2 + FMA for a persymmetric `a`: for each row, up to 16 columns at a time
/// kept in registers while `k` runs. Caller guarantees `s % 4 == 0`, `m <= s` and `a`, `c`
/// hold `m * s` values.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn square_fma(a: &[f64], c: &mut [f64], m: usize, s: usize) {
    for i in 0..m {
        // Durbin's matrix is persymmetric (`H[i][j] = H[m-1-j][m-1-i]`: Toeplitz inside, its
        // last row the first column reversed), and so is every power of it: only the entries
        // on and above the anti-diagonal (`j <= m-1-i`) are computed, the rest mirrored from
        // rows above. Columns past those blocks keep what they hold: zeros in the padding.
        let blocks = (m - i).div_ceil(4);
        let mut jb = 0;
        while jb < blocks {
            let nb = (blocks - jb).min(4);
            // SAFETY: row i and columns [4 jb, 4 (jb + nb)) lie within the m * s values.
            unsafe {
                match nb {
                    4 => square_block::<4>(a, c, m, s, i, jb),
                    3 => square_block::<3>(a, c, m, s, i, jb),
                    2 => square_block::<2>(a, c, m, s, i, jb),
                    _ => square_block::<1>(a, c, m, s, i, jb),
                }
            }
            jb += nb;
        }
        for j in m - i..m {
            c[i * s + j] = c[(m - 1 - j) * s + (m - 1 - i)];
        }
    }
}

/// [`square`] on 512-bit vectors, four rows at a time: up to 32 columns of each kept in
/// registers while `k` runs, each row of `a` loaded once for the four. A row's sum over `k`
/// is a chain of dependent multiply-adds; four rows (and several column blocks) give the
/// CPU independent chains to overlap, which is what makes it fast at Durbin's sizes (`m` up
/// to 25 at n = 1,000), where one row's chain is all there is to wait on. Whole rows: at
/// these sizes mirroring half of them (as `square_fma` does) costs more than it saves.
/// Caller guarantees `s % 8 == 0`, `m <= s` and `a`, `c` hold `m * s` values.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn square_avx512(a: &[f64], c: &mut [f64], m: usize, s: usize) {
    let blocks = m.div_ceil(8);
    for i in (0..m).step_by(ROWS) {
        let mut jb = 0;
        while jb < blocks {
            let nb = (blocks - jb).min(4);
            // SAFETY: rows i.. (those below m) and columns [8 jb, 8 (jb + nb)) lie within
            // the m * s values (8 blocks <= s).
            unsafe {
                match nb {
                    4 => square_rows512::<4>(a, c, m, s, i, jb),
                    3 => square_rows512::<3>(a, c, m, s, i, jb),
                    2 => square_rows512::<2>(a, c, m, s, i, jb),
                    _ => square_rows512::<1>(a, c, m, s, i, jb),
                }
            }
            jb += nb;
        }
    }
}

/// Rows [`square_avx512`] takes at once.
#[cfg(target_arch = "x86_64")]
const ROWS: usize = 4;

/// Rows `i .. i + ROWS` (those below `m`), columns `8 jb .. 8 (jb + NB)` of `a @ a`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn square_rows512<const NB: usize>(
    a: &[f64],
    c: &mut [f64],
    m: usize,
    s: usize,
    i: usize,
    jb: usize,
) {
    use std::arch::x86_64::{_mm512_fmadd_pd, _mm512_loadu_pd, _mm512_set1_pd};
    use std::arch::x86_64::{_mm512_setzero_pd, _mm512_storeu_pd};
    // Past the last row the group repeats it (computed, not stored).
    let rows: [usize; ROWS] = std::array::from_fn(|r| (i + r).min(m - 1));
    let mut acc = [[_mm512_setzero_pd(); NB]; ROWS];
    for k in 0..m {
        let brow = &a[k * s + 8 * jb..k * s + 8 * (jb + NB)];
        // SAFETY: brow holds 8 * NB values; 8 q + 7 < 8 NB.
        let b: [_; NB] =
            std::array::from_fn(|q| unsafe { _mm512_loadu_pd(brow.as_ptr().add(8 * q)) });
        for (acc, &row) in acc.iter_mut().zip(&rows) {
            let aik = _mm512_set1_pd(a[row * s + k]);
            for (acc, &b) in acc.iter_mut().zip(&b) {
                *acc = _mm512_fmadd_pd(aik, b, *acc);
            }
        }
    }
    for (acc, r) in acc.iter().zip(i..m) {
        let crow = &mut c[r * s + 8 * jb..r * s + 8 * (jb + NB)];
        for (q, acc) in acc.iter().enumerate() {
            // SAFETY: crow holds 8 * NB values; 8 q + 7 < 8 NB.
            unsafe { _mm512_storeu_pd(crow.as_mut_ptr().add(8 * q), *acc) };
        }
    }
}

/// Row `i`, columns `4 jb .. 4 (jb + NB)` of `a @ a`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn square_block<const NB: usize>(
    a: &[f64],
    c: &mut [f64],
    m: usize,
    s: usize,
    i: usize,
    jb: usize,
) {
    use std::arch::x86_64::{_mm256_fmadd_pd, _mm256_loadu_pd, _mm256_set1_pd};
    use std::arch::x86_64::{_mm256_setzero_pd, _mm256_storeu_pd};
    let mut acc = [_mm256_setzero_pd(); NB];
    for k in 0..m {
        let aik = _mm256_set1_pd(a[i * s + k]);
        let brow = &a[k * s + 4 * jb..k * s + 4 * (jb + NB)];
        for (q, acc) in acc.iter_mut().enumerate() {
            // SAFETY: brow holds 4 * NB values; 4 q + 3 < 4 NB.
            *acc = _mm256_fmadd_pd(
                aik,
                unsafe { _mm256_loadu_pd(brow.as_ptr().add(4 * q)) },
                *acc,
            );
        }
    }
    let crow = &mut c[i * s + 4 * jb..i * s + 4 * (jb + NB)];
    for (q, acc) in acc.iter().enumerate() {
        // SAFETY: crow holds 4 * NB values; 4 q + 3 < 4 NB.
        unsafe { _mm256_storeu_pd(crow.as_mut_ptr().add(4 * q), *acc) };
    }
}

/// Python's `seq[start:stop]` index range for a sequence of length `len`.
fn py_slice(len: usize, start: i64, stop: i64) -> std::ops::Range<usize> {
    let len_i = len as i64;
    let fix = |i: i64| -> i64 {
        if i < 0 {
            (i + len_i).max(0)
        } else {
            i.min(len_i)
        }
    };
    let (s, e) = (fix(start), fix(stop));
    if e <= s {
        0..0
    } else {
        s as usize..e as usize
    }
}

/// `numpy.convolve(a, v)` in "full" mode.
fn convolve(a: &[f64], v: &[f64]) -> Vec<f64> {
    if a.is_empty() || v.is_empty() {
        return Vec::new();
    }
    let mut out = vec![0.0; a.len() + v.len() - 1];
    for (i, &ai) in a.iter().enumerate() {
        for (j, &vj) in v.iter().enumerate() {
            out[i + j] += ai * vj;
        }
    }
    out
}

fn pomeranz_j1j2(i: i64, n: i64, ll: i64, ceilf: i64, roundf: i64) -> (i64, i64) {
    let (j1, j2) = if i == 0 {
        (-ll - ceilf - 1, ll + ceilf - 1)
    } else {
        let ip1div2 = (i + 1) / 2;
        let ip1mod2 = (i + 1) % 2;
        if ip1mod2 == 0 {
            if ip1div2 == n + 1 {
                (n - ll - ceilf - 1, n + ll + ceilf - 1)
            } else {
                (ip1div2 - 1 - ll - roundf - 1, ip1div2 + ll - 1 + ceilf - 1)
            }
        } else {
            (ip1div2 - 1 - ll - 1, ip1div2 + ll + roundf - 1)
        }
    };
    ((j1 + 2).max(0), j2.min(n))
}

/// `_kolmogn_Pomeranz(n, x, cdf=True)`.
fn kolmogn_pomeranz_cdf(n: i64, x: f64) -> f64 {
    let nf = n as f64;
    let t = nf * x;
    let ll = t.floor() as i64;
    let f = t - ll as f64;
    let g = f.min(1.0 - f);
    let ceilf = i64::from(f > 0.0);
    let roundf = i64::from(f > 0.5);
    let npwrs = (2 * (ll + 1)).max(1) as usize;
    let mut gpower = vec![0.0; npwrs];
    let mut twogpower = vec![0.0; npwrs];
    let mut onem2gpower = vec![0.0; npwrs];
    gpower[0] = 1.0;
    twogpower[0] = 1.0;
    onem2gpower[0] = 1.0;
    let mut expnt: i64 = 0;
    let g_over_n = g / nf;
    let two_g_over_n = 2.0 * g / nf;
    let one_minus_two_g_over_n = (1.0 - 2.0 * g) / nf;
    for m in 1..npwrs {
        let mf = m as f64;
        gpower[m] = gpower[m - 1] * g_over_n / mf;
        twogpower[m] = twogpower[m - 1] * two_g_over_n / mf;
        onem2gpower[m] = onem2gpower[m - 1] * one_minus_two_g_over_n / mf;
    }

    let mut v0 = vec![0.0; npwrs];
    let mut v1 = vec![0.0; npwrs];
    v1[0] = 1.0;
    let (mut v0s, mut v1s): (i64, i64) = (0, 0);
    let mut j1 = pomeranz_j1j2(0, n, ll, ceilf, roundf).0;
    for i in 1..(2 * n + 2) {
        let k1 = j1;
        std::mem::swap(&mut v0, &mut v1);
        std::mem::swap(&mut v0s, &mut v1s);
        v1.fill(0.0);
        let (new_j1, j2) = pomeranz_j1j2(i, n, ll, ceilf, roundf);
        j1 = new_j1;
        let pwrs = if i == 1 || i == 2 * n + 1 {
            &gpower
        } else if i % 2 == 1 {
            &twogpower
        } else {
            &onem2gpower
        };
        let ln2 = j2 - k1 + 1;
        if ln2 > 0 {
            let a = &v0[py_slice(npwrs, k1 - v0s, k1 - v0s + ln2)];
            let b = &pwrs[py_slice(npwrs, 0, ln2)];
            let conv = convolve(a, b);
            let conv_start = j1 - k1;
            let conv_len = j2 - j1 + 1;
            let src = &conv[py_slice(conv.len(), conv_start, conv_start + conv_len)];
            let dst = py_slice(npwrs, 0, conv_len);
            for (d, &s) in v1[dst].iter_mut().zip(src) {
                *d = s;
            }
            let vmax = v1.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            if 0.0 < vmax && vmax < EM128 {
                for e in v1.iter_mut() {
                    *e *= EP128;
                }
                expnt -= i64::from(E128);
            }
            v1s = v0s + j1 - k1;
        }
    }
    // Multiply by n!.
    let idx = n - v1s;
    let mut ans = if idx >= 0 && (idx as usize) < npwrs {
        v1[idx as usize]
    } else {
        0.0
    };
    for m in 1..=n {
        if ans.abs() > EP128 {
            ans *= EM128;
            expnt += i64::from(E128);
        }
        ans *= m as f64;
    }
    if expnt != 0 {
        ans = cephes::ldexp(ans, expnt.clamp(-100_000, 100_000) as i32);
    }
    ans
}

/// numpy's pairwise summation (`np.sum` of a contiguous float64 array).
fn np_sum(a: &[f64]) -> f64 {
    let n = a.len();
    if n < 8 {
        let mut res = 0.0;
        for &x in a {
            res += x;
        }
        res
    } else if n <= 128 {
        let mut r = [0.0f64; 8];
        r.copy_from_slice(&a[..8]);
        let mut i = 8;
        while i < n - (n % 8) {
            for (k, rk) in r.iter_mut().enumerate() {
                *rk += a[i + k];
            }
            i += 8;
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        while i < n {
            res += a[i];
            i += 1;
        }
        res
    } else {
        let mut n2 = n / 2;
        n2 -= n2 % 8;
        np_sum(&a[..n2]) + np_sum(&a[n2..])
    }
}

/// `_kolmogn_PelzGood(n, x, cdf=True)`: Pelz-Good approximation of `P(D_n <= x)`.
fn kolmogn_pelz_good_cdf(n: f64, x: f64) -> f64 {
    use std::f64::consts::PI;
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let pi_squared = PI.powf(2.0);
    let pi_four = PI.powf(4.0);
    let pi_six = PI.powf(6.0);
    let sqrt2pi = (2.0 * PI).sqrt();
    let sqrt3 = 3.0f64.sqrt();

    let z = n.sqrt() * x;
    let zsquared = z.powf(2.0);
    let zthree = z.powf(3.0);
    let zfour = z.powf(4.0);
    let zsix = z.powf(6.0);

    let qlog = -pi_squared / 8.0 / zsquared;
    if qlog < MIN_LOG {
        // z ~ 0.041743441416853426
        return 0.0;
    }
    let q = qlog.exp();

    // Coefficients of terms in the sums for K1, K2 and K3.
    let k1a = -zsquared;
    let k1b = pi_squared / 4.0;

    let k2a = 6.0 * zsix + 2.0 * zfour;
    let k2b = (2.0 * zfour - 5.0 * zsquared) * pi_squared / 4.0;
    let k2c = pi_four * (1.0 - 2.0 * zsquared) / 16.0;

    let k3d = pi_six * (5.0 - 30.0 * zsquared) / 64.0;
    let k3c = pi_four * (-60.0 * zsquared + 212.0 * zfour) / 16.0;
    let k3b = pi_squared * (135.0 * zfour - 96.0 * zsix) / 4.0;
    let k3a = -30.0 * zsix - 90.0 * z.powf(8.0);

    let mut k0to3 = [0.0f64; 4];
    // Horner scheme for sum c_i q^(i^2), reduced to a sum over odd integers.
    let maxk = (16.0 * z / PI).ceil() as i64;
    for k in (1..=maxk).rev() {
        let m = 2 * k - 1;
        let msquared = (m * m) as f64;
        let mfour = (m * m * m * m) as f64;
        let msix = (m * m * m * m * m * m) as f64;
        let qpower = q.powf((8 * k) as f64);
        let coeffs = [
            1.0,
            k1a + k1b * msquared,
            k2a + k2b * msquared + k2c * mfour,
            k3a + k3b * msquared + k3c * mfour + k3d * msix,
        ];
        for (kk, c) in k0to3.iter_mut().zip(coeffs) {
            *kk *= qpower;
            *kk += c;
        }
    }
    for kk in k0to3.iter_mut() {
        *kk *= q;
    }
    for kk in k0to3.iter_mut() {
        *kk *= sqrt2pi;
    }
    let divisors = [z, 6.0 * zfour, 72.0 * z.powf(7.0), 6480.0 * z.powf(10.0)];
    for (kk, d) in k0to3.iter_mut().zip(divisors) {
        *kk /= d;
    }

    // The other sums, over all integers k:
    // K_2: (pi^2 k^2) q^(k^2), K_3: (3pi^2 k^2 z^2 - pi^4 k^4) q^(k^2).
    let q = (-pi_squared / 2.0 / zsquared).exp();
    let ks: Vec<i64> = (1..=maxk).rev().collect();
    let sqrt3z = sqrt3 * z;
    let qpwers: Vec<f64> = ks.iter().map(|&k| q.powf((k * k) as f64)).collect();
    let terms2: Vec<f64> = ks
        .iter()
        .zip(&qpwers)
        .map(|(&k, &qp)| (k * k) as f64 * qp)
        .collect();
    let mut k2extra = np_sum(&terms2);
    k2extra *= pi_squared * sqrt2pi / (-36.0 * zthree);
    k0to3[2] += k2extra;
    let terms3: Vec<f64> = ks
        .iter()
        .zip(&qpwers)
        .map(|(&k, &qp)| {
            let kspi = PI * k as f64;
            (sqrt3z + kspi) * (sqrt3z - kspi) * (k * k) as f64 * qp
        })
        .collect();
    let mut k3extra = np_sum(&terms3);
    k3extra *= pi_squared * sqrt2pi / (216.0 * zsix);
    k0to3[3] += k3extra;
    let powers_of_n = [1.0, n.powf(0.5), n.powf(1.0), n.powf(1.5)];
    for (kk, p) in k0to3.iter_mut().zip(powers_of_n) {
        *kk /= p;
    }
    // Python's builtin sum: 0 + K0 + K1 + K2 + K3.
    let mut ksum = 0.0;
    for kk in k0to3 {
        ksum += kk;
    }
    ksum
}

// ---------------------------------------------------------------------------------------------
// smirnov: one-sided exact (xsf cephes/kolmogorov.h)
// ---------------------------------------------------------------------------------------------

const SMIRNOV_MAX_COMPUTE_N: i64 = 1_000_000;
const SM_UPPER_MAX_TERMS: i64 = 3;
const SM_UPPERSUM_MIN_N: i64 = 10;
const SM_MAX_EXPONENT: i32 = 960;
const CEPHES_MINLOG: f64 = -7.451332191019412076235E2;

fn next_power_of_2(x: f64) -> f64 {
    let q = cephes::ldexp(x, 1 - 53);
    let mut l = (q + x).abs();
    if l == 0.0 {
        l = x.abs();
    } else {
        let lint = l as i32;
        if f64::from(lint) == l {
            l = f64::from(lint);
        }
    }
    l
}

/// `floor(n*x)` and the remainder, computed exactly. Returns `(alpha, nxfloor, nx)`.
fn mod_nx(n: i64, x: f64) -> (f64, i64, f64) {
    let nx_d = (n as f64) * Dd::new(x);
    let nxfloor_d = nx_d.floor();
    let alpha_d = nx_d - nxfloor_d;
    let mut alpha = alpha_d.hi;
    let mut nxfloor = nxfloor_d.hi as i64;
    if alpha == 1.0 {
        nxfloor += 1;
        alpha = 0.0;
    }
    (alpha, nxfloor, nx_d.hi)
}

/// `C(n, j+1)` from `C(n, j)`, kept as a (mantissa, exponent) pair.
fn update_binomial(cman: &mut Dd, cexpt: &mut i64, n: i64, j: i64) {
    let rat = Dd::new((n - j) as f64) / ((j as f64) + 1.0);
    let (man2, expt) = (*cman * rat).frexp();
    *cexpt += i64::from(expt);
    *cman = man2;
}

fn pow_d(a: Dd, m: i64) -> Dd {
    if m <= 0 {
        if m == 0 {
            return Dd::new(1.0);
        }
        return 1.0 / pow_d(a, -m);
    }
    if a.eq_f(0.0) {
        return Dd::new(0.0);
    }
    let mf = m as f64;
    let ans = a.hi.powf(mf);
    let r = a.lo / a.hi;
    let mut adj = mf * r;
    if adj.abs() > 1e-8 {
        if adj.abs() < 1e-4 {
            // First two terms of the Taylor series of (1+r)^m.
            adj += (mf * r) * ((mf - 1.0) / 2.0 * r);
        } else {
            adj = cephes::expm1(mf * r.ln_1p());
        }
    }
    Dd::new(ans) + ans * adj
}

fn pow2(a: f64, b: f64, m: i64) -> f64 {
    pow_d(Dd::new(a) + b, m).hi
}

/// `a^m = significand * 2^exponent`.
fn pow2_scaled_d(a: Dd, m: i64) -> (Dd, i64) {
    if m <= 0 {
        if m == 0 {
            return (Dd::new(1.0), 0);
        }
        let (ans, ae1) = pow2_scaled_d(a, -m);
        let (ans, ae2) = (1.0 / ans).frexp();
        return (ans, -ae1 + i64::from(ae2));
    }
    let (y, ye) = a.frexp();
    let ye = i64::from(ye);
    if m == 1 {
        return (y, ye);
    }
    let mut max_expt = i64::from(SM_MAX_EXPONENT);
    let mf = m as f64;
    if mf * (y.hi - 1.0) / y.hi < -f64::from(SM_MAX_EXPONENT) * std::f64::consts::LN_2 {
        // Now do it carefully, calling log().
        let lg2y = y.hi.ln() / std::f64::consts::LN_2;
        let lg_ans = mf * lg2y;
        if lg_ans <= -f64::from(SM_MAX_EXPONENT) {
            max_expt =
                (next_power_of_2(-f64::from(SM_MAX_EXPONENT) / lg2y + 1.0) / 2.0) as i32 as i64;
            if max_expt < 1 {
                max_expt = 1;
            }
        }
    }
    if m <= max_expt {
        let ans1 = pow_d(y, m);
        let (ans, anse) = ans1.frexp();
        return (ans, i64::from(anse) + m * ye);
    }
    let q = m / max_expt;
    let r = m % max_expt;
    // y^m = (y^maxExpt)^q * y^r
    let (y2r, y2re) = pow2_scaled_d(y, r);
    let (y2m, y2me) = pow2_scaled_d(y, max_expt);
    let (y2mq, y2mqe) = pow2_scaled_d(y2m, q);
    let (ans, anse) = (y2r * y2mq).frexp();
    let y2mqe = y2mqe + y2me * q;
    let anse = i64::from(anse) + y2mqe + y2re + m * ye;
    (ans, anse)
}

/// `((a+b)/(c+d))^m`.
fn pow4_d(a: f64, b: f64, c: f64, d: f64, m: i64) -> Dd {
    if m <= 0 {
        if m == 0 {
            return Dd::new(1.0);
        }
        return pow4_d(c, d, a, b, -m);
    }
    let big_a = Dd::new(a) + b;
    let big_c = Dd::new(c) + d;
    if big_a.eq_f(0.0) {
        return if big_c.eq_f(0.0) {
            Dd {
                hi: f64::NAN,
                lo: f64::NAN,
            }
        } else {
            Dd::new(0.0)
        };
    }
    if big_c.eq_f(0.0) {
        let inf = if big_a.hi < 0.0 || (big_a.hi == 0.0 && big_a.lo < 0.0) {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        };
        return Dd { hi: inf, lo: inf };
    }
    pow_d(big_a / big_c, m)
}

/// One term `A_v(n, x) = C(n,v) (1-x-v/n)^(n-v) (x+v/n)^(v-1)`.
fn compute_av(n: i64, x: f64, v: i64, cman: Dd, cexpt: i64) -> Dd {
    let nf = n as f64;
    let t2x = Dd::new((n - v) as f64) / nf - x; // 1 - x - v/n
    let (t2, t2e) = pow2_scaled_d(t2x, n - v);
    let t1x = Dd::new(v as f64) / nf + x; // x + v/n
    let (t1, t1e) = pow2_scaled_d(t1x, v - 1);
    let ans = t1 * t2;
    let ans = ans * cman;
    let anse = cexpt + t1e + t2e;
    ans.ldexp(anse.clamp(-100_000, 100_000) as i32)
}

/// `scipy.special.smirnov(n, x)`: `P(D+_n >= x)`.
fn smirnov_sf(n: i64, x: f64, sum: Sum) -> f64 {
    if !(n > 0 && (0.0..=1.0).contains(&x)) {
        return f64::NAN;
    }
    if n == 1 {
        return 1.0 - x;
    }
    if x == 0.0 {
        return 1.0;
    }
    if x == 1.0 {
        return 0.0;
    }
    let nf = n as f64;
    let (alpha, nxfl, _nx) = mod_nx(n, x);
    let mut n1mxfl = n - nxfl - if alpha == 0.0 { 0 } else { 1 };
    let mut n1mxceil = n - nxfl;
    // If alpha is 0, don't include the last term in either summation.
    if alpha == 0.0 {
        n1mxfl -= 1;
        n1mxceil += 1;
    }
    // x <= 1/n
    if nxfl == 0 || (nxfl == 1 && alpha == 0.0) {
        let t = pow2(1.0, x, n - 1);
        let cdf = x * t;
        return (1.0 - cdf).clamp(0.0, 1.0);
    }
    // x so big the sf underflows
    if ((-2 * n) as f64) * x * x < CEPHES_MINLOG {
        return 0.0;
    }
    // x >= 1 - 1/n
    if nxfl >= n - 1 {
        return pow2(1.0, -x, n).clamp(0.0, 1.0);
    }
    // n so big it would take too long
    if n > SMIRNOV_MAX_COMPUTE_N {
        // p ~ e^(-(6nx+1)^2 / 18n)
        let logp = -(6.0 * nf * x + 1.0).powf(2.0) / 18.0 / nf;
        let sf = if logp < -std::f64::consts::LN_2 {
            logp.exp()
        } else {
            1.0 - (-cephes::expm1(logp))
        };
        return sf.clamp(0.0, 1.0);
    }
    let n_upper_terms = n - n1mxceil + 1;
    let use_upper = (n_upper_terms <= 1 && x < 0.5)
        || (n >= SM_UPPERSUM_MIN_N && n_upper_terms <= SM_UPPER_MAX_TERMS && x <= 0.5 / nf.sqrt());

    let (start, step, n_terms) = if use_upper {
        (n, -1, n - n1mxceil + 1)
    } else {
        (0, 1, n1mxfl + 1)
    };
    if sum == Sum::Fast && !use_upper {
        if n >= QUADRATURE_MIN_N {
            if let Some(prob) = smirnov_sum_by_quadrature(n, x, n1mxfl) {
                return prob.clamp(0.0, 1.0);
            }
        }
        return smirnov_lower_sum(n, x, alpha, nxfl, n1mxfl).clamp(0.0, 1.0);
    }
    let vmid = n / 2;
    let mut cman = Dd::new(1.0);
    let mut cexpt: i64 = 0;
    let mut aj_sum = Dd::new(0.0);
    let aj = if use_upper {
        pow4_d(1.0, x, 1.0, 0.0, n - 1)
    } else {
        pow4_d(1.0, -x, 1.0, 0.0, n) / x
    };
    aj_sum = aj_sum + aj;
    update_binomial(&mut cman, &mut cexpt, n, 0);
    for j in 1..n_terms {
        let v = start + j * step;
        let aj = compute_av(n, x, v, cman, cexpt);
        if aj.is_finite() && !aj.eq_f(0.0) {
            aj_sum = aj_sum + aj;
        }
        // Safe to terminate early?
        if !aj.eq_f(0.0) {
            if ((4 * (n_terms - j)) as f64) * aj.hi.abs() < f64::EPSILON * aj_sum.hi
                && j != n_terms - 1
            {
                break;
            }
        } else if j > vmid {
            break;
        }
        update_binomial(&mut cman, &mut cexpt, n, j);
    }
    let prob = (x * aj_sum).hi;
    let sf = if step < 0 { 1.0 - prob } else { prob };
    sf.clamp(0.0, 1.0)
}

/// `smirnov`'s lower series `x * sum_{v=0}^{last} T(v)`, `T(v) = C(n,v) p^(v-1) q^(n-v)` with
/// `p = x + v/n`, `q = 1 - p`, summed in plain doubles from each term's logarithm (scaled by
/// the largest so far), where SciPy multiplies out double-double powers: four logarithms and
/// an exponential a term instead of two dozen double-double products. `p` and `q` come from
/// `floor(n x)` and its exact remainder `alpha`, so `q` keeps its relative accuracy at the
/// end of the series; a term's logarithm is off by at most about `n * 1e-16`, the sum (of
/// positive terms) by as much relatively: within a few 1e-13 of the term-by-term sum (tests
/// below, and `cargo bench --bench ks -- --kstwo-grid`). Stops where SciPy does: past the
/// peak, once four times the remaining terms at the current size are below an ulp of the sum.
fn smirnov_lower_sum(n: i64, x: f64, alpha: f64, nxfl: i64, last: i64) -> f64 {
    let nf = n as f64;
    let nx = nxfl as f64 + alpha;
    // ln C(n, v), the largest ln T(v) so far, and the sum of T(v) / e^top.
    let (mut ln_c, mut top, mut s) = (0.0f64, f64::NEG_INFINITY, 0.0f64);
    for v in 0..=last {
        if v > 0 {
            ln_c += ((n - v + 1) as f64 / v as f64).ln();
        }
        let vf = v as f64;
        let p = (vf + nx) / nf;
        let q = ((n - v - nxfl) as f64 - alpha) / nf;
        let ln_t = ln_c + (vf - 1.0) * p.ln() + ((n - v) as f64) * q.ln();
        if ln_t > top {
            s = s * (top - ln_t).exp() + 1.0;
            top = ln_t;
        } else {
            let rel = (ln_t - top).exp();
            s += rel;
            if 4.0 * ((last - v) as f64) * rel < f64::EPSILON * s {
                break;
            }
        }
    }
    x * s * top.exp()
}

// ---------------------------------------------------------------------------------------------
// smirnov's lower series by quadrature
// ---------------------------------------------------------------------------------------------
//
// `smirnov(n, x) = x * sum_{v=0}^{N} T(v)` with `T(v) = C(n,v) (x + v/n)^(v-1) (1 - x - v/n)^(n-v)`
// (Birnbaum and Tingey), `N = floor(n(1-x))` or one less. SciPy adds up every term in
// double-double arithmetic, which for `n` in the hundreds of thousands is a few hundred
// thousand `pow`s. But `T`, extended to real `v` through Loader's saddle-point form of the
// binomial probability (`T(v) = dbinom(v; n, p) / p` with `p = x + v/n`, written with
// `stirlerr` and `bd0`, accurate to about 1e-15 relative), is a smooth bump whose width grows
// like `sqrt(n)`. The sum over the integers of such a function is its integral up to terms
// of order `exp(-2 pi^2 width^2)` (Poisson summation), and the trapezoid rule on a grid a
// few times finer than the width gives that integral to the same order. The integral is
// taken in `t = logit(v / v_end)`, which sends the logarithmic singularities at `v = 0` and
// `v = v_end` to infinity, so the integrand is analytic in the strip `|Im t| < pi` and a
// uniform step is accurate from the peak out to the tails. The window runs until the
// integrand has dropped by `e^46` on both sides; when it would come within 16 of either end
// of the sum (where `stirlerr`'s series stops being accurate and the edge terms matter), or
// a coarse scan finds mass outside it, the sum is done term by term instead. Over the grids
// checked (`kstwo` tests, and `cargo bench --bench ks -- --kstwo-grid`) the result is within
// a few 1e-13 relative of the term-by-term sum.

/// From this `n` on, `smirnov`'s lower series may be summed by quadrature.
const QUADRATURE_MIN_N: i64 = 1000;
/// The quadrature window keeps this far from both ends of the series.
const QUADRATURE_EDGE: f64 = 16.0;
/// Points of the coarse scan for the peak (and for mass outside the window).
const QUADRATURE_SCAN: usize = 128;
/// The window ends where the integrand is `e^-QUADRATURE_DROP` of its peak.
const QUADRATURE_DROP: f64 = 46.0;
/// Trapezoid steps per curvature width of the peak (in `t`).
const QUADRATURE_STEPS_PER_WIDTH: f64 = 8.0;

/// Loader's `stirlerr(z) = ln Gamma(z+1) - (z + 1/2) ln z + z - ln sqrt(2 pi)` for real
/// `z > 15`, by its asymptotic series.
fn stirlerr_large(z: f64) -> f64 {
    const S0: f64 = 1.0 / 12.0;
    const S1: f64 = 1.0 / 360.0;
    const S2: f64 = 1.0 / 1260.0;
    const S3: f64 = 1.0 / 1680.0;
    const S4: f64 = 1.0 / 1188.0;
    let zz = z * z;
    if z > 500.0 {
        (S0 - S1 / zz) / z
    } else if z > 80.0 {
        (S0 - (S1 - S2 / zz) / zz) / z
    } else if z > 35.0 {
        (S0 - (S1 - (S2 - S3 / zz) / zz) / zz) / z
    } else {
        (S0 - (S1 - (S2 - (S3 - S4 / zz) / zz) / zz) / zz) / z
    }
}

/// Loader's deviance term `bd0(x, m) = x ln(x/m) + m - x`, given `d = x - m` exactly.
fn bd0(x: f64, m: f64, d: f64) -> f64 {
    if d.abs() < 0.1 * (x + m) {
        // Series in v = d / (x + m), no cancellation.
        let v = d / (x + m);
        let v2 = v * v;
        let mut s = d * v;
        let mut ej = 2.0 * x * v;
        let mut j = 1.0;
        while j < 1000.0 {
            ej *= v2;
            let s1 = s + ej / (2.0 * j + 1.0);
            if s1 == s {
                break;
            }
            s = s1;
            j += 1.0;
        }
        s
    } else {
        x * (x / m).ln() - d
    }
}

/// `ln T(v)` for real `v` of the Birnbaum–Tingey series of `smirnov(n, x)`.
struct BtTerm {
    n: f64,
    /// `n x`
    c: f64,
    ln_n_over_2pi: f64,
    stirlerr_n: f64,
}

impl BtTerm {
    fn new(n: f64, x: f64) -> Self {
        BtTerm {
            n,
            c: n * x,
            ln_n_over_2pi: (n / (2.0 * std::f64::consts::PI)).ln(),
            stirlerr_n: stirlerr_large(n),
        }
    }

    /// `ln C(n,v) + (v-1) ln p + (n-v) ln q`, `p = x + v/n`, `q = 1 - p`, for
    /// `15 < v < n - n x - 15`.
    fn ln(&self, v: f64) -> f64 {
        let w = self.n - v;
        let np = v + self.c;
        let nq = w - self.c;
        self.stirlerr_n
            - stirlerr_large(v)
            - stirlerr_large(w)
            - bd0(v, np, -self.c)
            - bd0(w, nq, self.c)
            + 0.5 * (self.ln_n_over_2pi - v.ln() - w.ln())
            - (np / self.n).ln()
    }
}

/// `x * sum_{v=0}^{last} T(v)` by quadrature (see above), or `None` where that is not known
/// to be accurate.
fn smirnov_sum_by_quadrature(n: i64, x: f64, last: i64) -> Option<f64> {
    let nf = n as f64;
    let term = BtTerm::new(nf, x);
    let v_end = (last as f64).min(nf - term.c);
    let (v_lo, v_hi) = (QUADRATURE_EDGE, v_end - QUADRATURE_EDGE);
    // (Also false for NaN.)
    if v_hi.partial_cmp(&(v_lo + 64.0)) != Some(std::cmp::Ordering::Greater) {
        return None;
    }
    // Coarse scan in v: where the peak is, and (below) whether anything lies outside the window.
    let step = (v_hi - v_lo) / QUADRATURE_SCAN as f64;
    let mut scan = [0.0f64; QUADRATURE_SCAN + 1];
    let mut best = 0;
    for k in 0..scan.len() {
        scan[k] = term.ln(v_lo + step * k as f64);
        if scan[k] > scan[best] {
            best = k;
        }
    }
    // In t = logit(v / v_end): v = v_end * sigmoid(t), dv/dt = v_end * sigmoid(t) * sigmoid(-t).
    let ln_v_end = v_end.ln();
    let at = |t: f64| -> (f64, f64) {
        let (s, s1) = if t >= 0.0 {
            let e = (-t).exp();
            (1.0 / (1.0 + e), e / (1.0 + e))
        } else {
            let e = t.exp();
            (e / (1.0 + e), 1.0 / (1.0 + e))
        };
        let v = v_end * s;
        let ln_v = if (v_lo..=v_hi).contains(&v) {
            term.ln(v)
        } else {
            f64::NAN
        };
        (ln_v + ln_v_end + s.ln() + s1.ln(), v)
    };
    // The peak in t, by golden-section search around the coarse maximum.
    let v_best = v_lo + step * best as f64;
    let t_best = (v_best / (v_end - v_best)).ln();
    let half = 2.0 * step / (v_best * (1.0 - v_best / v_end)).max(1.0);
    let (mut a, mut b) = (t_best - half, t_best + half);
    let g = 0.5 * (5f64.sqrt() - 1.0);
    let (mut t1, mut t2) = (b - g * (b - a), a + g * (b - a));
    let (mut f1, mut f2) = (at(t1).0, at(t2).0);
    for _ in 0..100 {
        if b - a < 1e-9 {
            break;
        }
        if f1 < f2 {
            (a, t1, f1) = (t1, t2, f2);
            t2 = a + g * (b - a);
            f2 = at(t2).0;
        } else {
            (b, t2, f2) = (t2, t1, f1);
            t1 = b - g * (b - a);
            f1 = at(t1).0;
        }
    }
    let (t_peak, ln_peak) = if f1 > f2 { (t1, f1) } else { (t2, f2) };
    if !ln_peak.is_finite() {
        return None;
    }
    // The width from the curvature; the step a fraction of it.
    let dt = 1e-3;
    let curvature = (at(t_peak + dt).0 - 2.0 * ln_peak + at(t_peak - dt).0) / (dt * dt);
    if curvature.partial_cmp(&0.0) != Some(std::cmp::Ordering::Less) {
        return None;
    }
    let h = 1.0 / (-curvature).sqrt() / QUADRATURE_STEPS_PER_WIDTH;
    // Trapezoid sum outwards from the peak until the integrand is negligible.
    let mut sum = 1.0;
    let (mut v_min, mut v_max) = (f64::INFINITY, f64::NEG_INFINITY);
    let mut ln_v_peak = f64::NEG_INFINITY;
    for dir in [1.0, -1.0] {
        let mut k = 1.0;
        loop {
            let (ln_f, v) = at(t_peak + dir * h * k);
            if !ln_f.is_finite() || k > 1e5 {
                // Out of the safe range before the tail was negligible.
                return None;
            }
            sum += (ln_f - ln_peak).exp();
            v_min = v_min.min(v);
            v_max = v_max.max(v);
            ln_v_peak = ln_v_peak.max(term.ln(v));
            if ln_f < ln_peak - QUADRATURE_DROP {
                break;
            }
            k += 1.0;
        }
    }
    // Nothing of weight outside the window (the bump is unimodal; this makes sure).
    for (k, &s) in scan.iter().enumerate() {
        let v = v_lo + step * k as f64;
        if (v < v_min || v > v_max) && s > ln_v_peak - 30.0 {
            return None;
        }
    }
    let prob = (x.ln() + ln_peak + (h * sum).ln()).exp();
    prob.is_finite().then_some(prob)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Uniform doubles in [0, 1) from an xorshift seeded with `x`.
    fn uniforms(mut x: u64) -> impl FnMut() -> f64 {
        move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    #[test]
    fn the_wide_matrix_product_is_the_plain_one_bit_for_bit() {
        let mut u = uniforms(0x2545_F491_4F6C_DD1D);
        let mut next = || u() - 0.3;
        for m in [1, 3, 7, 19, 24, 61] {
            let a: Vec<f64> = (0..m * m).map(|_| next()).collect();
            let b: Vec<f64> = (0..m * m).map(|_| next() * 1e3).collect();
            let plain = matmul_plain(&a, &b, m);
            let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&matmul(&a, &b, m)), bits(&plain), "m = {m}");
        }
    }

    #[test]
    fn the_fused_persymmetric_square_is_the_plain_one_to_rounding() {
        let mut next = uniforms(0x9E37_79B9_7F4A_7C15);
        // Strides of a multiple of 8 take the 512-bit path where the CPU has it, the others
        // the 256-bit one.
        let sizes = [1usize, 3, 4, 5, 19, 24, 25, 33, 61];
        for (m, s) in sizes.iter().flat_map(|&m| {
            [
                (m, m.div_ceil(4) * 4),
                (m, m.div_ceil(8) * 8 + 4),
                (m, m.div_ceil(8) * 8),
            ]
        }) {
            let mut a = vec![0.0; m * s];
            for row in a.chunks_exact_mut(s) {
                row[..m].iter_mut().for_each(|v| *v = next());
            }
            // Persymmetric, as Durbin's matrix is.
            for i in 0..m {
                for j in m - i..m {
                    a[i * s + j] = a[(m - 1 - j) * s + (m - 1 - i)];
                }
            }
            let (mut fast, mut plain) = (vec![0.0; m * s], vec![f64::NAN; m * s]);
            square(&a, &mut fast, m, s);
            square_plain(&a, &mut plain, m, s);
            for (i, (f, p)) in fast.iter().zip(&plain).enumerate() {
                // Positive terms: every entry within a few ulps; the padding stays 0.
                assert!((f - p).abs() <= 1e-14 * p.abs(), "m={m} [{i}]: {f} vs {p}");
                if i % s >= m {
                    assert_eq!(*f, 0.0);
                }
            }
        }
    }

    #[test]
    fn sf_edges() {
        assert_eq!(sf(0.0, 10.0), 1.0);
        assert_eq!(sf(1.0, 10.0), 0.0);
        assert_eq!(sf(0.05, 10.0), 1.0); // below 0.5/n
        assert!(sf(0.3, 0.0).is_nan());
        assert!(sf(0.3, 2.5).is_nan());
        // n = 1: P(D_1 >= x) = 2(1-x) for x >= 1/2.
        assert!((sf(0.75, 1.0) - 0.5).abs() < 1e-15);
    }

    /// `|got - want| / want`, 0 when equal (also when both are 0).
    fn rel(got: f64, want: f64) -> f64 {
        if got == want {
            0.0
        } else {
            ((got - want) / want).abs()
        }
    }

    /// Relative where the doubles are normal; absolute for subnormal results (few bits).
    fn diff(got: f64, want: f64) -> f64 {
        if want >= 1e-300 {
            rel(got, want)
        } else {
            (got - want).abs()
        }
    }

    #[test]
    fn quadrature_matches_the_term_by_term_sum_on_a_grid() {
        // Every x from where the series takes over (n x^2 = 2.2) to where it underflows
        // (n x^2 = 370), geometrically spaced, plus off-grid jitter. Larger n are checked in
        // release by `cargo bench --bench ks -- --kstwo-grid` (the reference is slow there).
        let mut worst = 0.0f64;
        let mut fast_used = 0;
        for n in [1000i64, 1001, 1500, 2345, 4000, 7001] {
            let nf = n as f64;
            let (lo, hi) = ((2.2 / nf).sqrt(), (370.0 / nf).sqrt().min(0.5));
            for k in 0..=24 {
                let x = lo * (hi / lo).powf(k as f64 / 24.0) * (1.0 + 1e-6 * k as f64);
                let got = sf(x, nf);
                let want = sf_reference(x, nf);
                let e = diff(got, want);
                assert!(e < 1e-11, "n={n} x={x}: {got:e} vs {want:e} (diff {e:e})");
                worst = worst.max(e);
                fast_used += usize::from(got != want);
            }
        }
        assert!(worst < 1e-11);
        // The quadrature actually ran (the results are not bit-identical to the reference).
        assert!(fast_used > 50, "{fast_used}");
    }

    #[test]
    fn fast_sums_and_matrix_powers_match_scipys_order_across_the_body() {
        // Every branch below the quadrature's: Durbin's matrix (small x), Pomeranz and the
        // Miller series (n <= 140), the plain-double lower series (n < 1000, and where the
        // quadrature declines). Fast and reference differ only in summation order and
        // rounding; a few 1e-13 relative at most.
        let mut worst = 0.0f64;
        let mut differ = 0;
        for n in [2i64, 3, 7, 20, 64, 140, 141, 300, 999, 1000, 2500] {
            let nf = n as f64;
            for k in 0..60 {
                let x = (0.55 / nf) * ((0.999 * nf / 0.55).powf(k as f64 / 59.0));
                let (got, want) = (sf(x, nf), sf_reference(x, nf));
                let e = diff(got, want);
                assert!(e < 1e-12, "n={n} x={x}: {got:e} vs {want:e} ({e:e})");
                worst = worst.max(e);
                differ += usize::from(got != want);
            }
        }
        // The fast paths ran (they are not bit-identical to the reference everywhere).
        assert!(differ > 100, "{differ}");
        assert!(worst > 0.0);
    }

    #[test]
    fn quadrature_declines_near_the_ends_of_the_series() {
        // Smallest x of the series at n = 1000: the bump is as wide as the series, so its tail
        // reaches v < 16 and the sum is done term by term.
        let (n, x) = (1000i64, 0.0469);
        let (alpha, nxfl, _) = mod_nx(n, x);
        let last = n - nxfl - if alpha == 0.0 { 2 } else { 1 };
        assert_eq!(smirnov_sum_by_quadrature(n, x, last), None);
        assert!(rel(sf(x, 1000.0), sf_reference(x, 1000.0)) < 1e-12);
        // Too short a series for a window at all.
        assert_eq!(smirnov_sum_by_quadrature(1000, 0.97, 29), None);
    }

    #[test]
    fn loader_terms_match_the_direct_formula() {
        // T(v) against ln C(n,v) + (v-1) ln p + (n-v) ln q summed directly at a small n, where
        // the direct form loses only a few ulps.
        let (n, x) = (200.0f64, 0.1);
        let term = BtTerm::new(n, x);
        let mut ln_c = 0.0;
        for v in 1..=150 {
            let vf = v as f64;
            ln_c += (n - vf + 1.0).ln() - vf.ln();
            if v < 16 {
                continue;
            }
            let p = x + vf / n;
            let direct = ln_c + (vf - 1.0) * p.ln() + (n - vf) * (1.0 - p).ln();
            let loader = term.ln(vf);
            assert!(
                (direct - loader).abs() < 1e-11,
                "v={v}: {direct} vs {loader}"
            );
        }
    }

    #[test]
    fn smirnov_small_n() {
        // smirnov(2, 0.25) = 1 - 0.25*(1+0.25) ... computed by SciPy: 0.6875 for x <= 1/n branch.
        assert!((smirnov_sf(2, 0.25, Sum::Fast) - 0.6875).abs() < 1e-15);
        assert_eq!(smirnov_sf(1, 0.3, Sum::Fast), 0.7);
    }
}
