//! `mmring.Pipe` and `mmring.Connection`: `multiprocessing.Pipe` over two
//! SPSC byte rings.
//!
//! # Files
//!
//! A pipe named `NAME` is two byte-ring files: `NAME.a` carries what end
//! `a` receives (sent by `b`), `NAME.b` what end `b` receives (sent by
//! `a`); a pipe made with `duplex=False` has only `NAME.a` (`a` is the
//! receive-only end, `b` the send-only one, as `multiprocessing` orders
//! them). `mmring.remove(NAME)` removes both.
//!
//! # Roles and holders
//!
//! A ring has one producer and one consumer role, each held by one process
//! at a time (`mmring::spsc`). A process takes an end's role on its first
//! send (or receive) and keeps it until it closes the end, lets go of it,
//! or dies; another process's send on the same end waits until then. That
//! is the ring, and what carries the messages.
//!
//! Whether an end is still *held* — what `EOFError` and `BrokenPipeError`
//! are about — is another question, and a process holds an end from the
//! moment it has it, used or not: as a file descriptor is held in
//! `multiprocessing`. Here it is one: each `Connection` keeps a descriptor
//! of `NAME.a` with an open-file-description lock (`F_OFD_SETLK`, shared)
//! on one byte past the file's end, `HOLDER_LOCK` + 0 for end `a`, + 1 for
//! end `b`. The lock lives as long as any descriptor of that open file
//! does: a child made by `fork` inherits it, a child started by spawn or
//! forkserver gets it passed (the end pickles with a
//! `multiprocessing.reduction.DupFd`, as a `multiprocessing.Connection`
//! does), and the kernel drops it when the last holder closes it or dies,
//! `SIGKILL` included. A reader that finds the ring drained and no
//! producer asks the kernel (`F_OFD_GETLK`) whether anyone still holds the
//! other end: nobody, and it is end of file; somebody, and it sleeps until
//! a producer comes. So a child that never touched its end still keeps
//! the other side from seeing `EOFError`, and a creator that never closes
//! its copy of the child's end does too, as in `multiprocessing`.
//!
//! # Threads and fork
//!
//! Within a process, one thread at a time sends on an end and one receives
//! (a [`Side`] each: its ring handle, lent for the whole call, waits
//! included); a second thread waits for its turn, GIL released and signals
//! checked. No std lock is held across a wait or while Python code runs
//! (signal handlers included), so a fork made while a thread is blocked in
//! `recv` copies no held lock: the child takes that turn over and opens
//! its own ring handle, forgetting its parent's; and `close()` never waits
//! for a call in progress, which lets go of the end as it returns.

use std::cell::UnsafeCell;
use std::mem::ManuallyDrop;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mmring::spsc::{ByteConsumer, ByteProducer, MAX_MESSAGE_LEN};
use mmring::sync::{AtomicU32, AtomicU64, Ordering};
use mmring::{BytePushTimeoutError, OpenError, PopTimeoutError, TryPopError};
use pyo3::exceptions::{PyBrokenPipeError, PyEOFError, PyOSError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyTuple, PyType};

use crate::common::{Target, dumps, loads, open_error, wait_for};

/// The first byte past any ring file that the holders' locks take (end
/// `a` this one, end `b` the next): far past the end of the file, where
/// nothing else locks.
const HOLDER_LOCK: i64 = 1 << 40;

/// Default slots per ring.
const CAPACITY: usize = 256;
/// Default bytes per slot.
const SLOT_SIZE: usize = 1024;
/// The largest slot the byte ring takes.
const MAX_SLOT_SIZE: usize = 65536;

/// How long a send or receive sleeps before it looks again while another
/// process holds the role it needs.
const ROLE_POLL: Duration = Duration::from_millis(5);

/// One of a pipe's two ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    A,
    B,
}

impl End {
    fn other(self) -> Self {
        match self {
            End::A => End::B,
            End::B => End::A,
        }
    }

    fn letter(self) -> &'static str {
        match self {
            End::A => "a",
            End::B => "b",
        }
    }

    fn parse(s: &str) -> PyResult<Self> {
        match s {
            "a" => Ok(End::A),
            "b" => Ok(End::B),
            _ => Err(PyValueError::new_err(format!(
                "a pipe's end is 'a' or 'b', not {s:?}"
            ))),
        }
    }

    /// The byte whose lock says that someone holds this end.
    fn lock_byte(self) -> i64 {
        match self {
            End::A => HOLDER_LOCK,
            End::B => HOLDER_LOCK + 1,
        }
    }
}

/// The ring file that `end` receives from: `NAME.a` or `NAME.b`.
fn ring_path(base: &Path, end: End) -> PathBuf {
    let mut s = base.as_os_str().to_owned();
    s.push(".");
    s.push(end.letter());
    PathBuf::from(s)
}

/// A pipe's name and files, shared by the ends made together. An unnamed
/// pipe's files belong to the process that made the name up: removed when
/// both ends made there are collected there, or, if an end may have left
/// the process (pickled, or a fork since), when that process exits (see
/// [`Target::release_files`]): `Process.start()` drops its reference to
/// the ends it was given at once, before the child has opened the rings.
struct Files {
    target: Target,
}

impl Files {
    fn name(&self) -> &str {
        &self.target.name
    }

    fn base(&self) -> &Path {
        &self.target.path
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let base = self.base();
        self.target
            .release_files(&[ring_path(base, End::A), ring_path(base, End::B)]);
    }
}

/// A value that belongs to the process that made it: used and dropped only
/// there. A child made by `fork` never uses nor drops its parent's (which a
/// thread of the parent, absent here, may have been changing at the fork):
/// it forgets it and starts afresh.
struct Owned<T> {
    pid: u32,
    value: ManuallyDrop<T>,
}

