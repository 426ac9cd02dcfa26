//! `mmring bench map`: `update(k, |v| v + 1)` on mmring's
//! [`Map<u64, u64>`](mmring::map::Map) against a fixed-capacity hash table
//! behind a process-shared mutex ([`PthreadMap`]: std's `HashMap` cannot
//! live in a mapping), from two processes at once, on one hot key and over
//! [`MAP_KEYS`] keys; the same update of a 100-byte value in a
//! [`ByteMap`]; and churn, inserts and removes of distinct keys cycling
//! through 4 × the capacity. [`MapFixture`] holds the objects; the table
//! is [`ops`](super::ops)'.

use std::io;

use mmring::map::{ByteMap, Map};

use super::Fixture;
use super::ops::{Comparison, Row, Section, child_share};
use crate::bench::baseline::mutex_map::{ByteValue, PthreadMap};
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

/// Bytes of each value of the byte-value rows.
const BYTE_VALUE: usize = 100;

/// Entries of the churn maps.
const CHURN_CAPACITY: usize = 1024;

/// Keys each process of the churn rows cycles through (the two together:
/// 4 × the capacity).
const CHURN_SPAN: u64 = 2 * CHURN_CAPACITY as u64;

/// Keys each process of the churn rows keeps present (the two together:
/// half the capacity).
const CHURN_WINDOW: u64 = CHURN_CAPACITY as u64 / 4;

/// A section of the table: rows compared against one baseline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Group {
    /// `update(key, |v| v + 1)` on one key from two processes at once.
    MapHotKey,
    /// `update(key, |v| v + 1)` on [`MAP_KEYS`] keys from two processes.
    MapSpread,
    /// The same, on 100-byte values (the count in their first 8 bytes).
    MapBytes,
    /// Insert a new key and remove the one inserted `CHURN_WINDOW` steps
    /// before, cycling through 4 × the capacity in distinct keys, from two
    /// processes.
    MapChurn,
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
            Group::MapBytes => {
                "map update of a 100-byte value, 2 processes over 1024 keys (updates of both)"
            }
            Group::MapChurn => {
                "map churn: insert a new key + remove an old one, 2 processes cycling through 4x capacity (steps of both)"
            }
        }
    }

    fn id(self) -> &'static str {
        match self {
            Group::MapHotKey => "map_update_hot_key",
            Group::MapSpread => "map_update_spread",
            Group::MapBytes => "map_update_bytes",
            Group::MapChurn => "map_churn",
        }
    }

    fn rows(self) -> &'static [Case] {
        match self {
            Group::MapHotKey => &[Case::MutexMapHot, Case::MapHot],
            Group::MapSpread => &[Case::MutexMapSpread, Case::MapSpread],
            Group::MapBytes => &[Case::MutexMapBytes, Case::MapBytes],
            Group::MapChurn => &[Case::MutexMapChurn, Case::MapChurn],
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
    /// `PthreadMap<ByteValue>::update` over [`MAP_KEYS`] keys.
    MutexMapBytes,
    /// `ByteMap::update_with` over [`MAP_KEYS`] keys.
    MapBytes,
    /// `PthreadMap::insert` + `remove`, cycling.
    MutexMapChurn,
    /// `Map::insert` + `remove`, cycling.
    MapChurn,
}

impl Row for Case {
    fn label(self) -> &'static str {
        match self {
            Case::MutexMapHot
            | Case::MutexMapSpread
            | Case::MutexMapBytes
            | Case::MutexMapChurn => "pthread_mutex_t (PROCESS_SHARED) + hash table, mapped",
            Case::MapHot | Case::MapSpread => "mmring Map<u64, u64>::update",
            Case::MapBytes => "mmring ByteMap<u64>::update_with",
            Case::MapChurn => "mmring Map<u64, u64>::insert + remove",
        }
    }

    fn id(self) -> &'static str {
        match self {
            Case::MutexMapHot
            | Case::MutexMapSpread
            | Case::MutexMapBytes
            | Case::MutexMapChurn => "pthread_mutex_table",
            Case::MapHot | Case::MapSpread => "mmring_map",
            Case::MapBytes => "mmring_byte_map",
            Case::MapChurn => "mmring_map_churn",
        }
    }
}

