//! The Prometheus text exposition format 0.0.4 and OpenMetrics 1.0 text: one [`Format`], a
//! parser (`parse`, for scrapes) and an encoder (`encode`, for `/metrics`).

pub mod encode;
pub mod parse;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `text/plain; version=0.0.4`
    Text,
    /// `application/openmetrics-text; version=1.0.0` (or 0.0.1)
    OpenMetrics,
}

impl Format {
    /// The format a `Content-Type` names: OpenMetrics for `application/openmetrics-text`, the
    /// Prometheus text format for `text/plain` (any version) and for no type at all; `None`
    /// for anything else (protobuf, HTML, ...).
    pub fn from_content_type(content_type: Option<&str>) -> Option<Format> {
        let Some(ct) = content_type else {
            return Some(Format::Text);
        };
        let media = ct.split(';').next().unwrap_or("").trim();
        if media.eq_ignore_ascii_case("application/openmetrics-text") {
            Some(Format::OpenMetrics)
        } else if media.eq_ignore_ascii_case("text/plain") || media.is_empty() {
            Some(Format::Text)
        } else {
            None
        }
    }

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
