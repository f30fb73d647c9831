//! `retake trace`: when each node ran (a timeline), how the nodes connect
//! (the DAG with statuses), and one step in full.

use super::RunSummary;
use super::debug::{NodeReport, input_refs, node_json, node_text, outputs_of, producers};
use super::fetch::{node_execution, run_with_nodes};
use crate::cli::{TraceArgs, TraceView};
use crate::connect::Clients;
use crate::error::{CliError, CliResult};
use crate::render::{self, Output, Style, node_status_name};
use prost_types::Timestamp;
use retake::v1::{NodeExecution, NodeStatus, OutputOverride};
use std::collections::HashMap;

/// What `retake trace …` shows.
#[derive(Debug, Clone, PartialEq)]
pub enum Trace {
    Timeline(Timeline),
    Graph(Graph),
    Node(Box<NodeTrace>),
}

/// `retake trace RUN_ID`, `trace graph RUN_ID` or `trace node RUN_ID STEP`.
pub async fn trace(clients: &Clients, args: &TraceArgs) -> CliResult<Trace> {
    match (&args.view, &args.run_id) {
        (Some(TraceView::Graph { run_id }), _) => Ok(Trace::Graph(graph(clients, run_id).await?)),
        (Some(TraceView::Node { run_id, step }), _) => {
            Ok(Trace::Node(Box::new(node(clients, run_id, step).await?)))
        }
        (None, Some(run_id)) => Ok(Trace::Timeline(timeline(clients, run_id).await?)),
        (None, None) => Err(CliError::usage("a run id is required")),
    }
}

fn millis(t: Option<&Timestamp>) -> Option<i64> {
    t.filter(|t| t.seconds != 0 || t.nanos != 0)
        .map(|t| t.seconds * 1000 + i64::from(t.nanos) / 1_000_000)
}

/// The nodes of a run laid out in time.
#[derive(Debug, Clone, PartialEq)]
pub struct Timeline {
    pub run: RunSummary,
    pub run_start_ms: Option<i64>,
    pub nodes: Vec<NodeExecution>,
    /// The outputs the run's replay gave instead of running their nodes.
    pub overrides: HashMap<String, Vec<OutputOverride>>,
}

/// Whether `node` did not run because the replay gave its outputs.
fn overridden(overrides: &HashMap<String, Vec<OutputOverride>>, node: &NodeExecution) -> bool {
    let given = overrides.get(&node.node_id).map(Vec::as_slice);
    render::is_overridden(node, given.unwrap_or_default())
}

/// A node's status word, `overridden` for a node the replay did not run.
fn status_word(style: Style, overridden: bool, status: NodeStatus) -> String {
    if overridden {
        style.cyan("overridden")
    } else {
        style.node_status(status)
    }
}

/// Milliseconds from `start` to `at`; never negative, so a node recorded
/// as starting before its run is shown at the run's start.
fn offset(start: i64, at: i64) -> i64 {
    (at - start).max(0)
}

pub async fn timeline(clients: &Clients, run_id: &str) -> CliResult<Timeline> {
    let (run, mut nodes) = run_with_nodes(clients, run_id).await?;
    // Nodes that never started (reused, skipped, pending) go last, in topological order.
    nodes.sort_by_key(|n| {
        (
            millis(n.start_time.as_ref()).unwrap_or(i64::MAX),
            n.position,
        )
    });
    Ok(Timeline {
        run_start_ms: millis(run.start_time.as_ref()),
        overrides: render::overrides_by_node(&run),
        run: RunSummary::from_run(&run),
        nodes,
    })
}

/// Width of the timeline bars, in characters.
const BAR_WIDTH: i64 = 32;

impl Timeline {
    fn end_ms(&self) -> Option<i64> {
        self.nodes
            .iter()
            .filter_map(|n| millis(n.finish_time.as_ref()).or(millis(n.start_time.as_ref())))
            .max()
    }
}

