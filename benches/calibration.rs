//! Calibration harness (`cargo bench --bench calibration`): what a KS rule's
//! `false_alarms:` budget gives, measured over simulated streams, not argued.
//!
//! - **False alarms.** Streams without drift (i.i.d. uniform values: KS depends only on ranks,
//!   so any continuous distribution gives the same verdicts) are fed to the same pure window
//!   code the engine runs (`window::SampleWindows`), `per_eval` values per 15 s evaluation, and
//!   tested at every evaluation at the level the budget gives. A false alarm is an entry into
//!   `drifted` (`for: 0s`). Every window kind (`first`/`preceding` reference, `last`/`duration`
//!   current) at 10, 50 and 500 values per evaluation, `--days` series-days each (compressed:
//!   no clock, one evaluation after another). The table gives the events per series-day with a
//!   95 % Poisson interval, against the budget.
//! - **Detection.** A frozen `first: 10000` reference, then null values, then a change: a mean
//!   shift of 0.5 or 0.25 sd, or 1.5x the variance, at 50 values per evaluation. The delay is
//!   the number of changed values fed until the series enters `drifted`.
//! - **The same verdicts as the engine.** `--engine-check` runs the same seeded streams through
//!   `Engine::ingest`/`evaluate_group` (at a looser budget, so events are many) and requires
//!   the same number of events per series as the fast path: the fast path finds the critical
//!   distance once per window sizes (bisection on `ks::p_value_of`, the engine's own p-value)
//!   and compares the statistic with it, which is the engine's `p <= level`, only cheaper.
//!
//! Options: `--days=N` (series-days per false-alarm row, default 10000), `--trials=N`
//! (detection trials per row, default 500), `--only=false-alarms|detection|engine-check`,
//! `--budget=EVENTS/DAYS` (default 1/30), `--row=TEXT` (repeatable: only the false-alarm rows
//! whose "windows @ values/eval" is TEXT, e.g. `--row="first: 1000, last: 500 @ 10"`).
//!
//! Several current-window sizes (`current: {last: [100, 250, 1000]}`) are run as the engine
//! runs them: each size against the same reference, the level split evenly across the sizes,
//! evident when any size is (`--current=100,250,1000` in `--streams` mode).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rayon::prelude::*;

use driftgauge::config::model::{Config, Labels, RuleSet};
use driftgauge::config::{parse_rule_file, RuleContext};
use driftgauge::detect::anderson;
use driftgauge::detect::budget::{FalseAlarms, Level, Scope};
use driftgauge::detect::cvm::{self, CvmMethod};
use driftgauge::detect::ks::{self, Alternative, Method};
use driftgauge::engine::state::Status;
use driftgauge::engine::Engine;
use driftgauge::labels::SeriesSamples;
use driftgauge::output::webhook::WebhookSender;
use driftgauge::telemetry::Telemetry;
use driftgauge::window::{sort_values, CurrentWindow, ReferenceWindow, SampleWindows};

const INTERVAL: Duration = Duration::from_secs(15);
const EVALS_PER_DAY: u64 = 86_400 / 15;
const MIN_SAMPLES: usize = 20;

