//! `mmring bench cell`: reads of a 32-byte value from mmring's
//! [`SeqCell`] against `std::sync::RwLock` reads, with a writer (the
//! `SeqCell`'s in a forked child on the same mapping; the `RwLock`'s in a
//! second thread: std's lock cannot be shared between processes) storing
//! at a fixed rate ([`WRITER_RATE`], the row with a target), storing flat
//! out, and without one. [`CellFixture`] holds the objects; the table is
//! [`ops`](super::ops)'.
//!
//! The target row paces its writer: a writer storing flat out reaches a
//! rate that depends on the mechanism and the scheduler, and the `RwLock`
//! reader under it swings 2-5x between runs (std's lock queues new readers
//! behind a waiting writer); at a fixed rate both readers face the same
//! load, run after run. The flat-out section stays, without a target.

use std::hint::black_box;
use std::io;
use std::sync::RwLock;

use mmring::SeqCell;

use super::Fixture;
use super::ops::{Comparison, Row, Section};
use crate::bench::report::{Stats, met, rate};
use crate::bench::runner::control::{self, Budget, Counted, Sample, WORDS};
use crate::bench::runner::dir::{BenchDir, Stage};
use crate::bench::runner::pace::Pace;
use crate::bench::runner::{procs, threads};

/// Stores a second of the paced writer: a busy publisher (a quote, a
/// position, a status record updated every microsecond).
pub const WRITER_RATE: u32 = 1_000_000;

/// The value the rows share: four words, as a small record would be.
/// Writers store `[n; 4]`; readers check that all four words agree, so a
/// torn read fails the run.
pub type Payload = [u64; 4];

/// A section of the table: rows compared against one baseline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Group {
    /// Reads of a 32-byte value while another party stores
    /// [`WRITER_RATE`] times a second.
    ReadPacedWriter,
    /// Reads of a 32-byte value while another party stores flat out.
    ReadWithWriter,
    /// Reads of a 32-byte value, nobody writing.
    ReadAlone,
}

impl Section for Group {
    type Row = Case;

    fn title(self) -> &'static str {
        match self {
            Group::ReadPacedWriter => {
                "read a 32-byte value while another party stores 1 M times a second (reads)"
            }
            Group::ReadWithWriter => {
                "read a 32-byte value while another party stores flat out (reads; no target: each writer reaches its own rate)"
            }
            Group::ReadAlone => "read a 32-byte value, no writer",
        }
    }

    fn id(self) -> &'static str {
        match self {
            Group::ReadPacedWriter => "cell_read_paced_writer",
            Group::ReadWithWriter => "cell_read_with_writer",
            Group::ReadAlone => "cell_read_alone",
        }
    }

    fn rows(self) -> &'static [Case] {
        match self {
            Group::ReadPacedWriter => &[Case::RwLockPacedWriter, Case::SeqCellPacedWriter],
            Group::ReadWithWriter => &[Case::RwLockWithWriter, Case::SeqCellWithWriter],
            Group::ReadAlone => &[Case::RwLockAlone, Case::SeqCellAlone],
        }
    }

    fn peer(self, s: &Stats) -> String {
        match self {
            Group::ReadPacedWriter | Group::ReadWithWriter => {
                format!("writer stores {}/s", rate(s.peer))
            }
            Group::ReadAlone => String::new(),
        }
    }
}

/// One row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Case {
    /// `RwLock::read` in this thread, `RwLock::write` [`WRITER_RATE`]
    /// times a second in another.
    RwLockPacedWriter,
    /// `SeqCell::load` in the parent, `SeqCell::store` [`WRITER_RATE`]
    /// times a second in a child.
    SeqCellPacedWriter,
    /// `RwLock::read` in this thread, `RwLock::write` in a loop in another.
    RwLockWithWriter,
    /// `SeqCell::load` in the parent, `SeqCell::store` in a loop in a child.
    SeqCellWithWriter,
    /// `RwLock::read`, one thread.
    RwLockAlone,
    /// `SeqCell::load`, one process.
    SeqCellAlone,
}

impl Row for Case {
    fn label(self) -> &'static str {
        match self {
            Case::RwLockPacedWriter => "std RwLock::read, paced writer thread (in-process)",
            Case::SeqCellPacedWriter => "mmring SeqCell::load, paced writer process",
            Case::RwLockWithWriter => "std RwLock::read, writer thread (in-process)",
            Case::SeqCellWithWriter => "mmring SeqCell::load, writer process",
            Case::RwLockAlone => "std RwLock::read (in-process)",
            Case::SeqCellAlone => "mmring SeqCell::load",
        }
    }

    fn id(self) -> &'static str {
        match self {
            Case::RwLockPacedWriter | Case::RwLockWithWriter | Case::RwLockAlone => "std_rwlock",
            Case::SeqCellPacedWriter | Case::SeqCellWithWriter | Case::SeqCellAlone => {
                "mmring_seqcell"
            }
        }
    }
}

