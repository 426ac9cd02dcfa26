//! [`PthreadRing`]: the lock-based baseline of the SPSC rows — a bounded
//! ring of plain-old-data slots guarded by a `pthread_mutex_t`, with two
//! `pthread_cond_t`s ("not empty", "not full") for blocking, all three
//! initialized with `PTHREAD_PROCESS_SHARED` and living in a file-backed
//! shared mapping ([`Shm`]: the same kind of mapping an `spsc` ring lives
//! in).
//!
//! This is what a careful C program does to pass messages between two
//! processes through shared memory without lock-free code: lock, copy in or
//! out, move an index, unlock, signal the other side's condition variable
//! (after unlocking, so the woken side does not run into the held lock).
//! A batch moves as many items as fit under one lock.
//!
//! Any number of processes (or threads) may push and pop at once: every
//! access is under the mutex, one item signals one waiter and a batch
//! wakes them all (a single wake-up could leave a second consumer asleep
//! next to items it could take). So the same ring is the mutex version of
//! the SPSC rows and of the MPMC rows
//! ([`group::mpmc`](crate::bench::group::mpmc)), where
//! [`wake_all`](PthreadRing::wake_all) ends a run.
//!
//! Waits are timed (`pthread_cond_timedwait` on `CLOCK_MONOTONIC`) so
//! that a benchmark's producer can notice a stop request and a consumer
//! can notice a dead peer; a wait that is woken costs what an untimed one
//! costs.

use std::io;
use std::marker::PhantomData;
use std::mem::MaybeUninit;
use std::path::Path;
use std::time::Duration;

use mmring::Pod;

use super::pthread::{Held, init_cond, init_mutex};
use crate::bench::runner::control::{Budget, Control, Counted, Sample};
use crate::bench::runner::flow::{self, Broken, Message, Rx, Tx};
use crate::bench::runner::procs;
use crate::bench::runner::roundtrip::{self, RoundTrips};
use crate::bench::runner::shm::Shm;

/// How long one try of the benchmark rows waits in a condition variable
/// before it comes back empty-handed (to look at a stop request).
const TRY_WAIT: Duration = Duration::from_millis(10);

/// The shared words at the start of the mapping, as a C struct would have
/// them; the slots follow at [`SLOTS_OFFSET`].
#[repr(C)]
struct Shared {
    mutex: libc::pthread_mutex_t,
    not_empty: libc::pthread_cond_t,
    not_full: libc::pthread_cond_t,
    /// Next position to read (under the mutex).
    head: u64,
    /// Next position to write (under the mutex).
    tail: u64,
}

/// Byte offset of the first slot in the mapping (a cache line boundary past
/// the shared words).
const SLOTS_OFFSET: usize = 256;

static_assertions::const_assert!(size_of::<Shared>() <= SLOTS_OFFSET);

/// A bounded ring of `T` behind a process-shared mutex and condition
/// variables in a mapped file. Shared between a parent and its forked
/// children through the mapping, by any number of producers and
/// consumers; every method takes `&self`.
pub struct PthreadRing<T> {
    shared: *mut Shared,
    slots: *mut T,
    mask: u64,
    /// Owns the mapping the pointers point into; dropped after them.
    _shm: Shm,
    _items: PhantomData<T>,
}

impl<T> std::fmt::Debug for PthreadRing<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PthreadRing")
            .field("capacity", &(self.mask + 1))
            .finish_non_exhaustive()
    }
}

impl<T: Pod> PthreadRing<T> {
    /// Creates and maps the file at `path` (see [`Shm::create`]) with
    /// `capacity` slots (a power of two) and initializes the mutex and
    /// condition variables.
    ///
    /// # Errors
    ///
    /// Creating the file, or initializing the mutex or a condition variable.
    ///
    /// # Panics
    ///
    /// If `capacity` is not a power of two (a harness bug).
    pub fn create(path: &Path, capacity: usize) -> io::Result<Self> {
        assert!(
            capacity.is_power_of_two(),
            "capacity must be a power of two"
        );
        assert!(align_of::<T>() <= 64, "slots are aligned to 64 bytes");
        let shm = Shm::create(path, SLOTS_OFFSET + capacity * size_of::<T>())?;
        let base = shm.as_ptr();
        let shared = base.cast::<Shared>();
        assert!(shared.is_aligned(), "mapping misaligned");
        // SAFETY: `shared` points to at least `size_of::<Shared>()` bytes
        // of the mapping (`SLOTS_OFFSET` of them), suitably aligned
        // (checked above), and no other process can reach them yet: the
        // name is gone and no child is forked.
        let rc = unsafe { init(shared) };
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        Ok(Self {
            shared,
            // In bounds: the mapping holds SLOTS_OFFSET + capacity slots;
            // 64-aligned for T (asserted).
            slots: base.wrapping_add(SLOTS_OFFSET).cast(),
            mask: capacity as u64 - 1,
            _shm: shm,
            _items: PhantomData,
        })
    }

