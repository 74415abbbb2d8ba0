//! Pushed samples with `timestamps`/`timestamp`, over real HTTP: `duration:` windows count by
//! them, EMAs step in their order, a backfill of yesterday's samples is taken, and a sample
//! out of time order or too far in the future refuses its batch whole with a 400 naming the
//! entry.

use serde_json::json;

use crate::support::{metric_value, Files, Server};

const RULES: &str = r#"
groups:
  - name: g
    interval: 50ms
    rules:
      - name: acc
        detector: ema
        series: 'acc{model="m"}'
        smoothing: 0.5
        below: 0.5
      - name: recent
        detector: ks
        series: 'score{model="m"}'
        reference: {first: 20}
        current: {duration: 10m}
        min_samples: 1
"#;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

async fn server() -> Server {
    Server::start(Files::new("global: {evaluation_interval: 50ms}\n").rule_file("r.yml", RULES))
        .await
}

/// The gauge `name` of rule `rule` once an evaluation shows `want`.
async fn gauge(server: &Server, name: &str, labels: &[(&str, &str)], want: f64) {
    server.wait_metric(name, labels, |v| v == want).await;
}

#[tokio::test]
async fn a_backfill_is_taken_in_time_order_and_duration_windows_count_by_timestamp() {
    let server = server().await;
    let now = now_ms();
    let day = 86_400_000;
    // Yesterday's reference (20 values) and 5 values of an hour ago, then 3 values now: only
    // the 3 recent ones are in the 10-minute current window.
    let reference: Vec<f64> = (0..20).map(f64::from).collect();
    let ref_times: Vec<i64> = (0..20).map(|i| now - day + i).collect();
    let (status, v) = server
        .post_json(
            "/api/v1/samples",
            json!({"samples": [
                {"metric": "score", "labels": {"model": "m"}, "values": reference, "timestamps": ref_times},
                {"metric": "score", "labels": {"model": "m"}, "values": [1, 2, 3, 4, 5], "timestamps": vec![now - 3_600_000; 5]},
                {"metric": "score", "labels": {"model": "m"}, "values": [7, 8], "timestamps": [now - 1000, now]},
                {"metric": "score", "labels": {"model": "m"}, "value": 9, "timestamp": now},
            ]}),
        )
        .await;
    assert_eq!(
        (status, v.clone()),
        (200, json!({"accepted": 28, "dropped": 0})),
        "{v}"
    );
    let current = [("rule", "recent"), ("window", "current")];
    gauge(&server, "driftgauge_window_samples", &current, 3.0).await;
    let text = server.metrics().await;
    assert_eq!(
        metric_value(
            &text,
            "driftgauge_window_samples",
            &[("rule", "recent"), ("window", "reference")]
        ),
        Some(20.0)
    );

    // The EMA steps in timestamp order: 1 (yesterday), then 0 (now) gives 0.5.
    let (status, v) = server
        .post_json(
            "/api/v1/samples",
            json!({"samples": [
                {"metric": "acc", "labels": {"model": "m"}, "values": [1, 0], "timestamps": [now - day, now]},
            ]}),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    gauge(&server, "driftgauge_ema_value", &[("rule", "acc")], 0.5).await;
    server.stop().await;
}

#[tokio::test]
async fn out_of_order_and_far_future_samples_refuse_the_batch_naming_the_entry() {
    let server = server().await;
    let now = now_ms();
    let acc = |values: serde_json::Value, times: serde_json::Value| json!({"metric": "acc", "labels": {"model": "m"}, "values": values, "timestamps": times});
    let (status, _) = server
        .post_json(
            "/api/v1/samples",
            json!({"samples": [acc(json!([0.9]), json!([now - 1000]))]}),
        )
        .await;
    assert_eq!(status, 200);

    // Older than what the series took: 400, and the good first entry is not applied either.
    let (status, v) = server
        .post_json(
            "/api/v1/samples",
            json!({"samples": [acc(json!([0.1]), json!([now])), acc(json!([0.2]), json!([now - 5000]))]}),
        )
        .await;
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["errorType"], "bad_data");
    assert_eq!(v["index"], 1);
    let message = v["error"].as_str().unwrap_or_default();
    assert!(
        message.starts_with(&format!(
            "samples[1]: timestamp {} of acc{{model=\"m\"}} is before {now}, the newest sample rule g/acc already took for it",
            now - 5000
        )),
        "{message}"
    );

    // Decreasing within an entry, too far ahead, not a whole number: 400 naming the entry.
    for (entry, want) in [
        (
            acc(json!([1, 2]), json!([now + 1, now])),
            format!("samples[0]: timestamps[1]: {now} is before timestamps[0] ({}); timestamps must not decrease", now + 1),
        ),
        (
            json!({"metric": "acc", "labels": {"model": "m"}, "value": 1, "timestamp": now + 3_600_000}),
            "samples[0]: timestamp: ".to_string(),
        ),
        (
            acc(json!([1]), json!([1.5])),
            "samples[0]: timestamps[0]: 1.5 is not a whole number of milliseconds since the Unix epoch".to_string(),
        ),
        (
            acc(json!([1, 2]), json!([now])),
            "samples[0]: 1 timestamps for 2 values; give one per value".to_string(),
        ),
    ] {
        let (status, v) = server.post_json("/api/v1/samples", json!({"samples": [entry]})).await;
        assert_eq!(status, 400, "{v}");
        assert_eq!(v["index"], 0, "{v}");
        let message = v["error"].as_str().unwrap_or_default();
        assert!(message.starts_with(&want), "{message} should start with {want}");
    }
    let (_, v) = server
        .post_json(
            "/api/v1/samples",
            json!({"samples": [{"metric": "acc", "labels": {"model": "m"}, "value": 1, "timestamp": now + 3_600_000}]}),
        )
        .await;
    assert!(
        v["error"]
            .as_str()
            .unwrap_or_default()
            .ends_with("ms in the future (at most 600000 ms ahead of the server's clock)"),
        "{v}"
    );

    // Nothing of the refused batches was applied: the EMA is still the first value.
    gauge(&server, "driftgauge_ema_value", &[("rule", "acc")], 0.9).await;
    // Out of order, decreasing, twice in the future, not whole: bad_timestamp; a count that
    // does not match the values: bad_value.
    let text = server.metrics().await;
    let rejected = |reason| {
        metric_value(
            &text,
            "driftgauge_requests_rejected_total",
            &[("reason", reason)],
        )
    };
    assert_eq!(rejected("bad_timestamp"), Some(5.0), "{text}");
    assert_eq!(rejected("bad_value"), Some(1.0), "{text}");
    server.stop().await;
}

