//! `driftgauge eval` on NumPy `.npy` files: the process answers what the library answers on
//! the same values, for float64 and float32, every NPY version, small samples (sorted and
//! walked) and large ones (bucketed, two threads), and refuses bad files clearly.

use std::path::{Path, PathBuf};
use std::process::Command;

use driftgauge::detect::ks::{ks_2samp, Alternative, Method};

use crate::support::Rng;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_driftgauge"))
}

/// An NPY file as `numpy.save` writes it: magic, version, header length, a dict literal
/// padded with spaces to a multiple of 64 bytes and ended by a newline, then the data.
fn npy_bytes(version: u8, descr: &str, shape: &str, data: &[u8]) -> Vec<u8> {
    let dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    let prefix = if version == 1 { 10 } else { 12 };
    let mut header = dict.into_bytes();
    let total = (prefix + header.len() + 1).div_ceil(64) * 64;
    header.resize(total - prefix - 1, b' ');
    header.push(b'\n');
    let mut out = b"\x93NUMPY".to_vec();
    out.extend([version, 0]);
    if version == 1 {
        out.extend((header.len() as u16).to_le_bytes());
    } else {
        out.extend((header.len() as u32).to_le_bytes());
    }
    out.extend(header);
    out.extend(data);
    out
}

fn write_f8(path: &Path, version: u8, values: &[f64]) {
    let data: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let shape = format!("({},)", values.len());
    std::fs::write(path, npy_bytes(version, "<f8", &shape, &data)).unwrap();
}

fn write_f4(path: &Path, values: &[f32]) {
    let data: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let shape = format!("({},)", values.len());
    std::fs::write(path, npy_bytes(3, "<f4", &shape, &data)).unwrap();
}

