//! Prometheus's HTTP API answers (`/api/v1/query`, `/api/v1/query_range`): the JSON envelope,
//! vector/matrix/scalar results, and the samples a query source takes from them. Native
//! histogram results (`"histogram": [t, {"count", "sum", "buckets": [[rule, left, right,
//! count], ...]}]`, `"histograms"` in a matrix) are expanded as remote write expands them
//! (`formats::native`): `<record>_bucket{le}` with the cumulative count at each bucket's
//! right bound (`le="+Inf"` the count), `<record>_count` and `<record>_sum`.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::formats::native::{self, NativeError};
use crate::labels::{validate_series, Labels, RejectReason, SeriesError, SeriesSamples};

/// Why an answer of the API is not a usable result.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PromApiError {
    #[error("HTTP {status}: {body}")]
    Status { status: u16, body: String },
    #[error("query failed ({error_type}): {error}")]
    Api { error_type: String, error: String },
    #[error("undecodable response: {0}")]
    Decode(String),
    #[error("result type {0:?} is not supported (want vector or scalar)")]
    ResultType(&'static str),
    /// A result series the one series validator refuses.
    #[error("{source}")]
    Series {
        /// Values the whole answer carried.
        values: usize,
        #[source]
        source: SeriesError,
    },
    /// A native histogram result that cannot be expanded.
    #[error("{source}")]
    Histogram {
        /// Values the whole answer carried.
        values: usize,
        #[source]
        source: NativeError,
    },
    #[error(
        "two result series are the same series {record}{labels:?} once the metric name is dropped"
    )]
    DuplicateSeries {
        record: String,
        labels: Labels,
        /// Values the whole answer carried.
        values: usize,
    },
}

impl PromApiError {
    /// The counter reason for an answer refused for its series; `None` for an answer that
    /// is not a result at all (counted as a failure of the query, not in values).
    pub fn reason(&self) -> Option<RejectReason> {
        match self {
            PromApiError::Series { source, .. } => Some(source.reason()),
            PromApiError::DuplicateSeries { .. } => Some(RejectReason::DuplicateSeries),
            PromApiError::Histogram { .. } => Some(RejectReason::BadValue),
            PromApiError::Status { .. }
            | PromApiError::Api { .. }
            | PromApiError::Decode(_)
            | PromApiError::ResultType(_) => None,
        }
    }

