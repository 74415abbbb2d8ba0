//! `driftgauge check`: the real binary on good and bad files, every error of every file at once.
//!
//! Expected diagnostics live next to the fixtures in `tests/data/check/*.expected`, one
//! `file:line:col: message` a line, files named as passed on the command line.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const DATA: &str = "tests/data/check";

/// Runs `driftgauge check ARGS` from the repository root; on exit 0 compares stdout, else
/// stderr, with `expected`, and requires the other stream to be empty.
#[track_caller]
fn check(args: &[&str], expected: &str, exit: i32) {
    let (out, err) = if exit == 0 {
        (expected, "")
    } else {
        ("", expected)
    };
    check_in(Path::new(env!("CARGO_MANIFEST_DIR")), args, out, err, exit);
}

/// Runs `driftgauge check ARGS` in `dir` and compares both streams and the exit code.
#[track_caller]
fn check_in(dir: &Path, args: &[&str], stdout: &str, stderr: &str, exit: i32) {
    let (got_out, got_err, code) = run_check(dir, args);
    let context = format!(
        "driftgauge check {}\n--- stdout:\n{got_out}--- stderr:\n{got_err}",
        args.join(" ")
    );
    assert_eq!(got_out, stdout, "{context}");
    assert_eq!(got_err, stderr, "{context}");
    assert_eq!(code, Some(exit), "{context}");
}

/// `driftgauge check ARGS` in `dir`: stdout, stderr and exit code. Fails when it runs longer
/// than 20 s (a FIFO once made it wait forever), killing it first.
#[track_caller]
fn run_check(dir: &Path, args: &[&str]) -> (String, String, Option<i32>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_driftgauge"))
        .arg("check")
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("driftgauge runs");
    // Both pipes drained on threads, so a large output never blocks the child.
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            String::from_utf8_lossy(&buf).into_owned()
        })
    };
    let out = drain(Box::new(child.stdout.take().expect("stdout")));
    let err = drain(Box::new(child.stderr.take().expect("stderr")));
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "driftgauge check {} did not finish within 20 s",
                args.join(" ")
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    (
        out.join().expect("stdout"),
        err.join().expect("stderr"),
        status.code(),
    )
}

/// The expected output files of `names`, concatenated in order.
fn expected(names: &[&str]) -> String {
    names
        .iter()
        .map(|name| {
            let path = format!("{}/{DATA}/{name}.expected", env!("CARGO_MANIFEST_DIR"));
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
        })
        .collect()
}

/// What `check` prints on success: the counts, then one calibration line per rule.
fn success(s: &driftgauge::config::CheckSummary) -> String {
    let mut out = format!(
        "SUCCESS: {} rule files, {} groups, {} rules found\n",
        s.files, s.groups, s.rules
    );
    for line in &s.calibration {
        out.push_str(&format!("  {line}\n"));
    }
    out
}

#[test]
fn good_files_pass() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let summary = driftgauge::config::check(None, &[root.join("tests/data/check/good.yml")])
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((summary.files, summary.groups, summary.rules), (1, 2, 4));
    let stdout = success(&summary);
    // Alone, a rule file's webhook names cannot be checked: said on stderr, exit 0.
    check_in(
        root,
        &["tests/data/check/good.yml"],
        &stdout,
        "note: webhook names were not checked (2 rules name webhooks); pass --config.file to check them\n",
        0,
    );
    let cases: &[&[&str]] = &[
        &["--config.file=tests/data/check/good_config.yml"],
        // A file the config already names is checked once.
        &[
            "--config.file",
            "tests/data/check/good_config.yml",
            "tests/data/check/good.yml",
        ],
    ];
    for args in cases {
        check(args, &stdout, 0);
    }
}

