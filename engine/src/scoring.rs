//! Scoring: energy deposited and track length, binned in z and in r–z over the phantom
//! cylinder, and their conversion to per-primary result pages.

use super::physics::WATER_DENSITY;
use super::{Axis, Estimator, Page};

/// A point in the phantom, cm.
pub(crate) type Point = [f64; 3];

/// Accumulators over one run.
#[derive(Debug, Clone)]
pub(crate) struct Scorer {
    nz: usize,
    nr: usize,
    depth: f64,
    radius: f64,
    radius2: f64,
    hz: f64,
    inv_hz: f64,
    inv_hr: f64,
    /// Energy deposited per z bin, MeV.
    edep_z: Vec<f64>,
    /// Energy deposited per (z, r) bin, MeV, index `iz * nr + ir`.
    edep_rz: Vec<f64>,
    /// Primary track length per z bin, cm.
    track_z: Vec<f64>,
    /// Secondary-proton track length per z bin, cm.
    track_secondary_z: Vec<f64>,
    /// Energy handed to the scorer that fell in no bin, MeV (zero unless a position is not a
    /// number: every point inside the phantom has a bin).
    unscored: f64,
}

impl Scorer {
    /// Empty accumulators for a cylinder of `radius` × `depth` cm with `nz` × `nr` bins.
    pub(crate) fn new(radius: f64, depth: f64, nz: usize, nr: usize) -> Self {
        let nz = nz.max(1);
        let nr = nr.max(1);
        let hz = depth / nz as f64;
        let hr = radius / nr as f64;
        Self {
            nz,
            nr,
            depth,
            radius,
            radius2: radius * radius,
            hz,
            inv_hz: 1.0 / hz,
            inv_hr: 1.0 / hr,
            edep_z: vec![0.0; nz],
            edep_rz: vec![0.0; nz * nr],
            track_z: vec![0.0; nz],
            track_secondary_z: vec![0.0; nz],
            unscored: 0.0,
        }
    }

    /// Whether the point `(x, y)` on the entrance face is inside the cylinder.
    #[inline]
    pub(crate) fn inside_radius(&self, x: f64, y: f64) -> bool {
        x * x + y * y < self.radius2
    }

    #[inline]
    fn z_bin(&self, z: f64) -> usize {
        // `as` saturates (negative and NaN give 0).
        ((z * self.inv_hz) as usize).min(self.nz - 1)
    }

    #[inline]
    fn r_bin(&self, x: f64, y: f64) -> usize {
        (((x * x + y * y).sqrt() * self.inv_hr) as usize).min(self.nr - 1)
    }

    #[inline]
    fn add(&mut self, iz: usize, ir: usize, de: f64, len: f64, secondary: bool) {
        match (
            self.edep_z.get_mut(iz),
            self.edep_rz.get_mut(iz * self.nr + ir),
        ) {
            (Some(a), Some(b)) => {
                *a += de;
                *b += de;
            }
            _ => self.unscored += de,
        }
        let track = if secondary {
            &mut self.track_secondary_z
        } else {
            &mut self.track_z
        };
        if let Some(v) = track.get_mut(iz) {
            *v += len;
        }
    }

    /// Energy that fell in no bin, MeV (for the energy balance).
    pub(crate) fn unscored_mev(&self) -> f64 {
        self.unscored
    }

    /// Deposits `de` MeV at a point (a nuclear interaction's local share).
    #[inline]
    pub(crate) fn deposit_point(&mut self, p: Point, de: f64) {
        let iz = self.z_bin(p[2]);
        let ir = self.r_bin(p[0], p[1]);
        self.add(iz, ir, de, 0.0, false);
    }

