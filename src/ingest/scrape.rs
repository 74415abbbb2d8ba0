//! `scrape_configs`: pulls Prometheus exporters like Prometheus does.
//!
//! Every target of every job runs on its own tokio task at its job's `scrape_interval` (the
//! first scrape at once). A scrape asks for OpenMetrics first and the text format as a
//! fallback (Prometheus's `Accept` header), is bounded by `scrape_timeout` and by
//! `limits.max_body_bytes`, and is parsed with [`crate::formats::exposition::parse`].
//!
//! What becomes a sample:
//! - every series gets the target's labels: `job` (the `job_name`), `instance` (the target
//!   as written) and the `static_configs` labels (which may set `job` or `instance`
//!   themselves). A scraped label that clashes with one of these is kept as
//!   `exported_<name>` (`exported_exported_<name>`, ... when that is taken too), as
//!   Prometheus does with `honor_labels: false`;
//! - gauges, untyped/unknown, info and stateset values are taken as they are;
//! - counters become per-second rates between two successive scrapes of the series for
//!   raw-value rules; `categories:` and `histogram:` rules take their cumulative values
//!   instead, and count increases themselves, as for every other source
//!   (`(v - v_prev) / (t - t_prev)`, `t` the sample's own timestamp when it has one, else
//!   the scrape's start). The first scrape of a series gives no value; a decrease is a
//!   counter reset and that interval gives no value either;
//! - histograms (`_bucket`, `_sum`, `_count`), gauge histograms and summaries (quantiles,
//!   `_sum`, `_count`) keep their series with the exposed values as they are, cumulative
//!   counts included: a rule on them sees what the exporter shows. (Rate them upstream, or
//!   use a counter, when a per-second rate is what should drift.) `_created` samples are
//!   creation timestamps and are not taken;
//! - NaN and infinite values are skipped and counted in
//!   `driftgauge_samples_rejected_total{reason="non_finite"}`; a series exposed twice in one
//!   body keeps its first sample (`reason="duplicate_series"`).
//!
//! A scrape fails as a whole (connection error, timeout, non-2xx status, a body over the
//! limit, an unknown `Content-Type`, a bad line, an invalid name, or the engine's series
//! limit): nothing of it is applied, `driftgauge_scrape_failures_total{job}` goes up, the
//! failure is logged with the target (at `warn` when it first happens or changes, then at
//! `debug`), and the samples taken earlier stay. Counter rates continue across a failed
//! scrape, over the longer interval. Series are checked by the one series validator
//! (`labels::validate_series`); a scrape refused for a bad series counts its values in
//! `driftgauge_samples_rejected_total` under the series' reason (`bad_name`, `too_large`),
//! as one refused by the series limit counts them under `series_limit`.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::MissedTickBehavior;

use super::Context;
use crate::config::model::{Labels, ScrapeConfig};
use crate::formats::exposition::parse::{self as expfmt, MetricKind, ParsedSample};
use crate::formats::exposition::Format;
use crate::labels::{check_label_count, validate_series, RejectReason, SeriesError, SeriesSamples};
use crate::time::now_ms;
use crate::time::stopped;

/// The `source` scraped samples are counted under.
pub const SOURCE: &str = "scrape";

/// What Prometheus 2.x sends: OpenMetrics preferred, the text format as a fallback.
pub const ACCEPT: &str = "application/openmetrics-text;version=1.0.0,\
application/openmetrics-text;version=0.0.1;q=0.75,\
text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// Why one scrape failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ScrapeError {
    #[error("invalid target URL {url:?}: {reason}")]
    Url { url: String, reason: String },
    #[error("{0}")]
    Http(String),
    #[error("scrape timed out after {0:?}")]
    Timeout(Duration),
    #[error("server returned HTTP status {0}")]
    Status(String),
    #[error("body exceeds limits.max_body_bytes={0}")]
    TooLarge(usize),
    #[error("unsupported Content-Type {0:?}: expected the Prometheus text format or OpenMetrics")]
    ContentType(String),
    #[error("body is not valid UTF-8")]
    Utf8,
    #[error("{0}")]
    Parse(#[from] expfmt::ParseError),
    /// A scraped series the one series validator refuses.
    #[error("{}", series_message(.metric, .source))]
    Series {
        metric: String,
        #[source]
        source: SeriesError,
    },
    #[error("{0}")]
    SeriesLimit(String),
}

