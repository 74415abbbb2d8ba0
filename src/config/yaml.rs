//! Spanned YAML nodes: parsing with `marked_yaml`, and typed getters that record a
//! [`Diagnostic`] at the offending key or value instead of stopping at the first problem.
//!
//! The walk over a file goes through one [`Cx`], which collects every diagnostic of that file.
//! Scalars are strict, as in Prometheus: numbers and booleans must be plain (unquoted) YAML
//! scalars; any scalar may be a string. A null value (`~`, `null`, empty) counts as absent.

use std::time::Duration;

use marked_yaml::types::{MarkedMappingNode, MarkedScalarNode, MarkedSequenceNode};
use marked_yaml::{LoaderOptions, Marker, Node};

use crate::config::diag::{self, Diagnostic};
use crate::config::duration::parse_duration;
use crate::config::selector::is_valid_label_name;
use crate::formats::{clip, excerpt};
use crate::labels::Labels;

/// Parses YAML text into a node tree (the top level must be a mapping; an empty file is an
/// empty mapping). Syntax errors become one diagnostic at the parser's position.
pub(crate) fn parse(origin: &str, text: &str) -> Result<Node, Diagnostic> {
    // A byte-order mark some editors write is not content.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if let Some((line, col)) = second_document(text) {
        return Err(Diagnostic::new(
            origin,
            line,
            col,
            "multiple YAML documents in one file are not supported",
        ));
    }
    if is_blank_document(text) {
        return Ok(Node::Mapping(MarkedMappingNode::new_empty(
            marked_yaml::Span::new_start(Marker::new(0, 0, 1, 1)),
        )));
    }
    let options = LoaderOptions::default()
        .error_on_duplicate_keys(true)
        .prevent_coercion(true);
    marked_yaml::parse_yaml_with_options(0, text, options).map_err(|e| {
        use marked_yaml::LoadError as E;
        let (marker, message) = match &e {
            E::TopLevelMustBeMapping(m) => (*m, "expected a mapping at the top level".to_string()),
            E::TopLevelMustBeSequence(m) => (*m, "expected a list at the top level".to_string()),
            E::UnexpectedAnchor(m) => {
                (*m, "YAML anchors and aliases are not supported".to_string())
            }
            E::MappingKeyMustBeScalar(m) => (*m, "mapping keys must be plain strings".to_string()),
            E::UnexpectedTag(m) => (*m, "YAML tags (!!type) are not supported".to_string()),
            E::ScanError(m, scan) => (*m, format!("invalid YAML: {}", scan.info())),
            E::DuplicateKey(inner) => {
                let first = inner
                    .prev_key
                    .span()
                    .start()
                    .copied()
                    .unwrap_or(Marker::new(0, 0, 1, 1));
                let second = inner.key.span().start().copied().unwrap_or(first);
                (
                    second,
                    format!(
                        "duplicate key {} (first at line {}, column {})",
                        excerpt(inner.key.as_str()),
                        first.line(),
                        first.column()
                    ),
                )
            }
        };
        Diagnostic::new(origin, marker.line(), marker.column(), message)
    })
}

/// Only comments, blank lines and document markers: an empty document.
fn is_blank_document(text: &str) -> bool {
    text.lines().all(|l| {
        let t = l.trim();
        t.is_empty() || t.starts_with('#') || t == "---" || t == "..."
    })
}

/// The position of a `---` that starts a second document (block scalars and quoted strings
/// cannot hold a `---` at column 1, so a line-based look is exact).
fn second_document(text: &str) -> Option<(usize, usize)> {
    let mut seen_content = false;
    for (i, line) in text.lines().enumerate() {
        let is_marker = |m: &str| {
            line.strip_prefix(m)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t']))
        };
        if is_marker("---") {
            if seen_content {
                return Some((i + 1, 1));
            }
            // `--- value` on the first marker line is content.
            seen_content = !line[3..].trim().is_empty() && !line[3..].trim_start().starts_with('#');
            continue;
        }
        if is_marker("...") {
            continue;
        }
        let t = line.trim();
        if !t.is_empty() && !t.starts_with('#') {
            seen_content = true;
        }
    }
    None
}

