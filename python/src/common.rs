//! What every binding shares: names and paths, a handle per process, the
//! exceptions, the blocking loop that releases the GIL and wakes for
//! signals, and pickling.

use mmring::sync::{AtomicU32, AtomicU64, Ordering};
use std::cell::UnsafeCell;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mmring::OpenError;
use pyo3::exceptions::{
    PyFileExistsError, PyFileNotFoundError, PyIsADirectoryError, PyOSError, PyPermissionError,
    PyValueError,
};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyType};

pyo3::create_exception!(
    mmring,
    Error,
    pyo3::exceptions::PyException,
    "A file that is not the object asked for: corrupt, truncated, foreign, of a newer format, or holding another shape."
);
pyo3::create_exception!(
    mmring,
    WrongKindError,
    Error,
    "The name holds another kind of object (a Queue opened as a Dict, a Value of another typecode, a Rust Queue<u64> opened as a Python Queue)."
);
pyo3::create_exception!(
    mmring,
    ShutDown,
    pyo3::exceptions::PyException,
    "Raised by put on a queue that was shut down, and by get once it is also empty (queue.ShutDown on Python >= 3.13)."
);

pyo3::import_exception!(queue, Full);
pyo3::import_exception!(queue, Empty);
pyo3::import_exception!(threading, BrokenBarrierError);

/// `queue.ShutDown` where Python has it (3.13+), else our own class of the
/// same name; `mmring.ShutDown` is this type either way.
pub fn shutdown_type(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    static TYPE: PyOnceLock<Py<PyType>> = PyOnceLock::new();
    TYPE.get_or_try_init(py, || -> PyResult<Py<PyType>> {
        let queue = py.import("queue")?;
        match queue.getattr("ShutDown") {
            Ok(t) => Ok(t.cast_into::<PyType>()?.unbind()),
            Err(_) => Ok(py.get_type::<ShutDown>().unbind()),
        }
    })
    .map(|t| t.bind(py))
}

/// An instance of [`shutdown_type`], ready to raise.
pub fn shutdown_err(py: Python<'_>, msg: &str) -> PyErr {
    match shutdown_type(py) {
        Ok(t) => PyErr::from_type(t.clone(), msg.to_owned()),
        Err(e) => e,
    }
}

/// An [`OpenError`] as the Python exception a user would look for: the
/// file-system cases as `OSError` subclasses, a name of another kind or
/// payload as [`WrongKindError`], a damaged or foreign file as [`Error`];
/// the message is the library's, which names the path and both sides.
pub fn open_error(err: OpenError) -> PyErr {
    let msg = err.to_string();
    match err {
        OpenError::NotFound { .. } => PyFileNotFoundError::new_err(msg),
        OpenError::AlreadyExists { .. } => PyFileExistsError::new_err(msg),
        OpenError::PermissionDenied { .. } => PyPermissionError::new_err(msg),
        OpenError::Directory { .. } => PyIsADirectoryError::new_err(msg),
        OpenError::NoSpace { .. } | OpenError::Io { .. } => PyOSError::new_err(msg),
        OpenError::InvalidCapacity { .. } | OpenError::InvalidOption { .. } => {
            PyValueError::new_err(msg)
        }
        OpenError::WrongKind { .. } | OpenError::WrongPayload { .. } => {
            WrongKindError::new_err(msg)
        }
        _ => Error::new_err(msg),
    }
}

/// The longest a blocked call waits with the GIL released before it takes
/// the GIL back to run signal handlers (Ctrl-C raises `KeyboardInterrupt`
/// within this).
pub const SLICE: Duration = Duration::from_millis(50);

/// A `timeout=` argument: `None` waits for ever; a negative number is a
/// `ValueError`, as in `queue.Queue`.
pub fn timeout_arg(timeout: Option<f64>) -> PyResult<Option<Duration>> {
    match timeout {
        None => Ok(None),
        Some(t) if t.is_nan() || t < 0.0 => Err(PyValueError::new_err(
            "'timeout' must be a non-negative number",
        )),
        Some(t) => Ok(Some(
            Duration::try_from_secs_f64(t).unwrap_or(Duration::MAX),
        )),
    }
}

