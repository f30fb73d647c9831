//! What an experiment's replays changed: the node-by-node diff of every
//! source and its replay (`Engine::diff_runs`), summed per node, per pair
//! and in total, with the score node's values before and after.

use crate::engine::Engine;
use crate::engine::diff::{NodeDiff, Presence};
use crate::error::EngineResult;
use crate::model::*;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct NodeAggregate {
    pub node_id: String,
    pub changed: i32,
    pub unchanged: i32,
    pub failed: i32,
    pub newly_failed: i32,
    pub newly_succeeded: i32,
    pub reused: i32,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct PairComparison {
    pub source_run_id: String,
    pub replay_run_id: String,
    pub status_before: RunStatus,
    pub status_after: RunStatus,
    pub nodes_changed: i32,
    pub first_divergence: Option<String>,
    pub score_before: Option<f64>,
    pub score_after: Option<f64>,
    pub changed_nodes: Vec<String>,
    pub failed_nodes: Vec<String>,
    pub reused_nodes: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Totals {
    pub tokens_before: i64,
    pub tokens_after: i64,
    pub cost_before: f64,
    pub cost_after: f64,
    pub latency_ms_before: i64,
    pub latency_ms_after: i64,
    pub reused_nodes: i32,
    pub tokens_saved: i64,
    pub cost_saved: f64,
    pub latency_ms_saved: i64,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ScoreSummary {
    pub node_id: String,
    pub pairs: i32,
    pub mean_before: f64,
    pub mean_after: f64,
    /// `mean_after - mean_before`.
    pub delta: f64,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Comparison {
    pub nodes: Vec<NodeAggregate>,
    pub pairs: Vec<PairComparison>,
    pub totals: Totals,
    pub score: Option<ScoreSummary>,
}

fn tokens(u: &Usage) -> i64 {
    u.input_tokens + u.output_tokens
}

fn wall_ms(run: &Run) -> i64 {
    match (run.started_at, run.finished_at) {
        (Some(s), Some(f)) => (f - s) / 1000,
        _ => 0,
    }
}

/// A node's results differ: an output, or the node is in one run only.
fn outputs_differ(n: &NodeDiff) -> bool {
    n.presence != Presence::Both || n.outputs.iter().any(|o| o.changed)
}

impl Engine {
    /// The comparison of every item whose replay has finished.
    pub async fn compare_experiment(&self, e: &Experiment) -> EngineResult<Comparison> {
        let mut out = Comparison::default();
        let mut scores = Vec::new();
        for item in e.items.iter().filter(|i| i.status.is_finished()) {
            let Some(replay) = &item.replay_run_id else {
                continue;
            };
            let diff = self.diff_runs(&item.source_run_id, replay).await?;
            let mut pair = PairComparison {
                source_run_id: diff.run_a.id.clone(),
                replay_run_id: diff.run_b.id.clone(),
                status_before: diff.run_a.status,
                status_after: diff.run_b.status,
                nodes_changed: diff.changed + diff.only_a + diff.only_b,
                first_divergence: diff.first_divergence.clone(),
                ..PairComparison::default()
            };
            let t = &mut out.totals;
            t.latency_ms_before += wall_ms(&diff.run_a);
            t.latency_ms_after += wall_ms(&diff.run_b);
            for n in &diff.nodes {
                let agg = match out.nodes.iter_mut().position(|a| a.node_id == n.node_id) {
                    Some(i) => &mut out.nodes[i],
                    None => {
                        out.nodes.push(NodeAggregate {
                            node_id: n.node_id.clone(),
                            ..NodeAggregate::default()
                        });
                        out.nodes.last_mut().expect("just pushed")
                    }
                };
                let before = n.a.as_ref().map(|x| x.status);
                let after = n.b.as_ref().map(|x| x.status);
                if outputs_differ(n) {
                    agg.changed += 1;
                    pair.changed_nodes.push(n.node_id.clone());
                } else {
                    agg.unchanged += 1;
                }
                let failed = |s: Option<NodeStatus>| s == Some(NodeStatus::Failed);
                if failed(after) {
                    agg.failed += 1;
                    pair.failed_nodes.push(n.node_id.clone());
                    if !failed(before) {
                        agg.newly_failed += 1;
                    }
                } else if failed(before) && after.is_some_and(|s| s.has_outputs()) {
                    agg.newly_succeeded += 1;
                }
                if let Some(a) = &n.a {
                    t.tokens_before += tokens(&a.usage);
                    t.cost_before += a.usage.cost_usd;
                }
                match &n.b {
                    Some(b) if b.status == NodeStatus::Reused => {
                        agg.reused += 1;
                        pair.reused_nodes.push(n.node_id.clone());
                        t.reused_nodes += 1;
                        // What the source spent on it, spent once only.
                        if let Some(a) = &n.a {
                            t.tokens_saved += tokens(&a.usage);
                            t.cost_saved += a.usage.cost_usd;
                            t.latency_ms_saved += a.latency_ms.unwrap_or(0);
                        }
                    }
                    Some(b) => {
                        t.tokens_after += tokens(&b.usage);
                        t.cost_after += b.usage.cost_usd;
                    }
                    None => {}
                }
                if e.spec.score_node.as_deref() == Some(n.node_id.as_str()) {
                    pair.score_before = self.score(n.a.as_ref()).await?;
                    pair.score_after = self.score(n.b.as_ref()).await?;
                }
            }
            if let (Some(b), Some(a)) = (pair.score_before, pair.score_after) {
                scores.push((b, a));
            }
            out.pairs.push(pair);
        }
        if let Some(node) = &e.spec.score_node {
            let n = scores.len();
            let mean = |f: fn(&(f64, f64)) -> f64| {
                if n == 0 {
                    0.0
                } else {
                    scores.iter().map(f).sum::<f64>() / n as f64
                }
            };
            let (mean_before, mean_after) = (mean(|s| s.0), mean(|s| s.1));
            out.score = Some(ScoreSummary {
                node_id: node.clone(),
                pairs: n as i32,
                mean_before,
                mean_after,
                delta: mean_after - mean_before,
            });
        }
        Ok(out)
    }

    /// A node's first output read as a number (JSON strings holding one
    /// count too), or None.
    async fn score(&self, node: Option<&NodeExecution>) -> EngineResult<Option<f64>> {
        let Some(id) = node.and_then(|n| n.output_artifacts.first()) else {
            return Ok(None);
        };
        let (_, content) = self.artifact(id).await?;
        let text = String::from_utf8_lossy(&content);
        let text = text.trim();
        let number = text.parse::<f64>().ok().or_else(|| {
            serde_json::from_str::<String>(text)
                .ok()?
                .trim()
                .parse()
                .ok()
        });
        Ok(number.filter(|n| n.is_finite()))
    }
}
