//! The run state machine: every decision about a run — which node starts,
//! which is skipped and why, whether a failed attempt is tried again, when
//! the run waits and how it ends — is taken here, from node states and the
//! events reported to it. No I/O, no async, no clock: the driver
//! (`driver.rs`) executes the decisions and reports what happened.
//!
//! A node goes `Pending` → `Preparing` (the driver renders its condition
//! and inputs) → `Running` (attempts) or `Waiting` (a person answers) →
//! done. A replay or a resumed run starts from the states its records
//! hold, so it decides exactly as a fresh run would from that point.

use super::super::agents::ErrorKind;
use super::super::workflow::{RetryPolicy, Workflow};
use crate::model::{FailureOrigin, NodeExecution, NodeStatus, RunStatus};
use std::time::Duration;

/// Why a node was skipped. A failure propagates to every dependent; a
/// false condition skips a dependent only when all its dependencies were
/// skipped, so a branch that is not taken does not stop a join.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SkipCause {
    Failure,
    Condition,
}

/// How a node ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Completed,
    Reused,
    Failed,
    Skipped(SkipCause),
    Cancelled,
}

impl Outcome {
    /// Whether dependents of a node that ended this way skip for failure.
    fn blocks(self) -> bool {
        matches!(
            self,
            Self::Failed | Self::Cancelled | Self::Skipped(SkipCause::Failure)
        )
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Dependencies still running.
    Pending,
    /// Handed to the driver to evaluate its condition and render its inputs.
    Preparing,
    /// Attempt `attempt` is scheduled or running.
    Running {
        attempt: u32,
    },
    /// Asking a person.
    Waiting,
    Done(Outcome),
}

/// A node's state as its durable record tells it, for a run that starts
/// from records: a replay (reused and overridden nodes are done) or a run
/// resumed after a restart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Initial {
    pub state: State,
    /// Attempts made so far.
    pub attempts: u32,
    /// Failed attempts that count against the retry budget; attempts lost
    /// to the machine (a restart) do not.
    pub failed: u32,
}

impl Initial {
    pub const PENDING: Self = Self {
        state: State::Pending,
        attempts: 0,
        failed: 0,
    };

    pub fn of(rec: &NodeExecution) -> Self {
        let state = match rec.status {
            // A node that was running when the process stopped runs again.
            // So does one whose task waited for a worker.
            NodeStatus::Pending | NodeStatus::Running | NodeStatus::Queued => State::Pending,
            NodeStatus::Waiting => State::Waiting,
            NodeStatus::Completed => State::Done(Outcome::Completed),
            NodeStatus::Reused => State::Done(Outcome::Reused),
            NodeStatus::Failed => State::Done(Outcome::Failed),
            NodeStatus::Cancelled => State::Done(Outcome::Cancelled),
            NodeStatus::Skipped if rec.blocked_by.is_empty() => {
                State::Done(Outcome::Skipped(SkipCause::Condition))
            }
            NodeStatus::Skipped => State::Done(Outcome::Skipped(SkipCause::Failure)),
        };
        let failed = rec
            .attempts
            .iter()
            .filter(|a| {
                a.error.is_some()
                    && a.error_origin
                        .is_some_and(|o| o != FailureOrigin::Interrupted)
            })
            .count() as u32;
        Self {
            state,
            attempts: rec.attempt_count.max(0) as u32,
            failed,
        }
    }
}

/// What the driver found when it prepared a node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Prepared {
    /// Ready for its agent.
    Agent,
    /// A human node: ask a person.
    Wait,
    /// Its `when` condition is false; the text says why.
    ConditionFalse(String),
    /// It cannot run as written (a template or its config does not
    /// resolve); the driver records the error.
    Invalid,
}

/// A failed attempt, as the retry policy sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttemptFailure {
    pub kind: ErrorKind,
    /// How long the agent asked to be left alone (a rate limit's Retry-After).
    pub retry_after: Option<Duration>,
    /// The node's deadline cut the attempt off.
    pub timed_out: bool,
}

/// Why a node is skipped, for its record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SkipReason {
    /// These dependencies failed, were cancelled or were skipped for a failure.
    UpstreamFailed(Vec<usize>),
    /// Every dependency was skipped by a false condition.
    UpstreamSkipped(Vec<usize>),
    ConditionFalse(String),
}

