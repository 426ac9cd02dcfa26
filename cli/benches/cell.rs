//! `SeqCell` reads against `std::sync::RwLock` reads of the same 32-byte
//! value (`[u64; 4]`), with a writer storing continuously and without one.
//!
//! With a writer: `SeqCell::load` in the parent while a forked child calls
//! `SeqCell::store` in a loop on the same mapping; `RwLock::read` in this
//! thread while a second thread calls `RwLock::write` in a loop (in-process:
//! `std`'s lock cannot be shared between processes). Only the reads count.
//!
//! The measurement is `CellFixture::measure`
//! (`mmring_cli::bench::group::cell`), exactly what `mmring bench cell`
//! runs. Readers check that the four words agree, so a torn read fails the
//! benchmark.

mod common;

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use mmring_cli::bench::group::cell::CellFixture;

fn cell(c: &mut Criterion) {
    common::ops::<CellFixture>(c);
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