impl<T> Owned<T> {
    fn new(value: T) -> Self {
        Self {
            pid: mmring::pid::current(),
            value: ManuallyDrop::new(value),
        }
    }

    /// Whether the value is this process's.
    fn is_mine(&self) -> bool {
        self.pid == mmring::pid::current()
    }

    /// Lets go of the value: dropped if it is this process's, else
    /// forgotten.
    fn release(&mut self) {
        if self.is_mine() {
            // SAFETY: called once, from the owner's `Drop`; the value is
            // never used again.
            unsafe { ManuallyDrop::drop(&mut self.value) };
        }
    }
}

/// A number for each thread (never 0), told apart from other threads of
/// the process in a [`Side`]'s turn.
fn thread_token() -> u32 {
    static NEXT: AtomicU32 = AtomicU32::new(1);
    thread_local! {
        // Relaxed: only distinctness matters, which the add gives.
        static TOKEN: u32 = NEXT.fetch_add(1, Ordering::Relaxed).max(1);
    }
    TOKEN.with(|t| *t)
}

/// One direction of an end in this process (its sending side, or its
/// receiving side): the state a send (a receive) uses, lent to one thread
/// at a time for the whole call, waits included.
///
/// No std lock: the turn is an atomic naming the process and the thread
/// that has it. A child made by `fork` while a thread of its parent had
/// the turn finds that turn taken by another pid, takes it over (the thread
/// does not exist there), and forgets the parent's state (its ring roles
/// are the parent's) for a fresh one.
struct Side<T> {
    /// `pid << 32 | thread token` of the thread that has the turn; 0: free.
    turn: AtomicU64,
    state: UnsafeCell<Owned<T>>,
}

// SAFETY: the state is used only by the thread that has the turn (`claim`
// gives it to one thread of a process at a time, with Acquire/Release
// between successive holders), or, by a forked child, after the one thread
// of its parent that had it is gone; `T: Send` because successive turns
// may be different threads, which also drop it.
unsafe impl<T: Send> Sync for Side<T> {}

/// What [`Side::claim`] found.
enum Claim {
    Taken,
    /// Another thread of this process has the turn.
    Busy,
    /// This very thread has it (a signal handler that runs during a wait
    /// and calls in again).
    Reentrant,
}

impl<T: Default> Side<T> {
    fn new() -> Self {
        Self {
            turn: AtomicU64::new(0),
            state: UnsafeCell::new(Owned::new(T::default())),
        }
    }

    fn me() -> u64 {
        (u64::from(mmring::pid::current()) << 32) | u64::from(thread_token())
    }

    /// Takes the turn if it is free, or if it is another process's (a
    /// fork's inheritance).
    fn claim(&self) -> Claim {
        let me = Self::me();
        // Relaxed: only a first guess for the exchange.
        let mut seen = self.turn.load(Ordering::Relaxed);
        loop {
            if seen == me {
                return Claim::Reentrant;
            }
            if seen != 0 && seen >> 32 == me >> 32 {
                return Claim::Busy;
            }
            // SeqCst on success: Acquire pairs with the Release part of
            // `unclaim`'s store (the last holder's changes to the state),
            // and the total order with `closed` is what `Turn`'s drop and
            // `Connection::close` rely on. Relaxed on failure: nothing is
            // read then.
            match self
                .turn
                .compare_exchange_weak(seen, me, Ordering::SeqCst, Ordering::Relaxed)
            {
                Ok(_) => break,
                Err(now) => seen = now,
            }
        }
        // SAFETY: this thread has the turn (see `Sync`).
        let state = unsafe { &mut *self.state.get() };
        if !state.is_mine() {
            // Forgets (never drops) another process's state.
            *state = Owned::new(T::default());
        }
        Claim::Taken
    }

    /// Gives the turn back.
    fn unclaim(&self) {
        // SeqCst: Release pairs with `claim`'s exchange; see there.
        self.turn.store(0, Ordering::SeqCst);
    }

    /// Drops the state (its roles back to the rings) if no thread has the
    /// turn; else the thread that has it does so when it gives it back
    /// (see `Turn`'s drop).
    fn clear_if_free(&self) {
        if let Claim::Taken = self.claim() {
            *self.state() = T::default();
            self.unclaim();
        }
    }

    /// Whether a thread of this process has the turn.
    fn in_use(&self) -> bool {
        // Relaxed: a snapshot for tests and reprs.
        let turn = self.turn.load(Ordering::Relaxed);
        turn != 0 && turn >> 32 == u64::from(mmring::pid::current())
    }

    /// The state. Only for the thread that has the turn.
    #[allow(clippy::mut_from_ref)]
    fn state(&self) -> &mut T {
        // SAFETY: called by the thread that has the turn (`Turn` is the one
        // caller), which `claim` made this process's own state.
        unsafe { &mut (*self.state.get()).value }
    }
}

impl<T> Drop for Side<T> {
    fn drop(&mut self) {
        self.state.get_mut().release();
    }
}

/// A thread's turn at a [`Side`]; given back when dropped, and if the end
/// was closed meanwhile, the state goes first (its roles back to the
/// rings): `close()` does not wait for a call in progress.
struct Turn<'a, T: Default> {
    side: &'a Side<T>,
    closed: &'a AtomicU32,
}

impl<T: Default> std::ops::Deref for Turn<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.side.state()
    }
}

impl<T: Default> std::ops::DerefMut for Turn<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        self.side.state()
    }
}

