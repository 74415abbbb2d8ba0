//! `driftgauge test rules`: every rule file in `rules/` ships with a test file in
//! `rules/tests/`, and the suite runs them through the binary; a wrong expectation fails with
//! exit 1 and a readable diff; a bad test file is reported at `file:line:col`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_driftgauge"))
}

fn rules_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("rules")
}

/// Runs `driftgauge test rules FILES` in `dir`: (exit code, stdout, stderr).
fn test_rules(dir: &Path, files: &[&str]) -> (i32, String, String) {
    let out = bin()
        .arg("test")
        .arg("rules")
        .args(files)
        .current_dir(dir)
        .output()
        .expect("run driftgauge");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn every_rule_file_ships_with_a_passing_test_file() {
    let dir = rules_dir();
    let mut rule_files: Vec<String> = std::fs::read_dir(&dir)
        .expect("rules/")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yml") || n.ends_with(".yaml"))
        .collect();
    rule_files.sort();
    assert!(!rule_files.is_empty());
    let mut tests = Vec::new();
    for f in &rule_files {
        let stem = f.rsplit_once('.').map_or(f.as_str(), |(s, _)| s);
        let test = format!("tests/{stem}_test.yml");
        assert!(
            dir.join(&test).is_file(),
            "rules/{f} has no test file rules/{test}"
        );
        let text = std::fs::read_to_string(dir.join(&test)).expect("test file");
        assert!(
            text.contains(&format!("../{f}")),
            "rules/{test} does not test ../{f}"
        );
        tests.push(test);
    }
    let args: Vec<&str> = tests.iter().map(String::as_str).collect();
    let (code, stdout, stderr) = test_rules(&dir, &args);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert_eq!(stdout.matches("  SUCCESS").count(), tests.len(), "{stdout}");
}

const RULES: &str = r#"
groups:
  - name: quality
    interval: 1m
    rules:
      - name: acc
        detector: ema
        series: 'acc{model="a"}'
        smoothing: 1
        below: 0.5
        webhooks: [retrain]
"#;

/// A copy of a passing test with one expectation wrong fails with exit 1 and a diff that
/// shows the expected line and the one got.
#[test]
fn a_wrong_expectation_fails_with_exit_1_and_a_diff() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("r.yml"), RULES).expect("write");
    let test = |status: &str, webhook_at: &str| {
        format!(
            "rule_files: [r.yml]\ntests:\n  - name: drop\n    input_series:\n      - {{series: 'acc{{model=\"a\"}}', values: '1 1 0.1 0.1'}}\n    drift_rule_test:\n      - eval_time: 3m\n        rule: acc\n        exp_states:\n          - {{labels: {{model: a}}, status: {status}}}\n    exp_webhooks:\n      - {{webhook: retrain, rule: acc, labels: {{model: a}}, eval_time: {webhook_at}}}\n"
        )
    };
    std::fs::write(dir.path().join("good.yml"), test("drifted", "2m")).expect("write");
    let (code, stdout, stderr) = test_rules(dir.path(), &["good.yml"]);
    assert_eq!(
        (code, stdout.as_str()),
        (0, "Unit Testing:  good.yml\n  SUCCESS\n\n"),
        "{stderr}"
    );

    std::fs::write(dir.path().join("bad.yml"), test("stable", "1m")).expect("write");
    let (code, stdout, _) = test_rules(dir.path(), &["good.yml", "bad.yml"]);
    assert_eq!(code, 1, "{stdout}");
    assert_eq!(
        stdout,
        r#"Unit Testing:  good.yml
  SUCCESS

Unit Testing:  bad.yml
  FAILED:
    test "drop" (bad.yml:3:5), rule "acc" at 3m (bad.yml:7:9):
    --- expected
    +++ got
    -  {model="a"} stable
    +  {model="a"} drifted

    test "drop" (bad.yml:3:5), exp_webhooks (calls up to 3m):
    --- expected
    +++ got
    -  webhook=retrain rule=acc status=drifted labels={model="a"} eval_time=1m
    +  webhook=retrain rule=acc status=drifted labels={model="a"} eval_time=2m

"#
    );
}

