//! Cross-process wait and wake: sleep until another process changes
//! something in the mapping, without burning a core and without a system
//! call on the fast path.
//!
//! The protocol is an *eventcount* over two 32-bit words in shared memory:
//!
//! ```text
//! epoch    bumped by every notify that found a sleeper; the futex word
//! waiters  number of processes between "about to sleep" and "awake"
//! ```
//!
//! A waiter checks its condition, spins a little, then: reads `epoch`,
//! registers in `waiters`, *checks the condition again*, and sleeps on
//! `epoch` only if it still equals what it read. A notifier changes the
//! state first, then (after a `SeqCst` fence) looks at `waiters`: zero means
//! nobody can be asleep, so there is no system call at all; otherwise it
//! bumps `epoch` and wakes everyone sleeping on it.
//!
//! No lost wake-up: the waiter's registration and the notifier's state
//! change are each followed by a `SeqCst` fence before the other side's word
//! is read, so at least one of them sees the other — either the waiter's
//! second check sees the new state, or the notifier sees the waiter and
//! bumps `epoch`, which makes `FUTEX_WAIT` return at once (its value no
//! longer matches) or wakes it.
//!
//! On Linux the sleep is `FUTEX_WAIT` on `epoch` *without*
//! `FUTEX_PRIVATE_FLAG`, keyed by the physical page, so it works between
//! processes that map the same file. Elsewhere it is a short sleeping poll
//! (correct, just slower to wake). Under loom the futex is modelled by a
//! condition variable, so models check the protocol around it.
//!
//! # Asymmetric fences (Linux)
//!
//! A `SeqCst` fence on every notify (every push, every pop) costs more than
//! the rest of the push. On Linux the two fences are made asymmetric, the
//! way userspace RCU and folly do it: the notifier, on the hot path, has
//! only a compiler fence, and the waiter, about to sleep (rare, and about
//! to pay for a system call anyway), calls
//! `membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)`, which makes every running
//! thread of every process registered for it execute a full barrier. For
//! this pairing, a compiler fence in a registered process acts as a full
//! fence, so the argument above holds unchanged. A process registers
//! (`MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED`) on its first notify and
//! uses the light fence only once that succeeded (again after a `fork`); a
//! process that cannot register keeps the `SeqCst` fence. A waiter whose
//! `membarrier` call fails cannot vouch for registered notifiers, so it
//! sleeps in short slices ([`UNFENCED_SLEEP`]) and re-checks: never a lost
//! wake-up, at worst a late one.
//!
//! A process killed while asleep leaves `waiters` one too high: notifiers
//! then make a wake system call nobody needed. That costs a little speed,
//! never correctness.

use std::time::{Duration, Instant};

use crate::sync::{AtomicU32, Ordering, spin_loop, yield_now};

/// The longest sleep of a waiter whose `membarrier` failed (see the module
/// docs): it cannot rule out a notify it missed, so it re-checks this often.
#[cfg(not(loom))]
pub const UNFENCED_SLEEP: Duration = Duration::from_millis(1);

/// Spins (with `spin_loop` hints) before the first yield. Few: a `pause`
/// costs tens of nanoseconds on current x86 cores, and a peer that answers
/// within a few microseconds is caught by the yields below anyway, which also
/// let it run when both share a core.
#[cfg(not(loom))]
const SPINS: u32 = 8;
/// How long a waiter keeps yielding, from its first yield, before it
/// registers and sleeps (or until its deadline, if that comes first).
///
/// Going to sleep is not free, and neither is being woken: the waiter's
/// `membarrier(2)` interrupts every CPU that runs a registered process
/// (the peer's, most likely) and took 1.5 to 8 us on the 2-core virtual
/// machine this was tuned on, and the notifier then pays a `FUTEX_WAKE`.
/// A peer that was itself asleep answers in some 5 us (its own wake-up),
/// so a waiter that gave up after a few yields (as it once did, after 8)
/// paid the membarrier in the middle of the wait and saw the answer only
/// once that returned. 20 us covers such an answer; a yield gives the
/// core away to anyone who wants it, so the wait stays polite on a busy
/// machine, and a wait longer than this still sleeps.
#[cfg(not(loom))]
const YIELD_FOR: Duration = Duration::from_micros(20);
// Under loom every check is a handful of modelled atomic accesses: one
// optimistic check before sleeping keeps the state space small and still
// covers both paths (condition already true; sleep and be woken).
#[cfg(loom)]
const YIELDS: u32 = 1;