/// The text without a leading byte order mark (which YAML would make part of the first key).
pub(crate) fn strip_bom(text: &str) -> &str {
    text.strip_prefix('\u{feff}').unwrap_or(text)
}

/// Where a node starts (a mapping: its first key).
pub(crate) fn node_marker(node: &Node) -> Option<Marker> {
    match node {
        Node::Mapping(m) => mapping_marker(m),
        _ => node.span().start().copied(),
    }
}

/// Is this a null scalar (`~`, `null`, empty, unquoted)?
pub(crate) fn is_null(node: &Node) -> bool {
    match node {
        Node::Scalar(s) => {
            s.may_coerce() && matches!(s.as_str(), "" | "~" | "null" | "Null" | "NULL")
        }
        _ => false,
    }
}

/// The value under `key`, `None` when absent or null.
pub(crate) fn get<'n>(map: &'n MarkedMappingNode, key: &str) -> Option<&'n Node> {
    map.get_node(key).filter(|n| !is_null(n))
}

/// The value of an optional key: `default` when absent or null, `f`'s result (`None` when it
/// reported an error) otherwise.
pub(crate) fn opt_or<T>(
    cx: &mut Cx,
    map: &MarkedMappingNode,
    key: &str,
    default: T,
    f: impl FnOnce(&mut Cx, &Node) -> Option<T>,
) -> Option<T> {
    match get(map, key) {
        Some(n) => f(cx, n),
        None => Some(default),
    }
}

/// The key node itself (for positions), when present.
pub(crate) fn key_of<'n>(map: &'n MarkedMappingNode, key: &str) -> Option<&'n MarkedScalarNode> {
    map.keys().find(|k| k.as_str() == key)
}

/// Where a mapping "is": its first key (block mappings' own marks point past it), else its start.
pub(crate) fn mapping_marker(map: &MarkedMappingNode) -> Option<Marker> {
    map.keys()
        .next()
        .and_then(|k| k.span().start().copied())
        .or_else(|| map.span().start().copied())
}

/// A short description of a node for "expected X, got Y" messages.
pub(crate) fn describe(node: &Node) -> String {
    match node {
        _ if is_null(node) => "null".to_string(),
        Node::Scalar(s) if s.may_coerce() => excerpt(s.as_str()),
        Node::Scalar(s) => format!("the quoted string {}", excerpt(s.as_str())),
        Node::Sequence(_) => "a list".to_string(),
        Node::Mapping(_) => "a mapping".to_string(),
    }
}

/// `prefix.key` for a message, or `prefix[<excerpt>]` when the key is not a plain word (it
/// may be any YAML string, of any length).
pub(crate) fn key_path(prefix: &str, key: &str) -> String {
    let plain = key.len() <= crate::formats::EXCERPT_CHARS
        && !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'));
    if plain {
        format!("{prefix}.{key}")
    } else {
        format!("{prefix}[{}]", excerpt(key))
    }
}

/// Plain YAML 1.2 core-schema float or int text (`1`, `-0.5`, `.5`, `1e-3`).
fn is_decimal_number(s: &str) -> bool {
    let s = s.strip_prefix(['-', '+']).unwrap_or(s);
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let (int, frac) = match mantissa.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (mantissa, None),
    };
    let digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match frac {
        None => !int.is_empty() && digits(int),
        Some(f) => digits(int) && digits(f) && !(int.is_empty() && f.is_empty()),
    };
    let exponent_ok = match exponent {
        None => true,
        Some(e) => {
            let e = e.strip_prefix(['-', '+']).unwrap_or(e);
            !e.is_empty() && digits(e)
        }
    };
    mantissa_ok && exponent_ok
}

fn is_special_float(s: &str) -> bool {
    let s = s.strip_prefix(['-', '+']).unwrap_or(s);
    matches!(s, ".inf" | ".Inf" | ".INF" | ".nan" | ".NaN" | ".NAN")
}

