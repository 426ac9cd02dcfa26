//! The mmring rows of the SPSC comparison: [`Producer`] in a forked
//! child, [`Consumer`] in the parent, over a ring file made for the run
//! (and unlinked at once: the two processes share the mapping, not the
//! name).
//!
//! * throughput, spinning: `try_push`/`try_pop` per message, waiting with
//!   the common [`Spin`](crate::bench::runner::spin::Spin) when full or
//!   empty;
//! * throughput, batched: `push_slice`/`pop_slice`,
//!   [`BATCH`](crate::bench::runner::flow::BATCH) at a time;
//! * throughput, blocking: `push` in the child, `pop_timeout` in the parent
//!   (the futex path);
//! * round trips through two rings, spinning and blocking.
//!
//! The handles are made in the parent before the fork and used by the
//! child through its copy of them, so the child opens nothing and
//! allocates nothing; the parent drops them (closing the ring) once the
//! child has been reaped.

use std::borrow::BorrowMut;
use std::io;
use std::path::Path;
use std::time::Duration;

use mmring::spsc::{Consumer, Producer, channel};

use crate::bench::runner::control::{Budget, Control, Counted, Sample};
use crate::bench::runner::flow::{self, Broken, Message, Rx, Tx};
use crate::bench::runner::procs;
use crate::bench::runner::roundtrip::{self, RoundTrips};
use crate::bench::runner::spin::PATIENCE;

/// How the two sides of a throughput row use the ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `try_push`/`try_pop`, spinning (then yielding) while full or empty.
    Spinning,
    /// `push_slice`/`pop_slice`, [`BATCH`](crate::bench::runner::flow::BATCH)
    /// messages at a time.
    Batched,
    /// `push` (child) and `pop_timeout` (parent, for a dead child's sake),
    /// which sleep in the futex while full or empty.
    Blocking,
}

impl<M: Message> Tx<M> for Producer<M> {
    #[inline]
    fn try_one(&mut self, m: M) -> Result<bool, Broken> {
        flow::pushed(self.try_push(m))
    }

    #[inline]
    fn try_many(&mut self, ms: &[M]) -> Result<usize, Broken> {
        self.push_slice(ms).map_err(|_| Broken)
    }
}

impl<M: Message> Rx<M> for Consumer<M> {
    #[inline]
    fn try_one(&mut self) -> Result<Option<M>, Broken> {
        flow::popped(self.try_pop())
    }

    #[inline]
    fn try_many(&mut self, out: &mut [M]) -> Result<usize, Broken> {
        self.pop_slice(out).map_err(|_| Broken)
    }
}

/// A ring end (owned, or borrowed: `E` is the end or `&mut` to it) used
/// through its blocking calls: `push`/`pop` without a `patience` (the
/// child's side: a dead parent kills it), `push_timeout`/`pop_timeout`
/// with one (the parent's side: a dead child is an error, not a hang).
/// The timed calls read the clock once more per call (some 40 ns on a
/// virtual machine) to make their deadline.
///
/// A wait that outlasts the patience, or a closed ring, is [`Broken`].
pub struct Blocking<E> {
    end: E,
    patience: Option<Duration>,
}

impl<E> Blocking<E> {
    /// `end`, waiting without a deadline (`None`) or up to `patience`.
    pub fn new(end: E, patience: Option<Duration>) -> Self {
        Self { end, patience }
    }
}

impl<M: Message, E: BorrowMut<Producer<M>>> Tx<M> for Blocking<E> {
    #[inline]
    fn try_one(&mut self, m: M) -> Result<bool, Broken> {
        let end = self.end.borrow_mut();
        // Closed, disconnected or out of patience: all the same here.
        let pushed = match self.patience {
            None => end.push(m).is_ok(),
            Some(patience) => end.push_timeout(m, patience).is_ok(),
        };
        if pushed { Ok(true) } else { Err(Broken) }
    }

    /// There is no blocking batch call: a plain `push_slice`.
    fn try_many(&mut self, ms: &[M]) -> Result<usize, Broken> {
        self.end.borrow_mut().try_many(ms)
    }
}

