//! The service config (`driftgauge.yml`): spanned YAML → validated [`Config`], every error at once.
//!
//! Secrets (`bearer_token_file`, `signing_secret_file`) are read through a [`SecretSource`],
//! so tests fill a map instead of the file system; their paths, and `rule_files` globs, are
//! relative to the config file's folder.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use marked_yaml::types::MarkedMappingNode;
use marked_yaml::{Marker, Node};

use crate::config::diag::{self, io_reason, quote_path, Diagnostic};
use crate::config::duration::format_duration;
use crate::config::model::{
    BodyMatch, BodyTemplate, Config, HaTrackerConfig, HttpMethod, Labels, Limits, Query,
    QuerySource, Scheme, ScrapeConfig, StaticConfig, WebhookConfig,
};
use crate::config::parse::sort;
use crate::config::selector::is_valid_metric_name;
use crate::config::template::{Kind as TemplateKind, Template};
use crate::config::yaml::{self, describe, get, key_path, node_marker, opt_or, Cx};
use crate::formats::excerpt;

/// Where secret files come from.
pub trait SecretSource {
    fn read(&self, path: &Path) -> std::io::Result<String>;
}

/// Secrets from the file system.
#[derive(Debug, Clone, Copy, Default)]
pub struct FsSecrets;

impl SecretSource for FsSecrets {
    fn read(&self, path: &Path) -> std::io::Result<String> {
        super::diag::read_text(path, super::diag::MAX_TEXT_FILE)
    }
}

/// Parses the service config from its text. `origin` names the file in diagnostics; `base_dir`
/// is the folder `rule_files` globs and secret files are relative to.
pub fn parse_config(
    text: &str,
    origin: &str,
    base_dir: &Path,
    secrets: &dyn SecretSource,
) -> Result<Config, Vec<Diagnostic>> {
    let mut parsed = parse_partial(text, origin, base_dir, secrets);
    diag::finish_file(&mut parsed.diags, parsed.hidden);
    if parsed.diags.is_empty() {
        Ok(parsed.config)
    } else {
        Err(parsed.diags)
    }
}

/// A best-effort config even when there are errors (bad parts keep their defaults), so the
/// rule files it names can still be checked in the same run.
#[derive(Debug)]
pub(crate) struct ParsedConfig {
    pub config: Config,
    /// Every webhook name written, including those of webhooks with errors.
    pub webhook_names: BTreeSet<String>,
    /// Where each `rule_files` entry was written, parallel to `config.rule_files`.
    pub rule_file_markers: Vec<Option<Marker>>,
    /// The first diagnostics, sorted by position, and the number of those left out.
    pub diags: Vec<Diagnostic>,
    pub hidden: usize,
}

const TOP_KEYS: &[&str] = &[
    "global",
    "rule_files",
    "webhooks",
    "limits",
    "scrape_configs",
    "query_sources",
    "remote_write_receiver",
];
const RECEIVER_KEYS: &[&str] = &[
    "ha_cluster_label",
    "ha_replica_label",
    "ha_failover_timeout",
    "ha_max_clusters",
];
const WEBHOOK_KEYS: &[&str] = &[
    "url",
    "timeout",
    "headers",
    "bearer_token_file",
    "signing_secret_file",
    "send_resolved",
    "cooldown",
    "extra",
    "min_backoff",
    "max_backoff",
    "max_connections",
    "method",
    "body_template",
    "success_codes",
    "success_body_match",
    "secret_files",
    "headers_files",
];
const LIMIT_KEYS: &[&str] = &[
    "max_series",
    "max_series_per_rule",
    "max_body_bytes",
    "max_window_values",
    "max_held_values",
    "series_idle_timeout",
];
const SCRAPE_KEYS: &[&str] = &[
    "job_name",
    "scrape_interval",
    "scrape_timeout",
    "metrics_path",
    "scheme",
    "bearer_token_file",
    "static_configs",
];
const SOURCE_KEYS: &[&str] = &["name", "url", "interval", "timeout", "headers", "queries"];

/// `rule_files` when the config has none: relative to the config's folder, as any glob there.
const DEFAULT_RULE_FILES: &str = "rules/*.yml";

/// Headers driftgauge sets itself on webhook calls.
const RESERVED_HEADERS: &[&str] = &[
    "content-type",
    "content-length",
    "host",
    "idempotency-key",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
];

pub(crate) fn parse_partial(
    text: &str,
    origin: &str,
    base_dir: &Path,
    secrets: &dyn SecretSource,
) -> ParsedConfig {
    let text = yaml::strip_bom(text);
    let mut out = ParsedConfig {
        config: Config::default(),
        webhook_names: BTreeSet::new(),
        rule_file_markers: vec![None],
        diags: Vec::new(),
        hidden: 0,
    };
    out.config.rule_files = vec![Walker { base_dir, secrets }.join_glob(DEFAULT_RULE_FILES)];
    let root = match yaml::parse(origin, text) {
        Ok(root) => root,
        Err(d) => {
            out.diags.push(d);
            return out;
        }
    };
    let mut cx = Cx::new(origin, text);
    let w = Walker { base_dir, secrets };
    if let Some(top) = cx.mapping("config", &root) {
        w.config(&mut cx, top, &mut out);
    }
    (out.diags, out.hidden) = cx.finish();
    sort(&mut out.diags);
    out
}

struct Walker<'a> {
    base_dir: &'a Path,
    secrets: &'a dyn SecretSource,
}

