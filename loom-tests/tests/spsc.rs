//! Loom models of the SPSC ring (src/spsc.rs) and of the wait protocol it
//! sleeps with (src/wait.rs): order across the wrap, blocking pops and
//! pushes woken by the other side or by close (a lost wake-up would be a
//! deadlock, which loom reports), batch and chunk commits, role claims, and
//! ends that detach and reattach: a blocked pop or push woken by the other
//! end letting its role go (`Disconnected` once drained, never a lost item,
//! never a hang), and a new holder that continues where the old one left.
//! The byte ring's pieces: a message bigger than the ring streamed through
//! whole, and a producer dead mid-message whose pieces are discarded, never
//! joined to the next producer's message.
//! The futex is mocked under loom by a condition variable; what is checked
//! is the epoch / waiter-count protocol around it.

#![cfg(loom)]

mod common;

use common::{Seen, check};
use loom::sync::Arc;
use loom::thread;
use mmring::error::{PopError, PushError, TryPopError, TryPushError};
use mmring::raw::spsc::bytes::{RawByteConsumer, RawByteProducer};
use mmring::raw::spsc::{
    Control, RawConsumer, RawProducer, Role, claim_role, release_role, words_for,
};
use mmring::sync::AtomicU64;

/// A ring of `u64` values: the control words and one atomic word per slot
/// (the same code that runs over a mapping).
struct Ring {
    ctl: Control,
    slots: Vec<AtomicU64>,
}

/// The pids the models hold roles with. Never probed for liveness under
/// loom (a blocked side probes its peer only between timed sleeps, and
/// loom's sleeps have no deadline); they only need to differ from 0.
const PRODUCER: u32 = 1;
const CONSUMER: u32 = 2;

/// A ring with both roles held, as after two `open`s.
fn ring(capacity: usize) -> Arc<Ring> {
    let r = Arc::new(Ring {
        ctl: Control::new(),
        slots: (0..words_for::<u64>(capacity))
            .map(|_| AtomicU64::new(0))
            .collect(),
    });
    r.ctl.claim(Role::Producer, PRODUCER).unwrap();
    r.ctl.claim(Role::Consumer, CONSUMER).unwrap();
    r
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

/// The consumer blocks in `pop()` on the main thread; the other
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
    let got = c.pop();
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
            (c.pop(), c.pop())
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
            let second = p.push(2);
            // If 2 landed the ring is full again: sleeps until the close.
            let third = p.push(3);
            (second, third)
        });
        let mut c = RawConsumer::<u64>::new(&r.ctl, &r.slots);
        assert_eq!(c.pop(), Ok(1));
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

/// The producer pushes one value and lets its role go (as its handle's drop
/// does) while the consumer pops on the main thread, asleep or not yet: the
/// consumer receives the value, then `Disconnected` (the release wakes it;
/// a lost wake-up would be a deadlock), never a hang and never `Closed`.
#[test]
fn a_blocked_pop_gets_the_last_value_then_disconnected_when_the_producer_leaves() {
    check(3, &["slept", "not yet asleep"], |seen| {
        let r = ring(2);
        let r2 = r.clone();
        let producer = thread::spawn(move || {
            let mut p = RawProducer::<u64>::new(&r2.ctl, &r2.slots);
            p.try_push(7).unwrap();
            let slept = r2.ctl.snapshot().data_waiters > 0;
            r2.ctl.release(Role::Producer, PRODUCER);
            slept
        });
        let mut c = RawConsumer::<u64>::new(&r.ctl, &r.slots);
        let first = c.pop();
        let second = c.pop();
        seen.note(if producer.join().unwrap() {
            "slept"
        } else {
            "not yet asleep"
        });
        assert_eq!(first, Ok(7), "the value pushed before leaving must arrive");
        assert_eq!(second, Err(PopError::Disconnected));
        assert_eq!(c.try_pop(), Err(TryPopError::Empty), "not closed");
    });
}

