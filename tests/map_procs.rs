//! `Map` shared by real, separate processes: the classic `Manager().dict()`
//! scenarios — a count decremented by 20 processes, a pool of workers
//! filling a dict, several processes updating one struct value in place (the
//! nested-dict pitfall), and a full table that stays usable.

mod common;

use std::collections::BTreeSet;

use common::{Children, barrier};
use mmring::map::{Map, MapError};
use mmring::{AtomicArray, Counter, Pod, Zeroable};

// ---------------------------------------------------------------------------
// 20 processes count one key down.

const DECREMENTERS: usize = 20;
const DECREMENTS: i64 = 1000;
const TOTAL: i64 = DECREMENTERS as i64 * DECREMENTS;

/// `d['count'] -= 1` from 20 processes, 1,000 times each, on a count of
/// 20,000, done with `update`: it ends at exactly 0, and every new value
/// 19,999 ..= 0 was returned to exactly one `update` (a lost or doubled
/// update shows up as a value seen 0 or 2 times).
#[test]
fn twenty_processes_count_a_key_down_to_exactly_zero() {
    let dir = tempfile::tempdir().unwrap();
    let d = Map::<str, i64>::create(dir.path().join("dict"), 16).unwrap();
    assert_eq!(d.insert("count", TOTAL).unwrap(), None);
    let seen = AtomicArray::<u32>::create(dir.path().join("seen"), TOTAL as usize).unwrap();
    let arrived = Counter::create(dir.path().join("arrived"), 0).unwrap();

    let mut kids = Children::new();
    for i in 0..DECREMENTERS {
        kids.spawn("child_count_down", i, dir.path(), "");
    }
    kids.wait_all_ok();

    assert_eq!(arrived.load(), DECREMENTERS as i64);
    assert_eq!(d.get("count").unwrap(), Some(0), "lost or extra updates");
    assert_eq!(d.len(), 1);
    let wrong: Vec<(usize, u32)> = seen
        .snapshot()
        .into_iter()
        .enumerate()
        .filter(|&(_, n)| n != 1)
        .collect();
    assert!(
        wrong.is_empty(),
        "new values returned other than exactly once (value, count): {:?}",
        &wrong[..wrong.len().min(20)]
    );
}

common::child_entry!(
    #[started_by(twenty_processes_count_a_key_down_to_exactly_zero)]
    fn child_count_down(ctx: ChildCtx) {
        let d = Map::<str, i64>::open(ctx.path.join("dict")).unwrap();
        let seen = AtomicArray::<u32>::open(ctx.path.join("seen")).unwrap();
        let arrived = Counter::open(ctx.path.join("arrived")).unwrap();
        barrier(&arrived, DECREMENTERS);
        for _ in 0..DECREMENTS {
            let new = d
                .update("count", |v| v - 1)
                .unwrap()
                .expect("the key is present");
            assert!((0..TOTAL).contains(&new), "update returned {new}");
            seen[new as usize].fetch_add(1);
        }
    }
);

// ---------------------------------------------------------------------------
// A pool of workers fills a dict.

const POOL: usize = 4;
const POOL_KEYS: u64 = 10_000;
const POOL_CAPACITY: usize = 16_384;
/// Keys a worker takes per ticket (`Pool.map`'s chunksize).
const CHUNK: i64 = 50;

/// `Pool(4).map(f, range(10_000))` writing `d[i] = i`: the workers take
/// chunks of keys from a shared ticket counter and insert them. Afterwards
/// every key is present with its value, the snapshot holds exactly 10,000
/// entries (no key twice, nothing else), and each key was inserted new
/// exactly once.
#[test]
fn a_pool_of_four_workers_fills_ten_thousand_keys() {
    let dir = tempfile::tempdir().unwrap();
    let d = Map::<u64, u64>::create(dir.path().join("dict"), POOL_CAPACITY).unwrap();
    let _next = Counter::create(dir.path().join("next"), 0).unwrap();
    let done = AtomicArray::<u64>::create(dir.path().join("done"), POOL).unwrap();
    let _arrived = Counter::create(dir.path().join("arrived"), 0).unwrap();

    let mut kids = Children::new();
    for i in 0..POOL {
        kids.spawn("child_pool_worker", i, dir.path(), "");
    }
    kids.wait_all_ok();

    let per_worker = done.snapshot();
    println!("keys per worker: {per_worker:?}");
    assert_eq!(per_worker.iter().sum::<u64>(), POOL_KEYS);
    assert_eq!(d.len(), POOL_KEYS as usize);
    let snap = d.snapshot().unwrap();
    assert_eq!(snap.len(), POOL_KEYS as usize, "snapshot entries");
    let wrong: Vec<&(u64, u64)> = snap.iter().filter(|(k, v)| k != v).collect();
    assert!(
        wrong.is_empty(),
        "wrong values: {:?}",
        &wrong[..wrong.len().min(20)]
    );
    let keys: BTreeSet<u64> = snap.iter().map(|&(k, _)| k).collect();
    assert_eq!(keys.len(), POOL_KEYS as usize, "a key appears twice");
    assert_eq!(keys, (0..POOL_KEYS).collect::<BTreeSet<u64>>());
    for k in 0..POOL_KEYS {
        assert_eq!(d.get(&k).unwrap(), Some(k), "d[{k}]");
    }
    assert_eq!(d.get(&POOL_KEYS).unwrap(), None);
}

