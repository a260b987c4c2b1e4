//! A tiny seeded pseudo-random generator (SplitMix64).
//!
//! The algorithms need reproducible randomness (k-means++ seeding) and the
//! tests and benchmarks need reproducible synthetic weights; a 64-bit
//! SplitMix generator gives both without an extra dependency. It is not
//! cryptographic.

/// SplitMix64 (Steele, Lea & Flood 2014): one 64-bit state word, a fixed
/// increment and a strong output mix. The same seed always yields the same
/// sequence on every platform.
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator whose sequence is determined by `seed`.
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The next 64 uniformly distributed bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform double in `[0, 1)` with 53 random bits.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// A uniform integer in `0..n`; `n` must be nonzero. Uses the
    /// multiply-high reduction, whose bias (below `n / 2^64`) is irrelevant
    /// here.
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// A standard normal sample (Box–Muller, one of the pair), for synthetic
    /// weight distributions in tests and benchmarks.
    pub fn gaussian(&mut self) -> f64 {
        // 1 - u lies in (0, 1], so the logarithm is finite.
        let radius = (-2.0 * (1.0 - self.next_f64()).ln()).sqrt();
        let angle = std::f64::consts::TAU * self.next_f64();
        radius * angle.cos()
    }
}
