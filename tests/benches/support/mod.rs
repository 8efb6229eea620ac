//! What the cleanup and backup benches share: reproducible noise for the pages they seed.

use rand::{Rng as _, SeedableRng as _};

/// Reproducible random numbers (`rand`'s `StdRng`, seeded).
pub struct Noise(rand::rngs::StdRng);

impl Noise {
    /// A generator whose numbers depend only on `seed`.
    pub fn new(seed: u64) -> Self {
        Self(rand::rngs::StdRng::seed_from_u64(seed))
    }

    /// Uniform in (0, 1] (never 0, so that its logarithm is finite).
    pub fn unit(&mut self) -> f64 {
        1.0 - self.0.gen::<f64>()
    }

    /// Standard normal (Box–Muller, G. E. P. Box and M. E. Muller, Ann. Math. Statist. 29
    /// (1958) 610).
    #[allow(dead_code)] // used by the cleanup bench only
    pub fn gauss(&mut self) -> f64 {
        let (u, v) = (self.unit(), self.unit());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}
