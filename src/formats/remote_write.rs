//! The Prometheus remote write bodies (`POST /api/v1/write`, served by `http::remote_write`):
//! 1.0's `prometheus.WriteRequest` and 2.0's `io.prometheus.write.v2.Request`, which one the
//! `Content-Type` says ([`Protocol::negotiate`]).
//!
//! The body is protobuf compressed with snappy's block format (not the framed format). The
//! protobuf is decoded by hand: for 1.0 only a few small messages matter,
//!
//! ```text
//! WriteRequest { repeated TimeSeries timeseries = 1; /* metadata = 3: skipped */ }
//! TimeSeries   { repeated Label labels = 1; repeated Sample samples = 2;
//!                /* exemplars = 3: counted */ repeated Histogram histograms = 4; }
//! Label        { string name = 1; string value = 2; }
//! Sample       { double value = 1; int64 timestamp = 2; }
//! ```
//!
//! (2.0 in [`decode_v2_request_ha`], the `Histogram` both share in `decode_histogram`), and
//! every other field, of any wire type (groups included), is skipped. The decoder is
//! bounded everywhere: a length is checked against what is left of its buffer before
//! anything is sliced or allocated, the decompressed size is checked before decompressing,
//! native histograms expand into at most one value per byte of the message, and nothing
//! panics on any input.
//!
//! Native histograms are expanded here into the classic series rules read
//! (`formats::native`): `<name>_bucket{le}` (cumulative), `<name>_count`, `<name>_sum`;
//! reset hints are ignored (the engine finds resets in the counts).
//!
//! A request is all or nothing: every series is validated by the one series validator
//! (`labels::SeriesBuilder`: `__name__` a valid metric name, other labels valid, not
//! reserved, not repeated, within the limits), and so is every series a histogram expands
//! into, before anything is handed to the engine. Stale markers (the NaN with bits
//! `0x7ff0000000000002`, which Prometheus writes when a series disappears; for a native
//! histogram, in its sum) and other non-finite values are skipped and counted, never taken
//! as values. Samples of one series are taken in timestamp order (Prometheus sends one
//! `TimeSeries` per sample, so a series' samples are gathered across the request).

use std::collections::HashMap;

use crate::formats::native::{self, NativeHistogram};
use crate::labels::{
    validate_series, Labels, RejectReason, SeriesBuilder, SeriesError, SeriesSamples,
};

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
    #[error("body is not a protobuf io.prometheus.write.v2.Request: {0}")]
    ProtobufV2(String),
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
    /// A native histogram that cannot be expanded (bad schema, spans, counts).
    #[error("timeseries[{index}]: {source}")]
    Histogram {
        index: usize,
        /// Samples and histograms the request carried up to this series.
        values: usize,
        #[source]
        source: native::NativeError,
    },
    /// Native histograms that expand into more values than the message has bytes.
    #[error(
        "timeseries[{index}]: native histograms expand into more than {limit} classic values, one per byte of the message"
    )]
    Expansion { index: usize, limit: usize },
}

impl RemoteWriteError {
    /// The counter reason (`driftgauge_*_rejected_total{reason}`).
    pub fn reason(&self) -> RejectReason {
        match self {
            RemoteWriteError::Snappy(_)
            | RemoteWriteError::Protobuf(_)
            | RemoteWriteError::ProtobufV2(_)
            | RemoteWriteError::SeriesProtobuf { .. } => RejectReason::BadBody,
            RemoteWriteError::TooLarge { .. } | RemoteWriteError::Expansion { .. } => {
                RejectReason::TooLarge
            }
            RemoteWriteError::Histogram { .. } => RejectReason::BadValue,
            RemoteWriteError::Series { source, .. } => source.reason(),
        }
    }

    /// The index of the bad `TimeSeries`, when one is to blame.
    pub fn index(&self) -> Option<usize> {
        match self {
            RemoteWriteError::Series { index, .. }
            | RemoteWriteError::SeriesProtobuf { index, .. }
            | RemoteWriteError::Histogram { index, .. }
            | RemoteWriteError::Expansion { index, .. } => Some(*index),
            _ => None,
        }
    }

    /// The samples a request refused for a bad series carried: every `Sample` of every
    /// `TimeSeries`, stale markers included, as far as the body is well-formed; 0 for a
    /// body that could not be decoded.
    pub fn values(&self) -> usize {
        match self {
            RemoteWriteError::Series { values, .. }
            | RemoteWriteError::Histogram { values, .. } => *values,
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
    /// Native histogram samples taken (each expanded into classic series, see
    /// `formats::native`).
    pub histograms: usize,
    /// Native histogram staleness markers (a histogram whose sum is the stale NaN) skipped.
    pub stale_histograms: usize,
    /// Classic values the taken native histograms expanded into (in `series`, with the
    /// `samples`).
    pub expanded: usize,
    /// Exemplars, counted and ignored.
    pub exemplars: usize,
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
    decode_body(body, max_decompressed, Protocol::V1, ha)
}

/// Which protobuf message a body holds, from its `Content-Type` (see [`Protocol::negotiate`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// Remote write 1.0, `prometheus.WriteRequest`.
    V1,
    /// Remote write 2.0, `io.prometheus.write.v2.Request`.
    V2,
}

/// The message names of [`Protocol::V1`] and [`Protocol::V2`], as `proto=` names them.
pub const PROTO_V1: &str = "prometheus.WriteRequest";
pub const PROTO_V2: &str = "io.prometheus.write.v2.Request";

/// Why a request's headers announce a body this receiver does not read (415).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NegotiationError {
    #[error("Content-Type {0:?} is not taken: send application/x-protobuf;proto=prometheus.WriteRequest (or no proto) or application/x-protobuf;proto=io.prometheus.write.v2.Request")]
    MediaType(String),
    #[error("protobuf message {0:?} is not taken: send proto=prometheus.WriteRequest (remote write 1.0) or proto=io.prometheus.write.v2.Request (remote write 2.0)")]
    Proto(String),
    #[error("Content-Encoding {0:?} is not taken: remote write bodies are snappy-compressed (block format)")]
    Encoding(String),
}

