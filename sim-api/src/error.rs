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
        DbError::Invalid(why) => Status::invalid_argument(why),
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