common::child_entry!(
    #[started_by(a_pool_of_four_workers_fills_ten_thousand_keys)]
    fn child_pool_worker(ctx: ChildCtx) {
        let d = Map::<u64, u64>::open(ctx.path.join("dict")).unwrap();
        let next = Counter::open(ctx.path.join("next")).unwrap();
        let done = AtomicArray::<u64>::open(ctx.path.join("done")).unwrap();
        let arrived = Counter::open(ctx.path.join("arrived")).unwrap();
        barrier(&arrived, POOL);
        let mut mine = 0;
        loop {
            let start = next.fetch_add(CHUNK) as u64;
            if start >= POOL_KEYS {
                break;
            }
            for k in start..(start + CHUNK as u64).min(POOL_KEYS) {
                assert_eq!(d.insert(&k, k).unwrap(), None, "key {k} was already there");
                mine += 1;
            }
        }
        done[ctx.index].store(mine);
    }
);

// ---------------------------------------------------------------------------
// The nested dict: one struct value updated in place by several processes.

/// The value under one key: what Python would keep as a nested dict
/// (`d['test'] = {}` then `d['test'][i] = ...` in process `i`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
#[repr(C)]
struct Nested {
    /// Process `i` sets `field[i]` to `1000 + i`, once, at a round of its
    /// choosing; nobody else writes it.
    field: [u64; NESTED_PROCS],
    /// Process `i` adds 1 to `bumps[i]` in every update.
    bumps: [u64; NESTED_PROCS],
    /// Every update adds 1.
    total: u64,
}
mmring::payload!(Nested);

impl Nested {
    /// Whether the value is one any sequence of whole updates can produce.
    fn is_consistent(&self) -> bool {
        self.total == self.bumps.iter().sum::<u64>()
            && self
                .field
                .iter()
                .enumerate()
                .all(|(i, &f)| f == 0 || f == 1000 + i as u64)
    }
}

const NESTED_PROCS: usize = 4;
const NESTED_ROUNDS: u64 = 2000;

/// The nested-dict pitfall: 4 processes each write their own field of one
/// struct value under one key (`field[i] = 1000 + i`, once, at a random
/// round), interleaved with increments of their own counter and a shared
/// total, all through `update`. A read-modify-write that is not atomic
/// (or a proxy's copy) would lose fields and increments: here every field is
/// set, every counter holds exactly its number of rounds, and every value
/// read meanwhile was consistent.
#[test]
fn four_processes_update_one_struct_value_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let d = Map::<str, Nested>::create(dir.path().join("dict"), 8).unwrap();
    assert_eq!(d.insert("test", Nested::zeroed()).unwrap(), None);
    let _arrived = Counter::create(dir.path().join("arrived"), 0).unwrap();

    let mut kids = Children::new();
    for i in 0..NESTED_PROCS {
        kids.spawn("child_nested_update", i, dir.path(), "");
    }
    kids.wait_all_ok();

    let v = d.get("test").unwrap().expect("the key is present");
    println!("final value: {v:?}");
    let expected = Nested {
        field: std::array::from_fn(|i| 1000 + i as u64),
        bumps: [NESTED_ROUNDS; NESTED_PROCS],
        total: NESTED_ROUNDS * NESTED_PROCS as u64,
    };
    assert_eq!(v, expected, "lost fields or increments");
    assert_eq!(d.len(), 1);
}

common::child_entry!(
    #[started_by(four_processes_update_one_struct_value_in_place)]
    fn child_nested_update(ctx: ChildCtx) {
        let i = ctx.index;
        let d = Map::<str, Nested>::open(ctx.path.join("dict")).unwrap();
        let arrived = Counter::open(ctx.path.join("arrived")).unwrap();
        let set_at = common::Rng::new(i as u64).below(NESTED_ROUNDS);
        barrier(&arrived, NESTED_PROCS);
        for round in 0..NESTED_ROUNDS {
            let new = d
                .update("test", |mut v| {
                    if round == set_at {
                        v.field[i] = 1000 + i as u64;
                    }
                    v.bumps[i] += 1;
                    v.total += 1;
                    v
                })
                .unwrap()
                .expect("the key is present");
            assert!(new.is_consistent(), "update returned {new:?}");
            assert_eq!(new.bumps[i], round + 1, "my own count in {new:?}");
            let mine = if round >= set_at { 1000 + i as u64 } else { 0 };
            assert_eq!(
                new.field[i], mine,
                "my own field at round {round} in {new:?}"
            );
            if round % 16 == 0 {
                let seen = d.get("test").unwrap().expect("the key is present");
                assert!(seen.is_consistent(), "get returned {seen:?}");
                assert!(seen.bumps[i] > round, "a read went back in time: {seen:?}");
            }
        }
    }
);

