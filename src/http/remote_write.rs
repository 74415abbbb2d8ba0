//! `POST /api/v1/write`: the Prometheus remote write 1.0 and 2.0 receiver (the body formats
//! and the content negotiation are `formats::remote_write`; native histograms arrive
//! expanded into classic series, `formats::native`).

use std::sync::Arc;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::HeaderValue;
use hyper::{HeaderMap, Request, Response, StatusCode};

use super::{body_reason, count_refused, ApiError, Body, State};
use crate::formats::remote_write::{
    decode_body, decompressed_limit, Decoded, HaLabels, Protocol, RemoteWriteError, SOURCE,
};
use crate::ingest::ha::HaError;
use crate::ingest::IngestError;
use crate::labels::RejectReason;
use crate::time::now_ms;

/// The remote write 2.0 response headers: what was written, per kind.
pub const SAMPLES_WRITTEN: &str = "X-Prometheus-Remote-Write-Samples-Written";
pub const HISTOGRAMS_WRITTEN: &str = "X-Prometheus-Remote-Write-Histograms-Written";
pub const EXEMPLARS_WRITTEN: &str = "X-Prometheus-Remote-Write-Exemplars-Written";

/// Which message the headers announce; 415 for another media type, message or encoding.
fn negotiate(headers: &HeaderMap) -> Result<Protocol, ApiError> {
    let text = |name| headers.get(name).map(|v| v.to_str().unwrap_or("\u{fffd}"));
    Protocol::negotiate(
        text(hyper::header::CONTENT_TYPE),
        text(hyper::header::CONTENT_ENCODING),
    )
    .map_err(|e| ApiError::UnsupportedMediaType(e.to_string()))
}

/// What happened to one request on the blocking pool.
enum Outcome {
    Bad(RemoteWriteError),
    /// Refused by the HA tracker, with the values the request carried (all counted under
    /// the tracker's reason, stale markers included).
    Ha(HaError, usize, Written),
    Stored(Counts, Written),
    Limit(IngestError, Counts),
}

struct Counts {
    stale_markers: usize,
    non_finite: usize,
}

/// A request's `X-Prometheus-Remote-Write-*-Written` figures.
#[derive(Debug, Clone, Copy, Default)]
struct Written {
    samples: usize,
    histograms: usize,
    exemplars: usize,
}

impl Written {
    /// Everything a request carried, once it is taken: stale markers and non-finite values
    /// are skipped by design (the spec's "written" is "accepted"), and exemplars are
    /// accepted and ignored. A 2xx that reported fewer would tell Prometheus data was lost.
    fn all(d: &Decoded) -> Written {
        Written {
            samples: d.samples + d.stale_markers + d.non_finite,
            histograms: d.histograms + d.stale_histograms,
            exemplars: d.exemplars,
        }
    }
}

/// `POST /api/v1/write`: 204 when applied; 400 (with the reason) for a body that cannot be
/// decoded or holds a bad series or native histogram, nothing applied; 413 over
/// `limits.max_body_bytes`; 415 for a `Content-Type` other than remote write 1.0's or
/// 2.0's, or a `Content-Encoding` other than snappy; 429 when the series would pass
/// `limits.max_series`. With the HA tracker on (`remote_write_receiver`): 202 and nothing
/// applied for a replica that is not its cluster's elected one, 400 for a cluster past
/// `ha_max_clusters`; the replica label is dropped from what is taken. Remote write 2.0
/// answers carry the `X-Prometheus-Remote-Write-*-Written` headers, 0 when nothing was
/// applied.
pub async fn handle(state: &State, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let telemetry = Arc::clone(&state.engine.telemetry);
    let protocol = negotiate(req.headers())
        .inspect_err(|_| count_refused(&telemetry, RejectReason::BadBody, 0))?;
    let (result, written) = take(state, req, protocol).await;
    if protocol == Protocol::V1 {
        return result;
    }
    let mut resp = result.unwrap_or_else(|e| {
        tracing::debug!(error = %e, "remote write 2.0 request refused");
        e.into_response()
    });
    let w = written.unwrap_or_default();
    for (name, n) in [
        (SAMPLES_WRITTEN, w.samples),
        (HISTOGRAMS_WRITTEN, w.histograms),
        (EXEMPLARS_WRITTEN, w.exemplars),
    ] {
        resp.headers_mut().insert(name, HeaderValue::from(n as u64));
    }
    Ok(resp)
}

