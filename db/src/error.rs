//! The one error type of the `db` crate.

use diesel::result::{DatabaseErrorKind, Error as DieselError};

/// Anything that can go wrong talking to the database.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The server could not be reached or refused the login.
    #[error("cannot connect to the database at {target}: {reason}")]
    Connect {
        /// The redacted connection URL.
        target: String,
        /// The driver's message.
        reason: String,
    },
    /// The pool gave no connection in time, or opening one failed.
    #[error("no database connection available: {0}")]
    Checkout(#[source] bb8::RunError<diesel_async::pooled_connection::PoolError>),
    /// The database holds migrations this program does not know: it is newer than the program.
    #[error(
        "the database has migration(s) {unknown} that this program does not know (it knows up to {latest}); \
         the database is newer than this program: upgrade the program"
    )]
    UnknownMigrations {
        /// The unknown versions, comma-separated.
        unknown: String,
        /// The newest version this program knows.
        latest: String,
    },
    /// Migrations are pending.
    #[error("the database is not migrated: {count} pending migration(s), starting with {first}; run `admin-cli migrate run`")]
    NotMigrated {
        /// How many are pending.
        count: usize,
        /// The first pending version.
        first: String,
    },
    /// Running or reverting a migration failed (or the migration thread died).
    #[error("migration failed: {0}")]
    Migration(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The named thing does not exist (or is not visible to the caller).
    #[error("{0} not found")]
    NotFound(String),
    /// The request conflicts with what is stored (a duplicate name, a reference that blocks it).
    #[error("{0}")]
    Conflict(String),
    /// The input breaks a rule of the schema.
    #[error("{0}")]
    Invalid(String),
    /// A task's lease is gone (canceled, reaped, re-claimed or deleted): what its holder
    /// reports about it is refused, and nothing it carried was written.
    #[error("task {task_id} attempt {attempt} is no longer held by {owner}")]
    LeaseLost {
        /// The task.
        task_id: i64,
        /// The attempt the holder had.
        attempt: i32,
        /// The holder.
        owner: String,
    },
    /// Stored bytes that do not decode (a damaged page, merge sums, input or log): the
    /// message names the damaged part. Not the caller's fault; another try will not help.
    #[error("{0}")]
    Corrupt(String),
    /// Any other database error.
    #[error("database error: {0}")]
    Query(#[source] DieselError),
    /// A write made on the caller's behalf together with others (one statement for many
    /// tasks) failed: the shared cause, as each caller sees it. Transient exactly when the
    /// cause is.
    #[error("a batched write failed: {0}")]
    Shared(#[source] std::sync::Arc<DbError>),
    /// The task that writes on the caller's behalf (named) has stopped: the process is
    /// shutting down.
    #[error("the {0} has stopped")]
    WriterStopped(&'static str),
}

impl DbError {
    /// Whether the database could not be reached or dropped the connection: no connection in
    /// time, a refused login, a closed or terminated connection, or a server that is shutting
    /// down or starting up (SQLSTATE class 57: `terminating connection due to administrator
    /// command`, `the database system is starting up`). Trying again later, on a fresh
    /// connection, may succeed; clients get `UNAVAILABLE`.
    pub fn is_unavailable(&self) -> bool {
        match self {
            DbError::Checkout(_) | DbError::Connect { .. } => true,
            DbError::Shared(cause) => cause.is_unavailable(),
            DbError::Query(DieselError::DatabaseError(kind, info)) => match kind {
                DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand => {
                    true
                }
                // diesel reports these server errors without a kind of their own; PostgreSQL's
                // messages for SQLSTATE 57P01-57P03 and a dropped socket are stable.
                _ => {
                    let m = info.message();
                    [
                        "terminating connection",
                        "the database system is",
                        "server closed the connection",
                        "connection closed",
                        "connection reset",
                        "broken pipe",
                    ]
                    .iter()
                    .any(|p| m.contains(p))
                }
            },
            _ => false,
        }
    }

    /// Whether the statement failed only because of a collision with another transaction
    /// (a serialization failure or a deadlock): run it again at once.
    pub fn is_collision(&self) -> bool {
        match self {
            DbError::Query(DieselError::DatabaseError(kind, info)) => {
                matches!(kind, DatabaseErrorKind::SerializationFailure)
                    || info.message().contains("deadlock detected")
            }
            DbError::Shared(cause) => cause.is_collision(),
            _ => false,
        }
    }

    /// [`DbError::is_unavailable`] or [`DbError::is_collision`]: another try may succeed.
    pub fn is_transient(&self) -> bool {
        self.is_unavailable() || self.is_collision()
    }
}

impl From<DieselError> for DbError {
    fn from(e: DieselError) -> Self {
        match e {
            DieselError::NotFound => DbError::NotFound("row".into()),
            DieselError::DatabaseError(kind, info) => {
                let constraint = info.constraint_name().unwrap_or("").to_string();
                match kind {
                    DatabaseErrorKind::UniqueViolation => {
                        DbError::Conflict(format!("already exists ({constraint})"))
                    }
                    DatabaseErrorKind::ForeignKeyViolation => {
                        DbError::Conflict(format!("still referenced ({constraint})"))
                    }
                    DatabaseErrorKind::CheckViolation | DatabaseErrorKind::NotNullViolation => {
                        DbError::Invalid(format!("rejected by the schema ({constraint})"))
                    }
                    other => DbError::Query(DieselError::DatabaseError(other, info)),
                }
            }
            other => DbError::Query(other),
        }
    }
}

impl From<bb8::RunError<diesel_async::pooled_connection::PoolError>> for DbError {
    fn from(e: bb8::RunError<diesel_async::pooled_connection::PoolError>) -> Self {
        DbError::Checkout(e)
    }
}

/// `s`, cut to at most `max` bytes (at a character boundary, marked with `…`): an error
/// text as the database keeps it.
/// An insert's error in the words of what was inserted (`what`, e.g. `cluster "a"`): a
/// conflict says it already exists, a value the database rejected gives `rejected(why)`;
/// other errors pass unchanged.
pub(crate) fn insert_error(
    e: DieselError,
    what: &str,
    rejected: impl FnOnce(String) -> String,
) -> DbError {
    match DbError::from(e) {
        DbError::Conflict(_) => DbError::Conflict(format!("{what} already exists")),
        DbError::Invalid(why) => DbError::Invalid(rejected(why)),
        other => other,
    }
}

pub(crate) fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// Results of the `db` crate.
pub type DbResult<T> = Result<T, DbError>;
