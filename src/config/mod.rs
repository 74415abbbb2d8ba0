//! Rules and service config: model, parsing with positions, validation.
//!
//! Two stages, every error at once: `marked_yaml` gives a node tree with positions (`yaml`),
//! then `parse` (rule files) and `config` (service config) walk it, collect a [`Diagnostic`]
//! per problem and build the validated `model` types only when a file is clean. [`load`]
//! (serve, reload) and [`check`] (`driftgauge check`) put the files together and run the
//! cross-file checks (group names, webhook names, window sizes against `limits`). `web`
//! parses `--web.config.file` with the same walker.
//!
//! Why marked_yaml: serde_yaml is deprecated, stops at the first error and drops positions;
//! marked_yaml keeps a span on every node, rejects duplicate keys and keeps quoted scalars
//! apart from plain ones, which is all a hand-written validating walk needs.

pub mod counts;
pub mod diag;
pub mod duration;
pub mod files;
pub mod model;
pub mod parse;
pub mod selector;
pub mod service;
pub mod template;
pub mod unittest;
pub mod watch;
pub mod web;
pub(crate) mod yaml;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

pub use diag::{Diagnostic, LoadError};
pub use duration::{format_duration, parse_duration, DurationError};
pub use parse::{parse_rule_file, RuleContext};
pub use selector::{Selector, SelectorError};
pub use service::{parse_config, FsSecrets, SecretSource};
pub use template::{expand, validate_template, TemplateError};

use model::{Config, RuleSet};
use parse::{FileChecks, GroupName, WindowCap};

/// The config file `check` uses when given neither a config nor rule files, if it exists.
pub const DEFAULT_CONFIG_FILE: &str = "driftgauge.yml";

/// A loaded, validated config and rule set.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    pub rules: RuleSet,
    /// `None`: the embedded default config.
    pub config_file: Option<PathBuf>,
    /// Every rule file read, in load order.
    pub rule_files: Vec<PathBuf>,
}

/// What `driftgauge check` found in valid files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckSummary {
    pub files: usize,
    pub groups: usize,
    pub rules: usize,
    /// Rules that name webhooks whose names were not checked (rule files checked alone,
    /// without a config): `check` says so.
    pub unchecked_webhooks: usize,
    /// One line per rule: the level its tests are held to and what it implies.
    pub calibration: Vec<String>,
}

/// Loads the config and its rule files (serve, reload). `None`: the embedded default config
/// (`rule_files: ["rules/*.yml"]` relative to the working directory, no webhooks), so a rule
/// naming a webhook is an error there. Reports every error of every file at once (at most
/// [`diag::MAX_PER_FILE`] a file).
pub fn load(config_file: Option<&Path>) -> Result<Loaded, LoadError> {
    run(Plan {
        config_file,
        extra: &[],
        use_config: true,
        ..Plan::default()
    })
}

/// `driftgauge test rules`: `rule_files` of a test file, groups without `interval` at
/// `default_interval`. With `config_file`, its webhooks (checked against the rules) and
/// limits, but not its own `rule_files`; without, no config at all (webhook names not
/// checked).
pub fn load_for_test(
    config_file: Option<&Path>,
    rule_files: &[PathBuf],
    default_interval: std::time::Duration,
) -> Result<Loaded, LoadError> {
    run(Plan {
        config_file,
        extra: rule_files,
        use_config: config_file.is_some(),
        config_globs: false,
        default_interval: Some(default_interval),
    })
}

/// `driftgauge check`. Rule files and no config: those files alone, webhook names not checked
/// (the summary counts the rules that name one). A config: the config, its rule files and
/// the given ones, webhook names checked. Neither: `./driftgauge.yml` if present, else the
/// embedded default (as [`load`]`(None)`, where naming a webhook is an error).
pub fn check(
    config_file: Option<&Path>,
    rule_files: &[PathBuf],
) -> Result<CheckSummary, LoadError> {
    let default_file = Path::new(DEFAULT_CONFIG_FILE);
    let plan = match (config_file, rule_files.is_empty()) {
        (Some(c), _) => Plan {
            config_file: Some(c),
            extra: rule_files,
            use_config: true,
            ..Plan::default()
        },
        (None, false) => Plan {
            config_file: None,
            extra: rule_files,
            use_config: false,
            ..Plan::default()
        },
        (None, true) => Plan {
            config_file: default_file.is_file().then_some(default_file),
            extra: &[],
            use_config: true,
            ..Plan::default()
        },
    };
    let webhooks_checked = plan.use_config;
    let loaded = run(plan)?;
    let rules = || loaded.rules.groups.iter().flat_map(|g| &g.rules);
    Ok(CheckSummary {
        files: loaded.rule_files.len(),
        groups: loaded.rules.groups.len(),
        rules: rules().count(),
        unchecked_webhooks: if webhooks_checked {
            0
        } else {
            rules().filter(|r| !r.webhooks.is_empty()).count()
        },
        calibration: loaded
            .rules
            .groups
            .iter()
            .flat_map(|g| g.rules.iter().map(move |r| calibration(g, r)))
            .collect(),
    })
}

