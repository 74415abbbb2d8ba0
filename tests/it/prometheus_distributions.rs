//! Distributions as a real Prometheus holds them: a test exporter exposes a classic score
//! histogram and a per-class prediction counter through phases (baseline; three times the
//! traffic; a score shift Beta(2,5) → Beta(3,4); a class-mix change). Prometheus scrapes it
//! and remote-writes to driftgauge, and driftgauge also reads it through a query source.
//! The baseline and the traffic change never drift; the shift drifts the histogram rules and
//! the mix change the categories rules, by both paths; the gauges are queryable in
//! Prometheus, which scrapes driftgauge too.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::fixture::{Exporter, TEXT};
use crate::prom::{sample_value, Prometheus};
use crate::support::{metric_value, Files, Rng, Server};

const EDGES: [f64; 10] = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0];

#[derive(Clone, Copy, PartialEq, Debug)]
enum Phase {
    Baseline,
    Traffic,
    Shift,
    Mix,
}

/// The exporter's state: cumulative bucket counts, sum, and class counters.
struct Model {
    buckets: [f64; 11],
    sum: f64,
    classes: [f64; 3],
}

impl Model {
    /// Observes `n` predictions: scores Beta(2,5) (or Beta(3,4) once shifted), as the 2nd
    /// (3rd) smallest of 6 uniforms; classes with shares `mix`.
    fn observe(&mut self, rng: &mut Rng, n: usize, shifted: bool, mix: [f64; 3]) {
        for _ in 0..n {
            let mut u: Vec<f64> = (0..6).map(|_| rng.uniform()).collect();
            u.sort_by(f64::total_cmp);
            let score = if shifted { u[2] } else { u[1] };
            self.sum += score;
            for (i, e) in EDGES.iter().enumerate() {
                if score <= *e {
                    self.buckets[i] += 1.0;
                }
            }
            self.buckets[10] += 1.0;
            let c = rng.uniform();
            let k = if c < mix[0] {
                0
            } else if c < mix[0] + mix[1] {
                1
            } else {
                2
            };
            self.classes[k] += 1.0;
        }
    }

    fn exposition(&self) -> String {
        let mut out = String::from(
            "# HELP model_prediction_score Fraud score.\n# TYPE model_prediction_score histogram\n",
        );
        for (i, e) in EDGES.iter().enumerate() {
            out.push_str(&format!(
                "model_prediction_score_bucket{{model=\"fraud\",le=\"{e}\"}} {}\n",
                self.buckets[i]
            ));
        }
        out.push_str(&format!(
            "model_prediction_score_bucket{{model=\"fraud\",le=\"+Inf\"}} {}\n",
            self.buckets[10]
        ));
        out.push_str(&format!(
            "model_prediction_score_sum{{model=\"fraud\"}} {}\nmodel_prediction_score_count{{model=\"fraud\"}} {}\n",
            self.sum, self.buckets[10]
        ));
        out.push_str("# TYPE model_predictions_total counter\n");
        for (c, v) in ["legit", "fraud", "review"].iter().zip(self.classes) {
            out.push_str(&format!(
                "model_predictions_total{{model=\"fraud\",class=\"{c}\"}} {v}\n"
            ));
        }
        out
    }
}

fn rules() -> String {
    let mut out = String::from("groups:\n  - name: served\n    interval: 200ms\n    rules:\n");
    for (suffix, hist, cats) in [
        (
            "rw",
            "model_prediction_score{job=\"model\"}",
            "model_predictions_total{job=\"model\"}",
        ),
        ("q", "q_score", "q_predictions_total"),
    ] {
        out.push_str(&format!(
            r#"      - name: scores_{suffix}
        detector: chi2
        histogram: '{hist}'
        reference: {{first: 8s}}
        current: {{duration: 5s}}
        min_samples: 200
      - name: scores_ks_{suffix}
        detector: ks
        histogram: '{hist}'
        reference: {{first: 8s}}
        current: {{duration: 5s}}
        min_samples: 200
      - name: classes_{suffix}
        detector: gtest
        categories: '{cats}'
        category_label: class
        reference: {{first: 8s}}
        current: {{duration: 5s}}
        min_samples: 200
"#
        ));
    }
    out
}

