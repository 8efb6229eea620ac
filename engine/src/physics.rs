//! Physics of protons in liquid water: Bethe stopping power, CSDA range and its inverse as
//! fast lookup tables, Bohr energy-loss straggling and the energy budget of a non-elastic
//! nuclear event (its cross section: `xsection`; multiple Coulomb scattering: `coulomb`).

/// Proton rest energy, MeV (CODATA 2018).
pub(crate) const PROTON_MASS_MEV: f64 = 938.272_088_16;
/// Electron rest energy, MeV.
const ELECTRON_MASS_MEV: f64 = 0.510_998_95;
/// `K = 4π N_A r_e² m_e c²`, MeV cm²/mol.
const BETHE_K: f64 = 0.307_075;
/// Z/A of liquid water, mol/g.
const WATER_Z_OVER_A: f64 = 0.555_087;
/// Mean excitation energy of liquid water, MeV (75 eV, as PSTAR / ICRU 49).
const WATER_I_MEV: f64 = 75.0e-6;
/// Density of water, g/cm³.
pub(crate) const WATER_DENSITY: f64 = 1.0;
/// Bohr straggling constant `4π N_A r_e² (m_e c²)²`, MeV² cm²/mol.
const BOHR_CONSTANT: f64 = 0.156_9;
/// Bohr energy-loss variance per cm of water, before the relativistic factor, MeV²/cm.
pub(crate) const BOHR_VARIANCE_PER_CM: f64 = BOHR_CONSTANT * WATER_Z_OVER_A * WATER_DENSITY;

/// Below this energy the uncorrected Bethe formula is no longer trusted; the stopping power
/// is continued as `S(E_low)·sqrt(E_low/E)`, which makes the residual range `∝ E^1.5`.
/// (The range of a 1 MeV proton in water is about 25 µm, so this barely matters.)
const BETHE_LOW_MEV: f64 = 1.0;
/// Highest energy the tables cover, MeV (the beam is at most 250 MeV, plus six times its
/// largest allowed spread).
pub(crate) const TABLE_MAX_MEV: f64 = 400.0;
/// Points in each lookup table.
const TABLE_POINTS: usize = 4096;

/// Energy budget of non-elastic proton–oxygen events, as mean fractions of the proton's
/// kinetic energy `t` at the interaction.
///
/// Sources: Seltzer, *An assessment of the role of charged secondaries from nonelastic nuclear
/// interactions by therapy proton beams in water*, NISTIR 5221 (1993), and Paganetti,
/// *Nuclear interactions in proton therapy dose calculations: role of secondary particles*,
/// Phys. Med. Biol. 47 (2002) 747, as commonly quoted for 100–250 MeV protons in water:
/// about 60% of the energy of non-elastic events goes to secondary protons, about 20% to
/// neutrons and gammas (which mostly leave a phantom of this size), and the rest to heavier
/// charged fragments (d, t, ³He, α) and recoil nuclei, which stop within a millimetre or so,
/// and to the binding energy of the emitted nucleons and clusters. Used here: protons 60%,
/// neutrons 20%, gammas 2% (a few MeV of de-excitation gammas per event, cf. ICRU Report
/// 63's photon yields), binding 10% (an event that emits ~3 nucleons pays ~8 MeV of
/// separation energy for each, ~25 MeV of a ~100 MeV event at the top, less for the many
/// peripheral events), local 8%. The split of the last 40% between neutrons, gammas, binding
/// and local deposition is this engine's choice within those figures; it sets how much
/// energy stays in the phantom, and was checked against the energy deposited in the
/// SHIELD-HIT12A reference (+0.3%, with the ICRU 63 cross section and the elastic processes
/// of `xsection`; `BENCHMARKS.md`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct NuclearBudget {
    /// Carried by the transported secondary (leading cascade) proton.
    pub(crate) protons: f64,
    /// Carried away by neutrons (not transported: they leave the phantom).
    pub(crate) neutrons: f64,
    /// Carried away by prompt gammas (not transported).
    pub(crate) gammas: f64,
    /// Spent on the binding energy of the emitted nucleons (no particle carries it).
    pub(crate) binding: f64,
    /// Deposited on the spot by heavy fragments, recoils and slow evaporation protons.
    pub(crate) local: f64,
}

/// The budget the transport uses (the fractions sum to 1).
pub(crate) const NUCLEAR_BUDGET: NuclearBudget = NuclearBudget {
    protons: 0.60,
    neutrons: 0.20,
    gammas: 0.02,
    binding: 0.10,
    local: 0.08,
};

/// Electronic mass stopping power of water from the Bethe formula (no shell, Barkas, Bloch or
/// density-effect corrections; the density effect is zero below ~400 MeV in water),
/// MeV cm²/g.
pub(crate) fn bethe_mass_stopping_power(e_mev: f64) -> f64 {
    let e = e_mev.max(BETHE_LOW_MEV);
    let s = bethe_uncorrected(e);
    if e_mev >= BETHE_LOW_MEV {
        s
    } else {
        s * (BETHE_LOW_MEV / e_mev.max(1e-9)).sqrt()
    }
}