/// A plain scalar's JSON value: null, bool, integer, float or string (quoted scalars are strings).
pub(crate) fn scalar_to_json(s: &MarkedScalarNode) -> serde_json::Value {
    use serde_json::Value;
    let text = s.as_str();
    if !s.may_coerce() {
        return Value::String(text.to_string());
    }
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    if is_decimal_number(text) {
        if let Ok(i) = text.parse::<i64>() {
            return Value::from(i);
        }
        if let Some(n) = text
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
        {
            return Value::Number(n);
        }
    }
    Value::String(text.to_string())
}

/// The per-file walker: the file's text (for column mapping) and its diagnostics so far.
/// It keeps the first [`diag::MAX_PER_FILE`] and counts the rest: a 16 MiB file of bad keys
/// must not become millions of messages.
pub(crate) struct Cx<'a> {
    pub(crate) origin: &'a str,
    text: &'a str,
    diags: Vec<Diagnostic>,
    /// Every diagnostic reported, kept or not.
    count: usize,
}

impl<'a> Cx<'a> {
    pub(crate) fn new(origin: &'a str, text: &'a str) -> Self {
        Cx {
            origin,
            text,
            diags: Vec::new(),
            count: 0,
        }
    }

    /// Number of diagnostics so far (compare before and after a part to see if it failed).
    pub(crate) fn errors(&self) -> usize {
        self.count
    }

    /// The diagnostics kept, in the order reported, and how many were left out.
    pub(crate) fn finish(self) -> (Vec<Diagnostic>, usize) {
        let hidden = self.count - self.diags.len();
        (self.diags, hidden)
    }

    pub(crate) fn push(&mut self, d: Diagnostic) {
        self.count += 1;
        if self.diags.len() < diag::MAX_PER_FILE {
            self.diags.push(d);
        }
    }

    pub(crate) fn at_marker(&mut self, marker: Option<Marker>, message: impl Into<String>) {
        let (line, col) = marker.map_or((1, 1), |m| (m.line(), m.column()));
        self.push(Diagnostic::new(self.origin, line, col, message));
    }

    pub(crate) fn at(&mut self, node: &Node, message: impl Into<String>) {
        self.at_marker(node_marker(node), message);
    }

    pub(crate) fn at_key(&mut self, key: &MarkedScalarNode, message: impl Into<String>) {
        self.at_marker(key.span().start().copied(), message);
    }

    /// At character `offset` of a scalar's decoded value, mapped back to the file when the
    /// scalar sits on one line; else at the scalar's start.
    pub(crate) fn at_offset(
        &mut self,
        node: &MarkedScalarNode,
        offset: usize,
        message: impl Into<String>,
    ) {
        let Some(m) = node.span().start().copied() else {
            self.at_marker(None, message);
            return;
        };
        let col = source_column(self.text, &m, node.as_str(), offset).unwrap_or(m.column());
        self.push(Diagnostic::new(self.origin, m.line(), col, message));
    }

    /// Reports every key of `map` not in `allowed` as `unknown key "k" in <what>`.
    pub(crate) fn check_keys(&mut self, map: &MarkedMappingNode, allowed: &[&str], what: &str) {
        self.check_keys_refusing(map, allowed, &[], what);
    }

    /// [`Cx::check_keys`], where some keys not in `allowed` are known but refused, each with
    /// why (`k is not supported: why`): options of a format that driftgauge does not implement.
    pub(crate) fn check_keys_refusing(
        &mut self,
        map: &MarkedMappingNode,
        allowed: &[&str],
        refused: &[(&str, &str)],
        what: &str,
    ) {
        for key in map.keys() {
            let k = key.as_str();
            if allowed.contains(&k) {
                continue;
            }
            match refused.iter().find(|(r, _)| *r == k) {
                Some((_, why)) => self.at_key(key, format!("{k} is not supported: {why}")),
                None => self.at_key(key, format!("unknown key {} in {what}", excerpt(k))),
            }
        }
    }

    /// `missing required key "k" in <what>` at the mapping.
    pub(crate) fn missing(&mut self, map: &MarkedMappingNode, key: &str, what: &str) {
        self.at_marker(
            mapping_marker(map),
            format!("missing required key {key:?} in {what}"),
        );
    }

