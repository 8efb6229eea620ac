//! Runs operator-written SQL and returns every statement's result as text, for `admin-cli sql`.

use crate::config::DbConfig;
use crate::error::{DbError, DbResult};
use serde::Serialize;
use tokio_postgres::{NoTls, SimpleQueryMessage};

/// One row of text values; `None` is SQL NULL.
type Row = Vec<Option<String>>;

/// What one statement produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StatementOutput {
    /// A statement that returns rows (even zero of them).
    Rows {
        /// Column names.
        columns: Vec<String>,
        /// Values as text; `None` is SQL NULL.
        rows: Vec<Vec<Option<String>>>,
    },
    /// A statement that returns no rows, with its affected-row count.
    Command {
        /// Rows inserted, updated or deleted (0 for DDL).
        affected: u64,
    },
}

/// Runs `sql` (one or more statements separated by `;`) with the simple query protocol,
/// in one implicit transaction, as PostgreSQL does for a multi-statement string.
pub async fn run(config: &DbConfig, sql: &str) -> DbResult<Vec<StatementOutput>> {
    let (client, connection) = tokio_postgres::connect(config.url_with_password(), NoTls)
        .await
        .map_err(|e| DbError::Connect {
            target: config.redacted_url(),
            reason: crate::config::redact(&crate::pool::pg_error_text(&e)),
        })?;
    let driver = tokio::spawn(connection);
    let messages = client.simple_query(sql).await.map_err(|e| {
        let msg = match e.as_db_error() {
            Some(db) => {
                let mut m = format!("{}: {}", db.severity(), db.message());
                if let Some(detail) = db.detail() {
                    m.push_str(&format!(" ({detail})"));
                }
                m
            }
            None => e.to_string(),
        };
        DbError::Invalid(msg)
    })?;
    drop(client);
    let _ = driver.await;

    let mut out = Vec::new();
    let mut current: Option<(Vec<String>, Vec<Row>)> = None;
    for m in messages {
        match m {
            SimpleQueryMessage::RowDescription(cols) => {
                current = Some((
                    cols.iter().map(|c| c.name().to_string()).collect(),
                    Vec::new(),
                ));
            }
            SimpleQueryMessage::Row(row) => {
                let values = (0..row.len())
                    .map(|i| row.get(i).map(str::to_string))
                    .collect();
                match &mut current {
                    Some((_, rows)) => rows.push(values),
                    None => {
                        let columns = row.columns().iter().map(|c| c.name().to_string()).collect();
                        current = Some((columns, vec![values]));
                    }
                }
            }
            SimpleQueryMessage::CommandComplete(n) => match current.take() {
                Some((columns, rows)) => out.push(StatementOutput::Rows { columns, rows }),
                None => out.push(StatementOutput::Command { affected: n }),
            },
            _ => {}
        }
    }
    Ok(out)
}
