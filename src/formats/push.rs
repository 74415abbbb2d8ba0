//! `POST /api/v1/samples`: the JSON push body, checked as a whole before anything is applied.

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::labels::{
    is_valid_label_name, is_valid_metric_name, Labels, SeriesSamples, MAX_LABELS,
    MAX_LABEL_VALUE_BYTES, MAX_NAME_BYTES,
};

/// Why a push body was refused. Every variant names the entry and the reason.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PushError {
    #[error("body is not valid JSON: {0}")]
    Json(String),
    #[error("body must be an object with a \"samples\" array")]
    Shape,
    #[error("samples[{index}]: {reason}")]
    Entry { index: usize, reason: String },
}

impl PushError {
    /// The counter reason (`driftgauge_samples_rejected_total{reason}`): a fixed set.
    pub fn reason(&self) -> &'static str {
        match self {
            PushError::Json(_) | PushError::Shape => "bad_body",
            PushError::Entry { reason, .. } => {
                if reason.contains("name") {
                    "bad_name"
                } else if reason.contains("too") {
                    "too_large"
                } else {
                    "bad_value"
                }
            }
        }
    }

    pub fn index(&self) -> Option<usize> {
        match self {
            PushError::Entry { index, .. } => Some(*index),
            _ => None,
        }
    }
}

#[derive(Deserialize)]
struct Body<'a> {
    #[serde(borrow)]
    samples: Vec<&'a RawValue>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    metric: Option<String>,
    #[serde(default)]
    labels: Option<serde_json::Map<String, serde_json::Value>>,
    value: Option<serde_json::Value>,
    values: Option<Vec<serde_json::Value>>,
}

/// Parses and validates a whole push body. Nothing is returned unless every entry is good.
pub fn parse(body: &[u8]) -> Result<Vec<SeriesSamples>, PushError> {
    let body: Body = serde_json::from_slice(body).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => PushError::Shape,
        _ => PushError::Json(e.to_string()),
    })?;
    let mut out = Vec::with_capacity(body.samples.len());
    for (index, raw) in body.samples.iter().enumerate() {
        let entry = parse_entry(raw).map_err(|reason| PushError::Entry { index, reason })?;
        out.push(entry);
    }
    Ok(out)
}

fn parse_entry(raw: &RawValue) -> Result<SeriesSamples, String> {
    let entry: Entry = serde_json::from_str(raw.get()).map_err(|e| {
        let msg = e.to_string();
        // serde_json appends " at line L column C"; the index already locates the entry.
        match msg.find(" at line ") {
            Some(i) => msg[..i].to_string(),
            None => msg,
        }
    })?;
    let metric = entry.metric.ok_or("missing \"metric\"")?;
    if metric.len() > MAX_NAME_BYTES {
        return Err(format!(
            "metric name too long ({} bytes, limit {MAX_NAME_BYTES})",
            metric.len()
        ));
    }
    if !is_valid_metric_name(&metric) {
        return Err(format!("invalid metric name {metric:?}"));
    }
    let mut labels = Labels::new();
    if let Some(map) = entry.labels {
        if map.len() > MAX_LABELS {
            return Err(format!(
                "too many labels ({}, limit {MAX_LABELS})",
                map.len()
            ));
        }
        for (name, value) in map {
            if name.len() > MAX_NAME_BYTES {
                return Err(format!(
                    "label name too long ({} bytes, limit {MAX_NAME_BYTES})",
                    name.len()
                ));
            }
            if !is_valid_label_name(&name) || name.starts_with("__") {
                return Err(format!("invalid label name {name:?}"));
            }
            let serde_json::Value::String(value) = value else {
                return Err(format!("label {name:?}: value must be a string"));
            };
            if value.len() > MAX_LABEL_VALUE_BYTES {
                return Err(format!(
                    "label {name:?}: value too long ({} bytes, limit {MAX_LABEL_VALUE_BYTES})",
                    value.len()
                ));
            }
            // Prometheus drops empty-valued labels: a label with an empty value is no label.
            if !value.is_empty() {
                labels.insert(name, value);
            }
        }
    }
    let values = match (entry.value, entry.values) {
        (Some(_), Some(_)) => return Err("both \"value\" and \"values\" given; give one".into()),
        (None, None) => return Err("neither \"value\" nor \"values\" given".into()),
        (Some(v), None) => vec![number(&v).map_err(|r| format!("value: {r}"))?],
        (None, Some(vs)) => {
            if vs.is_empty() {
                return Err("\"values\" is empty".into());
            }
            let mut out = Vec::with_capacity(vs.len());
            for (i, v) in vs.iter().enumerate() {
                out.push(number(v).map_err(|r| format!("values[{i}]: {r}"))?);
            }
            out
        }
    };
    Ok(SeriesSamples {
        metric,
        labels,
        values,
    })
}

