//! Validated rule and config types: built only by `config::parse`/`config::service`, they cannot hold a bad state.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::config::selector::Selector;
pub use crate::config::template::BodyTemplate;
pub use crate::detect::binned::BinnedTest;
use crate::detect::budget::{Correction, Level};
use crate::detect::control::CusumSpec;
use crate::detect::ema::EmaSpec;
use crate::detect::ks::{Alternative, Method};
pub use crate::labels::Labels;
pub use crate::window::counts::{BinKind, TimeReference};
pub use crate::window::{CurrentWindow, ReferenceWindow};

/// Every rule group of every rule file, in file order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuleSet {
    pub groups: Vec<Group>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub name: String,
    /// Evaluation interval (the group's own, else the config's `global.evaluation_interval`).
    pub interval: Duration,
    /// Group labels, already merged into every rule's `labels` (rule wins on a clash).
    pub labels: Labels,
    pub rules: Vec<Rule>,
    /// The file the group came from, as given (for messages and `/api/v1/rules`).
    pub file: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub name: String,
    pub selector: Selector,
    /// `by:` pooling labels; `None` evaluates each matching series on its own.
    pub by: Option<Vec<String>>,
    pub detector: DetectorSpec,
    /// Below this many samples in either window: no verdict.
    pub min_samples: usize,
    pub for_: Duration,
    pub keep_firing_for: Duration,
    /// Group labels merged with the rule's own labels.
    pub labels: Labels,
    /// Annotation templates (`{{ $labels.x }}`, `{{ $value }}`), not yet expanded.
    pub annotations: Labels,
    pub webhooks: Vec<String>,
    /// `share:`: the rule as a whole is drifted while at least this share of its series is.
    pub share: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum DetectorSpec {
    Ks(KsSpec),
    Ema(EmaSpec),
    Cusum(CusumSpec),
    /// A `histogram:` or `categories:` rule.
    Counts(CountSpec),
}

impl DetectorSpec {
    pub fn name(&self) -> &'static str {
        match self {
            DetectorSpec::Ks(spec) => spec.test.name(),
            DetectorSpec::Counts(spec) => spec.test.name(),
            DetectorSpec::Ema(_) => "ema",
            DetectorSpec::Cusum(_) => "cusum",
        }
    }
}

/// The two-sample test of a raw-value rule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ValueTest {
    /// `scipy.stats.ks_2samp`.
    Ks {
        alternative: Alternative,
        method: Method,
    },
    /// `scipy.stats.cramervonmises_2samp` (method auto).
    Cvm,
    /// `scipy.stats.anderson_ksamp` (midrank), its p-value carried on below SciPy's floor.
    Anderson,
    /// A test of counts, on `bins` bins cut at the reference's quantiles.
    Binned { test: BinnedTest, bins: usize },
    /// `scipy.stats.wasserstein_distance`: no p-value, compared with `threshold`.
    Wasserstein,
    /// `scipy.stats.energy_distance`: no p-value, compared with `threshold`.
    Energy,
}

impl ValueTest {
    pub fn name(&self) -> &'static str {
        match self {
            ValueTest::Ks { .. } => "ks",
            ValueTest::Cvm => "cvm",
            ValueTest::Anderson => "anderson",
            ValueTest::Binned { test, .. } => test.name(),
            ValueTest::Wasserstein => "wasserstein",
            ValueTest::Energy => "energy",
        }
    }
}

/// A raw-value rule: two windows of values and a two-sample test with a p-value (`ks`,
/// `cvm` or `anderson`).
#[derive(Debug, Clone, PartialEq)]
pub struct KsSpec {
    pub test: ValueTest,
    pub reference: ReferenceWindow,
    pub current: CurrentWindow,
    /// The smaller sizes of `current: {last: [..]}`, ascending; the largest is `current`.
    /// Each is tested against the same reference, and the level is split evenly across all
    /// the sizes (Bonferroni). Empty for `{last: N}` and `{duration: ..}`.
    pub smaller: Vec<usize>,
    /// What a p-value is compared with: `alpha:`, or the level a `false_alarms:` budget
    /// gives (the default, 1/30d).
    pub level: Level,
    /// Across the rule's series tested at one evaluation.
    pub correction: Correction,
    /// An effect-size floor: with evidence, D >= this is drifted, else warning. `None`:
    /// evidence alone is drifted.
    pub statistic: Option<f64>,
    /// What a test without a p-value (a distance) compares its statistic with.
    pub threshold: Option<f64>,
}