impl Protocol {
    /// The message a request's `Content-Type` and `Content-Encoding` announce, as the remote
    /// write 2.0 specification negotiates it: no `Content-Type`, `application/x-protobuf`
    /// or `;proto=prometheus.WriteRequest` is 1.0, `;proto=io.prometheus.write.v2.Request`
    /// is 2.0; another media type or message, or an encoding other than `snappy` (none means
    /// snappy), is refused.
    pub fn negotiate(
        content_type: Option<&str>,
        content_encoding: Option<&str>,
    ) -> Result<Protocol, NegotiationError> {
        if let Some(enc) = content_encoding.map(str::trim) {
            if !enc.eq_ignore_ascii_case("snappy") {
                return Err(NegotiationError::Encoding(enc.to_string()));
            }
        }
        let Some(ct) = content_type.map(str::trim).filter(|c| !c.is_empty()) else {
            return Ok(Protocol::V1);
        };
        let mut parts = ct.split(';');
        let media = parts.next().unwrap_or("").trim();
        if !media.eq_ignore_ascii_case("application/x-protobuf") {
            return Err(NegotiationError::MediaType(ct.to_string()));
        }
        let mut protocol = Protocol::V1;
        for param in parts {
            let Some((name, value)) = param.split_once('=') else {
                continue;
            };
            if !name.trim().eq_ignore_ascii_case("proto") {
                continue;
            }
            protocol = match value.trim().trim_matches('"') {
                PROTO_V1 => Protocol::V1,
                PROTO_V2 => Protocol::V2,
                other => return Err(NegotiationError::Proto(other.to_string())),
            };
        }
        Ok(protocol)
    }
}

/// Decompresses and decodes a whole body of either protocol, with the HA labels of
/// [`decode_ha`].
pub fn decode_body(
    body: &[u8],
    max_decompressed: usize,
    protocol: Protocol,
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
    match protocol {
        Protocol::V1 => decode_write_request_ha(&raw, ha),
        Protocol::V2 => decode_v2_request_ha(&raw, ha),
    }
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
    let mut g = Gather::new(ha, buf.len());
    let mut ts = RawSeries::default();
    let mut r = Reader::new(buf);
    let mut n = 0usize;
    while !r.done() {
        let (field, wire) = r.key().map_err(RemoteWriteError::Protobuf)?;
        if field != 1 {
            r.skip(field, wire).map_err(RemoteWriteError::Protobuf)?;
            continue;
        }
        let bytes = r
            .len_delimited(field, wire)
            .map_err(RemoteWriteError::Protobuf)?;
        let index = n;
        n += 1;
        decode_series(bytes, &mut ts)
            .map_err(|message| RemoteWriteError::SeriesProtobuf { index, message })?;
        g.take(index, &mut ts, || {
            samples_in_rest(&mut r, |b, ts| decode_series(b, ts), 1)
        })?;
    }
    Ok(g.finish())
}

/// Decodes an uncompressed remote write 2.0 `io.prometheus.write.v2.Request`:
///
/// ```text
/// Request    { repeated string symbols = 4; repeated TimeSeries timeseries = 5; }
/// TimeSeries { repeated uint32 labels_refs = 1; repeated Sample samples = 2;
///              repeated Histogram histograms = 3; repeated Exemplar exemplars = 4;
///              /* metadata = 5: skipped */ }
/// Sample     { double value = 1; int64 timestamp = 2; /* start_timestamp = 3 */ }
/// ```
///
/// Labels are pairs of indexes into `symbols` (read first, wherever they are in the body);
/// a reference past the table, or an odd number of them, refuses the request, naming the
/// series and the reference. Exemplars are counted and ignored. Everything else is as in
/// [`decode_write_request_ha`]: the same validator, the same merging, the same HA labels.
pub fn decode_v2_request_ha(
    buf: &[u8],
    ha: Option<HaLabels<'_>>,
) -> Result<Decoded, RemoteWriteError> {
    let mut symbols: Vec<&str> = Vec::new();
    let mut r = Reader::new(buf);
    while !r.done() {
        let (field, wire) = r.key().map_err(RemoteWriteError::ProtobufV2)?;
        if field == 4 {
            let b = r
                .len_delimited(field, wire)
                .map_err(RemoteWriteError::ProtobufV2)?;
            let s = std::str::from_utf8(b).map_err(|_| {
                RemoteWriteError::ProtobufV2(format!(
                    "symbols[{}] is not valid UTF-8",
                    symbols.len()
                ))
            })?;
            symbols.push(s);
        } else {
            r.skip(field, wire).map_err(RemoteWriteError::ProtobufV2)?;
        }
    }
    let mut g = Gather::new(ha, buf.len());
    let mut ts = RawSeries::default();
    let mut r = Reader::new(buf);
    let mut n = 0usize;
    while !r.done() {
        let (field, wire) = r.key().map_err(RemoteWriteError::ProtobufV2)?;
        if field != 5 {
            r.skip(field, wire).map_err(RemoteWriteError::ProtobufV2)?;
            continue;
        }
        let bytes = r
            .len_delimited(field, wire)
            .map_err(RemoteWriteError::ProtobufV2)?;
        let index = n;
        n += 1;
        decode_v2_series(bytes, &symbols, &mut ts)
            .map_err(|message| RemoteWriteError::SeriesProtobuf { index, message })?;
        g.take(index, &mut ts, || {
            samples_in_rest(&mut r, |b, ts| decode_v2_series(b, &symbols, ts), 5)
        })?;
    }
    Ok(g.finish())
}