impl<M: Message, E: BorrowMut<Consumer<M>>> Rx<M> for Blocking<E> {
    #[inline]
    fn try_one(&mut self) -> Result<Option<M>, Broken> {
        let end = self.end.borrow_mut();
        let popped = match self.patience {
            None => end.pop().ok(),
            Some(patience) => end.pop_timeout(patience).ok(),
        };
        popped.map(Some).ok_or(Broken)
    }

    /// There is no blocking batch call: a plain `pop_slice`.
    fn try_many(&mut self, out: &mut [M]) -> Result<usize, Broken> {
        self.end.borrow_mut().try_many(out)
    }
}

/// Makes a ring file at `path` with `capacity` slots, opens both ends and
/// removes the name.
fn ring<M: Message>(path: &Path, capacity: usize) -> io::Result<(Producer<M>, Consumer<M>)> {
    let ends = channel::<M>(path, capacity).map_err(io::Error::other)?;
    std::fs::remove_file(path)?;
    Ok(ends)
}

/// The child produces into a fresh ring at `path` (`capacity` slots), the
/// parent consumes and is timed, for `budget`.
///
/// # Errors
///
/// Creating the ring; a message lost, duplicated or out of order; a wait
/// out of patience; the child failing (see [`procs::run`]).
pub fn throughput<M: Message>(
    control: Control<'_>,
    budget: Budget,
    mode: Mode,
    path: &Path,
    capacity: usize,
) -> io::Result<Sample> {
    let (mut tx, mut rx) = ring::<M>(path, capacity)?;
    let stop = move || control.stop_requested();
    let counted = Counted::LeadOnly;
    match mode {
        Mode::Spinning => procs::run(
            control,
            budget,
            counted,
            flow::receiver(&mut rx, false),
            flow::sender(&mut tx, false, stop),
        ),
        Mode::Batched => procs::run(
            control,
            budget,
            counted,
            flow::receiver(&mut rx, true),
            flow::sender(&mut tx, true, stop),
        ),
        Mode::Blocking => procs::run(
            control,
            budget,
            counted,
            // Owned: dropped as soon as the lead stops, which gives the
            // consumer role back and wakes a producer asleep on a full
            // ring (its push returns `Disconnected`).
            flow::receiver(Blocking::new(rx, Some(PATIENCE)), false),
            flow::sender(Blocking::new(&mut tx, None), false, stop),
        ),
    }
}

/// `n` timed round trips of a `u64` through two fresh rings (at `paths`,
/// `capacity` slots each): the parent pushes on one and pops from the
/// other, the child echoes. Spinning (`try_push`/`try_pop`) or blocking
/// (`push`/`pop`, which sleep in the futex once a short spin has not
/// seen the message). A `gap` as in [`roundtrip::run`].
///
/// # Errors
///
/// As [`roundtrip::run`], and creating the rings.
pub fn round_trips(
    blocking: bool,
    paths: [&Path; 2],
    capacity: usize,
    n: u64,
    gap: Option<Duration>,
) -> io::Result<RoundTrips> {
    let (mut ping_tx, mut ping_rx) = ring::<u64>(paths[0], capacity)?;
    let (mut pong_tx, mut pong_rx) = ring::<u64>(paths[1], capacity)?;
    if blocking {
        // The parent's pushes never wait (one message in flight); its pops
        // have a deadline, so that a dead child is an error.
        let mut lead_tx = Blocking::new(&mut ping_tx, None);
        let mut lead_rx = Blocking::new(&mut pong_rx, Some(PATIENCE));
        let mut echo_tx = Blocking::new(&mut pong_tx, None);
        let mut echo_rx = Blocking::new(&mut ping_rx, None);
        roundtrip::run(
            n,
            gap,
            |seq| flow::ping(&mut lead_tx, &mut lead_rx, seq),
            move || flow::echo(&mut echo_tx, &mut echo_rx),
            || {},
        )
    } else {
        roundtrip::run(
            n,
            gap,
            |seq| flow::ping(&mut ping_tx, &mut pong_rx, seq),
            || flow::echo(&mut pong_tx, &mut ping_rx),
            || {},
        )
    }
}
