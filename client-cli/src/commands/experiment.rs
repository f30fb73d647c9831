//! `retake experiment`: one change replayed over many runs (`run`), the
//! comparison (`show`), the experiments there are (`list`), and stopping
//! one (`cancel`). The change takes the flags of `retake replay`, parsed
//! and checked by the same code.

use super::cost::usd;
use super::replay;
use crate::cli::{ExperimentIdArgs, ExperimentRunArgs, ReplayArgs};
use crate::connect::Clients;
use crate::error::{CliError, CliResult, EXIT_INTERRUPTED};
use crate::follow::Interrupt;
use crate::render::{self, Output, Style, run_status_name};
use retake::v1::{
    CancelExperimentRequest, Experiment, ExperimentChange, ExperimentComparison,
    ExperimentItemStatus, ExperimentStatus, GetExperimentRequest, ListExperimentsRequest,
    RunSelection, RunStatus, StartExperimentRequest, WatchExperimentRequest,
};

fn status_name(s: ExperimentStatus) -> &'static str {
    match s {
        ExperimentStatus::Running => "running",
        ExperimentStatus::Completed => "completed",
        ExperimentStatus::Failed => "failed",
        ExperimentStatus::Cancelled => "cancelled",
        ExperimentStatus::Unspecified => "unspecified",
    }
}

fn item_status_name(s: ExperimentItemStatus) -> &'static str {
    match s {
        ExperimentItemStatus::Pending => "pending",
        ExperimentItemStatus::Running => "running",
        ExperimentItemStatus::Completed => "completed",
        ExperimentItemStatus::Failed => "failed",
        ExperimentItemStatus::Cancelled => "cancelled",
        ExperimentItemStatus::Skipped => "skipped",
        ExperimentItemStatus::Unspecified => "unspecified",
    }
}

/// The experiment's request from the flags: the selection, and the
/// change as `retake replay` reads the same flags.
pub fn request(args: &ExperimentRunArgs) -> CliResult<StartExperimentRequest> {
    let change = replay::prepare(&ReplayArgs {
        change: args.change.clone(),
        workflow: args.workflow_file.clone(),
        ..ReplayArgs::default()
    })?
    .request;
    Ok(StartExperimentRequest {
        name: args.name.clone().unwrap_or_default(),
        selection: Some(RunSelection {
            run_ids: args.runs.clone(),
            workflow_name: args.workflow_name.clone().unwrap_or_default(),
            status: args.status.map_or(RunStatus::Unspecified, RunStatus::from) as i32,
            limit: args.last.unwrap_or(0) as i32,
            ..Default::default()
        }),
        change: Some(ExperimentChange {
            workflow: change.workflow,
            files: change.files,
            from_node: change.from_node,
            swaps: change.swaps,
            overrides: change.overrides,
            variables: change.variables,
            allow_drift: change.allow_drift,
        }),
        concurrency: args.concurrency.unwrap_or(0) as i32,
        score_node: args.score.clone().unwrap_or_default(),
    })
}

/// An experiment, and its comparison once asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct Shown {
    pub experiment: Experiment,
    pub comparison: Option<ExperimentComparison>,
    /// Following it was stopped with Ctrl-C: without a server the
    /// experiment was cancelled, with one it goes on there.
    pub interrupted: bool,
}

impl Shown {
    fn of(experiment: Experiment) -> Self {
        Self {
            experiment,
            comparison: None,
            interrupted: false,
        }
    }
}

/// `--detach` leaves the experiment to whoever runs it: only a server can.
pub fn check_detach(detach: bool, embedded: bool) -> CliResult<()> {
    if detach && embedded {
        return Err(CliError::usage(
            "--detach needs a server (--server): without one the experiment's replays run in this process",
        ));
    }
    Ok(())
}

/// `retake experiment run`: the request from the flags, then [`start`].
pub async fn run(
    clients: &Clients,
    args: &ExperimentRunArgs,
    json: bool,
    interrupt: &Interrupt,
) -> CliResult<Shown> {
    start(clients, request(args)?, args.detach, json, interrupt).await
}