impl<T: Default> Drop for Turn<'_, T> {
    fn drop(&mut self) {
        // SeqCst (the loads): `close()` stores `closed` then tries the turn;
        // here the turn is given back and then `closed` read. In the total
        // order one of the two sees the other's store, so a closed end's
        // state is always let go of, by one side or the other.
        let was_closed = self.closed.load(Ordering::SeqCst) != 0;
        if was_closed {
            *self.side.state() = T::default();
        }
        self.side.unclaim();
        if !was_closed
            && self.closed.load(Ordering::SeqCst) != 0
            && let Claim::Taken = self.side.claim()
        {
            *self.side.state() = T::default();
            self.side.unclaim();
        }
    }
}

/// This process's descriptor of the holder lock (`None` once closed),
/// shared by the calls in progress (each keeps it open until it returns).
/// Read and written only with the GIL held, and never across Python code:
/// no lock. A forked child owns the descriptor it inherited (the same
/// number, the same open file) but not its parent's count of users.
struct Holder {
    cell: UnsafeCell<Owned<Option<Arc<OwnedFd>>>>,
}

// SAFETY: every access but `Drop` (which has the value to itself) takes a
// `Python` token, so it runs with the GIL held; none runs Python code or
// lets a reference out, so no two threads are in it at once. This module
// is built for the limited API, which free-threaded CPython does not load.
unsafe impl Sync for Holder {}

impl Holder {
    fn new(fd: OwnedFd) -> Self {
        Self {
            cell: UnsafeCell::new(Owned::new(Some(Arc::new(fd)))),
        }
    }

    /// Runs `f` on this process's slot (adopting a fork's inheritance
    /// first); `f` must not run Python code.
    fn with<R>(&self, _py: Python<'_>, f: impl FnOnce(&mut Option<Arc<OwnedFd>>) -> R) -> R {
        // SAFETY: see `Sync`: the GIL is held (the token), and `f` runs no
        // Python code; no reference outlives this call.
        let owned = unsafe { &mut *self.cell.get() };
        if !owned.is_mine() {
            // A fork's inheritance: the descriptor is this process's copy;
            // its parent's count (threads absent here) is forgotten.
            let fd = owned.value.as_ref().map(|f| f.as_raw_fd());
            // SAFETY: the inherited number is this process's open copy,
            // owned by nothing else here (the old `Arc` is forgotten).
            *owned = Owned::new(fd.map(|fd| Arc::new(unsafe { OwnedFd::from_raw_fd(fd) })));
        }
        f(&mut owned.value)
    }

    /// The descriptor for a call, or `None` once closed.
    fn get(&self, py: Python<'_>) -> Option<Arc<OwnedFd>> {
        self.with(py, |slot| slot.clone())
    }

    /// Lets go of this process's share: the descriptor closes once the
    /// calls in progress are done with it.
    fn close(&self, py: Python<'_>) {
        // Dropped outside `with` (closing is a system call).
        let fd = self.with(py, |slot| slot.take());
        drop(fd);
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let owned = self.cell.get_mut();
        if !owned.is_mine()
            && let Some(fd) = owned.value.as_ref()
        {
            // A forked child's copy of the descriptor: closed here too.
            // SAFETY: the number is this process's open copy, which nothing
            // else here closes (the `Arc` is forgotten, not dropped).
            drop(unsafe { OwnedFd::from_raw_fd(fd.as_raw_fd()) });
        }
        owned.release();
    }
}

/// The receiving side of an end, per process: its ring handle and a
/// message taken by `poll` (or refused by `recv_bytes(maxlength)`) that
/// the next receive returns first.
#[derive(Default)]
struct Rx {
    ring: Option<ByteConsumer>,
    pending: Option<Vec<u8>>,
}

/// A lock record for `fcntl` on the one byte at `start`.
fn lock_record(l_type: libc::c_int, start: i64) -> libc::flock {
    // SAFETY: `flock` is a plain C struct of integers; all zeros is a
    // valid value of it (and the padding some platforms add).
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = l_type as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = start;
    fl.l_len = 1;
    fl
}

/// Opens `NAME.a` and takes the shared holder lock of `end` on it.
fn hold(base: &Path, end: End) -> PyResult<OwnedFd> {
    // Every holder lock is on `NAME.a`, which every pipe has.
    let path = ring_path(base, End::A);
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
        .map_err(|e| io_err(&e, &path))?;
    let mut fl = lock_record(libc::F_RDLCK, end.lock_byte());
    // SAFETY: fcntl on a descriptor `file` keeps open, with a pointer to a
    // lock record that lives across the call.
    let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLK, &mut fl) };
    if rc != 0 {
        return Err(PyOSError::new_err(format!(
            "cannot take the holder lock of pipe {}: {}",
            base.display(),
            std::io::Error::last_os_error()
        )));
    }
    Ok(OwnedFd::from(file))
}

/// A file-system error as the `OSError` subclass Python users expect,
/// naming the path.
fn io_err(e: &std::io::Error, path: &Path) -> PyErr {
    let msg = format!("{e}: {}", path.display());
    match e.kind() {
        std::io::ErrorKind::NotFound => pyo3::exceptions::PyFileNotFoundError::new_err(msg),
        std::io::ErrorKind::PermissionDenied => pyo3::exceptions::PyPermissionError::new_err(msg),
        _ => PyOSError::new_err(msg),
    }
}