    pub(crate) fn mapping<'n>(
        &mut self,
        key: &str,
        node: &'n Node,
    ) -> Option<&'n MarkedMappingNode> {
        match node {
            Node::Mapping(m) => Some(m),
            _ => {
                self.at(
                    node,
                    format!("{key}: expected a mapping, got {}", describe(node)),
                );
                None
            }
        }
    }

    pub(crate) fn sequence<'n>(
        &mut self,
        key: &str,
        node: &'n Node,
    ) -> Option<&'n MarkedSequenceNode> {
        match node {
            Node::Sequence(s) => Some(s),
            _ => {
                self.at(
                    node,
                    format!("{key}: expected a list, got {}", describe(node)),
                );
                None
            }
        }
    }

    pub(crate) fn scalar<'n>(&mut self, key: &str, node: &'n Node) -> Option<&'n MarkedScalarNode> {
        match node {
            Node::Scalar(s) => Some(s),
            _ => {
                self.at(
                    node,
                    format!("{key}: expected a string, got {}", describe(node)),
                );
                None
            }
        }
    }

    /// Any scalar, as text.
    pub(crate) fn string(&mut self, key: &str, node: &Node) -> Option<String> {
        self.scalar(key, node).map(|s| s.as_str().to_string())
    }

    /// A non-empty string.
    pub(crate) fn non_empty(&mut self, key: &str, node: &Node) -> Option<String> {
        let s = self.string(key, node)?;
        if s.trim().is_empty() {
            self.at(node, format!("{key}: must not be empty"));
            return None;
        }
        Some(s)
    }

    /// A finite number (plain scalar).
    pub(crate) fn number(&mut self, key: &str, node: &Node) -> Option<f64> {
        let s = match node {
            Node::Scalar(s) if s.may_coerce() => s,
            _ => {
                self.at(
                    node,
                    format!("{key}: expected a number, got {}", describe(node)),
                );
                return None;
            }
        };
        let text = s.as_str();
        if is_special_float(text) {
            self.at(
                node,
                format!("{key}: must be a finite number, got {}", clip(text)),
            );
            return None;
        }
        match text.parse::<f64>() {
            Ok(v) if is_decimal_number(text) && v.is_finite() => Some(v),
            Ok(_) if is_decimal_number(text) => {
                self.at(
                    node,
                    format!("{key}: number {} is out of range", clip(text)),
                );
                None
            }
            _ => {
                self.at(
                    node,
                    format!("{key}: expected a number, got {}", describe(node)),
                );
                None
            }
        }
    }

    /// A positive integer no larger than `max` (plain scalar; `1000.0` is not an integer).
    pub(crate) fn positive_int(&mut self, key: &str, node: &Node, max: u64) -> Option<u64> {
        let s = match node {
            Node::Scalar(s) if s.may_coerce() => s,
            _ => {
                self.at(
                    node,
                    format!("{key}: expected a positive integer, got {}", describe(node)),
                );
                return None;
            }
        };
        let text = s.as_str();
        let digits = text.strip_prefix('+').unwrap_or(text);
        if let Some(neg) = digits.strip_prefix('-') {
            if !neg.is_empty() && neg.bytes().all(|b| b.is_ascii_digit()) {
                self.at(
                    node,
                    format!("{key}: must be a positive integer, got {}", clip(text)),
                );
                return None;
            }
        }
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            let what = if is_decimal_number(text) {
                "an integer"
            } else {
                "a positive integer"
            };
            self.at(
                node,
                format!("{key}: expected {what}, got {}", describe(node)),
            );
            return None;
        }
        match digits.parse::<u64>() {
            Ok(0) => {
                self.at(node, format!("{key}: must be a positive integer, got 0"));
                None
            }
            Ok(n) if n <= max => Some(n),
            _ => {
                self.at(
                    node,
                    format!("{key}: must be at most {max}, got {}", clip(text)),
                );
                None
            }
        }
    }

    pub(crate) fn boolean(&mut self, key: &str, node: &Node) -> Option<bool> {
        match node {
            Node::Scalar(s) if s.may_coerce() => match s.as_str() {
                "true" | "True" | "TRUE" => return Some(true),
                "false" | "False" | "FALSE" => return Some(false),
                _ => {}
            },
            _ => {}
        }
        self.at(
            node,
            format!("{key}: expected true or false, got {}", describe(node)),
        );
        None
    }

    /// A Prometheus duration (quoted or not).
    pub(crate) fn duration(&mut self, key: &str, node: &Node) -> Option<Duration> {
        let s = self.scalar(key, node)?;
        match parse_duration(s.as_str()) {
            Ok(d) => Some(d),
            Err(e) => {
                self.at(node, format!("{key}: {e}"));
                None
            }
        }
    }

    /// A duration greater than zero.
    pub(crate) fn positive_duration(&mut self, key: &str, node: &Node) -> Option<Duration> {
        let d = self.duration(key, node)?;
        if d.is_zero() {
            self.at(node, format!("{key}: must be greater than 0s"));
            return None;
        }
        Some(d)
    }

    /// A mapping of strings to strings; keys must be label names when `label_names`.
    pub(crate) fn string_map(
        &mut self,
        key: &str,
        node: &Node,
        label_names: bool,
    ) -> Option<Labels> {
        let map = self.mapping(key, node)?;
        let before = self.errors();
        let mut out = Labels::new();
        for (k, v) in map.iter() {
            if label_names && !is_valid_label_name(k.as_str()) {
                self.at_key(
                    k,
                    format!("{key}: invalid label name {}", excerpt(k.as_str())),
                );
                continue;
            }
            let value = if is_null(v) {
                Some(String::new())
            } else {
                self.string(&key_path(key, k.as_str()), v)
            };
            if let Some(value) = value {
                out.insert(k.as_str().to_string(), value);
            }
        }
        (self.errors() == before).then_some(out)
    }

    /// A list of scalars, with their nodes (for later positions). Items that are not strings
    /// are reported and left out, so callers can still check the others; compare
    /// [`Cx::errors`] before and after to know whether the list was clean.
    pub(crate) fn string_list<'n>(
        &mut self,
        key: &str,
        node: &'n Node,
    ) -> Option<Vec<(String, &'n MarkedScalarNode)>> {
        let seq = self.sequence(key, node)?;
        let mut out = Vec::new();
        for item in seq.iter() {
            match item {
                Node::Scalar(s) if !is_null(item) => out.push((s.as_str().to_string(), s)),
                _ => self.at(
                    item,
                    format!("{key}: expected a string, got {}", describe(item)),
                ),
            }
        }
        Some(out)
    }
}

