//! Who gets in: basic auth (bcrypt) on every route and bearer tokens on the write routes, as
//! a web config sets them; the `WWW-Authenticate` challenges of a refusal.
//!
//! - with `basic_auth_users`, every route needs a valid `Authorization: Basic` user and
//!   password;
//! - with `write_bearer_token_files`, the write routes (`POST /api/v1/samples`,
//!   `POST /api/v1/write`, `POST|PUT /-/reload`) also take `Authorization: Bearer <token>`
//!   with any of those tokens. Without `basic_auth_users` the write routes then need a token
//!   and every other route is open;
//! - with neither, every route is open (TLS alone).
//!
//! Passwords are checked with bcrypt, which is slow on purpose, so nobody but the password
//! checks waits for it:
//! - A successful check is remembered in a small bounded set keyed by a SHA-256 of user, hash
//!   and password, and bearer tokens are kept as SHA-256 digests compared without early exit:
//!   a cached user and a token are answered on the request's own task, without bcrypt.
//! - Every other check runs on a [`PasswordPool`]: one or two threads of its own (not tokio's
//!   workers, not its blocking pool, which evaluation and `/metrics` use), fed by a queue of
//!   [`PASSWORD_QUEUE`] checks. A check that finds the queue full is refused at once, without
//!   bcrypt: `429 Too Many Requests` with `Retry-After: 1` ([`AuthFailure::Busy`]), and that
//!   connection's next request waits out the second ([`ConnectionPause`]): a client that
//!   retries at once gets one answer a second, not thousands. A flood of wrong passwords thus
//!   costs the service one or two cores' worth of bcrypt and little else, and nothing but the
//!   password checks waits for it.
//! - Every check does the same bcrypt work, that of the costliest configured hash, so its
//!   time does not tell which user names exist: an unknown name is hashed at the highest
//!   cost; a user at a lower cost `c` is verified against their hash and the password is then
//!   hashed at costs `c`, `c+1`, ..., `max-1` (bcrypt's work doubles with each cost, and
//!   2^c + 2^c + 2^(c+1) + ... + 2^(max-1) = 2^max). The work is the same on a busy machine
//!   and an idle one, which a sleep padded to a time measured once would not be.
//!
//! No secret (password, hash, token) appears in an error, a log line or `Debug` output.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use base64::Engine as _;
use hyper::header::AUTHORIZATION;
use hyper::{HeaderMap, Method};
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;

use crate::config::web::bcrypt_cost;

/// The realm of the `WWW-Authenticate` challenges.
pub const REALM: &str = "driftgauge";

/// How many successful (user, password) checks are remembered.
const CACHE_CAPACITY: usize = 256;

/// How many password checks may wait for the [`PasswordPool`]; one more is refused at once.
/// At cost 10 (60-80 ms a check) the last one waits about half a second.
pub const PASSWORD_QUEUE: usize = 8;

/// What a check refused for a full queue is told to wait (`Retry-After`, seconds).
pub const RETRY_AFTER_SECS: u64 = 1;

/// At most one warning a minute about refused checks.
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(60);

/// The challenge for basic auth, one `WWW-Authenticate` header.
const BASIC_CHALLENGE: &str = "Basic realm=\"driftgauge\"";
/// The challenge for bearer tokens, one `WWW-Authenticate` header.
const BEARER_CHALLENGE: &str = "Bearer realm=\"driftgauge\"";

/// The salt of the padding hashes (their results are thrown away).
const PADDING_SALT: [u8; 16] = [0x5a; 16];

/// Is this request one of the write routes, where bearer tokens are accepted?
pub fn is_write_route(method: &Method, path: &str) -> bool {
    match path {
        "/api/v1/samples" | "/api/v1/write" => method == Method::POST,
        "/-/reload" => method == Method::POST || method == Method::PUT,
        _ => false,
    }
}

/// Why a request was refused. [`AuthFailure::Busy`] answers `429 Too Many Requests` with
/// `Retry-After`; every other kind `401 Unauthorized` with one `WWW-Authenticate` header per
/// [`AuthError::challenges`].
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
    /// The password was not checked: too many checks are waiting.
    #[error("too many password checks under way; retry later")]
    Busy,
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

