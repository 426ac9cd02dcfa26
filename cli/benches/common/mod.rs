//! What the counter, cell and map benches share: every row of a
//! comparison measured in operations per second, through the fixture that
//! `mmring bench` measures through ([`Comparison::measure`]).

use criterion::{Criterion, Throughput};
use mmring_cli::bench::group::ops::{Comparison, Row, Section};
use mmring_cli::bench::runner::control::Budget;

/// One criterion group per section of `C`, one function per row: each
/// sample runs the row for `iters` operations (both processes', where the
/// row has two) and reports the time they took.
pub fn ops<C: Comparison>(c: &mut Criterion) {
    let fixture = C::new().expect("create the benchmark files in /dev/shm");
    for &section in C::SECTIONS {
        let mut g = c.benchmark_group(section.id());
        g.throughput(Throughput::Elements(1));
        for &row in section.rows() {
            g.bench_function(row.id(), |b| {
                b.iter_custom(|iters| {
                    fixture
                        .measure(row, Budget::ops(iters))
                        .unwrap_or_else(|e| panic!("{}: {e}", row.label()))
                        .time_for(iters)
                });
            });
        }
        g.finish();
    }
}
