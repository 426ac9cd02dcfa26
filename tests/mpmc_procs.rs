//! The MPMC queue between real, separate processes: 4 producers and 4
//! consumers deliver every message exactly once and in order per producer
//! (through every push and pop flavour), a joinable queue whose `join`
//! returns only once every item is done and whose one `close()` sends every
//! consumer home, byte messages of every length intact, a producer or a
//! consumer killed with `SIGKILL` mid-stream (nobody hangs, every committed
//! message is accounted for), the errors (task counting, bad
//! capacities, foreign files) with what `inspect` shows, and queues bounded
//! below their capacity (full at exactly the bound, never past it).
//!
//! Every process but the test harness's own is this test binary started
//! again in a child role (see `common`); the parent waits for them with a
//! watchdog, and every wait for a flag in a shared `Counter` has one too.
//!
//! Exactly-once is checked with a shared bitmap (`AtomicArray<u64>`, one bit
//! per producer and sequence number): a consumer sets the bit of every
//! message it gets with a compare-and-swap and fails if it was already set;
//! at the end the parent checks which bits are set.
//!
//! A victim is killed where the test wants it: the parent stops it with
//! `SIGSTOP` at random moments and reads the queue's words from the file
//! (as `docs/FORMAT.md` lays them out) until they show it there, then sends
//! `SIGKILL`. A kill left to chance almost always lands while the victim is
//! asleep or between operations, so it would hardly ever test recovery.
//! Two tests at the end of section 4 kill a process in the middle of a
//! `push_slice`/`pop_slice` batch while it stores its claims (they found
//! that a batch stored each slot's claim only just before writing it, which
//! blocked the queue for good).

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::peek::{Peek, ROLE_CONSUMER, ROLE_PRODUCER};
use common::{Children, Rng, WATCHDOG, barrier, is_stopped, signal, wait_until, wrong_payload};
use mmring::inspect::{Body, inspect};
use mmring::mpmc::{
    ByteQueue, FLAG_JOINABLE, JoinError, JoinTimeoutError, Queue, QueueOptions, TaskError,
};
use mmring::{
    AtomicArray, BytePushError, BytePushTimeoutError, ByteTryPushError, Closed, Counter, OpenError,
    Pod, PopError, PopTimeoutError, TryPopError, TryPushError, Zeroable,
};

/// The watchdog for the long runs: a few seconds on an idle 2-core machine,
/// many times that when other processes keep both cores busy. It catches
/// hangs, not slowness.
const LONG_WATCHDOG: Duration = Duration::from_secs(300);

/// One message: who sent it, its number in that producer's stream, and a
/// check word derived from both (a torn or mixed-up copy shows).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
#[repr(C)]
struct Msg {
    producer: u64,
    seq: u64,
    check: u64,
}
mmring::payload!(Msg);

impl Msg {
    fn new(producer: u64, seq: u64) -> Self {
        Self {
            producer,
            seq,
            check: Self::check_of(producer, seq),
        }
    }

    fn check_of(producer: u64, seq: u64) -> u64 {
        ((producer << 56) ^ seq ^ 0x5bd1_e995_0000_0000).wrapping_mul(0x9e37_79b9_7f4a_7c15)
    }

    /// Panics unless the message is whole and from one of `producers`.
    #[track_caller]
    fn validate(&self, producers: u64) {
        assert!(
            self.producer < producers && self.check == Self::check_of(self.producer, self.seq),
            "torn or foreign message {self:?}"
        );
    }
}

fn counter(dir: &Path, name: &str) -> Counter {
    Counter::open(dir.join(name)).unwrap()
}

/// The shared exactly-once bitmap: `per` bits for each producer.
struct Seen {
    bits: AtomicArray<u64>,
    per: u64,
}

impl Seen {
    fn words(producers: u64, per: u64) -> usize {
        (producers * per).div_ceil(64) as usize
    }

    fn create(path: &Path, producers: u64, per: u64) -> Self {
        Self {
            bits: AtomicArray::create(path, Self::words(producers, per)).unwrap(),
            per,
        }
    }

    fn open(path: &Path, per: u64) -> Self {
        Self {
            bits: AtomicArray::open(path).unwrap(),
            per,
        }
    }

    /// Marks message `seq` of `producer` as received; panics if it already
    /// was (a duplicate) or is out of range.
    #[track_caller]
    fn mark(&self, m: &Msg) {
        assert!(m.seq < self.per, "sequence out of range: {m:?}");
        let bit = m.producer * self.per + m.seq;
        let mask = 1u64 << (bit % 64);
        let word = &self.bits[(bit / 64) as usize];
        if word
            .fetch_update(|w| (w & mask == 0).then_some(w | mask))
            .is_err()
        {
            panic!("message received twice: {m:?}");
        }
    }

    fn is_set(&self, producer: u64, seq: u64) -> bool {
        let bit = producer * self.per + seq;
        self.bits[(bit / 64) as usize].load() & (1 << (bit % 64)) != 0
    }

    /// How many messages of `producer` were received.
    fn count(&self, producer: u64) -> u64 {
        self.count_below(producer, self.per)
    }

    /// How many messages of `producer` numbered below `n` were received.
    fn count_below(&self, producer: u64, n: u64) -> u64 {
        (0..n).filter(|&s| self.is_set(producer, s)).count() as u64
    }

    /// The sequence numbers of `producer` in `0..n` never received (at
    /// most 20 listed).
    fn missing(&self, producer: u64, n: u64) -> Vec<u64> {
        (0..n)
            .filter(|&s| !self.is_set(producer, s))
            .take(20)
            .collect()
    }
}

/// What one consumer saw of each producer: count and sum of the sequence
/// numbers (slots `(consumer * producers + producer) * 2` and `+ 1`).
struct Tally {
    stats: AtomicArray<u64>,
    producers: usize,
}

impl Tally {
    fn create(path: &Path, consumers: usize, producers: usize) -> Self {
        Self {
            stats: AtomicArray::create(path, consumers * producers * 2).unwrap(),
            producers,
        }
    }

    fn open(path: &Path, producers: usize) -> Self {
        Self {
            stats: AtomicArray::open(path).unwrap(),
            producers,
        }
    }

    fn add(&self, consumer: usize, m: &Msg) {
        let i = (consumer * self.producers + m.producer as usize) * 2;
        self.stats[i].fetch_add(1);
        self.stats[i + 1].fetch_add(m.seq);
    }

    /// (count, sum of sequence numbers) of `producer` over all consumers.
    fn of_producer(&self, producer: usize, consumers: usize) -> (u64, u64) {
        (0..consumers).fold((0, 0), |(n, s), c| {
            let i = (c * self.producers + producer) * 2;
            (n + self.stats[i].load(), s + self.stats[i + 1].load())
        })
    }

    /// Messages consumer `consumer` received.
    fn of_consumer(&self, consumer: usize) -> u64 {
        (0..self.producers)
            .map(|p| self.stats[(consumer * self.producers + p) * 2].load())
            .sum()
    }
}

/// One consumer's order check: per producer, the sequence numbers it gets
/// strictly increase (a consumer's claims move forward through the queue,
/// and a producer's messages sit in the queue in the order pushed).
struct Order {
    last: Vec<Option<u64>>,
}

impl Order {
    fn new(producers: usize) -> Self {
        Self {
            last: vec![None; producers],
        }
    }

    #[track_caller]
    fn check(&mut self, m: &Msg) {
        let last = &mut self.last[m.producer as usize];
        assert!(
            last.is_none_or(|l| m.seq > l),
            "producer {} out of order: {} after {last:?}",
            m.producer,
            m.seq
        );
        *last = Some(m.seq);
    }
}

