//! Property tests over seeded random cases (splitmix64, no proptest): KS invariants, EMA bounds,
//! and the push parser on random JSON-ish bytes. A failure names its seed; rerun that one case
//! with `DRIFTGAUGE_PROPERTY_SEED=<seed> cargo test --test it properties::<test>`.

use std::panic::{catch_unwind, AssertUnwindSafe};

use driftgauge::detect::ema;
use driftgauge::detect::ks::{ks_2samp, Alternative, KsResult, Method, MethodUsed};
use driftgauge::formats::push;
use driftgauge::labels::{is_valid_label_name, is_valid_metric_name, RejectReason};
use driftgauge::labels::{MAX_LABELS, MAX_LABEL_VALUE_BYTES, MAX_NAME_BYTES};
use driftgauge::window::EmaState;

/// splitmix64: tiny, deterministic, good enough to spread cases.
struct Gen(u64);

impl Gen {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next_u64() % (hi - lo + 1) as u64) as usize
    }
    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.range(0, xs.len() - 1)]
    }
    /// Approximately normal (sum of 12 uniforms).
    fn normal(&mut self, mean: f64, sd: f64) -> f64 {
        let s: f64 = (0..12).map(|_| self.unit()).sum();
        mean + sd * (s - 6.0)
    }
}

/// Runs `count` cases of a property, each from its own seed; a failure (an `Err` or a panic)
/// names the seed. `DRIFTGAUGE_PROPERTY_SEED` runs that one seed instead.
fn check(name: &str, count: u64, property: impl Fn(&mut Gen) -> Result<(), String>) {
    let base = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let seeds: Vec<u64> = match std::env::var("DRIFTGAUGE_PROPERTY_SEED") {
        Ok(s) => {
            let s = s.trim();
            let parsed = match s.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => s.parse(),
            };
            vec![parsed.expect("DRIFTGAUGE_PROPERTY_SEED: a u64, decimal or 0x-hex")]
        }
        Err(_) => (0..count).map(|i| base.wrapping_add(i)).collect(),
    };
    for seed in seeds {
        let outcome = catch_unwind(AssertUnwindSafe(|| property(&mut Gen(seed))));
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(msg)) => panic!("property {name:?} fails for seed {seed:#x}: {msg}"),
            Err(p) => {
                let msg = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                panic!("property {name:?} panics for seed {seed:#x}: {msg}");
            }
        }
    }
}

macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(format!($($fmt)+));
        }
    };
}

// ---------------------------------------------------------------------------------------------
// KS

/// A sample size in 1..=300, small sizes more often (they hold the edge cases and are cheap).
fn size(g: &mut Gen) -> usize {
    match g.range(0, 9) {
        0..=4 => g.range(1, 12),
        5..=7 => g.range(13, 80),
        _ => g.range(81, 300),
    }
}

/// Values of one of several shapes: continuous, heavily tied (rounded), on a half grid around
/// zero with `-0.0` and `0.0` mixed, constant, or drawn from a small shared pool.
fn sample(g: &mut Gen, n: usize, shape: u64, shift: f64) -> Vec<f64> {
    let pool = [-2.5, -1.0, -0.0, 0.0, 0.5, 1.0, 3.0];
    (0..n)
        .map(|_| match shape {
            0 => g.normal(shift, 1.0),
            1 => g.normal(shift, 3.0).round(),
            2 => {
                let x = (g.normal(shift, 1.0) * 2.0).round() / 2.0;
                if x == 0.0 && g.chance(0.5) {
                    -0.0
                } else {
                    x
                }
            }
            3 => 7.25,
            _ => *g.pick(&pool),
        })
        .collect()
}

fn sample_pair(g: &mut Gen) -> (Vec<f64>, Vec<f64>) {
    let shape = g.next_u64() % 5;
    let (n, m) = (size(g), size(g));
    let shift = if g.chance(0.5) {
        0.0
    } else {
        g.normal(0.0, 1.0)
    };
    (sample(g, n, shape, 0.0), sample(g, m, shape, shift))
}

const METHODS: [Method; 3] = [Method::Auto, Method::Exact, Method::Asymp];

fn ks(a: &[f64], b: &[f64], alt: Alternative, method: Method) -> Result<KsResult, String> {
    ks_2samp(a, b, alt, method).map_err(|e| format!("{alt:?}/{method:?} refused: {e}"))
}

