//! The query source against a fake Prometheus API (a [`Receiver`] answering by a function of
//! the request, over real HTTP on loopback): warm-up by `query_range` and by raw samples,
//! instant queries with the source's headers and timeout, errors and timeouts counted while
//! the source goes on, and a rule added by a reload warmed. The sources run on an [`Engine`]
//! loaded from files, as the service does; the windows are read back by evaluating it.

use std::sync::Arc;
use std::time::Duration;

use driftgauge::engine::notify::Discard;
use driftgauge::engine::Engine;
use driftgauge::ingest::query::{
    spawn_configured_query_sources, spawn_query_sources, SOURCE_LABEL,
};
use driftgauge::labels::{Labels, SeriesSamples};
use driftgauge::telemetry::Telemetry;
use driftgauge::time::now_ms;
use tokio::sync::watch;

use crate::receiver::{Receiver, Reply, Request, Script};
use crate::support::{wait_until, WAIT};

/// Prometheus refuses `query_range` calls of more than 11,000 points per series.
const PROMETHEUS_MAX_RANGE_POINTS: f64 = 11_000.0;

/// The path of a request, without its query.
fn path(r: &Request) -> &str {
    r.path.split_once('?').map_or(r.path.as_str(), |(p, _)| p)
}

/// A query parameter of a request, decoded.
fn param(r: &Request, name: &str) -> Option<String> {
    let url = reqwest::Url::parse(&format!("http://x{}", r.path)).expect("request URI");
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

fn ok(body: &str) -> Reply {
    Reply::ok().body(body)
}

/// An engine loaded from a config and one rule file written to a temp dir, as the service
/// loads them.
fn engine(dir: &std::path::Path, config: &str, rules: &str) -> Arc<Engine> {
    std::fs::write(dir.join("driftgauge.yml"), config).expect("config");
    std::fs::write(dir.join("rules.yml"), rules).expect("rules");
    let loaded = driftgauge::config::load(Some(&dir.join("driftgauge.yml"))).expect("load");
    Arc::new(Engine::new(
        loaded.config,
        loaded.rules,
        Arc::new(Telemetry::default()),
        Arc::new(Discard),
    ))
}

/// Rewrites the rule file and applies it, as a reload does.
fn reload(engine: &Engine, dir: &std::path::Path, rules: &str) {
    std::fs::write(dir.join("rules.yml"), rules).expect("rules");
    let loaded = driftgauge::config::load(Some(&dir.join("driftgauge.yml"))).expect("load");
    engine.apply(loaded.config, loaded.rules);
}

/// (rule name, reference samples, current samples, ema) of every evaluated series.
fn evaluate(engine: &Engine) -> Vec<(String, usize, usize, Option<f64>)> {
    let generation = engine.current();
    let mut out = Vec::new();
    for (gi, g) in generation.groups.iter().enumerate() {
        engine.evaluate_group(&generation, gi, now_ms());
        for s in &g.output().series {
            out.push((
                g.rules[s.rule].rule.name.clone(),
                s.reference_samples,
                s.current_samples,
                s.ema,
            ));
        }
    }
    out
}

fn vector(value: &str) -> String {
    format!(
        r#"{{"status":"success","data":{{"resultType":"vector","result":[{{"metric":{{"__name__":"x","model":"fraud"}},"value":[1700000000,"{value}"]}}]}}}}"#
    )
}

/// Stops the sources and waits for their task to end.
async fn stop(stop: watch::Sender<bool>, task: tokio::task::JoinHandle<()>) {
    let _ = stop.send(true);
    tokio::time::timeout(WAIT, task)
        .await
        .expect("the sources stop")
        .expect("join");
}

const RULES: &str = r#"
groups:
  - name: g
    interval: 1h
    rules:
      - name: acc_ks
        detector: ks
        series: 'acc'
        reference: {first: 3}
        current: {last: 100}
        min_samples: 1
      - name: acc_ema
        detector: ema
        min_samples: 1
        series: 'acc{model="fraud"}'
        smoothing: 1
        below: 0.5
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warm_up_by_query_range_then_instant_queries_with_headers() {
    let fx = Receiver::start(Script::from_fn(|r| {
        if path(r).ends_with("/query_range") {
            ok(r#"{"status":"success","data":{"resultType":"matrix","result":[
                {"metric":{"model":"fraud"},"values":[[1700000000,"0.9"],[1700000010,"0.8"],[1700000020,"0.7"],[1700000030,"0.6"]]}]}}"#)
        } else {
            ok(&vector("0.25"))
        }
    }))
    .await;
    let dir = tempfile::tempdir().expect("dir");
    let config = format!(
        r#"
rule_files: [rules.yml]
query_sources:
  - name: mimir
    url: {}/
    interval: 50ms
    timeout: 2s
    headers: {{X-Scope-OrgID: team-a}}
    queries:
      - record: acc
        expr: 'avg_over_time(model_accuracy{{model="fraud"}}[5m])'
"#,
        fx.url("/prometheus")
    );
    let engine = engine(dir.path(), &config, RULES);
    let (stop_tx, stop_rx) = watch::channel(false);
    let sources = engine.current().config.query_sources.clone();
    let task = spawn_query_sources(engine.sources(), sources, stop_rx);
    // A tick starts after the previous one has ingested its answers: with three instant
    // queries sent, the first two are in the windows.
    wait_until("three instant queries after the warm-up", WAIT, || async {
        fx.requests()
            .iter()
            .filter(|r| path(r) == "/prometheus/api/v1/query")
            .count()
            >= 3
    })
    .await;
    let seen = fx.requests();
    let first = &seen[0];
    assert_eq!(path(first), "/prometheus/api/v1/query_range");
    assert_eq!(
        param(first, "query").as_deref(),
        Some(r#"avg_over_time(model_accuracy{model="fraud"}[5m])"#)
    );
    let number = |name: &str| -> f64 {
        param(first, name)
            .unwrap_or_else(|| panic!("no {name}: {first:?}"))
            .parse()
            .expect("f64")
    };
    let (start, end, step) = (number("start"), number("end"), number("step"));
    assert!((end - start - 3600.0).abs() < 0.01, "{first:?}");
    assert!((3600.0 / step) <= PROMETHEUS_MAX_RANGE_POINTS, "{first:?}");
    for r in &seen {
        assert_eq!(param(r, "timeout").as_deref(), Some("2000ms"), "{r:?}");
        assert_eq!(r.header("x-scope-orgid"), Some("team-a"), "{r:?}");
    }
    let evaluated = evaluate(&engine);
    // The warm-up fed 4 samples in time order: 3 frozen as the reference, then live ones.
    let ks = evaluated.iter().find(|e| e.0 == "acc_ks").expect("ks");
    assert_eq!(ks.1, 3, "{evaluated:?}");
    assert!(ks.2 >= 2, "{evaluated:?}");
    let ema = evaluated.iter().find(|e| e.0 == "acc_ema").expect("ema");
    assert_eq!(ema.3, Some(0.25), "{evaluated:?}");
    let status = engine.telemetry.query_sources.snapshot();
    let q = &status["mimir"].queries["acc"];
    assert_eq!(q.warmed.map(|(_, n)| n), Some(4));
    assert_eq!(q.last_series, 1);
    assert!(q.last_error.is_none(), "{q:?}");
    assert_eq!(engine.telemetry.query_failures.get("mimir"), 0.0);
    stop(stop_tx, task).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_and_timeouts_are_counted_and_the_source_goes_on() {
    let fx = Receiver::start(
        Script::replies([
            Reply::status(503).body("unavailable"),
            ok(&vector("1")).delay(Duration::from_secs(3)),
            Reply::status(400)
                .body(r#"{"status":"error","errorType":"bad_data","error":"parse error"}"#),
            ok("not json"),
        ])
        .then(ok(&vector("0.75"))),
    )
    .await;
    let dir = tempfile::tempdir().expect("dir");
    let config = format!(
        r#"
rule_files: [rules.yml]
query_sources:
  - name: flaky
    url: {}
    interval: 20ms
    timeout: 200ms
    queries:
      - record: acc
        expr: 'model_accuracy'
"#,
        fx.url("")
    );
    // No warm-up: the rule already holds a series when the source starts.
    let engine = engine(dir.path(), &config, RULES);
    let labels = Labels::from([("model".to_string(), "fraud".to_string())]);
    let seed = [SeriesSamples {
        metric: "acc".into(),
        labels,
        values: vec![0.5],
    }];
    engine.ingest(&seed, "push", now_ms()).expect("seed");
    let (stop_tx, stop_rx) = watch::channel(false);
    let task = spawn_configured_query_sources(engine.sources(), stop_rx);
    // The answer is ingested (on the blocking pool), then the source's status is updated.
    wait_until("a good answer after four bad ones", WAIT, || async {
        engine.telemetry.samples_received.get(SOURCE_LABEL) >= 1.0
            && engine.telemetry.query_sources.to_json()[0]["queries"][0]["health"] == "ok"
    })
    .await;
    assert_eq!(engine.telemetry.query_failures.get("flaky"), 4.0);
    assert!(fx.requests().iter().all(|r| path(r) == "/api/v1/query"));
    let status = engine.telemetry.query_sources.to_json();
    let q = &status[0]["queries"][0];
    assert_eq!(q["failures"], 4, "{status}");
    assert_eq!(q["health"], "ok", "{status}");
    assert_eq!(
        q["last_error"], "query: undecodable response: expected ident at line 1 column 2",
        "{status}"
    );
    let text =
        driftgauge::output::metrics::render(&engine, driftgauge::formats::exposition::Format::Text);
    assert!(
        text.contains("driftgauge_query_failures_total{source=\"flaky\"} 4"),
        "{text}"
    );
    stop(stop_tx, task).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_added_by_a_reload_is_warmed_from_raw_samples() {
    let raw = r#"up{job="a"}[3600s]"#;
    let fx = Receiver::start(Script::from_fn(move |r| {
        if param(r, "query").is_some_and(|q| q.ends_with("[3600s]")) {
            ok(r#"{"status":"success","data":{"resultType":"matrix","result":[
                {"metric":{"__name__":"up","job":"a"},"values":[[1700000000,"1"],[1700000001,"0"],[1700000002,"1"]]}]}}"#)
        } else {
            ok(r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"__name__":"up","job":"a"},"value":[1700000003,"1"]}]}}"#)
        }
    }))
    .await;
    let dir = tempfile::tempdir().expect("dir");
    let config = format!(
        "rule_files: [rules.yml]\nquery_sources:\n  - {{name: prom, url: {}, interval: 20ms, queries: [{{record: up_copy, expr: 'up{{job=\"a\"}}'}}]}}\n",
        fx.url("")
    );
    let engine = engine(dir.path(), &config, "groups: []\n");
    let (stop_tx, stop_rx) = watch::channel(false);
    let task = spawn_configured_query_sources(engine.sources(), stop_rx);
    wait_until("instant queries", WAIT, || async {
        fx.requests().len() >= 2
    })
    .await;
    assert!(
        fx.requests()
            .iter()
            .all(|r| param(r, "query").as_deref() == Some(r#"up{job="a"}"#)),
        "no rule takes up_copy: nothing to warm"
    );
    let rules = r#"
groups:
  - name: g
    interval: 1h
    rules:
      - name: up_ks
        detector: ks
        series: 'up_copy'
        reference: {first: 3}
        current: {last: 10}
        min_samples: 1
"#;
    reload(&engine, dir.path(), rules);
    wait_until("a warm-up after the reload", WAIT, || async {
        fx.requests()
            .iter()
            .any(|r| param(r, "query").as_deref() == Some(raw))
    })
    .await;
    // Two ticks after the warm-up: the first one's answer is in the windows.
    wait_until("two instant queries after the warm-up", WAIT, || async {
        fx.requests()
            .iter()
            .rev()
            .take_while(|r| param(r, "query").as_deref() != Some(raw))
            .count()
            >= 2
    })
    .await;
    let evaluated = evaluate(&engine);
    assert_eq!(evaluated.len(), 1, "{evaluated:?}");
    assert_eq!(
        evaluated[0].1, 3,
        "raw samples fill the reference: {evaluated:?}"
    );
    assert!(evaluated[0].2 >= 1, "{evaluated:?}");
    let warms = fx
        .requests()
        .iter()
        .filter(|r| param(r, "query").as_deref() == Some(raw))
        .count();
    assert_eq!(warms, 1, "warmed once");
    stop(stop_tx, task).await;
}

/// A matrix of two class counters at `times` (Unix seconds): legit and fraud counts.
fn class_matrix(points: &[(i64, f64, f64)]) -> String {
    let series = |i: usize, class: &str| {
        let values: Vec<String> = points
            .iter()
            .map(|p| format!(r#"[{},"{}"]"#, p.0, if i == 0 { p.1 } else { p.2 }))
            .collect();
        format!(
            r#"{{"metric":{{"class":"{class}"}},"values":[{}]}}"#,
            values.join(",")
        )
    };
    format!(
        r#"{{"status":"success","data":{{"resultType":"matrix","result":[{},{}]}}}}"#,
        series(0, "legit"),
        series(1, "fraud")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reference_range_driftgauge_never_saw_is_read_from_the_query_source_first() {
    let now = now_ms() / 1000;
    // The known-good day, two days back: 90 legit and 10 fraud every 10 minutes.
    let (start, end) = (now - 3 * 86_400, now - 2 * 86_400);
    let day: Vec<(i64, f64, f64)> = (0..144)
        .map(|i| (start + 600 * i, 90.0 * i as f64, 10.0 * i as f64))
        .collect();
    let (legit_end, fraud_end) = (90.0 * 143.0, 10.0 * 143.0);
    // The last hour: 60 legit and 40 fraud a minute (and the counters went on between).
    let hour: Vec<(i64, f64, f64)> = (0..60)
        .map(|j| {
            let k = (j + 1) as f64;
            (
                now - 3600 + 60 * j,
                legit_end + 60.0 * k,
                fraud_end + 40.0 * k,
            )
        })
        .collect();
    let last = *hour.last().expect("points");
    let (day_body, hour_body) = (class_matrix(&day), class_matrix(&hour));
    let fx = Receiver::start(Script::from_fn(move |r| {
        if path(r).ends_with("/query_range") {
            let from: f64 = param(r, "start").and_then(|s| s.parse().ok()).unwrap_or(0.0);
            ok(if (from as i64) < now - 86_400 {
                &day_body
            } else {
                &hour_body
            })
        } else {
            ok(&format!(
                r#"{{"status":"success","data":{{"resultType":"vector","result":[{{"metric":{{"class":"legit"}},"value":[{now},"{}"]}},{{"metric":{{"class":"fraud"}},"value":[{now},"{}"]}}]}}}}"#,
                last.1, last.2
            ))
        }
    }))
    .await;
    let dir = tempfile::tempdir().expect("dir");
    let config = format!(
        "rule_files: [rules.yml]\nquery_sources:\n  - name: prom\n    url: {}\n    interval: 50ms\n    queries:\n      - record: predictions_total\n        expr: 'sum by (class) (increase(model_predictions_total[10m]))'\n",
        fx.url("")
    );
    let rules = format!(
        "groups:\n  - name: g\n    interval: 1h\n    rules:\n      - name: mix\n        detector: chi2\n        categories: predictions_total\n        category_label: class\n        reference: {{range: {{start: '{}', end: '{}'}}}}\n        current: {{duration: 1h}}\n",
        driftgauge::time::rfc3339(start * 1000),
        driftgauge::time::rfc3339(end * 1000)
    );
    let engine = engine(dir.path(), &config, &rules);
    let (stop_tx, stop_rx) = watch::channel(false);
    let sources = engine.current().config.query_sources.clone();
    let task = spawn_query_sources(engine.sources(), sources, stop_rx);
    wait_until("an instant query after the warm-up", WAIT, || async {
        fx.requests().iter().any(|r| path(r) == "/api/v1/query")
    })
    .await;
    let seen = fx.requests();
    // The pinned day first, then the warm-up hour.
    assert_eq!(path(&seen[0]), "/api/v1/query_range");
    assert_eq!(param(&seen[0], "start"), Some(format!("{start}.000")));
    assert_eq!(param(&seen[0], "end"), Some(format!("{end}.000")));
    assert_eq!(path(&seen[1]), "/api/v1/query_range");
    let evaluated = evaluate(&engine);
    let mix = evaluated.iter().find(|e| e.0 == "mix").expect("mix");
    // 143 increases of 100 inside the day; the hour's 60 of 100 in the current window (to a
    // chunk of 1h/32 at its old end).
    assert_eq!(mix.1, 14_300, "{evaluated:?}");
    assert!((5_700..=6_000).contains(&mix.2), "{evaluated:?}");
    let generation = engine.current();
    let status = generation.groups[0].output().series[0].status;
    assert_eq!(status.as_str(), "drifted");
    stop(stop_tx, task).await;
}

/// A raw-value rule's `range:` reference is read from the query source's history as a count
/// rule's is: the pinned period first, frozen, then the warm-up hour as the current window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_raw_value_range_reference_is_read_from_the_query_source_first() {
    let now = now_ms() / 1000;
    let (start, end) = (now - 3 * 86_400, now - 2 * 86_400);
    // A value a minute: the pinned day spread over [0, 1), the last hour over [0.5, 1.5).
    let spread = |i: i64| (i * 7919 % 1440) as f64 / 1440.0;
    let matrix = |points: Vec<(i64, f64)>| {
        let values: Vec<String> = points
            .iter()
            .map(|(t, v)| format!(r#"[{t},"{v}"]"#))
            .collect();
        format!(
            r#"{{"status":"success","data":{{"resultType":"matrix","result":[{{"metric":{{"model":"m"}},"values":[{}]}}]}}}}"#,
            values.join(",")
        )
    };
    let day_body = matrix((0..1440).map(|i| (start + 60 * i, spread(i))).collect());
    let hour_body = matrix(
        (0..60)
            .map(|j| (now - 3600 + 60 * j, 0.5 + spread(j * 24)))
            .collect(),
    );
    let fx = Receiver::start(Script::from_fn(move |r| {
        if path(r).ends_with("/query_range") {
            let from: f64 = param(r, "start").and_then(|s| s.parse().ok()).unwrap_or(0.0);
            ok(if (from as i64) < now - 86_400 {
                &day_body
            } else {
                &hour_body
            })
        } else {
            ok(&format!(
                r#"{{"status":"success","data":{{"resultType":"vector","result":[{{"metric":{{"model":"m"}},"value":[{now},"1.2"]}}]}}}}"#
            ))
        }
    }))
    .await;
    let dir = tempfile::tempdir().expect("dir");
    let config = format!(
        "rule_files: [rules.yml]\nquery_sources:\n  - name: prom\n    url: {}\n    interval: 50ms\n    queries:\n      - record: latency\n        expr: 'avg by (model) (rate(latency_sum[1m]))'\n",
        fx.url("")
    );
    let rules = format!(
        "groups:\n  - name: g\n    interval: 1h\n    rules:\n      - name: pinned\n        detector: ks\n        series: latency\n        reference: {{range: {{start: '{}', end: '{}'}}}}\n        current: {{duration: 2h}}\n        alpha: 0.001\n",
        driftgauge::time::rfc3339(start * 1000),
        driftgauge::time::rfc3339(end * 1000)
    );
    let engine = engine(dir.path(), &config, &rules);
    let (stop_tx, stop_rx) = watch::channel(false);
    let sources = engine.current().config.query_sources.clone();
    let task = spawn_query_sources(engine.sources(), sources, stop_rx);
    wait_until("an instant query after the warm-up", WAIT, || async {
        fx.requests().iter().any(|r| path(r) == "/api/v1/query")
    })
    .await;
    let seen = fx.requests();
    assert_eq!(path(&seen[0]), "/api/v1/query_range");
    assert_eq!(param(&seen[0], "start"), Some(format!("{start}.000")));
    assert_eq!(param(&seen[0], "end"), Some(format!("{end}.000")));
    let evaluated = evaluate(&engine);
    let pinned = evaluated.iter().find(|e| e.0 == "pinned").expect("pinned");
    // The whole day is the reference; the hour (and the instant answers after it) the
    // current window.
    assert_eq!(pinned.1, 1440, "{evaluated:?}");
    assert!(pinned.2 >= 60, "{evaluated:?}");
    let generation = engine.current();
    let status = generation.groups[0].output().series[0].status;
    assert_eq!(status.as_str(), "drifted");
    stop(stop_tx, task).await;
}

/// Native histogram results (`"histogram"` instead of `"value"`) are expanded into the
/// record's classic series, `<record>_bucket{le}` (cumulative), `_count` and `_sum`, which
/// rules select as they would a classic histogram's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_histogram_results_feed_rules_on_the_expanded_series() {
    let answers = std::sync::atomic::AtomicUsize::new(0);
    let fx = Receiver::start(Script::from_fn(move |r| {
        // The warm-up's range selector (rules that read `score_bucket` are warmed from the
        // record `score`): no history.
        if param(r, "query").is_some_and(|q| q.contains('[')) {
            return ok(r#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#);
        }
        // 9 observations, then 10 (one more in (8, 16]) from the second answer on.
        let extra = answers
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            .min(1);
        let h = format!(
            r#"{{"count":"{}","sum":"10.5","buckets":[[1,"-1","-0.5","2"],[3,"-0.001","0.001","2"],[0,"0.5","1","1"],[0,"1","2","2"],[0,"4","8","1"],[0,"8","16","{}"]]}}"#,
            9 + extra,
            1 + extra
        );
        ok(&format!(
            r#"{{"status":"success","data":{{"resultType":"vector","result":[{{"metric":{{"__name__":"model_prediction_score","model":"fraud"}},"histogram":[1700000000,{h}]}}]}}}}"#
        ))
    }))
    .await;
    let dir = tempfile::tempdir().expect("dir");
    let config = format!(
        r#"
rule_files: [rules.yml]
query_sources:
  - name: prom
    url: {}
    interval: 20ms
    queries:
      - record: score
        expr: 'model_prediction_score'
"#,
        fx.url("")
    );
    let rules = r#"
groups:
  - name: g
    interval: 1h
    rules:
      - name: le16
        detector: ema
        min_samples: 1
        series: 'score_bucket{le="16"}'
        smoothing: 1
        below: -1
      - name: le_neg
        detector: ema
        min_samples: 1
        series: 'score_bucket{le="-0.5"}'
        smoothing: 1
        below: -1
      - name: total
        detector: ema
        min_samples: 1
        series: 'score_count'
        smoothing: 1
        below: -1
"#;
    let engine = engine(dir.path(), &config, rules);
    let (stop_tx, stop_rx) = watch::channel(false);
    let sources = engine.current().config.query_sources.clone();
    let task = spawn_query_sources(engine.sources(), sources, stop_rx);
    wait_until("the second answer in the windows", WAIT, || async {
        evaluate(&engine)
            .iter()
            .any(|e| e.0 == "le16" && e.3 == Some(10.0))
    })
    .await;
    let evaluated = evaluate(&engine);
    let ema = |rule: &str| evaluated.iter().find(|e| e.0 == rule).and_then(|e| e.3);
    assert_eq!(ema("le_neg"), Some(2.0), "{evaluated:?}");
    assert_eq!(ema("total"), Some(10.0), "{evaluated:?}");
    assert_eq!(engine.telemetry.query_failures.get("prom"), 0.0);
    let status = engine.telemetry.query_sources.snapshot();
    assert!(status["prom"].queries["score"].last_error.is_none());
    // The record was warmed (its rules read `score_bucket`) before the instant queries.
    let first = &fx.requests()[0];
    assert_eq!(
        param(first, "query").as_deref(),
        Some("model_prediction_score[3600s]")
    );
    stop(stop_tx, task).await;
}
