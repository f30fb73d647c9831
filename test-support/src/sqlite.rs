//! Looks at a database file from outside the server: what is on disk,
//! whatever the server says.

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Connection, SqliteConnection};
use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

/// A read-only connection, e.g. to the database of a server that is down.
pub async fn open_read_only(path: &Path) -> SqliteConnection {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .busy_timeout(Duration::from_secs(10));
    SqliteConnection::connect_with(&options)
        .await
        .unwrap_or_else(|e| panic!("cannot open {} read-only: {e}", path.display()))
}

/// `PRAGMA integrity_check`: `["ok"]` when the file is sound.
pub async fn integrity_check(conn: &mut SqliteConnection) -> Vec<String> {
    sqlx::query_scalar::<_, String>("PRAGMA integrity_check")
        .fetch_all(&mut *conn)
        .await
        .expect("PRAGMA integrity_check")
}

/// `WORKFLOW/NODE` of every node recorded COMPLETED.
pub async fn completed_nodes(conn: &mut SqliteConnection) -> HashSet<String> {
    sqlx::query_as::<_, (String, String)>(
        "SELECT r.workflow_name, n.node_id FROM node_executions n JOIN runs r ON r.pk = n.run_pk WHERE n.status = ?",
    )
    .bind(retake::v1::NodeStatus::Completed as i32)
    .fetch_all(&mut *conn)
    .await
    .expect("read completed nodes")
    .into_iter()
    .map(|(w, n)| format!("{w}/{n}"))
    .collect()
}

/// Asserts another process can take the write lock: the server is not
/// stuck inside a transaction.
pub async fn assert_not_locked(db: &Path) {
    let options = SqliteConnectOptions::new()
        .filename(db)
        .busy_timeout(Duration::from_secs(5));
    let mut conn = SqliteConnection::connect_with(&options).await.unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut conn)
        .await
        .expect("the database is not left locked");
    sqlx::query("ROLLBACK").execute(&mut conn).await.unwrap();
}
