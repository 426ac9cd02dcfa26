//! SPSC ends that leave and come back, between real processes: a producer
//! restarted 100 times mid-stream (every third one killed with `SIGKILL`,
//! often asleep on a full ring), a consumer restarted likewise, a
//! supervisor that makes a ring with no end held and then starts both ends
//! as processes, and ends that drop and reopen while items stay queued.
//!
//! Every process but the test harness's own is this test binary started
//! again in a child role (see `common`); every wait has a watchdog. Waits
//! for a peer to attach yield the processor; nothing depends on a sleep.

mod common;

use std::path::Path;
use std::time::Instant;

use common::{Children, Rng, WATCHDOG, wait_until};
use mmring::spsc::{self, ByteConsumer, ByteProducer, Consumer, Producer};
use mmring::{AtomicArray, Counter, PopError, PushError, TryPopError};

/// Restarts of the producer (or consumer) in the restart tests.
const INSTANCES: usize = 100;
/// Every `KILL_EVERY`-th instance is killed with `SIGKILL` instead of
/// dropping its end.
const KILL_EVERY: usize = 3;

fn killed(instance: usize) -> bool {
    instance % KILL_EVERY == KILL_EVERY - 1
}

/// A value tagged with the instance that sent (or recorded) it.
fn tag(instance: usize, k: u64) -> u64 {
    ((instance as u64) << 32) | k
}

fn untag(v: u64) -> (usize, u64) {
    ((v >> 32) as usize, v & 0xffff_ffff)
}

/// Pops the next value for as long as it takes: a `Disconnected` means no
/// producer is attached right now (between two instances), so it waits for
/// one (yielding) and tries again. `None` once the ring is closed and
/// drained.
fn pop_across_restarts(rx: &mut Consumer<u64>, deadline: Instant) -> Option<u64> {
    loop {
        match rx.pop() {
            Ok(v) => return Some(v),
            Err(PopError::Closed) => return None,
            Err(PopError::Disconnected) => {
                assert!(Instant::now() < deadline, "watchdog: no producer came");
                std::thread::yield_now();
            }
        }
    }
}

/// Pushes `v` for as long as it takes: a `Disconnected` (full, and no
/// consumer attached right now) waits for one and tries again.
fn push_across_restarts(tx: &mut Producer<u64>, mut v: u64, deadline: Instant) {
    loop {
        match tx.push(v) {
            Ok(()) => return,
            Err(PushError::Disconnected(back)) => {
                assert!(Instant::now() < deadline, "watchdog: no consumer came");
                v = back;
                std::thread::yield_now();
            }
            Err(e) => panic!("nobody closes this ring: {e:?}"),
        }
    }
}

// ---------------------------------------------------------------------------
// 1. A producer restarted 100 times.
// ---------------------------------------------------------------------------

/// Values each producer instance pushes (a killed one is killed before).
const BLOCK: u64 = 200;
/// A small ring, so that producers often sleep on it full.
const RESTART_CAP: usize = 4;