/// The series of a request as they are taken: validated once per distinct label bytes,
/// gathered per series (native histograms expanded into their classic series).
struct Gather<'h> {
    out: Decoded,
    ha: Option<HaLabels<'h>>,
    /// A series (base or expanded) → its entry in `gathered`.
    index: HashMap<(String, Labels), usize>,
    /// The label bytes of a `TimeSeries` → its validated series in `bases`.
    seen: HashMap<Vec<u8>, usize>,
    /// Each distinct series named by a `TimeSeries`, and its entry in `gathered` once it
    /// has a value.
    bases: Vec<((String, Labels), Option<usize>)>,
    gathered: Vec<Gathered>,
    /// Samples and histograms of every `TimeSeries` so far, for counting those of a refused
    /// request.
    carried: usize,
    /// Values the native histograms expanded into, and the most allowed (one per byte of
    /// the message: a histogram's buckets take at least a byte each, so no real request
    /// comes near it, and a crafted one cannot make the decoded request much larger than
    /// its message).
    expanded: usize,
    max_expanded: usize,
}

impl<'h> Gather<'h> {
    fn new(ha: Option<HaLabels<'h>>, message_bytes: usize) -> Self {
        Gather {
            out: Decoded::default(),
            ha,
            index: HashMap::new(),
            seen: HashMap::new(),
            bases: Vec::new(),
            gathered: Vec::new(),
            carried: 0,
            expanded: 0,
            max_expanded: message_bytes,
        }
    }

    /// Takes one decoded `TimeSeries`; `rest` counts the samples of the messages after it,
    /// for the count of a refused request.
    fn take<'a>(
        &mut self,
        index: usize,
        ts: &mut RawSeries<'a>,
        rest: impl FnOnce() -> usize,
    ) -> Result<(), RemoteWriteError> {
        if let Some(ha) = self.ha {
            if index == 0 {
                self.out.ha = ha_identity(&ts.labels, ha)
                    .map_err(|message| RemoteWriteError::SeriesProtobuf { index, message })?;
            }
            ts.labels.retain(|&(name, _)| name != ha.replica);
        }
        self.carried += ts.samples.len() + ts.histograms.len();
        self.out.exemplars += ts.exemplars;
        let base = match self.seen.get(ts.label_key.as_slice()) {
            Some(&b) => b,
            None => {
                let key = series_of(&ts.labels).map_err(|source| RemoteWriteError::Series {
                    index,
                    values: self.carried + rest(),
                    source,
                })?;
                let slot = self.index.get(&key).copied();
                self.bases.push((key, slot));
                self.seen.insert(ts.label_key.clone(), self.bases.len() - 1);
                self.bases.len() - 1
            }
        };
        for &(t, v) in &ts.samples {
            if v.to_bits() == STALE_NAN_BITS {
                self.out.stale_markers += 1;
            } else if !v.is_finite() {
                self.out.non_finite += 1;
            } else {
                // A series is listed from its first value on.
                let s = match self.bases[base].1 {
                    Some(s) => s,
                    None => {
                        // Another label order of the same series may have its entry.
                        let s = match self.index.get(&self.bases[base].0) {
                            Some(&s) => s,
                            None => {
                                let key = self.bases[base].0.clone();
                                self.index.insert(key.clone(), self.gathered.len());
                                self.gathered.push((key.0, key.1, Vec::new()));
                                self.gathered.len() - 1
                            }
                        };
                        self.bases[base].1 = Some(s);
                        s
                    }
                };
                self.gathered[s].2.push((t, v));
                self.out.samples += 1;
            }
        }
        for raw in ts.histograms.drain(..) {
            if raw.sum.to_bits() == STALE_NAN_BITS {
                self.out.stale_histograms += 1;
                continue;
            }
            let t = raw.timestamp;
            let (metric, labels) = &self.bases[base].0;
            let expanded = raw
                .native()
                .and_then(|h| native::expand(metric, labels, &h))
                .map_err(|source| RemoteWriteError::Histogram {
                    index,
                    values: self.carried,
                    source,
                })?;
            self.expanded += expanded.len();
            if self.expanded > self.max_expanded {
                return Err(RemoteWriteError::Expansion {
                    index,
                    limit: self.max_expanded,
                });
            }
            self.out.histograms += 1;
            self.out.expanded += expanded.len();
            for s in expanded {
                let value = s.values[0];
                let key = (s.metric, s.labels);
                let at = match self.index.get(&key) {
                    Some(&at) => at,
                    None => {
                        validate_series(&key.0, &key.1).map_err(|source| {
                            RemoteWriteError::Series {
                                index,
                                values: self.carried,
                                source,
                            }
                        })?;
                        self.index.insert(key.clone(), self.gathered.len());
                        self.gathered.push((key.0, key.1, Vec::new()));
                        self.gathered.len() - 1
                    }
                };
                self.gathered[at].2.push((t, value));
            }
        }
        Ok(())
    }

    fn finish(mut self) -> Decoded {
        self.out.series = self
            .gathered
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
        self.out
    }
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
    /// (name, value) of each label, in order, checked to be UTF-8.
    labels: Vec<(&'a str, &'a str)>,
    /// The label messages (1.0: each message's length, 4 bytes little-endian, then its
    /// bytes) or label references (2.0: each 4 bytes little-endian), in order: equal keys
    /// decode to equal labels.
    label_key: Vec<u8>,
    samples: Vec<(i64, f64)>,
    histograms: Vec<RawHistogram>,
    exemplars: usize,
}