impl Walker<'_> {
    fn config(&self, cx: &mut Cx, top: &MarkedMappingNode, out: &mut ParsedConfig) {
        cx.check_keys(top, TOP_KEYS, "config");
        let config = &mut out.config;
        if let Some(global) = get(top, "global").and_then(|n| cx.mapping("global", n)) {
            cx.check_keys(global, &["evaluation_interval"], "global");
            if let Some(d) = get(global, "evaluation_interval")
                .and_then(|n| cx.positive_duration("evaluation_interval", n))
            {
                config.evaluation_interval = d;
            }
        }
        if let Some(node) = get(top, "rule_files") {
            if let Some(items) = cx.string_list("rule_files", node) {
                config.rule_files.clear();
                out.rule_file_markers.clear();
                for (pattern, n) in items {
                    if let Err(e) = glob::Pattern::new(&pattern) {
                        cx.at_key(
                            n,
                            format!("rule_files: invalid glob {}: {}", excerpt(&pattern), e.msg),
                        );
                        continue;
                    }
                    config.rule_files.push(self.join_glob(&pattern));
                    out.rule_file_markers.push(n.span().start().copied());
                }
            }
        }
        if let Some(map) = get(top, "webhooks").and_then(|n| cx.mapping("webhooks", n)) {
            for (name, node) in map.iter() {
                out.webhook_names.insert(name.as_str().to_string());
                if name.as_str().trim().is_empty() {
                    cx.at_key(name, "webhooks: webhook names must not be empty");
                    continue;
                }
                if let Some(wh) = self.webhook(cx, name.as_str(), node) {
                    config.webhooks.insert(name.as_str().to_string(), wh);
                }
            }
        }
        if let Some(map) = get(top, "limits").and_then(|n| cx.mapping("limits", n)) {
            config.limits = limits(cx, map);
        }
        if let Some(map) =
            get(top, "remote_write_receiver").and_then(|n| cx.mapping("remote_write_receiver", n))
        {
            config.remote_write_ha = remote_write_receiver(cx, map);
        }
        if let Some(seq) = get(top, "scrape_configs").and_then(|n| cx.sequence("scrape_configs", n))
        {
            let mut seen = HashMap::new();
            for item in seq.iter() {
                if let Some(sc) = self.scrape_config(cx, item, &mut seen) {
                    config.scrape_configs.push(sc);
                }
            }
        }
        if let Some(seq) = get(top, "query_sources").and_then(|n| cx.sequence("query_sources", n)) {
            let mut seen = HashMap::new();
            let default_interval = config.evaluation_interval;
            for item in seq.iter() {
                if let Some(qs) = self.query_source(cx, item, default_interval, &mut seen) {
                    config.query_sources.push(qs);
                }
            }
        }
    }

    /// A `rule_files` glob made relative to the config's folder (whose own name is escaped).
    fn join_glob(&self, pattern: &str) -> String {
        if Path::new(pattern).is_absolute() || self.base_dir.as_os_str().is_empty() {
            return pattern.to_string();
        }
        let base = glob::Pattern::escape(&self.base_dir.to_string_lossy());
        PathBuf::from(base)
            .join(pattern)
            .to_string_lossy()
            .into_owned()
    }

    fn webhook(&self, cx: &mut Cx, name: &str, node: &Node) -> Option<WebhookConfig> {
        let map = cx.mapping(&key_path("webhooks", name), node)?;
        let before = cx.errors();
        let what = format!("webhook {}", excerpt(name));
        cx.check_keys(map, WEBHOOK_KEYS, &what);
        let url = match get(map, "url") {
            Some(n) => http_url(cx, "url", n),
            None => {
                cx.missing(map, "url", &what);
                None
            }
        };
        let timeout = opt_or(cx, map, "timeout", Duration::from_secs(10), |cx, n| {
            cx.positive_duration("timeout", n)
        });
        let bearer_token = match get(map, "bearer_token_file") {
            Some(n) => self
                .secret(cx, "bearer_token_file", n)
                .and_then(|t| header_safe_token(cx, n, t))
                .map(Some),
            None => Some(None),
        };
        let headers = opt_or(cx, map, "headers", Labels::new(), |cx, n| {
            headers(
                cx,
                n,
                RESERVED_HEADERS,
                get(map, "bearer_token_file").is_some(),
            )
        });
        let headers_files = match get(map, "headers_files") {
            Some(n) => self.headers_files(
                cx,
                n,
                get(map, "headers"),
                get(map, "bearer_token_file").is_some(),
            ),
            None => Some(Labels::new()),
        };
        let method = opt_or(cx, map, "method", HttpMethod::Post, |cx, n| {
            match cx.string("method", n)?.as_str() {
                "POST" => Some(HttpMethod::Post),
                "PUT" => Some(HttpMethod::Put),
                "PATCH" => Some(HttpMethod::Patch),
                other => {
                    cx.at(
                        n,
                        format!(
                            "method: expected POST, PUT or PATCH, got {}",
                            excerpt(other)
                        ),
                    );
                    None
                }
            }
        });
        let secrets = match get(map, "secret_files") {
            Some(n) => self.secret_files(cx, n),
            None => Some(BTreeMap::new()),
        };
        let body_template = match get(map, "body_template") {
            Some(n) => {
                let names = secrets
                    .as_ref()
                    .map(|s| s.keys().cloned().collect::<BTreeSet<String>>());
                body_template(cx, "body_template", n, names.as_ref()).map(Some)
            }
            None => Some(None),
        };
        let success_codes = match get(map, "success_codes") {
            Some(n) => success_codes(cx, n),
            None => Some(Vec::new()),
        };
        let success_body_match = match get(map, "success_body_match") {
            Some(n) => body_match(cx, n).map(Some),
            None => Some(None),
        };
        let signing_key = match get(map, "signing_secret_file") {
            Some(n) => self.signing_key(cx, n).map(Some),
            None => Some(None),
        };
        let send_resolved = opt_or(cx, map, "send_resolved", false, |cx, n| {
            cx.boolean("send_resolved", n)
        });
        let cooldown = opt_or(cx, map, "cooldown", Duration::ZERO, |cx, n| {
            cx.duration("cooldown", n)
        });
        let extra = match get(map, "extra") {
            Some(n) => match n {
                Node::Mapping(m) => Some(Some(mapping_to_json(m))),
                _ => {
                    cx.at(n, format!("extra: expected a mapping, got {}", describe(n)));
                    None
                }
            },
            None => Some(None),
        };
        let min_backoff = opt_or(cx, map, "min_backoff", Duration::from_secs(1), |cx, n| {
            cx.positive_duration("min_backoff", n)
        });
        let max_backoff = opt_or(cx, map, "max_backoff", Duration::from_secs(300), |cx, n| {
            cx.positive_duration("max_backoff", n)
        });
        let max_connections = opt_or(
            cx,
            map,
            "max_connections",
            WebhookConfig::DEFAULT_MAX_CONNECTIONS,
            |cx, n| {
                let limit = WebhookConfig::MAX_CONNECTIONS_LIMIT as u64;
                let n = cx.positive_int("max_connections", n, limit)?;
                usize::try_from(n).ok()
            },
        );
        if let (Some(min), Some(max)) = (min_backoff, max_backoff) {
            if min > max {
                let at = get(map, "min_backoff")
                    .or(get(map, "max_backoff"))
                    .and_then(node_marker);
                cx.at_marker(
                    at,
                    format!(
                        "min_backoff ({}) is greater than max_backoff ({})",
                        format_duration(min),
                        format_duration(max)
                    ),
                );
            }
        }
        if cx.errors() > before {
            return None;
        }
        Some(WebhookConfig {
            url: url?,
            timeout: timeout?,
            headers: {
                let mut all = headers?;
                all.extend(headers_files?);
                all
            },
            bearer_token: bearer_token?,
            signing_key: signing_key?,
            send_resolved: send_resolved?,
            cooldown: cooldown?,
            extra: extra?,
            min_backoff: min_backoff?,
            max_backoff: max_backoff?,
            max_connections: max_connections?,
            method: method?,
            body_template: body_template?,
            success_codes: success_codes?,
            success_body_match: success_body_match?,
            secrets: secrets?,
        })
    }

    /// `headers_files: {Header-Name: path}`: header values read from files (trimmed), for
    /// credentials that must not sit in the config (`Authorization: Basic …`, an API key).
    fn headers_files(
        &self,
        cx: &mut Cx,
        node: &Node,
        plain: Option<&Node>,
        has_bearer: bool,
    ) -> Option<Labels> {
        let map = cx.mapping("headers_files", node)?;
        let before = cx.errors();
        let plain = plain.and_then(Node::as_mapping);
        let mut out = Labels::new();
        for (k, v) in map.iter() {
            let name = k.as_str();
            let lower = name.to_ascii_lowercase();
            let key = key_path("headers_files", name);
            if name.is_empty() || !name.bytes().all(is_token_byte) {
                cx.at_key(
                    k,
                    format!("headers_files: invalid header name {}", excerpt(name)),
                );
            } else if RESERVED_HEADERS.contains(&lower.as_str()) {
                cx.at_key(
                    k,
                    format!(
                        "headers_files: {} is set by driftgauge and cannot be configured",
                        excerpt(name)
                    ),
                );
            } else if lower == "authorization" && has_bearer {
                cx.at_key(
                    k,
                    format!(
                        "headers_files: {} conflicts with bearer_token_file",
                        excerpt(name)
                    ),
                );
            } else if plain
                .is_some_and(|p| p.iter().any(|(h, _)| h.as_str().eq_ignore_ascii_case(name)))
            {
                cx.at_key(
                    k,
                    format!("headers_files: {} is also in headers", excerpt(name)),
                );
            } else if let Some(value) = self.secret(cx, &key, v) {
                if value.chars().any(|c| c.is_control() && c != '\t') {
                    cx.at(
                        v,
                        format!(
                            "{key}: the header value must be one line without control characters"
                        ),
                    );
                } else {
                    out.insert(name.to_string(), value);
                }
            }
        }
        (cx.errors() == before).then_some(out)
    }

    /// `secret_files: {name: path}`: secrets read from files (trimmed), `$secrets.<name>` in
    /// `body_template` (for APIs that take a token in the body, as GitLab's trigger does).
    fn secret_files(&self, cx: &mut Cx, node: &Node) -> Option<BTreeMap<String, String>> {
        let map = cx.mapping("secret_files", node)?;
        let before = cx.errors();
        let mut out = BTreeMap::new();
        for (k, v) in map.iter() {
            let name = k.as_str();
            let ident = name
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !ident {
                cx.at_key(
                    k,
                    format!(
                        "secret_files: {} must be a name of letters, digits and _",
                        excerpt(name)
                    ),
                );
            } else if let Some(secret) = self.secret(cx, &key_path("secret_files", name), v) {
                out.insert(name.to_string(), secret);
            }
        }
        (cx.errors() == before).then_some(out)
    }

    /// Reads a secret file (relative to the config's folder), trimmed; empty is an error.
    fn secret(&self, cx: &mut Cx, key: &str, node: &Node) -> Option<String> {
        let rel = cx.non_empty(key, node)?;
        let path = self.base_dir.join(&rel);
        match self.secrets.read(&path) {
            Ok(text) if text.trim().is_empty() => {
                cx.at(node, format!("{key}: {} is empty", quote_path(&path)));
                None
            }
            Ok(text) => Some(text.trim().to_string()),
            Err(e) => {
                cx.at(
                    node,
                    format!(
                        "{key}: cannot read {}: {}",
                        quote_path(&path),
                        io_reason(&e)
                    ),
                );
                None
            }
        }
    }

    /// `whsec_<base64>` → the decoded key bytes.
    fn signing_key(&self, cx: &mut Cx, node: &Node) -> Option<Vec<u8>> {
        let key = "signing_secret_file";
        let secret = self.secret(cx, key, node)?;
        let Some(b64) = secret.strip_prefix("whsec_") else {
            cx.at(
                node,
                format!("{key}: the secret must have the form whsec_<base64>"),
            );
            return None;
        };
        match base64::engine::general_purpose::STANDARD.decode(b64) {
            Ok(bytes) if !bytes.is_empty() => Some(bytes),
            Ok(_) => {
                cx.at(node, format!("{key}: the secret after whsec_ is empty"));
                None
            }
            Err(e) => {
                cx.at(
                    node,
                    format!("{key}: the secret after whsec_ is not valid base64: {e}"),
                );
                None
            }
        }
    }

    fn scrape_config(
        &self,
        cx: &mut Cx,
        node: &Node,
        seen: &mut HashMap<String, Marker>,
    ) -> Option<ScrapeConfig> {
        let map = cx.mapping("scrape config", node)?;
        let before = cx.errors();
        cx.check_keys(map, SCRAPE_KEYS, "scrape config");
        let job_name = match get(map, "job_name") {
            Some(n) => cx
                .non_empty("job_name", n)
                .filter(|name| unique(cx, seen, "job_name", name, n)),
            None => {
                cx.missing(map, "job_name", "scrape config");
                None
            }
        };
        let scrape_interval = opt_or(
            cx,
            map,
            "scrape_interval",
            Duration::from_secs(60),
            |cx, n| cx.positive_duration("scrape_interval", n),
        );
        let default_timeout = Duration::from_secs(10).min(scrape_interval.unwrap_or(Duration::MAX));
        let scrape_timeout = opt_or(cx, map, "scrape_timeout", default_timeout, |cx, n| {
            cx.positive_duration("scrape_timeout", n)
        });
        if let (Some(interval), Some(timeout), Some(n)) =
            (scrape_interval, scrape_timeout, get(map, "scrape_timeout"))
        {
            if timeout > interval {
                cx.at(
                    n,
                    format!(
                        "scrape_timeout ({}) is greater than scrape_interval ({})",
                        format_duration(timeout),
                        format_duration(interval)
                    ),
                );
            }
        }
        let metrics_path = opt_or(cx, map, "metrics_path", "/metrics".to_string(), |cx, n| {
            let p = cx.string("metrics_path", n)?;
            if p.starts_with('/') {
                Some(p)
            } else {
                cx.at(
                    n,
                    format!("metrics_path: must start with \"/\", got {}", excerpt(&p)),
                );
                None
            }
        });
        let scheme = opt_or(cx, map, "scheme", Scheme::Http, |cx, n| {
            match cx.string("scheme", n)?.as_str() {
                "http" => Some(Scheme::Http),
                "https" => Some(Scheme::Https),
                other => {
                    cx.at(
                        n,
                        format!("scheme: expected http or https, got {}", excerpt(other)),
                    );
                    None
                }
            }
        });
        let bearer_token = match get(map, "bearer_token_file") {
            Some(n) => self
                .secret(cx, "bearer_token_file", n)
                .and_then(|t| header_safe_token(cx, n, t))
                .map(Some),
            None => Some(None),
        };
        let mut static_configs = Vec::new();
        if let Some(seq) = get(map, "static_configs").and_then(|n| cx.sequence("static_configs", n))
        {
            for item in seq.iter() {
                if let Some(sc) = static_config(cx, item) {
                    static_configs.push(sc);
                }
            }
        }
        if cx.errors() > before {
            return None;
        }
        Some(ScrapeConfig {
            job_name: job_name?,
            scrape_interval: scrape_interval?,
            scrape_timeout: scrape_timeout?,
            metrics_path: metrics_path?,
            scheme: scheme?,
            bearer_token: bearer_token?,
            static_configs,
        })
    }

    fn query_source(
        &self,
        cx: &mut Cx,
        node: &Node,
        default_interval: Duration,
        seen: &mut HashMap<String, Marker>,
    ) -> Option<QuerySource> {
        let map = cx.mapping("query source", node)?;
        let before = cx.errors();
        cx.check_keys(map, SOURCE_KEYS, "query source");
        let name = match get(map, "name") {
            Some(n) => cx
                .non_empty("name", n)
                .filter(|name| unique(cx, seen, "query source name", name, n)),
            None => {
                cx.missing(map, "name", "query source");
                None
            }
        };
        let url = match get(map, "url") {
            Some(n) => http_url(cx, "url", n),
            None => {
                cx.missing(map, "url", "query source");
                None
            }
        };
        let interval = opt_or(cx, map, "interval", default_interval, |cx, n| {
            cx.positive_duration("interval", n)
        });
        let timeout = opt_or(cx, map, "timeout", Duration::from_secs(10), |cx, n| {
            cx.positive_duration("timeout", n)
        });
        let headers = opt_or(cx, map, "headers", Labels::new(), |cx, n| {
            headers(cx, n, &[], false)
        });
        let mut queries = Vec::new();
        match get(map, "queries") {
            Some(n) => {
                if let Some(seq) = cx.sequence("queries", n) {
                    if seq.is_empty() {
                        cx.at(n, "queries: must not be empty");
                    }
                    let mut records = HashMap::new();
                    for item in seq.iter() {
                        if let Some(q) = query(cx, item, &mut records) {
                            queries.push(q);
                        }
                    }
                }
            }
            None => cx.missing(map, "queries", "query source"),
        }
        if cx.errors() > before {
            return None;
        }
        Some(QuerySource {
            name: name?,
            url: url?,
            interval: interval?,
            timeout: timeout?,
            headers: headers?,
            queries,
        })
    }
}