    /// Scores the straight segment `p0 → p1` (starting inside the phantom) of a primary or
    /// `secondary` proton, along which `de` MeV is deposited uniformly. The part beyond the
    /// phantom is cut off, with its share of `de`. Returns the fraction of the segment inside
    /// the phantom: below 1 when the segment leaves it (the proton escapes).
    #[inline]
    pub(crate) fn segment(&mut self, p0: Point, p1: Point, de: f64, secondary: bool) -> f64 {
        let [x0, y0, z0] = p0;
        let (dx, dy, dz) = (p1[0] - x0, p1[1] - y0, p1[2] - z0);
        let mut t_end = 1.0_f64;
        if p1[2] > self.depth {
            t_end = (self.depth - z0) / dz;
        } else if p1[2] < 0.0 {
            t_end = -z0 / dz;
        }
        if p1[0] * p1[0] + p1[1] * p1[1] > self.radius2 {
            // |(x0, y0) + t (dx, dy)| = R, the root in (0, 1].
            let a = dx * dx + dy * dy;
            let b = x0 * dx + y0 * dy;
            let c = x0 * x0 + y0 * y0 - self.radius2;
            let disc = (b * b - a * c).max(0.0);
            if a > 0.0 {
                t_end = t_end.min((-b + disc.sqrt()) / a);
            }
        }
        let t_end = t_end.clamp(0.0, 1.0);
        let len = (dx * dx + dy * dy + dz * dz).sqrt();
        let iz0 = self.z_bin(z0);
        let iz1 = self.z_bin(z0 + t_end * dz);
        // The r bin of each piece: when both ends of the (clipped) chord lie in the same r
        // bin, so does all of it, up to the chord's sagitta in r (far below a bin width, as
        // a step's lateral extent is tiny); otherwise it is computed piece by piece.
        let ir0 = self.r_bin(x0, y0);
        let ir1 = self.r_bin(x0 + t_end * dx, y0 + t_end * dy);
        if iz0 == iz1 {
            let ir = if ir0 == ir1 {
                ir0
            } else {
                let tm = 0.5 * t_end;
                self.r_bin(x0 + tm * dx, y0 + tm * dy)
            };
            self.add(iz0, ir, de * t_end, len * t_end, secondary);
        } else {
            let inv_dz = 1.0 / dz;
            let mut ta = 0.0_f64;
            let forward = iz1 > iz0;
            let mut k = iz0;
            loop {
                let tb = if k == iz1 {
                    t_end
                } else {
                    let boundary = if forward { k + 1 } else { k } as f64 * self.hz;
                    ((boundary - z0) * inv_dz).max(ta).min(t_end)
                };
                let f = tb - ta;
                let ir = if ir0 == ir1 {
                    ir0
                } else {
                    let tm = 0.5 * (ta + tb);
                    self.r_bin(x0 + tm * dx, y0 + tm * dy)
                };
                self.add(k, ir, de * f, len * f, secondary);
                if k == iz1 {
                    break;
                }
                ta = tb;
                if forward {
                    k += 1;
                } else {
                    k -= 1;
                }
            }
        }
        t_end
    }

    /// Turns the sums into per-primary estimators: `depth_dose` (MeV/g per primary, averaged
    /// over the phantom cross-section), `dose_rz` (MeV/g per primary, annulus by annulus),
    /// `fluence` (primary protons) and `secondary_fluence` (secondary protons), both cm⁻² per
    /// primary averaged over the phantom cross-section.
    pub(crate) fn into_estimators(self, primaries: u64) -> Vec<Estimator> {
        let n = primaries.max(1) as f64;
        let area = std::f64::consts::PI * self.radius2;
        let slab_mass = WATER_DENSITY * area * self.hz; // g
        let slab_volume = area * self.hz; // cm³
        let z_axis = Axis::from_zero_cm("z", self.nz, self.depth);
        let r_axis = Axis::from_zero_cm("r", self.nr, self.radius);
        let depth_dose: Vec<f64> = self.edep_z.iter().map(|e| e / slab_mass / n).collect();
        let hr = self.radius / self.nr as f64;
        let ring_mass: Vec<f64> = (0..self.nr)
            .map(|j| {
                let (r0, r1) = (j as f64 * hr, (j + 1) as f64 * hr);
                WATER_DENSITY * std::f64::consts::PI * (r1 * r1 - r0 * r0) * self.hz
            })
            .collect();
        let dose_rz: Vec<f64> = self
            .edep_rz
            .iter()
            .enumerate()
            .map(|(i, e)| e / ring_mass[i % self.nr] / n)
            .collect();
        let fluence: Vec<f64> = self.track_z.iter().map(|l| l / slab_volume / n).collect();
        let secondary: Vec<f64> = self
            .track_secondary_z
            .iter()
            .map(|l| l / slab_volume / n)
            .collect();
        vec![
            Estimator {
                name: "depth_dose".to_owned(),
                pages: vec![Page {
                    name: "dose".to_owned(),
                    dimension: 1,
                    axes: vec![z_axis.clone()],
                    value_name: "dose".to_owned(),
                    value_unit: "MeV/g/primary".to_owned(),
                    values: depth_dose,
                }],
            },
            Estimator {
                name: "dose_rz".to_owned(),
                pages: vec![Page {
                    name: "dose".to_owned(),
                    dimension: 2,
                    axes: vec![z_axis.clone(), r_axis],
                    value_name: "dose".to_owned(),
                    value_unit: "MeV/g/primary".to_owned(),
                    values: dose_rz,
                }],
            },
            Estimator {
                name: "fluence".to_owned(),
                pages: vec![Page {
                    name: "fluence".to_owned(),
                    dimension: 1,
                    axes: vec![z_axis.clone()],
                    value_name: "fluence".to_owned(),
                    value_unit: "cm^-2/primary".to_owned(),
                    values: fluence,
                }],
            },
            Estimator {
                name: "secondary_fluence".to_owned(),
                pages: vec![Page {
                    name: "fluence".to_owned(),
                    dimension: 1,
                    axes: vec![z_axis],
                    value_name: "fluence".to_owned(),
                    value_unit: "cm^-2/primary".to_owned(),
                    values: secondary,
                }],
            },
        ]
    }
}
