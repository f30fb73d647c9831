//! Human waits (`human://input`, `human://approve`): listing the
//! nodes that wait, and delivering an answer to the run's driver, which
//! records it durably before ResolveWait returns.

use super::Engine;
use crate::error::{EngineError, EngineResult, Reason};
use crate::model::*;
use crate::store::RunRef;

/// Acknowledges that a write is durable (or why it is not).
pub type Ack = tokio::sync::oneshot::Sender<Result<(), EngineError>>;

/// The two kinds of human node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitKind {
    Input,
    Approval,
}

impl WaitKind {
    pub fn of(agent: &str) -> Option<Self> {
        match agent {
            "human://input" => Some(Self::Input),
            "human://approve" => Some(Self::Approval),
            _ => None,
        }
    }

    pub(crate) fn default_prompt(self) -> &'static str {
        match self {
            Self::Input => "Input required",
            Self::Approval => "Approve?",
        }
    }
}

pub enum WaitValue {
    Input(String),
    Decision {
        approved: bool,
        feedback: Option<String>,
    },
}

/// An answer to a waiting node, acknowledged once it is durable.
pub struct WaitAnswer {
    pub node_id: String,
    pub value: WaitValue,
    pub ack: Ack,
}

/// A node waiting for a human.
#[derive(Clone, Debug)]
pub struct Wait {
    pub run_id: String,
    pub node_id: String,
    pub node_execution_id: String,
    pub kind: WaitKind,
    pub prompt: String,
    /// What the human decides on: the node's inputs or upstream outputs, as JSON.
    pub context_json: String,
    pub created_at: Micros,
}

fn wait_of(n: &NodeExecution) -> Option<Wait> {
    (n.status == NodeStatus::Waiting).then_some(())?;
    Some(Wait {
        run_id: n.run_id.clone(),
        node_id: n.node_id.clone(),
        node_execution_id: n.id.clone(),
        kind: WaitKind::of(&n.agent)?,
        prompt: n.prompt.clone().unwrap_or_default(),
        context_json: n.inputs_json.clone().unwrap_or_default(),
        created_at: n.started_at.unwrap_or_default(),
    })
}

impl Engine {
    /// Pending waits of one run, or of every unfinished run.
    pub async fn list_waits(&self, run_ref: Option<&str>) -> EngineResult<Vec<Wait>> {
        let runs = match run_ref.filter(|r| !r.trim().is_empty()) {
            Some(r) => vec![self.store().find_run(RunRef(r)).await?],
            None => self.store().unfinished_runs().await?,
        };
        let mut waits = Vec::new();
        for run in runs.iter().filter(|r| !r.status.is_finished()) {
            waits.extend(
                self.store()
                    .nodes_of_run(run.pk)
                    .await?
                    .iter()
                    .filter_map(wait_of),
            );
        }
        Ok(waits)
    }

    /// Answers a wait. `node` may be empty when the run has exactly one.
    pub async fn resolve_wait(
        &self,
        run_ref: &str,
        node: &str,
        value: WaitValue,
    ) -> EngineResult<(Wait, Run)> {
        let run = self.store().find_run(RunRef(run_ref)).await?;
        if run.status.is_finished() {
            return Err(EngineError::failed_precondition(format!(
                "Run '{}' has finished ({}); it has no pending wait",
                run.id, run.status
            ))
            .reason(Reason::RunFinished)
            .meta("runId", &run.id));
        }
        let nodes = self.store().nodes_of_run(run.pk).await?;
        let waits: Vec<Wait> = nodes.iter().filter_map(wait_of).collect();
        let node = node.trim();
        let wait = if node.is_empty() {
            match waits.as_slice() {
                [one] => one.clone(),
                [] => {
                    return Err(EngineError::failed_precondition(format!(
                        "Run '{}' has no pending wait",
                        run.id
                    ))
                    .reason(Reason::WaitNotPending)
                    .meta("runId", &run.id));
                }
                many => {
                    return Err(EngineError::invalid_argument(format!(
                        "Run '{}' has {} pending waits ({}); name one as node_id",
                        run.id,
                        many.len(),
                        many.iter()
                            .map(|w| w.node_id.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                    .meta("runId", &run.id)
                    .violation("node_id", "required: the run has several pending waits"));
                }
            }
        } else {
            match waits
                .iter()
                .find(|w| w.node_id == node || w.node_execution_id == node)
            {
                Some(w) => w.clone(),
                None => {
                    return Err(match nodes.iter().find(|n| n.node_id == node) {
                        Some(n) => EngineError::failed_precondition(format!(
                            "Node '{node}' is not waiting ({})",
                            n.status
                        ))
                        .reason(Reason::WaitNotPending)
                        .meta("runId", &run.id)
                        .meta("nodeId", node),
                        None => EngineError::not_found(format!(
                            "Step '{}' not found in workflow",
                            crate::error::echo(node)
                        ))
                        .reason(Reason::NodeNotFound)
                        .meta("runId", &run.id)
                        .meta("nodeId", node),
                    });
                }
            }
        };
        match (&value, wait.kind) {
            (WaitValue::Input(_), WaitKind::Input)
            | (WaitValue::Decision { .. }, WaitKind::Approval) => {}
            (WaitValue::Input(_), WaitKind::Approval) => {
                return Err(EngineError::invalid_argument(format!(
                    "Node '{}' waits for approval (human://approve); answer with approve or reject, not a value",
                    wait.node_id
                )));
            }
            (WaitValue::Decision { .. }, WaitKind::Input) => {
                return Err(EngineError::invalid_argument(format!(
                    "Node '{}' waits for text input (human://input); answer with a value, not approve or reject",
                    wait.node_id
                )));
            }
        }
        let mut active = self.0.active_run(&run.id);
        if active.is_none() && self.0.cluster.is_some() {
            // No server executes it: take it, and answer here.
            if self.0.store.claim_run(run.pk).await? {
                self.resume_run(&run.id, false).await?;
                active = self.0.active_run(&run.id);
            } else {
                self.answer_elsewhere(&run, &wait.node_id, value).await?;
                return Ok((wait, self.get_run(&run.id).await?));
            }
        }
        let Some(active) = active else {
            return Err(EngineError::failed_precondition(format!(
                "Run '{}' is not executing in this server; its waits can be answered once the server that owns its database is running",
                run.id
            ))
            .reason(Reason::RunNotExecuting)
            .meta("runId", &run.id));
        };
        let (ack, acked) = tokio::sync::oneshot::channel();
        active
            .answers
            .send(WaitAnswer {
                node_id: wait.node_id.clone(),
                value,
                ack,
            })
            .map_err(|_| {
                EngineError::failed_precondition(format!(
                    "Run '{}' finished while answering",
                    run.id
                ))
                .reason(Reason::RunFinished)
                .meta("runId", &run.id)
            })?;
        acked.await.map_err(|_| {
            EngineError::failed_precondition(format!(
                "Run '{}' stopped before the answer was recorded",
                run.id
            ))
        })??;
        Ok((wait, self.get_run(&run.id).await?))
    }
}
