//! Fuzz target: PromQL-style selectors. The first line of the input is the selector; the rest
//! gives extra label sets (`name=value` a line, a blank line between sets). Parsing never
//! panics; a parsed selector reparses from its text, matching never panics, and a selector
//! that fixes a metric name matches no series of another name.

#![no_main]

use driftgauge::labels::Labels;
use driftgauge::config::Selector;
use libfuzzer_sys::fuzz_target;

fn fixed_label_sets() -> Vec<(String, Labels)> {
    let set = |pairs: &[(&str, &str)]| -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    vec![
        ("feature_value".into(), Labels::new()),
        (
            "feature_value".into(),
            set(&[("model", "fraud"), ("feature", "amount")]),
        ),
        (
            "model_accuracy".into(),
            set(&[("model", "fraud"), ("env", "prod")]),
        ),
        (
            "x".into(),
            set(&[("a", ""), ("b", "line1\nline2"), ("c", "é∂")]),
        ),
    ]
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let source = lines.next().unwrap_or_default();
    let Ok(sel) = Selector::parse(source) else {
        return;
    };
    let again = Selector::parse(sel.as_str()).expect("a parsed selector reparses");
    assert!(again == sel);

    let mut sets = fixed_label_sets();
    let mut metric = String::from("feature_value");
    let mut labels = Labels::new();
    for line in lines {
        if line.is_empty() {
            sets.push((metric.clone(), std::mem::take(&mut labels)));
            continue;
        }
        match line.split_once('=') {
            Some(("__name__", v)) => metric = v.to_string(),
            Some((k, v)) => {
                labels.insert(k.to_string(), v.to_string());
            }
            None => metric = line.to_string(),
        }
    }
    sets.push((metric, labels));

    for (metric, labels) in &sets {
        let m = sel.matches(metric, labels);
        assert_eq!(m, again.matches(metric, labels));
        if let Some(fixed) = sel.metric_name() {
            if fixed != metric {
                assert!(!m, "{source:?} fixes {fixed:?} yet matches {metric:?}");
            }
        }
    }
});
