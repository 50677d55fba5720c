//! Speed of publishing and reading IETF Token Status List JWTs.
//!
//! Targets (issue 13): encode + sign a 2-bit list of 131,072 entries with
//! 10 % non-zero entries in ≤ 5 ms, and of 1,048,576 entries with 1 % in
//! ≤ 20 ms; re-publish the 1,048,576-entry list after one change, given the
//! previous version's segments, in ≤ 1 ms; compressed size within 5 % of
//! zlib level 9. Decoding (split, verify ES256, parse the claims, inflate
//! `lst`) of the same tokens is timed too. The `parts` group times the
//! segmented compression, its background optimization (level 9 per
//! segment: of a whole list, and of the one segment a change leaves
//! unoptimized), zlib level 9 of the whole list (the baseline) and the
//! signature alone, to tell which one a missed target is due to; and the
//! cost of the CWT the token cache signs with every JWT (`cwt_sign`, and a
//! whole rebuild of JWT + gzip + CWT after one change).
//!
//! Before the timings it prints, per list, the size of our `lst` stream as
//! first published (run-length segments) and once optimized, against zlib
//! level 9 of the same bytes (flate2's `Compression::best()`, the zlib-rs
//! backend: the same algorithm and, on these lists, the same size as C zlib
//! level 9), for the two bench lists and a few other densities.
//!
//! Short run: `cargo bench --bench tokens -- --warm-up-time 1 --measurement-time 2`.
//!
//! Lists are drawn from a seeded generator so that runs compare.

#[path = "common/lists.rs"]
mod lists;

use std::hint::black_box;
use std::io::Write;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};

use lists::{CASES, params, random_list};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use statuslist::domain::StatusList;
use statuslist::domain::codec::DEFAULT_DECODE_LIMIT;
use statuslist::domain::segmented::CompressedList;
use statuslist::publish::{
    ServiceKey, decode_token_list, jws, sign_compressed_token_list, sign_token_cwt, sign_token_list,
};

/// zlib level 9 of `bytes` (the encoder before segmentation).
fn zlib9(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(bytes).expect("write to a Vec");
    enc.finish().expect("finish into a Vec")
}

/// The lists, each with 16 copies that differ from it in one entry (at
/// spread positions), to re-publish from its segments.
fn changed_copies(list: &StatusList, seed: u64) -> Vec<StatusList> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..16)
        .map(|_| {
            let mut copy = list.clone();
            let idx = rng.gen_range(0..list.len());
            let old = copy.get(idx).expect("get");
            copy.set(idx, (old + 1) % 4).expect("set");
            copy
        })
        .collect()
}

fn print_sizes() {
    println!(
        "compressed size of lst: ours as first published (run-length segments) and optimized \
         (level 9 per segment, the smaller kept), vs zlib level 9 of the whole list:"
    );
    let more = [
        ("131072_1pct", 131_072, 0.01),
        ("1048576_10pct", 1_048_576, 0.10),
        ("131072_0", 131_072, 0.0),
        ("131072_50pct", 131_072, 0.5),
    ];
    for (name, len, share) in CASES.into_iter().chain(more) {
        let list = random_list(len, share, 42);
        let fast = CompressedList::new(list.as_bytes());
        let best = fast.optimized().map_or_else(|| fast.clone(), |(b, _)| b);
        let z9 = zlib9(list.as_bytes()).len() as f64;
        let pct = |n: usize| (n as f64 / z9 - 1.0) * 100.0;
        let (f, b) = (fast.zlib().len(), best.zlib().len());
        println!(
            "  {name}: {} segments; first {f} B ({:+.1} %), optimized {b} B ({:+.1} %), zlib-9 {z9} B",
            fast.segments(),
            pct(f),
            pct(b)
        );
    }
}

/// The bytes a verifier downloads per representation of the two bench
/// lists: the JWT, its gzip body, the CWT.
fn print_representation_sizes() {
    let key = ServiceKey::generate();
    let params = params();
    println!("bytes sent per representation (JWT, JWT gzipped, CWT):");
    for (name, len, share) in CASES {
        let list = random_list(len, share, 42);
        let compressed = CompressedList::new(list.as_bytes());
        let jwt =
            sign_compressed_token_list(&list, &compressed, &params, None, &key).expect("sign");
        let gzip = statuslist::service::cache::gzip(jwt.as_bytes());
        let cwt = sign_token_cwt(&list, &compressed, &params, None, &key).expect("sign cwt");
        println!(
            "  {name}: JWT {} B, gzip {} B, CWT {} B",
            jwt.len(),
            gzip.len(),
            cwt.len()
        );
    }
}

