//! Loom models of `mmring::raw::seqlock`: torn reads, lost updates, and a writer
//! that dies inside the lock (readers never notice; survivors race to take
//! the lock over and exactly one does).
//!
//! The seqlock keeps two copies of the value (a latch): a reader is busy
//! only when a *second* write starts on the copy it is reading, which the
//! first model provokes with two back-to-back writes.
//!
//! Run with
//! `RUSTFLAGS="--cfg loom" cargo test -p mmring-loom-tests --release --target-dir target/loom`
//! (`LOOM_MAX_PREEMPTIONS` overrides each model's preemption bound;
//! `MMRING_LOOM_VERBOSE=1` prints executions and outcomes per model).
//!
//! The payload is `[u64; 2]` (two data words, so a torn read is possible in
//! principle). Every value a writer publishes has both words equal, and the
//! k-th published value is `[k, k]` at version k, so a reader checks not
//! only that its copy is whole but that it is the one its version says.
//!
//! Each model also lists the outcomes it must have explored (see
//! `common::check`), so that it cannot pass by exploring too little.

#![cfg(loom)]

mod common;

use common::{Seen, check};
use loom::sync::Arc;
use loom::sync::atomic::AtomicU64;
use loom::thread;
use mmring::raw::seqlock::{Busy, Patience, SeqLock, SeqLockError, words_for};

type Pair = [u64; 2];

/// Retry budget for a contended lock. Within the preemption bound a
/// well-behaved peer always finishes first (a waiter yields, and loom does
/// not run a yielded thread again while another can run), so running out
/// of it would itself be a failure.
const PATIENT: Patience = Patience::attempts(6);

/// Retry budget against a dead writer: any bound must end in an error.
const DEAD: Patience = Patience::attempts(3);

/// Zeroed words for a `[u64; 2]` seqlock: unlocked, version 0, value [0, 0].
fn words() -> Arc<Vec<AtomicU64>> {
    Arc::new(
        (0..words_for::<Pair>())
            .map(|_| AtomicU64::new(0))
            .collect(),
    )
}

/// What every successful read must satisfy: a whole value, the one that the
/// version says (`[v, v]` at version v).
fn check_whole(value: Pair, version: u64) {
    assert_eq!(
        value[0], value[1],
        "torn read: {value:?} at version {version}"
    );
    assert_eq!(
        value,
        [version, version],
        "value does not match its version"
    );
}

/// Notes a busy report: `odd` (a write in progress) or `even` (the sequence
/// moved to a new even value while we copied: a whole write overlapped).
fn note_busy(seen: &Seen, busy: Busy) {
    seen.note(if busy.seq & 1 == 1 {
        "busy odd"
    } else {
        "busy even"
    });
}

/// (1) One writer publishing two values, one reader polling with
/// `try_read`: every successful read is whole and matches its version, and
/// versions never go backwards.
#[test]
fn reader_never_sees_a_torn_value() {
    check(
        3,
        &["ok v0", "ok v1", "ok v2", "busy odd", "busy even"],
        |seen| {
            let raw = words();
            let reader = {
                let (raw, seen) = (raw.clone(), seen.clone());
                thread::spawn(move || {
                    let lock = SeqLock::new(&raw);
                    let mut last = 0;
                    for _ in 0..3 {
                        match lock.try_read::<Pair>() {
                            Ok((value, version)) => {
                                check_whole(value, version);
                                assert!(version >= last, "version went back: {last} -> {version}");
                                last = version;
                                seen.note(format!("ok v{version}"));
                            }
                            Err(busy) => {
                                // A busy sequence is never older than a
                                // version already read.
                                assert!(busy.seq >= 2 * last, "busy at an old sequence {busy:?}");
                                note_busy(&seen, busy);
                            }
                        }
                    }
                })
            };

            let lock = SeqLock::new(&raw);
            for k in 1..=2u64 {
                assert_eq!(lock.write(&[k, k], PATIENT), Ok(k));
            }

            reader.join().unwrap();
            assert_eq!(lock.try_read::<Pair>(), Ok(([2, 2], 2)));
            assert_eq!(lock.sequence(), 4);
        },
    );
}

