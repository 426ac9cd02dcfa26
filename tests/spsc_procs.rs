//! The SPSC ring between real, separate processes: every value arrives
//! exactly once and in order (10 million of them, through every push and
//! pop flavour), a blocking ping-pong, a producer (or consumer) killed with
//! `SIGKILL`, a ring that outlives its producer on disk, one producer at a
//! time (a dead one is taken over), close waking sleepers on either side,
//! and the errors for bad capacities and foreign files; byte messages far
//! larger than the ring carried in pieces, and a producer killed in the
//! middle of one. (Ends that leave and come back, restarted a hundred
//! times, are in `spsc_roles.rs`.)
//!
//! Every process but the test harness's own is this test binary started
//! again in a child role (see `common`); the parent waits for them with a
//! watchdog, and every wait for a flag in a shared `Counter` has one too.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{Children, Rng, WATCHDOG, wait_until, wrong_payload};

/// The watchdog for the two long runs (the 10 million values and the
/// 100,000 round trips): each takes about half a second on an idle 2-core
/// machine, but 20-30 s when other processes keep both cores busy.
const LONG_WATCHDOG: Duration = Duration::from_secs(300);
use mmring::inspect::{Body, inspect};
use mmring::spsc::{ByteConsumer, ByteProducer, CLOSED_BY_PRODUCER, Consumer, Producer, Snapshot};
use mmring::{
    ChunkError, Closed, Counter, OpenError, Payload, PopError, PopTimeoutError, PushError,
    PushTimeoutError, TryPopError, TryPushError,
};

/// The ring's control words as `inspect` reports them, checking that the
/// file is a ring of `capacity` slots whose `len` agrees with them.
#[track_caller]
fn ring_state(path: &Path, capacity: u64) -> Snapshot {
    let report = inspect(path).unwrap();
    match report.body {
        Body::Ring {
            capacity: cap,
            len,
            control,
            pieces: None,
        } => {
            assert_eq!(cap, capacity, "capacity of {}", path.display());
            assert_eq!(len, control.tail.wrapping_sub(control.head).min(cap));
            control
        }
        other => panic!("{} is not a ring: {other:?}", path.display()),
    }
}

/// Items in the ring at `path`, as `inspect` reports them.
fn ring_len(path: &Path) -> u64 {
    match inspect(path).unwrap().body {
        Body::Ring { len, .. } => len,
        other => panic!("{} is not a ring: {other:?}", path.display()),
    }
}

/// The control words of the ring at `path` (any capacity).
fn control(path: &Path) -> Snapshot {
    match inspect(path).unwrap().body {
        Body::Ring { control, .. } => control,
        other => panic!("{} is not a ring: {other:?}", path.display()),
    }
}

/// Waits until a producer holds the ring's producer role (or the ring is
/// closed): before that, a blocking pop on the empty ring returns
/// `Disconnected` at once, since nobody holds the role it would wait on.
fn wait_for_producer<T: Payload>(rx: &Consumer<T>) {
    wait_until("a producer to attach", || {
        !rx.is_abandoned() || rx.is_closed()
    });
}

/// Waits until a consumer holds the ring's consumer role (or the ring is
/// closed): before that, a blocking push on a full ring returns
/// `Disconnected` at once.
fn wait_for_consumer<T: Payload>(tx: &Producer<T>) {
    wait_until("a consumer to attach", || {
        !tx.is_abandoned() || tx.is_closed()
    });
}

/// Opens a counter that the parent created.
fn counter(dir: &Path, name: &str) -> Counter {
    Counter::open(dir.join(name)).unwrap()
}

// ---------------------------------------------------------------------------
// 1. Ten million values, in order, through every push and pop flavour.
// ---------------------------------------------------------------------------

/// Slots of the streaming ring: small enough that both sides often find it
/// full or empty (and sleep), large enough for real batches.
const STREAM_CAP: usize = 1024;
/// Longest run of one push or pop flavour, and largest batch.
const MAX_RUN: u64 = 600;

/// How many values the stream test sends: the real ten million, debug
/// build included (about half a second on the 2-core machine).
const STREAM_LEN: u64 = 10_000_000;

/// One process pushes 0, 1, 2, ... (ten million values) and another pops
/// them, each switching at random between its flavours in runs of up to 600:
/// `try_push` (falling back to a blocking `push` when full), `push`,
/// `push_slice` batches and `write_chunk`s (filled by `fill_from_iter`,
/// `copy_from_slice` or `set`) on one side; `pop`,
/// `try_pop`, `pop_slice` batches and `read_chunk`s (read through `iter`,
/// `copy_to_slice`, `get` and by value, sometimes committed only in part)
/// on the other.
/// The consumer checks every value against the next expected number, then
/// finds the ring closed (the producer closed it before dropping its end)
/// and drained through every pop flavour. Afterwards both roles are given
/// back and both indices stand at ten million.
#[test]
fn ten_million_values_arrive_in_order_across_processes() {
    let n = STREAM_LEN;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let received = Counter::create(d.join("received"), -1).unwrap();
    let started = Instant::now();
    let mut kids = Children::new();
    // Both sides `open_or_create` the ring: whichever comes first makes it.
    kids.spawn("child_stream_consumer", 0, d, &n.to_string());
    kids.spawn("child_stream_producer", 1, d, &n.to_string());
    kids.wait_all_ok_within(LONG_WATCHDOG);
    let took = started.elapsed();
    println!(
        "{n} u64 between two processes in {:.2} s ({:.1} M/s, {} build)",
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64() / 1e6,
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    );

    assert_eq!(received.load(), n as i64);
    let ring = d.join("ring");
    let s = ring_state(&ring, STREAM_CAP as u64);
    assert_eq!((s.tail, s.head), (n, n), "indices after the stream");
    assert_eq!((s.producer, s.consumer), (0, 0), "roles not given back");
    assert_eq!(s.closed, CLOSED_BY_PRODUCER, "a dropped end does not close");
}

