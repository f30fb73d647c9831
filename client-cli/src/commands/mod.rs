//! One module per command family. Each command is a function that takes the
//! generated clients and returns a value that renders as text or JSON.

pub mod artifacts;
pub mod bundle;
pub mod cancel;
pub mod cost;
pub mod debug;
pub mod diff;
pub mod experiment;
pub mod fetch;
pub mod launch;
pub mod replay;
pub mod run;
pub mod runs;
pub mod trace;
pub mod validate;
pub mod waits;
pub mod watch;
pub mod workers;

pub use fetch::get_run;

/// A fresh request id for a StartRun or ReplayRun: a retry under it
/// returns the first call's run.
fn request_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// `call`, sent again (twice at most, after a short pause) while the
/// server is UNAVAILABLE: safe for calls that carry a request id.
async fn retried<T, F, Fut>(mut call: F) -> Result<T, tonic::Status>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, tonic::Status>>,
{
    let mut pause = std::time::Duration::from_millis(250);
    for _ in 0..2 {
        match call().await {
            Err(status) if status.code() == tonic::Code::Unavailable => {
                tokio::time::sleep(pause).await;
                pause *= 4;
            }
            other => return other,
        }
    }
    call().await
}

use crate::connect::{Clients, WaitPolicy};
use crate::error::{CliResult, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK};
use crate::follow::{
    EventSink, FollowEnd, Interrupt, Quiet, answer_commands, follow, follow_until,
};
use crate::render::{self, Output, Style, failure_origin_name, run_status_name};
use retake::v1::{CancelRunRequest, Run, RunStatus, WaitKind};
use serde::Serialize;
use std::time::Duration;

/// Why a run failed, as reported in JSON.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FailureSummary {
    pub node_id: Option<String>,
    pub message: String,
    pub origin: String,
}

/// The summary of a run that `run`, `replay`, `watch`, `cancel` and `runs`
/// print; its JSON form is documented in docs/cli-json.md.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RunSummary {
    pub run_id: String,
    pub workflow_name: String,
    pub status: String,
    pub total_nodes: i32,
    pub completed_nodes: i32,
    pub failed_nodes: i32,
    pub skipped_nodes: i32,
    pub reused_nodes: i32,
    /// Nodes that ran again in a replay; null for a fresh run.
    pub replayed_nodes: Option<i32>,
    pub forked_from: Option<String>,
    pub forked_at_step: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub failure: Option<FailureSummary>,
    #[serde(skip)]
    pub run_status: RunStatus,
    #[serde(skip)]
    pub duration_ms: Option<i64>,
}

impl RunSummary {
    pub fn from_run(run: &Run) -> Self {
        let counts = run.counts.unwrap_or_default();
        let replay = run.replay.as_ref().filter(|r| !r.forked_from.is_empty());
        let non_empty = render::non_empty;
        let failure = run
            .failure
            .as_ref()
            .filter(|f| !f.message.is_empty())
            .map(|f| FailureSummary {
                node_id: non_empty(&f.node_id),
                message: f.message.clone(),
                origin: failure_origin_name(f.origin()).to_string(),
            });
        Self {
            run_id: run.id.clone(),
            workflow_name: run.workflow_name.clone(),
            status: run_status_name(run.status()).to_string(),
            total_nodes: counts.total,
            completed_nodes: counts.completed,
            failed_nodes: counts.failed,
            skipped_nodes: counts.skipped,
            reused_nodes: counts.reused,
            replayed_nodes: replay.map(|r| r.replay_set.len() as i32),
            forked_from: replay.map(|r| r.forked_from.clone()),
            forked_at_step: replay.and_then(|r| non_empty(&r.forked_at_step)),
            started_at: render::rfc3339(run.start_time.as_ref()),
            finished_at: render::rfc3339(run.finish_time.as_ref()),
            failure,
            run_status: run.status(),
            duration_ms: render::elapsed_ms(run.start_time.as_ref(), run.finish_time.as_ref()),
        }
    }

    pub fn is_replay(&self) -> bool {
        self.forked_from.is_some()
    }

    /// `RUN at step 'STEP'`: the run this replay was forked from, and
    /// where; None for a fresh run.
    pub fn fork_origin(&self) -> Option<String> {
        let from = self.forked_from.as_ref()?;
        Some(match &self.forked_at_step {
            Some(step) => format!("{from} at step '{step}'"),
            None => from.clone(),
        })
    }

    /// `Run ID  WORKFLOW  STATUS`: the line `trace` and `cost` start with.
    pub fn headline(&self, style: Style) -> String {
        format!(
            "{} {}  {}  {}\n",
            style.bold("Run"),
            self.run_id,
            self.workflow_name,
            style.run_status(self.run_status)
        )
    }

    /// The block printed after a run or replay.
    pub fn text(&self, style: Style) -> String {
        let mut out = String::new();
        if let Some(origin) = self.fork_origin() {
            out.push_str(&format!("Replay Run ID: {}\n", self.run_id));
            out.push_str(&format!("Forked from: {origin}\n"));
        } else {
            out.push_str(&format!("Run ID: {}\n", self.run_id));
        }
        out.push_str(&format!("Workflow: {}\n", self.workflow_name));
        out.push_str(&format!("Status: {}\n", style.run_status(self.run_status)));
        out.push_str(&format!(
            "Nodes: {}/{} completed\n",
            self.completed_nodes, self.total_nodes
        ));
        if self.failed_nodes > 0 {
            out.push_str(&format!(
                "Failed: {}\n",
                style.red(&self.failed_nodes.to_string())
            ));
        }
        if self.skipped_nodes > 0 {
            out.push_str(&format!("Skipped: {}\n", self.skipped_nodes));
        }
        out
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}

/// How a started run or replay ended for this command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunEnd {
    /// Followed to the end.
    Finished,
    /// Not followed (`--detach`).
    Detached,
    /// Ctrl-C in embedded mode: the run was cancelled.
    Cancelled,
    /// Ctrl-C with a server: the run goes on without us.
    StillRunning,
    /// The run waits for a human and nobody here can answer (no terminal,
    /// or nothing to ask on).
    Waiting {
        node_id: String,
        /// Input or approval: which commands answer it.
        kind: WaitKind,
        /// Other waits are pending too, so the answer must name the node.
        several: bool,
        /// The run lives in this process's database, not on a server.
        embedded: bool,
    },
}

