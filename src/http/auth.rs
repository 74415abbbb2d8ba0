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
//! Passwords are checked with bcrypt, which is slow on purpose: an unknown user is checked
//! against a dummy hash of the same cost, so timing does not tell which user names exist, one
//! bcrypt runs at a time (as in exporter-toolkit), and successful checks are remembered in a
//! small bounded set keyed by a SHA-256 of user, hash and password, so a scrape does not pay
//! bcrypt every time. Bearer tokens are kept only as SHA-256 digests and compared without
//! early exit. No secret (password, hash, token) appears in an error, a log line or `Debug`
//! output.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use hyper::header::AUTHORIZATION;
use hyper::{HeaderMap, Method};
use sha2::{Digest, Sha256};

/// The realm of the `WWW-Authenticate` challenges.
pub const REALM: &str = "driftgauge";

/// How many successful (user, password) checks are remembered.
const CACHE_CAPACITY: usize = 256;

/// The challenge for basic auth, one `WWW-Authenticate` header.
const BASIC_CHALLENGE: &str = "Basic realm=\"driftgauge\"";
/// The challenge for bearer tokens, one `WWW-Authenticate` header.
const BEARER_CHALLENGE: &str = "Bearer realm=\"driftgauge\"";

/// Is this request one of the write routes, where bearer tokens are accepted?
pub fn is_write_route(method: &Method, path: &str) -> bool {
    match path {
        "/api/v1/samples" | "/api/v1/write" => method == Method::POST,
        "/-/reload" => method == Method::POST || method == Method::PUT,
        _ => false,
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

/// The users and tokens of a web config, and what was learnt about them since it was loaded.
pub struct Auth {
    /// User name → bcrypt hash.
    users: BTreeMap<String, String>,
    /// A hash of the users' highest cost that no password matches, checked for unknown users.
    dummy_hash: String,
    /// SHA-256 digests of the write tokens.
    tokens: Vec<[u8; 32]>,
    /// Cache keys of successful basic-auth checks.
    cache: Mutex<HashSet<[u8; 32]>>,
    /// One bcrypt at a time.
    bcrypt_lock: Mutex<()>,
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

/// What [`Auth::check`] decided without bcrypt.
#[derive(Debug)]
enum Step {
    Done(Result<(), AuthError>),
    Verify(Attempt),
}

impl Auth {
    /// `users`: name → a valid bcrypt hash; `tokens`: SHA-256 digests. Computes the dummy hash
    /// for unknown users (one bcrypt at the users' highest cost).
    pub fn new(users: BTreeMap<String, String>, tokens: Vec<[u8; 32]>) -> Result<Auth, String> {
        let dummy_hash = dummy_hash(&users)?;
        Ok(Auth {
            users,
            dummy_hash,
            tokens,
            cache: Mutex::new(HashSet::new()),
            bcrypt_lock: Mutex::new(()),
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

    /// How many bcrypt checks ran (cache misses, unknown users included).
    pub fn bcrypt_verifications(&self) -> u64 {
        self.bcrypt_runs.load(Ordering::Relaxed)
    }

    /// May this request in? Runs bcrypt (milliseconds at cost 10, and one at a time) when
    /// basic-auth credentials are not in the cache: from async code prefer
    /// [`Auth::authorize_async`], which does that on the blocking pool.
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

    /// [`Auth::authorize`], with bcrypt (when needed) on tokio's blocking pool so that a
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
                .iter()
                .zip(digest.iter())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b));
            found |= std::hint::black_box(diff) == 0;
        }
        found
    }
}

/// A hash no password matches, at the highest cost among the users (so an unknown user takes
/// as long as a known one). Empty without users: basic auth is then never checked.
fn dummy_hash(users: &BTreeMap<String, String>) -> Result<String, String> {
    let Some(cost) = users
        .values()
        .filter_map(|h| h.parse::<bcrypt::HashParts>().ok())
        .map(|p| p.get_cost())
        .max()
    else {
        return Ok(String::new());
    };
    bcrypt::hash_with_salt(b"driftgauge: no such user", cost, [0x5a; 16])
        .map(|parts| parts.format_for_version(bcrypt::Version::TwoB))
        .map_err(|e| format!("basic_auth_users: {e}"))
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
        let users = users
            .iter()
            .map(|(u, p)| (u.to_string(), hash(p)))
            .collect();
        let tokens = tokens
            .iter()
            .map(|t| Sha256::digest(t.as_bytes()).into())
            .collect();
        Auth::new(users, tokens).expect("valid users")
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
        // The dummy hash has the users' cost.
        let dummy: bcrypt::HashParts = c.dummy_hash.parse().expect("a bcrypt hash");
        assert_eq!(dummy.get_cost(), 4);
    }

    #[test]
    fn the_cache_is_bounded() {
        let c = auth(&[("alice", "pw")], &[]);
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
            password: b"hunter2".to_vec(),
            cache_key: [0; 32],
            challenges: &[],
        };
        assert!(!format!("{attempt:?}").contains("hunter2"));
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
