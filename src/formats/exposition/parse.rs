//! Our own parser of the Prometheus text exposition format 0.0.4 and of OpenMetrics 1.0 text.
//!
//! Pure: a body in, every sample out, or the first bad line as a [`ParseError`] (a bad line
//! fails the whole body, as a Prometheus scrape does). It follows Prometheus's own parsers
//! (`model/textparse`), including what they tolerate:
//!
//! - text 0.0.4: blank lines, comments (`#` lines other than `# HELP`/`# TYPE`), tabs and
//!   spaces around names, labels and values, a trailing comma in a label set, labels without
//!   separating commas, integer millisecond timestamps;
//! - OpenMetrics: exactly one space between tokens, no blank lines or free comments, `# UNIT`,
//!   `# EOF` required and last, float timestamps in seconds, exemplars (`# {..} value [ts]`,
//!   checked and skipped), `_created` samples of counters, histograms and summaries skipped
//!   (they are creation timestamps, not values);
//! - both: quoted metric names inside braces (`{"name",a="b"}`), label value escapes `\\`,
//!   `\"`, `\n` (any other escape is kept as written), `NaN`, `+Inf`, `-Inf`, exponents; Go's
//!   hex floats and `_` digit separators are refused, as Prometheus does.
//!
//! Names are checked for syntax only; quoted names may hold any UTF-8 and the caller decides
//! whether it takes them (the scrape source keeps Prometheus's legacy name rules).

use crate::labels::Labels;

use super::Format;

/// A metric family's type, from its `# TYPE` line. Samples that belong to no typed family
/// (no `# TYPE`, or a name that is not one of the family's) are [`MetricKind::Unknown`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    Counter,
    Gauge,
    Histogram,
    GaugeHistogram,
    Summary,
    Info,
    StateSet,
    /// `untyped` (text format), `unknown` (OpenMetrics), or no `# TYPE` at all.
    Unknown,
}

impl MetricKind {
    fn parse(s: &str, format: Format) -> Option<MetricKind> {
        let kind = match s {
            "counter" => MetricKind::Counter,
            "gauge" => MetricKind::Gauge,
            "histogram" => MetricKind::Histogram,
            "summary" => MetricKind::Summary,
            "untyped" if format == Format::Text => MetricKind::Unknown,
            "unknown" if format == Format::OpenMetrics => MetricKind::Unknown,
            "gaugehistogram" if format == Format::OpenMetrics => MetricKind::GaugeHistogram,
            "info" if format == Format::OpenMetrics => MetricKind::Info,
            "stateset" if format == Format::OpenMetrics => MetricKind::StateSet,
            _ => return None,
        };
        Some(kind)
    }

    /// Name suffixes a sample of a family of this kind may carry, and whether the suffix
    /// marks a creation timestamp (skipped, never a value).
    fn suffixes(self) -> &'static [(&'static str, bool)] {
        match self {
            MetricKind::Counter => &[("_total", false), ("", false), ("_created", true)],
            MetricKind::Gauge | MetricKind::StateSet | MetricKind::Unknown => &[("", false)],
            MetricKind::Histogram => &[
                ("_bucket", false),
                ("_sum", false),
                ("_count", false),
                ("_created", true),
            ],
            MetricKind::GaugeHistogram => &[
                ("_bucket", false),
                ("_gsum", false),
                ("_gcount", false),
                ("_sum", false),
                ("_count", false),
                ("_created", true),
            ],
            MetricKind::Summary => &[
                ("", false),
                ("_sum", false),
                ("_count", false),
                ("_created", true),
            ],
            MetricKind::Info => &[("_info", false), ("", false)],
        }
    }
}

/// One sample line, labels unescaped. `metric` never appears among `labels`.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedSample {
    pub metric: String,
    pub labels: Labels,
    pub value: f64,
    /// Milliseconds since the epoch, when the line gives a timestamp.
    pub timestamp_ms: Option<i64>,
    pub kind: MetricKind,
}

/// The first bad line of a body (1-based).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

/// Parses a whole body. Any bad line fails it all.
pub fn parse(text: &str, format: Format) -> Result<Vec<ParsedSample>, ParseError> {
    let mut parser = Parser {
        format,
        family: None,
        out: Vec::new(),
    };
    let lines: Vec<&str> = text.split('\n').collect();
    let last = lines.len();
    let mut eof_at: Option<usize> = None;
    for (i, line) in lines.iter().enumerate() {
        let lineno = i + 1;
        let err = |message: String| ParseError {
            line: lineno,
            message,
        };
        if let Some(at) = eof_at {
            // Only the empty piece after the newline that ends "# EOF" may follow it.
            if !(lineno == last && lineno == at + 1 && line.is_empty()) {
                return Err(err("unexpected data after # EOF".into()));
            }
            continue;
        }
        match format {
            Format::Text => parser.text_line(line).map_err(err)?,
            Format::OpenMetrics => {
                if *line == "# EOF" {
                    eof_at = Some(lineno);
                    continue;
                }
                if line.starts_with("# EOF") {
                    return Err(err("unexpected data after # EOF".into()));
                }
                if line.is_empty() && lineno == last {
                    // The end of a body that lacks "# EOF": reported below.
                    continue;
                }
                parser.om_line(line).map_err(err)?;
            }
        }
    }
    if format == Format::OpenMetrics && eof_at.is_none() {
        return Err(ParseError {
            line: last,
            message: "data does not end with # EOF".into(),
        });
    }
    Ok(parser.out)
}

struct Parser {
    format: Format,
    /// The family named by the last `# TYPE` (or `# HELP`/`# UNIT` of another name).
    family: Option<(String, MetricKind)>,
    out: Vec<ParsedSample>,
}

/// Either a metric name or a label name found in braces.
enum Name {
    Plain(String),
    Quoted(String),
}

impl Parser {
    fn text_line(&mut self, line: &str) -> Result<(), String> {
        let mut c = Cursor::new(line);
        c.skip_ws();
        match c.peek() {
            None => Ok(()),
            Some(b'#') => self.text_comment(&mut c),
            Some(_) => self.sample(&mut c),
        }
    }

    /// `# HELP name text`, `# TYPE name type`, or any other comment (ignored).
    fn text_comment(&mut self, c: &mut Cursor) -> Result<(), String> {
        c.bump(); // '#'
        if c.skip_ws() == 0 {
            return Ok(());
        }
        let keyword = if c.eat_str("HELP") {
            "HELP"
        } else if c.eat_str("TYPE") {
            "TYPE"
        } else {
            return Ok(());
        };
        if c.skip_ws() == 0 {
            // "# HELPx ..." or "# HELP" alone: a plain comment.
            return Ok(());
        }
        let name = self.meta_name(c, keyword)?;
        match c.peek() {
            None => {}
            Some(b' ' | b'\t') => {}
            Some(_) => {
                return Err(format!(
                    "expected whitespace after the metric name in {keyword}, got {}",
                    c.snippet()
                ))
            }
        }
        let text = c.rest().trim_matches([' ', '\t']);
        if keyword == "TYPE" {
            let kind = MetricKind::parse(text, self.format)
                .ok_or_else(|| format!("invalid metric type {text:?}"))?;
            self.family = Some((name, kind));
        } else {
            self.note_family(name);
        }
        Ok(())
    }

