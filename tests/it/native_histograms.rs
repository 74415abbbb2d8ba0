//! Native histograms and remote write 2.0 over real HTTP: bodies built by a small hand
//! encoder (symbols table, label references, samples, native histograms, exemplars),
//! snappy-compressed, taken by `POST /api/v1/write`; the expanded classic series
//! (`<name>_bucket{le}`, `_count`, `_sum`) read back through rules on `/metrics`.

use crate::fixture::{Scrapers, Service};
use crate::remote_write::{body, series};
use crate::support::metric_value;

const V2: &str = "application/x-protobuf;proto=io.prometheus.write.v2.Request";
const STALE_NAN: u64 = 0x7ff0_0000_0000_0002;

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
fn key(field: u64, wire: u64, out: &mut Vec<u8>) {
    varint(field << 3 | wire, out);
}
fn bytes(field: u64, b: &[u8], out: &mut Vec<u8>) {
    key(field, 2, out);
    varint(b.len() as u64, out);
    out.extend_from_slice(b);
}
fn double(field: u64, v: f64, out: &mut Vec<u8>) {
    key(field, 1, out);
    out.extend_from_slice(&v.to_bits().to_le_bytes());
}
fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

/// An integer native histogram at schema 0 (bucket `i` is `(2^(i-1), 2^i]`): positive
/// buckets at indices 0, 1, 3, 4 holding 1, 2, 1, 1 + `extra`; a negative bucket at index
/// 0 (`[-1, -0.5)`) holding 2; 2 in the zero bucket `[-0.001, 0.001]`.
/// Cumulative: le=-0.5 → 2, 0.001 → 4, 1 → 5, 2 → 7, 8 → 8, 16 → 9 + extra, +Inf → 9 + extra.
fn histogram(timestamp: i64, extra: u64, sum: f64) -> Vec<u8> {
    let mut h = Vec::new();
    key(1, 0, &mut h);
    varint(9 + extra, &mut h); // count_int
    double(3, sum, &mut h);
    key(4, 0, &mut h);
    varint(zigzag(0), &mut h); // schema
    double(5, 0.001, &mut h); // zero_threshold
    key(6, 0, &mut h);
    varint(2, &mut h); // zero_count_int
    let span = |offset: i64, length: u64| {
        let mut s = Vec::new();
        key(1, 0, &mut s);
        varint(zigzag(offset), &mut s);
        key(2, 0, &mut s);
        varint(length, &mut s);
        s
    };
    bytes(8, &span(0, 1), &mut h); // negative_spans
    let mut deltas = Vec::new();
    varint(zigzag(2), &mut deltas);
    bytes(9, &deltas, &mut h); // negative_deltas
    bytes(11, &span(0, 2), &mut h); // positive_spans
    bytes(11, &span(1, 2), &mut h);
    let mut deltas = Vec::new();
    for d in [1, 1, -1, extra as i64] {
        varint(zigzag(d), &mut deltas);
    }
    bytes(12, &deltas, &mut h); // positive_deltas
    key(15, 0, &mut h);
    varint(timestamp as u64, &mut h);
    h
}

/// A remote write 2.0 `TimeSeries`.
fn v2_series(
    refs: &[u32],
    samples: &[(f64, i64)],
    histograms: &[Vec<u8>],
    exemplars: usize,
) -> Vec<u8> {
    let mut ts = Vec::new();
    let mut packed = Vec::new();
    for &r in refs {
        varint(r.into(), &mut packed);
    }
    bytes(1, &packed, &mut ts);
    for &(v, t) in samples {
        let mut s = Vec::new();
        double(1, v, &mut s);
        key(2, 0, &mut s);
        varint(t as u64, &mut s);
        bytes(2, &s, &mut ts);
    }
    for h in histograms {
        bytes(3, h, &mut ts);
    }
    for i in 0..exemplars {
        let mut e = Vec::new();
        double(2, 0.25, &mut e);
        key(3, 0, &mut e);
        varint(1000 + i as u64, &mut e);
        bytes(4, &e, &mut ts);
    }
    ts
}

