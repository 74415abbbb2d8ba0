//! `GET /`: the status page, served by driftgauge itself, one HTML document with inline CSS
//! and SVG (no scripts, fonts or other requests: it works offline and without JavaScript).
//!
//! `/` shows every group and rule (state counts, threshold) and, per rule, its worst
//! [`PREVIEW`] series; `/?group=G&rule=R&page=N` shows one rule's series, [`PAGE`] a page,
//! worst first. Each series row has its state, statistic, p-value, threshold, window sizes, a
//! strip of its last evaluations' states, and for a KS rule a plot of the reference window's
//! ECDF against the current one's, drawn from [`QUANTILE_POINTS`] quantiles read from the
//! windows when the page is built. The work is bounded: at most [`PAGE`] series of one rule,
//! or [`MAX_PLOTS`] plots on `/`, whatever the number of series. Behind the same auth as
//! every route.

use std::collections::HashMap;
use std::fmt::Write;

use crate::config::model::BinKind;
use crate::config::model::{DetectorSpec, Rule};
use crate::detect::budget::Level;
use crate::detect::ema::EmaBound;
use crate::engine::state::{History, Status};
use crate::engine::{Engine, GroupRuntime, SeriesOutput};
use crate::formats::svg::{
    bars_svg, ecdf_svg, escape, top_bars, Bar, CURRENT_COLOUR, MAX_BARS, QUANTILE_POINTS,
    REFERENCE_COLOUR,
};
use crate::time::rfc3339;
use crate::window::counts::CountView;

/// Series of one rule on a page.
pub const PAGE: usize = 50;
/// Series of each rule shown on `/`.
pub const PREVIEW: usize = 5;
/// Plots on `/` in all; further preview rows have none.
pub const MAX_PLOTS: usize = 40;

/// The page for the query string `query` (`None`: the overview), at `now_ms`.
pub fn render(engine: &Engine, query: Option<&str>, now_ms: i64) -> String {
    let params = parse_query(query.unwrap_or(""));
    let generation = engine.current();
    let mut out = String::with_capacity(64 * 1024);
    let _ = write!(
        out,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\"><title>driftgauge</title>\
         <style>{CSS}</style></head><body><header><a class=\"home\" href=\"/\">driftgauge</a> \
         <span class=\"version\">{version}</span><nav><a href=\"/metrics\">metrics</a> \
         <a href=\"/api/v1/rules\">rules API</a> <a href=\"/-/ready\">readiness</a></nav></header>\
         <p class=\"key\"><i style=\"background:{REFERENCE_COLOUR}\"></i>reference window \
         <i style=\"background:{CURRENT_COLOUR}\"></i>current window \
         <i class=\"s-stable\"></i>stable <i class=\"s-warning\"></i>warning \
         <i class=\"s-drifted\"></i>drifted</p>",
        version = escape(crate::output::metrics::VERSION),
    );
    let selected = match (params.get("group"), params.get("rule")) {
        (Some(g), Some(r)) => generation.groups.iter().find_map(|gr| {
            (gr.group.name == *g)
                .then(|| {
                    gr.rules
                        .iter()
                        .position(|rt| rt.rule.name == *r)
                        .map(|ri| (gr, ri))
                })
                .flatten()
        }),
        _ => None,
    };
    match selected {
        Some((group, ri)) => {
            let page = params
                .get("page")
                .and_then(|p| p.parse::<usize>().ok())
                .unwrap_or(1)
                .max(1);
            rule_page(&mut out, group, ri, page, now_ms);
        }
        None => {
            if params.contains_key("group") || params.contains_key("rule") {
                out.push_str(
                    "<p class=\"error\">No such group and rule; every rule is listed below.</p>",
                );
            }
            overview(&mut out, &generation.groups, now_ms);
        }
    }
    out.push_str("</body></html>\n");
    out
}

/// Every group and rule, each rule with its worst few series.
fn overview(out: &mut String, groups: &[std::sync::Arc<GroupRuntime>], now_ms: i64) {
    if groups.is_empty() {
        out.push_str("<p>No rules are loaded.</p>");
    }
    let mut plots = MAX_PLOTS;
    for g in groups {
        let output = g.output();
        let _ = write!(
            out,
            "<section class=\"group\"><h2>group {name}</h2><p class=\"meta\">{file}, every {interval:?}, \
             last evaluation {last} ({took:.3} s)</p>",
            name = escape(&g.group.name),
            file = escape(&g.group.file),
            interval = g.group.interval,
            last = output.last_evaluation_ms.map(rfc3339).unwrap_or_else(|| "never".into()),
            took = output.last_duration.as_secs_f64(),
        );
        for (ri, rt) in g.rules.iter().enumerate() {
            let series = worst_first(output.series.iter().filter(|s| s.rule == ri));
            rule_header(out, g, ri, &series);
            series_table(
                out,
                g,
                ri,
                &series[..series.len().min(PREVIEW)],
                &mut plots,
                now_ms,
            );
            if series.len() > PREVIEW {
                let _ = write!(
                    out,
                    "<p><a class=\"more\" href=\"{href}\">all {n} series of {rule} →</a></p>",
                    href = rule_href(&g.group.name, &rt.rule.name, 1),
                    n = series.len(),
                    rule = escape(&rt.rule.name),
                );
            }
        }
        out.push_str("</section>");
    }
}

