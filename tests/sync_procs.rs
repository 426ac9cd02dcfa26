//! `Event`, `Semaphore` and `Barrier` used by real, separate processes,
//! including processes killed with `SIGKILL` while asleep in a wait or
//! while holding a permit: nobody else hangs.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Children, WATCHDOG, barrier};
use mmring::barrier::BarrierTimeoutError;
use mmring::inspect::{Body, inspect};
use mmring::{AtomicArray, Barrier, Counter, Event, Semaphore};

/// What `inspect` reports for the object at `path`.
fn body(path: &Path) -> Body {
    inspect(path).unwrap().body
}

/// Processes asleep in `Event::wait` on the event at `path`.
fn event_waiters(path: &Path) -> u32 {
    match body(path) {
        Body::Event { waiters, .. } => waiters,
        other => panic!("not an event: {other:?}"),
    }
}

/// (generation, parties arrived) of the barrier at `path`.
fn barrier_state(path: &Path) -> (u32, u32) {
    match body(path) {
        Body::Barrier {
            generation,
            arrived,
            ..
        } => (generation, arrived),
        other => panic!("not a barrier: {other:?}"),
    }
}

/// (available, holders, recovered) of the semaphore at `path`.
fn semaphore_state(path: &Path) -> (u64, Vec<(u32, u64)>, u64) {
    match body(path) {
        Body::Semaphore {
            available,
            holders,
            recovered,
            ..
        } => (available, holders, recovered),
        other => panic!("not a semaphore: {other:?}"),
    }
}

/// In a child that is there to be killed: sleeps until the parent kills
/// it, failing if that never happens.
fn sleep_until_killed() -> ! {
    std::thread::sleep(WATCHDOG);
    panic!("still alive after {WATCHDOG:?}: the parent never killed this process");
}

// ---------------------------------------------------------------------------
// Event

const EVENT_WAITERS: usize = 4;

/// Four processes asleep in `Event::wait` (the parent sees all four
/// registered as sleepers before anything is set) are all woken by one
/// `set` from a fifth process.
#[test]
fn one_set_wakes_every_sleeping_waiter() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("event");
    let _event = Event::create(&path).unwrap();
    let woken = Counter::create(dir.path().join("woken"), 0).unwrap();

    let mut kids = Children::new();
    for i in 0..EVENT_WAITERS {
        kids.spawn("child_event_waiter", i, dir.path(), "");
    }
    kids.wait_for("every waiter asleep on the event", || {
        event_waiters(&path) == EVENT_WAITERS as u32
    });
    assert_eq!(woken.load(), 0, "a waiter woke before the set");
    kids.spawn("child_event_setter", EVENT_WAITERS, dir.path(), "");
    kids.wait_all_ok();

    assert_eq!(woken.load(), EVENT_WAITERS as i64);
    assert_eq!(event_waiters(&path), 0);
}

/// The same with one of the sleepers killed by `SIGKILL` before the set:
/// the dead sleeper (which leaves the sleeper count one too high) does not
/// keep `set` from waking the three others.
#[test]
fn a_waiter_killed_asleep_does_not_stop_set_waking_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("event");
    let _event = Event::create(&path).unwrap();
    let woken = Counter::create(dir.path().join("woken"), 0).unwrap();

    let mut kids = Children::new();
    for i in 0..EVENT_WAITERS {
        kids.spawn("child_event_waiter", i, dir.path(), "");
    }
    kids.wait_for("every waiter asleep on the event", || {
        event_waiters(&path) == EVENT_WAITERS as u32
    });
    kids.kill(0);
    kids.spawn("child_event_setter", EVENT_WAITERS, dir.path(), "");
    kids.wait_all_ok();

    assert_eq!(woken.load(), EVENT_WAITERS as i64 - 1);
}

