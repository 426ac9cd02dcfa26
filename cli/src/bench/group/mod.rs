//! The comparisons `mmring bench` runs, one folder or file each: its
//! objects (the fixture, which the criterion bench of the same name
//! measures through too), its rows and its table.
//!
//! * [`counter`], [`cell`], [`map`]: operations per second, in the one
//!   table of [`ops`];
//! * [`spsc`]: the ring's throughput and round trips;
//! * [`mpmc`]: the queue's throughput with one and with two producers and
//!   consumers.

pub mod cell;
pub mod counter;
pub mod map;
pub mod mpmc;
pub mod ops;
pub mod spsc;

use std::io;

use crate::bench::runner::dir::{BenchDir, Stage};

/// What every comparison's fixture is: the objects its rows measure, made
/// in one private directory (each file unlinked as soon as it is mapped:
/// the processes of a run share the mappings, inherited through `fork`,
/// never the names) and gone with it.
pub trait Fixture: Sized {
    /// Creates the objects in `dir` (which the fixture then owns and
    /// removes).
    ///
    /// # Errors
    ///
    /// Creating a file.
    fn new_in(dir: BenchDir) -> io::Result<Self>;

    /// Creates the objects in a new directory under `/dev/shm`.
    ///
    /// # Errors
    ///
    /// Creating the directory or a file.
    fn new() -> io::Result<Self> {
        Self::new_in(BenchDir::new()?)
    }

    /// Where the objects live: the directory (empty: every file is
    /// unlinked already) and the control words of the runs.
    fn stage(&self) -> &Stage;
}

/// Checks every fixture's promise about its files.
#[cfg(test)]
pub(crate) mod tests {
    use super::Fixture;

    /// Fails unless `fixture`'s directory is empty (`after`: what ran).
    pub(crate) fn no_file_left(fixture: &impl Fixture, after: &dyn std::fmt::Debug) {
        let dir = fixture.stage().dir().path();
        let left = std::fs::read_dir(dir).expect("read dir").count();
        assert_eq!(left, 0, "{after:?} left a file behind");
    }

    /// Fails unless dropping `fixture` removes its directory.
    pub(crate) fn dropped_with_its_directory(fixture: impl Fixture) {
        let dir = fixture.stage().dir().path().to_path_buf();
        drop(fixture);
        assert!(!dir.exists(), "{} is still there", dir.display());
    }
}
