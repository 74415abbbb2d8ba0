//! `query_sources`: reads any Prometheus-compatible HTTP API (Prometheus, Thanos, Mimir,
//! VictoriaMetrics) on an interval and turns each query's instant result into samples.
//!
//! Each source runs on its own task. Every `interval` each query is sent as
//! `GET {url}/api/v1/query?query=<expr>&timeout=<timeout>` with the source's headers (e.g.
//! Mimir's `X-Scope-OrgID`); a vector result gives one sample per series, named `record`, with
//! the series' labels (`__name__` and other `__` labels dropped); a scalar result gives one
//! sample of `record` without labels. `NaN` and infinite values are skipped. Each query's
//! result is handed to [`Engine::ingest`] as one batch (source `"query"`).
//!
//! Errors (connection errors, timeouts, non-2xx answers, `"status":"error"`, undecodable or
//! oversized bodies, string or matrix results, two series with the same labels once the
//! metric name is dropped) fail that query for that tick: counted in
//! `driftgauge_query_failures_total{source}`, logged, recorded in the source's status; never a
//! crash, and the other queries of the tick go on.
//!
//! ## Warm-up
//!
//! So a restart does not wait for a new reference, a query is *warmed* instead of queried
//! when every rule that can take its `record` is still empty (no series at all) — at start-up,
//! after a reload (a rule was added), and again after a failed warm-up:
//!
//! - an `expr` that is a plain vector selector (`metric{label="v"}`) is read as the raw
//!   samples of the last hour, `/api/v1/query?query=<expr>[1h]`;
//! - any other `expr` (functions, operators, aggregations) cannot be range-selected, so it is
//!   evaluated over the last hour with `/api/v1/query_range`, one point per `interval` (the
//!   samples the source would have recorded had it been running).
//!
//! Warm-up samples enter the windows in time order with their own timestamps (so `duration:`
//! windows hold what they would have), and the warm-up replaces that tick's instant query.
//! A query is not warmed when any rule that can take its record already holds series: the
//! engine routes a sample to every matching rule, and warming would feed those rules twice.
//! A warm-up that fails is retried on the next ticks ([`WARM_UP_ATTEMPTS`] in all); then the
//! source goes on with instant queries alone.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::MissedTickBehavior;

use super::names::is_valid_label_name;
use super::push::{MAX_LABELS, MAX_LABEL_VALUE_BYTES};
use super::SeriesSamples;
use crate::engine::scheduler::stopped;
use crate::engine::{now_ms, rfc3339, Engine, Generation};
use crate::rules::model::{Labels, Query, QuerySource};
use crate::rules::selector::Selector;

/// The `source` label of `driftgauge_samples_received_total` for samples read by queries.
pub const SOURCE_LABEL: &str = "query";
/// How far back a warm-up reads.
pub const WARM_UP_RANGE: Duration = Duration::from_secs(3600);
/// Warm-up attempts of one query before it goes on with instant queries alone.
pub const WARM_UP_ATTEMPTS: u32 = 3;
/// A response body larger than this fails the query.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;
/// Prometheus refuses `query_range` calls of more than 11,000 points per series.
const MAX_RANGE_POINTS: f64 = 11_000.0;
/// How often [`spawn_configured_query_sources`] looks for a reload.
const CONFIG_POLL: Duration = Duration::from_secs(1);

/// Why one request of a query source failed.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("bad request URL {url:?}: {reason}")]
    Url { url: String, reason: String },
    #[error("HTTP client: {0}")]
    Client(String),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("request failed: {0}")]
    Request(String),
    #[error("response body over {0} bytes")]
    TooLarge(usize),
    #[error("HTTP {status}: {body}")]
    Status { status: u16, body: String },
    #[error("query failed ({error_type}): {error}")]
    Api { error_type: String, error: String },
    #[error("undecodable response: {0}")]
    Decode(String),
    #[error("result type {0:?} is not supported (want vector or scalar)")]
    ResultType(&'static str),
    #[error("{0}")]
    Series(String),
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

    fn register(&self, source: &QuerySource) {
        let status = SourceStatus {
            url: source.url.clone(),
            queries: source
                .queries
                .iter()
                .map(|q| {
                    (
                        q.record.clone(),
                        QueryStatus {
                            expr: q.expr.clone(),
                            ..QueryStatus::default()
                        },
                    )
                })
                .collect(),
        };
        self.lock().insert(source.name.clone(), status);
    }

    fn remove(&self, source: &str) {
        self.lock().remove(source);
    }

    fn update(&self, source: &str, record: &str, f: impl FnOnce(&mut QueryStatus)) {
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
                        json!({
                            "record": record,
                            "expr": q.expr,
                            "health": health,
                            "last_success": q.last_success_ms.map(rfc3339),
                            "last_series": q.last_series,
                            "last_error": q.last_error.as_ref().map(|(_, m)| m),
                            "last_error_at": q.last_error.as_ref().map(|(t, _)| rfc3339(*t)),
                            "failures": q.failures,
                            "warmed_samples": q.warmed.map(|(_, n)| n),
                            "warmed_at": q.warmed.map(|(t, _)| rfc3339(t)),
                        })
                    })
                    .collect();
                json!({"name": name, "url": s.url, "queries": queries})
            })
            .collect();
        serde_json::Value::Array(sources)
    }
}

/// Runs `sources` (each on its own task) until `stop` turns true. The list is fixed: for
/// sources that follow reloads of the config, see [`spawn_configured_query_sources`].
pub fn spawn_query_sources(
    engine: Arc<Engine>,
    sources: Vec<QuerySource>,
    stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tasks = JoinSet::new();
        for source in sources {
            tasks.spawn(run_source(Arc::clone(&engine), source, stop.clone()));
        }
        while tasks.join_next().await.is_some() {}
    })
}

