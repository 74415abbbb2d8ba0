//! The Prometheus remote write 1.0 body (`POST /api/v1/write`, served by `http::remote_write`).
//!
//! The body is a protobuf `prometheus.WriteRequest` compressed with snappy's block format
//! (not the framed format). The protobuf is decoded by hand: only four small messages matter,
//!
//! ```text
//! WriteRequest { repeated TimeSeries timeseries = 1; /* metadata = 3: skipped */ }
//! TimeSeries   { repeated Label labels = 1; repeated Sample samples = 2;
//!                /* exemplars = 3: skipped; histograms = 4: counted and skipped */ }
//! Label        { string name = 1; string value = 2; }
//! Sample       { double value = 1; int64 timestamp = 2; }
//! ```
//!
//! and every other field, of any wire type (groups included), is skipped. The decoder is
//! bounded everywhere: a length is checked against what is left of its buffer before
//! anything is sliced or allocated, the decompressed size is checked before decompressing,
//! and nothing panics on any input.
//!
//! A request is all or nothing: every series is validated by the one series validator
//! (`labels::SeriesBuilder`: `__name__` a valid metric name, other labels valid, not
//! reserved, not repeated, within the limits) before anything is handed to the engine. Stale markers (the NaN with bits `0x7ff0000000000002`, which Prometheus
//! writes when a series disappears) and other non-finite values are skipped and counted,
//! never taken as values. Samples of one series are taken in timestamp order (Prometheus
//! sends one `TimeSeries` per sample, so a series' samples are gathered across the request).

use std::collections::HashMap;

use crate::labels::{Labels, RejectReason, SeriesBuilder, SeriesError, SeriesSamples};

/// The `source` this receiver counts its samples under.
pub const SOURCE: &str = "remote_write";

/// Prometheus's staleness marker: a NaN with this exact bit pattern.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// Largest decompressed body taken, whatever `limits.max_body_bytes` says.
pub const MAX_DECOMPRESSED_BYTES: usize = 64 << 20;

/// Groups nested deeper than this are refused (they never occur in a `WriteRequest`).
const MAX_GROUP_DEPTH: usize = 64;

/// The decompressed size allowed for a body limit: four times the body limit (snappy on
/// remote write data compresses about that much), never more than
/// [`MAX_DECOMPRESSED_BYTES`].
pub fn decompressed_limit(max_body_bytes: usize) -> usize {
    max_body_bytes.saturating_mul(4).min(MAX_DECOMPRESSED_BYTES)
}

/// Why a remote write body was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RemoteWriteError {
    #[error("body is not snappy block-compressed data: {0}")]
    Snappy(String),
    #[error("decompressed body would be {size} bytes, over the limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    #[error("body is not a protobuf prometheus.WriteRequest: {0}")]
    Protobuf(String),
    /// A `TimeSeries` message that is not well-formed (protobuf, UTF-8).
    #[error("timeseries[{index}]: {message}")]
    SeriesProtobuf { index: usize, message: String },
    /// A well-formed `TimeSeries` whose series is refused.
    #[error("timeseries[{index}]: {source}")]
    Series {
        index: usize,
        /// Samples the whole request carried (see [`RemoteWriteError::values`]).
        values: usize,
        #[source]
        source: SeriesError,
    },
}

impl RemoteWriteError {
    /// The counter reason (`driftgauge_*_rejected_total{reason}`).
    pub fn reason(&self) -> RejectReason {
        match self {
            RemoteWriteError::Snappy(_)
            | RemoteWriteError::Protobuf(_)
            | RemoteWriteError::SeriesProtobuf { .. } => RejectReason::BadBody,
            RemoteWriteError::TooLarge { .. } => RejectReason::TooLarge,
            RemoteWriteError::Series { source, .. } => source.reason(),
        }
    }

    /// The index of the bad `TimeSeries`, when one is to blame.
    pub fn index(&self) -> Option<usize> {
        match self {
            RemoteWriteError::Series { index, .. }
            | RemoteWriteError::SeriesProtobuf { index, .. } => Some(*index),
            _ => None,
        }
    }

    /// The samples a request refused for a bad series carried: every `Sample` of every
    /// `TimeSeries`, stale markers included, as far as the body is well-formed; 0 for a
    /// body that could not be decoded.
    pub fn values(&self) -> usize {
        match self {
            RemoteWriteError::Series { values, .. } => *values,
            _ => 0,
        }
    }
}

