//! `Map` shared by real, separate processes: the classic `Manager().dict()`
//! scenarios — a count decremented by 20 processes, a pool of workers
//! filling a dict, several processes updating one struct value in place (the
//! nested-dict pitfall), and a full table that stays usable.

mod common;

use std::collections::BTreeSet;

use common::{Children, barrier};
use mmring::map::{ByteMap, Map, MapError};
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
/// fully usable: every present key can be read, updated and removed, and a
/// removed key can be inserted again (no process inserts any other key
/// meanwhile, so a freed entry is there for it). Finally the entries the
/// removed keys freed take exactly as many new keys, and then the table is
/// full again.
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
    // The removed keys' entries are free for any key. Which keys won is up
    // to the race: if one process ran ahead, the winners may all be of its
    // stride (k % 4 fixed) and none had k % 8 in 2..4; then free one here.
    let mut freed = FULL_CAPACITY - expected.len();
    if freed == 0 {
        let (k, v) = expected.pop().expect("a full table has keys");
        assert_eq!(d.remove(&k).unwrap(), Some(v));
        freed = 1;
    }
    for (i, k) in (FULL_KEYS..).take(freed).enumerate() {
        assert_eq!(d.insert(&k, k).unwrap(), None, "new key {i} of {freed}");
    }
    assert_eq!(d.len(), FULL_CAPACITY);
    assert_eq!(
        d.insert(&(FULL_KEYS + freed as u64), 0),
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
        barrier(&arrived, FULL_PROCS);
        // A key nobody inserts: absent throughout.
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
        assert_eq!(d.update(&new_key, |v| v + 1).unwrap(), None);
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
    use mmring::map::{ByteMap, MapOptions};
    use mmring::raw::map::Value;

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
            values: Value::Fixed(4),
            max_key_len: 8,
            census: Ok(census),
            entries: Ok(entries),
        } => {
            assert_eq!(entries, [("7".to_string(), 70u32.to_ne_bytes().to_vec())]);
            assert_eq!((census.live, census.removed, census.empty), (1, 1, 6));
        }
        other => panic!("{other:?}"),
    }
    match inspect(dir.path().join("names")).unwrap().body {
        Body::Map {
            capacity: 4,
            len: 1,
            values: Value::Fixed(24),
            max_key_len: 40,
            entries: Ok(entries),
            ..
        } => {
            assert_eq!(entries.len(), 1);
            assert_eq!(entries[0].0, "\"count\"");
            assert_eq!(entries[0].1, bytemuck_bytes(&[1u64, 2, 3]));
        }
        other => panic!("{other:?}"),
    }
    let texts = ByteMap::<str>::create(dir.path().join("texts"), 4, 100).unwrap();
    texts.insert("greeting", b"hello").unwrap();
    let info = inspect(dir.path().join("texts")).unwrap();
    match &info.body {
        Body::Map {
            values: Value::Bytes(100),
            entries: Ok(entries),
            ..
        } => assert_eq!(entries, &[("\"greeting\"".to_string(), b"hello".to_vec())]),
        other => panic!("{other:?}"),
    }
    let text = info.to_string();
    assert!(text.contains("byte strings, at most 100 bytes"), "{text}");
    assert!(text.contains("1 live, 0 removed"), "{text}");
}

fn bytemuck_bytes(v: &[u64]) -> Vec<u8> {
    v.iter().flat_map(|w| w.to_ne_bytes()).collect()
}

// ---------------------------------------------------------------------------
// Churn: many more distinct keys than entries, a few present at once.

const CHURN_PROCS: usize = 4;
const CHURN_CAPACITY: usize = 64;
/// Distinct keys each process inserts: 4 × 1,600 = 100 × the capacity.
const CHURN_KEYS: u64 = 1_600;
/// Keys each process keeps present at once (4 × 12 = 48 < 64).
const CHURN_WINDOW: u64 = 12;
const CHURN_MAX_VALUE: usize = 48;

/// Key `i` of process `p`: distinct across processes.
fn churn_key(p: u64, i: u64) -> u64 {
    p << 32 | i
}

/// The value first inserted under `k`: a length that varies with `k` (0 to
/// 40 bytes), every byte derived from `k`.
fn churn_value(k: u64) -> Vec<u8> {
    let len = (k.wrapping_mul(7) % 41) as usize;
    (0..len).map(|i| (k as u8).wrapping_add(i as u8)).collect()
}

/// The value after its one update: `k`'s 8 bytes appended.
fn churn_updated(k: u64) -> Vec<u8> {
    let mut v = churn_value(k);
    v.extend_from_slice(&k.to_le_bytes());
    v
}

