//! `--web.config.file`: who gets in. TLS (rustls), basic auth (bcrypt) and bearer tokens for the
//! write routes, configured in the Prometheus exporter-toolkit format.
//!
//! ```yaml
//! tls_server_config:                 # absent: plain HTTP
//!   cert_file: server.crt            # or `cert:` inline PEM; files are relative to this file
//!   key_file: server.key             # or `key:` inline PEM
//!   client_auth_type: RequireAndVerifyClientCert   # NoClientCert (default),
//!                                    # VerifyClientCertIfGiven, RequireAndVerifyClientCert
//!   client_ca_file: ca.crt           # or `client_ca:`; needed by the two Verify… types
//!   min_version: TLS12               # TLS12 (default) or TLS13
//!   max_version: TLS13               # TLS12 or TLS13 (default)
//!   prefer_server_cipher_suites: true
//! http_server_config:
//!   headers: {X-Content-Type-Options: nosniff}   # added to every response
//! basic_auth_users:                  # empty or absent: no basic auth
//!   alice: $2y$10$...                # bcrypt hashes (htpasswd -nBC 10 "" | tr -d ':\n')
//! write_bearer_token_files:          # driftgauge's extension, see below
//!   - secrets/writer.token
//! ```
//!
//! The file is parsed strictly: an unknown key, a wrong type or an option of exporter-toolkit
//! that driftgauge does not implement (`rate_limit`, `cipher_suites`, `curve_preferences`,
//! `client_allowed_sans`, `http2: true`, the client auth types that skip verification, TLS
//! 1.0/1.1) is an error at its `file:line:col`, never silently ignored. Every problem of the
//! file is reported at once.
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
//!
//! Who gets in ([`WebConfig::authorize`]):
//! - with `basic_auth_users`, every route needs a valid `Authorization: Basic` user and
//!   password;
//! - with `write_bearer_token_files`, the write routes (`POST /api/v1/samples`,
//!   `POST /api/v1/write`, `POST|PUT /-/reload`) also take `Authorization: Bearer <token>`
//!   with any of those tokens (one token a file, surrounding whitespace trimmed). Without
//!   `basic_auth_users` the write routes then need a token and every other route is open;
//! - with neither, every route is open (TLS alone).
//!
//! Passwords are checked with bcrypt, which is slow on purpose: an unknown user is checked
//! against a dummy hash of the same cost, so timing does not tell which user names exist, one
//! bcrypt runs at a time (as in exporter-toolkit), and successful checks are remembered in a
//! small bounded set keyed by a SHA-256 of user, hash and password, so a scrape does not pay
//! bcrypt every time. Bearer tokens are kept only as SHA-256 digests and compared without
//! early exit. No secret (password, hash, token, private key) appears in an error, a log line
//! or `Debug` output.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use hyper::header::{HeaderName, HeaderValue, AUTHORIZATION};
use hyper::{HeaderMap, Method};
use marked_yaml::types::{MarkedMappingNode, MarkedScalarNode};
use marked_yaml::{Marker, Node};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsAcceptor;

use crate::config::diag::io_reason;
use crate::config::Diagnostic;

/// The realm of the `WWW-Authenticate` challenges.
pub const REALM: &str = "driftgauge";

/// How long a client gets to finish the TLS handshake after connecting (well inside the
/// service's 10 s shutdown grace, so a handshake in progress never outlasts a shutdown).
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// How many successful (user, password) checks are remembered.
const CACHE_CAPACITY: usize = 256;

/// The challenge for basic auth, one `WWW-Authenticate` header.
const BASIC_CHALLENGE: &str = "Basic realm=\"driftgauge\"";
/// The challenge for bearer tokens, one `WWW-Authenticate` header.
const BEARER_CHALLENGE: &str = "Bearer realm=\"driftgauge\"";

/// The headers `http_server_config.headers` may set, with their allowed values (empty: any),
/// as in exporter-toolkit.
const EXTRA_HEADERS: &[(&str, &[&str])] = &[
    ("Strict-Transport-Security", &[]),
    ("X-Content-Type-Options", &["nosniff"]),
    ("X-Frame-Options", &["deny", "sameorigin"]),
    ("X-XSS-Protection", &[]),
    ("Content-Security-Policy", &[]),
];

/// Is this request one of the write routes, where bearer tokens are accepted?
pub fn is_write_route(method: &Method, path: &str) -> bool {
    match path {
        "/api/v1/samples" | "/api/v1/write" => method == Method::POST,
        "/-/reload" => method == Method::POST || method == Method::PUT,
        _ => false,
    }
}

/// Every problem of a web config file, one `file:line:col: message` a line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", one_per_line(.0))]
pub struct WebConfigError(pub Vec<Diagnostic>);

fn one_per_line(diags: &[Diagnostic]) -> String {
    let lines: Vec<String> = diags.iter().map(Diagnostic::to_string).collect();
    lines.join("\n")
}

/// `tls_server_config.client_auth_type`, the values driftgauge implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// No client certificate is asked for.
    NoClientCert,
    /// A client certificate is optional; one that is given must verify against the CA.
    VerifyClientCertIfGiven,
    /// A client certificate is required and must verify against the CA.
    RequireAndVerifyClientCert,
}

impl ClientAuth {
    pub fn as_str(self) -> &'static str {
        match self {
            ClientAuth::NoClientCert => "NoClientCert",
            ClientAuth::VerifyClientCertIfGiven => "VerifyClientCertIfGiven",
            ClientAuth::RequireAndVerifyClientCert => "RequireAndVerifyClientCert",
        }
    }
}

/// A TLS protocol version rustls offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    Tls12,
    Tls13,
}

impl TlsVersion {
    pub fn as_str(self) -> &'static str {
        match self {
            TlsVersion::Tls12 => "TLS12",
            TlsVersion::Tls13 => "TLS13",
        }
    }
}

/// The TLS side of a loaded web config.
struct Tls {
    acceptor: TlsAcceptor,
    /// Where the certificate came from (a path, or "inline"), for logs.
    cert_source: String,
    client_auth: ClientAuth,
    min_version: TlsVersion,
    max_version: TlsVersion,
}

/// A write-route bearer token: only its digest is kept.
struct Token {
    digest: [u8; 32],
    file: PathBuf,
}

/// A loaded, validated `--web.config.file`. Build it with [`load_web_config`].
pub struct WebConfig {
    file: String,
    tls: Option<Tls>,
    /// User name → bcrypt hash.
    users: BTreeMap<String, String>,
    /// A hash of the users' highest cost that no password matches, checked for unknown users.
    dummy_hash: String,
    tokens: Vec<Token>,
    headers: Vec<(HeaderName, HeaderValue)>,
    /// Cache keys of successful basic-auth checks.
    cache: Mutex<HashSet<[u8; 32]>>,
    /// One bcrypt at a time.
    bcrypt_lock: Mutex<()>,
    bcrypt_runs: AtomicU64,
}

impl fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct TlsSummary<'a>(&'a Tls);
        impl fmt::Debug for TlsSummary<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct("Tls")
                    .field("cert", &self.0.cert_source)
                    .field("client_auth_type", &self.0.client_auth.as_str())
                    .field("min_version", &self.0.min_version.as_str())
                    .field("max_version", &self.0.max_version.as_str())
                    .finish_non_exhaustive()
            }
        }
        let token_files: Vec<&Path> = self.tokens.iter().map(|t| t.file.as_path()).collect();
        let headers: Vec<&str> = self.headers.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("WebConfig")
            .field("file", &self.file)
            .field("tls", &self.tls.as_ref().map(TlsSummary))
            .field("basic_auth_users", &self.users.keys().collect::<Vec<_>>())
            .field("write_bearer_token_files", &token_files)
            .field("headers", &headers)
            .finish_non_exhaustive()
    }
}

/// Why a request was refused. Every kind answers `401 Unauthorized` with one
/// `WWW-Authenticate` header per [`AuthError::challenges`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthFailure {
    #[error("authentication required")]
    Missing,
    #[error("malformed Authorization header")]
    Malformed,
    #[error("this authentication scheme is not accepted here")]
    WrongScheme,
    #[error("invalid username or password")]
    BadCredentials,
    #[error("invalid bearer token")]
    BadToken,
}

/// A refused request: the reason, and the challenges to answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct AuthError {
    reason: AuthFailure,
    challenges: &'static [&'static str],
}

impl AuthError {
    pub fn reason(&self) -> AuthFailure {
        self.reason
    }

