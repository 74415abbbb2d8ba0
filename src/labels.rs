//! Series identity, the leaf every layer shares: [`Labels`], [`SeriesSamples`] (what every
//! source hands to the engine), Prometheus's name rules (legacy validation scheme), the
//! bounds on names and label sets, and the one series validator every source calls
//! ([`validate_series`], [`SeriesBuilder`]) with its typed [`SeriesError`] and the
//! [`RejectReason`]s the service counts refusals under.

use std::collections::BTreeMap;

/// A label set, sorted by name (Prometheus order).
pub type Labels = BTreeMap<String, String>;

/// Values for one series, in arrival order.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesSamples {
    pub metric: String,
    pub labels: Labels,
    pub values: Vec<f64>,
}

/// Labels on one series, at most.
pub const MAX_LABELS: usize = 64;
/// Bytes in one label value, at most.
pub const MAX_LABEL_VALUE_BYTES: usize = 4096;
/// Bytes in a metric or label name, at most.
pub const MAX_NAME_BYTES: usize = 256;

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`
pub fn is_valid_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':' => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`; names starting with `__` are reserved for internal use.
pub fn is_valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The label that carries the metric name where a series arrives as a bare label set.
pub const METRIC_NAME_LABEL: &str = "__name__";

/// The `reason` label of `driftgauge_samples_rejected_total` and
/// `driftgauge_requests_rejected_total`: a fixed set, never request data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RejectReason {
    /// A body that cannot be read: not JSON, not snappy, not protobuf, not the expected shape,
    /// or headers that announce a format this service does not read.
    BadBody,
    /// A size bound passed: the body (413), a decompressed body, a name or label value over
    /// its byte limit, more labels than [`MAX_LABELS`].
    TooLarge,
    /// A metric or label name that breaks Prometheus's rules: missing, invalid, reserved
    /// (`__`), or repeated.
    BadName,
    /// A push entry whose values or fields are not what the format asks for.
    BadValue,
    /// A pushed timestamp too far in the future, or older than what its series (or window)
    /// already took.
    BadTimestamp,
    /// `limits.max_series` or `limits.max_series_per_rule`.
    SeriesLimit,
    /// `limits.max_held_values`.
    MemoryLimit,
    /// Prometheus's staleness marker (of a sample or a native histogram), skipped.
    StaleMarker,
    /// NaN or an infinity where a source skips them.
    NonFinite,
    /// The same series twice in one scrape or query answer.
    DuplicateSeries,
    /// Refused before its body was read: too many large bodies were being parsed at once
    /// (503), so the request is to be retried.
    Busy,
    /// The body did not arrive within `--web.read-timeout` (408).
    Timeout,
    /// Remote write samples of an HA replica that is not the elected one of its cluster
    /// (answered 202, as Mimir's HA tracker does).
    HaDedupe,
    /// Remote write from a new HA cluster past `remote_write_receiver.ha_max_clusters` (400).
    TooManyHaClusters,
}

impl RejectReason {
    /// Every reason, in a fixed order.
    pub const ALL: [RejectReason; 14] = [
        RejectReason::BadBody,
        RejectReason::TooLarge,
        RejectReason::BadName,
        RejectReason::BadValue,
        RejectReason::BadTimestamp,
        RejectReason::SeriesLimit,
        RejectReason::MemoryLimit,
        RejectReason::StaleMarker,
        RejectReason::NonFinite,
        RejectReason::DuplicateSeries,
        RejectReason::Busy,
        RejectReason::Timeout,
        RejectReason::HaDedupe,
        RejectReason::TooManyHaClusters,
    ];

    /// The reasons a whole push or remote write request can be refused for.
    pub const REQUEST: [RejectReason; 10] = [
        RejectReason::BadBody,
        RejectReason::TooLarge,
        RejectReason::BadName,
        RejectReason::BadValue,
        RejectReason::BadTimestamp,
        RejectReason::SeriesLimit,
        RejectReason::MemoryLimit,
        RejectReason::Busy,
        RejectReason::Timeout,
        RejectReason::TooManyHaClusters,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::BadBody => "bad_body",
            RejectReason::TooLarge => "too_large",
            RejectReason::BadName => "bad_name",
            RejectReason::BadValue => "bad_value",
            RejectReason::BadTimestamp => "bad_timestamp",
            RejectReason::SeriesLimit => "series_limit",
            RejectReason::MemoryLimit => "memory_limit",
            RejectReason::StaleMarker => "stale_marker",
            RejectReason::NonFinite => "non_finite",
            RejectReason::DuplicateSeries => "duplicate_series",
            RejectReason::Busy => "busy",
            RejectReason::Timeout => "timeout",
            RejectReason::HaDedupe => "ha_dedupe",
            RejectReason::TooManyHaClusters => "too_many_ha_clusters",
        }
    }
}

