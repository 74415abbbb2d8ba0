//! Scale-out through real processes: samples live in a real VictoriaMetrics (Debian's
//! `victoria-metrics`, started here), three `--shard.index/--shard.total` processes read it
//! through `query_sources`, and their verdicts are compared with one unsharded process's.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

use driftgauge::cluster::shard_of;

use crate::cli::Process;
use crate::support::{metric_value, poll, Rng, WAIT};

const SHARDS: u32 = 3;
const GROUPS: usize = 9;

/// A VictoriaMetrics single-node server on a free loopback port, killed on drop.
struct VictoriaMetrics {
    addr: SocketAddr,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for VictoriaMetrics {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl VictoriaMetrics {
    fn start() -> VictoriaMetrics {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let log = std::fs::File::create(dir.path().join("vm.log")).unwrap();
        let child = Command::new("victoria-metrics")
            .arg(format!(
                "-storageDataPath={}",
                dir.path().join("data").display()
            ))
            .arg(format!("-httpListenAddr={addr}"))
            .arg("-retentionPeriod=1d")
            .arg("-search.disableCache")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "victoria-metrics is required for the sharding test \
                     (apt-get install victoria-metrics; scripts/test installs it): {e}"
                )
            });
        let vm = VictoriaMetrics {
            addr,
            child,
            _dir: dir,
        };
        poll("victoria-metrics to answer /health", WAIT, || {
            std::net::TcpStream::connect(vm.addr).is_ok()
                && crate::cli::http(&vm.addr.to_string(), "GET", "/health", "").0 == 200
        });
        vm
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_shards_over_victoriametrics_find_what_one_unsharded_instance_finds() {
    let vm = VictoriaMetrics::start();
    driftgauge::net::install_crypto_provider();
    let client = reqwest::Client::new();

    // Group names chosen so that every shard owns at least one group.
    let groups: Vec<String> = (0..GROUPS).map(|i| format!("drift-{i}")).collect();
    for s in 0..SHARDS {
        assert!(
            groups.iter().any(|g| shard_of(g, SHARDS) == s),
            "shard {s} owns no group: pick other names"
        );
    }
    // 200 reference values then 200 shifted ones per model, one a second, ending a minute
    // ago: all within the hour a warm-up reads.
    let now = driftgauge::time::now_ms();
    let start = now - 60_000 - 400_000;
    let mut rng = Rng::new(7);
    let mut lines = String::new();
    for (i, _) in groups.iter().enumerate() {
        let mut values = rng.normals(200, 0.0, 1.0);
        values.extend(rng.normals(200, 1.0 + i as f64 * 0.1, 1.0));
        for (k, v) in values.iter().enumerate() {
            lines.push_str(&format!(
                "feature_value{{model=\"m{i}\"}} {v:?} {}\n",
                start + k as i64 * 1000
            ));
        }
    }
    let r = client
        .post(vm.url("/api/v1/import/prometheus"))
        .body(lines)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "import: {}", r.status());
    let r = client
        .get(vm.url("/internal/force_flush"))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    // VictoriaMetrics holds every sample before driftgauge starts.
    crate::support::wait_until("the samples in VictoriaMetrics", WAIT, || async {
        let mut url = reqwest::Url::parse(&vm.url("/api/v1/query")).unwrap();
        url.query_pairs_mut()
            .append_pair("query", "sum(count_over_time(feature_value[1h]))");
        let text = client.get(url).send().await.unwrap().text().await.unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        let n = v["data"]["result"][0]["value"][1]
            .as_str()
            .unwrap_or("0")
            .to_string();
        (n == (GROUPS * 400).to_string()).then_some(()).ok_or(n)
    })
    .await;

    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("rules")).unwrap();
    // Queried once an hour: only the warm-up (the raw samples of the last hour) feeds the
    // windows, so every process sees exactly the same samples.
    std::fs::write(
        dir.path().join("driftgauge.yml"),
        format!(
            "global: {{evaluation_interval: 500ms}}\nrule_files: [\"rules/*.yml\"]\nquery_sources:\n  - name: vm\n    url: http://{}\n    interval: 1h\n    queries:\n      - record: feature_value\n        expr: feature_value\n",
            vm.addr
        ),
    )
    .unwrap();
    let mut rules = String::from("groups:\n");
    for (i, g) in groups.iter().enumerate() {
        rules.push_str(&format!(
            "  - name: {g}\n    interval: 500ms\n    rules:\n      - name: drift\n        detector: ks\n        series: 'feature_value{{model=\"m{i}\"}}'\n        reference: {{first: 200}}\n        current: {{last: 200}}\n        min_samples: 200\n"
        ));
    }
    std::fs::write(dir.path().join("rules/r.yml"), rules).unwrap();
    let start = |name: &str, extra: &[String]| {
        let mut args = vec![
            "--config.file=driftgauge.yml".to_string(),
            format!("--storage.path=data-{name}"),
        ];
        args.extend_from_slice(extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Process::start(dir.path(), &args)
    };
    let shards: Vec<Process> = (0..SHARDS)
        .map(|i| {
            // Shard 1 takes its index from a StatefulSet-style pod name.
            let index = if i == 1 {
                "--shard.index=driftgauge-1".to_string()
            } else {
                format!("--shard.index={i}")
            };
            start(
                &format!("shard-{i}"),
                &[index, format!("--shard.total={SHARDS}")],
            )
        })
        .collect();
    let whole = start("whole", &[]);

    // Every group evaluated with a verdict in the unsharded instance...
    let verdicts = |p: &Process| -> BTreeMap<String, (f64, f64, f64)> {
        let m = p.get("/metrics").1;
        groups
            .iter()
            .filter_map(|g| {
                let sel = [("group", g.as_str()), ("rule", "drift")];
                let v = (
                    metric_value(&m, "driftgauge_drift_status", &sel)?,
                    metric_value(&m, "driftgauge_drift_statistic", &sel)?,
                    metric_value(&m, "driftgauge_drift_p_value", &sel)?,
                );
                Some((g.clone(), v))
            })
            .collect()
    };
    let want = poll("every group's verdict, unsharded", WAIT * 2, || {
        let v = verdicts(&whole);
        (v.len() == GROUPS).then_some(v)
    });
    // ...and in exactly one shard, the one its name hashes onto.
    let got: Vec<BTreeMap<String, (f64, f64, f64)>> = shards
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let owned = groups
                .iter()
                .filter(|g| shard_of(g, SHARDS) == i as u32)
                .count();
            poll(&format!("shard {i}'s {owned} verdicts"), WAIT * 2, || {
                let v = verdicts(p);
                (v.len() == owned).then_some(v)
            })
        })
        .collect();
    let mut union = BTreeMap::new();
    for (i, (p, v)) in shards.iter().zip(&got).enumerate() {
        let m = p.get("/metrics").1;
        assert_eq!(
            metric_value(
                &m,
                "driftgauge_shard_info",
                &[("index", &i.to_string()), ("total", &SHARDS.to_string())]
            ),
            Some(1.0),
            "shard {i}"
        );
        for g in &groups {
            let evaluated = metric_value(&m, "driftgauge_rule_evaluations_total", &[("group", g)]);
            assert_eq!(
                evaluated.is_some(),
                shard_of(g, SHARDS) == i as u32,
                "shard {i}, group {g}: {evaluated:?}"
            );
        }
        // The samples of the other shards' groups were read, counted and dropped.
        let others = (GROUPS - v.len()) * 400;
        assert_eq!(
            metric_value(
                &m,
                "driftgauge_samples_unselected_total",
                &[("source", "query")]
            ),
            Some(others as f64),
            "shard {i}"
        );
        for (g, verdict) in v {
            assert!(
                union.insert(g.clone(), *verdict).is_none(),
                "{g} on two shards"
            );
        }
    }
    assert_eq!(
        union, want,
        "the shards' verdicts are the unsharded instance's"
    );
    for (g, (status, statistic, p)) in &want {
        assert_eq!(*status, 2.0, "{g} drifted (D={statistic}, p={p})");
    }
}