/// Whether some open file description other than `fd`'s holds `end`'s
/// holder lock: a live process has that end (used or not).
fn held_elsewhere(fd: RawFd, end: End) -> std::io::Result<bool> {
    let mut fl = lock_record(libc::F_WRLCK, end.lock_byte());
    // SAFETY: fcntl on a descriptor the caller keeps open for the call (the
    // connection's, which `close` closes only with both sides' mutexes
    // held), with a lock record that lives across the call.
    let rc = unsafe { libc::fcntl(fd, libc::F_OFD_GETLK, &mut fl) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(fl.l_type != libc::F_UNLCK as libc::c_short)
}

/// Why a send or receive stopped.
enum Stop {
    Closed,
    Eof,
    Broken,
    SelfHeld,
    Reentrant,
    TooLong(usize),
    /// A message of `.0` bytes, longer than a `maxlength` of `.1`.
    BadLength(usize, usize),
    Open(OpenError),
    Os(std::io::Error),
}

/// `io.UnsupportedOperation`.
fn unsupported(py: Python<'_>, msg: &str) -> PyErr {
    static T: PyOnceLock<Py<PyType>> = PyOnceLock::new();
    match T.import(py, "io", "UnsupportedOperation") {
        Ok(t) => PyErr::from_type(t.clone(), msg.to_owned()),
        Err(e) => e,
    }
}

/// One end of a pipe, as ``multiprocessing.connection.Connection``.
///
/// ``send(obj)`` pickles (protocol 5) and ``recv()`` unpickles;
/// ``send_bytes``/``recv_bytes``/``recv_bytes_into`` carry raw bytes;
/// ``poll(timeout)`` says whether ``recv`` would return at once.
///
/// ``close()`` lets go of this handle only. ``recv`` raises ``EOFError``
/// once everything sent has been read and every holder of the other end
/// has closed it or died (a process that got the end by fork or pickling
/// holds it from then on, used or not; the creator holds both ends until
/// it closes them, as with ``multiprocessing``). ``send`` raises
/// ``BrokenPipeError`` once no one holds the other end.
///
/// A message may be up to ``Connection.MAX_MESSAGE_LEN`` (1 GiB) long,
/// whatever the ring's size: one longer than a slot is carried in pieces.
/// One process at a time sends on an end (and one receives): a second
/// process's ``send`` on the same end waits until the first closes it or
/// exits. Within a process, one thread at a time sends on an end (and one
/// receives): a second thread's ``send`` waits until the first's returns.
/// There is no ``fileno()``: the ends are shared memory, not file
/// descriptors, so ``multiprocessing.connection.wait`` cannot take them
/// (use ``poll``).
#[pyclass(module = "mmring", frozen)]
pub struct Connection {
    /// The holder lock's descriptor. First, so that a collected end lets
    /// go of it before its rings wake their peers.
    holder: Holder,
    tx: Side<Option<ByteProducer>>,
    rx: Side<Rx>,
    files: Arc<Files>,
    end: End,
    readable: bool,
    writable: bool,
    /// 1 once `close()` was called (in the process that called it, and in
    /// children forked after).
    closed: AtomicU32,
}

/// How long a thread waiting for its turn at an end sleeps before it looks
/// again.
const TURN_POLL: Duration = Duration::from_millis(1);

impl Connection {
    fn make(files: Arc<Files>, end: End, readable: bool, writable: bool, fd: OwnedFd) -> Self {
        Self {
            holder: Holder::new(fd),
            tx: Side::new(),
            rx: Side::new(),
            files,
            end,
            readable,
            writable,
            closed: AtomicU32::new(0),
        }
    }

    fn is_closed(&self) -> bool {
        // Relaxed: a flag this process sets; `Turn` orders what it guards.
        self.closed.load(Ordering::Relaxed) != 0
    }

    fn check(&self, reading: bool) -> PyResult<()> {
        if self.is_closed() {
            return Err(PyOSError::new_err("handle is closed"));
        }
        if reading && !self.readable {
            return Err(PyOSError::new_err("connection is write-only"));
        }
        if !reading && !self.writable {
            return Err(PyOSError::new_err("connection is read-only"));
        }
        Ok(())
    }

    fn stop_err(&self, stop: Stop) -> PyErr {
        match stop {
            Stop::Closed => PyOSError::new_err("handle is closed"),
            Stop::Eof => PyEOFError::new_err(()),
            Stop::Broken => PyBrokenPipeError::new_err(format!(
                "no one holds end {} of pipe {:?} any more",
                self.end.other().letter(),
                self.files.name()
            )),
            Stop::SelfHeld => PyOSError::new_err(format!(
                "end {} of pipe {:?} is in use by another Connection of this process",
                self.end.letter(),
                self.files.name()
            )),
            Stop::Reentrant => PyRuntimeError::new_err(format!(
                "end {} of pipe {:?} is already in use by this thread (a call from a \
                 signal handler during a send or receive on the same end?)",
                self.end.letter(),
                self.files.name()
            )),
            Stop::TooLong(len) => PyValueError::new_err(format!(
                "a message of {len} bytes is longer than a pipe carries ({MAX_MESSAGE_LEN} bytes)"
            )),
            Stop::BadLength(len, max) => {
                PyOSError::new_err(format!("bad message length: {len} bytes, maxlength {max}"))
            }
            Stop::Open(e) => open_error(e),
            Stop::Os(e) => PyOSError::new_err(e.to_string()),
        }
    }

    /// This thread's turn at `side`, waiting (GIL released, signals
    /// checked) while another thread of this process has it, up to
    /// `deadline` (`Ok(None)` after it).
    fn take<'a, T: Default + Send>(
        &'a self,
        py: Python<'_>,
        side: &'a Side<T>,
        deadline: Option<Instant>,
    ) -> PyResult<Option<Result<Turn<'a, T>, Stop>>> {
        let closed = &self.closed;
        let try_once = || -> Option<Result<Turn<'a, T>, Stop>> {
            // Relaxed: see `is_closed`.
            if closed.load(Ordering::Relaxed) != 0 {
                return Some(Err(Stop::Closed));
            }
            match side.claim() {
                Claim::Taken => Some(Ok(Turn { side, closed })),
                Claim::Busy => None,
                Claim::Reentrant => Some(Err(Stop::Reentrant)),
            }
        };
        if let Some(r) = try_once() {
            return Ok(Some(r));
        }
        let timeout = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        if timeout == Some(Duration::ZERO) {
            return Ok(None);
        }
        wait_for(py, timeout, |slice| {
            let until = Instant::now() + slice;
            loop {
                if let Some(r) = try_once() {
                    return Some(r);
                }
                let left = until.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return None;
                }
                std::thread::sleep(left.min(TURN_POLL));
            }
        })
    }

    /// Sends one message: once with the GIL held, then in slices with it
    /// released (a long message resumes where the last slice stopped).
    fn send_raw(&self, py: Python<'_>, msg: &[u8]) -> PyResult<()> {
        self.check(false)?;
        if msg.len() > MAX_MESSAGE_LEN {
            return Err(self.stop_err(Stop::TooLong(msg.len())));
        }
        let mut turn = match self.take(py, &self.tx, None)? {
            Some(Ok(turn)) => turn,
            Some(Err(stop)) => return Err(self.stop_err(stop)),
            None => unreachable!("a wait without a timeout cannot time out"),
        };
        let Some(holder) = self.holder.get(py) else {
            return Err(self.stop_err(Stop::Closed));
        };
        let fd = holder.as_raw_fd();
        let slot: &mut Option<ByteProducer> = &mut turn;
        let path = ring_path(self.files.base(), self.end.other());
        let peer = self.end.other();
        let closed = &self.closed;
        let mut sent = 0usize;
        let mut step = |slice: Duration| -> Option<Result<(), Stop>> {
            // Relaxed: see `is_closed`.
            if closed.load(Ordering::Relaxed) != 0 {
                return Some(Err(Stop::Closed));
            }
            if slot.is_none() {
                match ByteProducer::open(&path) {
                    Ok(h) => *slot = Some(h),
                    Err(OpenError::RoleTaken { pid, .. }) => {
                        if pid == mmring::pid::current() {
                            return Some(Err(Stop::SelfHeld));
                        }
                        std::thread::sleep(slice.min(ROLE_POLL));
                        return None;
                    }
                    Err(e) => return Some(Err(Stop::Open(e))),
                }
            }
            let tx = slot.as_mut()?;
            // No consumer yet (or it let go): is anyone left to read?
            if tx.consumer_pid() == 0 {
                match held_elsewhere(fd, peer) {
                    Ok(true) => {}
                    Ok(false) => return Some(Err(Stop::Broken)),
                    Err(e) => return Some(Err(Stop::Os(e))),
                }
            }
            match tx.push_from(msg, &mut sent, slice) {
                Ok(()) => Some(Ok(())),
                Err(BytePushTimeoutError::Timeout) => None,
                Err(BytePushTimeoutError::TooLong { len, .. }) => Some(Err(Stop::TooLong(len))),
                Err(BytePushTimeoutError::Closed) => Some(Err(Stop::Broken)),
                Err(BytePushTimeoutError::Disconnected) => {
                    // No room and no live consumer: start the message over
                    // (a new consumer skips the rest of one it never saw
                    // begin), once someone holds the other end.
                    sent = 0;
                    match held_elsewhere(fd, peer) {
                        Ok(true) => {
                            tx.wait_for_peer(slice);
                            None
                        }
                        Ok(false) => Some(Err(Stop::Broken)),
                        Err(e) => Some(Err(Stop::Os(e))),
                    }
                }
            }
        };
        let done = match step(Duration::ZERO) {
            Some(r) => Ok(r),
            None => wait_for(py, None, step).map(|r| match r {
                Some(r) => r,
                None => unreachable!("a wait without a timeout cannot time out"),
            }),
        };
        // The descriptor before the turn: a closed end lets go of its hold
        // before its ring wakes the peer.
        drop(holder);
        drop(turn);
        done?.map_err(|s| self.stop_err(s))
    }

    /// Receives one message within `timeout` (`None`: for ever): `Ok(None)`
    /// when the time passed. With `keep`, the message stays pending for the
    /// next receive (what `poll` does); so does one longer than
    /// `maxlength`, which answers `Stop::BadLength`.
    fn recv_raw(
        &self,
        py: Python<'_>,
        timeout: Option<Duration>,
        keep: bool,
        maxlength: Option<usize>,
    ) -> PyResult<Option<Result<Vec<u8>, Stop>>> {
        self.check(true)?;
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        let mut turn = match self.take(py, &self.rx, deadline)? {
            Some(Ok(turn)) => turn,
            Some(Err(stop)) => return Ok(Some(Err(stop))),
            None => return Ok(None),
        };
        let Some(holder) = self.holder.get(py) else {
            return Ok(Some(Err(Stop::Closed)));
        };
        let rx: &mut Rx = &mut turn;
        let got = match rx.pending.take() {
            Some(msg) => Ok(Some(Ok(msg))),
            None => self.pop(py, &mut rx.ring, holder.as_raw_fd(), deadline),
        };
        let got = match got {
            Ok(Some(Ok(msg))) if keep => {
                rx.pending = Some(msg);
                Ok(Some(Ok(Vec::new())))
            }
            Ok(Some(Ok(msg))) if maxlength.is_some_and(|m| msg.len() > m) => {
                let len = msg.len();
                rx.pending = Some(msg);
                Ok(Some(Err(Stop::BadLength(len, maxlength.unwrap_or(0)))))
            }
            other => other,
        };
        // The descriptor before the turn: see `send_raw`.
        drop(holder);
        drop(turn);
        got
    }

    /// Takes one message from the ring (opened into `slot` on first use)
    /// by `deadline`: once with the GIL held, then in slices with it
    /// released.
    fn pop(
        &self,
        py: Python<'_>,
        slot: &mut Option<ByteConsumer>,
        fd: RawFd,
        deadline: Option<Instant>,
    ) -> PyResult<Option<Result<Vec<u8>, Stop>>> {
        let path = ring_path(self.files.base(), self.end);
        let peer = self.end.other();
        let closed = &self.closed;
        let mut step = |slice: Duration| -> Option<Result<Vec<u8>, Stop>> {
            // Relaxed: see `is_closed`.
            if closed.load(Ordering::Relaxed) != 0 {
                return Some(Err(Stop::Closed));
            }
            if slot.is_none() {
                match ByteConsumer::open(&path) {
                    Ok(h) => *slot = Some(h),
                    Err(OpenError::RoleTaken { pid, .. }) => {
                        if pid == mmring::pid::current() {
                            return Some(Err(Stop::SelfHeld));
                        }
                        std::thread::sleep(slice.min(ROLE_POLL));
                        return None;
                    }
                    Err(e) => return Some(Err(Stop::Open(e))),
                }
            }
            let ring = slot.as_mut()?;
            match ring.pop_timeout(slice) {
                Ok(msg) => Some(Ok(msg)),
                Err(PopTimeoutError::Timeout) => None,
                Err(PopTimeoutError::Closed) => Some(Err(Stop::Eof)),
                Err(PopTimeoutError::Disconnected) => match held_elsewhere(fd, peer) {
                    // Someone holds the sending end but no process is its
                    // producer now: sleep until one claims it.
                    Ok(true) => {
                        ring.wait_for_peer(slice);
                        None
                    }
                    // Nobody: what was sent before the last holder let go
                    // is in the ring (its push came before its release).
                    Ok(false) => match ring.try_pop() {
                        Ok(msg) => Some(Ok(msg)),
                        Err(TryPopError::Empty | TryPopError::Closed) => Some(Err(Stop::Eof)),
                    },
                    Err(e) => Some(Err(Stop::Os(e))),
                },
            }
        };
        if let Some(r) = step(Duration::ZERO) {
            return Ok(Some(r));
        }
        let timeout = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        if timeout == Some(Duration::ZERO) {
            return Ok(None);
        }
        wait_for(py, timeout, step)
    }

    /// A message, or the error that ends the receive.
    fn recv_message(&self, py: Python<'_>, maxlength: Option<usize>) -> PyResult<Vec<u8>> {
        match self.recv_raw(py, None, false, maxlength)? {
            Some(r) => r.map_err(|s| self.stop_err(s)),
            None => unreachable!("a wait without a timeout cannot time out"),
        }
    }
}

