//! The several-party runner of the MPMC rows: `P` producers and `C`
//! consumers on one queue, each a forked child ([`procs`](fn@procs)) or a thread
//! ([`threads`]), the caller only coordinating (and timing) — on a 2-core
//! machine 2P2C is four busy parties on two cores, so the coordinator
//! sleeps instead of taking a core from them.
//!
//! The protocol, over words in a shared mapping (or on the heap for
//! threads), every word on its own 128-byte stretch where it is written
//! during the run:
//!
//! 1. every party raises its `READY` and waits (yielding) for `GO`;
//! 2. the coordinator raises `GO` and starts its clock; producer `p` sends
//!    messages tagged `p << 56 | i` for `i = 0, 1, 2 ...`
//!    ([`flow::tagged_sender`]) and keeps its `COUNT` equal to the number
//!    actually sent; consumers check every message ([`Tally`]) and keep
//!    their `COUNT` equal to the number taken;
//! 3. once the [`Budget`] is spent (a sleep for a timed one) the
//!    coordinator raises `STOP`; the producers finish and raise `DONE`;
//!    the coordinator waits until the consumers' counts add up to the
//!    producers' — every message sent has been taken — and stops the
//!    clock; then it raises `END` and wakes whatever sleeps in the queue;
//!    consumers that find the queue empty see `END`, publish their tallies
//!    and raise `DONE`;
//! 4. the coordinator checks the tallies: for every producer, the messages
//!    taken by all consumers together are exactly `0..sent`, each once
//!    (count, sum and sum of squares), and each consumer saw them in
//!    increasing order (the queue is FIFO per producer).
//!
//! The figure is messages taken per second from `GO` to the last message
//! taken, drain included.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::yield_now;
use std::time::{Duration, Instant};

use super::control::{Budget, Sample};
use super::flow::{self, Message, Rx, Tx};
use super::procs;

/// The most producers, and the most consumers, of a run.
pub const MAX_SIDE: usize = 4;

/// Where a producer's number sits in a message's word.
pub const TAG_SHIFT: u32 = 56;

/// The sequence-number bits of a message's word.
const SEQ_MASK: u64 = (1 << TAG_SHIFT) - 1;

/// Words from one control word to the next (128 bytes).
const STRIDE: usize = 16;
const GO: usize = 0;
const STOP: usize = STRIDE;
const END: usize = 2 * STRIDE;
/// The first party's block; party `i`'s is `i * BLOCK` further.
const PARTIES: usize = 3 * STRIDE;
/// A party's words: `READY`, `DONE`, `FAILED` on the first stretch,
/// `COUNT` alone on the second (written on every message), the tallies
/// (three words per producer) on the third.
const BLOCK: usize = 3 * STRIDE;
const READY: usize = 0;
const DONE: usize = 1;
const FAILED: usize = 2;
const COUNT: usize = STRIDE;
const TALLY: usize = 2 * STRIDE;

static_assertions::const_assert!(3 * MAX_SIDE <= STRIDE);

/// The number of `AtomicU64` words a run needs.
pub const WORDS: usize = PARTIES + 2 * MAX_SIDE * BLOCK;

/// How long the coordinator waits for a party to start, or to finish once
/// asked.
const PATIENCE: Duration = Duration::from_secs(10);

/// How long the consumers may take no message at all while some sent are
/// still missing, once the producers are done.
const DRAIN_PATIENCE: Duration = Duration::from_secs(1);

/// How long the coordinator sleeps between two looks at the words.
const POLL: Duration = Duration::from_micros(50);

/// How many producers and consumers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    /// Producers, 1 to [`MAX_SIDE`].
    pub producers: usize,
    /// Consumers, 1 to [`MAX_SIDE`].
    pub consumers: usize,
}

impl Shape {
    /// One producer, one consumer.
    pub const ONE: Shape = Shape {
        producers: 1,
        consumers: 1,
    };
    /// Two producers, two consumers.
    pub const TWO: Shape = Shape {
        producers: 2,
        consumers: 2,
    };

    /// "1P1C", "2P2C" ...
    pub fn name(self) -> String {
        format!("{}P{}C", self.producers, self.consumers)
    }

    fn parties(self) -> usize {
        self.producers + self.consumers
    }

