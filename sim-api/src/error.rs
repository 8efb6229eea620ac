//! Mapping of database errors to gRPC statuses. Internal details (SQL text, connection
//! strings) are logged, never returned.
//!
//! Every database error a handler meets goes through [`db_status`] (or [`stored_data_status`]
//! for stored blobs that failed to decode), so that one rule decides the code:
//!
//! - the database unreachable, or the connection lost ([`db::DbError::is_unavailable`]: no
//!   pooled connection in time, a refused connection, a terminated or closed connection, a
//!   server shutting down or starting up) → `UNAVAILABLE`, which clients retry;
//! - not found → `NOT_FOUND`; a conflict → `FAILED_PRECONDITION`; a schema check →
//!   `INVALID_ARGUMENT`;
//! - text the database cannot store → `INVALID_ARGUMENT` (requests are checked for that at
//!   the edge, [`crate::text`]; this is the safety net);
//! - anything else → `INTERNAL`, with a generic message.
//!
//! The other typed failures a handler meets are mapped here too: a name the request gives
//! that the database does not know ([`unknown_name`]), OIDC verification ([`oidc_status`]),
//! and failures that are the server's own ([`internal`]).

use crate::oidc::OidcError;
use db::DbError;
use tonic::Status;

/// The message of `UNAVAILABLE` answers.
pub const UNAVAILABLE_MESSAGE: &str = "the database is unavailable; try again later";

/// Maps a database error to a status; anything unexpected becomes a generic INTERNAL (or
/// UNAVAILABLE when the database cannot be reached), with the detail only in the log.
pub fn db_status(e: DbError) -> Status {
    if e.is_unavailable() {
        tracing::warn!(error = %e, "database unavailable");
        return Status::unavailable(UNAVAILABLE_MESSAGE);
    }
    match e {
        DbError::NotFound(what) => Status::not_found(what),
        DbError::Conflict(_) => Status::failed_precondition("conflicts with stored data"),
        // Requests are validated before they reach the database, so a check that fails
        // there names schema internals (constraint names): log it, answer generically.
        DbError::Invalid(why) => {
            tracing::warn!(detail = %why, "rejected by a database check");
            Status::invalid_argument("the request was rejected by the database's checks")
        }
        // PostgreSQL's words for a NUL (or a byte its encoding lacks) in text.
        DbError::Query(q) if q.to_string().contains("invalid byte sequence for encoding") => {
            tracing::warn!(detail = %q, "text the database cannot store");
            Status::invalid_argument("a text field holds characters the database cannot store")
        }
        other => {
            tracing::error!(error = %other, "internal database error");
            Status::internal("internal error")
        }
    }
}

/// For reads of stored data (an input, result pages, logs) of simulation `job_id`: an
/// unavailable database is `UNAVAILABLE` as everywhere ([`db_status`]); any other failure
/// means the stored data could not be read or decoded, which is logged with `what` and
/// answered `INTERNAL`.
pub fn stored_data_status(e: DbError, what: &str, job_id: uuid::Uuid) -> Status {
    if e.is_unavailable() {
        return db_status(e);
    }
    tracing::error!(%job_id, error = %e, "stored {what} unreadable");
    Status::internal("internal error")
}

/// For a lookup of a name the request gives (a cluster): NOT_FOUND means the request is
/// wrong, so it is `INVALID_ARGUMENT` with `message`; anything else as in [`db_status`].
pub fn unknown_name(e: DbError, message: impl FnOnce() -> String) -> Status {
    match e {
        DbError::NotFound(_) => Status::invalid_argument(message()),
        other => db_status(other),
    }
}

/// A failure of OIDC verification: no signing keys could be loaded → `UNAVAILABLE` (the
/// client may retry); any other refusal → `UNAUTHENTICATED` naming the reason.
pub fn oidc_status(e: &OidcError) -> Status {
    match e {
        OidcError::KeysUnavailable => {
            tracing::warn!("OIDC login refused: no signing keys could be loaded");
            Status::unavailable("the identity provider's keys are unavailable; try again later")
        }
        e => {
            tracing::info!(reason = %e, "OIDC login rejected");
            Status::unauthenticated(format!("invalid ID token: {e}"))
        }
    }
}

