//! Prometheus durations: `1h30m`, `15s`, `500ms`, `1d`, `1w`, `1y`, `0s`, `0`.
//!
//! Exactly Prometheus's syntax: integers only, units `y w d h m s ms` from largest to smallest,
//! each at most once, no sign, no spaces; a day is 24h, a week 7d, a year 365d. The value must
//! fit Go's `time.Duration` (about 292 years), as in Prometheus.

use std::time::Duration;

use crate::formats::{clip, excerpt};

const UNITS: [(&str, u64); 7] = [
    ("y", 365 * 24 * 3600 * 1000),
    ("w", 7 * 24 * 3600 * 1000),
    ("d", 24 * 3600 * 1000),
    ("h", 3600 * 1000),
    ("m", 60 * 1000),
    ("s", 1000),
    ("ms", 1),
];

/// Largest duration, in milliseconds, that Prometheus accepts (i64 nanoseconds).
const MAX_MS: u64 = (i64::MAX as u64) / 1_000_000;

/// A bad duration. The input is kept as [`excerpt`] quotes it (a number as [`clip`] writes
/// it): a message never holds more than a few dozen characters of it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("empty duration")]
    Empty,
    #[error("invalid duration {0}: durations cannot be negative")]
    Negative(String),
    #[error("invalid duration {0}: fractions are not allowed, combine units instead (e.g. 1h30m)")]
    Fraction(String),
    #[error("invalid duration {input}: missing unit after {number} (units: y, w, d, h, m, s, ms)")]
    MissingUnit { input: String, number: String },
    #[error("invalid duration {input}: unknown unit {unit} (units: y, w, d, h, m, s, ms)")]
    UnknownUnit { input: String, unit: String },
    #[error("invalid duration {0}: units must go from largest to smallest, each at most once (y, w, d, h, m, s, ms)")]
    UnitOrder(String),
    #[error("invalid duration {0}: expected numbers with units, e.g. 15s or 1h30m")]
    Syntax(String),
    #[error("invalid duration {0}: out of range")]
    OutOfRange(String),
}

/// Parses a Prometheus duration.
pub fn parse_duration(s: &str) -> Result<Duration, DurationError> {
    if s.is_empty() {
        return Err(DurationError::Empty);
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.starts_with('-') {
        return Err(DurationError::Negative(excerpt(s)));
    }
    let bytes = s.as_bytes();
    let mut i = 0;
    let mut last_unit: Option<usize> = None;
    let mut total: u64 = 0;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return Err(DurationError::Syntax(excerpt(s)));
        }
        let number = &s[start..i];
        if i < bytes.len() && (bytes[i] == b'.' || bytes[i] == b',') {
            return Err(DurationError::Fraction(excerpt(s)));
        }
        let unit_start = i;
        while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
            i += 1;
        }
        let unit = &s[unit_start..i];
        if unit.is_empty() {
            return Err(if i == bytes.len() {
                DurationError::MissingUnit {
                    input: excerpt(s),
                    number: clip(number),
                }
            } else {
                DurationError::Syntax(excerpt(s))
            });
        }
        let Some(rank) = UNITS.iter().position(|(u, _)| *u == unit) else {
            return Err(DurationError::UnknownUnit {
                input: excerpt(s),
                unit: excerpt(unit),
            });
        };
        if last_unit.is_some_and(|last| rank <= last) {
            return Err(DurationError::UnitOrder(excerpt(s)));
        }
        last_unit = Some(rank);
        let out_of_range = || DurationError::OutOfRange(excerpt(s));
        let n: u64 = number.parse().map_err(|_| out_of_range())?;
        total = n
            .checked_mul(UNITS[rank].1)
            .and_then(|ms| total.checked_add(ms))
            .filter(|&ms| ms <= MAX_MS)
            .ok_or_else(out_of_range)?;
    }
    Ok(Duration::from_millis(total))
}

