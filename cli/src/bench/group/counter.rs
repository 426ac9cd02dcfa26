//! [`Fixture`]: every object the benchmark rows measure, in one private
//! directory, and [`Case`]: the rows themselves. `mmring bench` and the
//! criterion benches (`benches/counter.rs`, `benches/cell.rs`) both call
//! [`Fixture::measure`], so they measure exactly the same thing.

use std::hint::black_box;
use std::io;
use std::path::Path;
use std::sync::RwLock;

use super::control::{self, Budget, Control, Counted, Sample, WORDS};
use super::dir::BenchDir;
use super::pthread::PthreadCounter;
use super::pthread_map::PthreadMap;
use super::raw::RawCounter;
use super::{procs, threads};
use crate::cell::SeqCell;
use crate::counter::Counter;
use crate::layout::Kind;
use crate::map::Map;
use crate::pod::TypeInfo;
use crate::region::{CreateOptions, Expect, Region, View};
use crate::sync::AtomicU64;

/// The value the read rows share: four words, as a small record would be.
/// Writers store `[n; 4]`; readers check that all four words agree, so a
/// torn read fails the run.
pub type Payload = [u64; 4];

/// A group of rows compared against one baseline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Group {
    /// `fetch_add(1)` on one counter from two processes at once.
    CounterTwoProcs,
    /// `fetch_add(1)` from one process, uncontended.
    CounterOneProc,
    /// Reads of a 32-byte value while another party stores continuously.
    ReadWithWriter,
    /// Reads of a 32-byte value, nobody writing.
    ReadAlone,
    /// `update(key, |v| v + 1)` on one key from two processes at once.
    MapHotKey,
    /// `update(key, |v| v + 1)` on [`MAP_KEYS`] keys from two processes.
    MapSpread,
}

/// The keys of the [`Group::MapSpread`] rows (0 to `MAP_KEYS - 1`, all
/// inserted before the runs; the hot key is 0).
pub const MAP_KEYS: u64 = 1024;

/// Entries of both maps: twice the keys, as a table sized for its load
/// would be.
const MAP_CAPACITY: usize = 2 * MAP_KEYS as usize;

impl Group {
    /// Every counter and cell group, in table order.
    pub const ALL: [Group; 4] = [
        Group::CounterTwoProcs,
        Group::CounterOneProc,
        Group::ReadWithWriter,
        Group::ReadAlone,
    ];

    /// The map groups, in table order.
    pub const MAP: [Group; 2] = [Group::MapHotKey, Group::MapSpread];

    /// The heading of the group in the table.
    pub fn title(self) -> &'static str {
        match self {
            Group::CounterTwoProcs => {
                "counter fetch_add(1), 2 processes on one counter (ops of both)"
            }
            Group::CounterOneProc => "counter fetch_add(1), 1 process, uncontended",
            Group::ReadWithWriter => {
                "read a 32-byte value while another party stores continuously (reads)"
            }
            Group::ReadAlone => "read a 32-byte value, no writer",
            Group::MapHotKey => {
                "map update(k, v + 1), 2 processes on one hot key (updates of both)"
            }
            Group::MapSpread => {
                "map update(k, v + 1), 2 processes over 1024 keys (updates of both)"
            }
        }
    }

    /// The group's name in criterion's reports.
    pub fn id(self) -> &'static str {
        match self {
            Group::CounterTwoProcs => "counter_fetch_add_2procs",
            Group::CounterOneProc => "counter_fetch_add_1proc",
            Group::ReadWithWriter => "cell_read_with_writer",
            Group::ReadAlone => "cell_read_alone",
            Group::MapHotKey => "map_update_hot_key",
            Group::MapSpread => "map_update_spread",
        }
    }

    /// The rows, baseline first.
    pub fn cases(self) -> &'static [Case] {
        match self {
            Group::CounterTwoProcs => &[
                Case::MutexTwoProcs,
                Case::RawTwoProcs,
                Case::CounterTwoProcs,
            ],
            Group::CounterOneProc => &[Case::MutexOneProc, Case::RawOneProc, Case::CounterOneProc],
            Group::ReadWithWriter => &[Case::RwLockWithWriter, Case::SeqCellWithWriter],
            Group::ReadAlone => &[Case::RwLockAlone, Case::SeqCellAlone],
            Group::MapHotKey => &[Case::MutexMapHot, Case::MapHot],
            Group::MapSpread => &[Case::MutexMapSpread, Case::MapSpread],
        }
    }

    /// The row the others are compared against.
    pub fn baseline(self) -> Case {
        self.cases()[0]
    }
}

