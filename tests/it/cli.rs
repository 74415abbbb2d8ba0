//! The binary itself: `eval`, `--version`, and `serve` as a process (signals, embedded default).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use driftgauge::detect::ks::{ks_2samp, Alternative, Method};

use crate::support::{poll, Rng, WAIT};

pub(crate) fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_driftgauge"))
}

fn write_values(path: &Path, values: &[f64]) {
    let text: String = values.iter().map(|v| format!("{v:?}\n")).collect();
    std::fs::write(path, format!("# generated\n\n{text}")).unwrap();
}

#[test]
fn eval_json_matches_the_library() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng::new(11);
    let a = rng.normals(700, 0.0, 1.0);
    let b = rng.normals(600, 0.2, 1.0);
    write_values(&dir.path().join("a.txt"), &a);
    write_values(&dir.path().join("b.txt"), &b);
    for (alt, alternative) in [
        ("two-sided", Alternative::TwoSided),
        ("less", Alternative::Less),
        ("greater", Alternative::Greater),
    ] {
        for (m, method) in [
            ("auto", Method::Auto),
            ("exact", Method::Exact),
            ("asymp", Method::Asymp),
        ] {
            let out = bin()
                .args(["eval", "--detector=ks", "--output=json"])
                .arg(format!(
                    "--reference={}",
                    dir.path().join("a.txt").display()
                ))
                .arg(format!("--current={}", dir.path().join("b.txt").display()))
                .arg(format!("--alternative={alt}"))
                .arg(format!("--method={m}"))
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            let r = ks_2samp(&a, &b, alternative, method).unwrap();
            assert_eq!(v["detector"], "ks");
            assert_eq!(v["statistic"].as_f64(), Some(r.statistic), "{alt} {m}");
            assert_eq!(v["p_value"].as_f64(), Some(r.p_value), "{alt} {m}");
            assert_eq!(v["statistic_location"].as_f64(), Some(r.location));
            assert_eq!(v["statistic_sign"].as_i64(), Some(r.sign as i64));
            assert_eq!(v["method"], r.method.as_str());
            assert_eq!(v["n_reference"], 700);
            assert_eq!(v["n_current"], 600);
            let status = if r.p_value <= 0.05 {
                "drifted"
            } else {
                "stable"
            };
            assert_eq!(v["status"], status);
        }
    }
}

#[test]
fn eval_reads_a_csv_column_and_prints_text() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.csv"), "id,amount\n1,1.0\n2,2.0\n3,3.0\n").unwrap();
    std::fs::write(
        dir.path().join("b.csv"),
        "id,amount\n1,10.0\n2,20.0\n3,30.0\n",
    )
    .unwrap();
    let out = bin()
        .current_dir(dir.path())
        .args([
            "eval",
            "--detector=ks",
            "--reference=a.csv",
            "--current=b.csv",
            "--column=amount",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("statistic:          1\n"), "{text}");
    assert!(text.contains("method:             exact\n"), "{text}");
}

