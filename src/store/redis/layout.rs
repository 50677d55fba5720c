//! How a list's data is cut to fit Redis's memory allocator: the chunks of
//! its bytes and the buckets of its change times.
//!
//! Redis stores a string as an SDS header, the bytes and a NUL, in one
//! allocation that jemalloc rounds up to its next size class. A list of
//! 131,072 two-bit entries is exactly 32 KiB, so as one string it needs
//! 32 KiB + 6 bytes and lands in the 40 KiB class: a quarter wasted. Cut into
//! a chunk whose allocation is exactly a power of two (the payload minus the
//! header and NUL) and a small tail, it takes what it holds. Every list's
//! chunk size is stored with it (`cs`), so the rule can change without
//! touching existing lists; lists made before chunking have no `cs` and are
//! one chunk.
//!
//! Change times are kept per list in one hash whose fields are buckets of
//! indexes and whose values are sorted 6-byte records (offset in the bucket,
//! time). At most [`TIME_BUCKETS`] buckets per list (while a bucket's offsets
//! fit 16 bits) keep the hash small enough for Redis's compact encoding when
//! changes are few, and make each change cost its 6 bytes plus a share of
//! one field when they are many, instead of a hash entry per change (~56 B
//! once a per-entry hash outgrows the compact encoding).

/// Lists up to this many bytes are one chunk: the rounding of a small
/// allocation wastes little, and one key costs less than two.
const ONE_CHUNK_MAX: usize = 4096;

/// What an SDS string of `len` bytes costs beyond its bytes: the header of
/// the smallest SDS type that holds `len` (Redis's `sdsReqType`), plus the
/// trailing NUL.
fn sds_overhead(len: usize) -> usize {
    if len < 1 << 8 {
        3 + 1
    } else if len < 1 << 16 {
        5 + 1
    } else {
        9 + 1
    }
}

/// Bytes per chunk for a list of `byte_len` bytes: the largest payload whose
/// string allocation is exactly a power of two and that is no longer than
/// the list (so a list is at most two chunks: this one and a shorter rest),
/// or the whole list when it is small.
pub(super) fn chunk_bytes(byte_len: usize) -> usize {
    if byte_len <= ONE_CHUNK_MAX {
        return byte_len.max(1);
    }
    let mut best = ONE_CHUNK_MAX;
    let mut alloc = ONE_CHUNK_MAX;
    while let Some(next) = alloc.checked_mul(2) {
        // The payload for this allocation: the largest `p` with
        // `p + sds_overhead(p) == alloc`.
        let payload = (alloc - 10..=alloc - 4)
            .rev()
            .find(|p| p + sds_overhead(*p) == alloc)
            .unwrap_or(alloc - 10);
        if payload > byte_len {
            break;
        }
        best = payload;
        alloc = next;
    }
    best
}

/// The lengths of the chunks of a list of `byte_len` bytes cut every
/// `chunk` bytes (all `chunk` long but the last).
pub(super) fn chunk_lens(byte_len: usize, chunk: usize) -> impl Iterator<Item = usize> {
    let chunk = chunk.max(1);
    (0..byte_len.div_ceil(chunk)).map(move |k| chunk.min(byte_len - k * chunk))
}

/// Where the bit at `bit` of a list lies when cut every `chunk` bytes: the
/// chunk's number and the bit's offset inside it.
pub(super) fn chunk_of_bit(bit: u64, chunk: usize) -> (usize, u64) {
    let chunk_bits = chunk.max(1) as u64 * 8;
    // A list's bytes fit in memory, so the chunk number fits usize.
    ((bit / chunk_bits) as usize, bit % chunk_bits)
}

/// The number of time buckets a list has at most while each bucket's
/// offsets fit 16 bits (lists up to 8,388,608 entries); the listpack limit
/// Redis ships with (`hash-max-listpack-entries`) is 128.
pub const TIME_BUCKETS: u64 = 128;

/// The widest bucket: its offsets must fit the records' 16 bits.
const MAX_BUCKET_SPAN: u64 = 1 << 16;

/// Where the change time of one entry is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct TimeSlot {
    /// The bucket (the hash field).
    pub bucket: u64,
    /// The entry's offset in its bucket (the record's key).
    pub offset: u16,
}

/// The slot of entry `idx` in a list of `capacity` entries.
pub(super) fn time_slot(capacity: u64, idx: u64) -> TimeSlot {
    let span = capacity.div_ceil(TIME_BUCKETS).clamp(1, MAX_BUCKET_SPAN);
    TimeSlot {
        bucket: idx / span,
        // `span` is at most 2^16, so the remainder fits.
        offset: (idx % span) as u16,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A chunk's string takes exactly a power of two, and the list is at
    /// most two chunks.
    #[test]
    fn chunks_fill_their_allocation() {
        assert_eq!(chunk_bytes(32_768), 32_762);
        assert_eq!(chunk_bytes(262_144), 262_134);
        for len in [
            4097,
            5000,
            25_000,
            32_768,
            65_536,
            100_000,
            262_144,
            1 << 29,
        ] {
            let c = chunk_bytes(len);
            assert!(c <= len, "{len}");
            assert!((c + sds_overhead(c)).is_power_of_two(), "{len}: {c}");
            let lens: Vec<usize> = chunk_lens(len, c).collect();
            assert!(lens.len() <= 2, "{len}: {lens:?}");
            assert_eq!(lens.iter().sum::<usize>(), len);
        }
        for len in [1, 25, 4096] {
            assert_eq!(chunk_bytes(len), len);
            assert_eq!(chunk_lens(len, len).collect::<Vec<_>>(), vec![len]);
        }
    }

    #[test]
    fn bits_find_their_chunk() {
        assert_eq!(chunk_of_bit(0, 10), (0, 0));
        assert_eq!(chunk_of_bit(79, 10), (0, 79));
        assert_eq!(chunk_of_bit(80, 10), (1, 0));
        assert_eq!(chunk_of_bit(32_762 * 8 + 3, 32_762), (1, 3));
    }

    #[test]
    fn time_slots() {
        // 131,072 entries: 128 buckets of 1,024.
        assert_eq!(
            time_slot(131_072, 0),
            TimeSlot {
                bucket: 0,
                offset: 0
            }
        );
        assert_eq!(
            time_slot(131_072, 131_071),
            TimeSlot {
                bucket: 127,
                offset: 1023
            }
        );
        // Small lists: one entry per bucket at most 128 buckets.
        assert_eq!(time_slot(100, 99).bucket, 99);
        // Huge lists: buckets of 2^16, more of them.
        let huge = 1 << 31;
        assert_eq!(
            time_slot(huge, huge - 1),
            TimeSlot {
                bucket: (huge >> 16) - 1,
                offset: u16::MAX
            }
        );
        for cap in [1, 7, 128, 129, 100_000, 131_072, 1 << 20, 1 << 23] {
            assert!(time_slot(cap, cap - 1).bucket < TIME_BUCKETS, "{cap}");
        }
    }
}