fn eval_json(reference: &Path, current: &Path, extra: &[&str]) -> serde_json::Value {
    let out = bin()
        .args(["eval", "--detector=ks", "--output=json"])
        .arg(format!("--reference={}", reference.display()))
        .arg(format!("--current={}", current.display()))
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The process's answer is the library's, to the bit.
fn assert_matches_library(
    v: &serde_json::Value,
    a: &[f64],
    b: &[f64],
    alternative: Alternative,
    method: Method,
    what: &str,
) {
    let r = ks_2samp(a, b, alternative, method).unwrap();
    assert_eq!(v["statistic"].as_f64(), Some(r.statistic), "{what}");
    assert_eq!(v["p_value"].as_f64(), Some(r.p_value), "{what}");
    assert_eq!(v["statistic_location"].as_f64(), Some(r.location), "{what}");
    assert_eq!(
        v["statistic_sign"].as_i64(),
        Some(i64::from(r.sign)),
        "{what}"
    );
    assert_eq!(v["method"], r.method.as_str(), "{what}");
    assert_eq!(v["n_reference"].as_u64(), Some(a.len() as u64), "{what}");
    assert_eq!(v["n_current"].as_u64(), Some(b.len() as u64), "{what}");
}

struct Dir {
    _tmp: tempfile::TempDir,
    path: PathBuf,
}

impl Dir {
    fn new() -> Dir {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().to_path_buf();
        Dir { _tmp: tmp, path }
    }
    fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

#[test]
fn float64_files_of_every_version_match_the_library() {
    let dir = Dir::new();
    let mut rng = Rng::new(21);
    let a = rng.normals(3000, 0.0, 1.0);
    let b = rng.normals(2500, 0.1, 1.0);
    for version in [1, 2, 3] {
        let (pa, pb) = (dir.file("a.npy"), dir.file("b.npy"));
        write_f8(&pa, version, &a);
        write_f8(&pb, version, &b);
        for (alt, alternative) in [
            ("two-sided", Alternative::TwoSided),
            ("less", Alternative::Less),
            ("greater", Alternative::Greater),
        ] {
            for (m, method) in [("auto", Method::Auto), ("asymp", Method::Asymp)] {
                let v = eval_json(
                    &pa,
                    &pb,
                    &[&format!("--alternative={alt}"), &format!("--method={m}")],
                );
                let what = format!("v{version} {alt} {m}");
                assert_matches_library(&v, &a, &b, alternative, method, &what);
            }
        }
    }
}

#[test]
fn large_samples_take_the_fast_path_and_match_the_library() {
    // Large enough for the bucketed walk on two threads, with ties and signed zeros mixed in.
    let dir = Dir::new();
    let mut rng = Rng::new(22);
    let mut a = rng.normals(200_000, 0.0, 1.0);
    let mut b = rng.normals(150_000, 0.01, 1.0);
    for i in (0..a.len()).step_by(997) {
        a[i] = if i % 2 == 0 { 0.0 } else { -0.0 };
    }
    for i in (0..b.len()).step_by(1009) {
        b[i] = (b[i] * 10.0).round() / 10.0;
    }
    let (pa, pb) = (dir.file("ref.npy"), dir.file("cur.npy"));
    write_f8(&pa, 1, &a);
    write_f8(&pb, 1, &b);
    for (alt, alternative) in [
        ("two-sided", Alternative::TwoSided),
        ("less", Alternative::Less),
        ("greater", Alternative::Greater),
    ] {
        let v = eval_json(&pa, &pb, &[&format!("--alternative={alt}")]);
        assert_matches_library(&v, &a, &b, alternative, Method::Auto, alt);
        assert_eq!(v["method"], "asymp");
    }
    // The same values as text give the same answer.
    let text: String = a.iter().map(|v| format!("{v:?}\n")).collect();
    std::fs::write(dir.file("ref.txt"), text).unwrap();
    let from_text = eval_json(&dir.file("ref.txt"), &pb, &[]);
    let from_npy = eval_json(&pa, &pb, &[]);
    assert_eq!(from_text, from_npy);
}

#[test]
fn float32_files_are_widened_exactly() {
    let dir = Dir::new();
    let mut rng = Rng::new(23);
    let a32: Vec<f32> = rng
        .normals(1200, 0.0, 1.0)
        .iter()
        .map(|&v| v as f32)
        .collect();
    let b32: Vec<f32> = rng
        .normals(900, 0.2, 1.0)
        .iter()
        .map(|&v| v as f32)
        .collect();
    write_f4(&dir.file("a.npy"), &a32);
    write_f4(&dir.file("b.npy"), &b32);
    let a: Vec<f64> = a32.iter().map(|&v| f64::from(v)).collect();
    let b: Vec<f64> = b32.iter().map(|&v| f64::from(v)).collect();
    let v = eval_json(&dir.file("a.npy"), &dir.file("b.npy"), &[]);
    assert_matches_library(&v, &a, &b, Alternative::TwoSided, Method::Auto, "f4");
}

#[test]
fn npy_files_are_recognised_by_their_magic_whatever_the_name() {
    let dir = Dir::new();
    let a = [1.0, 2.0, 3.0, 4.0];
    let b = [2.5, 3.5, 4.5, 5.5, 6.5];
    write_f8(&dir.file("reference.bin"), 1, &a);
    std::fs::write(dir.file("current.txt"), "2.5\n3.5\n4.5\n5.5\n6.5\n").unwrap();
    let v = eval_json(&dir.file("reference.bin"), &dir.file("current.txt"), &[]);
    assert_matches_library(&v, &a, &b, Alternative::TwoSided, Method::Auto, "magic");
}

#[test]
fn bad_npy_files_fail_clearly() {
    let dir = Dir::new();
    std::fs::write(dir.file("ok.txt"), "1\n2\n3\n").unwrap();
    let two = [1.0f64, 2.0];
    let data: Vec<u8> = two.iter().flat_map(|v| v.to_le_bytes()).collect();
    let ints: Vec<u8> = [1i64, 2].iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(dir.file("int.npy"), npy_bytes(1, "<i8", "(2,)", &ints)).unwrap();
    std::fs::write(dir.file("big.npy"), npy_bytes(1, ">f8", "(2,)", &data)).unwrap();
    std::fs::write(dir.file("2d.npy"), npy_bytes(1, "<f8", "(1, 2)", &data)).unwrap();
    std::fs::write(dir.file("short.npy"), npy_bytes(1, "<f8", "(3,)", &data)).unwrap();
    std::fs::write(dir.file("text.npy"), "1.0\n2.0\n").unwrap();
    std::fs::write(dir.file("header.npy"), b"\x93NUMPY\x01\x00\x40\x00{'descr'").unwrap();
    write_f8(&dir.file("nan.npy"), 1, &[1.0, 2.0, f64::NAN, 4.0]);
    write_f8(&dir.file("empty.npy"), 1, &[]);
    for (file, needle) in [
        ("int.npy", "int.npy: unsupported dtype \"<i8\""),
        ("big.npy", "big.npy: unsupported dtype \">f8\""),
        (
            "2d.npy",
            "2d.npy: expected a one-dimensional array, got shape (1, 2)",
        ),
        (
            "short.npy",
            "short.npy: the shape (3,) needs 24 bytes of data, the file has 16",
        ),
        ("text.npy", "text.npy: not an NPY file"),
        (
            "header.npy",
            "header.npy: the file ends inside the NPY header",
        ),
        ("missing.npy", "reading "),
        ("nan.npy", "non-finite value (NaN or infinity) at index 2"),
        ("empty.npy", "the reference sample is empty"),
    ] {
        let out = bin()
            .current_dir(&dir.path)
            .args(["eval", "--detector=ks", "--current=ok.txt"])
            .arg(format!("--reference={file}"))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{file}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{file}: {err}");
        assert!(out.stdout.is_empty(), "{file}");
    }
    // A CSV column cannot be selected from an array.
    write_f8(&dir.file("a.npy"), 1, &two);
    let out = bin()
        .current_dir(&dir.path)
        .args([
            "eval",
            "--detector=ks",
            "--reference=a.npy",
            "--current=ok.txt",
            "--column=x",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("a.npy: --column"));
}
