//! Crash injection: producers and consumers, each a real process, on an SPSC
//! ring and on an MPMC queue, killed with `SIGKILL` at random moments and
//! replaced by fresh processes (for SPSC the replacement takes over the dead
//! holder's role), `N` kills per ring kind. At the end the parent stops the
//! survivors, drains what is left, and checks:
//!
//! - **nobody hung**: every blocking call was made with a timeout
//!   ([`BLOCK_TIMEOUT`]) and none ran out of it (the longest one is
//!   reported);
//! - **nothing lost, nothing duplicated**: every message whose push returned
//!   `Ok` was consumed exactly once (by a child or by the final drain),
//!   except those a killed consumer had taken, which are accounted for
//!   explicitly (below);
//! - for MPMC, the queue's `recovered` statistic is consistent with the
//!   kills (each killed process abandons at most the slots of its one
//!   operation in progress).
//!
//! How messages are accounted for: each producer process numbers its
//! messages with ids from blocks it takes from a shared pool (taken in
//! turn, so with SPSC's one producer at a time the ids follow the order of
//! the pushes) and sets a bit in the shared `pushed` bitmap *after* a push
//! returns `Ok`; a consumer sets a bit in the `consumed` bitmap *after* a
//! pop returns (a bit already set is a duplicate). Around each operation a
//! process stores in `inflight[id]` how many messages the operation may
//! move (0 between operations). So after a kill:
//!
//! - a producer killed with `inflight = n` may have pushed up to `n`
//!   messages it never recorded ("pushed but unrecorded"): allowed, and
//!   checked to be its last ones and at most `n`;
//! - a consumer killed with `inflight = n` may have taken up to `n` messages
//!   and died before recording them ("possibly lost with a killed
//!   consumer"): the recorded-but-never-consumed messages must number at
//!   most the sum of those `n`; a consumer killed between operations
//!   excuses nothing. For SPSC the check is exact in place too: the
//!   messages form one stream and each consumer took one stretch of it, so
//!   every consumer must have recorded its whole stretch, and each gap
//!   between two stretches must be excused by the consumers killed
//!   mid-operation right there (see [`check_spsc_stretches`]).
//!
//! A quarter of the kills go to the newest replacement at a random moment,
//! often before it has finished opening the ring (claiming the role,
//! registering in the file's status block).
//!
//! How long: [`CI_KILLS`] kills per ring kind by default (a few seconds);
//! set `MMRING_STRESS_KILLS` for a long run, e.g.
//!
//! ```sh
//! MMRING_STRESS_KILLS=200 cargo test --release --test crash_stress -- --nocapture
//! ```
//!
//! `MMRING_STRESS_SEED` fixes the random choices of the parent (which
//! process, how long to wait) and of the children (which operations, what
//! batch sizes); the moments the kills land still depend on the scheduler. Each run prints its seed and a
//! summary line.
//!
//! Half the MPMC kills are aimed: the parent stops the victim (`SIGSTOP`)
//! again and again until it is caught holding a slot it claimed and has
//! not published or freed (or [`AIM_TRIES`] stops passed), and kills it
//! there, so that survivors must recover slots under load; the summary
//! counts those hits. The other kills land anywhere: a process wins a slot
//! by storing its claim
//! in it with one compare-and-swap, so no instant leaves a won slot that
//! does not name its owner. (Before format version 3 a process won the
//! position with a compare-and-swap of the tail or head and stored its
//! claim after; one killed in between stalled the queue for good, and this
//! test had to put off kills that would land there: 2 of about 6,600
//! stops did.)

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use common::peek::{Peek, ROLE_CONSUMER, ROLE_PRODUCER};
use common::{Children, Rng, WATCHDOG, is_stopped, signal};
use mmring::Zeroable;
use mmring::mpmc::Queue;
use mmring::spsc::{Consumer, Producer};
use mmring::{
    AtomicArray, Closed, Counter, Patience, Pod, PopTimeoutError, PushTimeoutError, TryPopError,
    TryPushError,
};

/// Kills per ring kind when `MMRING_STRESS_KILLS` is not set.
const CI_KILLS: usize = 20;
/// Stops per aimed MPMC kill before it kills the victim wherever it is.
const AIM_TRIES: usize = 200;
/// The environment variable that asks for a longer run (kills per kind).
const KILLS_VAR: &str = "MMRING_STRESS_KILLS";
/// The environment variable that fixes the random seed.
const SEED_VAR: &str = "MMRING_STRESS_SEED";

/// Every blocking call is made with this timeout; running out of it is a
/// hang (a survivor waited that long for a ring that should have moved).
const BLOCK_TIMEOUT: Duration = Duration::from_secs(20);
/// Message ids come in blocks of this many: a producer takes a block from
/// the shared pool when it starts and whenever it has used up its block
/// (a producer that finds the pool empty idles until it is killed or
/// stopped, counted in the summary). A multiple of 64: each block is whole
/// words of the bitmaps.
const PER: u64 = 1 << 18;
/// Largest batch (`push_slice` / `pop_slice`).
const MAX_BATCH: u64 = 16;
/// Longest random pause between two kills.
const MAX_PAUSE_US: u64 = 20_000;

const SPSC_CAP: usize = 64;
const MPMC_CAP: usize = 16;
const MPMC_PRODUCERS: usize = 3;
const MPMC_CONSUMERS: usize = 3;

