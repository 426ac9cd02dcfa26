//! The process-shared pthread mutex every lock-based baseline takes
//! (`init_mutex`, `Held`), and [`PthreadCounter`]: the lock-based
//! baseline of the counter rows — an `i64` guarded by a `pthread_mutex_t`
//! initialized with `PTHREAD_PROCESS_SHARED`, both living in a file-backed
//! shared mapping ([`Shm`]: the same kind of mapping a
//! [`Counter`](mmring::Counter) lives in).
//!
//! This is what a careful C program (or Python's `Value` with its lock)
//! does: lock, add, unlock. glibc's default mutex takes an uncontended lock
//! with one compare-and-swap and sleeps in a shared futex when contended.

use std::io;
use std::mem::MaybeUninit;
use std::path::Path;

use crate::bench::runner::shm::Shm;

/// The bytes at the start of the mapping: the mutex and the value it
/// guards, side by side as a C struct would have them.
#[repr(C)]
struct Guarded {
    mutex: libc::pthread_mutex_t,
    value: i64,
}

/// An `i64` behind a process-shared pthread mutex in a mapped file.
pub struct PthreadCounter {
    mutex: *mut libc::pthread_mutex_t,
    value: *mut i64,
    /// Owns the mapping both pointers point into; dropped after them.
    _shm: Shm,
}

impl std::fmt::Debug for PthreadCounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PthreadCounter").finish_non_exhaustive()
    }
}

impl PthreadCounter {
    /// Creates and maps the file at `path` (see [`Shm::create`]) and
    /// initializes the mutex and the value.
    ///
    /// # Errors
    ///
    /// Creating the file, or initializing the mutex.
    pub fn create(path: &Path) -> io::Result<Self> {
        let shm = Shm::create(path, size_of::<Guarded>())?;
        let guarded = shm.as_ptr().cast::<Guarded>();
        assert!(guarded.is_aligned(), "mapping misaligned");
        // SAFETY: `guarded` points to `size_of::<Guarded>()` bytes of the
        // mapping, suitably aligned (checked above), and no other process
        // can reach them yet: the name is gone and no child is forked.
        let rc = unsafe { init(guarded) };
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        Ok(Self {
            mutex: guarded.cast(),
            value: guarded
                .wrapping_byte_add(std::mem::offset_of!(Guarded, value))
                .cast(),
            _shm: shm,
        })
    }

    /// Adds `v` under the lock, returning the previous value.
    ///
    /// # Panics
    ///
    /// If the mutex cannot be taken or released (a corrupted mutex: a bug).
    #[inline]
    pub fn fetch_add(&self, v: i64) -> i64 {
        // SAFETY: `mutex` points to a mutex initialized by `create` in our
        // mapping, which `self._shm` keeps mapped.
        let _held = unsafe { Held::lock(self.mutex) };
        // SAFETY: `value` is an aligned i64 in the same mapping; every
        // process touches it only while holding the mutex (taken above), and
        // the mutex orders those accesses, so there is no data race.
        let old = unsafe { self.value.read() };
        // SAFETY: as above.
        unsafe { self.value.write(old.wrapping_add(v)) };
        old
    }

    /// The value (taking the lock).
    pub fn load(&self) -> i64 {
        self.fetch_add(0)
    }
}

impl Drop for PthreadCounter {
    fn drop(&mut self) {
        // SAFETY: the mutex was initialized by `create`; no process of ours
        // holds it any more (children are reaped before their run returns).
        // An error (EBUSY) leaves it as it is, harmlessly: the mapping goes.
        unsafe { libc::pthread_mutex_destroy(self.mutex) };
    }
}

/// Initializes the mutex as process-shared and the value as 0; returns the
/// first nonzero pthread error code, or 0.
///
/// # Safety
///
/// `p` is valid for writes of a `Guarded` and no one else uses it yet.
unsafe fn init(p: *mut Guarded) -> libc::c_int {
    // SAFETY: `value` lies inside `*p`, valid for writes (caller).
    unsafe { (&raw mut (*p).value).write(0) };
    // SAFETY: the mutex field lies inside `*p`, valid, aligned and unshared
    // (caller).
    unsafe { init_mutex(&raw mut (*p).mutex) }
}

