//! Tasks of `worker://` nodes relayed between servers on a shared
//! database (see `engine::workers::relay`): the executing server queues a
//! task no worker of its own serves; a server with such a worker takes it
//! and writes back the worker's result.

use super::db::{Arg, q};
use super::leases::NOW;
use super::{Store, rows};
use crate::error::EngineResult;
use crate::model::*;

/// A relayed task's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskState {
    Queued = 0,
    Taken = 1,
    Done = 2,
    /// The taking server lost its worker (its lease ran out).
    Lost = 3,
}

impl TaskState {
    fn from_i64(n: i64) -> Option<Self> {
        [Self::Queued, Self::Taken, Self::Done, Self::Lost]
            .into_iter()
            .find(|s| *s as i64 == n)
    }
}

/// A relayed task as the executing server follows it.
#[derive(Debug)]
pub struct RelayedTask {
    pub state: TaskState,
    /// The name of the worker holding it, once taken.
    pub worker: Option<String>,
    /// Whether the taking server's claim holds.
    pub held: bool,
    /// The result (JSON), once done.
    pub result: Option<String>,
}

impl Store {
    /// Queues a task for any server's worker serving `agent`.
    pub async fn queue_worker_task(
        &self,
        task_id: &str,
        run_id: &str,
        agent: &str,
        spec: &str,
    ) -> EngineResult<()> {
        self.reader
            .execute(q(
                "INSERT INTO worker_tasks (task_id, run_id, agent, spec, state, created_at) VALUES (?, ?, ?, ?, 0, ?)",
                [
                    task_id.into(),
                    run_id.into(),
                    agent.into(),
                    spec.into(),
                    now_micros().into(),
                ],
            ))
            .await?;
        self.reader
            .execute(q("SELECT pg_notify('retake_tasks', ?)", [agent.into()]))
            .await?;
        Ok(())
    }

    /// Where a relayed task is; None when there is no such task.
    pub async fn worker_task(&self, task_id: &str) -> EngineResult<Option<RelayedTask>> {
        let row = self
            .reader
            .fetch_optional(q(
                format!(
                    "SELECT state, worker, COALESCE(taken_until >= {NOW}, false) AS held, result
                     FROM worker_tasks WHERE task_id = ?"
                ),
                [task_id.into()],
            ))
            .await?;
        let Some(row) = row else { return Ok(None) };
        let f = rows::Fields::new("worker_tasks", &row, rows::RowKey::Task(task_id));
        Ok(Some(RelayedTask {
            state: f.numbered("state", "task state", TaskState::from_i64)?,
            worker: f.get_or_null("worker")?,
            held: f.get("held")?,
            result: f.get_or_null("result")?,
        }))
    }

    /// Moves a relayed task from `from` to `to`, when it is still in one
    /// of `from`; returns whether it moved. (`result` with `Done`.)
    pub async fn settle_worker_task(
        &self,
        task_id: &str,
        from: &[TaskState],
        to: TaskState,
        result: Option<&str>,
    ) -> EngineResult<bool> {
        let moved = self
            .reader
            .execute(q(
                "UPDATE worker_tasks SET state = ?, result = COALESCE(?, result)
                 WHERE task_id = ? AND state = ANY(?)",
                [
                    (to as i64).into(),
                    result.into(),
                    task_id.into(),
                    Arg::Ints(from.iter().map(|s| *s as i64).collect()),
                ],
            ))
            .await?;
        Ok(moved == 1)
    }

    /// Takes up to `limit` queued tasks of `agent` for this server's
    /// workers; returns (task id, spec).
    pub async fn take_worker_tasks(
        &self,
        agent: &str,
        limit: usize,
    ) -> EngineResult<Vec<(String, String)>> {
        let claim = self.claim_or_refuse()?;
        let rows = self
            .reader
            .fetch_all(q(
                format!(
                    "UPDATE worker_tasks SET state = 1, server = ?, taken_until = {NOW} + ?
                     WHERE task_id IN (
                        SELECT task_id FROM worker_tasks WHERE state = 0 AND agent = ?
                        ORDER BY created_at LIMIT ? FOR UPDATE SKIP LOCKED)
                     RETURNING task_id, spec"
                ),
                [
                    Arg::from(claim.owner.as_str()),
                    claim.lease_micros().into(),
                    agent.into(),
                    (limit as i64).into(),
                ],
            ))
            .await?;
        rows.iter()
            .map(|row| {
                let f = rows::Fields::new("worker_tasks", row, rows::RowKey::Task("?"));
                Ok((f.get("task_id")?, f.get("spec")?))
            })
            .collect()
    }

    /// Forgets a relayed task: its result was read, or its attempt ended.
    /// A server still carrying it finds it gone at its next renewal and
    /// tells its worker to stop.
    pub async fn forget_worker_task(&self, task_id: &str) -> EngineResult<()> {
        self.reader
            .execute(q(
                "DELETE FROM worker_tasks WHERE task_id = ?",
                [task_id.into()],
            ))
            .await?;
        Ok(())
    }

    /// Names the worker that took a relayed task.
    pub async fn worker_task_taken_by(&self, task_id: &str, worker: &str) -> EngineResult<()> {
        self.reader
            .execute(q(
                "UPDATE worker_tasks SET worker = ? WHERE task_id = ?",
                [worker.into(), task_id.into()],
            ))
            .await?;
        Ok(())
    }

    /// Renews this server's claim on the relayed tasks `ids`; returns those
    /// no longer its to run (withdrawn by their attempt, or given up).
    pub async fn renew_worker_tasks(&self, ids: &[String]) -> EngineResult<Vec<String>> {
        self.renew_held(
            "worker_tasks",
            format!(
                "UPDATE worker_tasks SET taken_until = {NOW} + ?
                 WHERE task_id = ANY(?) AND server = ? AND state = 1 RETURNING task_id"
            ),
            "task_id",
            ids,
        )
        .await
    }
}