/// Indices into the `stats` array.
const HANGS: usize = 0;
const DUPS: usize = 1;
const BAD: usize = 2;
const ORDER: usize = 3;
const CALLS: usize = 4;
/// The longest blocking call that ended after the stop began (a producer
/// waiting on a ring its stopped consumers no longer drain, until the
/// close), in nanoseconds.
const LONGEST_STOPPING: usize = 5;
/// Times a producer found the pool of id blocks empty.
const EXHAUSTED: usize = 6;
const STATS: usize = 7;

/// One message: a unique id (`block * PER + sequence`) and words
/// derived from it (a torn copy shows). 128 bytes, so that copying one in
/// or out of a slot takes a while: kills land inside claimed slots more
/// often.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
#[repr(C)]
struct Msg {
    id: u64,
    check: [u64; 15],
}
mmring::payload!(Msg);

impl Msg {
    fn new(block: u64, seq: u64) -> Self {
        let id = block * PER + seq;
        Self {
            id,
            check: Self::check_of(id),
        }
    }

    fn check_of(id: u64) -> [u64; 15] {
        let mut words = [0; 15];
        let mut x = id ^ 0x6d6d_7269_6e67_0000;
        for w in &mut words {
            x = x.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(17);
            *w = x;
        }
        words
    }

    fn is_whole(&self) -> bool {
        self.check == Self::check_of(self.id)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Spsc,
    Mpmc,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Spsc => "spsc",
            Kind::Mpmc => "mpmc",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "spsc" => Kind::Spsc,
            "mpmc" => Kind::Mpmc,
            other => panic!("unknown ring kind {other:?}"),
        }
    }

    /// (producers, consumers) alive at any time.
    fn procs(self) -> (usize, usize) {
        match self {
            Kind::Spsc => (1, 1),
            Kind::Mpmc => (MPMC_PRODUCERS, MPMC_CONSUMERS),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Producer,
    Consumer,
}

impl Role {
    fn test(self) -> &'static str {
        match self {
            Role::Producer => "child_stress_producer",
            Role::Consumer => "child_stress_consumer",
        }
    }
}

/// The shared files of a run (all in the run's temporary directory).
struct Files {
    /// One bit per message id: set by its producer after the push returned.
    pushed: AtomicArray<u64>,
    /// The next free block of message ids.
    next_block: Counter,
    /// Per block: 1 + the id of the producer process that took it.
    owner: AtomicArray<u64>,
    /// One bit per message id: set by whoever popped it, after the pop.
    consumed: AtomicArray<u64>,
    /// Per process id: messages its operation in progress may move (0:
    /// between operations).
    inflight: AtomicArray<u64>,
    /// Per process id: its longest blocking call that ended while the run
    /// was on (before the stop), in nanoseconds.
    longest: AtomicArray<u64>,
    /// Per process id: when its longest blocking call ended (nanoseconds
    /// since the Unix epoch).
    longest_end: AtomicArray<u64>,
    /// Per process id: when it had opened the ring (holds its role), in
    /// nanoseconds since the Unix epoch; 0 before.
    ready: AtomicArray<u64>,
    /// Per consumer (and the final drain, at index `ids`): 1 + the id of
    /// the first message it recorded (0: none yet). Stored before the
    /// message's `consumed` bit.
    first: AtomicArray<u64>,
    /// Per consumer (and the final drain): 1 + the id of the last message
    /// it started to record, stored before its `consumed` bit (so a message
    /// whose recording a kill cut short is still known to be its).
    began: AtomicArray<u64>,
    /// `HANGS`, `DUPS`, `BAD`, `ORDER`, `CALLS`, `LONGEST_STOPPING`.
    stats: AtomicArray<u64>,
    /// 0 running; 1 consumers stop; 2 producers stop too (the ring is closed).
    stop: Counter,
}

impl Files {
    fn create(dir: &Path, ids: usize, blocks: usize) -> Self {
        let words = blocks * (PER / 64) as usize;
        Self {
            pushed: AtomicArray::create(dir.join("pushed"), words).unwrap(),
            next_block: Counter::create(dir.join("next_block"), 0).unwrap(),
            owner: AtomicArray::create(dir.join("owner"), blocks).unwrap(),
            consumed: AtomicArray::create(dir.join("consumed"), words).unwrap(),
            inflight: AtomicArray::create(dir.join("inflight"), ids).unwrap(),
            longest: AtomicArray::create(dir.join("longest"), ids).unwrap(),
            longest_end: AtomicArray::create(dir.join("longest_end"), ids).unwrap(),
            ready: AtomicArray::create(dir.join("ready"), ids).unwrap(),
            first: AtomicArray::create(dir.join("first"), ids + 1).unwrap(),
            began: AtomicArray::create(dir.join("began"), ids + 1).unwrap(),
            stats: AtomicArray::create(dir.join("stats"), STATS).unwrap(),
            stop: Counter::create(dir.join("stop"), 0).unwrap(),
        }
    }

