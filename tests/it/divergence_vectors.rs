//! Histogram distances: Jensen-Shannon against every case of `jensenshannon_public.json`
//! (`scipy.spatial.distance.jensenshannon`, base 2 and natural), and properties of
//! Jensen-Shannon, Hellinger and PSI (which SciPy does not have).

use crate::reference::{load, Tally};
use driftgauge::detect::divergence::{hellinger, jensenshannon, psi, Base, DivergenceError};
use serde::Deserialize;

#[derive(Deserialize)]
struct Case {
    name: String,
    p: Vec<f64>,
    q: Vec<f64>,
    distance_base2: f64,
    distance_natural: f64,
}

#[test]
fn jensenshannon_vectors_match_scipy() {
    let file = load::<Case>("jensenshannon_public.json", "jensenshannon");
    assert_eq!(file.cases.len(), 15);
    let mut tally = Tally::default();
    for case in &file.cases {
        for (base, field, want) in [
            (Base::Two, "distance_base2", case.distance_base2),
            (Base::Natural, "distance_natural", case.distance_natural),
        ] {
            match jensenshannon(&case.p, &case.q, base) {
                Ok(got) => tally.stat(&case.name, field, got, want),
                Err(e) => tally.fail(&case.name, format!("{field}: error {e}")),
            }
        }
    }
    tally.finish("jensenshannon_public.json", file.cases.len());
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

    /// Counts, a few of them zero.
    fn histogram(&mut self, bins: usize) -> Vec<f64> {
        (0..bins)
            .map(|_| match self.next() % 6 {
                0 => 0.0,
                r => (r * (1 + self.next() % 100)) as f64,
            })
            .collect()
    }
}

fn nonzero(h: &[f64]) -> bool {
    h.iter().any(|&x| x > 0.0)
}

#[test]
fn histogram_distances_are_symmetric_and_bounded() {
    let mut rng = Lcg(7);
    let mut tested = 0;
    for _ in 0..300 {
        let bins = 1 + (rng.next() % 30) as usize;
        let (p, q) = (rng.histogram(bins), rng.histogram(bins));
        if !nonzero(&p) || !nonzero(&q) {
            continue;
        }
        tested += 1;
        for base in [Base::Two, Base::Natural] {
            let a = jensenshannon(&p, &q, base).unwrap();
            let b = jensenshannon(&q, &p, base).unwrap();
            assert!((a - b).abs() <= 1e-15, "{p:?} {q:?}: {a} vs {b}");
            let top = if base == Base::Two {
                1.0
            } else {
                std::f64::consts::LN_2.sqrt()
            };
            assert!((0.0..=top + 1e-15).contains(&a), "{a}");
        }
        let (a, b) = (hellinger(&p, &q).unwrap(), hellinger(&q, &p).unwrap());
        assert!(
            (a - b).abs() <= 1e-15 && (0.0..=1.0).contains(&a),
            "{a} {b}"
        );
        let (a, b) = (psi(&p, &q).unwrap(), psi(&q, &p).unwrap());
        assert!((a - b).abs() <= 1e-12 * a.max(1.0) && a >= 0.0, "{a} {b}");
    }
    assert!(tested > 200);
}

#[test]
fn histogram_distances_vanish_for_proportional_histograms() {
    let mut rng = Lcg(8);
    for _ in 0..100 {
        let bins = 1 + (rng.next() % 30) as usize;
        let p = rng.histogram(bins);
        if !nonzero(&p) {
            continue;
        }
        // Scaling by a power of two keeps the proportions exact.
        let q: Vec<f64> = p.iter().map(|x| x * 8.0).collect();
        assert_eq!(jensenshannon(&p, &q, Base::Two), Ok(0.0));
        assert_eq!(jensenshannon(&p, &p, Base::Natural), Ok(0.0));
        assert_eq!(hellinger(&p, &q), Ok(0.0));
        assert_eq!(psi(&p, &q), Ok(0.0));
    }
}

#[test]
fn histogram_distances_of_disjoint_histograms() {
    let (p, q) = ([3.0, 0.0, 1.0, 0.0], [0.0, 5.0, 0.0, 0.0]);
    assert_eq!(jensenshannon(&p, &q, Base::Two), Ok(1.0));
    assert_eq!(hellinger(&p, &q), Ok(1.0));
    assert!(psi(&p, &q).unwrap() > 10.0);
}

#[test]
fn histogram_distance_errors() {
    assert_eq!(
        psi(&[1.0, 2.0], &[1.0]),
        Err(DivergenceError::LengthMismatch {
            reference: 2,
            current: 1
        })
    );
    assert_eq!(
        hellinger(&[1.0, 2.0], &[0.0, 0.0]),
        Err(DivergenceError::ZeroTotal { which: "current" })
    );
}
