//! `worker://` tasks between servers sharing a PostgreSQL database. A run
//! executes on one server; the worker for one of its nodes may be
//! connected to another. When no worker of this server serves the agent,
//! the task is queued in the database (`store::worker_tasks`) instead of
//! this server's hub; a server whose hub has a free worker for the agent
//! takes it (the pump below), hands it to the worker through its own hub,
//! and writes the result back. The executing server follows the row and
//! hears what its own hub would have told it: taken by a worker, the
//! result, or lost.
//!
//! Either side may die. The taking server renews its claim on the task
//! every third of a lease; when it stops, the executing server finds the
//! claim run out and ends the attempt as lost (a new attempt follows, at
//! no cost to the retry budget), exactly as when a worker's lease runs out
//! at home. When the executing server dies, its run is taken over and the
//! node attempted again; the orphaned task's result is never read.
//!
//! Streamed text and progress stay with the worker's server: watchers see
//! the node's output when it completes.

use super::hub::{Report, TaskEvent, TaskFailure, TaskOutputs, TaskSpec, WorkerHub};
use crate::engine::agents::OutputRef;
use crate::model::{Usage, new_id};
use crate::store::{Store, TaskState};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

/// How often the executing server reads a relayed task's row.
const FOLLOW_EVERY: Duration = Duration::from_millis(100);
/// How often a server looks for tasks its workers could take without
/// being told of one.
const PUMP_EVERY: Duration = Duration::from_millis(500);

/// The relay of a server on a shared database.
pub struct Relay {
    store: Store,
    lease: Duration,
    /// Woken when a task is queued (NOTIFY `retake_tasks`) or a worker
    /// connects here.
    wake: Notify,
}

impl Relay {
    pub fn new(store: Store, lease: Duration) -> Self {
        Self {
            store,
            lease,
            wake: Notify::new(),
        }
    }

    /// Looks for relayed tasks soon: one was queued, or a worker came.
    pub fn wake(&self) {
        self.wake.notify_one();
    }
}

/// An attempt's claim on a relayed task: like the hub's ticket, its events
/// say when a worker took the task and how it ended; dropping it
/// withdraws the task.
pub struct RelayTicket {
    pub events: mpsc::UnboundedReceiver<TaskEvent>,
    follower: tokio::task::JoinHandle<()>,
    withdraw: Option<(Store, String)>,
}

impl Drop for RelayTicket {
    fn drop(&mut self) {
        self.follower.abort();
        if let Some((store, task_id)) = self.withdraw.take() {
            tokio::spawn(async move {
                if let Err(e) = store.forget_worker_task(&task_id).await {
                    tracing::warn!(task = %task_id, error = %e, "cannot withdraw a relayed task");
                }
            });
        }
    }
}

/// Queues `spec` for any server's worker and follows it.
pub async fn submit(relay: &Relay, spec: TaskSpec) -> crate::error::EngineResult<RelayTicket> {
    let task_id = new_id("tsk");
    let text = serde_json::to_string(&Spec::from(&spec))?;
    relay
        .store
        .queue_worker_task(&task_id, &spec.run_id, &spec.agent, &text)
        .await?;
    let (tx, events) = mpsc::unbounded_channel();
    let follower = tokio::spawn(follow(relay.store.clone(), task_id.clone(), tx));
    Ok(RelayTicket {
        events,
        follower,
        withdraw: Some((relay.store.clone(), task_id)),
    })
}

