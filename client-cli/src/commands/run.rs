//! `retake run FILE`: start a run and follow it to its end.

use super::{RunEnd, RunOutcome, RunSummary, check_detach, follow_to_end};
use crate::cli::RunArgs;
use crate::connect::Clients;
use crate::error::{CliError, CliResult};
use crate::follow::{EventSink, Interrupt};
use crate::parse::{load_workflow, parse_vars};
use retake::v1::{Run, StartRunRequest};

/// Builds the request from the flags: variables and the workflow with its prompt files.
pub fn prepare(args: &RunArgs) -> CliResult<StartRunRequest> {
    let variables = parse_vars(&args.vars)?;
    let workflow = load_workflow(&args.file)?;
    Ok(StartRunRequest {
        workflow: workflow.content,
        variables,
        files: workflow.files,
    })
}

/// Starts a run and returns it as the server recorded it.
pub async fn start(clients: &Clients, request: StartRunRequest) -> CliResult<Run> {
    let mut runs = clients.runs.clone();
    let resp = runs.start_run(request).await?;
    resp.into_inner()
        .run
        .ok_or_else(|| CliError::failed("the server returned no run"))
}

/// `retake run`: starts the workflow and, unless detached, streams its
/// events into `sink` until it ends.
pub async fn run(
    clients: &Clients,
    args: &RunArgs,
    sink: &mut dyn EventSink,
    interrupt: &Interrupt,
) -> CliResult<RunOutcome> {
    check_detach(args.detach, clients.embedded)?;
    let request = prepare(args)?;
    run_prepared(clients, request, args.detach, sink, interrupt).await
}

/// `run` with the request already built.
pub async fn run_prepared(
    clients: &Clients,
    request: StartRunRequest,
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
