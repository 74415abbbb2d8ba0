//! Every metric name driftgauge exposes lives here, and `/metrics` is rendered here from the
//! engine's published group outputs and the telemetry counters.

use std::sync::atomic::Ordering;

use crate::engine::Engine;
use crate::formats::exposition::encode::{
    encode_into, escape_label_value, finish, format_value, write_header, write_label_pairs, Family,
    Kind,
};
use crate::formats::exposition::Format;
use crate::labels::Labels;

pub const DRIFT_STATISTIC: &str = "driftgauge_drift_statistic";
pub const DRIFT_P_VALUE: &str = "driftgauge_drift_p_value";
pub const DRIFT_STATUS: &str = "driftgauge_drift_status";
pub const DRIFT_THRESHOLD: &str = "driftgauge_drift_threshold";
pub const DRIFT_SHARE: &str = "driftgauge_drift_share";
const THRESHOLD_HELP: &str = "What the p-value (or, without one, the statistic or EMA) is compared with: alpha, the level calibrated from false_alarms, or the bound.";
pub const EMA_VALUE: &str = "driftgauge_ema_value";
pub const WINDOW_SAMPLES: &str = "driftgauge_window_samples";

/// Version and revision of this build (`driftgauge_build_info`).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub const REVISION: &str = match option_env!("DRIFTGAUGE_REVISION") {
    Some(r) => r,
    None => "unknown",
};

fn one(name: &str, value: &str) -> Vec<(String, String)> {
    vec![(name.to_string(), value.to_string())]
}

/// The label set of every evaluated rule series, escaped and joined once per scrape into one
/// buffer, then copied into each family's line: with 100,000 series `/metrics` has 500,000
/// rule lines, and building a label vector for each of them cost most of the render.
struct RuleLabels {
    /// `k1="v1",k2="v2",...` of every series, one after the other.
    text: String,
    /// Per series: where its labels start and end in `text`, and `split`, where a `window`
    /// label goes (before the first label that sorts after `window`; just before its comma).
    spans: Vec<Span>,
}

#[derive(Clone, Copy)]
struct Span {
    start: usize,
    split: usize,
    end: usize,
    /// The series has a label named `window` itself (from a rule's `labels`): its window
    /// lines take the general path, which orders the two as the label pairs sort.
    window_key: bool,
}

impl RuleLabels {
    fn build(series: &[&Labels]) -> Self {
        let mut text = String::with_capacity(series.len() * 64);
        let mut spans = Vec::with_capacity(series.len());
        for batch in series.chunks(BATCH) {
            touch(batch);
            for labels in batch {
                let start = text.len();
                let mut split = None;
                let mut window_key = false;
                for (i, (k, v)) in labels.iter().enumerate() {
                    // `Labels` is a BTreeMap: its keys come sorted, as the exposition wants them.
                    if split.is_none() && sorts_after_window(k) {
                        split = Some(text.len());
                    }
                    window_key |= k == "window";
                    if i > 0 {
                        text.push(',');
                    }
                    text.push_str(k);
                    text.push_str("=\"");
                    escape_label_value(v, &mut text);
                    text.push('"');
                }
                spans.push(Span {
                    start,
                    split: split.unwrap_or(text.len()),
                    end: text.len(),
                    window_key,
                });
            }
        }
        RuleLabels { text, spans }
    }

    fn all(&self, s: Span) -> &str {
        &self.text[s.start..s.end]
    }
}

/// `k > "window"`, deciding on the first byte when it can.
fn sorts_after_window(k: &str) -> bool {
    match k.as_bytes().first() {
        Some(b'w') => k > "window",
        Some(&b) => b > b'w',
        None => false,
    }
}

/// Series whose labels are brought into the cache together.
const BATCH: usize = 16;

/// Reads one byte of every label map, key and value of `batch`, in two sweeps of independent
/// loads, before they are encoded one by one. The maps and strings of a group's outputs lie
/// scattered over the heap (outputs are sorted by labels after evaluation, not in allocation
/// order), so encoding them one after the other waits on one cache miss after another; here
/// the misses of a whole batch are in flight at once.
fn touch(batch: &[&Labels]) {
    let mut acc = 0u8;
    for labels in batch {
        if let Some((k, _)) = labels.first_key_value() {
            acc ^= k.len() as u8;
        }
    }
    for labels in batch {
        for (k, v) in labels.iter() {
            acc ^= k.as_bytes().first().copied().unwrap_or(0);
            acc ^= v.as_bytes().first().copied().unwrap_or(0);
        }
    }
    std::hint::black_box(acc);
}

