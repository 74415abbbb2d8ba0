//! `driftgauge eval` on datasets: a reference and a current table (CSV, Parquet or a 2-D
//! `.npy`), every selected column tested on its own (KS for numbers, chi-squared for
//! categories), the p-values corrected across columns, one report.
//!
//! Files: `csv.rs`, `parquet.rs` and `npy.rs` read tables; `report.rs` writes text, JSON and
//! HTML. Columns are read and tested in parallel on rayon's pool, a few at a time: a Parquet
//! or `.npy` column is read when its test starts and dropped when it ends, so memory is
//! bounded by the columns being tested, not by the files (a CSV, which is stored row after
//! row, is read whole first).
//!
//! Missing values (an empty field, `nan`, `NA`, `N/A`, `null`, `None`, a Parquet null, and a
//! non-finite number) are skipped and counted per column. A column is numeric when every
//! value it has in both files is a number (and it is not named by `categorical`), else
//! categorical: then each distinct text is a category, numbers included (by their shortest
//! round-trip text, so `1.0` and `1` are one category).

pub mod csv;
pub mod npy;
pub mod parquet;
pub mod report;

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::Serialize;

use crate::detect::chi2::{chi2_contingency, Lambda};
use crate::detect::fdr::{bonferroni, false_discovery_control, FdrMethod};
use crate::detect::ks::{ks_2samp, Alternative, Method};
use crate::detect::report::ks_verdict;
use crate::detect::sort::sorted_copy;
use crate::formats::svg::{quantile_points, QUANTILE_POINTS};

/// Why a dataset could not be read or evaluated. Each names the file, and the row and
/// column where it can.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: row {row}: unreadable CSV: {reason}")]
    Csv {
        path: PathBuf,
        row: u64,
        reason: String,
    },
    #[error("{path}: no header row")]
    NoHeader { path: PathBuf },
    #[error("{path}: row {row} has {found} fields, the header has {expected}")]
    Ragged {
        path: PathBuf,
        row: u64,
        found: usize,
        expected: usize,
    },
    #[error("{path}: {source}")]
    Npy {
        path: PathBuf,
        source: crate::formats::npy::NpyError,
    },
    #[error("{path}: {reason}")]
    Parquet { path: PathBuf, reason: String },
    #[error("{path}: column {column:?}: {reason}")]
    ParquetColumn {
        path: PathBuf,
        column: String,
        reason: String,
    },
    #[error("column {column:?} is not in {path} (it has {available})")]
    NoSuchColumn {
        path: PathBuf,
        column: String,
        available: String,
    },
    #[error("{path}: the column name {column:?} appears twice")]
    DuplicateColumn { path: PathBuf, column: String },
    #[error("no columns to compare")]
    NoColumns,
}

/// Text that means "no value" in a CSV field (compared after trimming, case-insensitively
/// for `nan`).
pub fn is_missing(field: &str) -> bool {
    matches!(
        field,
        "" | "NA" | "N/A" | "na" | "n/a" | "null" | "NULL" | "None"
    ) || field.eq_ignore_ascii_case("nan")
}

/// One column of one file, as read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ColumnData {
    /// The finite numbers, in file order.
    pub numbers: Vec<f64>,
    /// Counts of values that are not numbers (categories), when there are any.
    pub texts: HashMap<String, u64>,
    /// Values skipped: empty, `nan`, `NA`, nulls, non-finite numbers.
    pub missing: u64,
}

impl ColumnData {
    /// Adds one CSV field (already trimmed).
    pub fn push_field(&mut self, field: &str) {
        if is_missing(field) {
            self.missing += 1;
            return;
        }
        match field.parse::<f64>() {
            Ok(x) if x.is_finite() => self.numbers.push(x),
            Ok(_) => self.missing += 1,
            Err(_) => *self.texts.entry(field.to_string()).or_insert(0) += 1,
        }
    }

    /// Adds a number (from a binary column): NaN and infinities count as missing.
    pub fn push_number(&mut self, x: f64) {
        if x.is_finite() {
            self.numbers.push(x);
        } else {
            self.missing += 1;
        }
    }

    /// Category counts: the texts, and the numbers by their shortest round-trip text.
    fn categories(&self) -> HashMap<String, u64> {
        let mut out = self.texts.clone();
        for x in &self.numbers {
            *out.entry(category_of(*x)).or_insert(0) += 1;
        }
        out
    }
}

/// A number as a category: its shortest round-trip text (`1` for `1.0`, `-0` for `-0.0`).
fn category_of(x: f64) -> String {
    format!("{x}")
}

