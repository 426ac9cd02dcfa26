//! A sequence lock over atomic words, for values read whole by many
//! processes and written by a few.
//!
//! Memory (all `AtomicU64`, handed in by the caller, so the same code runs in
//! a mapping, on the heap and under loom):
//!
//! ```text
//! raw[0]          seq     even: stable; odd: a writer is inside. Version v = seq / 2.
//! raw[1]          writer  pid of the writer inside (0 when none)
//! raw[2..2+n]     copy 0  the value's bytes, 8 per word, native endian
//! raw[2+n..2+2n]  copy 1
//! ```
//!
//! Two copies (a *latch*, as Linux's `seqcount_latch`): the value of
//! version v is copy `v % 2`, and a writer (locking at version v) fills copy
//! `(v + 1) % 2`, then publishes version v + 1. So a reader reads the
//! current copy even while a writer is inside, and has to retry only if a
//! *second* writer started on its copy meanwhile (the sequence moved past
//! `2v + 2`): a steady stream of writes hardly ever makes a reader retry.
//!
//! And a writer that dies inside damages only the copy nobody reads: the
//! value of the last published version is intact. Readers do not even
//! notice; the next writer sees the sequence odd with a dead pid in
//! `writer` and takes the lock over (a compare-and-swap of `writer` from
//! the dead pid to its own, so exactly one survivor does), then writes as
//! if it had locked it itself ([`SeqLock::lock`]).
//!
//! Readers never write, so they never slow a writer down. The payload is
//! copied through *relaxed atomic
//! loads and stores*, with the fences of Boehm, "Can Seqlocks Get Along with
//! Programming Language Memory Models?" (MSPC 2012), §4 — never with
//! volatile reads or a plain copy of memory another process is writing,
//! which would be a data race (undefined behaviour) and invisible to loom.
//!
//! Writers serialize among themselves with a compare-and-swap that makes the
//! sequence odd. A writer that waits on a live writer gives up after its
//! [`Patience`] runs out and says which pid was inside. A writer killed
//! between its compare-and-swap and storing its pid (two instructions)
//! cannot be told from a slow one: others wait for it, within their
//! patience.

use std::time::{Duration, Instant};

pub use crate::error::SeqLockError;
use crate::layout::{BodyLayout, LayoutError, MAX_CELL_SIZE, whole_lines};
use crate::pod::{Pod, TypeInfo};
use crate::sync::{AtomicU64, Backoff, Ordering, fence};

/// Words before the data: the sequence and the writer's pid.
pub const HEADER_WORDS: usize = 2;

/// Number of `AtomicU64` words a seqlock holding a `T` needs.
pub const fn words_for<T>() -> usize {
    words_for_bytes(size_of::<T>())
}

/// Number of `AtomicU64` words a seqlock holding `bytes` bytes needs: the
/// header and two copies of the data words.
pub const fn words_for_bytes(bytes: usize) -> usize {
    HEADER_WORDS + 2 * bytes.div_ceil(8)
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

    /// The wait after a failed read attempt, out of line so that the
    /// readers' fast path stays a few loads: starts the retry state on the
    /// first failure, then [`Retry::after`].
    #[cold]
    #[inline(never)]
    fn after_busy(
        retry: &mut Option<Retry>,
        patience: Patience,
        busy: Busy,
    ) -> Result<(), SeqLockError> {
        retry
            .get_or_insert_with(|| Retry::new(patience))
            .after(busy)
    }

    /// Forgets a writer seen dead (it was taken over by someone else).
    fn forget_suspect(&mut self) {
        self.suspect = None;
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
///
/// Only the words themselves: two machine words, passed in registers, so a
/// caller's fast path never has to put the view in memory for the slow
/// path's sake.
#[derive(Clone, Copy)]
pub struct SeqLock<'a> {
    /// At least [`HEADER_WORDS`] words (checked in [`SeqLock::new`]).
    raw: &'a [AtomicU64],
}

impl std::fmt::Debug for SeqLock<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeqLock")
            .field("seq", &self.seq().load(Ordering::Relaxed))
            .field("data_words", &self.words())
            .finish()
    }
}

