//! Live sources that pull: Prometheus-style scrapes and PromQL queries (and `ha`, the remote
//! write HA tracker the receiver consults). Sources reach the engine
//! only through the [`Sink`] trait and follow reloads through a `watch` of the config, which
//! the engine publishes when it applies one; they never name the engine.

pub mod ha;
pub mod query;
pub mod scrape;

use std::sync::Arc;

use tokio::sync::watch;

use crate::config::model::Config;
use crate::labels::{RejectReason, SeriesSamples};
use crate::telemetry::Telemetry;

/// Why a whole batch was refused. Nothing of a refused batch is applied.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum IngestError {
    #[error("series limit reached: this batch would hold {would_hold} series, over limits.max_series={limit}")]
    TooManySeries { limit: usize, would_hold: usize },
    #[error("series limit of rule {group}/{rule} reached: this batch would give it {would_hold} series, over limits.max_series_per_rule={limit}")]
    TooManySeriesForRule {
        group: String,
        rule: String,
        limit: usize,
        would_hold: usize,
    },
    #[error("memory budget reached: this batch would hold {would_hold} window values, over limits.max_held_values={limit}")]
    OverMemoryBudget { limit: usize, would_hold: usize },
    /// A timed sample older than the newest one its window (rule and series, or `by` pool)
    /// already took: windows and EMAs take samples in time order.
    #[error("samples[{index}]: timestamp {sample_ms} of {series} is before {newest_ms}, the newest sample rule {rule} already took for it (samples must come in time order)")]
    OutOfOrder {
        /// The batch entry.
        index: usize,
        series: String,
        rule: String,
        sample_ms: i64,
        newest_ms: i64,
    },
}

impl IngestError {
    /// The `reason` label of `driftgauge_samples_rejected_total`.
    pub fn reason(&self) -> RejectReason {
        match self {
            IngestError::OverMemoryBudget { .. } => RejectReason::MemoryLimit,
            IngestError::TooManySeries { .. } | IngestError::TooManySeriesForRule { .. } => {
                RejectReason::SeriesLimit
            }
            IngestError::OutOfOrder { .. } => RejectReason::BadTimestamp,
        }
    }
}

/// Where samples go: the engine implements it. Calls take locks and may take a while on
/// large batches: call them off the async workers.
pub trait Sink: Send + Sync + 'static {
    /// Applies a whole validated batch, or nothing when it would pass a limit. Returns the
    /// number of values taken.
    fn ingest(
        &self,
        batch: &[SeriesSamples],
        source: &str,
        now_ms: i64,
    ) -> Result<usize, IngestError>;

    /// [`ingest`](Self::ingest) of a scrape: `batch` (counters as rates) and `counters`
    /// (their cumulative values, for the rules that count increases themselves), applied
    /// together or not at all.
    fn ingest_scrape(
        &self,
        batch: &[SeriesSamples],
        counters: &[SeriesSamples],
        source: &str,
        now_ms: i64,
    ) -> Result<usize, IngestError> {
        let _ = counters;
        self.ingest(batch, source, now_ms)
    }

    /// The span `[start_ms, end_ms)` of history that rules taking `record` pin as their
    /// reference (`reference: {range: ...}`), when there is one: a query source's warm-up
    /// reads it first, so a known-good period driftgauge did not see still fills them.
    fn reference_span(&self, record: &str) -> Option<(i64, i64)> {
        let _ = record;
        None
    }

    /// Should a query source warm up `record` from history? When at least one rule can take
    /// series of that name and every such rule is still empty.
    fn wants_warm_up(&self, record: &str) -> bool;

    /// The generation of rules in force now (a new one after every applied reload).
    fn generation(&self) -> u64 {
        0
    }

    /// [`ingest`](Self::ingest) for samples read while generation `as_of` was in force: rules
    /// a later reload added do not take them (they are warmed from history instead).
    fn ingest_as_of(
        &self,
        batch: &[SeriesSamples],
        source: &str,
        now_ms: i64,
        as_of: u64,
    ) -> Result<usize, IngestError> {
        let _ = as_of;
        self.ingest(batch, source, now_ms)
    }
}

/// What a source runs with: where its samples go, the service counters, and the config as
/// it is now (a new value after every applied reload).
#[derive(Clone)]
pub struct Context {
    pub sink: Arc<dyn Sink>,
    pub telemetry: Arc<Telemetry>,
    pub config: watch::Receiver<Arc<Config>>,
}

impl Context {
    /// The config as it is now.
    pub fn config(&self) -> Arc<Config> {
        Arc::clone(&self.config.borrow())
    }
}
