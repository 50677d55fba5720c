//! The packed status array, in the bit order of either standard.
//!
//! The bytes held here are exactly what the store keeps and what the codecs
//! compress: the store never holds a second representation that could drift.
//! Both standards put entry `i` in bits `[i*b, (i+1)*b)`; they differ in how
//! bits are numbered inside a byte:
//!
//! - IETF Token Status List: bit 0 is the least significant bit of byte 0, and
//!   an entry's lowest-numbered bit is its least significant bit
//!   (`bitvec::Lsb0`, little-endian loads).
//! - W3C Bitstring Status List: bit 0 is the most significant bit of byte 0,
//!   and an entry's first bit is its most significant bit (`bitvec::Msb0`,
//!   big-endian loads).
//!
//! Because every width divides 8, an entry never spans two bytes, and `get`
//! and `set` touch one byte.

use bitvec::field::BitField;
use bitvec::prelude::{BitVec, Lsb0, Msb0};

use super::status::Bits;

/// Which standard's bit order a list uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// IETF Token Status List: entry 0 in the least significant bits of byte 0.
    Ietf,
    /// W3C Bitstring Status List: entry 0 in the most significant bits of byte 0.
    W3c,
}

impl Layout {
    /// The index of the byte holding entry `idx` and the shift that moves the
    /// entry's value to the low bits of that byte. The Redis adapter uses this
    /// to address the same bits with `BITFIELD`, so both paths share one rule.
    pub fn byte_and_shift(self, bits: Bits, idx: u64) -> (u64, u8) {
        let width = u64::from(bits.get());
        let first_bit = idx * width;
        let byte = first_bit / 8;
        let within = (first_bit % 8) as u8;
        let shift = match self {
            Layout::Ietf => within,
            Layout::W3c => 8 - within - bits.get(),
        };
        (byte, shift)
    }
}

/// Errors of the packed array. None of them leaves the array changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PackedError {
    /// The index is not below the list's length.
    #[error("index {index} is out of range for a list of {len} entries")]
    OutOfRange {
        /// The index that was asked for.
        index: u64,
        /// The number of entries in the list.
        len: u64,
    },
    /// The value does not fit the list's width.
    #[error("status value {value} does not fit in {bits} bits")]
    ValueTooWide {
        /// The value that was given.
        value: u8,
        /// The list's width.
        bits: Bits,
    },
    /// Raw bytes whose length does not match the entry count and width.
    #[error("{got} bytes do not hold {len} entries of {bits} bits ({expected} bytes expected)")]
    WrongByteLength {
        /// Bytes given.
        got: usize,
        /// Bytes needed.
        expected: usize,
        /// Entries asked for.
        len: u64,
        /// The width.
        bits: Bits,
    },
    /// An empty list, or one whose byte size would not fit in memory.
    #[error("a list must hold between 1 and {max} entries, not {len}")]
    BadLength {
        /// Entries asked for.
        len: u64,
        /// The largest length allowed.
        max: u64,
    },
}

/// The storage of a list in its own bit order. Kept private so that a list's
/// order can never be read with the other standard's rule.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Store {
    Lsb(BitVec<u8, Lsb0>),
    Msb(BitVec<u8, Msb0>),
}

/// A packed array of `len` statuses of `bits` bits each, in one layout.
///
/// Invariant: the raw bytes are exactly `ceil(len * bits / 8)` long, and bits
/// past the last entry are zero (a decoded list may carry nonzero padding
/// bits, which are kept so that re-encoding reproduces the input).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusList {
    layout: Layout,
    bits: Bits,
    len: u64,
    store: Store,
}

/// The largest list the service builds or accepts: 2^32 entries. Far above
/// any real list (the default is 2^17) and still a bounded allocation.
pub const MAX_ENTRIES: u64 = 1 << 32;

impl StatusList {
    /// A list of `len` VALID (zero) entries.
    ///
    /// # Errors
    /// [`PackedError::BadLength`] when `len` is 0 or above [`MAX_ENTRIES`].
    pub fn new(layout: Layout, bits: Bits, len: u64) -> Result<Self, PackedError> {
        let bytes = byte_len(bits, len)?;
        Self::from_bytes(layout, bits, len, vec![0; bytes])
    }

