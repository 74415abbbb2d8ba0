//! `query_sources`: reads any Prometheus-compatible HTTP API (Prometheus, Thanos, Mimir,
//! VictoriaMetrics) on an interval and turns each query's instant result into samples.
//!
//! Each source runs on its own task. Every `interval` each query is sent as
//! `GET {url}/api/v1/query?query=<expr>&timeout=<timeout>` with the source's headers (e.g.
//! Mimir's `X-Scope-OrgID`); a vector result gives one sample per series, named `record`, with
//! the series' labels (`__name__` and other `__` labels dropped); a scalar result gives one
//! sample of `record` without labels. `NaN` and infinite values are skipped. Each query's
//! result is handed to [`ingest::Sink::ingest`] as one batch (source `"query"`).
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
        interval = ?ctx.source.interval,
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
        for (i, q) in ctx.source.queries.iter().enumerate() {
            let warm = warm_attempts[i] > 0 && feed.sink.wants_warm_up(&q.record);
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
    async fn ingest(&self, q: &Query, batch: Vec<SeriesSamples>, at_ms: i64) -> bool {
        if batch.is_empty() {
            return true;
        }
        let sink = Arc::clone(&self.feed.sink);
        let result =
            tokio::task::spawn_blocking(move || sink.ingest(&batch, SOURCE_LABEL, at_ms)).await;
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

    use crate::engine::Engine;
    use crate::labels::Labels;
    use crate::output::webhook::WebhookSender;
    use crate::telemetry::Telemetry;

    const WAIT: Duration = Duration::from_secs(10);

    /// An engine loaded from a config and one rule file written to a temp dir.
    fn engine(dir: &std::path::Path, config: &str, rules: &str) -> Arc<Engine> {
        std::fs::write(dir.join("driftgauge.yml"), config).expect("config");
        std::fs::write(dir.join("rules.yml"), rules).expect("rules");
        let loaded = crate::config::load(Some(&dir.join("driftgauge.yml"))).expect("load");
        let telemetry = Arc::new(Telemetry::default());
        let sender = WebhookSender::new(BTreeMap::new(), Arc::clone(&telemetry)).expect("sender");
        Arc::new(Engine::new(
            loaded.config,
            loaded.rules,
            telemetry,
            Arc::new(sender),
        ))
    }

    fn reload(engine: &Engine, dir: &std::path::Path, rules: &str) {
        std::fs::write(dir.join("rules.yml"), rules).expect("rules");
        let loaded = crate::config::load(Some(&dir.join("driftgauge.yml"))).expect("load");
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
        let task = spawn_query_sources(engine.sources(), sources, stop);
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
        let task = spawn_configured_query_sources(engine.sources(), stop);
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
        let text =
            crate::output::metrics::render(&engine, crate::formats::exposition::Format::Text);
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
        let task = spawn_configured_query_sources(engine.sources(), stop);
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
