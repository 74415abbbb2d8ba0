//! The webhook sender against real receivers on loopback: retries, give-ups, signing, timeouts,
//! refused connections, shutdown, reload and the queue bound.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use driftgauge::config::model::WebhookConfig;
use driftgauge::output::webhook::{sign, Delivery, WebhookError, WebhookSender};
use driftgauge::telemetry::Telemetry;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::receiver::{Receiver, Reply, Request, Script};

const WAIT: Duration = Duration::from_secs(10);

fn config(url: &str) -> WebhookConfig {
    WebhookConfig {
        url: url.to_string(),
        timeout: Duration::from_secs(5),
        headers: BTreeMap::new(),
        bearer_token: None,
        signing_key: None,
        send_resolved: false,
        cooldown: Duration::ZERO,
        extra: None,
        min_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(100),
        max_connections: WebhookConfig::DEFAULT_MAX_CONNECTIONS,
    }
}

fn sender(webhooks: Vec<(&str, WebhookConfig)>) -> (WebhookSender, Arc<Telemetry>) {
    let telemetry = Arc::new(Telemetry::default());
    let webhooks = webhooks
        .into_iter()
        .map(|(name, config)| (name.to_string(), config))
        .collect();
    let sender = WebhookSender::new(webhooks, Arc::clone(&telemetry)).expect("webhook sender");
    (sender, telemetry)
}

fn delivery(webhook: &str, key: &str) -> Delivery {
    let body = serde_json::json!({"version": "1", "status": "drifted", "idempotency_key": key});
    Delivery {
        webhook: webhook.to_string(),
        idempotency_key: key.to_string(),
        body: serde_json::to_vec(&body).expect("serialize a JSON literal"),
    }
}

