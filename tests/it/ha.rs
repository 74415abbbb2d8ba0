//! High availability through real processes on loopback: two replicas fed the same data send
//! the same event identity to a real receiver; a real Prometheus HA pair remote-writes into
//! driftgauge's HA tracker, which takes one replica's samples and fails over when it stops.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::cli::{http, Process};
use crate::prom::{sample_value, Prometheus};
use crate::receiver::{Receiver, Reply, Script};
use crate::remote_write::{body, series};
use crate::support::{metric_value, poll, wait_until, Files, Rng, Server, WAIT};

const GROUP: &str = "replicated";
const INTERVAL_MS: i64 = 1000;

/// Waits until the wall clock is between 30 % and 60 % of an interval past one of the
/// group's evaluation slots, so data sent now reaches every replica well before the next
/// slot (the slots are the same on every replica: `cluster::eval_timestamp`).
fn wait_mid_slot() {
    poll("the middle of an evaluation interval", WAIT, || {
        let now = driftgauge::time::now_ms();
        let into = now - driftgauge::cluster::eval_timestamp(GROUP, INTERVAL_MS, now);
        (300..600).contains(&into)
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_send_each_event_with_one_key_and_a_deduping_receiver_runs_it_once() {
    // The receiver dedupes by key, as a retrain service would: the first delivery of a key
    // starts a job, later ones answer 200 without starting anything.
    let started: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    let jobs = Arc::clone(&started);
    let receiver = Receiver::start(Script::from_fn(move |r| {
        let key = r.header("idempotency-key").unwrap_or_default().to_string();
        let fresh = jobs.lock().unwrap().insert(key);
        Reply::ok().body(if fresh { "started" } else { "duplicate" })
    }))
    .await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("rules")).unwrap();
    std::fs::write(dir.path().join("whsec"), "whsec_aGVsbG8=\n").unwrap();
    std::fs::write(
        dir.path().join("driftgauge.yml"),
        format!(
            "global: {{evaluation_interval: 1s}}\nrule_files: [\"rules/*.yml\"]\nwebhooks:\n  retrain:\n    url: {}\n    signing_secret_file: whsec\n    min_backoff: 50ms\n",
            receiver.url("/retrain")
        ),
    )
    .unwrap();
    let rule = |name: &str, metric: &str| {
        format!(
            "      - name: {name}\n        detector: ks\n        series: {metric}\n        reference: {{first: 100}}\n        current: {{last: 100}}\n        min_samples: 100\n        webhooks: [retrain]\n"
        )
    };
    std::fs::write(
        dir.path().join("rules/r.yml"),
        format!(
            "groups:\n  - name: {GROUP}\n    interval: 1s\n    rules:\n{}{}",
            rule("pushed_drift", "pushed_value"),
            rule("written_drift", "written_value")
        ),
    )
    .unwrap();
    let replicas: Vec<Process> = ["a", "b"]
        .iter()
        .map(|r| {
            Process::start(
                dir.path(),
                &[
                    "--config.file=driftgauge.yml",
                    &format!("--storage.path=data-{r}"),
                    &format!("--cluster.replica={r}"),
                ],
            )
        })
        .collect();
    for p in &replicas {
        poll("ready", WAIT, || p.get("/-/ready").0 == 200);
    }

    // The same data to both: 100 reference values, then 100 shifted ones, in one batch per
    // source (push and remote write), sent mid-interval.
    let mut rng = Rng::new(13);
    let mut values = rng.normals(100, 0.0, 1.0);
    values.extend(rng.normals(100, 3.0, 1.0));
    let listed: Vec<String> = values.iter().map(|v| format!("{v:?}")).collect();
    let push = format!(
        r#"{{"samples":[{{"metric":"pushed_value","labels":{{"model":"fraud"}},"values":[{}]}}]}}"#,
        listed.join(",")
    );
    let samples: Vec<(f64, i64)> = values
        .iter()
        .enumerate()
        .map(|(i, v)| (*v, 1_700_000_000_000 + i as i64))
        .collect();
    let write = body(&[series(
        &[("__name__", "written_value"), ("model", "fraud")],
        &samples,
    )]);
    driftgauge::net::install_crypto_provider();
    let client = reqwest::Client::new();
    wait_mid_slot();
    for p in &replicas {
        let (status, text) = http(&p.addr, "POST", "/api/v1/samples", &push);
        assert_eq!(status, 200, "{text}");
        let r = client
            .post(format!("http://{}/api/v1/write", p.addr))
            .header("Content-Encoding", "snappy")
            .header("Content-Type", "application/x-protobuf")
            .body(write.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204);
    }

    // Two events (one per rule), each delivered by both replicas.
    let requests = receiver.wait_for(4, WAIT).await;
    let mut by_key: BTreeMap<String, Vec<serde_json::Value>> = BTreeMap::new();
    for r in &requests {
        let key = r
            .header("idempotency-key")
            .expect("Idempotency-Key")
            .to_string();
        assert_eq!(
            r.header("webhook-id"),
            Some(key.as_str()),
            "webhook-id is the key"
        );
        let payload = r.json();
        assert_eq!(payload["idempotency_key"], key.as_str());
        by_key.entry(key).or_default().push(payload);
    }
    assert_eq!(by_key.len(), 2, "one key per event: {by_key:#?}");
    let mut rules = BTreeSet::new();
    for (key, payloads) in &by_key {
        assert_eq!(payloads.len(), 2, "{key}: {payloads:#?}");
        let replicas: BTreeSet<&str> = payloads
            .iter()
            .map(|p| p["replica"].as_str().expect("replica in the payload"))
            .collect();
        assert_eq!(replicas, BTreeSet::from(["a", "b"]), "{key}");
        // The same event: everything but the replica is equal.
        let strip = |p: &serde_json::Value| {
            let mut p = p.clone();
            p.as_object_mut().unwrap().remove("replica");
            p
        };
        assert_eq!(strip(&payloads[0]), strip(&payloads[1]), "{key}");
        assert_eq!(payloads[0]["status"], "drifted");
        rules.insert(payloads[0]["rule"].as_str().unwrap().to_string());
    }
    assert_eq!(
        rules,
        BTreeSet::from(["pushed_drift".to_string(), "written_drift".to_string()])
    );
    // Behind the deduping receiver: one job per event.
    assert_eq!(started.lock().unwrap().len(), 2);
    assert!(requests.iter().all(|r| r.status == 200));
}

/// A model server's `/metrics`: one gauge whose value changes on every scrape.
async fn model_server() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut n = 0u64;
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            n += 1;
            let body = format!(
                "# TYPE model_score gauge\nmodel_score{{model=\"ranker\"}} {}\n",
                (n % 97) as f64 / 97.0
            );
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let resp = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
            });
        }
    });
    (addr, task)
}

