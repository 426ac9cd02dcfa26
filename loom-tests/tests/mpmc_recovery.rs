//! Loom models of the MPMC queue's recovery of slots abandoned by dead
//! processes (`src/raw/mpmc/mod.rs`, "Processes that die mid-operation"):
//! survivors race to recover, and exactly one of them recovers each slot.
//!
//! A process that dies mid-operation is played by a queue view acting as a
//! pid that no process has (`RawQueue::as_pid`), either whose payload
//! closure panics once its claims are made and the tail (head) moved: the
//! panic is caught on the spot (`catch_unwind`), which leaves the slots
//! exactly as a `SIGKILL` at that point would (claimed by a dead pid, never
//! published or never freed); or that stops right after its claim, before
//! it moves the tail (head) (`claim_push_and_stop`, `claim_pop_and_stop`),
//! racing live processes that must step past it.
//! Recovery itself is called directly: under loom the blocking calls ignore
//! their deadlines, so the periodic recovery of a blocked caller never runs.
//! The non-blocking calls recover too, on the spot, the one slot they find
//! in their way (a dead claimer whose operation had counted: the tail
//! (head) is past it); the models race them against the survivors, and
//! count recoveries with the queue's `recovered` statistic (one per slot,
//! whoever did it).
//!
//! Run with
//! `RUSTFLAGS="--cfg loom" cargo test -p mmring-loom-tests --release --target-dir target/loom --test mpmc_recovery`.

#![cfg(loom)]

mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};

use common::check;
use loom::sync::Arc;
use loom::thread;
use mmring::error::TryPopError;
use mmring::raw::mpmc::{Control, RawQueue};
use mmring::sync::{AtomicU64, Ordering::Relaxed};

/// A pid no process has here (below 2^22: claims hold 22 bits of pid).
const DEAD_PID: u32 = 0x3f_fffe;

struct Mem {
    ctl: Control,
    words: Vec<AtomicU64>,
    cap: usize,
}

impl Mem {
    fn q(&self) -> RawQueue<'_> {
        RawQueue::new(&self.ctl, &self.words, self.cap)
    }
}

fn mem(cap: usize) -> Arc<Mem> {
    let words: Vec<AtomicU64> = (0..RawQueue::words_needed(cap, 1))
        .map(|_| AtomicU64::new(0))
        .collect();
    RawQueue::init_slots(&words, cap);
    Arc::new(Mem {
        ctl: Control::new(0),
        words,
        cap,
    })
}

/// The payload of the panic that plays a `SIGKILL`.
struct Killed;

/// Runs `op` as the dead process, which "dies" when its closure panics
/// with [`Killed`]; other panics are real failures. The default panic hook
/// stays quiet for `Killed` only.
fn die_inside(op: impl FnOnce()) {
    static QUIET: std::sync::Once = std::sync::Once::new();
    QUIET.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if info.payload().downcast_ref::<Killed>().is_none() {
                default(info);
            }
        }));
    });
    match catch_unwind(AssertUnwindSafe(op)) {
        Err(payload) if payload.downcast_ref::<Killed>().is_some() => {}
        Err(payload) => std::panic::resume_unwind(payload),
        Ok(()) => panic!("the dying operation finished"),
    }
}

fn killed() -> ! {
    std::panic::panic_any(Killed)
}

/// Which recovery a survivor runs: of dead producers' slots or of dead
/// consumers'.
#[derive(Clone, Copy)]
enum Side {
    Push,
    Pop,
}

/// A survivor thread that runs one recovery and returns how many slots it
/// recovered, noting "NAME recovered" if any.
fn survivor(
    m: &Arc<Mem>,
    seen: &common::Seen,
    name: &'static str,
    side: Side,
) -> thread::JoinHandle<usize> {
    let (m, seen) = (m.clone(), seen.clone());
    thread::spawn(move || {
        let q = m.q();
        let n = match side {
            Side::Push => q.recover_abandoned_push(),
            Side::Pop => q.recover_abandoned_pop(),
        };
        if n > 0 {
            seen.note(format!("{name} recovered"));
        }
        n
    })
}

/// A producer dies between claiming position 0 and publishing it; a live
/// producer pushes 7 at position 1 while two survivors race to recover.
/// Exactly one recovers the slot; the consumer then skips the hole and gets
/// 7, and nothing else.
#[test]
fn a_dead_producers_slot_is_recovered_exactly_once() {
    check(2, &["a recovered", "b recovered"], |seen| {
        let m = mem(2);
        die_inside(|| {
            let _ = m.q().as_pid(DEAD_PID).try_push_with(|_| killed());
        });
        let a = survivor(&m, &seen, "a", Side::Push);
        let b = survivor(&m, &seen, "b", Side::Push);
        let q = m.q();
        q.try_push_with(|w| w[0].store(7, Relaxed)).unwrap();
        let total = a.join().unwrap() + b.join().unwrap();
        assert_eq!(total, 1, "the dead producer's slot recovered {total} times");
        assert_eq!(q.try_pop_with(|w| w[0].load(Relaxed)), Ok(7));
        assert_eq!(
            q.try_pop_with(|w| w[0].load(Relaxed)),
            Err(TryPopError::Empty)
        );
        assert_eq!(m.ctl.snapshot().recovered, 1);
    });
}

