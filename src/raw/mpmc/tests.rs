//! Unit tests of the raw queue over heap words.

use std::time::{Duration, Instant};

use super::*;
use crate::error::{
    JoinTimeoutError, PopError, PopTimeoutError, TaskError, TryPopError, TryPushError,
};

struct Mem {
    ctl: Control,
    words: Vec<AtomicU64>,
}

fn mem(capacity: usize, payload: usize, flags: u32) -> Mem {
    let words: Vec<AtomicU64> = (0..RawQueue::words_needed(capacity, payload))
        .map(|_| AtomicU64::new(0))
        .collect();
    RawQueue::init_slots(&words, capacity);
    Mem {
        ctl: Control::new(flags),
        words,
    }
}

fn q(m: &Mem) -> RawQueue<'_> {
    RawQueue::new(&m.ctl, &m.words, m.words.len() / 3)
}

fn push(q: &RawQueue<'_>, v: u64) -> Result<(), TryPushError<()>> {
    q.try_push_with(|w| w[0].store(v, Ordering::Relaxed))
}

fn pop(q: &RawQueue<'_>) -> Result<u64, TryPopError> {
    q.try_pop_with(|w| w[0].load(Ordering::Relaxed))
}

#[test]
fn fifo_full_and_wrap() {
    let m = mem(4, 1, 0);
    let q = q(&m);
    for round in 0..5u64 {
        for i in 0..4 {
            push(&q, round * 10 + i).unwrap();
        }
        assert_eq!(push(&q, 99), Err(TryPushError::Full(())));
        assert_eq!(q.len(), 4);
        for i in 0..4 {
            assert_eq!(pop(&q), Ok(round * 10 + i));
        }
        assert_eq!(pop(&q), Err(TryPopError::Empty));
    }
}

#[test]
fn close_refuses_pushes_and_drains() {
    let m = mem(2, 1, 0);
    let q = q(&m);
    push(&q, 1).unwrap();
    q.close();
    assert_eq!(push(&q, 2), Err(TryPushError::Closed(())));
    assert_eq!(pop(&q), Ok(1));
    assert_eq!(pop(&q), Err(TryPopError::Closed));
    assert_eq!(
        q.pop_with(|w| w[0].load(Ordering::Relaxed)),
        Err(PopError::Closed)
    );
    assert_eq!(
        q.pop_with_until(|w| w[0].load(Ordering::Relaxed), None),
        Err(PopTimeoutError::Closed)
    );
}

#[test]
fn batches_claim_what_is_there() {
    let m = mem(4, 1, 0);
    let q = q(&m);
    let vals = [1u64, 2, 3, 4, 5];
    let n = q
        .push_batch_with(5, |i, w| w[0].store(vals[i], Ordering::Relaxed))
        .unwrap();
    assert_eq!(n, 4);
    let mut out = [0u64; 3];
    let got = q
        .pop_batch_with(3, |i, w| out[i] = w[0].load(Ordering::Relaxed))
        .unwrap();
    assert_eq!((got, out), (3, [1, 2, 3]));
    assert_eq!(
        q.push_batch_with(8, |_, w| w[0].store(6, Ordering::Relaxed)),
        Ok(3)
    );
    let mut all = Vec::new();
    while let Ok(n) = q.pop_batch_with(2, |_, w| all.push(w[0].load(Ordering::Relaxed))) {
        if n == 0 {
            break;
        }
    }
    assert_eq!(all, [4, 6, 6, 6]);
}

/// Regression (found by the `mpmc_ops` and `hostile_peer` fuzzers):
/// a batch of zero items looped for ever once batches claimed slot by
/// slot (it claimed nothing and took that for a lost race).
#[test]
fn empty_batches_return_at_once() {
    let m = mem(4, 1, 0);
    let q = q(&m);
    assert_eq!(q.push_batch_with(0, |_, _| unreachable!()), Ok(0));
    assert_eq!(q.pop_batch_with(0, |_, _| unreachable!()), Ok(0));
    push(&q, 1).unwrap();
    assert_eq!(q.push_batch_with(0, |_, _| unreachable!()), Ok(0));
    assert_eq!(q.pop_batch_with(0, |_, _| unreachable!()), Ok(0));
    q.close();
    assert_eq!(q.pop_batch_with(0, |_, _| unreachable!()), Ok(0));
    assert_eq!(pop(&q), Ok(1));
    assert_eq!(
        q.pop_batch_with(0, |_, _| unreachable!()),
        Err(crate::error::Closed)
    );
    assert_eq!(
        q.push_batch_with(0, |_, _| unreachable!()),
        Err(crate::error::Closed)
    );
}

