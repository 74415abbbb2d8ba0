//! Sources of samples. Each source turns its input into [`SeriesSamples`] and hands a whole
//! batch to the engine, which applies all of it or nothing.

pub mod expfmt;
pub mod file;
pub mod names;
pub mod npy;
pub mod push;
pub mod query;
pub mod remote_write;
pub mod scrape;

use crate::rules::model::Labels;

/// Values for one series, in arrival order.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesSamples {
    pub metric: String,
    pub labels: Labels,
    pub values: Vec<f64>,
}