/// A table file, opened: its column names, and a way to read one column (from any thread).
pub enum Table {
    /// A CSV, read whole (its columns in memory).
    Csv {
        path: PathBuf,
        names: Vec<String>,
        columns: Vec<ColumnData>,
    },
    Parquet(parquet::ParquetTable),
    Npy(npy::NpyTable),
}

impl Table {
    pub fn path(&self) -> &Path {
        match self {
            Table::Csv { path, .. } => path,
            Table::Parquet(t) => &t.path,
            Table::Npy(t) => &t.path,
        }
    }

    pub fn names(&self) -> &[String] {
        match self {
            Table::Csv { names, .. } => names,
            Table::Parquet(t) => &t.names,
            Table::Npy(t) => &t.names,
        }
    }

    /// Rows in the table.
    pub fn rows(&self) -> u64 {
        match self {
            Table::Csv { columns, .. } => columns.first().map_or(0, |c| {
                c.numbers.len() as u64 + c.texts.values().sum::<u64>() + c.missing
            }),
            Table::Parquet(t) => t.rows,
            Table::Npy(t) => t.table.rows as u64,
        }
    }

    /// How many neighbouring columns are best read together (a C-order `.npy` stores each
    /// row's values side by side); 1 for the others, whose columns are read one by one.
    /// Takes back a column's numbers once its test is done (a Parquet table reuses them).
    fn recycle(&self, numbers: Vec<f64>) {
        if let Table::Parquet(t) = self {
            t.recycle(numbers);
        }
    }

    fn block(&self) -> usize {
        match self {
            Table::Npy(t) => t.block(),
            _ => 1,
        }
    }

    /// The columns `indices` (of [`Table::names`]).
    pub fn columns(&self, indices: &[usize]) -> Result<Vec<Cow<'_, ColumnData>>, DatasetError> {
        match self {
            Table::Csv { columns, .. } => Ok(indices
                .iter()
                .map(|&i| Cow::Borrowed(&columns[i]))
                .collect()),
            Table::Parquet(t) => indices
                .iter()
                .map(|&i| t.column(i).map(Cow::Owned))
                .collect(),
            Table::Npy(t) => Ok(t.columns(indices).into_iter().map(Cow::Owned).collect()),
        }
    }

    fn index_of(&self, name: &str) -> Result<usize, DatasetError> {
        self.names()
            .iter()
            .position(|n| n == name)
            .ok_or_else(|| DatasetError::NoSuchColumn {
                path: self.path().to_path_buf(),
                column: name.to_string(),
                available: crate::formats::clip(&self.names().join(", ")),
            })
    }
}

/// What kind of file a path holds, by its first bytes (and, for text, its first record).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Parquet,
    /// A `.npy` file of two dimensions.
    NpyTable,
    /// A `.npy` file of one dimension (one sample: the single-column `eval`).
    NpyVector,
    /// Text whose first record is a header (not all numbers).
    CsvTable,
    /// Text of one value per line (the single-column `eval`), or something unreadable.
    Values,
}

/// Looks at the start of `path` to tell a table from a single sample. `delimiter` splits the
/// first record of a text file. Unreadable files are `Values` (the caller's reader then
/// reports why).
pub fn sniff(path: &Path, delimiter: u8) -> Kind {
    use std::io::Read;
    let mut head = Vec::new();
    let read = std::fs::File::open(path).and_then(|f| f.take(1 << 16).read_to_end(&mut head));
    if read.is_err() {
        return Kind::Values;
    }
    if head.starts_with(b"PAR1") {
        return Kind::Parquet;
    }
    if head.starts_with(crate::formats::npy::MAGIC) {
        // The header of a big file is complete in its first 64 KiB (it is at most that).
        return match npy::dimensions(&head) {
            Some(2) => Kind::NpyTable,
            _ => Kind::NpyVector,
        };
    }
    let text = String::from_utf8_lossy(&head);
    let first = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'));
    match first {
        Some(line) => {
            let header = line
                .split(char::from(delimiter))
                .map(|f| f.trim().trim_matches('"'))
                .any(|f| f.parse::<f64>().is_err() && !is_missing(f));
            if header {
                Kind::CsvTable
            } else {
                Kind::Values
            }
        }
        None => Kind::Values,
    }
}

