//! `retake debug RUN_ID`: a post-mortem — every node with its agent,
//! status, latency, prompt, inputs, outputs (truncated), error, and what
//! blocked the nodes that were skipped.

use super::RunSummary;
use super::fetch::{few_at_a_time, node_execution, run_with_nodes};
use crate::cli::DebugArgs;
use crate::connect::Clients;
use crate::error::{CliError, CliResult};
use crate::render::{self, Output, Style, failure_origin_name, node_status_name};
use retake::v1::{FailureOrigin, NodeExecution, NodeStatus, OutputOverride};
use std::collections::HashMap;

/// Characters of each input and output shown before truncating.
pub const PREVIEW_CHARS: usize = 400;

/// An output artifact with the start of its content.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputPreview {
    pub artifact_id: String,
    pub name: String,
    /// None for binary content.
    pub text: Option<String>,
    pub size_bytes: i64,
    /// The run that produced it.
    pub run_id: String,
}

/// An input artifact of a node and the node of the run that produced it.
#[derive(Debug, Clone, PartialEq)]
pub struct InputRef {
    pub artifact_id: String,
    /// The producing node's id; None when no node of the run lists it as an output.
    pub producer: Option<String>,
}

/// A node execution, its inputs' producers and its outputs.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeReport {
    pub node: NodeExecution,
    pub inputs: Vec<InputRef>,
    pub outputs: Vec<OutputPreview>,
    /// The replay gave the node's outputs instead of running it.
    pub overridden: bool,
    /// The outputs it gave, with their values and where they came from.
    pub overrides: Vec<OutputOverride>,
}

impl NodeReport {
    /// The report of `node` of `run`, telling whether the run's replay
    /// gave its outputs.
    pub fn new(
        run: &retake::v1::Run,
        node: NodeExecution,
        inputs: Vec<InputRef>,
        outputs: Vec<OutputPreview>,
    ) -> Self {
        let overrides = render::overrides_by_node(run)
            .remove(&node.node_id)
            .unwrap_or_default();
        Self {
            overridden: render::is_overridden(&node, &overrides),
            node,
            inputs,
            outputs,
            overrides,
        }
    }
}

/// Output artifact id -> the node of `nodes` that produced (or reused) it.
pub fn producers(nodes: &[NodeExecution]) -> HashMap<String, String> {
    nodes
        .iter()
        .flat_map(|n| {
            n.output_artifact_ids
                .iter()
                .map(|a| (a.clone(), n.node_id.clone()))
        })
        .collect()
}

/// The input artifacts of `node` with their producers.
pub fn input_refs(node: &NodeExecution, producers: &HashMap<String, String>) -> Vec<InputRef> {
    node.input_artifact_ids
        .iter()
        .map(|id| InputRef {
            artifact_id: id.clone(),
            producer: producers.get(id).cloned(),
        })
        .collect()
}

/// The post-mortem of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct DebugReport {
    pub run: RunSummary,
    pub nodes: Vec<NodeReport>,
    /// Only failed nodes and the nodes they blocked.
    pub errors_only: bool,
    /// Characters of content shown per input or output (0: everything).
    pub preview_chars: usize,
}

/// The output artifacts of `node`, fetched a few at a time.
pub async fn outputs_of(clients: &Clients, node: &NodeExecution) -> CliResult<Vec<OutputPreview>> {
    let fetches = node.output_artifact_ids.iter().map(|id| async move {
        let (artifact, content) = super::artifacts::fetch(clients, id).await?;
        Ok::<_, CliError>(OutputPreview {
            artifact_id: artifact.id,
            name: artifact.name,
            text: String::from_utf8(content).ok(),
            size_bytes: artifact.size_bytes,
            run_id: artifact.run_id,
        })
    });
    few_at_a_time(fetches).await.into_iter().collect()
}

/// `retake debug`.
pub async fn debug(clients: &Clients, args: &DebugArgs) -> CliResult<DebugReport> {
    let (run, all) = run_with_nodes(clients, &args.run_id).await?;
    let producers = producers(&all);
    let nodes: Vec<NodeExecution> = match &args.node {
        Some(step) => vec![node_execution(clients, &run.id, step).await?],
        None => all,
    };
    let nodes: Vec<NodeExecution> = if args.errors {
        nodes.into_iter().filter(is_error_node).collect()
    } else {
        nodes
    };
    let reports = few_at_a_time(nodes.into_iter().map(|node| {
        let inputs = input_refs(&node, &producers);
        let run = &run;
        async move {
            let outputs = outputs_of(clients, &node).await?;
            Ok::<_, CliError>(NodeReport::new(run, node, inputs, outputs))
        }
    }))
    .await
    .into_iter()
    .collect::<CliResult<Vec<_>>>()?;
    Ok(DebugReport {
        run: RunSummary::from_run(&run),
        nodes: reports,
        errors_only: args.errors,
        preview_chars: if args.verbose { 0 } else { PREVIEW_CHARS },
    })
}

