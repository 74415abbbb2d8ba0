//! Fuzz target: the store's record codec over arbitrary bytes. Decoding is an error, never a
//! panic or an allocation beyond the input; and windows rebuilt from decoded parts (as the
//! engine restores them) can be viewed, fed, trimmed and tested without a panic.
//!
//! Input: `mode` byte, then per mode:
//! - 0: `k` op bytes (k = next byte % 32), then the buffer read by those ops in order;
//! - 1: a series record as `engine::persist` reads it (window spec chosen by two bytes);
//! - 2: a webhook outbox record as `output::webhook` reads it.

#![no_main]

use std::time::Duration;

use driftgauge::detect::ks::{ks_2samp_sorted, Alternative, Method};
use driftgauge::config::model::{CurrentWindow, ReferenceWindow};
use driftgauge::store::codec::{DecodeError, Reader};
use driftgauge::window::{sort_values, EmaState, SampleWindows};
use libfuzzer_sys::fuzz_target;

fn ops(ops: &[u8], buf: &[u8]) {
    let mut r = Reader::new(buf);
    let mut used = 0usize;
    for op in ops {
        let step: Result<usize, DecodeError> = match op % 10 {
            0 => r.u8("u8").map(|_| 1),
            1 => r.u64("u64").map(|_| 8),
            2 => r.i64("i64").map(|_| 8),
            3 => r.f64("f64").map(|_| 8),
            4 => r
                .opt_i64("opt_i64")
                .map(|v| 1 + 8 * usize::from(v.is_some())),
            5 => r
                .opt_f64("opt_f64")
                .map(|v| 1 + 8 * usize::from(v.is_some())),
            6 => r.bytes("bytes").map(|b| 8 + b.len()),
            7 => r.string("string").map(|s| 8 + s.len()),
            8 => r.f64s("f64s").map(|v| 8 + 8 * v.len()),
            _ => r.i64s("i64s").map(|v| 8 + 8 * v.len()),
        };
        match step {
            Ok(n) => {
                used += n;
                assert!(used <= buf.len(), "read {used} bytes of {}", buf.len());
            }
            Err(e) => {
                assert!(e.at <= buf.len(), "{e}");
                return;
            }
        }
    }
    assert_eq!(r.finish().is_ok(), used == buf.len());
}

fn spec(kind: u8, size: u8) -> (ReferenceWindow, CurrentWindow, usize) {
    let n = usize::from(size % 8) + 1;
    let reference = if kind & 1 == 0 {
        ReferenceWindow::First(n)
    } else {
        ReferenceWindow::Preceding(n)
    };
    let current = if kind & 2 == 0 {
        CurrentWindow::Last(usize::from(size >> 4) % 8 + 1)
    } else {
        CurrentWindow::Duration(Duration::from_millis(u64::from(size >> 4) * 1000 + 1))
    };
    let max_values = usize::from(kind >> 2) % 16 + 1;
    (reference, current, max_values)
}

fn run_ks(w: &mut SampleWindows, now_ms: i64) {
    let view = w.view(now_ms);
    if view.reference.is_empty() || view.current.is_empty() {
        return;
    }
    let current = view.current.to_vec();
    assert!(
        current.is_sorted_by(|a, b| a.total_cmp(b).is_le()),
        "the current window comes sorted"
    );
    let mut reference = view.reference.to_vec();
    if !view.reference_sorted {
        sort_values(&mut reference);
    }
    for alt in [
        Alternative::TwoSided,
        Alternative::Less,
        Alternative::Greater,
    ] {
        if let Ok(r) = ks_2samp_sorted(&reference, &current, alt, Method::Auto) {
            assert!((0.0..=1.0).contains(&r.statistic), "{r:?}");
            assert!(
                r.p_value.is_nan() || (0.0..=1.0).contains(&r.p_value),
                "{r:?}"
            );
        }
    }
}

/// `engine::persist::decode`'s reading order (that function is private), fingerprint skipped.
fn series_record(kind: u8, size: u8, buf: &[u8]) -> Result<(), DecodeError> {
    let mut r = Reader::new(buf);
    r.u8("record version")?;
    r.u64("fingerprint")?;
    let last_fed_ms = r.i64("last fed")?;
    r.u8("status")?;
    r.opt_i64("pending since")?;
    r.opt_i64("since")?;
    r.opt_i64("last drifted")?;
    let n = r.u64("webhook count")?;
    for _ in 0..n {
        r.string("webhook name")?;
        r.i64("webhook time")?;
    }
    match r.u8("window kind")? {
        // 2: the frozen reference is stored apart; here the record carries none.
        k @ (0 | 2) => {
            let first = if k == 0 { r.f64s("first")? } else { Vec::new() };
            let recent = r.f64s("recent")?;
            let times = r.i64s("times")?;
            r.finish()?;
            let (reference, current, max_values) = spec(kind, size);
            if let Some(mut w) =
                SampleWindows::from_parts(&reference, &current, max_values, first, recent, times)
            {
                let (nref, ncur) = w.counts(last_fed_ms);
                let view = w.view(last_fed_ms);
                assert_eq!((view.reference.len(), view.current.len()), (nref, ncur));
                run_ks(&mut w, last_fed_ms);
                let later = last_fed_ms.saturating_add(500);
                w.push(1.5, later);
                w.push(-0.0, later);
                w.trim(later.saturating_add(10_000));
                run_ks(&mut w, later);
                let _ = w.parts();
            }
        }
        _ => {
            let mut e = EmaState {
                value: r.opt_f64("ema")?,
                samples: r.u64("ema samples")?,
            };
            r.finish()?;
            e.push(0.5, 0.1);
        }
    }
    Ok(())
}

/// `output::webhook::decode_delivery`'s reading order (that function is private).
fn delivery_record(buf: &[u8]) -> Result<(), DecodeError> {
    let mut r = Reader::new(buf);
    r.u8("version")?;
    r.string("webhook")?;
    r.string("idempotency key")?;
    r.bytes("body")?;
    r.finish()
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 3 {
        0 => {
            let Some((&k, rest)) = rest.split_first() else {
                return;
            };
            let k = usize::from(k % 32).min(rest.len());
            ops(&rest[..k], &rest[k..]);
        }
        1 => {
            if let [kind, size, buf @ ..] = rest {
                let _ = series_record(*kind, *size, buf);
            }
        }
        _ => {
            let _ = delivery_record(rest);
        }
    }
});
