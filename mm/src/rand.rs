//! A tiny deterministic pseudo-random generator (xorshift64) for tests,
//! benchmarks and, later, freelist randomisation: the same seed gives the
//! same sequence everywhere, so two allocators can be fed the same workload.
#![forbid(unsafe_code)]

/// xorshift64 (Marsaglia): fast, not cryptographic.
#[derive(Clone, Debug)]
pub struct XorShift64(u64);

impl XorShift64 {
    /// A generator seeded with `seed` (0 is replaced: xorshift needs a
    /// non-zero state).
    pub const fn new(seed: u64) -> Self {
        Self(if seed == 0 {
            0x2545_f491_4f6c_dd1d
        } else {
            seed
        })
    }

    /// The next value.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A value in `0..n` (`n > 0`; slightly biased, fine for workloads).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// Shuffles `v` in place (Fisher-Yates).
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            v.swap(i, self.below(i + 1));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sequence_and_zero_is_safe() {
        let (mut a, mut b) = (XorShift64::new(7), XorShift64::new(7));
        assert!((0..100).all(|_| a.next_u64() == b.next_u64()));
        let mut z = XorShift64::new(0);
        assert_ne!(z.next_u64(), 0);
        assert!((0..1000).all(|_| z.below(10) < 10));
    }
}
