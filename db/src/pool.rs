//! Connections: a single connection for short-lived tools, and a bb8 pool for services.

use crate::config::DbConfig;
use crate::error::{DbError, DbResult};
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, PoolableConnection as _, RecyclingMethod,
};
use diesel_async::AsyncPgConnection;
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

/// Opens one connection. Failures name their cause ("Connection refused", "database … does
/// not exist"), with any password redacted.
pub async fn connect(config: &DbConfig) -> DbResult<Conn> {
    let connect_error = |reason: String| DbError::Connect {
        target: config.redacted_url(),
        reason: crate::config::redact(&reason),
    };
    let (client, connection) =
        tokio_postgres::connect(config.url_with_password(), tokio_postgres::NoTls)
            .await
            .map_err(|e| connect_error(pg_error_text(&e)))?;
    AsyncPgConnection::try_from_client_and_connection(client, connection)
        .await
        .map_err(|e| connect_error(e.to_string()))
}

/// A tokio-postgres error as one line: the server's message, or the whole cause chain
/// (its `Display` alone says only "db error" or "error connecting to server").
pub fn pg_error_text(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut m = db.message().to_string();
        if let Some(detail) = db.detail() {
            m.push_str(&format!(" ({detail})"));
        }
        return m;
    }
    let mut m = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let text = s.to_string();
        if !m.contains(&text) {
            m.push_str(": ");
            m.push_str(&text);
        }
        source = s.source();
    }
    m
}

/// Builds a pool and checks that it can open a first connection.
pub async fn build_pool(config: &DbConfig, options: &PoolOptions) -> DbResult<Pool> {
    let mut manager_config = ManagerConfig::<AsyncPgConnection>::default();
    manager_config.custom_setup = Box::new(|url| {
        let url = url.to_string();
        Box::pin(async move {
            let config = DbConfig::from_url(url)
                .map_err(|e| diesel::ConnectionError::BadConnection(e.to_string()))?;
            connect(&config)
                .await
                .map_err(|e| diesel::ConnectionError::BadConnection(e.to_string()))
        })
    });
    // Checked on every checkout, without a round trip: a connection whose server side has gone
    // (a restart, `pg_terminate_backend`) has seen its socket close, so it is dropped here and
    // another is taken or opened, instead of failing the caller's first query.
    manager_config.recycling_method = RecyclingMethod::CustomFunction(Box::new(|conn| {
        let closed = conn.is_broken();
        Box::pin(async move {
            if closed {
                Err(diesel::result::Error::DatabaseError(
                    diesel::result::DatabaseErrorKind::ClosedConnection,
                    Box::new("the connection was closed".to_string()),
                ))
            } else {
                Ok(())
            }
        })
    }));
    let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(
        config.url_with_password(),
        manager_config,
    );
    let pool = bb8::Pool::builder()
        .max_size(options.max_size)
        .connection_timeout(options.connection_timeout)
        // The check above: no extra round trip per checkout.
        .test_on_check_out(true)
        .build_unchecked(manager);
    // Open one connection now, so that a wrong URL fails at start-up with a clear message.
    drop(pool.get().await.map_err(|e| DbError::Connect {
        target: config.redacted_url(),
        reason: crate::config::redact(&e.to_string()),
    })?);
    Ok(pool)
}

/// A connection borrowed from a [`crate::Pool`]; derefs to [`Conn`].
pub type PooledConn<'a> = bb8::PooledConnection<
    'a,
    diesel_async::pooled_connection::AsyncDieselConnectionManager<diesel_async::AsyncPgConnection>,
>;
