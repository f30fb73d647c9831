//! `retake cancel RUN_ID`: stop a run; in-flight nodes are interrupted.

use super::RunSummary;
use crate::cli::CancelArgs;
use crate::connect::Clients;
use crate::error::{CliError, CliResult};
use crate::render::{Output, Style};
use retake::v1::CancelRunRequest;

/// The run after cancellation.
#[derive(Debug, Clone, PartialEq)]
pub struct Cancelled {
    pub summary: RunSummary,
}

/// `retake cancel`.
pub async fn cancel(clients: &Clients, args: &CancelArgs) -> CliResult<Cancelled> {
    let mut runs = clients.runs.clone();
    let resp = runs
        .cancel_run(CancelRunRequest {
            run_id: args.run_id.clone(),
        })
        .await?
        .into_inner();
    let run = resp
        .run
        .ok_or_else(|| CliError::failed("the server returned no run"))?;
    Ok(Cancelled {
        summary: RunSummary::from_run(&run),
    })
}

impl Output for Cancelled {
    fn text(&self, style: Style) -> String {
        let s = &self.summary;
        format!(
            "Run {} {}\nNodes: {}/{} completed\n",
            s.run_id,
            if s.status == "cancelled" {
                style.yellow("cancelled")
            } else {
                format!("is {}", style.run_status(s.run_status))
            },
            s.completed_nodes,
            s.total_nodes
        )
    }

    fn json(&self) -> serde_json::Value {
        self.summary.json()
    }
}
