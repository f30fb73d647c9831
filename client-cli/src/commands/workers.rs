//! `retake workers`: the workers connected to the server, the agents they
//! serve and the tasks they hold.

use crate::connect::Clients;
use crate::error::{CliError, CliResult};
use crate::render::{self, Output, Style};
use retake::v1::{ListWorkersRequest, Worker};

#[derive(Debug, Clone, PartialEq)]
pub struct Workers {
    pub workers: Vec<Worker>,
}

pub async fn list(clients: &Clients) -> CliResult<Workers> {
    if clients.embedded {
        return Err(CliError::usage(
            "workers connect to a retake server: give one with --server (or RETAKE_SERVER)",
        ));
    }
    let workers = clients
        .workers
        .clone()
        .list_workers(ListWorkersRequest {})
        .await?
        .into_inner()
        .workers;
    Ok(Workers { workers })
}

impl Output for Workers {
    fn text(&self, style: Style) -> String {
        if self.workers.is_empty() {
            return "No workers connected.\n".into();
        }
        let mut out = String::new();
        for w in &self.workers {
            out.push_str(&format!(
                "{}  {}  agents: {}  tasks: {}/{}  since {}  ({})\n",
                style.bold(&w.name),
                style.dim(&w.worker_id),
                w.agents.join(", "),
                w.tasks.len(),
                w.concurrency,
                render::short_time(w.connect_time.as_ref()),
                w.peer,
            ));
            for t in &w.tasks {
                out.push_str(&format!(
                    "  ▸ {} node {} (attempt {}) since {}\n",
                    t.run_id,
                    t.node_id,
                    t.attempt,
                    render::short_time(t.start_time.as_ref()),
                ));
            }
        }
        out
    }

    fn json(&self) -> serde_json::Value {
        serde_json::Value::Array(
            self.workers
                .iter()
                .map(|w| {
                    serde_json::json!({
                        "worker_id": w.worker_id,
                        "name": w.name,
                        "agents": w.agents,
                        "concurrency": w.concurrency,
                        "connect_time": render::rfc3339(w.connect_time.as_ref()),
                        "peer": w.peer,
                        "tasks": w.tasks.iter().map(|t| serde_json::json!({
                            "task_id": t.task_id,
                            "run_id": t.run_id,
                            "node_id": t.node_id,
                            "attempt": t.attempt,
                            "start_time": render::rfc3339(t.start_time.as_ref()),
                        })).collect::<Vec<_>>(),
                    })
                })
                .collect(),
        )
    }
}
