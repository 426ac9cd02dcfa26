//! MPMC queue: mmring's `mpmc::Queue` with one producer and one consumer
//! (1P1C) and with two of each (2P2C), every party a process of its own,
//! against the mutex version (a ring behind a process-shared
//! `pthread_mutex_t` and condition variables in the same kind of mapping,
//! shared by the same processes) and — between threads — crossbeam's
//! `ArrayQueue` and `Mutex<VecDeque>`; u64 and 64-byte messages, one per
//! call and in batches.
//!
//! The measurement is `mmring_cli::bench::group::mpmc::MpmcFixture`, exactly
//! what `mmring bench mpmc` runs: each sample forks the producers and
//! consumers (or starts threads), which run until the consumers together
//! have taken `iters` messages, each checked (per-producer order, exact
//! count); the parent only coordinates and times. Throughput is messages
//! per second taken by all consumers together.

use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mmring_cli::bench::group::Fixture;
use mmring_cli::bench::group::mpmc::{MpmcFixture, Row};
use mmring_cli::bench::runner::control::Budget;
use mmring_cli::bench::runner::flow::Size;

fn mpmc(c: &mut Criterion) {
    let fixture = MpmcFixture::new().expect("create the benchmark files in /dev/shm");
    for size in Size::ALL {
        for shape in Row::SHAPES {
            for batched in [false, true] {
                let kind = if batched { "batched" } else { "single" };
                let mut g = c.benchmark_group(format!(
                    "mpmc_{}_{}_{kind}",
                    shape.name().to_lowercase(),
                    size.id()
                ));
                g.throughput(Throughput::Elements(1));
                for row in Row::of(shape, batched) {
                    g.bench_function(row.id(), |b| {
                        b.iter_custom(|iters| {
                            fixture
                                .throughput(row, size, Budget::ops(iters))
                                .unwrap_or_else(|e| {
                                    panic!(
                                        "{} {} ({}): {e}",
                                        shape.name(),
                                        row.label(),
                                        size.name()
                                    )
                                })
                                .time_for(iters)
                        });
                    });
                }
                g.finish();
            }
        }
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(1))
        .sample_size(10);
    targets = mpmc
}
criterion_main!(benches);
