//! The database layer shared by `sim-api`, `worker` and `admin-cli`: configuration, the
//! connection pool, the migrations, the schema, every query, and the result-page codec.
//!
//! This is the only crate that knows SQL. Other crates call its functions.

/// Evaluates a transaction expression again (up to five times, with a short pause) while it
/// fails with a transient collision (a deadlock or serialization failure, see
/// [`DbError::is_collision`]); the guarded statements make a rerun safe.
macro_rules! retry_transient {
    ($tx:expr) => {{
        let mut tries: u64 = 0;
        loop {
            match $tx {
                Err(e) if $crate::error::DbError::is_collision(&e) && tries < 5 => {
                    tries += 1;
                    tracing::debug!(error = %e, tries, "transaction collided; running it again");
                    tokio::time::sleep(std::time::Duration::from_millis(5 * tries)).await;
                }
                other => break other,
            }
        }
    }};
}

pub mod aggregation;
pub mod clusters;
/// The blob codec (inputs, logs), kept at its old path.
pub use codec::blob;
pub mod codec;
pub mod config;
pub mod enums;
pub mod error;
pub mod inputs;
pub mod logs;
pub mod merge;
pub mod migrate;
pub mod models;
pub mod notify;
pub mod page_info;
pub mod password;
pub mod pool;
mod prepared;
#[cfg(feature = "testing")]
pub mod private_pg;
pub mod queue;
pub mod results;
pub mod retention;
#[allow(missing_docs)]
pub mod schema;
pub mod simulation_views;
pub mod simulations;
pub mod sql;
pub mod tasks;
#[cfg(feature = "testing")]
pub mod testing;
pub mod tokens;
pub mod users;

pub use config::DbConfig;
pub use error::{DbError, DbResult};
pub use migrate::connect_and_check;
pub use pool::{build_pool, connect, Conn, Pool, PoolOptions};
