//! The running `--web.config.file`: built from the parsed file (`rules::web`) into TLS
//! (`tls`), authorization (`auth`) and response headers, and followed as its files change.
//!
//! Changes apply without a restart, as exporter-toolkit's users expect (it re-reads the file
//! for every request and handshake): [`WebConfigHandle`] holds the running config and a
//! fingerprint (length, modification and change times, inode) of the web config file and of
//! every file it names (certificate, key, client CA, token files), each taken just before the
//! file was read. At most once per [`WEB_CONFIG_CHECK_INTERVAL`] a request or a new connection
//! stats those files; when one changed, the config is read again on tokio's blocking pool and,
//! if valid, used from the next request and the next TLS handshake on (a certificate rotated
//! in place is served on the next handshake). SIGHUP and `/-/reload` re-read it at once. A bad
//! new file keeps the running config; its diagnostics are logged once per change. Switching
//! between HTTP and HTTPS (adding or removing `tls_server_config`) and turning authentication
//! off altogether (no users and no tokens left: also what a file caught half written looks
//! like) are refused the same way and need a restart. At start, a bad file is a fatal error.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use hyper::header::{HeaderName, HeaderValue};
use hyper::{HeaderMap, Method};
use tokio_rustls::TlsAcceptor;

use crate::config::diag::io_reason;
use crate::config::watch::{Fingerprint, Seen};
use crate::config::web::{self as spec, WebFiles};
use crate::config::Diagnostic;
use crate::http::auth::{Auth, AuthError, PasswordPool};
use crate::http::tls::{self, Tls};

/// The web config and the files it names are small: certificates, keys, tokens.
const WEB_FILE_LIMIT: u64 = 16 << 20;

/// Every problem of a web config file, one `file:line:col: message` a line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", one_per_line(.0))]
pub struct WebConfigError(pub Vec<Diagnostic>);

fn one_per_line(diags: &[Diagnostic]) -> String {
    let lines: Vec<String> = diags.iter().map(Diagnostic::to_string).collect();
    lines.join("\n")
}

/// A loaded, validated `--web.config.file`. Build it with [`load_web_config`] (or, to follow
/// the file, [`WebConfigHandle::load`]).
pub struct WebConfig {
    file: String,
    tls: Option<Tls>,
    auth: Auth,
    token_files: Vec<PathBuf>,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Vec<&str> = self.headers.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("WebConfig")
            .field("file", &self.file)
            .field("tls", &self.tls)
            .field(
                "basic_auth_users",
                &self.auth.user_names().collect::<Vec<_>>(),
            )
            .field("write_bearer_token_files", &self.token_files)
            .field("headers", &headers)
            .finish_non_exhaustive()
    }
}

impl WebConfig {
    /// The acceptor to wrap accepted connections with; `None` without `tls_server_config`.
    pub fn tls_acceptor(&self) -> Option<TlsAcceptor> {
        self.tls.as_ref().map(Tls::acceptor)
    }

    /// `https` with `tls_server_config`, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }

    /// Does any route need credentials?
    pub fn requires_auth(&self) -> bool {
        self.auth.requires_auth()
    }

    /// The `http_server_config.headers` to set on every response (also on refusals).
    pub fn response_headers(&self) -> &[(HeaderName, HeaderValue)] {
        &self.headers
    }

    /// How many password checks ran (cache misses, unknown users included).
    pub fn bcrypt_verifications(&self) -> u64 {
        self.auth.bcrypt_verifications()
    }

    /// May this request in? See [`Auth::authorize`].
    pub fn authorize(
        &self,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
    ) -> Result<(), AuthError> {
        self.auth.authorize(method, path, headers)
    }

    /// May this request in? See [`Auth::authorize_async`].
    pub async fn authorize_async(
        &self,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
    ) -> Result<(), AuthError> {
        self.auth.authorize_async(method, path, headers).await
    }
}