/// The waiter's first phase: `check` until it returns `Some`, spinning
/// [`SPINS`] times, then yielding for up to [`YIELD_FOR`] (never past
/// `deadline`). `None`: time to register and sleep.
#[cfg(not(loom))]
#[inline]
fn spin_then_yield<R>(
    deadline: Option<Instant>,
    check: &mut impl FnMut() -> Option<R>,
) -> Option<R> {
    for _ in 0..SPINS {
        if let Some(r) = check() {
            return Some(r);
        }
        spin_loop();
    }
    let start = Instant::now();
    let end = start.checked_add(YIELD_FOR).unwrap_or(start);
    let end = deadline.map_or(end, |d| d.min(end));
    loop {
        if let Some(r) = check() {
            return Some(r);
        }
        if Instant::now() >= end {
            return None;
        }
        yield_now();
    }
}

/// Under loom: [`YIELDS`] checks, each followed by a yield.
#[cfg(loom)]
fn spin_then_yield<R>(
    _deadline: Option<Instant>,
    check: &mut impl FnMut() -> Option<R>,
) -> Option<R> {
    for _ in 0..YIELDS {
        if let Some(r) = check() {
            return Some(r);
        }
        yield_now();
    }
    None
}

/// One wait point: an `epoch` futex word and a `waiters` count, both in
/// memory the caller hands in (a mapping, the heap, or loom's atomics).
#[derive(Clone, Copy, Debug)]
pub struct WaitPoint<'a> {
    epoch: &'a AtomicU32,
    waiters: &'a AtomicU32,
}

/// The wait ran out of time before the condition held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimedOut;

impl<'a> WaitPoint<'a> {
    /// A wait point over two words. Zeroed words are a valid idle state.
    pub fn new(epoch: &'a AtomicU32, waiters: &'a AtomicU32) -> Self {
        Self { epoch, waiters }
    }

    /// Wakes every process sleeping here. Call it *after* the state change
    /// that waiters check for has been stored.
    ///
    /// Costs one fence and one load when nobody sleeps.
    #[inline]
    pub fn notify(&self) {
        // SeqCst fence (or, on Linux once registered, its light half; see
        // the module docs): pairs with the fence (or membarrier) in
        // `wait_until` after the waiter registers. Either this load sees
        // the registration, or the waiter's re-check sees the state change
        // stored before this fence.
        fences::light();
        // Relaxed: ordered by the fence above.
        if self.waiters.load(Ordering::Relaxed) != 0 {
            wake(self.epoch);
        }
    }

    /// Number of processes registered as (about to be) asleep here. A
    /// snapshot, for display.
    pub fn waiters(&self) -> u32 {
        // Relaxed: a display snapshot.
        self.waiters.load(Ordering::Relaxed)
    }