/// Runs the `query_sources` of the engine's current config until `stop` turns true, and
/// follows reloads: after each new generation, sources whose definition changed are
/// restarted, removed ones stopped and added ones started (unchanged ones run on).
pub fn spawn_configured_query_sources(
    engine: Arc<Engine>,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut running: BTreeMap<String, (QuerySource, JoinHandle<()>)> = BTreeMap::new();
        let mut seen_generation = None;
        let mut ticker = tokio::time::interval(CONFIG_POLL);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = stopped(&mut stop) => break,
            }
            let generation = engine.current();
            if seen_generation == Some(generation.id) {
                continue;
            }
            seen_generation = Some(generation.id);
            let wanted: BTreeMap<&str, &QuerySource> = generation
                .config
                .query_sources
                .iter()
                .map(|s| (s.name.as_str(), s))
                .collect();
            let outdated: Vec<String> = running
                .iter()
                .filter(|(name, (source, _))| wanted.get(name.as_str()) != Some(&source))
                .map(|(name, _)| name.clone())
                .collect();
            for name in outdated {
                if let Some((_, task)) = running.remove(&name) {
                    task.abort();
                    let _ = task.await;
                    engine.telemetry.query_sources.remove(&name);
                    tracing::info!(source = %name, "query source stopped (config changed)");
                }
            }
            for (name, source) in wanted {
                if !running.contains_key(name) {
                    let task = tokio::spawn(run_source(
                        Arc::clone(&engine),
                        source.clone(),
                        stop.clone(),
                    ));
                    running.insert(name.to_string(), (source.clone(), task));
                }
            }
        }
        for (_, (_, task)) in running {
            let _ = task.await;
        }
    })
}

/// What a source task needs for its requests.
struct SourceCtx {
    engine: Arc<Engine>,
    source: QuerySource,
    /// `url` without a trailing `/`.
    base: String,
    client: Result<reqwest::Client, String>,
}

/// One source: a tick every `interval` (the first at once), its queries run concurrently.
async fn run_source(engine: Arc<Engine>, source: QuerySource, mut stop: watch::Receiver<bool>) {
    let telemetry = &engine.telemetry;
    telemetry.query_failures.touch(&source.name);
    telemetry.samples_received.touch(SOURCE_LABEL);
    telemetry.query_sources.register(&source);
    let ctx = Arc::new(SourceCtx {
        base: source.url.trim_end_matches('/').to_string(),
        client: client(&source),
        engine: Arc::clone(&engine),
        source,
    });
    if let Err(e) = &ctx.client {
        tracing::error!(source = %ctx.source.name, error = %e, "query source cannot build its HTTP client");
    }
    tracing::info!(
        source = %ctx.source.name,
        url = %ctx.source.url,
        queries = ctx.source.queries.len(),
        interval = ?ctx.source.interval,
        "query source started"
    );
    let n = ctx.source.queries.len();
    // Warm-up attempts left per query, armed by a new generation.
    let mut warm_attempts = vec![0u32; n];
    let mut seen_generation = None;
    let mut ticker = tokio::time::interval(ctx.source.interval.max(Duration::from_millis(10)));
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stopped(&mut stop) => return,
        }
        let generation = engine.current();
        if seen_generation != Some(generation.id) {
            seen_generation = Some(generation.id);
            warm_attempts.iter_mut().for_each(|a| *a = WARM_UP_ATTEMPTS);
        }
        let mut tasks = JoinSet::new();
        for (i, q) in ctx.source.queries.iter().enumerate() {
            let warm = warm_attempts[i] > 0 && wants_warm_up(&generation, &q.record);
            if !warm {
                warm_attempts[i] = 0;
            }
            let ctx = Arc::clone(&ctx);
            tasks.spawn(async move { (i, ctx.tick(i, warm).await) });
        }
        let collect = async {
            while let Some(joined) = tasks.join_next().await {
                match joined {
                    Ok((i, TickOutcome::Warmed | TickOutcome::Queried)) => warm_attempts[i] = 0,
                    Ok((i, TickOutcome::WarmUpFailed)) => {
                        warm_attempts[i] = warm_attempts[i].saturating_sub(1)
                    }
                    Err(e) => tracing::error!(error = %e, "query task panicked"),
                }
            }
        };
        tokio::select! {
            _ = collect => {}
            _ = stopped(&mut stop) => return,
        }
    }
}

enum TickOutcome {
    Warmed,
    /// The warm-up failed and no instant query was sent, so the windows stay empty for a
    /// retry on the next tick (instant queries resume once the attempts are used up).
    WarmUpFailed,
    Queried,
}

impl SourceCtx {
    fn name(&self) -> &str {
        &self.source.name
    }

    async fn tick(&self, i: usize, warm: bool) -> TickOutcome {
        let Some(q) = self.source.queries.get(i) else {
            return TickOutcome::Queried;
        };
        if warm {
            match self.warm_up(q).await {
                Ok(()) => return TickOutcome::Warmed,
                Err(e) => {
                    self.failed(q, "warm-up", &e);
                    return TickOutcome::WarmUpFailed;
                }
            }
        }
        let started = now_ms();
        match self.instant(q).await {
            Ok(batch) => {
                let series = batch.len();
                self.ingest(q, batch, now_ms()).await;
                self.status(q, |s| {
                    s.last_success_ms = Some(started);
                    s.last_series = series;
                });
            }
            Err(e) => self.failed(q, "query", &e),
        }
        TickOutcome::Queried
    }

