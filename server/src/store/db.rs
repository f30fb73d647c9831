//! The two databases the store runs on, behind one set of queries.
//!
//! Queries are written once, with `?` for each value, in SQL both SQLite
//! and PostgreSQL accept; values are bound as [`Arg`]s and rows read
//! through [`Row`]. PostgreSQL numbers its parameters (`$1`), so its text
//! is rewritten on the way out. The few statements the two cannot share
//! are chosen by [`Backend`] where they are written.

use crate::error::EngineResult;
use sqlx::postgres::{PgArguments, PgPool, PgRow};
use sqlx::sqlite::{SqliteArguments, SqlitePool, SqliteRow};
use sqlx::{Arguments, Postgres, Sqlite};
use std::borrow::Cow;

/// Which database a store is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A value bound to a query. Integers are 64-bit on both backends.
#[derive(Clone, Debug)]
pub(super) enum Arg<'a> {
    Int(Option<i64>),
    Real(Option<f64>),
    Text(Option<Cow<'a, str>>),
    Bytes(Option<&'a [u8]>),
    /// A list of integers (PostgreSQL's `= ANY(?)`).
    Ints(Vec<i64>),
    /// A list of texts (PostgreSQL's `= ANY(?)`).
    Texts(Vec<String>),
}

macro_rules! arg_from {
    ($variant:ident: $($t:ty => $conv:expr),* $(,)?) => {$(
        impl<'a> From<$t> for Arg<'a> {
            fn from(v: $t) -> Self {
                #[allow(clippy::redundant_closure_call)]
                Arg::$variant(($conv)(v))
            }
        }
    )*};
}

arg_from!(Int:
    i64 => Some,
    i32 => |v| Some(i64::from(v)),
    Option<i64> => |v| v,
    Option<i32> => |v: Option<i32>| v.map(i64::from),
);
arg_from!(Real: f64 => Some, Option<f64> => |v| v);
arg_from!(Text:
    &'a str => |v| Some(Cow::Borrowed(v)),
    &'a String => |v: &'a String| Some(Cow::Borrowed(v.as_str())),
    String => |v| Some(Cow::Owned(v)),
    Option<&'a str> => |v: Option<&'a str>| v.map(Cow::Borrowed),
    Option<String> => |v: Option<String>| v.map(Cow::Owned),
);
arg_from!(Bytes: &'a [u8] => Some);

impl Arg<'_> {
    fn add_to_sqlite<'q>(
        self,
        args: &mut SqliteArguments<'q>,
    ) -> Result<(), sqlx::error::BoxDynError>
    where
        Self: 'q,
    {
        match self {
            Arg::Int(v) => args.add(v),
            Arg::Real(v) => args.add(v),
            Arg::Text(v) => args.add(v),
            Arg::Bytes(v) => args.add(v),
            // SQLite has no arrays: a list goes as JSON, read with json_each.
            Arg::Ints(v) => args.add(serde_json::to_string(&v)?),
            Arg::Texts(v) => args.add(serde_json::to_string(&v)?),
        }
    }

    fn add_to_postgres(self, args: &mut PgArguments) -> Result<(), sqlx::error::BoxDynError> {
        match self {
            Arg::Int(v) => args.add(v),
            Arg::Real(v) => args.add(v),
            Arg::Text(v) => args.add(v.map(postgres_text)),
            Arg::Bytes(v) => args.add(v.map(<[u8]>::to_vec)),
            Arg::Ints(v) => args.add(v),
            Arg::Texts(v) => args.add(v),
        }
    }
}

/// PostgreSQL's text cannot hold NUL: a free text that has one (a prompt,
/// an error quoting binary output) keeps it as U+2400 SYMBOL FOR NULL.
/// JSON texts never have one (JSON escapes it).
pub(super) const NUL_IN_POSTGRES: char = '\u{2400}';

fn postgres_text(text: Cow<'_, str>) -> String {
    if text.contains('\0') {
        text.replace('\0', &NUL_IN_POSTGRES.to_string())
    } else {
        text.into_owned()
    }
}

/// A query and its values.
pub(super) struct Query<'a> {
    pub sql: Cow<'a, str>,
    pub args: Vec<Arg<'a>>,
}

/// `sql` with `args`, e.g. `q("SELECT … WHERE id = ?", [id.into()])`.
pub(super) fn q<'a>(
    sql: impl Into<Cow<'a, str>>,
    args: impl IntoIterator<Item = Arg<'a>>,
) -> Query<'a> {
    Query {
        sql: sql.into(),
        args: args.into_iter().collect(),
    }
}

/// `?` placeholders as PostgreSQL's `$1`, `$2`, … Queries here never hold
/// a `?` inside a literal.
pub(super) fn numbered(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut n = 0;
    for c in sql.chars() {
        if c == '?' {
            n += 1;
            out.push('$');
            out.push_str(&n.to_string());
        } else {
            out.push(c);
        }
    }
    out
}

fn bind_error(e: sqlx::error::BoxDynError) -> crate::error::EngineError {
    crate::error::EngineError::Internal(format!("cannot bind a value: {e}"))
}

