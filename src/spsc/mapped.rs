//! [`Producer`] and [`Consumer`]: the ring's two ends over a mapped file.

use std::path::Path;
use std::time::{Duration, Instant};

use super::{
    Control, RawConsumer, RawProducer, ReadChunk, SLOTS_OFFSET, WriteChunk, claim_role,
    release_role, words_for,
};
use crate::error::{ChunkError, Closed, OpenError, PopError, PushError, TryPopError, TryPushError};
use crate::layout::Kind;
use crate::pod::{Payload, TypeInfo};
use crate::region::{self, CreateOptions, Expect, Region};
use crate::sync::{AtomicU64, Ordering};

pub(super) fn expect<T: Payload>() -> Expect {
    Expect {
        kind: Kind::Spsc,
        elem: TypeInfo::of::<T>(),
        any_size: false,
    }
}

fn parts<T: Payload>(region: &Region) -> (&Control, &[AtomicU64]) {
    // The descriptor was validated at open (capacity a power of two, at
    // most 2^32 slots, body size matching): no overflow.
    let cap = region.descriptor().capacity as usize;
    (
        &region.body::<Control>(0, 1)[0],
        region.body::<AtomicU64>(SLOTS_OFFSET, words_for::<T>(cap)),
    )
}

pub(super) fn create_region_for(
    path: &Path,
    expect: Expect,
    capacity: usize,
    opts: &CreateOptions,
) -> Result<Region, OpenError> {
    // A fresh file is all zeros: an empty, open ring with no roles held.
    Region::create(path, expect, capacity as u64, opts, |_| {})
}

fn create_region<T: Payload>(
    path: &Path,
    capacity: usize,
    opts: &CreateOptions,
) -> Result<Region, OpenError> {
    create_region_for(path, expect::<T>(), capacity, opts)
}

fn open_or_create_region<T: Payload>(path: &Path, capacity: usize) -> Result<Region, OpenError> {
    let region = Region::open_or_create(
        path,
        expect::<T>(),
        capacity as u64,
        &CreateOptions::default(),
        |_| {},
    )?;
    let found = region.descriptor().capacity;
    if found != capacity as u64 {
        return Err(OpenError::InvalidCapacity {
            path: path.to_path_buf(),
            expected: format!("capacity {capacity} as asked"),
            found,
        });
    }
    Ok(region)
}

fn deadline(timeout: Duration) -> Option<Instant> {
    // An absurd timeout (past the clock's range) means no deadline.
    Instant::now().checked_add(timeout)
}

/// The producing end of an SPSC ring file: one per ring at a time, across
/// all processes (claimed at open with the holder's pid; a holder that died
/// is taken over).
///
/// `Send` but not `Sync`: operations take `&mut self`. Dropping it closes
/// the ring from the producing side (the consumer drains, then gets
/// `Closed`) and gives the role back.
///
/// # Examples
///
/// Two processes, one ring:
///
/// ```rust,standalone_crate
/// use mmring::spsc::{Consumer, Producer};
///
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("jobs");
/// let mut tx = Producer::<u64>::create(&path, 1024)?;
///
/// // SAFETY: this doctest is its own single-threaded process.
/// let child = unsafe { libc::fork() };
/// assert!(child >= 0);
/// if child == 0 {
///     // The consumer process: opens the same file by name.
///     let mut rx = Consumer::<u64>::open(&path).expect("open consumer");
///     let mut sum = 0;
///     while let Ok(v) = rx.pop() {
///         sum += v; // ends with Err(Closed) once the producer is done
///     }
///     // SAFETY: leave at once, with the sum as the exit code's check.
///     unsafe { libc::_exit(if sum == (1..=10_000).sum::<u64>() { 0 } else { 1 }) };
/// }
/// for i in 1..=10_000 {
///     tx.push(i)?; // sleeps (no CPU) while the ring is full
/// }
/// tx.close();
/// let mut status = 0;
/// // SAFETY: reaps our child; `status` is a valid out-pointer.
/// unsafe { libc::waitpid(child, &mut status, 0) };
/// assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Producer<T: Payload> {
    /// Borrows from `region`'s mapping (declared first: dropped first).
    pub(super) raw: RawProducer<'static, T>,
    region: Region,
    me: u32,
}

