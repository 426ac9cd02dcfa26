//! Loom models of the shared hash map (`mmring::raw::map::RawMap`): two writers
//! of the same key (no lost update, the key created once), two new keys
//! racing for the same vacant entry (neither overwrites the other), a
//! reader racing a writer (never a torn value), insert racing remove
//! (every outcome is one of the two serial orders), and the reuse of
//! removed entries: a reader racing a remove (the value or nothing, never
//! back), a reader racing a remove and the reuse of the entry by another
//! key (never that key's value), two inserts of one new key past a
//! tombstone (created once), and an update racing a remove and a reuse
//! (never lands on the new key); and the reach that bounds every lookup:
//! a key placed beyond it is found by whoever saw it, two keys of one home
//! placed past it at once are both found, and a reach comes down only when
//! no key of its home lies beyond.
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
//! These entries are small enough for the map's *word path* (lookups and
//! writes of whole words, the path of small entries); four models run
//! again with every operation on the *byte path* (`_on_the_byte_path`, the
//! path of larger entries), so that both stay checked.
//!
//! Four models run `update_fixed` (the typed word path of `Map<u64, V>`,
//! with a key of one whole word): two typed updates of one key lose
//! nothing, a reader racing a typed update never sees a torn value, a
//! typed update racing the removal of its key and the reuse of the entry
//! never touches the new key (its re-check under the lock), and a key
//! placed past its home is found by a typed update that saw it in a walk
//! (its walk past home, bounded by the reach).
//!
//! Each model lists the outcomes it must have explored (`common::check`):
//! both orders of the racing operations, so that it cannot pass by
//! exploring a single interleaving.

#![cfg(loom)]

mod common;

use common::{Seen, check};
use loom::sync::Arc;
use loom::thread;
use mmring::raw::map::{
    ENTRY_REACH_WORDS, Inserted, MapControl, MapError, RawMap, Value, entry_words,
};
use mmring::raw::seqlock::Patience;
use mmring::sync::{AtomicU64, Ordering};

const CAP: usize = 2;
const MAX_KEY: usize = 8;
const VALUE: usize = 16;
const VALUES: Value = Value::Fixed(VALUE);

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
    cap: usize,
    /// Whether every operation takes the byte path (`RawMap::on_byte_path`):
    /// these entries are small enough for the word path, which is what the
    /// models check unless they say otherwise.
    byte_path: bool,
}

impl Shared {
    fn map(&self) -> RawMap<'_> {
        let map = RawMap::new(&self.ctl, &self.words, self.cap, MAX_KEY, VALUES, PATIENCE);
        if self.byte_path {
            map.on_byte_path()
        } else {
            map
        }
    }
}

fn shared() -> Arc<Shared> {
    shared_of(CAP)
}

/// A map of [`CAP`] entries whose operations take the byte path.
fn shared_on_byte_path() -> Arc<Shared> {
    let mut s = shared_of(CAP);
    Arc::get_mut(&mut s).expect("not shared yet").byte_path = true;
    s
}

