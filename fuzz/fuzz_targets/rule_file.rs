//! Fuzz target: rule files and the service config, from arbitrary text, must give groups or
//! diagnostics — never a panic, a hang or unbounded memory.

#![no_main]

use std::io;
use std::path::Path;
use std::time::Duration;

use driftgauge::config::{parse_config, parse_rule_file, RuleContext, SecretSource};
use libfuzzer_sys::fuzz_target;

/// Every secret file is missing: the config parser must report it, not fail otherwise.
struct NoSecrets;

impl SecretSource for NoSecrets {
    fn read(&self, _path: &Path) -> io::Result<String> {
        Err(io::Error::new(io::ErrorKind::NotFound, "fuzz: no secrets"))
    }
}

fn check_diags(diags: &[driftgauge::config::Diagnostic]) {
    assert!(!diags.is_empty(), "an error without a diagnostic");
    for d in diags {
        assert_eq!(d.file, "fuzz.yml", "{d}");
        assert!(d.line >= 1 && d.col >= 1, "position not 1-based: {d}");
        let _ = d.to_string();
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let ctx = RuleContext {
        base_dir: Path::new("/nonexistent"),
        default_interval: Duration::from_secs(15),
        webhooks: None,
    };
    if let Err(diags) = parse_rule_file(&text, "fuzz.yml", &ctx) {
        check_diags(&diags);
    }
    if let Err(diags) = parse_config(&text, "fuzz.yml", Path::new("/nonexistent"), &NoSecrets) {
        check_diags(&diags);
    }
});
