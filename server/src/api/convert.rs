//! Translation between the engine's types and retake.v1 messages.

use crate::engine::WorkflowSource;
use crate::model::{self as m, Micros};
use retake::v1 as pb;
use std::collections::{BTreeMap, HashMap};

pub fn timestamp(t: Option<Micros>) -> Option<prost_types::Timestamp> {
    t.map(|us| prost_types::Timestamp {
        seconds: us.div_euclid(1_000_000),
        nanos: (us.rem_euclid(1_000_000) * 1000) as i32,
    })
}

pub fn usage(u: &m::Usage) -> pb::Usage {
    pb::Usage {
        input_tokens: u.input_tokens,
        output_tokens: u.output_tokens,
        cost_usd: u.cost_usd,
    }
}

pub fn counts(c: &m::NodeCounts) -> pb::NodeCounts {
    pb::NodeCounts {
        total: c.total,
        completed: c.completed,
        failed: c.failed,
        skipped: c.skipped,
        reused: c.reused,
        running: c.running,
        waiting: c.waiting,
        pending: c.pending,
        queued: c.queued,
        cancelled: c.cancelled,
    }
}

pub fn swap(s: &m::AgentSwap) -> pb::AgentSwap {
    pb::AgentSwap {
        node_id: s.node_id.clone(),
        agent: s.agent.clone(),
    }
}

pub fn override_(o: &m::OutputOverride) -> pb::OutputOverride {
    pb::OutputOverride {
        selector: o.selector.clone(),
        output: o.output.clone(),
        value: o.value.clone(),
        source: o.source.clone(),
    }
}

/// Longest variable or override value a run summary carries whole.
const SUMMARY_VALUE_BYTES: usize = 1024;

/// A run as lists carry it: long variable and override values are cut, so
/// a page of runs stays small whatever the runs hold. GetRun has them whole.
pub fn run_summary(r: &m::Run) -> pb::Run {
    let mut out = run(r);
    for value in out.variables.values_mut() {
        clip_value(value);
    }
    for o in out.replay.iter_mut().flat_map(|x| x.overrides.iter_mut()) {
        clip_value(&mut o.value);
    }
    out
}

fn clip_value(value: &mut String) {
    if value.len() > SUMMARY_VALUE_BYTES {
        *value = format!(
            "{}… [{} bytes; GetRun returns it whole]",
            head(value, SUMMARY_VALUE_BYTES),
            value.len()
        );
    }
}

/// The longest start of `text` within `max` bytes that ends on a
/// character boundary.
pub fn head(text: &str, max: usize) -> &str {
    &text[..text.floor_char_boundary(max)]
}

/// A workflow as a request sends it, its prompt files and variables held
/// in the maps the engine reads.
#[derive(serde::Serialize)]
pub struct SentWorkflow {
    text: String,
    files: BTreeMap<String, String>,
    variables: BTreeMap<String, String>,
}

impl SentWorkflow {
    pub fn new(
        text: String,
        files: HashMap<String, String>,
        variables: HashMap<String, String>,
    ) -> Self {
        Self {
            text,
            files: files.into_iter().collect(),
            variables: variables.into_iter().collect(),
        }
    }

    pub fn source(&self) -> WorkflowSource<'_> {
        WorkflowSource {
            text: &self.text,
            files: &self.files,
            variables: &self.variables,
        }
    }
}

pub fn run(r: &m::Run) -> pb::Run {
    pb::Run {
        id: r.id.clone(),
        workflow_name: r.workflow_name.clone(),
        workflow_sha256: r.workflow_sha256.clone(),
        status: r.status.as_i64() as i32,
        variables: r.variables.clone().into_iter().collect(),
        create_time: timestamp(Some(r.created_at)),
        start_time: timestamp(r.started_at),
        finish_time: timestamp(r.finished_at),
        counts: Some(counts(&r.counts)),
        usage: Some(usage(&r.usage)),
        failure: r.failure.as_ref().map(|f| pb::RunFailure {
            node_id: f.node_id.clone(),
            message: f.message.clone(),
            origin: f.origin.as_i64() as i32,
        }),
        replay: r.replay.as_ref().map(|x| pb::ReplayInfo {
            forked_from: x.forked_from.clone(),
            forked_at_step: x.forked_at_step.clone(),
            roots: x.roots.clone(),
            swaps: x.swaps.iter().map(swap).collect(),
            overrides: x.overrides.iter().map(override_).collect(),
            changed_variables: x.changed_variables.clone(),
            allow_drift: x.allow_drift,
            replay_set: x.replay_set.clone(),
        }),
        workflow_content: String::new(),
        workflow_description: r.workflow_description.clone(),
    }
}