    /// The values of the `WWW-Authenticate` headers of the 401 answer, one header each:
    /// `Basic realm="driftgauge"` when basic auth is configured, `Bearer realm="driftgauge"`
    /// on a write route when bearer tokens are configured.
    pub fn challenges(&self) -> &'static [&'static str] {
        self.challenges
    }
}

/// A basic-auth check that still needs bcrypt. Holds the password: never printed.
struct Attempt {
    /// `None`: no such user (the dummy hash is checked).
    user: Option<String>,
    password: Vec<u8>,
    cache_key: [u8; 32],
    challenges: &'static [&'static str],
}

impl fmt::Debug for Attempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Attempt")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// What [`WebConfig::check`] decided without bcrypt.
#[derive(Debug)]
enum Step {
    Done(Result<(), AuthError>),
    Verify(Attempt),
}

impl WebConfig {
    /// The acceptor to wrap accepted connections with; `None` without `tls_server_config`.
    pub fn tls_acceptor(&self) -> Option<TlsAcceptor> {
        self.tls.as_ref().map(|t| t.acceptor.clone())
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
        !self.users.is_empty() || !self.tokens.is_empty()
    }

    /// The `http_server_config.headers` to set on every response (also on refusals).
    pub fn response_headers(&self) -> &[(HeaderName, HeaderValue)] {
        &self.headers
    }

    /// How many bcrypt checks ran (cache misses, unknown users included).
    pub fn bcrypt_verifications(&self) -> u64 {
        self.bcrypt_runs.load(Ordering::Relaxed)
    }

    /// May this request in? Runs bcrypt (milliseconds at cost 10, and one at a time) when
    /// basic-auth credentials are not in the cache: from async code prefer
    /// [`WebConfig::authorize_async`], which does that on the blocking pool.
    pub fn authorize(
        &self,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
    ) -> Result<(), AuthError> {
        match self.check(method, path, headers) {
            Step::Done(result) => result,
            Step::Verify(attempt) => self.verify(attempt),
        }
    }

    /// [`WebConfig::authorize`], with bcrypt (when needed) on tokio's blocking pool so that a
    /// password check never stalls a runtime worker.
    pub async fn authorize_async(
        self: &Arc<Self>,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
    ) -> Result<(), AuthError> {
        match self.check(method, path, headers) {
            Step::Done(result) => result,
            Step::Verify(attempt) => {
                let refused = AuthError {
                    reason: AuthFailure::BadCredentials,
                    challenges: attempt.challenges,
                };
                let this = Arc::clone(self);
                tokio::task::spawn_blocking(move || this.verify(attempt))
                    .await
                    .unwrap_or(Err(refused))
            }
        }
    }

    /// Everything but bcrypt: which credentials this route takes, the header's shape, bearer
    /// tokens, the cache.
    fn check(&self, method: &Method, path: &str, headers: &HeaderMap) -> Step {
        let basic = !self.users.is_empty();
        let bearer = !self.tokens.is_empty() && is_write_route(method, path);
        let challenges: &'static [&'static str] = match (basic, bearer) {
            (false, false) => return Step::Done(Ok(())),
            (true, false) => &[BASIC_CHALLENGE],
            (false, true) => &[BEARER_CHALLENGE],
            (true, true) => &[BASIC_CHALLENGE, BEARER_CHALLENGE],
        };
        let refuse = |reason| Step::Done(Err(AuthError { reason, challenges }));
        let mut values = headers.get_all(AUTHORIZATION).iter();
        let Some(value) = values.next() else {
            return refuse(AuthFailure::Missing);
        };
        if values.next().is_some() {
            return refuse(AuthFailure::Malformed);
        }
        let Ok(value) = value.to_str() else {
            return refuse(AuthFailure::Malformed);
        };
        let Some((scheme, credentials)) = value.trim().split_once(' ') else {
            return refuse(AuthFailure::Malformed);
        };
        let credentials = credentials.trim_start_matches(' ');
        if scheme.eq_ignore_ascii_case("bearer") {
            if !bearer {
                return refuse(AuthFailure::WrongScheme);
            }
            return if self.token_matches(credentials) {
                Step::Done(Ok(()))
            } else {
                refuse(AuthFailure::BadToken)
            };
        }
        if !scheme.eq_ignore_ascii_case("basic") {
            return refuse(AuthFailure::WrongScheme);
        }
        if !basic {
            return refuse(AuthFailure::WrongScheme);
        }
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(credentials) else {
            return refuse(AuthFailure::Malformed);
        };
        let Some(colon) = decoded.iter().position(|&b| b == b':') else {
            return refuse(AuthFailure::Malformed);
        };
        let (user, password) = (&decoded[..colon], &decoded[colon + 1..]);
        let known = std::str::from_utf8(user)
            .ok()
            .and_then(|u| self.users.get_key_value(u));
        let hash = known.map_or(self.dummy_hash.as_str(), |(_, h)| h.as_str());
        let cache_key = cache_key(user, hash, password);
        if known.is_some() && self.cached(&cache_key) {
            return Step::Done(Ok(()));
        }
        Step::Verify(Attempt {
            user: known.map(|(u, _)| u.clone()),
            password: password.to_vec(),
            cache_key,
            challenges,
        })
    }

    /// The bcrypt part: always runs, for unknown users against the dummy hash.
    fn verify(&self, attempt: Attempt) -> Result<(), AuthError> {
        let hash = attempt
            .user
            .as_deref()
            .and_then(|u| self.users.get(u))
            .map_or(self.dummy_hash.as_str(), String::as_str);
        let matched = {
            let _one_at_a_time = self.bcrypt_lock.lock().unwrap_or_else(|e| e.into_inner());
            self.bcrypt_runs.fetch_add(1, Ordering::Relaxed);
            // Passwords over bcrypt's 72 bytes are refused rather than truncated, as Go's
            // bcrypt (and so exporter-toolkit) does; bcrypt still runs, so every refusal
            // costs the same.
            let fits = attempt.password.len() <= 72;
            bcrypt::verify(&attempt.password, hash).unwrap_or(false) && fits
        };
        if matched && attempt.user.is_some() {
            let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            if cache.len() >= CACHE_CAPACITY {
                if let Some(evict) = cache.iter().next().copied() {
                    cache.remove(&evict);
                }
            }
            cache.insert(attempt.cache_key);
            return Ok(());
        }
        Err(AuthError {
            reason: AuthFailure::BadCredentials,
            challenges: attempt.challenges,
        })
    }

    fn cached(&self, key: &[u8; 32]) -> bool {
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(key)
    }

    /// Compares the token's digest with every configured digest, without stopping early.
    fn token_matches(&self, token: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut found = false;
        for t in &self.tokens {
            let diff = t
                .digest
                .iter()
                .zip(digest.iter())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b));
            found |= std::hint::black_box(diff) == 0;
        }
        found
    }
}

/// SHA-256 of the user (length-prefixed), the hash it is checked against and the password.
fn cache_key(user: &[u8], hash: &str, password: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update((user.len() as u64).to_le_bytes());
    h.update(user);
    h.update((hash.len() as u64).to_le_bytes());
    h.update(hash.as_bytes());
    h.update(password);
    h.finalize().into()
}

/// Completes the TLS handshake of an accepted connection within `timeout` (use
/// [`TLS_HANDSHAKE_TIMEOUT`]), so a client that connects and stays silent cannot hold a task.
pub async fn accept_tls<IO>(
    acceptor: &TlsAcceptor,
    stream: IO,
    timeout: Duration,
) -> std::io::Result<tokio_rustls::server::TlsStream<IO>>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
        Ok(result) => result,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("TLS handshake did not finish within {timeout:?}"),
        )),
    }
}

/// How often, at most, requests and new connections look at the web config's files.
pub const WEB_CONFIG_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// How recently before its stamp a file may have changed for the stamp alone not to be
/// trusted: file times are coarse (a few milliseconds on Linux, up to 2 s elsewhere), so a
/// same-length rewrite in the same tick leaves the stamp as it was. Such files are compared
/// by content until they are older than this (as git does with "racily clean" files).
const RACY: Duration = Duration::from_secs(2);

/// What a file looked like on disk, following symlinks (so a swapped Kubernetes secret mount
/// counts). The change time and inode catch a rewrite that keeps the length and restores the
/// modification time (`cp -p`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
    /// The inode change time (Unix).
    changed: Option<SystemTime>,
    /// (device, inode) on Unix.
    inode: (u64, u64),
}

