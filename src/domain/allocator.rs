//! The index allocator: a keyed pseudo-random permutation of `[0, capacity)`.
//!
//! The n-th allocation of a list gets `idx = permute(n)`, with `n` taken from
//! an atomic counter in the store. That gives the three properties the draft
//! asks for at once:
//!
//! - unpredictable: without the list's secret key, consecutive credentials
//!   land at unrelated indexes (herd privacy);
//! - never twice: a permutation is a bijection, so distinct `n` give distinct
//!   indexes, with no retry loop and no per-entry bookkeeping even at 99 %;
//! - checkable: `invert(idx) < counter` tells whether an index was handed out.
//!
//! Construction: an unbalanced Feistel network over `k = ceil(log2(capacity))`
//! bits (6 rounds; Luby–Rackoff needs 4 for a strong pseudo-random
//! permutation), and cycle walking: while the result is `>= capacity`, apply
//! the permutation again. Since `2^k < 2 * capacity`, fewer than two steps are
//! needed on average and the walk always ends (it follows the cycle of a
//! permutation back into the range it started in).
//!
//! Round function: SipHash-1-3 (`siphasher`) under a 128-bit round key. The
//! 256-bit list key is expanded into the round keys with BLAKE3 in keyed mode
//! once per allocator, so the per-call cost is a handful of SipHash calls.

use std::hash::Hasher;

use siphasher::sip::SipHasher13;

/// Feistel rounds. Even, so the two halves end where they started.
const ROUNDS: usize = 6;

/// The largest capacity the allocator supports: 2^40 entries.
pub const MAX_CAPACITY: u64 = 1 << 40;

/// A list's secret allocator key (256 bits). Its `Debug` never shows the bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct AllocatorKey([u8; 32]);

impl AllocatorKey {
    /// Wraps 32 secret bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        AllocatorKey(bytes)
    }

    /// A fresh random key from the operating system's generator.
    pub fn random() -> Self {
        use rand::RngCore;
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        AllocatorKey(bytes)
    }

    /// The secret bytes, for storing with the list.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Debug for AllocatorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AllocatorKey(..)")
    }
}

/// Errors of the allocator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AllocatorError {
    /// A capacity of 0 or above [`MAX_CAPACITY`].
    #[error("capacity must be between 1 and {max}, not {capacity}")]
    BadCapacity {
        /// The capacity asked for.
        capacity: u64,
        /// The largest allowed.
        max: u64,
    },
    /// An allocation number or index that is not below the capacity.
    #[error("{value} is out of range for capacity {capacity}")]
    OutOfRange {
        /// The value given.
        value: u64,
        /// The list's capacity.
        capacity: u64,
    },
}

/// The permutation of one list. Cheap to build (a few BLAKE3 calls) and to
/// keep: it holds only the derived round keys.
#[derive(Clone)]
pub struct Allocator {
    capacity: u64,
    /// Widths of the two Feistel halves; `left_bits + right_bits = k`.
    left_bits: u32,
    right_bits: u32,
    round_keys: [(u64, u64); ROUNDS],
}

