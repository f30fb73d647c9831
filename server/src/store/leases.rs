//! Several servers on one PostgreSQL database: which server executes each
//! run, and how the others reach it.
//!
//! A run is executed by the server whose lease on it holds: `owner` and
//! `lease_expires_at` on its row. The server creating a run claims it in
//! the same transaction (when it has room to execute it); the others claim
//! runs without a live lease (`FOR UPDATE SKIP LOCKED`, so two servers
//! never claim one run), and a server renews its leases while it runs
//! them. Every write for a run passes a fence: the transaction renews the
//! lease of each run it touches, `WHERE owner` is this server, and fails
//! whole if one is no longer this server's. So a server that stalled past
//! its lease, and whose runs another took over, writes nothing more for
//! them: no step is recorded twice and events stay gap-free.
//!
//! Servers hear of each other's writes through NOTIFY (`retake_events`
//! with a run's key, `retake_runs` when a run is there to claim,
//! `retake_commands` when something is asked of a run or an experiment,
//! `retake_tasks` when a worker task waits, see `worker_tasks`); readers
//! poll as well, so a lost notification only delays them.

use super::db::{Arg, Column, q};
use super::write::Script;
use super::{NewRun, Store, WriteBatch, rows};
use crate::error::{EngineError, EngineResult};
use crate::model::*;
use sqlx::PgConnection;
use std::collections::BTreeSet;
use std::time::Duration;

/// A server's identity on a shared database and how long its claims hold.
#[derive(Clone, Debug)]
pub struct Claim {
    pub owner: String,
    pub lease: Duration,
}

impl Claim {
    pub(super) fn lease_micros(&self) -> Micros {
        self.lease.as_micros() as Micros
    }
}

/// The database's clock in unix microseconds: leases are compared with
/// one clock, whatever the servers' clocks say.
pub(super) const NOW: &str = "(extract(epoch from clock_timestamp()) * 1000000)::bigint";

/// What a command is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Run(i64),
    Experiment(String),
}

/// Notification channels.
pub const EVENTS_CHANNEL: &str = "retake_events";
pub const RUNS_CHANNEL: &str = "retake_runs";
pub const COMMANDS_CHANNEL: &str = "retake_commands";
pub const TASKS_CHANNEL: &str = "retake_tasks";

/// `n` fresh keys of `table` from its sequence.
pub(super) async fn next_keys(
    conn: &mut PgConnection,
    table: &str,
    n: usize,
) -> EngineResult<Vec<i64>> {
    if n == 0 {
        return Ok(Vec::new());
    }
    Ok(sqlx::query_scalar(&format!(
        "SELECT nextval(pg_get_serial_sequence('{table}', 'pk')) FROM generate_series(1, $1)"
    ))
    .bind(n as i64)
    .fetch_all(conn)
    .await?)
}

/// The fence: inside the open transaction, renews this server's lease on
/// every run the batches write, locking their rows until it commits, and
/// fails when one of them is not this server's.
pub(super) async fn check<'b>(
    conn: &mut PgConnection,
    claim: &Claim,
    batches: impl Iterator<Item = &'b Vec<WriteBatch>>,
) -> EngineResult<()> {
    let mut pks = BTreeSet::new();
    let mut ids = BTreeSet::new();
    for batch in batches.flatten() {
        pks.extend(batch.run.as_ref().map(|r| r.pk));
        pks.extend(batch.events.iter().map(|(pk, _)| *pk));
        pks.extend(batch.artifacts.iter().map(|(pk, _, _)| *pk));
        ids.extend(batch.nodes.iter().map(|n| n.run_id.clone()));
    }
    if pks.is_empty() && ids.is_empty() {
        return Ok(());
    }
    let pks: Vec<i64> = pks.into_iter().collect();
    let ids: Vec<String> = ids.into_iter().collect();
    let owned: Vec<(i64, String)> = sqlx::query_as(&format!(
        "UPDATE runs SET lease_expires_at = {NOW} + $1
         WHERE (pk = ANY($2) OR id = ANY($3)) AND owner = $4
         RETURNING pk, id"
    ))
    .bind(claim.lease_micros())
    .bind(&pks)
    .bind(&ids)
    .bind(&claim.owner)
    .fetch_all(&mut *conn)
    .await?;
    let lost = pks
        .iter()
        .find(|pk| !owned.iter().any(|(p, _)| p == *pk))
        .map(|pk| format!("pk {pk}"))
        .or_else(|| {
            ids.iter()
                .find(|id| !owned.iter().any(|(_, i)| i == *id))
                .cloned()
        });
    match lost {
        Some(run) => Err(EngineError::moved(format!(
            "run {run} is no longer executed by this server (its lease ran out and another server took it over); \
             nothing of this write was stored"
        ))),
        None => Ok(()),
    }
}

