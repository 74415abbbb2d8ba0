//! driftgauge inside a real Prometheus setup: Prometheus (started from `deploy/prometheus.yml`)
//! scrapes driftgauge and evaluates `deploy/alerts.yml`; promtool checks the metrics and the
//! alerting rules; every query of `dashboards/driftgauge.json` runs against that Prometheus;
//! driftgauge's query source reads from it. Prometheus and promtool must be installed
//! (`scripts/test` does it): a missing binary fails these tests, it never skips them.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;

use crate::exposition::promtool_check_metrics;
use crate::prom::{deploy_config, deploy_dir, promtool, sample_value, Prometheus, DATA_WAIT};
use crate::receiver::{Receiver, Reply, Script};
use crate::support::{metric_value, wait_until, Files, Rng, Server, WAIT};

const MODEL_RULES: &str = r#"
groups:
  - name: fraud-model
    interval: 100ms
    rules:
      - name: amount_drift
        detector: ks
        series: 'feature_value{model="fraud", feature="amount"}'
        reference: {first: 200}
        current: {last: 200}
        min_samples: 50
        annotations: {summary: 'amount drifted for {{ $labels.model }}'}
        webhooks: [retrain]
      - name: accuracy_degradation
        detector: ema
        min_samples: 1
        series: 'model_accuracy{model="fraud"}'
        smoothing: 0.5
        below: 0.85
        warning_below: 0.9
        webhooks: [retrain]
  - name: ranker-model
    interval: 100ms
    rules:
      - name: score_drift
        detector: ks
        series: 'prediction_score{model="ranker"}'
        reference: {first: 200}
        current: {last: 200}
        min_samples: 50
      - name: score_psi
        detector: psi
        threshold: 0.25
        bins: 10
        series: 'prediction_score{model="ranker"}'
        reference: {first: 200}
        current: {last: 200}
        min_samples: 50
  - name: service
    interval: 100ms
    rules:
      - name: driftgauge_scraped
        detector: ema
        min_samples: 1
        series: scraped_up
        smoothing: 1
        below: 0.5
"#;

/// driftgauge with model rules, a webhook receiver that fails once, a query source on
/// Prometheus and a scrape job whose target is down; Prometheus from `deploy/prometheus.yml` scraping it every second; a drift
/// scenario pushed (the fraud model drifts in two rules, the ranker stays stable, one bad
/// batch is refused) and seen by Prometheus.
struct Scenario {
    prom: Prometheus,
    server: Server,
    _receiver: Receiver,
}