/// The running config from a parsed file: the TLS acceptor built (its problems reported in
/// file order with the parser's), the headers typed.
fn build(parsed: spec::Parsed, pool: &Arc<PasswordPool>) -> Result<WebConfig, WebConfigError> {
    let spec::Parsed {
        spec,
        mut diags,
        after_tls,
    } = parsed;
    let file = spec.file;
    let tls = match spec.tls.as_ref().map(|t| tls::build(t, &file)) {
        Some(Ok(tls)) => Some(tls),
        Some(Err(d)) => {
            diags.insert(after_tls.min(diags.len()), d);
            None
        }
        None => None,
    };
    if !diags.is_empty() {
        return Err(WebConfigError(diags));
    }
    let mut headers = Vec::with_capacity(spec.headers.len());
    for (name, value) in &spec.headers {
        // `rules::web` lets through only names and values HTTP can carry.
        match (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            (Ok(n), Ok(v)) => headers.push((n, v)),
            _ => {
                return Err(WebConfigError(vec![Diagnostic::whole_file(
                    &file,
                    format!("http_server_config.headers.{name}: not a valid header"),
                )]))
            }
        }
    }
    let token_files = spec.tokens.iter().map(|t| t.file.clone()).collect();
    let digests = spec.tokens.iter().map(|t| t.digest).collect();
    let auth = Auth::new(spec.users, digests, Arc::clone(pool))
        .map_err(|e| WebConfigError(vec![Diagnostic::whole_file(&file, e)]))?;
    Ok(WebConfig {
        file,
        tls,
        auth,
        token_files,
        headers,
    })
}

/// How often, at most, requests and new connections look at the web config's files.
pub const WEB_CONFIG_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// The running `--web.config.file`, reloaded when its files change (see the module docs).
/// Requests and handshakes take [`WebConfigHandle::current`]; SIGHUP and `/-/reload` call
/// [`WebConfigHandle::reload`].
pub struct WebConfigHandle {
    path: PathBuf,
    running: RwLock<Arc<WebConfig>>,
    /// The files as they were when last read, whether that load succeeded or not: a bad file
    /// is reported once, and read again only when something changes.
    seen: Mutex<Fingerprint>,
    check_interval: Duration,
    created: Instant,
    /// When (milliseconds after `created`) the next check of the files is due.
    next_check_ms: AtomicU64,
    /// One load at a time.
    reload_lock: tokio::sync::Mutex<()>,
    /// Where passwords are checked, for the running config and every reload.
    pool: Arc<PasswordPool>,
}

impl fmt::Debug for WebConfigHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebConfigHandle")
            .field("path", &self.path)
            .field("running", &self.get())
            .finish_non_exhaustive()
    }
}

impl WebConfigHandle {
    /// Loads `path` (blocking: it reads files); an error here is the start-up error, every
    /// `file:line:col` of it.
    pub fn load(path: PathBuf) -> Result<WebConfigHandle, WebConfigError> {
        let pool = Arc::new(PasswordPool::new());
        let (config, fingerprint) = load_watched(&path, &pool);
        let config = config?;
        Ok(WebConfigHandle {
            path,
            running: RwLock::new(Arc::new(config)),
            seen: Mutex::new(fingerprint),
            check_interval: WEB_CONFIG_CHECK_INTERVAL,
            created: Instant::now(),
            next_check_ms: AtomicU64::new(millis(WEB_CONFIG_CHECK_INTERVAL)),
            reload_lock: tokio::sync::Mutex::new(()),
            pool,
        })
    }

    /// Checks the files at most this often (default [`WEB_CONFIG_CHECK_INTERVAL`]).
    pub fn with_check_interval(mut self, interval: Duration) -> WebConfigHandle {
        self.check_interval = interval;
        self.next_check_ms = AtomicU64::new(millis(interval));
        self
    }