    /// Number of slots.
    pub fn capacity(&self) -> usize {
        (self.mask + 1) as usize
    }

    fn lock(&self) -> Held {
        // SAFETY: the mutex was initialized by `create` (with `init_mutex`)
        // in the mapping that `_shm` keeps alive while `self` (which the
        // guard does not outlive in any caller here) exists; it is
        // process-shared, so the forked children that reach it through the
        // same mapping may lock it too.
        unsafe { Held::lock(&raw mut (*self.shared).mutex) }
    }

    /// Waits on `cond` (with the mutex held by `held`) until woken or
    /// `deadline` passes; `false` once it has passed.
    fn wait(
        &self,
        held: &Held,
        cond: *mut libc::pthread_cond_t,
        deadline: &libc::timespec,
    ) -> bool {
        // SAFETY: `cond` is one of the condition variables `create`
        // initialized in our mapping, the mutex is held by this thread
        // (`held`, which holds it again when the call returns), and
        // `deadline` is a valid timespec for the call.
        let rc = unsafe { libc::pthread_cond_timedwait(cond, held.mutex(), deadline) };
        rc != libc::ETIMEDOUT
    }

    /// Pushes as many of `items` as fit under one lock, waiting up to
    /// `timeout` while the ring is full. Returns how many were pushed (0:
    /// the ring stayed full).
    pub fn push_slice(&self, items: &[T], timeout: Duration) -> usize {
        let cap = self.capacity() as u64;
        let held = self.lock();
        let shared = self.shared;
        let mut deadline = None;
        let n = loop {
            // SAFETY: head and tail are read and written only under the
            // mutex, held here (`held`): no data race with the other process.
            let (head, tail) = unsafe { ((*shared).head, (*shared).tail) };
            let free = cap.saturating_sub(tail.wrapping_sub(head));
            if free > 0 || items.is_empty() {
                break (free as usize).min(items.len());
            }
            let d = deadline.get_or_insert_with(|| deadline_after(timeout));
            // SAFETY: a field pointer into the live mapping; no reference
            // is made.
            let cond = unsafe { &raw mut (*shared).not_full };
            if !self.wait(&held, cond, d) {
                return 0;
            }
        };
        // SAFETY: as above (mutex held).
        let tail = unsafe { (*shared).tail };
        for (i, item) in items[..n].iter().enumerate() {
            let slot = (tail.wrapping_add(i as u64) & self.mask) as usize;
            // SAFETY: `slot` is masked below the capacity, so the write is
            // inside the slots `create` sized; slots are touched only under
            // the mutex (held), and T is Pod.
            unsafe { self.slots.add(slot).write(*item) };
        }
        // SAFETY: as above (mutex held).
        unsafe { (*shared).tail = tail.wrapping_add(n as u64) };
        drop(held);
        // SAFETY: a field pointer into the live mapping.
        self.signal(unsafe { &raw mut (*shared).not_empty }, n);
        n
    }

    /// After `n` items moved: wakes one waiter on `cond` for one item, all
    /// of them for several (each may take some), none for none.
    fn signal(&self, cond: *mut libc::pthread_cond_t, n: usize) {
        if n == 1 {
            // SAFETY: `cond` is an initialized process-shared condition
            // variable in our mapping; signalling without the mutex is
            // allowed.
            unsafe { libc::pthread_cond_signal(cond) };
        } else if n > 1 {
            // SAFETY: as above.
            unsafe { libc::pthread_cond_broadcast(cond) };
        }
    }

    /// Wakes every process asleep in a push or a pop (each then finds what
    /// it finds, or waits again): how a run with several consumers tells
    /// them to look at a stop request without waiting out their timeouts.
    pub fn wake_all(&self) {
        // SAFETY: field pointers into the live mapping.
        let (a, b) = unsafe {
            (
                &raw mut (*self.shared).not_empty,
                &raw mut (*self.shared).not_full,
            )
        };
        self.signal(a, 2);
        self.signal(b, 2);
    }