/// A failure of the server itself (not of the request, not of the database): logged with
/// `what`, answered with a generic `INTERNAL`.
pub fn internal(what: &str, e: &dyn std::fmt::Display) -> Status {
    tracing::error!(error = %e, "{what}");
    Status::internal("internal error")
}

/// Takes a pooled connection or returns UNAVAILABLE.
pub async fn conn(pool: &db::Pool) -> Result<db::simulation_views::PooledConn<'_>, Status> {
    pool.get().await.map_err(|e| db_status(DbError::from(e)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::result::{DatabaseErrorKind, Error as DieselError};

    fn server_error(kind: DatabaseErrorKind, message: &str) -> DbError {
        DbError::Query(DieselError::DatabaseError(
            kind,
            Box::new(message.to_string()),
        ))
    }

    /// Each error's code, and a text of it that the client's message must not show (a
    /// constraint name, a NUL's byte, a table name); an internal error's message is generic.
    #[test]
    fn errors_map_to_their_codes_and_leak_nothing() {
        let cases = [
            (
                DbError::Invalid("rejected by the schema (simulations_ntasks_check)".into()),
                tonic::Code::InvalidArgument,
                "simulations_",
            ),
            (
                server_error(
                    DatabaseErrorKind::Unknown,
                    "invalid byte sequence for encoding \"UTF8\": 0x00",
                ),
                tonic::Code::InvalidArgument,
                "0x00",
            ),
            (
                server_error(
                    DatabaseErrorKind::Unknown,
                    "relation \"secret_table\" does not exist",
                ),
                tonic::Code::Internal,
                "secret_table",
            ),
        ];
        for (e, code, hidden) in cases {
            let shown = e.to_string();
            let s = db_status(e);
            assert_eq!(s.code(), code, "{shown}");
            assert!(!s.message().contains(hidden), "{shown}: {}", s.message());
            if code == tonic::Code::Internal {
                assert_eq!(s.message(), "internal error");
            }
        }
        // Stored data that does not decode is the server's fault, not the caller's.
        let s = stored_data_status(
            DbError::Invalid("bad page blob".into()),
            "results",
            uuid::Uuid::nil(),
        );
        assert_eq!(s.code(), tonic::Code::Internal);
        assert_eq!(s.message(), "internal error");
    }

    #[test]
    fn every_unavailable_kind_is_unavailable() {
        let cases = [
            DbError::Shared(std::sync::Arc::new(DbError::Connect {
                target: "postgres://u@h/db".into(),
                reason: "timed out".into(),
            })),
            DbError::Connect {
                target: "postgres://u@h/db".into(),
                reason: "Connection refused".into(),
            },
            server_error(DatabaseErrorKind::ClosedConnection, "connection closed"),
            server_error(DatabaseErrorKind::UnableToSendCommand, "connection closed"),
            server_error(
                DatabaseErrorKind::Unknown,
                "terminating connection due to administrator command",
            ),
            server_error(
                DatabaseErrorKind::Unknown,
                "the database system is shutting down",
            ),
            server_error(
                DatabaseErrorKind::Unknown,
                "the database system is starting up",
            ),
        ];
        for e in cases {
            let shown = e.to_string();
            let s = db_status(e);
            assert_eq!(s.code(), tonic::Code::Unavailable, "{shown}");
            assert_eq!(s.message(), UNAVAILABLE_MESSAGE);
        }
        let s = stored_data_status(
            server_error(DatabaseErrorKind::ClosedConnection, "connection closed"),
            "results",
            uuid::Uuid::nil(),
        );
        assert_eq!(s.code(), tonic::Code::Unavailable);
    }
}
