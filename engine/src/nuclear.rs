//! What happens at a nuclear interaction of a proton in water: a non-elastic event on oxygen
//! (energy shared per [`NUCLEAR_BUDGET`]) or an elastic collision with a hydrogen nucleus
//! (two protons out, by two-body kinematics). Cross sections: [`super::xsection`].

use super::particle::{deflect, Proton};
use super::physics::{NuclearBudget, NUCLEAR_BUDGET, PROTON_MASS_MEV};
use super::rng::Rng;
use super::scoring::Scorer;
use super::EnergyBalance;

/// Secondary protons below this energy are deposited on the spot instead of transported,
/// MeV (the CSDA range of a 1 MeV proton in water is 25 µm, far below any bin).
pub(crate) const SECONDARY_CUTOFF_MEV: f64 = 1.0;

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

/// `cos²θ` of a proton that leaves an elastic collision of two protons (one at rest) with
/// kinetic energy `e` MeV out of `t` MeV: `cos²θ = e (t + 2m) / (t (e + 2m))` (relativistic
/// two-body kinematics of equal masses).
#[inline]
fn cos2_equal_masses(e: f64, t: f64) -> f64 {
    let two_m = 2.0 * PROTON_MASS_MEV;
    (e * (t + two_m) / (t * (e + two_m))).clamp(0.0, 1.0)
}

/// Pushes a proton of `e` MeV at `p` leaving at polar angle `acos(sqrt(cos2))` from `d`, at
/// azimuth `phi`, as a secondary; or, below [`SECONDARY_CUTOFF_MEV`], returns its energy to be
/// deposited on the spot (0 otherwise).
#[inline]
fn emit(at: &Proton, e: f64, cos2: f64, phi: f64, stack: &mut Vec<Proton>) -> f64 {
    if e < SECONDARY_CUTOFF_MEV {
        return e;
    }
    let theta = cos2.sqrt().acos();
    let (sin_phi, cos_phi) = phi.sin_cos();
    stack.push(Proton {
        p: at.p,
        d: deflect(at.d, theta * cos_phi, theta * sin_phi),
        e,
        secondary: true,
    });
    0.0
}

/// The nuclear events that end a proton's track: the protons out of them go on as
/// secondaries (both end the primary's track in the primary-fluence count).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Breakup {
    /// A non-elastic interaction on oxygen, shared so that the means over events are
    /// [`NUCLEAR_BUDGET`].
    ///
    /// The model (this engine's, kept simple): the leading proton of the intranuclear cascade
    /// keeps a fraction `y` of `t`, with density `k y^(k−1)` on `(0, 1)` and `k = 1.5`
    /// ([`LEADING_K`]), so that its mean, `k/(k + 1) = 0.6`, is the budget's proton share —
    /// from inelastic scattering to a low excited state (`y` near 1) to deep spallation (`y`
    /// near 0). The rest, `(1 − y) t`, goes in fixed proportions ([`REST_SHARES`]) to neutrons
    /// and gammas (which escape, not transported), to binding energy, and to heavy fragments,
    /// recoils and evaporation protons (deposited at `p`). The leading proton's polar angle
    /// follows from elastic kinematics of equal masses at `t` (quasi-free proton–nucleon
    /// scattering, the first step of Serber's 1947 cascade), `cos²θ = E (t + 2m) / (t (E +
    /// 2m))`: fast protons go forward, slow ones wide; its azimuth is uniform.
    NonElastic,
    /// An elastic collision with a hydrogen nucleus at rest: two protons leave, with `u t`
    /// and `(1 − u) t`, `u` uniform on (0, 1), at the angles of relativistic two-body
    /// kinematics ([`cos2_equal_masses`]), on opposite sides (azimuths `φ` and `φ + π`, `φ`
    /// uniform). The kinetic energy is conserved.
    ///
    /// `u` uniform is an angular distribution isotropic in the centre-of-mass frame (the
    /// recoil's energy is `−t_M/2m`, linear in the four-momentum transfer `t_M`), which the
    /// p–p elastic cross section nearly is from 10 to 300 MeV (its nuclear part is flat in
    /// `cos θ_cm` to ~10%; SAID partial-wave analysis; the same sampling as Fippel and
    /// Soukup, Med. Phys. 31 (2004) 2263, and the MOQUI code).
    PpElastic,
}