/// Reads the task's row until it ends, telling the attempt what changed.
async fn follow(store: Store, task_id: String, events: mpsc::UnboundedSender<TaskEvent>) {
    let mut announced = false;
    let mut lease = |worker: Option<String>| {
        if !std::mem::replace(&mut announced, true) {
            let worker = worker.unwrap_or_else(|| "a worker on another server".into());
            let _ = events.send(TaskEvent::Leased { worker });
        }
    };
    loop {
        tokio::time::sleep(FOLLOW_EVERY).await;
        let task = match store.worker_task(&task_id).await {
            Ok(Some(task)) => task,
            Ok(None) => {
                let _ = events.send(TaskEvent::Lost("the relayed task disappeared".into()));
                return;
            }
            Err(e) => {
                tracing::warn!(task = %task_id, error = %e, "cannot read a relayed task");
                continue;
            }
        };
        match task.state {
            TaskState::Queued => {}
            TaskState::Taken if task.held => {
                if task.worker.is_some() {
                    lease(task.worker);
                }
            }
            TaskState::Taken => {
                let reason = "the server holding the task's worker stopped renewing its claim";
                let from = [TaskState::Taken];
                if let Ok(true) = store
                    .settle_worker_task(&task_id, &from, TaskState::Lost, None)
                    .await
                {
                    lease(task.worker);
                    let _ = events.send(TaskEvent::Lost(reason.into()));
                    return;
                }
            }
            TaskState::Done => {
                lease(task.worker);
                let result = task
                    .result
                    .as_deref()
                    .and_then(|r| serde_json::from_str::<Outcome>(r).ok());
                let report = match result {
                    Some(outcome) => TaskEvent::Report(Report::Finished(outcome.into())),
                    None => TaskEvent::Lost("the relayed task's result does not read back".into()),
                };
                let _ = events.send(report);
                return;
            }
            TaskState::Lost => {
                lease(task.worker);
                let reason = task
                    .result
                    .unwrap_or_else(|| "the worker holding the task was lost".into());
                let _ = events.send(TaskEvent::Lost(reason));
                return;
            }
        }
    }
}