common::child_entry!(
    #[started_by(
        a_waiter_killed_asleep_does_not_stop_set_waking_the_others,
        one_set_wakes_every_sleeping_waiter
    )]
    fn child_event_waiter(ctx: ChildCtx) {
        let event = Event::open(ctx.path.join("event")).unwrap();
        let woken = Counter::open(ctx.path.join("woken")).unwrap();
        assert!(!event.is_set(), "set before anyone waited");
        assert!(event.wait_timeout(WATCHDOG), "never woken by the set");
        assert!(event.is_set());
        woken.fetch_add(1);
    }
);

common::child_entry!(
    #[started_by(
        a_waiter_killed_asleep_does_not_stop_set_waking_the_others,
        one_set_wakes_every_sleeping_waiter
    )]
    fn child_event_setter(ctx: ChildCtx) {
        Event::open(ctx.path.join("event")).unwrap().set();
    }
);

// ---------------------------------------------------------------------------
// Semaphore

const SEM_PERMITS: u64 = 2;
const SEM_PROCS: usize = 5;
const SEM_ROUNDS: i64 = 500;

/// A bounded semaphore of 2 permits, 5 processes each acquiring and
/// releasing it 500 times. A shared counter tracks the processes between
/// acquire and release (`fetch_add` right after acquiring, `fetch_sub`
/// right before releasing) and `fetch_max` keeps its peak: never more than
/// 2. Afterwards all permits are back and nobody is recorded as a holder.
#[test]
fn two_permits_five_processes_never_more_than_two_holders() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sem");
    let sem = Semaphore::create_bounded(&path, SEM_PERMITS).unwrap();
    let holding = Counter::create(dir.path().join("holding"), 0).unwrap();
    let peak = Counter::create(dir.path().join("peak"), 0).unwrap();
    let acquired = Counter::create(dir.path().join("acquired"), 0).unwrap();
    let _arrived = Counter::create(dir.path().join("arrived"), 0).unwrap();

    let mut kids = Children::new();
    for i in 0..SEM_PROCS {
        kids.spawn("child_sem_worker", i, dir.path(), "");
    }
    kids.wait_all_ok();

    println!("peak holders: {}", peak.load());
    assert!(
        peak.load() <= SEM_PERMITS as i64,
        "peak {} holders",
        peak.load()
    );
    assert!(peak.load() >= 1);
    assert_eq!(acquired.load(), SEM_PROCS as i64 * SEM_ROUNDS);
    assert_eq!(holding.load(), 0);
    assert_eq!(sem.available(), SEM_PERMITS);
    assert_eq!(sem.words().holders(), [], "holders left behind");
    assert_eq!(
        sem.words().recovered(),
        0,
        "a live holder's permit was recovered"
    );
    assert!(sem.release().is_err(), "more permits than the bound");
}

common::child_entry!(
    #[started_by(two_permits_five_processes_never_more_than_two_holders)]
    fn child_sem_worker(ctx: ChildCtx) {
        let sem = Semaphore::open(ctx.path.join("sem")).unwrap();
        let holding = Counter::open(ctx.path.join("holding")).unwrap();
        let peak = Counter::open(ctx.path.join("peak")).unwrap();
        let acquired = Counter::open(ctx.path.join("acquired")).unwrap();
        let arrived = Counter::open(ctx.path.join("arrived")).unwrap();
        let me = std::process::id();
        barrier(&arrived, SEM_PROCS);
        for round in 0..SEM_ROUNDS {
            assert!(
                sem.acquire_timeout(WATCHDOG),
                "no permit within {WATCHDOG:?}"
            );
            let now = holding.fetch_add(1) + 1;
            peak.fetch_max(now);
            assert!(now <= SEM_PERMITS as i64, "{now} holders at once");
            acquired.fetch_add(1);
            assert!(
                sem.words().holders().contains(&(me, 1)),
                "not recorded as a holder: {:?}",
                sem.words().holders()
            );
            if round % 4 == 0 {
                // Let the others run while holding, so holders overlap.
                std::thread::yield_now();
            }
            holding.fetch_sub(1);
            sem.release().unwrap();
        }
    }
);

