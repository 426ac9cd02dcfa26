//! Loom models of the SPSC ring (src/spsc.rs) and of the wait protocol it
//! sleeps with (src/wait.rs): order across the wrap, blocking pops and
//! pushes woken by the other side or by close (a lost wake-up would be a
//! deadlock, which loom reports), batch and chunk commits, and role claims.
//! The futex is mocked under loom by a condition variable; what is checked
//! is the epoch / waiter-count protocol around it.

#![cfg(loom)]

mod common;

use common::{Seen, check};
use loom::sync::Arc;
use loom::thread;
use mmring::error::{PopError, PushError, TryPopError, TryPushError};
use mmring::spsc::{Control, RawConsumer, RawProducer, claim_role, release_role, words_for};
use mmring::sync::AtomicU64;

/// A ring of `u64` values: the control words and one atomic word per slot
/// (the same code that runs over a mapping).
struct Ring {
    ctl: Control,
    slots: Vec<AtomicU64>,
}

fn ring(capacity: usize) -> Arc<Ring> {
    Arc::new(Ring {
        ctl: Control::new(),
        slots: (0..words_for::<u64>(capacity))
            .map(|_| AtomicU64::new(0))
            .collect(),
    })
}

/// Pushes 1..=n with non-blocking pushes (yielding while full) while the
/// consumer pops with non-blocking pops (yielding while empty): every value
/// arrives once, in order, across the wrap.
fn spin_transfer(capacity: usize, n: u64, seen: &Seen) {
    let r = ring(capacity);
    let r2 = r.clone();
    let producer = thread::spawn(move || {
        let mut p = RawProducer::<u64>::new(&r2.ctl, &r2.slots);
        for v in 1..=n {
            let mut v = v;
            loop {
                match p.try_push(v) {
                    Ok(()) => break,
                    Err(TryPushError::Full(back)) => {
                        v = back;
                        thread::yield_now();
                    }
                    Err(TryPushError::Closed(_)) => panic!("nobody closes"),
                }
            }
        }
    });
    let mut c = RawConsumer::<u64>::new(&r.ctl, &r.slots);
    for want in 1..=n {
        loop {
            match c.try_pop() {
                Ok(v) => {
                    assert_eq!(v, want, "out of order or a stale slot");
                    break;
                }
                Err(TryPopError::Empty) => {
                    seen.note("empty");
                    thread::yield_now();
                }
                Err(TryPopError::Closed) => panic!("nobody closes"),
            }
        }
    }
    producer.join().unwrap();
    assert_eq!(c.try_pop(), Err(TryPopError::Empty));
}

#[test]
fn capacity_1_wraps_in_order() {
    check(2, &["empty"], |seen| spin_transfer(1, 3, seen));
}

#[test]
fn capacity_2_wraps_in_order() {
    check(2, &["empty"], |seen| spin_transfer(2, 3, seen));
}

/// The consumer blocks in `pop_until(None)` on the main thread; the other
/// thread pushes (or closes). A lost wake-up leaves the consumer asleep on
/// the mocked futex forever: loom reports the deadlock.
fn blocked_pop(seen: &Seen, close: bool) {
    let r = ring(2);
    let r2 = r.clone();
    let other = thread::spawn(move || {
        // Whether the consumer already registered as a waiter decides which
        // path the wake-up takes (its re-check, or the futex wake).
        let slept = r2.ctl.snapshot().data_waiters > 0;
        let mut p = RawProducer::<u64>::new(&r2.ctl, &r2.slots);
        if close {
            p.close();
        } else {
            p.try_push(42).unwrap();
        }
        slept
    });
    let mut c = RawConsumer::<u64>::new(&r.ctl, &r.slots);
    let got = c.pop_until(None);
    if other.join().unwrap() {
        seen.note("slept");
    } else {
        seen.note("not yet asleep");
    }
    if close {
        assert_eq!(got, Err(PopError::Closed));
    } else {
        assert_eq!(got, Ok(42));
    }
}

#[test]
fn blocking_pop_is_woken_by_a_push() {
    check(3, &["slept", "not yet asleep"], |seen| {
        blocked_pop(seen, false)
    });
}

#[test]
fn blocking_pop_is_woken_by_close() {
    check(3, &["slept", "not yet asleep"], |seen| {
        blocked_pop(seen, true)
    });
}