/// One line `name{labels} value`.
fn line(out: &mut String, name: &str, labels: &str, value: f64) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        out.push_str(labels);
        out.push('}');
    }
    out.push(' ');
    format_value(value, out);
    out.push('\n');
}

/// One `driftgauge_window_samples` line: the series' labels with `window="{which}"` in its
/// sorted place.
fn window_line(out: &mut String, rl: &RuleLabels, s: Span, labels: &Labels, which: &str, n: usize) {
    if s.window_key {
        // The general path, as every line once took: pairs sorted, then written.
        let mut pairs: Vec<(&str, &str)> = labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        pairs.push(("window", which));
        pairs.sort();
        out.push_str(WINDOW_SAMPLES);
        out.push('{');
        write_label_pairs(out, pairs.into_iter());
        out.push_str("} ");
        format_value(n as f64, out);
        out.push('\n');
        return;
    }
    let before = &rl.text[s.start..s.split];
    // Starts with the comma that followed `before` when `before` is not empty.
    let after = &rl.text[s.split..s.end];
    out.push_str(WINDOW_SAMPLES);
    out.push('{');
    out.push_str(before);
    if !before.is_empty() {
        out.push(',');
    }
    out.push_str("window=\"");
    out.push_str(which);
    out.push('"');
    if before.is_empty() && !after.is_empty() {
        out.push(',');
    }
    out.push_str(after);
    out.push_str("} ");
    format_value(n as f64, out);
    out.push('\n');
}

/// Renders `/metrics` in the requested format.
/// The window values held by every rule, and their budget (`limits.max_held_values`).
fn held_values(engine: &Engine, generation: &crate::engine::Generation) -> [Family; 2] {
    let mut held = Family::new(
        "driftgauge_window_values_held",
        Kind::Gauge,
        "Window values held by all rules together (bounded by limits.max_held_values).",
    );
    held.push(vec![], engine.held_values(generation) as f64);
    let mut limit = Family::new(
        "driftgauge_window_values_limit",
        Kind::Gauge,
        "limits.max_held_values: the most window values all rules may hold together.",
    );
    limit.push(vec![], generation.config.limits.max_held_values as f64);
    [held, limit]
}

