//! Several servers on one PostgreSQL database. Each executes the runs it
//! holds a lease on (see `store::leases`); this module keeps that true:
//!
//! - claiming: runs no server holds (new runs another server had no room
//!   for, runs of a server that died) are claimed as this server has room,
//!   when told one is there (NOTIFY), when a slot frees, and every eighth
//!   of a lease anyway;
//! - renewing: this server's leases are renewed every third of a lease; a
//!   run whose lease was lost (this server stalled, another took it over)
//!   is abandoned here at once;
//! - commands: a cancel or an answer sent to a server that does not execute
//!   the run is stored; the executing server carries it out and records
//!   the outcome, which the asking server waits for;
//! - notifications: one connection LISTENs for the others' writes, so a
//!   watcher on this server follows a run executing elsewhere as it goes.

use super::waits::WaitValue;
use super::{Engine, EngineInner};
use crate::error::{Detail, EngineError, EngineResult, Problem};
use crate::model::*;
use crate::store::{COMMANDS_CHANNEL, EVENTS_CHANNEL, RUNS_CHANNEL, TASKS_CHANNEL, Target};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::{Notify, broadcast};

/// Most runs claimed at once.
const CLAIM_BATCH: usize = 64;

/// What another server's write tells this one.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Note {
    /// New events of the run with this key.
    Events(i64),
}

/// This server's part in a cluster.
pub(crate) struct Cluster {
    notes: broadcast::Sender<Note>,
    claim_wake: Notify,
    commands_wake: Notify,
    /// Commands being carried out here, so a second look does not start
    /// one twice.
    in_hand: Mutex<HashSet<i64>>,
    lease: Duration,
}

impl Cluster {
    pub(crate) fn new(lease: Duration) -> Self {
        Self {
            notes: broadcast::channel(4096).0,
            claim_wake: Notify::new(),
            commands_wake: Notify::new(),
            in_hand: Mutex::new(HashSet::new()),
            lease,
        }
    }

    /// Notes from now on.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Note> {
        self.notes.subscribe()
    }

    /// Looks for runs to claim soon: this server has room again.
    pub(crate) fn room_freed(&self) {
        self.claim_wake.notify_one();
    }

    /// How often this server looks for runs to claim without being told:
    /// a run whose server died is taken over at most this long after its
    /// lease ran out.
    fn claim_interval(&self) -> Duration {
        self.lease / 8
    }

    /// How often a watcher reads the store when no note came.
    pub(crate) fn poll_interval(&self) -> Duration {
        Duration::from_secs(1)
    }
}

/// A request for a run carried out by the server that executes it.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Command {
    Cancel,
    Answer { node: String, value: Answer },
    CancelExperiment,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Answer {
    Input(String),
    Decision {
        approved: bool,
        feedback: Option<String>,
    },
}

/// How a command ended, as the asking server reports it.
#[derive(Serialize, Deserialize)]
struct Outcome {
    /// None: done. Otherwise the kind of error and its message.
    error: Option<(String, String)>,
    /// The error's details, so the caller gets what it would have got
    /// from the executing server. Absent in outcomes of older servers.
    #[serde(default)]
    detail: Option<Detail>,
}

impl Outcome {
    fn of(result: EngineResult<()>) -> Self {
        let Err(e) = result else {
            return Self {
                error: None,
                detail: None,
            };
        };
        let kind = match &e {
            EngineError::InvalidArgument(_) => "invalid_argument",
            EngineError::NotFound(_) => "not_found",
            EngineError::FailedPrecondition(_) => "failed_precondition",
            EngineError::Unavailable(_) | EngineError::Moved(_) => "unavailable",
            _ => "internal",
        };
        Self {
            error: Some((kind.to_string(), e.to_string())),
            detail: e.problem().map(|p| (*p.detail).clone()),
        }
    }

    fn into_result(self) -> EngineResult<()> {
        let Some((kind, message)) = self.error else {
            return Ok(());
        };
        let problem = Problem {
            message,
            detail: Box::new(self.detail.unwrap_or_default()),
        };
        Err(match kind.as_str() {
            "invalid_argument" => EngineError::InvalidArgument(problem),
            "not_found" => EngineError::NotFound(problem),
            "failed_precondition" => EngineError::FailedPrecondition(problem),
            "unavailable" => EngineError::Unavailable(problem),
            _ => EngineError::Internal(problem.message),
        })
    }
}

impl Engine {
    /// Starts this server's part in the cluster: claims the runs waiting
    /// for a server (those of a server that stopped among them), then
    /// keeps claiming, renewing and listening until shutdown.
    pub async fn join_cluster(&self) -> EngineResult<()> {
        let Some(cluster) = self.0.cluster.as_ref() else {
            return Ok(());
        };
        self.0.store.forget_previous_claims().await?;
        let listener = self.0.store.listener().await?;
        if let Some(listener) = listener {
            tokio::spawn(listen(self.clone(), listener));
        }
        self.claim_runs().await;
        tokio::spawn(claim_loop(self.clone()));
        if let Some(relay) = self.0.workers.relay() {
            tokio::spawn(super::workers::relay::pump(
                self.0.workers.clone(),
                relay.clone(),
                self.0.shutdown.clone(),
            ));
        }
        tokio::spawn(renew_loop(self.clone()));
        tracing::info!(
            server = %self.0.store.claim().map(|c| c.owner.as_str()).unwrap_or(""),
            lease_ms = cluster.lease.as_millis() as u64,
            "joined the servers sharing this database"
        );
        Ok(())
    }

