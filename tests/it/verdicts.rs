//! Verdicts through the public contract: the level a budget gives and the rule-wide share on
//! `/metrics` and `/api/v1/rules`, and a window with nothing new left alone.

use crate::support::{metric_value, Files, Rng, Server};

const RULES: &str = r#"
groups:
  - name: features
    interval: 100ms
    rules:
      - name: drift
        detector: ks
        series: amount
        reference: {first: 200}
        current: {last: 200}
        min_samples: 200
        false_alarms: 1/1d
        share: 0.5
"#;

fn labels(model: &str) -> [(&'static str, String); 1] {
    [("model", model.to_string())]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_budget_sets_the_level_and_the_share_gauge_follows_the_series() {
    let server = Server::start(Files::new("").rule_file("r.yml", RULES)).await;
    let mut rng = Rng::new(11);
    // Four models; two do not shift, then two shift by 1 sd (in that order, so the share
    // reaches one half only once all four are in).
    for (model, shift) in [("c", 0.0), ("d", 0.0), ("a", 1.0), ("b", 1.0)] {
        let l = labels(model);
        let l: Vec<(&str, &str)> = l.iter().map(|(k, v)| (*k, v.as_str())).collect();
        server.push("amount", &l, &rng.normals(200, 0.0, 1.0)).await;
        server
            .push("amount", &l, &rng.normals(200, shift, 1.0))
            .await;
    }
    let share = server
        .wait_metric(
            "driftgauge_drift_share",
            &[("rule", "drift"), ("group", "features")],
            |v| v == 0.5,
        )
        .await;
    assert_eq!(share, 0.5);
    let text = server.metrics().await;
    // 1/1d over a 100 ms interval: 0.1 s / 86,400 s per test.
    let level = 0.1 / 86_400.0;
    for model in ["a", "b", "c", "d"] {
        let t = metric_value(
            &text,
            "driftgauge_drift_threshold",
            &[("rule", "drift"), ("model", model)],
        )
        .expect("threshold gauge");
        assert!((t - level).abs() < level * 1e-9, "{model}: {t} vs {level}");
    }
    for (model, status) in [("a", 2.0), ("b", 2.0), ("c", 0.0), ("d", 0.0)] {
        assert_eq!(
            metric_value(
                &text,
                "driftgauge_drift_status",
                &[("rule", "drift"), ("model", model)]
            ),
            Some(status),
            "{model}"
        );
    }
    // The rule as a whole is drifted (2 of 4 >= 0.5), and the API says how it decides.
    let (status, body) = server.get("/api/v1/rules").await;
    assert_eq!(status, 200);
    let json: serde_json::Value = serde_json::from_str(&body).expect("json");
    let rule = &json["data"]["groups"][0]["rules"][0];
    assert_eq!(rule["drift_share"], 0.5, "{rule}");
    assert_eq!(rule["share_state"], "drifted", "{rule}");
    assert_eq!(rule["level"]["false_alarms"], "1/1d", "{rule}");
    assert_eq!(rule["level"]["false_alarms_scope"], "series", "{rule}");
    server.stop().await;
}

/// `POST /api/v1/evaluate` answers every detector with the library's numbers (each of which
/// agrees with SciPy on the reference vectors).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evaluate_takes_every_detector() {
    use driftgauge::detect::{anderson, chi2, cvm, divergence, energy, wasserstein};
    use serde_json::json;
    let server = Server::start(Files::new("rule_files: []\n")).await;
    let mut rng = Rng::new(21);
    let a = rng.normals(300, 0.0, 1.0);
    let b = rng.normals(200, 0.4, 1.2);
    let post = |body: serde_json::Value| {
        let server = &server;
        async move {
            let (status, v) = server.post_json("/api/v1/evaluate", body.clone()).await;
            assert_eq!(status, 200, "{body}: {v}");
            v
        }
    };
    let v = post(json!({"detector": "cvm", "reference": a, "current": b})).await;
    let c = cvm::cramervonmises_2samp(&a, &b, cvm::CvmMethod::Auto).unwrap();
    assert_eq!(
        (v["statistic"].as_f64(), v["p_value"].as_f64()),
        (Some(c.statistic), Some(c.p_value))
    );
    assert_eq!(v["status"], "drifted");
    let v = post(json!({"detector": "anderson", "reference": a, "current": b, "variant": "right"}))
        .await;
    let x = anderson::anderson_2samp(&a, &b, anderson::Variant::Right).unwrap();
    assert_eq!(
        (v["statistic"].as_f64(), v["p_value"].as_f64()),
        (Some(x.statistic), Some(x.p_value))
    );
    let w = [1.0; 300];
    let v = post(json!({"detector": "wasserstein", "reference": a, "current": b, "reference_weights": w.to_vec(), "threshold": 0.1})).await;
    let d = wasserstein::wasserstein_distance(&a, &b, Some(&w), None).unwrap();
    assert_eq!(
        (v["statistic"].as_f64(), &v["p_value"], &v["status"]),
        (Some(d), &serde_json::Value::Null, &json!("drifted"))
    );
    let v = post(json!({"detector": "energy", "reference": a, "current": b})).await;
    let e = energy::energy_distance(&a, &b, None, None).unwrap();
    assert_eq!(
        (v["statistic"].as_f64(), &v["status"]),
        (Some(e), &serde_json::Value::Null)
    );
    // Counts: one per class, in the same order.
    let (ra, rb) = (vec![120.0, 60.0, 20.0], vec![80.0, 70.0, 50.0]);
    let v = post(json!({"detector": "gtest", "reference_counts": ra, "current_counts": rb})).await;
    let g =
        chi2::chi2_contingency(&[&ra[..], &rb[..]], false, chi2::Lambda::LogLikelihood).unwrap();
    assert_eq!(
        (
            v["statistic"].as_f64(),
            v["p_value"].as_f64(),
            v["dof"].as_u64()
        ),
        (Some(g.statistic), Some(g.p_value), Some(2))
    );
    let v = post(json!({"detector": "jensenshannon", "reference_counts": ra, "current_counts": rb, "base": "e"})).await;
    let js = divergence::jensenshannon(&ra, &rb, divergence::Base::Natural).unwrap();
    assert_eq!(v["statistic"].as_f64(), Some(js));
    let v =
        post(json!({"detector": "hellinger", "reference_counts": ra, "current_counts": rb})).await;
    assert_eq!(
        v["statistic"].as_f64(),
        Some(divergence::hellinger(&ra, &rb).unwrap())
    );
    // Values to a binned detector: ten bins on the reference's deciles.
    let v = post(json!({"detector": "psi", "reference": a, "current": b, "bins": 10})).await;
    assert_eq!(v["bins"], 10);
    assert_eq!(v["n_reference"], 300.0);
    assert!(v["statistic"].as_f64().unwrap() > 0.1, "{v}");
    let v = post(json!({"detector": "chi2", "reference": a, "current": b})).await;
    let (ca, cb) = driftgauge::detect::evaluate::quantile_bins(&a, &b, 10).unwrap();
    let (ca, cb) = driftgauge::detect::evaluate::merge_sparse(&ca, &cb);
    let c = chi2::chi2_contingency(&[&ca[..], &cb[..]], false, chi2::Lambda::Pearson).unwrap();
    assert_eq!(
        (v["statistic"].as_f64(), v["p_value"].as_f64()),
        (Some(c.statistic), Some(c.p_value))
    );
    for (body, needle) in [
        (
            json!({"detector": "psi", "reference_counts": [1, 2], "current_counts": [1]}),
            "current_counts: 1 counts, but reference_counts has 2",
        ),
        (
            json!({"detector": "chi2", "reference": [1, 2], "current_counts": [1]}),
            "takes either reference_counts and current_counts",
        ),
        (
            json!({"detector": "jensenshannon", "reference_counts": [1], "current_counts": [1], "base": 10}),
            "base: unknown \"10\"",
        ),
        (
            json!({"detector": "cvm", "current": [1, 2]}),
            "reference: required",
        ),
    ] {
        let (status, v) = server.post_json("/api/v1/evaluate", body.clone()).await;
        assert_eq!(status, 400, "{body}: {v}");
        assert!(v["error"].as_str().unwrap().contains(needle), "{body}: {v}");
    }
    server.stop().await;
}

/// `driftgauge eval --detector=...` takes every detector on one column, values or `--counts`,
/// through the same code as the API, and `--fail-on` gates on its status.
#[test]
fn eval_takes_every_detector_on_one_column() {
    use driftgauge::detect::{chi2, cvm, wasserstein};
    use std::process::Command;
    let dir = tempfile::tempdir().expect("dir");
    let write = |name: &str, values: &[f64]| {
        let text: String = values.iter().map(|v| format!("{v}\n")).collect();
        std::fs::write(dir.path().join(name), text).expect("write");
        dir.path().join(name)
    };
    let a: Vec<f64> = (1..=100).map(f64::from).collect();
    let b: Vec<f64> = (30..=130).map(f64::from).collect();
    let (fa, fb) = (write("a.txt", &a), write("b.txt", &b));
    let (ca, cb) = (
        write("ca.txt", &[50.0, 30.0, 20.0]),
        write("cb.txt", &[30.0, 30.0, 40.0]),
    );
    let run = |args: &[&str], files: (&std::path::Path, &std::path::Path)| {
        let out = Command::new(env!("CARGO_BIN_EXE_driftgauge"))
            .arg("eval")
            .args(args)
            .arg("--reference")
            .arg(files.0)
            .arg("--current")
            .arg(files.1)
            .arg("--output=json")
            .output()
            .expect("run eval");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
        (out.status.code(), v)
    };
    let (code, v) = run(&["--detector=cvm"], (&fa, &fb));
    let c = cvm::cramervonmises_2samp(&a, &b, cvm::CvmMethod::Auto).unwrap();
    assert_eq!(code, Some(0));
    assert_eq!(
        (v["statistic"].as_f64(), v["p_value"].as_f64()),
        (Some(c.statistic), Some(c.p_value))
    );
    let (_, v) = run(&["--detector=chi2", "--counts"], (&ca, &cb));
    let x = chi2::chi2_contingency(
        &[[50.0, 30.0, 20.0], [30.0, 30.0, 40.0]],
        false,
        chi2::Lambda::Pearson,
    )
    .unwrap();
    assert_eq!(
        (
            v["statistic"].as_f64(),
            v["p_value"].as_f64(),
            v["dof"].as_u64()
        ),
        (Some(x.statistic), Some(x.p_value), Some(2))
    );
    // A distance with a threshold gates CI: exit 2 when drifted.
    let (code, v) = run(
        &[
            "--detector=wasserstein",
            "--threshold=10",
            "--fail-on=drifted",
        ],
        (&fa, &fb),
    );
    assert_eq!(
        v["statistic"].as_f64(),
        Some(wasserstein::wasserstein_distance(&a, &b, None, None).unwrap())
    );
    assert_eq!(
        (code, &v["status"]),
        (Some(2), &serde_json::json!("drifted"))
    );
}
