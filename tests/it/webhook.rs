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
use crate::support::{metric_value, wait_until, Files, Server};

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
        method: Default::default(),
        body_template: None,
        success_codes: Vec::new(),
        success_body_match: None,
        secrets: Default::default(),
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
    wait_until("the delivery to finish", WAIT, || async {
        sender.pending() == 0
    })
    .await;

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
    wait_until("both deliveries to finish", WAIT, || async {
        sender.pending() == 0
    })
    .await;

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
    wait_until("the delivery to finish", WAIT, || async {
        sender.pending() == 0
    })
    .await;
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
    wait_until("the delivery to finish", WAIT, || async {
        sender.pending() == 0
    })
    .await;

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
    wait_until("the delivery to finish", WAIT, || async {
        sender.pending() == 0
    })
    .await;

    assert_eq!(receiver.requests().len(), 2);
    assert_eq!(counts(&telemetry, "slow"), (1.0, 1.0));
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn refused_connections_count_as_failures_and_shutdown_abandons_the_retries() {
    let (sender, telemetry) = sender(vec![("dead", config(&closed_port_url()))]);
    sender.enqueue(delivery("dead", "k")).expect("enqueue");
    wait_until("three failed attempts", WAIT, || async {
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
    wait_until("the healthy delivery to be counted", WAIT, || async {
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
    wait_until("a failed attempt", WAIT, || async {
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
    wait_until("the delivery to finish", WAIT, || async {
        sender.pending() == 0
    })
    .await;
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

// A hanging receiver exhausted descriptors: every pending delivery opened its own connection.
// Now each webhook has `max_connections` slots (8 by default) that attempts take before they
// connect, so a receiver that accepts and never answers holds that many connections at most.

fn hook_config(url: &str, timeout: &str, extra: &str) -> String {
    format!(
        "global: {{evaluation_interval: 50ms}}\nrule_files: [\"rules/*.yml\"]\nwebhooks:\n  hook:\n    url: {url}\n    timeout: {timeout}\n    min_backoff: 20ms\n    max_backoff: 100ms\n{extra}"
    )
}

/// One EMA rule that drifts on the first value below 0.5, calling `hook`.
const LOW_ACCURACY_RULES: &str = "groups:\n  - name: g\n    interval: 50ms\n    rules:\n      - name: low\n        detector: ema\n        min_samples: 1\n        series: acc\n        smoothing: 0.5\n        below: 0.5\n        webhooks: [hook]\n";

/// `GET path` answers 200 within a second.
async fn answers_at_once(server: &Server, path: &str) {
    let started = Instant::now();
    let response = server
        .client
        .get(server.url(path))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    assert_eq!(response.status(), 200, "GET {path}");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(1), "GET {path} took {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_receiver_holds_max_connections_and_the_api_answers() {
    let rx = Receiver::start(Script::ok()).await;
    rx.set_hanging(true);
    // A timeout longer than the test: no attempt ends while it looks, so the count is exact.
    let cfg = hook_config(&rx.url("/hook"), "30s", "");
    let server = Server::start(Files::new(&cfg).rule_file("r.yml", LOW_ACCURACY_RULES)).await;
    let samples: Vec<serde_json::Value> = (0..300)
        .map(|i| serde_json::json!({"metric": "acc", "labels": {"id": format!("s{i}")}, "values": [0.1]}))
        .collect();
    let (status, answer) = server
        .post_json("/api/v1/samples", serde_json::json!({ "samples": samples }))
        .await;
    assert_eq!(status, 200, "{answer}");
    server
        .wait_metric("driftgauge_webhook_queue_length", &[], |v| v == 300.0)
        .await;
    wait_until("8 connections held", WAIT, || async {
        rx.connections().open == 8
    })
    .await;

    for _ in 0..20 {
        answers_at_once(&server, "/-/healthy").await;
        answers_at_once(&server, "/metrics").await;
    }
    let t = server.metrics().await;
    assert_eq!(
        metric_value(&t, "driftgauge_webhook_queue_length", &[]),
        Some(300.0)
    );
    let seen = rx.connections();
    println!("300 deliveries to a hanging receiver: {seen:?}");
    assert_eq!(
        (seen.open, seen.max_open, seen.accepted),
        (8, 8, 8),
        "{seen:?}"
    );

    // The receiver comes back: the held connections close, the deliveries go through over
    // pooled connections, and shutdown is prompt.
    rx.set_hanging(false);
    rx.wait_for(300, WAIT).await;
    server
        .wait_metric("driftgauge_webhook_queue_length", &[], |v| v == 0.0)
        .await;
    // Attempts in flight stay at 8; the client's pool may open one or two more while a
    // connection it just used is on its way back (hyper-util races a new connect against the
    // checkout of an idle one): allowed up to the 8 in use plus 8 returning.
    let seen = rx.connections();
    println!("after it answered: {seen:?}");
    assert!(seen.max_open <= 16, "{seen:?}");
    let started = Instant::now();
    server.stop().await;
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn with_a_short_timeout_every_delivery_is_attempted_and_all_go_through_once_it_answers() {
    let rx = Receiver::start(Script::ok()).await;
    rx.set_hanging(true);
    let mut cfg = config(&rx.url("/"));
    cfg.timeout = Duration::from_millis(100);
    cfg.max_connections = 4;
    let (sender, telemetry) = sender(vec![("w", cfg)]);
    let keys: Vec<String> = (0..40).map(|i| format!("k{i:02}")).collect();
    for key in &keys {
        sender.enqueue(delivery("w", key)).expect("enqueue");
    }
    // Retries go to the back of the line: each delivery gets its turn while the receiver
    // hangs, none starves behind the first four timing out again and again.
    wait_until("every delivery attempted", WAIT, || async {
        let held: std::collections::BTreeSet<String> = rx.held_keys().into_iter().collect();
        held.len() == keys.len()
    })
    .await;
    assert_eq!(sender.pending(), 40);
    assert_eq!(telemetry.queue_len(), 40);
    let hanging = rx.connections();

    rx.set_hanging(false);
    wait_until("every delivery delivered", WAIT, || async {
        sender.pending() == 0
    })
    .await;
    let delivered: std::collections::BTreeSet<String> = rx
        .requests()
        .iter()
        .filter_map(|r| r.header("idempotency-key").map(str::to_string))
        .collect();
    assert_eq!(delivered, keys.iter().cloned().collect());
    let (successes, failures) = counts(&telemetry, "w");
    assert_eq!(successes, 40.0);
    assert!(failures >= 40.0, "{failures} timeouts");
    let seen = rx.connections();
    println!(
        "timeouts of 100ms, 4 slots: {} attempts held over {hanging:?}; in all {seen:?}",
        rx.held_keys().len()
    );
    assert!(seen.max_open <= 4, "{seen:?}");
}

#[tokio::test]
async fn with_one_connection_deliveries_go_in_order_over_a_reused_connection() {
    // An answer whose body does not come with its head: the connection is reused only when
    // the sender reads the body (it opened one per delivery when it did not).
    let rx =
        Receiver::start(Script::replies([]).then(Reply::ok().body(&"x".repeat(32 * 1024)))).await;
    let mut cfg = config(&rx.url("/"));
    cfg.max_connections = 1;
    let (sender, _telemetry) = sender(vec![("w", cfg)]);
    let keys: Vec<String> = (0..20).map(|i| format!("k{i:02}")).collect();
    for key in &keys {
        sender.enqueue(delivery("w", key)).expect("enqueue");
    }
    wait_until("every delivery delivered", WAIT, || async {
        sender.pending() == 0
    })
    .await;
    let arrived: Vec<String> = rx
        .requests()
        .iter()
        .filter_map(|r| r.header("idempotency-key").map(str::to_string))
        .collect();
    assert_eq!(arrived, keys);
    let seen = rx.connections();
    println!("20 deliveries, 1 slot: {seen:?}");
    assert_eq!(seen.max_open, 1, "{seen:?}");
    assert!(seen.accepted <= 2, "{seen:?}");
}

#[tokio::test]
async fn shutdown_stops_deliveries_waiting_for_a_connection() {
    let rx = Receiver::start(Script::ok()).await;
    rx.set_hanging(true);
    let mut cfg = config(&rx.url("/"));
    cfg.timeout = Duration::from_secs(30);
    cfg.max_connections = 2;
    let (sender, telemetry) = sender(vec![("w", cfg)]);
    for i in 0..50 {
        sender
            .enqueue(delivery("w", &format!("k{i}")))
            .expect("enqueue");
    }
    wait_until("2 connections held", WAIT, || async {
        rx.connections().open == 2
    })
    .await;
    assert_eq!(telemetry.queue_len(), 50);

    let grace = Duration::from_millis(200);
    let started = Instant::now();
    sender.shutdown(grace).await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "shutdown took {took:?}");
    assert_eq!(sender.pending(), 0);
    assert_eq!(telemetry.queue_len(), 0);
    assert_eq!(counts(&telemetry, "w"), (0.0, 0.0));
    assert_eq!(rx.connections().accepted, 2);
}

#[tokio::test]
async fn a_reload_resizes_the_connection_slots_of_waiting_deliveries() {
    let rx = Receiver::start(Script::ok()).await;
    rx.set_hanging(true);
    let mut cfg = config(&rx.url("/"));
    cfg.timeout = Duration::from_secs(30);
    cfg.max_connections = 2;
    let (sender, _telemetry) = sender(vec![("w", cfg.clone())]);
    for i in 0..20 {
        sender
            .enqueue(delivery("w", &format!("k{i}")))
            .expect("enqueue");
    }
    wait_until("2 connections held", WAIT, || async {
        rx.connections().open == 2
    })
    .await;
    cfg.max_connections = 5;
    sender.update(BTreeMap::from([("w".to_string(), cfg)]));
    wait_until("5 connections held", WAIT, || async {
        rx.connections().open == 5
    })
    .await;
    assert_eq!(rx.connections().accepted, 5);
    sender.shutdown(Duration::ZERO).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_with_2000_pending_deliveries_opens_max_connections() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let keys: Vec<String> = (0..2000).map(|i| format!("k{i:04}")).collect();
    {
        // A previous run: 2,000 deliveries in the outbox, their receiver down.
        let store = driftgauge::store::Store::open(&data).expect("open the store");
        let mut cfg = config(&closed_port_url());
        cfg.min_backoff = Duration::from_secs(3600);
        cfg.max_backoff = Duration::from_secs(3600);
        let (sender, _telemetry) = sender(vec![("hook", cfg)]);
        sender.set_outbox(store.clone());
        let batch = keys.iter().map(|k| delivery("hook", k)).collect();
        assert!(sender.enqueue_batch(batch).iter().all(Result::is_ok));
        sender.shutdown(Duration::ZERO).await;
        assert_eq!(store.deliveries().expect("outbox").len(), 2000);
    }

    // The previous run's tasks let go of the store as they end: wait for that, as a restart
    // would.
    wait_until("the previous run's store closed", WAIT, || async {
        driftgauge::store::Store::open(&data).is_ok()
    })
    .await;
    let rx = Receiver::start(Script::ok()).await;
    rx.set_hanging(true);
    let cfg = hook_config(&rx.url("/hook"), "30s", "    max_connections: 4\n");
    let files = Files::new(&cfg).rule_file("r.yml", LOW_ACCURACY_RULES);
    let server = Server::start_with(files, |o| o.storage_path = data.clone()).await;
    server
        .wait_metric("driftgauge_webhook_queue_length", &[], |v| v == 2000.0)
        .await;
    wait_until("4 connections held", WAIT, || async {
        rx.connections().open == 4
    })
    .await;
    for _ in 0..20 {
        answers_at_once(&server, "/-/healthy").await;
        answers_at_once(&server, "/metrics").await;
    }
    let seen = rx.connections();
    println!("2,000 resumed deliveries, hanging receiver, 4 slots: {seen:?}");
    assert_eq!(
        (seen.open, seen.max_open, seen.accepted),
        (4, 4, 4),
        "{seen:?}"
    );

    rx.set_hanging(false);
    let started = Instant::now();
    rx.wait_for(2000, Duration::from_secs(15)).await;
    server
        .wait_metric("driftgauge_webhook_queue_length", &[], |v| v == 0.0)
        .await;
    let delivered: std::collections::BTreeSet<String> = rx
        .requests()
        .iter()
        .filter_map(|r| r.header("idempotency-key").map(str::to_string))
        .collect();
    assert_eq!(delivered, keys.iter().cloned().collect());
    let seen = rx.connections();
    println!("then delivered in {:?}: {seen:?}", started.elapsed());
    // 4 in flight, plus at most 4 on their way back to the pool (see above).
    assert!(seen.max_open <= 8, "{seen:?}");
    server.stop().await;
    // Settled deliveries leave the outbox one blocking delete each, which may still hold the
    // store for a moment after the server stopped.
    let store = wait_until("the store to open", WAIT, || async {
        driftgauge::store::Store::open(&data).map_err(|e| e.to_string())
    })
    .await;
    assert_eq!(store.deliveries().expect("outbox").len(), 0);
}