/// One rule's series, a page of them.
fn rule_page(out: &mut String, g: &GroupRuntime, ri: usize, page: usize, now_ms: i64) {
    let output = g.output();
    let series = worst_first(output.series.iter().filter(|s| s.rule == ri));
    let pages = series.len().div_ceil(PAGE).max(1);
    let page = page.min(pages);
    let _ = write!(
        out,
        "<section class=\"group\"><h2>group {}</h2>",
        escape(&g.group.name)
    );
    rule_header(out, g, ri, &series);
    let start = (page - 1) * PAGE;
    let shown = &series[start.min(series.len())..(start + PAGE).min(series.len())];
    let mut plots = PAGE;
    series_table(out, g, ri, shown, &mut plots, now_ms);
    let rule = &g.rules[ri].rule.name;
    let _ = write!(out, "<p class=\"pages\">page {page} of {pages} ");
    if page > 1 {
        let _ = write!(
            out,
            "<a rel=\"prev\" href=\"{}\">← previous</a> ",
            rule_href(&g.group.name, rule, page - 1)
        );
    }
    if page < pages {
        let _ = write!(
            out,
            "<a rel=\"next\" href=\"{}\">next →</a>",
            rule_href(&g.group.name, rule, page + 1)
        );
    }
    out.push_str("</p></section>");
}

/// Series sorted drifted first, then warning, then stable; by labels within a state.
fn worst_first<'a>(series: impl Iterator<Item = &'a SeriesOutput>) -> Vec<&'a SeriesOutput> {
    let mut v: Vec<&SeriesOutput> = series.collect();
    v.sort_by(|a, b| {
        b.status
            .cmp(&a.status)
            .then_with(|| a.labels.cmp(&b.labels))
    });
    v
}

fn rule_header(out: &mut String, g: &GroupRuntime, ri: usize, series: &[&SeriesOutput]) {
    let rule = &g.rules[ri].rule;
    let count = |s: Status| series.iter().filter(|x| x.status == s).count();
    let worst = series.first().map_or(Status::Stable, |s| s.status);
    let _ = write!(
        out,
        "<h3 class=\"rule\"><span class=\"badge s-{state}\">{state}</span> \
         <a href=\"{href}\">{name}</a></h3><p class=\"meta\">{detector} on <code>{selector}</code>; \
         {threshold}; {n} series: {d} drifted, {w} warning, {s} stable</p>",
        state = worst.as_str(),
        href = rule_href(&g.group.name, &rule.name, 1),
        name = escape(&rule.name),
        detector = rule.detector.name(),
        selector = escape(rule.selector.as_str()),
        threshold = escape(&threshold(rule)),
        n = series.len(),
        d = count(Status::Drifted),
        w = count(Status::Warning),
        s = count(Status::Stable),
    );
}

/// What the rule compares its statistic or p-value with (each series' own threshold, as
/// calibrated, is in its row).
fn threshold(rule: &Rule) -> String {
    match &rule.detector {
        DetectorSpec::Ks(spec) if spec.threshold.is_some() => format!(
            "drifted when the statistic ≥ {}",
            spec.threshold.unwrap_or(f64::NAN)
        ),
        DetectorSpec::Ks(spec) => {
            let level = match &spec.level {
                Level::Alpha(a) => format!("drifted when p ≤ {a}"),
                Level::Budget { false_alarms, .. } => {
                    format!("drifted when p ≤ the level calibrated for false_alarms {false_alarms}")
                }
            };
            match spec.statistic {
                Some(d) => format!("{level} and the statistic ≥ {d}"),
                None => level,
            }
        }
        DetectorSpec::Ema(spec) => {
            let (side, bound) = match spec.bound {
                EmaBound::Below(b) => ("below", b),
                EmaBound::Above(b) => ("above", b),
                EmaBound::Control(_) => return "drifted outside its learned control limits".into(),
            };
            match spec.warning {
                Some(w) => format!("drifted {side} {bound}, warning {side} {w}"),
                None => format!("drifted {side} {bound}"),
            }
        }
        DetectorSpec::Cusum(_) => "drifted when the CUSUM passes its decision interval".into(),
        DetectorSpec::Counts(spec) => match (spec.threshold, &spec.level) {
            (Some(t), _) => format!("drifted when the statistic ≥ {t}"),
            (None, Level::Alpha(a)) => format!("drifted when p ≤ {a}"),
            (None, Level::Budget { false_alarms, .. }) => {
                format!("drifted when p ≤ the level calibrated for false_alarms {false_alarms}")
            }
        },
    }
}

