//! `retake diff RUN_A RUN_B`: two runs compared node by node — status,
//! agent, outputs (with a text diff), latency, tokens and cost.

use super::RunSummary;
use crate::cli::DiffArgs;
use crate::connect::Clients;
use crate::error::CliResult;
use crate::render::{self, Output, Style, node_status_name};
use retake::v1::{DiffRunsRequest, DiffRunsResponse, NodeDiff, NodePresence, NodeStatus, Usage};

/// The server's comparison, ready to print.
#[derive(Debug, Clone, PartialEq)]
pub struct RunDiff {
    pub response: DiffRunsResponse,
}

/// `retake diff`.
pub async fn diff(clients: &Clients, args: &DiffArgs) -> CliResult<RunDiff> {
    let mut runs = clients.runs.clone();
    let response = runs
        .diff_runs(DiffRunsRequest {
            run_a: args.run_a.clone(),
            run_b: args.run_b.clone(),
        })
        .await?
        .into_inner();
    Ok(RunDiff { response })
}

fn presence_name(p: NodePresence) -> &'static str {
    match p {
        NodePresence::Both | NodePresence::Unspecified => "both",
        NodePresence::OnlyA => "only_a",
        NodePresence::OnlyB => "only_b",
    }
}

fn tokens(u: Option<&Usage>) -> i64 {
    u.map(|u| u.input_tokens + u.output_tokens).unwrap_or(0)
}

fn cost(u: Option<&Usage>) -> f64 {
    u.map(|u| u.cost_usd).unwrap_or(0.0)
}

fn signed(n: i64) -> String {
    if n > 0 {
        format!("+{n}")
    } else {
        n.to_string()
    }
}

impl RunDiff {
    fn ids(&self) -> (String, String) {
        let a = self
            .response
            .run_a
            .as_ref()
            .map(|r| r.id.clone())
            .unwrap_or_default();
        let b = self
            .response
            .run_b
            .as_ref()
            .map(|r| r.id.clone())
            .unwrap_or_default();
        (a, b)
    }

    fn node_text(&self, style: Style, n: &NodeDiff, out: &mut String) {
        let (a, b) = self.ids();
        let marker = |s: &str| style.bold(s);
        match n.presence() {
            NodePresence::OnlyA => {
                out.push_str(&format!(
                    "{} {}  {}\n",
                    style.red("-"),
                    marker(&n.node_id),
                    style.yellow(&format!("only in {a}"))
                ));
                return;
            }
            NodePresence::OnlyB => {
                out.push_str(&format!(
                    "{} {}  {}\n",
                    style.green("+"),
                    marker(&n.node_id),
                    style.yellow(&format!("only in {b}"))
                ));
                return;
            }
            _ => {}
        }
        let latency = if n.latency_ms_a == n.latency_ms_b {
            render::duration(n.latency_ms_a)
        } else {
            format!(
                "{} → {} ({} ms)",
                render::duration(n.latency_ms_a),
                render::duration(n.latency_ms_b),
                signed(n.latency_ms_b - n.latency_ms_a)
            )
        };
        if !n.changed {
            out.push_str(&format!(
                "{} {}  {}  {}\n",
                style.dim("="),
                n.node_id,
                style.dim("unchanged"),
                style.dim(&format!("latency {latency}"))
            ));
            return;
        }
        out.push_str(&format!(
            "{} {}  {}\n",
            style.yellow("~"),
            marker(&n.node_id),
            style.yellow("changed")
        ));
        if n.status_a != n.status_b {
            out.push_str(&format!(
                "    status: {} → {}\n",
                style.node_status(n.status_a()),
                style.node_status(n.status_b())
            ));
        } else {
            out.push_str(&format!(
                "    status: {}\n",
                style.node_status(n.status_a())
            ));
        }
        if n.agent_a != n.agent_b {
            out.push_str(&format!("    agent: {} → {}\n", n.agent_a, n.agent_b));
        }
        for o in &n.outputs {
            if !o.changed {
                continue;
            }
            out.push_str(&format!("    output '{}' changed\n", o.name));
            if !o.text_diff.is_empty() {
                for line in o.text_diff.lines() {
                    let coloured = if line.starts_with("+++") || line.starts_with("---") {
                        style.bold(line)
                    } else if line.starts_with('+') {
                        style.green(line)
                    } else if line.starts_with('-') {
                        style.red(line)
                    } else if line.starts_with("@@") {
                        style.cyan(line)
                    } else {
                        line.to_string()
                    };
                    out.push_str(&format!("      {coloured}\n"));
                }
            } else if o.artifact_id_a.is_empty() || o.artifact_id_b.is_empty() {
                let side = if o.artifact_id_a.is_empty() { &b } else { &a };
                out.push_str(&format!("      (only in {side})\n"));
            }
        }
        out.push_str(&format!("    latency: {latency}\n"));
        let (ta, tb) = (tokens(n.usage_a.as_ref()), tokens(n.usage_b.as_ref()));
        if ta != 0 || tb != 0 {
            out.push_str(&format!("    tokens: {ta} → {tb} ({})\n", signed(tb - ta)));
        }
        let (ca, cb) = (cost(n.usage_a.as_ref()), cost(n.usage_b.as_ref()));
        if ca != 0.0 || cb != 0.0 {
            let d = cb - ca;
            let sign = if d > 0.0 {
                "+"
            } else if d < 0.0 {
                "-"
            } else {
                ""
            };
            out.push_str(&format!(
                "    cost: ${ca:.6} → ${cb:.6} ({sign}${:.6})\n",
                d.abs()
            ));
        }
    }
}