impl<'a> SeqLock<'a> {
    /// Views `raw` as a seqlock: `raw[0]` the sequence, `raw[1]` the writer
    /// pid, the rest two equal copies of the data words (an odd word at the
    /// end is unused). Zeroed words are a valid, unlocked seqlock at
    /// version 0 holding an all-zero value.
    ///
    /// # Panics
    ///
    /// If `raw` has fewer than [`HEADER_WORDS`] words.
    #[inline]
    pub fn new(raw: &'a [AtomicU64]) -> Self {
        if raw.len() < HEADER_WORDS {
            too_few_words(raw.len());
        }
        Self { raw }
    }

    /// The sequence word.
    #[inline(always)]
    fn seq(&self) -> &'a AtomicU64 {
        &self.raw[0]
    }

    /// The writer's pid word.
    #[inline(always)]
    fn writer(&self) -> &'a AtomicU64 {
        &self.raw[1]
    }

    /// Data words per copy.
    #[inline(always)]
    fn words(&self) -> usize {
        (self.raw.len() - HEADER_WORDS) / 2
    }

    /// The copy holding version `v`'s value.
    #[inline(always)]
    fn copy(&self, version: u64) -> &'a [AtomicU64] {
        // Arithmetic rather than an array of two slices: with the length
        // known to the caller (a typed cell), it all folds to an offset.
        let start = HEADER_WORDS + (version & 1) as usize * self.words();
        &self.raw[start..start + self.words()]
    }

    /// The raw sequence (odd while a write is in progress). Relaxed: a
    /// snapshot for display, synchronizing with nothing.
    pub fn sequence(&self) -> u64 {
        self.seq().load(Ordering::Relaxed)
    }

    #[inline(always)]
    fn check_fits<T>(&self) {
        if size_of::<T>().div_ceil(8) > self.words() {
            does_not_fit(size_of::<T>(), self.words());
        }
    }

    /// One read attempt, never waiting: the value and its version
    /// (`seq / 2`), or [`Busy`] if a write was in progress or overlapped.
    ///
    /// # Panics
    ///
    /// If `T` is larger than the data words (a caller bug, not file content:
    /// the owners of a seqlock size it for their type).
    #[inline]
    pub fn try_read<T: Pod>(&self) -> Result<(T, u64), Busy> {
        self.check_fits::<T>();
        self.try_read_with(load_value::<T>)
    }

    /// One read attempt into raw bytes (for a reader that does not know the
    /// type, such as `mmring inspect`): the version, or [`Busy`]. Copies
    /// `min(out.len(), data bytes)` bytes.
    #[inline]
    pub fn try_read_bytes(&self, out: &mut [u8]) -> Result<u64, Busy> {
        self.try_read_with(|words| copy_out(words, out))
            .map(|((), version)| version)
    }

    /// One read attempt that copies the current copy's words out with
    /// `copy`: what it returned and the version, or [`Busy`].
    #[inline(always)]
    fn try_read_with<R>(&self, copy: impl FnOnce(&[AtomicU64]) -> R) -> Result<(R, u64), Busy> {
        // Acquire pairs with the Release store that published version v
        // (`WriteGuard::drop`), directly or through the lock CAS of the next
        // writer (an RMW, so in the same release sequence): everything that
        // writer stored in copy v % 2 is visible to the loads below.
        let s1 = self.seq().load(Ordering::Acquire);
        let version = s1 / 2;
        let out = copy(self.copy(version));
        // Acquire fence pairs with the writer's Release fence after it made
        // the sequence odd (`try_lock_at`): if any data load above saw a store
        // of a writer filling this copy (one that locked at version v + 1,
        // making the sequence 2v + 3), the load below sees that sequence or
        // a later one, and we retry. Writers locked at version v fill the
        // other copy: 2v + 1 and 2v + 2 are fine.
        fence(Ordering::Acquire);
        // Relaxed: ordered after the data loads by the fence above.
        let s2 = self.seq().load(Ordering::Relaxed);
        if s2.wrapping_sub(version * 2) > 2 {
            return Err(busy(self.writer(), s2));
        }
        Ok((out, version))
    }

    /// One read attempt into whole words (the first `out.len()` data
    /// words, at most all of them): the version, or [`Busy`]. What
    /// [`SeqLock::try_read_bytes`] does, without a byte of conversion: for
    /// callers that work in words (the map's small entries).
    #[inline]
    pub fn try_read_words(&self, out: &mut [u64]) -> Result<u64, Busy> {
        self.try_read_with(|words| {
            for (o, w) in out.iter_mut().zip(words) {
                // Relaxed: ordered by the sequence loads and the fence of
                // `try_read_with`.
                *o = w.load(Ordering::Relaxed);
            }
        })
        .map(|((), version)| version)
    }

    /// [`SeqLock::read_bytes`] into whole words: the version.
    ///
    /// # Errors
    ///
    /// As [`SeqLock::read`].
    #[inline]
    pub fn read_words(&self, out: &mut [u64], patience: Patience) -> Result<u64, SeqLockError> {
        retrying(patience, || self.try_read_words(out))
    }

    /// Bytes of data this seqlock holds.
    pub fn data_len(&self) -> usize {
        self.words() * 8
    }

    /// Reads the value whole, retrying while writes overlap, for at most
    /// `patience`.
    ///
    /// # Errors
    ///
    /// [`SeqLockError`] if the lock stayed busy: its writer died mid-write,
    /// or the patience ran out.
    #[inline]
    pub fn read<T: Pod>(&self, patience: Patience) -> Result<(T, u64), SeqLockError> {
        // The value stays in registers: see `retrying`.
        retrying(patience, || self.try_read::<T>())
    }

    /// [`SeqLock::read`] into raw bytes: the version.
    ///
    /// # Errors
    ///
    /// As [`SeqLock::read`].
    #[inline]
    pub fn read_bytes(&self, out: &mut [u8], patience: Patience) -> Result<u64, SeqLockError> {
        retrying(patience, || self.try_read_bytes(out))
    }

    /// Sets the value without taking the lock and without changing the
    /// version: for initializing memory that no one else can see yet (a file
    /// before it is published), so that a fresh seqlock holds its first value
    /// at version 0.
    pub fn init<T: Pod>(&self, value: &T) {
        self.check_fits::<T>();
        copy_in(self.copy(0), bytemuck::bytes_of(value));
    }

    /// One attempt to become the writer, never waiting.
    #[inline]
    pub fn try_lock(&self) -> Result<WriteGuard<'a>, Busy> {
        self.try_lock_at().map(|start| self.guard_at(start))
    }

    /// The guard of a write locked at (even) sequence `start`: built from
    /// `*self` in the caller, never carried out of a slow path, so that a
    /// caller that knows this seqlock's length keeps knowing it.
    #[inline(always)]
    fn guard_at(&self, start: u64) -> WriteGuard<'a> {
        WriteGuard {
            lock: *self,
            start,
            written: std::cell::Cell::new(false),
        }
    }

    /// [`SeqLock::try_lock`]: the sequence it locked at.
    #[inline(always)]
    fn try_lock_at(&self) -> Result<u64, Busy> {
        // Relaxed: only a guess for the CAS below, which is what counts.
        let mut s = self.seq().load(Ordering::Relaxed);
        loop {
            if s & 1 == 1 {
                return Err(busy(self.writer(), s));
            }
            // Acquire on success pairs with the previous writer's Release
            // store in `WriteGuard::drop`: its data is visible to
            // `WriteGuard::read`. A failure that finds the sequence even
            // means our guess was stale, not that a writer is inside: retry
            // with the fresh value (each retry means another write completed).
            match self.seq().compare_exchange(
                s,
                s.wrapping_add(1),
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(now) => s = now,
            }
        }
        // Relaxed: the pid names the holder for waiters (who tell a dead
        // holder by it) and for `take_over` (whose CAS on this word decides
        // the new holder); no data is published through it.
        self.writer()
            .store(u64::from(crate::pid::current()), Ordering::Relaxed);
        // Release fence pairs with the reader's Acquire fence in `try_read`:
        // the odd sequence is ordered before every data store that follows,
        // so a reader that sees any of them sees the sequence move.
        fence(Ordering::Release);
        Ok(s)
    }

    /// Becomes the writer, retrying for at most `patience`. A lock held by
    /// a writer that died inside is taken over ([`SeqLock::take_over`]).
    ///
    /// # Errors
    ///
    /// [`SeqLockError`] if another (live, or unidentified) writer held the
    /// lock throughout.
    #[inline]
    pub fn lock(&self, patience: Patience) -> Result<WriteGuard<'a>, SeqLockError> {
        // The first attempt outside the retry loop: an uncontended lock
        // (the common case) builds no retry state.
        // The guard is built here from the start sequence either way (see
        // `guard_at`).
        let start = match self.try_lock_at() {
            Ok(start) => start,
            Err(busy) => self.lock_slow(patience, busy)?,
        };
        Ok(self.guard_at(start))
    }

    /// [`SeqLock::lock`] after a first attempt found it `first`: the
    /// sequence it locked at.
    #[cold]
    fn lock_slow(&self, patience: Patience, first: Busy) -> Result<u64, SeqLockError> {
        let mut retry = Retry::new(patience);
        let mut busy = Some(first);
        loop {
            if let Some(busy) = busy.take() {
                match retry.after(busy) {
                    Ok(()) => {}
                    Err(SeqLockError::WriterDied { pid, seq }) => {
                        if let Some(start) = self.take_over_at(pid, seq) {
                            return Ok(start);
                        }
                        // Someone else took it over: a live writer now.
                        retry.forget_suspect();
                    }
                    Err(e) => return Err(e),
                }
            }
            match self.try_lock_at() {
                Ok(start) => return Ok(start),
                Err(b) => busy = Some(b),
            }
        }
    }

    /// Takes over the lock left by `dead`, a writer that died inside at
    /// (odd) sequence `seq`, and returns it as this process's write: the
    /// caller must have seen that pid gone. `None` if the lock is no longer
    /// that writer's (another survivor took it over first).
    ///
    /// Race-free among survivors: the lock changes hands by a
    /// compare-and-swap of `writer` from the dead pid to ours, which only
    /// one of them wins; a dead process never stores its pid again, and a
    /// live writer stores its own. The dead writer filled only the copy
    /// nobody reads, so the value of the last published version is intact,
    /// and the new write (into that same spare copy) publishes the next
    /// version as usual.
    pub fn take_over(&self, dead: u32, seq: u64) -> Option<WriteGuard<'a>> {
        self.take_over_at(dead, seq)
            .map(|start| self.guard_at(start))
    }

    /// [`SeqLock::take_over`]: the sequence the write counts as locked at.
    fn take_over_at(&self, dead: u32, seq: u64) -> Option<u64> {
        if seq & 1 == 0 || dead == 0 {
            return None;
        }
        // Acquire on success pairs with nothing of the dead writer's (its
        // pid store was Relaxed); the sequence load below is what orders
        // the published copy before our reads. Relaxed on failure: not ours.
        self.writer()
            .compare_exchange(
                u64::from(dead),
                u64::from(crate::pid::current()),
                Ordering::Acquire,
                Ordering::Relaxed,
            )
            .ok()?;
        // Acquire pairs with the Release store that published the current
        // version (the dead writer's lock CAS continued its release
        // sequence), as in `try_read`.
        if self.seq().load(Ordering::Acquire) != seq {
            // Not the episode we were told of (a peer wrote garbage): give
            // the word back unless someone stored theirs meanwhile, and let
            // the caller retry. Relaxed: as the pid store in `try_lock`.
            let _ = self.writer().compare_exchange(
                u64::from(crate::pid::current()),
                u64::from(dead),
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
            return None;
        }
        // Release fence: as in `try_lock_at`, orders the (already odd)
        // sequence before our data stores.
        fence(Ordering::Release);
        Some(seq.wrapping_sub(1))
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
///
/// A guard dropped without any write unlocks without publishing: the
/// version stays as it was.
#[must_use = "dropping the guard at once unlocks it, changing nothing"]
pub struct WriteGuard<'a> {
    lock: SeqLock<'a>,
    start: u64,
    /// Whether the spare copy was filled (then dropping publishes it).
    written: std::cell::Cell<bool>,
}

impl std::fmt::Debug for WriteGuard<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteGuard")
            .field("start", &self.start)
            .finish()
    }
}