#[pymethods]
impl Connection {
    /// The longest message a pipe carries: 1 GiB.
    #[classattr]
    const MAX_MESSAGE_LEN: usize = MAX_MESSAGE_LEN;

    /// Opens end ``'a'`` or ``'b'`` of an existing pipe: this process holds
    /// it from now on. ``FileNotFoundError`` if there is no such pipe.
    #[classmethod]
    fn open(_cls: &Bound<'_, PyType>, name: &str, end: &str) -> PyResult<Self> {
        let end = End::parse(end)?;
        let target = Target::named(name)?;
        let base = target.path.clone();
        let a = ring_path(&base, End::A);
        if !a.exists() {
            return Err(pyo3::exceptions::PyFileNotFoundError::new_err(format!(
                "no pipe at {} (no file {})",
                base.display(),
                a.display()
            )));
        }
        let duplex = ring_path(&base, End::B).exists();
        let files = Arc::new(Files { target });
        let fd = hold(files.base(), end)?;
        let (readable, writable) = match end {
            End::A => (true, duplex),
            End::B => (duplex, true),
        };
        Ok(Self::make(files, end, readable, writable, fd))
    }

    /// An end rebuilt from its pickle: the holder lock's descriptor comes
    /// through ``multiprocessing.reduction.DupFd``.
    #[staticmethod]
    fn _rebuild(
        name: String,
        path: &str,
        end: &str,
        readable: bool,
        writable: bool,
        dupfd: &Bound<'_, PyAny>,
    ) -> PyResult<Self> {
        let end = End::parse(end)?;
        let fd: RawFd = dupfd.call_method0("detach")?.extract()?;
        if fd < 0 {
            return Err(PyValueError::new_err("not a file descriptor"));
        }
        // SAFETY: `detach` hands over a descriptor that is ours alone (passed
        // to this process, or fetched from the resource sharer); nothing else
        // closes it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let mut target = Target::named(&name)?;
        target.path = PathBuf::from(path);
        let files = Arc::new(Files { target });
        Ok(Self::make(files, end, readable, writable, fd))
    }