common::child_entry!(
    #[started_by(ten_million_values_arrive_in_order_across_processes)]
    fn child_stream_producer(ctx: ChildCtx) {
        let n: u64 = ctx.arg_num();
        let mut tx = Producer::<u64>::open_or_create(ctx.path.join("ring"), STREAM_CAP).unwrap();
        wait_for_consumer(&tx);
        let mut rng = Rng::new(0x5eed_0001);
        let mut batch: Vec<u64> = Vec::with_capacity(MAX_RUN as usize);
        let mut runs = [0u64; 4];
        let mut next = 0u64;
        while next < n {
            let run = (1 + rng.below(MAX_RUN)).min(n - next);
            let end = next + run;
            let flavour = rng.below(4) as usize;
            runs[flavour] += 1;
            match flavour {
                0 => {
                    for v in next..end {
                        match tx.try_push(v) {
                            Ok(()) => {}
                            Err(TryPushError::Full(back)) => {
                                assert_eq!(back, v, "try_push gave back another value");
                                tx.push(v).unwrap();
                            }
                            Err(e) => panic!("try_push({v}): {e:?}"),
                        }
                    }
                }
                1 => {
                    for v in next..end {
                        tx.push(v).unwrap();
                    }
                }
                2 => {
                    batch.clear();
                    batch.extend(next..end);
                    let mut done = 0;
                    while done < batch.len() {
                        match tx.push_slice(&batch[done..]).unwrap() {
                            // Full: sleep in a blocking push of the next one.
                            0 => {
                                tx.push(batch[done]).unwrap();
                                done += 1;
                            }
                            k => done += k,
                        }
                    }
                }
                _ => {
                    let mut v = next;
                    while v < end {
                        let want = (end - v) as usize;
                        let k = match tx.write_chunk(want) {
                            Ok(_) => want,
                            Err(ChunkError::TooFewSlots(free)) => {
                                assert!(free < want, "{free} free slots refused for {want}");
                                free
                            }
                            Err(e) => panic!("write_chunk({want}): {e:?}"),
                        };
                        if k == 0 {
                            tx.push(v).unwrap();
                            v += 1;
                            continue;
                        }
                        let mut chunk = tx.write_chunk(k).unwrap();
                        assert_eq!(chunk.len(), k);
                        match v % 3 {
                            0 => {
                                // As many as the iterator gives (all of them).
                                assert_eq!(chunk.fill_from_iter(v..v + k as u64), k);
                            }
                            1 => {
                                let vals: Vec<u64> = (v..v + k as u64).collect();
                                chunk.copy_from_slice(&vals);
                                chunk.commit_all();
                            }
                            _ => {
                                for i in 0..k {
                                    chunk.set(i, v + i as u64);
                                }
                                chunk.commit_all();
                            }
                        }
                        v += k as u64;
                    }
                }
            }
            next = end;
        }
        println!("producer: runs of try_push/push/push_slice/write_chunk: {runs:?}");
        // The end of the stream: the consumer drains, then gets Closed.
        // (Dropping `tx` alone would leave the ring open for a new producer.)
        tx.close();
    }
);

common::child_entry!(
    #[started_by(ten_million_values_arrive_in_order_across_processes)]
    fn child_stream_consumer(ctx: ChildCtx) {
        let n: u64 = ctx.arg_num();
        let received = counter(&ctx.path, "received");
        let mut rx = Consumer::<u64>::open_or_create(ctx.path.join("ring"), STREAM_CAP).unwrap();
        wait_for_producer(&rx);
        let mut rng = Rng::new(0x5eed_0002);
        let mut buf = vec![0u64; MAX_RUN as usize];
        let mut runs = [0u64; 4];
        let mut expect = 0u64;
        let mut check = |v: u64| {
            assert_eq!(v, expect, "value number {expect} out of order");
            expect += 1;
        };
        // `check` holds `expect` mutably: `got` mirrors it for the loop.
        let mut got = 0u64;
        while got < n {
            let run = (1 + rng.below(MAX_RUN)).min(n - got);
            let flavour = rng.below(4) as usize;
            runs[flavour] += 1;
            match flavour {
                0 => {
                    for _ in 0..run {
                        check(rx.pop().unwrap());
                    }
                    got += run;
                }
                1 => {
                    for _ in 0..run {
                        match rx.try_pop() {
                            Ok(v) => check(v),
                            Err(TryPopError::Empty) => check(rx.pop().unwrap()),
                            Err(e) => panic!("try_pop after {got}: {e:?}"),
                        }
                        got += 1;
                    }
                }
                2 => match rx.pop_slice(&mut buf[..run as usize]).unwrap() {
                    0 => {
                        check(rx.pop().unwrap());
                        got += 1;
                    }
                    k => {
                        buf[..k].iter().for_each(|&v| check(v));
                        got += k as u64;
                    }
                },
                _ => {
                    let want = run as usize;
                    let k = match rx.read_chunk(want) {
                        Ok(_) => want,
                        Err(ChunkError::TooFewSlots(avail)) => {
                            assert!(avail < want, "{avail} items refused for {want}");
                            avail
                        }
                        Err(e) => panic!("read_chunk({want}) after {got}: {e:?}"),
                    };
                    if k == 0 {
                        check(rx.pop().unwrap());
                        got += 1;
                        continue;
                    }
                    let chunk = rx.read_chunk(k).unwrap();
                    assert_eq!(chunk.len(), k);
                    // Sometimes release only the first half: the rest must come
                    // again, first, in the next read.
                    let keep = if got % 3 == 0 { k.div_ceil(2) } else { k };
                    match got % 4 {
                        0 => {
                            chunk.iter().take(keep).for_each(&mut check);
                            chunk.commit(keep);
                        }
                        1 => {
                            chunk.copy_to_slice(&mut buf[..keep]);
                            buf[..keep].iter().for_each(|&v| check(v));
                            chunk.commit(keep);
                        }
                        2 => {
                            // By value: the items yielded are committed when
                            // the iterator drops, the rest stay.
                            chunk.into_iter().take(keep).for_each(&mut check);
                        }
                        _ => {
                            (0..keep).for_each(|i| check(chunk.get(i)));
                            chunk.commit(keep);
                        }
                    }
                    got += keep as u64;
                }
            }
        }
        assert_eq!(expect, n);
        // Everything arrived; the producer closed the ring when done.
        assert_eq!(rx.pop(), Err(PopError::Closed));
        assert_eq!(rx.try_pop(), Err(TryPopError::Closed));
        assert_eq!(
            rx.pop_timeout(Duration::from_millis(1)),
            Err(PopTimeoutError::Closed)
        );
        assert_eq!(rx.pop_slice(&mut buf), Err(Closed));
        assert!(matches!(rx.read_chunk(1), Err(ChunkError::Closed)));
        assert_eq!(rx.len(), 0);
        received.store(expect as i64);
        println!("consumer: runs of pop/try_pop/pop_slice/read_chunk: {runs:?}");
    }
);

// ---------------------------------------------------------------------------
// 2. Blocking ping-pong.
// ---------------------------------------------------------------------------

const ROUND_TRIPS: u64 = 100_000;

/// The answer to `v`: never `v` itself, so an echo of the wrong ring or a
/// stale slot does not pass.
fn reply(v: u64) -> u64 {
    v.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0xa5a5_a5a5
}

/// Two processes, two rings of 8 slots: one sends 0 .. 100,000 with a
/// blocking `push` and waits in a blocking `pop` for each answer, the other
/// answers each one as it comes. Both check every value; the first closes
/// when done, the second sees `Closed` after exactly 100,000 and closes its
/// ring in turn, which the first sees.
#[test]
fn blocking_ping_pong_between_two_processes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let started = Instant::now();
    let mut kids = Children::new();
    kids.spawn("child_pinger", 0, d, "");
    kids.spawn("child_ponger", 1, d, "");
    kids.wait_all_ok_within(LONG_WATCHDOG);
    let took = started.elapsed();
    println!(
        "{ROUND_TRIPS} blocking round trips in {:.2} s ({:.1} us each, both processes included)",
        took.as_secs_f64(),
        took.as_secs_f64() * 1e6 / ROUND_TRIPS as f64
    );
    let ping = control(&d.join("ping"));
    let pong = control(&d.join("pong"));
    assert_eq!((ping.tail, ping.head), (ROUND_TRIPS, ROUND_TRIPS));
    assert_eq!((pong.tail, pong.head), (ROUND_TRIPS, ROUND_TRIPS));
}

