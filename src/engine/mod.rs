//! Rule engine: routes samples to rule windows (it is the sources' [`Sink`]), evaluates
//! groups, runs the state machine and hands transitions to a [`Notifier`], one batch per
//! group evaluation. It publishes every applied config on a `watch` for the sources and the
//! scheduler.
//!
//! Locking: `registry` (series → routes) is taken by ingestion only; each rule's series map has
//! its own mutex, held to push samples or to share one series' windows out, never while a
//! detector runs.
//! A group's gauges are published as one `Arc<GroupOutput>` swap, so `/metrics` never shows
//! half an evaluation.

pub mod notify;
mod persist;
pub mod scheduler;
mod series;
pub mod state;
pub mod unittest;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use rayon::iter::{IntoParallelIterator, ParallelIterator};
use tokio::sync::watch;

use crate::cluster::Cluster;
use crate::config::model::{Config, DetectorSpec, Group, Rule, RuleSet, TimeReference, ValueTest};
use crate::config::selector::Selector;
use crate::config::template;
use crate::detect::budget::{self, Correction};
use crate::detect::{
    anderson, binned, control, cvm, ema, energy, evaluate, ks, wasserstein, Verdict,
};
use crate::formats::svg::quantile_points;
use crate::ingest::{IngestError, Sink};
use crate::labels::{Labels, SeriesSamples};
use crate::telemetry::Telemetry;
use crate::window::counts::CountWindows;
use crate::window::{sort_values, EmaState, ReferenceWindow, SampleWindows};
pub use notify::{Event, Notifier};
use series::SeriesMap;
use state::{Machine, Status, Transition};

/// Series labels that clash with the labels driftgauge adds become `exported_<name>`.
const RESERVED_LABELS: [&str; 3] = ["rule", "group", "window"];

/// One set of loaded rules. A reload builds a new generation; rules that did not change carry
/// their runtime (windows and state) over.
pub struct Generation {
    pub id: u64,
    pub config: Arc<Config>,
    pub groups: Vec<Arc<GroupRuntime>>,
}

pub struct GroupRuntime {
    pub group: Group,
    pub rules: Vec<Arc<RuleRuntime>>,
    output: Mutex<Arc<GroupOutput>>,
}

impl GroupRuntime {
    pub fn output(&self) -> Arc<GroupOutput> {
        lock(&self.output).clone()
    }
}

/// What one evaluation of a group produced: read by `/metrics` and `/api/v1/rules`.
#[derive(Debug, Clone, Default)]
pub struct GroupOutput {
    pub last_evaluation_ms: Option<i64>,
    pub last_duration: Duration,
    pub series: Vec<SeriesOutput>,
    /// One per rule that had series, in rule order.
    pub rules: Vec<RuleOutput>,
}

/// A rule as a whole at one evaluation.
#[derive(Debug, Clone)]
pub struct RuleOutput {
    /// Index of the rule within its group.
    pub rule: usize,
    /// Series evaluated, and how many of them are `drifted`.
    pub series: usize,
    pub drifted: usize,
    /// The rule-wide state, for a rule with `share:`.
    pub status: Option<Status>,
}

impl RuleOutput {
    /// The share of the rule's series that is drifted.
    pub fn share(&self) -> f64 {
        if self.series == 0 {
            0.0
        } else {
            self.drifted as f64 / self.series as f64
        }
    }
}

#[derive(Debug, Clone)]
pub struct SeriesOutput {
    /// Index of the rule within its group.
    pub rule: usize,
    /// `rule`, `group`, rule labels and the series' (or `by`) labels (made once a series).
    pub labels: Arc<Labels>,
    pub status: Status,
    pub since_ms: Option<i64>,
    pub statistic: Option<f64>,
    pub p_value: Option<f64>,
    /// What the p-value (or, without one, the statistic or EMA) was compared with: `alpha`,
    /// the level calibrated from `false_alarms` (after `correction`), or the bound.
    pub threshold: Option<f64>,
    pub ema: Option<f64>,
    pub reference_samples: usize,
    pub current_samples: usize,
    pub last_error: Option<String>,
    /// The window key: the series' labels, or its `by` labels (for [`RuleRuntime::quantiles`]).
    pub key: Arc<Labels>,
    /// The statuses of this series' last evaluations, this one included.
    pub history: state::History,
}

pub struct RuleRuntime {
    pub group: String,
    pub rule: Rule,
    /// Keys are shared (`Arc`), so listing a rule's series under its lock copies pointers,
    /// not label maps.
    series: Mutex<SeriesMap<SeriesKey, SeriesState>>,
    /// The series sorted by their output labels, as keys and positions in `series`, made
    /// at the `series` version it holds; made again when a series came or went since.
    /// Locked before `series`, never after it.
    order: Mutex<(u64, Order)>,
    /// Window values held by this rule's series; changed only under the `series` lock.
    held: AtomicUsize,
    /// The rule-wide state of a rule with `share:`.
    whole: Mutex<Machine>,
    /// The generation that made this runtime (a reload that added or changed the rule).
    born: u64,
}

impl RuleRuntime {
    fn new(group: &str, rule: &Rule, born: u64) -> Self {
        RuleRuntime {
            group: group.to_string(),
            rule: rule.clone(),
            born,
            series: Mutex::new(SeriesMap::default()),
            order: Mutex::new((0, Arc::from([]))),
            held: AtomicUsize::new(0),
            whole: Mutex::new(Machine::default()),
        }
    }

    /// Window values held by this rule's series.
    pub fn held_values(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    /// Records a change of what one series holds, from `before` to `after` values.
    fn account(&self, before: usize, after: usize) {
        if after >= before {
            self.held.fetch_add(after - before, Ordering::Relaxed);
        } else {
            self.held.fetch_sub(before - after, Ordering::Relaxed);
        }
    }

    pub fn series_count(&self) -> usize {
        lock(&self.series).len()
    }

    /// The series in the order of their output labels (see `order`), with the version of
    /// `series` that order is of. Each series' output labels are made here, once. The sort
    /// runs without the `series` lock.
    fn sorted(&self) -> (u64, Order) {
        let mut order = lock(&self.order);
        let mut series = lock(&self.series);
        let version = series.version();
        if order.0 == version {
            return (version, Arc::clone(&order.1));
        }
        let mut labelled: Vec<(Arc<Labels>, SeriesKey, usize)> = (0..series.len())
            .filter_map(|i| {
                let (key, state) = series.at_mut(i)?;
                let labels = state
                    .labels
                    .get_or_insert_with(|| Arc::new(output_labels(&self.rule, &self.group, key)));
                Some((Arc::clone(labels), Arc::clone(key), i))
            })
            .collect();
        drop(series);
        labelled.sort_by(|a, b| a.0.cmp(&b.0));
        let sorted: Order = labelled.into_iter().map(|(_, k, i)| (k, i)).collect();
        *order = (version, Arc::clone(&sorted));
        (version, sorted)
    }

    /// The reference and current windows of the series `key` at `now_ms`, each summarised by
    /// `points` quantile points (ascending values at evenly spaced probabilities), for a plot;
    /// `None` for an unknown series or an EMA rule. The windows are shared out under the
    /// rule's lock as an evaluation shares them; the sorting and picking run without it.
    pub fn quantiles(
        &self,
        key: &Labels,
        now_ms: i64,
        points: usize,
    ) -> Option<(Vec<f64>, Vec<f64>)> {
        let view = {
            let mut series = lock(&self.series);
            let s = series.get_mut(key)?;
            let SeriesWindow::Ks(w) = &mut s.window else {
                return None;
            };
            let before = w.held();
            let view = w.view(now_ms);
            let after = w.held();
            drop(series);
            self.account(before, after);
            view
        };
        let reference = if view.reference_sorted {
            quantile_points(&view.reference, points)
        } else {
            let mut r = view.reference.to_vec();
            sort_values(&mut r);
            quantile_points(&r, points)
        };
        Some((reference, quantile_points(&view.current, points)))
    }
}

impl RuleRuntime {
    /// The two count windows of the series `key` of a `histogram:` or `categories:` rule at
    /// `now_ms`, for a plot; `None` for an unknown series or another kind of rule.
    pub fn counts(&self, key: &Labels, now_ms: i64) -> Option<crate::window::counts::CountView> {
        let mut series = lock(&self.series);
        let s = series.get_mut(key)?;
        let SeriesWindow::Counts(w) = &mut s.window else {
            return None;
        };
        let before = w.held();
        let view = w.view(now_ms);
        let after = w.held();
        drop(series);
        self.account(before, after);
        Some(view)
    }
}

#[derive(Debug, Clone)]
struct SeriesState {
    window: SeriesWindow,
    machine: Machine,
    last_fed_ms: i64,
    /// webhook name → when it was last called for this rule+series (for `cooldown`).
    last_sent_ms: BTreeMap<String, i64>,
    /// Changed since the last flush to the store.
    dirty: bool,
    /// The frozen `first: N` reference is in the store's `references` table (written once).
    reference_stored: bool,
    /// The newest sample time this window took (a pushed timestamp, else the arrival time):
    /// samples must come in time order.
    newest_ms: i64,
    /// The window's `received()` count at its last test, and that test's outcome: a window
    /// that took in nothing since is not tested again (the outcome stands).
    tested: Option<(u64, Outcome)>,
    /// The labels of its gauges, made at its first evaluation (see `RuleRuntime::sorted`).
    labels: Option<Arc<Labels>>,
    /// Its statuses at the last evaluations (the status page's strip).
    history: state::History,
}

#[derive(Debug, Clone)]
enum SeriesWindow {
    Ks(SampleWindows),
    Ema(EmaState),
    Counts(CountWindows),
}

impl SeriesWindow {
    /// Whether preparing a job at `now_ms` may change [`held`](Self::held).
    fn ages_at(&self, now_ms: i64) -> bool {
        match self {
            SeriesWindow::Ks(_) => true,
            SeriesWindow::Ema(_) => false,
            SeriesWindow::Counts(w) => w.ages_at(now_ms),
        }
    }

    /// Window values held (none for an EMA; count cells for a count window).
    fn held(&self) -> usize {
        match self {
            SeriesWindow::Ks(w) => w.held(),
            SeriesWindow::Ema(_) => 0,
            SeriesWindow::Counts(w) => w.held(),
        }
    }
}

/// A rule a series feeds, and the window key it feeds there.
type Route = (Arc<RuleRuntime>, SeriesKey);

/// A window key: the series' labels, or its `by` labels.
type SeriesKey = Arc<Labels>;

/// A rule's series in the order of their output labels: keys and positions in its map.
type Order = Arc<[(SeriesKey, usize)]>;

struct SeriesEntry {
    last_seen_ms: i64,
    generation: u64,
    routes: Vec<Route>,
}

#[derive(Default)]
struct Registry {
    series: HashMap<(String, Labels), SeriesEntry>,
}

/// A registry key, owned or borrowed from a batch: the registry is looked up with the batch's
/// metric name and labels as they are, not with a copy of them (a label map's copy is a tree
/// of allocations; two a sample were a tenth of an ingest).
trait SeriesName {
    fn name(&self) -> (&str, &Labels);
}

impl SeriesName for (String, Labels) {
    fn name(&self) -> (&str, &Labels) {
        (&self.0, &self.1)
    }
}

impl SeriesName for (&str, &Labels) {
    fn name(&self) -> (&str, &Labels) {
        (self.0, self.1)
    }
}

impl<'a> std::borrow::Borrow<dyn SeriesName + 'a> for (String, Labels) {
    fn borrow(&self) -> &(dyn SeriesName + 'a) {
        self
    }
}

// Hashes as `(String, Labels)` does: a `str` hashes as the `String` holding it.
impl std::hash::Hash for dyn SeriesName + '_ {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name().hash(state);
    }
}

