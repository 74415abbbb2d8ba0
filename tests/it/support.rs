//! Starts driftgauge in-process on `127.0.0.1:0` with a temporary config, rules and storage,
//! and talks to it over real HTTP; and the suite's one way to wait: [`poll`] (sync) and
//! [`wait_until`] (async) look at a condition until it holds or a deadline passes, and name
//! what they awaited when it does. Tests never sleep to wait.

#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use driftgauge::app;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const WAIT: Duration = Duration::from_secs(15);

pub struct Server {
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    pub client: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), app::AppError>>>,
}

/// A server's files: `driftgauge.yml` plus rule files, written into a temp dir.
pub struct Files {
    pub config: String,
    pub rules: Vec<(String, String)>,
}

impl Files {
    pub fn new(config: &str) -> Files {
        Files {
            config: config.to_string(),
            rules: vec![],
        }
    }
    pub fn rule_file(mut self, name: &str, text: &str) -> Files {
        self.rules.push((name.to_string(), text.to_string()));
        self
    }
}

impl Server {
    pub async fn start(files: Files) -> Server {
        Server::start_with(files, |_| {}).await
    }

    /// Starts with options adjusted by `tweak` (config file, storage and lifecycle are set).
    pub async fn start_with(files: Files, tweak: impl FnOnce(&mut app::Options)) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        write_files(dir.path(), &files);
        let mut options = app::Options {
            config_file: Some(dir.path().join("driftgauge.yml")),
            storage_path: dir.path().join("data"),
            flush_interval: std::time::Duration::from_millis(100),
            enable_lifecycle: true,
            handle_sighup: false,
            auto_reload: false,
            web_config: None,
            ..app::Options::default()
        };
        tweak(&mut options);
        driftgauge::net::install_crypto_provider();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(app::run(options, listener, async move {
            let _ = stopped.await;
        }));
        let mut server = Server {
            addr,
            dir,
            client: reqwest::Client::new(),
            stop: Some(stop),
            task: Some(task),
        };
        server.wait_ready().await;
        server
    }

    async fn wait_ready(&mut self) {
        let (client, task, url) = (&self.client, &self.task, self.url("/-/ready"));
        let exited = wait_until("driftgauge to become ready", WAIT, || async {
            if task.as_ref().is_some_and(|t| t.is_finished()) {
                return Some(true);
            }
            let ready = client
                .get(&url)
                .send()
                .await
                .is_ok_and(|r| r.status() == 200);
            ready.then_some(false)
        })
        .await;
        if exited {
            let result = self.task.take().expect("task").await;
            panic!("driftgauge exited during start-up: {result:?}");
        }
    }

    /// Rewrites the config and rule files (rule files not listed are removed).
    pub fn rewrite(&self, files: &Files) {
        for entry in std::fs::read_dir(self.dir.path().join("rules"))
            .expect("rules dir")
            .flatten()
        {
            let _ = std::fs::remove_file(entry.path());
        }
        write_files(self.dir.path(), files);
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        let r = self.client.get(self.url(path)).send().await.expect("GET");
        (r.status().as_u16(), r.text().await.expect("body"))
    }

    pub async fn post(&self, path: &str, body: impl Into<reqwest::Body>) -> (u16, String) {
        let r = self
            .client
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("POST");
        (r.status().as_u16(), r.text().await.expect("body"))
    }

    pub async fn post_json(&self, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        let (status, text) = self.post(path, body.to_string()).await;
        let v = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{path} answered non-JSON ({e}): {text}"));
        (status, v)
    }

    /// Pushes one series' values; asserts 200.
    pub async fn push(&self, metric: &str, labels: &[(&str, &str)], values: &[f64]) {
        let labels: serde_json::Map<String, serde_json::Value> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), serde_json::json!(v)))
            .collect();
        let body = serde_json::json!({"samples": [{"metric": metric, "labels": labels, "values": values}]});
        let (status, v) = self.post_json("/api/v1/samples", body).await;
        assert_eq!(status, 200, "push refused: {v}");
        assert_eq!(v["accepted"], values.len());
    }

    pub async fn metrics(&self) -> String {
        let (status, text) = self.get("/metrics").await;
        assert_eq!(status, 200);
        text
    }

    /// Polls `/metrics` until `name{labels}` has a value satisfying `pred`; returns it.
    pub async fn wait_metric(
        &self,
        name: &str,
        labels: &[(&str, &str)],
        pred: impl Fn(f64) -> bool,
    ) -> f64 {
        wait_until(&format!("{name}{labels:?}"), WAIT, || async {
            let text = self.metrics().await;
            metric_value(&text, name, labels)
                .filter(|&v| pred(v))
                .ok_or(format!("/metrics:\n{text}"))
        })
        .await
    }

    /// Stops the server the way SIGTERM does and waits for it to finish.
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            let r = tokio::time::timeout(WAIT, t)
                .await
                .expect("shutdown within bound")
                .expect("join");
            r.expect("clean exit");
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

