//! Starting a replay (rules in docs/replay.md): load the source run and the workflow to
//! replay, plan with `replay::plan_replay`, record the new run with its
//! overrides and reused nodes, and hand it to the executor.

use super::plan::{self as replay, ReplayChanges};
use crate::engine::reads::NodeDetail;
use crate::engine::run::RunStart;
use crate::engine::run::journal::{Journal, RunChange};
use crate::engine::{Engine, WorkflowSource, agents, new_node_execution, new_run, redact_snapshot};
use crate::error::{EngineError, EngineResult, Reason};
use crate::model::*;
use crate::store::{NewRun, RequestKey, RunRef, WriteBatch};
use std::collections::{BTreeMap, BTreeSet};

/// A replay as a client asks for it.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct ReplayRequest {
    pub run: String,
    /// Workflow to replay; None replays the source run's snapshot.
    pub workflow: Option<String>,
    pub files: BTreeMap<String, String>,
    pub from: Option<String>,
    pub swaps: Vec<AgentSwap>,
    pub overrides: Vec<OutputOverride>,
    pub variables: BTreeMap<String, String>,
    pub allow_drift: bool,
    /// The experiment item this replay is for: its link to the replay is
    /// stored with the replay, in one transaction.
    #[serde(skip)]
    pub item: Option<ExperimentItem>,
    /// The request's own id: a retry finds the replay the first stored.
    #[serde(skip)]
    pub request: Option<RequestKey>,
}

/// An override value is JSON when it looks like a JSON document, so that
/// `${node.output}` embeds it as such; anything else is text.
fn override_media_type(value: &str) -> &'static str {
    let t = value.trim_start();
    if (t.starts_with('{') || t.starts_with('['))
        && serde_json::from_str::<serde_json::Value>(value).is_ok()
    {
        agents::JSON
    } else {
        agents::TEXT
    }
}

impl Engine {
    /// Plans and starts a replay; returns at once. A retry of a request
    /// naming itself returns the replay the first call stored.
    pub async fn replay_run(&self, req: ReplayRequest) -> EngineResult<Run> {
        let key = req.request.clone();
        self.once(key.as_ref(), self.start_replay(req)).await
    }

