//! The workflow engine: validates workflows, starts and resumes runs,
//! cancels them, and streams their events. It knows nothing of gRPC; the
//! `api` layer translates its types.

pub mod agents;
mod committer;
mod config;
pub mod diff;
pub mod run;
mod waits;
pub use waits::{Wait, WaitKind, WaitValue};
mod fork;
pub use fork::ReplayRequest;

pub mod replay;
pub mod secrets;
pub mod template;
pub mod workflow;

use crate::Settings;
use crate::error::{EngineError, EngineResult};
use crate::model::*;
use crate::store::{RunFilter, RunRef, Store, StoreOptions, sha256_hex};
use agents::OutputRef;
use futures::Stream;
use run::{RunDriver, RunStart};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, broadcast, mpsc, watch};
use tokio_util::sync::CancellationToken;
use workflow::{LoadOptions, Loaded, Workflow};

/// A run executing in this process.
pub struct ActiveRun {
    cancel: CancellationToken,
    events: broadcast::Sender<Event>,
    /// Becomes true when the driver has written the run's final state.
    done: watch::Sender<bool>,
    /// Answers to the run's human waits.
    answers: mpsc::UnboundedSender<waits::WaitAnswer>,
    /// Text streamed so far by each node still running. Held while a
    /// delta is published and while a watcher subscribes, so a watcher
    /// sees every piece exactly once: in its catch-up or live.
    partial: Mutex<HashMap<String, String>>,
}

impl ActiveRun {
    /// Sends a streamed piece of a node's output to live watchers. Deltas
    /// carry sequence 0: they are not part of the durable event log.
    pub(crate) fn publish_delta(&self, node_id: &str, text: String) {
        let mut partial = self.partial.lock().expect("partial output lock");
        partial
            .entry(node_id.to_string())
            .or_default()
            .push_str(&text);
        let _ = self.events.send(delta_event(node_id, text));
    }

    /// Forgets the streamed text of a node that ended.
    pub(crate) fn end_partial(&self, node_id: &str) {
        self.partial
            .lock()
            .expect("partial output lock")
            .remove(node_id);
    }
}

fn delta_event(node_id: &str, text: String) -> Event {
    Event {
        run_id: String::new(),
        sequence: 0,
        kind: EventKind::NodeOutputDelta,
        time: now_micros(),
        node_id: Some(node_id.to_string()),
        detail: EventDetail {
            delta: text,
            ..Default::default()
        },
    }
}

pub struct EngineInner {
    pub store: Store,
    pub settings: Settings,
    active: Mutex<HashMap<String, Arc<ActiveRun>>>,
    node_permits: Arc<Semaphore>,
    /// One permit per run executing here (a WAITING run holds none), so
    /// the admission check and the admission are one step.
    run_permits: Arc<Semaphore>,
    /// Cancelled when the server shuts down: open streams end.
    shutdown: CancellationToken,
}

/// Cheap to clone; every clone drives the same runs.
#[derive(Clone)]
pub struct Engine(Arc<EngineInner>);

/// A workflow document as a request carries it.
pub struct WorkflowSource<'a> {
    pub text: &'a str,
    pub files: &'a BTreeMap<String, String>,
    pub variables: &'a BTreeMap<String, String>,
}

impl Engine {
    pub async fn open(settings: Settings) -> EngineResult<Self> {
        let opts = StoreOptions {
            max_page_count: settings.max_db_pages,
        };
        let store = Store::open(&settings.db_path, &opts).await?;
        let permits = Arc::new(Semaphore::new(settings.max_parallel_nodes.max(1)));
        let run_permits = Arc::new(Semaphore::new(settings.max_concurrent_runs.max(1)));
        Ok(Self(Arc::new(EngineInner {
            store,
            settings,
            active: Mutex::new(HashMap::new()),
            node_permits: permits,
            run_permits,
            shutdown: CancellationToken::new(),
        })))
    }

    /// Ends every open event stream, so the server can stop without
    /// waiting for runs that wait for people. Runs resume at the next start.
    pub fn begin_shutdown(&self) {
        self.0.shutdown.cancel();
    }

    pub fn store(&self) -> &Store {
        &self.0.store
    }

    pub fn settings(&self) -> &Settings {
        &self.0.settings
    }

