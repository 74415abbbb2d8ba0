//! Series identity, the leaf every layer shares: [`Labels`], [`SeriesSamples`] (what every
//! source hands to the engine), Prometheus's name rules (legacy validation scheme) and the
//! bounds on names and label sets.

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
}
