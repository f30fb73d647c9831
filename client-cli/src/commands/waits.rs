//! `retake input|approve|reject`: answering a node that waits for a human.

use super::fetch::returned;
use super::{RunOutcome, RunSummary};
use crate::cli::{ApproveArgs, InputArgs, RejectArgs};
use crate::connect::Clients;
use crate::error::{CliError, CliResult};
use crate::follow::{EventSink, Interrupt};
use crate::render::{Output, Style, run_status_name};
use retake::v1::{ListWaitsRequest, ResolveWaitRequest, Wait, WaitDecision, WaitKind};
use std::io::{BufRead, IsTerminal, Read, Write};

/// A wait that was answered, and the run after it.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    pub wait: Wait,
    pub answer: String,
    pub run: Option<RunSummary>,
    /// The run's last event before the answer, when the engine in this
    /// process drives the run: following it from there shows what the
    /// answer set off. None with a server.
    pub after_sequence: Option<i64>,
}

fn kind_name(k: WaitKind) -> &'static str {
    match k {
        WaitKind::Input => "input",
        WaitKind::Approval => "approval",
        WaitKind::Unspecified => "unknown",
    }
}

/// The run's pending waits.
pub async fn pending(clients: &Clients, run_id: &str) -> CliResult<Vec<Wait>> {
    let mut runs = clients.runs.clone();
    Ok(runs
        .list_waits(ListWaitsRequest {
            run_id: run_id.to_string(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .waits)
}

/// Sends the answer; the server picks the only pending wait when `node` is empty.
/// Without a server, the engine in this process takes the run over first
/// (see [`Clients::take_over`]), if it waits.
pub async fn resolve(clients: &Clients, request: ResolveWaitRequest) -> CliResult<Resolved> {
    let answer = match request.decision() {
        WaitDecision::Approve => "approved".to_string(),
        WaitDecision::Reject => "rejected".to_string(),
        WaitDecision::Unspecified => request.value.clone(),
    };
    let mut after_sequence = None;
    if clients.embedded {
        // A run without waits is left alone: answering it fails below.
        if let Some(wait) = pending(clients, &request.run_id).await?.first() {
            after_sequence = clients
                .take_over(&wait.run_id, false)
                .await?
                .map(|r| r.last_sequence);
        }
    }
    let mut runs = clients.runs.clone();
    let resp = runs.resolve_wait(request).await?.into_inner();
    let wait = returned(resp.wait, "wait")?;
    Ok(Resolved {
        wait,
        answer,
        run: resp.run.as_ref().map(RunSummary::from_run),
        after_sequence,
    })
}

/// An answer given to a run the engine in this process drives, and how
/// the run went on after it.
#[derive(Debug, Clone, PartialEq)]
pub struct Answered {
    pub resolved: Resolved,
    pub outcome: RunOutcome,
}

/// After an answer to a run this process drives (no server): follows the
/// run, as `retake run` does, until it ends or waits again.
pub async fn follow_on(
    clients: &Clients,
    resolved: Resolved,
    sink: &mut dyn EventSink,
    interrupt: &Interrupt,
) -> CliResult<Answered> {
    let run = super::get_run(clients, &resolved.wait.run_id).await?;
    let after = resolved.after_sequence.unwrap_or(0);
    let outcome = super::follow_to_end(clients, &run, after, sink, interrupt).await?;
    Ok(Answered { resolved, outcome })
}

impl Output for Answered {
    /// The run's summary, as `retake run` prints it; the answer was
    /// shown before the run's events.
    fn text(&self, style: Style) -> String {
        self.outcome.text(style)
    }

    /// The answer, with the run's status at the end and its summary.
    fn json(&self) -> serde_json::Value {
        let mut json = self.resolved.json();
        json["run_status"] = serde_json::json!(self.outcome.summary.status);
        json["run"] = self.outcome.summary.json();
        json
    }

    fn exit_code(&self) -> i32 {
        self.outcome.exit_code()
    }

    fn hint(&self) -> Option<String> {
        self.outcome.hint()
    }
}

/// `retake input`: the value comes from `--value`, else a prompt on a
/// terminal, else all of stdin.
pub async fn input(clients: &Clients, args: &InputArgs) -> CliResult<Resolved> {
    let value = match &args.value {
        Some(v) => v.clone(),
        None if std::io::stdin().is_terminal() => {
            let waits = pending(clients, &args.run_id).await?;
            let wait = waits
                .iter()
                .find(|w| args.node.as_deref().is_none_or(|n| w.node_id == n));
            let prompt = match wait {
                Some(w) if !w.prompt.is_empty() => format!("{} ({}): ", w.prompt, w.node_id),
                Some(w) => format!("{}: ", w.node_id),
                None => "Value: ".to_string(),
            };
            read_line(&prompt)?
        }
        None => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|e| CliError::usage(format!("cannot read the value from stdin: {e}")))?;
            text.strip_suffix('\n')
                .map(|t| t.strip_suffix('\r').unwrap_or(t))
                .unwrap_or(&text)
                .to_string()
        }
    };
    resolve(
        clients,
        ResolveWaitRequest {
            run_id: args.run_id.clone(),
            node_id: args.node.clone().unwrap_or_default(),
            value,
            ..Default::default()
        },
    )
    .await
}

/// Shows `prompt` on stderr and reads one line from the terminal.
pub fn read_line(prompt: &str) -> CliResult<String> {
    eprint!("{prompt}");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    let n = std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| CliError::usage(format!("cannot read from the terminal: {e}")))?;
    if n == 0 {
        return Err(CliError::usage("no answer given"));
    }
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

/// Asks on the terminal how to answer `wait`; None when the user gave up
/// (end of input). The live display is hidden meanwhile.
pub async fn ask_on_terminal(
    wait: &Wait,
    sink: &mut dyn EventSink,
) -> CliResult<Option<ResolveWaitRequest>> {
    sink.pause();
    // The terminal read blocks, so it runs on its own thread.
    let (tx, rx) = tokio::sync::oneshot::channel();
    let asking = wait.clone();
    std::thread::spawn(move || {
        let _ = tx.send(ask_blocking(&asking));
    });
    let answer = rx.await.unwrap_or(Ok(None));
    sink.resume();
    answer
}

fn ask_blocking(wait: &Wait) -> CliResult<Option<ResolveWaitRequest>> {
    let base = ResolveWaitRequest {
        run_id: wait.run_id.clone(),
        node_id: wait.node_id.clone(),
        ..Default::default()
    };
    eprintln!();
    if !wait.prompt.is_empty() {
        eprintln!("  {} asks: {}", wait.node_id, wait.prompt);
    }
    if crate::render::has_json(&wait.context_json) {
        eprintln!(
            "{}",
            crate::render::indent(&super::debug::preview(&wait.context_json, 2000), "    ")
        );
    }
    match wait.kind() {
        WaitKind::Approval => loop {
            let line = match read_line("  Approve? [y/n] ") {
                Ok(l) => l,
                Err(_) => return Ok(None),
            };
            let decision = match line.trim().to_ascii_lowercase().as_str() {
                "y" | "yes" | "approve" => WaitDecision::Approve,
                "n" | "no" | "reject" => WaitDecision::Reject,
                _ => continue,
            };
            let feedback = read_line("  Feedback (optional): ").unwrap_or_default();
            return Ok(Some(ResolveWaitRequest {
                decision: decision as i32,
                feedback,
                ..base
            }));
        },
        _ => match read_line(&format!("  {}: ", wait.node_id)) {
            Ok(value) => Ok(Some(ResolveWaitRequest { value, ..base })),
            Err(_) => Ok(None),
        },
    }
}

/// `retake approve`.
pub async fn approve(clients: &Clients, args: &ApproveArgs) -> CliResult<Resolved> {
    decide(
        clients,
        &args.run_id,
        args.node.as_deref(),
        WaitDecision::Approve,
        args.feedback.as_deref(),
    )
    .await
}

/// `retake reject`.
pub async fn reject(clients: &Clients, args: &RejectArgs) -> CliResult<Resolved> {
    decide(
        clients,
        &args.run_id,
        args.node.as_deref(),
        WaitDecision::Reject,
        args.feedback.as_deref(),
    )
    .await
}

async fn decide(
    clients: &Clients,
    run_id: &str,
    node: Option<&str>,
    decision: WaitDecision,
    feedback: Option<&str>,
) -> CliResult<Resolved> {
    resolve(
        clients,
        ResolveWaitRequest {
            run_id: run_id.to_string(),
            node_id: node.unwrap_or_default().to_string(),
            decision: decision as i32,
            feedback: feedback.unwrap_or_default().to_string(),
            ..Default::default()
        },
    )
    .await
}

impl Resolved {
    /// The line saying which node was answered how.
    pub fn headline(&self, style: Style) -> String {
        let what = match self.wait.kind() {
            WaitKind::Approval if self.answer == "approved" => style.green("approved"),
            WaitKind::Approval => style.red("rejected"),
            _ => "answered".to_string(),
        };
        format!(
            "Node '{}' of run {} {what}\n",
            self.wait.node_id, self.wait.run_id
        )
    }
}

impl Output for Resolved {
    fn text(&self, style: Style) -> String {
        let mut out = self.headline(style);
        if let Some(run) = &self.run {
            out.push_str(&format!(
                "Run status: {}\n",
                style.run_status(run.run_status)
            ));
        }
        out
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "run_id": self.wait.run_id,
            "node_id": self.wait.node_id,
            "node_execution_id": self.wait.node_execution_id,
            "kind": kind_name(self.wait.kind()),
            "answer": self.answer,
            "run_status": self.run.as_ref().map(|r| run_status_name(r.run_status)),
            "run": null,
        })
    }
}