impl Output for Timeline {
    fn text(&self, style: Style) -> String {
        let mut out = self.run.headline(style);
        if let Some(ms) = self.run.duration_ms {
            out.push_str(&format!("Duration: {}\n", render::duration(ms)));
        }
        out.push('\n');
        let start = self.run_start_ms.or_else(|| {
            self.nodes
                .iter()
                .filter_map(|n| millis(n.start_time.as_ref()))
                .min()
        });
        let span = match (start, self.end_ms()) {
            (Some(s), Some(e)) if e > s => e - s,
            _ => 1,
        };
        let rows: Vec<Vec<String>> = self
            .nodes
            .iter()
            .map(|n| {
                let (start, bar) = match (start, millis(n.start_time.as_ref())) {
                    (Some(s), Some(ns)) => {
                        let ne = millis(n.finish_time.as_ref()).unwrap_or(ns + n.latency_ms);
                        let from = (offset(s, ns) * BAR_WIDTH / span).clamp(0, BAR_WIDTH - 1);
                        let to = (offset(s, ne) * BAR_WIDTH / span).clamp(from + 1, BAR_WIDTH);
                        let bar = format!(
                            "{}{}{}",
                            " ".repeat(from as usize),
                            "█".repeat((to - from) as usize),
                            " ".repeat((BAR_WIDTH - to) as usize)
                        );
                        let bar = match n.status() {
                            NodeStatus::Failed => style.red(&bar),
                            NodeStatus::Completed => style.green(&bar),
                            _ => style.yellow(&bar),
                        };
                        (format!("+{}", render::duration(offset(s, ns))), bar)
                    }
                    _ => ("-".to_string(), " ".repeat(BAR_WIDTH as usize)),
                };
                let took = match render::elapsed_ms(n.start_time.as_ref(), n.finish_time.as_ref()) {
                    _ if n.latency_ms > 0 => render::duration(n.latency_ms),
                    Some(ms) if n.finish_time.is_some() => render::duration(ms),
                    _ => "-".into(),
                };
                vec![
                    start,
                    took,
                    bar,
                    n.node_id.clone(),
                    status_word(style, overridden(&self.overrides, n), n.status()),
                ]
            })
            .collect();
        out.push_str(&render::table(
            style,
            &["START", "TOOK", "TIMELINE", "NODE", "STATUS"],
            &rows,
        ));
        out
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "run": self.run.json(),
            "nodes": self.nodes.iter().map(|n| serde_json::json!({
                "node_id": n.node_id,
                "node_execution_id": n.id,
                "status": node_status_name(n.status()),
                "started_at": render::rfc3339(n.start_time.as_ref()),
                "finished_at": render::rfc3339(n.finish_time.as_ref()),
                "offset_ms": match (self.run_start_ms, millis(n.start_time.as_ref())) { (Some(s), Some(ns)) => Some(offset(s, ns)), _ => None },
                "latency_ms": n.latency_ms,
                "attempts": n.attempt_count,
                "reused_from_run_id": render::non_empty(&n.reused_from_run_id),
                "blocked_by": n.blocked_by,
                "overridden": overridden(&self.overrides, n),
            })).collect::<Vec<_>>(),
        })
    }
}

/// The DAG of a run, nodes grouped by depth.
#[derive(Debug, Clone, PartialEq)]
pub struct Graph {
    pub run: RunSummary,
    pub nodes: Vec<NodeExecution>,
    /// Longest path from an entry node, per node id.
    pub depth: HashMap<String, usize>,
    /// The outputs the run's replay gave instead of running their nodes.
    pub overrides: HashMap<String, Vec<OutputOverride>>,
}

