//! [`Queue<T>`] and [`ByteQueue`]: the MPMC ring over a mapped file.

use std::path::Path;
use std::time::{Duration, Instant};

use super::{Control, FLAG_JOINABLE, JoinError, RawQueue, TaskError};
use crate::error::{
    BytePushError, Closed, OpenError, PopError, PushError, TryPopError, TryPushError,
};
use crate::layout::{Kind, RING_CONTROL_SIZE, bytes_type};
use crate::pod::{Payload, TypeInfo};
use crate::region::{self, CreateOptions, Expect, Region};
use crate::seqlock::{copy_in, copy_out};
use crate::sync::{AtomicU64, Ordering};

/// How a new queue file is made.
#[derive(Clone, Debug, Default)]
pub struct QueueOptions {
    joinable: bool,
    file: CreateOptions,
}

impl QueueOptions {
    /// Not joinable, mode 0600, no label.
    pub fn new() -> Self {
        Self::default()
    }

    /// Count pushed items until they are marked done: enables
    /// `task_done` and `join` (`JoinableQueue`). Costs one shared counter
    /// update per push and per `task_done`.
    pub fn joinable(mut self, yes: bool) -> Self {
        self.joinable = yes;
        self
    }

    /// The file's mode and label.
    pub fn file(mut self, file: CreateOptions) -> Self {
        self.file = file;
        self
    }
}

fn deadline(timeout: Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
}

/// A mapped queue file: the region and a [`RawQueue`] over it.
struct Mapped {
    /// Borrows from `region`'s mapping (declared first: dropped first).
    raw: RawQueue<'static>,
    region: Region,
}

impl Mapped {
    fn new(region: Region) -> Self {
        let desc = region.descriptor();
        let capacity = desc.capacity as usize;
        let words = (desc.body_size - RING_CONTROL_SIZE) as usize / 8;
        let stride = desc.slot_size as usize / 8;
        let ctl = &region.body::<Control>(0, 1)[0];
        let slots = region.body::<AtomicU64>(RING_CONTROL_SIZE as usize, capacity * stride);
        debug_assert!(capacity * stride <= words);
        let raw = RawQueue::new(ctl, slots, capacity);
        // SAFETY: `raw` borrows the mapping owned by `region`, which moves
        // into the same struct, stays mapped at the same address until it
        // is dropped, and is dropped after `raw` (field order). Callers only
        // get reborrows tied to `&self`.
        let raw = unsafe { std::mem::transmute::<RawQueue<'_>, RawQueue<'static>>(raw) };
        Self { raw, region }
    }

    fn init(flags: u32, capacity: usize) -> impl Fn(&Region) {
        move |r: &Region| {
            r.body::<Control>(0, 1)[0].init_flags(flags);
            let stride = r.descriptor().slot_size as usize / 8;
            let slots = r.body::<AtomicU64>(RING_CONTROL_SIZE as usize, capacity * stride);
            RawQueue::init_slots(slots, capacity);
        }
    }

    fn create(
        path: &Path,
        expect: Expect,
        capacity: usize,
        opts: &QueueOptions,
    ) -> Result<Self, OpenError> {
        let flags = if opts.joinable { FLAG_JOINABLE } else { 0 };
        Region::create(
            path,
            expect,
            capacity as u64,
            &opts.file,
            Self::init(flags, capacity),
        )
        .map(Self::new)
    }

    fn open_or_create(
        path: &Path,
        expect: Expect,
        capacity: usize,
        opts: &QueueOptions,
    ) -> Result<Self, OpenError> {
        let flags = if opts.joinable { FLAG_JOINABLE } else { 0 };
        let region = Region::open_or_create(
            path,
            expect,
            capacity as u64,
            &opts.file,
            Self::init(flags, capacity),
        )?;
        let found = region.descriptor().capacity;
        if found != capacity as u64 {
            return Err(OpenError::InvalidCapacity {
                path: path.to_path_buf(),
                expected: format!("capacity {capacity} as asked"),
                found,
            });
        }
        Ok(Self::new(region))
    }
}

