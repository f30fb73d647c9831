//! `retake run FILE`: start a run and follow it to its end.

use super::RunOutcome;
use super::fetch::returned;
use super::launch::{Launch, launch};
use crate::cli::RunArgs;
use crate::connect::Clients;
use crate::error::CliResult;
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
        request_id: super::request_id(),
    })
}

/// Starts a run and returns it as the server recorded it; a call the
/// server may not have received is sent again, under the same request id.
pub async fn start(clients: &Clients, request: StartRunRequest) -> CliResult<Run> {
    let run = super::retried(|| {
        let mut runs = clients.runs.clone();
        let request = request.clone();
        async move { runs.start_run(request).await }
    })
    .await?;
    returned(run.into_inner().run, "run")
}

/// `retake run`: starts the workflow and, unless detached, streams its
/// events into `sink` until it ends.
pub async fn run(
    clients: &Clients,
    args: &RunArgs,
    sink: &mut dyn EventSink,
    interrupt: &Interrupt,
) -> CliResult<RunOutcome> {
    let started = Launch::run(args, clients.embedded)?;
    launch(clients, started, sink, interrupt).await
}
