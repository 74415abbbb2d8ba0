//! What the engine hands on when a rule+series enters or leaves `drifted`: an [`Event`] per
//! transition that calls webhooks, all of one evaluation at once, to a [`Notifier`] (the
//! webhook sender implements it). The engine decides *whether* to call (cooldown,
//! `send_resolved`); the notifier builds the payload, persists and delivers.
//!
//! An event's identity ([`Event::idempotency_key`]) is derived from what it is, never drawn
//! at random: two replicas with the same config and data, evaluating on the same aligned
//! slots, produce the same key for the same transition, so a receiver can dedupe.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use super::state::Status;
use crate::config::model::WebhookConfig;
use crate::labels::Labels;

/// One transition, with everything its webhook payloads say.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub group: String,
    pub rule: String,
    pub detector: &'static str,
    /// The series' (or `by`) labels with the rule's labels.
    pub labels: Labels,
    /// Expanded annotation templates.
    pub annotations: Labels,
    pub statistic: Option<f64>,
    pub p_value: Option<f64>,
    /// The EMA, for `ema` rules.
    pub value: Option<f64>,
    pub from: Status,
    pub to: Status,
    /// When the transition happened (Unix ms).
    pub at_ms: i64,
    /// The webhooks to call for it, by name (cooldown and `send_resolved` already applied).
    pub webhooks: Vec<String>,
    /// `--cluster.replica`: which replica saw it (in the payload, not in the identity).
    pub replica: Option<String>,
}

impl Event {
    /// The `Idempotency-Key` (and Standard Webhooks `webhook-id`) of this event's delivery to
    /// `webhook`: `evt_` and 32 hex digits of a SHA-256 over the group, rule, labels,
    /// transition, evaluation time and webhook name, each length-prefixed so no two
    /// different events can run together into the same bytes. Replicas agree on it; the
    /// replica name is not part of it.
    pub fn idempotency_key(&self, webhook: &str) -> String {
        let mut h = Sha256::new();
        let mut field = |bytes: &[u8]| {
            h.update((bytes.len() as u64).to_be_bytes());
            h.update(bytes);
        };
        field(b"driftgauge-event-v1");
        field(self.group.as_bytes());
        field(self.rule.as_bytes());
        field(&(self.labels.len() as u64).to_be_bytes());
        for (k, v) in &self.labels {
            field(k.as_bytes());
            field(v.as_bytes());
        }
        field(self.from.as_str().as_bytes());
        field(self.to.as_str().as_bytes());
        field(&self.at_ms.to_be_bytes());
        field(webhook.as_bytes());
        let digest = h.finalize();
        let mut key = String::with_capacity(36);
        key.push_str("evt_");
        for b in &digest[..16] {
            key.push_str(&format!("{b:02x}"));
        }
        key
    }
}

/// Takes the engine's events. Called from the blocking pool, never under an engine lock.
pub trait Notifier: Send + Sync + 'static {
    /// The webhooks of a newly applied config.
    fn configure(&self, webhooks: &BTreeMap<String, WebhookConfig>);

    /// Every event of one group evaluation, at once. Returns, per event and in the order of
    /// its `webhooks`, whether that delivery was accepted (persisted, when there is a store,
    /// and queued); a refused one is logged by the notifier and does not start a cooldown.
    fn notify(&self, events: &[Event]) -> Vec<Vec<bool>>;
}

/// A notifier that drops everything: for engines that run without webhooks (benchmarks,
/// `driftgauge test rules`-style dry runs, unit tests).
#[derive(Debug, Default)]
pub struct Discard;

impl Notifier for Discard {
    fn configure(&self, _: &BTreeMap<String, WebhookConfig>) {}

    fn notify(&self, events: &[Event]) -> Vec<Vec<bool>> {
        events
            .iter()
            .map(|e| vec![true; e.webhooks.len()])
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> Event {
        Event {
            group: "fraud-model".into(),
            rule: "amount_drift".into(),
            detector: "ks",
            labels: Labels::from([("model".to_string(), "fraud".to_string())]),
            annotations: Labels::new(),
            statistic: Some(0.5),
            p_value: Some(1e-9),
            value: None,
            from: Status::Stable,
            to: Status::Drifted,
            at_ms: 1_700_000_000_000,
            webhooks: vec!["retrain".into()],
            replica: Some("a".into()),
        }
    }

    #[test]
    fn the_key_is_the_event_not_the_replica_nor_the_verdict_figures() {
        let a = event();
        let key = a.idempotency_key("retrain");
        assert!(key.starts_with("evt_") && key.len() == 36, "{key}");
        let mut b = event();
        b.replica = Some("b".into());
        b.statistic = Some(0.6);
        b.annotations.insert("summary".into(), "x".into());
        assert_eq!(b.idempotency_key("retrain"), key);
        // Anything that makes it another event, or another delivery, changes it.
        let mut changed: Vec<Event> = Vec::new();
        for f in [
            (|e: &mut Event| e.group.push('x')) as fn(&mut Event),
            |e| e.rule.push('x'),
            |e| {
                e.labels.insert("feature".into(), "amount".into());
            },
            |e| e.from = Status::Warning,
            |e| e.to = Status::Stable,
            |e| e.at_ms += 15_000,
        ] {
            let mut e = event();
            f(&mut e);
            changed.push(e);
        }
        for e in &changed {
            assert_ne!(e.idempotency_key("retrain"), key, "{e:?}");
        }
        assert_ne!(a.idempotency_key("audit"), key);
        // Fields cannot run into each other.
        let mut c = event();
        c.group = "fraud-mode".into();
        c.rule = "lamount_drift".into();
        assert_ne!(c.idempotency_key("retrain"), key);
    }
}
