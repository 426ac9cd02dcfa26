//! A sequence lock over atomic words, for values read whole by many
//! processes and written by a few.
//!
//! Memory (all `AtomicU64`, handed in by the caller, so the same code runs in
//! a mapping, on the heap and under loom):
//!
//! ```text
//! raw[0]      seq     even: stable; odd: a writer is inside. Version = seq / 2.
//! raw[1]      writer  pid of the writer inside (0 when none); diagnostics only
//! raw[2..]    data    the value's bytes, 8 per word, native endian
//! ```
//!
//! Readers never write, so they never slow a writer down; a reader that
//! overlaps a write retries. The payload is copied through *relaxed atomic
//! loads and stores*, with the fences of Boehm, "Can Seqlocks Get Along with
//! Programming Language Memory Models?" (MSPC 2012), §4 — never with
//! `read_volatile` or a plain copy of memory another process is writing,
//! which would be a data race (undefined behaviour) and invisible to loom.
//!
//! Writers serialize among themselves with a compare-and-swap that makes the
//! sequence odd. A writer that dies inside leaves it odd forever; readers
//! and writers that wait on it give up after their [`Patience`] runs out and
//! say which pid was inside and whether it is still alive.

use std::time::{Duration, Instant};

use crate::pod::Pod;
use crate::sync::{AtomicU64, Backoff, Ordering, fence};

/// Words before the data: the sequence and the writer's pid.
pub const HEADER_WORDS: usize = 2;

/// Number of `AtomicU64` words a seqlock holding a `T` needs.
pub const fn words_for<T>() -> usize {
    HEADER_WORDS + size_of::<T>().div_ceil(8)
}

/// Why a seqlock read or write gave up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SeqLockError {
    /// The writer that holds the lock (sequence odd) is a process that no
    /// longer exists: it died half way through a write.
    #[error("seqlock writer (pid {pid}) died mid-write; sequence stuck at {seq}")]
    WriterDied {
        /// The dead writer's pid.
        pid: u32,
        /// The odd sequence it left behind.
        seq: u64,
    },
    /// The lock stayed busy for the whole patience, with a writer that is
    /// (as far as we can tell) alive, or unknown.
    #[error("seqlock busy for {waited:?} (sequence {seq}, writer pid {pid})")]
    Timeout {
        /// The last sequence seen.
        seq: u64,
        /// The pid recorded by the writer inside, 0 if none was recorded.
        pid: u32,
        /// How long we waited.
        waited: Duration,
    },
    /// Under loom (or with [`Patience::attempts`]): the retry budget ran out.
    #[error("seqlock busy after {attempts} attempts (sequence {seq})")]
    Exhausted {
        /// The last sequence seen.
        seq: u64,
        /// How many attempts were made.
        attempts: u32,
    },
}

/// One failed attempt: the sequence was odd, or moved while we copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy {
    /// The sequence observed.
    pub seq: u64,
    /// The writer pid recorded at that moment (0 if none; racy, a hint).
    pub writer: u32,
}

/// How long a reader or writer keeps retrying a busy seqlock.
#[derive(Debug, Clone, Copy)]
pub struct Patience {
    limit: Limit,
}

#[derive(Debug, Clone, Copy)]
enum Limit {
    Time(Duration),
    Attempts(u32),
}

impl Patience {
    /// The default for every blocking seqlock access: writers hold the lock
    /// for nanoseconds, but a writer can be descheduled mid-write on a busy
    /// machine, so this is generous; a writer that *died* is detected long
    /// before it runs out.
    pub const DEFAULT: Self = Self::timeout(Duration::from_secs(5));

    /// Retry until this much time has passed.
    pub const fn timeout(limit: Duration) -> Self {
        Self {
            limit: Limit::Time(limit),
        }
    }

    /// Retry at most this many times, looking at no clock and no pid (what
    /// model checking needs: a bounded loop).
    pub const fn attempts(limit: u32) -> Self {
        Self {
            limit: Limit::Attempts(limit),
        }
    }
}

