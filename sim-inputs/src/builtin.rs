//! The editor JSON input of the builtin simulator, its defaults and its validation.

use serde::{Deserialize, Serialize};

/// Lowest beam energy accepted, MeV.
pub const MIN_ENERGY_MEV: f64 = 10.0;
/// Highest beam energy accepted, MeV.
pub const MAX_ENERGY_MEV: f64 = 250.0;
/// Largest phantom radius or depth accepted, cm.
const MAX_PHANTOM_CM: f64 = 100.0;
/// Largest number of z bins.
const MAX_Z_BINS: u32 = 100_000;
/// Largest number of r bins.
const MAX_R_BINS: u32 = 10_000;
/// Largest number of r–z bins (`z_bins × r_bins`).
const MAX_RZ_BINS: u64 = 1_000_000;

/// The whole input of a builtin simulation (the editor JSON). Only `beam.energy_mev` is
/// required; unknown fields are rejected. See the module documentation for the format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuiltinInput {
    /// The proton pencil beam.
    pub beam: Beam,
    /// The water cylinder.
    #[serde(default)]
    pub phantom: Phantom,
    /// Scoring grid.
    #[serde(default)]
    pub scoring: Scoring,
    /// Base seed; task `i` runs with `task_seed(seed, i)`. Default 0.
    #[serde(default)]
    pub seed: u64,
}

/// The proton pencil beam: enters the phantom at `z = 0` travelling along `+z`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Beam {
    /// Mean kinetic energy, MeV, 10–250.
    pub energy_mev: f64,
    /// Gaussian energy spread (one standard deviation), MeV, 0 to 10% of the energy. Default 0.
    #[serde(default)]
    pub energy_spread_mev: f64,
    /// Gaussian lateral size (one standard deviation in x and in y), cm, 0–100. Default 0.3.
    /// Primaries drawn outside the phantom radius miss it (and still count).
    #[serde(default = "default_sigma_cm")]
    pub sigma_cm: f64,
    /// Beam centre `[x, y]` on the entrance face, cm; must lie inside the phantom radius.
    /// Default `[0, 0]`.
    #[serde(default)]
    pub position_cm: [f64; 2],
}

/// Phantom material. Only liquid water for now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Material {
    /// Liquid water, density 1 g/cm³, I = 75 eV.
    #[default]
    Water,
}

/// A water cylinder on the z axis from `z = 0` to `z = depth_cm`; it is also the scoring
/// volume.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Phantom {
    /// Material (`"water"`). Default water.
    #[serde(default)]
    pub material: Material,
    /// Radius, cm, above 0 and at most 100. Default 5.
    #[serde(default = "default_radius_cm")]
    pub radius_cm: f64,
    /// Depth (length along z), cm, above 0 and at most 100. Default 40 (the CSDA range of
    /// 250 MeV protons is 37.9 cm).
    #[serde(default = "default_depth_cm")]
    pub depth_cm: f64,
}

/// The scoring grid: uniform bins over the phantom.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scoring {
    /// Bins along z over `[0, depth_cm]`, 1–100 000. Default 400 (1 mm with the default depth).
    #[serde(default = "default_z_bins")]
    pub z_bins: u32,
    /// Bins along r over `[0, radius_cm]`, 1–10 000. Default 50 (1 mm with the default
    /// radius). `z_bins × r_bins` is at most 1 000 000.
    #[serde(default = "default_r_bins")]
    pub r_bins: u32,
}

fn default_sigma_cm() -> f64 {
    0.3
}
fn default_radius_cm() -> f64 {
    5.0
}
fn default_depth_cm() -> f64 {
    40.0
}
fn default_z_bins() -> u32 {
    400
}
fn default_r_bins() -> u32 {
    50
}

impl Default for Phantom {
    fn default() -> Self {
        Self {
            material: Material::Water,
            radius_cm: default_radius_cm(),
            depth_cm: default_depth_cm(),
        }
    }
}