    /// The web config file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The running config, without looking at the files.
    pub fn get(&self) -> Arc<WebConfig> {
        Arc::clone(&self.running.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// The config to use for a request or a handshake. At most once per check interval this
    /// stats the files and, when one changed, loads them again (on the blocking pool) before
    /// answering; other callers meanwhile get the running config at once.
    pub async fn current(&self) -> Arc<WebConfig> {
        if self.claim_check() {
            self.check().await;
        }
        self.get()
    }

    /// Reads the files again now, changed or not (SIGHUP, `/-/reload`). A bad file keeps the
    /// running config; its diagnostics are logged and returned.
    pub async fn reload(&self) -> Result<(), WebConfigError> {
        let _one = self.reload_lock.lock().await;
        self.load_now().await
    }

    /// Is a check of the files due? Only one caller wins each interval.
    fn claim_check(&self) -> bool {
        let now = millis(self.created.elapsed());
        let due = self.next_check_ms.load(Ordering::Relaxed);
        now >= due
            && self
                .next_check_ms
                .compare_exchange(
                    due,
                    now.saturating_add(millis(self.check_interval)),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
    }

    /// Stats the files and reloads when one changed.
    async fn check(&self) {
        // A reload under way reads the files anyway.
        let Ok(_one) = self.reload_lock.try_lock() else {
            return;
        };
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let checked = tokio::task::spawn_blocking(move || (seen.changed(), seen)).await;
        let Ok((changed, seen)) = checked else {
            return;
        };
        if !changed {
            // Renewed stamps; nothing else replaces `seen` while `reload_lock` is held.
            *self.seen.lock().unwrap_or_else(|e| e.into_inner()) = seen;
        } else {
            tracing::info!(web_config = %self.path.display(), "web config files changed: reloading");
            let _ = self.load_now().await;
        }
    }

    /// Loads the files and swaps the config in, or logs why not. The caller holds
    /// `reload_lock`.
    async fn load_now(&self) -> Result<(), WebConfigError> {
        let path = self.path.clone();
        let pool = Arc::clone(&self.pool);
        let loaded = tokio::task::spawn_blocking(move || load_watched(&path, &pool)).await;
        let result = match loaded {
            Ok((config, fingerprint)) => {
                *self.seen.lock().unwrap_or_else(|e| e.into_inner()) = fingerprint;
                config.and_then(|config| self.no_downgrade(config))
            }
            Err(e) => Err(WebConfigError(vec![Diagnostic::general(format!(
                "web config reload task failed: {e}"
            ))])),
        };
        match result {
            Ok(config) => {
                let config = Arc::new(config);
                *self.running.write().unwrap_or_else(|e| e.into_inner()) = Arc::clone(&config);
                // Debug output is secret-free: user names and file names only.
                tracing::info!(web_config = ?config, "web config reloaded");
                Ok(())
            }
            Err(e) => {
                for d in &e.0 {
                    tracing::error!(error = %d, "web config reload failed; keeping the running web config");
                }
                Err(e)
            }
        }
    }

    /// What a reload may not do, because it would lower the guard silently or break every
    /// client: switch between HTTP and HTTPS (scrape configs name the scheme; dropping TLS
    /// would send credentials in clear text), or turn authentication off altogether (a file
    /// caught half written, truncated to nothing, reads as exactly that). Both need a restart.
    fn no_downgrade(&self, config: WebConfig) -> Result<WebConfig, WebConfigError> {
        let running = self.get();
        let mut refused = Vec::new();
        if config.scheme() != running.scheme() {
            refused.push(if config.tls.is_some() {
                "tls_server_config was added: switching from HTTP to HTTPS needs a restart"
            } else {
                "tls_server_config was removed: switching from HTTPS to HTTP needs a restart"
            });
        }
        if running.requires_auth() && !config.requires_auth() {
            refused.push(
                "basic_auth_users and write_bearer_token_files are gone: turning authentication \
                 off needs a restart",
            );
        }
        if refused.is_empty() {
            return Ok(config);
        }
        let origin = self.path.display().to_string();
        Err(WebConfigError(
            refused
                .into_iter()
                .map(|m| Diagnostic::whole_file(&origin, m))
                .collect(),
        ))
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Reads and validates `--web.config.file`: the YAML, then the certificate, key, CA and token
/// files (relative to the web config's folder). Reports every problem at once.
pub fn load_web_config(path: &Path) -> Result<WebConfig, WebConfigError> {
    load_watched(path, &Arc::new(PasswordPool::new())).0
}

/// [`load_web_config`], and the fingerprint of every file it read (or tried to read), each
/// stamped just before it was read: a change made while loading shows at the next check.
fn load_watched(
    path: &Path,
    pool: &Arc<PasswordPool>,
) -> (Result<WebConfig, WebConfigError>, Fingerprint) {
    let origin = path.display().to_string();
    let (seen, bytes) = Seen::read(path, WEB_FILE_LIMIT);
    let mut fingerprint = Fingerprint(vec![seen]);
    let text = bytes.and_then(|b| {
        String::from_utf8(b).map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidData))
    });
    let text = match text {
        Ok(text) => text,
        Err(e) => {
            let d = Diagnostic::whole_file(
                &origin,
                format!("cannot read the web config: {}", io_reason(&e)),
            );
            return (Err(WebConfigError(vec![d])), fingerprint);
        }
    };
    let base = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut stamped = Stamped(Vec::new());
    let parsed = spec::parse_partial(&text, &origin, base, &mut stamped);
    fingerprint.0.extend(stamped.0);
    let config = build(parsed, pool);
    if let Ok(config) = &config {
        if config.tls.is_none() && config.requires_auth() {
            tracing::warn!(
                web_config = %origin,
                "basic auth or bearer tokens without tls_server_config: credentials cross the network in clear text"
            );
        }
    }
    (config, fingerprint)
}

/// [`load_web_config`] on text already read; `origin` names the file in diagnostics and
/// relative paths are resolved against `base`.
pub fn parse_web_config(
    origin: &str,
    text: &str,
    base: &Path,
) -> Result<WebConfig, WebConfigError> {
    let parsed = spec::parse_partial(text, origin, base, &mut spec::FsWebFiles);
    build(parsed, &Arc::new(PasswordPool::new()))
}

/// The files a web config names, each stamped just before it is read; the stamp joins the
/// fingerprint even when reading fails (a missing file that appears later is a change).
struct Stamped(Vec<Seen>);

impl WebFiles for Stamped {
    fn read(&mut self, path: &Path) -> std::io::Result<Vec<u8>> {
        let (seen, bytes) = Seen::read(path, WEB_FILE_LIMIT);
        self.0.push(seen);
        bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use hyper::header::AUTHORIZATION;

    use crate::http::auth::AuthFailure;

    /// bcrypt's lowest cost keeps the tests fast.
    fn hash(password: &str) -> String {
        bcrypt::hash(password, 4).expect("bcrypt hash")
    }

    fn basic(user: &str, password: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        let creds = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        h.insert(
            AUTHORIZATION,
            HeaderValue::from_str(&format!("Basic {creds}")).expect("header"),
        );
        h
    }

    fn bearer(token: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {token}")).expect("header"),
        );
        h
    }

    fn reason(r: Result<(), AuthError>) -> Option<AuthFailure> {
        r.err().map(|e| e.reason())
    }

    #[test]
    fn an_empty_file_opens_everything() {
        let c = parse_web_config("web.yml", "# nothing\n", Path::new(".")).expect("valid");
        assert!(c.tls_acceptor().is_none());
        assert!(!c.requires_auth());
        assert_eq!(c.scheme(), "http");
        assert_eq!(
            c.authorize(&Method::GET, "/metrics", &HeaderMap::new()),
            Ok(())
        );
        assert_eq!(
            c.authorize(&Method::POST, "/api/v1/samples", &HeaderMap::new()),
            Ok(())
        );
    }

    #[test]
    fn response_headers_are_typed_in_file_order() {
        let c = parse_web_config(
            "web.yml",
            "http_server_config:\n  http2: false\n  headers:\n    x-frame-options: deny\n    Strict-Transport-Security: max-age=31536000\n    X-XSS-Protection: ''\n",
            Path::new("."),
        )
        .expect("valid");
        let headers: Vec<(String, String)> = c
            .response_headers()
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_string(),
                    v.to_str().expect("ascii").to_string(),
                )
            })
            .collect();
        assert_eq!(
            headers,
            vec![
                ("x-frame-options".to_string(), "deny".to_string()),
                (
                    "strict-transport-security".to_string(),
                    "max-age=31536000".to_string()
                ),
            ]
        );
    }

