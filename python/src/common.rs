//! What every binding shares: names and paths, a handle per process, the
//! exceptions, the blocking loop that releases the GIL and wakes for
//! signals, and pickling.

use mmring::sync::{AtomicU64, Ordering};
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::{RwLock, RwLockReadGuard};
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
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    loop {
        let slice = match deadline {
            None => SLICE,
            Some(d) => d.saturating_duration_since(Instant::now()).min(SLICE),
        };
        if let Some(done) = py.detach(|| step(slice)) {
            return Ok(Some(done));
        }
        py.check_signals()?;
        if timeout.is_some() && deadline.is_none_or(|d| Instant::now() >= d) {
            return Ok(None);
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
/// Without a name, a fresh one is made up, and the file is removed when
/// the object that made it is collected in the process that made it.
#[derive(Debug)]
pub struct Target {
    pub name: String,
    pub path: PathBuf,
    /// The pid that made up the name and removes the file, if it was made up.
    anonymous_owner: Option<u32>,
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
                    anonymous_owner: Some(pid),
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
            anonymous_owner: None,
        })
    }

    /// Whether this handle made the name up (and will remove the file).
    pub fn is_anonymous(&self) -> bool {
        self.anonymous_owner.is_some()
    }

    /// The path as a Python string.
    pub fn path_str(&self) -> String {
        self.path.to_string_lossy().into_owned()
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        if self.anonymous_owner == Some(mmring::pid::current()) {
            let _ = std::fs::remove_file(&self.path);
        }
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
pub struct Local<H> {
    pub target: Target,
    slot: RwLock<Slot<H>>,
    open: fn(&Path) -> Result<H, OpenError>,
}

enum Slot<H> {
    /// Not opened in this process yet.
    Empty,
    /// Opened by `pid`: used only there; dropped only there.
    Open {
        pid: u32,
        handle: std::mem::ManuallyDrop<H>,
    },
    /// Closed by `close()` in this process.
    Closed,
}

impl<H> Slot<H> {
    fn mine(&self, pid: u32) -> Option<&H> {
        match self {
            Slot::Open { pid: p, handle } if *p == pid => Some(handle),
            _ => None,
        }
    }

    /// Lets go of the handle: dropped in the process that opened it,
    /// forgotten in any other (its drop would unregister that process).
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

/// A borrowed handle (see [`Local::get`]).
pub struct Guard<'a, H> {
    guard: RwLockReadGuard<'a, Slot<H>>,
}

impl<H> Deref for Guard<'_, H> {
    type Target = H;
    fn deref(&self) -> &H {
        match &*self.guard {
            Slot::Open { handle, .. } => handle,
            _ => unreachable!("a Guard is only made over an open slot"),
        }
    }
}

impl<H> Local<H> {
    /// A handle opened later, on first use in each process, by `open`.
    pub fn lazy(target: Target, open: fn(&Path) -> Result<H, OpenError>) -> Self {
        Self {
            target,
            slot: RwLock::new(Slot::Empty),
            open,
        }
    }

    /// A handle opened (or created) now by this process; `open` reopens
    /// it in another.
    pub fn opened(target: Target, handle: H, open: fn(&Path) -> Result<H, OpenError>) -> Self {
        let slot = Slot::Open {
            pid: mmring::pid::current(),
            handle: std::mem::ManuallyDrop::new(handle),
        };
        Self {
            target,
            slot: RwLock::new(slot),
            open,
        }
    }

    /// This process's handle, opened now if this is its first use here.
    /// `kind` names the object in the error for a closed one.
    pub fn get(&self, kind: &str) -> PyResult<Guard<'_, H>> {
        let pid = mmring::pid::current();
        {
            let guard = self.slot.read().unwrap_or_else(|e| e.into_inner());
            if guard.mine(pid).is_some() {
                return Ok(Guard { guard });
            }
        }
        {
            let mut slot = self.slot.write().unwrap_or_else(|e| e.into_inner());
            match &*slot {
                Slot::Closed => {
                    return Err(PyValueError::new_err(format!(
                        "{kind} {:?} is closed",
                        self.target.name
                    )));
                }
                s if s.mine(pid).is_some() => {}
                _ => {
                    let handle = (self.open)(&self.target.path).map_err(open_error)?;
                    slot.release(Slot::Open {
                        pid,
                        handle: std::mem::ManuallyDrop::new(handle),
                    });
                }
            }
        }
        // A `close()` from another thread between the two locks is seen here.
        let guard = self.slot.read().unwrap_or_else(|e| e.into_inner());
        match guard.mine(pid) {
            Some(_) => Ok(Guard { guard }),
            None => Err(PyValueError::new_err(format!(
                "{kind} {:?} is closed",
                self.target.name
            ))),
        }
    }

    /// Lets go of this process's handle; later uses raise `ValueError`.
    /// Other processes' handles are untouched.
    pub fn close(&self) {
        self.slot
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .release(Slot::Closed);
    }
}

impl<H> Drop for Local<H> {
    fn drop(&mut self) {
        self.slot
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .release(Slot::Empty);
    }
}