/// One connection's pause: after a request on it was refused with [`AuthFailure::Busy`], its
/// next request waits out the `Retry-After` it was given before it is looked at. The refusal
/// itself is sent at once; a client that does not wait costs the service one request a second
/// on that connection instead of as many as it can send. Cached users and bearer tokens are
/// never refused so, and never paused.
#[derive(Debug)]
pub struct ConnectionPause {
    length: Duration,
    until: Mutex<Option<Instant>>,
}

impl Default for ConnectionPause {
    /// [`RETRY_AFTER_SECS`] long.
    fn default() -> Self {
        ConnectionPause::lasting(Duration::from_secs(RETRY_AFTER_SECS))
    }
}

impl ConnectionPause {
    pub fn lasting(length: Duration) -> ConnectionPause {
        ConnectionPause {
            length,
            until: Mutex::new(None),
        }
    }

    /// Waits until the pause (if one was armed) is over.
    pub async fn wait(&self) {
        let until = self.until.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(until) = until {
            tokio::time::sleep_until(until.into()).await;
        }
    }

    /// Pauses the connection's next request.
    pub fn arm(&self) {
        *self.until.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now() + self.length);
    }
}

/// The threads that run bcrypt, fed by a bounded queue. One serves a web config and every
/// reload of it; its threads start with the first check and end when it is dropped.
pub struct PasswordPool {
    threads: usize,
    queue: usize,
    /// `None` once starting a thread failed: every check is then refused as busy.
    sender: OnceLock<Option<SyncSender<Job>>>,
    /// Kept so that the queue stays open whatever the threads do.
    receiver: OnceLock<Arc<Mutex<Receiver<Job>>>>,
    refused: AtomicU64,
    created: Instant,
    /// When (milliseconds after `created`) refusals may be logged again.
    next_log_ms: AtomicU64,
}

impl fmt::Debug for PasswordPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordPool")
            .field("threads", &self.threads)
            .field("queue", &self.queue)
            .field("refused", &self.refused())
            .finish_non_exhaustive()
    }
}

impl Default for PasswordPool {
    fn default() -> Self {
        PasswordPool::new()
    }
}

impl PasswordPool {
    /// One thread, two on machines with four cores or more (the rest is for the service),
    /// and [`PASSWORD_QUEUE`] waiting checks.
    pub fn new() -> PasswordPool {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        PasswordPool::with_sizes(if cores >= 4 { 2 } else { 1 }, PASSWORD_QUEUE)
    }

    /// `threads` running checks (0: none ever runs, for tests) and `queue` waiting.
    pub fn with_sizes(threads: usize, queue: usize) -> PasswordPool {
        PasswordPool {
            threads,
            queue,
            sender: OnceLock::new(),
            receiver: OnceLock::new(),
            refused: AtomicU64::new(0),
            created: Instant::now(),
            next_log_ms: AtomicU64::new(0),
        }
    }

    /// How many checks were refused because the queue was full.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Queues a check, or gives it back at once when the queue is full.
    fn submit(&self, job: Job) -> Result<(), Job> {
        let Some(sender) = self.sender.get_or_init(|| self.start()) else {
            return Err(job);
        };
        match sender.try_send(job) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(job) | TrySendError::Disconnected(job)) => {
                let refused = self.refused.fetch_add(1, Ordering::Relaxed) + 1;
                self.log_refusals(refused);
                Err(job)
            }
        }
    }

    /// Starts the threads; `None` when not one could start.
    fn start(&self) -> Option<SyncSender<Job>> {
        let (sender, receiver) = mpsc::sync_channel(self.queue);
        let receiver = Arc::clone(self.receiver.get_or_init(|| Arc::new(Mutex::new(receiver))));
        let mut started = self.threads == 0;
        for i in 0..self.threads {
            let receiver = Arc::clone(&receiver);
            let spawned = std::thread::Builder::new()
                .name(format!("driftgauge-bcrypt-{i}"))
                .spawn(move || work(&receiver));
            match spawned {
                Ok(_) => started = true,
                Err(e) => tracing::error!(error = %e, "cannot start a password-check thread"),
            }
        }
        started.then_some(sender)
    }

    fn log_refusals(&self, refused: u64) {
        let now = u64::try_from(self.created.elapsed().as_millis()).unwrap_or(u64::MAX);
        let due = self.next_log_ms.load(Ordering::Relaxed);
        let interval = u64::try_from(REFUSAL_LOG_INTERVAL.as_millis()).unwrap_or(u64::MAX);
        if now >= due
            && self
                .next_log_ms
                .compare_exchange(
                    due,
                    now.saturating_add(interval),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            tracing::warn!(
                refused_total = refused,
                queue = self.queue,
                "password checks refused (429): too many basic-auth attempts are waiting for \
                 bcrypt; cached users and bearer tokens are not affected"
            );
        }
    }
}

