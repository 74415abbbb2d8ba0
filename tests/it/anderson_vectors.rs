//! The k-sample Anderson-Darling test against every case of `anderson_ksamp_public.json`
//! (`scipy.stats.anderson_ksamp`, the three variants, capped and floored p-values), and its
//! properties.

use crate::reference::{load, Tally};
use driftgauge::detect::anderson::{anderson_2samp, anderson_ksamp, PvalueLimit, Variant};
use serde::Deserialize;

#[derive(Deserialize)]
struct Case {
    name: String,
    samples: Vec<Vec<f64>>,
    variant: String,
    statistic: f64,
    pvalue: f64,
    pvalue_limited: Option<String>,
    critical_values: Vec<f64>,
}

#[test]
fn anderson_ksamp_vectors_match_scipy() {
    let file = load::<Case>("anderson_ksamp_public.json", "anderson_ksamp");
    assert_eq!(file.cases.len(), 15);
    let mut tally = Tally::default();
    for case in &file.cases {
        let Some(variant) = Variant::parse(&case.variant) else {
            tally.fail(&case.name, format!("unknown variant {:?}", case.variant));
            continue;
        };
        let got = match anderson_ksamp(&case.samples, variant) {
            Ok(r) => r,
            Err(e) => {
                tally.fail(&case.name, format!("error {e}"));
                continue;
            }
        };
        tally.stat(&case.name, "statistic", got.statistic, case.statistic);
        tally.p(&case.name, "pvalue", got.p_value, case.pvalue);
        tally.eq(
            &case.name,
            "pvalue_limited",
            got.limited.map(|l| l.as_str()),
            case.pvalue_limited.as_deref(),
        );
        tally.eq(
            &case.name,
            "critical_values length",
            7,
            case.critical_values.len(),
        );
        for (g, w) in got.critical_values.iter().zip(&case.critical_values) {
            tally.stat(&case.name, "critical_values", *g, *w);
        }
    }
    tally.finish("anderson_ksamp_public.json", file.cases.len());
}

/// A small deterministic generator (64-bit LCG, Knuth's MMIX constants).
struct Lcg(u64);

impl Lcg {
    fn uniform(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }

    fn sample(&mut self, len: usize, shift: f64, ties: bool) -> Vec<f64> {
        (0..len)
            .map(|_| {
                let x = (0..4).map(|_| self.uniform()).sum::<f64>() - 2.0 + shift;
                if ties {
                    (x * 2.0).round() / 2.0
                } else {
                    x
                }
            })
            .collect()
    }
}

#[test]
fn anderson_is_symmetric_in_the_order_of_samples() {
    let mut rng = Lcg(77);
    for round in 0..100 {
        let ties = round % 2 == 0;
        let k = 2 + round % 3;
        let samples: Vec<Vec<f64>> = (0..k)
            .map(|i| {
                let n = 3 + (rng.uniform() * 60.0) as usize;
                rng.sample(n, 0.3 * i as f64, ties)
            })
            .collect();
        let reversed: Vec<Vec<f64>> = samples.iter().rev().cloned().collect();
        for variant in [Variant::Midrank, Variant::Right, Variant::Continuous] {
            let a = anderson_ksamp(&samples, variant).unwrap();
            let b = anderson_ksamp(&reversed, variant).unwrap();
            assert!(
                (a.statistic - b.statistic).abs() <= 1e-12 * a.statistic.abs().max(1.0),
                "round {round} {variant:?}: {a:?} {b:?}"
            );
            assert_eq!(a.limited, b.limited);
            assert!((0.001..=0.25).contains(&a.p_value), "{a:?}");
            match a.limited {
                Some(PvalueLimit::Capped) => assert_eq!(a.p_value, 0.25),
                Some(PvalueLimit::Floored) => assert_eq!(a.p_value, 0.001),
                None => assert!(a.statistic >= a.critical_values[0]),
            }
        }
    }
}

#[test]
fn anderson_without_ties_agrees_across_variants() {
    // Without ties the three statistics are the same (the continuous one up to rounding).
    let mut rng = Lcg(4);
    let a = rng.sample(80, 0.0, false);
    let b = rng.sample(70, 0.4, false);
    let right = anderson_2samp(&a, &b, Variant::Right).unwrap();
    let continuous = anderson_2samp(&a, &b, Variant::Continuous).unwrap();
    assert!((right.statistic - continuous.statistic).abs() < 1e-12);
    let shifted = anderson_2samp(&a, &b, Variant::Midrank).unwrap();
    assert!(shifted.p_value < 0.05, "{shifted:?}");
}
