//! The retrain-system webhooks of `examples/webhooks.yml` (documented in `docs/webhooks.md`),
//! end to end: driftgauge loads the example config, a rule drifts, and one local receiver
//! stands in for Argo Workflows, Airflow, Kubeflow Pipelines, GitHub, GitLab, Prefect and
//! Dagster, checking that each request has exactly the method, path, headers and body that
//! API takes, and answering as that API answers.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use driftgauge::config::{parse_config, SecretSource};
use driftgauge::engine::state::Status;
use driftgauge::engine::{Event, Notifier};
use driftgauge::output::webhook::WebhookSender;
use driftgauge::telemetry::Telemetry;

use crate::receiver::{Receiver, Reply, Request, Script};
use crate::support::{metric_value, wait_until, Files, Server};

const WAIT: Duration = Duration::from_secs(20);

fn repo(rel: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The secrets the example names, by file.
const SECRETS: &[(&str, &str)] = &[
    ("argo.token", "argo-token"),
    ("airflow.basic", "Basic YWRtaW46YWRtaW4="),
    ("kubeflow.token", "kf-token"),
    ("github.token", "ghp_test"),
    ("gitlab-trigger.token", "glptt-test"),
    ("prefect.key", "pnu_test"),
    ("dagster.token", "dagster-token"),
];

/// The example config with every `https://host` URL pointing at `base` and its secret files
/// under `secrets` (written there).
fn example_config(base: &str, secrets: &Path) -> String {
    std::fs::create_dir_all(secrets).expect("secrets dir");
    for (file, secret) in SECRETS {
        std::fs::write(secrets.join(file), format!("{secret}\n")).expect("secret");
    }
    let text = repo("examples/webhooks.yml");
    let mut out = String::new();
    for line in text.lines() {
        let line = match line.split_once("url: https://") {
            Some((indent, rest)) => {
                let path = &rest[rest.find('/').unwrap_or(rest.len())..];
                format!("{indent}url: {base}{path}")
            }
            None => line.replace("secrets/", &format!("{}/", secrets.display())),
        };
        out.push_str(&line);
        out.push('\n');
    }
    out.replace("evaluation_interval: 15s", "evaluation_interval: 200ms")
}

const RULES: &str = r#"
groups:
  - name: fraud-quality
    interval: 200ms
    rules:
      - name: accuracy_degradation
        detector: ema
        series: 'model_accuracy{model="Fraud"}'
        smoothing: 0.5
        min_samples: 1
        below: 0.85
        annotations: {summary: 'accuracy of {{ $labels.model }} is {{ $value | humanizePercentage }}'}
        webhooks: [argo, airflow, kubeflow, github, gitlab, prefect, dagster]
"#;

/// What each API answers: Airflow 409 (the run exists: as after a lost answer), GitHub 204,
/// GitLab and Prefect 201, Dagster 200 with a GraphQL union member.
fn answer(request: &Request) -> Reply {
    match request.path.as_str() {
        "/api/v1/dags/retrain_model/dagRuns" => {
            Reply::status(409).body(r#"{"title":"Conflict","status":409}"#)
        }
        "/repos/acme/fraud-model/dispatches" => Reply::status(204),
        "/api/v4/projects/42/trigger/pipeline" => Reply::status(201).body(r#"{"id":1}"#),
        p if p.ends_with("/create_flow_run") => Reply::status(201).body(r#"{"id":"x"}"#),
        "/graphql" => Reply::ok().body(
            r#"{"data":{"launchRun":{"__typename":"LaunchRunSuccess","run":{"runId":"r1"}}}}"#,
        ),
        _ => Reply::ok().body("{}"),
    }
}

#[track_caller]
fn expect(request: &Request, method: &str, headers: &[(&str, &str)], body: Value) {
    assert_eq!(request.method, method, "{request:?}");
    assert_eq!(
        request.header("content-type"),
        Some("application/json"),
        "{request:?}"
    );
    for (name, value) in headers {
        assert_eq!(request.header(name), Some(*value), "{name} of {request:?}");
    }
    assert_eq!(
        request.json(),
        body,
        "body of {} {}",
        request.method,
        request.path
    );
}

#[tokio::test]
async fn the_documented_examples_send_what_each_retrain_system_takes() {
    let receiver = Receiver::start(Script::from_fn(answer)).await;
    let secrets = tempfile::tempdir().expect("tempdir");
    let base = receiver.url("");
    let config = example_config(base.trim_end_matches('/'), &secrets.path().join("secrets"));
    let server = Server::start(Files::new(&config).rule_file("quality.yml", RULES)).await;
    server
        .push("model_accuracy", &[("model", "Fraud")], &[0.5])
        .await;

    let requests = wait_until("seven webhook calls", WAIT, || async {
        let r = receiver.requests();
        (r.len() >= 7).then_some(r)
    })
    .await;
    assert_eq!(requests.len(), 7, "{requests:#?}");
    let by_path = |p: &str| -> &Request {
        requests
            .iter()
            .find(|r| r.path == p)
            .unwrap_or_else(|| panic!("no request to {p}: {requests:#?}"))
    };

    // One event: every call carries its idempotency key, and the payload agrees.
    let airflow = by_path("/api/v1/dags/retrain_model/dagRuns");
    let conf = airflow.json()["conf"].clone();
    let key = |r: &Request| {
        r.header("idempotency-key")
            .expect("idempotency key")
            .to_string()
    };
    assert_eq!(conf["idempotency_key"], json!(key(airflow)));
    assert_eq!(conf["rule"], "accuracy_degradation");
    assert_eq!(conf["status"], "drifted");
    assert_eq!(conf["value"], json!(0.5));
    assert_eq!(conf["labels"], json!({"model": "Fraud"}));
    let summary = "accuracy of Fraud is 50%";
    assert_eq!(conf["annotations"], json!({"summary": summary}));

    let r = by_path("/api/v1/workflows/ml/submit");
    expect(
        r,
        "POST",
        &[("authorization", "Bearer argo-token")],
        json!({
            "namespace": "ml",
            "resourceKind": "WorkflowTemplate",
            "resourceName": "retrain-model",
            "submitOptions": {
                "generateName": "retrain-fraud-",
                "parameters": ["model=Fraud", "rule=accuracy_degradation", format!("idempotency_key={}", key(r))],
                "labels": "driftgauge.io/rule=accuracy_degradation",
            },
        }),
    );

    expect(
        airflow,
        "POST",
        &[("authorization", "Basic YWRtaW46YWRtaW4=")],
        json!({"dag_run_id": key(airflow), "conf": conf, "note": summary}),
    );

    let r = by_path("/pipeline/apis/v2beta1/runs");
    expect(
        r,
        "POST",
        &[("authorization", "Bearer kf-token")],
        json!({
            "display_name": "retrain Fraud (accuracy_degradation)",
            "description": summary,
            "experiment_id": "6d1f0c2e-1b8a-4a57-9a3e-2f4b5c6d7e80",
            "pipeline_version_reference": {
                "pipeline_id": "0f6c1d2e-3a4b-4c5d-8e9f-a0b1c2d3e4f5",
                "pipeline_version_id": "9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d",
            },
            "runtime_config": {"parameters": {
                "model": "Fraud", "rule": "accuracy_degradation", "idempotency_key": key(r),
            }},
        }),
    );

    let r = by_path("/repos/acme/fraud-model/dispatches");
    expect(
        r,
        "POST",
        &[
            ("authorization", "Bearer ghp_test"),
            ("accept", "application/vnd.github+json"),
            ("x-github-api-version", "2022-11-28"),
        ],
        json!({
            "event_type": "model-drifted",
            "client_payload": {
                "model": "Fraud", "rule": "accuracy_degradation", "status": "drifted",
                "statistic": null, "value": 0.5, "summary": summary, "idempotency_key": key(r),
            },
        }),
    );

    let r = by_path("/api/v4/projects/42/trigger/pipeline");
    expect(
        r,
        "POST",
        &[],
        json!({
            "token": "glptt-test",
            "ref": "main",
            "variables": {
                "DRIFT_MODEL": "Fraud", "DRIFT_RULE": "accuracy_degradation",
                "DRIFT_STATUS": "drifted", "DRIFT_IDEMPOTENCY_KEY": key(r),
            },
        }),
    );
    assert_eq!(r.header("authorization"), None);

    let r = by_path("/api/deployments/3c9d8e21-6a0f-4d1e-9a53-0b7e5f1a2c7d/create_flow_run");
    let mut drift = conf.clone();
    drift["idempotency_key"] = json!(key(r));
    expect(
        r,
        "POST",
        &[("authorization", "Bearer pnu_test")],
        json!({
            "name": "retrain-Fraud",
            "idempotency_key": key(r),
            "parameters": {"model": "Fraud", "drift": drift},
            "tags": ["driftgauge", "accuracy_degradation"],
        }),
    );

    let r = by_path("/graphql");
    expect(
        r,
        "POST",
        &[("dagster-cloud-api-token", "dagster-token")],
        json!({
            "query": "mutation LaunchRun($executionParams: ExecutionParams!) { launchRun(executionParams: $executionParams) { __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message } } }",
            "variables": {"executionParams": {
                "selector": {"repositoryLocationName": "ml", "repositoryName": "__repository__", "jobName": "retrain_model"},
                "runConfigData": {"ops": {"retrain": {"config": {"model": "Fraud"}}}},
                "executionMetadata": {"tags": [
                    {"key": "driftgauge/idempotency_key", "value": key(r)},
                    {"key": "driftgauge/rule", "value": "accuracy_degradation"},
                ]},
            }},
        }),
    );

    // Every call counted a success: Airflow's 409 and GitHub's 204 included, no retries.
    for name in [
        "argo", "airflow", "kubeflow", "github", "gitlab", "prefect", "dagster",
    ] {
        server
            .wait_metric(
                "driftgauge_webhook_requests_total",
                &[("webhook", name), ("outcome", "success")],
                |v| v == 1.0,
            )
            .await;
        let metrics = server.metrics().await;
        assert_eq!(
            metric_value(
                &metrics,
                "driftgauge_webhook_requests_total",
                &[("webhook", name), ("outcome", "failure")]
            ),
            Some(0.0),
            "{name}"
        );
    }
    assert_eq!(receiver.requests().len(), 7, "no retries");
    server.stop().await;
}

/// The example's secrets from a map (the config's own folder plays no part).
struct Secrets;

impl SecretSource for Secrets {
    fn read(&self, path: &Path) -> std::io::Result<String> {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        SECRETS
            .iter()
            .find(|(file, _)| *file == name)
            .map(|(_, s)| s.to_string())
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))
    }
}

fn event(webhooks: &[&str]) -> Event {
    Event {
        group: "g".into(),
        rule: "amount_drift".into(),
        detector: "ks",
        labels: [("model".to_string(), "fraud".to_string())].into(),
        annotations: Default::default(),
        statistic: Some(0.31),
        p_value: Some(1e-9),
        value: None,
        from: Status::Stable,
        to: Status::Drifted,
        at_ms: 1_700_000_000_000,
        webhooks: webhooks.iter().map(|s| s.to_string()).collect(),
        replica: None,
    }
}

/// Dagster answers 200 for a failed launch too: only `LaunchRunSuccess` is a delivery; an
/// error member fails it for good (not retried, as the same request would fail the same way).
/// Airflow's 409 is a success only because the example lists it; other 4xx still fail.
#[tokio::test]
async fn success_codes_and_the_answer_check_decide_what_delivered_means() {
    let receiver = Receiver::start(Script::from_fn(|r: &Request| match r.path.as_str() {
        "/graphql" => Reply::ok()
            .body(r#"{"data":{"launchRun":{"__typename":"PythonError","message":"boom"}}}"#),
        _ => Reply::status(400),
    }))
    .await;
    let base = receiver.url("");
    let text = example_config(
        base.trim_end_matches('/'),
        &tempfile::tempdir().expect("tmp").path().join("s"),
    );
    let config = parse_config(&text, "webhooks.yml", Path::new("/"), &Secrets)
        .unwrap_or_else(|d| panic!("{d:?}"));
    let telemetry = Arc::new(Telemetry::default());
    let sender = WebhookSender::new(config.webhooks, Arc::clone(&telemetry)).expect("sender");
    let accepted = sender.notify(&[event(&["dagster", "airflow"])]);
    assert_eq!(accepted, vec![vec![true, true]]);
    wait_until("both deliveries to settle", WAIT, || async {
        sender.pending() == 0
    })
    .await;
    let counts = |w: &str| {
        (
            telemetry.webhook_requests.get(w, "success"),
            telemetry.webhook_requests.get(w, "failure"),
        )
    };
    assert_eq!(counts("dagster"), (0.0, 1.0));
    assert_eq!(counts("airflow"), (0.0, 1.0));
    assert_eq!(receiver.requests().len(), 2, "neither was retried");
}

/// Every webhook block of `docs/webhooks.md` is in `examples/webhooks.yml`, which the tests
/// above load: the documentation cannot drift from what is tested.
#[test]
fn the_documented_blocks_are_the_tested_example() {
    let docs = repo("docs/webhooks.md");
    let example = repo("examples/webhooks.yml");
    let mut blocks = 0;
    for block in docs.split("```yaml\n").skip(1) {
        let block = block.split("```").next().unwrap_or_default();
        let Some(body) = block.strip_prefix("webhooks:\n") else {
            continue;
        };
        assert!(
            example.contains(body),
            "docs/webhooks.md block not in examples/webhooks.yml:\n{body}"
        );
        blocks += 1;
    }
    assert_eq!(blocks, 7, "one block per retrain system");
}
