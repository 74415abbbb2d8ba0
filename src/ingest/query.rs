//! `query_sources`: reads any Prometheus-compatible HTTP API (Prometheus, Thanos, Mimir,
//! VictoriaMetrics) on an interval and turns each query's instant result into samples.
//!
//! Each source runs on its own task. Every `interval` each query is sent as
//! `GET {url}/api/v1/query?query=<expr>&timeout=<timeout>` with the source's headers (e.g.
//! Mimir's `X-Scope-OrgID`); a vector result gives one sample per series, named `record`, with
//! the series' labels (`__name__` and other `__` labels dropped); a scalar result gives one
//! sample of `record` without labels. A native histogram result (`"histogram"`) gives the
//! classic series `<record>_bucket{le}` (cumulative counts), `<record>_count` and
//! `<record>_sum`, as remote write expands them (`formats::native`); in a range result
//! (`"histograms"`) too. `NaN` and infinite values are skipped. Each query's
//! result is handed to [`crate::ingest::Sink::ingest`] as one batch (source `"query"`).
//!
//! Errors (connection errors, timeouts, non-2xx answers, `"status":"error"`, undecodable or
//! oversized bodies, string or matrix results, two series with the same labels once the
//! metric name is dropped, a series the one series validator refuses) fail that query for
//! that tick: counted in `driftgauge_query_failures_total{source}`, logged, recorded in the
//! source's status; never a crash, and the other queries of the tick go on. An answer refused
//! for its series also counts its values in `driftgauge_samples_rejected_total` under the
//! series' reason (`bad_name`, `too_large`, `duplicate_series`).
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
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::MissedTickBehavior;

use super::Context;
use crate::config::model::{Query, QuerySource};
use crate::config::selector::Selector;
use crate::formats::prom_api::ApiData;
use crate::formats::prom_api::{instant_samples, parse_response, range_batches, PromApiError};
use crate::labels::SeriesSamples;
use crate::telemetry::QueryStatus;
use crate::time::now_ms;
use crate::time::stopped;

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
    /// The answer was read but is not a usable result.
    #[error(transparent)]
    Answer(#[from] PromApiError),
}

/// Runs `sources` (each on its own task) until `stop` turns true. The list is fixed: for
/// sources that follow reloads of the config, see [`spawn_configured_query_sources`].
pub fn spawn_query_sources(
    ctx: Context,
    sources: Vec<QuerySource>,
    stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tasks = JoinSet::new();
        for source in sources {
            tasks.spawn(run_source(ctx.clone(), source, stop.clone()));
        }
        while tasks.join_next().await.is_some() {}
    })
}

