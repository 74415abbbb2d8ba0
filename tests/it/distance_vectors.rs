//! Wasserstein and energy distances against every case of `wasserstein_public.json` and
//! `energy_distance_public.json` (SciPy's `wasserstein_distance`, `energy_distance`, with and
//! without weights), and their properties.
//!
//! Distances scale with the data (one case is about 5e149), so they are compared to 1e-12
//! relative to `max(1, |expected|)`: 1e-12 absolute for distances up to 1.

use crate::reference::{abs_err, load, Tally};
use driftgauge::detect::energy::{energy_distance, energy_distance_sorted};
use driftgauge::detect::wasserstein::{
    wasserstein_distance, wasserstein_distance_sorted, DistanceError,
};
use serde::Deserialize;

#[derive(Deserialize)]
struct Case {
    name: String,
    u_values: Vec<f64>,
    v_values: Vec<f64>,
    u_weights: Option<Vec<f64>>,
    v_weights: Option<Vec<f64>>,
    distance: f64,
}

type Distance = fn(&[f64], &[f64], Option<&[f64]>, Option<&[f64]>) -> Result<f64, DistanceError>;
/// The same distance without weights on arrays given away (sorted in place).
type Owned = fn(Vec<f64>, Vec<f64>) -> Result<f64, DistanceError>;
/// The same distance without weights on arrays already sorted.
type Sorted = fn(&[f64], &[f64]) -> Result<f64, DistanceError>;

/// The three entry points of one distance.
struct Entries {
    borrowed: Distance,
    owned: Owned,
    sorted: Sorted,
}

fn check_file(file_name: &str, family: &str, count: usize, distance: Entries) {
    let file = load::<Case>(file_name, family);
    assert_eq!(file.cases.len(), count, "{file_name}: case count");
    let mut tally = Tally::default();
    for case in &file.cases {
        let got = (distance.borrowed)(
            &case.u_values,
            &case.v_values,
            case.u_weights.as_deref(),
            case.v_weights.as_deref(),
        );
        if case.u_weights.is_none() && case.v_weights.is_none() {
            // Sorting in place, or not at all, is the same computation bit for bit.
            let (u, v) = (case.u_values.clone(), case.v_values.clone());
            let bits = |r: &Result<f64, DistanceError>| {
                r.as_ref().map(|x| x.to_bits()).map_err(ToString::to_string)
            };
            assert_eq!(
                bits(&(distance.owned)(u.clone(), v.clone())),
                bits(&got),
                "{}",
                case.name
            );
            let sorted = |mut x: Vec<f64>| {
                x.sort_unstable_by(f64::total_cmp);
                x
            };
            let (u, v) = (sorted(u), sorted(v));
            if u.iter().chain(&v).all(|x| x.is_finite()) {
                assert_eq!(
                    bits(&(distance.sorted)(&u, &v)),
                    bits(&got),
                    "{}",
                    case.name
                );
            }
        }
        match got {
            Ok(got) => {
                let scale = case.distance.abs().max(1.0);
                // Scaled into the statistic tolerance: |got - want| / max(1, |want|).
                tally.stat(
                    &case.name,
                    "distance (scaled)",
                    got / scale,
                    case.distance / scale,
                );
                let rel = abs_err(got, case.distance) / case.distance.abs().max(f64::MIN_POSITIVE);
                tally.note_only(&case.name, "distance (relative)", rel);
            }
            Err(e) => tally.fail(&case.name, format!("error {e}")),
        }
    }
    tally.finish(file_name, file.cases.len());
}

#[test]
fn wasserstein_vectors_match_scipy() {
    check_file(
        "wasserstein_public.json",
        "wasserstein",
        19,
        Entries {
            borrowed: |u, v, uw, vw| wasserstein_distance(u, v, uw, vw),
            owned: |u, v| wasserstein_distance(u, v, None, None),
            sorted: wasserstein_distance_sorted,
        },
    );
}

#[test]
fn energy_distance_vectors_match_scipy() {
    check_file(
        "energy_distance_public.json",
        "energy_distance",
        6,
        Entries {
            borrowed: |u, v, uw, vw| energy_distance(u, v, uw, vw),
            owned: |u, v| energy_distance(u, v, None, None),
            sorted: energy_distance_sorted,
        },
    );
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
                    (x * 4.0).round() / 4.0
                } else {
                    x
                }
            })
            .collect()
    }
}

#[test]
fn distances_are_symmetric_and_vanish_on_identical_samples() {
    let mut rng = Lcg(21);
    for round in 0..150 {
        let n = 1 + (rng.uniform() * 80.0) as usize;
        let m = 1 + (rng.uniform() * 80.0) as usize;
        let ties = round % 3 == 0;
        let a = rng.sample(n, 0.0, ties);
        let shift = rng.uniform();
        let b = rng.sample(m, shift, ties);
        let wa: Vec<f64> = (0..n).map(|_| rng.uniform() * 3.0).collect();
        let wb: Vec<f64> = (0..m).map(|_| rng.uniform() * 3.0).collect();
        let wasserstein: Distance = |u, v, uw, vw| wasserstein_distance(u, v, uw, vw);
        let energy: Distance = |u, v, uw, vw| energy_distance(u, v, uw, vw);
        for f in [wasserstein, energy] {
            let ab = f(&a, &b, None, None).unwrap();
            let ba = f(&b, &a, None, None).unwrap();
            assert!(
                (ab - ba).abs() <= 1e-14 * ab.max(1.0),
                "round {round}: {ab} {ba}"
            );
            assert!(ab >= 0.0);
            let ab = f(&a, &b, Some(&wa), Some(&wb)).unwrap();
            let ba = f(&b, &a, Some(&wb), Some(&wa)).unwrap();
            assert!(
                (ab - ba).abs() <= 1e-14 * ab.max(1.0),
                "round {round}: {ab} {ba}"
            );
            assert_eq!(f(&a, &a, None, None), Ok(0.0));
            assert_eq!(f(&a, &a, Some(&wa), Some(&wa)), Ok(0.0));
            // Equal weights are no weights.
            let ones = vec![2.5; n];
            let plain = f(&a, &b, None, None).unwrap();
            let weighted = f(&a, &b, Some(&ones), None).unwrap();
            assert!((plain - weighted).abs() <= 1e-14 * plain.max(1.0));
        }
    }
}

#[test]
fn wasserstein_of_a_shift_is_the_shift() {
    let mut rng = Lcg(5);
    let a = rng.sample(500, 0.0, false);
    // Shifting by a power of two keeps every value exact.
    let b: Vec<f64> = a.iter().map(|x| x + 0.25).collect();
    let d = wasserstein_distance(&a, &b, None, None).unwrap();
    assert!((d - 0.25).abs() < 1e-13, "{d}");
}