/// The 1-based column of decoded character `offset` of `value`, the scalar starting at `m`,
/// when the scalar's text up to there lies on the line it starts on.
fn source_column(text: &str, m: &Marker, value: &str, offset: usize) -> Option<usize> {
    let line: Vec<char> = text
        .chars()
        .skip(m.character())
        .take_while(|&c| c != '\n' && c != '\r')
        .collect();
    let first_value_line: Vec<char> = value.split('\n').next().unwrap_or("").chars().collect();
    // Plain and block scalars (whose mark is at their content) read as written, up to a
    // comment or the end of the line.
    let verbatim = !first_value_line.is_empty()
        && (line.starts_with(&first_value_line) || first_value_line.starts_with(&line));
    let quote = match line.first() {
        Some(&q @ ('\'' | '"')) if !verbatim => q,
        _ => {
            return (verbatim && offset <= first_value_line.len().min(line.len()))
                .then(|| m.column() + offset);
        }
    };
    let mut chars = line.iter().copied().skip(1).peekable();
    let mut consumed = 1;
    let mut decoded = 0;
    while decoded < offset {
        let c = chars.next()?;
        consumed += 1;
        match (quote, c) {
            ('\'', '\'') => {
                // `''` is one quote; a lone one ends the scalar.
                chars.next_if_eq(&'\'')?;
                consumed += 1;
            }
            ('"', '"') => return None,
            ('"', '\\') => {
                let extra = match chars.next()? {
                    'x' => 2,
                    'u' => 4,
                    'U' => 8,
                    _ => 0,
                };
                consumed += 1 + extra;
                for _ in 0..extra {
                    chars.next()?;
                }
            }
            _ => {}
        }
        decoded += 1;
    }
    Some(m.column() + consumed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scalar_at<'n>(node: &'n Node, key: &str) -> &'n MarkedScalarNode {
        node.as_mapping()
            .and_then(|m| m.get_scalar(key))
            .expect(key)
    }

    #[test]
    fn columns_map_through_quoting() {
        let text = "a: plain{x}\nb: 'it''s{x}'\nc: \"t\\tq\\u00e9{x}\"\nd: |\n  block{x}\ne: >\n  'q{x}\n  more\nf: 'multi\n  line{x}'\n";
        let node = parse("f", text).expect("valid yaml");
        let col = |key: &str, offset| {
            let s = scalar_at(&node, key);
            let m = s.span().start().copied().expect("marked");
            source_column(text, &m, s.as_str(), offset)
        };
        // a: plain{x} — '{' is decoded offset 5, file column 4 + 5 = 9.
        assert_eq!(col("a", 5), Some(9));
        // b: 'it''s{x}' — '{' is decoded offset 4 (`it's`), file column 10.
        assert_eq!(col("b", 4), Some(10));
        // c: "t\tq\u00e9{x}" — '{' is decoded offset 4, file column 4 + 1 + 1 + 2 + 1 + 6 = 15.
        assert_eq!(col("c", 4), Some(15));
        // Block scalars are marked at their content, which reads as written.
        assert_eq!(col("d", 5), Some(8));
        assert_eq!(col("e", 2), Some(5));
        // Past the first line: no column.
        assert_eq!(col("f", 10), None);
        assert_eq!(col("a", 3), Some(7));
    }

    #[test]
    fn numbers() {
        for ok in [
            "1", "-1", "+1", "0.5", ".5", "1.", "1e3", "1E-3", "-2.5e+10",
        ] {
            assert!(is_decimal_number(ok), "{ok}");
        }
        for bad in [
            "", ".", "e3", "1e", "abc", "1.2.3", "0x10", "1_000", "inf", "NaN", "--1",
        ] {
            assert!(!is_decimal_number(bad), "{bad}");
        }
    }

    #[test]
    fn syntax_errors_and_documents() {
        let err = |text: &str| parse("f.yml", text).err().map(|d| d.to_string());
        assert_eq!(
            err("a: b: c\n"),
            Some("f.yml:1:5: invalid YAML: mapping values are not allowed in this context".into())
        );
        assert_eq!(
            err("a: 1\na: 2\n"),
            Some("f.yml:2:1: duplicate key \"a\" (first at line 1, column 1)".into())
        );
        assert_eq!(
            err("a: &x 1\nb: *x\n"),
            Some("f.yml:1:7: YAML anchors and aliases are not supported".into())
        );
        assert_eq!(
            err("- 1\n"),
            Some("f.yml:1:1: expected a mapping at the top level".into())
        );
        assert_eq!(
            err("a: !!str 1\n"),
            Some("f.yml:1:10: YAML tags (!!type) are not supported".into())
        );
        assert_eq!(
            err("a: 1\n---\nb: 2\n"),
            Some("f.yml:2:1: multiple YAML documents in one file are not supported".into())
        );
        assert_eq!(err(""), None);
        assert_eq!(err("# only a comment\n---\n"), None);
        assert_eq!(err("---\na: 1\n...\n"), None);
        assert_eq!(err("a: |\n  ---\n"), None);
    }

    #[test]
    fn json_values() {
        let node = parse("f", "a: 1\nb: 1.5\nc: true\nd: x\ne: '1'\nf: ~\n").expect("valid");
        let v = |k: &str| scalar_to_json(scalar_at(&node, k));
        assert_eq!(v("a"), serde_json::json!(1));
        assert_eq!(v("b"), serde_json::json!(1.5));
        assert_eq!(v("c"), serde_json::json!(true));
        assert_eq!(v("d"), serde_json::json!("x"));
        assert_eq!(v("e"), serde_json::json!("1"));
        assert_eq!(v("f"), serde_json::Value::Null);
    }
}