/// Initializes the mutex at `m` as process-shared; returns the first
/// nonzero pthread error code, or 0. Every lock-based baseline
/// ([`PthreadCounter`], [`PthreadMap`](super::mutex_map::PthreadMap),
/// [`PthreadRing`](super::mutex_ring::PthreadRing)) initializes its mutex
/// with it.
///
/// # Safety
///
/// `m` is valid for writes of a `pthread_mutex_t`, suitably aligned, and no
/// one else uses it yet.
pub(super) unsafe fn init_mutex(m: *mut libc::pthread_mutex_t) -> libc::c_int {
    let mut attr = MaybeUninit::<libc::pthread_mutexattr_t>::uninit();
    // SAFETY: `attr` is writable storage for an attribute object.
    let rc = unsafe { libc::pthread_mutexattr_init(attr.as_mut_ptr()) };
    if rc != 0 {
        return rc;
    }
    // SAFETY: `attr` was initialized just above.
    let mut rc = unsafe {
        libc::pthread_mutexattr_setpshared(attr.as_mut_ptr(), libc::PTHREAD_PROCESS_SHARED)
    };
    if rc == 0 {
        // SAFETY: the caller guarantees `m` is valid, aligned and unshared;
        // `attr` is an initialized attribute object.
        rc = unsafe { libc::pthread_mutex_init(m, attr.as_ptr()) };
    }
    // SAFETY: `attr` is initialized and no longer needed.
    unsafe { libc::pthread_mutexattr_destroy(attr.as_mut_ptr()) };
    rc
}

/// Initializes the condition variable at `c` as process-shared, on
/// `CLOCK_MONOTONIC` (the clock of its timed waits); returns the first
/// nonzero pthread error code, or 0.
///
/// # Safety
///
/// `c` is valid for writes of a `pthread_cond_t`, suitably aligned, and no
/// one else uses it yet.
pub(super) unsafe fn init_cond(c: *mut libc::pthread_cond_t) -> libc::c_int {
    let mut attr = MaybeUninit::<libc::pthread_condattr_t>::uninit();
    // SAFETY: `attr` is writable storage for an attribute object.
    let rc = unsafe { libc::pthread_condattr_init(attr.as_mut_ptr()) };
    if rc != 0 {
        return rc;
    }
    // SAFETY: `attr` was initialized just above.
    let mut rc = unsafe {
        libc::pthread_condattr_setpshared(attr.as_mut_ptr(), libc::PTHREAD_PROCESS_SHARED)
    };
    if rc == 0 {
        // SAFETY: as above.
        rc = unsafe { libc::pthread_condattr_setclock(attr.as_mut_ptr(), libc::CLOCK_MONOTONIC) };
    }
    if rc == 0 {
        // SAFETY: the caller guarantees `c` is valid, aligned and unshared;
        // `attr` is an initialized attribute object.
        rc = unsafe { libc::pthread_cond_init(c, attr.as_ptr()) };
    }
    // SAFETY: `attr` is initialized and no longer needed.
    unsafe { libc::pthread_condattr_destroy(attr.as_mut_ptr()) };
    rc
}

/// Holds a process-shared mutex; unlocks it when dropped. Every lock-based
/// baseline locks through it.
pub(super) struct Held(*mut libc::pthread_mutex_t);

impl Held {
    /// Locks `m`.
    ///
    /// # Safety
    ///
    /// `m` points to a mutex initialized by [`init_mutex`] in a mapping
    /// that stays mapped until the guard is dropped.
    ///
    /// # Panics
    ///
    /// If the mutex cannot be taken (a corrupted mutex: a bug).
    #[inline]
    pub(super) unsafe fn lock(m: *mut libc::pthread_mutex_t) -> Self {
        // SAFETY: the caller's guarantee.
        let rc = unsafe { libc::pthread_mutex_lock(m) };
        assert_eq!(rc, 0, "pthread_mutex_lock failed");
        Self(m)
    }

    /// The mutex held, for `pthread_cond_timedwait` (which releases and
    /// retakes it: the guard holds it again once the call returns).
    pub(super) fn mutex(&self) -> *mut libc::pthread_mutex_t {
        self.0
    }
}

impl Drop for Held {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: we hold the mutex (taken in `lock`), still mapped (the
        // caller's guarantee there).
        let rc = unsafe { libc::pthread_mutex_unlock(self.0) };
        debug_assert_eq!(rc, 0, "pthread_mutex_unlock failed");
    }
}