/// A [`Breakup`] of the proton `at` (kinetic energy `t` MeV at `p`, travelling along `d`):
/// the protons out of it are pushed on `stack` as secondaries, at the polar angles of elastic
/// kinematics of equal masses at `t` ([`cos2_equal_masses`]) and the azimuths `φ` (uniform)
/// and, for a second one, `φ + π`; a proton below [`SECONDARY_CUTOFF_MEV`] deposits its
/// energy at `p`, with the event's local share; the escaping and binding shares go to
/// `balance`.
pub(crate) fn break_up(
    kind: Breakup,
    at: Proton,
    rng: &mut Rng,
    scorer: &mut Scorer,
    balance: &mut EnergyBalance,
    stack: &mut Vec<Proton>,
) {
    let t = at.e;
    // The outgoing protons' energies, and what stays on the spot.
    let (out, mut local) = match kind {
        Breakup::NonElastic => {
            let e1 = rng.uniform_open().powf(1.0 / LEADING_K) * t;
            let rest = t - e1;
            balance.neutrons_mev += REST_SHARES.neutrons * rest;
            balance.gammas_mev += REST_SHARES.gammas * rest;
            balance.binding_mev += REST_SHARES.binding * rest;
            ([Some(e1), None], REST_SHARES.local * rest)
        }
        Breakup::PpElastic => {
            let u = rng.uniform_open();
            ([Some((1.0 - u) * t), Some(u * t)], 0.0)
        }
    };
    let phi = 2.0 * std::f64::consts::PI * rng.uniform_open();
    for (e, azimuth) in out.into_iter().zip([phi, phi + std::f64::consts::PI]) {
        if let Some(e) = e {
            local += emit(&at, e, cos2_equal_masses(e, t), azimuth, stack);
        }
    }
    if local > 0.0 {
        scorer.deposit_point(at.p, local);
        balance.deposited_mev += local;
    }
}

/// Oxygen-16 rest energy, MeV (AME 2020 atomic mass 15.9949146 u × 931.494 MeV/u, less eight
/// electrons).
const OXYGEN_MASS_MEV: f64 = 14_895.08;