/// A model server's `/metrics`: one gauge per model, new values on every scrape.
async fn models_server(models: &'static [&'static str]) -> SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut n = 0u64;
        while let Ok((mut s, _)) = listener.accept().await {
            n += 1;
            let mut body = String::from("# TYPE model_score gauge\n");
            for (i, m) in models.iter().enumerate() {
                body.push_str(&format!(
                    "model_score{{model=\"{m}\"}} {}\n",
                    ((n * 7 + i as u64) % 13) as f64 / 13.0
                ));
            }
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
    addr
}

/// The documented sharded layout (README, "High availability and sharding"): one rule group
/// per model, named after it, and a real Prometheus whose `hashmod` relabelling sends each
/// model's series to the shard that evaluates its group, and nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_hashmod_routes_each_model_to_the_shard_that_evaluates_it() {
    use crate::prom::Prometheus;
    use crate::support::{wait_until, Files, Server};
    use driftgauge::cluster::{Cluster, Shard};

    const MODELS: &[&str] = &["fraud", "search", "ranker", "eta"];
    const TOTAL: u32 = 2;
    for s in 0..TOTAL {
        assert!(
            MODELS.iter().any(|m| shard_of(m, TOTAL) == s),
            "shard {s} owns no model"
        );
    }
    let target = models_server(MODELS).await;
    let mut rules = String::from("groups:\n");
    for m in MODELS {
        rules.push_str(&format!(
            "  - name: {m}\n    interval: 200ms\n    rules:\n      - name: score\n        detector: ema\n        series: 'model_score{{model=\"{m}\"}}'\n        smoothing: 0.5\n        below: 0.0\n"
        ));
    }
    let config = "global: {evaluation_interval: 200ms}\nrule_files: [\"rules/*.yml\"]\n";
    let mut shards = Vec::new();
    for i in 0..TOTAL {
        let files = Files::new(config).rule_file("r.yml", &rules);
        shards.push(
            Server::start_with(files, |o| {
                o.cluster = Cluster {
                    replica: None,
                    shard: Shard::new(i, TOTAL).unwrap(),
                }
            })
            .await,
        );
    }
    let mut remote_writes = String::new();
    for (i, s) in shards.iter().enumerate() {
        remote_writes.push_str(&format!(
            r#"
  - url: {url}
    write_relabel_configs:
      - source_labels: [__name__]
        regex: model_score
        action: keep
      - source_labels: [model]
        modulus: {TOTAL}
        target_label: __tmp_shard
        action: hashmod
      - source_labels: [__tmp_shard]
        regex: "{i}"
        action: keep
      - regex: __tmp_shard
        action: labeldrop
    queue_config:
      batch_send_deadline: 200ms
"#,
            url = s.url("/api/v1/write")
        ));
    }
    let prom_config = format!(
        "global:\n  scrape_interval: 250ms\nscrape_configs:\n  - job_name: models\n    static_configs:\n      - targets: [\"{target}\"]\nremote_write:{remote_writes}"
    );
    let _prom = Prometheus::start(&prom_config, &[]).await;

    for (i, s) in shards.iter().enumerate() {
        let owned: Vec<&str> = MODELS
            .iter()
            .copied()
            .filter(|m| shard_of(m, TOTAL) == i as u32)
            .collect();
        let m = wait_until(&format!("shard {i} evaluating {owned:?}"), WAIT, || async {
            let m = s.metrics().await;
            let all = owned.iter().all(|model| {
                metric_value(
                    &m,
                    "driftgauge_ema_value",
                    &[("group", model), ("model", model)],
                )
                .is_some()
            });
            all.then_some(m.clone()).ok_or(m)
        })
        .await;
        // Only its own models arrived: nothing to count as unselected, nothing of the others.
        assert_eq!(
            metric_value(
                &m,
                "driftgauge_samples_unselected_total",
                &[("source", "remote_write")]
            ),
            Some(0.0),
            "shard {i}"
        );
        assert!(
            metric_value(
                &m,
                "driftgauge_samples_received_total",
                &[("source", "remote_write")]
            )
            .unwrap_or(0.0)
                > 0.0
        );
        for model in MODELS.iter().filter(|m| !owned.contains(m)) {
            assert!(
                !m.contains(&format!("model=\"{model}\"")),
                "shard {i} has {model}:\n{m}"
            );
        }
    }
}