/// A worker: runs checks until the pool is dropped. A check whose requester is gone is
/// skipped.
fn work(receiver: &Mutex<Receiver<Job>>) {
    loop {
        let job = {
            let receiver = receiver.lock().unwrap_or_else(|e| e.into_inner());
            match receiver.recv() {
                Ok(job) => job,
                Err(_) => return,
            }
        };
        if job.reply.is_closed() {
            continue;
        }
        let matched = job.check.run();
        let _ = job.reply.send(matched);
    }
}

/// One queued check and where its answer goes.
struct Job {
    check: Check,
    reply: oneshot::Sender<bool>,
}

/// One password check, with the same bcrypt work whoever the user is (see the module docs).
/// Holds the password: never printed.
struct Check {
    /// The user's hash and its cost; `None`: no such user.
    hash: Option<(String, u32)>,
    password: Vec<u8>,
    /// The highest cost among the users.
    max_cost: u32,
}

impl Check {
    /// The costs at which the password is hashed and thrown away, after the user's own hash
    /// (if any) was verified.
    fn padding(&self) -> Range<u32> {
        match self.hash {
            Some((_, cost)) => cost.min(self.max_cost)..self.max_cost,
            None => self.max_cost..self.max_cost + 1,
        }
    }

    /// bcrypt's work for this check, in units of one key expansion round: 2^cost a hash.
    #[cfg(test)]
    fn work(&self) -> u64 {
        let own = self.hash.as_ref().map_or(0, |(_, cost)| 1u64 << cost);
        own + self.padding().map(|cost| 1u64 << cost).sum::<u64>()
    }

    /// Does the password match? Runs bcrypt: milliseconds to seconds.
    fn run(&self) -> bool {
        let matched = match &self.hash {
            Some((hash, _)) => bcrypt::verify(&self.password, hash).unwrap_or(false),
            None => false,
        };
        for cost in self.padding() {
            std::hint::black_box(bcrypt::hash_with_salt(&self.password, cost, PADDING_SALT)).ok();
        }
        // Passwords over bcrypt's 72 bytes are refused rather than truncated, as Go's bcrypt
        // (and so exporter-toolkit) does; bcrypt still ran, so every refusal costs the same.
        matched && self.password.len() <= 72
    }
}

/// A user of `basic_auth_users`.
struct User {
    hash: String,
    cost: u32,
}

/// The users and tokens of a web config, and what was learnt about them since it was loaded.
pub struct Auth {
    users: BTreeMap<String, User>,
    /// The highest cost among the users (0 without users).
    max_cost: u32,
    /// SHA-256 digests of the write tokens.
    tokens: Vec<[u8; 32]>,
    /// Cache keys of successful basic-auth checks.
    cache: Mutex<HashSet<[u8; 32]>>,
    pool: Arc<PasswordPool>,
    bcrypt_runs: AtomicU64,
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Auth")
            .field("users", &self.users.keys().collect::<Vec<_>>())
            .field("tokens", &self.tokens.len())
            .finish_non_exhaustive()
    }
}

/// A basic-auth check that still needs bcrypt.
struct Attempt {
    /// `None`: no such user.
    user: Option<String>,
    check: Check,
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

/// What [`Auth::check`] decided without bcrypt.
#[derive(Debug)]
enum Step {
    Done(Result<(), AuthError>),
    Verify(Attempt),
}

impl Auth {
    /// `users`: name → bcrypt hash; `tokens`: SHA-256 digests; `pool`: where passwords are
    /// checked. An invalid hash is an error naming its user.
    pub fn new(
        users: BTreeMap<String, String>,
        tokens: Vec<[u8; 32]>,
        pool: Arc<PasswordPool>,
    ) -> Result<Auth, String> {
        let mut checked = BTreeMap::new();
        for (name, hash) in users {
            let Some(cost) = bcrypt_cost(&hash) else {
                return Err(format!(
                    "basic_auth_users: the password hash of user {name:?} is not a valid bcrypt \
                     hash"
                ));
            };
            checked.insert(name, User { hash, cost });
        }
        let max_cost = checked.values().map(|u| u.cost).max().unwrap_or(0);
        Ok(Auth {
            users: checked,
            max_cost,
            tokens,
            cache: Mutex::new(HashSet::new()),
            pool,
            bcrypt_runs: AtomicU64::new(0),
        })
    }