/// Blocks until `step` succeeds or `timeout` (if any) has passed: `step`
/// gets a slice of at most [`SLICE`] to wait in, runs with the GIL
/// released, and answers `Some` when it is done; between slices pending
/// signals run their handlers, so Ctrl-C raises `KeyboardInterrupt` here
/// (and `step` must leave nothing half done when it answers `None`).
/// `Ok(None)` means the timeout passed.
///
/// Callers try the operation once with the GIL held first: releasing and
/// retaking the GIL costs more than an operation that succeeds at once.
pub fn wait_for<R: Send>(
    py: Python<'_>,
    timeout: Option<Duration>,
    mut step: impl FnMut(Duration) -> Option<R> + Send,
) -> PyResult<Option<R>> {
    // A timeout too far to represent (`inf`, 1e19 s) is no deadline at all.
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    loop {
        let slice = match deadline {
            None => SLICE,
            Some(d) => d.saturating_duration_since(Instant::now()).min(SLICE),
        };
        let done = py.detach(|| {
            let done = step(slice);
            park_if_exiting();
            done
        });
        if let Some(done) = done {
            return Ok(Some(done));
        }
        py.check_signals()?;
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(None);
        }
    }
}

/// Set by the package's `atexit` hook: the interpreter is about to finalize.
static EXITING: AtomicU32 = AtomicU32::new(0);

/// A thread still waiting when the interpreter exits is a daemon thread
/// (Python joined every other one before `atexit`). Retaking the GIL after
/// finalization began would end it with `pthread_exit`, whose forced unwind
/// through these frames aborts the process ("FATAL: exception not
/// rethrown"); so it stays here, GIL-free, until the process is gone.
fn park_if_exiting() {
    // Relaxed: a flag; a late read only means one more slice.
    if EXITING.load(Ordering::Relaxed) != 0 {
        loop {
            std::thread::park();
        }
    }
}

/// `pickle.dumps(obj, protocol=5)`.
pub fn dumps<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyBytes>> {
    static DUMPS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let py = obj.py();
    let dumps = DUMPS.import(py, "pickle", "dumps")?;
    Ok(dumps.call1((obj, 5))?.cast_into::<PyBytes>()?)
}

/// `pickle.loads(data)`.
pub fn loads<'py>(py: Python<'py>, data: &[u8]) -> PyResult<Bound<'py, PyAny>> {
    static LOADS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let loads = LOADS.import(py, "pickle", "loads")?;
    loads.call1((PyBytes::new(py, data),))
}

/// Where an object lives: the name it was given and the file it resolves
/// to (a bare name under `/dev/shm`, a path with a slash as given).
///
/// Without a name, a fresh one is made up and the file belongs to the
/// process that made it: removed when the object is collected there, if
/// the object never left the process (never pickled, no fork since it was
/// made); otherwise when that process exits, since a child that got it
/// (`Process.start()` drops its own reference to the arguments at once)
/// may still be about to open it.
#[derive(Debug)]
pub struct Target {
    pub name: String,
    pub path: PathBuf,
    /// For a made-up name: the pid that made it and the fork count then.
    anonymous: Option<(u32, u64)>,
    /// Set once the object was pickled (it may be opened elsewhere).
    shared: AtomicU32,
}

/// Forks made by this process (counted by a `pthread_atfork` handler).
static FORKS: AtomicU64 = AtomicU64::new(0);

/// Made-up names whose files this process removes when it exits.
static AT_EXIT: Mutex<Vec<(u32, PathBuf)>> = Mutex::new(Vec::new());

/// Registers the fork counter (once, at import).
pub fn count_forks() {
    extern "C" fn forked() {
        // Relaxed: a plain count, read only to compare with an older read.
        FORKS.fetch_add(1, Ordering::Relaxed);
    }
    // SAFETY: registers a parent-side handler that does one atomic add
    // (async-signal-safe); pthread_atfork has no other precondition. If it
    // fails, forks go uncounted, and objects shared only by fork may lose
    // their file early — the same as not having the handler.
    unsafe { libc::pthread_atfork(None, Some(forked), None) };
}

