//! `retake watch RUN_ID`: follow a run's events until it ends. Resumable:
//! `--after SEQ` continues after the last event already seen.

use super::{RunOutcome, follow_to_end, get_run};
use crate::cli::WatchArgs;
use crate::connect::{Clients, WaitPolicy};
use crate::error::{CliError, CliResult};
use crate::follow::{EventSink, Interrupt};
use crate::render;

/// `retake watch`: streams the run's events into `sink` from after
/// `args.after` until it ends, then summarises it. Ctrl-C only stops watching.
pub async fn watch(
    clients: &Clients,
    args: &WatchArgs,
    sink: &mut dyn EventSink,
    interrupt: &Interrupt,
) -> CliResult<RunOutcome> {
    if args.after < 0 {
        return Err(CliError::usage(format!(
            "--after must be 0 or more, not {}",
            args.after
        )));
    }
    let run = get_run(clients, &args.run_id).await?;
    if !clients.drives(&run.id) && !render::is_finished(run.status()) {
        // An embedded engine only drives the runs it started; this one
        // belongs to another process (or to a server that owns the database).
        return Err(CliError::failed(format!(
            "Run {} is {}, but no engine in this process drives it; follow it on the server that runs it with \
             --server URL (or RETAKE_SERVER)",
            run.id,
            render::run_status_name(run.status())
        )));
    }
    // Watching never cancels, nor stops at a wait: the run belongs to
    // whoever started it, and someone may answer the wait elsewhere.
    let watcher = Clients {
        embedded: false,
        waits: WaitPolicy::Follow,
        ..clients.clone()
    };
    follow_to_end(&watcher, &run, args.after, sink, interrupt).await
}
