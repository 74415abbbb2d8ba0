//! A real Prometheus for tests: the Debian `prometheus` binary started on a free loopback port
//! with a temporary TSDB and a generated config (by default `deploy/prometheus.yml` with a 1s
//! scrape and evaluation interval), polled until `/-/ready`, killed on drop. A missing binary
//! fails the test: `scripts/test` installs it.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::support::wait_until;

/// Prometheus starts in a second or two; a loaded CI machine gets more.
pub const START_WAIT: Duration = Duration::from_secs(30);
/// Waiting for data to show up through Prometheus (a few 1s scrapes).
pub const DATA_WAIT: Duration = Duration::from_secs(30);

/// The repository's `deploy/` folder.
pub fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

pub fn read_deploy(file: &str) -> String {
    std::fs::read_to_string(deploy_dir().join(file))
        .unwrap_or_else(|e| panic!("deploy/{file}: {e}"))
}

/// Replaces `from` by `to` in `text`, asserting it occurs exactly once (so the test notices
/// when `deploy/prometheus.yml` changes shape).
fn replace_once(text: &str, from: &str, to: &str) -> String {
    assert_eq!(
        text.matches(from).count(),
        1,
        "deploy/prometheus.yml should contain {from:?} once:\n{text}"
    );
    text.replace(from, to)
}

/// `deploy/prometheus.yml` scraping driftgauge at `target` every second and evaluating
/// `alerts.yml` every second; nothing else changed.
pub fn deploy_config(target: &str) -> String {
    let text = read_deploy("prometheus.yml");
    let text = replace_once(&text, "scrape_interval: 15s", "scrape_interval: 1s");
    let text = replace_once(&text, "evaluation_interval: 15s", "evaluation_interval: 1s");
    replace_once(
        &text,
        r#"targets: ["127.0.0.1:9347"]"#,
        &format!(r#"targets: ["{target}"]"#),
    )
}

/// Runs `promtool` with `args` in `dir`; returns (success, stdout + stderr). Panics when
/// promtool is missing.
pub fn promtool(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "promtool is required (apt-get install prometheus; scripts/test installs it): {e}"
            )
        });
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

