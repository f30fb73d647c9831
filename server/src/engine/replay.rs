//! Replay planning: which nodes of a finished run run again,
//! which are reused by reference, and which take an override. One pure
//! function over the two workflows and the source run's node records, so
//! every rule is tested without a store or a network.

use super::workflow::{self, Workflow};
use crate::error::{EngineError, EngineResult};
use crate::model::{AgentSwap, NodeExecution, NodeStatus, OutputOverride};
use std::collections::{BTreeMap, BTreeSet};

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
    let invalid = |m: String| EngineError::InvalidArgument(m);
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
                None => match super::select_step(source_nodes, step) {
                    Ok(n) if pos_of(&n.node_id).is_some() => n.node_id.clone(),
                    Err(EngineError::InvalidArgument(m)) => return Err(invalid(m)),
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
            None => match super::select_step(source_nodes, selector) {
                Ok(n) if pos_of(&n.node_id).is_some() => n.node_id.clone(),
                Err(EngineError::InvalidArgument(m)) => return Err(invalid(m)),
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
                return Err(EngineError::FailedPrecondition(format!(
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
            "Nothing to replay: give --from STEP, an agent swap, an output override, a changed variable, or a workflow with new nodes"
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
        let found = source_nodes.iter().position(|n| n.node_id == node.id);
        match found {
            Some(i) if source_nodes[i].status.has_outputs() => {
                if overridden.contains_key(&p) {
                    continue;
                }
                reused.insert(p, i);
                if let Some(old) = source_wf.node(&node.id)
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
            Some(i) => missing.push(format!("'{}' ({})", node.id, source_nodes[i].status)),
            None => missing.push(format!("'{}' (no record)", node.id)),
        }
    }
    if !missing.is_empty() {
        return Err(EngineError::FailedPrecondition(format!(
            "Nothing to reuse for {} from run '{source_run}': {} did not complete there. Replay from {}: --from {}",
            if missing.len() == 1 {
                "a node"
            } else {
                "nodes"
            },
            missing.join(", "),
            if missing.len() == 1 {
                "it"
            } else {
                "the first of them"
            },
            missing[0].split('\'').nth(1).unwrap_or_default()
        )));
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
        return Err(EngineError::FailedPrecondition(format!(
            "{}. Replay from '{}' too so it produces that output",
            dangling.join("; "),
            dangling[0].split('\'').nth(3).unwrap_or_default()
        )));
    }
    if !drifted.is_empty() && !changes.allow_drift {
        return Err(EngineError::FailedPrecondition(format!(
            "Workflow drift: {} changed since run '{source_run}' but would be reused, not replayed: {}. Replay from {} or pass --allow-drift",
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
        )));
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
        let _ = super::template::refs_in_value(inputs, &mut refs);
    }
    for text in [
        node.system_prompt.as_ref(),
        node.when.as_ref().map(|w| &w.raw),
    ]
    .into_iter()
    .flatten()
    {
        let _ = super::template::refs_in_value(&serde_json::Value::String(text.clone()), &mut refs);
    }
    refs.into_iter()
        .filter_map(|r| match r {
            super::template::Ref::Output { node, output } => Some((node, output)),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::workflow::{LoadOptions, load};
    use crate::model::*;

    fn wf(yaml: &str) -> Workflow {
        let l = load(
            yaml,
            &BTreeMap::new(),
            &BTreeMap::new(),
            LoadOptions {
                ignore_missing_variables: true,
                ..Default::default()
            },
        );
        assert!(l.errors.is_empty(), "{:?}", l.errors);
        l.workflow.unwrap()
    }

    fn records(w: &Workflow, status: &[(&str, NodeStatus)]) -> Vec<NodeExecution> {
        w.nodes
            .iter()
            .enumerate()
            .map(|(i, n)| NodeExecution {
                pk: i as i64 + 1,
                id: format!("nex_{i:04}_{}", n.id),
                run_id: "run_src".into(),
                node_id: n.id.clone(),
                position: i as i32,
                status: status
                    .iter()
                    .find(|(id, _)| *id == n.id)
                    .map(|(_, s)| *s)
                    .unwrap_or(NodeStatus::Completed),
                agent: n.agent.clone(),
                config_json: "{}".into(),
                prompt: None,
                model: None,
                inputs_json: None,
                input_artifacts: vec![],
                output_artifacts: vec![format!("art_{}", n.id)],
                error: None,
                error_origin: None,
                started_at: None,
                finished_at: None,
                latency_ms: None,
                usage: Usage::default(),
                attempt_count: 1,
                attempts: vec![],
                blocked_by: vec![],
                reused_from_run: None,
                reused_from_node_execution: None,
                depends_on: n.depends_on.clone(),
            })
            .collect()
    }

    const DIAMOND: &str = "name: d\nnodes:\n  a: {agent: local://echo, outputs: [o]}\n  b: {agent: local://echo, outputs: [o], depends_on: [a]}\n  c: {agent: local://echo, outputs: [o], depends_on: [a]}\n  d: {agent: local://echo, outputs: [o], depends_on: [b, c]}\n";

    fn names(w: &Workflow, set: &BTreeSet<usize>) -> Vec<String> {
        set.iter().map(|&p| w.nodes[p].id.clone()).collect()
    }

    #[test]
    fn a_reference_to_an_output_the_reused_record_lacks_is_refused_even_with_drift() {
        let source = wf(
            "name: r\nnodes:\n  src: {agent: local://echo, outputs: [res]}\n  use: {agent: local://echo, depends_on: [src], inputs: {x: \"${src.res}\"}, outputs: [o]}\n",
        );
        let renamed = wf(
            "name: r\nnodes:\n  src: {agent: local://echo, outputs: [result]}\n  use: {agent: local://echo, depends_on: [src], inputs: {x: \"${src.result}\"}, outputs: [o]}\n",
        );
        let changes = ReplayChanges {
            from: Some("use".into()),
            allow_drift: true,
            ..Default::default()
        };
        let err = plan_replay(
            "run_src",
            &source,
            &records(&source, &[]),
            &renamed,
            &changes,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("'use' uses ${src.result}"), "{err}");
        assert!(err.contains("Replay from 'src'"), "{err}");
    }

    #[test]
    fn checkpoint_selectors_take_the_reading_that_exists() {
        let w = wf(
            "name: c\nnodes:\n  checkpoint: {agent: local://echo, outputs: [result, notes]}\n  notes: {agent: local://echo, depends_on: [checkpoint], outputs: [o]}\n  draft: {agent: local://echo, depends_on: [checkpoint], outputs: [o]}\n  end: {agent: local://echo, depends_on: [notes, draft], outputs: [o]}\n",
        );
        let plan = |selector: &str| {
            let changes = ReplayChanges {
                overrides: vec![OutputOverride {
                    selector: selector.into(),
                    output: String::new(),
                    value: "v".into(),
                    ..Default::default()
                }],
                ..Default::default()
            };
            plan_replay("run_src", &w, &records(&w, &[]), &w, &changes)
        };
        let p = plan("checkpoint.result").unwrap();
        assert_eq!(p.overrides[0].selector, "checkpoint");
        assert_eq!(p.overrides[0].output, "result");
        let p = plan("checkpoint.draft").unwrap();
        assert_eq!(p.overrides[0].selector, "draft");
        let err = plan("checkpoint.notes").unwrap_err().to_string();
        assert!(
            err.contains("ambiguous") && err.contains("node 'notes'"),
            "{err}"
        );
    }

    #[test]
    fn overriding_a_node_nothing_consumes_is_a_replay_of_its_own() {
        let w = wf(DIAMOND);
        let changes = ReplayChanges {
            overrides: vec![OutputOverride {
                selector: "d".into(),
                output: String::new(),
                value: "final".into(),
                source: String::new(),
            }],
            ..Default::default()
        };
        let plan = plan_replay("run_src", &w, &records(&w, &[]), &w, &changes).unwrap();
        assert!(plan.replay_set.is_empty());
        assert_eq!(plan.forked_at_step, "d");
        assert_eq!(plan.reused.len(), 3);
    }

    #[test]
    fn a_wait_cannot_be_overridden() {
        let w = wf(
            "name: g\nnodes:\n  draft: {agent: local://echo, outputs: [o]}\n  review: {agent: \"human://approve\", depends_on: [draft], outputs: [decision]}\n",
        );
        let changes = ReplayChanges {
            overrides: vec![OutputOverride {
                selector: "review".into(),
                output: String::new(),
                value: "approved".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let err = plan_replay("run_src", &w, &records(&w, &[]), &w, &changes)
            .unwrap_err()
            .to_string();
        assert!(err.contains("asks again"), "{err}");
    }

    #[test]
    fn a_workflow_sharing_no_node_is_not_a_replay_unless_drift_is_allowed() {
        let w = wf(DIAMOND);
        let other = wf("name: o\nnodes:\n  x: {agent: local://echo, outputs: [o]}\n");
        let mut changes = ReplayChanges::default();
        let err = plan_replay("run_src", &w, &records(&w, &[]), &other, &changes)
            .unwrap_err()
            .to_string();
        assert!(err.contains("shares no node"), "{err}");
        changes.allow_drift = true;
        plan_replay("run_src", &w, &records(&w, &[]), &other, &changes).unwrap();
    }

    #[test]
    fn replaying_from_a_branch_reuses_its_sibling() {
        let w = wf(DIAMOND);
        let src = records(&w, &[]);
        let plan = plan_replay(
            "run_src",
            &w,
            &src,
            &w,
            &ReplayChanges {
                from: Some("b".into()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(names(&w, &plan.replay_set), ["b", "d"]);
        let reused: Vec<&str> = plan
            .reused
            .keys()
            .map(|&p| w.nodes[p].id.as_str())
            .collect();
        assert_eq!(reused, ["a", "c"]);
        assert_eq!(plan.forked_at_step, "b");
    }

    #[test]
    fn a_swap_is_a_root_even_without_from() {
        let w = wf(DIAMOND);
        let src = records(&w, &[]);
        let changes = ReplayChanges {
            swaps: vec![AgentSwap {
                node_id: "c".into(),
                agent: "local://mock".into(),
            }],
            ..Default::default()
        };
        let plan = plan_replay("run_src", &w, &src, &w, &changes).unwrap();
        assert_eq!(names(&w, &plan.replay_set), ["c", "d"]);
        assert_eq!(plan.agents[w.index["c"]], "local://mock");
        assert_eq!(plan.forked_at_step, "c");
        let bad = ReplayChanges {
            swaps: vec![AgentSwap {
                node_id: "zz".into(),
                agent: "local://mock".into(),
            }],
            ..Default::default()
        };
        assert!(
            matches!(plan_replay("run_src", &w, &src, &w, &bad), Err(EngineError::InvalidArgument(m)) if m.contains("'zz' not found"))
        );
    }

    #[test]
    fn an_override_reruns_every_direct_consumer_but_not_the_node() {
        let w = wf(DIAMOND);
        let src = records(&w, &[]);
        let changes = ReplayChanges {
            overrides: vec![OutputOverride {
                selector: "checkpoint.a".into(),
                output: String::new(),
                value: "edited".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let plan = plan_replay("run_src", &w, &src, &w, &changes).unwrap();
        assert_eq!(plan.roots, ["b", "c"]);
        assert_eq!(names(&w, &plan.replay_set), ["b", "c", "d"]);
        assert_eq!(plan.overridden[&w.index["a"]]["o"], "edited");
        assert!(plan.reused.is_empty());
    }

    #[test]
    fn a_multi_output_override_must_name_the_output() {
        let w = wf(
            "name: m\nnodes:\n  a: {agent: local://echo, outputs: [x, y]}\n  b: {agent: local://echo, outputs: [o], depends_on: [a]}\n",
        );
        let src = records(&w, &[]);
        let changes = ReplayChanges {
            overrides: vec![OutputOverride {
                selector: "a".into(),
                output: String::new(),
                value: "v".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let err = plan_replay("run_src", &w, &src, &w, &changes).unwrap_err();
        assert!(err.to_string().contains("several outputs (x, y)"), "{err}");
        let changes = ReplayChanges {
            overrides: vec![OutputOverride {
                selector: "a".into(),
                output: "y".into(),
                value: "v".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let plan = plan_replay("run_src", &w, &src, &w, &changes).unwrap();
        assert_eq!(names(&w, &plan.replay_set), ["b"]);
    }

    #[test]
    fn nothing_to_reuse_names_the_node_and_suggests_replaying_from_it() {
        let w = wf(DIAMOND);
        let src = records(&w, &[("c", NodeStatus::Failed), ("d", NodeStatus::Skipped)]);
        let err = plan_replay(
            "run_src",
            &w,
            &src,
            &w,
            &ReplayChanges {
                from: Some("b".into()),
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(
            matches!(&err, EngineError::FailedPrecondition(m) if m.contains("'c' (failed)") && m.contains("--from c")),
            "{err}"
        );
        let plan = plan_replay(
            "run_src",
            &w,
            &src,
            &w,
            &ReplayChanges {
                from: Some("c".into()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(names(&w, &plan.replay_set), ["c", "d"]);
    }

    #[test]
    fn a_condition_skip_outside_the_replay_set_carries_over() {
        let w = wf(DIAMOND);
        let src = records(&w, &[("c", NodeStatus::Skipped)]);
        let plan = plan_replay(
            "run_src",
            &w,
            &src,
            &w,
            &ReplayChanges {
                from: Some("d".into()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(
            plan.carried_skips
                .keys()
                .map(|&p| w.nodes[p].id.as_str())
                .collect::<Vec<_>>(),
            ["c"]
        );
        let mut blocked = records(&w, &[("c", NodeStatus::Skipped)]);
        blocked[w.index["c"]].blocked_by = vec!["b".into()];
        assert!(
            plan_replay(
                "run_src",
                &w,
                &blocked,
                &w,
                &ReplayChanges {
                    from: Some("d".into()),
                    ..Default::default()
                }
            )
            .is_err()
        );
    }

    #[test]
    fn drift_outside_the_replay_set_is_refused_unless_allowed() {
        let old = wf(DIAMOND);
        let new = wf(&DIAMOND.replace(
            "c: {agent: local://echo",
            "c: {agent: local://mock, config: {response: x}",
        ));
        let src = records(&old, &[]);
        let changes = ReplayChanges {
            from: Some("b".into()),
            ..Default::default()
        };
        let err = plan_replay("run_src", &old, &src, &new, &changes).unwrap_err();
        assert!(
            matches!(&err, EngineError::FailedPrecondition(m) if m.contains("drift") && m.contains("'c'")),
            "{err}"
        );
        let allowed = ReplayChanges {
            allow_drift: true,
            ..changes
        };
        assert_eq!(
            plan_replay("run_src", &old, &src, &new, &allowed)
                .unwrap()
                .drifted,
            ["c"]
        );
    }

    #[test]
    fn changed_variables_and_new_nodes_are_roots() {
        let old = wf(
            "name: v\nnodes:\n  a: {agent: local://echo, outputs: [o]}\n  b: {agent: local://echo, inputs: {t: \"${user.topic}\"}, outputs: [o], depends_on: [a]}\n",
        );
        let new = wf(
            "name: v\nnodes:\n  a: {agent: local://echo, outputs: [o]}\n  b: {agent: local://echo, inputs: {t: \"${user.topic}\"}, outputs: [o], depends_on: [a]}\n  z: {agent: local://echo, outputs: [o], depends_on: [a]}\n",
        );
        let src = records(&old, &[]);
        let changes = ReplayChanges {
            changed_variables: ["topic".to_string()].into(),
            ..Default::default()
        };
        let plan = plan_replay("run_src", &old, &src, &new, &changes).unwrap();
        assert_eq!(plan.roots, ["b", "z"]);
        let err = plan_replay("run_src", &old, &src, &old, &ReplayChanges::default()).unwrap_err();
        assert!(err.to_string().starts_with("Nothing to replay"));
    }

    #[test]
    fn steps_are_node_ids_or_execution_id_prefixes() {
        let w = wf(DIAMOND);
        let src = records(&w, &[]);
        let plan = plan_replay(
            "run_src",
            &w,
            &src,
            &w,
            &ReplayChanges {
                from: Some("nex_0002".into()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(plan.forked_at_step, "c");
        let err = plan_replay(
            "run_src",
            &w,
            &src,
            &w,
            &ReplayChanges {
                from: Some("nex_000".into()),
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(err.to_string().contains("ambiguous"), "{err}");
        let err = plan_replay(
            "run_src",
            &w,
            &src,
            &w,
            &ReplayChanges {
                from: Some("x".into()),
                ..Default::default()
            },
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "Step 'x' not found in workflow");
    }
}
