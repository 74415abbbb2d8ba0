//! The energy distance between two samples, optionally weighted, as
//! `scipy.stats.energy_distance` (SciPy 1.17.1) computes it: `sqrt(2)` times the `l_2`
//! distance between the two empirical CDFs, `sqrt(2 * integral (U - V)^2)`
//! ([`super::wasserstein`] holds the CDF walk both share, and its notes on rounding).
//!
//! Pure: no I/O, no panics; bad input is a [`DistanceError`], as for the Wasserstein
//! distance.

pub use super::wasserstein::DistanceError;
use std::borrow::Cow;

use super::wasserstein::{cdf_distance, cdf_distance_sorted, Power};

/// `scipy.stats.energy_distance(reference, current, reference_weights, current_weights)`.
/// Without weights every value weighs the same; arrays given by value (`Vec<f64>`) are then
/// sorted in place, borrowed ones (`&[f64]`) into copies.
pub fn energy_distance<'a, 'b>(
    reference: impl Into<Cow<'a, [f64]>>,
    current: impl Into<Cow<'b, [f64]>>,
    reference_weights: Option<&[f64]>,
    current_weights: Option<&[f64]>,
) -> Result<f64, DistanceError> {
    let l2 = cdf_distance(
        Power::Two,
        reference.into(),
        current.into(),
        reference_weights,
        current_weights,
    )?;
    Ok(std::f64::consts::SQRT_2 * l2)
}

/// [`energy_distance`] without weights, on samples the caller keeps sorted ascending (`-0.0`
/// and `0.0` in either order; `debug_assert`ed): nothing copied or sorted.
pub fn energy_distance_sorted(reference: &[f64], current: &[f64]) -> Result<f64, DistanceError> {
    Ok(std::f64::consts::SQRT_2 * cdf_distance_sorted(Power::Two, reference, current)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scipy_doc_examples() {
        // scipy.stats.energy_distance([0], [2]) and its weighted example.
        assert_eq!(
            energy_distance(&[0.0], &[2.0], None, None),
            Ok(2.0000000000000004)
        );
        assert_eq!(
            energy_distance(
                &[0.0, 8.0],
                &[0.0, 8.0],
                Some(&[3.0, 1.0]),
                Some(&[2.0, 2.0])
            ),
            Ok(1.0000000000000002)
        );
    }
}
