//! End to end through the public contract: push → windows → rules → /metrics → webhooks.

use std::time::Duration;

use serde_json::json;

use crate::receiver::{Receiver, Script};
use crate::support::{metric_value, wait_until, Files, Rng, Server, WAIT};
use driftgauge::detect::ks::{ks_2samp, Alternative, Method};

fn config(receiver: &Receiver, extra: &str) -> String {
    format!(
        r#"
global:
  evaluation_interval: 50ms
rule_files: ["rules/*.yml"]
webhooks:
  retrain:
    url: {url}
    timeout: 2s
    min_backoff: 20ms
    max_backoff: 100ms
    send_resolved: true
    extra: {{hyperparameter_tuning: true}}
{extra}
"#,
        url = receiver.url("/retrain")
    )
}

const KS_RULES: &str = r#"
groups:
  - name: fraud-model
    interval: 50ms
    labels: {model_owner: risk}
    rules:
      - name: amount_drift
        detector: ks
        series: 'feature_value{model="fraud"}'
        reference: {first: 300}
        current: {last: 300}
        min_samples: 100
        alpha: 0.05
        statistic: 0.2
        labels: {team: risk}
        annotations: {summary: 'amount drifted for {{ $labels.model }} (D={{ $value }})'}
        webhooks: [retrain]
"#;