fn number(v: &serde_json::Value) -> Result<f64, String> {
    match v {
        serde_json::Value::Number(n) => match n.as_f64() {
            Some(x) if x.is_finite() => Ok(x),
            _ => Err(format!("{n} is not a finite number")),
        },
        serde_json::Value::String(s) => Err(format!(
            "{s:?} is not a number (non-numeric or non-finite values are refused)"
        )),
        other => Err(format!("{other} is not a number")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn bad(body: &str, expect: &str) {
        match parse(body.as_bytes()) {
            Ok(v) => panic!("accepted {body}: {v:?}"),
            Err(e) => assert_eq!(e.to_string(), expect),
        }
    }

    #[test]
    fn good_body() {
        let got = parse(
            br#"{"samples":[{"metric":"feature_value","labels":{"model":"fraud","x":""},"values":[1,2.5]},
                {"metric":"acc","value":0.9}]}"#,
        )
        .unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].values, vec![1.0, 2.5]);
        assert_eq!(got[0].labels.len(), 1, "empty label values are dropped");
        assert_eq!(got[1].values, vec![0.9]);
    }

    #[test]
    fn bad_bodies() {
        bad(
            "nope",
            "body is not valid JSON: expected ident at line 1 column 2",
        );
        bad("{}", "body must be an object with a \"samples\" array");
        bad(
            r#"{"samples":[{"metric":"9x","value":1}]}"#,
            "samples[0]: invalid metric name \"9x\"",
        );
        bad(
            r#"{"samples":[{"metric":"a","value":1},{"metric":"a","labels":{"a-b":"x"},"value":1}]}"#,
            "samples[1]: invalid label name \"a-b\"",
        );
        bad(
            r#"{"samples":[{"metric":"a","value":1,"values":[1]}]}"#,
            "samples[0]: both \"value\" and \"values\" given; give one",
        );
        bad(
            r#"{"samples":[{"metric":"a"}]}"#,
            "samples[0]: neither \"value\" nor \"values\" given",
        );
        bad(r#"{"samples":[{"metric":"a","values":[1,"NaN"]}]}"#, "samples[0]: values[1]: \"NaN\" is not a number (non-numeric or non-finite values are refused)");
        bad(
            r#"{"samples":[{"metric":"a","value":1e999}]}"#,
            "samples[0]: number out of range",
        );
        bad(
            r#"{"samples":[{"metric":"a","value":true}]}"#,
            "samples[0]: value: true is not a number",
        );
        bad(r#"{"samples":[{"metric":"a","valu":1}]}"#, "samples[0]: unknown field `valu`, expected one of `metric`, `labels`, `value`, `values`");
        bad(
            r#"{"samples":[{"metric":"a","labels":{"__name__":"x"},"value":1}]}"#,
            "samples[0]: invalid label name \"__name__\"",
        );
        bad(
            r#"{"samples":[{"metric":"a","labels":{"l":1},"value":1}]}"#,
            "samples[0]: label \"l\": value must be a string",
        );
    }
}
