//! The hub between `worker://` attempts and connected workers: a queue of
//! tasks per agent, the sessions of connected workers, and the leases of
//! the tasks they hold.
//!
//! An attempt submits its task and holds a [`Ticket`]; the hub hands the
//! task to a connected worker that serves its agent and has room, or queues
//! it until one has. A worker keeps its tasks' leases by sending anything
//! (a heartbeat at least); a lease that runs out takes the task back, and
//! the attempt ends as lost, so the run makes a new one. A result is taken
//! only while its task's lease holds, from whichever session names it: a
//! worker that reconnects after a network blip still delivers, a worker
//! whose lease ran out does not, and a step never completes twice.
//!
//! Everything here is in memory: a task's durable record is its node's
//! (QUEUED, then RUNNING with the attempt). After a restart the run's node
//! is attempted again and its task queued again.

use crate::engine::agents::OutputRef;
use crate::error::{EngineError, EngineResult};
use crate::model::{Usage, new_id};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::mpsc;

/// What a worker receives for one attempt of a node.
#[derive(Debug)]
pub struct TaskSpec {
    /// The agent's name, without `worker://`.
    pub agent: String,
    pub run_id: String,
    pub node_id: String,
    pub node_execution_id: String,
    pub attempt: u32,
    pub inputs_json: String,
    /// Without credential fields.
    pub config_json: String,
    pub prompt: String,
    pub output_names: Vec<String>,
    /// The attempt's deadline, counted from when a worker takes the task.
    pub deadline: Option<Duration>,
    pub upstream: Vec<(String, Arc<Vec<OutputRef>>)>,
}

/// What the hub sends a worker's session.
#[derive(Debug)]
pub enum ToWorker {
    Task {
        task_id: String,
        spec: Arc<TaskSpec>,
        deadline: Option<SystemTime>,
    },
    Cancelled {
        task_id: String,
        reason: String,
    },
}

/// What a worker reports about one of its tasks.
#[derive(Debug)]
pub enum Report {
    Delta(String),
    Progress {
        message: String,
        fraction: Option<f64>,
    },
    Finished(Result<TaskOutputs, TaskFailure>),
}

#[derive(Debug, Default)]
pub struct TaskOutputs {
    /// By output name, in the worker's order.
    pub outputs: Vec<(String, String)>,
    pub media_type: String,
    pub model: Option<String>,
    pub usage: Usage,
}

#[derive(Debug)]
pub struct TaskFailure {
    pub message: String,
    pub details: String,
    pub permanent: bool,
}

/// What the attempt holding a ticket hears.
#[derive(Debug)]
pub enum TaskEvent {
    /// A worker took the task.
    Leased {
        worker: String,
    },
    Report(Report),
    /// The worker holding the task was lost (its lease ran out).
    Lost(String),
}

/// A worker as it introduces itself.
pub struct Hello {
    pub name: String,
    pub agents: Vec<String>,
    pub concurrency: u32,
    pub peer: String,
}

pub struct Welcome {
    pub worker_id: String,
    pub name: String,
    pub lease: Duration,
    pub heartbeat: Duration,
}

/// A connected worker and the tasks it holds, for listings.
#[derive(Clone, Debug)]
pub struct WorkerInfo {
    pub worker_id: String,
    pub name: String,
    pub agents: Vec<String>,
    pub concurrency: u32,
    pub connected_at: SystemTime,
    pub peer: String,
    pub tasks: Vec<HeldTask>,
}

#[derive(Clone, Debug)]
pub struct HeldTask {
    pub task_id: String,
    pub run_id: String,
    pub node_id: String,
    pub attempt: u32,
    pub since: SystemTime,
}

/// The most tasks one worker may take at once.
pub const MAX_CONCURRENCY: u32 = 1024;
/// The longest agent name a worker may serve.
const MAX_AGENT_NAME: usize = 128;

pub struct WorkerHub {
    state: Mutex<State>,
    lease: Duration,
    /// On a database shared with other servers: their workers' tasks.
    relay: std::sync::OnceLock<Arc<super::relay::Relay>>,
}

#[derive(Default)]
struct State {
    sessions: HashMap<String, Session>,
    /// Task ids waiting for a worker, by agent, oldest first.
    queues: HashMap<String, VecDeque<String>>,
    tasks: HashMap<String, Task>,
}

