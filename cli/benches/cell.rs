//! `SeqCell` reads against `std::sync::RwLock` reads of the same 32-byte
//! value (`[u64; 4]`), with a writer storing continuously and without one.
//!
//! With a writer: `SeqCell::load` in the parent while a forked child calls
//! `SeqCell::store` in a loop on the same mapping; `RwLock::read` in this
//! thread while a second thread calls `RwLock::write` in a loop (in-process:
//! `std`'s lock cannot be shared between processes). Only the reads count.
//!
//! The measurement is `mmring::bench::Fixture::measure`, exactly what
//! `mmring bench` runs. Readers check that the four words agree, so a torn
//! read fails the benchmark.

use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mmring::bench::{Budget, Fixture, Group};

fn cell(c: &mut Criterion) {
    let fixture = Fixture::new().expect("create the benchmark files in /dev/shm");
    for group in [Group::ReadWithWriter, Group::ReadAlone] {
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
    targets = cell
}
criterion_main!(benches);
