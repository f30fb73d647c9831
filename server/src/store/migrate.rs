//! Bringing a database to the current schema. The migrations are SQL
//! (server/migrations), run by sqlx; what SQL cannot compute is prepared
//! here first, on the same connection.

use super::sha256_hex;
use sqlx::SqliteConnection;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Runs the pending PostgreSQL migrations. sqlx holds an advisory lock
/// meanwhile: servers starting together on one database migrate it once.
/// Migrations are forward-only and additive, so during a rolling upgrade
/// a server of the previous version keeps working on a database a newer
/// one migrated: migrations it does not know are not an error.
pub(super) async fn run_postgres(pool: &sqlx::PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    let migrator = sqlx::migrate::Migrator {
        migrations: POSTGRES.migrations.clone(),
        ignore_missing: true,
        locking: true,
        no_tx: false,
    };
    migrator.run(pool).await
}

/// Runs the pending migrations on `conn`. Errors are what sqlx reports.
pub(super) async fn run(conn: &mut SqliteConnection) -> Result<(), sqlx::migrate::MigrateError> {
    digest_inline_variables(conn).await?;
    // A migration that rebuilds a table others refer to needs foreign keys
    // off (SQLite's procedure for changing a table's shape); each such
    // migration checks the references itself before it commits.
    sqlx::query("PRAGMA foreign_keys = OFF")
        .execute(&mut *conn)
        .await?;
    let migrated = MIGRATOR.run_direct(&mut *conn).await;
    sqlx::query("PRAGMA foreign_keys = ON")
        .execute(&mut *conn)
        .await?;
    migrated
}

/// Before 0002_variables_content, each run held its variables inline. That
/// migration makes them a content keyed by sha256, which SQLite cannot
/// compute: the digests are computed here, into a temporary table of this
/// connection that the migration reads, so the conversion itself stays one
/// transaction.
async fn digest_inline_variables(conn: &mut SqliteConnection) -> sqlx::Result<()> {
    let inline: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM pragma_table_info('runs') WHERE name = 'variables'",
    )
    .fetch_one(&mut *conn)
    .await?;
    if inline == 0 {
        return Ok(());
    }
    sqlx::query(
        "CREATE TEMP TABLE IF NOT EXISTS variables_digests (variables TEXT PRIMARY KEY, sha256 TEXT NOT NULL)",
    )
    .execute(&mut *conn)
    .await?;
    // A page at a time: variables can be large.
    const PAGE: i64 = 100;
    let mut after = 0;
    loop {
        let page: Vec<(i64, String)> =
            sqlx::query_as("SELECT pk, variables FROM runs WHERE pk > ? ORDER BY pk LIMIT ?")
                .bind(after)
                .bind(PAGE)
                .fetch_all(&mut *conn)
                .await?;
        let Some((last, _)) = page.last() else {
            return Ok(());
        };
        after = *last;
        for (_, text) in &page {
            sqlx::query(
                "INSERT OR IGNORE INTO temp.variables_digests (variables, sha256) VALUES (?, ?)",
            )
            .bind(text)
            .bind(sha256_hex(text.as_bytes()))
            .execute(&mut *conn)
            .await?;
        }
    }
}