struct Session {
    name: String,
    agents: Vec<String>,
    concurrency: usize,
    holding: HashSet<String>,
    tx: mpsc::UnboundedSender<ToWorker>,
    connected_at: SystemTime,
    peer: String,
}

struct Task {
    spec: Arc<TaskSpec>,
    events: mpsc::UnboundedSender<TaskEvent>,
    holder: Option<Holder>,
}

struct Holder {
    worker_id: String,
    expires: Instant,
    since: SystemTime,
}

/// An attempt's claim on its task. Dropping it withdraws the task: from
/// the queue, or from the worker holding it, which is told to stop.
pub struct Ticket {
    pub task_id: String,
    pub events: mpsc::UnboundedReceiver<TaskEvent>,
    hub: Weak<WorkerHub>,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if let Some(hub) = self.hub.upgrade() {
            hub.withdraw(
                &self.task_id,
                "the attempt ended (its run was cancelled or its deadline passed)",
            );
        }
    }
}

impl WorkerHub {
    /// A hub whose leases last `lease` from a worker's last message; a
    /// task runs out of its lease at most `lease` plus a quarter of it
    /// after that.
    pub fn new(lease: Duration) -> Arc<Self> {
        let hub = Arc::new(Self {
            state: Mutex::new(State::default()),
            lease,
            relay: std::sync::OnceLock::new(),
        });
        tokio::spawn(sweep(
            Arc::downgrade(&hub),
            (lease / 4).max(Duration::from_millis(10)),
        ));
        hub
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("worker hub lock")
    }

    /// Relays tasks no worker here serves to other servers' workers, and
    /// theirs to the workers here.
    pub fn set_relay(&self, relay: Arc<super::relay::Relay>) {
        let _ = self.relay.set(relay);
    }

    pub fn relay(&self) -> Option<&Arc<super::relay::Relay>> {
        self.relay.get()
    }

    /// Tasks the workers here could take now, by agent: free places less
    /// the tasks already queued for them.
    pub fn room(&self) -> Vec<(String, usize)> {
        let state = self.state();
        let mut room: HashMap<String, usize> = HashMap::new();
        for s in state.sessions.values() {
            let free = s.concurrency.saturating_sub(s.holding.len());
            for agent in &s.agents {
                *room.entry(agent.clone()).or_default() += free;
            }
        }
        room.into_iter()
            .map(|(agent, free)| {
                let queued = state.queues.get(&agent).map_or(0, VecDeque::len);
                let left = free.saturating_sub(queued);
                (agent, left)
            })
            .collect()
    }

