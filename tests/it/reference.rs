//! What the SciPy vector tests share: reading `tests/data/reference/*.json` (copies of
//! `../shared/reference/`, SciPy 1.17.1), the tolerances, and a tally of the worst errors.
//!
//! A missing or unreadable file fails the test that reads it, naming the path.

use serde::de::DeserializeOwned;
use serde::Deserialize;

/// Statistics and distances: `|got - want| <= 1e-12`.
pub const STAT_ABS_TOL: f64 = 1e-12;
/// p-values: `|got - want| <= 1e-9 * |want|` or `<= 1e-12`.
pub const P_REL_TOL: f64 = 1e-9;
pub const P_ABS_TOL: f64 = 1e-12;

/// The fields every vector file has around its cases.
#[derive(Deserialize)]
pub struct VectorFile<C> {
    pub family: String,
    pub case_count: usize,
    pub cases: Vec<C>,
}

/// Reads `tests/data/reference/{name}`, checking its family and case count.
pub fn load<C: DeserializeOwned>(name: &str, family: &str) -> VectorFile<C> {
    let path = format!("{}/tests/data/reference/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"));
    let file: VectorFile<C> =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("cannot parse {path}: {e}"));
    assert_eq!(file.family, family, "{path}: family");
    assert_eq!(file.cases.len(), file.case_count, "{path}: case_count");
    assert!(!file.cases.is_empty(), "{path}: no cases");
    file
}

/// `|got - want|`, infinite when exactly one is NaN, 0 when both are (or both the same
/// infinity).
pub fn abs_err(got: f64, want: f64) -> f64 {
    if got == want || (got.is_nan() && want.is_nan()) {
        0.0
    } else if got.is_nan() || want.is_nan() {
        f64::INFINITY
    } else {
        (got - want).abs()
    }
}

/// `|got - want| / |want|` (0 when equal, infinite when `want` is 0 and `got` is not).
pub fn rel_err(got: f64, want: f64) -> f64 {
    let abs = abs_err(got, want);
    if abs == 0.0 {
        0.0
    } else {
        abs / want.abs()
    }
}

pub fn stat_close(got: f64, want: f64) -> bool {
    abs_err(got, want) <= STAT_ABS_TOL
}

pub fn p_close(got: f64, want: f64) -> bool {
    let abs = abs_err(got, want);
    abs <= P_ABS_TOL || abs <= P_REL_TOL * want.abs()
}

/// Collects mismatches and the worst errors of one vector file.
#[derive(Default)]
pub struct Tally {
    failures: Vec<String>,
    worst: Vec<(String, f64, String)>,
}

impl Tally {
    /// Records an absolute error of a statistic-like field; a mismatch beyond `STAT_ABS_TOL`.
    pub fn stat(&mut self, case: &str, field: &str, got: f64, want: f64) {
        self.note(field, case, abs_err(got, want));
        if !stat_close(got, want) {
            self.fail(case, format!("{field} {got:e} != {want:e}"));
        }
    }

    /// Records the absolute and relative errors of a p-value-like field; a mismatch beyond
    /// both tolerances.
    pub fn p(&mut self, case: &str, field: &str, got: f64, want: f64) {
        self.note(&format!("{field} (absolute)"), case, abs_err(got, want));
        self.note(&format!("{field} (relative)"), case, rel_err(got, want));
        if !p_close(got, want) {
            self.fail(case, format!("{field} {got:e} != {want:e}"));
        }
    }

    /// Records an exact comparison.
    pub fn eq<T: PartialEq + std::fmt::Debug>(&mut self, case: &str, field: &str, got: T, want: T) {
        if got != want {
            self.fail(case, format!("{field} {got:?} != {want:?}"));
        }
    }

    /// Records an error for the report only (no tolerance).
    pub fn note_only(&mut self, case: &str, field: &str, err: f64) {
        self.note(field, case, err);
    }

    pub fn fail(&mut self, case: &str, message: impl std::fmt::Display) {
        self.failures.push(format!("{case}: {message}"));
    }

    fn note(&mut self, field: &str, case: &str, err: f64) {
        match self.worst.iter_mut().find(|w| w.0 == field) {
            Some(w) if err > w.1 || (err.is_nan() && !w.1.is_nan()) => {
                (w.1, w.2) = (err, case.to_string());
            }
            Some(_) => {}
            None => self.worst.push((field.to_string(), err, case.to_string())),
        }
    }

    /// Prints the worst errors (`--nocapture` shows them) and fails on any mismatch.
    pub fn finish(self, file: &str, cases: usize) {
        for (field, err, case) in &self.worst {
            eprintln!("{file}: {cases} cases, worst {field} error {err:e} ({case})");
        }
        assert!(
            self.failures.is_empty(),
            "{} mismatches against {file}:\n  {}",
            self.failures.len(),
            self.failures.join("\n  ")
        );
    }
}
