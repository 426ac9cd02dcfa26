//! [`Queue<T>`]: the MPMC queue of typed values over a mapped file.

use std::path::Path;
use std::time::Duration;

use super::{Handle, JoinError, JoinTimeoutError, QueueOptions, Spec, TaskError, Values};
use crate::error::{
    Closed, OpenError, PopError, PopTimeoutError, PushError, PushTimeoutError, TryPopError,
    TryPushError,
};
use crate::handle::Mapped;
use crate::pod::Payload;
use crate::raw::seqlock::{copy_in, copy_out};
use crate::region::Region;
use crate::sync::AtomicU64;
use crate::wait::deadline;

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
/// [`SLICE`](crate::wait::SLICE), and
/// [`recover`](Self::recover) does it on demand.
///
/// # A bound below the capacity
///
/// The ring's size is a power of two; a queue created with
/// [`QueueOptions::bound`] (or [`Queue::create_bounded`]) holds at most
/// that many items all the same, and is full at exactly that many: a
/// producer reads the head before it claims a slot and claims none that
/// would put the queue past its bound, with no lock (the argument is in
/// `src/raw/mpmc/mod.rs`). A push then costs one more load of the head (a
/// word every consumer writes); a queue bounded by its capacity (the
/// default) skips it. [`len`](Self::len) never exceeds the bound, and
/// `Full` is only reported when, at some instant of the call, the queue
/// held `bound` items.
pub struct Queue<T: Payload> {
    pub(super) q: Handle<Values<T>>,
}

impl<T: Payload> std::fmt::Debug for Queue<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("path", &self.q.mapped.region().path())
            .field("capacity", &self.capacity())
            .field("bound", &self.bound())
            .field("len", &self.len())
            .finish()
    }
}

impl<T: Payload> Queue<T> {
    fn wrap(mapped: Mapped<Values<T>>) -> Self {
        Self {
            q: Handle::new(mapped),
        }
    }

    /// Creates a queue file with `capacity` slots (a power of two; 1 is
    /// fine: a one-slot hand-off).
    ///
    /// # Errors
    ///
    /// [`OpenError::InvalidCapacity`] for a bad capacity; the other
    /// [`OpenError`]s as for any create.
    pub fn create(path: impl AsRef<Path>, capacity: usize) -> Result<Self, OpenError> {
        Self::create_with(path, capacity, &QueueOptions::default())
    }

    /// [`Queue::create`] with options (joinable, bound, mode, label).
    ///
    /// # Errors
    ///
    /// As [`Queue::create`]; [`OpenError::InvalidOption`] for a
    /// [`bound`](QueueOptions::bound) outside 1 to `capacity`.
    pub fn create_with(
        path: impl AsRef<Path>,
        capacity: usize,
        opts: &QueueOptions,
    ) -> Result<Self, OpenError> {
        let spec = Spec::new(path.as_ref(), capacity, 0, opts)?;
        Mapped::create(path, &spec, &opts.file).map(Self::wrap)
    }

