//! Simulator input formats: what can be checked about a simulation's input files without
//! running anything, and the per-task rewrites (primaries, seeds) the worker makes before a
//! run. `sim-api` calls [`validate`] at Submit, so an input error is `INVALID_ARGUMENT` before
//! anything is queued; the worker calls the same modules when it prepares a task.
//!
//! Every function here is pure: text in, text (or a typed error) out.

pub mod builtin;
pub mod editor_json;
mod file_name;
pub mod fluka;
pub mod shieldhit;
pub mod testdata;
pub mod topas;

use std::collections::BTreeMap;

pub use file_name::FileName;

/// The most values one result page may hold: 16 Mi (2²⁴; 128 MiB of `f64`). A 200 × 200 × 100
/// mesh (4 M values) fits. Submit refuses an input that asks for a larger page
/// ([`shieldhit::validate`], [`fluka::validate`]), and the worker refuses a larger page in a
/// run's results; the page codec (`db::codec`) decodes at least this many (the worker checks
/// that at compile time).
pub const MAX_PAGE_VALUES: usize = 1 << 24;

/// An input that cannot run. The message names the file and the card or parameter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InputError(pub String);

impl InputError {
    /// An error with this message.
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

/// The external simulators whose inputs are files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Simulator {
    /// SHIELD-HIT12A: `beam.dat`, `detect.dat`, `geo.dat`, `mat.dat`.
    Shieldhit,
    /// FLUKA: one `*.inp` file.
    Fluka,
    /// TOPAS: parameter files (`*.txt`).
    Topas,
}

/// Checks the input files of a simulation of `ntasks` tasks with `primaries_per_task`
/// primaries each (the largest task's share), before anything is queued.
pub fn validate(
    simulator: Simulator,
    files: &BTreeMap<String, String>,
    ntasks: i32,
    primaries_per_task: i64,
) -> Result<(), InputError> {
    match simulator {
        Simulator::Shieldhit => shieldhit::validate(files, ntasks, primaries_per_task),
        Simulator::Fluka => fluka::validate(files, ntasks, primaries_per_task),
        Simulator::Topas => topas::validate(files, ntasks, primaries_per_task),
    }
}
