//! The `/api/v1/*` handlers.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde::Deserialize;
use serde_json::json;

use super::{body_reason, count_refused, json_response, ApiError, Body, State};
use crate::detect::evaluate;
use crate::detect::ks::{Alternative, Method};
use crate::detect::report::ks_report;
use crate::formats::push;
use crate::ingest::IngestError;
use crate::time::{now_ms, rfc3339};

pub async fn push(app: &Arc<State>, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let telemetry = &app.engine.telemetry;
    let (body, _reservation) = app
        .read_body(req, super::budget::PUSH_FACTOR)
        .await
        .inspect_err(|e| count_refused(telemetry, body_reason(e), 0))?;
    // Parsing a large body and ingesting it are CPU work (tens of milliseconds for a few
    // megabytes): off the async workers, so they keep serving `/metrics` and the rest.
    let engine = Arc::clone(&app.engine);
    let outcome = tokio::task::spawn_blocking(move || {
        let now = now_ms();
        let batch = push::parse_timed(&body, now)?;
        let values: usize = batch.series.iter().map(|s| s.values.len()).sum();
        Ok::<_, push::PushError>(
            engine
                .ingest_timed(&batch.series, &batch.timestamps, "push", now)
                .map(|n| (n, values)),
        )
    })
    .await
    .map_err(|e| ApiError::Internal(format!("ingestion failed: {e}")))?;
    match outcome {
        Err(e) => {
            count_refused(telemetry, e.reason(), e.values());
            Err(ApiError::BadData {
                index: e.index(),
                message: e.to_string(),
            })
        }
        // `dropped`: values of series no rule selects (not held).
        Ok(Ok((n, values))) => Ok(json_response(
            StatusCode::OK,
            &json!({ "accepted": n, "dropped": values - n }),
        )),
        Ok(Err(e)) => {
            // The engine counted the values.
            count_refused(telemetry, e.reason(), 0);
            match e {
                IngestError::OutOfOrder { index, .. } => Err(ApiError::BadData {
                    index: Some(index),
                    message: e.to_string(),
                }),
                _ => Err(ApiError::TooManySeries(e.to_string())),
            }
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EvaluateRequest {
    detector: String,
    #[serde(default)]
    reference: Option<Vec<f64>>,
    #[serde(default)]
    current: Option<Vec<f64>>,
    #[serde(default)]
    reference_weights: Option<Vec<f64>>,
    #[serde(default)]
    current_weights: Option<Vec<f64>>,
    #[serde(default)]
    reference_counts: Option<Vec<f64>>,
    #[serde(default)]
    current_counts: Option<Vec<f64>>,
    #[serde(default)]
    alternative: Option<String>,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    variant: Option<String>,
    /// `2` or `"e"`.
    #[serde(default)]
    base: Option<serde_json::Value>,
    #[serde(default)]
    yates: bool,
    #[serde(default)]
    bins: Option<usize>,
    #[serde(default)]
    alpha: Option<f64>,
    #[serde(default)]
    statistic: Option<f64>,
    #[serde(default)]
    threshold: Option<f64>,
}

/// Largest total of values `/api/v1/evaluate` takes in one request (the body limit bounds it too).
const MAX_EVALUATE_VALUES: usize = 20_000_000;

/// `POST /api/v1/evaluate`: any detector, once (`detect::evaluate`); `ks` answers with the
/// `eval --output=json` object, as before.
pub async fn evaluate(
    app: &Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let limit = app.engine.current().config.limits.max_body_bytes;
    let (body, _reservation) = app.read_body(req, super::budget::EVALUATE_FACTOR).await?;
    let bad = |message: String| ApiError::BadData {
        message,
        index: None,
    };
    let r: EvaluateRequest =
        serde_json::from_slice(&body).map_err(|e| bad(format!("bad request body: {e}")))?;
    let len = |v: &Option<Vec<f64>>| v.as_ref().map_or(0, Vec::len);
    let total = len(&r.reference)
        + len(&r.current)
        + len(&r.reference_weights)
        + len(&r.current_weights)
        + len(&r.reference_counts)
        + len(&r.current_counts);
    if total > MAX_EVALUATE_VALUES {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    let base = match &r.base {
        None => None,
        Some(serde_json::Value::Number(n)) => Some(n.to_string()),
        Some(serde_json::Value::String(s)) => Some(s.clone()),
        Some(other) => return Err(bad(format!("base: expected 2 or \"e\", got {other}"))),
    };
    if r.detector == "ks" {
        return ks_evaluate(r).await;
    }
    let request = evaluate::Request {
        detector: r.detector,
        reference: r.reference,
        current: r.current,
        reference_weights: r.reference_weights,
        current_weights: r.current_weights,
        reference_counts: r.reference_counts,
        current_counts: r.current_counts,
        alternative: r.alternative,
        method: r.method,
        variant: r.variant,
        base,
        yates: r.yates,
        bins: r.bins,
        alpha: r.alpha,
        statistic: r.statistic,
        threshold: r.threshold,
    };
    let report = tokio::task::spawn_blocking(move || evaluate::evaluate(request))
        .await
        .map_err(|e| ApiError::Body(format!("evaluation failed: {e}")))?
        .map_err(|e| bad(e.0))?;
    let value = serde_json::to_value(report).map_err(|e| bad(e.to_string()))?;
    Ok(json_response(StatusCode::OK, &value))
}

/// The `ks` answer, field for field `driftgauge eval --output=json`.
async fn ks_evaluate(r: EvaluateRequest) -> Result<Response<Body>, ApiError> {
    let bad = |message: String| ApiError::BadData {
        message,
        index: None,
    };
    let (Some(reference), Some(current)) = (r.reference, r.current) else {
        return Err(bad(
            "reference and current: both required for detector \"ks\"".to_string(),
        ));
    };
    let alternative = match r.alternative.as_deref() {
        None => Alternative::TwoSided,
        Some(s) => Alternative::parse(s).ok_or_else(|| {
            bad(format!(
                "unknown alternative {s:?}: two-sided, less or greater"
            ))
        })?,
    };
    let method = match r.method.as_deref() {
        None => Method::Auto,
        Some(s) => Method::parse(s)
            .ok_or_else(|| bad(format!("unknown method {s:?}: auto, exact or asymp")))?,
    };
    let alpha = r.alpha.unwrap_or(0.05);
    if !(alpha > 0.0 && alpha < 1.0) {
        return Err(bad(format!("alpha must be in (0, 1), got {alpha}")));
    }
    if let Some(t) = r.statistic {
        if !(0.0..=1.0).contains(&t) {
            return Err(bad(format!("statistic must be in [0, 1], got {t}")));
        }
    }
    let report = tokio::task::spawn_blocking(move || {
        ks_report(
            &reference,
            &current,
            alternative,
            method,
            alpha,
            r.statistic,
        )
    })
    .await
    .map_err(|e| ApiError::Body(format!("evaluation failed: {e}")))?
    .map_err(|e| bad(e.to_string()))?;
    let value = serde_json::to_value(report).map_err(|e| bad(e.to_string()))?;
    Ok(json_response(StatusCode::OK, &value))
}

fn opt_time(ms: Option<i64>) -> serde_json::Value {
    ms.map(|m| json!(rfc3339(m)))
        .unwrap_or(serde_json::Value::Null)
}

/// Finite floats as numbers; JSON has no NaN or infinities.
fn num(v: Option<f64>) -> serde_json::Value {
    match v {
        Some(x) if x.is_finite() => json!(x),
        _ => serde_json::Value::Null,
    }
}

/// How a p-value rule decides: `alpha` as written, or the budget it calibrates to.
fn level_json(rule: &crate::config::model::Rule) -> serde_json::Value {
    use crate::config::model::DetectorSpec;
    use crate::detect::budget::Level;
    let (level, correction) = match &rule.detector {
        DetectorSpec::Ks(spec) if spec.threshold.is_none() => (spec.level, spec.correction),
        DetectorSpec::Counts(spec) if spec.threshold.is_none() => (spec.level, spec.correction),
        DetectorSpec::Ks(spec) => return json!({"threshold": spec.threshold}),
        DetectorSpec::Counts(spec) => return json!({"threshold": spec.threshold}),
        _ => return serde_json::Value::Null,
    };
    match level {
        Level::Alpha(a) => json!({"alpha": a, "correction": correction.as_str()}),
        Level::Budget {
            false_alarms,
            scope,
        } => json!({
            "false_alarms": false_alarms.to_string(),
            "false_alarms_scope": scope.as_str(),
            "correction": correction.as_str(),
        }),
    }
}

pub fn rules(app: &Arc<State>) -> Response<Body> {
    let generation = app.engine.current();
    let mut groups = Vec::new();
    for g in &generation.groups {
        let out = g.output();
        let mut rules = Vec::new();
        for (ri, rt) in g.rules.iter().enumerate() {
            let rule = &rt.rule;
            let series: Vec<_> = out
                .series
                .iter()
                .filter(|s| s.rule == ri)
                .map(|s| {
                    json!({
                        "labels": &*s.labels,
                        "state": s.status.as_str(),
                        "state_since": opt_time(s.since_ms),
                        "statistic": num(s.statistic),
                        "p_value": num(s.p_value),
                        "threshold": num(s.threshold),
                        "value": num(s.ema),
                        "reference_samples": s.reference_samples,
                        "current_samples": s.current_samples,
                        "last_evaluation": opt_time(out.last_evaluation_ms),
                        "last_error": s.last_error,
                    })
                })
                .collect();
            let worst = out
                .series
                .iter()
                .filter(|s| s.rule == ri)
                .map(|s| s.status)
                .max();
            let whole = out.rules.iter().find(|r| r.rule == ri);
            rules.push(json!({
                "name": rule.name,
                "detector": rule.detector.name(),
                "series_selector": rule.selector.as_str(),
                "by": rule.by,
                "labels": rule.labels,
                "annotations": rule.annotations,
                "webhooks": rule.webhooks,
                "state": worst.map(|s| s.as_str()).unwrap_or("stable"),
                "drift_share": num(whole.map(|r| r.share())),
                "share_state": whole.and_then(|r| r.status).map(|s| s.as_str()),
                "level": level_json(rule),
                "last_evaluation": opt_time(out.last_evaluation_ms),
                "series": series,
            }));
        }
        groups.push(json!({
            "name": g.group.name,
            "file": g.group.file,
            "interval": g.group.interval.as_secs_f64(),
            "last_evaluation": opt_time(out.last_evaluation_ms),
            "evaluation_time": out.last_duration.as_secs_f64(),
            "rules": rules,
        }));
    }
    json_response(
        StatusCode::OK,
        &json!({"status": "success", "data": {"groups": groups}}),
    )
}
