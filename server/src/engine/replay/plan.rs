//! Replay planning: which nodes of a finished run run again,
//! which are reused by reference, and which take an override. One pure
//! function over the two workflows and the source run's node records, so
//! every rule is tested without a store or a network.

use crate::engine::workflow::{self, Workflow};
use crate::engine::{select_step, template};
use crate::error::{EngineError, EngineResult, Reason};
use crate::model::{AgentSwap, NodeExecution, NodeStatus, OutputOverride};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// What the user asked to change.
#[derive(Clone, Debug, Default)]
pub struct ReplayChanges {
    pub from: Option<String>,
    pub swaps: Vec<AgentSwap>,
    pub overrides: Vec<OutputOverride>,
    /// Variables whose value differs from the source run.
    pub changed_variables: BTreeSet<String>,
    pub allow_drift: bool,
    /// Agents the source run already used in place of the workflow's
    /// (its own swaps): a replay of it keeps them unless swapped again.
    pub inherited_agents: BTreeMap<String, String>,
}

/// The outcome of planning, by node position in the new workflow.
#[derive(Debug, PartialEq)]
pub struct ReplayPlan {
    pub roots: Vec<String>,
    /// Nodes that execute again.
    pub replay_set: BTreeSet<usize>,
    /// Nodes whose output is an override: output name -> value.
    pub overridden: BTreeMap<usize, BTreeMap<String, String>>,
    /// Nodes reused from the source run: position -> index into source nodes.
    pub reused: BTreeMap<usize, usize>,
    /// Nodes outside the replay set that a false `when` skipped in the
    /// source: their outcome carries over, as a reused result would.
    pub carried_skips: BTreeMap<usize, usize>,
    /// Agent per position, swaps applied.
    pub agents: Vec<String>,
    pub forked_at_step: String,
    /// Nodes outside the replay set whose definition changed (allowed drift).
    pub drifted: Vec<String>,
    pub swaps: Vec<AgentSwap>,
    pub overrides: Vec<OutputOverride>,
}

