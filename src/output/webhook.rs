//! Webhook delivery: POSTs the payloads the rule engine enqueues, signs them as Standard Webhooks
//! says, and retries failed calls with capped exponential backoff and jitter until they succeed,
//! are refused for good, or the sender shuts down.
//!
//! The engine decides *what* to send (a [`Delivery`]); this module only delivers it.
//! [`WebhookSender::enqueue`] never blocks or awaits, so a slow or dead receiver cannot delay
//! rule evaluation: every delivery runs as its own tokio task, and a dead receiver for one
//! webhook holds up no other.
//!
//! Connections are bounded per webhook: an attempt takes one of its webhook's
//! `max_connections` slots (`Slots`) before it connects and gives it back when it ends
//! (answer, error, timeout or cancellation). Deliveries waiting for a slot are pending like
//! those backing off, and are served first come, first served; the HTTP client keeps idle
//! connections per host, so a webhook's slots reuse a handful of connections. A receiver
//! that accepts and never answers thus holds at most `max_connections` descriptors, each for
//! at most `timeout`, however many deliveries (resumed from the outbox or new) wait behind.
//!
//! One attempt is `WebhookSender::attempt`: a delivery and a config in, an [`Outcome`] out
//! (`Success`, `Retry { after }`, `GiveUp { reason }`), with no counters, logs or sleeping, so
//! a durable outbox can wrap it (persist, attempt, record) without touching the HTTP side.
//!
//! Requests:
//! - `POST <url>` (or the webhook's `method`) with `Content-Type: application/json`,
//!   `Idempotency-Key: <key>` (the same on every retry, and on every replica:
//!   [`Event::idempotency_key`]), `User-Agent: driftgauge/<version>`, the config's `headers`, and
//!   `Authorization: Bearer <token>` when a bearer token is set. The config's headers are
//!   applied first; the headers driftgauge sets itself replace same-named ones (except
//!   `User-Agent`, which a configured header may override).
//! - With a signing key, `webhook-id` (the idempotency key), `webhook-timestamp` (Unix seconds
//!   of this attempt) and `webhook-signature: v1,<base64 HMAC-SHA256>`, re-signed per attempt.
//! - The body is the payload, or the webhook's `body_template` expanded over it at each
//!   attempt (with `secret_files` as `$secrets`), so secrets never reach the outbox.
//! - Delivered means a 2xx, or one of `success_codes`; with `success_body_match`, also an
//!   answer whose JSON holds one of the listed values at the pointer (else it failed for good).
//! - Redirects are not followed (a 3xx is a failure, as any non-retryable status), and proxy
//!   environment variables are ignored, as Prometheus does by default.
//!
//! Secrets (bearer token, signing key, configured header values) never appear in logs or in the
//! `Debug` output of this module's types, and neither does the URL (it may carry credentials):
//! logs name the webhook.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use hmac::{Hmac, Mac};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use reqwest::StatusCode;
use sha2::Sha256;
use tokio::sync::{watch, Notify, OwnedSemaphorePermit, Semaphore};

use crate::config::model::{BodyMatch, HttpMethod, WebhookConfig};
use crate::engine::{Event, Notifier};
use crate::store::Store;
use crate::telemetry::Telemetry;

/// Deliveries pending (waiting or retrying) at most, by default; see
/// [`WebhookSender::with_max_pending`].
pub const MAX_PENDING: usize = 10_000;

/// Bytes of a receiver's answer read (and dropped) at most, so that its connection can be
/// reused; a longer body closes the connection instead.
const MAX_DRAINED_BODY: usize = 64 * 1024;

/// One event to deliver to one webhook. The body is the final JSON payload bytes (`extra`
/// merged, `idempotency_key` in it: see [`payload`]).
#[derive(Clone)]
pub struct Delivery {
    /// The webhook's name in the config (`webhooks:` key).
    pub webhook: String,
    /// Sent as `Idempotency-Key` (and `webhook-id` when signing), the same on every retry.
    pub idempotency_key: String,
    pub body: Vec<u8>,
}

impl fmt::Debug for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Delivery")
            .field("webhook", &self.webhook)
            .field("idempotency_key", &self.idempotency_key)
            .field("body", &String::from_utf8_lossy(&self.body))
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("unknown webhook {name:?}")]
    UnknownWebhook { name: String },
    #[error("webhook queue full: {limit} deliveries already pending")]
    QueueFull { limit: usize },
    #[error("the webhook sender is shutting down")]
    ShuttingDown,
    #[error("webhook {name:?}: {message}")]
    InvalidConfig { name: String, message: String },
    #[error("the webhook sender must be created inside a tokio runtime")]
    NoRuntime,
    #[error("building the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
}

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The receiver answered 2xx.
    Success { status: u16 },
    /// Worth another try after this delay (backoff with jitter, or a `Retry-After` when longer,
    /// capped at `max_backoff`): connection errors, timeouts, 5xx and 429.
    Retry { after: Duration, reason: Failure },
    /// Retrying cannot help: a 3xx or 4xx answer (429 aside), or a config this attempt could not
    /// turn into a request.
    GiveUp { reason: Failure },
}

/// Why an attempt failed. Messages never hold the URL or any secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The receiver answered with this status.
    Status(u16),
    /// No complete answer within the webhook's `timeout`.
    Timeout,
    /// Connecting, sending or reading failed (refused, reset, DNS, TLS, ...).
    Transport(String),
    /// The config or delivery cannot make a valid request (bad URL, header, key, a body
    /// template that cannot expand).
    Invalid(String),
    /// A success status whose body does not hold what `success_body_match` asks for.
    Response(String),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Status(status) => write!(f, "HTTP status {status}"),
            Failure::Timeout => f.write_str("timed out"),
            Failure::Transport(message) => f.write_str(message),
            Failure::Invalid(message) => write!(f, "invalid request: {message}"),
            Failure::Response(message) => write!(f, "unexpected answer: {message}"),
        }
    }
}

