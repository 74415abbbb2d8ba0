//! `driftgauge check`: the real binary on good and bad files, every error of every file at once.
//!
//! Expected diagnostics live next to the fixtures in `tests/data/check/*.expected`, one
//! `file:line:col: message` a line, files named as passed on the command line.

use std::path::PathBuf;
use std::process::Command;

const DATA: &str = "tests/data/check";

/// Runs `driftgauge check ARGS` from the repository root; on exit 0 compares stdout, else
/// stderr, with `expected`, and requires the other stream to be empty.
#[track_caller]
fn check(args: &[&str], expected: &str, exit: i32) {
    let out = Command::new(env!("CARGO_BIN_EXE_driftgauge"))
        .arg("check")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("driftgauge runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let context = format!(
        "driftgauge check {}\n--- stdout:\n{stdout}--- stderr:\n{stderr}",
        args.join(" ")
    );
    let (got, other) = if exit == 0 {
        (&stdout, &stderr)
    } else {
        (&stderr, &stdout)
    };
    assert_eq!(got.as_ref(), expected, "{context}");
    assert_eq!(other.as_ref(), "", "{context}");
    assert_eq!(out.status.code(), Some(exit), "{context}");
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

#[test]
fn good_files_pass() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["tests/data/check/good.yml"],
            "SUCCESS: 1 rule files, 2 groups, 4 rules found\n",
        ),
        (
            &["--config.file=tests/data/check/good_config.yml"],
            "SUCCESS: 1 rule files, 2 groups, 4 rules found\n",
        ),
        // A file the config already names is checked once.
        (
            &[
                "--config.file",
                "tests/data/check/good_config.yml",
                "tests/data/check/good.yml",
            ],
            "SUCCESS: 1 rule files, 2 groups, 4 rules found\n",
        ),
    ];
    for (args, stdout) in cases {
        check(args, stdout, 0);
    }
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
    let success = |s: driftgauge::config::CheckSummary| {
        format!(
            "SUCCESS: {} rule files, {} groups, {} rules found\n",
            s.files, s.groups, s.rules
        )
    };
    // As paths relative to the repository, the way an operator runs it.
    let relative: Vec<String> = files
        .iter()
        .map(|p| p.strip_prefix(root).unwrap_or(p).display().to_string())
        .collect();
    let args: Vec<&str> = relative.iter().map(String::as_str).collect();
    check(&args, &success(summary), 0);
    // With no arguments: ./driftgauge.yml if the repository has one, else the embedded
    // default, whose `rules/*.yml` are these files. (Cargo runs tests from the package root.)
    let default = driftgauge::config::check(None, &[])
        .unwrap_or_else(|e| panic!("`driftgauge check` fails:\n{e}"));
    check(&[], &success(default), 0);
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
