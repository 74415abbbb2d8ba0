//! Crash safety through the real binary: SIGKILL while a webhook receiver is down loses no
//! delivery, and the restored windows and EMA continue where they were.

use std::time::Duration;

use crate::cli::{http, Process};
use crate::receiver::{Receiver, Script};
use crate::support::{metric_value, poll, Rng, WAIT};

fn push(p: &Process, metric: &str, labels: &str, values: &[f64]) {
    let values: Vec<String> = values.iter().map(|v| format!("{v:?}")).collect();
    let body = format!(
        r#"{{"samples":[{{"metric":"{metric}","labels":{labels},"values":[{}]}}]}}"#,
        values.join(",")
    );
    let (status, text) = http(&p.addr, "POST", "/api/v1/samples", &body);
    assert_eq!(status, 200, "{text}");
}

fn metric(p: &Process, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    metric_value(&p.get("/metrics").1, name, labels)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_loses_no_webhook_and_restores_windows_and_ema() {
    let dir = tempfile::tempdir().unwrap();
    // A port nobody listens on yet: the receiver comes up only after the crash.
    let reserved = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hook_addr = reserved.local_addr().unwrap().to_string();
    drop(reserved);
    std::fs::create_dir_all(dir.path().join("rules")).unwrap();
    std::fs::write(
        dir.path().join("driftgauge.yml"),
        format!(
            "global: {{evaluation_interval: 50ms}}\nrule_files: [\"rules/*.yml\"]\nwebhooks:\n  retrain:\n    url: http://{hook_addr}/hook\n    min_backoff: 50ms\n    max_backoff: 200ms\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("rules/r.yml"),
        r#"
groups:
  - name: g
    interval: 50ms
    rules:
      - name: ks_rule
        detector: ks
        series: feature_value
        reference: {first: 200}
        current: {last: 200}
        min_samples: 50
        webhooks: [retrain]
      - name: ema_rule
        detector: ema
        min_samples: 1
        series: acc
        smoothing: 0.5
        below: 0.5
        webhooks: [retrain]
"#,
    )
    .unwrap();
    let args = [
        "--config.file=driftgauge.yml",
        "--storage.flush-interval=100ms",
    ];
    let mut p = Process::start(dir.path(), &args);
    poll("ready", WAIT, || p.get("/-/ready").0 == 200);
    let mut rng = Rng::new(21);
    push(
        &p,
        "feature_value",
        r#"{"f":"a"}"#,
        &rng.normals(200, 0.0, 1.0),
    );
    push(
        &p,
        "feature_value",
        r#"{"f":"a"}"#,
        &rng.normals(200, 1.5, 1.0),
    );
    push(&p, "acc", r#"{"m":"x"}"#, &[0.9, 0.1, 0.1]);
    let pushed_at = driftgauge::time::now_ms() as f64 / 1000.0;
    let ks = [("rule", "ks_rule")];
    let ema = [("rule", "ema_rule")];
    poll("both rules drifted", WAIT, || {
        metric(&p, "driftgauge_drift_status", &ks) == Some(2.0)
            && metric(&p, "driftgauge_drift_status", &ema) == Some(2.0)
    });
    poll("deliveries attempted and failing", WAIT, || {
        metric(
            &p,
            "driftgauge_webhook_requests_total",
            &[("webhook", "retrain"), ("outcome", "failure")],
        )
        .is_some_and(|v| v >= 2.0)
    });
    poll("a flush after the pushes", WAIT, || {
        metric(&p, "driftgauge_storage_last_flush_timestamp_seconds", &[])
            .is_some_and(|t| t > pushed_at + 0.2)
    });
    let statistic = metric(&p, "driftgauge_drift_statistic", &ks).unwrap();
    let ema_before = metric(&p, "driftgauge_ema_value", &ema).unwrap();
    assert_eq!(ema_before, 0.5 * 0.1 + 0.5 * (0.5 * 0.1 + 0.5 * 0.9));

    p.signal("KILL");
    p.wait_exit(Duration::from_secs(10));
    let rx = Receiver::start_on(&hook_addr, Script::ok()).await;
    let p = Process::start(dir.path(), &args);
    poll("ready after restart", WAIT, || p.get("/-/ready").0 == 200);

    // Both pending deliveries arrive; one event each, however many attempts.
    let calls = rx.wait_for(2, WAIT).await;
    let bodies: Vec<serde_json::Value> = calls.iter().map(|c| c.json()).collect();
    let rules: std::collections::BTreeSet<String> = bodies
        .iter()
        .map(|b| b["rule"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(rules.len(), 2, "{bodies:?}");
    for (c, b) in calls.iter().zip(&bodies) {
        assert_eq!(c.header("idempotency-key"), b["idempotency_key"].as_str());
        assert_eq!(b["status"], "drifted");
    }
    poll("outbox drained", WAIT, || {
        metric(&p, "driftgauge_webhook_queue_length", &[]) == Some(0.0)
    });
    // Restored windows: the same KS statistic; restored state: still drifted, no new event.
    poll("restored KS evaluated", WAIT, || {
        metric(&p, "driftgauge_drift_statistic", &ks) == Some(statistic)
    });
    assert_eq!(metric(&p, "driftgauge_drift_status", &ks), Some(2.0));
    let t = p.get("/metrics").1;
    assert_eq!(
        metric_value(
            &t,
            "driftgauge_window_samples",
            &[("rule", "ks_rule"), ("window", "reference")]
        ),
        Some(200.0)
    );
    assert_eq!(
        metric_value(
            &t,
            "driftgauge_window_samples",
            &[("rule", "ks_rule"), ("window", "current")]
        ),
        Some(200.0)
    );
    // The EMA continues from its restored value.
    push(&p, "acc", r#"{"m":"x"}"#, &[1.0]);
    poll("EMA continued", WAIT, || {
        metric(&p, "driftgauge_ema_value", &ema) == Some(0.5 * 1.0 + 0.5 * ema_before)
    });
    let keys: std::collections::BTreeSet<_> = rx
        .requests()
        .iter()
        .map(|r| r.header("idempotency-key").unwrap().to_string())
        .collect();
    assert_eq!(keys.len(), 2, "one idempotency key per event");
}

#[test]
fn sigterm_flushes_acknowledged_samples() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("rules")).unwrap();
    std::fs::write(
        dir.path().join("driftgauge.yml"),
        "rule_files: [\"rules/*.yml\"]\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("rules/r.yml"),
        "groups:\n  - name: g\n    interval: 1h\n    rules:\n      - name: ks_rule\n        detector: ks\n        series: v\n        reference: {first: 5}\n        current: {last: 100}\n        min_samples: 1\n",
    )
    .unwrap();
    // A flush interval far longer than the test: only the shutdown flush can save the samples.
    let args = [
        "--config.file=driftgauge.yml",
        "--storage.flush-interval=1h",
    ];
    let mut p = Process::start(dir.path(), &args);
    poll("ready", WAIT, || p.get("/-/ready").0 == 200);
    push(&p, "v", "{}", &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]);
    p.signal("TERM");
    assert!(p.wait_exit(Duration::from_secs(12)).success());
    let p = Process::start(dir.path(), &args);
    poll("ready", WAIT, || p.get("/-/ready").0 == 200);
    // The group evaluates at start: the restored windows show up.
    let sel = |w| [("rule", "ks_rule"), ("window", w)];
    poll("restored windows", WAIT, || {
        metric(&p, "driftgauge_window_samples", &sel("current")) == Some(2.0)
    });
    assert_eq!(
        metric(&p, "driftgauge_window_samples", &sel("reference")),
        Some(5.0)
    );
}

#[test]
fn a_corrupt_store_is_refused_with_the_way_out() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    std::fs::write(dir.path().join("data/driftgauge.redb"), vec![0x42u8; 8192]).unwrap();
    std::fs::create_dir_all(dir.path().join("rules")).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_driftgauge"))
        .current_dir(dir.path())
        .args(["serve", "--web.listen-address=127.0.0.1:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot open the state store"), "{err}");
    assert!(err.contains("move"), "{err}");
    assert_eq!(
        std::fs::read(dir.path().join("data/driftgauge.redb")).unwrap(),
        vec![0x42u8; 8192],
        "left as it was"
    );
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .expect("VmRSS");
    line.split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .expect("VmRSS value")
}

#[test]
fn ten_times_the_series_limit_keeps_rss_flat() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("rules")).unwrap();
    std::fs::write(
        dir.path().join("driftgauge.yml"),
        "rule_files: [\"rules/*.yml\"]\nlimits:\n  max_series: 2000\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("rules/r.yml"),
        "groups:\n  - name: g\n    interval: 100ms\n    rules:\n      - name: r\n        detector: ema\n        min_samples: 1\n        series: m\n        smoothing: 0.5\n        below: 0.5\n",
    )
    .unwrap();
    // One malloc arena: glibc's per-thread arenas otherwise wander by several MiB with
    // whichever threads served the requests, which hides a real leak behind noise.
    let p = Process::start_env(
        dir.path(),
        &["--config.file=driftgauge.yml"],
        &[("MALLOC_ARENA_MAX", "1")],
    );
    poll("ready", WAIT, || p.get("/-/ready").0 == 200);
    let batch = |from: usize, n: usize| {
        let samples: Vec<String> = (from..from + n)
            .map(|i| format!(r#"{{"metric":"m","labels":{{"id":"s{i}"}},"value":0.9}}"#))
            .collect();
        format!(r#"{{"samples":[{}]}}"#, samples.join(","))
    };
    // Fill up to the limit; a few refused batches warm the allocator's arenas; then measure.
    assert_eq!(
        http(&p.addr, "POST", "/api/v1/samples", &batch(0, 2000)).0,
        200
    );
    for round in 1..=3 {
        assert_eq!(
            http(
                &p.addr,
                "POST",
                "/api/v1/samples",
                &batch(round * 2000, 2000)
            )
            .0,
            429
        );
        assert_eq!(p.get("/metrics").0, 200);
    }
    let before = rss_kib(p.child.id());
    // Ten times the limit in new series: every batch refused whole.
    for round in 4..=13 {
        let (status, body) = http(
            &p.addr,
            "POST",
            "/api/v1/samples",
            &batch(round * 2000, 2000),
        );
        assert_eq!(status, 429, "{body}");
    }
    for _ in 0..3 {
        assert_eq!(p.get("/metrics").0, 200);
    }
    let after = rss_kib(p.child.id());
    assert!(
        after <= before + 8 * 1024,
        "RSS grew from {before} KiB to {after} KiB"
    );
    let t = p.get("/metrics").1;
    assert_eq!(
        metric_value(
            &t,
            "driftgauge_samples_rejected_total",
            &[("reason", "series_limit")]
        ),
        Some(26000.0)
    );
}