/// Opens a table file of any supported kind.
pub fn open(path: &Path, delimiter: u8, wanted: Option<&[String]>) -> Result<Table, DatasetError> {
    match sniff(path, delimiter) {
        Kind::Parquet => parquet::open(path).map(Table::Parquet),
        Kind::NpyTable | Kind::NpyVector => npy::open(path).map(Table::Npy),
        Kind::CsvTable | Kind::Values => csv::read(path, delimiter, wanted),
    }
}

/// How p-values are corrected across the columns tested: the rules' `correction:`.
pub use crate::detect::budget::Correction;

/// The options of one dataset evaluation.
#[derive(Debug, Clone)]
pub struct Options {
    /// Columns to test, by name; `None`: every column of the reference.
    pub columns: Option<Vec<String>>,
    /// Columns tested as categories even when all their values are numbers.
    pub categorical: Vec<String>,
    pub alternative: Alternative,
    pub method: Method,
    pub alpha: f64,
    /// KS: with evidence, D >= this is drifted, else warning.
    pub statistic: Option<f64>,
    pub correction: Correction,
    /// Keep plot summaries (quantile points, category counts) for the HTML report.
    pub summaries: bool,
}

/// A column's distributions, summarised for a plot.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Summary {
    /// [`QUANTILE_POINTS`] values at evenly spaced probabilities, per sample.
    Quantiles {
        reference: Vec<f64>,
        current: Vec<f64>,
    },
    /// `(category, reference count, current count)`, largest first.
    Categories { counts: Vec<(String, f64, f64)> },
}

/// The outcome for one column.
#[derive(Debug, Clone, Serialize)]
pub struct ColumnReport {
    pub name: String,
    /// `numeric` or `categorical`.
    pub kind: &'static str,
    /// `ks` or `chi2`.
    pub detector: &'static str,
    pub statistic: Option<f64>,
    pub p_value: Option<f64>,
    /// The p-value after the correction across columns.
    pub p_adjusted: Option<f64>,
    /// `stable`, `warning`, `drifted`, or `error` (no test: see `error`).
    pub status: &'static str,
    pub n_reference: u64,
    pub n_current: u64,
    pub missing_reference: u64,
    pub missing_current: u64,
    /// Categories seen in either file (categorical columns).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub categories: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip)]
    pub summary: Option<Summary>,
}

/// The whole evaluation.
#[derive(Debug, Clone, Serialize)]
pub struct DatasetReport {
    pub reference: String,
    pub current: String,
    pub rows_reference: u64,
    pub rows_current: u64,
    pub alpha: f64,
    pub correction: &'static str,
    /// Columns tested (without an error).
    pub tested: usize,
    pub drifted: usize,
    pub warning: usize,
    pub errors: usize,
    pub columns: Vec<ColumnReport>,
}

/// The columns to test: `options.columns` (each must be in both tables), or every column of
/// the reference that the current table also has.
fn select(
    reference: &Table,
    current: &Table,
    options: &Options,
) -> Result<Vec<(String, usize, usize)>, DatasetError> {
    for table in [reference, current] {
        let mut seen = std::collections::HashSet::new();
        for n in table.names() {
            if !seen.insert(n) {
                return Err(DatasetError::DuplicateColumn {
                    path: table.path().to_path_buf(),
                    column: n.clone(),
                });
            }
        }
    }
    let out: Vec<(String, usize, usize)> = match &options.columns {
        Some(names) => names
            .iter()
            .map(|n| Ok((n.clone(), reference.index_of(n)?, current.index_of(n)?)))
            .collect::<Result<_, DatasetError>>()?,
        None => reference
            .names()
            .iter()
            .enumerate()
            .filter_map(|(i, n)| {
                let j = current.names().iter().position(|m| m == n)?;
                Some((n.clone(), i, j))
            })
            .collect(),
    };
    if out.is_empty() {
        return Err(DatasetError::NoColumns);
    }
    Ok(out)
}

