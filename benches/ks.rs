//! KS timings: `cargo bench --bench ks`. Plain `fn main` (no criterion): median of several
//! runs with `std::time::Instant`, on deterministic normal data (Box–Muller) with the current
//! sample shifted by 0.02 sd.
//!
//! `cargo bench --bench ks -- --kstwo-grid` instead checks `kstwo::sf` (whose large-n series
//! is summed by quadrature) against `kstwo::sf_reference` (SciPy's term-by-term sums) on a
//! dense grid of (n, x), in release, and prints the largest relative difference per n.
//! `cargo bench --bench ks -- --npy A.npy B.npy` times `ks_2samp` on two mapped `.npy` files
//! in process (what `driftgauge eval` spends outside process start and file mapping).
//! `cargo bench --bench ks -- --window` runs only the sliding-window rows (also printed last
//! by the full run).

use driftgauge::detect::ks::{ks_2samp, ks_2samp_sorted, Alternative, KsResult, Method};
use driftgauge::detect::kstwo;
use driftgauge::detect::sort::sort_samples;
use std::hint::black_box;
use std::time::{Duration, Instant};

/// 64-bit LCG (Knuth's MMIX constants); normal values by Box–Muller.
struct Lcg(u64);

impl Lcg {
    fn uniform(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    fn sample(&mut self, len: usize, shift: f64) -> Vec<f64> {
        (0..len)
            .map(|_| {
                let (u, v) = (self.uniform(), self.uniform());
                (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos() + shift
            })
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
        "| {what:<24} | {n:>8} | {m:>8} | {:<6} | {:<6} | {runs:>4} | {:>10} | {:.5} | {:.3e} |",
        method.as_str(),
        r.method.as_str(),
        fmt(d),
        r.statistic,
        r.p_value
    );
}

fn plain_row(what: &str, n: usize, m: usize, runs: usize, d: Duration) {
    println!(
        "| {what:<24} | {n:>8} | {m:>8} |        |        | {runs:>4} | {:>10} |         |           |",
        fmt(d)
    );
}

fn main() {
    if std::env::args().any(|a| a == "--window") {
        sliding_window(&mut Lcg(7));
        return;
    }
    if std::env::args().any(|a| a == "--kstwo-grid") {
        kstwo_grid();
        return;
    }
    if std::env::args().any(|a| a == "--kstwo-cost") {
        kstwo_cost();
        return;
    }
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--npy") {
        match (args.get(i + 1), args.get(i + 2)) {
            (Some(a), Some(b)) => npy_in_process(a, b),
            _ => eprintln!("usage: cargo bench --bench ks -- --npy REFERENCE.npy CURRENT.npy"),
        }
        return;
    }
    println!("| what                     |        n |        m | method | used   | runs |     median | D       | p         |");
    println!("|--------------------------|---------:|---------:|--------|--------|-----:|-----------:|---------|-----------|");
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
            row("ks_2samp (unsorted)", size, size, method, runs, d, &r);
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
            "| {:<24} | {size:>8} | {size:>8} | asymp  | asymp  | {runs:>4} | {:>10} | {:.5} | {p:.3e} |",
            "  of which kstwo::sf",
            fmt(d),
            r.statistic
        );
        if size >= 100_000 {
            let ref_runs = if size >= 1_000_000 { 3 } else { 5 };
            let (d, p) = median_time(ref_runs, || {
                kstwo::sf_reference(black_box(r.statistic), black_box(en))
            });
            println!(
                "| {:<24} | {size:>8} | {size:>8} | asymp  | asymp  | {ref_runs:>4} | {:>10} | {:.5} | {p:.3e} |",
                "  kstwo::sf_reference",
                fmt(d),
                r.statistic
            );
        }
        // Sorting one sample: the radix sort against the standard library's.
        let (d, _) = median_time(runs, || {
            let mut v = reference.clone();
            sort_samples(&mut v);
            v
        });
        plain_row("sort_samples (copy+sort)", size, 0, runs, d);
        let (d, _) = median_time(runs, || {
            let mut v = reference.clone();
            v.sort_unstable_by(f64::total_cmp);
            v
        });
        plain_row("std sort_unstable_by", size, 0, runs, d);
    }

    // kstwo::sf where SciPy uses Durbin's matrix (n <= 1e5, n x^1.5 <= 1.4: D far below its
    // typical size, p close to 1): unchanged, a matrix power of order 2*ceil(n x) - 1.
    for (n, x) in [(5_000.0, 0.004), (100_000.0, 0.00055)] {
        let (d, p) = median_time(5, || kstwo::sf(black_box(x), black_box(n)));
        println!(
            "| {:<24} | {:>8} | {:>8} | asymp  | asymp  | {:>4} | {:>10} | {x:.5} | {p:.3e} |",
            "kstwo::sf (Durbin)",
            n as u64,
            "",
            5,
            fmt(d)
        );
    }

    // Exact p-values at the auto boundary: coprime sizes, so lcm ~ 1e8 and the lattice walk is
    // the inside method (two-sided) or the path count (one-sided, which overflows and falls
    // back to asymp as in SciPy).
    let reference = rng.sample(9999, 0.0);
    let current = rng.sample(9998, 0.05);
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

    sliding_window(&mut rng);
}