/// A label's problem names its series' metric; a metric name's problem names itself.
fn series_message(metric: &str, e: &SeriesError) -> String {
    match e {
        SeriesError::MissingMetricName
        | SeriesError::MetricNameTooLong { .. }
        | SeriesError::InvalidMetricName { .. } => e.to_string(),
        _ => format!("{metric}: {e}"),
    }
}

/// One target of one job, with everything a scrape needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub job: String,
    /// `scheme://host:port/metrics_path`
    pub url: String,
    /// `job`, `instance` and the static labels, empty values and `__` names left out.
    pub labels: Labels,
    pub interval: Duration,
    pub timeout: Duration,
    pub bearer_token: Option<String>,
}

/// Every target of these configs, in config order (exact repeats once).
pub fn targets(configs: &[ScrapeConfig]) -> Vec<Target> {
    let mut out = Vec::new();
    for c in configs {
        for sc in &c.static_configs {
            for t in &sc.targets {
                let mut labels: Labels = sc
                    .labels
                    .iter()
                    .filter(|(k, v)| !v.is_empty() && !k.starts_with("__"))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                labels
                    .entry("job".into())
                    .or_insert_with(|| c.job_name.clone());
                labels.entry("instance".into()).or_insert_with(|| t.clone());
                let url = format!("{}://{}{}", c.scheme.as_str(), t, c.metrics_path);
                // A target listed twice is scraped once, as Prometheus does.
                if out
                    .iter()
                    .any(|o: &Target| o.job == c.job_name && o.url == url && o.labels == labels)
                {
                    continue;
                }
                out.push(Target {
                    job: c.job_name.clone(),
                    url,
                    labels,
                    interval: c.scrape_interval,
                    timeout: c.scrape_timeout,
                    bearer_token: c.bearer_token.clone(),
                });
            }
        }
    }
    out
}

/// The last value and time of each counter series of one target, for rates.
#[derive(Debug, Default)]
pub struct RateState {
    last: HashMap<(String, Labels), (f64, i64)>,
}

/// Rate states by (job, URL), kept across restarts of the scrapers (see [`run`]).
type States = Arc<Mutex<HashMap<(String, String), Arc<Mutex<RateState>>>>>;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Starts one task per target of `configs`; the returned task ends once `stop` turns true
/// (or its sender is gone) and every target task has ended. Counter rates start afresh.
pub fn spawn_scrapers(
    ctx: Context,
    configs: Vec<ScrapeConfig>,
    stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(run_targets(ctx, targets(&configs), stop, States::default()))
}

/// Runs the scrapers of the current config until `stop` turns true, following
/// reloads: after each new config (published by the engine when it applies one), scrapers
/// restart only when `scrape_configs` changed, and targets that stay keep their counter
/// state, so rates do not restart with them.
pub async fn run(ctx: Context, mut stop: watch::Receiver<bool>) {
    let mut reloaded = ctx.config.clone();
    let states = States::default();
    loop {
        let configs = ctx.config().scrape_configs.clone();
        let running = targets(&configs);
        {
            let keep: HashSet<(String, String)> = running
                .iter()
                .map(|t| (t.job.clone(), t.url.clone()))
                .collect();
            lock(&states).retain(|k, _| keep.contains(k));
        }
        let (task_stop, task_stop_rx) = watch::channel(false);
        let tasks = tokio::spawn(run_targets(
            ctx.clone(),
            running,
            task_stop_rx,
            Arc::clone(&states),
        ));
        let finished = loop {
            tokio::select! {
                changed = reloaded.changed() => {
                    if changed.is_err() {
                        break true;
                    }
                    if reloaded.borrow_and_update().scrape_configs != configs {
                        break false;
                    }
                }
                _ = stopped(&mut stop) => break true,
            }
        };
        let _ = task_stop.send(true);
        let _ = tasks.await;
        if finished {
            return;
        }
    }
}

