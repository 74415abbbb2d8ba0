//! Engine state ⇄ store records: flushing dirty rule+series state, and restoring it at start.
//!
//! A record carries a fingerprint of its rule's definition; a record whose rule is gone or was
//! changed while driftgauge was down is dropped at restore (as a reload would reset it).

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{lock, Engine, RuleRuntime, SeriesState, SeriesWindow};
use crate::config::model::{DetectorSpec, Labels, Rule};
use crate::detect::control::Welford;
use crate::engine::state::{Machine, Status};
use crate::store::codec::{DecodeError, Reader, Writer};
use crate::store::{Store, StoreError};
use crate::window::counts::{CountParts, CountWindows};
use crate::window::{EmaState, SampleWindows};

const RECORD_VERSION: u8 = 1;

/// `group \0 rule \0 {labels as JSON}`.
pub(super) fn series_key(group: &str, rule: &str, labels: &Labels) -> Vec<u8> {
    let mut k = Vec::with_capacity(group.len() + rule.len() + 32);
    k.extend_from_slice(group.as_bytes());
    k.push(0);
    k.extend_from_slice(rule.as_bytes());
    k.push(0);
    k.extend_from_slice(serde_json::to_string(labels).unwrap_or_default().as_bytes());
    k
}

fn parse_key(k: &[u8]) -> Option<(String, String, Labels)> {
    let mut parts = k.splitn(3, |&b| b == 0);
    let group = std::str::from_utf8(parts.next()?).ok()?.to_string();
    let rule = std::str::from_utf8(parts.next()?).ok()?.to_string();
    let labels: Labels = serde_json::from_slice(parts.next()?).ok()?;
    Some((group, rule, labels))
}