/// A process acquires the only permit and is killed by `SIGKILL` while
/// holding it. `inspect` shows the dead process as the holder (and no
/// permit available); then another process's `acquire_timeout(10 s)`
/// succeeds, because the dead holder's permit is recovered.
#[test]
fn a_permit_of_a_holder_killed_holding_it_is_recovered() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sem");
    let sem = Semaphore::create_bounded(&path, 1).unwrap();
    let held = Counter::create(dir.path().join("held"), 0).unwrap();
    let _waiting = Counter::create(dir.path().join("waiting"), 0).unwrap();

    let mut kids = Children::new();
    kids.spawn("child_sem_holder", 0, dir.path(), "");
    kids.wait_for("the holder to take the permit", || held.load() == 1);
    let holder = kids.pid(0);
    assert_eq!(semaphore_state(&path), (0, vec![(holder, 1)], 0));
    kids.kill(0);

    // Dead, not yet recovered: inspect still lists it (as dead).
    assert_eq!(semaphore_state(&path), (0, vec![(holder, 1)], 0));
    let shown = inspect(&path).unwrap().to_string();
    assert!(
        shown.contains(&format!("held by pid {holder} (dead): 1 permit(s)")),
        "inspect output:\n{shown}"
    );

    kids.spawn("child_sem_acquirer", 1, dir.path(), &holder.to_string());
    kids.wait_all_ok();

    assert_eq!(semaphore_state(&path), (1, vec![], 1));
    assert_eq!(sem.words().recovered(), 1);
}

/// The same with the other process already asleep in `acquire_timeout(10
/// s)` when the holder is killed: it wakes with the recovered permit.
#[test]
fn a_sleeping_acquirer_gets_the_permit_of_a_holder_killed_meanwhile() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sem");
    let sem = Semaphore::create_bounded(&path, 1).unwrap();
    let held = Counter::create(dir.path().join("held"), 0).unwrap();
    let waiting = Counter::create(dir.path().join("waiting"), 0).unwrap();

    let mut kids = Children::new();
    kids.spawn("child_sem_holder", 0, dir.path(), "");
    kids.wait_for("the holder to take the permit", || held.load() == 1);
    let holder = kids.pid(0);
    kids.spawn("child_sem_acquirer", 1, dir.path(), &holder.to_string());
    kids.wait_for("the acquirer to start waiting", || waiting.load() == 1);
    kids.kill(0);
    kids.wait_all_ok();

    assert_eq!(semaphore_state(&path), (1, vec![], 1));
    assert_eq!(sem.words().recovered(), 1);
}

common::child_entry!(
    #[started_by(
        a_permit_of_a_holder_killed_holding_it_is_recovered,
        a_sleeping_acquirer_gets_the_permit_of_a_holder_killed_meanwhile
    )]
    fn child_sem_holder(ctx: ChildCtx) {
        let sem = Semaphore::open(ctx.path.join("sem")).unwrap();
        let held = Counter::open(ctx.path.join("held")).unwrap();
        assert!(sem.try_acquire(), "the permit was not free");
        held.store(1);
        sleep_until_killed();
    }
);

common::child_entry!(
    /// Arg: the pid of the holder that is (or will be) killed.
    #[started_by(
        a_permit_of_a_holder_killed_holding_it_is_recovered,
        a_sleeping_acquirer_gets_the_permit_of_a_holder_killed_meanwhile
    )]
    fn child_sem_acquirer(ctx: ChildCtx) {
        let dead: u32 = ctx.arg_num();
        let sem = Semaphore::open(ctx.path.join("sem")).unwrap();
        let waiting = Counter::open(ctx.path.join("waiting")).unwrap();
        assert!(
            !sem.try_acquire(),
            "the permit was free: the holder does not hold it"
        );
        waiting.store(1);
        assert!(
            sem.acquire_timeout(Duration::from_secs(10)),
            "the dead holder's permit was not recovered within 10 s: holders {:?}",
            sem.words().holders()
        );
        let me = std::process::id();
        assert_eq!(
            sem.words().holders(),
            [(me, 1)],
            "the dead holder {dead} is still listed"
        );
        assert_eq!(sem.words().recovered(), 1);
        sem.release().unwrap();
    }
);

