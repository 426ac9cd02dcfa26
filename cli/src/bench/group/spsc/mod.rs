//! `mmring bench spsc`: [`SpscFixture`], every object the SPSC rows
//! measure, in one private directory, and [`Row`]: the rows themselves
//! ([`table`]: the table). `mmring bench spsc` and the criterion bench
//! (`cli/benches/spsc.rs`) both measure through
//! [`SpscFixture::throughput`] and [`SpscFixture::round_trips`];
//! [`ring`] runs mmring's own ring.
//!
//! Both sides run in separate processes (the parent, and a child forked for
//! each run) unless the row says threads: rtrb, `ArrayQueue` and
//! `Mutex<VecDeque>` cannot cross a process boundary. iceoryx2's rows
//! (built with the `iceoryx2` feature) run between two processes too.

pub mod ring;
pub mod table;

use std::cell::Cell;
use std::io;
use std::time::Duration;

use self::ring::Mode;
use super::Fixture;
use crate::bench::baseline::mutex_ring::{self, PthreadRing};
use crate::bench::baseline::pipe;
use crate::bench::peer::{self, Peer};
use crate::bench::runner::control::{Budget, Sample, WORDS};
use crate::bench::runner::dir::{BenchDir, Stage};
use crate::bench::runner::floor::CacheLine;
use crate::bench::runner::flow::{Message, Msg64, Size};
use crate::bench::runner::roundtrip::RoundTrips;

/// Slots of every queue in the comparison.
pub const CAPACITY: usize = 1024;

/// The mechanism of a row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mech {
    /// [`PthreadRing`]: the mutex version (the base of the ratios).
    MutexRing,
    /// `pipe(2)`.
    Pipe,
    /// `Mutex<VecDeque>`, two threads.
    MutexVecDeque,
    /// crossbeam `ArrayQueue`, two threads.
    ArrayQueue,
    /// rtrb, two threads.
    Rtrb,
    /// mmring's ring, `try_push`/`try_pop` (or the batch calls).
    Mmring,
    /// mmring's ring, `push`/`pop`.
    MmringBlocking,
    /// One cache line bounced ([`CacheLine`]): round trips only.
    Floor,
    /// iceoryx2 publish-subscribe, busy polling (the `iceoryx2` feature):
    /// throughput, and round trips of a `u64`.
    Iceoryx2,
    /// iceoryx2 publish-subscribe round trips of a 64-byte message.
    Iceoryx2Msg64,
    /// iceoryx2 events (notifier and listener): blocking round trips.
    Iceoryx2Event,
}

/// The sections of the table: how the mechanisms are used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Section {
    /// One message per call: throughput, and round trips where the
    /// mechanism crosses a process boundary.
    Single,
    /// [`BATCH`](crate::bench::runner::flow::BATCH) messages per call:
    /// throughput.
    Batched,
    /// Round trips of the blocking mechanisms with a pause of [`GAP`]
    /// before each, so that the echo side is asleep when a message arrives
    /// (and the timing side sleeps too whenever the answer takes longer
    /// than its wait spins: the table counts how often): the cost of a
    /// wake-up, through the futex or the kernel's pipe and
    /// condition-variable paths.
    Asleep,
}

/// The pause before each round trip of the [`Section::Asleep`] rows:
/// longer than any wait spins or yields before sleeping.
pub const GAP: Duration = Duration::from_micros(100);

/// One row of the table: a mechanism, used as its section says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Row {
    /// The mechanism.
    pub mech: Mech,
    /// How it is used.
    pub section: Section,
}

const fn row(mech: Mech, section: Section) -> Row {
    Row { mech, section }
}

impl Row {
    /// `mech` used as `section` says.
    pub const fn new(mech: Mech, section: Section) -> Row {
        row(mech, section)
    }