    /// Wraps raw bytes as a list of `len` entries.
    ///
    /// # Errors
    /// [`PackedError::WrongByteLength`] when the bytes do not hold exactly
    /// `len` entries, [`PackedError::BadLength`] for a bad `len`.
    pub fn from_bytes(
        layout: Layout,
        bits: Bits,
        len: u64,
        bytes: Vec<u8>,
    ) -> Result<Self, PackedError> {
        let expected = byte_len(bits, len)?;
        if bytes.len() != expected {
            return Err(PackedError::WrongByteLength {
                got: bytes.len(),
                expected,
                len,
                bits,
            });
        }
        let store = match layout {
            Layout::Ietf => Store::Lsb(BitVec::from_vec(bytes)),
            Layout::W3c => Store::Msb(BitVec::from_vec(bytes)),
        };
        Ok(StatusList {
            layout,
            bits,
            len,
            store,
        })
    }

    /// Wraps decoded bytes, taking every whole entry they hold as the length
    /// (as a verifier does with a list it fetched).
    ///
    /// # Errors
    /// [`PackedError::BadLength`] for an empty byte string.
    pub fn from_decoded(layout: Layout, bits: Bits, bytes: Vec<u8>) -> Result<Self, PackedError> {
        let len = bytes.len() as u64 * bits.per_byte() as u64;
        Self::from_bytes(layout, bits, len, bytes)
    }

    /// The list's bit order.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// Bits per entry.
    pub fn bits(&self) -> Bits {
        self.bits
    }

    /// Number of entries.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Always false: a list has at least one entry.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The raw packed bytes, exactly as stored and as compressed.
    pub fn as_bytes(&self) -> &[u8] {
        match &self.store {
            Store::Lsb(v) => v.as_raw_slice(),
            Store::Msb(v) => v.as_raw_slice(),
        }
    }

    /// Gives up the list and returns its raw bytes.
    pub fn into_bytes(self) -> Vec<u8> {
        match self.store {
            Store::Lsb(v) => v.into_vec(),
            Store::Msb(v) => v.into_vec(),
        }
    }

    /// The raw value of entry `idx`.
    ///
    /// # Errors
    /// [`PackedError::OutOfRange`] when `idx >= len`.
    pub fn get(&self, idx: u64) -> Result<u8, PackedError> {
        let range = self.range(idx)?;
        Ok(match &self.store {
            Store::Lsb(v) => v[range].load_le::<u8>(),
            Store::Msb(v) => v[range].load_be::<u8>(),
        })
    }

    /// Sets entry `idx` to the raw `value`.
    ///
    /// # Errors
    /// [`PackedError::OutOfRange`] when `idx >= len`,
    /// [`PackedError::ValueTooWide`] when `value` does not fit the width.
    pub fn set(&mut self, idx: u64, value: u8) -> Result<(), PackedError> {
        if !self.bits.fits(value) {
            return Err(PackedError::ValueTooWide {
                value,
                bits: self.bits,
            });
        }
        let range = self.range(idx)?;
        match &mut self.store {
            Store::Lsb(v) => v[range].store_le(value),
            Store::Msb(v) => v[range].store_be(value),
        }
        Ok(())
    }

    /// Iterates over `(index, value)` for every nonzero entry, skipping zero
    /// bytes so that sparse lists are cheap to scan.
    pub fn nonzero(&self) -> impl Iterator<Item = (u64, u8)> + '_ {
        let per_byte = self.bits.per_byte() as u64;
        self.as_bytes()
            .iter()
            .enumerate()
            .filter(|(_, b)| **b != 0)
            .flat_map(move |(byte, _)| {
                let first = byte as u64 * per_byte;
                (first..first + per_byte).filter_map(move |idx| match self.get(idx) {
                    Ok(0) | Err(_) => None,
                    Ok(v) => Some((idx, v)),
                })
            })
    }

    fn range(&self, idx: u64) -> Result<std::ops::Range<usize>, PackedError> {
        if idx >= self.len {
            return Err(PackedError::OutOfRange {
                index: idx,
                len: self.len,
            });
        }
        // In range: idx < len <= MAX_ENTRIES, so the bit offset fits in usize
        // on every 64-bit target, and the list was allocated with it.
        let width = usize::from(self.bits.get());
        let start = idx as usize * width;
        Ok(start..start + width)
    }
}

