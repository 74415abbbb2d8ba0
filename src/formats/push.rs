//! `POST /api/v1/samples`: the JSON push body, checked as a whole before anything is applied.
//!
//! An entry may carry `timestamps` (Unix ms, one per value, not decreasing) or `timestamp`
//! (for `value`); without them its values arrive now. A timestamp more than [`MAX_FUTURE_MS`]
//! ahead of the server's clock refuses the batch (the engine refuses, in turn, samples older
//! than what their series already took: see `Engine::ingest_timed`).

use serde::de::{IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use crate::labels::{check_label_name, RejectReason, SeriesBuilder, SeriesError, SeriesSamples};

/// How far ahead of the server's clock a pushed timestamp may be: 10 minutes (clock skew).
pub const MAX_FUTURE_MS: i64 = 10 * 60 * 1000;

/// A parsed push body: the series, and per entry its timestamps (`None`: arrived now).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PushBatch {
    pub series: Vec<SeriesSamples>,
    /// One per entry of `series`; `Some` holds one timestamp per value.
    pub timestamps: Vec<Option<Vec<i64>>>,
}

/// Why a push body was refused. An entry's refusal names the entry and what is wrong with it.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PushError {
    #[error("body is not valid JSON: {0}")]
    Json(String),
    /// What serde found (an unknown top-level key, a missing or mistyped `samples`).
    #[error("body must be an object with a \"samples\" array and nothing else: {0}")]
    Shape(String),
    #[error("samples[{index}]: {source}")]
    Entry {
        index: usize,
        /// Values the whole body carried (see [`PushError::values`]).
        values: usize,
        #[source]
        source: EntryError,
    },
}

impl PushError {
    /// The counter reason (`driftgauge_*_rejected_total{reason}`).
    pub fn reason(&self) -> RejectReason {
        match self {
            PushError::Json(_) | PushError::Shape(_) => RejectReason::BadBody,
            PushError::Entry { source, .. } => source.reason(),
        }
    }

    pub fn index(&self) -> Option<usize> {
        match self {
            PushError::Entry { index, .. } => Some(*index),
            _ => None,
        }
    }

    /// The values the refused body carried: every entry's `value` and `values` elements, as
    /// far as each entry can be read; 0 when the body is not a batch at all.
    pub fn values(&self) -> usize {
        match self {
            PushError::Entry { values, .. } => *values,
            PushError::Json(_) | PushError::Shape(_) => 0,
        }
    }
}

/// What is wrong with one entry of a push body.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum EntryError {
    /// Not an object of the known fields, or a field of the wrong type (serde's message).
    #[error("{0}")]
    Decode(String),
    #[error("missing \"metric\"")]
    MissingMetric,
    #[error(transparent)]
    Series(#[from] SeriesError),
    #[error("label {name:?}: value must be a string")]
    LabelNotString { name: String },
    #[error("both \"value\" and \"values\" given; give one")]
    BothValues,
    #[error("neither \"value\" nor \"values\" given")]
    NoValues,
    #[error("\"values\" is empty")]
    EmptyValues,
    /// `field` is `value` or `values[i]`.
    #[error("{field}: {problem}")]
    NotANumber { field: String, problem: String },
    #[error("\"timestamp\" goes with \"value\"; with \"values\" give \"timestamps\"")]
    TimestampWithValues,
    #[error("\"timestamps\" go with \"values\"; with \"value\" give \"timestamp\"")]
    TimestampsWithValue,
    #[error("{timestamps} timestamps for {values} values; give one per value")]
    TimestampsLength { values: usize, timestamps: usize },
    /// `field` is `timestamp` or `timestamps[i]`.
    #[error("{field}: {problem}")]
    BadTimestamp { field: String, problem: String },
    #[error("timestamps[{index}]: {ts} is before timestamps[{prev}] ({prev_ts}); timestamps must not decrease")]
    TimestampsDecrease {
        index: usize,
        ts: i64,
        prev: usize,
        prev_ts: i64,
    },
    #[error("{field}: {ts} is {ahead_ms} ms in the future (at most {max_ms} ms ahead of the server's clock)")]
    InFuture {
        field: String,
        ts: i64,
        ahead_ms: i64,
        max_ms: i64,
    },
}