    /// Parses and validates a workflow. Oversized documents are refused
    /// before parsing.
    pub async fn validate(
        &self,
        src: &WorkflowSource<'_>,
        ignore_missing_variables: bool,
    ) -> EngineResult<Loaded> {
        let limit = self.0.settings.max_workflow_bytes;
        let files: usize = src.files.iter().map(|(k, v)| k.len() + v.len()).sum();
        let variables: usize = src.variables.iter().map(|(k, v)| k.len() + v.len()).sum();
        let size = src.text.len() + files + variables;
        if size > limit {
            return Err(EngineError::ResourceExhausted(format!(
                "the workflow ({} bytes), its files ({files} bytes) and variables ({variables} bytes) come to {size} bytes; \
                 the limit for all three together is {limit} bytes",
                src.text.len()
            )));
        }
        if src.text.trim().is_empty() {
            return Err(EngineError::InvalidArgument("Workflow is empty".into()));
        }
        let opts = LoadOptions {
            ignore_missing_variables,
            max_nodes: self.0.settings.max_nodes,
            env_policy: self.0.settings.env_policy.clone(),
        };
        // Parsing a large document takes a while; keep it off the async workers.
        let (text, files, variables) = (
            src.text.to_string(),
            src.files.clone(),
            src.variables.clone(),
        );
        tokio::task::spawn_blocking(move || workflow::load(&text, &files, &variables, opts))
            .await
            .map_err(|e| EngineError::Internal(format!("workflow parser stopped: {e}")))
    }

    pub(crate) async fn load_valid(&self, src: &WorkflowSource<'_>) -> EngineResult<Workflow> {
        let loaded = self.validate(src, false).await?;
        match loaded.workflow {
            Some(w) if loaded.errors.is_empty() => Ok(w),
            _ => Err(EngineError::InvalidArgument(loaded.error_message())),
        }
    }

    /// Takes one of the server's run slots, or refuses at once: over the
    /// cap, new runs are refused, not queued.
    pub(crate) fn admit(&self) -> EngineResult<OwnedSemaphorePermit> {
        self.0.run_permits.clone().try_acquire_owned().map_err(|_| {
            let limit = self.0.settings.max_concurrent_runs;
            EngineError::ResourceExhausted(format!(
                "{limit} runs are executing, the most this server runs at once; retry when one finishes"
            ))
        })
    }

    /// Stores a new run and starts executing it; returns at once.
    pub async fn start_run(&self, src: WorkflowSource<'_>) -> EngineResult<Run> {
        let workflow = Arc::new(self.load_valid(&src).await?);
        let stored = redact_snapshot(src.text, &workflow);
        let src = WorkflowSource {
            text: &stored,
            ..src
        };
        let permit = self.admit()?;
        let mut run = new_run(&workflow, &src, None);
        let mut nodes: Vec<NodeExecution> = workflow
            .nodes
            .iter()
            .enumerate()
            .map(|(pos, node)| new_node_execution(&run.id, pos, node, &node.agent))
            .collect();
        run.pk = self
            .0
            .store
            .insert_run(&run, src.text, &mut nodes, None)
            .await?;
        let agents = workflow.nodes.iter().map(|n| n.agent.clone()).collect();
        let start = RunStart {
            run: run.clone(),
            workflow,
            nodes,
            agents,
            last_seq: 0,
            permit: Some(permit),
        };
        self.spawn_driver(start, CancellationToken::new())?;
        Ok(run)
    }

    /// Starts the run's driver task. A `cancel` token cancelled already
    /// ends the run cancelled without starting a node.
    pub(crate) fn spawn_driver(
        &self,
        start: RunStart,
        cancel: CancellationToken,
    ) -> EngineResult<()> {
        let (events, _) = broadcast::channel(1024);
        let (done, _) = watch::channel(false);
        let (answers, answers_rx) = mpsc::unbounded_channel();
        let active = Arc::new(ActiveRun {
            cancel,
            events,
            done,
            answers,
            partial: Mutex::new(HashMap::new()),
        });
        let run_id = start.run.id.clone();
        let driver = RunDriver::new(self.0.clone(), active.clone(), start)?;
        self.0
            .active
            .lock()
            .expect("active runs lock")
            .insert(run_id, active);
        tokio::spawn(driver.drive(answers_rx));
        Ok(())
    }