impl RawSeries<'_> {
    fn clear(&mut self) {
        self.labels.clear();
        self.label_key.clear();
        self.samples.clear();
        self.histograms.clear();
        self.exemplars = 0;
    }
}

/// The samples and histograms of the `TimeSeries` (field `field`) left in `r`, up to the
/// first one that is not well-formed.
fn samples_in_rest<'a>(
    r: &mut Reader<'a>,
    decode: impl Fn(&'a [u8], &mut RawSeries<'a>) -> Result<(), String>,
    series_field: u32,
) -> usize {
    let mut ts = RawSeries::default();
    let mut n = 0;
    while !r.done() {
        let Ok((field, wire)) = r.key() else { break };
        if field != series_field {
            if r.skip(field, wire).is_err() {
                break;
            }
            continue;
        }
        match r.len_delimited(field, wire).map(|b| decode(b, &mut ts)) {
            Ok(Ok(())) => n += ts.samples.len() + ts.histograms.len(),
            _ => break,
        }
    }
    n
}

fn decode_series<'a>(buf: &'a [u8], out: &mut RawSeries<'a>) -> Result<(), String> {
    out.clear();
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
                let b = r.len_delimited(field, wire)?;
                out.histograms.push(decode_histogram(b)?);
            }
            3 => {
                r.len_delimited(field, wire)?;
                out.exemplars += 1;
            }
            // Anything else: fields of later versions.
            _ => r.skip(field, wire)?,
        }
    }
    Ok(())
}

fn decode_v2_series<'a>(
    buf: &'a [u8],
    symbols: &[&'a str],
    out: &mut RawSeries<'a>,
) -> Result<(), String> {
    out.clear();
    let mut refs: Vec<u64> = Vec::new();
    let mut r = Reader::new(buf);
    while !r.done() {
        let (field, wire) = r.key()?;
        match field {
            1 => packed_varints(&mut r, field, wire, &mut refs)?,
            2 => {
                let b = r.len_delimited(field, wire)?;
                out.samples.push(decode_sample(b)?);
            }
            3 => {
                let b = r.len_delimited(field, wire)?;
                out.histograms.push(decode_histogram(b)?);
            }
            4 => {
                r.len_delimited(field, wire)?;
                out.exemplars += 1;
            }
            // 5: metadata; anything else: fields of later versions.
            _ => r.skip(field, wire)?,
        }
    }
    if !refs.len().is_multiple_of(2) {
        return Err(format!(
            "labels_refs has {} entries, not name and value pairs",
            refs.len()
        ));
    }
    let symbol = |i: usize| -> Result<&'a str, String> {
        let r = refs[i];
        usize::try_from(r)
            .ok()
            .and_then(|k| symbols.get(k).copied())
            .ok_or_else(|| {
                format!(
                    "labels_refs[{i}] = {r} is not a symbol (the request has {})",
                    symbols.len()
                )
            })
    };
    for i in (0..refs.len()).step_by(2) {
        out.labels.push((symbol(i)?, symbol(i + 1)?));
        // Checked above to be a symbol index, so it fits in u32.
        out.label_key
            .extend_from_slice(&(refs[i] as u32).to_le_bytes());
        out.label_key
            .extend_from_slice(&(refs[i + 1] as u32).to_le_bytes());
    }
    Ok(())
}

/// A `Histogram` message as it came: counts are absolute for a float histogram, deltas for
/// an integer one (the `count` oneof says which, as in Prometheus's `IsFloatHistogram`).
#[derive(Debug, Default)]
struct RawHistogram {
    timestamp: i64,
    sum: f64,
    float: bool,
    h: NativeHistogram,
    positive_deltas: Vec<i64>,
    negative_deltas: Vec<i64>,
    positive_counts: Vec<f64>,
    negative_counts: Vec<f64>,
}

impl RawHistogram {
    fn native(self) -> Result<NativeHistogram, native::NativeError> {
        let mut h = self.h;
        h.sum = self.sum;
        if self.float {
            h.positive = self.positive_counts;
            h.negative = self.negative_counts;
        } else {
            h.positive = native::absolute_counts("positive", &self.positive_deltas)?;
            h.negative = native::absolute_counts("negative", &self.negative_deltas)?;
        }
        Ok(h)
    }
}

