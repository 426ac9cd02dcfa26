//! Counter `fetch_add(1)`: mmring's `Counter` against a bare
//! `AtomicU64::fetch_add` on the same kind of mapping (the physical
//! operation) and against an `i64` behind a process-shared
//! `pthread_mutex_t`, from two processes at once and from one.
//!
//! The measurement is `mmring::bench::Fixture::measure`, exactly what
//! `mmring bench` runs: each sample forks a child, both processes start on a
//! shared flag and hammer the same counter; the parent times the window and
//! counts the operations of both. Throughput is operations per second of
//! the two together.

use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mmring::bench::{Budget, Fixture, Group};

fn counter(c: &mut Criterion) {
    let fixture = Fixture::new().expect("create the benchmark files in /dev/shm");
    for group in [Group::CounterTwoProcs, Group::CounterOneProc] {
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
        .measurement_time(Duration::from_secs(3))
        .sample_size(10);
    targets = counter
}
criterion_main!(benches);
