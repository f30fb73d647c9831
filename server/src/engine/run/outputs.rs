//! Outputs of finished nodes, kept in memory while a node downstream still
//! needs them, and read back from the store after a restart or for nodes a
//! replay reused.

use super::super::EngineInner;
use super::super::agents::OutputRef;
use super::super::workflow::Workflow;
use super::prepare::Upstream;
use crate::error::EngineResult;
use crate::model::NodeExecution;
use std::sync::Arc;

pub struct Outputs {
    cached: Vec<Option<Arc<Vec<OutputRef>>>>,
    /// Per node: the nodes it depends on or references.
    producers: Vec<Vec<usize>>,
    /// Per node: consumers that have not been prepared or skipped yet.
    consumers_left: Vec<usize>,
    released: Vec<bool>,
}

impl Outputs {
    pub fn new(workflow: &Workflow) -> Self {
        let n = workflow.nodes.len();
        let mut producers = Vec::with_capacity(n);
        let mut consumers_left = vec![0; n];
        for node in &workflow.nodes {
            let ids = node.depends_on.iter().chain(
                node.referenced_nodes
                    .iter()
                    .filter(|r| !node.depends_on.contains(r)),
            );
            let positions: Vec<usize> = ids
                .filter_map(|id| workflow.index.get(id.as_str()).copied())
                .collect();
            for &p in &positions {
                consumers_left[p] += 1;
            }
            producers.push(positions);
        }
        Self {
            cached: vec![None; n],
            producers,
            consumers_left,
            released: vec![false; n],
        }
    }

    /// Keeps a node's outputs for the consumers still to come.
    pub fn keep(&mut self, pos: usize, outputs: Vec<OutputRef>) {
        if self.consumers_left[pos] > 0 {
            self.cached[pos] = Some(Arc::new(outputs));
        }
    }

    /// The outputs node `pos` uses, from memory or from the store.
    pub async fn upstream(
        &mut self,
        pos: usize,
        nodes: &[NodeExecution],
        engine: &EngineInner,
    ) -> EngineResult<Upstream> {
        let mut out = Vec::with_capacity(self.producers[pos].len());
        for i in 0..self.producers[pos].len() {
            let p = self.producers[pos][i];
            let rec = &nodes[p];
            if !rec.status.has_outputs() {
                out.push((rec.node_id.clone(), Arc::new(Vec::new())));
                continue;
            }
            let outputs = match &self.cached[p] {
                Some(o) => o.clone(),
                None => {
                    let loaded = Arc::new(engine.load_outputs(&rec.output_artifacts).await?);
                    self.cached[p] = Some(loaded.clone());
                    loaded
                }
            };
            out.push((rec.node_id.clone(), outputs));
        }
        Ok(out)
    }

    /// Node `pos` needs its producers no more: outputs nobody else still
    /// needs are dropped.
    pub fn release(&mut self, pos: usize) {
        if std::mem::replace(&mut self.released[pos], true) {
            return;
        }
        for i in 0..self.producers[pos].len() {
            let p = self.producers[pos][i];
            self.consumers_left[p] = self.consumers_left[p].saturating_sub(1);
            if self.consumers_left[p] == 0 {
                self.cached[p] = None;
            }
        }
    }
}
