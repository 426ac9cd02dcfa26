//! The in-process peers of the SPSC rows: the same workload
//! ([`flow`](super::flow)) between two threads of one process through
//! rtrb (the SPSC ring mmring's design follows), crossbeam's `ArrayQueue`
//! (a bounded MPMC queue) and a `Mutex<VecDeque>` (what a first version in
//! Rust looks like), each with the ring's capacity.
//!
//! They cannot cross a process boundary; they are here to show what the
//! same hardware does when nothing has to: mmring's targets are stated
//! against rtrb.
//!
//! [`crowd_throughput`]: `ArrayQueue` and `Mutex<VecDeque>` with several
//! producer and consumer threads, for the MPMC rows.

use std::collections::VecDeque;
use std::io;
use std::sync::Mutex;

use crossbeam_queue::ArrayQueue;

use super::control::{Budget, Control, Counted, Sample};
use super::crowd::{self, Shape};
use super::flow::{self, Broken, Message, Rx, Tx};
use super::threads;

/// Which in-process queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Peer {
    /// `rtrb::RingBuffer`: `push`/`pop`, batched `push_partial_slice` /
    /// `pop_partial_slice`.
    Rtrb,
    /// `crossbeam_queue::ArrayQueue`: `push`/`pop` (no batch operation).
    ArrayQueue,
    /// `std::sync::Mutex<VecDeque>` bounded to the capacity: one lock per
    /// message, or per batch.
    MutexVecDeque,
}

/// Runs the workload through `peer` with `capacity` slots: this thread
/// consumes (and is timed), a second one produces; for `budget`.
///
/// # Errors
///
/// If a message is lost, duplicated or out of order, or a wait runs out
/// of patience (see [`threads::run_on`]).
pub fn throughput<M: Message>(
    peer: Peer,
    control: Control<'_>,
    budget: Budget,
    batched: bool,
    capacity: usize,
) -> io::Result<Sample> {
    let stop = move || control.stop_requested();
    match peer {
        Peer::Rtrb => {
            let (tx, rx) = rtrb::RingBuffer::<M>::new(capacity);
            threads::run_on(
                control,
                budget,
                Counted::LeadOnly,
                flow::receiver(rx, batched),
                flow::sender(tx, batched, stop),
            )
        }
        Peer::ArrayQueue => {
            let q = ArrayQueue::<M>::new(capacity);
            threads::run_on(
                control,
                budget,
                Counted::LeadOnly,
                flow::receiver(&q, batched),
                flow::sender(&q, batched, stop),
            )
        }
        Peer::MutexVecDeque => {
            let q = Mutex::new(VecDeque::<M>::with_capacity(capacity));
            let bounded = Bounded { q: &q, capacity };
            threads::run_on(
                control,
                budget,
                Counted::LeadOnly,
                flow::receiver(bounded, batched),
                flow::sender(bounded, batched, stop),
            )
        }
    }
}

/// Runs the MPMC workload ([`crowd::threads`]) with `shape`, one thread
/// per producer and consumer, through a fresh `peer` with `capacity`
/// slots, for `budget`.
///
/// # Errors
///
/// For rtrb (one producer, one consumer only); as [`crowd::threads`].
pub fn crowd_throughput<M: Message>(
    peer: Peer,
    shape: Shape,
    budget: Budget,
    batched: bool,
    capacity: usize,
) -> io::Result<Sample> {
    match peer {
        Peer::Rtrb => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "rtrb has one producer and one consumer",
        )),
        Peer::ArrayQueue => {
            let q = ArrayQueue::<M>::new(capacity);
            crowd::threads(shape, budget, batched, |_| &q, |_| &q)
        }
        Peer::MutexVecDeque => {
            let q = Mutex::new(VecDeque::<M>::with_capacity(capacity));
            let bounded = Bounded { q: &q, capacity };
            crowd::threads(shape, budget, batched, |_| bounded, |_| bounded)
        }
    }
}

impl<M: Copy> Tx<M> for rtrb::Producer<M> {
    #[inline]
    fn try_one(&mut self, m: M) -> Result<bool, Broken> {
        Ok(self.push(m).is_ok())
    }

    #[inline]
    fn try_many(&mut self, ms: &[M]) -> Result<usize, Broken> {
        Ok(self.push_partial_slice(ms).0.len())
    }
}

impl<M: Copy> Rx<M> for rtrb::Consumer<M> {
    #[inline]
    fn try_one(&mut self) -> Result<Option<M>, Broken> {
        Ok(self.pop().ok())
    }

    #[inline]
    fn try_many(&mut self, out: &mut [M]) -> Result<usize, Broken> {
        Ok(self.pop_partial_slice(out).0.len())
    }
}

impl<M: Copy> Tx<M> for &ArrayQueue<M> {
    #[inline]
    fn try_one(&mut self, m: M) -> Result<bool, Broken> {
        Ok(self.push(m).is_ok())
    }

    /// One `push` per message: `ArrayQueue` has no batch operation.
    fn try_many(&mut self, ms: &[M]) -> Result<usize, Broken> {
        Ok(ms.iter().take_while(|&&m| self.push(m).is_ok()).count())
    }
}

impl<M> Rx<M> for &ArrayQueue<M> {
    #[inline]
    fn try_one(&mut self) -> Result<Option<M>, Broken> {
        Ok(self.pop())
    }

    fn try_many(&mut self, out: &mut [M]) -> Result<usize, Broken> {
        let mut n = 0;
        while n < out.len() {
            match self.pop() {
                Some(m) => out[n] = m,
                None => break,
            }
            n += 1;
        }
        Ok(n)
    }
}

/// A `Mutex<VecDeque>` that refuses messages beyond `capacity`.
struct Bounded<'a, M> {
    q: &'a Mutex<VecDeque<M>>,
    capacity: usize,
}

impl<M> Clone for Bounded<'_, M> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<M> Copy for Bounded<'_, M> {}

impl<M: Copy> Tx<M> for Bounded<'_, M> {
    #[inline]
    fn try_one(&mut self, m: M) -> Result<bool, Broken> {
        let mut q = self.q.lock().map_err(|_| Broken)?;
        if q.len() >= self.capacity {
            return Ok(false);
        }
        q.push_back(m);
        Ok(true)
    }

    fn try_many(&mut self, ms: &[M]) -> Result<usize, Broken> {
        let mut q = self.q.lock().map_err(|_| Broken)?;
        let n = ms.len().min(self.capacity.saturating_sub(q.len()));
        q.extend(&ms[..n]);
        Ok(n)
    }
}

impl<M: Copy> Rx<M> for Bounded<'_, M> {
    #[inline]
    fn try_one(&mut self) -> Result<Option<M>, Broken> {
        Ok(self.q.lock().map_err(|_| Broken)?.pop_front())
    }

    fn try_many(&mut self, out: &mut [M]) -> Result<usize, Broken> {
        let mut q = self.q.lock().map_err(|_| Broken)?;
        let n = out.len().min(q.len());
        for (o, m) in out.iter_mut().zip(q.drain(..n)) {
            *o = m;
        }
        Ok(n)
    }
}