impl Default for Patience {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Retries with a single pause before the backoff starts.
const EAGER_RETRIES: u32 = 32;

/// The retry loop shared by reads and writes: backs off, checks the budget,
/// and tells a dead writer from a slow one.
struct Retry {
    patience: Patience,
    backoff: Backoff,
    attempts: u32,
    start: Option<Instant>,
    /// (seq, pid) of a busy state whose writer looked dead once: confirmed
    /// dead only if the next look sees the same odd sequence, still dead.
    suspect: Option<(u64, u32)>,
}

impl Retry {
    fn new(patience: Patience) -> Self {
        Self {
            patience,
            backoff: Backoff::new(),
            attempts: 0,
            start: None,
            suspect: None,
        }
    }

    fn after(&mut self, busy: Busy) -> Result<(), SeqLockError> {
        self.attempts = self.attempts.saturating_add(1);
        match self.patience.limit {
            Limit::Attempts(max) => {
                if self.attempts >= max {
                    return Err(SeqLockError::Exhausted {
                        seq: busy.seq,
                        attempts: self.attempts,
                    });
                }
            }
            Limit::Time(limit) => {
                if self.backoff.is_yielding() {
                    let start = *self.start.get_or_insert_with(Instant::now);
                    let waited = start.elapsed();
                    if busy.seq & 1 == 1 && busy.writer != 0 && !crate::pid::is_alive(busy.writer) {
                        if self.suspect == Some((busy.seq, busy.writer)) {
                            return Err(SeqLockError::WriterDied {
                                pid: busy.writer,
                                seq: busy.seq,
                            });
                        }
                        self.suspect = Some((busy.seq, busy.writer));
                    } else {
                        self.suspect = None;
                    }
                    if waited >= limit {
                        return Err(SeqLockError::Timeout {
                            seq: busy.seq,
                            pid: busy.writer,
                            waited,
                        });
                    }
                }
            }
        }
        // A write holds the lock for nanoseconds: the first retries only
        // pause the pipeline, the backoff's spins and yields come after.
        if self.attempts <= EAGER_RETRIES {
            crate::sync::spin_loop();
        } else {
            self.backoff.snooze();
        }
        Ok(())
    }
}

/// A seqlock over words somebody else owns (a mapping, a heap array).
#[derive(Clone, Copy)]
pub struct SeqLock<'a> {
    seq: &'a AtomicU64,
    writer: &'a AtomicU64,
    data: &'a [AtomicU64],
}

impl std::fmt::Debug for SeqLock<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeqLock")
            .field("seq", &self.seq.load(Ordering::Relaxed))
            .field("data_words", &self.data.len())
            .finish()
    }
}

impl<'a> SeqLock<'a> {
    /// Views `raw` as a seqlock: `raw[0]` the sequence, `raw[1]` the writer
    /// pid, the rest data. Zeroed words are a valid, unlocked seqlock at
    /// version 0 holding an all-zero value.
    ///
    /// # Panics
    ///
    /// If `raw` has fewer than [`HEADER_WORDS`] words.
    pub fn new(raw: &'a [AtomicU64]) -> Self {
        assert!(
            raw.len() >= HEADER_WORDS,
            "a seqlock needs at least {HEADER_WORDS} words, got {}",
            raw.len()
        );
        Self {
            seq: &raw[0],
            writer: &raw[1],
            data: &raw[HEADER_WORDS..],
        }
    }

    /// The raw sequence (odd while a write is in progress). Relaxed: a
    /// snapshot for display, synchronizing with nothing.
    pub fn sequence(&self) -> u64 {
        self.seq.load(Ordering::Relaxed)
    }

    fn check_fits<T>(&self) {
        assert!(
            size_of::<T>() <= self.data.len() * 8,
            "a {}-byte value does not fit in {} seqlock data words",
            size_of::<T>(),
            self.data.len()
        );
    }