impl WriteGuard<'_> {
    /// The copy holding the current (last published) value.
    #[inline(always)]
    fn current(&self) -> &[AtomicU64] {
        self.lock.copy(self.start / 2)
    }

    /// The copy this write fills, published when the guard is dropped.
    #[inline(always)]
    fn next(&self) -> &[AtomicU64] {
        self.lock.copy(self.start / 2 + 1)
    }

    /// The current value (as of the last published write).
    pub fn read<T: Pod>(&self) -> T {
        self.lock.check_fits::<T>();
        let mut out = T::zeroed();
        // Nobody writes the current copy (writers fill the other one); the
        // loads are still atomic, so a misbehaving peer cannot cause a data
        // race.
        copy_out(self.current(), bytemuck::bytes_of_mut(&mut out));
        out
    }

    /// Sets the value; published when the guard is dropped.
    pub fn write<T: Pod>(&self, value: &T) {
        self.lock.check_fits::<T>();
        self.write_bytes(bytemuck::bytes_of(value));
    }

    /// The current value's raw bytes (as many as fit in `out`).
    pub fn read_bytes(&self, out: &mut [u8]) {
        copy_out(self.current(), out);
    }

    /// Sets the value's first `src.len()` bytes (the rest of the last word
    /// touched is zeroed; whole words after it keep the current value);
    /// published when the guard is dropped.
    pub fn write_bytes(&self, src: &[u8]) {
        self.written.set(true);
        let (cur, next) = (self.current(), self.next());
        copy_in(next, src);
        for (to, from) in next.iter().zip(cur).skip(src.len().div_ceil(8)) {
            // Relaxed: ordered by the seqlock's sequence and fences.
            to.store(from.load(Ordering::Relaxed), Ordering::Relaxed);
        }
    }

    /// Sets the value's first `src.len()` bytes (the rest of the last word
    /// touched is zeroed) and leaves the words after them *stale*: they
    /// hold whatever an older version left in this copy. For values whose
    /// own contents say where they end (a map entry's byte value carries
    /// its length), so a short write of a large entry does not copy the
    /// unused rest; published when the guard is dropped.
    pub fn write_prefix(&self, src: &[u8]) {
        self.written.set(true);
        copy_in(self.next(), src);
    }

    /// The version this write locked at (the last published one): a
    /// reader that read this version before the lock read the value this
    /// writer starts from.
    #[inline]
    pub fn locked_version(&self) -> u64 {
        self.start / 2
    }

    /// The current value's first `out.len()` words (at most all of them).
    #[inline]
    pub fn read_words(&self, out: &mut [u64]) {
        for (o, w) in out.iter_mut().zip(self.current()) {
            // Relaxed: nobody else writes the current copy (as in `read`).
            *o = w.load(Ordering::Relaxed);
        }
    }

    /// [`WriteGuard::write_prefix`] in whole words: sets the value's first
    /// `src.len()` words and leaves the words after them stale; published
    /// when the guard is dropped.
    #[inline]
    pub fn write_words(&self, src: &[u64]) {
        self.written.set(true);
        for (to, &from) in self.next().iter().zip(src) {
            // Relaxed: ordered by the seqlock's sequence and fences.
            to.store(from, Ordering::Relaxed);
        }
    }

    /// Publishes the write and returns the new version (unchanged if
    /// nothing was written).
    pub fn finish(self) -> u64 {
        self.end() / 2
    }

    /// The sequence dropping the guard stores.
    fn end(&self) -> u64 {
        if self.written.get() {
            self.start.wrapping_add(2)
        } else {
            self.start
        }
    }
}

