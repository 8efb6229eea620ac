//! Mapping of database errors to gRPC statuses. Internal details (SQL text, connection
//! strings) are logged, never returned.

use db::DbError;
use tonic::Status;

/// Maps a database error to a status; anything unexpected becomes a generic INTERNAL (or
/// UNAVAILABLE when the database cannot be reached), with the detail only in the log.
pub fn db_status(e: DbError) -> Status {
    match e {
        DbError::NotFound(what) => Status::not_found(what),
        DbError::Conflict(_) => Status::failed_precondition("conflicts with stored data"),
        // Requests are validated before they reach the database, so a check that fails
        // there names schema internals (constraint names): log it, answer generically.
        DbError::Invalid(why) => {
            tracing::warn!(detail = %why, "rejected by a database check");
            Status::invalid_argument("the request was rejected by the database's checks")
        }
        DbError::Pool(_) | DbError::Connect { .. } => {
            tracing::error!(error = %e, "database unavailable");
            Status::unavailable("the database is unavailable; try again later")
        }
        other => {
            tracing::error!(error = %other, "internal database error");
            Status::internal("internal error")
        }
    }
}

/// Takes a pooled connection or returns UNAVAILABLE.
pub async fn conn(pool: &db::Pool) -> Result<db::api::PooledConn<'_>, Status> {
    pool.get().await.map_err(|e| db_status(DbError::from(e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constraint_names_do_not_leak() {
        let s = db_status(DbError::Invalid(
            "rejected by the schema (simulations_ntasks_check)".into(),
        ));
        assert_eq!(s.code(), tonic::Code::InvalidArgument);
        assert!(!s.message().contains("simulations_"), "{}", s.message());
    }
}
