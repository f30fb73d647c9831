//! Reading runs back: runs with live counts, their workflow snapshots,
//! node executions (reused ones resolved through the replay chain),
//! artifacts and lineage.

use super::agents::OutputRef;
use super::workflow::Workflow;
use super::{Engine, EngineInner, WorkflowSource, select_step};
use crate::error::{EngineError, EngineResult};
use crate::model::*;
use crate::store::{RunFilter, RunRef};
use std::collections::HashMap;
use std::sync::Arc;

/// How much of each node record a read needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NodeDetail {
    Full,
    /// Identity, status, outputs and error only: what planning a replay
    /// needs. What the node was given, its timing, usage and attempts
    /// are empty.
    State,
}

impl Engine {
    /// A run with live counts.
    pub async fn get_run(&self, run_ref: &str) -> EngineResult<Run> {
        let mut run = self.0.store.find_run(RunRef(run_ref)).await?;
        self.refresh_counts(&mut run).await?;
        Ok(run)
    }

    async fn refresh_counts(&self, run: &mut Run) -> EngineResult<()> {
        if run.status.is_finished() {
            return Ok(());
        }
        let records = self.0.store.node_counts(run.pk).await?;
        run.counts = NodeCounts::of_records(run.counts.total, records);
        Ok(())
    }

    pub async fn list_runs(
        &self,
        filter: &RunFilter,
        limit: i64,
        past_pk: Option<i64>,
    ) -> EngineResult<Vec<Run>> {
        let mut runs = self.0.store.list_runs(filter, limit, past_pk).await?;
        for run in &mut runs {
            self.refresh_counts(run).await?;
        }
        Ok(runs)
    }

    pub async fn workflow_content(&self, run: &Run) -> EngineResult<String> {
        String::from_utf8(self.0.store.content(&run.workflow_sha256).await?)
            .map_err(|_| EngineError::Internal("workflow snapshot is not UTF-8".into()))
    }

    /// The run's workflow snapshot, parsed (once, while it is in use).
    pub async fn run_workflow(&self, run: &Run) -> EngineResult<Arc<Workflow>> {
        let key = super::parsed::key_of(run);
        if let Some(workflow) = self.0.parsed.get(&key) {
            return Ok(workflow);
        }
        let text = self.workflow_content(run).await?;
        let src = WorkflowSource {
            text: &text,
            files: &run.files,
            variables: &run.variables,
        };
        let workflow = self.validate(&src, true).await?.workflow.ok_or_else(|| {
            EngineError::Internal(format!(
                "stored workflow of run '{}' no longer parses",
                run.id
            ))
        })?;
        let workflow = Arc::new(workflow);
        self.0.parsed.insert(key, workflow.clone());
        Ok(workflow)
    }

    /// Node executions of a run in topological order. Nodes a replay
    /// reused have no row of their own: they are resolved through the
    /// `forked_from` chain to the run that produced them and reported as
    /// REUSED with that run's artifacts.
    pub async fn nodes_of_run(&self, run: &Run) -> EngineResult<Vec<NodeExecution>> {
        let workflow = self.run_workflow(run).await?;
        self.nodes_with_workflow(run, &workflow, NodeDetail::Full)
            .await
    }

