//! Rows read from the database as the model's types.

use super::db::{Column, Row};
use crate::error::{EngineError, EngineResult};
use crate::model::*;

/// How an error names the row it is about; written out only then.
#[derive(Clone, Copy)]
pub(super) enum RowKey<'k> {
    Pk(i64),
    /// `pk` is an alias of the rowid, always an integer: never expected.
    UnreadablePk,
    /// Rows of a run, grouped (`node_counts`).
    RunPk(i64),
    Event {
        run_pk: i64,
        sequence: i64,
    },
    Sha256(&'k str),
    /// A relayed worker task.
    Task(&'k str),
    /// An experiment's item.
    Item {
        experiment: &'k str,
        position: i64,
    },
}

impl std::fmt::Display for RowKey<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Pk(pk) => write!(f, "pk {pk}"),
            Self::UnreadablePk => f.write_str("an unreadable pk"),
            Self::RunPk(pk) => write!(f, "run_pk {pk}"),
            Self::Event { run_pk, sequence } => write!(f, "run_pk {run_pk}, sequence {sequence}"),
            Self::Sha256(sha) => write!(f, "sha256 {sha}"),
            Self::Task(id) => write!(f, "task_id {id}"),
            Self::Item {
                experiment,
                position,
            } => write!(f, "experiment_id {experiment}, position {position}"),
        }
    }
}

/// The columns of one row of `table`, read so that a value retake could
/// not have written is reported (naming table, column and row) instead of
/// being read as a default.
pub(super) struct Fields<'r> {
    table: &'static str,
    row: &'r Row,
    key: RowKey<'r>,
}

impl<'r> Fields<'r> {
    pub(super) fn new(table: &'static str, row: &'r Row, key: RowKey<'r>) -> Self {
        Self { table, row, key }
    }

    /// A row of a table with an integer primary key `pk`, selected with it.
    pub(super) fn keyed_by_pk(table: &'static str, row: &'r Row) -> Self {
        let key = match row.try_get::<i64>("pk") {
            Ok(Some(pk)) => RowKey::Pk(pk),
            _ => RowKey::UnreadablePk,
        };
        Self::new(table, row, key)
    }

    pub(super) fn corrupt(
        &self,
        column: &'static str,
        problem: impl std::fmt::Display,
    ) -> EngineError {
        EngineError::Corrupt {
            table: self.table,
            column,
            row: self.key.to_string(),
            problem: problem.to_string(),
        }
    }

    /// A column that is never NULL; a value of the wrong type is
    /// corruption. (sqlx would read NULL as `""` or 0.)
    pub(super) fn get<T: Column>(&self, column: &'static str) -> EngineResult<T> {
        self.get_or_null(column)?
            .ok_or_else(|| self.corrupt(column, "NULL where a value is required"))
    }

    /// A column where NULL means absent.
    pub(super) fn get_or_null<T: Column>(&self, column: &'static str) -> EngineResult<Option<T>> {
        self.row.try_get(column).map_err(|e| match e {
            sqlx::Error::ColumnDecode { source, .. } => self.corrupt(column, source),
            other => other.into(),
        })
    }

    /// A JSON text column that is never NULL.
    pub(super) fn json<T: serde::de::DeserializeOwned>(
        &self,
        column: &'static str,
    ) -> EngineResult<T> {
        let text: String = self.get(column)?;
        self.parse(column, &text)
    }

    /// A JSON text column where NULL means absent.
    pub(super) fn json_or_null<T: serde::de::DeserializeOwned>(
        &self,
        column: &'static str,
    ) -> EngineResult<Option<T>> {
        match self.get_or_null::<String>(column)? {
            Some(text) => self.parse(column, &text).map(Some),
            None => Ok(None),
        }
    }

    fn parse<T: serde::de::DeserializeOwned>(
        &self,
        column: &'static str,
        text: &str,
    ) -> EngineResult<T> {
        serde_json::from_str(text)
            .map_err(|e| self.corrupt(column, format!("not the expected JSON: {e}")))
    }

    /// An enum stored as its number; `what` names it in the error.
    pub(super) fn numbered<T>(
        &self,
        column: &'static str,
        what: &str,
        from: fn(i64) -> Option<T>,
    ) -> EngineResult<T> {
        let n: i64 = self.get(column)?;
        from(n).ok_or_else(|| self.corrupt(column, format!("{n} is not a {what}")))
    }

    pub(super) fn numbered_or_null<T>(
        &self,
        column: &'static str,
        what: &str,
        from: fn(i64) -> Option<T>,
    ) -> EngineResult<Option<T>> {
        match self.get_or_null::<i64>(column)? {
            Some(n) => from(n)
                .map(Some)
                .ok_or_else(|| self.corrupt(column, format!("{n} is not a {what}"))),
            None => Ok(None),
        }
    }
}

/// Selects runs with their variables, stored as a content.
pub(super) const RUN_SELECT: &str = "SELECT r.*, v.data AS variables FROM runs r LEFT JOIN contents v ON v.sha256 = r.variables_sha256";

fn variables(f: &Fields<'_>) -> EngineResult<std::collections::BTreeMap<String, String>> {
    let sha256: String = f.get("variables_sha256")?;
    let Some(data) = f.get_or_null::<Vec<u8>>("variables")? else {
        return Err(f.corrupt("variables_sha256", "names no stored content"));
    };
    serde_json::from_slice(&data).map_err(|e| {
        Fields::new("contents", f.row, RowKey::Sha256(&sha256))
            .corrupt("data", format!("not the expected variables JSON: {e}"))
    })
}