/// Both maps, every key inserted (each file unlinked as soon as it is
/// mapped, as every file of the benchmark).
#[derive(Debug)]
pub struct MapFixture {
    map: Map<u64, u64>,
    mutex_map: PthreadMap,
    bytes: ByteMap<u64>,
    mutex_bytes: PthreadMap<ByteValue>,
    churn: Map<u64, u64>,
    mutex_churn: PthreadMap,
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
        let bytes = stage.dir().unlinked("bytes", |p| {
            ByteMap::<u64>::create(p, MAP_CAPACITY, BYTE_VALUE).map_err(io::Error::other)
        })?;
        let mutex_bytes = PthreadMap::create(&stage.dir().file("mutex-bytes"), MAP_CAPACITY)?;
        let churn = stage.dir().unlinked("churn", |p| {
            Map::<u64, u64>::create(p, CHURN_CAPACITY).map_err(io::Error::other)
        })?;
        let mutex_churn = PthreadMap::create(&stage.dir().file("mutex-churn"), CHURN_CAPACITY)?;
        let value = ByteValue {
            len: BYTE_VALUE as u32,
            ..ByteValue::default()
        };
        for k in 0..MAP_KEYS {
            map.insert(&k, 0).map_err(io::Error::other)?;
            bytes
                .insert(&k, &value.bytes[..BYTE_VALUE])
                .map_err(io::Error::other)?;
            if !mutex_map.insert(k, 0) || !mutex_bytes.insert(k, value) {
                return Err(io::Error::other("the mutex table is full"));
            }
        }
        Ok(Self {
            map,
            mutex_map,
            bytes,
            mutex_bytes,
            churn,
            mutex_churn,
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

    const SECTIONS: &'static [Group] = &[
        Group::MapHotKey,
        Group::MapSpread,
        Group::MapBytes,
        Group::MapChurn,
    ];

    /// Both processes `update(k, |v| v + 1)`, on key 0 or walking the keys
    /// (the parent upwards from 0, the child downwards from the middle, so
    /// that they meet now and then); afterwards the values must have grown
    /// by exactly the updates counted.
    fn measure(&self, case: Case, budget: Budget) -> io::Result<Sample> {
        if matches!(case, Case::MutexMapChurn | Case::MapChurn) {
            return self.churn(case, budget);
        }
        let control: Control<'_> = self.stage.control();
        let spread = case != Case::MutexMapHot && case != Case::MapHot;
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
        let (bytes, mutex_bytes) = (&self.bytes, &self.mutex_bytes);
        let add = move |k: u64| match case {
            Case::MapHot | Case::MapSpread => map.update(&k, |v| v + 1).is_ok_and(|v| v.is_some()),
            Case::MapBytes => bytes
                .update_with(&k, |old, room| {
                    room[..BYTE_VALUE].copy_from_slice(&old[..BYTE_VALUE]);
                    bump(&mut room[..8]);
                    BYTE_VALUE
                })
                .is_ok_and(|n| n == Some(BYTE_VALUE)),
            Case::MutexMapBytes => mutex_bytes
                .update(k, |mut v| {
                    bump(&mut v.bytes[..8]);
                    v
                })
                .is_some(),
            _ => mutex_map.update(k, |v| v + 1).is_some(),
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

/// Adds 1 to the little-endian count in `b` (8 bytes).
fn bump(b: &mut [u8]) {
    let n = u64::from_le_bytes(b.try_into().unwrap_or([0; 8]));
    b.copy_from_slice(&n.wrapping_add(1).to_le_bytes());
}

/// The count in the first 8 bytes of a value.
fn count(b: &[u8]) -> u64 {
    b.get(..8)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u64::from_le_bytes)
}

impl MapFixture {
    /// The sum of the values of the update rows' maps (each row moves only
    /// its own): the `u64` values and the counts of the byte values.
    fn sum(&self) -> io::Result<u64> {
        let mut sum = self.mutex_map.sum();
        sum = self
            .mutex_bytes
            .fold(sum, |s, _, v| s.wrapping_add(count(&v.bytes)));
        for k in 0..MAP_KEYS {
            let gone = || io::Error::other(format!("key {k} is gone"));
            let v = self.map.get(&k).map_err(io::Error::other)?;
            sum = sum.wrapping_add(v.ok_or_else(gone)?);
            let b = self.bytes.get(&k).map_err(io::Error::other)?;
            let b = b.ok_or_else(gone)?;
            if b.len() != BYTE_VALUE {
                return Err(io::Error::other(format!("key {k}: {} bytes", b.len())));
            }
            sum = sum.wrapping_add(count(&b));
        }
        Ok(sum)
    }

    /// The churn rows: both processes start from an empty map; each cycles
    /// through its own [`CHURN_SPAN`] keys, inserting the next (it must be
    /// new) and removing the one [`CHURN_WINDOW`] steps back (it must be
    /// there with its value). The mmring map keeps the tombstones of every
    /// earlier sample: churn is what it measures.
    fn churn(&self, case: Case, budget: Budget) -> io::Result<Sample> {
        let mmring = case == Case::MapChurn;
        if mmring {
            for (k, _) in self.churn.snapshot().map_err(io::Error::other)? {
                self.churn.remove(&k).map_err(io::Error::other)?;
            }
        } else {
            self.mutex_churn.clear();
        }
        let (map, mutex_map) = (&self.churn, &self.mutex_churn);
        let step = move |base: u64| {
            let mut i = 0u64;
            move || {
                let k = base + i % CHURN_SPAN;
                let inserted = if mmring {
                    map.insert(&k, k).is_ok_and(|old| old.is_none())
                } else {
                    mutex_map.get(k).is_none() && mutex_map.insert(k, k)
                };
                let removed = i < CHURN_WINDOW || {
                    let old = base + (i - CHURN_WINDOW) % CHURN_SPAN;
                    if mmring {
                        map.remove(&old).is_ok_and(|v| v == Some(old))
                    } else {
                        mutex_map.remove(old) == Some(old)
                    }
                };
                i += 1;
                inserted && removed
            }
        };
        let sample = procs::run(
            self.stage.control(),
            budget,
            Counted::Both,
            step(0),
            step(CHURN_SPAN),
        )?;
        let present = if mmring {
            let snap = self.churn.snapshot().map_err(io::Error::other)?;
            if snap.iter().any(|&(k, v)| k != v) {
                return Err(io::Error::other("a churned key holds another's value"));
            }
            snap.len()
        } else {
            self.mutex_churn
                .fold(0, |n, k, &v| if k == v { n + 1 } else { n + 1000 })
        };
        if present > 2 * CHURN_WINDOW as usize {
            return Err(io::Error::other(format!(
                "{present} keys present after churn, at most {} expected",
                2 * CHURN_WINDOW
            )));
        }
        Ok(sample)
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
        // The churn rows check themselves (every insert new, every remove
        // found, at most the window present afterwards): no sum moves.
        ops::tests::every_row_runs::<MapFixture>(|f, row| match row {
            Case::MutexMapChurn | Case::MapChurn => None,
            _ => f.sum().ok(),
        });
    }
}
