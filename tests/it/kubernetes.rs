//! `deploy/kubernetes/`: what the manifests carry works. The config and rules of the
//! ConfigMaps pass `driftgauge check`, and each StatefulSet's command line starts a
//! driftgauge that is the shard (or replica) it says. (The manifests' schemas are checked by
//! `scripts/validate-kubernetes.py`, which `scripts/test` runs.)

use std::path::{Path, PathBuf};

use marked_yaml::Node;

use crate::cli::{bin, Process};
use crate::support::{metric_value, poll, WAIT};

fn manifests() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes")
}

/// The YAML documents of a manifest file.
fn documents(file: &str) -> Vec<Node> {
    let text = std::fs::read_to_string(manifests().join(file)).expect("manifest");
    text.split("\n---\n")
        .map(|doc| marked_yaml::parse_yaml(0, doc).unwrap_or_else(|e| panic!("{file}: {e}")))
        .collect()
}

fn at<'a>(node: &'a Node, path: &[&str]) -> &'a Node {
    path.iter().fold(node, |n, key| {
        n.as_mapping()
            .and_then(|m| m.get_node(key))
            .unwrap_or_else(|| panic!("no {key} in {path:?}"))
    })
}

fn text(node: &Node) -> String {
    node.as_scalar().expect("scalar").as_str().to_string()
}

/// The `data` of the ConfigMap named `name`, by key.
fn config_map(name: &str) -> Vec<(String, String)> {
    let doc = documents("configmap.yaml")
        .into_iter()
        .find(|d| text(at(d, &["metadata", "name"])) == name)
        .unwrap_or_else(|| panic!("no ConfigMap {name}"));
    at(&doc, &["data"])
        .as_mapping()
        .expect("data")
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), text(v)))
        .collect()
}

/// The config and rules of the ConfigMaps written under `dir` (`config/`, `rules/`), with
/// the rule glob pointed there.
fn write_config(dir: &Path) -> (PathBuf, Vec<PathBuf>) {
    std::fs::create_dir_all(dir.join("config")).unwrap();
    std::fs::create_dir_all(dir.join("rules")).unwrap();
    let mut rules = Vec::new();
    for (name, body) in config_map("driftgauge-rules") {
        let path = dir.join("rules").join(name);
        std::fs::write(&path, body).unwrap();
        rules.push(path);
    }
    let (_, config) = config_map("driftgauge-config")
        .into_iter()
        .find(|(k, _)| k == "driftgauge.yml")
        .expect("driftgauge.yml");
    assert!(config.contains("/etc/driftgauge/rules/*.yml"), "{config}");
    let config = config.replace(
        "/etc/driftgauge/rules/*.yml",
        &format!("{}/*.yml", dir.join("rules").display()),
    );
    let path = dir.join("config/driftgauge.yml");
    std::fs::write(&path, config).unwrap();
    (path, rules)
}

#[test]
fn the_config_maps_pass_check() {
    let dir = tempfile::tempdir().unwrap();
    let (config, rules) = write_config(dir.path());
    assert!(!rules.is_empty());
    let out = bin()
        .arg("check")
        .arg(format!("--config.file={}", config.display()))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("SUCCESS"),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Starts the container's command line of `file` as pod `pod`, with the paths moved under a
/// temporary folder and the listen address on loopback; returns its `/metrics`.
fn run_pod(file: &str, pod: &str) -> (Process, String, tempfile::TempDir) {
    let doc = &documents(file)[0];
    let replicas: u32 = text(at(doc, &["spec", "replicas"])).parse().unwrap();
    let container = &at(doc, &["spec", "template", "spec", "containers"])
        .as_sequence()
        .unwrap()[0];
    let args: Vec<String> = at(container, &["args"])
        .as_sequence()
        .unwrap()
        .iter()
        .map(text)
        .collect();
    assert_eq!(args[0], "serve");
    if let Some(total) = args.iter().find_map(|a| a.strip_prefix("--shard.total=")) {
        assert_eq!(
            total.parse::<u32>().unwrap(),
            replicas,
            "--shard.total is replicas"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path());
    let args: Vec<String> = args[1..]
        .iter()
        .filter(|a| !a.starts_with("--web.listen-address="))
        .map(|a| {
            a.replace("$(POD_NAME)", pod)
                .replace("/etc/driftgauge/", &format!("{}/", dir.path().display()))
                .replace(
                    "/var/lib/driftgauge",
                    &dir.path().join("data").display().to_string(),
                )
        })
        .collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let p = Process::start(dir.path(), &args);
    poll("ready", WAIT, || p.get("/-/ready").0 == 200);
    let metrics = p.get("/metrics").1;
    (p, metrics, dir)
}

#[test]
fn the_sharded_statefulset_runs_pod_n_as_shard_n() {
    let (_p, metrics, _dir) = run_pod("statefulset.yaml", "driftgauge-2");
    assert_eq!(
        metric_value(
            &metrics,
            "driftgauge_shard_info",
            &[("index", "2"), ("total", "3")]
        ),
        Some(1.0),
        "{metrics}"
    );
}

#[test]
fn the_ha_pair_statefulset_runs_whole_replicas() {
    let (_p, metrics, _dir) = run_pod("ha-pair/statefulset.yaml", "driftgauge-1");
    assert_eq!(
        metric_value(
            &metrics,
            "driftgauge_shard_info",
            &[("index", "0"), ("total", "1")]
        ),
        Some(1.0),
        "{metrics}"
    );
}