/// `None` for a file that cannot be stat'ed (missing, ...).
fn stamp(path: &Path) -> Option<Stamp> {
    let meta = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let (changed, inode) = {
        use std::os::unix::fs::MetadataExt;
        let changed = u64::try_from(meta.ctime())
            .ok()
            .zip(u32::try_from(meta.ctime_nsec()).ok())
            .map(|(s, ns)| SystemTime::UNIX_EPOCH + Duration::new(s, ns));
        (changed, (meta.dev(), meta.ino()))
    };
    #[cfg(not(unix))]
    let (changed, inode) = (None, (0, 0));
    Some(Stamp {
        len: meta.len(),
        modified: meta.modified().ok(),
        changed,
        inode,
    })
}

/// One file the web config was built from, as it was just before it was read.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    path: PathBuf,
    stamp: Option<Stamp>,
    /// When the stamp was taken.
    taken: SystemTime,
    /// SHA-256 of the bytes read; `None` when reading failed.
    digest: Option<[u8; 32]>,
}

impl Seen {
    /// Stamps `path`, then reads it.
    fn read(path: &Path) -> (Seen, std::io::Result<Vec<u8>>) {
        let taken = SystemTime::now();
        let stamp = stamp(path);
        let bytes = std::fs::read(path);
        let seen = Seen {
            path: path.to_path_buf(),
            stamp,
            taken,
            digest: bytes.as_ref().ok().map(|b| Sha256::digest(b).into()),
        };
        (seen, bytes)
    }

    /// Did the file change so shortly before its stamp that an equal stamp proves nothing?
    fn racy(&self) -> bool {
        let Some(stamp) = self.stamp else {
            return false;
        };
        [stamp.modified, stamp.changed]
            .into_iter()
            .flatten()
            .any(|t| t + RACY >= self.taken)
    }
}

/// The web config file and every file it names (certificate, key, client CA, token files).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Fingerprint(Vec<Seen>);

impl Fingerprint {
    /// Has any of the files changed (or appeared, or gone) since it was read? A `stat` a
    /// file; files changed just before they were read are also compared by content, and
    /// their stamp is renewed when the content proves the same.
    fn changed(&mut self) -> bool {
        for seen in &mut self.0 {
            if stamp(&seen.path) != seen.stamp {
                return true;
            }
            if seen.racy() {
                let (again, _) = Seen::read(&seen.path);
                if again.stamp != seen.stamp || again.digest != seen.digest {
                    return true;
                }
                seen.taken = again.taken;
            }
        }
        false
    }
}

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
    /// Loads `path` (blocking: it reads files and computes a bcrypt hash); an error here is
    /// the start-up error, every `file:line:col` of it.
    pub fn load(path: PathBuf) -> Result<WebConfigHandle, WebConfigError> {
        let (config, fingerprint) = load_watched(&path);
        let config = config?;
        Ok(WebConfigHandle {
            path,
            running: RwLock::new(Arc::new(config)),
            seen: Mutex::new(fingerprint),
            check_interval: WEB_CONFIG_CHECK_INTERVAL,
            created: Instant::now(),
            next_check_ms: AtomicU64::new(millis(WEB_CONFIG_CHECK_INTERVAL)),
            reload_lock: tokio::sync::Mutex::new(()),
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
        let loaded = tokio::task::spawn_blocking(move || load_watched(&path)).await;
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
    load_watched(path).0
}

/// [`load_web_config`], and the fingerprint of every file it read (or tried to read), each
/// stamped just before it was read: a change made while loading shows at the next check.
fn load_watched(path: &Path) -> (Result<WebConfig, WebConfigError>, Fingerprint) {
    let origin = path.display().to_string();
    let (seen, bytes) = Seen::read(path);
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
    let (config, files) = parse_watched(&origin, &text, base);
    fingerprint.0.extend(files);
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
    parse_watched(origin, text, base).0
}

/// [`parse_web_config`], and the files it read with their stamps.
fn parse_watched(
    origin: &str,
    text: &str,
    base: &Path,
) -> (Result<WebConfig, WebConfigError>, Vec<Seen>) {
    let root = match parse_yaml(origin, text) {
        Ok(root) => root,
        Err(d) => return (Err(WebConfigError(vec![d])), Vec::new()),
    };
    let mut w = Walk {
        origin,
        diags: Vec::new(),
        read: Vec::new(),
    };
    let config = walk_web_config(&mut w, &root, base);
    let result = match config {
        Some(config) if w.diags.is_empty() => Ok(config),
        _ => Err(WebConfigError(std::mem::take(&mut w.diags))),
    };
    (result, w.read)
}

/// The whole file; `None` (or diagnostics in `w`) when something is wrong.
fn walk_web_config(w: &mut Walk, root: &Node, base: &Path) -> Option<WebConfig> {
    let Some(top) = root.as_mapping() else {
        w.at(root, "expected a mapping at the top level");
        return None;
    };
    w.keys(
        top,
        &[
            "tls_server_config",
            "http_server_config",
            "basic_auth_users",
            "write_bearer_token_files",
        ],
        &[("rate_limit", "rate limiting is not supported by driftgauge")],
        "the web config",
    );
    let tls = get(top, "tls_server_config").and_then(|n| tls_settings(w, n, base));
    let headers = get(top, "http_server_config")
        .and_then(|n| http_server_config(w, n))
        .unwrap_or_default();
    let users = get(top, "basic_auth_users")
        .and_then(|n| basic_auth_users(w, n))
        .unwrap_or_default();
    let tokens = get(top, "write_bearer_token_files")
        .and_then(|n| token_files(w, n, base))
        .unwrap_or_default();
    let dummy_hash = dummy_hash(w, top, &users);
    if !w.diags.is_empty() {
        return None;
    }
    Some(WebConfig {
        file: w.origin.to_string(),
        tls,
        users,
        dummy_hash,
        tokens,
        headers,
        cache: Mutex::new(HashSet::new()),
        bcrypt_lock: Mutex::new(()),
        bcrypt_runs: AtomicU64::new(0),
    })
}

/// A hash no password matches, at the highest cost among the users (so an unknown user takes
/// as long as a known one). Empty without users: basic auth is then never checked.
fn dummy_hash(w: &mut Walk, top: &MarkedMappingNode, users: &BTreeMap<String, String>) -> String {
    let Some(cost) = users
        .values()
        .filter_map(|h| h.parse::<bcrypt::HashParts>().ok())
        .map(|p| p.get_cost())
        .max()
    else {
        return String::new();
    };
    match bcrypt::hash_with_salt(b"driftgauge: no such user", cost, [0x5a; 16]) {
        Ok(parts) => parts.format_for_version(bcrypt::Version::TwoB),
        Err(e) => {
            let at = key_of(top, "basic_auth_users").and_then(|k| k.span().start().copied());
            w.at_marker(at, format!("basic_auth_users: {e}"));
            String::new()
        }
    }
}

const TLS_KEYS: &[&str] = &[
    "cert_file",
    "key_file",
    "cert",
    "key",
    "client_auth_type",
    "client_ca_file",
    "client_ca",
    "min_version",
    "max_version",
    "prefer_server_cipher_suites",
];

const TLS_UNSUPPORTED: &[(&str, &str)] = &[
    (
        "cipher_suites",
        "driftgauge does not configure cipher suites: rustls offers only modern ones",
    ),
    (
        "curve_preferences",
        "driftgauge does not configure curves: rustls offers only modern ones",
    ),
    (
        "client_allowed_sans",
        "matching client certificate SANs is not supported by driftgauge",
    ),
];

/// `tls_server_config`, all the way to a [`TlsAcceptor`]. `None` after reporting a problem.
fn tls_settings(w: &mut Walk, node: &Node, base: &Path) -> Option<Tls> {
    let map = w.mapping("tls_server_config", node)?;
    let before = w.diags.len();
    w.keys(map, TLS_KEYS, TLS_UNSUPPORTED, "tls_server_config");
    let cert = pem_source(w, map, "cert_file", "cert", base);
    let key = pem_source(w, map, "key_file", "key", base);
    let client_ca = match (get(map, "client_ca_file"), get(map, "client_ca")) {
        (None, None) => None,
        _ => pem_source(w, map, "client_ca_file", "client_ca", base),
    };
    let client_auth = match get(map, "client_auth_type") {
        None => Some(ClientAuth::NoClientCert),
        Some(n) => client_auth_type(w, n),
    };
    let min_version = match get(map, "min_version") {
        None => Some(TlsVersion::Tls12),
        Some(n) => tls_version(w, "min_version", n),
    };
    let max_version = match get(map, "max_version") {
        None => Some(TlsVersion::Tls13),
        Some(n) => tls_version(w, "max_version", n),
    };
    let prefer_server = match get(map, "prefer_server_cipher_suites") {
        None => Some(true),
        Some(n) => w.boolean("prefer_server_cipher_suites", n),
    };
    if let (Some(min), Some(max), Some(n)) = (min_version, max_version, get(map, "min_version")) {
        if min > max {
            w.at(
                n,
                format!(
                    "min_version {} is above max_version {}",
                    min.as_str(),
                    max.as_str()
                ),
            );
        }
    }
    if let Some(auth) = client_auth {
        let at = key_of(map, "client_auth_type")
            .or_else(|| key_of(map, "client_ca_file"))
            .or_else(|| key_of(map, "client_ca"))
            .and_then(|k| k.span().start().copied())
            .or_else(|| mapping_marker(map));
        match (auth, get(map, "client_ca_file").or(get(map, "client_ca"))) {
            (ClientAuth::NoClientCert, Some(_)) => w.at_marker(
                at,
                "client_ca_file is set but client_auth_type is NoClientCert: set \
                 client_auth_type: RequireAndVerifyClientCert (or VerifyClientCertIfGiven)",
            ),
            (ClientAuth::NoClientCert, None) | (_, Some(_)) => {}
            (other, None) => w.at_marker(
                at,
                format!(
                    "client_auth_type {} needs client_ca_file (or client_ca)",
                    other.as_str()
                ),
            ),
        }
    }
    if w.diags.len() != before {
        return None;
    }
    let (cert, key) = (cert?, key?);
    let (client_auth, min_version, max_version) = (client_auth?, min_version?, max_version?);
    let at = mapping_marker(map);

    let certs: Vec<CertificateDer<'static>> =
        match CertificateDer::pem_slice_iter(&cert.bytes).collect::<Result<Vec<_>, _>>() {
            Ok(c) if !c.is_empty() => c,
            Ok(_) => {
                w.at(
                    cert.node,
                    format!("{}: no PEM CERTIFICATE found", cert.label),
                );
                return None;
            }
            Err(e) => {
                w.at(cert.node, format!("{}: not valid PEM: {e}", cert.label));
                return None;
            }
        };
    // The key's own parse error is not shown: it could quote key material.
    let private_key = match PrivateKeyDer::from_pem_slice(&key.bytes) {
        Ok(k) => k,
        Err(rustls::pki_types::pem::Error::NoItemsFound) => {
            w.at(
                key.node,
                format!(
                    "{}: no PEM private key found (PKCS#8, PKCS#1 or SEC1)",
                    key.label
                ),
            );
            return None;
        }
        Err(_) => {
            w.at(
                key.node,
                format!("{}: not a valid PEM private key", key.label),
            );
            return None;
        }
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions: Vec<&'static rustls::SupportedProtocolVersion> = [
        (TlsVersion::Tls12, &rustls::version::TLS12),
        (TlsVersion::Tls13, &rustls::version::TLS13),
    ]
    .into_iter()
    .filter(|(v, _)| (min_version..=max_version).contains(v))
    .map(|(_, p)| p)
    .collect();
    let builder = match ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&versions)
    {
        Ok(b) => b,
        Err(e) => {
            w.at_marker(at, format!("tls_server_config: {e}"));
            return None;
        }
    };
    let builder = match (&client_ca, client_auth) {
        (
            Some(ca),
            ClientAuth::VerifyClientCertIfGiven | ClientAuth::RequireAndVerifyClientCert,
        ) => {
            let mut roots = RootCertStore::empty();
            let ca_certs =
                match CertificateDer::pem_slice_iter(&ca.bytes).collect::<Result<Vec<_>, _>>() {
                    Ok(c) if !c.is_empty() => c,
                    Ok(_) => {
                        w.at(ca.node, format!("{}: no PEM CERTIFICATE found", ca.label));
                        return None;
                    }
                    Err(e) => {
                        w.at(ca.node, format!("{}: not valid PEM: {e}", ca.label));
                        return None;
                    }
                };
            for (i, der) in ca_certs.into_iter().enumerate() {
                if let Err(e) = roots.add(der) {
                    w.at(
                        ca.node,
                        format!(
                            "{}: certificate {} is not usable as a CA: {e}",
                            ca.label,
                            i + 1
                        ),
                    );
                    return None;
                }
            }
            let mut verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider));
            if client_auth == ClientAuth::VerifyClientCertIfGiven {
                verifier = verifier.allow_unauthenticated();
            }
            match verifier.build() {
                Ok(v) => builder.with_client_cert_verifier(v),
                Err(e) => {
                    w.at(ca.node, format!("{}: {e}", ca.label));
                    return None;
                }
            }
        }
        _ => builder.with_no_client_auth(),
    };
    let mut config = match builder.with_single_cert(certs, private_key) {
        Ok(c) => c,
        Err(rustls::Error::InconsistentKeys(_)) => {
            w.at(
                key.node,
                format!(
                    "{}: the private key does not match the certificate of {}",
                    key.label, cert.label
                ),
            );
            return None;
        }
        Err(e) => {
            w.at(cert.node, format!("{} with {}: {e}", cert.label, key.label));
            return None;
        }
    };
    // Only HTTP/1.1 is served.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.ignore_client_order = prefer_server.unwrap_or(true);
    Some(Tls {
        acceptor: TlsAcceptor::from(Arc::new(config)),
        cert_source: cert.label,
        client_auth,
        min_version,
        max_version,
    })
}