/// A snappy-compressed `io.prometheus.write.v2.Request`.
fn v2_body(symbols: &[&str], series: &[Vec<u8>]) -> Vec<u8> {
    let mut raw = Vec::new();
    for s in symbols {
        bytes(4, s.as_bytes(), &mut raw);
    }
    for ts in series {
        bytes(5, ts, &mut raw);
    }
    snap::raw::Encoder::new()
        .compress_vec(&raw)
        .expect("snappy")
}

const SYMBOLS: [&str; 6] = ["", "__name__", "score", "model", "fraud", "model_accuracy"];
/// `score{model="fraud"}` and `model_accuracy{model="fraud"}`.
const SCORE: [u32; 4] = [1, 2, 3, 4];
const ACC: [u32; 4] = [1, 5, 3, 4];

fn config(limits: &str) -> String {
    format!(
        "global: {{evaluation_interval: 50ms}}\nrule_files: [\"rules/*.yml\"]\nlimits: {{{limits}}}\n"
    )
}

/// EMA rules on expanded classic series (smoothing 0.5, never drifting).
const RULES: &str = r#"
groups:
  - name: hist
    interval: 50ms
    rules:
      - name: le16
        detector: ema
        min_samples: 1
        series: 'score_bucket{model="fraud", le="16"}'
        smoothing: 0.5
        below: -1
      - name: total
        detector: ema
        min_samples: 1
        series: 'score_count{model="fraud"}'
        smoothing: 0.5
        below: -1
      - name: negative
        detector: ema
        min_samples: 1
        series: 'score_bucket{model="fraud", le="-0.5"}'
        smoothing: 0.5
        below: -1
      - name: accuracy
        detector: ema
        min_samples: 1
        series: 'model_accuracy{model="fraud"}'
        smoothing: 0.5
        below: -1
"#;

struct Answer {
    status: u16,
    text: String,
    written: [Option<u64>; 3],
}

async fn post(svc: &Service, content_type: &str, encoding: &str, body: Vec<u8>) -> Answer {
    let r = svc
        .client
        .post(svc.url("/api/v1/write"))
        .header("content-type", content_type)
        .header("content-encoding", encoding)
        .header("x-prometheus-remote-write-version", "2.0.0")
        .body(body)
        .send()
        .await
        .expect("POST /api/v1/write");
    let header = |name: &str| {
        r.headers().get(name).map(|v| {
            v.to_str()
                .expect("ASCII")
                .parse::<u64>()
                .expect("an integer")
        })
    };
    let written = [
        header("x-prometheus-remote-write-samples-written"),
        header("x-prometheus-remote-write-histograms-written"),
        header("x-prometheus-remote-write-exemplars-written"),
    ];
    Answer {
        status: r.status().as_u16(),
        text: r.text().await.expect("body"),
        written,
    }
}