/// A `histogram:` or `categories:` rule: two windows in time of counts per bucket or
/// category, and a test of counts.
#[derive(Debug, Clone, PartialEq)]
pub struct CountSpec {
    pub kind: BinKind,
    /// The label naming the bin: `le`, or `category_label`.
    pub bin_label: String,
    pub test: BinnedTest,
    pub reference: TimeReference,
    pub current: Duration,
    pub level: Level,
    pub correction: Correction,
    /// The effect-size floor of a test with a p-value.
    pub statistic: Option<f64>,
    /// What a distance (`psi`, `jensenshannon`, `hellinger`) is compared with.
    pub threshold: Option<f64>,
}

impl KsSpec {
    /// Tests per series at one evaluation: one per current-window size.
    pub fn sizes(&self) -> usize {
        self.smaller.len() + 1
    }
}

/// The service config (`driftgauge.yml`), validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub evaluation_interval: Duration,
    /// Rule file globs, already made absolute against the config file's folder.
    pub rule_files: Vec<String>,
    pub webhooks: BTreeMap<String, WebhookConfig>,
    pub limits: Limits,
    /// Prometheus-style scrape targets (`scrape_configs`), in file order.
    pub scrape_configs: Vec<ScrapeConfig>,
    /// PromQL HTTP API sources (`query_sources`), in file order.
    pub query_sources: Vec<QuerySource>,
    /// `remote_write_receiver`: the HA tracker of `POST /api/v1/write`, when configured.
    pub remote_write_ha: Option<HaTrackerConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            evaluation_interval: Duration::from_secs(15),
            rule_files: vec!["rules/*.yml".to_string()],
            webhooks: BTreeMap::new(),
            limits: Limits::default(),
            scrape_configs: Vec::new(),
            query_sources: Vec::new(),
            remote_write_ha: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct WebhookConfig {
    pub url: String,
    pub timeout: Duration,
    pub headers: Labels,
    /// Bearer token read from `bearer_token_file` at load time.
    pub bearer_token: Option<String>,
    /// Decoded signing key (the bytes after `whsec_`, base64-decoded) from `signing_secret_file`.
    pub signing_key: Option<Vec<u8>>,
    pub send_resolved: bool,
    pub cooldown: Duration,
    /// JSON object merged into the payload as `extra`.
    pub extra: Option<serde_json::Map<String, serde_json::Value>>,
    /// First retry delay (`min_backoff`, default 1s); doubles per attempt, with jitter.
    pub min_backoff: Duration,
    /// Cap of the retry delay (`max_backoff`, default 5m).
    pub max_backoff: Duration,
    /// Attempts in flight to this webhook at once, hence connections to it, at most
    /// (`max_connections`, default [`WebhookConfig::DEFAULT_MAX_CONNECTIONS`], at most
    /// [`WebhookConfig::MAX_CONNECTIONS_LIMIT`]).
    pub max_connections: usize,
    /// `method` (default `POST`).
    pub method: HttpMethod,
    /// `body_template`: the body sent instead of the payload, expanded from the payload at
    /// each attempt (`None`: the payload itself).
    pub body_template: Option<BodyTemplate>,
    /// `success_codes`: the statuses that mean delivered (empty: any 2xx).
    pub success_codes: Vec<u16>,
    /// `success_body_match`: what the answer's JSON body must hold besides a success status.
    pub success_body_match: Option<BodyMatch>,
    /// `secret_files`, read at load: name → secret, `$secrets.<name>` in `body_template`.
    pub secrets: BTreeMap<String, String>,
}

