//! The parts of a rule file that only `histogram:` and `categories:` rules have: the input
//! selectors, windows in time (`first: 1h`, `preceding: 24h`, `{offset: 7d, duration: 1h}`,
//! `{range: {start, end}}`, `{file: counts.txt}`) and count files. Every error is reported at
//! `file:line:col`, like the rest of the walk in `config::parse`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use marked_yaml::Node;

use crate::config::diag::{self, io_reason, quote_path};
use crate::config::model::{BinKind, TimeReference};
use crate::config::selector::Selector;
use crate::config::yaml::{self, get, key_of, Cx};
use crate::formats::excerpt;
use crate::window::counts::parse_edge;

/// Bins a count file may list.
const MAX_FILE_BINS: usize = 100_000;

/// `histogram: 'family{...}'`: the selector of the family's `_bucket` series (native
/// histograms arrive expanded into `_bucket{le}` series too). The family must be named before
/// the braces.
pub(crate) fn histogram_selector(cx: &mut Cx, node: &Node) -> Option<Selector> {
    let s = cx.scalar("histogram", node)?;
    let text = s.as_str().trim();
    let parsed = match Selector::parse(text) {
        Ok(sel) => sel,
        Err(e) => {
            cx.at_offset(
                s,
                e.offset,
                format!("histogram: invalid selector: {}", e.message),
            );
            return None;
        }
    };
    let name = match parsed.metric_name() {
        Some(n) if text.starts_with(n) => n.to_string(),
        _ => {
            cx.at(
                node,
                "histogram: name the histogram before the braces, e.g. 'model_prediction_score{model=\"fraud\"}'",
            );
            return None;
        }
    };
    if parsed.matchers().iter().any(|m| m.name == "le") {
        cx.at(
            node,
            "histogram: selects every bucket of the family itself; drop the `le` matcher",
        );
        return None;
    }
    let family = name.strip_suffix("_bucket").unwrap_or(&name);
    let rest = &text[name.len()..];
    Selector::parse(&format!("{family}_bucket{rest}"))
        .inspect_err(|e| cx.at(node, format!("histogram: invalid selector: {}", e.message)))
        .ok()
}

/// `categories: 'counter{...}'`: any selector of counters.
pub(crate) fn categories_selector(cx: &mut Cx, node: &Node) -> Option<Selector> {
    let s = cx.scalar("categories", node)?;
    match Selector::parse(s.as_str()) {
        Ok(sel) => Some(sel),
        Err(e) => {
            cx.at_offset(
                s,
                e.offset,
                format!("categories: invalid selector: {}", e.message),
            );
            None
        }
    }
}

/// `current: {duration: 30m}`.
pub(crate) fn current(cx: &mut Cx, node: &Node) -> Option<Duration> {
    let Node::Mapping(map) = node else {
        cx.at(
            node,
            format!(
                "current: expected a mapping like {{duration: 30m}}, got {}",
                yaml::describe(node)
            ),
        );
        return None;
    };
    let before = cx.errors();
    cx.check_keys_refusing(
        map,
        &["duration"],
        &[(
            "last",
            "a histogram or categories window is a span of time; use current: {duration: 30m}",
        )],
        "current",
    );
    match get(map, "duration") {
        Some(n) => cx.positive_duration("current.duration", n),
        None if cx.errors() > before => None,
        None => {
            cx.missing(map, "duration", "current");
            None
        }
    }
}