/// Nuclear elastic scattering of the proton `at` (kinetic energy `t` MeV) on an oxygen
/// nucleus: the recoil takes `T_r` MeV, drawn from an exponential of mean
/// `0.65 exp(−0.0013 t) − 0.71 exp(−0.0177 t)` MeV (0.45 MeV at 100 MeV: the diffraction peak
/// of ¹⁶O; Fippel and Soukup, Med. Phys. 31 (2004) 2263, as in MOQUI), deposited on the spot;
/// the proton goes on with `t − T_r` at the angle of two-body kinematics,
/// `cos θ = (p₁² + p₃² − q²)/(2 p₁ p₃)` with `q² = T_r (T_r + 2M_O)`, uniform azimuth. It stays
/// what it was (a primary stays a primary). Returns the proton to go on with.
pub(crate) fn po_elastic(
    at: Proton,
    rng: &mut Rng,
    scorer: &mut Scorer,
    balance: &mut EnergyBalance,
) -> Proton {
    let t = at.e;
    let m = PROTON_MASS_MEV;
    let mean = (0.65 * (-0.0013 * t).exp() - 0.71 * (-0.0177 * t).exp()).max(1e-3);
    // Largest recoil energy, 2 M p² / (m² + M² + 2 M (t + m)).
    let p1_sq = t * (t + 2.0 * m);
    let m_o = OXYGEN_MASS_MEV;
    let t_max = 2.0 * m_o * p1_sq / (m * m + m_o * m_o + 2.0 * m_o * (t + m));
    let t_r = (-mean * rng.uniform_open().ln()).min(t_max).min(t);
    let e3 = t - t_r;
    let p3_sq = e3 * (e3 + 2.0 * m);
    let q_sq = t_r * (t_r + 2.0 * m_o);
    let cos = if p3_sq > 0.0 {
        ((p1_sq + p3_sq - q_sq) / (2.0 * (p1_sq * p3_sq).sqrt())).clamp(-1.0, 1.0)
    } else {
        1.0
    };
    let theta = cos.acos();
    let phi = 2.0 * std::f64::consts::PI * rng.uniform_open();
    let (sin_phi, cos_phi) = phi.sin_cos();
    scorer.deposit_point(at.p, t_r);
    balance.deposited_mev += t_r;
    Proton {
        d: deflect(at.d, theta * cos_phi, theta * sin_phi),
        e: e3,
        ..at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t: f64) -> Proton {
        Proton {
            p: [0.0, 0.0, 1.0],
            d: [0.0, 0.0, 1.0],
            e: t,
            secondary: false,
        }
    }

    /// Runs `n` breakups of `kind` of a proton of `t` MeV (random numbers from `seed`),
    /// calling `each` with each event's secondaries and the energy it deposited; returns the
    /// events' summed balance.
    fn events(
        kind: Breakup,
        t: f64,
        n: usize,
        seed: u64,
        mut each: impl FnMut(&[Proton], f64),
    ) -> EnergyBalance {
        let mut scorer = Scorer::new(5.0, 10.0, 10, 5);
        let mut rng = Rng::new(seed);
        let mut balance = EnergyBalance::default();
        let mut stack = Vec::new();
        for _ in 0..n {
            stack.clear();
            let before = balance.deposited_mev;
            break_up(kind, at(t), &mut rng, &mut scorer, &mut balance, &mut stack);
            each(&stack, balance.deposited_mev - before);
        }
        balance
    }

    #[test]
    fn non_elastic_events_keep_the_budget_on_average() {
        let (n, t) = (200_000, 100.0);
        let (mut protons, mut forward, mut count) = (0.0, 0.0, 0);
        let balance = events(Breakup::NonElastic, t, n, 3, |stack, _| {
            for s in stack {
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
        });
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
    fn pp_elastic_conserves_energy_and_momentum() {
        let m = PROTON_MASS_MEV;
        let momentum = |e: f64| (e * (e + 2.0 * m)).sqrt();
        let (n, t) = (20_000, 150.0);
        let mut slow = 0.0;
        events(Breakup::PpElastic, t, n, 5, |stack, local| {
            // Kinetic energy: what leaves plus what stays adds up to t.
            let out: f64 = stack.iter().map(|s| s.e).sum::<f64>() + local;
            assert!((out / t - 1.0).abs() < 1e-12, "{out} vs {t}");
            assert!(stack.iter().all(|s| s.secondary));
            if stack.len() == 2 {
                // Momentum: the two protons' momenta add up to the incoming one (along z).
                let mut p = [0.0; 3];
                for s in stack {
                    for (pk, dk) in p.iter_mut().zip(s.d) {
                        *pk += momentum(s.e) * dk;
                    }
                }
                let p0 = momentum(t);
                assert!((p[2] / p0 - 1.0).abs() < 1e-6, "{p:?} vs {p0}");
                assert!(p[0].abs() < 1e-6 * p0 && p[1].abs() < 1e-6 * p0, "{p:?}");
                // The opening angle is a little under 90° (relativistic equal masses).
                let c = (0..3).map(|k| stack[0].d[k] * stack[1].d[k]).sum::<f64>();
                assert!(c > -1e-9 && c < 0.05, "cos opening {c}");
            }
            // The other proton's share, transported or deposited.
            slow += t - stack.iter().map(|s| s.e).fold(0.0, f64::max);
        });
        // u uniform: the slower proton has t/4 on average (±0.3% here).
        let mean_slow = slow / n as f64;
        assert!((mean_slow / (t / 4.0) - 1.0).abs() < 0.02, "{mean_slow}");
    }

    #[test]
    fn po_elastic_recoils_are_small_and_kinematics_hold() {
        let mut scorer = Scorer::new(5.0, 10.0, 10, 5);
        let mut rng = Rng::new(11);
        let mut balance = EnergyBalance::default();
        let m = PROTON_MASS_MEV;
        let (n, t) = (50_000, 100.0);
        let (mut recoil, mut theta2) = (0.0, 0.0);
        for _ in 0..n {
            let before = balance.deposited_mev;
            let out = po_elastic(at(t), &mut rng, &mut scorer, &mut balance);
            let t_r = t - out.e;
            // Energy: the recoil's share is deposited, the rest goes on with the proton.
            let deposited = balance.deposited_mev - before;
            assert!(
                (deposited - t_r).abs() < 1e-9 && t_r >= 0.0,
                "{deposited} vs {t_r}"
            );
            assert!(!out.secondary && out.p == [0.0, 0.0, 1.0]);
            // Momentum transfer: q² = p₁² + p₃² − 2 p₁ p₃ cos θ equals T_r (T_r + 2 M_O).
            let (p1, p3) = (
                (t * (t + 2.0 * m)).sqrt(),
                (out.e * (out.e + 2.0 * m)).sqrt(),
            );
            let q2 = p1 * p1 + p3 * p3 - 2.0 * p1 * p3 * out.d[2];
            let want = t_r * (t_r + 2.0 * OXYGEN_MASS_MEV);
            assert!((q2 - want).abs() < 1e-6 * want.max(1.0), "{q2} vs {want}");
            recoil += t_r;
            theta2 += 1.0 - out.d[2] * out.d[2];
        }
        // Mean recoil 0.65 e^(−0.13) − 0.71 e^(−1.77) = 0.450 MeV (±0.5% here), so the
        // proton turns by ~15° (sqrt(2 M_O T_r)/p at the mean): a diffraction-peak angle.
        let mean = recoil / n as f64;
        assert!((mean / 0.4497 - 1.0).abs() < 0.02, "{mean} MeV");
        let rms = (theta2 / n as f64).sqrt().asin().to_degrees();
        assert!(rms > 10.0 && rms < 25.0, "rms angle {rms}°");
    }
}
