//! Loom models of the blocking synchronization types built on the wait
//! protocol (src/wait.rs): `EventWords` (set racing wait: no lost wake-up,
//! what the setter wrote before `set` is visible after the wait),
//! `SemaphoreWords` (2 permits, 3 contenders: never more than 2 holders,
//! everyone finishes, every permit comes back; a release wakes a blocked
//! acquirer; one permit orders its holders' accesses like a lock; the
//! holders table balances) and
//! `BarrierWords` (3 parties over two generations: one leader per
//! generation, nobody passes a generation before all have arrived in it;
//! take-over, abort, and a reset or a party giving up racing the arrival
//! that completes a round: every party learns the same outcome).
//!
//! Run with
//! `RUSTFLAGS="--cfg loom" cargo test -p mmring-loom-tests --release --target-dir target/loom --test sync_types`
//! (`LOOM_MAX_PREEMPTIONS` overrides each model's bound,
//! `MMRING_LOOM_VERBOSE=1` prints executions and outcomes).
//!
//! Under loom the futex is a condition variable and deadlines are ignored,
//! so every wait here is `wait_until(None)` / `acquire_until(None)`: a lost
//! wake-up leaves a thread asleep forever, which loom reports as a
//! deadlock. Each model lists the outcomes it must have explored
//! (`common::check`), so that it cannot pass by exploring only the easy
//! interleavings. Where the API does not let a model observe that a waiter
//! really slept, its doc says which mutation (a missing notify, a missing
//! fence) was shown to make it deadlock.

#![cfg(loom)]

mod common;

use std::collections::BTreeSet;

use common::check;
use loom::cell::UnsafeCell;
use loom::sync::Arc;
use loom::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use loom::thread;
use mmring::raw::barrier::{BarrierTimeoutError, BarrierWaitResult, BarrierWords};
use mmring::raw::event::EventWords;
use mmring::raw::semaphore::{ReleaseError, SemaphoreWords};

// ---------------------------------------------------------------- event

/// One waiter blocks in `wait_until(None)` on the main thread (the thread
/// loom preempts most freely); the other thread writes a payload, then
/// sets the event. The waiter must wake (a lost wake-up is a deadlock) and
/// must see the payload (`set` releases, `is_set` acquires: the payload is
/// Relaxed on both sides, so only the event orders it).
#[test]
fn event_set_wakes_a_waiter() {
    check(3, &["slept", "not yet asleep"], |seen| {
        let e = Arc::new(EventWords::new());
        let data = Arc::new(AtomicU32::new(0));
        let setter = {
            let (e, data) = (e.clone(), data.clone());
            thread::spawn(move || {
                // Relaxed: ordered by the event's Release store.
                data.store(42, Ordering::Relaxed);
                // Whether the waiter already registered decides which path
                // the wake-up takes (its re-check, or the futex wake).
                let slept = e.waiters() > 0;
                e.set();
                slept
            })
        };
        assert!(e.wait_until(None), "a wait without deadline returns set");
        // Relaxed: the wait's Acquire must have ordered the payload store.
        assert_eq!(
            data.load(Ordering::Relaxed),
            42,
            "payload written before set not visible"
        );
        seen.note(if setter.join().unwrap() {
            "slept"
        } else {
            "not yet asleep"
        });
        assert!(e.is_set());
        e.clear();
        assert!(!e.is_set());
    });
}

/// Two waiters (the main thread and one other) and one setter: `set` must
/// wake every sleeper, not just one. The setter notes how many waiters had
/// registered when it looked; the model must have explored both one and
/// both of them registered (asleep or about to be).
#[test]
fn event_set_wakes_every_waiter() {
    check(2, &["1 registered", "2 registered"], |seen| {
        let e = Arc::new(EventWords::new());
        let waiter = {
            let e = e.clone();
            thread::spawn(move || assert!(e.wait_until(None)))
        };
        let setter = {
            let e = e.clone();
            thread::spawn(move || {
                let registered = e.waiters();
                e.set();
                registered
            })
        };
        assert!(e.wait_until(None));
        waiter.join().unwrap();
        seen.note(format!("{} registered", setter.join().unwrap()));
    });
}