common::child_entry!(
    #[started_by(blocking_ping_pong_between_two_processes)]
    fn child_pinger(ctx: ChildCtx) {
        let mut tx = Producer::<u64>::open_or_create(ctx.path.join("ping"), 8).unwrap();
        let mut rx = Consumer::<u64>::open_or_create(ctx.path.join("pong"), 8).unwrap();
        wait_for_producer(&rx);
        for i in 0..ROUND_TRIPS {
            tx.push(i).unwrap();
            let r = rx.pop().unwrap();
            assert_eq!(r, reply(i), "answer to {i}");
        }
        tx.close();
        assert_eq!(rx.pop(), Err(PopError::Closed), "the ponger did not close");
    }
);

common::child_entry!(
    #[started_by(blocking_ping_pong_between_two_processes)]
    fn child_ponger(ctx: ChildCtx) {
        let mut rx = Consumer::<u64>::open_or_create(ctx.path.join("ping"), 8).unwrap();
        let mut tx = Producer::<u64>::open_or_create(ctx.path.join("pong"), 8).unwrap();
        wait_for_producer(&rx);
        let mut expect = 0u64;
        loop {
            match rx.pop() {
                Ok(v) => {
                    assert_eq!(v, expect, "ping number {expect}");
                    tx.push(reply(v)).unwrap();
                    expect += 1;
                }
                Err(PopError::Closed) => break,
                Err(e) => panic!("pop after {expect}: {e:?}"),
            }
        }
        assert_eq!(expect, ROUND_TRIPS);
        tx.close();
    }
);

// ---------------------------------------------------------------------------
// 3. A producer killed with SIGKILL.
// ---------------------------------------------------------------------------

const KILL_CAP: usize = 256;
/// The consumer has received at least this many before the kill.
const KILL_AFTER: i64 = 50_000;
/// Largest batch the killed producer pushes with one `push_slice`.
const KILL_BATCH: u64 = 64;

/// A producer pushes 0, 1, 2, ... without end (`try_push`, `push` and
/// `push_slice` batches), storing in a shared counter how many it has
/// pushed after each push that returned. Once the consumer (another
/// process) has received 50,000, the producer is killed with `SIGKILL`
/// wherever it is. The consumer must then receive exactly 0 .. n in order,
/// with n at least the count recorded (and at most one batch more: a push
/// commits before its count is stored), and then get `Disconnected`, not
/// hang and not `Closed` (nobody closed the ring: not the killed producer,
/// and not the consumer's exit either).
#[test]
fn a_producer_killed_mid_stream_leaves_every_committed_value() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let committed = Counter::create(d.join("committed"), 0).unwrap();
    let received = Counter::create(d.join("received"), 0).unwrap();
    let last = Counter::create(d.join("last"), -1).unwrap();
    let mut kids = Children::new();
    kids.spawn("child_endless_producer", 0, d, "");
    kids.spawn("child_until_disconnected", 1, d, "");
    kids.wait_for("the consumer to receive 50,000 values", || {
        received.load() >= KILL_AFTER
    });
    let producer = kids.pid(0);
    kids.kill(0);
    let recorded = committed.load();
    kids.wait_all_ok();

    let n = last.load();
    println!("killed after {recorded} recorded pushes; the consumer received {n}");
    assert!(n >= KILL_AFTER);
    assert!(
        n >= recorded && n - recorded <= KILL_BATCH as i64,
        "received {n}, recorded {recorded}"
    );
    let s = ring_state(&d.join("ring"), KILL_CAP as u64);
    assert_eq!((s.tail, s.head), (n as u64, n as u64));
    assert_eq!(s.closed, 0, "nobody closed");
    assert_eq!(
        s.producer, producer,
        "a killed producer keeps its role word"
    );
}

common::child_entry!(
    #[started_by(a_producer_killed_mid_stream_leaves_every_committed_value)]
    fn child_endless_producer(ctx: ChildCtx) {
        let committed = counter(&ctx.path, "committed");
        let mut tx = Producer::<u64>::open_or_create(ctx.path.join("ring"), KILL_CAP).unwrap();
        wait_for_consumer(&tx);
        let mut rng = Rng::new(0x5eed_0003);
        let mut next = 0u64;
        let deadline = Instant::now() + WATCHDOG;
        loop {
            match rng.below(3) {
                0 => match tx.try_push(next) {
                    Ok(()) => next += 1,
                    Err(TryPushError::Full(_)) => {
                        tx.push(next).unwrap();
                        next += 1;
                    }
                    Err(e) => panic!("try_push({next}): {e:?}"),
                },
                1 => {
                    tx.push(next).unwrap();
                    next += 1;
                }
                _ => {
                    let batch: Vec<u64> = (next..next + 1 + rng.below(KILL_BATCH)).collect();
                    next += tx.push_slice(&batch).unwrap() as u64;
                }
            }
            committed.store(next as i64);
            if next % 4096 == 0 {
                assert!(Instant::now() < deadline, "watchdog: never killed");
            }
        }
    }
);

common::child_entry!(
    #[started_by(a_producer_killed_mid_stream_leaves_every_committed_value)]
    fn child_until_disconnected(ctx: ChildCtx) {
        let received = counter(&ctx.path, "received");
        let committed = counter(&ctx.path, "committed");
        let mut rx = Consumer::<u64>::open_or_create(ctx.path.join("ring"), KILL_CAP).unwrap();
        wait_for_producer(&rx);
        let mut buf = [0u64; 32];
        let mut expect = 0u64;
        loop {
            let got = if expect % 3 == 0 {
                rx.pop_slice(&mut buf).unwrap()
            } else {
                0
            };
            if got > 0 {
                for &v in &buf[..got] {
                    assert_eq!(v, expect, "value number {expect} out of order");
                    expect += 1;
                }
            } else {
                match rx.pop() {
                    Ok(v) => {
                        assert_eq!(v, expect, "value number {expect} out of order");
                        expect += 1;
                    }
                    Err(PopError::Disconnected) => break,
                    Err(e) => panic!("pop after {expect}: {e:?}"),
                }
            }
            received.store(expect as i64);
        }
        // The producer is dead: its count is final.
        let recorded = committed.load() as u64;
        assert!(
            expect >= recorded && expect - recorded <= KILL_BATCH,
            "received {expect}, the producer recorded {recorded}"
        );
        // Still disconnected, still not closed; nothing more is there.
        assert_eq!(rx.try_pop(), Err(TryPopError::Empty));
        assert_eq!(rx.pop(), Err(PopError::Disconnected));
        assert_eq!(rx.pop_timeout(WATCHDOG), Err(PopTimeoutError::Disconnected));
        assert!(rx.is_abandoned() && !rx.is_closed());
        counter(&ctx.path, "last").store(expect as i64);
    }
);

const ASLEEP_VALUES: u64 = 1000;