    /// Pops up to `out.len()` items under one lock, oldest first, waiting
    /// up to `timeout` while the ring is empty. Returns how many (0: the
    /// ring stayed empty).
    pub fn pop_slice(&self, out: &mut [T], timeout: Duration) -> usize {
        let held = self.lock();
        let shared = self.shared;
        let mut deadline = None;
        let n = loop {
            // SAFETY: under the mutex, as in `push_slice`.
            let (head, tail) = unsafe { ((*shared).head, (*shared).tail) };
            let avail = tail.wrapping_sub(head).min(self.mask + 1);
            if avail > 0 || out.is_empty() {
                break (avail as usize).min(out.len());
            }
            let d = deadline.get_or_insert_with(|| deadline_after(timeout));
            // SAFETY: a field pointer into the live mapping.
            let cond = unsafe { &raw mut (*shared).not_empty };
            if !self.wait(&held, cond, d) {
                return 0;
            }
        };
        // SAFETY: under the mutex.
        let head = unsafe { (*shared).head };
        for (i, item) in out[..n].iter_mut().enumerate() {
            let slot = (head.wrapping_add(i as u64) & self.mask) as usize;
            // SAFETY: masked into the slots, read under the mutex; T is Pod,
            // so whatever bytes are there are a valid T.
            *item = unsafe { self.slots.add(slot).read() };
        }
        // SAFETY: under the mutex.
        unsafe { (*shared).head = head.wrapping_add(n as u64) };
        drop(held);
        // SAFETY: a field pointer into the live mapping.
        self.signal(unsafe { &raw mut (*shared).not_full }, n);
        n
    }

    /// Pushes one item (see [`push_slice`](Self::push_slice)); `false` if
    /// the ring stayed full for `timeout`.
    #[inline]
    pub fn push(&self, item: T, timeout: Duration) -> bool {
        self.push_slice(std::slice::from_ref(&item), timeout) == 1
    }

    /// Pops one item (see [`pop_slice`](Self::pop_slice)); `None` if the
    /// ring stayed empty for `timeout`.
    #[inline]
    pub fn pop(&self, timeout: Duration) -> Option<T> {
        let mut item = T::zeroed();
        (self.pop_slice(std::slice::from_mut(&mut item), timeout) == 1).then_some(item)
    }

    /// Empties the ring (between runs: no other process may use it).
    pub fn clear(&self) {
        let _held = self.lock();
        // SAFETY: under the mutex.
        unsafe { (*self.shared).head = (*self.shared).tail };
    }

    /// Items in the ring right now.
    pub fn len(&self) -> usize {
        let _held = self.lock();
        // SAFETY: under the mutex.
        let (head, tail) = unsafe { ((*self.shared).head, (*self.shared).tail) };
        tail.wrapping_sub(head).min(self.mask + 1) as usize
    }

    /// Whether the ring is empty right now.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T> Drop for PthreadRing<T> {
    fn drop(&mut self) {
        // SAFETY: initialized by `create`; no process of ours uses them any
        // more (children are reaped before their run returns). An error
        // (EBUSY) leaves them as they are, harmlessly: the mapping goes.
        unsafe {
            libc::pthread_cond_destroy(&raw mut (*self.shared).not_empty);
            libc::pthread_cond_destroy(&raw mut (*self.shared).not_full);
            libc::pthread_mutex_destroy(&raw mut (*self.shared).mutex);
        }
    }
}

/// The benchmark rows use the ring through [`flow`]: a try waits in the
/// condition variable for up to `TRY_WAIT`.
impl<T: Pod> Tx<T> for &PthreadRing<T> {
    #[inline]
    fn try_one(&mut self, m: T) -> Result<bool, Broken> {
        Ok(self.push(m, TRY_WAIT))
    }

    #[inline]
    fn try_many(&mut self, ms: &[T]) -> Result<usize, Broken> {
        Ok(self.push_slice(ms, TRY_WAIT))
    }
}

impl<T: Pod> Rx<T> for &PthreadRing<T> {
    #[inline]
    fn try_one(&mut self) -> Result<Option<T>, Broken> {
        Ok(self.pop(TRY_WAIT))
    }

    #[inline]
    fn try_many(&mut self, out: &mut [T]) -> Result<usize, Broken> {
        Ok(self.pop_slice(out, TRY_WAIT))
    }
}