/// A producer pushes 1 and leaves; a new one attaches (claims the role,
/// continues from the published tail) and pushes 2, then leaves too. The
/// consumer pops throughout, retrying when told `Disconnected` (in the gap
/// between the two, or at the end before the last value shows): it
/// receives 1 then 2, each once, and its handle needs no reopening.
#[test]
fn a_new_producer_continues_where_the_old_one_left() {
    check(2, &["gap seen", "no gap seen"], |seen| {
        let r = ring(2);
        let r2 = r.clone();
        let producers = thread::spawn(move || {
            let mut first = RawProducer::<u64>::new(&r2.ctl, &r2.slots);
            first.try_push(1).unwrap();
            r2.ctl.release(Role::Producer, PRODUCER);
            r2.ctl.claim(Role::Producer, PRODUCER).unwrap();
            let mut second = RawProducer::<u64>::new(&r2.ctl, &r2.slots);
            second.try_push(2).unwrap();
            r2.ctl.release(Role::Producer, PRODUCER);
        });
        let mut c = RawConsumer::<u64>::new(&r.ctl, &r.slots);
        let mut got = Vec::new();
        let mut gap = false;
        while got.len() < 2 {
            match c.pop() {
                Ok(v) => got.push(v),
                Err(PopError::Disconnected) => {
                    gap |= got.len() == 1;
                    thread::yield_now();
                }
                Err(e) => panic!("nobody closes: {e:?}"),
            }
        }
        producers.join().unwrap();
        assert_eq!(got, [1, 2], "every value once, in order");
        assert_eq!(c.try_pop(), Err(TryPopError::Empty));
        seen.note(if gap { "gap seen" } else { "no gap seen" });
    });
}

/// The producer side: on a ring of one slot the producer pushes 1, then
/// blocks pushing 2 until the first consumer pops 1. That consumer then
/// lets its role go: the producer's push of 3 on the full ring returns
/// `Disconnected` with the value (it retries) until a new consumer attaches,
/// continues from the published head and pops 2 and 3. Every value once,
/// in order; no wake-up lost (the release and the pops notify).
#[test]
fn a_blocked_push_is_refused_while_no_consumer_and_lands_for_the_next() {
    check(2, &["refused", "never refused"], |seen| {
        let r = ring(1);
        let r2 = r.clone();
        let consumers = thread::spawn(move || {
            let mut first = RawConsumer::<u64>::new(&r2.ctl, &r2.slots);
            assert_eq!(first.pop(), Ok(1));
            r2.ctl.release(Role::Consumer, CONSUMER);
            r2.ctl.claim(Role::Consumer, CONSUMER).unwrap();
            let mut second = RawConsumer::<u64>::new(&r2.ctl, &r2.slots);
            (second.pop(), second.pop())
        });
        let mut p = RawProducer::<u64>::new(&r.ctl, &r.slots);
        p.try_push(1).unwrap();
        // The consumer holds its role until it has popped 1: never refused.
        assert!(matches!(p.push(2), Ok(())));
        let mut refused = false;
        let mut v = 3;
        loop {
            match p.push(v) {
                Ok(()) => break,
                Err(PushError::Disconnected(back)) => {
                    assert_eq!(back, 3, "the value comes back");
                    refused = true;
                    v = back;
                    thread::yield_now();
                }
                Err(e) => panic!("nobody closes: {e:?}"),
            }
        }
        let (second, third) = consumers.join().unwrap();
        assert_eq!(
            (second, third),
            (Ok(2), Ok(3)),
            "every value once, in order"
        );
        seen.note(if refused { "refused" } else { "never refused" });
    });
}

/// A ring with no role held, as `spsc::create` makes it.
fn unclaimed_ring(capacity: usize) -> Arc<Ring> {
    Arc::new(Ring {
        ctl: Control::new(),
        slots: (0..words_for::<u64>(capacity))
            .map(|_| AtomicU64::new(0))
            .collect(),
    })
}

/// A consumer waiting for a producer to attach (`wait_for`, what
/// `wait_for_peer` runs) is woken by the producer's claim, which notifies
/// the wait point the consumer sleeps on: it returns `true` whether the
/// claim came before it slept or after (a lost wake-up would deadlock).
#[test]
fn waiting_for_a_peer_is_woken_by_its_claim() {
    check(3, &["slept", "not yet asleep"], |seen| {
        let r = unclaimed_ring(1);
        let r2 = r.clone();
        let producer = thread::spawn(move || {
            let slept = r2.ctl.snapshot().data_waiters > 0;
            r2.ctl.claim(Role::Producer, PRODUCER).unwrap();
            slept
        });
        assert!(
            r.ctl.wait_for(Role::Producer, None),
            "the claim ends the wait"
        );
        seen.note(if producer.join().unwrap() {
            "slept"
        } else {
            "not yet asleep"
        });
    });
}

/// The same wait ended by a close instead: `false`, never a hang.
#[test]
fn waiting_for_a_peer_is_ended_by_close() {
    check(3, &["slept", "not yet asleep"], |seen| {
        let r = unclaimed_ring(1);
        let r2 = r.clone();
        let closer = thread::spawn(move || {
            let slept = r2.ctl.snapshot().data_waiters > 0;
            RawConsumer::<u64>::new(&r2.ctl, &r2.slots).close();
            slept
        });
        assert!(!r.ctl.wait_for(Role::Producer, None), "closed: no peer");
        seen.note(if closer.join().unwrap() {
            "slept"
        } else {
            "not yet asleep"
        });
    });
}

