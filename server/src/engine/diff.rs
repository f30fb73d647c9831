//! Comparing two runs node by node (`retake diff`): status, agent,
//! each output (by content hash, with a unified text diff), latency and
//! usage. Works on any two runs, related or not.

use super::Engine;
use crate::error::EngineResult;
use crate::model::*;
use std::collections::HashMap;

/// Outputs larger than this are compared by hash only.
const MAX_TEXT_DIFF_BYTES: usize = 256 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Presence {
    Both,
    OnlyA,
    OnlyB,
}

#[derive(Debug)]
pub struct OutputDiff {
    pub name: String,
    pub artifact_a: Option<String>,
    pub artifact_b: Option<String>,
    pub changed: bool,
    pub text_diff: String,
}

#[derive(Debug)]
pub struct NodeDiff {
    pub node_id: String,
    pub presence: Presence,
    pub a: Option<NodeExecution>,
    pub b: Option<NodeExecution>,
    pub outputs: Vec<OutputDiff>,
    pub changed: bool,
}

#[derive(Debug)]
pub struct RunDiff {
    pub run_a: Run,
    pub run_b: Run,
    pub nodes: Vec<NodeDiff>,
    pub changed: i32,
    pub unchanged: i32,
    pub only_a: i32,
    pub only_b: i32,
    /// The earliest node, in B's topological order, whose outputs differ
    /// (or that is in one run only): where the two runs part.
    pub first_divergence: Option<String>,
    /// Every node downstream of `first_divergence`, in the order of `nodes`.
    pub after_divergence: Vec<String>,
}

impl Engine {
    pub async fn diff_runs(&self, a: &str, b: &str) -> EngineResult<RunDiff> {
        let run_a = self.get_run(a).await?;
        let run_b = self.get_run(b).await?;
        let nodes_a = self.nodes_of_run(&run_a).await?;
        let nodes_b = self.nodes_of_run(&run_b).await?;
        let ids: Vec<String> = nodes_a
            .iter()
            .chain(&nodes_b)
            .flat_map(|n| n.output_artifacts.iter().cloned())
            .collect();
        let artifacts: HashMap<String, Artifact> = self
            .store()
            .artifacts_by_ids(&ids)
            .await?
            .into_iter()
            .map(|a| (a.id.clone(), a))
            .collect();

        let mut order: Vec<String> = nodes_a.iter().map(|n| n.node_id.clone()).collect();
        order.extend(
            nodes_b
                .iter()
                .map(|n| n.node_id.clone())
                .filter(|id| !nodes_a.iter().any(|n| &n.node_id == id)),
        );
        let mut diff = RunDiff {
            run_a,
            run_b,
            nodes: Vec::new(),
            changed: 0,
            unchanged: 0,
            only_a: 0,
            only_b: 0,
            first_divergence: None,
            after_divergence: Vec::new(),
        };
        for id in order {
            let a = nodes_a.iter().find(|n| n.node_id == id).cloned();
            let b = nodes_b.iter().find(|n| n.node_id == id).cloned();
            let presence = match (&a, &b) {
                (Some(_), Some(_)) => Presence::Both,
                (Some(_), None) => Presence::OnlyA,
                _ => Presence::OnlyB,
            };
            let outputs = self
                .diff_outputs(&id, a.as_ref(), b.as_ref(), &artifacts)
                .await?;
            let changed = presence != Presence::Both
                || outputs.iter().any(|o| o.changed)
                || a.as_ref().map(effective_status) != b.as_ref().map(effective_status)
                || a.as_ref().map(|n| &n.agent) != b.as_ref().map(|n| &n.agent);
            match presence {
                Presence::OnlyA => diff.only_a += 1,
                Presence::OnlyB => diff.only_b += 1,
                Presence::Both if changed => diff.changed += 1,
                Presence::Both => diff.unchanged += 1,
            }
            diff.nodes.push(NodeDiff {
                node_id: id,
                presence,
                a,
                b,
                outputs,
                changed,
            });
        }
        diff.first_divergence = first_divergence(&nodes_b, &diff.nodes);
        if let Some(first) = &diff.first_divergence {
            diff.after_divergence = downstream(first, &nodes_a, &nodes_b, &diff.nodes);
        }
        Ok(diff)
    }

