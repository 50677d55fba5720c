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
pub mod ids;
pub mod packed;
pub mod status;

pub use allocator::{Allocator, AllocatorError, AllocatorKey};
pub use claims::{ChangeOp, ClaimError, SigAlg};
pub use codec::CodecError;
pub use ids::{ClientId, IdError, ListFormat, ListId, ListRef};
pub use packed::{Layout, PackedError, StatusList};
pub use status::{Bits, BitsError, Status, Transition, TransitionError};
