//! Condensed-history transport of one proton at a time through the water cylinder.

use super::input::BuiltinInput;
use super::physics::{
    fast_ln, nuclear_sigma_per_cm, RangeTables, BOHR_VARIANCE_PER_CM, HIGHLAND_MEV,
    PROTON_MASS_MEV, TABLE_MAX_MEV, WATER_X0_CM,
};
use super::rng::Rng;
use super::scoring::{Point, Scorer};

/// A step is at most this fraction of the residual CSDA range ...
const STEP_RANGE_FRACTION: f64 = 0.08;
/// ... but at least this long, cm; once the residual range is shorter than this, the proton
/// deposits the rest of its energy in one last step.
const MIN_STEP_CM: f64 = 0.01;
/// A proton left with less than this (after a large straggling loss) deposits it on the spot
/// and stops, MeV; its range would be far below a nanometre.
const CUTOFF_MEV: f64 = 1e-3;
/// Fraction of the remaining energy a proton removed by a nuclear interaction deposits on
/// the spot (recoils and short-range fragments); the rest leaves with neutrons, gammas and
/// secondary protons, which are not transported.
pub(crate) const NUCLEAR_LOCAL_FRACTION: f64 = 0.1;

/// Everything one run needs, built once.
pub(crate) struct Transport {
    tables: RangeTables,
    /// Step length as a fraction of the residual range.
    pub(crate) step_fraction: f64,
    /// Shortest step, cm.
    pub(crate) min_step: f64,
    energy: f64,
    energy_spread: f64,
    sigma: f64,
    x0: f64,
    y0: f64,
}

impl Transport {
    /// Builds the physics tables for this input.
    pub(crate) fn new(input: &BuiltinInput) -> Self {
        Self {
            tables: RangeTables::new(),
            step_fraction: STEP_RANGE_FRACTION,
            min_step: MIN_STEP_CM,
            energy: input.beam.energy_mev,
            energy_spread: input.beam.energy_spread_mev,
            sigma: input.beam.sigma_cm,
            x0: input.beam.position_cm[0],
            y0: input.beam.position_cm[1],
        }
    }

    /// Transports one primary proton from the entrance face until it stops, is removed by a
    /// nuclear interaction or leaves the phantom, scoring along the way.
    pub(crate) fn primary(&self, rng: &mut Rng, scorer: &mut Scorer) {
        let mut e = if self.energy_spread > 0.0 {
            (self.energy + self.energy_spread * rng.gaussian()).clamp(0.0, TABLE_MAX_MEV)
        } else {
            self.energy
        };
        let (mut x, mut y) = (self.x0, self.y0);
        if self.sigma > 0.0 {
            x += self.sigma * rng.gaussian();
            y += self.sigma * rng.gaussian();
        }
        if !scorer.inside_radius(x, y) {
            return; // misses the phantom
        }
        let mut p: Point = [x, y, 0.0];
        let mut d: Point = [0.0, 0.0, 1.0];
        let mut residual = self.tables.range(e);
        // Distance to the nuclear interaction, in mean free paths.
        let mut mfp_left = -rng.uniform_open().ln();
        let mut path = 0.0_f64;
        // The first step is a random fraction of a full one, so that step boundaries (and
        // the small bias of depositing uniformly along a step) do not line up across
        // primaries of one energy.
        let mut first = rng.uniform_open();

        while e > 0.0 && residual > 0.0 {
            let mut step = (first * self.step_fraction * residual).max(self.min_step);
            first = 1.0;
            let mut last = step >= residual;
            if last {
                step = residual;
            }
            let sigma_n = nuclear_sigma_per_cm(e);
            let mut nuclear = false;
            if sigma_n * step >= mfp_left {
                step = mfp_left / sigma_n;
                nuclear = true;
                last = false;
            } else {
                mfp_left -= sigma_n * step;
            }

            // Energy loss: CSDA mean from the range tables plus Gaussian Bohr straggling.
            let gamma = 1.0 + e / PROTON_MASS_MEV;
            let e_post = if last {
                0.0
            } else {
                let mean_loss = e - self.tables.energy(residual - step);
                let variance = BOHR_VARIANCE_PER_CM * step * 0.5 * (gamma * gamma + 1.0);
                let loss = (mean_loss + variance.sqrt() * rng.gaussian()).clamp(0.0, e);
                e - loss
            };

            // Multiple Coulomb scattering (Highland), at the mid-step energy, applied at the
            // middle of the step.
            path += step;
            let e_mid = 0.5 * (e + e_post);
            let total = e_mid + PROTON_MASS_MEV;
            let inv_pc2 = 1.0 / (e_mid * (e_mid + 2.0 * PROTON_MASS_MEV)); // 1/(pc)²
            let inv_pv = total * inv_pc2; // pv = (pc)²/E_total
            let inv_beta2 = total * total * inv_pc2;
            let log_term = (1.0 + 0.038 * fast_ln(path * inv_beta2 * (1.0 / WATER_X0_CM))).max(0.0);
            let theta0 = HIGHLAND_MEV * inv_pv * (step * (1.0 / WATER_X0_CM)).sqrt() * log_term;
            let half = 0.5 * step;
            let mid = [p[0] + half * d[0], p[1] + half * d[1], p[2] + half * d[2]];
            let ga = rng.gaussian();
            let gb = rng.gaussian();
            d = deflect(d, theta0 * ga, theta0 * gb);
            let end = [
                mid[0] + half * d[0],
                mid[1] + half * d[1],
                mid[2] + half * d[2],
            ];

            // Deposit along the chord start → end; stop if it leaves the phantom.
            if scorer.segment(p, end, e - e_post) {
                return;
            }
            p = end;
            e = e_post;
            if nuclear {
                scorer.deposit_point(p, NUCLEAR_LOCAL_FRACTION * e);
                return;
            }
            if last {
                return;
            }
            if e < CUTOFF_MEV {
                scorer.deposit_point(p, e);
                return;
            }
            residual = self.tables.range(e);
        }
    }
}