/// Standard Webhooks signature (<https://www.standardwebhooks.com>):
/// `"v1," + base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}"))`.
pub fn sign(key: &[u8], id: &str, timestamp: u64, body: &[u8]) -> String {
    // HMAC takes keys of any length: `new_from_slice` cannot fail for it.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}

/// The delay before retry number `attempt` (1 after the first failure): `min_backoff` doubled
/// per attempt, capped at `max_backoff`, with equal jitter (half fixed, half random), so it
/// lies in `[b/2, b]` for the capped value `b`.
pub fn backoff(config: &WebhookConfig, attempt: u32) -> Duration {
    let doublings = attempt.saturating_sub(1).min(31);
    let base = config
        .min_backoff
        .saturating_mul(1u32 << doublings)
        .min(config.max_backoff);
    let nanos = u64::try_from(base.as_nanos()).unwrap_or(u64::MAX);
    let half = nanos / 2;
    Duration::from_nanos(nanos - half + fastrand::u64(0..=half))
}

/// Sends webhook deliveries in the background. Cheap to clone: clones share one queue, one HTTP
/// client and one config.
///
/// Reload: [`update`](Self::update) swaps the config; every attempt reads its webhook's config
/// when it starts, so deliveries already retrying pick up a fixed URL or new headers on their
/// next attempt. A delivery whose webhook was removed from the config is dropped (logged at
/// warn, not counted) at its next attempt. A changed `max_connections` resizes the webhook's
/// slots in place, for waiting deliveries too.
#[derive(Clone)]
pub struct WebhookSender {
    inner: Arc<Inner>,
}

struct Inner {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
    webhooks: RwLock<Arc<BTreeMap<String, Arc<WebhookConfig>>>>,
    telemetry: Arc<Telemetry>,
    max_pending: AtomicUsize,
    /// Deliveries accepted and not yet finished (delivered, given up or abandoned).
    pending: AtomicUsize,
    /// Deliveries that ended without success or a definite refusal (shutdown, task dropped).
    abandoned: AtomicUsize,
    /// Notified whenever a delivery finishes.
    finished: Notify,
    phase: watch::Sender<Phase>,
    /// The durable outbox: a delivery is written here before its first attempt and removed
    /// when it settles, so one pending at a crash or shutdown is resumed at the next start.
    outbox: RwLock<Option<Store>>,
    /// Deliveries under way whose outbox write failed (the store was failing), by
    /// idempotency key: written by [`WebhookSender::persist_pending`] once the store works.
    unpersisted: Mutex<BTreeMap<String, Delivery>>,
    /// Settled deliveries whose outbox entry could not be removed yet.
    undeleted: Mutex<Vec<String>>,
    /// Each webhook's connection slots, by name. Kept when a reload removes the webhook (a
    /// few bytes a name), so a name removed and added back keeps one bound.
    slots: Mutex<BTreeMap<String, Arc<Slots>>>,
}

/// Running → Draining (no new deliveries, no more retries; attempts under way go on) →
/// Stopped (attempts under way are cancelled).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    Running,
    Draining,
    Stopped,
}

impl fmt::Debug for WebhookSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Names only: configs hold secrets.
        let names: Vec<String> = self.current_webhooks().keys().cloned().collect();
        f.debug_struct("WebhookSender")
            .field("webhooks", &names)
            .field("pending", &self.pending())
            .finish()
    }
}

