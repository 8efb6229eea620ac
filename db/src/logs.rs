//! Log files of simulations and tasks, stored compressed with [`crate::blob`].

use crate::blob;
use crate::error::{DbError, DbResult};
use crate::pool::Conn;
use diesel::sql_types::{BigInt, Bytea, Nullable, Text};
use diesel::QueryableByName;
use diesel_async::RunQueryDsl;

/// One stored log file, decompressed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogFile {
    /// The task it belongs to; `None` for the whole simulation.
    pub task_id: Option<i64>,
    /// The task's index, when it belongs to one.
    pub task_index: Option<i32>,
    /// File name, e.g. "stdout".
    pub name: String,
    /// The text (lossy UTF-8 where the program wrote other bytes).
    pub content: Vec<u8>,
}

/// Stores (or replaces) a log file of a simulation or of one of its tasks.
pub async fn store(
    conn: &mut Conn,
    simulation_id: i64,
    task_id: Option<i64>,
    name: &str,
    content: &[u8],
) -> DbResult<()> {
    let data = blob::compress(content);
    diesel::sql_query(
        "INSERT INTO logfiles (simulation_id, task_id, name, data, uncompressed_size)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (simulation_id, COALESCE(task_id, -1), name)
         DO UPDATE SET data = EXCLUDED.data, uncompressed_size = EXCLUDED.uncompressed_size,
                       created_at = now()",
    )
    .bind::<BigInt, _>(simulation_id)
    .bind::<Nullable<BigInt>, _>(task_id)
    .bind::<Text, _>(name)
    .bind::<Bytea, _>(&data)
    .bind::<BigInt, _>(content.len() as i64)
    .execute(conn)
    .await?;
    Ok(())
}

/// Every log file of a simulation, the simulation's own first, then by task index and name.
pub async fn list(conn: &mut Conn, simulation_id: i64) -> DbResult<Vec<LogFile>> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = Nullable<BigInt>)]
        task_id: Option<i64>,
        #[diesel(sql_type = Nullable<diesel::sql_types::Integer>)]
        task_index: Option<i32>,
        #[diesel(sql_type = Text)]
        name: String,
        #[diesel(sql_type = Bytea)]
        data: Vec<u8>,
    }
    let rows: Vec<Row> = diesel::sql_query(
        "SELECT l.task_id, t.task_index, l.name, l.data
         FROM logfiles l LEFT JOIN tasks t ON t.id = l.task_id
         WHERE l.simulation_id = $1
         ORDER BY t.task_index NULLS FIRST, l.name",
    )
    .bind::<BigInt, _>(simulation_id)
    .load(conn)
    .await?;
    rows.into_iter()
        .map(|r| {
            Ok(LogFile {
                content: blob::decompress(&r.data, blob::DEFAULT_MAX_LEN).map_err(|e| {
                    DbError::Invalid(format!("stored log {} cannot be read: {e}", r.name))
                })?,
                task_id: r.task_id,
                task_index: r.task_index,
                name: r.name,
            })
        })
        .collect()
}