fn bethe_uncorrected(e: f64) -> f64 {
    let gamma = 1.0 + e / PROTON_MASS_MEV;
    let beta2 = 1.0 - 1.0 / (gamma * gamma);
    let bg2 = beta2 * gamma * gamma;
    let ratio = ELECTRON_MASS_MEV / PROTON_MASS_MEV;
    let t_max = 2.0 * ELECTRON_MASS_MEV * bg2 / (1.0 + 2.0 * gamma * ratio + ratio * ratio);
    let log_arg = 2.0 * ELECTRON_MASS_MEV * bg2 * t_max / (WATER_I_MEV * WATER_I_MEV);
    BETHE_K * WATER_Z_OVER_A / beta2 * (0.5 * log_arg.ln() - beta2)
}

/// Natural logarithm to about 1e-7 relative, for the distances to hard Coulomb deflections
/// (the Gaussian sampler uses the exact `ln`). Non-positive and non-finite inputs give a very
/// negative number rather than NaN.
#[inline]
pub(crate) fn fast_ln(x: f64) -> f64 {
    if !(x > 0.0 && x.is_finite()) {
        return -745.0;
    }
    let bits = x.to_bits();
    // Split x = 2^k · m with m in [sqrt(1/2), sqrt(2)).
    let mut k = ((bits >> 52) & 0x7ff) as i64 - 1023;
    let mut m = f64::from_bits((bits & 0x000f_ffff_ffff_ffff) | 0x3ff0_0000_0000_0000);
    if k == -1023 {
        // Subnormal: not reachable for the arguments used here.
        return x.ln();
    }
    if m > std::f64::consts::SQRT_2 {
        m *= 0.5;
        k += 1;
    }
    // ln m = 2 atanh z, z = (m - 1)/(m + 1), |z| < 0.172.
    let z = (m - 1.0) / (m + 1.0);
    let z2 = z * z;
    let series = 1.0 + z2 * (1.0 / 3.0 + z2 * (1.0 / 5.0 + z2 * (1.0 / 7.0 + z2 / 9.0)));
    k as f64 * std::f64::consts::LN_2 + 2.0 * z * series
}

/// CSDA range `R(E)` and its inverse `E(R)` for protons in water, as tables with linear
/// interpolation in `sqrt(E)` and `sqrt(R)` (both nearly linear in those variables, and the
/// square root is cheap).
#[derive(Debug, Clone)]
pub(crate) struct RangeTables {
    /// `R` at `E = (i·du)²`, cm.
    range_of_u: Vec<f64>,
    inv_du: f64,
    /// `E` at `R = (j·dv)²`, MeV.
    energy_of_v: Vec<f64>,
    inv_dv: f64,
    /// Range at `TABLE_MAX_MEV`, cm.
    max_range: f64,
}

impl RangeTables {
    /// Builds the tables by integrating `1/S` (Simpson's rule on each table interval).
    pub(crate) fn new() -> Self {
        let n = TABLE_POINTS;
        let u_max = TABLE_MAX_MEV.sqrt();
        let du = u_max / (n - 1) as f64;
        let linear_s = |e: f64| bethe_mass_stopping_power(e) * WATER_DENSITY;
        // Closed form below E_low: S = S_low sqrt(E_low/E)  =>  R = (2/3) E^1.5 / (S_low sqrt(E_low)).
        let s_low = linear_s(BETHE_LOW_MEV);
        let range_low = |e: f64| 2.0 / 3.0 * e * (e / BETHE_LOW_MEV).sqrt() / s_low;
        let mut range_of_u = Vec::with_capacity(n);
        let mut prev_e = 0.0_f64;
        let mut prev_r = 0.0_f64;
        for i in 0..n {
            let e = (i as f64 * du).powi(2);
            let r = if e <= BETHE_LOW_MEV {
                range_low(e)
            } else {
                let a = prev_e.max(BETHE_LOW_MEV);
                let base = if prev_e < BETHE_LOW_MEV {
                    range_low(BETHE_LOW_MEV)
                } else {
                    prev_r
                };
                base + simpson(|x| 1.0 / linear_s(x), a, e, 16)
            };
            range_of_u.push(r);
            prev_e = e;
            prev_r = r;
        }
        let max_range = range_of_u[n - 1];
        let v_max = max_range.sqrt();
        let dv = v_max / (n - 1) as f64;
        let mut energy_of_v = Vec::with_capacity(n);
        let mut seg = 0usize; // segment of range_of_u holding the current R
        for j in 0..n {
            let r = ((j as f64) * dv).powi(2).min(max_range);
            while seg + 2 < n && range_of_u[seg + 1] < r {
                seg += 1;
            }
            let (r0, r1) = (range_of_u[seg], range_of_u[seg + 1]);
            let f = if r1 > r0 {
                ((r - r0) / (r1 - r0)).clamp(0.0, 1.0)
            } else {
                0.0
            };
            let u = (seg as f64 + f) * du;
            energy_of_v.push(u * u);
        }
        Self {
            range_of_u,
            inv_du: 1.0 / du,
            energy_of_v,
            inv_dv: 1.0 / dv,
            max_range,
        }
    }