/// The package's `atexit` hook: parks daemon threads that are waiting
/// (see `park_if_exiting`) and removes the files of this process's
/// made-up names that may have been shared.
#[pyfunction]
pub fn _at_exit() {
    // Relaxed: see `park_if_exiting`.
    EXITING.store(1, Ordering::Relaxed);
    let me = mmring::pid::current();
    let mut paths = AT_EXIT.lock().unwrap_or_else(|e| e.into_inner());
    for (pid, path) in paths.drain(..) {
        if pid == me {
            let _ = std::fs::remove_file(path);
        }
    }
}

impl Target {
    /// `name` as given, or a made-up one (`kind` names it).
    pub fn new(name: Option<&str>, kind: &str) -> PyResult<Self> {
        match name {
            Some(name) => Self::named(name),
            None => {
                static SEQ: AtomicU64 = AtomicU64::new(0);
                let pid = mmring::pid::current();
                let nanos = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.subsec_nanos());
                let name = format!(
                    "mmring-{kind}-{pid}-{}-{nanos:08x}",
                    SEQ.fetch_add(1, Ordering::Relaxed)
                );
                let path = mmring::region::resolve(&name);
                Ok(Self {
                    name,
                    path,
                    // Relaxed: compared with a later read in this process.
                    anonymous: Some((pid, FORKS.load(Ordering::Relaxed))),
                    shared: AtomicU32::new(0),
                })
            }
        }
    }

    /// The object at `name` (never removed by this handle).
    pub fn named(name: &str) -> PyResult<Self> {
        if name.is_empty() {
            return Err(PyValueError::new_err("a name must not be empty"));
        }
        if name.contains('\0') {
            return Err(PyValueError::new_err("a name must not contain NUL"));
        }
        Ok(Self {
            name: name.to_owned(),
            path: mmring::region::resolve(name),
            anonymous: None,
            shared: AtomicU32::new(0),
        })
    }

    /// Whether the object may have reached another process: pickled, or a
    /// fork since it was made.
    pub fn may_be_shared(&self) -> bool {
        // Relaxed (both): flags read in the process that set them.
        self.shared.load(Ordering::Relaxed) != 0
            || self
                .anonymous
                .is_some_and(|(_, forks)| FORKS.load(Ordering::Relaxed) != forks)
    }

    /// The path as a Python string.
    pub fn path_str(&self) -> String {
        self.path.to_string_lossy().into_owned()
    }

    /// The path, for `__reduce__`: notes that the object is leaving the
    /// process (a made-up name's file then stays until this process exits).
    pub fn shared_path(&self) -> String {
        // Relaxed: read by `may_be_shared` in this process.
        self.shared.store(1, Ordering::Relaxed);
        self.path_str()
    }

    /// What to do with a made-up name's files (`paths`) when its object is
    /// collected in the process that made it: removed now if the object
    /// never left, else at exit. Anything else: nothing.
    pub fn release_files(&self, paths: &[PathBuf]) {
        let Some((pid, _)) = self.anonymous else {
            return;
        };
        if pid != mmring::pid::current() {
            return;
        }
        if self.may_be_shared() {
            let mut at_exit = AT_EXIT.lock().unwrap_or_else(|e| e.into_inner());
            at_exit.extend(paths.iter().map(|p| (pid, p.clone())));
        } else {
            for p in paths {
                let _ = std::fs::remove_file(p);
            }
        }
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        let path = self.path.clone();
        self.release_files(&[path]);
    }
}

/// One object's Rust handle, per process.
///
/// A handle registers the process that opened it (a ring's role, a
/// barrier's party, the region's attachment). A child made by `fork`
/// inherits its parent's handle, registration and all; here it never uses
/// (nor drops) that one, but opens its own on first use, so an object that
/// reached a process by fork is as full a participant as one it opened. An
/// object unpickled in a spawned child opens on first use as well.
///
/// [`Local::get`] hands out an `Arc` of the handle, so that no lock is held
/// while a call waits with the GIL released or runs Python code: `close()`
/// from another thread never waits for it, and a fork never copies a held
/// lock into the child. The slot itself is guarded by the GIL.
pub struct Local<H> {
    pub target: Target,
    slot: GilCell<Slot<H>>,
    open: fn(&Path) -> Result<H, OpenError>,
}

/// A cell that is read and written only by a thread that holds the GIL
/// (every access goes through `Python::attach`), which makes it exclusive:
/// this extension is built for the limited API (abi3), which CPython's
/// free-threaded builds do not load, so there always is a GIL.
struct GilCell<T>(UnsafeCell<T>);