impl PartialEq for dyn SeriesName + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.name() == other.name()
    }
}

impl Eq for dyn SeriesName + '_ {}

pub struct Engine {
    current: RwLock<Arc<Generation>>,
    registry: Mutex<Registry>,
    /// Store keys of series that left (idle, or their rule was removed or changed), to be
    /// deleted at the next flush.
    removed: Mutex<Vec<Vec<u8>>>,
    next_id: AtomicU64,
    pub telemetry: Arc<Telemetry>,
    /// The remote write HA tracker: which replica of each HA pair is taken.
    pub ha: crate::ingest::ha::HaTracker,
    notifier: Arc<dyn Notifier>,
    /// Every applied config, for the sources and the scheduler to follow reloads.
    config_tx: watch::Sender<Arc<Config>>,
    /// This process's replica name and shard: only the groups the shard owns are loaded.
    cluster: Cluster,
}

/// Poisoning only means another thread panicked mid-update; the data is still usable.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// [`lock`] for a lock that others hold about a microsecond at a time, as evaluation
/// workers hold a rule's series lock to take one series' job: tries for up to `SPIN` before
/// it sleeps. A sleeping waiter is woken well after the lock is free (tens of microseconds
/// on the 2-core VMs here), and two workers taking jobs with `lock` were no faster than
/// one: `cargo bench --bench histograms -- --only=ks`, jobs 22 ms a cycle with two
/// workers, 21 with one; with this 50 µs spin, 13-23 over 21 rounds (median about 17.5;
/// spinning without a bound, about 14). After `SPIN` it sleeps like `lock`, so a long
/// holder (an ingest of a large batch) costs a waiter no more than that in CPU.
fn lock_spinning<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    const SPIN: Duration = Duration::from_micros(50);
    let mut started = None;
    loop {
        for _ in 0..64 {
            match m.try_lock() {
                Ok(guard) => return guard,
                Err(std::sync::TryLockError::Poisoned(e)) => return e.into_inner(),
                Err(std::sync::TryLockError::WouldBlock) => std::hint::spin_loop(),
            }
        }
        if started.get_or_insert_with(Instant::now).elapsed() >= SPIN {
            break;
        }
    }
    lock(m)
}

impl Engine {
    pub fn new(
        config: Config,
        rules: RuleSet,
        telemetry: Arc<Telemetry>,
        notifier: Arc<dyn Notifier>,
    ) -> Self {
        Engine::with_cluster(config, rules, telemetry, notifier, Cluster::default())
    }

    /// An engine that is one replica or shard of a cluster: it loads only the groups its
    /// shard owns (the others' samples are unselected here: counted and dropped), and stamps
    /// its replica name on every event.
    pub fn with_cluster(
        config: Config,
        rules: RuleSet,
        telemetry: Arc<Telemetry>,
        notifier: Arc<dyn Notifier>,
        cluster: Cluster,
    ) -> Self {
        let engine = Engine {
            current: RwLock::new(Arc::new(Generation {
                id: 0,
                config: Arc::new(Config::default()),
                groups: vec![],
            })),
            registry: Mutex::new(Registry::default()),
            removed: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(1),
            telemetry,
            ha: crate::ingest::ha::HaTracker::default(),
            notifier,
            config_tx: watch::channel(Arc::new(Config::default())).0,
            cluster,
        };
        engine.apply(config, rules);
        engine
    }

    pub fn current(&self) -> Arc<Generation> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// What the live sources run with: this engine as their sink, its telemetry, and the
    /// config it applies.
    pub fn sources(self: &Arc<Self>) -> crate::ingest::Context {
        crate::ingest::Context {
            sink: Arc::clone(self) as Arc<dyn Sink>,
            telemetry: Arc::clone(&self.telemetry),
            config: self.subscribe(),
        }
    }

