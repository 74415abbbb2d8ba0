//! A real Prometheus feeding driftgauge: remote_write of a scraped model series into a rule
//! that drifts and calls its webhook, and driftgauge's own scrape source reading Prometheus's
//! `/metrics`.

use crate::fixture::{Exporter, TEXT};
use crate::prom::Prometheus;
use crate::receiver::{Receiver, Script};
use crate::support::{metric_value, wait_until, Files, Server, WAIT};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_remote_writes_a_model_series_that_drifts_and_calls_the_webhook() {
    let hook = Receiver::start(Script::ok()).await;
    let cfg = format!(
        "global: {{evaluation_interval: 100ms}}\nrule_files: [\"rules/*.yml\"]\nwebhooks:\n  retrain:\n    url: {}\n    min_backoff: 20ms\n",
        hook.url("/retrain")
    );
    let rules = r#"
groups:
  - name: quality
    interval: 100ms
    rules:
      - name: accuracy_degradation
        detector: ema
        min_samples: 1
        series: 'model_accuracy{model="fraud", job="model-server"}'
        smoothing: 1
        below: 0.5
        webhooks: [retrain]
"#;
    let server = Server::start(Files::new(&cfg).rule_file("q.yml", rules)).await;
    let exporter = Exporter::start(TEXT, "# TYPE model_accuracy gauge\nmodel_accuracy{model=\"fraud\"} 0.95\n# TYPE other gauge\nother 1\n").await;
    let prom_cfg = format!(
        r#"
global: {{scrape_interval: 1s}}
scrape_configs:
  - job_name: model-server
    static_configs:
      - targets: ["{target}"]
remote_write:
  - url: http://{dg}/api/v1/write
    write_relabel_configs:
      - source_labels: [__name__]
        regex: model_accuracy
        action: keep
    queue_config:
      batch_send_deadline: 1s
      min_backoff: 100ms
      max_backoff: 1s
"#,
        target = exporter.target(),
        dg = server.addr
    );
    let prom = Prometheus::start(&prom_cfg, &[]).await;
    let sel = [("rule", "accuracy_degradation")];
    server
        .wait_metric("driftgauge_ema_value", &sel, |v| v == 0.95)
        .await;
    let t = server.metrics().await;
    assert!(
        metric_value(
            &t,
            "driftgauge_samples_received_total",
            &[("source", "remote_write")]
        )
        .is_some_and(|v| v >= 1.0),
        "{t}"
    );
    assert_eq!(metric_value(&t, "driftgauge_drift_status", &sel), Some(0.0));
    // Only the kept series arrives: `other` was relabelled away.
    assert!(!server.get("/api/v1/rules").await.1.contains("\"other\""));

    exporter.set_body(
        TEXT,
        "# TYPE model_accuracy gauge\nmodel_accuracy{model=\"fraud\"} 0.2\n",
    );
    server
        .wait_metric("driftgauge_drift_status", &sel, |v| v == 2.0)
        .await;
    let calls = hook.wait_for(1, WAIT).await;
    let body = calls[0].json();
    assert_eq!(body["status"], "drifted");
    assert_eq!(
        body["labels"]["job"], "model-server",
        "Prometheus's target labels ride along: {body}"
    );
    assert_eq!(body["value"], 0.2);
    drop(prom);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scrape_source_reads_prometheus_own_metrics() {
    let prom = Prometheus::start("global: {scrape_interval: 1h}\nscrape_configs: []\n", &[]).await;
    let cfg = format!(
        "global: {{evaluation_interval: 100ms}}\nrule_files: [\"rules/*.yml\"]\nscrape_configs:\n  - job_name: prometheus\n    scrape_interval: 200ms\n    scrape_timeout: 150ms\n    static_configs:\n      - targets: [\"{}\"]\n",
        prom.url("").trim_start_matches("http://")
    );
    let rules = r#"
groups:
  - name: self
    interval: 100ms
    rules:
      - name: goroutines
        detector: ema
        min_samples: 1
        series: 'go_goroutines{job="prometheus"}'
        smoothing: 0.5
        above: 1000000
      - name: http_rate
        detector: ema
        min_samples: 1
        series: 'prometheus_http_requests_total{job="prometheus", handler="/metrics"}'
        smoothing: 1
        above: 1000000
"#;
    let server = Server::start(Files::new(&cfg).rule_file("s.yml", rules)).await;
    server
        .wait_metric("driftgauge_ema_value", &[("rule", "goroutines")], |v| {
            v > 0.0
        })
        .await;
    // A counter becomes a per-second rate from the second scrape on: /metrics is requested
    // by driftgauge itself 5 times a second, so the rate is positive.
    server
        .wait_metric("driftgauge_ema_value", &[("rule", "http_rate")], |v| {
            v > 0.0
        })
        .await;
    let t = server.metrics().await;
    let labels_ok = t.lines().any(|l| {
        l.starts_with("driftgauge_ema_value{")
            && l.contains("rule=\"goroutines\"")
            && l.contains("instance=\"")
    });
    assert!(labels_ok, "job and instance labels are added: {t}");
    assert_eq!(
        metric_value(
            &t,
            "driftgauge_scrape_failures_total",
            &[("job", "prometheus")]
        ),
        Some(0.0)
    );
    wait_until("scraped samples counted", WAIT, || async {
        metric_value(
            &server.metrics().await,
            "driftgauge_samples_received_total",
            &[("source", "scrape")],
        )
        .is_some_and(|v| v > 100.0)
    })
    .await;
    server.stop().await;
}