impl WebhookSender {
    /// Builds the HTTP client and checks every webhook (URL, header names and values, bearer
    /// token). Must be called inside a tokio runtime: deliveries are spawned onto it, from any
    /// thread.
    pub fn new(
        webhooks: BTreeMap<String, WebhookConfig>,
        telemetry: Arc<Telemetry>,
    ) -> Result<Self, WebhookError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| WebhookError::NoRuntime)?;
        for (name, config) in &webhooks {
            check(name, config)?;
        }
        let client = crate::net::client_builder()
            .redirect(reqwest::redirect::Policy::none())
            // Keep what the slots opened: idle connections are reused, not reopened (webhooks
            // on one host share the host's idle connections).
            .pool_max_idle_per_host(WebhookConfig::MAX_CONNECTIONS_LIMIT)
            .build()
            .map_err(WebhookError::Client)?;
        let (phase, _) = watch::channel(Phase::Running);
        let sender = WebhookSender {
            inner: Arc::new(Inner {
                client,
                runtime,
                webhooks: RwLock::new(Arc::new(BTreeMap::new())),
                telemetry,
                max_pending: AtomicUsize::new(MAX_PENDING),
                pending: AtomicUsize::new(0),
                abandoned: AtomicUsize::new(0),
                finished: Notify::new(),
                phase,
                outbox: RwLock::new(None),
                unpersisted: Mutex::new(BTreeMap::new()),
                undeleted: Mutex::new(Vec::new()),
                slots: Mutex::new(BTreeMap::new()),
            }),
        };
        sender.update(webhooks);
        Ok(sender)
    }

    /// Persists deliveries in `store` from now on (see `Inner::outbox`).
    pub fn set_outbox(&self, store: Store) {
        *self.inner.outbox.write().unwrap_or_else(|e| e.into_inner()) = Some(store);
    }

    fn outbox(&self) -> Option<Store> {
        self.inner
            .outbox
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Resumes the deliveries a previous run left in the outbox; returns how many. They queue
    /// for their webhook's connection slots like new deliveries (in the outbox's key order), so
    /// thousands resumed at once open no more than `max_connections` connections per webhook,
    /// and each one's backoff starts only when its own attempt ended.
    pub fn resume_from_outbox(&self) -> Result<usize, crate::store::StoreError> {
        let Some(store) = self.outbox() else {
            return Ok(0);
        };
        let mut n = 0;
        for (key, record) in store.deliveries()? {
            let delivery = decode_delivery(&record)
                .map_err(|e| store.corrupt("outbox", format!("delivery {key}: {e}")))?;
            match self.resume(delivery) {
                Ok(()) => n += 1,
                Err(e) => {
                    tracing::error!(idempotency_key = %key, error = %e, "stored delivery not resumed; it stays in the outbox")
                }
            }
        }
        Ok(n)
    }

    /// Sets how many deliveries may be pending at once (default [`MAX_PENDING`]).
    pub fn with_max_pending(self, limit: usize) -> Self {
        self.inner.max_pending.store(limit, Ordering::Relaxed);
        self
    }

    /// Swaps in a reloaded config. New deliveries use it, and so do the next attempts of the
    /// deliveries already under way (see the type's doc). A webhook that fails the checks of
    /// [`new`](Self::new) is logged at error; its deliveries give up on their first attempt.
    pub fn update(&self, webhooks: BTreeMap<String, WebhookConfig>) {
        let mut map = BTreeMap::new();
        let mut slots = lock(&self.inner.slots);
        for (name, config) in webhooks {
            if let Err(error) = check(&name, &config) {
                tracing::error!(webhook = %name, %error, "webhook config cannot be used");
            }
            match slots.get(&name) {
                Some(existing) => existing.resize(config.max_connections),
                None => {
                    slots.insert(name.clone(), Arc::new(Slots::new(config.max_connections)));
                }
            }
            for outcome in ["success", "failure"] {
                self.inner
                    .telemetry
                    .webhook_requests
                    .add(&name, outcome, 0.0);
            }
            map.insert(name, Arc::new(config));
        }
        drop(slots);
        *self
            .inner
            .webhooks
            .write()
            .unwrap_or_else(|e| e.into_inner()) = Arc::new(map);
    }

    /// Queues a delivery and returns at once: it never blocks and never awaits. The delivery is
    /// attempted in its own task, retried until it succeeds, is refused for good, or the sender
    /// shuts down.
    ///
    /// Refused (and logged at error) when the webhook is not in the config, when the sender is
    /// shutting down, or when the queue is full: at most [`MAX_PENDING`] deliveries (or the
    /// [`with_max_pending`](Self::with_max_pending) limit) wait or retry at once. A refused
    /// delivery to a known webhook counts as a failure in `driftgauge_webhook_requests_total`.
    pub fn enqueue(&self, delivery: Delivery) -> Result<(), WebhookError> {
        self.enqueue_batch(vec![delivery])
            .pop()
            .unwrap_or(Err(WebhookError::ShuttingDown))
    }

    /// [`enqueue`](Self::enqueue) for several deliveries, written to the outbox in one
    /// transaction. One result per delivery, in order.
    pub fn enqueue_batch(&self, deliveries: Vec<Delivery>) -> Vec<Result<(), WebhookError>> {
        let admitted: Vec<Result<Delivery, WebhookError>> =
            deliveries.into_iter().map(|d| self.admit(d)).collect();
        let outbox = self.outbox();
        if let Some(store) = &outbox {
            let records: Vec<(&str, Vec<u8>)> = admitted
                .iter()
                .flatten()
                .map(|d| (d.idempotency_key.as_str(), encode_delivery(d)))
                .collect();
            if !records.is_empty() {
                if let Err(error) = store.put_deliveries(&records) {
                    // Still attempted, and kept to be written once the store works (the
                    // store logs the failing episode once).
                    tracing::warn!(deliveries = records.len(), %error, "deliveries not in the outbox yet; written once the store works");
                    let mut unpersisted = lock(&self.inner.unpersisted);
                    for d in admitted.iter().flatten() {
                        unpersisted.insert(d.idempotency_key.clone(), d.clone());
                    }
                }
            }
        }
        admitted
            .into_iter()
            .map(|d| d.map(|d| self.start(d, outbox.clone())))
            .collect()
    }

    /// Writes the deliveries under way that are not in the outbox yet (their write failed)
    /// and removes the entries of settled ones that could not be removed: what a failing store
    /// left undone. Returns how many deliveries it wrote. Called on every state flush.
    pub fn persist_pending(&self) -> Result<usize, crate::store::StoreError> {
        let Some(store) = self.outbox() else {
            return Ok(0);
        };
        // Held while writing: a delivery that settles meanwhile waits, then finds itself
        // written and removes its entry.
        let mut unpersisted = lock(&self.inner.unpersisted);
        let written = unpersisted.len();
        if written > 0 {
            let records: Vec<(&str, Vec<u8>)> = unpersisted
                .values()
                .map(|d| (d.idempotency_key.as_str(), encode_delivery(d)))
                .collect();
            store.put_deliveries(&records)?;
            unpersisted.clear();
            tracing::info!(deliveries = written, "deliveries written to the outbox");
        }
        drop(unpersisted);
        let undeleted = std::mem::take(&mut *lock(&self.inner.undeleted));
        for (i, key) in undeleted.iter().enumerate() {
            if let Err(e) = store.delete_delivery(key) {
                lock(&self.inner.undeleted).extend(undeleted[i..].iter().cloned());
                return Err(e);
            }
        }
        Ok(written)
    }

    /// Deliveries under way that are not in the outbox yet.
    pub fn unpersisted(&self) -> usize {
        lock(&self.inner.unpersisted).len()
    }

    /// Resumes one delivery read back from the outbox (already persisted).
    fn resume(&self, delivery: Delivery) -> Result<(), WebhookError> {
        let delivery = self.admit(delivery)?;
        self.start(delivery, self.outbox());
        Ok(())
    }

    /// Takes a place in the queue for `delivery`, or refuses it.
    fn admit(&self, delivery: Delivery) -> Result<Delivery, WebhookError> {
        let inner = &self.inner;
        if !self.current_webhooks().contains_key(&delivery.webhook) {
            tracing::error!(
                webhook = %delivery.webhook,
                idempotency_key = %delivery.idempotency_key,
                "delivery dropped: unknown webhook"
            );
            return Err(WebhookError::UnknownWebhook {
                name: delivery.webhook,
            });
        }
        if *inner.phase.borrow() != Phase::Running {
            self.refuse(&delivery, "the webhook sender is shutting down");
            return Err(WebhookError::ShuttingDown);
        }
        let limit = inner.max_pending.load(Ordering::Relaxed);
        let reserved = inner
            .pending
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            });
        if reserved.is_err() {
            self.refuse(&delivery, "the webhook queue is full");
            return Err(WebhookError::QueueFull { limit });
        }
        inner
            .telemetry
            .webhook_queue_length
            .fetch_add(1, Ordering::Relaxed);
        Ok(delivery)
    }

    /// Starts the task of an admitted delivery.
    fn start(&self, delivery: Delivery, outbox: Option<Store>) {
        let inner = &self.inner;
        let guard = Pending {
            inner: Arc::clone(inner),
            settled: false,
            outbox: outbox.map(|s| (s, delivery.idempotency_key.clone())),
        };
        tracing::debug!(
            webhook = %delivery.webhook,
            idempotency_key = %delivery.idempotency_key,
            "delivery queued"
        );
        inner.runtime.spawn(self.clone().deliver(delivery, guard));
    }

    /// Deliveries waiting or retrying.
    pub fn pending(&self) -> usize {
        self.inner.pending.load(Ordering::Acquire)
    }

    /// Stops the sender: no new deliveries, no more retries (deliveries waiting for a retry are
    /// abandoned at once); attempts under way may finish for up to `grace`, then are cancelled.
    /// Logs how many deliveries ended undelivered. Returns within `grace` (plus the moment the
    /// cancelled tasks take to unwind).
    pub async fn shutdown(&self, grace: Duration) {
        let inner = &self.inner;
        inner.phase.send_replace(Phase::Draining);
        let deadline = tokio::time::Instant::now() + grace;
        let drained = self.wait_idle(deadline).await;
        if !drained {
            inner.phase.send_replace(Phase::Stopped);
            // Cancelled tasks drop at their next poll; bound the wait all the same.
            self.wait_idle(tokio::time::Instant::now() + Duration::from_millis(500))
                .await;
        }
        let abandoned = inner.abandoned.load(Ordering::Acquire);
        let still_running = self.pending();
        if abandoned + still_running > 0 {
            tracing::warn!(
                abandoned,
                still_running,
                "webhook sender stopped with deliveries undelivered"
            );
        } else {
            tracing::info!("webhook sender stopped, nothing pending");
        }
    }

    /// One attempt of `delivery` with `config`, without counting, logging or sleeping (the
    /// durable outbox wraps this). `attempt` is 1 for the first try and sizes the backoff of a
    /// `Retry`. It connects only with a slot of the delivery's webhook in hand, held until the
    /// attempt ends.
    async fn attempt(
        &self,
        _slot: &Slot,
        delivery: &Delivery,
        config: &WebhookConfig,
        attempt: u32,
    ) -> Outcome {
        let request = match build_request(&self.inner.client, delivery, config, unix_now()) {
            Ok(request) => request,
            Err(message) => {
                return Outcome::GiveUp {
                    reason: Failure::Invalid(message),
                }
            }
        };
        match request.send().await {
            Ok(mut response) => {
                let outcome = classify(response.status(), response.headers(), config, attempt);
                let check = match (&outcome, &config.success_body_match) {
                    (Outcome::Success { .. }, Some(m)) => Some(m),
                    _ => None,
                };
                // Read to the end (within the request's timeout) so the connection goes back
                // to the pool; a long or broken body only costs the connection. Kept only
                // when it is to be checked.
                let mut body = Vec::new();
                let mut left = MAX_DRAINED_BODY;
                let mut complete = false;
                loop {
                    match response.chunk().await {
                        Ok(Some(chunk)) => {
                            if check.is_some() && left >= chunk.len() {
                                body.extend_from_slice(&chunk);
                            }
                            left = left.saturating_sub(chunk.len());
                            if left == 0 {
                                break;
                            }
                        }
                        Ok(None) => {
                            complete = true;
                            break;
                        }
                        Err(_) => break,
                    }
                }
                match check {
                    Some(m) if !complete => Outcome::GiveUp {
                        reason: Failure::Response(format!(
                            "the answer's body could not be read whole (at most {MAX_DRAINED_BODY} bytes) to check {}",
                            m.json_pointer
                        )),
                    },
                    Some(m) => match body_matches(m, &body) {
                        Ok(()) => outcome,
                        Err(message) => Outcome::GiveUp {
                            reason: Failure::Response(message),
                        },
                    },
                    None => outcome,
                }
            }
            Err(error) if error.is_builder() => Outcome::GiveUp {
                reason: Failure::Invalid(crate::net::error_chain(&error.without_url())),
            },
            Err(error) => Outcome::Retry {
                after: backoff(config, attempt),
                reason: if error.is_timeout() {
                    Failure::Timeout
                } else {
                    Failure::Transport(crate::net::error_chain(&error.without_url()))
                },
            },
        }
    }

    /// A delivery's task: wait for a connection slot, attempt, count, log, back off, until it
    /// settles or the sender stops. Waiting for a slot or backing off, it stops at `Draining`
    /// (and stays in the outbox); an attempt under way goes on until `Stopped`.
    async fn deliver(self, delivery: Delivery, mut guard: Pending) {
        let inner = &self.inner;
        let mut phase = inner.phase.subscribe();
        let name = delivery.webhook.as_str();
        let key = delivery.idempotency_key.as_str();
        let slots = self.slots(name);
        let mut attempt: u32 = 1;
        loop {
            let slot = tokio::select! {
                biased;
                () = reached(&mut phase, Phase::Draining) => return,
                slot = slots.acquire() => slot,
            };
            // Read with the slot in hand: a reload during a long wait applies to this attempt.
            let Some(config) = self.current_webhooks().get(name).cloned() else {
                tracing::warn!(
                    webhook = name,
                    idempotency_key = key,
                    attempt,
                    "delivery dropped: webhook removed from the config"
                );
                guard.settled = true;
                return;
            };
            let outcome = tokio::select! {
                outcome = self.attempt(&slot, &delivery, &config, attempt) => outcome,
                () = reached(&mut phase, Phase::Stopped) => return,
            };
            // Free for the next delivery before logging or backing off.
            drop(slot);
            let counted = if matches!(outcome, Outcome::Success { .. }) {
                "success"
            } else {
                "failure"
            };
            inner.telemetry.webhook_requests.add(name, counted, 1.0);
            match outcome {
                Outcome::Success { status } => {
                    tracing::info!(
                        webhook = name,
                        idempotency_key = key,
                        attempt,
                        status,
                        "webhook delivered"
                    );
                    guard.settled = true;
                    return;
                }
                Outcome::GiveUp { reason } => {
                    tracing::error!(
                        webhook = name,
                        idempotency_key = key,
                        attempt,
                        error = %reason,
                        "webhook delivery failed, not retrying"
                    );
                    guard.settled = true;
                    return;
                }
                Outcome::Retry { after, reason } => {
                    if *phase.borrow() != Phase::Running {
                        return;
                    }
                    tracing::warn!(
                        webhook = name,
                        idempotency_key = key,
                        attempt,
                        error = %reason,
                        retry_in_ms = u64::try_from(after.as_millis()).unwrap_or(u64::MAX),
                        "webhook attempt failed, will retry"
                    );
                    tokio::select! {
                        () = tokio::time::sleep(after) => {}
                        () = reached(&mut phase, Phase::Draining) => return,
                    }
                    attempt = attempt.saturating_add(1);
                }
            }
        }
    }

    /// The connection slots of webhook `name` (made with the default size for a name no
    /// config named, which `admit` does not let through).
    fn slots(&self, name: &str) -> Arc<Slots> {
        let mut slots = lock(&self.inner.slots);
        Arc::clone(
            slots
                .entry(name.to_string())
                .or_insert_with(|| Arc::new(Slots::new(WebhookConfig::DEFAULT_MAX_CONNECTIONS))),
        )
    }

    fn current_webhooks(&self) -> Arc<BTreeMap<String, Arc<WebhookConfig>>> {
        Arc::clone(
            &self
                .inner
                .webhooks
                .read()
                .unwrap_or_else(|e| e.into_inner()),
        )
    }

    fn refuse(&self, delivery: &Delivery, why: &str) {
        tracing::error!(
            webhook = %delivery.webhook,
            idempotency_key = %delivery.idempotency_key,
            "delivery dropped: {why}"
        );
        self.inner
            .telemetry
            .webhook_requests
            .add(&delivery.webhook, "failure", 1.0);
    }

    /// Waits until no delivery is pending or `deadline` passes; true when none is pending.
    async fn wait_idle(&self, deadline: tokio::time::Instant) -> bool {
        loop {
            let notified = self.inner.finished.notified();
            if self.pending() == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.pending() == 0;
            }
        }
    }
}