impl EntryError {
    pub fn reason(&self) -> RejectReason {
        match self {
            EntryError::Series(e) => e.reason(),
            EntryError::MissingMetric => RejectReason::BadName,
            EntryError::Decode(_)
            | EntryError::LabelNotString { .. }
            | EntryError::BothValues
            | EntryError::NoValues
            | EntryError::EmptyValues
            | EntryError::NotANumber { .. }
            | EntryError::TimestampWithValues
            | EntryError::TimestampsWithValue
            | EntryError::TimestampsLength { .. } => RejectReason::BadValue,
            EntryError::BadTimestamp { .. }
            | EntryError::TimestampsDecrease { .. }
            | EntryError::InFuture { .. } => RejectReason::BadTimestamp,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Body<'a> {
    #[serde(borrow)]
    samples: Vec<&'a RawValue>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    metric: Option<String>,
    #[serde(default)]
    labels: Option<LabelPairs>,
    value: Option<serde_json::Value>,
    values: Option<Vec<serde_json::Value>>,
    timestamp: Option<serde_json::Value>,
    timestamps: Option<Vec<serde_json::Value>>,
}

/// The members of a `labels` object in order, a repeated name kept (a map would keep only
/// its last value), so that a repeat is refused as remote write refuses it.
struct LabelPairs(Vec<(String, serde_json::Value)>);

impl<'de> Deserialize<'de> for LabelPairs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Pairs;
        impl<'de> Visitor<'de> for Pairs {
            type Value = LabelPairs;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a map")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<LabelPairs, A::Error> {
                let mut out = Vec::new();
                while let Some(pair) = map.next_entry()? {
                    out.push(pair);
                }
                Ok(LabelPairs(out))
            }
        }
        d.deserialize_map(Pairs)
    }
}

/// Only the values of an entry, for counting those of a refused body.
#[derive(Deserialize)]
struct Carried {
    #[serde(default)]
    value: Option<IgnoredAny>,
    #[serde(default)]
    values: Option<Vec<IgnoredAny>>,
}

fn carried(raw: &RawValue) -> usize {
    serde_json::from_str::<Carried>(raw.get())
        .map(|c| usize::from(c.value.is_some()) + c.values.map_or(0, |v| v.len()))
        .unwrap_or(0)
}

/// serde_json's message without its " at line L column C" (a short excerpt of the field name
/// at most: serde quotes the unknown key, and names are bounded by the body limit only, so
/// the message is cut).
fn without_position(e: &serde_json::Error) -> String {
    let msg = e.to_string();
    let msg = msg.find(" at line ").map_or(msg.as_str(), |i| &msg[..i]);
    crate::formats::clip(msg)
}

/// Parses and validates a whole push body. Nothing is returned unless every entry is good.
/// Timestamps are checked against no clock (see [`parse_timed`]) and left out.
pub fn parse(body: &[u8]) -> Result<Vec<SeriesSamples>, PushError> {
    parse_timed(body, i64::MAX - MAX_FUTURE_MS).map(|b| b.series)
}

/// Parses and validates a whole push body with its timestamps; `now_ms` is the server's clock,
/// for the bound on timestamps in the future.
pub fn parse_timed(body: &[u8], now_ms: i64) -> Result<PushBatch, PushError> {
    let body: Body = serde_json::from_slice(body).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => PushError::Shape(without_position(&e)),
        _ => PushError::Json(e.to_string()),
    })?;
    let mut out = PushBatch {
        series: Vec::with_capacity(body.samples.len()),
        timestamps: Vec::with_capacity(body.samples.len()),
    };
    for (index, raw) in body.samples.iter().enumerate() {
        match parse_entry(raw, now_ms) {
            Ok((entry, ts)) => {
                out.series.push(entry);
                out.timestamps.push(ts);
            }
            Err(source) => {
                return Err(PushError::Entry {
                    index,
                    values: body.samples.iter().map(|raw| carried(raw)).sum(),
                    source,
                })
            }
        }
    }
    Ok(out)
}

type Timestamps = Option<Vec<i64>>;

