//! The async shell around the state machine: one driver task per run
//! carries out the machine's decisions (prepare a node, start an attempt,
//! ask a person, record a skip, a failure, the end of the run) and reports
//! back what happened. It decides nothing itself. Every change goes
//! through the journal; the run's committer makes it durable, and events
//! are published only once they are.

use super::super::agents::{self, OutputRef};
use super::super::committer::Committer;
use super::super::secrets;
use super::super::waits::{Ack, WaitAnswer, WaitValue};
use super::super::workflow::Workflow;
use super::super::{ActiveRun, EngineInner};
use super::attempt::{self, AttemptDone, Heard, Slot, Started, WorkerSlot};
use super::journal::{Change, Journal, RunChange};
use super::machine::{AttemptFailure, Decision, Initial, Prepared, RunMachine, SkipReason, State};
use super::outputs::Outputs;
use super::prepare::{self, PreparedNode};
use crate::error::{EngineError, EngineResult, Reason};
use crate::model::*;
use futures::FutureExt;
use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, mpsc};
use tokio::task::JoinSet;

pub struct RunDriver {
    pub(super) engine: Arc<EngineInner>,
    pub(super) active: Arc<ActiveRun>,
    pub(super) run: Run,
    workflow: Arc<Workflow>,
    /// Node records by workflow position. Reused nodes have pk 0.
    pub(super) nodes: Vec<NodeExecution>,
    /// Agent URI per position (replay swaps applied).
    agents: Vec<String>,
    machine: RunMachine,
    pub(super) journal: Journal,
    pub(super) committer: Committer,
    outputs: Outputs,
    /// What prepared nodes run with (or ask), until they are done.
    prepared: Vec<Option<PreparedNode>>,
    /// The error a failure or retry decision is about to record.
    errors: Vec<Option<(String, FailureOrigin)>>,
    /// The run's slot among the server's executing runs; released while
    /// the run only waits for people.
    permit: Option<OwnedSemaphorePermit>,
}

/// A run to drive: its row, workflow and node records.
pub struct RunStart {
    pub run: Run,
    pub workflow: Arc<Workflow>,
    pub nodes: Vec<NodeExecution>,
    pub agents: Vec<String>,
    /// The last durable event's sequence.
    pub last_seq: i64,
    pub permit: Option<OwnedSemaphorePermit>,
}

/// What the driver waits for between decisions.
struct Inbox {
    started: mpsc::UnboundedReceiver<Heard>,
    started_tx: mpsc::UnboundedSender<Heard>,
    answers: mpsc::UnboundedReceiver<WaitAnswer>,
    tasks: JoinSet<AttemptDone>,
}

impl RunDriver {
    pub fn new(
        engine: Arc<EngineInner>,
        active: Arc<ActiveRun>,
        start: RunStart,
    ) -> EngineResult<Self> {
        let RunStart {
            run,
            workflow,
            nodes,
            agents,
            last_seq,
            permit,
        } = start;
        let initial = nodes.iter().map(Initial::of).collect();
        let phase = match run.status {
            RunStatus::Waiting => RunStatus::Waiting,
            _ => RunStatus::Running,
        };
        let machine = RunMachine::for_workflow(&workflow, initial, phase)
            .map_err(|e| EngineError::Internal(format!("run '{}': {e}", run.id)))?;
        let n = nodes.len();
        Ok(Self {
            committer: Committer::start(engine.clone(), active.clone()),
            journal: Journal::new(&run, last_seq),
            outputs: Outputs::new(&workflow),
            engine,
            active,
            run,
            workflow,
            nodes,
            agents,
            machine,
            prepared: (0..n).map(|_| None).collect(),
            errors: vec![None; n],
            permit,
        })
    }

