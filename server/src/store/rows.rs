//! Row mapping between SQLite and the engine's model types.

use crate::error::{EngineError, EngineResult};
use crate::model::*;
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, Sqlite, Transaction};

pub(super) type Tx<'c> = Transaction<'c, Sqlite>;

fn json<T: serde::Serialize>(value: &T) -> EngineResult<String> {
    Ok(serde_json::to_string(value)?)
}

/// The columns of one row of `table`, read so that a value retake could
/// not have written is reported (naming table, column and row) instead of
/// being read as a default.
pub struct Fields<'r> {
    table: &'static str,
    row: &'r SqliteRow,
    key: String,
}

impl<'r> Fields<'r> {
    pub fn new(table: &'static str, row: &'r SqliteRow, key: String) -> Self {
        Self { table, row, key }
    }

    /// A row of a table with an integer primary key `pk`, selected with it.
    pub fn keyed_by_pk(table: &'static str, row: &'r SqliteRow) -> Self {
        // `pk` is an alias of the rowid: always an integer.
        let key = match row.try_get::<i64, _>("pk") {
            Ok(pk) => format!("pk {pk}"),
            Err(e) => format!("an unreadable pk ({e})"),
        };
        Self::new(table, row, key)
    }

    pub fn corrupt(&self, column: &'static str, problem: impl std::fmt::Display) -> EngineError {
        EngineError::Corrupt {
            table: self.table,
            column,
            row: self.key.clone(),
            problem: problem.to_string(),
        }
    }

