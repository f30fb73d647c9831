//! `retake replay RUN_ID`: fork a finished run from a step, with swapped
//! agents, overridden outputs or changed variables, and follow the new run.

use super::{RunEnd, RunOutcome, RunSummary, check_detach, follow_to_end};
use crate::cli::ReplayArgs;
use crate::connect::Clients;
use crate::error::{CliError, CliResult};
use crate::follow::{EventSink, Interrupt};
use crate::parse::{load_workflow, parse_agent_swap, parse_override, parse_vars};
use retake::v1::{ReplayRunRequest, Run};

/// Builds the request from the flags. Only the form of swaps and overrides
/// is checked here; whether their nodes exist is the server's call.
pub fn prepare(args: &ReplayArgs) -> CliResult<ReplayRunRequest> {
    let swaps = args
        .agents
        .iter()
        .map(|a| parse_agent_swap(a))
        .collect::<CliResult<Vec<_>>>()?;
    let overrides = args
        .overrides
        .iter()
        .map(|o| parse_override(o))
        .collect::<CliResult<Vec<_>>>()?;
    let variables = parse_vars(&args.vars)?;
    let (workflow, files) = match &args.workflow {
        Some(path) => {
            let wf = load_workflow(path)?;
            (wf.content, wf.files)
        }
        None => Default::default(),
    };
    Ok(ReplayRunRequest {
        run_id: args.run_id.clone(),
        workflow,
        files,
        from: args.from.clone().unwrap_or_default(),
        swaps,
        overrides,
        variables,
        allow_drift: args.allow_drift,
    })
}

/// Asks the server for the replay and returns the new run.
pub async fn start(clients: &Clients, request: ReplayRunRequest) -> CliResult<Run> {
    let mut runs = clients.runs.clone();
    let resp = runs.replay_run(request).await?;
    resp.into_inner()
        .run
        .ok_or_else(|| CliError::failed("the server returned no run"))
}

/// `retake replay`: starts the replay and, unless detached, streams its
/// events into `sink` until it ends.
pub async fn replay(
    clients: &Clients,
    args: &ReplayArgs,
    sink: &mut dyn EventSink,
    interrupt: &Interrupt,
) -> CliResult<RunOutcome> {
    check_detach(args.detach, clients.embedded)?;
    let request = prepare(args)?;
    replay_prepared(clients, request, args.detach, sink, interrupt).await
}

/// `replay` with the request already built.
pub async fn replay_prepared(
    clients: &Clients,
    request: ReplayRunRequest,
    detach: bool,
    sink: &mut dyn EventSink,
    interrupt: &Interrupt,
) -> CliResult<RunOutcome> {
    let run = start(clients, request).await?;
    clients.note_started(&run.id);
    if detach {
        return Ok(RunOutcome {
            summary: RunSummary::from_run(&run),
            end: RunEnd::Detached,
        });
    }
    follow_to_end(clients, &run, 0, sink, interrupt).await
}
