//! `driftgauge eval` on datasets, as a process: CSV (delimiters, quoting, missing values),
//! Parquet written by the `parquet` crate (nulls, several row groups, Snappy), 2-D `.npy` in C
//! and Fortran order; each column's figures checked against the library's KS and chi2 on the
//! values as they should have been read; corrections, `--fail-on`, errors, the HTML report.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use driftgauge::detect::chi2::{chi2_contingency, Lambda};
use driftgauge::detect::ks::{ks_2samp, Alternative, Method};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_driftgauge"))
}

fn run(dir: &Path, args: &[&str]) -> Output {
    bin()
        .current_dir(dir)
        .arg("eval")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{e}"))
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: stdout {} stderr {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn column<'a>(v: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    v["columns"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("no column {name} in {v}"))
}

/// A deterministic pseudo-random sequence in [0, 1).
fn uniform(seed: u64, n: usize) -> Vec<f64> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 11) as f64 / (1u64 << 53) as f64
        })
        .collect()
}

struct Data {
    amount: Vec<Option<f64>>,
    country: Vec<Option<&'static str>>,
    count: Vec<i64>,
}

fn data(seed: u64, shift: f64, n: usize) -> Data {
    let u = uniform(seed, 3 * n);
    let countries = ["FR", "DE", "US"];
    Data {
        amount: (0..n)
            .map(|i| (i % 37 != 5).then(|| (u[i] * 10.0 + shift * 3.0).round() / 4.0))
            .collect(),
        country: (0..n)
            .map(|i| {
                (i % 41 != 3).then(|| {
                    let k = (u[n + i] * (3.0 + shift * 2.0)) as usize;
                    countries[k.min(2)]
                })
            })
            .collect(),
        count: (0..n).map(|i| (u[2 * n + i] * 20.0) as i64).collect(),
    }
}

fn write_csv(path: &Path, d: &Data, delimiter: char) {
    let mut s = format!("# exported\n\"amount\"{delimiter}country{delimiter}\"note{delimiter} free\"{delimiter}count\n");
    for i in 0..d.amount.len() {
        let amount = match (d.amount[i], i % 3) {
            (Some(a), _) => a.to_string(),
            (None, 0) => String::new(),
            (None, 1) => "nan".into(),
            (None, _) => "NA".into(),
        };
        let country = d.country[i].unwrap_or("");
        s.push_str(&format!(
            "{amount}{delimiter}\"{country}\"{delimiter}\"x{delimiter} \"\"{i}\"\"\"{delimiter}{}\n",
            d.count[i]
        ));
    }
    std::fs::write(path, s).unwrap_or_else(|e| panic!("{e}"));
}

fn write_parquet(path: &Path, d: &Data) {
    use parquet::basic::Compression;
    use parquet::data_type::{ByteArray, ByteArrayType, DoubleType, Int64Type};
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    use parquet::schema::parser::parse_message_type;

    let schema = Arc::new(
        parse_message_type(
            "message t { optional double amount; optional binary country (UTF8); required int64 count; }",
        )
        .unwrap_or_else(|e| panic!("{e}")),
    );
    let props = Arc::new(
        WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .build(),
    );
    let file = std::fs::File::create(path).unwrap_or_else(|e| panic!("{e}"));
    let mut w = SerializedFileWriter::new(file, schema, props).unwrap_or_else(|e| panic!("{e}"));
    let n = d.amount.len();
    // Two row groups: a column is read from each.
    for range in [0..n / 3, n / 3..n] {
        let mut rg = w.next_row_group().unwrap_or_else(|e| panic!("{e}"));
        let mut k = 0;
        while let Some(mut col) = rg.next_column().unwrap_or_else(|e| panic!("{e}")) {
            let r = range.clone();
            match k {
                0 => {
                    let defs: Vec<i16> = d.amount[r.clone()]
                        .iter()
                        .map(|a| i16::from(a.is_some()))
                        .collect();
                    let vals: Vec<f64> = d.amount[r].iter().flatten().copied().collect();
                    col.typed::<DoubleType>()
                        .write_batch(&vals, Some(&defs), None)
                }
                1 => {
                    let defs: Vec<i16> = d.country[r.clone()]
                        .iter()
                        .map(|a| i16::from(a.is_some()))
                        .collect();
                    let vals: Vec<ByteArray> = d.country[r]
                        .iter()
                        .flatten()
                        .map(|s| ByteArray::from(*s))
                        .collect();
                    col.typed::<ByteArrayType>()
                        .write_batch(&vals, Some(&defs), None)
                }
                _ => col
                    .typed::<Int64Type>()
                    .write_batch(&d.count[r], None, None),
            }
            .unwrap_or_else(|e| panic!("{e}"));
            col.close().unwrap_or_else(|e| panic!("{e}"));
            k += 1;
        }
        rg.close().unwrap_or_else(|e| panic!("{e}"));
    }
    w.close().unwrap_or_else(|e| panic!("{e}"));
}

