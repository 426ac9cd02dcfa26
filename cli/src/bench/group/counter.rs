//! `mmring bench counter`: `fetch_add(1)` on mmring's
//! [`Counter`] against an `i64` behind a process-shared
//! `pthread_mutex_t` ([`PthreadCounter`]) and a bare `AtomicU64` on the
//! same kind of mapping ([`RawCounter`]: the physical operation), from two
//! processes at once and from one. [`CounterFixture`] holds the objects;
//! the table is [`ops`](super::ops)'.

use std::hint::black_box;
use std::io;

use mmring::Counter;

use super::Fixture;
use super::ops::{Comparison, Row, Section, child_share};
use crate::bench::baseline::bare_atomic::RawCounter;
use crate::bench::baseline::pthread::PthreadCounter;
use crate::bench::report::{Stats, met};
use crate::bench::runner::control::{self, Budget, Counted, Sample, WORDS};
use crate::bench::runner::dir::{BenchDir, Stage};
use crate::bench::runner::procs;

/// A section of the table: rows compared against one baseline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Group {
    /// `fetch_add(1)` on one counter from two processes at once.
    CounterTwoProcs,
    /// `fetch_add(1)` from one process, uncontended.
    CounterOneProc,
}

impl Section for Group {
    type Row = Case;

    fn title(self) -> &'static str {
        match self {
            Group::CounterTwoProcs => {
                "counter fetch_add(1), 2 processes on one counter (ops of both)"
            }
            Group::CounterOneProc => "counter fetch_add(1), 1 process, uncontended",
        }
    }

    fn id(self) -> &'static str {
        match self {
            Group::CounterTwoProcs => "counter_fetch_add_2procs",
            Group::CounterOneProc => "counter_fetch_add_1proc",
        }
    }

    fn rows(self) -> &'static [Case] {
        match self {
            Group::CounterTwoProcs => &[
                Case::MutexTwoProcs,
                Case::RawTwoProcs,
                Case::CounterTwoProcs,
            ],
            Group::CounterOneProc => &[Case::MutexOneProc, Case::RawOneProc, Case::CounterOneProc],
        }
    }

    fn peer(self, s: &Stats) -> String {
        match self {
            Group::CounterTwoProcs => child_share(s),
            Group::CounterOneProc => String::new(),
        }
    }
}

/// One row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Case {
    /// `PthreadCounter::fetch_add`, parent and child.
    MutexTwoProcs,
    /// `AtomicU64::fetch_add` on a mapped word, parent and child.
    RawTwoProcs,
    /// `Counter::fetch_add`, parent and child.
    CounterTwoProcs,
    /// `PthreadCounter::fetch_add`, one process.
    MutexOneProc,
    /// `AtomicU64::fetch_add` on a mapped word, one process.
    RawOneProc,
    /// `Counter::fetch_add`, one process.
    CounterOneProc,
}

impl Row for Case {
    fn label(self) -> &'static str {
        match self {
            Case::MutexTwoProcs | Case::MutexOneProc => {
                "pthread_mutex_t (PROCESS_SHARED) + i64, mapped"
            }
            Case::RawTwoProcs | Case::RawOneProc => "raw AtomicU64::fetch_add, mapped",
            Case::CounterTwoProcs | Case::CounterOneProc => "mmring Counter::fetch_add",
        }
    }

    fn id(self) -> &'static str {
        match self {
            Case::MutexTwoProcs | Case::MutexOneProc => "pthread_mutex",
            Case::RawTwoProcs | Case::RawOneProc => "raw_atomic",
            Case::CounterTwoProcs | Case::CounterOneProc => "mmring_counter",
        }
    }
}

/// Every object the counter rows measure. Each file is created in a
/// private directory and unlinked as soon as it is mapped: the processes
/// of a run share the mappings (inherited through `fork`), never the
/// names.
#[derive(Debug)]
pub struct CounterFixture {
    counter: Counter,
    raw: RawCounter,
    mutex: PthreadCounter,
    /// Declared last, so dropped last: removes the directory.
    stage: Stage,
}

impl Fixture for CounterFixture {
    fn new_in(dir: BenchDir) -> io::Result<Self> {
        let stage = Stage::new(dir, WORDS)?;
        let dir = stage.dir();
        Ok(Self {
            counter: dir.unlinked("counter", |p| {
                Counter::create(p, 0).map_err(io::Error::other)
            })?,
            raw: RawCounter::create(&dir.file("raw"))?,
            mutex: PthreadCounter::create(&dir.file("mutex"))?,
            stage,
        })
    }

    fn stage(&self) -> &Stage {
        &self.stage
    }
}

impl Comparison for CounterFixture {
    type Section = Group;

    const NAME: &'static str = "counter";

    const SECTIONS: &'static [Group] = &[Group::CounterTwoProcs, Group::CounterOneProc];

    fn measure(&self, case: Case, budget: Budget) -> io::Result<Sample> {
        let control = self.stage.control();
        match case {
            Case::MutexTwoProcs => procs::run(
                control,
                budget,
                Counted::Both,
                || used(self.mutex.fetch_add(1)),
                || used(self.mutex.fetch_add(1)),
            ),
            Case::RawTwoProcs => procs::run(
                control,
                budget,
                Counted::Both,
                || used(self.raw.fetch_add(1)),
                || used(self.raw.fetch_add(1)),
            ),
            Case::CounterTwoProcs => procs::run(
                control,
                budget,
                Counted::Both,
                || used(self.counter.fetch_add(1)),
                || used(self.counter.fetch_add(1)),
            ),
            Case::MutexOneProc => control::alone(budget, || used(self.mutex.fetch_add(1))),
            Case::RawOneProc => control::alone(budget, || used(self.raw.fetch_add(1))),
            Case::CounterOneProc => control::alone(budget, || used(self.counter.fetch_add(1))),
        }
    }

    fn target(case: Case, median: f64, base: f64, stat: &dyn Fn(Case) -> Stats) -> String {
        match case {
            Case::CounterTwoProcs => {
                let raw = median / stat(Case::RawTwoProcs).median;
                format!(
                    ">= 2x mutex: {}; {raw:.2}x raw, >= 0.9x: {}",
                    met(median >= 2.0 * base),
                    met(raw >= 0.9)
                )
            }
            Case::CounterOneProc => {
                let raw = median / stat(Case::RawOneProc).median;
                format!("{raw:.2}x raw")
            }
            _ => String::new(),
        }
    }

    fn check(stat: &dyn Fn(Case) -> Stats) {
        let (two, one) = (
            stat(Case::RawTwoProcs).median,
            stat(Case::RawOneProc).median,
        );
        if two > 0.8 * one {
            eprintln!(
                "warning: two processes on one counter ran at {:.0}% of the speed of one alone: \
                 they were mostly not running at the same time (a busy machine?), so the \
                 contended rows read too high",
                100.0 * two / one
            );
        }
    }
}

/// Keeps `v` from being optimized away; always `true` (the operation
/// cannot fail).
#[inline]
fn used<T>(v: T) -> bool {
    black_box(v);
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::group::ops;

    #[test]
    fn every_row_runs_and_counts_every_operation_exactly() {
        ops::tests::every_row_runs::<CounterFixture>(|f, case| match case {
            Case::MutexTwoProcs | Case::MutexOneProc => Some(f.mutex.load() as u64),
            Case::RawTwoProcs | Case::RawOneProc => Some(f.raw.load()),
            Case::CounterTwoProcs | Case::CounterOneProc => Some(f.counter.load() as u64),
        });
    }
}
