//! SLURM for the batch component: what it may pass to `sbatch` ([`options`]), what SLURM's
//! states mean for a task ([`state`]), and the commands themselves ([`client::Slurm`]) run on
//! this host or over one reused SSH connection ([`transport`], [`ssh`]).
//!
//! Nothing here knows the database; the batch component maps these onto tasks.

pub mod client;
pub mod job_dir;
pub mod options;
pub mod ssh;
pub mod state;
pub mod transport;

pub use client::{JobSpec, Slurm, SlurmError};
pub use options::{OptionError, SbatchOption};
pub use ssh::{SshError, SshSession, SshTarget, TargetError};
pub use state::{ElementState, ElementStatus, FailReason, JobId};
pub use transport::{CommandError, Transport};