/// PEM bytes from `<file_key>` (a path relative to `base`) or `<inline_key>` (the PEM itself).
struct Pem<'n> {
    bytes: Vec<u8>,
    /// How messages name it: `cert_file /etc/x.crt` or `cert (inline)`.
    label: String,
    /// Where messages point.
    node: &'n Node,
}

fn pem_source<'n>(
    w: &mut Walk,
    map: &'n MarkedMappingNode,
    file_key: &str,
    inline_key: &str,
    base: &Path,
) -> Option<Pem<'n>> {
    match (get(map, file_key), get(map, inline_key)) {
        (Some(_), Some(inline)) => {
            w.at(
                inline,
                format!("{inline_key} and {file_key} are mutually exclusive"),
            );
            None
        }
        (None, None) => {
            w.missing(map, file_key, "tls_server_config");
            None
        }
        (None, Some(inline)) => {
            let text = w.string(inline_key, inline)?;
            Some(Pem {
                bytes: text.into_bytes(),
                label: format!("{inline_key} (inline)"),
                node: inline,
            })
        }
        (Some(file), None) => {
            let name = w.string(file_key, file)?;
            if name.trim().is_empty() {
                w.at(file, format!("{file_key}: must not be empty"));
                return None;
            }
            let path = base.join(&name);
            match w.read_file(&path) {
                Ok(bytes) => Some(Pem {
                    bytes,
                    label: format!("{file_key} {}", path.display()),
                    node: file,
                }),
                Err(e) => {
                    w.at(
                        file,
                        format!(
                            "{file_key}: cannot read {}: {}",
                            path.display(),
                            io_reason(&e)
                        ),
                    );
                    None
                }
            }
        }
    }
}

fn client_auth_type(w: &mut Walk, node: &Node) -> Option<ClientAuth> {
    let value = w.string("client_auth_type", node)?;
    match value.as_str() {
        "NoClientCert" => Some(ClientAuth::NoClientCert),
        "VerifyClientCertIfGiven" => Some(ClientAuth::VerifyClientCertIfGiven),
        "RequireAndVerifyClientCert" => Some(ClientAuth::RequireAndVerifyClientCert),
        "RequestClientCert" | "RequireAnyClientCert" => {
            w.at(
                node,
                format!(
                    "client_auth_type {value} is not supported: it accepts client certificates \
                     without verifying them; use RequireAndVerifyClientCert (or \
                     VerifyClientCertIfGiven) with client_ca_file"
                ),
            );
            None
        }
        _ => {
            w.at(
                node,
                format!(
                    "unknown client_auth_type {value:?}; expected NoClientCert, \
                     VerifyClientCertIfGiven or RequireAndVerifyClientCert"
                ),
            );
            None
        }
    }
}