/// Polls `condition` until it holds; panics naming `what` after `WAIT`.
#[track_caller]
fn eventually(what: &str, condition: impl Fn() -> bool) -> impl std::future::Future<Output = ()> {
    let caller = std::panic::Location::caller();
    let what = what.to_string();
    async move {
        let deadline = Instant::now() + WAIT;
        while !condition() {
            assert!(
                Instant::now() < deadline,
                "{caller}: waited {WAIT:?} for {what}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

fn counts(telemetry: &Telemetry, webhook: &str) -> (f64, f64) {
    (
        telemetry.webhook_requests.get(webhook, "success"),
        telemetry.webhook_requests.get(webhook, "failure"),
    )
}

/// A port nothing listens on: bound, then released.
fn closed_port_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local address");
    drop(listener);
    format!("http://{addr}/retrain")
}

#[tokio::test]
async fn server_errors_are_retried_with_the_same_idempotency_key() {
    let receiver = Receiver::start(Script::statuses([500, 500])).await;
    let (sender, telemetry) = sender(vec![("retrain", config(&receiver.url("/retrain")))]);
    let sent = delivery("retrain", "key-1");
    sender.enqueue(sent.clone()).expect("enqueue");
    eventually("the delivery to finish", || sender.pending() == 0).await;

    let requests = receiver.requests();
    assert_eq!(
        requests.iter().map(|r| r.status).collect::<Vec<_>>(),
        [500, 500, 200]
    );
    for request in &requests {
        assert_eq!(request.method, "POST");
        assert_eq!(request.path, "/retrain");
        assert_eq!(request.header("idempotency-key"), Some("key-1"));
        assert_eq!(request.header("content-type"), Some("application/json"));
        let agent = format!("driftgauge/{}", env!("CARGO_PKG_VERSION"));
        assert_eq!(request.header("user-agent"), Some(agent.as_str()));
        assert_eq!(request.body, sent.body);
        assert_eq!(request.header("authorization"), None);
        assert_eq!(request.header("webhook-signature"), None);
    }
    assert_eq!(counts(&telemetry, "retrain"), (1.0, 2.0));
    assert_eq!(telemetry.queue_len(), 0);
}

#[tokio::test]
async fn client_errors_and_redirects_are_not_retried() {
    let healthy = Receiver::start(Script::ok()).await;
    let bad = Receiver::start(Script::statuses([400])).await;
    let moved = Receiver::start(Script::replies([
        Reply::status(301).header("location", &healthy.url("/moved-here"))
    ]))
    .await;
    let (sender, telemetry) = sender(vec![
        ("bad", config(&bad.url("/"))),
        ("moved", config(&moved.url("/"))),
    ]);
    sender.enqueue(delivery("bad", "k-bad")).expect("enqueue");
    sender
        .enqueue(delivery("moved", "k-moved"))
        .expect("enqueue");
    // Finished deliveries cannot retry any more: no need to wait "long enough".
    eventually("both deliveries to finish", || sender.pending() == 0).await;

    assert_eq!(bad.requests().len(), 1);
    assert_eq!(moved.requests().len(), 1);
    assert!(healthy.requests().is_empty(), "the redirect was followed");
    assert_eq!(counts(&telemetry, "bad"), (0.0, 1.0));
    assert_eq!(counts(&telemetry, "moved"), (0.0, 1.0));
    assert_eq!(telemetry.queue_len(), 0);
}

#[tokio::test]
async fn too_many_requests_is_retried_after_retry_after_capped_at_max_backoff() {
    let receiver = Receiver::start(Script::replies([
        Reply::status(429).header("retry-after", "1"),
        Reply::status(429),
    ]))
    .await;
    let mut cfg = config(&receiver.url("/"));
    cfg.max_backoff = Duration::from_millis(300);
    let (sender, telemetry) = sender(vec![("retrain", cfg)]);
    sender.enqueue(delivery("retrain", "k")).expect("enqueue");

    let requests = receiver.wait_for(3, WAIT).await;
    eventually("the delivery to finish", || sender.pending() == 0).await;
    assert_eq!(
        receiver
            .requests()
            .iter()
            .map(|r| r.status)
            .collect::<Vec<_>>(),
        [429, 429, 200]
    );
    // Retry-After: 1 asks for 1s, capped at max_backoff (300ms); the backoff alone would be
    // at most 20ms.
    let gap = requests[1].received_at - requests[0].received_at;
    assert!(gap >= Duration::from_millis(280), "retried after {gap:?}");
    assert_eq!(counts(&telemetry, "retrain"), (1.0, 2.0));
}

/// What a receiver holding the `whsec_` secret would check, computed here with hmac/sha2 and
/// not with the sender's `sign`.
fn verify_standard_webhook(secret: &str, request: &Request) -> Result<(), String> {
    let key = secret
        .strip_prefix("whsec_")
        .ok_or("secret without whsec_ prefix")?;
    let key = base64::engine::general_purpose::STANDARD
        .decode(key)
        .map_err(|e| format!("secret: {e}"))?;
    let id = request.header("webhook-id").ok_or("no webhook-id")?;
    let timestamp = request
        .header("webhook-timestamp")
        .ok_or("no webhook-timestamp")?;
    let signatures = request
        .header("webhook-signature")
        .ok_or("no webhook-signature")?;
    let sent_at: u64 = timestamp.parse().map_err(|_| "timestamp not a number")?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_secs();
    if now.abs_diff(sent_at) > 5 * 60 {
        return Err(format!("stale timestamp {sent_at} (now {now})"));
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).map_err(|e| e.to_string())?;
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(&request.body);
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    let matched = signatures
        .split(' ')
        .filter_map(|s| s.strip_prefix("v1,"))
        .any(|s| s == expected);
    if matched {
        Ok(())
    } else {
        Err(format!("no v1 signature matches in {signatures:?}"))
    }
}

#[tokio::test]
async fn requests_carry_a_verifiable_signature_the_bearer_token_and_custom_headers() {
    const SECRET: &str = "whsec_ZHJpZnRnYXVnZS10ZXN0LXNpZ25pbmcta2V5LTAxMjM=";
    let receiver = Receiver::start(Script::statuses([503]).then_fn(|request| {
        match verify_standard_webhook(SECRET, request) {
            Ok(()) => Reply::ok(),
            Err(_) => Reply::status(401),
        }
    }))
    .await;
    let mut cfg = config(&receiver.url("/hook"));
    cfg.bearer_token = Some("t0ken".to_string());
    cfg.signing_key = Some(
        base64::engine::general_purpose::STANDARD
            .decode(&SECRET["whsec_".len()..])
            .expect("test secret is base64"),
    );
    cfg.headers.insert("X-Team".to_string(), "risk".to_string());
    cfg.headers
        .insert("X-Scope-OrgID".to_string(), "team-a".to_string());
    let (sender, telemetry) = sender(vec![("signed", cfg)]);
    sender
        .enqueue(delivery("signed", "msg_abc"))
        .expect("enqueue");
    eventually("the delivery to finish", || sender.pending() == 0).await;

    let requests = receiver.requests();
    assert_eq!(requests.len(), 2, "{requests:?}");
    for request in &requests {
        // Each attempt is signed on its own (the first was answered 503 unchecked).
        verify_standard_webhook(SECRET, request).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(request.header("webhook-id"), Some("msg_abc"));
        assert_eq!(request.header("idempotency-key"), Some("msg_abc"));
        assert_eq!(request.header_all("authorization"), ["Bearer t0ken"]);
        assert_eq!(request.header("x-team"), Some("risk"));
        assert_eq!(request.header("x-scope-orgid"), Some("team-a"));
    }
    assert_eq!(requests[1].status, 200);
    assert_eq!(counts(&telemetry, "signed"), (1.0, 1.0));

    let shown = format!("{sender:?}");
    assert!(shown.contains("signed"), "{shown}");
    assert!(
        !shown.contains("t0ken") && !shown.contains("team-a"),
        "{shown}"
    );
}

#[tokio::test]
async fn a_timed_out_attempt_is_retried_and_delivered() {
    let receiver = Receiver::start(Script::replies(
        [Reply::ok().delay(Duration::from_secs(30))],
    ))
    .await;
    let mut cfg = config(&receiver.url("/"));
    cfg.timeout = Duration::from_millis(200);
    let (sender, telemetry) = sender(vec![("slow", cfg)]);
    let started = Instant::now();
    sender.enqueue(delivery("slow", "k")).expect("enqueue");
    eventually("the delivery to finish", || sender.pending() == 0).await;

    assert_eq!(receiver.requests().len(), 2);
    assert_eq!(counts(&telemetry, "slow"), (1.0, 1.0));
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn refused_connections_count_as_failures_and_shutdown_abandons_the_retries() {
    let (sender, telemetry) = sender(vec![("dead", config(&closed_port_url()))]);
    sender.enqueue(delivery("dead", "k")).expect("enqueue");
    eventually("three failed attempts", || {
        telemetry.webhook_requests.get("dead", "failure") >= 3.0
    })
    .await;
    assert_eq!(sender.pending(), 1);
    assert_eq!(telemetry.queue_len(), 1);

    let grace = Duration::from_secs(2);
    let started = Instant::now();
    sender.shutdown(grace).await;
    assert!(
        started.elapsed() < grace,
        "shutdown took {:?}",
        started.elapsed()
    );
    assert_eq!(sender.pending(), 0);
    assert_eq!(telemetry.queue_len(), 0);
    assert_eq!(telemetry.webhook_requests.get("dead", "success"), 0.0);

    let refused = sender.enqueue(delivery("dead", "k2"));
    assert!(
        matches!(refused, Err(WebhookError::ShuttingDown)),
        "{refused:?}"
    );
}

#[tokio::test]
async fn shutdown_lets_an_attempt_under_way_finish_within_the_grace() {
    let receiver = Receiver::start(Script::replies([
        Reply::ok().delay(Duration::from_millis(300))
    ]))
    .await;
    let (sender, telemetry) = sender(vec![("w", config(&receiver.url("/")))]);
    sender.enqueue(delivery("w", "k")).expect("enqueue");
    receiver.wait_for(1, WAIT).await;

    sender.shutdown(Duration::from_secs(10)).await;
    assert_eq!(counts(&telemetry, "w"), (1.0, 0.0));
    assert_eq!(sender.pending(), 0);
    assert_eq!(telemetry.queue_len(), 0);
}

#[tokio::test]
async fn shutdown_cancels_an_attempt_that_outlasts_the_grace() {
    let receiver = Receiver::start(Script::replies(
        [Reply::ok().delay(Duration::from_secs(30))],
    ))
    .await;
    let (sender, telemetry) = sender(vec![("w", config(&receiver.url("/")))]);
    sender.enqueue(delivery("w", "k")).expect("enqueue");
    receiver.wait_for(1, WAIT).await;

    let grace = Duration::from_millis(200);
    let started = Instant::now();
    sender.shutdown(grace).await;
    let took = started.elapsed();
    assert!(
        took >= grace && took < Duration::from_secs(2),
        "shutdown took {took:?}"
    );
    assert_eq!(counts(&telemetry, "w"), (0.0, 0.0));
    assert_eq!(sender.pending(), 0);
    assert_eq!(telemetry.queue_len(), 0);
}

#[tokio::test]
async fn a_dead_webhook_does_not_hold_up_another() {
    let stuck = Receiver::start(Script::replies(
        [Reply::ok().delay(Duration::from_secs(30))],
    ))
    .await;
    let healthy = Receiver::start(Script::ok()).await;
    let (sender, telemetry) = sender(vec![
        ("stuck", config(&stuck.url("/"))),
        ("healthy", config(&healthy.url("/"))),
    ]);
    sender.enqueue(delivery("stuck", "k1")).expect("enqueue");
    stuck.wait_for(1, WAIT).await;
    sender.enqueue(delivery("healthy", "k2")).expect("enqueue");
    healthy.wait_for(1, WAIT).await;
    eventually("the healthy delivery to be counted", || {
        counts(&telemetry, "healthy") == (1.0, 0.0)
    })
    .await;
    assert_eq!(sender.pending(), 1);
    assert_eq!(telemetry.queue_len(), 1);
}

#[tokio::test]
async fn a_reload_reaches_deliveries_already_retrying() {
    let (sender, telemetry) = sender(vec![("w", config(&closed_port_url()))]);
    sender.enqueue(delivery("w", "k")).expect("enqueue");
    eventually("a failed attempt", || {
        telemetry.webhook_requests.get("w", "failure") >= 1.0
    })
    .await;

    let receiver = Receiver::start(Script::ok()).await;
    sender.update(BTreeMap::from([(
        "w".to_string(),
        config(&receiver.url("/fixed")),
    )]));
    let requests = receiver.wait_for(1, WAIT).await;
    assert_eq!(requests[0].header("idempotency-key"), Some("k"));
    eventually("the delivery to finish", || sender.pending() == 0).await;
    assert_eq!(telemetry.webhook_requests.get("w", "success"), 1.0);
}

#[tokio::test]
async fn unknown_webhooks_and_a_full_queue_are_refused() {
    let receiver = Receiver::start(Script::replies(
        [Reply::ok().delay(Duration::from_secs(30))],
    ))
    .await;
    let (sender, telemetry) = sender(vec![("w", config(&receiver.url("/")))]);
    let sender = sender.with_max_pending(1);

    let unknown = sender.enqueue(delivery("nope", "k0"));
    assert!(
        matches!(&unknown, Err(WebhookError::UnknownWebhook { name }) if name == "nope"),
        "{unknown:?}"
    );
    sender.enqueue(delivery("w", "k1")).expect("enqueue");
    let full = sender.enqueue(delivery("w", "k2"));
    assert!(
        matches!(full, Err(WebhookError::QueueFull { limit: 1 })),
        "{full:?}"
    );
    assert_eq!(counts(&telemetry, "w"), (0.0, 1.0));
    assert_eq!(sender.pending(), 1);
    assert_eq!(telemetry.queue_len(), 1);
}

#[tokio::test]
async fn a_bad_config_is_refused_up_front() {
    let telemetry = Arc::new(Telemetry::default());
    let mut bad_header = config("http://127.0.0.1:9/");
    bad_header
        .headers
        .insert("X-Bad".to_string(), "line\nbreak".to_string());
    for (name, cfg) in [
        ("bad-url", config("not a url")),
        ("bad-scheme", config("ftp://127.0.0.1/")),
        ("bad-header", bad_header),
    ] {
        let result = WebhookSender::new(
            BTreeMap::from([(name.to_string(), cfg)]),
            Arc::clone(&telemetry),
        );
        assert!(
            matches!(&result, Err(WebhookError::InvalidConfig { name: n, .. }) if n == name),
            "{name}: {:?}",
            result.map(|_| ())
        );
    }
}

#[test]
fn sign_matches_the_standard_webhooks_test_vector() {
    // From standard-webhooks/standard-webhooks, libraries/rust/src/lib.rs `test_sign`
    // (commit 1e88c9ce08bb2c605fea9a2a540b4a91d31c7a62); also checked with
    // python3 -c 'import hmac,hashlib,base64; k=base64.b64decode("C2FVsBQIhrscChlQIMV+b5sSYspob7oD");
    //   print(base64.b64encode(hmac.new(k, b"msg_27UH4WbU6Z5A5EzD8u03UvzRbpk.1649367553.{\"email\":\"test@example.com\",\"username\":\"test_user\"}", hashlib.sha256).digest()))'
    let key = base64::engine::general_purpose::STANDARD
        .decode("C2FVsBQIhrscChlQIMV+b5sSYspob7oD")
        .expect("vector key is base64");
    assert_eq!(
        sign(
            &key,
            "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
            1649367553,
            br#"{"email":"test@example.com","username":"test_user"}"#,
        ),
        "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="
    );
}