/// Every object the cell rows measure (the cell's file unlinked as soon as
/// it is mapped, as every file of the benchmark).
#[derive(Debug)]
pub struct CellFixture {
    cell: SeqCell<Payload>,
    rwlock: RwLock<Payload>,
    /// Declared last, so dropped last: removes the directory.
    stage: Stage,
}

impl Fixture for CellFixture {
    fn new_in(dir: BenchDir) -> io::Result<Self> {
        let stage = Stage::new(dir, WORDS)?;
        Ok(Self {
            cell: stage.dir().unlinked("cell", |p| {
                SeqCell::create(p, [0; 4]).map_err(io::Error::other)
            })?,
            rwlock: RwLock::new([0; 4]),
            stage,
        })
    }

    fn stage(&self) -> &Stage {
        &self.stage
    }
}

impl Comparison for CellFixture {
    type Section = Group;

    const NAME: &'static str = "cell";

    const SECTIONS: &'static [Group] = &[
        Group::ReadPacedWriter,
        Group::ReadWithWriter,
        Group::ReadAlone,
    ];

    fn measure(&self, case: Case, budget: Budget) -> io::Result<Sample> {
        match case {
            Case::RwLockPacedWriter | Case::RwLockWithWriter => {
                let rwlock = &self.rwlock;
                let mut writer = Writer::new(case == Case::RwLockPacedWriter);
                threads::run(
                    budget,
                    Counted::LeadOnly,
                    || read_rwlock(rwlock),
                    move || {
                        let n = writer.next();
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
            Case::SeqCellPacedWriter | Case::SeqCellWithWriter => {
                let mut writer = Writer::new(case == Case::SeqCellPacedWriter);
                procs::run(
                    self.stage.control(),
                    budget,
                    Counted::LeadOnly,
                    || read_cell(&self.cell),
                    || self.cell.store([writer.next(); 4]).is_ok(),
                )
            }
            Case::RwLockAlone => control::alone(budget, || read_rwlock(&self.rwlock)),
            Case::SeqCellAlone => control::alone(budget, || read_cell(&self.cell)),
        }
    }

    fn target(case: Case, median: f64, base: f64, _stat: &dyn Fn(Case) -> Stats) -> String {
        match case {
            Case::SeqCellPacedWriter => format!(">= 5x RwLock: {}", met(median >= 5.0 * base)),
            Case::SeqCellAlone => format!(">= 3x RwLock: {}", met(median >= 3.0 * base)),
            _ => String::new(),
        }
    }
}

/// The writer side of the rows with a writer: numbers its stores, paced at
/// [`WRITER_RATE`] or flat out.
struct Writer {
    pace: Option<Pace>,
    n: u64,
}

impl Writer {
    fn new(paced: bool) -> Self {
        Self {
            pace: paced.then(|| Pace::per_second(WRITER_RATE)),
            n: 0,
        }
    }

    /// The value of the next store, once its tick has come.
    #[inline(always)]
    fn next(&mut self) -> u64 {
        if let Some(pace) = &mut self.pace {
            pace.wait();
        }
        self.n += 1;
        self.n
    }
}

/// Whether all four words of a value read agree (a torn read does not).
#[inline]
fn whole(v: Payload) -> bool {
    let v = black_box(v);
    v[1] == v[0] && v[2] == v[0] && v[3] == v[0]
}

// Both reads inlined into the measuring loop alike (a call per read
// would measure the call).
#[inline(always)]
fn read_rwlock(rwlock: &RwLock<Payload>) -> bool {
    rwlock.read().is_ok_and(|guard| whole(*guard))
}

#[inline(always)]
fn read_cell(cell: &SeqCell<Payload>) -> bool {
    cell.load().is_ok_and(whole)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::group::ops;

    #[test]
    fn every_row_runs_and_the_writer_writes() {
        let samples = ops::tests::every_row_runs::<CellFixture>(|_, _| None);
        for (case, sample) in samples {
            if Group::ReadPacedWriter.rows().contains(&case)
                || Group::ReadWithWriter.rows().contains(&case)
            {
                assert!(sample.peer_ops > 0, "{case:?}: the writer never wrote");
            }
        }
    }
}