/// One benchmark row.
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
    /// `RwLock::read` in this thread, `RwLock::write` in a loop in another.
    RwLockWithWriter,
    /// `SeqCell::load` in the parent, `SeqCell::store` in a loop in a child.
    SeqCellWithWriter,
    /// `RwLock::read`, one thread.
    RwLockAlone,
    /// `SeqCell::load`, one process.
    SeqCellAlone,
    /// `PthreadMap::update` on key 0, parent and child.
    MutexMapHot,
    /// `Map::update` on key 0, parent and child.
    MapHot,
    /// `PthreadMap::update` over [`MAP_KEYS`] keys, parent and child.
    MutexMapSpread,
    /// `Map::update` over [`MAP_KEYS`] keys, parent and child.
    MapSpread,
}

impl Case {
    /// Which group the row belongs to.
    pub fn group(self) -> Group {
        match self {
            Case::MutexTwoProcs | Case::RawTwoProcs | Case::CounterTwoProcs => {
                Group::CounterTwoProcs
            }
            Case::MutexOneProc | Case::RawOneProc | Case::CounterOneProc => Group::CounterOneProc,
            Case::RwLockWithWriter | Case::SeqCellWithWriter => Group::ReadWithWriter,
            Case::RwLockAlone | Case::SeqCellAlone => Group::ReadAlone,
            Case::MutexMapHot | Case::MapHot => Group::MapHotKey,
            Case::MutexMapSpread | Case::MapSpread => Group::MapSpread,
        }
    }

    /// The mechanism, as the table names it.
    pub fn label(self) -> &'static str {
        match self {
            Case::MutexTwoProcs | Case::MutexOneProc => {
                "pthread_mutex_t (PROCESS_SHARED) + i64, mapped"
            }
            Case::RawTwoProcs | Case::RawOneProc => "raw AtomicU64::fetch_add, mapped",
            Case::CounterTwoProcs | Case::CounterOneProc => "mmring Counter::fetch_add",
            Case::RwLockWithWriter => "std RwLock::read, writer thread (in-process)",
            Case::SeqCellWithWriter => "mmring SeqCell::load, writer process",
            Case::RwLockAlone => "std RwLock::read (in-process)",
            Case::SeqCellAlone => "mmring SeqCell::load",
            Case::MutexMapHot | Case::MutexMapSpread => {
                "pthread_mutex_t (PROCESS_SHARED) + hash table, mapped"
            }
            Case::MapHot | Case::MapSpread => "mmring Map<u64, u64>::update",
        }
    }

    /// The row's name in criterion's reports.
    pub fn id(self) -> &'static str {
        match self {
            Case::MutexTwoProcs | Case::MutexOneProc => "pthread_mutex",
            Case::RawTwoProcs | Case::RawOneProc => "raw_atomic",
            Case::CounterTwoProcs | Case::CounterOneProc => "mmring_counter",
            Case::RwLockWithWriter | Case::RwLockAlone => "std_rwlock",
            Case::SeqCellWithWriter | Case::SeqCellAlone => "mmring_seqcell",
            Case::MutexMapHot | Case::MutexMapSpread => "pthread_mutex_table",
            Case::MapHot | Case::MapSpread => "mmring_map",
        }
    }
}

/// Every object the rows measure. Each file is created in a private
/// [`BenchDir`] and unlinked as soon as it is mapped: the processes of a run
/// share the mappings (inherited through `fork`), never the names.
pub struct Fixture {
    control: View<[AtomicU64]>,
    counter: Counter,
    raw: RawCounter,
    mutex: PthreadCounter,
    cell: SeqCell<Payload>,
    rwlock: RwLock<Payload>,
    map: Map<u64, u64>,
    mutex_map: PthreadMap,
    /// Dropped last: removes the directory.
    dir: BenchDir,
}