    fn om_line(&mut self, line: &str) -> Result<(), String> {
        let mut c = Cursor::new(line);
        match c.peek() {
            Some(b'#') => self.om_meta(&mut c),
            Some(b) if is_name_start(b) || b == b'{' => self.sample(&mut c),
            _ => Err(format!("expected a valid start token, got {}", c.snippet())),
        }
    }

    /// `# HELP name text`, `# TYPE name type`, `# UNIT name unit` (`# EOF` is handled above).
    fn om_meta(&mut self, c: &mut Cursor) -> Result<(), String> {
        let keyword = if c.eat_str("# HELP ") {
            "HELP"
        } else if c.eat_str("# TYPE ") {
            "TYPE"
        } else if c.eat_str("# UNIT ") {
            "UNIT"
        } else {
            return Err(format!("expected a valid start token, got {}", c.snippet()));
        };
        let name = self.meta_name(c, keyword)?;
        if !c.eat(b' ') {
            return Err(match c.peek() {
                None => format!("expected text in {keyword}"),
                Some(_) => format!(
                    "expected a space after the metric name in {keyword}, got {}",
                    c.snippet()
                ),
            });
        }
        let text = c.rest();
        match keyword {
            "TYPE" => {
                let kind = MetricKind::parse(text, self.format)
                    .ok_or_else(|| format!("invalid metric type {text:?}"))?;
                self.family = Some((name, kind));
            }
            "UNIT" => {
                if !text.is_empty()
                    && !name
                        .strip_suffix(text)
                        .is_some_and(|stem| stem.ends_with('_'))
                {
                    return Err(format!("unit {text:?} not a suffix of metric {name:?}"));
                }
                self.note_family(name);
            }
            _ => self.note_family(name),
        }
        Ok(())
    }

    /// A `# HELP`/`# UNIT` line for another name starts a new, untyped family.
    fn note_family(&mut self, name: String) {
        if self.family.as_ref().is_none_or(|(n, _)| *n != name) {
            self.family = Some((name, MetricKind::Unknown));
        }
    }

    fn meta_name(&self, c: &mut Cursor, keyword: &str) -> Result<String, String> {
        if c.peek() == Some(b'"') {
            let name = c.quoted()?;
            if name.is_empty() {
                return Err(format!("empty metric name after {keyword}"));
            }
            return Ok(name);
        }
        let name = c.metric_name();
        if name.is_empty() {
            return Err(format!(
                "expected metric name after {keyword}, got {}",
                c.snippet()
            ));
        }
        Ok(name.to_string())
    }

    /// `name{labels} value [timestamp]`, with the format's whitespace rules; OpenMetrics
    /// allows an exemplar after it.
    fn sample(&mut self, c: &mut Cursor) -> Result<(), String> {
        let om = self.format == Format::OpenMetrics;
        let mut metric = c.metric_name().to_string();
        let mut spaced = if om { 0 } else { c.skip_ws() };
        let mut labels = Labels::new();
        if c.peek() == Some(b'{') {
            spaced = 0;
            c.bump();
            let quoted_name = self.label_set(c, &mut labels, metric.is_empty())?;
            if let Some(n) = quoted_name {
                metric = n;
            }
        }
        if metric.is_empty() {
            return Err(format!("metric name not set in {:?}", c.line));
        }
        // The value.
        if om {
            if !c.eat(b' ') {
                return Err(format!("expected value after metric, got {}", c.snippet()));
            }
        } else if spaced + c.skip_ws() == 0 && !c.after(b'}') {
            return Err(format!("expected value after metric, got {}", c.snippet()));
        }
        let token = if om {
            c.take_until(|b| b == b' ')
        } else {
            c.take_until(|b| b == b' ' || b == b'\t')
        };
        if token.is_empty() {
            return Err(format!("expected value after metric, got {}", c.snippet()));
        }
        let value = parse_float(token)?;
        // The timestamp and, in OpenMetrics, the exemplar.
        let mut timestamp_ms = None;
        if om {
            if c.eat(b' ') {
                if c.peek() == Some(b'#') {
                    self.exemplar(c)?;
                } else {
                    let token = c.take_until(|b| b == b' ');
                    if token.is_empty() {
                        return Err(format!(
                            "expected timestamp or exemplar after value, got {}",
                            c.snippet()
                        ));
                    }
                    timestamp_ms = Some(om_timestamp(token, "timestamp")?);
                    if c.eat(b' ') {
                        if c.peek() != Some(b'#') {
                            return Err(format!(
                                "expected next entry after timestamp, got {}",
                                c.snippet()
                            ));
                        }
                        self.exemplar(c)?;
                    }
                }
            }
            if c.peek().is_some() {
                return Err(format!(
                    "expected next entry after timestamp, got {}",
                    c.snippet()
                ));
            }
        } else {
            c.skip_ws();
            if c.peek().is_some() {
                let token = c.take_until(|b| b == b' ' || b == b'\t');
                timestamp_ms = Some(text_timestamp(token)?);
                c.skip_ws();
                if c.peek().is_some() {
                    return Err(format!(
                        "expected next entry after timestamp, got {}",
                        c.snippet()
                    ));
                }
            }
        }
        let Some(kind) = self.kind_of(&metric) else {
            return Ok(()); // a `_created` timestamp
        };
        self.out.push(ParsedSample {
            metric,
            labels,
            value,
            timestamp_ms,
            kind,
        });
        Ok(())
    }

    /// The sample's kind; `None` for a creation timestamp (`_created` of a typed family).
    fn kind_of(&self, metric: &str) -> Option<MetricKind> {
        let Some((family, kind)) = &self.family else {
            return Some(MetricKind::Unknown);
        };
        let Some(suffix) = metric.strip_prefix(family.as_str()) else {
            return Some(MetricKind::Unknown);
        };
        match kind.suffixes().iter().find(|(s, _)| *s == suffix) {
            Some((_, true)) if self.format == Format::OpenMetrics => None,
            Some((_, true)) => Some(MetricKind::Unknown),
            Some((_, false)) => Some(*kind),
            None => Some(MetricKind::Unknown),
        }
    }

