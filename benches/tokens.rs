//! Speed of publishing and reading IETF Token Status List JWTs.
//!
//! Targets: encode + sign a 2-bit list of 131,072 entries with 10 % non-zero
//! entries in ≤ 5 ms, and of 1,048,576 entries with 1 % in ≤ 20 ms; decoding
//! (split, verify ES256, parse the claims, inflate `lst`) of the same tokens.
//! The `parts` group times zlib level 9 and the signature alone, to tell
//! which one a missed target is due to.
//!
//! Lists are drawn from a seeded generator so that runs compare.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use statuslist::domain::codec::{DEFAULT_DECODE_LIMIT, encode_lst};
use statuslist::domain::{Bits, Layout, StatusList};
use statuslist::publish::{ListParams, ServiceKey, decode_token_list, jws, sign_token_list};

const CASES: [(&str, u64, f64); 2] = [
    ("131072_10pct", 131_072, 0.10),
    ("1048576_1pct", 1_048_576, 0.01),
];

fn params() -> ListParams<'static> {
    ListParams {
        iss: "https://status.example",
        uri: "https://status.example/t/0123456789AB",
        iat: 1_795_449_600,
        exp: 1_795_536_000,
        ttl: 300,
    }
}

/// A 2-bit IETF list where each entry is non-zero (1, 2 or 3) with
/// probability `share`.
fn random_list(len: u64, share: f64, seed: u64) -> StatusList {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut list = StatusList::new(Layout::Ietf, Bits::Two, len).expect("list");
    for idx in 0..len {
        if rng.gen_bool(share) {
            list.set(idx, rng.gen_range(1..=3)).expect("set");
        }
    }
    list
}

fn tokens(c: &mut Criterion) {
    let key = ServiceKey::generate();
    let params = params();

    let mut encode = c.benchmark_group("encode_sign");
    encode.measurement_time(Duration::from_secs(5));
    for (name, len, share) in CASES {
        let list = random_list(len, share, 42);
        encode.bench_function(name, |b| {
            b.iter(|| sign_token_list(black_box(&list), &params, &key).expect("sign"))
        });
    }
    encode.finish();

    let mut decode = c.benchmark_group("verify_decode");
    decode.measurement_time(Duration::from_secs(5));
    for (name, len, share) in CASES {
        let list = random_list(len, share, 42);
        let jwt = sign_token_list(&list, &params, &key).expect("sign");
        decode.bench_function(name, |b| {
            b.iter(|| {
                let parts = jws::verify(black_box(&jwt), key.verifying_key()).expect("verify");
                decode_token_list(&parts.payload, DEFAULT_DECODE_LIMIT).expect("decode")
            })
        });
    }
    decode.finish();

    let mut parts = c.benchmark_group("parts");
    for (name, len, share) in CASES {
        let list = random_list(len, share, 42);
        parts.bench_function(format!("zlib9_base64/{name}"), |b| {
            b.iter(|| encode_lst(black_box(list.as_bytes())))
        });
    }
    parts.bench_function("es256_sign_small_payload", |b| {
        b.iter(|| jws::sign("statuslist+jwt", black_box(&params.iat), &key).expect("sign"))
    });
    parts.finish();
}

criterion_group!(benches, tokens);
criterion_main!(benches);
