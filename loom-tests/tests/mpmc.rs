//! Loom models of the MPMC ring (src/raw/mpmc/) and the wait protocol it
//! sleeps with (src/wait.rs).
//!
//! Run with
//! `RUSTFLAGS="--cfg loom" cargo test -p mmring-loom-tests --release --target-dir target/loom --test mpmc`
//! (`LOOM_MAX_PREEMPTIONS` overrides each model's bound,
//! `MMRING_LOOM_VERBOSE=1` prints executions and outcomes).
//!
//! Each model lists the outcomes it must have explored (`common::check`):
//! a consumer finding the queue empty, a producer finding it full, each
//! order of the racing items, a sleeper registered when the wake-up came.
//!
//! Two loom 0.7 blind spots shape the models:
//!
//! - A spawned thread whose first operation is a load that no other thread
//!   stores to (every push starts by loading `closed`, every pop by loading
//!   `head`) is never scheduled ahead of the main thread: DPOR sees no
//!   dependency. Every thread therefore starts with a read-modify-write of a
//!   shared start word ([`Mem::start`]), which makes each order of the
//!   threads' starts a dependency that loom explores.
//! - After a thread yields, loom no longer lets its loads return values it
//!   had seen before the yield, so a stale payload read after a spin-yield
//!   is never explored. Waiting is done by blocking on the mocked futex
//!   instead, except in the batch model (there is no blocking batch pop),
//!   where the first `pop_batch_with` of the main thread comes before any
//!   yield.

#![cfg(loom)]

mod common;

use common::{Seen, check};
use loom::sync::Arc;
use loom::thread;
use mmring::error::TaskError;
use mmring::error::{PopError, PushError, TryPopError, TryPushError};
use mmring::raw::message;
use mmring::raw::mpmc::{self, Control, RawQueue};
use mmring::sync::{AtomicU64, Ordering::Relaxed};

struct Mem {
    ctl: Control,
    words: Vec<AtomicU64>,
    cap: usize,
    start: AtomicU64,
}

impl Mem {
    fn q(&self) -> RawQueue<'_> {
        RawQueue::new(&self.ctl, &self.words, self.cap)
    }

    /// The first operation of every thread of a model (see the module
    /// docs): a read-modify-write, so that loom explores running a spawned
    /// thread before the main thread's operations.
    fn start(&self) {
        // Relaxed: only its scheduling point matters, no data hangs on it.
        self.start.fetch_add(1, Relaxed);
    }
}

fn mem(cap: usize, payload_words: usize, flags: u32) -> Arc<Mem> {
    let words: Vec<AtomicU64> = (0..RawQueue::words_needed(cap, payload_words))
        .map(|_| AtomicU64::new(0))
        .collect();
    RawQueue::init_slots(&words, cap);
    Arc::new(Mem {
        ctl: Control::new(flags),
        words,
        cap,
        start: AtomicU64::new(0),
    })
}

/// A flag for one execution, kept outside the model (a plain `std` mutex,
/// as in `common::Seen`): setting or reading it is no scheduling point.
#[derive(Clone, Default)]
struct Flag(std::sync::Arc<std::sync::Mutex<bool>>);

