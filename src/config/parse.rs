//! Rule files (`rules/*.yml`): spanned YAML → validated [`Group`]s, every error at once.
//!
//! Stage one is the `marked_yaml` node tree with positions; stage two is this walk, which
//! checks every key of every group and rule and builds the model types only when the whole
//! file is valid. Cross-file checks (group names unique across files) happen in `rules::load`.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use marked_yaml::types::{MarkedMappingNode, MarkedScalarNode};
use marked_yaml::{Marker, Node};

use crate::config::counts;
use crate::config::diag::{self, io_reason, quote_path, Diagnostic};
use crate::config::model::{
    BinKind, BinnedTest, CountSpec, CurrentWindow, DetectorSpec, Group, KsSpec, Labels,
    ReferenceWindow, Rule, TimeReference, ValueTest,
};
use crate::config::selector::{is_valid_label_name, Selector};
use crate::config::template::validate_template;
use crate::config::yaml::{self, get, key_of, opt_or, Cx};
use crate::detect::budget::{Correction, FalseAlarms, Level, Scope};
use crate::detect::control::{self, Baseline, ControlLimits, CusumSpec, Side};
use crate::detect::divergence::Base;
use crate::detect::ema::{EmaBound, EmaSpec};
use crate::detect::ks::{Alternative, Method};
use crate::formats::excerpt;
use crate::formats::values::ValuesError;

/// What a rule file is checked against.
#[derive(Debug, Clone, Copy)]
pub struct RuleContext<'a> {
    /// Folder `reference: {file: ...}` paths are relative to (the rule file's folder).
    pub base_dir: &'a Path,
    /// Interval of groups without `interval:` (the config's `global.evaluation_interval`).
    pub default_interval: Duration,
    /// Webhook names rules may use; `None`: names are not checked.
    pub webhooks: Option<&'a BTreeSet<String>>,
}

/// Window sizes (`first`, `preceding`, `last`, reference file values) allowed when no config
/// says otherwise.
pub const MAX_WINDOW: usize = 10_000_000;

/// Largest window size, and whether it comes from the config's `limits.max_window_values`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WindowCap {
    pub max: usize,
    pub from_limits: bool,
}

impl Default for WindowCap {
    fn default() -> Self {
        WindowCap {
            max: MAX_WINDOW,
            from_limits: false,
        }
    }
}

/// A group name and where it was written (for duplicate checks across files).
#[derive(Debug, Clone)]
pub(crate) struct GroupName {
    pub name: String,
    pub line: usize,
    pub col: usize,
}

/// How rule files are checked beyond their [`RuleContext`].
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct FileChecks {
    pub cap: WindowCap,
    /// The rules run on the embedded default config, which has no webhooks: a rule naming
    /// one is told so (`RuleContext::webhooks` is then the empty set).
    pub embedded_default: bool,
}

/// Everything one file yields: valid groups (only meaningful when `diags` and `hidden` are
/// empty), the group names seen (even in groups with errors), and the first diagnostics,
/// sorted by position, with the number of those left out.
#[derive(Debug, Default)]
pub(crate) struct ParsedFile {
    pub groups: Vec<Group>,
    pub names: Vec<GroupName>,
    pub diags: Vec<Diagnostic>,
    pub hidden: usize,
}

/// Parses one rule file from its text. `origin` names the file in diagnostics. Group names
/// must be unique within the file (across files, `rules::load` checks).
pub fn parse_rule_file(
    text: &str,
    origin: &str,
    ctx: &RuleContext,
) -> Result<Vec<Group>, Vec<Diagnostic>> {
    let mut parsed = parse_file(text, origin, ctx, FileChecks::default());
    let (diags, hidden) = (&mut parsed.diags, &mut parsed.hidden);
    duplicate_groups(&[(origin, &parsed.names)], |_, d| {
        diag::keep(diags, hidden, d)
    });
    diag::finish_file(&mut parsed.diags, parsed.hidden);
    if parsed.diags.is_empty() {
        Ok(parsed.groups)
    } else {
        Err(parsed.diags)
    }
}

/// Duplicate group names across files, each reported where it repeats: `report(file index,
/// diagnostic)`.
pub(crate) fn duplicate_groups(
    files: &[(&str, &Vec<GroupName>)],
    mut report: impl FnMut(usize, Diagnostic),
) {
    let mut first: std::collections::HashMap<&str, (&str, &GroupName)> =
        std::collections::HashMap::new();
    for (i, (origin, names)) in files.iter().enumerate() {
        for n in names.iter() {
            match first.get(n.name.as_str()) {
                Some((file, at)) => report(
                    i,
                    Diagnostic::new(
                        *origin,
                        n.line,
                        n.col,
                        format!(
                            "duplicate group name {} (first defined at {file}:{}:{})",
                            excerpt(&n.name),
                            at.line,
                            at.col
                        ),
                    ),
                ),
                None => {
                    first.insert(&n.name, (origin, n));
                }
            }
        }
    }
}

/// By position; messages without a position (`… N more errors`) last.
pub(crate) fn sort(diags: &mut [Diagnostic]) {
    diags.sort_by_key(|d| (d.file.is_empty(), d.line, d.col));
}

pub(crate) fn parse_file(
    text: &str,
    origin: &str,
    ctx: &RuleContext,
    checks: FileChecks,
) -> ParsedFile {
    let text = yaml::strip_bom(text);
    let root = match yaml::parse(origin, text) {
        Ok(root) => root,
        Err(d) => {
            return ParsedFile {
                diags: vec![d],
                ..ParsedFile::default()
            }
        }
    };
    let mut cx = Cx::new(origin, text);
    let mut out = ParsedFile::default();
    if let Some(top) = cx.mapping("rule file", &root) {
        cx.check_keys(top, &["groups"], "rule file");
        if let Some(node) = get(top, "groups") {
            if let Some(seq) = cx.sequence("groups", node) {
                let walker = Walker { ctx, checks };
                for item in seq.iter() {
                    if let Some(g) = walker.group(&mut cx, item, &mut out.names) {
                        out.groups.push(g);
                    }
                }
            }
        }
    }
    (out.diags, out.hidden) = cx.finish();
    sort(&mut out.diags);
    out
}

const GROUP_KEYS: &[&str] = &["name", "interval", "labels", "rules"];
const RULE_KEYS: &[&str] = &[
    "name",
    "detector",
    "series",
    "histogram",
    "categories",
    "category_label",
    "by",
    "min_samples",
    "for",
    "keep_firing_for",
    "labels",
    "annotations",
    "webhooks",
    "share",
];
const KS_KEYS: &[&str] = &[
    "reference",
    "current",
    "alpha",
    "false_alarms",
    "false_alarms_scope",
    "correction",
    "statistic",
    "alternative",
    "method",
    "threshold",
    "bins",
    "base",
];
const CUSUM_KEYS: &[&str] = &["baseline", "target", "sd", "k", "run_length", "side"];
const EMA_KEYS: &[&str] = &[
    "control_limits",
    "smoothing",
    "below",
    "above",
    "warning_below",
    "warning_above",
];

/// Keys only `ks` takes among the raw-value tests.
const KS_ONLY_KEYS: &[&str] = &["alternative", "method"];
/// Keys only tests with a p-value take.
const P_VALUE_KEYS: &[&str] = &[
    "alpha",
    "false_alarms",
    "false_alarms_scope",
    "correction",
    "statistic",
];

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    /// A two-sample test of raw values.
    Ks(Test),
    Ema,
    Cusum,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Test {
    Ks,
    Cvm,
    Anderson,
    /// chi2, gtest, psi, jensenshannon, hellinger: on counts (histograms, categories), or on
    /// values binned on the reference's quantiles.
    Binned(BinnedTest),
    Wasserstein,
    Energy,
}

impl Test {
    fn name(self) -> &'static str {
        match self {
            Test::Ks => "ks",
            Test::Cvm => "cvm",
            Test::Anderson => "anderson",
            Test::Binned(t) => t.name(),
            Test::Wasserstein => "wasserstein",
            Test::Energy => "energy",
        }
    }

    /// Does it give a p-value (else `threshold:` is required)?
    fn has_p_value(self) -> bool {
        match self {
            Test::Binned(t) => t.has_p_value(),
            Test::Wasserstein | Test::Energy => false,
            _ => true,
        }
    }
}

/// What a rule reads.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Input {
    Series,
    Histogram,
    Categories,
}

struct Walker<'c, 'a> {
    ctx: &'c RuleContext<'a>,
    checks: FileChecks,
}

/// Labels driftgauge sets on every rule series itself.
const SET_LABELS: &[&str] = &["rule", "group"];

/// A group's or rule's `labels`: label names, none of them reserved. A `rule` or `group`
/// label would be overwritten by driftgauge's own, and names starting with `__` are
/// Prometheus's internal ones; both are errors rather than dropped or exported.
fn rule_labels(cx: &mut Cx, node: &Node) -> Option<Labels> {
    let before = cx.errors();
    let labels = cx.string_map("labels", node, true);
    if let Some(map) = node.as_mapping() {
        for k in map.keys() {
            let name = k.as_str();
            if SET_LABELS.contains(&name) {
                cx.at_key(
                    k,
                    format!("labels: label name {name:?} is reserved: driftgauge sets it"),
                );
            } else if name.starts_with("__") && is_valid_label_name(name) {
                cx.at_key(
                    k,
                    format!(
                        "labels: label name {}: label names starting with \"__\" are reserved",
                        excerpt(name)
                    ),
                );
            }
        }
    }
    if cx.errors() > before {
        return None;
    }
    labels
}

impl Walker<'_, '_> {
    fn group(&self, cx: &mut Cx, node: &Node, names: &mut Vec<GroupName>) -> Option<Group> {
        let map = cx.mapping("group", node)?;
        let before = cx.errors();
        cx.check_keys(map, GROUP_KEYS, "group");
        let name = match get(map, "name") {
            Some(n) => cx.non_empty("name", n),
            None => {
                cx.missing(map, "name", "group");
                None
            }
        };
        if let (Some(name), Some(m)) = (&name, get(map, "name").and_then(|n| n.span().start())) {
            names.push(GroupName {
                name: name.clone(),
                line: m.line(),
                col: m.column(),
            });
        }
        let interval = match get(map, "interval") {
            Some(n) => cx.positive_duration("interval", n),
            None => Some(self.ctx.default_interval),
        };
        let labels = match get(map, "labels") {
            Some(n) => rule_labels(cx, n),
            None => Some(Labels::new()),
        };
        let group_name = name.as_deref().unwrap_or("");
        let group_labels = labels.clone().unwrap_or_default();
        let mut rules = Vec::new();
        if let Some(node) = get(map, "rules") {
            if let Some(seq) = cx.sequence("rules", node) {
                let mut seen = BTreeSet::new();
                for item in seq.iter() {
                    if let Some(rule) = self.rule(cx, item, group_name, &group_labels, &mut seen) {
                        rules.push(rule);
                    }
                }
            }
        }
        if cx.errors() > before {
            return None;
        }
        Some(Group {
            name: name?,
            interval: interval?,
            labels: labels?,
            rules,
            file: cx.origin.to_string(),
        })
    }