// ---------------------------------------------------------------------------
// The byte ring's pieces (src/raw/spsc/bytes.rs).
// ---------------------------------------------------------------------------

/// A byte ring of `words` words with both roles held.
fn byte_ring(words: usize) -> Arc<Ring> {
    let r = unclaimed_ring(words);
    r.ctl.claim(Role::Producer, PRODUCER).unwrap();
    r.ctl.claim(Role::Consumer, CONSUMER).unwrap();
    r
}

/// A 17-byte message in three pieces (8, 8, 1 bytes: two words a slot)
/// through a ring of two slots: the producer's blocking push streams it
/// (publishing what fits, sleeping for room), the consumer's blocking pop
/// gathers it. The consumer gets exactly the whole message, once, whether
/// it found the first pieces there or slept for them; no wake-up is lost
/// (a lost one deadlocks, which loom reports).
#[test]
fn a_message_in_three_pieces_through_a_two_slot_ring_arrives_whole() {
    const MSG: &[u8; 17] = b"seventeen bytes!!";
    check(
        3,
        &["gathered a part first", "found nothing first"],
        |seen| {
            let r = byte_ring(4);
            let r2 = r.clone();
            let producer = thread::spawn(move || {
                let mut p = RawByteProducer::new(&r2.ctl, &r2.slots, 8);
                p.push(MSG).unwrap();
            });
            let mut c = RawByteConsumer::new(&r.ctl, &r.slots, 8);
            // Lets the producer run first in some executions (loom may never
            // preempt a thread whose first operation is a load: loom#392).
            thread::yield_now();
            // The ring holds two of the three pieces: never whole at once.
            assert_eq!(c.try_pop(), Err(TryPopError::Empty));
            seen.note(if c.assembly().is_gathering() {
                "gathered a part first"
            } else {
                "found nothing first"
            });
            assert_eq!(c.pop().unwrap(), MSG, "the message, whole");
            producer.join().unwrap();
            assert_eq!(c.try_pop(), Err(TryPopError::Empty), "nothing more");
            assert_eq!(c.assembly().discarded(), 0);
        },
    );
}

/// A producer "dies" after publishing the first of a message's three
/// pieces (what `try_push_part` leaves on a one-slot ring, the process then
/// killed), its role released; a new producer claims the role and pushes a
/// whole two-piece message, streamed through the one slot. The consumer, popping
/// throughout (retrying on `Disconnected` in the gap), gets the new
/// message only, whole: the dead producer's piece is discarded, never
/// joined to the new one.
#[test]
fn a_producer_dead_after_one_piece_leaves_nothing_and_the_next_arrives_whole() {
    check(3, &["disconnected in the gap", "no gap seen"], |seen| {
        // One slot: the dead producer gets its first piece out, the new
        // one streams its two through.
        let r = byte_ring(2);
        let r2 = r.clone();
        let producers = thread::spawn(move || {
            let mut dead = RawByteProducer::new(&r2.ctl, &r2.slots, 8);
            let mut next = 0;
            assert_eq!(
                dead.try_push_part(b"old message, cut!", &mut next),
                Ok(false)
            );
            assert_eq!(next, 1, "the first of three pieces went out");
            r2.ctl.release(Role::Producer, PRODUCER);
            r2.ctl.claim(Role::Producer, PRODUCER).unwrap();
            let mut fresh = RawByteProducer::new(&r2.ctl, &r2.slots, 8);
            fresh.push(b"new one, whole!").unwrap();
            r2.ctl.release(Role::Producer, PRODUCER);
        });
        let mut c = RawByteConsumer::new(&r.ctl, &r.slots, 8);
        let mut gap = false;
        let got = loop {
            match c.pop() {
                Ok(m) => break m,
                Err(PopError::Disconnected) => {
                    gap = true;
                    thread::yield_now();
                }
                Err(e) => panic!("nobody closes: {e:?}"),
            }
        };
        producers.join().unwrap();
        assert_eq!(got, b"new one, whole!", "only the new message, whole");
        assert_eq!(c.assembly().discarded(), 1, "the cut one was dropped");
        assert_eq!(c.try_pop(), Err(TryPopError::Empty));
        seen.note(if gap {
            "disconnected in the gap"
        } else {
            "no gap seen"
        });
    });
}