const EMA_RULES: &str = r#"
groups:
  - name: quality
    interval: 50ms
    rules:
      - name: accuracy_degradation
        detector: ema
        min_samples: 1
        series: 'model_accuracy{model="fraud"}'
        smoothing: 0.5
        below: 0.85
        warning_below: 0.9
        webhooks: [retrain]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ks_push_drifts_gauges_and_calls_the_webhook_once() {
    let rx = Receiver::start(Script::ok()).await;
    let server = Server::start(Files::new(&config(&rx, "")).rule_file("fraud.yml", KS_RULES)).await;
    let mut rng = Rng::new(1);
    let reference = rng.normals(300, 0.0, 1.0);
    let current = rng.normals(300, 1.0, 1.0);
    let labels = [("model", "fraud"), ("feature", "amount")];
    server.push("feature_value", &labels, &reference).await;
    server.push("feature_value", &labels, &current).await;

    let sel = [("rule", "amount_drift"), ("feature", "amount")];
    server
        .wait_metric("driftgauge_drift_status", &sel, |v| v == 2.0)
        .await;
    let text = server.metrics().await;
    let expected = ks_2samp(&reference, &current, Alternative::TwoSided, Method::Auto).unwrap();
    assert_eq!(
        metric_value(&text, "driftgauge_drift_statistic", &sel),
        Some(expected.statistic)
    );
    let p = metric_value(&text, "driftgauge_drift_p_value", &sel).unwrap();
    assert!(
        (p - expected.p_value).abs() <= 1e-12 + 1e-9 * expected.p_value,
        "{p} vs {}",
        expected.p_value
    );
    let with_window = |w| [("rule", "amount_drift"), ("window", w)];
    assert_eq!(
        metric_value(
            &text,
            "driftgauge_window_samples",
            &with_window("reference")
        ),
        Some(300.0)
    );
    assert_eq!(
        metric_value(&text, "driftgauge_window_samples", &with_window("current")),
        Some(300.0)
    );
    // Group and rule labels ride on the gauges.
    assert!(
        text.contains(r#"model_owner="risk""#) && text.contains(r#"team="risk""#),
        "{text}"
    );

    let calls = rx.wait_for(1, WAIT).await;
    let body = calls[0].json();
    assert_eq!(body["version"], "1");
    assert_eq!(body["status"], "drifted");
    assert_eq!(body["previous_status"], "stable");
    assert_eq!(body["rule"], "amount_drift");
    assert_eq!(body["group"], "fraud-model");
    assert_eq!(body["detector"], "ks");
    assert_eq!(
        body["labels"],
        json!({"model": "fraud", "feature": "amount", "team": "risk", "model_owner": "risk"})
    );
    assert_eq!(body["statistic"], json!(expected.statistic));
    assert_eq!(body["value"], serde_json::Value::Null);
    assert_eq!(body["extra"], json!({"hyperparameter_tuning": true}));
    let summary = body["annotations"]["summary"].as_str().unwrap();
    assert!(
        summary.starts_with("amount drifted for fraud (D=0."),
        "{summary}"
    );
    assert!(body["starts_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        calls[0].header("idempotency-key"),
        body["idempotency_key"].as_str()
    );
    assert_eq!(calls[0].header("content-type"), Some("application/json"));

    // Still drifted a few evaluations later, and no second call.
    let evals = |t: &str| {
        metric_value(
            t,
            "driftgauge_rule_evaluations_total",
            &[("group", "fraud-model")],
        )
        .unwrap()
    };
    let before = evals(&server.metrics().await);
    wait_until("three more evaluations", WAIT, || async {
        evals(&server.metrics().await) >= before + 3.0
    })
    .await;
    assert_eq!(rx.requests().len(), 1, "one call on entering drifted");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ema_degrades_then_recovers_with_send_resolved() {
    let rx = Receiver::start(Script::ok()).await;
    let server = Server::start(Files::new(&config(&rx, "")).rule_file("q.yml", EMA_RULES)).await;
    let labels = [("model", "fraud")];
    let sel = [("rule", "accuracy_degradation")];
    server.push("model_accuracy", &labels, &[0.95, 0.94]).await;
    server
        .wait_metric("driftgauge_drift_status", &sel, |v| v == 0.0)
        .await;
    // 0.945 → 0.8 gives 0.8725: warning band.
    server.push("model_accuracy", &labels, &[0.8]).await;
    server
        .wait_metric("driftgauge_ema_value", &sel, |v| {
            v == 0.5 * 0.8 + 0.5 * (0.5 * 0.94 + 0.5 * 0.95)
        })
        .await;
    server
        .wait_metric("driftgauge_drift_status", &sel, |v| v == 1.0)
        .await;
    server.push("model_accuracy", &labels, &[0.7, 0.7]).await;
    server
        .wait_metric("driftgauge_drift_status", &sel, |v| v == 2.0)
        .await;
    let calls = rx.wait_for(1, WAIT).await;
    let body = calls[0].json();
    assert_eq!(body["status"], "drifted");
    assert_eq!(body["detector"], "ema");
    assert_eq!(body["statistic"], serde_json::Value::Null);
    assert!(body["value"].as_f64().unwrap() < 0.85);
    // Recovery: send_resolved calls again with the new status.
    server
        .push("model_accuracy", &labels, &[1.0, 1.0, 1.0, 1.0])
        .await;
    server
        .wait_metric("driftgauge_drift_status", &sel, |v| v == 0.0)
        .await;
    let calls = rx.wait_for(2, WAIT).await;
    let resolved = calls[1].json();
    assert_eq!(resolved["status"], "stable");
    assert_eq!(resolved["previous_status"], "drifted");
    assert_ne!(
        calls[0].header("idempotency-key"),
        calls[1].header("idempotency-key")
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_series_of_one_rule_are_evaluated_apart() {
    let rx = Receiver::start(Script::ok()).await;
    let server = Server::start(Files::new(&config(&rx, "")).rule_file("fraud.yml", KS_RULES)).await;
    let mut rng = Rng::new(2);
    let a = [("model", "fraud"), ("feature", "amount")];
    let b = [("model", "fraud"), ("feature", "age")];
    server
        .push("feature_value", &a, &rng.normals(300, 0.0, 1.0))
        .await;
    server
        .push("feature_value", &b, &rng.normals(300, 0.0, 1.0))
        .await;
    server
        .push("feature_value", &a, &rng.normals(300, 2.0, 1.0))
        .await;
    server
        .push("feature_value", &b, &rng.normals(300, 0.0, 1.0))
        .await;
    server
        .wait_metric("driftgauge_drift_status", &[("feature", "amount")], |v| {
            v == 2.0
        })
        .await;
    let text = server.metrics().await;
    assert_eq!(
        metric_value(&text, "driftgauge_drift_status", &[("feature", "age")]),
        Some(0.0)
    );
    let calls = rx.wait_for(1, WAIT).await;
    assert_eq!(calls[0].json()["labels"]["feature"], "amount");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_pools_matching_series_into_one_window() {
    let rx = Receiver::start(Script::ok()).await;
    let rules = r#"
groups:
  - name: pooled
    interval: 50ms
    rules:
      - name: pooled_drift
        detector: ks
        series: 'feature_value{model="fraud"}'
        by: [model, feature]
        reference: {first: 100}
        current: {last: 1000}
        min_samples: 20
"#;
    let server = Server::start(Files::new(&config(&rx, "")).rule_file("p.yml", rules)).await;
    let mut rng = Rng::new(3);
    for version in ["v1", "v2", "v3"] {
        let labels = [
            ("model", "fraud"),
            ("version", version),
            ("feature", "amount"),
        ];
        server
            .push("feature_value", &labels, &rng.normals(60, 0.0, 1.0))
            .await;
    }
    let sel = [("rule", "pooled_drift"), ("window", "current")];
    server
        .wait_metric("driftgauge_window_samples", &sel, |v| v == 80.0)
        .await;
    let text = server.metrics().await;
    assert_eq!(
        metric_value(
            &text,
            "driftgauge_window_samples",
            &[("rule", "pooled_drift"), ("window", "reference")]
        ),
        Some(100.0)
    );
    // One pooled series, labelled by the `by` labels only.
    let status: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("driftgauge_drift_status{"))
        .collect();
    assert_eq!(status.len(), 1, "{text}");
    assert!(!status[0].contains("version="), "{}", status[0]);
    assert!(status[0].contains(r#"feature="amount""#) && status[0].contains(r#"model="fraud""#));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_pushes_are_refused_whole_and_nothing_is_applied() {
    let rx = Receiver::start(Script::ok()).await;
    let cfg = config(&rx, "limits:\n  max_series: 3\n  max_body_bytes: 8192\n");
    let server = Server::start(Files::new(&cfg).rule_file("q.yml", EMA_RULES)).await;
    let good = json!({"metric": "model_accuracy", "labels": {"model": "fraud"}, "value": 0.99});
    let cases: Vec<(serde_json::Value, usize, &str)> = vec![
        (
            json!({"metric": "9bad", "value": 1}),
            1,
            "invalid metric name",
        ),
        (
            json!({"metric": "ok", "labels": {"bad-name": "x"}, "value": 1}),
            1,
            "invalid label name",
        ),
        (
            json!({"metric": "ok", "values": [1.0, "NaN"]}),
            1,
            "values[1]",
        ),
        (json!({"metric": "ok", "value": "abc"}), 1, "not a number"),
        (
            json!({"metric": "ok", "value": 1, "values": [1]}),
            1,
            "both",
        ),
        (json!({"metric": "ok"}), 1, "neither"),
        (json!({"metric": "ok", "values": []}), 1, "empty"),
        (
            json!({"metric": "ok", "labels": {"l": "x".repeat(5000)}, "value": 1}),
            1,
            "too long",
        ),
    ];
    for (bad, index, reason) in cases {
        let (status, v) = server
            .post_json(
                "/api/v1/samples",
                json!({"samples": [good.clone(), bad.clone()]}),
            )
            .await;
        assert_eq!(status, 400, "{bad}: {v}");
        assert_eq!(v["index"], index, "{bad}: {v}");
        assert!(v["error"].as_str().unwrap().contains(reason), "{bad}: {v}");
        assert!(
            v["error"]
                .as_str()
                .unwrap()
                .starts_with(&format!("samples[{index}]: ")),
            "{v}"
        );
    }
    for body in ["not json", "{}", r#"{"samples": 3}"#, "[]"] {
        let (status, text) = server.post("/api/v1/samples", body).await;
        assert_eq!(status, 400, "{body}: {text}");
        assert!(text.contains("\"error\""), "{text}");
    }
    // Over the body limit: 413.
    let big = json!({"samples": [{"metric": "m", "values": vec![0.5; 3000]}]});
    let (status, text) = server.post("/api/v1/samples", big.to_string()).await;
    assert_eq!(status, 413, "{text}");
    assert!(text.contains("max_body_bytes=8192"), "{text}");
    // Over the series limit: 429 naming it, and the batch is refused whole.
    let four: Vec<_> = (0..4)
        .map(|i| json!({"metric": "model_accuracy", "labels": {"model": "fraud", "i": i.to_string()}, "value": 1}))
        .collect();
    let (status, v) = server
        .post_json("/api/v1/samples", json!({"samples": four}))
        .await;
    assert_eq!(status, 429, "{v}");
    assert!(v["error"].as_str().unwrap().contains("max_series=3"), "{v}");

    // Nothing of any refused batch was applied: no samples counted, no window touched.
    let text = server.metrics().await;
    assert_eq!(
        metric_value(
            &text,
            "driftgauge_samples_received_total",
            &[("source", "push")]
        ),
        Some(0.0)
    );
    assert_eq!(
        metric_value(
            &text,
            "driftgauge_window_samples",
            &[("rule", "accuracy_degradation")]
        ),
        None
    );
    // A good batch still goes through afterwards.
    let (status, v) = server
        .post_json("/api/v1/samples", json!({"samples": [good]}))
        .await;
    assert_eq!((status, v), (200, json!({"accepted": 1, "dropped": 0})));
    let (status, _) = server.get("/api/v1/samples").await;
    assert_eq!(status, 405);
    server.stop().await;
}

/// Reads `driftgauge_{samples,requests}_rejected_total{reason}`, 0 when absent.
fn rejected(text: &str, unit: &str, reason: &str) -> f64 {
    metric_value(
        text,
        &format!("driftgauge_{unit}_rejected_total"),
        &[("reason", reason)],
    )
    .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_push_counts_once_in_requests_and_its_values_in_samples() {
    let rx = Receiver::start(Script::ok()).await;
    let cfg = config(&rx, "limits:\n  max_series: 2\n  max_body_bytes: 8192\n");
    let server = Server::start(Files::new(&cfg).rule_file("q.yml", EMA_RULES)).await;
    // Every request reason is there at 0 from the start, for `rate()`.
    let text = server.metrics().await;
    for reason in [
        "bad_body",
        "too_large",
        "bad_name",
        "bad_value",
        "series_limit",
        "memory_limit",
    ] {
        assert_eq!(
            metric_value(
                &text,
                "driftgauge_requests_rejected_total",
                &[("reason", reason)]
            ),
            Some(0.0),
            "{reason}: {text}"
        );
    }
    let good =
        json!({"metric": "model_accuracy", "labels": {"model": "fraud"}, "values": [0.9, 0.8]});
    // A bad name: the request once, its four values (the good entry's too).
    let (status, v) = server
        .post_json(
            "/api/v1/samples",
            json!({"samples": [good.clone(), {"metric": "9bad", "values": [1, 2]}]}),
        )
        .await;
    assert_eq!(status, 400, "{v}");
    // A bad value: three values.
    let (status, v) = server
        .post_json(
            "/api/v1/samples",
            json!({"samples": [good.clone(), {"metric": "ok", "value": "abc"}]}),
        )
        .await;
    assert_eq!(status, 400, "{v}");
    // Not JSON: the request only, its values are unknown.
    let (status, _) = server.post("/api/v1/samples", "not json").await;
    assert_eq!(status, 400);
    // Over the body limit: the request only.
    let big = json!({"samples": [{"metric": "m", "values": vec![0.5; 3000]}]});
    let (status, _) = server.post("/api/v1/samples", big.to_string()).await;
    assert_eq!(status, 413);
    // Over the series limit: the request, and the engine counts its three values (series
    // the rule selects: others are dropped, not counted against the limit).
    let three: Vec<_> = (0..3)
        .map(|i| json!({"metric": "model_accuracy", "labels": {"model": "fraud", "i": i.to_string()}, "value": 1}))
        .collect();
    let (status, v) = server
        .post_json("/api/v1/samples", json!({"samples": three}))
        .await;
    assert_eq!(status, 429, "{v}");

    let text = server.metrics().await;
    let counts = |reason| {
        (
            rejected(&text, "requests", reason),
            rejected(&text, "samples", reason),
        )
    };
    assert_eq!(counts("bad_name"), (1.0, 4.0), "{text}");
    assert_eq!(counts("bad_value"), (1.0, 3.0), "{text}");
    assert_eq!(counts("bad_body"), (1.0, 0.0), "{text}");
    assert_eq!(counts("too_large"), (1.0, 0.0), "{text}");
    assert_eq!(counts("series_limit"), (1.0, 3.0), "{text}");
    server.stop().await;
}

/// A push with the same label twice used to be taken, the last value winning, while remote
/// write refused it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_label_key_in_a_push_is_a_400() {
    let rx = Receiver::start(Script::ok()).await;
    let server = Server::start(Files::new(&config(&rx, "")).rule_file("q.yml", EMA_RULES)).await;
    let body = r#"{"samples": [
        {"metric": "model_accuracy", "labels": {"model": "fraud"}, "value": 0.9},
        {"metric": "model_accuracy", "labels": {"model": "other", "model": "fraud"}, "value": 0.1}]}"#;
    let (status, text) = server.post("/api/v1/samples", body).await;
    assert_eq!(status, 400, "{text}");
    let v: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(v["error"], "samples[1]: duplicate label name \"model\"");
    assert_eq!(v["index"], 1);
    let text = server.metrics().await;
    assert_eq!(rejected(&text, "requests", "bad_name"), 1.0, "{text}");
    assert_eq!(rejected(&text, "samples", "bad_name"), 2.0, "{text}");
    assert_eq!(
        metric_value(
            &text,
            "driftgauge_samples_received_total",
            &[("source", "push")]
        ),
        Some(0.0)
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_keeps_unchanged_rules_and_survives_a_bad_file() {
    let rx = Receiver::start(Script::ok()).await;
    let cfg = config(&rx, "");
    let server = Server::start(
        Files::new(&cfg)
            .rule_file("fraud.yml", KS_RULES)
            .rule_file("q.yml", EMA_RULES),
    )
    .await;
    let mut rng = Rng::new(4);
    server
        .push(
            "feature_value",
            &[("model", "fraud")],
            &rng.normals(150, 0.0, 1.0),
        )
        .await;
    server
        .push("model_accuracy", &[("model", "fraud")], &[0.9])
        .await;
    let ref_sel = [("rule", "amount_drift"), ("window", "reference")];
    server
        .wait_metric("driftgauge_window_samples", &ref_sel, |v| v == 150.0)
        .await;
    server
        .wait_metric(
            "driftgauge_ema_value",
            &[("rule", "accuracy_degradation")],
            |v| v == 0.9,
        )
        .await;

    // A bad file: 500 naming file:line:col, old rules keep running, reload gauge 0.
    server.rewrite(
        &Files::new(&cfg).rule_file("fraud.yml", KS_RULES).rule_file(
            "q.yml",
            "groups:\n  - name: q\n    rules:\n      - name: x\n        detector: nope\n",
        ),
    );
    let (status, text) = server.post("/-/reload", "").await;
    assert_eq!(status, 500, "{text}");
    assert!(text.contains("q.yml:5:19: "), "{text}");
    let t = server.metrics().await;
    assert_eq!(
        metric_value(&t, "driftgauge_config_last_reload_successful", &[]),
        Some(0.0)
    );
    server
        .push("model_accuracy", &[("model", "fraud")], &[0.5])
        .await;
    server
        .wait_metric(
            "driftgauge_ema_value",
            &[("rule", "accuracy_degradation")],
            |v| v == 0.7,
        )
        .await;

    // A good reload that drops the EMA rule and keeps the KS rule as it was.
    server.rewrite(&Files::new(&cfg).rule_file("fraud.yml", KS_RULES));
    let (status, text) = server.post("/-/reload", "").await;
    assert_eq!(status, 200, "{text}");
    let t = server.metrics().await;
    assert_eq!(
        metric_value(&t, "driftgauge_config_last_reload_successful", &[]),
        Some(1.0)
    );
    assert_eq!(
        metric_value(
            &t,
            "driftgauge_ema_value",
            &[("rule", "accuracy_degradation")]
        ),
        None,
        "removed rule left"
    );
    assert!(!t.contains("accuracy_degradation"), "{t}");
    assert!(!t.contains(r#"group="quality""#), "{t}");
    // The kept rule kept its frozen reference: 150 more values go to the reference, not a new one.
    server
        .push(
            "feature_value",
            &[("model", "fraud")],
            &rng.normals(200, 0.0, 1.0),
        )
        .await;
    server
        .wait_metric(
            "driftgauge_window_samples",
            &[("rule", "amount_drift"), ("window", "current")],
            |v| v == 50.0,
        )
        .await;
    server
        .wait_metric("driftgauge_window_samples", &ref_sel, |v| v == 300.0)
        .await;

    // A changed rule starts afresh.
    server.rewrite(
        &Files::new(&cfg).rule_file("fraud.yml", &KS_RULES.replace("alpha: 0.05", "alpha: 0.01")),
    );
    let (status, _) = server.post("/-/reload", "").await;
    assert_eq!(status, 200);
    let t = server.metrics().await;
    assert_eq!(
        metric_value(&t, "driftgauge_window_samples", &ref_sel),
        None,
        "changed rule reset its windows: {t}"
    );
    server
        .push(
            "feature_value",
            &[("model", "fraud")],
            &rng.normals(10, 0.0, 1.0),
        )
        .await;
    server
        .wait_metric("driftgauge_window_samples", &ref_sel, |v| v == 10.0)
        .await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_is_refused_without_the_lifecycle_flag() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("driftgauge.yml"), "rule_files: []\n").unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let options = driftgauge::app::Options {
        config_file: Some(dir.path().join("driftgauge.yml")),
        storage_path: dir.path().join("data"),
        ..Default::default()
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(driftgauge::app::run(options, listener, async move {
        let _ = stopped.await;
    }));
    driftgauge::net::install_crypto_provider();
    let client = reqwest::Client::new();
    let url = |p: &str| format!("http://{addr}{p}");
    wait_until("ready", WAIT, || async {
        client
            .get(url("/-/ready"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await;
    let r = client.post(url("/-/reload")).send().await.unwrap();
    assert_eq!(r.status(), 403);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("Lifecycle API is not enabled"));
    let _ = stop.send(());
    task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_retries_after_500s_with_one_idempotency_key_and_a_valid_signature() {
    use base64::Engine as _;
    use hmac::{Hmac, Mac};
    let rx = Receiver::start(Script::statuses([500, 500, 200])).await;
    let key = b"driftgauge-test-signing-key-0123";
    let secret = format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(key)
    );
    let cfg = format!(
        r#"
rule_files: ["rules/*.yml"]
webhooks:
  retrain:
    url: {url}
    min_backoff: 20ms
    max_backoff: 50ms
    bearer_token_file: token
    signing_secret_file: whsec
    headers: {{X-Team: risk}}
"#,
        url = rx.url("/hook")
    );
    let dir_files = Files::new(&cfg).rule_file("q.yml", EMA_RULES);
    // Secrets must exist before start: write them next to the config via a first start-less setup.
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("token"), "s3cr3t\n").unwrap();
    std::fs::write(tmp.path().join("whsec"), &secret).unwrap();
    let cfg_abs = cfg
        .replace(
            "bearer_token_file: token",
            &format!("bearer_token_file: {}", tmp.path().join("token").display()),
        )
        .replace(
            "signing_secret_file: whsec",
            &format!(
                "signing_secret_file: {}",
                tmp.path().join("whsec").display()
            ),
        );
    let server = Server::start(Files {
        config: cfg_abs,
        rules: dir_files.rules,
    })
    .await;
    server
        .push("model_accuracy", &[("model", "fraud")], &[0.1])
        .await;
    let calls = rx.wait_for(3, WAIT).await;
    assert_eq!(calls.len(), 3);
    let ik = calls[0].header("idempotency-key").unwrap().to_string();
    for c in &calls {
        assert_eq!(
            c.header("idempotency-key"),
            Some(ik.as_str()),
            "same key on every retry"
        );
        assert_eq!(c.header("authorization"), Some("Bearer s3cr3t"));
        assert_eq!(c.header("x-team"), Some("risk"));
        assert_eq!(c.header("webhook-id"), Some(ik.as_str()));
        let ts = c.header("webhook-timestamp").unwrap();
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
        mac.update(format!("{ik}.{ts}.").as_bytes());
        mac.update(&c.body);
        let expected = format!(
            "v1,{}",
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
        );
        assert_eq!(c.header("webhook-signature"), Some(expected.as_str()));
    }
    let t = server.metrics().await;
    wait_until("queue drained", WAIT, || async {
        metric_value(
            &server.metrics().await,
            "driftgauge_webhook_queue_length",
            &[],
        ) == Some(0.0)
    })
    .await;
    let fails = metric_value(
        &t,
        "driftgauge_webhook_requests_total",
        &[("webhook", "retrain"), ("outcome", "failure")],
    );
    assert_eq!(fails, Some(2.0), "{t}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_webhook_receiver_never_delays_evaluation() {
    // Bound and dropped: connections are refused.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("http://{}/hook", dead.local_addr().unwrap());
    drop(dead);
    let slow = Receiver::start(Script::replies([
        crate::receiver::Reply::ok().delay(Duration::from_secs(30))
    ]))
    .await;
    let cfg = format!(
        "rule_files: [\"rules/*.yml\"]\nwebhooks:\n  retrain:\n    url: {dead_url}\n    min_backoff: 10ms\n  slow:\n    url: {}\n    timeout: 30s\n",
        slow.url("/slow")
    );
    let rules = EMA_RULES.replace("webhooks: [retrain]", "webhooks: [retrain, slow]");
    let server = Server::start(Files::new(&cfg).rule_file("q.yml", &rules)).await;
    server
        .push("model_accuracy", &[("model", "fraud")], &[0.1])
        .await;
    server
        .wait_metric(
            "driftgauge_drift_status",
            &[("rule", "accuracy_degradation")],
            |v| v == 2.0,
        )
        .await;
    let evals = |t: &str| {
        metric_value(
            t,
            "driftgauge_rule_evaluations_total",
            &[("group", "quality")],
        )
        .unwrap()
    };
    let before = evals(&server.metrics().await);
    wait_until("evaluations go on", WAIT, || async {
        evals(&server.metrics().await) >= before + 5.0
    })
    .await;
    wait_until("failed attempts counted", WAIT, || async {
        metric_value(
            &server.metrics().await,
            "driftgauge_webhook_requests_total",
            &[("webhook", "retrain"), ("outcome", "failure")],
        )
        .is_some_and(|v| v >= 2.0)
    })
    .await;
    let t = server.metrics().await;
    assert!(
        metric_value(&t, "driftgauge_webhook_queue_length", &[]).unwrap() >= 1.0,
        "{t}"
    );
    let started = std::time::Instant::now();
    server.stop().await;
    assert!(
        started.elapsed() < Duration::from_secs(12),
        "shutdown is bounded"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_api_lists_groups_rules_and_series() {
    let rx = Receiver::start(Script::ok()).await;
    let server = Server::start(Files::new(&config(&rx, "")).rule_file("q.yml", EMA_RULES)).await;
    server
        .push("model_accuracy", &[("model", "fraud")], &[0.88])
        .await;
    server
        .wait_metric(
            "driftgauge_drift_status",
            &[("rule", "accuracy_degradation")],
            |v| v == 1.0,
        )
        .await;
    let (status, text) = server.get("/api/v1/rules").await;
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["status"], "success");
    let g = &v["data"]["groups"][0];
    assert_eq!(g["name"], "quality");
    assert_eq!(g["interval"], 0.05);
    assert!(g["file"].as_str().unwrap().ends_with("q.yml"));
    let r = &g["rules"][0];
    assert_eq!(r["name"], "accuracy_degradation");
    assert_eq!(r["detector"], "ema");
    assert_eq!(r["state"], "warning");
    let s = &r["series"][0];
    assert_eq!(s["state"], "warning");
    assert_eq!(s["value"], 0.88);
    assert_eq!(s["labels"]["model"], "fraud");
    assert_eq!(s["last_error"], serde_json::Value::Null);
    assert!(s["last_evaluation"].as_str().unwrap().ends_with('Z'));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evaluate_endpoint_matches_the_library() {
    let server = Server::start(Files::new("rule_files: []\n")).await;
    let mut rng = Rng::new(5);
    let a = rng.normals(500, 0.0, 1.0);
    let b = rng.normals(400, 0.3, 1.0);
    let (status, v) = server
        .post_json("/api/v1/evaluate", json!({"detector": "ks", "reference": a, "current": b, "alternative": "less", "alpha": 0.01}))
        .await;
    assert_eq!(status, 200, "{v}");
    let r = ks_2samp(&a, &b, Alternative::Less, Method::Auto).unwrap();
    assert_eq!(v["detector"], "ks");
    assert_eq!(v["statistic"], json!(r.statistic));
    assert_eq!(v["p_value"], json!(r.p_value));
    assert_eq!(v["statistic_location"], json!(r.location));
    assert_eq!(v["statistic_sign"], json!(r.sign));
    assert_eq!(v["method"], r.method.as_str());
    assert_eq!(v["n_reference"], 500);
    assert_eq!(v["n_current"], 400);
    assert_eq!(
        v["status"],
        if r.p_value <= 0.01 {
            "drifted"
        } else {
            "stable"
        }
    );
    for (body, needle) in [
        (
            json!({"detector": "t-test", "reference": [1], "current": [2]}),
            "unknown detector",
        ),
        (
            json!({"detector": "ks", "reference": [], "current": [2]}),
            "reference",
        ),
        (
            json!({"detector": "ks", "reference": [1], "current": [2], "method": "fast"}),
            "unknown method",
        ),
        (
            json!({"detector": "ks", "reference": [1], "current": [2], "alpha": 2}),
            "alpha",
        ),
        (
            json!({"detector": "ks", "reference": [1, "x"], "current": [2]}),
            "bad request body",
        ),
    ] {
        let (status, v) = server.post_json("/api/v1/evaluate", body.clone()).await;
        assert_eq!(status, 400, "{body}: {v}");
        assert!(v["error"].as_str().unwrap().contains(needle), "{body}: {v}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_negotiate_openmetrics_and_health_routes_answer() {
    let server = Server::start(Files::new("rule_files: []\n")).await;
    let r = server
        .client
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = r.text().await.unwrap();
    assert!(text.contains("driftgauge_build_info{revision="), "{text}");
    let r = server
        .client
        .get(server.url("/metrics"))
        .header(
            "accept",
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["content-type"],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    let text = r.text().await.unwrap();
    assert!(text.ends_with("# EOF\n"));
    assert!(
        text.contains("# TYPE driftgauge_samples_received counter"),
        "{text}"
    );
    assert_eq!(server.get("/-/healthy").await.0, 200);
    assert_eq!(server.get("/-/ready").await.0, 200);
    assert_eq!(server.get("/nope").await.0, 404);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_reload_picks_up_edited_rule_files() {
    let rules = EMA_RULES.replace("        webhooks: [retrain]\n", "");
    let cfg = "rule_files: [\"rules/*.yml\"]\n";
    let server = Server::start_with(Files::new(cfg).rule_file("q.yml", &rules), |o| {
        o.auto_reload = true
    })
    .await;
    assert!(server
        .get("/api/v1/rules")
        .await
        .1
        .contains("accuracy_degradation"));
    server.rewrite(&Files::new(cfg).rule_file(
        "q.yml",
        &rules.replace("accuracy_degradation", "accuracy_drop"),
    ));
    wait_until("the edited rule is loaded", WAIT, || async {
        server
            .get("/api/v1/rules")
            .await
            .1
            .contains("accuracy_drop")
    })
    .await;
    // A bad edit is refused and the running rule stays.
    server
        .rewrite(&Files::new("rule_files: [\"rules/*.yml\"]\n").rule_file("q.yml", "groups: [\n"));
    wait_until("the failed reload is reported", WAIT, || async {
        metric_value(
            &server.metrics().await,
            "driftgauge_config_last_reload_successful",
            &[],
        ) == Some(0.0)
    })
    .await;
    assert!(server
        .get("/api/v1/rules")
        .await
        .1
        .contains("accuracy_drop"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cooldown_allows_one_call_per_rule_and_series() {
    let rx = Receiver::start(Script::ok()).await;
    let cfg = format!(
        "rule_files: [\"rules/*.yml\"]\nwebhooks:\n  retrain:\n    url: {}\n    cooldown: 1h\n    send_resolved: true\n",
        rx.url("/r")
    );
    let server = Server::start(Files::new(&cfg).rule_file("q.yml", EMA_RULES)).await;
    let sel = [("rule", "accuracy_degradation"), ("model", "fraud")];
    let other = [("rule", "accuracy_degradation"), ("model", "other")];
    let rules = EMA_RULES.replace(r#"model_accuracy{model="fraud"}"#, "model_accuracy");
    server.rewrite(&Files::new(&cfg).rule_file("q.yml", &rules));
    assert_eq!(server.post("/-/reload", "").await.0, 200);
    // drifted → stable → drifted within the cooldown: one call for this series.
    for (v, status) in [(0.1, 2.0), (1.0, 0.0), (0.1, 2.0)] {
        server
            .push(
                "model_accuracy",
                &[("model", "fraud")],
                &[v, v, v, v, v, v, v, v],
            )
            .await;
        server
            .wait_metric("driftgauge_drift_status", &sel, |s| s == status)
            .await;
    }
    // Another series of the same rule has its own cooldown.
    server
        .push("model_accuracy", &[("model", "other")], &[0.1])
        .await;
    server
        .wait_metric("driftgauge_drift_status", &other, |s| s == 2.0)
        .await;
    let calls = rx.wait_for(2, WAIT).await;
    let evals = |t: &str| {
        metric_value(
            t,
            "driftgauge_rule_evaluations_total",
            &[("group", "quality")],
        )
        .unwrap()
    };
    let before = evals(&server.metrics().await);
    wait_until("a few more evaluations", WAIT, || async {
        evals(&server.metrics().await) >= before + 3.0
    })
    .await;
    let calls_now = rx.requests();
    assert_eq!(
        calls_now.len(),
        2,
        "one call per series within the cooldown: {:?}",
        calls_now.iter().map(|c| c.json()).collect::<Vec<_>>()
    );
    let models: Vec<_> = calls
        .iter()
        .map(|c| c.json()["labels"]["model"].as_str().unwrap().to_string())
        .collect();
    assert!(
        models.contains(&"fraud".to_string()) && models.contains(&"other".to_string()),
        "{models:?}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_over_a_rules_series_limit_is_refused_whole() {
    let cfg = "rule_files: [\"rules/*.yml\"]\nlimits:\n  max_series_per_rule: 2\n";
    let rules = EMA_RULES
        .replace("        webhooks: [retrain]\n", "")
        .replace(r#"model_accuracy{model="fraud"}"#, "model_accuracy");
    let server = Server::start(Files::new(cfg).rule_file("q.yml", &rules)).await;
    server
        .push("model_accuracy", &[("model", "a")], &[0.9])
        .await;
    let three: Vec<_> = ["b", "c", "d"]
        .iter()
        .map(|m| json!({"metric": "model_accuracy", "labels": {"model": m}, "value": 0.9}))
        .collect();
    let (status, v) = server
        .post_json("/api/v1/samples", json!({ "samples": three }))
        .await;
    assert_eq!(status, 429, "{v}");
    let msg = v["error"].as_str().unwrap();
    assert!(
        msg.contains("quality/accuracy_degradation") && msg.contains("max_series_per_rule=2"),
        "{msg}"
    );
    // Nothing of it applied: only series "a" exists; one more series still fits.
    let (status, _) = server
        .post_json("/api/v1/samples", json!({"samples": [three[0].clone()]}))
        .await;
    assert_eq!(status, 200);
    let t = server.metrics().await;
    assert_eq!(
        metric_value(
            &t,
            "driftgauge_samples_received_total",
            &[("source", "push")]
        ),
        Some(2.0)
    );
    assert_eq!(
        metric_value(
            &t,
            "driftgauge_samples_rejected_total",
            &[("reason", "series_limit")]
        ),
        Some(3.0)
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_memory_budget_refuses_a_batch_whole_and_full_windows_still_take_samples() {
    // Each series holds at most 300 (reference) + 300 (current) values.
    let cfg = "rule_files: [\"rules/*.yml\"]\nlimits:\n  max_held_values: 1500\n";
    let rules = KS_RULES.replace("        webhooks: [retrain]\n", "");
    let server = Server::start(Files::new(cfg).rule_file("fraud.yml", &rules)).await;
    let mut rng = Rng::new(5);
    for f in ["a", "b"] {
        let values = rng.normals(600, 0.0, 1.0);
        server
            .push(
                "feature_value",
                &[("model", "fraud"), ("feature", f)],
                &values,
            )
            .await;
    }
    // 1200 held; 400 more for a third series would pass 1500.
    let batch = |feature: &str, n: usize, rng: &mut Rng| {
        json!({"samples": [{
            "metric": "feature_value",
            "labels": {"model": "fraud", "feature": feature},
            "values": rng.normals(n, 0.0, 1.0),
        }]})
    };
    let (status, v) = server
        .post_json("/api/v1/samples", batch("c", 400, &mut rng))
        .await;
    assert_eq!(status, 429, "{v}");
    let msg = v["error"].as_str().unwrap();
    assert!(
        msg.contains("max_held_values=1500") && msg.contains("1600"),
        "{msg}"
    );
    // Full windows only replace values: they still take samples.
    let (status, v) = server
        .post_json("/api/v1/samples", batch("a", 500, &mut rng))
        .await;
    assert_eq!(status, 200, "{v}");
    // Exactly up to the budget is fine, and nothing of the refused batch was applied.
    let (status, v) = server
        .post_json("/api/v1/samples", batch("c", 300, &mut rng))
        .await;
    assert_eq!(status, 200, "{v}");
    let t = server.metrics().await;
    assert_eq!(
        metric_value(
            &t,
            "driftgauge_samples_received_total",
            &[("source", "push")]
        ),
        Some(2000.0)
    );
    assert_eq!(
        metric_value(
            &t,
            "driftgauge_samples_rejected_total",
            &[("reason", "memory_limit")]
        ),
        Some(400.0)
    );
    // Two full series (300 + 300 each) and the third one's reference: the budget, exactly.
    assert_eq!(
        metric_value(&t, "driftgauge_window_values_held", &[]),
        Some(1500.0)
    );
    assert_eq!(
        metric_value(&t, "driftgauge_window_values_limit", &[]),
        Some(1500.0)
    );
    let (status, _) = server
        .post_json("/api/v1/samples", batch("d", 1, &mut rng))
        .await;
    assert_eq!(status, 429, "the budget is spent");
    server.stop().await;
}

/// Regression: 20,000 junk series names no rule selects used to fill `max_series` and lock
/// every new series out until the idle sweep (24 h).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn series_no_rule_selects_are_dropped_and_never_fill_the_series_limit() {
    let cfg = "rule_files: [\"rules/*.yml\"]\nlimits:\n  max_series: 10\n";
    let rules = EMA_RULES.replace("        webhooks: [retrain]\n", "");
    let server = Server::start(Files::new(cfg).rule_file("q.yml", &rules)).await;
    let junk: Vec<serde_json::Value> = (0..20_000)
        .map(|i| json!({"metric": format!("junk_{i}"), "labels": {"x": "1"}, "value": 1.0}))
        .collect();
    let (status, body) = server
        .post_json("/api/v1/samples", json!({ "samples": junk }))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"accepted": 0, "dropped": 20_000}));
    // A series a rule selects still gets in.
    let (status, body) = server
        .post_json(
            "/api/v1/samples",
            json!({"samples": [{"metric": "model_accuracy", "labels": {"model": "fraud"}, "values": [0.9, 0.95]}]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"accepted": 2, "dropped": 0}));
    let metrics = server.metrics().await;
    assert_eq!(
        metric_value(
            &metrics,
            "driftgauge_samples_unselected_total",
            &[("source", "push")]
        ),
        Some(20_000.0)
    );
    assert_eq!(
        metric_value(
            &metrics,
            "driftgauge_samples_received_total",
            &[("source", "push")]
        ),
        Some(2.0)
    );
    server.stop().await;
}

/// Regression: `--config.auto-reload` compared (size, mtime), so an edit that kept the length
/// and the modification time (`cp -p`, a fast same-size rewrite) was never loaded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_reload_sees_a_same_length_edit_that_keeps_the_mtime() {
    let rules = EMA_RULES.replace("        webhooks: [retrain]\n", "");
    let cfg = "rule_files: [\"rules/*.yml\"]\n";
    let server = Server::start_with(Files::new(cfg).rule_file("q.yml", &rules), |o| {
        o.auto_reload = true
    })
    .await;
    let path = server.path("rules/q.yml");
    let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
    let edited = rules.replace("accuracy_degradation", "accuracy_degradatiox");
    assert_eq!(edited.len(), rules.len());
    std::fs::write(&path, &edited).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&path)
        .and_then(|f| f.set_modified(mtime))
        .unwrap();
    wait_until("the same-length edit is loaded", WAIT, || async {
        server
            .get("/api/v1/rules")
            .await
            .1
            .contains("accuracy_degradatiox")
    })
    .await;
    server.stop().await;
}