fn limits(cx: &mut Cx, map: &MarkedMappingNode) -> Limits {
    cx.check_keys(map, LIMIT_KEYS, "limits");
    let mut limits = Limits::default();
    let max = usize::MAX as u64;
    let int = |cx: &mut Cx, key: &str, slot: &mut usize| {
        if let Some(v) = get(map, key).and_then(|n| cx.positive_int(key, n, max)) {
            *slot = usize::try_from(v).unwrap_or(usize::MAX);
        }
    };
    int(cx, "max_series", &mut limits.max_series);
    int(cx, "max_series_per_rule", &mut limits.max_series_per_rule);
    int(cx, "max_body_bytes", &mut limits.max_body_bytes);
    int(cx, "max_window_values", &mut limits.max_window_values);
    int(cx, "max_held_values", &mut limits.max_held_values);
    if let Some(d) =
        get(map, "series_idle_timeout").and_then(|n| cx.positive_duration("series_idle_timeout", n))
    {
        limits.series_idle_timeout = d;
    }
    limits
}

/// `remote_write_receiver`: the HA tracker is on when both label names are given.
fn remote_write_receiver(cx: &mut Cx, map: &MarkedMappingNode) -> Option<HaTrackerConfig> {
    cx.check_keys(map, RECEIVER_KEYS, "remote_write_receiver");
    let label = |cx: &mut Cx, key: &str| {
        let node = get(map, key)?;
        let name = cx.string(key, node)?;
        if !crate::labels::is_valid_label_name(&name) || name == "__name__" {
            cx.at(
                node,
                format!("{key}: invalid label name {}", excerpt(&name)),
            );
            return None;
        }
        Some(name)
    };
    let cluster = label(cx, "ha_cluster_label");
    let replica = label(cx, "ha_replica_label");
    let failover_timeout =
        get(map, "ha_failover_timeout").map(|n| cx.positive_duration("ha_failover_timeout", n));
    let max_clusters =
        get(map, "ha_max_clusters").map(|n| cx.positive_int("ha_max_clusters", n, 1_000_000));
    let given = |key: &str| get(map, key).is_some();
    let (has_cluster, has_replica) = (given("ha_cluster_label"), given("ha_replica_label"));
    if !has_cluster || !has_replica {
        if has_cluster || has_replica || failover_timeout.is_some() || max_clusters.is_some() {
            if let Some((key, _)) = map.iter().next() {
                cx.at_key(
                    key,
                    "remote_write_receiver: the HA tracker needs both ha_cluster_label and ha_replica_label",
                );
            }
        }
        return None;
    }
    let (cluster, replica) = (cluster?, replica?);
    if cluster == replica {
        if let Some(n) = get(map, "ha_replica_label") {
            cx.at(n, "ha_replica_label: must differ from ha_cluster_label");
        }
        return None;
    }
    Some(HaTrackerConfig {
        cluster_label: cluster,
        replica_label: replica,
        failover_timeout: match failover_timeout {
            Some(d) => d?,
            None => HaTrackerConfig::DEFAULT_FAILOVER_TIMEOUT,
        },
        max_clusters: match max_clusters {
            Some(n) => usize::try_from(n?).ok()?,
            None => HaTrackerConfig::DEFAULT_MAX_CLUSTERS,
        },
    })
}

