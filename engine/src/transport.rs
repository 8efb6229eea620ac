//! Condensed-history transport of one proton at a time through the water cylinder, with the
//! secondary protons of non-elastic nuclear interactions.

use super::input::BuiltinInput;
use super::physics::{
    nuclear_sigma_per_cm, NuclearBudget, RangeTables, ScatterTables, BOHR_VARIANCE_PER_CM,
    NUCLEAR_BUDGET, PROTON_MASS_MEV, TABLE_MAX_MEV,
};
use super::rng::Rng;
use super::scoring::{Point, Scorer};
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
/// Secondary protons below this energy are deposited on the spot instead of transported,
/// MeV (the CSDA range of a 1 MeV proton in water is 25 µm, far below any bin).
const SECONDARY_CUTOFF_MEV: f64 = 1.0;

/// A proton waiting to be transported.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Proton {
    p: Point,
    d: Point,
    e: f64,
    /// `false` for the primary, `true` for the secondaries of non-elastic events (and theirs).
    secondary: bool,
}

/// Everything one run needs, built once.
pub(crate) struct Transport {
    tables: RangeTables,
    scatter: ScatterTables,
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
            scatter: ScatterTables::new(),
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
    /// its non-elastic nuclear interactions, until each stops or leaves the phantom, scoring
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

    /// Transports one proton until it stops, leaves the phantom or undergoes a non-elastic
    /// interaction (whose secondary protons it pushes on `stack`).
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
        // pv at the start of this proton's track, MeV (the scattering power's memory).
        let inv_pv0_sq = 1.0 / ScatterTables::pv2(e);
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

            // Multiple Coulomb scattering (Gottschalk's differential Highland scattering
            // power), at the mid-step energy, applied at the middle of the step.
            let e_mid = 0.5 * (e + e_post);
            let theta0 = (self.scatter.power(e_mid, inv_pv0_sq) * step).sqrt();
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
                let at = Proton { p, d, e, secondary };
                self.non_elastic(at, rng, scorer, balance, stack);
                return;
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

    /// A non-elastic interaction of the proton `at` (kinetic energy `t` MeV at `p`,
    /// travelling along `d`), shared so that the means over events are [`NUCLEAR_BUDGET`].
    ///
    /// The model (this engine's, kept simple): the leading proton of the intranuclear
    /// cascade keeps a fraction `y` of `t`, with density `k y^(k−1)` on `(0, 1)` and
    /// `k = 1.5` ([`LEADING_K`]), so that its mean, `k/(k + 1) = 0.6`, is the budget's proton
    /// share — from inelastic scattering to a low excited state (`y` near 1) to deep
    /// spallation (`y` near 0). The rest, `(1 − y) t`, goes in fixed proportions
    /// ([`REST_SHARES`]) to neutrons and gammas (which escape, not transported), to binding
    /// energy, and to heavy fragments, recoils and evaporation protons (deposited at `p`).
    /// The leading proton's polar angle follows from elastic kinematics of equal masses at
    /// `t` (quasi-free proton–nucleon scattering, the first step of Serber's 1947 cascade),
    /// `cos²θ = E (t + 2m) / (t (E + 2m))`: fast protons go forward, slow ones wide; its
    /// azimuth is uniform. A leading proton below 1 MeV deposits its energy on the spot.
    fn non_elastic(
        &self,
        at: Proton,
        rng: &mut Rng,
        scorer: &mut Scorer,
        balance: &mut EnergyBalance,
        stack: &mut Vec<Proton>,
    ) {
        let Proton { p, d, e: t, .. } = at;
        let y = rng.uniform_open().powf(1.0 / LEADING_K);
        let e1 = y * t;
        let rest = t - e1;
        balance.neutrons_mev += REST_SHARES.neutrons * rest;
        balance.gammas_mev += REST_SHARES.gammas * rest;
        balance.binding_mev += REST_SHARES.binding * rest;
        // Deposited here: the local share, and the leading proton if too slow to transport.
        let mut local = REST_SHARES.local * rest;
        if e1 < SECONDARY_CUTOFF_MEV {
            local += e1;
        } else {
            let two_m = 2.0 * PROTON_MASS_MEV;
            let cos2 = (e1 * (t + two_m) / (t * (e1 + two_m))).clamp(0.0, 1.0);
            let theta = cos2.sqrt().acos();
            let phi = 2.0 * std::f64::consts::PI * rng.uniform_open();
            let (sin_phi, cos_phi) = phi.sin_cos();
            stack.push(Proton {
                p,
                d: deflect(d, theta * cos_phi, theta * sin_phi),
                e: e1,
                secondary: true,
            });
        }
        scorer.deposit_point(p, local);
        balance.deposited_mev += local;
    }
}

