//! What one step of the executor writes, committed atomically.

use crate::model::*;
use std::sync::Arc;

/// Everything one step of the executor writes, committed atomically.
#[derive(Default)]
pub struct WriteBatch {
    pub contents: Vec<(String, Arc<[u8]>)>,
    pub artifacts: Vec<(i64, Option<i64>, Artifact)>,
    pub nodes: Vec<NodeExecution>,
    pub run: Option<Run>,
    pub events: Vec<(i64, Event)>,
    /// Experiments written whole but for their items (inserted or
    /// updated by id).
    pub experiments: Vec<Experiment>,
    /// Experiment items, inserted or updated by experiment and position.
    pub experiment_items: Vec<ExperimentItem>,
}

impl WriteBatch {
    /// Appends `other`; a node row written twice keeps its latest state.
    pub fn merge(&mut self, other: WriteBatch) {
        self.contents.extend(other.contents);
        self.artifacts.extend(other.artifacts);
        for node in other.nodes {
            match self.nodes.iter_mut().find(|n| n.pk == node.pk) {
                Some(slot) => *slot = node,
                None => self.nodes.push(node),
            }
        }
        if other.run.is_some() {
            self.run = other.run;
        }
        self.events.extend(other.events);
        self.experiments.extend(other.experiments);
        self.experiment_items.extend(other.experiment_items);
    }

    /// Records one output of node execution `rec`: its content (stored once
    /// per sha256) and a new artifact. Returns the artifact id.
    #[allow(clippy::too_many_arguments)]
    pub fn add_output(
        &mut self,
        run_pk: i64,
        rec: &NodeExecution,
        name: &str,
        content: &str,
        media_type: &str,
        origin: ArtifactOrigin,
        derived_from: Vec<String>,
        now: Micros,
    ) -> String {
        let bytes: Arc<[u8]> = Arc::from(content.as_bytes());
        let sha = sha256_hex(&bytes);
        let artifact = Artifact {
            id: new_id("art"),
            run_id: rec.run_id.clone(),
            node_id: rec.node_id.clone(),
            node_execution_id: Some(rec.id.clone()),
            name: name.to_string(),
            media_type: media_type.to_string(),
            size: bytes.len() as i64,
            sha256: sha.clone(),
            origin,
            derived_from,
            created_at: now,
        };
        let id = artifact.id.clone();
        self.contents.push((sha, bytes));
        self.artifacts.push((run_pk, Some(rec.pk), artifact));
        id
    }

    /// About how many bytes the batch holds: its contents and the text of
    /// its rows, plus a fixed cost per row. What bounds a run's queue of
    /// writes not yet durable.
    pub fn approx_size(&self) -> usize {
        const ROW: usize = 128;
        let strings = |v: &[String]| v.iter().map(|s| s.len() + 8).sum::<usize>();
        let opt = |s: &Option<String>| s.as_ref().map_or(0, String::len);
        let contents: usize = self
            .contents
            .iter()
            .map(|(sha, d)| ROW + sha.len() + d.len())
            .sum();
        let artifacts: usize = self
            .artifacts
            .iter()
            .map(|(_, _, a)| {
                ROW + a.id.len() + a.name.len() + a.media_type.len() + strings(&a.derived_from)
            })
            .sum();
        let nodes: usize = self
            .nodes
            .iter()
            .map(|n| {
                ROW + n.config_json.len()
                    + opt(&n.prompt)
                    + opt(&n.inputs_json)
                    + opt(&n.error)
                    + strings(&n.input_artifacts)
                    + strings(&n.output_artifacts)
                    + strings(&n.blocked_by)
                    + n.attempts
                        .iter()
                        .map(|a| ROW + opt(&a.error))
                        .sum::<usize>()
            })
            .sum();
        let run = self.run.as_ref().map_or(0, |r| {
            ROW + r.failure.as_ref().map_or(0, |f| f.message.len())
        });
        let events: usize = self
            .events
            .iter()
            .map(|(_, e)| {
                ROW + e.detail.message.len()
                    + e.detail.delta.len()
                    + strings(&e.detail.artifact_ids)
            })
            .sum();
        contents + artifacts + nodes + run + events
    }

    pub fn is_empty(&self) -> bool {
        self.contents.is_empty()
            && self.artifacts.is_empty()
            && self.nodes.is_empty()
            && self.run.is_none()
            && self.events.is_empty()
            && self.experiments.is_empty()
            && self.experiment_items.is_empty()
    }
}

/// The key of a content: its sha256, in lower-case hex.
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}