pub async fn graph(clients: &Clients, run_id: &str) -> CliResult<Graph> {
    let (run, nodes) = run_with_nodes(clients, run_id).await?;
    // Nodes come in topological order, so one pass settles every depth.
    let mut depth: HashMap<String, usize> = HashMap::new();
    for n in &nodes {
        let d = n
            .depends_on
            .iter()
            .filter_map(|p| depth.get(p))
            .map(|d| d + 1)
            .max()
            .unwrap_or(0);
        depth.insert(n.node_id.clone(), d);
    }
    Ok(Graph {
        run: RunSummary::from_run(&run),
        nodes,
        depth,
        overrides: render::overrides_by_node(&run),
    })
}

fn status_icon(style: Style, s: NodeStatus) -> String {
    match s {
        NodeStatus::Completed => style.green("✓"),
        NodeStatus::Reused => style.cyan("↺"),
        NodeStatus::Failed => style.red("✗"),
        NodeStatus::Skipped => style.yellow("-"),
        NodeStatus::Cancelled => style.yellow("⊘"),
        NodeStatus::Waiting => style.yellow("⏸"),
        NodeStatus::Running => style.cyan("▸"),
        _ => style.dim("○"),
    }
}

impl Output for Graph {
    fn text(&self, style: Style) -> String {
        let mut out = self.run.headline(style);
        out.push('\n');
        let max_depth = self.depth.values().copied().max().unwrap_or(0);
        for level in 0..=max_depth {
            let at: Vec<&NodeExecution> = self
                .nodes
                .iter()
                .filter(|n| self.depth.get(&n.node_id) == Some(&level))
                .collect();
            if at.is_empty() {
                continue;
            }
            out.push_str(&style.dim(&format!("level {level}\n")));
            for n in at {
                let deps = if n.depends_on.is_empty() {
                    String::new()
                } else {
                    style.dim(&format!("  ← {}", n.depends_on.join(", ")))
                };
                let is_overridden = overridden(&self.overrides, n);
                let why = if is_overridden {
                    let given = self.overrides.get(&n.node_id).map(Vec::as_slice);
                    match given.unwrap_or_default() {
                        [] => style.dim("  (outputs given to the replay)"),
                        given => style.dim(&format!("  ({})", render::override_origins(given))),
                    }
                } else if !n.blocked_by.is_empty() {
                    style.dim(&format!("  (blocked by {})", n.blocked_by.join(", ")))
                } else if !n.reused_from_run_id.is_empty() {
                    style.dim(&format!("  (from {})", n.reused_from_run_id))
                } else {
                    String::new()
                };
                let icon = if is_overridden {
                    style.cyan("↷")
                } else {
                    status_icon(style, n.status())
                };
                out.push_str(&format!(
                    "  {icon} {}  {}{deps}{why}\n",
                    n.node_id,
                    status_word(style, is_overridden, n.status())
                ));
            }
        }
        out
    }

    fn json(&self) -> serde_json::Value {
        let edges: Vec<(String, String)> = self
            .nodes
            .iter()
            .flat_map(|n| {
                n.depends_on
                    .iter()
                    .map(move |d| (d.clone(), n.node_id.clone()))
            })
            .collect();
        serde_json::json!({
            "run": self.run.json(),
            "nodes": self.nodes.iter().map(|n| serde_json::json!({
                "node_id": n.node_id,
                "status": node_status_name(n.status()),
                "depends_on": n.depends_on,
                "depth": self.depth.get(&n.node_id),
                "blocked_by": n.blocked_by,
                "reused_from_run_id": render::non_empty(&n.reused_from_run_id),
                "overridden": overridden(&self.overrides, n),
            })).collect::<Vec<_>>(),
            "edges": edges.iter().map(|(a, b)| serde_json::json!({"from": a, "to": b})).collect::<Vec<_>>(),
        })
    }
}

/// One step of a run in full.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeTrace {
    pub report: NodeReport,
}

