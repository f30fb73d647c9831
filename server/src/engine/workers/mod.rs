//! Workers: processes outside the server that run the nodes whose agent is
//! `worker://NAME`, the user's own code. They connect over gRPC
//! (`api/worker_service.rs`), say which agents they serve, and take tasks
//! from the hub (`hub.rs`); here is one attempt of such a node, as the
//! run's attempt task runs it.

mod hub;
pub mod relay;

pub use hub::{
    HeldTask, Hello, MAX_CONCURRENCY, Report, TaskFailure, TaskOutputs, TaskSpec, ToWorker,
    Welcome, WorkerHub, WorkerInfo, check_agent_name,
};

use super::agents::{self, AgentError, AgentOutput, ErrorKind};
use crate::model::FailureOrigin;
use hub::TaskEvent;
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// The config key bounding how long a task may wait for a worker.
pub const QUEUE_TIMEOUT_KEY: &str = "queue_timeout_ms";

/// How a worker attempt is going, for the run's driver and watchers.
pub enum News {
    /// No worker took the task at once; the text says why.
    Queued(String),
    /// This worker took it: the attempt has started.
    Leased(String),
    Progress {
        message: String,
        fraction: Option<f64>,
    },
}

/// One attempt on a worker: queues the task, says when it waits and when
/// a worker takes it, and returns what the worker reported. The deadline
/// counts from when a worker takes the task; `queue_timeout` bounds the
/// wait before. Dropping the future withdraws the task (the worker is told
/// to stop).
pub async fn attempt(
    hub: &Arc<WorkerHub>,
    task: TaskSpec,
    queue_timeout: Option<Duration>,
    deltas: &mpsc::UnboundedSender<String>,
    mut news: impl FnMut(News),
) -> Result<AgentOutput, (AgentError, FailureOrigin)> {
    let agent = task.agent.clone();
    let deadline = task.deadline;
    let outputs = task.output_names.clone();
    // No worker here serves it: on a shared database, any server's may.
    let mut ticket = match hub.relay().filter(|_| !hub.serves(&agent)) {
        Some(relay) => Ticket::Relayed(relay::submit(relay, task).await.map_err(|e| {
            (
                AgentError::transient(e.to_string()),
                FailureOrigin::Internal,
            )
        })?),
        None => Ticket::Here(hub.submit(task)),
    };
    let events = ticket.events();
    let worker = match events.try_recv() {
        Ok(TaskEvent::Leased { worker }) => worker,
        _ => {
            let why = if hub.serves(&agent) {
                format!("waiting for a worker for '{agent}': every one serving it is busy")
            } else if hub.relay().is_some() {
                format!("waiting for a worker for '{agent}' on any server: none is free")
            } else {
                format!("waiting for a worker for '{agent}': none is connected")
            };
            news(News::Queued(why));
            let leased = async {
                loop {
                    match events.recv().await {
                        Some(TaskEvent::Leased { worker }) => return Some(worker),
                        Some(_) => continue,
                        None => return None,
                    }
                }
            };
            let leased = match queue_timeout {
                None => leased.await,
                Some(limit) => match tokio::time::timeout(limit, leased).await {
                    Ok(leased) => leased,
                    Err(_) => {
                        let error = AgentError::transient(format!(
                            "no worker for '{agent}' took the task within {} ms ({QUEUE_TIMEOUT_KEY})",
                            limit.as_millis()
                        ));
                        return Err((error, FailureOrigin::Timeout));
                    }
                },
            };
            leased.ok_or_else(hub_stopped)?
        }
    };
    news(News::Leased(worker));
    let outcome = async {
        loop {
            match events.recv().await {
                Some(TaskEvent::Report(Report::Delta(text))) => {
                    let _ = deltas.send(text);
                }
                Some(TaskEvent::Report(Report::Progress { message, fraction })) => {
                    news(News::Progress { message, fraction })
                }
                Some(TaskEvent::Report(Report::Finished(Ok(out)))) => {
                    return agent_output(out, &outputs).map_err(|e| (e, FailureOrigin::Agent));
                }
                Some(TaskEvent::Report(Report::Finished(Err(failure)))) => {
                    return Err((failed(failure), FailureOrigin::Agent));
                }
                Some(TaskEvent::Lost(reason)) => {
                    return Err((AgentError::transient(reason), FailureOrigin::Interrupted));
                }
                Some(TaskEvent::Leased { .. }) => {}
                None => return Err(hub_stopped()),
            }
        }
    };
    match deadline {
        None => outcome.await,
        Some(limit) => tokio::time::timeout(limit, outcome)
            .await
            .unwrap_or_else(|_| {
                let error =
                    AgentError::transient(format!("deadline of {} ms exceeded", limit.as_millis()));
                Err((error, FailureOrigin::Timeout))
            }),
    }
}