/// Waits (yielding, with a watchdog of `limit`) until `cond` holds, failing
/// at once if a child exits unsuccessfully meanwhile.
fn wait_long(kids: &mut Children, what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        kids.check_none_failed();
        assert!(
            Instant::now() < deadline,
            "watchdog: gave up waiting for {what}"
        );
        // Polling interval only; nothing depends on it.
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The queue's control words and len/capacity as `inspect` reports them.
#[track_caller]
fn queue_state(path: &Path) -> (u64, u64, Option<u64>, mmring::mpmc::Snapshot) {
    match inspect(path).unwrap().body {
        Body::Queue {
            capacity,
            len,
            max_len,
            control,
        } => (capacity, len, max_len, control),
        other => panic!("{} is not a queue: {other:?}", path.display()),
    }
}

/// Pushes `msgs` (all of them), mixing `push`, `try_push`, `push_timeout`
/// and `push_slice` batches as `rng` picks.
fn push_mixed(q: &Queue<Msg>, rng: &mut Rng, msgs: &[Msg]) {
    let mut i = 0;
    while i < msgs.len() {
        match rng.below(8) {
            0 => {
                q.push(msgs[i]).unwrap();
                i += 1;
            }
            1 => {
                match q.try_push(msgs[i]) {
                    Ok(()) => {}
                    Err(TryPushError::Full(m)) => q.push_timeout(m, WATCHDOG).unwrap(),
                    Err(e) => panic!("try_push: {e:?}"),
                }
                i += 1;
            }
            2 => {
                q.push_timeout(msgs[i], WATCHDOG).unwrap();
                i += 1;
            }
            _ => {
                let end = msgs.len().min(i + 1 + rng.below(64) as usize);
                match q.push_slice(&msgs[i..end]).unwrap() {
                    0 => {
                        // Full: wait for room with a blocking push.
                        q.push_timeout(msgs[i], WATCHDOG).unwrap();
                        i += 1;
                    }
                    n => i += n,
                }
            }
        }
    }
}

/// Pops until the queue is closed and drained, mixing `pop_slice` batches,
/// `try_pop`, `pop` and `pop_timeout`; calls `got` for each message.
/// `blocking` pops use `pop_timeout(WATCHDOG)` or `pop`.
fn pop_mixed(q: &Queue<Msg>, rng: &mut Rng, mut got: impl FnMut(&Msg)) {
    let mut buf = [Msg::zeroed(); 64];
    loop {
        match rng.below(8) {
            0 => match q.try_pop() {
                Ok(m) => {
                    got(&m);
                    continue;
                }
                Err(TryPopError::Empty) => {}
                Err(TryPopError::Closed) => return,
            },
            1 => match q.pop() {
                Ok(m) => {
                    got(&m);
                    continue;
                }
                Err(PopError::Closed) => return,
                Err(e) => panic!("pop: {e:?}"),
            },
            2 => {}
            _ => {
                let max = 1 + rng.below(64) as usize;
                match q.pop_slice(&mut buf[..max]) {
                    Ok(0) => {}
                    Ok(n) => {
                        buf[..n].iter().for_each(&mut got);
                        continue;
                    }
                    Err(Closed) => return,
                }
            }
        }
        // Nothing there: wait for a message (or the close).
        match q.pop_timeout(WATCHDOG) {
            Ok(m) => got(&m),
            Err(PopTimeoutError::Closed) => return,
            Err(e) => panic!("pop_timeout: {e:?}"),
        }
    }
}

// ---------------------------------------------------------------------------
// 1. Four producers, four consumers, exactly once.
// ---------------------------------------------------------------------------

const MESH_PRODUCERS: usize = 4;
const MESH_CONSUMERS: usize = 4;
const MESH_CAP: usize = 1024;
/// Messages per producer. The 4 million take about 1.5 s in a debug build
/// on an idle 2-core machine (measured: batches move most of them), so
/// there is no scaled-down debug size.
const MESH_PER_PRODUCER: u64 = 1_000_000;

/// Four producer processes push 1 million messages each, four consumer
/// processes pop them, all at once, through every push and pop flavour; one `close()` after the producers finish stops
/// all four consumers. Every message is received exactly once (the bitmap:
/// no bit set twice, every bit set), whole, and per producer in increasing
/// order at each consumer; per producer the counts are `n` and the sums of
/// the sequence numbers `n(n-1)/2`.
#[test]
fn four_producers_four_consumers_deliver_every_message_exactly_once() {
    let n = MESH_PER_PRODUCER;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let q = Queue::<Msg>::create(d.join("q"), MESH_CAP).unwrap();
    let seen = Seen::create(&d.join("seen"), MESH_PRODUCERS as u64, n);
    let tally = Tally::create(&d.join("tally"), MESH_CONSUMERS, MESH_PRODUCERS);
    let _arrived = Counter::create(d.join("arrived"), 0).unwrap();
    let done = Counter::create(d.join("done"), 0).unwrap();

    let start = Instant::now();
    let mut kids = Children::new();
    for i in 0..MESH_PRODUCERS {
        kids.spawn("child_mesh_producer", i, d, &n.to_string());
    }
    for i in 0..MESH_CONSUMERS {
        kids.spawn("child_mesh_consumer", i, d, &n.to_string());
    }
    wait_long(&mut kids, "the producers to finish", LONG_WATCHDOG, || {
        done.load() == MESH_PRODUCERS as i64
    });
    q.close();
    kids.wait_all_ok_within(LONG_WATCHDOG);
    let took = start.elapsed();

    let per_consumer: Vec<u64> = (0..MESH_CONSUMERS).map(|c| tally.of_consumer(c)).collect();
    println!(
        "{} messages in {took:?}; per consumer {per_consumer:?}",
        n * MESH_PRODUCERS as u64
    );
    assert_eq!(per_consumer.iter().sum::<u64>(), n * MESH_PRODUCERS as u64);
    for p in 0..MESH_PRODUCERS {
        let missing = seen.missing(p as u64, n);
        assert!(
            missing.is_empty(),
            "producer {p}: never received {missing:?}"
        );
        assert_eq!(
            tally.of_producer(p, MESH_CONSUMERS),
            (n, n * (n - 1) / 2),
            "producer {p}"
        );
    }
    assert_eq!(q.len(), 0);
    assert!(q.is_closed());
}

/// Messages per producer through the one-slot queue.
const ONE_SLOT_PER_PRODUCER: u64 = 20_000;

/// The same four producer and four consumer processes (every push and pop
/// flavour, batches included) through a queue of capacity 1: a one-slot
/// hand-off, where "holds position p" and "free for position p + 1" must
/// never be confused. Every message arrives exactly once, whole, and per
/// producer in order at each consumer.
#[test]
fn a_one_slot_queue_delivers_every_message_exactly_once() {
    let n = ONE_SLOT_PER_PRODUCER;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let q = Queue::<Msg>::create(d.join("q"), 1).unwrap();
    assert_eq!(q.capacity(), 1);
    let seen = Seen::create(&d.join("seen"), MESH_PRODUCERS as u64, n);
    let tally = Tally::create(&d.join("tally"), MESH_CONSUMERS, MESH_PRODUCERS);
    let _arrived = Counter::create(d.join("arrived"), 0).unwrap();
    let done = Counter::create(d.join("done"), 0).unwrap();
    let mut kids = Children::new();
    for i in 0..MESH_PRODUCERS {
        kids.spawn("child_mesh_producer", i, d, &n.to_string());
    }
    for i in 0..MESH_CONSUMERS {
        kids.spawn("child_mesh_consumer", i, d, &n.to_string());
    }
    wait_long(&mut kids, "the producers to finish", LONG_WATCHDOG, || {
        done.load() == MESH_PRODUCERS as i64
    });
    q.close();
    kids.wait_all_ok_within(LONG_WATCHDOG);
    for p in 0..MESH_PRODUCERS {
        let missing = seen.missing(p as u64, n);
        assert!(
            missing.is_empty(),
            "producer {p}: never received {missing:?}"
        );
        assert_eq!(
            tally.of_producer(p, MESH_CONSUMERS),
            (n, n * (n - 1) / 2),
            "producer {p}"
        );
    }
    assert_eq!((q.len(), q.is_full()), (0, false));
}

common::child_entry!(
    #[started_by(
        a_one_slot_queue_delivers_every_message_exactly_once,
        four_producers_four_consumers_deliver_every_message_exactly_once
    )]
    fn child_mesh_producer(ctx: ChildCtx) {
        let n: u64 = ctx.arg_num();
        let q = Queue::<Msg>::open(ctx.path.join("q")).unwrap();
        let me = ctx.index as u64;
        let msgs: Vec<Msg> = (0..n).map(|s| Msg::new(me, s)).collect();
        let mut rng = Rng::new(0x4d45_5348 ^ me);
        barrier(
            &counter(&ctx.path, "arrived"),
            MESH_PRODUCERS + MESH_CONSUMERS,
        );
        push_mixed(&q, &mut rng, &msgs);
        counter(&ctx.path, "done").fetch_add(1);
    }
);

common::child_entry!(
    #[started_by(
        a_one_slot_queue_delivers_every_message_exactly_once,
        four_producers_four_consumers_deliver_every_message_exactly_once
    )]
    fn child_mesh_consumer(ctx: ChildCtx) {
        let n: u64 = ctx.arg_num();
        let q = Queue::<Msg>::open(ctx.path.join("q")).unwrap();
        let seen = Seen::open(&ctx.path.join("seen"), n);
        let tally = Tally::open(&ctx.path.join("tally"), MESH_PRODUCERS);
        let mut order = Order::new(MESH_PRODUCERS);
        let mut rng = Rng::new(0x434f_4e53 ^ ctx.index as u64);
        barrier(
            &counter(&ctx.path, "arrived"),
            MESH_PRODUCERS + MESH_CONSUMERS,
        );
        pop_mixed(&q, &mut rng, |m| {
            m.validate(MESH_PRODUCERS as u64);
            order.check(m);
            seen.mark(m);
            tally.add(ctx.index, m);
        });
        // Closed and drained: it stays that way.
        assert_eq!(q.try_pop(), Err(TryPopError::Closed));
        assert_eq!(q.pop_timeout(WATCHDOG), Err(PopTimeoutError::Closed));
    }
);

// ---------------------------------------------------------------------------
// 2. A joinable queue: join waits for every task, one close ends everyone.
// ---------------------------------------------------------------------------

const JOB_PRODUCERS: usize = 3;
const JOB_CONSUMERS: usize = 2;
const JOB_CAP: usize = 256;
const JOBS_EACH: u64 = 3_000;

/// Three producer processes push 3,000 jobs each into a joinable queue of
/// 256 slots; two consumer processes record each job (exactly-once bitmap,
/// a shared count), do a little work, and only then call `task_done`.
///
/// First the consumers are held back: the queue fills, and `join_timeout`
/// reports exactly 256 unfinished tasks. Then they start; once every push
/// has returned, the parent calls `join()`, and when it returns the count of
/// recorded jobs must be the total pushed (a `join` that returned early
/// would see fewer). Then one `close()` stops both consumers: each gets
/// `PopError::Closed` and exits 0, and a `task_done` more than there were
/// jobs is `TaskError::TooManyDone`.
#[test]
fn join_waits_for_every_task_and_one_close_stops_every_consumer() {
    let total = JOBS_EACH * JOB_PRODUCERS as u64;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let path = d.join("jobs");
    let q = Queue::<Msg>::create_with(&path, JOB_CAP, &QueueOptions::new().joinable(true)).unwrap();
    let seen = Seen::create(&d.join("seen"), JOB_PRODUCERS as u64, JOBS_EACH);
    let recorded = Counter::create(d.join("recorded"), 0).unwrap();
    let go = Counter::create(d.join("go"), 0).unwrap();
    let done = Counter::create(d.join("done"), 0).unwrap();
    let mut kids = Children::new();
    for i in 0..JOB_PRODUCERS {
        kids.spawn("child_job_producer", i, d, "");
    }
    for i in 0..JOB_CONSUMERS {
        kids.spawn("child_job_consumer", i, d, "");
    }

    // Nobody consumes yet: the producers fill the queue and wait for room.
    // Unfinished counts a push once the tail passed it; `len` once it is
    // published too: a batch moves the tail past all its positions first,
    // then publishes them one by one, so `len` may lag for a moment.
    kids.wait_for("the producers to fill the queue", || {
        q.unfinished() == JOB_CAP as u64 && q.len() == JOB_CAP
    });
    assert_eq!(q.len(), JOB_CAP);
    assert_eq!(
        q.join_timeout(Duration::from_millis(20)),
        Err(JoinTimeoutError::Timeout(JOB_CAP as u64))
    );
    assert_eq!(recorded.load(), 0);

    go.store(1);
    wait_long(&mut kids, "every push to return", LONG_WATCHDOG, || {
        done.load() == JOB_PRODUCERS as i64
    });
    let waiting = q.unfinished();
    // `join()` has no timeout of its own: run it on a thread, watched.
    let (tx, rx) = std::sync::mpsc::channel();
    let joiner_path = path.clone();
    std::thread::spawn(move || {
        let q = Queue::<Msg>::open(&joiner_path).unwrap();
        let _ = tx.send(q.join());
    });
    let joined = rx.recv_timeout(LONG_WATCHDOG).unwrap_or_else(|_| {
        panic!(
            "watchdog: join() still waiting, {} unfinished",
            q.unfinished()
        )
    });
    let at_join = recorded.load();
    println!("join() waited for {waiting} unfinished task(s); {at_join} recorded when it returned");
    assert_eq!(joined, Ok(()));
    assert_eq!(
        at_join, total as i64,
        "join() returned before every job was recorded"
    );
    assert_eq!((q.unfinished(), q.len()), (0, 0));

    q.close();
    kids.wait_all_ok();
    assert_eq!(recorded.load(), total as i64);
    for p in 0..JOB_PRODUCERS as u64 {
        let missing = seen.missing(p, JOBS_EACH);
        assert!(
            missing.is_empty(),
            "producer {p}: never received {missing:?}"
        );
    }
    assert_eq!(q.task_done(), Err(TaskError::TooManyDone));
    assert_eq!(q.unfinished(), 0, "the count never wraps below zero");
}

