//! Every metric name driftgauge exposes lives here, and `/metrics` is rendered here from the
//! engine's published group outputs and the telemetry counters.

use std::sync::atomic::Ordering;

use super::exposition::{encode, Family, Format, Kind};
use crate::engine::Engine;

pub const DRIFT_STATISTIC: &str = "driftgauge_drift_statistic";
pub const DRIFT_P_VALUE: &str = "driftgauge_drift_p_value";
pub const DRIFT_STATUS: &str = "driftgauge_drift_status";
pub const EMA_VALUE: &str = "driftgauge_ema_value";
pub const WINDOW_SAMPLES: &str = "driftgauge_window_samples";

/// Version and revision of this build (`driftgauge_build_info`).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub const REVISION: &str = match option_env!("DRIFTGAUGE_REVISION") {
    Some(r) => r,
    None => "unknown",
};

fn labels(l: &crate::rules::model::Labels) -> Vec<(String, String)> {
    l.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

fn one(name: &str, value: &str) -> Vec<(String, String)> {
    vec![(name.to_string(), value.to_string())]
}

/// Renders `/metrics` in the requested format.
pub fn render(engine: &Engine, format: Format) -> String {
    let generation = engine.current();
    let t = &engine.telemetry;

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

    for g in &generation.groups {
        let out = g.output();
        let name = &g.group.name;
        for s in &out.series {
            let l = labels(&s.labels);
            if let Some(v) = s.statistic {
                statistic.push(l.clone(), v);
            }
            if let Some(v) = s.p_value {
                p_value.push(l.clone(), v);
            }
            status.push(l.clone(), s.status.gauge());
            let is_ema = g
                .rules
                .get(s.rule)
                .is_some_and(|r| r.rule.detector.name() == "ema");
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
        evals.push(one("group", name), t.rule_evaluations.get(name));
        eval_failures.push(one("group", name), t.rule_evaluation_failures.get(name));
        if let Some(ms) = out.last_evaluation_ms {
            last_duration.push(one("group", name), out.last_duration.as_secs_f64());
            last_ts.push(one("group", name), ms as f64 / 1000.0);
        }
    }
    for f in [
        &mut statistic,
        &mut p_value,
        &mut status,
        &mut ema,
        &mut window,
    ] {
        for (l, _) in f.samples.iter_mut() {
            l.sort();
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
    let mut rejected = Family::new(
        "driftgauge_samples_rejected_total",
        Kind::Counter,
        "Sample values refused, by reason.",
    );
    for (reason, v) in t.samples_rejected.snapshot() {
        rejected.push(one("reason", &reason), v);
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

    encode(
        &[
            statistic,
            p_value,
            status,
            ema,
            window,
            received,
            rejected,
            evals,
            eval_failures,
            last_duration,
            last_ts,
            webhook,
            queue,
            reload_ok,
            reload_ts,
            flushed,
            build,
            query_failures,
            scrape_failures,
        ],
        format,
    )
}
