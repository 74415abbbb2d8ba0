//! The encoder: a small encoder for the Prometheus text format 0.0.4 and OpenMetrics 1.0,
//! fed from the engine's state on each scrape.
//!
//! Why not the `prometheus` crate: rule gauges have label sets that come and go with rules
//! and series; with a registry every removal must be mirrored by hand, and a missed one is a
//! stale series forever. Rendering from state makes "a removed rule leaves /metrics" true by
//! construction, and needs no global registry (so several engines can live in one process).

use std::fmt::Write;

use super::Format;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Gauge,
    Counter,
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
    encode_into(&mut out, families, format);
    finish(&mut out, format);
    out
}

/// Appends `families` to `out`, without the OpenMetrics `# EOF` ([`finish`] adds it).
pub fn encode_into(out: &mut String, families: &[Family], format: Format) {
    for f in families {
        write_header(out, f.name, f.kind, f.help, format);
        for (labels, value) in &f.samples {
            out.push_str(f.name);
            if !labels.is_empty() {
                out.push('{');
                write_label_pairs(out, labels.iter().map(|(k, v)| (k.as_str(), v.as_str())));
                out.push('}');
            }
            out.push(' ');
            format_value(*value, out);
            out.push('\n');
        }
    }
}

/// Ends the exposition: `# EOF` for OpenMetrics, nothing for the text format.
pub fn finish(out: &mut String, format: Format) {
    if format == Format::OpenMetrics {
        out.push_str("# EOF\n");
    }
}

/// A family's `# HELP` and `# TYPE` lines (OpenMetrics names a counter family without `_total`).
pub fn write_header(out: &mut String, name: &str, kind: Kind, help: &str, format: Format) {
    let (type_name, kind) = match (format, kind) {
        (Format::OpenMetrics, Kind::Counter) => {
            (name.strip_suffix("_total").unwrap_or(name), "counter")
        }
        (_, Kind::Counter) => (name, "counter"),
        (_, Kind::Gauge) => (name, "gauge"),
    };
    out.push_str("# HELP ");
    out.push_str(type_name);
    out.push(' ');
    out.push_str(&escape_help(help));
    out.push_str("\n# TYPE ");
    out.push_str(type_name);
    out.push(' ');
    out.push_str(kind);
    out.push('\n');
}

/// `k1="v1",k2="v2"` (values escaped), in the order given, without the braces.
pub fn write_label_pairs<'a>(out: &mut String, pairs: impl Iterator<Item = (&'a str, &'a str)>) {
    for (i, (k, v)) in pairs.enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(k);
        out.push_str("=\"");
        escape_label_value(v, out);
        out.push('"');
    }
}

fn escape_help(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\n', "\\n")
}

/// Appends `s` with `\\`, `"` and newline escaped. Values without any of them (nearly all)
/// are copied whole.
pub fn escape_label_value(s: &str, out: &mut String) {
    if !s.bytes().any(|b| matches!(b, b'\\' | b'"' | b'\n')) {
        out.push_str(s);
        return;
    }
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
        push_integer(v as i64, out);
    } else {
        let _ = write!(out, "{v:?}");
    }
}

/// `n` in decimal, as `{}` prints an `i64`, without the formatting machinery.
fn push_integer(n: i64, out: &mut String) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    let mut m = n.unsigned_abs();
    loop {
        i -= 1;
        buf[i] = b'0' + (m % 10) as u8;
        m /= 10;
        if m == 0 {
            break;
        }
    }
    if n < 0 {
        out.push('-');
    }
    // Only ASCII digits were written.
    out.push_str(std::str::from_utf8(&buf[i..]).unwrap_or_default());
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
        assert_eq!(f(-0.0), "0");
        for n in [
            0i64,
            1,
            9,
            10,
            -1,
            -10,
            123_456_789,
            -999_999_999_999_999,
            999_999_999_999_999,
        ] {
            assert_eq!(f(n as f64), n.to_string(), "{n}");
        }
        assert_eq!(f(-2.5), "-2.5");
    }

    #[test]
    fn label_values_escape_as_before() {
        for v in [
            "",
            "plain",
            "a\"b\\c\nd",
            "ünï\"cödé\n",
            "\\\\",
            "tab\there",
        ] {
            let mut fast = String::new();
            escape_label_value(v, &mut fast);
            let slow: String = v
                .chars()
                .map(|c| match c {
                    '\\' => "\\\\".to_string(),
                    '"' => "\\\"".to_string(),
                    '\n' => "\\n".to_string(),
                    c => c.to_string(),
                })
                .collect();
            assert_eq!(fast, slow, "{v:?}");
        }
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
