//! The command line: global flags and one clap-derive struct per command.
//! Parsing only; what each command does lives in `commands/`.

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use std::ffi::OsString;
use std::path::PathBuf;

/// Default database of the embedded engine, relative to the working directory.
pub const DEFAULT_DB: &str = ".retake/retake.db";

/// `retake --version`: the CLI's version and the API contract it speaks.
pub static VERSION: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "{} (contract {})",
        env!("CARGO_PKG_VERSION"),
        retake::CONTRACT
    )
});

#[derive(Parser, Debug, Clone)]
#[command(
    name = "retake",
    version = VERSION.as_str(),
    about = "Run multi-agent workflows, record every step, and replay a finished run from any step",
    long_about = "Run multi-agent workflows, record every step, and replay a finished run from any step.\n\n\
        Without --server (or RETAKE_SERVER) the engine runs inside this process against the \
        database given by --db. Run ids accept a full id, any unique prefix, or 'latest'.",
    after_help = "Exit codes: 0 success; 1 the run failed or the server refused; 2 usage or validation errors."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags accepted by every command.
#[derive(Args, Debug, Clone, Default)]
#[command(next_help_heading = "Global options")]
pub struct GlobalArgs {
    /// retake server to talk to, e.g. http://127.0.0.1:50051; without one the engine runs in this process
    #[arg(long, env = "RETAKE_SERVER", global = true, value_name = "URL")]
    pub server: Option<String>,
    /// Database of the in-process engine (ignored with --server)
    #[arg(long, env = "RETAKE_DB", global = true, value_name = "PATH", default_value = DEFAULT_DB)]
    pub db: PathBuf,
    /// Print machine-readable JSON instead of text
    #[arg(long, visible_alias = "json-output", global = true)]
    pub json: bool,
    /// Never colour the output (NO_COLOR is honoured too)
    #[arg(long, global = true)]
    pub no_color: bool,
    /// File holding the bearer token for a server with auth on (or the token itself in RETAKE_TOKEN)
    #[arg(long, env = "RETAKE_TOKEN_FILE", global = true, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Bearer token for a server with auth on
    #[arg(
        long,
        env = "RETAKE_TOKEN",
        global = true,
        hide = true,
        hide_env_values = true
    )]
    pub token: Option<String>,
    /// PEM CA certificate that signs an https:// server's certificate
    #[arg(long, env = "RETAKE_CA_CERT", global = true, value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
    /// Profile of the config file (~/.config/retake/config.toml) giving the
    /// server, token file, CA certificate or database that flags leave unset
    #[arg(long, env = "RETAKE_PROFILE", global = true, value_name = "NAME")]
    pub profile: Option<String>,
}

/// The command line with the global options listed once, under
/// `retake --help`. They are still accepted before or after any command
/// (`retake --server URL run …`, `retake run --server URL …`): every
/// command carries a hidden copy of each, which clap reads like the
/// global option itself.
pub fn command() -> clap::Command {
    let root = Cli::command();
    let globals: Vec<clap::Arg> = root
        .get_arguments()
        .filter(|a| a.is_global_set())
        .map(|a| a.clone().hide(true))
        .collect();
    with_hidden_globals(root, &globals)
}

fn with_hidden_globals(cmd: clap::Command, globals: &[clap::Arg]) -> clap::Command {
    cmd.mut_subcommands(|sub| {
        let note = "Global options (--server, --db, --json, …): see 'retake --help'.";
        let after = match sub.get_after_help() {
            Some(text) => format!("{text}\n\n{note}"),
            None => note.to_string(),
        };
        let sub = globals
            .iter()
            .fold(sub, |sub, arg| sub.arg(arg.clone()))
            .after_help(after);
        with_hidden_globals(sub, globals)
    })
}

/// Parses a command line (the program name first), as `retake` does.
pub fn try_parse_from<I, T>(args: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let matches = command().try_get_matches_from(args)?;
    // Not the `_mut` form: that takes the values out, and the config file
    // needs to see which were given.
    let mut cli = Cli::from_arg_matches(&matches)?;
    let profile = cli.global.profile.clone();
    crate::config::apply(&mut cli.global, &matches, profile.as_deref())
        .map_err(|e| command().error(clap::error::ErrorKind::InvalidValue, e))?;
    Ok(cli)
}

impl GlobalArgs {
    /// The server URL, if one was given (an empty RETAKE_SERVER means none).
    pub fn server_url(&self) -> Option<&str> {
        self.server
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
    }
}

