//! `POST /api/v1/write` over real HTTP: bodies built by hand (a tiny protobuf encoder) and
//! snappy-compressed, rules evaluated by the real scheduler, results read from `/metrics`.

use crate::fixture::{Scrapers, Service};
use crate::support::metric_value;

const STALE_NAN: u64 = 0x7ff0_0000_0000_0002;

// A tiny protobuf encoder for prometheus.WriteRequest.
fn varint(mut v: u64, out: &mut Vec<u8>) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

fn field(n: u64, bytes: &[u8], out: &mut Vec<u8>) {
    varint(n << 3 | 2, out);
    varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

/// One `TimeSeries` with these labels and (value, timestamp_ms) samples.
pub(crate) fn series(labels: &[(&str, &str)], samples: &[(f64, i64)]) -> Vec<u8> {
    let mut ts = Vec::new();
    for (name, value) in labels {
        let mut l = Vec::new();
        field(1, name.as_bytes(), &mut l);
        field(2, value.as_bytes(), &mut l);
        field(1, &l, &mut ts);
    }
    for (value, t) in samples {
        let mut s = vec![0x09]; // field 1, fixed64
        s.extend_from_slice(&value.to_bits().to_le_bytes());
        s.push(0x10); // field 2, varint
        varint(*t as u64, &mut s);
        field(2, &s, &mut ts);
    }
    ts
}

/// A snappy-compressed `WriteRequest` of these series.
pub(crate) fn body(all: &[Vec<u8>]) -> Vec<u8> {
    let mut raw = Vec::new();
    for ts in all {
        field(1, ts, &mut raw);
    }
    snap::raw::Encoder::new()
        .compress_vec(&raw)
        .expect("snappy compress")
}

fn config(limits: &str) -> String {
    format!(
        "global: {{evaluation_interval: 50ms}}\nrule_files: [\"rules/*.yml\"]\nlimits: {{{limits}}}\n"
    )
}

const RULES: &str = r#"
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
"#;

const ACC: [(&str, &str); 2] = [("__name__", "model_accuracy"), ("model", "fraud")];
const RULE: [(&str, &str); 2] = [("rule", "accuracy_degradation"), ("model", "fraud")];

/// The EMA the rule should hold after these values, in this order.
fn ema(values: &[f64]) -> f64 {
    values
        .iter()
        .copied()
        .reduce(|e, x| 0.5 * x + 0.5 * e)
        .unwrap_or(f64::NAN)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_written_series_drives_a_rule_in_timestamp_order() {
    let svc = Service::start(&config(""), &[("rules/q.yml", RULES)], Scrapers::Spawn).await;
    // One TimeSeries a sample (as Prometheus sends them), newest first: taken by timestamp.
    let (status, text) = svc
        .write(body(&[
            series(&ACC, &[(0.95, 3_000)]),
            series(&[("__name__", "unrelated")], &[(1.0, 1)]),
            series(&ACC, &[(0.9, 2_000)]),
            series(&ACC, &[(0.2, 1_000)]),
        ]))
        .await;
    assert_eq!((status, text.as_str()), (204, ""));
    let want = ema(&[0.2, 0.9, 0.95]);
    let got = svc
        .wait_metric("driftgauge_ema_value", &RULE, |v| (v - want).abs() < 1e-12)
        .await;
    assert!((got - want).abs() < 1e-12);
    svc.wait_metric("driftgauge_drift_status", &RULE, |v| v == 2.0)
        .await;
    // The unrelated series no rule selects is counted and dropped.
    assert_eq!(svc.counter("received", "remote_write"), 3.0);
    assert_eq!(svc.counter("unselected", "remote_write"), 1.0);

    // Recovery: the state goes back to stable.
    let (status, _) = svc
        .write(body(&[series(&ACC, &[(1.0, 4_000), (1.0, 5_000)])]))
        .await;
    assert_eq!(status, 204);
    svc.wait_metric("driftgauge_drift_status", &RULE, |v| v == 0.0)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_markers_and_non_finite_values_are_skipped_and_counted() {
    let svc = Service::start(&config(""), &[("rules/q.yml", RULES)], Scrapers::Spawn).await;
    let stale = f64::from_bits(STALE_NAN);
    let (status, _) = svc
        .write(body(&[
            series(&ACC, &[(0.9, 1)]),
            series(&ACC, &[(stale, 2), (f64::NAN, 3), (f64::INFINITY, 4)]),
            series(&ACC, &[(f64::NEG_INFINITY, 5), (0.8, 6)]),
            // Only a stale marker: the series ended; it is not even created.
            series(&[("__name__", "gone")], &[(stale, 7)]),
        ]))
        .await;
    assert_eq!(status, 204);
    let want = ema(&[0.9, 0.8]);
    svc.wait_metric("driftgauge_ema_value", &RULE, |v| (v - want).abs() < 1e-12)
        .await;
    let text = svc
        .wait_for("the window to hold 2 values", |t| {
            metric_value(
                t,
                "driftgauge_window_samples",
                &[("rule", "accuracy_degradation"), ("window", "current")],
            ) == Some(2.0)
        })
        .await;
    let rejected = |reason| {
        metric_value(
            &text,
            "driftgauge_samples_rejected_total",
            &[("reason", reason)],
        )
    };
    assert_eq!(rejected("stale_marker"), Some(2.0), "{text}");
    assert_eq!(rejected("non_finite"), Some(3.0), "{text}");
    assert_eq!(
        metric_value(
            &text,
            "driftgauge_samples_received_total",
            &[("source", "remote_write")]
        ),
        Some(2.0)
    );
    assert_eq!(svc.engine.series_count(), 1, "\"gone\" was never created");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bodies_are_refused_whole_with_a_message() {
    let svc = Service::start(&config(""), &[("rules/q.yml", RULES)], Scrapers::Spawn).await;
    let json = |text: &str| -> serde_json::Value {
        serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
    };

    let (status, text) = svc.write(b"this is not snappy".to_vec()).await;
    assert_eq!(status, 400, "{text}");
    let v = json(&text);
    assert_eq!(v["errorType"], "bad_data");
    assert!(
        v["error"].as_str().is_some_and(|e| e.contains("snappy")),
        "{text}"
    );

    // Snappy around bytes that are not a WriteRequest.
    let garbage = snap::raw::Encoder::new()
        .compress_vec(&[0x0a, 0x7f, 0x01, 0x02])
        .expect("snappy");
    let (status, text) = svc.write(garbage).await;
    assert_eq!(status, 400);
    assert!(json(&text)["error"]
        .as_str()
        .is_some_and(|e| e.contains("protobuf") && e.contains("length 127")));

    // A good series then a bad one: nothing is applied, the bad one is named.
    let (status, text) = svc
        .write(body(&[
            series(&ACC, &[(0.1, 1)]),
            series(&[("__name__", "x"), ("bad-name", "v")], &[(1.0, 1)]),
        ]))
        .await;
    assert_eq!(status, 400);
    let v = json(&text);
    assert_eq!(v["error"], "timeseries[1]: invalid label name \"bad-name\"");
    assert_eq!(v["index"], 1);
    let (status, text) = svc
        .write(body(&[series(&[("model", "fraud")], &[(0.1, 1)])]))
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        json(&text)["error"],
        "timeseries[0]: missing __name__ label"
    );

    // Another compression, or a protobuf message this receiver does not read: 415 with
    // the reason (remote write 2.0's content negotiation).
    let r = svc
        .client
        .post(svc.url("/api/v1/write"))
        .header("content-encoding", "gzip")
        .body(body(&[series(&ACC, &[(0.1, 1)])]))
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status(), 415);
    assert!(r
        .text()
        .await
        .unwrap_or_default()
        .contains("Content-Encoding"));
    let r = svc
        .client
        .post(svc.url("/api/v1/write"))
        .header(
            "content-type",
            "application/x-protobuf;proto=io.prometheus.write.v3.Request",
        )
        .body(body(&[series(&ACC, &[(0.1, 1)])]))
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status(), 415);
    assert!(r
        .text()
        .await
        .unwrap_or_default()
        .contains("io.prometheus.write.v2.Request"));

    assert_eq!(svc.counter("received", "remote_write"), 0.0);
    assert_eq!(svc.engine.series_count(), 0);
    // The rule never saw a value: no gauge for it.
    let text = svc.metrics().await;
    assert_eq!(metric_value(&text, "driftgauge_ema_value", &RULE), None);
    // Each refused request once; the values of those that were decoded too (two, then
    // one), none of those that could not be read.
    assert_eq!(svc.counter("requests_rejected", "bad_body"), 4.0);
    assert_eq!(svc.counter("rejected", "bad_body"), 0.0);
    assert_eq!(svc.counter("requests_rejected", "bad_name"), 2.0);
    assert_eq!(svc.counter("rejected", "bad_name"), 3.0);
}

/// Push and remote write used to classify a label name over the limit apart (`bad_name`
/// and `too_large`), both by the words of the message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_too_long_label_name_has_the_reason_a_push_gives_it() {
    let svc = Service::start(&config(""), &[("rules/q.yml", RULES)], Scrapers::Spawn).await;
    let long = "n".repeat(driftgauge::labels::MAX_NAME_BYTES + 1);
    let (status, text) = svc
        .write(body(&[series(
            &[("__name__", "acc"), (&long, "x")],
            &[(0.9, 1), (0.8, 2)],
        )]))
        .await;
    assert_eq!(status, 400, "{text}");
    assert_eq!(svc.counter("requests_rejected", "too_large"), 1.0);
    assert_eq!(svc.counter("rejected", "too_large"), 2.0);
    // The same series pushed is refused for the same reason (this service serves only
    // remote write: the push body goes to the parser the push route calls).
    let push = format!(r#"{{"samples":[{{"metric":"acc","labels":{{"{long}":"x"}},"value":1}}]}}"#);
    let e = driftgauge::formats::push::parse(push.as_bytes()).expect_err("refused");
    assert_eq!(e.reason().as_str(), "too_large");
    assert_eq!(svc.counter("rejected", "bad_name"), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_body_limit_is_413() {
    let svc = Service::start(
        &config("max_body_bytes: 4096"),
        &[("rules/q.yml", RULES)],
        Scrapers::Spawn,
    )
    .await;
    // Values that snappy cannot shrink much: well over 4096 bytes compressed.
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let samples: Vec<(f64, i64)> = (0..1000)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ((x >> 11) as f64 / (1u64 << 53) as f64, i)
        })
        .collect();
    let big = body(&[series(&ACC, &samples)]);
    assert!(big.len() > 4096);
    let (status, text) = svc.write(big).await;
    assert_eq!(status, 413, "{text}");
    assert!(text.contains("max_body_bytes=4096"), "{text}");
    // Counted once as a request; its values were never read.
    let text = svc.metrics().await;
    assert_eq!(
        metric_value(
            &text,
            "driftgauge_requests_rejected_total",
            &[("reason", "too_large")]
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        metric_value(
            &text,
            "driftgauge_samples_rejected_total",
            &[("reason", "too_large")]
        ),
        None,
        "{text}"
    );
    // A small one still goes through.
    let (status, _) = svc.write(body(&[series(&ACC, &samples[..10])])).await;
    assert_eq!(status, 204);
    assert_eq!(svc.counter("received", "remote_write"), 10.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_series_limit_is_429_and_nothing_is_applied() {
    let svc = Service::start(
        &config("max_series: 3"),
        &[("rules/q.yml", RULES)],
        Scrapers::Spawn,
    )
    .await;
    // Series the rule selects (it matches any further labels).
    let acc = |i: &'static str| [("__name__", "model_accuracy"), ("model", "fraud"), ("i", i)];
    let (status, _) = svc
        .write(body(&[
            series(&ACC, &[(0.9, 1)]),
            series(&acc("b"), &[(1.0, 1)]),
        ]))
        .await;
    assert_eq!(status, 204);
    // Two more distinct series would make four: refused whole, the known one included.
    let (status, text) = svc
        .write(body(&[
            series(&ACC, &[(0.1, 2)]),
            series(&acc("c"), &[(1.0, 1)]),
            series(&acc("d"), &[(1.0, 1)]),
        ]))
        .await;
    assert_eq!(status, 429, "{text}");
    assert!(text.contains("max_series=3"), "{text}");
    assert_eq!(svc.counter("received", "remote_write"), 2.0);
    assert_eq!(svc.counter("rejected", "series_limit"), 3.0);
    assert_eq!(svc.engine.series_count(), 2);
    let text = svc
        .wait_for("both series evaluated", |t| {
            t.matches("driftgauge_ema_value{").count() == 2
        })
        .await;
    assert_eq!(
        crate::support::metric_value(
            &text,
            "driftgauge_ema_value",
            &[("rule", "accuracy_degradation"), ("i", "b")]
        ),
        Some(1.0)
    );
}

/// The same through the whole service: `serve`'s own route, scheduler and `/metrics`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_takes_remote_write_on_its_own_route() {
    let server = crate::support::Server::start(
        crate::support::Files::new(&config("")).rule_file("q.yml", RULES),
    )
    .await;
    let r = server
        .client
        .post(server.url("/api/v1/write"))
        .header("content-type", "application/x-protobuf")
        .header("content-encoding", "snappy")
        .header("x-prometheus-remote-write-version", "0.1.0")
        .body(body(&[series(&ACC, &[(0.5, 1), (0.4, 2)])]))
        .send()
        .await
        .expect("POST /api/v1/write");
    assert_eq!(r.status(), 204);
    server
        .wait_metric("driftgauge_drift_status", &RULE, |v| v == 2.0)
        .await;
    // `post` sends JSON: not a remote write body (415, as the 2.0 spec says).
    let (status, text) = server.post("/api/v1/write", b"garbage".to_vec()).await;
    assert_eq!(status, 415, "{text}");
    let text = server.metrics().await;
    assert_eq!(
        metric_value(
            &text,
            "driftgauge_samples_received_total",
            &[("source", "remote_write")]
        ),
        Some(2.0),
        "{text}"
    );
}