/// FNV-1a over the rule's definition: changes whenever the rule does.
pub(super) fn fingerprint(rule: &Rule) -> u64 {
    let text = format!("{rule:?}");
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

fn status_code(s: Status) -> u8 {
    match s {
        Status::Stable => 0,
        Status::Warning => 1,
        Status::Drifted => 2,
    }
}

/// The state record of a series. A frozen `first: N` reference is left out when
/// `separate_reference` (it is in the `references` table).
fn encode(state: &SeriesState, fp: u64, separate_reference: bool) -> Vec<u8> {
    let mut w = Writer::default();
    w.u8(RECORD_VERSION).u64(fp).i64(state.last_fed_ms);
    let m = &state.machine;
    w.u8(status_code(m.status))
        .opt_i64(m.pending_since_ms)
        .opt_i64(m.since_ms)
        .opt_i64(m.last_drifted_condition_ms);
    w.u64(state.last_sent_ms.len() as u64);
    for (name, t) in &state.last_sent_ms {
        w.str(name).i64(*t);
    }
    match &state.window {
        SeriesWindow::Ks(win) => {
            let parts = win.parts();
            // Kind 5: kind 0 and the chunks of a reference in time (`range`, `offset`).
            let kind = if parts.timed.is_some() { 5 } else { 0 };
            if separate_reference && win.frozen_first().is_some() {
                w.u8(2);
            } else {
                w.u8(kind).f64s(parts.first.iter());
            }
            w.f64s(parts.recent).i64s(parts.times.iter());
            if let Some(t) = &parts.timed {
                w.u64(t.chunks.len() as u64);
                for (start, values) in &t.chunks {
                    w.i64(*start).f64s(values.iter());
                }
                w.u64(t.stride).u64(t.offered);
            }
        }
        SeriesWindow::Counts(c) => {
            let parts = c.parts();
            w.u8(4).u64(parts.bins.len() as u64);
            for (label, last, first, seen) in &parts.bins {
                w.str(label).f64(*last).i64(*first).i64(*seen);
            }
            for chunks in [&parts.fine, &parts.coarse] {
                w.u64(chunks.len() as u64);
                for (start, counts) in chunks {
                    w.i64(*start).f64s(counts.iter());
                }
            }
            w.f64s(parts.frozen.iter())
                .opt_i64(parts.start_ms)
                .u64(parts.received);
        }
        SeriesWindow::Ema(e) => {
            // Kind 1 as before for a plain EMA; kind 3 adds a chart's baseline and sums.
            let plain = e.baseline == Welford::default() && e.hi == 0.0 && e.lo == 0.0;
            w.u8(if plain { 1 } else { 3 })
                .opt_f64(e.value)
                .u64(e.samples);
            if !plain {
                w.u64(e.baseline.n)
                    .f64(e.baseline.mean)
                    .f64(e.baseline.m2)
                    .f64(e.hi)
                    .f64(e.lo);
            }
        }
    }
    w.buf
}

/// A stored reference: the floats alone.
fn encode_reference(values: &[f64]) -> Vec<u8> {
    let mut w = Writer::default();
    w.f64s(values.iter());
    w.buf
}

fn decode_reference(bytes: &[u8]) -> Result<Vec<f64>, DecodeError> {
    let mut r = Reader::new(bytes);
    let values = r.f64s("reference")?;
    r.finish()?;
    Ok(values)
}

/// Decodes a record for `rule`; `Ok(None)` when it belongs to another definition of the rule.
/// `reference` reads the series' stored reference, for records that leave it out.
fn decode(
    bytes: &[u8],
    rule: &Rule,
    max_values: usize,
    reference: impl FnOnce() -> Result<Vec<f64>, DecodeError>,
) -> Result<Option<SeriesState>, DecodeError> {
    let mut r = Reader::new(bytes);
    if r.u8("record version")? != RECORD_VERSION {
        return Err(DecodeError {
            at: 0,
            what: "unknown record version",
        });
    }
    if r.u64("fingerprint")? != fingerprint(rule) {
        return Ok(None);
    }
    let last_fed_ms = r.i64("last fed")?;
    let status = match r.u8("status")? {
        0 => Status::Stable,
        1 => Status::Warning,
        2 => Status::Drifted,
        _ => {
            return Err(DecodeError {
                at: 17,
                what: "status",
            })
        }
    };
    let machine = Machine {
        status,
        pending_since_ms: r.opt_i64("pending since")?,
        since_ms: r.opt_i64("since")?,
        last_drifted_condition_ms: r.opt_i64("last drifted")?,
    };
    let n = r.u64("webhook count")?;
    let mut last_sent_ms = BTreeMap::new();
    for _ in 0..n {
        let name = r.string("webhook name")?;
        last_sent_ms.insert(name, r.i64("webhook time")?);
    }
    let kind = r.u8("window kind")?;
    let window = match (kind, &rule.detector) {
        (0 | 2 | 5, DetectorSpec::Ks(spec)) => {
            let first = if kind == 2 {
                reference()?
            } else {
                r.f64s("first")?
            };
            let recent = r.f64s("recent")?;
            let times = r.i64s("times")?;
            let timed = if kind == 5 {
                let n = r.u64("chunk count")?;
                let mut chunks = Vec::new();
                for _ in 0..n {
                    chunks.push((r.i64("chunk start")?, r.f64s("chunk values")?));
                }
                Some(crate::window::timed::TimedParts {
                    chunks,
                    stride: r.u64("stride")?,
                    offered: r.u64("values offered")?,
                })
            } else {
                None
            };
            let w = SampleWindows::from_parts(
                &spec.reference,
                &spec.current,
                max_values,
                first,
                recent,
                times,
                timed,
            )
            .ok_or(DecodeError {
                at: 0,
                what: "windows do not fit the rule",
            })?;
            SeriesWindow::Ks(w)
        }
        (1 | 3, DetectorSpec::Ema(_) | DetectorSpec::Cusum(_)) => {
            let mut e = EmaState {
                value: r.opt_f64("ema")?,
                samples: r.u64("ema samples")?,
                ..EmaState::default()
            };
            if kind == 3 {
                e.baseline = Welford {
                    n: r.u64("baseline count")?,
                    mean: r.f64("baseline mean")?,
                    m2: r.f64("baseline m2")?,
                };
                e.hi = r.f64("cusum upper sum")?;
                e.lo = r.f64("cusum lower sum")?;
            }
            SeriesWindow::Ema(e)
        }
        (4, DetectorSpec::Counts(spec)) => {
            let n = r.u64("bin count")?;
            let mut bins = Vec::new();
            for _ in 0..n {
                bins.push((
                    r.string("bin label")?,
                    r.f64("bin counter")?,
                    r.i64("bin first seen")?,
                    r.i64("bin last seen")?,
                ));
            }
            let mut chunks = || -> Result<Vec<(i64, Vec<f64>)>, DecodeError> {
                let n = r.u64("chunk count")?;
                let mut out = Vec::new();
                for _ in 0..n {
                    out.push((r.i64("chunk start")?, r.f64s("chunk counts")?));
                }
                Ok(out)
            };
            let fine = chunks()?;
            let coarse = chunks()?;
            let parts = CountParts {
                bins,
                fine,
                coarse,
                frozen: r.f64s("frozen counts")?,
                start_ms: r.opt_i64("series start")?,
                received: r.u64("increases received")?,
            };
            let w = CountWindows::from_parts(spec.kind, &spec.reference, spec.current, parts)
                .ok_or(DecodeError {
                    at: 0,
                    what: "count windows do not fit the rule",
                })?;
            SeriesWindow::Counts(w)
        }
        _ => {
            return Err(DecodeError {
                at: 0,
                what: "window kind does not match the detector",
            })
        }
    };
    r.finish()?;
    Ok(Some(SeriesState {
        window,
        machine,
        last_fed_ms,
        last_sent_ms,
        dirty: false,
        reference_stored: kind == 2,
        // Not stored: the time order is checked from the first sample after a restart.
        newest_ms: i64::MIN,
        tested: None,
        labels: None,
        history: super::state::History::default(),
    }))
}

/// What a restore found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Restored {
    pub series: usize,
    /// Records whose rule is gone or changed: deleted at the next flush.
    pub dropped: usize,
}

