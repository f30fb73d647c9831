//! `retake diff RUN_A RUN_B`: two runs compared node by node — status,
//! agent, outputs (with a text diff), latency, tokens and cost — and where
//! they part (the first divergence). With one run, a replay is compared
//! with the run it was forked from.

use super::{RunSummary, get_run};
use crate::cli::DiffArgs;
use crate::connect::Clients;
use crate::error::{CliError, CliResult};
use crate::render::{self, Output, Style, node_status_name};
use retake::v1::{DiffRunsRequest, DiffRunsResponse, NodeDiff, NodePresence, NodeStatus, Usage};

/// The server's comparison, ready to print.
#[derive(Debug, Clone, PartialEq)]
pub struct RunDiff {
    pub response: DiffRunsResponse,
    /// Print only the first divergence (`--first-divergence`).
    pub divergence_only: bool,
}

/// `retake diff`: the two runs given, or a replay and its source run.
pub async fn diff(clients: &Clients, args: &DiffArgs) -> CliResult<RunDiff> {
    let (run_a, run_b) = match &args.run_b {
        Some(b) => (args.run_a.clone(), b.clone()),
        None => {
            let run = get_run(clients, &args.run_a).await?;
            match run.replay.as_ref().filter(|r| !r.forked_from.is_empty()) {
                Some(replay) => (replay.forked_from.clone(), run.id.clone()),
                None => {
                    return Err(CliError::usage(format!(
                        "run {} is not a replay, so there is no run it was forked from to compare it with; \
                         give two runs: retake diff RUN_A RUN_B",
                        run.id
                    )));
                }
            }
        }
    };
    let mut runs = clients.runs.clone();
    let response = runs
        .diff_runs(DiffRunsRequest { run_a, run_b })
        .await?
        .into_inner();
    Ok(RunDiff {
        response,
        divergence_only: args.first_divergence,
    })
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

/// `a`, or `a → b` when they differ.
fn either(a: String, b: String) -> String {
    if a == b { a } else { format!("{a} → {b}") }
}

impl RunDiff {
    fn ids(&self) -> (String, String) {
        let id = |r: &Option<retake::v1::Run>| r.as_ref().map(|r| r.id.clone()).unwrap_or_default();
        (id(&self.response.run_a), id(&self.response.run_b))
    }

    /// Whether both sides are one and the same run.
    pub fn same_run(&self) -> bool {
        let (a, b) = self.ids();
        !a.is_empty() && a == b
    }

    /// Whether no node differs.
    pub fn identical(&self) -> bool {
        let s = self.response.summary.unwrap_or_default();
        s.changed == 0 && s.only_in_a == 0 && s.only_in_b == 0
    }

    /// One row of the node table: marker, node, change, status, agent,
    /// latency. `first` marks the first divergence.
    fn row(style: Style, n: &NodeDiff, first: bool) -> Vec<String> {
        let agent = |a: &str| {
            if a.is_empty() {
                "-".to_string()
            } else {
                a.to_string()
            }
        };
        let one_side = |marker: String, change: &str, status, agent_id: &str, latency| {
            vec![
                marker,
                style.bold(&n.node_id),
                style.yellow(change),
                style.node_status(status),
                agent(agent_id),
                render::duration(latency),
            ]
        };
        match n.presence() {
            NodePresence::OnlyA => one_side(
                style.red("-"),
                "only in A",
                n.status_a(),
                &n.agent_a,
                n.latency_ms_a,
            ),
            NodePresence::OnlyB => one_side(
                style.green("+"),
                "only in B",
                n.status_b(),
                &n.agent_b,
                n.latency_ms_b,
            ),
            _ => {
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
                let (marker, node, change) = if n.changed {
                    (
                        style.yellow("~"),
                        style.bold(&n.node_id),
                        style.yellow(if first {
                            "changed, first divergence"
                        } else {
                            "changed"
                        }),
                    )
                } else {
                    (style.dim("="), n.node_id.clone(), style.dim("unchanged"))
                };
                vec![
                    marker,
                    node,
                    change,
                    either(
                        style.node_status(n.status_a()),
                        style.node_status(n.status_b()),
                    ),
                    either(agent(&n.agent_a), agent(&n.agent_b)),
                    latency,
                ]
            }
        }
    }

    /// What the table cannot show for a changed node: its changed outputs
    /// with their text diffs, tokens and cost. Empty when there is nothing.
    fn details(style: Style, n: &NodeDiff) -> String {
        let mut out = String::new();
        for o in n.outputs.iter().filter(|o| o.changed) {
            let side = if o.artifact_id_a.is_empty() {
                " (only in B)"
            } else if o.artifact_id_b.is_empty() {
                " (only in A)"
            } else {
                ""
            };
            out.push_str(&format!("  output '{}' changed{side}\n", o.name));
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
                out.push_str(&format!("    {coloured}\n"));
            }
        }
        let (ta, tb) = (tokens(n.usage_a.as_ref()), tokens(n.usage_b.as_ref()));
        if ta != tb {
            out.push_str(&format!("  tokens: {ta} → {tb} ({})\n", signed(tb - ta)));
        }
        let (ca, cb) = (cost(n.usage_a.as_ref()), cost(n.usage_b.as_ref()));
        if ca != cb {
            let d = cb - ca;
            let sign = if d > 0.0 { "+" } else { "-" };
            out.push_str(&format!(
                "  cost: ${ca:.6} → ${cb:.6} ({sign}${:.6})\n",
                d.abs()
            ));
        }
        out
    }
}