pub async fn node(clients: &Clients, run_id: &str, step: &str) -> CliResult<NodeTrace> {
    let (run, all) = run_with_nodes(clients, run_id).await?;
    let node = node_execution(clients, run_id, step).await?;
    let outputs = outputs_of(clients, &node).await?;
    let inputs = input_refs(&node, &producers(&all));
    Ok(NodeTrace {
        report: NodeReport::new(&run, node, inputs, outputs),
    })
}

impl Output for NodeTrace {
    fn text(&self, style: Style) -> String {
        let n = &self.report.node;
        let mut out = node_text(style, &self.report, 0);
        let field = |out: &mut String, k: &str, v: &str| {
            out.push_str(&format!("    {} {v}\n", style.dim(&format!("{k}:"))))
        };
        field(&mut out, "Run", &n.run_id);
        if !n.depends_on.is_empty() {
            field(&mut out, "Depends on", &n.depends_on.join(", "));
        }
        if let Some(t) = render::rfc3339(n.start_time.as_ref()) {
            field(&mut out, "Started", &t);
        }
        if let Some(t) = render::rfc3339(n.finish_time.as_ref()) {
            field(&mut out, "Finished", &t);
        }
        if !self.report.overridden && render::has_json(&n.config_json) {
            out.push_str(&format!(
                "    {}\n{}",
                style.dim("Config:"),
                render::indent(&super::debug::preview(&n.config_json, 0), "      ")
            ));
        }
        for a in &n.attempts {
            let took = render::elapsed_ms(a.start_time.as_ref(), a.finish_time.as_ref())
                .map(render::duration)
                .unwrap_or_else(|| "-".into());
            let result = if a.error.is_empty() {
                style.green("ok")
            } else {
                style.red(&a.error)
            };
            field(
                &mut out,
                &format!("Attempt {}", a.number),
                &format!("{took}  {result}"),
            );
        }
        out
    }

    fn json(&self) -> serde_json::Value {
        node_json(&self.report, 0)
    }
}

impl Output for Trace {
    fn text(&self, style: Style) -> String {
        match self {
            Trace::Timeline(t) => t.text(style),
            Trace::Graph(g) => g.text(style),
            Trace::Node(n) => n.text(style),
        }
    }

    fn json(&self) -> serde_json::Value {
        match self {
            Trace::Timeline(t) => t.json(),
            Trace::Graph(g) => g.json(),
            Trace::Node(n) => n.json(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use retake::v1::Run;

    fn at(ms: i64) -> Option<Timestamp> {
        Some(Timestamp {
            seconds: ms / 1000,
            nanos: ((ms % 1000) * 1_000_000) as i32,
        })
    }

    #[test]
    fn no_node_is_shown_starting_before_its_run() {
        let run = Run {
            id: "run_1".into(),
            start_time: at(10_000),
            finish_time: at(10_020),
            ..Default::default()
        };
        // Recorded a millisecond before the run's start, as older servers did
        // for the nodes a replay decided up front.
        let early = NodeExecution {
            node_id: "early".into(),
            status: NodeStatus::Completed as i32,
            start_time: at(9_999),
            finish_time: at(9_999),
            ..Default::default()
        };
        let later = NodeExecution {
            node_id: "later".into(),
            status: NodeStatus::Completed as i32,
            start_time: at(10_005),
            finish_time: at(10_020),
            latency_ms: 15,
            ..Default::default()
        };
        let timeline = Timeline {
            run_start_ms: millis(run.start_time.as_ref()),
            run: RunSummary::from_run(&run),
            nodes: vec![early, later],
            overrides: HashMap::new(),
        };
        let text = timeline.text(Style::PLAIN);
        assert!(!text.contains("-1 ms"), "{text}");
        let row = text.lines().find(|l| l.contains("early")).unwrap();
        assert!(row.starts_with("+0 ms "), "{text}");
        let json = timeline.json();
        assert_eq!(json["nodes"][0]["offset_ms"], 0);
        assert_eq!(json["nodes"][1]["offset_ms"], 5);
    }
}