    fn open(dir: &Path) -> Self {
        Self {
            pushed: AtomicArray::open(dir.join("pushed")).unwrap(),
            next_block: Counter::open(dir.join("next_block")).unwrap(),
            owner: AtomicArray::open(dir.join("owner")).unwrap(),
            consumed: AtomicArray::open(dir.join("consumed")).unwrap(),
            inflight: AtomicArray::open(dir.join("inflight")).unwrap(),
            longest: AtomicArray::open(dir.join("longest")).unwrap(),
            longest_end: AtomicArray::open(dir.join("longest_end")).unwrap(),
            ready: AtomicArray::open(dir.join("ready")).unwrap(),
            first: AtomicArray::open(dir.join("first")).unwrap(),
            began: AtomicArray::open(dir.join("began")).unwrap(),
            stats: AtomicArray::open(dir.join("stats")).unwrap(),
            stop: Counter::open(dir.join("stop")).unwrap(),
        }
    }

    /// Runs one blocking call, keeping the longest duration of `me`'s.
    fn timed<R>(&self, me: usize, call: impl FnOnce() -> R) -> R {
        let start = Instant::now();
        let r = call();
        let ns = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        if self.stop.load() == 0 {
            if self.longest[me].fetch_max(ns) < ns {
                // When it ended, to set beside the parent's kills.
                self.longest_end[me].store(unix_ns());
            }
        } else {
            self.stats[LONGEST_STOPPING].fetch_max(ns);
        }
        self.stats[CALLS].fetch_add(1);
        r
    }

    fn hang(&self, what: &str) {
        eprintln!("HANG: {what} ran out of its {BLOCK_TIMEOUT:?} timeout");
        self.stats[HANGS].fetch_add(1);
    }

    /// Records a popped message, taken by consumer `by` (the final drain:
    /// `ids`).
    fn record_consumed(&self, by: usize, m: &Msg, order: Option<&mut HashMap<u64, u64>>) {
        if !m.is_whole() || m.id >= self.owner.len() as u64 * PER {
            eprintln!("BAD: torn or foreign message {m:?}");
            self.stats[BAD].fetch_add(1);
            return;
        }
        if let Some(order) = order {
            // One consumer's claims move forward through the ring, and a
            // producer's messages sit in it in the order pushed.
            let (block, seq) = (m.id / PER, m.id % PER);
            if let Some(&last) = order.get(&block)
                && seq <= last
            {
                eprintln!("ORDER: block {block}: {seq} after {last}");
                self.stats[ORDER].fetch_add(1);
            }
            order.insert(block, seq);
        }
        if self.first[by].load() == 0 {
            self.first[by].store(m.id + 1);
        }
        self.began[by].store(m.id + 1);
        let mask = 1u64 << (m.id % 64);
        if self.consumed[(m.id / 64) as usize]
            .fetch_update(|w| (w & mask == 0).then_some(w | mask))
            .is_err()
        {
            eprintln!("DUP: message {} received twice", m.id);
            self.stats[DUPS].fetch_add(1);
        }
    }
}

/// Takes a block of message ids for producer `me` (`None`: the pool is
/// empty).
fn take_block(f: &Files, me: usize) -> Option<u64> {
    let b = u64::try_from(f.next_block.fetch_add(1)).expect("non-negative");
    if b >= f.owner.len() as u64 {
        f.stats[EXHAUSTED].fetch_add(1);
        return None;
    }
    f.owner[b as usize].store(me as u64 + 1);
    Some(b)
}

/// Nanoseconds since the Unix epoch (a clock all processes share).
fn unix_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

fn kills() -> usize {
    std::env::var(KILLS_VAR)
        .ok()
        .map(|v| v.parse().expect("MMRING_STRESS_KILLS is a number"))
        .unwrap_or(CI_KILLS)
}

fn seed() -> u64 {
    std::env::var(SEED_VAR).ok().map_or_else(
        || {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        },
        |v| v.parse().expect("MMRING_STRESS_SEED is a number"),
    )
}

// ---------------------------------------------------------------------------
// The two ring kinds behind one interface.
// ---------------------------------------------------------------------------

enum Tx {
    Spsc(Producer<Msg>),
    Mpmc(Queue<Msg>),
}

// The library's push errors hand the (128-byte) message back: large on
// purpose.
#[allow(clippy::result_large_err)]
impl Tx {
    fn try_push(&mut self, m: Msg) -> Result<(), TryPushError<Msg>> {
        match self {
            Tx::Spsc(p) => p.try_push(m),
            Tx::Mpmc(q) => q.try_push(m),
        }
    }

    fn push_timeout(&mut self, m: Msg) -> Result<(), PushTimeoutError<Msg>> {
        match self {
            Tx::Spsc(p) => p.push_timeout(m, BLOCK_TIMEOUT),
            Tx::Mpmc(q) => q.push_timeout(m, BLOCK_TIMEOUT),
        }
    }

    fn push_slice(&mut self, ms: &[Msg]) -> Result<usize, Closed> {
        match self {
            Tx::Spsc(p) => p.push_slice(ms),
            Tx::Mpmc(q) => q.push_slice(ms),
        }
    }
}

enum Rx {
    Spsc(Consumer<Msg>),
    Mpmc(Queue<Msg>),
}

impl Rx {
    fn try_pop(&mut self) -> Result<Msg, TryPopError> {
        match self {
            Rx::Spsc(c) => c.try_pop(),
            Rx::Mpmc(q) => q.try_pop(),
        }
    }