/// One pending delivery: finishing it (or dropping its task) frees its slot and updates the
/// queue gauge, so both tell the truth even when a task is cancelled.
struct Pending {
    inner: Arc<Inner>,
    /// Delivered or refused for good; otherwise it ends abandoned.
    settled: bool,
    /// The outbox entry to remove once the delivery settles.
    outbox: Option<(Store, String)>,
}

impl Drop for Pending {
    fn drop(&mut self) {
        if !self.settled {
            self.inner.abandoned.fetch_add(1, Ordering::AcqRel);
        } else if let Some((store, key)) = self.outbox.take() {
            // Settled for good: the outbox entry goes, unless it was never written (off the
            // async workers: it fsyncs).
            if lock(&self.inner.unpersisted).remove(&key).is_none() {
                let inner = Arc::clone(&self.inner);
                self.inner.runtime.spawn_blocking(move || {
                    if let Err(error) = store.delete_delivery(&key) {
                        tracing::warn!(idempotency_key = %key, %error, "settled delivery not removed from the outbox yet; retried at the next flush");
                        lock(&inner.undeleted).push(key);
                    }
                });
            }
        }
        self.inner
            .telemetry
            .webhook_queue_length
            .fetch_sub(1, Ordering::Relaxed);
        self.inner.pending.fetch_sub(1, Ordering::AcqRel);
        self.inner.finished.notify_waiters();
    }
}