async fn run_targets(
    ctx: Context,
    targets: Vec<Target>,
    stop: watch::Receiver<bool>,
    states: States,
) {
    if targets.is_empty() {
        return;
    }
    let telemetry = &ctx.telemetry;
    telemetry.samples_received.touch(SOURCE);
    telemetry.samples_unselected.touch(SOURCE);
    for t in &targets {
        telemetry.scrape_failures.touch(&t.job);
    }
    let client = match crate::net::client_builder().build() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the scrape HTTP client; no target is scraped");
            return;
        }
    };
    let mut tasks = JoinSet::new();
    for target in targets {
        let state = Arc::clone(
            lock(&states)
                .entry((target.job.clone(), target.url.clone()))
                .or_default(),
        );
        tasks.spawn(scrape_loop(
            ctx.clone(),
            client.clone(),
            target,
            state,
            stop.clone(),
        ));
    }
    while tasks.join_next().await.is_some() {}
}

async fn scrape_loop(
    ctx: Context,
    client: reqwest::Client,
    target: Target,
    state: Arc<Mutex<RateState>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(target.interval.max(Duration::from_millis(1)));
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last_error: Option<String> = None;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stopped(&mut stop) => return,
        }
        let result = tokio::select! {
            r = scrape_once(&ctx, &client, &target, &state) => r,
            _ = stopped(&mut stop) => return,
        };
        match result {
            Ok(n) => {
                if last_error.take().is_some() {
                    tracing::info!(job = %target.job, target = %target.url, "scrape recovered");
                }
                tracing::trace!(job = %target.job, target = %target.url, values = n, "scraped");
            }
            Err(e) => {
                ctx.telemetry.scrape_failures.add(&target.job, 1.0);
                let msg = e.to_string();
                if last_error.as_deref() == Some(msg.as_str()) {
                    tracing::debug!(job = %target.job, target = %target.url, error = %msg, "scrape failed");
                } else {
                    tracing::warn!(job = %target.job, target = %target.url, error = %msg, "scrape failed");
                    last_error = Some(msg);
                }
            }
        }
    }
}

/// One scrape: fetch, parse, turn into samples, ingest. Returns the number of values taken.
pub async fn scrape_once(
    ctx: &Context,
    client: &reqwest::Client,
    target: &Target,
    state: &Arc<Mutex<RateState>>,
) -> Result<usize, ScrapeError> {
    let limit = ctx.config().limits.max_body_bytes;
    let started_ms = now_ms();
    let (body, format) = tokio::time::timeout(target.timeout, fetch(client, target, limit))
        .await
        .map_err(|_| ScrapeError::Timeout(target.timeout))??;
    let ctx = ctx.clone();
    let target = target.clone();
    let state = Arc::clone(state);
    // Parsing a large body and ingesting are CPU work: off the async workers.
    tokio::task::spawn_blocking(move || {
        let text = std::str::from_utf8(&body).map_err(|_| ScrapeError::Utf8)?;
        let parsed = expfmt::parse(text, format)?;
        let telemetry = &ctx.telemetry;
        let carried = parsed.len();
        let mut rates = lock(&state);
        let samples = to_samples(parsed, &target.labels, started_ms, &rates).inspect_err(|e| {
            // A refused scrape's values are refused with it.
            if let ScrapeError::Series { source, .. } = e {
                telemetry
                    .samples_rejected
                    .add(source.reason().as_str(), carried as f64);
            }
        })?;
        for (reason, n) in [
            (RejectReason::NonFinite, samples.non_finite),
            (RejectReason::DuplicateSeries, samples.duplicates),
        ] {
            if n > 0 {
                telemetry.samples_rejected.add(reason.as_str(), n as f64);
            }
        }
        // The counters were read, whatever the engine says next: rates go on from here.
        rates.last = samples.counters;
        drop(rates);
        if samples.batch.is_empty() && samples.counters_raw.is_empty() {
            return Ok(0);
        }
        ctx.sink
            .ingest_scrape(&samples.batch, &samples.counters_raw, SOURCE, now_ms())
            .map_err(|e| ScrapeError::SeriesLimit(e.to_string()))
    })
    .await
    .map_err(|e| ScrapeError::Http(format!("scrape task failed: {e}")))?
}