/// A decoded, validated request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Decoded {
    /// One entry a distinct series, in first-seen order, values in timestamp order; series
    /// left with no value (only stale markers, say) are not listed.
    pub series: Vec<SeriesSamples>,
    /// Values kept.
    pub samples: usize,
    /// Staleness markers skipped.
    pub stale_markers: usize,
    /// Other NaNs and infinities skipped.
    pub non_finite: usize,
    /// Native histogram samples skipped (not supported).
    pub histograms: usize,
    /// With [`HaLabels`]: the cluster and replica named by the first `TimeSeries`, when it
    /// carries both labels (as Mimir's HA tracker, which looks at the first series only).
    pub ha: Option<HaIdentity>,
}

/// The label names of an HA pair: the replica label is dropped from every series (so it is
/// never validated as a series label, and `__replica__` is allowed), the cluster label kept.
#[derive(Debug, Clone, Copy)]
pub struct HaLabels<'a> {
    pub cluster: &'a str,
    pub replica: &'a str,
}

/// Which cluster and replica a request came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HaIdentity {
    pub cluster: String,
    pub replica: String,
}

/// Decompresses and decodes a whole body. Pure; nothing is returned unless every series is
/// good.
pub fn decode(body: &[u8], max_decompressed: usize) -> Result<Decoded, RemoteWriteError> {
    decode_ha(body, max_decompressed, None)
}

/// [`decode`], for a receiver with an HA tracker: the replica label is dropped from every
/// series and the first series' cluster and replica are returned in [`Decoded::ha`].
pub fn decode_ha(
    body: &[u8],
    max_decompressed: usize,
    ha: Option<HaLabels<'_>>,
) -> Result<Decoded, RemoteWriteError> {
    let size =
        snap::raw::decompress_len(body).map_err(|e| RemoteWriteError::Snappy(e.to_string()))?;
    if size > max_decompressed {
        return Err(RemoteWriteError::TooLarge {
            size,
            limit: max_decompressed,
        });
    }
    let raw = snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|e| RemoteWriteError::Snappy(e.to_string()))?;
    decode_write_request_ha(&raw, ha)
}

/// Decodes an uncompressed `WriteRequest`.
///
/// Prometheus sends one `TimeSeries` message per sample, so one series' labels arrive many
/// times in a request. Their bytes are validated (and turned into a [`Labels`]) once: a
/// `TimeSeries` whose label messages are byte for byte those of an earlier, accepted one
/// names the same series, and its samples join that series without another allocation. The
/// result, errors included, is the same as validating every message afresh.
pub fn decode_write_request(buf: &[u8]) -> Result<Decoded, RemoteWriteError> {
    decode_write_request_ha(buf, None)
}

/// [`decode_write_request`] with the HA labels of [`decode_ha`].
pub fn decode_write_request_ha(
    buf: &[u8],
    ha: Option<HaLabels<'_>>,
) -> Result<Decoded, RemoteWriteError> {
    let mut out = Decoded::default();
    let mut index: HashMap<(String, Labels), usize> = HashMap::new();
    // The label messages of a `TimeSeries` (each as its length, then its bytes) → its entry
    // in `gathered`.
    let mut seen: HashMap<Vec<u8>, usize> = HashMap::new();
    let mut gathered: Vec<Gathered> = Vec::new();
    let mut ts = RawSeries::default();
    let mut r = Reader::new(buf);
    let mut n = 0usize;
    // Samples of every `TimeSeries` so far, for counting those of a refused request.
    let mut carried = 0usize;
    while !r.done() {
        let (field, wire) = r.key().map_err(RemoteWriteError::Protobuf)?;
        if field == 1 {
            let bytes = r
                .len_delimited(field, wire)
                .map_err(RemoteWriteError::Protobuf)?;
            let series_index = n;
            n += 1;
            decode_series(bytes, &mut ts).map_err(|message| RemoteWriteError::SeriesProtobuf {
                index: series_index,
                message,
            })?;
            if let Some(ha) = ha {
                if series_index == 0 {
                    out.ha = ha_identity(&ts.labels, ha).map_err(|message| {
                        RemoteWriteError::SeriesProtobuf {
                            index: series_index,
                            message,
                        }
                    })?;
                }
                ts.labels.retain(|&(name, _)| name != ha.replica);
            }
            carried += ts.samples.len();
            out.histograms += ts.histograms;
            let known = seen.get(ts.label_key.as_slice()).copied();
            let (slot, new) = match known {
                Some(i) => (i, None),
                None => {
                    let key = series_of(&ts.labels).map_err(|source| RemoteWriteError::Series {
                        index: series_index,
                        values: carried + samples_in_rest(&mut r, &mut ts),
                        source,
                    })?;
                    match index.get(&key) {
                        Some(&i) => (i, None),
                        None => (gathered.len(), Some(key)),
                    }
                }
            };
            let before = out.samples;
            let mut kept = match new {
                None => std::mem::take(&mut gathered[slot].2),
                Some(_) => Vec::new(),
            };
            for &(t, v) in &ts.samples {
                if v.to_bits() == STALE_NAN_BITS {
                    out.stale_markers += 1;
                } else if !v.is_finite() {
                    out.non_finite += 1;
                } else {
                    kept.push((t, v));
                    out.samples += 1;
                }
            }
            match new {
                None => gathered[slot].2 = kept,
                // A series is listed from its first value on.
                Some((metric, labels)) if out.samples > before => {
                    index.insert((metric.clone(), labels.clone()), slot);
                    gathered.push((metric, labels, kept));
                }
                // No value yet (stale markers only): not listed, not remembered.
                Some(_) => continue,
            }
            if known.is_none() {
                seen.insert(ts.label_key.clone(), slot);
            }
        } else {
            r.skip(field, wire).map_err(RemoteWriteError::Protobuf)?;
        }
    }
    out.series = gathered
        .into_iter()
        .map(|(metric, labels, mut samples)| {
            // Stable: samples with equal timestamps keep their arrival order.
            samples.sort_by_key(|&(t, _)| t);
            SeriesSamples {
                metric,
                labels,
                values: samples.into_iter().map(|(_, v)| v).collect(),
            }
        })
        .collect();
    Ok(out)
}

