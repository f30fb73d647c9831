//! One attempt of a node's agent, in its own task: it waits out its retry
//! delay, takes an execution slot, says so (the attempt is recorded only
//! once its agent is invoked), runs the agent under the node's deadline
//! and streams its text to watchers. Dropping the task cancels the agent.

use super::super::ActiveRun;
use super::super::agents::{self, AgentCall, AgentError, AgentOutput};
use super::super::workers::{self, News, TaskSpec, WorkerHub};
use super::prepare::AgentNode;
use crate::model::{FailureOrigin, Micros, now_micros};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc};

/// Sent when the attempt got its slot and the agent is being invoked (for
/// a `worker://` node: when a worker took the task).
pub struct Started {
    pub pos: usize,
    pub attempt: u32,
    pub at: Micros,
    /// The worker that took the task.
    pub worker: Option<String>,
}

/// What an attempt tells its driver before it ends.
pub enum Heard {
    Started(Started),
    /// A `worker://` node's task waits for a worker; the text says why.
    Queued {
        pos: usize,
        attempt: u32,
        message: String,
    },
}

/// What a `worker://` attempt needs beyond the call.
pub struct WorkerSlot {
    pub hub: Arc<WorkerHub>,
    pub run_id: String,
    pub node_execution_id: String,
    pub outputs: Vec<String>,
    /// Secret values the config resolved to: the worker gets none.
    pub secrets: Vec<String>,
}

pub struct AttemptDone {
    pub pos: usize,
    pub result: Result<AgentOutput, AttemptError>,
}

pub struct AttemptError {
    pub error: AgentError,
    pub origin: FailureOrigin,
}

/// Where an attempt runs and reports.
pub struct Slot {
    pub pos: usize,
    pub attempt: u32,
    pub delay: Duration,
    pub deadline: Duration,
    pub permits: Arc<Semaphore>,
    pub started: mpsc::UnboundedSender<Heard>,
    pub active: Arc<ActiveRun>,
    /// Set for `worker://` nodes.
    pub worker: Option<WorkerSlot>,
}

/// The attempt's future; spawn it.
pub fn run(node: &AgentNode, slot: Slot) -> impl Future<Output = AttemptDone> + Send + 'static {
    let (deltas, mut delta_rx) = mpsc::unbounded_channel::<String>();
    let c = &node.call;
    let call = AgentCall {
        node_id: c.node_id.clone(),
        agent: c.agent.clone(),
        inputs_json: c.inputs_json.clone(),
        upstream: c.upstream.clone(),
        prompt: c.prompt.clone(),
        config: c.config.clone(),
        attempt: slot.attempt,
        deltas,
    };
    async move {
        let Slot {
            pos,
            attempt,
            delay,
            deadline,
            permits,
            started,
            active,
            worker,
        } = slot;
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        if let Some(worker) = worker {
            // A worker's own concurrency bounds its tasks: a task waiting
            // for one takes none of this server's execution slots.
            let execution = on_worker(&call, worker, deadline, pos, attempt, &started, &active);
            let result = streaming(execution, &mut delta_rx, &active, &call.node_id).await;
            return AttemptDone { pos, result };
        }
        let Ok(_permit) = permits.acquire().await else {
            let error = AttemptError {
                error: AgentError::permanent("the server is shutting down"),
                origin: FailureOrigin::Internal,
            };
            return AttemptDone {
                pos,
                result: Err(error),
            };
        };
        let _ = started.send(Heard::Started(Started {
            pos,
            attempt,
            at: now_micros(),
            worker: None,
        }));
        // One deadline for the whole attempt, however much it streams.
        let execution = tokio::time::timeout(deadline, agents::execute(&call));
        let outcome = streaming(execution, &mut delta_rx, &active, &call.node_id).await;
        let result = match outcome {
            Ok(Ok(out)) => Ok(out),
            Ok(Err(error)) => Err(AttemptError {
                error,
                origin: FailureOrigin::Agent,
            }),
            Err(_) => Err(AttemptError {
                error: AgentError::transient(format!(
                    "deadline of {} ms exceeded",
                    deadline.as_millis()
                )),
                origin: FailureOrigin::Timeout,
            }),
        };
        AttemptDone { pos, result }
    }
}

/// One attempt of a `worker://` node: its task goes to a worker through
/// the hub; text and progress go to watchers as they come.
async fn on_worker(
    call: &AgentCall,
    worker: WorkerSlot,
    deadline: Duration,
    pos: usize,
    attempt: u32,
    started: &mpsc::UnboundedSender<Heard>,
    active: &ActiveRun,
) -> Result<AgentOutput, AttemptError> {
    let agent = call.agent.strip_prefix("worker://").unwrap_or_default();
    let config = workers::worker_config(&call.config, &worker.secrets);
    let queue_timeout = config
        .get(workers::QUEUE_TIMEOUT_KEY)
        .and_then(serde_json::Value::as_u64)
        .map(Duration::from_millis);
    let task = TaskSpec {
        agent: agent.to_string(),
        run_id: worker.run_id,
        node_id: call.node_id.clone(),
        node_execution_id: worker.node_execution_id,
        attempt,
        inputs_json: call.inputs_json.clone().unwrap_or_else(|| "{}".into()),
        config_json: serde_json::Value::Object(config).to_string(),
        prompt: call.prompt.clone().unwrap_or_default(),
        output_names: worker.outputs,
        deadline: (!deadline.is_zero()).then_some(deadline),
        upstream: call.upstream.clone(),
    };
    workers::attempt(
        &worker.hub,
        task,
        queue_timeout,
        &call.deltas,
        |news| match news {
            News::Queued(message) => {
                let _ = started.send(Heard::Queued {
                    pos,
                    attempt,
                    message,
                });
            }
            News::Leased(name) => {
                let _ = started.send(Heard::Started(Started {
                    pos,
                    attempt,
                    at: now_micros(),
                    worker: Some(name),
                }));
            }
            News::Progress { message, fraction } => {
                active.publish_progress(&call.node_id, message, fraction)
            }
        },
    )
    .await
    .map_err(|(error, origin)| AttemptError { error, origin })
}

/// Runs `execution`, sending the text it streams to watchers as it comes
/// and what is left once it ends.
async fn streaming<T>(
    execution: impl Future<Output = T>,
    texts: &mut mpsc::UnboundedReceiver<String>,
    active: &ActiveRun,
    node_id: &str,
) -> T {
    tokio::pin!(execution);
    let outcome = loop {
        tokio::select! {
            r = &mut execution => break r,
            Some(text) = texts.recv() => active.publish_delta(node_id, text),
        }
    };
    while let Ok(text) = texts.try_recv() {
        active.publish_delta(node_id, text);
    }
    outcome
}
