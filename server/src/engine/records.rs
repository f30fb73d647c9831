//! New records: a run about to start, its node executions, the workflow
//! text as it may be stored, and picking a node execution by id.

use super::WorkflowSource;
use super::secrets;
use super::workflow::{self, Workflow};
use crate::error::{EngineError, EngineResult, Reason};
use crate::model::*;
use crate::store::sha256_hex;

/// Longest config or inputs text kept on a node record. Larger documents
/// stay whole where they live (the workflow snapshot, the input
/// artifacts); every record re-storing them would make each replay of a
/// big workflow cost its size again.
const MAX_RECORDED_TEXT: usize = 8 * 1024;

pub(crate) fn clip_for_record(text: String) -> String {
    if text.len() <= MAX_RECORDED_TEXT {
        return text;
    }
    let mut end = MAX_RECORDED_TEXT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!(
        "{}… [{} bytes in all; see the workflow and the input artifacts]",
        &text[..end],
        text.len()
    )
}

/// A run about to start, before it has a primary key.
pub(crate) fn new_run(
    workflow: &Workflow,
    src: &WorkflowSource<'_>,
    replay: Option<ReplayInfo>,
) -> Run {
    let total = workflow.nodes.len() as i32;
    Run {
        pk: 0,
        id: new_id("run"),
        workflow_name: workflow.name.clone(),
        workflow_description: workflow.description.clone(),
        workflow_sha256: sha256_hex(src.text.as_bytes()),
        files: src.files.clone(),
        variables: src.variables.clone(),
        status: RunStatus::Pending,
        created_at: now_micros(),
        started_at: None,
        finished_at: None,
        counts: NodeCounts {
            total,
            pending: total,
            ..Default::default()
        },
        usage: Usage::default(),
        failure: None,
        replay,
    }
}

/// The workflow text as it may be stored: literal credentials in config
/// replaced by a marker. A node that runs again from the snapshot (a
/// replay, a resumed run) fails with the marker, saying to pass the key as
/// `${env.NAME}` (`config::resolve`).
pub(crate) fn redact_snapshot(text: &str, workflow: &Workflow) -> String {
    let mut literals = Vec::new();
    for node in &workflow.nodes {
        secrets::literal_secrets(&node.config, &mut literals);
    }
    secrets::redact_literals(text, &literals)
}

pub(crate) fn new_node_execution(
    run_id: &str,
    pos: usize,
    node: &workflow::Node,
    agent: &str,
) -> NodeExecution {
    NodeExecution {
        id: new_id("nex"),
        run_id: run_id.to_string(),
        node_id: node.id.clone(),
        position: pos as i32,
        agent: agent.to_string(),
        config_json: clip_for_record(
            serde_json::Value::Object(secrets::redact_config(&node.config)).to_string(),
        ),
        depends_on: node.depends_on.clone(),
        ..Default::default()
    }
}

/// Picks a node execution by node id, or by node-execution id or a unique
/// prefix of one.
pub fn select_step<'a>(nodes: &'a [NodeExecution], step: &str) -> EngineResult<&'a NodeExecution> {
    let step = step.trim();
    if let Some(n) = nodes.iter().find(|n| n.node_id == step || n.id == step) {
        return Ok(n);
    }
    let matches: Vec<&NodeExecution> = nodes
        .iter()
        .filter(|n| !step.is_empty() && n.id.starts_with(step))
        .collect();
    match matches.as_slice() {
        [one] => Ok(one),
        [] => Err(EngineError::not_found(format!(
            "Step '{}' not found in workflow",
            crate::error::echo(step)
        ))
        .reason(Reason::NodeNotFound)
        .meta("nodeId", step)),
        many => Err(EngineError::invalid_argument(format!(
            "Step '{step}' is ambiguous; it matches {}",
            many.iter()
                .map(|n| format!("{} ({})", n.id, n.node_id))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}