#[test]
fn task_done_and_join() {
    let m = mem(4, 1, FLAG_JOINABLE);
    let q = q(&m);
    push(&q, 1).unwrap();
    push(&q, 2).unwrap();
    assert_eq!(q.unfinished(), 2);
    let soon = Some(Instant::now() + Duration::from_millis(10));
    assert_eq!(q.join_until(soon), Err(JoinTimeoutError::Timeout(2)));
    pop(&q).unwrap();
    q.task_done().unwrap();
    pop(&q).unwrap();
    q.task_done().unwrap();
    assert_eq!(q.join_until(None), Ok(()));
    assert_eq!(q.task_done(), Err(TaskError::TooManyDone));
    assert_eq!(q.unfinished(), 0, "never wraps below zero");
    let plain = mem(2, 1, 0);
    let p = RawQueue::new(&plain.ctl, &plain.words, 2);
    assert_eq!(p.task_done(), Err(TaskError::NotJoinable));
    assert_eq!(p.join_until(None), Err(JoinTimeoutError::NotJoinable));
}

/// The claim word's bits are docs/FORMAT.md's: role in bits 63-62 (0
/// none, 1 producer, 2 consumer, 3 hole), pid in 61-40, the position's low
/// 40 bits below; each role survives the round trip through a word, for
/// any pid that fits and any position, and a claim is only on its own
/// position (modulo 2^40).
#[test]
fn claim_words_round_trip_with_the_format_s_bits() {
    let roles = [Role::None, Role::Producer, Role::Consumer, Role::Hole];
    for (bits, role) in roles.into_iter().enumerate() {
        assert_eq!(role.encode(), (bits as u64) << 62, "{role:?}");
        assert_eq!(Role::decode(role.encode()), role);
        assert_eq!(
            Role::decode(role.encode() | PID_MASK << POS_BITS | POS_MASK),
            role
        );
    }
    assert_eq!(claim(Role::Consumer, 5, 7), 2 << 62 | 5 << 40 | 7);
    assert_eq!(claim(Role::Hole, 0, 0), 3 << 62);
    assert_eq!(claim(Role::None, 0, 0), 0, "a fresh slot's claim word");
    let pids = [0, 1, 12_345, PID_MASK as u32];
    let positions = [0, 1, POS_MASK, POS_MASK + 1, 3 << 40 | 9, u64::MAX];
    for role in roles {
        for pid in pids {
            for pos in positions {
                let word = claim(role, pid, pos);
                assert_eq!(role_at(word, pos), role, "{role:?} {pid} {pos}");
                assert_eq!(claim_owner(word), pid);
                assert_eq!(owner_known(word), pid != 0);
                assert_eq!(role_at(word, pos.wrapping_add(1)), Role::None);
                assert_eq!(role_at(word, pos.wrapping_add(1 << POS_BITS)), role);
            }
        }
    }
    assert_eq!(claim_pid(PID_MASK as u32), PID_MASK as u32);
    assert_eq!(
        claim_pid(PID_MASK as u32 + 1),
        0,
        "too large: never recovered"
    );
}

/// Plays a process that won `pos` for `role` with its claim and died.
fn dead_claim(q: &RawQueue<'_>, role: Role, pos: u64) {
    let dead = crate::pid::dead_pid();
    q.slot(pos)[1].store(claim(role, dead, pos), Ordering::Relaxed);
}

#[test]
fn a_push_abandoned_by_a_dead_producer_becomes_a_skipped_hole() {
    let m = mem(4, 1, FLAG_JOINABLE);
    let q = q(&m);
    push(&q, 1).unwrap();
    // A producer claims position 1, moves the tail past it, and dies
    // before publishing.
    dead_claim(&q, Role::Producer, 1);
    m.ctl.tail.store(2, Ordering::Relaxed);
    push(&q, 3).unwrap();
    assert_eq!(pop(&q), Ok(1));
    assert_eq!(q.len(), 1, "3 is published, the dead claim is not");
    assert_eq!(
        q.recover_abandoned_pop(),
        0,
        "nothing for producers to recover"
    );
    assert_eq!(q.recover_abandoned_push(), 1);
    assert_eq!(q.recover_abandoned_push(), 0, "exactly once");
    assert_eq!(pop(&q), Ok(3), "the hole is skipped");
    assert_eq!(m.ctl.snapshot().recovered, 1);
    // Tasks: 1 and 3 pushed, the hole counted done when it was made.
    assert_eq!(q.unfinished(), 2);
    q.task_done().unwrap();
    q.task_done().unwrap();
    assert_eq!(q.unfinished(), 0);
    assert_eq!(q.task_done(), Err(TaskError::TooManyDone));
}

