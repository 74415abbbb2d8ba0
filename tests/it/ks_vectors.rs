//! KS against SciPy: every case of `tests/data/reference/ks_public.json` (scipy.stats.ks_2samp,
//! SciPy 1.17.1), plus properties (symmetry, ranges) and the error cases.

use driftgauge::detect::ks::{
    ks_2samp, ks_2samp_sorted, Alternative, KsError, KsResult, Method, MethodUsed,
};
use serde::Deserialize;

const KS_PUBLIC: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/reference/ks_public.json"
);

const STAT_ABS_TOL: f64 = 1e-12;
const P_REL_TOL: f64 = 1e-9;
const P_ABS_TOL: f64 = 1e-12;

#[derive(Deserialize)]
struct VectorFile {
    family: String,
    case_count: usize,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    reference: Vec<f64>,
    test: Vec<f64>,
    alternative: String,
    method: String,
    statistic: f64,
    pvalue: f64,
    statistic_location: f64,
    statistic_sign: i8,
    method_used: String,
}

fn load() -> VectorFile {
    let text = std::fs::read_to_string(KS_PUBLIC)
        .unwrap_or_else(|e| panic!("cannot read {KS_PUBLIC}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("cannot parse {KS_PUBLIC}: {e}"))
}

fn p_close(got: f64, want: f64) -> bool {
    if got.is_nan() || want.is_nan() {
        return got.is_nan() && want.is_nan();
    }
    let diff = (got - want).abs();
    diff <= P_ABS_TOL || diff <= P_REL_TOL * want.abs()
}

fn rel_err(got: f64, want: f64) -> f64 {
    if got == want {
        0.0
    } else {
        (got - want).abs() / want.abs()
    }
}

/// Every difference between `got` and the case's expectations, empty when it matches.
fn compare(case: &Case, got: &KsResult) -> Vec<String> {
    let mut diffs = Vec::new();
    // Written so that a NaN statistic counts as a mismatch.
    let statistic_ok = (got.statistic - case.statistic).abs() <= STAT_ABS_TOL;
    if !statistic_ok {
        diffs.push(format!(
            "statistic {:e} != {:e} (abs diff {:e})",
            got.statistic,
            case.statistic,
            (got.statistic - case.statistic).abs()
        ));
    }
    if !p_close(got.p_value, case.pvalue) {
        diffs.push(format!(
            "pvalue {:e} != {:e} (rel err {:e})",
            got.p_value,
            case.pvalue,
            rel_err(got.p_value, case.pvalue)
        ));
    }
    if got.location != case.statistic_location {
        diffs.push(format!(
            "statistic_location {:e} != {:e}",
            got.location, case.statistic_location
        ));
    }
    if got.sign != case.statistic_sign {
        diffs.push(format!(
            "statistic_sign {} != {}",
            got.sign, case.statistic_sign
        ));
    }
    if got.method.as_str() != case.method_used {
        diffs.push(format!(
            "method_used {} != {}",
            got.method.as_str(),
            case.method_used
        ));
    }
    diffs
}

#[test]
fn ks_public_vectors_match_scipy() {
    let file = load();
    assert_eq!(file.family, "ks");
    assert_eq!(file.cases.len(), file.case_count);
    assert_eq!(file.cases.len(), 73, "ks_public.json should hold 73 cases");

    let mut failures = Vec::new();
    let mut worst_p = (0.0f64, String::new());
    for case in &file.cases {
        let (Some(alt), Some(method)) = (
            Alternative::parse(&case.alternative),
            Method::parse(&case.method),
        ) else {
            failures.push(format!(
                "{}: unknown alternative/method {:?}/{:?}",
                case.name, case.alternative, case.method
            ));
            continue;
        };
        let got = match ks_2samp(&case.reference, &case.test, alt, method) {
            Ok(r) => r,
            Err(e) => {
                failures.push(format!("{}: error {e}", case.name));
                continue;
            }
        };
        let err = rel_err(got.p_value, case.pvalue);
        if err > worst_p.0 {
            worst_p = (err, case.name.clone());
        }
        let diffs = compare(case, &got);
        if !diffs.is_empty() {
            failures.push(format!("{}: {}", case.name, diffs.join("; ")));
        }

        // The sorted entry point must agree with the sorting one, bit for bit.
        let mut a = case.reference.clone();
        let mut b = case.test.clone();
        a.sort_unstable_by(f64::total_cmp);
        b.sort_unstable_by(f64::total_cmp);
        match ks_2samp_sorted(&a, &b, alt, method) {
            Ok(r) if r == got || (r.p_value.is_nan() && got.p_value.is_nan()) => {}
            other => failures.push(format!(
                "{}: ks_2samp_sorted gave {other:?}, ks_2samp gave {got:?}",
                case.name
            )),
        }
    }
    eprintln!(
        "ks_public: {} cases, worst p-value relative error {:e} ({})",
        file.cases.len(),
        worst_p.0,
        worst_p.1
    );
    assert!(
        failures.is_empty(),
        "{} of {} ks_public cases differ from SciPy:\n  {}",
        failures.len(),
        file.cases.len(),
        failures.join("\n  ")
    );
}

/// A small deterministic generator (64-bit LCG, Knuth's MMIX constants).
struct Lcg(u64);

impl Lcg {
    fn next_u64(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0
    }

    /// Uniform in [0, 1).
    fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Roughly normal: sum of 4 uniforms, centred.
    fn normalish(&mut self) -> f64 {
        (0..4).map(|_| self.uniform()).sum::<f64>() - 2.0
    }
}

fn sample(rng: &mut Lcg, len: usize, shift: f64, round_to: Option<f64>) -> Vec<f64> {
    (0..len)
        .map(|_| {
            let x = rng.normalish() + shift;
            match round_to {
                Some(q) => (x / q).round() * q,
                None => x,
            }
        })
        .collect()
}

fn ok(r: Result<KsResult, KsError>) -> KsResult {
    r.unwrap_or_else(|e| panic!("unexpected error: {e}"))
}

#[test]
fn ks_two_sided_is_symmetric_in_the_samples() {
    let mut rng = Lcg(0x5eed);
    for round in 0..60 {
        let n = 1 + (rng.next_u64() % 40) as usize;
        let m = 1 + (rng.next_u64() % 40) as usize;
        let ties = if round % 3 == 0 { Some(0.5) } else { None };
        let a = sample(&mut rng, n, 0.0, ties);
        let b = sample(&mut rng, m, 0.3, ties);
        for method in [Method::Auto, Method::Asymp] {
            let ab = ok(ks_2samp(&a, &b, Alternative::TwoSided, method));
            let ba = ok(ks_2samp(&b, &a, Alternative::TwoSided, method));
            assert!(
                (ab.statistic - ba.statistic).abs() <= 1e-15,
                "round {round}: D {ab:?} vs {ba:?}"
            );
            assert_eq!(ab.method, ba.method, "round {round}");
            let same_p = (ab.p_value - ba.p_value).abs() <= 1e-12 * ab.p_value.abs().max(1e-300)
                || (ab.p_value.is_nan() && ba.p_value.is_nan());
            assert!(same_p, "round {round}: p {ab:?} vs {ba:?}");
        }
        // One-sided: swapping the samples swaps less and greater.
        let g = ok(ks_2samp(&a, &b, Alternative::Greater, Method::Auto));
        let l = ok(ks_2samp(&b, &a, Alternative::Less, Method::Auto));
        assert!((g.statistic - l.statistic).abs() <= 1e-15, "round {round}");
    }
}

#[test]
fn ks_statistic_and_p_value_stay_in_unit_interval() {
    let mut rng = Lcg(42);
    for round in 0..150 {
        let (n, m) = if round == 0 {
            (1, 1)
        } else {
            (
                1 + (rng.next_u64() % 300) as usize,
                1 + (rng.next_u64() % 300) as usize,
            )
        };
        let shift = (rng.uniform() - 0.5) * 3.0;
        let ties = match round % 4 {
            0 => Some(1.0),
            1 => Some(0.1),
            _ => None,
        };
        let a = sample(&mut rng, n, 0.0, ties);
        let b = sample(&mut rng, m, shift, ties);
        for alt in [
            Alternative::TwoSided,
            Alternative::Less,
            Alternative::Greater,
        ] {
            for method in [Method::Auto, Method::Exact, Method::Asymp] {
                let r = ok(ks_2samp(&a, &b, alt, method));
                assert!(
                    (0.0..=1.0).contains(&r.statistic),
                    "round {round} {alt:?} {method:?}: {r:?}"
                );
                // SciPy's one NaN: asymptotic two-sided with n = m = 1 (kstwo with n = 0).
                let scipy_nan =
                    n == 1 && m == 1 && alt == Alternative::TwoSided && method == Method::Asymp;
                assert!(
                    if scipy_nan {
                        r.p_value.is_nan()
                    } else {
                        (0.0..=1.0).contains(&r.p_value)
                    },
                    "round {round} n={n} m={m} {alt:?} {method:?}: {r:?}"
                );
                assert!(r.sign == 1 || r.sign == -1);
                assert!(a.contains(&r.location) || b.contains(&r.location));
            }
        }
    }
}

#[test]
fn ks_identical_samples_give_zero_and_one() {
    let a = [3.0, 1.0, 2.0, 2.0, 5.0];
    for method in [Method::Auto, Method::Exact, Method::Asymp] {
        let r = ok(ks_2samp(&a, &a, Alternative::TwoSided, method));
        assert_eq!(r.statistic, 0.0);
        assert_eq!(r.p_value, 1.0);
        assert_eq!(r.sign, 1);
    }
}

#[test]
fn ks_single_values_asymptotic_is_nan_like_scipy() {
    // SciPy: kstwo.sf(D, round(0.5) = 0) is NaN for n = m = 1 with method="asymp".
    let r = ok(ks_2samp(
        &[0.0],
        &[1.0],
        Alternative::TwoSided,
        Method::Asymp,
    ));
    assert_eq!(r.statistic, 1.0);
    assert!(r.p_value.is_nan());
    assert_eq!(r.method, MethodUsed::Asymp);
    // Exact and one-sided stay finite.
    let r = ok(ks_2samp(
        &[0.0],
        &[1.0],
        Alternative::TwoSided,
        Method::Auto,
    ));
    assert_eq!((r.statistic, r.p_value), (1.0, 1.0));
}

#[test]
fn ks_empty_samples_are_errors() {
    let x = [1.0, 2.0];
    assert_eq!(
        ks_2samp(&[], &x, Alternative::TwoSided, Method::Auto),
        Err(KsError::EmptySample { which: "reference" })
    );
    assert_eq!(
        ks_2samp(&x, &[], Alternative::TwoSided, Method::Auto),
        Err(KsError::EmptySample { which: "current" })
    );
    assert_eq!(
        ks_2samp_sorted(&[], &[], Alternative::Less, Method::Exact),
        Err(KsError::EmptySample { which: "reference" })
    );
}

#[test]
fn ks_non_finite_values_are_errors_naming_the_index() {
    let good = [1.0, 2.0, 3.0];
    assert_eq!(
        ks_2samp(
            &[1.0, f64::NAN, 0.0],
            &good,
            Alternative::TwoSided,
            Method::Auto
        ),
        Err(KsError::NonFinite {
            which: "reference",
            index: 1
        })
    );
    assert_eq!(
        ks_2samp(
            &good,
            &[0.0, 1.0, f64::INFINITY],
            Alternative::Greater,
            Method::Auto
        ),
        Err(KsError::NonFinite {
            which: "current",
            index: 2
        })
    );
    assert_eq!(
        ks_2samp_sorted(
            &good,
            &[f64::NEG_INFINITY],
            Alternative::Less,
            Method::Asymp
        ),
        Err(KsError::NonFinite {
            which: "current",
            index: 0
        })
    );
    let msg = KsError::NonFinite {
        which: "reference",
        index: 7,
    }
    .to_string();
    assert!(msg.contains("reference") && msg.contains('7'), "{msg}");
}

#[test]
fn ks_extreme_magnitudes_do_not_panic() {
    let a = [f64::MAX, -f64::MAX, 5e-324, -5e-324, 0.0, -0.0];
    let b = [f64::MIN_POSITIVE, 1e308, -1e-310];
    for alt in [
        Alternative::TwoSided,
        Alternative::Less,
        Alternative::Greater,
    ] {
        for method in [Method::Auto, Method::Exact, Method::Asymp] {
            let r = ok(ks_2samp(&a, &b, alt, method));
            assert!((0.0..=1.0).contains(&r.statistic));
        }
    }
}

#[test]
fn ks_forced_exact_on_huge_lcm_falls_back_to_asymp() {
    // lcm(50001, 50003) = 2500200003 > 2^31 - 1: SciPy switches to asymp before trying, so D
    // is not rounded to h / lcm either.
    let mut rng = Lcg(7);
    let a = sample(&mut rng, 50001, 0.0, None);
    let b = sample(&mut rng, 50003, 0.05, None);
    let r = ok(ks_2samp(&a, &b, Alternative::TwoSided, Method::Exact));
    assert_eq!(r.method, MethodUsed::Asymp);
    let asymp = ok(ks_2samp(&a, &b, Alternative::TwoSided, Method::Asymp));
    assert_eq!(r, asymp);
}