fn static_config(cx: &mut Cx, node: &Node) -> Option<StaticConfig> {
    let map = cx.mapping("static config", node)?;
    let before = cx.errors();
    cx.check_keys(map, &["targets", "labels"], "static config");
    let mut targets = Vec::new();
    match get(map, "targets") {
        Some(n) => {
            for (t, tn) in cx.string_list("targets", n).unwrap_or_default() {
                if is_host_port(&t) {
                    targets.push(t);
                } else {
                    cx.at_key(
                        tn,
                        format!(
                            "targets: invalid target {}, expected host:port",
                            excerpt(&t)
                        ),
                    );
                }
            }
        }
        None => cx.missing(map, "targets", "static config"),
    }
    let labels = opt_or(cx, map, "labels", Labels::new(), |cx, n| {
        cx.string_map("labels", n, true)
    });
    if cx.errors() > before {
        return None;
    }
    Some(StaticConfig {
        targets,
        labels: labels?,
    })
}

fn query(cx: &mut Cx, node: &Node, records: &mut HashMap<String, Marker>) -> Option<Query> {
    let map = cx.mapping("query", node)?;
    let before = cx.errors();
    cx.check_keys(map, &["record", "expr"], "query");
    let record = match get(map, "record") {
        Some(n) => cx.string("record", n).filter(|r| {
            if !is_valid_metric_name(r) {
                cx.at(n, format!("record: invalid metric name {}", excerpt(r)));
                false
            } else {
                unique(cx, records, "record", r, n)
            }
        }),
        None => {
            cx.missing(map, "record", "query");
            None
        }
    };
    let expr = match get(map, "expr") {
        Some(n) => cx.non_empty("expr", n),
        None => {
            cx.missing(map, "expr", "query");
            None
        }
    };
    if cx.errors() > before {
        return None;
    }
    Some(Query {
        record: record?,
        expr: expr?,
    })
}