// ---------------------------------------------------------------------------
// Barrier

const PARTIES: usize = 3;
const GENERATIONS: usize = 200;

/// Three processes pass a 3-party barrier 200 times. In every generation:
/// nobody leaves before all three have arrived (each counts its arrival
/// before waiting and checks the count after), every party is told the same
/// generation number, and exactly one of them is the leader.
#[test]
fn three_processes_pass_many_generations_with_one_leader_each() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("barrier");
    // The creator joins as a party; dropping the handle leaves.
    drop(Barrier::create(&path, PARTIES as u32).unwrap());
    let leaders = Counter::create(dir.path().join("leaders"), 0).unwrap();
    let leader_of = AtomicArray::<u32>::create(dir.path().join("leader_of"), GENERATIONS).unwrap();
    let arrivals = AtomicArray::<u32>::create(dir.path().join("arrivals"), GENERATIONS).unwrap();

    let mut kids = Children::new();
    for i in 0..PARTIES {
        kids.spawn("child_barrier_party", i, dir.path(), "");
    }
    kids.wait_all_ok();

    assert_eq!(leaders.load(), GENERATIONS as i64, "leaders in all");
    assert_eq!(
        leader_of.snapshot(),
        vec![1; GENERATIONS],
        "leaders per generation"
    );
    assert_eq!(arrivals.snapshot(), vec![PARTIES as u32; GENERATIONS]);
    assert_eq!(barrier_state(&path), (GENERATIONS as u32, 0));
}

common::child_entry!(
    #[started_by(three_processes_pass_many_generations_with_one_leader_each)]
    fn child_barrier_party(ctx: ChildCtx) {
        let b = Barrier::open(ctx.path.join("barrier")).unwrap();
        let leaders = Counter::open(ctx.path.join("leaders")).unwrap();
        let leader_of = AtomicArray::<u32>::open(ctx.path.join("leader_of")).unwrap();
        let arrivals = AtomicArray::<u32>::open(ctx.path.join("arrivals")).unwrap();
        for g in 0..GENERATIONS {
            arrivals[g].fetch_add(1);
            let r = b.wait_timeout(WATCHDOG).unwrap();
            assert_eq!(r.generation, g as u32);
            let arrived = arrivals[g].load();
            assert_eq!(
                arrived, PARTIES as u32,
                "left generation {g} with {arrived} arrived"
            );
            if r.is_leader {
                leaders.fetch_add(1);
                leader_of[g].fetch_add(1);
            }
        }
    }
);

/// A party joins a 2-party barrier (opens it) and is killed by `SIGKILL`
/// before it arrives. The other party, asleep in `wait_timeout(30 s)`,
/// returns `BarrierError::Broken` naming the dead party's pid instead of
/// hanging, and its arrival is withdrawn.
#[test]
fn a_party_killed_before_arriving_breaks_the_barrier() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("barrier");
    drop(Barrier::create(&path, 2).unwrap());
    let joined = Counter::create(dir.path().join("joined"), 0).unwrap();
    let broken_by = Counter::create(dir.path().join("broken_by"), 0).unwrap();

    let mut kids = Children::new();
    kids.spawn("child_barrier_absent", 0, dir.path(), "");
    kids.wait_for("the victim to join", || joined.load() == 1);
    let victim = kids.pid(0);
    kids.spawn("child_barrier_broken", 1, dir.path(), &victim.to_string());
    kids.wait_for("the other party to arrive", || {
        barrier_state(&path) == (0, 1)
    });
    kids.kill(0);
    kids.wait_all_ok();

    assert_eq!(broken_by.load(), i64::from(victim));
    assert_eq!(
        barrier_state(&path),
        (0, 0),
        "the arrival was not withdrawn"
    );
}

