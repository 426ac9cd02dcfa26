//! The multi-producer, multi-consumer queue: the job of
//! `multiprocessing.Queue` and `JoinableQueue`, for any number of processes
//! at once, with no lock.
//!
//! [`Queue<T>`] holds typed values, [`ByteQueue`] byte messages up to a
//! maximum length chosen at creation; both are a bounded ring of slots in a
//! file, shared by every process that opens it. The ring's size is a power
//! of two; a queue may hold fewer items than that, and be full at exactly
//! that many ([`QueueOptions::bound`], [`Queue::create_bounded`]), as
//! `multiprocessing.Queue(maxsize)` is. A slot is won with one
//! compare-and-swap of a claim word that names its owner, so a process
//! killed mid-operation is recovered by the others (see "Processes that
//! die" on [`Queue`]). The algorithm (Vyukov's bounded MPMC queue, with
//! claims, holes and in-flight waits) is documented with its code in
//! `src/raw/mpmc/`.

use std::path::Path;
use std::time::Duration;

use crate::error::OpenError;
pub use crate::error::{BytePushError, JoinError, JoinTimeoutError, TaskError};
use crate::handle::{Mapped, Shape};
use crate::layout::{Kind, bytes_type};
use crate::pod::{Payload, TypeInfo};
pub use crate::raw::mpmc::{BATCH_MAX, FLAG_JOINABLE, IN_FLIGHT_PATIENCE, Snapshot};
use crate::raw::mpmc::{Control, Geometry, RawQueue};
use crate::region::{CreateOptions, Expect, Region};
use crate::sync::AtomicU64;
pub use bytes::ByteQueue;
pub use queue::Queue;

/// How a new queue file is made.
#[derive(Clone, Debug, Default)]
pub struct QueueOptions {
    joinable: bool,
    /// The most items held at once; `None`: the capacity.
    bound: Option<usize>,
    file: CreateOptions,
}

impl QueueOptions {
    /// Not joinable, bounded by the capacity, mode 0600, no label.
    pub fn new() -> Self {
        Self::default()
    }