// ------------------------------------------------------------ semaphore

/// 2 permits (bounded at 2), 3 contenders each acquire (blocking), hold,
/// and release. A separate counter of holders, raised after the acquire
/// and lowered before the release, never exceeds 2; every contender
/// finishes (a lost wake-up is a deadlock); all permits come back, and a
/// release past the bound is refused.
///
/// A holder yields while it holds (its "work"): that is what lets loom run
/// a third contender into its sleep while both permits are out without
/// spending a preemption on it; without it no explored interleaving had a
/// contender asleep before a release (a release without its notify went
/// unnoticed).
#[test]
fn semaphore_two_permits_three_contenders() {
    check(2, &["two held at once", "found none left"], |seen| {
        let sem = Arc::new(SemaphoreWords::new(2, 2));
        let holding = Arc::new(AtomicUsize::new(0));
        let contender = {
            let (sem, holding, seen) = (sem.clone(), holding.clone(), seen.clone());
            move || {
                // Relaxed snapshot, for coverage only: a contender that
                // finds no permit left must wait for a release.
                if sem.available() == 0 {
                    seen.note("found none left");
                }
                assert!(
                    sem.acquire_until(None),
                    "a wait without deadline gets a permit"
                );
                // SeqCst: a plain total order on the holder count; the
                // semaphore's own ordering is what is under test.
                let before = holding.fetch_add(1, Ordering::SeqCst);
                assert!(before < 2, "a third holder while 2 permits were out");
                if before == 1 {
                    seen.note("two held at once");
                }
                // Work while holding: lets a third contender run (and go
                // to sleep) while both permits are out, without spending
                // a preemption on it.
                thread::yield_now();
                holding.fetch_sub(1, Ordering::SeqCst);
                sem.release().expect("a held permit can always be released");
            }
        };
        let a = thread::spawn(contender.clone());
        let b = thread::spawn(contender.clone());
        contender();
        a.join().unwrap();
        b.join().unwrap();
        assert_eq!(sem.available(), 2, "a permit was lost or duplicated");
        assert_eq!(sem.release(), Err(ReleaseError { max: 2 }));
        assert_eq!(sem.available(), 2);
    });
}

/// The blocking path on its own: both permits are taken up front, the main
/// thread (which loom preempts most freely) blocks in
/// `acquire_until(None)`, and another thread writes a payload, then
/// releases one permit. The acquirer must wake (a lost wake-up is a
/// deadlock) and, having taken the permit that release gave back, must see
/// the payload (the payload is Relaxed on both sides: only the semaphore's
/// Release/Acquire orders it). Cheaper than the three-contender model, so
/// it runs with a higher bound.
///
/// Coverage: loom 0.7 never runs the releaser to completion before the
/// acquirer's first look here, so the only outcome is "none at first"; the
/// acquirer going to sleep before the release is shown to be explored by
/// mutation (a `release` without its notify, or a notify without its
/// fence, deadlocks this model).
#[test]
fn semaphore_release_wakes_a_blocked_acquirer() {
    release_wakes_a_blocked_acquirer(SemaphoreWords::acquire_until);
}

/// The same with `acquire_until_without_recovery` (the blocking path of a
/// semaphore used to signal): it differs only between slices, which loom
/// never reaches (deadlines are ignored), but it is its own entry point.
#[test]
fn semaphore_release_wakes_an_acquirer_without_recovery() {
    release_wakes_a_blocked_acquirer(SemaphoreWords::acquire_until_without_recovery);
}