#[derive(Subcommand, Debug, Clone)]
pub enum Command {
    /// Start a run and follow it to the end
    Run(RunArgs),
    /// Fork a finished run from a step, with swapped agents, overridden outputs or new variables
    Replay(ReplayArgs),
    /// List runs, newest first; `runs delete RUN...` deletes finished ones
    Runs(RunsArgs),
    /// Follow a run's events until it ends (resumable with --after)
    Watch(WatchArgs),
    /// Cancel a run; in-flight nodes are interrupted
    Cancel(CancelArgs),
    /// Workers connected to the server: the agents they serve and their tasks
    Workers,
    /// Check a workflow file and report every problem at once
    Validate(ValidateArgs),
    /// Artifacts of a run and their provenance
    #[command(subcommand)]
    Artifacts(ArtifactsCommand),
    /// Compare two runs node by node
    Diff(DiffArgs),
    /// Answer a human://input wait
    Input(InputArgs),
    /// Approve a human://approve wait
    Approve(ApproveArgs),
    /// Reject a human://approve wait
    Reject(RejectArgs),
    /// Post-mortem of a run: every node with its agent, status, prompt, inputs, outputs and error
    Debug(DebugArgs),
    /// Timeline of a run; `trace graph` shows the DAG, `trace node` one step in full
    Trace(TraceArgs),
    /// Tokens and cost per node and in total; reused nodes show what they saved
    Cost(CostArgs),
    /// Replay many runs with one change and compare them: run, show, list, cancel
    #[command(subcommand)]
    Experiment(ExperimentCommand),
    /// Write a finished run, with the runs it reuses outputs from, to a bundle file
    Export(ExportArgs),
    /// Load a bundle `retake export` wrote, keeping its ids (a no-op for runs already here)
    Import(ImportArgs),
    /// Print a completion script for a shell: `retake completions bash > /etc/bash_completion.d/retake`
    Completions(CompletionsArgs),
}

#[derive(Args, Debug, Clone)]
pub struct ExportArgs {
    /// The run (id or unique prefix)
    pub run_id: String,
    /// The bundle file to write (e.g. run.retake)
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
}

#[derive(Args, Debug, Clone)]
pub struct ImportArgs {
    /// A bundle file `retake export` wrote
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
}

#[derive(Args, Debug, Clone)]
pub struct CompletionsArgs {
    /// bash, zsh, fish, powershell or elvish
    pub shell: clap_complete::Shell,
}

#[derive(Subcommand, Debug, Clone)]
pub enum ExperimentCommand {
    /// Replay a selection of runs with one change, following progress
    Run(Box<ExperimentRunArgs>),
    /// The comparison: nodes changed / unchanged / failed, each pair, totals
    Show(ExperimentIdArgs),
    /// Experiments, newest first
    List,
    /// Stop an experiment: no further replay starts, running ones are cancelled
    Cancel(ExperimentIdArgs),
}

#[derive(Args, Debug, Clone, Default)]
pub struct ExperimentIdArgs {
    /// Experiment id, a unique prefix of one, or 'latest'
    pub experiment_id: String,
}

#[derive(Args, Debug, Clone, Default)]
#[command(group(clap::ArgGroup::new("sources").required(true).args(["runs", "workflow_name"])))]
pub struct ExperimentRunArgs {
    /// The runs to replay (ids, unique prefixes or 'latest'), comma-separated or repeated
    #[arg(long, value_delimiter = ',', value_name = "RUN")]
    pub runs: Vec<String>,
    /// Replay the runs of this workflow (most recent first; see --last, --status)
    #[arg(long = "workflow", value_name = "NAME", conflicts_with = "runs")]
    pub workflow_name: Option<String>,
    /// With --workflow: only runs with this status
    #[arg(long, value_enum, requires = "workflow_name")]
    pub status: Option<StatusFilter>,
    /// With --workflow: the most recent N runs (default 50, at most 1000)
    #[arg(long, value_name = "N", requires = "workflow_name")]
    pub last: Option<u32>,
    /// A name to recognise the experiment by
    #[arg(long)]
    pub name: Option<String>,
    #[command(flatten)]
    pub change: ChangeArgs,
    /// Workflow file to replay with (default: each run's own snapshot)
    #[arg(long, value_name = "FILE")]
    pub workflow_file: Option<PathBuf>,
    /// A node whose output is a number: compared before and after
    #[arg(long, value_name = "NODE")]
    pub score: Option<String>,
    /// Replays running at once (default: the server's, 4)
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(u32).range(1..=256))]
    pub concurrency: Option<u32>,
    /// Print the experiment id and return at once (needs a server)
    #[arg(long)]
    pub detach: bool,
}