    /// Gives up this server's leases as it stops, so other servers take
    /// its runs over at once rather than when the leases run out.
    pub async fn leave_cluster(&self) {
        if self.0.cluster.is_none() {
            return;
        }
        let runs = self.0.active_pks();
        for active in self.0.active.lock().expect("active runs lock").values() {
            active.abandon.cancel();
        }
        if let Err(e) = self.0.store.release_runs(&runs).await {
            tracing::warn!(error = %e, "cannot hand this server's runs over; others take them when the leases run out");
        }
    }

    /// Claims as many waiting runs as this server has room for and
    /// starts executing them.
    async fn claim_runs(&self) {
        // The slots first: a run claimed is a run this server has room for,
        // even before its driver starts.
        let mut slots: Vec<_> = (0..CLAIM_BATCH)
            .map_while(|_| self.0.run_permits.clone().try_acquire_owned().ok())
            .collect();
        if slots.is_empty() {
            return;
        }
        let runs = match self.0.store.claim_runs(slots.len()).await {
            Ok(runs) => runs,
            Err(e) => {
                tracing::warn!(error = %e, "cannot claim runs");
                return;
            }
        };
        for run in runs {
            if self.drives(&run.id) {
                continue;
            }
            let id = run.id.clone();
            tracing::info!(run = %id, "claimed run");
            // A run waiting for a person holds no slot.
            let slot = slots.pop().filter(|_| run.status != RunStatus::Waiting);
            if let Err(e) = self.resume_claimed(run, slot).await {
                tracing::error!(run = %id, error = %e, "cannot resume a claimed run");
            }
        }
        match self.0.store.claim_experiments().await {
            Ok(ids) => {
                for id in ids {
                    tracing::info!(experiment = %id, "claimed experiment");
                    self.run_claimed_experiment(&id);
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot claim experiments"),
        }
        // A command may have come while no server held the run.
        self.0.cluster_ref().commands_wake.notify_one();
    }

    /// Whether this server shares its database with others.
    pub(crate) fn in_cluster(&self) -> bool {
        self.0.cluster.is_some()
    }

    /// Asks the server executing `run` to carry out `command`, and waits
    /// for it to be done. On this server, if no other holds the run, it
    /// is claimed here first.
    async fn send_command(&self, target: Target, name: &str, command: Command) -> EngineResult<()> {
        let cluster = self.0.cluster_ref();
        let text = serde_json::to_string(&command)?;
        let pk = self.0.store.send_command(&target, &text).await?;
        // The run's server answers within a lease; one that died is
        // replaced within another.
        let give_up = tokio::time::Instant::now() + cluster.lease * 3;
        let mut notes = cluster.subscribe();
        loop {
            if let Some(outcome) = self.0.store.command_outcome(pk).await? {
                let outcome: Outcome = serde_json::from_str(&outcome)?;
                return outcome.into_result();
            }
            if tokio::time::Instant::now() >= give_up {
                return Err(EngineError::unavailable(format!(
                    "no server carried out the request for '{name}' within {} s; retry",
                    (cluster.lease * 3).as_secs()
                )));
            }
            tokio::select! {
                _ = notes.recv() => {}
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                _ = self.0.shutdown.cancelled() => {
                    return Err(EngineError::unavailable("the server is shutting down; retry"));
                }
            }
        }
    }

    /// Cancels a run another server executes.
    pub(crate) async fn cancel_elsewhere(&self, run: &Run) -> EngineResult<()> {
        self.send_command(Target::Run(run.pk), &run.id, Command::Cancel)
            .await
    }

    /// Cancels an experiment another server runs.
    pub(crate) async fn cancel_experiment_elsewhere(&self, id: &str) -> EngineResult<()> {
        self.send_command(
            Target::Experiment(id.to_string()),
            id,
            Command::CancelExperiment,
        )
        .await
    }

    /// Answers a wait of a run another server executes.
    pub(crate) async fn answer_elsewhere(
        &self,
        run: &Run,
        node: &str,
        value: WaitValue,
    ) -> EngineResult<()> {
        let value = match value {
            WaitValue::Input(text) => Answer::Input(text),
            WaitValue::Decision { approved, feedback } => Answer::Decision { approved, feedback },
        };
        self.send_command(
            Target::Run(run.pk),
            &run.id,
            Command::Answer {
                node: node.to_string(),
                value,
            },
        )
        .await
    }

    /// Carries out the commands waiting for the runs and experiments
    /// executing here.
    async fn take_commands(&self) {
        let pks = self.0.active_pks();
        let experiments = self.0.experiments.ids();
        let pending = match self.0.store.pending_commands(&pks, &experiments).await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read commands");
                return;
            }
        };
        let cluster = self.0.cluster_ref();
        for (pk, target, text) in pending {
            if !cluster.in_hand.lock().expect("commands lock").insert(pk) {
                continue;
            }
            let engine = self.clone();
            tokio::spawn(async move {
                let result = engine.carry_out(&target, &text).await;
                let outcome = serde_json::to_string(&Outcome::of(result))
                    .unwrap_or_else(|_| r#"{"error":["internal","unreadable outcome"]}"#.into());
                if let Err(e) = engine.0.store.finish_command(pk, &outcome).await {
                    tracing::warn!(error = %e, "cannot record a command's outcome");
                }
                engine
                    .0
                    .cluster_ref()
                    .in_hand
                    .lock()
                    .expect("commands lock")
                    .remove(&pk);
            });
        }
    }

    async fn carry_out(&self, target: &Target, text: &str) -> EngineResult<()> {
        let command: Command = serde_json::from_str(text)?;
        let moved = || EngineError::moved("it moved to another server; retry");
        let id = match target {
            Target::Run(pk) => self.0.active_id_of(*pk).ok_or_else(moved)?,
            Target::Experiment(id) if self.runs_experiment(id) => id.clone(),
            Target::Experiment(_) => return Err(moved()),
        };
        let run_id = &id;
        match command {
            Command::CancelExperiment => self.cancel_experiment(&id).await.map(|_| ()),
            Command::Cancel => self.cancel_run(run_id).await.map(|_| ()),
            Command::Answer { node, value } => {
                let value = match value {
                    Answer::Input(text) => WaitValue::Input(text),
                    Answer::Decision { approved, feedback } => {
                        WaitValue::Decision { approved, feedback }
                    }
                };
                self.resolve_wait(run_id, &node, value).await.map(|_| ())
            }
        }
    }
}

impl EngineInner {
    fn cluster_ref(&self) -> &Cluster {
        self.cluster.as_ref().expect("only on a shared database")
    }

