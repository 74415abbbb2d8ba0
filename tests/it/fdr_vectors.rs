//! False-discovery-rate adjustments against every case of `false_discovery_public.json`
//! (`scipy.stats.false_discovery_control`, BH and BY), and their properties.

use crate::reference::{load, Tally};
use driftgauge::detect::fdr::{bonferroni, false_discovery_control, FdrMethod};
use serde::Deserialize;

#[derive(Deserialize)]
struct Case {
    name: String,
    ps: Vec<f64>,
    method: String,
    adjusted: Vec<f64>,
}

#[test]
fn false_discovery_vectors_match_scipy() {
    let file = load::<Case>("false_discovery_public.json", "false_discovery");
    assert_eq!(file.cases.len(), 7);
    let mut tally = Tally::default();
    for case in &file.cases {
        let Some(method) = FdrMethod::parse(&case.method) else {
            tally.fail(&case.name, format!("unknown method {:?}", case.method));
            continue;
        };
        match false_discovery_control(&case.ps, method) {
            Ok(got) => {
                tally.eq(&case.name, "length", got.len(), case.adjusted.len());
                for (g, w) in got.iter().zip(&case.adjusted) {
                    tally.p(&case.name, "adjusted", *g, *w);
                }
            }
            Err(e) => tally.fail(&case.name, format!("error {e}")),
        }
    }
    tally.finish("false_discovery_public.json", file.cases.len());
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
}

#[test]
fn adjustments_keep_the_order_and_never_lower_a_p_value() {
    let mut rng = Lcg(3);
    for _ in 0..200 {
        let m = 1 + (rng.uniform() * 60.0) as usize;
        let ps: Vec<f64> = (0..m).map(|_| rng.uniform().powi(3)).collect();
        let bh = false_discovery_control(&ps, FdrMethod::Bh).unwrap();
        let by = false_discovery_control(&ps, FdrMethod::By).unwrap();
        let bf = bonferroni(&ps).unwrap();
        for i in 0..m {
            assert!(ps[i] <= bh[i] && bh[i] <= by[i] && by[i] <= 1.0, "{ps:?}");
            assert!(bh[i] <= bf[i], "BH is never stricter than Bonferroni");
            for j in 0..m {
                if ps[i] <= ps[j] {
                    assert!(bh[i] <= bh[j] && by[i] <= by[j]);
                }
            }
        }
    }
}