#[derive(Args, Debug, Clone, Default)]
pub struct RunArgs {
    /// Workflow file (YAML or JSON)
    pub file: PathBuf,
    /// Workflow variable for ${user.KEY}; repeatable
    #[arg(long = "var", value_name = "KEY=VALUE")]
    pub vars: Vec<String>,
    /// Print the run id and return at once (needs a server)
    #[arg(long)]
    pub detach: bool,
    /// Also print node starts and streamed output as it arrives
    #[arg(short, long)]
    pub verbose: bool,
}

#[derive(Args, Debug, Clone, Default)]
pub struct ReplayArgs {
    /// The run to fork (must be finished)
    pub run_id: String,
    #[command(flatten)]
    pub change: ChangeArgs,
    /// Workflow file to replay with (default: the source run's snapshot)
    #[arg(long, value_name = "FILE")]
    pub workflow: Option<PathBuf>,
    /// Print the replay id and return at once (needs a server)
    #[arg(long)]
    pub detach: bool,
    /// Also print node starts and streamed output as it arrives
    #[arg(short, long)]
    pub verbose: bool,
}

/// What a replay changes: the flags `replay` and `experiment run` share.
#[derive(Args, Debug, Clone, Default)]
pub struct ChangeArgs {
    /// Step to replay from: a node id or node-execution id (unique prefix)
    #[arg(long, value_name = "STEP")]
    pub from: Option<String>,
    /// Run NODE with another agent, e.g. summarize=llm://anthropic/claude-sonnet-4-20250514; repeatable
    #[arg(long = "agent", value_name = "NODE=URI")]
    pub agents: Vec<String>,
    /// Replace a node's output: NODE=VALUE, NODE.OUTPUT=VALUE, NODE=@FILE (NODE=@@x for a literal '@x'),
    /// also spelled checkpoint.NODE=VALUE; repeatable
    #[arg(long = "override", value_name = "NODE=VALUE")]
    pub overrides: Vec<String>,
    /// Change a workflow variable; nodes that use it run again; repeatable
    #[arg(long = "var", value_name = "KEY=VALUE")]
    pub vars: Vec<String>,
    /// Replay even if nodes that are reused changed in the workflow
    #[arg(long)]
    pub allow_drift: bool,
}

/// Run statuses accepted by `runs --status`.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusFilter {
    Pending,
    Running,
    Waiting,
    Completed,
    Failed,
    Cancelled,
}

#[derive(Args, Debug, Clone)]
#[command(args_conflicts_with_subcommands = true)]
pub struct RunsArgs {
    #[command(subcommand)]
    pub action: Option<RunsAction>,
    /// Only runs with this status
    #[arg(long, value_enum)]
    pub status: Option<StatusFilter>,
    /// Only runs of this workflow name
    #[arg(long, value_name = "NAME")]
    pub workflow: Option<String>,
    /// Only replays of this run
    #[arg(long, value_name = "RUN_ID")]
    pub forked_from: Option<String>,
    /// A server-side filter, e.g. 'create_time >= "2026-11-01T00:00:00Z" AND status = FAILED'
    #[arg(long, value_name = "EXPR")]
    pub filter: Option<String>,
    /// List the oldest first instead of the newest
    #[arg(long)]
    pub oldest_first: bool,
    /// At most this many runs
    #[arg(long, short = 'n', default_value_t = 20)]
    pub limit: u32,
}

/// What `retake runs` does besides listing.
#[derive(Subcommand, Debug, Clone)]
pub enum RunsAction {
    /// Delete finished runs with their nodes, events and artifacts
    Delete(DeleteArgs),
}

#[derive(Args, Debug, Clone, Default)]
pub struct DeleteArgs {
    /// Runs to delete (ids or unique prefixes)
    #[arg(required = true, value_name = "RUN_ID")]
    pub run_ids: Vec<String>,
    /// Also delete the runs that reuse their outputs (replays) and the
    /// experiments that name them; without it such a run is refused
    #[arg(long)]
    pub cascade: bool,
}

impl Default for RunsArgs {
    fn default() -> Self {
        Self {
            action: None,
            status: None,
            workflow: None,
            forked_from: None,
            filter: None,
            oldest_first: false,
            limit: 20,
        }
    }
}

#[derive(Args, Debug, Clone, Default)]
pub struct WatchArgs {
    /// Run id, unique prefix or 'latest'
    pub run_id: String,
    /// Resume after this event sequence number
    #[arg(long, value_name = "SEQ", default_value_t = 0)]
    pub after: i64,
    /// Also print streamed output as it arrives
    #[arg(short, long)]
    pub verbose: bool,
}