    /// Resumes runs a previous process left unfinished. Completed nodes
    /// keep their results; nodes that were running start a new attempt.
    pub async fn recover(&self) -> EngineResult<usize> {
        let runs = self.0.store.unfinished_runs().await?;
        let mut resumed = 0;
        for run in runs {
            if self
                .0
                .active
                .lock()
                .expect("active runs lock")
                .contains_key(&run.id)
            {
                continue;
            }
            match self.resume(run.clone()).await {
                Ok(()) => resumed += 1,
                Err(e) => tracing::error!(run = %run.id, error = %e, "cannot resume run"),
            }
        }
        Ok(resumed)
    }

    /// Whether this engine drives `run_id` (it started or resumed it, and
    /// the run has not finished).
    pub fn drives(&self, run_id: &str) -> bool {
        self.0
            .active
            .lock()
            .expect("active runs lock")
            .contains_key(run_id)
    }

    /// Resumes one run another process left unfinished, as `recover` does
    /// for all of them: a waiting run waits here for its answers, an
    /// interrupted one carries on. With `cancel`, the run is cancelled
    /// instead, without starting a node, and this returns once its final
    /// state is written. A finished run, or one this engine drives
    /// already, is left as it is. Returns the run.
    ///
    /// Only for a process that holds the database's lock exclusively
    /// ([`crate::lock`]): two engines driving one run would both execute it.
    pub async fn resume_run(&self, run_ref: &str, cancel: bool) -> EngineResult<Run> {
        let run = self.0.store.find_run(RunRef(run_ref)).await?;
        let id = run.id.clone();
        if run.status.is_finished() || self.drives(&id) {
            return self.get_run(&id).await;
        }
        let token = CancellationToken::new();
        if cancel {
            token.cancel();
        }
        self.resume_with(run, token).await?;
        if cancel {
            let active = self
                .0
                .active
                .lock()
                .expect("active runs lock")
                .get(&id)
                .cloned();
            if let Some(active) = active {
                let _ = active.done.subscribe().wait_for(|d| *d).await;
            }
        }
        self.get_run(&id).await
    }

    async fn resume(&self, run: Run) -> EngineResult<()> {
        self.resume_with(run, CancellationToken::new()).await
    }

    async fn resume_with(&self, mut run: Run, cancel: CancellationToken) -> EngineResult<()> {
        let text = String::from_utf8(self.0.store.content(&run.workflow_sha256).await?)
            .map_err(|_| EngineError::Internal("workflow snapshot is not UTF-8".into()))?;
        let src = WorkflowSource {
            text: &text,
            files: &run.files,
            variables: &run.variables,
        };
        let workflow = Arc::new(self.load_valid(&src).await?);
        let mut nodes = self.nodes_of_run(&run).await?;
        if nodes.len() != workflow.nodes.len() {
            return Err(EngineError::Internal(format!(
                "run '{}' has {} node records for {} nodes",
                run.id,
                nodes.len(),
                workflow.nodes.len()
            )));
        }
        // The run row's usage is written with its status, not with every
        // node: recount it from the nodes' own records.
        run.usage = Usage::default();
        for rec in &mut nodes {
            if rec.status == NodeStatus::Running {
                rec.status = NodeStatus::Pending;
            }
            if rec.status == NodeStatus::Completed {
                run.usage.input_tokens += rec.usage.input_tokens;
                run.usage.output_tokens += rec.usage.output_tokens;
                run.usage.cost_usd += rec.usage.cost_usd;
            }
        }
        let agents = nodes.iter().map(|n| n.agent.clone()).collect();
        let last_seq = self.0.store.last_event_sequence(run.pk).await?;
        tracing::info!(run = %run.id, "resuming run");
        // A resumed run waits for a slot instead of being refused.
        let start = RunStart {
            run,
            workflow,
            nodes,
            agents,
            last_seq,
            permit: None,
        };
        self.spawn_driver(start, cancel)
    }

    /// A run with live counts.
    pub async fn get_run(&self, run_ref: &str) -> EngineResult<Run> {
        let mut run = self.0.store.find_run(RunRef(run_ref)).await?;
        self.refresh_counts(&mut run).await?;
        Ok(run)
    }

