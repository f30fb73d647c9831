//! The run's journal. Every state change of a run is one call here that
//! updates the record, writes its row and appends its event, together, so
//! a record and what watchers are told of it never disagree. Writes
//! collect in one batch that the driver hands to the run's committer.

use crate::metrics::metrics;
use crate::model::*;
use crate::store::WriteBatch;
use crate::telemetry::{NodeTrace, RunTrace};
use std::collections::HashMap;
use std::collections::hash_map::Entry;

/// A change to one node's record.
pub enum Change {
    /// Attempt `attempt` got its agent invoked. The first announces the
    /// node; a retry was announced by its `Retrying`.
    AttemptStarted {
        attempt: u32,
        at: Micros,
        /// The worker that took the task (`worker://` nodes).
        worker: Option<String>,
    },
    /// A `worker://` node's task waits for a worker; `message` says which.
    Queued { message: String },
    /// The running attempt failed; another follows.
    Retrying {
        error: String,
        origin: FailureOrigin,
    },
    /// An attempt a previous process started and never finished: lost to
    /// the machine, so it does not count against the retry budget. Written
    /// with the next attempt.
    Interrupted,
    /// The node's outputs (already added to the batch) are its result.
    Completed {
        outputs: Vec<String>,
        model: Option<String>,
        usage: Usage,
    },
    Failed {
        error: String,
        origin: FailureOrigin,
    },
    Skipped {
        /// The failed dependencies; empty for a false condition.
        blocked_by: Vec<String>,
        reason: String,
    },
    /// A human node asks its question.
    WaitStarted {
        prompt: String,
        context: String,
        input_artifacts: Vec<String>,
    },
    /// A person answered; `outputs` (already in the batch) hold the answer.
    Answered {
        message: String,
        outputs: Vec<String>,
    },
    /// The node did not finish: the run was cancelled, or stopped.
    Cancelled {
        error: String,
        origin: FailureOrigin,
        /// What ended the attempt in flight, if any.
        attempt_origin: FailureOrigin,
    },
}

/// A change to the run itself.
pub enum RunChange {
    Started,
    Status(RunStatus),
    Finished,
}

pub struct Journal {
    run_pk: i64,
    run_id: String,
    next_seq: i64,
    pending: WriteBatch,
    /// Where each node's row is in `pending.nodes`, by pk: a node changed
    /// twice before a commit is written once, in its last state, and
    /// finding it does not scan the batch (a cascade of skips changes
    /// thousands of nodes at once).
    pending_at: HashMap<i64, usize>,
    /// The run's trace span, and each node's open attempt span, by pk:
    /// every change recorded here is also what the trace says.
    trace: RunTrace,
    node_traces: HashMap<i64, (i32, NodeTrace)>,
}

impl Journal {
    /// A journal for `run` whose last durable event is `last_seq`. Starts
    /// the run's trace span, in the current context (the call that started
    /// the run, when there is one).
    pub fn new(run: &Run, last_seq: i64) -> Self {
        Self {
            run_pk: run.pk,
            run_id: run.id.clone(),
            next_seq: last_seq,
            pending: WriteBatch::default(),
            pending_at: HashMap::new(),
            trace: RunTrace::start(
                &run.id,
                &run.workflow_name,
                run.replay.as_ref().map(|r| r.forked_from.as_str()),
            ),
            node_traces: HashMap::new(),
        }
    }

    /// Where the next event goes, after a reread of the durable log.
    pub fn restart_at(&mut self, last_seq: i64) {
        self.next_seq = last_seq;
        self.pending = WriteBatch::default();
        self.pending_at.clear();
    }

    /// The sequence of the last event written.
    pub fn last_seq(&self) -> i64 {
        self.next_seq
    }

    /// The writes so far, for outputs to be added to.
    pub fn batch(&mut self) -> &mut WriteBatch {
        &mut self.pending
    }

    /// The writes so far, handed over; the journal starts a new batch.
    pub fn take(&mut self) -> WriteBatch {
        self.pending_at.clear();
        std::mem::take(&mut self.pending)
    }