/// Tells the other servers what this transaction did, when it commits:
/// which runs have new events, and whether a run waits to be claimed.
pub(super) fn notify<'a>(
    script: &mut Script<'a>,
    batches: &[&'a WriteBatch],
    new_runs: &[&NewRun],
) -> EngineResult<()> {
    let runs: BTreeSet<i64> = batches
        .iter()
        .flat_map(|b| b.events.iter().map(|(pk, _)| *pk))
        .collect();
    if !runs.is_empty() {
        script.push_with(
            "SELECT pg_notify('retake_events', r::text) FROM unnest(?::bigint[]) AS r",
            Arg::Ints(runs.into_iter().collect()),
        );
    }
    if new_runs.iter().any(|n| !n.claimed) {
        script.push("SELECT pg_notify('retake_runs', '')");
    }
    Ok(())
}

impl Store {
    /// This server's claim, on a shared database.
    pub fn claim(&self) -> Option<&Claim> {
        self.claim.as_ref()
    }

    pub(super) fn claim_or_refuse(&self) -> EngineResult<&Claim> {
        self.claim
            .as_ref()
            .ok_or_else(|| EngineError::Internal("leases exist only on a shared database".into()))
    }

    /// Claims up to `limit` unfinished runs no server holds a live lease
    /// on, oldest first; returns them, now this server's.
    pub async fn claim_runs(&self, limit: usize) -> EngineResult<Vec<Run>> {
        let claim = self.claim_or_refuse()?;
        if limit == 0 {
            return Ok(Vec::new());
        }
        let [a, b, c] = super::read::UNFINISHED.map(RunStatus::as_i64);
        let rows = self
            .reader
            .fetch_all(q(
                format!(
                    "WITH claimed AS (
                        UPDATE runs SET owner = ?, lease_expires_at = {NOW} + ?
                        WHERE pk IN (
                            SELECT pk FROM runs
                            WHERE status IN (?, ?, ?) AND (owner IS NULL OR lease_expires_at < {NOW})
                            ORDER BY pk LIMIT ? FOR UPDATE SKIP LOCKED)
                        RETURNING pk)
                     {} WHERE r.pk IN (SELECT pk FROM claimed) ORDER BY r.pk",
                    rows::RUN_SELECT
                ),
                [
                    Arg::from(claim.owner.as_str()),
                    claim.lease_micros().into(),
                    a.into(),
                    b.into(),
                    c.into(),
                    (limit as i64).into(),
                ],
            ))
            .await?;
        rows.iter().map(rows::run_from_row).collect()
    }

    /// Gives up what a previous process with this server's id held (it
    /// was restarted with the same `--server-id`): its runs and
    /// experiments are claimed again at once instead of when their
    /// leases run out.
    pub async fn forget_previous_claims(&self) -> EngineResult<()> {
        let claim = self.claim_or_refuse()?;
        for table in ["runs", "experiments"] {
            self.reader
                .execute(q(
                    format!(
                        "UPDATE {table} SET owner = NULL, lease_expires_at = NULL WHERE owner = ? AND finished_at IS NULL"
                    ),
                    [claim.owner.as_str().into()],
                ))
                .await?;
        }
        Ok(())
    }

    /// Claims run `run_pk` for this server, whatever its room, if no
    /// server holds a live lease on it; returns whether it is now this
    /// server's (it was already, or it is claimed now).
    pub async fn claim_run(&self, run_pk: i64) -> EngineResult<bool> {
        let claim = self.claim_or_refuse()?;
        let claimed = self
            .reader
            .execute(q(
                format!(
                    "UPDATE runs SET owner = ?, lease_expires_at = {NOW} + ?
                     WHERE pk = ? AND (owner IS NULL OR owner = ? OR lease_expires_at < {NOW})"
                ),
                [
                    Arg::from(claim.owner.as_str()),
                    claim.lease_micros().into(),
                    run_pk.into(),
                    claim.owner.as_str().into(),
                ],
            ))
            .await?;
        Ok(claimed == 1)
    }

    /// Renews this server's leases on `runs` (keys); returns those that
    /// are no longer its own: another server took them over, or they
    /// finished elsewhere.
    pub async fn renew_leases(&self, runs: &[i64]) -> EngineResult<Vec<i64>> {
        self.renew_held(
            "runs",
            format!(
                "UPDATE runs SET lease_expires_at = {NOW} + ? WHERE pk = ANY(?) AND owner = ? RETURNING pk"
            ),
            "pk",
            runs,
        )
        .await
    }

    /// Claims the running experiments no server holds a live lease on;
    /// returns their ids, now this server's to run.
    pub async fn claim_experiments(&self) -> EngineResult<Vec<String>> {
        let claim = self.claim_or_refuse()?;
        let rows = self
            .reader
            .fetch_all(q(
                format!(
                    "UPDATE experiments SET owner = ?, lease_expires_at = {NOW} + ?
                     WHERE pk IN (
                        SELECT pk FROM experiments
                        WHERE status = ? AND (owner IS NULL OR lease_expires_at < {NOW})
                        ORDER BY pk FOR UPDATE SKIP LOCKED)
                     RETURNING pk, id"
                ),
                [
                    Arg::from(claim.owner.as_str()),
                    claim.lease_micros().into(),
                    ExperimentStatus::Running.as_i64().into(),
                ],
            ))
            .await?;
        rows.iter()
            .map(|row| rows::Fields::keyed_by_pk("experiments", row).get("id"))
            .collect()
    }

    /// Renews this server's leases on the experiments `ids`; returns those
    /// another server holds now.
    pub async fn renew_experiment_leases(&self, ids: &[String]) -> EngineResult<Vec<String>> {
        self.renew_held(
            "experiments",
            format!(
                "UPDATE experiments SET lease_expires_at = {NOW} + ?
                 WHERE id = ANY(?) AND owner = ? RETURNING pk, id"
            ),
            "id",
            ids,
        )
        .await
    }

    /// Extends this server's hold on `keys` of `table` by a lease. `sql`
    /// binds the lease, the keys and this server's name, and returns
    /// `column` of each row it still holds; the answer is the keys it no
    /// longer holds (another server took them over, or they are gone).
    pub(super) async fn renew_held<K: HeldKey>(
        &self,
        table: &'static str,
        sql: String,
        column: &'static str,
        keys: &[K],
    ) -> EngineResult<Vec<K>> {
        let claim = self.claim_or_refuse()?;
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let rows = self
            .reader
            .fetch_all(q(
                sql,
                [
                    claim.lease_micros().into(),
                    K::list(keys),
                    claim.owner.as_str().into(),
                ],
            ))
            .await?;
        let mut kept = BTreeSet::new();
        for row in &rows {
            kept.insert(rows::Fields::keyed_by_pk(table, row).get::<K>(column)?);
        }
        Ok(keys
            .iter()
            .filter(|k| !kept.contains(*k))
            .cloned()
            .collect())
    }

    /// Gives up this server's claim on `runs` and on its experiments (it
    /// stops), so another server takes them over at once instead of when
    /// the leases run out.
    pub async fn release_runs(&self, runs: &[i64]) -> EngineResult<()> {
        let claim = self.claim_or_refuse()?;
        self.reader
            .execute(q(
                "UPDATE runs SET owner = NULL, lease_expires_at = NULL WHERE pk = ANY(?) AND owner = ?",
                [Arg::Ints(runs.to_vec()), claim.owner.as_str().into()],
            ))
            .await?;
        self.reader
            .execute(q(
                "UPDATE experiments SET owner = NULL, lease_expires_at = NULL WHERE owner = ? AND status = ?",
                [
                    claim.owner.as_str().into(),
                    ExperimentStatus::Running.as_i64().into(),
                ],
            ))
            .await?;
        self.reader
            .execute(q("SELECT pg_notify('retake_runs', '')", []))
            .await?;
        Ok(())
    }

    /// Who executes a run, and whether their lease holds now.
    pub async fn run_owner(&self, run_pk: i64) -> EngineResult<Option<(String, bool)>> {
        let row = self
            .reader
            .fetch_optional(q(
                format!(
                    "SELECT pk, owner, lease_expires_at >= {NOW} AS live FROM runs WHERE pk = ?"
                ),
                [run_pk.into()],
            ))
            .await?;
        let Some(row) = row else { return Ok(None) };
        let f = rows::Fields::keyed_by_pk("runs", &row);
        let owner: Option<String> = f.get_or_null("owner")?;
        let live: Option<bool> = f.get_or_null("live")?;
        Ok(owner.map(|o| (o, live.unwrap_or(false))))
    }

    /// Asks whichever server executes `target` to carry out `command`
    /// (JSON); returns the command's key, to wait for its outcome.
    pub async fn send_command(&self, target: &Target, command: &str) -> EngineResult<i64> {
        let (run_pk, experiment_id) = match target {
            Target::Run(pk) => (Some(*pk), None),
            Target::Experiment(id) => (None, Some(id.as_str())),
        };
        let row = self
            .reader
            .fetch_one(q(
                "INSERT INTO commands (run_pk, experiment_id, command, created_at) VALUES (?, ?, ?, ?) RETURNING pk",
                [
                    run_pk.into(),
                    experiment_id.into(),
                    command.into(),
                    now_micros().into(),
                ],
            ))
            .await?;
        let pk = rows::Fields::keyed_by_pk("commands", &row).get("pk")?;
        self.reader
            .execute(q("SELECT pg_notify('retake_commands', '')", []))
            .await?;
        Ok(pk)
    }

    /// Commands not yet carried out for the runs `run_pks` or the
    /// experiments `experiment_ids`: (key, target, command), oldest first.
    pub async fn pending_commands(
        &self,
        run_pks: &[i64],
        experiment_ids: &[String],
    ) -> EngineResult<Vec<(i64, Target, String)>> {
        if run_pks.is_empty() && experiment_ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows = self
            .reader
            .fetch_all(q(
                "SELECT pk, run_pk, experiment_id, command FROM commands
                 WHERE done_at IS NULL AND (run_pk = ANY(?) OR experiment_id = ANY(?)) ORDER BY pk",
                [
                    Arg::Ints(run_pks.to_vec()),
                    Arg::Texts(experiment_ids.to_vec()),
                ],
            ))
            .await?;
        rows.iter()
            .map(|row| {
                let f = rows::Fields::keyed_by_pk("commands", row);
                let target = match f.get_or_null::<i64>("run_pk")? {
                    Some(pk) => Target::Run(pk),
                    None => Target::Experiment(f.get("experiment_id")?),
                };
                Ok((f.get("pk")?, target, f.get("command")?))
            })
            .collect()
    }

    /// Records a command's outcome (JSON), once: returns false when it was
    /// carried out already.
    pub async fn finish_command(&self, pk: i64, outcome: &str) -> EngineResult<bool> {
        let done = self
            .reader
            .execute(q(
                "UPDATE commands SET done_at = ?, outcome = ? WHERE pk = ? AND done_at IS NULL",
                [now_micros().into(), outcome.into(), pk.into()],
            ))
            .await?;
        Ok(done == 1)
    }

    /// A command's outcome, once carried out.
    pub async fn command_outcome(&self, pk: i64) -> EngineResult<Option<String>> {
        let row = self
            .reader
            .fetch_optional(q(
                "SELECT pk, outcome FROM commands WHERE pk = ? AND done_at IS NOT NULL",
                [pk.into()],
            ))
            .await?;
        match row {
            Some(row) => rows::Fields::keyed_by_pk("commands", &row)
                .get("outcome")
                .map(Some),
            None => Ok(None),
        }
    }
}

/// A key a server holds rows by: a row key or an id.
pub(super) trait HeldKey: Column + Ord + Clone {
    /// The keys as one value for `= ANY(?)`.
    fn list(keys: &[Self]) -> Arg<'static>;
}

impl HeldKey for i64 {
    fn list(keys: &[Self]) -> Arg<'static> {
        Arg::Ints(keys.to_vec())
    }
}

impl HeldKey for String {
    fn list(keys: &[Self]) -> Arg<'static> {
        Arg::Texts(keys.to_vec())
    }
}