    /// The values (points, NaN included) of an answer refused for its series; 0 otherwise.
    pub fn values(&self) -> usize {
        match self {
            PromApiError::Series { values, .. }
            | PromApiError::DuplicateSeries { values, .. }
            | PromApiError::Histogram { values, .. } => *values,
            _ => 0,
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct ApiResponse {
    status: String,
    #[serde(default)]
    data: Option<ApiData>,
    #[serde(rename = "errorType", default)]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "resultType", content = "result", rename_all = "lowercase")]
pub enum ApiData {
    Vector(Vec<InstantSeries>),
    Matrix(Vec<RangeSeries>),
    Scalar(Point),
    String(serde::de::IgnoredAny),
}

/// `[unix seconds, "value"]`.
pub type Point = (f64, String);

#[derive(Debug, Deserialize)]
pub struct InstantSeries {
    #[serde(default)]
    metric: BTreeMap<String, String>,
    /// Absent for native histogram samples (`"histogram"`).
    #[serde(default)]
    value: Option<Point>,
    #[serde(default)]
    histogram: Option<HistogramPoint>,
}

/// `[unix seconds, {"count": "..", "sum": "..", "buckets": [...]}]`.
pub type HistogramPoint = (f64, HistogramValue);

/// A native histogram as the API writes it: float counts as text, and each non-empty
/// bucket as `[boundary rule, left, right, count]` (rule 0: `(left, right]`, 1:
/// `[left, right)`, 2: open, 3: closed).
#[derive(Debug, Deserialize)]
pub struct HistogramValue {
    count: String,
    sum: String,
    #[serde(default)]
    buckets: Vec<(u8, String, String, String)>,
}

#[derive(Debug, Deserialize)]
pub struct RangeSeries {
    #[serde(default)]
    metric: BTreeMap<String, String>,
    #[serde(default)]
    values: Vec<Point>,
    #[serde(default)]
    histograms: Vec<HistogramPoint>,
}

pub fn parse_response(status: u16, body: &[u8]) -> Result<ApiData, PromApiError> {
    let snippet = || {
        let text = String::from_utf8_lossy(body);
        let text = text.trim();
        match text.char_indices().nth(300) {
            Some((i, _)) => format!("{}...", &text[..i]),
            None => text.to_string(),
        }
    };
    match serde_json::from_slice::<ApiResponse>(body) {
        Ok(r) if r.status == "error" => Err(PromApiError::Api {
            error_type: r.error_type.unwrap_or_else(|| format!("HTTP {status}")),
            error: r.error.unwrap_or_default(),
        }),
        Ok(_) if !(200..300).contains(&status) => Err(PromApiError::Status {
            status,
            body: snippet(),
        }),
        Ok(ApiResponse {
            data: Some(data),
            status: s,
            ..
        }) if s == "success" => Ok(data),
        Ok(r) => Err(PromApiError::Decode(format!(
            "status {:?} without data",
            r.status
        ))),
        Err(_) if !(200..300).contains(&status) => Err(PromApiError::Status {
            status,
            body: snippet(),
        }),
        Err(e) => Err(PromApiError::Decode(e.to_string())),
    }
}

/// A native histogram of series `record{labels}` as classic series, one value each.
fn histogram_samples(
    record: &str,
    labels: &Labels,
    h: &HistogramValue,
    values: usize,
) -> Result<Vec<SeriesSamples>, PromApiError> {
    let number = |text: &str| -> Result<f64, PromApiError> {
        match text {
            "+Inf" | "Inf" => Ok(f64::INFINITY),
            "-Inf" => Ok(f64::NEG_INFINITY),
            _ => text
                .parse::<f64>()
                .map_err(|_| PromApiError::Decode(format!("histogram number {text:?}"))),
        }
    };
    let count = number(&h.count)?;
    let sum = number(&h.sum)?;
    let mut buckets = Vec::with_capacity(h.buckets.len());
    for (_, _, right, c) in &h.buckets {
        buckets.push((number(right)?, number(c)?));
    }
    let bad = |source| PromApiError::Histogram { values, source };
    if !(count >= 0.0 && count.is_finite()) {
        return Err(bad(NativeError::BadCount {
            what: "count",
            value: count,
        }));
    }
    for (i, &(_, c)) in buckets.iter().enumerate() {
        if !(c >= 0.0 && c.is_finite()) {
            return Err(bad(NativeError::BadBucketCount {
                side: "result",
                number: i + 1,
                count: c,
            }));
        }
    }
    let cumulative = native::cumulate(buckets, count).map_err(bad)?;
    native::expand_cumulative(record, labels, &cumulative, count, sum).map_err(bad)
}

/// A sample value as Prometheus writes it; `None` for `NaN` and infinities (skipped).
fn value(text: &str) -> Result<Option<f64>, PromApiError> {
    match text {
        "NaN" | "+Inf" | "-Inf" | "Inf" => Ok(None),
        _ => match text.parse::<f64>() {
            Ok(v) if v.is_finite() => Ok(Some(v)),
            Ok(_) => Ok(None),
            Err(_) => Err(PromApiError::Decode(format!("sample value {text:?}"))),
        },
    }
}

/// A result's labels for `record`: `__name__` (and any other `__` label) dropped, checked by
/// the one series validator, and not those of an earlier series of the same answer.
/// `values` is what the answer carried, for the error.
fn series_labels(
    record: &str,
    metric: BTreeMap<String, String>,
    seen: &mut std::collections::BTreeSet<Labels>,
    values: usize,
) -> Result<Labels, PromApiError> {
    let labels: Labels = metric
        .into_iter()
        .filter(|(k, _)| !k.starts_with("__"))
        .collect();
    validate_series(record, &labels).map_err(|source| PromApiError::Series { values, source })?;
    if !seen.insert(labels.clone()) {
        return Err(PromApiError::DuplicateSeries {
            record: record.to_string(),
            labels,
            values,
        });
    }
    Ok(labels)
}

/// An instant query's result as one batch of samples of `record`.
pub fn instant_samples(record: &str, data: ApiData) -> Result<Vec<SeriesSamples>, PromApiError> {
    let sample = |labels: Labels, v: f64| SeriesSamples {
        metric: record.to_string(),
        labels,
        values: vec![v],
    };
    match data {
        ApiData::Scalar((_, text)) => Ok(value(&text)?
            .map(|v| sample(Labels::new(), v))
            .into_iter()
            .collect()),
        ApiData::Vector(result) => {
            let carried = result
                .iter()
                .filter(|s| s.value.is_some() || s.histogram.is_some())
                .count();
            let mut seen = std::collections::BTreeSet::new();
            let mut out = Vec::with_capacity(result.len());
            for s in result {
                let labels = series_labels(record, s.metric, &mut seen, carried)?;
                if let Some((_, h)) = &s.histogram {
                    out.extend(histogram_samples(record, &labels, h, carried)?);
                }
                if let Some((_, text)) = s.value {
                    if let Some(v) = value(&text)? {
                        out.push(sample(labels, v));
                    }
                }
            }
            Ok(out)
        }
        ApiData::Matrix(_) => Err(PromApiError::ResultType("matrix")),
        ApiData::String(_) => Err(PromApiError::ResultType("string")),
    }
}

/// A range result (`metric[1h]` or `query_range`) as batches of samples of `record`, one
/// batch per timestamp (Unix ms), oldest first.
pub fn range_batches(
    record: &str,
    data: ApiData,
) -> Result<Vec<(i64, Vec<SeriesSamples>)>, PromApiError> {
    let series = match data {
        ApiData::Matrix(series) => series,
        ApiData::Vector(_) => return Err(PromApiError::ResultType("vector")),
        ApiData::Scalar(_) => return Err(PromApiError::ResultType("scalar")),
        ApiData::String(_) => return Err(PromApiError::ResultType("string")),
    };
    let carried = series
        .iter()
        .map(|s| s.values.len() + s.histograms.len())
        .sum();
    let mut seen = std::collections::BTreeSet::new();
    let mut by_time: BTreeMap<i64, Vec<SeriesSamples>> = BTreeMap::new();
    for s in series {
        let labels = series_labels(record, s.metric, &mut seen, carried)?;
        for (t, text) in s.values {
            let Some(v) = value(&text)? else {
                continue;
            };
            if !t.is_finite() {
                return Err(PromApiError::Decode(format!("sample timestamp {t}")));
            }
            by_time
                .entry((t * 1000.0).round() as i64)
                .or_default()
                .push(SeriesSamples {
                    metric: record.to_string(),
                    labels: labels.clone(),
                    values: vec![v],
                });
        }
        for (t, h) in &s.histograms {
            if !t.is_finite() {
                return Err(PromApiError::Decode(format!("histogram timestamp {t}")));
            }
            let expanded = histogram_samples(record, &labels, h, carried)?;
            by_time
                .entry((t * 1000.0).round() as i64)
                .or_default()
                .extend(expanded);
        }
    }
    Ok(by_time.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(json: &str) -> ApiData {
        parse_response(200, json.as_bytes()).expect("success")
    }

    #[test]
    fn vector_results_become_samples_of_the_record() {
        let d = data(
            r#"{"status":"success","data":{"resultType":"vector","result":[
                {"metric":{"__name__":"up","job":"a","instance":"x:1"},"value":[1700000000.5,"1.5"]},
                {"metric":{"__name__":"up","job":"b"},"value":[1700000000.5,"NaN"]},
                {"metric":{"job":"c"},"value":[1700000000.5,"+Inf"]},
                {"metric":{"job":"d"},"value":[1700000000.5,"-Inf"]},
                {"metric":{"job":"e"},"value":[1700000000.5,"-2e-3"]}]}}"#,
        );
        let batch = instant_samples("up_copy", d).expect("samples");
        assert_eq!(batch.len(), 2);
        assert_eq!(batch[0].metric, "up_copy");
        assert_eq!(
            batch[0].labels,
            Labels::from([
                ("instance".to_string(), "x:1".to_string()),
                ("job".to_string(), "a".to_string())
            ])
        );
        assert_eq!(batch[0].values, vec![1.5]);
        assert_eq!(batch[1].values, vec![-0.002]);
    }

    #[test]
    fn scalar_results_have_no_labels() {
        let batch = instant_samples(
            "s",
            data(r#"{"status":"success","data":{"resultType":"scalar","result":[1,"42"]}}"#),
        )
        .expect("samples");
        assert_eq!(batch.len(), 1);
        assert!(batch[0].labels.is_empty());
        assert_eq!(batch[0].values, vec![42.0]);
        let nan = instant_samples(
            "s",
            data(r#"{"status":"success","data":{"resultType":"scalar","result":[1,"NaN"]}}"#),
        )
        .expect("samples");
        assert!(nan.is_empty());
    }

    #[test]
    fn errors_are_named() {
        let e = parse_response(
            400,
            br#"{"status":"error","errorType":"bad_data","error":"parse error at char 3"}"#,
        )
        .expect_err("error");
        assert_eq!(
            e.to_string(),
            "query failed (bad_data): parse error at char 3"
        );
        let e = parse_response(502, b"<html>bad gateway</html>").expect_err("error");
        assert_eq!(e.to_string(), "HTTP 502: <html>bad gateway</html>");
        let e = parse_response(200, b"{").expect_err("error");
        assert!(matches!(e, PromApiError::Decode(_)), "{e}");
        let e = parse_response(200, br#"{"status":"success"}"#).expect_err("error");
        assert!(matches!(e, PromApiError::Decode(_)), "{e}");
        let s = data(r#"{"status":"success","data":{"resultType":"string","result":[1,"x"]}}"#);
        assert!(matches!(
            instant_samples("r", s),
            Err(PromApiError::ResultType("string"))
        ));
        let bad = data(
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"abc"]}]}}"#,
        );
        assert!(matches!(
            instant_samples("r", bad),
            Err(PromApiError::Decode(_))
        ));
        let dup = data(
            r#"{"status":"success","data":{"resultType":"vector","result":[
                {"metric":{"__name__":"a","x":"1"},"value":[1,"1"]},
                {"metric":{"__name__":"b","x":"1"},"value":[1,"2"]}]}}"#,
        );
        let e = instant_samples("r", dup).expect_err("refused");
        assert!(matches!(e, PromApiError::DuplicateSeries { .. }), "{e}");
        assert_eq!(
            (e.reason(), e.values()),
            (Some(RejectReason::DuplicateSeries), 2)
        );
        let bad_label = data(
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"a-b":"1"},"value":[1,"1"]}]}}"#,
        );
        let e = instant_samples("r", bad_label).expect_err("refused");
        assert_eq!(e.to_string(), "invalid label name \"a-b\"");
        assert_eq!((e.reason(), e.values()), (Some(RejectReason::BadName), 1));
        let long = "v".repeat(crate::labels::MAX_LABEL_VALUE_BYTES + 1);
        let too_long = data(&format!(
            r#"{{"status":"success","data":{{"resultType":"matrix","result":[
                {{"metric":{{"hostname":"{long}"}},"values":[[1,"1"],[2,"NaN"]]}}]}}}}"#
        ));
        let e = range_batches("r", too_long).expect_err("refused");
        assert_eq!((e.reason(), e.values()), (Some(RejectReason::TooLarge), 2));
    }

    #[test]
    fn range_results_are_batched_by_time_in_order() {
        let d = data(
            r#"{"status":"success","data":{"resultType":"matrix","result":[
                {"metric":{"__name__":"m","k":"a"},"values":[[10,"1"],[20,"2"],[30,"NaN"]]},
                {"metric":{"__name__":"m","k":"b"},"values":[[15,"5"],[20,"6"]]}]}}"#,
        );
        let batches = range_batches("r", d).expect("batches");
        let flat: Vec<(i64, String, f64)> = batches
            .iter()
            .flat_map(|(t, b)| {
                b.iter()
                    .map(move |s| (*t, s.labels["k"].clone(), s.values[0]))
            })
            .collect();
        assert_eq!(
            flat,
            vec![
                (10_000, "a".to_string(), 1.0),
                (15_000, "b".to_string(), 5.0),
                (20_000, "a".to_string(), 2.0),
                (20_000, "b".to_string(), 6.0),
            ]
        );
        let v = data(r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#);
        assert!(matches!(
            range_batches("r", v),
            Err(PromApiError::ResultType("vector"))
        ));
    }

    #[test]
    fn native_histogram_results_are_expanded_into_classic_series() {
        // Prometheus's JSON for the worked example of `formats::native` (schema 0): the
        // negative bucket [-1, -0.5), the zero bucket [-0.001, 0.001], then (0.5, 1], (1, 2],
        // (4, 8], (8, 16].
        let h = r#"{"count":"9","sum":"10.5","buckets":[
            [1,"-1","-0.5","2"],[3,"-0.001","0.001","2"],[0,"0.5","1","1"],
            [0,"1","2","2"],[0,"4","8","1"],[0,"8","16","1"]]}"#;
        let d = data(&format!(
            r#"{{"status":"success","data":{{"resultType":"vector","result":[
                {{"metric":{{"__name__":"score","model":"fraud"}},"histogram":[1700000000,{h}]}},
                {{"metric":{{"model":"other"}},"value":[1700000000,"3"]}}]}}}}"#
        ));
        let batch = instant_samples("rec", d).expect("samples");
        let got: Vec<(String, String, f64)> = batch
            .iter()
            .map(|s| {
                (
                    s.metric.clone(),
                    s.labels.get("le").cloned().unwrap_or_default(),
                    s.values[0],
                )
            })
            .collect();
        let want = |m: &str, le: &str, v: f64| (m.to_string(), le.to_string(), v);
        assert_eq!(
            got,
            vec![
                want("rec_bucket", "-0.5", 2.0),
                want("rec_bucket", "0.001", 4.0),
                want("rec_bucket", "1", 5.0),
                want("rec_bucket", "2", 7.0),
                want("rec_bucket", "8", 8.0),
                want("rec_bucket", "16", 9.0),
                want("rec_bucket", "+Inf", 9.0),
                want("rec_count", "", 9.0),
                want("rec_sum", "", 10.5),
                want("rec", "", 3.0),
            ]
        );
        assert_eq!(batch[0].labels["model"], "fraud");
        // A range result: histograms batched by time with the float points.
        let d = data(
            r#"{"status":"success","data":{"resultType":"matrix","result":[
                {"metric":{"k":"a"},"histograms":[[20,{"count":"3","sum":"1","buckets":[[0,"0.5","1","3"]]}],
                                                  [10,{"count":"0","sum":"0"}]]},
                {"metric":{"k":"b"},"values":[[15,"5"]]}]}}"#,
        );
        let batches = range_batches("r", d).expect("batches");
        let flat: Vec<(i64, String, String, f64)> = batches
            .iter()
            .flat_map(|(t, b)| {
                b.iter().map(move |s| {
                    (
                        *t,
                        s.metric.clone(),
                        s.labels.get("le").cloned().unwrap_or_default(),
                        s.values[0],
                    )
                })
            })
            .collect();
        let at = |t: i64, m: &str, le: &str, v: f64| (t, m.to_string(), le.to_string(), v);
        assert_eq!(
            flat,
            vec![
                at(10_000, "r_bucket", "+Inf", 0.0),
                at(10_000, "r_count", "", 0.0),
                at(10_000, "r_sum", "", 0.0),
                at(15_000, "r", "", 5.0),
                at(20_000, "r_bucket", "1", 3.0),
                at(20_000, "r_bucket", "+Inf", 3.0),
                at(20_000, "r_count", "", 3.0),
                at(20_000, "r_sum", "", 1.0),
            ]
        );
        // A count below its buckets: refused, counted under bad_value.
        let bad = data(
            r#"{"status":"success","data":{"resultType":"vector","result":[
                {"metric":{},"histogram":[1,{"count":"1","sum":"1","buckets":[[0,"0.5","1","3"]]}]}]}}"#,
        );
        let e = instant_samples("r", bad).expect_err("refused");
        assert_eq!((e.reason(), e.values()), (Some(RejectReason::BadValue), 1));
        assert!(e.to_string().contains("count 1 is below the 3"), "{e}");
    }
}