#[test]
fn shard_flags_take_the_ordinal_and_refuse_what_cannot_be_a_shard() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("driftgauge.yml"), "rule_files: []\n").unwrap();
    let p = Process::start_env(
        dir.path(),
        &[
            "--config.file=driftgauge.yml",
            "--shard.index-from-hostname",
            "--shard.total=4",
        ],
        &[("HOSTNAME", "driftgauge-3")],
    );
    poll("ready", WAIT, || p.get("/-/ready").0 == 200);
    let m = p.get("/metrics").1;
    assert_eq!(
        metric_value(
            &m,
            "driftgauge_shard_info",
            &[("index", "3"), ("total", "4")]
        ),
        Some(1.0),
        "{m}"
    );
    for (args, says) in [
        (
            vec!["--shard.index=3", "--shard.total=3"],
            "--shard.index=3: must be below --shard.total=3",
        ),
        (
            vec!["--shard.total=0"],
            "--shard.total=0: must be at least 1",
        ),
        (
            vec!["--shard.index=driftgauge", "--shard.total=2"],
            "\"driftgauge\" does not end in -N",
        ),
        (vec!["--cluster.replica="], "--cluster.replica=\"\""),
    ] {
        let out = crate::cli::bin()
            .current_dir(dir.path())
            .arg("serve")
            .arg("--web.listen-address=127.0.0.1:0")
            .arg("--config.file=driftgauge.yml")
            .args(&args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}