impl std::fmt::Display for RejectReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a series (a metric name and its labels) is refused, whichever source it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SeriesError {
    #[error("missing __name__ label")]
    MissingMetricName,
    #[error("metric name too long ({len} bytes, limit {limit})")]
    MetricNameTooLong { len: usize, limit: usize },
    #[error("invalid metric name {name:?}")]
    InvalidMetricName { name: String },
    #[error("label name too long ({len} bytes, limit {limit})")]
    LabelNameTooLong { len: usize, limit: usize },
    #[error("invalid label name {name:?}")]
    InvalidLabelName { name: String },
    #[error("invalid label name {name:?}: names starting with \"__\" are reserved")]
    ReservedLabelName { name: String },
    #[error("duplicate label name {name:?}")]
    DuplicateLabelName { name: String },
    #[error("label {name:?}: value too long ({len} bytes, limit {limit})")]
    LabelValueTooLong {
        name: String,
        len: usize,
        limit: usize,
    },
    #[error("too many labels ({count}, limit {limit})")]
    TooManyLabels { count: usize, limit: usize },
}

impl SeriesError {
    /// The counter reason: a bound passed is `too_large`, a broken name rule `bad_name`.
    pub fn reason(&self) -> RejectReason {
        match self {
            SeriesError::MetricNameTooLong { .. }
            | SeriesError::LabelNameTooLong { .. }
            | SeriesError::LabelValueTooLong { .. }
            | SeriesError::TooManyLabels { .. } => RejectReason::TooLarge,
            SeriesError::MissingMetricName
            | SeriesError::InvalidMetricName { .. }
            | SeriesError::InvalidLabelName { .. }
            | SeriesError::ReservedLabelName { .. }
            | SeriesError::DuplicateLabelName { .. } => RejectReason::BadName,
        }
    }
}

/// A metric name: at most [`MAX_NAME_BYTES`], `[a-zA-Z_:][a-zA-Z0-9_:]*`.
pub fn check_metric_name(name: &str) -> Result<(), SeriesError> {
    if name.len() > MAX_NAME_BYTES {
        return Err(SeriesError::MetricNameTooLong {
            len: name.len(),
            limit: MAX_NAME_BYTES,
        });
    }
    if !is_valid_metric_name(name) {
        return Err(SeriesError::InvalidMetricName {
            name: name.to_string(),
        });
    }
    Ok(())
}

/// A label name of a series: at most [`MAX_NAME_BYTES`], `[a-zA-Z_][a-zA-Z0-9_]*`, not
/// starting with `__` (reserved; `__name__` is checked here as any other, callers that take
/// the metric name from it handle it first).
pub fn check_label_name(name: &str) -> Result<(), SeriesError> {
    if name.len() > MAX_NAME_BYTES {
        return Err(SeriesError::LabelNameTooLong {
            len: name.len(),
            limit: MAX_NAME_BYTES,
        });
    }
    if !is_valid_label_name(name) {
        return Err(SeriesError::InvalidLabelName {
            name: name.to_string(),
        });
    }
    if name.starts_with("__") {
        return Err(SeriesError::ReservedLabelName {
            name: name.to_string(),
        });
    }
    Ok(())
}

/// A label value: at most [`MAX_LABEL_VALUE_BYTES`].
pub fn check_label_value(name: &str, value: &str) -> Result<(), SeriesError> {
    if value.len() > MAX_LABEL_VALUE_BYTES {
        return Err(SeriesError::LabelValueTooLong {
            name: name.to_string(),
            len: value.len(),
            limit: MAX_LABEL_VALUE_BYTES,
        });
    }
    Ok(())
}

/// A series holds at most [`MAX_LABELS`] labels (empty-valued ones are no labels).
pub fn check_label_count(count: usize) -> Result<(), SeriesError> {
    if count > MAX_LABELS {
        return Err(SeriesError::TooManyLabels {
            count,
            limit: MAX_LABELS,
        });
    }
    Ok(())
}