    fn rule(
        &self,
        cx: &mut Cx,
        node: &Node,
        group: &str,
        group_labels: &Labels,
        seen: &mut BTreeSet<String>,
    ) -> Option<Rule> {
        let map = cx.mapping("rule", node)?;
        let before = cx.errors();
        for key in map.keys() {
            let k = key.as_str();
            if !RULE_KEYS.contains(&k)
                && !KS_KEYS.contains(&k)
                && !EMA_KEYS.contains(&k)
                && !CUSUM_KEYS.contains(&k)
            {
                cx.at_key(key, format!("unknown key {} in rule", excerpt(k)));
            }
        }
        let name = match get(map, "name") {
            Some(n) => cx.non_empty("name", n).filter(|name| {
                if seen.insert(name.clone()) {
                    true
                } else {
                    cx.at(
                        n,
                        format!(
                            "duplicate rule name {} in group {}",
                            excerpt(name),
                            excerpt(group)
                        ),
                    );
                    false
                }
            }),
            None => {
                cx.missing(map, "name", "rule");
                None
            }
        };
        let kind = match get(map, "detector") {
            Some(n) => match cx.string("detector", n).as_deref() {
                Some("ks") => Some(Kind::Ks(Test::Ks)),
                Some("cvm") => Some(Kind::Ks(Test::Cvm)),
                Some("anderson") => Some(Kind::Ks(Test::Anderson)),
                Some("wasserstein") => Some(Kind::Ks(Test::Wasserstein)),
                Some("energy") => Some(Kind::Ks(Test::Energy)),
                Some("ema") => Some(Kind::Ema),
                Some("cusum") => Some(Kind::Cusum),
                Some(other) => match BinnedTest::parse(other) {
                    Some(t) => Some(Kind::Ks(Test::Binned(t))),
                    None => {
                        cx.at(
                            n,
                            format!(
                                "unknown detector {} (expected ks, cvm, anderson, wasserstein, energy, chi2, gtest, psi, jensenshannon, hellinger, ema or cusum)",
                                excerpt(other)
                            ),
                        );
                        None
                    }
                },
                None => None,
            },
            None => {
                cx.missing(map, "detector", "rule");
                None
            }
        };
        let input = self.input(cx, map, kind);
        if let Some(kind) = kind {
            let (other, name): (&[&[&str]], _) = match kind {
                Kind::Ks(Test::Ks) => (
                    &[EMA_KEYS, CUSUM_KEYS, &["threshold", "bins", "base"]],
                    "ks",
                ),
                Kind::Ks(t @ (Test::Cvm | Test::Anderson)) => (
                    &[
                        EMA_KEYS,
                        KS_ONLY_KEYS,
                        CUSUM_KEYS,
                        &["threshold", "bins", "base"],
                    ],
                    t.name(),
                ),
                Kind::Ks(t @ (Test::Wasserstein | Test::Energy)) => (
                    &[
                        EMA_KEYS,
                        KS_ONLY_KEYS,
                        CUSUM_KEYS,
                        P_VALUE_KEYS,
                        &["bins", "base"],
                    ],
                    t.name(),
                ),
                Kind::Ks(t @ Test::Binned(b)) => {
                    let base: &[&str] = if matches!(b, BinnedTest::JensenShannon(_)) {
                        &[]
                    } else {
                        &["base"]
                    };
                    if b.has_p_value() {
                        (
                            &[EMA_KEYS, KS_ONLY_KEYS, CUSUM_KEYS, &["threshold"], base],
                            t.name(),
                        )
                    } else {
                        (
                            &[EMA_KEYS, KS_ONLY_KEYS, CUSUM_KEYS, P_VALUE_KEYS, base],
                            t.name(),
                        )
                    }
                }
                Kind::Ema => (&[KS_KEYS, CUSUM_KEYS], "ema"),
                Kind::Cusum => (&[KS_KEYS, EMA_KEYS], "cusum"),
            };
            for key in map
                .keys()
                .filter(|k| other.iter().any(|keys| keys.contains(&k.as_str())))
            {
                cx.at_key(
                    key,
                    format!("key {:?} is not valid for detector {name}", key.as_str()),
                );
            }
            if input.is_some_and(|i| i != Input::Series) {
                if let Some(key) = key_of(map, "bins") {
                    cx.at_key(key, "bins: a histogram or categories rule tests the buckets or categories it reads; bins is for raw values (series:)");
                }
                let counts_ok = matches!(kind, Kind::Ks(Test::Ks | Test::Binned(_)));
                if !counts_ok {
                    if let Some(n) = get(map, "detector") {
                        cx.at(n, format!("detector {name} takes raw values (series:); a histogram or categories rule takes ks, chi2, gtest, psi, jensenshannon or hellinger"));
                    }
                }
                if matches!(kind, Kind::Ks(Test::Ks)) {
                    for k in KS_ONLY_KEYS {
                        if let Some(key) = key_of(map, k) {
                            cx.at_key(key, format!("{k}: ks on buckets is two-sided, with the p-value for grouped data (see STATISTICS.md)"));
                        }
                    }
                }
            }
        }
        let selector = match input {
            Some(Input::Series) => series(cx, get(map, "series").expect("input key")),
            Some(Input::Histogram) => {
                counts::histogram_selector(cx, get(map, "histogram").expect("input key"))
            }
            Some(Input::Categories) => {
                counts::categories_selector(cx, get(map, "categories").expect("input key"))
            }
            None => None,
        };
        let by = match get(map, "by") {
            Some(n) => by(cx, n).map(Some),
            None => Some(None),
        };
        let min_samples = get(map, "min_samples").and_then(|n| {
            let v = cx.positive_int("min_samples", n, MAX_WINDOW as u64)?;
            Some((usize::try_from(v).ok()?, n))
        });
        let for_ = opt_or(cx, map, "for", Duration::ZERO, |cx, n| {
            cx.duration("for", n)
        });
        let keep_firing_for = opt_or(cx, map, "keep_firing_for", Duration::ZERO, |cx, n| {
            cx.duration("keep_firing_for", n)
        });
        let labels = opt_or(cx, map, "labels", Labels::new(), rule_labels);
        let annotations = opt_or(cx, map, "annotations", Labels::new(), annotations);
        let webhooks = opt_or(cx, map, "webhooks", Vec::new(), |cx, n| {
            self.webhooks(cx, n)
        });
        let share = match get(map, "share") {
            Some(n) => cx.number("share", n).and_then(|v| {
                in_range(
                    cx,
                    n,
                    "share",
                    v,
                    v > 0.0 && v <= 1.0,
                    "greater than 0 and at most 1",
                )
                .map(Some)
            }),
            None => Some(None),
        };
        let detector = match (kind, input) {
            (Some(Kind::Ks(test)), Some(input @ (Input::Histogram | Input::Categories))) => {
                self.counts(cx, map, test, input)
            }
            (_, None) => None,
            (kind, _) => match kind {
                Some(Kind::Ks(test)) => self.ks(cx, map, test),
                Some(Kind::Ema) => ema(cx, map),
                Some(Kind::Cusum) => cusum(cx, map),
                None => None,
            },
        };
        let min_samples = match (&detector, min_samples) {
            (Some(d), Some((v, n))) => {
                check_min_samples(cx, d, v, yaml::node_marker(n), "min_samples: ");
                v
            }
            (Some(d @ DetectorSpec::Ks(_)), None) => {
                check_min_samples(
                    cx,
                    d,
                    20,
                    yaml::mapping_marker(map),
                    "min_samples (default 20 for ks): ",
                );
                20
            }
            (Some(DetectorSpec::Ema(spec)), None) => ema_min_samples(spec.smoothing),
            (Some(DetectorSpec::Counts(_)), None) => 20,
            _ => 1,
        };
        if cx.errors() > before {
            return None;
        }
        let mut merged = group_labels.clone();
        merged.extend(labels?);
        Some(Rule {
            name: name?,
            selector: selector?,
            by: by?,
            detector: detector?,
            min_samples,
            for_: for_?,
            keep_firing_for: keep_firing_for?,
            labels: merged,
            annotations: annotations?,
            webhooks: webhooks?,
            share: share?,
        })
    }

    fn webhooks(&self, cx: &mut Cx, node: &Node) -> Option<Vec<String>> {
        let before = cx.errors();
        let items = cx.string_list("webhooks", node)?;
        let mut seen = BTreeSet::new();
        for (name, n) in &items {
            if !seen.insert(name.as_str()) {
                cx.at_key(n, format!("webhooks: duplicate webhook {}", excerpt(name)));
            } else if self.ctx.webhooks.is_some_and(|known| !known.contains(name)) {
                let why = if self.checks.embedded_default {
                    ": the embedded default config defines no webhooks; pass --config.file"
                } else {
                    ""
                };
                cx.at_key(n, format!("unknown webhook {}{why}", excerpt(name)));
            }
        }
        (cx.errors() == before).then(|| items.into_iter().map(|(s, _)| s).collect())
    }

    /// Which of `series`, `histogram` and `categories` the rule reads (exactly one), with
    /// `category_label` for `categories`.
    fn input(&self, cx: &mut Cx, map: &MarkedMappingNode, kind: Option<Kind>) -> Option<Input> {
        let present: Vec<(Input, &MarkedScalarNode)> = [
            (Input::Series, "series"),
            (Input::Histogram, "histogram"),
            (Input::Categories, "categories"),
        ]
        .into_iter()
        .filter_map(|(i, k)| Some((i, key_of(map, k)?)))
        .collect();
        let input = match present.as_slice() {
            [(i, _)] => *i,
            [] => {
                cx.missing(map, "series", "rule (or histogram, or categories)");
                return None;
            }
            [_, (_, second), ..] => {
                cx.at_key(
                    second,
                    "only one of series, histogram or categories may be set",
                );
                return None;
            }
        };
        let label = key_of(map, "category_label");
        match (input, label) {
            (Input::Categories, None) => {
                cx.missing(map, "category_label", "categories rule");
                return None;
            }
            (Input::Categories, Some(_)) => {
                let n = get(map, "category_label").expect("present");
                let name = cx.non_empty("category_label", n)?;
                if !is_valid_label_name(&name) {
                    cx.at(
                        n,
                        format!("category_label: {} is not a label name", excerpt(&name)),
                    );
                    return None;
                }
            }
            (_, Some(k)) => {
                cx.at_key(k, "category_label: only a categories rule takes it");
                return None;
            }
            (_, None) => {}
        }
        if input != Input::Series && matches!(kind, Some(Kind::Ema | Kind::Cusum)) {
            let k = present[0].1;
            cx.at_key(
                k,
                format!(
                    "{}: ema and cusum take a scalar series (series:)",
                    k.as_str()
                ),
            );
            return None;
        }
        Some(input)
    }

