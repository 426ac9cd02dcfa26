//! SPSC ring: mmring's ring between two processes against the mutex
//! version (a ring behind a process-shared `pthread_mutex_t` and condition
//! variables in the same kind of mapping), a Unix pipe, and — between two
//! threads — rtrb, crossbeam's `ArrayQueue` and `Mutex<VecDeque>`; u64 and
//! 64-byte messages, one per call and in batches. Round trips: mmring
//! spinning and blocking against one cache line bounced between the same
//! two processes (the floor), the mutex version and a pipe.
//!
//! The measurement is `mmring_cli::bench::group::spsc::SpscFixture`,
//! exactly what `mmring bench spsc` runs: each sample forks a child (or
//! starts a thread) that produces while the parent consumes and checks
//! every message; the parent times the window. Throughput is messages per second; a round-trip
//! sample is the time for `iters` round trips (criterion reports the mean
//! per round trip; `mmring bench spsc` reports p50 and p99).

use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mmring_cli::bench::group::Fixture;
use mmring_cli::bench::group::spsc::{Row, SpscFixture};
use mmring_cli::bench::runner::control::Budget;
use mmring_cli::bench::runner::flow::Size;

fn spsc(c: &mut Criterion) {
    let fixture = SpscFixture::new().expect("create the benchmark files in /dev/shm");
    for size in Size::ALL {
        for (kind, rows) in [("single", Row::SINGLE), ("batched", Row::BATCHED)] {
            let mut g = c.benchmark_group(format!("spsc_{}_{kind}", size.id()));
            g.throughput(Throughput::Elements(1));
            // Not iceoryx2's rows (the `iceoryx2` feature): their child sets
            // up its node on the heap, which a fork from criterion's
            // threads does not allow.
            for &row in rows.iter().filter(|r| r.has_throughput() && !r.iceoryx2()) {
                g.bench_function(row.id(), |b| {
                    b.iter_custom(|iters| {
                        fixture
                            .throughput(row, size, Budget::ops(iters))
                            .unwrap_or_else(|e| panic!("{} ({}): {e}", row.label(), size.name()))
                            .time_for(iters)
                    });
                });
            }
            g.finish();
        }
    }
    let mut g = c.benchmark_group("spsc_round_trip");
    for &row in Row::SINGLE
        .iter()
        .filter(|r| r.has_round_trips() && !r.iceoryx2())
    {
        g.bench_function(row.id(), |b| {
            b.iter_custom(|iters| {
                fixture
                    .round_trips(row, iters)
                    .unwrap_or_else(|e| panic!("{} (round trips): {e}", row.label()))
                    .elapsed
            });
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(1))
        .sample_size(10);
    targets = spsc
}
criterion_main!(benches);
