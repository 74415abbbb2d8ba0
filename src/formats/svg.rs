//! Inline SVG plots of a reference distribution against a current one, for the status page
//! (`GET /`) and `eval --output=html`: ECDFs drawn from a few quantile points for values, and
//! side-by-side bars of shares for categories. Pure text out: no scripts, fonts or external
//! assets, so a page that embeds them works offline.
//!
//! The reference is drawn in [`REFERENCE_COLOUR`] with class `ref`, the current window in
//! [`CURRENT_COLOUR`] with class `cur`, so a test (or a stylesheet) finds each.

use std::fmt::Write;

/// The reference distribution's colour (blue).
pub const REFERENCE_COLOUR: &str = "#1f77b4";
/// The current distribution's colour (orange).
pub const CURRENT_COLOUR: &str = "#ff7f0e";

/// How many quantile points summarise a sample for an ECDF plot.
pub const QUANTILE_POINTS: usize = 65;

/// Most categories a bar plot shows; the rest are summed into one bar, `(other)`.
pub const MAX_BARS: usize = 20;

/// `text` escaped for HTML and XML text and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// The values of an ascending sorted sample at probabilities `i / (points - 1)`, `i` in
/// `0..points` (nearest rank): the sample's ECDF in `points` steps. Empty for an empty
/// sample or `points < 2`.
pub fn quantile_points(sorted: &[f64], points: usize) -> Vec<f64> {
    if sorted.is_empty() || points < 2 {
        return Vec::new();
    }
    let last = sorted.len() - 1;
    (0..points)
        .map(|i| {
            let at = (i * last + (points - 1) / 2) / (points - 1);
            sorted[at.min(last)]
        })
        .collect()
}

/// A number for an SVG attribute: short, and never NaN or infinite.
fn n(x: f64) -> String {
    if x.is_finite() {
        let r = (x * 10.0).round() / 10.0;
        format!("{r}")
    } else {
        "0".to_string()
    }
}

/// A short label for an axis tick.
fn tick(x: f64) -> String {
    if x == 0.0 || (1e-3..1e5).contains(&x.abs()) {
        let s = format!("{x:.3}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        s.to_string()
    } else {
        format!("{x:.2e}")
    }
}

const WIDTH: f64 = 320.0;
const HEIGHT: f64 = 160.0;
const LEFT: f64 = 30.0;
const BOTTOM: f64 = 20.0;
const TOP: f64 = 8.0;
const RIGHT: f64 = 8.0;

/// The ECDFs of two samples, each given by [`quantile_points`] (values at evenly spaced
/// probabilities from 0 to 1). `title` is the SVG's accessible name. Either sample may be
/// empty (nothing is drawn for it).
pub fn ecdf_svg(title: &str, reference: &[f64], current: &[f64]) -> String {
    let all = || {
        reference
            .iter()
            .chain(current)
            .copied()
            .filter(|x| x.is_finite())
    };
    let (mut lo, mut hi) = all().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| {
        (lo.min(x), hi.max(x))
    });
    if lo > hi {
        (lo, hi) = (0.0, 1.0);
    }
    if lo == hi {
        (lo, hi) = (lo - 0.5, hi + 0.5);
    }
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let x = |v: f64| LEFT + (v - lo) / (hi - lo) * plot_w;
    let y = |p: f64| TOP + (1.0 - p) * plot_h;
    let mut out = String::new();
    let _ = write!(
        out,
        "<svg class=\"plot ecdf\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" \
         width=\"{WIDTH}\" height=\"{HEIGHT}\" role=\"img\" aria-label=\"{t}\"><title>{t}</title>",
        t = escape(title)
    );
    let _ = write!(
        out,
        "<path class=\"axis\" d=\"M{l} {t}V{b}H{r}\" fill=\"none\" stroke=\"#888\" stroke-width=\"1\"/>",
        l = n(LEFT),
        t = n(TOP),
        b = n(TOP + plot_h),
        r = n(LEFT + plot_w)
    );
    for (text, at, anchor) in [(tick(lo), LEFT, "start"), (tick(hi), LEFT + plot_w, "end")] {
        let _ = write!(
            out,
            "<text x=\"{}\" y=\"{}\" font-size=\"10\" text-anchor=\"{anchor}\" fill=\"#555\">{}</text>",
            n(at),
            n(HEIGHT - 5.0),
            escape(&text)
        );
    }
    for (p, label) in [(0.0, "0"), (1.0, "1")] {
        let _ = write!(
            out,
            "<text x=\"{}\" y=\"{}\" font-size=\"10\" text-anchor=\"end\" fill=\"#555\">{label}</text>",
            n(LEFT - 4.0),
            n(y(p) + 4.0)
        );
    }
    for (class, colour, points) in [
        ("ref", REFERENCE_COLOUR, reference),
        ("cur", CURRENT_COLOUR, current),
    ] {
        if points.is_empty() {
            continue;
        }
        let steps = (points.len() - 1).max(1) as f64;
        let mut d = format!("M{} {}", n(x(lo)), n(y(0.0)));
        for (i, &v) in points.iter().enumerate() {
            let _ = write!(d, "H{}V{}", n(x(v)), n(y(i as f64 / steps)));
        }
        let _ = write!(d, "H{}", n(x(hi)));
        let _ = write!(
            out,
            "<path class=\"{class}\" d=\"{d}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\"/>"
        );
    }
    out.push_str("</svg>");
    out
}