common::child_entry!(
    #[started_by(join_waits_for_every_task_and_one_close_stops_every_consumer)]
    fn child_job_producer(ctx: ChildCtx) {
        let q = Queue::<Msg>::open(ctx.path.join("jobs")).unwrap();
        let me = ctx.index as u64;
        let msgs: Vec<Msg> = (0..JOBS_EACH).map(|s| Msg::new(me, s)).collect();
        push_mixed(&q, &mut Rng::new(0x4a4f_4250 ^ me), &msgs);
        counter(&ctx.path, "done").fetch_add(1);
    }
);

common::child_entry!(
    #[started_by(join_waits_for_every_task_and_one_close_stops_every_consumer)]
    fn child_job_consumer(ctx: ChildCtx) {
        let q = Queue::<Msg>::open(ctx.path.join("jobs")).unwrap();
        let seen = Seen::open(&ctx.path.join("seen"), JOBS_EACH);
        let recorded = counter(&ctx.path, "recorded");
        let go = counter(&ctx.path, "go");
        let mut order = Order::new(JOB_PRODUCERS);
        wait_until("the parent's go", || go.load() == 1);
        pop_mixed(&q, &mut Rng::new(0x4a4f_4243 ^ ctx.index as u64), |m| {
            m.validate(JOB_PRODUCERS as u64);
            order.check(m);
            seen.mark(m);
            // The work: short, but long enough that jobs are still unfinished
            // when the producers are done.
            std::thread::sleep(Duration::from_micros(10));
            recorded.fetch_add(1);
            q.task_done().unwrap();
        });
        // Closed: the parent closes only after join(), so every task is done.
        assert_eq!(q.pop_timeout(WATCHDOG), Err(PopTimeoutError::Closed));
        assert_eq!(q.task_done(), Err(TaskError::TooManyDone));
    }
);

// ---------------------------------------------------------------------------
// 3. Byte messages of every length.
// ---------------------------------------------------------------------------

const BYTE_MAX: usize = 300;
const BYTE_CAP: usize = 16;
const BYTE_PRODUCERS: usize = 2;
const BYTE_CONSUMERS: usize = 2;
/// Each producer sends every length 0 ..= `BYTE_MAX` this many times.
const BYTE_ROUNDS: u64 = 3;
const BYTE_SEED: u64 = 0x4259_5445;

/// The content of a message of `len` bytes.
fn payload(len: usize) -> Vec<u8> {
    Rng::new(BYTE_SEED ^ ((len as u64) << 20)).bytes(len)
}

/// Two producer processes send messages of every length from 0 to the
/// maximum (300) three times each (ascending, descending, scrambled), with
/// contents derived from the length, through a `ByteQueue` of 16 slots; two
/// consumer processes check each one byte for byte and count it by length.
/// Every length arrives exactly 6 times, intact. A message of 301 bytes (or
/// more) is `BytePushError::TooLong` from every kind of push, in the parent
/// and in the producers, and never arrives.
#[test]
fn byte_messages_of_every_length_arrive_intact() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let q = ByteQueue::create(d.join("bytes"), BYTE_CAP, BYTE_MAX, &QueueOptions::new()).unwrap();
    let counts = AtomicArray::<u64>::create(d.join("counts"), BYTE_MAX + 1).unwrap();
    let done = Counter::create(d.join("done"), 0).unwrap();
    assert_eq!(q.max_len(), BYTE_MAX);
    assert_too_long(&q);
    assert_eq!(q.len(), 0);

    let mut kids = Children::new();
    for i in 0..BYTE_PRODUCERS {
        kids.spawn("child_byte_producer", i, d, "");
    }
    for i in 0..BYTE_CONSUMERS {
        kids.spawn("child_byte_consumer", i, d, "");
    }
    wait_long(&mut kids, "the producers", LONG_WATCHDOG, || {
        done.load() == BYTE_PRODUCERS as i64
    });
    q.close();
    kids.wait_all_ok_within(LONG_WATCHDOG);

    let want = BYTE_ROUNDS * BYTE_PRODUCERS as u64;
    let wrong: Vec<(usize, u64)> = counts
        .snapshot()
        .into_iter()
        .enumerate()
        .filter(|&(_, n)| n != want)
        .collect();
    assert!(
        wrong.is_empty(),
        "lengths not received {want} times (length, count): {wrong:?}"
    );
    assert_eq!(
        q.try_pop_into(&mut [0u8; BYTE_MAX]),
        Err(TryPopError::Closed)
    );
}

/// Every kind of push refuses messages longer than the maximum, and
/// nothing is queued.
#[track_caller]
fn assert_too_long(q: &ByteQueue) {
    let len_before = q.len();
    for len in [BYTE_MAX + 1, BYTE_MAX + 8, 4096] {
        let msg = vec![7u8; len];
        let max = BYTE_MAX;
        assert_eq!(q.push(&msg), Err(BytePushError::TooLong { len, max }));
        assert_eq!(
            q.try_push(&msg),
            Err(ByteTryPushError::TooLong { len, max })
        );
        assert_eq!(
            q.push_timeout(&msg, WATCHDOG),
            Err(BytePushTimeoutError::TooLong { len, max })
        );
    }
    assert!(q.len() <= len_before.max(BYTE_CAP));
}

common::child_entry!(
    #[started_by(byte_messages_of_every_length_arrive_intact)]
    fn child_byte_producer(ctx: ChildCtx) {
        let q = ByteQueue::open(ctx.path.join("bytes")).unwrap();
        assert_eq!(q.max_len(), BYTE_MAX);
        let mut rng = Rng::new(0x4250_5244 ^ ctx.index as u64);
        for round in 0..BYTE_ROUNDS {
            let mut lens: Vec<usize> = (0..=BYTE_MAX).collect();
            match round {
                0 => {}
                1 => lens.reverse(),
                _ => {
                    for i in (1..lens.len()).rev() {
                        lens.swap(i, rng.below(i as u64 + 1) as usize);
                    }
                }
            }
            for len in lens {
                let msg = payload(len);
                match rng.below(3) {
                    0 => q.push(&msg).unwrap(),
                    1 => match q.try_push(&msg) {
                        Ok(()) => {}
                        Err(ByteTryPushError::Full) => q.push_timeout(&msg, WATCHDOG).unwrap(),
                        Err(e) => panic!("try_push of {len} bytes: {e:?}"),
                    },
                    _ => q.push_timeout(&msg, WATCHDOG).unwrap(),
                }
            }
            assert_too_long(&q);
        }
        counter(&ctx.path, "done").fetch_add(1);
    }
);

common::child_entry!(
    #[started_by(byte_messages_of_every_length_arrive_intact)]
    fn child_byte_consumer(ctx: ChildCtx) {
        let q = ByteQueue::open(ctx.path.join("bytes")).unwrap();
        let counts = AtomicArray::<u64>::open(ctx.path.join("counts")).unwrap();
        let mut rng = Rng::new(0x4243_4f4e ^ ctx.index as u64);
        let mut buf = vec![0u8; BYTE_MAX];
        loop {
            let msg = match rng.below(4) {
                0 => match q.pop() {
                    Ok(m) => m,
                    Err(PopError::Closed) => break,
                    Err(e) => panic!("pop: {e:?}"),
                },
                1 => match q.pop_into(&mut buf) {
                    Ok(n) => buf[..n].to_vec(),
                    Err(PopError::Closed) => break,
                    Err(e) => panic!("pop_into: {e:?}"),
                },
                2 => match q.try_pop_into(&mut buf) {
                    Ok(n) => buf[..n].to_vec(),
                    Err(TryPopError::Empty) => continue,
                    Err(TryPopError::Closed) => break,
                },
                _ => match q.pop_timeout(WATCHDOG) {
                    Ok(m) => m,
                    Err(PopTimeoutError::Closed) => break,
                    Err(e) => panic!("pop_timeout: {e:?}"),
                },
            };
            assert!(msg.len() <= BYTE_MAX, "a message of {} bytes", msg.len());
            assert!(
                msg == payload(msg.len()),
                "a message of {} bytes was changed",
                msg.len()
            );
            counts[msg.len()].fetch_add(1);
        }
    }
);

// ---------------------------------------------------------------------------
// 4. Processes killed with SIGKILL mid-stream.
// ---------------------------------------------------------------------------

const KILL_CAP: usize = 16;
/// Bits per producer in the bitmap: no producer pushes more than this.
const KILL_LIMIT: u64 = 1 << 22;
/// Messages each surviving producer pushes after the kills: many laps of
/// the queue, so they must get past any slot the dead left behind.
const AFTER_KILL: u64 = 20_000;
/// A victim has pushed (popped) at least this many before it is killed.
const KILL_AFTER: u64 = 3_000;

impl Peek {
    /// The message in the slot of position `pos`.
    fn msg(&self, pos: u64) -> Msg {
        Msg {
            producer: self.slot_word(pos, 2),
            seq: self.slot_word(pos, 3),
            check: self.slot_word(pos, 4),
        }
    }
}