    async fn refresh_counts(&self, run: &mut Run) -> EngineResult<()> {
        if run.status.is_finished() {
            return Ok(());
        }
        let records = self.0.store.node_counts(run.pk).await?;
        run.counts = NodeCounts::of_records(run.counts.total, records);
        Ok(())
    }

    pub async fn list_runs(
        &self,
        filter: &RunFilter,
        limit: i64,
        before_pk: Option<i64>,
    ) -> EngineResult<Vec<Run>> {
        let mut runs = self.0.store.list_runs(filter, limit, before_pk).await?;
        for run in &mut runs {
            self.refresh_counts(run).await?;
        }
        Ok(runs)
    }

    pub async fn workflow_content(&self, run: &Run) -> EngineResult<String> {
        String::from_utf8(self.0.store.content(&run.workflow_sha256).await?)
            .map_err(|_| EngineError::Internal("workflow snapshot is not UTF-8".into()))
    }

    /// The run's workflow snapshot, parsed.
    pub async fn run_workflow(&self, run: &Run) -> EngineResult<Workflow> {
        let text = self.workflow_content(run).await?;
        let src = WorkflowSource {
            text: &text,
            files: &run.files,
            variables: &run.variables,
        };
        self.validate(&src, true).await?.workflow.ok_or_else(|| {
            EngineError::Internal(format!(
                "stored workflow of run '{}' no longer parses",
                run.id
            ))
        })
    }

    /// Node executions of a run in topological order. Nodes a replay
    /// reused have no row of their own: they are resolved through the
    /// `forked_from` chain to the run that produced them and reported as
    /// REUSED with that run's artifacts.
    pub async fn nodes_of_run(&self, run: &Run) -> EngineResult<Vec<NodeExecution>> {
        let workflow = self.run_workflow(run).await?;
        self.nodes_with_workflow(run, &workflow).await
    }

    /// `nodes_of_run` for a caller that has parsed the run's workflow.
    pub(crate) async fn nodes_with_workflow(
        &self,
        run: &Run,
        workflow: &Workflow,
    ) -> EngineResult<Vec<NodeExecution>> {
        let mut by_id: HashMap<String, NodeExecution> = self
            .0
            .store
            .nodes_of_run(run.pk)
            .await?
            .into_iter()
            .map(|n| (n.node_id.clone(), n))
            .collect();
        let mut source = run.replay.as_ref().map(|r| r.forked_from.clone());
        while let Some(source_id) = source.take() {
            if workflow.nodes.iter().all(|n| by_id.contains_key(&n.id)) {
                break;
            }
            let source_run = self.0.store.find_run(RunRef(&source_id)).await?;
            for rec in self.0.store.nodes_of_run(source_run.pk).await? {
                if by_id.contains_key(&rec.node_id) || !rec.status.has_outputs() {
                    continue;
                }
                let reused = NodeExecution {
                    run_id: run.id.clone(),
                    status: NodeStatus::Reused,
                    reused_from_run: Some(source_run.id.clone()),
                    reused_from_node_execution: Some(rec.id.clone()),
                    latency_ms: Some(0),
                    usage: Usage::default(),
                    started_at: None,
                    finished_at: None,
                    pk: 0,
                    ..rec
                };
                by_id.insert(reused.node_id.clone(), reused);
            }
            source = source_run.replay.map(|r| r.forked_from);
        }
        let mut nodes = Vec::with_capacity(workflow.nodes.len());
        for (pos, node) in workflow.nodes.iter().enumerate() {
            if let Some(mut n) = by_id.remove(&node.id) {
                n.position = pos as i32;
                n.depends_on = node.depends_on.clone();
                nodes.push(n);
            }
        }
        Ok(nodes)
    }

    /// One node execution, by node id or node-execution id (unique prefix).
    pub async fn node_execution(&self, run_ref: &str, step: &str) -> EngineResult<NodeExecution> {
        let run = self.get_run(run_ref).await?;
        let nodes = self.nodes_of_run(&run).await?;
        select_step(&nodes, step).cloned()
    }

