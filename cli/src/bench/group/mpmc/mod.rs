//! `mmring bench mpmc`: [`MpmcFixture`], every object the MPMC rows
//! measure, in one private directory, and [`Row`]: the rows themselves
//! ([`table`]: the table). `mmring bench mpmc` and the criterion bench
//! (`cli/benches/mpmc.rs`) both measure through
//! [`MpmcFixture::throughput`]; [`queue`] runs mmring's own queue.
//!
//! Every producer and consumer is a process of its own (forked for each
//! run) unless the row says threads: crossbeam's `ArrayQueue` and
//! `Mutex<VecDeque>` cannot cross a process boundary. The workload is
//! [`crowd`]'s: tagged messages, each checked on arrival.

pub mod queue;
pub mod table;

use std::cell::Cell;
use std::io;

use super::Fixture;
use crate::bench::baseline::mutex_ring::PthreadRing;
use crate::bench::peer::{self, Peer};
use crate::bench::runner::control::{Budget, Sample};
use crate::bench::runner::crowd::{self, Shape};
use crate::bench::runner::dir::{BenchDir, Stage};
use crate::bench::runner::flow::{Message, Msg64, Size};

/// Slots of every queue in the comparison.
pub const CAPACITY: usize = 1024;

/// The mechanism of a row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mech {
    /// [`PthreadRing`] shared by all the processes: the mutex version (the
    /// base of the ratios).
    MutexRing,
    /// `Mutex<VecDeque>`, one thread per party.
    MutexVecDeque,
    /// crossbeam `ArrayQueue`, one thread per party (no batch call).
    ArrayQueue,
    /// mmring's [`Queue`](mmring::mpmc::Queue): `try_push`/`try_pop`, or
    /// `push_slice`/`pop_slice`.
    Mmring,
}

/// One row of the table: a mechanism, a shape, one message per call or
/// batches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Row {
    /// The mechanism.
    pub mech: Mech,
    /// Producers and consumers.
    pub shape: Shape,
    /// [`BATCH`](crate::bench::runner::flow::BATCH) messages per call.
    pub batched: bool,
}

impl Row {
    /// The shapes, in table order.
    pub const SHAPES: [Shape; 2] = [Shape::ONE, Shape::TWO];

    /// The rows of a section (a shape, single or batched), base first.
    pub fn of(shape: Shape, batched: bool) -> Vec<Row> {
        let mechs: &[Mech] = if batched {
            &[Mech::MutexRing, Mech::MutexVecDeque, Mech::Mmring]
        } else {
            &[
                Mech::MutexRing,
                Mech::MutexVecDeque,
                Mech::ArrayQueue,
                Mech::Mmring,
            ]
        };
        mechs
            .iter()
            .map(|&mech| Row {
                mech,
                shape,
                batched,
            })
            .collect()
    }

    /// Every row, in table order.
    pub fn all() -> Vec<Row> {
        Self::SHAPES
            .into_iter()
            .flat_map(|shape| {
                [false, true]
                    .into_iter()
                    .flat_map(move |b| Row::of(shape, b))
            })
            .collect()
    }

    /// The mutex version with the same shape, used the same way.
    pub fn base(self) -> Row {
        Row {
            mech: Mech::MutexRing,
            ..self
        }
    }

    /// `ArrayQueue` with the same shape, one message per call (it has no
    /// batch call): the design's yardstick.
    pub fn array_queue(self) -> Row {
        Row {
            mech: Mech::ArrayQueue,
            shape: self.shape,
            batched: false,
        }
    }

    /// Whether the parties are processes (else threads of one process).
    pub fn processes(self) -> bool {
        matches!(self.mech, Mech::MutexRing | Mech::Mmring)
    }

    /// The mechanism, as the table names it.
    pub fn label(self) -> &'static str {
        match (self.mech, self.batched) {
            (Mech::MutexRing, false) => "pthread mutex+condvar ring (PROCESS_SHARED)",
            (Mech::MutexRing, true) => "pthread mutex+condvar ring, 1 lock per batch",
            (Mech::MutexVecDeque, false) => "Mutex<VecDeque>, threads",
            (Mech::MutexVecDeque, true) => "Mutex<VecDeque>, 1 lock per batch, threads",
            (Mech::ArrayQueue, _) => "crossbeam ArrayQueue, threads",
            (Mech::Mmring, false) => "mmring mpmc try_push/try_pop (spinning)",
            (Mech::Mmring, true) => "mmring mpmc push_slice/pop_slice",
        }
    }

    /// The row's name in criterion's reports.
    pub fn id(self) -> String {
        let mech = match self.mech {
            Mech::MutexRing => "pthread_mutex_ring",
            Mech::MutexVecDeque => "mutex_vecdeque_threads",
            Mech::ArrayQueue => "arrayqueue_threads",
            Mech::Mmring => "mmring",
        };
        let batched = if self.batched { "_batched" } else { "" };
        format!("{mech}{batched}")
    }
}