/// The HTTP method of a webhook call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HttpMethod {
    #[default]
    Post,
    Put,
    Patch,
}

impl HttpMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            HttpMethod::Post => "POST",
            HttpMethod::Put => "PUT",
            HttpMethod::Patch => "PATCH",
        }
    }
}

/// `success_body_match`: the value at `json_pointer` (RFC 6901) in the answer's JSON body must
/// be one of `one_of` (compared as text), or the call failed for good.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyMatch {
    pub json_pointer: String,
    pub one_of: Vec<String>,
}

impl WebhookConfig {
    /// `max_connections` when the config does not say.
    pub const DEFAULT_MAX_CONNECTIONS: usize = 8;
    /// The largest `max_connections` the config accepts.
    pub const MAX_CONNECTIONS_LIMIT: usize = 256;
}

#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    pub max_series: usize,
    /// Series (or `by` pools) one rule evaluates, at most.
    pub max_series_per_rule: usize,
    pub max_body_bytes: usize,
    /// Values held by one window (reference or current) at most.
    pub max_window_values: usize,
    /// Window values held by all rules together, at most: the memory budget (about 16 bytes
    /// per value of a rolling window, 8 per value of a frozen reference).
    pub max_held_values: usize,
    /// A series no source has fed for this long leaves `/metrics`.
    pub series_idle_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_series: 100_000,
            max_series_per_rule: 10_000,
            max_body_bytes: 16 * 1024 * 1024,
            max_window_values: 1_000_000,
            max_held_values: 50_000_000,
            series_idle_timeout: Duration::from_secs(24 * 3600),
        }
    }
}

/// One `scrape_configs` entry: targets scraped like Prometheus does; samples get `job` and
/// `instance` labels.
#[derive(Debug, Clone, PartialEq)]
pub struct ScrapeConfig {
    pub job_name: String,
    /// Default 1m, as in Prometheus.
    pub scrape_interval: Duration,
    /// Default 10s, never more than `scrape_interval`.
    pub scrape_timeout: Duration,
    /// Default `/metrics`.
    pub metrics_path: String,
    pub scheme: Scheme,
    /// Bearer token read from `bearer_token_file` at load time.
    pub bearer_token: Option<String>,
    pub static_configs: Vec<StaticConfig>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scheme {
    #[default]
    Http,
    Https,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct StaticConfig {
    /// `host:port` targets.
    pub targets: Vec<String>,
    /// Labels added to every sample of these targets.
    pub labels: Labels,
}

/// One `query_sources` entry: a Prometheus-compatible HTTP API queried on an interval.
#[derive(Debug, Clone, PartialEq)]
pub struct QuerySource {
    pub name: String,
    /// Base URL (`http` or `https`, with a host).
    pub url: String,
    /// Default: `global.evaluation_interval`.
    pub interval: Duration,
    /// Default 10s.
    pub timeout: Duration,
    pub headers: Labels,
    pub queries: Vec<Query>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// Metric name the results are stored under (with the result's labels).
    pub record: String,
    /// PromQL expression, sent as is.
    pub expr: String,
}

/// `remote_write_receiver: {ha_cluster_label, ha_replica_label, ha_failover_timeout,
/// ha_max_clusters}`: remote write from HA pairs, deduplicated as Mimir's HA tracker does.
#[derive(Debug, Clone, PartialEq)]
pub struct HaTrackerConfig {
    /// The label naming the cluster (an HA pair), e.g. `cluster`; kept on the samples.
    pub cluster_label: String,
    /// The label naming the replica within the cluster, e.g. `__replica__`; dropped.
    pub replica_label: String,
    /// After this long without samples from the elected replica, the next replica heard
    /// from is elected. Default 30s.
    pub failover_timeout: Duration,
    /// Clusters tracked at most (default 100); samples of a further cluster are refused.
    pub max_clusters: usize,
}

impl HaTrackerConfig {
    pub const DEFAULT_FAILOVER_TIMEOUT: Duration = Duration::from_secs(30);
    pub const DEFAULT_MAX_CLUSTERS: usize = 100;
}
