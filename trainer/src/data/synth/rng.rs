//! Deterministic random numbers for the generator.
//!
//! The generator uses its own small PRNG (xoshiro256++ seeded through
//! SplitMix64) rather than `rand`'s `StdRng`, whose algorithm may change between
//! `rand` releases: a dataset must stay byte-identical for a given seed.
//! Seeds for splits and images are derived by hashing, so every image can be
//! generated independently (and in parallel) from `(seed, split, index)`.

/// SplitMix64 step: advances `state` and returns a well-mixed output.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Hash two words into one (used to derive independent seeds).
pub(crate) fn mix(a: u64, b: u64) -> u64 {
    let mut s = a ^ b.wrapping_mul(0xD6E8_FEB8_6659_FD93);
    let x = splitmix64(&mut s);
    let mut t = x ^ b;
    splitmix64(&mut t)
}

/// xoshiro256++ generator.
#[derive(Debug, Clone)]
pub(crate) struct Rng {
    s: [u64; 4],
}

impl Rng {
    /// A generator seeded from one word.
    pub(crate) fn new(seed: u64) -> Self {
        let mut sm = seed;
        let s = [
            splitmix64(&mut sm),
            splitmix64(&mut sm),
            splitmix64(&mut sm),
            splitmix64(&mut sm),
        ];
        Self { s }
    }

    /// Next 64 random bits.
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

    /// Uniform in `[0, 1)`.
    pub(crate) fn f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 * (1.0 / (1u64 << 24) as f32)
    }

    /// Uniform in `[lo, hi)`.
    pub(crate) fn range(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.f32()
    }

    /// Log-uniform in `[lo, hi)` (both > 0).
    pub(crate) fn log_range(&mut self, lo: f32, hi: f32) -> f32 {
        (lo.ln() + (hi.ln() - lo.ln()) * self.f32()).exp()
    }

    /// Uniform integer in `0..n` (`n > 0`).
    pub(crate) fn below(&mut self, n: u32) -> u32 {
        (((self.next_u64() >> 32) * u64::from(n)) >> 32) as u32
    }

    /// Uniform integer in `lo..=hi`.
    pub(crate) fn int_in(&mut self, lo: u32, hi: u32) -> u32 {
        lo + self.below(hi - lo + 1)
    }

    /// `true` with probability `p`.
    pub(crate) fn chance(&mut self, p: f32) -> bool {
        self.f32() < p
    }

    /// Uniform angle in `[0, 2π)`.
    pub(crate) fn angle(&mut self) -> f32 {
        self.range(0.0, std::f32::consts::TAU)
    }

    /// Approximately standard-normal (Irwin–Hall sum of four uniforms): cheap,
    /// bounded to ±3.46σ, good enough for sensor noise and jitter.
    pub(crate) fn normal(&mut self) -> f32 {
        let r = self.next_u64();
        let sum = (r & 0xFFFF) + ((r >> 16) & 0xFFFF) + ((r >> 32) & 0xFFFF) + (r >> 48);
        (sum as f32 * (1.0 / 65536.0) - 2.0) * 1.732_050_8
    }

    /// A fresh 32-bit seed for hash-based noise.
    pub(crate) fn seed32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }
}

/// Integer hash of a lattice point (for value/cellular noise), in `u32`.
pub(crate) fn hash2(seed: u32, x: i32, y: i32) -> u32 {
    let mut h = seed
        ^ (x as u32).wrapping_mul(0x27D4_EB2D)
        ^ (y as u32).wrapping_mul(0x1656_67B1).rotate_left(13);
    h ^= h >> 15;
    h = h.wrapping_mul(0x2C1B_3C6D);
    h ^= h >> 12;
    h = h.wrapping_mul(0x297A_2D39);
    h ^= h >> 15;
    h
}

/// [`hash2`] mapped to `[0, 1)`.
pub(crate) fn hash2_unit(seed: u32, x: i32, y: i32) -> f32 {
    (hash2(seed, x, y) >> 8) as f32 * (1.0 / (1u32 << 24) as f32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream_and_ranges_hold() {
        let mut a = Rng::new(42);
        let mut b = Rng::new(42);
        for _ in 0..1000 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        let mut r = Rng::new(7);
        for _ in 0..10_000 {
            let u = r.f32();
            assert!((0.0..1.0).contains(&u));
            assert!(r.below(5) < 5);
            let k = r.int_in(3, 12);
            assert!((3..=12).contains(&k));
            assert!(r.normal().abs() < 3.5);
        }
        assert_ne!(mix(1, 0), mix(1, 1));
        assert_ne!(mix(1, 2), mix(2, 1));
    }
}