    fn check(self) -> io::Result<()> {
        if (1..=MAX_SIDE).contains(&self.producers) && (1..=MAX_SIDE).contains(&self.consumers) {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{self:?}: 1 to {MAX_SIDE} producers and consumers"),
            ))
        }
    }
}

/// The control words of a run.
#[derive(Clone, Copy, Debug)]
struct Words<'a> {
    words: &'a [AtomicU64],
}

impl<'a> Words<'a> {
    fn new(words: &'a [AtomicU64]) -> Self {
        assert!(words.len() >= WORDS, "a crowd run needs {WORDS} words");
        Self { words }
    }

    fn at(&self, i: usize) -> &'a AtomicU64 {
        &self.words[i]
    }

    fn party(&self, party: usize, word: usize) -> &'a AtomicU64 {
        self.at(PARTIES + party * BLOCK + word)
    }

    fn reset(&self) {
        for w in &self.words[..WORDS] {
            // Relaxed: the parties that read these are started afterwards
            // (`fork(2)` or `thread::spawn`), which orders these stores
            // before everything they do.
            w.store(0, Ordering::Relaxed);
        }
    }

    fn raised(&self, i: usize) -> bool {
        // Relaxed: a signal without data (STOP, END), or one whose data is
        // made visible by the Acquire load of GO or DONE where it matters.
        self.at(i).load(Ordering::Relaxed) != 0
    }

    fn raise(&self, i: usize) {
        // Relaxed: as in `raised`.
        self.at(i).store(1, Ordering::Relaxed);
    }

    fn done(&self, party: usize) -> bool {
        // Acquire pairs with the Release store of DONE in `run_party`: the
        // party's COUNT, FAILED and tallies are visible once DONE is.
        self.party(party, DONE).load(Ordering::Acquire) != 0
    }

    /// One party's whole run: `body` between `GO` and its end.
    fn run_party(&self, party: usize, body: impl FnOnce() -> bool) -> bool {
        // Relaxed: a start signal only.
        self.party(party, READY).store(1, Ordering::Relaxed);
        let ok = loop {
            // Acquire pairs with the coordinator's Release store of GO: the
            // queue it set up is visible here.
            if self.at(GO).load(Ordering::Acquire) != 0 {
                break body();
            }
            if self.raised(STOP) {
                // Given up before the start.
                break true;
            }
            yield_now();
        };
        // Relaxed: published by the Release store of DONE below.
        self.party(party, FAILED)
            .store(u64::from(!ok), Ordering::Relaxed);
        // Release pairs with the Acquire load in `done`.
        self.party(party, DONE).store(1, Ordering::Release);
        ok
    }
}

/// Producer `p`'s side: tagged messages until `STOP`.
fn produce<M: Message>(w: Words<'_>, p: usize, tx: impl Tx<M>, batched: bool) -> bool {
    let stop = move || w.raised(STOP);
    let mut send = flow::tagged_sender(
        tx,
        batched,
        (p as u64) << TAG_SHIFT,
        stop,
        Some(w.party(p, COUNT)),
    );
    while !w.raised(STOP) {
        for _ in 0..64 {
            if !send() {
                return false;
            }
        }
    }
    true
}

/// What one consumer saw of one producer's messages.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// How many.
    pub count: u64,
    /// The sum of their sequence numbers (wrapping).
    pub sum: u64,
    /// The sum of their squares (wrapping).
    pub squares: u64,
}

impl Tally {
    fn add(&mut self, seq: u64) {
        self.count += 1;
        self.sum = self.sum.wrapping_add(seq);
        self.squares = self.squares.wrapping_add(seq.wrapping_mul(seq));
    }

    /// What `0..n`, each exactly once, adds up to.
    pub fn of_all(n: u64) -> Self {
        let n = u128::from(n);
        // Exact in u128 for any n below 2^42; truncated like the wrapping
        // sums above.
        let sum = n * n.saturating_sub(1) / 2;
        let squares = n.saturating_sub(1) * n * (2 * n).saturating_sub(1) / 6;
        Self {
            count: n as u64,
            sum: sum as u64,
            squares: squares as u64,
        }
    }
}