impl Output for RunDiff {
    fn text(&self, style: Style) -> String {
        let (a, b) = self.ids();
        let mut out = String::new();
        for (label, run) in [("A", &self.response.run_a), ("B", &self.response.run_b)] {
            if let Some(run) = run {
                let s = RunSummary::from_run(run);
                let mut line = format!(
                    "Run {label}: {} ({}, {})",
                    s.run_id,
                    s.workflow_name,
                    style.run_status(s.run_status)
                );
                if let Some(from) = &s.forked_from {
                    line.push_str(&format!(" forked from {from}"));
                    if let Some(step) = &s.forked_at_step {
                        line.push_str(&format!(" at step '{step}'"));
                    }
                }
                out.push_str(&line);
                out.push('\n');
            }
        }
        out.push('\n');
        for n in &self.response.nodes {
            self.node_text(style, n, &mut out);
        }
        let s = self.response.summary.unwrap_or_default();
        out.push('\n');
        out.push_str(&format!(
            "{} changed, {} unchanged, {} only in {a}, {} only in {b}\n",
            s.changed, s.unchanged, s.only_in_a, s.only_in_b
        ));
        out
    }

    fn json(&self) -> serde_json::Value {
        let status = |s: NodeStatus| match s {
            NodeStatus::Unspecified => serde_json::Value::Null,
            s => node_status_name(s).into(),
        };
        let usage = |u: Option<&Usage>| {
            u.map(|u| serde_json::json!({"input_tokens": u.input_tokens, "output_tokens": u.output_tokens, "cost_usd": u.cost_usd}))
        };
        let empty_null = |s: &str| {
            if s.is_empty() {
                serde_json::Value::Null
            } else {
                s.into()
            }
        };
        let nodes: Vec<serde_json::Value> = self
            .response
            .nodes
            .iter()
            .map(|n| {
                serde_json::json!({
                    "node_id": n.node_id,
                    "presence": presence_name(n.presence()),
                    "changed": n.changed,
                    "status_a": status(n.status_a()),
                    "status_b": status(n.status_b()),
                    "agent_a": empty_null(&n.agent_a),
                    "agent_b": empty_null(&n.agent_b),
                    "outputs": n.outputs.iter().map(|o| serde_json::json!({
                        "name": o.name,
                        "artifact_id_a": empty_null(&o.artifact_id_a),
                        "artifact_id_b": empty_null(&o.artifact_id_b),
                        "changed": o.changed,
                        "text_diff": empty_null(&o.text_diff),
                    })).collect::<Vec<_>>(),
                    "latency_ms_a": n.latency_ms_a,
                    "latency_ms_b": n.latency_ms_b,
                    "latency_ms_delta": n.latency_ms_b - n.latency_ms_a,
                    "usage_a": usage(n.usage_a.as_ref()),
                    "usage_b": usage(n.usage_b.as_ref()),
                    "tokens_delta": tokens(n.usage_b.as_ref()) - tokens(n.usage_a.as_ref()),
                    "cost_usd_delta": cost(n.usage_b.as_ref()) - cost(n.usage_a.as_ref()),
                })
            })
            .collect();
        let s = self.response.summary.unwrap_or_default();
        serde_json::json!({
            "run_a": self.response.run_a.as_ref().map(|r| RunSummary::from_run(r).json()),
            "run_b": self.response.run_b.as_ref().map(|r| RunSummary::from_run(r).json()),
            "nodes": nodes,
            "summary": {
                "changed": s.changed,
                "unchanged": s.unchanged,
                "only_in_a": s.only_in_a,
                "only_in_b": s.only_in_b,
            },
        })
    }
}
