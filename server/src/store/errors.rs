//! The database's errors as the engine's: a full disk, an I/O error or a
//! lost connection is `Unavailable` (a retry may succeed), anything else
//! `Internal`.

use crate::error::EngineError;
use sqlx::postgres::PgDatabaseError;

/// SQLite's primary result codes that mean "the disk, not the data".
const SQLITE_IOERR: i64 = 10;
const SQLITE_FULL: i64 = 13;

const NOTHING_STORED: &str = "so nothing of this request was stored";

impl From<sqlx::Error> for EngineError {
    fn from(err: sqlx::Error) -> Self {
        match &err {
            // The server is unreachable or went away mid-request.
            sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => {
                return Self::store_unavailable(format!(
                    "the database cannot be reached ({err}), {NOTHING_STORED}; retry later"
                ));
            }
            sqlx::Error::Tls(_) => {
                return Self::store_unavailable(format!(
                    "the database's TLS handshake failed: {err}"
                ));
            }
            _ => {}
        }
        let Some(db) = err.as_database_error() else {
            return Self::Internal(format!("database: {err}"));
        };
        // A second run under one request_id (two retries at once, or on two
        // servers): the first one stored wins.
        let names_request = db.message().contains("request_id")
            || db.constraint().is_some_and(|c| c.contains("request_id"));
        if db.is_unique_violation() && names_request {
            return Self::already_exists("a run with this request_id exists");
        }
        if let Some(pg) = db.try_downcast_ref::<PgDatabaseError>() {
            return postgres(pg, &err);
        }
        let code = db
            .code()
            .and_then(|c| c.parse::<i64>().ok())
            .map(|c| c & 0xff);
        match code {
            Some(SQLITE_FULL) => Self::store_unavailable(format!(
                "disk full: the database could not be written, {NOTHING_STORED}; retry once space is freed"
            )),
            Some(SQLITE_IOERR) => Self::store_unavailable(format!(
                "the database could not be written ({err}), {NOTHING_STORED}; retry later"
            )),
            _ => Self::Internal(format!("database: {err}")),
        }
    }
}

/// PostgreSQL's SQLSTATE classes: 53 is insufficient resources (53100
/// disk full), 08 a connection exception, 57P0x the server shutting down
/// or restarting; a retry may outlast each.
fn postgres(pg: &PgDatabaseError, err: &sqlx::Error) -> EngineError {
    let code = pg.code();
    if code == "53100" {
        EngineError::store_unavailable(format!(
            "disk full: the database server could not write, {NOTHING_STORED}; retry once space is freed"
        ))
    } else if code.starts_with("53") || code.starts_with("08") || code.starts_with("57P") {
        EngineError::store_unavailable(format!(
            "the database server refused the request ({err}), {NOTHING_STORED}; retry later"
        ))
    } else {
        EngineError::Internal(format!("database: {err}"))
    }
}