/// (1b) The writer fills the value in steps inside one critical section
/// through a `WriteGuard` (first word, then both): the intermediate state
/// `[1, 0]` exists in memory but must never be returned by a read. With one
/// writer the reader is never even busy: it reads the other copy.
#[test]
fn intermediate_states_inside_a_write_are_invisible() {
    check(3, &["ok v0", "ok v1"], |seen| {
        let raw = words();
        let reader = {
            let (raw, seen) = (raw.clone(), seen.clone());
            thread::spawn(move || {
                let lock = SeqLock::new(&raw);
                for _ in 0..2 {
                    match lock.try_read::<Pair>() {
                        Ok((value, version)) => {
                            check_whole(value, version);
                            seen.note(format!("ok v{version}"));
                        }
                        Err(busy) => panic!("busy with a single writer: {busy:?}"),
                    }
                }
            })
        };

        let lock = SeqLock::new(&raw);
        let guard = lock.try_lock().expect("the only writer");
        assert_eq!(guard.read::<Pair>(), [0, 0]);
        guard.write(&1u64); // first word only: memory holds [1, 0]
        guard.write(&[1u64, 1]);
        assert_eq!(guard.finish(), 1);

        reader.join().unwrap();
        assert_eq!(lock.try_read::<Pair>(), Ok(([1, 1], 1)));
    });
}

/// (2) Two writers incrementing both words with `update`: no lost update,
/// each sees a distinct old value, and the version counts both writes.
#[test]
fn concurrent_updates_lose_nothing() {
    check(3, &["a first", "b first"], |seen| {
        let raw = words();
        let spawn_incr = |name: &'static str| {
            let raw = raw.clone();
            thread::spawn(move || {
                let lock = SeqLock::new(&raw);
                let (old, new) = lock
                    .update(PATIENT, |[a, b]: Pair| [a + 1, b + 1])
                    .unwrap_or_else(|e| panic!("writer {name}: {e}"));
                assert_eq!(old[0], old[1], "update saw a torn value {old:?}");
                assert_eq!(new, [old[0] + 1, old[1] + 1]);
                old[0]
            })
        };
        let a = spawn_incr("a");
        let b = spawn_incr("b");
        let (old_a, old_b) = (a.join().unwrap(), b.join().unwrap());
        match (old_a, old_b) {
            (0, 1) => seen.note("a first"),
            (1, 0) => seen.note("b first"),
            _ => panic!("lost update: both writers started from {old_a}, {old_b}"),
        }

        let lock = SeqLock::new(&raw);
        assert_eq!(lock.try_read::<Pair>(), Ok(([2, 2], 2)));
        assert_eq!(lock.sequence(), 4);
    });
}

/// (2b) Two updaters and a reader at once (three threads, a smaller bound):
/// the reader never sees a torn value while writers contend.
#[test]
fn reader_during_contending_updates_sees_whole_values() {
    check(2, &["ok v0", "ok v1", "ok v2", "busy odd"], |seen| {
        let raw = words();
        let spawn_incr = || {
            let raw = raw.clone();
            thread::spawn(move || {
                let lock = SeqLock::new(&raw);
                lock.update(PATIENT, |[a, b]: Pair| [a + 1, b + 1])
                    .expect("the other writer always finishes within the patience");
            })
        };
        let a = spawn_incr();
        let b = spawn_incr();
        let reader = {
            let (raw, seen) = (raw.clone(), seen.clone());
            thread::spawn(move || {
                let lock = SeqLock::new(&raw);
                match lock.try_read::<Pair>() {
                    Ok((value, version)) => {
                        check_whole(value, version);
                        seen.note(format!("ok v{version}"));
                    }
                    Err(busy) => note_busy(&seen, busy),
                }
            })
        };

        a.join().unwrap();
        b.join().unwrap();
        reader.join().unwrap();
        let lock = SeqLock::new(&raw);
        assert_eq!(lock.try_read::<Pair>(), Ok(([2, 2], 2)));
    });
}