/// What the driver is to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Evaluate the node's condition and render its inputs, then report
    /// with [`RunMachine::prepared`].
    Prepare(usize),
    /// Invoke the node's agent for this attempt once `delay` has passed.
    /// An attempt after the first is a retry of the failure just reported.
    Attempt {
        pos: usize,
        attempt: u32,
        delay: Duration,
    },
    /// Ask a person; [`RunMachine::answered`] completes the node.
    Wait(usize),
    Skip {
        pos: usize,
        cause: SkipCause,
        reason: SkipReason,
    },
    /// The node failed for good. `not_retried` when budget was left but
    /// the error says another attempt would fail the same way.
    Fail { pos: usize, not_retried: bool },
    /// The run was cancelled while this node was not done.
    Cancel(usize),
    /// The run is now RUNNING or WAITING (only people can move it on).
    SetStatus(RunStatus),
    /// The run is over, with this status.
    Finish(RunStatus),
}

/// The state of one run's nodes, and the rules that move them.
#[derive(Debug)]
pub struct RunMachine {
    deps: Vec<Vec<usize>>,
    dependents: Vec<Vec<usize>>,
    retry: Vec<RetryPolicy>,
    state: Vec<State>,
    deps_left: Vec<usize>,
    attempts: Vec<u32>,
    failed: Vec<u32>,
    /// RUNNING, WAITING, or the final status once finished.
    phase: RunStatus,
}

impl RunMachine {
    /// A machine for `workflow`'s nodes starting from `initial` (by
    /// position), in run status `phase` (RUNNING or WAITING).
    pub fn for_workflow(
        workflow: &Workflow,
        initial: Vec<Initial>,
        phase: RunStatus,
    ) -> Result<Self, String> {
        let mut deps = Vec::with_capacity(workflow.nodes.len());
        for node in &workflow.nodes {
            let mut positions = Vec::with_capacity(node.depends_on.len());
            for d in &node.depends_on {
                let p = workflow.index.get(d.as_str()).copied().ok_or_else(|| {
                    format!(
                        "node '{}' depends on '{d}', which is not in the run's workflow",
                        node.id
                    )
                })?;
                positions.push(p);
            }
            deps.push(positions);
        }
        let retry = workflow.nodes.iter().map(|n| n.retry.clone()).collect();
        Self::new(deps, retry, initial, phase)
    }

    /// A machine over a graph given as each node's dependencies.
    pub fn new(
        deps: Vec<Vec<usize>>,
        retry: Vec<RetryPolicy>,
        initial: Vec<Initial>,
        phase: RunStatus,
    ) -> Result<Self, String> {
        let n = deps.len();
        if retry.len() != n || initial.len() != n {
            return Err(format!(
                "{n} nodes, {} retry policies and {} node states do not match",
                retry.len(),
                initial.len()
            ));
        }
        let mut dependents = vec![Vec::new(); n];
        for (pos, ds) in deps.iter().enumerate() {
            for &d in ds {
                if d >= n || d == pos {
                    return Err(format!("node {pos} depends on node {d}, which cannot be"));
                }
                dependents[d].push(pos);
            }
        }
        let state: Vec<State> = initial.iter().map(|i| i.state).collect();
        let deps_left = deps
            .iter()
            .map(|ds| {
                ds.iter()
                    .filter(|&&d| !matches!(state[d], State::Done(_)))
                    .count()
            })
            .collect();
        Ok(Self {
            deps,
            dependents,
            retry,
            state,
            deps_left,
            attempts: initial.iter().map(|i| i.attempts).collect(),
            failed: initial.iter().map(|i| i.failed).collect(),
            phase,
        })
    }

    pub fn state(&self, pos: usize) -> State {
        self.state[pos]
    }

    /// Attempts made so far by the node at `pos`.
    pub fn attempts(&self, pos: usize) -> u32 {
        self.attempts[pos]
    }

    pub fn is_finished(&self) -> bool {
        self.phase.is_finished()
    }

    /// The first decisions: every node whose dependencies are done.
    pub fn start(&mut self) -> Vec<Decision> {
        let mut out = Vec::new();
        let ready: Vec<usize> = (0..self.state.len())
            .filter(|&p| self.state[p] == State::Pending && self.deps_left[p] == 0)
            .collect();
        for p in ready {
            out.push(self.ready(p));
            if matches!(self.state[p], State::Done(_)) {
                self.propagate(p, &mut out);
            }
        }
        self.update_phase(&mut out);
        out
    }