/// One webhook's connection slots: `max_connections` permits of a semaphore, so at most that
/// many attempts to the webhook are in flight, each on one connection (HTTP/1). tokio's
/// semaphore is fair: deliveries get a slot in the order they asked for one.
///
/// A reload resizes the slots in place, so deliveries already waiting see the new bound: more
/// slots are added at once; fewer take free permits away and forget as many of the permits
/// still out as are missing when they come back.
struct Slots {
    semaphore: Arc<Semaphore>,
    /// `(size, owed)`: the bound, and how many permits still out are forgotten on return.
    size: Mutex<(usize, usize)>,
}

/// A slot held: an attempt may connect. Dropping it gives the slot back.
struct Slot {
    slots: Arc<Slots>,
    permit: Option<OwnedSemaphorePermit>,
}

impl Slots {
    fn new(size: usize) -> Slots {
        Slots {
            semaphore: Arc::new(Semaphore::new(size)),
            size: Mutex::new((size, 0)),
        }
    }

    fn resize(&self, to: usize) {
        let mut size = lock(&self.size);
        let (from, owed) = *size;
        if to > from {
            let paid = (to - from).min(owed);
            self.semaphore.add_permits(to - from - paid);
            *size = (to, owed - paid);
        } else if to < from {
            let forgotten = self.semaphore.forget_permits(from - to);
            *size = (to, owed + (from - to - forgotten));
        }
    }