/// Whether `claim` is the claim word `pid` stores, as `role`, on position
/// `pos`: role in bits 63-62, pid in 61-40, and the low 40 bits of `pos`.
fn claim_names(claim: u64, role: u64, pid: u32, pos: u64) -> bool {
    claim >> 62 == role
        && (claim >> 40) & 0x3f_ffff == u64::from(pid)
        && (claim ^ pos) & ((1 << 40) - 1) == 0
}

/// Where a victim may be killed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum KillAt {
    /// Anywhere: a process wins a slot by storing its claim with one
    /// compare-and-swap, so there is no instant at which it holds a slot
    /// that does not name it.
    Anywhere,
    /// Holding a position it claimed and has not published (a producer) or
    /// freed (a consumer), whether or not it has moved the tail (head) past
    /// it yet: the slot survivors must recover.
    HoldingSlot,
    /// In the middle of a `push_slice`/`pop_slice` batch, holding two
    /// consecutive slots (which only a batch does): either the last two
    /// positions it moved the tail (head) past, not published (freed) yet,
    /// or the two at the tail (head), claimed before it moves it past them.
    MidBatch,
}

/// Kills the `i`-th child, the only process pushing (`role` =
/// [`ROLE_PRODUCER`]) or popping ([`ROLE_CONSUMER`]) the queue right now,
/// with `SIGKILL` at a point of `at`: stops it with `SIGSTOP` at a random
/// moment, looks at the queue, and either kills it there or lets it run
/// on (`SIGCONT`) and tries again. While it is stopped, `between` runs
/// (the parent may drain or fill the queue for it); a stop that lands in
/// the wrong place lets it run a random little while.
///
/// Returns the position it was caught at (the last one it claimed), the
/// message in that position's slot when it died (read before the kill:
/// afterwards the slot may be recovered and reused), and the number of
/// tries.
fn kill_at(
    kids: &mut Children,
    i: usize,
    peek: &Peek,
    role: u64,
    at: KillAt,
    mut between: impl FnMut(),
) -> (u64, Msg, u32) {
    let pid = kids.pid(i);
    let mut rng = Rng::new(u64::from(pid));
    // Long: on a loaded machine the victim runs little between stops.
    let deadline = Instant::now() + LONG_WATCHDOG;
    let mut tries = 0;
    loop {
        tries += 1;
        assert!(
            Instant::now() < deadline,
            "watchdog: never caught child {i} at {at:?} in {tries} tries (tail {}, head {})",
            peek.tail(),
            peek.head()
        );
        kids.check_none_failed();
        let run_for = 100 + u64::from(tries) / 64;
        signal(pid, libc::SIGSTOP);
        kids.wait_for("the victim to stop", || is_stopped(pid));
        // The victim's last claimed position, and whether it is held: a
        // producer's claimed slot still has the sequence `2 pos`
        // (unpublished), a consumer's `2 pos + 1` (not freed): sequences
        // count half-steps (docs/FORMAT.md).
        let last = if role == ROLE_PRODUCER {
            peek.tail().wrapping_sub(1)
        } else {
            peek.head().wrapping_sub(1)
        };
        let held_seq_of = |pos: u64| (pos << 1) | u64::from(role == ROLE_CONSUMER);
        let held = |pos: u64| {
            let (seq, claim) = peek.slot(pos);
            seq == held_seq_of(pos) && claim_names(claim, role, pid, pos)
        };
        // The slot it holds: the last position it moved the tail (head)
        // past, or the one at the tail (head) it claimed and has not moved
        // past yet.
        let holding = [last, last.wrapping_add(1)].into_iter().find(|&p| held(p));
        let ok = match at {
            KillAt::Anywhere => true,
            KillAt::HoldingSlot => holding.is_some(),
            KillAt::MidBatch => {
                // Moved the tail (head) past its slots, the last two not
                // done yet; or claimed the next two, not moved it yet.
                let (next, after) = (last.wrapping_add(1), last.wrapping_add(2));
                held(last) && held(last.wrapping_sub(1)) || held(next) && held(after)
            }
        };
        if ok {
            let last = if at == KillAt::HoldingSlot {
                holding.unwrap_or(last)
            } else {
                last
            };
            if at == KillAt::HoldingSlot {
                // A live (stopped) claimer is never recovered: its slot
                // stays as it is however long the others wait.
                let recovered = peek.recovered();
                std::thread::sleep(mmring::wait::SLICE * 3);
                assert!(
                    held(last),
                    "the slot of a live, stopped process was taken over"
                );
                assert_eq!(peek.recovered(), recovered);
            }
            let msg = peek.msg(last);
            kids.kill(i);
            return (last, msg, tries);
        }
        between();
        signal(pid, libc::SIGCONT);
        // Let it run a little: sleeping hands it a processor. On a loaded
        // machine a short sleep may end before it ran at all, and the next
        // stop finds it where this one did: the longer the search, the
        // longer it may run (up to 1 ms), so the stops spread out.
        std::thread::sleep(Duration::from_micros(rng.below(run_for.min(1_000))));
    }
}

/// The shared files of a kill test.
struct KillFiles {
    seen: Seen,
    /// Per producer: messages pushed so far (stored after each push that
    /// returned `Ok`).
    committed: AtomicArray<u64>,
    /// Per producer: messages received by all consumers.
    received: AtomicArray<u64>,
    /// Per consumer: messages it received.
    taken: AtomicArray<u64>,
    /// Number of victims killed so far (set by the parent after each kill).
    killed: Counter,
    /// Surviving producers that have finished.
    done: Counter,
}

impl KillFiles {
    fn create(dir: &Path, producers: usize, consumers: usize) -> Self {
        Self {
            seen: Seen::create(&dir.join("seen"), producers as u64, KILL_LIMIT),
            committed: AtomicArray::create(dir.join("committed"), producers).unwrap(),
            received: AtomicArray::create(dir.join("received"), producers).unwrap(),
            taken: AtomicArray::create(dir.join("taken"), consumers).unwrap(),
            killed: Counter::create(dir.join("killed"), 0).unwrap(),
            done: Counter::create(dir.join("done"), 0).unwrap(),
        }
    }

    fn open(dir: &Path) -> Self {
        Self {
            seen: Seen::open(&dir.join("seen"), KILL_LIMIT),
            committed: AtomicArray::open(dir.join("committed")).unwrap(),
            received: AtomicArray::open(dir.join("received")).unwrap(),
            taken: AtomicArray::open(dir.join("taken")).unwrap(),
            killed: Counter::open(dir.join("killed")).unwrap(),
            done: Counter::open(dir.join("done")).unwrap(),
        }
    }

    /// What a consumer does with each message it gets.
    fn record(&self, consumer: usize, producers: usize, order: &mut Order, m: &Msg) {
        m.validate(producers as u64);
        order.check(m);
        self.seen.mark(m);
        self.received[m.producer as usize].fetch_add(1);
        self.taken[consumer].fetch_add(1);
    }
}

/// Sleeps (polling, with the watchdog) until the parent has killed `kills`
/// victims.
fn wait_for_kills(f: &KillFiles, kills: i64) {
    // Every kill of the test comes first: catching a victim at the right
    // instruction takes many stops on a loaded machine.
    let deadline = Instant::now() + LONG_WATCHDOG;
    while f.killed.load() < kills {
        assert!(
            Instant::now() < deadline,
            "watchdog: the parent never killed"
        );
        // Polling interval only: sleeps, so the victim has the processor.
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Child argument of the kill tests: `ROLE PRODUCERS KILLS`.
fn kill_args(ctx: &common::ChildCtx) -> (String, usize, i64) {
    let parts: Vec<&str> = ctx.arg.split(' ').collect();
    (
        parts[0].to_string(),
        parts[1].parse().unwrap(),
        parts[2].parse().unwrap(),
    )
}

common::child_entry!(
    /// A producer of the kill tests, by role:
    /// - `victim`: pushes 0, 1, 2, ... with single pushes until killed,
    ///   storing after each push that returned how many it has pushed (single
    ///   pushes only: a producer killed mid-batch blocks the queue for good, see
    ///   `a_producer_killed_mid_batch_does_not_block_the_queue`);
    /// - `batch-victim`: the same with `push_slice` batches of 32 (a single
    ///   blocking push when full);
    /// - `survivor`: pushes through every flavour until the parent has killed
    ///   every victim, then `AFTER_KILL` more; stores its total, counts itself
    ///   done;
    /// - `late`: waits until every victim is killed, then pushes `AFTER_KILL`.
    #[started_by(
        a_producer_killed_mid_batch_does_not_block_the_queue,
        consumers_killed_mid_stream_leave_producers_unblocked,
        producers_killed_mid_stream_hang_nobody_and_lose_nothing_committed
    )]
    fn child_kill_producer(ctx: ChildCtx) {
        let (role, _producers, kills) = kill_args(&ctx);
        let f = KillFiles::open(&ctx.path);
        let q = Queue::<Msg>::open(ctx.path.join("q")).unwrap();
        let me = ctx.index as u64;
        let mut rng = Rng::new(0x4b49_4c4c ^ me);
        let deadline = Instant::now() + WATCHDOG;
        let mut next = 0u64;
        if role.ends_with("victim") {
            while next + 32 < KILL_LIMIT {
                if role == "batch-victim" {
                    let batch: Vec<Msg> = (next..next + 32).map(|s| Msg::new(me, s)).collect();
                    match q.push_slice(&batch).unwrap() {
                        // Full: sleep until there is room (not a busy loop).
                        0 => {
                            q.push_timeout(batch[0], WATCHDOG).unwrap();
                            next += 1;
                        }
                        n => next += n as u64,
                    }
                    f.committed[ctx.index].store(next);
                    continue;
                }
                let m = Msg::new(me, next);
                match rng.below(3) {
                    0 => match q.try_push(m) {
                        Ok(()) => {}
                        Err(TryPushError::Full(m)) => q.push(m).unwrap(),
                        Err(e) => panic!("try_push: {e:?}"),
                    },
                    1 => q.push(m).unwrap(),
                    _ => q.push_timeout(m, WATCHDOG).unwrap(),
                }
                next += 1;
                f.committed[ctx.index].store(next);
            }
            // Out of numbers before the kill: wait for it.
            loop {
                assert!(Instant::now() < deadline, "watchdog: never killed");
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        let mut push = |from: u64, to: u64| {
            let msgs: Vec<Msg> = (from..to).map(|s| Msg::new(me, s)).collect();
            push_mixed(&q, &mut rng, &msgs);
            f.committed[ctx.index].store(to);
        };
        match role.as_str() {
            "survivor" => {
                while f.killed.load() < kills {
                    assert!(next + 256 < KILL_LIMIT / 2, "the parent never killed");
                    push(next, next + 256);
                    next += 256;
                }
            }
            "late" => wait_for_kills(&f, kills),
            other => panic!("role {other}"),
        }
        push(next, next + AFTER_KILL);
        f.done.fetch_add(1);
    }
);

common::child_entry!(
    /// A consumer of the kill tests, by role:
    /// - `victim`: pops with single pops until killed (single pops only: see
    ///   `a_consumer_killed_mid_batch_does_not_block_the_producers`);
    /// - `batch-victim`: pops with `pop_slice` batches of 32 (a single
    ///   blocking pop when empty), counting only;
    /// - `survivor`: pops through every flavour until closed and drained;
    /// - `late`: the same, once every victim is killed.
    #[started_by(
        a_consumer_killed_mid_batch_does_not_block_the_producers,
        consumers_killed_mid_stream_leave_producers_unblocked,
        producers_killed_mid_stream_hang_nobody_and_lose_nothing_committed
    )]
    fn child_kill_consumer(ctx: ChildCtx) {
        let (role, producers, kills) = kill_args(&ctx);
        let f = KillFiles::open(&ctx.path);
        let q = Queue::<Msg>::open(ctx.path.join("q")).unwrap();
        let mut order = Order::new(producers);
        let mut rng = Rng::new(0x4445_4144 ^ ctx.index as u64);
        if role == "batch-victim" {
            // Counts only: the test is about the slots, not the messages.
            let mut buf = [Msg::zeroed(); 32];
            loop {
                match q.pop_slice(&mut buf).unwrap() {
                    // Empty: sleep until there is a message (not a busy loop).
                    0 => {
                        q.pop_timeout(WATCHDOG).unwrap().validate(producers as u64);
                        f.taken[ctx.index].fetch_add(1);
                    }
                    n => {
                        buf[..n].iter().for_each(|m| m.validate(producers as u64));
                        f.taken[ctx.index].fetch_add(n as u64);
                    }
                }
            }
        }
        if role == "victim" {
            loop {
                let m = match rng.below(3) {
                    0 => match q.try_pop() {
                        Ok(m) => m,
                        Err(TryPopError::Empty) => q.pop().unwrap(),
                        Err(e) => panic!("try_pop: {e:?}"),
                    },
                    1 => q.pop().unwrap(),
                    _ => q.pop_timeout(WATCHDOG).unwrap(),
                };
                f.record(ctx.index, producers, &mut order, &m);
            }
        }
        match role.as_str() {
            "survivor" => {}
            "late" => wait_for_kills(&f, kills),
            other => panic!("role {other}"),
        }
        pop_mixed(&q, &mut rng, |m| {
            f.record(ctx.index, producers, &mut order, m)
        });
    }
);

