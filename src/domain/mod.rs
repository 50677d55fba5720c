//! The pure core: status values, packed lists, codecs, the allocator, the
//! identifiers that cross the service's edges and request-claim validation.
//!
//! Nothing in here does I/O or knows about tokio, actix, redis or reqwest; every
//! function is deterministic given its inputs (and the OS random generator
//! where an id or key is minted), which is what lets it be tested exhaustively
//! and fuzzed.

pub mod allocator;
pub mod claims;
pub mod codec;
pub mod embed;
pub mod entries;
pub mod events;
pub mod ids;
pub mod packed;
pub mod segmented;
pub mod status;

pub use allocator::{Allocator, AllocatorError, AllocatorKey};
pub use claims::{ChangeOp, ClaimError, SigAlg};
pub use codec::CodecError;
pub use embed::{CredentialStatus, StatusMessage};
pub use entries::{EntryFilter, EntryKey, Pagination, QueryError, SortOrder, StatusSet};
pub use ids::{
    AGGREGATION_SEGMENT, ClientId, IdError, IssuanceRef, Jti, ListFormat, ListId, ListRef,
};
pub use packed::{Layout, PackedError, StatusList};
pub use segmented::CompressedList;
pub use status::{Bits, BitsError, Status, Transition, TransitionError};

/// The largest list, in bytes, that every store keeps: a Redis string holds
/// at most 512 MiB, and the embedded store keeps the same limit so that a
/// configuration valid for one store is valid for the other.
pub const MAX_LIST_BYTES: u64 = 512 * 1024 * 1024;

/// The largest capacity a list with `bits` per entry may have: what the
/// allocator ([`allocator::MAX_CAPACITY`]), the packed list
/// ([`packed::MAX_ENTRIES`]) and the stores ([`MAX_LIST_BYTES`]) all accept.
/// 2^32 entries at 1 bit, 2^31 at 2 bits, 2^30 at 4 and 2^29 at 8. Config
/// validation and the stores' own checks both use this one limit.
pub const fn max_list_capacity(bits: Bits) -> u64 {
    let by_bytes = MAX_LIST_BYTES * 8 / bits.get() as u64;
    let max = if allocator::MAX_CAPACITY < packed::MAX_ENTRIES {
        allocator::MAX_CAPACITY
    } else {
        packed::MAX_ENTRIES
    };
    if by_bytes < max { by_bytes } else { max }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_largest_list_fits_every_store() {
        for bits in Bits::ALL {
            let max = max_list_capacity(bits);
            let bytes = packed::byte_len(bits, max).unwrap() as u64;
            assert!(bytes <= MAX_LIST_BYTES, "{bits:?}: {bytes} bytes");
            assert!(Allocator::new(&AllocatorKey::from_bytes([7; 32]), max).is_ok());
            // One more entry would need one more byte or more (all widths
            // divide 8, and the 1-bit limit is exactly 512 MiB).
            assert!(packed::byte_len(bits, max + 1).map_or(true, |b| b as u64 > MAX_LIST_BYTES));
        }
        assert_eq!(max_list_capacity(Bits::One), 1 << 32);
        assert_eq!(max_list_capacity(Bits::Two), 1 << 31);
        assert_eq!(max_list_capacity(Bits::Eight), 1 << 29);
    }
}
