//! Rule unit-test files (`driftgauge test rules FILE...`): promtool's format with
//! `drift_rule_test` and `exp_webhooks` instead of `alert_rule_test`, parsed with positions so
//! every error is reported as `file:line:col: message`. Running them is `engine::unittest`.
//!
//! ```yaml
//! rule_files: [fraud.yml]          # relative to this file
//! evaluation_interval: 1m          # default 1m: groups without `interval` evaluate this often
//! group_eval_order: [features]     # optional: these groups first at an instant, in this order
//! config_file: ../driftgauge.yml   # optional: webhooks (send_resolved, cooldown) and limits
//! tests:
//!   - name: amount drifts          # optional
//!     interval: 1m                 # between input samples; default evaluation_interval
//!     input_series:
//!       - series: 'feature_value{model="fraud", feature="amount"}'
//!         values: '0+0.01x99 _ stale 10+0.01x99'
//!     drift_rule_test:
//!       - eval_time: 3h20m
//!         rule: amount_drift
//!         exp_states:
//!           - labels: {model: fraud, feature: amount}   # or '{model="fraud", feature="amount"}'
//!             status: drifted
//!     exp_webhooks:
//!       - {webhook: retrain-fraud, rule: amount_drift, status: drifted, labels: {model: fraud, feature: amount}}
//! ```
//!
//! Values use promtool's expanding notation: `a` one value, `a+bxN` and `a-bxN` the N+1
//! values `a, a±b, …, a±N·b`, `axN` N+1 times `a`, `_` no sample, `_xN` N of those, `stale`
//! no sample (a stale marker). The i-th value is a sample at `i × interval`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use marked_yaml::Node;

use crate::config::diag::{self, Diagnostic, LoadError};
use crate::config::selector::{MatchOp, Selector};
use crate::config::yaml::{self, describe, get, key_path, node_marker, Cx};
use crate::formats::excerpt;
use crate::labels::{validate_series, Labels};

/// The states a rule+series can be in, as test files name them.
pub const STATUSES: [&str; 3] = ["stable", "warning", "drifted"];

/// One parsed test file.
#[derive(Debug, Clone, PartialEq)]
pub struct TestFile {
    /// The file as given.
    pub origin: String,
    /// Rule files, resolved against the test file's folder.
    pub rule_files: Vec<PathBuf>,
    pub evaluation_interval: Duration,
    /// Groups evaluated first at an instant, in this order (then the others, in file order).
    pub group_eval_order: Vec<(String, At)>,
    pub config_file: Option<PathBuf>,
    pub tests: Vec<TestGroup>,
}

/// Where something was written: `line:col` in the test file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct At {
    pub line: usize,
    pub col: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TestGroup {
    /// `name`, or `#<index>`.
    pub name: String,
    /// Between two input samples.
    pub interval: Duration,
    pub input_series: Vec<InputSeries>,
    pub drift_rule_test: Vec<DriftRuleTest>,
    pub exp_webhooks: Option<Vec<ExpWebhook>>,
    pub at: At,
}

