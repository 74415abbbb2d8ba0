//! Checks the detectors against SciPy vector files (the schema of `tests/data/reference/`):
//! `cargo run --release --example scipy_parity -- FILE.json...` prints, per file and field,
//! the worst absolute and relative error and how many values fall outside the tolerance, and
//! exits 1 if any does. `bench/scipy_parity.py` writes fresh random files with live SciPy and
//! runs this; the reference files themselves work too.
//!
//! Tolerances: statistics and distances `|d| <= 1e-12 max(1, |want|)`; p-values and the
//! other derived values (expected frequencies, adjusted p-values) `|d| <= 1e-12` or
//! `|d| <= 1e-9 |want|`; discrete fields (dof, method, p-value limit) exactly.

use std::process::ExitCode;

use driftgauge::detect::anderson::{anderson_ksamp, Variant};
use driftgauge::detect::binned::{test_counts, BinnedTest};
use driftgauge::detect::chi2::{chi2_contingency, Lambda};
use driftgauge::detect::cvm::{cramervonmises_2samp, CvmMethod};
use driftgauge::detect::divergence::{jensenshannon, Base};
use driftgauge::detect::energy::energy_distance;
use driftgauge::detect::fdr::{false_discovery_control, FdrMethod};
use driftgauge::detect::wasserstein::{wasserstein_distance, DistanceError};
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
struct File {
    family: String,
    cases: Vec<Value>,
}

/// How one field is compared.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Statistic,
    PValue,
}

#[derive(Default)]
struct FieldStats {
    values: usize,
    worst_abs: (f64, String),
    worst_rel: (f64, String),
    outside: usize,
}

#[derive(Default)]
struct Report {
    fields: Vec<(String, FieldStats)>,
    failures: Vec<String>,
}

impl Report {
    fn num(&mut self, case: &str, field: &str, kind: Kind, got: f64, want: f64) {
        let abs = if got == want || (got.is_nan() && want.is_nan()) {
            0.0
        } else if got.is_nan() || want.is_nan() {
            f64::INFINITY
        } else {
            (got - want).abs()
        };
        let rel = if abs == 0.0 { 0.0 } else { abs / want.abs() };
        let ok = match kind {
            Kind::Statistic => abs <= 1e-12 * want.abs().max(1.0),
            Kind::PValue => abs <= 1e-12 || abs <= 1e-9 * want.abs(),
        };
        let stats = match self.fields.iter_mut().position(|f| f.0 == field) {
            Some(i) => &mut self.fields[i].1,
            None => {
                self.fields.push((field.to_string(), FieldStats::default()));
                &mut self.fields.last_mut().expect("just pushed").1
            }
        };
        stats.values += 1;
        if abs > stats.worst_abs.0 {
            stats.worst_abs = (abs, case.to_string());
        }
        if rel > stats.worst_rel.0 {
            stats.worst_rel = (rel, case.to_string());
        }
        if !ok {
            stats.outside += 1;
            self.failures
                .push(format!("{case}: {field} {got:e} != {want:e}"));
        }
    }

    fn same<T: PartialEq + std::fmt::Debug>(&mut self, case: &str, field: &str, got: T, want: T) {
        if got != want {
            self.failures
                .push(format!("{case}: {field} {got:?} != {want:?}"));
        }
    }

    fn fail(&mut self, case: &str, message: impl std::fmt::Display) {
        self.failures.push(format!("{case}: {message}"));
    }
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_f64).collect())
        .unwrap_or_default()
}