/// The result of `run`, `replay` and `watch`.
#[derive(Debug, Clone, PartialEq)]
pub struct RunOutcome {
    pub summary: RunSummary,
    pub end: RunEnd,
}

impl Output for RunOutcome {
    fn text(&self, style: Style) -> String {
        match self.end {
            RunEnd::Detached => format!("{}\n", self.summary.run_id),
            // Only the hint: the run is still going, so a summary would be stale.
            RunEnd::StillRunning => String::new(),
            _ => self.summary.text(style),
        }
    }

    fn json(&self) -> serde_json::Value {
        self.summary.json()
    }

    fn exit_code(&self) -> i32 {
        match self.end {
            RunEnd::Detached => EXIT_OK,
            RunEnd::Cancelled | RunEnd::StillRunning => EXIT_INTERRUPTED,
            RunEnd::Waiting { .. } => EXIT_FAILED,
            RunEnd::Finished => match self.summary.run_status {
                RunStatus::Failed | RunStatus::Cancelled => EXIT_FAILED,
                _ => EXIT_OK,
            },
        }
    }

    fn hint(&self) -> Option<String> {
        let id = &self.summary.run_id;
        match &self.end {
            RunEnd::Waiting {
                node_id,
                kind,
                several,
                embedded,
            } => {
                let answer = answer_commands("retake ", id, node_id, *kind, *several);
                Some(if *embedded {
                    format!(
                        "Run {id} waits for a human at node '{node_id}', and without a terminal nobody can answer here.\n\
                         It stays waiting in the database; answer with {answer}"
                    )
                } else {
                    format!(
                        "Run {id} waits for a human at node '{node_id}'; answer with {answer}, then follow it with 'retake watch {id}'"
                    )
                })
            }
            RunEnd::StillRunning => Some(format!(
                "Run {id} continues on the server; follow it with 'retake watch {id}'"
            )),
            RunEnd::Finished if self.summary.run_status == RunStatus::Failed => {
                Some(format!("Tip: run 'retake debug {id} --errors'"))
            }
            _ => None,
        }
    }
}

/// How long a cancelled embedded run gets to wind down before we exit anyway.
const CANCEL_GRACE: Duration = Duration::from_secs(10);

/// Follows a run just started (or replayed) to its end and summarises it.
/// On interrupt, an embedded run is cancelled (it could not outlive this
/// process anyway); a server's run is left running. At a human wait,
/// `clients.waits` says whether to follow on, ask on the terminal, or stop
/// and report the run as waiting.
pub async fn follow_to_end(
    clients: &Clients,
    run: &Run,
    after_sequence: i64,
    sink: &mut dyn EventSink,
    interrupt: &Interrupt,
) -> CliResult<RunOutcome> {
    let mut runs = clients.runs.clone();
    sink.on_start(run);
    let mut after = after_sequence;
    let end = loop {
        let stop_at_waits = clients.waits != WaitPolicy::Follow;
        match follow_until(&mut runs, &run.id, after, sink, interrupt, stop_at_waits).await? {
            FollowEnd::Finished { .. } => break RunEnd::Finished,
            FollowEnd::Waiting {
                last_sequence,
                node_id,
            } => {
                after = last_sequence;
                let waits = waits::pending(clients, &run.id).await?;
                let several = waits.len() > 1;
                let Some(wait) = waits.into_iter().find(|w| w.node_id == node_id) else {
                    continue; // answered already
                };
                if clients.waits == WaitPolicy::Stop {
                    sink.finish();
                    break RunEnd::Waiting {
                        node_id,
                        kind: wait.kind(),
                        several,
                        embedded: clients.embedded,
                    };
                }
                let asked = tokio::select! {
                    a = waits::ask_on_terminal(&wait, sink) => a?,
                    _ = interrupt.wait() => None,
                };
                match asked {
                    Some(request) => {
                        waits::resolve(clients, request).await?;
                    }
                    None => {
                        sink.finish();
                        break cancel_embedded(clients, &run.id, after, interrupt).await?;
                    }
                }
            }
            FollowEnd::Interrupted { last_sequence } if clients.embedded => {
                break cancel_embedded(clients, &run.id, last_sequence, interrupt).await?;
            }
            FollowEnd::Interrupted { .. } => break RunEnd::StillRunning,
        }
    };
    let run = get_run(clients, &run.id).await?;
    Ok(RunOutcome {
        summary: RunSummary::from_run(&run),
        end,
    })
}

/// Cancels an embedded run and lets its in-flight nodes record the
/// cancellation; a second Ctrl-C stops waiting for that.
async fn cancel_embedded(
    clients: &Clients,
    run_id: &str,
    after: i64,
    interrupt: &Interrupt,
) -> CliResult<RunEnd> {
    let mut runs = clients.runs.clone();
    runs.cancel_run(CancelRunRequest {
        run_id: run_id.to_string(),
    })
    .await?;
    let mut quiet = Quiet;
    let drain = follow(&mut runs, run_id, after, &mut quiet, interrupt);
    let _ = tokio::time::timeout(CANCEL_GRACE, drain).await;
    Ok(RunEnd::Cancelled)
}