/// The consumer is asleep in `pop()` on an empty ring (the inspector shows
/// it registered as a waiter) when its producer is killed: the pop returns
/// `Disconnected` (after the 1,000 values sent before), it does not sleep
/// on forever.
#[test]
fn a_consumer_asleep_in_pop_learns_that_its_producer_was_killed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ring = d.join("ring");
    let asleep = Counter::create(d.join("asleep"), 0).unwrap();
    let last = Counter::create(d.join("last"), -1).unwrap();
    let _pushed = Counter::create(d.join("pushed"), 0).unwrap();
    let mut kids = Children::new();
    kids.spawn("child_push_then_hang", 0, d, "");
    kids.spawn("child_sleep_until_disconnected", 1, d, "");
    kids.wait_for("the consumer to sleep in pop", || {
        asleep.load() == 1 && ring.exists() && control(&ring).data_waiters >= 1
    });
    kids.kill(0);
    kids.wait_all_ok();
    assert_eq!(last.load(), ASLEEP_VALUES as i64);
}

common::child_entry!(
    #[started_by(a_consumer_asleep_in_pop_learns_that_its_producer_was_killed)]
    fn child_push_then_hang(ctx: ChildCtx) {
        let mut tx = Producer::<u64>::open_or_create(ctx.path.join("ring"), 64).unwrap();
        wait_for_consumer(&tx);
        for v in 0..ASLEEP_VALUES {
            tx.push(v).unwrap();
        }
        counter(&ctx.path, "pushed").store(ASLEEP_VALUES as i64);
        // Hold the producer role, alive, until killed.
        let deadline = Instant::now() + WATCHDOG;
        while Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("watchdog: never killed");
    }
);

common::child_entry!(
    #[started_by(a_consumer_asleep_in_pop_learns_that_its_producer_was_killed)]
    fn child_sleep_until_disconnected(ctx: ChildCtx) {
        let mut rx = Consumer::<u64>::open_or_create(ctx.path.join("ring"), 64).unwrap();
        wait_for_producer(&rx);
        for v in 0..ASLEEP_VALUES {
            assert_eq!(rx.pop(), Ok(v));
        }
        let pushed = counter(&ctx.path, "pushed");
        wait_until("the producer to finish pushing", || {
            pushed.load() == ASLEEP_VALUES as i64
        });
        counter(&ctx.path, "asleep").store(1);
        assert_eq!(rx.pop(), Err(PopError::Disconnected));
        counter(&ctx.path, "last").store(ASLEEP_VALUES as i64);
    }
);

/// The mirror image: a producer process asleep in `push()` on a full ring
/// when its consumer (which had popped 0, 1, 2) is killed gets
/// `PushError::Disconnected` with its value. A new consumer process takes
/// the dead one's role over and continues from the published head: it
/// receives 3 .. 16 in order (the values left in the ring, then what the
/// producer pushes once it is there), then `Disconnected` once the producer
/// has exited (without closing: the ring stays open).
#[test]
fn a_producer_asleep_in_push_learns_that_its_consumer_was_killed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ring = d.join("ring");
    for name in ["attached", "phase", "popped"] {
        Counter::create(d.join(name), 0).unwrap();
    }
    let phase = counter(d, "phase");
    let mut kids = Children::new();
    kids.spawn("child_push_until_disconnected", 0, d, "");
    kids.spawn("child_pop_three_then_hang", 1, d, "");
    kids.wait_for("the producer to sleep in push", || {
        phase.load() == 2 && control(&ring).space_waiters >= 1
    });
    let killed = kids.pid(1);
    kids.kill(1);
    kids.wait_for("the producer to see the consumer gone", || {
        phase.load() == 3
    });
    assert_eq!(control(&ring).consumer, killed, "a dead holder's pid stays");
    kids.spawn("child_second_consumer", 2, d, "");
    kids.wait_all_ok();
    let s = ring_state(&ring, 8);
    assert_eq!((s.tail, s.head), (16, 16));
    assert_eq!((s.producer, s.consumer), (0, 0));
}

common::child_entry!(
    #[started_by(a_producer_asleep_in_push_learns_that_its_consumer_was_killed)]
    fn child_push_until_disconnected(ctx: ChildCtx) {
        let mut tx = Producer::<u64>::open_or_create(ctx.path.join("ring"), 8).unwrap();
        let attached = counter(&ctx.path, "attached");
        let phase = counter(&ctx.path, "phase");
        wait_until("the first consumer", || attached.load() == 1);
        for v in 0..3 {
            tx.try_push(v).unwrap();
        }
        phase.store(1);
        let popped = counter(&ctx.path, "popped");
        wait_until("the first consumer to pop three", || popped.load() == 3);
        for v in 3..11 {
            tx.try_push(v).unwrap();
        }
        assert!(matches!(tx.try_push(11), Err(TryPushError::Full(11))));
        phase.store(2);
        match tx.push(11) {
            Err(PushError::Disconnected(v)) => assert_eq!(v, 11),
            other => panic!("push with the consumer killed: {other:?}"),
        }
        phase.store(3);
        wait_until("the second consumer", || attached.load() == 2);
        for v in 11..16 {
            tx.push(v).unwrap();
        }
    }
);

common::child_entry!(
    #[started_by(a_producer_asleep_in_push_learns_that_its_consumer_was_killed)]
    fn child_pop_three_then_hang(ctx: ChildCtx) {
        let mut rx = Consumer::<u64>::open_or_create(ctx.path.join("ring"), 8).unwrap();
        counter(&ctx.path, "attached").store(1);
        let phase = counter(&ctx.path, "phase");
        wait_until("the first three values", || phase.load() == 1);
        for v in 0..3 {
            assert_eq!(rx.try_pop(), Ok(v));
        }
        counter(&ctx.path, "popped").store(3);
        let deadline = Instant::now() + WATCHDOG;
        while Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("watchdog: never killed");
    }
);

common::child_entry!(
    #[started_by(a_producer_asleep_in_push_learns_that_its_consumer_was_killed)]
    fn child_second_consumer(ctx: ChildCtx) {
        let mut rx = Consumer::<u64>::open(ctx.path.join("ring")).unwrap();
        assert_eq!(rx.len(), 8, "the values the dead consumer left");
        counter(&ctx.path, "attached").store(2);
        for v in 3..16 {
            assert_eq!(rx.pop(), Ok(v));
        }
        assert_eq!(rx.pop(), Err(PopError::Disconnected));
        assert!(!rx.is_closed());
    }
);

// ---------------------------------------------------------------------------
// 4. A ring on disk outlives its producer.
// ---------------------------------------------------------------------------

const PERSIST_CAP: usize = 4096;

fn persisted(i: u64) -> u64 {
    i.wrapping_mul(0x0123_4567_89ab_cdef).rotate_left(17)
}