    /// The config as applied, now and after every reload: what sources and the scheduler
    /// follow.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Config>> {
        self.config_tx.subscribe()
    }

    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// Installs new rules: those of the groups this shard owns. A rule whose group, name and
    /// definition are unchanged keeps its windows and state; changed rules start afresh;
    /// removed rules and their gauges leave.
    pub fn apply(&self, config: Config, mut rules: RuleSet) {
        let shard = self.cluster.shard;
        rules.groups.retain(|g| shard.owns(&g.name));
        let old = self.current();
        let mut kept: HashMap<(&str, &str), &Arc<RuleRuntime>> = HashMap::new();
        for g in &old.groups {
            for r in &g.rules {
                kept.insert((g.group.name.as_str(), r.rule.name.as_str()), r);
            }
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut groups = Vec::with_capacity(rules.groups.len());
        for group in rules.groups {
            let rts: Vec<Arc<RuleRuntime>> = group
                .rules
                .iter()
                .map(
                    |rule| match kept.get(&(group.name.as_str(), rule.name.as_str())) {
                        Some(rt) if rt.rule == *rule => Arc::clone(rt),
                        _ => Arc::new(RuleRuntime::new(&group.name, rule, id)),
                    },
                )
                .collect();
            // Carry over the last gauges of rules that were kept, so a reload does not blank them.
            let mut output = GroupOutput::default();
            if let Some(og) = old.groups.iter().find(|g| g.group.name == group.name) {
                let prev = og.output();
                output.last_evaluation_ms = prev.last_evaluation_ms;
                output.last_duration = prev.last_duration;
                for s in &prev.series {
                    let Some(old_rt) = og.rules.get(s.rule) else {
                        continue;
                    };
                    if let Some(ni) = rts.iter().position(|r| Arc::ptr_eq(r, old_rt)) {
                        output.series.push(SeriesOutput {
                            rule: ni,
                            ..s.clone()
                        });
                    }
                }
            }
            self.telemetry.rule_evaluations.touch(&group.name);
            self.telemetry.rule_evaluation_failures.touch(&group.name);
            groups.push(Arc::new(GroupRuntime {
                group,
                rules: rts,
                output: Mutex::new(Arc::new(output)),
            }));
        }
        self.notifier.configure(&config.webhooks);
        // Rules that did not carry over: their stored state goes at the next flush.
        {
            let mut removed = lock(&self.removed);
            for og in &old.groups {
                for rt in &og.rules {
                    let kept = groups
                        .iter()
                        .any(|g| g.rules.iter().any(|r| Arc::ptr_eq(r, rt)));
                    if !kept {
                        for key in lock(&rt.series).keys() {
                            removed.push(persist::series_key(&og.group.name, &rt.rule.name, key));
                        }
                    }
                }
            }
        }
        let config = Arc::new(config);
        let generation = Arc::new(Generation {
            id,
            config: Arc::clone(&config),
            groups,
        });
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = generation;
        self.config_tx.send_replace(config);
    }

    /// Applies a whole validated batch, or nothing when it would pass a limit. Returns the
    /// number of values taken into windows; values of series no rule selects are counted in
    /// `driftgauge_samples_unselected_total` and dropped, never held, and never count against
    /// the limits.
    pub fn ingest(
        &self,
        batch: &[SeriesSamples],
        source: &str,
        now_ms: i64,
    ) -> Result<usize, IngestError> {
        self.ingest_scoped(batch, &[], source, now_ms, u64::MAX, usize::MAX)
    }

    /// [`ingest`](Self::ingest) of a scrape: `batch` as the scrape gives it (counters as
    /// per-second rates) and, after it, `counters` (the same counters' cumulative values),
    /// one batch applied whole or not at all. `histogram:` and `categories:` rules take the
    /// counters (they count increases themselves) and never the rates; other rules take
    /// `batch` only.
    pub fn ingest_scrape(
        &self,
        batch: &[SeriesSamples],
        counters: &[SeriesSamples],
        source: &str,
        now_ms: i64,
    ) -> Result<usize, IngestError> {
        if counters.is_empty() {
            return self.ingest(batch, source, now_ms);
        }
        let all: Vec<SeriesSamples> = batch.iter().chain(counters).cloned().collect();
        self.ingest_scoped(&all, &[], source, now_ms, u64::MAX, batch.len())
    }

    /// [`ingest`](Self::ingest) for samples read under generation `as_of`: rules a later
    /// reload added (or changed) do not take them. A query source's instant answer that lands
    /// just after a reload must not make a new rule look fed: the rule is warmed from history
    /// instead, which holds that sample too.
    pub fn ingest_as_of(
        &self,
        batch: &[SeriesSamples],
        source: &str,
        now_ms: i64,
        as_of: u64,
    ) -> Result<usize, IngestError> {
        self.ingest_scoped(batch, &[], source, now_ms, as_of, usize::MAX)
    }

    /// [`ingest`](Self::ingest) with sample times: `times[i]`, when there and `Some`, holds one
    /// Unix-ms timestamp per value of `batch[i]` (not decreasing); other values arrive at
    /// `now_ms`. Each window (rule and series, or `by` pool) takes samples in time order: a
    /// batch with a sample older than the newest its window took is refused whole
    /// ([`IngestError::OutOfOrder`]). `duration:` windows count by these times, and EMAs step
    /// in their order.
    pub fn ingest_timed(
        &self,
        batch: &[SeriesSamples],
        times: &[Option<Vec<i64>>],
        source: &str,
        now_ms: i64,
    ) -> Result<usize, IngestError> {
        self.ingest_scoped(batch, times, source, now_ms, u64::MAX, usize::MAX)
    }

    /// `counters_from`: with a scrape's counters appended (see
    /// [`ingest_scrape`](Self::ingest_scrape)), entries before this index are the scrape's
    /// own batch, the rest cumulative counters; `usize::MAX` when there are none.
    #[allow(clippy::too_many_arguments)]
    fn ingest_scoped(
        &self,
        batch: &[SeriesSamples],
        times: &[Option<Vec<i64>>],
        source: &str,
        now_ms: i64,
        as_of: u64,
        counters_from: usize,
    ) -> Result<usize, IngestError> {
        // With a scrape's counters appended, a scraped counter (a rate) feeds only raw-value
        // rules and its cumulative copy only count rules.
        let rate_names: HashSet<(&str, &Labels)> = batch[counters_from.min(batch.len())..]
            .iter()
            .map(|s| (s.metric.as_str(), &s.labels))
            .collect();
        let takes = |rt: &RuleRuntime, index: usize| {
            let counts = matches!(rt.rule.detector, DetectorSpec::Counts(_));
            let fed = if index >= counters_from {
                counts
            } else {
                let s = &batch[index];
                !(counts && rate_names.contains(&(s.metric.as_str(), &s.labels)))
            };
            rt.born <= as_of && fed
        };
        let timed = |i: usize| times.get(i).and_then(Option::as_deref);
        let any_timed = times.iter().any(Option::is_some);
        let span = |i: usize| match timed(i) {
            Some(t) => (
                t.first().copied().unwrap_or(now_ms),
                t.last().copied().unwrap_or(now_ms),
            ),
            None => (now_ms, now_ms),
        };
        let generation = self.current();
        let limits = &generation.config.limits;
        let mut reg = lock(&self.registry);
        let refuse = |e: IngestError| {
            let values: usize = batch.iter().map(|s| s.values.len()).sum();
            self.telemetry
                .samples_rejected
                .add(e.reason().as_str(), values as f64);
            Err(e)
        };
        // Check every limit before touching anything.
        let mut new_series: HashSet<(&str, &Labels)> = HashSet::new();
        let mut routes: Vec<Option<Vec<Route>>> = Vec::with_capacity(batch.len());
        let mut new_keys: HashMap<*const RuleRuntime, (Arc<RuleRuntime>, HashSet<SeriesKey>)> =
            HashMap::new();
        // At most how many more window values the batch leaves held (trimming aside).
        let mut growth = 0usize;
        // The newest sample time of each window the batch feeds, as the batch goes.
        let mut newest: HashMap<(*const RuleRuntime, SeriesKey), i64> = HashMap::new();
        for (index, s) in batch.iter().enumerate() {
            let (first_ms, last_ms) = span(index);
            let name = (s.metric.as_str(), &s.labels);
            let entry = reg.series.get(&name as &dyn SeriesName);
            let fresh = match entry {
                Some(e) if e.generation == generation.id => None,
                _ => Some(routes_for(&generation, &s.metric, &s.labels)),
            };
            let these = fresh
                .as_ref()
                .or(entry.map(|e| &e.routes))
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            // A series no rule selects is neither held nor counted against the limits.
            if entry.is_none() && !these.is_empty() {
                new_series.insert((s.metric.as_str(), &s.labels));
            }
            for (rt, key) in these.iter().filter(|(rt, _)| takes(rt, index)) {
                let series = lock(&rt.series);
                let k = s.values.len();
                // Only timed samples can be out of order: untimed ones are stamped on arrival,
                // or at the window's newest time when that is later (a clock set back). So
                // untimed batches (every source but a timed push) need no map.
                let newest_ms = if any_timed {
                    let slot = newest
                        .entry((Arc::as_ptr(rt), key.clone()))
                        .or_insert_with(|| series.get(key).map_or(i64::MIN, |st| st.newest_ms));
                    let before = *slot;
                    *slot = before.max(last_ms);
                    before
                } else {
                    i64::MIN
                };
                if timed(index).is_some() && first_ms < newest_ms {
                    drop(series);
                    return refuse(IngestError::OutOfOrder {
                        index,
                        series: format!("{}{}", s.metric, format_labels(&s.labels)),
                        rule: format!("{}/{}", rt.group, rt.rule.name),
                        sample_ms: first_ms,
                        newest_ms,
                    });
                }
                match series.get(key) {
                    Some(state) => match &state.window {
                        SeriesWindow::Ks(w) => {
                            growth += w.held_after(k).saturating_sub(w.held());
                        }
                        // At most a cell a value (a new chunk or bin); chunks are bounded.
                        SeriesWindow::Counts(_) => growth += k,
                        SeriesWindow::Ema(_) => {}
                    },
                    None => {
                        match &rt.rule.detector {
                            DetectorSpec::Ks(spec) => {
                                let empty = SampleWindows::new(
                                    &spec.reference,
                                    &spec.current,
                                    limits.max_window_values,
                                );
                                growth += empty.held_after(k);
                            }
                            DetectorSpec::Counts(_) => growth += k + 1,
                            _ => {}
                        }
                        new_keys
                            .entry(Arc::as_ptr(rt))
                            .or_insert_with(|| (Arc::clone(rt), HashSet::new()))
                            .1
                            .insert(key.clone());
                    }
                }
            }
            routes.push(fresh);
        }
        let would_hold = reg.series.len() + new_series.len();
        if would_hold > limits.max_series {
            return refuse(IngestError::TooManySeries {
                limit: limits.max_series,
                would_hold,
            });
        }
        for (rt, keys) in new_keys.values() {
            let would_hold = lock(&rt.series).len() + keys.len();
            if would_hold > limits.max_series_per_rule {
                return refuse(IngestError::TooManySeriesForRule {
                    group: rt.group.clone(),
                    rule: rt.rule.name.clone(),
                    limit: limits.max_series_per_rule,
                    would_hold,
                });
            }
        }
        drop(new_keys);
        if growth > 0 {
            let would_hold = self.held_values(&generation).saturating_add(growth);
            if would_hold > limits.max_held_values {
                return refuse(IngestError::OverMemoryBudget {
                    limit: limits.max_held_values,
                    would_hold,
                });
            }
        }
        let mut accepted = 0;
        let mut unselected = 0;
        for (index, (s, fresh)) in batch.iter().zip(routes).enumerate() {
            let stamps = timed(index);
            let (_, last_ms) = span(index);
            let counter_copy = index >= counters_from;
            if fresh.as_ref().is_some_and(Vec::is_empty) {
                // No rule (any more) selects it: dropped, and forgotten if it was known. A
                // scraped counter's cumulative copy was counted with its rate.
                reg.series
                    .remove(&(s.metric.as_str(), &s.labels) as &dyn SeriesName);
                if !counter_copy {
                    unselected += s.values.len();
                }
                continue;
            }
            let mut taken = false;
            let name = (s.metric.as_str(), &s.labels);
            if !reg.series.contains_key(&name as &dyn SeriesName) {
                reg.series.insert(
                    (s.metric.clone(), s.labels.clone()),
                    SeriesEntry {
                        last_seen_ms: now_ms,
                        generation: u64::MAX,
                        routes: vec![],
                    },
                );
            }
            let Some(entry) = reg.series.get_mut(&name as &dyn SeriesName) else {
                continue;
            };
            entry.last_seen_ms = now_ms;
            if let Some(r) = fresh {
                entry.routes = r;
                entry.generation = generation.id;
            }
            for (rt, key) in entry.routes.iter().filter(|(rt, _)| takes(rt, index)) {
                taken = true;
                let mut series = lock(&rt.series);
                let state = series.get_or_insert_with(key, || {
                    SeriesState::new(&rt.rule, limits.max_window_values, now_ms)
                });
                state.last_fed_ms = now_ms;
                // Untimed values: on arrival, or at the newest time the window took.
                let arrival = now_ms.max(state.newest_ms);
                state.newest_ms = state.newest_ms.max(match stamps {
                    Some(_) => last_ms,
                    None => arrival,
                });
                state.dirty = true;
                match (&mut state.window, &rt.rule.detector) {
                    (SeriesWindow::Ks(w), _) => {
                        let before = w.held();
                        match stamps {
                            Some(t) => w.extend_timed(&s.values, t),
                            None => w.extend(&s.values, arrival),
                        }
                        rt.account(before, w.held());
                    }
                    (SeriesWindow::Ema(e), DetectorSpec::Ema(spec)) => match spec.bound {
                        ema::EmaBound::Control(limits) => s
                            .values
                            .iter()
                            .for_each(|&v| e.push_charted(v, spec.smoothing, limits.baseline)),
                        _ => s.values.iter().for_each(|&v| e.push(v, spec.smoothing)),
                    },
                    (SeriesWindow::Ema(e), DetectorSpec::Cusum(spec)) => {
                        s.values.iter().for_each(|&v| e.push_cusum(v, spec))
                    }
                    (SeriesWindow::Ema(_), _) => {}
                    (SeriesWindow::Counts(w), DetectorSpec::Counts(spec)) => {
                        let before = w.held();
                        // Routed only with the bin label (see `routes_for`).
                        let bin = s.labels.get(&spec.bin_label).map_or("", String::as_str);
                        for (i, &v) in s.values.iter().enumerate() {
                            let at = stamps.and_then(|t| t.get(i).copied()).unwrap_or(arrival);
                            w.observe(bin, v, at);
                        }
                        rt.account(before, w.held());
                    }
                    (SeriesWindow::Counts(_), _) => {}
                }
            }
            if taken || !counter_copy {
                accepted += s.values.len();
            }
        }
        drop(reg);
        self.telemetry.samples_received.add(source, accepted as f64);
        if unselected > 0 {
            self.telemetry
                .samples_unselected
                .add(source, unselected as f64);
        }
        Ok(accepted)
    }

    /// Forgets series no source has fed for `limits.series_idle_timeout`.
    pub fn collect_idle(&self, now_ms: i64) {
        let generation = self.current();
        let idle = generation.config.limits.series_idle_timeout.as_millis() as i64;
        lock(&self.registry)
            .series
            .retain(|_, e| now_ms - e.last_seen_ms < idle);
        let mut gone = Vec::new();
        for g in &generation.groups {
            for r in &g.rules {
                lock(&r.series).retain(|k, s| {
                    let keep = now_ms - s.last_fed_ms < idle;
                    if !keep {
                        r.account(s.window.held(), 0);
                        gone.push(persist::series_key(&g.group.name, &r.rule.name, k));
                    }
                    keep
                });
            }
        }
        lock(&self.removed).extend(gone);
    }

    /// Window values held by every rule of `generation`: what `limits.max_held_values` bounds.
    pub fn held_values(&self, generation: &Generation) -> usize {
        generation
            .groups
            .iter()
            .flat_map(|g| &g.rules)
            .map(|r| r.held_values())
            .sum()
    }

    /// Number of distinct series known to the engine.
    pub fn series_count(&self) -> usize {
        lock(&self.registry).series.len()
    }

    /// Evaluates every rule of one group of `generation` at `now_ms`, publishes the group's
    /// gauges at once and enqueues webhook deliveries. CPU-bound: run it off the async workers.
    pub fn evaluate_group(&self, generation: &Generation, gi: usize, now_ms: i64) {
        let Some(g) = generation.groups.get(gi) else {
            return;
        };
        let started = Instant::now();
        let mut outputs = Vec::new();
        let mut events: Vec<(Arc<RuleRuntime>, SeriesKey, Event)> = Vec::new();
        let mut failed = false;
        let mut rule_outputs = Vec::new();
        for (ri, rt) in g.rules.iter().enumerate() {
            // One series at a time under the rule's lock (a sync of its sorted window costs a
            // pass over it), so ingestion waits at most for one series, never for the rule:
            // each worker takes a series' job under the lock (a window sync or a sum of
            // chunks) and runs it without. `Job::of` must never use rayon itself: a worker
            // waiting in a join under the lock could steal another series' job and lock
            // again (windows sort on the calling thread). Series are reached by position,
            // checked against the key (a removal since moves them), in the order of their
            // labels, so the outputs come sorted.
            let (_, order) = rt.sorted();
            let mut results = run_jobs(order.len(), |at| {
                let (k, i) = &order[at];
                let job = {
                    let mut series = lock_spinning(&rt.series);
                    let s = state_at(&mut series, k, *i)?;
                    // What the window holds changes only if it ages now (a walk of its
                    // chunks each way otherwise, for nothing).
                    let ages = s.window.ages_at(now_ms);
                    let before = (ages || cfg!(debug_assertions)).then(|| s.window.held());
                    let job = Job::of(s, &rt.rule, now_ms);
                    if let Some(before) = before {
                        let after = s.window.held();
                        debug_assert!(ages || after == before, "held changed without ageing");
                        rt.account(before, after);
                    }
                    job
                };
                Some(job.run(&rt.rule))
            });
            decide(&rt.rule, g.group.interval, &mut results);
            let (mut series_seen, mut drifted) = (0usize, 0usize);
            for (at, mut outcome) in results {
                let (key, position) = &order[at];
                // Under the lock only the state machine steps; logging, payloads and the
                // outbox write happen without it.
                let (machine, transition, last_sent, labels, history) = {
                    let mut series = lock(&rt.series);
                    let Some(state) = state_at(&mut series, key, *position) else {
                        continue;
                    };
                    let before = state.machine.clone();
                    let transition = state.machine.step(
                        outcome.verdict,
                        now_ms,
                        rt.rule.for_,
                        rt.rule.keep_firing_for,
                    );
                    if state.machine != before {
                        state.dirty = true;
                    }
                    if let Some(at) = outcome.tested_at.take() {
                        state.tested = Some((at, outcome.clone()));
                    }
                    let last_sent = match transition {
                        Some(_) => state.last_sent_ms.clone(),
                        None => BTreeMap::new(),
                    };
                    state.history.push(state.machine.status);
                    let labels = state.labels.get_or_insert_with(|| {
                        Arc::new(output_labels(&rt.rule, &g.group.name, key))
                    });
                    (
                        state.machine.clone(),
                        transition,
                        last_sent,
                        Arc::clone(labels),
                        state.history,
                    )
                };
                if outcome.error.is_some() {
                    failed = true;
                }
                if let Some(t) = transition {
                    if let Some(event) = self.event(
                        &generation.config,
                        &g.group,
                        &rt.rule,
                        key,
                        &last_sent,
                        &outcome,
                        t,
                    ) {
                        events.push((Arc::clone(rt), key.clone(), event));
                    }
                }
                series_seen += 1;
                if machine.status == Status::Drifted {
                    drifted += 1;
                }
                outputs.push(SeriesOutput {
                    rule: ri,
                    labels,
                    status: machine.status,
                    since_ms: machine.since_ms,
                    statistic: outcome.statistic,
                    p_value: outcome.p_value,
                    threshold: outcome.threshold,
                    ema: outcome.ema,
                    reference_samples: outcome.reference_samples,
                    current_samples: outcome.current_samples,
                    last_error: outcome.error,
                    key: key.clone(),
                    history,
                });
            }
            if series_seen > 0 {
                let mut whole = RuleOutput {
                    rule: ri,
                    series: series_seen,
                    drifted,
                    status: None,
                };
                if let Some(event) = self.step_whole(&generation.config, g, rt, &mut whole, now_ms)
                {
                    events.push((Arc::clone(rt), Arc::new(Labels::new()), event));
                }
                rule_outputs.push(whole);
            }
        }
        self.notify(events);
        let elapsed = started.elapsed();
        self.telemetry.rule_evaluations.add(&g.group.name, 1.0);
        if failed {
            self.telemetry
                .rule_evaluation_failures
                .add(&g.group.name, 1.0);
        }
        // In order by construction: rule by rule, each in the order of its labels (`sorted`).
        debug_assert!(outputs.is_sorted_by(|a, b| (a.rule, &a.labels) <= (b.rule, &b.labels)));
        let output = Arc::new(GroupOutput {
            last_evaluation_ms: Some(now_ms),
            last_duration: elapsed,
            series: outputs,
            rules: rule_outputs,
        });
        // The previous output is freed after the lock is let go, and off this thread: the
        // evaluation is done, and 10,000 series take 0.7 ms to free (100,000 ~36 ms).
        let previous = std::mem::replace(&mut *lock(&g.output), output);
        rayon::spawn(move || drop(previous));
    }

    /// Logs a transition; returns its event when it calls webhooks (entering `drifted`, or
    /// leaving it for webhooks with `send_resolved`, each outside its `cooldown` as told by
    /// `last_sent_ms`, the series' webhook → last call map).
    #[allow(clippy::too_many_arguments)]
    fn event(
        &self,
        config: &Config,
        group: &Group,
        rule: &Rule,
        key: &Labels,
        last_sent_ms: &BTreeMap<String, i64>,
        outcome: &Outcome,
        t: Transition,
    ) -> Option<Event> {
        tracing::info!(
            group = %group.name,
            rule = %rule.name,
            series = %format_labels(key),
            from = t.from.as_str(),
            to = t.to.as_str(),
            statistic = outcome.statistic,
            p_value = outcome.p_value,
            current_window = outcome.size,
            ema = outcome.ema,
            "rule state changed"
        );
        let entering = t.to == Status::Drifted;
        let leaving = t.from == Status::Drifted;
        if !entering && !leaving {
            return None;
        }
        let webhooks: Vec<String> = rule
            .webhooks
            .iter()
            .filter(|name| {
                let Some(wh) = config.webhooks.get(name.as_str()) else {
                    return false;
                };
                if leaving && !entering && !wh.send_resolved {
                    return false;
                }
                match last_sent_ms.get(name.as_str()) {
                    Some(&last) if t.at_ms - last < wh.cooldown.as_millis() as i64 => {
                        tracing::info!(webhook = %name, rule = %rule.name, "webhook call skipped: within cooldown");
                        false
                    }
                    _ => true,
                }
            })
            .cloned()
            .collect();
        if webhooks.is_empty() {
            return None;
        }
        let mut labels = key.clone();
        labels.extend(rule.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
        let value = outcome.statistic.or(outcome.ema);
        let annotations: Labels = rule
            .annotations
            .iter()
            .map(|(k, tpl)| (k.clone(), template::expand(tpl, &labels, value)))
            .collect();
        Some(Event {
            group: group.name.clone(),
            rule: rule.name.clone(),
            detector: rule.detector.name(),
            labels,
            annotations,
            statistic: outcome.statistic,
            p_value: outcome.p_value,
            value: outcome.ema,
            from: t.from,
            to: t.to,
            at_ms: t.at_ms,
            webhooks,
            replica: self.cluster.replica.clone(),
        })
    }

    /// Steps the rule-wide state of a rule with `share:` (drifted while at least that share of
    /// its series is); returns the event of a transition that calls webhooks. The event has
    /// the rule's labels only and the share as its statistic.
    fn step_whole(
        &self,
        config: &Config,
        g: &GroupRuntime,
        rt: &RuleRuntime,
        whole: &mut RuleOutput,
        now_ms: i64,
    ) -> Option<Event> {
        let threshold = rt.rule.share?;
        let share = whole.share();
        let verdict = if share >= threshold {
            Verdict::Drifted
        } else {
            Verdict::Stable
        };
        let mut machine = lock(&rt.whole);
        let transition = machine.step(Some(verdict), now_ms, rt.rule.for_, rt.rule.keep_firing_for);
        whole.status = Some(machine.status);
        drop(machine);
        let outcome = Outcome {
            statistic: Some(share),
            threshold: Some(threshold),
            ..Outcome::default()
        };
        self.event(
            config,
            &g.group,
            &rt.rule,
            &Labels::new(),
            &BTreeMap::new(),
            &outcome,
            transition?,
        )
    }

    /// Hands one evaluation's events to the notifier at once, then starts the cooldown of
    /// every delivery it accepted. No lock is held while the notifier runs.
    fn notify(&self, events: Vec<(Arc<RuleRuntime>, SeriesKey, Event)>) {
        if events.is_empty() {
            return;
        }
        let batch: Vec<Event> = events.iter().map(|(_, _, e)| e.clone()).collect();
        let accepted = self.notifier.notify(&batch);
        for ((rt, key, event), accepted) in events.into_iter().zip(accepted) {
            let sent: Vec<&String> = event
                .webhooks
                .iter()
                .zip(accepted)
                .filter_map(|(name, ok)| ok.then_some(name))
                .collect();
            if sent.is_empty() {
                continue;
            }
            if let Some(state) = lock(&rt.series).get_mut(&key) {
                for name in sent {
                    state.last_sent_ms.insert(name.clone(), event.at_ms);
                }
                state.dirty = true;
            }
        }
    }
}

impl Sink for Engine {
    fn ingest(
        &self,
        batch: &[SeriesSamples],
        source: &str,
        now_ms: i64,
    ) -> Result<usize, IngestError> {
        Engine::ingest(self, batch, source, now_ms)
    }

    fn ingest_scrape(
        &self,
        batch: &[SeriesSamples],
        counters: &[SeriesSamples],
        source: &str,
        now_ms: i64,
    ) -> Result<usize, IngestError> {
        Engine::ingest_scrape(self, batch, counters, source, now_ms)
    }

    fn wants_warm_up(&self, record: &str) -> bool {
        wants_warm_up(&self.current(), record)
    }

    fn reference_span(&self, record: &str) -> Option<(i64, i64)> {
        let generation = self.current();
        generation
            .groups
            .iter()
            .flat_map(|g| &g.rules)
            .filter(|rt| can_take(&rt.rule.selector, record))
            .filter_map(|rt| match &rt.rule.detector {
                DetectorSpec::Counts(spec) => match spec.reference {
                    TimeReference::Range { start_ms, end_ms } => Some((start_ms, end_ms)),
                    _ => None,
                },
                DetectorSpec::Ks(spec) => match spec.reference {
                    ReferenceWindow::Range { start_ms, end_ms } => Some((start_ms, end_ms)),
                    _ => None,
                },
                _ => None,
            })
            .reduce(|(a0, a1), (b0, b1)| (a0.min(b0), a1.max(b1)))
    }

    fn generation(&self) -> u64 {
        self.current().id
    }

    fn ingest_as_of(
        &self,
        batch: &[SeriesSamples],
        source: &str,
        now_ms: i64,
        as_of: u64,
    ) -> Result<usize, IngestError> {
        Engine::ingest_as_of(self, batch, source, now_ms, as_of)
    }
}

/// Should `record` be warmed? When at least one rule can take series of that name and every
/// such rule is still empty.
fn wants_warm_up(generation: &Generation, record: &str) -> bool {
    let mut any = false;
    for g in &generation.groups {
        for rt in &g.rules {
            if can_take(&rt.rule.selector, record) {
                if rt.series_count() > 0 {
                    return false;
                }
                any = true;
            }
        }
    }
    any
}

/// Can `selector` match some series named `record` (whatever its labels)?
fn can_take(selector: &Selector, record: &str) -> bool {
    // A record whose answers are native histograms arrives as `<record>_bucket`, `_count`
    // and `_sum` series.
    let names = [
        record.to_string(),
        format!("{record}_bucket"),
        format!("{record}_count"),
        format!("{record}_sum"),
    ];
    names.iter().any(|name| match selector.metric_name() {
        Some(n) => n == name,
        None => selector
            .matchers()
            .iter()
            .filter(|m| m.name == "__name__")
            .all(|m| m.matches(name)),
    })
}

impl SeriesState {
    fn new(rule: &Rule, max_values: usize, now_ms: i64) -> Self {
        let window = match &rule.detector {
            DetectorSpec::Ks(spec) => SeriesWindow::Ks(SampleWindows::new(
                &spec.reference,
                &spec.current,
                max_values,
            )),
            DetectorSpec::Ema(_) | DetectorSpec::Cusum(_) => SeriesWindow::Ema(EmaState::default()),
            DetectorSpec::Counts(spec) => {
                SeriesWindow::Counts(CountWindows::new(spec.kind, &spec.reference, spec.current))
            }
        };
        SeriesState {
            window,
            machine: Machine::default(),
            last_fed_ms: now_ms,
            last_sent_ms: BTreeMap::new(),
            dirty: true,
            reference_stored: false,
            newest_ms: i64::MIN,
            tested: None,
            labels: None,
            history: state::History::default(),
        }
    }
}

/// Work copied out of a series under its lock, run without it.
enum Job {
    /// A test of the windows as they stand, which had taken in `received` values; with
    /// `current: {last: [..]}`, also of the newest values at each smaller size (unsorted).
    Ks {
        view: crate::window::WindowView,
        smaller: Vec<Vec<f64>>,
        received: u64,
    },
    Ema(EmaState),
    /// A test of two windows of counts, which had taken in `received` increases.
    Counts {
        view: crate::window::counts::CountView,
        received: u64,
    },
    /// Nothing arrived since the last test: its outcome stands.
    Unchanged(Outcome),
}

#[derive(Debug, Default, Clone)]
struct Outcome {
    verdict: Option<Verdict>,
    statistic: Option<f64>,
    p_value: Option<f64>,
    threshold: Option<f64>,
    /// Set for a test run at this evaluation: the window's `received()` count then.
    tested_at: Option<u64>,
    /// The current-window size whose test gave `statistic` and `p_value` (with several
    /// sizes, the one with the smallest p-value).
    size: usize,
    ema: Option<f64>,
    reference_samples: usize,
    current_samples: usize,
    error: Option<String>,
}

impl Job {
    /// The work for one series; brings its sorted current window up to `now_ms`.
    fn of(s: &mut SeriesState, rule: &Rule, now_ms: i64) -> Job {
        match &mut s.window {
            SeriesWindow::Ks(w) => match &s.tested {
                Some((at, last)) if *at == w.received() => Job::Unchanged(last.clone()),
                _ => Job::Ks {
                    view: w.view(now_ms),
                    smaller: match &rule.detector {
                        DetectorSpec::Ks(spec) => {
                            spec.smaller.iter().map(|&k| w.newest(k, now_ms)).collect()
                        }
                        _ => Vec::new(),
                    },
                    received: w.received(),
                },
            },
            SeriesWindow::Ema(e) => Job::Ema(*e),
            SeriesWindow::Counts(w) => match &s.tested {
                Some((at, last)) if *at == w.received() => Job::Unchanged(last.clone()),
                _ => Job::Counts {
                    view: w.counts(now_ms),
                    received: w.received(),
                },
            },
        }
    }

    fn run(self, rule: &Rule) -> Outcome {
        match (self, &rule.detector) {
            (Job::Unchanged(outcome), _) => outcome,
            (
                Job::Ks {
                    view,
                    smaller,
                    received,
                },
                DetectorSpec::Ks(spec),
            ) => {
                let mut out = Outcome {
                    reference_samples: view.reference.len(),
                    current_samples: view.current.len(),
                    tested_at: Some(received),
                    ..Outcome::default()
                };
                if view.reference.len() < rule.min_samples || view.current.len() < rule.min_samples
                {
                    return out;
                }
                // The current window comes sorted, and so does a fixed reference; a rolling
                // reference and the smaller windows are sorted here, off any lock.
                let current = &view.current;
                let unsorted_reference;
                let reference: &[f64] = if view.reference_sorted {
                    &view.reference
                } else {
                    let mut r = view.reference.to_vec();
                    sort_values(&mut r);
                    unsorted_reference = r;
                    &unsorted_reference
                };
                // Every size against the same reference, the largest first; the outcome is the
                // test with the smallest p-value (a tie goes to the larger window). All sizes
                // are held to the same level, so that is also the smallest p-value relative
                // to its level. The verdict waits for the rule's other series: see `decide`.
                let mut tests = vec![(current.len(), test_values(spec.test, reference, current))];
                for mut values in smaller.into_iter().rev() {
                    if values.len() < rule.min_samples {
                        continue;
                    }
                    sort_values(&mut values);
                    tests.push((values.len(), test_values(spec.test, reference, &values)));
                }
                for (size, result) in tests {
                    match result {
                        Ok((statistic, p_value)) => {
                            // A distance without a p-value has one size (config checks).
                            let smaller_p =
                                matches!((p_value, out.p_value), (Some(p), Some(best)) if p < best);
                            if out.statistic.is_none() || smaller_p {
                                out.statistic = Some(statistic);
                                out.p_value = p_value;
                                out.size = size;
                            }
                        }
                        Err(e) => out.error = Some(e),
                    }
                }
                out
            }
            (Job::Counts { view, received }, DetectorSpec::Counts(spec)) => {
                let total = |v: &[f64]| v.iter().sum::<f64>();
                let (n, m) = (total(&view.reference), total(&view.current));
                let mut out = Outcome {
                    reference_samples: n as usize,
                    current_samples: m as usize,
                    tested_at: Some(received),
                    ..Outcome::default()
                };
                // No verdict before the reference is whole, on too few observations, or on
                // one bucket (nothing to compare).
                if !view.reference_complete
                    || n < rule.min_samples as f64
                    || m < rule.min_samples as f64
                    || view.reference.len() < 2
                {
                    return out;
                }
                match binned::test_counts(spec.test, &view.reference, &view.current, false) {
                    Ok(r) => {
                        out.statistic = Some(r.statistic);
                        out.p_value = r.p_value;
                    }
                    Err(e) => out.error = Some(e.to_string()),
                }
                out
            }
            (Job::Ema(e), DetectorSpec::Ema(spec)) => {
                let mut out = Outcome {
                    current_samples: e.samples as usize,
                    ema: e.value,
                    threshold: Some(match spec.bound {
                        ema::EmaBound::Below(b) | ema::EmaBound::Above(b) => b,
                        ema::EmaBound::Control(limits) => limits.l,
                    }),
                    ..Outcome::default()
                };
                let Some(v) = e.value else { return out };
                if (e.samples as usize) < rule.min_samples {
                    return out;
                }
                match spec.bound {
                    ema::EmaBound::Control(limits) => {
                        if let Some((z, verdict)) =
                            ema::control_verdict(v, spec.smoothing, &e.baseline, &limits)
                        {
                            out.statistic = Some(z);
                            out.verdict = Some(verdict);
                        }
                    }
                    _ => out.verdict = Some(ema::verdict(v, spec)),
                }
                out
            }
            (Job::Ema(e), DetectorSpec::Cusum(spec)) => {
                let mut out = Outcome {
                    current_samples: e.samples as usize,
                    threshold: Some(spec.h),
                    ..Outcome::default()
                };
                if e.cusum_ready(spec) && e.samples as usize >= rule.min_samples {
                    let s = control::cusum_statistic(e.hi, e.lo, spec.side);
                    out.statistic = Some(s);
                    out.verdict = Some(if s > spec.h {
                        Verdict::Drifted
                    } else {
                        Verdict::Stable
                    });
                }
                out
            }
            _ => Outcome {
                error: Some("window does not match the detector".into()),
                ..Outcome::default()
            },
        }
    }
}

/// Runs `job(0..n)` (`None`: that series is gone): on rayon's pool (one thread per core,
/// shared by every engine in the process and by the KS test's own split) when there are
/// enough of them to pay for it, results in order either way. No lock is held here; each job
/// takes its series' lock only to prepare its work, not to run the detector. A detector's
/// panic is resumed here, as on one thread.
fn run_jobs(n: usize, job: impl Fn(usize) -> Option<Outcome> + Sync) -> Vec<(usize, Outcome)> {
    /// Below this many jobs, one thread is as fast.
    const MIN_PARALLEL_JOBS: usize = 8;
    if n < MIN_PARALLEL_JOBS || rayon::current_num_threads() < 2 {
        return (0..n).filter_map(|at| Some((at, job(at)?))).collect();
    }
    (0..n)
        .into_par_iter()
        .filter_map(|at| Some((at, job(at)?)))
        .collect()
}

/// `(statistic, p-value)` of a raw-value rule's test on its two windows, both sorted; no
/// p-value for a distance.
fn test_values(
    test: ValueTest,
    reference: &[f64],
    current: &[f64],
) -> Result<(f64, Option<f64>), String> {
    match test {
        ValueTest::Ks {
            alternative,
            method,
        } => ks::ks_2samp_sorted(reference, current, alternative, method)
            .map(|r| (r.statistic, Some(r.p_value)))
            .map_err(|e| e.to_string()),
        ValueTest::Cvm => {
            cvm::cramervonmises_2samp_sorted(reference, current, cvm::CvmMethod::Auto)
                .map(|r| (r.statistic, Some(r.p_value)))
                .map_err(|e| e.to_string())
        }
        ValueTest::Anderson => anderson::anderson_2samp_sorted(reference, current)
            .map(|r| (r.statistic, Some(r.p_value_below_floor())))
            .map_err(|e| e.to_string()),
        ValueTest::Binned { test, bins } => {
            let (a, b) = evaluate::quantile_bins(reference, current, bins).map_err(|e| e.0)?;
            binned::test_counts(test, &a, &b, false)
                .map(|r| (r.statistic, r.p_value))
                .map_err(|e| e.to_string())
        }
        ValueTest::Wasserstein => wasserstein::wasserstein_distance_sorted(reference, current)
            .map(|d| (d, None))
            .map_err(|e| e.to_string()),
        ValueTest::Energy => energy::energy_distance_sorted(reference, current)
            .map(|d| (d, None))
            .map_err(|e| e.to_string()),
    }
}

/// Verdicts of the tests run at one evaluation of a p-value rule, decided together: the level
/// is `alpha` or the one `false_alarms` gives for the group's interval (see
/// [`budget`]), and `correction` spans the series tested now. Outcomes carried over from an
/// earlier test keep their verdict.
fn decide<K>(rule: &Rule, interval: Duration, results: &mut [(K, Outcome)]) {
    let (level, correction, floor, threshold, sizes) = match &rule.detector {
        DetectorSpec::Ks(s) => (&s.level, s.correction, s.statistic, s.threshold, s.sizes()),
        DetectorSpec::Counts(s) => (&s.level, s.correction, s.statistic, s.threshold, 1),
        _ => return,
    };
    let sizes = sizes as f64;
    // A distance (no p-value) is drifted when it reaches its threshold.
    if let Some(t) = threshold {
        for (_, out) in results.iter_mut().filter(|(_, o)| o.tested_at.is_some()) {
            if let Some(d) = out.statistic {
                out.threshold = Some(t);
                out.verdict = Some(if d >= t {
                    Verdict::Drifted
                } else {
                    Verdict::Stable
                });
            }
        }
        return;
    }
    let spec = (level, correction, floor);
    let fresh: Vec<usize> = (0..results.len())
        .filter(|&i| results[i].1.tested_at.is_some() && results[i].1.p_value.is_some())
        .collect();
    let (level, correction, floor) = spec;
    let level = level.per_test(interval, fresh.len());
    // Several current-window sizes split the level evenly (Bonferroni): a series' evidence is
    // its smallest p-value times the number of sizes, the threshold shown is per size.
    let threshold = match correction {
        Correction::Bonferroni => level / fresh.len().max(1) as f64,
        Correction::None | Correction::Bh => level,
    } / sizes;
    let ps: Vec<f64> = fresh
        .iter()
        .map(|&i| {
            let p = results[i].1.p_value.unwrap_or(f64::NAN) * sizes;
            // `min` would turn a NaN (no evidence, no part in a correction) into 1.
            if p > 1.0 {
                1.0
            } else {
                p
            }
        })
        .collect();
    let evidence = budget::evidence(&ps, level, correction);
    for (&i, evident) in fresh.iter().zip(evidence) {
        let out = &mut results[i].1;
        out.threshold = Some(threshold);
        let d = out.statistic.unwrap_or(f64::NAN);
        out.verdict = Some(Verdict::of(evident, d, floor));
    }
}

/// The routes of one series: every rule whose selector matches, with the window key
/// (the series' labels, or its `by` labels when the rule pools).
fn routes_for(generation: &Generation, metric: &str, labels: &Labels) -> Vec<Route> {
    let mut routes = Vec::new();
    for g in &generation.groups {
        for rt in &g.rules {
            if let Some(name) = rt.rule.selector.metric_name() {
                if name != metric {
                    continue;
                }
            }
            if !rt.rule.selector.matches(metric, labels) {
                continue;
            }
            // A count rule's series is the labels without its bin label, which it needs.
            let bin_label = match &rt.rule.detector {
                DetectorSpec::Counts(spec) => {
                    if !labels.contains_key(&spec.bin_label) {
                        continue;
                    }
                    Some(spec.bin_label.as_str())
                }
                _ => None,
            };
            let key = match &rt.rule.by {
                // A selector that does not name one metric never pools series of different
                // names: the name is part of the window key (shown as `metric`).
                None if rt.rule.selector.metric_name().is_none() => {
                    let mut key = labels.clone();
                    key.insert("__name__".into(), metric.to_string());
                    key
                }
                None => labels.clone(),
                Some(by) => by
                    .iter()
                    .filter_map(|l| labels.get(l).map(|v| (l.clone(), v.clone())))
                    .collect(),
            };
            let key = match bin_label {
                Some(l) => {
                    let mut key = key;
                    key.remove(l);
                    key
                }
                None => key,
            };
            routes.push((Arc::clone(rt), Arc::new(key)));
        }
    }
    routes
}

/// The state of the series `key`, found at `position` in `series` when nothing moved it
/// there since, else by its key.
fn state_at<'a>(
    series: &'a mut SeriesMap<SeriesKey, SeriesState>,
    key: &SeriesKey,
    position: usize,
) -> Option<&'a mut SeriesState> {
    let here = matches!(series.at_mut(position), Some((k, _)) if Arc::ptr_eq(k, key));
    if here {
        series.at_mut(position).map(|(_, s)| s)
    } else {
        series.get_mut(key)
    }
}