    /// Applies `change` to `rec`, and writes the row and its events.
    pub fn record(&mut self, rec: &mut NodeExecution, change: Change) {
        let now = now_micros();
        let events: Vec<(EventKind, EventDetail)> = match change {
            Change::Queued { message } => {
                rec.status = NodeStatus::Queued;
                vec![(
                    EventKind::NodeQueued,
                    EventDetail {
                        node_status: Some(NodeStatus::Queued),
                        attempt: rec.attempt_count + 1,
                        message,
                        ..Default::default()
                    },
                )]
            }
            Change::AttemptStarted {
                attempt,
                at,
                worker,
            } => {
                rec.status = NodeStatus::Running;
                rec.started_at.get_or_insert(at);
                rec.attempt_count = attempt as i32;
                let retried = rec.attempts.last().is_some_and(|a| {
                    a.error_origin
                        .is_some_and(|o| o != FailureOrigin::Interrupted)
                });
                rec.attempts.push(AttemptRecord {
                    number: attempt as i32,
                    started_at: at,
                    worker: worker.clone(),
                    ..Default::default()
                });
                // A retry was announced by NODE_RETRYING; a worker taking
                // the task is news either way (who took it).
                if retried && worker.is_none() {
                    Vec::new()
                } else {
                    vec![(
                        EventKind::NodeStarted,
                        EventDetail {
                            node_status: Some(NodeStatus::Running),
                            attempt: attempt as i32,
                            worker: worker.unwrap_or_default(),
                            ..Default::default()
                        },
                    )]
                }
            }
            Change::Retrying { error, origin } => {
                end_attempt(rec, now, Some((&error, origin)));
                vec![(
                    EventKind::NodeRetrying,
                    EventDetail {
                        node_status: Some(NodeStatus::Running),
                        attempt: rec.attempt_count + 1,
                        message: error,
                        ..Default::default()
                    },
                )]
            }
            Change::Interrupted => {
                if let Some(last) = rec.attempts.last_mut().filter(|a| a.finished_at.is_none()) {
                    last.finished_at = Some(now);
                    last.error = Some("interrupted: the server stopped during this attempt".into());
                    last.error_origin = Some(FailureOrigin::Interrupted);
                }
                // Written with the attempt that follows.
                return;
            }
            Change::Completed {
                outputs,
                model,
                usage,
            } => {
                end_attempt(rec, now, None);
                rec.status = NodeStatus::Completed;
                rec.output_artifacts = outputs;
                rec.model = model;
                rec.usage = usage;
                rec.finished_at = Some(now);
                rec.latency_ms = rec.started_at.map(|s| (now - s) / 1000);
                vec![(EventKind::NodeCompleted, completed_detail(rec))]
            }
            Change::Failed { error, origin } => {
                end_attempt(rec, now, Some((&error, origin)));
                rec.status = NodeStatus::Failed;
                rec.error = Some(error.clone());
                rec.error_origin = Some(origin);
                rec.finished_at = Some(now);
                rec.latency_ms = rec.started_at.map(|s| (now - s) / 1000);
                vec![(
                    EventKind::NodeFailed,
                    EventDetail {
                        node_status: Some(NodeStatus::Failed),
                        attempt: rec.attempt_count,
                        message: error,
                        latency_ms: rec.latency_ms,
                        ..Default::default()
                    },
                )]
            }
            Change::Skipped { blocked_by, reason } => {
                rec.status = NodeStatus::Skipped;
                rec.blocked_by = blocked_by;
                rec.error = Some(reason.clone());
                rec.finished_at = Some(now);
                vec![(
                    EventKind::NodeSkipped,
                    EventDetail {
                        node_status: Some(NodeStatus::Skipped),
                        message: reason,
                        ..Default::default()
                    },
                )]
            }
            Change::WaitStarted {
                prompt,
                context,
                input_artifacts,
            } => {
                rec.status = NodeStatus::Waiting;
                rec.started_at = Some(now);
                rec.attempt_count = 1;
                rec.attempts = vec![AttemptRecord {
                    number: 1,
                    started_at: now,
                    ..Default::default()
                }];
                rec.prompt = Some(prompt.clone());
                rec.inputs_json = Some(super::super::clip_for_record(context));
                rec.input_artifacts = input_artifacts;
                vec![(
                    EventKind::WaitStarted,
                    EventDetail {
                        node_status: Some(NodeStatus::Waiting),
                        message: prompt,
                        ..Default::default()
                    },
                )]
            }
            Change::Answered { message, outputs } => {
                end_attempt(rec, now, None);
                rec.status = NodeStatus::Completed;
                rec.output_artifacts = outputs;
                rec.finished_at = Some(now);
                rec.latency_ms = rec.started_at.map(|s| (now - s) / 1000);
                rec.model = Some("human".into());
                vec![
                    (
                        EventKind::WaitResolved,
                        EventDetail {
                            node_status: Some(NodeStatus::Completed),
                            message,
                            ..Default::default()
                        },
                    ),
                    (EventKind::NodeCompleted, completed_detail(rec)),
                ]
            }
            Change::Cancelled {
                error,
                origin,
                attempt_origin,
            } => {
                let was_running = rec.status == NodeStatus::Running;
                end_attempt(rec, now, Some((&error, attempt_origin)));
                rec.status = NodeStatus::Cancelled;
                rec.error = Some(error.clone());
                rec.error_origin = Some(origin);
                rec.finished_at = Some(now);
                if let Some(started) = rec.started_at.filter(|_| was_running) {
                    rec.latency_ms = Some((now - started) / 1000);
                }
                vec![(
                    EventKind::NodeCancelled,
                    EventDetail {
                        node_status: Some(NodeStatus::Cancelled),
                        message: error,
                        ..Default::default()
                    },
                )]
            }
        };
        match self.pending_at.entry(rec.pk) {
            Entry::Occupied(at) => self.pending.nodes[*at.get()] = rec.clone(),
            Entry::Vacant(at) => {
                at.insert(self.pending.nodes.len());
                self.pending.nodes.push(rec.clone());
            }
        }
        count_node(rec, &events);
        self.trace_node(rec, &events);
        for (kind, detail) in events {
            self.event(kind, Some(&rec.node_id), detail);
        }
    }