/// Two producers are killed with `SIGKILL` mid-stream, one after the other,
/// each while it is the only one pushing (single pushes) to two consumers:
/// the first anywhere (see [`KillAt::Anywhere`]), the second while it holds
/// a slot it claimed and has not published (stopped there with `SIGSTOP`
/// first: the consumers reach that slot and are stuck behind it until one
/// of them sees the owner dead and turns it into a hole; while the owner is
/// merely stopped, nobody touches it). Then two more producers push 20,000
/// each (1,250 laps of the 16-slot queue): the consumers' blocking pops must
/// keep returning, and after the parent's `close()` every consumer ends.
///
/// Accounting: the survivors' messages all arrive exactly once. Of a
/// victim's, exactly 0 .. r arrive (each once), where r is the count it
/// recorded, or r + 1 for the first (it pushed and died before recording):
/// the one it had in flight is the only one possibly lost, and it never got
/// an `Ok` for it. The second one's in-flight message is lost for sure (it
/// became the hole), and at least that one slot was recovered.
#[test]
fn producers_killed_mid_stream_hang_nobody_and_lose_nothing_committed() {
    const PRODUCERS: usize = 4;
    const CONSUMERS: usize = 2;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let path = d.join("q");
    let q = Queue::<Msg>::create(&path, KILL_CAP).unwrap();
    let peek = Peek::new(&q);
    let f = KillFiles::create(d, PRODUCERS, CONSUMERS);
    let args = |role: &str| format!("{role} {PRODUCERS} 2");
    let mut kids = Children::new();
    for i in 0..CONSUMERS {
        kids.spawn("child_kill_consumer", i, d, &args("survivor"));
    }
    for i in 2..PRODUCERS {
        kids.spawn("child_kill_producer", i, d, &args("late"));
    }
    let mut caught = Vec::new();
    for (victim, at) in [(0, KillAt::Anywhere), (1, KillAt::HoldingSlot)] {
        kids.spawn("child_kill_producer", victim, d, &args("victim"));
        kids.wait_for(
            "the consumers to receive 3,000 of the victim's messages",
            || f.received[victim].load() >= KILL_AFTER,
        );
        let child = CONSUMERS + PRODUCERS - 2 + victim;
        let (pos, _, tries) = kill_at(&mut kids, child, &peek, ROLE_PRODUCER, at, || {});
        caught.push((pos, f.committed[victim].load(), tries));
        f.killed.fetch_add(1);
    }
    wait_long(&mut kids, "the late producers", LONG_WATCHDOG, || {
        f.done.load() == PRODUCERS as i64 - 2
    });
    q.close();
    kids.wait_all_ok_within(LONG_WATCHDOG);

    let (_, len, _, control) = queue_state(&path);
    let got: Vec<u64> = (0..2).map(|v| f.seen.count(v)).collect();
    println!(
        "victims killed (position, recorded pushes, tries) {caught:?}; {got:?} of their \
         messages arrived; {} slot(s) recovered",
        control.recovered
    );
    for p in 2..PRODUCERS {
        let pushed = f.committed[p].load();
        assert_eq!(pushed, AFTER_KILL);
        let missing = f.seen.missing(p as u64, pushed);
        assert!(
            missing.is_empty(),
            "producer {p}: never received {missing:?}"
        );
        assert_eq!(
            f.seen.count(p as u64),
            pushed,
            "producer {p}: more than pushed"
        );
        assert_eq!(f.received[p].load(), pushed);
    }
    for (v, &n) in got.iter().enumerate() {
        let missing = f.seen.missing(v as u64, n);
        assert!(
            missing.is_empty(),
            "victim {v}: received {n} but not {missing:?} (a committed message lost)"
        );
        assert_eq!(f.received[v].load(), n);
    }
    let committed = caught[0].1;
    assert!(
        got[0] == committed || got[0] == committed + 1,
        "victim 0 recorded {committed} pushes, {} arrived",
        got[0]
    );
    assert_eq!(
        got[1], caught[1].1,
        "victim 1 died holding its next message"
    );
    assert!(
        (1..=2).contains(&control.recovered),
        "{} slots recovered",
        control.recovered
    );
    assert_eq!((len, control.head, control.closed), (0, control.tail, 1));
}

/// Consumers killed one after the other in
/// `consumers_killed_mid_stream_leave_producers_unblocked`, and where.
const CONSUMER_KILLS: [KillAt; 3] = [KillAt::Anywhere, KillAt::Anywhere, KillAt::HoldingSlot];

/// Two producers push through a 16-slot queue; three victim consumers, one
/// after the other, each the only one popping (single pops), are killed
/// with `SIGKILL` once they have received 3,000 messages: two anywhere
/// (see [`KillAt::Anywhere`]), the last while it holds a slot it claimed
/// and has not freed (stopped there with `SIGSTOP` first): the producers
/// come round to that slot and are stuck behind it until one of them sees
/// the owner dead and frees it. Then two consumers start and the producers
/// push 20,000 more each: they must all complete, and after the parent's
/// `close()` every consumer ends.
///
/// Accounting: no message arrives twice, and recorded + lost == pushed,
/// where the lost ones — taken by a victim that died before recording them
/// — number at most one per kill (single pops), and include the message in
/// the slot the last victim held.
#[test]
fn consumers_killed_mid_stream_leave_producers_unblocked() {
    const PRODUCERS: usize = 2;
    const CONSUMERS: usize = 2 + CONSUMER_KILLS.len();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let path = d.join("q");
    let q = Queue::<Msg>::create(&path, KILL_CAP).unwrap();
    let peek = Peek::new(&q);
    let f = KillFiles::create(d, PRODUCERS, CONSUMERS);
    let args = |role: &str| format!("{role} {PRODUCERS} {}", CONSUMER_KILLS.len());
    let mut kids = Children::new();
    for i in 0..PRODUCERS {
        kids.spawn("child_kill_producer", i, d, &args("survivor"));
    }
    for i in 0..2 {
        kids.spawn("child_kill_consumer", i, d, &args("late"));
    }
    let mut held = None;
    for (k, at) in CONSUMER_KILLS.into_iter().enumerate() {
        let victim = 2 + k;
        kids.spawn("child_kill_consumer", victim, d, &args("victim"));
        kids.wait_for("the victim to receive 3,000 messages", || {
            f.taken[victim].load() >= KILL_AFTER
        });
        let (_, msg, _) = kill_at(
            &mut kids,
            PRODUCERS + victim,
            &peek,
            ROLE_CONSUMER,
            at,
            || {},
        );
        if at == KillAt::HoldingSlot {
            held = Some(msg);
        }
        f.killed.fetch_add(1);
    }
    wait_long(&mut kids, "the producers", LONG_WATCHDOG, || {
        f.done.load() == PRODUCERS as i64
    });
    q.close();
    kids.wait_all_ok_within(LONG_WATCHDOG);

    let (_, len, _, control) = queue_state(&path);
    let pushed: u64 = (0..PRODUCERS).map(|p| f.committed[p].load()).sum();
    let arrived: u64 = (0..PRODUCERS).map(|p| f.seen.count(p as u64)).sum();
    let lost: Vec<Msg> = (0..PRODUCERS as u64)
        .flat_map(|p| {
            let n = f.committed[p as usize].load();
            f.seen
                .missing(p, n)
                .into_iter()
                .map(move |s| Msg::new(p, s))
        })
        .collect();
    let held = held.expect("the last victim was caught holding a slot");
    println!(
        "{pushed} pushed, {arrived} recorded; lost {lost:?}; the last victim held {held:?}; \
         {} slot(s) recovered",
        control.recovered
    );
    held.validate(PRODUCERS as u64);
    for p in 0..PRODUCERS {
        let n = f.committed[p].load();
        assert!(n >= AFTER_KILL);
        assert_eq!(
            f.seen.count_below(p as u64, n),
            f.seen.count(p as u64),
            "producer {p}: a message beyond the {n} pushed arrived"
        );
    }
    assert_eq!(arrived + lost.len() as u64, pushed);
    assert!(
        lost.len() <= CONSUMER_KILLS.len(),
        "{} messages lost to {} killed single-pop consumers: {lost:?}",
        lost.len(),
        CONSUMER_KILLS.len()
    );
    assert!(
        lost.contains(&held),
        "the message the last victim held arrived: {held:?}"
    );
    assert!(
        (1..=CONSUMER_KILLS.len() as u64).contains(&control.recovered),
        "{} slots recovered",
        control.recovered
    );
    assert_eq!((len, control.head, control.closed), (0, control.tail, 1));
}