macro_rules! common_methods {
    () => {
        /// Closes the queue: pushes are refused from now on; consumers drain
        /// what is left, then get `Closed` — one call stops every consumer,
        /// however many there are. Wakes every sleeper (in `join` too).
        pub fn close(&self) {
            self.m.raw.close();
        }

        /// Whether the queue was closed.
        pub fn is_closed(&self) -> bool {
            self.m.raw.is_closed_now()
        }

        /// Marks one popped item as processed (`JoinableQueue.task_done`).
        ///
        /// # Errors
        ///
        /// [`TaskError::TooManyDone`] when more calls than pushed items
        /// are made (the count never wraps); [`TaskError::NotJoinable`].
        pub fn task_done(&self) -> Result<(), TaskError> {
            self.m.raw.task_done()
        }

        /// Recovers, now, the slots that processes which died mid-push or
        /// mid-pop left claimed (see "Processes that die" on [`Queue`]);
        /// returns how many. Blocked `push`/`pop` calls do this on their
        /// own every [`RECOVERY_CHECK`](crate::mpmc::RECOVERY_CHECK); a
        /// process that only polls with `try_push`/`try_pop` can call it
        /// when it keeps finding the queue full or empty.
        pub fn recover(&self) -> usize {
            self.m.raw.recover_abandoned_push() + self.m.raw.recover_abandoned_pop()
        }

        /// Waits until every pushed item has been marked done. A consumer
        /// that dies between taking an item and its `task_done` leaves
        /// that item unfinished for good: in a pool whose workers may die,
        /// prefer [`join_timeout`](Self::join_timeout).
        ///
        /// # Errors
        ///
        /// [`JoinError::NotJoinable`] for a queue created without
        /// [`QueueOptions::joinable`].
        pub fn join(&self) -> Result<(), JoinError> {
            self.m.raw.join_until(None)
        }

        /// [`join`](Self::join), giving up after `timeout`.
        ///
        /// # Errors
        ///
        /// [`JoinError::Timeout`] with the number of unfinished items.
        pub fn join_timeout(&self, timeout: Duration) -> Result<(), JoinError> {
            self.m.raw.join_until(deadline(timeout))
        }

        /// Items pushed and not yet marked done (joinable queues; a snapshot).
        pub fn unfinished(&self) -> u64 {
            self.m.raw.unfinished()
        }

        /// Number of slots.
        pub fn capacity(&self) -> usize {
            self.m.raw.capacity()
        }

        /// Items in the queue (out of date as soon as it returns).
        pub fn len(&self) -> usize {
            self.m.raw.len()
        }

        /// Whether the queue is empty (out of date as soon as it returns).
        pub fn is_empty(&self) -> bool {
            self.m.raw.is_empty()
        }

        /// The mapped file (path, descriptor, status, flush).
        pub fn region(&self) -> &Region {
            &self.m.region
        }
    };
}

/// A bounded queue of `T` in a file, shared by any number of producer and
/// consumer processes, each holding its own handle: `multiprocessing.Queue`
/// (and, created [`joinable`](QueueOptions::joinable), `JoinableQueue`)
/// without a lock or a feeder thread.
///
/// All operations take `&self`: a handle can be shared by threads too.
///
/// # Examples
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// # let path = dir.path().join("jobs");
/// use mmring::mpmc::{Queue, QueueOptions};
///
/// let jobs = Queue::<u64>::create_with(&path, 1024, &QueueOptions::new().joinable(true))?;
/// // ... worker processes: `Queue::<u64>::open(&path)?`, then
/// // `while let Ok(job) = q.pop() { work(job); q.task_done()?; }`
/// jobs.push(7)?;
/// let worker = Queue::<u64>::open(&path)?;
/// assert_eq!(worker.pop()?, 7);
/// worker.task_done()?;
/// jobs.join()?; // every job done
/// jobs.close(); // every worker's pop() now returns Err(Closed)
/// assert!(worker.pop().is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Processes that die
///
/// A process wins a slot by writing its claim (role, pid, position) into
/// it with one compare-and-swap, so at every instant each won slot names
/// its owner. A producer killed after winning a slot and before publishing
/// it leaves the slot claimed under its pid; its push never returned `Ok`,
/// so no pushed item is lost, and blocked consumers turn the slot into a
/// hole that everyone skips (a joinable queue counts the hole's task
/// done). A consumer killed after winning an item and before freeing its
/// slot takes the item with it (as with any queue), and blocked producers
/// free the slot. Other producers and consumers step past a dead process's
/// claim at once; blocked calls look for such slots every
/// [`RECOVERY_CHECK`](crate::mpmc::RECOVERY_CHECK), and
/// [`recover`](Self::recover) does it on demand.
pub struct Queue<T: Payload> {
    m: Mapped,
    _type: std::marker::PhantomData<fn(T) -> T>,
}

