//! The in-process peers of the SPSC rows: the same workload
//! ([`flow`]) between two threads of one
//! process through rtrb (the SPSC ring mmring's design follows;
//! `rtrb_ring.rs`), crossbeam's `ArrayQueue` (a bounded MPMC queue;
//! `array_queue.rs`) and a `Mutex<VecDeque>` (what a first version in Rust
//! looks like; `mutex_vecdeque.rs`), each with the ring's capacity.
//!
//! They cannot cross a process boundary; they are here to show what the
//! same hardware does when nothing has to: mmring's targets are stated
//! against rtrb.
//!
//! iceoryx2 (`iceoryx2.rs`, with the `iceoryx2` feature): the one peer that crosses a
//! process boundary like mmring, measured between two processes.
//!
//! [`crowd_throughput`]: `ArrayQueue` and `Mutex<VecDeque>` with several
//! producer and consumer threads, for the MPMC rows.

use std::collections::VecDeque;
use std::io;
use std::sync::Mutex;

use crossbeam_queue::ArrayQueue;

use self::mutex_vecdeque::Bounded;
use crate::bench::runner::control::{Budget, Control, Counted, Sample};
use crate::bench::runner::crowd::{self, Shape};
use crate::bench::runner::flow::{self, Message};
use crate::bench::runner::threads;

mod array_queue;
#[cfg(feature = "iceoryx2")]
pub mod iceoryx2;
mod mutex_vecdeque;
mod rtrb_ring;

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