    fn pop_timeout(&mut self, timeout: Duration) -> Result<Msg, PopTimeoutError> {
        match self {
            Rx::Spsc(c) => c.pop_timeout(timeout),
            Rx::Mpmc(q) => q.pop_timeout(timeout),
        }
    }

    fn pop_slice(&mut self, out: &mut [Msg]) -> Result<usize, Closed> {
        match self {
            Rx::Spsc(c) => c.pop_slice(out),
            Rx::Mpmc(q) => q.pop_slice(out),
        }
    }
}

/// Opens the ring with `open`. It must succeed at once: for SPSC the
/// previous holder of the role was killed and reaped before this process
/// was started, so its role is free to take over.
fn open_ring<T>(kind: Kind, dir: &Path, open: impl Fn(Kind, &Path) -> Result<T, String>) -> T {
    open(kind, dir).unwrap_or_else(|e| panic!("opening the {} ring: {e}", kind.name()))
}

// ---------------------------------------------------------------------------
// Children.
// ---------------------------------------------------------------------------

common::child_entry!(
    /// A producer process: pushes its numbered messages through every push
    /// flavour until the parent stops it (or it runs out of numbers, then
    /// idles), recording each message after its push returned `Ok`.
    #[started_by(
        spsc_producers_and_consumers_killed_at_random,
        mpmc_producers_and_consumers_killed_at_random
    )]
    fn child_stress_producer(ctx: ChildCtx) {
        let kind = Kind::parse(ctx.arg.split(' ').next().unwrap_or_default());
        let me = ctx.index;
        let f = Files::open(&ctx.path);
        let mut tx = open_ring(kind, &ctx.path, |kind, dir| match kind {
            Kind::Spsc => Producer::open_or_create(dir.join("ring"), SPSC_CAP)
                .map(Tx::Spsc)
                .map_err(|e| e.to_string()),
            Kind::Mpmc => Queue::open(dir.join("ring"))
                .map(Tx::Mpmc)
                .map_err(|e| e.to_string()),
        });
        f.ready[me].store(unix_ns());
        let mut rng = Rng::new(seed_of(&ctx));
        let deadline = Instant::now() + WATCHDOG * 20;
        let mut block = take_block(&f, me);
        let mut next = 0u64;
        let mut total = 0u64;
        while f.stop.load() < 2 {
            assert!(Instant::now() < deadline, "watchdog: never stopped");
            if next + MAX_BATCH > PER && block.is_some() {
                block = take_block(&f, me);
                next = 0;
            }
            let Some(block) = block else {
                // Out of numbers: idle until killed or stopped.
                std::thread::sleep(Duration::from_millis(1));
                continue;
            };
            let op = rng.below(4);
            let n = if op < 2 { 1 } else { 1 + rng.below(MAX_BATCH) };
            let msgs: Vec<Msg> = (next..next + n).map(|s| Msg::new(block, s)).collect();
            f.inflight[me].store(n);
            let res = match op {
                0 => match tx.try_push(msgs[0]) {
                    Ok(()) => Some(1),
                    Err(TryPushError::Full(m)) => push_blocking(&f, me, &mut tx, m),
                    Err(TryPushError::Closed(_)) => None,
                },
                1 => push_blocking(&f, me, &mut tx, msgs[0]),
                _ => match tx.push_slice(&msgs) {
                    Ok(0) => push_blocking(&f, me, &mut tx, msgs[0]),
                    Ok(k) => Some(k as u64),
                    Err(Closed) => None,
                },
            };
            let Some(pushed) = res else {
                // Closed: only once the consumers were stopped (the parent
                // closes the ring).
                assert!(f.stop.load() >= 1, "the ring was closed under a producer");
                f.inflight[me].store(0);
                break;
            };
            for m in &msgs[..pushed as usize] {
                let mask = 1u64 << (m.id % 64);
                f.pushed[(m.id / 64) as usize]
                    .fetch_update(|w| Some(w | mask))
                    .unwrap();
            }
            next += pushed;
            total += pushed;
            f.inflight[me].store(0);
        }
        println!("producer {me} pushed {total}");
    }
);

common::child_entry!(
    /// A consumer process: pops through every pop flavour until the parent
    /// stops it, recording each message after the pop returned.
    #[started_by(
        spsc_producers_and_consumers_killed_at_random,
        mpmc_producers_and_consumers_killed_at_random
    )]
    fn child_stress_consumer(ctx: ChildCtx) {
        let kind = Kind::parse(ctx.arg.split(' ').next().unwrap_or_default());
        let me = ctx.index;
        let f = Files::open(&ctx.path);
        let mut rx = open_ring(kind, &ctx.path, |kind, dir| match kind {
            Kind::Spsc => Consumer::open_or_create(dir.join("ring"), SPSC_CAP)
                .map(Rx::Spsc)
                .map_err(|e| e.to_string()),
            Kind::Mpmc => Queue::open(dir.join("ring"))
                .map(Rx::Mpmc)
                .map_err(|e| e.to_string()),
        });
        f.ready[me].store(unix_ns());
        let mut rng = Rng::new(seed_of(&ctx));
        let deadline = Instant::now() + WATCHDOG * 20;
        let mut order = HashMap::new();
        let mut buf = [Msg::zeroed(); MAX_BATCH as usize];
        let mut got = 0u64;
        while f.stop.load() == 0 {
            assert!(Instant::now() < deadline, "watchdog: never stopped");
            let op = rng.below(3);
            let n = if op < 2 { 1 } else { 1 + rng.below(MAX_BATCH) };
            f.inflight[me].store(n);
            let res = match op {
                0 => match rx.try_pop() {
                    Ok(m) => {
                        buf[0] = m;
                        Some(1)
                    }
                    Err(TryPopError::Empty) => pop_blocking(&f, me, &mut rx, &mut buf),
                    Err(TryPopError::Closed) => None,
                },
                1 => pop_blocking(&f, me, &mut rx, &mut buf),
                _ => match rx.pop_slice(&mut buf[..n as usize]) {
                    Ok(0) => pop_blocking(&f, me, &mut rx, &mut buf),
                    Ok(k) => Some(k),
                    Err(Closed) => None,
                },
            };
            let Some(k) = res else {
                // Nobody closes the ring while consumers run.
                panic!("the ring was closed under a consumer");
            };
            for m in &buf[..k] {
                f.record_consumed(me, m, Some(&mut order));
            }
            got += k as u64;
            f.inflight[me].store(0);
        }
        println!("consumer {me} received {got}");
    }
);

