//! Clients without credentials that try to take the service down, against the real binary:
//! stalled bodies on more connections than it has descriptors, and many large pushes at once.

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::cli::{http, Process};
use crate::support::{metric_value, poll, WAIT};

const RULES: &str = r#"
groups:
  - name: q
    interval: 1s
    rules:
      - name: acc
        detector: ema
        min_samples: 1
        series: 'model_accuracy'
        smoothing: 0.5
        below: 0.5
"#;

fn service_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("rules")).unwrap();
    std::fs::write(
        dir.path().join("driftgauge.yml"),
        "rule_files: [\"rules/*.yml\"]\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("rules/r.yml"), RULES).unwrap();
    dir
}

/// Raises this test process's own open-file limit (the attack needs more sockets than the
/// server has descriptors).
fn raise_own_nofile(to: u64) {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    let soft: u64 = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if soft < to {
        let ok = std::process::Command::new("prlimit")
            .args(["--pid", &std::process::id().to_string()])
            .arg(format!("--nofile={to}:{to}"))
            .status()
            .expect("prlimit (util-linux) is needed to raise the test's descriptor limit");
        assert!(ok.success(), "could not raise the open-file limit to {to}");
    }
}

fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .expect("VmHWM in /proc/PID/status")
}

/// Regression: 1,050 connections that send headers and stall the body exhausted 1,024
/// descriptors and `/-/healthy` stopped answering; bodies never timed out.
#[test]
fn stalled_bodies_on_more_connections_than_descriptors_leave_health_probes_answered() {
    raise_own_nofile(8192);
    let dir = service_dir();
    let p = Process::start_nofile(
        dir.path(),
        &[
            "--config.file=driftgauge.yml",
            "--web.read-timeout=3s",
            "--web.max-connections=512",
        ],
        1024,
    );
    poll("ready", WAIT, || p.get("/-/ready").0 == 200);
    let started = Instant::now();
    let mut attackers = Vec::new();
    for _ in 0..1050 {
        let Ok(mut s) =
            TcpStream::connect_timeout(&p.addr.parse().unwrap(), Duration::from_secs(2))
        else {
            continue;
        };
        let _ = write!(
            s,
            "POST /api/v1/samples HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{{\"samples\":["
        );
        attackers.push(s);
    }
    assert!(
        attackers.len() >= 1000,
        "only {} attackers connected",
        attackers.len()
    );
    // Liveness answers while every normal slot is held by a stalled body.
    let (status, body) = health(&p.addr);
    assert_eq!(status, 200, "{body}");
    assert!(
        started.elapsed() < Duration::from_secs(3) + Duration::from_secs(8),
        "health answered only after {:?}",
        started.elapsed()
    );
    // A stalled body is given up after the read timeout: the first attacker gets 408.
    let mut first = attackers.swap_remove(0);
    first
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let mut answer = String::new();
    let _ = std::io::Read::read_to_string(&mut first, &mut answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    drop(attackers);
    // And the service serves normally again.
    poll("ready again", WAIT, || p.get("/-/ready").0 == 200);
    let (status, _) = http(
        &p.addr,
        "POST",
        "/api/v1/samples",
        r#"{"samples":[{"metric":"model_accuracy","value":0.9}]}"#,
    );
    assert_eq!(status, 200);
}

/// `/-/healthy` within a deadline, retrying while connections are refused or reset.
fn health(addr: &str) -> (u16, String) {
    poll("/-/healthy to answer", Duration::from_secs(10), || {
        std::panic::catch_unwind(|| http(addr, "GET", "/-/healthy", ""))
            .ok()
            .filter(|answer| answer.0 != 0)
    })
}

/// Regression: one 16 MiB push needed ~17x its size while parsed, and 16 at once peaked at
/// 3.6 GB although each was refused.
#[test]
fn sixteen_concurrent_16_mib_pushes_stay_under_512_mib() {
    let dir = service_dir();
    let p = Process::start(
        dir.path(),
        &["--config.file=driftgauge.yml", "--storage.path=data"],
    );
    poll("ready", WAIT, || p.get("/-/ready").0 == 200);
    let body = big_push(16 << 20);
    let addr = p.addr.clone();
    let threads: Vec<_> = (0..16)
        .map(|_| {
            let (addr, body) = (addr.clone(), body.clone());
            std::thread::spawn(move || post_early_answered(&addr, &body))
        })
        .collect();
    for t in threads {
        let status = t.join().unwrap();
        // Refused for its last entry (as in the attack), or asked to retry when the parse
        // budget stayed full for too long.
        assert!(status == 400 || status == 503, "status {status}");
    }
    let peak = peak_rss_kib(p.child.id());
    eprintln!(
        "peak RSS with 16 concurrent 16 MiB pushes: {} MiB",
        peak / 1024
    );
    assert!(peak < 512 * 1024, "peak RSS {} MiB", peak / 1024);
    let t = p.get("/metrics").1;
    assert!(metric_value(&t, "driftgauge_build_info", &[]).is_some());
}

/// POSTs a push and returns the status, also when the server answers (and closes) before
/// the whole body was sent, as it does for a request it refuses without reading.
fn post_early_answered(addr: &str, body: &str) -> u16 {
    post_bytes(
        addr,
        "/api/v1/samples",
        "Content-Type: application/json\r\n",
        body.as_bytes(),
    )
}

/// [`post_early_answered`] for any route, headers and body.
fn post_bytes(addr: &str, path: &str, headers: &str, body: &[u8]) -> u16 {
    use std::io::Read;
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{headers}Content-Length: {}\r\n\r\n",
        body.len()
    );
    // A refusal may come before the body is through: the write then fails, the answer is read.
    let _ = s
        .write_all(head.as_bytes())
        .and_then(|()| s.write_all(body));
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer)
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// A push body of about `bytes` bytes whose last entry is bad, so it is refused after the
/// whole body was parsed.
fn big_push(bytes: usize) -> String {
    let mut s = String::with_capacity(bytes + 100);
    s.push_str(r#"{"samples":[{"metric":"junk","values":["#);
    while s.len() < bytes - 64 {
        s.push_str("1,");
    }
    s.push_str(r#"1]},{"metric":"9bad","value":1}]}"#);
    s
}

/// Regression: 16 remote writes of 64 MiB decompressed each peaked at 1.1 GB.
#[test]
fn sixteen_concurrent_64_mib_remote_writes_stay_under_512_mib() {
    let dir = service_dir();
    let p = Process::start(
        dir.path(),
        &["--config.file=driftgauge.yml", "--storage.path=data"],
    );
    poll("ready", WAIT, || p.get("/-/ready").0 == 200);
    // One series no rule selects, its sample repeated until the message is ~63 MiB: it
    // compresses far below the 16 MiB body limit.
    let one = crate::remote_write::series(&[("__name__", "junk")], &[(1.0, 1)]);
    let copies = (63 << 20) / (one.len() + 2);
    let body = crate::remote_write::body(&vec![one; copies]);
    assert!(body.len() < 16 << 20, "compressed to {} bytes", body.len());
    let headers = "Content-Type: application/x-protobuf\r\nContent-Encoding: snappy\r\nX-Prometheus-Remote-Write-Version: 0.1.0\r\n";
    let addr = p.addr.clone();
    let body = std::sync::Arc::new(body);
    let threads: Vec<_> = (0..16)
        .map(|_| {
            let (addr, body) = (addr.clone(), std::sync::Arc::clone(&body));
            std::thread::spawn(move || post_bytes(&addr, "/api/v1/write", headers, &body))
        })
        .collect();
    for t in threads {
        let status = t.join().unwrap();
        assert!(status == 204 || status == 503, "status {status}");
    }
    let peak = peak_rss_kib(p.child.id());
    eprintln!(
        "peak RSS with 16 concurrent 64 MiB remote writes: {} MiB",
        peak / 1024
    );
    assert!(peak < 512 * 1024, "peak RSS {} MiB", peak / 1024);
}