pub fn node(n: &m::NodeExecution) -> pb::NodeExecution {
    pb::NodeExecution {
        id: n.id.clone(),
        run_id: n.run_id.clone(),
        node_id: n.node_id.clone(),
        status: n.status.as_i64() as i32,
        agent: n.agent.clone(),
        config_json: n.config_json.clone(),
        config: json_struct(&n.config_json),
        prompt: n.prompt.clone().unwrap_or_default(),
        model: n.model.clone().unwrap_or_default(),
        input_artifact_ids: n.input_artifacts.clone(),
        output_artifact_ids: n.output_artifacts.clone(),
        error: n.error.clone().unwrap_or_default(),
        error_origin: n
            .error_origin
            .map(|o| o.as_i64() as i32)
            .unwrap_or_default(),
        start_time: timestamp(n.started_at),
        finish_time: timestamp(n.finished_at),
        latency_ms: n.latency_ms.unwrap_or_default(),
        latency: n.latency_ms.map(duration),
        usage: Some(usage(&n.usage)),
        attempt_count: n.attempt_count,
        attempts: n
            .attempts
            .iter()
            .map(|a| pb::Attempt {
                number: a.number,
                start_time: timestamp(Some(a.started_at)),
                finish_time: timestamp(a.finished_at),
                error: a.error.clone().unwrap_or_default(),
                error_origin: a
                    .error_origin
                    .map(|o| o.as_i64() as i32)
                    .unwrap_or_default(),
                worker: a.worker.clone().unwrap_or_default(),
            })
            .collect(),
        reused_from_run_id: n.reused_from_run.clone().unwrap_or_default(),
        blocked_by: n.blocked_by.clone(),
        depends_on: n.depends_on.clone(),
        position: n.position,
        inputs_json: n.inputs_json.clone().unwrap_or_default(),
        inputs: n.inputs_json.as_deref().and_then(json_struct),
        reused_from_node_execution_id: n.reused_from_node_execution.clone().unwrap_or_default(),
    }
}

pub fn artifact(a: &m::Artifact) -> pb::Artifact {
    pb::Artifact {
        id: a.id.clone(),
        run_id: a.run_id.clone(),
        node_id: a.node_id.clone(),
        node_execution_id: a.node_execution_id.clone().unwrap_or_default(),
        name: a.name.clone(),
        media_type: a.media_type.clone(),
        size_bytes: a.size,
        sha256: a.sha256.clone(),
        origin: a.origin.as_i64() as i32,
        derived_from: a.derived_from.clone(),
        create_time: timestamp(Some(a.created_at)),
    }
}

pub fn event(e: &m::Event) -> pb::Event {
    let d = &e.detail;
    pb::Event {
        run_id: e.run_id.clone(),
        sequence: e.sequence,
        kind: e.kind.as_i64() as i32,
        time: timestamp(Some(e.time)),
        node_id: e.node_id.clone().unwrap_or_default(),
        run_status: d.run_status.map(|s| s.as_i64() as i32).unwrap_or_default(),
        node_status: d
            .node_status
            .or((e.kind == m::EventKind::NodeReused).then_some(m::NodeStatus::Reused))
            .map(|s| s.as_i64() as i32)
            .unwrap_or_default(),
        attempt: d.attempt,
        message: d.message.clone(),
        delta: d.delta.clone(),
        artifact_ids: d.artifact_ids.clone(),
        node_ids: d.node_ids.clone(),
        latency_ms: d.latency_ms.unwrap_or_default(),
        latency: d.latency_ms.map(duration),
        worker: d.worker.clone(),
        progress: d.progress,
    }
}

/// A proto enum value from a request, with a clear error when unknown.
pub fn run_status_filter(value: i32) -> Result<Option<m::RunStatus>, crate::error::EngineError> {
    if value == 0 {
        return Ok(None);
    }
    m::RunStatus::from_i64(value as i64)
        .map(Some)
        .ok_or_else(|| {
            crate::error::EngineError::invalid_argument(format!(
                "status {value} is not a RunStatus"
            ))
        })
}

