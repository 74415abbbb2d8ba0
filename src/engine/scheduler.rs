//! The group scheduler: one task per rule group ticking on the group's interval; the
//! evaluation itself runs on the blocking pool so it never stalls ingestion or `/metrics`.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::MissedTickBehavior;

use super::Engine;
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
            tasks.spawn(async move {
                let mut ticker = tokio::time::interval(period);
                ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
                loop {
                    ticker.tick().await;
                    let engine = Arc::clone(&engine);
                    let generation = Arc::clone(&generation);
                    let job = tokio::task::spawn_blocking(move || {
                        engine.evaluate_group(&generation, gi, now_ms())
                    });
                    if let Err(e) = job.await {
                        tracing::error!(error = %e, "rule group evaluation panicked");
                    }
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
