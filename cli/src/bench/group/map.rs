//! `mmring bench map`: `update(k, |v| v + 1)` on mmring's
//! [`Map<u64, u64>`](mmring::map::Map) against a fixed-capacity hash table
//! behind a process-shared mutex ([`PthreadMap`]: std's `HashMap` cannot
//! live in a mapping), from two processes at once, on one hot key and over
//! [`MAP_KEYS`] keys. [`MapFixture`] holds the objects; the table is
//! [`ops`](super::ops)'.

use std::io;

use mmring::map::Map;

use super::Fixture;
use super::ops::{Comparison, Row, Section, child_share};
use crate::bench::baseline::mutex_map::PthreadMap;
use crate::bench::report::Stats;
use crate::bench::runner::control::{Budget, Control, Counted, Sample, WORDS};
use crate::bench::runner::dir::{BenchDir, Stage};
use crate::bench::runner::procs;

/// The keys of the [`Group::MapSpread`] rows (0 to `MAP_KEYS - 1`, all
/// inserted before the runs; the hot key is 0).
pub const MAP_KEYS: u64 = 1024;

/// Entries of both maps: twice the keys, as a table sized for its load
/// would be.
const MAP_CAPACITY: usize = 2 * MAP_KEYS as usize;

/// A section of the table: rows compared against one baseline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Group {
    /// `update(key, |v| v + 1)` on one key from two processes at once.
    MapHotKey,
    /// `update(key, |v| v + 1)` on [`MAP_KEYS`] keys from two processes.
    MapSpread,
}

impl Section for Group {
    type Row = Case;

    fn title(self) -> &'static str {
        match self {
            Group::MapHotKey => {
                "map update(k, v + 1), 2 processes on one hot key (updates of both)"
            }
            Group::MapSpread => {
                "map update(k, v + 1), 2 processes over 1024 keys (updates of both)"
            }
        }
    }

    fn id(self) -> &'static str {
        match self {
            Group::MapHotKey => "map_update_hot_key",
            Group::MapSpread => "map_update_spread",
        }
    }

    fn rows(self) -> &'static [Case] {
        match self {
            Group::MapHotKey => &[Case::MutexMapHot, Case::MapHot],
            Group::MapSpread => &[Case::MutexMapSpread, Case::MapSpread],
        }
    }

    fn peer(self, s: &Stats) -> String {
        child_share(s)
    }
}

/// One row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Case {
    /// `PthreadMap::update` on key 0, parent and child.
    MutexMapHot,
    /// `Map::update` on key 0, parent and child.
    MapHot,
    /// `PthreadMap::update` over [`MAP_KEYS`] keys, parent and child.
    MutexMapSpread,
    /// `Map::update` over [`MAP_KEYS`] keys, parent and child.
    MapSpread,
}

impl Row for Case {
    fn label(self) -> &'static str {
        match self {
            Case::MutexMapHot | Case::MutexMapSpread => {
                "pthread_mutex_t (PROCESS_SHARED) + hash table, mapped"
            }
            Case::MapHot | Case::MapSpread => "mmring Map<u64, u64>::update",
        }
    }

    fn id(self) -> &'static str {
        match self {
            Case::MutexMapHot | Case::MutexMapSpread => "pthread_mutex_table",
            Case::MapHot | Case::MapSpread => "mmring_map",
        }
    }
}

/// Both maps, every key inserted (each file unlinked as soon as it is
/// mapped, as every file of the benchmark).
#[derive(Debug)]
pub struct MapFixture {
    map: Map<u64, u64>,
    mutex_map: PthreadMap,
    /// Declared last, so dropped last: removes the directory.
    stage: Stage,
}

impl Fixture for MapFixture {
    fn new_in(dir: BenchDir) -> io::Result<Self> {
        let stage = Stage::new(dir, WORDS)?;
        let map = stage.dir().unlinked("map", |p| {
            Map::<u64, u64>::create(p, MAP_CAPACITY).map_err(io::Error::other)
        })?;
        let mutex_map = PthreadMap::create(&stage.dir().file("mutex-map"), MAP_CAPACITY)?;
        for k in 0..MAP_KEYS {
            map.insert(&k, 0).map_err(io::Error::other)?;
            if !mutex_map.insert(k, 0) {
                return Err(io::Error::other("the mutex table is full"));
            }
        }
        Ok(Self {
            map,
            mutex_map,
            stage,
        })
    }

    fn stage(&self) -> &Stage {
        &self.stage
    }
}

impl Comparison for MapFixture {
    type Section = Group;

    const NAME: &'static str = "map";

    const SECTIONS: &'static [Group] = &[Group::MapHotKey, Group::MapSpread];

    /// Both processes `update(k, |v| v + 1)`, on key 0 or walking the keys
    /// (the parent upwards from 0, the child downwards from the middle, so
    /// that they meet now and then); afterwards the values must have grown
    /// by exactly the updates counted.
    fn measure(&self, case: Case, budget: Budget) -> io::Result<Sample> {
        let control: Control<'_> = self.stage.control();
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
        let before = self.sum()?;
        let sample = procs::run(
            control,
            budget,
            Counted::Both,
            || add(lead_key()),
            || add(child_key()),
        )?;
        let grown = self.sum()?.wrapping_sub(before);
        if grown != sample.ops {
            return Err(io::Error::other(format!(
                "{} updates counted, the values grew by {grown}",
                sample.ops
            )));
        }
        Ok(sample)
    }
}

impl MapFixture {
    /// The sum of the values of both maps (each row moves only its own).
    fn sum(&self) -> io::Result<u64> {
        let mut sum = self.mutex_map.sum();
        for k in 0..MAP_KEYS {
            let v = self.map.get(&k).map_err(io::Error::other)?;
            sum = sum.wrapping_add(v.ok_or_else(|| io::Error::other(format!("key {k} is gone")))?);
        }
        Ok(sum)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::group::ops;

    #[test]
    fn every_row_runs_and_counts_every_update_exactly() {
        // `measure` itself fails a run whose values did not grow by exactly
        // the updates counted; here both maps' sums are checked too.
        ops::tests::every_row_runs::<MapFixture>(|f, _| f.sum().ok());
    }
}
