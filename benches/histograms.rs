//! Evaluation cycle of `histogram:` rules (`cargo bench --bench histograms`): many histogram
//! series of 20 buckets (classic `_bucket{le}` counters, as a scrape or remote write brings
//! them), a frozen `first: 1h` reference and a `duration: 30m` current window, fed a scrape a
//! minute for 90 simulated minutes, then timed scrape by scrape.
//!
//! Prints, per detector, the median and the fastest time of `Engine::evaluate_group` (what
//! `driftgauge_rule_group_last_duration_seconds` reports) over `--rounds` evaluations, each
//! after one more scrape (so every series is tested afresh, none skipped as unchanged), and
//! the median time to ingest that scrape. `-- --series=N` (10,000), `-- --rounds=N` (11),
//! `-- --only=chi2|ks|psi`.
//!
//! `-- --false-alarms`: the false-alarm rate of histogram rules instead. `--series=N` (1,000)
//! histograms of one unchanging distribution, a scrape a minute of 50 observations, evaluated
//! every minute for `--days=D` (1) simulated days by `chi2`, `gtest` and `ks` rules
//! (`first: 1h`, `duration: 30m`) at `false_alarms: --budget` (1/1d, so events are frequent
//! enough to count); prints the `drifted` events per series-day against the budget.

use std::sync::Arc;
use std::time::{Duration, Instant};

use driftgauge::config::model::{Config, Labels, RuleSet};
use driftgauge::config::{parse_rule_file, RuleContext};
use driftgauge::engine::Engine;
use driftgauge::labels::SeriesSamples;
use driftgauge::output::webhook::WebhookSender;
use driftgauge::telemetry::Telemetry;

const BUCKETS: usize = 20;
const MIN: i64 = 60_000;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// One scrape of every series: `per_scrape` new observations each, drawn as `u^2` and
/// counted into cumulative buckets of width 1/(BUCKETS-1), the last `+Inf`.
fn scrape(
    counts: &mut [[f64; BUCKETS]],
    edges: &[String],
    rng: &mut Rng,
    per_scrape: usize,
) -> Vec<SeriesSamples> {
    let mut batch = Vec::with_capacity(counts.len() * BUCKETS);
    for (i, c) in counts.iter_mut().enumerate() {
        for _ in 0..per_scrape {
            let x = rng.next() * rng.next();
            let first = ((x * (BUCKETS - 1) as f64).ceil() as usize).min(BUCKETS - 1);
            for b in c.iter_mut().skip(first) {
                *b += 1.0;
            }
        }
        for (e, v) in edges.iter().zip(c.iter()) {
            let labels: Labels = [
                ("model".to_string(), format!("m{i}")),
                ("le".to_string(), e.clone()),
            ]
            .into_iter()
            .collect();
            batch.push(SeriesSamples {
                metric: "score_bucket".into(),
                labels,
                values: vec![*v],
            });
        }
    }
    batch
}