    /// Sends ``obj``, pickled (protocol 5). Blocks while the ring is full.
    /// ``BrokenPipeError`` once no one holds the other end;
    /// ``OSError`` on a closed or receive-only end.
    fn send(&self, py: Python<'_>, obj: &Bound<'_, PyAny>) -> PyResult<()> {
        self.check(false)?;
        let data = dumps(obj)?;
        self.send_raw(py, data.as_bytes())
    }

    /// Sends the bytes of a bytes-like object (``buf[offset:offset+size]``)
    /// as one message, as ``multiprocessing.Connection.send_bytes``.
    #[pyo3(signature = (buf, offset=0, size=None))]
    fn send_bytes(
        &self,
        py: Python<'_>,
        buf: &Bound<'_, PyAny>,
        offset: isize,
        size: Option<isize>,
    ) -> PyResult<()> {
        self.check(false)?;
        let owned;
        let data: &[u8] = if let Ok(b) = buf.cast::<PyBytes>() {
            b.as_bytes()
        } else {
            let mv = py
                .import("builtins")?
                .getattr("memoryview")?
                .call1((buf,))?;
            owned = mv.call_method0("tobytes")?.cast_into::<PyBytes>()?;
            owned.as_bytes()
        };
        let n = data.len() as isize;
        if offset < 0 {
            return Err(PyValueError::new_err("offset is negative"));
        }
        if n < offset {
            return Err(PyValueError::new_err("buffer length < offset"));
        }
        let size = match size {
            None => n - offset,
            Some(s) if s < 0 => return Err(PyValueError::new_err("size is negative")),
            Some(s) if offset + s > n => {
                return Err(PyValueError::new_err("buffer length < offset + size"));
            }
            Some(s) => s,
        };
        self.send_raw(py, &data[offset as usize..(offset + size) as usize])
    }