/// What a rule's level means, for `check`: the p-value threshold of one test, the false
/// alarms per series-day it allows (the union bound of [`crate::detect::budget`]), and for KS
/// the distance it needs and the normal mean shifts that reach it.
pub fn calibration(group: &model::Group, rule: &model::Rule) -> String {
    use crate::detect::budget;
    use model::{CurrentWindow, DetectorSpec, ReferenceWindow};
    let name = format!("{}/{}", group.name, rule.name);
    let distance = |t: Option<f64>| {
        format!(
            "{name}: {} is a distance without a p-value: drifted when it reaches threshold {} (not calibrated to a false-alarm budget)",
            rule.detector.name(),
            t.unwrap_or(f64::NAN)
        )
    };
    let spec = match &rule.detector {
        DetectorSpec::Ks(spec) if spec.threshold.is_some() => return distance(spec.threshold),
        DetectorSpec::Ks(spec) => spec,
        DetectorSpec::Counts(c) if c.threshold.is_some() => return distance(c.threshold),
        DetectorSpec::Counts(c) => return level_line(&name, &c.level, group.interval),
        DetectorSpec::Ema(ema) => {
            return match ema.bound {
                crate::detect::ema::EmaBound::Control(c) => format!(
                    "{name}: ema control limits at {:.3} EWMA standard deviations ({}) from the mean of the first {} samples: an in-control run of {} samples between false alarms on average",
                    c.l,
                    c.side.as_str(),
                    c.baseline,
                    c.run_length
                ),
                _ => format!(
                    "{name}: ema, min_samples {}: drifted whenever the EMA is past its bound (no calibration; control_limits calibrates)",
                    rule.min_samples
                ),
            }
        }
        DetectorSpec::Cusum(c) => {
            return format!(
                "{name}: cusum k {} h {:.3} ({}): an in-control run of {} samples between false alarms on average",
                c.k,
                c.h,
                c.side.as_str(),
                c.run_length
            )
        }
    };
    let level = spec.level.per_test(group.interval, 1);
    let mut line = level_line(&name, &spec.level, group.interval);
    // Several current-window sizes split the level evenly (Bonferroni).
    let sizes = spec.sizes();
    let level = level / sizes as f64;
    if sizes > 1 {
        let list: Vec<String> = spec
            .smaller
            .iter()
            .chain(match &spec.current {
                CurrentWindow::Last(m) => Some(m),
                CurrentWindow::Duration(_) => None,
            })
            .map(|m| m.to_string())
            .collect();
        line.push_str(&format!(
            "; {sizes} current-window sizes ({}) share it (Bonferroni): each size at p <= {level:.3e}, \
             drifted when any size's test is",
            list.join(", ")
        ));
    }
    let (n, n_note) = match &spec.reference {
        ReferenceWindow::First(n) | ReferenceWindow::Preceding(n) => (*n, ""),
        ReferenceWindow::File { values, .. } => (values.len(), ""),
        ReferenceWindow::Range { .. } | ReferenceWindow::Offset { .. } => {
            (10_000, " (for a reference of 10000 values)")
        }
    };
    let (largest, m_note) = match spec.current {
        CurrentWindow::Last(m) => (m, n_note),
        CurrentWindow::Duration(_) => (
            1000,
            if n_note.is_empty() {
                " (for a current window of 1000 values)"
            } else {
                " (for a reference of 10000 values and a current window of 1000)"
            },
        ),
    };
    let windows: Vec<usize> = spec.smaller.iter().copied().chain([largest]).collect();
    // The distance each size needs (KS only), after the `statistic:` floor.
    let needs: Vec<(usize, f64)> = windows
        .iter()
        .map(|&m| {
            let d = match spec.test {
                model::ValueTest::Ks { .. } => budget::ks_critical_distance(n, m, level),
                _ => f64::NAN,
            };
            (m, spec.statistic.map_or(d, |s| s.max(d)))
        })
        .filter(|(_, d)| d.is_finite() && *d < 1.0)
        .collect();
    if needs.is_empty() {
        return line;
    }
    let shown: Vec<String> = needs
        .iter()
        .map(|(m, d)| {
            if sizes > 1 {
                format!("{d:.3} at {m}")
            } else {
                format!("{d:.3}")
            }
        })
        .collect();
    line.push_str(&format!("; needs D >= {}{m_note}", shown.join(", ")));
    for shift in [1.0, 0.5, 0.25] {
        let full = 2.0 * budget::normal_cdf(shift / 2.0) - 1.0;
        // The size that reaches its distance first, counting the new values it needs.
        let fastest = needs
            .iter()
            .filter(|(_, d)| full > *d)
            .map(|(m, d)| ((d / full * *m as f64).ceil(), *m))
            .min_by(|a, b| a.0.total_cmp(&b.0));
        match fastest {
            Some((after, m)) if sizes > 1 => line.push_str(&format!(
                ", a {shift} sd shift after about {after} new values (at {m})"
            )),
            Some((after, _)) => line.push_str(&format!(
                ", a {shift} sd shift after about {after} new values"
            )),
            None => {
                line.push_str(&format!(", a {shift} sd shift never (window too small)"));
                break;
            }
        }
    }
    line
}