    /// A `histogram:` or `categories:` rule's detector.
    fn counts(
        &self,
        cx: &mut Cx,
        map: &MarkedMappingNode,
        test: Test,
        input: Input,
    ) -> Option<DetectorSpec> {
        let test = match test {
            Test::Ks => BinnedTest::Ks,
            Test::Binned(t) => t,
            // Refused with the detector key already.
            _ => return None,
        };
        let before = cx.errors();
        let (kind, bin_label) = match input {
            Input::Histogram => (BinKind::Edges, "le".to_string()),
            _ => (
                BinKind::Categories,
                cx.string("category_label", get(map, "category_label")?)?,
            ),
        };
        let reference = match get(map, "reference") {
            Some(n) => counts::reference(cx, n, self.ctx.base_dir, kind),
            None => {
                cx.missing(map, "reference", "rule");
                None
            }
        };
        let current = match get(map, "current") {
            Some(n) => counts::current(cx, n),
            None => {
                cx.missing(map, "current", "rule");
                None
            }
        };
        if let (Some(TimeReference::Offset { offset, .. }), Some(cur), Some(n)) =
            (&reference, current, get(map, "reference"))
        {
            if *offset < cur {
                cx.at(n, "reference.offset: must be at least current.duration, so the two windows do not overlap");
            }
        }
        let level = if test.has_p_value() {
            level(cx, map)
        } else {
            Some(Level::Alpha(0.05))
        };
        let correction = correction(cx, map);
        let statistic = self.statistic(cx, map, Test::Binned(test));
        let threshold = threshold(cx, map, test.has_p_value(), test.name());
        let test = match (test, get(map, "base")) {
            (BinnedTest::JensenShannon(_), Some(n)) => BinnedTest::JensenShannon(base(cx, n)?),
            (t, _) => t,
        };
        if cx.errors() > before {
            return None;
        }
        Some(DetectorSpec::Counts(CountSpec {
            kind,
            bin_label,
            test,
            reference: reference?,
            current: current?,
            level: level?,
            correction: correction?,
            statistic: statistic?,
            threshold: threshold?,
        }))
    }

    /// `statistic:`, the effect-size floor of a test with a p-value.
    fn statistic(&self, cx: &mut Cx, map: &MarkedMappingNode, test: Test) -> Option<Option<f64>> {
        match get(map, "statistic") {
            Some(n) => cx.number("statistic", n).and_then(|v| {
                let (ok, range) = match test {
                    // KS D is a distance between CDFs.
                    Test::Ks | Test::Binned(BinnedTest::Ks) => {
                        ((0.0..=1.0).contains(&v), "between 0 and 1")
                    }
                    // T of cvm and anderson has no upper bound (anderson's may be negative).
                    _ => (v.is_finite(), "finite"),
                };
                in_range(cx, n, "statistic", v, ok, range).map(Some)
            }),
            None => Some(None),
        }
    }

    fn ks(&self, cx: &mut Cx, map: &MarkedMappingNode, test: Test) -> Option<DetectorSpec> {
        let before = cx.errors();
        let reference = match get(map, "reference") {
            Some(n) => self.reference(cx, n),
            None => {
                cx.missing(map, "reference", &format!("{} rule", test.name()));
                None
            }
        };
        let current = match get(map, "current") {
            Some(n) => self.current(cx, n).filter(|(_, smaller)| {
                // The sizes share a level: a distance without a p-value has none to share.
                let ok = smaller.is_empty() || test.has_p_value();
                if !ok {
                    cx.at(n, format!("current.last: several sizes need a test with a p-value (they split its level); {} is a distance: give one size", test.name()));
                }
                ok
            }),
            None => {
                cx.missing(map, "current", &format!("{} rule", test.name()));
                None
            }
        };
        let level = if test.has_p_value() {
            level(cx, map)
        } else {
            Some(Level::Alpha(0.05))
        };
        let correction = correction(cx, map);
        let statistic = self.statistic(cx, map, test);
        let threshold = threshold(cx, map, test.has_p_value(), test.name());
        let bins = match (test, get(map, "bins")) {
            (Test::Binned(_), Some(n)) => cx.positive_int("bins", n, 10_000).and_then(|b| {
                in_range(cx, n, "bins", b as f64, b >= 2, "between 2 and 10000").map(|_| b as usize)
            }),
            _ => Some(10),
        };
        let binned = match (test, get(map, "base")) {
            (Test::Binned(BinnedTest::JensenShannon(_)), Some(n)) => {
                base(cx, n).map(|b| Test::Binned(BinnedTest::JensenShannon(b)))
            }
            (t, _) => Some(t),
        };
        let alternative = opt_or(cx, map, "alternative", Alternative::TwoSided, |cx, n| {
            let text = cx.string("alternative", n)?;
            let parsed = Alternative::parse(&text);
            if parsed.is_none() {
                cx.at(
                    n,
                    format!(
                        "alternative: unknown alternative {} (expected two-sided, less or greater)",
                        excerpt(&text)
                    ),
                );
            }
            parsed
        });
        let method = opt_or(cx, map, "method", Method::Auto, |cx, n| {
            let text = cx.string("method", n)?;
            let parsed = Method::parse(&text);
            if parsed.is_none() {
                cx.at(
                    n,
                    format!(
                        "method: unknown method {} (expected auto, exact or asymp)",
                        excerpt(&text)
                    ),
                );
            }
            parsed
        });
        if cx.errors() > before {
            return None;
        }
        let test = match binned? {
            Test::Ks => ValueTest::Ks {
                alternative: alternative?,
                method: method?,
            },
            Test::Cvm => ValueTest::Cvm,
            Test::Anderson => ValueTest::Anderson,
            Test::Binned(test) => ValueTest::Binned { test, bins: bins? },
            Test::Wasserstein => ValueTest::Wasserstein,
            Test::Energy => ValueTest::Energy,
        };
        let (current, smaller) = current?;
        Some(DetectorSpec::Ks(KsSpec {
            test,
            reference: reference?,
            current,
            smaller,
            level: level?,
            correction: correction?,
            statistic: statistic?,
            threshold: threshold?,
        }))
    }

    /// `{first: N}`, `{preceding: N}`, `{file: path}`, or a reference in time: `{range:
    /// {start, end}}` or `{offset: 7d, duration: 1h}` (parsed as a count rule's are).
    fn reference(&self, cx: &mut Cx, node: &Node) -> Option<ReferenceWindow> {
        if let Node::Mapping(map) = node {
            let present: Vec<&str> = ["first", "preceding", "file", "range", "offset", "duration"]
                .into_iter()
                .filter(|k| get(map, k).is_some())
                .collect();
            let timed = present
                .iter()
                .any(|k| ["range", "offset", "duration"].contains(k));
            let shape = matches!(present.as_slice(), ["range"] | ["offset", "duration"]);
            if timed && !shape {
                cx.at(
                    node,
                    "reference: expected one of {first: 1000}, {preceding: 1000}, {file: values.txt}, {range: {start: RFC3339, end: RFC3339}} or {offset: 7d, duration: 1h}",
                );
                return None;
            }
            if timed {
                return match counts::reference(cx, node, self.ctx.base_dir, BinKind::Categories)? {
                    TimeReference::Range { start_ms, end_ms } => {
                        Some(ReferenceWindow::Range { start_ms, end_ms })
                    }
                    TimeReference::Offset { offset, duration } => {
                        Some(ReferenceWindow::Offset { offset, duration })
                    }
                    _ => None,
                };
            }
        }
        let (key, value) = one_of(
            cx,
            "reference",
            node,
            &["first", "preceding", "file"],
            "{first: 1000}",
        )?;
        match key {
            "first" => self
                .window_size(cx, "reference.first", value)
                .map(ReferenceWindow::First),
            "preceding" => self
                .window_size(cx, "reference.preceding", value)
                .map(ReferenceWindow::Preceding),
            _ => self.reference_file(cx, value),
        }
    }

    /// `{last: N}`, `{last: [N1, N2, ..]}` or `{duration: 10m}`: the current window (the
    /// largest size of a list) and a list's smaller sizes, ascending.
    fn current(&self, cx: &mut Cx, node: &Node) -> Option<(CurrentWindow, Vec<usize>)> {
        let (key, value) = one_of(cx, "current", node, &["last", "duration"], "{last: 500}")?;
        match (key, value) {
            ("last", Node::Sequence(list)) => {
                let mut sizes = self.window_sizes(cx, value, list)?;
                let largest = sizes.pop()?;
                Some((CurrentWindow::Last(largest), sizes))
            }
            ("last", _) => self
                .window_size(cx, "current.last", value)
                .map(|n| (CurrentWindow::Last(n), Vec::new())),
            _ => cx
                .positive_duration("current.duration", value)
                .map(|d| (CurrentWindow::Duration(d), Vec::new())),
        }
    }

    /// The sizes of `current: {last: [..]}`, ascending: not empty, each a window size, none
    /// twice.
    fn window_sizes(
        &self,
        cx: &mut Cx,
        node: &Node,
        list: &marked_yaml::types::MarkedSequenceNode,
    ) -> Option<Vec<usize>> {
        /// Each size is one more test per evaluation, and divides the level.
        const MAX_SIZES: usize = 16;
        if list.is_empty() {
            cx.at(
                node,
                "current.last: the list of sizes is empty (give one or more, e.g. [100, 1000])",
            );
            return None;
        }
        if list.len() > MAX_SIZES {
            cx.at(
                node,
                format!(
                    "current.last: {} sizes is more than {MAX_SIZES} (each one divides the level)",
                    list.len()
                ),
            );
            return None;
        }
        let before = cx.errors();
        let mut sizes: Vec<usize> = Vec::with_capacity(list.len());
        for item in list.iter() {
            let Some(n) = self.window_size(cx, "current.last", item) else {
                continue;
            };
            if sizes.contains(&n) {
                cx.at(item, format!("current.last: size {n} is listed twice"));
                continue;
            }
            sizes.push(n);
        }
        if cx.errors() != before {
            return None;
        }
        sizes.sort_unstable();
        Some(sizes)
    }

    fn window_size(&self, cx: &mut Cx, key: &str, node: &Node) -> Option<usize> {
        let n = cx.positive_int(key, node, u64::MAX)?;
        let cap = self.checks.cap;
        match usize::try_from(n) {
            Ok(n) if n <= cap.max => Some(n),
            _ if cap.from_limits => {
                cx.at(
                    node,
                    format!(
                        "{key}: {n} is more than limits.max_window_values ({})",
                        cap.max
                    ),
                );
                None
            }
            _ => {
                cx.at(node, format!("{key}: must be at most {}, got {n}", cap.max));
                None
            }
        }
    }

    /// Reads a reference file: one float per line, blank lines and `#` comments skipped.
    fn reference_file(&self, cx: &mut Cx, node: &Node) -> Option<ReferenceWindow> {
        let rel = cx.non_empty("reference.file", node)?;
        let path = self.ctx.base_dir.join(&rel);
        let shown = quote_path(&path);
        let text = match diag::read_text(&path, diag::MAX_REFERENCE_FILE) {
            Ok(t) => t,
            Err(e) => {
                cx.at(
                    node,
                    format!("reference.file: cannot read {shown}: {}", io_reason(&e)),
                );
                return None;
            }
        };
        // Counted before parsing, and only up to one past the cap: a file of a billion
        // short lines is refused without holding a billion values first.
        let cap = self.checks.cap;
        let lines = text
            .lines()
            .filter(|l| {
                let l = l.trim();
                !l.is_empty() && !l.starts_with('#')
            })
            .take(cap.max.saturating_add(1))
            .count();
        if lines > cap.max {
            let limit = if cap.from_limits {
                "limits.max_window_values"
            } else {
                "the maximum window size"
            };
            cx.at(
                node,
                format!(
                    "reference.file: {shown} holds more values than {limit} ({})",
                    cap.max
                ),
            );
            return None;
        }
        let values = match crate::formats::values::parse_values(&text, None) {
            Ok(v) => v,
            Err(ValuesError::Empty) => {
                cx.at(node, format!("reference.file: {shown} holds no values"));
                return None;
            }
            Err(e) => {
                cx.at(node, format!("reference.file: {shown} {e}"));
                return None;
            }
        };
        drop(text);
        // The order of a reference does not matter to a detector: keep it sorted once, so
        // every series of the rule shares it without sorting.
        let mut values = values;
        crate::window::sort_values(&mut values);
        Some(ReferenceWindow::File {
            path,
            values: Arc::from(values),
        })
    }
}

