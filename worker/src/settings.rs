//! The worker's settings as plain values, and their defaults (which the command line of the
//! `worker` binary uses too).

use crate::handlers::HandlerKind;
use std::path::PathBuf;
use std::time::Duration;

/// The default lease length.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);
/// The shortest lease accepted.
pub const MIN_LEASE: Duration = Duration::from_secs(2);
/// The longest lease accepted.
pub const MAX_LEASE: Duration = Duration::from_secs(3600);
/// The default time between queue polls when no notification arrives.
pub const DEFAULT_POLL: Duration = Duration::from_secs(2);
/// The shortest time between queue polls.
pub const MIN_POLL: Duration = Duration::from_millis(10);
/// The default time running tasks get to finish at shutdown before they are handed back.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(10);
/// The longest grace period (and poll interval) used; longer values are cut to this.
pub const MAX_WAIT: Duration = Duration::from_secs(86_400);

/// How a worker runs: everything the [`crate::Runner`] needs besides its database and its
/// task handler, and the handler choice and simulator paths of the `worker` binary.
#[derive(Debug, Clone)]
pub struct Settings {
    /// This worker's name in task leases.
    pub worker_id: String,
    /// Tasks run at once (at least 1).
    pub concurrency: usize,
    /// Lease length; a heartbeat renews leases every third of it.
    pub lease: Duration,
    /// Time between queue polls when no notification arrives.
    pub poll: Duration,
    /// Time running tasks get to finish at shutdown before they are handed back.
    pub grace: Duration,
    /// What runs tasks in the `worker` binary ([`crate::handlers::Standard`]).
    pub handler: HandlerKind,
    /// Program paths and work directories of the simulators.
    pub simulators: crate::simulators::Settings,
}

impl Settings {
    /// The defaults: `worker_id`, one task per core, the default lease, poll and grace, the
    /// real simulators with no program configured, work directories under the system's
    /// temporary directory.
    pub fn new(worker_id: impl Into<String>) -> Self {
        Self {
            worker_id: worker_id.into(),
            concurrency: default_concurrency(),
            lease: DEFAULT_LEASE,
            poll: DEFAULT_POLL,
            grace: DEFAULT_GRACE,
            handler: HandlerKind::Simulators,
            simulators: crate::simulators::Settings::new(default_work_root()),
        }
    }
}

/// One task per core.
pub fn default_concurrency() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The host name and the process id.
pub fn default_worker_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "worker".into());
    format!("{host}-{}", std::process::id())
}

/// `sim-worker` under the system's temporary directory.
pub fn default_work_root() -> PathBuf {
    std::env::temp_dir().join("sim-worker")
}
