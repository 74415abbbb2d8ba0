//! Fuzz target: a push body is refused with a `PushError`, or every entry it yields has a
//! valid metric name, valid non-reserved label names, non-empty bounded label values, at
//! least one finite value, and timestamps (when given) one per value, not decreasing, none
//! before the epoch nor past the bound on the future. Never a panic.

#![no_main]

use driftgauge::formats::push;
use driftgauge::labels::{is_valid_label_name, is_valid_metric_name, RejectReason};
use driftgauge::labels::{MAX_LABELS, MAX_LABEL_VALUE_BYTES, MAX_NAME_BYTES};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    const NOW: i64 = 1_700_000_000_000;
    match push::parse_timed(data, NOW) {
        Ok(batch) => {
            assert_eq!(batch.series.len(), batch.timestamps.len());
            for t in batch.timestamps.iter().flatten() {
                assert!(t.windows(2).all(|w| w[0] <= w[1]), "{t:?}");
                assert!(t.iter().all(|&x| (0..=NOW + push::MAX_FUTURE_MS).contains(&x)));
            }
            for (s, t) in batch.series.iter().zip(&batch.timestamps) {
                if let Some(t) = t {
                    assert_eq!(t.len(), s.values.len());
                }
            }
            for s in &batch.series {
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
            }
        }
        Err(e) => {
            // The counter reason is one of a fixed set, and the message renders.
            assert!(matches!(
                e.reason(),
                RejectReason::BadBody
                    | RejectReason::BadName
                    | RejectReason::TooLarge
                    | RejectReason::BadValue
                    | RejectReason::BadTimestamp
            ));
            let _ = e.to_string();
        }
    }
});