/// The cluster and replica of one series' labels, when it has both.
fn ha_identity(labels: &[(&str, &str)], ha: HaLabels<'_>) -> Result<Option<HaIdentity>, String> {
    let value = |name: &str| labels.iter().find(|&&(n, _)| n == name).map(|&(_, v)| v);
    let (Some(cluster), Some(replica)) = (value(ha.cluster), value(ha.replica)) else {
        return Ok(None);
    };
    if replica.len() > crate::labels::MAX_LABEL_VALUE_BYTES {
        return Err(format!(
            "HA replica label {} is over {} bytes",
            ha.replica,
            crate::labels::MAX_LABEL_VALUE_BYTES
        ));
    }
    if cluster.is_empty() || replica.is_empty() {
        return Ok(None);
    }
    Ok(Some(HaIdentity {
        cluster: cluster.to_string(),
        replica: replica.to_string(),
    }))
}

/// A distinct series of a request and its (timestamp, value) pairs, in arrival order.
type Gathered = (String, Labels, Vec<(i64, f64)>);

/// One `TimeSeries` as it came, not yet validated; reused from message to message.
#[derive(Default)]
struct RawSeries<'a> {
    /// (name, value) of each label message, in order, checked to be UTF-8.
    labels: Vec<(&'a str, &'a str)>,
    /// Every label message's length (4 bytes, little-endian) and bytes, in order: equal keys
    /// decode to equal labels.
    label_key: Vec<u8>,
    samples: Vec<(i64, f64)>,
    histograms: usize,
}

/// The samples of the `TimeSeries` left in `r`, up to the first one that is not
/// well-formed.
fn samples_in_rest<'a>(r: &mut Reader<'a>, ts: &mut RawSeries<'a>) -> usize {
    let mut n = 0;
    while !r.done() {
        let Ok((field, wire)) = r.key() else { break };
        if field != 1 {
            if r.skip(field, wire).is_err() {
                break;
            }
            continue;
        }
        match r.len_delimited(field, wire).map(|b| decode_series(b, ts)) {
            Ok(Ok(())) => n += ts.samples.len(),
            _ => break,
        }
    }
    n
}

fn decode_series<'a>(buf: &'a [u8], out: &mut RawSeries<'a>) -> Result<(), String> {
    out.labels.clear();
    out.label_key.clear();
    out.samples.clear();
    out.histograms = 0;
    let mut r = Reader::new(buf);
    while !r.done() {
        let (field, wire) = r.key()?;
        match field {
            1 => {
                let b = r.len_delimited(field, wire)?;
                out.labels.push(decode_label(b)?);
                // A label message is shorter than the body, and bodies are far below 4 GiB.
                out.label_key
                    .extend_from_slice(&(b.len() as u32).to_le_bytes());
                out.label_key.extend_from_slice(b);
            }
            2 => {
                let b = r.len_delimited(field, wire)?;
                out.samples.push(decode_sample(b)?);
            }
            4 => {
                r.len_delimited(field, wire)?;
                out.histograms += 1;
            }
            // 3: exemplars; anything else: fields of later versions.
            _ => r.skip(field, wire)?,
        }
    }
    Ok(())
}