/// Issue 9: CSV rows were split on every `,`, so a quoted comma in a column before the one
/// read silently moved `--column` onto the next field (here: the reference would have read
/// 100, 200, 300 and drifted).
#[test]
fn eval_column_is_not_shifted_by_a_quoted_comma_in_another_column() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a.csv"),
        "id,note,amount\n1,\"a,100\",1.0\n2,\"b,200\",2.0\n3,\"c,300\",3.0\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("b.csv"),
        "id,note,amount\n1,a,1.0\n2,b,2.0\n3,c,3.0\n",
    )
    .unwrap();
    let out = bin()
        .current_dir(dir.path())
        .args([
            "eval",
            "--detector=ks",
            "--reference=a.csv",
            "--current=b.csv",
            "--column=amount",
            "--output=json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["n_reference"], 3);
    assert_eq!(v["statistic"].as_f64(), Some(0.0), "{v}");
    assert_eq!(v["status"], "stable");
    // A quoted field is one field, and an error names its line and column.
    let out = bin()
        .current_dir(dir.path())
        .args([
            "eval",
            "--detector=ks",
            "--reference=a.csv",
            "--current=b.csv",
            "--column=note",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("a.csv: line 2, column \"note\": expected a number, got \"a,100\""),
        "{err}"
    );
}

#[test]
fn eval_fails_clearly_on_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("empty.txt"), "# nothing\n\n").unwrap();
    std::fs::write(dir.path().join("bad.txt"), "1\n2\nfoo\n").unwrap();
    std::fs::write(dir.path().join("ok.txt"), "1\n2\n").unwrap();
    for (reference, needle) in [
        ("empty.txt", "empty.txt: no values"),
        ("bad.txt", "bad.txt: line 3: expected a number, got \"foo\""),
        ("missing.txt", "reading missing.txt"),
    ] {
        let out = bin()
            .current_dir(dir.path())
            .args(["eval", "--detector=ks", "--current=ok.txt"])
            .arg(format!("--reference={reference}"))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{reference}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{reference}: {err}");
        assert!(out.stdout.is_empty());
    }
    let out = bin()
        .args([
            "eval",
            "--detector=ks",
            "--reference=a",
            "--current=b",
            "--alternative=sideways",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--alternative=sideways"));
}

/// Regression: `driftgauge test rules ... | head` panicked ("failed printing to stdout:
/// Broken pipe") when the reader left first.
#[test]
fn a_reader_that_leaves_ends_the_output_quietly() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let out = bin()
        .args(["test", "rules", "rules/tests/serving_test.yml"])
        .current_dir(root)
        .stdout(writer)
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(141), "{stderr}");
}

#[test]
fn version_and_help() {
    let out = bin().arg("--version").output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("driftgauge {}", env!("CARGO_PKG_VERSION"))
    );
    let out = bin().arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for word in ["serve", "check", "eval"] {
        assert!(help.contains(word), "{help}");
    }
    let out = bin().args(["serve", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--config.file",
        "--web.listen-address",
        "--storage.path",
        "--log.level",
        "--log.format",
        "--web.enable-lifecycle",
    ] {
        assert!(help.contains(flag), "{help}");
    }
}

/// A `serve` process; its address is read from its first log lines.
pub(crate) struct Process {
    pub(crate) child: Child,
    pub(crate) addr: String,
}

impl Process {
    pub(crate) fn start(dir: &Path, args: &[&str]) -> Process {
        Process::start_env(dir, args, &[])
    }

    pub(crate) fn start_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Process {
        Process::spawn(bin(), dir, args, env)
    }

    /// `serve` with its open-file limit (soft and hard) set to `nofile`, through `prlimit`.
    pub(crate) fn start_nofile(dir: &Path, args: &[&str], nofile: u64) -> Process {
        let mut cmd = Command::new("prlimit");
        cmd.arg(format!("--nofile={nofile}:{nofile}"))
            .arg(env!("CARGO_BIN_EXE_driftgauge"));
        Process::spawn(cmd, dir, args, &[])
    }

    fn spawn(mut cmd: Command, dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Process {
        let mut child = cmd
            .envs(env.iter().copied())
            .current_dir(dir)
            .arg("serve")
            .arg("--web.listen-address=127.0.0.1:0")
            .args(args)
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        // Read the log on a thread (it also keeps draining it, so the child never blocks on a
        // full pipe) and wait for the listening address with a deadline.
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut seen = String::new();
        let addr = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match rx.recv_timeout(left) {
                Ok(l) => l,
                Err(_) => panic!("serve did not log its address:\n{seen}"),
            };
            seen.push_str(&line);
            seen.push('\n');
            if let Some(i) = line.find("address=") {
                break line[i + 8..].split(' ').next().unwrap().to_string();
            }
            if let Some(i) = line.find("\"address\":\"") {
                break line[i + 11..].split('"').next().unwrap().to_string();
            }
        };
        Process { child, addr }
    }

    pub(crate) fn get(&self, path: &str) -> (u16, String) {
        http(&self.addr, "GET", path, "")
    }

    pub(crate) fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(ok.success());
    }

    pub(crate) fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        poll("serve to exit", within, || self.child.try_wait().unwrap())
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal blocking HTTP/1.1 client (Connection: close), so process tests need no runtime.
pub(crate) fn http(addr: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    http_within(addr, method, path, body, Duration::from_secs(10))
}