/// SciPy gives NaN in one place only: asymptotic two-sided with n = m = 1 (`kstwo.sf(D, 0)`).
fn nan_allowed(n: usize, m: usize, alt: Alternative, r: &KsResult) -> bool {
    n == 1 && m == 1 && alt == Alternative::TwoSided && r.method == MethodUsed::Asymp
}

fn in_range(n: usize, m: usize, alt: Alternative, r: &KsResult) -> Result<(), String> {
    ensure!(
        (0.0..=1.0).contains(&r.statistic),
        "{alt:?}: D = {} outside [0, 1] (n={n}, m={m})",
        r.statistic
    );
    ensure!(
        (0.0..=1.0).contains(&r.p_value) || (r.p_value.is_nan() && nan_allowed(n, m, alt, r)),
        "{alt:?}: p = {} outside [0, 1] (n={n}, m={m}, {:?})",
        r.p_value,
        r.method
    );
    Ok(())
}

fn same_p(x: f64, y: f64) -> bool {
    (x.is_nan() && y.is_nan()) || (x - y).abs() <= 1e-9
}

fn describe(a: &[f64], b: &[f64]) -> String {
    let short = |v: &[f64]| {
        if v.len() <= 8 {
            format!("{v:?}")
        } else {
            format!("{:?}.. ({} values)", &v[..8], v.len())
        }
    };
    format!("a = {}, b = {}", short(a), short(b))
}

#[test]
fn ks_statistic_and_p_value_are_in_range_and_symmetric() {
    check("ks symmetry", 500, |g| {
        let (a, b) = sample_pair(g);
        let (n, m) = (a.len(), b.len());
        for method in METHODS {
            let ctx = || format!("{method:?}, {}", describe(&a, &b));
            let two = ks(&a, &b, Alternative::TwoSided, method)?;
            let two_swapped = ks(&b, &a, Alternative::TwoSided, method)?;
            let less = ks(&a, &b, Alternative::Less, method)?;
            let greater_swapped = ks(&b, &a, Alternative::Greater, method)?;
            let greater = ks(&a, &b, Alternative::Greater, method)?;
            in_range(n, m, Alternative::TwoSided, &two).map_err(|e| format!("{e}; {}", ctx()))?;
            in_range(n, m, Alternative::Less, &less).map_err(|e| format!("{e}; {}", ctx()))?;
            in_range(n, m, Alternative::Greater, &greater)
                .map_err(|e| format!("{e}; {}", ctx()))?;
            ensure!(
                two.statistic == two_swapped.statistic && same_p(two.p_value, two_swapped.p_value),
                "two-sided not symmetric: {two:?} vs swapped {two_swapped:?}; {}",
                ctx()
            );
            ensure!(
                less.statistic == greater_swapped.statistic,
                "less(a, b) D = {} but greater(b, a) D = {}; {}",
                less.statistic,
                greater_swapped.statistic,
                ctx()
            );
            ensure!(
                same_p(less.p_value, greater_swapped.p_value),
                "less(a, b) p = {} but greater(b, a) p = {}; {}",
                less.p_value,
                greater_swapped.p_value,
                ctx()
            );
            ensure!(
                two.statistic == less.statistic.max(greater.statistic),
                "two-sided D = {} is not max(less {}, greater {}); {}",
                two.statistic,
                less.statistic,
                greater.statistic,
                ctx()
            );
        }
        Ok(())
    });
}

#[test]
fn ks_of_identical_samples_is_zero_with_p_one() {
    check("ks identical", 400, |g| {
        let (a, _) = sample_pair(g);
        // The same values in another order, with zeros' signs flipped: still identical samples.
        let mut b: Vec<f64> = a.iter().map(|&x| if x == 0.0 { -x } else { x }).collect();
        for i in (1..b.len()).rev() {
            b.swap(i, g.range(0, i));
        }
        for method in METHODS {
            for alt in [
                Alternative::TwoSided,
                Alternative::Less,
                Alternative::Greater,
            ] {
                let r = ks(&a, &b, alt, method)?;
                ensure!(
                    r.statistic == 0.0,
                    "{alt:?}/{method:?}: D = {} for identical samples ({})",
                    r.statistic,
                    describe(&a, &b)
                );
                ensure!(
                    r.p_value == 1.0
                        || (r.p_value.is_nan() && nan_allowed(a.len(), a.len(), alt, &r)),
                    "{alt:?}/{method:?}: p = {} for identical samples ({}, {:?})",
                    r.p_value,
                    describe(&a, &b),
                    r.method
                );
            }
        }
        Ok(())
    });
}