async fn drift_scenario() -> Scenario {
    // Prometheus first (so driftgauge's query source can name it), scraping nothing yet.
    let prom = Prometheus::start_deploy("127.0.0.1:1").await;
    let receiver = Receiver::start(Script::statuses([500]).then(Reply::ok())).await;
    let config = format!(
        r#"
global: {{evaluation_interval: 100ms}}
rule_files: ["rules/*.yml"]
webhooks:
  retrain:
    url: {}
    min_backoff: 10ms
    max_backoff: 50ms
scrape_configs:
  - job_name: model-server
    scrape_interval: 1s
    scrape_timeout: 500ms
    static_configs:
      - targets: ["127.0.0.1:1"]
query_sources:
  - name: prometheus
    url: http://{}
    interval: 500ms
    timeout: 2s
    queries:
      - record: scraped_up
        expr: 'up{{job="driftgauge"}}'
"#,
        receiver.url("/retrain"),
        prom.addr
    );
    let server = Server::start(Files::new(&config).rule_file("models.yml", MODEL_RULES)).await;
    prom.reload(&deploy_config(&server.addr.to_string())).await;

    let mut rng = Rng::new(7);
    let fraud = [("model", "fraud"), ("feature", "amount")];
    server
        .push("feature_value", &fraud, &rng.normals(200, 0.0, 1.0))
        .await;
    server
        .push("feature_value", &fraud, &rng.normals(200, 3.0, 1.0))
        .await;
    let ranker = [("model", "ranker")];
    server
        .push("prediction_score", &ranker, &rng.normals(200, 0.0, 1.0))
        .await;
    server
        .push("prediction_score", &ranker, &rng.normals(200, 0.0, 1.0))
        .await;
    server
        .push("model_accuracy", &[("model", "fraud")], &[0.95, 0.6, 0.5])
        .await;
    let (status, _) = server
        .post(
            "/api/v1/samples",
            r#"{"samples":[{"metric":"bad-name","value":1}]}"#,
        )
        .await;
    assert_eq!(status, 400);
    for rule in ["amount_drift", "accuracy_degradation"] {
        server
            .wait_metric("driftgauge_drift_status", &[("rule", rule)], |v| v == 2.0)
            .await;
    }
    server
        .wait_metric("driftgauge_drift_status", &[("rule", "score_drift")], |v| {
            v == 0.0
        })
        .await;
    // amount_drift: 500 then 200; accuracy_degradation: 200.
    receiver.wait_for(3, WAIT).await;
    let up = format!("up{{job=\"driftgauge\",instance=\"{}\"}} == 1", server.addr);
    prom.wait_query(&up).await;
    prom.wait_query(r#"driftgauge_drift_status{rule="amount_drift"} == 2"#)
        .await;
    Scenario {
        prom,
        server,
        _receiver: receiver,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_driftgauge_and_serves_its_drift_gauges() {
    let Scenario { prom, server, .. } = drift_scenario().await;
    let instance = server.addr.to_string();

    let status = prom
        .query(r#"driftgauge_drift_status{job="driftgauge"}"#)
        .await;
    let by_rule: Vec<(String, f64)> = status
        .iter()
        .map(|s| {
            (
                s["metric"]["rule"].as_str().unwrap_or_default().to_string(),
                sample_value(s),
            )
        })
        .collect();
    for (rule, want) in [
        ("amount_drift", 2.0),
        ("accuracy_degradation", 2.0),
        ("score_drift", 0.0),
    ] {
        assert!(
            by_rule.contains(&(rule.to_string(), want)),
            "{rule} should be {want} through Prometheus: {by_rule:?}"
        );
    }
    let amount = prom
        .query(r#"driftgauge_drift_status{rule="amount_drift"}"#)
        .await;
    let labels = &amount[0]["metric"];
    assert_eq!(labels["group"], "fraud-model", "{labels}");
    assert_eq!(labels["model"], "fraud", "{labels}");
    assert_eq!(labels["feature"], "amount", "{labels}");
    assert_eq!(labels["instance"], instance.as_str(), "{labels}");

    // The statistic, p-value and EMA Prometheus stored are the ones driftgauge exposes.
    let metrics = server.metrics().await;
    for (name, rule) in [
        ("driftgauge_drift_statistic", "amount_drift"),
        ("driftgauge_drift_p_value", "amount_drift"),
        ("driftgauge_ema_value", "accuracy_degradation"),
    ] {
        let through_prom = prom.wait_query(&format!("{name}{{rule=\"{rule}\"}}")).await;
        let direct = metric_value(&metrics, name, &[("rule", rule)]).expect("on /metrics");
        assert_eq!(sample_value(&through_prom[0]), direct, "{name}");
    }
    let d = metric_value(
        &metrics,
        "driftgauge_drift_statistic",
        &[("rule", "amount_drift")],
    )
    .expect("D");
    assert!(d > 0.5, "a shift of 3 sd gives a large D: {d}");

    // Prometheus evaluates deploy/alerts.yml: the drift alert fires, every rule is healthy.
    let firing = prom
        .wait_query(r#"ALERTS{alertname="ModelDrifted", alertstate="firing", rule="amount_drift"}"#)
        .await;
    assert_eq!(firing[0]["metric"]["severity"], "critical");
    let rules = prom.api("/api/v1/rules", &[]).await;
    let mut names = BTreeSet::new();
    for group in rules["groups"].as_array().expect("groups") {
        for rule in group["rules"].as_array().expect("rules") {
            names.insert(rule["name"].as_str().expect("name").to_string());
            assert_ne!(rule["health"], "err", "{rule}");
        }
    }
    assert_eq!(names, alert_names(), "Prometheus loaded deploy/alerts.yml");

    // promtool finds nothing to say about the /metrics Prometheus scraped.
    let (ok, msg) = promtool_check_metrics(&metrics);
    assert!(ok, "promtool check metrics failed:\n{msg}\n---\n{metrics}");
    assert!(
        msg.trim().is_empty(),
        "promtool found something to say:\n{msg}"
    );
    server.stop().await;
}

/// The alert names of `deploy/alerts.yml`, in order of appearance.
fn alert_names() -> BTreeSet<String> {
    let text = crate::prom::read_deploy("alerts.yml");
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("- alert:"))
        .map(|n| n.trim().to_string())
        .collect()
}

#[test]
fn promtool_checks_and_tests_the_alerting_rules() {
    let deploy = deploy_dir();
    let (ok, out) = promtool(&deploy, &["check", "rules", "alerts.yml"]);
    assert!(ok, "promtool check rules:\n{out}");
    let (ok, out) = promtool(&deploy, &["test", "rules", "alerts_test.yml"]);
    assert!(ok, "promtool test rules:\n{out}");
    let (ok, out) = promtool(&deploy, &["check", "config", "prometheus.yml"]);
    assert!(ok, "promtool check config:\n{out}");

    // Every alert: severity, summary, description and a runbook section that exists; and a
    // unit test where it fires and one where it does not.
    let alerts = crate::prom::read_deploy("alerts.yml");
    let tests = crate::prom::read_deploy("alerts_test.yml");
    let runbook =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/runbook.md"))
            .expect("docs/runbook.md");
    let anchors: BTreeSet<String> = runbook
        .lines()
        .filter_map(|l| l.strip_prefix("## "))
        .map(|h| h.trim().to_lowercase())
        .collect();
    let names = alert_names();
    assert!(names.len() >= 7, "{names:?}");
    for name in &names {
        let start = alerts
            .find(&format!("- alert: {name}\n"))
            .expect("alert block");
        let block = &alerts[start..];
        let end = block[2..].find("- alert:").map_or(block.len(), |i| i + 2);
        let block = &block[..end];
        for key in ["severity:", "summary:", "description:"] {
            assert!(block.contains(key), "{name} has no {key}\n{block}");
        }
        let anchor = name.to_lowercase();
        assert!(
            block.contains(&format!("runbook_url: \"docs/runbook.md#{anchor}\"")),
            "{name}: runbook_url\n{block}"
        );
        assert!(
            anchors.contains(&anchor),
            "docs/runbook.md has no section \"## {name}\""
        );
        // In alerts_test.yml: the exp_alerts lines that follow `alertname: <name>`.
        let mut firing = false;
        let mut quiet = false;
        let mut current = "";
        for line in tests.lines().map(str::trim) {
            if let Some(n) = line.strip_prefix("alertname:") {
                current = n.trim();
            } else if let Some(rest) = line.strip_prefix("exp_alerts:") {
                if current == name {
                    if rest.trim() == "[]" {
                        quiet = true;
                    } else {
                        firing = true;
                    }
                }
            }
        }
        assert!(
            firing && quiet,
            "{name}: alerts_test.yml must test it firing and not firing"
        );
    }
}

/// A dashboard query with Grafana's variables substituted as "All" would.
fn substitute(expr: &str) -> String {
    let out = expr
        .replace("${group}", ".*")
        .replace("${rule}", ".*")
        .replace("${model}", ".*")
        .replace("$group", ".*")
        .replace("$rule", ".*")
        .replace("$model", ".*")
        .replace("$__rate_interval", "1m");
    assert!(!out.contains('$'), "unsubstituted variable in {expr}");
    out
}

/// Every `targets[].expr` of every panel (rows' nested panels included), with the panel title.
fn panel_queries(panels: &[Value], out: &mut Vec<(String, String)>) {
    for p in panels {
        let title = p["title"].as_str().unwrap_or_default();
        for t in p["targets"].as_array().into_iter().flatten() {
            if let Some(expr) = t["expr"].as_str() {
                out.push((title.to_string(), expr.to_string()));
            }
        }
        if let Some(nested) = p["panels"].as_array() {
            panel_queries(nested, out);
        }
    }
}

/// Dashboard queries allowed to return nothing in the drift scenario, each with why: `(expr as
/// written in the dashboard, reason)`. Every other query must return data, so a new panel
/// that shows nothing fails the test. The scenario exercises every source, refusal, webhook
/// outcome and reload gauge, and the service touches its counters at zero, so even `rate()`
/// of a counter that never moved returns a series; only the HA tracker's panel needs an HA
/// pair (tests/it/ha.rs has one).
const MAY_BE_EMPTY: &[(&str, &str)] = &[
    (
        "driftgauge_ha_elected_replica_status",
        "no remote_write_receiver HA tracker in the drift scenario",
    ),
    (
        "sum by (instance) (rate(driftgauge_samples_rejected_total{reason=\"ha_dedupe\"}[$__rate_interval]))",
        "no HA pair writes in the drift scenario",
    ),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_query_runs_against_prometheus() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("dashboards/driftgauge.json");
    let dashboard: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("dashboard")).expect("JSON");
    let mut queries = Vec::new();
    panel_queries(
        dashboard["panels"].as_array().expect("panels"),
        &mut queries,
    );
    assert!(queries.len() >= 20, "{queries:?}");
    // Every panel and target reads the `${datasource}` variable.
    let text = dashboard.to_string();
    assert!(text.contains(r#""uid":"${datasource}""#));
    let vars = dashboard["templating"]["list"]
        .as_array()
        .expect("variables");
    let var_names: Vec<&str> = vars.iter().filter_map(|v| v["name"].as_str()).collect();
    for want in ["datasource", "group", "rule", "model"] {
        assert!(var_names.contains(&want), "variable {want}: {var_names:?}");
    }

    let Scenario { prom, server, .. } = drift_scenario().await;
    // Rates need two scrapes of the counters after the scenario's webhook calls.
    prom.wait_query(
        r#"count_over_time(driftgauge_webhook_requests_total{outcome="success"}[1m]) >= 2"#,
    )
    .await;

    // Template variables: label_values(metric, label) as Grafana asks it of Prometheus.
    for v in vars.iter().filter(|v| v["type"] == "query") {
        let q = v["query"]["query"]
            .as_str()
            .or_else(|| v["query"].as_str())
            .expect("variable query");
        let inner = q
            .strip_prefix("label_values(")
            .and_then(|r| r.strip_suffix(')'))
            .unwrap_or_else(|| panic!("not label_values(metric, label): {q}"));
        let (metric, label) = inner.rsplit_once(',').expect("metric, label");
        let metric = substitute(metric.trim());
        let label = label.trim();
        let values = prom
            .api(
                &format!("/api/v1/label/{label}/values"),
                &[("match[]", metric.as_str())],
            )
            .await;
        let values = values.as_array().expect("values");
        assert!(
            !values.is_empty(),
            "variable {}: no values for {q}",
            v["name"]
        );
    }

    // Every panel query parses and runs, and returns data unless MAY_BE_EMPTY names it.
    // Counters' rates may need another scrape: poll until nothing else is missing.
    for (expr, reason) in MAY_BE_EMPTY {
        assert!(
            queries.iter().any(|(_, e)| e == expr),
            "MAY_BE_EMPTY names a query the dashboard no longer has ({reason}): {expr}"
        );
    }
    let must_return_data: Vec<&(String, String)> = queries
        .iter()
        .filter(|(_, expr)| !MAY_BE_EMPTY.iter().any(|(e, _)| e == expr))
        .collect();
    wait_until(
        "every dashboard query to return data",
        DATA_WAIT,
        || async {
            let mut empty = Vec::new();
            for (title, expr) in &must_return_data {
                if prom.query(&substitute(expr)).await.is_empty() {
                    empty.push(format!("{title}: {expr}"));
                }
            }
            if empty.is_empty() {
                Ok(())
            } else {
                Err(format!("returned nothing: {empty:#?}"))
            }
        },
    )
    .await;
    server.stop().await;
}

/// The service started from a config with `query_sources` queries a real Prometheus: its
/// windows fill from the warm-up and the live queries (so the sources are wired in).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_source_reads_from_prometheus_and_warms_windows() {
    // A Prometheus that scrapes itself every second.
    let prom = Prometheus::start(
        "global: {scrape_interval: 1s}\nscrape_configs:\n  - job_name: prometheus\n    static_configs:\n      - targets: [\"PROM\"]\n",
        &[],
    )
    .await;
    prom.reload(&format!(
        "global: {{scrape_interval: 1s}}\nscrape_configs:\n  - job_name: prometheus\n    static_configs:\n      - targets: [\"{}\"]\n",
        prom.addr
    ))
    .await;
    // Enough raw samples for a warm-up to fill a reference of 5.
    prom.wait_query(r#"count_over_time(up{job="prometheus"}[1h]) >= 6"#)
        .await;

    // "raw" is queried once an hour: only the warm-up (raw samples of `up[1h]`) can fill
    // its KS reference within the test. "live" is queried every 200ms (warmed with
    // query_range, as `sum(up)` is not a plain selector).
    let config = format!(
        r#"
global: {{evaluation_interval: 100ms}}
rule_files: ["rules/*.yml"]
query_sources:
  - name: raw
    url: http://{addr}
    interval: 1h
    queries:
      - record: up_raw
        expr: 'up{{job="prometheus"}}'
  - name: live
    url: http://{addr}/
    interval: 200ms
    timeout: 2s
    headers: {{X-Scope-OrgID: team-a}}
    queries:
      - record: up_total
        expr: sum by (job) (up)
"#,
        addr = prom.addr
    );
    let rules = r#"
groups:
  - name: prometheus-health
    interval: 100ms
    rules:
      - name: up_raw_ks
        detector: ks
        series: up_raw
        reference: {first: 5}
        current: {last: 100}
        min_samples: 1
      - name: up_total_ema
        detector: ema
        min_samples: 1
        series: 'up_total{job="prometheus"}'
        smoothing: 0.5
        below: 0.5
"#;
    let server = Server::start(Files::new(&config).rule_file("r.yml", rules)).await;
    let instance = prom.addr.to_string();
    server
        .wait_metric(
            "driftgauge_window_samples",
            &[
                ("rule", "up_raw_ks"),
                ("window", "reference"),
                ("instance", &instance),
                ("job", "prometheus"),
            ],
            |v| v == 5.0,
        )
        .await;
    server
        .wait_metric(
            "driftgauge_ema_value",
            &[("rule", "up_total_ema"), ("job", "prometheus")],
            |v| v == 1.0,
        )
        .await;
    // The live source keeps feeding: more samples arrive after the warm-up.
    let before = server
        .wait_metric(
            "driftgauge_samples_received_total",
            &[("source", "query")],
            |v| v >= 6.0,
        )
        .await;
    server
        .wait_metric(
            "driftgauge_samples_received_total",
            &[("source", "query")],
            |v| v >= before + 2.0,
        )
        .await;
    let metrics = server.metrics().await;
    for source in ["raw", "live"] {
        assert_eq!(
            metric_value(
                &metrics,
                "driftgauge_query_failures_total",
                &[("source", source)]
            ),
            Some(0.0),
            "{metrics}"
        );
    }
    // `__name__` is dropped: the series are named by `record`, labelled as in Prometheus.
    assert!(
        metrics.contains(&format!(
            r#"driftgauge_drift_status{{group="prometheus-health",instance="{instance}",job="prometheus",rule="up_raw_ks"}}"#
        )),
        "{metrics}"
    );
    let (ok, msg) = promtool_check_metrics(&metrics);
    assert!(
        ok && msg.trim().is_empty(),
        "promtool check metrics:\n{msg}"
    );
    server.stop().await;
}
