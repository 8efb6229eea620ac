//! PostgreSQL LISTEN/NOTIFY channels shared by `sim-api` and `worker`.
//!
//! Payloads are short text; listeners must treat a notification as a hint to look at the
//! database, never as the data itself (notifications are dropped while nobody listens).

/// New or re-queued tasks are due: idle workers wake up and claim. Payload: empty.
pub const TASKS_READY: &str = "sim_tasks_ready";

/// Something about a simulation changed (state, task progress, partial results).
/// Payload: the simulation's id as decimal text. `Watch` streams and the API's status cache
/// listen here.
pub const SIMULATION_EVENTS: &str = "sim_events";

/// Something that may invalidate an access token changed: an `auth_tokens` or `users` row
/// was updated or deleted (a trigger sends it, whoever made the change). Payload: empty.
/// Servers that cache token lookups empty their cache.
pub const AUTH_EVENTS: &str = "sim_auth_events";

/// A simulation's running tasks must stop: it was canceled or removed. Payload: the
/// simulation's id as decimal text. Workers listen here (and not to [`SIMULATION_EVENTS`],
/// whose every progress report and completion would make them check their leases).
pub const CANCELLATIONS: &str = "sim_cancellations";