/// The one check of a whole series, for sources that hold it as a name and a [`Labels`]
/// (scrape, query): the metric name, every label name and value, and the label count.
/// A label set cannot repeat a name; sources that read raw pairs use [`SeriesBuilder`].
pub fn validate_series(metric: &str, labels: &Labels) -> Result<(), SeriesError> {
    check_metric_name(metric)?;
    for (name, value) in labels {
        check_label_name(name)?;
        check_label_value(name, value)?;
    }
    check_label_count(labels.values().filter(|v| !v.is_empty()).count())
}

/// Builds a series from (name, value) pairs as a decoder reads them (push JSON, remote
/// write protobuf), checking each as it comes with the rules of [`validate_series`], and
/// refusing a name given twice. Empty-valued labels are dropped, as Prometheus drops them.
#[derive(Debug, Default)]
pub struct SeriesBuilder {
    metric: Option<String>,
    /// `__name__` carries the metric name (remote write); else it is a reserved name (push).
    name_from_labels: bool,
    /// Empty values included, so that a repeat of an empty-valued name is seen too.
    labels: Labels,
}

impl SeriesBuilder {
    /// A series whose metric name comes as the `__name__` label.
    pub fn from_labels() -> SeriesBuilder {
        SeriesBuilder {
            name_from_labels: true,
            ..SeriesBuilder::default()
        }
    }

    /// A series whose metric name is given apart (and checked here); `__name__` among its
    /// labels is refused as reserved.
    pub fn with_metric(metric: String) -> Result<SeriesBuilder, SeriesError> {
        check_metric_name(&metric)?;
        Ok(SeriesBuilder {
            metric: Some(metric),
            ..SeriesBuilder::default()
        })
    }

    /// One label as it was read.
    pub fn label(&mut self, name: &str, value: &str) -> Result<(), SeriesError> {
        if self.name_from_labels && name == METRIC_NAME_LABEL {
            if self.metric.is_some() {
                return Err(SeriesError::DuplicateLabelName {
                    name: name.to_string(),
                });
            }
            check_metric_name(value)?;
            self.metric = Some(value.to_string());
            return Ok(());
        }
        check_label_name(name)?;
        if self.labels.contains_key(name) {
            return Err(SeriesError::DuplicateLabelName {
                name: name.to_string(),
            });
        }
        check_label_value(name, value)?;
        self.labels.insert(name.to_string(), value.to_string());
        Ok(())
    }