// SAFETY: the raw end is Send (see spsc.rs) and the Region is a mapping
// plus plain data; the handle owns both.
unsafe impl<T: Payload + Send> Send for Producer<T> {}

impl<T: Payload> std::fmt::Debug for Producer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("path", &self.region.path())
            .field("capacity", &self.capacity())
            .field("len", &self.len())
            .finish()
    }
}

impl<T: Payload> Producer<T> {
    pub(super) fn attach(region: Region) -> Result<Self, OpenError> {
        let me = crate::pid::current();
        let (ctl, slots) = parts::<T>(&region);
        // Relaxed: a closed ring refuses producers; a close racing this
        // open is seen by the first push.
        if ctl.closed.load(Ordering::Relaxed) != 0 {
            return Err(OpenError::Closed {
                path: region.path().to_path_buf(),
            });
        }
        claim_role(&ctl.producer, me).map_err(|pid| OpenError::RoleTaken {
            path: region.path().to_path_buf(),
            role: "producer",
            pid,
        })?;
        let raw = RawProducer::new(ctl, slots);
        // SAFETY: `raw` borrows the mapping owned by `region`, which moves
        // into the same struct, stays mapped at the same address until it
        // is dropped, and is dropped after `raw` (field order). No reference
        // with the 'static lifetime is ever handed out: every method
        // reborrows for the lifetime of `&self`/`&mut self`.
        let raw =
            unsafe { std::mem::transmute::<RawProducer<'_, T>, RawProducer<'static, T>>(raw) };
        Ok(Self { raw, region, me })
    }

    /// Creates a ring file with `capacity` slots (a power of two) and
    /// becomes its producer.
    ///
    /// # Errors
    ///
    /// [`OpenError::InvalidCapacity`] for a capacity that is zero, not a
    /// power of two, or absurd; the other [`OpenError`]s as for any create.
    pub fn create(path: impl AsRef<Path>, capacity: usize) -> Result<Self, OpenError> {
        Self::create_with(path, capacity, &CreateOptions::default())
    }

    /// [`Producer::create`] with a mode and label.
    ///
    /// # Errors
    ///
    /// As [`Producer::create`].
    pub fn create_with(
        path: impl AsRef<Path>,
        capacity: usize,
        opts: &CreateOptions,
    ) -> Result<Self, OpenError> {
        let path = region::resolve(path);
        Self::attach(create_region::<T>(&path, capacity, opts)?)
    }