    /// A column that is never NULL; a value of the wrong type is
    /// corruption. (sqlx would read NULL as `""` or 0.)
    pub fn get<T>(&self, column: &'static str) -> EngineResult<T>
    where
        T: sqlx::Decode<'r, Sqlite> + sqlx::Type<Sqlite>,
    {
        self.get_or_null(column)?
            .ok_or_else(|| self.corrupt(column, "NULL where a value is required"))
    }

    /// A column where NULL means absent.
    pub fn get_or_null<T>(&self, column: &'static str) -> EngineResult<Option<T>>
    where
        T: sqlx::Decode<'r, Sqlite> + sqlx::Type<Sqlite>,
    {
        self.row.try_get(column).map_err(|e| match e {
            sqlx::Error::ColumnDecode { source, .. } => self.corrupt(column, source),
            other => other.into(),
        })
    }

    /// A JSON text column that is never NULL.
    pub fn json<T: serde::de::DeserializeOwned>(&self, column: &'static str) -> EngineResult<T> {
        let text: String = self.get(column)?;
        self.parse(column, &text)
    }

    /// A JSON text column where NULL means absent.
    pub fn json_or_null<T: serde::de::DeserializeOwned>(
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
    pub fn numbered<T>(
        &self,
        column: &'static str,
        what: &str,
        from: fn(i64) -> Option<T>,
    ) -> EngineResult<T> {
        let n: i64 = self.get(column)?;
        from(n).ok_or_else(|| self.corrupt(column, format!("{n} is not a {what}")))
    }

    pub fn numbered_or_null<T>(
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

pub async fn insert_run(tx: &mut Tx<'_>, run: &Run) -> EngineResult<i64> {
    let res = sqlx::query(
        "INSERT INTO runs (id, workflow_name, workflow_description, workflow_sha256, files, variables, status, created_at, total_nodes, forked_from, forked_at_step, replay)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&run.id)
    .bind(&run.workflow_name)
    .bind(&run.workflow_description)
    .bind(&run.workflow_sha256)
    .bind(json(&run.files)?)
    .bind(json(&run.variables)?)
    .bind(run.status.as_i64())
    .bind(run.created_at)
    .bind(run.counts.total)
    .bind(run.replay.as_ref().map(|r| r.forked_from.clone()))
    .bind(run.replay.as_ref().map(|r| r.forked_at_step.clone()))
    .bind(run.replay.as_ref().map(json).transpose()?)
    .execute(&mut **tx)
    .await?;
    Ok(res.last_insert_rowid())
}

pub async fn write_run(tx: &mut Tx<'_>, run: &Run) -> EngineResult<()> {
    let c = &run.counts;
    let f = run.failure.as_ref();
    sqlx::query(
        "UPDATE runs SET status = ?, started_at = ?, finished_at = ?, total_nodes = ?, completed_nodes = ?,
            failed_nodes = ?, skipped_nodes = ?, reused_nodes = ?, cancelled_nodes = ?, input_tokens = ?,
            output_tokens = ?, cost_usd = ?, failure_node = ?, failure_message = ?, failure_origin = ?
         WHERE pk = ?",
    )
    .bind(run.status.as_i64())
    .bind(run.started_at)
    .bind(run.finished_at)
    .bind(c.total)
    .bind(c.completed)
    .bind(c.failed)
    .bind(c.skipped)
    .bind(c.reused)
    .bind(c.cancelled)
    .bind(run.usage.input_tokens)
    .bind(run.usage.output_tokens)
    .bind(run.usage.cost_usd)
    .bind(f.map(|f| f.node_id.clone()))
    .bind(f.map(|f| f.message.clone()))
    .bind(f.map(|f| f.origin.as_i64()))
    .bind(run.pk)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub fn run_from_row(row: &SqliteRow) -> EngineResult<Run> {
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
        variables: f.json("variables")?,
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

pub async fn insert_node(tx: &mut Tx<'_>, run_pk: i64, n: &NodeExecution) -> EngineResult<i64> {
    let res = sqlx::query(
        "INSERT INTO node_executions (id, run_pk, node_id, position, status, agent, config)
         VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&n.id)
    .bind(run_pk)
    .bind(&n.node_id)
    .bind(n.position)
    .bind(n.status.as_i64())
    .bind(&n.agent)
    .bind(&n.config_json)
    .execute(&mut **tx)
    .await?;
    Ok(res.last_insert_rowid())
}

pub async fn update_node(tx: &mut Tx<'_>, n: &NodeExecution) -> EngineResult<()> {
    sqlx::query(
        "UPDATE node_executions SET status = ?, agent = ?, config = ?, prompt = ?, model = ?, inputs = ?,
            input_artifacts = ?, output_artifacts = ?, error = ?, error_origin = ?, started_at = ?,
            finished_at = ?, latency_ms = ?, input_tokens = ?, output_tokens = ?, cost_usd = ?,
            attempt_count = ?, attempts = ?, blocked_by = ?
         WHERE pk = ?",
    )
    .bind(n.status.as_i64())
    .bind(&n.agent)
    .bind(&n.config_json)
    .bind(&n.prompt)
    .bind(&n.model)
    .bind(&n.inputs_json)
    .bind(json(&n.input_artifacts)?)
    .bind(json(&n.output_artifacts)?)
    .bind(&n.error)
    .bind(n.error_origin.map(FailureOrigin::as_i64))
    .bind(n.started_at)
    .bind(n.finished_at)
    .bind(n.latency_ms)
    .bind(n.usage.input_tokens)
    .bind(n.usage.output_tokens)
    .bind(n.usage.cost_usd)
    .bind(n.attempt_count)
    .bind(json(&n.attempts)?)
    .bind(json(&n.blocked_by)?)
    .bind(n.pk)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Columns selected for node rows; joined with runs for the run id.
pub const NODE_COLUMNS: &str = "n.pk, n.id, r.id AS run_id, n.node_id, n.position, n.status, n.agent, n.config, n.prompt,
    n.model, n.inputs, n.input_artifacts, n.output_artifacts, n.error, n.error_origin, n.started_at,
    n.finished_at, n.latency_ms, n.input_tokens, n.output_tokens, n.cost_usd, n.attempt_count, n.attempts,
    n.blocked_by";

pub fn node_from_row(row: &SqliteRow) -> EngineResult<NodeExecution> {
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

pub async fn insert_artifact(
    tx: &mut Tx<'_>,
    run_pk: i64,
    node_pk: Option<i64>,
    a: &Artifact,
) -> EngineResult<()> {
    sqlx::query(
        "INSERT INTO artifacts (id, run_pk, node_execution_pk, node_id, name, media_type, size, sha256, origin, derived_from, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&a.id)
    .bind(run_pk)
    .bind(node_pk)
    .bind(&a.node_id)
    .bind(&a.name)
    .bind(&a.media_type)
    .bind(a.size)
    .bind(&a.sha256)
    .bind(a.origin.as_i64())
    .bind(json(&a.derived_from)?)
    .bind(a.created_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub const ARTIFACT_COLUMNS: &str =
    "a.pk, a.id, r.id AS run_id, a.node_id, n.id AS node_execution_id, a.name, a.media_type,
    a.size, a.sha256, a.origin, a.derived_from, a.created_at";

pub fn artifact_from_row(row: &SqliteRow) -> EngineResult<Artifact> {
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

/// Inserts events with multi-row statements: fewer round trips per commit.
pub async fn insert_events(tx: &mut Tx<'_>, events: &[(i64, Event)]) -> EngineResult<()> {
    for chunk in events.chunks(64) {
        let mut sql = String::from(
            "INSERT INTO events (run_pk, sequence, kind, time, node_id, payload) VALUES ",
        );
        for i in 0..chunk.len() {
            sql.push_str(if i == 0 {
                "(?, ?, ?, ?, ?, ?)"
            } else {
                ", (?, ?, ?, ?, ?, ?)"
            });
        }
        let mut q = sqlx::query(&sql);
        for (run_pk, e) in chunk {
            let payload = if e.detail.is_empty() {
                None
            } else {
                Some(json(&e.detail)?)
            };
            q = q
                .bind(*run_pk)
                .bind(e.sequence)
                .bind(e.kind.as_i64())
                .bind(e.time)
                .bind(e.node_id.clone())
                .bind(payload);
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

pub fn event_from_row(run: &Run, row: &SqliteRow) -> EngineResult<Event> {
    let sequence: i64 = Fields::new("events", row, format!("run_pk {}", run.pk)).get("sequence")?;
    let f = Fields::new(
        "events",
        row,
        format!("run_pk {}, sequence {sequence}", run.pk),
    );
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
