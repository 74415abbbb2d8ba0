//! Outputs: `/metrics` exposition, webhook delivery, the service's own telemetry.

pub mod exposition;
pub mod metrics;
pub mod telemetry;
pub mod webhook;
