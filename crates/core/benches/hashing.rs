//! The password-hashing pool alone: Argon2id verifications with production parameters (m=19 MiB,
//! t=2, p=1), as many at once as the pool allows (one per core), so the time per batch gives the
//! pool's throughput. `cargo bench -p portcullis-core --bench hashing`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{criterion_group, criterion_main, Criterion};
use portcullis_core::password::{normalize, PasswordHasher};

fn bench(c: &mut Criterion) {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let hasher = PasswordHasher::new(cores).unwrap();
    let stored = rt
        .block_on(hasher.hash(normalize("velvet orbit lantern harbor")))
        .unwrap();
    let mut group = c.benchmark_group("hashing pool");
    group.sample_size(20);
    group.bench_function(format!("{cores} parallel Argon2id verifications"), |b| {
        b.iter(|| {
            rt.block_on(async {
                let tasks: Vec<_> = (0..cores)
                    .map(|_| {
                        let h = hasher.clone();
                        let s = stored.clone();
                        tokio::spawn(async move {
                            h.verify(normalize("velvet orbit lantern harbor"), Some(s))
                                .await
                        })
                    })
                    .collect();
                for t in tasks {
                    assert!(t.await.unwrap().unwrap());
                }
            })
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