    /// One read attempt, never waiting: the value and its version
    /// (`seq / 2`), or [`Busy`] if a write was in progress or overlapped.
    ///
    /// # Panics
    ///
    /// If `T` is larger than the data words (a caller bug, not file content:
    /// the owners of a seqlock size it for their type).
    pub fn try_read<T: Pod>(&self) -> Result<(T, u64), Busy> {
        self.check_fits::<T>();
        let mut out = T::zeroed();
        let version = self.try_read_bytes(bytemuck::bytes_of_mut(&mut out))?;
        Ok((out, version))
    }

    /// One read attempt into raw bytes (for a reader that does not know the
    /// type, such as `mmring inspect`): the version, or [`Busy`]. Copies
    /// `min(out.len(), data bytes)` bytes.
    pub fn try_read_bytes(&self, out: &mut [u8]) -> Result<u64, Busy> {
        // Acquire pairs with the Release store that ended the last write
        // (`WriteGuard::drop`): everything that writer stored is visible to
        // the data loads below.
        let s1 = self.seq.load(Ordering::Acquire);
        if s1 & 1 == 1 {
            return Err(self.busy(s1));
        }
        copy_out(self.data, out);
        // Acquire fence pairs with the writer's Release fence after it made
        // the sequence odd (`try_lock`): if any data load above saw a store
        // from a newer write, the load below sees that write's odd sequence
        // (or a later one), and we retry.
        fence(Ordering::Acquire);
        // Relaxed: ordered after the data loads by the fence above.
        let s2 = self.seq.load(Ordering::Relaxed);
        if s1 != s2 {
            return Err(self.busy(s2));
        }
        Ok(s1 / 2)
    }

    /// Bytes of data this seqlock holds.
    pub fn data_len(&self) -> usize {
        self.data.len() * 8
    }

    /// Reads the value whole, retrying while writes overlap, for at most
    /// `patience`.
    ///
    /// # Errors
    ///
    /// [`SeqLockError`] if the lock stayed busy: its writer died mid-write,
    /// or the patience ran out.
    pub fn read<T: Pod>(&self, patience: Patience) -> Result<(T, u64), SeqLockError> {
        self.check_fits::<T>();
        let mut out = T::zeroed();
        let version = self.read_bytes(bytemuck::bytes_of_mut(&mut out), patience)?;
        Ok((out, version))
    }

    /// [`SeqLock::read`] into raw bytes: the version.
    ///
    /// # Errors
    ///
    /// As [`SeqLock::read`].
    pub fn read_bytes(&self, out: &mut [u8], patience: Patience) -> Result<u64, SeqLockError> {
        let mut retry = Retry::new(patience);
        loop {
            match self.try_read_bytes(out) {
                Ok(v) => return Ok(v),
                Err(busy) => retry.after(busy)?,
            }
        }
    }

    fn busy(&self, seq: u64) -> Busy {
        Busy {
            seq,
            // Relaxed: a hint for diagnostics only, confirmed by `Retry`.
            writer: self.writer.load(Ordering::Relaxed) as u32,
        }
    }

    /// Sets the value without taking the lock and without changing the
    /// version: for initializing memory that no one else can see yet (a file
    /// before it is published), so that a fresh seqlock holds its first value
    /// at version 0.
    pub fn init<T: Pod>(&self, value: &T) {
        self.check_fits::<T>();
        copy_in(self.data, bytemuck::bytes_of(value));
    }