    /// Waits until `check` returns `Some`, or until `deadline` passes.
    ///
    /// `check` must read the shared state it depends on with `Acquire`
    /// loads (or stronger), and the state's writers must call
    /// [`notify`](Self::notify) after changing it. It may be called many
    /// times. Spins briefly, then yields (for up to some 20 us), then
    /// sleeps. A caller that must regain control now and then even if
    /// nobody notifies (to notice that a peer died) passes a near deadline
    /// and loops.
    ///
    /// Under loom the sleep ignores the deadline (a model must prove that a
    /// wake-up comes), so models wait with `None`.
    ///
    /// # Errors
    ///
    /// [`TimedOut`] once `deadline` (if any) has passed without `check`
    /// returning `Some`.
    pub fn wait_until<R>(
        &self,
        deadline: Option<Instant>,
        mut check: impl FnMut() -> Option<R>,
    ) -> Result<R, TimedOut> {
        // Under loom real time means nothing (a model may run for seconds),
        // so the deadline is ignored and a model must prove the wake-up comes.
        #[cfg(loom)]
        let deadline: Option<Instant> = {
            let _ = deadline;
            None
        };
        if let Some(r) = spin_then_yield(deadline, &mut check) {
            return Ok(r);
        }
        loop {
            // Acquire: pairs with the Release bump in `wake`.
            let epoch = self.epoch.load(Ordering::Acquire);
            // Relaxed RMW + heavy fence: the fence pairs with the one in
            // `notify` (see there); the registration is ordered before the
            // re-check below by it.
            self.waiters.fetch_add(1, Ordering::Relaxed);
            let fenced = fences::heavy();
            let outcome = match check() {
                Some(r) => Some(Ok(r)),
                None => {
                    let timeout = match deadline {
                        None => None,
                        Some(d) => match d.checked_duration_since(Instant::now()) {
                            Some(left) if !left.is_zero() => Some(left),
                            _ => Some(Duration::ZERO),
                        },
                    };
                    #[cfg(not(loom))]
                    let timeout = if fenced {
                        timeout
                    } else {
                        Some(timeout.map_or(UNFENCED_SLEEP, |t| t.min(UNFENCED_SLEEP)))
                    };
                    #[cfg(loom)]
                    let _ = fenced;
                    if timeout == Some(Duration::ZERO) {
                        Some(Err(TimedOut))
                    } else {
                        futex::wait(self.epoch, epoch, timeout);
                        None
                    }
                }
            };
            // Relaxed: the count only decides whether notifiers make a
            // system call; a late decrement costs at most one spare wake.
            self.waiters.fetch_sub(1, Ordering::Relaxed);
            if let Some(done) = outcome {
                return done;
            }
            if let Some(r) = check() {
                return Ok(r);
            }
        }
    }
}

/// The rare half of [`WaitPoint::notify`]: a sleeper is registered. Out
/// of line and handed only the `epoch` word, so the hot path keeps the
/// wait point in registers (nothing is spilled for a call it rarely makes).
#[cold]
#[inline(never)]
fn wake(epoch: &AtomicU32) {
    // Release: pairs with the Acquire load of `epoch` in `wait_until`
    // (a waiter that reads the new epoch sees the state behind it).
    epoch.fetch_add(1, Ordering::Release);
    futex::wake_all(epoch);
}

/// The two halves of the notify/wait fence pair (see the module docs).
#[cfg(all(target_os = "linux", not(loom)))]
mod fences {
    use crate::sync::{AtomicU32, Ordering, compiler_fence, fence};

    /// 1 once this process registered for `MEMBARRIER_CMD_GLOBAL_EXPEDITED`
    /// (0: not yet, or failed). A forked child is a new process that must
    /// register itself before it may use the light fence: the fork handler
    /// ([`forget_in_child`]) clears it there. One load on every notify, so
    /// a flag rather than a pid to compare with.
    static LIGHT: AtomicU32 = AtomicU32::new(0);
    /// The pid whose registration failed (it keeps the full fence).
    static FAILED_FOR: AtomicU32 = AtomicU32::new(0);
    static AT_FORK: std::sync::Once = std::sync::Once::new();
    /// Whether the fork handler is in place (set once, inherited).
    static AT_FORK_SET: AtomicU32 = AtomicU32::new(0);

    extern "C" fn forget_in_child() {
        // Relaxed: the child is single-threaded right after fork.
        LIGHT.store(0, Ordering::Relaxed);
    }

    fn membarrier(cmd: libc::c_int) -> bool {
        // SAFETY: membarrier(2) takes a command and two integer arguments
        // (flags 0, cpu id 0) and touches no memory of ours.
        unsafe { libc::syscall(libc::SYS_membarrier, cmd, 0u32, 0i32) == 0 }
    }

    /// The notifier's half: a compiler fence once this process is
    /// registered, a `SeqCst` fence otherwise.
    #[inline(always)]
    pub(super) fn light() {
        // Relaxed: a per-process flag that only this process (or the fork
        // handler in a child) stores.
        if LIGHT.load(Ordering::Relaxed) != 0 {
            // Pairs with the waiter's membarrier in `heavy`, which executes
            // a full barrier on this thread if it is running.
            compiler_fence(Ordering::SeqCst);
        } else {
            register_or_fence();
        }
    }