async fn ema(svc: &Service, rule: &str, le: Option<&str>, want: f64) {
    let mut labels = vec![("rule", rule), ("model", "fraud")];
    if let Some(le) = le {
        labels.push(("le", le));
    }
    let got = svc
        .wait_metric("driftgauge_ema_value", &labels, |v| {
            (v - want).abs() < 1e-12
        })
        .await;
    assert!((got - want).abs() < 1e-12, "{rule}: {got} != {want}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_write_2_samples_and_native_histograms_land_in_the_windows() {
    let svc = Service::start(&config(""), &[("rules/h.yml", RULES)], Scrapers::Spawn).await;
    let mut stale = histogram(3000, 0, 0.0);
    // The stale marker of a native histogram is in its sum.
    let at = stale
        .iter()
        .position(|&b| b == 0x19)
        .expect("the sum field");
    stale[at + 1..at + 9].copy_from_slice(&STALE_NAN.to_le_bytes());
    let a = post(
        &svc,
        V2,
        "snappy",
        v2_body(
            &SYMBOLS,
            &[
                // Newest first: taken in timestamp order.
                v2_series(&SCORE, &[], &[histogram(2000, 1, 12.0)], 1),
                v2_series(&SCORE, &[], &[histogram(1000, 0, 10.5), stale], 0),
                v2_series(&ACC, &[(0.9, 1000), (0.7, 2000)], &[], 2),
            ],
        ),
    )
    .await;
    assert_eq!((a.status, a.text.as_str()), (204, ""));
    assert_eq!(a.written, [Some(2), Some(3), Some(3)]);
    // le="16": 9 then 10; the count likewise; the negative bucket 2 and 2.
    ema(&svc, "le16", Some("16"), 0.5 * 10.0 + 0.5 * 9.0).await;
    ema(&svc, "total", None, 9.5).await;
    ema(&svc, "negative", Some("-0.5"), 2.0).await;
    ema(&svc, "accuracy", None, 0.5 * 0.7 + 0.5 * 0.9).await;
    // Two float samples, and two histograms of 9 values each (7 buckets, count, sum): the
    // ones the rules select are received, the others counted and dropped.
    assert_eq!(svc.counter("received", "remote_write"), 2.0 + 2.0 * 3.0);
    assert_eq!(svc.counter("unselected", "remote_write"), 2.0 * 6.0);
    assert_eq!(svc.counter("rejected", "stale_marker"), 1.0);
    assert_eq!(svc.engine.series_count(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_write_1_native_histograms_are_expanded_too() {
    let svc = Service::start(&config(""), &[("rules/h.yml", RULES)], Scrapers::Spawn).await;
    let mut ts = series(&[("__name__", "score"), ("model", "fraud")], &[]);
    bytes(4, &histogram(1000, 0, 10.5), &mut ts);
    let mut later = series(&[("__name__", "score"), ("model", "fraud")], &[]);
    bytes(4, &histogram(2000, 3, 20.0), &mut later);
    let (status, text) = svc.write(body(&[later, ts])).await;
    assert_eq!((status, text.as_str()), (204, ""));
    ema(&svc, "le16", Some("16"), 0.5 * 12.0 + 0.5 * 9.0).await;
    ema(&svc, "total", None, 0.5 * 12.0 + 0.5 * 9.0).await;
    assert_eq!(svc.counter("received", "remote_write"), 6.0);
    assert_eq!(svc.counter("unselected", "remote_write"), 12.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_message_or_encoding_is_415_naming_what_is_taken() {
    let svc = Service::start(&config(""), &[("rules/h.yml", RULES)], Scrapers::Spawn).await;
    let good = || v2_body(&SYMBOLS, &[v2_series(&ACC, &[(0.9, 1)], &[], 0)]);
    let a = post(&svc, "application/x-protobuf;proto=yolo", "snappy", good()).await;
    assert_eq!(a.status, 415, "{}", a.text);
    assert!(
        a.text.contains("yolo")
            && a.text.contains("prometheus.WriteRequest")
            && a.text.contains("io.prometheus.write.v2.Request"),
        "{}",
        a.text
    );
    let a = post(&svc, "application/json", "snappy", good()).await;
    assert_eq!(a.status, 415, "{}", a.text);
    let a = post(&svc, V2, "zstd", good()).await;
    assert_eq!(a.status, 415, "{}", a.text);
    assert!(
        a.text.contains("zstd") && a.text.contains("snappy"),
        "{}",
        a.text
    );
    assert_eq!(svc.counter("received", "remote_write"), 0.0);
    assert_eq!(svc.counter("requests_rejected", "bad_body"), 3.0);
    // A 2.0 body sent as 1.0 decodes as an empty 1.0 request (its fields are not 1.0's):
    // why the content type decides. 1.0 answers carry no Written headers.
    let a = post(&svc, "application/x-protobuf", "snappy", good()).await;
    assert_eq!((a.status, a.written), (204, [None, None, None]));
    assert_eq!(svc.counter("received", "remote_write"), 0.0);
    // The same body as 2.0 is taken.
    let a = post(&svc, V2, "snappy", good()).await;
    assert_eq!((a.status, a.written), (204, [Some(1), Some(0), Some(0)]));
    assert_eq!(svc.counter("received", "remote_write"), 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_2_0_requests_apply_nothing_and_say_nothing_was_written() {
    let svc = Service::start(
        &config("max_series: 2"),
        &[("rules/h.yml", RULES)],
        Scrapers::Spawn,
    )
    .await;
    // A good series, then one whose label reference is past the symbols.
    let a = post(
        &svc,
        V2,
        "snappy",
        v2_body(
            &SYMBOLS,
            &[
                v2_series(&ACC, &[(0.9, 1)], &[], 0),
                v2_series(&[1, 5, 3, 40], &[(0.9, 1)], &[], 0),
            ],
        ),
    )
    .await;
    assert_eq!(a.status, 400, "{}", a.text);
    let v: serde_json::Value = serde_json::from_str(&a.text).expect("JSON");
    assert_eq!(
        v["error"],
        "timeseries[1]: labels_refs[3] = 40 is not a symbol (the request has 6)"
    );
    assert_eq!(v["index"], 1);
    assert_eq!(a.written, [Some(0), Some(0), Some(0)]);
    // A histogram expands into 9 series, 3 of them selected by rules: with the accuracy,
    // past max_series, refused whole (429).
    let a = post(
        &svc,
        V2,
        "snappy",
        v2_body(
            &SYMBOLS,
            &[
                v2_series(&ACC, &[(0.9, 1)], &[], 0),
                v2_series(&SCORE, &[], &[histogram(1, 0, 1.0)], 0),
            ],
        ),
    )
    .await;
    assert_eq!(a.status, 429, "{}", a.text);
    assert_eq!(a.written, [Some(0), Some(0), Some(0)]);
    assert_eq!(svc.counter("received", "remote_write"), 0.0);
    assert_eq!(svc.engine.series_count(), 0);
    // A histogram that breaks the rules (a bucket count below zero): 400, named.
    let mut bad = histogram(1, 0, 1.0);
    let n = bad.len();
    // The last deltas (before the timestamp) end with `extra` = 0: make it -2.
    let at = n - 3; // the last delta, before the 2 bytes of the timestamp
    assert_eq!(bad[at], 0, "{bad:?}");
    bad[at] = 3; // zigzag(-2)
    let a = post(
        &svc,
        V2,
        "snappy",
        v2_body(&SYMBOLS, &[v2_series(&SCORE, &[], &[bad], 0)]),
    )
    .await;
    assert_eq!(a.status, 400, "{}", a.text);
    assert!(
        a.text
            .contains("timeseries[0]: native histogram positive bucket 4 has the count -1"),
        "{}",
        a.text
    );
    let text = svc.metrics().await;
    assert_eq!(
        metric_value(
            &text,
            "driftgauge_requests_rejected_total",
            &[("reason", "bad_value")]
        ),
        Some(1.0),
        "{text}"
    );
}

/// The worked histogram as a `io.prometheus.client.MetricFamily` (the protobuf exposition
/// format), length-delimited as a scrape answer holds it:
///
/// ```text
/// MetricFamily { string name = 1; string help = 2; MetricType type = 3 (HISTOGRAM = 4);
///                repeated Metric metric = 4; }
/// Metric       { repeated LabelPair label = 1; Histogram histogram = 7; }
/// Histogram    { uint64 sample_count = 1; double sample_sum = 2; sint32 schema = 5;
///                double zero_threshold = 6; uint64 zero_count = 7;
///                repeated BucketSpan negative_span = 9; repeated sint64 negative_delta = 10;
///                repeated BucketSpan positive_span = 12; repeated sint64 positive_delta = 13; }
/// ```
fn exposition(extra: u64) -> Vec<u8> {
    let span = |offset: i64, length: u64| {
        let mut s = Vec::new();
        key(1, 0, &mut s);
        varint(zigzag(offset), &mut s);
        key(2, 0, &mut s);
        varint(length, &mut s);
        s
    };
    let packed = |deltas: &[i64]| {
        let mut p = Vec::new();
        for &d in deltas {
            varint(zigzag(d), &mut p);
        }
        p
    };
    let mut h = Vec::new();
    key(1, 0, &mut h);
    varint(9 + extra, &mut h);
    double(2, 10.5, &mut h);
    key(5, 0, &mut h);
    varint(zigzag(0), &mut h);
    double(6, 0.001, &mut h);
    key(7, 0, &mut h);
    varint(2, &mut h);
    bytes(9, &span(0, 1), &mut h);
    bytes(10, &packed(&[2]), &mut h);
    bytes(12, &span(0, 2), &mut h);
    bytes(12, &span(1, 2), &mut h);
    bytes(13, &packed(&[1, 1, -1, extra as i64]), &mut h);
    let mut label = Vec::new();
    bytes(1, b"model", &mut label);
    bytes(2, b"fraud", &mut label);
    let mut metric = Vec::new();
    bytes(1, &label, &mut metric);
    bytes(7, &h, &mut metric);
    let mut family = Vec::new();
    bytes(1, b"model_prediction_score", &mut family);
    bytes(2, b"Prediction scores.", &mut family);
    key(3, 0, &mut family);
    varint(4, &mut family);
    bytes(4, &metric, &mut family);
    let mut out = Vec::new();
    varint(family.len() as u64, &mut out);
    out.extend_from_slice(&family);
    out
}

/// A model server exposing one native histogram in the protobuf exposition format: answers
/// every request with `body`, counts the scrapes.
struct ProtobufExporter {
    addr: std::net::SocketAddr,
    body: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    accepts: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ProtobufExporter {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ProtobufExporter {
    async fn start(body: Vec<u8>) -> ProtobufExporter {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let body = std::sync::Arc::new(std::sync::Mutex::new(body));
        let accepts = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (b, a) = (body.clone(), accepts.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut conn, _)) = listener.accept().await else {
                    return;
                };
                let (b, a) = (b.clone(), a.clone());
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match conn.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    let text = String::from_utf8_lossy(&request).to_string();
                    let accept = text
                        .lines()
                        .find_map(|l| {
                            l.split_once(':')
                                .filter(|(k, _)| k.eq_ignore_ascii_case("accept"))
                                .map(|(_, v)| v.trim().to_string())
                        })
                        .unwrap_or_default();
                    a.lock().unwrap_or_else(|e| e.into_inner()).push(accept);
                    let body = b.lock().unwrap_or_else(|e| e.into_inner()).clone();
                    let head = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = conn.write_all(head.as_bytes()).await;
                    let _ = conn.write_all(&body).await;
                    let _ = conn.shutdown().await;
                });
            }
        });
        ProtobufExporter {
            addr,
            body,
            accepts,
            task,
        }
    }

    fn set(&self, body: Vec<u8>) {
        *self.body.lock().unwrap_or_else(|e| e.into_inner()) = body;
    }
}

/// A real Prometheus (2.42, `--enable-feature=native-histograms`) scrapes a native histogram
/// in the protobuf exposition format and remote-writes it (`send_native_histograms: true`,
/// remote write 1.0: 2.42 cannot send 2.0); the expanded classic series reach the rules.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_remote_writes_a_scraped_native_histogram_as_classic_series() {
    let rules = r#"
groups:
  - name: hist
    interval: 100ms
    rules:
      - name: le16
        detector: ema
        min_samples: 1
        series: 'model_prediction_score_bucket{le="16", job="model-server"}'
        smoothing: 1
        below: -1
      - name: negative
        detector: ema
        min_samples: 1
        series: 'model_prediction_score_bucket{le="-0.5"}'
        smoothing: 1
        below: -1
      - name: total
        detector: ema
        min_samples: 1
        series: 'model_prediction_score_count'
        smoothing: 1
        below: -1
"#;
    let server = crate::support::Server::start(
        crate::support::Files::new(
            "global: {evaluation_interval: 100ms}\nrule_files: [\"rules/*.yml\"]\n",
        )
        .rule_file("h.yml", rules),
    )
    .await;
    let exporter = ProtobufExporter::start(exposition(0)).await;
    let prom_cfg = format!(
        r#"
global: {{scrape_interval: 1s}}
scrape_configs:
  - job_name: model-server
    static_configs:
      - targets: ["{target}"]
remote_write:
  - url: http://{dg}/api/v1/write
    send_native_histograms: true
    write_relabel_configs:
      - source_labels: [__name__]
        regex: model_prediction_score
        action: keep
    queue_config:
      batch_send_deadline: 1s
      min_backoff: 100ms
      max_backoff: 1s
"#,
        target = exporter.addr,
        dg = server.addr
    );
    let prom = crate::prom::Prometheus::start_with_args(
        &prom_cfg,
        &[],
        &["--enable-feature=native-histograms"],
    )
    .await;
    let le16 = [("rule", "le16"), ("model", "fraud"), ("le", "16")];
    server
        .wait_metric("driftgauge_ema_value", &le16, |v| v == 9.0)
        .await;
    server
        .wait_metric(
            "driftgauge_ema_value",
            &[("rule", "negative"), ("le", "-0.5")],
            |v| v == 2.0,
        )
        .await;
    server
        .wait_metric("driftgauge_ema_value", &[("rule", "total")], |v| v == 9.0)
        .await;
    // Prometheus asked for the protobuf format first.
    let accepts = exporter
        .accepts
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    assert!(
        accepts[0].starts_with("application/vnd.google.protobuf"),
        "{accepts:?}"
    );
    // One more observation in (8, 16]: the cumulative counts follow.
    exporter.set(exposition(1));
    server
        .wait_metric("driftgauge_ema_value", &le16, |v| v == 10.0)
        .await;
    let t = server.metrics().await;
    assert_eq!(
        metric_value(
            &t,
            "driftgauge_samples_rejected_total",
            &[("reason", "bad_value")]
        ),
        None,
        "{t}\n{}",
        prom.log()
    );
    drop(prom);
    server.stop().await;
}

/// The HA tracker reads the cluster and replica labels of a 2.0 request's first series, as
/// for 1.0: one replica is taken, the other answered 202 (its data dropped by design, so
/// the Written headers still say it was accepted), and the replica label is dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ha_tracker_takes_one_replica_of_a_2_0_pair() {
    let cfg = "global: {evaluation_interval: 50ms}\nrule_files: [\"rules/*.yml\"]\nremote_write_receiver: {ha_cluster_label: cluster, ha_replica_label: __replica__, ha_failover_timeout: 30s}\n";
    let svc = Service::start(cfg, &[("rules/h.yml", RULES)], Scrapers::Spawn).await;
    let symbols = [
        "",
        "__name__",
        "model_accuracy",
        "__replica__",
        "a",
        "b",
        "cluster",
        "prom",
        "model",
        "fraud",
    ];
    let from = |replica: u32, value: f64| {
        v2_body(
            &symbols,
            &[v2_series(
                &[1, 2, 3, replica, 6, 7, 8, 9],
                &[(value, 1000)],
                &[],
                0,
            )],
        )
    };
    let a = post(&svc, V2, "snappy", from(4, 0.9)).await;
    assert_eq!(
        (a.status, a.written),
        (204, [Some(1), Some(0), Some(0)]),
        "{}",
        a.text
    );
    let b = post(&svc, V2, "snappy", from(5, 0.1)).await;
    assert_eq!(
        (b.status, b.written),
        (202, [Some(1), Some(0), Some(0)]),
        "{}",
        b.text
    );
    let got = svc
        .wait_metric(
            "driftgauge_ema_value",
            &[("rule", "accuracy"), ("cluster", "prom")],
            |v| v == 0.9,
        )
        .await;
    assert_eq!(got, 0.9);
    assert_eq!(svc.counter("received", "remote_write"), 1.0);
    assert_eq!(svc.counter("rejected", "ha_dedupe"), 1.0);
    let text = svc.metrics().await;
    assert!(!text.contains("__replica__"), "{text}");
}

/// A model server's score distribution as a native histogram at schema 2 (bucket `i` is
/// `(2^((i-1)/4), 2^(i/4)]`), observed as the lead's classic test observes it: Beta(2,5)
/// scores (Beta(3,4) once shifted), as order statistics of 6 uniforms.
struct NativeModel {
    buckets: std::collections::BTreeMap<i64, u64>,
    count: u64,
    sum: f64,
}

impl NativeModel {
    fn observe(&mut self, rng: &mut crate::support::Rng, n: usize, shifted: bool) {
        for _ in 0..n {
            let mut u: Vec<f64> = (0..6).map(|_| rng.uniform()).collect();
            u.sort_by(f64::total_cmp);
            let score = if shifted { u[2] } else { u[1] }.max(1e-9);
            let index = (score.log2() * 4.0).ceil() as i64;
            *self.buckets.entry(index).or_default() += 1;
            self.count += 1;
            self.sum += score;
        }
    }

    /// The protobuf exposition of the histogram: one span from the lowest to the highest
    /// index, empty buckets between as zero deltas.
    fn exposition(&self) -> Vec<u8> {
        let mut h = Vec::new();
        key(1, 0, &mut h);
        varint(self.count, &mut h);
        double(2, self.sum, &mut h);
        key(5, 0, &mut h);
        varint(zigzag(2), &mut h);
        double(6, 2f64.powi(-128), &mut h); // client_golang's default zero threshold
        if let (Some((&lo, _)), Some((&hi, _))) = (
            self.buckets.first_key_value(),
            self.buckets.last_key_value(),
        ) {
            let mut span = Vec::new();
            key(1, 0, &mut span);
            varint(zigzag(lo), &mut span);
            key(2, 0, &mut span);
            varint((hi - lo + 1) as u64, &mut span);
            bytes(12, &span, &mut h);
            let mut deltas = Vec::new();
            let mut last = 0i64;
            for i in lo..=hi {
                let c = self.buckets.get(&i).copied().unwrap_or(0) as i64;
                varint(zigzag(c - last), &mut deltas);
                last = c;
            }
            bytes(13, &deltas, &mut h);
        }
        let mut metric = Vec::new();
        bytes(7, &h, &mut metric);
        let mut family = Vec::new();
        bytes(1, b"model_prediction_score", &mut family);
        key(3, 0, &mut family);
        varint(4, &mut family);
        bytes(4, &metric, &mut family);
        let mut out = Vec::new();
        varint(family.len() as u64, &mut out);
        out.extend_from_slice(&family);
        out
    }
}

/// The issue's phases with a native histogram: a real Prometheus 2.42 scrapes it (protobuf
/// exposition) and remote-writes it, and driftgauge also reads it through a query source
/// (`"histogram"` results). `histogram:` rules on both paths stay stable on the baseline and
/// on three times the traffic, and drift on the score shift.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_histograms_from_a_real_prometheus_drift_only_when_the_scores_shift() {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    let model = Arc::new(Mutex::new(NativeModel {
        buckets: Default::default(),
        count: 0,
        sum: 0.0,
    }));
    let first = model.lock().unwrap().exposition();
    let exporter = Arc::new(ProtobufExporter::start(first).await);
    // 0: baseline, 1: three times the traffic, 2: shifted scores.
    let phase = Arc::new(Mutex::new(0u8));
    let ticker = {
        let (phase, model, exporter) = (phase.clone(), model.clone(), exporter.clone());
        tokio::spawn(async move {
            let mut rng = crate::support::Rng::new(7);
            loop {
                let p = *phase.lock().unwrap();
                let (n, shifted) = [(20, false), (60, false), (20, true)][p as usize];
                let body = {
                    let mut m = model.lock().unwrap();
                    m.observe(&mut rng, n, shifted);
                    m.exposition()
                };
                exporter.set(body);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let prom_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
        l.local_addr().expect("addr").port()
    };
    let cfg = format!(
        r#"global: {{evaluation_interval: 200ms}}
rule_files: ["rules/*.yml"]
query_sources:
  - name: prom
    url: http://127.0.0.1:{prom_port}
    interval: 1s
    queries:
      - record: q_score
        expr: model_prediction_score
"#
    );
    let mut rules = String::from("groups:\n  - name: native\n    interval: 200ms\n    rules:\n");
    for (name, detector, family) in [
        ("chi2_rw", "chi2", "model_prediction_score{job=\"model\"}"),
        ("ks_rw", "ks", "model_prediction_score{job=\"model\"}"),
        ("chi2_q", "chi2", "q_score"),
    ] {
        rules.push_str(&format!(
            "      - name: {name}\n        detector: {detector}\n        histogram: '{family}'\n        reference: {{first: 8s}}\n        current: {{duration: 5s}}\n        min_samples: 200\n"
        ));
    }
    let server =
        crate::support::Server::start(crate::support::Files::new(&cfg).rule_file("n.yml", &rules))
            .await;
    let prom_cfg = format!(
        r#"
global: {{scrape_interval: 1s}}
scrape_configs:
  - job_name: model
    static_configs:
      - targets: ["{target}"]
remote_write:
  - url: http://{dg}/api/v1/write
    send_native_histograms: true
    queue_config:
      batch_send_deadline: 500ms
      min_backoff: 100ms
      max_backoff: 1s
"#,
        target = exporter.addr,
        dg = server.addr
    );
    let prom = crate::prom::Prometheus::start_at_with_args(
        &prom_cfg,
        prom_port,
        &["--enable-feature=native-histograms"],
    )
    .await;
    let all = ["chi2_rw", "ks_rw", "chi2_q"];
    let status =
        |text: &str, r: &str| metric_value(text, "driftgauge_drift_status", &[("rule", r)]);
    let text = crate::support::wait_until(
        "every rule decides on the baseline",
        Duration::from_secs(60),
        || {
            let server = &server;
            async move {
                let text = server.metrics().await;
                all.iter()
                    .all(|r| {
                        metric_value(&text, "driftgauge_drift_p_value", &[("rule", r)]).is_some()
                    })
                    .then_some(text)
            }
        },
    )
    .await;
    for r in all {
        assert_eq!(status(&text, r), Some(0.0), "{r}\n{text}\n{}", prom.log());
    }
    // Three times the traffic for 8 s: never drifted.
    *phase.lock().unwrap() = 1;
    let until = std::time::Instant::now() + Duration::from_secs(8);
    while std::time::Instant::now() < until {
        let text = server.metrics().await;
        for r in all {
            assert_eq!(
                status(&text, r),
                Some(0.0),
                "{r} drifted on a traffic change\n{text}"
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // The shift: every rule drifts.
    *phase.lock().unwrap() = 2;
    for r in all {
        server
            .wait_metric("driftgauge_drift_status", &[("rule", r)], |v| v == 2.0)
            .await;
    }
    ticker.abort();
    drop(prom);
    server.stop().await;
}