/// The parent creates the ring with no end held and consumes it in a
/// thread; 100 producer processes attach one after the other. Each pushes
/// its block of values `(instance, 0 .. 200)` and exits (its drop gives
/// the role back, the ring stays open) — or, every third one, is killed
/// with `SIGKILL`: half of those asleep in `push` on the full ring (the
/// consumer is held back until the inspector shows one more waiter on
/// it), the other half once it has recorded a random number of pushes; the
/// next one takes the dead holder's role over. The consumer's handle is
/// never reopened: it sees every committed value exactly once and in
/// order — all 200 of an instance that exited, and for a killed one the
/// pushes it recorded (plus at most the one it committed before it could
/// record it) — then `Closed` once the parent closes the ring.
#[test]
fn a_producer_restarted_100_times_loses_and_repeats_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ring = d.join("ring");
    spsc::create::<u64>(&ring, RESTART_CAP).unwrap();
    let committed = AtomicArray::<u64>::create(d.join("committed"), INSTANCES).unwrap();
    // 1 while the consumer must not pop (so that a producer fills the
    // ring and goes to sleep on it).
    let hold = Counter::create(d.join("hold"), 0).unwrap();
    let held = Counter::open(d.join("hold")).unwrap();
    let mut rx = Consumer::<u64>::open(&ring).unwrap();
    let deadline = Instant::now() + WATCHDOG * 4;
    let consumer = std::thread::spawn(move || {
        let mut got = Vec::new();
        loop {
            wait_until("the parent to let the consumer go", || held.load() == 0);
            match pop_across_restarts(&mut rx, deadline) {
                Some(v) => got.push(v),
                None => return got,
            }
        }
    });
    let space_waiters = || match mmring::inspect::inspect(&ring).unwrap().body {
        mmring::inspect::Body::Ring { control, .. } => control.space_waiters,
        other => panic!("not a ring: {other:?}"),
    };

    let mut rng = Rng::new(0x5eed_7001);
    let mut kids = Children::new();
    let mut asleep_at_kill = 0;
    for i in 0..INSTANCES {
        let asleep = killed(i) && (i / KILL_EVERY) % 2 == 0;
        // A producer killed asleep leaves the count one too high (see
        // `wait.rs`): compare with the count before this one started.
        let before = space_waiters();
        if asleep {
            hold.store(1);
        }
        kids.spawn("child_restarted_producer", i, d, "");
        if asleep {
            kids.wait_for("the producer to sleep on the full ring", || {
                space_waiters() > before
            });
            kids.kill(i);
            asleep_at_kill += 1;
            hold.store(0);
        } else if killed(i) {
            let at = 1 + rng.below(BLOCK - 1);
            kids.wait_for("the producer to record its pushes", || {
                committed[i].load() >= at
            });
            kids.kill(i);
        } else {
            kids.wait_ok(i);
        }
    }
    // The end of the stream: the consumer drains, then gets Closed.
    Producer::<u64>::open(&ring).unwrap().close();
    let got = consumer.join().unwrap();
    kids.wait_all_ok();
    println!(
        "{} values from {INSTANCES} producers; {asleep_at_kill} killed asleep on the full ring",
        got.len()
    );

    let mut it = got.iter().map(|&v| untag(v)).peekable();
    for i in 0..INSTANCES {
        let mut n = 0u64;
        while let Some(&(inst, k)) = it.peek() {
            if inst != i {
                break;
            }
            assert_eq!(k, n, "instance {i}: value {k} where {n} was due");
            n += 1;
            it.next();
        }
        let recorded = committed[i].load();
        if killed(i) {
            assert!(
                n == recorded || n == recorded + 1,
                "killed instance {i}: {n} received, {recorded} recorded"
            );
        } else {
            assert_eq!(n, BLOCK, "instance {i} exited normally");
        }
    }
    assert_eq!(it.next(), None, "values out of instance order");
}

common::child_entry!(
    #[started_by(a_producer_restarted_100_times_loses_and_repeats_nothing)]
    fn child_restarted_producer(ctx: ChildCtx) {
        let i = ctx.index;
        let committed = AtomicArray::<u64>::open(ctx.path.join("committed")).unwrap();
        let mut tx = Producer::<u64>::open(ctx.path.join("ring")).unwrap();
        let deadline = Instant::now() + WATCHDOG;
        for k in 0..BLOCK {
            push_across_restarts(&mut tx, tag(i, k), deadline);
            committed[i].store(k + 1);
        }
        if killed(i) {
            // Hold the role, alive, until killed.
            wait_until("the kill", || false);
        }
        // Exits: the drop gives the role back; the ring stays open.
    }
);

// ---------------------------------------------------------------------------
// 2. A consumer restarted 100 times.
// ---------------------------------------------------------------------------

/// Values the parent's producer thread sends in all.
const STREAM: u64 = 4000;
/// Values each consumer instance that exits normally takes.
const TAKE: u64 = 30;
/// Room enough in the record ring for every value, each at most twice.
const RECORD_CAP: usize = 16384;