    /// Applies a change to the run, and writes its row and event.
    pub fn record_run(&mut self, run: &mut Run, change: RunChange) {
        let now = now_micros();
        let (kind, detail) = match change {
            RunChange::Started => {
                if run.started_at.is_none() {
                    metrics().run_started(run.replay.is_some());
                }
                run.status = RunStatus::Running;
                run.started_at.get_or_insert(now);
                (
                    EventKind::RunStarted,
                    EventDetail {
                        run_status: Some(RunStatus::Running),
                        ..Default::default()
                    },
                )
            }
            RunChange::Status(status) => {
                run.status = status;
                (
                    EventKind::RunStatusChanged,
                    EventDetail {
                        run_status: Some(status),
                        ..Default::default()
                    },
                )
            }
            RunChange::Finished => {
                metrics().run_finished(run.status.as_str());
                self.trace.finish(
                    run.status.as_str(),
                    run.failure.as_ref().map(|f| f.message.as_str()),
                );
                run.finished_at = Some(now);
                (
                    EventKind::RunFinished,
                    EventDetail {
                        run_status: Some(run.status),
                        message: run
                            .failure
                            .as_ref()
                            .map(|f| f.message.clone())
                            .unwrap_or_default(),
                        ..Default::default()
                    },
                )
            }
        };
        self.pending.run = Some(run.clone());
        self.event(kind, None, detail);
    }

    /// Announces what a replay decided before it started: the nodes it
    /// reuses, in one event whatever their number, then each overridden
    /// node with its new outputs.
    pub fn record_decided<'a>(&mut self, recs: impl IntoIterator<Item = &'a NodeExecution>) {
        let mut reused = Vec::new();
        let mut overridden = Vec::new();
        for rec in recs {
            match rec.status {
                NodeStatus::Reused => {
                    self.trace.reused(
                        &self.run_id,
                        &rec.node_id,
                        rec.reused_from_run.as_deref().unwrap_or_default(),
                    );
                    reused.push(rec.node_id.clone())
                }
                NodeStatus::Completed => overridden.push(rec),
                _ => {}
            }
        }
        if !reused.is_empty() {
            let detail = EventDetail {
                node_status: Some(NodeStatus::Reused),
                node_ids: reused,
                ..Default::default()
            };
            self.event(EventKind::NodeReused, None, detail);
        }
        for rec in overridden {
            let detail = EventDetail {
                node_status: Some(NodeStatus::Completed),
                message: "output overridden".into(),
                artifact_ids: rec.output_artifacts.clone(),
                ..Default::default()
            };
            self.event(EventKind::NodeCompleted, Some(&rec.node_id), detail);
        }
    }

    fn event(&mut self, kind: EventKind, node_id: Option<&str>, detail: EventDetail) {
        self.next_seq += 1;
        self.pending.events.push((
            self.run_pk,
            Event {
                run_id: self.run_id.clone(),
                sequence: self.next_seq,
                kind,
                time: now_micros(),
                node_id: node_id.map(str::to_string),
                detail,
            },
        ));
    }
}

/// Ends the attempt in flight, if any, with its error if it failed.
fn end_attempt(rec: &mut NodeExecution, now: Micros, error: Option<(&str, FailureOrigin)>) {
    if let Some(last) = rec.attempts.last_mut().filter(|a| a.finished_at.is_none()) {
        last.finished_at = Some(now);
        if let Some((message, origin)) = error {
            last.error = Some(message.to_string());
            last.error_origin = Some(origin);
        }
    }
}