    pub async fn drive(mut self, answers: mpsc::UnboundedReceiver<WaitAnswer>) {
        let outcome = match AssertUnwindSafe(self.drive_inner(answers))
            .catch_unwind()
            .await
        {
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
        match result {
            // Another server executes it now, from what is durable.
            Err(_) if self.active.abandon.is_cancelled() => {
                tracing::info!(run = %self.run.id, "run taken over by another server; stopped here");
            }
            Err(cause) => {
                tracing::error!(run = %self.run.id, %cause, "run stopped");
                self.record_stop(cause).await;
            }
            Ok(()) => {}
        }
        self.engine.finish_active(&self.run.id);
    }

    async fn drive_inner(
        &mut self,
        answers: mpsc::UnboundedReceiver<WaitAnswer>,
    ) -> Result<(), String> {
        self.take_slot().await;
        if self.run.status == RunStatus::Pending {
            self.journal.record_run(&mut self.run, RunChange::Started);
        }
        let (started_tx, started) = mpsc::unbounded_channel();
        let mut inbox = Inbox {
            started,
            started_tx,
            answers,
            tasks: JoinSet::new(),
        };
        let mut queue: VecDeque<Decision> = self.machine.start().into();
        let cancel = self.active.cancel.clone();
        let abandon = self.active.abandon.clone();
        loop {
            if abandon.is_cancelled() {
                return Err("the run is executed by another server now".into());
            }
            if cancel.is_cancelled() && !self.machine.is_finished() {
                inbox.tasks.abort_all();
                while inbox.tasks.join_next().await.is_some() {}
                queue.extend(self.machine.cancel());
            }
            while let Some(decision) = queue.pop_front() {
                let starts_work = matches!(
                    decision,
                    Decision::Prepare(_) | Decision::Attempt { .. } | Decision::Wait(_)
                );
                if starts_work {
                    // No new work starts while the store refuses writes; a
                    // cancelled run starts none at all (the machine
                    // cancels what was about to start).
                    tokio::select! {
                        writable = self.committer.writable() => writable?,
                        _ = cancel.cancelled() => {}
                    }
                    if cancel.is_cancelled() {
                        continue;
                    }
                }
                self.execute(decision, &mut queue, &mut inbox).await?;
            }
            if self.machine.is_finished() {
                return Ok(());
            }
            if cancel.is_cancelled() {
                continue;
            }
            self.flush().await?;
            tokio::select! {
                biased;
                _ = abandon.cancelled() => {}
                _ = cancel.cancelled() => {}
                Some(s) = inbox.started.recv() => self.on_started(s),
                Some(answer) = inbox.answers.recv() => queue.extend(self.on_answer(answer).await),
                Some(joined) = inbox.tasks.join_next() => {
                    let mut joined = Some(joined);
                    // Take every other finished attempt too: one commit for all.
                    while let Some(result) = joined.take().or_else(|| inbox.tasks.try_join_next()) {
                        // A panic in an agent is a bug in retake: the driver
                        // fails the run (see `drive`).
                        let done = result.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
                        // The attempt's start is recorded before its end.
                        while let Ok(s) = inbox.started.try_recv() {
                            self.on_started(s);
                        }
                        queue.extend(self.on_attempt_done(done));
                    }
                }
            }
        }
    }

    /// Carries out one decision of the machine.
    async fn execute(
        &mut self,
        decision: Decision,
        queue: &mut VecDeque<Decision>,
        inbox: &mut Inbox,
    ) -> Result<(), String> {
        match decision {
            Decision::Prepare(pos) => queue.extend(self.prepare(pos).await?),
            Decision::Attempt {
                pos,
                attempt,
                delay,
            } => self.start_attempt(pos, attempt, delay, inbox),
            Decision::Wait(pos) => {
                if let Some(PreparedNode::Wait {
                    prompt, context, ..
                }) = self.prepared[pos].take()
                {
                    let change = Change::WaitStarted {
                        prompt,
                        context,
                        input_artifacts: self.nodes[pos].input_artifacts.clone(),
                    };
                    self.journal.record(&mut self.nodes[pos], change);
                }
            }
            Decision::Skip { pos, reason, .. } => {
                self.outputs.release(pos);
                let ids = |ps: &[usize]| -> Vec<String> {
                    ps.iter().map(|&p| self.nodes[p].node_id.clone()).collect()
                };
                let (blocked_by, reason) = match reason {
                    SkipReason::UpstreamFailed(ps) => {
                        let ids = ids(&ps);
                        let quoted: Vec<String> = ids.iter().map(|d| format!("'{d}'")).collect();
                        let reason =
                            format!("skipped: upstream {} did not complete", quoted.join(", "));
                        (ids, reason)
                    }
                    SkipReason::UpstreamSkipped(ps) => {
                        let reason = format!(
                            "skipped: every dependency was skipped ({})",
                            ids(&ps).join(", ")
                        );
                        (Vec::new(), reason)
                    }
                    SkipReason::ConditionFalse(why) => (Vec::new(), why),
                };
                let change = Change::Skipped { blocked_by, reason };
                self.journal.record(&mut self.nodes[pos], change);
            }
            Decision::Fail { pos, not_retried } => {
                self.prepared[pos] = None;
                let (mut error, origin) = self.errors[pos]
                    .take()
                    .unwrap_or_else(|| ("failed".into(), FailureOrigin::Internal));
                if not_retried {
                    error.push_str(" (not retried: another attempt would fail the same way)");
                }
                if self.run.failure.is_none() {
                    self.run.failure = Some(RunFailure {
                        node_id: self.nodes[pos].node_id.clone(),
                        message: error.clone(),
                        origin,
                    });
                }
                let change = Change::Failed { error, origin };
                self.journal.record(&mut self.nodes[pos], change);
            }
            Decision::Cancel(pos) => {
                self.active.end_partial(&self.nodes[pos].node_id);
                let change = Change::Cancelled {
                    error: "cancelled".into(),
                    origin: FailureOrigin::Cancelled,
                    attempt_origin: FailureOrigin::Cancelled,
                };
                self.journal.record(&mut self.nodes[pos], change);
            }
            Decision::SetStatus(status) => {
                self.journal
                    .record_run(&mut self.run, RunChange::Status(status));
                if status == RunStatus::Waiting {
                    self.permit = None;
                } else {
                    self.take_slot().await;
                }
            }
            Decision::Finish(status) => self.finish(status),
        }
        Ok(())
    }

    /// Renders the node and tells the machine what it found.
    async fn prepare(&mut self, pos: usize) -> Result<Vec<Decision>, String> {
        let workflow = self.workflow.clone();
        let node = &workflow.nodes[pos];
        let upstream = self
            .outputs
            .upstream(pos, &self.nodes, &self.engine)
            .await
            .map_err(|e| e.to_string())?;
        self.outputs.release(pos);
        let (prepared, rendered) = prepare::prepare(
            node,
            &self.agents[pos],
            &self.run.variables,
            upstream,
            self.engine.settings.env_policy.as_deref(),
        );
        let rec = &mut self.nodes[pos];
        rec.agent = self.agents[pos].clone();
        rec.inputs_json = rendered.inputs_json.map(super::super::clip_for_record);
        rec.prompt = rendered.prompt;
        rec.input_artifacts = rendered.input_artifacts;
        let report = match &prepared {
            PreparedNode::Agent(_) => Prepared::Agent,
            PreparedNode::Wait { .. } => Prepared::Wait,
            PreparedNode::ConditionFalse(why) => Prepared::ConditionFalse(why.clone()),
            PreparedNode::Invalid(error) => {
                self.errors[pos] = Some((error.clone(), FailureOrigin::Agent));
                Prepared::Invalid
            }
        };
        self.prepared[pos] = Some(prepared);
        Ok(self.machine.prepared(pos, report))
    }

    fn start_attempt(&mut self, pos: usize, attempt: u32, delay: Duration, inbox: &mut Inbox) {
        let Some(PreparedNode::Agent(node)) = &self.prepared[pos] else {
            return;
        };
        let worker = node
            .call
            .agent
            .starts_with("worker://")
            .then(|| WorkerSlot {
                hub: self.engine.workers.clone(),
                run_id: self.run.id.clone(),
                node_execution_id: self.nodes[pos].id.clone(),
                outputs: self.workflow.nodes[pos].outputs.clone(),
                secrets: node.secrets.clone(),
            });
        let rec = &mut self.nodes[pos];
        match self.errors[pos].take() {
            // A retry: the failed attempt is recorded with its error.
            Some((error, origin)) => {
                self.active.end_partial(&rec.node_id);
                self.journal.record(rec, Change::Retrying { error, origin });
            }
            // A first attempt here: one a previous process left unfinished
            // was lost to the machine.
            None => self.journal.record(rec, Change::Interrupted),
        }
        let slot = Slot {
            pos,
            attempt,
            delay,
            deadline: Duration::from_millis(self.workflow.nodes[pos].deadline_ms),
            permits: self.engine.node_permits.clone(),
            started: inbox.started_tx.clone(),
            active: self.active.clone(),
            worker,
        };
        let span = tracing::info_span!("node", node_id = %self.nodes[pos].node_id, attempt);
        inbox.tasks.spawn(tracing::Instrument::instrument(
            attempt::run(node, slot),
            span,
        ));
    }

    fn on_started(&mut self, heard: Heard) {
        match heard {
            Heard::Started(Started {
                pos,
                attempt,
                at,
                worker,
            }) => {
                if !self.machine.attempt_started(pos, attempt) {
                    return;
                }
                let change = Change::AttemptStarted {
                    attempt,
                    at,
                    worker,
                };
                self.journal.record(&mut self.nodes[pos], change);
            }
            Heard::Queued {
                pos,
                attempt,
                message,
            } => {
                // Only while the attempt is still the node's current one.
                if self.machine.state(pos) == (State::Running { attempt }) {
                    self.journal
                        .record(&mut self.nodes[pos], Change::Queued { message });
                }
            }
        }
    }

    fn on_attempt_done(&mut self, done: AttemptDone) -> Vec<Decision> {
        let pos = done.pos;
        self.active.end_partial(&self.nodes[pos].node_id);
        let (error, origin) = match done.result {
            Ok(out) => {
                let limit = self.engine.settings.max_artifact_bytes;
                if out.content.len() <= limit {
                    return self.complete(pos, out);
                }
                let message = format!(
                    "output is {} bytes; the artifact limit is {limit} bytes",
                    out.content.len()
                );
                (agents::AgentError::permanent(message), FailureOrigin::Agent)
            }
            // Lost with its worker: the machine's fault, not the node's.
            Err(e) if e.origin == FailureOrigin::Interrupted => {
                self.errors[pos] = Some((e.error.message, FailureOrigin::Interrupted));
                return self.machine.attempt_lost(pos);
            }
            Err(e) => (e.error, e.origin),
        };
        let failure = AttemptFailure {
            kind: error.kind,
            retry_after: error.retry_after,
            timed_out: origin == FailureOrigin::Timeout,
        };
        let secrets = match &self.prepared[pos] {
            Some(PreparedNode::Agent(node)) => node.secrets.as_slice(),
            _ => &[],
        };
        self.errors[pos] = Some((secrets::scrub(&error.message, secrets), origin));
        self.machine.attempt_failed(pos, failure)
    }

    /// Records a successful attempt's outputs as the node's result.
    fn complete(&mut self, pos: usize, out: agents::AgentOutput) -> Vec<Decision> {
        self.prepared[pos] = None;
        let node = &self.workflow.nodes[pos];
        let now = now_micros();
        let rec = &mut self.nodes[pos];
        let mut refs = Vec::new();
        for (name, content, media_type) in prepare::split_outputs(node, &out) {
            let id = self.journal.batch().add_output(
                self.run.pk,
                rec,
                &name,
                &content,
                media_type,
                ArtifactOrigin::Executed,
                rec.input_artifacts.clone(),
                now,
            );
            refs.push(OutputRef {
                artifact_id: id,
                name,
                media_type: media_type.to_string(),
                content: Arc::from(content),
            });
        }
        self.run.usage.input_tokens += out.usage.input_tokens;
        self.run.usage.output_tokens += out.usage.output_tokens;
        self.run.usage.cost_usd += out.usage.cost_usd;
        let change = Change::Completed {
            outputs: refs.iter().map(|r| r.artifact_id.clone()).collect(),
            model: out.model,
            usage: out.usage,
        };
        self.journal.record(rec, change);
        self.outputs.keep(pos, refs);
        self.machine.attempt_succeeded(pos)
    }

    /// Records a person's answer as the node's outputs (origin `human`),
    /// and acknowledges it once durable.
    async fn on_answer(&mut self, answer: WaitAnswer) -> Vec<Decision> {
        let Some(pos) = self.workflow.index.get(&answer.node_id).copied() else {
            let _ = answer.ack.send(Err(EngineError::not_found(format!(
                "Step '{}' not found in workflow",
                answer.node_id
            ))
            .reason(Reason::NodeNotFound)
            .meta("nodeId", &answer.node_id)));
            return Vec::new();
        };
        if !self.machine.is_waiting(pos) {
            let status = self.nodes[pos].status;
            let _ = answer
                .ack
                .send(Err(EngineError::failed_precondition(format!(
                    "Node '{}' is not waiting ({status}); it cannot be answered again",
                    answer.node_id
                ))
                .reason(Reason::WaitNotPending)
                .meta("nodeId", &answer.node_id)));
            return Vec::new();
        }
        let node = &self.workflow.nodes[pos];
        let (message, values) = answer_values(&node.outputs, &answer.value);
        let now = now_micros();
        let rec = &mut self.nodes[pos];
        let mut refs = Vec::new();
        for (name, value) in values {
            let id = self.journal.batch().add_output(
                self.run.pk,
                rec,
                &name,
                &value,
                agents::TEXT,
                ArtifactOrigin::Human,
                rec.input_artifacts.clone(),
                now,
            );
            refs.push(OutputRef {
                artifact_id: id,
                name,
                media_type: agents::TEXT.into(),
                content: Arc::from(value),
            });
        }
        let outputs = refs.iter().map(|r| r.artifact_id.clone()).collect();
        self.journal
            .record(rec, Change::Answered { message, outputs });
        self.prepared[pos] = None;
        self.flush_then_ack(answer.ack).await;
        self.outputs.keep(pos, refs);
        self.machine.answered(pos)
    }

    fn finish(&mut self, status: RunStatus) {
        self.run.counts = NodeCounts::of_records(
            self.nodes.len() as i32,
            self.nodes.iter().map(|n| (n.status, 1)),
        );
        self.run.status = status;
        match status {
            RunStatus::Completed => self.run.failure = None,
            RunStatus::Cancelled => {
                self.run.failure = Some(RunFailure {
                    node_id: String::new(),
                    message: "the run was cancelled".into(),
                    origin: FailureOrigin::Cancelled,
                })
            }
            _ => {}
        }
        tracing::debug!(status = %status, "run finished");
        self.journal.record_run(&mut self.run, RunChange::Finished);
    }

    /// Holds a run slot unless the run only waits for people. A run
    /// cancelled (or taken over) while it waits for one needs none to end.
    async fn take_slot(&mut self) {
        if self.permit.is_none() && self.run.status != RunStatus::Waiting {
            let (cancel, abandon) = (self.active.cancel.clone(), self.active.abandon.clone());
            tokio::select! {
                // The semaphore is never closed.
                permit = self.engine.run_permits.clone().acquire_owned() => self.permit = permit.ok(),
                _ = cancel.cancelled() => {}
                _ = abandon.cancelled() => {}
            }
        }
    }

    /// Hands the journal's writes to the run's committer without waiting.
    /// Execution runs ahead of the disk; events are published only once
    /// committed, so nothing a client sees can be lost, and a node whose
    /// completion was not yet durable when the process died simply runs
    /// again on restart. The committer's queue is bounded: when the disk
    /// falls behind, execution waits instead of piling up writes.
    async fn flush(&mut self) -> Result<(), String> {
        self.committer.send(self.journal.take(), None).await
    }

    /// Flushes, and answers `ack` once everything so far is durable.
    async fn flush_then_ack(&mut self, ack: Ack) {
        // A failure is answered on `ack` and seen by the next flush.
        let _ = self.committer.send(self.journal.take(), Some(ack)).await;
    }

    /// Flushes and waits until everything so far is durable.
    async fn sync(&mut self) -> Result<(), String> {
        self.flush().await?;
        self.committer.close().await
    }
}

/// The outputs a person's answer gives a node, and how the answer reads.
fn answer_values(outputs: &[String], value: &WaitValue) -> (String, Vec<(String, String)>) {
    match value {
        WaitValue::Input(text) => (
            text.clone(),
            outputs.iter().map(|o| (o.clone(), text.clone())).collect(),
        ),
        WaitValue::Decision { approved, feedback } => {
            let decision = if *approved { "approved" } else { "rejected" };
            let message = match feedback.as_deref().filter(|f| !f.is_empty()) {
                Some(f) => format!("{decision}: {f}"),
                None => decision.to_string(),
            };
            let values = outputs
                .iter()
                .map(|o| {
                    let value = if o == "feedback" {
                        feedback.clone().unwrap_or_default()
                    } else {
                        decision.to_string()
                    };
                    (o.clone(), value)
                })
                .collect();
            (message, values)
        }
    }
}
