//! The DAG executor: one driver task per run owns the run's state, starts
//! nodes whose dependencies are done, persists each step in one
//! transaction, then publishes its events. Agents run in their own tasks,
//! bounded by a server-wide semaphore; cancelling drops them mid-flight.

use super::agents::{self, AgentCall, AgentError, OutputRef};
use super::committer::Committer;
use super::secrets;
use super::template::{self, Ref, Resolved};
use super::workflow::{Node, Workflow};
use super::{ActiveRun, EngineInner};
use crate::error::EngineError;
use crate::model::*;
use crate::store::WriteBatch;
use futures::FutureExt;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{OwnedSemaphorePermit, mpsc};
use tokio::task::JoinSet;

/// Why a node was skipped; failures propagate, false conditions only skip
/// nodes whose every dependency was skipped.
#[derive(Clone, Copy, PartialEq, Eq)]
enum SkipCause {
    Failure,
    Condition,
}

/// Messages from running node tasks to the driver.
enum NodeMsg {
    /// An attempt got its execution slot and the agent is being invoked.
    Started {
        pos: usize,
        attempt: u32,
        at: Micros,
    },
    Delta {
        pos: usize,
        text: String,
    },
    Retrying {
        pos: usize,
        attempt: u32,
        error: String,
        origin: FailureOrigin,
    },
}

/// Acknowledges that a write is durable (or why it is not).
pub type Ack = tokio::sync::oneshot::Sender<Result<(), EngineError>>;

/// The two kinds of human node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitKind {
    Input,
    Approval,
}

impl WaitKind {
    pub fn of(agent: &str) -> Option<Self> {
        match agent {
            "human://input" => Some(Self::Input),
            "human://approve" => Some(Self::Approval),
            _ => None,
        }
    }
    fn default_prompt(self) -> &'static str {
        match self {
            Self::Input => "Input required",
            Self::Approval => "Approve?",
        }
    }
}

pub enum WaitValue {
    Input(String),
    Decision {
        approved: bool,
        feedback: Option<String>,
    },
}

/// An answer to a waiting node, acknowledged once it is durable.
pub struct WaitAnswer {
    pub node_id: String,
    pub value: WaitValue,
    pub ack: Ack,
}

struct NodeDone {
    pos: usize,
    started: Instant,
    result: Result<agents::AgentOutput, (String, FailureOrigin)>,
    secrets: Vec<String>,
}

pub struct RunDriver {
    engine: Arc<EngineInner>,
    active: Arc<ActiveRun>,
    pub run: Run,
    workflow: Arc<Workflow>,
    /// Node records by workflow position. Prefilled (reused) nodes have pk 0.
    nodes: Vec<NodeExecution>,
    /// Agent URI per position (replay swaps applied).
    agents_by_pos: Vec<String>,
    skip_cause: Vec<Option<SkipCause>>,
    outputs: Vec<Option<Arc<Vec<OutputRef>>>>,
    pending_deps: Vec<usize>,
    dependents: Vec<Vec<usize>>,
    consumers_left: Vec<usize>,
    next_seq: i64,
    /// Writes not yet handed to the committer.
    pending: WriteBatch,
    /// Answers to human waits, from ResolveWait.
    answers: Option<mpsc::UnboundedReceiver<WaitAnswer>>,
    committer: Committer,
    /// Agent tasks to start once their start is committed.
    to_spawn: Vec<std::pin::Pin<Box<dyn std::future::Future<Output = NodeDone> + Send>>>,
    /// The run's slot among the server's executing runs; released while
    /// the run only waits for people.
    permit: Option<OwnedSemaphorePermit>,
}

