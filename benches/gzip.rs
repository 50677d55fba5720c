//! What the `Content-Encoding: gzip` body of a list costs and saves.
//!
//! The token cache builds the gzip body once per token, in the same step as
//! the signature (`statuslist::service::cache::gzip`). This bench times that
//! step for the two list shapes (2-bit, 131,072 entries with 10 %
//! set, and 1,048,576 with 1 %), next to the encode + sign it follows (the
//! baseline of the same run), and prints the sizes: identity token, gzip at
//! the level used, and at levels 6 and 9 for comparison (a token is base64
//! of compressed data, so higher levels buy almost nothing).
//!
//! Run: `cargo bench --bench gzip` (add `-- --quick` for a short run).

#[path = "common/lists.rs"]
mod lists;

use std::hint::black_box;
use std::io::Write;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};

use lists::{CASES, params, random_list};
use statuslist::publish::{ServiceKey, sign_token_list};
use statuslist::service::cache::gzip;

fn gzip_at(body: &[u8], level: u32) -> usize {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
    enc.write_all(body).expect("write to a Vec");
    enc.finish().expect("finish").len()
}

fn bench(c: &mut Criterion) {
    let key = ServiceKey::generate();
    let params = params();
    let mut group = c.benchmark_group("gzip_body");
    group.measurement_time(Duration::from_secs(3));
    for (name, len, share) in CASES {
        let list = random_list(len, share, 42);
        let token = sign_token_list(&list, &params, &key).expect("sign");
        let used = gzip(token.as_bytes()).len();
        println!(
            "sizes {name}: identity {} B, gzip (as served) {used} B ({:.1} %), level 6 {} B, level 9 {} B",
            token.len(),
            100.0 * used as f64 / token.len() as f64,
            gzip_at(token.as_bytes(), 6),
            gzip_at(token.as_bytes(), 9),
        );
        group.bench_function(format!("baseline_encode_sign/{name}"), |b| {
            b.iter(|| sign_token_list(black_box(&list), &params, &key).expect("sign"))
        });
        group.bench_function(format!("gzip_as_served/{name}"), |b| {
            b.iter(|| gzip(black_box(token.as_bytes())))
        });
        group.bench_function(format!("gzip_level6/{name}"), |b| {
            b.iter(|| gzip_at(black_box(token.as_bytes()), 6))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