/// Whether `node_text` cut anything of `r` at `max` characters.
fn is_truncated(r: &NodeReport, max: usize) -> bool {
    if max == 0 {
        return false;
    }
    let long = |t: &str| preview(t, 0).chars().count() > max;
    r.node.prompt.chars().count() > max
        || long(&r.node.inputs_json)
        || r.outputs
            .iter()
            .any(|o| o.text.as_deref().is_some_and(long))
}

fn is_error_node(n: &NodeExecution) -> bool {
    matches!(n.status(), NodeStatus::Failed | NodeStatus::Cancelled)
        || (n.status() == NodeStatus::Skipped && !n.blocked_by.is_empty())
        || n.attempts.iter().any(|a| !a.error.is_empty())
}

/// Pretty JSON when `text` is JSON, else `text` itself, cut to `max` characters (0: no cut).
pub fn preview(text: &str, max: usize) -> String {
    let pretty = serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .filter(|v| v.is_object() || v.is_array())
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| text.to_string());
    cut(&pretty, max)
}

/// `text` cut to `max` characters; 0 keeps it whole.
fn cut(text: &str, max: usize) -> String {
    if max == 0 {
        text.to_string()
    } else {
        render::truncate(text, max)
    }
}

/// The text block for one node, used by `debug` and `trace node`.
pub fn node_text(style: Style, report: &NodeReport, preview_chars: usize) -> String {
    let n = &report.node;
    let mut out = String::new();
    let latency = if n.latency_ms > 0 {
        format!(", {}", render::duration(n.latency_ms))
    } else {
        String::new()
    };
    let agent = if n.agent.is_empty() { "-" } else { &n.agent };
    let (status, detail) = if report.overridden {
        (style.cyan("overridden"), format!(" ({agent} not run)"))
    } else {
        (
            style.node_status(n.status()),
            format!(" ({agent}{latency})"),
        )
    };
    out.push_str(&format!(
        "{} {}  {status}{}\n",
        style.bold("●"),
        style.bold(&n.node_id),
        style.dim(&detail),
    ));
    let field = |out: &mut String, k: &str, v: &str| {
        if v.contains('\n') {
            out.push_str(&format!(
                "    {}\n{}",
                style.dim(&format!("{k}:")),
                render::indent(v, "      ")
            ));
        } else {
            out.push_str(&format!("    {} {v}\n", style.dim(&format!("{k}:"))));
        }
    };
    field(&mut out, "Execution", &n.id);
    if report.overridden {
        field(&mut out, "Overridden", &overridden_text(report));
    }
    if !n.model.is_empty() && n.model != render::OVERRIDE_MODEL {
        field(&mut out, "Model", &n.model);
    }
    if n.attempt_count > 1 {
        field(&mut out, "Attempts", &n.attempt_count.to_string());
    }
    // Which worker ran each attempt of a worker:// step.
    let workers: Vec<String> = n
        .attempts
        .iter()
        .filter(|a| !a.worker.is_empty())
        .map(|a| {
            if n.attempts.len() > 1 {
                format!("{} (attempt {})", a.worker, a.number)
            } else {
                a.worker.clone()
            }
        })
        .collect();
    if !workers.is_empty() {
        field(&mut out, "Worker", &workers.join(", "));
    }
    if let Some(u) = &n.usage
        && (u.input_tokens > 0 || u.output_tokens > 0 || u.cost_usd > 0.0)
    {
        field(
            &mut out,
            "Usage",
            &format!(
                "{} in / {} out tokens, ${:.6}",
                u.input_tokens, u.output_tokens, u.cost_usd
            ),
        );
    }
    if !n.reused_from_run_id.is_empty() {
        let mut notes = Vec::new();
        if !n.reused_from_node_execution_id.is_empty() {
            notes.push(format!(
                "node execution {}",
                n.reused_from_node_execution_id
            ));
        }
        // The model marks a result that was itself given to a replay there.
        if n.model == render::OVERRIDE_MODEL {
            notes.push("its output was overridden there".to_string());
        }
        let nex = if notes.is_empty() {
            String::new()
        } else {
            format!(" ({})", notes.join(", "))
        };
        field(
            &mut out,
            "Reused from",
            &format!("run {}{nex}", n.reused_from_run_id),
        );
    }
    if !n.prompt.is_empty() {
        field(&mut out, "Prompt", &cut(&n.prompt, preview_chars));
    }
    if render::has_json(&n.inputs_json) {
        field(&mut out, "Inputs", &preview(&n.inputs_json, preview_chars));
    }
    if !report.inputs.is_empty() {
        let refs: Vec<String> = report
            .inputs
            .iter()
            .map(|i| match &i.producer {
                Some(p) => format!("{} (from {p})", i.artifact_id),
                None => i.artifact_id.clone(),
            })
            .collect();
        field(&mut out, "Input artifacts", &refs.join(", "));
    }
    for o in &report.outputs {
        let label = format!("Output {} ({})", o.name, o.artifact_id);
        match &o.text {
            Some(t) => field(&mut out, &label, &preview(t, preview_chars)),
            None => field(
                &mut out,
                &label,
                &format!("<{} binary>", render::bytes(o.size_bytes)),
            ),
        }
    }
    for a in n.attempts.iter().filter(|a| !a.error.is_empty()) {
        if n.attempts.len() > 1 {
            field(
                &mut out,
                &format!("Attempt {} error", a.number),
                &style.red(&a.error),
            );
        }
    }
    if !n.error.is_empty() {
        let origin = origin_suffix(&n.error, n.error_origin());
        let label = if n.status() == NodeStatus::Skipped {
            "Reason"
        } else {
            "Error"
        };
        let text = if n.status() == NodeStatus::Skipped {
            n.error
                .strip_prefix("skipped: ")
                .unwrap_or(&n.error)
                .to_string()
        } else {
            style.red(&n.error)
        };
        field(&mut out, label, &format!("{text}{origin}"));
    }
    if !n.blocked_by.is_empty() {
        field(&mut out, "Blocked by", &n.blocked_by.join(", "));
    }
    out
}