pub fn diff(d: &crate::engine::diff::RunDiff) -> pb::DiffRunsResponse {
    use crate::engine::diff::Presence;
    pb::DiffRunsResponse {
        run_a: Some(run(&d.run_a)),
        run_b: Some(run(&d.run_b)),
        nodes: d
            .nodes
            .iter()
            .map(|n| pb::NodeDiff {
                node_id: n.node_id.clone(),
                presence: match n.presence {
                    Presence::Both => pb::NodePresence::Both,
                    Presence::OnlyA => pb::NodePresence::OnlyA,
                    Presence::OnlyB => pb::NodePresence::OnlyB,
                } as i32,
                status_a: n
                    .a
                    .as_ref()
                    .map(|x| x.status.as_i64() as i32)
                    .unwrap_or_default(),
                status_b: n
                    .b
                    .as_ref()
                    .map(|x| x.status.as_i64() as i32)
                    .unwrap_or_default(),
                agent_a: n.a.as_ref().map(|x| x.agent.clone()).unwrap_or_default(),
                agent_b: n.b.as_ref().map(|x| x.agent.clone()).unwrap_or_default(),
                outputs: n
                    .outputs
                    .iter()
                    .map(|o| pb::OutputDiff {
                        name: o.name.clone(),
                        artifact_id_a: o.artifact_a.clone().unwrap_or_default(),
                        artifact_id_b: o.artifact_b.clone().unwrap_or_default(),
                        changed: o.changed,
                        text_diff: o.text_diff.clone(),
                    })
                    .collect(),
                latency_ms_a: n.a.as_ref().and_then(|x| x.latency_ms).unwrap_or_default(),
                latency_ms_b: n.b.as_ref().and_then(|x| x.latency_ms).unwrap_or_default(),
                usage_a: n.a.as_ref().map(|x| usage(&x.usage)),
                usage_b: n.b.as_ref().map(|x| usage(&x.usage)),
                changed: n.changed,
            })
            .collect(),
        summary: Some(pb::DiffSummary {
            changed: d.changed,
            unchanged: d.unchanged,
            only_in_a: d.only_a,
            only_in_b: d.only_b,
        }),
        first_divergence: d.first_divergence.clone().unwrap_or_default(),
        after_divergence: d.after_divergence.clone(),
    }
}

pub fn wait(w: &crate::engine::Wait) -> pb::Wait {
    pb::Wait {
        run_id: w.run_id.clone(),
        node_id: w.node_id.clone(),
        node_execution_id: w.node_execution_id.clone(),
        kind: match w.kind {
            crate::engine::WaitKind::Input => pb::WaitKind::Input,
            crate::engine::WaitKind::Approval => pb::WaitKind::Approval,
        } as i32,
        prompt: w.prompt.clone(),
        context_json: w.context_json.clone(),
        context: json_struct(&w.context_json),
        create_time: timestamp(Some(w.created_at)),
    }
}

/// Longest `OutputOverride.source` kept: it only says where a value came
/// from, so a longer one is cut rather than refused.
const MAX_SOURCE_BYTES: usize = 512;

fn clip_source(source: String) -> String {
    if source.len() > MAX_SOURCE_BYTES {
        format!("{}…", head(&source, MAX_SOURCE_BYTES))
    } else {
        source
    }
}

pub fn swaps_from(swaps: Vec<pb::AgentSwap>) -> Vec<crate::model::AgentSwap> {
    swaps
        .into_iter()
        .map(|s| crate::model::AgentSwap {
            node_id: s.node_id,
            agent: s.agent,
        })
        .collect()
}

pub fn overrides_from(overrides: Vec<pb::OutputOverride>) -> Vec<crate::model::OutputOverride> {
    overrides
        .into_iter()
        .map(|o| crate::model::OutputOverride {
            selector: o.selector,
            output: o.output,
            value: o.value,
            source: clip_source(o.source),
        })
        .collect()
}

/// Milliseconds as a protobuf Duration.
fn duration(ms: i64) -> prost_types::Duration {
    prost_types::Duration {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    }
}

/// A JSON object as a protobuf Struct, for clients that read maps so;
/// None for anything else (the JSON text is beside it either way).
pub fn json_struct(text: &str) -> Option<prost_types::Struct> {
    match serde_json::from_str(text).ok()? {
        serde_json::Value::Object(map) => Some(struct_of(map)),
        _ => None,
    }
}

fn struct_of(map: serde_json::Map<String, serde_json::Value>) -> prost_types::Struct {
    prost_types::Struct {
        fields: map.into_iter().map(|(k, v)| (k, value_of(v))).collect(),
    }
}

fn value_of(v: serde_json::Value) -> prost_types::Value {
    use prost_types::value::Kind;
    use serde_json::Value as J;
    let kind = match v {
        J::Null => Kind::NullValue(0),
        J::Bool(b) => Kind::BoolValue(b),
        // Struct numbers are doubles, as in JSON itself.
        J::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or(f64::NAN)),
        J::String(s) => Kind::StringValue(s),
        J::Array(items) => Kind::ListValue(prost_types::ListValue {
            values: items.into_iter().map(value_of).collect(),
        }),
        J::Object(map) => Kind::StructValue(struct_of(map)),
    };
    prost_types::Value { kind: Some(kind) }
}