pub(super) fn run_from_row(row: &Row) -> EngineResult<Run> {
    let f = Fields::keyed_by_pk("runs", row);
    let failure = match f.get_or_null::<String>("failure_message")? {
        Some(message) => Some(RunFailure {
            node_id: f.get("failure_node")?,
            message,
            origin: f.numbered("failure_origin", "failure origin", FailureOrigin::from_i64)?,
        }),
        None => None,
    };
    Ok(Run {
        pk: f.get("pk")?,
        id: f.get("id")?,
        workflow_name: f.get("workflow_name")?,
        workflow_description: f.get("workflow_description")?,
        workflow_sha256: f.get("workflow_sha256")?,
        files: f.json("files")?,
        variables: variables(&f)?,
        status: f.numbered("status", "run status", RunStatus::from_i64)?,
        created_at: f.get("created_at")?,
        started_at: f.get_or_null("started_at")?,
        finished_at: f.get_or_null("finished_at")?,
        counts: NodeCounts {
            total: f.get("total_nodes")?,
            completed: f.get("completed_nodes")?,
            failed: f.get("failed_nodes")?,
            skipped: f.get("skipped_nodes")?,
            reused: f.get("reused_nodes")?,
            cancelled: f.get("cancelled_nodes")?,
            ..Default::default()
        },
        usage: Usage {
            input_tokens: f.get("input_tokens")?,
            output_tokens: f.get("output_tokens")?,
            cost_usd: f.get("cost_usd")?,
        },
        failure,
        replay: f.json_or_null("replay")?,
    })
}

/// Columns selected for node rows; joined with runs for the run id.
pub(super) const NODE_COLUMNS: &str = "n.pk, n.id, r.id AS run_id, n.node_id, n.position, n.status, n.agent, n.config, n.prompt,
    n.model, n.inputs, n.input_artifacts, n.output_artifacts, n.error, n.error_origin, n.started_at,
    n.finished_at, n.latency_ms, n.input_tokens, n.output_tokens, n.cost_usd, n.attempt_count, n.attempts,
    n.blocked_by";

pub(super) fn node_from_row(row: &Row) -> EngineResult<NodeExecution> {
    let f = Fields::keyed_by_pk("node_executions", row);
    Ok(NodeExecution {
        pk: f.get("pk")?,
        id: f.get("id")?,
        run_id: f.get("run_id")?,
        node_id: f.get("node_id")?,
        position: f.get("position")?,
        status: f.numbered("status", "node status", NodeStatus::from_i64)?,
        agent: f.get("agent")?,
        config_json: f.get("config")?,
        prompt: f.get_or_null("prompt")?,
        model: f.get_or_null("model")?,
        inputs_json: f.get_or_null("inputs")?,
        input_artifacts: f.json("input_artifacts")?,
        output_artifacts: f.json("output_artifacts")?,
        error: f.get_or_null("error")?,
        error_origin: f.numbered_or_null(
            "error_origin",
            "failure origin",
            FailureOrigin::from_i64,
        )?,
        started_at: f.get_or_null("started_at")?,
        finished_at: f.get_or_null("finished_at")?,
        latency_ms: f.get_or_null("latency_ms")?,
        usage: Usage {
            input_tokens: f.get("input_tokens")?,
            output_tokens: f.get("output_tokens")?,
            cost_usd: f.get("cost_usd")?,
        },
        attempt_count: f.get("attempt_count")?,
        attempts: f.json("attempts")?,
        blocked_by: f.json("blocked_by")?,
        reused_from_run: None,
        reused_from_node_execution: None,
        depends_on: Vec::new(),
    })
}

pub(super) const ARTIFACT_COLUMNS: &str =
    "a.pk, a.id, r.id AS run_id, a.node_id, n.id AS node_execution_id, a.name, a.media_type,
    a.size, a.sha256, a.origin, a.derived_from, a.created_at";

pub(super) fn artifact_from_row(row: &Row) -> EngineResult<Artifact> {
    let f = Fields::keyed_by_pk("artifacts", row);
    Ok(Artifact {
        id: f.get("id")?,
        run_id: f.get("run_id")?,
        node_id: f.get("node_id")?,
        node_execution_id: f.get_or_null("node_execution_id")?,
        name: f.get("name")?,
        media_type: f.get("media_type")?,
        size: f.get("size")?,
        sha256: f.get("sha256")?,
        origin: f.numbered("origin", "artifact origin", ArtifactOrigin::from_i64)?,
        derived_from: f.json("derived_from")?,
        created_at: f.get("created_at")?,
    })
}

pub(super) fn event_from_row(run: &Run, row: &Row) -> EngineResult<Event> {
    let sequence: i64 = Fields::new("events", row, RowKey::RunPk(run.pk)).get("sequence")?;
    let key = RowKey::Event {
        run_pk: run.pk,
        sequence,
    };
    let f = Fields::new("events", row, key);
    Ok(Event {
        run_id: run.id.clone(),
        sequence,
        kind: f.numbered("kind", "event kind", EventKind::from_i64)?,
        time: f.get("time")?,
        node_id: f.get_or_null("node_id")?,
        // NULL is an event without optional fields.
        detail: f.json_or_null("payload")?.unwrap_or_default(),
    })
}