impl std::fmt::Debug for Allocator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Allocator")
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl Allocator {
    /// The permutation of `[0, capacity)` under `key`.
    ///
    /// # Errors
    /// [`AllocatorError::BadCapacity`] for 0 or more than [`MAX_CAPACITY`].
    pub fn new(key: &AllocatorKey, capacity: u64) -> Result<Self, AllocatorError> {
        if capacity == 0 || capacity > MAX_CAPACITY {
            return Err(AllocatorError::BadCapacity {
                capacity,
                max: MAX_CAPACITY,
            });
        }
        let k = u64::BITS - (capacity - 1).leading_zeros();
        let left_bits = k.div_ceil(2);
        let right_bits = k - left_bits;
        let mut round_keys = [(0, 0); ROUNDS];
        for (round, slot) in round_keys.iter_mut().enumerate() {
            // Domain-separate by round and by k, so lists of different
            // capacity under one key give unrelated orders.
            let mut hasher = blake3::Hasher::new_keyed(key.as_bytes());
            hasher.update(b"statuslist allocator round key");
            hasher.update(&[round as u8, k as u8]);
            let out = hasher.finalize();
            let bytes = out.as_bytes();
            let mut a = [0u8; 8];
            let mut b = [0u8; 8];
            a.copy_from_slice(&bytes[0..8]);
            b.copy_from_slice(&bytes[8..16]);
            *slot = (u64::from_le_bytes(a), u64::from_le_bytes(b));
        }
        Ok(Allocator {
            capacity,
            left_bits,
            right_bits,
            round_keys,
        })
    }

    /// The number of indexes this allocator hands out.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// The index of the `n`-th allocation.
    ///
    /// # Errors
    /// [`AllocatorError::OutOfRange`] when `n >= capacity`.
    pub fn permute(&self, n: u64) -> Result<u64, AllocatorError> {
        self.check(n)?;
        let mut x = self.forward(n);
        while x >= self.capacity {
            x = self.forward(x);
        }
        Ok(x)
    }

    /// The allocation number that yields `idx`: `permute(invert(idx)) == idx`.
    ///
    /// # Errors
    /// [`AllocatorError::OutOfRange`] when `idx >= capacity`.
    pub fn invert(&self, idx: u64) -> Result<u64, AllocatorError> {
        self.check(idx)?;
        let mut x = self.backward(idx);
        while x >= self.capacity {
            x = self.backward(x);
        }
        Ok(x)
    }

    fn check(&self, value: u64) -> Result<(), AllocatorError> {
        if value >= self.capacity {
            return Err(AllocatorError::OutOfRange {
                value,
                capacity: self.capacity,
            });
        }
        Ok(())
    }

    fn round(&self, round: usize, half: u64) -> u64 {
        let (k0, k1) = self.round_keys[round];
        let mut h = SipHasher13::new_with_keys(k0, k1);
        h.write_u64(half);
        h.finish()
    }

    /// One pass of the Feistel network over `k` bits. The halves swap widths
    /// every round: `(L, R) -> (R, L ^ F(R))`.
    fn forward(&self, x: u64) -> u64 {
        let (mut wl, mut wr) = (self.left_bits, self.right_bits);
        let mut l = x >> wr;
        let mut r = x & mask(wr);
        for round in 0..ROUNDS {
            let new_r = (l ^ self.round(round, r)) & mask(wl);
            l = r;
            r = new_r;
            std::mem::swap(&mut wl, &mut wr);
        }
        (l << wr) | r
    }

    /// The inverse pass: `(L', R') -> (R' ^ F(L'), L')`, rounds in reverse.
    fn backward(&self, x: u64) -> u64 {
        let (mut wl, mut wr) = (self.left_bits, self.right_bits);
        let mut l = x >> wr;
        let mut r = x & mask(wr);
        for round in (0..ROUNDS).rev() {
            // Before this round the halves had widths (wr, wl) and were
            // (r ^ F(l), l).
            let old_l = (r ^ self.round(round, l)) & mask(wr);
            r = l;
            l = old_l;
            std::mem::swap(&mut wl, &mut wr);
        }
        (l << wr) | r
    }
}

const fn mask(bits: u32) -> u64 {
    if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> AllocatorKey {
        AllocatorKey::from_bytes([seed; 32])
    }

    #[test]
    fn small_capacities_are_bijections() {
        for capacity in [1u64, 2, 3, 5, 8, 9, 100] {
            let a = Allocator::new(&key(1), capacity).unwrap();
            let mut seen = vec![false; capacity as usize];
            for n in 0..capacity {
                let idx = a.permute(n).unwrap();
                assert!(!seen[idx as usize]);
                seen[idx as usize] = true;
                assert_eq!(a.invert(idx).unwrap(), n);
            }
        }
    }

    #[test]
    fn out_of_range_is_an_error() {
        let a = Allocator::new(&key(2), 10).unwrap();
        assert_eq!(
            a.permute(10),
            Err(AllocatorError::OutOfRange {
                value: 10,
                capacity: 10
            })
        );
        assert!(a.invert(u64::MAX).is_err());
        assert!(Allocator::new(&key(2), 0).is_err());
        assert!(Allocator::new(&key(2), MAX_CAPACITY + 1).is_err());
        assert!(Allocator::new(&key(2), MAX_CAPACITY).is_ok());
    }

    #[test]
    fn debug_hides_the_key() {
        assert_eq!(format!("{:?}", key(9)), "AllocatorKey(..)");
    }
}