pub struct Prometheus {
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    child: Child,
    client: reqwest::Client,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `/-/ready`; `Err(log)` when the process exits first (e.g. its port was taken).
async fn wait_ready(
    child: &mut Child,
    client: &reqwest::Client,
    addr: SocketAddr,
    log: &Path,
) -> Result<(), String> {
    let read_log = || std::fs::read_to_string(log).unwrap_or_default();
    let url = format!("http://{addr}/-/ready");
    wait_until("prometheus to become ready", START_WAIT, || {
        // Checked before the request, so the probe's future does not hold the child.
        let exited = child.try_wait().ok().flatten();
        let url = &url;
        async move {
            if let Some(status) = exited {
                return Ok(Err(format!(
                    "prometheus exited ({status}):\n{}",
                    read_log()
                )));
            }
            match client.get(url).send().await {
                Ok(r) if r.status() == 200 => Ok(Ok(())),
                _ => Err(format!("log:\n{}", read_log())),
            }
        }
    })
    .await
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

impl Prometheus {
    /// `deploy/prometheus.yml` (1s intervals) with its `alerts.yml`, scraping driftgauge at
    /// `target`.
    pub async fn start_deploy(target: &str) -> Prometheus {
        Prometheus::start(
            &deploy_config(target),
            &[("alerts.yml", &read_deploy("alerts.yml"))],
        )
        .await
    }

    /// Starts Prometheus with `config` as `prometheus.yml` and `files` next to it, with
    /// `--web.enable-lifecycle` (for [`Prometheus::reload`]).
    pub async fn start(config: &str, files: &[(&str, &str)]) -> Prometheus {
        Prometheus::start_at(config, files, None, &[]).await
    }

    /// [`Prometheus::start`] on a port picked beforehand (for a config that must name
    /// Prometheus's URL before it runs); no retry on another port.
    pub async fn start_on(config: &str, port: u16) -> Prometheus {
        Prometheus::start_at(config, &[], Some(port), &[]).await
    }

    /// [`Prometheus::start_on`] with more flags.
    pub async fn start_at_with_args(config: &str, port: u16, args: &[&str]) -> Prometheus {
        Prometheus::start_at(config, &[], Some(port), args).await
    }

    /// [`Prometheus::start`] with more flags (`--enable-feature=native-histograms`).
    pub async fn start_with_args(
        config: &str,
        files: &[(&str, &str)],
        args: &[&str],
    ) -> Prometheus {
        Prometheus::start_at(config, files, None, args).await
    }

    async fn start_at(
        config: &str,
        files: &[(&str, &str)],
        port: Option<u16>,
        args: &[&str],
    ) -> Prometheus {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("prometheus.yml"), config).expect("write config");
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).expect("write file");
        }
        // The port is free when picked; another process could take it before Prometheus
        // binds, so a bind failure is retried on a new port.
        driftgauge::net::install_crypto_provider();
        let client = reqwest::Client::new();
        for _attempt in 0..3 {
            let picked = port.unwrap_or_else(free_port);
            let addr: SocketAddr = format!("127.0.0.1:{picked}").parse().expect("addr");
            let log_path = dir.path().join("prometheus.log");
            let log = std::fs::File::create(&log_path).expect("log");
            let mut child = Command::new("prometheus")
                .arg(format!(
                    "--config.file={}",
                    dir.path().join("prometheus.yml").display()
                ))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.path().join("data").display()
                ))
                .arg("--storage.tsdb.retention.time=1h")
                .arg(format!("--web.listen-address={addr}"))
                .arg("--web.enable-lifecycle")
                .arg("--log.level=info")
                .args(args)
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log"))
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| {
                    panic!("prometheus is required (apt-get install prometheus; scripts/test installs it): {e}")
                });
            match wait_ready(&mut child, &client, addr, &log_path).await {
                Ok(()) => {
                    return Prometheus {
                        addr,
                        dir,
                        child,
                        client,
                    }
                }
                Err(log) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    if port.is_some() || !log.contains("address already in use") {
                        panic!("prometheus did not start:\n{log}");
                    }
                    let _ = std::fs::remove_dir_all(dir.path().join("data"));
                }
            }
        }
        panic!("prometheus could not bind a free port in 3 attempts");
    }

    /// Prometheus's own log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Writes a new `prometheus.yml` and reloads it (`POST /-/reload`); asserts it took.
    pub async fn reload(&self, config: &str) {
        std::fs::write(self.dir.path().join("prometheus.yml"), config).expect("write config");
        let r = self
            .client
            .post(self.url("/-/reload"))
            .send()
            .await
            .expect("reload");
        let status = r.status();
        let body = r.text().await.unwrap_or_default();
        assert_eq!(status, 200, "reload failed: {body}\n{}", self.log());
    }

    /// GETs an API path; returns the whole JSON answer, whatever its status.
    pub async fn get(&self, path: &str, params: &[(&str, &str)]) -> (u16, Value) {
        let mut url = reqwest::Url::parse(&self.url(path)).expect("url");
        url.query_pairs_mut().extend_pairs(params);
        let r = self
            .client
            .get(url)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let status = r.status().as_u16();
        let text = r.text().await.expect("body");
        let v = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{path} answered non-JSON ({e}): {text}"));
        (status, v)
    }

    /// `data` of a successful API answer; panics with the error otherwise.
    pub async fn api(&self, path: &str, params: &[(&str, &str)]) -> Value {
        let (status, v) = self.get(path, params).await;
        assert!(
            status == 200 && v["status"] == "success",
            "{path} {params:?} failed ({status}): {v}"
        );
        v["data"].clone()
    }

    /// The result of an instant query (`/api/v1/query`), which must parse and run.
    pub async fn query(&self, expr: &str) -> Vec<Value> {
        let data = self.api("/api/v1/query", &[("query", expr)]).await;
        match &data["result"] {
            Value::Array(a) => a.clone(),
            // Scalars and strings: one value.
            Value::Null => vec![],
            other => vec![other.clone()],
        }
    }

    /// Polls an instant query until it returns at least one series; returns them.
    pub async fn wait_query(&self, expr: &str) -> Vec<Value> {
        wait_until(
            &format!("data for {expr} through Prometheus"),
            DATA_WAIT,
            || async {
                let result = self.query(expr).await;
                if result.is_empty() {
                    Err(format!(
                        "targets: {}\nlog:\n{}",
                        self.api("/api/v1/targets", &[]).await,
                        self.log()
                    ))
                } else {
                    Ok(result)
                }
            },
        )
        .await
    }
}

/// The float value of an instant-vector element (`{"metric":..,"value":[t,"v"]}`).
pub fn sample_value(sample: &Value) -> f64 {
    sample["value"][1]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("not a sample: {sample}"))
}