/// Runs the `query_sources` of the engine's current config until `stop` turns true, and
/// follows reloads: after each new generation, sources whose definition changed are
/// restarted, removed ones stopped and added ones started (unchanged ones run on).
pub fn spawn_configured_query_sources(
    ctx: Context,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut running: BTreeMap<String, (QuerySource, JoinHandle<()>)> = BTreeMap::new();
        let mut configs = ctx.config.clone();
        let mut first = true;
        loop {
            if !first {
                tokio::select! {
                    changed = configs.changed() => if changed.is_err() { break },
                    _ = stopped(&mut stop) => break,
                }
            }
            first = false;
            let config = configs.borrow_and_update().clone();
            let wanted: BTreeMap<&str, &QuerySource> = config
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
                    ctx.telemetry.query_sources.remove(&name);
                    tracing::info!(source = %name, "query source stopped (config changed)");
                }
            }
            for (name, source) in wanted {
                if !running.contains_key(name) {
                    let task = tokio::spawn(run_source(ctx.clone(), source.clone(), stop.clone()));
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
    feed: Context,
    source: QuerySource,
    /// `url` without a trailing `/`.
    base: String,
    client: Result<reqwest::Client, String>,
}

/// One source: a tick every `interval` (the first at once), its queries run concurrently.
async fn run_source(feed: Context, source: QuerySource, mut stop: watch::Receiver<bool>) {
    let telemetry = &feed.telemetry;
    telemetry.query_failures.touch(&source.name);
    telemetry.samples_received.touch(SOURCE_LABEL);
    telemetry.samples_unselected.touch(SOURCE_LABEL);
    telemetry.query_sources.register(
        &source.name,
        &source.url,
        source
            .queries
            .iter()
            .map(|q| (q.record.as_str(), q.expr.as_str())),
    );
    let ctx = Arc::new(SourceCtx {
        base: source.url.trim_end_matches('/').to_string(),
        client: client(&source),
        feed: feed.clone(),
        source,
    });
    if let Err(e) = &ctx.client {
        tracing::error!(source = %ctx.source.name, error = %e, "query source cannot build its HTTP client");
    }
    tracing::info!(
        source = %ctx.source.name,
        url = %ctx.source.url,
        queries = ctx.source.queries.len(),
        interval = %crate::config::format_duration(ctx.source.interval),
        "query source started"
    );
    let n = ctx.source.queries.len();
    // Warm-up attempts left per query, armed by a new generation.
    let mut warm_attempts = vec![WARM_UP_ATTEMPTS; n];
    // Armed at start and again after every new config.
    let mut reloaded = feed.config.clone();
    let mut ticker = tokio::time::interval(ctx.source.interval.max(Duration::from_millis(10)));
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stopped(&mut stop) => return,
        }
        if reloaded.has_changed().unwrap_or(false) {
            reloaded.borrow_and_update();
            warm_attempts.iter_mut().for_each(|a| *a = WARM_UP_ATTEMPTS);
        }
        let mut tasks = JoinSet::new();
        // The rules this tick's instant answers are for: a reload while a query is in flight
        // must not make a rule it adds look fed (then it would never be warmed).
        let as_of = feed.sink.generation();
        for (i, q) in ctx.source.queries.iter().enumerate() {
            let warm = warm_attempts[i] > 0 && feed.sink.wants_warm_up(&q.record);
            if !warm {
                warm_attempts[i] = 0;
            }
            let ctx = Arc::clone(&ctx);
            tasks.spawn(async move { (i, ctx.tick(i, warm, as_of).await) });
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

    async fn tick(&self, i: usize, warm: bool, as_of: u64) -> TickOutcome {
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
                self.ingest(q, batch, now_ms(), as_of).await;
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
        let telemetry = &self.feed.telemetry;
        telemetry.query_failures.add(self.name(), 1.0);
        // An answer refused for its series: its values are refused with it.
        if let QueryError::Answer(answer) = e {
            if let Some(reason) = answer.reason() {
                telemetry
                    .samples_rejected
                    .add(reason.as_str(), answer.values() as f64);
            }
        }
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
        self.feed
            .telemetry
            .query_sources
            .update(self.name(), &q.record, f);
    }

    /// Feeds `batch` to the sink on the blocking pool (ingestion takes locks).
    /// `as_of`: the generation the samples were read under (`u64::MAX`: the current one).
    async fn ingest(&self, q: &Query, batch: Vec<SeriesSamples>, at_ms: i64, as_of: u64) -> bool {
        if batch.is_empty() {
            return true;
        }
        let sink = Arc::clone(&self.feed.sink);
        let result = tokio::task::spawn_blocking(move || {
            sink.ingest_as_of(&batch, SOURCE_LABEL, at_ms, as_of)
        })
        .await;
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
        Ok(instant_samples(&q.record, data)?)
    }

    /// Reads the last [`WARM_UP_RANGE`] of `q` and feeds it in time order.
    async fn warm_up(&self, q: &Query) -> Result<(), QueryError> {
        let started = now_ms();
        // A reference pinned to a period before the warm-up's hour is read first, in time
        // order, so counters count their increases in the order they happened.
        let mut pinned = 0;
        let warm_start = started - WARM_UP_RANGE.as_millis() as i64;
        if let Some((start, end)) = self.feed.sink.reference_span(&q.record) {
            let end = end.min(warm_start);
            if start < end {
                let data = self.query_range(&q.expr, start, end).await?;
                for (at_ms, batch) in &range_batches(&q.record, data)? {
                    if !self.ingest(q, batch.clone(), *at_ms, u64::MAX).await {
                        break;
                    }
                    pinned += batch.iter().map(|s| s.values.len()).sum::<usize>();
                }
            }
        }
        let data = match warm_up_selector(&q.expr) {
            Some(selector) => {
                let expr = format!("{selector}[{}s]", WARM_UP_RANGE.as_secs());
                self.get("/api/v1/query", &[("query", expr)]).await?
            }
            None => self.query_range(&q.expr, warm_start, started).await?,
        };
        let batches = range_batches(&q.record, data)?;
        let mut samples = pinned;
        for (at_ms, batch) in &batches {
            if !self.ingest(q, batch.clone(), *at_ms, u64::MAX).await {
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

    /// `query_range` of `expr` over `[start_ms, end_ms]`, at the source's interval or the
    /// step that keeps under Prometheus's 11,000 points a series.
    async fn query_range(
        &self,
        expr: &str,
        start_ms: i64,
        end_ms: i64,
    ) -> Result<ApiData, QueryError> {
        let (start, end) = (start_ms as f64 / 1000.0, end_ms as f64 / 1000.0);
        let step = self
            .source
            .interval
            .as_secs_f64()
            .max((end - start) / (MAX_RANGE_POINTS - 1.0));
        // Whole milliseconds, rounded up so the point limit holds.
        let step = (step * 1000.0).ceil() / 1000.0;
        self.get(
            "/api/v1/query_range",
            &[
                ("query", expr.to_string()),
                ("start", format!("{start:.3}")),
                ("end", format!("{end:.3}")),
                ("step", format!("{step:.3}")),
            ],
        )
        .await
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
                QueryError::Request(crate::net::error_chain(&e))
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
        Ok(parse_response(status.as_u16(), &body)?)
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
    crate::net::client_builder()
        .default_headers(headers)
        .timeout(source.timeout)
        .build()
        .map_err(|e| crate::net::error_chain(&e))
}

/// `expr` as a plain vector selector (that can be range-selected), or `None`.
fn warm_up_selector(expr: &str) -> Option<&str> {
    let expr = expr.trim();
    Selector::parse(expr).ok().map(|_| expr)
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