/// What the report must say for `amount` (KS) and `country` (chi2) of `a` against `b`.
fn check_against_library(v: &serde_json::Value, a: &Data, b: &Data) {
    let ra: Vec<f64> = a.amount.iter().flatten().copied().collect();
    let rb: Vec<f64> = b.amount.iter().flatten().copied().collect();
    let ks =
        ks_2samp(&ra, &rb, Alternative::TwoSided, Method::Auto).unwrap_or_else(|e| panic!("{e}"));
    let c = column(v, "amount");
    assert_eq!(c["kind"], "numeric");
    assert_eq!(c["statistic"].as_f64(), Some(ks.statistic), "{c}");
    assert_eq!(c["p_value"].as_f64(), Some(ks.p_value), "{c}");
    assert_eq!(c["n_reference"], ra.len());
    assert_eq!(c["missing_reference"], a.amount.len() - ra.len());
    assert_eq!(c["missing_current"], b.amount.len() - rb.len());
    let counts = |d: &Data, k: &str| d.country.iter().filter(|c| **c == Some(k)).count() as f64;
    let table: Vec<Vec<f64>> = [a, b]
        .iter()
        .map(|d| ["FR", "DE", "US"].iter().map(|k| counts(d, k)).collect())
        .collect();
    let chi = chi2_contingency(&table, false, Lambda::Pearson).unwrap_or_else(|e| panic!("{e}"));
    let c = column(v, "country");
    assert_eq!(
        (c["kind"].as_str(), c["detector"].as_str()),
        (Some("categorical"), Some("chi2"))
    );
    assert_eq!(c["categories"], 3);
    assert!(
        (c["statistic"].as_f64().unwrap_or(f64::NAN) - chi.statistic).abs() <= 1e-9 * chi.statistic,
        "{c} {chi:?}"
    );
    assert!(
        (c["p_value"].as_f64().unwrap_or(f64::NAN) - chi.p_value).abs()
            <= 1e-9 * chi.p_value.max(1e-300),
        "{c} {chi:?}"
    );
    assert_eq!(
        c["missing_reference"],
        a.country.iter().filter(|c| c.is_none()).count()
    );
}

struct Dir(tempfile::TempDir);

impl Dir {
    fn new() -> Dir {
        Dir(tempfile::tempdir().unwrap_or_else(|e| panic!("{e}")))
    }
    fn path(&self) -> &Path {
        self.0.path()
    }
    fn file(&self, name: &str) -> PathBuf {
        self.0.path().join(name)
    }
}

#[test]
fn csv_with_any_delimiter_quotes_and_missing_values_matches_the_library() {
    let dir = Dir::new();
    let (a, b) = (data(1, 0.0, 3000), data(2, 1.0, 2500));
    for (delimiter, flag) in [(';', ";"), ('\t', "tab"), (',', ",")] {
        write_csv(&dir.file("a.csv"), &a, delimiter);
        write_csv(&dir.file("b.csv"), &b, delimiter);
        let out = run(
            dir.path(),
            &[
                "--reference=a.csv",
                "--current=b.csv",
                "--output=json",
                "--correction=none",
                &format!("--delimiter={flag}"),
            ],
        );
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v = json(&out);
        check_against_library(&v, &a, &b);
        // The quoted field with the delimiter in it is one column, every value distinct.
        let note = column(&v, &format!("note{delimiter} free"));
        assert_eq!(note["categories"], 3000);
        assert_eq!(v["rows_reference"], 3000);
        assert!(out.stderr.is_empty(), "no progress bar without a terminal");
    }
}

