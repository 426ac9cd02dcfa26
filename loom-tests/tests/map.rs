//! Loom models of the shared hash map (`mmring::raw::map::RawMap`): two writers
//! of the same key (no lost update, the key created once), two new keys
//! racing for the same vacant entry (neither overwrites the other), a
//! reader racing a writer (never a torn value), and insert racing remove
//! (every outcome is one of the two serial orders).
//!
//! Run with
//! `RUSTFLAGS="--cfg loom" cargo test -p mmring-loom-tests --release --target-dir target/loom --test map`
//! (`LOOM_MAX_PREEMPTIONS` overrides each model's bound,
//! `MMRING_LOOM_VERBOSE=1` prints executions and outcomes).
//!
//! Values are 16 bytes, two `u64` halves that every writer keeps equal, so
//! a reader that copied half of one write and half of another sees halves
//! that differ. The capacity is 2, so keys collide and probe.
//!
//! Each model lists the outcomes it must have explored (`common::check`):
//! both orders of the racing operations, so that it cannot pass by
//! exploring a single interleaving.

#![cfg(loom)]

mod common;

use common::{Seen, check};
use loom::sync::Arc;
use loom::thread;
use mmring::raw::map::{Inserted, MapControl, MapError, RawMap, entry_words};
use mmring::raw::seqlock::Patience;
use mmring::sync::{AtomicU64, Ordering};

const CAP: usize = 2;
const MAX_KEY: usize = 8;
const VALUE: usize = 16;

/// Retry budget of one seqlock access. A waiter spins with loom's
/// `spin_loop` (a yield), and loom does not run a yielded thread again while
/// another can run, so a writer inside always finishes first: running out
/// is not expected, but is handled (retried, noted) rather than assumed.
const PATIENCE: Patience = Patience::attempts(4);

/// Whole-operation retries after `MapError::Busy`.
const RETRIES: usize = 3;

struct Shared {
    ctl: MapControl,
    words: Vec<AtomicU64>,
}

impl Shared {
    fn map(&self) -> RawMap<'_> {
        RawMap::new(&self.ctl, &self.words, CAP, MAX_KEY, VALUE, PATIENCE)
    }
}

fn shared() -> Arc<Shared> {
    Arc::new(Shared {
        ctl: MapControl::new(2, MAX_KEY as u32),
        words: (0..CAP * entry_words(MAX_KEY, VALUE))
            .map(|_| AtomicU64::new(0))
            .collect(),
    })
}

/// The value `[k, k]` as bytes.
fn val(k: u64) -> [u8; VALUE] {
    let mut b = [0u8; VALUE];
    b[..8].copy_from_slice(&k.to_ne_bytes());
    b[8..].copy_from_slice(&k.to_ne_bytes());
    b
}

/// The `k` of a `[k, k]` value; panics on a torn one.
fn unval(b: &[u8]) -> u64 {
    let lo = u64::from_ne_bytes(b[..8].try_into().unwrap());
    let hi = u64::from_ne_bytes(b[8..16].try_into().unwrap());
    assert_eq!(lo, hi, "torn value: halves {lo} and {hi}");
    lo
}

/// Adds `d` to both halves.
fn add(b: &mut [u8], d: u64) {
    let k = unval(b);
    b.copy_from_slice(&val(k + d));
}

/// Runs `op`, retrying (with a yield) while it reports `Busy`; a bounded
/// loop, so a lock that never frees ends the model with a panic instead of
/// looping forever.
fn retry<R>(seen: &Seen, mut op: impl FnMut() -> Result<R, MapError>) -> R {
    for _ in 0..RETRIES {
        match op() {
            Ok(r) => return r,
            Err(MapError::Busy(_)) => {
                seen.note("busy retried");
                thread::yield_now();
            }
            Err(e) => panic!("unexpected map error: {e}"),
        }
    }
    panic!("an entry stayed busy through {RETRIES} retries");
}

/// Every live (key, k) in slot order, and a check that the `len` statistic
/// agrees with it.
fn contents(map: RawMap<'_>) -> Vec<(Vec<u8>, u64)> {
    let mut all = Vec::new();
    map.for_each(|k, v| all.push((k.to_vec(), unval(v))))
        .unwrap();
    assert_eq!(
        map.len(),
        all.len(),
        "len statistic disagrees with the entries"
    );
    all
}

fn get(map: RawMap<'_>, key: &[u8]) -> Option<u64> {
    let mut out = [0u8; VALUE];
    map.get(key, &mut out).unwrap().then(|| unval(&out))
}