impl Drop for WriteGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        // Relaxed: ordered before the sequence store by its Release. The
        // pid goes first: while the sequence is odd, `writer` is 0 or the
        // holder's pid, never a previous holder's (what makes `take_over`
        // safe).
        self.lock.writer().store(0, Ordering::Relaxed);
        // Release pairs with the Acquire load in `try_read` and the Acquire
        // CAS in `try_lock`: all data stores above happen-before any access
        // that sees this sequence. Nothing written: back to the version we
        // locked at (its copy untouched), which readers accept as before.
        self.lock.seq().store(self.end(), Ordering::Release);
    }
}

/// Runs read `attempt`s until one succeeds or `patience` runs out: the
/// attempts inline in the caller (an uncontended read is a few loads, its
/// value in registers), only the wait between two attempts that overlapped
/// writes out of line ([`Retry::after_busy`]).
#[inline(always)]
fn retrying<R>(
    patience: Patience,
    mut attempt: impl FnMut() -> Result<R, Busy>,
) -> Result<R, SeqLockError> {
    let mut retry = None;
    loop {
        match attempt() {
            Ok(read) => return Ok(read),
            Err(busy) => Retry::after_busy(&mut retry, patience, busy)?,
        }
    }
}

/// What a failed attempt saw: the sequence, and the writer pid word as a
/// hint (out of line: only the slow paths need it).
#[cold]
fn busy(writer: &AtomicU64, seq: u64) -> Busy {
    Busy {
        seq,
        // Relaxed: a hint for diagnostics only, confirmed by `Retry`.
        writer: writer.load(Ordering::Relaxed) as u32,
    }
}

