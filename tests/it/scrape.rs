//! `scrape_configs` against real exporters on loopback whose values change during the test:
//! gauges arrive with `job`/`instance`/static labels, counters become reset-aware rates, a
//! bad body (or a 500, a timeout, a dead target) counts a failure and keeps what came before.

use crate::fixture::{Exporter, Scrapers, Service, OPENMETRICS, TEXT};
use crate::receiver::Reply;
use crate::support::metric_value;

fn config(jobs: &str) -> String {
    format!(
        "global: {{evaluation_interval: 50ms}}\nrule_files: [\"rules/*.yml\"]\nscrape_configs:\n{jobs}"
    )
}

fn job(name: &str, target: &str, extra: &str) -> String {
    format!(
        "  - job_name: {name}\n    scrape_interval: 50ms\n    scrape_timeout: 40ms\n{extra}    static_configs:\n      - targets: [\"{target}\"]\n        labels: {{env: test}}\n"
    )
}

/// EMA rules with smoothing 1: the gauge shows the last value each series received, and
/// `driftgauge_window_samples{window="current"}` how many values it received.
const RULES: &str = r#"
groups:
  - name: scraped
    interval: 50ms
    rules:
      - name: temp
        detector: ema
        min_samples: 1
        series: 'temperature{job="fixture"}'
        smoothing: 1
        above: 1000
      - name: req_rate
        detector: ema
        min_samples: 1
        series: 'requests_total{job="fixture"}'
        smoothing: 1
        above: 1000000
      - name: lat_count
        detector: ema
        min_samples: 1
        series: 'latency_seconds_count{job="fixture"}'
        smoothing: 1
        above: 1000000
"#;

fn text_body(temp: f64, requests: u64, requests_ts_ms: u64) -> String {
    format!(
        "# HELP temperature Room temperature.\n# TYPE temperature gauge\n\
         temperature{{room=\"a\",job=\"inner\"}} {temp}\n\n\
         # a comment\n# TYPE requests_total counter\nrequests_total {requests} {requests_ts_ms}\n\
         # TYPE latency_seconds histogram\nlatency_seconds_bucket{{le=\"0.1\"}} 3\n\
         latency_seconds_bucket{{le=\"+Inf\"}} 7\nlatency_seconds_sum 1.5\nlatency_seconds_count 7\n"
    )
}

fn value(text: &str, rule: &str) -> Option<f64> {
    metric_value(text, "driftgauge_ema_value", &[("rule", rule)])
}