// SAFETY: every access to the inner value happens inside `GilCell::with`,
// under the GIL, so no two threads touch it at once; `T: Send` because the
// value may be used, and dropped, by whichever thread holds the GIL.
unsafe impl<T: Send> Sync for GilCell<T> {}

impl<T> GilCell<T> {
    fn new(value: T) -> Self {
        Self(UnsafeCell::new(value))
    }

    /// Runs `f` on the value with the GIL held. `f` must not call Python
    /// code (which could release the GIL and let another thread in).
    fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        Python::attach(|_py| {
            // SAFETY: the GIL is held for the whole of `f`, and `f` runs no
            // Python code (callers' contract), so no other thread can be in
            // `with` now; no reference to the value outlives `f`.
            f(unsafe { &mut *self.0.get() })
        })
    }

    fn get_mut(&mut self) -> &mut T {
        self.0.get_mut()
    }
}

enum Slot<H> {
    /// Not opened in this process yet.
    Empty,
    /// Opened by `pid`: used only there; dropped only there.
    Open {
        pid: u32,
        handle: std::mem::ManuallyDrop<Arc<H>>,
    },
    /// Closed by `close()` in this process.
    Closed,
}

impl<H> Slot<H> {
    fn mine(&self, pid: u32) -> Option<&Arc<H>> {
        match self {
            Slot::Open { pid: p, handle } if *p == pid => Some(handle),
            _ => None,
        }
    }

    /// Lets go of the handle: dropped in the process that opened it (once
    /// its last user is done with it), forgotten in any other (its drop
    /// would unregister that process).
    fn release(&mut self, next: Slot<H>) {
        if let Slot::Open { pid, handle } = std::mem::replace(self, next) {
            let mut handle = handle;
            if pid == mmring::pid::current() {
                // SAFETY: the slot no longer holds the handle; it is taken
                // out exactly once, here, and never used again.
                unsafe { std::mem::ManuallyDrop::drop(&mut handle) };
            }
        }
    }
}

impl<H> Local<H> {
    /// A handle opened later, on first use in each process, by `open`.
    pub fn lazy(target: Target, open: fn(&Path) -> Result<H, OpenError>) -> Self {
        Self {
            target,
            slot: GilCell::new(Slot::Empty),
            open,
        }
    }

    /// A handle opened (or created) now by this process; `open` reopens
    /// it in another.
    pub fn opened(target: Target, handle: H, open: fn(&Path) -> Result<H, OpenError>) -> Self {
        let slot = Slot::Open {
            pid: mmring::pid::current(),
            handle: std::mem::ManuallyDrop::new(Arc::new(handle)),
        };
        Self {
            target,
            slot: GilCell::new(slot),
            open,
        }
    }

    /// This process's handle, opened now if this is its first use here.
    /// `kind` names the object in the error for a closed one.
    pub fn get(&self, kind: &str) -> PyResult<Arc<H>> {
        let pid = mmring::pid::current();
        self.slot.with(|slot| {
            if let Some(h) = slot.mine(pid) {
                return Ok(Arc::clone(h));
            }
            if let Slot::Closed = slot {
                return Err(PyValueError::new_err(format!(
                    "{kind} {:?} is closed",
                    self.target.name
                )));
            }
            let handle = Arc::new((self.open)(&self.target.path).map_err(open_error)?);
            slot.release(Slot::Open {
                pid,
                handle: std::mem::ManuallyDrop::new(Arc::clone(&handle)),
            });
            Ok(handle)
        })
    }

    /// Lets go of this process's handle; later uses raise `ValueError`.
    /// A call in progress in another thread keeps its handle until it
    /// returns. Other processes' handles are untouched.
    pub fn close(&self) {
        // The handle is dropped outside the cell: its drop may take time
        // (unmapping) and must not run inside `with`.
        let old = self.slot.with(|slot| std::mem::replace(slot, Slot::Closed));
        let mut old = old;
        old.release(Slot::Closed);
    }
}

impl<H> Drop for Local<H> {
    fn drop(&mut self) {
        self.slot.get_mut().release(Slot::Empty);
    }
}
