//! Allocator speed: `permute` and `invert` for the default capacity (a power
//! of two, no cycle walking) and for an awkward one (just above a power of
//! two, the worst case for cycle walking). Target: `permute` ≤ 50 ns.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use statuslist::domain::{Allocator, AllocatorKey};

fn bench(c: &mut Criterion) {
    let key = AllocatorKey::from_bytes([42; 32]);
    let mut group = c.benchmark_group("allocator");
    for capacity in [131_072u64, 131_073, 1_000_000] {
        let alloc = Allocator::new(&key, capacity).expect("capacity");
        let mut n = 0u64;
        group.bench_function(format!("permute/{capacity}"), |b| {
            b.iter(|| {
                n = (n + 1) % capacity;
                black_box(alloc.permute(black_box(n)))
            })
        });
        let mut idx = 0u64;
        group.bench_function(format!("invert/{capacity}"), |b| {
            b.iter(|| {
                idx = (idx + 1) % capacity;
                black_box(alloc.invert(black_box(idx)))
            })
        });
    }
    group.bench_function("new/131072", |b| {
        b.iter(|| black_box(Allocator::new(black_box(&key), 131_072)))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