/// The parent produces 0 .. 4000 into a ring (of 4 slots) from a thread,
/// retrying a push that finds the ring full and no consumer attached;
/// 100 consumer processes attach one after the other. Each one reads a
/// value in place (`read_chunk`), records it in a second ring (of which it
/// is the producer, restarted along with it), and only then releases it —
/// so a value is never lost to a kill. Each instance takes 30 values; most
/// then exit (dropping their ends), every third one is killed with
/// `SIGKILL` once it has recorded a random number of them (mid-stream, or
/// idle holding its roles after its 30). The last drains the rest until
/// the parent's close. In the record: every value, in order, exactly once —
/// except that the last value a killed instance recorded may come again
/// from the next instance (killed after recording, before releasing).
#[test]
fn a_consumer_restarted_100_times_loses_and_repeats_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ring = d.join("ring");
    let record = d.join("record");
    spsc::create::<u64>(&ring, RESTART_CAP).unwrap();
    spsc::create::<u64>(&record, RECORD_CAP).unwrap();
    let progress = AtomicArray::<u64>::create(d.join("progress"), INSTANCES).unwrap();
    let mut tx = Producer::<u64>::open(&ring).unwrap();
    let deadline = Instant::now() + WATCHDOG * 4;
    let producer = std::thread::spawn(move || {
        for v in 0..STREAM {
            push_across_restarts(&mut tx, v, deadline);
        }
        tx.close();
    });

    let mut rng = Rng::new(0x5eed_7002);
    let mut kids = Children::new();
    for i in 0..INSTANCES {
        kids.spawn("child_restarted_consumer", i, d, "");
        if killed(i) {
            let at = 1 + rng.below(TAKE);
            kids.wait_for("the consumer to record", || progress[i].load() >= at);
            kids.kill(i);
        } else {
            kids.wait_ok(i);
        }
    }
    producer.join().unwrap();
    kids.wait_all_ok();

    let mut rx = Consumer::<u64>::open(&record).unwrap();
    let mut next = 0u64;
    let mut last_inst = 0usize;
    let mut repeats = 0;
    let mut previous: Option<(usize, u64)> = None;
    loop {
        let (inst, v) = match rx.try_pop() {
            Ok(x) => untag(x),
            Err(TryPopError::Empty) => break,
            Err(e) => panic!("reading the record: {e:?}"),
        };
        assert!(
            inst >= last_inst,
            "instance {inst} recorded after {last_inst}"
        );
        last_inst = inst;
        if v == next {
            next += 1;
        } else {
            // Only the last value of a killed instance, again from a later one.
            let ok = matches!(previous, Some((p, pv)) if pv == v && p < inst && killed(p))
                && v + 1 == next;
            assert!(
                ok,
                "value {v} from instance {inst} where {next} was due (previous {previous:?})"
            );
            repeats += 1;
        }
        previous = Some((inst, v));
    }
    assert_eq!(next, STREAM, "values missing from the record");
    assert_eq!(
        last_inst,
        INSTANCES - 1,
        "the last consumer drained the rest"
    );
    println!(
        "{STREAM} values through {INSTANCES} consumers; {repeats} recorded again after a kill"
    );
}

common::child_entry!(
    #[started_by(a_consumer_restarted_100_times_loses_and_repeats_nothing)]
    fn child_restarted_consumer(ctx: ChildCtx) {
        let i = ctx.index;
        let progress = AtomicArray::<u64>::open(ctx.path.join("progress")).unwrap();
        let mut rx = Consumer::<u64>::open(ctx.path.join("ring")).unwrap();
        let mut log = Producer::<u64>::open(ctx.path.join("record")).unwrap();
        let last = i == INSTANCES - 1;
        // The last one drains until the close; the others take TAKE values.
        let take = if last { u64::MAX } else { TAKE };
        let mut n = 0u64;
        while n < take {
            let chunk = match rx.read_chunk(1) {
                Ok(chunk) => chunk,
                Err(mmring::ChunkError::Closed) => break,
                Err(mmring::ChunkError::TooFewSlots(_)) => {
                    // Nothing yet: wait for the producer (yielding), no sleep.
                    wait_until("a value", || !rx.is_empty() || rx.is_closed());
                    continue;
                }
            };
            let v = chunk.get(0);
            // Recorded first, released after: a kill in between repeats v in
            // the record, never loses it.
            log.try_push(tag(i, v)).expect("the record ring has room");
            chunk.commit_all();
            n += 1;
            progress[i].store(n);
        }
        assert!(last || n == TAKE, "instance {i}: the ring closed early");
        if killed(i) {
            // Hold both roles, alive, until killed.
            wait_until("the kill", || false);
        }
    }
);

// ---------------------------------------------------------------------------
// 3. A supervisor makes the rings; both ends are started afterwards.
// ---------------------------------------------------------------------------

const SUPERVISED: u64 = 20_000;
const SUPERVISED_MSG: usize = 24;

fn message(i: u64) -> Vec<u8> {
    let len = (i % (SUPERVISED_MSG as u64 + 1)) as usize;
    (0..len).map(|k| (i as usize + k) as u8).collect()
}

/// The parent (a supervisor) creates a typed ring and a byte ring with no
/// end held, then starts a consumer process and a producer process, in
/// that order: the consumer finds no producer yet (`is_abandoned`, and a
/// blocking pop says `Disconnected` rather than waiting forever), sleeps in
/// `wait_for_peer` until one attaches, then receives everything in order
/// until the producer's close.
#[test]
fn a_supervisor_creates_the_rings_then_starts_both_ends() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    spsc::create::<u64>(d.join("ring"), 64).unwrap();
    spsc::create_bytes(d.join("bytes"), 16, SUPERVISED_MSG).unwrap();
    let consumer_ready = Counter::create(d.join("consumer_ready"), 0).unwrap();
    let mut kids = Children::new();
    kids.spawn("child_supervised_consumer", 0, d, "");
    kids.wait_for("the consumer to attach", || consumer_ready.load() == 1);
    kids.spawn("child_supervised_producer", 1, d, "");
    kids.wait_all_ok();
}