/// Turns the unit vector `d` by the projected angles `a` and `b` (rad) about two axes
/// perpendicular to it: polar angle `θ = sqrt(a² + b²)`, azimuth `atan2(b, a)`.
#[inline]
fn deflect(d: Point, a: f64, b: f64) -> Point {
    let [u, v, w] = d;
    let t2 = a * a + b * b;
    // cos θ and sin θ / θ: Taylor series for small angles, exact otherwise.
    let (cos_t, sinc_t) = if t2 < 0.01 {
        (
            1.0 - t2 * (0.5 - t2 / 24.0),
            1.0 - t2 * (1.0 / 6.0 - t2 / 120.0),
        )
    } else {
        let t = t2.sqrt();
        let (s, c) = t.sin_cos();
        (c, s / t)
    };
    let (a, b) = (a * sinc_t, b * sinc_t);
    let rho2 = u * u + v * v;
    if rho2 < 1e-20 {
        // Along ±z: the perpendicular axes are x and y.
        let sign = if w < 0.0 { -1.0 } else { 1.0 };
        return [a, b, sign * cos_t];
    }
    let rho = rho2.sqrt();
    let inv = 1.0 / rho;
    // e1 = (u w, v w, -rho²)/rho, e2 = (-v, u, 0)/rho.
    [
        cos_t * u + (a * u * w - b * v) * inv,
        cos_t * v + (a * v * w + b * u) * inv,
        cos_t * w - a * rho,
    ]
}

#[cfg(test)]
mod tests {
    use super::deflect;

    #[test]
    fn deflect_keeps_unit_length_and_angle() {
        let cases = [
            ([0.0, 0.0, 1.0], 0.01, -0.02),
            ([0.6, 0.0, 0.8], 0.05, 0.03),
            ([0.36, 0.48, 0.8], -0.2, 0.4),
            ([0.0, 0.0, -1.0], 0.3, 0.0),
        ];
        for (d, a, b) in cases {
            let n = deflect(d, a, b);
            let norm = (n[0] * n[0] + n[1] * n[1] + n[2] * n[2]).sqrt();
            assert!((norm - 1.0).abs() < 1e-9, "{d:?} -> {n:?}");
            let cos = d[0] * n[0] + d[1] * n[1] + d[2] * n[2];
            let theta = f64::hypot(a, b);
            assert!(
                (cos - theta.cos()).abs() < 1e-9,
                "{d:?}: {cos} vs {}",
                theta.cos()
            );
        }
    }
}
