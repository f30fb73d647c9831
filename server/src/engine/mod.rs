//! The workflow engine: validates workflows, starts and resumes runs,
//! cancels them, and streams their events. It knows nothing of gRPC; the
//! `api` layer translates its types.
//!
//! Where things live:
//! - this file: the front door (`Engine`): open, validate, start, cancel;
//! - `run/`: executing a run — the state machine that decides what starts,
//!   what is skipped and when a node is retried (`run/machine.rs`), and the
//!   driver that carries its decisions out and journals them;
//! - `replay/`: planning a replay (`plan.rs`) and starting it (`start.rs`);
//! - `recovery.rs`: resuming runs a previous process left unfinished;
//! - `reads.rs`, `watch_stream.rs`: reading runs back and following them;
//! - `workflow`, `template`, `config`, `secrets`: what a workflow says and
//!   how a node's inputs and config are resolved;
//! - `agents/`: the agents a node runs (local, llm, a2a);
//! - `workers/`: `worker://` nodes, run by the user's worker processes;
//! - `committer.rs`: each run's group commit to the store.

mod active;
pub mod agents;
pub mod bundle;
mod cluster;
mod committer;
mod config;
pub mod diff;
pub mod experiments;
mod once;
mod parsed;
mod reads;
mod records;
mod recovery;
pub mod replay;
mod retention;
pub mod run;
pub mod secrets;
pub mod template;
mod waits;
mod watch_stream;
pub mod workers;
pub mod workflow;

pub use active::ActiveRun;
pub use records::select_step;
pub(crate) use records::{clip_for_record, new_node_execution, new_run, redact_snapshot};
pub use replay::ReplayRequest;
pub use waits::{Wait, WaitKind, WaitValue};