/// One bar pair: a category and its shares (0 to 1) of the reference and of the current
/// window.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    pub label: String,
    pub reference: f64,
    pub current: f64,
}

/// Bars of category shares, reference and current side by side. At most [`MAX_BARS`] are
/// drawn: the caller passes them largest first and sums the rest (see [`top_bars`]).
pub fn bars_svg(title: &str, bars: &[Bar]) -> String {
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let shown = &bars[..bars.len().min(MAX_BARS + 1)];
    let max = shown
        .iter()
        .flat_map(|b| [b.reference, b.current])
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max);
    let max = if max > 0.0 { max } else { 1.0 };
    let slot = plot_w / shown.len().max(1) as f64;
    let bar_w = (slot * 0.4).max(1.0);
    let mut out = String::new();
    let _ = write!(
        out,
        "<svg class=\"plot bars\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" \
         width=\"{WIDTH}\" height=\"{HEIGHT}\" role=\"img\" aria-label=\"{t}\"><title>{t}</title>",
        t = escape(title)
    );
    let _ = write!(
        out,
        "<path class=\"axis\" d=\"M{l} {t}V{b}H{r}\" fill=\"none\" stroke=\"#888\" stroke-width=\"1\"/>",
        l = n(LEFT),
        t = n(TOP),
        b = n(TOP + plot_h),
        r = n(LEFT + plot_w)
    );
    let _ = write!(
        out,
        "<text x=\"{}\" y=\"{}\" font-size=\"10\" text-anchor=\"end\" fill=\"#555\">{}</text>",
        n(LEFT - 4.0),
        n(TOP + 8.0),
        escape(&tick(max))
    );
    for (i, b) in shown.iter().enumerate() {
        let x0 = LEFT + i as f64 * slot + slot * 0.1;
        for (k, (class, colour, share)) in [
            ("ref", REFERENCE_COLOUR, b.reference),
            ("cur", CURRENT_COLOUR, b.current),
        ]
        .into_iter()
        .enumerate()
        {
            let share = if share.is_finite() {
                share.max(0.0)
            } else {
                0.0
            };
            let h = share / max * plot_h;
            let _ = write!(
                out,
                "<rect class=\"{class}\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{colour}\">\
                 <title>{}: {:.1}%</title></rect>",
                n(x0 + k as f64 * bar_w),
                n(TOP + plot_h - h),
                n(bar_w),
                n(h),
                escape(&b.label),
                share * 100.0
            );
        }
        if shown.len() <= 10 {
            let label: String = b.label.chars().take(8).collect();
            let _ = write!(
                out,
                "<text x=\"{}\" y=\"{}\" font-size=\"9\" text-anchor=\"middle\" fill=\"#555\">{}</text>",
                n(x0 + bar_w),
                n(HEIGHT - 6.0),
                escape(&label)
            );
        }
    }
    out.push_str("</svg>");
    out
}