fn tls_version(w: &mut Walk, key: &str, node: &Node) -> Option<TlsVersion> {
    let value = w.string(key, node)?;
    match value.as_str() {
        "TLS12" => Some(TlsVersion::Tls12),
        "TLS13" => Some(TlsVersion::Tls13),
        "TLS10" | "TLS11" => {
            w.at(
                node,
                format!("{key}: {value} is not supported (rustls speaks TLS12 and TLS13)"),
            );
            None
        }
        _ => {
            w.at(
                node,
                format!("{key}: unknown TLS version {value:?}; expected TLS12 or TLS13"),
            );
            None
        }
    }
}

/// `http_server_config`: `headers` (as exporter-toolkit allows them) and `http2: false`.
fn http_server_config(w: &mut Walk, node: &Node) -> Option<Vec<(HeaderName, HeaderValue)>> {
    let map = w.mapping("http_server_config", node)?;
    w.keys(map, &["headers", "http2"], &[], "http_server_config");
    if let Some(n) = get(map, "http2") {
        if w.boolean("http_server_config.http2", n) == Some(true) {
            w.at(
                n,
                "http_server_config.http2: driftgauge serves HTTP/1.1 only; remove the key or \
                 set it to false",
            );
        }
    }
    let headers = get(map, "headers")?;
    let headers = w.mapping("http_server_config.headers", headers)?;
    let mut out = Vec::new();
    for (k, v) in headers.iter() {
        let Some(&(name, allowed)) = EXTRA_HEADERS
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(k.as_str()))
        else {
            let names: Vec<&str> = EXTRA_HEADERS.iter().map(|(n, _)| *n).collect();
            w.at_key(
                k,
                format!(
                    "http_server_config.headers: header {:?} can not be configured; allowed: {}",
                    k.as_str(),
                    names.join(", ")
                ),
            );
            continue;
        };
        if is_null(v) {
            continue;
        }
        let Some(value) = w.string(&format!("http_server_config.headers.{name}"), v) else {
            continue;
        };
        if value.is_empty() {
            continue;
        }
        if !allowed.is_empty() && !allowed.iter().any(|a| a.eq_ignore_ascii_case(&value)) {
            w.at(
                v,
                format!(
                    "http_server_config.headers.{name}: expected one of {}, got {value:?}",
                    allowed.join(", ")
                ),
            );
            continue;
        }
        match HeaderValue::from_str(&value) {
            Ok(hv) => out.push((HeaderName::from_static(header_static(name)), hv)),
            Err(_) => w.at(
                v,
                format!("http_server_config.headers.{name}: not a valid header value"),
            ),
        }
    }
    Some(out)
}

/// The lower-case spelling `HeaderName::from_static` requires.
fn header_static(name: &str) -> &'static str {
    match name {
        "Strict-Transport-Security" => "strict-transport-security",
        "X-Content-Type-Options" => "x-content-type-options",
        "X-Frame-Options" => "x-frame-options",
        "X-XSS-Protection" => "x-xss-protection",
        _ => "content-security-policy",
    }
}

/// `basic_auth_users`: user → bcrypt hash, every hash checked now. Messages name the user,
/// never the hash.
fn basic_auth_users(w: &mut Walk, node: &Node) -> Option<BTreeMap<String, String>> {
    let map = w.mapping("basic_auth_users", node)?;
    let mut out = BTreeMap::new();
    for (k, v) in map.iter() {
        let user = k.as_str();
        if user.is_empty() {
            w.at_key(k, "basic_auth_users: a user name must not be empty");
            continue;
        }
        if user.contains(':') {
            w.at_key(
                k,
                format!(
                    "basic_auth_users: user name {user:?} contains ':', which basic auth cannot \
                     carry"
                ),
            );
            continue;
        }
        let hash = match v {
            Node::Scalar(s) if !is_null(v) => s.as_str(),
            _ => {
                w.at(
                    v,
                    format!("basic_auth_users: user {user:?} needs a bcrypt hash as its value"),
                );
                continue;
            }
        };
        let valid = hash
            .parse::<bcrypt::HashParts>()
            .is_ok_and(|p| (4..=31).contains(&p.get_cost()));
        if !valid {
            w.at(
                v,
                format!(
                    "basic_auth_users: the password hash of user {user:?} is not a valid bcrypt \
                     hash ($2y$, $2b$ or $2a$, cost 4 to 31, 60 characters)"
                ),
            );
            continue;
        }
        out.insert(user.to_string(), hash.to_string());
    }
    Some(out)
}

/// `write_bearer_token_files`: one token a file, trimmed; only digests are kept.
fn token_files(w: &mut Walk, node: &Node, base: &Path) -> Option<Vec<Token>> {
    let Node::Sequence(seq) = node else {
        w.at(
            node,
            format!(
                "write_bearer_token_files: expected a list of files, got {}",
                describe(node)
            ),
        );
        return None;
    };
    let mut out = Vec::new();
    for item in seq.iter() {
        let Some(name) = (match item {
            Node::Scalar(s) if !is_null(item) && !s.as_str().trim().is_empty() => {
                Some(s.as_str().to_string())
            }
            _ => None,
        }) else {
            w.at(
                item,
                format!(
                    "write_bearer_token_files: expected a file name, got {}",
                    describe(item)
                ),
            );
            continue;
        };
        let path = base.join(&name);
        let text = match w.read_file(&path) {
            Ok(bytes) => bytes,
            Err(e) => {
                w.at(
                    item,
                    format!(
                        "write_bearer_token_files: cannot read {}: {}",
                        path.display(),
                        io_reason(&e)
                    ),
                );
                continue;
            }
        };
        let token = std::str::from_utf8(&text).map(str::trim).unwrap_or("");
        if token.is_empty() {
            w.at(
                item,
                format!(
                    "write_bearer_token_files: {} holds no token (empty or not UTF-8 text)",
                    path.display()
                ),
            );
            continue;
        }
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            w.at(
                item,
                format!(
                    "write_bearer_token_files: the token in {} has spaces or characters an HTTP \
                     header cannot carry",
                    path.display()
                ),
            );
            continue;
        }
        out.push(Token {
            digest: Sha256::digest(token.as_bytes()).into(),
            file: path,
        });
    }
    Some(out)
}

// ---- YAML walking (the same conventions as the rule files' walker) ----

/// Parses the text into a node tree whose top level is a mapping (an empty file is an empty
/// mapping: no TLS, no auth), with the rule files' parser: duplicate keys, anchors, tags and a
/// second document are errors.
fn parse_yaml(origin: &str, text: &str) -> Result<Node, Diagnostic> {
    crate::config::yaml::parse(origin, text)
}

fn is_null(node: &Node) -> bool {
    match node {
        Node::Scalar(s) => {
            s.may_coerce() && matches!(s.as_str(), "" | "~" | "null" | "Null" | "NULL")
        }
        _ => false,
    }
}

/// The value under `key`, `None` when absent or null.
fn get<'n>(map: &'n MarkedMappingNode, key: &str) -> Option<&'n Node> {
    map.get_node(key).filter(|n| !is_null(n))
}

fn key_of<'n>(map: &'n MarkedMappingNode, key: &str) -> Option<&'n MarkedScalarNode> {
    map.keys().find(|k| k.as_str() == key)
}

/// Where a mapping "is": its first key (block mappings' own marks point past it).
fn mapping_marker(map: &MarkedMappingNode) -> Option<Marker> {
    map.keys()
        .next()
        .and_then(|k| k.span().start().copied())
        .or_else(|| map.span().start().copied())
}

/// A short description of a node for "expected X, got Y" messages. Only used where values
/// are not secret.
fn describe(node: &Node) -> String {
    match node {
        _ if is_null(node) => "null".to_string(),
        Node::Scalar(s) => format!("{:?}", s.as_str().chars().take(60).collect::<String>()),
        Node::Sequence(_) => "a list".to_string(),
        Node::Mapping(_) => "a mapping".to_string(),
    }
}

/// Collects the diagnostics of one file, and the files it names with their stamps.
struct Walk<'a> {
    origin: &'a str,
    diags: Vec<Diagnostic>,
    /// Every file read (or tried), stamped just before reading.
    read: Vec<Seen>,
}