    #[cold]
    #[inline(never)]
    fn register_or_fence() {
        // SeqCst fence: pairs with the waiter's fence (or membarrier) in
        // `heavy`; this notify cannot rely on a registration in progress.
        fence(Ordering::SeqCst);
        let me = crate::pid::current();
        // Relaxed (all flags here): per-process values, see above.
        if FAILED_FOR.load(Ordering::Relaxed) == me {
            return;
        }
        // The fork handler first: a child forked after LIGHT is set must
        // find it cleared.
        AT_FORK.call_once(|| {
            // SAFETY: registers a child handler that only does an atomic
            // store, which is async-signal-safe; pthread_atfork has no other
            // precondition.
            if unsafe { libc::pthread_atfork(None, None, Some(forget_in_child)) } == 0 {
                AT_FORK_SET.store(1, Ordering::Relaxed);
            }
        });
        if AT_FORK_SET.load(Ordering::Relaxed) == 1
            && membarrier(libc::MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED)
        {
            LIGHT.store(1, Ordering::Relaxed);
        } else {
            FAILED_FOR.store(me, Ordering::Relaxed);
        }
    }

    /// The waiter's half: a `SeqCst` fence, then a barrier on every running
    /// thread of every registered process. Returns `false` if the
    /// membarrier call failed (the caller then sleeps in short slices).
    pub(super) fn heavy() -> bool {
        // SeqCst: pairs with notifiers that use the full fence.
        fence(Ordering::SeqCst);
        // Pairs with the compiler fences of registered notifiers.
        membarrier(libc::MEMBARRIER_CMD_GLOBAL_EXPEDITED)
    }
}

/// Elsewhere, and under loom: a `SeqCst` fence on both sides.
#[cfg(any(not(target_os = "linux"), loom))]
mod fences {
    use crate::sync::{Ordering, fence};

    #[inline(always)]
    pub(super) fn light() {
        // SeqCst: pairs with the fence in `heavy`.
        fence(Ordering::SeqCst);
    }

    pub(super) fn heavy() -> bool {
        // SeqCst: pairs with the fence in `light`.
        fence(Ordering::SeqCst);
        true
    }
}

#[cfg(all(target_os = "linux", not(loom)))]
mod futex {
    use std::time::Duration;

    use crate::sync::AtomicU32;

    /// Sleeps while `*word == expected`, for at most `timeout`. Returns on a
    /// wake, a timeout, a signal, or a value mismatch: callers re-check.
    pub(super) fn wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
        let ts = timeout.map(|t| libc::timespec {
            tv_sec: libc::time_t::try_from(t.as_secs()).unwrap_or(libc::time_t::MAX),
            // Always below 10^9, which fits every c_long.
            tv_nsec: t.subsec_nanos() as libc::c_long,
        });
        let ts_ptr = ts
            .as_ref()
            .map_or(std::ptr::null(), |t| t as *const libc::timespec);
        // SAFETY: `word` is a live, aligned 32-bit atomic (in a shared
        // mapping or on the heap) for the duration of the call; FUTEX_WAIT
        // only reads it and compares with `expected`. The flag is plain
        // FUTEX_WAIT, not FUTEX_PRIVATE_FLAG, so the kernel keys the wait by
        // the backing page and processes mapping the same file meet there.
        // `ts_ptr` is null or points to a timespec that outlives the call.
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                word.as_ptr(),
                libc::FUTEX_WAIT,
                expected,
                ts_ptr,
                std::ptr::null::<u32>(),
                0u32,
            );
        }
    }

    /// Wakes every sleeper on `word`.
    pub(super) fn wake_all(word: &AtomicU32) {
        // SAFETY: as in `wait`; FUTEX_WAKE does not access the word's value,
        // only its address, and the remaining arguments are ignored.
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                word.as_ptr(),
                libc::FUTEX_WAKE,
                i32::MAX,
                std::ptr::null::<libc::timespec>(),
                std::ptr::null::<u32>(),
                0u32,
            );
        }
    }
}

#[cfg(all(not(target_os = "linux"), not(loom)))]
mod futex {
    use std::time::{Duration, Instant};

    use crate::sync::{AtomicU32, Ordering};