impl<T: Payload> std::fmt::Debug for Queue<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("path", &self.m.region.path())
            .field("capacity", &self.capacity())
            .field("len", &self.len())
            .finish()
    }
}

impl<T: Payload> Queue<T> {
    fn expect() -> Expect {
        Expect {
            kind: Kind::Mpmc,
            elem: TypeInfo::of::<T>(),
            any_size: false,
        }
    }

    fn wrap(m: Mapped) -> Self {
        Self {
            m,
            _type: std::marker::PhantomData,
        }
    }

    /// Creates a queue file with `capacity` slots (a power of two, at least
    /// 2).
    ///
    /// # Errors
    ///
    /// [`OpenError::InvalidCapacity`] for a bad capacity; the other
    /// [`OpenError`]s as for any create.
    pub fn create(path: impl AsRef<Path>, capacity: usize) -> Result<Self, OpenError> {
        Self::create_with(path, capacity, &QueueOptions::default())
    }

    /// [`Queue::create`] with options (joinable, mode, label).
    ///
    /// # Errors
    ///
    /// As [`Queue::create`].
    pub fn create_with(
        path: impl AsRef<Path>,
        capacity: usize,
        opts: &QueueOptions,
    ) -> Result<Self, OpenError> {
        let path = region::resolve(path);
        Mapped::create(&path, Self::expect(), capacity, opts).map(Self::wrap)
    }

    /// Opens an existing queue file.
    ///
    /// # Errors
    ///
    /// The validation errors of any open ([`OpenError::WrongPayload`] for
    /// a queue of another type).
    pub fn open(path: impl AsRef<Path>) -> Result<Self, OpenError> {
        let path = region::resolve(path);
        Region::open(&path, Self::expect()).map(|r| Self::wrap(Mapped::new(r)))
    }

    /// Opens the queue at `path`, creating it if there is none; racing
    /// processes all end up with the same queue.
    ///
    /// # Errors
    ///
    /// As [`Queue::open`] and [`Queue::create`], and
    /// [`OpenError::InvalidCapacity`] if an existing queue has another
    /// capacity.
    pub fn open_or_create(
        path: impl AsRef<Path>,
        capacity: usize,
        opts: &QueueOptions,
    ) -> Result<Self, OpenError> {
        let path = region::resolve(path);
        Mapped::open_or_create(&path, Self::expect(), capacity, opts).map(Self::wrap)
    }

    /// Pushes `value` if there is room, never waiting.
    ///
    /// # Errors
    ///
    /// [`TryPushError::Full`] or [`TryPushError::Closed`], with the value.
    #[inline]
    pub fn try_push(&self, value: T) -> Result<(), TryPushError<T>> {
        self.m
            .raw
            .try_push_with(|w| copy_in(w, bytemuck::bytes_of(&value)))
            .map_err(|e| match e {
                TryPushError::Full(()) => TryPushError::Full(value),
                TryPushError::Closed(()) => TryPushError::Closed(value),
            })
    }

