//! A simulation's stored input: the editor JSON, or a map of the simulator's input files.
//!
//! Stored as [`crate::blob`]-compressed JSON: `{"editor": <editor JSON>}` or
//! `{"files": {"beam.dat": "…", …}}`.

use crate::blob;
use crate::error::{DbError, DbResult};
use crate::pool::Conn;
use diesel::sql_types::{BigInt, Bytea};
use diesel::QueryableByName;
use diesel_async::RunQueryDsl;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What a user submitted as input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SimulationInput {
    /// JSON from the editor (the builtin engine's input format, or yaptide's editor project).
    Editor(serde_json::Value),
    /// The simulator's own input files, by plain file name.
    Files(BTreeMap<String, String>),
}

impl SimulationInput {
    /// The compressed form and its uncompressed size, as `create_with_tasks` takes them.
    pub fn encode(&self) -> DbResult<(Vec<u8>, i64)> {
        let json = serde_json::to_vec(self).map_err(|e| DbError::Invalid(e.to_string()))?;
        Ok((blob::compress(&json), json.len() as i64))
    }

    /// Reads the stored form back.
    pub fn decode(data: &[u8]) -> DbResult<Self> {
        let json = blob::decompress(data, blob::DEFAULT_MAX_LEN)
            .map_err(|e| DbError::Invalid(format!("stored input cannot be read: {e}")))?;
        serde_json::from_slice(&json)
            .map_err(|e| DbError::Invalid(format!("stored input is not valid: {e}")))
    }
}

/// The input of a simulation, if one was stored.
pub async fn get(conn: &mut Conn, simulation_id: i64) -> DbResult<Option<SimulationInput>> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = Bytea)]
        data: Vec<u8>,
    }
    let rows: Vec<Row> = diesel::sql_query("SELECT data FROM inputs WHERE simulation_id = $1")
        .bind::<BigInt, _>(simulation_id)
        .load(conn)
        .await?;
    rows.into_iter()
        .next()
        .map(|r| SimulationInput::decode(&r.data))
        .transpose()
}