fn release_wakes_a_blocked_acquirer(
    acquire: fn(&SemaphoreWords, Option<std::time::Instant>) -> bool,
) {
    check(3, &["none at first"], move |seen| {
        let sem = Arc::new(SemaphoreWords::new(2, 2));
        assert!(sem.try_acquire() && sem.try_acquire());
        assert!(!sem.try_acquire());
        let data = Arc::new(AtomicU32::new(0));
        let releaser = {
            let (sem, data) = (sem.clone(), data.clone());
            thread::spawn(move || {
                // Relaxed: ordered by the release's AcqRel RMW.
                data.store(7, Ordering::Relaxed);
                sem.release().unwrap();
            })
        };
        // Relaxed snapshot, for coverage only.
        let quick = sem.available() == 1;
        assert!(acquire(&sem, None));
        // Relaxed: the acquire's RMW read the release's: it must order it.
        assert_eq!(
            data.load(Ordering::Relaxed),
            7,
            "what the releaser did is not visible"
        );
        seen.note(if quick {
            "acquired at once"
        } else {
            "none at first"
        });
        releaser.join().unwrap();
        assert_eq!(sem.available(), 0);
    });
}

/// A semaphore of one permit is a lock: two threads each take it, bump a
/// plain (non-atomic) counter in a loom `UnsafeCell`, and give it back.
/// Loom reports any access to the cell that is not ordered after the
/// previous holder's by happens-before, so this checks that `release`
/// publishes and `try_acquire` / `acquire_until` acquire — also on the fast
/// path, where the second taker finds the permit back at its first look
/// and no fence of the wait protocol is on the way.
#[test]
fn semaphore_of_one_permit_orders_its_holders() {
    check(3, &["main second", "other second"], |seen| {
        let sem = Arc::new(SemaphoreWords::new(1, 1));
        let cell = Arc::new(UnsafeCell::new(0u32));
        let bump = {
            let (sem, cell) = (sem.clone(), cell.clone());
            move || -> u32 {
                assert!(sem.acquire_until(None));
                // SAFETY: the single permit is held: no other thread
                // touches the cell until it is released (what is checked).
                let n = cell.with_mut(|p| unsafe {
                    *p += 1;
                    *p
                });
                sem.release().unwrap();
                n
            }
        };
        let other = thread::spawn(bump.clone());
        let first = bump();
        let second = other.join().unwrap();
        assert_eq!(first.max(second), 2, "an increment was lost");
        seen.note(if first == 2 {
            "main second"
        } else {
            "other second"
        });
        assert_eq!(sem.available(), 1);
        // SAFETY: both threads have finished.
        assert_eq!(cell.with(|p| unsafe { *p }), 2);
    });
}

/// The holders table (which process holds how many permits, used to give
/// back the permits of dead processes) must balance: two threads of this
/// process each acquire and release once, so afterwards the table must say
/// this process holds nothing. If it keeps a phantom count, a later
/// `recover_dead_holders` after this process exits would mint a permit
/// nobody released.
///
/// Regression: with the scan loads Relaxed, a release could miss the
/// entry that holds its count. The execution loom found
/// (T0 = main, T1 = other, both the same pid P):
///
/// 1. T0 takes a permit (2 → 1), scans the table: all 64 entries empty,
///    so it will create one — and is preempted before its CAS.
/// 2. T1 takes a permit (1 → 0), scans: empty; creates `h[0] = P|1`.
/// 3. T1 releases (0 → 1), scans: `h[0] = P|1` matches; preempted before
///    its CAS `P|1 → 0`.
/// 4. T0's create: CAS `h[0]` fails (it is `P|1`), CAS `h[1]` `0 → P|1`.
/// 5. T0 releases (1 → 2), scans: `h[0] = P|1`, CAS `→ 0` succeeds.
/// 6. T1's CAS on `h[0]` fails (it is 0); it rescans: `h[0]` loads 0 and
///    `h[1]` loads 0 — a stale Relaxed read: nothing orders T0's CAS of
///    step 4 before this load — so no entry matches and the release is
///    not recorded. `h[1] = P|1` stays: a phantom permit.
///
/// The scan loads are now `Acquire`.
#[test]
fn semaphore_holders_table_balances() {
    check(2, &[], |_| {
        let sem = Arc::new(SemaphoreWords::new(2, 2));
        let other = {
            let sem = sem.clone();
            thread::spawn(move || {
                assert!(sem.try_acquire());
                sem.release().unwrap();
            })
        };
        assert!(sem.try_acquire());
        sem.release().unwrap();
        other.join().unwrap();
        assert_eq!(sem.available(), 2);
        assert_eq!(
            sem.holders(),
            [],
            "holders table not balanced: a phantom permit"
        );
    });
}