/// A consumer that meets a dead producer's claim at the head with a
/// completed push behind it does not answer `Empty`: it recovers the
/// claim on the spot and takes the item behind (so do batches).
#[test]
fn a_pop_meeting_a_dead_producers_claim_recovers_it_on_the_spot() {
    let m = mem(4, 1, FLAG_JOINABLE);
    let q = q(&m);
    dead_claim(&q, Role::Producer, 0);
    m.ctl.tail.store(1, Ordering::Relaxed);
    push(&q, 3).unwrap();
    assert_eq!(pop(&q), Ok(3), "not stuck behind the dead claim");
    assert_eq!(m.ctl.snapshot().recovered, 1);
    assert_eq!(q.unfinished(), 1, "the hole's task counted done");
    dead_claim(&q, Role::Producer, 2);
    m.ctl.tail.store(3, Ordering::Relaxed);
    push(&q, 4).unwrap();
    let mut got = Vec::new();
    assert_eq!(
        q.pop_batch_with(4, |_, w| got.push(w[0].load(Ordering::Relaxed))),
        Ok(1)
    );
    assert_eq!(got, [4]);
    assert_eq!(m.ctl.snapshot().recovered, 2);
    assert_eq!(pop(&q), Err(TryPopError::Empty));
}

#[test]
fn a_claim_the_tail_does_not_cover_counts_once_a_producer_helps_it_in() {
    let m = mem(4, 1, FLAG_JOINABLE);
    let q = q(&m);
    // A producer claims position 0 and dies before moving the tail: its
    // push never counted, and nobody recovers what is not pushed.
    dead_claim(&q, Role::Producer, 0);
    assert_eq!(q.recover_abandoned_push(), 0);
    assert_eq!((q.len(), q.unfinished()), (0, 0));
    assert_eq!(pop(&q), Err(TryPopError::Empty), "no push counted");
    // The next producer helps the tail past it and pushes at 1.
    push(&q, 5).unwrap();
    assert_eq!(m.ctl.pushed(), 2);
    assert_eq!(q.recover_abandoned_push(), 1);
    assert_eq!(pop(&q), Ok(5));
    q.task_done().unwrap();
    assert_eq!(q.join_until(None), Ok(()));
}

#[test]
fn a_hole_whose_recoverer_died_before_publishing_it_is_finished() {
    let m = mem(4, 1, 0);
    let q = q(&m);
    q.slot(0)[1].store(claim(Role::Hole, 0, 0), Ordering::Relaxed);
    m.ctl.tail.store(1, Ordering::Relaxed);
    push(&q, 9).unwrap();
    assert_eq!(q.recover_abandoned_push(), 1);
    assert_eq!(q.recover_abandoned_push(), 0);
    assert_eq!(pop(&q), Ok(9));
    // The same hole met by a consumer: finished on the spot.
    q.slot(2)[1].store(claim(Role::Hole, 0, 2), Ordering::Relaxed);
    m.ctl.tail.store(3, Ordering::Relaxed);
    push(&q, 10).unwrap();
    assert_eq!(pop(&q), Ok(10));
}

#[test]
fn a_slot_held_by_a_dead_consumer_is_freed() {
    let m = mem(2, 1, 0);
    let q = q(&m);
    push(&q, 1).unwrap();
    push(&q, 2).unwrap();
    // A consumer claims position 0, moves the head, and dies before
    // freeing its slot.
    dead_claim(&q, Role::Consumer, 0);
    m.ctl.head.store(1, Ordering::Relaxed);
    assert!(!q.is_full(), "the pop counted");
    assert_eq!(q.recover_abandoned_push(), 0);
    assert_eq!(q.recover_abandoned_pop(), 1);
    assert_eq!(q.recover_abandoned_pop(), 0, "exactly once");
    push(&q, 3).unwrap();
    assert_eq!(pop(&q), Ok(2));
    assert_eq!(pop(&q), Ok(3));
    // The same death met by a producer: it frees the slot on the spot
    // (the pop counted, so "full" would be false).
    push(&q, 4).unwrap();
    dead_claim(&q, Role::Consumer, 3);
    m.ctl.head.store(4, Ordering::Relaxed);
    push(&q, 5).unwrap();
    assert_eq!(pop(&q), Ok(5), "4 was lost with the dead consumer");
}

