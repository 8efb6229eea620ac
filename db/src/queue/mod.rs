//! The task queue: claims, leases, heartbeats, progress, completion, failure and requeueing.
//!
//! Every task state transition is written here, once, and guarded in SQL: an update names the
//! state it expects (and, for a running task, the lease owner and attempt number), so a stale
//! worker whose lease was lost and whose task was claimed again cannot complete, fail or
//! report progress for it. No transaction stays open while a task runs: a claim commits at
//! once, and the worker holds only the lease.

//!
//! One submodule per kind of transition: [`claim`](mod@claim), [`lease`](mod@lease) (heartbeat, progress, release),
//! [`batch`](mod@batch) (a batch component's hold on its cluster's simulations),
//! [`complete`](mod@complete), [`fail`](mod@fail) (failures and machine faults), [`finish`](mod@finish) (ending a simulation and
//! the final merge), [`cancel`](mod@cancel), [`damaged`](mod@damaged), [`reaper`](mod@reaper) (expired leases, stale merges)
//! [`retry`](mod@retry) (an operator's requeue of a failed task) and [`stats`](mod@stats) (the
//! queue's depth, read-only, for metrics).
//! Everything is re-exported here, at its old path. The merge (folding results into the
//! running sums, [`crate::merge`]) is the layer above: it calls the queue, never the reverse.
//! Announcing notifications are sent after commit ([`crate::notify::Announce`]).

pub mod batch;
pub mod cancel;
pub mod claim;
pub mod complete;
pub mod damaged;
pub mod fail;
pub mod finish;
pub mod lease;
pub mod reaper;
pub mod retry;
pub mod stats;

pub use cancel::{cancel, Canceled};
pub use claim::{claim, ClaimedTask};
pub use complete::{complete, complete_many, mark_completed, Completion};
pub use damaged::fail_damaged;
pub use fail::{fail, release_machine_fault};
pub(crate) use finish::finalize_each;
pub use finish::{finalize, finish_locked_simulations, finish_simulations};
pub use lease::{
    heartbeat, is_lease_lost, lease_lost, lost_leases, release, report_progress, simulation_of,
    task_state, Lease,
};
pub use reaper::{finalize_stale, requeue_expired};
pub use retry::{retry, RetryError};

use crate::error::DbError;

/// Whether a transaction failed only because it collided with another (a deadlock or a
/// serialization failure) and may simply be run again. See [`DbError::is_collision`].
pub fn is_transient(e: &DbError) -> bool {
    e.is_collision()
}