#[derive(Args, Debug, Clone, Default)]
pub struct CancelArgs {
    /// Run id, unique prefix or 'latest'
    pub run_id: String,
}

#[derive(Args, Debug, Clone, Default)]
#[command(
    after_help = "Without --var, missing ${user.*} variables are not reported: they are given at run time. \
    With at least one --var, every variable the workflow uses must be given."
)]
pub struct ValidateArgs {
    /// Workflow file (YAML or JSON)
    pub file: PathBuf,
    /// Workflow variable; with any --var, missing variables become errors
    #[arg(long = "var", value_name = "KEY=VALUE")]
    pub vars: Vec<String>,
}

#[derive(Subcommand, Debug, Clone)]
pub enum ArtifactsCommand {
    /// Artifacts of a run, including those it reused
    List(ArtifactsListArgs),
    /// One artifact's metadata and content
    Show(ArtifactShowArgs),
    /// The provenance tree of an artifact
    Lineage(ArtifactLineageArgs),
}

#[derive(Args, Debug, Clone, Default)]
pub struct ArtifactsListArgs {
    /// Run id, unique prefix or 'latest'
    pub run_id: String,
}

#[derive(Args, Debug, Clone, Default)]
pub struct ArtifactShowArgs {
    /// Artifact id
    pub artifact_id: String,
    /// Write only the content, byte for byte
    #[arg(long)]
    pub raw: bool,
}

#[derive(Args, Debug, Clone, Default)]
pub struct ArtifactLineageArgs {
    /// Artifact id
    pub artifact_id: String,
    /// Stop this many levels up (0: no limit)
    #[arg(long, default_value_t = 0)]
    pub depth: i32,
}

#[derive(Args, Debug, Clone, Default)]
#[command(
    after_help = "With one run, which must be a replay, it is compared with the run it was forked from."
)]
pub struct DiffArgs {
    /// First run (id, unique prefix or 'latest'); alone, a replay
    pub run_a: String,
    /// Second run (default: RUN_A is a replay, compared with its source run)
    pub run_b: Option<String>,
    /// Show only where the runs part: the earliest node (in B's order)
    /// whose outputs differ, what differs, and the nodes downstream of it
    #[arg(long)]
    pub first_divergence: bool,
}

#[derive(Args, Debug, Clone, Default)]
pub struct InputArgs {
    /// Run id, unique prefix or 'latest'
    pub run_id: String,
    /// The waiting node (default: the run's only pending wait)
    #[arg(long)]
    pub node: Option<String>,
    /// The answer; prompted for on a terminal when absent
    #[arg(long)]
    pub value: Option<String>,
}

#[derive(Args, Debug, Clone, Default)]
pub struct ApproveArgs {
    /// Run id, unique prefix or 'latest'
    pub run_id: String,
    /// The waiting node (default: the run's only pending wait)
    #[arg(long)]
    pub node: Option<String>,
    /// Optional comment recorded with the decision
    #[arg(long)]
    pub feedback: Option<String>,
}

#[derive(Args, Debug, Clone, Default)]
pub struct RejectArgs {
    /// Run id, unique prefix or 'latest'
    pub run_id: String,
    /// The waiting node (default: the run's only pending wait)
    #[arg(long)]
    pub node: Option<String>,
    /// Why it was rejected
    #[arg(long)]
    pub feedback: Option<String>,
}

#[derive(Args, Debug, Clone, Default)]
pub struct DebugArgs {
    /// Run id, unique prefix or 'latest'
    pub run_id: String,
    /// Only this node
    #[arg(long)]
    pub node: Option<String>,
    /// Only failed nodes and the nodes they blocked
    #[arg(long)]
    pub errors: bool,
    /// Show prompts, inputs and outputs in full instead of truncated
    #[arg(short, long)]
    pub verbose: bool,
}

#[derive(Args, Debug, Clone, Default)]
pub struct CostArgs {
    /// Run id, unique prefix or 'latest'
    pub run_id: String,
}

#[derive(Args, Debug, Clone, Default)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct TraceArgs {
    #[command(subcommand)]
    pub view: Option<TraceView>,
    /// Run id, unique prefix or 'latest'
    #[arg(required = true)]
    pub run_id: Option<String>,
}

#[derive(Subcommand, Debug, Clone)]
pub enum TraceView {
    /// The DAG with each node's status
    Graph {
        /// Run id, unique prefix or 'latest'
        run_id: String,
    },
    /// One step in full
    Node {
        /// Run id, unique prefix or 'latest'
        run_id: String,
        /// Node id or node-execution id (unique prefix)
        step: String,
    },
}