/// ```text
/// Histogram { oneof count { uint64 count_int = 1; double count_float = 2; }
///             double sum = 3; sint32 schema = 4; double zero_threshold = 5;
///             oneof zero_count { uint64 zero_count_int = 6; double zero_count_float = 7; }
///             repeated BucketSpan negative_spans = 8; repeated sint64 negative_deltas = 9;
///             repeated double negative_counts = 10; repeated BucketSpan positive_spans = 11;
///             repeated sint64 positive_deltas = 12; repeated double positive_counts = 13;
///             /* reset_hint = 14: ignored */ int64 timestamp = 15;
///             repeated double custom_values = 16; /* start_timestamp = 17 */ }
/// BucketSpan { sint32 offset = 1; uint32 length = 2; }
/// ```
///
/// The same field numbers in remote write 1.0 (`prometheus.Histogram`) and 2.0.
fn decode_histogram(buf: &[u8]) -> Result<RawHistogram, String> {
    let mut out = RawHistogram::default();
    let mut r = Reader::new(buf);
    let mut varints = Vec::new();
    while !r.done() {
        let (field, wire) = r.key()?;
        match field {
            1 => {
                expect_wire(field, wire, WIRE_VARINT)?;
                out.h.count = r.varint()? as f64;
                out.float = false;
            }
            2 => {
                expect_wire(field, wire, WIRE_I64)?;
                out.h.count = f64::from_bits(r.fixed64()?);
                out.float = true;
            }
            3 => {
                expect_wire(field, wire, WIRE_I64)?;
                out.sum = f64::from_bits(r.fixed64()?);
            }
            4 => {
                expect_wire(field, wire, WIRE_VARINT)?;
                let s = zigzag(r.varint()?);
                out.h.schema =
                    i32::try_from(s).map_err(|_| format!("schema {s} is out of range"))?;
            }
            5 => {
                expect_wire(field, wire, WIRE_I64)?;
                out.h.zero_threshold = f64::from_bits(r.fixed64()?);
            }
            6 => {
                expect_wire(field, wire, WIRE_VARINT)?;
                out.h.zero_count = r.varint()? as f64;
            }
            7 => {
                expect_wire(field, wire, WIRE_I64)?;
                out.h.zero_count = f64::from_bits(r.fixed64()?);
            }
            8 | 11 => {
                let span = decode_span(r.len_delimited(field, wire)?)?;
                if field == 8 {
                    out.h.negative_spans.push(span);
                } else {
                    out.h.positive_spans.push(span);
                }
            }
            9 | 12 => {
                varints.clear();
                packed_varints(&mut r, field, wire, &mut varints)?;
                let deltas = if field == 9 {
                    &mut out.negative_deltas
                } else {
                    &mut out.positive_deltas
                };
                deltas.extend(varints.iter().map(|&v| zigzag(v)));
            }
            10 => packed_doubles(&mut r, field, wire, &mut out.negative_counts)?,
            13 => packed_doubles(&mut r, field, wire, &mut out.positive_counts)?,
            15 => {
                expect_wire(field, wire, WIRE_VARINT)?;
                out.timestamp = r.varint()? as i64;
            }
            16 => packed_doubles(&mut r, field, wire, &mut out.h.custom_values)?,
            // 14: reset hint (resets are found from the counts), 17: start timestamp.
            _ => r.skip(field, wire)?,
        }
    }
    Ok(out)
}

fn decode_span(buf: &[u8]) -> Result<native::Span, String> {
    let mut span = native::Span {
        offset: 0,
        length: 0,
    };
    let mut r = Reader::new(buf);
    while !r.done() {
        let (field, wire) = r.key()?;
        match field {
            1 => {
                expect_wire(field, wire, WIRE_VARINT)?;
                let o = zigzag(r.varint()?);
                span.offset =
                    i32::try_from(o).map_err(|_| format!("span offset {o} is out of range"))?;
            }
            2 => {
                expect_wire(field, wire, WIRE_VARINT)?;
                let l = r.varint()?;
                span.length =
                    u32::try_from(l).map_err(|_| format!("span length {l} is out of range"))?;
            }
            _ => r.skip(field, wire)?,
        }
    }
    Ok(span)
}

/// A `sint32`/`sint64` from its zigzag varint.
fn zigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// A repeated varint field, packed (one length-delimited run) or not (one value).
fn packed_varints(
    r: &mut Reader<'_>,
    field: u32,
    wire: u8,
    out: &mut Vec<u64>,
) -> Result<(), String> {
    if wire == WIRE_VARINT {
        out.push(r.varint()?);
        return Ok(());
    }
    let mut p = Reader::new(r.len_delimited(field, wire)?);
    while !p.done() {
        out.push(p.varint()?);
    }
    Ok(())
}

/// A repeated double field, packed or not.
fn packed_doubles(
    r: &mut Reader<'_>,
    field: u32,
    wire: u8,
    out: &mut Vec<f64>,
) -> Result<(), String> {
    if wire == WIRE_I64 {
        out.push(f64::from_bits(r.fixed64()?));
        return Ok(());
    }
    let b = r.len_delimited(field, wire)?;
    if !b.len().is_multiple_of(8) {
        return Err(format!(
            "field {field}: {} bytes of packed doubles is not a multiple of 8",
            b.len()
        ));
    }
    out.extend(b.chunks_exact(8).map(|c| {
        f64::from_bits(u64::from_le_bytes([
            c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7],
        ]))
    }));
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
            // `m` in another label order, before `m` has a value, then after.
            series(&ba, &[(stale, 0)]),
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
        assert_eq!((d.samples, d.stale_markers, d.non_finite), (6, 3, 1));
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

#[cfg(test)]
mod histogram_tests {
    use super::*;

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
    fn double(field: u64, v: f64, out: &mut Vec<u8>) {
        key(field, 1, out);
        out.extend_from_slice(&v.to_bits().to_le_bytes());
    }
    fn zz(v: i64) -> u64 {
        ((v << 1) ^ (v >> 63)) as u64
    }
    fn span(offset: i32, length: u32) -> Vec<u8> {
        let mut s = Vec::new();
        key(1, 0, &mut s);
        varint(zz(offset.into()), &mut s);
        key(2, 0, &mut s);
        varint(length.into(), &mut s);
        s
    }