// -------------------------------------------------------------- barrier

/// Branch budget for the barrier models. Every arrival scans the 64-entry
/// member table for this process's registration (`mark_arrived`); the
/// models register nobody, because a registration shared by all parties
/// (they are threads of one process) is a word every arrival loads and
/// stores, which multiplies the executions loom must explore without
/// checking anything more. The scans are loads of words nobody writes:
/// no interleavings, but more than loom's default 1,000 branches in all.
const BARRIER_BRANCHES: usize = 4_000;

/// Outcomes noted by the barrier models (like `common::Seen`, whose set
/// the shared runner keeps to itself).
#[derive(Clone, Default)]
struct Outcomes(std::sync::Arc<std::sync::Mutex<BTreeSet<String>>>);

impl Outcomes {
    fn note(&self, what: &str) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(what.to_owned());
    }
}

/// `common::check` with a larger branch budget (the shared runner takes
/// only the preemption bound): runs `f` under loom with `bound` preemptions
/// (`LOOM_MAX_PREEMPTIONS` overrides it), then checks that every outcome in
/// `expect` was seen in at least one execution.
fn check_branches<F>(bound: usize, branches: usize, expect: &[&str], f: F)
where
    F: Fn(&Outcomes) + Send + Sync + 'static,
{
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(bound);
    }
    builder.max_branches = builder.max_branches.max(branches);
    let seen = Outcomes::default();
    let executions = std::sync::Arc::new(std::sync::Mutex::new(0usize));
    {
        let (seen, executions) = (seen.clone(), executions.clone());
        builder.check(move || {
            *executions.lock().unwrap() += 1;
            f(&seen);
        });
    }
    let seen = seen.0.lock().unwrap();
    let executions = *executions.lock().unwrap();
    if std::env::var_os("MMRING_LOOM_VERBOSE").is_some() {
        eprintln!("{executions} executions, outcomes {seen:?}");
    }
    let missing: Vec<_> = expect.iter().filter(|e| !seen.contains(**e)).collect();
    assert!(
        missing.is_empty(),
        "loom explored {executions} executions but never one where {missing:?} \
         (seen: {seen:?}); the model no longer covers what it claims to"
    );
}

/// `parties` parties (the main thread and `parties - 1` others) wait
/// `rounds` times each. Before waiting in round r a party writes
/// `reached[me] = r + 1` (Relaxed: only the barrier orders it); after the
/// wait it checks that the next party (in a ring) has reached at least
/// r + 1: nobody passes a generation before all have arrived in it (with
/// one party missing, the missing one's predecessor in the ring has passed
/// and sees it), and the barrier publishes what a party did before
/// arriving. Each generation has exactly one leader, every party reports
/// its generation, and the state ends at (rounds, 0). A lost wake-up (or a
/// leader that does not start the next generation) leaves a party asleep:
/// loom reports the deadlock.
fn barrier_rounds(seen: &Outcomes, parties: usize, rounds: u32) {
    let b = Arc::new(BarrierWords::new(parties as u32));
    let reached: Arc<Vec<AtomicU32>> = Arc::new((0..parties).map(|_| AtomicU32::new(0)).collect());
    let party = {
        let (b, reached) = (b.clone(), reached.clone());
        move |me: usize| -> Vec<BarrierWaitResult> {
            (0..rounds)
                .map(|round| {
                    // Relaxed: the barrier's AcqRel arrival and Acquire
                    // pass must order it.
                    reached[me].store(round + 1, Ordering::Relaxed);
                    let r = b.wait_until(None).expect("no deadline, nobody dies");
                    assert_eq!(r.generation, round, "party {me} in the wrong generation");
                    let next = (me + 1) % parties;
                    // Relaxed: see the store above.
                    let at = reached[next].load(Ordering::Relaxed);
                    assert!(
                        at > round,
                        "party {me} passed generation {round} while party {next} had reached \
                         only round {at} (or its arrival was not published)"
                    );
                    r
                })
                .collect()
        }
    };
    let others: Vec<_> = (1..parties)
        .map(|me| {
            let party = party.clone();
            thread::spawn(move || party(me))
        })
        .collect();
    let mut results = vec![party(0)];
    results.extend(others.into_iter().map(|h| h.join().unwrap()));
    for round in 0..rounds as usize {
        let leaders: Vec<_> = (0..parties)
            .filter(|&p| results[p][round].is_leader)
            .collect();
        assert_eq!(leaders.len(), 1, "generation {round}: leaders {leaders:?}");
        seen.note(if leaders[0] == 0 {
            "main led"
        } else {
            "other led"
        });
    }
    assert_eq!(b.state(), (rounds, 0));
}

