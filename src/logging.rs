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