    async fn acquire(self: &Arc<Self>) -> Slot {
        let permit = Arc::clone(&self.semaphore).acquire_owned().await;
        // The semaphore is never closed, so `acquire_owned` cannot fail.
        let permit = permit.expect("webhook slots are never closed");
        Slot {
            slots: Arc::clone(self),
            permit: Some(permit),
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        // Given back (or forgotten) under the lock, so a resize never counts it twice.
        let mut size = lock(&self.slots.size);
        if let Some(permit) = self.permit.take() {
            if size.1 > 0 {
                size.1 -= 1;
                permit.forget();
            } else {
                drop(permit);
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Resolves once the phase is at least `target`.
async fn reached(phase: &mut watch::Receiver<Phase>, target: Phase) {
    // The sender lives in `Inner`, which the caller keeps alive: `wait_for` cannot fail on a
    // closed channel; were it to, stopping is the safe reading.
    let _ = phase.wait_for(|p| *p >= target).await;
}

/// What `new` and `update` check, so that a bad config shows at load rather than at the first
/// drift.
fn check(name: &str, config: &WebhookConfig) -> Result<(), WebhookError> {
    let invalid = |message: String| WebhookError::InvalidConfig {
        name: name.to_string(),
        message,
    };
    parse_url(&config.url).map_err(invalid)?;
    config_headers(config).map_err(invalid)?;
    if let Some(token) = &config.bearer_token {
        bearer(token).map_err(invalid)?;
    }
    Ok(())
}

fn parse_url(url: &str) -> Result<reqwest::Url, String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("invalid url: {e}"))?;
    match parsed.scheme() {
        "http" | "https" => Ok(parsed),
        other => Err(format!("url scheme must be http or https, not {other:?}")),
    }
}

fn config_headers(config: &WebhookConfig) -> Result<HeaderMap, String> {
    let mut headers = HeaderMap::new();
    for (name, value) in &config.headers {
        let header = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("invalid header name {name:?}"))?;
        // The value may be a credential: name the header only.
        let mut value = HeaderValue::from_str(value)
            .map_err(|_| format!("invalid value for header {name:?}"))?;
        value.set_sensitive(true);
        headers.insert(header, value);
    }
    Ok(headers)
}

fn bearer(token: &str) -> Result<HeaderValue, String> {
    let mut value = HeaderValue::from_str(&format!("Bearer {}", token.trim()))
        .map_err(|_| "bearer token is not a valid header value".to_string())?;
    value.set_sensitive(true);
    Ok(value)
}

fn build_request(
    client: &reqwest::Client,
    delivery: &Delivery,
    config: &WebhookConfig,
    timestamp: u64,
) -> Result<reqwest::RequestBuilder, String> {
    let url = parse_url(&config.url)?;
    let body = request_body(delivery, config)?;
    let mut headers = config_headers(config)?;
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let key = HeaderValue::from_str(&delivery.idempotency_key)
        .map_err(|_| "idempotency key is not a valid header value".to_string())?;
    headers.insert(HeaderName::from_static("idempotency-key"), key.clone());
    if let Some(token) = &config.bearer_token {
        headers.insert(AUTHORIZATION, bearer(token)?);
    }
    if let Some(signing_key) = &config.signing_key {
        let signature = sign(signing_key, &delivery.idempotency_key, timestamp, &body);
        headers.insert(HeaderName::from_static("webhook-id"), key);
        headers.insert(
            HeaderName::from_static("webhook-timestamp"),
            HeaderValue::from(timestamp),
        );
        // "v1," and base64 only: always a valid header value.
        let signature = HeaderValue::from_str(&signature)
            .map_err(|_| "signature is not a valid header value".to_string())?;
        headers.insert(HeaderName::from_static("webhook-signature"), signature);
    }
    let method = match config.method {
        HttpMethod::Post => reqwest::Method::POST,
        HttpMethod::Put => reqwest::Method::PUT,
        HttpMethod::Patch => reqwest::Method::PATCH,
    };
    Ok(client
        .request(method, url)
        .headers(headers)
        .timeout(config.timeout)
        .body(body))
}

/// The bytes to send: the payload, or the webhook's `body_template` expanded over it (at each
/// attempt, so secrets never reach the outbox and a reload's template applies to deliveries
/// still pending).
fn request_body(delivery: &Delivery, config: &WebhookConfig) -> Result<Vec<u8>, String> {
    let Some(template) = &config.body_template else {
        return Ok(delivery.body.clone());
    };
    let payload: serde_json::Value = serde_json::from_slice(&delivery.body)
        .map_err(|e| format!("the stored payload is not JSON: {e}"))?;
    let body = template
        .render(&payload, &config.secrets)
        .map_err(|e| format!("body_template: {e}"))?;
    Ok(body.to_string().into_bytes())
}

/// Does the answer hold what `success_body_match` asks for? The error says what it held.
fn body_matches(m: &BodyMatch, body: &[u8]) -> Result<(), String> {
    let json: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
        format!(
            "the answer is not JSON ({e}), so {} cannot be checked",
            m.json_pointer
        )
    })?;
    let found = match json.pointer(&m.json_pointer) {
        None => return Err(format!("the answer has no {}", m.json_pointer)),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    if m.one_of.contains(&found) {
        Ok(())
    } else {
        let clipped: String = found.chars().take(128).collect();
        Err(format!(
            "{} is {clipped:?}, not one of {}",
            m.json_pointer,
            m.one_of.join(", ")
        ))
    }
}

/// Success on 2xx, or on the webhook's `success_codes` when it lists them (e.g. 409 for a run
/// that already exists); otherwise retry on 429 and 5xx (after a `Retry-After` in seconds on
/// 429/503 when it is longer than the backoff, capped at `max_backoff`); give up on anything
/// else.
fn classify(
    status: StatusCode,
    headers: &HeaderMap,
    config: &WebhookConfig,
    attempt: u32,
) -> Outcome {
    let success = if config.success_codes.is_empty() {
        status.is_success()
    } else {
        config.success_codes.contains(&status.as_u16())
    };
    if success {
        return Outcome::Success {
            status: status.as_u16(),
        };
    }
    let reason = Failure::Status(status.as_u16());
    if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
        let mut after = backoff(config, attempt);
        if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE {
            if let Some(asked) = retry_after(headers) {
                after = after.max(asked.min(config.max_backoff));
            }
        }
        return Outcome::Retry { after, reason };
    }
    Outcome::GiveUp { reason }
}