/// 4 processes churn 100 × the capacity in distinct keys through a byte
/// map of 64 entries, each keeping its last 12 keys present (48 at most at
/// once): every insert is new (never `Full`: fewer than 64 keys are ever
/// present), every read of its own keys is exactly what it wrote, every
/// read of another process's recent key is that key's value (first or
/// updated) or nothing, never another key's; afterwards the map holds
/// exactly the 48 last keys with their updated values.
#[test]
fn four_processes_churn_a_hundred_times_the_capacity() {
    let dir = tempfile::tempdir().unwrap();
    let d =
        ByteMap::<u64>::create(dir.path().join("dict"), CHURN_CAPACITY, CHURN_MAX_VALUE).unwrap();
    let _arrived = Counter::create(dir.path().join("arrived"), 0).unwrap();
    let _progress = AtomicArray::<u64>::create(dir.path().join("progress"), CHURN_PROCS).unwrap();

    let mut kids = Children::new();
    for i in 0..CHURN_PROCS {
        kids.spawn("child_churn", i, dir.path(), "");
    }
    kids.wait_all_ok();

    let mut expected: Vec<(u64, Vec<u8>)> = (0..CHURN_PROCS as u64)
        .flat_map(|p| (CHURN_KEYS - CHURN_WINDOW..CHURN_KEYS).map(move |i| churn_key(p, i)))
        .map(|k| (k, churn_updated(k)))
        .collect();
    expected.sort();
    let mut snap = d.snapshot().unwrap();
    snap.sort();
    assert_eq!(snap, expected, "final contents");
    assert_eq!(d.len(), expected.len());
    let info = mmring::inspect::inspect(dir.path().join("dict")).unwrap();
    println!("after churn: {info}");
    let mmring::inspect::Body::Map {
        census: Ok(census), ..
    } = info.body
    else {
        panic!("{info}")
    };
    assert_eq!((census.live, census.empty), (expected.len(), 0));
    // Every entry has held a key, and none is empty to stop a lookup, yet
    // the homes' reaches keep an absent key's lookup short: before them it
    // walked all 64 entries (typically 5 to 9 now, 75% full).
    let walk = census.mean_absent_walk(CHURN_CAPACITY);
    assert!(
        walk < 24.0,
        "absent lookups walk {walk} entries: {census:?}"
    );
    // A key never inserted is absent.
    assert_eq!(d.get(&u64::MAX).unwrap(), None);
}

common::child_entry!(
    #[started_by(four_processes_churn_a_hundred_times_the_capacity)]
    fn child_churn(ctx: ChildCtx) {
        let d = ByteMap::<u64>::open(ctx.path.join("dict")).unwrap();
        let progress = AtomicArray::<u64>::open(ctx.path.join("progress")).unwrap();
        let arrived = Counter::open(ctx.path.join("arrived")).unwrap();
        barrier(&arrived, CHURN_PROCS);
        let me = ctx.index as u64;
        let mut buf = [0u8; CHURN_MAX_VALUE];
        for i in 0..CHURN_KEYS {
            let k = churn_key(me, i);
            let v = churn_value(k);
            match d.insert(&k, &v) {
                Ok(None) => {}
                other => panic!("insert of new key {k:#x}: {other:?}"),
            }
            assert_eq!(d.get(&k).unwrap().as_deref(), Some(&v[..]), "{k:#x}");
            let new = d
                .update(&k, |old| old.extend_from_slice(&k.to_le_bytes()))
                .unwrap();
            assert_eq!(new, Some(churn_updated(k)), "{k:#x}");
            let n = d.get_into(&k, &mut buf).unwrap();
            assert_eq!(n, Some(churn_updated(k).len()));
            assert_eq!(&buf[..n.unwrap()], &churn_updated(k)[..]);
            if i >= CHURN_WINDOW {
                let old = churn_key(me, i - CHURN_WINDOW);
                assert_eq!(
                    d.remove(&old).unwrap(),
                    Some(churn_updated(old)),
                    "{old:#x}"
                );
                assert_eq!(d.get(&old).unwrap(), None, "{old:#x} removed");
            }
            // Another process's recent key: its own value or nothing.
            let peer = (me + 1 + i % (CHURN_PROCS as u64 - 1)) % CHURN_PROCS as u64;
            let seen = progress[peer as usize].load();
            let pk = churn_key(peer, seen);
            if let Some(got) = d.get(&pk).unwrap() {
                assert!(
                    got == churn_value(pk) || got == churn_updated(pk),
                    "key {pk:#x} read {got:?}"
                );
            }
            progress[ctx.index].store(i);
        }
    }
);
