//! Fuzz target: remote write bodies. Refused with a `RemoteWriteError`, or every series it
//! yields has a valid metric name, valid non-reserved labels and only finite values, and the
//! counts add up. Never a panic, and never more memory than the decompressed-size limit.
//!
//! Input: a mode byte, then the body. Bit 0 clear: the rest is the body as sent (snappy block
//! format, mostly refused by snappy); set: the rest is an uncompressed protobuf message,
//! snappy-compressed here, so that mutations reach the protobuf decoder. Bit 1: the message
//! is remote write 2.0's `io.prometheus.write.v2.Request` instead of 1.0's `WriteRequest`.
//! Native histograms (both versions) expand into classic series, checked the same way.

#![no_main]

use driftgauge::labels::{is_valid_label_name, is_valid_metric_name, RejectReason};
use driftgauge::labels::{MAX_LABELS, MAX_LABEL_VALUE_BYTES, MAX_NAME_BYTES};
use driftgauge::formats::remote_write::{self, decompressed_limit, Protocol, RemoteWriteError};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let limit = decompressed_limit(256 << 10);
    let compressed;
    let body = if mode & 1 == 0 {
        rest
    } else {
        compressed = snap::raw::Encoder::new()
            .compress_vec(rest)
            .expect("snappy compresses anything");
        &compressed
    };
    let protocol = if mode & 2 == 0 {
        Protocol::V1
    } else {
        Protocol::V2
    };
    match remote_write::decode_body(body, limit, protocol, None) {
        Ok(d) => {
            let mut values = 0;
            for s in &d.series {
                assert!(is_valid_metric_name(&s.metric), "{:?}", s.metric);
                assert!(s.metric.len() <= MAX_NAME_BYTES);
                assert!(s.labels.len() <= MAX_LABELS);
                for (name, value) in &s.labels {
                    assert!(
                        is_valid_label_name(name) && !name.starts_with("__"),
                        "{name:?}"
                    );
                    assert!(name.len() <= MAX_NAME_BYTES);
                    assert!(!value.is_empty() && value.len() <= MAX_LABEL_VALUE_BYTES);
                }
                assert!(!s.values.is_empty());
                assert!(s.values.iter().all(|v| v.is_finite()), "{:?}", s.values);
                values += s.values.len();
            }
            assert_eq!(values, d.samples + d.expanded);
            assert!(d.expanded <= limit);
        }
        Err(e) => {
            if let RemoteWriteError::TooLarge { size, limit: l } = e {
                assert!(size > l);
            }
            assert!(matches!(
                e.reason(),
                RejectReason::BadBody
                    | RejectReason::BadName
                    | RejectReason::TooLarge
                    | RejectReason::BadValue
            ));
            let _ = e.to_string();
        }
    }
});