    /// The rows that send one message per call, base first (the iceoryx2
    /// rows with the `iceoryx2` feature only).
    pub const SINGLE: &'static [Row] = &[
        row(Mech::MutexRing, Section::Single),
        row(Mech::Pipe, Section::Single),
        row(Mech::MutexVecDeque, Section::Single),
        row(Mech::ArrayQueue, Section::Single),
        row(Mech::Rtrb, Section::Single),
        row(Mech::Mmring, Section::Single),
        row(Mech::MmringBlocking, Section::Single),
        row(Mech::Floor, Section::Single),
        #[cfg(feature = "iceoryx2")]
        row(Mech::Iceoryx2, Section::Single),
        #[cfg(feature = "iceoryx2")]
        row(Mech::Iceoryx2Msg64, Section::Single),
        #[cfg(feature = "iceoryx2")]
        row(Mech::Iceoryx2Event, Section::Single),
    ];

    /// The rows that send [`BATCH`](crate::bench::runner::flow::BATCH)
    /// messages per call, base first.
    pub const BATCHED: &'static [Row] = &[
        row(Mech::MutexRing, Section::Batched),
        row(Mech::Pipe, Section::Batched),
        row(Mech::MutexVecDeque, Section::Batched),
        row(Mech::Rtrb, Section::Batched),
        row(Mech::Mmring, Section::Batched),
    ];

    /// The round trips with the echo side asleep, base first.
    pub const ASLEEP: &'static [Row] = &[
        row(Mech::MutexRing, Section::Asleep),
        row(Mech::Pipe, Section::Asleep),
        row(Mech::MmringBlocking, Section::Asleep),
        #[cfg(feature = "iceoryx2")]
        row(Mech::Iceoryx2Event, Section::Asleep),
    ];

    /// Every row, in table order.
    pub fn all() -> impl Iterator<Item = Row> {
        Self::SINGLE
            .iter()
            .chain(Self::BATCHED)
            .chain(Self::ASLEEP)
            .copied()
    }

    /// The rows of `section`, base first.
    pub fn of(section: Section) -> &'static [Row] {
        match section {
            Section::Single => Self::SINGLE,
            Section::Batched => Self::BATCHED,
            Section::Asleep => Self::ASLEEP,
        }
    }

    /// Whether messages go [`BATCH`](crate::bench::runner::flow::BATCH) per
    /// call.
    pub fn batched(self) -> bool {
        self.section == Section::Batched
    }

    /// The row the others of its section are compared against: the mutex
    /// version, used the same way.
    pub fn base(self) -> Row {
        row(Mech::MutexRing, self.section)
    }

    /// Whether the row measures iceoryx2 (built with the `iceoryx2` feature
    /// only; `mmring bench` only, not the criterion bench).
    pub fn iceoryx2(self) -> bool {
        matches!(
            self.mech,
            Mech::Iceoryx2 | Mech::Iceoryx2Msg64 | Mech::Iceoryx2Event
        )
    }

    /// Whether the row has a throughput figure.
    pub fn has_throughput(self) -> bool {
        !matches!(
            self.mech,
            Mech::Floor | Mech::Iceoryx2Msg64 | Mech::Iceoryx2Event
        ) && self.section != Section::Asleep
    }

    /// Whether the row has round trips: the mechanisms that cross a process
    /// boundary, one message at a time.
    pub fn has_round_trips(self) -> bool {
        match self.section {
            Section::Single => matches!(
                self.mech,
                Mech::MutexRing
                    | Mech::Pipe
                    | Mech::Mmring
                    | Mech::MmringBlocking
                    | Mech::Floor
                    | Mech::Iceoryx2
                    | Mech::Iceoryx2Msg64
                    | Mech::Iceoryx2Event
            ),
            Section::Batched => false,
            Section::Asleep => true,
        }
    }

    /// The mechanism, as the table names it.
    pub fn label(self) -> &'static str {
        use Section::{Asleep, Batched, Single};
        match (self.mech, self.section) {
            (Mech::MutexRing, Single) => "pthread mutex+condvar ring (PROCESS_SHARED)",
            (Mech::MutexRing, Batched) => "pthread mutex+condvar ring, 1 lock per batch",
            (Mech::MutexRing, Asleep) => "pthread mutex+condvar ring, echo side asleep",
            (Mech::Pipe, Single) => "Unix pipe, 1 message per write/read",
            (Mech::Pipe, Batched) => "Unix pipe, 1 batch per write",
            (Mech::Pipe, Asleep) => "Unix pipe, echo side asleep",
            (Mech::MutexVecDeque, Batched) => "Mutex<VecDeque>, 1 lock per batch, 2 threads",
            (Mech::MutexVecDeque, _) => "Mutex<VecDeque>, 2 threads",
            (Mech::ArrayQueue, _) => "crossbeam ArrayQueue, 2 threads",
            (Mech::Rtrb, Batched) => "rtrb push/pop_partial_slice, 2 threads",
            (Mech::Rtrb, _) => "rtrb push/pop, 2 threads",
            (Mech::Mmring, Batched) => "mmring spsc push_slice/pop_slice",
            (Mech::Mmring, _) => "mmring spsc try_push/try_pop (spinning)",
            (Mech::MmringBlocking, Asleep) => "mmring spsc push/pop_timeout, echo side asleep",
            (Mech::MmringBlocking, _) => "mmring spsc push/pop_timeout (blocking)",
            (Mech::Floor, _) => "one cache line bounced (the floor)",
            (Mech::Iceoryx2, _) => "iceoryx2 publish/subscribe (busy poll)",
            (Mech::Iceoryx2Msg64, _) => "iceoryx2 publish/subscribe, 64 B round trips",
            (Mech::Iceoryx2Event, Asleep) => "iceoryx2 event notify/wait, echo side asleep",
            (Mech::Iceoryx2Event, _) => "iceoryx2 event notify/wait (blocking)",
        }
    }

    /// How the round trip waits: "spin" or "block".
    pub fn waits(self) -> &'static str {
        match self.mech {
            Mech::Mmring | Mech::Floor | Mech::Iceoryx2 | Mech::Iceoryx2Msg64 => "spin",
            _ => "block",
        }
    }

    /// The row's name in criterion's reports.
    pub fn id(self) -> &'static str {
        use Section::{Asleep, Batched, Single};
        match (self.mech, self.section) {
            (Mech::MutexRing, Single) => "pthread_mutex_ring",
            (Mech::MutexRing, Batched) => "pthread_mutex_ring_batched",
            (Mech::MutexRing, Asleep) => "pthread_mutex_ring_asleep",
            (Mech::Pipe, Single) => "pipe",
            (Mech::Pipe, Batched) => "pipe_batched",
            (Mech::Pipe, Asleep) => "pipe_asleep",
            (Mech::MutexVecDeque, Batched) => "mutex_vecdeque_threads_batched",
            (Mech::MutexVecDeque, _) => "mutex_vecdeque_threads",
            (Mech::ArrayQueue, _) => "arrayqueue_threads",
            (Mech::Rtrb, Batched) => "rtrb_threads_batched",
            (Mech::Rtrb, _) => "rtrb_threads",
            (Mech::Mmring, Batched) => "mmring_batched",
            (Mech::Mmring, _) => "mmring_spin",
            (Mech::MmringBlocking, Asleep) => "mmring_blocking_asleep",
            (Mech::MmringBlocking, _) => "mmring_blocking",
            (Mech::Floor, _) => "floor_cache_line",
            (Mech::Iceoryx2, _) => "iceoryx2_pubsub",
            (Mech::Iceoryx2Msg64, _) => "iceoryx2_pubsub_64b",
            (Mech::Iceoryx2Event, Asleep) => "iceoryx2_event_asleep",
            (Mech::Iceoryx2Event, _) => "iceoryx2_event",
        }
    }
}

