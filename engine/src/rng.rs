//! Pseudo-random numbers: xoshiro256++ (Blackman & Vigna) seeded through splitmix64, with
//! uniform and Gaussian deviates. Small, fast, and bit-reproducible on every platform.

/// The splitmix64 finaliser: a bijection on `u64` with good avalanche.
#[inline]
pub(crate) fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// One step of the splitmix64 generator (used only to expand a seed).
#[inline]
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    mix64(*state)
}

/// 2^-53, the spacing of the uniform deviates.
const INV_2_53: f64 = 1.0 / 9_007_199_254_740_992.0;

/// xoshiro256++ with a cached second Gaussian deviate (Marsaglia's polar method).
#[derive(Debug, Clone)]
pub struct Rng {
    s: [u64; 4],
    spare: f64,
    has_spare: bool,
}

impl Rng {
    /// A generator whose state is four splitmix64 outputs of `seed` (never all zero, because
    /// the splitmix64 outputs of four distinct states are distinct).
    pub fn new(seed: u64) -> Self {
        let mut sm = seed;
        let s = [
            splitmix64(&mut sm),
            splitmix64(&mut sm),
            splitmix64(&mut sm),
            splitmix64(&mut sm),
        ];
        Self::from_state(s)
    }

    /// A generator with this raw state (tests use the reference vectors).
    pub(crate) fn from_state(s: [u64; 4]) -> Self {
        Self {
            s,
            spare: 0.0,
            has_spare: false,
        }
    }

    /// The next 64 random bits.
    #[inline]
    pub(crate) fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform on the open interval (0, 1): safe to take the logarithm of.
    #[inline]
    pub(crate) fn uniform_open(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) * INV_2_53
    }

    /// Standard normal deviate (Marsaglia's polar method; the second value of each pair is
    /// kept for the next call).
    #[inline]
    pub fn gaussian(&mut self) -> f64 {
        if self.has_spare {
            self.has_spare = false;
            return self.spare;
        }
        loop {
            let u = 2.0 * self.uniform_open() - 1.0;
            let v = 2.0 * self.uniform_open() - 1.0;
            let s = u * u + v * v;
            if s < 1.0 && s > 0.0 {
                let f = (-2.0 * s.ln() / s).sqrt();
                self.spare = v * f;
                self.has_spare = true;
                return u * f;
            }
        }
    }
}
