//! The group scheduler: one task per rule group evaluating on the group's slots; the
//! evaluation itself runs on the blocking pool so it never stalls ingestion or `/metrics`.
//!
//! Slots are aligned as Prometheus aligns rule groups (`cluster::eval_timestamp`): multiples
//! of the interval shifted by a per-group offset from a hash of the group's name, and each
//! evaluation runs *at* its slot's time, not at the instant the task woke. Replicas with the
//! same config therefore evaluate a group at the same instants and, fed the same data, reach
//! the same verdicts with the same event times (hence the same webhook idempotency keys). A
//! new group (at start, after a reload) evaluates at once as of the slot just past, then on
//! every slot; a slot missed because an evaluation ran long is skipped, not made up.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;

use super::Engine;
use crate::cluster::{eval_timestamp, next_eval_timestamp};
use crate::time::{now_ms, stopped};

/// How often series no source feeds any more are looked for.
const IDLE_SWEEP: Duration = Duration::from_secs(60);

/// Runs until `shutdown` turns true. After every `Engine::apply` (the engine publishes the
/// config it applied) the groups of the new generation replace the old tasks (each new group
/// evaluates at once).
pub async fn run(engine: Arc<Engine>, mut shutdown: watch::Receiver<bool>) {
    let mut reloaded = engine.subscribe();
    loop {
        reloaded.borrow_and_update();
        let generation = engine.current();
        let mut tasks = JoinSet::new();
        for (gi, g) in generation.groups.iter().enumerate() {
            let engine = Arc::clone(&engine);
            let generation = Arc::clone(&generation);
            let period = g.group.interval.max(Duration::from_millis(10));
            let interval_ms = period.as_millis().min(i64::MAX as u128) as i64;
            let name = g.group.name.clone();
            tasks.spawn(async move {
                let mut at = eval_timestamp(&name, interval_ms, now_ms());
                loop {
                    let engine = Arc::clone(&engine);
                    let generation = Arc::clone(&generation);
                    let job = tokio::task::spawn_blocking(move || {
                        engine.evaluate_group(&generation, gi, at)
                    });
                    if let Err(e) = job.await {
                        tracing::error!(error = %e, "rule group evaluation panicked");
                    }
                    // The next slot after now (slots missed while evaluating are skipped),
                    // and never the same slot twice, even if the wall clock stepped back.
                    let now = now_ms();
                    at = next_eval_timestamp(&name, interval_ms, now).max(at + interval_ms);
                    let wait = u64::try_from(at - now).unwrap_or(0);
                    tokio::time::sleep(Duration::from_millis(wait)).await;
                }
            });
        }
        {
            let engine = Arc::clone(&engine);
            tasks.spawn(async move {
                let mut ticker = tokio::time::interval(IDLE_SWEEP);
                loop {
                    ticker.tick().await;
                    let engine = Arc::clone(&engine);
                    // It takes every rule's lock in turn: not on an async worker.
                    let sweep = tokio::task::spawn_blocking(move || engine.collect_idle(now_ms()));
                    if let Err(e) = sweep.await {
                        tracing::error!(error = %e, "idle series sweep panicked");
                    }
                }
            });
        }
        tokio::select! {
            changed = reloaded.changed() => {
                tasks.shutdown().await;
                if changed.is_err() {
                    return;
                }
            }
            _ = stopped(&mut shutdown) => {
                tasks.shutdown().await;
                return;
            }
        }
    }
}
