//! Reading experiments and their items back.

use super::Store;
use super::db::{Row, q};
use super::rows::{Fields, RowKey};
use crate::error::{EngineError, EngineResult, Reason};
use crate::model::*;

const EXPERIMENT_COLUMNS: &str = "pk, id, name, status, spec, created_at, finished_at";

fn experiment_from_row(row: &Row) -> EngineResult<Experiment> {
    let f = Fields::keyed_by_pk("experiments", row);
    Ok(Experiment {
        id: f.get("id")?,
        name: f.get("name")?,
        status: f.numbered("status", "experiment status", ExperimentStatus::from_i64)?,
        spec: f.json("spec")?,
        created_at: f.get("created_at")?,
        finished_at: f.get_or_null("finished_at")?,
        items: Vec::new(),
    })
}

fn item_from_row(experiment: &str, row: &Row) -> EngineResult<ExperimentItem> {
    // Only to name the row in an error; the read below checks it.
    let position = row.try_get("position").ok().flatten().unwrap_or(-1);
    let f = Fields::new(
        "experiment_items",
        row,
        RowKey::Item {
            experiment,
            position,
        },
    );
    Ok(ExperimentItem {
        experiment_id: f.get("experiment_id")?,
        position: f.get("position")?,
        source_run_id: f.get("source_run_id")?,
        replay_run_id: f.get_or_null("replay_run_id")?,
        status: f.numbered("status", "experiment item status", ItemStatus::from_i64)?,
        reason: f.get_or_null("reason")?,
    })
}

impl Store {
    /// An experiment with its items, in position order: by its id, a
    /// unique prefix of one (with or without `exp_`), or `latest`, as runs
    /// are named.
    pub async fn experiment(&self, given: &str) -> EngineResult<Experiment> {
        let row = self.experiment_row(given).await?;
        let mut experiment = experiment_from_row(&row)?;
        experiment.items = self.items_of(&experiment.id).await?;
        Ok(experiment)
    }

    async fn experiment_row(&self, given: &str) -> EngineResult<Row> {
        let text = given.trim();
        if text.is_empty() {
            return Err(EngineError::invalid_argument(
                "an experiment id is required",
            ));
        }
        let select = format!("SELECT {EXPERIMENT_COLUMNS} FROM experiments");
        if text == "latest" {
            return self
                .reader
                .fetch_optional(q(format!("{select} ORDER BY pk DESC LIMIT 1"), []))
                .await?
                .ok_or_else(|| {
                    EngineError::not_found("No experiments yet: 'latest' names nothing")
                        .reason(Reason::ExperimentNotFound)
                        .meta("experimentId", "latest")
                });
        }
        if let Some(row) = self
            .reader
            .fetch_optional(q(format!("{select} WHERE id = ?"), [text.into()]))
            .await?
        {
            return Ok(row);
        }
        let prefix = if text.starts_with("exp_") {
            text.to_string()
        } else {
            format!("exp_{text}")
        };
        let mut found = self
            .reader
            .fetch_all(q(
                format!("{select} WHERE id >= ? AND id < ? ORDER BY id LIMIT 6"),
                [
                    prefix.as_str().into(),
                    super::read::prefix_upper(&prefix).into(),
                ],
            ))
            .await?;
        match found.len() {
            0 => Err(EngineError::not_found(format!(
                "Experiment '{}' not found",
                crate::error::echo(text)
            ))
            .reason(Reason::ExperimentNotFound)
            .meta("experimentId", text)),
            1 => Ok(found.remove(0)),
            n => {
                let ids = found
                    .iter()
                    .take(5)
                    .map(|row| Fields::keyed_by_pk("experiments", row).get("id"))
                    .collect::<EngineResult<Vec<String>>>()?;
                Err(EngineError::invalid_argument(format!(
                    "Experiment id '{text}' is ambiguous; it matches {}{}",
                    ids.join(", "),
                    if n > 5 { ", …" } else { "" }
                )))
            }
        }
    }

    async fn items_of(&self, experiment_id: &str) -> EngineResult<Vec<ExperimentItem>> {
        let rows = self
            .reader
            .fetch_all(q(
                "SELECT experiment_id, position, source_run_id, replay_run_id, status, reason
                 FROM experiment_items WHERE experiment_id = ? ORDER BY position",
                [experiment_id.into()],
            ))
            .await?;
        rows.iter()
            .map(|r| item_from_row(experiment_id, r))
            .collect()
    }

    /// Experiments newest first, before the one with key `before_pk`; with
    /// each one's key, for paging.
    pub async fn list_experiments(
        &self,
        limit: i64,
        before_pk: Option<i64>,
    ) -> EngineResult<Vec<(i64, Experiment)>> {
        let rows = self
            .reader
            .fetch_all(q(
                format!(
                    "SELECT {EXPERIMENT_COLUMNS} FROM experiments WHERE pk < ? ORDER BY pk DESC LIMIT ?"
                ),
                [before_pk.unwrap_or(i64::MAX).into(), limit.into()],
            ))
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let pk: i64 = Fields::keyed_by_pk("experiments", row).get("pk")?;
            let mut e = experiment_from_row(row)?;
            e.items = self.items_of(&e.id).await?;
            out.push((pk, e));
        }
        Ok(out)
    }

    /// Ids of the experiments a previous process left running.
    pub async fn unfinished_experiments(&self) -> EngineResult<Vec<String>> {
        let rows = self
            .reader
            .fetch_all(q(
                "SELECT pk, id FROM experiments WHERE status = ? ORDER BY pk",
                [ExperimentStatus::Running.as_i64().into()],
            ))
            .await?;
        rows.iter()
            .map(|row| Fields::keyed_by_pk("experiments", row).get("id"))
            .collect()
    }
}