#[test]
fn a_consumer_dead_before_moving_the_head_is_passed_and_freed() {
    let m = mem(2, 1, 0);
    let q = q(&m);
    push(&q, 1).unwrap();
    push(&q, 2).unwrap();
    // Claimed position 0, died before moving the head.
    dead_claim(&q, Role::Consumer, 0);
    assert_eq!(pop(&q), Ok(2), "the next consumer helps the head past it");
    // A producer meets slot 0 still held: the pop there counted (the
    // head is past it), so it frees the slot on the spot.
    push(&q, 3).unwrap();
    push(&q, 4).unwrap();
    assert_eq!(m.ctl.snapshot().recovered, 1);
    assert_eq!(pop(&q), Ok(3));
    assert_eq!(pop(&q), Ok(4));
    // The same death with no other consumer around: recovery moves the
    // head itself.
    push(&q, 5).unwrap();
    push(&q, 6).unwrap();
    dead_claim(&q, Role::Consumer, 4);
    assert_eq!(
        push(&q, 7),
        Err(TryPushError::Full(())),
        "the head is not past the dead claim: the pop never counted"
    );
    assert_eq!(q.recover_abandoned_pop(), 1);
    assert_eq!(m.ctl.head.load(Ordering::Relaxed), 5);
    assert_eq!(pop(&q), Ok(6));
}

/// A live producer between its claim and its publish is waited for,
/// never recovered; a `try_pop` gives up only after
/// [`IN_FLIGHT_PATIENCE`] (a process stopped mid-push), and a claim
/// that names no process is not waited for at all.
#[test]
fn a_live_claimer_is_never_recovered() {
    let m = mem(2, 1, 0);
    let q = q(&m);
    m.ctl.tail.store(1, Ordering::Relaxed);
    q.slot(0)[1].store(claim(Role::Producer, q.me(), 0), Ordering::Relaxed);
    assert_eq!(q.recover_abandoned_push(), 0);
    let start = Instant::now();
    assert_eq!(pop(&q), Err(TryPopError::Empty));
    assert!(
        start.elapsed() >= IN_FLIGHT_PATIENCE,
        "{:?}",
        start.elapsed()
    );
    // Nor one whose pid did not fit in a claim (stored as 0).
    q.slot(0)[1].store(claim(Role::Producer, 0, 0), Ordering::Relaxed);
    assert_eq!(q.recover_abandoned_push(), 0);
    let start = Instant::now();
    assert_eq!(pop(&q), Err(TryPopError::Empty));
    assert!(
        start.elapsed() < IN_FLIGHT_PATIENCE,
        "pid 0 is not waited for"
    );
    assert_eq!(claim_pid(1 << 22), 0);
}

/// A view's patience bounds its wait for a live claimer in flight:
/// zero never waits, a short one gives up after it; both answer Empty.
#[test]
fn the_in_flight_patience_is_the_views() {
    let m = mem(2, 1, 0);
    let q = q(&m).with_in_flight_patience(Duration::ZERO);
    m.ctl.tail.store(1, Ordering::Relaxed);
    q.slot(0)[1].store(claim(Role::Producer, q.me(), 0), Ordering::Relaxed);
    assert_eq!(pop(&q), Err(TryPopError::Empty));
    let short = Duration::from_millis(20);
    let q = q.with_in_flight_patience(short);
    let start = Instant::now();
    assert_eq!(pop(&q), Err(TryPopError::Empty));
    assert!(start.elapsed() >= short, "{:?}", start.elapsed());
    // The claim is still there, untouched: its owner is alive.
    assert_eq!(q.recover_abandoned_push(), 0);
}

#[test]
fn a_batch_abandoned_by_a_dead_producer_becomes_holes() {
    let m = mem(8, 1, 0);
    let q = q(&m);
    push(&q, 1).unwrap();
    // A batch claims positions 1..5, moves the tail, publishes 1 and
    // dies.
    for p in 1..5 {
        dead_claim(&q, Role::Producer, p);
    }
    m.ctl.tail.store(5, Ordering::Relaxed);
    q.slot(1)[2].store(2, Ordering::Relaxed);
    q.slot(1)[0].store(full_seq(1), Ordering::Release);
    push(&q, 6).unwrap();
    assert_eq!(pop(&q), Ok(1));
    assert_eq!(pop(&q), Ok(2), "published before it died");
    assert_eq!(q.len(), 1, "only 6 is published");
    assert_eq!(q.recover_abandoned_push(), 3, "positions 2 to 4");
    assert_eq!(pop(&q), Ok(6), "the holes are skipped");
    assert_eq!(q.recover_abandoned_push(), 0);
}

