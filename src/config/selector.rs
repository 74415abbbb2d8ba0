//! PromQL-style series selectors: `metric{label="v", other=~"re.*"}`.
//!
//! The vector selector syntax of PromQL and nothing more: an optional metric name, optional
//! braces with `=`, `!=`, `=~`, `!~` matchers, values quoted with `"`, `'` or backticks (Go
//! escapes in the first two), a trailing comma allowed. Regexes are fully anchored and, as in
//! Prometheus, `.` matches a newline too. A label a series does not have matches as `""`.

use std::fmt;

use regex::Regex;

use crate::formats::excerpt;
use crate::labels::Labels;

/// Is `name` a valid label name (`[a-zA-Z_][a-zA-Z0-9_]*`)?
pub fn is_valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Is `name` a valid metric name (`[a-zA-Z_:][a-zA-Z0-9_:]*`)?
pub fn is_valid_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if is_metric_start(c)) && chars.all(is_metric_char)
}

fn is_metric_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':'
}

fn is_metric_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

/// A bad selector: what is wrong and where (a character offset into the selector text).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SelectorError {
    /// Offset in characters (not bytes) from the start of the selector text.
    pub offset: usize,
    pub message: String,
}

impl SelectorError {
    fn new(offset: usize, message: impl Into<String>) -> Self {
        SelectorError {
            offset,
            message: message.into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchOp {
    Equal,
    NotEqual,
    RegexMatch,
    RegexNoMatch,
}

impl MatchOp {
    pub fn as_str(self) -> &'static str {
        match self {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::RegexMatch => "=~",
            MatchOp::RegexNoMatch => "!~",
        }
    }
}

/// One `label op "value"` matcher, its regex compiled once.
#[derive(Debug, Clone)]
pub struct Matcher {
    pub name: String,
    pub op: MatchOp,
    pub value: String,
    regex: Option<Regex>,
}

impl Matcher {
    /// Does a label value (`""` when the label is absent) satisfy this matcher?
    pub fn matches(&self, value: &str) -> bool {
        match (self.op, &self.regex) {
            (MatchOp::Equal, _) => value == self.value,
            (MatchOp::NotEqual, _) => value != self.value,
            (MatchOp::RegexMatch, Some(re)) => re.is_match(value),
            (MatchOp::RegexNoMatch, Some(re)) => !re.is_match(value),
            // Regex matchers are only built with their regex.
            (MatchOp::RegexMatch | MatchOp::RegexNoMatch, None) => false,
        }
    }
}

/// A parsed selector; equal to another when their source texts are equal.
#[derive(Debug, Clone)]
pub struct Selector {
    source: String,
    name: Option<String>,
    matchers: Vec<Matcher>,
}

impl PartialEq for Selector {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl Selector {
    pub fn parse(s: &str) -> Result<Selector, SelectorError> {
        Parser::new(s).selector()
    }

    /// Does the series `metric{labels}` match? `__name__` matchers apply to `metric`.
    pub fn matches(&self, metric: &str, labels: &Labels) -> bool {
        if self.name.as_deref().is_some_and(|n| n != metric) {
            return false;
        }
        self.matchers.iter().all(|m| {
            let value = if m.name == "__name__" {
                metric
            } else {
                labels.get(&m.name).map_or("", String::as_str)
            };
            m.matches(value)
        })
    }

    /// The metric name every matching series has, when the selector fixes one
    /// (`name{...}` or `{__name__="name"}`).
    pub fn metric_name(&self) -> Option<&str> {
        self.name.as_deref().or_else(|| {
            self.matchers
                .iter()
                .find(|m| m.name == "__name__" && m.op == MatchOp::Equal)
                .map(|m| m.value.as_str())
        })
    }

    /// The label matchers (without the metric name given before the braces).
    pub fn matchers(&self) -> &[Matcher] {
        &self.matchers
    }

    /// The selector as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }
}

struct Parser<'a> {
    source: &'a str,
    chars: Vec<char>,
    pos: usize,
}

impl<'a> Parser<'a> {
    fn new(source: &'a str) -> Self {
        Parser {
            source,
            chars: source.chars().collect(),
            pos: 0,
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while self
            .peek()
            .is_some_and(|c| matches!(c, ' ' | '\t' | '\n' | '\r'))
        {
            self.pos += 1;
        }
    }

    fn describe_here(&self) -> String {
        match self.peek() {
            Some(c) => format!("{c:?}"),
            None => "end of input".to_string(),
        }
    }

    fn selector(mut self) -> Result<Selector, SelectorError> {
        self.skip_ws();
        if self.peek().is_none() {
            return Err(SelectorError::new(0, "empty selector"));
        }
        let mut name = None;
        if self.peek().is_some_and(is_metric_start) {
            let start = self.pos;
            while self.peek().is_some_and(is_metric_char) {
                self.pos += 1;
            }
            name = Some(self.chars[start..self.pos].iter().collect::<String>());
            self.skip_ws();
        }
        let mut matchers = Vec::new();
        let mut matcher_offsets = Vec::new();
        match self.peek() {
            Some('{') => {
                self.pos += 1;
                self.matchers(&mut matchers, &mut matcher_offsets)?;
                self.skip_ws();
            }
            _ if name.is_none() => {
                return Err(SelectorError::new(
                    self.pos,
                    format!(
                        "unexpected {}, expected a metric name or \"{{\"",
                        self.describe_here()
                    ),
                ));
            }
            _ => {}
        }
        if let Some(c) = self.peek() {
            let message = match c {
                '[' => {
                    "unexpected \"[\": range selectors are not supported, only a series selector"
                        .to_string()
                }
                '(' => "unexpected \"(\": functions are not supported, only a series selector"
                    .to_string(),
                _ => format!("unexpected {c:?} after the selector"),
            };
            return Err(SelectorError::new(self.pos, message));
        }
        if let Some(metric) = &name {
            if let Some((m, &offset)) = matchers
                .iter()
                .zip(&matcher_offsets)
                .find(|(m, _)| m.name == "__name__")
            {
                return Err(SelectorError::new(
                    offset,
                    format!(
                        "metric name set twice: {} and {}{}{}",
                        excerpt(metric),
                        m.name,
                        m.op.as_str(),
                        excerpt(&m.value)
                    ),
                ));
            }
        }
        if name.is_none() && matchers.iter().all(|m| m.matches("")) {
            return Err(SelectorError::new(
                0,
                "a selector needs a metric name or a matcher that does not match the empty string",
            ));
        }
        Ok(Selector {
            source: self.source.to_string(),
            name,
            matchers,
        })
    }

    /// After `{`: matchers up to and including `}`.
    fn matchers(
        &mut self,
        out: &mut Vec<Matcher>,
        offsets: &mut Vec<usize>,
    ) -> Result<(), SelectorError> {
        loop {
            self.skip_ws();
            match self.peek() {
                Some('}') => {
                    self.pos += 1;
                    return Ok(());
                }
                Some(c) if c.is_ascii_alphabetic() || c == '_' => {}
                Some('"' | '\'' | '`') => {
                    return Err(SelectorError::new(
                        self.pos,
                        "quoted label names are not supported, expected a label name",
                    ));
                }
                None => {
                    return Err(SelectorError::new(
                        self.pos,
                        "unexpected end of input, expected \"}\"",
                    ))
                }
                Some(_) => {
                    return Err(SelectorError::new(
                        self.pos,
                        format!("unexpected {}, expected a label name", self.describe_here()),
                    ))
                }
            }
            let start = self.pos;
            while self
                .peek()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                self.pos += 1;
            }
            let name: String = self.chars[start..self.pos].iter().collect();
            self.skip_ws();
            let op = match (self.peek(), self.chars.get(self.pos + 1).copied()) {
                (Some('='), Some('~')) => MatchOp::RegexMatch,
                (Some('!'), Some('~')) => MatchOp::RegexNoMatch,
                (Some('!'), Some('=')) => MatchOp::NotEqual,
                (Some('='), _) => MatchOp::Equal,
                _ => {
                    return Err(SelectorError::new(
                        self.pos,
                        format!(
                            "unexpected {} after label name {}, expected one of =, !=, =~, !~",
                            self.describe_here(),
                            excerpt(&name)
                        ),
                    ))
                }
            };
            self.pos += op.as_str().len();
            self.skip_ws();
            let value_offset = self.pos;
            let value = self.string()?;
            let regex = match op {
                MatchOp::RegexMatch | MatchOp::RegexNoMatch => {
                    Some(compile_anchored(&value).map_err(|e| {
                        SelectorError::new(
                            value_offset,
                            format!("invalid regex {}: {e}", excerpt(&value)),
                        )
                    })?)
                }
                MatchOp::Equal | MatchOp::NotEqual => None,
            };
            out.push(Matcher {
                name,
                op,
                value,
                regex,
            });
            offsets.push(start);
            self.skip_ws();
            match self.peek() {
                Some(',') => self.pos += 1,
                Some('}') => {}
                None => {
                    return Err(SelectorError::new(
                        self.pos,
                        "unexpected end of input, expected \",\" or \"}\"",
                    ))
                }
                Some(_) => {
                    return Err(SelectorError::new(
                        self.pos,
                        format!(
                            "unexpected {}, expected \",\" or \"}}\"",
                            self.describe_here()
                        ),
                    ))
                }
            }
        }
    }

    /// A quoted string at the current position: `"..."`, `'...'` (Go escapes) or `` `...` `` (raw).
    fn string(&mut self) -> Result<String, SelectorError> {
        let open = self.pos;
        let quote = match self.peek() {
            Some(q @ ('"' | '\'' | '`')) => q,
            _ => {
                return Err(SelectorError::new(
                    self.pos,
                    format!(
                        "unexpected {}, expected a quoted string",
                        self.describe_here()
                    ),
                ))
            }
        };
        self.pos += 1;
        let mut bytes: Vec<u8> = Vec::new();
        let unterminated = || SelectorError::new(open, "unterminated quoted string");
        loop {
            let Some(c) = self.peek() else {
                return Err(unterminated());
            };
            self.pos += 1;
            if c == quote {
                break;
            }
            if quote == '`' {
                push_char(&mut bytes, c);
                continue;
            }
            match c {
                '\n' => return Err(unterminated()),
                '\\' => self.escape(quote, &mut bytes)?,
                _ => push_char(&mut bytes, c),
            }
        }
        String::from_utf8(bytes)
            .map_err(|_| SelectorError::new(open, "invalid UTF-8 in quoted string"))
    }

    /// After a backslash: one Go escape sequence.
    fn escape(&mut self, quote: char, bytes: &mut Vec<u8>) -> Result<(), SelectorError> {
        let backslash = self.pos - 1;
        let Some(c) = self.peek() else {
            return Err(SelectorError::new(
                backslash,
                "escape sequence not terminated",
            ));
        };
        self.pos += 1;
        let simple = match c {
            'a' => Some('\u{07}'),
            'b' => Some('\u{08}'),
            'f' => Some('\u{0c}'),
            'n' => Some('\n'),
            'r' => Some('\r'),
            't' => Some('\t'),
            'v' => Some('\u{0b}'),
            '\\' => Some('\\'),
            _ if c == quote => Some(quote),
            _ => None,
        };
        if let Some(s) = simple {
            push_char(bytes, s);
            return Ok(());
        }
        let (digits, radix, max) = match c {
            '0'..='7' => {
                self.pos -= 1;
                (3, 8, 255)
            }
            'x' => (2, 16, 255),
            'u' => (4, 16, 0x10FFFF),
            'U' => (8, 16, 0x10FFFF),
            _ => {
                return Err(SelectorError::new(
                    backslash,
                    format!("unknown escape sequence \"\\{c}\""),
                ));
            }
        };
        let mut value: u32 = 0;
        for _ in 0..digits {
            let d = self.peek().and_then(|d| d.to_digit(radix));
            let Some(d) = d else {
                return Err(SelectorError::new(
                    backslash,
                    format!(
                        "illegal character {} in escape sequence",
                        self.describe_here()
                    ),
                ));
            };
            value = value * radix + d;
            self.pos += 1;
        }
        if value > max {
            return Err(SelectorError::new(
                backslash,
                "escape sequence is an invalid Unicode code point",
            ));
        }
        if max == 255 {
            // Octal and \x escapes are bytes, as in Go; the result must still be UTF-8.
            bytes.push(value as u8);
        } else {
            let Some(ch) = char::from_u32(value) else {
                return Err(SelectorError::new(
                    backslash,
                    "escape sequence is an invalid Unicode code point",
                ));
            };
            push_char(bytes, ch);
        }
        Ok(())
    }
}

fn push_char(bytes: &mut Vec<u8>, c: char) {
    let mut buf = [0u8; 4];
    bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
}

/// Compiles `^(?s:re)$`, after checking `re` is a regex on its own (so `a)|(b` cannot
/// escape the anchoring group).
fn compile_anchored(re: &str) -> Result<Regex, String> {
    Regex::new(re).map_err(regex_message)?;
    Regex::new(&format!("^(?s:{re})$")).map_err(regex_message)
}

/// The regex crate's multi-line message, reduced to its last `error:` line.
fn regex_message(e: regex::Error) -> String {
    let text = e.to_string();
    text.lines()
        .rev()
        .find_map(|l| l.strip_prefix("error: "))
        .map(str::to_string)
        .unwrap_or_else(|| text.lines().last().unwrap_or("").trim().to_string())
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

    fn sel(s: &str) -> Selector {
        match Selector::parse(s) {
            Ok(sel) => sel,
            Err(e) => panic!("{s:?}: {e} at {}", e.offset),
        }
    }

    #[track_caller]
    fn bad(s: &str, offset: usize, message: &str) {
        match Selector::parse(s) {
            Ok(sel) => panic!("{s:?} parsed: {sel:?}"),
            Err(e) => assert_eq!((e.offset, e.message.as_str()), (offset, message), "{s:?}"),
        }
    }

    #[test]
    fn metric_name_only() {
        let s = sel("feature_value");
        assert_eq!(s.metric_name(), Some("feature_value"));
        assert!(s.matches("feature_value", &labels(&[("model", "fraud")])));
        assert!(!s.matches("other", &Labels::new()));
        assert_eq!(s.as_str(), "feature_value");
        assert!(s.matchers().is_empty());
        assert_eq!(
            sel("ns:metric_name:rate5m").metric_name(),
            Some("ns:metric_name:rate5m")
        );
        assert_eq!(sel("  m  {}  ").metric_name(), Some("m"));
    }

    #[test]
    fn every_operator() {
        let l = labels(&[("model", "fraud"), ("feature", "amount")]);
        let cases = [
            (r#"m{model="fraud"}"#, true),
            (r#"m{model="churn"}"#, false),
            (r#"m{model!="churn"}"#, true),
            (r#"m{model!="fraud"}"#, false),
            (r#"m{model=~"fr.*"}"#, true),
            (r#"m{model=~"churn|fraud"}"#, true),
            (r#"m{model=~"ch.*"}"#, false),
            (r#"m{model!~"ch.*"}"#, true),
            (r#"m{model!~"fr.*"}"#, false),
            (r#"m{model="fraud",feature="amount"}"#, true),
            (r#"m{model="fraud",feature="age"}"#, false),
            (r#"m{ model = "fraud" , feature =~ "am.*" , }"#, true),
        ];
        for (s, want) in cases {
            assert_eq!(sel(s).matches("m", &l), want, "{s}");
        }
    }

    #[test]
    fn regexes_are_anchored() {
        let l = labels(&[("model", "fraud-v2")]);
        assert!(!sel(r#"m{model=~"fraud"}"#).matches("m", &l));
        assert!(!sel(r#"m{model=~"v2"}"#).matches("m", &l));
        assert!(sel(r#"m{model=~"fraud.*"}"#).matches("m", &l));
        assert!(sel(r#"m{model!~"fraud"}"#).matches("m", &l));
        // An alternation stays inside the anchors.
        assert!(!sel(r#"m{model=~"x|fraud"}"#).matches("m", &labels(&[("model", "xfraud")])));
        // `.` matches a newline, as in Prometheus.
        assert!(sel(r#"m{model=~"a.b"}"#).matches("m", &labels(&[("model", "a\nb")])));
    }

    #[test]
    fn absent_label_matches_empty_string() {
        let none = Labels::new();
        let some = labels(&[("x", "1")]);
        assert!(sel(r#"m{x=""}"#).matches("m", &none));
        assert!(!sel(r#"m{x=""}"#).matches("m", &some));
        assert!(!sel(r#"m{x!=""}"#).matches("m", &none));
        assert!(sel(r#"m{x!=""}"#).matches("m", &some));
        assert!(sel(r#"m{x=~".*"}"#).matches("m", &none));
        assert!(!sel(r#"m{x=~".+"}"#).matches("m", &none));
    }

    #[test]
    fn name_matchers_apply_to_the_metric() {
        let s = sel(r#"{__name__="feature_value", model="fraud"}"#);
        assert_eq!(s.metric_name(), Some("feature_value"));
        assert!(s.matches("feature_value", &labels(&[("model", "fraud")])));
        assert!(!s.matches("other", &labels(&[("model", "fraud")])));
        let r = sel(r#"{__name__=~"feature_.*"}"#);
        assert_eq!(r.metric_name(), None);
        assert!(r.matches("feature_value", &Labels::new()));
        assert!(!r.matches("model_accuracy", &Labels::new()));
        assert_eq!(sel(r#"{model="fraud"}"#).metric_name(), None);
    }

    #[test]
    fn quoting_and_escapes() {
        let cases = [
            (r#"m{a="x"}"#, "x"),
            (r#"m{a='x'}"#, "x"),
            ("m{a=`x\\n`}", "x\\n"),
            (r#"m{a="a\"b"}"#, "a\"b"),
            (r#"m{a='a\'b'}"#, "a'b"),
            (r#"m{a="a'b"}"#, "a'b"),
            (r#"m{a='a"b'}"#, "a\"b"),
            (
                r#"m{a="\a\b\f\n\r\t\v\\"}"#,
                "\u{07}\u{08}\u{0c}\n\r\t\u{0b}\\",
            ),
            (r#"m{a="\x41\101\u00e9\U0001F600"}"#, "AAé😀"),
            (r#"m{a="\xc3\xa9"}"#, "é"),
            (r#"m{a="é}"}"#, "é}"),
            ("m{a=`a\"b'c`}", "a\"b'c"),
        ];
        for (s, want) in cases {
            let parsed = sel(s);
            assert_eq!(parsed.matchers()[0].value, want, "{s}");
        }
    }

    #[test]
    fn errors_with_offsets() {
        bad("", 0, "empty selector");
        bad("   ", 0, "empty selector");
        bad(
            "{}",
            0,
            "a selector needs a metric name or a matcher that does not match the empty string",
        );
        bad(
            r#"{x=""}"#,
            0,
            "a selector needs a metric name or a matcher that does not match the empty string",
        );
        bad(
            r#"{x=~".*"}"#,
            0,
            "a selector needs a metric name or a matcher that does not match the empty string",
        );
        bad(
            r#"{x!~".+"}"#,
            0,
            "a selector needs a metric name or a matcher that does not match the empty string",
        );
        bad(
            r#"{__name__=~".*"}"#,
            0,
            "a selector needs a metric name or a matcher that does not match the empty string",
        );
        bad(
            "9metric",
            0,
            "unexpected '9', expected a metric name or \"{\"",
        );
        bad("m{", 2, "unexpected end of input, expected \"}\"");
        bad(
            r#"m{a="b""#,
            7,
            "unexpected end of input, expected \",\" or \"}\"",
        );
        bad(
            r#"m{a="b" c="d"}"#,
            8,
            "unexpected 'c', expected \",\" or \"}\"",
        );
        bad(r#"m{,}"#, 2, "unexpected ',', expected a label name");
        bad(r#"m{a="b",,}"#, 8, "unexpected ',', expected a label name");
        bad(r#"m{9a="b"}"#, 2, "unexpected '9', expected a label name");
        bad(
            r#"m{"a"="b"}"#,
            2,
            "quoted label names are not supported, expected a label name",
        );
        bad(
            r#"m{a-b="c"}"#,
            3,
            "unexpected '-' after label name \"a\", expected one of =, !=, =~, !~",
        );
        bad(
            r#"m{a=="b"}"#,
            4,
            "unexpected '=', expected a quoted string",
        );
        bad(
            r#"m{a~"b"}"#,
            3,
            "unexpected '~' after label name \"a\", expected one of =, !=, =~, !~",
        );
        bad(r#"m{a=b}"#, 4, "unexpected 'b', expected a quoted string");
        bad(r#"m{a="b}"#, 4, "unterminated quoted string");
        bad("m{a=\"b\nc\"}", 4, "unterminated quoted string");
        bad("m{a=`b}", 4, "unterminated quoted string");
        bad(r#"m{a="\q"}"#, 5, "unknown escape sequence \"\\q\"");
        bad(r#"m{a="\'"}"#, 5, "unknown escape sequence \"\\'\"");
        bad(r#"m{a='\"'}"#, 5, "unknown escape sequence \"\\\"\"");
        bad(
            r#"m{a="\x4"}"#,
            5,
            "illegal character '\"' in escape sequence",
        );
        bad(
            r#"m{a="\400"}"#,
            5,
            "escape sequence is an invalid Unicode code point",
        );
        bad(
            r#"m{a="\ud800"}"#,
            5,
            "escape sequence is an invalid Unicode code point",
        );
        bad(r#"m{a="\xff"}"#, 4, "invalid UTF-8 in quoted string");
        bad(r#"m{a=~"(b"}"#, 5, "invalid regex \"(b\": unclosed group");
        bad(
            r#"m{a=~"b)|(c"}"#,
            5,
            "invalid regex \"b)|(c\": unopened group",
        );
        bad(
            "m[5m]",
            1,
            "unexpected \"[\": range selectors are not supported, only a series selector",
        );
        bad(
            "rate(m[5m])",
            4,
            "unexpected \"(\": functions are not supported, only a series selector",
        );
        bad("m offset 5m", 2, "unexpected 'o' after the selector");
        bad(r#"m{a="b"} x"#, 9, "unexpected 'x' after the selector");
        bad(
            r#"m{__name__="n"}"#,
            2,
            "metric name set twice: \"m\" and __name__=\"n\"",
        );
        // Offsets count characters, not bytes.
        bad(
            r#"m{a="é", b}"#,
            10,
            "unexpected '}' after label name \"b\", expected one of =, !=, =~, !~",
        );
    }

    #[test]
    fn equality_is_by_source() {
        assert_eq!(sel(r#"m{a="b"}"#), sel(r#"m{a="b"}"#));
        assert_ne!(sel(r#"m{a="b"}"#), sel(r#"m{a='b'}"#));
    }

    #[test]
    fn names() {
        for ok in ["a", "_", "a_1", "A", "__name__"] {
            assert!(is_valid_label_name(ok), "{ok}");
        }
        for bad in ["", "1a", "a-b", "a:b", "é", "a b"] {
            assert!(!is_valid_label_name(bad), "{bad}");
        }
        for ok in ["a", ":a", "a:b_c", "_x9"] {
            assert!(is_valid_metric_name(ok), "{ok}");
        }
        for bad in ["", "1a", "a-b", "a.b", "é"] {
            assert!(!is_valid_metric_name(bad), "{bad}");
        }
    }
}