    /// Hold at most `bound` items at once (1 to the capacity; the capacity
    /// if not set): `is_full`, `try_push`'s `Full`, the waits of `push` and
    /// `push_timeout` and the count `push_slice` takes all come at exactly
    /// `bound` items, as with `multiprocessing.Queue(maxsize=bound)`, while
    /// the ring keeps its power-of-two number of slots (`capacity()`).
    /// Recorded in the file: every handle that opens it gets the same
    /// bound. No lock: a push loads the head once more than a queue bounded
    /// by its capacity does (see [`Queue`]'s docs on the bound).
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// use mmring::{TryPushError, mpmc::{Queue, QueueOptions}};
    ///
    /// let q = Queue::<u32>::create_with(dir.path().join("q"), 8, &QueueOptions::new().bound(6))?;
    /// assert_eq!((q.capacity(), q.bound()), (8, 6));
    /// assert_eq!(q.push_slice(&[1, 2, 3, 4, 5, 6, 7]), Ok(6));
    /// assert!(q.is_full());
    /// assert_eq!(q.try_push(8), Err(TryPushError::Full(8)));
    /// assert_eq!(q.try_pop(), Ok(1));
    /// q.try_push(8)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn bound(mut self, bound: usize) -> Self {
        self.bound = Some(bound);
        self
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

/// What `create` and `open_or_create` ask for.
struct Spec {
    capacity: usize,
    /// The most items held at once (the capacity unless the options set
    /// one).
    bound: usize,
    joinable: bool,
    /// The longest message, for byte queues (0 for typed ones).
    max_len: usize,
}

impl Spec {
    /// What `opts` ask for, for a queue at `path` (named by the error).
    ///
    /// # Errors
    ///
    /// [`OpenError::InvalidOption`] for a bound outside 1 to the capacity
    /// (a bad capacity itself is the layout's to refuse).
    fn new(
        path: &Path,
        capacity: usize,
        max_len: usize,
        opts: &QueueOptions,
    ) -> Result<Self, OpenError> {
        let bound = match opts.bound {
            None => capacity,
            Some(b) if (1..=capacity).contains(&b) => b,
            Some(b) => {
                return Err(OpenError::InvalidOption {
                    path: crate::region::resolve(path),
                    what: format!("a bound of 1 to the capacity ({capacity}) items, found {b}"),
                });
            }
        };
        Ok(Self {
            capacity,
            bound,
            joinable: opts.joinable,
            max_len,
        })
    }
}

/// A queue file of `T` values.
struct Values<T>(std::marker::PhantomData<T>);

/// A queue file of byte messages.
struct Bytes;

/// What both shapes share: the body is the control words, then the slots
/// (`capacity` slots of the descriptor's slot size), and the geometry is
/// read once, at open.
macro_rules! queue_shape {
    () => {
        type Spec = Spec;
        type Geometry = Geometry;
        type Head = Control;
        type Elem = AtomicU64;

        fn capacity(spec: &Spec) -> u64 {
            spec.capacity as u64
        }

        fn init(region: &Region, spec: &Spec) {
            let flags = if spec.joinable { FLAG_JOINABLE } else { 0 };
            let ctl = &region.body::<Control>(0, 1)[0];
            ctl.init_flags(flags);
            ctl.init_bound(spec.bound as u64);
            let stride = region.descriptor().slot_size as usize / 8;
            let slots = region.body::<AtomicU64>(size_of::<Control>(), spec.capacity * stride);
            RawQueue::init_slots(slots, spec.capacity);
        }

        fn geometry(region: &Region) -> Result<Geometry, OpenError> {
            let desc = region.descriptor();
            let ctl = &region.body::<Control>(0, 1)[0];
            let joinable = ctl.is_joinable();
            // Read once, here, and never again: a peer that writes garbage
            // over it later changes nothing for this handle.
            let bound = ctl.bound();
            let capacity = desc.capacity;
            if !(1..=capacity).contains(&bound) {
                return Err(OpenError::CorruptHeader {
                    path: region.path().to_path_buf(),
                    what: format!(
                        "queue bound {bound} outside 1 to the capacity ({capacity})"
                    ),
                });
            }
            // The validated descriptor's capacity is a power of two and its
            // slots hold a payload (the kind's body layout): never refused.
            Geometry::new(
                capacity as usize,
                bound,
                desc.slot_size as usize / 8,
                joinable,
            )
            .ok_or_else(|| OpenError::CorruptHeader {
                path: region.path().to_path_buf(),
                what: format!(
                    "{} slots of {} bytes are not a queue",
                    desc.capacity, desc.slot_size
                ),
            })
        }

        fn elems(geometry: &Geometry) -> usize {
            geometry.words()
        }

        fn matches(found: &Geometry, spec: &Spec, path: &Path) -> Result<(), OpenError> {
            if found.capacity() != spec.capacity {
                return Err(OpenError::InvalidCapacity {
                    path: path.to_path_buf(),
                    expected: format!("capacity {} as asked", spec.capacity),
                    found: found.capacity() as u64,
                });
            }
            if found.bound() != spec.bound {
                return Err(OpenError::InvalidOption {
                    path: path.to_path_buf(),
                    what: format!(
                        "expected a queue bounded at {} items as asked, found one bounded at {}",
                        spec.bound,
                        found.bound()
                    ),
                });
            }
            if found.is_joinable() != spec.joinable {
                let kind = |joinable: bool| if joinable { "joinable" } else { "not joinable" };
                return Err(OpenError::InvalidOption {
                    path: path.to_path_buf(),
                    what: format!(
                        "expected a queue {} as asked, found one {}",
                        kind(spec.joinable),
                        kind(found.is_joinable())
                    ),
                });
            }
            Ok(())
        }
    };
}

impl<T: Payload> Shape for Values<T> {
    queue_shape!();

    fn expect(_: Option<&Spec>) -> Expect {
        Expect {
            kind: Kind::Mpmc,
            elem: TypeInfo::of::<T>(),
            any_size: false,
        }
    }
}

impl Shape for Bytes {
    queue_shape!();

    /// `open` takes any maximum length (the file's own); `create` and
    /// `open_or_create` ask for theirs (an existing queue with another one
    /// is refused, naming both).
    fn expect(spec: Option<&Spec>) -> Expect {
        let max_len = spec.map_or(0, |s| s.max_len);
        Expect {
            kind: Kind::MpmcBytes,
            elem: bytes_type(u32::try_from(max_len).unwrap_or(u32::MAX)),
            any_size: spec.is_none(),
        }
    }
}

/// What both queue handles hold: the mapped file (with the geometry read
/// at open) and this handle's in-flight patience.
struct Handle<S: Shape> {
    mapped: Mapped<S>,
    patience: Duration,
}

impl<S: Shape<Geometry = Geometry, Head = Control, Elem = AtomicU64>> Handle<S> {
    fn new(mapped: Mapped<S>) -> Self {
        Self {
            mapped,
            patience: IN_FLIGHT_PATIENCE,
        }
    }

    /// The raw queue over the mapping, built per call from what was read
    /// at open: pointer and field copies only.
    #[inline(always)]
    fn raw(&self) -> RawQueue<'_> {
        RawQueue::from_parts(
            self.mapped.head(),
            self.mapped.elems(),
            self.mapped.geometry(),
        )
        .with_in_flight_patience(self.patience)
    }
}

