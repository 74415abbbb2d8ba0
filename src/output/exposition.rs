//! `/metrics`: a small encoder for the Prometheus text format 0.0.4 and OpenMetrics 1.0,
//! fed from the engine's state on each scrape.
//!
//! Why not the `prometheus` crate: rule gauges have label sets that come and go with rules
//! and series; with a registry every removal must be mirrored by hand, and a missed one is a
//! stale series forever. Rendering from state makes "a removed rule leaves /metrics" true by
//! construction, and needs no global registry (so several engines can live in one process).

use std::fmt::Write;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Gauge,
    Counter,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `text/plain; version=0.0.4`
    Text,
    /// `application/openmetrics-text; version=1.0.0`
    OpenMetrics,
}

impl Format {
    /// Picks the format from an `Accept` header, as Prometheus's client libraries do:
    /// OpenMetrics only when asked for by name.
    pub fn from_accept(accept: Option<&str>) -> Format {
        match accept {
            Some(a)
                if a.split(',')
                    .any(|part| part.trim().starts_with("application/openmetrics-text")) =>
            {
                Format::OpenMetrics
            }
            _ => Format::Text,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// One metric family. For counters, `name` ends in `_total`.
#[derive(Debug, Clone)]
pub struct Family {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: Kind,
    pub samples: Vec<(Vec<(String, String)>, f64)>,
}

impl Family {
    pub fn new(name: &'static str, kind: Kind, help: &'static str) -> Self {
        Family {
            name,
            help,
            kind,
            samples: Vec::new(),
        }
    }

    pub fn push(&mut self, labels: Vec<(String, String)>, value: f64) {
        self.samples.push((labels, value));
    }
}

pub fn encode(families: &[Family], format: Format) -> String {
    let mut out = String::with_capacity(4096);
    for f in families {
        let (type_name, kind) = match (format, f.kind) {
            (Format::OpenMetrics, Kind::Counter) => {
                (f.name.strip_suffix("_total").unwrap_or(f.name), "counter")
            }
            (_, Kind::Counter) => (f.name, "counter"),
            (_, Kind::Gauge) => (f.name, "gauge"),
        };
        let _ = writeln!(out, "# HELP {type_name} {}", escape_help(f.help));
        let _ = writeln!(out, "# TYPE {type_name} {kind}");
        for (labels, value) in &f.samples {
            out.push_str(f.name);
            if !labels.is_empty() {
                out.push('{');
                for (i, (k, v)) in labels.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(k);
                    out.push_str("=\"");
                    escape_label_value(v, &mut out);
                    out.push('"');
                }
                out.push('}');
            }
            out.push(' ');
            format_value(*value, &mut out);
            out.push('\n');
        }
    }
    if format == Format::OpenMetrics {
        out.push_str("# EOF\n");
    }
    out
}

fn escape_help(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\n', "\\n")
}

fn escape_label_value(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Go-like float text: `NaN`, `+Inf`, `-Inf`, shortest round-trip digits otherwise.
pub fn format_value(v: f64, out: &mut String) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v == f64::INFINITY {
        out.push_str("+Inf");
    } else if v == f64::NEG_INFINITY {
        out.push_str("-Inf");
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        let _ = write!(out, "{}", v as i64);
    } else {
        let _ = write!(out, "{v:?}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<Family> {
        let mut g = Family::new(
            "driftgauge_drift_status",
            Kind::Gauge,
            "0 stable, 1 warning, 2 drifted",
        );
        g.push(vec![("rule".into(), "a\"b\\c\nd".into())], 2.0);
        let mut c = Family::new(
            "driftgauge_samples_received_total",
            Kind::Counter,
            "Samples taken in.",
        );
        c.push(vec![("source".into(), "push".into())], 1e-9);
        vec![g, c]
    }

    #[test]
    fn text_format() {
        assert_eq!(
            encode(&sample(), Format::Text),
            "# HELP driftgauge_drift_status 0 stable, 1 warning, 2 drifted\n\
             # TYPE driftgauge_drift_status gauge\n\
             driftgauge_drift_status{rule=\"a\\\"b\\\\c\\nd\"} 2\n\
             # HELP driftgauge_samples_received_total Samples taken in.\n\
             # TYPE driftgauge_samples_received_total counter\n\
             driftgauge_samples_received_total{source=\"push\"} 1e-9\n"
        );
    }

    #[test]
    fn openmetrics_counter_family_drops_total_and_ends_with_eof() {
        let out = encode(&sample(), Format::OpenMetrics);
        assert!(out.contains("# TYPE driftgauge_samples_received counter\n"));
        assert!(out.contains("driftgauge_samples_received_total{source=\"push\"} 1e-9\n"));
        assert!(out.ends_with("# EOF\n"));
    }

    #[test]
    fn values() {
        let f = |v: f64| {
            let mut s = String::new();
            format_value(v, &mut s);
            s
        };
        assert_eq!(f(f64::NAN), "NaN");
        assert_eq!(f(f64::INFINITY), "+Inf");
        assert_eq!(f(f64::NEG_INFINITY), "-Inf");
        assert_eq!(f(0.25), "0.25");
        assert_eq!(f(3.0), "3");
        assert_eq!(f(1.2e-300), "1.2e-300");
        assert_eq!(f(1e20), "1e20");
    }

    #[test]
    fn accept_negotiation() {
        assert_eq!(Format::from_accept(None), Format::Text);
        assert_eq!(Format::from_accept(Some("text/plain")), Format::Text);
        assert_eq!(
            Format::from_accept(Some(
                "application/openmetrics-text;version=1.0.0,text/plain;q=0.5"
            )),
            Format::OpenMetrics
        );
    }
}
