//! Fixtures for the remote write and scrape tests: a programmable exporter (a real HTTP
//! server answering `/metrics` with whatever body the test sets, changed during the test),
//! and the service assembled from its parts around an [`Engine`] the test keeps (its
//! counters and series are read directly): the real scheduler, the real HTTP server, router
//! and handlers (`http::server::serve` with an `http::State`), and scrapers started with
//! `scrape::spawn_scrapers` or following reloads with `scrape::run`, all on loopback.
//! `app::run` is the same assembly plus the store, the webhook outbox and the query sources.

#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use driftgauge::config::LoadError;
use driftgauge::engine::{scheduler, Engine};
use driftgauge::http::{server, Reloader, State};
use driftgauge::ingest::scrape;
use driftgauge::output::webhook::WebhookSender;
use driftgauge::telemetry::Telemetry;
use driftgauge::time::stopped;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::receiver::{Receiver, Reply, Script};
use crate::support::{metric_value, wait_until, WAIT};

pub const TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// An exporter whose `/metrics` answer the test sets (and changes) at will.
pub struct Exporter {
    pub server: Receiver,
    reply: Arc<Mutex<Reply>>,
}

impl Exporter {
    pub async fn start(content_type: &str, body: &str) -> Exporter {
        let reply = Arc::new(Mutex::new(
            Reply::ok().header("content-type", content_type).body(body),
        ));
        let shared = Arc::clone(&reply);
        let server = Receiver::start(Script::from_fn(move |_| {
            shared.lock().unwrap_or_else(|e| e.into_inner()).clone()
        }))
        .await;
        Exporter { server, reply }
    }

    /// `127.0.0.1:PORT`, as a scrape target.
    pub fn target(&self) -> String {
        self.server.addr().to_string()
    }

    /// Answers this from the next request on.
    pub fn set(&self, reply: Reply) {
        *self.reply.lock().unwrap_or_else(|e| e.into_inner()) = reply;
    }

    pub fn set_body(&self, content_type: &str, body: &str) {
        self.set(Reply::ok().header("content-type", content_type).body(body));
    }

    /// Scrapes answered so far.
    pub fn scrapes(&self) -> usize {
        self.server.requests().len()
    }

    /// Returns once a scrape that began after this call has been answered and the scrape
    /// after it has begun: scrapes of one target run one after another, so by then the
    /// earlier one has been parsed and ingested. Call it after [`Exporter::set`].
    pub async fn wait_scraped(&self) {
        // One scrape may have picked its answer before the change: skip it, take the next
        // one, then wait for the one after that to start.
        let n = self.scrapes();
        self.server.wait_for(n + 3, WAIT).await;
    }
}

/// An engine with its scheduler, scrapers and the service's HTTP server.
pub struct Service {
    pub engine: Arc<Engine>,
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    pub client: reqwest::Client,
    stop: watch::Sender<bool>,
}

/// How the service runs its scrapers.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Scrapers {
    /// `scrape::spawn_scrapers` with the loaded `scrape_configs`.
    Spawn,
    /// `scrape::run`, following reloads.
    FollowReloads,
}

/// `POST /-/reload` of the fixture's service: the files read again and applied, as a reload
/// of the running service does.
struct Reload {
    engine: Arc<Engine>,
    config_file: PathBuf,
}

impl Reloader for Reload {
    fn reload(&self) -> Pin<Box<dyn Future<Output = Result<(), LoadError>> + Send + '_>> {
        Box::pin(async move {
            let loaded = driftgauge::config::load(Some(&self.config_file))?;
            self.engine.apply(loaded.config, loaded.rules);
            Ok(())
        })
    }
}