    fn push_until(&self, value: T, deadline: Option<Instant>) -> Result<(), PushError<T>> {
        self.m
            .raw
            .push_with_until(|w| copy_in(w, bytemuck::bytes_of(&value)), deadline)
            .map_err(|e| match e {
                PushError::Closed(()) => PushError::Closed(value),
                PushError::Disconnected(()) => PushError::Disconnected(value),
                PushError::Timeout(()) => PushError::Timeout(value),
            })
    }

    /// Pushes `value`, sleeping (futex, after a short spin) while the queue
    /// is full.
    ///
    /// # Errors
    ///
    /// [`PushError::Closed`] with the value.
    pub fn push(&self, value: T) -> Result<(), PushError<T>> {
        self.push_until(value, None)
    }

    /// [`Queue::push`], giving up after `timeout`.
    ///
    /// # Errors
    ///
    /// As [`Queue::push`], and [`PushError::Timeout`].
    pub fn push_timeout(&self, value: T, timeout: Duration) -> Result<(), PushError<T>> {
        self.push_until(value, deadline(timeout))
    }

    /// Pushes as many of `values` as there are free consecutive slots (up
    /// to [`BATCH_MAX`](crate::mpmc::BATCH_MAX)), moving the tail past them
    /// all at once and waking consumers once; returns how many (0 if
    /// full).
    ///
    /// # Errors
    ///
    /// [`Closed`] if the queue was closed.
    pub fn push_slice(&self, values: &[T]) -> Result<usize, Closed> {
        self.m.raw.push_batch_with(values.len(), |i, w| {
            copy_in(w, bytemuck::bytes_of(&values[i]))
        })
    }

    fn read(w: &[AtomicU64]) -> T {
        let mut v = T::zeroed();
        copy_out(w, bytemuck::bytes_of_mut(&mut v));
        v
    }

    /// Pops the oldest item if there is one, never waiting.
    ///
    /// # Errors
    ///
    /// [`TryPopError::Empty`], or [`TryPopError::Closed`] once the queue is
    /// closed and drained.
    #[inline]
    pub fn try_pop(&self) -> Result<T, TryPopError> {
        self.m.raw.try_pop_with(Self::read)
    }

    /// Pops the oldest item, sleeping (futex, after a short spin) while the
    /// queue is empty.
    ///
    /// # Errors
    ///
    /// [`PopError::Closed`] once the queue is closed and drained.
    pub fn pop(&self) -> Result<T, PopError> {
        self.m.raw.pop_with_until(Self::read, None)
    }

    /// [`Queue::pop`], giving up after `timeout`.
    ///
    /// # Errors
    ///
    /// As [`Queue::pop`], and [`PopError::Timeout`].
    pub fn pop_timeout(&self, timeout: Duration) -> Result<T, PopError> {
        self.m.raw.pop_with_until(Self::read, deadline(timeout))
    }

    /// Pops up to `out.len()` consecutive items (up to
    /// [`BATCH_MAX`](crate::mpmc::BATCH_MAX)), moving the head past them
    /// all at once and waking producers once; returns how many (0 if
    /// empty).
    ///
    /// # Errors
    ///
    /// [`Closed`] once the queue is closed and drained.
    pub fn pop_slice(&self, out: &mut [T]) -> Result<usize, Closed> {
        let max = out.len();
        self.m
            .raw
            .pop_batch_with(max, |i, w| out[i] = Self::read(w))
    }

    common_methods!();
}

/// A bounded queue of byte messages (each up to a maximum length chosen at
/// creation) in a file, shared by any number of processes: what pickled
/// objects through `multiprocessing.Queue` are used for.
///
/// A message's length is stored in its slot and clamped to the maximum when
/// read back, so a peer that writes a garbage length yields at most the
/// slot's bytes, never a read outside it.
///
/// # Examples
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// # let path = dir.path().join("msgs");
/// use mmring::mpmc::{ByteQueue, QueueOptions};
///
/// let q = ByteQueue::create(&path, 64, 256, &QueueOptions::new())?;
/// q.push(b"hello")?;
/// q.push(b"")?;
/// assert_eq!(q.pop()?, b"hello");
/// let mut buf = [0u8; 256];
/// assert_eq!(q.pop_into(&mut buf)?, 0);
/// assert!(q.push(&[0u8; 257]).is_err()); // longer than the maximum
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct ByteQueue {
    m: Mapped,
    max_len: usize,
}