/// The level line of `check` for a rule named `name` tested every `interval` at `level`.
fn level_line(
    name: &str,
    level: &crate::detect::budget::Level,
    interval: std::time::Duration,
) -> String {
    use crate::detect::budget::{self, Level, Scope};
    let every = format_duration(interval);
    let p = level.per_test(interval, 1);
    let per_day = budget::false_alarms_per_day(p, interval);
    match *level {
        Level::Alpha(a) => format!(
            "{name}: alpha {a} tested every {every}: up to {per_day:.0} false drifted events per series-day \
             (one test per evaluation; overlapping windows give somewhat fewer). \
             Drop alpha to calibrate to false_alarms (default 1/30d)"
        ),
        Level::Budget {
            false_alarms,
            scope: Scope::Series,
        } => format!(
            "{name}: false_alarms {false_alarms} per series: each test at p <= {p:.3e} (one per {every}), \
             at most {per_day:.4} false drifted events per series-day"
        ),
        Level::Budget {
            false_alarms,
            scope: Scope::Rule,
        } => format!(
            "{name}: false_alarms {false_alarms} for the whole rule: each test at p <= {p:.3e} \
             divided by the series tested at that evaluation (one per {every})"
        ),
    }
}

struct Plan<'a> {
    /// `None` with `use_config`: the embedded default.
    config_file: Option<&'a Path>,
    /// Rule files given on the command line, after the config's.
    extra: &'a [PathBuf],
    /// `false`: only `extra`, no config at all (no globs, no webhook or limit checks).
    use_config: bool,
    /// Read the config's `rule_files` (not for `test rules`, whose test file names them).
    config_globs: bool,
    /// Replaces the config's `global.evaluation_interval` (`test rules`).
    default_interval: Option<std::time::Duration>,
}

impl Default for Plan<'_> {
    fn default() -> Self {
        Plan {
            config_file: None,
            extra: &[],
            use_config: true,
            config_globs: true,
            default_interval: None,
        }
    }
}