impl Service {
    /// Writes `driftgauge.yml` (with `config`) and `files` (paths relative to the config,
    /// e.g. `rules/a.yml`, `token.txt`) into a temp dir, loads them as `serve` does, and
    /// starts everything.
    pub async fn start(config: &str, files: &[(&str, &str)], scrapers: Scrapers) -> Service {
        let dir = tempfile::tempdir().expect("temp dir");
        write_files(dir.path(), config, files);
        let config_file = dir.path().join("driftgauge.yml");
        let loaded = driftgauge::config::load(Some(&config_file))
            .unwrap_or_else(|e| panic!("test config refused: {e}"));
        let telemetry = Arc::new(Telemetry::default());
        let sender = WebhookSender::new(loaded.config.webhooks.clone(), Arc::clone(&telemetry))
            .expect("webhook sender");
        let scrape_configs = loaded.config.scrape_configs.clone();
        let engine = Arc::new(Engine::new(
            loaded.config,
            loaded.rules,
            telemetry,
            Arc::new(sender),
        ));
        let (stop, stop_rx) = watch::channel(false);
        tokio::spawn(scheduler::run(Arc::clone(&engine), stop_rx.clone()));
        match scrapers {
            Scrapers::Spawn => {
                scrape::spawn_scrapers(engine.sources(), scrape_configs, stop_rx.clone());
            }
            Scrapers::FollowReloads => {
                tokio::spawn(scrape::run(engine.sources(), stop_rx.clone()));
            }
        }
        let reloader = Arc::new(Reload {
            engine: Arc::clone(&engine),
            config_file,
        });
        let state = Arc::new(State::new(Arc::clone(&engine), None, true, reloader));
        state.set_ready(true);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let mut stopping = stop_rx;
        tokio::spawn(async move {
            server::serve(listener, state, async move { stopped(&mut stopping).await }).await;
        });
        Service {
            engine,
            addr,
            dir,
            client: reqwest::Client::new(),
            stop,
        }
    }

    /// Rewrites the files and reloads them through `POST /-/reload`; asserts it took.
    pub async fn reload(&self, config: &str, files: &[(&str, &str)]) {
        write_files(self.dir.path(), config, files);
        let r = self
            .client
            .post(self.url("/-/reload"))
            .send()
            .await
            .expect("POST /-/reload");
        let status = r.status();
        let body = r.text().await.unwrap_or_default();
        assert_eq!(status, 200, "reload refused: {body}");
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// POSTs a remote write body as Prometheus does.
    pub async fn write(&self, body: Vec<u8>) -> (u16, String) {
        let r = self
            .client
            .post(self.url("/api/v1/write"))
            .header("content-type", "application/x-protobuf")
            .header("content-encoding", "snappy")
            .header("x-prometheus-remote-write-version", "0.1.0")
            .body(body)
            .send()
            .await
            .expect("POST /api/v1/write");
        (r.status().as_u16(), r.text().await.expect("body"))
    }

    pub async fn metrics(&self) -> String {
        let r = self
            .client
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("GET /metrics");
        assert_eq!(r.status(), 200);
        r.text().await.expect("body")
    }

    /// Polls `/metrics` until `cond` holds for it; returns that text.
    pub async fn wait_for(&self, what: &str, cond: impl Fn(&str) -> bool) -> String {
        wait_until(what, WAIT, || async {
            let text = self.metrics().await;
            if cond(&text) {
                Ok(text)
            } else {
                Err(format!("/metrics:\n{text}"))
            }
        })
        .await
    }

    /// Polls `/metrics` until `name{labels}` satisfies `pred`; returns the value.
    pub async fn wait_metric(
        &self,
        name: &str,
        labels: &[(&str, &str)],
        pred: impl Fn(f64) -> bool,
    ) -> f64 {
        let text = self
            .wait_for(&format!("{name}{labels:?}"), |t| {
                metric_value(t, name, labels).is_some_and(&pred)
            })
            .await;
        metric_value(&text, name, labels).unwrap_or(f64::NAN)
    }

    pub fn counter(&self, family: &str, label: &str) -> f64 {
        let t = &self.engine.telemetry;
        match family {
            "received" => t.samples_received.get(label),
            "rejected" => t.samples_rejected.get(label),
            "unselected" => t.samples_unselected.get(label),
            "requests_rejected" => t.requests_rejected.get(label),
            "scrape_failures" => t.scrape_failures.get(label),
            other => panic!("no counter family {other}"),
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

fn write_files(dir: &std::path::Path, config: &str, files: &[(&str, &str)]) {
    std::fs::create_dir_all(dir.join("rules")).expect("rules dir");
    std::fs::write(dir.join("driftgauge.yml"), config).expect("write config");
    for (name, text) in files {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("dir");
        }
        std::fs::write(path, text).expect("write file");
    }
}
