//! Sharding benchmark (`cargo bench --bench shards`): 1,000 rule groups spread over 1 to 4
//! shards (`--shard.index/--shard.total`), the same total load each time.
//!
//! For each shard count N and each shard i, an engine is built as shard i of N (it loads only
//! the groups it owns), is fed the whole load (every series of every group: what a
//! shard that reads the shared store, or receives every sample, sees; the samples of other
//! shards' groups are counted and dropped), and then times full evaluation cycles: every
//! owned group evaluated once, one after the other, on one thread (the shards run on
//! separate machines; here they run one after the other so each has the machine to itself).
//!
//! Prints the groups each shard owns (the spread must stay within ±15 % of 1000/N), the
//! median cycle time of the slowest and the fastest shard, and the speed-up against one
//! shard. `-- --groups=N`, `-- --series=N` (per group), `-- --runs=N` change the load.

use std::sync::Arc;
use std::time::{Duration, Instant};

use driftgauge::cluster::{Cluster, Shard};
use driftgauge::config::model::{Config, Labels, RuleSet};
use driftgauge::config::{parse_rule_file, RuleContext};
use driftgauge::engine::notify::Discard;
use driftgauge::engine::Engine;
use driftgauge::labels::SeriesSamples;
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

fn arg(name: &str, default: usize) -> usize {
    std::env::args()
        .find_map(|a| a.strip_prefix(&format!("--{name}=")).map(str::to_string))
        .map(|v| v.parse().expect("a number"))
        .unwrap_or(default)
}

const REFERENCE: usize = 1000;
const CURRENT: usize = 500;

fn main() {
    let groups = arg("groups", 1000);
    let series = arg("series", 2);
    let runs = arg("runs", 5);
    let mut text = String::from("groups:\n");
    for g in 0..groups {
        text.push_str(&format!(
            "  - name: model-{g}\n    interval: 30s\n    rules:\n      - name: drift\n        detector: ks\n        series: 'feature_value{{model=\"m{g}\"}}'\n        reference: {{first: {REFERENCE}}}\n        current: {{last: {CURRENT}}}\n        min_samples: 20\n"
        ));
    }
    let rules = parse_rule_file(
        &text,
        "bench.yml",
        &RuleContext {
            base_dir: std::path::Path::new("."),
            default_interval: Duration::from_secs(30),
            webhooks: None,
        },
    )
    .expect("bench rules");
    // The whole load, fed to every shard: each series' reference then a current window.
    let mut rng = Rng(11);
    let load: Vec<SeriesSamples> = (0..groups)
        .flat_map(|g| (0..series).map(move |s| (g, s)))
        .map(|(g, s)| {
            let labels: Labels = [
                ("model".to_string(), format!("m{g}")),
                ("feature".to_string(), format!("f{s}")),
            ]
            .into_iter()
            .collect();
            SeriesSamples {
                metric: "feature_value".into(),
                labels,
                values: (0..REFERENCE + CURRENT).map(|_| rng.normal(0.0)).collect(),
            }
        })
        .collect();
    // New values between two cycles, so every cycle tests a changed window.
    let fresh: Vec<Vec<SeriesSamples>> = (0..runs)
        .map(|r| {
            load.iter()
                .map(|s| SeriesSamples {
                    metric: s.metric.clone(),
                    labels: s.labels.clone(),
                    values: (0..50).map(|_| rng.normal(0.01 * r as f64)).collect(),
                })
                .collect()
        })
        .collect();
    println!(
        "{groups} groups x {series} series (KS, reference {REFERENCE}, current {CURRENT}), {runs} cycles per shard, one thread"
    );
    println!();
    println!("| shards | groups owned per shard | spread vs {groups}/N | cycle, slowest shard | cycle, fastest shard | speed-up (slowest) |");
    println!("|---:|---|---:|---:|---:|---:|");
    let mut one_shard = None;
    for total in 1..=4u32 {
        let mut owned = Vec::new();
        let mut cycles = Vec::new();
        for index in 0..total {
            let mut config = Config::default();
            config.limits.max_series = 10_000_000;
            config.limits.max_held_values = usize::MAX;
            let engine = Engine::with_cluster(
                config,
                RuleSet {
                    groups: rules.clone(),
                },
                Arc::new(Telemetry::default()),
                Arc::new(Discard),
                Cluster {
                    replica: None,
                    shard: Shard::new(index, total).expect("shard"),
                },
            );
            let generation = engine.current();
            owned.push(generation.groups.len());
            engine.ingest(&load, "bench", 0).expect("ingest");
            let mut times = Vec::new();
            for (r, batch) in fresh.iter().enumerate() {
                engine.ingest(batch, "bench", r as i64).expect("ingest");
                let t = Instant::now();
                for gi in 0..generation.groups.len() {
                    engine.evaluate_group(&generation, gi, 30_000 * (r as i64 + 1));
                }
                times.push(t.elapsed());
            }
            cycles.push(median(times));
        }
        let ideal = groups as f64 / f64::from(total);
        let spread = owned
            .iter()
            .map(|&n| (n as f64 - ideal) / ideal * 100.0)
            .fold(0.0f64, |m, d| if d.abs() > m.abs() { d } else { m });
        let slowest = *cycles.iter().max().expect("a shard");
        let fastest = *cycles.iter().min().expect("a shard");
        let base = *one_shard.get_or_insert(slowest);
        println!(
            "| {total} | {} | {spread:+.1} % | {:.1} ms | {:.1} ms | {:.2}x |",
            owned
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            slowest.as_secs_f64() * 1e3,
            fastest.as_secs_f64() * 1e3,
            base.as_secs_f64() / slowest.as_secs_f64(),
        );
        if total == 4 {
            assert!(
                owned
                    .iter()
                    .all(|&n| (n as f64 - ideal).abs() <= 0.15 * ideal),
                "a shard owns more than ±15 % off {ideal}: {owned:?}"
            );
        }
    }
}
