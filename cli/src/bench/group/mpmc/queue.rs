//! The mmring rows of the MPMC comparison: one [`Queue`] file made for the
//! run (and unlinked at once: the processes share the mapping, not the
//! name), its handle copied into every forked producer and consumer of a
//! [`crowd`] run.
//!
//! * one message per call: `try_push`/`try_pop`, waiting with the common
//!   [`Spin`](crate::bench::runner::spin::Spin) when full or empty;
//! * batched: `push_slice`/`pop_slice`,
//!   [`BATCH`](crate::bench::runner::flow::BATCH) at a time, each moving
//!   the tail (head) past all its slots at once.

use std::io;
use std::path::Path;
use std::sync::atomic::AtomicU64;

use mmring::mpmc::Queue;

use crate::bench::runner::control::{Budget, Sample};
use crate::bench::runner::crowd::{self, Shape};
use crate::bench::runner::flow::{self, Broken, Message, Rx, Tx};

impl<M: Message> Tx<M> for &Queue<M> {
    #[inline]
    fn try_one(&mut self, m: M) -> Result<bool, Broken> {
        flow::pushed(self.try_push(m))
    }

    #[inline]
    fn try_many(&mut self, ms: &[M]) -> Result<usize, Broken> {
        self.push_slice(ms).map_err(|_| Broken)
    }
}

impl<M: Message> Rx<M> for &Queue<M> {
    #[inline]
    fn try_one(&mut self) -> Result<Option<M>, Broken> {
        flow::popped(self.try_pop())
    }

    #[inline]
    fn try_many(&mut self, out: &mut [M]) -> Result<usize, Broken> {
        self.pop_slice(out).map_err(|_| Broken)
    }
}

/// `shape` over a fresh queue at `path` (`capacity` slots), one process
/// per producer and consumer, for `budget`; `words` (at least
/// [`crowd::WORDS`]) in a shared mapping.
///
/// # Errors
///
/// Creating the queue; as [`crowd::procs`].
pub fn throughput<M: Message>(
    words: &[AtomicU64],
    shape: Shape,
    budget: Budget,
    batched: bool,
    path: &Path,
    capacity: usize,
) -> io::Result<Sample> {
    let q = Queue::<M>::create(path, capacity).map_err(io::Error::other)?;
    std::fs::remove_file(path)?;
    crowd::procs(words, shape, budget, batched, |_| &q, |_| &q, &|| {})
}
