//! Running an experiment: each pending item's replay started through the
//! ordinary replay path, at most `concurrency` at a time, and followed to
//! its end; then the experiment's status. A server stopping leaves the
//! experiment RUNNING for the next start to resume; a cancel ends it.

use super::Running;
use crate::engine::{Engine, ReplayRequest};
use crate::error::{EngineError, EngineResult};
use crate::model::*;
use crate::store::{RunRef, WriteBatch};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// How long to wait before trying a replay again that the server refused
/// for being at its limit of runs, or for a disk that refuses writes.
const BUSY_RETRY: Duration = Duration::from_millis(200);
/// The longest wait between two tries of a write the disk refused.
const MAX_WRITE_RETRY: Duration = Duration::from_secs(5);

pub(super) async fn run(engine: &Engine, id: &str, running: &Running) -> EngineResult<()> {
    let experiment = engine.store().experiment(id).await?;
    let slots = Arc::new(Semaphore::new(experiment.spec.concurrency.max(1) as usize));
    let mut items = JoinSet::new();
    for item in experiment.items.iter().filter(|i| !i.status.is_finished()) {
        let (engine, item, slots) = (engine.clone(), item.clone(), slots.clone());
        let (change, running) = (experiment.spec.change.clone(), running.clone());
        items.spawn(async move { run_item(&engine, item, &change, &slots, &running).await });
    }
    let mut failure = None;
    while let Some(done) = items.join_next().await {
        match done {
            Ok(Ok(())) => {}
            Ok(Err(e)) => failure = Some(e),
            Err(e) => failure = Some(EngineError::Internal(format!("experiment item task: {e}"))),
        }
    }
    if engine.shutting_down().is_cancelled() {
        return Ok(());
    }
    if let Some(e) = failure {
        return Err(e);
    }
    let mut experiment = engine.store().experiment(id).await?;
    experiment.status = if running.cancel.is_cancelled() {
        ExperimentStatus::Cancelled
    } else if experiment.count(ItemStatus::Failed) > 0 {
        ExperimentStatus::Failed
    } else {
        ExperimentStatus::Completed
    };
    experiment.finished_at = Some(now_micros());
    // Items are written as they settle; only the experiment's row is left.
    experiment.items.clear();
    commit(
        engine,
        WriteBatch {
            experiments: vec![experiment],
            ..WriteBatch::default()
        },
    )
    .await
}

/// One item: its replay started (unless it has one already) and followed
/// to its end, or the reason it cannot be replayed.
async fn run_item(
    engine: &Engine,
    item: ExperimentItem,
    change: &ExperimentChange,
    slots: &Arc<Semaphore>,
    running: &Running,
) -> EngineResult<()> {
    let stopping = engine.shutting_down();
    let _slot = tokio::select! {
        slot = slots.clone().acquire_owned() => Some(slot.map_err(|_| EngineError::Internal("experiment slots closed".into()))?),
        // Not started: it never will be. Started (before a restart): its
        // replay is cancelled below like any other under way.
        _ = running.cancel.cancelled(), if item.replay_run_id.is_none() => {
            return settle(engine, running, item, ItemStatus::Cancelled, None).await;
        }
        _ = running.cancel.cancelled() => None,
        _ = stopping.cancelled() => return Ok(()),
    };
    let replay_id = match item.replay_run_id.clone() {
        Some(id) => id,
        None => loop {
            if running.cancel.is_cancelled() {
                return settle(engine, running, item, ItemStatus::Cancelled, None).await;
            }
            let req = ReplayRequest {
                run: item.source_run_id.clone(),
                workflow: change.workflow.clone(),
                files: change.files.clone(),
                from: change.from.clone(),
                swaps: change.swaps.clone(),
                overrides: change.overrides.clone(),
                variables: change.variables.clone(),
                allow_drift: change.allow_drift,
                item: Some(item.clone()),
                request: None,
            };
            match engine.replay_run(req).await {
                Ok(run) => {
                    running.changed.send_modify(|n| *n += 1);
                    break run.id;
                }
                // Busy, not wrong: the replay can start once runs finish
                // or the disk takes writes again.
                Err(EngineError::ResourceExhausted(_) | EngineError::Unavailable(_)) => {
                    tokio::select! {
                        _ = tokio::time::sleep(BUSY_RETRY) => continue,
                        _ = stopping.cancelled() => return Ok(()),
                    }
                }
                Err(e) => {
                    let reason = e.to_string();
                    return settle(engine, running, item, ItemStatus::Skipped, Some(reason)).await;
                }
            }
        },
    };
    let status = tokio::select! {
        status = engine.run_finished(&replay_id) => status?,
        _ = running.cancel.cancelled() => {
            // Finished meanwhile is fine: cancel only what still runs.
            let _ = engine.cancel_run(&replay_id).await;
            engine.run_finished(&replay_id).await?
        }
        _ = stopping.cancelled() => return Ok(()),
    };
    let item = ExperimentItem {
        replay_run_id: Some(replay_id),
        ..item
    };
    settle(engine, running, item, ItemStatus::of_run(status), None).await
}

async fn settle(
    engine: &Engine,
    running: &Running,
    item: ExperimentItem,
    status: ItemStatus,
    reason: Option<String>,
) -> EngineResult<()> {
    let item = ExperimentItem {
        status,
        reason,
        ..item
    };
    commit(
        engine,
        WriteBatch {
            experiment_items: vec![item],
            ..WriteBatch::default()
        },
    )
    .await?;
    running.changed.send_modify(|n| *n += 1);
    Ok(())
}

/// Writes the experiment's progress. A disk that refuses writes is waited
/// out, as runs wait it out: giving up would leave the experiment running
/// with nothing running it until the next start. A server stopping ends
/// the wait; the next start carries on from what is durable.
async fn commit(engine: &Engine, batch: WriteBatch) -> EngineResult<()> {
    let stopping = engine.shutting_down();
    let mut batches = vec![batch];
    let mut wait = BUSY_RETRY;
    loop {
        let (back, result) = engine.store().commit_all(batches).await;
        match result {
            Err(e) if e.is_storage_unavailable() => {
                if wait == BUSY_RETRY {
                    tracing::warn!(error = %e, "the store refuses an experiment's write; retrying");
                }
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = stopping.cancelled() => return Err(e),
                }
                batches = back;
                wait = (wait * 2).min(MAX_WRITE_RETRY);
            }
            result => return result,
        }
    }
}

impl Engine {
    /// Waits until a run has finished and returns how it ended.
    pub(crate) async fn run_finished(&self, run_id: &str) -> EngineResult<RunStatus> {
        loop {
            if let Some(active) = self.0.active_run(run_id) {
                let mut done = active.done.subscribe();
                let _ = done.wait_for(|d| *d).await;
            }
            let run = self.store().find_run(RunRef(run_id)).await?;
            if run.status.is_finished() {
                return Ok(run.status);
            }
            // Not driven here yet (being resumed at start-up): look again.
            tokio::time::sleep(BUSY_RETRY).await;
        }
    }
}