/// Every object the MPMC rows measure that lives for the whole fixture:
/// the control words and the mutex versions' rings. The mmring queues are
/// made fresh for each run (a run leaves messages behind). Each file is
/// unlinked as soon as it is mapped.
#[derive(Debug)]
pub struct MpmcFixture {
    mutex_u64: PthreadRing<u64>,
    mutex_64: PthreadRing<Msg64>,
    /// Numbers the per-run queue files.
    runs: Cell<u64>,
    /// Declared last, so dropped last: removes the directory.
    stage: Stage,
}

impl Fixture for MpmcFixture {
    fn new_in(dir: BenchDir) -> io::Result<Self> {
        let stage = Stage::new(dir, crowd::WORDS)?;
        let dir = stage.dir();
        Ok(Self {
            mutex_u64: PthreadRing::create(&dir.file("mutex-u64"), CAPACITY)?,
            mutex_64: PthreadRing::create(&dir.file("mutex-64"), CAPACITY)?,
            runs: Cell::new(0),
            stage,
        })
    }

    fn stage(&self) -> &Stage {
        &self.stage
    }
}

impl MpmcFixture {
    /// Runs `row` once for `budget` with messages of `size`: messages taken
    /// by all consumers together, per second.
    ///
    /// Forks: call it from a thread that may fork (criterion's main
    /// thread, the command line's only thread).
    ///
    /// # Errors
    ///
    /// If the run fails (see [`crowd::procs`]).
    pub fn throughput(&self, row: Row, size: Size, budget: Budget) -> io::Result<Sample> {
        match size {
            Size::U64 => self.throughput_of::<u64>(row, budget, &self.mutex_u64),
            Size::Bytes64 => self.throughput_of::<Msg64>(row, budget, &self.mutex_64),
        }
    }

    fn throughput_of<M: Message>(
        &self,
        row: Row,
        budget: Budget,
        mutex: &PthreadRing<M>,
    ) -> io::Result<Sample> {
        let (shape, b) = (row.shape, row.batched);
        match row.mech {
            Mech::MutexRing => {
                mutex.clear();
                crowd::procs(
                    self.stage.words(),
                    shape,
                    budget,
                    b,
                    |_| mutex,
                    |_| mutex,
                    &|| mutex.wake_all(),
                )
            }
            Mech::MutexVecDeque => {
                peer::crowd_throughput::<M>(Peer::MutexVecDeque, shape, budget, b, CAPACITY)
            }
            Mech::ArrayQueue => {
                peer::crowd_throughput::<M>(Peer::ArrayQueue, shape, budget, b, CAPACITY)
            }
            Mech::Mmring => {
                let n = self.runs.get();
                self.runs.set(n + 1);
                let path = self.stage.dir().file(&format!("queue-{n}"));
                queue::throughput::<M>(self.stage.words(), shape, budget, b, &path, CAPACITY)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::group;
    use crate::bench::runner::flow::BATCH;

    #[test]
    fn every_row_runs_checks_its_messages_and_leaves_no_file() {
        let fixture = MpmcFixture::new().expect("fixture");
        for row in Row::all() {
            for size in Size::ALL {
                let sample = fixture
                    .throughput(row, size, Budget::ops(3 * BATCH as u64 * 100))
                    .unwrap_or_else(|e| panic!("{row:?} {size:?}: {e}"));
                assert!(sample.ops >= 3000, "{row:?} {size:?}: {sample:?}");
            }
            group::tests::no_file_left(&fixture, &row);
        }
        group::tests::dropped_with_its_directory(fixture);
    }

    #[test]
    fn every_row_has_a_base_and_an_array_queue_in_its_shape() {
        let all = Row::all();
        for row in &all {
            assert!(all.contains(&row.base()));
            assert!(all.contains(&row.array_queue()));
            assert_eq!(Row::of(row.shape, row.batched)[0], row.base());
        }
    }
}
