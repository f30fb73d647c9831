//! Queries. Runs are addressed by `RunRef` (id, unique prefix or `latest`).

use super::db::{Arg, q};
use super::{Store, rows};
use crate::error::{EngineError, EngineResult, Reason};
use crate::model::*;

/// How a user names a run.
pub struct RunRef<'a>(pub &'a str);

#[derive(Debug, Default)]
pub struct RunFilter {
    pub status: Option<RunStatus>,
    pub workflow_name: Option<String>,
    pub forked_from: Option<String>,
    /// Created at or after this time.
    pub created_after: Option<Micros>,
    /// Created before this time.
    pub created_before: Option<Micros>,
    /// List the oldest first (keys follow creation), not the newest.
    pub oldest_first: bool,
}

/// Run statuses a process may leave behind unfinished.
pub(super) const UNFINISHED: [RunStatus; 3] =
    [RunStatus::Pending, RunStatus::Running, RunStatus::Waiting];

/// The smallest string greater than every string starting with `prefix`.
pub(super) fn prefix_upper(prefix: &str) -> String {
    format!("{prefix}\u{10FFFF}")
}

impl Store {
    /// Resolves a run id, a unique prefix of one (with or without `run_`),
    /// or `latest`.
    pub async fn find_run(&self, r: RunRef<'_>) -> EngineResult<Run> {
        let text = r.0.trim();
        if text.is_empty() {
            return Err(EngineError::invalid_argument("a run id is required"));
        }
        if text == "latest" {
            let row = self
                .reader
                .fetch_optional(q(
                    format!("{} ORDER BY r.pk DESC LIMIT 1", rows::RUN_SELECT),
                    [],
                ))
                .await?;
            return match row {
                Some(row) => rows::run_from_row(&row),
                None => Err(
                    EngineError::not_found("No runs yet: 'latest' names nothing")
                        .reason(Reason::RunNotFound)
                        .meta("runId", "latest"),
                ),
            };
        }
        if let Some(row) = self
            .reader
            .fetch_optional(q(
                format!("{} WHERE r.id = ?", rows::RUN_SELECT),
                [text.into()],
            ))
            .await?
        {
            return rows::run_from_row(&row);
        }
        let prefix = if text.starts_with("run_") {
            text.to_string()
        } else {
            format!("run_{text}")
        };
        let found = self
            .reader
            .fetch_all(q(
                format!(
                    "{} WHERE r.id >= ? AND r.id < ? ORDER BY r.id LIMIT 6",
                    rows::RUN_SELECT
                ),
                [prefix.as_str().into(), prefix_upper(&prefix).into()],
            ))
            .await?;
        match found.len() {
            0 => Err(EngineError::run_not_found(text)),
            1 => rows::run_from_row(&found[0]),
            _ => {
                let ids = found
                    .iter()
                    .take(5)
                    .map(|row| rows::Fields::keyed_by_pk("runs", row).get("id"))
                    .collect::<EngineResult<Vec<String>>>()?;
                Err(EngineError::invalid_argument(format!(
                    "Run id '{text}' is ambiguous; it matches {}{}",
                    ids.join(", "),
                    if found.len() > 5 { ", …" } else { "" }
                )))
            }
        }
    }

    /// Newest first; `before_pk` continues a page.
    pub async fn list_runs(
        &self,
        filter: &RunFilter,
        limit: i64,
        past_pk: Option<i64>,
    ) -> EngineResult<Vec<Run>> {
        // `past_pk` is the last run of the page before, in the listing's order.
        let (past, order, start) = if filter.oldest_first {
            (">", "ASC", i64::MIN)
        } else {
            ("<", "DESC", i64::MAX)
        };
        let mut sql = format!("{} WHERE r.pk {past} ?", rows::RUN_SELECT);
        if filter.status.is_some() {
            sql.push_str(" AND r.status = ?");
        }
        if filter.workflow_name.is_some() {
            sql.push_str(" AND r.workflow_name = ?");
        }
        if filter.forked_from.is_some() {
            sql.push_str(" AND r.forked_from = ?");
        }
        if filter.created_after.is_some() {
            sql.push_str(" AND r.created_at >= ?");
        }
        if filter.created_before.is_some() {
            sql.push_str(" AND r.created_at < ?");
        }
        sql.push_str(&format!(" ORDER BY r.pk {order} LIMIT ?"));
        let mut args: Vec<Arg> = vec![past_pk.unwrap_or(start).into()];
        args.extend(filter.status.map(|s| s.as_i64().into()));
        args.extend(filter.workflow_name.as_ref().map(Arg::from));
        args.extend(filter.forked_from.as_ref().map(Arg::from));
        args.extend(
            [filter.created_after, filter.created_before]
                .into_iter()
                .flatten()
                .map(Arg::from),
        );
        args.push(limit.into());
        let found = self.reader.fetch_all(q(sql, args)).await?;
        found.iter().map(rows::run_from_row).collect()
    }

