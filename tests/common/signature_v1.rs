//! The `v1` of a `Statuslist-Signature` header computed as a receiver would,
//! with the `hmac` crate and not the service's own code, so that the tests
//! check the service independently. Shared with `#[path]` by the HTTP tests,
//! the fault tests and the webhook bench.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Lowercase hex of HMAC-SHA256 over `"{t}." || body` with `secret`: what
/// the `v1=` part of a delivery signed at `t` must be.
pub fn expected_v1(secret: &[u8], t: u64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