    fn failed(&self, q: &Query, what: &str, e: &QueryError) {
        let telemetry = &self.engine.telemetry;
        telemetry.query_failures.add(self.name(), 1.0);
        let message = format!("{what}: {e}");
        tracing::warn!(
            source = %self.name(),
            record = %q.record,
            expr = %q.expr,
            error = %message,
            "query source request failed"
        );
        self.status(q, |s| {
            s.failures += 1;
            s.last_error = Some((now_ms(), message));
        });
    }

    fn status(&self, q: &Query, f: impl FnOnce(&mut QueryStatus)) {
        self.engine
            .telemetry
            .query_sources
            .update(self.name(), &q.record, f);
    }

    /// Feeds `batch` to the engine on the blocking pool (ingestion takes locks).
    async fn ingest(&self, q: &Query, batch: Vec<SeriesSamples>, at_ms: i64) -> bool {
        if batch.is_empty() {
            return true;
        }
        let engine = Arc::clone(&self.engine);
        let result =
            tokio::task::spawn_blocking(move || engine.ingest(&batch, SOURCE_LABEL, at_ms)).await;
        match result {
            Ok(Ok(_)) => true,
            Err(e) => {
                tracing::error!(source = %self.name(), record = %q.record, error = %e, "query result ingestion failed");
                false
            }
            Ok(Err(e)) => {
                tracing::warn!(source = %self.name(), record = %q.record, error = %e, "query result refused");
                false
            }
        }
    }

    /// The instant result of `q` as one batch.
    async fn instant(&self, q: &Query) -> Result<Vec<SeriesSamples>, QueryError> {
        let data = self
            .get("/api/v1/query", &[("query", q.expr.clone())])
            .await?;
        instant_samples(&q.record, data)
    }

    /// Reads the last [`WARM_UP_RANGE`] of `q` and feeds it in time order.
    async fn warm_up(&self, q: &Query) -> Result<(), QueryError> {
        let started = now_ms();
        let data = match warm_up_selector(&q.expr) {
            Some(selector) => {
                let expr = format!("{selector}[{}s]", WARM_UP_RANGE.as_secs());
                self.get("/api/v1/query", &[("query", expr)]).await?
            }
            None => {
                let end = started as f64 / 1000.0;
                let range = WARM_UP_RANGE.as_secs_f64();
                let step = self
                    .source
                    .interval
                    .as_secs_f64()
                    .max(range / (MAX_RANGE_POINTS - 1.0));
                // Whole milliseconds, rounded up so the point limit holds.
                let step = (step * 1000.0).ceil() / 1000.0;
                self.get(
                    "/api/v1/query_range",
                    &[
                        ("query", q.expr.clone()),
                        ("start", format!("{:.3}", end - range)),
                        ("end", format!("{end:.3}")),
                        ("step", format!("{step:.3}")),
                    ],
                )
                .await?
            }
        };
        let batches = range_batches(&q.record, data)?;
        let mut samples = 0;
        for (at_ms, batch) in &batches {
            if !self.ingest(q, batch.clone(), *at_ms).await {
                break;
            }
            samples += batch.iter().map(|s| s.values.len()).sum::<usize>();
        }
        let series = batches
            .iter()
            .flat_map(|(_, b)| b.iter().map(|s| &s.labels))
            .collect::<std::collections::BTreeSet<_>>()
            .len();
        tracing::info!(
            source = %self.name(),
            record = %q.record,
            samples,
            "query source warmed windows"
        );
        self.status(q, |s| {
            s.warmed = Some((started, samples));
            s.last_success_ms = Some(started);
            s.last_series = series;
        });
        Ok(())
    }

    /// GETs `{url}{path}?{params}&timeout=...` and returns the `data` of a successful answer.
    async fn get(&self, path: &str, params: &[(&str, String)]) -> Result<ApiData, QueryError> {
        let client = self
            .client
            .as_ref()
            .map_err(|e| QueryError::Client(e.clone()))?;
        let raw = format!("{}{path}", self.base);
        let mut url = reqwest::Url::parse(&raw).map_err(|e| QueryError::Url {
            url: raw.clone(),
            reason: e.to_string(),
        })?;
        {
            let mut pairs = url.query_pairs_mut();
            for (k, v) in params {
                pairs.append_pair(k, v);
            }
            pairs.append_pair(
                "timeout",
                &format!("{}ms", self.source.timeout.as_millis().max(1)),
            );
        }
        let timeout = self.source.timeout;
        let classify = |e: reqwest::Error| {
            if e.is_timeout() {
                QueryError::Timeout(timeout)
            } else {
                QueryError::Request(error_chain(&e))
            }
        };
        let mut response = client.get(url).send().await.map_err(classify)?;
        let status = response.status();
        if response
            .content_length()
            .is_some_and(|n| n > MAX_RESPONSE_BYTES as u64)
        {
            return Err(QueryError::TooLarge(MAX_RESPONSE_BYTES));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(classify)? {
            if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(QueryError::TooLarge(MAX_RESPONSE_BYTES));
            }
            body.extend_from_slice(&chunk);
        }
        parse_response(status.as_u16(), &body)
    }
}

