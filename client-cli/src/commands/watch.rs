//! `retake watch RUN_ID`: follow a run's events until it ends. Resumable:
//! `--after SEQ` continues after the last event already seen.

use super::{RunOutcome, follow_to_end, get_run};
use crate::cli::WatchArgs;
use crate::connect::Clients;
use crate::error::{CliError, CliResult};
use crate::follow::{EventSink, Interrupt};

/// `retake watch`: streams the run's events into `sink` from after
/// `args.after` until it ends, then summarises it. Ctrl-C only stops watching.
pub async fn watch(
    clients: &Clients,
    args: &WatchArgs,
    sink: &mut dyn EventSink,
    interrupt: &Interrupt,
) -> CliResult<RunOutcome> {
    if args.after < 0 {
        return Err(CliError::usage(format!("--after must be 0 or more, not {}", args.after)));
    }
    let run = get_run(clients, &args.run_id).await?;
    // Watching never cancels: the run belongs to whoever started it.
    let watcher = Clients { embedded: false, ..clients.clone() };
    follow_to_end(&watcher, &run, args.after, sink, interrupt).await
}