fn correction(cx: &mut Cx, map: &MarkedMappingNode) -> Option<Correction> {
    opt_or(cx, map, "correction", Correction::None, |cx, n| {
        let text = cx.string("correction", n)?;
        let parsed = Correction::parse(&text);
        if parsed.is_none() {
            cx.at(
                n,
                format!(
                    "correction: unknown correction {} (expected none, bonferroni or bh)",
                    excerpt(&text)
                ),
            );
        }
        parsed
    })
}

/// `threshold:`, what a distance is compared with: required for a test without a p-value
/// (refused with the detector key otherwise).
fn threshold(
    cx: &mut Cx,
    map: &MarkedMappingNode,
    has_p_value: bool,
    name: &str,
) -> Option<Option<f64>> {
    match get(map, "threshold") {
        Some(n) => cx.number("threshold", n).and_then(|v| {
            in_range(
                cx,
                n,
                "threshold",
                v,
                v.is_finite() && v >= 0.0,
                "a finite number >= 0",
            )
            .map(Some)
        }),
        None if has_p_value => Some(None),
        None => {
            cx.missing(
                map,
                "threshold",
                &format!("{name} rule ({name} is a distance without a p-value: drifted when it reaches threshold)"),
            );
            None
        }
    }
}

/// `base: 2` or `base: e` of `jensenshannon`.
fn base(cx: &mut Cx, n: &Node) -> Option<Base> {
    let text = cx.string("base", n)?;
    let parsed = Base::parse(&text);
    if parsed.is_none() {
        cx.at(
            n,
            format!("base: unknown base {} (expected 2 or e)", excerpt(&text)),
        );
    }
    parsed
}

fn ema(cx: &mut Cx, map: &MarkedMappingNode) -> Option<DetectorSpec> {
    let before = cx.errors();
    let smoothing = match get(map, "smoothing") {
        Some(n) => cx.number("smoothing", n).and_then(|v| {
            in_range(
                cx,
                n,
                "smoothing",
                v,
                v > 0.0 && v <= 1.0,
                "greater than 0 and at most 1",
            )
        }),
        None => {
            cx.missing(map, "smoothing", "ema rule");
            None
        }
    };
    let below = get(map, "below").map(|n| (cx.number("below", n), n));
    let above = get(map, "above").map(|n| (cx.number("above", n), n));
    let control = get(map, "control_limits");
    if control.is_some() && (below.is_some() || above.is_some()) {
        if let Some(k) = key_of(map, "control_limits") {
            cx.at_key(
                k,
                "control_limits: not valid together with below or above (the limits are learned)",
            );
        }
    }
    let bound = match (below, above) {
        _ if control.is_some() => match (control, smoothing) {
            (Some(n), Some(s)) => control_limits(cx, n, s).map(EmaBound::Control),
            _ => None,
        },
        (Some((b, _)), None) => b.map(EmaBound::Below),
        (None, Some((a, _))) => a.map(EmaBound::Above),
        (None, None) => {
            cx.at_marker(
                yaml::mapping_marker(map),
                "ema rule needs one of \"below\", \"above\" or \"control_limits\"",
            );
            None
        }
        (Some(_), Some(_)) => {
            if let Some(k) = key_of(map, "above") {
                cx.at_key(k, "only one of \"below\" and \"above\" may be set");
            }
            None
        }
    };
    let mut warning = None;
    for (key, side) in [("warning_below", "below"), ("warning_above", "above")] {
        let Some(n) = get(map, key) else { continue };
        let Some(v) = cx.number(key, n) else { continue };
        match (side, bound) {
            ("below", Some(EmaBound::Below(b))) if v > b => warning = Some(v),
            ("below", Some(EmaBound::Below(b))) => cx.at(
                n,
                format!("{key}: must be greater than below ({b}), got {v}"),
            ),
            ("above", Some(EmaBound::Above(a))) if v < a => warning = Some(v),
            ("above", Some(EmaBound::Above(a))) => {
                cx.at(n, format!("{key}: must be less than above ({a}), got {v}"))
            }
            (_, Some(_)) => {
                if let Some(k) = key_of(map, key) {
                    cx.at_key(k, format!("{key}: only valid together with \"{side}\""));
                }
            }
            (_, None) => {}
        }
    }
    if cx.errors() > before {
        return None;
    }
    Some(DetectorSpec::Ema(EmaSpec {
        smoothing: smoothing?,
        bound: bound?,
        warning,
    }))
}

/// The default in-control run length of a control chart, in samples.
const DEFAULT_RUN_LENGTH: f64 = 100_000.0;

/// `run_length:`: the in-control average run length in samples, 10 to 10^9.
fn run_length(cx: &mut Cx, map: &MarkedMappingNode) -> Option<f64> {
    opt_or(cx, map, "run_length", DEFAULT_RUN_LENGTH, |cx, n| {
        let v = cx.number("run_length", n)?;
        in_range(
            cx,
            n,
            "run_length",
            v,
            (10.0..=1e9).contains(&v),
            "between 10 and 1000000000 (samples)",
        )
    })
}

/// `side: below|above|both` (default both).
fn side(cx: &mut Cx, map: &MarkedMappingNode) -> Option<Side> {
    opt_or(cx, map, "side", Side::Both, |cx, n| {
        let text = cx.string("side", n)?;
        let parsed = Side::parse(&text);
        if parsed.is_none() {
            cx.at(
                n,
                format!(
                    "side: unknown side {} (expected below, above or both)",
                    excerpt(&text)
                ),
            );
        }
        parsed
    })
}

/// `control_limits: {baseline: N, run_length: R, side: S}` of an `ema` rule.
fn control_limits(cx: &mut Cx, node: &Node, smoothing: f64) -> Option<ControlLimits> {
    let map = cx.mapping("control_limits", node)?;
    let before = cx.errors();
    cx.check_keys(map, &["baseline", "run_length", "side"], "control_limits");
    let baseline = match get(map, "baseline") {
        Some(n) => cx.positive_int("control_limits.baseline", n, MAX_WINDOW as u64),
        None => {
            cx.missing(map, "baseline", "control_limits");
            None
        }
    };
    let run_length = run_length(cx, map);
    let side = side(cx, map);
    if cx.errors() > before {
        return None;
    }
    let (run_length, side) = (run_length?, side?);
    // The chain needs a smoothing an EWMA chart can have; and the limit must reach the run
    // length (it cannot when the smoothing is extreme).
    let l = control::ewma_limit(smoothing, run_length, side);
    let reached = control::ewma_arl(smoothing, l, side);
    if smoothing < 0.001 || (reached - run_length).abs() > 0.05 * run_length || reached.is_nan() {
        cx.at(
            node,
            format!(
                "control_limits: no EWMA limit gives an in-control run of {run_length} samples at smoothing {smoothing} (use a smoothing between 0.001 and 1 and a run_length the chart can reach)"
            ),
        );
        return None;
    }
    Some(ControlLimits {
        baseline: baseline?.max(2),
        side,
        run_length,
        l,
    })
}

/// A `cusum` rule: `baseline: N` (learn the mean and standard deviation from the first N
/// samples) or `target:` + `sd:`; `k:` (default 0.5), `run_length:`, `side:`.
fn cusum(cx: &mut Cx, map: &MarkedMappingNode) -> Option<DetectorSpec> {
    let before = cx.errors();
    let learn = get(map, "baseline");
    let target = get(map, "target");
    let sd = get(map, "sd");
    let baseline = match (learn, target, sd) {
        (Some(n), None, None) => cx
            .positive_int("baseline", n, MAX_WINDOW as u64)
            .map(|n| Baseline::Learn(n.max(2))),
        (None, Some(t), Some(s)) => {
            let mean = cx.number("target", t);
            let sd = cx
                .number("sd", s)
                .and_then(|v| in_range(cx, s, "sd", v, v > 0.0 && v.is_finite(), "greater than 0"));
            Some(Baseline::Given {
                mean: mean?,
                sd: sd?,
            })
        }
        _ => {
            cx.at_marker(
                yaml::mapping_marker(map),
                "cusum rule needs either \"baseline\" (samples to learn the mean and sd from) or both \"target\" and \"sd\"",
            );
            None
        }
    };
    let k = opt_or(cx, map, "k", 0.5, |cx, n| {
        let v = cx.number("k", n)?;
        in_range(
            cx,
            n,
            "k",
            v,
            (0.0..=5.0).contains(&v),
            "between 0 and 5 (standard deviations)",
        )
    });
    let run_length = run_length(cx, map);
    let side = side(cx, map);
    if cx.errors() > before {
        return None;
    }
    let (k, run_length, side) = (k?, run_length?, side?);
    let h = control::cusum_limit(k, run_length, side);
    let reached = control::cusum_arl(k, h, side);
    if (reached - run_length).abs() > 0.05 * run_length || reached.is_nan() {
        cx.at_marker(
            yaml::mapping_marker(map),
            format!(
                "cusum rule: no decision interval gives an in-control run of {run_length} samples with k {k} (a smaller k or run_length)"
            ),
        );
        return None;
    }
    Some(DetectorSpec::Cusum(CusumSpec {
        baseline: baseline?,
        k,
        side,
        run_length,
        h,
    }))
}

/// `alpha:` (a level as written) or `false_alarms:` + `false_alarms_scope:` (a budget the
/// engine turns into a level; the default, 1/30d per series). Not both.
fn level(cx: &mut Cx, map: &MarkedMappingNode) -> Option<Level> {
    let before = cx.errors();
    let alpha = get(map, "alpha").map(|n| {
        cx.number("alpha", n).and_then(|v| {
            in_range(
                cx,
                n,
                "alpha",
                v,
                v > 0.0 && v < 1.0,
                "greater than 0 and less than 1",
            )
        })
    });
    let budget = get(map, "false_alarms").map(|n| false_alarms(cx, n));
    let scope = get(map, "false_alarms_scope").map(|n| {
        let text = cx.string("false_alarms_scope", n)?;
        let parsed = Scope::parse(&text);
        if parsed.is_none() {
            cx.at(
                n,
                format!(
                    "false_alarms_scope: unknown scope {} (expected series or rule)",
                    excerpt(&text)
                ),
            );
        }
        parsed
    });
    if alpha.is_some() {
        for key in ["false_alarms", "false_alarms_scope"] {
            if let Some(k) = key_of(map, key) {
                cx.at_key(
                    k,
                    format!("{key}: not valid together with alpha (alpha is a level as written, false_alarms a budget to calibrate to)"),
                );
            }
        }
    }
    if cx.errors() > before {
        return None;
    }
    Some(match alpha {
        Some(a) => Level::Alpha(a?),
        None => Level::Budget {
            false_alarms: budget.unwrap_or(Some(FalseAlarms::DEFAULT))?,
            scope: scope.unwrap_or(Some(Scope::Series))?,
        },
    })
}