/// The HTTP client of one source: its timeout and headers, no proxy from the environment,
/// redirects followed (as Prometheus's HTTP client does by default).
fn client(source: &QuerySource) -> Result<reqwest::Client, String> {
    let mut headers = HeaderMap::new();
    for (name, value) in &source.headers {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|e| format!("header name {name:?}: {e}"))?;
        let value =
            HeaderValue::from_str(value).map_err(|e| format!("header {name} value: {e}"))?;
        headers.insert(name, value);
    }
    crate::output::webhook::install_crypto_provider();
    reqwest::Client::builder()
        .user_agent(concat!("driftgauge/", env!("CARGO_PKG_VERSION")))
        .default_headers(headers)
        .timeout(source.timeout)
        .no_proxy()
        .build()
        .map_err(|e| error_chain(&e))
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// Should `record` be warmed? When at least one rule can take series of that name and every
/// such rule is still empty.
fn wants_warm_up(generation: &Generation, record: &str) -> bool {
    let mut any = false;
    for g in &generation.groups {
        for rt in &g.rules {
            if can_take(&rt.rule.selector, record) {
                if rt.series_count() > 0 {
                    return false;
                }
                any = true;
            }
        }
    }
    any
}

/// Can `selector` match some series named `record` (whatever its labels)?
fn can_take(selector: &Selector, record: &str) -> bool {
    match selector.metric_name() {
        Some(name) => name == record,
        None => selector
            .matchers()
            .iter()
            .filter(|m| m.name == "__name__")
            .all(|m| m.matches(record)),
    }
}

/// `expr` as a plain vector selector (that can be range-selected), or `None`.
fn warm_up_selector(expr: &str) -> Option<&str> {
    let expr = expr.trim();
    Selector::parse(expr).ok().map(|_| expr)
}