/// A map of `cap` entries.
fn shared_of(cap: usize) -> Arc<Shared> {
    Arc::new(Shared {
        ctl: MapControl::new(2, MAX_KEY as u32),
        words: (0..cap * entry_words(MAX_KEY, VALUES))
            .map(|_| AtomicU64::new(0))
            .collect(),
        cap,
        byte_path: false,
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
    map.get_with(key, unval).unwrap()
}

/// `insert(key, [k, k])`: what it did and the old value it handed out.
fn insert(
    map: RawMap<'_>,
    key: &[u8],
    k: u64,
    only_if_absent: bool,
) -> Result<(Inserted, u64), MapError> {
    let mut old = 0;
    let r = map.insert(key, &val(k), only_if_absent, |o| old = unval(o))?;
    Ok((r, old))
}

/// `update(key, absent, +d)`: whether it ran, and the old value it saw.
fn update(
    map: RawMap<'_>,
    key: &[u8],
    absent: Option<u64>,
    d: u64,
) -> Result<Option<u64>, MapError> {
    let init = absent.map(val);
    let mut saw = None;
    let ran = map.update(key, init.as_ref().map(|v| &v[..]), |old, room| {
        let k = unval(old);
        saw = Some(k);
        room.copy_from_slice(&val(k + d));
        Ok(VALUE)
    })?;
    assert_eq!(ran, saw.is_some());
    Ok(saw)
}

/// `update_fixed(key, +d)` (the typed word path, `[u64; 2]` values, a
/// key of one whole word): the old value it saw, if the key was there.
fn update_typed(map: RawMap<'_>, key: &[u8; 8], d: u64) -> Result<Option<u64>, MapError> {
    let mut saw = None;
    let new = map.update_fixed(&[u64::from_ne_bytes(*key)], |[lo, hi]: [u64; 2]| {
        assert_eq!(lo, hi, "torn value: halves {lo} and {hi}");
        saw = Some(lo);
        [lo + d, hi + d]
    })?;
    assert_eq!(new.map(|[lo, _]| lo), saw.map(|k| k + d));
    Ok(saw)
}

/// `remove(key)`: the value it removed.
fn remove(map: RawMap<'_>, key: &[u8]) -> Result<Option<u64>, MapError> {
    let mut old = None;
    map.remove(key, |o| old = Some(unval(o)))?;
    Ok(old)
}

/// 64-bit FNV-1a, the map's hash (`mmring::pod::fnv1a` is crate-private):
/// used only to pick keys whose probe sequences start at the same entry.
/// The models also check that they really do.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The home entry of `key`.
fn home(key: &[u8]) -> usize {
    home_in(key, CAP)
}

/// The home entry of `key` in a map of `cap` entries.
fn home_in(key: &[u8], cap: usize) -> usize {
    fnv1a(key) as usize % cap
}

/// Three distinct one-byte keys whose first probe is the same entry.
fn colliding_keys() -> ([u8; 1], [u8; 1], [u8; 1]) {
    let [a, b, c] = colliding_in(CAP);
    (a, b, c)
}

/// Three distinct one-byte keys with the same home in a map of `cap`
/// entries.
fn colliding_in(cap: usize) -> [[u8; 1]; 3] {
    let a = *b"a";
    let mut more = (b'b'..=b'z')
        .map(|c| [c])
        .filter(|k| home_in(k, cap) == home_in(&a, cap));
    [a, more.next().unwrap(), more.next().unwrap()]
}

/// Two distinct 8-byte keys (one whole word: the typed path's keys) whose
/// first probe is the same entry.
fn colliding_words() -> ([u8; 8], [u8; 8]) {
    let a = *b"kkkkkkka";
    let b = (b'b'..=b'z')
        .map(|c| {
            let mut k = a;
            k[7] = c;
            k
        })
        .find(|k| home(k) == home(&a))
        .expect("a colliding key");
    (a, b)
}

/// (1) Two threads add to the same absent key with `update(key,
/// Some(init), ..)`: the key is created exactly once and neither addition
/// is lost (+1 and +10 → 11), whichever thread creates it.
fn two_updates_of_one_key_lose_nothing_on(byte_path: bool) {
    check(3, &["main created", "other created"], move |seen| {
        let s = if byte_path {
            shared_on_byte_path()
        } else {
            shared()
        };
        let other = {
            let (s, seen) = (s.clone(), seen.clone());
            thread::spawn(move || retry(&seen, || update(s.map(), b"k", Some(0), 1)) == Some(0))
        };
        let created = retry(seen, || update(s.map(), b"k", Some(0), 10)) == Some(0);
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

#[test]
fn two_updates_of_one_key_lose_nothing() {
    two_updates_of_one_key_lose_nothing_on(false);
}

/// The same model, every operation on the byte path (the path of larger
/// entries; these are small enough for the word path).
#[test]
fn two_updates_of_one_key_lose_nothing_on_the_byte_path() {
    two_updates_of_one_key_lose_nothing_on(true);
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
            thread::spawn(move || retry(&seen, || insert(s.map(), b"k", 5, false)))
        };
        assert!(retry(seen, || update(s.map(), b"k", Some(0), 1)).is_some());
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
/// inserted at once: only one may take the home entry; the other sees it
/// taken (under the home lock) and takes the next. Both keys survive with
/// their values, in either slot order.
#[test]
fn two_new_keys_racing_for_one_entry_both_survive() {
    let (ka, kb, _) = colliding_keys();
    check(3, &["slot a first", "slot b first"], move |seen| {
        let s = shared();
        let other = {
            let (s, seen) = (s.clone(), seen.clone());
            thread::spawn(move || {
                let (r, _) = retry(&seen, || insert(s.map(), &kb, 2, false));
                assert_eq!(r, Inserted::New);
            })
        };
        let (r, _) = retry(seen, || insert(s.map(), &ka, 1, false));
        assert_eq!(r, Inserted::New);
        other.join().unwrap();
        let map = s.map();
        assert_eq!(get(map, &ka), Some(1), "key a lost or overwritten");
        assert_eq!(get(map, &kb), Some(2), "key b lost or overwritten");
        let all = contents(map);
        assert_eq!(all.len(), 2, "{all:?}");
        // The home entry of both keys holds whichever won it.
        seen.note(if all[home(&ka)].0 == ka {
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
fn get_racing_update_never_sees_a_torn_value_on(byte_path: bool) {
    check(3, &["read 1", "read 2", "began mid-write"], move |seen| {
        let s = if byte_path {
            shared_on_byte_path()
        } else {
            shared()
        };
        assert_eq!(insert(s.map(), b"k", 1, false).unwrap().0, Inserted::New);
        let reader = {
            let (s, seen) = (s.clone(), seen.clone());
            thread::spawn(move || {
                // The only key sits in its home entry; the first word of an
                // entry's seqlock (after its reach) is its sequence (odd
                // while a writer is inside).
                let seq = &s.words[home(b"k") * entry_words(MAX_KEY, VALUES) + ENTRY_REACH_WORDS];
                let mut last = 0;
                for i in 0..2 {
                    // Relaxed: a probe for coverage only.
                    if i == 0 && seq.load(Ordering::Relaxed) & 1 == 1 {
                        seen.note("began mid-write");
                    }
                    let k = retry(&seen, || s.map().get_with(b"k", unval))
                        .expect("the key is never removed");
                    assert!((1..=2).contains(&k), "a value nobody wrote: {k}");
                    assert!(k >= last, "read went back: {last} -> {k}");
                    last = k;
                    seen.note(format!("read {k}"));
                }
            })
        };
        assert!(retry(seen, || update(s.map(), b"k", None, 1)).is_some());
        reader.join().unwrap();
        assert_eq!(contents(s.map()), [(b"k".to_vec(), 2)]);
    });
}

#[test]
fn get_racing_update_never_sees_a_torn_value() {
    get_racing_update_never_sees_a_torn_value_on(false);
}

/// The same model, every operation on the byte path (the path of larger
/// entries; these are small enough for the word path).
#[test]
fn get_racing_update_never_sees_a_torn_value_on_the_byte_path() {
    get_racing_update_never_sees_a_torn_value_on(true);
}

/// (4) `insert(k, 2)` races `remove(k)`, with k absent or live (1) at the
/// start: the results and the final map match one of the two serial
/// orders.
fn insert_racing_remove(seen: &Seen, present: bool) {
    let s = shared();
    if present {
        assert_eq!(insert(s.map(), b"k", 1, false).unwrap().0, Inserted::New);
    }
    let other = {
        let (s, seen) = (s.clone(), seen.clone());
        thread::spawn(move || retry(&seen, || insert(s.map(), b"k", 2, false)))
    };
    if !present {
        // Removing an absent key only reads (no lock to take), and loom
        // never preempts a thread that only loads before the other has run
        // (tokio-rs/loom#392): give the insert its chance to go first.
        thread::yield_now();
    }
    let removed = retry(seen, || remove(s.map(), b"k"));
    let (inserted, old) = other.join().unwrap();
    let all = contents(s.map());
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
    // A removed key can be inserted again.
    let (again, _) = insert(s.map(), b"k", 3, true).unwrap();
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

/// (5) A reader `get`s a key twice while another thread removes it: each
/// read is the value (1) or nothing, and once gone it stays gone (a
/// tombstone never answers for the key).
#[test]
fn get_racing_remove_sees_the_value_or_nothing() {
    check(3, &["read 1", "read none"], |seen| {
        let s = shared();
        assert_eq!(insert(s.map(), b"k", 1, false).unwrap().0, Inserted::New);
        let reader = {
            let (s, seen) = (s.clone(), seen.clone());
            thread::spawn(move || {
                let mut gone = false;
                for _ in 0..2 {
                    let got = retry(&seen, || s.map().get_with(b"k", unval));
                    match got {
                        Some(k) => {
                            assert_eq!(k, 1, "a value nobody wrote");
                            assert!(!gone, "a removed key came back");
                            seen.note("read 1");
                        }
                        None => {
                            gone = true;
                            seen.note("read none");
                        }
                    }
                }
            })
        };
        assert_eq!(retry(seen, || remove(s.map(), b"k")), Some(1));
        reader.join().unwrap();
        assert_eq!(contents(s.map()), []);
    });
}

/// (6) The reuse hazard: a reader looks `a` up while another thread
/// removes `a` and inserts `b`, which shares `a`'s home, so `b` takes
/// `a`'s freed entry. The reader sees `a`'s value (1) or nothing for `a`,
/// never `b`'s (2): key and value are read in one consistent copy.
fn get_racing_remove_and_reuse_never_sees_the_new_keys_value_on(byte_path: bool) {
    let (ka, kb, _) = colliding_keys();
    check(3, &["a read 1", "a read none"], move |seen| {
        let s = if byte_path {
            shared_on_byte_path()
        } else {
            shared()
        };
        assert_eq!(insert(s.map(), &ka, 1, false).unwrap().0, Inserted::New);
        let reader = {
            let (s, seen) = (s.clone(), seen.clone());
            thread::spawn(move || {
                let got = retry(&seen, || s.map().get_with(&ka, unval));
                match got {
                    Some(k) => {
                        assert_eq!(k, 1, "a read another key's value: {k}");
                        seen.note("a read 1");
                    }
                    None => seen.note("a read none"),
                }
            })
        };
        assert_eq!(retry(seen, || remove(s.map(), &ka)), Some(1));
        assert_eq!(
            retry(seen, || insert(s.map(), &kb, 2, false)).0,
            Inserted::New
        );
        reader.join().unwrap();
        // b reused a's entry (the tombstone at its home), not the empty
        // entry after it.
        assert_eq!(contents(s.map()), [(kb.to_vec(), 2)]);
        let census = s.map().census().unwrap();
        assert_eq!((census.live, census.removed, census.empty), (1, 0, 1));
    });
}

#[test]
fn get_racing_remove_and_reuse_never_sees_the_new_keys_value() {
    get_racing_remove_and_reuse_never_sees_the_new_keys_value_on(false);
}

/// The same model, every operation on the byte path (the path of larger
/// entries; these are small enough for the word path).
#[test]
fn get_racing_remove_and_reuse_never_sees_the_new_keys_value_on_the_byte_path() {
    get_racing_remove_and_reuse_never_sees_the_new_keys_value_on(true);
}

/// (7) Two threads insert the same new key `b` (values 1 and 2) into a
/// chain of a live key `a` at the home entry and a tombstone after it (no
/// empty entry to stop at): exactly one entry ends up holding `b`, the
/// first insert is `New` and the second replaces its value.
#[test]
fn two_inserts_of_a_new_key_past_a_tombstone_create_it_once() {
    let (ka, kb, kc) = colliding_keys();
    check(3, &["main first", "other first"], move |seen| {
        let s = shared();
        assert_eq!(insert(s.map(), &ka, 7, false).unwrap().0, Inserted::New);
        assert_eq!(insert(s.map(), &kc, 8, false).unwrap().0, Inserted::New);
        assert_eq!(remove(s.map(), &kc).unwrap(), Some(8));
        let other = {
            let (s, seen) = (s.clone(), seen.clone());
            thread::spawn(move || retry(&seen, || insert(s.map(), &kb, 2, false)))
        };
        let mine = retry(seen, || insert(s.map(), &kb, 1, false));
        let theirs = other.join().unwrap();
        let last = match (mine, theirs) {
            ((Inserted::New, _), (Inserted::Replaced, 1)) => {
                seen.note("main first");
                2
            }
            ((Inserted::Replaced, 2), (Inserted::New, _)) => {
                seen.note("other first");
                1
            }
            other => panic!("key created twice or a value lost: {other:?}"),
        };
        let mut all = contents(s.map());
        all.sort();
        assert_eq!(all, [(ka.to_vec(), 7), (kb.to_vec(), last)]);
        let census = s.map().census().unwrap();
        assert_eq!((census.live, census.removed), (2, 0));
    });
}

/// (8) `update(a, +10)` races `remove(a)` followed by `insert(b, 5)`
/// (sharing a's home, so b reuses a's entry): the update lands on a before
/// the remove (which then takes 11) or finds a gone and does nothing;
/// never on b.
fn update_racing_remove_and_reuse_never_touches_the_new_key_on(byte_path: bool) {
    let (ka, kb, _) = colliding_keys();
    check(3, &["update first", "remove first"], move |seen| {
        let s = if byte_path {
            shared_on_byte_path()
        } else {
            shared()
        };
        assert_eq!(insert(s.map(), &ka, 1, false).unwrap().0, Inserted::New);
        let other = {
            let (s, seen) = (s.clone(), seen.clone());
            thread::spawn(move || retry(&seen, || update(s.map(), &ka, None, 10)))
        };
        let removed = retry(seen, || remove(s.map(), &ka));
        assert_eq!(
            retry(seen, || insert(s.map(), &kb, 5, false)).0,
            Inserted::New
        );
        let updated = other.join().unwrap();
        match (updated, removed) {
            (Some(1), Some(11)) => seen.note("update first"),
            (None, Some(1)) => seen.note("remove first"),
            other => panic!("not a serial outcome: (update saw, remove took) = {other:?}"),
        }
        assert_eq!(contents(s.map()), [(kb.to_vec(), 5)], "the update hit b");
    });
}

#[test]
fn update_racing_remove_and_reuse_never_touches_the_new_key() {
    update_racing_remove_and_reuse_never_touches_the_new_key_on(false);
}

/// The same model, every operation on the byte path (the path of larger
/// entries; these are small enough for the word path).
#[test]
fn update_racing_remove_and_reuse_never_touches_the_new_key_on_the_byte_path() {
    update_racing_remove_and_reuse_never_touches_the_new_key_on(true);
}

/// (7b) The tombstone appears mid-race: `c` is live at the shared home and
/// the entry after it is empty. One thread inserts `b`; the other removes
/// `c` (freeing the home) and inserts `b` too. Without the home lock the
/// first could place `b` in the empty entry after reading `c` live, and the
/// second in the freed home: `b` twice. With it, `b` is created once.
#[test]
fn an_insert_racing_a_remove_and_an_insert_of_the_same_key_creates_it_once() {
    let (_, kb, kc) = colliding_keys();
    check(3, &["main first", "other first"], move |seen| {
        let s = shared();
        assert_eq!(insert(s.map(), &kc, 8, false).unwrap().0, Inserted::New);
        let other = {
            let (s, seen) = (s.clone(), seen.clone());
            thread::spawn(move || retry(&seen, || insert(s.map(), &kb, 2, false)))
        };
        assert_eq!(retry(seen, || remove(s.map(), &kc)), Some(8));
        let mine = retry(seen, || insert(s.map(), &kb, 1, false));
        let theirs = other.join().unwrap();
        let last = match (mine, theirs) {
            ((Inserted::New, _), (Inserted::Replaced, 1)) => {
                seen.note("main first");
                2
            }
            ((Inserted::Replaced, 2), (Inserted::New, _)) => {
                seen.note("other first");
                1
            }
            other => panic!("key created twice or a value lost: {other:?}"),
        };
        assert_eq!(contents(s.map()), [(kb.to_vec(), last)], "b twice or lost");
    });
}

/// (9) Reach: `b` shares `a`'s home, where `a` lives, so inserting `b`
/// places it one entry past the home, beyond the home's reach (0), and
/// raises the reach. Racing it, a reader walks the whole table
/// (`for_each`) and then looks `b` up: if the walk saw `b`, the lookup
/// (bounded by the reach it reads) finds it too. (With the reach inside the
/// home's seqlock it would be published only when the home is unlocked,
/// after `b`'s entry: the walk could see `b` and the lookup miss it.)
#[test]
fn a_key_placed_beyond_the_reach_is_found_by_whoever_saw_it() {
    let (ka, kb, _) = colliding_keys();
    check(
        3,
        &["walk saw b", "walk missed b", "get missed b"],
        move |seen| {
            let s = shared();
            assert_eq!(insert(s.map(), &ka, 1, false).unwrap().0, Inserted::New);
            let reader = {
                let (s, seen) = (s.clone(), seen.clone());
                thread::spawn(move || {
                    let mut walked = None;
                    retry(&seen, || {
                        walked = None;
                        s.map().for_each(|k, v| {
                            if k == kb {
                                walked = Some(unval(v));
                            }
                        })
                    });
                    let got = get(s.map(), &kb);
                    if let Some(k) = walked {
                        assert_eq!(k, 2, "b's value is 2");
                        assert_eq!(got, Some(2), "the walk saw b, the lookup missed it");
                        seen.note("walk saw b");
                    } else {
                        seen.note("walk missed b");
                    }
                    if got.is_none() {
                        seen.note("get missed b");
                    }
                    assert!(got.is_none() || got == Some(2), "{got:?}");
                })
            };
            assert_eq!(
                retry(seen, || insert(s.map(), &kb, 2, false)).0,
                Inserted::New
            );
            reader.join().unwrap();
            assert_eq!(get(s.map(), &kb), Some(2));
            assert_eq!(get(s.map(), &ka), Some(1));
            assert_eq!(s.map().census().unwrap().max_reach, 1);
        },
    );
}

/// (10) Reach: `a` lives at the common home of `b` and `c` (a map of 4
/// entries); `b` and `c` are inserted at once. Each goes past the home,
/// one at distance 1 and the other at 2, each raising the home's reach
/// under the home lock: both stay findable, whichever went first, and the
/// reach ends at 2.
#[test]
fn two_keys_of_one_home_placed_past_it_at_once_are_both_found() {
    const CAP4: usize = 4;
    let [ka, kb, kc] = colliding_in(CAP4);
    check(3, &["b nearer", "c nearer"], move |seen| {
        let s = shared_of(CAP4);
        assert_eq!(insert(s.map(), &ka, 1, false).unwrap().0, Inserted::New);
        let other = {
            let (s, seen) = (s.clone(), seen.clone());
            thread::spawn(move || {
                let (r, _) = retry(&seen, || insert(s.map(), &kc, 3, false));
                assert_eq!(r, Inserted::New);
            })
        };
        let (r, _) = retry(seen, || insert(s.map(), &kb, 2, false));
        assert_eq!(r, Inserted::New);
        other.join().unwrap();
        let map = s.map();
        assert_eq!(get(map, &ka), Some(1));
        assert_eq!(get(map, &kb), Some(2), "b lost");
        assert_eq!(get(map, &kc), Some(3), "c lost");
        let census = map.census().unwrap();
        assert_eq!((census.live, census.max_reach), (3, 2));
        let all = contents(map);
        let h = home_in(&ka, CAP4);
        seen.note(
            if all.iter().position(|(k, _)| *k == kb) == Some((h + 1) % CAP4) {
                "b nearer"
            } else {
                "c nearer"
            },
        );
    });
}

/// (11) Reach coming down: `x` lives at the home and `y`, of the same home,
/// one past it (reach 1). One thread removes `x` and inserts `z` (same
/// home), which lands at the home; if `y` is gone by then, the walk back
/// from the reach finds no key of the home past it and brings the reach
/// down to 0. The other thread removes `y`, inserts it again (value 5) and
/// looks it up. A reach brought down while a key of its home lies beyond
/// would hide that key: `y` is always found, and so is `z`.
#[test]
fn a_reach_comes_down_only_when_no_key_lies_beyond() {
    let (kx, ky, kz) = colliding_keys();
    // Bound 2: 37 thousand executions, all the outcomes below (bound 3:
    // a million, for nothing more).
    check(
        2,
        &["reach came down", "y went home", "z went home"],
        move |seen| {
            let s = shared();
            assert_eq!(insert(s.map(), &kx, 1, false).unwrap().0, Inserted::New);
            assert_eq!(insert(s.map(), &ky, 2, false).unwrap().0, Inserted::New);
            let other = {
                let (s, seen) = (s.clone(), seen.clone());
                thread::spawn(move || {
                    assert_eq!(retry(&seen, || remove(s.map(), &kx)), Some(1));
                    let (r, _) = retry(&seen, || insert(s.map(), &kz, 3, false));
                    assert_eq!(r, Inserted::New);
                    // The home's reach word, right after z's insert: 0 only
                    // if a placement brought it down (y was away then).
                    let reach = &s.words[home(&kz) * entry_words(MAX_KEY, VALUES)];
                    // Relaxed: a probe for coverage only.
                    if reach.load(Ordering::Relaxed) == 0 {
                        seen.note("reach came down");
                    }
                })
            };
            assert_eq!(retry(seen, || remove(s.map(), &ky)), Some(2));
            assert_eq!(
                retry(seen, || insert(s.map(), &ky, 5, false)).0,
                Inserted::New
            );
            assert_eq!(get(s.map(), &ky), Some(5), "y hidden by its home's reach");
            other.join().unwrap();
            let map = s.map();
            assert_eq!(get(map, &ky), Some(5), "y lost");
            assert_eq!(get(map, &kz), Some(3), "z lost");
            let all = contents(map);
            assert_eq!(all.len(), 2, "{all:?}");
            seen.note(if all[home(&ky)].0 == ky {
                "y went home"
            } else {
                "z went home"
            });
            assert_eq!(map.census().unwrap().max_reach, 1);
        },
    );
}

/// (T1) Two typed updates (`update_fixed`, +1 and +10) of one present key
/// (1): neither is lost (12), in either order.
#[test]
fn two_typed_updates_of_one_key_lose_nothing() {
    const K: &[u8; 8] = b"kkkkkkkk";
    check(3, &["main first", "other first"], |seen| {
        let s = shared();
        assert_eq!(insert(s.map(), K, 1, false).unwrap().0, Inserted::New);
        let other = {
            let (s, seen) = (s.clone(), seen.clone());
            thread::spawn(move || retry(&seen, || update_typed(s.map(), K, 1)))
        };
        let mine = retry(seen, || update_typed(s.map(), K, 10));
        let theirs = other.join().unwrap();
        match (mine, theirs) {
            (Some(1), Some(11)) => seen.note("main first"),
            (Some(2), Some(1)) => seen.note("other first"),
            other => panic!("not a serial order: {other:?}"),
        }
        assert_eq!(contents(s.map()), [(K.to_vec(), 12)], "lost update");
    });
}

/// (T2) A reader `get`s a key twice while a typed update (`update_fixed`)
/// changes it (1 → 2): every read is whole and one of the published
/// values, and the second never goes back.
#[test]
fn get_racing_typed_update_never_sees_a_torn_value() {
    const K: &[u8; 8] = b"kkkkkkkk";
    check(3, &["read 1", "read 2"], |seen| {
        let s = shared();
        assert_eq!(insert(s.map(), K, 1, false).unwrap().0, Inserted::New);
        let reader = {
            let (s, seen) = (s.clone(), seen.clone());
            thread::spawn(move || {
                let mut last = 0;
                for _ in 0..2 {
                    let k = retry(&seen, || s.map().get_with(K, unval))
                        .expect("the key is never removed");
                    assert!((1..=2).contains(&k), "a value nobody wrote: {k}");
                    assert!(k >= last, "read went back: {last} -> {k}");
                    last = k;
                    seen.note(format!("read {k}"));
                }
            })
        };
        assert_eq!(retry(seen, || update_typed(s.map(), K, 1)), Some(1));
        reader.join().unwrap();
        assert_eq!(contents(s.map()), [(K.to_vec(), 2)]);
    });
}

/// (T3) As (8), on the typed path: `update_fixed(a, +10)` races
/// `remove(a)` then `insert(b, 5)` (b shares a's home, so it reuses a's
/// entry): the update lands on a before the remove (which then takes 11)
/// or finds a gone; never on b. The interleaving where the update found a,
/// then locked the entry after b took it over, is its re-check under the
/// lock.
#[test]
fn typed_update_racing_remove_and_reuse_never_touches_the_new_key() {
    let (ka, kb) = colliding_words();
    check(3, &["update first", "remove first"], move |seen| {
        let s = shared();
        assert_eq!(insert(s.map(), &ka, 1, false).unwrap().0, Inserted::New);
        let other = {
            let (s, seen) = (s.clone(), seen.clone());
            thread::spawn(move || retry(&seen, || update_typed(s.map(), &ka, 10)))
        };
        let removed = retry(seen, || remove(s.map(), &ka));
        assert_eq!(
            retry(seen, || insert(s.map(), &kb, 5, false)).0,
            Inserted::New
        );
        let updated = other.join().unwrap();
        match (updated, removed) {
            (Some(1), Some(11)) => seen.note("update first"),
            (None, Some(1)) => seen.note("remove first"),
            other => panic!("not a serial outcome: (update saw, remove took) = {other:?}"),
        }
        assert_eq!(contents(s.map()), [(kb.to_vec(), 5)], "the update hit b");
    });
}

/// (T4) As (9), on the typed path: `b` shares `a`'s home, where `a` lives,
/// so inserting `b` places it past the home and raises the home's reach.
/// Racing it, a thread walks the table, then updates `b` by +0 with
/// `update_fixed`: if the walk saw `b`, the typed update (its walk past
/// home, bounded by the reach it reads) finds it too.
#[test]
fn a_key_placed_beyond_the_reach_is_found_by_a_typed_update_that_saw_it() {
    let (ka, kb) = colliding_words();
    check(3, &["walk saw b", "walk missed b"], move |seen| {
        let s = shared();
        assert_eq!(insert(s.map(), &ka, 1, false).unwrap().0, Inserted::New);
        let reader = {
            let (s, seen) = (s.clone(), seen.clone());
            thread::spawn(move || {
                let mut walked = None;
                retry(&seen, || {
                    walked = None;
                    s.map().for_each(|k, v| {
                        if k == kb {
                            walked = Some(unval(v));
                        }
                    })
                });
                let got = retry(&seen, || update_typed(s.map(), &kb, 0));
                if let Some(k) = walked {
                    assert_eq!(k, 2, "b's value is 2");
                    assert_eq!(got, Some(2), "the walk saw b, the typed update missed it");
                    seen.note("walk saw b");
                } else {
                    seen.note("walk missed b");
                }
                assert!(got.is_none() || got == Some(2), "{got:?}");
            })
        };
        assert_eq!(
            retry(seen, || insert(s.map(), &kb, 2, false)).0,
            Inserted::New
        );
        reader.join().unwrap();
        assert_eq!(get(s.map(), &kb), Some(2));
        assert_eq!(s.map().census().unwrap().max_reach, 1);
    });
}
