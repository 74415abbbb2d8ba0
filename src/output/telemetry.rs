//! The service's own counters and gauges (not rule gauges): shared by sources, engine and webhook sender.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;

/// Counters keyed by a bounded set of label values (sources, reasons, groups, webhook names
/// from the config): never by request data.
#[derive(Debug, Default)]
pub struct Telemetry {
    pub samples_received: CounterVec,
    pub samples_rejected: CounterVec,
    /// Keyed by (webhook, outcome) with outcome "success" | "failure".
    pub webhook_requests: CounterVec2,
    /// Deliveries waiting or retrying.
    pub webhook_queue_length: AtomicI64,
    /// Keyed by group.
    pub rule_evaluations: CounterVec,
    pub rule_evaluation_failures: CounterVec,
    /// 1 when the last reload worked, 0 when it failed.
    pub config_last_reload_successful: AtomicI64,
    /// Unix seconds of the last successful (re)load.
    pub config_last_reload_success_timestamp: AtomicI64,
    /// Unix milliseconds of the last successful flush of state to the store.
    pub storage_last_flush_timestamp: AtomicI64,
    /// Failed query-source requests (errors, timeouts, bad answers), keyed by source name.
    pub query_failures: CounterVec,
    /// Health of each running query source (last success, last error), for a status route.
    pub query_sources: crate::ingest::query::SourceStatuses,
    /// Failed scrapes (connection errors, timeouts, non-2xx, bad bodies), keyed by job name.
    pub scrape_failures: CounterVec,
}

/// A counter family with one label.
#[derive(Debug, Default)]
pub struct CounterVec(Mutex<BTreeMap<String, f64>>);

impl CounterVec {
    pub fn add(&self, label: &str, n: f64) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match map.get_mut(label) {
            Some(v) => *v += n,
            None => {
                map.insert(label.to_string(), n);
            }
        }
    }
    /// Make the series exist at 0 so `rate()` works from the first scrape.
    pub fn touch(&self, label: &str) {
        self.add(label, 0.0);
    }
    pub fn get(&self, label: &str) -> f64 {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.get(label).copied().unwrap_or(0.0)
    }
    pub fn snapshot(&self) -> Vec<(String, f64)> {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.iter().map(|(k, v)| (k.clone(), *v)).collect()
    }
}

/// A counter family with two labels.
#[derive(Debug, Default)]
pub struct CounterVec2(Mutex<BTreeMap<(String, String), f64>>);

impl CounterVec2 {
    pub fn add(&self, a: &str, b: &str, n: f64) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *map.entry((a.to_string(), b.to_string())).or_insert(0.0) += n;
    }
    pub fn get(&self, a: &str, b: &str) -> f64 {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.get(&(a.to_string(), b.to_string()))
            .copied()
            .unwrap_or(0.0)
    }
    pub fn snapshot(&self) -> Vec<((String, String), f64)> {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.iter().map(|(k, v)| (k.clone(), *v)).collect()
    }
}

impl Telemetry {
    pub fn queue_len(&self) -> i64 {
        self.webhook_queue_length.load(Ordering::Relaxed)
    }
}
