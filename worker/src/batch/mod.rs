//! Batch runs on SLURM: the component that owns a cluster's batch simulations, and the
//! offline element that runs one task on a node.
//!
//! - [`driver`]: per cluster and per poll, hold the cluster's batch simulations under a lease
//!   (`db::queue::batch`), stage and submit new ones (`stage`), poll every active array
//!   with one `squeue`, and bring each task up to date (`reconcile`); cancel and clean
//!   ended and deleted ones.
//! - [`element`]: `worker element`, one array element on a node, without the database.
//! - [`result_file`]: what an element leaves for the component to merge.
//!
//! A batch task goes through the same transitions as a direct one: `PENDING → RUNNING` when
//! SLURM starts its element (a new attempt under the component's lease), then completed
//! through `db::merge::complete_with_results` (the same weights, aggregation rules and
//! guard against counting a result twice) or failed with SLURM's reason.

pub mod driver;
pub mod element;
mod reconcile;
pub mod result_file;
mod stage;

pub use driver::{BatchSettings, ClusterDriver};

/// A failed step of the batch component.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// The database.
    #[error(transparent)]
    Db(#[from] db::DbError),
    /// SLURM, or the connection to the cluster.
    #[error(transparent)]
    Slurm(#[from] slurm::SlurmError),
    /// The cluster's stored settings cannot be used.
    #[error("cluster {cluster:?}: {why}")]
    Cluster {
        /// The cluster's name.
        cluster: String,
        /// What is wrong.
        why: String,
    },
}

impl BatchError {
    /// Whether the next poll may succeed where this one failed (the database or the
    /// cluster unreachable for a while).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Db(e) => e.is_transient(),
            Self::Slurm(e) => e.is_transient(),
            Self::Cluster { .. } => false,
        }
    }
}