#[test]
fn a_bad_test_file_is_reported_at_its_line_and_column() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("r.yml"), RULES).expect("write");
    std::fs::write(
        dir.path().join("t.yml"),
        "rule_files: [r.yml]\ntests:\n  - input_series:\n      - {series: 'acc', values: '1 2 x3'}\n    drift_rule_test:\n      - {eval_time: 1m, rule: nope, exp_states: []}\n",
    )
    .expect("write");
    let (code, stdout, stderr) = test_rules(dir.path(), &["t.yml"]);
    assert_eq!(code, 1, "{stdout}");
    assert_eq!(
        stderr,
        "t.yml:4:38: values: \"x3\": expected a number, a+bxN, a-bxN, axN, _, _xN or stale\n"
    );
    std::fs::write(
        dir.path().join("t.yml"),
        "rule_files: [r.yml]\ntests:\n  - drift_rule_test:\n      - {eval_time: 1m, rule: nope, exp_states: []}\n",
    )
    .expect("write");
    let (code, _, stderr) = test_rules(dir.path(), &["t.yml"]);
    assert_eq!(code, 1);
    assert_eq!(
        stderr,
        "t.yml:4:31: no rule named \"nope\" in the rule files\n"
    );
}

/// With `config_file`, the config's webhooks decide the calls: `send_resolved` adds the call
/// on leaving `drifted`, and `cooldown` holds back calls (entering or leaving) within 3m of
/// the last one. Without it, every webhook has its defaults: no resolved calls, no cooldown.
#[test]
fn a_config_file_brings_send_resolved_and_cooldown() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("r.yml"), RULES).expect("write");
    std::fs::write(
        dir.path().join("driftgauge.yml"),
        "webhooks:\n  retrain:\n    url: http://127.0.0.1:9/x\n    send_resolved: true\n    cooldown: 3m\n",
    )
    .expect("write");
    // Drifted at 1m (called), stable at 2m and drifted at 3m (within 3m of 1m: not called),
    // stable at 4m (called), drifted at 6m (within 3m of 4m: not called).
    let test = |config: &str| {
        format!(
            r#"rule_files: [r.yml]
{config}tests:
  - input_series:
      - {{series: 'acc{{model="a"}}', values: '1 0.1 1 0.1 1 1 0.1'}}
    drift_rule_test:
      - {{eval_time: 6m, rule: acc, exp_states: [{{labels: '{{model="a"}}', status: drifted}}]}}
    exp_webhooks:
      - {{webhook: retrain, rule: acc, labels: {{model: a}}, eval_time: 1m}}
      - {{webhook: retrain, rule: acc, labels: {{model: a}}, status: stable, eval_time: 4m}}
"#
        )
    };
    std::fs::write(
        dir.path().join("t.yml"),
        test("config_file: driftgauge.yml\n"),
    )
    .expect("write");
    let (code, stdout, stderr) = test_rules(dir.path(), &["t.yml"]);
    assert_eq!(code, 0, "{stdout}{stderr}");

    std::fs::write(dir.path().join("t.yml"), test("")).expect("write");
    let (code, stdout, stderr) = test_rules(dir.path(), &["t.yml"]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(
        stdout.ends_with(
            r#"    --- expected
    +++ got
       webhook=retrain rule=acc status=drifted labels={model="a"} eval_time=1m
    -  webhook=retrain rule=acc status=stable labels={model="a"} eval_time=4m
    +  webhook=retrain rule=acc status=drifted labels={model="a"} eval_time=3m
    +  webhook=retrain rule=acc status=drifted labels={model="a"} eval_time=6m

"#
        ),
        "{stdout}"
    );
}

/// `rule_files` takes globs, as promtool does; `group_eval_order` must name known groups.
#[test]
fn rule_file_globs_and_group_eval_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("rules")).expect("mkdir");
    std::fs::write(dir.path().join("rules/r.yml"), RULES).expect("write");
    let test = |order: &str| {
        format!(
            "rule_files: ['rules/*.yml']\ngroup_eval_order: [{order}]\ntests:\n  - input_series:\n      - {{series: 'acc{{model=\"a\"}}', values: '0.1'}}\n    drift_rule_test:\n      - {{eval_time: 0s, rule: acc, exp_states: [{{labels: {{model: a}}, status: drifted}}]}}\n"
        )
    };
    std::fs::write(dir.path().join("t.yml"), test("quality")).expect("write");
    let (code, stdout, stderr) = test_rules(dir.path(), &["t.yml"]);
    assert_eq!(code, 0, "{stdout}{stderr}");

    std::fs::write(dir.path().join("t.yml"), test("quality, nope")).expect("write");
    let (code, _, stderr) = test_rules(dir.path(), &["t.yml"]);
    assert_eq!(code, 1);
    assert_eq!(
        stderr,
        "t.yml:2:29: group_eval_order: no group named \"nope\" in the rule files\n"
    );

    std::fs::write(
        dir.path().join("t.yml"),
        "rule_files: ['none/*.yml']\ntests: []\n",
    )
    .expect("write");
    let (code, _, stderr) = test_rules(dir.path(), &["t.yml"]);
    assert_eq!(code, 1);
    assert_eq!(
        stderr,
        "t.yml:1:14: rule_files: \"none/*.yml\" matches no file\n"
    );
}