/// Starts the experiment and, unless `detach`, follows it, printing each
/// replay as it ends (to stderr when the result is JSON), then shows the
/// comparison. An interrupt stops following: without a server the
/// experiment is cancelled (its replays run in this process), with one
/// it goes on there.
pub async fn start(
    clients: &Clients,
    request: StartExperimentRequest,
    detach: bool,
    json: bool,
    interrupt: &Interrupt,
) -> CliResult<Shown> {
    check_detach(detach, clients.embedded)?;
    let mut client = clients.experiments.clone();
    let started = client
        .start_experiment(request)
        .await?
        .into_inner()
        .experiment
        .ok_or_else(|| CliError::failed("the server returned no experiment"))?;
    let total = started.progress.map_or(0, |p| p.total);
    let line = format!("Experiment {} started: {total} runs to replay", started.id);
    if json {
        eprintln!("{line}");
    } else {
        println!("{line}");
    }
    if detach {
        return Ok(Shown::of(started));
    }
    let mut stream = client
        .watch_experiment(WatchExperimentRequest {
            experiment_id: started.id.clone(),
        })
        .await?
        .into_inner();
    let mut seen = vec![ExperimentItemStatus::Pending; started.items.len()];
    // Listening once, before the loop: a Ctrl-C that comes while a message
    // is being printed would be lost to a listener made anew each turn.
    let interrupt = interrupt.wait();
    tokio::pin!(interrupt);
    loop {
        let msg = tokio::select! {
            msg = stream.message() => msg?,
            _ = &mut interrupt => return interrupted(clients, &started.id).await,
        };
        let Some(msg) = msg else { break };
        let Some(e) = msg.experiment else { continue };
        for (i, item) in e.items.iter().enumerate() {
            let status = item.status();
            if seen.get(i) == Some(&status) || !is_final(status) {
                continue;
            }
            if let Some(s) = seen.get_mut(i) {
                *s = status;
            }
            let mut line = format!("  {} {}", item_status_name(status), item.source_run_id);
            if !item.replay_run_id.is_empty() {
                line.push_str(&format!(" → {}", item.replay_run_id));
            }
            if !item.reason.is_empty() {
                line.push_str(&format!(": {}", render::truncate(&item.reason, 200)));
            }
            eprintln!("{line}");
        }
    }
    show(clients, &started.id).await
}

/// After Ctrl-C: the embedded engine's experiment is cancelled (nothing
/// would drive it once this process ends); a server's goes on.
async fn interrupted(clients: &Clients, id: &str) -> CliResult<Shown> {
    let experiment = if clients.embedded {
        eprintln!("Cancelling experiment {id}…");
        let mut client = clients.experiments.clone();
        let cancelled = client
            .cancel_experiment(CancelExperimentRequest {
                experiment_id: id.to_string(),
            })
            .await;
        match cancelled {
            Ok(resp) => resp.into_inner().experiment,
            // It finished meanwhile.
            Err(status) if status.code() == tonic::Code::FailedPrecondition => None,
            Err(status) => return Err(status.into()),
        }
    } else {
        None
    };
    let mut shown = match experiment {
        Some(experiment) => Shown::of(experiment),
        None => show(clients, id).await?,
    };
    shown.interrupted = true;
    Ok(shown)
}

fn is_final(s: ExperimentItemStatus) -> bool {
    !matches!(
        s,
        ExperimentItemStatus::Pending
            | ExperimentItemStatus::Running
            | ExperimentItemStatus::Unspecified
    )
}

/// `retake experiment show`.
pub async fn show(clients: &Clients, id: &str) -> CliResult<Shown> {
    let got = clients
        .experiments
        .clone()
        .get_experiment(GetExperimentRequest {
            experiment_id: id.to_string(),
            include_comparison: true,
        })
        .await?
        .into_inner();
    Ok(Shown {
        experiment: got
            .experiment
            .ok_or_else(|| CliError::failed("the server returned no experiment"))?,
        comparison: got.comparison,
        interrupted: false,
    })
}