/// `false_alarms: EVENTS/PERIOD`, e.g. `1/30d`, `0.5/7d`, `2/1d`.
fn false_alarms(cx: &mut Cx, node: &Node) -> Option<FalseAlarms> {
    let text = cx.string("false_alarms", node)?;
    let parsed = text.split_once('/').and_then(|(events, period)| {
        let events: f64 = events.trim().parse().ok()?;
        let period = crate::config::duration::parse_duration(period.trim()).ok()?;
        // More than a million per period is no budget: alpha says that better.
        (events > 0.0 && events <= 1e6 && !period.is_zero())
            .then_some(FalseAlarms { events, period })
    });
    if parsed.is_none() {
        cx.at(
            node,
            format!(
                "false_alarms: expected EVENTS/PERIOD with a number of events above 0 and at most 1000000 and a duration, like 1/30d, got {}",
                excerpt(&text)
            ),
        );
    }
    parsed
}

/// The default `min_samples` of an `ema` rule: the samples after which the first one weighs
/// less than 5 % of the EMA, `ceil(ln 0.05 / ln(1 - s))` (3 / s roughly). Before that the EMA
/// is mostly its first few samples and swings far wider than it will later.
pub(crate) fn ema_min_samples(smoothing: f64) -> usize {
    if smoothing >= 1.0 {
        return 1;
    }
    let n = (0.05f64.ln() / (-smoothing).ln_1p()).ceil();
    if n >= 1.0 {
        // Also a tiny smoothing's infinite count: capped.
        (n.min(MAX_WINDOW as f64)) as usize
    } else {
        1
    }
}

/// `min_samples` larger than a fixed window means the rule can never reach a verdict.
fn check_min_samples(
    cx: &mut Cx,
    detector: &DetectorSpec,
    min_samples: usize,
    at: Option<Marker>,
    prefix: &str,
) {
    let DetectorSpec::Ks(ks) = detector else {
        return;
    };
    let reference = match &ks.reference {
        ReferenceWindow::First(n) | ReferenceWindow::Preceding(n) => Some(*n),
        ReferenceWindow::File { values, .. } => Some(values.len()),
        // As many as arrive in the period.
        ReferenceWindow::Range { .. } | ReferenceWindow::Offset { .. } => None,
    };
    // With several sizes, the smallest: a size that can never decide is an error too.
    let current = match ks.current {
        CurrentWindow::Last(n) => Some(ks.smaller.first().copied().unwrap_or(n)),
        CurrentWindow::Duration(_) => None,
    };
    for (window, size) in [("reference", reference), ("current", current)] {
        if let Some(size) = size.filter(|&s| min_samples > s) {
            cx.at_marker(
                at,
                format!("{prefix}{min_samples} is more than the {window} window holds ({size}), so the rule could never decide"),
            );
            return;
        }
    }
}

fn series(cx: &mut Cx, node: &Node) -> Option<Selector> {
    let s = cx.scalar("series", node)?;
    match Selector::parse(s.as_str()) {
        Ok(sel) => Some(sel),
        Err(e) => {
            cx.at_offset(
                s,
                e.offset,
                format!("series: invalid selector: {}", e.message),
            );
            None
        }
    }
}

fn by(cx: &mut Cx, node: &Node) -> Option<Vec<String>> {
    let before = cx.errors();
    let items = cx.string_list("by", node)?;
    let mut seen = BTreeSet::new();
    for (name, n) in &items {
        if !is_valid_label_name(name) {
            cx.at_key(n, format!("by: invalid label name {}", excerpt(name)));
        } else if !seen.insert(name.as_str()) {
            cx.at_key(n, format!("by: duplicate label {}", excerpt(name)));
        }
    }
    (cx.errors() == before).then(|| items.into_iter().map(|(s, _)| s).collect())
}

fn annotations(cx: &mut Cx, node: &Node) -> Option<Labels> {
    let out = cx.string_map("annotations", node, true)?;
    let map = node.as_mapping()?;
    let before = cx.errors();
    for (k, v) in map.iter() {
        if let Node::Scalar(s) = v {
            if let Err(e) = validate_template(s.as_str()) {
                cx.at_offset(
                    s,
                    e.offset,
                    format!(
                        "{}: {}",
                        yaml::key_path("annotations", k.as_str()),
                        e.message
                    ),
                );
            }
        }
    }
    (cx.errors() == before).then_some(out)
}