    async fn diff_outputs(
        &self,
        node_id: &str,
        a: Option<&NodeExecution>,
        b: Option<&NodeExecution>,
        artifacts: &HashMap<String, Artifact>,
    ) -> EngineResult<Vec<OutputDiff>> {
        let named = |n: Option<&NodeExecution>| -> Vec<(String, Artifact)> {
            n.map(|n| {
                n.output_artifacts
                    .iter()
                    .filter_map(|id| artifacts.get(id))
                    .map(|a| (a.name.clone(), a.clone()))
                    .collect()
            })
            .unwrap_or_default()
        };
        let (outs_a, outs_b) = (named(a), named(b));
        let mut names: Vec<String> = outs_a.iter().map(|(n, _)| n.clone()).collect();
        names.extend(
            outs_b
                .iter()
                .map(|(n, _)| n.clone())
                .filter(|n| !outs_a.iter().any(|(m, _)| m == n)),
        );
        let mut out = Vec::new();
        for name in names {
            let art_a = outs_a.iter().find(|(n, _)| n == &name).map(|(_, a)| a);
            let art_b = outs_b.iter().find(|(n, _)| n == &name).map(|(_, a)| a);
            let changed = art_a.map(|a| &a.sha256) != art_b.map(|a| &a.sha256);
            let text_diff = if changed {
                self.text_diff(node_id, &name, art_a, art_b).await?
            } else {
                String::new()
            };
            out.push(OutputDiff {
                name,
                artifact_a: art_a.map(|a| a.id.clone()),
                artifact_b: art_b.map(|a| a.id.clone()),
                changed,
                text_diff,
            });
        }
        Ok(out)
    }

    async fn text_diff(
        &self,
        node: &str,
        name: &str,
        a: Option<&Artifact>,
        b: Option<&Artifact>,
    ) -> EngineResult<String> {
        if a.iter()
            .chain(b.iter())
            .any(|x| x.size as usize > MAX_TEXT_DIFF_BYTES)
        {
            return Ok(format!(
                "(outputs differ: {} and {} bytes, too large for a text diff)",
                a.map_or(0, |x| x.size),
                b.map_or(0, |x| x.size)
            ));
        }
        let mut texts = Vec::new();
        for art in [a, b] {
            let text = match art {
                Some(art) => match String::from_utf8(self.store().content(&art.sha256).await?) {
                    Ok(t) => readable(&t, &art.media_type),
                    Err(_) => return Ok("(binary outputs differ)".into()),
                },
                None => String::new(),
            };
            texts.push(text);
        }
        let diff = similar::TextDiff::from_lines(&texts[0], &texts[1]);
        Ok(diff
            .unified_diff()
            .context_radius(3)
            .header(&format!("a/{node}.{name}"), &format!("b/{node}.{name}"))
            .missing_newline_hint(false)
            .to_string())
    }
}

/// Reused output is the same outcome as completed output.
fn effective_status(n: &NodeExecution) -> NodeStatus {
    if n.status == NodeStatus::Reused {
        NodeStatus::Completed
    } else {
        n.status
    }
}

/// JSON is pretty-printed so a line diff shows what changed.
fn readable(text: &str, media_type: &str) -> String {
    let mut out = if media_type == super::agents::JSON {
        serde_json::from_str::<serde_json::Value>(text)
            .ok()
            .and_then(|v| serde_json::to_string_pretty(&v).ok())
            .unwrap_or_else(|| text.to_string())
    } else {
        text.to_string()
    };
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out
}

/// Whether a node's results differ between the runs: an output that is
/// not the same, or the node in one run only. (A changed agent or latency
/// alone is not a divergence: the results are what flows downstream.)
fn outputs_differ(n: &NodeDiff) -> bool {
    n.presence != Presence::Both || n.outputs.iter().any(|o| o.changed)
}

/// The first node whose outputs differ, in B's topological order (the
/// run compared is usually a replay: its order is the one that ran), then
/// A's for nodes B does not have.
fn first_divergence(nodes_b: &[NodeExecution], diffs: &[NodeDiff]) -> Option<String> {
    let by_id: HashMap<&str, &NodeDiff> = diffs.iter().map(|d| (d.node_id.as_str(), d)).collect();
    let in_b = nodes_b
        .iter()
        .filter_map(|n| by_id.get(n.node_id.as_str()).copied());
    let only_a = diffs.iter().filter(|d| d.presence == Presence::OnlyA);
    in_b.chain(only_a)
        .find(|d| outputs_differ(d))
        .map(|d| d.node_id.clone())
}

/// Every node that depends on `first`, directly or not, in either run.
fn downstream(
    first: &str,
    nodes_a: &[NodeExecution],
    nodes_b: &[NodeExecution],
    diffs: &[NodeDiff],
) -> Vec<String> {
    let mut dependents: HashMap<&str, Vec<&str>> = HashMap::new();
    for n in nodes_a.iter().chain(nodes_b) {
        for dep in &n.depends_on {
            dependents.entry(dep.as_str()).or_default().push(&n.node_id);
        }
    }
    let mut reached = std::collections::HashSet::new();
    let mut todo = vec![first];
    while let Some(id) = todo.pop() {
        for &next in dependents.get(id).into_iter().flatten() {
            if reached.insert(next) {
                todo.push(next);
            }
        }
    }
    diffs
        .iter()
        .filter(|d| d.node_id != first && reached.contains(d.node_id.as_str()))
        .map(|d| d.node_id.clone())
        .collect()
}