impl Walk<'_> {
    /// Stamps `path` and reads it; the stamp joins the fingerprint even when reading fails
    /// (a missing file that appears later is a change).
    fn read_file(&mut self, path: &Path) -> std::io::Result<Vec<u8>> {
        let (seen, bytes) = Seen::read(path);
        self.read.push(seen);
        bytes
    }

    fn at_marker(&mut self, marker: Option<Marker>, message: impl Into<String>) {
        let (line, col) = marker.map_or((1, 1), |m| (m.line(), m.column()));
        self.diags
            .push(Diagnostic::new(self.origin, line, col, message));
    }

    fn at(&mut self, node: &Node, message: impl Into<String>) {
        let marker = match node {
            Node::Mapping(m) => mapping_marker(m),
            _ => node.span().start().copied(),
        };
        self.at_marker(marker, message);
    }

    fn at_key(&mut self, key: &MarkedScalarNode, message: impl Into<String>) {
        self.at_marker(key.span().start().copied(), message);
    }

    fn missing(&mut self, map: &MarkedMappingNode, key: &str, what: &str) {
        self.at_marker(
            mapping_marker(map),
            format!("missing required key {key:?} in {what}"),
        );
    }

    /// Unknown keys, and keys of exporter-toolkit that driftgauge refuses (with why).
    fn keys(
        &mut self,
        map: &MarkedMappingNode,
        allowed: &[&str],
        unsupported: &[(&str, &str)],
        what: &str,
    ) {
        for key in map.keys() {
            let k = key.as_str();
            if allowed.contains(&k) {
                continue;
            }
            match unsupported.iter().find(|(u, _)| *u == k) {
                Some((_, why)) => self.at_key(key, format!("{k} is not supported: {why}")),
                None => self.at_key(key, format!("unknown key {k:?} in {what}")),
            }
        }
    }

    fn mapping<'n>(&mut self, what: &str, node: &'n Node) -> Option<&'n MarkedMappingNode> {
        match node {
            Node::Mapping(m) => Some(m),
            _ => {
                self.at(
                    node,
                    format!("{what}: expected a mapping, got {}", describe(node)),
                );
                None
            }
        }
    }

    /// Any scalar's text. The value is not echoed (it may be a key).
    fn string(&mut self, what: &str, node: &Node) -> Option<String> {
        match node {
            Node::Scalar(s) => Some(s.as_str().to_string()),
            Node::Sequence(_) => {
                self.at(node, format!("{what}: expected a string, got a list"));
                None
            }
            Node::Mapping(_) => {
                self.at(node, format!("{what}: expected a string, got a mapping"));
                None
            }
        }
    }

    fn boolean(&mut self, what: &str, node: &Node) -> Option<bool> {
        if let Node::Scalar(s) = node {
            if s.may_coerce() {
                match s.as_str() {
                    "true" | "True" | "TRUE" => return Some(true),
                    "false" | "False" | "FALSE" => return Some(false),
                    _ => {}
                }
            }
        }
        self.at(
            node,
            format!("{what}: expected true or false, got {}", describe(node)),
        );
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// bcrypt's lowest cost keeps the tests fast.
    fn hash(password: &str) -> String {
        bcrypt::hash(password, 4).expect("bcrypt hash")
    }

    fn parse(text: &str) -> Result<WebConfig, WebConfigError> {
        parse_web_config("web.yml", text, Path::new("/nonexistent-driftgauge-dir"))
    }

    fn errors(text: &str) -> Vec<String> {
        match parse(text) {
            Ok(c) => panic!("expected errors, got {c:?}"),
            Err(e) => e.0.iter().map(Diagnostic::to_string).collect(),
        }
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

    /// A config with users alice/bob and one write token, in a temp dir.
    fn config_with_token(token_file_text: &str) -> (tempfile::TempDir, WebConfig) {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir(dir.path().join("secrets")).expect("mkdir");
        std::fs::write(dir.path().join("secrets/writer.token"), token_file_text).expect("write");
        let text = format!(
            "basic_auth_users:\n  alice: {}\n  bob: '{}'\nwrite_bearer_token_files: [secrets/writer.token]\n",
            hash("alice-pw"),
            hash("bob-pw")
        );
        let path = dir.path().join("web.yml");
        std::fs::write(&path, text).expect("write");
        let config = load_web_config(&path).expect("valid web config");
        (dir, config)
    }

    #[test]
    fn an_empty_file_opens_everything() {
        let c = parse("# nothing\n").expect("valid");
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
    fn unknown_keys_are_errors_at_their_position() {
        assert_eq!(
            errors("basic_auth_users: {}\ntls_server_confg:\n  cert_file: a\n"),
            vec!["web.yml:2:1: unknown key \"tls_server_confg\" in the web config"]
        );
        assert_eq!(
            errors("tls_server_config:\n  cert_file: a.crt\n  key_file: a.key\n  cert_fil: x\n"),
            vec![
                "web.yml:4:3: unknown key \"cert_fil\" in tls_server_config",
                "web.yml:2:14: cert_file: cannot read /nonexistent-driftgauge-dir/a.crt: no such file",
                "web.yml:3:13: key_file: cannot read /nonexistent-driftgauge-dir/a.key: no such file",
            ]
        );
        assert_eq!(
            errors("http_server_config:\n  headers:\n    X-Powered-By: me\n  http3: true\n"),
            vec![
                "web.yml:4:3: unknown key \"http3\" in http_server_config",
                "web.yml:3:5: http_server_config.headers: header \"X-Powered-By\" can not be configured; allowed: Strict-Transport-Security, X-Content-Type-Options, X-Frame-Options, X-XSS-Protection, Content-Security-Policy",
            ]
        );
        assert_eq!(
            errors("rate_limit: {interval: 1s, burst: 5}\n"),
            vec!["web.yml:1:1: rate_limit is not supported: rate limiting is not supported by driftgauge"]
        );
        assert_eq!(
            errors("tls_server_config:\n  cert: x\n  key: y\n  cipher_suites: [TLS_AES_128_GCM_SHA256]\n"),
            vec!["web.yml:4:3: cipher_suites is not supported: driftgauge does not configure cipher suites: rustls offers only modern ones"]
        );
    }

    #[test]
    fn yaml_syntax_and_shape_errors() {
        assert_eq!(
            errors("basic_auth_users:\n  a: x\n  a: y\n"),
            vec!["web.yml:3:3: duplicate key \"a\" (first at line 2, column 3)"]
        );
        assert_eq!(
            errors("- 1\n"),
            vec!["web.yml:1:1: expected a mapping at the top level"]
        );
        assert_eq!(
            errors("basic_auth_users: {}\n---\nbasic_auth_users: {}\n"),
            vec!["web.yml:2:1: multiple YAML documents in one file are not supported"]
        );
        assert_eq!(
            errors("basic_auth_users: [alice]\n"),
            vec!["web.yml:1:19: basic_auth_users: expected a mapping, got a list"]
        );
        assert_eq!(
            errors("write_bearer_token_files: secrets/t\n"),
            vec!["web.yml:1:27: write_bearer_token_files: expected a list of files, got \"secrets/t\""]
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
    fn tls_key_rules() {
        assert_eq!(
            errors("tls_server_config:\n  key_file: a.key\n"),
            vec![
                "web.yml:2:3: missing required key \"cert_file\" in tls_server_config",
                "web.yml:2:13: key_file: cannot read /nonexistent-driftgauge-dir/a.key: no such file",
            ]
        );
        assert_eq!(
            errors("tls_server_config:\n  cert_file: a.crt\n  cert: inline\n  key: k\n"),
            vec!["web.yml:3:9: cert and cert_file are mutually exclusive"]
        );
    }

    #[test]
    fn client_auth_types() {
        let tls = |extra: &str| format!("tls_server_config:\n  cert: c\n  key: k\n{extra}");
        assert_eq!(
            errors(&tls("  client_auth_type: RequireAnyClientCert\n")),
            vec!["web.yml:4:21: client_auth_type RequireAnyClientCert is not supported: it accepts client certificates without verifying them; use RequireAndVerifyClientCert (or VerifyClientCertIfGiven) with client_ca_file"]
        );
        assert_eq!(
            errors(&tls("  client_auth_type: RequestClientCert\n")).len(),
            1
        );
        assert_eq!(
            errors(&tls("  client_auth_type: Sometimes\n")),
            vec!["web.yml:4:21: unknown client_auth_type \"Sometimes\"; expected NoClientCert, VerifyClientCertIfGiven or RequireAndVerifyClientCert"]
        );
        assert_eq!(
            errors(&tls("  client_auth_type: RequireAndVerifyClientCert\n")),
            vec!["web.yml:4:3: client_auth_type RequireAndVerifyClientCert needs client_ca_file (or client_ca)"]
        );
        assert_eq!(
            errors(&tls("  client_ca: x\n")),
            vec!["web.yml:4:3: client_ca_file is set but client_auth_type is NoClientCert: set client_auth_type: RequireAndVerifyClientCert (or VerifyClientCertIfGiven)"]
        );
    }

    #[test]
    fn tls_versions() {
        let tls = |extra: &str| format!("tls_server_config:\n  cert: c\n  key: k\n{extra}");
        assert_eq!(
            errors(&tls("  min_version: TLS11\n")),
            vec![
                "web.yml:4:16: min_version: TLS11 is not supported (rustls speaks TLS12 and TLS13)"
            ]
        );
        assert_eq!(
            errors(&tls("  max_version: SSL3\n")),
            vec![
                "web.yml:4:16: max_version: unknown TLS version \"SSL3\"; expected TLS12 or TLS13"
            ]
        );
        assert_eq!(
            errors(&tls("  min_version: TLS13\n  max_version: TLS12\n")),
            vec!["web.yml:4:16: min_version TLS13 is above max_version TLS12"]
        );
        // Valid settings, but "c" is no certificate: the PEM check comes next.
        assert_eq!(
            errors(&tls("  min_version: TLS13\n")),
            vec!["web.yml:2:9: cert (inline): no PEM CERTIFICATE found"]
        );
    }

    #[test]
    fn http_server_config_rules() {
        assert_eq!(
            errors("http_server_config:\n  http2: true\n"),
            vec!["web.yml:2:10: http_server_config.http2: driftgauge serves HTTP/1.1 only; remove the key or set it to false"]
        );
        assert_eq!(
            errors("http_server_config:\n  headers:\n    X-Frame-Options: allow\n"),
            vec!["web.yml:3:22: http_server_config.headers.X-Frame-Options: expected one of deny, sameorigin, got \"allow\""]
        );
        let c = parse(
            "http_server_config:\n  http2: false\n  headers:\n    x-frame-options: deny\n    Strict-Transport-Security: max-age=31536000\n    X-XSS-Protection: ''\n",
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
    fn a_bad_hash_names_the_user_never_the_hash() {
        let errs = errors(
            "basic_auth_users:\n  alice: $2y$10$notarealhashatall\n  bob: plaintext-password\n  carol: [x]\n  'a:b': x\n",
        );
        assert_eq!(
            errs,
            vec![
                "web.yml:2:10: basic_auth_users: the password hash of user \"alice\" is not a valid bcrypt hash ($2y$, $2b$ or $2a$, cost 4 to 31, 60 characters)",
                "web.yml:3:8: basic_auth_users: the password hash of user \"bob\" is not a valid bcrypt hash ($2y$, $2b$ or $2a$, cost 4 to 31, 60 characters)",
                "web.yml:4:10: basic_auth_users: user \"carol\" needs a bcrypt hash as its value",
                "web.yml:5:3: basic_auth_users: user name \"a:b\" contains ':', which basic auth cannot carry",
            ]
        );
        let all = errs.join("\n");
        assert!(!all.contains("notarealhash") && !all.contains("plaintext-password"));
        // Cost out of range, otherwise well formed.
        let too_cheap = hash("x").replacen("$04$", "$03$", 1);
        assert_eq!(
            errors(&format!("basic_auth_users:\n  dave: {too_cheap}\n")).len(),
            1
        );
    }

    #[test]
    fn exporter_toolkit_sample_hash_is_accepted() {
        // From exporter-toolkit's docs: htpasswd's $2y$ hashes.
        let c = parse(
            "basic_auth_users:\n  alice: $2y$10$X0h1gDsPszWURQaxFh.zoubFi6DXncSjhoQNJgRrnGs7EsimhC7zG\n",
        )
        .expect("valid");
        assert!(c.requires_auth());
    }

    #[test]
    fn basic_auth_decisions() {
        let (_dir, c) = config_with_token("  s3cr3t-writer-token\n");
        let get = |h: &HeaderMap| c.authorize(&Method::GET, "/metrics", h);
        assert_eq!(reason(get(&HeaderMap::new())), Some(AuthFailure::Missing));
        let missing = get(&HeaderMap::new()).expect_err("refused");
        assert_eq!(missing.challenges(), &["Basic realm=\"driftgauge\""]);
        assert_eq!(get(&basic("alice", "alice-pw")), Ok(()));
        assert_eq!(get(&basic("bob", "bob-pw")), Ok(()));
        assert_eq!(
            reason(get(&basic("alice", "bob-pw"))),
            Some(AuthFailure::BadCredentials)
        );
        assert_eq!(
            reason(get(&basic("mallory", "alice-pw"))),
            Some(AuthFailure::BadCredentials)
        );
        assert_eq!(
            reason(get(&basic("alice", ""))),
            Some(AuthFailure::BadCredentials)
        );
        // A password may hold ':'; only the first one splits.
        assert_eq!(
            reason(get(&basic("alice:alice", "pw"))),
            Some(AuthFailure::BadCredentials)
        );
        let mut h = HeaderMap::new();
        h.insert(
            AUTHORIZATION,
            HeaderValue::from_static("Basic !!!notbase64"),
        );
        assert_eq!(reason(get(&h)), Some(AuthFailure::Malformed));
        h.insert(AUTHORIZATION, HeaderValue::from_static("Basic"));
        assert_eq!(reason(get(&h)), Some(AuthFailure::Malformed));
        h.insert(AUTHORIZATION, HeaderValue::from_static("Digest x=y"));
        assert_eq!(reason(get(&h)), Some(AuthFailure::WrongScheme));
        // Two Authorization headers are refused, even if one is right.
        let mut two = basic("alice", "alice-pw");
        two.append(AUTHORIZATION, HeaderValue::from_static("Basic eA=="));
        assert_eq!(reason(get(&two)), Some(AuthFailure::Malformed));
        // The scheme is case-insensitive.
        let mut lower = HeaderMap::new();
        let creds = base64::engine::general_purpose::STANDARD.encode("alice:alice-pw");
        lower.insert(
            AUTHORIZATION,
            HeaderValue::from_str(&format!("basic {creds}")).expect("header"),
        );
        assert_eq!(get(&lower), Ok(()));
        // Every route, unknown ones too (no route enumeration without credentials).
        for (m, p) in [
            (Method::GET, "/-/healthy"),
            (Method::GET, "/nope"),
            (Method::POST, "/api/v1/evaluate"),
        ] {
            assert_eq!(
                reason(c.authorize(&m, p, &HeaderMap::new())),
                Some(AuthFailure::Missing),
                "{m} {p}"
            );
        }
    }

    #[test]
    fn bearer_tokens_open_only_the_write_routes() {
        let (_dir, c) = config_with_token("s3cr3t-writer-token\n");
        let token = bearer("s3cr3t-writer-token");
        for (m, p) in [
            (Method::POST, "/api/v1/samples"),
            (Method::POST, "/api/v1/write"),
            (Method::POST, "/-/reload"),
            (Method::PUT, "/-/reload"),
        ] {
            assert_eq!(c.authorize(&m, p, &token), Ok(()), "{m} {p}");
            assert_eq!(
                c.authorize(&m, p, &basic("alice", "alice-pw")),
                Ok(()),
                "{m} {p}"
            );
            let refused = c.authorize(&m, p, &HeaderMap::new()).expect_err("refused");
            assert_eq!(
                refused.challenges(),
                &["Basic realm=\"driftgauge\"", "Bearer realm=\"driftgauge\""]
            );
            assert_eq!(
                reason(c.authorize(&m, p, &bearer("s3cr3t-writer-tokeN"))),
                Some(AuthFailure::BadToken)
            );
        }
        for (m, p) in [
            (Method::GET, "/metrics"),
            (Method::GET, "/api/v1/samples"),
            (Method::POST, "/api/v1/evaluate"),
            (Method::GET, "/api/v1/rules"),
        ] {
            assert_eq!(
                reason(c.authorize(&m, p, &token)),
                Some(AuthFailure::WrongScheme),
                "{m} {p}"
            );
        }
    }

    #[test]
    fn tokens_without_users_guard_only_the_write_routes() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("t1"), "first-token").expect("write");
        std::fs::write(dir.path().join("t2"), "second-token\n").expect("write");
        let c = parse_web_config(
            "web.yml",
            "write_bearer_token_files: [t1, t2]\n",
            dir.path(),
        )
        .expect("valid");
        assert!(c.requires_auth());
        assert_eq!(
            c.authorize(&Method::GET, "/metrics", &HeaderMap::new()),
            Ok(())
        );
        let samples = |h: &HeaderMap| c.authorize(&Method::POST, "/api/v1/samples", h);
        let refused = samples(&HeaderMap::new()).expect_err("refused");
        assert_eq!(refused.reason(), AuthFailure::Missing);
        assert_eq!(refused.challenges(), &["Bearer realm=\"driftgauge\""]);
        assert_eq!(samples(&bearer("first-token")), Ok(()));
        assert_eq!(samples(&bearer("second-token")), Ok(()));
        assert_eq!(
            reason(samples(&bearer("third-token"))),
            Some(AuthFailure::BadToken)
        );
        assert_eq!(
            reason(samples(&basic("alice", "x"))),
            Some(AuthFailure::WrongScheme)
        );
        assert_eq!(c.bcrypt_verifications(), 0);
    }

    #[test]
    fn token_files_must_hold_a_token() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("empty"), " \n").expect("write");
        std::fs::write(dir.path().join("spaced"), "two words\n").expect("write");
        let err = parse_web_config(
            "web.yml",
            "write_bearer_token_files:\n  - empty\n  - spaced\n  - ''\n",
            dir.path(),
        )
        .expect_err("bad tokens");
        let d = dir.path().display();
        assert_eq!(
            err.to_string(),
            format!(
                "web.yml:2:5: write_bearer_token_files: {d}/empty holds no token (empty or not UTF-8 text)\n\
                 web.yml:3:5: write_bearer_token_files: the token in {d}/spaced has spaces or characters an HTTP header cannot carry\n\
                 web.yml:4:5: write_bearer_token_files: expected a file name, got \"\""
            )
        );
        assert!(!err.to_string().contains("two words"));
    }

    #[test]
    fn successful_checks_are_cached_and_unknown_users_still_pay_bcrypt() {
        let (_dir, c) = config_with_token("tok");
        let h = basic("alice", "alice-pw");
        assert_eq!(c.authorize(&Method::GET, "/metrics", &h), Ok(()));
        assert_eq!(c.bcrypt_verifications(), 1);
        for _ in 0..5 {
            assert_eq!(c.authorize(&Method::GET, "/metrics", &h), Ok(()));
        }
        assert_eq!(c.bcrypt_verifications(), 1, "cached after the first check");
        // Failures are not cached, and an unknown user costs a bcrypt like a known one.
        for _ in 0..2 {
            assert!(c
                .authorize(&Method::GET, "/metrics", &basic("alice", "wrong"))
                .is_err());
        }
        assert_eq!(c.bcrypt_verifications(), 3);
        assert!(c
            .authorize(&Method::GET, "/metrics", &basic("nobody", "alice-pw"))
            .is_err());
        assert_eq!(c.bcrypt_verifications(), 4);
        // The dummy hash has the users' cost.
        let dummy: bcrypt::HashParts = c.dummy_hash.parse().expect("a bcrypt hash");
        assert_eq!(dummy.get_cost(), 4);
    }

    #[test]
    fn the_cache_is_bounded() {
        let c = parse(&format!("basic_auth_users:\n  alice: {}\n", hash("pw"))).expect("valid");
        for i in 0..(CACHE_CAPACITY + 10) {
            let key = cache_key(format!("u{i}").as_bytes(), "h", b"p");
            let attempt = Attempt {
                user: Some("alice".into()),
                password: b"pw".to_vec(),
                cache_key: key,
                challenges: &[],
            };
            assert_eq!(c.verify(attempt), Ok(()));
        }
        assert_eq!(c.cache.lock().expect("lock").len(), CACHE_CAPACITY);
    }

    #[test]
    fn passwords_over_72_bytes_are_refused_not_truncated() {
        let long = "x".repeat(72);
        let c = parse(&format!("basic_auth_users:\n  alice: {}\n", hash(&long))).expect("valid");
        assert_eq!(
            c.authorize(&Method::GET, "/", &basic("alice", &long)),
            Ok(())
        );
        assert_eq!(
            reason(c.authorize(&Method::GET, "/", &basic("alice", &format!("{long}y")))),
            Some(AuthFailure::BadCredentials)
        );
    }

    #[tokio::test]
    async fn authorize_async_agrees() {
        let (_dir, c) = config_with_token("tok");
        let c = Arc::new(c);
        assert_eq!(
            c.authorize_async(&Method::GET, "/metrics", &basic("alice", "alice-pw"))
                .await,
            Ok(())
        );
        assert_eq!(
            reason(
                c.authorize_async(&Method::GET, "/metrics", &basic("alice", "nope"))
                    .await
            ),
            Some(AuthFailure::BadCredentials)
        );
        assert_eq!(
            c.authorize_async(&Method::POST, "/api/v1/samples", &bearer("tok"))
                .await,
            Ok(())
        );
    }

    #[test]
    fn secrets_stay_out_of_debug_and_errors() {
        let (_dir, c) = config_with_token("s3cr3t-writer-token");
        let text = format!("{c:?}");
        for secret in ["s3cr3t-writer-token", "alice-pw", "bob-pw", "$2"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert!(
            text.contains("alice") && text.contains("writer.token"),
            "{text}"
        );
        let refused = c
            .authorize(&Method::GET, "/metrics", &basic("alice", "wrong-password"))
            .expect_err("refused");
        let shown = format!("{refused:?} {refused}");
        assert!(!shown.contains("wrong-password"), "{shown}");
        let bad = c
            .authorize(&Method::POST, "/api/v1/samples", &bearer("guessed-token"))
            .expect_err("refused");
        assert!(!format!("{bad:?} {bad}").contains("guessed-token"));
        let attempt = Attempt {
            user: Some("alice".into()),
            password: b"hunter2".to_vec(),
            cache_key: [0; 32],
            challenges: &[],
        };
        assert!(!format!("{attempt:?}").contains("hunter2"));
        // A malformed inline key is not echoed.
        let errs = errors(
            "tls_server_config:\n  cert: c\n  key: |\n    -----BEGIN PRIVATE KEY-----\n    TOPSECRETKEYMATERIAL\n    -----END PRIVATE KEY-----\n",
        )
        .join("\n");
        assert!(!errs.contains("TOPSECRET"), "{errs}");
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

    #[test]
    fn fingerprints_see_rewrites_that_keep_length_and_mtime() {
        let dir = tempfile::tempdir().expect("temp dir");
        let p = dir.path().join("f");
        std::fs::write(&p, "aaaa").expect("write");
        let mtime = std::fs::metadata(&p)
            .and_then(|m| m.modified())
            .expect("mtime");
        let mut fp = Fingerprint(vec![Seen::read(&p).0]);
        assert!(!fp.changed());
        std::thread::sleep(Duration::from_millis(20));
        std::fs::write(&p, "bbbb").expect("write");
        std::fs::File::options()
            .write(true)
            .open(&p)
            .and_then(|f| f.set_modified(mtime))
            .expect("set mtime");
        let now = stamp(&p).expect("stamp");
        let was = fp.0[0].stamp.expect("stamp");
        assert_eq!((now.len, now.modified), (was.len, was.modified));
        assert!(fp.clone().changed(), "ctime, or the content");
        std::fs::remove_file(&p).expect("rm");
        assert!(fp.changed());
    }

    #[test]
    fn racy_files_are_compared_by_content_until_they_are_old() {
        let dir = tempfile::tempdir().expect("temp dir");
        let p = dir.path().join("f");
        std::fs::write(&p, "aaaa").expect("write");
        // Stamped in the same tick as a same-length rewrite: the stamp cannot tell.
        let (mut seen, _) = Seen::read(&p);
        seen.digest = Some(Sha256::digest(b"an older content").into());
        assert!(seen.racy());
        assert!(Fingerprint(vec![seen.clone()]).changed());
        // The content it was read with: unchanged, and the stamp time is renewed.
        let (same, _) = Seen::read(&p);
        let mut fp = Fingerprint(vec![same]);
        assert!(!fp.changed());
        // Long after its last change, a file is trusted by its stamp alone.
        seen.taken = SystemTime::now() + RACY + Duration::from_secs(1);
        assert!(!seen.racy());
        assert!(!Fingerprint(vec![seen]).changed());
    }

    #[test]
    fn write_routes() {
        assert!(is_write_route(&Method::POST, "/api/v1/samples"));
        assert!(is_write_route(&Method::POST, "/api/v1/write"));
        assert!(is_write_route(&Method::PUT, "/-/reload"));
        assert!(!is_write_route(&Method::GET, "/api/v1/samples"));
        assert!(!is_write_route(&Method::POST, "/api/v1/evaluate"));
        assert!(!is_write_route(&Method::POST, "/api/v1/samples/"));
    }
}