async fn fetch(
    client: &reqwest::Client,
    target: &Target,
    limit: usize,
) -> Result<(Vec<u8>, Format), ScrapeError> {
    let url = reqwest::Url::parse(&target.url).map_err(|e| ScrapeError::Url {
        url: target.url.clone(),
        reason: e.to_string(),
    })?;
    let mut req = client
        .get(url)
        .header(reqwest::header::ACCEPT, ACCEPT)
        .header(
            "X-Prometheus-Scrape-Timeout-Seconds",
            format!("{}", target.timeout.as_secs_f64()),
        );
    if let Some(token) = &target.bearer_token {
        req = req.bearer_auth(token);
    }
    let mut resp = req
        .send()
        .await
        .map_err(|e| ScrapeError::Http(crate::net::error_chain(&e)))?;
    let status = resp.status();
    if !status.is_success() {
        return Err(ScrapeError::Status(status.to_string()));
    }
    let content_type = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let format = Format::from_content_type(content_type.as_deref())
        .ok_or_else(|| ScrapeError::ContentType(content_type.clone().unwrap_or_default()))?;
    if resp.content_length().is_some_and(|n| n > limit as u64) {
        return Err(ScrapeError::TooLarge(limit));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| ScrapeError::Http(crate::net::error_chain(&e)))?
    {
        if body.len() + chunk.len() > limit {
            return Err(ScrapeError::TooLarge(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((body, format))
}

/// One scrape's samples, ready for the engine.
#[derive(Debug, Default)]
pub struct Samples {
    pub batch: Vec<SeriesSamples>,
    /// Every counter's cumulative value as read, for `histogram:`/`categories:` rules, which
    /// count increases themselves (the batch has rates).
    pub counters_raw: Vec<SeriesSamples>,
    /// Every counter series read, with its value and time: the next scrape's base.
    pub counters: HashMap<(String, Labels), (f64, i64)>,
    pub non_finite: usize,
    pub duplicates: usize,
}

/// Turns parsed samples into the engine's batch: names checked, target labels added,
/// counters turned into rates against `previous`. Pure; fails on the first bad sample.
pub fn to_samples(
    parsed: Vec<ParsedSample>,
    target_labels: &Labels,
    scrape_ms: i64,
    previous: &RateState,
) -> Result<Samples, ScrapeError> {
    let mut out = Samples::default();
    let mut seen: HashSet<(String, Labels)> = HashSet::with_capacity(parsed.len());
    for p in parsed {
        let refused = |source| ScrapeError::Series {
            metric: p.metric.clone(),
            source,
        };
        validate_series(&p.metric, &p.labels).map_err(refused)?;
        let labels = with_target_labels(p.labels, target_labels);
        check_label_count(labels.len()).map_err(refused)?;
        let key = (p.metric, labels);
        if seen.contains(&key) {
            out.duplicates += 1;
            continue;
        }
        seen.insert(key.clone());
        if !p.value.is_finite() {
            out.non_finite += 1;
            continue;
        }
        let value = if p.kind == MetricKind::Counter {
            let t = p.timestamp_ms.unwrap_or(scrape_ms);
            let rate = previous.last.get(&key).and_then(|&(v0, t0)| {
                // No rate over no time, and none across a reset.
                (t > t0 && p.value >= v0).then(|| (p.value - v0) / ((t - t0) as f64 / 1000.0))
            });
            out.counters.insert(key.clone(), (p.value, t));
            out.counters_raw.push(SeriesSamples {
                metric: key.0.clone(),
                labels: key.1.clone(),
                values: vec![p.value],
            });
            match rate {
                Some(r) => r,
                None => continue,
            }
        } else {
            p.value
        };
        let (metric, labels) = key;
        out.batch.push(SeriesSamples {
            metric,
            labels,
            values: vec![value],
        });
    }
    Ok(out)
}

/// The target's labels over the scraped ones; a scraped label they replace is kept as
/// `exported_<name>` (shortest names first, more `exported_` while taken), as Prometheus's
/// `honor_labels: false` does. Empty-valued labels are no labels.
pub fn with_target_labels(scraped: Labels, target: &Labels) -> Labels {
    let mut out: Labels = scraped.into_iter().filter(|(_, v)| !v.is_empty()).collect();
    let mut clashes: Vec<(String, String)> = Vec::new();
    for (name, value) in target {
        if let Some(old) = out.insert(name.clone(), value.clone()) {
            clashes.push((name.clone(), old));
        }
    }
    clashes.sort_by_key(|(name, _)| name.len());
    for (name, value) in clashes {
        let mut renamed = name;
        loop {
            renamed = format!("exported_{renamed}");
            if let std::collections::btree_map::Entry::Vacant(e) = out.entry(renamed.clone()) {
                e.insert(value);
                break;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn target_labels_win_and_scraped_ones_are_exported() {
        let target = l(&[("job", "j"), ("instance", "h:1"), ("env", "prod")]);
        let got = with_target_labels(
            l(&[
                ("job", "inner"),
                ("exported_job", "taken"),
                ("instance", "x"),
                ("a", "b"),
                ("empty", ""),
            ]),
            &target,
        );
        assert_eq!(
            got,
            l(&[
                ("job", "j"),
                ("instance", "h:1"),
                ("env", "prod"),
                ("a", "b"),
                ("exported_job", "taken"),
                ("exported_exported_job", "inner"),
                ("exported_instance", "x"),
            ])
        );
    }

    #[test]
    fn targets_from_configs() {
        let text = "scrape_configs:\n  - job_name: m\n    scheme: https\n    metrics_path: /x\n    static_configs:\n      - targets: [\"a:1\", \"b:2\"]\n        labels: {instance: fixed, team: t}\n      - targets: [\"c:3\", \"c:3\"]\n";
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("driftgauge.yml");
        std::fs::write(&file, format!("rule_files: []\n{text}")).unwrap();
        let loaded = crate::config::load(Some(&file)).unwrap();
        let t = targets(&loaded.config.scrape_configs);
        assert_eq!(t.len(), 3);
        assert_eq!(t[0].url, "https://a:1/x");
        assert_eq!(
            t[0].labels,
            l(&[("job", "m"), ("instance", "fixed"), ("team", "t")])
        );
        assert_eq!(t[2].labels, l(&[("job", "m"), ("instance", "c:3")]));
    }

    fn parse(text: &str) -> Vec<ParsedSample> {
        expfmt::parse(text, Format::Text).unwrap()
    }

    #[test]
    fn counters_become_reset_aware_rates() {
        let tl = l(&[("job", "j")]);
        let mut state = RateState::default();
        let body = |v: f64| format!("# TYPE c_total counter\nc_total {v}\n# TYPE g gauge\ng {v}\n");
        let first = to_samples(parse(&body(100.0)), &tl, 1_000, &state).unwrap();
        assert_eq!(first.batch.len(), 1, "no rate from one scrape: {first:?}");
        assert_eq!(first.batch[0].metric, "g");
        state.last = first.counters;
        let second = to_samples(parse(&body(150.0)), &tl, 3_000, &state).unwrap();
        assert_eq!(second.batch[0].metric, "c_total");
        assert_eq!(second.batch[0].values, vec![25.0]);
        assert_eq!(second.batch[1].values, vec![150.0]);
        state.last = second.counters;
        // A reset: no value for that interval, then rates again from the new base.
        let reset = to_samples(parse(&body(10.0)), &tl, 4_000, &state).unwrap();
        assert_eq!(reset.batch.len(), 1);
        state.last = reset.counters;
        let after = to_samples(parse(&body(30.0)), &tl, 5_000, &state).unwrap();
        assert_eq!(after.batch[0].values, vec![20.0]);
        // The sample's own timestamp wins over the scrape time.
        state.last = after.counters;
        let stamped = to_samples(
            parse("# TYPE c_total counter\nc_total 40 5500\n"),
            &tl,
            9_000,
            &state,
        )
        .unwrap();
        assert_eq!(stamped.batch[0].values, vec![20.0]);
    }

    #[test]
    fn histograms_keep_values_and_odd_values_are_counted() {
        let text = "# TYPE h histogram\nh_bucket{le=\"1\"} 3\nh_bucket{le=\"+Inf\"} 5\nh_sum 7.5\nh_count 5\n\
                    # TYPE s summary\ns{quantile=\"0.5\"} NaN\ns_sum 1\ns_count 2\nu 1\nu 2\n";
        let got = to_samples(parse(text), &Labels::new(), 0, &RateState::default()).unwrap();
        let vals: Vec<(String, f64)> = got
            .batch
            .iter()
            .map(|s| (s.metric.clone(), s.values[0]))
            .collect();
        assert_eq!(
            vals,
            [
                ("h_bucket", 3.0),
                ("h_bucket", 5.0),
                ("h_sum", 7.5),
                ("h_count", 5.0),
                ("s_sum", 1.0),
                ("s_count", 2.0),
                ("u", 1.0),
            ]
            .map(|(n, v)| (n.to_string(), v))
        );
        assert_eq!((got.non_finite, got.duplicates), (1, 1));
    }

    #[test]
    fn bad_names_fail_the_scrape() {
        let parsed = expfmt::parse("{\"a.b\"} 1\n", Format::Text).unwrap();
        let e = to_samples(parsed, &Labels::new(), 0, &RateState::default()).unwrap_err();
        assert_eq!(e.to_string(), "invalid metric name \"a.b\"");
        let parsed = expfmt::parse("m{__x=\"1\"} 1\n", Format::Text).unwrap();
        let e = to_samples(parsed, &Labels::new(), 0, &RateState::default()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "m: invalid label name \"__x\": names starting with \"__\" are reserved"
        );
    }

    #[test]
    fn a_refused_series_has_the_reason_push_and_remote_write_give_it() {
        let reason = |text: &str, target: &Labels| {
            let parsed = expfmt::parse(text, Format::Text).unwrap();
            match to_samples(parsed, target, 0, &RateState::default()) {
                Err(ScrapeError::Series { source, .. }) => source.reason(),
                other => panic!("{text}: {other:?}"),
            }
        };
        let long = "v".repeat(crate::labels::MAX_LABEL_VALUE_BYTES + 1);
        assert_eq!(
            reason(&format!("m{{hostname=\"{long}\"}} 1\n"), &Labels::new()),
            RejectReason::TooLarge
        );
        let long = "n".repeat(crate::labels::MAX_NAME_BYTES + 1);
        assert_eq!(
            reason(&format!("m{{{long}=\"1\"}} 1\n"), &Labels::new()),
            RejectReason::TooLarge
        );
        assert_eq!(
            reason("m{__tooth=\"1\"} 1\n", &Labels::new()),
            RejectReason::BadName
        );
        // The target's labels count too.
        let scraped: Vec<String> = (0..60).map(|i| format!("s{i}=\"x\"")).collect();
        let target: Labels = (0..5).map(|i| (format!("t{i}"), "y".to_string())).collect();
        assert_eq!(
            reason(&format!("m{{{}}} 1\n", scraped.join(",")), &target),
            RejectReason::TooLarge
        );
    }
}
