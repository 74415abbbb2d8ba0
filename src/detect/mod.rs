//! Detectors: pure functions over `&[f64]` slices. No async, no I/O, no locks.

pub mod anderson;
pub mod bessel;
pub mod budget;
pub mod cephes;
pub mod control;
pub mod chi2;
pub mod cvm;
pub mod divergence;
pub mod ema;
pub mod energy;
pub mod evaluate;
pub mod fdr;
pub mod ks;
pub mod kstwo;
pub mod report;
pub mod sort;
pub mod sum;
pub mod wasserstein;

/// What a detector concludes about one rule+series at one evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Stable,
    Warning,
    Drifted,
}
