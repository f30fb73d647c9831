//! The reads several commands share: a run, a run with its node
//! executions, one node execution, and the workflow a run ran.

use crate::connect::Clients;
use crate::error::{CliError, CliResult};
use retake::v1::{GetNodeExecutionRequest, GetRunRequest, GetRunResponse, NodeExecution, Run};

/// What a response must carry. Every call that succeeds answers with it,
/// so its absence is the server's failure, named after `what`.
pub fn returned<T>(value: Option<T>, what: &str) -> CliResult<T> {
    value.ok_or_else(|| CliError::failed(format!("the server returned no {what}")))
}

async fn fetch_run(clients: &Clients, request: GetRunRequest) -> CliResult<(Run, GetRunResponse)> {
    let mut runs = clients.runs.clone();
    let mut resp = runs.get_run(request).await?.into_inner();
    let run = returned(resp.run.take(), "run")?;
    Ok((run, resp))
}

/// Fetches a run (id, unique prefix or `latest`).
pub async fn get_run(clients: &Clients, run_id: &str) -> CliResult<Run> {
    let request = GetRunRequest {
        run_id: run_id.to_string(),
        ..Default::default()
    };
    Ok(fetch_run(clients, request).await?.0)
}

/// A run with its node executions in workflow (topological) order.
pub async fn run_with_nodes(
    clients: &Clients,
    run_id: &str,
) -> CliResult<(Run, Vec<NodeExecution>)> {
    let request = GetRunRequest {
        run_id: run_id.to_string(),
        include_nodes: true,
        include_workflow: false,
    };
    let (run, resp) = fetch_run(clients, request).await?;
    let mut nodes = resp.nodes;
    nodes.sort_by_key(|n| n.position);
    Ok((run, nodes))
}

/// The workflow document a run ran, as its snapshot holds it.
pub async fn workflow_of(clients: &Clients, run_id: &str) -> CliResult<String> {
    let request = GetRunRequest {
        run_id: run_id.to_string(),
        include_nodes: false,
        include_workflow: true,
    };
    Ok(fetch_run(clients, request).await?.0.workflow_content)
}

/// One step of a run: a node id or a node-execution id (unique prefix).
pub async fn node_execution(
    clients: &Clients,
    run_id: &str,
    step: &str,
) -> CliResult<NodeExecution> {
    let mut runs = clients.runs.clone();
    let resp = runs
        .get_node_execution(GetNodeExecutionRequest {
            run_id: run_id.to_string(),
            step: step.to_string(),
        })
        .await?
        .into_inner();
    returned(resp.node_execution, "node execution")
}