/// The reference of a count rule.
pub(crate) fn reference(
    cx: &mut Cx,
    node: &Node,
    base_dir: &Path,
    kind: BinKind,
) -> Option<TimeReference> {
    let Node::Mapping(map) = node else {
        cx.at(
            node,
            format!(
                "reference: expected a mapping like {{first: 1h}}, got {}",
                yaml::describe(node)
            ),
        );
        return None;
    };
    const KEYS: &[&str] = &["first", "preceding", "offset", "duration", "range", "file"];
    let before = cx.errors();
    cx.check_keys(map, KEYS, "reference");
    let present: Vec<&str> = KEYS
        .iter()
        .copied()
        .filter(|k| get(map, k).is_some())
        .collect();
    let shape = match present.as_slice() {
        ["offset", "duration"] => "offset",
        [one] if *one != "offset" && *one != "duration" => one,
        [] if cx.errors() > before => return None,
        _ => {
            cx.at(
                node,
                "reference: expected one of {first: 1h}, {preceding: 24h}, {offset: 7d, duration: 1h}, {range: {start: RFC3339, end: RFC3339}} or {file: counts.txt}",
            );
            return None;
        }
    };
    let at = |k: &str| get(map, k).expect("present");
    match shape {
        "first" => cx
            .positive_duration("reference.first", at("first"))
            .map(TimeReference::First),
        "preceding" => cx
            .positive_duration("reference.preceding", at("preceding"))
            .map(TimeReference::Preceding),
        "offset" => {
            let offset = cx.positive_duration("reference.offset", at("offset"));
            let duration = cx.positive_duration("reference.duration", at("duration"));
            Some(TimeReference::Offset {
                offset: offset?,
                duration: duration?,
            })
        }
        "range" => range(cx, at("range")),
        _ => file(cx, at("file"), base_dir, kind),
    }
}

fn range(cx: &mut Cx, node: &Node) -> Option<TimeReference> {
    let map = cx.mapping("reference.range", node)?;
    cx.check_keys(map, &["start", "end"], "reference.range");
    let mut time = |key: &str| -> Option<i64> {
        let Some(n) = get(map, key) else {
            cx.missing(map, key, "reference.range");
            return None;
        };
        let text = cx.string(&format!("reference.range.{key}"), n)?;
        let parsed = parse_rfc3339(&text);
        if parsed.is_none() {
            cx.at(
                n,
                format!(
                    "reference.range.{key}: {} is not an RFC 3339 time like 2026-11-01T00:00:00Z",
                    excerpt(&text)
                ),
            );
        }
        parsed
    };
    let (start_ms, end_ms) = (time("start")?, time("end")?);
    if end_ms <= start_ms {
        let k = key_of(map, "end").expect("present");
        cx.at_key(k, "reference.range: end must be after start");
        return None;
    }
    Some(TimeReference::Range { start_ms, end_ms })
}

/// A count file: one `bin count` pair a line (`le` and its cumulative count for a histogram,
/// as `increase(x_bucket[1d])` shows them; a category and its count otherwise); blank lines
/// and `#` comments skipped.
fn file(cx: &mut Cx, node: &Node, base_dir: &Path, kind: BinKind) -> Option<TimeReference> {
    let rel = cx.non_empty("reference.file", node)?;
    let path = base_dir.join(&rel);
    let shown = quote_path(&path);
    let text = match diag::read_text(&path, diag::MAX_REFERENCE_FILE) {
        Ok(t) => t,
        Err(e) => {
            cx.at(
                node,
                format!("reference.file: cannot read {shown}: {}", io_reason(&e)),
            );
            return None;
        }
    };
    match parse_counts(&text, kind) {
        Ok(counts) => Some(TimeReference::File {
            path,
            counts: Arc::from(counts),
        }),
        Err(e) => {
            cx.at(node, format!("reference.file: {shown} {e}"));
            None
        }
    }
}