fn completed_detail(rec: &NodeExecution) -> EventDetail {
    EventDetail {
        node_status: Some(NodeStatus::Completed),
        attempt: rec.attempt_count,
        artifact_ids: rec.output_artifacts.clone(),
        latency_ms: rec.latency_ms,
        ..Default::default()
    }
}

impl Journal {
    /// Opens a span when an attempt (or a wait) starts, and ends it with
    /// the outcome when the node ends or its attempt failed and is tried
    /// again. (A retry's next attempt announces no event of its own: it is
    /// seen as a running node with a new attempt number.)
    fn trace_node(&mut self, rec: &NodeExecution, events: &[(EventKind, EventDetail)]) {
        for (kind, detail) in events {
            let ended = match kind {
                EventKind::NodeCompleted => None,
                EventKind::NodeFailed | EventKind::NodeRetrying | EventKind::NodeCancelled => {
                    Some(detail.message.as_str())
                }
                _ => continue,
            };
            if let Some((_, span)) = self.node_traces.remove(&rec.pk) {
                let tokens = (rec.usage.input_tokens > 0 || rec.usage.output_tokens > 0)
                    .then_some((rec.usage.input_tokens, rec.usage.output_tokens));
                span.finish(rec.model.as_deref(), tokens, ended);
            }
        }
        let attempt_open = rec.attempts.last().is_some_and(|a| a.finished_at.is_none());
        let live = matches!(rec.status, NodeStatus::Running | NodeStatus::Waiting);
        let traced = self
            .node_traces
            .get(&rec.pk)
            .is_some_and(|(n, _)| *n == rec.attempt_count);
        if live && attempt_open && !traced {
            let attempt = u32::try_from(rec.attempt_count.max(1)).unwrap_or(1);
            let span = self
                .trace
                .node(&self.run_id, &rec.node_id, &rec.agent, attempt);
            self.node_traces.insert(rec.pk, (rec.attempt_count, span));
        }
    }
}

/// Counts a node's end (or a retry) in the metrics, by what the change
/// announces.
fn count_node(rec: &NodeExecution, events: &[(EventKind, EventDetail)]) {
    let outcome = events.iter().find_map(|(kind, _)| match kind {
        EventKind::NodeCompleted => Some("completed"),
        EventKind::NodeFailed => Some("failed"),
        EventKind::NodeCancelled => Some("cancelled"),
        EventKind::NodeSkipped => Some("skipped"),
        EventKind::NodeRetrying => Some("retried"),
        _ => None,
    });
    if let Some(outcome) = outcome {
        let took = rec
            .latency_ms
            .filter(|_| outcome != "retried" && outcome != "skipped")
            .map(|ms| std::time::Duration::from_millis(ms.max(0) as u64));
        metrics().node_ended(&rec.agent, outcome, took);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(pk: i64) -> NodeExecution {
        NodeExecution {
            pk,
            id: format!("nex_{pk}"),
            node_id: format!("n{pk}"),
            ..Default::default()
        }
    }

    /// A node changed twice before a commit is one row, in its last state;
    /// every change keeps its events, in order.
    #[test]
    fn a_node_changed_twice_is_written_once_in_its_last_state() {
        let run = Run {
            pk: 1,
            id: "run_x".into(),
            ..Default::default()
        };
        let mut journal = Journal::new(&run, 0);
        let (mut a, mut b) = (node(10), node(11));
        journal.record(
            &mut a,
            Change::AttemptStarted {
                attempt: 1,
                at: 5,
                worker: None,
            },
        );
        journal.record(
            &mut b,
            Change::Skipped {
                blocked_by: vec![],
                reason: "condition false".into(),
            },
        );
        journal.record(
            &mut a,
            Change::Completed {
                outputs: vec!["art_1".into()],
                model: None,
                usage: Usage::default(),
            },
        );
        let batch = journal.take();
        assert_eq!(
            batch
                .nodes
                .iter()
                .map(|n| (n.pk, n.status))
                .collect::<Vec<_>>(),
            [(10, NodeStatus::Completed), (11, NodeStatus::Skipped)]
        );
        assert_eq!(
            batch.events.iter().map(|(_, e)| e.kind).collect::<Vec<_>>(),
            [
                EventKind::NodeStarted,
                EventKind::NodeSkipped,
                EventKind::NodeCompleted
            ]
        );
        // A new batch starts empty: a later change is its own row again.
        journal.record(
            &mut b,
            Change::Skipped {
                blocked_by: vec![],
                reason: "condition false".into(),
            },
        );
        assert_eq!(journal.take().nodes.len(), 1);
    }
}