/// Reads, decodes and ingests one request; with the figures of what was written when it
/// was taken (a 2xx), none when it was refused.
async fn take(
    state: &State,
    req: Request<Incoming>,
    protocol: Protocol,
) -> (Result<Response<Body>, ApiError>, Option<Written>) {
    let engine = Arc::clone(&state.engine);
    let telemetry = Arc::clone(&engine.telemetry);
    let config = engine.current().config.clone();
    let limit = config.limits.max_body_bytes;
    let (body, _reservation) = match state.read_body(req, 1).await {
        Ok(b) => b,
        Err(e) => {
            count_refused(&telemetry, body_reason(&e), 0);
            return (Err(e), None);
        }
    };
    let max_decompressed = decompressed_limit(limit);
    // The decompressed message and what is decoded from it, reserved before decompressing
    // (snappy states the decompressed length up front; a bad header is refused by `decode`).
    let decompressed = snap::raw::decompress_len(&body)
        .unwrap_or(0)
        .min(max_decompressed);
    let _decoding = match state
        .budget
        .reserve(decompressed.saturating_mul(super::budget::DECOMPRESSED_FACTOR))
        .await
    {
        Ok(r) => r,
        Err(e) => return (Err(e), None),
    };
    // Decoding a large body and ingesting are CPU work: off the async workers.
    let outcome = tokio::task::spawn_blocking(move || {
        let ha = config.remote_write_ha.as_ref();
        let labels = ha.map(|c| HaLabels {
            cluster: &c.cluster_label,
            replica: &c.replica_label,
        });
        let decoded = match decode_body(&body, max_decompressed, protocol, labels) {
            Ok(d) => d,
            Err(e) => return Outcome::Bad(e),
        };
        let counts = Counts {
            stale_markers: decoded.stale_markers + decoded.stale_histograms,
            non_finite: decoded.non_finite,
        };
        let written = Written::all(&decoded);
        if let (Some(ha), Some(id)) = (ha, &decoded.ha) {
            match engine.ha.check(ha, &id.cluster, &id.replica, now_ms()) {
                Ok(crate::ingest::ha::Accepted::Elected) => {}
                Ok(crate::ingest::ha::Accepted::NewlyElected) => {
                    engine
                        .telemetry
                        .ha_elected_replica_changes
                        .add(&id.cluster, 1.0);
                }
                Err(e) => {
                    let all = decoded.samples + counts.stale_markers + counts.non_finite;
                    return Outcome::Ha(e, all + decoded.histograms, written);
                }
            }
        }
        if decoded.series.is_empty() {
            return Outcome::Stored(counts, written);
        }
        match engine.ingest(&decoded.series, SOURCE, now_ms()) {
            Ok(_) => Outcome::Stored(counts, written),
            Err(e) => Outcome::Limit(e, counts),
        }
    })
    .await;
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => {
            return (
                Err(ApiError::Body(format!("remote write failed: {e}"))),
                None,
            )
        }
    };
    match outcome {
        Outcome::Bad(e) => {
            count_refused(&telemetry, e.reason(), e.values());
            (
                Err(ApiError::BadData {
                    index: e.index(),
                    message: e.to_string(),
                }),
                None,
            )
        }
        Outcome::Ha(e, values, written) => match e {
            HaError::ReplicasDidNotMatch { .. } => {
                if values > 0 {
                    telemetry
                        .samples_rejected
                        .add(RejectReason::HaDedupe.as_str(), values as f64);
                }
                // 202: accepted and dropped by design, as Mimir answers.
                (Err(ApiError::HaDeduped(e.to_string())), Some(written))
            }
            HaError::TooManyClusters { .. } => {
                count_refused(&telemetry, RejectReason::TooManyHaClusters, values);
                (
                    Err(ApiError::BadData {
                        message: e.to_string(),
                        index: None,
                    }),
                    None,
                )
            }
        },
        Outcome::Stored(c, written) => {
            count_skipped(&telemetry, &c);
            let mut resp = Response::new(Full::new(Bytes::new()));
            *resp.status_mut() = StatusCode::NO_CONTENT;
            (Ok(resp), Some(written))
        }
        Outcome::Limit(e, c) => {
            // The skipped values were skipped whatever happened to the rest; the engine
            // counted the others.
            count_skipped(&telemetry, &c);
            count_refused(&telemetry, e.reason(), 0);
            (Err(ApiError::TooManySeries(e.to_string())), None)
        }
    }
}

fn count_skipped(telemetry: &crate::telemetry::Telemetry, c: &Counts) {
    for (reason, n) in [
        (RejectReason::StaleMarker, c.stale_markers),
        (RejectReason::NonFinite, c.non_finite),
    ] {
        if n > 0 {
            telemetry.samples_rejected.add(reason.as_str(), n as f64);
        }
    }
}