    #[test]
    fn missing_files_are_named_with_their_resolved_path() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("web.yml");
        std::fs::write(
            &path,
            "tls_server_config:\n  cert_file: certs/server.crt\n  key_file: server.key\nwrite_bearer_token_files:\n  - missing.token\n",
        )
        .expect("write");
        let err = load_web_config(&path).expect_err("files are missing");
        let origin = path.display().to_string();
        let d = dir.path().display();
        assert_eq!(
            err.to_string(),
            format!(
                "{origin}:2:14: cert_file: cannot read {d}/certs/server.crt: no such file\n\
                 {origin}:3:13: key_file: cannot read {d}/server.key: no such file\n\
                 {origin}:5:5: write_bearer_token_files: cannot read {d}/missing.token: no such file"
            )
        );
        let missing = load_web_config(&dir.path().join("nope.yml")).expect_err("no file");
        assert!(
            missing
                .to_string()
                .ends_with("nope.yml:1:1: cannot read the web config: no such file"),
            "{missing}"
        );
    }

    #[test]
    fn secrets_stay_out_of_debug() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir(dir.path().join("secrets")).expect("mkdir");
        std::fs::write(
            dir.path().join("secrets/writer.token"),
            "s3cr3t-writer-token",
        )
        .expect("write");
        let path = dir.path().join("web.yml");
        std::fs::write(
            &path,
            format!(
                "basic_auth_users:\n  alice: {}\n  bob: '{}'\nwrite_bearer_token_files: [secrets/writer.token]\n",
                hash("alice-pw"),
                hash("bob-pw")
            ),
        )
        .expect("write");
        let c = load_web_config(&path).expect("valid web config");
        let text = format!("{c:?}");
        for secret in ["s3cr3t-writer-token", "alice-pw", "bob-pw", "$2"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert!(
            text.contains("alice") && text.contains("writer.token"),
            "{text}"
        );
    }

    /// A handle on `dir/web.yml` that checks the files on every call (`interval` zero) or
    /// practically never.
    fn handle_on(dir: &Path, text: &str, interval: Duration) -> WebConfigHandle {
        std::fs::write(dir.join("web.yml"), text).expect("write");
        WebConfigHandle::load(dir.join("web.yml"))
            .expect("valid web config")
            .with_check_interval(interval)
    }

    fn users(text: &[(&str, &str)]) -> String {
        let mut out = String::from("basic_auth_users:\n");
        for (user, password) in text {
            out.push_str(&format!("  {user}: {}\n", hash(password)));
        }
        out
    }

    async fn get_metrics(h: &WebConfigHandle, user: &str, password: &str) -> Result<(), AuthError> {
        h.current()
            .await
            .authorize_async(&Method::GET, "/metrics", &basic(user, password))
            .await
    }

    #[tokio::test]
    async fn the_handle_follows_the_files_and_keeps_the_running_config_on_errors() {
        let dir = tempfile::tempdir().expect("temp dir");
        let d = dir.path();
        let h = handle_on(d, &users(&[("alice", "a-pw")]), Duration::ZERO);
        assert_eq!(get_metrics(&h, "alice", "a-pw").await, Ok(()));
        assert!(get_metrics(&h, "bob", "b-pw").await.is_err());

        // A user added, a password changed.
        std::fs::write(
            d.join("web.yml"),
            users(&[("alice", "new-pw"), ("bob", "b-pw")]),
        )
        .expect("write");
        assert_eq!(get_metrics(&h, "bob", "b-pw").await, Ok(()));
        assert_eq!(get_metrics(&h, "alice", "new-pw").await, Ok(()));
        assert_eq!(
            reason(get_metrics(&h, "alice", "a-pw").await),
            Some(AuthFailure::BadCredentials)
        );

        // A broken file: the running config stays, and is not read again until it changes.
        let running = h.get();
        std::fs::write(
            d.join("web.yml"),
            "basic_auth_users:\n  alice: not-a-hash\n",
        )
        .expect("write");
        assert!(Arc::ptr_eq(&h.current().await, &running));
        assert!(
            !h.seen.lock().expect("lock").changed(),
            "the bad file was read"
        );
        assert_eq!(get_metrics(&h, "bob", "b-pw").await, Ok(()));
        let err = h.reload().await.expect_err("still broken");
        assert_eq!(
            err.to_string(),
            format!(
                "{}:2:10: basic_auth_users: the password hash of user \"alice\" is not a valid bcrypt hash ($2y$, $2b$ or $2a$, cost 4 to 31, 60 characters)",
                d.join("web.yml").display()
            )
        );
        assert!(Arc::ptr_eq(&h.get(), &running));

        // A file it names that does not exist yet: refused, then taken when it appears.
        std::fs::write(
            d.join("web.yml"),
            format!(
                "{}write_bearer_token_files: [writer.token]\n",
                users(&[("bob", "b-pw")])
            ),
        )
        .expect("write");
        assert!(Arc::ptr_eq(&h.current().await, &running));
        std::fs::write(d.join("writer.token"), "token-1\n").expect("write");
        let samples = |h: Arc<WebConfig>, token: &str| {
            h.authorize(&Method::POST, "/api/v1/samples", &bearer(token))
        };
        assert_eq!(samples(h.current().await, "token-1"), Ok(()));
        // A rotated token file.
        std::fs::write(d.join("writer.token"), "token-2\n").expect("write");
        assert_eq!(samples(h.current().await, "token-2"), Ok(()));
        assert_eq!(
            reason(samples(h.current().await, "token-1")),
            Some(AuthFailure::BadToken)
        );

        // Truncated to nothing (a file caught half written reads so): authentication stays.
        std::fs::write(d.join("web.yml"), "").expect("write");
        assert!(h.current().await.requires_auth());
        let err = h.reload().await.expect_err("refused");
        assert_eq!(
            err.to_string(),
            format!(
                "{}:1:1: basic_auth_users and write_bearer_token_files are gone: turning authentication off needs a restart",
                d.join("web.yml").display()
            )
        );
        assert_eq!(get_metrics(&h, "bob", "b-pw").await, Ok(()));
    }

    #[tokio::test]
    async fn checks_are_rate_limited_and_reload_reads_at_once() {
        let dir = tempfile::tempdir().expect("temp dir");
        let d = dir.path();
        let h = handle_on(d, &users(&[("alice", "a-pw")]), Duration::from_secs(3600));
        std::fs::write(d.join("web.yml"), users(&[("bob", "b-pw")])).expect("write");
        // Not checked again within the interval.
        assert_eq!(get_metrics(&h, "alice", "a-pw").await, Ok(()));
        assert!(get_metrics(&h, "bob", "b-pw").await.is_err());
        // SIGHUP and /-/reload do not wait for it.
        h.reload().await.expect("valid");
        assert_eq!(get_metrics(&h, "bob", "b-pw").await, Ok(()));
        assert!(get_metrics(&h, "alice", "a-pw").await.is_err());
    }

    #[test]
    fn one_caller_checks_per_interval() {
        let dir = tempfile::tempdir().expect("temp dir");
        let h = handle_on(dir.path(), "", Duration::from_secs(3600));
        assert!(!h.claim_check(), "not due right after loading");
        h.next_check_ms.store(0, Ordering::Relaxed);
        assert!(h.claim_check());
        assert!(!h.claim_check(), "the next check is an interval away");
    }
}
