//! Experiments between the engine's types and retake.v1 messages.

use super::convert::{self, timestamp};
use crate::engine::experiments::Comparison;
use crate::error::{EngineError, EngineResult};
use crate::model::*;
use retake::v1 as pb;

fn micros(t: Option<prost_types::Timestamp>) -> Option<Micros> {
    t.map(|t| t.seconds * 1_000_000 + i64::from(t.nanos) / 1000)
}

fn non_empty(s: String) -> Option<String> {
    Some(s).filter(|s| !s.trim().is_empty())
}

pub fn spec_from(req: &pb::StartExperimentRequest) -> EngineResult<ExperimentSpec> {
    let sel = req.selection.clone().unwrap_or_default();
    let change = req.change.clone().unwrap_or_default();
    if sel.limit < 0 || req.concurrency < 0 {
        return Err(EngineError::invalid_argument(
            "limit and concurrency must not be negative",
        ));
    }
    Ok(ExperimentSpec {
        selection: RunSelection {
            run_ids: sel
                .run_ids
                .into_iter()
                .filter(|id| !id.trim().is_empty())
                .collect(),
            workflow_name: non_empty(sel.workflow_name),
            status: convert::run_status_filter(sel.status)?,
            created_after: micros(sel.created_after),
            created_before: micros(sel.created_before),
            forked_from: non_empty(sel.forked_from),
            limit: sel.limit as u32,
        },
        change: ExperimentChange {
            workflow: non_empty(change.workflow),
            files: change.files.into_iter().collect(),
            from: non_empty(change.from_node),
            swaps: convert::swaps_from(change.swaps),
            overrides: convert::overrides_from(change.overrides),
            variables: change.variables.into_iter().collect(),
            allow_drift: change.allow_drift,
        },
        concurrency: req.concurrency as u32,
        score_node: non_empty(req.score_node.clone()),
    })
}

pub fn experiment(e: &Experiment) -> pb::Experiment {
    let sel = &e.spec.selection;
    let change = &e.spec.change;
    let count = |s| e.count(s) as i32;
    pb::Experiment {
        id: e.id.clone(),
        name: e.name.clone(),
        status: e.status.as_i64() as i32,
        selection: Some(pb::RunSelection {
            run_ids: sel.run_ids.clone(),
            workflow_name: sel.workflow_name.clone().unwrap_or_default(),
            status: sel.status.map_or(0, |s| s.as_i64() as i32),
            created_after: timestamp(sel.created_after),
            created_before: timestamp(sel.created_before),
            forked_from: sel.forked_from.clone().unwrap_or_default(),
            limit: sel.limit as i32,
        }),
        change: Some(pb::ExperimentChange {
            workflow: change.workflow.clone().unwrap_or_default(),
            files: change.files.clone().into_iter().collect(),
            from_node: change.from.clone().unwrap_or_default(),
            swaps: change
                .swaps
                .iter()
                .map(|s| pb::AgentSwap {
                    node_id: s.node_id.clone(),
                    agent: s.agent.clone(),
                })
                .collect(),
            overrides: change
                .overrides
                .iter()
                .map(|o| pb::OutputOverride {
                    selector: o.selector.clone(),
                    output: o.output.clone(),
                    value: o.value.clone(),
                    source: o.source.clone(),
                })
                .collect(),
            variables: change.variables.clone().into_iter().collect(),
            allow_drift: change.allow_drift,
        }),
        concurrency: e.spec.concurrency as i32,
        score_node: e.spec.score_node.clone().unwrap_or_default(),
        create_time: timestamp(Some(e.created_at)),
        finish_time: timestamp(e.finished_at),
        progress: Some(pb::ExperimentProgress {
            total: e.items.len() as i32,
            pending: count(ItemStatus::Pending),
            running: count(ItemStatus::Running),
            completed: count(ItemStatus::Completed),
            failed: count(ItemStatus::Failed),
            cancelled: count(ItemStatus::Cancelled),
            skipped: count(ItemStatus::Skipped),
        }),
        items: e
            .items
            .iter()
            .map(|i| pb::ExperimentItem {
                source_run_id: i.source_run_id.clone(),
                replay_run_id: i.replay_run_id.clone().unwrap_or_default(),
                status: i.status.as_i64() as i32,
                reason: i.reason.clone().unwrap_or_default(),
            })
            .collect(),
    }
}

pub fn comparison(c: &Comparison) -> pb::ExperimentComparison {
    let t = &c.totals;
    pb::ExperimentComparison {
        nodes: c
            .nodes
            .iter()
            .map(|n| pb::NodeAggregate {
                node_id: n.node_id.clone(),
                changed: n.changed,
                unchanged: n.unchanged,
                failed: n.failed,
                newly_failed: n.newly_failed,
                newly_succeeded: n.newly_succeeded,
                reused: n.reused,
            })
            .collect(),
        pairs: c
            .pairs
            .iter()
            .map(|p| pb::PairComparison {
                source_run_id: p.source_run_id.clone(),
                replay_run_id: p.replay_run_id.clone(),
                status_before: p.status_before.as_i64() as i32,
                status_after: p.status_after.as_i64() as i32,
                nodes_changed: p.nodes_changed,
                first_divergence: p.first_divergence.clone().unwrap_or_default(),
                score_before: p.score_before,
                score_after: p.score_after,
                changed_nodes: p.changed_nodes.clone(),
                failed_nodes: p.failed_nodes.clone(),
                reused_nodes: p.reused_nodes.clone(),
            })
            .collect(),
        totals: Some(pb::ExperimentTotals {
            tokens_before: t.tokens_before,
            tokens_after: t.tokens_after,
            cost_usd_before: t.cost_before,
            cost_usd_after: t.cost_after,
            latency_ms_before: t.latency_ms_before,
            latency_ms_after: t.latency_ms_after,
            reused_nodes: t.reused_nodes,
            tokens_saved: t.tokens_saved,
            cost_usd_saved: t.cost_saved,
            latency_ms_saved: t.latency_ms_saved,
        }),
        score: c.score.as_ref().map(|s| pb::ScoreSummary {
            node_id: s.node_id.clone(),
            pairs: s.pairs,
            mean_before: s.mean_before,
            mean_after: s.mean_after,
            delta: s.delta,
        }),
    }
}