    /// After `{`: labels up to and including `}`. Returns a quoted metric name found among
    /// them (`{"name",a="b"}`), which only a sample without a bare name may have.
    fn label_set(
        &self,
        c: &mut Cursor,
        labels: &mut Labels,
        may_name: bool,
    ) -> Result<Option<String>, String> {
        let om = self.format == Format::OpenMetrics;
        let mut metric: Option<String> = None;
        let mut first = true;
        loop {
            if !om {
                c.skip_ws();
            }
            if c.eat(b'}') {
                return Ok(metric);
            }
            let name = match c.peek() {
                Some(b'"') => Name::Quoted(c.quoted()?),
                Some(b) if is_label_start(b) => Name::Plain(c.label_name().to_string()),
                Some(b',') if first => {
                    return Err(format!("expected label name, got {}", c.snippet()))
                }
                Some(b',') => {
                    return Err(format!(
                        "expected label name, got {} (two commas in a row)",
                        c.snippet()
                    ))
                }
                _ => return Err(format!("expected label name, got {}", c.snippet())),
            };
            first = false;
            if !om {
                c.skip_ws();
            }
            if c.eat(b'=') {
                let name = match name {
                    Name::Plain(n) | Name::Quoted(n) => n,
                };
                if !om {
                    c.skip_ws();
                }
                if c.peek() != Some(b'"') {
                    return Err(format!(
                        "expected label value for {name:?}, got {}",
                        c.snippet()
                    ));
                }
                let value = c.quoted()?;
                if name == "__name__" {
                    return Err("label name \"__name__\" is reserved for the metric name".into());
                }
                if labels.insert(name.clone(), value).is_some() {
                    return Err(format!("duplicate label name {name:?}"));
                }
            } else {
                match name {
                    Name::Quoted(n) if may_name && metric.is_none() => metric = Some(n),
                    Name::Quoted(n) if may_name => {
                        return Err(format!("metric name already set, got {n:?} again"))
                    }
                    Name::Quoted(n) => {
                        return Err(format!(
                            "metric name already set, got a second name {n:?} in braces"
                        ))
                    }
                    Name::Plain(n) => {
                        return Err(format!(
                            "expected \"=\" after label name {n:?}, got {}",
                            c.snippet()
                        ))
                    }
                }
            }
            if !om {
                c.skip_ws();
            }
            if c.eat(b',') {
                continue;
            }
            match c.peek() {
                Some(b'}') => {}
                // Prometheus's text parser takes labels without separating commas.
                Some(b) if !om && (is_label_start(b) || b == b'"') => {}
                _ => {
                    return Err(format!(
                        "expected comma or brace close, got {}",
                        c.snippet()
                    ))
                }
            }
        }
    }

    /// ` # {labels} value [timestamp]`, starting at `#`: checked, then dropped.
    fn exemplar(&self, c: &mut Cursor) -> Result<(), String> {
        if !c.eat_str("# {") {
            return Err(format!(
                "expected next entry after timestamp, got {}",
                c.snippet()
            ));
        }
        let mut labels = Labels::new();
        if self.label_set(c, &mut labels, false)?.is_some() {
            return Err("exemplar labels cannot hold a metric name".into());
        }
        if !c.eat(b' ') {
            return Err(format!(
                "expected value after exemplar labels, got {}",
                c.snippet()
            ));
        }
        let token = c.take_until(|b| b == b' ');
        if token.is_empty() {
            return Err(format!(
                "expected value after exemplar labels, got {}",
                c.snippet()
            ));
        }
        parse_float(token)?;
        if c.eat(b' ') {
            let token = c.take_until(|b| b == b' ');
            om_timestamp(token, "exemplar timestamp")?;
        }
        if c.peek().is_some() {
            return Err(format!("unexpected text after exemplar: {}", c.snippet()));
        }
        Ok(())
    }
}

/// Go's `strconv.ParseFloat` syntax without hex floats or `_` separators, as Prometheus
/// takes sample values: decimals with optional exponent, `NaN`, `[+-]Inf`/`Infinity`, any case.
pub fn parse_float(token: &str) -> Result<f64, String> {
    let b = token.as_bytes();
    let (neg, body) = match b.first() {
        Some(b'+') => (false, &token[1..]),
        Some(b'-') => (true, &token[1..]),
        _ => (false, token),
    };
    let sign = if neg { -1.0 } else { 1.0 };
    if body.eq_ignore_ascii_case("inf") || body.eq_ignore_ascii_case("infinity") {
        return Ok(sign * f64::INFINITY);
    }
    if body.eq_ignore_ascii_case("nan") && body.len() == token.len() {
        return Ok(f64::NAN);
    }
    let bb = body.as_bytes();
    if bb.iter().any(|&c| c == b'_' || c == b'x' || c == b'X') {
        return Err(format!("unsupported character in float {token:?}"));
    }
    // [digits][.digits] with at least one digit, then an optional exponent.
    let mut i = 0;
    let int_digits = count_digits(&bb[i..]);
    i += int_digits;
    let mut frac_digits = 0;
    if bb.get(i) == Some(&b'.') {
        i += 1;
        frac_digits = count_digits(&bb[i..]);
        i += frac_digits;
    }
    let mut ok = int_digits + frac_digits > 0;
    if ok && matches!(bb.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(bb.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let exp_digits = count_digits(&bb[i..]);
        ok = exp_digits > 0;
        i += exp_digits;
    }
    if !ok || i != bb.len() {
        return Err(format!("invalid float {token:?}"));
    }
    let v: f64 = body
        .parse()
        .map_err(|_| format!("invalid float {token:?}"))?;
    if v.is_infinite() {
        return Err(format!("float {token:?} out of range"));
    }
    Ok(sign * v)
}

fn count_digits(b: &[u8]) -> usize {
    b.iter().take_while(|c| c.is_ascii_digit()).count()
}

/// Text format timestamps: integer milliseconds.
fn text_timestamp(token: &str) -> Result<i64, String> {
    let digits = token.strip_prefix('-').unwrap_or(token);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "expected an integer timestamp in milliseconds, got {token:?}"
        ));
    }
    token
        .parse::<i64>()
        .map_err(|_| format!("timestamp {token:?} out of range"))
}

/// OpenMetrics timestamps: seconds, possibly fractional, finite; rounded to milliseconds.
fn om_timestamp(token: &str, what: &str) -> Result<i64, String> {
    let ts = parse_float(token)?;
    if !ts.is_finite() {
        let shown = if ts.is_nan() {
            "NaN"
        } else if ts > 0.0 {
            "+Inf"
        } else {
            "-Inf"
        };
        return Err(format!("invalid {what} {shown}"));
    }
    let ms = (ts * 1000.0).round();
    // i64::MAX as f64 rounds up to 2^63, which does not fit: compare strictly.
    if ms >= i64::MAX as f64 || ms < i64::MIN as f64 {
        return Err(format!("{what} {token:?} out of range"));
    }
    Ok(ms as i64)
}

fn is_name_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b == b':'
}

fn is_label_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

/// A position in one line. Every split happens at an ASCII byte, so slices stay on UTF-8
/// character boundaries.
struct Cursor<'a> {
    line: &'a str,
    i: usize,
}

impl<'a> Cursor<'a> {
    fn new(line: &'a str) -> Self {
        Cursor { line, i: 0 }
    }

