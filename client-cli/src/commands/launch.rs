//! What `run` and `replay` share once their own flags are read: refusing
//! `--detach` without a server, starting the run, and following it (or
//! not) to the outcome both print.

use super::replay::{self, PreparedReplay};
use super::{RunEnd, RunOutcome, RunSummary, follow_to_end, run};
use crate::cli::{ReplayArgs, RunArgs};
use crate::connect::Clients;
use crate::error::{CliError, CliResult};
use crate::follow::{EventSink, Interrupt};
use retake::v1::StartRunRequest;

/// The request a run starts from.
#[derive(Debug, Clone)]
pub enum Start {
    /// `retake run`: a workflow file.
    Run(StartRunRequest),
    /// `retake replay`: a finished run forked from a step.
    Replay(PreparedReplay),
}

/// A run to start, read from the flags before anything is opened or
/// contacted, so that usage errors come first.
#[derive(Debug, Clone)]
pub struct Launch {
    pub start: Start,
    /// Print the run id and return at once.
    pub detach: bool,
    /// Show node starts and streamed output too.
    pub verbose: bool,
}

impl Launch {
    /// `retake run`'s flags, with the workflow file and its prompts read.
    pub fn run(args: &RunArgs, embedded: bool) -> CliResult<Self> {
        check_detach(args.detach, embedded)?;
        Ok(Self {
            start: Start::Run(run::prepare(args)?),
            detach: args.detach,
            verbose: args.verbose,
        })
    }

    /// `retake replay`'s flags, their form checked.
    pub fn replay(args: &ReplayArgs, embedded: bool) -> CliResult<Self> {
        check_detach(args.detach, embedded)?;
        Ok(Self {
            start: Start::Replay(replay::prepare(args)?),
            detach: args.detach,
            verbose: args.verbose,
        })
    }
}

/// `--detach` runs would die with this process when the engine is embedded.
fn check_detach(detach: bool, embedded: bool) -> CliResult<()> {
    if detach && embedded {
        return Err(CliError::usage(
            "--detach needs a server (--server or RETAKE_SERVER); without one the run lives in this process",
        ));
    }
    Ok(())
}

/// Starts the run and, unless detached, streams its events into `sink`
/// until it ends.
pub async fn launch(
    clients: &Clients,
    launch: Launch,
    sink: &mut dyn EventSink,
    interrupt: &Interrupt,
) -> CliResult<RunOutcome> {
    let run = match launch.start {
        Start::Run(request) => run::start(clients, request).await?,
        Start::Replay(prepared) => {
            let request = prepared.resolve(clients).await?;
            replay::start(clients, request).await?
        }
    };
    clients.note_started(&run.id);
    if launch.detach {
        return Ok(RunOutcome {
            summary: RunSummary::from_run(&run),
            end: RunEnd::Detached,
        });
    }
    follow_to_end(clients, &run, 0, sink, interrupt).await
}