/// The service's own families (groups' evaluation counters and times, samples, webhooks,
/// reloads, store, memory budget, build, sources), in `/metrics` order. `groups` is the
/// snapshot of each group's output the rule lines were rendered from.
fn service_families<'a>(
    engine: &Engine,
    generation: &crate::engine::Generation,
    groups: impl IntoIterator<
        Item = (
            &'a crate::engine::GroupRuntime,
            &'a crate::engine::GroupOutput,
        ),
    >,
) -> Vec<Family> {
    let t = &engine.telemetry;
    let mut evals = Family::new(
        "driftgauge_rule_evaluations_total",
        Kind::Counter,
        "Rule group evaluations.",
    );
    let mut eval_failures = Family::new(
        "driftgauge_rule_evaluation_failures_total",
        Kind::Counter,
        "Rule group evaluations with at least one failed rule.",
    );
    let mut last_duration = Family::new(
        "driftgauge_rule_group_last_duration_seconds",
        Kind::Gauge,
        "Duration of the last evaluation of the group.",
    );
    let mut last_ts = Family::new(
        "driftgauge_rule_group_last_evaluation_timestamp_seconds",
        Kind::Gauge,
        "Unix time of the last evaluation of the group.",
    );
    let mut share = Family::new(
        DRIFT_SHARE,
        Kind::Gauge,
        "Share of the rule's series that is drifted.",
    );
    for (g, out) in groups {
        let name = g.group.name.as_str();
        for r in &out.rules {
            if let Some(rule) = g.rules.get(r.rule) {
                share.push(
                    vec![
                        ("group".to_string(), name.to_string()),
                        ("rule".to_string(), rule.rule.name.clone()),
                    ],
                    r.share(),
                );
            }
        }
        evals.push(one("group", name), t.rule_evaluations.get(name));
        eval_failures.push(one("group", name), t.rule_evaluation_failures.get(name));
        if let Some(ms) = out.last_evaluation_ms {
            last_duration.push(one("group", name), out.last_duration.as_secs_f64());
            last_ts.push(one("group", name), ms as f64 / 1000.0);
        }
    }

    let mut received = Family::new(
        "driftgauge_samples_received_total",
        Kind::Counter,
        "Sample values taken in, by source.",
    );
    for (source, v) in t.samples_received.snapshot() {
        received.push(one("source", &source), v);
    }
    let mut unselected = Family::new(
        "driftgauge_samples_unselected_total",
        Kind::Counter,
        "Sample values of series no rule selects, by source: dropped, never held, not counted against limits.",
    );
    for (source, v) in t.samples_unselected.snapshot() {
        unselected.push(one("source", &source), v);
    }
    let mut rejected = Family::new(
        "driftgauge_samples_rejected_total",
        Kind::Counter,
        "Sample values refused, by reason.",
    );
    for (reason, v) in t.samples_rejected.snapshot() {
        rejected.push(one("reason", &reason), v);
    }
    let mut requests_rejected = Family::new(
        "driftgauge_requests_rejected_total",
        Kind::Counter,
        "Push and remote write requests refused, by reason.",
    );
    for (reason, v) in t.requests_rejected.snapshot() {
        requests_rejected.push(one("reason", &reason), v);
    }
    let mut webhook = Family::new(
        "driftgauge_webhook_requests_total",
        Kind::Counter,
        "Webhook HTTP attempts, by webhook and outcome.",
    );
    for ((name, outcome), v) in t.webhook_requests.snapshot() {
        webhook.push(
            vec![("outcome".into(), outcome), ("webhook".into(), name)],
            v,
        );
    }
    let mut queue = Family::new(
        "driftgauge_webhook_queue_length",
        Kind::Gauge,
        "Webhook deliveries waiting or retrying.",
    );
    queue.push(
        vec![],
        t.webhook_queue_length.load(Ordering::Relaxed).max(0) as f64,
    );
    let mut reload_ok = Family::new(
        "driftgauge_config_last_reload_successful",
        Kind::Gauge,
        "Whether the last configuration reload attempt was successful.",
    );
    reload_ok.push(
        vec![],
        t.config_last_reload_successful.load(Ordering::Relaxed) as f64,
    );
    let mut reload_ts = Family::new(
        "driftgauge_config_last_reload_success_timestamp_seconds",
        Kind::Gauge,
        "Timestamp of the last successful configuration reload.",
    );
    reload_ts.push(
        vec![],
        t.config_last_reload_success_timestamp
            .load(Ordering::Relaxed) as f64,
    );
    let mut flushed = Family::new(
        "driftgauge_storage_last_flush_timestamp_seconds",
        Kind::Gauge,
        "Unix time of the last successful flush of rule state to the store.",
    );
    flushed.push(
        vec![],
        t.storage_last_flush_timestamp.load(Ordering::Relaxed) as f64 / 1000.0,
    );
    let mut storage_healthy = Family::new(
        "driftgauge_storage_healthy",
        Kind::Gauge,
        "1 while rule state and webhook deliveries can be persisted; 0 from a failed store write until one succeeds (not ready meanwhile).",
    );
    storage_healthy.push(vec![], f64::from(u8::from(t.storage_healthy.get())));
    let [held, held_limit] = held_values(engine, generation);
    let mut build = Family::new(
        "driftgauge_build_info",
        Kind::Gauge,
        "A metric with a constant '1' value labeled by version and revision.",
    );
    build.push(
        vec![
            ("revision".into(), REVISION.into()),
            ("version".into(), VERSION.into()),
        ],
        1.0,
    );
    let shard = engine.cluster().shard;
    let mut shard_info = Family::new(
        "driftgauge_shard_info",
        Kind::Gauge,
        "1, labeled by this process's shard index and the shard total (0 of 1 when unsharded).",
    );
    shard_info.push(
        vec![
            ("index".into(), shard.index().to_string()),
            ("total".into(), shard.total().to_string()),
        ],
        1.0,
    );
    let mut ha_changes = Family::new(
        "driftgauge_ha_elected_replica_changes_total",
        Kind::Counter,
        "Times the remote write HA tracker elected another replica of a cluster (the first election counts), by cluster.",
    );
    for (cluster, v) in t.ha_elected_replica_changes.snapshot() {
        ha_changes.push(one("cluster", &cluster), v);
    }
    let mut ha_elected = Family::new(
        "driftgauge_ha_elected_replica_status",
        Kind::Gauge,
        "1 for the replica of each HA cluster whose remote write samples are taken.",
    );
    for (cluster, replica) in engine.ha.snapshot() {
        ha_elected.push(
            vec![("cluster".into(), cluster), ("replica".into(), replica)],
            1.0,
        );
    }
    let mut query_failures = Family::new(
        "driftgauge_query_failures_total",
        Kind::Counter,
        "Failed query-source requests (errors, timeouts, bad answers), by source.",
    );
    for (source, v) in t.query_failures.snapshot() {
        query_failures.push(one("source", &source), v);
    }
    let mut scrape_failures = Family::new(
        "driftgauge_scrape_failures_total",
        Kind::Counter,
        "Failed scrapes (connection errors, timeouts, non-2xx statuses, bad bodies), by job.",
    );
    for (job, v) in t.scrape_failures.snapshot() {
        scrape_failures.push(one("job", &job), v);
    }

    vec![
        share,
        received,
        unselected,
        rejected,
        requests_rejected,
        evals,
        eval_failures,
        last_duration,
        last_ts,
        webhook,
        queue,
        reload_ok,
        reload_ts,
        flushed,
        storage_healthy,
        held,
        held_limit,
        build,
        shard_info,
        ha_changes,
        ha_elected,
        query_failures,
        scrape_failures,
    ]
}