/// The number of bytes that hold `len` entries of `bits` bits.
///
/// # Errors
/// [`PackedError::BadLength`] when `len` is 0 or above [`MAX_ENTRIES`].
pub fn byte_len(bits: Bits, len: u64) -> Result<usize, PackedError> {
    if len == 0 || len > MAX_ENTRIES {
        return Err(PackedError::BadLength {
            len,
            max: MAX_ENTRIES,
        });
    }
    let total_bits = len * u64::from(bits.get());
    usize::try_from(total_bits.div_ceil(8)).map_err(|_| PackedError::BadLength {
        len,
        max: MAX_ENTRIES,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ietf_puts_entry_zero_in_the_low_bits() {
        let mut list = StatusList::new(Layout::Ietf, Bits::Two, 8).unwrap();
        list.set(0, 1).unwrap();
        list.set(1, 2).unwrap();
        list.set(3, 3).unwrap();
        list.set(4, 2).unwrap();
        assert_eq!(list.as_bytes(), &[0b1100_1001, 0b0000_0010]);
        assert_eq!(list.get(1).unwrap(), 2);
    }

    #[test]
    fn w3c_puts_entry_zero_in_the_high_bits_msb_first() {
        let mut list = StatusList::new(Layout::W3c, Bits::Two, 8).unwrap();
        list.set(0, 1).unwrap();
        list.set(1, 2).unwrap();
        list.set(3, 3).unwrap();
        list.set(4, 2).unwrap();
        assert_eq!(list.as_bytes(), &[0b0110_0011, 0b1000_0000]);
        let mut one = StatusList::new(Layout::W3c, Bits::One, 16).unwrap();
        one.set(0, 1).unwrap();
        one.set(9, 1).unwrap();
        assert_eq!(one.as_bytes(), &[0b1000_0000, 0b0100_0000]);
    }

    #[test]
    fn byte_and_shift_agrees_with_set() {
        for layout in [Layout::Ietf, Layout::W3c] {
            for bits in Bits::ALL {
                let len = 64;
                for idx in 0..len {
                    let mut list = StatusList::new(layout, bits, len).unwrap();
                    list.set(idx, 1).unwrap();
                    let (byte, shift) = layout.byte_and_shift(bits, idx);
                    let mut expected = vec![0u8; list.as_bytes().len()];
                    expected[byte as usize] = 1 << shift;
                    assert_eq!(list.as_bytes(), &expected[..], "{layout:?} {bits} {idx}");
                }
            }
        }
    }

    #[test]
    fn errors_instead_of_panics() {
        let mut list = StatusList::new(Layout::Ietf, Bits::One, 10).unwrap();
        assert_eq!(list.as_bytes().len(), 2);
        assert_eq!(
            list.get(10),
            Err(PackedError::OutOfRange { index: 10, len: 10 })
        );
        assert!(list.set(u64::MAX, 1).is_err());
        assert_eq!(
            list.set(0, 2),
            Err(PackedError::ValueTooWide {
                value: 2,
                bits: Bits::One
            })
        );
        assert!(StatusList::new(Layout::W3c, Bits::Two, 0).is_err());
        assert!(StatusList::new(Layout::W3c, Bits::Eight, MAX_ENTRIES + 1).is_err());
        assert!(StatusList::from_bytes(Layout::Ietf, Bits::Two, 5, vec![0; 1]).is_err());
        assert_eq!(list.as_bytes(), &[0, 0], "failed calls change nothing");
    }

    #[test]
    fn nonzero_lists_every_set_entry() {
        let mut list = StatusList::new(Layout::W3c, Bits::Four, 100).unwrap();
        list.set(3, 7).unwrap();
        list.set(99, 15).unwrap();
        assert_eq!(list.nonzero().collect::<Vec<_>>(), vec![(3, 7), (99, 15)]);
    }
}