/// On a real file system (under the target directory, not `/dev/shm`): a
/// process creates a ring, fills it and exits normally (its drop gives the
/// role back and leaves the ring open). With no process attached, the file
/// keeps the values: a producer can open it again (and finds it full), and
/// a new process opens it as consumer, pops all 4,096 in order, then gets
/// `Disconnected` (nobody produces, nobody closed). Once closed, no
/// producer can open it any more (`Closed`).
#[test]
fn a_ring_on_disk_outlives_its_producer() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let d = dir.path();
    let ring = d.join("ring");
    let mut kids = Children::new();
    kids.spawn("child_persist_writer", 0, d, "");
    kids.wait_ok(0);

    let s = ring_state(&ring, PERSIST_CAP as u64);
    assert_eq!((s.tail, s.head), (PERSIST_CAP as u64, 0));
    assert_eq!((s.producer, s.consumer), (0, 0), "roles not given back");
    assert_eq!(s.closed, 0, "a dropped end does not close");
    let tx = Producer::<u64>::open(&ring).unwrap();
    assert!(tx.is_full() && tx.is_abandoned());
    drop(tx);

    kids.spawn("child_persist_reader", 1, d, "");
    kids.wait_ok(1);
    let s = ring_state(&ring, PERSIST_CAP as u64);
    assert_eq!((s.tail, s.head), (PERSIST_CAP as u64, PERSIST_CAP as u64));
    assert_eq!(s.closed, 0);
    Consumer::<u64>::open(&ring).unwrap().close();
    match Producer::<u64>::open(&ring) {
        Err(OpenError::Closed { path }) => assert_eq!(path, ring),
        other => panic!("a producer opened a closed ring: {other:?}"),
    }
    kids.wait_all_ok();
}

common::child_entry!(
    #[started_by(a_ring_on_disk_outlives_its_producer)]
    fn child_persist_writer(ctx: ChildCtx) {
        let mut tx = Producer::<u64>::create(ctx.path.join("ring"), PERSIST_CAP).unwrap();
        for i in 0..PERSIST_CAP as u64 {
            tx.try_push(persisted(i)).unwrap();
        }
        assert!(matches!(tx.try_push(7), Err(TryPushError::Full(7))));
        assert_eq!(tx.len(), PERSIST_CAP);
        tx.region().flush().unwrap();
        // Exits normally: the drop gives the role back, the ring stays open.
    }
);

common::child_entry!(
    #[started_by(a_ring_on_disk_outlives_its_producer)]
    fn child_persist_reader(ctx: ChildCtx) {
        let mut rx = Consumer::<u64>::open(ctx.path.join("ring")).unwrap();
        assert_eq!(rx.len(), PERSIST_CAP);
        for i in 0..PERSIST_CAP as u64 {
            assert_eq!(rx.pop(), Ok(persisted(i)), "value number {i}");
        }
        assert_eq!(rx.pop(), Err(PopError::Disconnected));
        assert_eq!(rx.try_pop(), Err(TryPopError::Empty));
    }
);

// ---------------------------------------------------------------------------
// 5. One producer at a time; a dead one is taken over.
// ---------------------------------------------------------------------------

const FIRST: u64 = 300;
const POPPED_EARLY: u64 = 100;
const SECOND: u64 = 300;

/// The parent is the consumer. A first producer process pushes 0 .. 300 and
/// stays alive: the inspector shows it and the parent as the role holders;
/// a second producer, in another process or in the parent, is refused with
/// `RoleTaken` naming the first one's pid (and a second consumer in the
/// parent names the parent). Once the first producer is killed, a new
/// producer process is admitted, continues from the published tail (it
/// sees the 200 values the parent has not popped yet) and pushes 300 .. 600
/// before exiting: the parent receives 100 .. 600 in order, then
/// `Disconnected` (the producer left without closing).
#[test]
fn a_second_producer_is_refused_until_the_first_dies() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ring = d.join("ring");
    let me = std::process::id();
    let mut rx = Consumer::<u64>::create(&ring, 1024).unwrap();
    let ready = Counter::create(d.join("ready"), 0).unwrap();
    let mut kids = Children::new();
    kids.spawn("child_first_producer", 0, d, "");
    kids.wait_for("the first producer to push", || ready.load() == 1);
    let first = kids.pid(0);

    let s = ring_state(&ring, 1024);
    assert_eq!((s.producer, s.consumer), (first, me));
    assert_eq!((s.tail, s.head, s.closed), (FIRST, 0, 0));
    for v in 0..POPPED_EARLY {
        assert_eq!(rx.pop_timeout(WATCHDOG), Ok(v));
    }

    match Producer::<u64>::open(&ring) {
        Err(OpenError::RoleTaken { path, role, pid }) => {
            assert_eq!(
                (path.as_path(), role, pid),
                (ring.as_path(), "producer", first)
            );
        }
        other => panic!("a second producer was admitted: {other:?}"),
    }
    match Consumer::<u64>::open(&ring) {
        Err(OpenError::RoleTaken { role, pid, .. }) => assert_eq!((role, pid), ("consumer", me)),
        other => panic!("a second consumer was admitted: {other:?}"),
    }
    kids.spawn("child_refused_producer", 1, d, &first.to_string());
    kids.wait_ok(1);

    kids.kill(0);
    assert_eq!(
        ring_state(&ring, 1024).producer,
        first,
        "a dead holder's pid stays"
    );
    kids.spawn(
        "child_second_producer",
        2,
        d,
        &(FIRST - POPPED_EARLY).to_string(),
    );
    kids.wait_ok(2);

    for v in POPPED_EARLY..FIRST + SECOND {
        assert_eq!(rx.pop_timeout(WATCHDOG), Ok(v), "value number {v}");
    }
    assert_eq!(rx.pop_timeout(WATCHDOG), Err(PopTimeoutError::Disconnected));
    let s = ring_state(&ring, 1024);
    assert_eq!((s.producer, s.consumer), (0, me));
    assert_eq!(s.closed, 0);
    kids.wait_all_ok();
}

common::child_entry!(
    #[started_by(a_second_producer_is_refused_until_the_first_dies)]
    fn child_first_producer(ctx: ChildCtx) {
        let mut tx = Producer::<u64>::open(ctx.path.join("ring")).unwrap();
        for v in 0..FIRST {
            tx.try_push(v).unwrap();
        }
        counter(&ctx.path, "ready").store(1);
        let deadline = Instant::now() + WATCHDOG;
        while Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("watchdog: never killed");
    }
);

common::child_entry!(
    #[started_by(a_second_producer_is_refused_until_the_first_dies)]
    fn child_refused_producer(ctx: ChildCtx) {
        let first: u32 = ctx.arg_num();
        let ring = ctx.path.join("ring");
        for attempt in [
            Producer::<u64>::open(&ring),
            Producer::<u64>::open_or_create(&ring, 1024),
        ] {
            match attempt {
                Err(OpenError::RoleTaken { role, pid, .. }) => {
                    assert_eq!((role, pid), ("producer", first));
                }
                other => panic!("a second producer was admitted: {other:?}"),
            }
        }
    }
);

common::child_entry!(
    #[started_by(a_second_producer_is_refused_until_the_first_dies)]
    fn child_second_producer(ctx: ChildCtx) {
        let waiting: usize = ctx.arg_num();
        let mut tx = Producer::<u64>::open(ctx.path.join("ring")).unwrap();
        assert_eq!(tx.len(), waiting, "items left by the dead producer");
        let values: Vec<u64> = (FIRST..FIRST + SECOND).collect();
        assert_eq!(tx.push_slice(&values), Ok(values.len()));
    }
);

