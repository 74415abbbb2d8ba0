//! A dataset evaluation written out: a text table, one JSON object, or a self-contained HTML
//! page (inline CSS and SVG, no scripts or external assets) with a plot per column.

use std::fmt::Write;

use super::{ColumnReport, DatasetReport, Summary};
use crate::formats::svg::{bars_svg, ecdf_svg, escape, top_bars, CURRENT_COLOUR, REFERENCE_COLOUR};

fn opt(x: Option<f64>, p: bool) -> String {
    match x {
        Some(v) if p => format!("{v:.3e}"),
        Some(v) => format!("{v:.6}"),
        None => "-".to_string(),
    }
}

/// A table, one line per column, then a summary line.
pub fn text(report: &DatasetReport) -> String {
    let width = report
        .columns
        .iter()
        .map(|c| c.name.chars().count())
        .max()
        .unwrap_or(6)
        .clamp(6, 40);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<width$}  {:<11}  {:<4}  {:>10}  {:>10}  {:>10}  {:<8}  {:>9}  {:>9}  {:>9}  {:>9}",
        "column",
        "kind",
        "test",
        "statistic",
        "p_value",
        "p_adjusted",
        "status",
        "n_ref",
        "n_cur",
        "miss_ref",
        "miss_cur"
    );
    for c in &report.columns {
        let name: String = c.name.chars().take(width).collect();
        let _ = writeln!(
            out,
            "{name:<width$}  {:<11}  {:<4}  {:>10}  {:>10}  {:>10}  {:<8}  {:>9}  {:>9}  {:>9}  {:>9}",
            c.kind,
            c.detector,
            opt(c.statistic, false),
            opt(c.p_value, true),
            opt(c.p_adjusted, true),
            c.status,
            c.n_reference,
            c.n_current,
            c.missing_reference,
            c.missing_current
        );
        if let Some(e) = &c.error {
            let _ = writeln!(out, "  {name}: {e}");
        }
    }
    let _ = writeln!(
        out,
        "{} of {} columns drifted, {} warning, {} not tested (alpha {}, correction {})",
        report.drifted,
        report.columns.len(),
        report.warning,
        report.errors,
        report.alpha,
        report.correction
    );
    out
}

/// One JSON object (the report's fields; NaN and infinities as `null`).
pub fn json(report: &DatasetReport) -> String {
    serde_json::to_string(report).unwrap_or_else(|e| format!("{{\"error\":{:?}}}", e.to_string()))
}

fn plot(c: &ColumnReport) -> String {
    match &c.summary {
        Some(Summary::Quantiles { reference, current }) => ecdf_svg(
            &format!("ECDF of {}: reference and current", c.name),
            reference,
            current,
        ),
        Some(Summary::Categories { counts }) => bars_svg(
            &format!("categories of {}: reference and current shares", c.name),
            &top_bars(counts),
        ),
        None => String::new(),
    }
}

/// A self-contained HTML page: the summary, then a card per column (drifted first) with its
/// figures and plot.
pub fn html(report: &DatasetReport) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>driftgauge eval: {cur} against {refr}</title><style>{css}</style></head><body>\
         <h1>Drift report</h1><p class=\"files\">reference <code>{refr}</code> ({rr} rows), \
         current <code>{cur}</code> ({rc} rows)</p>\
         <p class=\"summary\"><b>{d}</b> of {n} columns drifted, {w} warning, {e} not tested \
         (alpha {alpha}, correction {corr}). \
         <span class=\"key\"><i style=\"background:{rcol}\"></i>reference \
         <i style=\"background:{ccol}\"></i>current</span></p><div class=\"cards\">",
        css = CSS,
        refr = escape(&report.reference),
        cur = escape(&report.current),
        rr = report.rows_reference,
        rc = report.rows_current,
        d = report.drifted,
        n = report.columns.len(),
        w = report.warning,
        e = report.errors,
        alpha = report.alpha,
        corr = report.correction,
        rcol = REFERENCE_COLOUR,
        ccol = CURRENT_COLOUR,
    );
    let rank = |s: &str| match s {
        "drifted" => 0,
        "warning" => 1,
        "error" => 2,
        _ => 3,
    };
    let mut order: Vec<&ColumnReport> = report.columns.iter().collect();
    order.sort_by_key(|c| rank(c.status));
    for c in order {
        let _ = write!(
            out,
            "<section class=\"card {status}\" id=\"col-{id}\"><h2>{name} <span class=\"badge\">{status}</span></h2>\
             <p>{kind}, {det}: statistic {stat}, p {p}, adjusted {pa}; {nr} / {nc} values, \
             {mr} / {mc} missing</p>{plot}{err}</section>",
            status = c.status,
            id = escape(&c.name),
            name = escape(&c.name),
            kind = c.kind,
            det = c.detector,
            stat = opt(c.statistic, false),
            p = opt(c.p_value, true),
            pa = opt(c.p_adjusted, true),
            nr = c.n_reference,
            nc = c.n_current,
            mr = c.missing_reference,
            mc = c.missing_current,
            plot = plot(c),
            err = c
                .error
                .as_ref()
                .map(|e| format!("<p class=\"error\">{}</p>", escape(e)))
                .unwrap_or_default(),
        );
    }
    out.push_str("</div></body></html>\n");
    out
}

const CSS: &str = "body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}\
h1{font-size:1.4em}h2{font-size:1.05em;margin:.2em 0}code{background:#f3f3f3;padding:0 .2em}\
.cards{display:flex;flex-wrap:wrap;gap:12px}.card{border:1px solid #ddd;border-radius:6px;padding:8px;width:340px}\
.card p{margin:.3em 0;font-size:12px}.badge{font-size:11px;padding:1px 6px;border-radius:8px;background:#e6f4ea}\
.drifted .badge{background:#fde0dc;color:#a50e0e}.warning .badge{background:#fef3c7}.error .badge{background:#eee}\
.drifted{border-color:#e57373}.error p.error{color:#a50e0e}\
.key i{display:inline-block;width:10px;height:10px;margin:0 4px 0 10px}";
