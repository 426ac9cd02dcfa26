//! `mmring bench cell`: reads of a 32-byte value from mmring's
//! [`SeqCell`] against `std::sync::RwLock` reads, with a writer storing
//! continuously (the `SeqCell`'s in a forked child on the same mapping;
//! the `RwLock`'s in a second thread: std's lock cannot be shared between
//! processes) and without one. [`CellFixture`] holds the objects; the
//! table is [`ops`](super::ops)'.

use std::hint::black_box;
use std::io;
use std::sync::RwLock;

use mmring::SeqCell;

use super::Fixture;
use super::ops::{Comparison, Row, Section};
use crate::bench::report::{Stats, met, rate};
use crate::bench::runner::control::{self, Budget, Counted, Sample, WORDS};
use crate::bench::runner::dir::{BenchDir, Stage};
use crate::bench::runner::{procs, threads};

/// The value the rows share: four words, as a small record would be.
/// Writers store `[n; 4]`; readers check that all four words agree, so a
/// torn read fails the run.
pub type Payload = [u64; 4];

/// A section of the table: rows compared against one baseline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Group {
    /// Reads of a 32-byte value while another party stores continuously.
    ReadWithWriter,
    /// Reads of a 32-byte value, nobody writing.
    ReadAlone,
}

impl Section for Group {
    type Row = Case;

    fn title(self) -> &'static str {
        match self {
            Group::ReadWithWriter => {
                "read a 32-byte value while another party stores continuously (reads)"
            }
            Group::ReadAlone => "read a 32-byte value, no writer",
        }
    }

    fn id(self) -> &'static str {
        match self {
            Group::ReadWithWriter => "cell_read_with_writer",
            Group::ReadAlone => "cell_read_alone",
        }
    }

    fn rows(self) -> &'static [Case] {
        match self {
            Group::ReadWithWriter => &[Case::RwLockWithWriter, Case::SeqCellWithWriter],
            Group::ReadAlone => &[Case::RwLockAlone, Case::SeqCellAlone],
        }
    }

    fn peer(self, s: &Stats) -> String {
        match self {
            Group::ReadWithWriter => format!("writer stores {}/s", rate(s.peer)),
            Group::ReadAlone => String::new(),
        }
    }
}

/// One row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Case {
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
            Case::RwLockWithWriter => "std RwLock::read, writer thread (in-process)",
            Case::SeqCellWithWriter => "mmring SeqCell::load, writer process",
            Case::RwLockAlone => "std RwLock::read (in-process)",
            Case::SeqCellAlone => "mmring SeqCell::load",
        }
    }

    fn id(self) -> &'static str {
        match self {
            Case::RwLockWithWriter | Case::RwLockAlone => "std_rwlock",
            Case::SeqCellWithWriter | Case::SeqCellAlone => "mmring_seqcell",
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

    const SECTIONS: &'static [Group] = &[Group::ReadWithWriter, Group::ReadAlone];

    fn measure(&self, case: Case, budget: Budget) -> io::Result<Sample> {
        match case {
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
                    self.stage.control(),
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
        }
    }

    fn target(case: Case, median: f64, base: f64, _stat: &dyn Fn(Case) -> Stats) -> String {
        match case {
            Case::SeqCellWithWriter => format!(">= 5x RwLock: {}", met(median >= 5.0 * base)),
            _ => String::new(),
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::group::ops;

    #[test]
    fn every_row_runs_and_the_writer_writes() {
        let samples = ops::tests::every_row_runs::<CellFixture>(|_, _| None);
        for (case, sample) in samples {
            if Group::ReadWithWriter.rows().contains(&case) {
                assert!(sample.peer_ops > 0, "{case:?}: the writer never wrote");
            }
        }
    }
}