    /// One attempt to become the writer, never waiting.
    pub fn try_lock(&self) -> Result<WriteGuard<'a>, Busy> {
        // Relaxed: only a guess for the CAS below, which is what counts.
        let mut s = self.seq.load(Ordering::Relaxed);
        loop {
            if s & 1 == 1 {
                return Err(self.busy(s));
            }
            // Acquire on success pairs with the previous writer's Release
            // store in `WriteGuard::drop`: its data is visible to
            // `WriteGuard::read`. A failure that finds the sequence even
            // means our guess was stale, not that a writer is inside: retry
            // with the fresh value (each retry means another write completed).
            match self.seq.compare_exchange(
                s,
                s.wrapping_add(1),
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(now) => s = now,
            }
        }
        // Relaxed: the pid is a diagnostic hint for waiters, never a
        // synchronization point.
        self.writer
            .store(u64::from(crate::pid::current()), Ordering::Relaxed);
        // Release fence pairs with the reader's Acquire fence in `try_read`:
        // the odd sequence is ordered before every data store that follows,
        // so a reader that sees any of them sees the sequence move.
        fence(Ordering::Release);
        Ok(WriteGuard {
            lock: *self,
            start: s,
        })
    }

    /// Becomes the writer, retrying for at most `patience`.
    ///
    /// # Errors
    ///
    /// [`SeqLockError`] if another writer held the lock throughout.
    pub fn lock(&self, patience: Patience) -> Result<WriteGuard<'a>, SeqLockError> {
        let mut retry = Retry::new(patience);
        loop {
            match self.try_lock() {
                Ok(guard) => return Ok(guard),
                Err(busy) => retry.after(busy)?,
            }
        }
    }

    /// Stores `value` whole.
    ///
    /// # Errors
    ///
    /// As [`SeqLock::lock`].
    pub fn write<T: Pod>(&self, value: &T, patience: Patience) -> Result<u64, SeqLockError> {
        let guard = self.lock(patience)?;
        guard.write(value);
        Ok(guard.finish())
    }

    /// Atomically replaces the value with `f(old)`, returning `(old, new)`.
    ///
    /// # Errors
    ///
    /// As [`SeqLock::lock`]. `f` runs while the lock is held: keep it short
    /// and do not touch the same seqlock from inside it.
    pub fn update<T: Pod>(
        &self,
        patience: Patience,
        f: impl FnOnce(T) -> T,
    ) -> Result<(T, T), SeqLockError> {
        let guard = self.lock(patience)?;
        let old = guard.read::<T>();
        let new = f(old);
        guard.write(&new);
        guard.finish();
        Ok((old, new))
    }
}

/// Exclusive write access to a [`SeqLock`]; dropping it publishes the write
/// (the sequence becomes even again).
#[must_use = "dropping the guard at once publishes an unchanged value"]
pub struct WriteGuard<'a> {
    lock: SeqLock<'a>,
    start: u64,
}

impl std::fmt::Debug for WriteGuard<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteGuard")
            .field("start", &self.start)
            .finish()
    }
}

impl WriteGuard<'_> {
    /// The current value (as of the last published write).
    pub fn read<T: Pod>(&self) -> T {
        self.lock.check_fits::<T>();
        let mut out = T::zeroed();
        // We hold the lock, so no well-behaved process is writing; the loads
        // are still atomic, so a misbehaving one cannot cause a data race.
        copy_out(self.lock.data, bytemuck::bytes_of_mut(&mut out));
        out
    }

    /// Overwrites the value; published when the guard is dropped.
    pub fn write<T: Pod>(&self, value: &T) {
        self.lock.check_fits::<T>();
        copy_in(self.lock.data, bytemuck::bytes_of(value));
    }

    /// The current value's raw bytes (as many as fit in `out`).
    pub fn read_bytes(&self, out: &mut [u8]) {
        copy_out(self.lock.data, out);
    }

    /// Overwrites the value's first `src.len()` bytes (the rest of the last
    /// word touched is zeroed); published when the guard is dropped.
    pub fn write_bytes(&self, src: &[u8]) {
        copy_in(self.lock.data, src);
    }

    /// Publishes the write and returns the new version.
    pub fn finish(self) -> u64 {
        (self.start.wrapping_add(2)) / 2
    }
}

impl Drop for WriteGuard<'_> {
    fn drop(&mut self) {
        // Relaxed: diagnostics only (see `try_lock`).
        self.lock.writer.store(0, Ordering::Relaxed);
        // Release pairs with the Acquire load in `try_read` and the Acquire
        // CAS in `try_lock`: all data stores above happen-before any access
        // that sees this sequence.
        self.lock
            .seq
            .store(self.start.wrapping_add(2), Ordering::Release);
    }
}