fn series_table(
    out: &mut String,
    g: &GroupRuntime,
    ri: usize,
    series: &[&SeriesOutput],
    plots: &mut usize,
    now_ms: i64,
) {
    if series.is_empty() {
        out.push_str("<p class=\"meta\">No series evaluated yet.</p>");
        return;
    }
    out.push_str(
        "<table class=\"series\"><thead><tr><th>series</th><th>state</th><th>statistic</th>\
         <th>p-value</th><th>threshold</th><th>value</th><th>samples (ref / cur)</th><th>history</th>\
         <th>reference against current</th></tr></thead><tbody>",
    );
    let rt = &g.rules[ri];
    for s in series {
        let labels = series_labels(s);
        let plot = if *plots > 0 && matches!(rt.rule.detector, DetectorSpec::Counts(_)) {
            *plots -= 1;
            match rt.counts(&s.key, now_ms) {
                Some(v) if !v.bins.is_empty() => {
                    let histogram = matches!(
                        &rt.rule.detector,
                        DetectorSpec::Counts(c) if c.kind == BinKind::Edges
                    );
                    let bars = if histogram {
                        bucket_bars(&v)
                    } else {
                        let counts: Vec<(String, f64, f64)> = v
                            .bins
                            .iter()
                            .zip(v.reference.iter().zip(&v.current))
                            .map(|(b, (r, c))| (b.to_string(), *r, *c))
                            .collect();
                        top_bars(&counts)
                    };
                    let what = if histogram { "buckets" } else { "categories" };
                    bars_svg(&format!("{what} of {labels}: reference and current"), &bars)
                }
                _ => "<span class=\"meta\">no counts</span>".to_string(),
            }
        } else if *plots > 0 && matches!(rt.rule.detector, DetectorSpec::Ks(_)) {
            *plots -= 1;
            match rt.quantiles(&s.key, now_ms, QUANTILE_POINTS) {
                Some((r, c)) if !r.is_empty() || !c.is_empty() => {
                    ecdf_svg(&format!("ECDF of {labels}: reference and current"), &r, &c)
                }
                _ => "<span class=\"meta\">no samples</span>".to_string(),
            }
        } else {
            String::new()
        };
        let _ = write!(
            out,
            "<tr class=\"s-{state}\"><td><code>{labels}</code>{error}</td>\
             <td><span class=\"badge s-{state}\">{state}</span><br><small>since {since}</small></td>\
             <td>{stat}</td><td>{p}</td><td>{threshold}</td><td>{ema}</td><td>{nr} / {nc}</td><td>{history}</td>\
             <td>{plot}</td></tr>",
            state = s.status.as_str(),
            labels = escape(&labels),
            error = s
                .last_error
                .as_ref()
                .map(|e| format!("<br><small class=\"error\">{}</small>", escape(e)))
                .unwrap_or_default(),
            since = s.since_ms.map(rfc3339).unwrap_or_else(|| "start".into()),
            stat = number(s.statistic),
            p = number(s.p_value),
            threshold = number(s.threshold),
            ema = number(s.ema),
            nr = s.reference_samples,
            nc = s.current_samples,
            history = history_svg(&s.history),
        );
    }
    out.push_str("</tbody></table>");
}

/// Bars of a histogram's buckets in edge order, as shares of each window (`≤ le`);
/// neighbouring buckets are joined in pairs until at most [`MAX_BARS`] are left.
fn bucket_bars(v: &CountView) -> Vec<Bar> {
    let share = |x: f64, all: &[f64]| {
        let t: f64 = all.iter().sum();
        if t > 0.0 {
            x / t
        } else {
            0.0
        }
    };
    let mut bars: Vec<Bar> = v
        .bins
        .iter()
        .enumerate()
        .map(|(i, le)| Bar {
            label: format!("≤{le}"),
            reference: share(v.reference[i], &v.reference),
            current: share(v.current[i], &v.current),
        })
        .collect();
    while bars.len() > MAX_BARS {
        bars = bars
            .chunks(2)
            .map(|pair| Bar {
                label: pair.last().map(|b| b.label.clone()).unwrap_or_default(),
                reference: pair.iter().map(|b| b.reference).sum(),
                current: pair.iter().map(|b| b.current).sum(),
            })
            .collect();
    }
    bars
}