/// Records `name` as seen; a repeat is `duplicate <what> "x" (first at line L, column C)`.
fn unique(
    cx: &mut Cx,
    seen: &mut HashMap<String, Marker>,
    what: &str,
    name: &str,
    node: &Node,
) -> bool {
    let here = node_marker(node);
    match seen.get(name) {
        Some(first) => {
            let message = format!(
                "duplicate {what} {} (first at line {}, column {})",
                excerpt(name),
                first.line(),
                first.column()
            );
            cx.at(node, message);
            false
        }
        None => {
            if let Some(m) = here {
                seen.insert(name.to_string(), m);
            }
            true
        }
    }
}

/// An absolute `http` or `https` URL with a host.
fn http_url(cx: &mut Cx, key: &str, node: &Node) -> Option<String> {
    let text = cx.non_empty(key, node)?;
    match reqwest::Url::parse(&text) {
        Ok(url) if !matches!(url.scheme(), "http" | "https") => {
            cx.at(
                node,
                format!(
                    "{key}: scheme must be http or https, got {}",
                    excerpt(url.scheme())
                ),
            );
            None
        }
        Ok(url) if url.host_str().is_none_or(str::is_empty) => {
            cx.at(node, format!("{key}: missing host in {}", excerpt(&text)));
            None
        }
        Ok(_) => Some(text),
        Err(e) => {
            cx.at(node, format!("{key}: invalid URL {}: {e}", excerpt(&text)));
            None
        }
    }
}

/// `body_template`: JSON written as YAML; every string is a template over the payload, checked
/// here (functions, variables, and that each `$secrets.<name>` is in `secret_files`).
fn body_template(
    cx: &mut Cx,
    key: &str,
    node: &Node,
    secrets: Option<&BTreeSet<String>>,
) -> Option<BodyTemplate> {
    match node {
        Node::Scalar(s) => match yaml::scalar_to_json(s) {
            serde_json::Value::String(text) => match Template::parse(&text, TemplateKind::Body) {
                Ok(t) => {
                    let before = cx.errors();
                    for (var, field) in t.variable_fields() {
                        if var == "secrets" && secrets.is_some_and(|names| !names.contains(&field))
                        {
                            cx.at(
                                node,
                                format!("{key}: $secrets.{field} is not in secret_files"),
                            );
                        }
                    }
                    (cx.errors() == before).then_some(BodyTemplate::Text(t))
                }
                Err(e) => {
                    cx.at_offset(s, e.offset, format!("{key}: {}", e.message));
                    None
                }
            },
            other => Some(BodyTemplate::Literal(other)),
        },
        Node::Sequence(seq) => {
            let before = cx.errors();
            let items: Vec<Option<BodyTemplate>> = seq
                .iter()
                .enumerate()
                .map(|(i, n)| body_template(cx, &format!("{key}[{i}]"), n, secrets))
                .collect();
            (cx.errors() == before)
                .then(|| BodyTemplate::List(items.into_iter().flatten().collect()))
        }
        Node::Mapping(m) => {
            let before = cx.errors();
            let items: Vec<(String, Option<BodyTemplate>)> = m
                .iter()
                .map(|(k, n)| {
                    let t = body_template(cx, &key_path(key, k.as_str()), n, secrets);
                    (k.as_str().to_string(), t)
                })
                .collect();
            (cx.errors() == before).then(|| {
                BodyTemplate::Map(
                    items
                        .into_iter()
                        .filter_map(|(k, t)| Some((k, t?)))
                        .collect(),
                )
            })
        }
    }
}

/// `success_codes: [200, 201, 409]`: HTTP statuses from 100 to 599.
fn success_codes(cx: &mut Cx, node: &Node) -> Option<Vec<u16>> {
    let seq = cx.sequence("success_codes", node)?;
    let before = cx.errors();
    let mut out = Vec::new();
    for item in seq.iter() {
        if let Some(code) = cx.positive_int("success_codes", item, 599) {
            if code < 100 {
                cx.at(
                    item,
                    format!("success_codes: {code} is not an HTTP status (100 to 599)"),
                );
            } else {
                out.push(code as u16);
            }
        }
    }
    if out.is_empty() && cx.errors() == before {
        cx.at(node, "success_codes: must list at least one status");
    }
    (cx.errors() == before).then_some(out)
}

/// `success_body_match: {json_pointer: /data/launchRun/__typename, one_of: [LaunchRunSuccess]}`.
fn body_match(cx: &mut Cx, node: &Node) -> Option<BodyMatch> {
    let map = cx.mapping("success_body_match", node)?;
    let before = cx.errors();
    cx.check_keys(map, &["json_pointer", "one_of"], "success_body_match");
    let pointer = match get(map, "json_pointer") {
        Some(n) => cx.string("success_body_match.json_pointer", n).and_then(|p| {
            if p.is_empty() || p.starts_with('/') {
                Some(p)
            } else {
                cx.at(n, format!("success_body_match.json_pointer: {} is not a JSON pointer (RFC 6901: empty, or starting with /)", excerpt(&p)));
                None
            }
        }),
        None => {
            cx.missing(map, "json_pointer", "success_body_match");
            None
        }
    };
    let one_of = match get(map, "one_of") {
        Some(n) => cx
            .string_list("success_body_match.one_of", n)
            .and_then(|l| {
                if l.is_empty() {
                    cx.at(n, "success_body_match.one_of: must list at least one value");
                    None
                } else {
                    Some(l.into_iter().map(|(s, _)| s).collect::<Vec<_>>())
                }
            }),
        None => {
            cx.missing(map, "one_of", "success_body_match");
            None
        }
    };
    if cx.errors() > before {
        return None;
    }
    Some(BodyMatch {
        json_pointer: pointer?,
        one_of: one_of?,
    })
}