/// The panic of [`SeqLock::new`] on too few words (out of line).
#[cold]
#[inline(never)]
#[track_caller]
fn too_few_words(len: usize) -> ! {
    panic!("a seqlock needs at least {HEADER_WORDS} words, got {len}")
}

/// The panic of a typed access to a seqlock too small for its type (kept
/// out of line: the callers' fast paths stay free of formatting).
#[cold]
#[inline(never)]
#[track_caller]
fn does_not_fit(size: usize, words: usize) -> ! {
    panic!("a {size}-byte value does not fit in {words} seqlock data words")
}

/// Reads a `T` from the first data words: whole words straight into the
/// value for the sizes records have (a multiple of 8 bytes, up to 64), so
/// that it can stay in registers, and through its bytes otherwise. The
/// caller checked that the words hold a `T`.
#[inline(always)]
pub(crate) fn load_value<T: Pod>(words: &[AtomicU64]) -> T {
    macro_rules! whole_words {
        ($($n:literal)*) => {$(
            if size_of::<T>() == 8 * $n {
                if let Some(words) = words.first_chunk::<$n>() {
                    // Relaxed: ordering is provided by the caller's sequence
                    // (the seqlock's fences, or a ring's position).
                    let value: [u64; $n] = std::array::from_fn(|i| words[i].load(Ordering::Relaxed));
                    return bytemuck::cast(value);
                }
            }
        )*};
    }
    whole_words!(1 2 3 4 5 6 7 8);
    let mut out = T::zeroed();
    copy_out(words, bytemuck::bytes_of_mut(&mut out));
    out
}