    /// Keys of the runs executing here.
    fn active_pks(&self) -> Vec<i64> {
        self.active
            .lock()
            .expect("active runs lock")
            .values()
            .map(|a| a.run_pk)
            .collect()
    }

    fn active_id_of(&self, run_pk: i64) -> Option<String> {
        self.active
            .lock()
            .expect("active runs lock")
            .iter()
            .find(|(_, a)| a.run_pk == run_pk)
            .map(|(id, _)| id.clone())
    }
}

/// Hears the other servers' notifications until shutdown. A notification
/// lost while the connection is re-made only delays what polling finds.
async fn listen(engine: Engine, mut listener: sqlx::postgres::PgListener) {
    let cluster = engine.0.cluster_ref();
    loop {
        let received = tokio::select! {
            r = listener.recv() => r,
            _ = engine.0.shutdown.cancelled() => return,
        };
        match received {
            Ok(n) => match n.channel() {
                EVENTS_CHANNEL => {
                    if let Ok(pk) = n.payload().parse() {
                        let _ = cluster.notes.send(Note::Events(pk));
                    }
                }
                RUNS_CHANNEL => cluster.claim_wake.notify_one(),
                COMMANDS_CHANNEL => cluster.commands_wake.notify_one(),
                TASKS_CHANNEL => {
                    if let Some(relay) = engine.0.workers.relay() {
                        relay.wake();
                    }
                }
                _ => {}
            },
            Err(e) => {
                tracing::warn!(error = %e, "lost the notification connection; reconnecting");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

async fn claim_loop(engine: Engine) {
    let cluster = engine.0.cluster_ref();
    loop {
        tokio::select! {
            _ = cluster.claim_wake.notified() => {}
            _ = tokio::time::sleep(cluster.claim_interval()) => {}
            _ = engine.0.shutdown.cancelled() => return,
        }
        engine.claim_runs().await;
    }
}

async fn renew_loop(engine: Engine) {
    let cluster = engine.0.cluster_ref();
    let mut renew = tokio::time::interval(cluster.lease / 3);
    renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = renew.tick() => {
                let pks = engine.0.active_pks();
                match engine.0.store.renew_leases(&pks).await {
                    Ok(lost) => abandon(&engine, &lost),
                    Err(e) => tracing::warn!(error = %e, "cannot renew this server's leases"),
                }
                let experiments = engine.0.experiments.ids();
                match engine.0.store.renew_experiment_leases(&experiments).await {
                    Ok(lost) => {
                        for id in lost {
                            tracing::warn!(experiment = %id, "lease lost: the experiment is another server's now");
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot renew this server's leases"),
                }
            }
            _ = cluster.commands_wake.notified() => {}
            _ = engine.0.shutdown.cancelled() => return,
        }
        engine.take_commands().await;
    }
}

/// Stops executing runs whose leases another server holds now.
fn abandon(engine: &Engine, lost: &[i64]) {
    if lost.is_empty() {
        return;
    }
    let active = engine.0.active.lock().expect("active runs lock");
    for run in active.values().filter(|a| lost.contains(&a.run_pk)) {
        tracing::warn!(
            run_pk = run.run_pk,
            "lease lost: the run is another server's now"
        );
        run.abandon.cancel();
    }
}