    /// `nodes_of_run` for a caller that has parsed the run's workflow.
    pub(crate) async fn nodes_with_workflow(
        &self,
        run: &Run,
        workflow: &Workflow,
        detail: NodeDetail,
    ) -> EngineResult<Vec<NodeExecution>> {
        let read = |pk| async move {
            match detail {
                NodeDetail::Full => self.0.store.nodes_of_run(pk).await,
                NodeDetail::State => self.0.store.node_states_of_run(pk).await,
            }
        };
        let mut by_id: HashMap<String, NodeExecution> = read(run.pk)
            .await?
            .into_iter()
            .map(|n| (n.node_id.clone(), n))
            .collect();
        let mut source = run.replay.as_ref().map(|r| r.forked_from.clone());
        while let Some(source_id) = source.take() {
            if workflow.nodes.iter().all(|n| by_id.contains_key(&n.id)) {
                break;
            }
            let source_run = self.0.store.find_run(RunRef(&source_id)).await?;
            for rec in read(source_run.pk).await? {
                if by_id.contains_key(&rec.node_id) || !rec.status.has_outputs() {
                    continue;
                }
                let reused = NodeExecution {
                    run_id: run.id.clone(),
                    status: NodeStatus::Reused,
                    reused_from_run: Some(source_run.id.clone()),
                    reused_from_node_execution: Some(rec.id.clone()),
                    latency_ms: Some(0),
                    usage: Usage::default(),
                    started_at: None,
                    finished_at: None,
                    pk: 0,
                    ..rec
                };
                by_id.insert(reused.node_id.clone(), reused);
            }
            source = source_run.replay.map(|r| r.forked_from);
        }
        let mut nodes = Vec::with_capacity(workflow.nodes.len());
        for (pos, node) in workflow.nodes.iter().enumerate() {
            if let Some(mut n) = by_id.remove(&node.id) {
                n.position = pos as i32;
                n.depends_on = node.depends_on.clone();
                nodes.push(n);
            }
        }
        Ok(nodes)
    }

    /// One node execution, by node id or node-execution id (unique prefix).
    pub async fn node_execution(&self, run_ref: &str, step: &str) -> EngineResult<NodeExecution> {
        let run = self.get_run(run_ref).await?;
        let nodes = self.nodes_of_run(&run).await?;
        select_step(&nodes, step).cloned()
    }

    /// Artifact metadata and content.
    pub async fn artifact(&self, id: &str) -> EngineResult<(Artifact, Vec<u8>)> {
        let artifact = self.0.store.artifact(id).await?;
        let content = self.0.store.content(&artifact.sha256).await?;
        Ok((artifact, content))
    }

    /// Artifacts of a run by id, including those a replay reused from
    /// earlier runs (they keep their own id, run and origin).
    pub async fn artifacts_of_run(
        &self,
        run_ref: &str,
        after: Option<&str>,
        limit: i64,
    ) -> EngineResult<Vec<Artifact>> {
        let run = self.0.store.find_run(RunRef(run_ref)).await?;
        if run.replay.is_none() {
            return self.0.store.artifacts_of_run(run.pk, after, limit).await;
        }
        let ids: Vec<String> = self
            .nodes_of_run(&run)
            .await?
            .into_iter()
            .flat_map(|n| n.output_artifacts)
            .collect();
        let mut all = self.0.store.artifacts_by_ids(&ids).await?;
        all.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(all
            .into_iter()
            .filter(|a| after.is_none_or(|after| a.id.as_str() > after))
            .take(limit.max(0) as usize)
            .collect())
    }

    /// The artifact and its ancestors, breadth first, with their depth.
    pub async fn lineage(&self, id: &str, max_depth: i32) -> EngineResult<Vec<(Artifact, i32)>> {
        let root = self.0.store.artifact(id).await?;
        let mut seen = std::collections::HashSet::from([root.id.clone()]);
        let mut out = vec![(root.clone(), 0)];
        let mut frontier = vec![root];
        let mut depth = 0;
        while !frontier.is_empty() && (max_depth <= 0 || depth < max_depth) {
            depth += 1;
            let parents: Vec<String> = frontier
                .iter()
                .flat_map(|a| a.derived_from.iter().cloned())
                .filter(|p| seen.insert(p.clone()))
                .collect();
            frontier = self.0.store.artifacts_by_ids(&parents).await?;
            out.extend(frontier.iter().cloned().map(|a| (a, depth)));
        }
        Ok(out)
    }
}

impl EngineInner {
    pub(super) async fn load_outputs(
        &self,
        artifact_ids: &[String],
    ) -> EngineResult<Vec<OutputRef>> {
        let mut out = Vec::with_capacity(artifact_ids.len());
        for a in self.store.artifacts_by_ids(artifact_ids).await? {
            let content =
                String::from_utf8_lossy(&self.store.content(&a.sha256).await?).into_owned();
            out.push(OutputRef {
                artifact_id: a.id,
                name: a.name,
                media_type: a.media_type,
                content: Arc::from(content),
            });
        }
        // Keep the order the node declared its outputs in.
        out.sort_by_key(|o| artifact_ids.iter().position(|id| id == &o.artifact_id));
        Ok(out)
    }
}
