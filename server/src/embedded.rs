//! The engine inside the caller's process, reached through the same
//! generated gRPC stubs over in-memory duplex pipes: the CLI works without
//! a server and behaves exactly as it does against one.

use crate::engine::Engine;
use crate::error::EngineError;
use crate::lock::{DbLock, DbLockError, LockMode};
use crate::{Settings, api};
use hyper_util::rt::TokioIo;
use std::path::Path;
use std::sync::Mutex;
use tokio::sync::mpsc;
use tonic::transport::{Channel, Endpoint, Uri};

/// Opens the database of `settings` and returns a channel to an
/// in-process server. The server lives as long as the tokio runtime.
/// Runs another process left unfinished are not resumed here (see
/// [`Embedded::resume_run`]).
pub async fn connect(settings: Settings) -> anyhow::Result<Channel> {
    Ok(start(settings).await?.channel())
}

/// An engine in this process: the channel its gRPC services answer on,
/// and what only the process that holds the engine may do.
pub struct Embedded {
    engine: Engine,
    channel: Channel,
    /// The database's lock, once this process executes runs from it.
    lock: Mutex<Option<DbLock>>,
}

/// A run [`Embedded::resume_run`] was asked to drive.
#[derive(Clone, Debug)]
pub struct Resumed {
    /// The run's id (the reference given may be a prefix or `latest`).
    pub run_id: String,
    /// The last event the run had before: following it from there shows
    /// what happens from now on.
    pub last_sequence: i64,
    /// False when nothing was done: the run had finished, or this engine
    /// drove it already.
    pub resumed: bool,
}

/// Why a run could not be resumed here.
#[derive(Debug, thiserror::Error)]
pub enum ResumeError {
    /// Another process executes runs from the database.
    #[error(transparent)]
    Locked(#[from] DbLockError),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// Opens the database of `settings` and starts its services in this
/// process. Nothing is locked and no run resumed until asked.
pub async fn start(settings: Settings) -> anyhow::Result<Embedded> {
    let engine = Engine::open(settings.clone()).await?;
    let routes = api::routes(engine.clone(), &settings).await?;
    let (conn_tx, conn_rx) = mpsc::unbounded_channel::<tokio::io::DuplexStream>();
    let incoming =
        tokio_stream::wrappers::UnboundedReceiverStream::new(conn_rx).map(Ok::<_, std::io::Error>);
    tokio::spawn(async move {
        let served = tonic::transport::Server::builder()
            .add_routes(routes)
            .serve_with_incoming(incoming)
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "embedded server stopped");
        }
    });
    let channel = Endpoint::from_static("http://embedded.retake")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let (client, server) = tokio::io::duplex(1 << 20);
            let sent = conn_tx.send(server);
            async move {
                sent.map_err(|_| std::io::Error::other("embedded server stopped"))?;
                Ok::<_, std::io::Error>(TokioIo::new(client))
            }
        }))
        .await?;
    Ok(Embedded {
        engine,
        channel,
        lock: Mutex::new(None),
    })
}

impl Embedded {
    /// A channel to the services (cheap to clone).
    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    pub fn db_path(&self) -> &Path {
        &self.engine.settings().db_path
    }

    /// Takes the database's lock in `mode` for as long as this lives (see
    /// [`crate::lock`]): shared before starting runs of its own, exclusive
    /// before driving runs that are in the database. Holding it already
    /// in that mode (or exclusively) is enough; a shared lock is not
    /// turned into an exclusive one, which could lose it on the way.
    pub fn hold(&self, mode: LockMode) -> Result<(), DbLockError> {
        let mut held = self.lock.lock().expect("database lock");
        match held.as_ref().map(DbLock::mode) {
            Some(LockMode::Exclusive) => return Ok(()),
            Some(LockMode::Shared) if mode == LockMode::Shared => return Ok(()),
            _ => {}
        }
        let lock = DbLock::try_acquire(self.db_path(), mode)?;
        *held = Some(lock);
        Ok(())
    }

    /// Makes this engine drive one run that waits (or was left
    /// unfinished) in the database, so its waits can be answered here, or
    /// with `cancel` cancels it without starting a node. Only that run is
    /// resumed: others stay as they are for whoever picks them up. The
    /// database's lock is taken exclusively first, and kept: a
    /// `retake-server` (or another process driving runs) holding it is
    /// [`ResumeError::Locked`].
    pub async fn resume_run(&self, run_ref: &str, cancel: bool) -> Result<Resumed, ResumeError> {
        let store = self.engine.store();
        let run = store.find_run(crate::store::RunRef(run_ref)).await?;
        let last_sequence = store.last_event_sequence(run.pk).await?;
        let mut resumed = Resumed {
            run_id: run.id.clone(),
            last_sequence,
            resumed: false,
        };
        if run.status.is_finished() || self.engine.drives(&run.id) {
            return Ok(resumed);
        }
        self.hold(LockMode::Exclusive)?;
        // Read again under the lock: the process that held it may have
        // finished the run meanwhile.
        let run = store.find_run(crate::store::RunRef(&run.id)).await?;
        if run.status.is_finished() {
            return Ok(resumed);
        }
        resumed.last_sequence = store.last_event_sequence(run.pk).await?;
        self.engine.resume_run(&run.id, cancel).await?;
        resumed.resumed = true;
        Ok(resumed)
    }

    /// As [`Embedded::resume_run`], for an experiment another process
    /// left running: this engine drives its unfinished replays and starts
    /// the rest, or with `cancel` cancels them all and returns once the
    /// experiment has ended. Returns the experiment's id and whether it
    /// was taken over (not when it had finished, or runs here already).
    pub async fn resume_experiment(
        &self,
        experiment_ref: &str,
        cancel: bool,
    ) -> Result<(String, bool), ResumeError> {
        let experiment = self.engine.get_experiment(experiment_ref).await?;
        if experiment.status.is_finished() || self.engine.runs_experiment(&experiment.id) {
            return Ok((experiment.id, false));
        }
        self.hold(LockMode::Exclusive)?;
        // Read again under the lock: the process that held it may have
        // finished the experiment meanwhile.
        let experiment = self.engine.get_experiment(&experiment.id).await?;
        if experiment.status.is_finished() {
            return Ok((experiment.id, false));
        }
        self.engine
            .resume_experiment(&experiment.id, cancel)
            .await?;
        Ok((experiment.id, true))
    }
}

use tokio_stream::StreamExt as _;
