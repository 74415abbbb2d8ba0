//! The service's own counters and gauges (not rule gauges): shared by sources, engine and webhook sender.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Mutex, MutexGuard};

/// Counters keyed by a bounded set of label values (sources, reasons, groups, webhook names
/// from the config): never by request data.
#[derive(Debug, Default)]
pub struct Telemetry {
    pub samples_received: CounterVec,
    /// `driftgauge_samples_rejected_total{reason}`, in sample values, from every source:
    /// values skipped from what was otherwise taken (stale markers, NaN and infinities,
    /// native histograms, a series repeated in one scrape), and the values of a refused push,
    /// remote write request, scrape or query answer whose body could be decoded, under the
    /// reason it was refused for.
    pub samples_rejected: CounterVec,
    /// Values of series no rule selects (dropped, never held), keyed by source.
    pub samples_unselected: CounterVec,
    /// `driftgauge_requests_rejected_total{reason}`, in requests: every refused push or
    /// remote write request counts here once (400, 413, 429), whether or not its values are
    /// known. A request refused before its values could be read (413 `too_large`, an
    /// unreadable body `bad_body`) counts only here; one that was decoded also counts its
    /// values in `samples_rejected`, under the same reason.
    pub requests_rejected: CounterVec,
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
    /// True while state can be persisted; false from a failed store write until one succeeds.
    pub storage_healthy: Healthy,
    /// Failed query-source requests (errors, timeouts, bad answers), keyed by source name.
    pub query_failures: CounterVec,
    /// Health of each running query source (last success, last error), for a status route.
    pub query_sources: SourceStatuses,
    /// Failed scrapes (connection errors, timeouts, non-2xx, bad bodies), keyed by job name.
    pub scrape_failures: CounterVec,
    /// Elections of the remote write HA tracker, keyed by cluster (as many as
    /// `remote_write_receiver.ha_max_clusters` at most).
    pub ha_elected_replica_changes: CounterVec,
}

/// A health flag that starts healthy.
#[derive(Debug)]
pub struct Healthy(std::sync::atomic::AtomicBool);

impl Default for Healthy {
    fn default() -> Self {
        Healthy(std::sync::atomic::AtomicBool::new(true))
    }
}

impl Healthy {
    pub fn get(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
    pub fn set(&self, healthy: bool) {
        self.0.store(healthy, Ordering::Release);
    }
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

/// Health of every running query source, for a status route: kept in
/// `Telemetry::query_sources`.
#[derive(Debug, Default)]
pub struct SourceStatuses(Mutex<BTreeMap<String, SourceStatus>>);

#[derive(Debug, Clone, Default, PartialEq)]
pub struct SourceStatus {
    pub url: String,
    /// By `record`.
    pub queries: BTreeMap<String, QueryStatus>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueryStatus {
    pub expr: String,
    /// Unix ms of the last answer that was used.
    pub last_success_ms: Option<i64>,
    /// Series in that answer.
    pub last_series: usize,
    /// Unix ms and message of the last failure (kept after later successes).
    pub last_error: Option<(i64, String)>,
    pub failures: u64,
    /// Samples taken from the last successful warm-up, and when.
    pub warmed: Option<(i64, usize)>,
}

impl SourceStatuses {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, SourceStatus>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A source starts: its queries (record, expr) with no answer yet.
    pub fn register<'a>(
        &self,
        name: &str,
        url: &str,
        queries: impl Iterator<Item = (&'a str, &'a str)>,
    ) {
        let status = SourceStatus {
            url: url.to_string(),
            queries: queries
                .map(|(record, expr)| {
                    (
                        record.to_string(),
                        QueryStatus {
                            expr: expr.to_string(),
                            ..QueryStatus::default()
                        },
                    )
                })
                .collect(),
        };
        self.lock().insert(name.to_string(), status);
    }

    pub fn remove(&self, source: &str) {
        self.lock().remove(source);
    }

    pub fn update(&self, source: &str, record: &str, f: impl FnOnce(&mut QueryStatus)) {
        if let Some(q) = self
            .lock()
            .get_mut(source)
            .and_then(|s| s.queries.get_mut(record))
        {
            f(q);
        }
    }

    /// A copy of every source's status, by source name.
    pub fn snapshot(&self) -> BTreeMap<String, SourceStatus> {
        self.lock().clone()
    }

    /// `[{"name","url","queries":[{"record","expr","health","last_success","last_series",
    /// "last_error","last_error_at","failures","warmed_samples","warmed_at"}]}]`, times as
    /// RFC 3339; `health` is `ok`, `err` or `unknown` as in Prometheus's `/api/v1/targets`.
    pub fn to_json(&self) -> serde_json::Value {
        let sources: Vec<serde_json::Value> = self
            .snapshot()
            .into_iter()
            .map(|(name, s)| {
                let queries: Vec<serde_json::Value> = s
                    .queries
                    .into_iter()
                    .map(|(record, q)| {
                        let health = match (q.last_success_ms, &q.last_error) {
                            (None, None) => "unknown",
                            (Some(ok), Some((err, _))) if ok > *err => "ok",
                            (_, Some(_)) => "err",
                            (Some(_), None) => "ok",
                        };
                        serde_json::json!({
                            "record": record,
                            "expr": q.expr,
                            "health": health,
                            "last_success": q.last_success_ms.map(crate::time::rfc3339),
                            "last_series": q.last_series,
                            "last_error": q.last_error.as_ref().map(|(_, m)| m),
                            "last_error_at": q.last_error.as_ref().map(|(t, _)| crate::time::rfc3339(*t)),
                            "failures": q.failures,
                            "warmed_samples": q.warmed.map(|(_, n)| n),
                            "warmed_at": q.warmed.map(|(t, _)| crate::time::rfc3339(t)),
                        })
                    })
                    .collect();
                serde_json::json!({"name": name, "url": s.url, "queries": queries})
            })
            .collect();
        serde_json::Value::Array(sources)
    }
}

impl Telemetry {
    pub fn queue_len(&self) -> i64 {
        self.webhook_queue_length.load(Ordering::Relaxed)
    }
}