/// Every object the SPSC rows measure that lives for the whole fixture: the
/// control words, the mutex versions' rings and the floor's cache line.
/// The mmring rings and the pipes are made fresh for each run (a run leaves
/// messages behind, and the parent's copy of a producer does not know how
/// far the child got). Each file is unlinked as soon as it is mapped.
#[derive(Debug)]
pub struct SpscFixture {
    mutex_u64: PthreadRing<u64>,
    mutex_64: PthreadRing<Msg64>,
    /// The way back of the mutex version's round trips.
    mutex_pong: PthreadRing<u64>,
    floor: CacheLine,
    /// The iceoryx2 rows' services and their files.
    #[cfg(feature = "iceoryx2")]
    iceoryx2: crate::bench::peer::iceoryx2::Session,
    /// Numbers the per-run ring files.
    runs: Cell<u64>,
    /// Declared last, so dropped last: removes the directory.
    stage: Stage,
}

impl Fixture for SpscFixture {
    fn new_in(dir: BenchDir) -> io::Result<Self> {
        let stage = Stage::new(dir, WORDS)?;
        let dir = stage.dir();
        Ok(Self {
            mutex_u64: PthreadRing::create(&dir.file("mutex-u64"), CAPACITY)?,
            mutex_64: PthreadRing::create(&dir.file("mutex-64"), CAPACITY)?,
            mutex_pong: PthreadRing::create(&dir.file("mutex-pong"), CAPACITY)?,
            floor: CacheLine::create(&dir.file("floor"))?,
            #[cfg(feature = "iceoryx2")]
            iceoryx2: crate::bench::peer::iceoryx2::Session::new()?,
            runs: Cell::new(0),
            stage,
        })
    }

