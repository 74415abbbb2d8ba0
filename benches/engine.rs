//! Evaluation-cycle benchmark (`cargo bench --bench engine`): one rule group over many series
//! with a frozen reference and a sliding current window, the way `serve` runs it.
//!
//! Prints, per scenario, the median time of `Engine::evaluate_group` (what
//! `driftgauge_rule_group_last_duration_seconds` reports) and of ingesting the new samples.

use std::sync::Arc;
use std::time::{Duration, Instant};

use driftgauge::engine::Engine;
use driftgauge::ingest::SeriesSamples;
use driftgauge::output::telemetry::Telemetry;
use driftgauge::output::webhook::WebhookSender;
use driftgauge::rules::model::{Config, Labels, RuleSet};
use driftgauge::rules::{parse_rule_file, RuleContext};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }
    fn normal(&mut self, shift: f64) -> f64 {
        (0..12).map(|_| self.next()).sum::<f64>() - 6.0 + shift
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn scenario(series: usize, reference: usize, current: usize, per_eval: usize, rounds: usize) {
    let rules = format!(
        "groups:\n  - name: g\n    interval: 1h\n    rules:\n      - name: r\n        detector: ks\n        series: feature_value\n        reference: {{first: {reference}}}\n        current: {{last: {current}}}\n        min_samples: 20\n"
    );
    let groups = parse_rule_file(
        &rules,
        "bench.yml",
        &RuleContext {
            base_dir: std::path::Path::new("."),
            default_interval: Duration::from_secs(15),
            webhooks: None,
        },
    )
    .expect("bench rules");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let _guard = rt.enter();
    let telemetry = Arc::new(Telemetry::default());
    let sender = WebhookSender::new(Default::default(), Arc::clone(&telemetry)).expect("sender");
    let mut config = Config::default();
    config.limits.max_series = 1_000_000;
    let engine = Engine::new(config, RuleSet { groups }, telemetry, sender);
    let mut rng = Rng(7);
    let labels = |i: usize| -> Labels {
        [("feature".to_string(), format!("f{i}"))]
            .into_iter()
            .collect()
    };
    // Fill: reference then a full current window.
    for i in 0..series {
        let values: Vec<f64> = (0..reference + current).map(|_| rng.normal(0.0)).collect();
        engine
            .ingest(
                &[SeriesSamples {
                    metric: "feature_value".into(),
                    labels: labels(i),
                    values,
                }],
                "bench",
                0,
            )
            .expect("ingest");
    }
    let mut evals = Vec::new();
    let mut ingests = Vec::new();
    for round in 0..rounds {
        let batch: Vec<SeriesSamples> = (0..series)
            .map(|i| SeriesSamples {
                metric: "feature_value".into(),
                labels: labels(i),
                values: (0..per_eval).map(|_| rng.normal(0.1)).collect(),
            })
            .collect();
        let t = Instant::now();
        engine
            .ingest(&batch, "bench", round as i64)
            .expect("ingest");
        ingests.push(t.elapsed());
        let generation = engine.current();
        let t = Instant::now();
        engine.evaluate_group(&generation, 0, round as i64);
        evals.push(t.elapsed());
    }
    let values = (series * per_eval) as f64;
    let ingest = median(ingests);
    println!(
        "| {series:>6} | {reference:>8} | {current:>7} | {per_eval:>6} | {rounds:>3} | {:>10.2} ms | {:>8.3} ms | {:>7.1} M/s |",
        median(evals).as_secs_f64() * 1e3,
        ingest.as_secs_f64() * 1e3,
        values / ingest.as_secs_f64() / 1e6,
    );
}

fn main() {
    println!("| series | reference | current | new/eval | runs | evaluate_group (median) | ingest (median) | ingest rate |");
    println!("|-------:|---------:|--------:|-------:|----:|-----------:|---------:|---------:|");
    scenario(1, 100_000, 10_000, 1_000, 21);
    scenario(100, 100_000, 10_000, 1_000, 7);
}
