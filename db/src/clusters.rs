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

/// Why the database rejected cluster `name` (`why`: the schema's words), with the rules.
fn rejected(name: &str, why: &str) -> String {
    format!(
        "cluster {name:?} was {why}: a name is 1 to 63 of A-Z a-z 0-9 . _ - \
         starting with a letter or digit, a port 1 to 65535, a work directory not empty, \
         a max array size 1 to 1000000, paths 1 to 4096 bytes"
    )
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
                rejected(&new.name, &why)
            })
        })
}

/// Changes to a cluster; `None` leaves a field as it is.
#[derive(Debug, Default, Clone, AsChangeset)]
#[diesel(table_name = clusters)]
pub struct ClusterChanges {
    /// A new SSH host (the cluster becomes, or stays, an SSH one).
    pub host: Option<String>,
    /// A new SSH user; needs a host (stored or in the same change).
    pub ssh_user: Option<String>,
    /// A new SSH port.
    pub ssh_port: Option<i32>,
    /// A new path of the SSH private key; needs a host.
    pub ssh_key_path: Option<String>,
    /// A new `known_hosts` path; needs a host.
    pub known_hosts_path: Option<String>,
    /// A new partition, or `Some(None)` for the cluster's default partition.
    pub partition: Option<Option<String>>,
    /// A new work directory.
    pub work_dir: Option<String>,
    /// New sbatch defaults, replacing the old ones (`Some(vec![])` clears them).
    pub sbatch_defaults: Option<Vec<Option<String>>>,
    /// A new largest array size.
    pub max_array_size: Option<i32>,
    /// A new path of the worker binary on the cluster's nodes.
    pub worker_path: Option<String>,
    /// Whether to keep job directories.
    pub keep_job_dirs: Option<bool>,
}

impl ClusterChanges {
    /// Whether nothing would change.
    pub fn is_empty(&self) -> bool {
        let Self {
            host,
            ssh_user,
            ssh_port,
            ssh_key_path,
            known_hosts_path,
            partition,
            work_dir,
            sbatch_defaults,
            max_array_size,
            worker_path,
            keep_job_dirs,
        } = self;
        host.is_none()
            && ssh_user.is_none()
            && ssh_port.is_none()
            && ssh_key_path.is_none()
            && known_hosts_path.is_none()
            && partition.is_none()
            && work_dir.is_none()
            && sbatch_defaults.is_none()
            && max_array_size.is_none()
            && worker_path.is_none()
            && keep_job_dirs.is_none()
    }

    /// Whether SSH settings that only an SSH cluster has are set.
    fn sets_ssh_settings(&self) -> bool {
        self.ssh_user.is_some() || self.ssh_key_path.is_some() || self.known_hosts_path.is_some()
    }
}

/// A cluster before and after [`update`].
#[derive(Debug, Clone)]
pub struct Updated {
    /// As it was.
    pub before: Cluster,
    /// As it is now.
    pub after: Cluster,
}

/// The cluster named `name`, its row locked until the transaction ends; not found otherwise.
async fn locked(conn: &mut Conn, name: &str) -> DbResult<Cluster> {
    clusters::table
        .filter(clusters::name.eq(name))
        .select(Cluster::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()?
        .ok_or_else(|| DbError::NotFound(format!("cluster {name:?}")))
}

/// Changes a cluster in one UPDATE, with the row locked from the read of its old values.
/// An unknown name is not found; no change at all, or SSH settings for a local cluster (no
/// host, none given), is invalid.
pub async fn update(conn: &mut Conn, name: &str, changes: &ClusterChanges) -> DbResult<Updated> {
    if changes.is_empty() {
        return Err(DbError::Invalid("nothing to change".into()));
    }
    let name = name.to_string();
    conn.transaction(async |conn| {
        let before = locked(conn, &name).await?;
        if before.host.is_none() && changes.host.is_none() && changes.sets_ssh_settings() {
            return Err(DbError::Invalid(format!(
                "cluster {name:?} is local (it has no host): an SSH user, key or known_hosts \
                 needs a host"
            )));
        }
        let after = diesel::update(clusters::table.find(before.id))
            .set(changes)
            .returning(Cluster::as_returning())
            .get_result(conn)
            .await
            .map_err(|e| match DbError::from(e) {
                DbError::Invalid(why) => DbError::Invalid(rejected(&name, &why)),
                other => other,
            })?;
        Ok(Updated { before, after })
    })
    .await
}

/// Removes a cluster; refused while simulations refer to it.
pub async fn remove(conn: &mut Conn, name: &str) -> DbResult<Cluster> {
    let name = name.to_string();
    conn.transaction(async |conn| {
        let cluster = locked(conn, &name).await?;
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
