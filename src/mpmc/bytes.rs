//! [`ByteQueue`]: the MPMC queue of byte messages over a mapped file.

use std::path::Path;
use std::time::Duration;

use super::{Bytes, Handle, JoinError, JoinTimeoutError, QueueOptions, Spec, TaskError};
use crate::error::{
    BytePushError, BytePushTimeoutError, ByteTryPushError, OpenError, PopError, PopTimeoutError,
    PushTimeoutError, TryPopError, TryPushError,
};
use crate::handle::Mapped;
use crate::raw::message;
use crate::region::Region;
use crate::sync::AtomicU64;
use crate::wait::deadline;

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
    q: Handle<Bytes>,
    /// The longest message, read from the descriptor at open.
    max_len: usize,
}

impl std::fmt::Debug for ByteQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ByteQueue")
            .field("path", &self.q.mapped.region().path())
            .field("capacity", &self.capacity())
            .field("bound", &self.bound())
            .field("max_len", &self.max_len)
            .finish()
    }
}

impl ByteQueue {
    fn wrap(mapped: Mapped<Bytes>) -> Self {
        let max_len = mapped.region().descriptor().elem_size as usize;
        Self {
            q: Handle::new(mapped),
            max_len,
        }
    }

    /// Creates a queue file of `capacity` slots (a power of two, 1 included)
    /// for messages of up to `max_len` bytes (1 to 65536).
    ///
    /// # Errors
    ///
    /// [`OpenError::InvalidCapacity`], [`OpenError::UnsupportedPayload`]
    /// for a bad `max_len`, [`OpenError::InvalidOption`] for a
    /// [`bound`](QueueOptions::bound) outside 1 to `capacity`; the other
    /// [`OpenError`]s as for any create.
    ///
    /// # Examples
    ///
    /// A queue of 4 slots that holds at most 3 messages:
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// use mmring::{ByteTryPushError, mpmc::{ByteQueue, QueueOptions}};
    ///
    /// let q = ByteQueue::create(dir.path().join("q"), 4, 64, &QueueOptions::new().bound(3))?;
    /// for msg in [&b"a"[..], b"bc", b"def"] {
    ///     q.try_push(msg)?;
    /// }
    /// assert_eq!(q.try_push(b"g"), Err(ByteTryPushError::Full));
    /// assert_eq!(q.pop()?, b"a");
    /// q.try_push(b"g")?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn create(
        path: impl AsRef<Path>,
        capacity: usize,
        max_len: usize,
        opts: &QueueOptions,
    ) -> Result<Self, OpenError> {
        let spec = Spec::new(path.as_ref(), capacity, max_len, opts)?;
        Mapped::create(path, &spec, &opts.file).map(Self::wrap)
    }

    /// Opens an existing byte queue file (any maximum length).
    ///
    /// # Errors
    ///
    /// The validation errors of any open.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, OpenError> {
        Mapped::open(path).map(Self::wrap)
    }

    /// Opens the byte queue at `path`, creating it if there is none.
    ///
    /// Opening an existing queue never resets it: `capacity`, `max_len`
    /// and `opts` apply only when the file is created, and an existing
    /// queue is attached as it is, with the messages queued in it. What is
    /// checked is its shape (the errors below); a mismatch leaves the file
    /// alone.
    ///
    /// # Errors
    ///
    /// As [`ByteQueue::open`] and [`ByteQueue::create`];
    /// [`OpenError::WrongPayload`] if an existing queue has another
    /// `max_len` (naming both), [`OpenError::InvalidCapacity`] if it has
    /// another capacity, [`OpenError::InvalidOption`] if its joinability
    /// or its bound differs. An existing queue is never reset.
    pub fn open_or_create(
        path: impl AsRef<Path>,
        capacity: usize,
        max_len: usize,
        opts: &QueueOptions,
    ) -> Result<Self, OpenError> {
        // The maximum length is part of the shape: an existing queue with
        // another one is refused (naming both), not opened as it is.
        let spec = Spec::new(path.as_ref(), capacity, max_len, opts)?;
        Mapped::open_or_create(path, &spec, &opts.file).map(Self::wrap)
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

    /// Pushes `msg` if there is room, never waiting for room (a pop in
    /// flight in the slot at the tail is waited out, as by
    /// [`Queue::try_push`](super::Queue::try_push)).
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
        self.q
            .raw()
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
        self.q
            .raw()
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
        self.q
            .raw()
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
    /// out a push in flight at the head, as
    /// [`Queue::try_pop`](super::Queue::try_pop).
    ///
    /// # Errors
    ///
    /// [`TryPopError::Empty`], or [`TryPopError::Closed`] once closed and
    /// drained.
    pub fn try_pop_into(&self, out: &mut [u8]) -> Result<usize, TryPopError> {
        let max = self.max_len;
        self.q.raw().try_pop_with(|w| Self::read_into(max, w, out))
    }

    /// Pops the oldest message into `out`, sleeping while empty; its length.
    ///
    /// # Errors
    ///
    /// [`PopError::Closed`] once closed and drained (never `Disconnected`).
    pub fn pop_into(&self, out: &mut [u8]) -> Result<usize, PopError> {
        let max = self.max_len;
        self.q.raw().pop_with(|w| Self::read_into(max, w, out))
    }

    /// [`ByteQueue::pop_into`], giving up after `timeout`: the call for a
    /// caller that waits in slices (checking for signals between them, as
    /// the Python binding does) and reuses one buffer for every message.
    ///
    /// # Errors
    ///
    /// [`PopTimeoutError::Closed`] once closed and drained, or
    /// [`PopTimeoutError::Timeout`] (never `Disconnected`).
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// use std::time::Duration;
    /// use mmring::{PopTimeoutError, mpmc::{ByteQueue, QueueOptions}};
    ///
    /// let q = ByteQueue::create(dir.path().join("q"), 2, 8, &QueueOptions::new())?;
    /// let mut buf = [0u8; 8];
    /// let wait = Duration::from_millis(10);
    /// assert_eq!(q.pop_into_timeout(&mut buf, wait), Err(PopTimeoutError::Timeout));
    /// q.push(b"hi")?;
    /// assert_eq!(q.pop_into_timeout(&mut buf, wait), Ok(2));
    /// assert_eq!(&buf[..2], b"hi");
    /// q.close();
    /// assert_eq!(q.pop_into_timeout(&mut buf, wait), Err(PopTimeoutError::Closed));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn pop_into_timeout(
        &self,
        out: &mut [u8],
        timeout: Duration,
    ) -> Result<usize, PopTimeoutError> {
        let max = self.max_len;
        self.q
            .raw()
            .pop_with_until(|w| Self::read_into(max, w, out), deadline(timeout))
    }

    /// Pops the oldest message, sleeping while empty.
    ///
    /// # Errors
    ///
    /// [`PopError::Closed`] once closed and drained (never `Disconnected`).
    pub fn pop(&self) -> Result<Vec<u8>, PopError> {
        let max = self.max_len;
        let mut buf = vec![0u8; max];
        let len = self
            .q
            .raw()
            .pop_with(|w| Self::read_into(max, w, &mut buf))?;
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
            .q
            .raw()
            .pop_with_until(|w| Self::read_into(max, w, &mut buf), deadline(timeout))?;
        buf.truncate(len);
        Ok(buf)
    }

    common_methods!();
}
