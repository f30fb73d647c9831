//! `retake replay RUN_ID`: fork a finished run from a step, with swapped
//! agents, overridden outputs or changed variables, and follow the new run.

use super::RunOutcome;
use super::fetch::{returned, workflow_of};
use super::launch::{Launch, launch};
use crate::cli::ReplayArgs;
use crate::connect::Clients;
use crate::error::{CliError, CliResult};
use crate::follow::{EventSink, Interrupt};
use crate::parse::{
    checkpoint_reading, load_workflow, override_key, parse_agent_swap, parse_override, parse_vars,
    workflow_outputs,
};
use crate::render;
use retake::v1::{OutputOverride, ReplayRunRequest, Run};

/// A replay request built from the flags, with what is left to settle once
/// the workflow is known.
#[derive(Debug, Clone, Default)]
pub struct PreparedReplay {
    pub request: ReplayRunRequest,
    /// `--agent` flags as typed, in the order of `request.swaps`.
    agent_flags: Vec<String>,
    /// `--override` flags as typed, in the order of `request.overrides`.
    override_flags: Vec<String>,
    /// Overrides spelled `checkpoint.X=…` that could also mean output `X`
    /// of a node named `checkpoint`: (index in `request.overrides`, `X`).
    checkpoint_keys: Vec<(usize, String)>,
}

/// Builds the request from the flags. The form of swaps and overrides is
/// checked here, and flags that contradict each other are refused; whether
/// their nodes exist is the server's call.
pub fn prepare(args: &ReplayArgs) -> CliResult<PreparedReplay> {
    let swaps = args
        .change
        .agents
        .iter()
        .map(|a| parse_agent_swap(a))
        .collect::<CliResult<Vec<_>>>()?;
    let overrides = args
        .change
        .overrides
        .iter()
        .map(|o| parse_override(o))
        .collect::<CliResult<Vec<_>>>()?;
    let variables = parse_vars(&args.change.vars)?;
    // Without --workflow the server replays the source run's snapshot.
    let workflow = args
        .workflow
        .as_deref()
        .map(load_workflow)
        .transpose()?
        .unwrap_or_default();
    let checkpoint_keys = args
        .change
        .overrides
        .iter()
        .enumerate()
        .filter_map(|(i, o)| checkpoint_reading(o).map(|output| (i, output)))
        .collect();
    let prepared = PreparedReplay {
        request: ReplayRunRequest {
            run_id: args.run_id.clone(),
            workflow: workflow.content,
            files: workflow.files,
            from_node: args.change.from.clone().unwrap_or_default(),
            swaps,
            overrides,
            variables,
            allow_drift: args.change.allow_drift,
            request_id: super::request_id(),
            ..Default::default()
        },
        agent_flags: args.change.agents.clone(),
        override_flags: args.change.overrides.clone(),
        checkpoint_keys,
    };
    prepared.check_conflicts()?;
    Ok(prepared)
}

/// A flag as typed, shortened for an error message.
fn quoted(flag: &str) -> String {
    format!("'{}'", render::truncate(flag, 60))
}

impl PreparedReplay {
    /// Refuses a node given two agents, an output given two values, and a
    /// node both swapped and overridden (an overridden node does not run, so
    /// its agent would be ignored).
    fn check_conflicts(&self) -> CliResult<()> {
        let swaps = &self.request.swaps;
        for (i, a) in swaps.iter().enumerate() {
            if let Some(j) = (0..i).find(|&j| swaps[j].node_id == a.node_id) {
                return Err(CliError::usage(format!(
                    "--agent is given twice for node '{}' ({} and {}); give it once",
                    a.node_id,
                    quoted(&self.agent_flags[j]),
                    quoted(&self.agent_flags[i])
                )));
            }
        }
        let overrides = &self.request.overrides;
        for (i, o) in overrides.iter().enumerate() {
            let same = |p: &OutputOverride| {
                p.selector == o.selector
                    && (p.output == o.output || p.output.is_empty() || o.output.is_empty())
            };
            if let Some(j) = (0..i).find(|&j| same(&overrides[j])) {
                let what = if o.output.is_empty() || overrides[j].output.is_empty() {
                    format!("node '{}'", o.selector)
                } else {
                    format!("output '{}.{}'", o.selector, o.output)
                };
                return Err(CliError::usage(format!(
                    "--override is given twice for {what} ({} and {}); give each output one value",
                    quoted(&self.override_flags[j]),
                    quoted(&self.override_flags[i])
                )));
            }
        }
        for (i, o) in overrides.iter().enumerate() {
            if let Some(j) = swaps.iter().position(|s| s.node_id == o.selector) {
                return Err(CliError::usage(format!(
                    "node '{}' is given both --agent ({}) and --override ({}): an overridden node \
                     does not run, so its agent would not be used; give one of them",
                    o.selector,
                    quoted(&self.agent_flags[j]),
                    quoted(&self.override_flags[i])
                )));
            }
        }
        Ok(())
    }

    /// Settles every `checkpoint.X=…` override against the workflow the
    /// replay runs (`--workflow`, else the source run's snapshot): output
    /// `X` of node `checkpoint`, or node `X`, whichever exists; both is
    /// refused as ambiguous.
    pub async fn resolve(mut self, clients: &Clients) -> CliResult<ReplayRunRequest> {
        if self.checkpoint_keys.is_empty() {
            return Ok(self.request);
        }
        let content = if self.request.workflow.is_empty() {
            workflow_of(clients, &self.request.run_id).await?
        } else {
            self.request.workflow.clone()
        };
        let outputs = workflow_outputs(&content);
        for (i, output) in std::mem::take(&mut self.checkpoint_keys) {
            let as_node = &self.request.overrides[i];
            let checkpoint_output = outputs
                .get("checkpoint")
                .is_some_and(|outs| outs.contains(&output));
            let node = outputs.contains_key(&as_node.selector);
            let key = override_key(&self.override_flags[i]);
            match (checkpoint_output, node) {
                (true, true) => {
                    return Err(CliError::usage(format!(
                        "--override {key}=… is ambiguous: it can mean output '{output}' of node \
                         'checkpoint' or node '{node_id}'; write checkpoint.{key}=VALUE for the \
                         first or {node_key}=VALUE for the second",
                        node_id = as_node.selector,
                        node_key = key.strip_prefix("checkpoint.").unwrap_or(key),
                    )));
                }
                (true, false) => {
                    self.request.overrides[i] = OutputOverride {
                        selector: "checkpoint".to_string(),
                        output,
                        value: as_node.value.clone(),
                        source: as_node.source.clone(),
                    };
                }
                // Node X, or neither: the server names what is missing.
                _ => {}
            }
        }
        self.check_conflicts()?;
        Ok(self.request)
    }
}

/// Asks the server for the replay and returns the new run; a call the
/// server may not have received is sent again, under the same request id.
pub async fn start(clients: &Clients, request: ReplayRunRequest) -> CliResult<Run> {
    let run = super::retried(|| {
        let mut runs = clients.runs.clone();
        let request = request.clone();
        async move { runs.replay_run(request).await }
    })
    .await?;
    returned(run.into_inner().run, "run")
}

/// `retake replay`: starts the replay and, unless detached, streams its
/// events into `sink` until it ends.
pub async fn replay(
    clients: &Clients,
    args: &ReplayArgs,
    sink: &mut dyn EventSink,
    interrupt: &Interrupt,
) -> CliResult<RunOutcome> {
    let started = Launch::replay(args, clients.embedded)?;
    launch(clients, started, sink, interrupt).await
}