/// Plans a replay of `source_nodes` (the source run's records, reused ones
/// resolved) from `source_wf` onto `new_wf`.
pub fn plan_replay(
    source_run: &str,
    source_wf: &Workflow,
    source_nodes: &[NodeExecution],
    new_wf: &Workflow,
    changes: &ReplayChanges,
) -> EngineResult<ReplayPlan> {
    let invalid = |m: String| EngineError::invalid_argument(m).reason(Reason::ReplayInvalid);
    // Replaying the source's own snapshot: nothing can have drifted, and
    // comparing a thousand definitions with themselves costs time.
    let same_workflow = std::ptr::eq(source_wf, new_wf);
    let pos_of = |id: &str| new_wf.index.get(id).copied();
    let mut roots: BTreeSet<usize> = BTreeSet::new();

    // 1. The step to replay from: a node id, or a node-execution id of the source run.
    let from = match changes
        .from
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        None => None,
        Some(step) => {
            let node_id = match pos_of(step) {
                Some(_) => step.to_string(),
                None => match select_step(source_nodes, step) {
                    Ok(n) if pos_of(&n.node_id).is_some() => n.node_id.clone(),
                    Err(e @ EngineError::InvalidArgument(_)) => return Err(e),
                    _ => return Err(invalid(format!("Step '{step}' not found in workflow"))),
                },
            };
            roots.insert(pos_of(&node_id).expect("checked"));
            Some(node_id)
        }
    };

    if !changes.allow_drift && new_wf.nodes.iter().all(|n| source_wf.node(&n.id).is_none()) {
        return Err(invalid(format!(
            "The workflow shares no node with run '{source_run}', so nothing of that run can be replayed; \
             start it as a new run (or allow drift to replay it anyway)"
        )));
    }

    // 2. Swapped nodes run again, with their new agent.
    let mut agents: Vec<String> = new_wf
        .nodes
        .iter()
        .map(|n| {
            changes
                .inherited_agents
                .get(&n.id)
                .cloned()
                .unwrap_or_else(|| n.agent.clone())
        })
        .collect();
    let mut swaps = Vec::new();
    for swap in &changes.swaps {
        let Some(p) = pos_of(swap.node_id.trim()) else {
            return Err(invalid(format!(
                "Invalid agent swap: node '{}' not found in workflow",
                swap.node_id
            )));
        };
        workflow::check_agent(swap.agent.trim()).map_err(|e| {
            invalid(format!(
                "Invalid agent swap for node '{}': {e}",
                swap.node_id
            ))
        })?;
        agents[p] = swap.agent.trim().to_string();
        roots.insert(p);
        swaps.push(AgentSwap {
            node_id: new_wf.nodes[p].id.clone(),
            agent: agents[p].clone(),
        });
    }

    // 3. Overrides replace a node's output; its direct consumers run again.
    let dependents = new_wf.dependents();
    let mut overridden: BTreeMap<usize, BTreeMap<String, String>> = BTreeMap::new();
    let mut overrides = Vec::new();
    for o in &changes.overrides {
        let raw = o.selector.trim();
        let mut output_name = o.output.trim().to_string();
        // `checkpoint.X` names node X, or output X of a node called
        // `checkpoint`; when both exist the override is ambiguous.
        let selector = match raw.strip_prefix("checkpoint.").filter(|s| !s.is_empty()) {
            None => raw,
            Some(rest) => {
                let as_output = output_name.is_empty()
                    && pos_of("checkpoint")
                        .is_some_and(|p| new_wf.nodes[p].outputs.iter().any(|x| x == rest));
                let as_node = pos_of(rest).is_some();
                match (as_node, as_output) {
                    (true, true) => {
                        return Err(invalid(format!(
                            "Override '{raw}' is ambiguous: it could mean node '{rest}' or output '{rest}' of node 'checkpoint'; \
                             write {rest}=VALUE for the node or checkpoint.{rest} with the output named explicitly"
                        )));
                    }
                    (false, true) => {
                        output_name = rest.to_string();
                        "checkpoint"
                    }
                    _ => rest,
                }
            }
        };
        let node_id = match pos_of(selector) {
            Some(_) => selector.to_string(),
            None => match select_step(source_nodes, selector) {
                Ok(n) if pos_of(&n.node_id).is_some() => n.node_id.clone(),
                Err(e @ EngineError::InvalidArgument(_)) => return Err(e),
                _ => {
                    return Err(invalid(format!(
                        "Invalid override: node '{selector}' not found in workflow (use node=value, node.output=value or checkpoint.node=value)"
                    )));
                }
            },
        };
        let p = pos_of(&node_id).expect("checked");
        let node = &new_wf.nodes[p];
        if agents[p].starts_with("human://") {
            return Err(invalid(format!(
                "Node '{node_id}' waits for a person ({}); a wait's answer cannot be overridden or filled in ahead. \
                 It asks again when it is in the replay set (replay from it or from a node upstream of it)",
                agents[p]
            )));
        }
        let output = if output_name.is_empty() {
            match node.outputs.as_slice() {
                [only] => only.clone(),
                many => {
                    return Err(invalid(format!(
                        "Node '{node_id}' has several outputs ({}); name one: {node_id}.{}=VALUE",
                        many.join(", "),
                        many[0]
                    )));
                }
            }
        } else {
            let name = output_name;
            if !node.outputs.contains(&name) {
                return Err(invalid(format!(
                    "Invalid override: node '{node_id}' has no output '{name}' (outputs: {})",
                    node.outputs.join(", ")
                )));
            }
            name
        };
        overridden
            .entry(p)
            .or_default()
            .insert(output.clone(), o.value.clone());
        overrides.push(OutputOverride {
            selector: node_id.clone(),
            output,
            value: o.value.clone(),
            source: o.source.clone(),
        });
    }
    for (&p, outs) in &overridden {
        let node = &new_wf.nodes[p];
        if outs.len() < node.outputs.len() {
            let missing: Vec<&String> = node
                .outputs
                .iter()
                .filter(|o| !outs.contains_key(*o))
                .collect();
            // A partly overridden node takes the rest from the source run.
            let source = source_nodes.iter().find(|n| n.node_id == node.id);
            if !source.is_some_and(|s| s.status.has_outputs()) {
                return Err(EngineError::failed_precondition(format!(
                    "Node '{}' has no recorded output {} in run '{source_run}' to combine with the override; override every output",
                    node.id,
                    missing
                        .iter()
                        .map(|m| format!("'{m}'"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        }
        for &d in &dependents[p] {
            roots.insert(d);
        }
        for (q, other) in new_wf.nodes.iter().enumerate() {
            if other.referenced_nodes.contains(&node.id) {
                roots.insert(q);
            }
        }
    }

    // 4. Nodes that use a changed variable; 5. nodes new in the workflow.
    for (p, node) in new_wf.nodes.iter().enumerate() {
        if node
            .user_vars
            .iter()
            .any(|v| changes.changed_variables.contains(v))
        {
            roots.insert(p);
        }
        if source_wf.node(&node.id).is_none() {
            roots.insert(p);
        }
    }
    // An overridden node is never executed, even when something made it a root.
    let roots: BTreeSet<usize> = roots
        .into_iter()
        .filter(|p| !overridden.contains_key(p))
        .collect();
    // Overriding a node nothing consumes still makes a replay: the run
    // that records the new value.
    if roots.is_empty() && overridden.is_empty() {
        return Err(invalid(
            "Nothing to replay: give a step to replay from, an agent swap, an output override, a changed variable, or a workflow with new nodes"
                .into(),
        ));
    }

    // The replay set: roots and everything downstream of them (positions
    // are topological, so one forward pass suffices).
    let mut in_set = vec![false; new_wf.nodes.len()];
    for &r in &roots {
        in_set[r] = true;
    }
    for p in 0..new_wf.nodes.len() {
        if in_set[p] {
            for &d in &dependents[p] {
                in_set[d] = true;
            }
        } else if new_wf.nodes[p]
            .referenced_nodes
            .iter()
            .any(|r| in_set[new_wf.index[r]])
        {
            in_set[p] = true;
        }
    }
    let replay_set: BTreeSet<usize> = (0..in_set.len())
        .filter(|&p| in_set[p] && !overridden.contains_key(&p))
        .collect();

    // Everything else is reused, and must have a result to reuse.
    let source_at: HashMap<&str, usize> = source_nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.node_id.as_str(), i))
        .collect();
    let mut reused = BTreeMap::new();
    let mut carried_skips = BTreeMap::new();
    let mut missing = Vec::new();
    let mut drifted = Vec::new();
    for (p, node) in new_wf.nodes.iter().enumerate() {
        if replay_set.contains(&p)
            || overridden
                .get(&p)
                .is_some_and(|o| o.len() == node.outputs.len())
        {
            continue;
        }
        let found = source_at.get(node.id.as_str()).copied();
        match found {
            Some(i) if source_nodes[i].status.has_outputs() => {
                if overridden.contains_key(&p) {
                    continue;
                }
                reused.insert(p, i);
                if !same_workflow
                    && let Some(old) = source_wf.node(&node.id)
                    && old.definition() != node.definition()
                {
                    drifted.push(node.id.clone());
                }
            }
            Some(i)
                if source_nodes[i].status == NodeStatus::Skipped
                    && source_nodes[i].blocked_by.is_empty() =>
            {
                carried_skips.insert(p, i);
            }
            Some(i) => missing.push((node.id.clone(), source_nodes[i].status.to_string())),
            None => missing.push((node.id.clone(), "no record".to_string())),
        }
    }
    if !missing.is_empty() {
        let first = missing[0].0.clone();
        let mut err = EngineError::failed_precondition(format!(
            "Nothing to reuse for {} from run '{source_run}': {} did not complete there. Replay from {} (from_node '{}')",
            if missing.len() == 1 {
                "a node"
            } else {
                "nodes"
            },
            missing
                .iter()
                .map(|(id, why)| format!("'{id}' ({why})"))
                .collect::<Vec<_>>()
                .join(", "),
            if missing.len() == 1 {
                "it"
            } else {
                "the first of them"
            },
            first
        ))
        .reason(Reason::ReplayInvalid)
        .meta("runId", source_run)
        .meta("fromNode", first);
        for (id, why) in &missing {
            err = err.precondition(
                "NOT_REUSABLE",
                id.clone(),
                format!("'{id}' is {why} in run '{source_run}'"),
            );
        }
        return Err(err);
    }
    // A node that runs again may only reference outputs its reused
    // producers recorded; drift or not, anything else would resolve to
    // nothing.
    let mut dangling = Vec::new();
    for &p in &replay_set {
        let node = &new_wf.nodes[p];
        for (producer, output) in output_refs(node) {
            let Some(q) = pos_of(&producer) else { continue };
            if !reused.contains_key(&q) {
                continue;
            }
            let recorded = source_wf
                .node(&producer)
                .is_some_and(|old| old.outputs.contains(&output));
            let message = format!(
                "'{}' uses ${{{producer}.{output}}}, but the reused record of '{producer}' has no output '{output}'",
                node.id
            );
            if !recorded && !dangling.contains(&message) {
                dangling.push(message);
            }
        }
    }
    if !dangling.is_empty() {
        let producer = dangling[0]
            .split('\'')
            .nth(3)
            .unwrap_or_default()
            .to_string();
        return Err(EngineError::failed_precondition(format!(
            "{}. Replay from '{producer}' too so it produces that output",
            dangling.join("; "),
        ))
        .reason(Reason::ReplayInvalid)
        .meta("runId", source_run)
        .meta("fromNode", producer));
    }
    if !drifted.is_empty() && !changes.allow_drift {
        let mut err = EngineError::failed_precondition(format!(
            "Workflow drift: {} changed since run '{source_run}' but would be reused, not replayed: {}. Replay from {}, or allow drift to reuse the old records",
            if drifted.len() == 1 {
                "a node"
            } else {
                "nodes"
            },
            drifted
                .iter()
                .map(|d| format!("'{d}'"))
                .collect::<Vec<_>>()
                .join(", "),
            if drifted.len() == 1 { "it" } else { "them" },
        ))
        .reason(Reason::ReplayDrift)
        .meta("runId", source_run)
        .meta("nodeIds", drifted.join(","));
        for id in &drifted {
            err = err.precondition(
                "DRIFT",
                id.clone(),
                format!("'{id}' is defined differently than in run '{source_run}'"),
            );
        }
        return Err(err);
    }

    let forked_at_step = from.unwrap_or_else(|| {
        let first = roots.iter().chain(overridden.keys()).min().copied();
        first
            .map(|p| new_wf.nodes[p].id.clone())
            .unwrap_or_default()
    });
    Ok(ReplayPlan {
        roots: roots.iter().map(|&p| new_wf.nodes[p].id.clone()).collect(),
        replay_set,
        overridden,
        reused,
        carried_skips,
        agents,
        forked_at_step,
        drifted,
        swaps,
        overrides,
    })
}

/// Every `${node.output}` a node's inputs, prompt and condition use.
fn output_refs(node: &workflow::Node) -> Vec<(String, String)> {
    let mut refs = Vec::new();
    if let Some(inputs) = &node.inputs {
        let _ = template::refs_in_value(inputs, &mut refs);
    }
    for text in [
        node.system_prompt.as_ref(),
        node.when.as_ref().map(|w| &w.raw),
    ]
    .into_iter()
    .flatten()
    {
        let _ = template::refs_in_value(&serde_json::Value::String(text.clone()), &mut refs);
    }
    refs.into_iter()
        .filter_map(|r| match r {
            template::Ref::Output { node, output } => Some((node, output)),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