    /// The user names, for logs.
    pub fn user_names(&self) -> impl Iterator<Item = &str> {
        self.users.keys().map(String::as_str)
    }

    /// Does any route need credentials?
    pub fn requires_auth(&self) -> bool {
        !self.users.is_empty() || !self.tokens.is_empty()
    }

    /// How many password checks ran (cache misses, unknown users included; refused ones not).
    pub fn bcrypt_verifications(&self) -> u64 {
        self.bcrypt_runs.load(Ordering::Relaxed)
    }

    /// May this request in? Runs bcrypt on the calling thread when basic-auth credentials
    /// are not in the cache (milliseconds at cost 10): the server uses
    /// [`Auth::authorize_async`].
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

    /// May this request in? Cached users, bearer tokens and every refusal that needs no
    /// bcrypt are answered here at once; a password check waits for the [`PasswordPool`], or
    /// is refused at once with [`AuthFailure::Busy`] when too many are waiting.
    pub async fn authorize_async(
        &self,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
    ) -> Result<(), AuthError> {
        let attempt = match self.check(method, path, headers) {
            Step::Done(result) => return result,
            Step::Verify(attempt) => attempt,
        };
        let Attempt {
            user,
            check,
            cache_key,
            challenges,
        } = attempt;
        let (reply, answer) = oneshot::channel();
        if self.pool.submit(Job { check, reply }).is_err() {
            return Err(AuthError {
                reason: AuthFailure::Busy,
                challenges,
            });
        }
        // A worker that died answers nothing: a refusal.
        let matched = answer.await.unwrap_or(false);
        self.settle(user.is_some(), matched, cache_key, challenges)
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
        let cache_key = cache_key(user, known.map_or("", |(_, u)| u.hash.as_str()), password);
        if known.is_some() && self.cached(&cache_key) {
            return Step::Done(Ok(()));
        }
        Step::Verify(Attempt {
            user: known.map(|(name, _)| name.clone()),
            check: Check {
                hash: known.map(|(_, u)| (u.hash.clone(), u.cost)),
                password: password.to_vec(),
                max_cost: self.max_cost,
            },
            cache_key,
            challenges,
        })
    }

    /// The bcrypt part, on the calling thread.
    fn verify(&self, attempt: Attempt) -> Result<(), AuthError> {
        let matched = attempt.check.run();
        self.settle(
            attempt.user.is_some(),
            matched,
            attempt.cache_key,
            attempt.challenges,
        )
    }

