//! Outputs: `/metrics` exposition, webhook delivery, the service's own telemetry.

pub mod telemetry;