/// Raw values drawn from a fixed distribution: `u^2` of a hashed counter (no RNG crate).
fn draws(seed: u64, n: usize, shift: f64) -> Vec<f64> {
    (0..n as u64)
        .map(|i| {
            let mut z = (seed << 32 | i).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            let u = ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64;
            u * u + shift
        })
        .collect()
}

#[tokio::test]
async fn raw_value_rules_take_range_and_offset_references_in_time() {
    let now = now_ms();
    let day = 86_400_000;
    let hour = 3_600_000;
    // Yesterday's hour [now - 1d - 1h, now - 1d) is the known-good period, by range and by
    // offset; a value an hour before it is in neither.
    let start = driftgauge::time::rfc3339(now - day - hour);
    let end = driftgauge::time::rfc3339(now - day);
    let rules = format!(
        r#"
groups:
  - name: g
    interval: 50ms
    rules:
      - name: pinned
        detector: ks
        series: 'score{{model="m"}}'
        reference: {{range: {{start: "{start}", end: "{end}"}}}}
        current: {{duration: 10m}}
        alpha: 0.001
        min_samples: 100
      - name: weekly
        detector: cvm
        series: 'score{{model="m"}}'
        reference: {{offset: 1d, duration: 1h}}
        current: {{duration: 10m}}
        alpha: 0.001
        min_samples: 100
"#
    );
    let server = Server::start(
        Files::new("global: {evaluation_interval: 50ms}\n").rule_file("r.yml", &rules),
    )
    .await;
    let base = draws(1, 600, 0.0);
    let times = |from: i64, n: usize, step: i64| -> Vec<i64> {
        (0..n as i64).map(|i| from + i * step).collect()
    };
    let entry = |values: &[f64], ts: Vec<i64>| json!({"metric": "score", "labels": {"model": "m"}, "values": values, "timestamps": ts});
    let (status, v) = server
        .post_json(
            "/api/v1/samples",
            json!({"samples": [
                entry(&[5.0; 50], times(now - day - 2 * hour, 50, 1000)),
                // Well inside the hour: an offset's edges are exact to a chunk (112.5 s here).
                entry(&base, times(now - day - hour + 150_000, 600, 5000)),
            ]}),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    // Today, the same distribution: both references hold yesterday's 600, nothing drifts.
    let same = draws(2, 300, 0.0);
    let (status, v) = server
        .post_json(
            "/api/v1/samples",
            json!({"samples": [entry(&same, times(now - 300_000, 300, 1000))]}),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    for rule in ["pinned", "weekly"] {
        let reference = [("rule", rule), ("window", "reference")];
        gauge(&server, "driftgauge_window_samples", &reference, 600.0).await;
        let current = [("rule", rule), ("window", "current")];
        gauge(&server, "driftgauge_window_samples", &current, 300.0).await;
        gauge(&server, "driftgauge_drift_status", &[("rule", rule)], 0.0).await;
    }
    // Then shifted values: both drift against yesterday's hour.
    let shifted = draws(3, 300, 0.3);
    let (status, v) = server
        .post_json(
            "/api/v1/samples",
            json!({"samples": [entry(&shifted, vec![now; 300])]}),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    for rule in ["pinned", "weekly"] {
        gauge(&server, "driftgauge_drift_status", &[("rule", rule)], 2.0).await;
    }
}