impl std::fmt::Debug for Fixture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fixture")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl Fixture {
    /// Creates the objects in a new directory under `/dev/shm`.
    ///
    /// # Errors
    ///
    /// Creating the directory or a file.
    pub fn new() -> io::Result<Self> {
        Self::new_in(BenchDir::new()?)
    }

    /// Creates the objects in `dir` (which the fixture then owns and
    /// removes).
    ///
    /// # Errors
    ///
    /// Creating a file.
    pub fn new_in(dir: BenchDir) -> io::Result<Self> {
        let control = shared_words(&dir.file("control"), WORDS)?;
        let counter = unlinked(&dir.file("counter"), |p| {
            Counter::create(p, 0).map_err(io::Error::other)
        })?;
        let raw = unlinked(&dir.file("raw"), RawCounter::create)?;
        let mutex = unlinked(&dir.file("mutex"), PthreadCounter::create)?;
        let cell = unlinked(&dir.file("cell"), |p| {
            SeqCell::create(p, [0; 4]).map_err(io::Error::other)
        })?;
        let map = unlinked(&dir.file("map"), |p| {
            Map::<u64, u64>::create(p, MAP_CAPACITY).map_err(io::Error::other)
        })?;
        let mutex_map = unlinked(&dir.file("mutex-map"), |p| {
            PthreadMap::create(p, MAP_CAPACITY)
        })?;
        for k in 0..MAP_KEYS {
            map.insert(&k, 0).map_err(io::Error::other)?;
            if !mutex_map.insert(k, 0) {
                return Err(io::Error::other("the mutex table is full"));
            }
        }
        Ok(Self {
            control,
            counter,
            raw,
            mutex,
            cell,
            rwlock: RwLock::new([0; 4]),
            map,
            mutex_map,
            dir,
        })
    }

    /// The directory the files were made in (they are already unlinked).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Runs `case` once for `budget`: a fresh child process (or thread)
    /// where the case has two parties, timed by this one.
    ///
    /// Forks: call it from a thread that may fork (criterion's main
    /// thread, the command line's only thread).
    ///
    /// # Errors
    ///
    /// If the run fails (see [`procs::run`], [`threads::run`]).
    pub fn measure(&self, case: Case, budget: Budget) -> io::Result<Sample> {
        let control = Control::new(&self.control);
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
            Case::RwLockWithWriter => {
                let rwlock = &self.rwlock;
                let mut n = 0u64;
                threads::run(
                    budget,
                    Counted::LeadOnly,
                    || read_rwlock(rwlock),
                    move || {
                        n += 1;
                        match rwlock.write() {
                            Ok(mut guard) => {
                                *guard = [n; 4];
                                true
                            }
                            Err(_) => false,
                        }
                    },
                )
            }
            Case::SeqCellWithWriter => {
                let mut n = 0u64;
                procs::run(
                    control,
                    budget,
                    Counted::LeadOnly,
                    || read_cell(&self.cell),
                    || {
                        n += 1;
                        self.cell.store([n; 4]).is_ok()
                    },
                )
            }
            Case::RwLockAlone => control::alone(budget, || read_rwlock(&self.rwlock)),
            Case::SeqCellAlone => control::alone(budget, || read_cell(&self.cell)),
            Case::MutexMapHot | Case::MapHot | Case::MutexMapSpread | Case::MapSpread => {
                self.measure_map(case, control, budget)
            }
        }
    }

    /// A map row: both processes `update(k, |v| v + 1)`, on key 0 or
    /// walking the keys (the parent upwards from 0, the child downwards
    /// from the middle, so that they meet now and then); afterwards the
    /// values must have grown by exactly the updates counted.
    fn measure_map(&self, case: Case, control: Control<'_>, budget: Budget) -> io::Result<Sample> {
        let spread = matches!(case, Case::MutexMapSpread | Case::MapSpread);
        let walk = move |start: u64, step: u64| {
            let mut k = start;
            move || {
                if spread {
                    k = (k + step) % MAP_KEYS;
                }
                k
            }
        };
        let (mut lead_key, mut child_key) = (walk(0, 1), walk(MAP_KEYS / 2, MAP_KEYS - 1));
        let (map, mutex_map) = (&self.map, &self.mutex_map);
        let mmring = matches!(case, Case::MapHot | Case::MapSpread);
        let add = move |k: u64| {
            if mmring {
                map.update(&k, |v| v + 1).is_ok_and(|v| v.is_some())
            } else {
                mutex_map.update(k, |v| v + 1).is_some()
            }
        };
        let before = self.map_sum()?;
        let sample = procs::run(
            control,
            budget,
            Counted::Both,
            || add(lead_key()),
            || add(child_key()),
        )?;
        let grown = self.map_sum()?.wrapping_sub(before);
        if grown != sample.ops {
            return Err(io::Error::other(format!(
                "{} updates counted, the values grew by {grown}",
                sample.ops
            )));
        }
        Ok(sample)
    }

    /// The sum of the values of both maps (each row moves only its own).
    fn map_sum(&self) -> io::Result<u64> {
        let mut sum = self.mutex_map.sum();
        for k in 0..MAP_KEYS {
            let v = self.map.get(&k).map_err(io::Error::other)?;
            sum = sum.wrapping_add(v.ok_or_else(|| io::Error::other(format!("key {k} is gone")))?);
        }
        Ok(sum)
    }
}

