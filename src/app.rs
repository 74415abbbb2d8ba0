//! Wiring: loads config and rules, starts the engine, scheduler, webhook sender and HTTP
//! server, and reloads on demand. `main.rs` only parses the command line and calls [`run`].

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{watch, Mutex as AsyncMutex};

use crate::config::watch::{Fingerprint, Seen, READ_LIMIT};
use crate::config::{self, LoadError};
use crate::engine::{scheduler, Engine};
use crate::http::web_config::WebConfigHandle;
use crate::labels::RejectReason;
use crate::output::webhook::{WebhookError, WebhookSender};
use crate::store::Store;
use crate::telemetry::Telemetry;
use crate::time::{now_ms, stopped};

/// How long in-flight requests and webhook attempts get to finish on shutdown.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct Options {
    /// `--config.file`; `None` runs on the embedded default.
    pub config_file: Option<PathBuf>,
    pub storage_path: PathBuf,
    /// How often rule+series state is flushed to the store (`--storage.flush-interval`).
    pub flush_interval: Duration,
    pub enable_lifecycle: bool,
    /// Reload on SIGHUP (off for in-process tests).
    pub handle_sighup: bool,
    /// Reload when the config or rule files change (`--config.auto-reload`).
    pub auto_reload: bool,
    /// `--web.config.file`: TLS, basic auth and write tokens (exporter-toolkit format).
    pub web_config: Option<PathBuf>,
    /// `--web.read-timeout`: how long a request body may take to arrive.
    pub read_timeout: Duration,
    /// `--web.max-connections`: connections served at once.
    pub max_connections: usize,
    /// `--cluster.replica`, `--shard.index`, `--shard.total`.
    pub cluster: crate::cluster::Cluster,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            config_file: None,
            storage_path: PathBuf::from("data"),
            flush_interval: DEFAULT_FLUSH_INTERVAL,
            enable_lifecycle: false,
            handle_sighup: false,
            auto_reload: false,
            web_config: None,
            read_timeout: crate::http::server::DEFAULT_READ_TIMEOUT,
            max_connections: crate::http::server::DEFAULT_MAX_CONNECTIONS,
            cluster: crate::cluster::Cluster::default(),
        }
    }
}