macro_rules! common_methods {
    () => {
        /// Closes the queue: pushes are refused from now on; consumers drain
        /// what is left, then get `Closed` — one call stops every consumer,
        /// however many there are. Wakes every sleeper (in `join` too).
        pub fn close(&self) {
            self.q.raw().close();
        }

        /// Whether the queue was closed.
        pub fn is_closed(&self) -> bool {
            self.q.raw().is_closed_now()
        }

        /// Marks one popped item as processed (`JoinableQueue.task_done`).
        ///
        /// # Errors
        ///
        /// [`TaskError::TooManyDone`] when more calls than pushed items
        /// are made (the count never wraps); [`TaskError::NotJoinable`].
        pub fn task_done(&self) -> Result<(), TaskError> {
            self.q.raw().task_done()
        }

        /// Recovers, now, the slots that processes which died mid-push or
        /// mid-pop left claimed (see "Processes that die" on
        /// [`Queue`](crate::mpmc::Queue)); returns how many. Blocked
        /// `push`/`pop` calls do this on their own every
        /// [`SLICE`](crate::wait::SLICE), and `try_push`/`try_pop` do it for
        /// the one slot they meet in the way (a dead claimer whose
        /// operation had counted); this also frees the slots they do not
        /// wait for.
        pub fn recover(&self) -> usize {
            self.q.raw().recover_abandoned_push() + self.q.raw().recover_abandoned_pop()
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
            self.q.raw().join_until(None).map_err(|e| match e {
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
            self.q.raw().join_until(deadline(timeout))
        }

        /// Whether the queue was created [`joinable`](QueueOptions::joinable)
        /// (counts tasks for `task_done`/`join`). Read from the file once,
        /// when this handle opened it.
        pub fn is_joinable(&self) -> bool {
            self.q.raw().is_joinable()
        }

        /// Items pushed and not yet marked done (joinable queues; a snapshot).
        pub fn unfinished(&self) -> u64 {
            self.q.raw().unfinished()
        }

        /// Number of slots: the ring's size, a power of two (see
        /// [`bound`](Self::bound) for how many items it holds).
        pub fn capacity(&self) -> usize {
            self.q.raw().capacity()
        }

        /// The most items the queue holds at once: the capacity, unless it
        /// was created with a lower [`QueueOptions::bound`]. Read from the
        /// file once, when this handle opened it.
        pub fn bound(&self) -> usize {
            self.q.raw().bound()
        }

        /// Items in the queue that a pop can take now: published items,
        /// not pushes in flight (claimed, not yet written) nor items a
        /// consumer is taking. Looks at each slot from the head to the
        /// tail, so it costs O(items). Out of date as soon as it returns,
        /// but an item pushed before the call and still queued after it
        /// is always counted, and it is never above [`bound`](Self::bound).
        pub fn len(&self) -> usize {
            self.q.raw().len()
        }

        /// Whether [`len`](Self::len) is 0 (stops at the first item found).
        /// Never `true` while an item pushed before the call is still
        /// queued after it.
        pub fn is_empty(&self) -> bool {
            self.q.raw().is_empty()
        }

        /// Whether the queue is full: it holds [`bound`](Self::bound) items
        /// (pushes in flight included) that no pop has claimed yet, so a
        /// push finds no room. Out of date as soon as it returns.
        pub fn is_full(&self) -> bool {
            self.q.raw().is_full()
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
            self.q.patience = patience;
        }

        /// The mapped file (path, descriptor, status, flush).
        pub fn region(&self) -> &Region {
            self.q.mapped.region()
        }
    };
}

mod bytes;
mod queue;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{
        BytePushTimeoutError, ByteTryPushError, Closed, PopError, PopTimeoutError,
        PushTimeoutError, TryPopError, TryPushError,
    };

    #[test]
    fn recover_frees_what_a_dead_producer_left_for_pollers() {
        let dir = tempfile::tempdir().unwrap();
        let q = Queue::<u64>::create(dir.path().join("q"), 4).unwrap();
        // A producer (playing a dead pid) wins position 0 and "dies" inside
        // its payload write: the panic is caught here, the slot stays
        // claimed and unpublished.
        let dying = q.q.raw().as_pid(crate::pid::dead_pid());
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
    fn is_joinable_reports_what_the_file_was_created_with() {
        let dir = tempfile::tempdir().unwrap();
        let (j, n) = (dir.path().join("j"), dir.path().join("n"));
        let opts = QueueOptions::new().joinable(true);
        assert!(ByteQueue::create(&j, 4, 8, &opts).unwrap().is_joinable());
        assert!(!ByteQueue::create(&n, 4, 8, &QueueOptions::new()).unwrap().is_joinable());
        // Every handle reads it from the file, whatever it was opened as.
        assert!(ByteQueue::open(&j).unwrap().is_joinable());
        assert!(!ByteQueue::open(&n).unwrap().is_joinable());
        let t = dir.path().join("t");
        assert!(Queue::<u64>::create_with(&t, 4, &opts).unwrap().is_joinable());
        assert!(Queue::<u64>::open(&t).unwrap().is_joinable());
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

    #[test]
    fn a_bound_is_recorded_checked_and_kept_by_every_handle() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q");
        let q = Queue::<u64>::create_bounded(&path, 6).unwrap();
        assert_eq!((q.capacity(), q.bound()), (8, 6));
        assert_eq!(q.push_slice(&[0, 1, 2, 3, 4, 5, 6, 7]), Ok(6));
        assert_eq!((q.len(), q.is_full()), (6, true));
        assert_eq!(q.try_push(6), Err(TryPushError::Full(6)));
        assert_eq!(
            q.push_timeout(6, Duration::from_millis(5)),
            Err(PushTimeoutError::Timeout(6))
        );
        // Every handle reads the bound from the file.
        let other = Queue::<u64>::open(&path).unwrap();
        assert_eq!(other.bound(), 6);
        assert_eq!(other.try_push(6), Err(TryPushError::Full(6)));
        assert_eq!(other.try_pop(), Ok(0));
        assert!(!q.is_full());
        q.push(6).unwrap();
        assert!(other.is_full());
        // open_or_create never resets it, and refuses another bound (or
        // none: the capacity).
        let opts = QueueOptions::new().bound(6);
        let again = Queue::<u64>::open_or_create(&path, 8, &opts).unwrap();
        assert_eq!((again.len(), again.bound()), (6, 6));
        for asked in [QueueOptions::new().bound(5), QueueOptions::new()] {
            assert!(matches!(
                Queue::<u64>::open_or_create(&path, 8, &asked),
                Err(OpenError::InvalidOption { what, .. }) if what.contains("bounded at")
            ));
        }
        // Bounds outside 1 ..= capacity are refused at creation, naming it.
        for (cap, bound) in [(8, 0), (8, 9), (1, 2)] {
            let p = dir.path().join(format!("bad-{cap}-{bound}"));
            let opts = QueueOptions::new().bound(bound);
            assert!(matches!(
                Queue::<u64>::create_with(&p, cap, &opts),
                Err(OpenError::InvalidOption { what, .. }) if what.contains("bound")
            ));
            assert!(matches!(
                ByteQueue::create(&p, cap, 8, &opts),
                Err(OpenError::InvalidOption { .. })
            ));
            assert!(!p.exists(), "nothing created");
        }
        assert!(matches!(
            Queue::<u64>::create_bounded(dir.path().join("zero"), 0),
            Err(OpenError::InvalidOption { .. })
        ));
        assert!(matches!(
            Queue::<u64>::create_bounded(dir.path().join("huge"), usize::MAX),
            Err(OpenError::InvalidCapacity { .. })
        ));
        // A bound equal to the capacity is the default.
        let full = Queue::<u64>::create_with(dir.path().join("full"), 4, &QueueOptions::new().bound(4))
            .unwrap();
        assert_eq!(full.bound(), 4);
        let b = ByteQueue::create(dir.path().join("b"), 4, 8, &QueueOptions::new().bound(3)).unwrap();
        assert_eq!((b.capacity(), b.bound()), (4, 3));
        let b2 = ByteQueue::open_or_create(dir.path().join("b"), 4, 8, &QueueOptions::new().bound(3))
            .unwrap();
        assert_eq!(b2.bound(), 3);
    }

    /// A bound outside 1 ..= capacity in a file (a peer's garbage) is a
    /// corrupt header at open; one written after a handle opened the file
    /// changes nothing for that handle (read once, at open).
    #[test]
    fn a_garbage_bound_in_the_file_is_refused_at_open_and_never_reread() {
        use std::os::unix::fs::FileExt;

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q");
        let q = Queue::<u64>::create_with(&path, 4, &QueueOptions::new().bound(2)).unwrap();
        let at = q.region().descriptor().body_offset + 304;
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        for garbage in [0u64, 5, u64::MAX] {
            file.write_all_at(&garbage.to_ne_bytes(), at).unwrap();
            assert!(matches!(
                Queue::<u64>::open(&path),
                Err(OpenError::CorruptHeader { what, .. }) if what.contains("bound")
            ));
            // The open handle keeps the bound it read.
            q.try_push(1).unwrap();
            q.try_push(2).unwrap();
            assert_eq!(q.try_push(3), Err(TryPushError::Full(3)));
            assert!(q.is_full());
            assert_eq!((q.try_pop(), q.try_pop()), (Ok(1), Ok(2)));
        }
        file.write_all_at(&3u64.to_ne_bytes(), at).unwrap();
        assert_eq!(Queue::<u64>::open(&path).unwrap().bound(), 3);
        assert_eq!(q.bound(), 2);
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