/// Takes relayed tasks this server's workers can run, until shutdown.
pub async fn pump(hub: Arc<WorkerHub>, relay: Arc<Relay>, shutdown: CancellationToken) {
    loop {
        for (agent, room) in hub.room() {
            if room == 0 {
                continue;
            }
            match relay.store.take_worker_tasks(&agent, room).await {
                Ok(tasks) => {
                    for (task_id, text) in tasks {
                        let (hub, relay) = (hub.clone(), relay.clone());
                        tokio::spawn(async move { carry(&hub, &relay, task_id, &text).await });
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot take relayed worker tasks"),
            }
        }
        tokio::select! {
            _ = relay.wake.notified() => {}
            _ = tokio::time::sleep(PUMP_EVERY) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

/// Runs one relayed task on this server's hub and writes back how it
/// ended, renewing this server's claim on it meanwhile.
async fn carry(hub: &Arc<WorkerHub>, relay: &Relay, task_id: String, text: &str) {
    let store = &relay.store;
    let taken = [TaskState::Taken];
    let spec = match serde_json::from_str::<Spec>(text) {
        Ok(spec) => spec.into(),
        Err(e) => {
            let reason = format!("the relayed task does not read back: {e}");
            let _ = store
                .settle_worker_task(&task_id, &taken, TaskState::Lost, Some(&reason))
                .await;
            return;
        }
    };
    let mut ticket = hub.submit(spec);
    let mut renew = tokio::time::interval(relay.lease / 3);
    renew.tick().await;
    loop {
        tokio::select! {
            event = ticket.events.recv() => match event {
                Some(TaskEvent::Leased { worker }) => {
                    if let Err(e) = store.worker_task_taken_by(&task_id, &worker).await {
                        tracing::warn!(task = %task_id, error = %e, "cannot record a relayed task's worker");
                    }
                }
                Some(TaskEvent::Report(Report::Finished(result))) => {
                    let outcome = serde_json::to_string(&Outcome::from(result)).unwrap_or_default();
                    if let Err(e) = store
                        .settle_worker_task(&task_id, &taken, TaskState::Done, Some(&outcome))
                        .await
                    {
                        tracing::warn!(task = %task_id, error = %e, "cannot record a relayed task's result");
                    }
                    return;
                }
                // Streamed text and progress stay here.
                Some(TaskEvent::Report(_)) => {}
                Some(TaskEvent::Lost(reason)) => {
                    let _ = store
                        .settle_worker_task(&task_id, &taken, TaskState::Lost, Some(&reason))
                        .await;
                    return;
                }
                None => return,
            },
            _ = renew.tick() => match store.renew_worker_tasks(std::slice::from_ref(&task_id)).await {
                // Withdrawn by its attempt: dropping the ticket tells the
                // worker to stop.
                Ok(gone) if !gone.is_empty() => return,
                Ok(_) => {}
                Err(e) => tracing::warn!(task = %task_id, error = %e, "cannot renew a relayed task"),
            },
        }
    }
}

/// A task spec as the database holds it.
#[derive(Serialize, Deserialize)]
struct Spec {
    agent: String,
    run_id: String,
    node_id: String,
    node_execution_id: String,
    attempt: u32,
    inputs_json: String,
    config_json: String,
    prompt: String,
    output_names: Vec<String>,
    deadline_ms: Option<u64>,
    upstream: Vec<(String, Vec<Output>)>,
}

#[derive(Serialize, Deserialize)]
struct Output {
    artifact_id: String,
    name: String,
    media_type: String,
    content: String,
}

impl From<&TaskSpec> for Spec {
    fn from(s: &TaskSpec) -> Self {
        Self {
            agent: s.agent.clone(),
            run_id: s.run_id.clone(),
            node_id: s.node_id.clone(),
            node_execution_id: s.node_execution_id.clone(),
            attempt: s.attempt,
            inputs_json: s.inputs_json.clone(),
            config_json: s.config_json.clone(),
            prompt: s.prompt.clone(),
            output_names: s.output_names.clone(),
            deadline_ms: s.deadline.map(|d| d.as_millis() as u64),
            upstream: s
                .upstream
                .iter()
                .map(|(node, outputs)| {
                    let outputs = outputs
                        .iter()
                        .map(|o| Output {
                            artifact_id: o.artifact_id.clone(),
                            name: o.name.clone(),
                            media_type: o.media_type.clone(),
                            content: o.content.to_string(),
                        })
                        .collect();
                    (node.clone(), outputs)
                })
                .collect(),
        }
    }
}

impl From<Spec> for TaskSpec {
    fn from(s: Spec) -> Self {
        Self {
            agent: s.agent,
            run_id: s.run_id,
            node_id: s.node_id,
            node_execution_id: s.node_execution_id,
            attempt: s.attempt,
            inputs_json: s.inputs_json,
            config_json: s.config_json,
            prompt: s.prompt,
            output_names: s.output_names,
            deadline: s.deadline_ms.map(Duration::from_millis),
            upstream: s
                .upstream
                .into_iter()
                .map(|(node, outputs)| {
                    let outputs = outputs
                        .into_iter()
                        .map(|o| OutputRef {
                            artifact_id: o.artifact_id,
                            name: o.name,
                            media_type: o.media_type,
                            content: o.content.into(),
                        })
                        .collect();
                    (node, Arc::new(outputs))
                })
                .collect(),
        }
    }
}

/// A worker's result as the database holds it.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Outcome {
    Outputs {
        outputs: Vec<(String, String)>,
        media_type: String,
        model: Option<String>,
        input_tokens: i64,
        output_tokens: i64,
        cost_usd: f64,
    },
    Failure {
        message: String,
        details: String,
        permanent: bool,
    },
}

impl From<Result<TaskOutputs, TaskFailure>> for Outcome {
    fn from(result: Result<TaskOutputs, TaskFailure>) -> Self {
        match result {
            Ok(o) => Self::Outputs {
                outputs: o.outputs,
                media_type: o.media_type,
                model: o.model,
                input_tokens: o.usage.input_tokens,
                output_tokens: o.usage.output_tokens,
                cost_usd: o.usage.cost_usd,
            },
            Err(f) => Self::Failure {
                message: f.message,
                details: f.details,
                permanent: f.permanent,
            },
        }
    }
}

impl From<Outcome> for Result<TaskOutputs, TaskFailure> {
    fn from(outcome: Outcome) -> Self {
        match outcome {
            Outcome::Outputs {
                outputs,
                media_type,
                model,
                input_tokens,
                output_tokens,
                cost_usd,
            } => Ok(TaskOutputs {
                outputs,
                media_type,
                model,
                usage: Usage {
                    input_tokens,
                    output_tokens,
                    cost_usd,
                },
            }),
            Outcome::Failure {
                message,
                details,
                permanent,
            } => Err(TaskFailure {
                message,
                details,
                permanent,
            }),
        }
    }
}