/// A flush writes transactions of about this many bytes.
const FLUSH_CHUNK_BYTES: usize = 8 << 20;

/// One transaction's worth of a flush.
#[derive(Default)]
struct Chunk {
    upserts: Vec<(Vec<u8>, Vec<u8>)>,
    references: Vec<(Vec<u8>, Vec<u8>)>,
    deletes: Vec<Vec<u8>>,
    /// The series in `upserts`, to mark dirty again if the write fails.
    flushed: Vec<(Arc<RuleRuntime>, super::SeriesKey)>,
    bytes: usize,
}

impl Engine {
    /// Writes every rule+series state changed since the last flush, and deletes the records of
    /// series that left. Returns how many records were written.
    ///
    /// Written in transactions of about `FLUSH_CHUNK_BYTES` (deletes in the first), so a
    /// flush that writes new references never holds them all in memory at once. Each series'
    /// record and reference go in the same transaction, so every series is stored whole.
    pub fn flush(&self, store: &Store) -> Result<usize, StoreError> {
        let generation = self.current();
        let mut chunk = Chunk {
            deletes: std::mem::take(&mut *lock(&self.removed)),
            ..Chunk::default()
        };
        let mut written = 0;
        for g in &generation.groups {
            for rt in &g.rules {
                let fp = fingerprint(&rt.rule);
                // Encoded one series at a time under the rule's lock, so ingestion never
                // waits for a whole rule's encoding.
                let dirty: Vec<super::SeriesKey> = lock(&rt.series)
                    .iter()
                    .filter(|(_, s)| s.dirty)
                    .map(|(k, _)| k.clone())
                    .collect();
                for key in dirty {
                    let mut series = lock(&rt.series);
                    let Some(state) = series.get_mut(&key) else {
                        continue;
                    };
                    let skey = series_key(&g.group.name, &rt.rule.name, &key);
                    // A frozen reference is written once, not with every flush.
                    if let SeriesWindow::Ks(w) = &state.window {
                        if let (Some(first), false) = (w.frozen_first(), state.reference_stored) {
                            let r = encode_reference(first);
                            chunk.bytes += r.len();
                            chunk.references.push((skey.clone(), r));
                            state.reference_stored = true;
                        }
                    }
                    let record = encode(state, fp, true);
                    state.dirty = false;
                    drop(series);
                    chunk.bytes += record.len();
                    chunk.upserts.push((skey, record));
                    chunk.flushed.push((Arc::clone(rt), key));
                    if chunk.bytes >= FLUSH_CHUNK_BYTES {
                        written += self.write_chunk(store, &mut chunk)?;
                    }
                }
            }
        }
        written += self.write_chunk(store, &mut chunk)?;
        Ok(written)
    }