/// The required model: a barrier of 3 over two generations. Three threads
/// and six waits make a large model (bound 1: ~170,000 executions, ~16 s
/// on 2 cores; bound 2 did not finish in 10 minutes), so its preemption
/// bound is 1 — loom still switches freely at every blocking wait and
/// yield. The two-party model below covers the wait/wake protocol and the
/// barrier's memory ordering with a higher bound (a pass check loosened to
/// Relaxed is caught only there).
#[test]
fn barrier_of_three_over_two_generations() {
    check_branches(1, BARRIER_BRANCHES, &["main led", "other led"], |seen| {
        barrier_rounds(seen, 3, 2)
    });
}

/// A barrier of 2 over two generations, with preemption bound 3.
#[test]
fn barrier_of_two_over_two_generations() {
    check_branches(3, BARRIER_BRANCHES, &["main led", "other led"], |seen| {
        barrier_rounds(seen, 2, 2)
    });
}

/// A pid no process has (above any `pid_max`): a party killed long ago.
const DEAD_PID: u32 = 0x7fff_fff0;

/// Take-over of an abandoned barrier: its only registered party is dead,
/// and a dead party's arrival is still counted in generation 0. Two new
/// parties (threads) each take it over if they find it abandoned, register
/// and wait. Whatever the interleaving — both see it abandoned, or one
/// sees the other registered first — the dead arrival is dropped (so the
/// round waits for both new parties: exactly one leader, same generation),
/// and the rounds run to completion. Preemption bound 3 (about 4,000
/// executions). Freeing the dead entries *before* resetting the state was
/// caught here: a party that found no entry left arrived in the dead
/// party's round and passed alone, leaving the other asleep forever.
#[test]
fn barrier_take_over_by_two_new_parties() {
    check_branches(
        3,
        BARRIER_BRANCHES * 4,
        &["both took over", "one took over"],
        |seen| {
            let b = Arc::new(BarrierWords::abandoned(2, 0, 1, DEAD_PID));
            let party = {
                let b = b.clone();
                move || {
                    let took = b.take_over_if_abandoned();
                    b.register(mmring::pid::current());
                    let r = b.wait_until(None).expect("no deadline, nobody dies");
                    (took, r)
                }
            };
            let other = thread::spawn(party.clone());
            let (took0, r0) = party();
            let (took1, r1) = other.join().unwrap();
            assert!(took0 || took1, "nobody took the barrier over");
            seen.note(if took0 && took1 {
                "both took over"
            } else {
                "one took over"
            });
            assert_eq!(r0.generation, r1.generation, "{r0:?} {r1:?}");
            assert_eq!(r0.generation, 1, "the dead arrival was counted");
            assert!(r0.is_leader != r1.is_leader, "{r0:?} {r1:?}");
            assert_eq!(b.state(), (2, 0));
            // Live parties are registered now: nothing to take over.
            assert!(!b.take_over_if_abandoned());
        },
    );
}