/// A mapping holding exactly one of `keys` (others are unknown keys): the key and its value.
fn one_of<'n>(
    cx: &mut Cx,
    what: &str,
    node: &'n Node,
    keys: &[&'static str],
    example: &str,
) -> Option<(&'static str, &'n Node)> {
    let Node::Mapping(map) = node else {
        cx.at(
            node,
            format!(
                "{what}: expected a mapping like {example}, got {}",
                yaml::describe(node)
            ),
        );
        return None;
    };
    cx.check_keys(map, keys, what);
    let present: Vec<(&'static str, &MarkedScalarNode, &Node)> = keys
        .iter()
        .filter_map(|&k| Some((k, key_of(map, k)?, get(map, k)?)))
        .collect();
    let list = match keys.split_last() {
        Some((last, [])) => last.to_string(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    };
    match present.as_slice() {
        [(k, _, v)] => Some((k, v)),
        [] => {
            if map.keys().all(|k| keys.contains(&k.as_str())) {
                cx.at(
                    node,
                    format!("{what}: expected one of {list}, e.g. {example}"),
                );
            }
            None
        }
        [_, (_, second, _), ..] => {
            cx.at_key(second, format!("{what}: only one of {list} may be set"));
            None
        }
    }
}

fn in_range(cx: &mut Cx, node: &Node, key: &str, v: f64, ok: bool, range: &str) -> Option<f64> {
    if ok {
        Some(v)
    } else {
        cx.at(node, format!("{key}: must be {range}, got {v}"));
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::model::{BinKind, BinnedTest, TimeReference};

    fn data_dir() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/check")
    }

    fn hooks() -> BTreeSet<String> {
        ["retrain", "page"].iter().map(|s| s.to_string()).collect()
    }

    fn parse(text: &str) -> Result<Vec<Group>, Vec<Diagnostic>> {
        let dir = data_dir();
        let webhooks = hooks();
        let ctx = RuleContext {
            base_dir: &dir,
            default_interval: Duration::from_secs(30),
            webhooks: Some(&webhooks),
        };
        parse_rule_file(text, "r.yml", &ctx)
    }

    fn ok(text: &str) -> Vec<Group> {
        match parse(text) {
            Ok(groups) => groups,
            Err(diags) => panic!("unexpected errors:\n{}", crate::config::LoadError(diags)),
        }
    }

    /// Every diagnostic, as `line:col: message`.
    #[track_caller]
    fn errors(text: &str, expected: &[&str]) {
        let got: Vec<String> = match parse(text) {
            Ok(groups) => panic!("parsed without errors: {groups:?}"),
            Err(diags) => diags
                .iter()
                .map(|d| format!("{}:{}: {}", d.line, d.col, d.message))
                .collect(),
        };
        assert_eq!(got, expected);
    }

    /// One ks rule in one group, with `extra` lines appended to the rule.
    fn ks(extra: &str) -> String {
        format!(
            "groups:\n- name: g\n  rules:\n  - name: r\n    detector: ks\n    series: m\n    reference: {{first: 100}}\n    current: {{last: 50}}\n{extra}"
        )
    }

    /// One ema rule (line 6 onwards is `extra`).
    fn ema(extra: &str) -> String {
        format!(
            "groups:\n- name: g\n  rules:\n  - name: r\n    detector: ema\n    series: m\n{extra}"
        )
    }

    #[test]
    fn defaults_and_merging() {
        let groups = ok(concat!(
            "groups:\n",
            "- name: g\n",
            "  labels: {team: risk, tier: one}\n",
            "  rules:\n",
            "  - name: r\n",
            "    detector: ks\n",
            "    series: 'm{a=\"b\"}'\n",
            "    reference: {preceding: 100}\n",
            "    current: {duration: 10m}\n",
            "    labels: {tier: two}\n",
            "    annotations: {summary: 'D={{ $value }}'}\n",
            "  - name: e\n",
            "    detector: ema\n",
            "    series: m\n",
            "    by: [model]\n",
            "    smoothing: 0.5\n",
            "    above: 2\n",
            "- name: empty\n",
            "  interval: 1m\n",
        ));
        assert_eq!(groups.len(), 2);
        let g = &groups[0];
        assert_eq!(
            (g.name.as_str(), g.interval, g.file.as_str()),
            ("g", Duration::from_secs(30), "r.yml")
        );
        let r = &g.rules[0];
        assert_eq!(r.selector.as_str(), "m{a=\"b\"}");
        assert_eq!(r.by, None);
        assert_eq!(r.min_samples, 20);
        assert_eq!(
            (r.for_, r.keep_firing_for),
            (Duration::ZERO, Duration::ZERO)
        );
        let labels: Vec<(&str, &str)> = r
            .labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(labels, [("team", "risk"), ("tier", "two")]);
        assert_eq!(
            r.annotations.get("summary").map(String::as_str),
            Some("D={{ $value }}")
        );
        assert_eq!(
            r.detector,
            DetectorSpec::Ks(KsSpec {
                test: ValueTest::Ks {
                    alternative: Alternative::TwoSided,
                    method: Method::Auto,
                },
                reference: ReferenceWindow::Preceding(100),
                current: CurrentWindow::Duration(Duration::from_secs(600)),
                smaller: vec![],
                level: Level::default(),
                correction: Correction::None,
                statistic: None,
                threshold: None,
            })
        );
        let e = &g.rules[1];
        // ceil(ln 0.05 / ln 0.5) = 5: the first sample weighs under 5 % from then on.
        assert_eq!(e.min_samples, 5);
        assert_eq!(e.by, Some(vec!["model".to_string()]));
        assert_eq!(
            e.detector,
            DetectorSpec::Ema(EmaSpec {
                smoothing: 0.5,
                bound: EmaBound::Above(2.0),
                warning: None
            })
        );
        assert_eq!(
            (groups[1].interval, groups[1].rules.len()),
            (Duration::from_secs(60), 0)
        );
    }

    #[test]
    fn false_alarms_scope_correction_and_share() {
        let groups = ok(&ks(concat!(
            "    false_alarms: 2/7d\n",
            "    false_alarms_scope: rule\n",
            "    correction: bh\n",
            "    share: 0.3\n",
        )));
        let r = &groups[0].rules[0];
        let DetectorSpec::Ks(spec) = &r.detector else {
            panic!("{r:?}")
        };
        assert_eq!(
            spec.level,
            Level::Budget {
                false_alarms: FalseAlarms {
                    events: 2.0,
                    period: Duration::from_secs(7 * 86_400)
                },
                scope: Scope::Rule
            }
        );
        assert_eq!((spec.correction, r.share), (Correction::Bh, Some(0.3)));
    }

    #[test]
    fn bad_budgets_are_named() {
        errors(
            &ks("    false_alarms: 1/30\n    correction: holm\n    share: 1.5\n"),
            &[
                "9:19: false_alarms: expected EVENTS/PERIOD with a number of events above 0 and at most 1000000 and a duration, like 1/30d, got \"1/30\"",
                "10:17: correction: unknown correction \"holm\" (expected none, bonferroni or bh)",
                "11:12: share: must be greater than 0 and at most 1, got 1.5",
            ],
        );
        errors(
            &ks("    alpha: 0.05\n    false_alarms: 1/30d\n"),
            &["10:5: false_alarms: not valid together with alpha (alpha is a level as written, false_alarms a budget to calibrate to)"],
        );
        errors(
            &ks("    false_alarms_scope: everything\n"),
            &["9:25: false_alarms_scope: unknown scope \"everything\" (expected series or rule)"],
        );
    }

    #[test]
    fn cvm_and_anderson_rules_take_the_raw_value_keys_but_not_ks_only_ones() {
        let rule = |detector: &str, extra: &str| {
            format!(
                "groups:\n- name: g\n  rules:\n  - name: r\n    detector: {detector}\n    series: m\n    reference: {{first: 100}}\n    current: {{last: 50}}\n{extra}"
            )
        };
        for (name, test) in [("cvm", ValueTest::Cvm), ("anderson", ValueTest::Anderson)] {
            let groups = ok(&rule(name, "    statistic: 2.5\n    correction: bh\n"));
            let DetectorSpec::Ks(spec) = &groups[0].rules[0].detector else {
                panic!("{groups:?}")
            };
            assert_eq!((spec.test, spec.statistic), (test, Some(2.5)));
            assert_eq!(groups[0].rules[0].detector.name(), name);
            errors(
                &rule(name, "    alternative: less\n"),
                &[&format!(
                    "9:5: key \"alternative\" is not valid for detector {name}"
                )],
            );
        }
        errors(
            &rule("psi2", ""),
            &["5:15: unknown detector \"psi2\" (expected ks, cvm, anderson, wasserstein, energy, chi2, gtest, psi, jensenshannon, hellinger, ema or cusum)"],
        );
    }

    #[test]
    fn raw_value_rules_take_references_in_time() {
        let raw = |reference: &str| {
            format!(
                "groups:\n- name: g\n  rules:\n  - name: r\n    detector: cvm\n    series: m\n    reference: {reference}\n    current: {{duration: 1h}}\n"
            )
        };
        let g = ok(&raw("{offset: 7d, duration: 1h}"));
        let DetectorSpec::Ks(k) = &g[0].rules[0].detector else {
            panic!("{:?}", g[0].rules[0].detector)
        };
        assert_eq!(
            k.reference,
            ReferenceWindow::Offset {
                offset: Duration::from_secs(7 * 86_400),
                duration: Duration::from_secs(3600)
            }
        );
        let g = ok(&raw(
            "{range: {start: '2026-11-01T00:00:00Z', end: '2026-11-02T00:00:00Z'}}",
        ));
        let DetectorSpec::Ks(k) = &g[0].rules[0].detector else {
            panic!("{:?}", g[0].rules[0].detector)
        };
        assert_eq!(
            k.reference,
            ReferenceWindow::Range {
                start_ms: 1_793_491_200_000,
                end_ms: 1_793_577_600_000
            }
        );
        errors(
            &raw("{offset: 7d}"),
            &["7:17: reference: expected one of {first: 1000}, {preceding: 1000}, {file: values.txt}, {range: {start: RFC3339, end: RFC3339}} or {offset: 7d, duration: 1h}"],
        );
        errors(
            &raw("{range: {start: '2026-11-02T00:00:00Z', end: '2026-11-01T00:00:00Z'}}"),
            &["7:56: reference.range: end must be after start"],
        );
        errors(
            &raw("{first: 100, offset: 1d, duration: 1h}"),
            &["7:17: reference: expected one of {first: 1000}, {preceding: 1000}, {file: values.txt}, {range: {start: RFC3339, end: RFC3339}} or {offset: 7d, duration: 1h}"],
        );
    }

    #[test]
    fn histogram_and_categories_rules() {
        let g = ok(concat!(
            "groups:\n- name: g\n  rules:\n",
            "  - name: scores\n    detector: chi2\n",
            "    histogram: 'model_prediction_score{model=\"fraud\"}'\n",
            "    reference: {first: 1h}\n    current: {duration: 30m}\n",
            "  - name: mix\n    detector: jensenshannon\n    base: e\n    threshold: 0.1\n",
            "    categories: model_predictions_total\n    category_label: class\n",
            "    reference: {offset: 7d, duration: 1h}\n    current: {duration: 1h}\n",
            "  - name: pinned\n    detector: ks\n    histogram: latency_seconds_bucket\n",
            "    reference: {range: {start: '2026-11-01T00:00:00Z', end: '2026-11-02T00:00:00Z'}}\n",
            "    current: {duration: 1h}\n",
            "  - name: binned\n    detector: psi\n    threshold: 0.2\n    bins: 20\n",
            "    series: feature_value\n    reference: {first: 1000}\n    current: {last: 500}\n",
        ));
        let rules = &g[0].rules;
        assert_eq!(
            rules[0].selector.as_str(),
            "model_prediction_score_bucket{model=\"fraud\"}"
        );
        let DetectorSpec::Counts(c) = &rules[0].detector else {
            panic!("{:?}", rules[0].detector)
        };
        assert_eq!(
            (c.kind, c.bin_label.as_str(), c.test),
            (BinKind::Edges, "le", BinnedTest::Chi2)
        );
        assert_eq!(c.reference, TimeReference::First(Duration::from_secs(3600)));
        assert_eq!(c.current, Duration::from_secs(1800));
        let DetectorSpec::Counts(c) = &rules[1].detector else {
            panic!()
        };
        assert_eq!(c.test, BinnedTest::JensenShannon(Base::Natural));
        assert_eq!(c.threshold, Some(0.1));
        assert_eq!(c.bin_label, "class");
        assert_eq!(rules[2].selector.as_str(), "latency_seconds_bucket");
        let DetectorSpec::Counts(c) = &rules[2].detector else {
            panic!()
        };
        assert_eq!(
            c.reference,
            TimeReference::Range {
                start_ms: 1_793_491_200_000,
                end_ms: 1_793_577_600_000
            }
        );
        let DetectorSpec::Ks(k) = &rules[3].detector else {
            panic!()
        };
        assert_eq!(
            k.test,
            ValueTest::Binned {
                test: BinnedTest::Psi,
                bins: 20
            }
        );
        assert_eq!(k.threshold, Some(0.2));
    }

    #[test]
    fn histogram_and_categories_errors() {
        let rule = |body: &str| format!("groups:\n- name: g\n  rules:\n  - name: r\n{body}");
        errors(
            &rule("    detector: chi2\n    histogram: m\n    series: m\n    reference: {first: 1h}\n    current: {duration: 1h}\n"),
            &["6:5: only one of series, histogram or categories may be set"],
        );
        errors(
            &rule("    detector: chi2\n    categories: m\n    reference: {first: 1h}\n    current: {duration: 1h}\n"),
            &["4:5: missing required key \"category_label\" in categories rule"],
        );
        errors(
            &rule("    detector: cvm\n    histogram: m\n    reference: {first: 1h}\n    current: {duration: 1h}\n"),
            &["5:15: detector cvm takes raw values (series:); a histogram or categories rule takes ks, chi2, gtest, psi, jensenshannon or hellinger"],
        );
        errors(
            &rule("    detector: chi2\n    histogram: '{__name__=\"m\"}'\n    reference: {first: 1h}\n    current: {last: 10}\n"),
            &[
                "6:16: histogram: name the histogram before the braces, e.g. 'model_prediction_score{model=\"fraud\"}'",
                "8:15: last is not supported: a histogram or categories window is a span of time; use current: {duration: 30m}",
            ],
        );
        errors(
            &rule("    detector: gtest\n    histogram: m\n    reference: {offset: 10m, duration: 1h}\n    current: {duration: 1h}\n"),
            &["7:17: reference.offset: must be at least current.duration, so the two windows do not overlap"],
        );
        errors(
            &rule("    detector: chi2\n    histogram: m\n    bins: 5\n    reference: {range: {start: '2026-11-02T00:00:00Z', end: yesterday}}\n    current: {duration: 1h}\n"),
            &[
                "7:5: bins: a histogram or categories rule tests the buckets or categories it reads; bins is for raw values (series:)",
                "8:61: reference.range.end: \"yesterday\" is not an RFC 3339 time like 2026-11-01T00:00:00Z",
            ],
        );
    }

    #[test]
    fn cusum_and_control_limit_rules() {
        let cusum = |extra: &str| {
            format!("groups:\n- name: g\n  rules:\n  - name: r\n    detector: cusum\n    series: m\n{extra}")
        };
        let groups = ok(&cusum(
            "    target: 0.9\n    sd: 0.02\n    k: 1\n    run_length: 1000\n    side: above\n",
        ));
        let DetectorSpec::Cusum(spec) = groups[0].rules[0].detector else {
            panic!("{groups:?}")
        };
        assert_eq!(
            spec.baseline,
            Baseline::Given {
                mean: 0.9,
                sd: 0.02
            }
        );
        assert_eq!(
            (spec.k, spec.side, spec.run_length),
            (1.0, Side::Above, 1000.0)
        );
        assert!((control::cusum_arl(1.0, spec.h, Side::Above) - 1000.0).abs() < 1.0);
        errors(
            &cusum("    target: 0.9\n"),
            &["4:5: cusum rule needs either \"baseline\" (samples to learn the mean and sd from) or both \"target\" and \"sd\""],
        );
        errors(
            &cusum("    baseline: 10\n    smoothing: 0.2\n    side: up\n"),
            &[
                "8:5: key \"smoothing\" is not valid for detector cusum",
                "9:11: side: unknown side \"up\" (expected below, above or both)",
            ],
        );
        let groups = ok(&ema(
            "    smoothing: 0.2\n    control_limits: {baseline: 300}\n",
        ));
        let DetectorSpec::Ema(spec) = &groups[0].rules[0].detector else {
            panic!("{groups:?}")
        };
        let EmaBound::Control(limits) = spec.bound else {
            panic!("{spec:?}")
        };
        assert_eq!((limits.baseline, limits.side), (300, Side::Both));
        assert!((control::ewma_arl(0.2, limits.l, Side::Both) - 100_000.0).abs() < 1000.0);
        errors(
            &ema("    smoothing: 0.2\n    below: 0.8\n    control_limits: {baseline: 300}\n"),
            &["9:5: control_limits: not valid together with below or above (the limits are learned)"],
        );
    }

    #[test]
    fn budgets_and_charts_that_cannot_be_met_are_errors() {
        // Regressions: a huge budget printed 308 digits; a tiny smoothing gave a limit of 0.1
        // (the bisection's floor), a chart that alarms at once.
        let groups = parse(&ks("    false_alarms: 1e308/1s\n")).unwrap_err();
        assert!(groups[0].message.contains("at most 1000000"), "{groups:?}");
        let err = parse(&ema(
            "    smoothing: 1e-300\n    control_limits: {baseline: 3, run_length: 1000000000}\n",
        ))
        .unwrap_err();
        assert!(
            err[0]
                .message
                .starts_with("control_limits: no EWMA limit gives"),
            "{err:?}"
        );
        let err = parse(
            "groups:\n- name: g\n  rules:\n  - name: r\n    detector: cusum\n    series: m\n    baseline: 5\n    k: 5\n    run_length: 1000000000\n"
        )
        .unwrap_err();
        assert!(
            err[0]
                .message
                .starts_with("cusum rule: no decision interval"),
            "{err:?}"
        );
    }

    #[test]
    fn ema_min_samples_default_follows_the_smoothing() {
        assert_eq!(ema_min_samples(1.0), 1);
        assert_eq!(ema_min_samples(0.5), 5);
        assert_eq!(ema_min_samples(0.2), 14);
        assert_eq!(ema_min_samples(0.05), 59);
        assert_eq!(ema_min_samples(1e-300), MAX_WINDOW);
    }

    #[test]
    fn every_ks_key() {
        let groups = ok(&ks(concat!(
            "    alpha: 0.01\n",
            "    statistic: 0.3\n",
            "    alternative: less\n",
            "    method: asymp\n",
            "    min_samples: 50\n",
            "    for: 5m\n",
            "    keep_firing_for: 1h\n",
            "    webhooks: [retrain, page]\n",
        )));
        let r = &groups[0].rules[0];
        let DetectorSpec::Ks(spec) = &r.detector else {
            panic!("{r:?}")
        };
        assert_eq!(
            (spec.level, spec.statistic, spec.correction),
            (Level::Alpha(0.01), Some(0.3), Correction::None)
        );
        assert_eq!(
            spec.test,
            ValueTest::Ks {
                alternative: Alternative::Less,
                method: Method::Asymp
            }
        );
        assert_eq!(
            (r.min_samples, r.for_, r.keep_firing_for),
            (50, Duration::from_secs(300), Duration::from_secs(3600))
        );
        assert_eq!(r.webhooks, ["retrain", "page"]);
    }

    #[test]
    fn reference_file_is_read_relative_to_the_rule_file() {
        let text = "groups:\n- name: g\n  rules:\n  - {name: r, detector: ks, series: m, reference: {file: ref/amount.txt}, current: {last: 2}, min_samples: 2}\n";
        let groups = ok(text);
        let DetectorSpec::Ks(spec) = &groups[0].rules[0].detector else {
            panic!()
        };
        let ReferenceWindow::File { path, values } = &spec.reference else {
            panic!("{spec:?}")
        };
        assert_eq!(path, &data_dir().join("ref/amount.txt"));
        assert_eq!(&values[..], &[-7.0, 3.1, 12.5, 40.0, 100.0], "kept sorted");
    }

    #[test]
    fn ema_warning_bands() {
        let groups = ok(&ema(
            "    smoothing: 0.2\n    below: 0.85\n    warning_below: 0.9\n",
        ));
        let DetectorSpec::Ema(spec) = &groups[0].rules[0].detector else {
            panic!()
        };
        assert_eq!(
            (spec.bound, spec.warning),
            (EmaBound::Below(0.85), Some(0.9))
        );
    }

    #[test]
    fn empty_files_have_no_groups() {
        assert_eq!(ok(""), vec![]);
        assert_eq!(ok("# nothing yet\n"), vec![]);
        assert_eq!(ok("groups: []\n"), vec![]);
        assert_eq!(ok("groups:\n"), vec![]);
    }

    #[test]
    fn structure_errors() {
        errors("- a\n", &["1:1: expected a mapping at the top level"]);
        errors("grups: []\n", &["1:1: unknown key \"grups\" in rule file"]);
        errors(
            "groups: {name: g}\n",
            &["1:10: groups: expected a list, got a mapping"],
        );
        errors(
            "groups: [x]\n",
            &["1:10: group: expected a mapping, got \"x\""],
        );
        errors(
            "groups:\n- name: g\n  rules: x\n  limit: 5\n",
            &[
                "3:10: rules: expected a list, got \"x\"",
                "4:3: unknown key \"limit\" in group",
            ],
        );
        errors(
            "groups:\n- interval: 1m\n",
            &["2:3: missing required key \"name\" in group"],
        );
        errors("groups:\n- name: ''\n", &["2:9: name: must not be empty"]);
        errors(
            "groups:\n- name: g\n  interval: 0s\n",
            &["3:13: interval: must be greater than 0s"],
        );
        errors(
            "groups:\n- name: g\n  labels: {ok: x, bad-name: y, 'x': [1]}\n",
            &[
                "3:19: labels: invalid label name \"bad-name\"",
                "3:37: labels.x: expected a string, got a list",
            ],
        );
        errors(
            "groups:\n- name: g\n- name: h\n- name: g\n",
            &["4:9: duplicate group name \"g\" (first defined at r.yml:2:9)"],
        );
        errors(
            "groups:\n- name: g\n  rules: [x]\n",
            &["3:11: rule: expected a mapping, got \"x\""],
        );
        errors(
            "groups:\n- name: g\n  rules:\n  - name: r\n",
            &[
                "4:5: missing required key \"detector\" in rule",
                "4:5: missing required key \"series\" in rule (or histogram, or categories)",
            ],
        );
    }

    #[test]
    fn rule_errors() {
        errors(
            &ks("    alhpa: 0.1\n"),
            &["9:5: unknown key \"alhpa\" in rule"],
        );
        errors(
            &ks("    smoothing: 0.1\n"),
            &["9:5: key \"smoothing\" is not valid for detector ks"],
        );
        errors(
            &ema("    smoothing: 0.1\n    below: 1\n    alpha: 0.1\n"),
            &["9:5: key \"alpha\" is not valid for detector ema"],
        );
        errors(
            "groups:\n- name: g\n  rules:\n  - {name: r, detector: psi, series: m}\n",
            &[
                "4:6: missing required key \"reference\" in psi rule",
                "4:6: missing required key \"current\" in psi rule",
                "4:6: missing required key \"threshold\" in psi rule (psi is a distance without a p-value: drifted when it reaches threshold)",
            ],
        );
        errors(
            "groups:\n- name: g\n  rules:\n  - {name: r, detector: ema, series: m, smoothing: 1, below: 1}\n  - {name: r, detector: ema, series: m, smoothing: 1, below: 1}\n",
            &["5:12: duplicate rule name \"r\" in group \"g\""],
        );
        errors(
            &ks("    by: [model, model, 'a-b', [x]]\n"),
            &[
                "9:17: by: duplicate label \"model\"",
                "9:24: by: invalid label name \"a-b\"",
                "9:31: by: expected a string, got a list",
            ],
        );
        errors(
            &ks("    min_samples: 0\n"),
            &["9:18: min_samples: must be a positive integer, got 0"],
        );
        errors(
            &ks("    min_samples: 2.5\n"),
            &["9:18: min_samples: expected an integer, got \"2.5\""],
        );
        errors(
            &ks("    min_samples: many\n"),
            &["9:18: min_samples: expected a positive integer, got \"many\""],
        );
        errors(
            &ks("    min_samples: '20'\n"),
            &["9:18: min_samples: expected a positive integer, got the quoted string \"20\""],
        );
        errors(
            &ks("    min_samples: 80\n"),
            &["9:18: min_samples: 80 is more than the current window holds (50), so the rule could never decide"],
        );
        errors(
            "groups:\n- name: g\n  rules:\n  - {name: r, detector: ks, series: m, reference: {first: 10}, current: {last: 10}}\n",
            &["4:6: min_samples (default 20 for ks): 20 is more than the reference window holds (10), so the rule could never decide"],
        );
        errors(&ks("    for: 5\n"), &["9:10: for: invalid duration \"5\": missing unit after 5 (units: y, w, d, h, m, s, ms)"]);
        errors(
            &ks("    keep_firing_for: -1m\n"),
            &["9:22: keep_firing_for: invalid duration \"-1m\": durations cannot be negative"],
        );
        errors(
            &ks("    labels: [a]\n"),
            &["9:13: labels: expected a mapping, got a list"],
        );
        errors(
            &ks("    annotations: {summary: 'x {{ $labels.model }} {{ humanise $value }}', ok: '{{ $value | humanize }}'}\n"),
            &["9:54: annotations.summary: function \"humanise\" not defined (functions: humanize, humanizePercentage, humanizeDuration, printf, toUpper, toLower)"],
        );
        errors(
            &ks("    annotations: {summary: \"{{ $value\"}\n"),
            &["9:29: annotations.summary: unclosed \"{{\""],
        );
        errors(
            &ks("    webhooks: [retrain, nope, retrain]\n"),
            &[
                "9:25: unknown webhook \"nope\"",
                "9:31: webhooks: duplicate webhook \"retrain\"",
            ],
        );
    }

    #[test]
    fn series_errors_point_into_the_selector() {
        let rule = |series: &str| {
            format!("groups:\n- name: g\n  rules:\n  - name: r\n    detector: ema\n    smoothing: 1\n    below: 1\n    series: {series}\n")
        };
        errors(
            &rule("'m{a=\"b\",,}'"),
            &["8:22: series: invalid selector: unexpected ',', expected a label name"],
        );
        errors(
            &rule("m{a=~\"(\"}"),
            &["8:18: series: invalid selector: invalid regex \"(\": unclosed group"],
        );
        errors(
            &rule("\"m{a=\\\"x\\\" b}\""),
            &["8:24: series: invalid selector: unexpected 'b', expected \",\" or \"}\""],
        );
        errors(&rule("'{a=\"\"}'"), &["8:14: series: invalid selector: a selector needs a metric name or a matcher that does not match the empty string"]);
        errors(&rule("'rate(m[5m])'"), &["8:18: series: invalid selector: unexpected \"(\": functions are not supported, only a series selector"]);
        errors(
            &rule("[m]"),
            &["8:13: series: expected a string, got a list"],
        );
    }

    #[test]
    fn ks_errors() {
        let rule = |body: &str| {
            format!("groups:\n- name: g\n  rules:\n  - name: r\n    detector: ks\n    series: m\n{body}")
        };
        errors(
            &rule(""),
            &[
                "4:5: missing required key \"reference\" in ks rule",
                "4:5: missing required key \"current\" in ks rule",
            ],
        );
        errors(
            &rule("    reference: 100\n    current: {last: 5}\n"),
            &["7:16: reference: expected a mapping like {first: 1000}, got \"100\""],
        );
        errors(
            &rule("    reference: {}\n    current: {lats: 5}\n"),
            &[
                "7:16: reference: expected one of first, preceding or file, e.g. {first: 1000}",
                "8:15: unknown key \"lats\" in current",
            ],
        );
        errors(
            &rule(
                "    reference: {first: 10, file: x.txt}\n    current: {last: 5, duration: 1m}\n",
            ),
            &[
                "7:28: reference: only one of first, preceding or file may be set",
                "8:24: current: only one of last or duration may be set",
            ],
        );
        errors(
            &rule("    reference: {first: 20000000}\n    current: {duration: 0s}\n"),
            &[
                "7:24: reference.first: must be at most 10000000, got 20000000",
                "8:25: current.duration: must be greater than 0s",
            ],
        );
        errors(
            &rule("    reference: {file: ref/missing.txt}\n    current: {last: 5}\n"),
            &[&format!(
                "7:23: reference.file: cannot read {:?}: no such file",
                data_dir().join("ref/missing.txt").display().to_string()
            )],
        );
        errors(
            &rule("    reference: {file: ref/bad_values.txt}\n    current: {last: 5}\n"),
            &[&format!(
                "7:23: reference.file: {:?} line 4: expected a number, got \"two\"",
                data_dir().join("ref/bad_values.txt").display().to_string()
            )],
        );
        errors(
            &rule("    reference: {first: 10}\n    current: {last: 5}\n    min_samples: 5\n    alpha: 1\n    statistic: -0.1\n    alternative: two_sided\n    method: fast\n"),
            &[
                "10:12: alpha: must be greater than 0 and less than 1, got 1",
                "11:16: statistic: must be between 0 and 1, got -0.1",
                "12:18: alternative: unknown alternative \"two_sided\" (expected two-sided, less or greater)",
                "13:13: method: unknown method \"fast\" (expected auto, exact or asymp)",
            ],
        );
        errors(
            &rule("    reference: {first: 10}\n    current: {last: 5}\n    min_samples: 5\n    alpha: abc\n    statistic: .nan\n"),
            &["10:12: alpha: expected a number, got \"abc\"", "11:16: statistic: must be a finite number, got .nan"],
        );
        errors(
            &rule("    reference: {first: 10}\n    current: {last: 5}\n    min_samples: 5\n    alpha: '0.05'\n"),
            &["10:12: alpha: expected a number, got the quoted string \"0.05\""],
        );
    }

    #[test]
    fn several_current_window_sizes() {
        let rule = |current: &str| {
            format!("groups:\n- name: g\n  rules:\n  - name: r\n    detector: ks\n    series: m\n    reference: {{first: 1000}}\n    current: {current}\n")
        };
        let groups = ok(&rule("{last: [1000, 100, 250]}"));
        let DetectorSpec::Ks(spec) = &groups[0].rules[0].detector else {
            panic!("a ks rule");
        };
        // Sorted; the largest is the current window, the others are tested beside it.
        assert_eq!(spec.current, CurrentWindow::Last(1000));
        assert_eq!(spec.smaller, [100, 250]);
        assert_eq!(spec.sizes(), 3);
        // One size in a list is the one-size form.
        let groups = ok(&rule("{last: [500]}"));
        let DetectorSpec::Ks(spec) = &groups[0].rules[0].detector else {
            panic!("a ks rule");
        };
        assert_eq!(
            (&spec.current, spec.sizes()),
            (&CurrentWindow::Last(500), 1)
        );
        errors(
            &rule("{last: []}"),
            &["8:21: current.last: the list of sizes is empty (give one or more, e.g. [100, 1000])"],
        );
        errors(
            &rule("{last: [100, 0, 250, 100]}"),
            &[
                "8:27: current.last: must be a positive integer, got 0",
                "8:35: current.last: size 100 is listed twice",
            ],
        );
        errors(
            &rule("{last: [100, 20000000]}"),
            &["8:27: current.last: must be at most 10000000, got 20000000"],
        );
        errors(
            &rule("{last: [a]}"),
            &["8:22: current.last: expected a positive integer, got \"a\""],
        );
        let many: Vec<String> = (1..=17).map(|i| (i * 100).to_string()).collect();
        errors(
            &rule(&format!("{{last: [{}]}}", many.join(", "))),
            &["8:21: current.last: 17 sizes is more than 16 (each one divides the level)"],
        );
        errors(
            &rule("{last: [100, 1000]}\n    detector: wasserstein\n    threshold: 0.1").replace("    detector: ks\n", ""),
            &["7:15: current.last: several sizes need a test with a p-value (they split its level); wasserstein is a distance: give one size"],
        );
        // min_samples is checked against the smallest size.
        errors(
            &format!("{}    min_samples: 50\n", rule("{last: [30, 100]}")),
            &["9:18: min_samples: 50 is more than the current window holds (30), so the rule could never decide"],
        );
    }

    #[test]
    fn ema_errors() {
        errors(
            &ema(""),
            &[
                "4:5: missing required key \"smoothing\" in ema rule",
                "4:5: ema rule needs one of \"below\", \"above\" or \"control_limits\"",
            ],
        );
        errors(
            &ema("    smoothing: 0\n    below: 1\n"),
            &["7:16: smoothing: must be greater than 0 and at most 1, got 0"],
        );
        errors(
            &ema("    smoothing: 1\n    below: 1\n    above: 2\n"),
            &["9:5: only one of \"below\" and \"above\" may be set"],
        );
        errors(
            &ema(
                "    smoothing: 1\n    below: 0.9\n    warning_below: 0.8\n    warning_above: 1\n",
            ),
            &[
                "9:20: warning_below: must be greater than below (0.9), got 0.8",
                "10:5: warning_above: only valid together with \"above\"",
            ],
        );
        errors(
            &ema("    smoothing: 1\n    above: 0.5\n    warning_above: 0.5\n"),
            &["9:20: warning_above: must be less than above (0.5), got 0.5"],
        );
    }

    #[test]
    fn yaml_errors_are_one_diagnostic() {
        errors("groups:\n  - name: g\n   rules: []\n", &["3:9: invalid YAML: while parsing a block collection, did not find expected '-' indicator"]);
        errors(
            "groups:\n- name: g\n  name: h\n",
            &["3:3: duplicate key \"name\" (first at line 2, column 3)"],
        );
    }

    #[test]
    fn reserved_label_names_are_errors() {
        errors(
            "groups:\n- name: g\n  labels: {group: a, __g: b, ok: c}\n",
            &[
                "3:12: labels: label name \"group\" is reserved: driftgauge sets it",
                "3:22: labels: label name \"__g\": label names starting with \"__\" are reserved",
            ],
        );
        errors(
            &ks("    labels: {rule: a, __name__: b, _ok: c}\n"),
            &[
                "9:14: labels: label name \"rule\" is reserved: driftgauge sets it",
                "9:23: labels: label name \"__name__\": label names starting with \"__\" are reserved",
            ],
        );
    }

    #[test]
    fn the_embedded_default_says_it_has_no_webhooks() {
        let dir = data_dir();
        let none = BTreeSet::new();
        let ctx = RuleContext {
            base_dir: &dir,
            default_interval: Duration::from_secs(15),
            webhooks: Some(&none),
        };
        let checks = FileChecks {
            embedded_default: true,
            ..FileChecks::default()
        };
        let parsed = parse_file(&ks("    webhooks: [retrain]\n"), "r.yml", &ctx, checks);
        let got: Vec<String> = parsed.diags.iter().map(|d| d.to_string()).collect();
        assert_eq!(
            got,
            ["r.yml:9:16: unknown webhook \"retrain\": the embedded default config defines no webhooks; pass --config.file"]
        );
    }

    #[test]
    fn a_reference_past_the_window_cap_is_refused_before_parsing() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("ref.txt"), "1\n2\n# c\n\n3\nnot parsed\n").expect("write");
        let ctx = RuleContext {
            base_dir: dir.path(),
            default_interval: Duration::from_secs(15),
            webhooks: None,
        };
        let text = "groups:\n- name: g\n  rules:\n  - {name: r, detector: ks, series: m, reference: {file: ref.txt}, current: {last: 2}, min_samples: 1}\n";
        let parse_with = |max| {
            let checks = FileChecks {
                cap: WindowCap {
                    max,
                    from_limits: true,
                },
                ..FileChecks::default()
            };
            let parsed = parse_file(text, "r.yml", &ctx, checks);
            parsed
                .diags
                .iter()
                .map(|d| d.message.clone())
                .collect::<Vec<_>>()
        };
        let shown = format!("{:?}", dir.path().join("ref.txt").display().to_string());
        assert_eq!(
            parse_with(3),
            [format!(
                "reference.file: {shown} holds more values than limits.max_window_values (3)"
            )]
        );
        assert_eq!(
            parse_with(4),
            [format!(
                "reference.file: {shown} line 6: expected a number, got \"not parsed\""
            )]
        );
    }

    #[test]
    fn long_input_is_quoted_as_an_excerpt() {
        let long = "x".repeat(100_000);
        let cut = format!("\"{}\"…", "x".repeat(crate::formats::EXCERPT_CHARS));
        errors(
            // A plain key is at most 1024 characters in YAML; an explicit one has no bound.
            &ks(&format!("    ? {long}\n    : 1\n    alternative: {long}\n    for: 1{long}\n")),
            &[
                &format!("9:7: unknown key {cut} in rule"),
                &format!("11:18: alternative: unknown alternative {cut} (expected two-sided, less or greater)"),
                &format!("12:10: for: invalid duration \"1{}\"…: unknown unit {cut} (units: y, w, d, h, m, s, ms)", "x".repeat(63)),
            ],
        );
        let selector = format!("'m{{a=~\"({long}\"}}'");
        let rule = format!("groups:\n- name: g\n  rules:\n  - name: r\n    detector: ema\n    smoothing: 1\n    below: 1\n    series: {selector}\n");
        let got = parse(&rule).expect_err("bad selector");
        assert_eq!(got.len(), 1);
        assert!(got[0].message.len() < 300, "{}", got[0].message);
    }

    #[test]
    fn at_most_a_hundred_diagnostics_a_file() {
        let mut text = String::from("groups:\n");
        for i in 0..1000 {
            text.push_str(&format!("- name: g{i}\n  nope: 1\n"));
        }
        let got = parse(&text).expect_err("bad keys");
        assert_eq!(got.len(), diag::MAX_PER_FILE + 1);
        assert_eq!(
            got[0].to_string(),
            "r.yml:3:3: unknown key \"nope\" in group"
        );
        assert_eq!(
            got[diag::MAX_PER_FILE].to_string(),
            "… 900 more errors in r.yml"
        );
        // Duplicate group names count against the same cap.
        let dups = "groups:\n".to_string() + &"- name: g\n".repeat(500);
        let got = parse(&dups).expect_err("duplicates");
        assert_eq!(got.len(), diag::MAX_PER_FILE + 1);
        assert_eq!(
            got[diag::MAX_PER_FILE].to_string(),
            "… 399 more errors in r.yml"
        );
    }

    #[test]
    fn webhooks_are_not_checked_without_a_list() {
        let dir = data_dir();
        let ctx = RuleContext {
            base_dir: &dir,
            default_interval: Duration::from_secs(15),
            webhooks: None,
        };
        let groups =
            parse_rule_file(&ks("    webhooks: [anything]\n"), "r.yml", &ctx).expect("valid");
        assert_eq!(groups[0].rules[0].webhooks, ["anything"]);
        assert_eq!(groups[0].interval, Duration::from_secs(15));
    }
}