    /// Opens an existing ring file as its producer.
    ///
    /// # Errors
    ///
    /// [`OpenError::RoleTaken`] while another live process (or handle) is
    /// the producer; [`OpenError::Closed`] if the ring was closed; the
    /// validation errors of any open.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, OpenError> {
        let path = region::resolve(path);
        Self::attach(Region::open(&path, expect::<T>())?)
    }

    /// Opens the ring at `path` as its producer, creating it with
    /// `capacity` slots if there is none.
    ///
    /// # Errors
    ///
    /// As [`Producer::open`] and [`Producer::create`], and
    /// [`OpenError::InvalidCapacity`] if an existing ring has another
    /// capacity.
    pub fn open_or_create(path: impl AsRef<Path>, capacity: usize) -> Result<Self, OpenError> {
        let path = region::resolve(path);
        Self::attach(open_or_create_region::<T>(&path, capacity)?)
    }

    /// Pushes `value` if there is room, never waiting (no system call).
    ///
    /// # Errors
    ///
    /// [`TryPushError::Full`] or [`TryPushError::Closed`], with the value.
    #[inline]
    pub fn try_push(&mut self, value: T) -> Result<(), TryPushError<T>> {
        self.raw.try_push(value)
    }

    /// Pushes `value`, sleeping (in a futex, after a short spin) while the
    /// ring is full.
    ///
    /// # Errors
    ///
    /// [`PushError::Closed`] if the ring is closed, or
    /// [`PushError::Disconnected`] if the consumer's process died while the
    /// ring was full; the value comes back.
    pub fn push(&mut self, value: T) -> Result<(), PushError<T>> {
        self.raw.push_until(value, None)
    }

    /// [`Producer::push`], giving up after `timeout`.
    ///
    /// # Errors
    ///
    /// As [`Producer::push`], and [`PushError::Timeout`].
    pub fn push_timeout(&mut self, value: T, timeout: Duration) -> Result<(), PushError<T>> {
        self.raw.push_until(value, deadline(timeout))
    }

    /// Pushes as many of `values` as fit, with one publish for the batch;
    /// returns how many.
    ///
    /// # Errors
    ///
    /// [`Closed`] if the ring was closed.
    pub fn push_slice(&mut self, values: &[T]) -> Result<usize, Closed> {
        self.raw.push_slice(values)
    }

    /// Reserves `n` slots to fill, each value copied straight into its
    /// slot ([`WriteChunk::set`], [`WriteChunk::copy_from_slice`],
    /// [`WriteChunk::fill_from_iter`]); published when committed.
    ///
    /// # Errors
    ///
    /// [`ChunkError::TooFewSlots`] with the number free, or
    /// [`ChunkError::Closed`].
    pub fn write_chunk(&mut self, n: usize) -> Result<WriteChunk<'_, 'static, T>, ChunkError> {
        self.raw.write_chunk(n)
    }

    /// Closes the ring: the consumer drains what is left, then gets
    /// `Closed`; every sleeper wakes. Idempotent.
    pub fn close(&self) {
        self.raw.close();
    }

    /// Number of slots.
    pub fn capacity(&self) -> usize {
        self.raw.capacity()
    }

    /// Items in the ring (out of date as soon as it returns).
    pub fn len(&self) -> usize {
        self.raw.len()
    }

    /// Whether the ring is empty (out of date as soon as it returns).
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// The mapped file (path, descriptor, status, flush).
    pub fn region(&self) -> &Region {
        &self.region
    }
}

impl<T: Payload> Drop for Producer<T> {
    fn drop(&mut self) {
        self.raw.close();
        release_role(&self.raw.ring.ctl.producer, self.me);
    }
}

/// The consuming end of an SPSC ring file: one per ring at a time, across
/// all processes (claimed at open with the holder's pid; a holder that died
/// is taken over).
///
/// `Send` but not `Sync`: operations take `&mut self`. Dropping it closes
/// the ring from the consuming side (pushes get `Closed`) and gives the
/// role back; a later consumer can still open the ring and drain it.
pub struct Consumer<T: Payload> {
    /// Borrows from `region`'s mapping (declared first: dropped first).
    pub(super) raw: RawConsumer<'static, T>,
    region: Region,
    me: u32,
}

// SAFETY: as for Producer.
unsafe impl<T: Payload + Send> Send for Consumer<T> {}

impl<T: Payload> std::fmt::Debug for Consumer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("path", &self.region.path())
            .field("capacity", &self.capacity())
            .field("len", &self.len())
            .finish()
    }
}

impl<T: Payload> Consumer<T> {
    pub(super) fn attach(region: Region) -> Result<Self, OpenError> {
        let me = crate::pid::current();
        let (ctl, slots) = parts::<T>(&region);
        claim_role(&ctl.consumer, me).map_err(|pid| OpenError::RoleTaken {
            path: region.path().to_path_buf(),
            role: "consumer",
            pid,
        })?;
        let raw = RawConsumer::new(ctl, slots);
        // SAFETY: as in `Producer::attach`: `raw` borrows the mapping owned
        // by `region`, which lives in the same struct and is dropped after
        // it; no 'static reference escapes.
        let raw =
            unsafe { std::mem::transmute::<RawConsumer<'_, T>, RawConsumer<'static, T>>(raw) };
        Ok(Self { raw, region, me })
    }

    /// Creates a ring file with `capacity` slots (a power of two) and
    /// becomes its consumer.
    ///
    /// # Errors
    ///
    /// As [`Producer::create`].
    pub fn create(path: impl AsRef<Path>, capacity: usize) -> Result<Self, OpenError> {
        let path = region::resolve(path);
        Self::attach(create_region::<T>(
            &path,
            capacity,
            &CreateOptions::default(),
        )?)
    }