#[test]
fn check_prints_what_each_rule_costs_and_needs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let summary = driftgauge::config::check(None, &[root.join("tests/data/check/good.yml")])
        .unwrap_or_else(|e| panic!("{e}"));
    let lines = &summary.calibration;
    // A bare alpha: what it costs a day, one test per 15 s evaluation: 0.05 * 5760 = 288.
    assert!(
        lines[0].starts_with("fraud-model/amount_drift: alpha 0.05 tested every 15s: up to 288 false drifted events per series-day"),
        "{}",
        lines[0]
    );
    // The floor (statistic: 0.25) is above the distance the test needs, so it decides.
    assert!(lines[0].contains("needs D >= 0.250"), "{}", lines[0]);
    // No alpha: the default budget, 15 s / 30 d per test, and its cost per day.
    assert!(
        lines[1].starts_with("fraud-model/amount_vs_file: false_alarms 1/30d per series: each test at p <= 5.787e-6 (one per 15s), at most 0.0333 false drifted events per series-day"),
        "{}",
        lines[1]
    );
    // ema rules: the default min_samples, ceil(ln 0.05 / ln 0.8) = 14 for smoothing 0.2.
    assert!(lines[2].contains("min_samples 14"), "{}", lines[2]);
}

#[test]
fn check_prints_how_several_current_window_sizes_share_the_level() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let file = root.join("tests/data/check/several_sizes.yml");
    let summary = driftgauge::config::check(None, &[file]).unwrap_or_else(|e| panic!("{e}"));
    let lines = &summary.calibration;
    // Several current-window sizes share the level (Bonferroni), each needs its own distance,
    // and the smallest one reaches a large shift first.
    assert!(
        lines[0].contains("3 current-window sizes (100, 250, 1000) share it (Bonferroni): each size at p <= 1.929e-6, drifted when any size's test is"),
        "{}",
        lines[0]
    );
    assert!(
        lines[0].contains("needs D >= 0.276 at 100, 0.186 at 250, 0.118 at 1000, a 1 sd shift after about 73 new values (at 100), a 0.5 sd shift after about 236 new values (at 250)"),
        "{}",
        lines[0]
    );
}

#[test]
fn bad_files_report_every_error() {
    let cases: &[(&[&str], &[&str])] = &[
        (&["tests/data/check/bad_keys.yml"], &["bad_keys"]),
        (&["tests/data/check/bad_syntax.yml"], &["bad_syntax"]),
        // Every file of one invocation is reported, in the order given.
        (
            &[
                "tests/data/check/bad_keys.yml",
                "tests/data/check/bad_syntax.yml",
            ],
            &["bad_keys", "bad_syntax"],
        ),
        // The config's own errors, then those of its rule files, with webhook names and
        // window sizes checked against the config.
        (
            &["--config.file=tests/data/check/bad_config.yml"],
            &["bad_config"],
        ),
        (
            &[
                "--config.file=tests/data/check/bad_config.yml",
                "tests/data/check/bad_syntax.yml",
            ],
            &["bad_config", "bad_syntax"],
        ),
    ];
    for (args, names) in cases {
        check(args, &expected(names), 1);
    }
}

#[test]
fn unreadable_files_are_reported() {
    check(
        &["tests/data/check/missing.yml", "tests/data/check/good.yml"],
        "tests/data/check/missing.yml:1:1: cannot read rule file: no such file\n",
        1,
    );
    check(
        &["--config.file=tests/data/check/missing_config.yml"],
        "tests/data/check/missing_config.yml:1:1: cannot read config file: no such file\n",
        1,
    );
}

#[test]
fn every_example_rule_file_passes() {
    let root = env!("CARGO_MANIFEST_DIR");
    let mut files: Vec<PathBuf> = glob::glob(&format!("{root}/rules/*.yml"))
        .expect("valid glob")
        .filter_map(Result::ok)
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no example rule files in rules/");
    let summary = driftgauge::config::check(None, &files)
        .unwrap_or_else(|e| panic!("example rules do not pass:\n{e}"));
    assert_eq!(summary.files, files.len());
    // As paths relative to the repository, the way an operator runs it.
    let relative: Vec<String> = files
        .iter()
        .map(|p| p.strip_prefix(root).unwrap_or(p).display().to_string())
        .collect();
    let args: Vec<&str> = relative.iter().map(String::as_str).collect();
    check(&args, &success(&summary), 0);
    // With no arguments: ./driftgauge.yml if the repository has one, else the embedded
    // default, whose `rules/*.yml` are these files. (Cargo runs tests from the package root.)
    let default = driftgauge::config::check(None, &[])
        .unwrap_or_else(|e| panic!("`driftgauge check` fails:\n{e}"));
    check(&[], &success(&default), 0);
}