/// HTTP header names are tokens; values have no control characters (CR/LF could inject headers).
fn headers(cx: &mut Cx, node: &Node, reserved: &[&str], has_bearer: bool) -> Option<Labels> {
    let out = cx.string_map("headers", node, false)?;
    let map = node.as_mapping()?;
    let before = cx.errors();
    for (k, v) in map.iter() {
        let name = k.as_str();
        let lower = name.to_ascii_lowercase();
        if name.is_empty() || !name.bytes().all(is_token_byte) {
            cx.at_key(k, format!("headers: invalid header name {}", excerpt(name)));
        } else if reserved.contains(&lower.as_str()) {
            cx.at_key(
                k,
                format!(
                    "headers: {} is set by driftgauge and cannot be configured",
                    excerpt(name)
                ),
            );
        } else if lower == "authorization" && has_bearer {
            cx.at_key(
                k,
                format!(
                    "headers: {} conflicts with bearer_token_file",
                    excerpt(name)
                ),
            );
        } else if let Some(value) = out.get(name) {
            if value.chars().any(|c| c.is_control() && c != '\t') {
                cx.at(
                    v,
                    format!(
                        "{}: header values must not contain control characters",
                        key_path("headers", name)
                    ),
                );
            }
        }
    }
    (cx.errors() == before).then_some(out)
}