#[test]
fn a_pop_batch_abandoned_by_a_dead_consumer_is_freed() {
    let m = mem(4, 1, 0);
    let q = q(&m);
    for v in 1..=4 {
        push(&q, v).unwrap();
    }
    // A consumer claims positions 0..3, moves the head and dies.
    for p in 0..3 {
        dead_claim(&q, Role::Consumer, p);
    }
    m.ctl.head.store(3, Ordering::Relaxed);
    assert_eq!((q.len(), q.is_full()), (1, false));
    assert_eq!(q.recover_abandoned_pop(), 3);
    for v in 5..=7 {
        push(&q, v).unwrap();
    }
    assert!(q.is_full());
    assert_eq!(pop(&q), Ok(4));
    assert_eq!(pop(&q), Ok(5));
}

#[test]
fn a_claim_the_close_left_outside_the_tail_is_given_up() {
    let m = mem(4, 1, FLAG_JOINABLE);
    let q = q(&m);
    push(&q, 1).unwrap();
    // A live producer claimed position 1 but had not moved the tail
    // when the queue closed: that push is refused, and consumers stop
    // before position 1.
    q.slot(1)[1].store(claim(Role::Producer, q.me(), 1), Ordering::Relaxed);
    q.close();
    assert_eq!(q.move_tail(1, 1), 0, "its move fails: given up");
    assert_eq!(pop(&q), Ok(1));
    assert_eq!(pop(&q), Err(TryPopError::Closed));
    q.task_done().unwrap();
    assert_eq!(q.join_until(None), Ok(()));
    // A batch that the close cut short counts the part the tail covers.
    let m2 = mem(8, 1, 0);
    let q2 = RawQueue::new(&m2.ctl, &m2.words, 8);
    m2.ctl.tail.store(3 | TAIL_CLOSED, Ordering::Relaxed);
    assert_eq!(q2.move_tail(1, 4), 2);
}

#[test]
fn a_push_after_close_is_refused_even_past_the_closed_check() {
    let m = mem(4, 1, 0);
    let q = q(&m);
    push(&q, 1).unwrap();
    q.close();
    // As if a producer had read `closed` = 0 before the close: the tail
    // CAS still fails, because the tail carries the closed bit.
    m.ctl.closed.store(0, Ordering::Relaxed);
    assert_eq!(push(&q, 2), Err(TryPushError::Closed(())));
    assert_eq!(
        q.push_batch_with(2, |_, w| w[0].store(3, Ordering::Relaxed)),
        Err(crate::error::Closed)
    );
    assert_eq!(q.len(), 1);
    assert_eq!(pop(&q), Ok(1));
    assert_eq!(pop(&q), Err(TryPopError::Closed));
}