fn tokens(c: &mut Criterion) {
    print_sizes();
    print_representation_sizes();
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

    // Re-publication after one change: compare every segment with the
    // previous version's, compress the changed one, join, base64, sign.
    let mut incremental = c.benchmark_group("republish_one_change");
    incremental.measurement_time(Duration::from_secs(5));
    for (name, len, share) in CASES {
        let list = random_list(len, share, 42);
        let previous = CompressedList::new(list.as_bytes());
        let changed = changed_copies(&list, 7);
        let mut next = 0usize;
        incremental.bench_function(name, |b| {
            b.iter(|| {
                let list = &changed[next % changed.len()];
                next += 1;
                let (compressed, stats) = previous.update(black_box(list.as_bytes()));
                debug_assert_eq!(stats.compressed, 1);
                sign_compressed_token_list(list, &compressed, &params, None, &key).expect("sign")
            })
        });
    }
    incremental.finish();

    // The same re-publication, as the token cache does it for a token list:
    // the JWT, its gzip body and the CWT, all three from the one
    // compression (the CWT's share of a rebuild; see README, "CWT").
    let mut both = c.benchmark_group("republish_one_change_jwt_gzip_cwt");
    both.measurement_time(Duration::from_secs(5));
    for (name, len, share) in CASES {
        let list = random_list(len, share, 42);
        let previous = CompressedList::new(list.as_bytes());
        let changed = changed_copies(&list, 7);
        let mut next = 0usize;
        both.bench_function(name, |b| {
            b.iter(|| {
                let list = &changed[next % changed.len()];
                next += 1;
                let (compressed, _) = previous.update(black_box(list.as_bytes()));
                let jwt = sign_compressed_token_list(list, &compressed, &params, None, &key)
                    .expect("sign");
                let gzip = statuslist::service::cache::gzip(jwt.as_bytes());
                let cwt = sign_token_cwt(list, &compressed, &params, None, &key).expect("sign cwt");
                (jwt, gzip, cwt)
            })
        });
    }
    both.finish();

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
    parts.sample_size(20);
    for (name, len, share) in CASES {
        let list = random_list(len, share, 42);
        parts.bench_function(format!("segmented_compress/{name}"), |b| {
            b.iter(|| CompressedList::new(black_box(list.as_bytes())))
        });
        let fast = CompressedList::new(list.as_bytes());
        parts.bench_function(format!("optimize_whole_list/{name}"), |b| {
            b.iter(|| black_box(&fast).optimized())
        });
        // What the background pass does after one change: the list is
        // optimized but for the changed segment.
        let best = fast.optimized().map_or_else(|| fast.clone(), |(b, _)| b);
        let changed = &changed_copies(&list, 9)[0];
        let (after_change, _) = best.update(changed.as_bytes());
        parts.bench_function(format!("optimize_after_one_change/{name}"), |b| {
            b.iter(|| black_box(&after_change).optimized())
        });
        parts.bench_function(format!("zlib9/{name}"), |b| {
            b.iter(|| zlib9(black_box(list.as_bytes())))
        });
    }
    for (name, len, share) in CASES {
        let list = random_list(len, share, 42);
        let compressed = CompressedList::new(list.as_bytes());
        let jwt =
            sign_compressed_token_list(&list, &compressed, &params, None, &key).expect("sign");
        parts.bench_function(format!("gzip_of_jwt/{name}"), |b| {
            b.iter(|| statuslist::service::cache::gzip(black_box(jwt.as_bytes())))
        });
        parts.bench_function(format!("cwt_sign/{name}"), |b| {
            b.iter(|| {
                sign_token_cwt(black_box(&list), &compressed, &params, None, &key)
                    .expect("sign cwt")
            })
        });
    }
    parts.bench_function("es256_sign_small_payload", |b| {
        b.iter(|| jws::sign("statuslist+jwt", black_box(&params.iat), &key).expect("sign"))
    });
    parts.finish();
}

criterion_group!(benches, tokens);
criterion_main!(benches);
