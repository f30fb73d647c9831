//! Following a Task the agent has not finished: polling it to its end,
//! and cancelling it when the attempt gives up first.

use super::super::error::{AgentError, fail};
use super::reply::{Part, Task, parse_task, parts_text};
use super::rpc::{self, Endpoint};
use serde_json::json;
use std::time::Duration;

const FIRST_POLL: Duration = Duration::from_millis(200);
const MAX_POLL: Duration = Duration::from_secs(2);

/// Asks the agent to cancel a task this attempt gave up on (deadline,
/// cancellation), without waiting for the answer.
struct CancelOnDrop<'a> {
    endpoint: &'a Endpoint,
    task_id: String,
    armed: bool,
}

impl Drop for CancelOnDrop<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let endpoint = self.endpoint.clone();
        let id = self.task_id.clone();
        handle.spawn(async move {
            let call = rpc::call(&endpoint, endpoint.version.cancel(), json!({"id": id}));
            let _ = tokio::time::timeout(Duration::from_secs(10), call).await;
        });
    }
}

/// Polls `task` until it completes (its output parts) or ends otherwise
/// (an error saying how).
pub async fn wait_for(endpoint: &Endpoint, mut task: Task) -> Result<Vec<Part>, AgentError> {
    let mut guard = CancelOnDrop {
        endpoint,
        task_id: task.id.clone(),
        armed: true,
    };
    let mut delay = FIRST_POLL;
    loop {
        match task.state.as_str() {
            "completed" => {
                guard.armed = false;
                let Task {
                    status_parts,
                    artifact_parts,
                    last_agent_parts,
                    ..
                } = task;
                return Ok([artifact_parts, status_parts, last_agent_parts]
                    .into_iter()
                    .find(|p| !p.is_empty())
                    .unwrap_or_default());
            }
            state @ ("failed" | "rejected" | "canceled" | "cancelled") => {
                guard.armed = false;
                let text = parts_text(&task.status_parts);
                let text = if text.trim().is_empty() {
                    parts_text(&task.last_agent_parts)
                } else {
                    text
                };
                let text = if text.trim().is_empty() {
                    "(the agent gave no reason)".to_string()
                } else {
                    text
                };
                return fail(format!(
                    "the A2A agent's task {} ended {state}: {text}",
                    task.id
                ));
            }
            state @ ("input-required" | "auth-required") => {
                // Left armed: the task waits for an answer that will not come.
                let text = parts_text(&task.status_parts);
                let what = if state == "auth-required" {
                    "authentication"
                } else {
                    "more input"
                };
                let said = if text.trim().is_empty() {
                    String::new()
                } else {
                    format!(": {text}")
                };
                return fail(format!(
                    "the A2A agent needs {what} (task {} is {state}){said}. retake sends one message per attempt \
                     and cannot answer an agent's follow-up; give the node everything it needs in its inputs or prompt",
                    task.id
                ));
            }
            _ => {}
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(MAX_POLL);
        let result = rpc::call(endpoint, endpoint.version.get(), json!({"id": task.id})).await?;
        // GetTask returns the Task itself; tolerate a wrapped one.
        let t = if result["task"].is_object() {
            &result["task"]
        } else {
            &result
        };
        task = parse_task(t)?;
    }
}