#[test]
fn a_push_before_close_is_never_lost() {
    check(3, &["got value first"], |seen| {
        let r = ring(2);
        let r2 = r.clone();
        let consumer = thread::spawn(move || {
            let mut c = RawConsumer::<u64>::new(&r2.ctl, &r2.slots);
            (c.pop_until(None), c.pop_until(None))
        });
        let mut p = RawProducer::<u64>::new(&r.ctl, &r.slots);
        p.try_push(7).unwrap();
        p.close();
        let (first, second) = consumer.join().unwrap();
        assert_eq!(first, Ok(7), "the value pushed before close must arrive");
        assert_eq!(second, Err(PopError::Closed));
        seen.note("got value first");
    });
}

#[test]
fn blocking_push_on_a_full_ring_is_woken_by_a_pop_and_by_close() {
    check(3, &["2 landed", "2 refused"], |seen| {
        let r = ring(1);
        let r2 = r.clone();
        let producer = thread::spawn(move || {
            let mut p = RawProducer::<u64>::new(&r2.ctl, &r2.slots);
            p.try_push(1).unwrap();
            // Full: sleeps until the consumer pops 1 (or closes).
            let second = p.push_until(2, None);
            // If 2 landed the ring is full again: sleeps until the close.
            let third = p.push_until(3, None);
            (second, third)
        });
        let mut c = RawConsumer::<u64>::new(&r.ctl, &r.slots);
        assert_eq!(c.pop_until(None), Ok(1));
        c.close();
        let (second, third) = producer.join().unwrap();
        match second {
            Ok(()) => seen.note("2 landed"),
            Err(PushError::Closed(2)) => seen.note("2 refused"),
            Err(e) => panic!("second push: {e:?}"),
        }
        assert!(
            matches!(third, Err(PushError::Closed(3))),
            "a push after the consumer closed must be refused with its value: {third:?}"
        );
    });
}

#[test]
fn batch_and_chunk_commits_publish_exactly_what_was_committed() {
    check(2, &["partial"], |seen| {
        let r = ring(4);
        let r2 = r.clone();
        let producer = thread::spawn(move || {
            let mut p = RawProducer::<u64>::new(&r2.ctl, &r2.slots);
            assert_eq!(p.push_slice(&[1, 2]), Ok(2));
            let mut chunk = p.write_chunk(2).unwrap();
            chunk.set(0, 3);
            chunk.set(1, 99); // reserved, never committed
            chunk.commit(1);
        });
        let mut c = RawConsumer::<u64>::new(&r.ctl, &r.slots);
        let mut got = Vec::new();
        while got.len() < 3 {
            let mut buf = [0u64; 4];
            match c.pop_slice(&mut buf) {
                Ok(0) => thread::yield_now(),
                Ok(n) => {
                    if n < 3 {
                        seen.note("partial");
                    }
                    got.extend_from_slice(&buf[..n]);
                }
                Err(_) => panic!("nobody closes"),
            }
        }
        producer.join().unwrap();
        assert_eq!(got, [1, 2, 3]);
        // The uncommitted slot is not readable, by chunk or by pop.
        assert!(c.read_chunk(1).is_err());
        assert_eq!(c.try_pop(), Err(TryPopError::Empty));
    });
}

#[test]
fn read_chunk_commit_frees_exactly_the_committed_slots() {
    check(2, &["full seen"], |seen| {
        let r = ring(2);
        let r2 = r.clone();
        let producer = thread::spawn(move || {
            let mut p = RawProducer::<u64>::new(&r2.ctl, &r2.slots);
            assert_eq!(p.push_slice(&[1, 2]), Ok(2));
            // Room for exactly one more once the consumer commits one.
            loop {
                match p.try_push(3) {
                    Ok(()) => break,
                    Err(TryPushError::Full(_)) => thread::yield_now(),
                    Err(TryPushError::Closed(_)) => panic!("nobody closes"),
                }
            }
        });
        let mut c = RawConsumer::<u64>::new(&r.ctl, &r.slots);
        let chunk = loop {
            match c.read_chunk(2) {
                Ok(chunk) => break chunk,
                Err(_) => thread::yield_now(),
            }
        };
        assert_eq!((chunk.get(0), chunk.get(1)), (1, 2));
        chunk.commit(1);
        producer.join().unwrap();
        seen.note("full seen");
        assert_eq!(c.try_pop(), Ok(2));
        assert_eq!(c.try_pop(), Ok(3));
    });
}