/// Three producer and three consumer threads mix single and batch
/// operations on a 16-slot queue, many rounds: every item arrives
/// exactly once, each producer's items in order for each consumer, and
/// the queue never stops moving (a watchdog dumps the slots if it
/// does).
///
/// Regression: a producer that stalled between its sequence check and
/// its claim read could take a later lap's claim for the previous
/// lap's, win the slot from under it, and publish an old position
/// there; the head and tail then passed that slot for good. Loom's
/// small models never went a whole lap behind one thread's back; this
/// found it within a few dozen rounds.
#[test]
fn threads_mixing_singles_and_batches_deliver_exactly_once() {
    use std::sync::Arc;

    const CAP: usize = 16;
    const PRODUCERS: u64 = 3;
    const CONSUMERS: u64 = 3;
    let (rounds, per) = if cfg!(debug_assertions) {
        (40, 10_000u64)
    } else {
        (200, 20_000u64)
    };
    let rand = |r: &mut u64| {
        *r = r
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        *r >> 33
    };
    for round in 0..rounds {
        let m = Arc::new(mem(CAP, 1, 0));
        let got = Arc::new(AtomicU64::new(0));
        let mut producers = Vec::new();
        for p in 0..PRODUCERS {
            let m = m.clone();
            producers.push(std::thread::spawn(move || {
                let q = q(&m);
                let (mut next, mut r) = (0, p * 7 + round);
                while next < per {
                    let k = (rand(&mut r) % 9) as usize; // 0: single
                    let n = if k == 0 {
                        let v = (p << 32) | next;
                        usize::from(
                            q.try_push_with(|w| w[0].store(v, Ordering::Relaxed))
                                .is_ok(),
                        )
                    } else {
                        let k = k.min((per - next) as usize);
                        let first = next;
                        q.push_batch_with(k, |i, w| {
                            w[0].store((p << 32) | (first + i as u64), Ordering::Relaxed);
                        })
                        .unwrap()
                    };
                    if n == 0 {
                        std::thread::yield_now();
                    }
                    next += n as u64;
                }
            }));
        }
        let mut consumers = Vec::new();
        for c in 0..CONSUMERS {
            let (m, got) = (m.clone(), got.clone());
            consumers.push(std::thread::spawn(move || {
                let q = q(&m);
                let mut r = c * 13 + round + 5;
                let mut mine = Vec::new();
                while got.load(Ordering::Relaxed) < PRODUCERS * per {
                    let k = (rand(&mut r) % 9) as usize;
                    let before = mine.len();
                    if k == 0 {
                        if let Ok(v) = q.try_pop_with(|w| w[0].load(Ordering::Relaxed)) {
                            mine.push(v);
                        }
                    } else {
                        q.pop_batch_with(k, |_, w| mine.push(w[0].load(Ordering::Relaxed)))
                            .unwrap();
                    }
                    let n = (mine.len() - before) as u64;
                    if n == 0 {
                        std::thread::yield_now();
                    }
                    got.fetch_add(n, Ordering::Relaxed);
                }
                mine
            }));
        }
        // Watchdog: the count must keep moving.
        let (mut seen, mut since) = (0, Instant::now());
        while got.load(Ordering::Relaxed) < PRODUCERS * per {
            std::thread::sleep(Duration::from_millis(5));
            let now = got.load(Ordering::Relaxed);
            if now != seen {
                (seen, since) = (now, Instant::now());
            }
            if since.elapsed() > Duration::from_secs(20) {
                let q = q(&m);
                let (tail, head) = (m.ctl.pushed(), m.ctl.head.load(Ordering::Relaxed));
                let slots: Vec<String> = (head..head + CAP as u64)
                    .map(|p| {
                        let s = q.slot(p);
                        let c = s[1].load(Ordering::Relaxed);
                        format!(
                            "{p}: seq {} claim role {} on {}",
                            s[0].load(Ordering::Relaxed),
                            c >> 62,
                            c & POS_MASK
                        )
                    })
                    .collect();
                panic!("round {round}: stuck at {now} items, tail {tail}, head {head}: {slots:#?}");
            }
        }
        for p in producers {
            p.join().unwrap();
        }
        let mut all = Vec::new();
        for c in consumers {
            let mine = c.join().unwrap();
            for p in 0..PRODUCERS {
                let from_p: Vec<u64> = mine.iter().filter(|&&v| v >> 32 == p).copied().collect();
                assert!(
                    from_p.windows(2).all(|w| w[0] < w[1]),
                    "round {round}: producer {p}'s items out of order"
                );
            }
            all.extend(mine);
        }
        all.sort_unstable();
        let want: Vec<u64> = (0..PRODUCERS)
            .flat_map(|p| (0..per).map(move |i| (p << 32) | i))
            .collect();
        assert!(all == want, "round {round}: items lost or repeated");
        assert_eq!(q(&m).len(), 0);
    }
}

#[test]
fn garbage_words_give_errors_or_wrong_data_never_a_hang_or_panic() {
    let m = mem(4, 1, FLAG_JOINABLE);
    let q = q(&m);
    let garbage = [0u64, 1, 3, u64::MAX, 1 << 63, 0xdead_beef, 5];
    for (i, &g) in garbage.iter().cycle().take(200).enumerate() {
        match i % 4 {
            0 => m.ctl.tail.store(g, Ordering::Relaxed),
            1 => m.ctl.head.store(g.rotate_left(7), Ordering::Relaxed),
            2 => m.words[(g as usize) % m.words.len()].store(g ^ 0x55, Ordering::Relaxed),
            _ => m.ctl.done.store(g, Ordering::Relaxed),
        }
        let _ = push(&q, 1);
        let _ = pop(&q);
        let _ = q.push_batch_with(3, |_, w| w[0].store(2, Ordering::Relaxed));
        let _ = q.pop_batch_with(3, |_, _| ());
        let _ = q.recover_abandoned_push();
        let _ = q.recover_abandoned_pop();
        let _ = q.task_done();
        assert!(q.len() <= 4);
    }
}

/// Heap words for a queue of `capacity` slots that holds at most `bound`
/// items.
fn bounded(capacity: usize, bound: u64, flags: u32) -> Mem {
    let m = mem(capacity, 1, flags);
    m.ctl.init_bound(bound);
    m
}