/// Bars from counts per category (`(label, reference count, current count)`): shares of each
/// window's total, largest (by the two shares together) first, at most [`MAX_BARS`] and the
/// rest summed into `(other)`.
pub fn top_bars(counts: &[(String, f64, f64)]) -> Vec<Bar> {
    let total_ref: f64 = counts.iter().map(|c| c.1).sum();
    let total_cur: f64 = counts.iter().map(|c| c.2).sum();
    let share = |c: f64, t: f64| if t > 0.0 { c / t } else { 0.0 };
    let mut bars: Vec<Bar> = counts
        .iter()
        .map(|(label, r, c)| Bar {
            label: label.clone(),
            reference: share(*r, total_ref),
            current: share(*c, total_cur),
        })
        .collect();
    bars.sort_by(|a, b| {
        (b.reference + b.current)
            .total_cmp(&(a.reference + a.current))
            .then_with(|| a.label.cmp(&b.label))
    });
    if bars.len() > MAX_BARS {
        let rest = bars.split_off(MAX_BARS);
        bars.push(Bar {
            label: "(other)".to_string(),
            reference: rest.iter().map(|b| b.reference).sum(),
            current: rest.iter().map(|b| b.current).sum(),
        });
    }
    bars
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantile_points_span_the_sample() {
        let v: Vec<f64> = (0..101).map(f64::from).collect();
        let q = quantile_points(&v, 5);
        assert_eq!(q, vec![0.0, 25.0, 50.0, 75.0, 100.0]);
        assert_eq!(quantile_points(&[3.0], 3), vec![3.0, 3.0, 3.0]);
        assert!(quantile_points(&[], 3).is_empty());
    }

    #[test]
    fn ecdf_draws_both_samples_in_their_colours() {
        let svg = ecdf_svg("a <b>", &[0.0, 1.0, 2.0], &[1.0, 2.0, 3.0]);
        assert!(svg.contains("<title>a &lt;b&gt;</title>"), "{svg}");
        assert!(svg.contains("class=\"ref\" d=\"M30 140H30V140H"), "{svg}");
        assert!(svg.contains(&format!("stroke=\"{REFERENCE_COLOUR}\"")));
        assert!(svg.contains(&format!("stroke=\"{CURRENT_COLOUR}\"")));
        // Nothing to draw is still a valid SVG, without paths for the samples.
        let empty = ecdf_svg("x", &[], &[]);
        assert!(!empty.contains("class=\"ref\"") && empty.ends_with("</svg>"));
        let flat = ecdf_svg("x", &[f64::NAN, 5.0], &[5.0]);
        assert!(!flat.contains("NaN") && !flat.contains("inf"), "{flat}");
    }

    #[test]
    fn bars_keep_the_largest_and_sum_the_rest() {
        let counts: Vec<(String, f64, f64)> = (0..30)
            .map(|i| (format!("c{i}"), f64::from(30 - i), 1.0))
            .collect();
        let bars = top_bars(&counts);
        assert_eq!(bars.len(), MAX_BARS + 1);
        assert_eq!(bars[0].label, "c0");
        assert_eq!(bars[MAX_BARS].label, "(other)");
        let total: f64 = bars.iter().map(|b| b.reference).sum();
        assert!((total - 1.0).abs() < 1e-12);
        let svg = bars_svg("t", &bars);
        assert_eq!(svg.matches("<rect class=\"ref\"").count(), MAX_BARS + 1);
        assert_eq!(svg.matches("<rect class=\"cur\"").count(), MAX_BARS + 1);
    }
}