#[test]
fn ks_is_unchanged_by_a_common_shift_and_scale() {
    check("ks affine", 400, |g| {
        let (a, b) = sample_pair(g);
        let scale = *g.pick(&[1.0, 0.5, 2.0, 3.7, 1e3, 1e-3]);
        let shift = *g.pick(&[0.0, 1.0, -7.25, 100.0, 1e4]);
        let t = |x: f64| x * scale + shift;
        // Only where the map keeps the order strict: rounding may merge two distinct values.
        let mut all: Vec<f64> = a.iter().chain(&b).copied().collect();
        all.sort_by(f64::total_cmp);
        if all.windows(2).any(|w| w[0] < w[1] && t(w[0]) >= t(w[1])) {
            return Ok(());
        }
        let (ta, tb): (Vec<f64>, Vec<f64>) = (
            a.iter().map(|&x| t(x)).collect(),
            b.iter().map(|&x| t(x)).collect(),
        );
        for method in METHODS {
            for alt in [
                Alternative::TwoSided,
                Alternative::Less,
                Alternative::Greater,
            ] {
                let r = ks(&a, &b, alt, method)?;
                let s = ks(&ta, &tb, alt, method)?;
                ensure!(
                    (r.statistic - s.statistic).abs() <= 1e-12 && same_p(r.p_value, s.p_value),
                    "{alt:?}/{method:?}: {r:?} becomes {s:?} under x*{scale}+{shift} ({})",
                    describe(&a, &b)
                );
                ensure!(
                    r.sign == s.sign && t(r.location) == s.location,
                    "{alt:?}/{method:?}: location {} sign {} becomes {} sign {} under x*{scale}+{shift}",
                    r.location,
                    r.sign,
                    s.location,
                    s.sign
                );
            }
        }
        Ok(())
    });
}

// ---------------------------------------------------------------------------------------------
// EMA

#[test]
fn ema_stays_within_the_inputs_seen() {
    check("ema bounds", 1000, |g| {
        let n = g.range(1, 200);
        let scale = *g.pick(&[1.0, 1e-3, 1e6, 1e300]);
        // A constant stream (an accuracy sitting on its bound) or a mix of shapes.
        let constant = g
            .chance(0.2)
            .then(|| *g.pick(&[0.1, 0.3, 0.7, 3.3, -2.9, 1e-300]));
        let values: Vec<f64> = (0..n)
            .map(|_| match constant.map_or(g.next_u64() % 4, |_| 4) {
                0 => g.normal(0.0, 1.0) * scale,
                1 => (g.unit() * 10.0).round() / 10.0,
                2 => *g.pick(&[0.0, -0.0, 1.0, 0.3, 0.7]),
                3 => g.unit() * scale,
                _ => constant.unwrap_or_default(),
            })
            .collect();
        let smoothing = match g.next_u64() % 4 {
            0 => 1.0,
            1 => *g.pick(&[0.1, 0.2, 0.3, 0.5, 0.9]),
            2 => g.unit().max(1e-9),
            _ => 1e-6,
        };
        let series = ema::series(&values, smoothing);
        let mut state = EmaState::default();
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for (i, (&x, &e)) in values.iter().zip(&series).enumerate() {
            lo = lo.min(x);
            hi = hi.max(x);
            // `s*x + (1-s)*prev` in IEEE doubles (the reference vectors' formula, bit for bit)
            // may round a few ulps past the inputs: 0.1 constant at s = 0.3 gives
            // 0.09999999999999999. Within that rounding, never further.
            let slack = 4.0 * f64::EPSILON * lo.abs().max(hi.abs());
            ensure!(
                lo - slack <= e && e <= hi + slack,
                "ema[{i}] = {e:e} outside [{lo:e}, {hi:e}] (smoothing {smoothing}, inputs {:?})",
                &values[..=i]
            );
            state.push(x, smoothing);
            ensure!(
                state.value.map(f64::to_bits) == Some(e.to_bits()),
                "EmaState {:?} differs from ema::series {e} at {i}",
                state.value
            );
        }
        ensure!(
            state.samples == n as u64,
            "samples {} for {n} pushes",
            state.samples
        );
        Ok(())
    });
}