/// What a replay gave an overridden node, output by output (`result =
/// "x"`, `notes from @notes.txt`), and the outputs it kept from the run
/// it was forked from.
pub fn overridden_text(report: &NodeReport) -> String {
    let mut parts: Vec<String> = report
        .overrides
        .iter()
        .map(render::override_origin)
        .collect();
    for o in &report.outputs {
        if !report.overrides.iter().any(|v| v.output == o.name) && o.run_id != report.node.run_id {
            parts.push(format!("{} kept from run {}", o.name, o.run_id));
        }
    }
    if parts.is_empty() {
        "outputs given to the replay".to_string()
    } else {
        parts.join(", ")
    }
}

/// ` (timeout)` after an error, unless the error already says it (`cancelled (cancelled)`).
fn origin_suffix(message: &str, origin: FailureOrigin) -> String {
    match origin {
        FailureOrigin::Unspecified => String::new(),
        o if message.contains(failure_origin_name(o)) => String::new(),
        o => format!(" ({})", failure_origin_name(o)),
    }
}

/// A node that was cancelled and has nothing else to report: no failed
/// attempt before the cancellation. `debug --errors` lists these on one line.
fn only_cancelled(r: &NodeReport) -> bool {
    let n = &r.node;
    n.status() == NodeStatus::Cancelled
        && n.attempts
            .iter()
            .all(|a| a.error.is_empty() || a.error_origin() == FailureOrigin::Cancelled)
}