fn decode_label(buf: &[u8]) -> Result<(&str, &str), String> {
    let mut name = "";
    let mut value = "";
    let mut r = Reader::new(buf);
    while !r.done() {
        let (field, wire) = r.key()?;
        match field {
            1 => name = utf8(r.len_delimited(field, wire)?, "label name")?,
            2 => value = utf8(r.len_delimited(field, wire)?, "label value")?,
            _ => r.skip(field, wire)?,
        }
    }
    Ok((name, value))
}

fn utf8<'a>(bytes: &'a [u8], what: &str) -> Result<&'a str, String> {
    std::str::from_utf8(bytes).map_err(|_| format!("{what} is not valid UTF-8"))
}

fn decode_sample(buf: &[u8]) -> Result<(i64, f64), String> {
    let mut value = 0.0;
    let mut timestamp = 0i64;
    let mut r = Reader::new(buf);
    while !r.done() {
        let (field, wire) = r.key()?;
        match field {
            1 => {
                expect_wire(field, wire, WIRE_I64)?;
                value = f64::from_bits(r.fixed64()?);
            }
            2 => {
                expect_wire(field, wire, WIRE_VARINT)?;
                // int64 travels as its two's complement in a varint.
                timestamp = r.varint()? as i64;
            }
            _ => r.skip(field, wire)?,
        }
    }
    Ok((timestamp, value))
}

/// The series' metric name (its `__name__`) and labels, checked by the one series
/// validator.
fn series_of(raw: &[(&str, &str)]) -> Result<(String, Labels), SeriesError> {
    let mut series = SeriesBuilder::from_labels();
    for &(name, value) in raw {
        series.label(name, value)?;
    }
    series.finish()
}

const WIRE_VARINT: u8 = 0;
const WIRE_I64: u8 = 1;
const WIRE_LEN: u8 = 2;
const WIRE_START_GROUP: u8 = 3;
const WIRE_END_GROUP: u8 = 4;
const WIRE_I32: u8 = 5;

fn expect_wire(field: u32, got: u8, want: u8) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!(
            "field {field} has wire type {got}, expected {want}"
        ))
    }
}