    /// An integer histogram: (spans, deltas) per side, deltas packed.
    struct Int<'a> {
        count: u64,
        sum: f64,
        schema: i64,
        zero_threshold: f64,
        zero_count: u64,
        positive: (&'a [(i32, u32)], &'a [i64]),
        negative: (&'a [(i32, u32)], &'a [i64]),
        timestamp: i64,
    }

    fn int_histogram(h: &Int<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        key(1, 0, &mut out);
        varint(h.count, &mut out);
        double(3, h.sum, &mut out);
        key(4, 0, &mut out);
        varint(zz(h.schema), &mut out);
        double(5, h.zero_threshold, &mut out);
        key(6, 0, &mut out);
        varint(h.zero_count, &mut out);
        for (spans_field, deltas_field, (spans, deltas)) in
            [(8, 9, h.negative), (11, 12, h.positive)]
        {
            for &(o, l) in spans {
                bytes_field(spans_field, &span(o, l), &mut out);
            }
            let mut packed = Vec::new();
            for &d in deltas {
                varint(zz(d), &mut packed);
            }
            bytes_field(deltas_field, &packed, &mut out);
        }
        key(14, 0, &mut out);
        varint(1, &mut out); // reset hint YES: ignored
        key(15, 0, &mut out);
        varint(h.timestamp as u64, &mut out);
        out
    }

    /// The worked example of `formats::native`'s tests.
    fn example(timestamp: i64, extra: u64) -> Vec<u8> {
        int_histogram(&Int {
            count: 9 + extra,
            sum: 10.5,
            schema: 0,
            zero_threshold: 0.001,
            zero_count: 2,
            positive: (&[(0, 2), (1, 2)], &[1, 1, -1, extra as i64]),
            negative: (&[(0, 1)], &[2]),
            timestamp,
        })
    }

    fn label(name: &str, value: &str) -> Vec<u8> {
        let mut out = Vec::new();
        bytes_field(1, name.as_bytes(), &mut out);
        bytes_field(2, value.as_bytes(), &mut out);
        out
    }

    fn v1_series(labels: &[(&str, &str)], histograms: &[Vec<u8>]) -> Vec<u8> {
        let mut ts = Vec::new();
        for (n, v) in labels {
            bytes_field(1, &label(n, v), &mut ts);
        }
        for h in histograms {
            bytes_field(4, h, &mut ts);
        }
        ts
    }

    fn request(field: u64, all: &[Vec<u8>]) -> Vec<u8> {
        let mut out = Vec::new();
        for s in all {
            bytes_field(field, s, &mut out);
        }
        out
    }

    /// (metric, le, values) of each decoded series.
    fn shape(d: &Decoded) -> Vec<(String, String, Vec<f64>)> {
        d.series
            .iter()
            .map(|s| {
                (
                    s.metric.clone(),
                    s.labels.get("le").cloned().unwrap_or_default(),
                    s.values.clone(),
                )
            })
            .collect()
    }

    #[test]
    fn remote_write_1_histograms_are_expanded_in_timestamp_order() {
        let labels = [("__name__", "score"), ("model", "fraud")];
        let mut stale = example(3000, 0);
        // A stale histogram: its sum is the stale NaN.
        let at = stale
            .windows(9)
            .position(|w| w[0] == 0x19)
            .expect("sum field");
        stale[at + 1..at + 9].copy_from_slice(&STALE_NAN_BITS.to_le_bytes());
        let raw = request(
            1,
            &[
                v1_series(&labels, &[example(2000, 1)]),
                v1_series(&labels, &[example(1000, 0), stale]),
            ],
        );
        let d = decode_write_request(&raw).unwrap();
        assert_eq!((d.histograms, d.stale_histograms, d.samples), (2, 1, 0));
        let s = |m: &str, le: &str, v: &[f64]| (m.to_string(), le.to_string(), v.to_vec());
        assert_eq!(
            shape(&d),
            vec![
                s("score_bucket", "-0.5", &[2.0, 2.0]),
                s("score_bucket", "0.001", &[4.0, 4.0]),
                s("score_bucket", "1", &[5.0, 5.0]),
                s("score_bucket", "2", &[7.0, 7.0]),
                s("score_bucket", "8", &[8.0, 8.0]),
                // At 2000 one more observation in (8, 16].
                s("score_bucket", "16", &[9.0, 10.0]),
                s("score_bucket", "+Inf", &[9.0, 10.0]),
                s("score_count", "", &[9.0, 10.0]),
                s("score_sum", "", &[10.5, 10.5]),
            ]
        );
        assert!(d.series.iter().all(|s| s.labels["model"] == "fraud"));
    }

    #[test]
    fn float_histograms_take_absolute_counts_packed_or_not() {
        let mut h = Vec::new();
        double(2, 3.0, &mut h); // count_float
        double(3, 1.25, &mut h);
        key(4, 0, &mut h);
        varint(zz(-4), &mut h);
        bytes_field(11, &span(0, 2), &mut h);
        // One count unpacked, one packed.
        double(13, 1.0, &mut h);
        bytes_field(13, &2.0f64.to_bits().to_le_bytes(), &mut h);
        let raw = request(1, &[v1_series(&[("__name__", "m")], &[h])]);
        let d = decode_write_request(&raw).unwrap();
        let s = |m: &str, le: &str, v: f64| (m.to_string(), le.to_string(), vec![v]);
        assert_eq!(
            shape(&d),
            vec![
                s("m_bucket", "1", 1.0),
                s("m_bucket", "65536", 3.0),
                s("m_bucket", "+Inf", 3.0),
                s("m_count", "", 3.0),
                s("m_sum", "", 1.25),
            ]
        );
    }

    #[test]
    fn bad_histograms_refuse_the_request_naming_the_series() {
        let ok = v1_series(&[("__name__", "m")], &[example(1, 0)]);
        let bad = v1_series(
            &[("__name__", "m")],
            &[int_histogram(&Int {
                count: 1,
                sum: 0.0,
                schema: 0,
                zero_threshold: 0.0,
                zero_count: 0,
                positive: (&[(0, 2)], &[1, -2]),
                negative: (&[], &[]),
                timestamp: 1,
            })],
        );
        let e = decode_write_request(&request(1, &[ok.clone(), bad])).expect_err("refused");
        assert_eq!(
            e.to_string(),
            "timeseries[1]: native histogram positive bucket 2 has the count -1"
        );
        assert_eq!((e.index(), e.reason()), (Some(1), RejectReason::BadValue));
        let schema9 = v1_series(
            &[("__name__", "m")],
            &[int_histogram(&Int {
                count: 0,
                sum: 0.0,
                schema: 9,
                zero_threshold: 0.0,
                zero_count: 0,
                positive: (&[], &[]),
                negative: (&[], &[]),
                timestamp: 1,
            })],
        );
        let e = decode_write_request(&request(1, &[schema9])).expect_err("refused");
        assert!(e.to_string().contains("schema 9 is not supported"), "{e}");
        // A name that is too long once `_bucket` is added.
        let long = "m".repeat(crate::labels::MAX_NAME_BYTES - 3);
        let e = decode_write_request(&request(
            1,
            &[v1_series(&[("__name__", &long)], &[example(1, 0)])],
        ))
        .expect_err("refused");
        assert!(e.to_string().contains("metric name too long"), "{e}");
        // An `le` label on a native histogram series.
        let e = decode_write_request(&request(
            1,
            &[v1_series(
                &[("__name__", "m"), ("le", "1")],
                &[example(1, 0)],
            )],
        ))
        .expect_err("refused");
        assert!(e.to_string().contains("\"le\" label"), "{e}");
    }

    #[test]
    fn expansion_is_bounded_by_the_message_size() {
        // Empty histograms (3 values each from 4 bytes) fit; a histogram far larger in
        // values than in bytes cannot be built (each bucket takes a byte), so the bound is
        // only checked here at its edge.
        let mut g = Gather::new(None, 5);
        let mut ts = RawSeries::default();
        let mut h = Vec::new();
        key(1, 0, &mut h);
        varint(0, &mut h);
        let one = request(1, &[v1_series(&[("__name__", "m")], &[h.clone(), h])]);
        decode_series(&one[2..], &mut ts).unwrap();
        let e = g.take(0, &mut ts, || 0).expect_err("bounded");
        assert!(
            matches!(e, RemoteWriteError::Expansion { limit: 5, .. }),
            "{e}"
        );
    }

    fn v2_series(
        refs: &[u32],
        samples: &[(f64, i64)],
        histograms: &[Vec<u8>],
        exemplars: usize,
    ) -> Vec<u8> {
        let mut ts = Vec::new();
        let mut packed = Vec::new();
        for &r in refs {
            varint(r.into(), &mut packed);
        }
        bytes_field(1, &packed, &mut ts);
        for &(v, t) in samples {
            let mut s = Vec::new();
            double(1, v, &mut s);
            key(2, 0, &mut s);
            varint(t as u64, &mut s);
            key(3, 0, &mut s);
            varint(5, &mut s); // start timestamp: ignored
            bytes_field(2, &s, &mut ts);
        }
        for h in histograms {
            bytes_field(3, h, &mut ts);
        }
        for _ in 0..exemplars {
            let mut e = Vec::new();
            double(2, 0.5, &mut e);
            bytes_field(4, &e, &mut ts);
        }
        let mut meta = Vec::new();
        key(1, 0, &mut meta);
        varint(3, &mut meta);
        bytes_field(5, &meta, &mut ts);
        ts
    }

    fn v2_request(symbols: &[&str], series: &[Vec<u8>]) -> Vec<u8> {
        // Series before symbols: the decoder reads the symbols first wherever they are.
        let mut out = request(5, series);
        for s in symbols {
            bytes_field(4, s.as_bytes(), &mut out);
        }
        out
    }

    const SYMBOLS: [&str; 7] = [
        "",
        "__name__",
        "score",
        "model",
        "fraud",
        "acc",
        "__replica__",
    ];

    #[test]
    fn remote_write_2_resolves_symbols_and_takes_samples_histograms_and_exemplars() {
        let raw = v2_request(
            &SYMBOLS,
            &[
                v2_series(&[1, 2, 3, 4], &[], &[example(1000, 0)], 1),
                v2_series(&[1, 5, 3, 4], &[(0.9, 2000), (0.8, 1000)], &[], 2),
                v2_series(&[1, 5, 3, 4], &[(0.7, 3000)], &[], 0),
            ],
        );
        let d = decode_v2_request_ha(&raw, None).unwrap();
        assert_eq!((d.samples, d.histograms, d.exemplars), (3, 1, 3));
        let got: Vec<(&str, Option<&String>, &[f64])> = d
            .series
            .iter()
            .map(|s| (s.metric.as_str(), s.labels.get("le"), s.values.as_slice()))
            .collect();
        assert_eq!(got.len(), 10, "{got:?}");
        assert_eq!(
            got[6],
            ("score_bucket", Some(&"+Inf".to_string()), &[9.0][..])
        );
        assert_eq!(got[9], ("acc", None, &[0.8, 0.9, 0.7][..]));
        assert!(d
            .series
            .iter()
            .all(|s| s.labels.get("model").map(String::as_str) == Some("fraud")));
        // The same request as 1.0 is an empty one (fields 4 and 5 are not 1.0's): the
        // reason the content type must say which it is.
        assert_eq!(decode_write_request(&raw).unwrap().series.len(), 0);
    }

    #[test]
    fn remote_write_2_bad_references_name_the_series_and_the_ref() {
        let refuse = |series: Vec<Vec<u8>>, want: &str| {
            let e =
                decode_v2_request_ha(&v2_request(&SYMBOLS, &series), None).expect_err("refused");
            assert_eq!(e.to_string(), want);
            assert_eq!(e.reason(), RejectReason::BadBody);
        };
        let ok = v2_series(&[1, 5], &[(1.0, 1)], &[], 0);
        refuse(
            vec![ok.clone(), v2_series(&[1, 5, 3, 99], &[(1.0, 1)], &[], 0)],
            "timeseries[1]: labels_refs[3] = 99 is not a symbol (the request has 7)",
        );
        refuse(
            vec![v2_series(&[1, 5, 3], &[(1.0, 1)], &[], 0)],
            "timeseries[0]: labels_refs has 3 entries, not name and value pairs",
        );
        let mut bad_utf8 = Vec::new();
        bytes_field(4, b"\xff", &mut bad_utf8);
        let e = decode_v2_request_ha(&bad_utf8, None).expect_err("refused");
        assert!(
            e.to_string().contains("symbols[0] is not valid UTF-8"),
            "{e}"
        );
        // The series validator as for 1.0: no metric name.
        let e = decode_v2_request_ha(
            &v2_request(&SYMBOLS, &[v2_series(&[3, 4], &[(1.0, 1)], &[], 0)]),
            None,
        )
        .expect_err("refused");
        assert_eq!(e.to_string(), "timeseries[0]: missing __name__ label");
    }

    #[test]
    fn remote_write_2_ha_labels_work_as_for_1() {
        let symbols = ["", "__name__", "acc", "__replica__", "b", "cluster", "prom"];
        let raw = v2_request(
            &symbols,
            &[v2_series(&[1, 2, 3, 4, 5, 6], &[(1.0, 1)], &[], 0)],
        );
        let ha = HaLabels {
            cluster: "cluster",
            replica: "__replica__",
        };
        let d = decode_v2_request_ha(&raw, Some(ha)).unwrap();
        assert_eq!(
            d.ha,
            Some(HaIdentity {
                cluster: "prom".into(),
                replica: "b".into()
            })
        );
        assert_eq!(
            d.series[0].labels,
            Labels::from([("cluster".to_string(), "prom".to_string())])
        );
        assert!(
            decode_v2_request_ha(&raw, None).is_err(),
            "__replica__ is reserved"
        );
    }

    #[test]
    fn v2_decoding_never_panics_on_truncations_or_bit_flips() {
        let raw = v2_request(
            &SYMBOLS,
            &[
                v2_series(&[1, 2, 3, 4], &[], &[example(1000, 0)], 1),
                v2_series(&[1, 5], &[(0.9, 2000)], &[], 0),
            ],
        );
        for cut in 0..raw.len() {
            let _ = decode_v2_request_ha(&raw[..cut], None);
        }
        for i in 0..raw.len() {
            for bit in 0..8 {
                let mut b = raw.clone();
                b[i] ^= 1 << bit;
                let _ = decode_v2_request_ha(&b, None);
                let _ = decode_write_request(&b);
            }
        }
    }

    #[test]
    fn content_type_and_encoding_pick_the_protocol() {
        let n = |ct: Option<&str>, enc: Option<&str>| Protocol::negotiate(ct, enc);
        assert_eq!(n(None, None), Ok(Protocol::V1));
        assert_eq!(
            n(Some("application/x-protobuf"), Some("snappy")),
            Ok(Protocol::V1)
        );
        assert_eq!(
            n(
                Some("application/x-protobuf;proto=prometheus.WriteRequest"),
                None
            ),
            Ok(Protocol::V1)
        );
        assert_eq!(
            n(
                Some("application/x-protobuf; proto=io.prometheus.write.v2.Request"),
                Some("SNAPPY")
            ),
            Ok(Protocol::V2)
        );
        assert_eq!(
            n(Some("application/x-protobuf;proto=yolo"), None),
            Err(NegotiationError::Proto("yolo".into()))
        );
        assert_eq!(
            n(Some("application/json"), None),
            Err(NegotiationError::MediaType("application/json".into()))
        );
        assert_eq!(
            n(Some("application/x-protobuf"), Some("zstd")),
            Err(NegotiationError::Encoding("zstd".into()))
        );
        let msg = NegotiationError::Proto("yolo".into()).to_string();
        assert!(msg.contains(PROTO_V1) && msg.contains(PROTO_V2), "{msg}");
    }
}