fn header_safe_token(cx: &mut Cx, node: &Node, token: String) -> Option<String> {
    if token.chars().any(|c| c.is_control() && c != '\t') {
        cx.at(
            node,
            "bearer_token_file: the token must be one line without control characters",
        );
        None
    } else {
        Some(token)
    }
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// `host:port`, `[v6]:port`; a port from 1 to 65535.
fn is_host_port(target: &str) -> bool {
    let Some((host, port)) = target.rsplit_once(':') else {
        return false;
    };
    let port_ok = !port.is_empty()
        && port.bytes().all(|b| b.is_ascii_digit())
        && port.parse::<u16>().is_ok_and(|p| p > 0);
    let host_ok = if let Some(inner) = host.strip_prefix('[') {
        inner
            .strip_suffix(']')
            .is_some_and(|v6| v6.parse::<std::net::Ipv6Addr>().is_ok())
    } else {
        !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
    };
    port_ok && host_ok
}

fn mapping_to_json(map: &MarkedMappingNode) -> serde_json::Map<String, serde_json::Value> {
    map.iter()
        .map(|(k, v)| (k.as_str().to_string(), node_to_json(v)))
        .collect()
}

fn node_to_json(node: &Node) -> serde_json::Value {
    match node {
        Node::Scalar(s) => yaml::scalar_to_json(s),
        Node::Sequence(seq) => serde_json::Value::Array(seq.iter().map(node_to_json).collect()),
        Node::Mapping(m) => serde_json::Value::Object(mapping_to_json(m)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::io;

    /// Secrets from a map, keyed by the path the config resolves.
    struct MapSecrets(BTreeMap<PathBuf, String>);

    impl SecretSource for MapSecrets {
        fn read(&self, path: &Path) -> io::Result<String> {
            self.0
                .get(path)
                .cloned()
                .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
        }
    }

    fn secrets() -> MapSecrets {
        MapSecrets(
            [
                ("/etc/dg/secrets/token", "tok-123\n"),
                ("/etc/dg/secrets/whsec", "whsec_aGVsbG8=\n"),
                ("/etc/dg/secrets/not_whsec", "hello"),
                ("/etc/dg/secrets/bad_b64", "whsec_!!!"),
                ("/etc/dg/secrets/empty", " \n"),
                ("/etc/dg/secrets/two_lines", "a\nb"),
            ]
            .iter()
            .map(|(p, s)| (PathBuf::from(p), s.to_string()))
            .collect(),
        )
    }

    fn parse(text: &str) -> Result<Config, Vec<Diagnostic>> {
        parse_config(text, "dg.yml", Path::new("/etc/dg"), &secrets())
    }

    fn ok(text: &str) -> Config {
        match parse(text) {
            Ok(c) => c,
            Err(d) => panic!("unexpected errors:\n{}", crate::config::LoadError(d)),
        }
    }

    #[track_caller]
    fn errors(text: &str, expected: &[&str]) {
        let got: Vec<String> = match parse(text) {
            Ok(c) => panic!("parsed without errors: {c:?}"),
            Err(diags) => diags
                .iter()
                .map(|d| format!("{}:{}: {}", d.line, d.col, d.message))
                .collect(),
        };
        assert_eq!(got, expected);
    }

    #[test]
    fn retrain_webhook_keys() {
        let c = ok("webhooks:\n  h:\n    url: http://h/x\n    method: PUT\n    success_codes: [200, 409]\n    headers_files: {X-Api-Key: secrets/token}\n    secret_files: {tok: secrets/whsec}\n    success_body_match: {json_pointer: /a/b, one_of: [ok]}\n    body_template: {id: '{{ .idempotency_key }}', n: 3, t: '{{ $secrets.tok }}', l: [a, '{{ .statistic }}']}\n");
        let h = &c.webhooks["h"];
        assert_eq!(h.method, HttpMethod::Put);
        assert_eq!(h.success_codes, [200, 409]);
        assert_eq!(h.headers["X-Api-Key"], "tok-123");
        assert_eq!(h.secrets["tok"], "whsec_aGVsbG8=");
        assert_eq!(
            h.success_body_match,
            Some(BodyMatch {
                json_pointer: "/a/b".into(),
                one_of: vec!["ok".into()]
            })
        );
        let body = h
            .body_template
            .as_ref()
            .expect("template")
            .render(
                &serde_json::json!({"idempotency_key": "k", "statistic": 0.5}),
                &h.secrets,
            )
            .expect("render");
        assert_eq!(
            body,
            serde_json::json!({"id": "k", "n": 3, "t": "whsec_aGVsbG8=", "l": ["a", 0.5]})
        );
        let wh = |body: &str| format!("webhooks:\n  h:\n    url: http://h/x\n{body}");
        errors(
            &wh("    method: GET\n    success_codes: [99, 200, x]\n    success_body_match: {json_pointer: a}\n    headers_files: {Content-Type: secrets/token, X: secrets/nope}\n    body_template: {a: {b: 'x {{ humanise .rule }}'}, c: ['{{ $secrets.t }}']}\n"),
            &[
                "4:13: method: expected POST, PUT or PATCH, got \"GET\"",
                "5:21: success_codes: 99 is not an HTTP status (100 to 599)",
                "5:30: success_codes: expected a positive integer, got \"x\"",
                "6:26: missing required key \"one_of\" in success_body_match",
                "6:40: success_body_match.json_pointer: \"a\" is not a JSON pointer (RFC 6901: empty, or starting with /)",
                "7:21: headers_files: \"Content-Type\" is set by driftgauge and cannot be configured",
                "7:53: headers_files.X: cannot read \"/etc/dg/secrets/nope\": no such file",
                "8:34: body_template.a.b: function \"humanise\" not defined (functions: humanize, humanizePercentage, humanizeDuration, printf, toUpper, toLower)",
                "8:59: body_template.c[0]: $secrets.t is not in secret_files",
            ],
        );
    }

    #[test]
    fn empty_config_is_the_default_relative_to_its_folder() {
        let c = ok("");
        assert_eq!(c.rule_files, ["/etc/dg/rules/*.yml"]);
        assert_eq!(
            Config {
                rule_files: vec!["rules/*.yml".into()],
                ..c
            },
            Config::default()
        );
        let here = parse_config("", "dg.yml", Path::new(""), &secrets()).expect("valid");
        assert_eq!(here, Config::default());
    }

    #[test]
    fn full_config() {
        let c = ok(r#"
global:
  evaluation_interval: 30s
rule_files: ["rules/*.yml", /abs/x.yml]
webhooks:
  retrain-fraud:
    url: http://127.0.0.1:8080/retrain
    timeout: 5s
    headers: {X-Team: risk}
    bearer_token_file: secrets/token
    signing_secret_file: secrets/whsec
    send_resolved: true
    cooldown: 1h
    extra: {tuning: true, budget: 3, ratio: 0.5, name: x, list: [1, "2"], nested: {a: ~}}
    min_backoff: 2s
    max_backoff: 1m
    max_connections: 2
  minimal:
    url: https://hooks.example.com
limits:
  max_series: 10
  max_body_bytes: 2048
  max_window_values: 500
  series_idle_timeout: 1h
scrape_configs:
  - job_name: model-server
    scrape_interval: 15s
    scheme: https
    bearer_token_file: secrets/token
    static_configs:
      - targets: ["127.0.0.1:8000", "host-a.example.com:9100"]
        labels: {env: prod}
  - job_name: fast
    scrape_interval: 5s
query_sources:
  - name: thanos
    url: http://127.0.0.1:9090
    headers: {X-Scope-OrgID: team-a}
    queries:
      - record: model_accuracy_1h
        expr: avg_over_time(model_accuracy[1h])
"#);
        assert_eq!(c.evaluation_interval, Duration::from_secs(30));
        assert_eq!(c.rule_files, ["/etc/dg/rules/*.yml", "/abs/x.yml"]);
        let wh = &c.webhooks["retrain-fraud"];
        assert_eq!(wh.url, "http://127.0.0.1:8080/retrain");
        assert_eq!(wh.timeout, Duration::from_secs(5));
        assert_eq!(wh.headers.get("X-Team").map(String::as_str), Some("risk"));
        assert_eq!(wh.bearer_token.as_deref(), Some("tok-123"));
        assert_eq!(wh.signing_key.as_deref(), Some(&b"hello"[..]));
        assert!(wh.send_resolved);
        assert_eq!(wh.cooldown, Duration::from_secs(3600));
        assert_eq!(
            wh.extra.clone().map(serde_json::Value::Object),
            Some(
                serde_json::json!({"tuning": true, "budget": 3, "ratio": 0.5, "name": "x", "list": [1, "2"], "nested": {"a": null}})
            )
        );
        assert_eq!(
            (wh.min_backoff, wh.max_backoff),
            (Duration::from_secs(2), Duration::from_secs(60))
        );
        assert_eq!(wh.max_connections, 2);
        let min = &c.webhooks["minimal"];
        assert_eq!(min.max_connections, WebhookConfig::DEFAULT_MAX_CONNECTIONS);
        assert_eq!(
            (
                min.timeout,
                min.cooldown,
                min.min_backoff,
                min.max_backoff,
                min.send_resolved
            ),
            (
                Duration::from_secs(10),
                Duration::ZERO,
                Duration::from_secs(1),
                Duration::from_secs(300),
                false
            )
        );
        assert_eq!(
            (
                min.bearer_token.as_ref(),
                min.signing_key.as_ref(),
                min.extra.as_ref()
            ),
            (None, None, None)
        );
        assert_eq!(
            c.limits,
            Limits {
                max_series: 10,
                max_series_per_rule: Limits::default().max_series_per_rule,
                max_body_bytes: 2048,
                max_window_values: 500,
                max_held_values: Limits::default().max_held_values,
                series_idle_timeout: Duration::from_secs(3600)
            }
        );
        assert_eq!(
            c.scrape_configs[0],
            ScrapeConfig {
                job_name: "model-server".into(),
                scrape_interval: Duration::from_secs(15),
                scrape_timeout: Duration::from_secs(10),
                metrics_path: "/metrics".into(),
                scheme: Scheme::Https,
                bearer_token: Some("tok-123".into()),
                static_configs: vec![StaticConfig {
                    targets: vec!["127.0.0.1:8000".into(), "host-a.example.com:9100".into()],
                    labels: [("env".to_string(), "prod".to_string())]
                        .into_iter()
                        .collect(),
                }],
            }
        );
        // The default timeout never exceeds the interval.
        assert_eq!(c.scrape_configs[1].scrape_timeout, Duration::from_secs(5));
        assert_eq!(
            c.query_sources,
            [QuerySource {
                name: "thanos".into(),
                url: "http://127.0.0.1:9090".into(),
                interval: Duration::from_secs(30),
                timeout: Duration::from_secs(10),
                headers: [("X-Scope-OrgID".to_string(), "team-a".to_string())]
                    .into_iter()
                    .collect(),
                queries: vec![Query {
                    record: "model_accuracy_1h".into(),
                    expr: "avg_over_time(model_accuracy[1h])".into()
                }],
            }]
        );
    }

    #[test]
    fn remote_write_receiver_ha_tracker() {
        assert_eq!(ok("").remote_write_ha, None);
        assert_eq!(
            ok("remote_write_receiver:\n  ha_cluster_label: cluster\n  ha_replica_label: __replica__\n  ha_failover_timeout: 10s\n").remote_write_ha,
            Some(HaTrackerConfig {
                cluster_label: "cluster".into(),
                replica_label: "__replica__".into(),
                failover_timeout: Duration::from_secs(10),
                max_clusters: HaTrackerConfig::DEFAULT_MAX_CLUSTERS,
            })
        );
        let defaults = ok("remote_write_receiver: {ha_cluster_label: c, ha_replica_label: r, ha_max_clusters: 3}\n")
            .remote_write_ha
            .expect("on");
        assert_eq!(
            defaults.failover_timeout,
            HaTrackerConfig::DEFAULT_FAILOVER_TIMEOUT
        );
        assert_eq!(defaults.max_clusters, 3);
        errors(
            "remote_write_receiver: {ha_cluster_label: c, ha_failover_timeout: 0s, bogus: 1}\n",
            &[
                "1:25: remote_write_receiver: the HA tracker needs both ha_cluster_label and ha_replica_label",
                "1:67: ha_failover_timeout: must be greater than 0s",
                "1:71: unknown key \"bogus\" in remote_write_receiver",
            ],
        );
        errors(
            "remote_write_receiver: {ha_cluster_label: c, ha_replica_label: c}\n",
            &["1:64: ha_replica_label: must differ from ha_cluster_label"],
        );
        errors(
            "remote_write_receiver: {ha_cluster_label: 'a-b', ha_replica_label: __name__}\n",
            &[
                "1:43: ha_cluster_label: invalid label name \"a-b\"",
                "1:68: ha_replica_label: invalid label name \"__name__\"",
            ],
        );
    }

    #[test]
    fn top_level_errors() {
        errors(
            "global: {evaluation_interval: 1.5m, scrape_interval: 1m}\nrule_file: []\n",
            &[
                "1:31: evaluation_interval: invalid duration \"1.5m\": fractions are not allowed, combine units instead (e.g. 1h30m)",
                "1:37: unknown key \"scrape_interval\" in global",
                "2:1: unknown key \"rule_file\" in config",
            ],
        );
        errors(
            "rule_files: ['[']\n",
            &["1:14: rule_files: invalid glob \"[\": invalid range pattern"],
        );
        errors(
            "rule_files: rules/*.yml\n",
            &["1:13: rule_files: expected a list, got \"rules/*.yml\""],
        );
        errors(
            "limits: {max_series: 0, max_body_bytes: 1e6, max_window_values: x, series_idle_timeout: 0s, max_x: 1}\n",
            &[
                "1:22: max_series: must be a positive integer, got 0",
                "1:41: max_body_bytes: expected an integer, got \"1e6\"",
                "1:65: max_window_values: expected a positive integer, got \"x\"",
                "1:89: series_idle_timeout: must be greater than 0s",
                "1:93: unknown key \"max_x\" in limits",
            ],
        );
    }

    #[test]
    fn webhook_errors() {
        let wh = |body: &str| format!("webhooks:\n  hook:\n{body}");
        errors(
            &wh("    timeout: 1s\n"),
            &["3:5: missing required key \"url\" in webhook \"hook\""],
        );
        errors(
            &wh("    url: ftp://x/y\n"),
            &["3:10: url: scheme must be http or https, got \"ftp\""],
        );
        errors(
            &wh("    url: http://\n"),
            &["3:10: url: invalid URL \"http://\": empty host"],
        );
        errors(
            &wh("    url: /retrain\n"),
            &["3:10: url: invalid URL \"/retrain\": relative URL without a base"],
        );
        errors(
            &wh("    url: http://h\n    headers: {Idempotency-Key: x, 'a b': y, Authorization: z, X-Ok: \"a\\nb\"}\n    bearer_token_file: secrets/token\n"),
            &[
                "4:15: headers: \"Idempotency-Key\" is set by driftgauge and cannot be configured",
                "4:35: headers: invalid header name \"a b\"",
                "4:45: headers: \"Authorization\" conflicts with bearer_token_file",
                "4:69: headers.X-Ok: header values must not contain control characters",
            ],
        );
        errors(
            &wh("    url: http://h\n    bearer_token_file: secrets/missing\n    signing_secret_file: secrets/not_whsec\n"),
            &[
                "4:24: bearer_token_file: cannot read \"/etc/dg/secrets/missing\": no such file",
                "5:26: signing_secret_file: the secret must have the form whsec_<base64>",
            ],
        );
        errors(
            &wh("    url: http://h\n    bearer_token_file: secrets/empty\n    signing_secret_file: secrets/bad_b64\n"),
            &[
                "4:24: bearer_token_file: \"/etc/dg/secrets/empty\" is empty",
                "5:26: signing_secret_file: the secret after whsec_ is not valid base64: Invalid symbol 33, offset 0.",
            ],
        );
        errors(
            &wh("    url: http://h\n    bearer_token_file: secrets/two_lines\n"),
            &["4:24: bearer_token_file: the token must be one line without control characters"],
        );
        errors(
            &wh("    url: http://h\n    send_resolved: 'true'\n    cooldown: soon\n    extra: [1]\n"),
            &[
                "4:20: send_resolved: expected true or false, got the quoted string \"true\"",
                "5:15: cooldown: invalid duration \"soon\": expected numbers with units, e.g. 15s or 1h30m",
                "6:12: extra: expected a mapping, got a list",
            ],
        );
        errors(
            &wh("    url: http://h\n    min_backoff: 10m\n"),
            &["4:18: min_backoff (10m) is greater than max_backoff (5m)"],
        );
        errors(
            &wh("    url: http://h\n    max_connections: 0\n"),
            &["4:22: max_connections: must be a positive integer, got 0"],
        );
        errors(
            &wh("    url: http://h\n    max_connections: 257\n"),
            &["4:22: max_connections: must be at most 256, got 257"],
        );
        errors(
            "webhooks: [a]\n",
            &["1:11: webhooks: expected a mapping, got a list"],
        );
        errors(
            "webhooks:\n  hook: http://h\n",
            &["2:9: webhooks.hook: expected a mapping, got \"http://h\""],
        );
    }

    #[test]
    fn scrape_and_query_errors() {
        errors(
            concat!(
                "scrape_configs:\n",
                "  - scrape_interval: 10s\n",
                "    scrape_timeout: 11s\n",
                "    metrics_path: metrics\n",
                "    scheme: ftp\n",
                "    static_configs: [{targets: ['h', 'h:0', 'h:99999', '[::1]:80', 'a b:1'], labels: {bad-label: x}, extra: 1}]\n",
                "  - job_name: a\n",
                "  - job_name: a\n",
            ),
            &[
                "2:5: missing required key \"job_name\" in scrape config",
                "3:21: scrape_timeout (11s) is greater than scrape_interval (10s)",
                "4:19: metrics_path: must start with \"/\", got \"metrics\"",
                "5:13: scheme: expected http or https, got \"ftp\"",
                "6:33: targets: invalid target \"h\", expected host:port",
                "6:38: targets: invalid target \"h:0\", expected host:port",
                "6:45: targets: invalid target \"h:99999\", expected host:port",
                "6:68: targets: invalid target \"a b:1\", expected host:port",
                "6:87: labels: invalid label name \"bad-label\"",
                "6:102: unknown key \"extra\" in static config",
                "8:15: duplicate job_name \"a\" (first at line 7, column 15)",
            ],
        );
        errors(
            concat!(
                "query_sources:\n",
                "  - name: q\n",
                "    url: http://h\n",
                "    queries: []\n",
                "  - name: q\n",
                "    url: http://h\n",
                "    interval: 0s\n",
                "    queries:\n",
                "      - {record: 'bad-name', expr: x}\n",
                "      - {record: ok, expr: ''}\n",
                "      - {record: ok, expr: y, step: 1}\n",
                "  - url: http://h\n",
            ),
            &[
                "4:14: queries: must not be empty",
                "5:11: duplicate query source name \"q\" (first at line 2, column 11)",
                "7:15: interval: must be greater than 0s",
                "9:18: record: invalid metric name \"bad-name\"",
                "10:28: expr: must not be empty",
                "11:18: duplicate record \"ok\" (first at line 10, column 18)",
                "11:31: unknown key \"step\" in query",
                "12:5: missing required key \"name\" in query source",
                "12:5: missing required key \"queries\" in query source",
            ],
        );
    }
}