fn parse_entry(raw: &RawValue, now_ms: i64) -> Result<(SeriesSamples, Timestamps), EntryError> {
    let entry: Entry = serde_json::from_str(raw.get()).map_err(|e| {
        let msg = e.to_string();
        // serde_json appends " at line L column C"; the index already locates the entry.
        EntryError::Decode(match msg.find(" at line ") {
            Some(i) => msg[..i].to_string(),
            None => msg,
        })
    })?;
    let metric = entry.metric.ok_or(EntryError::MissingMetric)?;
    let mut series = SeriesBuilder::with_metric(metric)?;
    for (name, value) in entry.labels.map(|l| l.0).unwrap_or_default() {
        let serde_json::Value::String(value) = value else {
            check_label_name(&name)?;
            return Err(EntryError::LabelNotString { name });
        };
        series.label(&name, &value)?;
    }
    let (metric, labels) = series.finish()?;
    let not_a_number = |field: String| move |problem| EntryError::NotANumber { field, problem };
    let single = entry.value.as_ref().map(|_| ());
    let values = match (entry.value, entry.values) {
        (Some(_), Some(_)) => return Err(EntryError::BothValues),
        (None, None) => return Err(EntryError::NoValues),
        (Some(v), None) => vec![number(&v).map_err(not_a_number("value".into()))?],
        (None, Some(vs)) => {
            if vs.is_empty() {
                return Err(EntryError::EmptyValues);
            }
            let mut out = Vec::with_capacity(vs.len());
            for (i, v) in vs.iter().enumerate() {
                // The field name is formatted only for a bad value: not once per value.
                out.push(number(v).map_err(|problem| EntryError::NotANumber {
                    field: format!("values[{i}]"),
                    problem,
                })?);
            }
            out
        }
    };
    let timestamps = match (entry.timestamp, entry.timestamps, values.len()) {
        (Some(_), _, _) if single.is_none() => return Err(EntryError::TimestampWithValues),
        (_, Some(_), _) if single.is_some() => return Err(EntryError::TimestampsWithValue),
        // With `values`, `timestamp` was refused above.
        (Some(_), Some(_), _) => return Err(EntryError::TimestampWithValues),
        (Some(t), None, _) => Some(vec![timestamp(&t, "timestamp".into(), now_ms)?]),
        (None, Some(ts), n) => {
            if ts.len() != n {
                return Err(EntryError::TimestampsLength {
                    values: n,
                    timestamps: ts.len(),
                });
            }
            let mut out: Vec<i64> = Vec::with_capacity(n);
            for (i, t) in ts.iter().enumerate() {
                let t = timestamp(t, format!("timestamps[{i}]"), now_ms)?;
                if let Some(&prev_ts) = out.last() {
                    if t < prev_ts {
                        return Err(EntryError::TimestampsDecrease {
                            index: i,
                            ts: t,
                            prev: i - 1,
                            prev_ts,
                        });
                    }
                }
                out.push(t);
            }
            Some(out)
        }
        (None, None, _) => None,
    };
    Ok((
        SeriesSamples {
            metric,
            labels,
            values,
        },
        timestamps,
    ))
}