/// `Retry-After` as delay-seconds; the HTTP-date form is ignored (the backoff applies).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The outbox record of a delivery.
fn encode_delivery(d: &Delivery) -> Vec<u8> {
    let mut w = crate::store::codec::Writer::default();
    w.u8(1)
        .str(&d.webhook)
        .str(&d.idempotency_key)
        .bytes(&d.body);
    w.buf
}

fn decode_delivery(bytes: &[u8]) -> Result<Delivery, crate::store::codec::DecodeError> {
    let mut r = crate::store::codec::Reader::new(bytes);
    if r.u8("version")? != 1 {
        return Err(crate::store::codec::DecodeError {
            at: 0,
            what: "unknown delivery record version",
        });
    }
    let webhook = r.string("webhook")?;
    let idempotency_key = r.string("idempotency key")?;
    let body = r.bytes("body")?.to_vec();
    r.finish()?;
    Ok(Delivery {
        webhook,
        idempotency_key,
        body,
    })
}

impl Notifier for WebhookSender {
    fn configure(&self, webhooks: &BTreeMap<String, WebhookConfig>) {
        self.update(webhooks.clone());
    }

    /// One delivery per event and webhook, all written to the outbox in one transaction.
    fn notify(&self, events: &[Event]) -> Vec<Vec<bool>> {
        let webhooks = self.current_webhooks();
        let mut deliveries = Vec::new();
        let mut shape = Vec::with_capacity(events.len());
        for event in events {
            shape.push(event.webhooks.len());
            for name in &event.webhooks {
                // Derived from the event, so every replica sends the same one.
                let idempotency_key = event.idempotency_key(name);
                let extra = webhooks.get(name).and_then(|w| w.extra.as_ref());
                deliveries.push(Delivery {
                    webhook: name.clone(),
                    body: payload(event, &idempotency_key, extra),
                    idempotency_key,
                });
            }
        }
        let mut results = self.enqueue_batch(deliveries).into_iter();
        shape
            .into_iter()
            .map(|n| results.by_ref().take(n).map(|r| r.is_ok()).collect())
            .collect()
    }
}