// ---------------------------------------------------------------------------
// 6. Close wakes sleepers; timeouts; a 64-byte message; inspect.
// ---------------------------------------------------------------------------

/// A consumer process blocked in `pop()` on an empty ring is woken first by
/// a push and then by an explicit `close()` from the producer process
/// (which stays alive until the consumer reports `Closed`, so it is the
/// close, not the producer's exit, that ends the wait). Before that, with
/// the producer attached and alive, `pop_timeout` returns `Timeout`.
#[test]
fn a_blocked_pop_is_woken_by_the_producers_close() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for name in ["attached", "phase", "done"] {
        Counter::create(d.join(name), 0).unwrap();
    }
    let done = counter(d, "done");
    let mut kids = Children::new();
    kids.spawn("child_pop_until_closed", 0, d, "");
    kids.spawn("child_close_wakes_pop", 1, d, "");
    kids.wait_for("the consumer to see the close", || done.load() == 1);
    kids.wait_all_ok();
    let s = control(&d.join("ring"));
    assert_eq!((s.tail, s.head), (1, 1));
}

common::child_entry!(
    #[started_by(a_blocked_pop_is_woken_by_the_producers_close)]
    fn child_pop_until_closed(ctx: ChildCtx) {
        let mut rx = Consumer::<u64>::open_or_create(ctx.path.join("ring"), 16).unwrap();
        let attached = counter(&ctx.path, "attached");
        wait_until("the producer to attach", || attached.load() == 1);
        assert_eq!(
            rx.pop_timeout(Duration::from_millis(30)),
            Err(PopTimeoutError::Timeout)
        );
        assert_eq!(rx.try_pop(), Err(TryPopError::Empty));
        let phase = counter(&ctx.path, "phase");
        phase.store(1);
        assert_eq!(rx.pop(), Ok(42));
        phase.store(2);
        assert_eq!(rx.pop(), Err(PopError::Closed));
        counter(&ctx.path, "done").store(1);
    }
);

common::child_entry!(
    #[started_by(a_blocked_pop_is_woken_by_the_producers_close)]
    fn child_close_wakes_pop(ctx: ChildCtx) {
        let ring = ctx.path.join("ring");
        let mut tx = Producer::<u64>::open_or_create(&ring, 16).unwrap();
        counter(&ctx.path, "attached").store(1);
        // `phase` is set just before each blocking pop; the waiter count then
        // shows that pop registered to sleep (a pop_timeout before it has
        // deregistered by the time `phase` is set).
        let phase = counter(&ctx.path, "phase");
        wait_until("the consumer to sleep in pop", || {
            phase.load() == 1 && control(&ring).data_waiters >= 1
        });
        tx.try_push(42).unwrap();
        wait_until("the consumer to sleep in pop again", || {
            phase.load() == 2 && control(&ring).data_waiters >= 1
        });
        tx.close();
        assert!(matches!(tx.try_push(1), Err(TryPushError::Closed(1))));
        let done = counter(&ctx.path, "done");
        wait_until("the consumer to see the close", || done.load() == 1);
    }
);

/// A producer process blocked in `push()` on a full ring (after a
/// `push_timeout` there returned `Timeout` with the value) is woken by the
/// consumer process's explicit `close()` and gets `PushError::Closed` with
/// its value back; later pushes of every flavour are refused. The consumer
/// stays alive until then (so it is the close, not its exit, that ends the
/// wait) and can still drain the four values already in the ring.
#[test]
fn a_blocked_push_is_woken_by_the_consumers_close() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for name in ["attached", "full", "done"] {
        Counter::create(d.join(name), 0).unwrap();
    }
    let done = counter(d, "done");
    let mut kids = Children::new();
    kids.spawn("child_push_until_closed", 0, d, "");
    kids.spawn("child_close_wakes_push", 1, d, "");
    kids.wait_for("the producer to see the close", || done.load() == 1);
    kids.wait_all_ok();
}

common::child_entry!(
    #[started_by(a_blocked_push_is_woken_by_the_consumers_close)]
    fn child_push_until_closed(ctx: ChildCtx) {
        let mut tx = Producer::<u64>::open_or_create(ctx.path.join("ring"), 4).unwrap();
        let attached = counter(&ctx.path, "attached");
        wait_until("the consumer to attach", || attached.load() == 1);
        for v in 0..4 {
            tx.try_push(v).unwrap();
        }
        assert!(matches!(tx.try_push(4), Err(TryPushError::Full(4))));
        match tx.push_timeout(4, Duration::from_millis(30)) {
            Err(PushTimeoutError::Timeout(v)) => assert_eq!(v, 4),
            other => panic!("push_timeout on a full ring: {other:?}"),
        }
        counter(&ctx.path, "full").store(1);
        match tx.push(4) {
            Err(PushError::Closed(v)) => assert_eq!(v, 4),
            other => panic!("push on a ring closed by the consumer: {other:?}"),
        }
        assert!(matches!(tx.try_push(5), Err(TryPushError::Closed(5))));
        assert_eq!(tx.push_slice(&[6, 7]), Err(Closed));
        assert!(matches!(tx.write_chunk(1), Err(ChunkError::Closed)));
        assert_eq!(
            tx.push_timeout(8, WATCHDOG)
                .map_err(PushTimeoutError::into_inner),
            Err(8)
        );
        counter(&ctx.path, "done").store(1);
    }
);

common::child_entry!(
    #[started_by(a_blocked_push_is_woken_by_the_consumers_close)]
    fn child_close_wakes_push(ctx: ChildCtx) {
        let ring = ctx.path.join("ring");
        let mut rx = Consumer::<u64>::open_or_create(&ring, 4).unwrap();
        counter(&ctx.path, "attached").store(1);
        let full = counter(&ctx.path, "full");
        wait_until("the producer to sleep in push", || {
            full.load() == 1 && control(&ring).space_waiters >= 1
        });
        rx.close();
        let done = counter(&ctx.path, "done");
        wait_until("the producer to see the close", || done.load() == 1);
        for v in 0..4 {
            assert_eq!(rx.pop(), Ok(v));
        }
        assert_eq!(rx.pop(), Err(PopError::Closed));
    }
);

/// A 64-byte message.
type Wide = [u64; 8];
const WIDE_COUNT: u64 = 20_000;

fn wide(i: u64) -> Wide {
    std::array::from_fn(|k| i.wrapping_mul(k as u64 + 1) ^ ((k as u64) << 56))
}

/// `[u64; 8]` messages (64 bytes, several words each) between two processes
/// through a 32-slot ring, pushed one by one and in batches, popped one by
/// one and in batches: each arrives whole and in order.
#[test]
fn a_64_byte_message_type_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut kids = Children::new();
    kids.spawn("child_wide_producer", 0, d, "");
    kids.spawn("child_wide_consumer", 1, d, "");
    kids.wait_all_ok();
    let report = inspect(d.join("ring")).unwrap();
    assert_eq!(
        report.descriptor.type_info(),
        mmring::TypeInfo::of::<Wide>()
    );
    assert_eq!(report.descriptor.type_info().size, 64);
    assert_eq!(report.descriptor.slot_size, 64);
}

