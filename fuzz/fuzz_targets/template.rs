//! Fuzz target: templates (annotations and webhook bodies) parse or fail with an offset
//! inside the text, and what parses expands, over labels, a payload and secrets, without a
//! panic; a body template's whole-value expansion is valid JSON.

#![no_main]

use std::collections::BTreeMap;

use driftgauge::config::template::{expand, BodyTemplate, Data, Kind, Template, Value};
use driftgauge::labels::Labels;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let labels = Labels::from([("model".to_string(), "fraud".to_string())]);
    for kind in [Kind::Annotation, Kind::Body] {
        match Template::parse(&text, kind) {
            Ok(t) => {
                let payload = serde_json::json!({"rule": "r", "statistic": 0.5, "labels": {"model": "m"}});
                let data = match kind {
                    Kind::Annotation => Data::annotation(&labels, Some(1234.5)),
                    Kind::Body => Data {
                        dot: Value::from_json(&payload),
                        vars: vec![("secrets", Value::Map(BTreeMap::new()))],
                    },
                };
                let _ = t.render(&data);
                if let Ok(v) = BodyTemplate::Text(t).render(&payload, &BTreeMap::new()) {
                    assert!(serde_json::from_str::<serde_json::Value>(&v.to_string()).is_ok());
                }
            }
            Err(e) => assert!(e.offset <= text.chars().count(), "{e:?}"),
        }
    }
    let _ = expand(&text, &labels, None);
});