    /// Cancels a run and waits until its final state is written.
    pub async fn cancel_run(&self, run_ref: &str) -> EngineResult<Run> {
        let run = self.0.store.find_run(RunRef(run_ref)).await?;
        if run.status.is_finished() {
            return Err(EngineError::FailedPrecondition(format!(
                "Run '{}' has already finished ({})",
                run.id, run.status
            )));
        }
        let active = self
            .0
            .active
            .lock()
            .expect("active runs lock")
            .get(&run.id)
            .cloned();
        let Some(active) = active else {
            return Err(EngineError::FailedPrecondition(format!(
                "Run '{}' is not executing in this server; it resumes (and can be cancelled) when the server that owns its database restarts",
                run.id
            )));
        };
        let mut done = active.done.subscribe();
        active.cancel.cancel();
        let _ = done.wait_for(|d| *d).await;
        self.get_run(&run.id).await
    }

    /// Events of a run after `after`, then live ones until the run ends.
    pub async fn watch(
        &self,
        run_ref: &str,
        after: i64,
    ) -> EngineResult<impl Stream<Item = EngineResult<Event>> + use<>> {
        if after < 0 {
            return Err(EngineError::InvalidArgument(format!(
                "after_sequence must be 0 or more, got {after}"
            )));
        }
        let run = self.0.store.find_run(RunRef(run_ref)).await?;
        if after > 0
            && let Some(first) = self.0.store.first_event_sequence(run.pk).await?
            && first > after + 1
        {
            return Err(EngineError::OutOfRange(format!(
                "Events of run '{}' before sequence {first} were pruned",
                run.id
            )));
        }
        // Subscribe before reading history so nothing falls between the two.
        let active = self
            .0
            .active
            .lock()
            .expect("active runs lock")
            .get(&run.id)
            .cloned();
        let (live, partial) = match active {
            Some(a) => {
                let partial = a.partial.lock().expect("partial output lock");
                let rx = a.events.subscribe();
                let catch_up: Vec<Event> = partial
                    .iter()
                    .filter(|(_, text)| !text.is_empty())
                    .map(|(node, text)| delta_event(node, text.clone()))
                    .collect();
                (Some(rx), catch_up)
            }
            None => (None, Vec::new()),
        };
        let engine = self.clone();
        Ok(async_stream(engine, run, after, live, partial))
    }

    /// Artifact metadata and content.
    pub async fn artifact(&self, id: &str) -> EngineResult<(Artifact, Vec<u8>)> {
        let artifact = self.0.store.artifact(id).await?;
        let content = self.0.store.content(&artifact.sha256).await?;
        Ok((artifact, content))
    }

    /// Artifacts of a run by id, including those a replay reused from
    /// earlier runs (they keep their own id, run and origin).
    pub async fn artifacts_of_run(
        &self,
        run_ref: &str,
        after: Option<&str>,
        limit: i64,
    ) -> EngineResult<Vec<Artifact>> {
        let run = self.0.store.find_run(RunRef(run_ref)).await?;
        if run.replay.is_none() {
            return self.0.store.artifacts_of_run(run.pk, after, limit).await;
        }
        let ids: Vec<String> = self
            .nodes_of_run(&run)
            .await?
            .into_iter()
            .flat_map(|n| n.output_artifacts)
            .collect();
        let mut all = self.0.store.artifacts_by_ids(&ids).await?;
        all.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(all
            .into_iter()
            .filter(|a| after.is_none_or(|after| a.id.as_str() > after))
            .take(limit.max(0) as usize)
            .collect())
    }

    /// The artifact and its ancestors, breadth first, with their depth.
    pub async fn lineage(&self, id: &str, max_depth: i32) -> EngineResult<Vec<(Artifact, i32)>> {
        let root = self.0.store.artifact(id).await?;
        let mut seen = std::collections::HashSet::from([root.id.clone()]);
        let mut out = vec![(root.clone(), 0)];
        let mut frontier = vec![root];
        let mut depth = 0;
        while !frontier.is_empty() && (max_depth <= 0 || depth < max_depth) {
            depth += 1;
            let parents: Vec<String> = frontier
                .iter()
                .flat_map(|a| a.derived_from.iter().cloned())
                .filter(|p| seen.insert(p.clone()))
                .collect();
            frontier = self.0.store.artifacts_by_ids(&parents).await?;
            out.extend(frontier.iter().cloned().map(|a| (a, depth)));
        }
        Ok(out)
    }
}

impl EngineInner {
    fn finish_active(&self, run_id: &str) {
        if let Some(active) = self.active.lock().expect("active runs lock").remove(run_id) {
            let _ = active.done.send(true);
        }
    }