common::child_entry!(
    #[started_by(a_64_byte_message_type_round_trips)]
    fn child_wide_producer(ctx: ChildCtx) {
        let mut tx = Producer::<Wide>::open_or_create(ctx.path.join("ring"), 32).unwrap();
        wait_for_consumer(&tx);
        let mut i = 0;
        while i < WIDE_COUNT {
            if i % 100 < 50 {
                tx.push(wide(i)).unwrap();
                i += 1;
            } else {
                let batch: Vec<Wide> = (i..(i + 10).min(WIDE_COUNT)).map(wide).collect();
                match tx.push_slice(&batch).unwrap() {
                    0 => {
                        tx.push(batch[0]).unwrap();
                        i += 1;
                    }
                    k => i += k as u64,
                }
            }
        }
        tx.close();
    }
);

common::child_entry!(
    #[started_by(a_64_byte_message_type_round_trips)]
    fn child_wide_consumer(ctx: ChildCtx) {
        let mut rx = Consumer::<Wide>::open_or_create(ctx.path.join("ring"), 32).unwrap();
        wait_for_producer(&rx);
        let mut buf = [[0u64; 8]; 7];
        let mut i = 0;
        while i < WIDE_COUNT {
            let k = if i % 2 == 0 {
                rx.pop_slice(&mut buf).unwrap()
            } else {
                0
            };
            if k == 0 {
                assert_eq!(rx.pop(), Ok(wide(i)), "message number {i}");
                i += 1;
            }
            for m in &buf[..k] {
                assert_eq!(*m, wide(i), "message number {i}");
                i += 1;
            }
        }
        assert_eq!(rx.pop(), Err(PopError::Closed));
    }
);

/// `inspect` on a ring held by two live processes shows its capacity, how
/// many items are in it and both holders' pids; once the producer has
/// left (without closing), the producer's word is free and the ring still
/// open: the consumer drains it, then gets `Disconnected`.
#[test]
fn inspect_shows_a_rings_capacity_len_and_roles() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ring = d.join("ring");
    for name in ["attached", "go"] {
        Counter::create(d.join(name), 0).unwrap();
    }
    let go = counter(d, "go");
    let mut kids = Children::new();
    kids.spawn("child_inspected_producer", 0, d, "");
    kids.spawn("child_inspected_consumer", 1, d, "");
    let attached = counter(d, "attached");
    kids.wait_for("both ends to attach and 5 values to wait", || {
        attached.load() == 2 && ring_len(&ring) == 5
    });
    let s = ring_state(&ring, 64);
    assert_eq!((s.tail, s.head, s.closed), (5, 0, 0));
    assert_eq!((s.producer, s.consumer), (kids.pid(0), kids.pid(1)));
    let text = inspect(&ring).unwrap().to_string();
    assert!(text.contains("spsc ring"), "{text}");
    assert!(text.contains("capacity:    64"), "{text}");
    go.store(1);
    kids.wait_ok(0);
    let s = ring_state(&ring, 64);
    assert_eq!((s.producer, s.consumer), (0, kids.pid(1)));
    assert_eq!(s.closed, 0);
    go.store(2);
    kids.wait_all_ok();
    let s = ring_state(&ring, 64);
    assert_eq!((s.tail, s.head), (5, 5));
    assert_eq!((s.producer, s.consumer), (0, 0));
}

common::child_entry!(
    #[started_by(inspect_shows_a_rings_capacity_len_and_roles)]
    fn child_inspected_producer(ctx: ChildCtx) {
        let mut tx = Producer::<u64>::open_or_create(ctx.path.join("ring"), 64).unwrap();
        counter(&ctx.path, "attached").fetch_add(1);
        assert_eq!(tx.push_slice(&[10, 11, 12, 13, 14]), Ok(5));
        let go = counter(&ctx.path, "go");
        wait_until("the parent's go", || go.load() >= 1);
    }
);

common::child_entry!(
    #[started_by(inspect_shows_a_rings_capacity_len_and_roles)]
    fn child_inspected_consumer(ctx: ChildCtx) {
        let mut rx = Consumer::<u64>::open_or_create(ctx.path.join("ring"), 64).unwrap();
        counter(&ctx.path, "attached").fetch_add(1);
        let go = counter(&ctx.path, "go");
        wait_until("the parent's second go", || go.load() == 2);
        for v in 10..15 {
            assert_eq!(rx.pop(), Ok(v));
        }
        assert_eq!(rx.pop(), Err(PopError::Disconnected));
    }
);

// ---------------------------------------------------------------------------
// 7. Bad input.
// ---------------------------------------------------------------------------

/// Capacities 0, 3 and 2^40 are refused by every way of making a ring, with
/// `InvalidCapacity` naming the capacity, and leave no file behind (2^40
/// slots of 8 bytes would be 8 TiB: refused before any space is asked for).
#[test]
fn bad_capacities_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ring");
    for cap in [0usize, 3, 1 << 40] {
        let attempts: [(&str, Result<(), OpenError>); 5] = [
            (
                "Producer::create",
                Producer::<u64>::create(&path, cap).map(drop),
            ),
            (
                "Consumer::create",
                Consumer::<u64>::create(&path, cap).map(drop),
            ),
            (
                "Producer::open_or_create",
                Producer::<u64>::open_or_create(&path, cap).map(drop),
            ),
            (
                "Consumer::open_or_create",
                Consumer::<u64>::open_or_create(&path, cap).map(drop),
            ),
            (
                "channel",
                mmring::spsc::channel::<u64>(&path, cap).map(drop),
            ),
        ];
        for (what, res) in attempts {
            match res {
                Err(OpenError::InvalidCapacity { path: p, found, .. }) => {
                    assert_eq!((p.as_path(), found), (path.as_path(), cap as u64), "{what}");
                }
                other => panic!("{what} with capacity {cap}: {other:?}"),
            }
        }
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert!(left.is_empty(), "files left by capacity {cap}: {left:?}");
    }

    // An existing ring opened with another capacity is refused too.
    let _tx = Producer::<u64>::create(&path, 8).unwrap();
    match Consumer::<u64>::open_or_create(&path, 16) {
        Err(OpenError::InvalidCapacity { found: 8, .. }) => {}
        other => panic!("open_or_create with another capacity: {other:?}"),
    }
}

