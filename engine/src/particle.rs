//! A proton on its way (position, direction, energy) and turning its direction: shared by
//! the transport and the nuclear events, below both.

use super::scoring::Point;

/// A proton waiting to be transported.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Proton {
    /// Position, cm.
    pub(crate) p: Point,
    /// Unit direction.
    pub(crate) d: Point,
    /// Kinetic energy, MeV.
    pub(crate) e: f64,
    /// `false` for the primary, `true` for the protons out of nuclear events (and theirs).
    pub(crate) secondary: bool,
}

/// Turns the unit vector `d` by the projected angles `a` and `b` (rad) about two axes
/// perpendicular to it: polar angle `θ = sqrt(a² + b²)`, azimuth `atan2(b, a)`.
#[inline]
pub(crate) fn deflect(d: Point, a: f64, b: f64) -> Point {
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