    /// The driver prepared the node at `pos`.
    pub fn prepared(&mut self, pos: usize, prepared: Prepared) -> Vec<Decision> {
        let mut out = Vec::new();
        if self.state[pos] != State::Preparing {
            return out;
        }
        match prepared {
            Prepared::Agent => {
                let attempt = self.attempts[pos] + 1;
                self.state[pos] = State::Running { attempt };
                out.push(Decision::Attempt {
                    pos,
                    attempt,
                    delay: Duration::ZERO,
                });
            }
            Prepared::Wait => {
                self.state[pos] = State::Waiting;
                out.push(Decision::Wait(pos));
            }
            Prepared::ConditionFalse(why) => self.skip(
                pos,
                SkipCause::Condition,
                SkipReason::ConditionFalse(why),
                &mut out,
            ),
            Prepared::Invalid => {
                out.push(Decision::Fail {
                    pos,
                    not_retried: false,
                });
                self.settle(pos, Outcome::Failed, &mut out);
            }
        }
        self.update_phase(&mut out);
        out
    }

    /// Attempt `attempt` of the node at `pos` got its agent invoked.
    /// False when that attempt is no longer the node's (it was cancelled).
    pub fn attempt_started(&mut self, pos: usize, attempt: u32) -> bool {
        let current = self.state[pos] == (State::Running { attempt });
        if current {
            self.attempts[pos] = self.attempts[pos].max(attempt);
        }
        current
    }

    /// The running attempt succeeded; its outputs are recorded.
    pub fn attempt_succeeded(&mut self, pos: usize) -> Vec<Decision> {
        let mut out = Vec::new();
        if matches!(self.state[pos], State::Running { .. }) {
            self.settle(pos, Outcome::Completed, &mut out);
        }
        self.update_phase(&mut out);
        out
    }

    /// The running attempt failed: try again, or fail the node.
    pub fn attempt_failed(&mut self, pos: usize, failure: AttemptFailure) -> Vec<Decision> {
        let mut out = Vec::new();
        let State::Running { attempt } = self.state[pos] else {
            return out;
        };
        self.attempts[pos] = self.attempts[pos].max(attempt);
        self.failed[pos] += 1;
        let policy = &self.retry[pos];
        let retry = policy.after_failure(
            self.failed[pos],
            failure.kind,
            failure.retry_after,
            failure.timed_out,
        );
        match retry {
            Some(delay) => {
                let next = attempt + 1;
                self.state[pos] = State::Running { attempt: next };
                out.push(Decision::Attempt {
                    pos,
                    attempt: next,
                    delay,
                });
            }
            None => {
                // Whoever wrote a retry policy learns why it was not used.
                let not_retried = policy.declared
                    && failure.kind != ErrorKind::Transient
                    && self.failed[pos] < policy.max_retries;
                out.push(Decision::Fail { pos, not_retried });
                self.settle(pos, Outcome::Failed, &mut out);
            }
        }
        self.update_phase(&mut out);
        out
    }

    /// The running attempt was lost to the machine (the worker running it
    /// vanished): it does not count against the retry budget, and the next
    /// attempt starts at once.
    pub fn attempt_lost(&mut self, pos: usize) -> Vec<Decision> {
        let State::Running { attempt } = self.state[pos] else {
            return Vec::new();
        };
        self.attempts[pos] = self.attempts[pos].max(attempt);
        let next = attempt + 1;
        self.state[pos] = State::Running { attempt: next };
        vec![Decision::Attempt {
            pos,
            attempt: next,
            delay: Duration::ZERO,
        }]
    }

    /// Whether the node at `pos` waits for a person.
    pub fn is_waiting(&self, pos: usize) -> bool {
        self.state[pos] == State::Waiting
    }

    /// A person answered the waiting node at `pos`; its answer is recorded.
    pub fn answered(&mut self, pos: usize) -> Vec<Decision> {
        let mut out = Vec::new();
        if self.is_waiting(pos) {
            self.settle(pos, Outcome::Completed, &mut out);
        }
        self.update_phase(&mut out);
        out
    }

