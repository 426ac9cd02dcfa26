//! Map `update(k, |v| v + 1)`: mmring's `Map<u64, u64>` against a
//! fixed-capacity hash table of `(u64, u64)` behind a process-shared
//! `pthread_mutex_t` in the same kind of mapping (std's `HashMap` cannot
//! live in a mapping: see `mmring::bench::pthread_map`), from two
//! processes at once, on one hot key and over 1024 keys.
//!
//! The measurement is `mmring::bench::Fixture::measure`, exactly what
//! `mmring bench map` runs: each sample forks a child, both processes
//! start on a shared flag and update; the parent times the window, counts
//! the updates of both and checks that the values grew by exactly that
//! many. Throughput is updates per second of the two together.

use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mmring::bench::{Budget, Fixture, Group};

fn map(c: &mut Criterion) {
    let fixture = Fixture::new().expect("create the benchmark files in /dev/shm");
    for group in Group::MAP {
        let mut g = c.benchmark_group(group.id());
        g.throughput(Throughput::Elements(1));
        for &case in group.cases() {
            g.bench_function(case.id(), |b| {
                b.iter_custom(|iters| {
                    fixture
                        .measure(case, Budget::ops(iters))
                        .unwrap_or_else(|e| panic!("{}: {e}", case.label()))
                        .time_for(iters)
                });
            });
        }
        g.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .sample_size(10);
    targets = map
}
criterion_main!(benches);