pub(super) fn sqlite_args<'q>(args: Vec<Arg<'q>>) -> EngineResult<SqliteArguments<'q>> {
    let mut out = SqliteArguments::default();
    for a in args {
        a.add_to_sqlite(&mut out).map_err(bind_error)?;
    }
    Ok(out)
}

pub(super) fn postgres_args(args: Vec<Arg<'_>>) -> EngineResult<PgArguments> {
    let mut out = PgArguments::default();
    for a in args {
        a.add_to_postgres(&mut out).map_err(bind_error)?;
    }
    Ok(out)
}

/// The pool reads go through.
#[derive(Clone)]
pub(super) enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// A row from either backend.
pub(super) enum Row {
    Sqlite(SqliteRow),
    Postgres(PgRow),
}

impl Pool {
    pub(super) fn backend(&self) -> Backend {
        match self {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    pub(super) async fn fetch_all(&self, query: Query<'_>) -> EngineResult<Vec<Row>> {
        Ok(match self {
            Pool::Sqlite(pool) => {
                sqlx::query_with::<Sqlite, _>(&query.sql, sqlite_args(query.args)?)
                    .fetch_all(pool)
                    .await?
                    .into_iter()
                    .map(Row::Sqlite)
                    .collect()
            }
            Pool::Postgres(pool) => {
                sqlx::query_with::<Postgres, _>(&numbered(&query.sql), postgres_args(query.args)?)
                    .fetch_all(pool)
                    .await?
                    .into_iter()
                    .map(Row::Postgres)
                    .collect()
            }
        })
    }

    pub(super) async fn fetch_optional(&self, query: Query<'_>) -> EngineResult<Option<Row>> {
        Ok(match self {
            Pool::Sqlite(pool) => {
                sqlx::query_with::<Sqlite, _>(&query.sql, sqlite_args(query.args)?)
                    .fetch_optional(pool)
                    .await?
                    .map(Row::Sqlite)
            }
            Pool::Postgres(pool) => {
                sqlx::query_with::<Postgres, _>(&numbered(&query.sql), postgres_args(query.args)?)
                    .fetch_optional(pool)
                    .await?
                    .map(Row::Postgres)
            }
        })
    }

    /// The row a query always returns (an aggregate's).
    pub(super) async fn fetch_one(&self, query: Query<'_>) -> EngineResult<Row> {
        let sql = query.sql.clone();
        self.fetch_optional(query).await?.ok_or_else(|| {
            crate::error::EngineError::Internal(format!(
                "no row from a query that returns one: {sql}"
            ))
        })
    }

    pub(super) async fn execute(&self, query: Query<'_>) -> EngineResult<u64> {
        Ok(match self {
            Pool::Sqlite(pool) => {
                sqlx::query_with::<Sqlite, _>(&query.sql, sqlite_args(query.args)?)
                    .execute(pool)
                    .await?
                    .rows_affected()
            }
            Pool::Postgres(pool) => {
                sqlx::query_with::<Postgres, _>(&numbered(&query.sql), postgres_args(query.args)?)
                    .execute(pool)
                    .await?
                    .rows_affected()
            }
        })
    }
}

/// A type a column is read as, from either backend. PostgreSQL checks
/// types strictly: its integers are all read as BIGINT and narrowed here.
pub(super) trait Column: Sized {
    fn from_sqlite(row: &SqliteRow, column: &str) -> Result<Option<Self>, sqlx::Error>;
    fn from_postgres(row: &PgRow, column: &str) -> Result<Option<Self>, sqlx::Error>;
}

macro_rules! column_as_is {
    ($($t:ty),*) => {$(
        impl Column for $t {
            fn from_sqlite(row: &SqliteRow, column: &str) -> Result<Option<Self>, sqlx::Error> {
                sqlx::Row::try_get(row, column)
            }
            fn from_postgres(row: &PgRow, column: &str) -> Result<Option<Self>, sqlx::Error> {
                sqlx::Row::try_get(row, column)
            }
        }
    )*};
}

column_as_is!(i64, f64, bool, String, Vec<u8>);

impl Column for i32 {
    fn from_sqlite(row: &SqliteRow, column: &str) -> Result<Option<Self>, sqlx::Error> {
        sqlx::Row::try_get(row, column)
    }
    fn from_postgres(row: &PgRow, column: &str) -> Result<Option<Self>, sqlx::Error> {
        let wide: Option<i64> = sqlx::Row::try_get(row, column)?;
        wide.map(|v| {
            i32::try_from(v).map_err(|e| sqlx::Error::ColumnDecode {
                index: column.to_string(),
                source: Box::new(e),
            })
        })
        .transpose()
    }
}

impl Row {
    /// The column's value; `None` for NULL.
    pub(super) fn try_get<T: Column>(&self, column: &str) -> Result<Option<T>, sqlx::Error> {
        match self {
            Row::Sqlite(row) => T::from_sqlite(row, column),
            Row::Postgres(row) => T::from_postgres(row, column),
        }
    }
}
