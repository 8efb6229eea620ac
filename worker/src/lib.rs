//! The task worker as a library: a [`Runner`] claims tasks from the PostgreSQL queue and runs
//! each with a [`TaskHandler`]: the real simulators ([`simulators::Simulators`]), the
//! stand-ins of the `worker` binary ([`handlers::Standard`]), or a test's own.
//!
//! The modules form layers, each using only those below it:
//!
//! - [`execute`]: the handler trait, the context of a run, its outcome (depends on `db` only);
//! - [`retry`]: database writes retried through transient failures;
//! - [`simulators`]: the simulators, as a [`TaskHandler`];
//! - [`handlers`], [`settings`]: the handler choice and the plain settings;
//! - [`outcome`]: writing a task's outcome; `listener`: the worker's notifications;
//!   [`metrics`]: what the worker counts;
//! - [`runner`]: the claim loop, leases, cancellation, shutdown and the worker's health.

pub mod batch;
pub mod execute;
pub mod handlers;
mod listener;
pub mod metrics;
pub mod outcome;
pub mod retry;
pub mod runner;
pub mod settings;
pub mod simulators;

pub use execute::{MachineFault, Outcome, Stop, TaskContext, TaskHandler};
pub use runner::Runner;
pub use settings::Settings;