impl Flag {
    fn set(&self) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = true;
    }

    fn get(&self) -> bool {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Pushes `v`: one non-blocking try, then (if full) a blocking push.
///
/// Loom cannot bound a loop of tries that yields: with three threads, two
/// spinners can hand the processor to each other forever while the thread
/// they wait for sits preempted. A blocking call sleeps on the mocked futex
/// instead (not runnable until woken), so the model stays finite, and an
/// item that never comes is a deadlock that loom reports.
fn push_or_block(q: &RawQueue<'_>, v: u64, seen: &Seen) {
    match q.try_push_with(|w| w[0].store(v, Relaxed)) {
        Ok(()) => {}
        Err(TryPushError::Full(())) => {
            seen.note("producer saw full");
            q.push_with(|w| w[0].store(v, Relaxed)).unwrap();
        }
        Err(TryPushError::Closed(())) => panic!("nobody closes"),
    }
}

/// Pops one value: one non-blocking try, then (if empty) a blocking pop.
fn pop_or_block(q: &RawQueue<'_>, seen: &Seen) -> u64 {
    match q.try_pop_with(|w| w[0].load(Relaxed)) {
        Ok(v) => v,
        Err(TryPopError::Empty) => {
            seen.note("consumer saw empty");
            q.pop_with(|w| w[0].load(Relaxed)).unwrap()
        }
        Err(TryPopError::Closed) => panic!("nobody closes"),
    }
}

/// Moves an idle queue's positions on by `n` (push and pop `n` items
/// before any other thread exists: no branches), so that a model's first
/// items already sit on the second lap of the slots.
fn advance(m: &Mem, n: u64) {
    let q = m.q();
    for v in 0..n {
        q.try_push_with(|w| w[0].store(1000 + v, Relaxed)).unwrap();
        assert_eq!(q.try_pop_with(|w| w[0].load(Relaxed)), Ok(1000 + v));
    }
}

/// Two producers, one consumer, capacity 2: producer 1 pushes 11 then 12,
/// producer 2 pushes 21. Three items through two slots: the third lands in
/// a slot a consumer freed (the wrap). Every item arrives exactly once, and
/// each producer's items in its order.
#[test]
fn two_producers_one_consumer_across_the_wrap() {
    check(
        2,
        &[
            "consumer saw empty",
            "producer saw full",
            "21 first",
            "21 between",
            "21 last",
        ],
        |seen| {
            let m = mem(2, 1, 0);
            advance(&m, 1);
            let producers: Vec<_> = [vec![11u64, 12], vec![21]]
                .into_iter()
                .map(|vals| {
                    let (m, seen) = (m.clone(), seen.clone());
                    thread::spawn(move || {
                        m.start();
                        let q = m.q();
                        for v in vals {
                            push_or_block(&q, v, &seen);
                        }
                    })
                })
                .collect();
            m.start();
            let q = m.q();
            let got: Vec<u64> = (0..3).map(|_| pop_or_block(&q, seen)).collect();
            for p in producers {
                p.join().unwrap();
            }
            let p1: Vec<_> = got.iter().copied().filter(|v| v / 10 == 1).collect();
            assert_eq!(
                p1,
                [11, 12],
                "producer 1's items once each, in order: {got:?}"
            );
            assert_eq!(
                got.iter().filter(|&&v| v == 21).count(),
                1,
                "21 exactly once: {got:?}"
            );
            seen.note(match got.iter().position(|&v| v == 21) {
                Some(0) => "21 first",
                Some(1) => "21 between",
                _ => "21 last",
            });
            assert_eq!(
                q.try_pop_with(|w| w[0].load(Relaxed)),
                Err(TryPopError::Empty)
            );
        },
    );
}

/// One producer (the main thread, so that it is preempted), two consumers,
/// capacity 2, items on positions 1..=3 (slots 1, 0, 1: across the wrap).
/// Consumer 1 pops two items, consumer 2 one: every item arrives exactly
/// once, and each consumer sees the producer's items in increasing order.
/// Item 1 is pushed before the consumers start; 2 and 3 race them.
#[test]
fn one_producer_two_consumers_across_the_wrap() {
    check(
        2,
        &[
            "consumer saw empty",
            "producer saw full",
            "c2 got 1",
            "c2 got 2",
            "c2 got 3",
        ],
        |seen| {
            let m = mem(2, 1, 0);
            advance(&m, 1);
            // Item 1 goes in before the consumers exist (fewer branches).
            m.q().try_push_with(|w| w[0].store(1, Relaxed)).unwrap();
            let consumers: Vec<_> = [2usize, 1]
                .into_iter()
                .map(|n| {
                    let (m, seen) = (m.clone(), seen.clone());
                    thread::spawn(move || {
                        m.start();
                        let q = m.q();
                        (0..n)
                            .map(|_| pop_or_block(&q, &seen))
                            .collect::<Vec<u64>>()
                    })
                })
                .collect();
            m.start();
            let q = m.q();
            for v in 2..=3 {
                push_or_block(&q, v, seen);
            }
            let got: Vec<Vec<u64>> = consumers.into_iter().map(|c| c.join().unwrap()).collect();
            for g in &got {
                assert!(
                    g.windows(2).all(|w| w[0] < w[1]),
                    "a consumer saw items out of order: {got:?}"
                );
            }
            let mut all: Vec<u64> = got.concat();
            all.sort_unstable();
            assert_eq!(all, [1, 2, 3], "every item exactly once: {got:?}");
            seen.note(format!("c2 got {}", got[1][0]));
            assert_eq!(
                q.try_pop_with(|w| w[0].load(Relaxed)),
                Err(TryPopError::Empty)
            );
        },
    );
}

/// Two consumers block in `pop_with` on an empty queue; the
/// main thread pushes one item, then closes. One consumer gets the item,
/// the other `Closed`; neither may stay asleep (a lost wake-up is a loom
/// deadlock). Whether a consumer was registered as a sleeper when the
/// close came is noted, so both paths are known to be explored.
#[test]
fn close_wakes_every_blocked_pop() {
    check(
        3,
        &[
            "c1 got it",
            "c2 got it",
            "sleeper at close",
            "no sleeper at close",
        ],
        |seen| {
            let m = mem(2, 1, 0);
            let consumers: Vec<_> = (0..2)
                .map(|_| {
                    let m = m.clone();
                    thread::spawn(move || {
                        m.start();
                        m.q().pop_with(|w| w[0].load(Relaxed))
                    })
                })
                .collect();
            m.start();
            let q = m.q();
            q.try_push_with(|w| w[0].store(7, Relaxed)).unwrap();
            // Relaxed reads, for the coverage note only.
            let sleeping = m.ctl.snapshot().data_waiters > 0;
            q.close();
            seen.note(if sleeping {
                "sleeper at close"
            } else {
                "no sleeper at close"
            });
            let got: Vec<_> = consumers.into_iter().map(|c| c.join().unwrap()).collect();
            match (got[0], got[1]) {
                (Ok(7), Err(PopError::Closed)) => seen.note("c1 got it"),
                (Err(PopError::Closed), Ok(7)) => seen.note("c2 got it"),
                other => panic!(
                    "the item pushed before close must reach exactly one consumer: {other:?}"
                ),
            }
        },
    );
}

/// Two producers block in `push_with` on a full queue
/// (capacity 2, prefilled with 1 and 2). The main thread pops one item,
/// making room for one push, then closes. At most one push lands; the
/// other producer (or both) is refused with `Closed`, and nobody stays
/// asleep. Then the queue drains: 2, the landed value if any, `Closed`.
#[test]
fn close_wakes_every_blocked_push() {
    check(
        3,
        &[
            "a push landed",
            "both refused",
            "sleeper at close",
            "no sleeper at close",
        ],
        |seen| {
            let m = mem(2, 1, 0);
            let q = m.q();
            for v in [1, 2] {
                q.try_push_with(|w| w[0].store(v, Relaxed)).unwrap();
            }
            let producers: Vec<_> = [31u64, 32]
                .into_iter()
                .map(|v| {
                    let m = m.clone();
                    thread::spawn(move || {
                        m.start();
                        m.q().push_with(|w| w[0].store(v, Relaxed))
                    })
                })
                .collect();
            m.start();
            assert_eq!(q.try_pop_with(|w| w[0].load(Relaxed)), Ok(1));
            // Relaxed reads, for the coverage note only.
            let sleeping = m.ctl.snapshot().space_waiters > 0;
            q.close();
            seen.note(if sleeping {
                "sleeper at close"
            } else {
                "no sleeper at close"
            });
            let results: Vec<_> = producers.into_iter().map(|p| p.join().unwrap()).collect();
            let landed: Vec<u64> = [31u64, 32]
                .into_iter()
                .zip(&results)
                .filter_map(|(v, r)| match r {
                    Ok(()) => Some(v),
                    Err(PushError::Closed(())) => None,
                    Err(e) => panic!("push: {e:?}"),
                })
                .collect();
            assert!(
                landed.len() <= 1,
                "one free slot, two pushes landed: {results:?}"
            );
            seen.note(if landed.is_empty() {
                "both refused"
            } else {
                "a push landed"
            });
            let mut rest = Vec::new();
            loop {
                match q.try_pop_with(|w| w[0].load(Relaxed)) {
                    Ok(v) => rest.push(v),
                    Err(TryPopError::Closed) => break,
                    Err(TryPopError::Empty) => {
                        panic!("closed, all pushes returned, yet not drained")
                    }
                }
            }
            assert_eq!(rest, [&[2u64][..], &landed].concat(), "drain after close");
        },
    );
}

/// A producer thread pushes 7; the main thread waits for it to finish
/// (`join`), then closes; a consumer blocks in `pop_with`
/// twice. The push happens before the close, so the consumer must get 7
/// and only then `Closed`: a consumer that sees the close must also see
/// every push ordered before it (the close's Release, the pop's Acquire).
#[test]
fn a_push_that_happens_before_close_is_never_lost() {
    check(
        3,
        &["item taken before the close", "close came first"],
        |seen| {
            let m = mem(2, 1, 0);
            let closed = Flag::default();
            let consumer = {
                let (m, closed) = (m.clone(), closed.clone());
                thread::spawn(move || {
                    m.start();
                    let q = m.q();
                    let first = q.pop_with(|w| w[0].load(Relaxed));
                    let late = closed.get();
                    (first, q.pop_with(|w| w[0].load(Relaxed)), late)
                })
            };
            let producer = {
                let m = m.clone();
                thread::spawn(move || {
                    m.start();
                    m.q().try_push_with(|w| w[0].store(7, Relaxed)).unwrap();
                })
            };
            m.start();
            producer.join().unwrap();
            m.q().close();
            closed.set();
            let (first, second, late) = consumer.join().unwrap();
            assert_eq!(first, Ok(7), "the item pushed before the close must arrive");
            assert_eq!(second, Err(PopError::Closed));
            seen.note(if late {
                "close came first"
            } else {
                "item taken before the close"
            });
        },
    );
}

/// A push racing `close`: it must either be refused with `Closed` or
/// deliver its item, never succeed after a consumer was told "closed and
/// drained" (that consumer leaves, and the item is lost although the push
/// returned `Ok`).
///
/// Regression: `attempt_push` used to load `closed` once, before claiming a
/// position, so a push that passed that check could land after a consumer
/// got `Closed`. The close now sets a bit in the tail word, which makes
/// every later compare-and-swap of the tail fail.
#[test]
fn a_push_racing_close_is_refused_or_delivered() {
    check(3, &["push landed", "push refused"], |seen| {
        let m = mem(2, 1, 0);
        let producer = {
            let m = m.clone();
            thread::spawn(move || {
                m.start();
                m.q().try_push_with(|w| w[0].store(7, Relaxed))
            })
        };
        m.start();
        let q = m.q();
        q.close();
        let first = q.try_pop_with(|w| w[0].load(Relaxed));
        let pushed = producer.join().unwrap();
        match pushed {
            Ok(()) => seen.note("push landed"),
            Err(TryPushError::Closed(())) => seen.note("push refused"),
            Err(e) => panic!("push: {e:?}"),
        }
        if first == Err(TryPopError::Closed) {
            assert!(
                pushed.is_err(),
                "a consumer got Closed (closed and drained), then a push succeeded: its item is lost"
            );
        }
    });
}

/// A consumer blocks in `pop_with` twice; the main thread
/// pushes 1 and 2 with one `push_batch_with`. The batch's single wake-up
/// must reach the sleeper (a lost one is a loom deadlock).
#[test]
fn a_batch_push_wakes_a_blocked_pop() {
    check(
        3,
        &["sleeper at the batch", "no sleeper at the batch"],
        |seen| {
            let m = mem(2, 1, 0);
            let consumer = {
                let m = m.clone();
                thread::spawn(move || {
                    m.start();
                    let q = m.q();
                    let a = q.pop_with(|w| w[0].load(Relaxed)).unwrap();
                    let b = q.pop_with(|w| w[0].load(Relaxed)).unwrap();
                    [a, b]
                })
            };
            m.start();
            // Relaxed reads, for the coverage note only.
            let sleeping = m.ctl.snapshot().data_waiters > 0;
            assert_eq!(
                m.q()
                    .push_batch_with(2, |i, w| w[0].store(i as u64 + 1, Relaxed)),
                Ok(2)
            );
            seen.note(if sleeping {
                "sleeper at the batch"
            } else {
                "no sleeper at the batch"
            });
            assert_eq!(consumer.join().unwrap(), [1, 2]);
        },
    );
}

/// A producer blocks in `push_with` on a full queue (capacity
/// 2, holding 1 and 2); the main thread takes both with one
/// `pop_batch_with`, then pops the producer's 3 (blocking). The batch's
/// wake-up must reach the sleeping producer (a lost one is a deadlock).
#[test]
fn a_batch_pop_wakes_a_blocked_push() {
    check(
        3,
        &["sleeper at the batch", "no sleeper at the batch"],
        |seen| {
            let m = mem(2, 1, 0);
            for v in [1, 2] {
                m.q().try_push_with(|w| w[0].store(v, Relaxed)).unwrap();
            }
            let producer = {
                let m = m.clone();
                thread::spawn(move || {
                    m.start();
                    m.q().push_with(|w| w[0].store(3, Relaxed)).unwrap();
                })
            };
            m.start();
            let q = m.q();
            // Relaxed reads, for the coverage note only.
            let sleeping = m.ctl.snapshot().space_waiters > 0;
            let mut got = Vec::new();
            assert_eq!(
                q.pop_batch_with(2, |_, w| got.push(w[0].load(Relaxed))),
                Ok(2)
            );
            seen.note(if sleeping {
                "sleeper at the batch"
            } else {
                "no sleeper at the batch"
            });
            got.push(q.pop_with(|w| w[0].load(Relaxed)).unwrap());
            assert_eq!(got, [1, 2, 3]);
            producer.join().unwrap();
        },
    );
}

/// Joinable queue, two items pushed before the threads start. The main
/// thread and a worker each pop one item, record it (a Relaxed store: the
/// work) and call `task_done`; a third thread joins, then reads both
/// records. `join` must return only after the last `task_done`, with the
/// work done before each `task_done` visible to the joiner; a joiner left
/// asleep is a loom deadlock. (The joiner is a spawned thread so that loom
/// also runs its first check after both `task_done`s: the main thread's
/// first load is never delayed behind two other threads.)
#[test]
fn join_returns_after_the_last_task_done() {
    check(
        3,
        &[
            "joiner asleep at a task_done",
            "joiner never seen asleep",
            "worker got 1",
            "worker got 2",
        ],
        |seen| {
            let m = mem(2, 1, mpmc::FLAG_JOINABLE);
            let q = m.q();
            for v in [1, 2] {
                q.try_push_with(|w| w[0].store(v, Relaxed)).unwrap();
            }
            assert_eq!(q.unfinished(), 2);
            let work: Arc<[AtomicU64; 2]> = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
            let slept = Flag::default();
            let task = |i: usize, m: &Mem, work: &[AtomicU64; 2], slept: &Flag| {
                m.start();
                let q = m.q();
                let v = q.try_pop_with(|w| w[0].load(Relaxed)).unwrap();
                // Relaxed: published to the joiner by task_done / join
                // (that is what this model checks).
                work[i].store(v, Relaxed);
                // Relaxed reads, for the coverage note only.
                if m.ctl.snapshot().join_waiters > 0 {
                    slept.set();
                }
                q.task_done().unwrap();
            };
            let joiner = {
                let (m, work) = (m.clone(), work.clone());
                thread::spawn(move || {
                    m.start();
                    m.q().join_until(None).unwrap();
                    // Relaxed: must be visible already, through join's
                    // Acquire of the count that task_done released.
                    [work[0].load(Relaxed), work[1].load(Relaxed)]
                })
            };
            let worker = {
                let (m, work, slept) = (m.clone(), work.clone(), slept.clone());
                thread::spawn(move || task(1, &m, &work, &slept))
            };
            task(0, &m, &work, &slept);
            let done = joiner.join().unwrap();
            worker.join().unwrap();
            assert!(
                done == [1, 2] || done == [2, 1],
                "join returned before every task was done, or without their work visible: {done:?}"
            );
            assert_eq!(q.unfinished(), 0);
            assert_eq!(q.task_done(), Err(TaskError::TooManyDone));
            seen.note(format!("worker got {}", done[1]));
            seen.note(if slept.get() {
                "joiner asleep at a task_done"
            } else {
                "joiner never seen asleep"
            });
        },
    );
}

/// The byte-message encoding of `ByteQueue` (`mmring::raw::message`), over
/// a raw queue: payload word 0 is the length, then the bytes packed into
/// words (native order, the last word zero-padded). Reading clamps the
/// stored length to the maximum.
const MAX_LEN: usize = 9;
const BYTE_PAYLOAD_WORDS: usize = message::words(MAX_LEN as u64) as usize;

fn write_msg(w: &[AtomicU64], msg: &[u8]) {
    message::write(w, msg);
}

fn read_msg(w: &[AtomicU64]) -> Vec<u8> {
    let mut out = vec![0u8; MAX_LEN];
    let len = message::read(w, MAX_LEN, &mut out);
    out.truncate(len);
    out
}

/// A message tagged with its producer and index: every byte says whose it
/// is, so a message mixing two writes (or a fresh length with stale bytes)
/// shows.
fn msg(producer: u8, index: u8, len: usize) -> Vec<u8> {
    (0..len as u8)
        .map(|i| producer << 6 | index << 4 | i)
        .collect()
}

/// Byte messages of lengths 9 and 0 (producer 1, in that order) and 1
/// (producer 2) through a capacity-2 queue whose slots already held a
/// 9-byte message of other bytes (so stale words differ from fresh ones).
/// Every message arrives exactly once and whole: its length and bytes are
/// the ones pushed together, and producer 1's arrive in order.
#[test]
fn byte_messages_of_different_lengths_arrive_whole() {
    check(
        2,
        &[
            "consumer saw empty",
            "producer saw full",
            "short between",
            "short first",
            "short last",
        ],
        |seen| {
            let m = mem(2, BYTE_PAYLOAD_WORDS, 0);
            {
                let q = m.q();
                let stale = [0xEE; MAX_LEN];
                for _ in 0..2 {
                    q.try_push_with(|w| write_msg(w, &stale)).unwrap();
                    assert_eq!(q.try_pop_with(read_msg).unwrap(), stale);
                }
            }
            let sent = [vec![msg(1, 0, 9), msg(1, 1, 0)], vec![msg(2, 0, 1)]];
            let producers: Vec<_> = sent
                .iter()
                .cloned()
                .map(|msgs| {
                    let (m, seen) = (m.clone(), seen.clone());
                    thread::spawn(move || {
                        m.start();
                        let q = m.q();
                        for mg in msgs {
                            match q.try_push_with(|w| write_msg(w, &mg)) {
                                Ok(()) => {}
                                Err(TryPushError::Full(())) => {
                                    seen.note("producer saw full");
                                    q.push_with(|w| write_msg(w, &mg)).unwrap();
                                }
                                Err(TryPushError::Closed(())) => panic!("nobody closes"),
                            }
                        }
                    })
                })
                .collect();
            m.start();
            let q = m.q();
            let got: Vec<Vec<u8>> = (0..3)
                .map(|_| match q.try_pop_with(read_msg) {
                    Ok(v) => v,
                    Err(TryPopError::Empty) => {
                        seen.note("consumer saw empty");
                        q.pop_with(read_msg).unwrap()
                    }
                    Err(TryPopError::Closed) => panic!("nobody closes"),
                })
                .collect();
            for p in producers {
                p.join().unwrap();
            }
            for g in &got {
                assert!(
                    sent.iter().flatten().any(|s| s == g),
                    "a message that was never sent (torn, or stale bytes): {g:x?} in {got:x?}"
                );
            }
            let p1: Vec<_> = got.iter().filter(|g| g.len() != 1).cloned().collect();
            assert_eq!(
                p1, sent[0],
                "producer 1's messages once each, in order: {got:x?}"
            );
            assert_eq!(
                got.iter().filter(|g| **g == sent[1][0]).count(),
                1,
                "{got:x?}"
            );
            seen.note(match got.iter().position(|g| g.len() == 1) {
                Some(0) => "short first",
                Some(1) => "short between",
                _ => "short last",
            });
        },
    );
}

/// A producer pushes 1, 2 with one `push_batch_with`, then 3 (blocking
/// while full); the main thread pops with `pop_batch_with(2)` while a third
/// thread makes a single `try_pop`. Capacity 2 with positions 1..=3 (slots
/// 1, 0, 1: 3 reuses the slot a batch or the `try_pop` freed). Every item
/// arrives exactly once, the batch consumer sees increasing items, and a
/// batch holds only published items (1 and 2 are claimed together, so a
/// batch of 1 alone means 2 was claimed and not yet written).
#[test]
fn batches_race_a_single_try_pop() {
    check(
        2,
        &[
            "try_pop got 1",
            "try_pop got 2",
            "try_pop got 3",
            "try_pop saw empty",
            "batch of 2",
            "batch saw empty",
            "producer seen mid-batch",
            "producer saw full",
        ],
        |seen| {
            let m = mem(2, 1, 0);
            advance(&m, 1);
            let producer = {
                let (m, seen) = (m.clone(), seen.clone());
                thread::spawn(move || {
                    m.start();
                    let q = m.q();
                    let vals = [1u64, 2];
                    assert_eq!(
                        q.push_batch_with(2, |i, w| w[0].store(vals[i], Relaxed)),
                        Ok(2)
                    );
                    push_or_block(&q, 3, &seen);
                })
            };
            // What the single try_pop got: 0 before it finishes, then 1 for
            // empty, or 2 + the item (whatever it read, even a wrong 0).
            let single = Arc::new(AtomicU64::new(0));
            let popper = {
                let (m, single) = (m.clone(), single.clone());
                thread::spawn(move || {
                    m.start();
                    let r = match m.q().try_pop_with(|w| w[0].load(Relaxed)) {
                        Ok(v) => 2 + v,
                        Err(TryPopError::Empty) => 1,
                        Err(TryPopError::Closed) => panic!("nobody closes"),
                    };
                    single.store(r, mmring::sync::Ordering::Release);
                })
            };
            m.start();
            let q = m.q();
            let mut got = Vec::new();
            loop {
                let mut batch = Vec::new();
                let n = q.pop_batch_with(2, |i, w| {
                    assert_eq!(i, batch.len());
                    batch.push(w[0].load(Relaxed));
                });
                assert_eq!(n, Ok(batch.len()));
                match batch[..] {
                    [] => seen.note("batch saw empty"),
                    [_, _] => seen.note("batch of 2"),
                    // 1 and 2 are claimed by one batch, so a batch of 1
                    // alone means 2 was claimed but not yet published.
                    [1] => seen.note("producer seen mid-batch"),
                    _ => {}
                }
                got.extend(batch);
                // Acquire pairs with the popper's Release store.
                let s = single.load(mmring::sync::Ordering::Acquire);
                if s != 0 && got.len() + usize::from(s >= 2) == 3 {
                    break;
                }
                if n == Ok(0) {
                    thread::yield_now();
                }
            }
            producer.join().unwrap();
            popper.join().unwrap();
            assert!(
                got.windows(2).all(|w| w[0] < w[1]),
                "batches out of order: {got:?}"
            );
            let s = single.load(Relaxed);
            let mut all = got.clone();
            if s >= 2 {
                all.push(s - 2);
                seen.note(format!("try_pop got {}", s - 2));
            } else {
                seen.note("try_pop saw empty");
            }
            all.sort_unstable();
            assert_eq!(
                all,
                [1, 2, 3],
                "every item exactly once: batches {got:?}, try_pop {s}"
            );
            assert_eq!(q.pop_batch_with(4, |_, _| panic!("drained")), Ok(0));
        },
    );
}

/// A producer that falls a whole lap behind between reading a slot's
/// sequence and reading its claim never takes the slot. Producer 1 tries
/// once to push 11 (capacity 2); meanwhile the main thread pushes 21 and
/// 22, pops one, and pushes 23, which lands in slot 0 again (position 2).
/// Whatever the interleaving, every item pushed arrives exactly once, and
/// 11 only if its push said `Ok`.
///
/// Regression: the producer used to accept any claim that was not on its
/// position as the previous lap's; one read a lap late (23's claim, on
/// position 2) let it win position 0 from under 23 and overwrite it.
#[test]
fn a_producer_a_lap_behind_never_takes_a_later_laps_slot() {
    check(2, &["11 pushed", "11 refused"], |seen| {
        let m = mem(2, 1, 0);
        let p1 = {
            let m = m.clone();
            thread::spawn(move || {
                m.start();
                m.q().try_push_with(|w| w[0].store(11, Relaxed)).is_ok()
            })
        };
        m.start();
        let q = m.q();
        let mut pushed = Vec::new();
        let mut got = Vec::new();
        for v in [21, 22] {
            if q.try_push_with(|w| w[0].store(v, Relaxed)).is_ok() {
                pushed.push(v);
            }
        }
        if let Ok(v) = q.try_pop_with(|w| w[0].load(Relaxed)) {
            got.push(v);
        }
        if q.try_push_with(|w| w[0].store(23, Relaxed)).is_ok() {
            pushed.push(23);
        }
        if p1.join().unwrap() {
            seen.note("11 pushed");
            pushed.push(11);
        } else {
            seen.note("11 refused");
        }
        while let Ok(v) = q.try_pop_with(|w| w[0].load(Relaxed)) {
            got.push(v);
        }
        pushed.sort_unstable();
        got.sort_unstable();
        assert_eq!(got, pushed, "every item pushed arrives exactly once");
    });
}

/// The sequence word of slot `i` (`docs/FORMAT.md`: `2p` free for position
/// `p`, `2p + 1` holding it), for the coverage notes only (Relaxed).
fn seq_of(m: &Mem, i: usize) -> u64 {
    m.words[i * (m.words.len() / m.cap)].load(Relaxed)
}

/// Linearizable pops: two threads each push one item and then `try_pop`,
/// on a queue of 2. A thread's own push has returned when its pop starts,
/// so the pop never finds the queue empty, even when the other thread
/// claimed position 0 first and has not published it yet (the pop waits
/// for it). Every item arrives exactly once.
///
/// Regression: the pop answered `Empty` when the slot at the head was
/// claimed and unpublished, though the tail was past it and a completed
/// push sat behind it.
#[test]
fn a_pop_after_a_completed_push_never_finds_the_queue_empty() {
    check(
        2,
        &[
            "met a push in flight",
            "each got its own",
            "each got the other's",
        ],
        |seen| {
            let m = mem(2, 1, 0);
            let worker = |m: &Mem, v: u64, seen: &Seen| {
                m.start();
                let q = m.q();
                q.try_push_with(|w| w[0].store(v, Relaxed)).unwrap();
                // Relaxed reads, for the coverage note only: our push is
                // done, the other claimed position 0 and has not published.
                let s = m.ctl.snapshot();
                if s.head == 0 && s.tail == 2 && seq_of(m, 0) == 0 {
                    seen.note("met a push in flight");
                }
                match q.try_pop_with(|w| w[0].load(Relaxed)) {
                    Ok(got) => got,
                    Err(e) => panic!("{v}: pop after its own push: {e:?}"),
                }
            };
            let other = {
                let (m, seen) = (m.clone(), seen.clone());
                thread::spawn(move || worker(&m, 2, &seen))
            };
            let mine = worker(&m, 1, seen);
            let theirs = other.join().unwrap();
            let mut all = [mine, theirs];
            seen.note(if all == [1, 2] {
                "each got its own"
            } else {
                "each got the other's"
            });
            all.sort_unstable();
            assert_eq!(all, [1, 2], "every item exactly once");
            assert_eq!(
                m.q().try_pop_with(|w| w[0].load(Relaxed)),
                Err(TryPopError::Empty)
            );
        },
    );
}

/// A batch pop meets a producer in flight: producers push 11 and 21 on a
/// queue of 2; once 21's push has returned (the main thread joins it),
/// `pop_batch_with` must return at least one item, never 0, even when 11's
/// producer claimed position 0 and has not published it: the batch waits
/// it out. Then the rest arrives; every item exactly once.
#[test]
fn a_batch_pop_waits_out_a_producer_in_flight() {
    check(
        2,
        &["met 11 in flight", "batch of 2", "batch of 1"],
        |seen| {
            let m = mem(2, 1, 0);
            let p1 = {
                let m = m.clone();
                thread::spawn(move || {
                    m.start();
                    m.q().try_push_with(|w| w[0].store(11, Relaxed)).unwrap();
                })
            };
            let p2 = {
                let m = m.clone();
                thread::spawn(move || {
                    m.start();
                    m.q().try_push_with(|w| w[0].store(21, Relaxed)).unwrap();
                })
            };
            m.start();
            p2.join().unwrap();
            let q = m.q();
            // Relaxed reads, for the coverage note only.
            if m.ctl.snapshot().tail == 2 && seq_of(&m, 0) == 0 {
                seen.note("met 11 in flight");
            }
            let mut got = Vec::new();
            let n = q
                .pop_batch_with(2, |_, w| got.push(w[0].load(Relaxed)))
                .unwrap();
            assert!(n > 0, "a batch found nothing after 21's push returned");
            seen.note(format!("batch of {n}"));
            p1.join().unwrap();
            while let Ok(v) = q.try_pop_with(|w| w[0].load(Relaxed)) {
                got.push(v);
            }
            got.sort_unstable();
            assert_eq!(got, [11, 21], "every item exactly once");
        },
    );
}

/// The push side: a full queue of 2 (items 1 and 2); two consumers pop one
/// each; once the second consumer's pop has returned (joined), a
/// `try_push` must find room, even when the first consumer claimed its
/// item and has not freed the slot yet: the push waits it out. Every item
/// arrives exactly once.
#[test]
fn a_push_after_a_completed_pop_never_finds_the_queue_full() {
    check(2, &["met a pop in flight", "slot already free"], |seen| {
        let m = mem(2, 1, 0);
        let q = m.q();
        for v in [1, 2] {
            q.try_push_with(|w| w[0].store(v, Relaxed)).unwrap();
        }
        let c1 = {
            let m = m.clone();
            thread::spawn(move || {
                m.start();
                m.q().try_pop_with(|w| w[0].load(Relaxed)).unwrap()
            })
        };
        let c2 = {
            let m = m.clone();
            thread::spawn(move || {
                m.start();
                m.q().try_pop_with(|w| w[0].load(Relaxed)).unwrap()
            })
        };
        m.start();
        let second = c2.join().unwrap();
        // Relaxed reads, for the coverage note only: slot 0 still holds
        // position 0 (sequence 1) though the head is past it.
        seen.note(if m.ctl.snapshot().head == 2 && seq_of(&m, 0) == 1 {
            "met a pop in flight"
        } else {
            "slot already free"
        });
        assert_eq!(
            q.try_push_with(|w| w[0].store(3, Relaxed)),
            Ok(()),
            "a push found the queue full after a pop returned"
        );
        let first = c1.join().unwrap();
        let mut got = vec![
            first,
            second,
            q.try_pop_with(|w| w[0].load(Relaxed)).unwrap(),
        ];
        got.sort_unstable();
        assert_eq!(got, [1, 2, 3], "every item exactly once");
    });
}

/// Capacity 1: a producer pushes 1, 2, 3 (blocking while the one slot is
/// taken), the main thread pops three times (blocking while empty). With
/// one slot, "holds position p" and "free for position p + 1" must differ
/// (sequences count half-steps): every item arrives exactly once, in order.
#[test]
fn capacity_one_hands_each_item_over_once() {
    check(2, &["producer saw full", "consumer saw empty"], |seen| {
        let m = mem(1, 1, 0);
        let producer = {
            let (m, seen) = (m.clone(), seen.clone());
            thread::spawn(move || {
                m.start();
                let q = m.q();
                for v in 1..=3 {
                    push_or_block(&q, v, &seen);
                }
            })
        };
        m.start();
        let q = m.q();
        let got: Vec<u64> = (0..3).map(|_| pop_or_block(&q, seen)).collect();
        producer.join().unwrap();
        assert_eq!(got, [1, 2, 3]);
        assert_eq!(
            q.try_pop_with(|w| w[0].load(Relaxed)),
            Err(TryPopError::Empty)
        );
        assert!(!q.is_full() && q.is_empty());
    });
}

/// Capacity 1, full (item 1), with a close: a producer blocks pushing 2,
/// the main thread pops 1 and closes. The push lands (before the close) or
/// is refused; the drain after the close returns exactly what landed, then
/// `Closed`; nobody stays asleep.
#[test]
fn capacity_one_full_then_closed() {
    check(3, &["push landed", "push refused"], |seen| {
        let m = mem(1, 1, 0);
        let q = m.q();
        q.try_push_with(|w| w[0].store(1, Relaxed)).unwrap();
        assert!(q.is_full());
        assert_eq!(
            q.try_push_with(|w| w[0].store(9, Relaxed)),
            Err(TryPushError::Full(()))
        );
        let producer = {
            let m = m.clone();
            thread::spawn(move || {
                m.start();
                m.q().push_with(|w| w[0].store(2, Relaxed))
            })
        };
        m.start();
        assert_eq!(q.try_pop_with(|w| w[0].load(Relaxed)), Ok(1));
        q.close();
        let pushed = producer.join().unwrap();
        let mut rest = Vec::new();
        loop {
            match q.try_pop_with(|w| w[0].load(Relaxed)) {
                Ok(v) => rest.push(v),
                Err(TryPopError::Closed) => break,
                Err(TryPopError::Empty) => panic!("closed, the push returned, yet not drained"),
            }
        }
        match pushed {
            Ok(()) => {
                seen.note("push landed");
                assert_eq!(rest, [2]);
            }
            Err(PushError::Closed(())) => {
                seen.note("push refused");
                assert!(rest.is_empty());
            }
            Err(e) => panic!("push: {e:?}"),
        }
    });
}

/// Heap words for a queue of `cap` one-word slots that holds at most
/// `bound` items at once (`Control::init_bound`, as a file records it).
fn mem_bounded(cap: usize, bound: u64) -> Arc<Mem> {
    let m = mem(cap, 1, 0);
    m.ctl.init_bound(bound);
    m
}

/// Capacity 2, bound 1, positions 1 and 2 (slots 1 and 0: across the
/// wrap): two producers push one item each (a try, then a blocking push if
/// full), the consumer pops twice, looking at `len` before each pop. The
/// ring has room for both items but the bound for one only: never more
/// than one item counted, the second producer finds the queue full and
/// sleeps until the pop makes room (a lost wake-up is a loom deadlock),
/// and both items arrive exactly once.
#[test]
fn a_bounded_queue_never_holds_more_than_its_bound() {
    check(
        2,
        &[
            "producer saw full",
            "consumer saw empty",
            "11 first",
            "21 first",
        ],
        |seen| {
            let m = mem_bounded(2, 1);
            advance(&m, 1);
            let producers: Vec<_> = [11u64, 21]
                .into_iter()
                .map(|v| {
                    let (m, seen) = (m.clone(), seen.clone());
                    thread::spawn(move || {
                        m.start();
                        push_or_block(&m.q(), v, &seen);
                    })
                })
                .collect();
            m.start();
            let q = m.q();
            let got: Vec<u64> = (0..2)
                .map(|_| {
                    let n = q.len();
                    assert!(n <= 1, "{n} items in a queue bounded at 1");
                    pop_or_block(&q, seen)
                })
                .collect();
            for p in producers {
                p.join().unwrap();
            }
            let mut sorted = got.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, [11, 21], "each item exactly once: {got:?}");
            seen.note(if got[0] == 11 { "11 first" } else { "21 first" });
            assert_eq!(
                q.try_pop_with(|w| w[0].load(Relaxed)),
                Err(TryPopError::Empty)
            );
        },
    );
}