/// `--storage.flush-interval`'s default.
pub const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Every `file:line:col: message`, one per line.
    #[error(transparent)]
    Config(#[from] LoadError),
    #[error("webhook sender")]
    Webhook(#[from] WebhookError),
    #[error("storage path {path}")]
    Storage {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("serving HTTP")]
    Io(#[from] std::io::Error),
    /// Every `file:line:col: message` of the web config, one per line.
    #[error(transparent)]
    WebConfig(#[from] crate::http::web_config::WebConfigError),
}

/// The running service's reload: config and rule files into the engine, and the web config.
/// SIGHUP, `--config.auto-reload` and `POST /-/reload` all come here.
pub struct App {
    pub options: Options,
    pub engine: Arc<Engine>,
    /// `--web.config.file`, when given: who gets in. Reloaded when its files change, on
    /// SIGHUP and on `/-/reload`.
    pub web: Option<Arc<WebConfigHandle>>,
    /// One reload at a time.
    reload_lock: AsyncMutex<()>,
}

impl crate::http::Reloader for App {
    fn reload(&self) -> std::pin::Pin<Box<dyn Future<Output = Result<(), LoadError>> + Send + '_>> {
        Box::pin(App::reload(self))
    }
}

impl App {
    /// Reloads config and rules, and the web config when there is one. On any error in the
    /// config or rule files the running rules stay and the reload gauge drops to 0; a bad web
    /// config keeps the running web config (the gauge is about config and rules, as in
    /// Prometheus). Every error is logged as `file:line:col: message` and returned.
    pub async fn reload(&self) -> Result<(), LoadError> {
        let _guard = self.reload_lock.lock().await;
        let file = self.options.config_file.clone();
        let engine = Arc::clone(&self.engine);
        // Loading reads files, and installing the rules takes the engine's locks: both on the
        // blocking pool.
        let loaded = tokio::task::spawn_blocking(move || {
            config::load(file.as_deref()).map(|loaded| {
                let n_rules: usize = loaded.rules.groups.iter().map(|g| g.rules.len()).sum();
                engine.apply(loaded.config, loaded.rules);
                n_rules
            })
        })
        .await
        .unwrap_or_else(|e| {
            Err(LoadError(vec![config::Diagnostic::general(format!(
                "reload task failed: {e}"
            ))]))
        });
        let telemetry = &self.engine.telemetry;
        let rules = match loaded {
            Ok(n_rules) => {
                telemetry
                    .config_last_reload_successful
                    .store(1, Ordering::Relaxed);
                telemetry
                    .config_last_reload_success_timestamp
                    .store(now_ms() / 1000, Ordering::Relaxed);
                tracing::info!(rules = n_rules, "configuration reloaded");
                Ok(())
            }
            Err(e) => {
                telemetry
                    .config_last_reload_successful
                    .store(0, Ordering::Relaxed);
                for d in &e.0 {
                    tracing::error!(error = %d, "reload failed; keeping the running rules");
                }
                Err(e)
            }
        };
        // The web config, read again even when unchanged; it logs its own errors.
        let web = match &self.web {
            Some(web) => web.reload().await,
            None => Ok(()),
        };
        match (rules, web) {
            (Ok(()), Ok(())) => Ok(()),
            (Err(e), Ok(())) => Err(e),
            (Ok(()), Err(w)) => Err(LoadError(w.0)),
            (Err(mut e), Err(w)) => {
                e.0.extend(w.0);
                Err(e)
            }
        }
    }
}

/// Serves on `listener` until `shutdown` completes, then stops accepting, lets in-flight
/// requests and webhook attempts finish within [`SHUTDOWN_GRACE`], and returns.
pub async fn run(
    options: Options,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), AppError> {
    // First, so a bad web config stops the start before anything else happens. Blocking
    // pool: it reads files.
    let web = match options.web_config.clone() {
        Some(path) => {
            let loaded = tokio::task::spawn_blocking(move || WebConfigHandle::load(path))
                .await
                .map_err(|e| AppError::Io(std::io::Error::other(e)))??;
            // Debug output is secret-free: user names and file names only.
            tracing::info!(web_config = ?loaded.get(), "web config loaded");
            Some(Arc::new(loaded))
        }
        None => None,
    };
    let file = options.config_file.clone();
    let loaded = tokio::task::spawn_blocking(move || config::load(file.as_deref()))
        .await
        .unwrap_or_else(|e| {
            Err(LoadError(vec![config::Diagnostic::general(format!(
                "load task failed: {e}"
            ))]))
        })?;
    std::fs::create_dir_all(&options.storage_path).map_err(|source| AppError::Storage {
        path: options.storage_path.clone(),
        source,
    })?;
    let dir = options.storage_path.clone();
    let store = tokio::task::spawn_blocking(move || Store::open(&dir))
        .await
        .map_err(|e| AppError::Io(std::io::Error::other(e)))??;

    let telemetry = Arc::new(Telemetry::default());
    for source in ["push", "remote_write"] {
        telemetry.samples_received.touch(source);
        telemetry.samples_unselected.touch(source);
    }
    for reason in RejectReason::REQUEST {
        telemetry.requests_rejected.touch(reason.as_str());
    }
    let sender = WebhookSender::new(loaded.config.webhooks.clone(), Arc::clone(&telemetry))?;
    let n_rules: usize = loaded.rules.groups.iter().map(|g| g.rules.len()).sum();
    let n_groups = loaded.rules.groups.len();
    let engine = Arc::new(Engine::with_cluster(
        loaded.config,
        loaded.rules,
        Arc::clone(&telemetry),
        Arc::new(sender.clone()),
        options.cluster.clone(),
    ));
    let owned_groups = engine.current().groups.len();
    telemetry
        .config_last_reload_successful
        .store(1, Ordering::Relaxed);
    telemetry
        .config_last_reload_success_timestamp
        .store(now_ms() / 1000, Ordering::Relaxed);

    // Restore state before answering ready: windows, EMA, rule states, then the outbox.
    let restored = {
        let (engine, store) = (Arc::clone(&engine), store.clone());
        tokio::task::spawn_blocking(move || engine.restore(&store))
            .await
            .map_err(|e| AppError::Io(std::io::Error::other(e)))??
    };
    {
        let telemetry = Arc::clone(&telemetry);
        store.on_health_change(move |healthy| telemetry.storage_healthy.set(healthy));
    }
    sender.set_outbox(store.clone());
    let resumed = sender.resume_from_outbox()?;
    tracing::info!(
        store = %store.path().display(),
        series = restored.series,
        dropped = restored.dropped,
        webhook_deliveries = resumed,
        "state restored"
    );

    let (stop, stop_rx) = watch::channel(false);
    let app = Arc::new(App {
        options,
        engine: Arc::clone(&engine),
        web: web.clone(),
        reload_lock: AsyncMutex::new(()),
    });
    let mut state = crate::http::State::new(
        Arc::clone(&engine),
        web,
        app.options.enable_lifecycle,
        Arc::clone(&app) as Arc<dyn crate::http::Reloader>,
    );
    state.read_timeout = app.options.read_timeout;
    state.max_connections = app.options.max_connections;
    let state = Arc::new(state);
    let scheduler = tokio::spawn(scheduler::run(Arc::clone(&engine), stop_rx.clone()));
    if app.options.handle_sighup {
        spawn_sighup(Arc::clone(&app), stop_rx.clone());
    }
    if app.options.auto_reload {
        spawn_auto_reload(Arc::clone(&app), stop_rx.clone());
    }
    // Sources that pull: they start after the restore (query warm-ups must not refill
    // restored windows) and follow reloads.
    let sources = engine.sources();
    let query_sources =
        crate::ingest::query::spawn_configured_query_sources(sources.clone(), stop_rx.clone());
    let scrapers = tokio::spawn(crate::ingest::scrape::run(sources, stop_rx.clone()));
    let flusher = tokio::spawn(flush_loop(
        Arc::clone(&engine),
        sender.clone(),
        store.clone(),
        app.options.flush_interval,
        stop_rx.clone(),
    ));
    state.set_ready(true);
    tracing::info!(
        address = %listener.local_addr()?,
        groups = n_groups,
        rules = n_rules,
        shard_index = app.options.cluster.shard.index(),
        shard_total = app.options.cluster.shard.total(),
        owned_groups,
        replica = app.options.cluster.replica.as_deref().unwrap_or(""),
        "driftgauge listening"
    );

    let draining = crate::http::server::serve(listener, Arc::clone(&state), shutdown).await;
    tracing::info!("shutting down: no new connections; finishing in-flight work");
    state.set_ready(false);
    let _ = stop.send(true);
    if !draining.finish(SHUTDOWN_GRACE).await {
        tracing::warn!(grace = %crate::config::format_duration(SHUTDOWN_GRACE), "in-flight requests did not finish in time");
    }
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, scheduler).await;
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, query_sources).await;
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, scrapers).await;
    let _ = flusher.await;
    // The last flush, after the last evaluation: acknowledged samples survive a SIGTERM.
    flush_now(&engine, &sender, &store).await;
    sender.shutdown(SHUTDOWN_GRACE).await;
    tracing::info!("driftgauge stopped");
    Ok(())
}