/// Formats as Prometheus does: `1h30m`, `15s`, `90d`, `0s`; years and weeks only when exact.
/// Below a millisecond is dropped (Prometheus durations have millisecond resolution).
pub fn format_duration(d: Duration) -> String {
    let mut ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    if ms == 0 {
        return "0s".to_string();
    }
    let mut out = String::new();
    for (i, (unit, mult)) in UNITS.iter().enumerate() {
        let exact_only = i < 2;
        if exact_only && ms % mult != 0 {
            continue;
        }
        let v = ms / mult;
        if v > 0 {
            out.push_str(&v.to_string());
            out.push_str(unit);
            ms -= v * mult;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn good_forms() {
        let cases = [
            ("0", ms(0)),
            ("0s", ms(0)),
            ("15s", ms(15_000)),
            ("500ms", ms(500)),
            ("1h30m", ms(5_400_000)),
            ("1d", ms(86_400_000)),
            ("1w", ms(7 * 86_400_000)),
            ("1y", ms(365 * 86_400_000)),
            (
                "1y2w3d4h5m6s7ms",
                ms(365 * 86_400_000
                    + 2 * 7 * 86_400_000
                    + 3 * 86_400_000
                    + 4 * 3_600_000
                    + 5 * 60_000
                    + 6_000
                    + 7),
            ),
            ("90m", ms(5_400_000)),
            ("007s", ms(7_000)),
            ("1m0s", ms(60_000)),
        ];
        for (text, want) in cases {
            assert_eq!(parse_duration(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn bad_forms() {
        let cases = [
            ("", "empty duration"),
            ("-5m", "invalid duration \"-5m\": durations cannot be negative"),
            ("1.5h", "invalid duration \"1.5h\": fractions are not allowed, combine units instead (e.g. 1h30m)"),
            ("0.5s", "invalid duration \"0.5s\": fractions are not allowed, combine units instead (e.g. 1h30m)"),
            ("15", "invalid duration \"15\": missing unit after 15 (units: y, w, d, h, m, s, ms)"),
            ("1h30", "invalid duration \"1h30\": missing unit after 30 (units: y, w, d, h, m, s, ms)"),
            ("5x", "invalid duration \"5x\": unknown unit \"x\" (units: y, w, d, h, m, s, ms)"),
            ("5M", "invalid duration \"5M\": unknown unit \"M\" (units: y, w, d, h, m, s, ms)"),
            ("5sec", "invalid duration \"5sec\": unknown unit \"sec\" (units: y, w, d, h, m, s, ms)"),
            ("5us", "invalid duration \"5us\": unknown unit \"us\" (units: y, w, d, h, m, s, ms)"),
            ("30m1h", "invalid duration \"30m1h\": units must go from largest to smallest, each at most once (y, w, d, h, m, s, ms)"),
            ("1m1m", "invalid duration \"1m1m\": units must go from largest to smallest, each at most once (y, w, d, h, m, s, ms)"),
            ("1s500ms1s", "invalid duration \"1s500ms1s\": units must go from largest to smallest, each at most once (y, w, d, h, m, s, ms)"),
            ("h", "invalid duration \"h\": expected numbers with units, e.g. 15s or 1h30m"),
            ("+5m", "invalid duration \"+5m\": expected numbers with units, e.g. 15s or 1h30m"),
            ("5 m", "invalid duration \"5 m\": expected numbers with units, e.g. 15s or 1h30m"),
            (" 5m", "invalid duration \" 5m\": expected numbers with units, e.g. 15s or 1h30m"),
            ("1h ", "invalid duration \"1h \": expected numbers with units, e.g. 15s or 1h30m"),
            ("1h-5m", "invalid duration \"1h-5m\": expected numbers with units, e.g. 15s or 1h30m"),
            ("1e3s", "invalid duration \"1e3s\": unknown unit \"e\" (units: y, w, d, h, m, s, ms)"),
            ("300y", "invalid duration \"300y\": out of range"),
            ("99999999999999999999s", "invalid duration \"99999999999999999999s\": out of range"),
            ("1µs", "invalid duration \"1µs\": expected numbers with units, e.g. 15s or 1h30m"),
        ];
        for (text, want) in cases {
            match parse_duration(text) {
                Ok(d) => panic!("{text:?} parsed as {d:?}"),
                Err(e) => assert_eq!(e.to_string(), want, "{text:?}"),
            }
        }
    }

    #[test]
    fn largest_accepted() {
        assert!(parse_duration("292y").is_ok());
        assert!(parse_duration("293y").is_err());
    }

    #[test]
    fn format_like_prometheus() {
        let cases = [
            (ms(0), "0s"),
            (Duration::from_nanos(10), "0s"),
            (ms(15_000), "15s"),
            (ms(500), "500ms"),
            (ms(5_400_000), "1h30m"),
            (ms(86_400_000), "1d"),
            (ms(7 * 86_400_000), "1w"),
            (ms(90 * 86_400_000), "90d"),
            (ms(365 * 86_400_000), "1y"),
            (ms(366 * 86_400_000), "366d"),
            (ms(61_001), "1m1s1ms"),
        ];
        for (d, want) in cases {
            assert_eq!(format_duration(d), want, "{d:?}");
        }
    }

    #[test]
    fn round_trip() {
        for text in ["15s", "1h30m", "1w", "2y", "500ms", "1d2h3m4s5ms", "0s"] {
            let d = parse_duration(text).expect(text);
            assert_eq!(format_duration(d), text);
            assert_eq!(parse_duration(&format_duration(d)), Ok(d));
        }
    }
}