// ---------------------------------------------------------------------------
// A full table.

const FULL_PROCS: usize = 4;
const FULL_CAPACITY: usize = 64;
/// Distinct keys the processes try to insert (more than fit).
const FULL_KEYS: u64 = 200;

/// 4 processes race to insert 200 distinct keys into a 64-entry table:
/// exactly 64 inserts succeed and every other one is `MapError::Full`
/// (nothing is overwritten). Then, from other processes, the table is still
/// fully usable: every present key can be read, updated and removed, a
/// removed key can be inserted again, and a new key is still `Full` (a
/// table binds at most `capacity` distinct keys over its life).
#[test]
fn a_full_table_reports_full_and_stays_usable() {
    let dir = tempfile::tempdir().unwrap();
    let d = Map::<u64, u64>::create(dir.path().join("dict"), FULL_CAPACITY).unwrap();
    let won = AtomicArray::<u32>::create(dir.path().join("won"), FULL_KEYS as usize).unwrap();
    let full = Counter::create(dir.path().join("full"), 0).unwrap();
    let arrived = Counter::create(dir.path().join("arrived"), 0).unwrap();

    let mut kids = Children::new();
    for i in 0..FULL_PROCS {
        kids.spawn("child_fill_past_full", i, dir.path(), "");
    }
    kids.wait_all_ok();

    let winners: BTreeSet<u64> = (0..FULL_KEYS)
        .filter(|&k| won[k as usize].load() == 1)
        .collect();
    assert!(
        won.snapshot().iter().all(|&n| n <= 1),
        "a key inserted new twice"
    );
    assert_eq!(winners.len(), FULL_CAPACITY, "keys inserted");
    assert_eq!(
        full.load(),
        (FULL_KEYS as usize - FULL_CAPACITY) as i64,
        "Full errors"
    );
    assert_eq!(d.len(), FULL_CAPACITY);
    let snap = d.snapshot().unwrap();
    assert!(snap.iter().all(|&(k, v)| v == k * 10), "values: {snap:?}");
    assert_eq!(
        snap.iter().map(|&(k, _)| k).collect::<BTreeSet<u64>>(),
        winners
    );
    assert_eq!(
        d.insert(&FULL_KEYS, 0),
        Err(MapError::Full {
            capacity: FULL_CAPACITY
        })
    );

    // Phase two: other processes use the full table.
    arrived.store(0);
    let mut kids = Children::new();
    for i in 0..FULL_PROCS {
        kids.spawn("child_use_full_table", i, dir.path(), "");
    }
    kids.wait_all_ok();

    // Each present key k was updated to k * 10 + 1; those with k % 8 < 4
    // were removed, and half of those (k % 8 < 2) inserted again as k * 100.
    let mut expected: Vec<(u64, u64)> = winners
        .iter()
        .filter_map(|&k| match k % 8 {
            0 | 1 => Some((k, k * 100)),
            2 | 3 => None,
            _ => Some((k, k * 10 + 1)),
        })
        .collect();
    let mut snap = d.snapshot().unwrap();
    snap.sort_unstable();
    expected.sort_unstable();
    assert_eq!(snap, expected);
    assert_eq!(d.len(), expected.len());
    assert_eq!(
        d.insert(&(FULL_KEYS + 1), 0),
        Err(MapError::Full {
            capacity: FULL_CAPACITY
        })
    );
}

common::child_entry!(
    #[started_by(a_full_table_reports_full_and_stays_usable)]
    fn child_fill_past_full(ctx: ChildCtx) {
        let d = Map::<u64, u64>::open(ctx.path.join("dict")).unwrap();
        let won = AtomicArray::<u32>::open(ctx.path.join("won")).unwrap();
        let full = Counter::open(ctx.path.join("full")).unwrap();
        let arrived = Counter::open(ctx.path.join("arrived")).unwrap();
        barrier(&arrived, FULL_PROCS);
        for k in (ctx.index as u64..FULL_KEYS).step_by(FULL_PROCS) {
            match d.insert(&k, k * 10) {
                Ok(None) => {
                    won[k as usize].fetch_add(1);
                }
                Err(MapError::Full { capacity }) => {
                    assert_eq!(capacity, FULL_CAPACITY);
                    full.fetch_add(1);
                }
                other => panic!("insert({k}) = {other:?}"),
            }
        }
    }
);

