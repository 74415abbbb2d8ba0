//! `/metrics` read back with Prometheus's own parser (`promtool check metrics`).

use std::io::Write;
use std::process::{Command, Stdio};

use crate::receiver::{Receiver, Script};
use crate::support::{Files, Rng, Server};

/// Runs `promtool check metrics` on `text`; returns (success, output). Fails loudly when
/// promtool is missing: `scripts/test` installs it.
pub fn promtool_check_metrics(text: &str) -> (bool, String) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "promtool is required (apt-get install prometheus; scripts/test installs it): {e}"
            )
        });
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("promtool");
    let msg = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), msg)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promtool_accepts_metrics_with_every_family_populated() {
    let rx = Receiver::start(Script::statuses([500]).then(crate::receiver::Reply::ok())).await;
    let cfg = format!(
        "global: {{evaluation_interval: 50ms}}\nrule_files: [\"rules/*.yml\"]\nwebhooks:\n  w:\n    url: {}\n    min_backoff: 10ms\n",
        rx.url("/w")
    );
    let rules = r#"
groups:
  - name: g
    interval: 50ms
    rules:
      - name: ks_rule
        detector: ks
        series: 'feature_value'
        reference: {first: 50}
        current: {last: 50}
        webhooks: [w]
      - name: ema_rule
        detector: ema
        min_samples: 1
        series: 'acc'
        smoothing: 1
        below: 0.5
        webhooks: [w]
"#;
    let server = Server::start(Files::new(&cfg).rule_file("r.yml", rules)).await;
    let mut rng = Rng::new(9);
    // Label values that need escaping, and a series label that clashes with `rule`.
    let labels = [("model", "a \"quoted\" \\ back\nslash"), ("rule", "clash")];
    server
        .push("feature_value", &labels, &rng.normals(50, 0.0, 1.0))
        .await;
    server
        .push("feature_value", &labels, &rng.normals(50, 5.0, 1.0))
        .await;
    server.push("acc", &[("model", "m")], &[0.1]).await;
    server
        .wait_metric("driftgauge_drift_status", &[("rule", "ks_rule")], |v| {
            v == 2.0
        })
        .await;
    rx.wait_for(3, crate::support::WAIT).await;
    let text = server.metrics().await;
    assert!(text.contains(r#"exported_rule="clash""#), "{text}");
    for family in [
        "driftgauge_drift_statistic",
        "driftgauge_drift_p_value",
        "driftgauge_drift_status",
        "driftgauge_ema_value",
        "driftgauge_window_samples",
        "driftgauge_samples_received_total",
        "driftgauge_requests_rejected_total",
        "driftgauge_rule_evaluations_total",
        "driftgauge_rule_evaluation_failures_total",
        "driftgauge_rule_group_last_duration_seconds",
        "driftgauge_rule_group_last_evaluation_timestamp_seconds",
        "driftgauge_webhook_requests_total",
        "driftgauge_webhook_queue_length",
        "driftgauge_config_last_reload_successful",
        "driftgauge_config_last_reload_success_timestamp_seconds",
        "driftgauge_build_info",
    ] {
        assert!(
            text.lines()
                .any(|l| l.starts_with(family) && !l.starts_with('#')),
            "no sample of {family}:\n{text}"
        );
    }
    let (ok, msg) = promtool_check_metrics(&text);
    assert!(ok, "promtool check metrics failed:\n{msg}\n---\n{text}");
    assert!(
        msg.trim().is_empty(),
        "promtool found something to say:\n{msg}"
    );
    server.stop().await;
}