fn run(plan: Plan) -> Result<Loaded, LoadError> {
    // Diagnostics per file, in the order files are read, with the number each left out.
    let mut diags: Vec<(Vec<Diagnostic>, usize)> = Vec::new();
    let mut config = Config::default();
    let mut webhook_names = BTreeSet::new();
    let mut rule_file_markers = vec![None];
    // The embedded default has no webhooks: rules are checked against that empty list.
    let embedded_default = plan.use_config && plan.config_file.is_none();
    let mut check_webhooks = embedded_default;
    let mut cap = WindowCap::default();
    // An unreadable config names no rule files (not even the default ones).
    let mut expand_globs = plan.use_config && plan.config_globs;

    if let Some(path) = plan.config_file {
        let origin = path.display().to_string();
        match diag::read_text(path, diag::MAX_TEXT_FILE) {
            Ok(text) => {
                let base_dir = path.parent().unwrap_or(Path::new(""));
                let parsed = service::parse_partial(&text, &origin, base_dir, &FsSecrets);
                config = parsed.config;
                webhook_names = parsed.webhook_names;
                rule_file_markers = parsed.rule_file_markers;
                diags.push((parsed.diags, parsed.hidden));
                check_webhooks = true;
            }
            Err(e) => {
                diags.push((
                    vec![Diagnostic::whole_file(
                        &origin,
                        format!("cannot read config file: {}", diag::io_reason(&e)),
                    )],
                    0,
                ));
                expand_globs = false;
            }
        }
    }
    if let Some(d) = plan.default_interval {
        config.evaluation_interval = d;
    }
    if plan.use_config {
        cap = WindowCap {
            max: config.limits.max_window_values,
            from_limits: true,
        };
    }

    let mut files: Vec<PathBuf> = Vec::new();
    if expand_globs {
        let config_origin = plan.config_file.map(|p| p.display().to_string());
        for (i, pattern) in config.rule_files.iter().enumerate() {
            let at = |message: String| {
                let (file, line, col) =
                    match (&config_origin, rule_file_markers.get(i).copied().flatten()) {
                        (Some(f), Some(m)) => (f.clone(), m.line(), m.column()),
                        (Some(f), None) => (f.clone(), 1, 1),
                        (None, _) => (pattern.clone(), 1, 1),
                    };
                Diagnostic::new(file, line, col, message)
            };
            // Every match is a rule file: one that is not a regular file (a directory, a
            // device, a FIFO) is an error when read, never skipped, so a reload with it keeps
            // the running rules. A pattern that matches nothing names no file (as in
            // Prometheus), even a literal path.
            match glob::glob(pattern) {
                Ok(paths) => {
                    for entry in paths {
                        match entry {
                            Ok(p) => push_unique(&mut files, p),
                            Err(e) => diags.push((
                                vec![at(format!(
                                    "rule_files: cannot read {}: {}",
                                    diag::quote_path(e.path()),
                                    diag::io_reason(e.error())
                                ))],
                                0,
                            )),
                        }
                    }
                }
                Err(e) => diags.push((
                    vec![at(format!(
                        "rule_files: invalid glob {}: {}",
                        crate::formats::excerpt(pattern),
                        e.msg
                    ))],
                    0,
                )),
            }
        }
    }
    for f in plan.extra {
        push_unique(&mut files, f.clone());
    }

    let webhooks = check_webhooks.then_some(&webhook_names);
    let mut rules = RuleSet::default();
    let mut names: Vec<(String, Vec<GroupName>, usize)> = Vec::new();
    for path in &files {
        let origin = path.display().to_string();
        let text = match diag::read_text(path, diag::MAX_TEXT_FILE) {
            Ok(t) => t,
            Err(e) => {
                diags.push((
                    vec![Diagnostic::whole_file(
                        &origin,
                        format!("cannot read rule file: {}", diag::io_reason(&e)),
                    )],
                    0,
                ));
                continue;
            }
        };
        let ctx = RuleContext {
            base_dir: path.parent().unwrap_or(Path::new("")),
            default_interval: config.evaluation_interval,
            webhooks,
        };
        let checks = FileChecks {
            cap,
            embedded_default,
        };
        let parsed = parse::parse_file(&text, &origin, &ctx, checks);
        names.push((origin, parsed.names, diags.len()));
        diags.push((parsed.diags, parsed.hidden));
        rules.groups.extend(parsed.groups);
    }
    let by_file: Vec<(&str, &Vec<GroupName>)> =
        names.iter().map(|(o, n, _)| (o.as_str(), n)).collect();
    parse::duplicate_groups(&by_file, |file, d| {
        let (list, hidden) = &mut diags[names[file].2];
        diag::keep(list, hidden, d);
    });

    let mut all: Vec<Diagnostic> = Vec::new();
    for (mut list, hidden) in diags {
        diag::finish_file(&mut list, hidden);
        all.extend(list);
    }
    if !all.is_empty() {
        return Err(LoadError(all));
    }
    Ok(Loaded {
        config,
        rules,
        config_file: plan.config_file.map(Path::to_path_buf),
        rule_files: files,
    })
}