    /// Opens a worker's session; its tasks arrive on the receiver.
    pub fn connect(
        &self,
        hello: Hello,
    ) -> EngineResult<(Welcome, mpsc::UnboundedReceiver<ToWorker>)> {
        if hello.agents.is_empty() {
            return Err(EngineError::invalid_argument(
                "a worker must serve at least one agent (hello.agents is empty)",
            ));
        }
        for agent in &hello.agents {
            check_agent_name(agent)?;
        }
        if hello.concurrency > MAX_CONCURRENCY {
            return Err(EngineError::invalid_argument(format!(
                "concurrency {} is more than the {MAX_CONCURRENCY} tasks a worker may take at once",
                hello.concurrency
            )));
        }
        let worker_id = new_id("wkr");
        let name = match hello.name.trim() {
            "" => format!("worker-{}", &worker_id[worker_id.len() - 8..]),
            name => name.chars().take(MAX_AGENT_NAME).collect(),
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let mut agents = hello.agents;
        agents.dedup();
        let mut state = self.state();
        state.sessions.insert(
            worker_id.clone(),
            Session {
                name: name.clone(),
                agents,
                concurrency: hello.concurrency.max(1) as usize,
                holding: HashSet::new(),
                tx,
                connected_at: SystemTime::now(),
                peer: hello.peer,
            },
        );
        self.fill(&mut state, &worker_id);
        drop(state);
        // It may take other servers' tasks.
        if let Some(relay) = self.relay() {
            relay.wake();
        }
        Ok((
            Welcome {
                worker_id,
                name,
                lease: self.lease,
                heartbeat: self.lease / 3,
            },
            rx,
        ))
    }

    /// The worker's session ended; the tasks it holds keep their leases
    /// (a worker that reconnects in time still delivers them).
    pub fn disconnect(&self, worker_id: &str) {
        self.state().sessions.remove(worker_id);
    }

    /// The worker was heard from: its leases start again.
    pub fn heard_from(&self, worker_id: &str) {
        let mut state = self.state();
        let State {
            sessions, tasks, ..
        } = &mut *state;
        if let Some(session) = sessions.get(worker_id) {
            let expires = Instant::now() + self.lease;
            for id in &session.holding {
                if let Some(holder) = tasks.get_mut(id).and_then(|t| t.holder.as_mut()) {
                    holder.expires = expires;
                }
            }
        }
    }

    /// A worker's report on task `task_id`. Err says why it is refused:
    /// the task is no longer held (its lease ran out, or its attempt ended).
    pub fn report(&self, worker_id: &str, task_id: &str, report: Report) -> Result<(), String> {
        self.heard_from(worker_id);
        let mut state = self.state();
        let held = state.tasks.get(task_id).is_some_and(|t| t.holder.is_some());
        if !held {
            return Err(format!(
                "task '{}' is not held by any worker: its lease ran out or its attempt ended, and another attempt may run it",
                crate::error::echo(task_id)
            ));
        }
        match report {
            Report::Finished(result) => {
                let task = state.tasks.remove(task_id).expect("checked above");
                let holder = task.holder.expect("checked above");
                let _ = task
                    .events
                    .send(TaskEvent::Report(Report::Finished(result)));
                if let Some(session) = state.sessions.get_mut(&holder.worker_id) {
                    session.holding.remove(task_id);
                }
                self.fill(&mut state, &holder.worker_id);
            }
            other => {
                let _ = state.tasks[task_id].events.send(TaskEvent::Report(other));
            }
        }
        Ok(())
    }

    /// Queues a task for a worker serving its agent.
    pub fn submit(self: &Arc<Self>, spec: TaskSpec) -> Ticket {
        let task_id = new_id("tsk");
        let (events, rx) = mpsc::unbounded_channel();
        let agent = spec.agent.clone();
        let mut state = self.state();
        state.tasks.insert(
            task_id.clone(),
            Task {
                spec: Arc::new(spec),
                events,
                holder: None,
            },
        );
        state
            .queues
            .entry(agent.clone())
            .or_default()
            .push_back(task_id.clone());
        self.dispatch(&mut state, &agent);
        Ticket {
            task_id,
            events: rx,
            hub: Arc::downgrade(self),
        }
    }

    /// Whether a connected worker serves `agent`.
    pub fn serves(&self, agent: &str) -> bool {
        self.state()
            .sessions
            .values()
            .any(|s| s.agents.iter().any(|a| a == agent))
    }

    /// (workers connected, tasks waiting for a worker), for the metrics.
    pub fn load(&self) -> (usize, usize) {
        let state = self.state();
        let queued = state.queues.values().map(VecDeque::len).sum();
        (state.sessions.len(), queued)
    }

    pub fn workers(&self) -> Vec<WorkerInfo> {
        let state = self.state();
        let mut out: Vec<WorkerInfo> = state
            .sessions
            .iter()
            .map(|(id, s)| WorkerInfo {
                worker_id: id.clone(),
                name: s.name.clone(),
                agents: s.agents.clone(),
                concurrency: s.concurrency as u32,
                connected_at: s.connected_at,
                peer: s.peer.clone(),
                tasks: s
                    .holding
                    .iter()
                    .filter_map(|t| {
                        let task = state.tasks.get(t)?;
                        Some(HeldTask {
                            task_id: t.clone(),
                            run_id: task.spec.run_id.clone(),
                            node_id: task.spec.node_id.clone(),
                            attempt: task.spec.attempt,
                            since: task.holder.as_ref()?.since,
                        })
                    })
                    .collect(),
            })
            .collect();
        out.sort_by_key(|w| w.connected_at);
        out
    }

    fn withdraw(&self, task_id: &str, reason: &str) {
        let mut state = self.state();
        let Some(task) = state.tasks.remove(task_id) else {
            return;
        };
        match task.holder {
            None => {
                if let Some(queue) = state.queues.get_mut(&task.spec.agent) {
                    queue.retain(|t| t != task_id);
                }
            }
            Some(holder) => {
                if let Some(session) = state.sessions.get_mut(&holder.worker_id) {
                    session.holding.remove(task_id);
                    let _ = session.tx.send(ToWorker::Cancelled {
                        task_id: task_id.to_string(),
                        reason: reason.to_string(),
                    });
                }
                self.fill(&mut state, &holder.worker_id);
            }
        }
    }

    /// Takes back the tasks whose leases ran out.
    fn expire(&self) {
        let now = Instant::now();
        let mut state = self.state();
        let expired: Vec<String> = state
            .tasks
            .iter()
            .filter(|(_, t)| t.holder.as_ref().is_some_and(|h| h.expires <= now))
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            let task = state.tasks.remove(&id).expect("listed above");
            let holder = task.holder.expect("listed above");
            let reason = format!(
                "the worker holding the task was not heard from for {} ms (its lease ran out)",
                self.lease.as_millis()
            );
            if let Some(session) = state.sessions.get_mut(&holder.worker_id) {
                session.holding.remove(&id);
                let _ = session.tx.send(ToWorker::Cancelled {
                    task_id: id.clone(),
                    reason: reason.clone(),
                });
            }
            let _ = task.events.send(TaskEvent::Lost(reason));
            self.fill(&mut state, &holder.worker_id);
        }
    }