#[test]
fn devices_and_fifos_are_refused_not_read_forever() {
    check(
        &["/dev/zero"],
        "/dev/zero:1:1: cannot read rule file: not a regular file\n",
        1,
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let rules = dir.path().join("zero.yml");
    std::fs::write(
        &rules,
        "groups:\n  - name: g\n    rules:\n      - name: r\n        detector: ks\n        series: x\n        reference: {file: /dev/zero}\n        current: {last: 10}\n",
    )
    .expect("write rules");
    let shown = rules.display().to_string();
    check(
        &[&shown],
        &format!("{shown}:7:27: reference.file: cannot read \"/dev/zero\": not a regular file\n"),
        1,
    );
}

/// Writes `files` (path, text) under `dir`, creating folders.
fn write_all(dir: &Path, files: &[(&str, &str)]) {
    for (path, text) in files {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, text).expect("write");
    }
}

fn mkfifo(path: &Path) {
    let ok = Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo runs");
    assert!(ok.success(), "mkfifo {}", path.display());
}

const KS_FILE_RULE: &str = "groups:\n  - name: g\n    rules:\n      - name: r\n        detector: ks\n        series: x\n        reference: {file: ref.txt}\n        current: {last: 10}\n        min_samples: 1\n";

#[test]
fn a_fifo_is_refused_at_once_not_waited_on() {
    // Opening a FIFO for reading waits for a writer: `check` (and reloads) hung on one named
    // as a reference, a rule file, the config or a secret.
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    write_all(
        d,
        &[
            ("rules.yml", KS_FILE_RULE),
            (
                "token.yml",
                "rule_files: []\nwebhooks:\n  w:\n    url: http://127.0.0.1:1/\n    bearer_token_file: token.fifo\n",
            ),
        ],
    );
    for fifo in ["ref.txt", "fifo.yml", "config.fifo", "token.fifo"] {
        mkfifo(&d.join(fifo));
    }
    let not_regular = "not a regular file";
    check_in(
        d,
        &["rules.yml"],
        "",
        &format!("rules.yml:7:27: reference.file: cannot read \"ref.txt\": {not_regular}\n"),
        1,
    );
    check_in(
        d,
        &["fifo.yml"],
        "",
        &format!("fifo.yml:1:1: cannot read rule file: {not_regular}\n"),
        1,
    );
    check_in(
        d,
        &["--config.file=config.fifo"],
        "",
        &format!("config.fifo:1:1: cannot read config file: {not_regular}\n"),
        1,
    );
    check_in(
        d,
        &["--config.file=token.yml"],
        "",
        &format!("token.yml:5:24: bearer_token_file: cannot read \"token.fifo\": {not_regular}\n"),
        1,
    );
}

#[test]
fn a_huge_bad_reference_gives_a_short_message() {
    // A 64 MiB reference of NUL bytes is one bad line: the message once quoted all of it
    // (134 MB). Now an excerpt of 64 characters.
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    write_all(d, &[("rules.yml", KS_FILE_RULE)]);
    std::fs::write(d.join("ref.txt"), vec![0u8; 64 << 20]).expect("write");
    let (out, err, code) = run_check(d, &["rules.yml"]);
    assert!(err.len() < 64 << 10, "stderr of {} bytes", err.len());
    assert_eq!(out, "");
    assert_eq!(code, Some(1));
    assert_eq!(
        err,
        format!(
            "rules.yml:7:27: reference.file: \"ref.txt\" line 1: expected a number, got \"{}\"…\n",
            "\\0".repeat(64)
        )
    );
    // Peak memory: the file once (64 MiB) and little more; it took about three times that.
    if Path::new("/usr/bin/time").exists() {
        let out = Command::new("/usr/bin/time")
            .arg("-v")
            .arg(env!("CARGO_BIN_EXE_driftgauge"))
            .args(["check", "rules.yml"])
            .current_dir(d)
            .output()
            .expect("time runs");
        let report = String::from_utf8_lossy(&out.stderr);
        let kib: u64 = report
            .lines()
            .find_map(|l| {
                l.trim()
                    .strip_prefix("Maximum resident set size (kbytes): ")
            })
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no peak RSS in:\n{report}"));
        assert!(kib < 160 << 10, "peak RSS {kib} KiB");
    }
}

