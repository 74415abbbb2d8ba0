//! Runs rule unit-test files (`driftgauge test rules`, format in `config::unittest`): the real
//! engine, in process, on a simulated clock, with a notifier that records the webhook calls
//! instead of making them. Each test starts a fresh engine at time 0; the i-th value of an
//! input series arrives at `i × interval`; each group evaluates at every multiple of its
//! interval, after the samples of that instant; states are compared at each `eval_time`, and
//! the webhook calls of the whole run with `exp_webhooks`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{format_labels, lock, Engine, Event, Notifier};
use crate::config::model::{Config, RuleSet, WebhookConfig};
use crate::config::unittest::{diagnostic, load_test_file, ExpWebhook, TestFile, TestGroup};
use crate::config::{self, format_duration, Diagnostic, LoadError};
use crate::labels::SeriesSamples;
use crate::telemetry::Telemetry;

/// What a test file came to: one text block per failed check (empty when all passed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileOutcome {
    pub failures: Vec<String>,
}

/// Loads a test file and its rules, and runs every test in it. `Err`: the files are bad (every
/// error at `file:line:col`).
pub fn run_file(path: &Path) -> Result<FileOutcome, LoadError> {
    let file = load_test_file(path)?;
    let loaded = config::load_for_test(
        file.config_file.as_deref(),
        &file.rule_files,
        file.evaluation_interval,
    )?;
    let mut config = loaded.config;
    if file.config_file.is_none() {
        config.webhooks = default_webhooks(&loaded.rules)?;
    }
    check_names(&file, &config, &loaded.rules)?;
    let mut failures = Vec::new();
    for test in &file.tests {
        failures.extend(run_test(&file, test, &config, &loaded.rules));
    }
    Ok(FileOutcome { failures })
}

/// Without a service config, every webhook a rule names, with its defaults
/// (`send_resolved: false`, `cooldown: 0s`).
fn default_webhooks(rules: &RuleSet) -> Result<BTreeMap<String, WebhookConfig>, LoadError> {
    let names: BTreeSet<&String> = rules
        .groups
        .iter()
        .flat_map(|g| &g.rules)
        .flat_map(|r| &r.webhooks)
        .collect();
    if names.is_empty() {
        return Ok(BTreeMap::new());
    }
    let mut text = String::from("webhooks:\n");
    for name in names {
        let quoted = serde_json::to_string(name).unwrap_or_default();
        text.push_str(&format!("  {quoted}: {{url: \"http://127.0.0.1:9/\"}}\n"));
    }
    config::parse_config(&text, "<test webhooks>", Path::new(""), &config::FsSecrets)
        .map(|c| c.webhooks)
        .map_err(LoadError)
}

/// Every rule and webhook a test names exists.
fn check_names(file: &TestFile, config: &Config, rules: &RuleSet) -> Result<(), LoadError> {
    let rule_names: BTreeSet<&str> = rules
        .groups
        .iter()
        .flat_map(|g| &g.rules)
        .map(|r| r.name.as_str())
        .collect();
    let mut diags: Vec<Diagnostic> = Vec::new();
    for (name, at) in &file.group_eval_order {
        if !rules.groups.iter().any(|g| &g.name == name) {
            diags.push(diagnostic(
                file,
                *at,
                format!("group_eval_order: no group named {name:?} in the rule files"),
            ));
        }
    }
    for test in &file.tests {
        for t in &test.drift_rule_test {
            if !rule_names.contains(t.rule.as_str()) {
                diags.push(diagnostic(
                    file,
                    t.rule_at,
                    format!("no rule named {:?} in the rule files", t.rule),
                ));
            }
        }
        for w in test.exp_webhooks.iter().flatten() {
            if !rule_names.contains(w.rule.as_str()) {
                diags.push(diagnostic(
                    file,
                    test.at,
                    format!("exp_webhooks: no rule named {:?} in the rule files", w.rule),
                ));
            }
            if !config.webhooks.contains_key(&w.webhook) {
                diags.push(diagnostic(
                    file,
                    test.at,
                    format!("exp_webhooks: no webhook named {:?}", w.webhook),
                ));
            }
        }
    }
    if diags.is_empty() {
        Ok(())
    } else {
        Err(LoadError(diags))
    }
}

