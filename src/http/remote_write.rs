//! `POST /api/v1/write`: the Prometheus remote write 1.0 receiver (the body format is
//! `formats::remote_write`).

use std::sync::Arc;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{HeaderMap, Request, Response, StatusCode};

use super::{body_reason, count_refused, ApiError, Body, State};
use crate::formats::remote_write::{
    decode_ha, decompressed_limit, HaLabels, RemoteWriteError, SOURCE,
};
use crate::ingest::ha::HaError;
use crate::ingest::IngestError;
use crate::labels::RejectReason;
use crate::time::now_ms;

/// Refuses bodies the decoder cannot read: another compression, or remote write 2.0.
fn check_headers(headers: &HeaderMap) -> Result<(), ApiError> {
    let bad = |message: String| ApiError::BadData {
        message,
        index: None,
    };
    if let Some(enc) = headers.get(hyper::header::CONTENT_ENCODING) {
        let enc = enc.to_str().unwrap_or("").trim();
        if !enc.eq_ignore_ascii_case("snappy") {
            return Err(bad(format!(
                "unsupported Content-Encoding {enc:?}: remote write bodies are snappy-compressed"
            )));
        }
    }
    if let Some(ct) = headers.get(hyper::header::CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or("");
        if ct.contains("io.prometheus.write.v2.Request") {
            return Err(bad(
                "remote write 2.0 (io.prometheus.write.v2.Request) is not supported; \
                 send prometheus.WriteRequest (remote write 1.0)"
                    .into(),
            ));
        }
    }
    Ok(())
}

/// What happened to one request on the blocking pool.
enum Outcome {
    Bad(RemoteWriteError),
    /// Refused by the HA tracker, with the values the request carried (all counted under
    /// the tracker's reason, stale markers included).
    Ha(HaError, usize),
    Stored(Counts),
    Limit(IngestError, Counts),
}

struct Counts {
    stale_markers: usize,
    non_finite: usize,
    histograms: usize,
}

/// `POST /api/v1/write`: 204 when applied; 400 (with the reason) for a body that cannot be
/// decoded or holds a bad series, nothing applied; 413 over `limits.max_body_bytes`; 429
/// when the series would pass `limits.max_series`. With the HA tracker on
/// (`remote_write_receiver`): 202 and nothing applied for a replica that is not its
/// cluster's elected one, 400 for a cluster past `ha_max_clusters`; the replica label is
/// dropped from what is taken.
pub async fn handle(state: &State, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let engine = Arc::clone(&state.engine);
    let telemetry = Arc::clone(&engine.telemetry);
    check_headers(req.headers())
        .inspect_err(|_| count_refused(&telemetry, RejectReason::BadBody, 0))?;
    let config = engine.current().config.clone();
    let limit = config.limits.max_body_bytes;
    let (body, _reservation) = state
        .read_body(req, 1)
        .await
        .inspect_err(|e| count_refused(&telemetry, body_reason(e), 0))?;
    let max_decompressed = decompressed_limit(limit);
    // The decompressed message and what is decoded from it, reserved before decompressing
    // (snappy states the decompressed length up front; a bad header is refused by `decode`).
    let decompressed = snap::raw::decompress_len(&body)
        .unwrap_or(0)
        .min(max_decompressed);
    let _decoding = state
        .budget
        .reserve(decompressed.saturating_mul(super::budget::DECOMPRESSED_FACTOR))
        .await?;
    // Decoding a large body and ingesting are CPU work: off the async workers.
    let outcome = tokio::task::spawn_blocking(move || {
        let ha = config.remote_write_ha.as_ref();
        let labels = ha.map(|c| HaLabels {
            cluster: &c.cluster_label,
            replica: &c.replica_label,
        });
        let decoded = match decode_ha(&body, max_decompressed, labels) {
            Ok(d) => d,
            Err(e) => return Outcome::Bad(e),
        };
        let counts = Counts {
            stale_markers: decoded.stale_markers,
            non_finite: decoded.non_finite,
            histograms: decoded.histograms,
        };
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
                    return Outcome::Ha(e, all + counts.histograms);
                }
            }
        }
        if decoded.series.is_empty() {
            return Outcome::Stored(counts);
        }
        match engine.ingest(&decoded.series, SOURCE, now_ms()) {
            Ok(_) => Outcome::Stored(counts),
            Err(e) => Outcome::Limit(e, counts),
        }
    })
    .await
    .map_err(|e| ApiError::Body(format!("remote write failed: {e}")))?;
    match outcome {
        Outcome::Bad(e) => {
            count_refused(&telemetry, e.reason(), e.values());
            Err(ApiError::BadData {
                index: e.index(),
                message: e.to_string(),
            })
        }
        Outcome::Ha(e, values) => match e {
            HaError::ReplicasDidNotMatch { .. } => {
                if values > 0 {
                    telemetry
                        .samples_rejected
                        .add(RejectReason::HaDedupe.as_str(), values as f64);
                }
                Err(ApiError::HaDeduped(e.to_string()))
            }
            HaError::TooManyClusters { .. } => {
                count_refused(&telemetry, RejectReason::TooManyHaClusters, values);
                Err(ApiError::BadData {
                    message: e.to_string(),
                    index: None,
                })
            }
        },
        Outcome::Stored(c) => {
            count_skipped(&telemetry, &c);
            let mut resp = Response::new(Full::new(Bytes::new()));
            *resp.status_mut() = StatusCode::NO_CONTENT;
            Ok(resp)
        }
        Outcome::Limit(e, c) => {
            // The skipped values were skipped whatever happened to the rest; the engine
            // counted the others.
            count_skipped(&telemetry, &c);
            count_refused(&telemetry, e.reason(), 0);
            Err(ApiError::TooManySeries(e.to_string()))
        }
    }
}

fn count_skipped(telemetry: &crate::telemetry::Telemetry, c: &Counts) {
    for (reason, n) in [
        (RejectReason::StaleMarker, c.stale_markers),
        (RejectReason::NonFinite, c.non_finite),
        (RejectReason::NativeHistogram, c.histograms),
    ] {
        if n > 0 {
            telemetry.samples_rejected.add(reason.as_str(), n as f64);
        }
    }
}