    /// The run a request with this request_id stored, with the digest of
    /// what that request asked.
    pub async fn run_by_request(&self, request_id: &str) -> EngineResult<Option<(Run, String)>> {
        let row = self
            .reader
            .fetch_optional(q(
                format!("{} WHERE r.request_id = ?", rows::RUN_SELECT),
                [request_id.into()],
            ))
            .await?;
        match row {
            Some(row) => {
                let sha = rows::Fields::keyed_by_pk("runs", &row).get("request_sha256")?;
                Ok(Some((rows::run_from_row(&row)?, sha)))
            }
            None => Ok(None),
        }
    }

    /// Runs a previous process left unfinished.
    pub async fn unfinished_runs(&self) -> EngineResult<Vec<Run>> {
        let [a, b, c] = UNFINISHED.map(RunStatus::as_i64);
        let found = self
            .reader
            .fetch_all(q(
                format!(
                    "{} WHERE r.status IN (?, ?, ?) ORDER BY r.pk",
                    rows::RUN_SELECT
                ),
                [a.into(), b.into(), c.into()],
            ))
            .await?;
        found.iter().map(rows::run_from_row).collect()
    }

    /// Live node counts of a run from its node rows.
    pub async fn node_counts(&self, run_pk: i64) -> EngineResult<Vec<(NodeStatus, i32)>> {
        let found = self
            .reader
            .fetch_all(q(
                "SELECT status, COUNT(*) AS n FROM node_executions WHERE run_pk = ? GROUP BY status",
                [run_pk.into()],
            ))
            .await?;
        found
            .iter()
            .map(|row| {
                let f = rows::Fields::new("node_executions", row, rows::RowKey::RunPk(run_pk));
                Ok((
                    f.numbered("status", "node status", NodeStatus::from_i64)?,
                    f.get("n")?,
                ))
            })
            .collect()
    }

    pub async fn content(&self, sha256: &str) -> EngineResult<Vec<u8>> {
        let row = self
            .reader
            .fetch_optional(q(
                "SELECT data FROM contents WHERE sha256 = ?",
                [sha256.into()],
            ))
            .await?;
        // Every sha256 asked for comes from a row that refers to it.
        match &row {
            Some(row) => {
                rows::Fields::new("contents", row, rows::RowKey::Sha256(sha256)).get("data")
            }
            None => Err(EngineError::Corrupt {
                table: "contents",
                column: "sha256",
                row: rows::RowKey::Sha256(sha256).to_string(),
                problem: "missing, though a run or artifact refers to it".into(),
            }),
        }
    }

    pub async fn nodes_of_run(&self, run_pk: i64) -> EngineResult<Vec<NodeExecution>> {
        self.nodes_with_columns(run_pk, rows::NODE_COLUMNS).await
    }

    async fn nodes_with_columns(
        &self,
        run_pk: i64,
        columns: &str,
    ) -> EngineResult<Vec<NodeExecution>> {
        let sql = format!(
            "SELECT {columns} FROM node_executions n JOIN runs r ON r.pk = n.run_pk WHERE n.run_pk = ? ORDER BY n.position"
        );
        let found = self.reader.fetch_all(q(sql, [run_pk.into()])).await?;
        found.iter().map(rows::node_from_row).collect()
    }