impl RunDriver {
    /// Builds the driver for a run whose node rows exist. `prefilled`
    /// holds nodes decided before execution (reused or overridden).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        engine: Arc<EngineInner>,
        active: Arc<ActiveRun>,
        run: Run,
        workflow: Arc<Workflow>,
        nodes: Vec<NodeExecution>,
        agents_by_pos: Vec<String>,
        answers: mpsc::UnboundedReceiver<WaitAnswer>,
        next_seq: i64,
        permit: Option<OwnedSemaphorePermit>,
    ) -> Self {
        let n = workflow.nodes.len();
        let (engine_for_committer, active_for_committer) = (engine.clone(), active.clone());
        let dependents = workflow.dependents();
        let mut consumers_left = vec![0; n];
        for node in &workflow.nodes {
            let mut producers: Vec<&String> = node.depends_on.iter().collect();
            producers.extend(
                node.referenced_nodes
                    .iter()
                    .filter(|r| !node.depends_on.contains(r)),
            );
            for p in producers {
                if let Some(&i) = workflow.index.get(p.as_str()) {
                    consumers_left[i] += 1;
                }
            }
        }
        let outputs = vec![None; n];
        let pending_deps = workflow
            .nodes
            .iter()
            .map(|node| {
                node.depends_on
                    .iter()
                    .filter(|d| {
                        workflow
                            .index
                            .get(d.as_str())
                            .is_none_or(|&i| !nodes[i].status.is_terminal())
                    })
                    .count()
            })
            .collect();
        let skip_cause = nodes
            .iter()
            .map(|n| match n.status {
                NodeStatus::Failed | NodeStatus::Cancelled => Some(SkipCause::Failure),
                NodeStatus::Skipped if !n.blocked_by.is_empty() => Some(SkipCause::Failure),
                NodeStatus::Skipped => Some(SkipCause::Condition),
                _ => None,
            })
            .collect();
        Self {
            engine,
            active,
            run,
            workflow,
            nodes,
            agents_by_pos,
            skip_cause,
            outputs,
            pending_deps,
            dependents,
            consumers_left,
            next_seq,
            pending: WriteBatch::default(),
            answers: Some(answers),
            committer: Committer::start(engine_for_committer, active_for_committer),
            to_spawn: Vec::new(),
            permit,
        }
    }

    fn event(
        &mut self,
        kind: EventKind,
        node_id: Option<&str>,
        detail: EventDetail,
    ) -> (i64, Event) {
        self.next_seq += 1;
        (
            self.run.pk,
            Event {
                run_id: self.run.id.clone(),
                sequence: self.next_seq,
                kind,
                time: now_micros(),
                node_id: node_id.map(str::to_string),
                detail,
            },
        )
    }

    /// Adds a step's writes to the pending batch, handed to the committer
    /// by `flush`.
    fn stage(&mut self, batch: WriteBatch) {
        self.pending.merge(batch);
    }

    /// Hands the pending writes to the run's committer without waiting.
    /// Execution runs ahead of the disk; events are published only once
    /// committed, so nothing a client sees can be lost, and a node whose
    /// completion was not yet durable when the process died simply runs
    /// again on restart.
    /// The committer's queue is bounded: when the disk falls behind,
    /// execution waits instead of piling up writes in memory.
    async fn flush(&mut self) -> Result<(), String> {
        let batch = std::mem::take(&mut self.pending);
        self.committer.send(batch, None).await
    }

    /// Flushes, and answers `ack` once everything so far is durable.
    async fn flush_then_ack(&mut self, ack: Ack) {
        let batch = std::mem::take(&mut self.pending);
        // A failure is answered on `ack` and seen by the next flush.
        let _ = self.committer.send(batch, Some(ack)).await;
    }

    /// Flushes and waits until everything staged so far is durable.
    async fn sync(&mut self) -> Result<(), String> {
        self.flush().await?;
        self.committer.close().await
    }

    pub async fn drive(mut self) {
        let outcome = match AssertUnwindSafe(self.drive_inner()).catch_unwind().await {
            Ok(outcome) => outcome,
            Err(panic) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "no message".into());
                tracing::error!(run = %self.run.id, panic = %what, "the run's executor panicked");
                Err(format!(
                    "internal error: the run stopped on a bug in retake ({what}); see the server log"
                ))
            }
        };
        // The final state is staged: free the slot before it is published,
        // so a client that sees the run end can start another at once.
        self.permit = None;
        let result = match outcome {
            Ok(()) => self.sync().await,
            Err(e) => Err(e),
        };
        if let Err(cause) = result {
            tracing::error!(run = %self.run.id, %cause, "run stopped");
            self.record_stop(cause).await;
        }
        self.engine.finish_active(&self.run.id);
    }

    /// Fails a run that cannot go on, on top of whatever of it is durable:
    /// nodes left unfinished there are cancelled, with `cause` as the
    /// run's failure. Retried while the store refuses writes, so the cause
    /// is recorded as soon as a write succeeds.
    async fn record_stop(&mut self, cause: String) {
        let _ = self.committer.close().await;
        let mut backoff = std::time::Duration::from_millis(100);
        loop {
            match self.stop_batch(&cause).await {
                Ok(batch) => match self.engine.store.commit(&batch).await {
                    Ok(()) => {
                        for (_, e) in batch.events {
                            let _ = self.active.events.send(e);
                        }
                        return;
                    }
                    Err(e) if e.is_storage_unavailable() => {}
                    Err(e) => {
                        tracing::error!(run = %self.run.id, error = %e, "cannot record that the run stopped; it resumes at the next start");
                        return;
                    }
                },
                Err(e) => {
                    tracing::error!(run = %self.run.id, error = %e, "cannot read the run's durable state; it resumes at the next start");
                    return;
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(std::time::Duration::from_secs(5));
        }
    }

    async fn stop_batch(&mut self, cause: &str) -> Result<WriteBatch, EngineError> {
        let store = &self.engine.store;
        self.next_seq = store.last_event_sequence(self.run.pk).await?;
        let now = now_micros();
        let mut batch = WriteBatch::default();
        let mut durable = store.nodes_of_run(self.run.pk).await?;
        for rec in durable.iter_mut().filter(|n| !n.status.is_terminal()) {
            rec.status = NodeStatus::Cancelled;
            rec.error = Some(format!("not finished: {cause}"));
            rec.error_origin = Some(FailureOrigin::Internal);
            rec.finished_at = Some(now);
            if let Some(last) = rec.attempts.last_mut().filter(|a| a.finished_at.is_none()) {
                last.finished_at = Some(now);
                last.error = rec.error.clone();
                last.error_origin = Some(FailureOrigin::Interrupted);
            }
            batch.nodes.push(rec.clone());
        }
        let stopped: Vec<String> = batch.nodes.iter().map(|n| n.node_id.clone()).collect();
        for node_id in &stopped {
            let detail = EventDetail {
                node_status: Some(NodeStatus::Cancelled),
                message: format!("not finished: {cause}"),
                ..Default::default()
            };
            batch
                .events
                .push(self.event(EventKind::NodeCancelled, Some(node_id), detail));
        }
        self.run.counts = NodeCounts::of_records(
            self.nodes.len() as i32,
            durable.iter().map(|rec| (rec.status, 1)),
        );
        self.run.status = RunStatus::Failed;
        self.run.finished_at = Some(now);
        self.run.failure = Some(RunFailure {
            node_id: String::new(),
            message: cause.to_string(),
            origin: FailureOrigin::Internal,
        });
        batch.run = Some(self.run.clone());
        let detail = EventDetail {
            run_status: Some(RunStatus::Failed),
            message: cause.to_string(),
            ..Default::default()
        };
        batch
            .events
            .push(self.event(EventKind::RunFinished, None, detail));
        Ok(batch)
    }

    /// Holds a run slot unless the run only waits for people.
    async fn take_slot(&mut self) {
        if self.permit.is_none() && self.run.status != RunStatus::Waiting {
            // The semaphore is never closed.
            self.permit = self.engine.run_permits.clone().acquire_owned().await.ok();
        }
    }

    async fn drive_inner(&mut self) -> Result<(), String> {
        self.take_slot().await;
        if self.run.status == RunStatus::Pending {
            self.run.status = RunStatus::Running;
            self.run.started_at = Some(now_micros());
            let mut batch = WriteBatch {
                run: Some(self.run.clone()),
                ..Default::default()
            };
            let detail = EventDetail {
                run_status: Some(RunStatus::Running),
                ..Default::default()
            };
            batch
                .events
                .push(self.event(EventKind::RunStarted, None, detail));
            // Reused and overridden nodes are announced once, up front.
            // Reuse events carry only the node id: a replay that reuses
            // thousands of nodes must stay small on disk.
            for pos in 0..self.nodes.len() {
                let node = &self.nodes[pos];
                let (kind, detail) = match node.status {
                    NodeStatus::Reused => (EventKind::NodeReused, EventDetail::default()),
                    NodeStatus::Completed => (
                        EventKind::NodeCompleted,
                        EventDetail {
                            node_status: Some(NodeStatus::Completed),
                            message: "output overridden".into(),
                            artifact_ids: node.output_artifacts.clone(),
                            ..Default::default()
                        },
                    ),
                    _ => continue,
                };
                let node_id = node.node_id.clone();
                batch.events.push(self.event(kind, Some(&node_id), detail));
            }
            self.stage(batch);
        }

        let (msg_tx, mut msg_rx) = mpsc::unbounded_channel::<NodeMsg>();
        let mut tasks: JoinSet<NodeDone> = JoinSet::new();
        let mut ready: VecDeque<usize> = (0..self.nodes.len())
            .filter(|&p| {
                let status = self.nodes[p].status;
                !status.is_terminal() && status != NodeStatus::Waiting && self.pending_deps[p] == 0
            })
            .collect();
        let cancel = self.active.cancel.clone();
        let mut answers = self.answers.take().expect("driven once");

        loop {
            if !ready.is_empty() {
                // No new node starts while the store refuses writes.
                tokio::select! {
                    writable = self.committer.writable() => writable?,
                    _ = cancel.cancelled() => {}
                }
            }
            while let Some(pos) = ready.pop_front() {
                if cancel.is_cancelled() {
                    break;
                }
                if let Some(done) = self.start_node(pos, &msg_tx).await? {
                    for d in done {
                        ready.push_back(d);
                    }
                }
            }
            for job in self.to_spawn.drain(..) {
                tasks.spawn(job);
            }
            let waiting = self.nodes.iter().any(|n| n.status == NodeStatus::Waiting);
            if (tasks.is_empty() && !waiting) || cancel.is_cancelled() {
                self.flush().await?;
                break;
            }
            // Only waits left: the run is WAITING until someone answers.
            self.set_run_status(if tasks.is_empty() {
                RunStatus::Waiting
            } else {
                RunStatus::Running
            });
            self.flush().await?;
            tokio::select! {
                biased;
                _ = cancel.cancelled() => break,
                Some(msg) = msg_rx.recv() => self.on_message(msg).await?,
                Some(answer) = answers.recv() => {
                    for d in self.on_answer(answer).await? {
                        ready.push_back(d);
                    }
                    self.take_slot().await;
                }
                Some(joined) = tasks.join_next() => {
                    let mut joined = Some(joined);
                    // Take every other finished node too: one commit for all.
                    while let Some(result) = joined.take().or_else(|| tasks.try_join_next()) {
                        // A panic in an agent is a bug in retake: the driver
                        // fails the run (see `drive`).
                        let done = result.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
                        // What the task sent before it ended is recorded first.
                        while let Ok(msg) = msg_rx.try_recv() {
                            self.on_message(msg).await?;
                        }
                        for d in self.on_done(done).await? {
                            ready.push_back(d);
                        }
                    }
                }
            }
        }

        if cancel.is_cancelled() {
            tasks.abort_all();
            while tasks.join_next().await.is_some() {}
            return self.finish_cancelled().await;
        }
        self.finish().await
    }

    /// Decides a ready node: skip it, or persist its start and spawn it.
    /// Returns dependents that became ready when the node was skipped.
    async fn start_node(
        &mut self,
        pos: usize,
        msg_tx: &mpsc::UnboundedSender<NodeMsg>,
    ) -> Result<Option<Vec<usize>>, String> {
        let workflow = self.workflow.clone();
        let node = &workflow.nodes[pos];
        let deps: Vec<usize> = node
            .depends_on
            .iter()
            .map(|d| self.position(d))
            .collect::<Result<_, _>>()?;

        let failed_deps: Vec<String> = deps
            .iter()
            .filter(|&&d| self.skip_cause[d] == Some(SkipCause::Failure))
            .map(|&d| workflow.nodes[d].id.clone())
            .collect();
        if !failed_deps.is_empty() {
            let reason = format!(
                "skipped: upstream {} did not complete",
                failed_deps
                    .iter()
                    .map(|d| format!("'{d}'"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            return self
                .skip(pos, SkipCause::Failure, failed_deps, reason)
                .await
                .map(Some);
        }
        if !deps.is_empty()
            && deps
                .iter()
                .all(|&d| self.skip_cause[d] == Some(SkipCause::Condition))
        {
            let blockers = deps
                .iter()
                .map(|&d| workflow.nodes[d].id.clone())
                .collect::<Vec<_>>();
            let reason = format!(
                "skipped: every dependency was skipped ({})",
                blockers.join(", ")
            );
            return self
                .skip(pos, SkipCause::Condition, blockers, reason)
                .await
                .map(Some);
        }

        let upstream = self.load_upstream(node).await?;
        let variables = self.run.variables.clone();
        if let Some(cond) = &node.when {
            let (left, right) = {
                let mut resolve = resolver(&variables, &upstream);
                (
                    template::render_text(&cond.left, &mut resolve).unwrap_or_default(),
                    template::render_text(&cond.right, &mut resolve).unwrap_or_default(),
                )
            };
            if !cond.holds(&left, &right) {
                let reason = format!(
                    "skipped: condition `{}` was false ('{}' vs '{}')",
                    cond.raw,
                    truncate(&left, 80),
                    truncate(&right, 80)
                );
                let blockers = node.referenced_nodes.iter().cloned().collect();
                return self
                    .skip(pos, SkipCause::Condition, blockers, reason)
                    .await
                    .map(Some);
            }
        }

        // Render what the agent sees. Failures here are the node's own.
        let (inputs_json, prompt) = {
            let mut resolve = resolver(&variables, &upstream);
            let inputs_json = match &node.inputs {
                Some(inputs) => {
                    let mut out = String::new();
                    template::render_json(inputs, &mut resolve, &mut out)?;
                    Some(out)
                }
                None => None,
            };
            let prompt = match &node.system_prompt {
                Some(p) => Some(template::render_text(p, &mut resolve)?),
                None => None,
            };
            (inputs_json, prompt)
        };
        let input_artifacts: Vec<String> = {
            let mut ids = Vec::new();
            for (_, outs) in &upstream {
                for o in outs.iter() {
                    if !ids.contains(&o.artifact_id) {
                        ids.push(o.artifact_id.clone());
                    }
                }
            }
            ids
        };
        let resolved = super::config::resolve(
            &self.agents_by_pos[pos],
            &node.config,
            &variables,
            self.engine.settings.env_policy.as_deref(),
        );
        let (config, secrets_list, config_error) =
            (resolved.config, resolved.secrets, resolved.error);
        let direct: Vec<(String, Arc<Vec<OutputRef>>)> = upstream
            .into_iter()
            .filter(|(id, _)| node.depends_on.contains(id))
            .collect();
        self.release_upstream(node);

        if let Some(kind) = WaitKind::of(&self.agents_by_pos[pos]) {
            let context = inputs_json.unwrap_or_else(|| {
                let call = AgentCall {
                    node_id: node.id.clone(),
                    agent: String::new(),
                    inputs_json: None,
                    upstream: direct,
                    prompt: None,
                    config: Map::new(),
                    attempt: 1,
                    deltas: mpsc::unbounded_channel().0,
                };
                agents::echo_document(&call)
            });
            self.start_wait(pos, kind, prompt, context, input_artifacts);
            return Ok(None);
        }

        let now = now_micros();
        let rec = &mut self.nodes[pos];
        if let Some(last) = rec.attempts.last_mut().filter(|a| a.finished_at.is_none()) {
            // Left RUNNING by a previous process: that attempt was lost to
            // the machine, and does not count against the retry budget.
            last.finished_at = Some(now);
            last.error = Some("interrupted: the server stopped during this attempt".into());
            last.error_origin = Some(FailureOrigin::Interrupted);
        }
        let first_attempt = rec.attempt_count as u32 + 1;
        let failed_so_far = rec
            .attempts
            .iter()
            .filter(|a| a.error.is_some() && a.error_origin != Some(FailureOrigin::Interrupted))
            .count() as u32;
        let retry = node.retry.clone();
        // Not recorded yet: the attempt starts when the agent gets a slot
        // (NodeMsg::Started), so a node queued when the process stops has
        // lost nothing.
        rec.status = NodeStatus::Running;
        rec.agent = self.agents_by_pos[pos].clone();
        rec.inputs_json = inputs_json.clone().map(super::clip_for_record);
        rec.prompt = prompt.clone();
        rec.input_artifacts = input_artifacts;

        let (delta_tx, mut delta_rx) = mpsc::unbounded_channel::<String>();
        let call = AgentCall {
            node_id: node.id.clone(),
            agent: rec.agent.clone(),
            inputs_json,
            upstream: direct,
            prompt,
            config,
            attempt: first_attempt,
            deltas: delta_tx,
        };
        let forward = msg_tx.clone();
        let permits = self.engine.node_permits.clone();
        let deadline = std::time::Duration::from_millis(node.deadline_ms);
        self.to_spawn.push(Box::pin(async move {
            let mut started = None;
            let mut call = call;
            let result = async {
                if let Some(e) = config_error {
                    return Err((e, FailureOrigin::Agent));
                }
                let mut attempt = first_attempt;
                loop {
                    call.attempt = attempt;
                    let outcome = {
                        let _permit = permits.acquire().await.map_err(|_| ("server shutting down".to_string(), FailureOrigin::Internal))?;
                        started.get_or_insert_with(Instant::now);
                        let _ = forward.send(NodeMsg::Started { pos, attempt, at: now_micros() });
                        let run = agents::execute(&call);
                        tokio::pin!(run);
                        // Forward streamed text while the attempt runs.
                        loop {
                            tokio::select! {
                                r = tokio::time::timeout(deadline, &mut run) => break r,
                                Some(text) = delta_rx.recv() => { let _ = forward.send(NodeMsg::Delta { pos, text }); }
                            }
                        }
                    };
                    while let Ok(text) = delta_rx.try_recv() {
                        let _ = forward.send(NodeMsg::Delta { pos, text });
                    }
                    let (error, origin) = match outcome {
                        Ok(Ok(out)) => return Ok(out),
                        Ok(Err(e)) => (e, FailureOrigin::Agent),
                        Err(_) => (
                            AgentError::transient(format!("deadline of {} ms exceeded", deadline.as_millis())),
                            FailureOrigin::Timeout,
                        ),
                    };
                    let failed = failed_so_far + (attempt - first_attempt) + 1;
                    let timed_out = origin == FailureOrigin::Timeout;
                    let Some(delay) = retry.after_failure(failed, error.kind, error.retry_after, timed_out) else {
                        // Only what can succeed next time is tried again.
                        let message = if !error.is_transient() && failed < retry.max_retries {
                            format!("{} (not retried: another attempt would fail the same way)", error.message)
                        } else {
                            error.message
                        };
                        return Err((message, origin));
                    };
                    let error = secrets::scrub(&error.message, &secrets_list);
                    let _ = forward.send(NodeMsg::Retrying { pos, attempt, error, origin });
                    attempt += 1;
                    tokio::time::sleep(delay).await;
                }
            }
            .await;
            let started = started.unwrap_or_else(Instant::now);
            NodeDone { pos, started, result, secrets: secrets_list }
        }));
        Ok(None)
    }

    fn set_run_status(&mut self, status: RunStatus) {
        if self.run.status == status {
            return;
        }
        if status == RunStatus::Waiting {
            self.permit = None;
        }
        self.run.status = status;
        let mut batch = WriteBatch {
            run: Some(self.run.clone()),
            ..Default::default()
        };
        let detail = EventDetail {
            run_status: Some(status),
            ..Default::default()
        };
        batch
            .events
            .push(self.event(EventKind::RunStatusChanged, None, detail));
        self.stage(batch);
    }

    /// A human node waits: no task runs; ResolveWait answers it.
    fn start_wait(
        &mut self,
        pos: usize,
        kind: WaitKind,
        prompt: Option<String>,
        context: String,
        input_artifacts: Vec<String>,
    ) {
        let now = now_micros();
        let rec = &mut self.nodes[pos];
        rec.status = NodeStatus::Waiting;
        rec.agent = self.agents_by_pos[pos].clone();
        rec.started_at = Some(now);
        rec.attempt_count = 1;
        rec.attempts = vec![AttemptRecord {
            number: 1,
            started_at: now,
            ..Default::default()
        }];
        rec.prompt = Some(prompt.unwrap_or_else(|| kind.default_prompt().to_string()));
        rec.inputs_json = Some(super::clip_for_record(context));
        rec.input_artifacts = input_artifacts;
        let rec = rec.clone();
        let detail = EventDetail {
            node_status: Some(NodeStatus::Waiting),
            message: rec.prompt.clone().unwrap_or_default(),
            ..Default::default()
        };
        let mut batch = WriteBatch {
            nodes: vec![rec.clone()],
            ..Default::default()
        };
        batch
            .events
            .push(self.event(EventKind::WaitStarted, Some(&rec.node_id), detail));
        self.stage(batch);
    }

    /// Records a human answer as the node's outputs (origin `human`).
    async fn on_answer(&mut self, answer: WaitAnswer) -> Result<Vec<usize>, String> {
        let Some(pos) = self.workflow.index.get(&answer.node_id).copied() else {
            let _ = answer.ack.send(Err(EngineError::NotFound(format!(
                "Step '{}' not found in workflow",
                answer.node_id
            ))));
            return Ok(Vec::new());
        };
        if self.nodes[pos].status != NodeStatus::Waiting {
            let status = self.nodes[pos].status;
            let _ = answer.ack.send(Err(EngineError::FailedPrecondition(format!(
                "Node '{}' is not waiting ({status}); it cannot be answered again",
                answer.node_id
            ))));
            return Ok(Vec::new());
        }
        let workflow = self.workflow.clone();
        let node = &workflow.nodes[pos];
        let now = now_micros();
        let (message, values): (String, Vec<(String, String)>) = match &answer.value {
            WaitValue::Input(text) => (
                text.clone(),
                node.outputs
                    .iter()
                    .map(|o| (o.clone(), text.clone()))
                    .collect(),
            ),
            WaitValue::Decision { approved, feedback } => {
                let decision = if *approved { "approved" } else { "rejected" };
                let message = match feedback.as_deref().filter(|f| !f.is_empty()) {
                    Some(f) => format!("{decision}: {f}"),
                    None => decision.to_string(),
                };
                let values = node
                    .outputs
                    .iter()
                    .map(|o| {
                        (
                            o.clone(),
                            if o == "feedback" {
                                feedback.clone().unwrap_or_default()
                            } else {
                                decision.to_string()
                            },
                        )
                    })
                    .collect();
                (message, values)
            }
        };
        let mut batch = WriteBatch::default();
        let rec = &mut self.nodes[pos];
        let mut refs = Vec::new();
        for (name, value) in values {
            let derived = rec.input_artifacts.clone();
            let id = batch.add_output(
                self.run.pk,
                rec,
                &name,
                &value,
                agents::TEXT,
                ArtifactOrigin::Human,
                derived,
                now,
            );
            refs.push(OutputRef {
                artifact_id: id,
                name,
                media_type: agents::TEXT.into(),
                content: Arc::from(value),
            });
        }
        rec.status = NodeStatus::Completed;
        rec.output_artifacts = refs.iter().map(|r| r.artifact_id.clone()).collect();
        rec.finished_at = Some(now);
        rec.latency_ms = rec.started_at.map(|s| (now - s) / 1000);
        rec.model = Some("human".into());
        if let Some(last) = rec.attempts.last_mut() {
            last.finished_at = Some(now);
        }
        let rec = rec.clone();
        batch.nodes.push(rec.clone());
        let detail = EventDetail {
            node_status: Some(NodeStatus::Completed),
            message,
            ..Default::default()
        };
        batch
            .events
            .push(self.event(EventKind::WaitResolved, Some(&node.id), detail));
        let detail = EventDetail {
            node_status: Some(NodeStatus::Completed),
            attempt: 1,
            artifact_ids: rec.output_artifacts.clone(),
            latency_ms: rec.latency_ms,
            ..Default::default()
        };
        batch
            .events
            .push(self.event(EventKind::NodeCompleted, Some(&node.id), detail));
        self.stage(batch);
        if self.run.status == RunStatus::Waiting {
            self.set_run_status(RunStatus::Running);
        }
        self.flush_then_ack(answer.ack).await;
        if self.consumers_left[pos] > 0 {
            self.outputs[pos] = Some(Arc::new(refs));
        }
        self.settle(pos)
    }

    async fn on_message(&mut self, msg: NodeMsg) -> Result<(), String> {
        match msg {
            NodeMsg::Delta { pos, text } => {
                // Streamed text is not journalled: the node's output is the
                // record. Watchers get it live, and one joining mid-node
                // gets what came so far as one delta.
                self.active.publish_delta(&self.nodes[pos].node_id, text);
                Ok(())
            }
            NodeMsg::Started { pos, attempt, at } => {
                let rec = &mut self.nodes[pos];
                rec.started_at.get_or_insert(at);
                rec.attempt_count = attempt as i32;
                rec.attempts.push(AttemptRecord {
                    number: attempt as i32,
                    started_at: at,
                    ..Default::default()
                });
                let rec = rec.clone();
                let mut batch = WriteBatch {
                    nodes: vec![rec.clone()],
                    ..Default::default()
                };
                // A retry was announced by its NodeRetrying event.
                let retried = rec.attempts.iter().rev().nth(1).is_some_and(|a| {
                    a.error_origin
                        .is_some_and(|o| o != FailureOrigin::Interrupted)
                });
                if !retried {
                    let detail = EventDetail {
                        node_status: Some(NodeStatus::Running),
                        attempt: attempt as i32,
                        ..Default::default()
                    };
                    batch.events.push(self.event(
                        EventKind::NodeStarted,
                        Some(&rec.node_id),
                        detail,
                    ));
                }
                self.stage(batch);
                Ok(())
            }
            NodeMsg::Retrying {
                pos,
                attempt,
                error,
                origin,
            } => {
                // The next attempt streams its own text from the start.
                self.active.end_partial(&self.nodes[pos].node_id);
                let now = now_micros();
                let rec = &mut self.nodes[pos];
                if let Some(last) = rec.attempts.last_mut() {
                    last.finished_at = Some(now);
                    last.error = Some(error.clone());
                    last.error_origin = Some(origin);
                }
                let rec = rec.clone();
                let detail = EventDetail {
                    node_status: Some(NodeStatus::Running),
                    attempt: attempt as i32 + 1,
                    message: error,
                    ..Default::default()
                };
                let mut batch = WriteBatch {
                    nodes: vec![rec.clone()],
                    ..Default::default()
                };
                batch
                    .events
                    .push(self.event(EventKind::NodeRetrying, Some(&rec.node_id), detail));
                self.stage(batch);
                Ok(())
            }
        }
    }

    async fn on_done(&mut self, done: NodeDone) -> Result<Vec<usize>, String> {
        let pos = done.pos;
        let workflow = self.workflow.clone();
        let node = &workflow.nodes[pos];
        self.active.end_partial(&node.id);
        let now = now_micros();
        let latency = done.started.elapsed().as_millis() as i64;
        let mut batch = WriteBatch::default();
        let rec = &mut self.nodes[pos];
        rec.finished_at = Some(now);
        rec.latency_ms = Some(latency);
        match done.result {
            Ok(out) => {
                let limit = self.engine.settings.max_artifact_bytes;
                if out.content.len() > limit {
                    let message = format!(
                        "output is {} bytes; the artifact limit is {limit} bytes",
                        out.content.len()
                    );
                    return self.fail(pos, message, FailureOrigin::Agent, batch).await;
                }
                let rec = &mut self.nodes[pos];
                if let Some(last) = rec.attempts.last_mut() {
                    last.finished_at = Some(now);
                }
                let pieces = split_outputs(node, &out);
                let mut refs = Vec::with_capacity(pieces.len());
                for (name, content, media_type) in pieces {
                    let derived = rec.input_artifacts.clone();
                    let id = batch.add_output(
                        self.run.pk,
                        rec,
                        &name,
                        &content,
                        media_type,
                        ArtifactOrigin::Executed,
                        derived,
                        now,
                    );
                    refs.push(OutputRef {
                        artifact_id: id,
                        name,
                        media_type: media_type.to_string(),
                        content: Arc::from(content),
                    });
                }
                rec.status = NodeStatus::Completed;
                rec.output_artifacts = refs.iter().map(|r| r.artifact_id.clone()).collect();
                rec.model = out.model;
                rec.usage = out.usage;
                self.run.usage.input_tokens += rec.usage.input_tokens;
                self.run.usage.output_tokens += rec.usage.output_tokens;
                self.run.usage.cost_usd += rec.usage.cost_usd;
                let rec = rec.clone();
                batch.nodes.push(rec.clone());
                let detail = EventDetail {
                    node_status: Some(NodeStatus::Completed),
                    attempt: rec.attempt_count,
                    artifact_ids: rec.output_artifacts.clone(),
                    latency_ms: Some(latency),
                    ..Default::default()
                };
                batch
                    .events
                    .push(self.event(EventKind::NodeCompleted, Some(&node.id), detail));
                self.stage(batch);
                if self.consumers_left[pos] > 0 {
                    self.outputs[pos] = Some(Arc::new(refs));
                }
                self.settle(pos)
            }
            Err((error, origin)) => {
                let message = secrets::scrub(&error, &done.secrets);
                self.fail(pos, message, origin, batch).await
            }
        }
    }

    async fn fail(
        &mut self,
        pos: usize,
        message: String,
        origin: FailureOrigin,
        mut batch: WriteBatch,
    ) -> Result<Vec<usize>, String> {
        let now = now_micros();
        let rec = &mut self.nodes[pos];
        if let Some(last) = rec.attempts.last_mut() {
            last.finished_at = Some(now);
            last.error = Some(message.clone());
            last.error_origin = Some(origin);
        }
        rec.status = NodeStatus::Failed;
        rec.error = Some(message.clone());
        rec.error_origin = Some(origin);
        let rec = rec.clone();
        self.skip_cause[pos] = Some(SkipCause::Failure);
        if self.run.failure.is_none() {
            self.run.failure = Some(RunFailure {
                node_id: rec.node_id.clone(),
                message: message.clone(),
                origin,
            });
        }
        batch.nodes.push(rec.clone());
        let detail = EventDetail {
            node_status: Some(NodeStatus::Failed),
            attempt: rec.attempt_count,
            message,
            latency_ms: rec.latency_ms,
            ..Default::default()
        };
        batch
            .events
            .push(self.event(EventKind::NodeFailed, Some(&rec.node_id), detail));
        self.stage(batch);
        self.settle(pos)
    }

    async fn skip(
        &mut self,
        pos: usize,
        cause: SkipCause,
        blocked_by: Vec<String>,
        reason: String,
    ) -> Result<Vec<usize>, String> {
        let node = self.workflow.nodes[pos].clone();
        self.release_upstream(&node);
        let rec = &mut self.nodes[pos];
        rec.status = NodeStatus::Skipped;
        rec.blocked_by = if cause == SkipCause::Failure {
            blocked_by
        } else {
            Vec::new()
        };
        rec.error = Some(reason.clone());
        rec.finished_at = Some(now_micros());
        let rec = rec.clone();
        self.skip_cause[pos] = Some(cause);
        let mut batch = WriteBatch {
            nodes: vec![rec.clone()],
            ..Default::default()
        };
        let detail = EventDetail {
            node_status: Some(NodeStatus::Skipped),
            message: reason,
            ..Default::default()
        };
        batch
            .events
            .push(self.event(EventKind::NodeSkipped, Some(&rec.node_id), detail));
        self.stage(batch);
        self.settle(pos)
    }

    /// Marks `pos` terminal and returns the dependents it made ready.
    fn settle(&mut self, pos: usize) -> Result<Vec<usize>, String> {
        let mut ready = Vec::new();
        for &d in &self.dependents[pos] {
            let left = self.pending_deps[d].checked_sub(1).ok_or_else(|| {
                format!(
                    "node '{}' was settled more often than it has dependencies",
                    self.nodes[d].node_id
                )
            })?;
            self.pending_deps[d] = left;
            if left == 0 && !self.nodes[d].status.is_terminal() {
                ready.push(d);
            }
        }
        Ok(ready)
    }

    /// Where node `id` sits in the workflow; validation guarantees it exists.
    fn position(&self, id: &str) -> Result<usize, String> {
        self.workflow
            .index
            .get(id)
            .copied()
            .ok_or_else(|| format!("node '{id}' is not in the run's workflow"))
    }

    /// Outputs of every node `node` depends on or references, from memory
    /// or, after a restart, from the store.
    async fn load_upstream(
        &mut self,
        node: &Node,
    ) -> Result<Vec<(String, Arc<Vec<OutputRef>>)>, String> {
        let mut ids: Vec<&String> = node.depends_on.iter().collect();
        ids.extend(
            node.referenced_nodes
                .iter()
                .filter(|r| !node.depends_on.contains(r)),
        );
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let p = self.position(id)?;
            if !self.nodes[p].status.has_outputs() {
                out.push((id.clone(), Arc::new(Vec::new())));
                continue;
            }
            if self.outputs[p].is_none() {
                let loaded = self
                    .engine
                    .load_outputs(&self.nodes[p].output_artifacts)
                    .await
                    .map_err(|e| e.to_string())?;
                self.outputs[p] = Some(Arc::new(loaded));
            }
            out.push((id.clone(), self.outputs[p].clone().unwrap_or_default()));
        }
        Ok(out)
    }

    /// Drops cached outputs nobody downstream still needs.
    fn release_upstream(&mut self, node: &Node) {
        let mut producers: Vec<&String> = node.depends_on.iter().collect();
        producers.extend(
            node.referenced_nodes
                .iter()
                .filter(|r| !node.depends_on.contains(r)),
        );
        for p in producers {
            let Some(&i) = self.workflow.index.get(p.as_str()) else {
                continue;
            };
            self.consumers_left[i] = self.consumers_left[i].saturating_sub(1);
            if self.consumers_left[i] == 0 {
                self.outputs[i] = None;
            }
        }
    }

    fn counts(&self) -> NodeCounts {
        let mut c = NodeCounts {
            total: self.nodes.len() as i32,
            ..Default::default()
        };
        for n in &self.nodes {
            c.add(n.status, 1);
        }
        c
    }

    async fn finish(&mut self) -> Result<(), String> {
        self.run.counts = self.counts();
        self.run.status = if self.run.counts.failed > 0 {
            RunStatus::Failed
        } else {
            RunStatus::Completed
        };
        if self.run.status == RunStatus::Completed {
            self.run.failure = None;
        }
        self.run.finished_at = Some(now_micros());
        let mut batch = WriteBatch {
            run: Some(self.run.clone()),
            ..Default::default()
        };
        let detail = EventDetail {
            run_status: Some(self.run.status),
            message: self
                .run
                .failure
                .as_ref()
                .map(|f| f.message.clone())
                .unwrap_or_default(),
            ..Default::default()
        };
        batch
            .events
            .push(self.event(EventKind::RunFinished, None, detail));
        self.stage(batch);
        Ok(())
    }

    async fn finish_cancelled(&mut self) -> Result<(), String> {
        let now = now_micros();
        let mut batch = WriteBatch::default();
        for pos in 0..self.nodes.len() {
            if self.nodes[pos].status.is_terminal() {
                continue;
            }
            let rec = &mut self.nodes[pos];
            let was_running = rec.status == NodeStatus::Running;
            rec.status = NodeStatus::Cancelled;
            rec.error = Some("cancelled".into());
            rec.error_origin = Some(FailureOrigin::Cancelled);
            rec.finished_at = Some(now);
            if let Some(last) = rec.attempts.last_mut().filter(|a| a.finished_at.is_none()) {
                last.finished_at = Some(now);
                last.error = Some("cancelled".into());
                last.error_origin = Some(FailureOrigin::Cancelled);
            }
            if let Some(started) = rec.started_at.filter(|_| was_running) {
                rec.latency_ms = Some((now - started) / 1000);
            }
            let rec = rec.clone();
            batch.nodes.push(rec.clone());
            let detail = EventDetail {
                node_status: Some(NodeStatus::Cancelled),
                message: "cancelled".into(),
                ..Default::default()
            };
            batch
                .events
                .push(self.event(EventKind::NodeCancelled, Some(&rec.node_id), detail));
        }
        self.run.counts = self.counts();
        self.run.status = RunStatus::Cancelled;
        self.run.finished_at = Some(now);
        self.run.failure = Some(RunFailure {
            node_id: String::new(),
            message: "the run was cancelled".into(),
            origin: FailureOrigin::Cancelled,
        });
        batch.run = Some(self.run.clone());
        let detail = EventDetail {
            run_status: Some(RunStatus::Cancelled),
            message: "the run was cancelled".into(),
            ..Default::default()
        };
        batch
            .events
            .push(self.event(EventKind::RunFinished, None, detail));
        self.stage(batch);
        Ok(())
    }
}

/// Resolves references for rendering: variables and upstream outputs.
fn resolver<'a>(
    variables: &'a BTreeMap<String, String>,
    upstream: &'a [(String, Arc<Vec<OutputRef>>)],
) -> impl FnMut(&Ref) -> Resolved<'a> + 'a {
    move |r: &Ref| match r {
        Ref::User(name) => variables
            .get(name)
            .map(|v| Resolved::Text(v))
            .unwrap_or(Resolved::Missing),
        Ref::Env(_) => Resolved::Missing,
        Ref::Output { node, output } => upstream
            .iter()
            .find(|(id, _)| id == node)
            .and_then(|(_, outs)| outs.iter().find(|o| &o.name == output))
            .map(|o| {
                if o.media_type == agents::JSON {
                    Resolved::Json(&o.content)
                } else {
                    Resolved::Text(&o.content)
                }
            })
            .unwrap_or(Resolved::Missing),
    }
}

/// Splits an agent's output over the node's declared outputs. With one
/// output it is the whole content; with several, a JSON object carrying
/// every output name is split by key, anything else goes to each output.
fn split_outputs(node: &Node, out: &agents::AgentOutput) -> Vec<(String, String, &'static str)> {
    if node.outputs.len() == 1 {
        return vec![(node.outputs[0].clone(), out.content.clone(), out.media_type)];
    }
    if out.media_type == agents::JSON
        && let Ok(Value::Object(map)) = serde_json::from_str::<Value>(&out.content)
        && node.outputs.iter().all(|o| map.contains_key(o))
    {
        return node
            .outputs
            .iter()
            .map(|o| match &map[o] {
                Value::String(s) => (o.clone(), s.clone(), agents::TEXT),
                other => (o.clone(), other.to_string(), agents::JSON),
            })
            .collect();
    }
    node.outputs
        .iter()
        .map(|o| (o.clone(), out.content.clone(), out.media_type))
        .collect()
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(max).collect::<String>())
    }
}
