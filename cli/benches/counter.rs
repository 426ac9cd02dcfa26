//! Counter `fetch_add(1)`: mmring's `Counter` against a bare
//! `AtomicU64::fetch_add` on the same kind of mapping (the physical
//! operation) and against an `i64` behind a process-shared
//! `pthread_mutex_t`, from two processes at once and from one.
//!
//! The measurement is `CounterFixture::measure`
//! (`mmring_cli::bench::group::counter`), exactly what `mmring bench
//! counter` runs: each sample forks a child, both processes start on a
//! shared flag and hammer the same counter; the parent times the window and
//! counts the operations of both. Throughput is operations per second of
//! the two together.

mod common;

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use mmring_cli::bench::group::counter::CounterFixture;

fn counter(c: &mut Criterion) {
    common::ops::<CounterFixture>(c);
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