    /// Creates a queue that holds at most `maxsize` items, the way
    /// `multiprocessing.Queue(maxsize)` does: a ring of the next power of
    /// two slots ([`capacity`](Self::capacity)) with a
    /// [`bound`](QueueOptions::bound) of `maxsize`. Not joinable, mode
    /// 0600; [`Queue::create_with`] with [`QueueOptions::bound`] for the
    /// rest.
    ///
    /// # Errors
    ///
    /// [`OpenError::InvalidOption`] for a `maxsize` of 0,
    /// [`OpenError::InvalidCapacity`] for one whose ring would be too
    /// large; the other [`OpenError`]s as for any create.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// use mmring::{TryPushError, mpmc::Queue};
    ///
    /// let q = Queue::<u64>::create_bounded(dir.path().join("q"), 6)?;
    /// assert_eq!((q.bound(), q.capacity()), (6, 8));
    /// for v in 0..6 {
    ///     q.try_push(v)?;
    /// }
    /// assert!(q.is_full()); // at exactly 6 items
    /// assert_eq!(q.try_push(6), Err(TryPushError::Full(6)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn create_bounded(path: impl AsRef<Path>, maxsize: usize) -> Result<Self, OpenError> {
        // A maxsize past the largest power of two: a ring no layout takes.
        let capacity = maxsize.checked_next_power_of_two().unwrap_or(usize::MAX);
        Self::create_with(path, capacity, &QueueOptions::new().bound(maxsize))
    }

    /// Opens an existing queue file.
    ///
    /// # Errors
    ///
    /// The validation errors of any open ([`OpenError::WrongPayload`] for
    /// a queue of another type).
    pub fn open(path: impl AsRef<Path>) -> Result<Self, OpenError> {
        Mapped::open(path).map(Self::wrap)
    }

    /// Opens the queue at `path`, creating it if there is none; racing
    /// processes all end up with the same queue.
    ///
    /// Opening an existing queue never resets it: `capacity` and `opts`
    /// apply only when the file is created, and an existing queue is
    /// attached as it is, with the items queued in it. What is checked is
    /// its shape (item type, capacity, joinability: the errors below); a
    /// mismatch leaves the file alone.
    ///
    /// # Errors
    ///
    /// As [`Queue::open`] and [`Queue::create`];
    /// [`OpenError::InvalidCapacity`] if an existing queue has another
    /// capacity, [`OpenError::InvalidOption`] if it is joinable and `opts`
    /// is not (or the other way round) or has another
    /// [`bound`](QueueOptions::bound). An existing queue is never reset.
    pub fn open_or_create(
        path: impl AsRef<Path>,
        capacity: usize,
        opts: &QueueOptions,
    ) -> Result<Self, OpenError> {
        let spec = Spec::new(path.as_ref(), capacity, 0, opts)?;
        Mapped::open_or_create(path, &spec, &opts.file).map(Self::wrap)
    }

    /// Pushes `value` if there is room, never waiting for room.
    ///
    /// Never reports `Full` while a pop that has returned left room: a pop
    /// still in flight in the slot at the tail (its consumer claimed the
    /// item and has not freed the slot yet) is waited out, spinning,
    /// yielding, then sleeping until the free wakes the call —
    /// nanoseconds, or a time slice if that consumer was
    /// preempted, at most [`IN_FLIGHT_PATIENCE`](crate::mpmc::IN_FLIGHT_PATIENCE)
    /// for a stopped process — and a dead one's slot is freed on the spot.
    ///
    /// # Errors
    ///
    /// [`TryPushError::Full`] or [`TryPushError::Closed`], with the value.
    #[inline]
    pub fn try_push(&self, value: T) -> Result<(), TryPushError<T>> {
        self.q
            .raw()
            .try_push_with(|w| copy_in(w, bytemuck::bytes_of(&value)))
            .map_err(|e| match e {
                TryPushError::Full(()) => TryPushError::Full(value),
                TryPushError::Closed(()) => TryPushError::Closed(value),
            })
    }

    /// Pushes `value`, sleeping (futex, after a short spin) while the queue
    /// is full.
    ///
    /// # Errors
    ///
    /// [`PushError::Closed`] with the value. Never
    /// [`PushError::Disconnected`]: an MPMC queue has no single consumer
    /// whose death ends it (slots held by dead consumers are recovered
    /// while the call waits).
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// use mmring::{PushError, mpmc::Queue};
    ///
    /// let q = Queue::<u32>::create(dir.path().join("q"), 1)?;
    /// q.push(1)?;
    /// assert!(q.is_full());
    /// q.close();
    /// assert_eq!(q.push(2).map_err(PushError::into_inner), Err(2));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn push(&self, value: T) -> Result<(), PushError<T>> {
        self.q
            .raw()
            .push_with(|w| copy_in(w, bytemuck::bytes_of(&value)))
            .map_err(|_| PushError::Closed(value))
    }

    /// [`Queue::push`], giving up after `timeout` (its last look waits out
    /// a pop in flight, as [`try_push`](Self::try_push), for 10 ms past
    /// the deadline at most).
    ///
    /// # Errors
    ///
    /// [`PushTimeoutError::Closed`] or [`PushTimeoutError::Timeout`], with
    /// the value; never `Disconnected`.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// use std::time::Duration;
    /// use mmring::{PushTimeoutError, mpmc::Queue};
    ///
    /// let q = Queue::<u32>::create(dir.path().join("q"), 1)?;
    /// q.push_timeout(1, Duration::from_millis(10))?;
    /// match q.push_timeout(2, Duration::from_millis(10)) {
    ///     Err(PushTimeoutError::Timeout(v)) => assert_eq!(v, 2),
    ///     other => panic!("{other:?}"),
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn push_timeout(&self, value: T, timeout: Duration) -> Result<(), PushTimeoutError<T>> {
        self.q
            .raw()
            .push_with_until(
                |w| copy_in(w, bytemuck::bytes_of(&value)),
                deadline(timeout),
            )
            .map_err(|e| match e {
                PushTimeoutError::Closed(()) => PushTimeoutError::Closed(value),
                PushTimeoutError::Disconnected(()) => PushTimeoutError::Disconnected(value),
                PushTimeoutError::Timeout(()) => PushTimeoutError::Timeout(value),
            })
    }

    /// Pushes as many of `values` as there are free consecutive slots (up
    /// to [`BATCH_MAX`](crate::mpmc::BATCH_MAX), and never past the
    /// [`bound`](Self::bound)), moving the tail past them all at once and
    /// waking consumers once; returns how many (0 if full; a pop in flight
    /// in the slot at the tail is waited out, as by
    /// [`try_push`](Self::try_push)).
    ///
    /// # Errors
    ///
    /// [`Closed`] if the queue was closed.
    pub fn push_slice(&self, values: &[T]) -> Result<usize, Closed> {
        self.q.raw().push_batch_with(values.len(), |i, w| {
            copy_in(w, bytemuck::bytes_of(&values[i]))
        })
    }

    fn read(w: &[AtomicU64]) -> T {
        let mut v = T::zeroed();
        copy_out(w, bytemuck::bytes_of_mut(&mut v));
        v
    }

    /// Pops the oldest item if there is one, never waiting for one to be
    /// pushed.
    ///
    /// Linearizable: never reports `Empty` while an item whose push has
    /// returned is still queued (so "push, then pop" and drain loops that
    /// stop at the first `Empty` lose nothing). When the slot at the head
    /// is claimed by a producer whose push is in flight (the tail is past
    /// it, the item not written yet), the call waits for it, spinning,
    /// yielding, then sleeping until the publish wakes it: nanoseconds, or
    /// a time slice if that producer was
    /// preempted, at most this handle's patience (1 s,
    /// [`set_in_flight_patience`](Self::set_in_flight_patience)) for a
    /// stopped process. A producer found dead is recovered on the spot (its
    /// slot becomes a hole that is skipped).
    ///
    /// # Errors
    ///
    /// [`TryPopError::Empty`], or [`TryPopError::Closed`] once the queue is
    /// closed and drained.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// use mmring::{TryPopError, mpmc::Queue};
    ///
    /// let q = Queue::<u64>::create(dir.path().join("q"), 4)?;
    /// q.try_push(7)?;
    /// assert_eq!(q.try_pop(), Ok(7)); // a completed push is always seen
    /// assert_eq!(q.try_pop(), Err(TryPopError::Empty));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn try_pop(&self) -> Result<T, TryPopError> {
        self.q.raw().try_pop_with(Self::read)
    }

    /// Pops the oldest item, sleeping (futex, after a short spin) while the
    /// queue is empty.
    ///
    /// # Errors
    ///
    /// [`PopError::Closed`] once the queue is closed and drained. Never
    /// [`PopError::Disconnected`]: an MPMC queue has no single producer
    /// whose death ends it (slots left by dead producers are recovered
    /// while the call waits).
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// use mmring::{PopError, mpmc::Queue};
    ///
    /// let q = Queue::<u64>::create(dir.path().join("q"), 2)?;
    /// q.push(1)?;
    /// q.close();
    /// assert_eq!(q.pop(), Ok(1)); // what was pushed is drained
    /// assert_eq!(q.pop(), Err(PopError::Closed));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn pop(&self) -> Result<T, PopError> {
        self.q.raw().pop_with(Self::read)
    }

    /// [`Queue::pop`], giving up after `timeout` (its last look waits out a
    /// push in flight, as [`try_pop`](Self::try_pop), for 10 ms past the
    /// deadline at most).
    ///
    /// # Errors
    ///
    /// [`PopTimeoutError::Closed`] once closed and drained, or
    /// [`PopTimeoutError::Timeout`]; never `Disconnected`.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// use std::time::Duration;
    /// use mmring::{PopTimeoutError, mpmc::Queue};
    ///
    /// let q = Queue::<u64>::create(dir.path().join("q"), 2)?;
    /// assert_eq!(q.pop_timeout(Duration::from_millis(10)), Err(PopTimeoutError::Timeout));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn pop_timeout(&self, timeout: Duration) -> Result<T, PopTimeoutError> {
        self.q.raw().pop_with_until(Self::read, deadline(timeout))
    }

    /// Pops up to `out.len()` consecutive items (up to
    /// [`BATCH_MAX`](crate::mpmc::BATCH_MAX)), moving the head past them
    /// all at once and waking producers once; returns how many (0 if
    /// empty). Linearizable as [`try_pop`](Self::try_pop): it waits out a
    /// push in flight at the head rather than return 0 with completed
    /// pushes queued behind it.
    ///
    /// # Errors
    ///
    /// [`Closed`] once the queue is closed and drained.
    pub fn pop_slice(&self, out: &mut [T]) -> Result<usize, Closed> {
        let max = out.len();
        self.q
            .raw()
            .pop_batch_with(max, |i, w| out[i] = Self::read(w))
    }

    common_methods!();
}
