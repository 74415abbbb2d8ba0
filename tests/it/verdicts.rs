//! Verdicts through the public contract: the level a budget gives and the rule-wide share on
//! `/metrics` and `/api/v1/rules`, and a window with nothing new left alone.

use crate::support::{metric_value, Files, Rng, Server};

const RULES: &str = r#"
groups:
  - name: features
    interval: 100ms
    rules:
      - name: drift
        detector: ks
        series: amount
        reference: {first: 200}
        current: {last: 200}
        min_samples: 200
        false_alarms: 1/1d
        share: 0.5
"#;

fn labels(model: &str) -> [(&'static str, String); 1] {
    [("model", model.to_string())]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_budget_sets_the_level_and_the_share_gauge_follows_the_series() {
    let server = Server::start(Files::new("").rule_file("r.yml", RULES)).await;
    let mut rng = Rng::new(11);
    // Four models; two do not shift, then two shift by 1 sd (in that order, so the share
    // reaches one half only once all four are in).
    for (model, shift) in [("c", 0.0), ("d", 0.0), ("a", 1.0), ("b", 1.0)] {
        let l = labels(model);
        let l: Vec<(&str, &str)> = l.iter().map(|(k, v)| (*k, v.as_str())).collect();
        server.push("amount", &l, &rng.normals(200, 0.0, 1.0)).await;
        server
            .push("amount", &l, &rng.normals(200, shift, 1.0))
            .await;
    }
    let share = server
        .wait_metric(
            "driftgauge_drift_share",
            &[("rule", "drift"), ("group", "features")],
            |v| v == 0.5,
        )
        .await;
    assert_eq!(share, 0.5);
    let text = server.metrics().await;
    // 1/1d over a 100 ms interval: 0.1 s / 86,400 s per test.
    let level = 0.1 / 86_400.0;
    for model in ["a", "b", "c", "d"] {
        let t = metric_value(
            &text,
            "driftgauge_drift_threshold",
            &[("rule", "drift"), ("model", model)],
        )
        .expect("threshold gauge");
        assert!((t - level).abs() < level * 1e-9, "{model}: {t} vs {level}");
    }
    for (model, status) in [("a", 2.0), ("b", 2.0), ("c", 0.0), ("d", 0.0)] {
        assert_eq!(
            metric_value(
                &text,
                "driftgauge_drift_status",
                &[("rule", "drift"), ("model", model)]
            ),
            Some(status),
            "{model}"
        );
    }
    // The rule as a whole is drifted (2 of 4 >= 0.5), and the API says how it decides.
    let (status, body) = server.get("/api/v1/rules").await;
    assert_eq!(status, 200);
    let json: serde_json::Value = serde_json::from_str(&body).expect("json");
    let rule = &json["data"]["groups"][0]["rules"][0];
    assert_eq!(rule["drift_share"], 0.5, "{rule}");
    assert_eq!(rule["share_state"], "drifted", "{rule}");
    assert_eq!(rule["level"]["false_alarms"], "1/1d", "{rule}");
    assert_eq!(rule["level"]["false_alarms_scope"], "series", "{rule}");
    server.stop().await;
}