/// Consumer `c`'s side (party `party`): takes messages until the queue is
/// empty after `END`, checking each.
fn consume<M: Message>(
    w: Words<'_>,
    party: usize,
    producers: usize,
    rx: impl Rx<M>,
    batched: bool,
) -> bool {
    let mut take = flow::taker(rx, batched, move || w.raised(END));
    let mut next = [0u64; MAX_SIDE];
    let mut tally = [Tally::default(); MAX_SIDE];
    let mut taken = 0u64;
    let count = w.party(party, COUNT);
    let ok = loop {
        let Some(m) = take() else {
            // An empty queue after END is the end; anything else failed.
            break w.raised(END);
        };
        let Some(word) = m.seq() else {
            break false;
        };
        let (p, seq) = ((word >> TAG_SHIFT) as usize, word & SEQ_MASK);
        // From a producer of this run, and after the last one seen from it.
        if p >= producers || seq < next[p] {
            break false;
        }
        next[p] = seq + 1;
        tally[p].add(seq);
        taken += 1;
        // Relaxed: a running count for the coordinator's end condition;
        // the tallies are published by the Release store of DONE.
        count.store(taken, Ordering::Relaxed);
    };
    for (p, t) in tally.iter().enumerate().take(producers) {
        for (k, v) in [t.count, t.sum, t.squares].into_iter().enumerate() {
            // Relaxed: published by the Release store of DONE.
            w.party(party, TALLY + 3 * p + k)
                .store(v, Ordering::Relaxed);
        }
    }
    ok
}

/// Raises `STOP` and `END` and wakes the queue when dropped: every way out
/// of the coordinator lets the parties finish.
struct EndOnDrop<'a> {
    w: Words<'a>,
    wake: &'a dyn Fn(),
}

impl Drop for EndOnDrop<'_> {
    fn drop(&mut self) {
        self.w.raise(STOP);
        self.w.raise(END);
        (self.wake)();
    }
}

/// The coordinator. `exited(i)`: whether party `i` has exited (a process
/// reaped, a thread finished).
fn coordinate(
    w: Words<'_>,
    shape: Shape,
    budget: Budget,
    exited: &mut dyn FnMut(usize) -> io::Result<bool>,
    wake: &dyn Fn(),
) -> io::Result<Sample> {
    let _end = EndOnDrop { w, wake };
    let parties = shape.parties();
    let mut check_party = |i: usize| -> io::Result<()> {
        if w.done(i) {
            // Relaxed: made visible by the Acquire load of DONE.
            if w.party(i, FAILED).load(Ordering::Relaxed) != 0 {
                return Err(io::Error::other(format!(
                    "{}: a message lost, duplicated, torn or out of order, or a wait out of patience",
                    who(shape, i)
                )));
            }
        } else if exited(i)? && !w.done(i) {
            return Err(io::Error::other(format!(
                "{} exited without finishing its run",
                who(shape, i)
            )));
        }
        Ok(())
    };
    // An error once a party has failed or gone without finishing.
    let mut check = || (0..parties).try_for_each(&mut check_party);
    let wait = |what: &str, check: &mut dyn FnMut() -> io::Result<()>, until: &dyn Fn() -> bool| {
        let since = Instant::now();
        while !until() {
            check()?;
            if since.elapsed() > PATIENCE {
                return Err(io::Error::other(format!("{what} within 10 s")));
            }
            std::thread::sleep(POLL);
        }
        Ok(())
    };
    wait("not every party started", &mut check, &|| {
        (0..parties).all(|i| {
            // Relaxed: a start signal only.
            w.party(i, READY).load(Ordering::Relaxed) != 0
        })
    })?;
    let taken = || -> u64 {
        (shape.producers..parties)
            // Relaxed: running counts, for the end condition only.
            .map(|i| w.party(i, COUNT).load(Ordering::Relaxed))
            .sum()
    };
    let start = Instant::now();
    // Release pairs with the Acquire load of GO in `run_party`.
    w.at(GO).store(1, Ordering::Release);
    match budget.window() {
        Some(window) => {
            while start.elapsed() < window {
                std::thread::sleep((window - start.elapsed().min(window)).min(POLL * 100));
                check()?;
            }
        }
        None => {
            if let Some(seen) = progress_to(budget.max_ops(), PATIENCE, &taken, &mut check)? {
                return Err(io::Error::other(format!(
                    "{seen} messages taken, then none for 10 s"
                )));
            }
        }
    }
    w.raise(STOP);
    wait("the producers did not stop", &mut check, &|| {
        (0..shape.producers).all(|i| w.done(i))
    })?;
    let sent: Vec<u64> = (0..shape.producers)
        // Relaxed: made visible by the Acquire loads of DONE just above.
        .map(|p| w.party(p, COUNT).load(Ordering::Relaxed))
        .collect();
    let total: u64 = sent.iter().sum();
    // Once the producers are done nothing competes with the consumers: a
    // pause in their progress means the rest of the messages are gone.
    if let Some(seen) = progress_to(total, DRAIN_PATIENCE, &taken, &mut check)? {
        return Err(io::Error::other(format!(
            "{seen} of {total} messages sent were taken, then none for {} ms: lost",
            DRAIN_PATIENCE.as_millis()
        )));
    }
    let elapsed = start.elapsed();
    if taken() != total {
        return Err(io::Error::other(format!(
            "{} messages taken, {total} sent",
            taken()
        )));
    }
    w.raise(END);
    wake();
    wait("the consumers did not stop", &mut check, &|| {
        (shape.producers..parties).all(|i| w.done(i))
    })?;
    check()?;
    for (p, &n) in sent.iter().enumerate() {
        let mut all = Tally::default();
        for c in shape.producers..parties {
            let word = |k: usize| {
                // Relaxed: made visible by the Acquire load of DONE.
                w.party(c, TALLY + 3 * p + k).load(Ordering::Relaxed)
            };
            all.count += word(0);
            all.sum = all.sum.wrapping_add(word(1));
            all.squares = all.squares.wrapping_add(word(2));
        }
        if all != Tally::of_all(n) {
            return Err(io::Error::other(format!(
                "producer {p} sent {n} messages, the consumers took {all:?}: not each once"
            )));
        }
    }
    Ok(Sample {
        ops: total,
        elapsed,
        peer_ops: 0,
    })
}