fn write_files(dir: &Path, files: &Files) {
    std::fs::create_dir_all(dir.join("rules")).expect("rules dir");
    std::fs::write(dir.join("driftgauge.yml"), &files.config).expect("write config");
    for (name, text) in &files.rules {
        std::fs::write(dir.join("rules").join(name), text).expect("write rules");
    }
}

/// The value of the sample `name{...}` whose labels include all of `labels`; panics when
/// several samples match (the test's selector is ambiguous).
pub fn metric_value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut found = None;
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let (series, value) = match line.rsplit_once(' ') {
            Some(x) => x,
            None => continue,
        };
        let (n, rest) = match series.find('{') {
            Some(i) => (&series[..i], &series[i..]),
            None => (series, ""),
        };
        if n != name {
            continue;
        }
        if labels
            .iter()
            .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")))
        {
            assert!(
                found.is_none(),
                "several samples of {name} match {labels:?}:\n{text}"
            );
            found = Some(match value {
                "NaN" => f64::NAN,
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                v => v.parse().expect("metric value"),
            });
        }
    }
    found
}

/// How long a polling wait sleeps between two looks.
pub const POLL_EVERY: Duration = Duration::from_millis(20);

/// What a probe of [`poll`] or [`wait_until`] answers: done (`true`, `Some(v)`, `Ok(v)`) with
/// what the wait returns, or not yet (`false`, `None`, `Err(seen)`, where `seen` says what
/// the probe saw, for the message of a wait that times out).
pub trait Probe {
    type Done;
    fn done(self) -> Result<Self::Done, String>;
}

impl Probe for bool {
    type Done = ();
    fn done(self) -> Result<(), String> {
        if self {
            Ok(())
        } else {
            Err(String::new())
        }
    }
}

impl<T> Probe for Option<T> {
    type Done = T;
    fn done(self) -> Result<T, String> {
        self.ok_or_else(String::new)
    }
}

impl<T> Probe for Result<T, String> {
    type Done = T;
    fn done(self) -> Result<T, String> {
        self
    }
}

fn timed_out(caller: &std::panic::Location, what: &str, within: Duration, seen: &str) -> String {
    let mut message = format!("{caller}: timed out after {within:?} waiting for {what}");
    if !seen.is_empty() {
        message.push_str("; last seen:\n");
        message.push_str(seen);
    }
    message
}

/// Calls `probe` every [`POLL_EVERY`] until it is done and returns what it found; after
/// `within`, panics naming the caller, `what` was awaited and what the probe saw last. For
/// tests without a runtime (processes, blocking clients).
#[track_caller]
pub fn poll<P: Probe>(what: &str, within: Duration, mut probe: impl FnMut() -> P) -> P::Done {
    let caller = std::panic::Location::caller();
    let deadline = Instant::now() + within;
    loop {
        match probe().done() {
            Ok(done) => return done,
            Err(seen) if Instant::now() >= deadline => {
                panic!("{}", timed_out(caller, what, within, &seen))
            }
            Err(_) => std::thread::sleep(POLL_EVERY),
        }
    }
}

/// [`poll`] for async probes: awaits `probe()` every [`POLL_EVERY`] until it is done and
/// returns what it found; after `within`, panics naming the caller, `what` was awaited and
/// what the probe saw last.
#[track_caller]
pub fn wait_until<P, F, Fut>(
    what: &str,
    within: Duration,
    mut probe: F,
) -> impl Future<Output = P::Done>
where
    P: Probe,
    F: FnMut() -> Fut,
    Fut: Future<Output = P>,
{
    let caller = std::panic::Location::caller();
    let what = what.to_string();
    async move {
        let deadline = Instant::now() + within;
        loop {
            match probe().await.done() {
                Ok(done) => return done,
                Err(seen) if Instant::now() >= deadline => {
                    panic!("{}", timed_out(caller, &what, within, &seen))
                }
                Err(_) => tokio::time::sleep(POLL_EVERY).await,
            }
        }
    }
}

/// A deterministic pseudo-random stream (splitmix64), for sample data.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn uniform(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Approximately normal (sum of 12 uniforms).
    pub fn normal(&mut self, mean: f64, sd: f64) -> f64 {
        let s: f64 = (0..12).map(|_| self.uniform()).sum();
        mean + sd * (s - 6.0)
    }
    pub fn normals(&mut self, n: usize, mean: f64, sd: f64) -> Vec<f64> {
        (0..n).map(|_| self.normal(mean, sd)).collect()
    }
}
