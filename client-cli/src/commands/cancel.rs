//! `retake cancel RUN_ID`: stop a run; in-flight nodes are interrupted.

use super::RunSummary;
use super::fetch::returned;
use crate::cli::CancelArgs;
use crate::connect::Clients;
use crate::error::CliResult;
use crate::render::{self, Output, Style};
use retake::v1::CancelRunRequest;

/// The run after cancellation.
#[derive(Debug, Clone, PartialEq)]
pub struct Cancelled {
    pub summary: RunSummary,
}

/// `retake cancel`. Without a server, a run left unfinished in the
/// database (waiting for a human, or interrupted) is cancelled by the
/// engine in this process, which takes it over without starting a node.
pub async fn cancel(clients: &Clients, args: &CancelArgs) -> CliResult<Cancelled> {
    if clients.embedded {
        let run = super::get_run(clients, &args.run_id).await?;
        if !render::is_finished(run.status())
            && clients
                .take_over(&run.id, true)
                .await?
                .is_some_and(|r| r.resumed)
        {
            let run = super::get_run(clients, &run.id).await?;
            return Ok(Cancelled {
                summary: RunSummary::from_run(&run),
            });
        }
    }
    let mut runs = clients.runs.clone();
    let resp = runs
        .cancel_run(CancelRunRequest {
            run_id: args.run_id.clone(),
        })
        .await?
        .into_inner();
    let run = returned(resp.run, "run")?;
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