/// Records the engine's events and accepts every delivery (also the engine's own tests').
#[derive(Default)]
pub(super) struct Recorder(Mutex<Vec<Event>>);

impl Recorder {
    /// The events recorded since the last call.
    #[cfg(test)]
    pub(super) fn take(&self) -> Vec<Event> {
        std::mem::take(&mut *lock(&self.0))
    }
}

impl Notifier for Recorder {
    fn configure(&self, _: &BTreeMap<String, WebhookConfig>) {}

    fn notify(&self, events: &[Event]) -> Vec<Vec<bool>> {
        lock(&self.0).extend_from_slice(events);
        events
            .iter()
            .map(|e| vec![true; e.webhooks.len()])
            .collect()
    }
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn time(t_ms: i64) -> String {
    format_duration(Duration::from_millis(t_ms.max(0) as u64))
}

fn run_test(file: &TestFile, test: &TestGroup, config: &Config, rules: &RuleSet) -> Vec<String> {
    let recorder = Arc::new(Recorder::default());
    let engine = Engine::new(
        config.clone(),
        rules.clone(),
        Arc::new(Telemetry::default()),
        Arc::clone(&recorder) as Arc<dyn Notifier>,
    );
    let generation = engine.current();
    let step = ms(test.interval).max(1);
    let title = format!(
        "test {:?} ({}:{}:{})",
        test.name, file.origin, test.at.line, test.at.col
    );
    let mut failures = Vec::new();

    // Samples by time: (time, batch).
    let mut samples: BTreeMap<i64, Vec<SeriesSamples>> = BTreeMap::new();
    for s in &test.input_series {
        for (i, v) in s.values.iter().enumerate() {
            let Some(v) = v.filter(|v| v.is_finite()) else {
                continue;
            };
            samples
                .entry((i as i64).saturating_mul(step))
                .or_default()
                .push(SeriesSamples {
                    metric: s.metric.clone(),
                    labels: s.labels.clone(),
                    values: vec![v],
                });
        }
    }
    let mut checks: Vec<_> = test.drift_rule_test.iter().collect();
    checks.sort_by_key(|t| t.eval_time);
    let end = checks
        .last()
        .map(|t| ms(t.eval_time))
        .or_else(|| samples.keys().next_back().copied())
        .unwrap_or(0);
    // The instants where something happens, in order, without listing them all: a long
    // `eval_time` with a short interval costs time, not memory.
    let intervals: Vec<i64> = generation
        .groups
        .iter()
        .map(|g| ms(g.group.interval).max(1))
        .collect();
    let mut next_eval: Vec<i64> = vec![0; intervals.len()];
    // `group_eval_order` first, then the other groups in file order.
    let mut order: Vec<usize> = file
        .group_eval_order
        .iter()
        .filter_map(|(name, _)| generation.groups.iter().position(|g| &g.group.name == name))
        .collect();
    let rest: Vec<usize> = (0..intervals.len())
        .filter(|i| !order.contains(i))
        .collect();
    order.extend(rest);
    let mut sample_times = samples.keys().copied().peekable();
    let mut next_check = 0;
    loop {
        let t = [
            sample_times.peek().copied(),
            next_eval.iter().copied().min(),
            checks.get(next_check).map(|c| ms(c.eval_time)),
        ]
        .into_iter()
        .flatten()
        .min();
        let Some(t) = t.filter(|&t| t <= end) else {
            break;
        };
        if sample_times.peek() == Some(&t) {
            sample_times.next();
            if let Some(batch) = samples.get(&t) {
                if let Err(e) = engine.ingest(batch, "test", t) {
                    failures.push(format!("{title}: samples at {} refused: {e}", time(t)));
                }
            }
        }
        for &gi in &order {
            if next_eval[gi] == t {
                engine.evaluate_group(&generation, gi, t);
                next_eval[gi] = t.saturating_add(intervals[gi]);
            }
        }
        while let Some(check) = checks.get(next_check).filter(|c| ms(c.eval_time) == t) {
            next_check += 1;
            let mut got: Vec<String> = Vec::new();
            for g in &generation.groups {
                let out = g.output();
                for s in &out.series {
                    if g.rules.get(s.rule).map(|r| r.rule.name.as_str()) != Some(&check.rule) {
                        continue;
                    }
                    let mut labels = (*s.labels).clone();
                    labels.remove("rule");
                    labels.remove("group");
                    got.push(format!("{} {}", format_labels(&labels), s.status.as_str()));
                }
            }
            let want: Vec<String> = check
                .exp_states
                .iter()
                .map(|e| format!("{} {}", format_labels(&e.labels), e.status))
                .collect();
            if let Some(diff) = diff(want, got) {
                failures.push(format!(
                    "{title}, rule {:?} at {} ({}:{}:{}):\n{diff}",
                    check.rule,
                    time(t),
                    file.origin,
                    check.at.line,
                    check.at.col
                ));
            }
        }
        if t == i64::MAX {
            break;
        }
    }

    if let Some(expected) = &test.exp_webhooks {
        let calls: Vec<ExpWebhook> = lock(&recorder.0)
            .iter()
            .flat_map(|e| {
                e.webhooks.iter().map(move |w| ExpWebhook {
                    webhook: w.clone(),
                    rule: e.rule.clone(),
                    status: e.to.as_str().to_string(),
                    labels: e.labels.clone(),
                    eval_time: Some(Duration::from_millis(e.at_ms.max(0) as u64)),
                })
            })
            .collect();
        let show = |w: &ExpWebhook, at: bool| {
            let mut s = format!(
                "webhook={} rule={} status={} labels={}",
                w.webhook,
                w.rule,
                w.status,
                format_labels(&w.labels)
            );
            if let (true, Some(t)) = (at, w.eval_time) {
                s.push_str(&format!(" eval_time={}", format_duration(t)));
            }
            s
        };
        // Each expected call takes one matching call (at its eval_time when it gives one).
        let mut unmatched: Vec<Option<&ExpWebhook>> = calls.iter().map(Some).collect();
        let mut want = Vec::new();
        let mut got = Vec::new();
        for e in expected {
            let found = unmatched.iter_mut().find(|c| {
                c.is_some_and(|c| {
                    (&c.webhook, &c.rule, &c.status, &c.labels)
                        == (&e.webhook, &e.rule, &e.status, &e.labels)
                        && (e.eval_time.is_none() || e.eval_time == c.eval_time)
                })
            });
            match found {
                Some(slot) => {
                    let c = slot.take().map(|c| show(c, e.eval_time.is_some()));
                    want.push(show(e, e.eval_time.is_some()));
                    got.extend(c);
                }
                None => want.push(show(e, e.eval_time.is_some())),
            }
        }
        got.extend(unmatched.into_iter().flatten().map(|c| show(c, true)));
        if let Some(diff) = diff(want, got) {
            failures.push(format!(
                "{title}, exp_webhooks (calls up to {}):\n{diff}",
                time(end)
            ));
        }
    }
    failures
}

/// `None` when both sides hold the same lines (in any order), else a diff: lines on both
/// sides, then expected only (`-`), then got only (`+`).
fn diff(mut want: Vec<String>, mut got: Vec<String>) -> Option<String> {
    want.sort();
    got.sort();
    if want == got {
        return None;
    }
    let mut both = Vec::new();
    let mut only_want = Vec::new();
    let mut rest = got;
    for w in want {
        match rest.iter().position(|g| *g == w) {
            Some(i) => both.push(rest.remove(i)),
            None => only_want.push(w),
        }
    }
    let mut out = String::from("    --- expected\n    +++ got\n");
    for l in &both {
        out.push_str(&format!("       {l}\n"));
    }
    for l in &only_want {
        out.push_str(&format!("    -  {l}\n"));
    }
    for l in &rest {
        out.push_str(&format!("    +  {l}\n"));
    }
    Some(out)
}