impl Default for Scoring {
    fn default() -> Self {
        Self {
            z_bins: default_z_bins(),
            r_bins: default_r_bins(),
        }
    }
}

/// Why an input was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InputError {
    /// Not JSON, not the expected shape, a wrong type, a missing required field or an unknown
    /// field; the text is serde_json's message, with line and column.
    #[error("builtin input is not valid JSON of the expected form: {0}")]
    Json(String),
    /// Well-formed, but a value is out of range.
    #[error("builtin input: `{field}` {reason}")]
    Invalid {
        /// Dotted path of the offending field, e.g. `beam.energy_mev`.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

fn invalid(field: &'static str, reason: impl Into<String>) -> InputError {
    InputError::Invalid {
        field,
        reason: reason.into(),
    }
}

/// Checks `lo <= v <= hi` (or `lo < v` when `open_lo`), refusing NaN and infinities.
fn check_range(
    field: &'static str,
    v: f64,
    lo: f64,
    hi: f64,
    open_lo: bool,
) -> Result<(), InputError> {
    let low_ok = if open_lo { v > lo } else { v >= lo };
    if v.is_finite() && low_ok && v <= hi {
        Ok(())
    } else {
        let open = if open_lo { "(" } else { "[" };
        Err(invalid(
            field,
            format!("must be a finite number in {open}{lo}, {hi}], got {v}"),
        ))
    }
}

impl BuiltinInput {
    /// Parses the editor JSON and validates it (see [`BuiltinInput::validate`]).
    pub fn from_json(text: &str) -> Result<Self, InputError> {
        let input: Self =
            serde_json::from_str(text).map_err(|e| InputError::Json(e.to_string()))?;
        input.validate()?;
        Ok(input)
    }

    /// Checks every value against the documented ranges. The worker's builtin `run` calls it too,
    /// so an input built in code cannot bypass it.
    pub fn validate(&self) -> Result<(), InputError> {
        let b = &self.beam;
        let p = &self.phantom;
        let s = &self.scoring;
        check_range(
            "beam.energy_mev",
            b.energy_mev,
            MIN_ENERGY_MEV,
            MAX_ENERGY_MEV,
            false,
        )?;
        check_range(
            "beam.energy_spread_mev",
            b.energy_spread_mev,
            0.0,
            0.1 * b.energy_mev,
            false,
        )?;
        check_range("phantom.radius_cm", p.radius_cm, 0.0, MAX_PHANTOM_CM, true)?;
        check_range("phantom.depth_cm", p.depth_cm, 0.0, MAX_PHANTOM_CM, true)?;
        check_range("beam.sigma_cm", b.sigma_cm, 0.0, MAX_PHANTOM_CM, false)?;
        let [x, y] = b.position_cm;
        if !(x.is_finite() && y.is_finite()) || x * x + y * y >= p.radius_cm * p.radius_cm {
            return Err(invalid(
                "beam.position_cm",
                format!(
                    "must lie inside the phantom radius {} cm, got [{x}, {y}]",
                    p.radius_cm
                ),
            ));
        }
        if s.z_bins == 0 || s.z_bins > MAX_Z_BINS {
            return Err(invalid(
                "scoring.z_bins",
                format!("must be in [1, {MAX_Z_BINS}], got {}", s.z_bins),
            ));
        }
        if s.r_bins == 0 || s.r_bins > MAX_R_BINS {
            return Err(invalid(
                "scoring.r_bins",
                format!("must be in [1, {MAX_R_BINS}], got {}", s.r_bins),
            ));
        }
        if u64::from(s.z_bins) * u64::from(s.r_bins) > MAX_RZ_BINS {
            return Err(invalid(
                "scoring.r_bins",
                format!(
                    "z_bins × r_bins must be at most {MAX_RZ_BINS}, got {} × {}",
                    s.z_bins, s.r_bins
                ),
            ));
        }
        Ok(())
    }
}