/// An attempt's claim on its task, here or relayed to another server;
/// dropping it withdraws the task.
enum Ticket {
    Here(hub::Ticket),
    Relayed(relay::RelayTicket),
}

impl Ticket {
    fn events(&mut self) -> &mut mpsc::UnboundedReceiver<TaskEvent> {
        match self {
            Ticket::Here(t) => &mut t.events,
            Ticket::Relayed(t) => &mut t.events,
        }
    }
}

fn hub_stopped() -> (AgentError, FailureOrigin) {
    (
        AgentError::permanent("the server stopped taking worker results"),
        FailureOrigin::Internal,
    )
}

/// A worker's failure as the node's error: its message, then its details
/// (a traceback, say).
fn failed(f: TaskFailure) -> AgentError {
    let kind = if f.permanent {
        ErrorKind::Permanent
    } else {
        ErrorKind::Transient
    };
    let message = match (f.message.trim(), f.details.trim()) {
        ("", "") => "the worker failed the task without a message".to_string(),
        (m, "") => m.to_string(),
        ("", d) => d.to_string(),
        (m, d) => format!("{m}\n{d}"),
    };
    AgentError::new(kind, message)
}

/// The worker's outputs as the attempt's output: the one value of a node
/// with one output, a JSON object of them all otherwise.
fn agent_output(out: TaskOutputs, names: &[String]) -> Result<AgentOutput, AgentError> {
    let json = match out.media_type.as_str() {
        "" | agents::TEXT => false,
        agents::JSON => true,
        other => {
            return Err(AgentError::permanent(format!(
                "the worker's media type '{}' is not text/plain or application/json",
                crate::error::echo(other)
            )));
        }
    };
    let media_type = if json { agents::JSON } else { agents::TEXT };
    let mut given = out.outputs;
    let content = if let [name] = names {
        let value = match given.iter().position(|(k, _)| k == name) {
            Some(i) => given.swap_remove(i).1,
            None if given.len() == 1 => given.pop().expect("one").1,
            None => {
                return Err(AgentError::permanent(format!(
                    "the worker returned {} outputs ({}) for a node with the one output '{name}'",
                    given.len(),
                    given
                        .iter()
                        .map(|(k, _)| k.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        };
        if json {
            check_json(name, &value)?;
        }
        return Ok(AgentOutput {
            content: value,
            media_type,
            model: out.model,
            usage: out.usage,
        });
    } else {
        let mut map = Map::new();
        for name in names {
            let Some(i) = given.iter().position(|(k, _)| k == name) else {
                return Err(AgentError::permanent(format!(
                    "the worker returned no output '{name}' (the node's outputs: {})",
                    names.join(", ")
                )));
            };
            let value = given.swap_remove(i).1;
            let value = if json {
                check_json(name, &value)?
            } else {
                Value::String(value)
            };
            map.insert(name.clone(), value);
        }
        Value::Object(map).to_string()
    };
    Ok(AgentOutput {
        content,
        media_type: agents::JSON,
        model: out.model,
        usage: out.usage,
    })
}

fn check_json(name: &str, value: &str) -> Result<Value, AgentError> {
    serde_json::from_str(value).map_err(|e| {
        AgentError::permanent(format!(
            "the worker's output '{name}' is not the JSON its media type says: {e}"
        ))
    })
}

/// The config a worker receives: what the node's config resolved to, less
/// credential fields and any value holding a secret the server resolved.
pub fn worker_config(config: &Map<String, Value>, secrets: &[String]) -> Map<String, Value> {
    fn clean(v: &Value, secrets: &[String]) -> Option<Value> {
        match v {
            Value::String(s)
                if secrets
                    .iter()
                    .any(|x| !x.is_empty() && s.contains(x.as_str())) =>
            {
                None
            }
            Value::Object(m) => Some(Value::Object(worker_config(m, secrets))),
            Value::Array(items) => Some(Value::Array(
                items.iter().filter_map(|i| clean(i, secrets)).collect(),
            )),
            other => Some(other.clone()),
        }
    }
    config
        .iter()
        .filter(|(k, _)| !super::secrets::is_secret_key(k))
        .filter_map(|(k, v)| Some((k.clone(), clean(v, secrets)?)))
        .collect()
}