    /// Residual CSDA range of a proton of kinetic energy `e` MeV, cm.
    #[inline]
    pub(crate) fn range(&self, e: f64) -> f64 {
        lerp_table(&self.range_of_u, e.max(0.0).sqrt() * self.inv_du)
    }

    /// Kinetic energy of a proton whose residual CSDA range is `r` cm, MeV.
    #[inline]
    pub(crate) fn energy(&self, r: f64) -> f64 {
        lerp_table(
            &self.energy_of_v,
            r.clamp(0.0, self.max_range).sqrt() * self.inv_dv,
        )
    }
}

/// Linear interpolation in a uniformly spaced table at fractional index `x` (clamped).
#[inline]
fn lerp_table(t: &[f64], x: f64) -> f64 {
    let last = t.len().saturating_sub(2);
    // `as` saturates: negative or NaN gives 0, huge gives usize::MAX.
    let i = (x as usize).min(last);
    let f = (x - i as f64).clamp(0.0, 1.0);
    match (t.get(i), t.get(i + 1)) {
        (Some(a), Some(b)) => a + f * (b - a),
        (Some(a), None) => *a,
        _ => 0.0,
    }
}

/// Linear interpolation, component by component, in a table of rows uniformly spaced at
/// fractional index `x` (clamped to the table; all zeros for a table of fewer than two rows).
#[inline]
pub(crate) fn lerp_rows<const N: usize>(rows: &[[f64; N]], x: f64) -> [f64; N] {
    let last = rows.len().saturating_sub(2);
    // `as` saturates: negative or NaN gives 0, huge gives usize::MAX.
    let i = (x as usize).min(last);
    let f = (x - i as f64).clamp(0.0, 1.0);
    match (rows.get(i), rows.get(i + 1)) {
        (Some(r0), Some(r1)) => std::array::from_fn(|k| r0[k] + f * (r1[k] - r0[k])),
        _ => [0.0; N],
    }
}

/// Composite Simpson integral of `f` over `[a, b]` with `n` (even) intervals.
fn simpson(f: impl Fn(f64) -> f64, a: f64, b: f64, n: usize) -> f64 {
    let h = (b - a) / n as f64;
    let mut sum = f(a) + f(b);
    for k in 1..n {
        let w = if k % 2 == 1 { 4.0 } else { 2.0 };
        sum += w * f(a + k as f64 * h);
    }
    sum * h / 3.0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// PSTAR CSDA ranges in liquid water, g/cm².
    const PSTAR: [(f64, f64); 9] = [
        (10.0, 0.1230),
        (20.0, 0.4260),
        (50.0, 2.227),
        (70.0, 4.080),
        (100.0, 7.718),
        (150.0, 15.77),
        (200.0, 25.96),
        (225.0, 31.74),
        (250.0, 37.94),
    ];

    #[test]
    fn fast_ln_is_accurate() {
        for x in [
            1e-6, 0.01, 0.3, 0.7, 0.72, 1.0, 1.4, 1.42, 2.0, 3.0, 36.08, 1e5,
        ] {
            let (a, b) = (fast_ln(x), x.ln());
            assert!(
                (a - b).abs() <= 1e-7 * b.abs().max(1.0),
                "ln {x}: {a} vs {b}"
            );
        }
        assert!(fast_ln(0.0) < -700.0 && fast_ln(-1.0) < -700.0 && fast_ln(f64::NAN) < -700.0);
    }

    #[test]
    fn bethe_stopping_power_near_pstar() {
        // PSTAR total stopping powers, MeV cm²/g.
        for (e, s) in [
            (10.0, 45.67),
            (100.0, 7.289),
            (150.0, 5.445),
            (250.0, 3.911),
        ] {
            let b = bethe_mass_stopping_power(e);
            assert!(
                (b / s - 1.0).abs() < 0.01,
                "{e} MeV: Bethe {b} vs PSTAR {s}"
            );
        }
    }

    #[test]
    fn csda_range_tables_match_pstar() {
        let t = RangeTables::new();
        for (e, r) in PSTAR {
            let ours = t.range(e);
            // Without shell corrections Bethe is ~1% high at 10 MeV; above 50 MeV it is ~0.2%.
            let tol = if e >= 50.0 { 0.003 } else { 0.015 };
            assert!((ours / r - 1.0).abs() < tol, "{e} MeV: {ours} vs PSTAR {r}");
            let back = t.energy(ours);
            assert!(
                (back / e - 1.0).abs() < 1e-4,
                "{e} MeV -> {ours} cm -> {back} MeV"
            );
        }
    }
}
