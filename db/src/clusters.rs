//! Queries on clusters.

use crate::error::{insert_error, DbError, DbResult};
use crate::models::{Cluster, NewCluster};
use crate::pool::Conn;
use crate::schema::{clusters, simulations};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};

/// Lists clusters by name.
pub async fn list(conn: &mut Conn) -> DbResult<Vec<Cluster>> {
    Ok(clusters::table
        .select(Cluster::as_select())
        .order_by(clusters::name)
        .load(conn)
        .await?)
}

/// Finds a cluster by name.
pub async fn get(conn: &mut Conn, name: &str) -> DbResult<Cluster> {
    clusters::table
        .filter(clusters::name.eq(name))
        .select(Cluster::as_select())
        .first(conn)
        .await
        .optional()?
        .ok_or_else(|| DbError::NotFound(format!("cluster {name:?}")))
}

/// Adds a cluster; a duplicate name is a conflict.
pub async fn create(conn: &mut Conn, new: &NewCluster) -> DbResult<Cluster> {
    diesel::insert_into(clusters::table)
        .values(new)
        .returning(Cluster::as_returning())
        .get_result(conn)
        .await
        .map_err(|e| {
            insert_error(e, &format!("cluster {:?}", new.name), |why| {
                format!(
                    "cluster {:?} was {why}: a name is 1 to 63 of A-Z a-z 0-9 . _ - \
                     starting with a letter or digit, a port 1 to 65535, a work directory not empty",
                    new.name
                )
            })
        })
}

/// Removes a cluster; refused while simulations refer to it.
pub async fn remove(conn: &mut Conn, name: &str) -> DbResult<Cluster> {
    let name = name.to_string();
    conn.transaction(async |conn| {
        let cluster: Cluster = clusters::table
            .filter(clusters::name.eq(&name))
            .select(Cluster::as_select())
            .for_update()
            .first(conn)
            .await
            .optional()?
            .ok_or_else(|| DbError::NotFound(format!("cluster {name:?}")))?;
        let used: i64 = simulations::table
            .filter(simulations::cluster_id.eq(cluster.id))
            .count()
            .get_result(conn)
            .await?;
        if used > 0 {
            return Err(DbError::Conflict(format!(
                "cluster {name:?} is used by {used} simulation(s); remove those first"
            )));
        }
        diesel::delete(clusters::table.find(cluster.id))
            .execute(conn)
            .await?;
        Ok(cluster)
    })
    .await
}