/// A consumer dies between claiming position 0 (item 1) and freeing its
/// slot, with the queue full; two producers race to recover the slot while
/// the main thread pops item 2 and pushes 3 (the pop at 0 counted, so that
/// push never finds the queue full: it frees the slot itself if it gets
/// there first). Exactly one of the three frees it; 3 arrives, and item 1
/// is lost with the consumer (and only it).
#[test]
fn a_dead_consumers_slot_is_freed_exactly_once() {
    check(
        2,
        &["a recovered", "b recovered", "the push recovered"],
        |seen| {
            let m = mem(2);
            let q = m.q();
            q.try_push_with(|w| w[0].store(1, Relaxed)).unwrap();
            q.try_push_with(|w| w[0].store(2, Relaxed)).unwrap();
            die_inside(|| {
                let _ = q.as_pid(DEAD_PID).try_pop_with(|_| -> u64 { killed() });
            });
            let a = survivor(&m, seen, "a", Side::Pop);
            let b = survivor(&m, seen, "b", Side::Pop);
            assert_eq!(q.try_pop_with(|w| w[0].load(Relaxed)), Ok(2));
            assert_eq!(
                q.try_push_with(|w| w[0].store(3, Relaxed)),
                Ok(()),
                "the pop of 1 counted: never full"
            );
            let total = a.join().unwrap() + b.join().unwrap();
            assert!(total <= 1, "the dead consumer's slot freed {total} times");
            assert_eq!(m.ctl.snapshot().recovered, 1);
            if total == 0 {
                seen.note("the push recovered");
            }
            assert_eq!(q.try_pop_with(|w| w[0].load(Relaxed)), Ok(3));
            assert_eq!(
                q.try_pop_with(|w| w[0].load(Relaxed)),
                Err(TryPopError::Empty)
            );
        },
    );
}

/// A producer dies inside a batch of 2: both claims stored, the tail moved
/// past them, no payload written. Two survivors race to recover while a
/// consumer pops (which recovers, or finishes, the slots in its way on the
/// spot): both slots become holes exactly once, the consumer never gets a
/// value from them, and a later push arrives.
#[test]
fn a_dead_producers_batch_is_recovered_exactly_once() {
    check(
        2,
        &["a recovered", "b recovered", "the pop recovered"],
        |seen| {
            let m = mem(4);
            die_inside(|| {
                let _ = m.q().as_pid(DEAD_PID).push_batch_with(2, |_, _| killed());
            });
            let a = survivor(&m, seen, "a", Side::Push);
            let b = survivor(&m, seen, "b", Side::Push);
            let q = m.q();
            assert_eq!(
                q.try_pop_with(|w| w[0].load(Relaxed)),
                Err(TryPopError::Empty),
                "a hole or an unpublished slot is never an item"
            );
            let total = a.join().unwrap() + b.join().unwrap();
            assert!(total <= 2, "the batch's slots published {total} times");
            if total < 2 {
                seen.note("the pop recovered");
            }
            q.try_push_with(|w| w[0].store(9, Relaxed)).unwrap();
            assert_eq!(q.try_pop_with(|w| w[0].load(Relaxed)), Ok(9));
            assert_eq!(m.ctl.snapshot().recovered, 2);
        },
    );
}

/// A consumer dies inside a batch pop of 2 (both claims stored, the head
/// moved past them, nothing read), with the queue full; two producers race
/// to free the slots while the main thread pushes (which frees the slot in
/// its way on the spot: those pops counted). Both slots are freed exactly
/// once (the two items are lost with the consumer), and two new items fit
/// and arrive.
///
/// Regression: this family of models found that a survivor could "recover"
/// a slot a second time (a compare-and-swap from the hole mark to the same
/// hole mark succeeds) after reading the first recovery's claim but a stale
/// sequence; for a consumer's slot that second sequence store could have
/// un-published a new item. A survivor now stops at a claim that already is
/// the hole mark.
#[test]
fn a_dead_consumers_batch_is_freed_exactly_once() {
    check(
        2,
        &["a recovered", "b recovered", "the push recovered"],
        |seen| {
            let m = mem(2);
            let q = m.q();
            q.try_push_with(|w| w[0].store(1, Relaxed)).unwrap();
            q.try_push_with(|w| w[0].store(2, Relaxed)).unwrap();
            die_inside(|| {
                let _ = q.as_pid(DEAD_PID).pop_batch_with(2, |_, _| killed());
            });
            let a = survivor(&m, seen, "a", Side::Pop);
            let b = survivor(&m, seen, "b", Side::Pop);
            assert_eq!(
                q.try_push_with(|w| w[0].store(3, Relaxed)),
                Ok(()),
                "both pops counted: never full"
            );
            let total = a.join().unwrap() + b.join().unwrap();
            assert!(total <= 2, "the batch's slots freed {total} times");
            if total < 2 {
                seen.note("the push recovered");
            }
            q.try_push_with(|w| w[0].store(4, Relaxed)).unwrap();
            assert_eq!(q.try_pop_with(|w| w[0].load(Relaxed)), Ok(3));
            assert_eq!(q.try_pop_with(|w| w[0].load(Relaxed)), Ok(4));
            assert_eq!(m.ctl.snapshot().recovered, 2);
        },
    );
}