fn prometheus_config(replica: &str, target: SocketAddr, driftgauge: &str) -> String {
    format!(
        r#"
global:
  scrape_interval: 500ms
  evaluation_interval: 1s
  external_labels: {{cluster: prom, __replica__: "{replica}"}}
scrape_configs:
  - job_name: model
    static_configs:
      - targets: ["{target}"]
remote_write:
  - url: {driftgauge}/api/v1/write
    write_relabel_configs:
      - source_labels: [__name__]
        regex: model_score
        action: keep
    queue_config:
      batch_send_deadline: 200ms
      min_backoff: 50ms
      max_backoff: 200ms
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prometheus_ha_pair_counts_each_sample_once_and_fails_over_when_the_leader_stops() {
    let (target, _model) = model_server().await;
    let config = "global: {evaluation_interval: 200ms}\nrule_files: [\"rules/*.yml\"]\nremote_write_receiver:\n  ha_cluster_label: cluster\n  ha_replica_label: __replica__\n  ha_failover_timeout: 3s\n";
    let rules = "groups:\n  - name: ranker\n    interval: 200ms\n    rules:\n      - name: score_drift\n        detector: ks\n        series: model_score\n        reference: {first: 5}\n        current: {last: 100000}\n        min_samples: 1\n";
    let dg = Server::start(Files::new(config).rule_file("r.yml", rules)).await;
    let dg_url = dg.url("");
    let dg_url = dg_url.trim_end_matches('/');
    let a = Prometheus::start(&prometheus_config("a", target, dg_url), &[]).await;
    let b = Prometheus::start(&prometheus_config("b", target, dg_url), &[]).await;

    // Both replicas write; one is elected and the other's samples are answered 202.
    let leader = wait_until(
        "a replica elected and the other deduped",
        WAIT * 2,
        || async {
            let m = dg.metrics().await;
            let deduped = metric_value(
                &m,
                "driftgauge_samples_rejected_total",
                &[("reason", "ha_dedupe")],
            );
            let elected: Vec<&str> = ["a", "b"]
                .into_iter()
                .filter(|r| {
                    metric_value(
                        &m,
                        "driftgauge_ha_elected_replica_status",
                        &[("cluster", "prom"), ("replica", r)],
                    ) == Some(1.0)
                })
                .collect();
            match (deduped, elected.as_slice()) {
                (Some(d), [one]) if d >= 5.0 => Ok(one.to_string()),
                _ => Err(m
                    .lines()
                    .filter(|l| l.contains("ha_") || l.contains("samples_"))
                    .collect::<Vec<_>>()
                    .join("\n")),
            }
        },
    )
    .await;
    let (leader_prom, follower_prom, follower) = match leader.as_str() {
        "a" => (&a, &b, "b"),
        _ => (&b, &a, "a"),
    };

    // Windows count each sample once: what driftgauge holds is what the leader scraped (less
    // what is still in its remote write queue), never what both scraped.
    let held = |m: &str| {
        let w = |window| {
            metric_value(
                m,
                "driftgauge_window_samples",
                &[("rule", "score_drift"), ("window", window)],
            )
            .unwrap_or(0.0)
        };
        w("reference") + w("current")
    };
    // Wait for enough samples that a double count could not hide in the lag.
    wait_until("20 samples held", WAIT * 2, || async {
        let n = held(&dg.metrics().await);
        (n >= 20.0).then_some(()).ok_or(format!("{n}"))
    })
    .await;
    let before = held(&dg.metrics().await);
    let leader_count = sample_value(
        &leader_prom
            .wait_query(r#"count_over_time(model_score{model="ranker"}[1h])"#)
            .await[0],
    );
    let after = held(&dg.metrics().await);
    assert!(
        before <= leader_count && leader_count <= after + 6.0,
        "driftgauge held {before}..{after} samples, the leader scraped {leader_count}"
    );
    let follower_count = sample_value(
        &follower_prom
            .wait_query(r#"count_over_time(model_score{model="ranker"}[1h])"#)
            .await[0],
    );
    assert!(
        after < leader_count + follower_count - 8.0,
        "both replicas' samples were counted: {after} held, {leader_count} + {follower_count} scraped"
    );
    let m = dg.metrics().await;
    assert!(
        !m.contains("__replica__"),
        "the replica label is dropped:\n{m}"
    );
    assert!(
        m.contains(r#"cluster="prom""#),
        "the cluster label is kept:\n{m}"
    );

    // Stop the leader: within the failover timeout (3s, plus a scrape and a send) the
    // follower is elected and its samples flow.
    let stopped_at = Instant::now();
    let held_at_stop = held(&dg.metrics().await);
    match leader.as_str() {
        "a" => drop(a),
        _ => drop(b),
    }
    wait_until(
        "the follower elected and its samples taken",
        Duration::from_secs(10),
        || async {
            let m = dg.metrics().await;
            let elected = metric_value(
                &m,
                "driftgauge_ha_elected_replica_status",
                &[("cluster", "prom"), ("replica", follower)],
            );
            let n = held(&m);
            (elected == Some(1.0) && n >= held_at_stop + 3.0)
                .then_some(())
                .ok_or(format!(
                    "elected {follower}: {elected:?}, held {n} (at stop {held_at_stop})"
                ))
        },
    )
    .await;
    // Not before the timeout (counted from the leader's last request, up to a scrape and a
    // send before the stop), and not long after it.
    let took = stopped_at.elapsed();
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(3 + 3),
        "failover took {took:?}"
    );
    let m = dg.metrics().await;
    assert_eq!(
        metric_value(
            &m,
            "driftgauge_ha_elected_replica_changes_total",
            &[("cluster", "prom")]
        ),
        Some(2.0),
        "{m}"
    );
}
