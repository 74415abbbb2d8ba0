//! Detectors: pure functions over `&[f64]` slices. No async, no I/O, no locks.

pub mod anderson;
pub mod bessel;
pub mod binned;
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

impl Verdict {
    /// `"stable"`, `"warning"` or `"drifted"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Stable => "stable",
            Verdict::Warning => "warning",
            Verdict::Drifted => "drifted",
        }
    }

    /// With evidence of drift, a statistic at or above the effect-size `floor` (when set) is
    /// drifted, else warning; without evidence, stable.
    pub fn of(evident: bool, statistic: f64, floor: Option<f64>) -> Verdict {
        if !evident {
            Verdict::Stable
        } else if floor.is_none_or(|f| statistic >= f) {
            Verdict::Drifted
        } else {
            Verdict::Warning
        }
    }
}