    /// Receives one object (unpickled). Blocks until one comes; raises
    /// ``EOFError`` once everything sent was read and no one holds the
    /// other end any more.
    fn recv<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let msg = self.recv_message(py, None)?;
        loads(py, &msg)
    }

    /// Receives one message as ``bytes``. A message longer than
    /// ``maxlength`` raises ``OSError`` and stays queued for the next
    /// receive (``multiprocessing`` loses it).
    #[pyo3(signature = (maxlength=None))]
    fn recv_bytes<'py>(
        &self,
        py: Python<'py>,
        maxlength: Option<isize>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        if let Some(m) = maxlength
            && m < 0
        {
            return Err(PyValueError::new_err("negative maxlength"));
        }
        self.check(true)?;
        let msg = self.recv_message(py, maxlength.map(|m| m as usize))?;
        Ok(PyBytes::new(py, &msg))
    }

    /// Receives one message into the writable buffer ``buf`` from byte
    /// ``offset`` on; returns its length in ``buf``'s items. A message that
    /// does not fit raises ``multiprocessing.BufferTooShort`` carrying it.
    #[pyo3(signature = (buf, offset=0))]
    fn recv_bytes_into(
        &self,
        py: Python<'_>,
        buf: &Bound<'_, PyAny>,
        offset: isize,
    ) -> PyResult<usize> {
        self.check(true)?;
        let mv = py
            .import("builtins")?
            .getattr("memoryview")?
            .call1((buf,))?;
        let itemsize: usize = mv.getattr("itemsize")?.extract()?;
        let bytesize = itemsize * mv.len()?;
        if offset < 0 {
            return Err(PyValueError::new_err("negative offset"));
        }
        let offset = offset as usize;
        if offset > bytesize {
            return Err(PyValueError::new_err("offset too large"));
        }
        let msg = self.recv_message(py, None)?;
        let size = msg.len();
        if bytesize < offset + size {
            let too_short = py.import("multiprocessing")?.getattr("BufferTooShort")?;
            return Err(PyErr::from_value(
                too_short.call1((PyBytes::new(py, &msg),))?,
            ));
        }
        let flat = mv.call_method1("cast", ("B",))?;
        let slice = pyo3::types::PySlice::new(py, offset as isize, (offset + size) as isize, 1);
        flat.set_item(slice, PyBytes::new(py, &msg))?;
        Ok(size / itemsize)
    }

    /// Whether a message (or the end of the stream) is there to receive,
    /// waiting up to ``timeout`` seconds for one (``None``: for ever). The
    /// message is kept for the next receive.
    #[pyo3(signature = (timeout=0.0))]
    fn poll(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        let timeout = match timeout {
            None => None,
            Some(t) if t.is_nan() || t <= 0.0 => Some(Duration::ZERO),
            Some(t) => Some(Duration::try_from_secs_f64(t).unwrap_or(Duration::MAX)),
        };
        match self.recv_raw(py, timeout, true, None)? {
            None => Ok(false),
            Some(Ok(_)) | Some(Err(Stop::Eof)) => Ok(true),
            Some(Err(s)) => Err(self.stop_err(s)),
        }
    }

    /// Lets go of this handle in this process: its roles go back and its
    /// hold on the end ends (other processes' handles are untouched).
    /// A send or receive in progress in another thread raises ``OSError``
    /// within a moment. Idempotent.
    fn close(&self, py: Python<'_>) {
        // SeqCst: see `Turn`'s drop, which lets go of a side that a call in
        // progress has the turn at.
        self.closed.store(1, Ordering::SeqCst);
        // The descriptor first (closed now, or when the last call in
        // progress returns), so that a reader its rings wake finds this
        // holder gone.
        self.holder.close(py);
        // A side that a call in progress (in another thread, or in this
        // one below a signal handler) has the turn at is let go of when
        // that call returns.
        self.tx.clear_if_free();
        self.rx.clear_if_free();
    }

    /// Whether ``close()`` was called.
    #[getter]
    fn closed(&self) -> bool {
        self.is_closed()
    }

    /// Whether this end receives.
    #[getter]
    fn readable(&self) -> bool {
        self.readable
    }

    /// Whether this end sends.
    #[getter]
    fn writable(&self) -> bool {
        self.writable
    }

    /// Not available: an end is shared memory, not a file descriptor
    /// (``io.UnsupportedOperation``); use ``poll(timeout)``.
    fn fileno(&self, py: Python<'_>) -> PyResult<i32> {
        Err(unsupported(
            py,
            "mmring.Connection has no file descriptor: use poll(timeout)",
        ))
    }

    /// Whether a thread of this process is inside a receive on this end
    /// (for tests).
    #[getter]
    fn _receiving(&self) -> bool {
        self.rx.in_use()
    }

    /// Whether a thread of this process is inside a send on this end (for
    /// tests).
    #[getter]
    fn _sending(&self) -> bool {
        self.tx.in_use()
    }

    /// Which end this is: ``'a'`` or ``'b'``.
    #[getter]
    fn end(&self) -> &'static str {
        self.end.letter()
    }

    /// The pipe's name.
    #[getter]
    fn name(&self) -> &str {
        self.files.name()
    }

    /// The pipe's path: its files are this path plus ``.a`` and ``.b``.
    #[getter]
    fn path(&self) -> String {
        self.files.target.path_str()
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __exit__(
        &self,
        py: Python<'_>,
        _exc_type: &Bound<'_, PyAny>,
        _exc: &Bound<'_, PyAny>,
        _tb: &Bound<'_, PyAny>,
    ) {
        self.close(py);
    }

    fn __reduce__<'py>(
        slf: &Bound<'py, Self>,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyTuple>)> {
        let py = slf.py();
        let this = slf.get();
        let Some(holder) = this.holder.get(py) else {
            return Err(PyOSError::new_err("handle is closed"));
        };
        // `holder` keeps the descriptor open while `DupFd` runs (it dups it
        // now, or notes it for a spawn that follows: a close() from another
        // thread before that spawn is a race, as in `multiprocessing`).
        let dupfd = py
            .import("multiprocessing.reduction")?
            .getattr("DupFd")?
            .call1((holder.as_raw_fd(),))?;
        drop(holder);
        let rebuild = slf.get_type().getattr("_rebuild")?;
        let args = (
            this.files.name().to_owned(),
            this.files.target.shared_path(),
            this.end.letter(),
            this.readable,
            this.writable,
            dupfd,
        )
            .into_pyobject(py)?;
        Ok((rebuild, args))
    }

    fn __repr__(&self) -> String {
        format!(
            "mmring.Connection({:?}, end={:?}{})",
            self.files.name(),
            self.end.letter(),
            if self.is_closed() { ", closed" } else { "" }
        )
    }
}

