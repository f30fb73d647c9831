//! The reads several commands share: a run, a run with its node
//! executions, one node execution, the workflow a run ran, and the pages
//! of a List call.

use crate::connect::Clients;
use crate::error::{CliError, CliResult};
use futures::StreamExt;
use retake::v1::{GetNodeExecutionRequest, GetRunRequest, GetRunResponse, NodeExecution, Run};
use std::future::Future;

/// Largest page the server serves.
const MAX_PAGE: usize = 1000;

/// Calls a command keeps in flight at once when it fetches one thing per
/// node: enough to hide round trips, few enough not to crowd the server.
const IN_FLIGHT: usize = 8;

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

/// Runs `fetches` a few at a time and gives their results in order.
pub async fn few_at_a_time<T>(
    fetches: impl IntoIterator<Item = impl Future<Output = T>>,
) -> Vec<T> {
    futures::stream::iter(fetches)
        .buffered(IN_FLIGHT)
        .collect()
        .await
}

/// Up to `limit` items of a List call, page after page until the last:
/// `page(page_size, page_token)` fetches one page and gives its items and
/// the token of the next.
pub async fn pages<T, F, Fut>(limit: usize, mut page: F) -> CliResult<Vec<T>>
where
    F: FnMut(i32, String) -> Fut,
    Fut: Future<Output = CliResult<(Vec<T>, String)>>,
{
    let mut items = Vec::new();
    let mut token = String::new();
    while items.len() < limit {
        let want = (limit - items.len()).min(MAX_PAGE) as i32;
        let (got, next) = page(want, token).await?;
        // An empty page ends it too: a server that hands out tokens
        // forever must not keep us here.
        let empty = got.is_empty();
        items.extend(got);
        if next.is_empty() || empty {
            break;
        }
        token = next;
    }
    items.truncate(limit);
    Ok(items)
}