/// `retake experiment cancel`. Without a server, an experiment another
/// process left running (interrupted, killed) is taken over by the engine
/// in this process and cancelled there, its replays without starting a
/// node.
pub async fn cancel(clients: &Clients, args: &ExperimentIdArgs) -> CliResult<Shown> {
    if let Some((id, true)) = clients
        .take_over_experiment(&args.experiment_id, true)
        .await?
    {
        let mut shown = show(clients, &id).await?;
        shown.comparison = None;
        return Ok(shown);
    }
    let experiment = clients
        .experiments
        .clone()
        .cancel_experiment(CancelExperimentRequest {
            experiment_id: args.experiment_id.clone(),
        })
        .await?
        .into_inner()
        .experiment
        .ok_or_else(|| CliError::failed("the server returned no experiment"))?;
    Ok(Shown::of(experiment))
}

fn signed(n: i64) -> String {
    if n > 0 {
        format!("+{n}")
    } else {
        n.to_string()
    }
}

/// A change in dollars: `+$0.0120`, `-$0.0030`.
fn signed_usd(x: f64) -> String {
    if x < 0.0 {
        format!("-{}", usd(-x))
    } else {
        format!("+{}", usd(x))
    }
}

/// A change in time: `+1.2 s`, `-350 ms`.
fn signed_duration(ms: i64) -> String {
    let sign = if ms < 0 { "-" } else { "+" };
    format!("{sign}{}", render::duration(ms.abs()))
}

fn change_text(c: &ExperimentChange) -> String {
    let mut parts = Vec::new();
    if !c.from_node.is_empty() {
        parts.push(format!("from {}", c.from_node));
    }
    for s in &c.swaps {
        parts.push(format!("{} → {}", s.node_id, s.agent));
    }
    for o in &c.overrides {
        let out = if o.output.is_empty() {
            String::new()
        } else {
            format!(".{}", o.output)
        };
        parts.push(format!(
            "{}{out} = {}",
            o.selector,
            render::truncate(&o.value, 40)
        ));
    }
    for (k, v) in &c.variables {
        parts.push(format!("var {k} = {}", render::truncate(v, 40)));
    }
    if !c.workflow.is_empty() {
        parts.push("another workflow".into());
    }
    if c.allow_drift {
        parts.push("drift allowed".into());
    }
    if parts.is_empty() {
        "none (each run replayed as it was)".into()
    } else {
        parts.join("; ")
    }
}

