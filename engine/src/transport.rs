//! Condensed-history transport of one proton at a time through the water cylinder, with the
//! secondary protons of nuclear interactions (non-elastic on oxygen, elastic on hydrogen).

use super::coulomb::{Coulomb, HARD_RATE_PER_CM};
use super::input::BuiltinInput;
use super::nuclear::{break_up, po_elastic, Breakup};
use super::particle::{deflect, Proton};
use super::physics::{RangeTables, BOHR_VARIANCE_PER_CM, PROTON_MASS_MEV, TABLE_MAX_MEV};
use super::rng::Rng;
use super::scoring::Scorer;
use super::xsection::CrossSections;
use super::EnergyBalance;

/// A step is at most this fraction of the residual CSDA range ...
const STEP_RANGE_FRACTION: f64 = 0.08;
/// ... or of this one for secondary protons, which carry ~5% of the dose and take a third of
/// the steps with the primaries' fraction (their dose, lateral spread and fluence changed by
/// less than the statistics of the reference comparison when this was doubled).
const SECONDARY_STEP_RANGE_FRACTION: f64 = 0.16;
/// ... but at least this long, cm; once the residual range is shorter than this, the proton
/// deposits the rest of its energy in one last step.
const MIN_STEP_CM: f64 = 0.01;
/// A proton left with less than this (after a large straggling loss) deposits it on the spot
/// and stops, MeV; its range would be far below a nanometre.
const CUTOFF_MEV: f64 = 1e-3;
/// Everything one run needs, built once.
pub(crate) struct Transport {
    tables: RangeTables,
    /// Multiple Coulomb scattering (mixed scheme).
    coulomb: Coulomb,
    /// Nuclear cross sections.
    xs: CrossSections,
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
            coulomb: Coulomb::new(HARD_RATE_PER_CM),
            xs: CrossSections::new(),
            step_fraction: STEP_RANGE_FRACTION,
            min_step: MIN_STEP_CM,
            energy: input.beam.energy_mev,
            energy_spread: input.beam.energy_spread_mev,
            sigma: input.beam.sigma_cm,
            x0: input.beam.position_cm[0],
            y0: input.beam.position_cm[1],
        }
    }

    /// Transports one primary proton from the entrance face, and every secondary proton of
    /// its nuclear interactions, until each stops or leaves the phantom, scoring
    /// along the way and accounting for its energy in `balance`. `stack` is scratch space.
    pub(crate) fn primary(
        &self,
        rng: &mut Rng,
        scorer: &mut Scorer,
        balance: &mut EnergyBalance,
        stack: &mut Vec<Proton>,
    ) {
        let e = if self.energy_spread > 0.0 {
            (self.energy + self.energy_spread * rng.gaussian()).clamp(0.0, TABLE_MAX_MEV)
        } else {
            self.energy
        };
        balance.beam_mev += e;
        let (mut x, mut y) = (self.x0, self.y0);
        if self.sigma > 0.0 {
            x += self.sigma * rng.gaussian();
            y += self.sigma * rng.gaussian();
        }
        if !scorer.inside_radius(x, y) {
            balance.missed_mev += e; // misses the phantom
            return;
        }
        stack.clear();
        stack.push(Proton {
            p: [x, y, 0.0],
            d: [0.0, 0.0, 1.0],
            e,
            secondary: false,
        });
        while let Some(proton) = stack.pop() {
            self.proton(proton, rng, scorer, balance, stack);
        }
    }

    /// Transports one proton until it stops, leaves the phantom, or undergoes a non-elastic
    /// event or an elastic collision with hydrogen (whose protons it pushes on `stack`); an
    /// elastic scattering on oxygen turns it and it goes on.
    fn proton(
        &self,
        start: Proton,
        rng: &mut Rng,
        scorer: &mut Scorer,
        balance: &mut EnergyBalance,
        stack: &mut Vec<Proton>,
    ) {
        let Proton {
            mut p,
            mut d,
            mut e,
            secondary,
        } = start;
        let mut residual = self.tables.range(e);
        // Distance to the nuclear interaction, in mean free paths.
        let mut mfp_left = -rng.uniform_open().ln();
        // Distance to the next hard Coulomb deflection, cm.
        let mut hard_left = self.coulomb.hard_distance(rng);
        // The first step is a random fraction of a full one, so that step boundaries (and
        // the small bias of depositing uniformly along a step) do not line up across
        // primaries of one energy.
        let mut first = rng.uniform_open();
        let fraction = if secondary {
            SECONDARY_STEP_RANGE_FRACTION
        } else {
            self.step_fraction
        };

        while e > 0.0 && residual > 0.0 {
            let mut step = (first * fraction * residual).max(self.min_step);
            first = 1.0;
            let mut last = step >= residual;
            if last {
                step = residual;
            }
            let [sigma_ne, sigma_pp, sigma_po] = self.xs.at(e);
            let sigma_n = sigma_ne + sigma_pp + sigma_po;
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

            // Multiple Coulomb scattering (`coulomb`'s mixed scheme), at the mid-step energy,
            // applied at the middle of the step: a Gaussian for the soft collisions plus the
            // hard deflections that fall in this step.
            let e_mid = 0.5 * (e + e_post);
            let half = 0.5 * step;
            let mid = [p[0] + half * d[0], p[1] + half * d[1], p[2] + half * d[2]];
            let (a, b) = self.coulomb.deflection(e_mid, step, &mut hard_left, rng);
            d = deflect(d, a, b);
            let end = [
                mid[0] + half * d[0],
                mid[1] + half * d[1],
                mid[2] + half * d[2],
            ];

            // Deposit along the chord start → end; stop if it leaves the phantom, carrying
            // away what it had not deposited inside.
            let de = e - e_post;
            let inside = scorer.segment(p, end, de, secondary);
            if inside < 1.0 {
                let kept = de * inside;
                balance.deposited_mev += kept;
                balance.escaped_protons_mev += e - kept;
                return;
            }
            balance.deposited_mev += de;
            p = end;
            e = e_post;
            if nuclear {
                // Which process, in proportion to the cross sections at the step's start.
                let at = Proton { p, d, e, secondary };
                let pick = rng.uniform_open() * sigma_n;
                if pick < sigma_ne + sigma_pp {
                    let kind = if pick < sigma_ne {
                        Breakup::NonElastic
                    } else {
                        Breakup::PpElastic
                    };
                    break_up(kind, at, rng, scorer, balance, stack);
                    return;
                }
                // Elastic on oxygen: the proton goes on, turned and a little slower.
                let next = po_elastic(at, rng, scorer, balance);
                (d, e) = (next.d, next.e);
                mfp_left = -rng.uniform_open().ln();
            }
            if last {
                return;
            }
            if e < CUTOFF_MEV {
                scorer.deposit_point(p, e);
                balance.deposited_mev += e;
                return;
            }
            residual = self.tables.range(e);
        }
    }
}
