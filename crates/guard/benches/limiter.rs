//! One limiter decision: `cargo bench -p portcullis-guard --bench limiter`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{criterion_group, criterion_main, Criterion};
use portcullis_guard::limiter::{AttemptLimiter, Limit, MemoryLimiter};

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let limit = Limit {
        max: 5,
        window_secs: 900,
    };
    // A limiter holding 100,000 keys, as under a flood: decisions on a known key, and on the
    // refusal path of a throttled key.
    let l = MemoryLimiter::new(limit, 100_000);
    rt.block_on(async {
        for i in 0..100_000 {
            l.reserve(&format!("addr:198.51.{}.{}/32", i / 256, i % 256), 0)
                .await;
        }
        for _ in 0..5 {
            l.reserve("acct:throttled@example.com", 0).await;
        }
    });
    let mut n = 0u64;
    c.bench_function("limiter decision (reserve + refund, 100k keys)", |b| {
        b.iter(|| {
            n += 1;
            let key = format!("addr:198.51.{}.{}/32", (n / 256) % 390, n % 256);
            rt.block_on(async {
                l.reserve(&key, 1).await;
                l.refund(&key).await;
            })
        })
    });
    c.bench_function("limiter decision (throttled key)", |b| {
        b.iter(|| rt.block_on(l.reserve("acct:throttled@example.com", 1)))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
