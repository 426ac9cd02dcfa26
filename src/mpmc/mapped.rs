//! [`Queue<T>`] and [`ByteQueue`]: the MPMC ring over a mapped file.

use std::path::Path;
use std::time::Duration;

use crate::error::{
    BytePushError, BytePushTimeoutError, ByteTryPushError, Closed, JoinError, JoinTimeoutError,
    OpenError, PopError, PopTimeoutError, PushError, PushTimeoutError, TaskError, TryPopError,
    TryPushError,
};
use crate::layout::{Kind, bytes_type};
use crate::pod::{Payload, TypeInfo};
use crate::raw::message;
use crate::raw::mpmc::{CONTROL_SIZE, Control, FLAG_JOINABLE, RawQueue};
use crate::raw::seqlock::{copy_in, copy_out};
use crate::region::{self, CreateOptions, Expect, Region};
use crate::sync::AtomicU64;
use crate::wait::deadline;

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
        let words = desc.body_size.saturating_sub(CONTROL_SIZE) as usize / 8;
        let stride = desc.slot_size as usize / 8;
        let ctl = &region.body::<Control>(0, 1)[0];
        let slots = region.body::<AtomicU64>(CONTROL_SIZE as usize, capacity * stride);
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
            let slots = r.body::<AtomicU64>(CONTROL_SIZE as usize, capacity * stride);
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
        let queue = Self::new(region);
        if queue.raw.is_joinable() != opts.joinable {
            let kind = |joinable: bool| if joinable { "joinable" } else { "not joinable" };
            return Err(OpenError::InvalidOption {
                path: path.to_path_buf(),
                what: format!(
                    "expected a queue {} as asked, found one {}",
                    kind(opts.joinable),
                    kind(queue.raw.is_joinable())
                ),
            });
        }
        Ok(queue)
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
        /// own every [`RECOVERY_CHECK`](crate::mpmc::RECOVERY_CHECK), and
        /// `try_push`/`try_pop` do it for the one slot they meet in the
        /// way (a dead claimer whose operation had counted); this also
        /// frees the slots they do not wait for.
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
            self.m.raw.join_until(None).map_err(|e| match e {
                JoinTimeoutError::NotJoinable => JoinError::NotJoinable,
                JoinTimeoutError::Timeout(_) => {
                    unreachable!("a join without a deadline cannot time out")
                }
            })
        }

        /// [`join`](Self::join), giving up after `timeout`.
        ///
        /// # Errors
        ///
        /// [`JoinTimeoutError::Timeout`] with the number of unfinished
        /// items, or [`JoinTimeoutError::NotJoinable`].
        pub fn join_timeout(&self, timeout: Duration) -> Result<(), JoinTimeoutError> {
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

        /// Items in the queue that a pop can take now: published items,
        /// not pushes in flight (claimed, not yet written) nor items a
        /// consumer is taking. Looks at each slot from the head to the
        /// tail, so it costs O(items). Out of date as soon as it returns,
        /// but an item pushed before the call and still queued after it
        /// is always counted.
        pub fn len(&self) -> usize {
            self.m.raw.len()
        }

        /// Whether [`len`](Self::len) is 0 (stops at the first item found).
        /// Never `true` while an item pushed before the call is still
        /// queued after it.
        pub fn is_empty(&self) -> bool {
            self.m.raw.is_empty()
        }

        /// Whether the queue is full: every slot holds an item (or a push
        /// in flight) that no pop has claimed yet, so a push finds no
        /// room. Out of date as soon as it returns.
        pub fn is_full(&self) -> bool {
            self.m.raw.is_full()
        }

        /// Sets how long `try_push` and `try_pop` (and the batch calls)
        /// wait out a peer in flight — a push claimed but not yet
        /// published at the head, a pop not yet freed at the tail — before
        /// they answer `Empty` (`Full`) after all:
        /// [`IN_FLIGHT_PATIENCE`](crate::mpmc::IN_FLIGHT_PATIENCE) (1 s)
        /// unless set. A live peer takes nanoseconds, or a time slice if it
        /// was preempted; only a process stopped mid-operation (a
        /// debugger, `SIGSTOP`), or a peer that wrote a claim and nothing
        /// else, makes a call wait this long. `Duration::ZERO` never waits:
        /// the calls are then no longer linearizable (a push that returned
        /// can sit behind one in flight that a pop does not wait for).
        /// This handle only; other handles keep their own.
        pub fn set_in_flight_patience(&mut self, patience: Duration) {
            self.m.raw = self.m.raw.with_in_flight_patience(patience);
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
    /// As [`Queue::open`] and [`Queue::create`];
    /// [`OpenError::InvalidCapacity`] if an existing queue has another
    /// capacity, [`OpenError::InvalidOption`] if it is joinable and `opts`
    /// is not (or the other way round). An existing queue is never reset.
    pub fn open_or_create(
        path: impl AsRef<Path>,
        capacity: usize,
        opts: &QueueOptions,
    ) -> Result<Self, OpenError> {
        let path = region::resolve(path);
        Mapped::open_or_create(&path, Self::expect(), capacity, opts).map(Self::wrap)
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
        self.m
            .raw
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
        self.m
            .raw
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
        self.m
            .raw
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
    /// to [`BATCH_MAX`](crate::mpmc::BATCH_MAX)), moving the tail past them
    /// all at once and waking consumers once; returns how many (0 if
    /// full; a pop in flight in the slot at the tail is waited out, as by
    /// [`try_push`](Self::try_push)).
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
        self.m.raw.try_pop_with(Self::read)
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
        self.m.raw.pop_with(Self::read)
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
        self.m.raw.pop_with_until(Self::read, deadline(timeout))
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

    /// Creates a queue file of `capacity` slots (a power of two, 1 included)
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
    /// As [`ByteQueue::open`] and [`ByteQueue::create`];
    /// [`OpenError::WrongPayload`] if an existing queue has another
    /// `max_len` (naming both), [`OpenError::InvalidCapacity`] if it has
    /// another capacity, [`OpenError::InvalidOption`] if its joinability
    /// differs. An existing queue is never reset.
    pub fn open_or_create(
        path: impl AsRef<Path>,
        capacity: usize,
        max_len: usize,
        opts: &QueueOptions,
    ) -> Result<Self, OpenError> {
        let path = region::resolve(path);
        // The maximum length is part of the shape: an existing queue with
        // another one is refused (naming both), not opened as it is.
        let exactly = Expect {
            any_size: false,
            ..Self::expect(max_len)
        };
        Mapped::open_or_create(&path, exactly, capacity, opts).map(Self::wrap)
    }

    /// The longest message a slot holds.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Writes `msg` into a slot's payload words (published by the slot's
    /// sequence).
    fn write(msg: &[u8]) -> impl FnMut(&[AtomicU64]) + '_ {
        move |w: &[AtomicU64]| message::write(w, msg)
    }

    /// `Some((len, max))` if `msg` is longer than a slot holds.
    fn too_long(&self, msg: &[u8]) -> Option<(usize, usize)> {
        message::check_len(msg, self.max_len).err()
    }

    /// Pushes `msg` if there is room, never waiting for room (a pop in flight in
    /// the slot at the tail is waited out, as by [`Queue::try_push`]).
    ///
    /// # Errors
    ///
    /// [`ByteTryPushError::TooLong`], [`ByteTryPushError::Full`] or
    /// [`ByteTryPushError::Closed`].
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// use mmring::{ByteTryPushError, mpmc::{ByteQueue, QueueOptions}};
    ///
    /// let q = ByteQueue::create(dir.path().join("q"), 1, 8, &QueueOptions::new())?;
    /// q.try_push(b"one")?;
    /// assert_eq!(q.try_push(b"two"), Err(ByteTryPushError::Full));
    /// assert!(matches!(q.try_push(&[0; 9]), Err(ByteTryPushError::TooLong { len: 9, max: 8 })));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_push(&self, msg: &[u8]) -> Result<(), ByteTryPushError> {
        if let Some((len, max)) = self.too_long(msg) {
            return Err(ByteTryPushError::TooLong { len, max });
        }
        self.m
            .raw
            .try_push_with(Self::write(msg))
            .map_err(|e| match e {
                TryPushError::Full(()) => ByteTryPushError::Full,
                TryPushError::Closed(()) => ByteTryPushError::Closed,
            })
    }

    /// Pushes `msg`, sleeping while the queue is full.
    ///
    /// # Errors
    ///
    /// [`BytePushError::TooLong`] or [`BytePushError::Closed`] (never
    /// anything else: a blocking push does not time out, and an MPMC queue
    /// has no single consumer whose death ends it).
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// use mmring::{BytePushError, mpmc::{ByteQueue, QueueOptions}};
    ///
    /// let q = ByteQueue::create(dir.path().join("q"), 2, 8, &QueueOptions::new())?;
    /// q.push(b"hello")?;
    /// q.close();
    /// assert_eq!(q.push(b"late"), Err(BytePushError::Closed));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn push(&self, msg: &[u8]) -> Result<(), BytePushError> {
        if let Some((len, max)) = self.too_long(msg) {
            return Err(BytePushError::TooLong { len, max });
        }
        self.m
            .raw
            .push_with(Self::write(msg))
            .map_err(|_| BytePushError::Closed)
    }

    /// [`ByteQueue::push`], giving up after `timeout`.
    ///
    /// # Errors
    ///
    /// [`BytePushTimeoutError::TooLong`], [`BytePushTimeoutError::Closed`]
    /// or [`BytePushTimeoutError::Timeout`] (never `Disconnected`).
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// use std::time::Duration;
    /// use mmring::{BytePushTimeoutError, mpmc::{ByteQueue, QueueOptions}};
    ///
    /// let q = ByteQueue::create(dir.path().join("q"), 1, 8, &QueueOptions::new())?;
    /// q.push(b"one")?;
    /// let wait = Duration::from_millis(10);
    /// assert_eq!(q.push_timeout(b"two", wait), Err(BytePushTimeoutError::Timeout));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn push_timeout(&self, msg: &[u8], timeout: Duration) -> Result<(), BytePushTimeoutError> {
        if let Some((len, max)) = self.too_long(msg) {
            return Err(BytePushTimeoutError::TooLong { len, max });
        }
        self.m
            .raw
            .push_with_until(Self::write(msg), deadline(timeout))
            .map_err(|e| match e {
                PushTimeoutError::Closed(()) => BytePushTimeoutError::Closed,
                PushTimeoutError::Disconnected(()) => BytePushTimeoutError::Disconnected,
                PushTimeoutError::Timeout(()) => BytePushTimeoutError::Timeout,
            })
    }

    /// Reads a slot's message into `out` (at most `min(max_len, out.len())`
    /// bytes: a length from the mapping is never trusted); the length.
    fn read_into(max_len: usize, w: &[AtomicU64], out: &mut [u8]) -> usize {
        message::read(w, max_len, out)
    }

    /// Pops the oldest message into `out`, never waiting for one; its length. A
    /// message longer than `out` is cut to `out.len()` (size `out` to
    /// [`max_len`](Self::max_len) to never cut). Linearizable, and waits
    /// out a push in flight at the head, as [`Queue::try_pop`].
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
    /// [`PopError::Closed`] once closed and drained (never `Disconnected`).
    pub fn pop_into(&self, out: &mut [u8]) -> Result<usize, PopError> {
        let max = self.max_len;
        self.m.raw.pop_with(|w| Self::read_into(max, w, out))
    }

    /// Pops the oldest message, sleeping while empty.
    ///
    /// # Errors
    ///
    /// [`PopError::Closed`] once closed and drained (never `Disconnected`).
    pub fn pop(&self) -> Result<Vec<u8>, PopError> {
        let max = self.max_len;
        let mut buf = vec![0u8; max];
        let len = self.m.raw.pop_with(|w| Self::read_into(max, w, &mut buf))?;
        buf.truncate(len);
        Ok(buf)
    }

    /// [`ByteQueue::pop`], giving up after `timeout`.
    ///
    /// # Errors
    ///
    /// [`PopTimeoutError::Closed`] once closed and drained, or
    /// [`PopTimeoutError::Timeout`] (never `Disconnected`).
    pub fn pop_timeout(&self, timeout: Duration) -> Result<Vec<u8>, PopTimeoutError> {
        let max = self.max_len;
        let mut buf = vec![0u8; max];
        let len = self
            .m
            .raw
            .pop_with_until(|w| Self::read_into(max, w, &mut buf), deadline(timeout))?;
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
        assert_eq!(q.len(), 1, "7 is published, the dead claim is not");
        assert_eq!(q.recover(), 1);
        assert_eq!(q.recover(), 0);
        assert_eq!(q.try_pop(), Ok(7));
        // The same death met by `try_pop` first: recovered on the spot.
        let died = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _ = dying.try_push_with(|_| panic!("killed"));
        }));
        assert!(died.is_err());
        q.try_push(8).unwrap();
        assert_eq!(q.try_pop(), Ok(8), "not stuck behind the dead claim");
        assert_eq!(q.recover(), 0);
        assert_eq!(q.try_pop(), Err(TryPopError::Empty));
    }

    #[test]
    fn capacity_one_hands_over_one_item_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let q = Queue::<u64>::create(dir.path().join("q"), 1).unwrap();
        assert_eq!(
            (q.capacity(), q.len(), q.is_empty(), q.is_full()),
            (1, 0, true, false)
        );
        for v in 0..5 {
            q.try_push(v).unwrap();
            assert_eq!((q.len(), q.is_empty(), q.is_full()), (1, false, true));
            assert_eq!(q.try_push(99), Err(TryPushError::Full(99)));
            assert_eq!(q.push_slice(&[99, 98]), Ok(0));
            assert_eq!(q.try_pop(), Ok(v));
            assert_eq!(q.try_pop(), Err(TryPopError::Empty));
        }
        assert_eq!(q.push_slice(&[7, 8]), Ok(1));
        let mut out = [0u64; 4];
        assert_eq!(q.pop_slice(&mut out), Ok(1));
        assert_eq!(out[0], 7);
        q.push(9).unwrap();
        assert_eq!(
            q.push_timeout(10, Duration::from_millis(5)),
            Err(PushTimeoutError::Timeout(10))
        );
        q.close();
        assert_eq!(q.try_push(11), Err(TryPushError::Closed(11)));
        assert_eq!(q.pop(), Ok(9));
        assert_eq!(q.pop(), Err(PopError::Closed));
        assert_eq!(q.try_pop(), Err(TryPopError::Closed));
        assert_eq!(q.pop_timeout(Duration::ZERO), Err(PopTimeoutError::Closed));
        assert_eq!(q.pop_slice(&mut out), Err(Closed));

        let b = ByteQueue::create(dir.path().join("b"), 1, 4, &QueueOptions::new()).unwrap();
        b.try_push(b"ab").unwrap();
        assert!(b.is_full());
        assert_eq!(b.try_push(b"cd"), Err(ByteTryPushError::Full));
        assert_eq!(
            b.push_timeout(b"cd", Duration::ZERO),
            Err(BytePushTimeoutError::Timeout)
        );
        assert_eq!(b.pop(), Ok(b"ab".to_vec()));
        b.push(b"").unwrap();
        let mut buf = [0u8; 4];
        assert_eq!(b.try_pop_into(&mut buf), Ok(0));
        let again = ByteQueue::open_or_create(dir.path().join("b"), 1, 4, &QueueOptions::new());
        assert_eq!(again.unwrap().capacity(), 1);
    }

    /// The in-process version of `a_pop_after_a_completed_push_never_finds_
    /// the_queue_empty` (tests/mpmc_procs.rs): four threads each push then
    /// pop on a queue of 4 slots; a pop after a completed own push never
    /// finds the queue empty, and no push finds it full (at most 3 other
    /// items are ever queued).
    #[test]
    fn threads_that_push_then_pop_never_see_a_false_empty_or_full() {
        const THREADS: u64 = 4;
        let rounds: u64 = if cfg!(debug_assertions) {
            20_000
        } else {
            100_000
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q");
        let _q = Queue::<u64>::create(&path, 4).unwrap();
        let start = std::sync::Barrier::new(THREADS as usize);
        let (empties, fulls, got) = std::thread::scope(|s| {
            let workers: Vec<_> = (0..THREADS)
                .map(|t| {
                    let (path, start) = (&path, &start);
                    s.spawn(move || {
                        let q = Queue::<u64>::open(path).unwrap();
                        let (mut empties, mut fulls, mut got) = (0, 0, Vec::new());
                        start.wait();
                        for i in 0..rounds {
                            if let Err(TryPushError::Full(v)) = q.try_push(t << 32 | i) {
                                fulls += 1;
                                q.push(v).unwrap();
                            }
                            match q.try_pop() {
                                Ok(v) => got.push(v),
                                Err(_) => empties += 1,
                            }
                        }
                        (empties, fulls, got)
                    })
                })
                .collect();
            workers.into_iter().map(|w| w.join().unwrap()).fold(
                (0, 0, Vec::new()),
                |(e, f, mut all), (e1, f1, g)| {
                    all.extend(g);
                    (e + e1, f + f1, all)
                },
            )
        });
        let q = Queue::<u64>::open(&path).unwrap();
        let mut all = got;
        while let Ok(v) = q.try_pop() {
            all.push(v);
        }
        all.sort_unstable();
        let want: Vec<u64> = (0..THREADS)
            .flat_map(|t| (0..rounds).map(move |i| t << 32 | i))
            .collect();
        assert!(all == want, "items lost or repeated");
        assert_eq!((empties, fulls), (0, 0), "(false Empty, false Full)");
    }
}