/// The leading proton's fraction `y` of a non-elastic event's energy has the density
/// `k y^(k−1)` on `(0, 1)` (drawn as `u^(1/k)`), with mean `k/(k + 1)` equal to the
/// budget's proton share: `k = 0.6/0.4 = 1.5`.
pub(crate) const LEADING_K: f64 = NUCLEAR_BUDGET.protons / (1.0 - NUCLEAR_BUDGET.protons);

/// How the energy the leading proton does not keep, `(1 − y) t`, is shared: each share is
/// the budget's divided by the mean of `1 − y` (0.4), so that the means over events are
/// [`NUCLEAR_BUDGET`]: neutrons 50%, gammas 5%, binding 25%, local 20% (and no protons).
pub(crate) const REST_SHARES: NuclearBudget = NuclearBudget {
    protons: 0.0,
    neutrons: NUCLEAR_BUDGET.neutrons / (1.0 - NUCLEAR_BUDGET.protons),
    gammas: NUCLEAR_BUDGET.gammas / (1.0 - NUCLEAR_BUDGET.protons),
    binding: NUCLEAR_BUDGET.binding / (1.0 - NUCLEAR_BUDGET.protons),
    local: NUCLEAR_BUDGET.local / (1.0 - NUCLEAR_BUDGET.protons),
};

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
    use super::*;

    #[test]
    fn non_elastic_events_keep_the_budget_on_average() {
        let input = match BuiltinInput::from_json(r#"{"beam": {"energy_mev": 100}}"#) {
            Ok(i) => i,
            Err(e) => panic!("{e}"),
        };
        let transport = Transport::new(&input);
        let mut scorer = Scorer::new(5.0, 10.0, 10, 5);
        let mut rng = Rng::new(3);
        let mut balance = EnergyBalance::default();
        let mut stack = Vec::new();
        let (n, t) = (200_000, 100.0);
        let (mut protons, mut forward, mut count) = (0.0, 0.0, 0);
        for _ in 0..n {
            stack.clear();
            let at = Proton {
                p: [0.0, 0.0, 1.0],
                d: [0.0, 0.0, 1.0],
                e: t,
                secondary: false,
            };
            transport.non_elastic(at, &mut rng, &mut scorer, &mut balance, &mut stack);
            for s in &stack {
                assert!(s.secondary && s.e >= SECONDARY_CUTOFF_MEV && s.e <= t);
                let norm = s.d.iter().map(|v| v * v).sum::<f64>();
                // (`deflect`'s small-angle series is good to ~1.4e-9.)
                assert!((norm - 1.0).abs() < 1e-8, "{norm} {:?} {}", s.d, s.e);
                // Elastic kinematics: the faster the proton, the smaller its angle.
                let cos2 = s.e * (t + 2.0 * PROTON_MASS_MEV) / (t * (s.e + 2.0 * PROTON_MASS_MEV));
                assert!((s.d[2] * s.d[2] - cos2).abs() < 1e-8);
                protons += s.e;
                forward += s.e * s.d[2];
                count += 1;
            }
        }
        // One leading proton per event, unless below 1 MeV (y < 0.01: P = 0.01^1.5 = 0.1%).
        assert!(count > n - n / 200 && count <= n, "{count} secondaries");
        let total = n as f64 * t;
        // Each event's parts add up to its energy.
        let parts = protons
            + balance.deposited_mev
            + balance.neutrons_mev
            + balance.gammas_mev
            + balance.binding_mev;
        assert!((parts / total - 1.0).abs() < 1e-12, "{parts} vs {total}");
        // The means match the budget. Per event the leading proton's fraction y has a
        // standard deviation of 0.26, so over 200 000 events the mean fractions are known to
        // ±0.0006: 0.005 is eight standard deviations. (The local share also holds the
        // leading protons below 1 MeV: y < 0.01, 0.1% of the events, 1e-5 t on average.)
        let b = NUCLEAR_BUDGET;
        for (name, got, want) in [
            ("protons", protons / total, b.protons),
            ("neutrons", balance.neutrons_mev / total, b.neutrons),
            ("gammas", balance.gammas_mev / total, b.gammas),
            ("binding", balance.binding_mev / total, b.binding),
            ("local", balance.deposited_mev / total, b.local),
        ] {
            assert!((got - want).abs() < 0.005, "{name}: {got} vs {want}");
        }
        // Mostly forward: the energy-weighted mean cosine is high.
        assert!(forward / protons > 0.8, "{}", forward / protons);
    }

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