/// A node execution as JSON, with output previews.
pub fn node_json(report: &NodeReport, preview_chars: usize) -> serde_json::Value {
    let n = &report.node;
    let empty_null = render::empty_null;
    let parsed =
        |s: &str| serde_json::from_str::<serde_json::Value>(s).unwrap_or_else(|_| empty_null(s));
    let origin = |o: FailureOrigin| match o {
        FailureOrigin::Unspecified => serde_json::Value::Null,
        o => failure_origin_name(o).into(),
    };
    serde_json::json!({
        "node_id": n.node_id,
        "node_execution_id": n.id,
        "status": node_status_name(n.status()),
        "agent": empty_null(&n.agent),
        "model": if report.overridden || n.model == render::OVERRIDE_MODEL { serde_json::Value::Null } else { empty_null(&n.model) },
        "config": if report.overridden { serde_json::Value::Null } else { parsed(&n.config_json) },
        "prompt": empty_null(&n.prompt),
        "inputs": parsed(&n.inputs_json),
        "input_artifact_ids": n.input_artifact_ids,
        "input_artifacts": report.inputs.iter().map(|i| serde_json::json!({
            "artifact_id": i.artifact_id,
            "producer_node_id": i.producer,
        })).collect::<Vec<_>>(),
        "outputs": report.outputs.iter().map(|o| serde_json::json!({
            "artifact_id": o.artifact_id,
            "name": o.name,
            "size_bytes": o.size_bytes,
            "content": o.text.as_deref().map(|t| cut(t, preview_chars)),
        })).collect::<Vec<_>>(),
        "error": empty_null(&n.error),
        "error_origin": origin(n.error_origin()),
        "started_at": render::rfc3339(n.start_time.as_ref()),
        "finished_at": render::rfc3339(n.finish_time.as_ref()),
        "latency_ms": n.latency_ms,
        "usage": n.usage.as_ref().map(render::usage_json),
        "attempt_count": n.attempt_count,
        "attempts": n.attempts.iter().map(|a| serde_json::json!({
            "number": a.number,
            "started_at": render::rfc3339(a.start_time.as_ref()),
            "finished_at": render::rfc3339(a.finish_time.as_ref()),
            "error": empty_null(&a.error),
            "error_origin": origin(a.error_origin()),
            "worker": empty_null(&a.worker),
        })).collect::<Vec<_>>(),
        "reused_from_run_id": empty_null(&n.reused_from_run_id),
        "reused_from_node_execution_id": empty_null(&n.reused_from_node_execution_id),
        "blocked_by": n.blocked_by,
        "depends_on": n.depends_on,
        "overridden": report.overridden,
        "overrides": report.overrides.iter().map(|o| serde_json::json!({
            "output": o.output,
            "source": empty_null(&o.source),
        })).collect::<Vec<_>>(),
    })
}

impl Output for DebugReport {
    fn text(&self, style: Style) -> String {
        let r = &self.run;
        let mut out = String::new();
        out.push_str(&format!("{} {}\n", style.bold("Run:"), r.run_id));
        out.push_str(&format!(
            "{} {}\n",
            style.bold("Workflow:"),
            r.workflow_name
        ));
        let mut status = style.run_status(r.run_status);
        if let Some(ms) = r.duration_ms {
            status.push_str(&format!(" in {}", render::duration(ms)));
        }
        out.push_str(&format!("{} {status}\n", style.bold("Status:")));
        if let Some(origin) = r.fork_origin() {
            out.push_str(&format!("{} {origin}\n", style.bold("Forked from:")));
        }
        if let Some(f) = &r.failure {
            let node = f
                .node_id
                .as_deref()
                .map(|n| format!("node '{n}': "))
                .unwrap_or_default();
            let origin = if f.message.contains(&f.origin) {
                String::new()
            } else {
                format!(" ({})", f.origin)
            };
            out.push_str(&format!(
                "{} {node}{}{origin}\n",
                style.bold("Failure:"),
                style.red(&f.message),
            ));
        }
        out.push_str(&format!(
            "{} {}/{} completed, {} failed, {} skipped, {} reused\n",
            style.bold("Nodes:"),
            r.completed_nodes,
            r.total_nodes,
            r.failed_nodes,
            r.skipped_nodes,
            r.reused_nodes
        ));
        if self.nodes.is_empty() {
            out.push_str(if self.errors_only {
                "\nNo failed nodes\n"
            } else {
                "\nNo nodes\n"
            });
            return out;
        }
        // With --errors, nodes that were only cancelled say nothing one line cannot.
        let (grouped, shown): (Vec<&NodeReport>, Vec<&NodeReport>) = self
            .nodes
            .iter()
            .partition(|n| self.errors_only && only_cancelled(n));
        for n in shown {
            out.push('\n');
            out.push_str(&node_text(style, n, self.preview_chars));
        }
        if !grouped.is_empty() {
            let ids: Vec<&str> = grouped.iter().map(|n| n.node.node_id.as_str()).collect();
            out.push_str(&format!(
                "\n{} {} {}: {}\n",
                style.yellow("⊘"),
                ids.len(),
                if ids.len() == 1 {
                    "node cancelled"
                } else {
                    "nodes cancelled"
                },
                ids.join(", ")
            ));
        }
        if self
            .nodes
            .iter()
            .any(|n| is_truncated(n, self.preview_chars))
        {
            out.push_str(&style.dim(&format!(
                "\nLong content was cut to {} characters (marked …); use -v to see it in full\n",
                self.preview_chars
            )));
        }
        out
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "run": self.run.json(),
            "nodes": self.nodes.iter().map(|n| node_json(n, self.preview_chars)).collect::<Vec<_>>(),
        })
    }
}