/// Writes what is not persisted yet: first the webhook deliveries a failing store could not
/// take (so no series state says "sent" for a delivery the outbox lacks), then the changed
/// rule+series state. What fails stays in memory for the next flush; the store logs the
/// failing episode once and `/-/ready` fails meanwhile.
async fn flush_now(engine: &Arc<Engine>, sender: &WebhookSender, store: &Store) {
    let (e, w, s) = (Arc::clone(engine), sender.clone(), store.clone());
    let flushed = tokio::task::spawn_blocking(move || {
        w.persist_pending()?;
        e.flush(&s)
    })
    .await;
    match flushed {
        Ok(Ok(n)) => {
            engine
                .telemetry
                .storage_last_flush_timestamp
                .store(now_ms(), Ordering::Relaxed);
            tracing::debug!(records = n, "state flushed");
        }
        Ok(Err(error)) => tracing::debug!(%error, "flushing state failed; will retry"),
        Err(error) => tracing::error!(%error, "flush task failed"),
    }
}

/// Flushes changed rule+series state every `interval` until `stop`.
async fn flush_loop(
    engine: Arc<Engine>,
    sender: WebhookSender,
    store: Store,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(interval.max(Duration::from_millis(10)));
    ticker.tick().await;
    loop {
        tokio::select! {
            _ = ticker.tick() => flush_now(&engine, &sender, &store).await,
            _ = stopped(&mut stop) => return,
        }
    }
}

