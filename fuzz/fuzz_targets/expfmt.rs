//! Fuzz target: the text exposition parser (Prometheus 0.0.4 and OpenMetrics). A body gives
//! samples or the first bad line (1-based, within the body); never a panic or a hang.
//!
//! Input: a format byte (even: Prometheus text, odd: OpenMetrics), then the body as UTF-8
//! (lossy).

#![no_main]

use driftgauge::formats::exposition::parse as expfmt;
use driftgauge::formats::exposition::Format;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let format = if mode & 1 == 0 {
        Format::Text
    } else {
        Format::OpenMetrics
    };
    let text = String::from_utf8_lossy(rest);
    match expfmt::parse(&text, format) {
        Ok(samples) => {
            for s in &samples {
                assert!(
                    !s.labels.contains_key("__name__"),
                    "the metric name among the labels: {s:?}"
                );
            }
        }
        Err(e) => {
            let lines = text.split('\n').count();
            assert!(e.line >= 1 && e.line <= lines, "line {} of {lines}", e.line);
            let _ = e.to_string();
        }
    }
});