    /// After a check ran: remember a success, refuse a failure.
    fn settle(
        &self,
        known: bool,
        matched: bool,
        cache_key: [u8; 32],
        challenges: &'static [&'static str],
    ) -> Result<(), AuthError> {
        self.bcrypt_runs.fetch_add(1, Ordering::Relaxed);
        if matched && known {
            let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            if cache.len() >= CACHE_CAPACITY {
                if let Some(evict) = cache.iter().next().copied() {
                    cache.remove(&evict);
                }
            }
            cache.insert(cache_key);
            return Ok(());
        }
        Err(AuthError {
            reason: AuthFailure::BadCredentials,
            challenges,
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

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    /// bcrypt's lowest cost keeps the tests fast.
    fn hash(password: &str) -> String {
        bcrypt::hash(password, 4).expect("bcrypt hash")
    }

    fn auth(users: &[(&str, &str)], tokens: &[&str]) -> Auth {
        auth_on(users, tokens, PasswordPool::new())
    }

    fn auth_on(users: &[(&str, &str)], tokens: &[&str], pool: PasswordPool) -> Auth {
        let users = users
            .iter()
            .map(|(u, p)| (u.to_string(), hash(p)))
            .collect();
        let tokens = tokens
            .iter()
            .map(|t| Sha256::digest(t.as_bytes()).into())
            .collect();
        Auth::new(users, tokens, Arc::new(pool)).expect("valid users")
    }

    /// Users alice and bob, and one write token.
    fn alice_bob_and(token: &str) -> Auth {
        auth(&[("alice", "alice-pw"), ("bob", "bob-pw")], &[token])
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
    fn no_users_and_no_tokens_open_everything() {
        let c = auth(&[], &[]);
        assert!(!c.requires_auth());
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
    fn basic_auth_decisions() {
        let c = alice_bob_and("s3cr3t-writer-token");
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
        let c = alice_bob_and("s3cr3t-writer-token");
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
        let c = auth(&[], &["first-token", "second-token"]);
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
    fn successful_checks_are_cached_and_unknown_users_still_pay_bcrypt() {
        let c = alice_bob_and("tok");
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
    }

    #[test]
    fn the_cache_is_bounded() {
        let c = auth(&[("alice", "pw")], &[]);
        for i in 0..(CACHE_CAPACITY + 10) {
            let key = cache_key(format!("u{i}").as_bytes(), "h", b"p");
            let attempt = Attempt {
                user: Some("alice".into()),
                check: Check {
                    hash: Some((c.users["alice"].hash.clone(), 4)),
                    password: b"pw".to_vec(),
                    max_cost: 4,
                },
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
        let c = auth(&[("alice", &long)], &[]);
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
        let c = Arc::new(alice_bob_and("tok"));
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
        let c = alice_bob_and("s3cr3t-writer-token");
        let text = format!("{c:?}");
        for secret in ["s3cr3t-writer-token", "alice-pw", "$2"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
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
            check: Check {
                hash: Some((c.users["alice"].hash.clone(), 4)),
                password: b"hunter2".to_vec(),
                max_cost: 4,
            },
            cache_key: [0; 32],
            challenges: &[],
        };
        assert!(!format!("{attempt:?}").contains("hunter2"));
    }

    #[test]
    fn every_check_does_the_work_of_the_costliest_hash() {
        let check = |hash: Option<u32>, max_cost| Check {
            hash: hash.map(|cost| (String::new(), cost)),
            password: Vec::new(),
            max_cost,
        };
        for max in [4, 5, 10, 12, 31] {
            let unknown = check(None, max);
            assert_eq!(unknown.work(), 1 << max, "unknown user, max {max}");
            for cost in 4..=max {
                let known = check(Some(cost), max);
                assert_eq!(known.work(), unknown.work(), "cost {cost}, max {max}");
                // One bcrypt for the user's hash, one per cost from theirs up to the highest.
                assert_eq!(known.padding().len() as u32, max - cost, "cost {cost}");
            }
        }
    }

    #[test]
    fn the_users_costs_set_the_work() {
        let dear = Auth::new(
            BTreeMap::from([
                ("cheap".to_string(), hash_at("pw-4", 4)),
                ("dear".to_string(), hash_at("pw-6", 6)),
            ]),
            Vec::new(),
            Arc::new(PasswordPool::new()),
        )
        .expect("valid");
        assert_eq!(dear.max_cost, 6);
        let Step::Verify(cheap) = dear.check(&Method::GET, "/", &basic("cheap", "x")) else {
            panic!("needs bcrypt");
        };
        let Step::Verify(unknown) = dear.check(&Method::GET, "/", &basic("nobody", "x")) else {
            panic!("needs bcrypt");
        };
        assert_eq!(cheap.check.padding(), 4..6);
        assert_eq!(unknown.check.padding(), 6..7);
        assert_eq!(cheap.check.work(), unknown.check.work());
        // And it still tells right from wrong.
        assert_eq!(
            dear.authorize(&Method::GET, "/", &basic("cheap", "pw-4")),
            Ok(())
        );
        assert_eq!(
            reason(dear.authorize(&Method::GET, "/", &basic("dear", "pw-4"))),
            Some(AuthFailure::BadCredentials)
        );
    }

    fn hash_at(password: &str, cost: u32) -> String {
        bcrypt::hash(password, cost).expect("bcrypt hash")
    }

    #[tokio::test]
    async fn a_full_queue_refuses_at_once_without_bcrypt() {
        // No thread ever takes a check: the queue holds two, the third is refused.
        let c = auth_on(
            &[("alice", "alice-pw")],
            &[],
            PasswordPool::with_sizes(0, 2),
        );
        let wrong = basic("alice", "wrong");
        let mut waiting = Vec::new();
        for _ in 0..2 {
            // Polled once: queued, and now waiting for an answer.
            let mut check = Box::pin(c.authorize_async(&Method::GET, "/metrics", &wrong));
            tokio::select! {
                biased;
                r = &mut check => panic!("answered without a thread: {r:?}"),
                () = std::future::ready(()) => {}
            }
            waiting.push(check);
        }
        let started = std::time::Instant::now();
        for user in ["alice", "nobody"] {
            let refused = c
                .authorize_async(&Method::GET, "/metrics", &basic(user, "alice-pw"))
                .await
                .expect_err("the queue is full");
            assert_eq!(refused.reason(), AuthFailure::Busy);
            assert_eq!(refused.challenges(), &["Basic realm=\"driftgauge\""]);
        }
        assert!(started.elapsed() < Duration::from_secs(1), "at once");
        assert_eq!(c.pool.refused(), 2);
        assert_eq!(c.bcrypt_verifications(), 0, "nothing ran");
    }

    #[tokio::test]
    async fn cached_users_and_tokens_never_touch_the_pool() {
        // A pool that takes nothing: every check that needs bcrypt is refused as busy.
        let c = auth_on(
            &[("alice", "alice-pw")],
            &["tok"],
            PasswordPool::with_sizes(0, 0),
        );
        let alice = basic("alice", "alice-pw");
        let refused = c
            .authorize_async(&Method::GET, "/metrics", &alice)
            .await
            .expect_err("not cached yet");
        assert_eq!(refused.reason(), AuthFailure::Busy);
        // Checked once (on this thread), then cached.
        assert_eq!(c.authorize(&Method::GET, "/metrics", &alice), Ok(()));
        for _ in 0..3 {
            assert_eq!(
                c.authorize_async(&Method::GET, "/metrics", &alice).await,
                Ok(())
            );
            assert_eq!(
                c.authorize_async(&Method::POST, "/api/v1/samples", &bearer("tok"))
                    .await,
                Ok(())
            );
            assert_eq!(
                reason(
                    c.authorize_async(&Method::POST, "/api/v1/samples", &bearer("nope"))
                        .await
                ),
                Some(AuthFailure::BadToken)
            );
        }
        assert_eq!(
            reason(
                c.authorize_async(&Method::GET, "/metrics", &basic("alice", "wrong"))
                    .await
            ),
            Some(AuthFailure::Busy)
        );
        assert_eq!(c.bcrypt_verifications(), 1);
        assert_eq!(c.pool.refused(), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn checks_run_on_the_pools_threads() {
        let c = Arc::new(alice_bob_and("tok"));
        let tasks: Vec<_> = (0..6)
            .map(|i| {
                let c = Arc::clone(&c);
                tokio::spawn(async move {
                    let password = if i % 2 == 0 { "alice-pw" } else { "wrong" };
                    c.authorize_async(&Method::GET, "/metrics", &basic("alice", password))
                        .await
                })
            })
            .collect();
        let mut answers = Vec::new();
        for t in tasks {
            answers.push(t.await.expect("task"));
        }
        // Up to PASSWORD_QUEUE wait: none of these six is refused.
        assert!(answers
            .iter()
            .all(|a| a.is_ok() || reason(*a) == Some(AuthFailure::BadCredentials)));
        assert!(answers.iter().any(Result::is_ok));
        assert_eq!(c.pool.refused(), 0);
    }

    #[tokio::test]
    async fn a_paused_connection_waits_once() {
        let pause = ConnectionPause::lasting(Duration::from_millis(100));
        let started = Instant::now();
        pause.wait().await;
        assert!(started.elapsed() < Duration::from_millis(50), "not armed");
        pause.arm();
        pause.wait().await;
        assert!(started.elapsed() >= Duration::from_millis(100));
        let again = Instant::now();
        pause.wait().await;
        assert!(again.elapsed() < Duration::from_millis(50), "spent");
        assert_eq!(
            ConnectionPause::default().length,
            Duration::from_secs(RETRY_AFTER_SECS)
        );
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
