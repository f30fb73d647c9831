//! What planning a replay reads of a source run's nodes: how each ended
//! and what it produced, for thousands of nodes at a time.
//!
//! SQLite builds the whole answer as one JSON array, so it comes back as
//! one row. sqlx hands each row from its SQLite thread to the calling
//! task separately, and for a thousand rows those hand-offs cost several
//! times what reading them does (5 ms against 1 ms here).

use super::Store;
use super::db::{Backend, q};
use super::rows::{Fields, RowKey};
use crate::error::{EngineError, EngineResult};
use crate::model::*;
use serde::Deserialize;

/// One node as the query below lays it out. Each value is read as what it
/// should be or as whatever else it is, so that a value retake could not
/// have written is reported naming its column.
#[derive(Deserialize)]
struct StateRow(
    Column<i64>,            // pk
    Column<String>,         // id
    Column<String>,         // node_id
    Column<i32>,            // position
    Column<i64>,            // status
    Column<String>,         // agent
    Column<String>,         // output_artifacts (JSON text)
    Column<Option<String>>, // error
    Column<Option<i64>>,    // error_origin
    Column<String>,         // blocked_by (JSON text)
);

#[derive(Deserialize)]
#[serde(untagged)]
enum Column<T> {
    Valid(T),
    Other(serde_json::Value),
}

const SQLITE: &str = "SELECT (SELECT id FROM runs WHERE pk = ?1) AS run_id,
    json_group_array(json_array(n.pk, n.id, n.node_id, n.position, n.status, n.agent,
        n.output_artifacts, n.error, n.error_origin, n.blocked_by) ORDER BY n.position) AS nodes
    FROM node_executions n WHERE n.run_pk = ?1";

/// PostgreSQL sends rows without a hand-off per row, but one row is as
/// good there, and the reading below stays one.
const POSTGRES: &str = "SELECT (SELECT id FROM runs WHERE pk = $1) AS run_id,
    COALESCE(json_agg(json_build_array(n.pk, n.id, n.node_id, n.position, n.status, n.agent,
        n.output_artifacts, n.error, n.error_origin, n.blocked_by) ORDER BY n.position)::text, '[]') AS nodes
    FROM node_executions n WHERE n.run_pk = $1";

impl Store {
    /// A run's node records in position order, each with its identity,
    /// status, agent, outputs and error; what it was given, its timing,
    /// usage and attempts are left empty.
    pub async fn node_states_of_run(&self, run_pk: i64) -> EngineResult<Vec<NodeExecution>> {
        let sql = match self.reader.backend() {
            Backend::Sqlite => SQLITE,
            Backend::Postgres => POSTGRES,
        };
        let row = self.reader.fetch_one(q(sql, [run_pk.into()])).await?;
        let f = Fields::new("node_executions", &row, RowKey::RunPk(run_pk));
        let (run_id, array): (Option<String>, String) = (f.get_or_null("run_id")?, f.get("nodes")?);
        let Some(run_id) = run_id else {
            return Ok(Vec::new());
        };
        let rows: Vec<StateRow> =
            serde_json::from_str(&array).map_err(|e| EngineError::Corrupt {
                table: "node_executions",
                column: "*",
                row: RowKey::RunPk(run_pk).to_string(),
                problem: format!("a node's state does not read back: {e}"),
            })?;
        rows.into_iter()
            .map(|row| node_state(&run_id, row))
            .collect()
    }
}

fn node_state(run_id: &str, row: StateRow) -> EngineResult<NodeExecution> {
    let StateRow(pk, id, node_id, position, status, agent, outputs, error, origin, blocked_by) =
        row;
    let key = match pk {
        Column::Valid(pk) => RowKey::Pk(pk),
        Column::Other(_) => RowKey::UnreadablePk,
    };
    let corrupt = |column, problem: String| EngineError::Corrupt {
        table: "node_executions",
        column,
        row: key.to_string(),
        problem,
    };
    fn valid<T>(
        corrupt: &impl Fn(&'static str, String) -> EngineError,
        column: &'static str,
        value: Column<T>,
    ) -> EngineResult<T> {
        match value {
            Column::Valid(v) => Ok(v),
            Column::Other(v) => Err(corrupt(column, format!("{v} is not of the column's type"))),
        }
    }
    let json = |column, text: Column<String>| {
        serde_json::from_str::<Vec<String>>(&valid(&corrupt, column, text)?)
            .map_err(|e| corrupt(column, format!("not the expected JSON: {e}")))
    };
    let status = valid(&corrupt, "status", status)?;
    let origin = valid(&corrupt, "error_origin", origin)?;
    Ok(NodeExecution {
        pk: valid(&corrupt, "pk", pk)?,
        id: valid(&corrupt, "id", id)?,
        run_id: run_id.to_string(),
        node_id: valid(&corrupt, "node_id", node_id)?,
        position: valid(&corrupt, "position", position)?,
        status: NodeStatus::from_i64(status)
            .ok_or_else(|| corrupt("status", format!("{status} is not a node status")))?,
        agent: valid(&corrupt, "agent", agent)?,
        output_artifacts: json("output_artifacts", outputs)?,
        error: valid(&corrupt, "error", error)?,
        error_origin: match origin {
            Some(n) => {
                Some(FailureOrigin::from_i64(n).ok_or_else(|| {
                    corrupt("error_origin", format!("{n} is not a failure origin"))
                })?)
            }
            None => None,
        },
        blocked_by: json("blocked_by", blocked_by)?,
        ..NodeExecution::default()
    })
}