    /// Opens an existing ring file as its consumer (a closed ring too: what
    /// is left in it can be drained).
    ///
    /// # Errors
    ///
    /// [`OpenError::RoleTaken`] while another live process (or handle) is
    /// the consumer; the validation errors of any open.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, OpenError> {
        let path = region::resolve(path);
        Self::attach(Region::open(&path, expect::<T>())?)
    }

    /// Opens the ring at `path` as its consumer, creating it with
    /// `capacity` slots if there is none.
    ///
    /// # Errors
    ///
    /// As [`Consumer::open`] and [`Consumer::create`], and
    /// [`OpenError::InvalidCapacity`] if an existing ring has another
    /// capacity.
    pub fn open_or_create(path: impl AsRef<Path>, capacity: usize) -> Result<Self, OpenError> {
        let path = region::resolve(path);
        Self::attach(open_or_create_region::<T>(&path, capacity)?)
    }

    /// Pops the oldest item if there is one, never waiting (no system call).
    ///
    /// # Errors
    ///
    /// [`TryPopError::Empty`], or [`TryPopError::Closed`] once the ring is
    /// closed and drained.
    #[inline]
    pub fn try_pop(&mut self) -> Result<T, TryPopError> {
        self.raw.try_pop()
    }

    /// Pops the oldest item, sleeping (in a futex, after a short spin) while
    /// the ring is empty.
    ///
    /// # Errors
    ///
    /// [`PopError::Closed`] once the ring is closed and drained;
    /// [`PopError::Disconnected`] if the producer's process died without
    /// closing (after everything it committed has been popped).
    pub fn pop(&mut self) -> Result<T, PopError> {
        self.raw.pop_until(None)
    }

    /// [`Consumer::pop`], giving up after `timeout`.
    ///
    /// # Errors
    ///
    /// As [`Consumer::pop`], and [`PopError::Timeout`].
    pub fn pop_timeout(&mut self, timeout: Duration) -> Result<T, PopError> {
        self.raw.pop_until(deadline(timeout))
    }

    /// Pops up to `out.len()` items, with one publish for the batch;
    /// returns how many (0 if empty).
    ///
    /// # Errors
    ///
    /// [`Closed`] once the ring is closed and drained.
    pub fn pop_slice(&mut self, out: &mut [T]) -> Result<usize, Closed> {
        self.raw.pop_slice(out)
    }

    /// Takes hold of the `n` oldest items, each read by copying straight
    /// out of its slot ([`ReadChunk::get`], [`ReadChunk::iter`],
    /// [`ReadChunk::copy_to_slice`], or by value through [`IntoIterator`],
    /// which commits what it yielded); released when committed.
    ///
    /// # Errors
    ///
    /// [`ChunkError::TooFewSlots`] with the number available, or
    /// [`ChunkError::Closed`] once the ring is closed and drained.
    pub fn read_chunk(&mut self, n: usize) -> Result<ReadChunk<'_, 'static, T>, ChunkError> {
        self.raw.read_chunk(n)
    }

    /// Closes the ring from the consuming side: pushes get `Closed`; every
    /// sleeper wakes. Idempotent.
    pub fn close(&self) {
        self.raw.close();
    }

    /// Number of slots.
    pub fn capacity(&self) -> usize {
        self.raw.capacity()
    }

    /// Items in the ring (out of date as soon as it returns).
    pub fn len(&self) -> usize {
        self.raw.len()
    }

    /// Whether the ring is empty (out of date as soon as it returns).
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// The mapped file (path, descriptor, status, flush).
    pub fn region(&self) -> &Region {
        &self.region
    }
}

impl<T: Payload> Drop for Consumer<T> {
    fn drop(&mut self) {
        self.raw.close();
        release_role(&self.raw.ring.ctl.consumer, self.me);
    }
}

/// Creates a ring file and opens both of its ends (in one process: hand one
/// to a thread, or create here and open the other end elsewhere).
///
/// # Errors
///
/// As [`Producer::create`].
pub fn channel<T: Payload>(
    path: impl AsRef<Path>,
    capacity: usize,
) -> Result<(Producer<T>, Consumer<T>), OpenError> {
    let path = region::resolve(path);
    let producer = Producer::create(&path, capacity)?;
    let consumer = Consumer::open(&path)?;
    Ok((producer, consumer))
}