/// How long the reproducers below wait for the queue to move again after
/// the kill before calling it stuck: 200 recovery checks.
const STUCK_AFTER: Duration = Duration::from_secs(10);

/// A producer pushing `push_slice` batches of 32 (the only producer) is
/// killed with `SIGKILL` in the middle of a batch: the tail moved past
/// all its slots, the last two not yet published. A new message pushed
/// after the kill must still reach the consumer: the slot it was writing
/// becomes a hole, and so must the rest of the batch.
///
/// Regression: `push_batch_with` used to store each slot's claim only
/// just before writing that slot, so the later slots of the batch kept the
/// previous lap's claim word and the queue was stuck for good. Every slot
/// of a batch is now claimed before the tail moves past it.
#[test]
fn a_producer_killed_mid_batch_does_not_block_the_queue() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Large: the victim's refill after each drain outlasts a time slice,
    // so a stop lands mid-refill even when the processors are busy.
    let q = Queue::<Msg>::create(d.join("q"), 1 << 18).unwrap();
    let peek = Peek::new(&q);
    let f = KillFiles::create(d, 2, 1);
    let mut kids = Children::new();
    kids.spawn("child_kill_producer", 0, d, "batch-victim 2 1");
    let mut next = 0;
    let drain = |q: &Queue<Msg>, next: &mut u64| {
        while let Ok(m) = q.try_pop() {
            assert_eq!((m.producer, m.seq), (0, *next), "{m:?}");
            *next += 1;
        }
    };
    kids.wait_for("the victim's first messages", || q.len() >= 64);
    let (pos, _, tries) = kill_at(&mut kids, 0, &peek, ROLE_PRODUCER, KillAt::MidBatch, || {
        drain(&q, &mut next)
    });
    let committed = f.committed[0].load();
    println!("killed mid-batch at position {pos} after {tries} tries; {committed} recorded");
    q.push(Msg::new(1, 0)).unwrap();
    loop {
        match q.pop_timeout(STUCK_AFTER) {
            Ok(m) if m.producer == 1 => break,
            Ok(m) => {
                assert_eq!((m.producer, m.seq), (0, next), "{m:?}");
                next += 1;
            }
            Err(e) => {
                let head = peek.head();
                let (seq, claim) = peek.slot(head);
                panic!(
                    "{e:?}: stuck at position {head} (sequence {seq}, claim {claim:#x}), \
                     {} slot(s) recovered, tail {}; the victim recorded {committed} \
                     pushes and was caught at {pos}",
                    peek.recovered(),
                    peek.tail()
                );
            }
        }
    }
    assert!(
        next >= committed,
        "received {next} of the {committed} committed"
    );
}

/// A consumer popping `pop_slice` batches of 32 (the only consumer) is
/// killed with `SIGKILL` in the middle of a batch: the head moved past all
/// its slots, the last two not yet freed.
/// The producer (this process, also draining the queue now) must still be
/// able to push three more laps: every slot the dead consumer held must be
/// freed.
///
/// Regression: `pop_batch_with` used to store each slot's claim only just
/// before reading it, so producers found no dead consumer's claim on the
/// later slots of the batch and stayed blocked for good. Every slot of a
/// batch is now claimed before the head moves past it.
#[test]
fn a_consumer_killed_mid_batch_does_not_block_the_producers() {
    // Large: the victim's work after each fill outlasts a time slice, so a
    // stop lands mid-batch even when the processors are busy.
    const CAP: usize = 4096;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let q = Queue::<Msg>::create(d.join("q"), CAP).unwrap();
    let peek = Peek::new(&q);
    let f = KillFiles::create(d, 1, 1);
    let mut kids = Children::new();
    kids.spawn("child_kill_consumer", 0, d, "batch-victim 1 1");
    let mut next = 0;
    let fill = |q: &Queue<Msg>, next: &mut u64| {
        while q.try_push(Msg::new(0, *next)).is_ok() {
            *next += 1;
        }
    };
    fill(&q, &mut next);
    kids.wait_for("the victim's first messages", || f.taken[0].load() >= 64);
    let (pos, _, tries) = kill_at(&mut kids, 0, &peek, ROLE_CONSUMER, KillAt::MidBatch, || {
        fill(&q, &mut next)
    });
    let taken = f.taken[0].load();
    println!("killed mid-batch at position {pos} after {tries} tries; it recorded {taken}");
    for _ in 0..3 * CAP {
        if let Err(e) = q.push_timeout(Msg::new(0, next), STUCK_AFTER) {
            let tail = peek.tail();
            let (seq, claim) = peek.slot(tail);
            panic!(
                "{e:?}: stuck at position {tail} (sequence {seq}, claim {claim:#x}), \
                 {} slot(s) recovered, head {}; the victim was caught at {pos}",
                peek.recovered(),
                peek.head()
            );
        }
        next += 1;
        while q.try_pop().is_ok() {}
    }
}

// ---------------------------------------------------------------------------
// 5. Errors, and what `inspect` shows.
// ---------------------------------------------------------------------------

/// `task_done` more times than items were pushed is `TooManyDone` (and the
/// count stays at zero); `join`, `join_timeout` and `task_done` on a queue
/// not created joinable are `NotJoinable`.
#[test]
fn task_counting_errors() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::<u64>::create_with(dir.path().join("j"), 8, &QueueOptions::new().joinable(true))
        .unwrap();
    assert_eq!(q.task_done(), Err(TaskError::TooManyDone));
    assert_eq!(q.join_timeout(Duration::ZERO), Ok(()));
    q.push(1).unwrap();
    q.push_slice(&[2, 3]).unwrap();
    assert_eq!(q.unfinished(), 3);
    assert_eq!(
        q.join_timeout(Duration::from_millis(1)),
        Err(JoinTimeoutError::Timeout(3))
    );
    let mut out = [0u64; 3];
    assert_eq!(q.pop_slice(&mut out), Ok(3));
    for left in [2, 1, 0] {
        q.task_done().unwrap();
        assert_eq!(q.unfinished(), left);
    }
    assert_eq!(q.task_done(), Err(TaskError::TooManyDone));
    assert_eq!(q.unfinished(), 0, "never wraps below zero");
    assert_eq!(q.join(), Ok(()));

    let plain = Queue::<u64>::create(dir.path().join("p"), 8).unwrap();
    plain.push(1).unwrap();
    assert_eq!(plain.join(), Err(JoinError::NotJoinable));
    assert_eq!(
        plain.join_timeout(WATCHDOG),
        Err(JoinTimeoutError::NotJoinable)
    );
    assert_eq!(plain.pop_timeout(WATCHDOG), Ok(1));
    assert_eq!(plain.task_done(), Err(TaskError::NotJoinable));
    let bytes = ByteQueue::create(dir.path().join("b"), 8, 16, &QueueOptions::new()).unwrap();
    assert_eq!(bytes.join(), Err(JoinError::NotJoinable));
    assert_eq!(bytes.task_done(), Err(TaskError::NotJoinable));
}