    fn stage(&self) -> &Stage {
        &self.stage
    }
}

impl SpscFixture {
    /// A fresh file name for a run's ring.
    fn next_path(&self) -> std::path::PathBuf {
        let n = self.runs.get();
        self.runs.set(n + 1);
        self.stage.dir().file(&format!("ring-{n}"))
    }

    /// Runs `row`'s throughput workload once for `budget` with messages of
    /// `size`: the parent consumes (and counts), a fresh child process (or
    /// a second thread) produces.
    ///
    /// Forks: call it from a thread that may fork (criterion's main
    /// thread, the command line's only thread).
    ///
    /// # Errors
    ///
    /// For a row without throughput ([`Row::has_throughput`]); if the run
    /// fails.
    pub fn throughput(&self, row: Row, size: Size, budget: Budget) -> io::Result<Sample> {
        if !row.has_throughput() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} has no throughput", row.label()),
            ));
        }
        #[cfg(feature = "iceoryx2")]
        if row.mech == Mech::Iceoryx2 {
            use crate::bench::peer::iceoryx2::throughput;
            let (session, control) = (&self.iceoryx2, self.stage.control());
            return match size {
                Size::U64 => throughput::<u64>(session, control, budget, CAPACITY),
                Size::Bytes64 => throughput::<Msg64>(session, control, budget, CAPACITY),
            };
        }
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
        let control = self.stage.control();
        let b = row.batched();
        match row.mech {
            Mech::MutexRing => mutex_ring::throughput(mutex, control, budget, b),
            Mech::Pipe => pipe::throughput::<M>(control, budget, b),
            Mech::MutexVecDeque => {
                peer::throughput::<M>(Peer::MutexVecDeque, control, budget, b, CAPACITY)
            }
            Mech::ArrayQueue => {
                peer::throughput::<M>(Peer::ArrayQueue, control, budget, b, CAPACITY)
            }
            Mech::Rtrb => peer::throughput::<M>(Peer::Rtrb, control, budget, b, CAPACITY),
            Mech::Mmring => {
                let mode = if b { Mode::Batched } else { Mode::Spinning };
                ring::throughput::<M>(control, budget, mode, &self.next_path(), CAPACITY)
            }
            Mech::MmringBlocking => {
                ring::throughput::<M>(control, budget, Mode::Blocking, &self.next_path(), CAPACITY)
            }
            // Taken in `throughput` (its payloads are iceoryx2's too).
            #[cfg(feature = "iceoryx2")]
            Mech::Iceoryx2 => Err(io::ErrorKind::InvalidInput.into()),
            #[cfg(not(feature = "iceoryx2"))]
            Mech::Iceoryx2 => Err(without_iceoryx2()),
            // Refused above (no throughput): here for completeness.
            Mech::Floor | Mech::Iceoryx2Msg64 | Mech::Iceoryx2Event => {
                Err(io::ErrorKind::InvalidInput.into())
            }
        }
    }

    /// Runs `n` timed round trips of a `u64` for `row` between this process
    /// and a fresh child.
    ///
    /// # Errors
    ///
    /// For a row without round trips; if the run fails.
    pub fn round_trips(&self, row: Row, n: u64) -> io::Result<RoundTrips> {
        if !row.has_round_trips() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} has no round trips", row.label()),
            ));
        }
        let gap = (row.section == Section::Asleep).then_some(GAP);
        match row.mech {
            Mech::MutexRing => mutex_ring::round_trips(&self.mutex_u64, &self.mutex_pong, n, gap),
            Mech::Pipe => pipe::round_trips(n, gap),
            Mech::Mmring | Mech::MmringBlocking => {
                let (a, b) = (self.next_path(), self.next_path());
                let blocking = row.mech == Mech::MmringBlocking;
                ring::round_trips(blocking, [&a, &b], CAPACITY, n, gap)
            }
            #[cfg(feature = "iceoryx2")]
            Mech::Iceoryx2 => {
                crate::bench::peer::iceoryx2::round_trips::<u64>(&self.iceoryx2, n, gap)
            }
            #[cfg(feature = "iceoryx2")]
            Mech::Iceoryx2Msg64 => {
                crate::bench::peer::iceoryx2::round_trips::<Msg64>(&self.iceoryx2, n, gap)
            }
            #[cfg(feature = "iceoryx2")]
            Mech::Iceoryx2Event => {
                crate::bench::peer::iceoryx2::event_round_trips(&self.iceoryx2, n, gap)
            }
            #[cfg(not(feature = "iceoryx2"))]
            Mech::Iceoryx2 | Mech::Iceoryx2Msg64 | Mech::Iceoryx2Event => Err(without_iceoryx2()),
            _ => self.floor.round_trips(n),
        }
    }
}

