//! Row mapping between SQLite and the engine's model types.

use crate::error::{EngineError, EngineResult};
use crate::model::*;
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, Sqlite, Transaction};

pub(super) type Tx<'c> = Transaction<'c, Sqlite>;

fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".into())
}

fn parse_json<T: serde::de::DeserializeOwned + Default>(text: Option<String>) -> T {
    text.and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
}

fn bad_row(what: &str) -> EngineError {
    EngineError::Internal(format!("corrupt {what} in database"))
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
    .bind(json(&run.files))
    .bind(json(&run.variables))
    .bind(run.status.as_i64())
    .bind(run.created_at)
    .bind(run.counts.total)
    .bind(run.replay.as_ref().map(|r| r.forked_from.clone()))
    .bind(run.replay.as_ref().map(|r| r.forked_at_step.clone()))
    .bind(run.replay.as_ref().map(json))
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
    let status =
        RunStatus::from_i64(row.try_get("status")?).ok_or_else(|| bad_row("run status"))?;
    let failure = match row.try_get::<Option<String>, _>("failure_message")? {
        Some(message) => Some(RunFailure {
            node_id: row
                .try_get::<Option<String>, _>("failure_node")?
                .unwrap_or_default(),
            message,
            origin: row
                .try_get::<Option<i64>, _>("failure_origin")?
                .and_then(FailureOrigin::from_i64)
                .unwrap_or(FailureOrigin::Internal),
        }),
        None => None,
    };
    Ok(Run {
        pk: row.try_get("pk")?,
        id: row.try_get("id")?,
        workflow_name: row.try_get("workflow_name")?,
        workflow_description: row.try_get("workflow_description")?,
        workflow_sha256: row.try_get("workflow_sha256")?,
        files: parse_json(row.try_get("files")?),
        variables: parse_json(row.try_get("variables")?),
        status,
        created_at: row.try_get("created_at")?,
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
        counts: NodeCounts {
            total: row.try_get("total_nodes")?,
            completed: row.try_get("completed_nodes")?,
            failed: row.try_get("failed_nodes")?,
            skipped: row.try_get("skipped_nodes")?,
            reused: row.try_get("reused_nodes")?,
            cancelled: row.try_get("cancelled_nodes")?,
            ..Default::default()
        },
        usage: Usage {
            input_tokens: row.try_get("input_tokens")?,
            output_tokens: row.try_get("output_tokens")?,
            cost_usd: row.try_get("cost_usd")?,
        },
        failure,
        replay: row
            .try_get::<Option<String>, _>("replay")?
            .and_then(|t| serde_json::from_str(&t).ok()),
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
    .bind(json(&n.input_artifacts))
    .bind(json(&n.output_artifacts))
    .bind(&n.error)
    .bind(n.error_origin.map(FailureOrigin::as_i64))
    .bind(n.started_at)
    .bind(n.finished_at)
    .bind(n.latency_ms)
    .bind(n.usage.input_tokens)
    .bind(n.usage.output_tokens)
    .bind(n.usage.cost_usd)
    .bind(n.attempt_count)
    .bind(json(&n.attempts))
    .bind(json(&n.blocked_by))
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
    Ok(NodeExecution {
        pk: row.try_get("pk")?,
        id: row.try_get("id")?,
        run_id: row.try_get("run_id")?,
        node_id: row.try_get("node_id")?,
        position: row.try_get("position")?,
        status: NodeStatus::from_i64(row.try_get("status")?)
            .ok_or_else(|| bad_row("node status"))?,
        agent: row.try_get("agent")?,
        config_json: row.try_get("config")?,
        prompt: row.try_get("prompt")?,
        model: row.try_get("model")?,
        inputs_json: row.try_get("inputs")?,
        input_artifacts: parse_json(row.try_get("input_artifacts")?),
        output_artifacts: parse_json(row.try_get("output_artifacts")?),
        error: row.try_get("error")?,
        error_origin: row
            .try_get::<Option<i64>, _>("error_origin")?
            .and_then(FailureOrigin::from_i64),
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
        latency_ms: row.try_get("latency_ms")?,
        usage: Usage {
            input_tokens: row.try_get("input_tokens")?,
            output_tokens: row.try_get("output_tokens")?,
            cost_usd: row.try_get("cost_usd")?,
        },
        attempt_count: row.try_get("attempt_count")?,
        attempts: parse_json(row.try_get("attempts")?),
        blocked_by: parse_json(row.try_get("blocked_by")?),
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
    .bind(json(&a.derived_from))
    .bind(a.created_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub const ARTIFACT_COLUMNS: &str =
    "a.id, r.id AS run_id, a.node_id, n.id AS node_execution_id, a.name, a.media_type,
    a.size, a.sha256, a.origin, a.derived_from, a.created_at";

pub fn artifact_from_row(row: &SqliteRow) -> EngineResult<Artifact> {
    Ok(Artifact {
        id: row.try_get("id")?,
        run_id: row.try_get("run_id")?,
        node_id: row.try_get("node_id")?,
        node_execution_id: row.try_get("node_execution_id")?,
        name: row.try_get("name")?,
        media_type: row.try_get("media_type")?,
        size: row.try_get("size")?,
        sha256: row.try_get("sha256")?,
        origin: ArtifactOrigin::from_i64(row.try_get("origin")?)
            .ok_or_else(|| bad_row("artifact origin"))?,
        derived_from: parse_json(row.try_get("derived_from")?),
        created_at: row.try_get("created_at")?,
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
            let payload = (!e.detail.is_empty()).then(|| json(&e.detail));
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

pub fn event_from_row(run_id: &str, row: &SqliteRow) -> EngineResult<Event> {
    Ok(Event {
        run_id: run_id.to_string(),
        sequence: row.try_get("sequence")?,
        kind: EventKind::from_i64(row.try_get("kind")?).ok_or_else(|| bad_row("event kind"))?,
        time: row.try_get("time")?,
        node_id: row.try_get("node_id")?,
        detail: parse_json(row.try_get("payload")?),
    })
}