/// Copies data words into `out`, 8 bytes per word, native endian (also
/// used by the MPMC and SPSC rings, whose slots are words too: there the
/// ring's Release/Acquire of a position orders these relaxed loads).
#[inline]
pub(crate) fn copy_out(words: &[AtomicU64], out: &mut [u8]) {
    let whole = out.len() / 8;
    let Some(src) = words.get(..whole) else {
        // `out` is longer than the data: fill what the words hold.
        for (chunk, word) in out.chunks_exact_mut(8).zip(words) {
            // Relaxed: ordering is provided by the seqlock's sequence and fences.
            chunk.copy_from_slice(&word.load(Ordering::Relaxed).to_ne_bytes());
        }
        return;
    };
    // The common case, the words cover `out`: a loop of exactly `whole`
    // word copies (a constant once inlined for a typed read, so unrolled
    // into one load and store each, which the compiler can then keep in
    // registers), then the tail of at most 7 bytes.
    let (head, tail) = out.split_at_mut(whole * 8);
    for (chunk, word) in head.chunks_exact_mut(8).zip(src) {
        let bytes: &mut [u8; 8] = chunk.try_into().unwrap_or_else(|_| unreachable!());
        // Relaxed: as above.
        *bytes = word.load(Ordering::Relaxed).to_ne_bytes();
    }
    if let (false, Some(word)) = (tail.is_empty(), words.get(whole)) {
        // Relaxed: as above.
        let bytes = word.load(Ordering::Relaxed).to_ne_bytes();
        tail.copy_from_slice(&bytes[..tail.len()]);
    }
}

