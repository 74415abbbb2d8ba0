//! KS timings: `cargo bench --bench ks`. Plain `fn main` (no criterion): median of several
//! runs with `std::time::Instant`, on deterministic data from two slightly shifted
//! normal-ish distributions.

use driftgauge::detect::ks::{ks_2samp, ks_2samp_sorted, Alternative, KsResult, Method};
use driftgauge::detect::kstwo;
use std::hint::black_box;
use std::time::{Duration, Instant};

/// 64-bit LCG (Knuth's MMIX constants); normal-ish values as a centred sum of 4 uniforms.
struct Lcg(u64);

impl Lcg {
    fn uniform(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }

    fn sample(&mut self, len: usize, shift: f64) -> Vec<f64> {
        (0..len)
            .map(|_| (0..4).map(|_| self.uniform()).sum::<f64>() - 2.0 + shift)
            .collect()
    }
}

fn median_time<T>(runs: usize, mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut last = f(); // warm-up
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            last = black_box(f());
            t.elapsed()
        })
        .collect();
    times.sort();
    (times[times.len() / 2], last)
}

fn fmt(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1000.0 {
        format!("{us:.1} µs")
    } else {
        format!("{:.2} ms", us / 1000.0)
    }
}

fn row(what: &str, n: usize, m: usize, method: Method, runs: usize, d: Duration, r: &KsResult) {
    println!(
        "| {what:<22} | {n:>8} | {m:>8} | {:<6} | {:<6} | {runs:>4} | {:>10} | {:.5} | {:.3e} |",
        method.as_str(),
        r.method.as_str(),
        fmt(d),
        r.statistic,
        r.p_value
    );
}

fn main() {
    println!("| what                   |        n |        m | method | used   | runs |     median | D       | p         |");
    println!("|------------------------|---------:|---------:|--------|--------|-----:|-----------:|---------|-----------|");
    let mut rng = Lcg(0x00c0_ffee);
    for &size in &[1_000usize, 10_000, 100_000, 1_000_000] {
        let reference = rng.sample(size, 0.0);
        let current = rng.sample(size, 0.02);
        let runs = if size >= 1_000_000 { 7 } else { 21 };
        for method in [Method::Auto, Method::Asymp] {
            let (d, r) = median_time(runs, || {
                ks_2samp(
                    black_box(&reference),
                    black_box(&current),
                    Alternative::TwoSided,
                    method,
                )
                .unwrap_or_else(|e| panic!("{e}"))
            });
            row("ks_2samp (sorts)", size, size, method, runs, d, &r);
        }
        let mut a = reference.clone();
        let mut b = current.clone();
        a.sort_unstable_by(f64::total_cmp);
        b.sort_unstable_by(f64::total_cmp);
        for method in [Method::Auto, Method::Asymp] {
            let (d, r) = median_time(runs, || {
                ks_2samp_sorted(black_box(&a), black_box(&b), Alternative::TwoSided, method)
                    .unwrap_or_else(|e| panic!("{e}"))
            });
            row("ks_2samp_sorted", size, size, method, runs, d, &r);
        }
        // The asymptotic two-sided p-value alone: kstwo.sf(D, round(n*m/(n+m))).
        let r = ks_2samp_sorted(&a, &b, Alternative::TwoSided, Method::Asymp)
            .unwrap_or_else(|e| panic!("{e}"));
        let en = (size as f64 * size as f64 / (2.0 * size as f64)).round_ties_even();
        let (d, p) = median_time(runs, || kstwo::sf(black_box(r.statistic), black_box(en)));
        println!(
            "| {:<22} | {size:>8} | {size:>8} | asymp  | asymp  | {runs:>4} | {:>10} | {:.5} | {p:.3e} |",
            "  of which kstwo::sf",
            fmt(d),
            r.statistic
        );
    }

    // Exact p-values at the auto boundary: coprime sizes, so lcm ~ 1e8 and the lattice walk is
    // the inside method (two-sided) or the path count (one-sided, which overflows and falls
    // back to asymp as in SciPy).
    let reference = rng.sample(9999, 0.0);
    let current = rng.sample(9998, 0.02);
    let mut a = reference.clone();
    let mut b = current.clone();
    a.sort_unstable_by(f64::total_cmp);
    b.sort_unstable_by(f64::total_cmp);
    for (alt, label) in [
        (Alternative::TwoSided, "exact p, two-sided"),
        (Alternative::Greater, "exact p, greater"),
    ] {
        let (d, r) = median_time(11, || {
            ks_2samp_sorted(black_box(&a), black_box(&b), alt, Method::Exact)
                .unwrap_or_else(|e| panic!("{e}"))
        });
        row(label, a.len(), b.len(), Method::Exact, 11, d, &r);
    }
    // A larger D widens the lattice band the exact two-sided walk has to cover.
    let current = rng.sample(9998, 0.2);
    let mut b = current.clone();
    b.sort_unstable_by(f64::total_cmp);
    let (d, r) = median_time(5, || {
        ks_2samp_sorted(
            black_box(&a),
            black_box(&b),
            Alternative::TwoSided,
            Method::Exact,
        )
        .unwrap_or_else(|e| panic!("{e}"))
    });
    row(
        "exact p, shift 0.2",
        a.len(),
        b.len(),
        Method::Exact,
        5,
        d,
        &r,
    );
}