common::child_entry!(
    #[started_by(a_full_table_reports_full_and_stays_usable)]
    fn child_use_full_table(ctx: ChildCtx) {
        let d = Map::<u64, u64>::open(ctx.path.join("dict")).unwrap();
        let won = AtomicArray::<u32>::open(ctx.path.join("won")).unwrap();
        let arrived = Counter::open(ctx.path.join("arrived")).unwrap();
        let full_err = MapError::Full {
            capacity: FULL_CAPACITY,
        };
        barrier(&arrived, FULL_PROCS);
        // A new key, this process's own: still Full, whatever is removed.
        let new_key = 1000 + ctx.index as u64;
        for k in (ctx.index as u64..FULL_KEYS).step_by(FULL_PROCS) {
            if won[k as usize].load() != 1 {
                assert_eq!(d.get(&k).unwrap(), None, "key {k} lost the race");
                assert!(!d.contains_key(&k).unwrap());
                continue;
            }
            assert_eq!(d.get(&k).unwrap(), Some(k * 10));
            assert!(d.contains_key(&k).unwrap());
            assert_eq!(d.update(&k, |v| v + 1).unwrap(), Some(k * 10 + 1));
            assert_eq!(d.insert_if_absent(&k, 7).unwrap(), Some(k * 10 + 1));
            if k % 8 < 4 {
                assert_eq!(d.remove(&k).unwrap(), Some(k * 10 + 1));
                assert_eq!(d.get(&k).unwrap(), None);
                assert_eq!(d.remove(&k).unwrap(), None);
                assert_eq!(
                    d.insert(&new_key, 1),
                    Err(full_err.clone()),
                    "a removed entry stays bound to its key"
                );
                if k % 8 < 2 {
                    assert_eq!(
                        d.insert(&k, k * 100).unwrap(),
                        None,
                        "a removed key comes back"
                    );
                    assert_eq!(d.get(&k).unwrap(), Some(k * 100));
                }
            }
        }
        assert_eq!(d.insert(&new_key, 1), Err(full_err.clone()));
        assert_eq!(d.insert_if_absent(&new_key, 1), Err(full_err.clone()));
        assert_eq!(d.update_or_insert(&new_key, 1, |v| v + 1), Err(full_err));
        assert_eq!(d.get(&new_key).unwrap(), None);
        assert!(!d.contains_key(&new_key).unwrap());
        assert_eq!(d.remove(&new_key).unwrap(), None);
    }
);

/// Regression: `Map::update` of a key that was never inserted, on a full
/// table, is `Ok(None)` (absent), not `Err(Full)`: nothing is to be
/// inserted, so a full table is no error.
#[test]
fn update_of_an_absent_key_in_a_full_table_is_none() {
    let dir = tempfile::tempdir().unwrap();
    let d = Map::<u64, u64>::create(dir.path().join("dict"), 4).unwrap();
    for k in 0..4 {
        d.insert(&k, k).unwrap();
    }
    assert_eq!(d.get(&99).unwrap(), None);
    assert_eq!(d.update(&99, |v| v + 1), Ok(None));
}

/// `inspect` lists a map's entries, for `u64` and string keys, with keys of
/// the default and of a longer maximum length (the entry layout, two copies
/// of each value, must be read with the key room the file really has).
#[test]
fn inspect_lists_a_maps_entries() {
    use mmring::inspect::{Body, inspect};
    use mmring::map::MapOptions;

    let dir = tempfile::tempdir().unwrap();
    let nums = Map::<u64, u32>::create(dir.path().join("nums"), 8).unwrap();
    nums.insert(&7, 70).unwrap();
    nums.insert(&9, 90).unwrap();
    nums.remove(&9).unwrap();
    let names = Map::<str, [u64; 3]>::create_with(
        dir.path().join("names"),
        4,
        &MapOptions::new().max_key_len(40),
    )
    .unwrap();
    names.insert("count", [1, 2, 3]).unwrap();

    match inspect(dir.path().join("nums")).unwrap().body {
        Body::Map {
            capacity: 8,
            len: 1,
            entries: Ok(entries),
        } => assert_eq!(entries, [("7".to_string(), 70u32.to_ne_bytes().to_vec())]),
        other => panic!("{other:?}"),
    }
    match inspect(dir.path().join("names")).unwrap().body {
        Body::Map {
            capacity: 4,
            len: 1,
            entries: Ok(entries),
        } => {
            assert_eq!(entries.len(), 1);
            assert_eq!(entries[0].0, "\"count\"");
            assert_eq!(entries[0].1, bytemuck_bytes(&[1u64, 2, 3]));
        }
        other => panic!("{other:?}"),
    }
}

fn bytemuck_bytes(v: &[u64]) -> Vec<u8> {
    v.iter().flat_map(|w| w.to_ne_bytes()).collect()
}