fn scenario(detector: &str, extra: &str, series: usize, rounds: usize) {
    let rules = format!(
        "groups:\n  - name: g\n    interval: 1m\n    rules:\n      - name: r\n        detector: {detector}\n        histogram: score\n        reference: {{first: 1h}}\n        current: {{duration: 30m}}\n{extra}"
    );
    let groups = parse_rule_file(
        &rules,
        "bench.yml",
        &RuleContext {
            base_dir: std::path::Path::new("."),
            default_interval: Duration::from_secs(60),
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
    config.limits.max_series = 10_000_000;
    config.limits.max_series_per_rule = 10_000_000;
    config.limits.max_held_values = usize::MAX;
    let engine = Engine::new(config, RuleSet { groups }, telemetry, Arc::new(sender));
    let edges: Vec<String> = (1..BUCKETS)
        .map(|i| format!("{}", i as f64 / (BUCKETS - 1) as f64))
        .chain(std::iter::once("+Inf".to_string()))
        .collect();
    let mut counts = vec![[0.0; BUCKETS]; series];
    let mut rng = Rng(7);
    // 90 minutes: the reference hour, then half an hour of current window.
    let start = 1_000 * MIN;
    for minute in 0..90 {
        let batch = scrape(&mut counts, &edges, &mut rng, 50);
        engine
            .ingest(&batch, "bench", start + minute * MIN)
            .expect("ingest");
    }
    let generation = engine.current();
    engine.evaluate_group(&generation, 0, start + 90 * MIN);
    let (mut evals, mut ingests) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let now = start + (91 + round as i64) * MIN;
        let batch = scrape(&mut counts, &edges, &mut rng, 50);
        let t = Instant::now();
        engine.ingest(&batch, "bench", now).expect("ingest");
        ingests.push(t.elapsed());
        let t = Instant::now();
        engine.evaluate_group(&generation, 0, now);
        evals.push(t.elapsed());
    }
    let output = generation.groups[0].output();
    let decided = output
        .series
        .iter()
        .filter(|s| s.p_value.is_some() || s.statistic.is_some())
        .count();
    assert_eq!(decided, series, "every series decided");
    // The fastest round beside the median: this host's speed moves by a quarter within
    // minutes, and the fastest is what a change to the code moves, not the host.
    let fastest = evals.iter().min().copied().unwrap_or_default();
    println!(
        "| {detector:>13} | {series:>6} | {BUCKETS:>7} | {rounds:>4} | {:>9.2} ms | {:>9.2} ms | {:>9.2} ms |",
        median(evals).as_secs_f64() * 1e3,
        fastest.as_secs_f64() * 1e3,
        median(ingests).as_secs_f64() * 1e3,
    );
}

/// Counts `drifted` events of null histograms (see the module notes).
fn false_alarms(series: usize, days: usize, budget: &str) {
    let mut rules = String::from("groups:\n  - name: g\n    interval: 1m\n    rules:\n");
    for d in ["chi2", "gtest", "ks"] {
        rules.push_str(&format!(
            "      - name: {d}\n        detector: {d}\n        histogram: score\n        reference: {{first: 1h}}\n        current: {{duration: 30m}}\n        false_alarms: {budget}\n"
        ));
    }
    let groups = parse_rule_file(
        &rules,
        "bench.yml",
        &RuleContext {
            base_dir: std::path::Path::new("."),
            default_interval: Duration::from_secs(60),
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
    config.limits.max_series = 10_000_000;
    config.limits.max_series_per_rule = 10_000_000;
    config.limits.max_held_values = usize::MAX;
    let engine = Engine::new(config, RuleSet { groups }, telemetry, Arc::new(sender));
    let edges: Vec<String> = (1..BUCKETS)
        .map(|i| format!("{}", i as f64 / (BUCKETS - 1) as f64))
        .chain(std::iter::once("+Inf".to_string()))
        .collect();
    let mut counts = vec![[0.0; BUCKETS]; series];
    let mut rng = Rng(11);
    let start = 1_000 * MIN;
    let minutes = days as i64 * 24 * 60;
    // Events per rule: entries into drifted; tests: series tested with a verdict.
    let mut events = [0usize; 3];
    let mut previous: Vec<std::collections::HashMap<Labels, bool>> = vec![Default::default(); 3];
    let generation = engine.current();
    let t = Instant::now();
    for minute in 0..minutes {
        let batch = scrape(&mut counts, &edges, &mut rng, 50);
        let now = start + minute * MIN;
        engine.ingest(&batch, "bench", now).expect("ingest");
        engine.evaluate_group(&generation, 0, now);
        for s in &generation.groups[0].output().series {
            let drifted = s.status.as_str() == "drifted";
            let was = previous[s.rule].insert((*s.key).clone(), drifted);
            if drifted && was != Some(true) {
                events[s.rule] += 1;
            }
        }
    }
    // The first hour fills the reference: no verdicts then.
    let tested_days = series as f64 * (minutes - 60) as f64 / 1440.0;
    println!(
        "{series} null histograms x {days} day(s), a scrape a minute of 50 observations in {BUCKETS} buckets, evaluated every minute; false_alarms: {budget}; {:.0} s",
        t.elapsed().as_secs_f64()
    );
    println!("| rule | drifted events | per series-day (tested) | 95% upper bound |");
    println!("|---|---:|---:|---:|");
    for (i, d) in ["chi2", "gtest", "ks"].iter().enumerate() {
        let e = events[i] as f64;
        // Poisson: an upper 95 % bound, e + 1.645 sqrt(e) + 1 (rough, for a table).
        let upper = (e + 1.645 * e.sqrt() + 1.0) / tested_days;
        println!(
            "| {d} | {} | {:.4} | {:.4} |",
            events[i],
            e / tested_days,
            upper
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--false-alarms") {
        let arg = |name: &str, default: usize| {
            args.iter()
                .find_map(|a| a.strip_prefix(name))
                .map(|n| n.parse().expect("a number"))
                .unwrap_or(default)
        };
        let budget = args
            .iter()
            .find_map(|a| a.strip_prefix("--budget="))
            .unwrap_or("1/1d");
        false_alarms(arg("--series=", 1_000), arg("--days=", 1), budget);
        return;
    }
    let arg = |name: &str, default: usize| {
        args.iter()
            .find_map(|a| a.strip_prefix(name))
            .map(|n| n.parse().expect("a number"))
            .unwrap_or(default)
    };
    let series = arg("--series=", 10_000);
    let rounds = arg("--rounds=", 11);
    let only = args.iter().find_map(|a| a.strip_prefix("--only="));
    println!("| detector | series | buckets | runs | evaluate_group (median) | (fastest) | ingest one scrape (median) |");
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for (detector, extra) in [
        ("chi2", ""),
        ("ks", ""),
        ("psi", "        threshold: 0.2\n"),
    ] {
        if only.is_none_or(|o| o == detector) {
            scenario(detector, extra, series, rounds);
        }
    }
}