impl std::fmt::Debug for ByteQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ByteQueue")
            .field("path", &self.m.region.path())
            .field("capacity", &self.capacity())
            .field("max_len", &self.max_len)
            .finish()
    }
}

impl ByteQueue {
    fn expect(max_len: usize) -> Expect {
        Expect {
            kind: Kind::MpmcBytes,
            elem: bytes_type(u32::try_from(max_len).unwrap_or(u32::MAX)),
            any_size: true,
        }
    }

    fn wrap(m: Mapped) -> Self {
        let max_len = m.region.descriptor().elem_size as usize;
        Self { m, max_len }
    }

    /// Creates a queue file of `capacity` slots (a power of two, at least 2)
    /// for messages of up to `max_len` bytes (1 to 65536).
    ///
    /// # Errors
    ///
    /// [`OpenError::InvalidCapacity`], [`OpenError::UnsupportedPayload`]
    /// for a bad `max_len`; the other [`OpenError`]s as for any create.
    pub fn create(
        path: impl AsRef<Path>,
        capacity: usize,
        max_len: usize,
        opts: &QueueOptions,
    ) -> Result<Self, OpenError> {
        let path = region::resolve(path);
        Mapped::create(&path, Self::expect(max_len), capacity, opts).map(Self::wrap)
    }