/// Capacities 0, 3, 6 and 2^40 are refused by every way of making a queue,
/// with `InvalidCapacity` naming the capacity, and leave no file behind; an
/// existing queue opened with another capacity is refused too.
#[test]
fn bad_capacities_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q");
    let joinable = QueueOptions::new().joinable(true);
    for cap in [0usize, 3, 6, 1 << 40] {
        let attempts: [(&str, Result<(), OpenError>); 5] = [
            ("Queue::create", Queue::<u64>::create(&path, cap).map(drop)),
            (
                "Queue::create_with",
                Queue::<u64>::create_with(&path, cap, &joinable).map(drop),
            ),
            (
                "Queue::open_or_create",
                Queue::<u64>::open_or_create(&path, cap, &joinable).map(drop),
            ),
            (
                "ByteQueue::create",
                ByteQueue::create(&path, cap, 64, &QueueOptions::new()).map(drop),
            ),
            (
                "ByteQueue::open_or_create",
                ByteQueue::open_or_create(&path, cap, 64, &QueueOptions::new()).map(drop),
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

    let _q = Queue::<u64>::create(&path, 8).unwrap();
    match Queue::<u64>::open_or_create(&path, 16, &QueueOptions::new()) {
        Err(OpenError::InvalidCapacity { found: 8, .. }) => {}
        other => panic!("open_or_create with another capacity: {other:?}"),
    }
    let b = dir.path().join("b");
    let _b = ByteQueue::create(&b, 8, 64, &QueueOptions::new()).unwrap();
    match ByteQueue::open_or_create(&b, 4, 64, &QueueOptions::new()) {
        Err(OpenError::InvalidCapacity { found: 8, .. }) => {}
        other => panic!("open_or_create with another capacity: {other:?}"),
    }
}

/// A queue of `u64` opened as a queue of another payload type is
/// `WrongPayload`; opened as a byte queue, a counter or an SPSC ring it is
/// `WrongKind`, and so is a byte queue or a counter opened as a `Queue`.
/// Nothing is changed: the queue still works afterwards.
#[test]
fn foreign_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q");
    let q = Queue::<u64>::create(&path, 8).unwrap();
    q.push(42).unwrap();

    wrong_payload(Queue::<u32>::open(&path), "u32");
    wrong_payload(Queue::<i64>::open(&path), "i64");
    wrong_payload(Queue::<[u64; 2]>::open(&path), "[u64; 2]");
    wrong_payload(
        Queue::<f64>::open_or_create(&path, 8, &QueueOptions::new()),
        "f64",
    );

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
    wrong_kind(ByteQueue::open(&path), "mpmc byte queue", "mpmc queue");
    wrong_kind(
        ByteQueue::open_or_create(&path, 8, 8, &QueueOptions::new()),
        "mpmc byte queue",
        "mpmc queue",
    );
    wrong_kind(Counter::open(&path), "counter", "mpmc queue");
    wrong_kind(
        mmring::spsc::Consumer::<u64>::open(&path),
        "spsc ring",
        "mpmc queue",
    );

    let bytes = dir.path().join("bytes");
    let _b = ByteQueue::create(&bytes, 8, 64, &QueueOptions::new()).unwrap();
    wrong_kind(Queue::<u64>::open(&bytes), "mpmc queue", "mpmc byte queue");
    // Both payloads are named, by their stable names (what tells a Python
    // queue, a byte queue, from a `Queue<u64>` in any language).
    let msg = Queue::<u64>::open(&bytes).err().unwrap().to_string();
    assert!(
        msg.contains("expected mpmc queue of u64 (8 B, align 8)")
            && msg.contains("found mpmc byte queue of bytes (64 B, align 1)"),
        "{msg}"
    );
    let msg = ByteQueue::open(&path).err().unwrap().to_string();
    assert!(
        msg.contains("expected mpmc byte queue of bytes (any size, align 1)")
            && msg.contains("found mpmc queue of u64 (8 B, align 8)"),
        "{msg}"
    );
    let count = dir.path().join("count");
    let _c = Counter::create(&count, 5).unwrap();
    wrong_kind(Queue::<u64>::open(&count), "mpmc queue", "counter");
    wrong_kind(ByteQueue::open(&count), "mpmc byte queue", "counter");

    // Nothing above changed the queue.
    assert_eq!(Queue::<u64>::open(&path).unwrap().try_pop(), Ok(42));
    assert_eq!(Counter::open(&count).unwrap().load(), 5);
}

/// A child process pushes 5 items into a joinable queue of 16, pops 2 and
/// marks 1 done; `inspect` then shows a queue of capacity 16 with 3 items,
/// 4 unfinished tasks, head 2, tail 5, open and joinable. After 4 more
/// `task_done` (a 5th is `TooManyDone`) and `close()`, it shows 0
/// unfinished and closed. A byte queue shows its maximum length.
#[test]
fn inspect_shows_a_queues_len_capacity_and_unfinished_tasks() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q");
    let q = Queue::<u64>::create_with(&path, 16, &QueueOptions::new().joinable(true)).unwrap();
    let mut kids = Children::new();
    kids.spawn("child_inspected", 0, &path, "");
    kids.wait_all_ok();

    let (capacity, len, max_len, c) = queue_state(&path);
    assert_eq!((capacity, len, max_len), (16, 3, None));
    assert_eq!((c.head, c.tail, c.unfinished, c.closed), (2, 5, 4, 0));
    assert_eq!(c.flags & FLAG_JOINABLE, FLAG_JOINABLE);
    assert_eq!(c.recovered, 0);
    let text = inspect(&path).unwrap().to_string();
    assert!(text.contains("3 of 16 slots used"), "{text}");
    assert!(text.contains("unfinished:  4 task(s)"), "{text}");

    for _ in 0..4 {
        q.task_done().unwrap();
    }
    assert_eq!(q.task_done(), Err(TaskError::TooManyDone));
    q.close();
    let (_, len, _, c) = queue_state(&path);
    assert_eq!((len, c.unfinished, c.closed), (3, 0, 1));
    assert!(
        inspect(&path)
            .unwrap()
            .to_string()
            .contains("queue state: closed")
    );

    let bytes = dir.path().join("bytes");
    let b = ByteQueue::create(&bytes, 4, 300, &QueueOptions::new()).unwrap();
    b.push(b"hello").unwrap();
    let (capacity, len, max_len, c) = queue_state(&bytes);
    assert_eq!((capacity, len, max_len), (4, 1, Some(300)));
    assert_eq!(c.flags & FLAG_JOINABLE, 0);
}

common::child_entry!(
    #[started_by(inspect_shows_a_queues_len_capacity_and_unfinished_tasks)]
    fn child_inspected(ctx: ChildCtx) {
        let q = Queue::<u64>::open(&ctx.path).unwrap();
        assert_eq!(q.push_slice(&[1, 2, 3]), Ok(3));
        q.push(4).unwrap();
        q.try_push(5).unwrap();
        assert_eq!(q.pop(), Ok(1));
        assert_eq!(q.try_pop(), Ok(2));
        q.task_done().unwrap();
    }
);

// ---------------------------------------------------------------------------
// 6. Linearizable: a pop after a completed push never finds the queue empty.
// ---------------------------------------------------------------------------

const ROUNDS_PROCS: usize = 4;
const ROUNDS_CAP: usize = 4;
const ROUNDS_EACH: u64 = 100_000;

/// Four processes each do 100,000 rounds of `try_push` then `try_pop` on a
/// queue of 4 slots. A process's own push has completed when its `try_pop`
/// starts, and at most 4 items are ever queued, so every `try_pop` must
/// return an item (its own or another's) and no `try_push` may find the
/// queue full: the children count `Empty` after a successful own push and
/// `Full`, and both counts must be 0. Every message pushed arrives exactly
/// once (the bitmap; the parent drains what is left at the end).
///
/// Before `try_pop` waited out a producer caught between its claim and its
/// publish, this counted hundreds of false `Empty`s per 100,000 rounds.
#[test]
fn a_pop_after_a_completed_push_never_finds_the_queue_empty() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let q = Queue::<Msg>::create(d.join("q"), ROUNDS_CAP).unwrap();
    let seen = Seen::create(&d.join("seen"), ROUNDS_PROCS as u64, ROUNDS_EACH);
    let _arrived = Counter::create(d.join("arrived"), 0).unwrap();
    let empties = Counter::create(d.join("empties"), 0).unwrap();
    let fulls = Counter::create(d.join("fulls"), 0).unwrap();
    let mut kids = Children::new();
    for i in 0..ROUNDS_PROCS {
        kids.spawn("child_push_then_pop", i, d, &ROUNDS_EACH.to_string());
    }
    kids.wait_all_ok_within(LONG_WATCHDOG);
    while let Ok(m) = q.try_pop() {
        m.validate(ROUNDS_PROCS as u64);
        seen.mark(&m);
    }
    for p in 0..ROUNDS_PROCS as u64 {
        let missing = seen.missing(p, ROUNDS_EACH);
        assert!(
            missing.is_empty(),
            "producer {p}: never received {missing:?}"
        );
    }
    println!(
        "false Empty: {}, false Full: {} in {} rounds",
        empties.load(),
        fulls.load(),
        ROUNDS_EACH * ROUNDS_PROCS as u64
    );
    assert_eq!(
        (empties.load(), fulls.load()),
        (0, 0),
        "(Empty after an own push, Full with at most 3 items queued)"
    );
}

common::child_entry!(
    #[started_by(a_pop_after_a_completed_push_never_finds_the_queue_empty)]
    fn child_push_then_pop(ctx: ChildCtx) {
        let n: u64 = ctx.arg_num();
        let q = Queue::<Msg>::open(ctx.path.join("q")).unwrap();
        let seen = Seen::open(&ctx.path.join("seen"), n);
        let me = ctx.index as u64;
        let (mut empties, mut fulls) = (0i64, 0i64);
        barrier(&counter(&ctx.path, "arrived"), ROUNDS_PROCS);
        for s in 0..n {
            match q.try_push(Msg::new(me, s)) {
                Ok(()) => {}
                Err(TryPushError::Full(m)) => {
                    fulls += 1;
                    q.push_timeout(m, WATCHDOG).unwrap();
                }
                Err(e) => panic!("try_push: {e:?}"),
            }
            match q.try_pop() {
                Ok(m) => {
                    m.validate(ROUNDS_PROCS as u64);
                    seen.mark(&m);
                }
                Err(TryPopError::Empty) => empties += 1,
                Err(e) => panic!("try_pop: {e:?}"),
            }
        }
        counter(&ctx.path, "empties").fetch_add(empties);
        counter(&ctx.path, "fulls").fetch_add(fulls);
    }
);

// ---------------------------------------------------------------------------
// 7. A bound below the capacity: full at exactly the bound, never past it.
// ---------------------------------------------------------------------------

const BOUND_PRODUCERS: usize = 4;
const BOUND_CONSUMERS: usize = 2;
const BOUND: usize = 6;
/// Messages per producer through the queue bounded at 6.
const BOUND_PER_PRODUCER: u64 = 50_000;