impl RunDiff {
    fn first_divergence(&self) -> Option<&NodeDiff> {
        let first = &self.response.first_divergence;
        self.response
            .nodes
            .iter()
            .find(|n| !first.is_empty() && &n.node_id == first)
    }

    /// "First divergence: NODE; downstream of it: …", or that there is none.
    fn divergence_line(&self, style: Style) -> String {
        let Some(n) = self.first_divergence() else {
            return "No divergence: every node's outputs are the same in A and B\n".into();
        };
        let after = &self.response.after_divergence;
        let downstream = if after.is_empty() {
            "nothing downstream of it".to_string()
        } else {
            format!("{} downstream of it: {}", after.len(), after.join(", "))
        };
        format!(
            "First divergence: {}; {downstream}\n",
            style.bold(&n.node_id)
        )
    }

    fn divergence_text(&self, style: Style) -> String {
        let mut out = self.divergence_line(style);
        if let Some(n) = self.first_divergence() {
            let side = match n.presence() {
                NodePresence::OnlyA => "  only in A\n",
                NodePresence::OnlyB => "  only in B\n",
                _ => "",
            };
            out.push_str(side);
            out.push_str(&Self::details(style, n));
        }
        out
    }
}

impl Output for RunDiff {
    fn text(&self, style: Style) -> String {
        if self.divergence_only {
            return self.divergence_text(style);
        }
        let (a, _) = self.ids();
        let mut out = String::new();
        let mut header = Vec::new();
        for (label, run) in [("A", &self.response.run_a), ("B", &self.response.run_b)] {
            if let Some(run) = run {
                let s = RunSummary::from_run(run);
                let mut origin = String::new();
                if let Some(from) = &s.forked_from {
                    let from = if *from == a && label == "B" {
                        "A".to_string()
                    } else {
                        from.clone()
                    };
                    origin = format!("replay of {from}");
                    if let Some(step) = &s.forked_at_step {
                        origin.push_str(&format!(" from step '{step}'"));
                    }
                }
                header.push(vec![
                    style.bold(&format!("Run {label}:")),
                    s.run_id.clone(),
                    s.workflow_name.clone(),
                    style.run_status(s.run_status),
                    origin,
                ]);
            }
        }
        out.push_str(&render::rows(&header));
        if self.same_run() {
            out.push_str("A and B are the same run.\n");
        }
        out.push('\n');
        let rows: Vec<Vec<String>> = self
            .response
            .nodes
            .iter()
            .map(|n| Self::row(style, n, n.node_id == self.response.first_divergence))
            .collect();
        out.push_str(&render::table(
            style,
            &["", "NODE", "CHANGE", "STATUS", "AGENT", "LATENCY"],
            &rows,
        ));
        for n in self.response.nodes.iter().filter(|n| n.changed) {
            let details = Self::details(style, n);
            if !details.is_empty() {
                out.push('\n');
                out.push_str(&format!("{}\n", style.bold(&n.node_id)));
                out.push_str(&details);
            }
        }
        let s = self.response.summary.unwrap_or_default();
        out.push('\n');
        if self.identical() {
            out.push_str(&format!(
                "No differences: all {} nodes are the same in A and B\n",
                s.unchanged
            ));
        } else {
            out.push_str(&format!(
                "{} changed, {} unchanged, {} only in A, {} only in B\n",
                s.changed, s.unchanged, s.only_in_a, s.only_in_b
            ));
            out.push_str(&self.divergence_line(style));
        }
        out
    }

    fn json(&self) -> serde_json::Value {
        let status = |s: NodeStatus| match s {
            NodeStatus::Unspecified => serde_json::Value::Null,
            s => node_status_name(s).into(),
        };
        let usage = |u: Option<&Usage>| u.map(render::usage_json);
        let empty_null = render::empty_null;
        let node_json = |n: &NodeDiff| {
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
        };
        let run_a = self
            .response
            .run_a
            .as_ref()
            .map(|r| RunSummary::from_run(r).json());
        let run_b = self
            .response
            .run_b
            .as_ref()
            .map(|r| RunSummary::from_run(r).json());
        let first = empty_null(&self.response.first_divergence);
        let after = &self.response.after_divergence;
        if self.divergence_only {
            return serde_json::json!({
                "run_a": run_a,
                "run_b": run_b,
                "first_divergence": first,
                "after_divergence": after,
                "node": self.first_divergence().map(node_json),
            });
        }
        let nodes: Vec<serde_json::Value> = self.response.nodes.iter().map(node_json).collect();
        let s = self.response.summary.unwrap_or_default();
        serde_json::json!({
            "run_a": run_a,
            "run_b": run_b,
            "nodes": nodes,
            "first_divergence": first,
            "after_divergence": after,
            "summary": {
                "changed": s.changed,
                "unchanged": s.unchanged,
                "only_in_a": s.only_in_a,
                "only_in_b": s.only_in_b,
            },
        })
    }
}
