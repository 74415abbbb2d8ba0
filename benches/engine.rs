//! Evaluation-cycle benchmark (`cargo bench --bench engine`): one rule group over many series
//! with a frozen reference and a sliding current window, the way `serve` runs it.
//!
//! Prints, per scenario, the median time of `Engine::evaluate_group` (what
//! `driftgauge_rule_group_last_duration_seconds` reports) and of ingesting the new samples.
//!
//! Then the `/metrics` render (`output::metrics::render`, what the HTTP handler calls) with
//! many evaluated rule series: every series has its statistic, p-value, status and two
//! window gauges, so 100,000 series make 500,000 sample lines. `-- --render-only` skips the
//! evaluation table; `-- --series=N` and `-- --runs=N` change the render table's series (100,000)
//! and timed renders per format (11).

use std::sync::Arc;
use std::time::{Duration, Instant};

use driftgauge::config::model::{Config, Labels, RuleSet};
use driftgauge::config::{parse_rule_file, RuleContext};
use driftgauge::engine::Engine;
use driftgauge::formats::exposition::Format;
use driftgauge::labels::SeriesSamples;
use driftgauge::output::metrics;
use driftgauge::output::webhook::WebhookSender;
use driftgauge::telemetry::Telemetry;

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
    config.limits.max_held_values = usize::MAX;
    let engine = Engine::new(config, RuleSet { groups }, telemetry, Arc::new(sender));
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

/// `/metrics` with `series` evaluated rule series: one KS rule (`first: 20`, `last: 20`), each
/// series fed 40 values and evaluated once, so every per-series gauge exists.
fn render_scenario(series: usize, runs: usize) {
    let rules = "groups:\n  - name: fraud-model\n    interval: 1h\n    rules:\n      - name: amount_drift\n        detector: ks\n        series: feature_value\n        reference: {first: 20}\n        current: {last: 20}\n        min_samples: 20\n";
    let groups = parse_rule_file(
        rules,
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
    config.limits.max_series = series.max(1);
    config.limits.max_series_per_rule = series.max(1);
    let engine = Engine::new(config, RuleSet { groups }, telemetry, Arc::new(sender));
    let mut rng = Rng(11);
    let t = Instant::now();
    for chunk in (0..series).collect::<Vec<_>>().chunks(1_000) {
        let batch: Vec<SeriesSamples> = chunk
            .iter()
            .map(|&i| SeriesSamples {
                metric: "feature_value".into(),
                labels: [
                    ("model".to_string(), "fraud".to_string()),
                    ("version".to_string(), "v3".to_string()),
                    ("feature".to_string(), format!("f{i}")),
                ]
                .into_iter()
                .collect(),
                values: (0..40)
                    .map(|k| rng.normal(if k < 20 { 0.0 } else { 0.5 }))
                    .collect(),
            })
            .collect();
        engine.ingest(&batch, "bench", 0).expect("ingest");
    }
    let fill = t.elapsed();
    let generation = engine.current();
    let t = Instant::now();
    engine.evaluate_group(&generation, 0, 1);
    let eval = t.elapsed();
    for (format, name) in [
        (Format::Text, "text 0.0.4"),
        (Format::OpenMetrics, "OpenMetrics"),
    ] {
        // One warm-up render, then `runs` timed ones.
        let body = metrics::render(&engine, format);
        let lines = body.lines().filter(|l| !l.starts_with('#')).count();
        let mut times = Vec::with_capacity(runs);
        for _ in 0..runs {
            let t = Instant::now();
            let b = metrics::render(&engine, format);
            times.push(t.elapsed());
            assert_eq!(b.len(), body.len());
        }
        let mut sorted = times.clone();
        sorted.sort();
        println!(
            "| {series:>7} | {name:<11} | {lines:>7} | {:>8.2} MB | {runs:>4} | {:>8.2} ms | {:>8.2} ms | {:>8.2} ms | {:>6.0} MB/s |",
            body.len() as f64 / 1e6,
            median(times.clone()).as_secs_f64() * 1e3,
            sorted[0].as_secs_f64() * 1e3,
            sorted[sorted.len() - 1].as_secs_f64() * 1e3,
            body.len() as f64 / median(times).as_secs_f64() / 1e6,
        );
    }
    eprintln!(
        "({series} series: fill {:.2} s, one evaluate_group {:.2} s)",
        fill.as_secs_f64(),
        eval.as_secs_f64()
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let render_only = args.iter().any(|a| a == "--render-only");
    let render_series: usize = args
        .iter()
        .find_map(|a| a.strip_prefix("--series="))
        .map(|n| n.parse().expect("--series=N"))
        .unwrap_or(100_000);
    let render_runs: usize = args
        .iter()
        .find_map(|a| a.strip_prefix("--runs="))
        .map(|n| n.parse().expect("--runs=N"))
        .unwrap_or(11);
    if !render_only {
        println!("| series | reference | current | new/eval | runs | evaluate_group (median) | ingest (median) | ingest rate |");
        println!(
            "|-------:|---------:|--------:|-------:|----:|-----------:|---------:|---------:|"
        );
        scenario(1, 100_000, 10_000, 1_000, 21);
        scenario(100, 100_000, 10_000, 1_000, 7);
        // Issue 4: "on track for 1,000 features in <= 1 s" (110 M values, ~1 GB).
        scenario(1_000, 100_000, 10_000, 1_000, 5);
        println!();
    }
    println!("| rule series | format | sample lines | body | runs | render (median) | min | max | rate |");
    println!("|--------:|-------------|--------:|---------:|-----:|-----------:|-----------:|-----------:|-----------:|");
    render_scenario(render_series, render_runs);
}