    async fn load_outputs(&self, artifact_ids: &[String]) -> EngineResult<Vec<OutputRef>> {
        let mut out = Vec::with_capacity(artifact_ids.len());
        for a in self.store.artifacts_by_ids(artifact_ids).await? {
            let content =
                String::from_utf8_lossy(&self.store.content(&a.sha256).await?).into_owned();
            out.push(OutputRef {
                artifact_id: a.id,
                name: a.name,
                media_type: a.media_type,
                content: Arc::from(content),
            });
        }
        // Keep the order the node declared its outputs in.
        out.sort_by_key(|o| artifact_ids.iter().position(|id| id == &o.artifact_id));
        Ok(out)
    }
}

/// Longest config or inputs text kept on a node record. Larger documents
/// stay whole where they live (the workflow snapshot, the input
/// artifacts); every record re-storing them would make each replay of a
/// big workflow cost its size again.
const MAX_RECORDED_TEXT: usize = 8 * 1024;

pub(crate) fn clip_for_record(text: String) -> String {
    if text.len() <= MAX_RECORDED_TEXT {
        return text;
    }
    let mut end = MAX_RECORDED_TEXT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!(
        "{}… [{} bytes in all; see the workflow and the input artifacts]",
        &text[..end],
        text.len()
    )
}

/// A run about to start, before it has a primary key.
pub(crate) fn new_run(
    workflow: &Workflow,
    src: &WorkflowSource<'_>,
    replay: Option<ReplayInfo>,
) -> Run {
    let total = workflow.nodes.len() as i32;
    Run {
        pk: 0,
        id: new_id("run"),
        workflow_name: workflow.name.clone(),
        workflow_description: workflow.description.clone(),
        workflow_sha256: sha256_hex(src.text.as_bytes()),
        files: src.files.clone(),
        variables: src.variables.clone(),
        status: RunStatus::Pending,
        created_at: now_micros(),
        started_at: None,
        finished_at: None,
        counts: NodeCounts {
            total,
            pending: total,
            ..Default::default()
        },
        usage: Usage::default(),
        failure: None,
        replay,
    }
}

/// The workflow text as it may be stored: literal credentials in config
/// replaced by a marker. A node that runs again from the snapshot (a
/// replay, a resumed run) fails with the marker, saying to pass the key as
/// `${env.NAME}` (`config::resolve`).
pub(crate) fn redact_snapshot(text: &str, workflow: &Workflow) -> String {
    let mut literals = Vec::new();
    for node in &workflow.nodes {
        secrets::literal_secrets(&node.config, &mut literals);
    }
    secrets::redact_literals(text, &literals)
}

pub(crate) fn new_node_execution(
    run_id: &str,
    pos: usize,
    node: &workflow::Node,
    agent: &str,
) -> NodeExecution {
    NodeExecution {
        pk: 0,
        id: new_id("nex"),
        run_id: run_id.to_string(),
        node_id: node.id.clone(),
        position: pos as i32,
        status: NodeStatus::Pending,
        agent: agent.to_string(),
        config_json: clip_for_record(
            serde_json::Value::Object(secrets::redact_config(&node.config)).to_string(),
        ),
        prompt: None,
        model: None,
        inputs_json: None,
        input_artifacts: Vec::new(),
        output_artifacts: Vec::new(),
        error: None,
        error_origin: None,
        started_at: None,
        finished_at: None,
        latency_ms: None,
        usage: Usage::default(),
        attempt_count: 0,
        attempts: Vec::new(),
        blocked_by: Vec::new(),
        reused_from_run: None,
        reused_from_node_execution: None,
        depends_on: node.depends_on.clone(),
    }
}