    pub async fn artifacts_of_run(
        &self,
        run_pk: i64,
        after: Option<&str>,
        limit: i64,
    ) -> EngineResult<Vec<Artifact>> {
        let sql = format!(
            "SELECT {} FROM artifacts a JOIN runs r ON r.pk = a.run_pk LEFT JOIN node_executions n ON n.pk = a.node_execution_pk
             WHERE a.run_pk = ? AND a.id > ? ORDER BY a.id LIMIT ?",
            rows::ARTIFACT_COLUMNS
        );
        let found = self
            .reader
            .fetch_all(q(
                sql,
                [run_pk.into(), after.unwrap_or("").into(), limit.into()],
            ))
            .await?;
        found.iter().map(rows::artifact_from_row).collect()
    }

    pub async fn artifacts_by_ids(&self, ids: &[String]) -> EngineResult<Vec<Artifact>> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(500) {
            let marks = vec!["?"; chunk.len()].join(",");
            let sql = format!(
                "SELECT {} FROM artifacts a JOIN runs r ON r.pk = a.run_pk LEFT JOIN node_executions n ON n.pk = a.node_execution_pk
                 WHERE a.id IN ({marks})",
                rows::ARTIFACT_COLUMNS
            );
            let args = chunk.iter().map(Arg::from);
            for row in self.reader.fetch_all(q(sql, args)).await? {
                out.push(rows::artifact_from_row(&row)?);
            }
        }
        Ok(out)
    }

    pub async fn artifact(&self, id: &str) -> EngineResult<Artifact> {
        let id = id.trim();
        let found = self.artifacts_by_ids(&[id.to_string()]).await?;
        if let Some(a) = found.into_iter().next() {
            return Ok(a);
        }
        // A unique prefix is enough, as for runs.
        let prefix = if id.starts_with("art_") {
            id.to_string()
        } else {
            format!("art_{id}")
        };
        let sql = format!(
            "SELECT {} FROM artifacts a JOIN runs r ON r.pk = a.run_pk LEFT JOIN node_executions n ON n.pk = a.node_execution_pk
             WHERE a.id >= ? AND a.id < ? ORDER BY a.id LIMIT 6",
            rows::ARTIFACT_COLUMNS
        );
        let found = self
            .reader
            .fetch_all(q(
                sql,
                [prefix.as_str().into(), prefix_upper(&prefix).into()],
            ))
            .await?;
        match found.len() {
            1 => rows::artifact_from_row(&found[0]),
            0 => Err(EngineError::not_found(format!(
                "Artifact '{}' not found",
                crate::error::echo(id)
            ))
            .reason(Reason::ArtifactNotFound)
            .meta("artifactId", id)),
            _ => Err(EngineError::invalid_argument(format!(
                "Artifact id '{id}' is ambiguous"
            ))),
        }
    }

    pub async fn events_after(
        &self,
        run: &Run,
        after: i64,
        limit: i64,
    ) -> EngineResult<Vec<Event>> {
        let found = self
            .reader
            .fetch_all(q(
                "SELECT sequence, kind, time, node_id, payload FROM events WHERE run_pk = ? AND sequence > ? ORDER BY sequence LIMIT ?",
                [run.pk.into(), after.into(), limit.into()],
            ))
            .await?;
        found.iter().map(|r| rows::event_from_row(run, r)).collect()
    }

    pub async fn first_event_sequence(&self, run_pk: i64) -> EngineResult<Option<i64>> {
        let row = self
            .reader
            .fetch_one(q(
                "SELECT MIN(sequence) AS n FROM events WHERE run_pk = ?",
                [run_pk.into()],
            ))
            .await?;
        rows::Fields::new("events", &row, rows::RowKey::RunPk(run_pk)).get_or_null("n")
    }

    pub async fn last_event_sequence(&self, run_pk: i64) -> EngineResult<i64> {
        let row = self
            .reader
            .fetch_one(q(
                "SELECT MAX(sequence) AS n FROM events WHERE run_pk = ?",
                [run_pk.into()],
            ))
            .await?;
        let n: Option<i64> =
            rows::Fields::new("events", &row, rows::RowKey::RunPk(run_pk)).get_or_null("n")?;
        Ok(n.unwrap_or(0))
    }
}