/// Adds a file unless the same file is already listed (compared after resolving `.`/`..`
/// and links when possible).
fn push_unique(files: &mut Vec<PathBuf>, path: PathBuf) {
    let key = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let k = key(&path);
    if !files.iter().any(|f| key(f) == k) {
        files.push(path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn data(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/check")
            .join(name)
    }

    #[test]
    fn load_reads_the_config_and_its_rule_files() {
        let config = data("good_config.yml");
        let loaded = load(Some(&config)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(loaded.config_file.as_deref(), Some(config.as_path()));
        assert_eq!(loaded.rule_files, [data("good.yml")]);
        assert_eq!(loaded.config.evaluation_interval, Duration::from_secs(30));
        assert!(loaded.config.webhooks.contains_key("retrain-fraud"));
        let groups: Vec<(&str, Duration, usize)> = loaded
            .rules
            .groups
            .iter()
            .map(|g| (g.name.as_str(), g.interval, g.rules.len()))
            .collect();
        // `latency` has no interval: the config's evaluation_interval applies.
        assert_eq!(
            groups,
            [
                ("fraud-model", Duration::from_secs(15), 3),
                ("latency", Duration::from_secs(30), 1)
            ]
        );
        assert_eq!(
            loaded.rules.groups[0].file,
            data("good.yml").display().to_string()
        );
    }

    #[test]
    fn check_counts_files_once() {
        let good = data("good.yml");
        let summary = check(None, &[good.clone(), good.clone()]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((summary.files, summary.groups, summary.rules), (1, 2, 4));
        // Alone, the two rules naming `retrain-fraud` are not checked.
        assert_eq!(summary.unchecked_webhooks, 2);
        assert_eq!(summary.calibration.len(), 4);
        let with_config =
            check(Some(&data("good_config.yml")), &[good]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            with_config,
            CheckSummary {
                unchecked_webhooks: 0,
                ..summary.clone()
            }
        );
    }

    #[test]
    fn errors_of_every_file_in_load_order() {
        let err =
            check(Some(&data("bad_config.yml")), &[data("bad_syntax.yml")]).expect_err("bad files");
        let files: Vec<String> = err.0.iter().map(|d| d.file.clone()).collect();
        let mut order: Vec<String> = files.clone();
        order.dedup();
        let names: Vec<String> = [
            "bad_config.yml",
            "bad_refs.yml",
            "good.yml",
            "bad_syntax.yml",
        ]
        .iter()
        .map(|n| data(n).display().to_string())
        .collect();
        assert_eq!(order, names);
        // Group names are unique across files: reported where the name repeats.
        let dup = err
            .0
            .iter()
            .find(|d| d.file == names[2])
            .expect("a diagnostic in good.yml");
        assert_eq!(
            (dup.line, dup.col, dup.message.clone()),
            (
                3,
                11,
                format!(
                    "duplicate group name \"fraud-model\" (first defined at {}:26:11)",
                    names[1]
                )
            )
        );
    }

    #[test]
    fn rule_files_alone_do_not_check_webhooks_or_limits() {
        // bad_refs.yml names an unknown webhook and a window over the config's limit; alone,
        // neither is an error.
        let err = check(None, &[data("bad_refs.yml")]).expect_err("bad file");
        assert!(
            err.0
                .iter()
                .all(|d| !d.message.contains("webhook") && !d.message.contains("limits")),
            "{err}"
        );
        assert_eq!(err.0.len(), 6, "{err}");
    }

    #[test]
    fn unreadable_config_names_no_rule_files() {
        let err = load(Some(&data("missing_config.yml"))).expect_err("missing");
        assert_eq!(err.0.len(), 1, "{err}");
        assert_eq!(err.0[0].message, "cannot read config file: no such file");
    }

    #[test]
    fn embedded_default_reads_rules_from_the_working_directory() {
        // Cargo runs unit tests from the package root, where `rules/` holds the examples.
        let loaded = load(None).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(loaded.config_file, None);
        assert_eq!(loaded.config.rule_files, ["rules/*.yml"]);
        assert!(loaded.config.webhooks.is_empty());
        assert!(!loaded.rule_files.is_empty());
    }
}