/// The webhook payload of `event` (DESIGN.md's "Webhook payload"), with `extra` merged in.
pub fn payload(
    event: &Event,
    idempotency_key: &str,
    extra: Option<&serde_json::Map<String, serde_json::Value>>,
) -> Vec<u8> {
    let mut payload = serde_json::json!({
        "version": "1",
        "status": event.to.as_str(),
        "previous_status": event.from.as_str(),
        "rule": event.rule,
        "group": event.group,
        "detector": event.detector,
        "labels": event.labels,
        "annotations": event.annotations,
        "statistic": event.statistic,
        "p_value": event.p_value,
        "value": event.value,
        "starts_at": crate::time::rfc3339(event.at_ms),
        "idempotency_key": idempotency_key,
    });
    if let (Some(replica), Some(obj)) = (&event.replica, payload.as_object_mut()) {
        obj.insert("replica".into(), serde_json::Value::String(replica.clone()));
    }
    if let (Some(extra), Some(obj)) = (extra, payload.as_object_mut()) {
        obj.insert("extra".into(), serde_json::Value::Object(extra.clone()));
    }
    payload.to_string().into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(min: u64, max: u64) -> WebhookConfig {
        WebhookConfig {
            url: "http://127.0.0.1:1/".to_string(),
            timeout: Duration::from_secs(1),
            headers: BTreeMap::new(),
            bearer_token: None,
            signing_key: None,
            send_resolved: false,
            cooldown: Duration::ZERO,
            extra: None,
            min_backoff: Duration::from_millis(min),
            max_backoff: Duration::from_millis(max),
            max_connections: WebhookConfig::DEFAULT_MAX_CONNECTIONS,
            method: Default::default(),
            body_template: None,
            success_codes: Vec::new(),
            success_body_match: None,
            secrets: Default::default(),
        }
    }

    #[test]
    fn backoff_doubles_within_equal_jitter_and_caps() {
        let c = config(100, 1_000);
        for _ in 0..200 {
            for (attempt, base) in [
                (1, 100),
                (2, 200),
                (3, 400),
                (4, 800),
                (5, 1_000),
                (60, 1_000),
            ] {
                let d = backoff(&c, attempt);
                assert!(
                    d >= Duration::from_millis(base / 2) && d <= Duration::from_millis(base),
                    "attempt {attempt}: {d:?} outside [{}ms, {base}ms]",
                    base / 2
                );
            }
        }
    }

    #[test]
    fn retry_after_is_honoured_on_429_and_503_only_and_capped() {
        let c = config(10, 2_000);
        let mut headers = HeaderMap::new();
        headers.insert(reqwest::header::RETRY_AFTER, HeaderValue::from_static("1"));
        for status in [429, 503] {
            let outcome = classify(StatusCode::from_u16(status).unwrap(), &headers, &c, 1);
            let Outcome::Retry { after, .. } = outcome else {
                panic!("{status}: {outcome:?}");
            };
            assert_eq!(after, Duration::from_secs(1), "{status}");
        }
        let Outcome::Retry { after, .. } = classify(StatusCode::BAD_GATEWAY, &headers, &c, 1)
        else {
            panic!("502 should be retried");
        };
        assert!(after <= Duration::from_millis(10));
        headers.insert(
            reqwest::header::RETRY_AFTER,
            HeaderValue::from_static("3600"),
        );
        let Outcome::Retry { after, .. } = classify(StatusCode::TOO_MANY_REQUESTS, &headers, &c, 1)
        else {
            panic!("429 should be retried");
        };
        assert_eq!(after, Duration::from_secs(2));
    }

    #[test]
    fn statuses_classify() {
        let c = config(10, 20);
        let h = HeaderMap::new();
        let class = |s: u16| match classify(StatusCode::from_u16(s).unwrap(), &h, &c, 1) {
            Outcome::Success { .. } => "success",
            Outcome::Retry { .. } => "retry",
            Outcome::GiveUp { .. } => "give up",
        };
        for (status, want) in [
            (200, "success"),
            (204, "success"),
            (301, "give up"),
            (400, "give up"),
            (404, "give up"),
            (408, "give up"),
            (429, "retry"),
            (500, "retry"),
            (503, "retry"),
        ] {
            assert_eq!(class(status), want, "status {status}");
        }
    }

    #[tokio::test]
    async fn slots_resize_in_place_with_permits_out() {
        let slots = Arc::new(Slots::new(4));
        let free = |slots: &Slots| slots.semaphore.available_permits();
        let mut held = Vec::new();
        for _ in 0..4 {
            held.push(slots.acquire().await);
        }
        assert_eq!(free(&slots), 0);
        // Down to 2 with all 4 out: the next two given back are forgotten.
        slots.resize(2);
        held.truncate(2);
        assert_eq!(free(&slots), 0);
        held.truncate(1);
        assert_eq!(free(&slots), 1);
        // Up to 5: one out, four free.
        slots.resize(5);
        assert_eq!(free(&slots), 4);
        held.clear();
        assert_eq!(free(&slots), 5);
        // Down with free permits: taken away at once.
        slots.resize(1);
        assert_eq!(free(&slots), 1);
    }

    #[tokio::test]
    async fn slots_owed_are_paid_before_new_ones_are_added() {
        let slots = Arc::new(Slots::new(3));
        let held = [
            slots.acquire().await,
            slots.acquire().await,
            slots.acquire().await,
        ];
        slots.resize(1); // owes 2
        slots.resize(2); // owes 1, adds none
        assert_eq!(slots.semaphore.available_permits(), 0);
        drop(held);
        assert_eq!(slots.semaphore.available_permits(), 2);
    }

    #[test]
    fn debug_output_holds_no_secret() {
        let mut c = config(10, 20);
        c.bearer_token = Some("s3cr3t-token".into());
        c.headers.insert("X-Api-Key".into(), "s3cr3t-header".into());
        let delivery = Delivery {
            webhook: "w".into(),
            idempotency_key: "k".into(),
            body: b"{}".to_vec(),
        };
        let headers = config_headers(&c).unwrap();
        let text = format!(
            "{delivery:?} {headers:?} {:?}",
            bearer("s3cr3t-token").unwrap()
        );
        assert!(!text.contains("s3cr3t"), "{text}");
    }
}
