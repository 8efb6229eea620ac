//! Rows as Rust structs, shared by `admin-cli`, `sim-api` and `worker`.

use crate::enums::{AuthProvider, InputType, JobState, Platform, Role, SimType, TaskState};
use crate::schema::{clusters, simulations, tasks, users};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;
use uuid::Uuid;

/// A user account.
#[derive(Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = users, check_for_backend(diesel::pg::Pg))]
pub struct User {
    /// Primary key.
    pub id: i64,
    /// Login name, unique per auth provider.
    pub username: String,
    /// Who vouches for the identity.
    pub auth_provider: AuthProvider,
    /// argon2id PHC string; `None` disables password login.
    pub password_hash: Option<String>,
    /// User or admin.
    pub role: Role,
    /// When the account was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the hash.
        f.debug_struct("User")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("auth_provider", &self.auth_provider)
            .field("has_password", &self.password_hash.is_some())
            .field("role", &self.role)
            .finish()
    }
}

/// A new user to insert.
#[derive(Insertable)]
#[diesel(table_name = users)]
pub struct NewUser<'a> {
    /// Login name.
    pub username: &'a str,
    /// Who vouches for the identity.
    pub auth_provider: AuthProvider,
    /// argon2id PHC string, if password login is allowed.
    pub password_hash: Option<&'a str>,
    /// User or admin.
    pub role: Role,
}

/// Defines [`Cluster`] (a stored row) and [`NewCluster`] (one to insert) from the one list
/// of the columns a new cluster sets.
macro_rules! cluster_structs {
    ($($(#[$doc:meta])* $field:ident: $ty:ty,)*) => {
        /// A SLURM cluster that batch simulations go to.
        #[derive(Debug, Clone, Queryable, Selectable, Identifiable, Serialize)]
        #[diesel(table_name = clusters, check_for_backend(diesel::pg::Pg))]
        pub struct Cluster {
            /// Primary key.
            pub id: i64,
            $($(#[$doc])* pub $field: $ty,)*
            /// When it was added.
            pub created_at: DateTime<Utc>,
        }

        /// A new cluster to insert.
        #[derive(Debug, Insertable)]
        #[diesel(table_name = clusters)]
        pub struct NewCluster {
            $($(#[$doc])* pub $field: $ty,)*
        }
    };
}

cluster_structs! {
    /// Unique name that users pick.
    name: String,
    /// SSH host; `None` runs SLURM commands on the worker's own host.
    host: Option<String>,
    /// SSH user.
    ssh_user: Option<String>,
    /// SSH port.
    ssh_port: i32,
    /// Path of the SSH private key on the worker's host.
    ssh_key_path: Option<String>,
    /// SLURM partition; `None` for the cluster default.
    partition: Option<String>,
    /// Root directory for job directories on the cluster.
    work_dir: String,
    /// sbatch options added to every job.
    sbatch_defaults: Vec<Option<String>>,
    /// `known_hosts` file (on the batch component's host) holding the SSH host's key; `None`
    /// uses the user's own.
    known_hosts_path: Option<String>,
    /// The most elements one array job may have; a batch Submit with more tasks is refused.
    max_array_size: i32,
    /// The `worker` binary on the cluster's nodes (each array element runs `worker element`).
    worker_path: String,
    /// Keep a simulation's job directory after it is canceled (removed by default).
    keep_job_dirs: bool,
}

/// A simulation.
#[derive(Debug, Clone, Queryable, Selectable, Identifiable, Serialize)]
#[diesel(table_name = simulations, check_for_backend(diesel::pg::Pg))]
pub struct Simulation {
    /// Operator-facing id.
    pub id: i64,
    /// Public id.
    pub job_id: Uuid,
    /// Owner.
    pub user_id: i64,
    /// Free-text title.
    pub title: String,
    /// Direct or batch.
    pub platform: Platform,
    /// Editor JSON or files.
    pub input_type: InputType,
    /// Which simulator.
    pub sim_type: SimType,
    /// Current state.
    pub job_state: JobState,
    /// Number of tasks.
    pub ntasks: i32,
    /// Total primaries requested.
    pub primaries: i64,
    /// Submission time.
    pub start_time: DateTime<Utc>,
    /// When it reached a terminal state.
    pub end_time: Option<DateTime<Utc>>,
    /// Last change.
    pub update_time: DateTime<Utc>,
    /// Batch cluster.
    pub cluster_id: Option<i64>,
    /// Per-submission sbatch options.
    pub sbatch_options: Vec<Option<String>>,
    /// Job directory on the cluster.
    pub job_dir: Option<String>,
    /// SLURM array job id.
    pub array_id: Option<i64>,
    /// SLURM collect job id.
    pub collect_id: Option<i64>,
}

/// A task of a simulation, which is also a queue entry.
#[derive(Debug, Clone, Queryable, Selectable, Identifiable, Serialize)]
#[diesel(table_name = tasks, check_for_backend(diesel::pg::Pg))]
pub struct Task {
    /// Primary key.
    pub id: i64,
    /// Owning simulation.
    pub simulation_id: i64,
    /// 0-based index within the simulation.
    pub task_index: i32,
    /// Current state.
    pub task_state: TaskState,
    /// Primaries this task must simulate.
    pub requested_primaries: i64,
    /// Primaries simulated so far.
    pub simulated_primaries: i64,
    /// Estimated seconds left.
    pub estimated_time_s: Option<i32>,
    /// When it started running.
    pub start_time: Option<DateTime<Utc>>,
    /// When it ended.
    pub end_time: Option<DateTime<Utc>>,
    /// Last change.
    pub update_time: DateTime<Utc>,
    /// Claims so far.
    pub attempts: i32,
    /// Claims allowed.
    pub max_attempts: i32,
    /// Not claimable before this time (retry backoff).
    pub run_after: DateTime<Utc>,
    /// Worker holding the lease.
    pub lease_owner: Option<String>,
    /// When the lease runs out.
    pub lease_expires_at: Option<DateTime<Utc>>,
    /// The last failure message.
    pub last_error: Option<String>,
}