/// Waits (sleeping) until `taken()` reaches `goal`, running `check`
/// between looks: `Some(taken)` once it has not moved for `patience`.
///
/// # Errors
///
/// The first error of `check`.
fn progress_to(
    goal: u64,
    patience: Duration,
    taken: &dyn Fn() -> u64,
    check: &mut dyn FnMut() -> io::Result<()>,
) -> io::Result<Option<u64>> {
    let (mut seen, mut since) = (taken(), Instant::now());
    while seen < goal {
        check()?;
        std::thread::sleep(POLL);
        let now = taken();
        if now != seen {
            (seen, since) = (now, Instant::now());
        } else if since.elapsed() > patience {
            return Ok(Some(seen));
        }
    }
    Ok(None)
}

/// "producer 1", "consumer 0".
fn who(shape: Shape, party: usize) -> String {
    if party < shape.producers {
        format!("producer {party}")
    } else {
        format!("consumer {}", party - shape.producers)
    }
}

/// Runs `shape` over one queue in forked children: producer `p` uses
/// `tx(p)`, consumer `c` uses `rx(c)` (made here, before the fork, so the
/// children open and allocate nothing); `words` (at least [`WORDS`]) must
/// live in a shared mapping. `wake` wakes whatever sleeps inside the
/// queue's tries (for a queue whose tries sleep); it is called once the
/// consumers may stop.
///
/// # Errors
///
/// A bad shape; `fork` failing; a message lost, duplicated, torn or out of
/// order; a party failing, dying or out of patience.
pub fn procs<M: Message, T: Tx<M>, R: Rx<M>>(
    words: &[AtomicU64],
    shape: Shape,
    budget: Budget,
    batched: bool,
    mut tx: impl FnMut(usize) -> T,
    mut rx: impl FnMut(usize) -> R,
    wake: &dyn Fn(),
) -> io::Result<Sample> {
    shape.check()?;
    let w = Words::new(words);
    w.reset();
    let mut children = Vec::with_capacity(shape.parties());
    for p in 0..shape.producers {
        let t = tx(p);
        children.push(procs::spawn(move || {
            w.run_party(p, || produce(w, p, t, batched))
        })?);
    }
    for c in 0..shape.consumers {
        let (r, party, n) = (rx(c), shape.producers + c, shape.producers);
        children.push(procs::spawn(move || {
            w.run_party(party, || consume(w, party, n, r, batched))
        })?);
    }
    // On an error the children are killed and reaped (`Child`'s Drop).
    let sample = coordinate(
        w,
        shape,
        budget,
        &mut |i| children[i].running().map(|r| !r),
        wake,
    )?;
    for child in &mut children {
        child.wait()?;
    }
    Ok(sample)
}

