//! Detectors: pure functions over `&[f64]` slices. No async, no I/O, no locks.

pub mod ks;