/// A pid no process has here: what the dead writer leaves in `writer`
/// (loom threads share one real pid, so the model writes this one).
const DEAD_PID: u32 = 0x3fff_fffe;

/// (3) A writer takes the lock, writes the first word of a new value and
/// dies (the guard is forgotten, never published). A concurrent reader
/// always gets the old whole value, never the half-written one, and never
/// waits; afterwards readers still do, while writers find the lock held.
#[test]
fn writer_dying_mid_write_never_exposes_a_partial_value() {
    check(3, &["read old"], |seen| {
        let raw = words();
        SeqLock::new(&raw).init(&[7u64, 7]);

        let reader = {
            let (raw, seen) = (raw.clone(), seen.clone());
            thread::spawn(move || {
                let lock = SeqLock::new(&raw);
                let read = lock.read::<Pair>(DEAD);
                assert_eq!(read, Ok(([7, 7], 0)), "partial or no value read");
                seen.note("read old");
            })
        };

        let lock = SeqLock::new(&raw);
        let guard = lock.try_lock().expect("the only writer");
        guard.write(&9u64); // first word only: the spare copy holds [9, 7]
        std::mem::forget(guard); // the process dies here

        reader.join().unwrap();
        assert_eq!(lock.sequence(), 1, "the lock stays held");
        assert_eq!(lock.read::<Pair>(DEAD), Ok(([7, 7], 0)));
        assert!(lock.try_lock().is_err());
        assert_eq!(
            lock.write(&[1u64, 1], DEAD).map(|_| ()),
            Err(SeqLockError::Exhausted {
                seq: 1,
                attempts: 3
            }),
            "attempt budgets look at no pid: a plain wait runs out"
        );
    });
}

/// (3b) Recovery: a writer died inside the lock at sequence 1 (its pid in
/// `writer`, half a new value in the spare copy). Two survivors race to
/// take it over with `take_over` while a reader reads: exactly one wins,
/// publishes its update on top of the last published value, and the other
/// then updates normally; the reader only ever sees whole values; nothing
/// is lost (7 + 1 + 1).
#[test]
fn survivors_race_to_take_over_a_dead_writers_lock() {
    check(2, &["a took over", "b took over"], |seen| {
        let raw = words();
        let lock = SeqLock::new(&raw);
        lock.init(&[7u64, 7]);
        // What the dead writer left: locked at version 0, its pid, and the
        // first word of [9, 9] in the spare copy (copy 1).
        let guard = lock.try_lock().unwrap();
        guard.write(&9u64);
        std::mem::forget(guard);
        raw[1].store(u64::from(DEAD_PID), loom::sync::atomic::Ordering::Relaxed);

        let survivor = |name: &'static str| {
            let (raw, seen) = (raw.clone(), seen.clone());
            thread::spawn(move || {
                let lock = SeqLock::new(&raw);
                match lock.take_over(DEAD_PID, 1) {
                    Some(guard) => {
                        let [a, b] = guard.read::<Pair>();
                        assert_eq!([a, b], [7, 7], "took over a torn value");
                        guard.write(&[a + 1, b + 1]);
                        assert_eq!(guard.finish(), 1);
                        seen.note(format!("{name} took over"));
                    }
                    None => {
                        lock.update(PATIENT, |[a, b]: Pair| [a + 1, b + 1])
                            .expect("the survivor that took over finishes");
                    }
                }
            })
        };
        let a = survivor("a");
        let b = survivor("b");
        match lock.try_read::<Pair>() {
            Ok((value, version)) => {
                assert_eq!(value[0], value[1], "torn read {value:?}");
                assert_eq!(value[0], 7 + version, "value does not match its version");
            }
            // Both writes overlapped the read (the second one fills the
            // copy it was reading): a retry, never a wrong value.
            Err(busy) => assert!(busy.seq >= 3, "busy with one write: {busy:?}"),
        }
        a.join().unwrap();
        b.join().unwrap();
        assert_eq!(lock.try_read::<Pair>(), Ok(([9, 9], 2)));
        assert_eq!(lock.sequence(), 4);
    });
}