#[test]
fn a_bounded_queue_is_full_at_its_bound_on_every_lap() {
    let m = bounded(4, 3, 0);
    let q = q(&m);
    assert_eq!((q.capacity(), q.bound()), (4, 3));
    // 3 items a lap over 4 slots: the positions walk round the ring, so
    // every slot is met at every offset from the head.
    for round in 0..9u64 {
        for i in 0..3 {
            push(&q, round * 10 + i).unwrap();
        }
        assert!(q.is_full());
        assert_eq!(q.len(), 3);
        assert_eq!(push(&q, 99), Err(TryPushError::Full(())));
        assert_eq!(
            q.push_batch_with(4, |_, w| w[0].store(99, Ordering::Relaxed)),
            Ok(0)
        );
        assert_eq!(pop(&q), Ok(round * 10));
        assert!(!q.is_full());
        push(&q, round * 10 + 3).unwrap();
        assert_eq!(push(&q, 99), Err(TryPushError::Full(())));
        for i in 1..4 {
            assert_eq!(pop(&q), Ok(round * 10 + i));
        }
        assert_eq!(pop(&q), Err(TryPopError::Empty));
    }
    // A batch takes what the bound leaves room for, no more.
    push(&q, 1).unwrap();
    let mut next = 2;
    let pushed = q.push_batch_with(4, |_, w| {
        w[0].store(next, Ordering::Relaxed);
        next += 1;
    });
    assert_eq!(pushed, Ok(2));
    assert_eq!(q.len(), 3);
    let mut got = Vec::new();
    assert_eq!(
        q.pop_batch_with(4, |_, w| got.push(w[0].load(Ordering::Relaxed))),
        Ok(3)
    );
    assert_eq!(got, [1, 2, 3]);
}

#[test]
fn a_bound_of_one_hands_over_one_item_at_a_time_in_a_larger_ring() {
    let m = bounded(8, 1, 0);
    let q = q(&m);
    for v in 0..20 {
        push(&q, v).unwrap();
        assert!(q.is_full());
        assert_eq!(push(&q, 99), Err(TryPushError::Full(())));
        assert_eq!(
            q.push_with_until(|w| w[0].store(99, Ordering::Relaxed), Some(Instant::now())),
            Err(crate::error::PushTimeoutError::Timeout(()))
        );
        assert_eq!(pop(&q), Ok(v));
    }
    // With nothing else bounding it, the bound is the capacity.
    let plain = mem(8, 1, 0);
    assert_eq!(self::q(&plain).bound(), 8);
}

/// A consumer stopped between its claim and its move of the head (alive,
/// or dead) has taken its item: a bounded queue is not full for that, and
/// the next push moves the head for it.
#[test]
fn a_pop_claimed_but_not_yet_past_the_head_leaves_room_below_the_bound() {
    let m = bounded(4, 2, 0);
    let q = q(&m);
    let head = || m.ctl.head.load(Ordering::Relaxed);
    push(&q, 1).unwrap();
    push(&q, 2).unwrap();
    // A consumer claimed position 0 and died before moving the head.
    dead_claim(&q, Role::Consumer, 0);
    assert_eq!(push(&q, 3), Ok(()), "the pop of 1 counted: room for 3");
    assert_eq!(head(), 1, "moved for it");
    assert_eq!(push(&q, 4), Err(TryPushError::Full(())));
    assert_eq!((pop(&q), pop(&q)), (Ok(2), Ok(3)));
    // Position 4 lands in slot 0, still held by the dead consumer: freed
    // on the spot, as in a queue bounded by its capacity.
    push(&q, 5).unwrap();
    push(&q, 6).unwrap();
    assert_eq!(m.ctl.snapshot().recovered, 1);
    assert_eq!((pop(&q), pop(&q)), (Ok(5), Ok(6)));
    // A live consumer (this process) claims position 5 and stops there.
    push(&q, 7).unwrap();
    push(&q, 8).unwrap();
    assert!(q.as_pid(crate::pid::current()).claim_pop_and_stop());
    assert_eq!(head(), 5);
    assert_eq!(push(&q, 9), Ok(()), "the pop of 7 counted: room for 9");
    assert_eq!(head(), 6);
    assert_eq!(push(&q, 10), Err(TryPushError::Full(())));
    assert_eq!((pop(&q), pop(&q)), (Ok(8), Ok(9)));
    // Position 9 lands in slot 1, still held by the stopped consumer: the
    // producer waits it out for its patience, then answers `Full`.
    let q = q.with_in_flight_patience(Duration::from_millis(20));
    push(&q, 11).unwrap();
    assert_eq!(push(&q, 12), Err(TryPushError::Full(())));
    assert_eq!(
        m.ctl.snapshot().recovered,
        1,
        "a live claimer is not recovered"
    );
}

