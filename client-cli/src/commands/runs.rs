//! `retake runs`: recent runs, newest first, as a table or a JSON array.

use super::RunSummary;
use super::fetch::pages;
use crate::cli::{DeleteArgs, RunsArgs, StatusFilter};
use crate::connect::Clients;
use crate::error::CliResult;
use crate::render::{self, Output, Style};
use retake::v1::{DeleteRunRequest, ListRunsRequest, RunStatus};

/// The runs that matched, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct RunList {
    pub runs: Vec<RunSummary>,
}

impl From<StatusFilter> for RunStatus {
    fn from(s: StatusFilter) -> Self {
        match s {
            StatusFilter::Pending => RunStatus::Pending,
            StatusFilter::Running => RunStatus::Running,
            StatusFilter::Waiting => RunStatus::Waiting,
            StatusFilter::Completed => RunStatus::Completed,
            StatusFilter::Failed => RunStatus::Failed,
            StatusFilter::Cancelled => RunStatus::Cancelled,
        }
    }
}

/// `retake runs`: lists up to `limit` runs, paging through the server as needed.
pub async fn list(clients: &Clients, args: &RunsArgs) -> CliResult<RunList> {
    let status = args.status.map(RunStatus::from).unwrap_or_default();
    let runs = pages(args.limit as usize, |page_size, page_token| {
        let mut client = clients.runs.clone();
        let request = ListRunsRequest {
            page_size,
            page_token,
            status: status as i32,
            workflow_name: args.workflow.clone().unwrap_or_default(),
            forked_from: args.forked_from.clone().unwrap_or_default(),
            filter: args.filter.clone().unwrap_or_default(),
            order_by: if args.oldest_first {
                "create_time asc".into()
            } else {
                String::new()
            },
        };
        async move {
            let resp = client.list_runs(request).await?.into_inner();
            Ok((resp.runs, resp.next_page_token))
        }
    })
    .await?;
    Ok(RunList {
        runs: runs.iter().map(RunSummary::from_run).collect(),
    })
}

impl Output for RunList {
    fn text(&self, style: Style) -> String {
        if self.runs.is_empty() {
            return "No runs found\n".to_string();
        }
        // Run ids are time-ordered, so only whole ids tell runs apart.
        let any_fork = self.runs.iter().any(|r| r.forked_from.is_some());
        let rows: Vec<Vec<String>> = self
            .runs
            .iter()
            .map(|r| {
                let mut nodes = format!("{}/{}", r.completed_nodes, r.total_nodes);
                if r.failed_nodes > 0 {
                    nodes.push_str(&format!(" ({} failed)", r.failed_nodes));
                }
                let mut row = vec![
                    r.run_id.clone(),
                    r.workflow_name.clone(),
                    style.run_status(r.run_status),
                    nodes,
                    r.started_at
                        .as_deref()
                        .map(|s| {
                            if s.len() >= 19 {
                                s[..19].replace('T', " ")
                            } else {
                                s.to_string()
                            }
                        })
                        .unwrap_or_else(|| "-".into()),
                    r.duration_ms
                        .map(render::duration)
                        .unwrap_or_else(|| "-".into()),
                ];
                if any_fork {
                    row.push(r.forked_from.clone().unwrap_or_else(|| "-".into()));
                }
                row
            })
            .collect();
        let mut header = vec![
            "RUN ID",
            "WORKFLOW",
            "STATUS",
            "NODES",
            "STARTED (UTC)",
            "DURATION",
        ];
        if any_fork {
            header.push("FORKED FROM");
        }
        render::table(style, &header, &rows)
    }

    fn json(&self) -> serde_json::Value {
        serde_json::Value::Array(self.runs.iter().map(RunSummary::json).collect())
    }
}

/// What `retake runs delete` removed.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Deleted {
    pub runs: Vec<String>,
    pub experiments: Vec<String>,
    pub contents: i64,
    pub content_bytes: i64,
}

/// `retake runs delete RUN...`: each run in turn (with `--cascade`, what
/// uses it too). A run already deleted by an earlier one's cascade is
/// skipped; the first refusal stops, with what was deleted before it kept.
pub async fn delete(clients: &Clients, args: &DeleteArgs) -> CliResult<Deleted> {
    let mut out = Deleted::default();
    for run_id in &args.run_ids {
        if out.runs.iter().any(|r| r == run_id) {
            continue;
        }
        let mut runs = clients.runs.clone();
        let resp = runs
            .delete_run(DeleteRunRequest {
                run_id: run_id.clone(),
                cascade: args.cascade,
            })
            .await?
            .into_inner();
        out.runs.extend(resp.deleted_run_ids);
        out.experiments.extend(resp.deleted_experiment_ids);
        out.contents += resp.deleted_contents;
        out.content_bytes += resp.deleted_content_bytes;
    }
    Ok(out)
}

impl Output for Deleted {
    fn text(&self, _style: Style) -> String {
        let mut text = String::new();
        for run in &self.runs {
            text.push_str(&format!("Deleted run {run}\n"));
        }
        for experiment in &self.experiments {
            text.push_str(&format!("Deleted experiment {experiment}\n"));
        }
        text.push_str(&format!(
            "Removed {} stored content{} ({} bytes) no run names any more\n",
            self.contents,
            if self.contents == 1 { "" } else { "s" },
            self.content_bytes
        ));
        text
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "deleted_run_ids": self.runs,
            "deleted_experiment_ids": self.experiments,
            "deleted_contents": self.contents,
            "deleted_content_bytes": self.content_bytes,
        })
    }
}