/// Makes (or opens) the pipe ``name`` and returns its two ends ``(a, b)``,
/// as ``multiprocessing.Pipe``: with ``duplex=True`` both send and
/// receive; with ``duplex=False``, ``a`` only receives and ``b`` only
/// sends.
///
/// Each direction is a ring of at least ``capacity`` slots of
/// ``slot_size`` bytes (1 to 65536): a message up to ``slot_size`` takes
/// one slot, a longer one goes in pieces, a slot each, so any message up
/// to ``Connection.MAX_MESSAGE_LEN`` (1 GiB) goes through, streaming while
/// the other end reads. The defaults (256 slots of 1024 bytes) make each
/// ring file about 512 KiB. An existing pipe is opened as it is (its sizes
/// kept; ``ValueError`` if its ``duplex`` differs).
///
/// Without a ``name`` one is made up, and the files are removed once both
/// ends are collected in this process; ``mmring.remove(name)`` removes a
/// named pipe's files (``NAME.a``, and ``NAME.b`` for a duplex pipe).
#[pyfunction]
#[pyo3(name = "Pipe", signature = (name=None, duplex=true, *, capacity=CAPACITY, slot_size=SLOT_SIZE))]
fn pipe(
    name: Option<&str>,
    duplex: bool,
    capacity: usize,
    slot_size: usize,
) -> PyResult<(Connection, Connection)> {
    if capacity == 0 {
        return Err(PyValueError::new_err("capacity must be at least 1"));
    }
    if !(1..=MAX_SLOT_SIZE).contains(&slot_size) {
        return Err(PyValueError::new_err(format!(
            "slot_size must be 1 to {MAX_SLOT_SIZE} bytes, not {slot_size}"
        )));
    }
    let target = Target::new(name, "pipe")?;
    let files = Arc::new(Files { target });
    let create = |end: End| -> PyResult<bool> {
        match mmring::spsc::create_bytes(ring_path(files.base(), end), capacity, slot_size) {
            Ok(()) => Ok(true),
            Err(OpenError::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(open_error(e)),
        }
    };
    // `NAME.b` first: once `NAME.a` exists, whether the pipe is duplex is
    // settled.
    let a_exists = ring_path(files.base(), End::A).exists();
    let b_exists = ring_path(files.base(), End::B).exists();
    let exists_as = |was: bool| {
        PyValueError::new_err(format!(
            "pipe {:?} exists with duplex={}",
            files.name(),
            if was { "True" } else { "False" }
        ))
    };
    if duplex {
        if a_exists && !b_exists {
            return Err(exists_as(false));
        }
        create(End::B)?;
    }
    if !create(End::A)? && !duplex && b_exists {
        return Err(exists_as(true));
    }
    let fa = hold(files.base(), End::A)?;
    let fb = hold(files.base(), End::B)?;
    Ok((
        Connection::make(files.clone(), End::A, true, duplex, fa),
        Connection::make(files, End::B, duplex, true, fb),
    ))
}

/// Removes a pipe's files (`NAME.a`, `NAME.b`); whether there was one.
pub fn remove(name: &str) -> bool {
    let base = mmring::region::resolve(name);
    let a = std::fs::remove_file(ring_path(&base, End::A)).is_ok();
    let b = std::fs::remove_file(ring_path(&base, End::B)).is_ok();
    a || b
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Connection>()?;
    m.add_function(wrap_pyfunction!(pipe, m)?)
}