/// 64-bit FNV-1a, the map's hash (`mmring::pod::fnv1a` is crate-private):
/// used only to pick keys whose probe sequences start at the same entry.
/// The model also checks that they really do (`slot` outcomes).
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Two distinct one-byte keys whose first probe is the same entry.
fn colliding_keys() -> ([u8; 1], [u8; 1]) {
    let a = *b"a";
    let b = (b'b'..=b'z')
        .map(|c| [c])
        .find(|k| fnv1a(k) as usize % CAP == fnv1a(&a) as usize % CAP)
        .unwrap();
    (a, b)
}

/// (1) Two threads add to the same absent key with `update(key,
/// Some(init), ..)`: the key is created exactly once and neither addition
/// is lost (+1 and +10 → 11), whichever thread creates it.
#[test]
fn two_updates_of_one_key_lose_nothing() {
    check(3, &["main created", "other created"], |seen| {
        let s = shared();
        let other = {
            let (s, seen) = (s.clone(), seen.clone());
            thread::spawn(move || {
                let mut created = false;
                let ran = retry(&seen, || {
                    s.map().update(b"k", Some(&val(0)), |v| {
                        created = unval(v) == 0;
                        add(v, 1);
                    })
                });
                assert!(ran);
                created
            })
        };
        let mut created = false;
        let ran = retry(seen, || {
            s.map().update(b"k", Some(&val(0)), |v| {
                created = unval(v) == 0;
                add(v, 10);
            })
        });
        assert!(ran);
        let other_created = other.join().unwrap();
        assert!(
            created ^ other_created,
            "exactly one update sees the init value"
        );
        seen.note(if created {
            "main created"
        } else {
            "other created"
        });
        assert_eq!(
            contents(s.map()),
            [(b"k".to_vec(), 11)],
            "lost update or key created twice"
        );
    });
}

/// (1b) `insert` racing `update` of the same absent key: the result is one
/// of the two serial orders (insert 5 then +1 → 6, or +1 on init 0 then
/// insert 5 replacing 1 → 5), never both writes on a duplicate key.
#[test]
fn insert_racing_update_of_one_key_is_serial() {
    check(3, &["insert first", "update first"], |seen| {
        let s = shared();
        let other = {
            let (s, seen) = (s.clone(), seen.clone());
            thread::spawn(move || {
                let mut old = [0u8; VALUE];
                let r = retry(&seen, || s.map().insert(b"k", &val(5), &mut old, false));
                (r, unval(&old))
            })
        };
        assert!(retry(seen, || s.map().update(
            b"k",
            Some(&val(0)),
            |v| add(v, 1)
        )));
        let (inserted, old) = other.join().unwrap();
        let all = contents(s.map());
        match inserted {
            Inserted::New => {
                seen.note("insert first");
                assert_eq!(
                    all,
                    [(b"k".to_vec(), 6)],
                    "the update after the insert was lost"
                );
            }
            Inserted::Replaced => {
                seen.note("update first");
                assert_eq!(
                    old, 1,
                    "insert replaced something other than the update's value"
                );
                assert_eq!(all, [(b"k".to_vec(), 5)]);
            }
            Inserted::Kept => panic!("only_if_absent was not asked"),
        }
    });
}

/// (2) Two *different* keys that start probing at the same entry are
/// inserted at once: both found that entry empty, only one may take it; the
/// other must re-check under the lock, see a different key and probe on.
/// Both keys survive with their values, in either slot order.
#[test]
fn two_new_keys_racing_for_one_entry_both_survive() {
    let (ka, kb) = colliding_keys();
    check(3, &["slot a first", "slot b first"], move |seen| {
        let s = shared();
        let other = {
            let (s, seen) = (s.clone(), seen.clone());
            thread::spawn(move || {
                let mut old = [0u8; VALUE];
                let r = retry(&seen, || s.map().insert(&kb, &val(2), &mut old, false));
                assert_eq!(r, Inserted::New);
            })
        };
        let mut old = [0u8; VALUE];
        let r = retry(seen, || s.map().insert(&ka, &val(1), &mut old, false));
        assert_eq!(r, Inserted::New);
        other.join().unwrap();
        let map = s.map();
        assert_eq!(get(map, &ka), Some(1), "key a lost or overwritten");
        assert_eq!(get(map, &kb), Some(2), "key b lost or overwritten");
        let all = contents(map);
        assert_eq!(all.len(), 2, "{all:?}");
        // The home entry of both keys holds whichever won it.
        let home = fnv1a(&ka) as usize % CAP;
        seen.note(if all[home].0 == ka {
            "slot a first"
        } else {
            "slot b first"
        });
    });
}