    /// Polling fallback: sleep in short steps until the word changes.
    pub(super) fn wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
        let start = Instant::now();
        let mut step = Duration::from_micros(20);
        // Relaxed: the caller re-checks its condition with proper ordering.
        while word.load(Ordering::Relaxed) == expected {
            if timeout.is_some_and(|t| start.elapsed() >= t) {
                return;
            }
            std::thread::sleep(step);
            step = (step * 2).min(Duration::from_millis(1));
        }
    }

    pub(super) fn wake_all(_word: &AtomicU32) {}
}

/// Under loom: a futex modelled by one condition variable per model, so a
/// lost wake-up shows up as a deadlock that loom reports.
#[cfg(loom)]
mod futex {
    use std::time::Duration;

    use loom::sync::{Condvar, Mutex};

    use crate::sync::{AtomicU32, Ordering};

    loom::lazy_static! {
        static ref FUTEX: (Mutex<()>, Condvar) = (Mutex::new(()), Condvar::new());
    }

    pub(super) fn wait(word: &AtomicU32, expected: u32, _timeout: Option<Duration>) {
        // The timeout is ignored: a model must prove a wake-up arrives.
        let (lock, cond) = &*FUTEX;
        let mut guard = lock.lock().unwrap();
        // SeqCst: the mock stands for the kernel, which compares under its
        // own lock; this keeps the model conservative.
        while word.load(Ordering::SeqCst) == expected {
            guard = cond.wait(guard).unwrap();
        }
    }

    pub(super) fn wake_all(_word: &AtomicU32) {
        let (lock, cond) = &*FUTEX;
        let _guard = lock.lock().unwrap();
        cond.notify_all();
    }
}

/// How long a blocked call sleeps between two housekeeping rounds (see
/// [`wait_sliced`]): a peer killed with `SIGKILL`, a dead holder's permits,
/// a dead party of a barrier are noticed within about this long.
pub const SLICE: Duration = Duration::from_millis(50);

/// Waits at `point` until `ready` returns `Some`, sleeping in slices of at
/// most `slice`, with a housekeeping round between two slices, until
/// `deadline` (`None`: no limit).
///
/// The shape of every blocking call whose wake-up may never come because a
/// peer died (nobody is left to notify): sleep on the futex, and every
/// `slice` look for dead peers, recover what they held, or decide to give
/// up. `housekeeping` returns `Some` to end the wait with that answer (a
/// peer is gone: report it) and `None` to sleep again; it is handed
/// `ready`, for one last look before it gives an answer.
///
/// `ready` follows [`WaitPoint::wait_until`]'s rules (Acquire loads of the
/// state that notifiers change before they notify); it runs first, before
/// any clock is read (the common case: nothing to wait for), and once more
/// after the deadline passes, so a change that came with the deadline is
/// not missed. Under loom the slices never end (see
/// [`WaitPoint::wait_until`]), so `housekeeping` never runs there.
///
/// # Errors
///
/// [`TimedOut`] once `deadline` has passed with `ready` still `None`.
#[inline]
pub fn wait_sliced<R, F: FnMut() -> Option<R>>(
    point: WaitPoint<'_>,
    deadline: Option<Instant>,
    slice: Duration,
    mut ready: F,
    mut housekeeping: impl FnMut(&mut F) -> Option<R>,
) -> Result<R, TimedOut> {
    if let Some(r) = ready() {
        return Ok(r);
    }
    loop {
        let now = Instant::now();
        let slice_end = now.checked_add(slice).unwrap_or(now);
        let until = deadline.map_or(slice_end, |d| d.min(slice_end));
        // A timeout only ends the slice: housekeeping, then look again.
        if let Ok(r) = point.wait_until(Some(until), &mut ready) {
            return Ok(r);
        }
        if let Some(r) = housekeeping(&mut ready) {
            return Ok(r);
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return ready().ok_or(TimedOut);
        }
    }
}

/// The deadline `timeout` from now, for the timed calls of every kind;
/// `None` (no deadline) for a timeout past the clock's range.
#[cfg_attr(loom, allow(dead_code, reason = "only the handles time out"))]
pub(crate) fn deadline(timeout: Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
}