/// Copies data words into `out`, 8 bytes per word, native endian (also
/// used by the MPMC ring, whose slots are words too).
pub(crate) fn copy_out(words: &[AtomicU64], out: &mut [u8]) {
    for (chunk, word) in out.chunks_mut(8).zip(words) {
        // Relaxed: ordering is provided by the seqlock's sequence and fences.
        let bytes = word.load(Ordering::Relaxed).to_ne_bytes();
        chunk.copy_from_slice(&bytes[..chunk.len()]);
    }
}

/// Copies `src` into data words; the tail of the last word is zero.
pub(crate) fn copy_in(words: &[AtomicU64], src: &[u8]) {
    for (chunk, word) in src.chunks(8).zip(words) {
        let mut bytes = [0u8; 8];
        bytes[..chunk.len()].copy_from_slice(chunk);
        // Relaxed: ordering is provided by the seqlock's sequence and fences.
        word.store(u64::from_ne_bytes(bytes), Ordering::Relaxed);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn words(n: usize) -> Vec<AtomicU64> {
        (0..n).map(|_| AtomicU64::new(0)).collect()
    }

    #[derive(Clone, Copy, Debug, PartialEq, Pod, bytemuck::Zeroable)]
    #[repr(C)]
    struct Odd {
        a: u32,
        b: [u8; 7],
        c: u8,
        d: [u16; 4],
    }

    #[test]
    fn zeroed_words_read_as_version_zero() {
        let raw = words(words_for::<u64>());
        let lock = SeqLock::new(&raw);
        assert_eq!(lock.try_read::<u64>(), Ok((0, 0)));
    }

    #[test]
    fn write_then_read_round_trips_odd_sizes() {
        let raw = words(words_for::<Odd>());
        let lock = SeqLock::new(&raw);
        let v = Odd {
            a: 7,
            b: *b"abcdefg",
            c: 9,
            d: [1, 2, 3, 4],
        };
        assert_eq!(lock.write(&v, Patience::DEFAULT), Ok(1));
        assert_eq!(lock.read::<Odd>(Patience::DEFAULT), Ok((v, 1)));
        let (old, new) = lock
            .update(Patience::DEFAULT, |mut o: Odd| {
                o.a += 1;
                o
            })
            .unwrap();
        assert_eq!((old.a, new.a), (7, 8));
        assert_eq!(lock.try_read::<Odd>().unwrap().1, 2);
    }

    #[test]
    fn a_held_lock_makes_readers_and_writers_busy() {
        let raw = words(words_for::<u64>());
        let lock = SeqLock::new(&raw);
        let guard = lock.try_lock().unwrap();
        let busy = lock.try_read::<u64>().unwrap_err();
        assert_eq!(busy.seq, 1);
        assert_eq!(busy.writer, crate::pid::current());
        assert!(lock.try_lock().is_err());
        assert!(matches!(
            lock.read::<u64>(Patience::attempts(3)),
            Err(SeqLockError::Exhausted { attempts: 3, .. })
        ));
        assert!(matches!(
            lock.read::<u64>(Patience::timeout(Duration::from_millis(20))),
            Err(SeqLockError::Timeout { .. })
        ));
        drop(guard);
        assert_eq!(lock.try_read::<u64>(), Ok((0, 1)));
    }

    #[test]
    fn a_dead_writer_is_reported_not_waited_for() {
        let raw = words(words_for::<u64>());
        // What a writer that died mid-write leaves: an odd sequence and its
        // pid. Use the pid of a child that has exited and been reaped.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        raw[0].store(5, Ordering::Relaxed);
        raw[1].store(u64::from(pid), Ordering::Relaxed);
        let lock = SeqLock::new(&raw);
        // WriterDied rather than Timeout: the dead pid ended the wait.
        let err = lock.read::<u64>(Patience::DEFAULT).unwrap_err();
        assert_eq!(err, SeqLockError::WriterDied { pid, seq: 5 });
        let err = lock.try_lock().map(drop).unwrap_err();
        assert_eq!(
            err,
            Busy {
                seq: 5,
                writer: pid
            }
        );
    }
}