/// SplitMix64: a seed per series makes every stream reproducible.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ 0x1234_5678)
    }
    fn uniform(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (((z ^ (z >> 31)) >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
    /// Standard normal (Box-Muller, one of the pair).
    fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

/// The engine's decision `p * sizes <= level` (`sizes` current-window sizes share the level,
/// as `current: {last: [..]}` does), from the statistic: the critical distance is found once
/// per (n, m) by bisection on the engine's own p-value; a statistic within 1e-9 of it is
/// decided by computing its p-value, so the answer is the engine's exactly.
struct Critical {
    level: f64,
    sizes: f64,
    cache: Mutex<HashMap<(usize, usize), f64>>,
}

impl Critical {
    /// The level shared by `sizes` current-window sizes.
    fn split(level: f64, sizes: usize) -> Critical {
        Critical {
            level,
            sizes: sizes as f64,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The engine's comparison of a p-value with the level.
    fn reached(&self, p: f64) -> bool {
        p * self.sizes <= self.level
    }

    fn p(n: usize, m: usize, d: f64) -> f64 {
        ks::p_value_of(n, m, d, Alternative::TwoSided, Method::Auto)
    }

    fn distance(&self, n: usize, m: usize) -> f64 {
        if let Some(&d) = self.cache.lock().unwrap().get(&(n, m)) {
            return d;
        }
        let (mut lo, mut hi) = (0.0f64, 1.0f64);
        if !self.reached(Self::p(n, m, 1.0)) {
            hi = f64::INFINITY;
        } else {
            for _ in 0..60 {
                let mid = 0.5 * (lo + hi);
                if self.reached(Self::p(n, m, mid)) {
                    hi = mid;
                } else {
                    lo = mid;
                }
            }
        }
        self.cache.lock().unwrap().insert((n, m), hi);
        hi
    }

    fn evident(&self, n: usize, m: usize, d: f64) -> bool {
        let t = self.distance(n, m);
        if d >= t + 1e-9 {
            true
        } else if d < t - 1e-9 {
            false
        } else {
            self.reached(Self::p(n, m, d))
        }
    }
}

#[derive(Clone)]
struct Setup {
    reference: ReferenceWindow,
    current: CurrentWindow,
    /// The smaller sizes of `current: {last: [..]}`, ascending (empty: one size).
    smaller: Vec<usize>,
    per_eval: usize,
}

impl Setup {
    fn name(&self) -> String {
        let r = match &self.reference {
            ReferenceWindow::First(n) => format!("first: {n}"),
            ReferenceWindow::Preceding(n) => format!("preceding: {n}"),
            ReferenceWindow::File { values, .. } => format!("file ({})", values.len()),
            ReferenceWindow::Range { .. } => "range".to_string(),
            ReferenceWindow::Offset { .. } => "offset".to_string(),
        };
        let c = match &self.current {
            CurrentWindow::Last(n) if !self.smaller.is_empty() => {
                let all: Vec<String> = self
                    .smaller
                    .iter()
                    .chain([n])
                    .map(|m| m.to_string())
                    .collect();
                format!("last: [{}]", all.join(", "))
            }
            CurrentWindow::Last(n) => format!("last: {n}"),
            CurrentWindow::Duration(d) => format!("duration: {}m", d.as_secs() / 60),
        };
        format!("{r}, {c}")
    }
}

/// A raw-value rule's test, as the engine runs it (`detector:`).
#[derive(Clone, Copy, PartialEq)]
enum Test {
    Ks,
    Cvm,
    Anderson,
}

impl Test {
    fn name(self) -> &'static str {
        match self {
            Test::Ks => "ks",
            Test::Cvm => "cvm",
            Test::Anderson => "anderson",
        }
    }

    /// The p-value the engine compares with the level (both samples sorted).
    fn p_value(self, reference: &[f64], current: &[f64]) -> f64 {
        match self {
            Test::Ks => {
                ks::ks_2samp_sorted(reference, current, Alternative::TwoSided, Method::Auto)
                    .map_or(f64::NAN, |r| r.p_value)
            }
            Test::Cvm => cvm::cramervonmises_2samp_sorted(reference, current, CvmMethod::Auto)
                .map_or(f64::NAN, |r| r.p_value),
            Test::Anderson => anderson::anderson_2samp_sorted(reference, current)
                .map_or(f64::NAN, |r| r.p_value_below_floor()),
        }
    }
}

/// One evaluation's verdict: `None` below `min_samples`.
fn test_with(which: Test, w: &mut SampleWindows, now_ms: i64, critical: &Critical) -> Option<bool> {
    if which == Test::Ks {
        return test_d(w, now_ms, critical).map(|t| t.3);
    }
    let view = w.view(now_ms);
    let (n, m) = (view.reference.len(), view.current.len());
    if n < MIN_SAMPLES || m < MIN_SAMPLES {
        return None;
    }
    let mut reference = view.reference.to_vec();
    if !view.reference_sorted {
        sort_values(&mut reference);
    }
    Some(critical.reached(which.p_value(&reference, &view.current)))
}

/// One evaluation's verdict with several current-window sizes, as the engine gives it: the
/// window's own (the largest) and the newest `smaller` values, each against the same
/// reference, `critical` shared by them all; evident when any size is. A size below
/// `min_samples` is not tested; `None` when the largest is not.
fn test_sizes(
    which: Test,
    w: &mut SampleWindows,
    smaller: &[usize],
    now_ms: i64,
    critical: &Critical,
) -> Option<bool> {
    if smaller.is_empty() {
        return test_with(which, w, now_ms, critical);
    }
    let view = w.view(now_ms);
    let n = view.reference.len();
    if n < MIN_SAMPLES || view.current.len() < MIN_SAMPLES {
        return None;
    }
    let sorted;
    let reference: &[f64] = if view.reference_sorted {
        &view.reference
    } else {
        let mut r = view.reference.to_vec();
        sort_values(&mut r);
        sorted = r;
        &sorted
    };
    let evident = |current: &[f64]| match which {
        Test::Ks => critical.evident(
            n,
            current.len(),
            ks::statistic_sorted(reference, current, Alternative::TwoSided),
        ),
        _ => critical.reached(which.p_value(reference, current)),
    };
    if evident(&view.current) {
        return Some(true);
    }
    for &k in smaller.iter().rev() {
        let mut values = w.newest(k, now_ms);
        if values.len() < MIN_SAMPLES {
            continue;
        }
        sort_values(&mut values);
        if evident(&values) {
            return Some(true);
        }
    }
    Some(false)
}

/// False `drifted` entries of one null series over `evals` evaluations.
///
/// Evaluations that cannot reach the critical distance are not computed: replacing `k` of
/// the `m` current values moves an ECDF by at most `k / m` anywhere, so D moves by at most
/// `k / m` (plus `k / n` when a `preceding` reference slides too) per evaluation. While the
/// window sizes stay the same and the last D plus that much per evaluation since is still
/// below the critical distance, the verdict is `stable` without a walk. `--engine-check`
/// compares the counts with the engine's.
fn null_series(setup: &Setup, seed: u64, evals: u64, critical: &Critical) -> u64 {
    let mut rng = Rng::new(seed);
    let mut w = SampleWindows::new(&setup.reference, &setup.current, 1_000_000);
    let mut values = vec![0.0; setup.per_eval];
    let (mut drifted, mut events) = (false, 0);
    let preceding = matches!(setup.reference, ReferenceWindow::Preceding(_));
    // (n, m, D) at the last computed test, and evaluations since.
    let mut last: Option<(usize, usize, f64)> = None;
    let mut since = 0u64;
    for e in 0..evals {
        let now_ms = (e * INTERVAL.as_millis() as u64) as i64;
        for v in &mut values {
            *v = rng.uniform();
        }
        w.extend(&values, now_ms);
        since += 1;
        if !setup.smaller.is_empty() {
            // Several sizes: every evaluation is tested (a small window moves fast).
            match test_sizes(Test::Ks, &mut w, &setup.smaller, now_ms, critical) {
                Some(true) if !drifted => {
                    events += 1;
                    drifted = true;
                }
                Some(now) => drifted = now,
                None => {}
            }
            continue;
        }
        if let (Some((n, m, d)), false) = (last, drifted) {
            if w.counts(now_ms) == (n, m) {
                let k = setup.per_eval as f64;
                let step = k / m as f64 + if preceding { k / n as f64 } else { 0.0 };
                if d + since as f64 * step < critical.distance(n, m) - 1e-9 {
                    continue;
                }
            }
        }
        let verdict = test_d(&mut w, now_ms, critical);
        if let Some((n, m, d, _)) = verdict {
            last = Some((n, m, d));
            since = 0;
        }
        match verdict.map(|v| v.3) {
            Some(true) if !drifted => {
                events += 1;
                drifted = true;
            }
            Some(now) => drifted = now,
            None => {}
        }
    }
    events
}

/// A KS test of the windows as they stand: `(n, m, D, evidence)`, `None` below
/// `min_samples`.
fn test_d(
    w: &mut SampleWindows,
    now_ms: i64,
    critical: &Critical,
) -> Option<(usize, usize, f64, bool)> {
    let view = w.view(now_ms);
    let (n, m) = (view.reference.len(), view.current.len());
    if n < MIN_SAMPLES || m < MIN_SAMPLES {
        return None;
    }
    let sorted;
    let reference: &[f64] = if view.reference_sorted {
        &view.reference
    } else {
        let mut r = view.reference.to_vec();
        sort_values(&mut r);
        sorted = r;
        &sorted
    };
    let d = ks::statistic_sorted(reference, &view.current, Alternative::TwoSided);
    Some((n, m, d, critical.evident(n, m, d)))
}

fn level_of(budget: FalseAlarms) -> f64 {
    Level::Budget {
        false_alarms: budget,
        scope: Scope::Series,
    }
    .per_test(INTERVAL, 1)
}

/// Exact 95 % Poisson interval of a count (Garwood), by bisection on the Poisson CDF.
fn poisson_interval(k: u64) -> (f64, f64) {
    fn cdf(k: u64, mu: f64) -> f64 {
        // P(X <= k) summed in log space from the mode outwards is overkill here: k < 10^5.
        let mut term = (-mu).exp();
        let mut sum = term;
        for i in 1..=k {
            term *= mu / i as f64;
            sum += term;
        }
        sum
    }
    let solve = |target: f64, k: u64| {
        let (mut lo, mut hi) = (0.0f64, 10.0 + 3.0 * k as f64);
        for _ in 0..100 {
            let mid = 0.5 * (lo + hi);
            if cdf(k, mid) > target {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        0.5 * (lo + hi)
    };
    let lower = if k == 0 { 0.0 } else { solve(0.975, k - 1) };
    (lower, solve(0.025, k))
}

/// The false-alarm rows: every window kind at 10, 50 and 500 values per evaluation, then
/// several current-window sizes (`last: [100, 250, 1000]`) at 50.
fn false_alarm_setups() -> Vec<Setup> {
    let mut setups = Vec::new();
    for per_eval in [10usize, 50, 500] {
        for reference in [
            ReferenceWindow::First(1000),
            ReferenceWindow::Preceding(1000),
        ] {
            for current in [
                CurrentWindow::Last(500),
                CurrentWindow::Duration(Duration::from_secs(300)),
            ] {
                setups.push(Setup {
                    reference: reference.clone(),
                    current,
                    smaller: Vec::new(),
                    per_eval,
                });
            }
        }
    }
    for reference in [
        ReferenceWindow::First(1000),
        ReferenceWindow::Preceding(1000),
    ] {
        setups.push(Setup {
            reference,
            current: CurrentWindow::Last(1000),
            smaller: vec![100, 250],
            per_eval: 50,
        });
    }
    setups
}

/// `rows`: run only the rows whose "windows @ values/eval" (e.g. `preceding: 1000, last: 500
/// @ 50`) is one of these (all rows when empty).
fn false_alarms(days: u64, budget: FalseAlarms, rows: &[String]) {
    let level = level_of(budget);
    println!(
        "\n### False alarms: budget {budget} ({:.4}/series-day), each test at p <= {level:.3e} (split evenly across the sizes of a `last: [..]` list)\n",
        budget.per_day()
    );
    println!("| windows | values/eval | series-days | false drifted | per series-day (95 % CI) | within budget | time |");
    println!("|---|---:|---:|---:|---|---|---:|");
    // A series runs for `SERIES_DAYS` days; `days` of them make a row.
    const SERIES_DAYS: u64 = 10;
    for setup in false_alarm_setups() {
        let id = format!("{} @ {}", setup.name(), setup.per_eval);
        if !rows.is_empty() && !rows.contains(&id) {
            continue;
        }
        let critical = Critical::split(level, setup.smaller.len() + 1);
        let per_eval = setup.per_eval;
        let started = Instant::now();
        let series = days.div_ceil(SERIES_DAYS);
        let events: u64 = (0..series)
            .into_par_iter()
            .map(|s| null_series(&setup, s + 1, SERIES_DAYS * EVALS_PER_DAY, &critical))
            .sum();
        let series_days = (series * SERIES_DAYS) as f64;
        let (lo, hi) = poisson_interval(events);
        let rate = events as f64 / series_days;
        println!(
            "| {} | {per_eval} | {} | {events} | {rate:.4} ({:.4}–{:.4}) | {} | {:.0} s |",
            setup.name(),
            series * SERIES_DAYS,
            lo / series_days,
            hi / series_days,
            if lo / series_days <= budget.per_day() {
                "yes"
            } else {
                "NO"
            },
            started.elapsed().as_secs_f64()
        );
    }
}

#[derive(Clone, Copy)]
enum Change {
    Shift(f64),
    Variance(f64),
}

impl Change {
    fn apply(self, z: f64) -> f64 {
        match self {
            Change::Shift(s) => z + s,
            Change::Variance(v) => z * v.sqrt(),
        }
    }
    fn name(self) -> String {
        match self {
            Change::Shift(s) => format!("mean +{s} sd"),
            Change::Variance(v) => format!("variance x{v}"),
        }
    }
}

/// Changed values fed until the series entered `drifted` (None: not within `horizon`), and
/// whether it false-alarmed before the change.
fn detection_trial(
    which: Test,
    seed: u64,
    sizes: &[usize],
    change: Change,
    horizon: usize,
    critical: &Critical,
) -> (Option<usize>, bool) {
    const REFERENCE: usize = 10_000;
    const BEFORE: usize = 2_000;
    const PER_EVAL: usize = 50;
    let mut rng = Rng::new(seed);
    let mut w = SampleWindows::new(
        &ReferenceWindow::First(REFERENCE),
        &CurrentWindow::Last(sizes[sizes.len() - 1]),
        1_000_000,
    );
    let smaller = &sizes[..sizes.len() - 1];
    let mut fed = 0usize;
    let mut early = false;
    let mut e = 0i64;
    loop {
        let changed = fed.saturating_sub(REFERENCE + BEFORE);
        if changed >= horizon {
            return (None, early);
        }
        let values: Vec<f64> = (0..PER_EVAL)
            .map(|i| {
                let z = rng.normal();
                if fed + i >= REFERENCE + BEFORE {
                    change.apply(z)
                } else {
                    z
                }
            })
            .collect();
        fed += PER_EVAL;
        e += 1;
        let now_ms = e * INTERVAL.as_millis() as i64;
        w.extend(&values, now_ms);
        if test_sizes(which, &mut w, smaller, now_ms, critical) == Some(true) {
            if fed > REFERENCE + BEFORE {
                return (Some(fed - REFERENCE - BEFORE), early);
            }
            early = true;
        }
    }
}

fn detection(trials: u64, budget: FalseAlarms) {
    let level = level_of(budget);
    println!(
        "\n### Detection: budget {budget}, reference first: 10000 (frozen), 50 values per 15 s evaluation, {trials} trials a row\n"
    );
    println!("| change | detector | current window | detected within | share detected (95 % CI) | median delay | target |");
    println!("|---|---|---|---:|---|---:|---|");
    let rows = [
        (Change::Shift(0.5), 2_000usize, 0.95),
        (Change::Shift(0.25), 5_000, 0.8),
        (Change::Variance(1.5), 2_000, 0.9),
    ];
    for (change, within, target) in rows {
        for (which, sizes) in [
            (Test::Ks, &[500usize][..]),
            (Test::Ks, &[1000]),
            (Test::Ks, &[2000]),
            (Test::Ks, &[100, 250, 1000]),
            (Test::Ks, &[100, 250, 1000, 2000]),
            (Test::Cvm, &[1000]),
            (Test::Anderson, &[1000]),
            (Test::Anderson, &[100, 250, 1000]),
        ] {
            let critical = Critical::split(level, sizes.len());
            let results: Vec<Option<usize>> = (0..trials)
                .into_par_iter()
                .map(|t| detection_trial(which, t + 1, sizes, change, within, &critical).0)
                .collect();
            let found = results.iter().filter(|r| r.is_some()).count();
            let mut delays: Vec<usize> = results.iter().flatten().copied().collect();
            delays.sort_unstable();
            let share = found as f64 / trials as f64;
            // Wilson 95 % interval.
            let z = 1.96f64;
            let n = trials as f64;
            let centre = (share + z * z / (2.0 * n)) / (1.0 + z * z / n);
            let half =
                z * (share * (1.0 - share) / n + z * z / (4.0 * n * n)).sqrt() / (1.0 + z * z / n);
            let median = if found * 2 > results.len() {
                format!("{}", delays[results.len() / 2])
            } else {
                "—".to_string()
            };
            let current = match sizes {
                [one] => one.to_string(),
                all => format!("{all:?}"),
            };
            println!(
                "| {} | {} | last: {current} | {within} | {share:.3} ({:.3}–{:.3}) | {median} | ≥ {target} {} |",
                change.name(),
                which.name(),
                centre - half,
                centre + half,
                if share >= target { "met" } else { "not met" }
            );
        }
    }
}

/// The fast path against the engine on the same streams: per-series event counts must match,
/// for every window kind.
fn engine_checks(series: u64, days: u64) {
    for reference in [
        ReferenceWindow::First(1000),
        ReferenceWindow::Preceding(1000),
    ] {
        for (current, smaller, text) in [
            (CurrentWindow::Last(500), vec![], "last: 500"),
            (
                CurrentWindow::Duration(Duration::from_secs(300)),
                vec![],
                "duration: 5m",
            ),
            (
                CurrentWindow::Last(500),
                vec![50, 100],
                "last: [50, 100, 500]",
            ),
        ] {
            for per_eval in [10, 50] {
                engine_check(
                    series,
                    days,
                    Setup {
                        reference: reference.clone(),
                        current: current.clone(),
                        smaller: smaller.clone(),
                        per_eval,
                    },
                    text,
                );
            }
        }
    }
}

fn engine_check(series: u64, days: u64, setup: Setup, current_yaml: &str) {
    let budget = FalseAlarms {
        events: 1.0,
        period: Duration::from_secs(3_600),
    };
    let critical = Critical::split(level_of(budget), setup.smaller.len() + 1);
    let evals = days * EVALS_PER_DAY;
    let fast: Vec<u64> = (0..series)
        .into_par_iter()
        .map(|s| null_series(&setup, s + 1, evals, &critical))
        .collect();

    let reference_yaml = match setup.reference {
        ReferenceWindow::First(n) => format!("first: {n}"),
        ReferenceWindow::Preceding(n) => format!("preceding: {n}"),
        _ => unreachable!("no file or time references here"),
    };
    let rules = format!("groups:\n  - name: g\n    interval: 15s\n    rules:\n      - name: r\n        detector: ks\n        series: feature_value\n        reference: {{{reference_yaml}}}\n        current: {{{current_yaml}}}\n        min_samples: 20\n        false_alarms: 1/1h\n");
    let groups = parse_rule_file(
        &rules,
        "calibration.yml",
        &RuleContext {
            base_dir: std::path::Path::new("."),
            default_interval: INTERVAL,
            webhooks: None,
        },
    )
    .expect("harness rules");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let _guard = rt.enter();
    let telemetry = Arc::new(Telemetry::default());
    let sender = WebhookSender::new(Default::default(), Arc::clone(&telemetry)).expect("sender");
    let mut config = Config::default();
    config.limits.max_held_values = usize::MAX;
    let engine = Engine::new(config, RuleSet { groups }, telemetry, Arc::new(sender));
    let label = |i: u64| -> Labels {
        [("series".to_string(), format!("{i:05}"))]
            .into_iter()
            .collect()
    };
    let mut rngs: Vec<Rng> = (0..series).map(|s| Rng::new(s + 1)).collect();
    let mut drifted = vec![false; series as usize];
    let mut events = vec![0u64; series as usize];
    for e in 0..evals {
        let now_ms = (e * INTERVAL.as_millis() as u64) as i64;
        let batch: Vec<SeriesSamples> = rngs
            .iter_mut()
            .enumerate()
            .map(|(i, rng)| SeriesSamples {
                metric: "feature_value".into(),
                labels: label(i as u64),
                values: (0..setup.per_eval).map(|_| rng.uniform()).collect(),
            })
            .collect();
        engine.ingest(&batch, "harness", now_ms).expect("ingest");
        let generation = engine.current();
        engine.evaluate_group(&generation, 0, now_ms);
        for s in &generation.groups[0].output().series {
            let i: usize = s
                .labels
                .get("series")
                .and_then(|v| v.parse().ok())
                .expect("series label");
            let now = s.status == Status::Drifted;
            if now && !drifted[i] {
                events[i] += 1;
            }
            drifted[i] = now;
        }
    }
    let total: u64 = events.iter().sum();
    println!(
        "engine check, {series} series x {days} days, {}, {} values/eval, false_alarms 1/1h: engine {total} events, fast path {} events; per series identical: {}",
        setup.name(),
        setup.per_eval,
        fast.iter().sum::<u64>(),
        events == fast
    );
    assert_eq!(
        events, fast,
        "the fast path must give the engine's verdicts"
    );
}

/// The premise of the union bound: without drift, `P(p <= a) <= a` far in the tail, for each
/// test at the window sizes rules use. `reps` independent null pairs per row.
fn tails(reps: u64) {
    println!("\n### Validity of the p-values in the tail: share of null tests with p <= a ({reps} pairs a row)\n");
    println!("| detector | n (reference) | m (current) | p <= 1e-2 | p <= 1e-3 | p <= 1e-4 | valid (share <= a + 3 sd) |");
    println!("|---|---:|---:|---:|---:|---:|---|");
    for which in [Test::Ks, Test::Cvm, Test::Anderson] {
        for (n, m) in [(1000usize, 500usize), (10_000, 1000)] {
            let ps: Vec<f64> = (0..reps)
                .into_par_iter()
                .map(|r| {
                    let mut rng = Rng::new(r + 1_000_003);
                    let mut a: Vec<f64> = (0..n).map(|_| rng.uniform()).collect();
                    let mut b: Vec<f64> = (0..m).map(|_| rng.uniform()).collect();
                    sort_values(&mut a);
                    sort_values(&mut b);
                    which.p_value(&a, &b)
                })
                .collect();
            let share = |a: f64| ps.iter().filter(|&&p| p <= a).count() as f64 / reps as f64;
            let (s2, s3, s4) = (share(1e-2), share(1e-3), share(1e-4));
            let ok = [(s2, 1e-2), (s3, 1e-3), (s4, 1e-4)]
                .iter()
                .all(|&(s, a)| s <= a + 3.0 * (a * (1.0 - a) / reps as f64).sqrt());
            println!(
                "| {} | {n} | {m} | {s2:.5} | {s3:.6} | {s4:.7} | {} |",
                which.name(),
                if ok { "yes" } else { "NO" }
            );
        }
    }
}

/// `--streams=DIR`: runs one rule over every `.npy` stream (float64, one dimension) in `DIR`,
/// in name order, and prints one line a stream: its name, then the number of values fed
/// when each entry into `drifted` happened (space-separated; none: no alarm). The rule:
/// `reference: {first: R}`, `current: {last: M}`, `K` values per evaluation, each test at
/// level `1 / E` (an expected `E` evaluations between false alarms by the union bound), the
/// detector given. For `bench/calibration_peers.py`, which runs alibi-detect and River on
/// the same streams.
fn streams(
    dir: &str,
    reference: usize,
    sizes: &[usize],
    per_eval: usize,
    evals_per_alarm: f64,
    which: Test,
) {
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .expect("--streams: a readable directory")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "npy"))
        .collect();
    paths.sort();
    let critical = Critical::split(1.0 / evals_per_alarm, sizes.len());
    let (current, smaller) = match sizes.split_last() {
        Some((&largest, smaller)) => (largest, smaller),
        None => panic!("--current: one or more sizes"),
    };
    let lines: Vec<String> = paths
        .par_iter()
        .map(|path| {
            let values = driftgauge::config::files::read_npy_file(path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let values: &[f64] = &values;
            let mut w = SampleWindows::new(
                &ReferenceWindow::First(reference),
                &CurrentWindow::Last(current),
                1_000_000,
            );
            let (mut drifted, mut alarms) = (false, Vec::new());
            for (e, chunk) in values.chunks(per_eval).enumerate() {
                let now_ms = e as i64 * INTERVAL.as_millis() as i64;
                w.extend(chunk, now_ms);
                match test_sizes(which, &mut w, smaller, now_ms, &critical) {
                    Some(true) if !drifted => {
                        alarms.push(((e * per_eval) + chunk.len()).to_string());
                        drifted = true;
                    }
                    Some(now) => drifted = now,
                    None => {}
                }
            }
            let name = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            format!("{name} {}", alarms.join(" "))
                .trim_end()
                .to_string()
        })
        .collect();
    for line in lines {
        println!("{line}");
    }
}

fn main() {
    let mut days = 10_000u64;
    let mut trials = 500u64;
    let mut only: Option<String> = None;
    let mut budget = FalseAlarms::DEFAULT;
    let mut stream_dir: Option<String> = None;
    let (mut reference, mut current, mut per_eval, mut evals_per_alarm) =
        (10_000usize, vec![1000usize], 50usize, 172_800f64);
    let mut rows: Vec<String> = Vec::new();
    let mut which = Test::Ks;
    for arg in std::env::args().skip(1) {
        if let Some(v) = arg.strip_prefix("--days=") {
            days = v.parse().expect("--days=N");
        } else if let Some(v) = arg.strip_prefix("--trials=") {
            trials = v.parse().expect("--trials=N");
        } else if let Some(v) = arg.strip_prefix("--only=") {
            only = Some(v.to_string());
        } else if let Some(v) = arg.strip_prefix("--streams=") {
            stream_dir = Some(v.to_string());
        } else if let Some(v) = arg.strip_prefix("--reference=") {
            reference = v.parse().expect("--reference=N");
        } else if let Some(v) = arg.strip_prefix("--current=") {
            current = v
                .split(',')
                .map(|m| m.trim().parse().expect("--current=N[,N..]"))
                .collect();
            current.sort_unstable();
            current.dedup();
        } else if let Some(v) = arg.strip_prefix("--row=") {
            rows.push(v.to_string());
        } else if let Some(v) = arg.strip_prefix("--per-eval=") {
            per_eval = v.parse().expect("--per-eval=N");
        } else if let Some(v) = arg.strip_prefix("--evals-per-alarm=") {
            evals_per_alarm = v.parse().expect("--evals-per-alarm=E");
        } else if let Some(v) = arg.strip_prefix("--detector=") {
            which = match v {
                "ks" => Test::Ks,
                "cvm" => Test::Cvm,
                "anderson" => Test::Anderson,
                other => panic!("--detector: unknown {other:?} (ks, cvm or anderson)"),
            };
        } else if let Some(v) = arg.strip_prefix("--budget=") {
            let (events, period_days) = v.split_once('/').expect("--budget=EVENTS/DAYS");
            budget = FalseAlarms {
                events: events.parse().expect("events"),
                period: Duration::from_secs_f64(
                    period_days.parse::<f64>().expect("days") * 86_400.0,
                ),
            };
        }
    }
    if let Some(dir) = stream_dir {
        streams(&dir, reference, &current, per_eval, evals_per_alarm, which);
        return;
    }
    let run = |what: &str| only.as_deref().is_none_or(|o| o == what);
    if run("tails") {
        tails(trials * 200);
    }
    if run("engine-check") {
        println!("\n### Engine check: the fast path's verdicts are the engine's\n");
        engine_checks(20, 1);
    }
    if run("detection") {
        detection(trials, budget);
    }
    if run("false-alarms") {
        false_alarms(days, budget, &rows);
    }
}