    fn bytes(&self) -> &'a [u8] {
        self.line.as_bytes()
    }

    fn peek(&self) -> Option<u8> {
        self.bytes().get(self.i).copied()
    }

    /// Whether the byte just consumed was `b`.
    fn after(&self, b: u8) -> bool {
        self.i > 0 && self.bytes().get(self.i - 1) == Some(&b)
    }

    fn bump(&mut self) {
        if self.i < self.line.len() {
            self.i += 1;
        }
    }

    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn eat_str(&mut self, s: &str) -> bool {
        if self.bytes()[self.i..].starts_with(s.as_bytes()) {
            self.i += s.len();
            true
        } else {
            false
        }
    }

    /// Skips spaces and tabs; returns how many.
    fn skip_ws(&mut self) -> usize {
        let start = self.i;
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
        self.i - start
    }

    fn rest(&self) -> &'a str {
        &self.line[self.i..]
    }

    /// The next bytes, for messages.
    fn snippet(&self) -> String {
        let rest = self.rest();
        if rest.is_empty() {
            return "end of line".into();
        }
        let cut = rest.char_indices().nth(16).map_or(rest.len(), |(i, _)| i);
        format!("{:?}", &rest[..cut])
    }

    /// Consumes ASCII bytes while `keep` holds (any non-ASCII byte stops it).
    fn take_ascii(&mut self, keep: impl Fn(u8) -> bool) -> &'a str {
        let start = self.i;
        while self.peek().is_some_and(|b| b.is_ascii() && keep(b)) {
            self.i += 1;
        }
        &self.line[start..self.i]
    }

    /// Consumes up to (not including) the first byte where `stop` holds, or the end.
    fn take_until(&mut self, stop: impl Fn(u8) -> bool) -> &'a str {
        let start = self.i;
        while self.peek().is_some_and(|b| !stop(b)) {
            self.i += 1;
        }
        // `stop` only ever matches ASCII, so `i` is on a character boundary.
        &self.line[start..self.i]
    }

    /// `[a-zA-Z_:][a-zA-Z0-9_:]*`, possibly empty.
    fn metric_name(&mut self) -> &'a str {
        if !self.peek().is_some_and(is_name_start) {
            return "";
        }
        self.take_ascii(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':')
    }

    /// `[a-zA-Z_][a-zA-Z0-9_]*`, possibly empty.
    fn label_name(&mut self) -> &'a str {
        if !self.peek().is_some_and(is_label_start) {
            return "";
        }
        self.take_ascii(|b| b.is_ascii_alphanumeric() || b == b'_')
    }

    /// A `"..."` string starting here: `\\`, `\"` and `\n` unescaped, other escapes kept.
    fn quoted(&mut self) -> Result<String, String> {
        if !self.eat(b'"') {
            return Err(format!("expected '\"', got {}", self.snippet()));
        }
        let start = self.i;
        let mut out = String::new();
        let mut run = start;
        loop {
            match self.peek() {
                None => {
                    return Err(format!(
                        "unterminated quoted string {:?}",
                        &self.line[start.saturating_sub(1)..]
                    ))
                }
                Some(b'"') => {
                    out.push_str(&self.line[run..self.i]);
                    self.i += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    out.push_str(&self.line[run..self.i]);
                    self.i += 1;
                    match self.peek() {
                        Some(b'\\') => out.push('\\'),
                        Some(b'"') => out.push('"'),
                        Some(b'n') => out.push('\n'),
                        None => {
                            return Err(format!(
                                "unterminated quoted string {:?}",
                                &self.line[start.saturating_sub(1)..]
                            ))
                        }
                        Some(_) => {
                            // Unknown escape: keep the backslash and the character as written.
                            out.push('\\');
                            run = self.i;
                            continue;
                        }
                    }
                    self.i += 1;
                    run = self.i;
                }
                Some(_) => self.i += 1,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn s(
        metric: &str,
        l: &[(&str, &str)],
        value: f64,
        ts: Option<i64>,
        kind: MetricKind,
    ) -> ParsedSample {
        ParsedSample {
            metric: metric.into(),
            labels: labels(l),
            value,
            timestamp_ms: ts,
            kind,
        }
    }

    #[track_caller]
    fn ok(text: &str, format: Format) -> Vec<ParsedSample> {
        match parse(text, format) {
            Ok(v) => v,
            Err(e) => panic!("refused {text:?}: {e}"),
        }
    }

    #[track_caller]
    fn bad(text: &str, format: Format, line: usize, contains: &str) {
        match parse(text, format) {
            Ok(v) => panic!("accepted {text:?}: {v:?}"),
            Err(e) => {
                assert_eq!(e.line, line, "{text:?}: {e}");
                assert!(
                    e.message.contains(contains),
                    "{text:?}: {e:?} does not mention {contains:?}"
                );
            }
        }
    }

    /// Same values, NaN equal to NaN.
    #[track_caller]
    fn same(got: &[ParsedSample], want: &[ParsedSample]) {
        assert_eq!(got.len(), want.len(), "{got:#?}");
        for (g, w) in got.iter().zip(want) {
            assert_eq!(
                (&g.metric, &g.labels, g.timestamp_ms, g.kind),
                (&w.metric, &w.labels, w.timestamp_ms, w.kind)
            );
            assert!(
                g.value == w.value || (g.value.is_nan() && w.value.is_nan()),
                "{g:?} vs {w:?}"
            );
        }
    }

    use MetricKind::*;

    /// Prometheus's TestPromParse input (promparse_test.go), samples only.
    #[test]
    fn prom_parse_test_input() {
        let mut input = String::from(
            r#"# HELP go_gc_duration_seconds A summary of the GC invocation durations.
# 	TYPE go_gc_duration_seconds summary
go_gc_duration_seconds{quantile="0"} 4.9351e-05
go_gc_duration_seconds{quantile="0.25",} 7.424100000000001e-05
go_gc_duration_seconds{quantile="0.5",a="b"} 8.3835e-05
go_gc_duration_seconds{quantile="0.8", a="b"} 8.3835e-05
go_gc_duration_seconds{ quantile="0.9", a="b"} 8.3835e-05
# Hrandom comment starting with prefix of HELP
#
wind_speed{A="2",c="3"} 12345
# comment with escaped \n newline
# comment with escaped \ escape character
# HELP nohelp1
# HELP nohelp2 
go_gc_duration_seconds{ quantile="1.0", a="b" } 8.3835e-05
go_gc_duration_seconds { quantile="1.0", a="b" } 8.3835e-05
go_gc_duration_seconds { quantile= "1.0", a= "b", } 8.3835e-05
go_gc_duration_seconds { quantile = "1.0", a = "b" } 8.3835e-05
go_gc_duration_seconds { quantile = "2.0" a = "b" } 8.3835e-05
go_gc_duration_seconds_count 99
some:aggregate:rate5m{a_b="c"}	1
# HELP go_goroutines Number of goroutines that currently exist.
# TYPE go_goroutines gauge
go_goroutines 33  	123123
_metric_starting_with_underscore 1
testmetric{_label_starting_with_underscore="foo"} 1
testmetric{label="\"bar\""} 1"#,
        );
        input += "\n# HELP metric foo\x00bar";
        input += "\nnull_byte_metric{a=\"abc\x00\"} 1";
        let got = ok(&input, Format::Text);
        // "#\tTYPE" is a TYPE line in Prometheus's text lexer, so the summary family holds.
        let q = |q: &'static str, a: bool| {
            let mut l = vec![("quantile", q)];
            if a {
                l.push(("a", "b"));
            }
            l
        };
        let g = "go_gc_duration_seconds";
        let want = vec![
            s(g, &q("0", false), 4.9351e-05, None, Summary),
            s(g, &q("0.25", false), 7.424100000000001e-05, None, Summary),
            s(g, &q("0.5", true), 8.3835e-05, None, Summary),
            s(g, &q("0.8", true), 8.3835e-05, None, Summary),
            s(g, &q("0.9", true), 8.3835e-05, None, Summary),
            s(
                "wind_speed",
                &[("A", "2"), ("c", "3")],
                12345.0,
                None,
                Unknown,
            ),
            // "# HELP nohelp2" started another (untyped) family.
            s(g, &q("1.0", true), 8.3835e-05, None, Unknown),
            s(g, &q("1.0", true), 8.3835e-05, None, Unknown),
            s(g, &q("1.0", true), 8.3835e-05, None, Unknown),
            s(g, &q("1.0", true), 8.3835e-05, None, Unknown),
            s(g, &q("2.0", true), 8.3835e-05, None, Unknown),
            s("go_gc_duration_seconds_count", &[], 99.0, None, Unknown),
            s("some:aggregate:rate5m", &[("a_b", "c")], 1.0, None, Unknown),
            s("go_goroutines", &[], 33.0, Some(123123), Gauge),
            s("_metric_starting_with_underscore", &[], 1.0, None, Unknown),
            s(
                "testmetric",
                &[("_label_starting_with_underscore", "foo")],
                1.0,
                None,
                Unknown,
            ),
            s("testmetric", &[("label", "\"bar\"")], 1.0, None, Unknown),
            s("null_byte_metric", &[("a", "abc\x00")], 1.0, None, Unknown),
        ];
        same(&got, &want);
    }

    /// Prometheus's TestUTF8PromParse: quoted names inside braces.
    #[test]
    fn prom_quoted_names() {
        let input = r#"# HELP "go.gc_duration_seconds" A summary of the GC invocation durations.
# 	TYPE "go.gc_duration_seconds" summary
{"go.gc_duration_seconds",quantile="0"} 4.9351e-05
{"go.gc_duration_seconds",quantile="0.25",} 7.424100000000001e-05
{"go.gc_duration_seconds", quantile="0.9", a="b"} 8.3835e-05
{ "go.gc_duration_seconds", quantile= "1.0", a= "b", } 8.3835e-05
{"go.gc_duration_seconds_count"} 99
{"Heizölrückstoßabdämpfung 10€ metric with \"interesting\" {character\nchoices}","strange©™\n'quoted' \"name\""="6"} 10.0"#;
        let got = ok(input, Format::Text);
        let g = "go.gc_duration_seconds";
        same(
            &got,
            &[
                s(g, &[("quantile", "0")], 4.9351e-05, None, Summary),
                s(
                    g,
                    &[("quantile", "0.25")],
                    7.424100000000001e-05,
                    None,
                    Summary,
                ),
                s(
                    g,
                    &[("quantile", "0.9"), ("a", "b")],
                    8.3835e-05,
                    None,
                    Summary,
                ),
                s(
                    g,
                    &[("quantile", "1.0"), ("a", "b")],
                    8.3835e-05,
                    None,
                    Summary,
                ),
                s("go.gc_duration_seconds_count", &[], 99.0, None, Summary),
                s(
                    "Heizölrückstoßabdämpfung 10€ metric with \"interesting\" {character\nchoices}",
                    &[("strange©™\n'quoted' \"name\"", "6")],
                    10.0,
                    None,
                    Unknown,
                ),
            ],
        );
    }

    /// Prometheus's TestPromParseErrors and TestPromNullByteHandling inputs.
    #[test]
    fn prom_errors() {
        let p = Format::Text;
        bad("a", p, 1, "expected value after metric");
        bad("a{b='c'} 1\n", p, 1, "expected label value");
        bad("a{b=\n", p, 1, "expected label value");
        bad("a{b=\"c\n", p, 1, "unterminated quoted string");
        bad(r#"{"a", "b = "c"}"#, p, 1, "metric name already set");
        bad(
            "{\"a\",b\\nc=\"d\"} 1",
            p,
            1,
            "expected \"=\" after label name \"b\"",
        );
        bad("a true\n", p, 1, "invalid float \"true\"");
        bad(
            "something_weird{problem=\"",
            p,
            1,
            "unterminated quoted string",
        );
        bad("empty_label_name{=\"\"} 0", p, 1, "expected label name");
        bad("foo 1_2\n", p, 1, "unsupported character in float");
        bad("foo 0x1p-3\n", p, 1, "unsupported character in float");
        bad("foo 0x1P-3\n", p, 1, "unsupported character in float");
        bad("foo 0 1_2\n", p, 1, "expected an integer timestamp");
        bad(r#"{a="ok"} 1"#, p, 1, "metric name not set");
        bad("# TYPE #\n", p, 1, "expected metric name after TYPE");
        bad("# HELP #\n", p, 1, "expected metric name after HELP");
        bad("# TYPE a gaugehistogram\n", p, 1, "invalid metric type");
        bad("# TYPE a\n", p, 1, "invalid metric type \"\"");
        // Null bytes: fine inside label values, nowhere else.
        for good in [
            "null_byte_metric{a=\"abc\x00\"} 1",
            "a{b=\"\x00ss\"} 1\n",
            "a{b=\"\x00\"} 1\n",
        ] {
            ok(good, p);
        }
        bad("a{b=\x00\"ssss\"} 1\n", p, 1, "expected label value");
        bad("a{b=\"\x00", p, 1, "unterminated quoted string");
        bad(
            "a{b\x00=\"hiih\"}\t1",
            p,
            1,
            "expected \"=\" after label name",
        );
        bad("a\x00{b=\"ddd\"} 1", p, 1, "expected value after metric");
        bad("a 0 1\x00", p, 1, "expected an integer timestamp");
        // More of ours: the line number, duplicates, junk after the timestamp.
        bad(
            "a 1\nb 2\nc{x=\"1\",x=\"2\"} 3\n",
            p,
            3,
            "duplicate label name \"x\"",
        );
        bad("a 1 2 3\n", p, 1, "expected next entry after timestamp");
        bad("a 1 1.5\n", p, 1, "expected an integer timestamp");
        bad("a{b=\"c\",,d=\"e\"} 1", p, 1, "two commas");
        bad("a{,b=\"c\"} 1", p, 1, "expected label name");
        bad("a{b=\"c\"} 1e999", p, 1, "out of range");
        bad("a{__name__=\"b\"} 1", p, 1, "reserved");
        bad("a 1\r\n", p, 1, "invalid float");
    }

    #[test]
    fn prom_values_timestamps_and_odd_spacing() {
        let got = ok(
            "\n  \n\t# plain comment\n\
             a NaN\nb +Inf\nc -Inf\nd 1e3\ne -1.5E-3\nf .5\ng 5.\nh inf\ni -Infinity\n\
             j 1 -5\nk{} 2 1700000000000\n  l{x=\"y\"}3\nm 7 \t\n",
            Format::Text,
        );
        let vals: Vec<(String, f64, Option<i64>)> = got
            .iter()
            .map(|p| (p.metric.clone(), p.value, p.timestamp_ms))
            .collect();
        assert!(vals[0].1.is_nan());
        assert_eq!(
            &vals[1..],
            &[
                ("b".into(), f64::INFINITY, None),
                ("c".into(), f64::NEG_INFINITY, None),
                ("d".into(), 1000.0, None),
                ("e".into(), -0.0015, None),
                ("f".into(), 0.5, None),
                ("g".into(), 5.0, None),
                ("h".into(), f64::INFINITY, None),
                ("i".into(), f64::NEG_INFINITY, None),
                ("j".into(), 1.0, Some(-5)),
                ("k".into(), 2.0, Some(1_700_000_000_000)),
                ("l".into(), 3.0, None),
                ("m".into(), 7.0, None),
            ]
        );
        for bad_value in ["+NaN", "1e", "e5", ".", "1.2.3", "--1", "0x10", "1,5"] {
            assert!(parse_float(bad_value).is_err(), "{bad_value}");
        }
    }

    #[test]
    fn escapes_and_specials_inside_label_values() {
        let got = ok(
            r#"m{a="x,y=z}",b="q\"uote\\back\nline",c="tab\t{}"} 1"#,
            Format::Text,
        );
        assert_eq!(
            got[0].labels,
            labels(&[
                ("a", "x,y=z}"),
                ("b", "q\"uote\\back\nline"),
                ("c", "tab\\t{}"),
            ])
        );
        // The same in OpenMetrics.
        let got = ok(
            "m{a=\"x,y=z}\",b=\"q\\\"uote\\\\back\\nline\"} 1\n# EOF\n",
            Format::OpenMetrics,
        );
        assert_eq!(
            got[0].labels,
            labels(&[("a", "x,y=z}"), ("b", "q\"uote\\back\nline")])
        );
    }

    #[test]
    fn families_and_suffixes() {
        let text = "# TYPE req_total counter\nreq_total{code=\"200\"} 5\n\
                    # TYPE lat histogram\nlat_bucket{le=\"0.1\"} 1\nlat_bucket{le=\"+Inf\"} 2\n\
                    lat_sum 0.3\nlat_count 2\nlat_other 1\n\
                    # TYPE rpc summary\nrpc{quantile=\"0.5\"} 0.2\nrpc_sum 4\nrpc_count 9\n\
                    # TYPE temp gauge\ntemp 21.5\n# TYPE u untyped\nu 1\n";
        let kinds: Vec<(String, MetricKind)> = ok(text, Format::Text)
            .into_iter()
            .map(|p| (p.metric, p.kind))
            .collect();
        let want: Vec<(String, MetricKind)> = [
            ("req_total", Counter),
            ("lat_bucket", Histogram),
            ("lat_bucket", Histogram),
            ("lat_sum", Histogram),
            ("lat_count", Histogram),
            ("lat_other", Unknown),
            ("rpc", Summary),
            ("rpc_sum", Summary),
            ("rpc_count", Summary),
            ("temp", Gauge),
            ("u", Unknown),
        ]
        .iter()
        .map(|(n, k)| (n.to_string(), *k))
        .collect();
        assert_eq!(kinds, want);
    }

    /// Prometheus's TestOpenMetricsParse input (openmetricsparse_test.go), samples only;
    /// `_created` samples of typed families are creation timestamps and are skipped.
    #[test]
    fn om_parse_test_input() {
        let mut input = String::from(
            r#"# HELP go_gc_duration_seconds A summary of the GC invocation durations.
# TYPE go_gc_duration_seconds summary
# UNIT go_gc_duration_seconds seconds
go_gc_duration_seconds{quantile="0"} 4.9351e-05
go_gc_duration_seconds{quantile="0.25"} 7.424100000000001e-05
go_gc_duration_seconds{quantile="0.5",a="b"} 8.3835e-05
# HELP nohelp1 
# HELP help2 escape \ \n \\ \" \x chars
# UNIT nounit 
go_gc_duration_seconds{quantile="1.0",a="b"} 8.3835e-05
go_gc_duration_seconds_count 99
some:aggregate:rate5m{a_b="c"} 1
# HELP go_goroutines Number of goroutines that currently exist.
# TYPE go_goroutines gauge
go_goroutines 33 123.123
# TYPE hh histogram
hh_bucket{le="+Inf"} 1
# TYPE gh gaugehistogram
gh_bucket{le="+Inf"} 1
# TYPE hhh histogram
hhh_bucket{le="+Inf"} 1 # {id="histogram-bucket-test"} 4
hhh_count 1 # {id="histogram-count-test"} 4
# TYPE ggh gaugehistogram
ggh_bucket{le="+Inf"} 1 # {id="gaugehistogram-bucket-test",xx="yy"} 4 123.123
ggh_count 1 # {id="gaugehistogram-count-test",xx="yy"} 4 123.123
# TYPE smr_seconds summary
smr_seconds_count 2.0 # {id="summary-count-test"} 1 123.321
smr_seconds_sum 42.0 # {id="summary-sum-test"} 1 123.321
# TYPE ii info
ii{foo="bar"} 1
# TYPE ss stateset
ss{ss="foo"} 1
ss{ss="bar"} 0
ss{A="a"} 0
# TYPE un unknown
_metric_starting_with_underscore 1
testmetric{_label_starting_with_underscore="foo"} 1
testmetric{label="\"bar\""} 1
# HELP foo Counter with and without labels to certify CT is parsed for both cases
# TYPE foo counter
foo_total 17.0 1520879607.789 # {id="counter-test"} 5
foo_created 1520872607.123
foo_total{a="b"} 17.0 1520879607.789 # {id="counter-test"} 5
foo_created{a="b"} 1520872607.123
foo_total{le="c"} 21.0
foo_created{le="c"} 1520872621.123
foo_total{le="1"} 10.0
# HELP bar Summary with CT at the end, making sure we find CT even if it's multiple lines a far
# TYPE bar summary
bar_count 17.0
bar_sum 324789.3
bar{quantile="0.95"} 123.7
bar{quantile="0.99"} 150.0
bar_created 1520872608.124
# HELP baz Histogram with the same objective as above's summary
# TYPE baz histogram
baz_bucket{le="0.0"} 0
baz_bucket{le="+Inf"} 17
baz_count 17
baz_sum 324789.3
baz_created 1520872609.125
# HELP fizz_created Gauge which shouldn't be parsed as CT
# TYPE fizz_created gauge
fizz_created 17.0"#,
        );
        input += "\n# HELP metric foo\x00bar";
        input += "\nnull_byte_metric{a=\"abc\x00\"} 1";
        input += "\n# EOF\n";
        let got = ok(&input, Format::OpenMetrics);
        let g = "go_gc_duration_seconds";
        let inf = [("le", "+Inf")];
        let want = vec![
            s(g, &[("quantile", "0")], 4.9351e-05, None, Summary),
            s(
                g,
                &[("quantile", "0.25")],
                7.424100000000001e-05,
                None,
                Summary,
            ),
            s(
                g,
                &[("quantile", "0.5"), ("a", "b")],
                8.3835e-05,
                None,
                Summary,
            ),
            // "# UNIT nounit" started another family.
            s(
                g,
                &[("quantile", "1.0"), ("a", "b")],
                8.3835e-05,
                None,
                Unknown,
            ),
            s("go_gc_duration_seconds_count", &[], 99.0, None, Unknown),
            s("some:aggregate:rate5m", &[("a_b", "c")], 1.0, None, Unknown),
            s("go_goroutines", &[], 33.0, Some(123123), Gauge),
            s("hh_bucket", &inf, 1.0, None, Histogram),
            s("gh_bucket", &inf, 1.0, None, GaugeHistogram),
            s("hhh_bucket", &inf, 1.0, None, Histogram),
            s("hhh_count", &[], 1.0, None, Histogram),
            s("ggh_bucket", &inf, 1.0, None, GaugeHistogram),
            s("ggh_count", &[], 1.0, None, GaugeHistogram),
            s("smr_seconds_count", &[], 2.0, None, Summary),
            s("smr_seconds_sum", &[], 42.0, None, Summary),
            s("ii", &[("foo", "bar")], 1.0, None, Info),
            s("ss", &[("ss", "foo")], 1.0, None, StateSet),
            s("ss", &[("ss", "bar")], 0.0, None, StateSet),
            s("ss", &[("A", "a")], 0.0, None, StateSet),
            s("_metric_starting_with_underscore", &[], 1.0, None, Unknown),
            s(
                "testmetric",
                &[("_label_starting_with_underscore", "foo")],
                1.0,
                None,
                Unknown,
            ),
            s("testmetric", &[("label", "\"bar\"")], 1.0, None, Unknown),
            s("foo_total", &[], 17.0, Some(1520879607789), Counter),
            s(
                "foo_total",
                &[("a", "b")],
                17.0,
                Some(1520879607789),
                Counter,
            ),
            s("foo_total", &[("le", "c")], 21.0, None, Counter),
            s("foo_total", &[("le", "1")], 10.0, None, Counter),
            s("bar_count", &[], 17.0, None, Summary),
            s("bar_sum", &[], 324789.3, None, Summary),
            s("bar", &[("quantile", "0.95")], 123.7, None, Summary),
            s("bar", &[("quantile", "0.99")], 150.0, None, Summary),
            s("baz_bucket", &[("le", "0.0")], 0.0, None, Histogram),
            s("baz_bucket", &inf, 17.0, None, Histogram),
            s("baz_count", &[], 17.0, None, Histogram),
            s("baz_sum", &[], 324789.3, None, Histogram),
            s("fizz_created", &[], 17.0, None, Gauge),
            s("null_byte_metric", &[("a", "abc\x00")], 1.0, None, Unknown),
        ];
        same(&got, &want);
    }

    /// Prometheus's TestUTF8OpenMetricsParse: quoted names, anywhere in the braces.
    #[test]
    fn om_quoted_names() {
        let input = "# TYPE \"go.gc_duration_seconds\" summary\n\
            {\"go.gc_duration_seconds\",quantile=\"0\"} 4.9351e-05\n\
            {\"go.gc_duration_seconds_created\"} 1520872607.123\n\
            {q=\"0.9\",\"http.status\",a=\"b\"} 8.3835e-05\n\
            quotedexemplar_count 1 # {\"id.thing\"=\"histogram-count-test\",other=\"hello\"} 4\n\
            # EOF\n";
        let got = ok(input, Format::OpenMetrics);
        same(
            &got,
            &[
                s(
                    "go.gc_duration_seconds",
                    &[("quantile", "0")],
                    4.9351e-05,
                    None,
                    Summary,
                ),
                s(
                    "http.status",
                    &[("q", "0.9"), ("a", "b")],
                    8.3835e-05,
                    None,
                    Unknown,
                ),
                s("quotedexemplar_count", &[], 1.0, None, Unknown),
            ],
        );
    }

    /// Prometheus's TestOpenMetricsParseErrors and TestOMNullByteHandling inputs.
    #[test]
    fn om_errors() {
        let o = Format::OpenMetrics;
        ok("# EOF", o);
        ok("# EOF\n", o);
        bad("", o, 1, "data does not end with # EOF");
        bad("\n", o, 1, "expected a valid start token");
        bad("metric", o, 1, "expected value after metric");
        bad("metric 1", o, 1, "data does not end with # EOF");
        bad("metric 1\n", o, 2, "data does not end with # EOF");
        bad(
            "metric_total 1 # {aa=\"bb\"} 4",
            o,
            1,
            "data does not end with # EOF",
        );
        bad("a\n#EOF\n", o, 1, "expected value after metric");
        bad("\n\n#EOF\n", o, 1, "expected a valid start token");
        bad(" a 1\n#EOF\n", o, 1, "expected a valid start token");
        bad("9\n#EOF\n", o, 1, "expected a valid start token");
        bad(
            "# TYPE u untyped\n#EOF\n",
            o,
            1,
            "invalid metric type \"untyped\"",
        );
        bad(
            "# TYPE c counter \n#EOF\n",
            o,
            1,
            "invalid metric type \"counter \"",
        );
        bad(
            "#  TYPE c counter\n#EOF\n",
            o,
            1,
            "expected a valid start token",
        );
        bad("# TYPE \n#EOF\n", o, 1, "expected metric name after TYPE");
        bad("# TYPE m\n#EOF\n", o, 1, "expected text in TYPE");
        bad(
            "# UNIT metric suffix\n#EOF\n",
            o,
            1,
            "not a suffix of metric",
        );
        bad(
            "# UNIT metricsuffix suffix\n#EOF\n",
            o,
            1,
            "not a suffix of metric",
        );
        bad("# UNIT m suffix\n#EOF\n", o, 1, "not a suffix of metric");
        bad("# UNIT \n#EOF\n", o, 1, "expected metric name after UNIT");
        bad("# UNIT m\n#EOF\n", o, 1, "expected text in UNIT");
        bad("# HELP \n#EOF\n", o, 1, "expected metric name after HELP");
        bad("# HELP m\n#EOF\n", o, 1, "expected text in HELP");
        bad("a\t1\n#EOF\n", o, 1, "expected value after metric");
        bad("a 1\t2\n#EOF\n", o, 1, "invalid float \"1\\t2\"");
        bad(
            "a 1 2 \n#EOF\n",
            o,
            1,
            "expected next entry after timestamp",
        );
        bad(
            "a 1 2 #\n#EOF\n",
            o,
            1,
            "expected next entry after timestamp",
        );
        bad("a 1 1z\n#EOF\n", o, 1, "invalid float \"1z\"");
        bad(" # EOF\n", o, 1, "expected a valid start token");
        bad("# EOF\na 1", o, 2, "unexpected data after # EOF");
        bad("# EOF\n\n", o, 2, "unexpected data after # EOF");
        bad("# EOFa 1", o, 1, "unexpected data after # EOF");
        bad("#\tTYPE c counter\n", o, 1, "expected a valid start token");
        bad(
            "# TYPE c  counter\n",
            o,
            1,
            "invalid metric type \" counter\"",
        );
        bad(
            "a 1 1 1\n# EOF\n",
            o,
            1,
            "expected next entry after timestamp",
        );
        bad("a{b='c'} 1\n# EOF\n", o, 1, "expected label value");
        bad("a{,b=\"c\"} 1\n# EOF\n", o, 1, "expected label name");
        bad(
            "a{b=\"c\"d=\"e\"} 1\n# EOF\n",
            o,
            1,
            "expected comma or brace close",
        );
        bad(
            "a{b=\"c\",,d=\"e\"} 1\n# EOF\n",
            o,
            1,
            "expected label name",
        );
        bad("a{b=\n# EOF\n", o, 1, "expected label value");
        bad(
            "a{b=\"c\", d=\"e\"} 1\n# EOF\n",
            o,
            1,
            "expected label name",
        );
        bad(
            "{\"a\",\"b = \"c\"}\n# EOF\n",
            o,
            1,
            "metric name already set",
        );
        bad(
            "{\"a\",b\\nc=\"d\"} 1\n# EOF\n",
            o,
            1,
            "expected \"=\" after label name",
        );
        bad("a true\n", o, 1, "invalid float \"true\"");
        bad("something_weird{problem=\"\n# EOF\n", o, 1, "unterminated");
        bad(
            "empty_label_name{=\"\"} 0\n# EOF\n",
            o,
            1,
            "expected label name",
        );
        bad("foo 1_2\n\n# EOF\n", o, 1, "unsupported character in float");
        bad(
            "foo 0x1p-3\n\n# EOF\n",
            o,
            1,
            "unsupported character in float",
        );
        bad(
            "foo 0 1_2\n\n# EOF\n",
            o,
            1,
            "unsupported character in float",
        );
        bad(
            "custom_metric_total 1 # {aa=bb}\n# EOF\n",
            o,
            1,
            "expected label value",
        );
        bad(
            "custom_metric_total 1 # {aa=\"bb\"}\n# EOF\n",
            o,
            1,
            "expected value after exemplar labels",
        );
        bad(
            "custom_metric_total 1 # {bb}",
            o,
            1,
            "expected \"=\" after label name",
        );
        bad(
            "custom_metric_total 1 # {bb, a=\"dd\"}",
            o,
            1,
            "expected \"=\"",
        );
        bad(
            "custom_metric_total 1 # {aa=\"bb\",,cc=\"dd\"} 1",
            o,
            1,
            "expected label name",
        );
        bad(
            "custom_metric_total 1 # {aa=\"bb\"} 1_2",
            o,
            1,
            "unsupported character",
        );
        bad(
            "custom_metric_total 1 # {aa=\"bb\"} 0x1p-3",
            o,
            1,
            "unsupported",
        );
        bad(
            "custom_metric_total 1 # {aa=\"bb\"} true",
            o,
            1,
            "invalid float",
        );
        bad(
            "custom_metric_total 1 # {aa=\"bb\",cc=}",
            o,
            1,
            "expected label value",
        );
        bad("{b=\"c\",} 1", o, 1, "metric name not set");
        bad("a 1 NaN", o, 1, "invalid timestamp NaN");
        bad("a 1 -Inf", o, 1, "invalid timestamp -Inf");
        bad("a 1 Inf", o, 1, "invalid timestamp +Inf");
        bad(
            "# TYPE hhh histogram\nhhh_bucket{le=\"+Inf\"} 1 # {aa=\"bb\"} 4 NaN",
            o,
            2,
            "invalid exemplar timestamp NaN",
        );
        bad(
            "# TYPE hhh histogram\nhhh_bucket{le=\"+Inf\"} 1 # {aa=\"bb\"} 4 -Inf",
            o,
            2,
            "invalid exemplar timestamp -Inf",
        );
        // Null bytes.
        for good in [
            "null_byte_metric{a=\"abc\x00\"} 1\n# EOF\n",
            "a{b=\"\x00ss\"} 1\n# EOF\n",
            "a{b=\"\x00\"} 1\n# EOF",
        ] {
            ok(good, o);
        }
        bad("a{b=\x00\"ssss\"} 1\n# EOF\n", o, 1, "expected label value");
        bad("a{b=\"\x00", o, 1, "unterminated");
        bad("a{b\x00=\"hiih\"}\t1", o, 1, "expected \"=\"");
        bad("a\x00{b=\"ddd\"} 1", o, 1, "expected value after metric");
        bad("#", o, 1, "expected a valid start token");
        bad("# H", o, 1, "expected a valid start token");
        bad(
            "custom_metric_total 1 # {b=\x00\"ssss\"} 1\n",
            o,
            1,
            "label value",
        );
        // Free comments are not OpenMetrics.
        bad(
            "# a comment\na 1\n# EOF\n",
            o,
            1,
            "expected a valid start token",
        );
    }

    #[test]
    fn om_trailing_comma_timestamps_and_exemplars() {
        let got = ok(
            "a{b=\"c\",} 1 1.5\nb 2 # {trace_id=\"x\"} 0.5\nc 3 -2 # {} 1 1\n# EOF\n",
            Format::OpenMetrics,
        );
        same(
            &got,
            &[
                s("a", &[("b", "c")], 1.0, Some(1500), Unknown),
                s("b", &[], 2.0, None, Unknown),
                s("c", &[], 3.0, Some(-2000), Unknown),
            ],
        );
    }

    #[test]
    fn content_types() {
        assert_eq!(
            Format::from_content_type(Some(
                "application/openmetrics-text; version=1.0.0; charset=utf-8"
            )),
            Some(Format::OpenMetrics)
        );
        assert_eq!(
            Format::from_content_type(Some("text/plain; version=0.0.4; charset=utf-8")),
            Some(Format::Text)
        );
        assert_eq!(Format::from_content_type(None), Some(Format::Text));
        assert_eq!(
            Format::from_content_type(Some("application/vnd.google.protobuf")),
            None
        );
    }

    /// Random lines built from the format's own pieces: an answer, never a panic, and an
    /// error line within the body.
    #[test]
    fn never_panics_on_random_pieces() {
        const PIECES: [&str; 24] = [
            "a", "_b:c", "{", "}", "=", ",", "\"", "\\", " ", "\t", "\n", "#", "# HELP ",
            "# TYPE ", "# UNIT ", "# EOF", "counter", "1.5e3", "NaN", "+Inf", "é", "\u{0}", "le",
            "_total",
        ];
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            let mut body = String::new();
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            for _ in 0..(x % 24) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                body.push_str(PIECES[(x % PIECES.len() as u64) as usize]);
            }
            for format in [Format::Text, Format::OpenMetrics] {
                if let Err(e) = parse(&body, format) {
                    assert!(
                        e.line >= 1 && e.line <= body.split('\n').count(),
                        "{body:?}: {e}"
                    );
                }
            }
        }
    }

    /// Whatever the bytes, the parser answers without panicking.
    #[test]
    fn never_panics_on_prefixes_of_valid_bodies() {
        let body = "# HELP x_total ü\n# TYPE x counter\nx_total{a=\"é\\\"\\n,}\"} 1.5e3 17 # {t=\"u\"} 1 2\n# EOF\n";
        for cut in 0..=body.len() {
            if let Some(prefix) = body.get(..cut) {
                let _ = parse(prefix, Format::OpenMetrics);
                let _ = parse(prefix, Format::Text);
            }
        }
    }
}