// ---------------------------------------------------------------------------------------------
// Push parser

fn json_string(g: &mut Gen, out: &mut String) {
    let pieces = [
        "feature_value",
        "model",
        "fraud",
        "__name__",
        "__x",
        "9bad",
        "a-b",
        "é",
        "ns:metric",
        "_",
        "",
        "\\\"",
        "\\u0000",
        "\\ud800",
        "\\n",
        " ",
        "{",
        "NaN",
        "Infinity",
    ];
    out.push('"');
    for _ in 0..g.range(0, 3) {
        out.push_str(g.pick::<&str>(&pieces));
    }
    if g.chance(0.02) {
        // Over the name and label-value limits.
        let long = g.pick(&[MAX_NAME_BYTES + 1, MAX_LABEL_VALUE_BYTES + 1]);
        out.push_str(&"a".repeat(*long));
    }
    out.push('"');
}

fn json_number(g: &mut Gen, out: &mut String) {
    let tokens = [
        "0",
        "-0",
        "1",
        "-1.5",
        "2.5e3",
        "1e308",
        "1e309",
        "-1e400",
        "1e-400",
        "0.1",
        "18446744073709551616",
        "-9223372036854775809",
        "NaN",
        "Infinity",
        "-inf",
        "01",
        "1.",
        ".5",
        "+1",
        "\"1\"",
        "null",
        "true",
        "[]",
        "{}",
    ];
    if g.chance(0.5) {
        out.push_str(g.pick::<&str>(&tokens));
    } else {
        out.push_str(&format!("{}", g.normal(0.0, 100.0)));
    }
}

fn json_entry(g: &mut Gen, out: &mut String) {
    out.push('{');
    let mut fields: Vec<&str> = vec!["metric", "labels", "value", "values", "extra"];
    for i in (1..fields.len()).rev() {
        fields.swap(i, g.range(0, i));
    }
    let mut first = true;
    for field in fields {
        let include = match field {
            "metric" => g.chance(0.9),
            "labels" => g.chance(0.6),
            "value" | "values" => g.chance(0.55),
            _ => g.chance(0.03),
        };
        if !include {
            continue;
        }
        if !first {
            out.push(',');
        }
        first = false;
        out.push('"');
        out.push_str(field);
        out.push_str("\":");
        match field {
            "metric" => {
                if g.chance(0.9) {
                    json_string(g, out);
                } else {
                    json_number(g, out);
                }
            }
            "labels" => {
                if g.chance(0.05) {
                    out.push_str("null");
                    continue;
                }
                out.push('{');
                let count = if g.chance(0.02) {
                    MAX_LABELS + 1
                } else {
                    g.range(0, 4)
                };
                for i in 0..count {
                    if i > 0 {
                        out.push(',');
                    }
                    if count > 4 {
                        out.push_str(&format!("\"l{i}\""));
                    } else {
                        json_string(g, out);
                    }
                    out.push(':');
                    if g.chance(0.9) {
                        json_string(g, out);
                    } else {
                        json_number(g, out);
                    }
                }
                out.push('}');
            }
            "value" => json_number(g, out),
            "values" => {
                out.push('[');
                for i in 0..g.range(0, 5) {
                    if i > 0 {
                        out.push(',');
                    }
                    json_number(g, out);
                }
                out.push(']');
            }
            _ => out.push('1'),
        }
    }
    out.push('}');
}

/// A body from a JSON-ish grammar, then perhaps damaged: bytes flipped, cut, or spliced.
fn push_body(g: &mut Gen) -> Vec<u8> {
    if g.chance(0.05) {
        return (0..g.range(0, 64)).map(|_| g.next_u64() as u8).collect();
    }
    let mut s = String::new();
    match g.next_u64() % 20 {
        0 => s.push_str("[]"),
        1 => s.push_str("{\"samples\":{}}"),
        2 => s.push_str("{\"samples\":null}"),
        _ => {
            s.push_str("{\"samples\":[");
            for i in 0..g.range(0, 4) {
                if i > 0 {
                    s.push(',');
                }
                json_entry(g, &mut s);
            }
            s.push(']');
            if g.chance(0.05) {
                s.push_str(",\"other\":1");
            }
            s.push('}');
        }
    }
    let mut bytes = s.into_bytes();
    if g.chance(0.3) {
        for _ in 0..g.range(1, 3) {
            if bytes.is_empty() {
                break;
            }
            let at = g.range(0, bytes.len() - 1);
            match g.next_u64() % 3 {
                0 => bytes[at] = g.next_u64() as u8,
                1 => bytes.truncate(at),
                _ => {
                    let splice = *g.pick(&[&b"\xff"[..], b"\"", b"]", b"}", b",", b"\\", b"\x00"]);
                    bytes.splice(at..at, splice.iter().copied());
                }
            }
        }
    }
    bytes
}