/// The series' labels without `rule` and `group`, as `{name="value", ...}`.
fn series_labels(s: &SeriesOutput) -> String {
    let inner: Vec<String> = s
        .labels
        .iter()
        .filter(|(k, _)| k.as_str() != "rule" && k.as_str() != "group")
        .map(|(k, v)| format!("{k}={v:?}"))
        .collect();
    format!("{{{}}}", inner.join(", "))
}

fn number(x: Option<f64>) -> String {
    match x {
        Some(v) if v != 0.0 && (v.abs() < 1e-3 || v.abs() >= 1e6) => format!("{v:.3e}"),
        Some(v) => format!("{v:.4}"),
        None => "–".to_string(),
    }
}

/// The last evaluations' states, oldest left, one small square each.
fn history_svg(h: &History) -> String {
    let mut out = format!(
        "<svg class=\"history\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"12\" \
         viewBox=\"0 0 {w} 12\" role=\"img\" aria-label=\"last {n} evaluations\">",
        w = 6 * crate::engine::state::HISTORY,
        n = h.len()
    );
    for (i, s) in h.iter().enumerate() {
        let _ = write!(
            out,
            "<rect class=\"s-{s}\" x=\"{x}\" y=\"1\" width=\"5\" height=\"10\"><title>{s}</title></rect>",
            s = s.as_str(),
            x = i * 6
        );
    }
    out.push_str("</svg>");
    out
}

/// `/?group=G&rule=R&page=N`, percent-encoded.
fn rule_href(group: &str, rule: &str, page: usize) -> String {
    let mut href = format!("/?group={}&amp;rule={}", encode(group), encode(rule));
    if page > 1 {
        let _ = write!(href, "&amp;page={page}");
    }
    href
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// `a=1&b=x%20y` into a map (`+` is a space; bad escapes are kept as they are; the first of a
/// repeated key wins).
fn parse_query(query: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        out.entry(decode(k)).or_insert_with(|| decode(v));
    }
    out
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

const CSS: &str = "body{font:14px system-ui,sans-serif;margin:0 1.5em 2em;color:#222}\
header{display:flex;gap:1em;align-items:baseline;border-bottom:1px solid #ddd;padding:.6em 0}\
header .home{font-weight:bold;font-size:1.2em;color:#222;text-decoration:none}.version{color:#777}\
nav a{margin-right:1em}h2{font-size:1.15em;margin:1.2em 0 .2em}h3{font-size:1em;margin:1em 0 .2em}\
.meta{color:#555;margin:.2em 0}code{background:#f3f3f3;padding:0 .2em}\
table.series{border-collapse:collapse;margin:.4em 0}table.series td,table.series th{border-bottom:1px solid #eee;\
padding:4px 8px;text-align:left;vertical-align:top;font-size:13px}\
.badge{padding:1px 7px;border-radius:8px;font-size:12px;color:#fff}\
.badge.s-stable{background:#2e7d32}.badge.s-warning{background:#f9a825;color:#222}.badge.s-drifted{background:#c62828}\
svg.history rect.s-stable{fill:#2e7d32}svg.history rect.s-warning{fill:#f9a825}svg.history rect.s-drifted{fill:#c62828}\
.key i{display:inline-block;width:10px;height:10px;margin:0 4px 0 12px}\
.key i.s-stable{background:#2e7d32}.key i.s-warning{background:#f9a825}.key i.s-drifted{background:#c62828}\
.error{color:#a50e0e}";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_decode_and_hrefs_encode() {
        let q = parse_query("group=fraud%20model&rule=a%2Bb+c&page=2&bad=%zz&x");
        assert_eq!(q.get("group").map(String::as_str), Some("fraud model"));
        assert_eq!(q.get("rule").map(String::as_str), Some("a+b c"));
        assert_eq!(q.get("bad").map(String::as_str), Some("%zz"));
        assert_eq!(q.get("x").map(String::as_str), Some(""));
        assert_eq!(decode("%"), "%");
        assert_eq!(decode("%4"), "%4");
        assert_eq!(decode("%41"), "A");
        assert_eq!(
            rule_href("g 1", "r&<", 3),
            "/?group=g%201&amp;rule=r%26%3C&amp;page=3"
        );
        let mut h = History::default();
        h.push(Status::Stable);
        h.push(Status::Drifted);
        let svg = history_svg(&h);
        assert!(
            svg.contains("class=\"s-stable\" x=\"0\"")
                && svg.contains("class=\"s-drifted\" x=\"6\""),
            "{svg}"
        );
    }
}
