//! Reading what a run recorded.

use retake::v1 as pb;

/// The node `id` of a run; panics if there is none.
pub fn node<'a>(nodes: &'a [pb::NodeExecution], id: &str) -> &'a pb::NodeExecution {
    nodes
        .iter()
        .find(|n| n.node_id == id)
        .unwrap_or_else(|| panic!("no node {id}"))
}

pub fn status(n: &pb::NodeExecution) -> pb::NodeStatus {
    pb::NodeStatus::try_from(n.status).unwrap()
}

pub fn run_status(r: &pb::Run) -> pb::RunStatus {
    pb::RunStatus::try_from(r.status).unwrap()
}

/// A timestamp in microseconds since the epoch.
pub fn micros(t: &Option<prost_types::Timestamp>) -> i64 {
    let t = t.as_ref().expect("timestamp");
    t.seconds * 1_000_000 + i64::from(t.nanos) / 1000
}

/// The streamed text of node `node_id`, piece by piece.
pub fn deltas(events: &[pb::Event], node_id: &str) -> Vec<String> {
    events
        .iter()
        .filter(|e| e.kind == pb::EventKind::NodeOutputDelta as i32 && e.node_id == node_id)
        .map(|e| e.delta.clone())
        .collect()
}

/// The kinds of `events` for node `node`, in order.
pub fn node_kinds(events: &[pb::Event], node: &str) -> Vec<pb::EventKind> {
    events
        .iter()
        .filter(|e| e.node_id == node)
        .map(|e| e.kind())
        .collect()
}
