//! A full disk is survived: on a real tmpfs (the suite runs as root in CI), a flush and
//! webhook outbox writes hit ENOSPC; the service turns not ready and
//! `driftgauge_storage_healthy` drops to 0; once space is freed the next flush catches up,
//! and a `kill -9` after that loses neither a series nor a pending delivery.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::cli::{http, Process};
use crate::receiver::{Receiver, Script};
use crate::support::{metric_value, poll, Rng, WAIT};

/// A tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(at).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output()
            .expect("`mount` must exist: this test needs a real tmpfs (run as root, as CI does)");
        assert!(
            out.status.success(),
            "mounting a tmpfs failed (this test needs root, as CI has): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs(at.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Writes `path` until the file system is full; returns the bytes written.
fn fill(path: &Path) -> usize {
    let mut f = std::fs::File::create(path).unwrap();
    let mut written = 0;
    for chunk in [1 << 20, 64 << 10, 4 << 10, 512] {
        let buf = vec![0xa5u8; chunk];
        while f.write_all(&buf).is_ok() {
            written += chunk;
        }
    }
    let _ = f.sync_all();
    written
}

fn metric(p: &Process, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    metric_value(&p.get("/metrics").1, name, labels)
}

const SERIES: usize = 40;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_is_survived_and_nothing_acknowledged_is_lost_after_space_returns() {
    let dir = tempfile::tempdir().unwrap();
    let mnt = Tmpfs::mount(&dir.path().join("mnt"), "8m");
    let storage = mnt.0.join("data");
    // The receiver comes up only after the crash: deliveries stay pending until then.
    let reserved = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hook_addr = reserved.local_addr().unwrap().to_string();
    drop(reserved);
    std::fs::create_dir_all(dir.path().join("rules")).unwrap();
    std::fs::write(
        dir.path().join("driftgauge.yml"),
        format!(
            "global: {{evaluation_interval: 50ms}}\nrule_files: [\"rules/*.yml\"]\nwebhooks:\n  retrain:\n    url: http://{hook_addr}/hook\n    min_backoff: 50ms\n    max_backoff: 200ms\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("rules/r.yml"),
        r#"
groups:
  - name: g
    interval: 50ms
    rules:
      - name: ks_rule
        detector: ks
        series: feature_value
        reference: {first: 100}
        current: {last: 100}
        min_samples: 50
        alpha: 0.001
        webhooks: [retrain]
"#,
    )
    .unwrap();
    let storage_arg = format!("--storage.path={}", storage.display());
    let args = [
        "--config.file=driftgauge.yml",
        "--storage.flush-interval=100ms",
        storage_arg.as_str(),
    ];
    let mut p = Process::start(dir.path(), &args);
    poll("ready", WAIT, || p.get("/-/ready").0 == 200);
    assert_eq!(metric(&p, "driftgauge_storage_healthy", &[]), Some(1.0));

    // The disk fills up; then every series gets a reference and a shifted current window.
    let filler = mnt.0.join("filler");
    assert!(fill(&filler) > 0);
    let mut rng = Rng::new(7);
    let body = |shift: f64, rng: &mut Rng| {
        let entries: Vec<String> = (0..SERIES)
            .map(|i| {
                let values: Vec<String> = rng
                    .normals(100, shift, 1.0)
                    .iter()
                    .map(|v| format!("{v:?}"))
                    .collect();
                format!(
                    r#"{{"metric":"feature_value","labels":{{"f":"f{i}"}},"values":[{}]}}"#,
                    values.join(",")
                )
            })
            .collect();
        format!(r#"{{"samples":[{}]}}"#, entries.join(","))
    };
    let (status, text) = http(&p.addr, "POST", "/api/v1/samples", &body(0.0, &mut rng));
    assert_eq!(status, 200, "{text}");
    let (status, text) = http(&p.addr, "POST", "/api/v1/samples", &body(4.0, &mut rng));
    assert_eq!(status, 200, "{text}");
    poll(
        "the store reported failing and the service not ready",
        WAIT,
        || metric(&p, "driftgauge_storage_healthy", &[]) == Some(0.0) && p.get("/-/ready").0 == 503,
    );
    let (_, ready) = p.get("/-/ready");
    assert!(ready.contains("state store"), "{ready}");
    poll("every series drifted, its delivery pending", WAIT, || {
        metric(&p, "driftgauge_webhook_queue_length", &[]) == Some(SERIES as f64)
    });
    // Still failing a while later: nothing pretends to be persisted.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(metric(&p, "driftgauge_storage_healthy", &[]), Some(0.0));

    // Space returns: the next flush catches up.
    std::fs::remove_file(&filler).unwrap();
    let freed_at = driftgauge::time::now_ms() as f64 / 1000.0;
    poll(
        "the store works again and the service is ready",
        WAIT,
        || metric(&p, "driftgauge_storage_healthy", &[]) == Some(1.0) && p.get("/-/ready").0 == 200,
    );
    poll("a flush after the space returned", WAIT, || {
        metric(&p, "driftgauge_storage_last_flush_timestamp_seconds", &[])
            .is_some_and(|t| t > freed_at + 0.2)
    });
    let pending = metric(&p, "driftgauge_webhook_queue_length", &[]).unwrap();
    assert_eq!(pending, SERIES as f64);

    p.signal("KILL");
    p.wait_exit(Duration::from_secs(10));
    let rx = Receiver::start_on(&hook_addr, Script::ok()).await;
    let p = Process::start(dir.path(), &args);
    poll("ready after restart", WAIT, || p.get("/-/ready").0 == 200);

    // Every pending delivery arrives, one event per series.
    let calls = rx.wait_for(SERIES, WAIT).await;
    let series: std::collections::BTreeSet<String> = calls
        .iter()
        .map(|c| c.json()["labels"]["f"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(series.len(), SERIES, "one delivery per series");
    // Every series came back with its windows.
    poll("every series restored and evaluated", WAIT, || {
        let t = p.get("/metrics").1;
        (0..SERIES).all(|i| {
            let f = format!("f{i}");
            metric_value(
                &t,
                "driftgauge_window_samples",
                &[("f", f.as_str()), ("window", "reference")],
            ) == Some(100.0)
                && metric_value(
                    &t,
                    "driftgauge_drift_status",
                    &[("f", f.as_str()), ("rule", "ks_rule")],
                ) == Some(2.0)
        })
    });
    let keys: std::collections::BTreeSet<String> = rx
        .requests()
        .iter()
        .map(|r| r.header("idempotency-key").unwrap().to_string())
        .collect();
    assert_eq!(keys.len(), SERIES, "restored as drifted: no new events");
}