/// The `(bin, count)` pairs of a count file, or why it cannot be read (naming the line).
pub fn parse_counts(text: &str, kind: BinKind) -> Result<Vec<(String, f64)>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at = i + 1;
        let Some((bin, count)) = line.rsplit_once(|c: char| c.is_whitespace() || c == ',') else {
            return Err(format!(
                "line {at}: expected `bin count`, got {}",
                excerpt(line)
            ));
        };
        let bin = bin.trim().trim_matches('"');
        if kind == BinKind::Edges && parse_edge(bin).is_none() {
            return Err(format!(
                "line {at}: bucket edge {} is not a number (le values are like 0.5 or +Inf)",
                excerpt(bin)
            ));
        }
        let count: f64 = match count.trim().parse() {
            Ok(c) if f64::is_finite(c) && c >= 0.0 => c,
            _ => {
                return Err(format!(
                    "line {at}: count {} is not a finite number >= 0",
                    excerpt(count.trim())
                ))
            }
        };
        if out.len() >= MAX_FILE_BINS {
            return Err(format!("holds more than {MAX_FILE_BINS} bins"));
        }
        out.push((bin.to_string(), count));
    }
    if out.is_empty() {
        return Err("holds no counts".into());
    }
    Ok(out)
}

/// Unix milliseconds of an RFC 3339 time (`2026-11-01T00:00:00Z`, fractions and offsets
/// such as `+02:00` allowed).
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let s = s.trim();
    let (date, rest) = s.split_once(['T', 't', ' '])?;
    let mut d = date.splitn(3, '-');
    let (y, mo, day): (i64, i64, i64) = (
        d.next()?.parse().ok()?,
        d.next()?.parse().ok()?,
        d.next()?.parse().ok()?,
    );
    let (clock, offset_s) = if let Some(c) = rest.strip_suffix(['Z', 'z']) {
        (c, 0)
    } else {
        let i = rest.rfind(['+', '-'])?;
        let (c, off) = rest.split_at(i);
        let sign = if off.starts_with('-') { -1 } else { 1 };
        let (h, m) = off[1..].split_once(':')?;
        let (h, m): (i64, i64) = (h.parse().ok()?, m.parse().ok()?);
        if h > 23 || m > 59 {
            return None;
        }
        (c, sign * (h * 3600 + m * 60))
    };
    let mut c = clock.splitn(3, ':');
    let (h, mi): (i64, i64) = (c.next()?.parse().ok()?, c.next()?.parse().ok()?);
    let sec: f64 = c.next()?.parse().ok()?;
    let days_in_month = [
        31,
        28 + i64::from(is_leap(y)),
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&mo)
        || day < 1
        || day > days_in_month[(mo - 1) as usize]
        || !(0..24).contains(&h)
        || !(0..60).contains(&mi)
        || !(0.0..61.0).contains(&sec)
    {
        return None;
    }
    let days = days_from_civil(y, mo, day);
    let ms = ((days * 86_400 + h * 3600 + mi * 60 - offset_s) as f64 * 1000.0 + sec * 1000.0)
        .round() as i64;
    Some(ms)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_times() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339("2026-11-23T18:00:00Z"),
            Some(1_795_456_800_000)
        );
        assert_eq!(
            parse_rfc3339("2026-11-23T20:00:00.5+02:00"),
            Some(1_795_456_800_500)
        );
        assert_eq!(
            parse_rfc3339("2024-02-29T00:00:00Z"),
            Some(1_709_164_800_000)
        );
        for bad in [
            "2023-02-29T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "yesterday",
            "2026-11-23",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn count_files() {
        let c = parse_counts("# le count\n0.5 10\n+Inf,30\n", BinKind::Edges).unwrap();
        assert_eq!(c, [("0.5".to_string(), 10.0), ("+Inf".to_string(), 30.0)]);
        let c = parse_counts("\"FR\" 3\nDE 4", BinKind::Categories).unwrap();
        assert_eq!(c[0].0, "FR");
        assert_eq!(
            parse_counts("abc 3", BinKind::Edges).unwrap_err(),
            "line 1: bucket edge \"abc\" is not a number (le values are like 0.5 or +Inf)"
        );
        assert!(parse_counts("a -1", BinKind::Categories)
            .unwrap_err()
            .starts_with("line 1: count"));
        assert_eq!(
            parse_counts("\n", BinKind::Categories).unwrap_err(),
            "holds no counts"
        );
    }
}
