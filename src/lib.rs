//! driftgauge: a Prometheus-native drift and degradation monitor for machine-learning models.
//!
//! Modules in the order data flows:
//! `ingest` (sources) → `window` (per-series windows) → `detect` (pure detectors) →
//! `rules` (model, parsing, validation) + `engine` (scheduling, state machine) →
//! `output` (exposition, webhooks) ; `http` serves it all.

pub mod app;
pub mod detect;
pub mod engine;
pub mod http;
pub mod ingest;
pub mod logging;
pub mod output;
pub mod rules;
pub mod store;
pub mod time;
pub mod window;