common::child_entry!(
    #[started_by(a_supervisor_creates_the_rings_then_starts_both_ends)]
    fn child_supervised_consumer(ctx: ChildCtx) {
        let mut rx = Consumer::<u64>::open(ctx.path.join("ring")).unwrap();
        let mut brx = ByteConsumer::open(ctx.path.join("bytes")).unwrap();
        assert!(rx.is_abandoned() && brx.is_abandoned(), "no producer yet");
        assert_eq!(rx.pop(), Err(PopError::Disconnected));
        assert_eq!(brx.pop(), Err(PopError::Disconnected));
        Counter::open(ctx.path.join("consumer_ready"))
            .unwrap()
            .store(1);
        // Asleep until the producer attaches (or, if it already came, pushed
        // everything and closed: then there is only draining left). After
        // that a blocking pop never says Disconnected: the producer closes
        // before it lets go.
        assert!(
            rx.wait_for_peer(WATCHDOG) || rx.is_closed(),
            "no producer came"
        );
        for i in 0..SUPERVISED {
            assert_eq!(rx.pop(), Ok(i));
        }
        assert_eq!(rx.pop(), Err(PopError::Closed));
        assert!(
            brx.wait_for_peer(WATCHDOG) || brx.is_closed(),
            "no producer came"
        );
        let mut buf = [0u8; SUPERVISED_MSG];
        for i in 0..SUPERVISED {
            let len = brx.pop_into(&mut buf).expect("byte message");
            assert_eq!(buf[..len], message(i)[..], "byte message {i}");
        }
        assert_eq!(brx.pop(), Err(PopError::Closed));
    }
);

common::child_entry!(
    #[started_by(a_supervisor_creates_the_rings_then_starts_both_ends)]
    fn child_supervised_producer(ctx: ChildCtx) {
        let mut tx = Producer::<u64>::open(ctx.path.join("ring")).unwrap();
        let mut btx = ByteProducer::open(ctx.path.join("bytes")).unwrap();
        assert!(
            !tx.is_abandoned() && !btx.is_abandoned(),
            "the consumer is there"
        );
        for i in 0..SUPERVISED {
            tx.push(i).unwrap();
        }
        tx.close();
        for i in 0..SUPERVISED {
            btx.push(&message(i)).unwrap();
        }
        btx.close();
    }
);

// ---------------------------------------------------------------------------
// 4. Ends dropped and reopened by other processes keep what is queued.
// ---------------------------------------------------------------------------

/// A producer process pushes 0 .. 10 and exits; a consumer process pops
/// 0 .. 5 and exits; another producer process pushes 10 .. 20 and exits
/// (nobody closed anything). The ring kept everything in between: the
/// parent, a new consumer, pops 5 .. 20, then gets `Disconnected`.
#[test]
fn dropped_ends_reopened_by_other_processes_keep_the_queue() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ring = d.join("ring");
    spsc::create::<u64>(&ring, 32).unwrap();
    let mut kids = Children::new();
    kids.spawn("child_push_range", 0, d, "0");
    kids.wait_ok(0);
    kids.spawn("child_pop_five", 1, d, "");
    kids.wait_ok(1);
    kids.spawn("child_push_range", 2, d, "10");
    kids.wait_ok(2);
    let mut rx = Consumer::<u64>::open(&ring).unwrap();
    assert_eq!((rx.len(), rx.is_closed()), (15, false));
    for v in 5..20 {
        assert_eq!(rx.pop(), Ok(v));
    }
    assert_eq!(rx.pop(), Err(PopError::Disconnected));
    kids.wait_all_ok();
    assert_open_with_no_producer(&ring);
}

fn assert_open_with_no_producer(path: &Path) {
    match mmring::inspect::inspect(path).unwrap().body {
        mmring::inspect::Body::Ring { control, .. } => {
            assert_eq!(control.producer, 0);
            assert_eq!(control.closed, 0);
        }
        other => panic!("not a ring: {other:?}"),
    }
}

common::child_entry!(
    #[started_by(dropped_ends_reopened_by_other_processes_keep_the_queue)]
    fn child_push_range(ctx: ChildCtx) {
        let from: u64 = ctx.arg_num();
        let mut tx = Producer::<u64>::open(ctx.path.join("ring")).unwrap();
        for v in from..from + 10 {
            tx.try_push(v).unwrap();
        }
    }
);

common::child_entry!(
    #[started_by(dropped_ends_reopened_by_other_processes_keep_the_queue)]
    fn child_pop_five(ctx: ChildCtx) {
        let mut rx = Consumer::<u64>::open(ctx.path.join("ring")).unwrap();
        assert_eq!(rx.len(), 10);
        for v in 0..5 {
            assert_eq!(rx.try_pop(), Ok(v));
        }
    }
);
