//! The EMA detector against the reference vectors (plain IEEE double arithmetic).

use driftgauge::detect::ema;

#[test]
fn every_ema_vector_matches_bit_for_bit() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/reference/ema_public.json"
    );
    let text = std::fs::read_to_string(path).expect("ema_public.json");
    let doc: serde_json::Value = serde_json::from_str(&text).expect("json");
    let cases = doc["cases"].as_array().expect("cases");
    assert_eq!(cases.len(), doc["case_count"].as_u64().unwrap() as usize);
    let mut failures = Vec::new();
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let alpha = case["alpha"].as_f64().unwrap();
        let values: Vec<f64> = case["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let expected: Vec<f64> = case["ema"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let got = ema::series(&values, alpha);
        if let Some(i) = (0..expected.len()).find(|&i| got[i].to_bits() != expected[i].to_bits()) {
            failures.push(format!(
                "{name}: step {i}: got {:?}, want {:?}",
                got[i], expected[i]
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
