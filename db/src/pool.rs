//! Connections: a single connection for short-lived tools, and a bb8 pool for services.

use crate::config::DbConfig;
use crate::error::{DbError, DbResult};
use diesel_async::pooled_connection::AsyncDieselConnectionManager;
use diesel_async::{AsyncConnection, AsyncPgConnection};
use std::time::Duration;

/// The async connection type every query function takes.
pub type Conn = AsyncPgConnection;

/// A pool of async PostgreSQL connections.
pub type Pool = bb8::Pool<AsyncDieselConnectionManager<AsyncPgConnection>>;

/// Pool sizing and timeouts.
#[derive(Debug, Clone)]
pub struct PoolOptions {
    /// Most connections the pool opens.
    pub max_size: u32,
    /// How long a caller waits for a free connection.
    pub connection_timeout: Duration,
}

impl Default for PoolOptions {
    fn default() -> Self {
        Self {
            max_size: 16,
            connection_timeout: Duration::from_secs(10),
        }
    }
}

/// Opens one connection.
pub async fn connect(config: &DbConfig) -> DbResult<Conn> {
    AsyncPgConnection::establish(config.url_with_password())
        .await
        .map_err(|e| DbError::Connect {
            target: config.redacted_url(),
            reason: crate::config::redact(&e.to_string()),
        })
}

/// Builds a pool and checks that it can open a first connection.
pub async fn build_pool(config: &DbConfig, options: &PoolOptions) -> DbResult<Pool> {
    let manager =
        AsyncDieselConnectionManager::<AsyncPgConnection>::new(config.url_with_password());
    let pool = bb8::Pool::builder()
        .max_size(options.max_size)
        .connection_timeout(options.connection_timeout)
        .build_unchecked(manager);
    // Open one connection now, so that a wrong URL fails at start-up with a clear message.
    drop(pool.get().await.map_err(|e| DbError::Connect {
        target: config.redacted_url(),
        reason: crate::config::redact(&e.to_string()),
    })?);
    Ok(pool)
}