/// The child pushes into `ring` (one message per lock, or a batch per
/// lock), the parent pops and is timed, for `budget`; both sleep in the
/// condition variables while the ring is full or empty.
///
/// # Errors
///
/// As [`procs::run`]; a message lost, duplicated or out of order.
pub fn throughput<M: Message>(
    ring: &PthreadRing<M>,
    control: Control<'_>,
    budget: Budget,
    batched: bool,
) -> io::Result<Sample> {
    ring.clear();
    procs::run(
        control,
        budget,
        Counted::LeadOnly,
        flow::receiver(ring, batched),
        flow::sender(ring, batched, move || control.stop_requested()),
    )
}

/// `n` timed round trips of a `u64` through two rings: the parent pushes
/// on `ping` and waits on `pong`, the child echoes; both sleep in the
/// condition variables. A `gap` as in [`roundtrip::run`].
///
/// # Errors
///
/// As [`roundtrip::run`].
pub fn round_trips(
    ping: &PthreadRing<u64>,
    pong: &PthreadRing<u64>,
    n: u64,
    gap: Option<Duration>,
) -> io::Result<RoundTrips> {
    ping.clear();
    pong.clear();
    let (mut lead_tx, mut lead_rx) = (ping, pong);
    let (mut echo_tx, mut echo_rx) = (pong, ping);
    roundtrip::run(
        n,
        gap,
        |seq| flow::ping(&mut lead_tx, &mut lead_rx, seq),
        move || flow::echo(&mut echo_tx, &mut echo_rx),
        || {},
    )
}

/// `CLOCK_MONOTONIC` now plus `timeout`, as `pthread_cond_timedwait`
/// wants it (the condition variables are set to that clock).
fn deadline_after(timeout: Duration) -> libc::timespec {
    let mut now = MaybeUninit::<libc::timespec>::uninit();
    // SAFETY: `now` is writable storage for a timespec; CLOCK_MONOTONIC
    // always exists on Linux, so the call cannot fail.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, now.as_mut_ptr()) };
    // SAFETY: initialized by clock_gettime above.
    let now = unsafe { now.assume_init() };
    let nanos = now.tv_nsec as u64 + u64::from(timeout.subsec_nanos());
    let secs = libc::time_t::try_from(timeout.as_secs())
        .unwrap_or(libc::time_t::MAX / 2)
        .saturating_add(now.tv_sec)
        .saturating_add((nanos / 1_000_000_000) as libc::time_t);
    libc::timespec {
        tv_sec: secs,
        // Below 10^9, which fits every c_long.
        tv_nsec: (nanos % 1_000_000_000) as libc::c_long,
    }
}

/// Initializes the mutex and condition variables as process-shared (the
/// condition variables on `CLOCK_MONOTONIC`) and the indices as 0;
/// returns the first nonzero pthread error code, or 0.
///
/// # Safety
///
/// `p` is valid for writes of a `Shared` and no one else uses it yet.
unsafe fn init(p: *mut Shared) -> libc::c_int {
    // SAFETY: for every call below: the caller guarantees `p` is valid,
    // aligned and unshared, so each field pointer is too.
    unsafe {
        (&raw mut (*p).head).write(0);
        (&raw mut (*p).tail).write(0);
        let mut rc = init_mutex(&raw mut (*p).mutex);
        if rc == 0 {
            rc = init_cond(&raw mut (*p).not_empty);
        }
        if rc == 0 {
            rc = init_cond(&raw mut (*p).not_full);
        }
        rc
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::runner::dir::BenchDir;

    #[test]
    fn items_come_out_in_order_across_the_wrap_and_waits_time_out() {
        let dir = BenchDir::new().expect("dir");
        let ring = PthreadRing::<u64>::create(&dir.file("ring"), 4).expect("ring");
        let short = Duration::from_millis(5);
        assert_eq!(ring.pop(short), None);
        assert_eq!(ring.push_slice(&[1, 2, 3], short), 3);
        let mut out = [0; 2];
        assert_eq!(ring.pop_slice(&mut out, short), 2);
        assert_eq!(out, [1, 2]);
        assert_eq!(ring.push_slice(&[4, 5, 6, 7], short), 3);
        assert!(!ring.push(8, short));
        assert_eq!(ring.len(), 4);
        let mut out = [0; 8];
        assert_eq!(ring.pop_slice(&mut out, short), 4);
        assert_eq!(out[..4], [3, 4, 5, 6]);
        assert!(ring.is_empty());
        ring.push(9, short);
        ring.clear();
        assert!(ring.is_empty());
    }
}