fn count(text: &str, rule: &str) -> Option<f64> {
    metric_value(
        text,
        "driftgauge_window_samples",
        &[("rule", rule), ("window", "current")],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gauges_get_target_labels_and_counters_become_rates() {
    let exporter = Exporter::start(TEXT, &text_body(21.5, 1000, 10_000)).await;
    let target = exporter.target();
    let svc = Service::start(
        &config(&job(
            "fixture",
            &target,
            "    bearer_token_file: token.txt\n",
        )),
        &[("rules/s.yml", RULES), ("token.txt", "s3cret\n")],
        Scrapers::Spawn,
    )
    .await;
    // The gauge, with the target's labels; the exporter's own `job` kept as exported_job.
    let labels = [
        ("rule", "temp"),
        ("job", "fixture"),
        ("instance", target.as_str()),
        ("env", "test"),
        ("room", "a"),
        ("exported_job", "inner"),
    ];
    svc.wait_metric("driftgauge_ema_value", &labels, |v| v == 21.5)
        .await;
    // Histogram series keep their values as exposed.
    svc.wait_metric("driftgauge_ema_value", &[("rule", "lat_count")], |v| {
        v == 7.0
    })
    .await;

    // The counter moves 50 in one second (by its own timestamps): a rate of 50/s.
    exporter.set_body(TEXT, &text_body(23.0, 1050, 11_000));
    exporter.wait_scraped().await;
    let text = svc
        .wait_for("the rate and the new gauge", |t| {
            value(t, "req_rate") == Some(50.0) && value(t, "temp") == Some(23.0)
        })
        .await;
    // One rate value only: the first scrape gives none, repeats of one timestamp give none.
    assert_eq!(count(&text, "req_rate"), Some(1.0), "{text}");

    // What the exporter saw: Prometheus's Accept header and the bearer token.
    let request = &exporter.server.requests()[0];
    let accept = request.header("accept").unwrap_or_default();
    assert!(
        accept.starts_with("application/openmetrics-text;version=1.0.0")
            && accept.contains("text/plain;version=0.0.4"),
        "{accept}"
    );
    assert_eq!(request.header("authorization"), Some("Bearer s3cret"));
    assert_eq!(request.path, "/metrics");
    assert_eq!(svc.counter("scrape_failures", "fixture"), 0.0);
    assert!(svc.counter("received", "scrape") >= 4.0);
    let metrics = svc.metrics().await;
    assert_eq!(
        metric_value(
            &metrics,
            "driftgauge_scrape_failures_total",
            &[("job", "fixture")]
        ),
        Some(0.0),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openmetrics_counters_are_reset_aware() {
    let om = |v: u64, ts: &str| {
        format!(
            "# TYPE requests counter\nrequests_total {v} {ts} # {{trace_id=\"abc\"}} 1\n\
             requests_created 1700000000.5\n# EOF\n"
        )
    };
    let exporter = Exporter::start(OPENMETRICS, &om(100, "1.0")).await;
    let svc = Service::start(
        &config(&job("fixture", &exporter.target(), "")),
        &[("rules/s.yml", RULES)],
        Scrapers::Spawn,
    )
    .await;
    exporter.wait_scraped().await;
    exporter.set_body(OPENMETRICS, &om(200, "2.0"));
    exporter.wait_scraped().await;
    svc.wait_for("a rate of 100/s", |t| value(t, "req_rate") == Some(100.0))
        .await;
    // A reset (the counter went down): that interval gives no value.
    exporter.set_body(OPENMETRICS, &om(50, "3.0"));
    exporter.wait_scraped().await;
    exporter.set_body(OPENMETRICS, &om(80, "4.0"));
    exporter.wait_scraped().await;
    let text = svc
        .wait_for("a rate of 30/s", |t| value(t, "req_rate") == Some(30.0))
        .await;
    assert_eq!(count(&text, "req_rate"), Some(2.0), "{text}");
    // `_created` is a timestamp, not a series.
    assert_eq!(svc.engine.series_count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_scrapes_are_counted_and_keep_earlier_samples() {
    let exporter = Exporter::start(TEXT, &text_body(21.5, 1000, 10_000)).await;
    // A target nobody listens on.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").to_string()
    };
    let svc = Service::start(
        &config(&format!(
            "{}{}",
            job("fixture", &exporter.target(), ""),
            job("dead", &dead, "")
        )),
        &[("rules/s.yml", RULES)],
        Scrapers::Spawn,
    )
    .await;
    svc.wait_metric("driftgauge_ema_value", &[("rule", "temp")], |v| v == 21.5)
        .await;
    svc.wait_metric(
        "driftgauge_scrape_failures_total",
        &[("job", "dead")],
        |v| v >= 2.0,
    )
    .await;

    // A bad line anywhere fails the whole body: not even the good lines before it count.
    exporter.set_body(
        TEXT,
        "temperature{room=\"a\"} 99\nrequests_total{code=\"200\" 5\n",
    );
    exporter.wait_scraped().await;
    let text = svc
        .wait_for("a failure of job fixture", |t| {
            metric_value(t, "driftgauge_scrape_failures_total", &[("job", "fixture")])
                .is_some_and(|v| v >= 1.0)
        })
        .await;
    assert_eq!(value(&text, "temp"), Some(21.5), "earlier samples are kept");
    let before = svc.counter("received", "scrape");

    // A 500, and a timeout (the answer comes after scrape_timeout): failures too.
    let failures = svc.counter("scrape_failures", "fixture");
    exporter.set(Reply::status(500).body("oops"));
    exporter.wait_scraped().await;
    exporter.set(
        Reply::ok()
            .header("content-type", TEXT)
            .body("temperature 98\n")
            .delay(std::time::Duration::from_millis(300)),
    );
    exporter.wait_scraped().await;
    // Protobuf is not a format we read.
    exporter.set_body("application/vnd.google.protobuf", "\x00\x01");
    exporter.wait_scraped().await;
    assert!(svc.counter("scrape_failures", "fixture") >= failures + 3.0);
    assert_eq!(
        svc.counter("received", "scrape"),
        before,
        "no failed scrape applied anything"
    );
    let text = svc.metrics().await;
    assert_eq!(value(&text, "temp"), Some(21.5));

    // Back to good: values flow again.
    exporter.set_body(TEXT, &text_body(30.0, 1000, 10_000));
    svc.wait_metric("driftgauge_ema_value", &[("rule", "temp")], |v| v == 30.0)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrapers_follow_reloads() {
    let first = Exporter::start(TEXT, "temperature 1\n").await;
    let second = Exporter::start(TEXT, "temperature 2\n").await;
    let rules = [("rules/s.yml", RULES)];
    let svc = Service::start(
        &config(&job("fixture", &first.target(), "")),
        &rules,
        Scrapers::FollowReloads,
    )
    .await;
    svc.wait_metric("driftgauge_ema_value", &[("rule", "temp")], |v| v == 1.0)
        .await;
    // A reload that leaves scrape_configs alone does not restart the scrapers...
    svc.reload(&config(&job("fixture", &first.target(), "")), &rules)
        .await;
    first.wait_scraped().await;
    // ...and one that changes them moves scraping to the new target.
    svc.reload(&config(&job("fixture", &second.target(), "")), &rules)
        .await;
    let text = svc
        .wait_for("the second target's value", |t| {
            metric_value(
                t,
                "driftgauge_ema_value",
                &[("rule", "temp"), ("instance", second.target().as_str())],
            ) == Some(2.0)
        })
        .await;
    assert!(text.contains("driftgauge_scrape_failures_total{job=\"fixture\"} 0"));
    let n = first.scrapes();
    second.wait_scraped().await;
    assert!(
        first.scrapes() <= n + 1,
        "the old target is no longer scraped"
    );
}

/// The same through the whole service: `serve` starts the scrapers of its config.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_scrapes_its_configured_targets() {
    let exporter = Exporter::start(TEXT, &text_body(21.5, 1000, 10_000)).await;
    let target = exporter.target();
    let server = crate::support::Server::start(
        crate::support::Files::new(&config(&job("fixture", &target, ""))).rule_file("s.yml", RULES),
    )
    .await;
    server
        .wait_metric(
            "driftgauge_ema_value",
            &[("rule", "temp"), ("job", "fixture"), ("instance", &target)],
            |v| v == 21.5,
        )
        .await;
    exporter.set_body(TEXT, "temperature{room=\"a\" 1\n");
    server
        .wait_metric(
            "driftgauge_scrape_failures_total",
            &[("job", "fixture")],
            |v| v >= 1.0,
        )
        .await;
    let text = server.metrics().await;
    assert_eq!(value(&text, "temp"), Some(21.5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scrape_refused_for_a_bad_series_counts_its_values_under_the_series_reason() {
    // Two samples a scrape; the second series uses a reserved label name.
    let exporter = Exporter::start(TEXT, "temperature{room=\"a\"} 99\nother{__x=\"1\"} 5\n").await;
    let svc = Service::start(
        &config(&job("fixture", &exporter.target(), "")),
        &[("rules/s.yml", RULES)],
        Scrapers::Spawn,
    )
    .await;
    let text = svc
        .wait_for("a refused scrape", |t| {
            metric_value(
                t,
                "driftgauge_samples_rejected_total",
                &[("reason", "bad_name")],
            )
            .is_some_and(|v| v >= 2.0)
        })
        .await;
    let refused = metric_value(
        &text,
        "driftgauge_samples_rejected_total",
        &[("reason", "bad_name")],
    )
    .unwrap_or(0.0);
    assert_eq!(refused % 2.0, 0.0, "two values a scrape: {text}");
    assert!(svc.counter("scrape_failures", "fixture") >= 1.0);
    assert_eq!(svc.counter("received", "scrape"), 0.0);
    assert_eq!(value(&text, "temp"), None);
}