/// Copies `src` into data words; the tail of the last word is zero (also
/// used by the MPMC and SPSC rings, whose position stores publish these
/// relaxed stores).
#[inline]
pub(crate) fn copy_in(words: &[AtomicU64], src: &[u8]) {
    let chunks = src.chunks_exact(8);
    let tail = chunks.remainder();
    let mut words = words.iter();
    for (chunk, word) in chunks.zip(&mut words) {
        let bytes: [u8; 8] = chunk.try_into().unwrap_or_else(|_| unreachable!());
        // Relaxed: ordering is provided by the seqlock's sequence and fences.
        word.store(u64::from_ne_bytes(bytes), Ordering::Relaxed);
    }
    if let (false, Some(word)) = (tail.is_empty(), words.next()) {
        let mut bytes = [0u8; 8];
        bytes[..tail.len()].copy_from_slice(tail);
        // Relaxed: as above.
        word.store(u64::from_ne_bytes(bytes), Ordering::Relaxed);
    }
}

/// The body layout of a [`SeqCell`](crate::SeqCell): a seqlock over one
/// value of `elem` (1 to [`MAX_CELL_SIZE`] bytes).
pub fn cell_body_layout(elem: TypeInfo, capacity: u64) -> Result<BodyLayout, LayoutError> {
    let size = u64::from(elem.size);
    if size == 0 || size > MAX_CELL_SIZE || !elem.align.is_power_of_two() {
        return Err(LayoutError::Payload(format!(
            "a value of 1 to {MAX_CELL_SIZE} bytes, found size {}, align {}",
            elem.size, elem.align
        )));
    }
    if capacity != 1 {
        return Err(LayoutError::Capacity("exactly 1 for a seqlock cell".into()));
    }
    Ok(BodyLayout {
        slot_size: size,
        body_size: whole_lines(words_for_bytes(size as usize) as u64 * 8),
    })
}