/// How often `--config.auto-reload` looks at the files.
const AUTO_RELOAD_POLL: Duration = Duration::from_secs(2);

/// The config file and every file the `rule_files` globs match now (so new and removed
/// files count too).
fn watched_paths(config_file: Option<&std::path::Path>, rule_globs: &[String]) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = config_file
        .map(std::path::Path::to_path_buf)
        .into_iter()
        .collect();
    for pattern in rule_globs {
        if let Ok(paths) = glob::glob(pattern) {
            out.extend(paths.flatten());
        }
    }
    out
}

/// The files as they are now: stamped and digested, as the web config's files are (a rewrite
/// that keeps the length and the modification time is still seen).
fn fingerprint(paths: &[PathBuf]) -> Fingerprint {
    Fingerprint(paths.iter().map(|p| Seen::read(p, READ_LIMIT).0).collect())
}

/// `--config.auto-reload`: polls the files' fingerprint and reloads when it changes. A bad
/// edit is reported once (and keeps the running rules) until the files change again.
fn spawn_auto_reload(app: Arc<App>, mut stop: watch::Receiver<bool>) {
    tokio::spawn(async move {
        let globs = |app: &App| app.engine.current().config.rule_files.clone();
        let mut paths = watched_paths(app.options.config_file.as_deref(), &globs(&app));
        let mut last = fingerprint(&paths);
        let mut ticker = tokio::time::interval(AUTO_RELOAD_POLL);
        loop {
            tokio::select! {
                _ = ticker.tick() => {
                    let now = watched_paths(app.options.config_file.as_deref(), &globs(&app));
                    if now != paths || last.changed() {
                        tracing::info!("config or rule files changed: reloading");
                        let _ = app.reload().await;
                        // The reload may have changed the globs themselves.
                        paths = watched_paths(app.options.config_file.as_deref(), &globs(&app));
                        last = fingerprint(&paths);
                    }
                }
                _ = stopped(&mut stop) => return,
            }
        }
    });
}

#[cfg(unix)]
fn spawn_sighup(app: Arc<App>, mut stop: watch::Receiver<bool>) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGHUP; reload with POST /-/reload");
            return;
        }
    };
    tokio::spawn(async move {
        loop {
            tokio::select! {
                got = hup.recv() => {
                    if got.is_none() { return; }
                    tracing::info!("SIGHUP: reloading configuration");
                    let _ = app.reload().await;
                }
                _ = stopped(&mut stop) => return,
            }
        }
    });
}

#[cfg(not(unix))]
fn spawn_sighup(_app: Arc<App>, _stop: watch::Receiver<bool>) {}