/// A producer claims the next position and dies before moving the tail,
/// racing a live producer that pushes 7. Either the dead claim came first
/// (position 0): the live producer helps the tail past it and pushes at 1,
/// and exactly one of two racing survivors turns 0 into a hole; or the
/// live producer won 0 and the dead claim on 1 lies outside the tail: it
/// never counted, nobody recovers it, and the next push helps the tail past
/// it (after which the pop that meets it recovers it on the spot). No push
/// is lost or delivered twice.
#[test]
fn a_producer_dead_before_moving_the_tail_is_stepped_past() {
    check(
        2,
        &["dead at 0", "dead at 1", "a recovered", "b recovered"],
        |seen| {
            let m = mem(4);
            let dying = {
                let m = m.clone();
                thread::spawn(move || m.q().as_pid(DEAD_PID).claim_push_and_stop())
            };
            let q = m.q();
            q.try_push_with(|w| w[0].store(7, Relaxed)).unwrap();
            assert!(dying.join().unwrap(), "an empty queue has room");
            let dead_at = if m.ctl.snapshot().tail == 2 { 0 } else { 1 };
            seen.note(format!("dead at {dead_at}"));
            let a = survivor(&m, seen, "a", Side::Push);
            let b = survivor(&m, seen, "b", Side::Push);
            let total = a.join().unwrap() + b.join().unwrap();
            assert_eq!(total, 1 - dead_at, "recovered {total} times");
            assert_eq!(q.try_pop_with(|w| w[0].load(Relaxed)), Ok(7));
            q.try_push_with(|w| w[0].store(8, Relaxed)).unwrap();
            // (dead at 1: behind the dead claim the push stepped past,
            // which the pop turns into a hole.)
            assert_eq!(q.try_pop_with(|w| w[0].load(Relaxed)), Ok(8));
            assert_eq!(
                q.try_pop_with(|w| w[0].load(Relaxed)),
                Err(TryPopError::Empty)
            );
            assert_eq!(m.ctl.snapshot().recovered, 1);
        },
    );
}

/// A consumer claims the next item and dies before moving the head,
/// racing a live consumer (queue of 2 holding 1 and 2). The live consumer
/// gets the other item, helping the head past the dead claim if it came
/// first. Then two producers race to free the dead consumer's slot while
/// the main thread pushes: exactly one frees it (moving the head past it
/// if nobody had; the main thread's push frees it on the spot if the head
/// is past it already), and the queue goes on: 3 and 4 arrive in order.
#[test]
fn a_consumer_dead_before_moving_the_head_is_stepped_past() {
    check(
        2,
        &["dead at 0", "dead at 1", "a recovered", "b recovered"],
        |seen| {
            let m = mem(2);
            let q = m.q();
            q.try_push_with(|w| w[0].store(1, Relaxed)).unwrap();
            q.try_push_with(|w| w[0].store(2, Relaxed)).unwrap();
            let dying = {
                let m = m.clone();
                thread::spawn(move || m.q().as_pid(DEAD_PID).claim_pop_and_stop())
            };
            let got = q.try_pop_with(|w| w[0].load(Relaxed)).unwrap();
            assert!(dying.join().unwrap(), "a full queue has an item");
            // The dead consumer holds the other position: 1 if we got item 1
            // (position 0), else 0.
            let dead_at = if got == 1 { 1 } else { 0 };
            seen.note(format!("dead at {dead_at}"));
            let a = survivor(&m, seen, "a", Side::Pop);
            let b = survivor(&m, seen, "b", Side::Pop);
            let pushed = q.try_push_with(|w| w[0].store(3, Relaxed)).is_ok();
            let total = a.join().unwrap() + b.join().unwrap();
            assert!(total <= 1, "the dead consumer's slot freed {total} times");
            assert_eq!(m.ctl.snapshot().recovered, 1);
            assert_eq!(m.ctl.snapshot().head, 2, "the head is past both");
            if !pushed {
                q.try_push_with(|w| w[0].store(3, Relaxed)).unwrap();
            }
            q.try_push_with(|w| w[0].store(4, Relaxed)).unwrap();
            assert_eq!(q.try_pop_with(|w| w[0].load(Relaxed)), Ok(3));
            assert_eq!(q.try_pop_with(|w| w[0].load(Relaxed)), Ok(4));
            assert_eq!(m.ctl.snapshot().recovered, 1);
        },
    );
}