fn output_labels(rule: &Rule, group: &str, key: &Labels) -> Labels {
    let mut out = Labels::new();
    for (k, v) in key {
        if k == "__name__" {
            let name = if key.contains_key("metric") {
                "exported_metric"
            } else {
                "metric"
            };
            out.insert(name.into(), v.clone());
        } else if RESERVED_LABELS.contains(&k.as_str()) {
            out.insert(format!("exported_{k}"), v.clone());
        } else {
            out.insert(k.clone(), v.clone());
        }
    }
    for (k, v) in &rule.labels {
        out.insert(k.clone(), v.clone());
    }
    out.insert("rule".into(), rule.name.clone());
    out.insert("group".into(), group.to_string());
    out
}

pub fn format_labels(labels: &Labels) -> String {
    let inner: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}", inner.join(", "))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::Path;

    use super::*;
    use crate::config::{parse_config, parse_rule_file, FsSecrets, RuleContext};
    use crate::detect::ks::{ks_2samp, Alternative, Method};

    #[test]
    fn the_registry_finds_a_series_by_its_borrowed_name() {
        let labels = |pairs: &[(&str, &str)]| -> Labels {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let mut series: HashMap<(String, Labels), u32> = HashMap::new();
        let (a, b) = (labels(&[("x", "1")]), labels(&[("x", "1"), ("y", "")]));
        series.insert(("m".into(), a.clone()), 1);
        series.insert(("m".into(), b.clone()), 2);
        series.insert(("n".into(), a.clone()), 3);
        assert_eq!(series.get(&("m", &a) as &dyn SeriesName), Some(&1));
        assert_eq!(series.get(&("m", &b) as &dyn SeriesName), Some(&2));
        assert_eq!(series.get(&("n", &a) as &dyn SeriesName), Some(&3));
        // The name and the labels are not run together: "m" + {x=1} is not "mx" + {}.
        assert_eq!(series.get(&("n", &b) as &dyn SeriesName), None);
        assert_eq!(series.get(&("mx", &labels(&[])) as &dyn SeriesName), None);
        assert_eq!(series.remove(&("m", &b) as &dyn SeriesName), Some(2));
        assert_eq!(series.len(), 2);
    }

    #[test]
    fn a_spinning_lock_waits_for_a_long_holder_and_takes_a_poisoned_one() {
        let m = Arc::new(Mutex::new(0u32));
        let held = lock(&m);
        let waiter = {
            let m = Arc::clone(&m);
            std::thread::spawn(move || {
                let started = Instant::now();
                *lock_spinning(&m) += 1;
                started.elapsed()
            })
        };
        // Held well past the spin: the waiter sleeps, then gets it.
        std::thread::sleep(Duration::from_millis(30));
        drop(held);
        let waited = waiter.join().expect("waiter");
        assert!(waited >= Duration::from_millis(25), "{waited:?}");
        assert_eq!(*lock(&m), 1);
        // A holder that panicked poisons it; the value is still there to take.
        let m2 = Arc::clone(&m);
        let _ = std::thread::spawn(move || {
            let _g = lock(&m2);
            panic!("poison");
        })
        .join();
        assert!(m.is_poisoned());
        assert_eq!(*lock_spinning(&m), 1);
    }

    #[test]
    fn rules_that_can_take_a_record() {
        let s = |t: &str| Selector::parse(t).expect("selector");
        assert!(can_take(&s(r#"up_copy{job="x"}"#), "up_copy"));
        assert!(!can_take(&s("other"), "up_copy"));
        assert!(can_take(&s(r#"{__name__=~"up_.*"}"#), "up_copy"));
        assert!(!can_take(&s(r#"{__name__=~"down_.*"}"#), "up_copy"));
        assert!(can_take(&s(r#"{job="x"}"#), "up_copy"));
        // A native histogram record arrives as <record>_bucket series.
        assert!(can_take(&s("score_bucket"), "score"));
        assert!(!can_take(&s("score_bucket"), "scores"));
    }

    // The engine without a runtime: built from config and rules parsed from text, fed and
    // evaluated at explicit times, its transitions read from a recording notifier.

    use super::unittest::Recorder;

    /// An engine on a service config and one rule file, both parsed from text, with a
    /// recording notifier.
    fn engine(config: &str, rules: &str) -> (Engine, Arc<Recorder>) {
        let config = parse_config(config, "driftgauge.yml", Path::new(""), &FsSecrets)
            .unwrap_or_else(|d| panic!("config: {d:?}"));
        let webhooks: BTreeSet<String> = config.webhooks.keys().cloned().collect();
        let ctx = RuleContext {
            base_dir: Path::new(""),
            default_interval: config.evaluation_interval,
            webhooks: Some(&webhooks),
        };
        let groups =
            parse_rule_file(rules, "rules.yml", &ctx).unwrap_or_else(|d| panic!("rules: {d:?}"));
        let recorder = Arc::new(Recorder::default());
        let engine = Engine::new(
            config,
            RuleSet { groups },
            Arc::new(Telemetry::default()),
            Arc::clone(&recorder) as Arc<dyn Notifier>,
        );
        (engine, recorder)
    }

    /// A webhook named `name` with the given extra keys (`send_resolved`, `cooldown`).
    fn webhook(name: &str, keys: &str) -> String {
        format!("  {name}:\n    url: http://127.0.0.1:1/{name}\n{keys}")
    }

    /// A KS rule on `amount{model="fraud"}`: a frozen reference of the first 50 values, the
    /// last 50 as the current window, a verdict from `min_samples` values in each.
    fn ks_rule(name: &str, min_samples: usize, webhooks: &str) -> String {
        format!(
            r#"
      - name: {name}
        detector: ks
        series: 'amount{{model="fraud"}}'
        reference: {{first: 50}}
        current: {{last: 50}}
        min_samples: {min_samples}
        labels: {{team: risk}}
        annotations: {{summary: 'amount drifted for {{{{ $labels.model }}}}'}}
        webhooks: [{webhooks}]"#
        )
    }

    fn rules(rules: &[String]) -> String {
        format!(
            "groups:\n  - name: fraud-model\n    interval: 1m\n    rules:{}\n",
            rules.concat()
        )
    }

    const T0: i64 = 1_700_000_000_000;
    const MINUTE: i64 = 60_000;

    /// `n` values spread evenly over [shift, shift + 1).
    fn values(n: usize, shift: f64) -> Vec<f64> {
        (0..n).map(|i| shift + i as f64 / n as f64).collect()
    }

    fn push(engine: &Engine, values: &[f64], at_ms: i64) {
        let batch = [SeriesSamples {
            metric: "amount".into(),
            labels: Labels::from([("model".to_string(), "fraud".to_string())]),
            values: values.to_vec(),
        }];
        let taken = engine.ingest(&batch, "push", at_ms).expect("ingest");
        assert_eq!(taken, values.len());
    }

    /// Evaluates the one group at `at_ms`; returns its series' outputs.
    fn evaluate(engine: &Engine, at_ms: i64) -> Vec<SeriesOutput> {
        let generation = engine.current();
        engine.evaluate_group(&generation, 0, at_ms);
        generation.groups[0].output().series.clone()
    }

    /// The statuses an evaluation published, by rule name.
    fn statuses(engine: &Engine, out: &[SeriesOutput]) -> Vec<(String, Status)> {
        let generation = engine.current();
        out.iter()
            .map(|s| {
                let rule = &generation.groups[0].rules[s.rule].rule.name;
                (rule.clone(), s.status)
            })
            .collect()
    }

    /// One KS rule over `amount` split by `model`, `extra` keys appended.
    fn pooled_rule(extra: &str) -> String {
        format!(
            "groups:\n  - name: g\n    interval: 15s\n    rules:\n      - name: r\n        detector: ks\n        series: amount\n        reference: {{first: 50}}\n        current: {{last: 50}}\n        min_samples: 50\n{extra}"
        )
    }

    fn push_model(engine: &Engine, model: &str, values: &[f64], at_ms: i64) {
        let batch = [SeriesSamples {
            metric: "amount".into(),
            labels: Labels::from([("model".to_string(), model.to_string())]),
            values: values.to_vec(),
        }];
        engine.ingest(&batch, "push", at_ms).expect("ingest");
    }

    #[test]
    fn the_default_budget_sets_the_level_and_the_threshold_gauge() {
        let (engine, _) = engine("", &pooled_rule(""));
        push_model(&engine, "a", &values(50, 0.0), T0);
        // Shifted by a quarter: D = 0.25, p = 0.08 for 50 vs 50. Evidence at 0.05, none at
        // the default budget's 15 s / 30 d = 5.8e-6.
        push_model(&engine, "a", &values(50, 0.25), T0);
        let out = evaluate(&engine, T0);
        let level = 15.0 / (30.0 * 86_400.0);
        assert_eq!(out[0].threshold, Some(level));
        assert_eq!(out[0].status, Status::Stable);
        let (engine, _) = engine_with_alpha();
        push_model(&engine, "a", &values(50, 0.0), T0);
        push_model(&engine, "a", &values(50, 0.25), T0);
        let out = evaluate(&engine, T0);
        assert_eq!(out[0].threshold, Some(0.1));
        assert_eq!(out[0].status, Status::Drifted, "{out:?}");
    }

    fn engine_with_alpha() -> (Engine, Arc<Recorder>) {
        engine("", &pooled_rule("        alpha: 0.1\n"))
    }

    /// Alternating values around `mean` with standard deviation `sd` (exactly).
    fn around(n: usize, mean: f64, sd: f64) -> Vec<f64> {
        (0..n)
            .map(|i| if i % 2 == 0 { mean + sd } else { mean - sd })
            .collect()
    }

    #[test]
    fn cusum_learns_its_baseline_then_finds_a_small_drop() {
        let rules = "groups:\n  - name: g\n    interval: 15s\n    rules:\n      - name: r\n        detector: cusum\n        series: amount\n        baseline: 100\n        side: below\n";
        let (engine, _) = engine("", rules);
        push_model(&engine, "a", &around(100, 0.9, 0.02), T0);
        let out = evaluate(&engine, T0);
        // Learned, nothing summed yet.
        assert_eq!(out[0].statistic, Some(0.0));
        let h = out[0].threshold.expect("h");
        assert!(h > 5.0 && h < 15.0, "{h}");
        // A drop of one sd: the lower sum grows by about 0.5 a sample (k = 0.5).
        push_model(&engine, "a", &around(10, 0.88, 0.0), T0 + 1);
        let out = evaluate(&engine, T0 + 15_000);
        assert_eq!(out[0].status, Status::Stable);
        push_model(&engine, "a", &around(40, 0.88, 0.0), T0 + 2);
        let out = evaluate(&engine, T0 + 30_000);
        assert_eq!(out[0].status, Status::Drifted, "{out:?}");
        assert!(out[0].statistic.unwrap() > h);
    }

    #[test]
    fn ema_control_limits_come_from_the_baseline() {
        let rules = "groups:\n  - name: g\n    interval: 15s\n    rules:\n      - name: r\n        detector: ema\n        series: amount\n        smoothing: 0.2\n        control_limits: {baseline: 200, side: below}\n";
        let (engine, _) = engine("", rules);
        push_model(&engine, "a", &around(100, 0.9, 0.02), T0);
        // Still learning: no verdict, no statistic.
        let out = evaluate(&engine, T0);
        assert_eq!((out[0].statistic, out[0].status), (None, Status::Stable));
        push_model(&engine, "a", &around(100, 0.9, 0.02), T0 + 1);
        let out = evaluate(&engine, T0 + 15_000);
        assert_eq!(
            out[0].statistic,
            Some(0.0),
            "restarted at the baseline mean"
        );
        let l = out[0].threshold.expect("L");
        // A rise never trips a `below` chart.
        push_model(&engine, "a", &around(30, 0.95, 0.0), T0 + 2);
        assert_eq!(evaluate(&engine, T0 + 30_000)[0].status, Status::Stable);
        // A drop of 2 sd: the EWMA settles 2 / sqrt(0.2 / 1.8) = 6 of its sds below.
        push_model(&engine, "a", &around(60, 0.86, 0.0), T0 + 3);
        let out = evaluate(&engine, T0 + 45_000);
        assert_eq!(out[0].status, Status::Drifted, "{out:?}");
        assert!(out[0].statistic.unwrap() < -l);
    }

    #[test]
    fn samples_read_before_a_reload_do_not_feed_the_rules_it_adds() {
        // Regression: an instant query answer in flight during a reload fed the rule the
        // reload added, which then looked fed and was never warmed from history.
        let (engine, _) = engine("", "groups: []\n");
        let before = engine.current().id;
        let rules = pooled_rule("        alpha: 0.1\n");
        let ctx = RuleContext {
            base_dir: Path::new(""),
            default_interval: Duration::from_secs(15),
            webhooks: None,
        };
        let groups = parse_rule_file(&rules, "r.yml", &ctx).expect("rules");
        engine.apply(engine.current().config.as_ref().clone(), RuleSet { groups });
        let batch = [SeriesSamples {
            metric: "amount".into(),
            labels: Labels::from([("model".to_string(), "a".to_string())]),
            values: vec![1.0],
        }];
        engine
            .ingest_as_of(&batch, "query", T0, before)
            .expect("ingest");
        assert_eq!(engine.current().groups[0].rules[0].series_count(), 0);
        assert!(wants_warm_up(&engine.current(), "amount"));
        // Read under the new generation, they do.
        engine
            .ingest_as_of(&batch, "query", T0, engine.current().id)
            .expect("ingest");
        assert_eq!(engine.current().groups[0].rules[0].series_count(), 1);
    }

    #[test]
    fn a_name_regex_never_pools_series_of_different_names() {
        let rules = "groups:\n  - name: g\n    interval: 15s\n    rules:\n      - name: r\n        detector: ks\n        series: '{__name__=~\"a|b\", x=\"1\"}'\n        reference: {first: 20}\n        current: {last: 20}\n        alpha: 0.05\n";
        let (engine, _) = engine("", rules);
        for metric in ["a", "b"] {
            let batch = [SeriesSamples {
                metric: metric.into(),
                labels: Labels::from([("x".to_string(), "1".to_string())]),
                values: values(40, 0.0),
            }];
            engine.ingest(&batch, "push", T0).expect("ingest");
        }
        let out = evaluate(&engine, T0);
        let names: Vec<&str> = out
            .iter()
            .map(|s| s.labels.get("metric").map(String::as_str).unwrap_or(""))
            .collect();
        assert_eq!(names, ["a", "b"], "{out:?}");
        assert!(out.iter().all(|s| s.current_samples == 20));
    }

    #[test]
    fn a_window_with_nothing_new_is_not_tested_again() {
        let (engine, _) = engine_with_alpha();
        push_model(&engine, "a", &values(50, 0.0), T0);
        push_model(&engine, "a", &values(50, 0.5), T0);
        let first = evaluate(&engine, T0);
        assert_eq!(first[0].status, Status::Drifted);
        let generation = engine.current();
        let rt = &generation.groups[0].rules[0];
        let tested = |engine: &Engine| {
            let _ = engine;
            lock(&rt.series)
                .iter()
                .map(|(_, s)| s)
                .next()
                .and_then(|s| s.tested.as_ref().map(|(at, _)| *at))
        };
        assert_eq!(tested(&engine), Some(100));
        // Nothing new: the outcome stands, nothing is re-tested.
        let again = evaluate(&engine, T0 + 15_000);
        assert_eq!(again[0].statistic, first[0].statistic);
        assert_eq!(again[0].status, Status::Drifted);
        assert_eq!(tested(&engine), Some(100));
        // One new value: tested again.
        push_model(&engine, "a", &[0.1], T0 + 20_000);
        evaluate(&engine, T0 + 30_000);
        assert_eq!(tested(&engine), Some(101));
    }

    /// Two rules on `amount{model="fraud"}` at the default budget, the same frozen reference:
    /// `one` with one 1000-value current window, `several` with sizes 100 and 1000.
    fn one_and_several_sizes() -> (Engine, Arc<Recorder>) {
        let rule = |name: &str, current: &str| {
            format!("\n      - name: {name}\n        detector: ks\n        series: 'amount{{model=\"fraud\"}}'\n        reference: {{first: 1000}}\n        current: {{last: {current}}}")
        };
        let rules = format!(
            "groups:\n  - name: g\n    interval: 15s\n    rules:{}{}\n",
            rule("one", "1000"),
            rule("several", "[100, 1000]")
        );
        engine("", &rules)
    }

    /// `values(n, 0.0)` in an order that spreads every run of them over [0, 1) (337 is
    /// prime to 1000), so that the newest 100 look like the rest.
    fn spread(n: usize) -> Vec<f64> {
        (0..n).map(|i| ((i * 337) % n) as f64 / n as f64).collect()
    }

    #[test]
    fn a_small_window_catches_a_large_shift_sooner_than_one_large_window() {
        let (engine, _) = one_and_several_sizes();
        push(&engine, &spread(1000), T0);
        push(&engine, &spread(1000), T0);
        let level = 15.0 / (30.0 * 86_400.0);
        let out = evaluate(&engine, T0);
        assert_eq!(
            statuses(&engine, &out),
            [
                ("one".to_string(), Status::Stable),
                ("several".to_string(), Status::Stable)
            ]
        );
        // The level is split across the two sizes; the windows hold the largest size only.
        assert_eq!(out[0].threshold, Some(level));
        assert_eq!(out[1].threshold, Some(level / 2.0));
        assert_eq!(out[1].current_samples, 1000);
        // A shift past the reference's range, 50 values per evaluation.
        let mut first_drifted: BTreeMap<String, usize> = BTreeMap::new();
        for e in 1..=10 {
            let at = T0 + e as i64 * 15_000;
            push(&engine, &values(50, 1.0), at);
            let out = evaluate(&engine, at);
            for (rule, status) in statuses(&engine, &out) {
                if status == Status::Drifted {
                    first_drifted.entry(rule).or_insert(e);
                }
            }
            if e == 1 {
                // The 100-value window is half changed (D = 0.5): its test is the one shown.
                assert_eq!(out[1].status, Status::Drifted, "{out:?}");
                assert_eq!(out[1].statistic, Some(0.5));
                assert!(out[1].p_value.is_some_and(|p| p <= level / 2.0), "{out:?}");
                // The 1000-value window has moved by 0.05 only.
                assert_eq!(out[0].status, Status::Stable);
                assert!(out[0].statistic.is_some_and(|d| (d - 0.05).abs() < 1e-12));
            }
        }
        // 50 changed values for the small window; 150 for the large one (D >= 0.113 needed
        // for 1000 against 1000 at 5.8e-6).
        assert_eq!(first_drifted.get("several"), Some(&1));
        assert_eq!(first_drifted.get("one"), Some(&3));
    }

    #[test]
    fn several_sizes_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let store = crate::store::Store::open(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        let (engine, _) = one_and_several_sizes();
        push(&engine, &spread(1000), T0);
        push(&engine, &spread(1000), T0);
        push(&engine, &values(20, 1.0), T0 + 15_000);
        let before = evaluate(&engine, T0 + 15_000);
        engine.flush(&store).unwrap_or_else(|e| panic!("{e}"));
        drop(store);
        let store = crate::store::Store::open(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        let (restarted, _) = one_and_several_sizes();
        restarted.restore(&store).unwrap_or_else(|e| panic!("{e}"));
        let after = evaluate(&restarted, T0 + 15_000);
        let shown = |o: &[SeriesOutput]| {
            o.iter()
                .map(|s| {
                    (
                        s.statistic,
                        s.p_value,
                        s.current_samples,
                        s.reference_samples,
                    )
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(shown(&after), shown(&before));
        // 20 changed values of 100: D = 0.2, not yet enough (0.272 is needed at 2.9e-6); 30
        // more after the restart are.
        assert_eq!(after[1].statistic, Some(0.2));
        assert_eq!(after[1].status, Status::Stable);
        push(&restarted, &values(30, 1.0), T0 + 30_000);
        let out = evaluate(&restarted, T0 + 30_000);
        assert_eq!(out[1].statistic, Some(0.5));
        assert_eq!(out[1].status, Status::Drifted);
    }

    #[test]
    fn bonferroni_divides_the_level_by_the_series_tested() {
        let (engine, _) = engine(
            "",
            &pooled_rule("        alpha: 0.1\n        correction: bonferroni\n"),
        );
        // Four series: one shifted by a quarter (p = 0.08 for 50 vs 50), three unchanged.
        for model in ["a", "b", "c", "d"] {
            push_model(&engine, model, &values(50, 0.0), T0);
            let shift = if model == "a" { 0.25 } else { 0.0 };
            push_model(&engine, model, &values(50, shift), T0);
        }
        let out = evaluate(&engine, T0);
        assert_eq!(out.len(), 4);
        for s in &out {
            assert_eq!(s.threshold, Some(0.1 / 4.0));
            assert_eq!(s.status, Status::Stable, "0.08 > 0.025: {s:?}");
        }
    }

    #[test]
    fn share_gives_a_rule_wide_verdict_and_event() {
        let config = format!("webhooks:\n{}", webhook("retrain", ""));
        let (engine, recorder) = engine(
            &config,
            &pooled_rule("        alpha: 0.1\n        share: 0.5\n        webhooks: [retrain]\n"),
        );
        for (model, shift) in [("a", 0.5), ("b", 0.0), ("c", 0.0), ("d", 0.0)] {
            push_model(&engine, model, &values(50, 0.0), T0);
            push_model(&engine, model, &values(50, shift), T0);
        }
        evaluate(&engine, T0);
        let generation = engine.current();
        let whole = generation.groups[0].output().rules.clone();
        assert_eq!((whole[0].series, whole[0].drifted), (4, 1));
        assert_eq!(whole[0].status, Some(Status::Stable));
        // One series' event; the rule as a whole is not drifted (1/4 < 0.5).
        assert_eq!(recorder.take().len(), 1);
        // A second series drifts: half of them, the rule drifts and calls its webhook with
        // the rule's labels only and the share as the statistic.
        push_model(&engine, "b", &values(50, 0.5), T0 + 1);
        evaluate(&engine, T0 + 15_000);
        let whole = generation.groups[0].output().rules.clone();
        assert_eq!(
            (whole[0].drifted, whole[0].status),
            (2, Some(Status::Drifted))
        );
        let events = recorder.take();
        let rule_wide: Vec<&Event> = events
            .iter()
            .filter(|e| !e.labels.contains_key("model"))
            .collect();
        assert_eq!(rule_wide.len(), 1, "{events:?}");
        assert_eq!(rule_wide[0].statistic, Some(0.5));
        assert_eq!(rule_wide[0].to, Status::Drifted);
    }

    #[test]
    fn a_drifting_ks_rule_sends_one_event_and_none_while_it_stays_drifted() {
        let config = format!("webhooks:\n{}", webhook("retrain", ""));
        let (engine, recorder) = engine(&config, &rules(&[ks_rule("amount_drift", 10, "retrain")]));
        let reference = values(50, 0.0);
        let current = values(50, 10.0);
        push(&engine, &reference, T0);
        push(&engine, &current, T0);

        let out = evaluate(&engine, T0 + MINUTE);
        let want = ks_2samp(&reference, &current, Alternative::TwoSided, Method::Auto).expect("ks");
        let events = recorder.take();
        assert_eq!(events.len(), 1, "{events:#?}");
        let e = &events[0];
        assert_eq!(e.group, "fraud-model");
        assert_eq!(e.rule, "amount_drift");
        assert_eq!(e.detector, "ks");
        assert_eq!(
            e.labels,
            Labels::from([
                ("model".to_string(), "fraud".to_string()),
                ("team".to_string(), "risk".to_string()),
            ])
        );
        assert_eq!(
            e.annotations,
            Labels::from([(
                "summary".to_string(),
                "amount drifted for fraud".to_string()
            )])
        );
        assert_eq!(e.statistic, Some(1.0));
        assert_eq!(e.statistic, Some(want.statistic));
        assert_eq!(e.p_value, Some(want.p_value));
        assert!(want.p_value < 0.05, "{want:?}");
        assert_eq!(e.value, None);
        assert_eq!((e.from, e.to), (Status::Stable, Status::Drifted));
        assert_eq!(e.at_ms, T0 + MINUTE);
        assert_eq!(e.webhooks, ["retrain"]);

        // The series' state as published.
        assert_eq!(out.len(), 1, "{out:#?}");
        let s = &out[0];
        assert_eq!(s.status, Status::Drifted);
        assert_eq!(s.since_ms, Some(T0 + MINUTE));
        assert_eq!(s.statistic, Some(want.statistic));
        assert_eq!(s.p_value, Some(want.p_value));
        assert_eq!((s.reference_samples, s.current_samples), (50, 50));
        assert_eq!(s.labels["rule"], "amount_drift");
        assert_eq!(s.labels["group"], "fraud-model");
        assert_eq!(s.labels["team"], "risk");
        assert_eq!(s.last_error, None);

        // Still drifted: no transition, no event; the state keeps its start.
        let out = evaluate(&engine, T0 + 2 * MINUTE);
        assert_eq!(recorder.take(), vec![]);
        assert_eq!(out[0].status, Status::Drifted);
        assert_eq!(out[0].since_ms, Some(T0 + MINUTE));
    }

    #[test]
    fn cooldown_suppresses_calls_within_its_window() {
        let config = format!(
            "webhooks:\n{}",
            webhook("retrain", "    send_resolved: true\n    cooldown: 10m\n")
        );
        let (engine, recorder) = engine(&config, &rules(&[ks_rule("amount_drift", 10, "retrain")]));
        push(&engine, &values(50, 0.0), T0);
        let drift = |shift: f64, at_ms: i64| {
            push(&engine, &values(50, shift), at_ms);
            let out = evaluate(&engine, at_ms);
            (out[0].status, recorder.take())
        };
        let (status, events) = drift(10.0, T0 + MINUTE);
        assert_eq!(status, Status::Drifted);
        assert_eq!(events.len(), 1, "the first call: {events:#?}");
        // Back to stable, drifted again, stable again: all within 10m of that call.
        for (i, (shift, want)) in [
            (0.0, Status::Stable),
            (10.0, Status::Drifted),
            (0.0, Status::Stable),
        ]
        .into_iter()
        .enumerate()
        {
            let (status, events) = drift(shift, T0 + (2 + i as i64) * MINUTE);
            assert_eq!(status, want);
            assert_eq!(events, vec![], "within the cooldown at step {i}");
        }
        // Past the cooldown: drifted again calls again.
        let (status, events) = drift(10.0, T0 + 11 * MINUTE + 1);
        assert_eq!(status, Status::Drifted);
        assert_eq!(events.len(), 1, "{events:#?}");
        assert_eq!(
            (events[0].from, events[0].to),
            (Status::Stable, Status::Drifted)
        );
        assert_eq!(events[0].webhooks, ["retrain"]);
    }

    #[test]
    fn without_send_resolved_leaving_drifted_calls_nothing() {
        let config = format!(
            "webhooks:\n{}{}",
            webhook("quiet", ""),
            webhook("loud", "    send_resolved: true\n")
        );
        let (engine, recorder) = engine(
            &config,
            &rules(&[
                ks_rule("quiet_only", 10, "quiet"),
                ks_rule("quiet_and_loud", 10, "quiet, loud"),
            ]),
        );
        push(&engine, &values(50, 0.0), T0);
        push(&engine, &values(50, 10.0), T0);
        evaluate(&engine, T0 + MINUTE);
        let entering: Vec<(String, Vec<String>)> = recorder
            .take()
            .into_iter()
            .map(|e| (e.rule, e.webhooks))
            .collect();
        assert_eq!(
            entering,
            [
                ("quiet_only".to_string(), vec!["quiet".to_string()]),
                (
                    "quiet_and_loud".to_string(),
                    vec!["quiet".to_string(), "loud".to_string()]
                ),
            ]
        );

        push(&engine, &values(50, 0.0), T0 + 2 * MINUTE);
        let out = evaluate(&engine, T0 + 2 * MINUTE);
        assert_eq!(
            statuses(&engine, &out),
            [
                ("quiet_only".to_string(), Status::Stable),
                ("quiet_and_loud".to_string(), Status::Stable),
            ]
        );
        let leaving = recorder.take();
        assert_eq!(leaving.len(), 1, "only the rule with loud: {leaving:#?}");
        assert_eq!(leaving[0].rule, "quiet_and_loud");
        assert_eq!(
            (leaving[0].from, leaving[0].to),
            (Status::Drifted, Status::Stable)
        );
        assert_eq!(leaving[0].webhooks, ["loud"]);
    }

    #[test]
    fn a_pooled_window_takes_its_series_in_time_order() {
        let rules = "groups:\n  - name: g\n    interval: 1m\n    rules:\n      - name: acc\n        detector: ema\n        series: 'acc'\n        by: [model]\n        smoothing: 0.5\n        below: 0.5\n";
        let (engine, _) = engine("", rules);
        let s = |instance: &str, v: f64| SeriesSamples {
            metric: "acc".into(),
            labels: Labels::from([
                ("model".to_string(), "m".to_string()),
                ("instance".to_string(), instance.to_string()),
            ]),
            values: vec![v],
        };
        // Two series of one pool in one batch, the second older: refused whole.
        let err = engine
            .ingest_timed(
                &[s("a", 1.0), s("b", 0.0)],
                &[Some(vec![T0 + 10]), Some(vec![T0 + 5])],
                "push",
                T0 + 20,
            )
            .expect_err("out of order");
        assert!(
            matches!(err, IngestError::OutOfOrder { index: 1, sample_ms, newest_ms, .. }
                if sample_ms == T0 + 5 && newest_ms == T0 + 10),
            "{err}"
        );
        assert_eq!(engine.current().groups[0].rules[0].series_count(), 0);
        // In time order: taken, and the EMA steps in that order (0, then 1: 0.5).
        let n = engine
            .ingest_timed(
                &[s("b", 0.0), s("a", 1.0)],
                &[Some(vec![T0 + 5]), Some(vec![T0 + 10])],
                "push",
                T0 + 20,
            )
            .expect("in order");
        assert_eq!(n, 2);
        let out = evaluate(&engine, T0 + 30);
        assert_eq!(out[0].ema, Some(0.5));
        // Untimed samples are never refused: stamped on arrival, or at the pool's newest time
        // when the clock is behind it; a timed sample before that is refused.
        engine
            .ingest(&[s("a", 1.0)], "push", T0 + 20)
            .expect("later");
        engine
            .ingest(&[s("b", 1.0)], "push", T0 + 1)
            .expect("a clock set back");
        let err = engine
            .ingest_timed(&[s("b", 1.0)], &[Some(vec![T0 + 15])], "push", T0 + 30)
            .expect_err("before the pool's newest");
        assert_eq!(err.reason(), crate::labels::RejectReason::BadTimestamp);
    }

    #[test]
    fn a_shard_loads_only_its_groups_and_counts_the_others_samples_as_unselected() {
        use crate::cluster::{shard_of, Cluster, Shard};
        let names = ["fraud", "search", "ranker", "eta"];
        let mut text = String::from("groups:\n");
        for n in names {
            text.push_str(&format!(
                "  - name: {n}\n    rules:\n      - name: r\n        detector: ema\n        series: 'score{{model=\"{n}\"}}'\n        smoothing: 0.5\n        below: 0.1\n"
            ));
        }
        let ctx = RuleContext {
            base_dir: Path::new(""),
            default_interval: Duration::from_secs(15),
            webhooks: None,
        };
        let groups = parse_rule_file(&text, "rules.yml", &ctx).expect("rules");
        for index in 0..2 {
            let telemetry = Arc::new(Telemetry::default());
            let engine = Engine::with_cluster(
                Config::default(),
                RuleSet {
                    groups: groups.clone(),
                },
                Arc::clone(&telemetry),
                Arc::new(crate::engine::notify::Discard),
                Cluster {
                    replica: Some("a".into()),
                    shard: Shard::new(index, 2).expect("shard"),
                },
            );
            let owned: Vec<&str> = names
                .iter()
                .copied()
                .filter(|n| shard_of(n, 2) == index)
                .collect();
            let loaded: Vec<String> = engine
                .current()
                .groups
                .iter()
                .map(|g| g.group.name.clone())
                .collect();
            assert_eq!(loaded, owned, "shard {index}");
            let batch: Vec<SeriesSamples> = names
                .iter()
                .map(|n| SeriesSamples {
                    metric: "score".into(),
                    labels: Labels::from([("model".to_string(), n.to_string())]),
                    values: vec![0.5, 0.6],
                })
                .collect();
            let taken = engine.ingest(&batch, "push", T0).expect("ingest");
            assert_eq!(taken, 2 * owned.len());
            assert_eq!(
                telemetry.samples_unselected.get("push"),
                (2 * (names.len() - owned.len())) as f64
            );
            // Only the owned series are held.
            assert_eq!(engine.series_count(), owned.len());
        }
    }

    #[test]
    fn fewer_than_min_samples_give_no_verdict() {
        let config = format!("webhooks:\n{}", webhook("retrain", ""));
        let (engine, recorder) = engine(&config, &rules(&[ks_rule("amount_drift", 20, "retrain")]));
        push(&engine, &values(50, 0.0), T0);
        push(&engine, &values(19, 10.0), T0);
        let out = evaluate(&engine, T0 + MINUTE);
        assert_eq!(out.len(), 1, "{out:#?}");
        let s = &out[0];
        assert_eq!((s.reference_samples, s.current_samples), (50, 19));
        assert_eq!((s.statistic, s.p_value), (None, None));
        assert_eq!((s.status, s.since_ms), (Status::Stable, None));
        assert_eq!(recorder.take(), vec![]);

        // One more value reaches min_samples: the same data now gives a verdict.
        push(&engine, &[10.5], T0 + MINUTE);
        let out = evaluate(&engine, T0 + 2 * MINUTE);
        assert_eq!(out[0].current_samples, 20);
        assert_eq!(out[0].status, Status::Drifted);
        assert_eq!(recorder.take().len(), 1);
    }
}