    /// The metric name and the labels with a value, once every label is in.
    pub fn finish(mut self) -> Result<(String, Labels), SeriesError> {
        self.labels.retain(|_, v| !v.is_empty());
        check_label_count(self.labels.len())?;
        let metric = self.metric.ok_or(SeriesError::MissingMetricName)?;
        Ok((metric, self.labels))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_names() {
        for ok in ["a", "feature_value", "ns:metric_total", "_x", ":y", "A9"] {
            assert!(is_valid_metric_name(ok), "{ok}");
        }
        for bad in ["", "9a", "a-b", "a b", "é", "a.b", "a{"] {
            assert!(!is_valid_metric_name(bad), "{bad}");
        }
    }

    #[test]
    fn label_names() {
        for ok in ["model", "_x", "a9", "__name__"] {
            assert!(is_valid_label_name(ok), "{ok}");
        }
        for bad in ["", "9a", "a:b", "a-b", "ü"] {
            assert!(!is_valid_label_name(bad), "{bad}");
        }
    }

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// Runs `pairs` through a `SeriesBuilder` whose name comes from `__name__`.
    fn build(pairs: &[(&str, &str)]) -> Result<(String, Labels), SeriesError> {
        let mut b = SeriesBuilder::from_labels();
        for (n, v) in pairs {
            b.label(n, v)?;
        }
        b.finish()
    }

    #[track_caller]
    fn check(got: Result<(), SeriesError>, want: SeriesError, reason: RejectReason, text: &str) {
        let e = got.expect_err("refused");
        assert_eq!(e, want);
        assert_eq!(e.reason(), reason, "{e}");
        assert_eq!(e.to_string(), text);
    }

    #[test]
    fn every_series_error_has_its_reason_and_message() {
        let long = "a".repeat(MAX_NAME_BYTES + 1);
        let long_value = "v".repeat(MAX_LABEL_VALUE_BYTES + 1);
        let none = Labels::new();
        check(
            build(&[("a", "1")]).map(drop),
            SeriesError::MissingMetricName,
            RejectReason::BadName,
            "missing __name__ label",
        );
        check(
            validate_series(&long, &none),
            SeriesError::MetricNameTooLong {
                len: MAX_NAME_BYTES + 1,
                limit: MAX_NAME_BYTES,
            },
            RejectReason::TooLarge,
            "metric name too long (257 bytes, limit 256)",
        );
        check(
            validate_series("9x", &none),
            SeriesError::InvalidMetricName { name: "9x".into() },
            RejectReason::BadName,
            "invalid metric name \"9x\"",
        );
        check(
            validate_series("m", &labels(&[(&long, "x")])),
            SeriesError::LabelNameTooLong {
                len: MAX_NAME_BYTES + 1,
                limit: MAX_NAME_BYTES,
            },
            RejectReason::TooLarge,
            "label name too long (257 bytes, limit 256)",
        );
        check(
            validate_series("m", &labels(&[("a-b", "x")])),
            SeriesError::InvalidLabelName { name: "a-b".into() },
            RejectReason::BadName,
            "invalid label name \"a-b\"",
        );
        check(
            validate_series("m", &labels(&[("__x", "x")])),
            SeriesError::ReservedLabelName { name: "__x".into() },
            RejectReason::BadName,
            "invalid label name \"__x\": names starting with \"__\" are reserved",
        );
        check(
            build(&[("__name__", "m"), ("a", "1"), ("a", "2")]).map(drop),
            SeriesError::DuplicateLabelName { name: "a".into() },
            RejectReason::BadName,
            "duplicate label name \"a\"",
        );
        check(
            validate_series("m", &labels(&[("a", &long_value)])),
            SeriesError::LabelValueTooLong {
                name: "a".into(),
                len: MAX_LABEL_VALUE_BYTES + 1,
                limit: MAX_LABEL_VALUE_BYTES,
            },
            RejectReason::TooLarge,
            "label \"a\": value too long (4097 bytes, limit 4096)",
        );
        let many: Vec<(String, String)> = (0..=MAX_LABELS)
            .map(|i| (format!("l{i}"), "x".to_string()))
            .collect();
        check(
            validate_series("m", &many.iter().cloned().collect()),
            SeriesError::TooManyLabels {
                count: MAX_LABELS + 1,
                limit: MAX_LABELS,
            },
            RejectReason::TooLarge,
            "too many labels (65, limit 64)",
        );
    }

    #[test]
    fn reason_label_values_are_the_documented_set() {
        let all: Vec<&str> = RejectReason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(
            all,
            [
                "bad_body",
                "too_large",
                "bad_name",
                "bad_value",
                "bad_timestamp",
                "series_limit",
                "memory_limit",
                "stale_marker",
                "non_finite",
                "duplicate_series",
                "busy",
                "timeout",
                "ha_dedupe",
                "too_many_ha_clusters"
            ]
        );
        assert!(RejectReason::REQUEST
            .iter()
            .all(|r| RejectReason::ALL.contains(r)));
    }

    #[test]
    fn the_builder_takes_the_name_from_labels_drops_empty_values_and_refuses_repeats() {
        let (metric, got) =
            build(&[("b", "2"), ("__name__", "m"), ("e", ""), ("a", "1")]).expect("good series");
        assert_eq!(metric, "m");
        assert_eq!(got, labels(&[("a", "1"), ("b", "2")]));
        // A repeat is refused even when one of the two is empty, and `__name__` twice too.
        for pairs in [
            &[("__name__", "m"), ("e", ""), ("e", "x")][..],
            &[("__name__", "m"), ("__name__", "m")],
        ] {
            assert!(
                matches!(build(pairs), Err(SeriesError::DuplicateLabelName { .. })),
                "{pairs:?}"
            );
        }
        // Empty-valued labels do not count against the limit.
        let mut pairs: Vec<(String, String)> = (0..MAX_LABELS)
            .map(|i| (format!("l{i}"), "x".to_string()))
            .collect();
        pairs.push(("empty".into(), String::new()));
        pairs.push(("__name__".into(), "m".into()));
        let refs: Vec<(&str, &str)> = pairs.iter().map(|(n, v)| (&**n, &**v)).collect();
        assert_eq!(build(&refs).expect("64 labels").1.len(), MAX_LABELS);
        // With the metric given apart, `__name__` is a reserved label name.
        let mut b = SeriesBuilder::with_metric("m".into()).expect("good name");
        assert!(matches!(
            b.label("__name__", "x"),
            Err(SeriesError::ReservedLabelName { .. })
        ));
        assert!(matches!(
            SeriesBuilder::with_metric("a b".into()),
            Err(SeriesError::InvalidMetricName { .. })
        ));
    }
}