/// [`http`] waiting up to `timeout` for the answer.
pub(crate) fn http_within(
    addr: &str,
    method: &str,
    path: &str,
    body: &str,
    timeout: Duration,
) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(timeout)).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out
        .split_once("\r\n\r\n")
        .map(|x| x.1.to_string())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn serve_without_flags_runs_the_example_rules_and_stops_on_sigterm() {
    // The embedded default: ./rules/*.yml and ./data in the working directory.
    let dir = tempfile::tempdir().unwrap();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::create_dir_all(dir.path().join("rules/reference")).unwrap();
    for entry in std::fs::read_dir(repo.join("rules")).unwrap().flatten() {
        if entry.path().is_file() {
            std::fs::copy(
                entry.path(),
                dir.path().join("rules").join(entry.file_name()),
            )
            .unwrap();
        }
    }
    for entry in std::fs::read_dir(repo.join("rules/reference"))
        .unwrap()
        .flatten()
    {
        std::fs::copy(
            entry.path(),
            dir.path().join("rules/reference").join(entry.file_name()),
        )
        .unwrap();
    }
    let mut p = Process::start(dir.path(), &[]);
    poll("ready", WAIT, || p.get("/-/ready").0 == 200);
    let (status, rules) = p.get("/api/v1/rules");
    assert_eq!(status, 200);
    assert!(
        rules.contains("amount_drift") && rules.contains("accuracy_degradation"),
        "{rules}"
    );
    assert!(
        dir.path().join("data").is_dir(),
        "state directory under ./data"
    );
    let (status, body) = http(
        &p.addr,
        "POST",
        "/api/v1/samples",
        r#"{"samples":[{"metric":"model_accuracy","labels":{"model":"fraud"},"value":0.97}]}"#,
    );
    assert_eq!(
        (status, body.as_str()),
        (200, r#"{"accepted":1,"dropped":0}"#)
    );
    p.signal("TERM");
    let status = p.wait_exit(Duration::from_secs(12));
    assert!(status.success(), "{status:?}");
}

#[test]
fn sighup_reloads_and_a_bad_file_keeps_the_running_rules() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("rules")).unwrap();
    std::fs::write(
        dir.path().join("driftgauge.yml"),
        "rule_files: [\"rules/*.yml\"]\n",
    )
    .unwrap();
    let rule = |name: &str| {
        format!("groups:\n  - name: g\n    rules:\n      - name: {name}\n        detector: ema\n        min_samples: 1\n        series: acc\n        smoothing: 0.5\n        below: 0.5\n")
    };
    std::fs::write(dir.path().join("rules/a.yml"), rule("first")).unwrap();
    let p = Process::start(
        dir.path(),
        &["--config.file=driftgauge.yml", "--log.format=json"],
    );
    poll("ready", WAIT, || p.get("/-/ready").0 == 200);
    assert!(p.get("/api/v1/rules").1.contains("\"first\""));

    std::fs::write(dir.path().join("rules/a.yml"), rule("second")).unwrap();
    p.signal("HUP");
    poll("reload to the second rule", WAIT, || {
        p.get("/api/v1/rules").1.contains("\"second\"")
    });

    std::fs::write(dir.path().join("rules/a.yml"), "groups: [oops\n").unwrap();
    p.signal("HUP");
    poll("reload failure counted", WAIT, || {
        p.get("/metrics")
            .1
            .contains("driftgauge_config_last_reload_successful 0")
    });
    assert!(
        p.get("/api/v1/rules").1.contains("\"second\""),
        "bad reload kept the running rules"
    );
}

/// `POST /-/reload` on a process started with `--web.enable-lifecycle`: status, the error
/// text of a failure (the body of a success), and how long it took.
fn reload(p: &Process) -> (u16, String, Duration) {
    let start = Instant::now();
    let (status, body) = http(&p.addr, "POST", "/-/reload", "");
    let took = start.elapsed();
    assert!(body.len() < 16 << 10, "a {} byte answer", body.len());
    let error = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_string));
    (status, error.unwrap_or(body), took)
}