/// A blocking push of one message: how many were pushed (0 or 1), `None`
/// once the ring is closed.
#[allow(clippy::result_large_err)]
fn push_blocking(f: &Files, me: usize, tx: &mut Tx, m: Msg) -> Option<u64> {
    match f.timed(me, || tx.push_timeout(m)) {
        Ok(()) => Some(1),
        // No live consumer (SPSC: it died, or it left at the stop): not
        // pushed; its replacement comes, try again (letting it run).
        Err(PushTimeoutError::Disconnected(_)) => {
            std::thread::yield_now();
            Some(0)
        }
        Err(PushTimeoutError::Timeout(_)) => {
            f.hang("push");
            Some(0)
        }
        Err(PushTimeoutError::Closed(_)) => None,
    }
}

/// A blocking pop of one message into `buf[0]`: how many were popped (0 or
/// 1), `None` once closed and drained.
fn pop_blocking(f: &Files, me: usize, rx: &mut Rx, buf: &mut [Msg]) -> Option<usize> {
    match f.timed(me, || rx.pop_timeout(BLOCK_TIMEOUT)) {
        Ok(m) => {
            buf[0] = m;
            Some(1)
        }
        // No live producer (SPSC: it died): its replacement comes (let it
        // run).
        Err(PopTimeoutError::Disconnected) => {
            std::thread::yield_now();
            Some(0)
        }
        Err(PopTimeoutError::Timeout) => {
            f.hang("pop");
            Some(0)
        }
        Err(PopTimeoutError::Closed) => None,
    }
}