/// Tests every selected column of `reference` against `current`, in parallel, calling
/// `progress(done, total)` once per column done (from any thread). Reading errors stop the evaluation; a
/// column that cannot be tested (no values left, one category) is reported with its error.
pub fn evaluate(
    reference: &Table,
    current: &Table,
    options: &Options,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<DatasetReport, DatasetError> {
    let selected = select(reference, current, options)?;
    let done = std::sync::atomic::AtomicUsize::new(0);
    // Neighbouring columns of a C-order `.npy` are read together; other tables' one by one,
    // so a few columns are in memory at a time.
    let block = reference.block().min(current.block()).max(1);
    let chunks: Vec<&[(String, usize, usize)]> = selected.chunks(block).collect();
    let mut columns: Vec<ColumnReport> = chunks
        .par_iter()
        .with_max_len(1)
        .map(|chunk| {
            let a = reference.columns(&chunk.iter().map(|c| c.1).collect::<Vec<_>>())?;
            let b = current.columns(&chunk.iter().map(|c| c.2).collect::<Vec<_>>())?;
            let reports: Vec<ColumnReport> = (0..chunk.len())
                .into_par_iter()
                .map(|k| {
                    let (name, a, b) = (&chunk[k].0, &a[k], &b[k]);
                    let forced = options.categorical.iter().any(|c| c == name);
                    test_column(name, a, b, forced, options)
                })
                .collect();
            for (table, columns) in [(reference, a), (current, b)] {
                for c in columns {
                    if let Cow::Owned(c) = c {
                        table.recycle(c.numbers);
                    }
                }
            }
            let n = done.fetch_add(chunk.len(), std::sync::atomic::Ordering::Relaxed) + chunk.len();
            progress(n, selected.len());
            Ok(reports)
        })
        .collect::<Result<Vec<Vec<ColumnReport>>, DatasetError>>()?
        .into_iter()
        .flatten()
        .collect();
    correct(&mut columns, options);
    let count = |s: &str| columns.iter().filter(|c| c.status == s).count();
    Ok(DatasetReport {
        reference: reference.path().display().to_string(),
        current: current.path().display().to_string(),
        rows_reference: reference.rows(),
        rows_current: current.rows(),
        alpha: options.alpha,
        correction: options.correction.as_str(),
        tested: columns.iter().filter(|c| c.error.is_none()).count(),
        drifted: count("drifted"),
        warning: count("warning"),
        errors: count("error"),
        columns,
    })
}

/// One column's test, before correction (`p_adjusted` is the raw p-value for now).
fn test_column(
    name: &str,
    a: &ColumnData,
    b: &ColumnData,
    forced_categorical: bool,
    options: &Options,
) -> ColumnReport {
    let categorical = forced_categorical || !a.texts.is_empty() || !b.texts.is_empty();
    let mut report = ColumnReport {
        name: name.to_string(),
        kind: if categorical {
            "categorical"
        } else {
            "numeric"
        },
        detector: if categorical { "chi2" } else { "ks" },
        statistic: None,
        p_value: None,
        p_adjusted: None,
        status: "error",
        n_reference: a.numbers.len() as u64 + a.texts.values().sum::<u64>(),
        n_current: b.numbers.len() as u64 + b.texts.values().sum::<u64>(),
        missing_reference: a.missing,
        missing_current: b.missing,
        categories: None,
        error: None,
        summary: None,
    };
    if report.n_reference == 0 || report.n_current == 0 {
        let which = if report.n_reference == 0 {
            "reference"
        } else {
            "current"
        };
        report.error = Some(format!("no values in the {which} file (all missing)"));
        return report;
    }
    if categorical {
        let ca = a.categories();
        let cb = b.categories();
        let mut counts: Vec<(String, f64, f64)> = ca
            .iter()
            .map(|(k, &n)| (k.clone(), n as f64, cb.get(k).copied().unwrap_or(0) as f64))
            .collect();
        counts.extend(
            cb.iter()
                .filter(|(k, _)| !ca.contains_key(*k))
                .map(|(k, &n)| (k.clone(), 0.0, n as f64)),
        );
        counts.sort_by(|x, y| {
            (y.1 + y.2)
                .total_cmp(&(x.1 + x.2))
                .then_with(|| x.0.cmp(&y.0))
        });
        report.categories = Some(counts.len());
        let rows = [
            counts.iter().map(|c| c.1).collect::<Vec<f64>>(),
            counts.iter().map(|c| c.2).collect::<Vec<f64>>(),
        ];
        match chi2_contingency(&rows, false, Lambda::Pearson) {
            Ok(r) => {
                report.statistic = Some(r.statistic);
                report.p_value = Some(r.p_value);
            }
            Err(e) => report.error = Some(e.to_string()),
        }
        if options.summaries {
            report.summary = Some(Summary::Categories { counts });
        }
    } else {
        match ks_2samp(&a.numbers, &b.numbers, options.alternative, options.method) {
            Ok(r) => {
                report.statistic = Some(r.statistic);
                report.p_value = Some(r.p_value);
            }
            Err(e) => report.error = Some(e.to_string()),
        }
        if options.summaries {
            report.summary = Some(Summary::Quantiles {
                reference: quantile_points(&sorted_copy(&a.numbers), QUANTILE_POINTS),
                current: quantile_points(&sorted_copy(&b.numbers), QUANTILE_POINTS),
            });
        }
    }
    report.p_adjusted = report.p_value;
    report
}

/// Adjusts the p-values of the columns tested and sets each status.
fn correct(columns: &mut [ColumnReport], options: &Options) {
    // NaN p-values (KS asymptotic with n = m = 1) are no evidence: left out, as 1.
    let tested: Vec<usize> = (0..columns.len())
        .filter(|&i| columns[i].p_value.is_some())
        .collect();
    let ps: Vec<f64> = tested
        .iter()
        .map(|&i| columns[i].p_value.filter(|p| !p.is_nan()).unwrap_or(1.0))
        .collect();
    let adjusted = match options.correction {
        Correction::None => Ok(ps.clone()),
        Correction::Bonferroni => bonferroni(&ps),
        Correction::Bh => false_discovery_control(&ps, FdrMethod::Bh),
    }
    .unwrap_or(ps);
    for (&i, &p) in tested.iter().zip(&adjusted) {
        let c = &mut columns[i];
        c.p_adjusted = Some(p);
        let threshold = if c.detector == "ks" {
            options.statistic
        } else {
            None
        };
        c.status = ks_verdict(c.statistic.unwrap_or(0.0), p, options.alpha, threshold).as_str();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> Options {
        Options {
            columns: None,
            categorical: vec![],
            alternative: Alternative::TwoSided,
            method: Method::Auto,
            alpha: 0.05,
            statistic: None,
            correction: Correction::None,
            summaries: true,
        }
    }

    fn col(fields: &[&str]) -> ColumnData {
        let mut c = ColumnData::default();
        for f in fields {
            c.push_field(f);
        }
        c
    }

    #[test]
    fn fields_are_numbers_categories_or_missing() {
        let c = col(&["1", "", "nan", "NaN", "NA", "x", "inf", "2.5", "x", "null"]);
        assert_eq!(c.numbers, vec![1.0, 2.5]);
        assert_eq!(c.missing, 6);
        assert_eq!(c.texts.get("x"), Some(&2));
    }

    #[test]
    fn a_column_with_any_text_is_categorical_and_numbers_join_their_category() {
        let a = col(&["1", "1.0", "FR", "FR"]);
        let b = col(&["1", "DE", "DE", "DE"]);
        let r = test_column("country", &a, &b, false, &options());
        assert_eq!(
            (r.kind, r.detector, r.categories),
            ("categorical", "chi2", Some(3))
        );
        let Some(Summary::Categories { counts }) = &r.summary else {
            panic!("{:?}", r.summary)
        };
        assert!(counts.contains(&("1".to_string(), 2.0, 1.0)), "{counts:?}");
        assert!(r.p_value.is_some_and(|p| p > 0.0 && p < 1.0), "{r:?}");
    }

    #[test]
    fn all_missing_is_a_column_error_not_a_failure() {
        let r = test_column("x", &col(&["", "nan"]), &col(&["1"]), false, &options());
        assert_eq!(r.status, "error");
        assert_eq!(
            r.error.as_deref(),
            Some("no values in the reference file (all missing)")
        );
        assert_eq!(r.missing_reference, 2);
    }

    #[test]
    fn corrections_change_the_verdicts() {
        let mk = |p: f64| ColumnReport {
            name: String::new(),
            kind: "numeric",
            detector: "ks",
            statistic: Some(0.5),
            p_value: Some(p),
            p_adjusted: None,
            status: "error",
            n_reference: 1,
            n_current: 1,
            missing_reference: 0,
            missing_current: 0,
            categories: None,
            error: None,
            summary: None,
        };
        let statuses = |correction| {
            let mut cols = vec![mk(0.01), mk(0.02), mk(0.04), mk(0.9)];
            correct(
                &mut cols,
                &Options {
                    correction,
                    ..options()
                },
            );
            cols.iter().map(|c| c.status).collect::<Vec<_>>()
        };
        assert_eq!(
            statuses(Correction::None),
            ["drifted", "drifted", "drifted", "stable"]
        );
        assert_eq!(
            statuses(Correction::Bonferroni),
            ["drifted", "stable", "stable", "stable"]
        );
        // BH: 0.01*4/1 = 0.04, 0.02*4/2 = 0.04, 0.04*4/3 = 0.053.
        assert_eq!(
            statuses(Correction::Bh),
            ["drifted", "drifted", "stable", "stable"]
        );
    }
}