#[test]
fn parquet_with_nulls_and_row_groups_matches_the_library_and_the_csv() {
    let dir = Dir::new();
    let (a, b) = (data(3, 0.0, 4000), data(4, 1.0, 3000));
    write_parquet(&dir.file("a.parquet"), &a);
    write_parquet(&dir.file("b.parquet"), &b);
    let out = run(
        dir.path(),
        &[
            "--reference=a.parquet",
            "--current=b.parquet",
            "--output=json",
            "--correction=none",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = json(&out);
    check_against_library(&v, &a, &b);
    assert_eq!(column(&v, "count")["kind"], "numeric");
    // The same data as CSV gives the same figures, column for column.
    write_csv(&dir.file("a.csv"), &a, ',');
    write_csv(&dir.file("b.csv"), &b, ',');
    let csv = json(&run(
        dir.path(),
        &[
            "--reference=a.csv",
            "--current=b.csv",
            "--output=json",
            "--correction=none",
            "--columns=amount,country,count",
        ],
    ));
    for name in ["amount", "country", "count"] {
        let (p, c) = (column(&v, name), column(&csv, name));
        for key in [
            "statistic",
            "p_value",
            "n_reference",
            "n_current",
            "missing_reference",
            "missing_current",
        ] {
            assert_eq!(p[key], c[key], "{name}.{key}");
        }
    }
}

fn npy_table(rows: usize, cols: usize, fortran: bool, at: impl Fn(usize, usize) -> f64) -> Vec<u8> {
    let dict = format!(
        "{{'descr': '<f8', 'fortran_order': {}, 'shape': ({rows}, {cols}), }}",
        if fortran { "True" } else { "False" }
    );
    let mut header = dict.into_bytes();
    let total = (10 + header.len() + 1).div_ceil(64) * 64;
    header.resize(total - 11, b' ');
    header.push(b'\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend((header.len() as u16).to_le_bytes());
    out.extend(header);
    let order: Vec<(usize, usize)> = if fortran {
        (0..cols)
            .flat_map(|c| (0..rows).map(move |r| (r, c)))
            .collect()
    } else {
        (0..rows)
            .flat_map(|r| (0..cols).map(move |c| (r, c)))
            .collect()
    };
    for (r, c) in order {
        out.extend(at(r, c).to_le_bytes());
    }
    out
}

#[test]
fn npy_tables_in_c_and_fortran_order_test_every_column_and_correct_across_them() {
    let dir = Dir::new();
    let (rows, cols) = (500, 19);
    let u = uniform(5, rows * cols * 2);
    // Column c of the current table is shifted by c / 20: the first columns stay, the last drift.
    let value = |t: usize, r: usize, c: usize| {
        let x = u[t * rows * cols + r * cols + c];
        if r == 7 && c == 3 {
            f64::NAN
        } else {
            x + t as f64 * c as f64 / 20.0
        }
    };
    for fortran in [false, true] {
        std::fs::write(
            dir.file("a.npy"),
            npy_table(rows, cols, fortran, |r, c| value(0, r, c)),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(
            dir.file("b.npy"),
            npy_table(rows, cols, fortran, |r, c| value(1, r, c)),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let mut drifted = Vec::new();
        for correction in ["none", "bonferroni", "bh"] {
            let out = run(
                dir.path(),
                &[
                    "--reference=a.npy",
                    "--current=b.npy",
                    "--output=json",
                    &format!("--correction={correction}"),
                ],
            );
            let v = json(&out);
            assert_eq!(v["columns"].as_array().map(Vec::len), Some(cols));
            let mut ps = Vec::new();
            for c in 0..cols {
                let col = column(&v, &c.to_string());
                let a: Vec<f64> = (0..rows)
                    .map(|r| value(0, r, c))
                    .filter(|x| x.is_finite())
                    .collect();
                let b: Vec<f64> = (0..rows)
                    .map(|r| value(1, r, c))
                    .filter(|x| x.is_finite())
                    .collect();
                let ks = ks_2samp(&a, &b, Alternative::TwoSided, Method::Auto)
                    .unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(col["p_value"].as_f64(), Some(ks.p_value), "column {c}");
                assert_eq!(col["missing_reference"], u64::from(c == 3), "column {c}");
                ps.push(ks.p_value);
            }
            let want = match correction {
                "none" => ps.clone(),
                "bonferroni" => driftgauge::detect::fdr::bonferroni(&ps).unwrap_or_default(),
                _ => driftgauge::detect::fdr::false_discovery_control(
                    &ps,
                    driftgauge::detect::fdr::FdrMethod::Bh,
                )
                .unwrap_or_default(),
            };
            for (c, p) in want.iter().enumerate() {
                assert_eq!(
                    column(&v, &c.to_string())["p_adjusted"].as_f64(),
                    Some(*p),
                    "{correction} column {c}"
                );
            }
            drifted.push(v["drifted"].as_u64().unwrap_or(0));
        }
        // Bonferroni is the strictest; none the loosest; something drifted, not everything.
        assert!(
            drifted[1] <= drifted[2] && drifted[2] <= drifted[0],
            "{drifted:?}"
        );
        assert!(drifted[1] > 0 && drifted[0] < cols as u64, "{drifted:?}");
        // --columns picks by index.
        let v = json(&run(
            dir.path(),
            &[
                "--reference=a.npy",
                "--current=b.npy",
                "--output=json",
                "--columns=0,18",
            ],
        ));
        let names: Vec<&str> = v["columns"]
            .as_array()
            .map(|c| c.iter().filter_map(|c| c["name"].as_str()).collect())
            .unwrap_or_default();
        assert_eq!(names, ["0", "18"]);
    }
}

#[test]
fn fail_on_drifted_exits_2_and_stable_data_exits_0() {
    let dir = Dir::new();
    let (a, b) = (data(6, 0.0, 2000), data(7, 1.0, 2000));
    write_csv(&dir.file("a.csv"), &a, ',');
    write_csv(&dir.file("b.csv"), &b, ',');
    write_csv(&dir.file("a2.csv"), &data(8, 0.0, 2000), ',');
    let drifted = run(
        dir.path(),
        &["--reference=a.csv", "--current=b.csv", "--fail-on=drifted"],
    );
    assert_eq!(
        drifted.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&drifted.stderr)
    );
    let text = String::from_utf8_lossy(&drifted.stdout);
    assert!(text.contains("columns drifted"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("amount ") && l.contains("drifted")),
        "{text}"
    );
    let without = run(dir.path(), &["--reference=a.csv", "--current=b.csv"]);
    assert_eq!(without.status.code(), Some(0));
    let same = run(
        dir.path(),
        &[
            "--reference=a.csv",
            "--current=a2.csv",
            "--columns=amount,count",
            "--fail-on=drifted",
        ],
    );
    assert_eq!(
        same.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&same.stdout)
    );
    // The single-column eval gates too.
    std::fs::write(dir.file("x.txt"), "1\n2\n3\n4\n5\n6\n7\n8\n").unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(dir.file("y.txt"), "11\n12\n13\n14\n15\n16\n17\n18\n")
        .unwrap_or_else(|e| panic!("{e}"));
    let single = run(
        dir.path(),
        &["--reference=x.txt", "--current=y.txt", "--fail-on=drifted"],
    );
    assert_eq!(single.status.code(), Some(2));
}

#[test]
fn bad_datasets_fail_clearly_naming_file_row_and_column() {
    let dir = Dir::new();
    std::fs::write(dir.file("a.csv"), "x,y\n1,2\n3,4\n").unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(dir.file("ragged.csv"), "x,y\n1,2\n3\n").unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(dir.file("bad.parquet"), b"PAR1 this is not parquet")
        .unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(dir.file("dup.csv"), "x,x\n1,2\n").unwrap_or_else(|e| panic!("{e}"));
    for (args, needle) in [
        (
            vec!["--current=ragged.csv"],
            "ragged.csv: row 3 has 1 fields, the header has 2",
        ),
        (
            vec!["--current=a.csv", "--columns=x,z"],
            "column \"z\" is not in a.csv (it has x, y)",
        ),
        (vec!["--current=bad.parquet"], "bad.parquet: "),
        (
            vec!["--current=dup.csv"],
            "dup.csv: the column name \"x\" appears twice",
        ),
        (
            vec!["--current=a.csv", "--correction=holm"],
            "--correction=holm: expected none, bonferroni or bh",
        ),
        (
            vec!["--current=a.csv", "--delimiter=ab"],
            "--delimiter=\"ab\": expected one character",
        ),
        (
            vec!["--current=missing.csv", "--columns=x"],
            "reading missing.csv",
        ),
        (
            vec!["--current=a.csv", "--column=x", "--columns=x"],
            "give one of them",
        ),
    ] {
        let mut all = vec!["--reference=a.csv"];
        all.extend(args.iter().copied());
        let out = run(dir.path(), &all);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn html_report_is_self_contained_with_a_plot_per_column() {
    let dir = Dir::new();
    let (a, b) = (data(9, 0.0, 1500), data(10, 1.0, 1500));
    write_csv(&dir.file("a.csv"), &a, ',');
    write_csv(&dir.file("b.csv"), &b, ',');
    let out = run(
        dir.path(),
        &[
            "--reference=a.csv",
            "--current=b.csv",
            "--columns=amount,country,count",
            "--output=html",
        ],
    );
    assert_eq!(out.status.code(), Some(0));
    let html = String::from_utf8_lossy(&out.stdout);
    assert!(html.starts_with("<!DOCTYPE html>"));
    for forbidden in ["src=", "href=", "<script", "url(", "@import"] {
        assert!(!html.contains(forbidden), "external reference {forbidden}");
    }
    assert_eq!(
        html.matches("<svg class=\"plot ecdf\"").count(),
        2,
        "amount and count"
    );
    assert_eq!(
        html.matches("<svg class=\"plot bars\"").count(),
        1,
        "country"
    );
    assert_eq!(html.matches("<path class=\"ref\"").count(), 2);
    assert_eq!(html.matches("<path class=\"cur\"").count(), 2);
    assert_eq!(html.matches("<rect class=\"ref\"").count(), 3);
    // Drifted columns come first.
    let first = html
        .find("<section class=\"card ")
        .map(|i| &html[i..i + 40]);
    assert!(first.is_some_and(|s| s.contains("drifted")), "{first:?}");
    // A plain values file has no columns to plot.
    std::fs::write(dir.file("x.txt"), "1\n2\n").unwrap_or_else(|e| panic!("{e}"));
    let out = run(
        dir.path(),
        &["--reference=x.txt", "--current=x.txt", "--output=html"],
    );
    assert_eq!(out.status.code(), Some(1));
}

/// The parquet crate's reader for `File` seeks one offset shared by every clone of the
/// handle: columns read on several threads at once read each other's pages ("EOF: Invalid
/// page header", or wrong values). Columns are now read with positional reads.
#[test]
fn many_parquet_columns_read_in_parallel_do_not_read_each_others_pages() {
    use parquet::data_type::DoubleType;
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    use parquet::schema::parser::parse_message_type;

    let dir = Dir::new();
    let (cols, rows) = (24, 3000);
    let message: String = (0..cols)
        .map(|c| format!("required double c{c}; "))
        .collect();
    let schema = Arc::new(
        parse_message_type(&format!("message t {{ {message}}}")).unwrap_or_else(|e| panic!("{e}")),
    );
    let value = |t: usize, c: usize| -> Vec<f64> {
        uniform((t * 100 + c) as u64, rows)
            .iter()
            .map(|x| x * (1.0 + c as f64) + t as f64 * 0.01 * c as f64)
            .collect()
    };
    for t in 0..2 {
        let file = std::fs::File::create(dir.file(&format!("{t}.parquet")))
            .unwrap_or_else(|e| panic!("{e}"));
        let props = Arc::new(WriterProperties::builder().build());
        let mut w = SerializedFileWriter::new(file, schema.clone(), props)
            .unwrap_or_else(|e| panic!("{e}"));
        for half in [0..rows / 2, rows / 2..rows] {
            let mut rg = w.next_row_group().unwrap_or_else(|e| panic!("{e}"));
            let mut c = 0;
            while let Some(mut col) = rg.next_column().unwrap_or_else(|e| panic!("{e}")) {
                col.typed::<DoubleType>()
                    .write_batch(&value(t, c)[half.clone()], None, None)
                    .unwrap_or_else(|e| panic!("{e}"));
                col.close().unwrap_or_else(|e| panic!("{e}"));
                c += 1;
            }
            rg.close().unwrap_or_else(|e| panic!("{e}"));
        }
        w.close().unwrap_or_else(|e| panic!("{e}"));
    }
    for _ in 0..3 {
        let out = run(
            dir.path(),
            &[
                "--reference=0.parquet",
                "--current=1.parquet",
                "--output=json",
                "--correction=none",
            ],
        );
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v = json(&out);
        for c in 0..cols {
            let ks = ks_2samp(
                &value(0, c),
                &value(1, c),
                Alternative::TwoSided,
                Method::Auto,
            )
            .unwrap_or_else(|e| panic!("{e}"));
            let col = column(&v, &format!("c{c}"));
            assert_eq!(col["statistic"].as_f64(), Some(ks.statistic), "c{c}");
            assert_eq!(col["n_reference"], rows, "c{c}");
        }
    }
}
