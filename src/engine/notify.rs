//! What the engine hands on when a rule+series enters or leaves `drifted`: an [`Event`] per
//! transition that calls webhooks, all of one evaluation at once, to a [`Notifier`] (the
//! webhook sender implements it). The engine decides *whether* to call (cooldown,
//! `send_resolved`); the notifier builds the payload, persists and delivers.

use std::collections::BTreeMap;

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