impl Output for Shown {
    fn text(&self, style: Style) -> String {
        let e = &self.experiment;
        let p = e.progress.unwrap_or_default();
        let mut out = format!(
            "{} {}{}  {}\n",
            style.bold("Experiment"),
            e.id,
            if e.name.is_empty() {
                String::new()
            } else {
                format!(" \"{}\"", e.name)
            },
            status_name(e.status()),
        );
        out.push_str(&format!(
            "Runs: {} — {} completed, {} failed, {} skipped, {} cancelled, {} to go\n",
            p.total,
            p.completed,
            p.failed,
            p.skipped,
            p.cancelled,
            p.pending + p.running
        ));
        if let Some(c) = &e.change {
            out.push_str(&format!("Change: {}\n", change_text(c)));
        }
        for item in e
            .items
            .iter()
            .filter(|i| i.status() == ExperimentItemStatus::Skipped)
        {
            out.push_str(&format!(
                "  skipped {}: {}\n",
                item.source_run_id,
                render::truncate(&item.reason, 200)
            ));
        }
        let Some(c) = &self.comparison else {
            return out;
        };
        if c.pairs.is_empty() {
            out.push_str("\nNo replay has finished yet.\n");
            return out;
        }
        out.push('\n');
        let rows: Vec<Vec<String>> = c
            .nodes
            .iter()
            .map(|n| {
                vec![
                    n.node_id.clone(),
                    n.changed.to_string(),
                    n.unchanged.to_string(),
                    n.failed.to_string(),
                    n.newly_failed.to_string(),
                    n.newly_succeeded.to_string(),
                    n.reused.to_string(),
                ]
            })
            .collect();
        out.push_str(&render::table(
            style,
            &[
                "NODE",
                "CHANGED",
                "UNCHANGED",
                "FAILED",
                "NEWLY FAILED",
                "NEWLY OK",
                "REUSED",
            ],
            &rows,
        ));
        out.push('\n');
        let scored = c.score.is_some();
        let pairs: Vec<Vec<String>> = c
            .pairs
            .iter()
            .map(|pair| {
                let mut row = vec![
                    pair.source_run_id.clone(),
                    pair.replay_run_id.clone(),
                    format!(
                        "{} → {}",
                        run_status_name(pair.status_before()),
                        run_status_name(pair.status_after())
                    ),
                    pair.nodes_changed.to_string(),
                    if pair.first_divergence.is_empty() {
                        "-".into()
                    } else {
                        pair.first_divergence.clone()
                    },
                ];
                if scored {
                    row.push(match (pair.score_before, pair.score_after) {
                        (Some(b), Some(a)) => format!("{b} → {a}"),
                        _ => "-".into(),
                    });
                }
                row
            })
            .collect();
        let headers = [
            "SOURCE",
            "REPLAY",
            "STATUS",
            "CHANGED",
            "FIRST DIVERGENCE",
            "SCORE",
        ];
        let columns = if scored { 6 } else { 5 };
        out.push_str(&render::table(style, &headers[..columns], &pairs));
        let t = c.totals.unwrap_or_default();
        out.push('\n');
        out.push_str(&format!(
            "Tokens: {} → {} ({})\n",
            t.tokens_before,
            t.tokens_after,
            signed(t.tokens_after - t.tokens_before)
        ));
        out.push_str(&format!(
            "Cost: {} → {} ({})\n",
            usd(t.cost_usd_before),
            usd(t.cost_usd_after),
            signed_usd(t.cost_usd_after - t.cost_usd_before)
        ));
        out.push_str(&format!(
            "Latency: {} → {} ({})\n",
            render::duration(t.latency_ms_before),
            render::duration(t.latency_ms_after),
            signed_duration(t.latency_ms_after - t.latency_ms_before)
        ));
        out.push_str(&format!(
            "Reused: {} nodes, which saved {} tokens, {} and {}\n",
            t.reused_nodes,
            t.tokens_saved,
            usd(t.cost_usd_saved),
            render::duration(t.latency_ms_saved)
        ));
        if let Some(s) = &c.score {
            out.push_str(&format!(
                "Score ({}): mean {:.4} → {:.4} ({:+.4}) over {} pairs\n",
                s.node_id, s.mean_before, s.mean_after, s.delta, s.pairs
            ));
        }
        out
    }