fn statuses(text: &str, rules: &[&str]) -> Vec<Option<f64>> {
    rules
        .iter()
        .map(|r| metric_value(text, "driftgauge_drift_status", &[("rule", r)]))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn histograms_and_class_counters_from_a_real_prometheus_drift_only_when_they_change() {
    let exporter = Exporter::start(TEXT, "").await;
    let phase = Arc::new(Mutex::new(Phase::Baseline));
    let model = Arc::new(Mutex::new(Model {
        buckets: [0.0; 11],
        sum: 0.0,
        classes: [0.0; 3],
    }));
    exporter.set_body(TEXT, &model.lock().unwrap().exposition());
    // The model server: 20 predictions every 100 ms (60 with three times the traffic).
    let ticker = {
        let (phase, model) = (Arc::clone(&phase), Arc::clone(&model));
        let reply = exporter.server.addr();
        let _ = reply;
        let exporter_handle = Arc::new(exporter);
        let e = Arc::clone(&exporter_handle);
        let task = tokio::spawn(async move {
            let mut rng = Rng::new(3);
            loop {
                let p = *phase.lock().unwrap();
                let (n, shifted, mix) = match p {
                    Phase::Baseline => (20, false, [0.9, 0.07, 0.03]),
                    Phase::Traffic => (60, false, [0.9, 0.07, 0.03]),
                    Phase::Shift => (20, true, [0.9, 0.07, 0.03]),
                    Phase::Mix => (20, true, [0.6, 0.3, 0.1]),
                };
                let body = {
                    let mut m = model.lock().unwrap();
                    m.observe(&mut rng, n, shifted, mix);
                    m.exposition()
                };
                e.set_body(TEXT, &body);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        (task, exporter_handle)
    };
    let (ticker, exporter) = ticker;

    // driftgauge first (Prometheus remote-writes to it), reading Prometheus through a query
    // source once Prometheus is up: start it with the source's URL fixed by a reserved port.
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
      - record: q_score_bucket
        expr: model_prediction_score_bucket
      - record: q_predictions_total
        expr: model_predictions_total
"#
    );
    let server = Server::start(Files::new(&cfg).rule_file("d.yml", &rules())).await;
    let prom_cfg = format!(
        r#"
global: {{scrape_interval: 1s, evaluation_interval: 1s}}
scrape_configs:
  - job_name: model
    static_configs:
      - targets: ["{target}"]
  - job_name: driftgauge
    static_configs:
      - targets: ["{dg}"]
remote_write:
  - url: http://{dg}/api/v1/write
    write_relabel_configs:
      - source_labels: [job]
        regex: model
        action: keep
    queue_config:
      batch_send_deadline: 500ms
      min_backoff: 100ms
      max_backoff: 1s
"#,
        target = exporter.target(),
        dg = server.addr
    );
    let prom = Prometheus::start_on(&prom_cfg, prom_port).await;

    let all = [
        "scores_rw",
        "scores_ks_rw",
        "classes_rw",
        "scores_q",
        "scores_ks_q",
        "classes_q",
    ];
    // Baseline: every rule decides (its 8 s reference is whole) and is stable.
    let text = crate::support::wait_until(
        "every rule decides on the baseline",
        Duration::from_secs(60),
        || {
            let server = &server;
            async move {
                let text = server.metrics().await;
                let ok = all.iter().all(|r| {
                    metric_value(&text, "driftgauge_drift_p_value", &[("rule", r)]).is_some()
                });
                ok.then_some(text)
            }
        },
    )
    .await;
    assert_eq!(statuses(&text, &all), vec![Some(0.0); 6], "{text}");

    // Three times the traffic for 8 s: never drifted.
    *phase.lock().unwrap() = Phase::Traffic;
    let until = std::time::Instant::now() + Duration::from_secs(8);
    while std::time::Instant::now() < until {
        let text = server.metrics().await;
        for (r, s) in all.iter().zip(statuses(&text, &all)) {
            assert_eq!(s, Some(0.0), "{r} drifted on a traffic change\n{text}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // The score shift: the histogram rules drift, the class rules do not.
    *phase.lock().unwrap() = Phase::Shift;
    for r in ["scores_rw", "scores_ks_rw", "scores_q", "scores_ks_q"] {
        server
            .wait_metric("driftgauge_drift_status", &[("rule", r)], |v| v == 2.0)
            .await;
    }
    let text = server.metrics().await;
    assert_eq!(
        statuses(&text, &["classes_rw", "classes_q"]),
        vec![Some(0.0); 2],
        "{text}"
    );

    // The class mix: the categories rules drift.
    *phase.lock().unwrap() = Phase::Mix;
    for r in ["classes_rw", "classes_q"] {
        server
            .wait_metric("driftgauge_drift_status", &[("rule", r)], |v| v == 2.0)
            .await;
    }

    // Every rule's gauges are in Prometheus.
    for r in all {
        let q = prom
            .wait_query(&format!("driftgauge_drift_status{{rule=\"{r}\"}} == 2"))
            .await;
        assert_eq!(q.len(), 1, "{r}: {q:?}");
        assert_eq!(sample_value(&q[0]), 2.0);
        let t = prom
            .wait_query(&format!("driftgauge_drift_threshold{{rule=\"{r}\"}}"))
            .await;
        assert!(sample_value(&t[0]) > 0.0, "{r}: {t:?}");
    }
    ticker.abort();
    server.stop().await;
}