/// A cursor over protobuf bytes. Every read checks what is left first.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }

    fn left(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let Some(&b) = self.buf.get(self.pos) else {
                return Err("truncated varint".into());
            };
            self.pos += 1;
            if i == 9 && b > 1 {
                return Err("varint overflows 64 bits".into());
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("varint longer than 10 bytes".into())
    }

    /// A field key: (field number, wire type).
    fn key(&mut self) -> Result<(u32, u8), String> {
        let k = self.varint()?;
        let field = k >> 3;
        let wire = (k & 7) as u8;
        if field == 0 || field > u64::from(u32::MAX >> 3) {
            return Err(format!("invalid field number {field}"));
        }
        Ok((field as u32, wire))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if n > self.left() {
            return Err(format!(
                "field needs {n} bytes, {} left in the message",
                self.left()
            ));
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn fixed64(&mut self) -> Result<u64, String> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    /// The bytes of a length-delimited field (after checking its wire type).
    fn len_delimited(&mut self, field: u32, wire: u8) -> Result<&'a [u8], String> {
        expect_wire(field, wire, WIRE_LEN)?;
        let n = self.varint()?;
        // A length that does not fit what is left is refused before any use of it.
        let n = usize::try_from(n)
            .ok()
            .filter(|&n| n <= self.left())
            .ok_or_else(|| {
                format!(
                    "field {field}: length {n} exceeds the {} bytes left in the message",
                    self.left()
                )
            })?;
        self.take(n)
    }

    /// Skips one field's value whatever its wire type, groups included.
    fn skip(&mut self, field: u32, wire: u8) -> Result<(), String> {
        let mut open: Vec<u32> = Vec::new();
        let (mut field, mut wire) = (field, wire);
        loop {
            match wire {
                WIRE_VARINT => {
                    self.varint()?;
                }
                WIRE_I64 => {
                    self.take(8)?;
                }
                WIRE_LEN => {
                    self.len_delimited(field, wire)?;
                }
                WIRE_I32 => {
                    self.take(4)?;
                }
                WIRE_START_GROUP => {
                    if open.len() >= MAX_GROUP_DEPTH {
                        return Err("groups nested too deeply".into());
                    }
                    open.push(field);
                }
                WIRE_END_GROUP => match open.pop() {
                    Some(f) if f == field => {}
                    _ => return Err(format!("unexpected end of group {field}")),
                },
                other => return Err(format!("field {field}: invalid wire type {other}")),
            }
            if open.is_empty() {
                return Ok(());
            }
            if self.done() {
                return Err("unterminated group".into());
            }
            (field, wire) = self.key()?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::{MAX_LABEL_VALUE_BYTES, MAX_NAME_BYTES};

    // A tiny protobuf encoder, for building bodies.
    fn varint(mut v: u64, out: &mut Vec<u8>) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }
    fn key(field: u64, wire: u64, out: &mut Vec<u8>) {
        varint(field << 3 | wire, out);
    }
    fn bytes_field(field: u64, b: &[u8], out: &mut Vec<u8>) {
        key(field, 2, out);
        varint(b.len() as u64, out);
        out.extend_from_slice(b);
    }
    fn label(name: &str, value: &str) -> Vec<u8> {
        let mut out = Vec::new();
        bytes_field(1, name.as_bytes(), &mut out);
        bytes_field(2, value.as_bytes(), &mut out);
        out
    }
    fn sample(value: f64, ts: i64) -> Vec<u8> {
        let mut out = Vec::new();
        key(1, 1, &mut out);
        out.extend_from_slice(&value.to_bits().to_le_bytes());
        key(2, 0, &mut out);
        varint(ts as u64, &mut out);
        out
    }
    fn series(labels: &[(&str, &str)], samples: &[(f64, i64)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (n, v) in labels {
            bytes_field(1, &label(n, v), &mut out);
        }
        for (v, t) in samples {
            bytes_field(2, &sample(*v, *t), &mut out);
        }
        out
    }
    fn request(all: &[Vec<u8>]) -> Vec<u8> {
        let mut out = Vec::new();
        for s in all {
            bytes_field(1, s, &mut out);
        }
        out
    }
    fn snappy(raw: &[u8]) -> Vec<u8> {
        snap::raw::Encoder::new().compress_vec(raw).unwrap()
    }

    #[test]
    fn ha_labels_name_the_first_series_replica_and_the_replica_label_is_dropped() {
        let ha = HaLabels {
            cluster: "cluster",
            replica: "__replica__",
        };
        let raw = request(&[
            series(
                &[
                    ("__name__", "acc"),
                    ("__replica__", "b"),
                    ("cluster", "prom"),
                ],
                &[(0.9, 1000)],
            ),
            series(
                &[
                    ("__name__", "acc"),
                    ("__replica__", "b"),
                    ("cluster", "prom"),
                ],
                &[(0.8, 2000)],
            ),
            series(&[("__name__", "lat"), ("__replica__", "b")], &[(1.0, 1000)]),
        ]);
        let d = decode_ha(&snappy(&raw), 1 << 20, Some(ha)).unwrap();
        assert_eq!(
            d.ha,
            Some(HaIdentity {
                cluster: "prom".into(),
                replica: "b".into()
            })
        );
        assert_eq!(d.series.len(), 2, "{d:?}");
        assert_eq!(
            d.series[0].labels,
            Labels::from([("cluster".to_string(), "prom".to_string())])
        );
        assert_eq!(d.series[0].values, vec![0.9, 0.8]);
        assert_eq!(d.series[1].labels, Labels::new());
        // Without the tracker the `__` label is what it is: a reserved name.
        assert!(decode(&snappy(&raw), 1 << 20).is_err());
        // A first series without both labels: no identity, the request goes through as is.
        let raw = request(&[series(
            &[("__name__", "acc"), ("cluster", "prom")],
            &[(1.0, 1)],
        )]);
        let d = decode_ha(&snappy(&raw), 1 << 20, Some(ha)).unwrap();
        assert_eq!((d.ha, d.series.len()), (None, 1));
    }

    #[test]
    fn decodes_merges_orders_and_skips() {
        let stale = f64::from_bits(STALE_NAN_BITS);
        let a = [("__name__", "acc"), ("model", "fraud"), ("empty", "")];
        let raw = request(&[
            series(&a, &[(0.9, 2000), (0.8, 1000)]),
            series(&[("__name__", "other")], &[(f64::NAN, 5), (stale, 6)]),
            series(&a, &[(0.7, 1500), (f64::INFINITY, 1600), (stale, 3000)]),
        ]);
        let d = decode(&snappy(&raw), 1 << 20).unwrap();
        assert_eq!(d.series.len(), 1, "{d:?}");
        assert_eq!(d.series[0].metric, "acc");
        assert_eq!(
            d.series[0].labels,
            Labels::from([("model".to_string(), "fraud".to_string())])
        );
        assert_eq!(d.series[0].values, vec![0.8, 0.7, 0.9]);
        assert_eq!(
            (d.samples, d.stale_markers, d.non_finite),
            (3, 2, 2),
            "{d:?}"
        );
    }

    #[test]
    fn one_series_in_many_messages_is_merged_whatever_its_label_bytes() {
        let stale = f64::from_bits(STALE_NAN_BITS);
        let ab = [("__name__", "m"), ("a", "1"), ("b", "2")];
        let ba = [("b", "2"), ("__name__", "m"), ("a", "1")];
        let with_empty = [("__name__", "m"), ("a", "1"), ("e", ""), ("b", "2")];
        let other = [("__name__", "n")];
        let raw = request(&[
            // `n` first shows only a stale marker: it is listed from its first value on.
            series(&other, &[(stale, 1)]),
            series(&ab, &[(1.0, 10)]),
            series(&other, &[(5.0, 2)]),
            series(&ba, &[(2.0, 5)]),
            series(&ab, &[(3.0, 20), (stale, 21)]),
            series(&with_empty, &[(4.0, 15)]),
            series(&other, &[(6.0, 1)]),
            series(&ab, &[(f64::NAN, 30)]),
        ]);
        let d = decode_write_request(&raw).unwrap();
        let got: Vec<(&str, usize, &[f64])> = d
            .series
            .iter()
            .map(|s| (s.metric.as_str(), s.labels.len(), s.values.as_slice()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("m", 2, &[2.0, 1.0, 4.0, 3.0][..]),
                ("n", 0, &[6.0, 5.0][..])
            ]
        );
        assert_eq!((d.samples, d.stale_markers, d.non_finite), (6, 2, 1));
        // A bad series is named by its own index, also when its bytes repeat.
        let bad = [("__name__", "m"), ("a-b", "1")];
        refused(
            &request(&[
                series(&ab, &[(1.0, 1)]),
                series(&bad, &[(1.0, 1)]),
                series(&bad, &[]),
            ]),
            "timeseries[1]: invalid label name \"a-b\"",
        );
    }

    #[test]
    fn skips_unknown_fields_of_every_wire_type() {
        let mut ts = series(&[("__name__", "m")], &[(1.0, 1)]);
        // exemplar (3), histogram (4), unknown varint, fixed32, fixed64 and a group.
        bytes_field(3, b"\x0a\x00", &mut ts);
        bytes_field(4, b"", &mut ts);
        key(9, 0, &mut ts);
        varint(300, &mut ts);
        key(10, 5, &mut ts);
        ts.extend_from_slice(&[1, 2, 3, 4]);
        key(11, 1, &mut ts);
        ts.extend_from_slice(&[0; 8]);
        key(12, 3, &mut ts);
        key(1, 0, &mut ts);
        varint(7, &mut ts);
        key(13, 3, &mut ts);
        key(13, 4, &mut ts);
        key(12, 4, &mut ts);
        let mut raw = request(&[ts]);
        bytes_field(3, b"metadata", &mut raw);
        let d = decode_write_request(&raw).unwrap();
        assert_eq!(d.series[0].values, vec![1.0]);
        assert_eq!(d.histograms, 1);
    }

    #[track_caller]
    fn refused(raw: &[u8], contains: &str) {
        match decode_write_request(raw) {
            Ok(d) => panic!("accepted {raw:?}: {d:?}"),
            Err(e) => assert!(e.to_string().contains(contains), "{e}"),
        }
    }

    #[test]
    fn refuses_bad_series_and_bad_protobuf() {
        refused(
            &request(&[series(&[("model", "x")], &[(1.0, 1)])]),
            "timeseries[0]: missing __name__ label",
        );
        refused(
            &request(&[
                series(&[("__name__", "ok")], &[(1.0, 1)]),
                series(&[("__name__", "9bad")], &[(1.0, 1)]),
            ]),
            "timeseries[1]: invalid metric name \"9bad\"",
        );
        refused(
            &request(&[series(&[("__name__", "m"), ("a-b", "x")], &[(1.0, 1)])]),
            "invalid label name \"a-b\"",
        );
        refused(
            &request(&[series(&[("__name__", "m"), ("__x", "x")], &[(1.0, 1)])]),
            "invalid label name \"__x\"",
        );
        refused(
            &request(&[series(&[("__name__", "m"), ("a", "1"), ("a", "2")], &[])]),
            "duplicate label name \"a\"",
        );
        let long = "v".repeat(MAX_LABEL_VALUE_BYTES + 1);
        refused(
            &request(&[series(&[("__name__", "m"), ("a", &long)], &[])]),
            "value too long",
        );
        // Truncated and malformed protobuf.
        refused(&[0x0a, 0x05, 0x01], "length 5 exceeds the 1 bytes left");
        refused(&[0x0a], "truncated varint");
        refused(
            &[
                0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
            ],
            "length",
        );
        refused(
            &[
                0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
            ],
            "overflows",
        );
        refused(&[0x08, 0x01], "wire type 0, expected 2");
        refused(&[0x17], "invalid wire type 7");
        refused(&[0x00], "invalid field number 0");
        refused(&[0x1b, 0x08, 0x01], "unterminated group");
        refused(&[0x1c], "unexpected end of group");
        let mut label_bad_utf8 = Vec::new();
        bytes_field(1, b"\xff", &mut label_bad_utf8);
        let mut ts = Vec::new();
        bytes_field(1, &label_bad_utf8, &mut ts);
        refused(&request(&[ts]), "label name is not valid UTF-8");
        let mut bad_sample = Vec::new();
        key(1, 0, &mut bad_sample);
        varint(1, &mut bad_sample);
        let mut ts = Vec::new();
        bytes_field(2, &bad_sample, &mut ts);
        refused(&request(&[ts]), "field 1 has wire type 0, expected 1");
    }

    #[test]
    fn refuses_bad_snappy_and_oversized_bodies() {
        assert!(matches!(
            decode(b"not snappy at all", 1 << 20),
            Err(RemoteWriteError::Snappy(_))
        ));
        let raw = request(&[series(&[("__name__", "m")], &[(1.0, 1)])]);
        assert!(matches!(
            decode(&snappy(&raw), raw.len() - 1),
            Err(RemoteWriteError::TooLarge { .. })
        ));
        // A header claiming a huge size is refused before anything is allocated.
        let mut huge = Vec::new();
        varint(1 << 40, &mut huge);
        huge.extend_from_slice(b"\x00abc");
        assert!(decode(&huge, 1 << 20).is_err());
        // The framed format is not the block format.
        let mut framed = snap::write::FrameEncoder::new(Vec::new());
        std::io::Write::write_all(&mut framed, &raw).unwrap();
        assert!(decode(&framed.into_inner().unwrap(), 1 << 20).is_err());
    }

    #[test]
    fn empty_body_is_an_empty_request() {
        assert_eq!(decode(&snappy(b""), 10).unwrap(), Decoded::default());
    }

    #[test]
    fn never_panics_on_truncations_or_bit_flips() {
        let raw = request(&[
            series(&[("__name__", "m"), ("a", "b")], &[(1.0, 1), (2.0, 2)]),
            series(&[("__name__", "n")], &[(3.0, -1)]),
        ]);
        for cut in 0..raw.len() {
            let _ = decode_write_request(&raw[..cut]);
        }
        for i in 0..raw.len() {
            for bit in 0..8 {
                let mut b = raw.clone();
                b[i] ^= 1 << bit;
                let _ = decode_write_request(&b);
                let _ = decode(&b, 1 << 16);
            }
        }
        let compressed = snappy(&raw);
        for cut in 0..compressed.len() {
            let _ = decode(&compressed[..cut], 1 << 16);
        }
    }

    #[test]
    fn negative_timestamps_order_too() {
        let raw = request(&[series(&[("__name__", "m")], &[(2.0, 5), (1.0, -5)])]);
        let d = decode_write_request(&raw).unwrap();
        assert_eq!(d.series[0].values, vec![1.0, 2.0]);
    }

    #[track_caller]
    fn reason(raw: &[u8]) -> RejectReason {
        decode_write_request(raw).expect_err("refused").reason()
    }

    #[test]
    fn reasons_follow_what_is_wrong() {
        let long_name = "n".repeat(MAX_NAME_BYTES + 1);
        let long_value = "v".repeat(MAX_LABEL_VALUE_BYTES + 1);
        let one = |labels: &[(&str, &str)]| request(&[series(labels, &[(1.0, 1)])]);
        for (raw, want) in [
            (one(&[("model", "x")]), RejectReason::BadName),
            (
                one(&[("__name__", "m"), ("a", "1"), ("a", "2")]),
                RejectReason::BadName,
            ),
            (
                one(&[("__name__", "m"), ("__x", "1")]),
                RejectReason::BadName,
            ),
            (one(&[("__name__", &long_name)]), RejectReason::TooLarge),
            (
                one(&[("__name__", "m"), (&long_name, "1")]),
                RejectReason::TooLarge,
            ),
            (
                one(&[("__name__", "m"), ("a", &long_value)]),
                RejectReason::TooLarge,
            ),
            (vec![0x0a, 0x05, 0x01], RejectReason::BadBody),
        ] {
            assert_eq!(reason(&raw), want);
        }
        // A `TimeSeries` that is not well-formed is a bad body, whatever its message says
        // ("groups nested too deeply", "label name is not valid UTF-8").
        let mut label_bad_utf8 = Vec::new();
        bytes_field(1, b"\xff", &mut label_bad_utf8);
        let mut ts = Vec::new();
        bytes_field(1, &label_bad_utf8, &mut ts);
        assert_eq!(reason(&request(&[ts])), RejectReason::BadBody);
        let mut ts = series(&[("__name__", "m")], &[]);
        for _ in 0..=MAX_GROUP_DEPTH {
            key(9, 3, &mut ts);
        }
        assert_eq!(reason(&request(&[ts])), RejectReason::BadBody);
    }

    /// The reason used to be picked from the message's words, "too" before "name": an
    /// invalid name holding "too" counted as `too_large`, and a label name over the limit
    /// as `too_large` here but `bad_name` in a push.
    #[test]
    fn a_label_called_hostname_or_valued_tooth_gets_the_reason_of_what_is_wrong() {
        let one = |labels: &[(&str, &str)]| request(&[series(labels, &[(1.0, 1)])]);
        assert_eq!(
            reason(&one(&[("__name__", "tooth.metric")])),
            RejectReason::BadName
        );
        assert_eq!(
            reason(&one(&[("__name__", "m"), ("tooth-x", "tooth")])),
            RejectReason::BadName
        );
        let long_value = "v".repeat(MAX_LABEL_VALUE_BYTES + 1);
        assert_eq!(
            reason(&one(&[("__name__", "m"), ("hostname", &long_value)])),
            RejectReason::TooLarge
        );
    }

    #[test]
    fn a_too_long_label_name_has_the_reason_a_push_gives_it() {
        let long_name = "n".repeat(MAX_NAME_BYTES + 1);
        let raw = request(&[series(&[("__name__", "m"), (&long_name, "1")], &[(1.0, 1)])]);
        let push =
            format!(r#"{{"samples":[{{"metric":"m","labels":{{"{long_name}":"1"}},"value":1}}]}}"#);
        let pushed = crate::formats::push::parse(push.as_bytes()).expect_err("refused");
        assert_eq!(reason(&raw), pushed.reason());
        assert_eq!(pushed.reason(), RejectReason::TooLarge);
    }

    #[test]
    fn a_refused_request_counts_the_samples_it_carried() {
        let stale = f64::from_bits(STALE_NAN_BITS);
        let ok = [("__name__", "m")];
        let raw = request(&[
            series(&ok, &[(1.0, 1), (stale, 2)]),
            series(
                &[("__name__", "m"), ("a-b", "1")],
                &[(1.0, 1), (2.0, 2), (3.0, 3)],
            ),
            series(&ok, &[(1.0, 3)]),
            series(&[("__name__", "m"), ("a-b", "1")], &[(1.0, 4)]),
        ]);
        let e = decode_write_request(&raw).expect_err("refused");
        assert_eq!((e.index(), e.values()), (Some(1), 7));
        // Counting stops at the first message that is not well-formed.
        let mut cut = raw.clone();
        cut.extend_from_slice(&[0x0a, 0x05, 0x01]);
        assert_eq!(decode_write_request(&cut).expect_err("refused").values(), 7);
        assert_eq!(
            decode_write_request(&[0x0a]).expect_err("refused").values(),
            0
        );
    }
}
