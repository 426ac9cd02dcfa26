//! Map `update(k, |v| v + 1)`: mmring's `Map<u64, u64>` against a
//! fixed-capacity hash table of `(u64, u64)` behind a process-shared
//! `pthread_mutex_t` in the same kind of mapping (std's `HashMap` cannot
//! live in a mapping: see `mmring_cli::bench::baseline::mutex_map`), from
//! two processes at once, on one hot key and over 1024 keys.
//!
//! The measurement is `MapFixture::measure`
//! (`mmring_cli::bench::group::map`), exactly what `mmring bench map` runs:
//! each sample forks a child, both processes start on a shared flag and
//! update; the parent times the window, counts the updates of both and
//! checks that the values grew by exactly that many. Throughput is updates per second of the two together.

mod common;

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use mmring_cli::bench::group::map::MapFixture;

fn map(c: &mut Criterion) {
    common::ops::<MapFixture>(c);
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