#[test]
fn push_parser_never_panics_and_accepts_only_valid_batches() {
    let accepted = std::cell::Cell::new(0usize);
    check("push parse", 20000, |g| {
        let body = push_body(g);
        let shown = || String::from_utf8_lossy(&body).into_owned();
        let batch = match push::parse(&body) {
            Ok(batch) => batch,
            Err(e) => {
                ensure!(
                    matches!(
                        e.reason(),
                        RejectReason::BadBody
                            | RejectReason::BadName
                            | RejectReason::TooLarge
                            | RejectReason::BadValue
                    ),
                    "unexpected reason {:?} for {}",
                    e.reason(),
                    shown()
                );
                return Ok(());
            }
        };
        accepted.set(accepted.get() + 1);
        for s in &batch {
            ensure!(
                is_valid_metric_name(&s.metric) && s.metric.len() <= MAX_NAME_BYTES,
                "accepted metric name {:?} in {}",
                s.metric,
                shown()
            );
            ensure!(
                s.labels.len() <= MAX_LABELS,
                "{} labels in {}",
                s.labels.len(),
                shown()
            );
            for (k, v) in &s.labels {
                ensure!(
                    is_valid_label_name(k) && !k.starts_with("__") && k.len() <= MAX_NAME_BYTES,
                    "accepted label name {k:?} in {}",
                    shown()
                );
                ensure!(
                    !v.is_empty() && v.len() <= MAX_LABEL_VALUE_BYTES,
                    "accepted label value {v:?} in {}",
                    shown()
                );
            }
            ensure!(
                !s.values.is_empty() && s.values.iter().all(|v| v.is_finite()),
                "accepted values {:?} in {}",
                s.values,
                shown()
            );
        }
        Ok(())
    });
    // The generator must reach the accepting path often enough to test it.
    if std::env::var_os("DRIFTGAUGE_PROPERTY_SEED").is_none() {
        assert!(
            accepted.get() >= 100,
            "only {} bodies accepted",
            accepted.get()
        );
    }
}

/// A reference in time thinned past its bound (every other value dropped, then one arrival in
/// 2, 4, ... kept, by arrival order) is still a sample of the period: KS against a fresh
/// sample of the same distribution rejects at 5 % about 5 % of the time, with the thinning
/// at work in every trial. 2,000 seeded trials; the band is about 4.5 binomial standard
/// errors each side of 100.
#[test]
fn a_thinned_offset_reference_keeps_the_test_calibrated() {
    use driftgauge::window::{CurrentWindow, ReferenceWindow, SampleWindows};
    use std::time::Duration;
    let mut g = Gen(20_261_202);
    let reference = ReferenceWindow::Offset {
        offset: Duration::from_secs(3600),
        duration: Duration::from_secs(3600),
    };
    let current = CurrentWindow::Last(200);
    let (trials, mut rejected) = (2000, 0);
    for _ in 0..trials {
        // 300 values kept at most, 2,400 arriving over two hours: thinned to one in 16, so
        // the reference hour holds about 140. Values skewed (u^3), so nothing relies on symmetry.
        let mut w = SampleWindows::new(&reference, &current, 300);
        for i in 0..2400i64 {
            let u = g.unit();
            w.push(u * u * u, i * 1500);
        }
        for i in 0..200i64 {
            let u = g.unit();
            w.push(u * u * u, 7_200_000 + i * 1000);
        }
        let view = w.view(7_200_000 + 200_000);
        assert!(
            (100..=300).contains(&view.reference.len()),
            "{}",
            view.reference.len()
        );
        let r = ks_2samp(
            &view.reference,
            &view.current,
            Alternative::TwoSided,
            Method::Auto,
        )
        .expect("test");
        if r.p_value <= 0.05 {
            rejected += 1;
        }
    }
    assert!(
        (55..=145).contains(&rejected),
        "{rejected} of {trials} rejected at 5 %"
    );
}
