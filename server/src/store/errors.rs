//! The database's errors as the engine's: a full disk or an I/O error is
//! `Unavailable` (a retry may succeed), anything else `Internal`.

use crate::error::EngineError;

/// SQLite's primary result codes that mean "the disk, not the data".
const SQLITE_IOERR: i64 = 10;
const SQLITE_FULL: i64 = 13;

impl From<sqlx::Error> for EngineError {
    fn from(err: sqlx::Error) -> Self {
        let code = err
            .as_database_error()
            .and_then(|e| e.code())
            .and_then(|c| c.parse::<i64>().ok())
            .map(|c| c & 0xff);
        match code {
            Some(SQLITE_FULL) => Self::Unavailable(
                "disk full: the database could not be written, so nothing of this request was stored; retry once space is freed".into(),
            ),
            Some(SQLITE_IOERR) => Self::Unavailable(format!(
                "the database could not be written ({err}), so nothing of this request was stored; retry later"
            )),
            _ => Self::Internal(format!("database: {err}")),
        }
    }
}
