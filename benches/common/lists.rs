//! The lists the encoding benches (`tokens`, `gzip`) share, so that their
//! figures describe the same inputs.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use statuslist::domain::{Bits, Layout, StatusList};
use statuslist::publish::ListParams;

/// (name, entries, share of non-zero entries) of each measured list.
pub const CASES: [(&str, u64, f64); 2] = [
    ("131072_10pct", 131_072, 0.10),
    ("1048576_1pct", 1_048_576, 0.01),
];

/// The claims every measured token carries.
pub fn params() -> ListParams<'static> {
    ListParams {
        iss: "https://status.example",
        uri: "https://status.example/t/0123456789AB",
        iat: 1_795_449_600,
        exp: 1_795_536_000,
        ttl: 300,
    }
}

/// A 2-bit IETF list where each entry is non-zero (1, 2 or 3) with
/// probability `share`; the same `seed` gives the same list.
pub fn random_list(len: u64, share: f64, seed: u64) -> StatusList {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut list = StatusList::new(Layout::Ietf, Bits::Two, len).expect("list");
    for idx in 0..len {
        if rng.gen_bool(share) {
            list.set(idx, rng.gen_range(1..=3)).expect("set");
        }
    }
    list
}