/// The consumer takes a chunk of two by value and lets the iterator yield
/// only the first item while the producer, on a full ring, keeps trying to
/// push a third: nothing may be released before the iterator drops (the
/// tail cannot move past the capacity), exactly the yielded item is
/// released when it drops, and the item not yielded comes first in the next
/// read, never overwritten.
#[test]
fn chunk_iterator_commits_exactly_what_it_yielded() {
    check(2, &["producer waited", "room at once"], |seen| {
        let r = ring(2);
        // Full before the race starts.
        assert_eq!(
            RawProducer::<u64>::new(&r.ctl, &r.slots).push_slice(&[1, 2]),
            Ok(2)
        );
        let r2 = r.clone();
        let producer = thread::spawn(move || {
            let mut p = RawProducer::<u64>::new(&r2.ctl, &r2.slots);
            let mut waited = false;
            loop {
                match p.try_push(3) {
                    Ok(()) => break waited,
                    Err(TryPushError::Full(_)) => {
                        waited = true;
                        thread::yield_now();
                    }
                    Err(TryPushError::Closed(_)) => panic!("nobody closes"),
                }
            }
        });
        let mut c = RawConsumer::<u64>::new(&r.ctl, &r.slots);
        let mut it = c.read_chunk(2).unwrap().into_iter();
        assert_eq!(it.next(), Some(1));
        // Yielded but not yet released: the producer cannot have pushed 3.
        assert_eq!(r.ctl.snapshot().head, 0, "released before the drop");
        assert_eq!(r.ctl.snapshot().tail, 2, "pushed into a held slot");
        drop(it);
        assert_eq!(
            r.ctl.snapshot().head,
            1,
            "released more or less than yielded"
        );
        let mut got = Vec::new();
        while got.len() < 2 {
            match c.read_chunk(1) {
                Ok(chunk) => got.extend(chunk),
                Err(_) => thread::yield_now(),
            }
        }
        assert_eq!(got, [2, 3], "the unyielded item first, then the new one");
        let waited = producer.join().unwrap();
        seen.note(if waited {
            "producer waited"
        } else {
            "room at once"
        });
        assert_eq!(c.try_pop(), Err(TryPopError::Empty));
    });
}

#[test]
fn two_contenders_one_role() {
    // Two live processes contend: this one and init (pid 1, always alive).
    let me = std::process::id();
    check(3, &["a won", "b won"], move |seen| {
        let role = Arc::new(mmring::sync::AtomicU32::new(0));
        let r2 = role.clone();
        let other = thread::spawn(move || claim_role(&r2, 1).is_ok());
        let mine = claim_role(&role, me).is_ok();
        let theirs = other.join().unwrap();
        assert!(mine ^ theirs, "exactly one contender holds the role");
        seen.note(if mine { "a won" } else { "b won" });
        // The loser is told who holds it; after release the role is free.
        let holder = if mine { me } else { 1 };
        release_role(&role, holder);
        assert_eq!(claim_role(&role, me), Ok(()));
    });
}

/// Recovery of a role held by a dead process: the role word names a pid
/// that no process has; two live contenders (this process and init, pid 1)
/// race to take it over. Exactly one does, and the other is told the
/// winner's pid (never the dead one's).
#[test]
fn two_contenders_take_over_a_dead_holders_role() {
    const DEAD_PID: u32 = 0x3fff_fffe;
    let me = std::process::id();
    check(3, &["a took over", "b took over"], move |seen| {
        let role = Arc::new(mmring::sync::AtomicU32::new(DEAD_PID));
        let r2 = role.clone();
        let other = thread::spawn(move || claim_role(&r2, 1));
        let mine = claim_role(&role, me);
        let theirs = other.join().unwrap();
        match (mine, theirs) {
            (Ok(()), Err(holder)) => {
                assert_eq!(holder, me, "the loser names the winner");
                seen.note("a took over");
            }
            (Err(holder), Ok(())) => {
                assert_eq!(holder, 1, "the loser names the winner");
                seen.note("b took over");
            }
            other => panic!("exactly one contender takes the role over: {other:?}"),
        }
    });
}