fn table(v: &Value) -> Vec<Vec<f64>> {
    v.as_array()
        .map(|a| a.iter().map(floats).collect())
        .unwrap_or_default()
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

fn weights(v: &Value) -> Option<Vec<f64>> {
    v.as_array().map(|_| floats(v))
}

fn check_case(family: &str, c: &Value, r: &mut Report) {
    let name = s(&c["name"]).to_string();
    let name = name.as_str();
    match family {
        "ks_binned" => {
            let (a, b) = (floats(&c["reference_counts"]), floats(&c["current_counts"]));
            match test_counts(BinnedTest::Ks, &a, &b, false) {
                Ok(got) => {
                    r.num(
                        name,
                        "statistic",
                        Kind::Statistic,
                        got.statistic,
                        f(&c["statistic"]),
                    );
                    r.num(
                        name,
                        "pvalue",
                        Kind::PValue,
                        got.p_value.unwrap_or(f64::NAN),
                        f(&c["pvalue"]),
                    );
                }
                Err(e) => r.fail(name, e),
            }
        }
        "cramervonmises_2samp" => {
            let Some(method) = CvmMethod::parse(s(&c["method"])) else {
                return r.fail(name, "bad method");
            };
            match cramervonmises_2samp(floats(&c["x"]), floats(&c["y"]), method) {
                Ok(got) => {
                    r.num(
                        name,
                        "statistic",
                        Kind::Statistic,
                        got.statistic,
                        f(&c["statistic"]),
                    );
                    r.num(name, "pvalue", Kind::PValue, got.p_value, f(&c["pvalue"]));
                    r.same(
                        name,
                        "method_used",
                        got.method.as_str(),
                        s(&c["method_used"]),
                    );
                }
                Err(e) => r.fail(name, e),
            }
        }
        "anderson_ksamp" => {
            let Some(variant) = Variant::parse(s(&c["variant"])) else {
                return r.fail(name, "bad variant");
            };
            match anderson_ksamp(&table(&c["samples"]), variant) {
                Ok(got) => {
                    r.num(
                        name,
                        "statistic",
                        Kind::Statistic,
                        got.statistic,
                        f(&c["statistic"]),
                    );
                    r.num(name, "pvalue", Kind::PValue, got.p_value, f(&c["pvalue"]));
                    r.same(
                        name,
                        "pvalue_limited",
                        got.limited.map(|l| l.as_str()),
                        c["pvalue_limited"].as_str(),
                    );
                    for (g, w) in got
                        .critical_values
                        .iter()
                        .zip(floats(&c["critical_values"]))
                    {
                        r.num(name, "critical_values", Kind::Statistic, *g, w);
                    }
                }
                Err(e) => r.fail(name, e),
            }
        }
        "wasserstein" | "energy_distance" => {
            let (uw, vw) = (weights(&c["u_weights"]), weights(&c["v_weights"]));
            type Distance =
                fn(&[f64], &[f64], Option<&[f64]>, Option<&[f64]>) -> Result<f64, DistanceError>;
            let distance: Distance = if family == "wasserstein" {
                |u, v, uw, vw| wasserstein_distance(u, v, uw, vw)
            } else {
                |u, v, uw, vw| energy_distance(u, v, uw, vw)
            };
            match distance(
                &floats(&c["u_values"]),
                &floats(&c["v_values"]),
                uw.as_deref(),
                vw.as_deref(),
            ) {
                Ok(got) => r.num(name, "distance", Kind::Statistic, got, f(&c["distance"])),
                Err(e) => r.fail(name, e),
            }
        }
        "chi2_contingency" | "power_divergence" => {
            let lambda = match &c["lambda_"] {
                Value::Null => Some(Lambda::Pearson),
                Value::String(n) => Lambda::parse(n),
                Value::Number(n) => n.as_f64().map(Lambda::Value),
                _ => None,
            };
            let Some(lambda) = lambda else {
                return r.fail(name, "bad lambda_");
            };
            let correction = c["correction"].as_bool().unwrap_or(false);
            match chi2_contingency(&table(&c["observed"]), correction, lambda) {
                Ok(got) => {
                    r.num(
                        name,
                        "statistic",
                        Kind::Statistic,
                        got.statistic,
                        f(&c["statistic"]),
                    );
                    r.num(name, "pvalue", Kind::PValue, got.p_value, f(&c["pvalue"]));
                    r.same(
                        name,
                        "dof",
                        got.dof as u64,
                        c["dof"].as_u64().unwrap_or(u64::MAX),
                    );
                    let want = table(&c["expected_freq"]);
                    r.same(
                        name,
                        "expected_freq shape",
                        got.expected.iter().map(Vec::len).collect::<Vec<_>>(),
                        want.iter().map(Vec::len).collect::<Vec<_>>(),
                    );
                    for (g, w) in got.expected.iter().flatten().zip(want.iter().flatten()) {
                        r.num(name, "expected_freq", Kind::PValue, *g, *w);
                    }
                }
                Err(e) => r.fail(name, e),
            }
        }
        "jensenshannon" => {
            let (p, q) = (floats(&c["p"]), floats(&c["q"]));
            for (base, field) in [
                (Base::Two, "distance_base2"),
                (Base::Natural, "distance_natural"),
            ] {
                match jensenshannon(&p, &q, base) {
                    Ok(got) => r.num(name, field, Kind::Statistic, got, f(&c[field])),
                    Err(e) => r.fail(name, e),
                }
            }
        }
        "false_discovery" => {
            let Some(method) = FdrMethod::parse(s(&c["method"])) else {
                return r.fail(name, "bad method");
            };
            match false_discovery_control(&floats(&c["ps"]), method) {
                Ok(got) => {
                    let want = floats(&c["adjusted"]);
                    r.same(name, "length", got.len(), want.len());
                    for (g, w) in got.iter().zip(&want) {
                        r.num(name, "adjusted", Kind::PValue, *g, *w);
                    }
                }
                Err(e) => r.fail(name, e),
            }
        }
        other => r.fail(name, format!("unknown family {other}")),
    }
}

fn main() -> ExitCode {
    let paths: Vec<String> = std::env::args().skip(1).collect();
    if paths.is_empty() {
        eprintln!("usage: scipy_parity FILE.json...");
        return ExitCode::from(2);
    }
    let mut bad = false;
    println!(
        "{:<38} {:<16} {:>6} {:>10} {:>10} {:>7}",
        "file", "field", "values", "worst abs", "worst rel", "outside"
    );
    for path in &paths {
        let file: File = match std::fs::read_to_string(path)
            .map_err(|e| e.to_string())
            .and_then(|t| serde_json::from_str(&t).map_err(|e| e.to_string()))
        {
            Ok(f) => f,
            Err(e) => {
                eprintln!("{path}: {e}");
                bad = true;
                continue;
            }
        };
        let mut report = Report::default();
        for case in &file.cases {
            check_case(&file.family, case, &mut report);
        }
        let short = std::path::Path::new(path)
            .file_name()
            .map_or(path.clone(), |n| n.to_string_lossy().into_owned());
        for (field, st) in &report.fields {
            println!(
                "{:<38} {:<16} {:>6} {:>10.2e} {:>10.2e} {:>7}   (worst: {}, {})",
                format!("{short} ({})", file.cases.len()),
                field,
                st.values,
                st.worst_abs.0,
                st.worst_rel.0,
                st.outside,
                st.worst_abs.1,
                st.worst_rel.1
            );
        }
        for failure in &report.failures {
            println!("  MISMATCH {failure}");
        }
        bad |= !report.failures.is_empty();
    }
    if bad {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
