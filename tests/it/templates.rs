//! Annotation template functions against Prometheus itself: every expansion driftgauge makes
//! of `humanize`, `humanizePercentage`, `humanizeDuration`, `printf` and `$value` is handed to
//! `promtool test rules` as the expected annotation of an alert whose value is the same
//! number, so Prometheus's own template engine is the oracle.

use driftgauge::config::expand;
use driftgauge::labels::Labels;

use crate::prom::promtool;

const TEMPLATES: &[&str] = &[
    "{{ $value }}",
    "{{ $value | humanize }}",
    "{{ humanizePercentage $value }}",
    "{{ $value | humanizeDuration }}",
    "{{ printf \"%.3f|%e|%g|%v|%8.2f|%-8.1e|%+.1f\" $value $value $value $value $value $value $value }}",
    "{{ printf \"%.2e %G %.4g\" $value $value $value }}",
    "{{ $labels.model }} at {{ $value | printf \"%.1f\" }} ({{ humanize (printf \"%f\" $value) }})",
];

const VALUES: &[f64] = &[
    0.0,
    1.0,
    -1.0,
    0.5,
    0.1234,
    0.7849999999999999,
    1234567.0,
    12345.0,
    999.5,
    1000.0,
    0.000123,
    1e-30,
    1e30,
    123456789.123,
    -0.0042,
    86461.5,
    59.9999,
    3e-7,
    2.5e21,
    1.0 / 3.0,
];

#[test]
fn template_functions_print_what_prometheus_prints() {
    let dir = tempfile::tempdir().expect("tempdir");
    let labels = Labels::from([("model".to_string(), "fraud".to_string())]);
    let mut rules = String::from("groups:\n  - name: templates\n    rules:\n");
    let mut tests = String::from(
        "rule_files: [rules.yml]\nevaluation_interval: 1m\ntests:\n  - interval: 1m\n    input_series: []\n    alert_rule_test:\n",
    );
    let quote = |s: &str| serde_json::to_string(s).expect("string");
    for (i, v) in VALUES.iter().enumerate() {
        let expr = if *v == 0.0 || v.fract() != 0.0 || v.abs() > 1e15 {
            format!("{v:e}")
        } else {
            format!("{v}")
        };
        rules.push_str(&format!(
            "      - alert: A{i}\n        expr: label_replace(vector({expr}), \"model\", \"fraud\", \"\", \"\")\n        annotations:\n"
        ));
        tests.push_str(&format!(
            "      - eval_time: 1m\n        alertname: A{i}\n        exp_alerts:\n          - exp_labels: {{model: fraud}}\n            exp_annotations:\n"
        ));
        for (j, t) in TEMPLATES.iter().enumerate() {
            rules.push_str(&format!("          t{j}: {}\n", quote(t)));
            tests.push_str(&format!(
                "              t{j}: {}\n",
                quote(&expand(t, &labels, Some(*v)))
            ));
        }
    }
    std::fs::write(dir.path().join("rules.yml"), &rules).expect("write");
    std::fs::write(dir.path().join("test.yml"), &tests).expect("write");
    let (ok, out) = promtool(dir.path(), &["test", "rules", "test.yml"]);
    assert!(
        ok,
        "promtool disagrees with driftgauge's expansions:\n{out}"
    );
}