// The status block of every file's header is a seqlock over a `Status`:
// the word count `layout` declares (it may not import this module) is the
// one this module computes.
static_assertions::const_assert_eq!(
    crate::layout::STATUS_WORDS,
    words_for::<crate::layout::Status>()
);

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
    fn a_held_lock_makes_writers_busy_not_readers() {
        let raw = words(words_for::<u64>());
        let lock = SeqLock::new(&raw);
        lock.write(&7u64, Patience::DEFAULT).unwrap();
        let guard = lock.try_lock().unwrap();
        guard.write(&8u64);
        // Readers get the published value while the write is in progress.
        assert_eq!(lock.try_read::<u64>(), Ok((7, 1)));
        let busy = lock.try_lock().unwrap_err();
        assert_eq!(busy.seq, 3);
        assert_eq!(busy.writer, crate::pid::current());
        assert!(matches!(
            lock.lock(Patience::attempts(3)),
            Err(SeqLockError::Exhausted { attempts: 3, .. })
        ));
        assert!(matches!(
            lock.lock(Patience::timeout(Duration::from_millis(20))),
            Err(SeqLockError::Timeout { .. })
        ));
        assert_eq!(guard.finish(), 2);
        assert_eq!(lock.try_read::<u64>(), Ok((8, 2)));
    }

    #[test]
    fn each_version_is_read_from_its_own_copy() {
        let raw = words(words_for::<u64>());
        let lock = SeqLock::new(&raw);
        for v in 1..=5u64 {
            lock.write(&(v * 10), Patience::DEFAULT).unwrap();
            assert_eq!(lock.try_read::<u64>(), Ok((v * 10, v)));
            // Copy v % 2 holds version v; the other keeps version v - 1.
            assert_eq!(raw[2 + (v % 2) as usize].load(Ordering::Relaxed), v * 10);
            assert_eq!(
                raw[2 + ((v + 1) % 2) as usize].load(Ordering::Relaxed),
                (v - 1) * 10
            );
        }
        // The interleavings where a reader must retry are in the loom
        // models (loom-tests/tests/seqlock.rs).
    }

    #[test]
    fn a_partial_write_keeps_the_rest_of_the_current_value() {
        let raw = words(words_for::<[u64; 3]>());
        let lock = SeqLock::new(&raw);
        lock.write(&[1u64, 2, 3], Patience::DEFAULT).unwrap();
        lock.write(&[4u64, 5, 6], Patience::DEFAULT).unwrap();
        let guard = lock.try_lock().unwrap();
        guard.write_bytes(&9u64.to_ne_bytes());
        drop(guard);
        assert_eq!(lock.try_read::<[u64; 3]>(), Ok(([9, 5, 6], 3)));
    }

    #[test]
    fn a_dead_writer_is_taken_over_and_its_write_discarded() {
        let raw = words(words_for::<[u64; 2]>());
        let lock = SeqLock::new(&raw);
        lock.write(&[1u64, 1], Patience::DEFAULT).unwrap();
        lock.write(&[2u64, 2], Patience::DEFAULT).unwrap();
        // A writer locks at version 2 and dies half way through filling the
        // spare copy (copy 1): an odd sequence, its pid, a torn copy.
        let pid = crate::pid::dead_pid();
        let guard = lock.try_lock().unwrap();
        raw[1].store(u64::from(pid), Ordering::Relaxed);
        guard.lock.copy(1)[0].store(3, Ordering::Relaxed);
        std::mem::forget(guard);
        // Readers never notice.
        assert_eq!(lock.read::<[u64; 2]>(Patience::DEFAULT), Ok(([2, 2], 2)));
        // A writer takes the lock over and publishes the next version.
        let (old, new) = lock
            .update(Patience::DEFAULT, |[a, b]: [u64; 2]| [a + 10, b + 10])
            .unwrap();
        assert_eq!((old, new), ([2, 2], [12, 12]));
        assert_eq!(lock.try_read::<[u64; 2]>(), Ok(([12, 12], 3)));
        assert_eq!(raw[1].load(Ordering::Relaxed), 0, "writer word cleared");
    }

    #[test]
    fn only_one_survivor_takes_a_dead_writers_lock_over() {
        let raw = words(words_for::<u64>());
        let lock = SeqLock::new(&raw);
        let pid = crate::pid::dead_pid();
        raw[0].store(5, Ordering::Relaxed);
        raw[1].store(u64::from(pid), Ordering::Relaxed);
        let first = lock.take_over(pid, 5).expect("the first survivor wins");
        assert!(lock.take_over(pid, 5).is_none(), "the second one loses");
        assert!(
            lock.take_over(pid, 4).is_none(),
            "an even sequence is no lock"
        );
        first.write(&9u64);
        assert_eq!(first.finish(), 3);
        assert_eq!(lock.try_read::<u64>(), Ok((9, 3)));
        assert!(lock.take_over(pid, 5).is_none(), "long gone");
    }
}
