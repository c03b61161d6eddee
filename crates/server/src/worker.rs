//! Background work derived from the store, so it survives a restart: ring timeouts
//! and planned starts fall due, and old messages are forgotten.

use std::sync::Arc;
use std::time::Duration;

use callhub_core::{Command, apply};
use tokio_util::sync::CancellationToken;

use crate::app::{App, now};

/// Messages are kept two days, twice what a client is promised for resume.
const MESSAGE_RETENTION: chrono::Duration = chrono::Duration::hours(48);

pub async fn run(app: Arc<App>, shutdown: CancellationToken) {
    let mut ticks = tokio::time::interval(app.config.tick_interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_prune = std::time::Instant::now() - Duration::from_secs(3600);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = shutdown.cancelled() => return,
        }
        fire_due(&app).await;
        if last_prune.elapsed() >= Duration::from_secs(3600) {
            last_prune = std::time::Instant::now();
            if let Err(e) = app
                .background
                .prune_messages(now() - MESSAGE_RETENTION)
                .await
            {
                tracing::warn!(error = %e, "pruning messages failed");
            }
        }
    }
}

/// Applies `Tick` to every call whose deadline has come.
pub async fn fire_due(app: &Arc<App>) {
    let due = match app.background.due_calls(now(), 500).await {
        Ok(due) => due,
        Err(e) => {
            tracing::warn!(error = %e, "looking for due calls failed");
            return;
        }
    };
    for call_id in due {
        let rules = app.rules;
        let result = app
            .background
            .update_call(call_id, &|call| apply(call, Command::Tick, now(), &rules))
            .await;
        match result {
            Ok(committed) => {
                app.after_commit(&committed);
                // Several nodes may find the same call due; the row lock lets one
                // apply it, and the others' Tick then changes nothing.
                if !committed.new_events().is_empty() {
                    app.metrics.count(crate::metrics::DEADLINES_FIRED);
                }
            }
            Err(e) => tracing::warn!(%call_id, error = %e, "firing a call's deadline failed"),
        }
    }
}