#[test]
fn a_file_with_thousands_of_errors_reports_the_first_hundred() {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    let mut text = String::from("groups:\n");
    for i in 0..5000 {
        text.push_str(&format!("  - name: g{i}\n    bad: 1\n"));
    }
    write_all(d, &[("many.yml", &text)]);
    let expected: String = (0..100)
        .map(|i| format!("many.yml:{}:5: unknown key \"bad\" in group\n", 3 + 2 * i))
        .chain(["… 4900 more errors in many.yml\n".to_string()])
        .collect();
    check_in(d, &["many.yml"], "", &expected, 1);
}

#[test]
fn reserved_label_names_in_rules_and_groups_are_errors() {
    // `rule` and `group` were dropped silently (driftgauge sets them) and `__x` was exported.
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    write_all(
        d,
        &[(
            "labels.yml",
            "groups:\n  - name: g\n    labels: {rule: x, team: risk}\n    rules:\n      - name: r\n        detector: ema\n        series: m\n        smoothing: 1\n        below: 1\n        labels: {group: y, __x: z, ok: fine}\n",
        )],
    );
    check_in(
        d,
        &["labels.yml"],
        "",
        concat!(
            "labels.yml:3:14: labels: label name \"rule\" is reserved: driftgauge sets it\n",
            "labels.yml:10:18: labels: label name \"group\" is reserved: driftgauge sets it\n",
            "labels.yml:10:28: labels: label name \"__x\": label names starting with \"__\" are reserved\n",
        ),
        1,
    );
}

#[test]
fn rule_files_that_are_not_regular_files_are_errors() {
    // `/dev/zero` and a directory matched by a glob were skipped: 0 rules, and a reload with
    // them removed every rule. A pattern matching nothing still names no file.
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    write_all(
        d,
        &[
            (
                "driftgauge.yml",
                "rule_files: [\"/dev/zero\", \"rules/*\", \"missing.yml\", \"none/*.yml\"]\n",
            ),
            ("rules/a.yml", "groups: []\n"),
        ],
    );
    std::fs::create_dir(d.join("rules/sub")).expect("mkdir");
    check_in(
        d,
        &["--config.file=driftgauge.yml"],
        "",
        concat!(
            "/dev/zero:1:1: cannot read rule file: not a regular file\n",
            "rules/sub:1:1: cannot read rule file: is a directory\n",
        ),
        1,
    );
    // Without the bad ones it passes.
    write_all(
        d,
        &[(
            "driftgauge.yml",
            "rule_files: [\"rules/*.yml\", \"missing.yml\", \"none/*.yml\"]\n",
        )],
    );
    check_in(
        d,
        &["--config.file=driftgauge.yml"],
        "SUCCESS: 1 rule files, 0 groups, 0 rules found\n",
        "",
        0,
    );
}

#[test]
fn the_embedded_default_config_has_no_webhooks_for_rules_to_name() {
    // With neither a config nor rule files, `check` (as `serve`) uses the embedded default,
    // which has no webhooks: a rule naming one passed, and could never be notified.
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    let rule = "groups:\n  - name: g\n    rules:\n      - name: r\n        detector: ema\n        series: m\n        smoothing: 1\n        below: 1\n        webhooks: [retrain]\n";
    write_all(d, &[("rules/a.yml", rule)]);
    check_in(
        d,
        &[],
        "",
        "rules/a.yml:9:20: unknown webhook \"retrain\": the embedded default config defines no webhooks; pass --config.file\n",
        1,
    );
    // The same file alone: its webhook names are not checked, and `check` says so.
    check_in(
        d,
        &["rules/a.yml"],
        "SUCCESS: 1 rule files, 1 groups, 1 rules found\n  g/r: ema, min_samples 1: drifted whenever the EMA is past its bound (no calibration; control_limits calibrates)\n",
        "note: webhook names were not checked (1 rules name webhooks); pass --config.file to check them\n",
        0,
    );
}