/// The error of an iceoryx2 row in a build without the `iceoryx2` feature.
#[cfg(not(feature = "iceoryx2"))]
fn without_iceoryx2() -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        "built without iceoryx2: cargo run --release --features iceoryx2 -- bench spsc",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::group;
    use crate::bench::runner::flow::BATCH;

    #[test]
    fn every_row_runs_checks_its_messages_and_leaves_no_file() {
        let fixture = SpscFixture::new().expect("fixture");
        for row in Row::all() {
            if row.has_throughput() {
                for size in Size::ALL {
                    let sample = fixture
                        .throughput(row, size, Budget::ops(3 * BATCH as u64 * 100))
                        .unwrap_or_else(|e| panic!("{row:?} {size:?}: {e}"));
                    assert!(sample.ops >= 3000, "{row:?} {size:?}: {sample:?}");
                    assert!(sample.peer_ops > 0, "{row:?} {size:?}: {sample:?}");
                }
            } else {
                assert!(fixture.throughput(row, Size::U64, Budget::ops(10)).is_err());
            }
            if row.has_round_trips() {
                let rt = fixture
                    .round_trips(row, 200)
                    .unwrap_or_else(|e| panic!("{row:?}: {e}"));
                assert_eq!(rt.nanos.len(), 200, "{row:?}");
                assert!(rt.nanos.iter().all(|&n| n > 0), "{row:?}");
            } else {
                assert!(fixture.round_trips(row, 10).is_err());
            }
            group::tests::no_file_left(&fixture, &row);
        }
        group::tests::dropped_with_its_directory(fixture);
    }

    #[test]
    fn every_row_has_a_base_in_its_group() {
        for row in Row::all() {
            let group = Row::of(row.section);
            assert_eq!(group[0], row.base());
            assert!(group.contains(&row));
        }
    }
}