#[derive(Debug, Clone, PartialEq)]
pub struct InputSeries {
    pub metric: String,
    pub labels: Labels,
    /// One slot per interval; `None`: no sample (`_`, `stale`).
    pub values: Vec<Option<f64>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DriftRuleTest {
    pub eval_time: Duration,
    pub rule: String,
    pub exp_states: Vec<ExpState>,
    pub at: At,
    /// Where `rule` is written.
    pub rule_at: At,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ExpState {
    pub labels: Labels,
    /// One of [`STATUSES`].
    pub status: String,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ExpWebhook {
    pub webhook: String,
    pub rule: String,
    /// The status entered: `drifted`, or the one left for (`send_resolved`).
    pub status: String,
    pub labels: Labels,
    /// When the call was made, when given.
    pub eval_time: Option<Duration>,
}

const TOP_KEYS: &[&str] = &[
    "rule_files",
    "evaluation_interval",
    "group_eval_order",
    "config_file",
    "tests",
];
const GROUP_KEYS: &[&str] = &[
    "name",
    "interval",
    "input_series",
    "drift_rule_test",
    "exp_webhooks",
];

/// Values in one series, at most (a typo like `1x1e9` must not take the memory).
pub const MAX_VALUES: usize = 10_000_000;

/// Reads and parses a test file.
pub fn load_test_file(path: &Path) -> Result<TestFile, LoadError> {
    let origin = path.display().to_string();
    let text = diag::read_text(path, diag::MAX_TEXT_FILE).map_err(|e| {
        LoadError(vec![Diagnostic::whole_file(
            &origin,
            format!("cannot read test file: {}", diag::io_reason(&e)),
        )])
    })?;
    parse_test_file(&text, &origin, path.parent().unwrap_or(Path::new("")))
}

/// Parses a test file's text; `base_dir` is what its `rule_files` and `config_file` are
/// relative to. Every error at once.
pub fn parse_test_file(text: &str, origin: &str, base_dir: &Path) -> Result<TestFile, LoadError> {
    let text = yaml::strip_bom(text);
    let root = yaml::parse(origin, text).map_err(|d| LoadError(vec![d]))?;
    let mut cx = Cx::new(origin, text);
    let file = walk(&mut cx, &root, origin, base_dir);
    let (mut diags, hidden) = cx.finish();
    diag::finish_file(&mut diags, hidden);
    match file {
        Some(f) if diags.is_empty() => Ok(f),
        _ => Err(LoadError(diags)),
    }
}

fn at(node: &Node) -> At {
    node_marker(node).map_or_else(At::default, |m| At {
        line: m.line(),
        col: m.column(),
    })
}

fn walk(cx: &mut Cx, root: &Node, origin: &str, base_dir: &Path) -> Option<TestFile> {
    let top = cx.mapping("test file", root)?;
    cx.check_keys(top, TOP_KEYS, "the test file");
    let mut rule_files = Vec::new();
    match get(top, "rule_files") {
        Some(n) => {
            for (f, node) in cx.string_list("rule_files", n).unwrap_or_default() {
                let path = base_dir.join(&f);
                // Globs, as promtool takes them; a plain name is read (and reported) as is.
                if !f.contains(['*', '?', '[']) {
                    rule_files.push(path);
                    continue;
                }
                let pattern = path.to_string_lossy().into_owned();
                match glob::glob(&pattern) {
                    Ok(paths) => {
                        let mut found: Vec<PathBuf> = paths.flatten().collect();
                        found.sort();
                        if found.is_empty() {
                            cx.at_key(node, format!("rule_files: {} matches no file", excerpt(&f)));
                        }
                        rule_files.extend(found);
                    }
                    Err(e) => cx.at_key(
                        node,
                        format!("rule_files: invalid glob {}: {}", excerpt(&f), e.msg),
                    ),
                }
            }
        }
        None => cx.missing(top, "rule_files", "the test file"),
    }
    let evaluation_interval = match get(top, "evaluation_interval") {
        Some(n) => cx.positive_duration("evaluation_interval", n),
        None => Some(Duration::from_secs(60)),
    };
    let group_eval_order = match get(top, "group_eval_order") {
        Some(n) => cx
            .string_list("group_eval_order", n)
            .unwrap_or_default()
            .into_iter()
            .map(|(g, node)| {
                let at = node.span().start().map_or_else(At::default, |m| At {
                    line: m.line(),
                    col: m.column(),
                });
                (g, at)
            })
            .collect(),
        None => Vec::new(),
    };
    let config_file = get(top, "config_file")
        .and_then(|n| cx.non_empty("config_file", n))
        .map(|f| base_dir.join(f));
    let mut tests = Vec::new();
    if let Some(n) = get(top, "tests") {
        if let Some(seq) = cx.sequence("tests", n) {
            for (i, g) in seq.iter().enumerate() {
                if let Some(g) = group(cx, g, i, evaluation_interval.unwrap_or_default()) {
                    tests.push(g);
                }
            }
        }
    }
    Some(TestFile {
        origin: origin.to_string(),
        rule_files,
        evaluation_interval: evaluation_interval?,
        group_eval_order,
        config_file,
        tests,
    })
}

fn group(cx: &mut Cx, node: &Node, index: usize, default_interval: Duration) -> Option<TestGroup> {
    let key = format!("tests[{index}]");
    let map = cx.mapping(&key, node)?;
    cx.check_keys(map, GROUP_KEYS, &key);
    let name = get(map, "name")
        .and_then(|n| cx.string("name", n))
        .unwrap_or_else(|| format!("#{index}"));
    let interval = match get(map, "interval") {
        Some(n) => cx.positive_duration("interval", n),
        None => Some(default_interval),
    };
    let mut input_series = Vec::new();
    if let Some(n) = get(map, "input_series") {
        for item in cx
            .sequence("input_series", n)
            .map(|s| s.iter().collect::<Vec<_>>())
            .unwrap_or_default()
        {
            if let Some(s) = input(cx, item) {
                input_series.push(s);
            }
        }
    }
    let mut drift_rule_test = Vec::new();
    if let Some(n) = get(map, "drift_rule_test") {
        for item in cx
            .sequence("drift_rule_test", n)
            .map(|s| s.iter().collect::<Vec<_>>())
            .unwrap_or_default()
        {
            if let Some(t) = drift_test(cx, item) {
                drift_rule_test.push(t);
            }
        }
    }
    let exp_webhooks = get(map, "exp_webhooks").map(|n| {
        cx.sequence("exp_webhooks", n)
            .map(|s| s.iter().filter_map(|w| exp_webhook(cx, w)).collect())
            .unwrap_or_default()
    });
    Some(TestGroup {
        name,
        interval: interval?,
        input_series,
        drift_rule_test,
        exp_webhooks,
        at: at(node),
    })
}

fn input(cx: &mut Cx, node: &Node) -> Option<InputSeries> {
    let map = cx.mapping("input_series", node)?;
    cx.check_keys(map, &["series", "values"], "input_series");
    let series = match get(map, "series") {
        Some(n) => series(cx, n),
        None => {
            cx.missing(map, "series", "input_series");
            None
        }
    };
    let values = match get(map, "values") {
        Some(Node::Scalar(s)) => match expand_values(s.as_str()) {
            Ok(v) => Some(v),
            Err((offset, message)) => {
                cx.at_offset(s, offset, format!("values: {message}"));
                None
            }
        },
        Some(n) => {
            cx.at(n, format!("values: expected a string, got {}", describe(n)));
            None
        }
        None => {
            cx.missing(map, "values", "input_series");
            None
        }
    };
    let (metric, labels) = series?;
    Some(InputSeries {
        metric,
        labels,
        values: values?,
    })
}

/// `metric{a="b", ...}`: a metric name and equality matchers only.
fn series(cx: &mut Cx, node: &Node) -> Option<(String, Labels)> {
    let s = cx.scalar("series", node)?;
    let sel = match Selector::parse(s.as_str()) {
        Ok(sel) => sel,
        Err(e) => {
            cx.at_offset(s, e.offset, format!("series: {}", e.message));
            return None;
        }
    };
    let Some(metric) = sel.metric_name().map(str::to_string) else {
        cx.at(node, "series: a series needs a metric name");
        return None;
    };
    let mut labels = Labels::new();
    for m in sel.matchers() {
        if m.name == "__name__" {
            continue;
        }
        if m.op != MatchOp::Equal {
            cx.at(
                node,
                format!(
                    "series: {} {} …: a series has label values, use =",
                    excerpt(&m.name),
                    m.op.as_str()
                ),
            );
            return None;
        }
        if !m.value.is_empty() {
            labels.insert(m.name.clone(), m.value.clone());
        }
    }
    if let Err(e) = validate_series(&metric, &labels) {
        cx.at(node, format!("series: {e}"));
        return None;
    }
    Some((metric, labels))
}

/// Labels as a mapping, or as a string `{a="b", c="d"}` (promtool's `exp_samples` form).
fn labels(cx: &mut Cx, key: &str, node: &Node) -> Option<Labels> {
    match node {
        Node::Mapping(_) => cx.string_map(key, node, true),
        Node::Scalar(s) => {
            let text = s.as_str().trim();
            if text.is_empty() || text == "{}" {
                return Some(Labels::new());
            }
            let sel = match Selector::parse(text) {
                Ok(sel) => sel,
                Err(e) => {
                    cx.at_offset(s, e.offset, format!("{key}: {}", e.message));
                    return None;
                }
            };
            let mut out = Labels::new();
            for m in sel.matchers() {
                if m.op != MatchOp::Equal || m.name == "__name__" {
                    cx.at(
                        node,
                        format!("{key}: write labels as {{name=\"value\", ...}}"),
                    );
                    return None;
                }
                out.insert(m.name.clone(), m.value.clone());
            }
            Some(out)
        }
        Node::Sequence(_) => {
            cx.at(
                node,
                format!("{key}: expected a mapping, got {}", describe(node)),
            );
            None
        }
    }
}

fn status(cx: &mut Cx, key: &str, node: &Node) -> Option<String> {
    let s = cx.string(key, node)?;
    if STATUSES.contains(&s.as_str()) {
        Some(s)
    } else {
        cx.at(
            node,
            format!(
                "{key}: {} is not a status (stable, warning or drifted)",
                excerpt(&s)
            ),
        );
        None
    }
}

fn drift_test(cx: &mut Cx, node: &Node) -> Option<DriftRuleTest> {
    let map = cx.mapping("drift_rule_test", node)?;
    cx.check_keys(map, &["eval_time", "rule", "exp_states"], "drift_rule_test");
    let eval_time = match get(map, "eval_time") {
        Some(n) => cx.duration("eval_time", n),
        None => {
            cx.missing(map, "eval_time", "drift_rule_test");
            None
        }
    };
    let (rule, rule_at) = match get(map, "rule") {
        Some(n) => (cx.non_empty("rule", n), at(n)),
        None => {
            cx.missing(map, "rule", "drift_rule_test");
            (None, At::default())
        }
    };
    let mut exp_states = Vec::new();
    let before = cx.errors();
    if let Some(n) = get(map, "exp_states") {
        if let Some(seq) = cx.sequence("exp_states", n) {
            for item in seq.iter() {
                let Some(m) = cx.mapping("exp_states", item) else {
                    continue;
                };
                cx.check_keys(m, &["labels", "status"], "exp_states");
                let l = get(m, "labels")
                    .map_or(Some(Labels::new()), |n| labels(cx, "exp_states.labels", n));
                let s = match get(m, "status") {
                    Some(n) => status(cx, "exp_states.status", n),
                    None => {
                        cx.missing(m, "status", "exp_states");
                        None
                    }
                };
                if let (Some(labels), Some(status)) = (l, s) {
                    exp_states.push(ExpState { labels, status });
                }
            }
        }
    }
    if cx.errors() > before {
        return None;
    }
    Some(DriftRuleTest {
        eval_time: eval_time?,
        rule: rule?,
        exp_states,
        at: at(node),
        rule_at,
    })
}

fn exp_webhook(cx: &mut Cx, node: &Node) -> Option<ExpWebhook> {
    let map = cx.mapping("exp_webhooks", node)?;
    cx.check_keys(
        map,
        &["webhook", "rule", "status", "labels", "eval_time"],
        "exp_webhooks",
    );
    let before = cx.errors();
    let required = |cx: &mut Cx, key: &str| match get(map, key) {
        Some(n) => cx.non_empty(&key_path("exp_webhooks", key), n),
        None => {
            cx.missing(map, key, "exp_webhooks");
            None
        }
    };
    let webhook = required(cx, "webhook");
    let rule = required(cx, "rule");
    let status = match get(map, "status") {
        Some(n) => status(cx, "exp_webhooks.status", n),
        None => Some("drifted".to_string()),
    };
    let l = get(map, "labels").map_or(Some(Labels::new()), |n| {
        labels(cx, "exp_webhooks.labels", n)
    });
    let eval_time = match get(map, "eval_time") {
        Some(n) => cx.duration("exp_webhooks.eval_time", n).map(Some),
        None => Some(None),
    };
    if cx.errors() > before {
        return None;
    }
    Some(ExpWebhook {
        webhook: webhook?,
        rule: rule?,
        status: status?,
        labels: l?,
        eval_time: eval_time?,
    })
}

/// promtool's expanding notation; the error is (character offset, message).
pub fn expand_values(text: &str) -> Result<Vec<Option<f64>>, (usize, String)> {
    let mut out: Vec<Option<f64>> = Vec::new();
    let mut offset = 0; // characters before `rest`
    let mut rest = text;
    loop {
        let trimmed = rest.trim_start();
        offset += rest.chars().count() - trimmed.chars().count();
        rest = trimmed;
        if rest.is_empty() {
            return Ok(out);
        }
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let token = &rest[..end];
        let bad = |message: String| (offset, message);
        match token {
            "_" | "stale" => out.push(None),
            _ => {
                let (head, count) = match token.rsplit_once('x') {
                    Some((h, n)) => {
                        let n: usize = n.parse().map_err(|_| {
                            bad(format!("{}: expected a count after x", excerpt(token)))
                        })?;
                        (h, Some(n))
                    }
                    None => (token, None),
                };
                let new = match count {
                    None if head == "_" => 1,
                    None => 1,
                    Some(n) if head == "_" => n,
                    Some(n) => n.saturating_add(1),
                };
                if out.len().saturating_add(new) > MAX_VALUES {
                    return Err(bad(format!("more than {MAX_VALUES} values in one series")));
                }
                if head == "_" {
                    out.extend(std::iter::repeat_n(None, new));
                } else {
                    let (start, step) = split_step(head).ok_or_else(|| {
                        bad(format!(
                            "{}: expected a number, a+bxN, a-bxN, axN, _, _xN or stale",
                            excerpt(token)
                        ))
                    })?;
                    if count.is_none() && step.is_some() {
                        return Err(bad(format!(
                            "{}: a step needs a count (a+bxN)",
                            excerpt(token)
                        )));
                    }
                    let mut v = start;
                    for _ in 0..new {
                        out.push(Some(v));
                        v += step.unwrap_or(0.0);
                    }
                }
            }
        }
        offset += token.chars().count();
        rest = &rest[end..];
    }
}

/// `a`, `a+b`, `a-b` → (a, b or -b).
fn split_step(s: &str) -> Option<(f64, Option<f64>)> {
    let number = |t: &str| -> Option<f64> {
        match t {
            "Inf" | "+Inf" => Some(f64::INFINITY),
            "-Inf" => Some(f64::NEG_INFINITY),
            "NaN" => Some(f64::NAN),
            _ => t.parse().ok(),
        }
    };
    if let Some(v) = number(s) {
        return Some((v, None));
    }
    let b = s.as_bytes();
    for i in 1..b.len() {
        if (b[i] == b'+' || b[i] == b'-') && !matches!(b[i - 1], b'e' | b'E') {
            let a = number(&s[..i])?;
            let step = number(&s[i + 1..])?;
            return Some((a, Some(if b[i] == b'-' { -step } else { step })));
        }
    }
    None
}

/// A diagnostic at a place in a test file (for the runner's checks, e.g. an unknown rule).
pub fn diagnostic(file: &TestFile, at: At, message: impl Into<String>) -> Diagnostic {
    Diagnostic::new(&file.origin, at.line.max(1), at.col.max(1), message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expanding_notation_as_promtool() {
        let v = |s: &str| expand_values(s).expect(s);
        assert_eq!(v("1+1x3"), [Some(1.0), Some(2.0), Some(3.0), Some(4.0)]);
        assert_eq!(
            v("5-2x2 _ stale 7"),
            [Some(5.0), Some(3.0), Some(1.0), None, None, Some(7.0)]
        );
        assert_eq!(
            v("1x2 _x3"),
            [Some(1.0), Some(1.0), Some(1.0), None, None, None]
        );
        assert_eq!(v("-1e1+1e1x1"), [Some(-10.0), Some(0.0)]);
        assert_eq!(v("  "), []);
        assert_eq!(
            expand_values("1 2 abc"),
            Err((
                4,
                "\"abc\": expected a number, a+bxN, a-bxN, axN, _, _xN or stale".into()
            ))
        );
        assert_eq!(
            expand_values("1+1xz"),
            Err((0, "\"1+1xz\": expected a count after x".into()))
        );
        assert_eq!(
            expand_values("1+1"),
            Err((0, "\"1+1\": a step needs a count (a+bxN)".into()))
        );
    }

    #[test]
    fn every_error_at_its_place() {
        let text = "rule_files: [r.yml]\nevaluation_interval: 5\ntests:\n  - interval: 1m\n    input_series:\n      - series: 'm{a=~\"x\"}'\n        values: '1 2 q'\n      - values: '1'\n    drift_rule_test:\n      - eval_time: 1m\n        rule: r\n        exp_states: [{labels: '{a=\"b\"}', status: broken}]\n    exp_webhooks: [{rule: r}]\n    nope: 1\n";
        let err = parse_test_file(text, "t.yml", Path::new("")).expect_err("bad");
        let got: Vec<String> = err.0.iter().map(|d| d.to_string()).collect();
        assert_eq!(
            got,
            [
                "t.yml:2:22: evaluation_interval: invalid duration \"5\": missing unit after 5 (units: y, w, d, h, m, s, ms)",
                "t.yml:6:17: series: \"a\" =~ …: a series has label values, use =",
                "t.yml:7:22: values: \"q\": expected a number, a+bxN, a-bxN, axN, _, _xN or stale",
                "t.yml:8:9: missing required key \"series\" in input_series",
                "t.yml:12:50: exp_states.status: \"broken\" is not a status (stable, warning or drifted)",
                "t.yml:13:21: missing required key \"webhook\" in exp_webhooks",
                "t.yml:14:5: unknown key \"nope\" in tests[0]",
            ]
        );
    }

    #[test]
    fn a_good_file() {
        let text = "rule_files: [r.yml]\ntests:\n  - input_series:\n      - {series: 'm{a=\"b\"}', values: '1+1x2'}\n    drift_rule_test:\n      - {eval_time: 2m, rule: r, exp_states: [{labels: {a: b}, status: drifted}]}\n    exp_webhooks:\n      - {webhook: w, rule: r, labels: '{a=\"b\"}'}\n";
        let f = parse_test_file(text, "t.yml", Path::new("dir")).expect("good");
        assert_eq!(f.rule_files, [PathBuf::from("dir/r.yml")]);
        assert_eq!(f.evaluation_interval, Duration::from_secs(60));
        let g = &f.tests[0];
        assert_eq!(g.interval, Duration::from_secs(60));
        assert_eq!(g.input_series[0].values, [Some(1.0), Some(2.0), Some(3.0)]);
        let labels = Labels::from([("a".to_string(), "b".to_string())]);
        assert_eq!(
            g.drift_rule_test[0].exp_states,
            [ExpState {
                labels: labels.clone(),
                status: "drifted".into()
            }]
        );
        assert_eq!(
            g.exp_webhooks,
            Some(vec![ExpWebhook {
                webhook: "w".into(),
                rule: "r".into(),
                status: "drifted".into(),
                labels,
                eval_time: None
            }])
        );
    }
}