    /// Hands queued tasks of `agent` to workers with room, least busy first.
    fn dispatch(&self, state: &mut State, agent: &str) {
        loop {
            if state.queues.get(agent).is_none_or(VecDeque::is_empty) {
                return;
            }
            let free = state
                .sessions
                .iter()
                .filter(|(_, s)| {
                    s.holding.len() < s.concurrency && s.agents.iter().any(|a| a == agent)
                })
                .min_by_key(|(_, s)| s.holding.len())
                .map(|(id, _)| id.clone());
            let Some(worker_id) = free else { return };
            let task_id = state
                .queues
                .get_mut(agent)
                .and_then(VecDeque::pop_front)
                .expect("checked above");
            self.lease_to(state, &task_id, &worker_id);
        }
    }

    /// Hands worker `worker_id` queued tasks while it has room.
    fn fill(&self, state: &mut State, worker_id: &str) {
        let Some(agents) = state.sessions.get(worker_id).map(|s| s.agents.clone()) else {
            return;
        };
        for agent in agents {
            loop {
                let room = state
                    .sessions
                    .get(worker_id)
                    .is_some_and(|s| s.holding.len() < s.concurrency);
                if !room {
                    return;
                }
                let Some(task_id) = state.queues.get_mut(&agent).and_then(VecDeque::pop_front)
                else {
                    break;
                };
                self.lease_to(state, &task_id, worker_id);
            }
        }
    }

    fn lease_to(&self, state: &mut State, task_id: &str, worker_id: &str) {
        let (Some(task), Some(session)) = (
            state.tasks.get_mut(task_id),
            state.sessions.get_mut(worker_id),
        ) else {
            return;
        };
        let sent = session.tx.send(ToWorker::Task {
            task_id: task_id.to_string(),
            spec: task.spec.clone(),
            deadline: task.spec.deadline.map(|d| SystemTime::now() + d),
        });
        if sent.is_err() {
            // The session is closing: the task waits for another worker.
            state.sessions.remove(worker_id);
            state
                .queues
                .entry(task.spec.agent.clone())
                .or_default()
                .push_front(task_id.to_string());
            return;
        }
        session.holding.insert(task_id.to_string());
        task.holder = Some(Holder {
            worker_id: worker_id.to_string(),
            expires: Instant::now() + self.lease,
            since: SystemTime::now(),
        });
        let _ = task.events.send(TaskEvent::Leased {
            worker: session.name.clone(),
        });
    }
}

/// Checks the NAME of `worker://NAME`, as a workflow or a worker gives it.
pub fn check_agent_name(agent: &str) -> EngineResult<()> {
    let ok = !agent.is_empty()
        && agent.len() <= MAX_AGENT_NAME
        && agent
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(EngineError::invalid_argument(format!(
            "agent name '{}' is not valid: use 1 to {MAX_AGENT_NAME} letters, digits, '-', '_' or '.' (the NAME of worker://NAME)",
            crate::error::echo(agent)
        )))
    }
}

async fn sweep(hub: Weak<WorkerHub>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(hub) = hub.upgrade() else { return };
        hub.expire();
    }
}