/// Picks a node execution by node id, or by node-execution id or a unique
/// prefix of one.
pub fn select_step<'a>(nodes: &'a [NodeExecution], step: &str) -> EngineResult<&'a NodeExecution> {
    let step = step.trim();
    if let Some(n) = nodes.iter().find(|n| n.node_id == step || n.id == step) {
        return Ok(n);
    }
    let matches: Vec<&NodeExecution> = nodes
        .iter()
        .filter(|n| !step.is_empty() && n.id.starts_with(step))
        .collect();
    match matches.as_slice() {
        [one] => Ok(one),
        [] => Err(EngineError::NotFound(format!(
            "Step '{}' not found in workflow",
            crate::error::echo(step)
        ))),
        many => Err(EngineError::InvalidArgument(format!(
            "Step '{step}' is ambiguous; it matches {}",
            many.iter()
                .map(|n| format!("{} ({})", n.id, n.node_id))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

fn shutting_down(last: i64) -> EngineError {
    EngineError::Unavailable(format!(
        "the server is shutting down; watch again from after sequence {last} once it is back"
    ))
}

/// History from the store, then live events, with no gap and no duplicate:
/// anything the live channel misses (lag) is re-read from the store.
/// Streamed output (sequence 0) is passed through as it comes; a watcher
/// that joins while a node streams first gets that node's text so far.
fn async_stream(
    engine: Engine,
    run: Run,
    after: i64,
    live: Option<broadcast::Receiver<Event>>,
    partial: Vec<Event>,
) -> impl Stream<Item = EngineResult<Event>> {
    let watch = Watch {
        engine,
        run,
        last: after,
        live,
        buf: std::collections::VecDeque::new(),
        catch_up: partial,
        ended_nodes: std::collections::HashSet::new(),
        ended: false,
    };
    futures::stream::unfold(watch, |mut w| async move {
        let item = w.next().await?;
        if item.is_err() {
            w.ended = true;
        }
        Some((item, w))
    })
}

struct Watch {
    engine: Engine,
    run: Run,
    last: i64,
    live: Option<broadcast::Receiver<Event>>,
    buf: std::collections::VecDeque<Event>,
    /// Text streamed before this watcher joined, sent once it has caught up.
    catch_up: Vec<Event>,
    /// Nodes whose end this watcher has seen: their catch-up text is stale.
    ended_nodes: std::collections::HashSet<String>,
    ended: bool,
}

impl Watch {
    async fn next(&mut self) -> Option<EngineResult<Event>> {
        loop {
            if let Some(mut e) = self.buf.pop_front() {
                if e.sequence == 0 {
                    e.run_id = self.run.id.clone();
                    return Some(Ok(e));
                }
                self.last = e.sequence;
                match e.kind {
                    EventKind::RunFinished => {
                        self.ended = true;
                        self.buf.clear();
                    }
                    EventKind::NodeCompleted
                    | EventKind::NodeFailed
                    | EventKind::NodeCancelled
                    | EventKind::NodeSkipped => {
                        self.ended_nodes.extend(e.node_id.clone());
                    }
                    _ => {}
                }
                return Some(Ok(e));
            }
            if self.ended {
                return None;
            }
            // Catch up from the store first.
            match self
                .engine
                .0
                .store
                .events_after(&self.run, self.last, 500)
                .await
            {
                Err(e) => return Some(Err(e)),
                Ok(events) if !events.is_empty() => {
                    self.buf.extend(events);
                    continue;
                }
                Ok(_) => {}
            }
            if !self.catch_up.is_empty() {
                let ended = &self.ended_nodes;
                self.buf.extend(
                    self.catch_up
                        .drain(..)
                        .filter(|e| e.node_id.as_ref().is_none_or(|n| !ended.contains(n))),
                );
                continue;
            }
            // Caught up. A finished run (or one not executing here) ends the stream.
            let shutdown = self.engine.0.shutdown.clone();
            let Some(rx) = self.live.as_mut() else {
                let current = self.engine.0.store.find_run(RunRef(&self.run.id)).await;
                match current {
                    Ok(r) if !r.status.is_finished() => {
                        // Executing in another process: poll the store.
                        tokio::select! {
                            _ = tokio::time::sleep(std::time::Duration::from_millis(200)) => continue,
                            _ = shutdown.cancelled() => return Some(Err(shutting_down(self.last))),
                        }
                    }
                    _ => return None,
                }
            };
            let received = tokio::select! {
                r = rx.recv() => r,
                _ = shutdown.cancelled() => return Some(Err(shutting_down(self.last))),
            };
            match received {
                Ok(e) if e.sequence == 0 => self.buf.push_back(e),
                Ok(e) if e.sequence <= self.last => continue,
                Ok(e) if e.sequence == self.last + 1 => self.buf.push_back(e),
                // A gap or lag: the store has everything committed.
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => {
                    self.live = None;
                    continue;
                }
            }
        }
    }
}
