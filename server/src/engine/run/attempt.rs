//! One attempt of a node's agent, in its own task: it waits out its retry
//! delay, takes an execution slot, says so (the attempt is recorded only
//! once its agent is invoked), runs the agent under the node's deadline
//! and streams its text to watchers. Dropping the task cancels the agent.

use super::super::ActiveRun;
use super::super::agents::{self, AgentCall, AgentError, AgentOutput};
use super::prepare::AgentNode;
use crate::model::{FailureOrigin, Micros, now_micros};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc};

/// Sent when the attempt got its slot and the agent is being invoked.
pub struct Started {
    pub pos: usize,
    pub attempt: u32,
    pub at: Micros,
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
    pub started: mpsc::UnboundedSender<Started>,
    pub active: Arc<ActiveRun>,
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
        } = slot;
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
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
        let _ = started.send(Started {
            pos,
            attempt,
            at: now_micros(),
        });
        // One deadline for the whole attempt, however much it streams.
        let execution = tokio::time::timeout(deadline, agents::execute(&call));
        tokio::pin!(execution);
        // Streamed text goes to watchers while the attempt runs.
        let outcome = loop {
            tokio::select! {
                r = &mut execution => break r,
                Some(text) = delta_rx.recv() => active.publish_delta(&call.node_id, text),
            }
        };
        while let Ok(text) = delta_rx.try_recv() {
            active.publish_delta(&call.node_id, text);
        }
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
