//! Outputs: `/metrics` rendered from the engine's state, and webhook delivery (the engine's
//! `Notifier`).

pub mod metrics;
pub mod webhook;