    /// Writes one chunk of a flush and empties it; on an error, what it held is marked for
    /// the next flush.
    fn write_chunk(&self, store: &Store, chunk: &mut Chunk) -> Result<usize, StoreError> {
        let result = store.write_series(&chunk.upserts, &chunk.references, &chunk.deletes);
        let written = chunk.upserts.len();
        let chunk = std::mem::take(chunk);
        match result {
            Ok(()) => Ok(written),
            Err(e) => {
                for (rt, key) in chunk.flushed {
                    if let Some(s) = lock(&rt.series).get_mut(&key) {
                        s.dirty = true;
                        s.reference_stored = false;
                    }
                }
                lock(&self.removed).extend(chunk.deletes);
                Err(e)
            }
        }
    }

    /// Loads stored rule+series state into the rules of the current generation.
    pub fn restore(&self, store: &Store) -> Result<Restored, StoreError> {
        let generation = self.current();
        let max_values = generation.config.limits.max_window_values;
        let mut out = Restored::default();
        for (k, v) in store.series()? {
            let Some((group, rule, labels)) = parse_key(&k) else {
                return Err(store.corrupt("series", "a key is not group/rule/labels".into()));
            };
            let rt = generation
                .groups
                .iter()
                .filter(|g| g.group.name == group)
                .flat_map(|g| g.rules.iter())
                .find(|r| r.rule.name == rule);
            let Some(rt) = rt else {
                out.dropped += 1;
                lock(&self.removed).push(k);
                continue;
            };
            let mut io_error = None;
            let reference = || match store.reference(&k) {
                Ok(Some(bytes)) => decode_reference(&bytes),
                Ok(None) => Err(DecodeError {
                    at: 0,
                    what: "its reference is missing from the references table",
                }),
                Err(e) => {
                    io_error = Some(e);
                    Err(DecodeError {
                        at: 0,
                        what: "its reference could not be read",
                    })
                }
            };
            let decoded = decode(&v, &rt.rule, max_values, reference);
            if let Some(e) = io_error {
                return Err(e);
            }
            match decoded {
                Ok(Some(state)) => {
                    let held = state.window.held();
                    let mut series = lock(&rt.series);
                    let before = series
                        .insert(Arc::new(labels), state)
                        .map_or(0, |s| s.window.held());
                    rt.account(before, held);
                    drop(series);
                    out.series += 1;
                }
                Ok(None) => {
                    out.dropped += 1;
                    lock(&self.removed).push(k);
                }
                Err(e) => {
                    return Err(store.corrupt(
                        "series",
                        format!(
                            "{group}/{rule} {}: {e}",
                            crate::engine::format_labels(&labels)
                        ),
                    ));
                }
            }
        }
        Ok(out)
    }
}