/// A ring of `u64` opened as a ring of another payload type (smaller,
/// same size but another type, larger) is `WrongPayload`, whichever end
/// asks; a counter opened as a ring, or a ring as a counter, is
/// `WrongKind`. None of them takes a role: the right opener still can.
#[test]
fn foreign_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ring = dir.path().join("ring");
    let _rx = Consumer::<u64>::create(&ring, 8).unwrap();

    wrong_payload(Producer::<u32>::open(&ring), "u32");
    wrong_payload(Producer::<i64>::open(&ring), "i64");
    wrong_payload(Producer::<f64>::open_or_create(&ring, 8), "f64");
    wrong_payload(Consumer::<[u64; 8]>::open(&ring), "[u64; 8]");
    wrong_payload(Consumer::<u8>::open_or_create(&ring, 8), "u8");

    let count = dir.path().join("count");
    let _c = Counter::create(&count, 5).unwrap();
    #[track_caller]
    fn wrong_kind<T>(res: Result<T, OpenError>, expected_kind: &str, found_kind: &str) {
        match res {
            // Each side is its kind, then " of " and its payload.
            Err(OpenError::WrongKind {
                expected, found, ..
            }) => assert_eq!(
                (
                    expected.split_once(" of ").map(|s| s.0),
                    found.split_once(" of ").map(|s| s.0)
                ),
                (Some(expected_kind), Some(found_kind)),
                "{expected} / {found}"
            ),
            Err(e) => panic!("expected WrongKind, got {e:?}"),
            Ok(_) => panic!("opened a {found_kind} as a {expected_kind}"),
        }
    }
    wrong_kind(Producer::<u64>::open(&count), "spsc ring", "counter");
    wrong_kind(Consumer::<u64>::open(&count), "spsc ring", "counter");
    wrong_kind(
        Producer::<i64>::open_or_create(&count, 1),
        "spsc ring",
        "counter",
    );
    wrong_kind(Counter::open(&ring), "counter", "spsc ring");

    // Nothing above took a role or changed the files.
    let mut tx = Producer::<u64>::open(&ring).unwrap();
    tx.try_push(1).unwrap();
    assert_eq!(Counter::open(&count).unwrap().load(), 5);
}

// ---------------------------------------------------------------------------
// Byte messages larger than one slot, carried in pieces.
// ---------------------------------------------------------------------------

/// Slots of the 4 KiB byte ring: 16 slots of 248 bytes (32 words each), 512
/// words in all.
const PIECE_SLOTS: usize = 16;
const PIECE_LEN: usize = 248;
/// The message the two processes exchange: 1 MiB, 256 times the ring.
const MIB: usize = 1 << 20;

/// The bytes of message `seed` of `len` bytes (reproducible in both
/// processes).
fn piece_message(seed: u64, len: usize) -> Vec<u8> {
    Rng::new(seed).bytes(len)
}

/// A 1 MiB message goes through a 4 KiB byte ring (16 slots of 248 bytes)
/// from one process to another, whole and byte for byte, then a short one
/// and a 4,000-byte one (16 full slots and a bit), then the close: the
/// producer streams the pieces as the consumer drains them.
#[test]
fn a_1_mib_message_goes_through_a_4_kib_ring_between_processes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ring = d.join("bytes");
    mmring::spsc::create_bytes(&ring, PIECE_SLOTS, PIECE_LEN).unwrap();
    let mut rx = ByteConsumer::open(&ring).unwrap();
    assert_eq!((rx.capacity(), rx.max_len()), (PIECE_SLOTS, PIECE_LEN));
    let mut kids = Children::new();
    kids.spawn("child_mib_producer", 0, d, "");
    assert!(rx.wait_for_peer(WATCHDOG) || rx.is_closed(), "no producer");
    let started = Instant::now();
    let got = rx.pop().unwrap();
    let took = started.elapsed();
    assert_eq!(got.len(), MIB);
    assert!(
        got == piece_message(1, MIB),
        "the 1 MiB message, byte for byte"
    );
    assert_eq!(rx.pop().unwrap(), b"short");
    let mut buf = vec![0u8; 8192];
    let n = rx.pop_into(&mut buf).unwrap();
    assert_eq!(buf[..n], piece_message(2, 4000)[..]);
    assert_eq!(rx.pop(), Err(PopError::Closed));
    kids.wait_all_ok();
    println!(
        "1 MiB through a 4 KiB ring in {:.1} ms",
        took.as_secs_f64() * 1e3
    );
}

common::child_entry!(
    #[started_by(a_1_mib_message_goes_through_a_4_kib_ring_between_processes)]
    fn child_mib_producer(ctx: ChildCtx) {
        let mut tx = ByteProducer::open(ctx.path.join("bytes")).unwrap();
        tx.push(&piece_message(1, MIB)).unwrap();
        tx.push(b"short").unwrap();
        tx.push(&piece_message(2, 4000)).unwrap();
        tx.close();
    }
);

/// A producer process killed with `SIGKILL` in the middle of a 64 KiB
/// message leaves nothing half-read. The kill is deterministic: the
/// producer fills the 4 KiB ring with the message's first pieces and sleeps
/// in `push` for room; the consumer (the parent) takes those pieces with a
/// `try_pop` (`Empty`: the message is not whole, its start is held in the
/// handle) and waits until the producer has filled the ring again, then the
/// producer is killed, 32 of its 265 pieces out. The consumer's `pop` reads
/// the rest that is there and returns `Disconnected` — no message, not a
/// part of one. A restarted producer process takes the dead one's role over
/// and sends a 10,000-byte message (streamed through the ring) and a short
/// one: both arrive whole, then `Disconnected` when it exits.
#[test]
fn a_producer_killed_mid_message_leaves_nothing_half_read() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ring = d.join("bytes");
    mmring::spsc::create_bytes(&ring, PIECE_SLOTS, PIECE_LEN).unwrap();
    let mut rx = ByteConsumer::open(&ring).unwrap();
    let mut kids = Children::new();
    kids.spawn("child_killed_mid_message", 0, d, "");
    kids.wait_for("the producer to fill the ring", || rx.is_full());
    // Takes the 16 pieces there (one ring's worth), no more: the producer
    // refills as they go.
    assert_eq!(rx.try_pop(), Err(TryPopError::Empty), "not whole yet");
    kids.wait_for("the producer to fill the ring again", || rx.is_full());
    let dead = kids.pid(0);
    kids.kill(0);
    assert_eq!(rx.pop(), Err(PopError::Disconnected), "no message in part");
    assert!(rx.is_empty() && rx.is_abandoned() && !rx.is_closed());
    assert_eq!(control(&ring).producer, dead, "the dead pid stays");

    kids.spawn("child_restarted_after_kill", 1, d, "");
    assert_eq!(rx.pop().unwrap(), piece_message(4, 10_000));
    assert_eq!(rx.pop().unwrap(), b"after the restart");
    kids.wait_ok(1);
    assert_eq!(rx.pop(), Err(PopError::Disconnected));
    kids.wait_all_ok();
}

common::child_entry!(
    #[started_by(a_producer_killed_mid_message_leaves_nothing_half_read)]
    fn child_killed_mid_message(ctx: ChildCtx) {
        let mut tx = ByteProducer::open(ctx.path.join("bytes")).unwrap();
        // 265 pieces: the consumer drains only the first 16, so this push
        // sleeps for room until the process is killed.
        let _ = tx.push(&piece_message(3, 64 * 1024));
        panic!("the push returned: it should have been killed in it");
    }
);

common::child_entry!(
    #[started_by(a_producer_killed_mid_message_leaves_nothing_half_read)]
    fn child_restarted_after_kill(ctx: ChildCtx) {
        let mut tx = ByteProducer::open(ctx.path.join("bytes")).unwrap();
        tx.push(&piece_message(4, 10_000)).unwrap();
        tx.push(b"after the restart").unwrap();
    }
);