/// Keeps `v` from being optimized away; always `true` (the operation
/// cannot fail).
#[inline]
fn used<T>(v: T) -> bool {
    black_box(v);
    true
}

/// Whether all four words of a value read agree (a torn read does not).
#[inline]
fn whole(v: Payload) -> bool {
    let v = black_box(v);
    v[1] == v[0] && v[2] == v[0] && v[3] == v[0]
}

#[inline]
fn read_rwlock(rwlock: &RwLock<Payload>) -> bool {
    rwlock.read().is_ok_and(|guard| whole(*guard))
}

#[inline]
fn read_cell(cell: &SeqCell<Payload>) -> bool {
    cell.load().is_ok_and(whole)
}

/// What the benchmark's own files are: `Scratch` files of plain bytes
/// (the same kind of mapping the objects they are compared with live in).
pub(super) fn scratch() -> Expect {
    Expect {
        kind: Kind::Scratch,
        elem: TypeInfo::NONE,
        any_size: false,
    }
}

/// `n` zeroed `AtomicU64` words in a fresh scratch file at `path`,
/// unlinked once mapped: the control words of a run, which its forked
/// children reach through the inherited mapping.
///
/// # Errors
///
/// Creating or removing the file.
pub(super) fn shared_words(path: &Path, n: usize) -> io::Result<View<[AtomicU64]>> {
    unlinked(path, |p| {
        let expect = scratch();
        let bytes = (n * size_of::<AtomicU64>()) as u64;
        Region::create(p, expect, bytes, &CreateOptions::default(), |_| {})
            .map(|r| View::new(r, |r| r.body::<AtomicU64>(0, n)))
            .map_err(io::Error::other)
    })
}

/// Creates an object at `path` with `create`, then removes the name: the
/// mapping stays, and nothing is left in the directory even if this
/// process is killed.
pub(super) fn unlinked<T>(
    path: &Path,
    create: impl FnOnce(&Path) -> io::Result<T>,
) -> io::Result<T> {
    let object = create(path)?;
    std::fs::remove_file(path)?;
    Ok(object)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of the counter a counter row drives.
    fn count(fixture: &Fixture, case: Case) -> Option<u64> {
        match case {
            Case::MutexTwoProcs | Case::MutexOneProc => Some(fixture.mutex.load() as u64),
            Case::RawTwoProcs | Case::RawOneProc => Some(fixture.raw.load()),
            Case::CounterTwoProcs | Case::CounterOneProc => Some(fixture.counter.load() as u64),
            _ => None,
        }
    }

    #[test]
    fn every_row_runs_and_counts_every_operation_exactly() {
        let fixture = Fixture::new().expect("fixture");
        for group in Group::ALL {
            for &case in group.cases() {
                let before = count(&fixture, case);
                let sample = fixture
                    .measure(case, Budget::ops(1000))
                    .unwrap_or_else(|e| panic!("{case:?}: {e}"));
                assert!(sample.ops >= 1000, "{case:?}: {sample:?}");
                if let (Some(before), Some(after)) = (before, count(&fixture, case)) {
                    // Both processes' operations, each counted once.
                    assert_eq!(after - before, sample.ops, "{case:?}");
                }
                if matches!(group, Group::ReadWithWriter) {
                    assert!(sample.peer_ops > 0, "{case:?}: the writer never wrote");
                }
            }
        }
    }

    #[test]
    fn files_are_unlinked_at_once_and_the_directory_removed_at_the_end() {
        let fixture = Fixture::new().expect("fixture");
        let dir = fixture.dir().to_path_buf();
        assert_eq!(std::fs::read_dir(&dir).expect("read dir").count(), 0);
        drop(fixture);
        assert!(!dir.exists());
    }
}
