//! Publishing, the signing adapter: service signing keys, the JWKS document,
//! and the signed list tokens (IETF `statuslist+jwt`, W3C
//! `BitstringStatusListCredential` as `vc+jwt`).
//!
//! - [`keys`]: one ES256 key pair, its PKCS#8 PEM file and its JWK (`kid` =
//!   RFC 7638 thumbprint).
//! - [`keyset`]: the signing key plus the published keys of a rotation, and
//!   the JWKS document.
//! - [`rotation`]: the [`KeyRing`]: the key set in force, swapped whole on a
//!   rotation, with each replaced signing key published until its tokens
//!   have expired, recorded in a state file across restarts.
//! - [`jws`]: compact JWS ES256 signing and verification, on p256 directly.
//! - [`params`]: the issuance parameters both documents share.
//! - [`token`]: the IETF Token Status List JWT, built and read back.
//! - [`cwt`]: the same list as a CWT (COSE_Sign1, ES256 with the same key),
//!   built, verified and read back.
//! - [`credential`]: the W3C Bitstring Status List credential, built and read
//!   back.
//! - `signer`: [`KeySet`] as the [`crate::ports::ListSigner`] port, which
//!   is how the publish use case (`crate::service`) reaches the builders
//!   ([`KeyRing`] delegates to the set in force).
//!
//! This module imports only `domain` and `ports`: it signs what it is given
//! and knows nothing of stores, caches or HTTP.
//!
//! Reading helpers never check signatures themselves: a verifier calls
//! [`jws::verify`] with a key it chose, then decodes the payload.

pub mod credential;
pub mod cwt;
mod error;
pub mod jws;
pub mod keys;
pub mod keyset;
pub mod params;
pub mod rotation;
mod signer;
pub mod token;

pub use credential::{
    BitstringStatusListCredential, DecodedBitstringList, decode_bitstring_credential,
    sign_bitstring_credential, sign_compressed_bitstring_credential,
};
pub use cwt::{CwtClaims, DecodedCwtList, decode_cwt_list, sign_token_cwt};
pub use error::PublishError;
pub use keys::{PublicJwk, ServiceKey};
pub use keyset::{Jwks, KeySet};
pub use params::ListParams;
pub use rotation::{KeyRing, RetiringKey, RingOptions, Rotation};
pub use token::{
    DecodedTokenList, TokenStatusListClaims, decode_token_list, sign_compressed_token_list,
    sign_token_list,
};