/// Issue 4, target 3: a frozen 100k reference and a sliding 10k current window, 1k new values
/// per evaluation. Per evaluation: taking the 1k values in, bringing the sorted current window
/// up to date (`view`), and the whole evaluation (`view` + `ks_2samp_sorted`); beside it, what
/// re-sorting a copy of the window costs (the way it was done before).
fn sliding_window(rng: &mut Lcg) {
    use driftgauge::config::model::{CurrentWindow, ReferenceWindow};
    use driftgauge::window::SampleWindows;
    const REFERENCE: usize = 100_000;
    const CURRENT: usize = 10_000;
    const NEW: usize = 1_000;
    const ROUNDS: usize = 201;
    let mut w = SampleWindows::new(
        &ReferenceWindow::First(REFERENCE),
        &CurrentWindow::Last(CURRENT),
        1_000_000,
    );
    w.extend(&rng.sample(REFERENCE + CURRENT, 0.0), 0);
    let _ = w.view(0);
    let batches: Vec<Vec<f64>> = (0..ROUNDS).map(|_| rng.sample(NEW, 0.02)).collect();
    let (mut take, mut sync, mut whole, mut resort) = (vec![], vec![], vec![], vec![]);
    let mut last = None;
    for (i, batch) in batches.iter().enumerate() {
        let now = i as i64;
        let t = Instant::now();
        w.extend(black_box(batch), now);
        take.push(t.elapsed());
        let t = Instant::now();
        let view = w.view(now);
        sync.push(t.elapsed());
        let r = ks_2samp_sorted(
            &view.reference,
            &view.current,
            Alternative::TwoSided,
            Method::Auto,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        whole.push(t.elapsed());
        let t = Instant::now();
        let mut copy = black_box(view.current.to_vec());
        sort_samples(&mut copy);
        resort.push(t.elapsed());
        assert_eq!(copy, *view.current, "the kept window is the sorted window");
        last = Some(r);
    }
    let med = |mut v: Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    println!();
    println!("Sliding window: first: {REFERENCE} reference, last: {CURRENT} current, {NEW} new values per evaluation, {ROUNDS} evaluations (medians)");
    println!();
    println!("| step | median |");
    println!("|---|---:|");
    println!("| take in {NEW} values (`extend`) | {} |", fmt(med(take)));
    println!(
        "| bring the sorted window up to date (`view`) | {} |",
        fmt(med(sync))
    );
    println!(
        "| whole evaluation (`view` + `ks_2samp_sorted`) | {} |",
        fmt(med(whole))
    );
    println!(
        "| for comparison: copy and re-sort the {CURRENT} window | {} |",
        fmt(med(resort))
    );
    if let Some(r) = last {
        println!();
        println!(
            "last evaluation: D={:.5} p={:.3e} ({})",
            r.statistic,
            r.p_value,
            r.method.as_str()
        );
    }
}

/// `ks_2samp` on two memory-mapped `.npy` files, nine times in one process: the KS work of
/// `driftgauge eval` without the process around it.
fn npy_in_process(a: &str, b: &str) {
    use driftgauge::config::files::read_npy_file;
    let read =
        |p: &str| read_npy_file(std::path::Path::new(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
    let (a, b) = (read(a), read(b));
    let (d, r) = median_time(9, || {
        ks_2samp(
            black_box(&a),
            black_box(&b),
            Alternative::TwoSided,
            Method::Auto,
        )
        .unwrap_or_else(|e| panic!("{e}"))
    });
    println!(
        "ks_2samp on the mapped files ({} vs {}): median of 9 {}; D={} p={:e}",
        a.len(),
        b.len(),
        fmt(d),
        r.statistic,
        r.p_value
    );
}

/// The cost of one `kstwo::sf(x, n)` across the body of the distribution (`sqrt(n) x` from
/// 0.2 to 4), by branch: where a histogram rule's p-values spend their time.
fn kstwo_cost() {
    println!("| n | sqrt(n) x | sf | time per call |");
    println!("|---:|---:|---:|---:|");
    for n in [300.0f64, 1000.0, 3000.0, 10000.0] {
        for t in [0.2, 0.3, 0.4, 0.5, 0.7, 1.0, 1.4, 1.5, 2.0, 3.0, 4.0] {
            let x = t / n.sqrt();
            let reps = 200;
            let (d, p) = median_time(5, || {
                let mut s = 0.0;
                for i in 0..reps {
                    s += kstwo::sf(black_box(x * (1.0 + i as f64 * 1e-6)), black_box(n));
                }
                s / reps as f64
            });
            println!(
                "| {n} | {t} | {p:.6e} | {:.2} us |",
                d.as_secs_f64() * 1e6 / reps as f64
            );
        }
    }
}

/// `kstwo::sf` against `kstwo::sf_reference` on a dense grid: for each n, 80 x from where
/// `smirnov`'s series takes over (`n x^2 = 2.2`) to where the result underflows
/// (`n x^2 = 370`), geometrically spaced with a little jitter, plus 40 x across the rest of
/// (0, 1) where nothing changed. Relative differences are reported for results of at least
/// 1e-300 (below that the doubles are subnormal or nearly, and only the absolute difference
/// means anything); every point must meet DESIGN's p-value contract (1e-9 relative or 1e-12
/// absolute). `KSTWO_GRID_N=1000,5000` picks the n.
fn kstwo_grid() {
    let ns: Vec<i64> = std::env::var("KSTWO_GRID_N")
        .ok()
        .map(|v| v.split(',').filter_map(|s| s.trim().parse().ok()).collect())
        .unwrap_or_else(|| {
            vec![
                2, 3, 10, 50, 140, 141, 300, 999, 1_000, 1_001, 1_500, 2_000, 3_333, 5_000, 7_919,
                10_000, 20_000, 50_000, 99_991, 100_000, 200_000, 500_000, 777_777, 1_000_000,
            ]
        });
    println!(
        "| n | points | not bit-identical | max rel diff (p >= 1e-300) | max abs diff | fast per point | reference per point |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    let (mut worst_rel, mut worst_abs, mut total, mut broken) = (0.0f64, 0.0f64, 0, 0);
    for &n in &ns {
        let nf = n as f64;
        let (lo, hi) = ((2.2 / nf).sqrt(), (370.0 / nf).sqrt().min(0.999));
        let mut xs: Vec<f64> = (0..80)
            .map(|k| lo * (hi / lo).powf(k as f64 / 79.0) * (1.0 + 1e-7 * (k % 7) as f64))
            .collect();
        xs.extend((1..=40).map(|k| k as f64 / 41.0));
        // Below the series: Durbin's matrix and Pelz-Good (and Pomeranz for n <= 140).
        let floor = 0.6 / nf;
        xs.extend((0..40).map(|k| floor * (lo / floor).powf(k as f64 / 40.0)));
        let (mut t_fast, mut t_ref) = (Duration::ZERO, Duration::ZERO);
        let (mut max_rel, mut max_abs, mut used) = (0.0f64, 0.0f64, 0);
        for &x in &xs {
            let t = Instant::now();
            let got = black_box(kstwo::sf(x, nf));
            t_fast += t.elapsed();
            let t = Instant::now();
            let want = black_box(kstwo::sf_reference(x, nf));
            t_ref += t.elapsed();
            if got.to_bits() == want.to_bits() {
                continue;
            }
            used += 1;
            let abs = (got - want).abs();
            let rel = abs / want.abs();
            if !(abs <= 1e-12 || rel <= 1e-9) {
                broken += 1;
                println!("  n={n} x={x:e}: {got:e} vs {want:e}");
            }
            max_abs = max_abs.max(abs);
            if want.abs() >= 1e-300 {
                max_rel = max_rel.max(rel);
            }
        }
        let k = xs.len() as u32;
        println!(
            "| {n} | {k} | {used} | {max_rel:.2e} | {max_abs:.2e} | {} | {} |",
            fmt(t_fast / k),
            fmt(t_ref / k)
        );
        worst_rel = worst_rel.max(max_rel);
        worst_abs = worst_abs.max(max_abs);
        total += xs.len();
    }
    println!();
    println!(
        "{total} points: largest relative difference {worst_rel:.2e} (p >= 1e-300), largest \
         absolute {worst_abs:.2e}; {broken} outside the contract (1e-9 rel or 1e-12 abs)"
    );
    if broken > 0 {
        std::process::exit(1);
    }
}
