//! Contingency tests against SciPy: every case of `chi2_contingency_public.json` (Pearson,
//! no correction) and `power_divergence_public.json` (Cressie-Read lambdas, Yates'
//! correction), plus properties and the error cases.

use crate::reference::{load, Tally};
use driftgauge::detect::chi2::{chi2_contingency, Chi2Error, Chi2Result, Lambda};
use serde::Deserialize;

#[derive(Deserialize)]
struct Case {
    name: String,
    observed: Vec<Vec<f64>>,
    #[serde(default)]
    correction: bool,
    #[serde(default)]
    lambda_: Option<serde_json::Value>,
    statistic: f64,
    pvalue: f64,
    dof: usize,
    expected_freq: Vec<Vec<f64>>,
}

fn lambda_of(value: &Option<serde_json::Value>) -> Option<Lambda> {
    match value {
        None => Some(Lambda::Pearson),
        Some(serde_json::Value::String(name)) => Lambda::parse(name),
        Some(serde_json::Value::Number(n)) => n.as_f64().map(Lambda::Value),
        Some(_) => None,
    }
}

fn check_file(name: &str, family: &str, count: usize) {
    let file = load::<Case>(name, family);
    assert_eq!(file.cases.len(), count, "{name}: case count");
    let mut tally = Tally::default();
    for case in &file.cases {
        let Some(lambda) = lambda_of(&case.lambda_) else {
            tally.fail(&case.name, format!("unknown lambda_ {:?}", case.lambda_));
            continue;
        };
        let got = match chi2_contingency(&case.observed, case.correction, lambda) {
            Ok(r) => r,
            Err(e) => {
                tally.fail(&case.name, format!("error {e}"));
                continue;
            }
        };
        compare(&mut tally, case, &got);
    }
    tally.finish(name, file.cases.len());
}

fn compare(tally: &mut Tally, case: &Case, got: &Chi2Result) {
    let name = &case.name;
    tally.stat(name, "statistic", got.statistic, case.statistic);
    tally.p(name, "pvalue", got.p_value, case.pvalue);
    tally.eq(name, "dof", got.dof, case.dof);
    tally.eq(
        name,
        "expected_freq shape",
        shape(&got.expected),
        shape(&case.expected_freq),
    );
    for (g, w) in got
        .expected
        .iter()
        .flatten()
        .zip(case.expected_freq.iter().flatten())
    {
        tally.p(name, "expected_freq", *g, *w);
    }
}

fn shape(t: &[Vec<f64>]) -> Vec<usize> {
    t.iter().map(Vec::len).collect()
}

#[test]
fn chi2_contingency_vectors_match_scipy() {
    check_file("chi2_contingency_public.json", "chi2_contingency", 17);
}

#[test]
fn power_divergence_vectors_match_scipy() {
    check_file("power_divergence_public.json", "power_divergence", 14);
}

/// A small deterministic generator (64-bit LCG, Knuth's MMIX constants).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

fn random_table(rng: &mut Lcg, rows: usize, cols: usize) -> Vec<Vec<f64>> {
    (0..rows)
        .map(|_| (0..cols).map(|_| (1 + rng.next() % 50) as f64).collect())
        .collect()
}

#[test]
fn chi2_is_symmetric_in_rows_and_columns() {
    let mut rng = Lcg(12);
    for round in 0..100 {
        let rows = 2 + (rng.next() % 3) as usize;
        let cols = 2 + (rng.next() % 8) as usize;
        let t = random_table(&mut rng, rows, cols);
        let transposed: Vec<Vec<f64>> = (0..cols)
            .map(|j| t.iter().map(|r| r[j]).collect())
            .collect();
        let swapped: Vec<Vec<f64>> = t.iter().rev().cloned().collect();
        for lambda in [Lambda::Pearson, Lambda::LogLikelihood, Lambda::CressieRead] {
            let a = chi2_contingency(&t, false, lambda).unwrap();
            for other in [&transposed, &swapped] {
                let b = chi2_contingency(other, false, lambda).unwrap();
                assert!(
                    (a.statistic - b.statistic).abs() <= 1e-12 * a.statistic.max(1.0),
                    "round {round} {lambda:?}: {} vs {}",
                    a.statistic,
                    b.statistic
                );
                assert_eq!(a.dof, b.dof);
                assert!((a.p_value - b.p_value).abs() <= 1e-12, "round {round}");
            }
            assert!(a.statistic >= 0.0 && (0.0..=1.0).contains(&a.p_value));
        }
    }
}

#[test]
fn chi2_of_proportional_rows_is_zero() {
    let mut rng = Lcg(99);
    for _ in 0..50 {
        let cols = 2 + (rng.next() % 10) as usize;
        let base: Vec<f64> = (0..cols).map(|_| (1 + rng.next() % 40) as f64).collect();
        let k = (1 + rng.next() % 5) as f64;
        let t = vec![base.clone(), base.iter().map(|x| x * k).collect()];
        for lambda in [Lambda::Pearson, Lambda::LogLikelihood, Lambda::Neyman] {
            let r = chi2_contingency(&t, false, lambda).unwrap();
            assert!(r.statistic.abs() < 1e-9, "{lambda:?}: {r:?}");
            assert!(r.p_value > 1.0 - 1e-9, "{lambda:?}: {r:?}");
        }
    }
}

#[test]
fn chi2_yates_applies_only_with_one_degree_of_freedom() {
    let two_by_three = [[12.0, 5.0, 9.0], [7.0, 14.0, 8.0]];
    let plain = chi2_contingency(&two_by_three, false, Lambda::Pearson).unwrap();
    let corrected = chi2_contingency(&two_by_three, true, Lambda::Pearson).unwrap();
    assert_eq!(plain, corrected);
    let two_by_two = [[30.0, 12.0], [18.0, 25.0]];
    let plain = chi2_contingency(&two_by_two, false, Lambda::Pearson).unwrap();
    let corrected = chi2_contingency(&two_by_two, true, Lambda::Pearson).unwrap();
    assert!(corrected.statistic < plain.statistic);
}

#[test]
fn chi2_errors_name_the_cell() {
    let t = vec![vec![1.0, 2.0, 3.0], vec![4.0, f64::INFINITY, 6.0]];
    assert_eq!(
        chi2_contingency(&t, false, Lambda::Pearson),
        Err(Chi2Error::NonFinite { row: 1, col: 1 })
    );
    let msg = Chi2Error::ZeroExpected { row: 0, col: 2 }.to_string();
    assert!(msg.contains("column 2"), "{msg}");
}
