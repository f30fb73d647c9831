//! `retake cost RUN_ID`: tokens and cost per node and in total. Reused
//! nodes cost nothing in this run; they show what the run they came from
//! paid for the same result, which is what the reuse saved.

use super::RunSummary;
use super::fetch::{few_at_a_time, node_execution, run_with_nodes};
use crate::cli::CostArgs;
use crate::connect::Clients;
use crate::error::CliResult;
use crate::render::{self, Output, Style, node_status_name};
use retake::v1::{NodeExecution, NodeStatus, Usage};
use serde::Serialize;

/// Tokens and dollars.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct Spend {
    pub input_tokens: i64,
    pub output_tokens: i64,
    /// US dollars; 0 when no price is known.
    pub cost_usd: f64,
}

impl Spend {
    fn of(u: Option<&Usage>) -> Self {
        u.map(|u| Spend {
            input_tokens: u.input_tokens,
            output_tokens: u.output_tokens,
            cost_usd: u.cost_usd,
        })
        .unwrap_or_default()
    }

    fn add(&mut self, other: &Spend) {
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.cost_usd += other.cost_usd;
    }

    fn tokens(&self) -> i64 {
        self.input_tokens + self.output_tokens
    }

    /// `120 in / 40 out tokens, $0.0012`.
    pub fn describe(&self) -> String {
        format!(
            "{} in / {} out tokens, {}",
            self.input_tokens,
            self.output_tokens,
            usd(self.cost_usd)
        )
    }
}

/// `$0.0123`, or six decimals for amounts under a cent.
pub fn usd(x: f64) -> String {
    if x == 0.0 || x >= 0.01 {
        format!("${x:.4}")
    } else {
        format!("${x:.6}")
    }
}

/// What one node cost.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct NodeCost {
    pub node_id: String,
    pub node_execution_id: String,
    pub status: String,
    pub agent: Option<String>,
    pub model: Option<String>,
    /// Spent by this run: zero for reused nodes.
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cost_usd: f64,
    pub reused_from_run_id: Option<String>,
    pub reused_from_node_execution_id: Option<String>,
    /// For reused nodes: what producing the result cost the run it came
    /// from; null for other nodes, or when that run's node can't be read.
    pub saved: Option<Spend>,
    /// Tokens were used but no price is known, so the cost is understated.
    pub unpriced: bool,
}

/// Tokens and cost of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct CostReport {
    pub run: RunSummary,
    pub nodes: Vec<NodeCost>,
    pub total: Spend,
    pub saved: Spend,
}

/// `retake cost RUN_ID`.
pub async fn cost(clients: &Clients, args: &CostArgs) -> CliResult<CostReport> {
    let (run, nodes) = run_with_nodes(clients, &args.run_id).await?;
    let costs = few_at_a_time(nodes.into_iter().map(|n| node_cost(clients, n))).await;
    let mut total = Spend::default();
    let mut saved = Spend::default();
    for c in &costs {
        total.add(&Spend {
            input_tokens: c.input_tokens,
            output_tokens: c.output_tokens,
            cost_usd: c.cost_usd,
        });
        if let Some(s) = &c.saved {
            saved.add(s);
        }
    }
    Ok(CostReport {
        run: RunSummary::from_run(&run),
        nodes: costs,
        total,
        saved,
    })
}

async fn node_cost(clients: &Clients, n: NodeExecution) -> NodeCost {
    let non_empty = render::non_empty;
    let reused = n.status() == NodeStatus::Reused;
    let spent = if reused {
        Spend::default()
    } else {
        Spend::of(n.usage.as_ref())
    };
    let saved = if reused && !n.reused_from_run_id.is_empty() {
        let step = if n.reused_from_node_execution_id.is_empty() {
            n.node_id.clone()
        } else {
            n.reused_from_node_execution_id.clone()
        };
        // The source run may be gone; then nothing is known of what it paid.
        node_execution(clients, &n.reused_from_run_id, &step)
            .await
            .ok()
            .map(|src| Spend::of(src.usage.as_ref()))
    } else {
        None
    };
    NodeCost {
        node_id: n.node_id.clone(),
        node_execution_id: n.id.clone(),
        status: node_status_name(n.status()).to_string(),
        agent: non_empty(&n.agent),
        // An overridden node ran no model: its record only says "override".
        model: non_empty(&n.model).filter(|m| m != render::OVERRIDE_MODEL),
        input_tokens: spent.input_tokens,
        output_tokens: spent.output_tokens,
        cost_usd: spent.cost_usd,
        reused_from_run_id: non_empty(&n.reused_from_run_id),
        reused_from_node_execution_id: non_empty(&n.reused_from_node_execution_id),
        saved,
        unpriced: spent.tokens() > 0 && spent.cost_usd == 0.0,
    }
}

impl Output for CostReport {
    fn text(&self, style: Style) -> String {
        let mut out = self.run.headline(style);
        if let Some(origin) = self.run.fork_origin() {
            out.push_str(&format!("Forked from: {origin}\n"));
        }
        out.push('\n');
        if self.nodes.is_empty() {
            out.push_str("No nodes\n");
            return out;
        }
        let mut rows: Vec<Vec<String>> = self
            .nodes
            .iter()
            .map(|n| {
                let note = match (&n.reused_from_run_id, &n.saved) {
                    (Some(run), Some(s)) => format!("reused from {run}; saved {}", s.describe()),
                    (Some(run), None) => format!("reused from {run}"),
                    _ if n.unpriced => "no price known".to_string(),
                    _ => String::new(),
                };
                vec![
                    n.node_id.clone(),
                    n.status.clone(),
                    n.model.clone().unwrap_or_else(|| "-".into()),
                    n.input_tokens.to_string(),
                    n.output_tokens.to_string(),
                    usd(n.cost_usd),
                    style.dim(&note),
                ]
            })
            .collect();
        rows.push(vec![
            style.bold("TOTAL"),
            String::new(),
            String::new(),
            self.total.input_tokens.to_string(),
            self.total.output_tokens.to_string(),
            style.bold(&usd(self.total.cost_usd)),
            String::new(),
        ]);
        out.push_str(&render::table(
            style,
            &["NODE", "STATUS", "MODEL", "INPUT", "OUTPUT", "COST", "NOTE"],
            &rows,
        ));
        let reused = self
            .nodes
            .iter()
            .filter(|n| n.reused_from_run_id.is_some())
            .count();
        if reused > 0 {
            out.push_str(&format!(
                "\nSaved by reuse ({reused} node{}): {}\n",
                if reused == 1 { "" } else { "s" },
                self.saved.describe()
            ));
        }
        if self.nodes.iter().any(|n| n.unpriced) {
            out.push_str("Some nodes used tokens with no known price; their cost shows as $0.\n");
        }
        out
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "run": self.run.json(),
            "nodes": self.nodes,
            "total": self.total,
            "saved": self.saved,
            "reused_nodes": self.nodes.iter().filter(|n| n.reused_from_run_id.is_some()).count(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dollars_keep_small_amounts_visible() {
        assert_eq!(usd(0.0), "$0.0000");
        assert_eq!(usd(1.23456), "$1.2346");
        assert_eq!(usd(0.000123), "$0.000123");
    }
}