    /// Opens an existing byte queue file (any maximum length).
    ///
    /// # Errors
    ///
    /// The validation errors of any open.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, OpenError> {
        let path = region::resolve(path);
        Region::open(&path, Self::expect(0)).map(|r| Self::wrap(Mapped::new(r)))
    }

    /// Opens the byte queue at `path`, creating it if there is none.
    ///
    /// # Errors
    ///
    /// As [`ByteQueue::open`] and [`ByteQueue::create`], and
    /// [`OpenError::InvalidCapacity`] if an existing queue has another
    /// capacity.
    pub fn open_or_create(
        path: impl AsRef<Path>,
        capacity: usize,
        max_len: usize,
        opts: &QueueOptions,
    ) -> Result<Self, OpenError> {
        let path = region::resolve(path);
        Mapped::open_or_create(&path, Self::expect(max_len), capacity, opts).map(Self::wrap)
    }

    /// The longest message a slot holds.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    fn write(msg: &[u8]) -> impl FnMut(&[AtomicU64]) + '_ {
        move |w: &[AtomicU64]| {
            // Relaxed: published by the slot's sequence.
            w[0].store(msg.len() as u64, Ordering::Relaxed);
            copy_in(&w[1..], msg);
        }
    }

    fn check_len(&self, msg: &[u8]) -> Result<(), BytePushError> {
        if msg.len() > self.max_len {
            return Err(BytePushError::TooLong {
                len: msg.len(),
                max: self.max_len,
            });
        }
        Ok(())
    }

    /// Pushes `msg` if there is room, never waiting.
    ///
    /// # Errors
    ///
    /// [`BytePushError::TooLong`], [`BytePushError::Full`] or
    /// [`BytePushError::Closed`].
    pub fn try_push(&self, msg: &[u8]) -> Result<(), BytePushError> {
        self.check_len(msg)?;
        self.m
            .raw
            .try_push_with(Self::write(msg))
            .map_err(|e| match e {
                TryPushError::Full(()) => BytePushError::Full,
                TryPushError::Closed(()) => BytePushError::Closed,
            })
    }

    fn push_until(&self, msg: &[u8], deadline: Option<Instant>) -> Result<(), BytePushError> {
        self.check_len(msg)?;
        self.m
            .raw
            .push_with_until(Self::write(msg), deadline)
            .map_err(|e| match e {
                PushError::Timeout(()) => BytePushError::Timeout,
                PushError::Closed(()) | PushError::Disconnected(()) => BytePushError::Closed,
            })
    }

    /// Pushes `msg`, sleeping while the queue is full.
    ///
    /// # Errors
    ///
    /// [`BytePushError::TooLong`] or [`BytePushError::Closed`].
    pub fn push(&self, msg: &[u8]) -> Result<(), BytePushError> {
        self.push_until(msg, None)
    }

    /// [`ByteQueue::push`], giving up after `timeout`.
    ///
    /// # Errors
    ///
    /// As [`ByteQueue::push`], and [`BytePushError::Timeout`].
    pub fn push_timeout(&self, msg: &[u8], timeout: Duration) -> Result<(), BytePushError> {
        self.push_until(msg, deadline(timeout))
    }

    /// Reads a slot's message into `out` (at most `min(max_len, out.len())`
    /// bytes: a length from the mapping is never trusted); the length.
    fn read_into(max_len: usize, w: &[AtomicU64], out: &mut [u8]) -> usize {
        // Relaxed: ordered by the slot's sequence.
        let stored = w[0].load(Ordering::Relaxed);
        let len = usize::try_from(stored)
            .unwrap_or(usize::MAX)
            .min(max_len)
            .min(out.len());
        copy_out(&w[1..], &mut out[..len]);
        len
    }

    /// Pops the oldest message into `out`, never waiting; its length. A
    /// message longer than `out` is cut to `out.len()` (size `out` to
    /// [`max_len`](Self::max_len) to never cut).
    ///
    /// # Errors
    ///
    /// [`TryPopError::Empty`], or [`TryPopError::Closed`] once closed and
    /// drained.
    pub fn try_pop_into(&self, out: &mut [u8]) -> Result<usize, TryPopError> {
        let max = self.max_len;
        self.m.raw.try_pop_with(|w| Self::read_into(max, w, out))
    }

    /// Pops the oldest message into `out`, sleeping while empty; its length.
    ///
    /// # Errors
    ///
    /// [`PopError::Closed`] once closed and drained.
    pub fn pop_into(&self, out: &mut [u8]) -> Result<usize, PopError> {
        let max = self.max_len;
        self.m
            .raw
            .pop_with_until(|w| Self::read_into(max, w, out), None)
    }

    /// Pops the oldest message, sleeping while empty.
    ///
    /// # Errors
    ///
    /// [`PopError::Closed`] once closed and drained.
    pub fn pop(&self) -> Result<Vec<u8>, PopError> {
        self.pop_until(None)
    }

    /// [`ByteQueue::pop`], giving up after `timeout`.
    ///
    /// # Errors
    ///
    /// As [`ByteQueue::pop`], and [`PopError::Timeout`].
    pub fn pop_timeout(&self, timeout: Duration) -> Result<Vec<u8>, PopError> {
        self.pop_until(deadline(timeout))
    }

    fn pop_until(&self, deadline: Option<Instant>) -> Result<Vec<u8>, PopError> {
        let max = self.max_len;
        let mut buf = vec![0u8; max];
        let len = self
            .m
            .raw
            .pop_with_until(|w| Self::read_into(max, w, &mut buf), deadline)?;
        buf.truncate(len);
        Ok(buf)
    }

    common_methods!();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recover_frees_what_a_dead_producer_left_for_pollers() {
        let dir = tempfile::tempdir().unwrap();
        let q = Queue::<u64>::create(dir.path().join("q"), 4).unwrap();
        // A producer (playing a dead pid) wins position 0 and "dies" inside
        // its payload write: the panic is caught here, the slot stays
        // claimed and unpublished.
        let dying = q.m.raw.as_pid(crate::pid::dead_pid());
        let died = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _ = dying.try_push_with(|_| panic!("killed"));
        }));
        assert!(died.is_err());
        q.try_push(7).unwrap();
        assert_eq!(q.try_pop(), Err(TryPopError::Empty), "stuck behind it");
        assert_eq!(q.recover(), 1);
        assert_eq!(q.recover(), 0);
        assert_eq!(q.try_pop(), Ok(7));
    }
}