/// A timestamp: an integer of Unix milliseconds, at most [`MAX_FUTURE_MS`] after `now_ms`.
fn timestamp(v: &serde_json::Value, field: String, now_ms: i64) -> Result<i64, EntryError> {
    let bad = |problem: String| EntryError::BadTimestamp {
        field: field.clone(),
        problem,
    };
    let t = match v {
        serde_json::Value::Number(n) => n.as_i64().ok_or_else(|| {
            bad(format!(
                "{n} is not a whole number of milliseconds since the Unix epoch"
            ))
        })?,
        serde_json::Value::String(text) => {
            return Err(bad(format!(
                "{} is not a number of milliseconds since the Unix epoch",
                crate::formats::excerpt(text)
            )))
        }
        other => {
            return Err(bad(format!(
                "{} is not a number of milliseconds since the Unix epoch",
                crate::formats::clip(&other.to_string())
            )))
        }
    };
    if t < 0 {
        return Err(bad(format!("{t} is before the Unix epoch")));
    }
    let ahead = t.saturating_sub(now_ms);
    if ahead > MAX_FUTURE_MS {
        return Err(EntryError::InFuture {
            field,
            ts: t,
            ahead_ms: ahead,
            max_ms: MAX_FUTURE_MS,
        });
    }
    Ok(t)
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
    use crate::labels::MAX_LABELS;

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
        bad(
            "{}",
            "body must be an object with a \"samples\" array and nothing else: missing field `samples`",
        );
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
        bad(r#"{"samples":[{"metric":"a","valu":1}]}"#, "samples[0]: unknown field `valu`, expected one of `metric`, `labels`, `value`, `values`, `timestamp`, `timestamps`");
        bad(
            r#"{"samples":[{"metric":"a","labels":{"__name__":"x"},"value":1}]}"#,
            "samples[0]: invalid label name \"__name__\": names starting with \"__\" are reserved",
        );
        bad(
            r#"{"samples":[{"metric":"a","labels":{"l":1},"value":1}]}"#,
            "samples[0]: label \"l\": value must be a string",
        );
    }

    #[track_caller]
    fn reason(body: &str) -> RejectReason {
        parse(body.as_bytes()).expect_err("refused").reason()
    }

    #[test]
    fn reasons_follow_what_is_wrong() {
        let long_name = "n".repeat(300);
        let long_value = "v".repeat(5000);
        for (body, want) in [
            ("nope".to_string(), RejectReason::BadBody),
            ("{}".to_string(), RejectReason::BadBody),
            (
                r#"{"samples":[{"value":1}]}"#.to_string(),
                RejectReason::BadName,
            ),
            (
                r#"{"samples":[{"metric":"a b","value":1}]}"#.to_string(),
                RejectReason::BadName,
            ),
            (
                format!(r#"{{"samples":[{{"metric":"{long_name}","value":1}}]}}"#),
                RejectReason::TooLarge,
            ),
            (
                format!(
                    r#"{{"samples":[{{"metric":"m","labels":{{"{long_name}":"x"}},"value":1}}]}}"#
                ),
                RejectReason::TooLarge,
            ),
            (
                format!(
                    r#"{{"samples":[{{"metric":"m","labels":{{"l":"{long_value}"}},"value":1}}]}}"#
                ),
                RejectReason::TooLarge,
            ),
            (
                r#"{"samples":[{"metric":"m","labels":{"l":1},"value":1}]}"#.to_string(),
                RejectReason::BadValue,
            ),
            (
                r#"{"samples":[{"metric":"m","values":[]}]}"#.to_string(),
                RejectReason::BadValue,
            ),
            (
                r#"{"samples":[{"metric":"m","valu":1}]}"#.to_string(),
                RejectReason::BadValue,
            ),
        ] {
            assert_eq!(reason(&body), want, "{}", &body[..body.len().min(80)]);
        }
        let many: Vec<String> = (0..=MAX_LABELS).map(|i| format!(r#""l{i}":"x""#)).collect();
        let body = format!(
            r#"{{"samples":[{{"metric":"m","labels":{{{}}},"value":1}}]}}"#,
            many.join(",")
        );
        assert_eq!(reason(&body), RejectReason::TooLarge);
    }

    /// The reason used to be picked from the message's words: "name" anywhere (a label
    /// called `hostname`, an unknown field `name`) gave `bad_name`, "too" anywhere gave
    /// `too_large`.
    #[test]
    fn a_label_called_hostname_or_valued_tooth_gets_the_reason_of_what_is_wrong() {
        let long_value = "v".repeat(5000);
        let body = format!(
            r#"{{"samples":[{{"metric":"m","labels":{{"hostname":"{long_value}"}},"value":1}}]}}"#
        );
        assert_eq!(reason(&body), RejectReason::TooLarge);
        assert_eq!(
            reason(r#"{"samples":[{"metric":"m","labels":{"hostname":1},"value":1}]}"#),
            RejectReason::BadValue
        );
        assert_eq!(
            reason(r#"{"samples":[{"metric":"m","name":"x","value":1}]}"#),
            RejectReason::BadValue
        );
        assert_eq!(
            reason(r#"{"samples":[{"metric":"m","labels":{"tooth":"tooth"},"value":"tooth"}]}"#),
            RejectReason::BadValue
        );
        assert_eq!(
            reason(r#"{"samples":[{"metric":"tooth.x","value":1}]}"#),
            RejectReason::BadName
        );
    }

    #[test]
    fn a_duplicate_label_key_is_refused_naming_the_entry_and_the_label() {
        let e = parse(
            br#"{"samples":[{"metric":"m","value":1},
                {"metric":"m","labels":{"model":"a","model":"b"},"value":1}]}"#,
        )
        .expect_err("refused");
        assert_eq!(e.to_string(), "samples[1]: duplicate label name \"model\"");
        assert_eq!(e.index(), Some(1));
        assert_eq!(e.reason(), RejectReason::BadName);
        // An empty value is no label, but a repeat of its name is still a repeat.
        bad(
            r#"{"samples":[{"metric":"m","labels":{"model":"","model":"b"},"value":1}]}"#,
            "samples[0]: duplicate label name \"model\"",
        );
    }

    #[test]
    fn a_refused_body_counts_the_values_it_carried() {
        let e = parse(
            br#"{"samples":[{"metric":"m","values":[1,2,3]},
                {"metric":"9x","value":1},
                {"metric":"m","values":[1,"x"]},
                {"metric":"m","values":"not an array"},
                3]}"#,
        )
        .expect_err("refused");
        assert_eq!((e.index(), e.values()), (Some(1), 6));
        assert_eq!(parse(b"nope").expect_err("refused").values(), 0);
        assert_eq!(parse(b"{}").expect_err("refused").values(), 0);
    }
}

#[cfg(test)]
mod timestamps {
    use super::*;

    const NOW: i64 = 1_700_000_000_000;

    #[test]
    fn timestamps_go_with_their_values() {
        let b = parse_timed(
            br#"{"samples":[{"metric":"m","values":[1,2],"timestamps":[5,5]},
                {"metric":"m","value":1,"timestamp":7},{"metric":"m","value":3}]}"#,
            NOW,
        )
        .expect("good");
        assert_eq!(b.timestamps, [Some(vec![5, 5]), Some(vec![7]), None]);
        assert_eq!(b.series.len(), 3);
        let ahead = NOW + MAX_FUTURE_MS;
        let body = format!(r#"{{"samples":[{{"metric":"m","value":1,"timestamp":{ahead}}}]}}"#);
        assert!(
            parse_timed(body.as_bytes(), NOW).is_ok(),
            "just at the bound"
        );
    }

    #[test]
    fn bad_timestamps_name_the_entry_and_the_field() {
        let bad = |body: &str, want: &str| {
            let e = parse_timed(body.as_bytes(), NOW).expect_err(body);
            assert_eq!(e.to_string(), want);
            e.reason()
        };
        let ahead = NOW + MAX_FUTURE_MS + 1;
        let cases = [
            (r#"{"samples":[{"metric":"m","values":[1],"timestamp":1}]}"#.to_string(), "samples[0]: \"timestamp\" goes with \"value\"; with \"values\" give \"timestamps\"".to_string(), RejectReason::BadValue),
            (r#"{"samples":[{"metric":"m","value":1,"timestamps":[1]}]}"#.to_string(), "samples[0]: \"timestamps\" go with \"values\"; with \"value\" give \"timestamp\"".to_string(), RejectReason::BadValue),
            (r#"{"samples":[{"metric":"m","values":[1,2],"timestamps":[1]}]}"#.to_string(), "samples[0]: 1 timestamps for 2 values; give one per value".to_string(), RejectReason::BadValue),
            (r#"{"samples":[{"metric":"m","value":1},{"metric":"m","values":[1,2],"timestamps":[2,1]}]}"#.to_string(), "samples[1]: timestamps[1]: 1 is before timestamps[0] (2); timestamps must not decrease".to_string(), RejectReason::BadTimestamp),
            (r#"{"samples":[{"metric":"m","value":1,"timestamp":"now"}]}"#.to_string(), "samples[0]: timestamp: \"now\" is not a number of milliseconds since the Unix epoch".to_string(), RejectReason::BadTimestamp),
            (r#"{"samples":[{"metric":"m","value":1,"timestamp":-1}]}"#.to_string(), "samples[0]: timestamp: -1 is before the Unix epoch".to_string(), RejectReason::BadTimestamp),
            (format!(r#"{{"samples":[{{"metric":"m","value":1,"timestamp":{ahead}}}]}}"#), format!("samples[0]: timestamp: {ahead} is 600001 ms in the future (at most 600000 ms ahead of the server's clock)"), RejectReason::BadTimestamp),
        ];
        for (body, want, reason) in cases {
            assert_eq!(bad(&body, &want), reason, "{body}");
        }
    }
}

#[cfg(test)]
mod top_level_keys {
    use super::*;

    /// Regression: unknown top-level keys were accepted while unknown entry keys were
    /// refused.
    #[test]
    fn an_unknown_top_level_key_is_refused_like_an_unknown_entry_key() {
        let e = parse(br#"{"samples":[{"metric":"m","value":1}],"sample":[]}"#).unwrap_err();
        assert_eq!(e.reason(), RejectReason::BadBody);
        assert!(
            matches!(&e, PushError::Shape(m) if m.contains("unknown field `sample`")),
            "{e}"
        );
        let e = parse(br#"{"samples":[{"metric":"m","value":1,"x":2}]}"#).unwrap_err();
        assert!(e.to_string().contains("unknown field `x`"), "{e}");
    }
}