#[derive(Debug, Deserialize)]
struct ApiResponse {
    status: String,
    #[serde(default)]
    data: Option<ApiData>,
    #[serde(rename = "errorType", default)]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "resultType", content = "result", rename_all = "lowercase")]
enum ApiData {
    Vector(Vec<InstantSeries>),
    Matrix(Vec<RangeSeries>),
    Scalar(Point),
    String(serde::de::IgnoredAny),
}

/// `[unix seconds, "value"]`.
type Point = (f64, String);

#[derive(Debug, Deserialize)]
struct InstantSeries {
    #[serde(default)]
    metric: BTreeMap<String, String>,
    /// Absent for native histogram samples (`"histogram"`), which are skipped.
    #[serde(default)]
    value: Option<Point>,
}

#[derive(Debug, Deserialize)]
struct RangeSeries {
    #[serde(default)]
    metric: BTreeMap<String, String>,
    #[serde(default)]
    values: Vec<Point>,
}

fn parse_response(status: u16, body: &[u8]) -> Result<ApiData, QueryError> {
    let snippet = || {
        let text = String::from_utf8_lossy(body);
        let text = text.trim();
        match text.char_indices().nth(300) {
            Some((i, _)) => format!("{}...", &text[..i]),
            None => text.to_string(),
        }
    };
    match serde_json::from_slice::<ApiResponse>(body) {
        Ok(r) if r.status == "error" => Err(QueryError::Api {
            error_type: r.error_type.unwrap_or_else(|| format!("HTTP {status}")),
            error: r.error.unwrap_or_default(),
        }),
        Ok(_) if !(200..300).contains(&status) => Err(QueryError::Status {
            status,
            body: snippet(),
        }),
        Ok(ApiResponse {
            data: Some(data),
            status: s,
            ..
        }) if s == "success" => Ok(data),
        Ok(r) => Err(QueryError::Decode(format!(
            "status {:?} without data",
            r.status
        ))),
        Err(_) if !(200..300).contains(&status) => Err(QueryError::Status {
            status,
            body: snippet(),
        }),
        Err(e) => Err(QueryError::Decode(e.to_string())),
    }
}

/// A sample value as Prometheus writes it; `None` for `NaN` and infinities (skipped).
fn value(text: &str) -> Result<Option<f64>, QueryError> {
    match text {
        "NaN" | "+Inf" | "-Inf" | "Inf" => Ok(None),
        _ => match text.parse::<f64>() {
            Ok(v) if v.is_finite() => Ok(Some(v)),
            Ok(_) => Ok(None),
            Err(_) => Err(QueryError::Decode(format!("sample value {text:?}"))),
        },
    }
}

/// A result's labels for `record`: `__name__` (and any other `__` label) dropped, checked as
/// a push would be.
fn series_labels(metric: BTreeMap<String, String>) -> Result<Labels, QueryError> {
    let labels: Labels = metric
        .into_iter()
        .filter(|(k, _)| !k.starts_with("__"))
        .collect();
    if labels.len() > MAX_LABELS {
        return Err(QueryError::Series(format!(
            "a series has {} labels, over {MAX_LABELS}",
            labels.len()
        )));
    }
    for (k, v) in &labels {
        if !is_valid_label_name(k) {
            return Err(QueryError::Series(format!("invalid label name {k:?}")));
        }
        if v.len() > MAX_LABEL_VALUE_BYTES {
            return Err(QueryError::Series(format!(
                "label {k} has a value over {MAX_LABEL_VALUE_BYTES} bytes"
            )));
        }
    }
    Ok(labels)
}

fn duplicate(record: &str, labels: &Labels) -> QueryError {
    QueryError::Series(format!(
        "two result series are the same series {record}{labels:?} once the metric name is dropped"
    ))
}

/// An instant query's result as one batch of samples of `record`.
fn instant_samples(record: &str, data: ApiData) -> Result<Vec<SeriesSamples>, QueryError> {
    let sample = |labels: Labels, v: f64| SeriesSamples {
        metric: record.to_string(),
        labels,
        values: vec![v],
    };
    match data {
        ApiData::Scalar((_, text)) => Ok(value(&text)?
            .map(|v| sample(Labels::new(), v))
            .into_iter()
            .collect()),
        ApiData::Vector(result) => {
            let mut seen = std::collections::BTreeSet::new();
            let mut out = Vec::with_capacity(result.len());
            for s in result {
                let labels = series_labels(s.metric)?;
                if !seen.insert(labels.clone()) {
                    return Err(duplicate(record, &labels));
                }
                if let Some((_, text)) = s.value {
                    if let Some(v) = value(&text)? {
                        out.push(sample(labels, v));
                    }
                }
            }
            Ok(out)
        }
        ApiData::Matrix(_) => Err(QueryError::ResultType("matrix")),
        ApiData::String(_) => Err(QueryError::ResultType("string")),
    }
}

/// A range result (`metric[1h]` or `query_range`) as batches of samples of `record`, one
/// batch per timestamp (Unix ms), oldest first.
fn range_batches(
    record: &str,
    data: ApiData,
) -> Result<Vec<(i64, Vec<SeriesSamples>)>, QueryError> {
    let series = match data {
        ApiData::Matrix(series) => series,
        ApiData::Vector(_) => return Err(QueryError::ResultType("vector")),
        ApiData::Scalar(_) => return Err(QueryError::ResultType("scalar")),
        ApiData::String(_) => return Err(QueryError::ResultType("string")),
    };
    let mut seen = std::collections::BTreeSet::new();
    let mut by_time: BTreeMap<i64, Vec<SeriesSamples>> = BTreeMap::new();
    for s in series {
        let labels = series_labels(s.metric)?;
        if !seen.insert(labels.clone()) {
            return Err(duplicate(record, &labels));
        }
        for (t, text) in s.values {
            let Some(v) = value(&text)? else {
                continue;
            };
            if !t.is_finite() {
                return Err(QueryError::Decode(format!("sample timestamp {t}")));
            }
            by_time
                .entry((t * 1000.0).round() as i64)
                .or_default()
                .push(SeriesSamples {
                    metric: record.to_string(),
                    labels: labels.clone(),
                    values: vec![v],
                });
        }
    }
    Ok(by_time.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(json: &str) -> ApiData {
        parse_response(200, json.as_bytes()).expect("success")
    }

    #[test]
    fn vector_results_become_samples_of_the_record() {
        let d = data(
            r#"{"status":"success","data":{"resultType":"vector","result":[
                {"metric":{"__name__":"up","job":"a","instance":"x:1"},"value":[1700000000.5,"1.5"]},
                {"metric":{"__name__":"up","job":"b"},"value":[1700000000.5,"NaN"]},
                {"metric":{"job":"c"},"value":[1700000000.5,"+Inf"]},
                {"metric":{"job":"d"},"value":[1700000000.5,"-Inf"]},
                {"metric":{"job":"e"},"value":[1700000000.5,"-2e-3"]}]}}"#,
        );
        let batch = instant_samples("up_copy", d).expect("samples");
        assert_eq!(batch.len(), 2);
        assert_eq!(batch[0].metric, "up_copy");
        assert_eq!(
            batch[0].labels,
            Labels::from([
                ("instance".to_string(), "x:1".to_string()),
                ("job".to_string(), "a".to_string())
            ])
        );
        assert_eq!(batch[0].values, vec![1.5]);
        assert_eq!(batch[1].values, vec![-0.002]);
    }

    #[test]
    fn scalar_results_have_no_labels() {
        let batch = instant_samples(
            "s",
            data(r#"{"status":"success","data":{"resultType":"scalar","result":[1,"42"]}}"#),
        )
        .expect("samples");
        assert_eq!(batch.len(), 1);
        assert!(batch[0].labels.is_empty());
        assert_eq!(batch[0].values, vec![42.0]);
        let nan = instant_samples(
            "s",
            data(r#"{"status":"success","data":{"resultType":"scalar","result":[1,"NaN"]}}"#),
        )
        .expect("samples");
        assert!(nan.is_empty());
    }

    #[test]
    fn errors_are_named() {
        let e = parse_response(
            400,
            br#"{"status":"error","errorType":"bad_data","error":"parse error at char 3"}"#,
        )
        .expect_err("error");
        assert_eq!(
            e.to_string(),
            "query failed (bad_data): parse error at char 3"
        );
        let e = parse_response(502, b"<html>bad gateway</html>").expect_err("error");
        assert_eq!(e.to_string(), "HTTP 502: <html>bad gateway</html>");
        let e = parse_response(200, b"{").expect_err("error");
        assert!(matches!(e, QueryError::Decode(_)), "{e}");
        let e = parse_response(200, br#"{"status":"success"}"#).expect_err("error");
        assert!(matches!(e, QueryError::Decode(_)), "{e}");
        let s = data(r#"{"status":"success","data":{"resultType":"string","result":[1,"x"]}}"#);
        assert!(matches!(
            instant_samples("r", s),
            Err(QueryError::ResultType("string"))
        ));
        let bad = data(
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"abc"]}]}}"#,
        );
        assert!(matches!(
            instant_samples("r", bad),
            Err(QueryError::Decode(_))
        ));
        let dup = data(
            r#"{"status":"success","data":{"resultType":"vector","result":[
                {"metric":{"__name__":"a","x":"1"},"value":[1,"1"]},
                {"metric":{"__name__":"b","x":"1"},"value":[1,"2"]}]}}"#,
        );
        assert!(matches!(
            instant_samples("r", dup),
            Err(QueryError::Series(_))
        ));
        let bad_label = data(
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"a-b":"1"},"value":[1,"1"]}]}}"#,
        );
        assert!(matches!(
            instant_samples("r", bad_label),
            Err(QueryError::Series(_))
        ));
    }

    #[test]
    fn range_results_are_batched_by_time_in_order() {
        let d = data(
            r#"{"status":"success","data":{"resultType":"matrix","result":[
                {"metric":{"__name__":"m","k":"a"},"values":[[10,"1"],[20,"2"],[30,"NaN"]]},
                {"metric":{"__name__":"m","k":"b"},"values":[[15,"5"],[20,"6"]]}]}}"#,
        );
        let batches = range_batches("r", d).expect("batches");
        let flat: Vec<(i64, String, f64)> = batches
            .iter()
            .flat_map(|(t, b)| {
                b.iter()
                    .map(move |s| (*t, s.labels["k"].clone(), s.values[0]))
            })
            .collect();
        assert_eq!(
            flat,
            vec![
                (10_000, "a".to_string(), 1.0),
                (15_000, "b".to_string(), 5.0),
                (20_000, "a".to_string(), 2.0),
                (20_000, "b".to_string(), 6.0),
            ]
        );
        let v = data(r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#);
        assert!(matches!(
            range_batches("r", v),
            Err(QueryError::ResultType("vector"))
        ));
    }

    #[test]
    fn only_plain_selectors_are_range_selected() {
        assert_eq!(warm_up_selector(r#" up{job="x"} "#), Some(r#"up{job="x"}"#));
        assert_eq!(
            warm_up_selector(r#"{__name__="up"}"#),
            Some(r#"{__name__="up"}"#)
        );
        assert_eq!(warm_up_selector("avg_over_time(up[5m])"), None);
        assert_eq!(warm_up_selector("up * 2"), None);
        assert_eq!(warm_up_selector("sum by (job) (up)"), None);
        assert_eq!(warm_up_selector("up[5m]"), None);
    }

    #[test]
    fn rules_that_can_take_a_record() {
        let s = |t: &str| Selector::parse(t).expect("selector");
        assert!(can_take(&s(r#"up_copy{job="x"}"#), "up_copy"));
        assert!(!can_take(&s("other"), "up_copy"));
        assert!(can_take(&s(r#"{__name__=~"up_.*"}"#), "up_copy"));
        assert!(!can_take(&s(r#"{__name__=~"down_.*"}"#), "up_copy"));
        assert!(can_take(&s(r#"{job="x"}"#), "up_copy"));
    }

    /// Real HTTP on loopback: a Prometheus-API fixture answering by a function of the request.
    mod fixture {
        use std::convert::Infallible;
        use std::net::SocketAddr;
        use std::sync::{Arc, Mutex};
        use std::time::Duration;

        use http_body_util::Full;
        use hyper::body::Bytes;
        use hyper::server::conn::http1;
        use hyper::service::service_fn;
        use hyper_util::rt::TokioIo;

        #[derive(Debug, Clone)]
        pub struct Seen {
            pub path: String,
            pub params: Vec<(String, String)>,
            pub headers: hyper::HeaderMap,
        }

        impl Seen {
            pub fn param(&self, k: &str) -> Option<&str> {
                self.params
                    .iter()
                    .find(|(n, _)| n == k)
                    .map(|(_, v)| v.as_str())
            }
        }

        pub struct Answer {
            pub status: u16,
            pub body: String,
            pub delay: Duration,
        }

        pub fn ok(body: &str) -> Answer {
            Answer {
                status: 200,
                body: body.to_string(),
                delay: Duration::ZERO,
            }
        }

        pub struct Fixture {
            pub addr: SocketAddr,
            pub seen: Arc<Mutex<Vec<Seen>>>,
            task: tokio::task::JoinHandle<()>,
        }

        impl Drop for Fixture {
            fn drop(&mut self) {
                self.task.abort();
            }
        }

        impl Fixture {
            pub fn url(&self, path: &str) -> String {
                format!("http://{}{path}", self.addr)
            }
            pub fn seen(&self) -> Vec<Seen> {
                self.seen.lock().expect("lock").clone()
            }
        }

        pub async fn start(
            answer: impl Fn(usize, &Seen) -> Answer + Send + Sync + 'static,
        ) -> Fixture {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let addr = listener.local_addr().expect("addr");
            let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
            let answer = Arc::new(answer);
            let log = Arc::clone(&seen);
            let task = tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    let answer = Arc::clone(&answer);
                    let log = Arc::clone(&log);
                    tokio::spawn(async move {
                        let service = service_fn(move |req: hyper::Request<_>| {
                            let uri = format!("http://x{}", req.uri());
                            let url = reqwest::Url::parse(&uri).expect("uri");
                            let seen = Seen {
                                path: url.path().to_string(),
                                params: url.query_pairs().into_owned().collect(),
                                headers: req.headers().clone(),
                            };
                            let n = {
                                let mut log = log.lock().expect("lock");
                                log.push(seen.clone());
                                log.len() - 1
                            };
                            let a = answer(n, &seen);
                            async move {
                                if !a.delay.is_zero() {
                                    tokio::time::sleep(a.delay).await;
                                }
                                let mut r = hyper::Response::new(Full::new(Bytes::from(a.body)));
                                *r.status_mut() =
                                    hyper::StatusCode::from_u16(a.status).expect("status");
                                Ok::<_, Infallible>(r)
                            }
                        });
                        let _ = http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
            });
            Fixture { addr, seen, task }
        }
    }

    use std::time::Instant;

    use crate::output::telemetry::Telemetry;
    use crate::output::webhook::WebhookSender;

    const WAIT: Duration = Duration::from_secs(10);

    /// An engine loaded from a config and one rule file written to a temp dir.
    fn engine(dir: &std::path::Path, config: &str, rules: &str) -> Arc<Engine> {
        std::fs::write(dir.join("driftgauge.yml"), config).expect("config");
        std::fs::write(dir.join("rules.yml"), rules).expect("rules");
        let loaded = crate::rules::load(Some(&dir.join("driftgauge.yml"))).expect("load");
        let telemetry = Arc::new(Telemetry::default());
        let sender = WebhookSender::new(BTreeMap::new(), Arc::clone(&telemetry)).expect("sender");
        Arc::new(Engine::new(loaded.config, loaded.rules, telemetry, sender))
    }

    fn reload(engine: &Engine, dir: &std::path::Path, rules: &str) {
        std::fs::write(dir.join("rules.yml"), rules).expect("rules");
        let loaded = crate::rules::load(Some(&dir.join("driftgauge.yml"))).expect("load");
        engine.apply(loaded.config, loaded.rules);
    }

    async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + WAIT;
        while !cond() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// (rule name, reference samples, current samples, ema) of every evaluated series.
    fn evaluate(engine: &Engine) -> Vec<(String, usize, usize, Option<f64>)> {
        let generation = engine.current();
        let mut out = Vec::new();
        for (gi, g) in generation.groups.iter().enumerate() {
            engine.evaluate_group(&generation, gi, now_ms());
            for s in &g.output().series {
                out.push((
                    g.rules[s.rule].rule.name.clone(),
                    s.reference_samples,
                    s.current_samples,
                    s.ema,
                ));
            }
        }
        out
    }

    fn vector(value: &str) -> String {
        format!(
            r#"{{"status":"success","data":{{"resultType":"vector","result":[{{"metric":{{"__name__":"x","model":"fraud"}},"value":[1700000000,"{value}"]}}]}}}}"#
        )
    }

    const RULES: &str = r#"
groups:
  - name: g
    interval: 1h
    rules:
      - name: acc_ks
        detector: ks
        series: 'acc'
        reference: {first: 3}
        current: {last: 100}
        min_samples: 1
      - name: acc_ema
        detector: ema
        series: 'acc{model="fraud"}'
        smoothing: 1
        below: 0.5
"#;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn warm_up_by_query_range_then_instant_queries_with_headers() {
        let fx = fixture::start(|_, seen| {
            if seen.path.ends_with("/query_range") {
                fixture::ok(
                    r#"{"status":"success","data":{"resultType":"matrix","result":[
                    {"metric":{"model":"fraud"},"values":[[1700000000,"0.9"],[1700000010,"0.8"],[1700000020,"0.7"],[1700000030,"0.6"]]}]}}"#,
                )
            } else {
                fixture::ok(&vector("0.25"))
            }
        })
        .await;
        let dir = tempfile::tempdir().expect("dir");
        let config = format!(
            r#"
rule_files: [rules.yml]
query_sources:
  - name: mimir
    url: {}/
    interval: 50ms
    timeout: 2s
    headers: {{X-Scope-OrgID: team-a}}
    queries:
      - record: acc
        expr: 'avg_over_time(model_accuracy{{model="fraud"}}[5m])'
"#,
            fx.url("/prometheus")
        );
        let engine = engine(dir.path(), &config, RULES);
        let (stop_tx, stop) = watch::channel(false);
        let sources = engine.current().config.query_sources.clone();
        let task = spawn_query_sources(Arc::clone(&engine), sources, stop);
        // A tick starts after the previous one has ingested its answers: with three instant
        // queries sent, the first two are in the windows.
        wait_until("three instant queries after the warm-up", || {
            fx.seen()
                .iter()
                .filter(|s| s.path == "/prometheus/api/v1/query")
                .count()
                >= 3
        })
        .await;
        let seen = fx.seen();
        let first = &seen[0];
        assert_eq!(first.path, "/prometheus/api/v1/query_range");
        assert_eq!(
            first.param("query"),
            Some(r#"avg_over_time(model_accuracy{model="fraud"}[5m])"#)
        );
        let start: f64 = first.param("start").expect("start").parse().expect("f64");
        let end: f64 = first.param("end").expect("end").parse().expect("f64");
        let step: f64 = first.param("step").expect("step").parse().expect("f64");
        assert!((end - start - 3600.0).abs() < 0.01, "{first:?}");
        assert!((3600.0 / step) <= MAX_RANGE_POINTS, "{first:?}");
        for s in &seen {
            assert_eq!(s.param("timeout"), Some("2000ms"), "{s:?}");
            assert_eq!(
                s.headers.get("x-scope-orgid").map(|v| v.as_bytes()),
                Some(&b"team-a"[..]),
                "{s:?}"
            );
        }
        let evaluated = evaluate(&engine);
        // The warm-up fed 4 samples in time order: 3 frozen as the reference, then live ones.
        let ks = evaluated.iter().find(|e| e.0 == "acc_ks").expect("ks");
        assert_eq!(ks.1, 3, "{evaluated:?}");
        assert!(ks.2 >= 2, "{evaluated:?}");
        let ema = evaluated.iter().find(|e| e.0 == "acc_ema").expect("ema");
        assert_eq!(ema.3, Some(0.25), "{evaluated:?}");
        let status = engine.telemetry.query_sources.snapshot();
        let q = &status["mimir"].queries["acc"];
        assert_eq!(q.warmed.map(|(_, n)| n), Some(4));
        assert_eq!(q.last_series, 1);
        assert!(q.last_error.is_none(), "{q:?}");
        assert_eq!(engine.telemetry.query_failures.get("mimir"), 0.0);
        let _ = stop_tx.send(true);
        tokio::time::timeout(WAIT, task)
            .await
            .expect("stops")
            .expect("join");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn errors_and_timeouts_are_counted_and_the_source_goes_on() {
        let fx = fixture::start(|n, _| match n {
            0 => fixture::Answer {
                status: 503,
                body: "unavailable".into(),
                delay: Duration::ZERO,
            },
            1 => fixture::Answer {
                status: 200,
                body: vector("1"),
                delay: Duration::from_secs(3),
            },
            2 => fixture::Answer {
                status: 400,
                body: r#"{"status":"error","errorType":"bad_data","error":"parse error"}"#.into(),
                delay: Duration::ZERO,
            },
            3 => fixture::ok("not json"),
            _ => fixture::ok(&vector("0.75")),
        })
        .await;
        let dir = tempfile::tempdir().expect("dir");
        let config = format!(
            r#"
rule_files: [rules.yml]
query_sources:
  - name: flaky
    url: {}
    interval: 20ms
    timeout: 200ms
    queries:
      - record: acc
        expr: 'model_accuracy'
"#,
            fx.url("")
        );
        // No warm-up: the rule already holds a series when the source starts.
        let engine = engine(dir.path(), &config, RULES);
        let labels = Labels::from([("model".to_string(), "fraud".to_string())]);
        let seed = [SeriesSamples {
            metric: "acc".into(),
            labels,
            values: vec![0.5],
        }];
        engine.ingest(&seed, "push", now_ms()).expect("seed");
        let (stop_tx, stop) = watch::channel(false);
        let task = spawn_configured_query_sources(Arc::clone(&engine), stop);
        // The answer is ingested (on the blocking pool), then the source's status is updated.
        wait_until("a good answer after four bad ones", || {
            engine.telemetry.samples_received.get(SOURCE_LABEL) >= 1.0
                && engine.telemetry.query_sources.to_json()[0]["queries"][0]["health"] == "ok"
        })
        .await;
        assert_eq!(engine.telemetry.query_failures.get("flaky"), 4.0);
        assert!(fx.seen().iter().all(|s| s.path == "/api/v1/query"));
        let status = engine.telemetry.query_sources.to_json();
        let q = &status[0]["queries"][0];
        assert_eq!(q["failures"], 4, "{status}");
        assert_eq!(q["health"], "ok", "{status}");
        assert_eq!(
            q["last_error"], "query: undecodable response: expected ident at line 1 column 2",
            "{status}"
        );
        let text = crate::output::metrics::render(&engine, crate::output::exposition::Format::Text);
        assert!(
            text.contains("driftgauge_query_failures_total{source=\"flaky\"} 4"),
            "{text}"
        );
        let _ = stop_tx.send(true);
        tokio::time::timeout(WAIT, task)
            .await
            .expect("stops")
            .expect("join");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_rule_added_by_a_reload_is_warmed_from_raw_samples() {
        let fx = fixture::start(|_, seen| {
            if seen.param("query").is_some_and(|q| q.ends_with("[3600s]")) {
                fixture::ok(
                    r#"{"status":"success","data":{"resultType":"matrix","result":[
                    {"metric":{"__name__":"up","job":"a"},"values":[[1700000000,"1"],[1700000001,"0"],[1700000002,"1"]]}]}}"#,
                )
            } else {
                fixture::ok(
                    r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"__name__":"up","job":"a"},"value":[1700000003,"1"]}]}}"#,
                )
            }
        })
        .await;
        let dir = tempfile::tempdir().expect("dir");
        let config = format!(
            "rule_files: [rules.yml]\nquery_sources:\n  - {{name: prom, url: {}, interval: 20ms, queries: [{{record: up_copy, expr: 'up{{job=\"a\"}}'}}]}}\n",
            fx.url("")
        );
        let none = "groups: []\n";
        let engine = engine(dir.path(), &config, none);
        let (stop_tx, stop) = watch::channel(false);
        let task = spawn_configured_query_sources(Arc::clone(&engine), stop);
        wait_until("instant queries", || fx.seen().len() >= 2).await;
        assert!(
            fx.seen()
                .iter()
                .all(|s| s.param("query") == Some(r#"up{job="a"}"#)),
            "no rule takes up_copy: nothing to warm"
        );
        let rules = r#"
groups:
  - name: g
    interval: 1h
    rules:
      - name: up_ks
        detector: ks
        series: 'up_copy'
        reference: {first: 3}
        current: {last: 10}
        min_samples: 1
"#;
        reload(&engine, dir.path(), rules);
        wait_until("a warm-up after the reload", || {
            fx.seen()
                .iter()
                .any(|s| s.param("query") == Some(r#"up{job="a"}[3600s]"#))
        })
        .await;
        // Two ticks after the warm-up: the first one's answer is in the windows.
        wait_until("two instant queries after the warm-up", || {
            fx.seen()
                .iter()
                .rev()
                .take_while(|s| s.param("query") != Some(r#"up{job="a"}[3600s]"#))
                .count()
                >= 2
        })
        .await;
        let evaluated = evaluate(&engine);
        assert_eq!(evaluated.len(), 1, "{evaluated:?}");
        assert_eq!(
            evaluated[0].1, 3,
            "raw samples fill the reference: {evaluated:?}"
        );
        assert!(evaluated[0].2 >= 1, "{evaluated:?}");
        let warms = fx
            .seen()
            .iter()
            .filter(|s| s.param("query") == Some(r#"up{job="a"}[3600s]"#))
            .count();
        assert_eq!(warms, 1, "warmed once");
        let _ = stop_tx.send(true);
        tokio::time::timeout(WAIT, task)
            .await
            .expect("stops")
            .expect("join");
    }
}
