//! The two-sample Cramér-von Mises test against every case of
//! `cramervonmises_2samp_public.json` (`scipy.stats.cramervonmises_2samp`, exact and
//! asymptotic), and its properties.

use crate::reference::{load, Tally};
use driftgauge::detect::cvm::{cramervonmises_2samp, CvmError, CvmMethod, CvmMethodUsed};
use serde::Deserialize;

#[derive(Deserialize)]
struct Case {
    name: String,
    x: Vec<f64>,
    y: Vec<f64>,
    method: String,
    statistic: f64,
    pvalue: f64,
    method_used: String,
}

#[test]
fn cramervonmises_2samp_vectors_match_scipy() {
    let file = load::<Case>("cramervonmises_2samp_public.json", "cramervonmises_2samp");
    assert_eq!(file.cases.len(), 15);
    let mut tally = Tally::default();
    for case in &file.cases {
        let Some(method) = CvmMethod::parse(&case.method) else {
            tally.fail(&case.name, format!("unknown method {:?}", case.method));
            continue;
        };
        let got = match cramervonmises_2samp(&case.x, &case.y, method) {
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
            "method_used",
            got.method.as_str(),
            case.method_used.as_str(),
        );
    }
    tally.finish("cramervonmises_2samp_public.json", file.cases.len());
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
fn cvm_is_symmetric_in_the_samples() {
    let mut rng = Lcg(31);
    for round in 0..80 {
        let n = 2 + (rng.uniform() * 30.0) as usize;
        let m = 2 + (rng.uniform() * 30.0) as usize;
        let ties = round % 3 == 0;
        let a = rng.sample(n, 0.0, ties);
        let b = rng.sample(m, 0.4, ties);
        for method in [CvmMethod::Auto, CvmMethod::Asymptotic] {
            let ab = cramervonmises_2samp(&a, &b, method).unwrap();
            let ba = cramervonmises_2samp(&b, &a, method).unwrap();
            assert!(
                (ab.statistic - ba.statistic).abs() <= 1e-12,
                "round {round}: {ab:?} {ba:?}"
            );
            assert!((ab.p_value - ba.p_value).abs() <= 1e-12, "round {round}");
            assert_eq!(ab.method, ba.method);
            assert!((0.0..=1.0).contains(&ab.p_value), "{ab:?}");
        }
    }
}

#[test]
fn cvm_exact_p_values_are_a_distribution() {
    // Over every split of 0..8 into 4 and 4 the exact p-value of the most extreme split is
    // 2 / C(8, 4), and identical samples have p = 1.
    let a = [0.0, 1.0, 2.0, 3.0];
    let b = [4.0, 5.0, 6.0, 7.0];
    let r = cramervonmises_2samp(&a, &b, CvmMethod::Exact).unwrap();
    assert_eq!(r.method, CvmMethodUsed::Exact);
    assert_eq!(r.p_value, 2.0 / 70.0);
    let r = cramervonmises_2samp(&a, &a, CvmMethod::Auto).unwrap();
    assert_eq!(r.p_value, 1.0);
    let r = cramervonmises_2samp(&a, &a, CvmMethod::Asymptotic).unwrap();
    assert_eq!(r.p_value, 1.0);
}

#[test]
fn cvm_exact_refuses_large_samples() {
    let big: Vec<f64> = (0..51).map(f64::from).collect();
    assert_eq!(
        cramervonmises_2samp(&big, &big, CvmMethod::Exact),
        Err(CvmError::ExactTooLarge { n: 51, m: 51 })
    );
    // Auto never asks for it there.
    let r = cramervonmises_2samp(&big, &big, CvmMethod::Auto).unwrap();
    assert_eq!(r.method, CvmMethodUsed::Asymptotic);
}