    fn json(&self) -> serde_json::Value {
        let e = &self.experiment;
        let p = e.progress.unwrap_or_default();
        let mut out = serde_json::json!({
            "experiment_id": e.id,
            "name": render::empty_null(&e.name),
            "status": status_name(e.status()),
            "created_at": render::rfc3339(e.create_time.as_ref()),
            "finished_at": render::rfc3339(e.finish_time.as_ref()),
            "concurrency": e.concurrency,
            "score_node": render::empty_null(&e.score_node),
            "progress": {
                "total": p.total, "pending": p.pending, "running": p.running, "completed": p.completed,
                "failed": p.failed, "cancelled": p.cancelled, "skipped": p.skipped,
            },
            "items": e.items.iter().map(|i| serde_json::json!({
                "source_run_id": i.source_run_id,
                "replay_run_id": render::empty_null(&i.replay_run_id),
                "status": item_status_name(i.status()),
                "reason": render::empty_null(&i.reason),
            })).collect::<Vec<_>>(),
        });
        if let Some(c) = &self.comparison {
            let t = c.totals.unwrap_or_default();
            out["comparison"] = serde_json::json!({
                "nodes": c.nodes.iter().map(|n| serde_json::json!({
                    "node_id": n.node_id, "changed": n.changed, "unchanged": n.unchanged,
                    "failed": n.failed, "newly_failed": n.newly_failed,
                    "newly_succeeded": n.newly_succeeded, "reused": n.reused,
                })).collect::<Vec<_>>(),
                "pairs": c.pairs.iter().map(|pair| serde_json::json!({
                    "source_run_id": pair.source_run_id,
                    "replay_run_id": pair.replay_run_id,
                    "status_before": run_status_name(pair.status_before()),
                    "status_after": run_status_name(pair.status_after()),
                    "nodes_changed": pair.nodes_changed,
                    "first_divergence": render::empty_null(&pair.first_divergence),
                    "score_before": pair.score_before,
                    "score_after": pair.score_after,
                    "changed_nodes": pair.changed_nodes,
                    "failed_nodes": pair.failed_nodes,
                    "reused_nodes": pair.reused_nodes,
                })).collect::<Vec<_>>(),
                "totals": {
                    "tokens_before": t.tokens_before, "tokens_after": t.tokens_after,
                    "cost_usd_before": t.cost_usd_before, "cost_usd_after": t.cost_usd_after,
                    "latency_ms_before": t.latency_ms_before, "latency_ms_after": t.latency_ms_after,
                    "reused_nodes": t.reused_nodes, "tokens_saved": t.tokens_saved,
                    "cost_usd_saved": t.cost_usd_saved, "latency_ms_saved": t.latency_ms_saved,
                },
                "score": c.score.as_ref().map(|s| serde_json::json!({
                    "node_id": s.node_id, "pairs": s.pairs,
                    "mean_before": s.mean_before, "mean_after": s.mean_after,
                    "delta": s.delta,
                })),
            });
        }
        out
    }

    /// 1 when a replay failed (or the experiment was cancelled); 130
    /// after Ctrl-C.
    fn exit_code(&self) -> i32 {
        if self.interrupted {
            return EXIT_INTERRUPTED;
        }
        match self.experiment.status() {
            ExperimentStatus::Failed | ExperimentStatus::Cancelled => 1,
            _ => 0,
        }
    }

    fn hint(&self) -> Option<String> {
        let e = &self.experiment;
        (self.interrupted && e.status() == ExperimentStatus::Running).then(|| {
            format!(
                "Experiment {} continues on the server; see it with 'retake experiment show {}'",
                e.id, e.id
            )
        })
    }
}

/// `retake experiment list`.
#[derive(Debug, Clone, PartialEq)]
pub struct Listed {
    pub experiments: Vec<Experiment>,
}

pub async fn list(clients: &Clients) -> CliResult<Listed> {
    let resp = clients
        .experiments
        .clone()
        .list_experiments(ListExperimentsRequest::default())
        .await?
        .into_inner();
    Ok(Listed {
        experiments: resp.experiments,
    })
}

impl Output for Listed {
    fn text(&self, style: Style) -> String {
        if self.experiments.is_empty() {
            return "No experiments yet\n".into();
        }
        let rows: Vec<Vec<String>> = self
            .experiments
            .iter()
            .map(|e| {
                let p = e.progress.unwrap_or_default();
                vec![
                    e.id.clone(),
                    e.name.clone(),
                    status_name(e.status()).to_string(),
                    format!(
                        "{}/{}",
                        p.completed + p.failed + p.skipped + p.cancelled,
                        p.total
                    ),
                    render::short_time(e.create_time.as_ref()),
                ]
            })
            .collect();
        render::table(
            style,
            &["EXPERIMENT", "NAME", "STATUS", "DONE", "CREATED"],
            &rows,
        )
    }

    fn json(&self) -> serde_json::Value {
        serde_json::Value::Array(
            self.experiments
                .iter()
                .map(|e| Shown::of(e.clone()).json())
                .collect(),
        )
    }
}