pub fn render(engine: &Engine, format: Format) -> String {
    let generation = engine.current();

    // One snapshot of each group's published output: every family below reads the same one.
    let outputs: Vec<_> = generation.groups.iter().map(|g| (g, g.output())).collect();
    let all_labels: Vec<&Labels> = outputs
        .iter()
        .flat_map(|(_, out)| out.series.iter().map(|s| &*s.labels))
        .collect();
    let rule_labels = RuleLabels::build(&all_labels);
    drop(all_labels);
    let is_ema: Vec<Vec<bool>> = outputs
        .iter()
        .map(|(g, _)| {
            g.rules
                .iter()
                .map(|r| matches!(r.rule.detector.name(), "ema" | "cusum"))
                .collect()
        })
        .collect();
    // Every evaluated series with its label span and whether its rule is an `ema` rule, in
    // group then output order (the order of `rule_labels.spans`).
    let rows = || {
        outputs
            .iter()
            .zip(&is_ema)
            .flat_map(|((_, out), ema)| {
                out.series
                    .iter()
                    .map(move |s| (s, ema.get(s.rule).copied().unwrap_or(false)))
            })
            .zip(&rule_labels.spans)
            .map(|((s, ema), &span)| (s, span, ema))
    };

    // Each series makes at most five lines; untouched capacity costs nothing (the pages of a
    // large allocation are only mapped when written).
    let per_line = WINDOW_SAMPLES.len() + "{,window=\"reference\"} ".len() + 32;
    let mut out = String::with_capacity(
        64 * 1024 + 5 * (rule_labels.text.len() + rule_labels.spans.len() * (per_line + 1)),
    );

    write_header(
        &mut out,
        DRIFT_STATISTIC,
        Kind::Gauge,
        "The detector's statistic at the last evaluation (KS D, ...).",
        format,
    );
    for (s, span, _) in rows() {
        if let Some(v) = s.statistic {
            line(&mut out, DRIFT_STATISTIC, rule_labels.all(span), v);
        }
    }
    write_header(
        &mut out,
        DRIFT_P_VALUE,
        Kind::Gauge,
        "The detector's p-value at the last evaluation, for detectors that have one.",
        format,
    );
    for (s, span, _) in rows() {
        if let Some(v) = s.p_value {
            line(&mut out, DRIFT_P_VALUE, rule_labels.all(span), v);
        }
    }
    write_header(
        &mut out,
        DRIFT_THRESHOLD,
        Kind::Gauge,
        THRESHOLD_HELP,
        format,
    );
    for (s, span, _) in rows() {
        if let Some(v) = s.threshold {
            line(&mut out, DRIFT_THRESHOLD, rule_labels.all(span), v);
        }
    }
    write_header(
        &mut out,
        DRIFT_STATUS,
        Kind::Gauge,
        "Rule+series state: 0 stable, 1 warning, 2 drifted.",
        format,
    );
    for (s, span, _) in rows() {
        line(
            &mut out,
            DRIFT_STATUS,
            rule_labels.all(span),
            s.status.gauge(),
        );
    }
    write_header(
        &mut out,
        EMA_VALUE,
        Kind::Gauge,
        "Current exponential moving average of an ema rule's series.",
        format,
    );
    for (s, span, ema) in rows() {
        if let (true, Some(v)) = (ema, s.ema) {
            line(&mut out, EMA_VALUE, rule_labels.all(span), v);
        }
    }
    write_header(
        &mut out,
        WINDOW_SAMPLES,
        Kind::Gauge,
        "Samples held in a rule+series window.",
        format,
    );
    for (s, span, ema) in rows() {
        if !ema {
            window_line(
                &mut out,
                &rule_labels,
                span,
                &s.labels,
                "reference",
                s.reference_samples,
            );
        }
        window_line(
            &mut out,
            &rule_labels,
            span,
            &s.labels,
            "current",
            s.current_samples,
        );
    }
    drop(rule_labels);

    let service = service_families(
        engine,
        &generation,
        outputs.iter().map(|(g, out)| (&***g, &**out)),
    );
    encode_into(&mut out, &service, format);
    finish(&mut out, format);
    out
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::config::model::{Config, RuleSet};
    use crate::config::{parse_rule_file, RuleContext};
    use crate::formats::exposition::encode::encode;
    use crate::labels::SeriesSamples;
    use crate::output::webhook::WebhookSender;
    use crate::telemetry::Telemetry;

    fn labels(l: &crate::labels::Labels) -> Vec<(String, String)> {
        l.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// `/metrics` as it was rendered before the label-buffer encoder: every line built as a
    /// label vector, sorted, and encoded. The fast render must give the same bytes.
    fn reference_render(engine: &Engine, format: Format) -> String {
        let generation = engine.current();

        let mut statistic = Family::new(
            DRIFT_STATISTIC,
            Kind::Gauge,
            "The detector's statistic at the last evaluation (KS D, ...).",
        );
        let mut p_value = Family::new(
            DRIFT_P_VALUE,
            Kind::Gauge,
            "The detector's p-value at the last evaluation, for detectors that have one.",
        );
        let mut threshold = Family::new(DRIFT_THRESHOLD, Kind::Gauge, THRESHOLD_HELP);
        let mut status = Family::new(
            DRIFT_STATUS,
            Kind::Gauge,
            "Rule+series state: 0 stable, 1 warning, 2 drifted.",
        );
        let mut ema = Family::new(
            EMA_VALUE,
            Kind::Gauge,
            "Current exponential moving average of an ema rule's series.",
        );
        let mut window = Family::new(
            WINDOW_SAMPLES,
            Kind::Gauge,
            "Samples held in a rule+series window.",
        );
        // One snapshot of each group's output, as the render takes.
        let outputs: Vec<_> = generation.groups.iter().map(|g| (g, g.output())).collect();
        for (g, out) in &outputs {
            for s in &out.series {
                let l = labels(&s.labels);
                if let Some(v) = s.statistic {
                    statistic.push(l.clone(), v);
                }
                if let Some(v) = s.p_value {
                    p_value.push(l.clone(), v);
                }
                if let Some(v) = s.threshold {
                    threshold.push(l.clone(), v);
                }
                status.push(l.clone(), s.status.gauge());
                let is_ema = g
                    .rules
                    .get(s.rule)
                    .is_some_and(|r| matches!(r.rule.detector.name(), "ema" | "cusum"));
                if is_ema {
                    if let Some(v) = s.ema {
                        ema.push(l.clone(), v);
                    }
                } else {
                    let mut r = l.clone();
                    r.push(("window".into(), "reference".into()));
                    window.push(r, s.reference_samples as f64);
                }
                let mut c = l;
                c.push(("window".into(), "current".into()));
                window.push(c, s.current_samples as f64);
            }
        }
        for f in [
            &mut statistic,
            &mut p_value,
            &mut threshold,
            &mut status,
            &mut ema,
            &mut window,
        ] {
            for (l, _) in f.samples.iter_mut() {
                l.sort();
            }
        }

        let mut families = vec![statistic, p_value, threshold, status, ema, window];
        families.extend(service_families(
            engine,
            &generation,
            outputs.iter().map(|(g, out)| (&***g, &**out)),
        ));
        encode(&families, format)
    }

    const RULES: &str = r#"
groups:
  - name: g1
    interval: 1h
    labels: {team: "a\\b"}
    rules:
      - name: ks_rule
        detector: ks
        series: feature_value
        reference: {first: 20}
        current: {last: 20}
      - name: ema_rule
        detector: ema
        series: acc
        smoothing: 0.5
        below: 0.5
      - name: ks_pooled
        detector: ks
        series: feature_value
        by: [zone]
        reference: {first: 20}
        current: {last: 20}
        labels: {xtra: "after window", zz: "last"}
  - name: "g2"
    interval: 1h
    rules:
      - name: windowed
        detector: ks
        series: feature_value
        reference: {first: 20}
        current: {last: 20}
        labels: {window: "rule's own"}
      - name: not_fed
        detector: ks
        series: nothing
        reference: {first: 20}
        current: {last: 20}
      - name: short
        detector: ks
        series: feature_value
        reference: {first: 1000}
        current: {last: 10}
        min_samples: 10
"#;

    #[test]
    fn fast_render_gives_the_bytes_of_the_reference_render() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let _guard = rt.enter();
        let groups = parse_rule_file(
            RULES,
            "r.yml",
            &RuleContext {
                base_dir: std::path::Path::new("."),
                default_interval: Duration::from_secs(15),
                webhooks: None,
            },
        )
        .expect("rules");
        let telemetry = Arc::new(Telemetry::default());
        let sender =
            WebhookSender::new(Default::default(), Arc::clone(&telemetry)).expect("sender");
        let engine = Engine::new(
            Config::default(),
            RuleSet { groups },
            telemetry,
            Arc::new(sender),
        );
        let empty = render(&engine, Format::Text);
        assert_eq!(empty, reference_render(&engine, Format::Text));
        let label_sets: Vec<Vec<(&str, &str)>> = vec![
            vec![("model", "fraud"), ("feature", "amount"), ("zone", "eu")],
            vec![
                ("model", "a \"quoted\" \\ back\nslash"),
                ("rule", "clash"),
                ("zone", "us"),
            ],
            vec![("window", "own"), ("group", "g"), ("zzz", "ünïcödé")],
            vec![("a", ""), ("zone", "eu")],
            vec![],
        ];
        let mut x = 0.37_f64;
        let mut next = || {
            x = (x * 3.9 * (1.0 - x)).clamp(1e-9, 1.0 - 1e-9);
            x
        };
        for (i, ls) in label_sets.iter().enumerate() {
            let labels: Labels = ls
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            let values: Vec<f64> = (0..40)
                .map(|k| next() + if k >= 20 { i as f64 * 0.3 } else { 0.0 })
                .collect();
            let batch = [
                SeriesSamples {
                    metric: "feature_value".into(),
                    labels: labels.clone(),
                    values,
                },
                SeriesSamples {
                    metric: "acc".into(),
                    labels,
                    values: vec![next(), next()],
                },
            ];
            engine.ingest(&batch, "push", 1_000).expect("ingest");
        }
        engine.telemetry.samples_rejected.add("bad \"reason\"", 2.0);
        engine.telemetry.requests_rejected.add("too_large", 1.0);
        engine.telemetry.webhook_requests.add("w", "success", 3.0);
        engine
            .telemetry
            .webhook_queue_length
            .store(4, Ordering::Relaxed);
        let generation = engine.current();
        engine.evaluate_group(&generation, 0, 2_000);
        engine.evaluate_group(&generation, 1, 2_500);
        for format in [Format::Text, Format::OpenMetrics] {
            let fast = render(&engine, format);
            let reference = reference_render(&engine, format);
            assert_eq!(fast, reference, "{format:?}");
            // Every kind of line is there: the comparison covers them.
            for needle in [
                "driftgauge_drift_statistic{",
                "driftgauge_drift_p_value{",
                "driftgauge_ema_value{",
                "window=\"reference\"",
                "window=\"rule's own\"",
                "exported_window=\"own\"",
                "exported_rule=\"clash\"",
                "xtra=\"after window\",zone=\"eu\",zz=\"last\"}",
                "\\\"quoted\\\" \\\\ back\\nslash",
            ] {
                assert!(fast.contains(needle), "{needle} missing:\n{fast}");
            }
        }
    }
}