/// [`procs`](fn@procs) with threads of this process instead of children (the
/// in-process peers); `words` may be anywhere.
///
/// # Errors
///
/// As [`procs`](fn@procs), and a party thread panicking.
pub fn threads<M: Message, T: Tx<M> + Send, R: Rx<M> + Send>(
    shape: Shape,
    budget: Budget,
    batched: bool,
    mut tx: impl FnMut(usize) -> T,
    mut rx: impl FnMut(usize) -> R,
) -> io::Result<Sample> {
    shape.check()?;
    let words: Vec<AtomicU64> = (0..WORDS).map(|_| AtomicU64::new(0)).collect();
    let w = Words::new(&words);
    w.reset();
    std::thread::scope(|s| {
        let mut handles = Vec::with_capacity(shape.parties());
        for p in 0..shape.producers {
            let t = tx(p);
            handles.push(s.spawn(move || w.run_party(p, || produce(w, p, t, batched))));
        }
        for c in 0..shape.consumers {
            let (r, party, n) = (rx(c), shape.producers + c, shape.producers);
            handles.push(s.spawn(move || w.run_party(party, || consume(w, party, n, r, batched))));
        }
        let sample = coordinate(
            w,
            shape,
            budget,
            &mut |i| Ok(handles[i].is_finished()),
            &|| {},
        );
        let mut panicked = false;
        for h in handles {
            panicked |= h.join().is_err();
        }
        if panicked {
            return Err(io::Error::other("a party thread panicked"));
        }
        sample
    })
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::Mutex;

    use super::*;
    use crate::bench::runner::flow::Broken;

    /// A queue between threads that loses (or repeats) one message in
    /// `every` (none if 0).
    #[derive(Clone, Copy)]
    struct Faulty<'a> {
        q: &'a Mutex<(VecDeque<u64>, u64)>,
        every: u64,
        repeat: bool,
    }

    impl Tx<u64> for Faulty<'_> {
        fn try_one(&mut self, m: u64) -> Result<bool, Broken> {
            let mut g = self.q.lock().map_err(|_| Broken)?;
            if g.0.len() >= 64 {
                return Ok(false);
            }
            g.1 += 1;
            if self.every != 0 && g.1 % self.every == 0 {
                if self.repeat {
                    g.0.push_back(m);
                } else {
                    return Ok(true);
                }
            }
            g.0.push_back(m);
            Ok(true)
        }
        fn try_many(&mut self, ms: &[u64]) -> Result<usize, Broken> {
            Ok(usize::from(Tx::try_one(self, ms[0])?))
        }
    }

    impl Rx<u64> for Faulty<'_> {
        fn try_one(&mut self) -> Result<Option<u64>, Broken> {
            Ok(self.q.lock().map_err(|_| Broken)?.0.pop_front())
        }
        fn try_many(&mut self, out: &mut [u64]) -> Result<usize, Broken> {
            Ok(Rx::try_one(self)?.map_or(0, |m| {
                out[0] = m;
                1
            }))
        }
    }

    #[test]
    fn a_lost_or_repeated_message_fails_the_run() {
        for repeat in [false, true] {
            for shape in [Shape::ONE, Shape::TWO] {
                let q = Mutex::new((VecDeque::new(), 0));
                let f = Faulty {
                    q: &q,
                    every: 500,
                    repeat,
                };
                let r = threads::<u64, _, _>(shape, Budget::ops(5000), false, |_| f, |_| f);
                assert!(r.is_err(), "repeat {repeat}, {shape:?}: {r:?}");
            }
        }
        // A sound queue passes, every message counted.
        let q = Mutex::new((VecDeque::new(), 0));
        let sound = Faulty {
            q: &q,
            every: 0,
            repeat: false,
        };
        let r = threads::<u64, _, _>(Shape::TWO, Budget::ops(5000), true, |_| sound, |_| sound);
        assert!(r.is_ok_and(|s| s.ops >= 5000));
    }

    #[test]
    fn the_tally_of_everything_matches_a_count_by_hand() {
        for n in [0u64, 1, 2, 7, 1000] {
            let mut t = Tally::default();
            (0..n).for_each(|i| t.add(i));
            assert_eq!(t, Tally::of_all(n), "{n}");
        }
    }
}
