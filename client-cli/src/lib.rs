//! The `retake` command-line client. Every command is a function in
//! `commands` that takes the generated gRPC clients and returns a value that
//! renders as text or JSON; `main_entry` parses flags, connects (to a server
//! or to the engine embedded in this process) and prints.

pub mod cli;
pub mod commands;
pub mod config;
pub mod connect;
pub mod error;
pub mod follow;
pub mod parse;
pub mod render;

use cli::{ArtifactsCommand, Cli, Command, ExperimentCommand, RunsAction, RunsArgs};
use commands::launch::Launch;
use commands::{RunEnd, RunOutcome};
use connect::Clients;
use error::{CliError, CliResult, EXIT_FAILED};
use follow::{EventSink, Interrupt, JsonLines, Quiet, TextProgress};
use render::{Output, Style, print_output};

/// Runs the CLI with the process arguments and returns the exit code.
pub fn main_entry() -> i32 {
    let cli = match cli::try_parse_from(std::env::args_os()) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return e.exit_code();
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("Error: cannot start the async runtime: {e}");
            return EXIT_FAILED;
        }
    };
    let code = runtime.block_on(execute(cli));
    // Whatever an embedded engine still has in flight dies with the process.
    runtime.shutdown_background();
    code
}

/// Runs one parsed command line, printing its result, and returns the exit code.
pub async fn execute(cli: Cli) -> i32 {
    let style = if cli.global.json {
        Style::PLAIN
    } else {
        Style::detect(cli.global.no_color)
    };
    match dispatch(&cli, style).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("Error: {}", e.message);
            e.code
        }
    }
}

/// The live view of a run: nothing in JSON mode, lines (and a bar on a terminal) otherwise.
fn live_sink(json: bool, style: Style, verbose: bool, embedded: bool) -> Box<dyn EventSink> {
    if json {
        Box::new(Quiet)
    } else {
        Box::new(
            TextProgress::new(style, verbose, TextProgress::bar_wanted())
                .with_wait_hints(!embedded),
        )
    }
}

/// Clients for a run this process follows: at a human wait, an embedded
/// run asks on the terminal and a server's run is followed on; without a
/// terminal (any of stdin, stdout, stderr redirected) both stop there and
/// report the run as waiting.
async fn run_clients(global: &cli::GlobalArgs) -> CliResult<Clients> {
    use std::io::IsTerminal;
    let mut clients = Clients::connect(global).await?;
    let terminal = std::io::stdin().is_terminal()
        && std::io::stdout().is_terminal()
        && std::io::stderr().is_terminal();
    clients.waits = connect::wait_policy(clients.embedded, terminal);
    Ok(clients)
}

fn print_run(outcome: &RunOutcome, json: bool, style: Style) -> i32 {
    if !json
        && matches!(
            outcome.end,
            RunEnd::Finished | RunEnd::Cancelled | RunEnd::Waiting { .. }
        )
    {
        render::write_stdout(b"\n");
    }
    print_output(outcome, json, style)
}

/// `run` and `replay` once their flags are read: connect, hold the
/// database, follow the run live and print its outcome.
async fn launch_and_print(
    global: &cli::GlobalArgs,
    launch: Launch,
    style: Style,
) -> CliResult<i32> {
    let json = global.json;
    let clients = run_clients(global).await?;
    clients.hold_database()?;
    let mut sink = live_sink(json, style, launch.verbose, clients.embedded);
    let outcome =
        commands::launch::launch(&clients, launch, sink.as_mut(), &Interrupt::CtrlC).await?;
    Ok(print_run(&outcome, json, style))
}