/// (3) A reader `get`s a key twice while a writer updates it (1 → 2):
/// every read is whole (equal halves) and one of the published values, and
/// the second read never goes back. The reader also peeks at the entry's
/// sequence word around its first read, so the model must show that it
/// explored a read that began while the write was inside the lock.
#[test]
fn get_racing_update_never_sees_a_torn_value() {
    check(3, &["read 1", "read 2", "began mid-write"], |seen| {
        let s = shared();
        let mut old = [0u8; VALUE];
        assert_eq!(
            s.map().insert(b"k", &val(1), &mut old, false),
            Ok(Inserted::New)
        );
        let reader = {
            let (s, seen) = (s.clone(), seen.clone());
            thread::spawn(move || {
                // The only key sits in its home entry; word 0 of an entry
                // is its seqlock sequence (odd while a writer is inside).
                let seq = &s.words[(fnv1a(b"k") as usize % CAP) * entry_words(MAX_KEY, VALUE)];
                let mut last = 0;
                for i in 0..2 {
                    // Relaxed: a probe for coverage only.
                    if i == 0 && seq.load(Ordering::Relaxed) & 1 == 1 {
                        seen.note("began mid-write");
                    }
                    let mut out = [0u8; VALUE];
                    let live = retry(&seen, || s.map().get(b"k", &mut out));
                    assert!(live, "the key is never removed");
                    let k = unval(&out);
                    assert!((1..=2).contains(&k), "a value nobody wrote: {k}");
                    assert!(k >= last, "read went back: {last} -> {k}");
                    last = k;
                    seen.note(format!("read {k}"));
                }
            })
        };
        assert!(retry(seen, || s.map().update(b"k", None, |v| add(v, 1))));
        reader.join().unwrap();
        assert_eq!(contents(s.map()), [(b"k".to_vec(), 2)]);
    });
}

/// (4) `insert(k, 2)` races `remove(k)`, with k absent or live (1) at the
/// start: the results and the final map match one of the two serial
/// orders.
fn insert_racing_remove(seen: &Seen, present: bool) {
    let s = shared();
    if present {
        let mut old = [0u8; VALUE];
        assert_eq!(
            s.map().insert(b"k", &val(1), &mut old, false),
            Ok(Inserted::New)
        );
    }
    let other = {
        let (s, seen) = (s.clone(), seen.clone());
        thread::spawn(move || {
            let mut old = [0u8; VALUE];
            let r = retry(&seen, || s.map().insert(b"k", &val(2), &mut old, false));
            (r, unval(&old))
        })
    };
    let mut removed = [0u8; VALUE];
    let was_live = retry(seen, || s.map().remove(b"k", &mut removed));
    let (inserted, old) = other.join().unwrap();
    let all = contents(s.map());
    let removed = was_live.then(|| unval(&removed));
    match (present, inserted, removed) {
        // Insert, then remove: the remove took the inserted value.
        (false, Inserted::New, Some(2)) | (true, Inserted::Replaced, Some(2)) => {
            if present {
                assert_eq!(old, 1);
            }
            assert_eq!(all, [], "removed key still live");
            seen.note("insert first");
        }
        // Remove, then insert: the insert made the key anew.
        (false, Inserted::New, None) | (true, Inserted::New, Some(1)) => {
            assert_eq!(all, [(b"k".to_vec(), 2)], "inserted value lost");
            seen.note("remove first");
        }
        other => panic!("not a serial outcome: present {present}, (insert, removed) = {other:?}"),
    }
    // A removed key can be inserted again (the entry is revived in place).
    let mut old = [0u8; VALUE];
    let again = s.map().insert(b"k", &val(3), &mut old, true).unwrap();
    assert_eq!(again == Inserted::New, all.is_empty());
    assert_eq!(get(s.map(), b"k"), Some(if all.is_empty() { 3 } else { 2 }));
    assert_eq!(contents(s.map()).len(), 1);
}

#[test]
fn insert_racing_remove_of_an_absent_key() {
    check(3, &["insert first", "remove first"], |seen| {
        insert_racing_remove(seen, false)
    });
}

#[test]
fn insert_racing_remove_of_a_live_key() {
    check(3, &["insert first", "remove first"], |seen| {
        insert_racing_remove(seen, true)
    });
}