/// Four producer and two consumer processes on a queue of 8 slots bounded
/// at 6 (`Queue::create_bounded(path, 6)`).
///
/// Fill: the consumers wait while the producers `try_push` until each gets
/// `Full`. With nobody popping the count only grows, so each `Full` must be
/// followed by `is_full()` (a `Full` the queue never earned shows there),
/// and once all four got theirs exactly 6 pushes succeeded in all and
/// `len()` is exactly 6.
///
/// Churn: then all six run at once, every push and pop flavour, and after
/// each operation every process checks `len() <= 6`. `len` looks at the
/// slots one at a time, but every item it counts was pushed below the tail
/// it read and not yet taken when the producer of that tail's last position
/// read the head, at most 6 positions behind: it can never count 7, however
/// the processes interleave (no timing involved). Every message arrives
/// exactly once, whole, and per producer in order at each consumer.
#[test]
fn a_queue_bounded_at_6_never_holds_more_than_6_items() {
    let n = BOUND_PER_PRODUCER;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let q = Queue::<Msg>::create_bounded(d.join("q"), BOUND).unwrap();
    assert_eq!((q.capacity(), q.bound()), (8, BOUND));
    let seen = Seen::create(&d.join("seen"), BOUND_PRODUCERS as u64, n);
    let _arrived = Counter::create(d.join("arrived"), 0).unwrap();
    let filled = Counter::create(d.join("filled"), 0).unwrap();
    let fill_pushes = Counter::create(d.join("fill_pushes"), 0).unwrap();
    let go = Counter::create(d.join("go"), 0).unwrap();
    let done = Counter::create(d.join("done"), 0).unwrap();
    let mut kids = Children::new();
    for i in 0..BOUND_PRODUCERS {
        kids.spawn("child_bound_producer", i, d, &n.to_string());
    }
    for i in 0..BOUND_CONSUMERS {
        kids.spawn("child_bound_consumer", i, d, &n.to_string());
    }
    wait_long(
        &mut kids,
        "every producer to meet Full",
        LONG_WATCHDOG,
        || filled.load() == BOUND_PRODUCERS as i64,
    );
    assert_eq!(
        fill_pushes.load(),
        BOUND as i64,
        "pushes before the first pop"
    );
    assert_eq!((q.len(), q.is_full()), (BOUND, true));
    let intruder = Msg::new(BOUND_PRODUCERS as u64, 0);
    assert_eq!(q.try_push(intruder), Err(TryPushError::Full(intruder)));
    assert_eq!(
        q.push_slice(&[intruder]),
        Ok(0),
        "a batch takes no more than the bound leaves"
    );
    go.store(1);
    wait_long(&mut kids, "the producers to finish", LONG_WATCHDOG, || {
        done.load() == BOUND_PRODUCERS as i64
    });
    q.close();
    kids.wait_all_ok_within(LONG_WATCHDOG);
    for p in 0..BOUND_PRODUCERS as u64 {
        let missing = seen.missing(p, n);
        assert!(
            missing.is_empty(),
            "producer {p}: never received {missing:?}"
        );
    }
    assert_eq!((q.len(), q.is_full()), (0, false));
}

/// Asserts that `q` counts no more than [`BOUND`] items.
#[track_caller]
fn within_bound(q: &Queue<Msg>) {
    let n = q.len();
    assert!(
        n <= BOUND,
        "{n} items counted in a queue bounded at {BOUND}"
    );
}

common::child_entry!(
    #[started_by(a_queue_bounded_at_6_never_holds_more_than_6_items)]
    fn child_bound_producer(ctx: ChildCtx) {
        let n: u64 = ctx.arg_num();
        let q = Queue::<Msg>::open(ctx.path.join("q")).unwrap();
        assert_eq!(q.bound(), BOUND);
        let me = ctx.index as u64;
        let msgs: Vec<Msg> = (0..n).map(|s| Msg::new(me, s)).collect();
        let mut rng = Rng::new(0x424f_554e ^ me);
        barrier(
            &counter(&ctx.path, "arrived"),
            BOUND_PRODUCERS + BOUND_CONSUMERS,
        );
        // Fill: nobody pops, so a `Full` stays true once earned.
        let mut i = 0;
        loop {
            match q.try_push(msgs[i]) {
                Ok(()) => i += 1,
                Err(TryPushError::Full(_)) => break,
                Err(e) => panic!("try_push: {e:?}"),
            }
            within_bound(&q);
        }
        assert!(q.is_full(), "Full with fewer than {BOUND} items pushed");
        within_bound(&q);
        counter(&ctx.path, "fill_pushes").fetch_add(i as i64);
        counter(&ctx.path, "filled").fetch_add(1);
        wait_until("the go", || counter(&ctx.path, "go").load() == 1);
        // Churn.
        while i < msgs.len() {
            match rng.below(4) {
                0 => {
                    q.push(msgs[i]).unwrap();
                    i += 1;
                }
                1 => {
                    match q.try_push(msgs[i]) {
                        Ok(()) => {}
                        Err(TryPushError::Full(m)) => q.push_timeout(m, WATCHDOG).unwrap(),
                        Err(e) => panic!("try_push: {e:?}"),
                    }
                    i += 1;
                }
                _ => {
                    let end = msgs.len().min(i + 1 + rng.below(8) as usize);
                    match q.push_slice(&msgs[i..end]).unwrap() {
                        0 => {
                            q.push_timeout(msgs[i], WATCHDOG).unwrap();
                            i += 1;
                        }
                        k => {
                            assert!(k <= BOUND, "a batch of {k} past the bound");
                            i += k;
                        }
                    }
                }
            }
            within_bound(&q);
        }
        counter(&ctx.path, "done").fetch_add(1);
    }
);

common::child_entry!(
    #[started_by(a_queue_bounded_at_6_never_holds_more_than_6_items)]
    fn child_bound_consumer(ctx: ChildCtx) {
        let n: u64 = ctx.arg_num();
        let q = Queue::<Msg>::open(ctx.path.join("q")).unwrap();
        let seen = Seen::open(&ctx.path.join("seen"), n);
        let mut order = Order::new(BOUND_PRODUCERS);
        let mut rng = Rng::new(0x424f_554f ^ ctx.index as u64);
        barrier(
            &counter(&ctx.path, "arrived"),
            BOUND_PRODUCERS + BOUND_CONSUMERS,
        );
        wait_until("the go", || counter(&ctx.path, "go").load() == 1);
        let mut got = |m: &Msg| {
            m.validate(BOUND_PRODUCERS as u64);
            order.check(m);
            seen.mark(m);
        };
        let mut buf = [Msg::zeroed(); 8];
        loop {
            let more = match rng.below(4) {
                0 => match q.pop_timeout(WATCHDOG) {
                    Ok(m) => {
                        got(&m);
                        true
                    }
                    Err(PopTimeoutError::Closed) => false,
                    Err(e) => panic!("pop_timeout: {e:?}"),
                },
                1 => match q.try_pop() {
                    Ok(m) => {
                        got(&m);
                        true
                    }
                    Err(TryPopError::Empty) => match q.pop() {
                        Ok(m) => {
                            got(&m);
                            true
                        }
                        Err(PopError::Closed) => false,
                        Err(e) => panic!("pop: {e:?}"),
                    },
                    Err(TryPopError::Closed) => false,
                },
                _ => match q.pop_slice(&mut buf[..1 + rng.below(8) as usize]) {
                    Ok(0) => match q.pop_timeout(WATCHDOG) {
                        Ok(m) => {
                            got(&m);
                            true
                        }
                        Err(PopTimeoutError::Closed) => false,
                        Err(e) => panic!("pop_timeout: {e:?}"),
                    },
                    Ok(k) => {
                        buf[..k].iter().for_each(&mut got);
                        true
                    }
                    Err(Closed) => false,
                },
            };
            within_bound(&q);
            if !more {
                break;
            }
        }
        assert_eq!(q.try_pop(), Err(TryPopError::Closed));
    }
);

/// A `ByteQueue` of 4 slots bounded at 3: a child process pushes 3
/// messages and finds the 4th `Full` (and a timed push timing out);
/// `inspect` shows the bound. The parent then blocks pushing a 4th while
/// another child waits until it sleeps and pops one: the push goes through
/// (the pop's wake-up reaches a sleeper in another process), the queue is
/// full at 3 again, and after one more pop a `try_push` succeeds.
#[test]
fn a_byte_queue_bounded_at_3_is_full_at_the_4th_push_until_a_pop() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b");
    let q = ByteQueue::create(&path, 4, 32, &QueueOptions::new().bound(3)).unwrap();
    assert_eq!((q.capacity(), q.bound()), (4, 3));
    let mut kids = Children::new();
    kids.spawn("child_bytes_filler", 0, &path, "");
    kids.wait_all_ok();
    assert_eq!((q.len(), q.is_full()), (3, true));
    assert_eq!(q.try_push(b"d"), Err(ByteTryPushError::Full));
    let (capacity, len, _, c) = queue_state(&path);
    assert_eq!((capacity, len, c.bound), (4, 3, 3));
    let text = inspect(&path).unwrap().to_string();
    assert!(text.contains("bound:       full at 3 items\n"), "{text}");

    let mut kids = Children::new();
    kids.spawn("child_bytes_popper", 0, &path, "");
    q.push_timeout(b"d", WATCHDOG).unwrap();
    kids.wait_all_ok();
    assert_eq!((q.len(), q.is_full()), (3, true));
    assert_eq!(q.try_push(b"e"), Err(ByteTryPushError::Full));
    assert_eq!(q.pop_timeout(Duration::ZERO), Ok(b"b".to_vec()));
    q.try_push(b"e").unwrap();
    let rest: Vec<Vec<u8>> = (0..3)
        .map(|_| q.pop_timeout(Duration::ZERO).unwrap())
        .collect();
    assert_eq!(rest, [&b"c"[..], b"d", b"e"]);
    // A queue bounded by its capacity says so.
    let plain = dir.path().join("plain");
    let _p = ByteQueue::create(&plain, 4, 32, &QueueOptions::new()).unwrap();
    let text = inspect(&plain).unwrap().to_string();
    assert!(
        text.contains("bound:       full at 4 items (the capacity)"),
        "{text}"
    );
}

common::child_entry!(
    #[started_by(a_byte_queue_bounded_at_3_is_full_at_the_4th_push_until_a_pop)]
    fn child_bytes_filler(ctx: ChildCtx) {
        let q = ByteQueue::open(&ctx.path).unwrap();
        assert_eq!(q.bound(), 3);
        for msg in [b"a", b"b", b"c"] {
            q.try_push(msg).unwrap();
        }
        assert_eq!(q.try_push(b"x"), Err(ByteTryPushError::Full));
        assert_eq!(
            q.push_timeout(b"x", Duration::from_millis(10)),
            Err(BytePushTimeoutError::Timeout)
        );
        assert!(q.is_full());
    }
);

common::child_entry!(
    #[started_by(a_byte_queue_bounded_at_3_is_full_at_the_4th_push_until_a_pop)]
    fn child_bytes_popper(ctx: ChildCtx) {
        let q = ByteQueue::open(&ctx.path).unwrap();
        // Until the parent sleeps in its push (held by the bound: the ring
        // has a free slot).
        wait_until("the parent asleep in push", || {
            queue_state(&ctx.path).3.space_waiters > 0
        });
        assert_eq!(q.len(), 3);
        assert_eq!(q.pop_timeout(Duration::ZERO), Ok(b"a".to_vec()));
    }
);
