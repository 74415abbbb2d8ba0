//! driftgauge: a Prometheus-native drift and degradation monitor for machine-learning models.
//!
//! Modules in layer order; each imports only modules listed before it (`tests/it/tidy.rs`
//! checks this, and ARCHITECTURE.md explains the layers):
//! 0. leaves: `time`, `labels`, `telemetry`, `net`, `store`, `logging`, `cluster`, `memory`;
//! 1. pure, sync, no I/O: `formats` (wire and file formats), `detect` (detectors), `window`;
//! 2. `config` (rule files, service config, web config), `dataset` (`eval` on datasets);
//! 3. `ingest` (live sources behind the `ingest::Sink` trait);
//! 4. `engine` (routing, evaluation, state machines; transitions to an `engine::Notifier`);
//! 5. `output` (`/metrics`, webhook delivery);
//! 6. shell: `http` (server, routes, auth, TLS), `app` (composition root).

pub mod time;
pub mod labels;
pub mod telemetry;
pub mod net;
pub mod store;
pub mod logging;
pub mod cluster;
pub mod memory;

pub mod formats;
pub mod detect;
pub mod window;

pub mod config;
pub mod dataset;

pub mod ingest;

pub mod engine;

pub mod output;

pub mod http;
pub mod app;
