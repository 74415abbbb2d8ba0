//! `histogram:` and `categories:` rules through the public contract: cumulative bucket and
//! class counters pushed with timestamps over simulated hours, windows in time, and the
//! verdicts on `/metrics`. A shifted score distribution and a changed class mix drift; the
//! same distributions at three times the traffic, and a counter reset, do not.

use crate::support::{metric_value, Files, Rng, Server};

const RULES: &str = r#"
groups:
  - name: model
    interval: 100ms
    rules:
      - name: scores
        detector: chi2
        histogram: score{job="serve"}
        reference: {first: 1h}
        current: {duration: 1h}
      - name: scores_ks
        detector: ks
        histogram: score
        reference: {first: 1h}
        current: {duration: 1h}
      - name: classes
        detector: gtest
        categories: predictions_total
        category_label: class
        reference: {first: 1h}
        current: {duration: 1h}
      - name: classes_js
        detector: jensenshannon
        threshold: 0.1
        categories: predictions_total
        category_label: class
        reference: {first: 1h}
        current: {duration: 1h}
"#;

const EDGES: [&str; 11] = [
    "0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7", "0.8", "0.9", "1", "+Inf",
];
const MIN: i64 = 60_000;

/// One model's exporter: a score histogram's cumulative buckets and per-class counters.
struct Exporter {
    model: &'static str,
    buckets: [f64; 11],
    classes: Vec<(&'static str, f64)>,
}

impl Exporter {
    fn new(model: &'static str) -> Exporter {
        Exporter {
            model,
            buckets: [0.0; 11],
            classes: vec![("legit", 0.0), ("fraud", 0.0), ("review", 0.0)],
        }
    }

    /// Observes `n` scores drawn as `u^power` (power 2: skewed low; 1: uniform), and `n`
    /// predictions with class shares `mix`.
    fn observe(&mut self, rng: &mut Rng, n: usize, power: f64, mix: [f64; 3]) {
        for _ in 0..n {
            let score = rng.uniform().powf(power);
            for (i, e) in EDGES.iter().enumerate() {
                let edge: f64 = e.parse().unwrap_or(f64::INFINITY);
                if score <= edge {
                    self.buckets[i] += 1.0;
                }
            }
            let u = rng.uniform();
            let k = if u < mix[0] {
                0
            } else if u < mix[0] + mix[1] {
                1
            } else {
                2
            };
            self.classes[k].1 += 1.0;
        }
    }

    /// The push entries of a scrape at `t`: every bucket and class counter.
    fn scrape(&self, t: i64) -> Vec<serde_json::Value> {
        let mut out = Vec::new();
        for (e, v) in EDGES.iter().zip(self.buckets) {
            out.push(serde_json::json!({"metric": "score_bucket",
                "labels": {"model": self.model, "job": "serve", "le": e},
                "values": [v], "timestamps": [t]}));
        }
        for (c, v) in &self.classes {
            out.push(serde_json::json!({"metric": "predictions_total",
                "labels": {"model": self.model, "class": c},
                "values": [v], "timestamps": [t]}));
        }
        out
    }
}

fn status(text: &str, rule: &str, model: &str) -> Option<f64> {
    metric_value(
        text,
        "driftgauge_drift_status",
        &[("rule", rule), ("model", model)],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shifted_scores_and_class_mixes_drift_and_more_traffic_does_not() {
    let server = Server::start(Files::new("").rule_file("r.yml", RULES)).await;
    let mut rng = Rng::new(7);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    let t0 = now - 3 * 60 * MIN;
    let base_mix = [0.9, 0.05, 0.05];
    // a: scores shift and the mix changes; b: nothing changes; c: three times the traffic;
    // d: the exporter restarts (counters back to 0) in the current window.
    let mut exporters: Vec<Exporter> = ["a", "b", "c", "d"]
        .into_iter()
        .map(Exporter::new)
        .collect();
    let mut batch = Vec::new();
    // The reference hour, a scrape a minute at 100 observations.
    for minute in 0..=60 {
        for e in exporters.iter_mut() {
            if minute > 0 {
                e.observe(&mut rng, 100, 2.0, base_mix);
            }
            batch.extend(e.scrape(t0 + minute * MIN));
        }
    }
    // The last 50 minutes: the current window.
    for minute in 0..50 {
        let t = now - 50 * MIN + minute * MIN;
        for e in exporters.iter_mut() {
            match e.model {
                "a" => e.observe(&mut rng, 100, 1.0, [0.6, 0.3, 0.1]),
                "c" => e.observe(&mut rng, 300, 2.0, base_mix),
                "d" if minute == 20 => {
                    e.buckets = [0.0; 11];
                    e.classes.iter_mut().for_each(|c| c.1 = 0.0);
                }
                _ => e.observe(&mut rng, 100, 2.0, base_mix),
            }
            batch.extend(e.scrape(t));
        }
    }
    let (code, v) = server
        .post_json("/api/v1/samples", serde_json::json!({ "samples": batch }))
        .await;
    assert_eq!(code, 200, "{v}");
    // Every rule has evaluated the whole batch on every model (an evaluation may have run
    // while the batch was being taken).
    for rule in ["scores", "scores_ks", "classes", "classes_js"] {
        for (model, n) in [("a", 5000.0), ("b", 5000.0), ("c", 15000.0), ("d", 4900.0)] {
            server
                .wait_metric(
                    "driftgauge_window_samples",
                    &[("rule", rule), ("model", model), ("window", "current")],
                    |v| v == n,
                )
                .await;
        }
    }
    let text = server.metrics().await;
    for rule in ["scores", "scores_ks", "classes", "classes_js"] {
        assert_eq!(status(&text, rule, "a"), Some(2.0), "{rule} a\n{text}");
        for model in ["b", "c", "d"] {
            assert_eq!(
                status(&text, rule, model),
                Some(0.0),
                "{rule} {model}\n{text}"
            );
        }
    }
    // The windows hold counts: 5,900 reference observations (the scrape at the end of the
    // first hour is past it), 5,000 current (c: 15,000; d
    // restarted: the reset counts its new values, so 5,000 less the one scrape lost to it).
    let held = |rule: &str, model: &str, window: &str| {
        metric_value(
            &text,
            "driftgauge_window_samples",
            &[("rule", rule), ("model", model), ("window", window)],
        )
    };
    assert_eq!(held("scores", "a", "reference"), Some(5900.0));
    assert_eq!(held("scores", "b", "current"), Some(5000.0));
    assert_eq!(held("scores", "c", "current"), Some(15000.0));
    assert_eq!(held("classes", "d", "current"), Some(4900.0));
    // The status page draws the buckets and categories of both windows side by side.
    let (code, page) = server.get("/").await;
    assert_eq!(code, 200);
    assert!(
        page.contains("buckets of {job=&quot;serve&quot;, model=&quot;a&quot;}"),
        "{page}"
    );
    assert!(
        page.contains("categories of {model=&quot;a&quot;}"),
        "{page}"
    );
    assert!(page.contains("≤0.1") && page.contains("legit"), "{page}");
    // No `le` or `class` label on the gauges: one series per model.
    assert!(!text.contains("le=\"0.1\",rule=\"scores\""), "{text}");
    server.stop().await;
}