common::child_entry!(
    #[started_by(a_party_killed_before_arriving_breaks_the_barrier)]
    fn child_barrier_absent(ctx: ChildCtx) {
        let _b = Barrier::open(ctx.path.join("barrier")).unwrap();
        Counter::open(ctx.path.join("joined")).unwrap().fetch_add(1);
        sleep_until_killed();
    }
);

common::child_entry!(
    /// Arg: the pid of the party that will be killed.
    #[started_by(a_party_killed_before_arriving_breaks_the_barrier)]
    fn child_barrier_broken(ctx: ChildCtx) {
        let victim: u32 = ctx.arg_num();
        let b = Barrier::open(ctx.path.join("barrier")).unwrap();
        let broken_by = Counter::open(ctx.path.join("broken_by")).unwrap();
        let r = b.wait_timeout(Duration::from_secs(30));
        assert_eq!(r, Err(BarrierTimeoutError::Broken { pid: victim }));
        broken_by.store(i64::from(victim));
    }
);

/// A party of a 3-party barrier is killed while asleep in `wait`, after
/// arriving. Its arrival still counts: when the third party comes, the
/// round completes for both survivors (one leader). In the next round the
/// dead party can never arrive: both survivors get `Broken` with its pid
/// rather than hanging, and both arrivals are withdrawn.
#[test]
fn a_party_killed_while_waiting_breaks_only_the_next_round() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("barrier");
    drop(Barrier::create(&path, 3).unwrap());
    let leaders = Counter::create(dir.path().join("leaders"), 0).unwrap();
    let broken_by = AtomicArray::<u32>::create(dir.path().join("broken_by"), 3).unwrap();

    let mut kids = Children::new();
    kids.spawn("child_barrier_waiting_victim", 0, dir.path(), "");
    kids.wait_for("the victim to arrive", || barrier_state(&path) == (0, 1));
    let victim = kids.pid(0);
    kids.spawn("child_barrier_survivor", 1, dir.path(), &victim.to_string());
    kids.wait_for("a survivor to arrive", || barrier_state(&path) == (0, 2));
    kids.kill(0);
    kids.spawn("child_barrier_survivor", 2, dir.path(), &victim.to_string());
    kids.wait_all_ok();

    assert_eq!(leaders.load(), 1, "leaders of generation 0");
    assert_eq!(broken_by.snapshot(), [0, victim, victim]);
    assert_eq!(barrier_state(&path), (1, 0), "arrivals not withdrawn");
}

common::child_entry!(
    #[started_by(a_party_killed_while_waiting_breaks_only_the_next_round)]
    fn child_barrier_waiting_victim(ctx: ChildCtx) {
        let b = Barrier::open(ctx.path.join("barrier")).unwrap();
        let r = b.wait_timeout(WATCHDOG);
        panic!("the victim was not killed while waiting; its wait returned {r:?}");
    }
);

common::child_entry!(
    /// Arg: the pid of the party killed while waiting.
    #[started_by(a_party_killed_while_waiting_breaks_only_the_next_round)]
    fn child_barrier_survivor(ctx: ChildCtx) {
        let victim: u32 = ctx.arg_num();
        let b = Barrier::open(ctx.path.join("barrier")).unwrap();
        let leaders = Counter::open(ctx.path.join("leaders")).unwrap();
        let broken_by = AtomicArray::<u32>::open(ctx.path.join("broken_by")).unwrap();
        let first = b.wait_timeout(Duration::from_secs(30)).unwrap();
        assert_eq!(first.generation, 0);
        if first.is_leader {
            leaders.fetch_add(1);
        }
        let second = b.wait_timeout(Duration::from_secs(30));
        assert_eq!(second, Err(BarrierTimeoutError::Broken { pid: victim }));
        broken_by[ctx.index].store(victim);
    }
);