/// `abort` wakes a party that arrived and waits in `await_round` (the way
/// a caller that waits in slices uses the barrier): the wait must end
/// (a missing notify leaves it asleep: loom reports the deadlock) and end
/// as broken, and a later arrival is refused until a reset.
#[test]
fn barrier_abort_wakes_a_waiter() {
    check_branches(3, BARRIER_BRANCHES, &["aborted"], |seen| {
        let b = Arc::new(BarrierWords::new(2));
        let a = b.arrive().expect("a fresh round");
        assert_eq!((a.generation, a.index, a.is_leader), (0, 0, false));
        let aborter = {
            let b = b.clone();
            thread::spawn(move || b.abort())
        };
        assert_eq!(b.await_round(0, None), Err(BarrierTimeoutError::Aborted));
        aborter.join().unwrap();
        assert_eq!(b.arrive(), Err(BarrierTimeoutError::Aborted));
        b.reset();
        assert_eq!(b.state(), (1, 0));
        assert!(!b.is_broken());
        seen.note("aborted");
    });
}

/// `reset` racing the arrival that completes a round: the waiter already
/// in the round learns exactly what happened — it passes if and only if
/// the other party's arrival completed generation 0 (as its leader);
/// otherwise the reset ended the round and the waiter reads it as broken
/// (the other party was then refused, or arrived in the fresh round).
/// Recording the reset without breaking the round first was the bug this
/// catches: a completion that won the race read as a reset.
#[test]
fn barrier_reset_races_a_completion() {
    check_branches(
        2,
        BARRIER_BRANCHES * 4,
        &["passed", "reset, refused", "reset, next round"],
        |seen| {
            let b = Arc::new(BarrierWords::new(2));
            b.arrive().expect("a fresh round");
            let other = {
                let b = b.clone();
                thread::spawn(move || b.arrive())
            };
            let resetter = {
                let b = b.clone();
                thread::spawn(move || b.reset())
            };
            let mine = b.await_round(0, None);
            let theirs = other.join().unwrap();
            resetter.join().unwrap();
            match (mine, theirs) {
                (Ok(()), Ok(a)) if a.generation == 0 && a.is_leader => seen.note("passed"),
                (Err(BarrierTimeoutError::Aborted), Err(BarrierTimeoutError::Aborted)) => {
                    seen.note("reset, refused")
                }
                (Err(BarrierTimeoutError::Aborted), Ok(a))
                    if a.generation == 1 && !a.is_leader && a.index == 0 =>
                {
                    seen.note("reset, next round")
                }
                other => panic!("inconsistent outcome {other:?}"),
            }
            assert!(!b.is_broken(), "a reset or a pass leaves no break");
        },
    );
}

/// `break_round` racing the arrival that completes the round — the path a
/// caller that waits in slices takes on every timeout and interrupt (the
/// Python binding's `wait` on a timeout or Ctrl-C). A barrier of 3: A and
/// B arrive first; then A gives up (`break_round`), B waits
/// (`await_round`) and C arrives last, all at once. All three must agree:
/// either the round passed for everyone (C led generation 0, A's
/// `break_round` reports the pass, B passes) or it broke for everyone (C
/// is refused, A and B see it broken), and the barrier stays broken only
/// then.
#[test]
fn barrier_break_round_races_a_completion() {
    check_branches(3, BARRIER_BRANCHES * 4, &["passed", "broke"], |seen| {
        let b = Arc::new(BarrierWords::new(3));
        let a = b.arrive().expect("a fresh round");
        b.arrive().expect("a fresh round");
        let giver_up = {
            let b = b.clone();
            thread::spawn(move || b.break_round(a.generation))
        };
        let last = {
            let b = b.clone();
            thread::spawn(move || b.arrive())
        };
        let waiter = b.await_round(0, None);
        let gave_up = giver_up.join().unwrap();
        let arrived = last.join().unwrap();
        match (gave_up, waiter, arrived) {
            (Ok(()), Ok(()), Ok(c)) if c.generation == 0 && c.is_leader && c.index == 2 => {
                assert!(!b.is_broken());
                assert_eq!(b.state(), (1, 0));
                seen.note("passed");
            }
            (
                Err(BarrierTimeoutError::Aborted),
                Err(BarrierTimeoutError::Aborted),
                Err(BarrierTimeoutError::Aborted),
            ) => {
                assert!(b.is_broken());
                assert_eq!(b.state().0, 0);
                seen.note("broke");
            }
            other => panic!("the parties disagree: {other:?}"),
        }
    });
}