async fn dispatch(cli: &Cli, style: Style) -> CliResult<i32> {
    let global = &cli.global;
    let json = global.json;
    let embedded = global.server_url().is_none();
    // Usage errors are reported before anything is opened or contacted.
    let print = |out: &dyn Output| print_output(out, json, style);
    match &cli.command {
        Command::Completions(args) => {
            let mut script = Vec::new();
            clap_complete::generate(args.shell, &mut cli::command(), "retake", &mut script);
            // A reader that stopped early (`| head`) is not an error.
            use std::io::Write;
            match std::io::stdout().write_all(&script) {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(CliError::failed(
                    format!("cannot write the completion script: {e}"),
                )),
                _ => Ok(error::EXIT_OK),
            }
        }
        Command::Run(args) => launch_and_print(global, Launch::run(args, embedded)?, style).await,
        Command::Replay(args) => {
            launch_and_print(global, Launch::replay(args, embedded)?, style).await
        }
        Command::Watch(args) => {
            let clients = Clients::connect(global).await?;
            let mut sink: Box<dyn EventSink> = if json {
                Box::new(JsonLines)
            } else {
                Box::new(
                    TextProgress::new(
                        style,
                        args.verbose,
                        args.after == 0 && TextProgress::bar_wanted(),
                    )
                    .with_wait_hints(true),
                )
            };
            let outcome =
                commands::watch::watch(&clients, args, sink.as_mut(), &Interrupt::CtrlC).await?;
            if json {
                // The events were the output; only the outcome's exit code and hint remain.
                if let Some(hint) = outcome.hint() {
                    eprintln!("{hint}");
                }
                return Ok(outcome.exit_code());
            }
            Ok(print_run(&outcome, json, style))
        }
        Command::Validate(args) => {
            let request = commands::validate::prepare(args)?;
            let clients = Clients::connect(global).await?;
            let report = commands::validate::validate_prepared(
                &clients,
                &args.file.display().to_string(),
                request,
            )
            .await?;
            Ok(print(&report))
        }
        Command::Experiment(ExperimentCommand::Run(args)) => {
            let request = commands::experiment::request(args)?;
            commands::experiment::check_detach(args.detach, embedded)?;
            let clients = Clients::connect(global).await?;
            // Its replays run in this process without a server.
            clients.hold_database()?;
            let shown = commands::experiment::start(
                &clients,
                request,
                args.detach,
                json,
                &Interrupt::CtrlC,
            )
            .await?;
            Ok(print(&shown))
        }
        Command::Input(_) | Command::Approve(_) | Command::Reject(_) => {
            let clients = run_clients(global).await?;
            let resolved = match &cli.command {
                Command::Input(args) => commands::waits::input(&clients, args).await?,
                Command::Approve(args) => commands::waits::approve(&clients, args).await?,
                Command::Reject(args) => commands::waits::reject(&clients, args).await?,
                _ => return Err(CliError::failed("unreachable command")),
            };
            if !clients.embedded {
                return Ok(print(&resolved));
            }
            // The engine in this process drives the run now: follow it as
            // `retake run` does, until it ends or waits again.
            if !json {
                render::write_stdout(resolved.headline(style).as_bytes());
            }
            let mut sink = live_sink(json, style, false, embedded);
            let answered =
                commands::waits::follow_on(&clients, resolved, sink.as_mut(), &Interrupt::CtrlC)
                    .await?;
            if json {
                return Ok(print(&answered));
            }
            Ok(print_run(&answered.outcome, json, style))
        }
        command => {
            let clients = Clients::connect(global).await?;
            match command {
                Command::Runs(RunsArgs {
                    action: Some(RunsAction::Delete(args)),
                    ..
                }) => Ok(print(&commands::runs::delete(&clients, args).await?)),
                Command::Runs(args) => Ok(print(&commands::runs::list(&clients, args).await?)),
                Command::Export(args) => {
                    Ok(print(&commands::bundle::export(&clients, args).await?))
                }
                Command::Import(args) => {
                    Ok(print(&commands::bundle::import(&clients, args).await?))
                }
                Command::Cancel(args) => {
                    Ok(print(&commands::cancel::cancel(&clients, args).await?))
                }
                Command::Workers => Ok(print(&commands::workers::list(&clients).await?)),
                Command::Artifacts(ArtifactsCommand::List(args)) => {
                    Ok(print(&commands::artifacts::list(&clients, args).await?))
                }
                Command::Artifacts(ArtifactsCommand::Show(args)) => {
                    let shown = commands::artifacts::show(&clients, args).await?;
                    if args.raw && !json {
                        render::write_stdout(&shown.content);
                        return Ok(0);
                    }
                    Ok(print(&shown))
                }
                Command::Artifacts(ArtifactsCommand::Lineage(args)) => {
                    Ok(print(&commands::artifacts::lineage(&clients, args).await?))
                }
                Command::Diff(args) => Ok(print(&commands::diff::diff(&clients, args).await?)),
                Command::Debug(args) => Ok(print(&commands::debug::debug(&clients, args).await?)),
                Command::Trace(args) => Ok(print(&commands::trace::trace(&clients, args).await?)),
                Command::Cost(args) => Ok(print(&commands::cost::cost(&clients, args).await?)),
                Command::Experiment(ExperimentCommand::Show(args)) => Ok(print(
                    &commands::experiment::show(&clients, &args.experiment_id).await?,
                )),
                Command::Experiment(ExperimentCommand::List) => {
                    Ok(print(&commands::experiment::list(&clients).await?))
                }
                Command::Experiment(ExperimentCommand::Cancel(args)) => {
                    Ok(print(&commands::experiment::cancel(&clients, args).await?))
                }
                Command::Run(_)
                | Command::Replay(_)
                | Command::Watch(_)
                | Command::Validate(_)
                | Command::Experiment(ExperimentCommand::Run(_))
                | Command::Completions(_)
                | Command::Input(_)
                | Command::Approve(_)
                | Command::Reject(_) => Err(CliError::failed("unreachable command")),
            }
        }
    }
}