/// Each child's random stream: the run's seed (after the ring kind in the
/// argument) and its id.
fn seed_of(ctx: &common::ChildCtx) -> u64 {
    let run: u64 = ctx
        .arg
        .split(' ')
        .nth(1)
        .and_then(|v| v.parse().ok())
        .expect("the run's seed in the child's argument");
    run ^ (ctx.index as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

// ---------------------------------------------------------------------------
// The MPMC queue's words, read from the file (docs/FORMAT.md).
// ---------------------------------------------------------------------------

impl Peek {
    /// Whether process `pid` holds a slot right now: a producer's claim on
    /// a position not published yet, or a consumer's on one not freed
    /// (claims: role in bits 63-62, pid in 61-40, position in 39-0).
    fn holds_slot(&self, pid: u32) -> bool {
        let tail = self.tail();
        (tail.saturating_sub(self.capacity)..tail + 2).any(|pos| {
            let (seq, claim) = self.slot(pos);
            let on_pos = (claim ^ pos) & ((1 << 40) - 1) == 0;
            let by_pid = (claim >> 40) & 0x3f_ffff == u64::from(pid);
            // Sequences count half-steps: 2p free for p (a producer's claim
            // not published yet), 2p + 1 holding p (a consumer's not freed).
            let open = match claim >> 62 {
                ROLE_PRODUCER => seq == pos << 1,
                ROLE_CONSUMER => seq == (pos << 1) | 1,
                _ => false,
            };
            on_pos && by_pid && open
        })
    }

    /// One line per slot, for a stall report.
    fn dump(&self) -> String {
        let (tail, head) = (self.tail(), self.head());
        let mut out = format!("tail {tail}, head {head}, recovered {}\n", self.recovered());
        for pos in tail.saturating_sub(self.capacity)..tail.max(head) + 1 {
            let (seq, claim) = self.slot(pos);
            out += &format!(
                "  pos {pos}: seq {seq} claim role {} pid {} position (low 40 bits) {}\n",
                claim >> 62,
                (claim >> 40) & 0x3f_ffff,
                claim & ((1 << 40) - 1)
            );
        }
        out
    }
}

// ---------------------------------------------------------------------------
// The parent.
// ---------------------------------------------------------------------------

/// A process killed by the parent.
struct Death {
    id: usize,
    role: Role,
    /// When (nanoseconds since the Unix epoch).
    at: u64,
    /// Its `inflight` word when it died.
    inflight: u64,
}

#[test]
fn spsc_producers_and_consumers_killed_at_random() {
    run(Kind::Spsc);
}

#[test]
fn mpmc_producers_and_consumers_killed_at_random() {
    run(Kind::Mpmc);
}

/// SPSC only: with one consumer at a time, the messages form one stream in
/// ring order (producer incarnations one after another, each in sequence
/// order: ascending ids), and each consumer took one stretch of it, the
/// final drain the last. Checks that each consumer recorded its whole
/// stretch (up to the message a kill cut short), and that each gap between
/// two stretches (messages taken and never recorded) is no longer than the
/// in-flight counts of the consumers killed mid-operation that could have
/// taken it: the one before the gap and any that recorded nothing since.
/// `consumers`: their ids in the order they ran, the final drain (`ids`)
/// last. Returns the problems found.
fn check_spsc_stretches(f: &Files, consumers: &[usize], deaths: &[Death]) -> Vec<String> {
    let consumed = |id: u64| f.consumed[(id / 64) as usize].load() & (1 << (id % 64)) != 0;
    let mut stream = Vec::new();
    for w in 0..f.pushed.len() {
        let mut x = f.pushed[w].load() | f.consumed[w].load();
        while x != 0 {
            stream.push(w as u64 * 64 + u64::from(x.trailing_zeros()));
            x &= x - 1;
        }
    }
    let pos = |id: u64| stream.partition_point(|&x| x < id);
    let inflight = |c: usize| deaths.iter().find(|d| d.id == c).map_or(0, |d| d.inflight);
    let mut problems = Vec::new();
    let mut cursor = 0;
    let mut excuse = 0;
    let gap_check = |from: usize, to: usize, excuse: u64, before: usize| {
        let mut problems = Vec::new();
        let taken: Vec<u64> = stream[from..to]
            .iter()
            .copied()
            .filter(|&id| consumed(id))
            .collect();
        if !taken.is_empty() {
            problems.push(format!(
                "consumed outside any consumer's stretch (before consumer {before}): {taken:?}"
            ));
        }
        if (to - from) as u64 > excuse {
            problems.push(format!(
                "{} messages lost before consumer {before}'s stretch ({:?}...), only {excuse} \
                 in flight in consumers killed since the previous stretch",
                to - from,
                &stream[from..to.min(from + 10)]
            ));
        }
        problems
    };
    for &c in consumers {
        let (first, began) = (f.first[c].load(), f.began[c].load());
        if first == 0 {
            excuse += inflight(c);
            continue;
        }
        let (a, b) = (pos(first - 1), pos(began - 1));
        problems.extend(gap_check(cursor, a, excuse, c));
        let holes: Vec<u64> = stream[a..b]
            .iter()
            .copied()
            .filter(|&id| !consumed(id))
            .take(10)
            .collect();
        if !holes.is_empty() {
            problems.push(format!("lost inside consumer {c}'s stretch: {holes:?}"));
        }
        cursor = if stream.get(b) == Some(&(began - 1)) && consumed(began - 1) {
            b + 1
        } else {
            b
        };
        excuse = inflight(c);
    }
    problems.extend(gap_check(cursor, stream.len(), excuse, usize::MAX));
    problems
}

fn run(kind: Kind) {
    if std::env::var(common::ROLE_VAR).is_ok() {
        return; // a child of another test
    }
    let kills = kills();
    let seed = seed();
    println!("{} crash stress: {kills} kills, seed {seed}", kind.name());
    let (np, nc) = kind.procs();
    let ids = np + nc + kills;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Blocks of message ids: one per producer process, and plenty more for
    // the producers that live long.
    let blocks = np + kills + 64;
    let f = Files::create(d, ids, blocks);
    let queue =
        (kind == Kind::Mpmc).then(|| Queue::<Msg>::create(d.join("ring"), MPMC_CAP).unwrap());
    let peek = queue.as_ref().map(Peek::new);
    let mut kids = Children::new();
    let mut live: Vec<(usize, Role)> = Vec::new();
    let mut spawned_at = vec![0u64; ids];
    let mut spawn = |kids: &mut Children, role: Role, id: usize| {
        spawned_at[id] = unix_ns();
        kids.spawn(role.test(), id, d, &format!("{} {seed}", kind.name()));
    };
    for id in 0..np + nc {
        let role = if id < np {
            Role::Producer
        } else {
            Role::Consumer
        };
        spawn(&mut kids, role, id);
        live.push((id, role));
    }
    let mut next_id = np + nc;
    let mut rng = Rng::new(seed);
    let mut deaths: Vec<Death> = Vec::new();
    let mut killed_starting = 0u64;
    let mut aimed_hits = 0u64;
    let started = Instant::now();
    let wait_ready = |kids: &mut Children, live: &[(usize, Role)]| {
        kids.wait_for("every process to open the ring", || {
            live.iter().all(|&(id, _)| f.ready[id].load() != 0)
        });
    };
    // The slot in `live` of the last replacement started.
    let mut newest = None;
    while deaths.len() < kills {
        // Mostly a process at work; one kill in four goes to the newest
        // replacement, perhaps still starting up or opening the ring.
        let early = newest.filter(|_| rng.below(4) == 0);
        if early.is_none() {
            wait_ready(&mut kids, &live);
        }
        std::thread::sleep(Duration::from_micros(rng.below(MAX_PAUSE_US)));
        kids.check_none_failed();
        let v = early.unwrap_or_else(|| rng.below(live.len() as u64) as usize);
        let (id, role) = live[v];
        if let Some(peek) = peek
            .as_ref()
            .filter(|_| early.is_none() && rng.below(2) == 0)
        {
            // Half the MPMC kills aim at the windows recovery is for: the
            // victim is stopped until it is caught holding a slot it
            // claimed and has not published (freed), or a few tries passed.
            let pid = kids.pid(id);
            for _ in 0..AIM_TRIES {
                signal(pid, libc::SIGSTOP);
                kids.wait_for("the victim to stop", || is_stopped(pid));
                if peek.holds_slot(pid) {
                    aimed_hits += 1;
                    break;
                }
                signal(pid, libc::SIGCONT);
                std::thread::sleep(Duration::from_micros(rng.below(200)));
            }
        }
        kids.kill(id);
        if f.ready[id].load() == 0 {
            killed_starting += 1;
        }
        deaths.push(Death {
            id,
            role,
            at: unix_ns(),
            inflight: f.inflight[id].load(),
        });
        spawn(&mut kids, role, next_id);
        live[v] = (next_id, role);
        newest = Some(v);
        next_id += 1;
    }
    wait_ready(&mut kids, &live);
    let kill_time = started.elapsed();

    // Stop: consumers first, so that the ring fills up and the final
    // drain has something to check; then the producers, woken by the close
    // if they sleep on a full ring (SPSC: the consumer's exit left the ring
    // open, and a producer asleep on it full got `Disconnected`; the
    // parent closes it with a consumer handle of its own).
    f.stop.store(1);
    for &(id, _) in live.iter().filter(|(_, r)| *r == Role::Consumer) {
        kids.wait_ok(id);
    }
    f.stop.store(2);
    let spsc_rx = match &queue {
        Some(q) => {
            q.close();
            None
        }
        None => {
            let rx = Consumer::<Msg>::open(d.join("ring")).unwrap();
            rx.close();
            Some(rx)
        }
    };
    for &(id, _) in live.iter().filter(|(_, r)| *r == Role::Producer) {
        kids.wait_ok(id);
    }

    // The final drain.
    let mut drained = 0u64;
    // Whether the file's status block (the attached-pid list, under a
    // seqlock) is readable, or a process killed in the middle of
    // registering left it locked.
    let status = |r: &mmring::Region| match r.status(Patience::timeout(Duration::from_secs(1))) {
        Ok(_) => "readable".to_string(),
        Err(e) => format!("unreadable ({e})"),
    };
    let status_block = match &queue {
        Some(q) => loop {
            match q.pop_timeout(BLOCK_TIMEOUT) {
                Ok(m) => {
                    f.record_consumed(ids, &m, None);
                    drained += 1;
                }
                Err(PopTimeoutError::Closed) => break status(q.region()),
                Err(e) => panic!(
                    "final drain: {e}: the queue is stalled\n{}",
                    peek.as_ref().expect("mpmc").dump()
                ),
            }
        },
        None => {
            let mut rx = spsc_rx.expect("spsc");
            loop {
                match rx.pop_timeout(BLOCK_TIMEOUT) {
                    Ok(m) => {
                        f.record_consumed(ids, &m, None);
                        drained += 1;
                    }
                    Err(PopTimeoutError::Closed) => break status(rx.region()),
                    Err(e) => panic!("final drain: {e}"),
                }
            }
        }
    };

    // The accounts.
    let mut pushed = 0u64;
    let mut consumed = 0u64;
    let mut lost = 0u64;
    let mut lost_ids = Vec::new();
    let mut unrecorded = 0u64;
    let mut problems = Vec::new();
    let used_blocks = usize::try_from(f.next_block.load())
        .expect("non-negative")
        .min(blocks);
    // Each producer's last block (the only one a kill can leave messages
    // pushed and unrecorded in).
    let mut last_block = HashMap::new();
    for b in 0..used_blocks {
        last_block.insert(f.owner[b].load(), b);
    }
    for b in 0..used_blocks {
        let words = b * (PER / 64) as usize..(b + 1) * (PER / 64) as usize;
        let mut last_recorded = None;
        let mut extra = Vec::new();
        for w in words {
            let (p, c) = (f.pushed[w].load(), f.consumed[w].load());
            pushed += u64::from(p.count_ones());
            consumed += u64::from(c.count_ones());
            lost += u64::from((p & !c).count_ones());
            if p & !c != 0 && lost_ids.len() < 20 {
                lost_ids.push(w as u64 * 64 + u64::from((p & !c).trailing_zeros()));
            }
            if p != 0 {
                last_recorded = Some(w as u64 * 64 + 63 - u64::from(p.leading_zeros()));
            }
            let mut x = c & !p;
            while x != 0 {
                extra.push(w as u64 * 64 + u64::from(x.trailing_zeros()));
                x &= x - 1;
            }
        }
        if extra.is_empty() {
            continue;
        }
        unrecorded += extra.len() as u64;
        // Pushed but unrecorded: only by a producer killed mid-push, in its
        // last block, after its last recorded message, at most as many as
        // that push could move.
        let owner = f.owner[b].load();
        let death = deaths
            .iter()
            .find(|d| d.id as u64 + 1 == owner && d.role == Role::Producer);
        let ok = death.is_some_and(|d| extra.len() as u64 <= d.inflight)
            && last_block.get(&owner) == Some(&b)
            && last_recorded.is_none_or(|l| extra.iter().all(|&e| e > l));
        if !ok {
            problems.push(format!(
                "block {b} (producer {}): consumed but never recorded as pushed: {extra:?} \
                 (last recorded {last_recorded:?}, killed with {:?} in flight)",
                owner.wrapping_sub(1),
                death.map(|d| d.inflight)
            ));
        }
    }
    if kind == Kind::Spsc {
        let mut consumers: Vec<usize> = (0..next_id)
            .filter(|&id| {
                live.contains(&(id, Role::Consumer))
                    || deaths
                        .iter()
                        .any(|d| d.id == id && d.role == Role::Consumer)
            })
            .collect();
        consumers.push(ids);
        problems.extend(check_spsc_stretches(&f, &consumers, &deaths));
    }
    let consumer_kills = deaths.iter().filter(|d| d.role == Role::Consumer).count();
    let excused: u64 = deaths
        .iter()
        .filter(|d| d.role == Role::Consumer)
        .map(|d| d.inflight)
        .sum();
    let mid_op_consumer_kills = deaths
        .iter()
        .filter(|d| d.role == Role::Consumer && d.inflight > 0)
        .count();
    let in_flight_all: u64 = deaths.iter().map(|d| d.inflight).sum();
    let recovered = peek.as_ref().map(Peek::recovered);
    let longest_id = (0..next_id)
        .max_by_key(|&id| f.longest[id].load())
        .unwrap_or(0);
    let longest = Duration::from_nanos(f.longest[longest_id].load());
    {
        // What happened around the longest blocking call.
        let end = f.longest_end[longest_id].load();
        let begin = end.saturating_sub(longest.as_nanos() as u64);
        let role = if deaths
            .iter()
            .any(|d| d.id == longest_id && d.role == Role::Consumer)
            || live.contains(&(longest_id, Role::Consumer))
        {
            "consumer"
        } else {
            "producer"
        };
        let during: Vec<String> = deaths
            .iter()
            .filter(|d| d.at + 100_000_000 >= begin && d.at <= end)
            .map(|d| {
                format!(
                    "{:?} {} at {:+.3}s",
                    d.role,
                    d.id,
                    (d.at as f64 - begin as f64) / 1e9
                )
            })
            .collect();
        let starts: Vec<String> = (0..next_id)
            .filter(|&id| spawned_at[id] + 100_000_000 >= begin && spawned_at[id] <= end)
            .map(|id| {
                let ready = f.ready[id].load();
                format!(
                    "{id} at {:+.3}s (opened {})",
                    (spawned_at[id] as f64 - begin as f64) / 1e9,
                    if ready == 0 {
                        "never".to_string()
                    } else {
                        format!("{:+.3}s", (ready as f64 - begin as f64) / 1e9)
                    }
                )
            })
            .collect();
        println!(
            "{} longest blocking call: {longest:?}, {role} {longest_id}; from 0.1 s before it \
             began to its end (times from its beginning), kills: {during:?}; processes \
             started: {starts:?}",
            kind.name()
        );
    }
    let stat = |i: usize| f.stats[i].load();
    println!(
        "{} crash stress summary: kills {} ({} producers, {consumer_kills} consumers, \
         {mid_op_consumer_kills} of them mid-operation, {killed_starting} of all before \
         they had opened the ring), id blocks used {used_blocks} of {blocks} (pool found \
         empty {} times), pushed {pushed} (+{unrecorded} \
         pushed by killed producers, unrecorded), consumed {consumed} ({drained} in the \
         final drain), lost {lost} (accounted to consumers killed mid-operation, at most \
         {excused}), lost beyond that {}, duplicated {}, torn {}, out of order {}, \
         recovered slots {}, hangs {}, blocking calls {}, longest blocking call {longest:?} \
         ({:?} while stopping), \
         kill phase {kill_time:.1?}, the file's status block {status_block}{}",
        kind.name(),
        deaths.len(),
        deaths.len() - consumer_kills,
        stat(EXHAUSTED),
        lost.saturating_sub(excused),
        stat(DUPS),
        stat(BAD),
        stat(ORDER),
        recovered.map_or_else(|| "n/a".to_string(), |r| r.to_string()),
        stat(HANGS),
        stat(CALLS),
        Duration::from_nanos(stat(LONGEST_STOPPING)),
        if kind == Kind::Mpmc {
            format!(", kills caught holding a slot {aimed_hits}")
        } else {
            String::new()
        },
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert_eq!(stat(HANGS), 0, "blocking calls ran out of their timeout");
    assert_eq!(stat(DUPS), 0, "messages received twice");
    assert_eq!(stat(BAD), 0, "torn or foreign messages");
    assert_eq!(stat(ORDER), 0, "messages out of order");
    assert!(
        lost <= excused,
        "{lost} messages lost, only {excused} excused by consumers killed mid-operation; \
         first lost ids {lost_ids:?}"
    );
    if let Some(r) = recovered {
        // Each killed process abandons at most the slots of its one
        // operation in progress, and each slot is recovered once.
        assert!(
            r <= in_flight_all,
            "recovered {r} slots, more than the {in_flight_all} the kills left in flight"
        );
    }
    assert!(
        consumed + lost == pushed + unrecorded,
        "accounts do not balance"
    );
    drop(kids);
}
