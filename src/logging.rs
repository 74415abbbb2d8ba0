//! Log setup: `--log.level` and `--log.format=logfmt|json`, as Prometheus's flags are.

use std::fmt;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("unknown log level {0:?}: debug, info, warn or error")]
    Level(String),
    #[error("unknown log format {0:?}: logfmt or json")]
    Format(String),
}

pub fn init(level: &str, format: &str) -> Result<(), LogError> {
    let level = match level {
        "debug" => Level::DEBUG,
        "info" => Level::INFO,
        "warn" => Level::WARN,
        "error" => Level::ERROR,
        other => return Err(LogError::Level(other.to_string())),
    };
    let builder = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr);
    match format {
        "logfmt" => builder.event_format(Logfmt).init(),
        "json" => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init(),
        other => return Err(LogError::Format(other.to_string())),
    }
    Ok(())
}

/// `ts=2026-11-23T18:00:00.123Z level=info caller=engine msg="rule state changed" rule=x ...`
struct Logfmt;

impl<S, N> FormatEvent<S, N> for Logfmt
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let level = meta.level().as_str().to_ascii_lowercase();
        let target = meta
            .target()
            .strip_prefix("driftgauge::")
            .unwrap_or(meta.target());
        write!(
            w,
            "ts={} level={level} caller={target}",
            crate::time::rfc3339(crate::time::now_ms())
        )?;
        let mut v = Visitor {
            out: String::new(),
            msg: None,
        };
        event.record(&mut v);
        if let Some(msg) = v.msg {
            write!(w, " msg={}", quote(&msg))?;
        }
        writeln!(w, "{}", v.out)
    }
}

struct Visitor {
    out: String,
    msg: Option<String>,
}

impl Visit for Visitor {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let text = format!("{value:?}");
        if field.name() == "message" {
            self.msg = Some(text);
        } else {
            self.out
                .push_str(&format!(" {}={}", field.name(), quote(&text)));
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.msg = Some(value.to_string());
        } else {
            self.out
                .push_str(&format!(" {}={}", field.name(), quote(value)));
        }
    }
}

fn quote(s: &str) -> String {
    if !s.is_empty()
        && !s
            .chars()
            .any(|c| c == ' ' || c == '"' || c == '=' || c.is_control())
    {
        s.to_string()
    } else {
        format!("{s:?}")
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Regression: transitions were logged as `statistic=None … ema=Some(0.87)`. An absent
    /// value is left out, a present one printed plain, in both formats.
    #[test]
    fn optional_values_log_plain_or_not_at_all() {
        let buf = Buffer::default();
        let make = {
            let buf = buf.clone();
            move || buf.clone()
        };
        let logfmt = tracing_subscriber::fmt()
            .with_writer(make.clone())
            .event_format(Logfmt)
            .finish();
        let emit = || {
            let (statistic, ema): (Option<f64>, Option<f64>) = (None, Some(0.87));
            tracing::info!(rule = "r", statistic, ema, "rule state changed");
        };
        tracing::subscriber::with_default(logfmt, emit);
        let json = tracing_subscriber::fmt()
            .with_writer(make)
            .json()
            .flatten_event(true)
            .finish();
        tracing::subscriber::with_default(json, emit);
        let text = String::from_utf8(buf.0.lock().unwrap_or_else(|e| e.into_inner()).clone())
            .unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(
            lines[0].ends_with(r#"msg="rule state changed" rule=r ema=0.87"#),
            "{}",
            lines[0]
        );
        assert!(lines[1].contains(r#""ema":0.87"#), "{}", lines[1]);
        assert!(
            !text.contains("Some") && !text.contains("None") && !text.contains("statistic"),
            "{text}"
        );
    }
}