#[test]
fn reload_with_a_fifo_or_a_non_regular_rule_file_answers_500_and_keeps_the_rules() {
    // A FIFO as a reference hung `/-/reload` (and every later one, behind its lock); a glob
    // matching a directory, or `/dev/zero`, loaded 0 rules and removed every running one.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("rules")).unwrap();
    let config = |extra: &str| format!("rule_files: [\"rules/*.yml\"{extra}]\n");
    std::fs::write(d.join("driftgauge.yml"), config("")).unwrap();
    let ema = "groups:\n  - name: g\n    rules:\n      - name: running\n        detector: ema\n        min_samples: 1\n        series: acc\n        smoothing: 0.5\n        below: 0.5\n";
    std::fs::write(d.join("rules/a.yml"), ema).unwrap();
    let p = Process::start(
        d,
        &[
            "--config.file=driftgauge.yml",
            "--web.enable-lifecycle",
            "--storage.path=data",
        ],
    );
    poll("ready", WAIT, || p.get("/-/ready").0 == 200);
    let running = || p.get("/api/v1/rules").1.contains("\"running\"");
    assert!(running());

    let ok = Command::new("mkfifo")
        .arg(d.join("rules/ref.fifo"))
        .status()
        .unwrap();
    assert!(ok.success());
    let ks = |reference: &str| {
        format!("groups:\n  - name: k\n    rules:\n      - name: new\n        detector: ks\n        series: x\n        reference: {{file: {reference}}}\n        current: {{last: 10}}\n        min_samples: 1\n")
    };
    std::fs::write(d.join("rules/b.yml"), ks("ref.fifo")).unwrap();
    let (status, body, took) = reload(&p);
    assert_eq!(status, 500, "{body}");
    assert!(
        body.contains("rules/b.yml:7:27: reference.file: cannot read")
            && body.contains("ref.fifo\": not a regular file"),
        "{body}"
    );
    assert!(took < Duration::from_secs(5), "reload took {took:?}");
    assert!(running(), "the running rules stay");

    // A 16 MiB reference line of NUL bytes: the answer quotes an excerpt, not the line.
    std::fs::write(d.join("rules/nul.txt"), vec![0u8; 16 << 20]).unwrap();
    std::fs::write(d.join("rules/b.yml"), ks("nul.txt")).unwrap();
    let (status, body, _) = reload(&p);
    assert_eq!(status, 500, "{body}");
    assert!(body.len() < 1024, "{body}");
    assert!(body.contains("line 1: expected a number"), "{body}");
    assert!(running());
    std::fs::remove_file(d.join("rules/b.yml")).unwrap();

    // A directory the glob matches.
    std::fs::create_dir(d.join("rules/dir.yml")).unwrap();
    let (status, body, _) = reload(&p);
    assert_eq!(status, 500, "{body}");
    assert!(
        body.contains("rules/dir.yml:1:1: cannot read rule file: is a directory"),
        "{body}"
    );
    assert!(running());
    std::fs::remove_dir(d.join("rules/dir.yml")).unwrap();

    // A device named in the config.
    std::fs::write(d.join("driftgauge.yml"), config(", \"/dev/zero\"")).unwrap();
    let (status, body, _) = reload(&p);
    assert_eq!(status, 500, "{body}");
    assert!(
        body.contains("/dev/zero:1:1: cannot read rule file: not a regular file"),
        "{body}"
    );
    assert!(running());

    // Fixed: the reload goes through.
    std::fs::write(d.join("driftgauge.yml"), config("")).unwrap();
    let (status, body, _) = reload(&p);
    assert_eq!(status, 200, "{body}");
    assert!(running());
}

#[test]
fn serve_without_a_config_refuses_rules_that_name_webhooks() {
    // The embedded default has no webhooks: such a rule started and could never notify.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("rules")).unwrap();
    std::fs::write(
        dir.path().join("rules/a.yml"),
        "groups:\n  - name: g\n    rules:\n      - name: r\n        detector: ema\n        min_samples: 1\n        series: acc\n        smoothing: 0.5\n        below: 0.5\n        webhooks: [retrain]\n",
    )
    .unwrap();
    let mut child = bin()
        .current_dir(dir.path())
        .args(["serve", "--web.listen-address=127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut s);
        s
    });
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("serve started with a rule naming an unknown webhook");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let log = reader.join().unwrap();
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(
        log.contains("rules/a.yml:10:20: unknown webhook \"retrain\": the embedded default config defines no webhooks; pass --config.file"),
        "{log}"
    );
}