    /// The run is cancelled: every node not done is cancelled, and the run
    /// ends CANCELLED.
    pub fn cancel(&mut self) -> Vec<Decision> {
        let mut out = Vec::new();
        if self.is_finished() {
            return out;
        }
        for pos in 0..self.state.len() {
            if !matches!(self.state[pos], State::Done(_)) {
                self.state[pos] = State::Done(Outcome::Cancelled);
                out.push(Decision::Cancel(pos));
            }
        }
        self.phase = RunStatus::Cancelled;
        out.push(Decision::Finish(RunStatus::Cancelled));
        out
    }

    /// Decides a node whose dependencies are all done: skipped (and then
    /// done), or handed to the driver to prepare.
    fn ready(&mut self, pos: usize) -> Decision {
        let deps = &self.deps[pos];
        let outcome = |d: usize| match self.state[d] {
            State::Done(o) => Some(o),
            _ => None,
        };
        let failed: Vec<usize> = deps
            .iter()
            .copied()
            .filter(|&d| outcome(d).is_some_and(Outcome::blocks))
            .collect();
        let (cause, reason) = if !failed.is_empty() {
            (SkipCause::Failure, SkipReason::UpstreamFailed(failed))
        } else if !deps.is_empty()
            && deps
                .iter()
                .all(|&d| outcome(d) == Some(Outcome::Skipped(SkipCause::Condition)))
        {
            (
                SkipCause::Condition,
                SkipReason::UpstreamSkipped(deps.clone()),
            )
        } else {
            self.state[pos] = State::Preparing;
            return Decision::Prepare(pos);
        };
        self.state[pos] = State::Done(Outcome::Skipped(cause));
        Decision::Skip { pos, cause, reason }
    }

    fn skip(&mut self, pos: usize, cause: SkipCause, reason: SkipReason, out: &mut Vec<Decision>) {
        out.push(Decision::Skip { pos, cause, reason });
        self.settle(pos, Outcome::Skipped(cause), out);
    }

    /// Marks `pos` done and decides every dependent that became ready.
    fn settle(&mut self, pos: usize, outcome: Outcome, out: &mut Vec<Decision>) {
        self.state[pos] = State::Done(outcome);
        self.propagate(pos, out);
    }

    /// Decides the dependents `done` made ready, and theirs in turn when
    /// they are skipped. A worklist, not recursion: a skip that runs down
    /// a 10,000-node chain needs no deep stack.
    fn propagate(&mut self, done: usize, out: &mut Vec<Decision>) {
        let mut settled = vec![done];
        while let Some(p) = settled.pop() {
            for i in 0..self.dependents[p].len() {
                let d = self.dependents[p][i];
                self.deps_left[d] = self.deps_left[d].saturating_sub(1);
                if self.deps_left[d] > 0 || self.state[d] != State::Pending {
                    continue;
                }
                out.push(self.ready(d));
                if matches!(self.state[d], State::Done(_)) {
                    settled.push(d);
                }
            }
        }
    }

    /// RUNNING while anything prepares or runs, WAITING while only people
    /// can move the run on, finished once every node is done.
    fn update_phase(&mut self, out: &mut Vec<Decision>) {
        if self.is_finished() {
            return;
        }
        let mut active = false;
        let mut waiting = false;
        let mut failed = false;
        let mut all_done = true;
        for s in &self.state {
            match s {
                State::Preparing | State::Running { .. } => active = true,
                State::Waiting => waiting = true,
                State::Pending => {}
                State::Done(outcome) => {
                    failed |= *outcome == Outcome::Failed;
                    continue;
                }
            }
            all_done = false;
        }
        let phase = if all_done {
            if failed {
                RunStatus::Failed
            } else {
                RunStatus::Completed
            }
        } else if active || !waiting {
            RunStatus::Running
        } else {
            RunStatus::Waiting
        };
        if phase.is_finished() {
            self.phase = phase;
            out.push(Decision::Finish(phase));
        } else if phase != self.phase {
            self.phase = phase;
            // A run that moves on again holds its slot before new work
            // starts; one that waits releases it after its last step.
            if phase == RunStatus::Running {
                out.insert(0, Decision::SetStatus(phase));
            } else {
                out.push(Decision::SetStatus(phase));
            }
        }
    }
}

#[cfg(test)]
#[path = "machine_tests.rs"]
mod tests;