/// A blocked push sleeps until a pop brings the queue below its bound.
#[test]
fn a_blocked_push_on_a_bounded_queue_wakes_when_a_pop_makes_room() {
    let m = bounded(4, 2, 0);
    let q = q(&m);
    push(&q, 1).unwrap();
    push(&q, 2).unwrap();
    std::thread::scope(|s| {
        let pusher = s.spawn(|| {
            q.push_with(|w| w[0].store(3, Ordering::Relaxed)).unwrap();
        });
        // Until the pusher sleeps (the bound holds it, not the slots).
        while m.ctl.snapshot().space_waiters == 0 {
            std::thread::yield_now();
        }
        assert_eq!(q.len(), 2);
        assert_eq!(pop(&q), Ok(1));
        pusher.join().unwrap();
    });
    assert!(q.is_full());
    assert_eq!((pop(&q), pop(&q)), (Ok(2), Ok(3)));
}

/// Threads pushing and popping singles and batches on a queue of 8 slots
/// bounded at 5: every item exactly once, and no look at the queue ever
/// counts more than 5 items.
#[test]
fn threads_never_see_a_bounded_queue_past_its_bound() {
    use std::sync::Arc;

    const PRODUCERS: u64 = 3;
    const CONSUMERS: usize = 2;
    const BOUND: usize = 5;
    let per: u64 = if cfg!(debug_assertions) {
        5_000
    } else {
        50_000
    };
    let m = Arc::new(bounded(8, BOUND as u64, 0));
    let got = Arc::new(AtomicU64::new(0));
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let m = m.clone();
            std::thread::spawn(move || {
                let q = q(&m);
                let mut next = 0;
                while next < per {
                    let v = (p << 32) | next;
                    if next % 3 == 0 {
                        let mut k = next;
                        let n = q
                            .push_batch_with(4.min((per - next) as usize), |_, w| {
                                w[0].store((p << 32) | k, Ordering::Relaxed);
                                k += 1;
                            })
                            .unwrap();
                        next += n as u64;
                        if n == 0 {
                            std::thread::yield_now();
                        }
                    } else {
                        q.push_with(|w| w[0].store(v, Ordering::Relaxed)).unwrap();
                        next += 1;
                    }
                    assert!(q.len() <= BOUND, "more than the bound seen");
                }
            })
        })
        .collect();
    let consumers: Vec<_> = (0..CONSUMERS)
        .map(|_| {
            let (m, got) = (m.clone(), got.clone());
            std::thread::spawn(move || {
                let q = q(&m);
                let mut mine = Vec::new();
                loop {
                    match q.pop_with(|w| w[0].load(Ordering::Relaxed)) {
                        Ok(v) => mine.push(v),
                        Err(PopError::Closed) => return mine,
                        Err(e) => panic!("{e:?}"),
                    }
                    assert!(q.len() <= BOUND, "more than the bound seen");
                    got.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for p in producers {
        p.join().unwrap();
    }
    q(&m).close();
    let mut all: Vec<u64> = consumers
        .into_iter()
        .flat_map(|c| c.join().unwrap())
        .collect();
    all.sort_unstable();
    let want: Vec<u64> = (0..PRODUCERS)
        .flat_map(|p| (0..per).map(move |i| (p << 32) | i))
        .collect();
    assert!(all == want, "items lost or repeated");
}

#[test]
#[should_panic(expected = "above the capacity")]
fn a_view_refuses_a_bound_above_the_capacity() {
    let m = bounded(4, 5, 0);
    let _ = q(&m);
}

#[test]
fn garbage_in_a_bounded_queue_gives_errors_never_a_hang_or_panic() {
    let m = bounded(4, 2, FLAG_JOINABLE);
    let q = q(&m);
    let garbage = [0u64, 1, 3, u64::MAX, 1 << 63, 0xdead_beef, 5];
    for (i, &g) in garbage.iter().cycle().take(300).enumerate() {
        match i % 5 {
            0 => m.ctl.tail.store(g, Ordering::Relaxed),
            1 => m.ctl.head.store(g.rotate_left(7), Ordering::Relaxed),
            // Consumer claims on whatever position the head names.
            2 => {
                let head = m.ctl.head.load(Ordering::Relaxed);
                dead_claim(&q, Role::Consumer, head.wrapping_add(g % 3));
            }
            3 => m.ctl.bound.store(g, Ordering::Relaxed), // never re-read
            _ => m.words[(g as usize) % m.words.len()].store(g ^ 0x55, Ordering::Relaxed),
        }
        let _ = push(&q, 1);
        let _ = pop(&q);
        let _ = q.push_batch_with(3, |_, w| w[0].store(2, Ordering::Relaxed));
        let _ = q.pop_batch_with(3, |_, _| ());
        let _ = q.recover_abandoned_push();
        let _ = q.recover_abandoned_pop();
        let _ = (q.is_full(), q.is_empty());
        assert!(q.len() <= 4);
        assert_eq!(q.bound(), 2);
    }
}