    async fn start_replay(&self, req: ReplayRequest) -> EngineResult<Run> {
        let request = req.request.clone();
        let source = self.store().find_run(RunRef(&req.run)).await?;
        if !source.status.is_finished() {
            return Err(EngineError::failed_precondition(format!(
                "Run '{}' is {}; only a finished run (completed, failed or cancelled) can be replayed",
                source.id, source.status
            ))
            .reason(Reason::RunNotFinished)
            .meta("runId", &source.id)
            .precondition(
                "RUN_STATUS",
                source.id.clone(),
                format!("the run is {}; it must be completed, failed or cancelled", source.status),
            ));
        }
        let source_wf = self.run_workflow(&source).await?;
        // Replaying the source's own snapshot replays it as it ran: with
        // the agents its replay swapped in. A new workflow file is the
        // truth about agents.
        let same_snapshot =
            req.workflow.as_deref().is_none_or(|w| w.trim().is_empty()) && req.files.is_empty();
        let (text, files, inherited_agents) = match req.workflow.filter(|w| !w.trim().is_empty()) {
            Some(text) => (text, req.files, BTreeMap::new()),
            None => (
                self.workflow_content(&source).await?,
                if req.files.is_empty() {
                    source.files.clone()
                } else {
                    req.files
                },
                source
                    .replay
                    .iter()
                    .flat_map(|r| r.swaps.iter().map(|s| (s.node_id.clone(), s.agent.clone())))
                    .collect(),
            ),
        };
        let mut variables = source.variables.clone();
        let mut changed_variables = BTreeSet::new();
        for (k, v) in req.variables {
            if source.variables.get(&k) != Some(&v) {
                changed_variables.insert(k.clone());
            }
            variables.insert(k, v);
        }
        let src = WorkflowSource {
            text: &text,
            files: &files,
            variables: &variables,
        };
        // The source's own snapshot was validated when it ran; with only
        // variables added or changed it parses the same, so parse it once.
        let workflow = if same_snapshot {
            source_wf.clone()
        } else {
            self.load_valid(&src).await?
        };
        let text = redact_snapshot(&text, &workflow);
        let permit = self.admit_or_leave()?;

        // The plan needs the source nodes' states and outputs, not what
        // they were given: inputs can be large, and there may be
        // thousands of nodes.
        let source_nodes = self
            .nodes_with_workflow(&source, &source_wf, NodeDetail::State)
            .await?;
        let changes = ReplayChanges {
            from: req.from,
            swaps: req.swaps,
            overrides: req.overrides,
            changed_variables: changed_variables.clone(),
            allow_drift: req.allow_drift,
            inherited_agents: inherited_agents.clone(),
        };
        let plan = replay::plan_replay(&source.id, &source_wf, &source_nodes, &workflow, &changes)?;
        if !plan.drifted.is_empty() {
            tracing::info!(source = %source.id, drifted = ?plan.drifted, "replaying with allowed drift");
        }

        let stored = WorkflowSource {
            text: &text,
            files: &files,
            variables: &variables,
        };
        let replay_info = Some(ReplayInfo {
            forked_from: source.id.clone(),
            forked_at_step: plan.forked_at_step.clone(),
            roots: plan.roots.clone(),
            swaps: {
                let mut swaps = plan.swaps.clone();
                for (node_id, agent) in &inherited_agents {
                    if !swaps.iter().any(|s| &s.node_id == node_id)
                        && workflow.node(node_id).is_some()
                    {
                        swaps.push(AgentSwap {
                            node_id: node_id.clone(),
                            agent: agent.clone(),
                        });
                    }
                }
                swaps
            },
            overrides: plan.overrides.clone(),
            changed_variables: changed_variables.into_iter().collect(),
            allow_drift: req.allow_drift,
            replay_set: plan
                .replay_set
                .iter()
                .map(|&p| workflow.nodes[p].id.clone())
                .collect(),
        });
        let mut run = new_run(&workflow, &stored, replay_info);
        // Overrides and carried skips are decided as the run is created,
        // before it starts: they get no start time, and end no earlier
        // than the run's creation.
        let now = run.created_at;

        // Rows only for what this run does itself: replayed and overridden
        // nodes. Reused nodes are resolved from the source when read.
        let mut rows: Vec<NodeExecution> = Vec::new();
        let mut row_pos: Vec<usize> = Vec::new();
        for (pos, node) in workflow.nodes.iter().enumerate() {
            if plan.replay_set.contains(&pos)
                || plan.overridden.contains_key(&pos)
                || plan.carried_skips.contains_key(&pos)
            {
                rows.push(new_node_execution(&run.id, pos, node, &plan.agents[pos]));
                row_pos.push(pos);
            }
        }
        let mut nodes: Vec<Option<NodeExecution>> = vec![None; workflow.nodes.len()];
        for (rec, &pos) in rows.iter().zip(&row_pos) {
            nodes[pos] = Some(rec.clone());
        }
        for (&pos, &i) in &plan.reused {
            let rec = &source_nodes[i];
            nodes[pos] = Some(NodeExecution {
                run_id: run.id.clone(),
                position: pos as i32,
                status: NodeStatus::Reused,
                reused_from_run: Some(
                    rec.reused_from_run
                        .clone()
                        .unwrap_or_else(|| source.id.clone()),
                ),
                reused_from_node_execution: Some(
                    rec.reused_from_node_execution
                        .clone()
                        .unwrap_or_else(|| rec.id.clone()),
                ),
                pk: 0,
                ..rec.clone()
            });
        }

        let mut batch = WriteBatch::default();
        for (&pos, &i) in &plan.carried_skips {
            let rec = nodes[pos].as_mut().expect("carried skips have rows");
            rec.status = NodeStatus::Skipped;
            rec.error = source_nodes[i].error.clone();
            rec.finished_at = Some(now);
            batch.nodes.push(rec.clone());
        }

        // Overridden outputs become artifacts of this run; outputs not
        // overridden keep the source run's artifacts.
        for (&pos, values) in &plan.overridden {
            let node = &workflow.nodes[pos];
            let rec = nodes[pos].as_mut().expect("overridden nodes have rows");
            let source_rec = source_nodes.iter().find(|n| n.node_id == node.id);
            let source_arts = match source_rec {
                Some(s) => self.store().artifacts_by_ids(&s.output_artifacts).await?,
                None => Vec::new(),
            };
            let mut outputs = Vec::new();
            for name in &node.outputs {
                match values.get(name) {
                    Some(value) => {
                        let media_type = override_media_type(value);
                        outputs.push(batch.add_output(
                            run.pk,
                            rec,
                            name,
                            value,
                            media_type,
                            ArtifactOrigin::Override,
                            Vec::new(),
                            now,
                        ));
                    }
                    None => {
                        if let Some(a) = source_arts.iter().find(|a| &a.name == name) {
                            outputs.push(a.id.clone());
                        }
                    }
                }
            }
            // Nothing ran: no config, no start, no attempt. "override" in
            // place of a model marks the record; the values and where they
            // came from are in the run's ReplayInfo.overrides.
            rec.status = NodeStatus::Completed;
            rec.output_artifacts = outputs;
            rec.config_json = String::new();
            rec.started_at = None;
            rec.finished_at = Some(now);
            rec.latency_ms = Some(0);
            rec.model = Some("override".into());
            batch.nodes.push(rec.clone());
        }
        // The run starts as it is created, and announces what it decided
        // before starting: reused nodes and overridden outputs.
        let mut journal = Journal::new(&run, 0);
        journal.record_run(&mut run, RunChange::Started);
        journal.record_decided(nodes.iter().flatten());
        let last_seq = journal.last_seq();
        batch.merge(journal.take());
        if let Some(item) = req.item {
            batch.experiment_items.push(ExperimentItem {
                replay_run_id: Some(run.id.clone()),
                status: ItemStatus::Running,
                reason: None,
                ..item
            });
        }
        // The run, its rows, what is already decided of them and its first
        // events land in one transaction: recovery never sees an
        // overridden node still pending.
        let new = NewRun {
            run,
            workflow: text,
            nodes: rows,
            then: batch,
            claimed: permit.is_some(),
            request,
        };
        self.launch(new, move |stored| {
            for (rec, pos) in stored.nodes.iter().zip(row_pos) {
                if let Some(n) = nodes[pos].as_mut() {
                    n.pk = rec.pk;
                }
            }
            RunStart {
                run: stored.run,
                workflow,
                nodes: nodes
                    .into_iter()
                    .map(|n| n.expect("every node is planned"))
                    .collect(),
                agents: plan.agents,
                last_seq,
                permit,
            }
        })
        .await
    }
}