use crate::Settings;
use crate::error::{EngineError, EngineResult, Reason};
use crate::model::*;
use crate::store::{NewRun, RequestKey, RunRef, Store, StoreOptions, WriteBatch};
use run::{RunDriver, RunStart};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, broadcast, mpsc, watch};
use tokio_util::sync::CancellationToken;
use workflow::{LoadOptions, Loaded, Workflow};

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
    parsed: parsed::ParsedWorkflows,
    /// Connected workers and the tasks of `worker://` nodes.
    pub workers: Arc<workers::WorkerHub>,
    /// Experiments this process runs.
    experiments: experiments::RunningExperiments,
    /// On a database shared with other servers, this server's part.
    cluster: Option<cluster::Cluster>,
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
            pool_size: settings.db_pool_size,
        };
        let store = match &settings.postgres {
            None => Store::open(&settings.db_path, &opts).await?,
            Some(pg) => {
                let claim = crate::store::Claim {
                    owner: pg.server_id.clone(),
                    lease: pg.lease,
                };
                Store::open_postgres(&pg.url, &opts, claim).await?
            }
        };
        let settings_cluster = settings
            .postgres
            .as_ref()
            .map(|pg| cluster::Cluster::new(pg.lease));
        let permits = Arc::new(Semaphore::new(settings.max_parallel_nodes.max(1)));
        let run_permits = Arc::new(Semaphore::new(settings.max_concurrent_runs.max(1)));
        let workers = workers::WorkerHub::new(settings.worker_lease);
        if let Some(pg) = &settings.postgres {
            workers.set_relay(Arc::new(workers::relay::Relay::new(
                store.clone(),
                pg.lease,
            )));
        }
        Ok(Self(Arc::new(EngineInner {
            store,
            workers,
            settings,
            active: Mutex::new(HashMap::new()),
            node_permits: permits,
            run_permits,
            shutdown: CancellationToken::new(),
            parsed: parsed::ParsedWorkflows::default(),
            experiments: experiments::RunningExperiments::default(),
            cluster: settings_cluster,
        })))
    }

    /// Ends every open event stream, so the server can stop without
    /// waiting for runs that wait for people. Runs resume at the next start.
    /// Cancelled once shutdown begins: open streams end.
    pub fn shutting_down(&self) -> CancellationToken {
        self.0.shutdown.clone()
    }

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
            return Err(EngineError::resource_exhausted(format!(
                "the workflow ({} bytes), its files ({files} bytes) and variables ({variables} bytes) come to {size} bytes; \
                 the limit for all three together is {limit} bytes",
                src.text.len()
            ))
            .meta("limit", limit.to_string())
            .meta("size", size.to_string()));
        }
        if src.text.trim().is_empty() {
            return Err(EngineError::invalid_argument("Workflow is empty"));
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

    /// A valid workflow, parsed once for as long as it stays in use: a
    /// service that starts the same workflow again and again parses it once.
    pub(crate) async fn load_valid(&self, src: &WorkflowSource<'_>) -> EngineResult<Arc<Workflow>> {
        let key = parsed::key(
            &crate::store::sha256_hex(src.text.as_bytes()),
            src.files,
            src.variables,
        );
        if let Some(workflow) = self.0.parsed.get(&key) {
            return Ok(workflow);
        }
        let loaded = self.validate(src, false).await?;
        match loaded.workflow {
            Some(w) if loaded.errors.is_empty() => {
                let workflow = Arc::new(w);
                self.0.parsed.insert(key, workflow.clone());
                Ok(workflow)
            }
            _ => Err(loaded.into_error()),
        }
    }

    /// Runs this server executes now.
    pub fn runs_in_flight(&self) -> usize {
        self.0.active.lock().expect("active runs lock").len()
    }

    /// Connected workers and the tasks of `worker://` nodes.
    pub fn workers(&self) -> &Arc<workers::WorkerHub> {
        &self.0.workers
    }

    /// Takes one of the server's run slots, or refuses at once: over the
    /// cap, new runs are refused, not queued.
    pub(crate) fn admit(&self) -> EngineResult<OwnedSemaphorePermit> {
        self.0.run_permits.clone().try_acquire_owned().map_err(|_| {
            let limit = self.0.settings.max_concurrent_runs;
            EngineError::resource_exhausted(format!(
                "{limit} runs are executing, the most this server runs at once; retry when one finishes"
            ))
            .reason(Reason::ServerBusy)
            .meta("limit", limit.to_string())
            .retry_after(std::time::Duration::from_secs(1))
        })
    }

    /// A run slot; at the cap, on a shared database, None: the run is
    /// stored for another server (or this one, once a slot frees) to
    /// claim. Alone, a server at its cap refuses new runs.
    pub(crate) fn admit_or_leave(&self) -> EngineResult<Option<OwnedSemaphorePermit>> {
        match self.admit() {
            Ok(permit) => Ok(Some(permit)),
            Err(_) if self.0.cluster.is_some() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Stores a new run and starts executing it; returns at once.
    pub async fn start_run(&self, src: WorkflowSource<'_>) -> EngineResult<Run> {
        self.start_run_once(src, None).await
    }

    /// As `start_run`, for a request that may name itself: a retry with
    /// its `request` key returns the run the first call stored.
    pub async fn start_run_once(
        &self,
        src: WorkflowSource<'_>,
        request: Option<RequestKey>,
    ) -> EngineResult<Run> {
        let key = request.clone();
        self.once(key.as_ref(), self.start_new_run(src, request))
            .await
    }

    async fn start_new_run(
        &self,
        src: WorkflowSource<'_>,
        request: Option<RequestKey>,
    ) -> EngineResult<Run> {
        let workflow = self.load_valid(&src).await?;
        let stored = redact_snapshot(src.text, &workflow);
        let src = WorkflowSource {
            text: &stored,
            ..src
        };
        let permit = self.admit_or_leave()?;
        let run = new_run(&workflow, &src, None);
        let nodes: Vec<NodeExecution> = workflow
            .nodes
            .iter()
            .enumerate()
            .map(|(pos, node)| new_node_execution(&run.id, pos, node, &node.agent))
            .collect();
        let new = NewRun {
            run,
            workflow: src.text.to_string(),
            nodes,
            then: WriteBatch::default(),
            claimed: permit.is_some(),
            request,
        };
        self.launch(new, move |stored| RunStart {
            run: stored.run,
            agents: workflow.nodes.iter().map(|n| n.agent.clone()).collect(),
            workflow,
            nodes: stored.nodes,
            last_seq: 0,
            permit,
        })
        .await
    }

    /// Stores a new run and starts its driver with what `start` makes of
    /// the stored run. Runs to the end even when the caller stops
    /// waiting (a client that hangs up): a run stored is a run driven,
    /// here or, when not claimed, by whichever server claims it.
    pub(crate) async fn launch(
        &self,
        new: NewRun,
        start: impl FnOnce(NewRun) -> RunStart + Send + 'static,
    ) -> EngineResult<Run> {
        let engine = self.clone();
        // The run's trace continues the call's (telemetry).
        tokio::spawn(crate::telemetry::carried(async move {
            let stored = engine.0.store.insert_run(new).await?;
            if !stored.claimed {
                return Ok(stored.run);
            }
            let start = start(stored);
            let run = start.run.clone();
            engine.spawn_driver(start, CancellationToken::new())?;
            Ok(run)
        }))
        .await
        .map_err(|e| EngineError::Internal(format!("starting a run: {e}")))?
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
            run_pk: start.run.pk,
            cancel,
            abandon: CancellationToken::new(),
            events,
            done,
            answers,
            partial: Mutex::new(HashMap::new()),
        });
        let run_id = start.run.id.clone();
        // Every line logged about the run, in its driver, its committer
        // and its nodes' attempts, carries the run id.
        let span = tracing::info_span!("run", run_id = %run_id);
        let driver = span.in_scope(|| RunDriver::new(self.0.clone(), active.clone(), start))?;
        self.0
            .active
            .lock()
            .expect("active runs lock")
            .insert(run_id, active);
        tokio::spawn(tracing::Instrument::instrument(
            driver.drive(answers_rx),
            span,
        ));
        Ok(())
    }

    /// Whether this engine drives `run_id` (it started or resumed it, and
    /// the run has not finished).
    pub fn drives(&self, run_id: &str) -> bool {
        self.0.active_run(run_id).is_some()
    }

    /// Cancels a run and waits until its final state is written.
    pub async fn cancel_run(&self, run_ref: &str) -> EngineResult<Run> {
        let run = self.0.store.find_run(RunRef(run_ref)).await?;
        if run.status.is_finished() {
            return Err(EngineError::failed_precondition(format!(
                "Run '{}' has already finished ({})",
                run.id, run.status
            ))
            .reason(Reason::RunFinished)
            .meta("runId", &run.id));
        }
        let active = self.0.active_run(&run.id);
        if active.is_none() && self.0.cluster.is_some() {
            // No server executes it (they are all at their cap, or its
            // server died): take it and cancel it here.
            if self.0.store.claim_run(run.pk).await? {
                return self.resume_run(&run.id, true).await;
            }
            self.cancel_elsewhere(&run).await?;
            return self.get_run(&run.id).await;
        }
        let Some(active) = active else {
            return Err(EngineError::failed_precondition(format!(
                "Run '{}' is not executing in this server; it resumes (and can be cancelled) when the server that owns its database restarts",
                run.id
            ))
            .reason(Reason::RunNotExecuting)
            .meta("runId", &run.id));
        };
        let mut done = active.done.subscribe();
        active.cancel.cancel();
        let _ = done.wait_for(|d| *d).await;
        self.get_run(&run.id).await
    }
}

impl EngineInner {
    /// The run, if it executes in this process.
    fn active_run(&self, run_id: &str) -> Option<Arc<ActiveRun>> {
        self.active
            .lock()
            .expect("active runs lock")
            .get(run_id)
            .cloned()
    }

    fn finish_active(&self, run_id: &str) {
        if let Some(active) = self.active.lock().expect("active runs lock").remove(run_id) {
            let _ = active.done.send(true);
        }
        // A slot freed: runs waiting for a server may be claimed here.
        if let Some(cluster) = &self.cluster {
            cluster.room_freed();
        }
    }
}
