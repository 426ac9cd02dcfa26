//! `mmring.Queue`, `mmring.JoinableQueue` and `mmring.SimpleQueue`:
//! `multiprocessing`'s queues over the library's MPMC byte queue
//! ([`mmring::mpmc::ByteQueue`]).
//!
//! An item is one message: `put` pickles the object (protocol 5) and
//! pushes the bytes, `get` pops them and unpickles; `put_bytes` and
//! `get_bytes` move raw bytes. The queue's file has a fixed shape, chosen
//! when it is created: `maxsize` (the items it holds at once; the ring
//! under it has the next power of two of slots) and `item_size` (the
//! longest message, 1 to 65536 bytes). `shutdown()` is the library's
//! `close()`, final for every process; `close()` lets go of this handle.
//!
//! Every blocking call tries once with the GIL held (the common case
//! costs no GIL round trip), then waits in [`wait_for`]'s slices with the
//! GIL released, so other threads run and Ctrl-C interrupts it.

use std::cell::Cell;
use std::path::Path;

use mmring::mpmc::{ByteQueue, QueueOptions};
use mmring::{
    BytePushTimeoutError, ByteTryPushError, JoinTimeoutError, OpenError, PopTimeoutError,
    TaskError, TryPopError,
};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::pyclass_init::PyClassInitializer;
use pyo3::types::{PyBytes, PyInt, PyString, PyTuple, PyType};

use crate::common::{
    Empty, Error, Full, Local, Target, dumps, loads, open_error, shutdown_err, timeout_arg,
    wait_for,
};

/// The `maxsize` a queue is created with when none is given (or one of 0
/// or less, `multiprocessing`'s "unbounded"): a queue is a file of fixed
/// size, so it always has a bound.
pub const DEFAULT_MAXSIZE: usize = 1024;

/// The `item_size` (longest pickled item, in bytes) a queue is created
/// with when none is given.
pub const DEFAULT_ITEM_SIZE: usize = 4096;

/// The largest `item_size`: a slot of the byte queue holds at most 64 KiB.
pub const MAX_ITEM_SIZE: usize = 64 * 1024;

/// The largest `maxsize`: the ring's most slots (2^31).
pub const MAX_MAXSIZE: usize = 1 << 31;

/// Which Python class a handle is: the name its errors use, and whether
/// its file counts tasks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flavor {
    Queue,
    Joinable,
    Simple,
}

impl Flavor {
    fn name(self) -> &'static str {
        match self {
            Flavor::Queue => "Queue",
            Flavor::Joinable => "JoinableQueue",
            Flavor::Simple => "SimpleQueue",
        }
    }

    fn joinable(self) -> bool {
        self == Flavor::Joinable
    }

    /// How this flavor opens an existing file (lazily, in a process that
    /// got the object by fork or pickle, too).
    fn opener(self) -> fn(&Path) -> Result<ByteQueue, OpenError> {
        match self {
            Flavor::Joinable => open_joinable,
            Flavor::Queue | Flavor::Simple => open_plain,
        }
    }
}

/// Opens a queue file that does not count tasks (`Queue`, `SimpleQueue`).
fn open_plain(path: &Path) -> Result<ByteQueue, OpenError> {
    open_checked(path, false)
}

/// Opens a queue file that counts tasks (`JoinableQueue`).
fn open_joinable(path: &Path) -> Result<ByteQueue, OpenError> {
    open_checked(path, true)
}

/// Opens the byte queue at `path` (any shape), refusing one whose task
/// counting is not `joinable` as a file of another kind: a `Queue` opened
/// as a `JoinableQueue` would make every `join` wait for `task_done`
/// calls nobody makes.
fn open_checked(path: &Path, joinable: bool) -> Result<ByteQueue, OpenError> {
    let q = ByteQueue::open(path)?;
    if q.is_joinable() != joinable {
        let kind = |j: bool| {
            if j {
                "a JoinableQueue (a queue that counts tasks)"
            } else {
                "a Queue or SimpleQueue (a queue that counts no tasks)"
            }
        };
        return Err(OpenError::WrongKind {
            path: path.to_path_buf(),
            expected: kind(joinable).to_owned(),
            found: kind(q.is_joinable()).to_owned(),
        });
    }
    Ok(q)
}

/// `maxsize=` as given: `None` (and 0 or less) leaves it to the file (or
/// the default, when creating).
fn maxsize_arg(maxsize: Option<i64>) -> PyResult<Option<usize>> {
    match maxsize {
        None => Ok(None),
        Some(m) if m <= 0 => Ok(None),
        Some(m) => match usize::try_from(m) {
            Ok(m) if m <= MAX_MAXSIZE => Ok(Some(m)),
            _ => Err(PyValueError::new_err(format!(
                "maxsize must be at most {MAX_MAXSIZE}, got {m}"
            ))),
        },
    }
}

/// `item_size=` as given: 1 to [`MAX_ITEM_SIZE`], or `None` (the file's,
/// or the default).
fn item_size_arg(item_size: Option<i64>) -> PyResult<Option<usize>> {
    match item_size {
        None => Ok(None),
        Some(s) => match usize::try_from(s) {
            Ok(s) if (1..=MAX_ITEM_SIZE).contains(&s) => Ok(Some(s)),
            _ => Err(PyValueError::new_err(format!(
                "item_size must be 1 to {MAX_ITEM_SIZE} bytes, got {s}"
            ))),
        },
    }
}

/// The first argument of the constructors: a name (`str`), `None` (a
/// made-up name), or an `int`, read as `maxsize` so that
/// `multiprocessing.Queue(10)` ports unchanged.
fn name_arg(
    name: Option<&Bound<'_, PyAny>>,
    maxsize: Option<i64>,
    flavor: Flavor,
) -> PyResult<(Option<String>, Option<i64>)> {
    let Some(name) = name.filter(|n| !n.is_none()) else {
        return Ok((None, maxsize));
    };
    if let Ok(s) = name.cast::<PyString>() {
        return Ok((Some(s.extract::<String>()?), maxsize));
    }
    if name.is_instance_of::<PyInt>() && !name.is_instance_of::<pyo3::types::PyBool>() {
        if maxsize.is_some() {
            return Err(PyTypeError::new_err(format!(
                "{}() got maxsize twice: a name comes first, as in {}(\"jobs\", maxsize=10)",
                flavor.name(),
                flavor.name()
            )));
        }
        return Ok((None, Some(name.extract()?)));
    }
    Err(PyTypeError::new_err(format!(
        "{}() takes a name (str) first, as in {}(\"jobs\", maxsize=10), not {}",
        flavor.name(),
        flavor.name(),
        name.get_type().name()?
    )))
}

/// Opens the queue at `target` or creates it: an existing file is
/// attached as it is (never reset) if it is of `flavor`'s kind and has the
/// shape asked for (a shape not given is whatever the file has); a new one
/// gets the shape asked for or the defaults.
fn open_or_create(
    target: &Target,
    flavor: Flavor,
    maxsize: Option<usize>,
    item_size: Option<usize>,
) -> PyResult<ByteQueue> {
    let path = &target.path;
    // Creation is atomic (a complete file is linked under the name), so a
    // lost race to create means a complete queue is there to open; two
    // rounds cover "absent, then created by another process".
    let mut last = None;
    for _ in 0..3 {
        match flavor.opener()(path) {
            Ok(q) => {
                check_shape(target, flavor, &q, maxsize, item_size)?;
                return Ok(q);
            }
            Err(OpenError::NotFound { .. }) => {}
            Err(e) => return Err(open_error(e)),
        }
        let bound = maxsize.unwrap_or(DEFAULT_MAXSIZE);
        let opts = QueueOptions::new().bound(bound).joinable(flavor.joinable());
        match ByteQueue::create(
            path,
            bound.next_power_of_two(),
            item_size.unwrap_or(DEFAULT_ITEM_SIZE),
            &opts,
        ) {
            Ok(q) => return Ok(q),
            Err(e @ OpenError::AlreadyExists { .. }) => last = Some(e),
            Err(e) => return Err(open_error(e)),
        }
    }
    Err(open_error(last.expect("the loop ran")))
}

/// Refuses an existing queue whose shape differs from the one asked for,
/// naming both in the constructor's terms.
fn check_shape(
    target: &Target,
    flavor: Flavor,
    q: &ByteQueue,
    maxsize: Option<usize>,
    item_size: Option<usize>,
) -> PyResult<()> {
    let found = (q.bound(), q.max_len());
    let asked = (maxsize.unwrap_or(found.0), item_size.unwrap_or(found.1));
    if asked == found {
        return Ok(());
    }
    Err(Error::new_err(format!(
        "{} {:?} ({}) exists with maxsize={}, item_size={}; asked for maxsize={}, \
         item_size={} (give no shape to open it as it is, or remove it first)",
        flavor.name(),
        target.name,
        target.path.display(),
        found.0,
        found.1,
        asked.0,
        asked.1
    )))
}

thread_local! {
    /// The buffer `get` pops into, kept per thread so a get allocates
    /// nothing but the bytes object it returns. Taken out while in use (a
    /// signal handler that runs between two wait slices may `get` too).
    static BUFFER: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// Runs `f` over a buffer of `len` bytes (contents unspecified).
fn with_buffer<R>(len: usize, f: impl FnOnce(&mut [u8]) -> R) -> R {
    let mut buf = BUFFER.with(Cell::take);
    if buf.len() < len {
        buf.resize(len, 0);
    }
    let out = f(&mut buf[..len]);
    BUFFER.with(|b| b.set(buf));
    out
}

/// How long a blocking `get` that found the queue empty (or `put` that
/// found it full) keeps trying with the GIL held before it releases the
/// GIL and sleeps. A producer in
/// another process that is slower than this consumer (pickling costs more
/// than unpickling) leaves the queue empty after almost every item; going
/// to sleep each time would cost a GIL hand-off, a fence system call and a
/// futex wake per item, many times the item's own cost.
const SPIN: std::time::Duration = std::time::Duration::from_micros(20);

/// Tries `try_pop_into` for up to [`SPIN`]: `Some(Ok(len))`, `Some(Err(()))`
/// once closed and drained, `None` if still empty.
fn spin_pop(q: &ByteQueue, buf: &mut [u8]) -> Option<Result<usize, ()>> {
    let start = std::time::Instant::now();
    loop {
        for _ in 0..64 {
            match q.try_pop_into(buf) {
                Ok(n) => return Some(Ok(n)),
                Err(TryPopError::Closed) => return Some(Err(())),
                Err(TryPopError::Empty) => std::hint::spin_loop(),
            }
        }
        if start.elapsed() >= SPIN {
            return None;
        }
        std::thread::yield_now();
    }
}

/// Tries `try_push` for up to [`SPIN`] (a consumer slower than this
/// producer leaves the queue full after almost every item): `Some(true)`
/// once pushed, `Some(false)` once closed, `None` if still full.
fn spin_push(q: &ByteQueue, data: &[u8]) -> Option<bool> {
    let start = std::time::Instant::now();
    loop {
        for _ in 0..64 {
            match q.try_push(data) {
                Ok(()) => return Some(true),
                Err(ByteTryPushError::Closed) => return Some(false),
                Err(_) => std::hint::spin_loop(),
            }
        }
        if start.elapsed() >= SPIN {
            return None;
        }
        std::thread::yield_now();
    }
}

/// Runs `f` over the bytes of a bytes-like object (`bytes` without a
/// copy; `bytearray`, `memoryview` and other buffers copied once).
fn with_bytes<R>(obj: &Bound<'_, PyAny>, f: impl FnOnce(&[u8]) -> PyResult<R>) -> PyResult<R> {
    if let Ok(b) = obj.cast::<PyBytes>() {
        return f(b.as_bytes());
    }
    // The buffer protocol is not in the limited API before 3.11:
    // `memoryview` takes exactly the bytes-like objects.
    let py = obj.py();
    let view = py
        .import("builtins")?
        .getattr("memoryview")?
        .call1((obj,))
        .map_err(|_| {
            PyTypeError::new_err(format!(
                "a bytes-like object is required, not '{}'",
                obj.get_type()
                    .name()
                    .map_or_else(|_| "?".to_owned(), |n| n.to_string())
            ))
        })?;
    let copy = view.call_method0("tobytes")?.cast_into::<PyBytes>()?;
    f(copy.as_bytes())
}

/// What every queue class holds: the per-process handle and which class
/// it is.
struct Core {
    local: Local<ByteQueue>,
    flavor: Flavor,
}

impl Core {
    fn create(
        name: Option<&str>,
        flavor: Flavor,
        maxsize: Option<usize>,
        item_size: Option<usize>,
    ) -> PyResult<Self> {
        let target = Target::new(name, "queue")?;
        let q = open_or_create(&target, flavor, maxsize, item_size)?;
        Ok(Self {
            local: Local::opened(target, q, flavor.opener()),
            flavor,
        })
    }

    fn open(name: &str, flavor: Flavor) -> PyResult<Self> {
        let target = Target::named(name)?;
        let q = flavor.opener()(&target.path).map_err(open_error)?;
        Ok(Self {
            local: Local::opened(target, q, flavor.opener()),
            flavor,
        })
    }

    fn attach(name: &str, flavor: Flavor) -> PyResult<Self> {
        Ok(Self {
            local: Local::lazy(Target::named(name)?, flavor.opener()),
            flavor,
        })
    }

    fn q(&self) -> PyResult<std::sync::Arc<ByteQueue>> {
        self.local.get(self.flavor.name())
    }

    fn shut_down(&self, py: Python<'_>) -> PyErr {
        shutdown_err(
            py,
            &format!(
                "{} {:?} was shut down",
                self.flavor.name(),
                self.local.target.name
            ),
        )
    }

    /// Pushes `data`: at once if there is room; else `Full` (not `block`),
    /// or waits for room up to `timeout`.
    fn put(&self, py: Python<'_>, data: &[u8], block: bool, timeout: Option<f64>) -> PyResult<()> {
        let q = self.q()?;
        if data.len() > q.max_len() {
            return Err(PyValueError::new_err(format!(
                "an item of {} bytes does not fit {} {:?}, whose item_size is {} bytes \
                 (nothing was put; create the queue with a larger item_size, at most {})",
                data.len(),
                self.flavor.name(),
                self.local.target.name,
                q.max_len(),
                MAX_ITEM_SIZE
            )));
        }
        match q.try_push(data) {
            Ok(()) => return Ok(()),
            Err(ByteTryPushError::Closed) => return Err(self.shut_down(py)),
            Err(ByteTryPushError::Full) if !block => return Err(Full::new_err(())),
            Err(ByteTryPushError::Full) => {}
            Err(ByteTryPushError::TooLong { .. }) => unreachable!("the length was checked"),
        }
        match spin_push(&q, data) {
            Some(true) => return Ok(()),
            Some(false) => return Err(self.shut_down(py)),
            None => {}
        }
        let timeout = timeout_arg(timeout)?;
        let q = &*q;
        let done = wait_for(py, timeout, |slice| match q.push_timeout(data, slice) {
            Ok(()) => Some(true),
            Err(BytePushTimeoutError::Timeout) => None,
            Err(_) => Some(false),
        })?;
        match done {
            Some(true) => Ok(()),
            Some(false) => Err(self.shut_down(py)),
            None => Err(Full::new_err(())),
        }
    }

    /// Pops a message and hands its bytes to `f`: at once if there is one;
    /// else `Empty` (not `block`), or waits up to `timeout`; `ShutDown`
    /// once shut down and drained.
    fn get<R>(
        &self,
        py: Python<'_>,
        block: bool,
        timeout: Option<f64>,
        f: impl FnOnce(&[u8]) -> PyResult<R>,
    ) -> PyResult<R> {
        let q = self.q()?;
        let timeout = if block { timeout_arg(timeout)? } else { None };
        let q = &*q;
        with_buffer(q.max_len(), |buf| {
            let mut got = match q.try_pop_into(buf) {
                Ok(n) => Some(Ok(n)),
                Err(TryPopError::Closed) => Some(Err(())),
                Err(TryPopError::Empty) if !block => return Err(Empty::new_err(())),
                Err(TryPopError::Empty) => None,
            };
            if got.is_none() {
                got = spin_pop(q, buf);
            }
            let got = match got {
                Some(got) => Some(got),
                None => wait_for(py, timeout, |slice| {
                    match q.pop_into_timeout(&mut *buf, slice) {
                        Ok(n) => Some(Ok(n)),
                        Err(PopTimeoutError::Timeout) => None,
                        Err(_) => Some(Err(())),
                    }
                })?,
            };
            match got {
                Some(Ok(n)) => f(&buf[..n]),
                Some(Err(())) => Err(self.shut_down(py)),
                None => Err(Empty::new_err(())),
            }
        })
    }

    /// `shutdown(immediate)`: closes the queue for every process; with
    /// `immediate`, also throws away what is queued (counting those tasks
    /// done).
    fn shutdown(&self, py: Python<'_>, immediate: bool) -> PyResult<()> {
        let q = self.q()?;
        q.close();
        if immediate {
            let q = &*q;
            py.detach(|| {
                with_buffer(q.max_len(), |buf| {
                    while q.try_pop_into(buf).is_ok() {
                        if q.is_joinable() {
                            let _ = q.task_done();
                        }
                    }
                })
            });
        }
        Ok(())
    }

    fn repr(&self) -> String {
        format!(
            "mmring.{}({:?})",
            self.flavor.name(),
            self.local.target.name
        )
    }

    fn reduce<'py>(
        slf: &Bound<'py, PyAny>,
        path: String,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyTuple>)> {
        let attach = slf.get_type().getattr("_attach")?;
        Ok((attach, PyTuple::new(slf.py(), [path])?))
    }
}

/// A queue that any number of processes put to and get from, as
/// ``multiprocessing.Queue``, with no lock and no feeder thread.
///
/// ``Queue(name, maxsize=None, item_size=None)`` creates the queue or opens
/// the one already there (never resetting it: queued items stay). The
/// shape applies when the file is created; opening an existing queue with
/// a ``maxsize`` or ``item_size`` that differs from its own raises
/// ``mmring.Error`` (give neither to take whatever it has).
///
/// - ``maxsize``: the most items held at once; ``put`` blocks (or raises
///   ``queue.Full``) at exactly that many. ``None``, 0 or less (what means
///   "unbounded" to ``multiprocessing``) mean 1024: the queue lives in a
///   file of fixed size, so it always has a bound. At most 2**31.
/// - ``item_size``: the longest item, pickled, in bytes (default 4096, at
///   most 65536); a larger one is refused by ``put`` with ``ValueError``.
///   The file takes about ``maxsize`` (rounded up to a power of two) times
///   ``item_size + 24`` bytes.
/// - ``name``: a bare name lives under ``/dev/shm``, a path with a slash
///   is used as given; ``None`` makes one up (the file is removed when the
///   object is collected in the process that made it). An ``int`` first
///   argument is taken as ``maxsize``, so ``Queue(10)`` works as in
///   ``multiprocessing``.
///
/// ``shutdown()`` ends the queue for every process: ``put`` raises
/// ``mmring.ShutDown`` at once, ``get`` returns what is left, then raises
/// it (no ``None`` sentinel per consumer). ``close()`` lets go of this
/// handle only.
#[pyclass(module = "mmring", frozen, subclass)]
pub struct Queue {
    core: Core,
}

#[pymethods]
impl Queue {
    #[new]
    #[pyo3(signature = (name=None, maxsize=None, item_size=None))]
    fn new(
        name: Option<&Bound<'_, PyAny>>,
        maxsize: Option<i64>,
        item_size: Option<i64>,
    ) -> PyResult<Self> {
        Self::make(name, maxsize, item_size, Flavor::Queue)
    }

    /// Opens an existing queue (whatever its shape); ``FileNotFoundError``
    /// if there is none, ``mmring.WrongKindError`` if the name holds
    /// something else (a ``JoinableQueue`` too: open it as one).
    #[classmethod]
    fn open(_cls: &Bound<'_, PyType>, name: &str) -> PyResult<Self> {
        Ok(Self {
            core: Core::open(name, Flavor::Queue)?,
        })
    }

    /// The queue at ``name``, opened on first use (what unpickling makes).
    #[staticmethod]
    fn _attach(name: &str) -> PyResult<Self> {
        Ok(Self {
            core: Core::attach(name, Flavor::Queue)?,
        })
    }

    /// Puts ``obj`` (pickled, protocol 5) at the end of the queue. Waits
    /// for room while the queue holds ``maxsize`` items (for ever, or up to
    /// ``timeout`` seconds), then raises ``queue.Full``; with
    /// ``block=False``, raises it at once. ``ValueError`` if the pickled
    /// item is longer than ``item_size`` (nothing is put);
    /// ``mmring.ShutDown`` once the queue was shut down.
    #[pyo3(signature = (obj, block=true, timeout=None))]
    fn put(
        &self,
        py: Python<'_>,
        obj: &Bound<'_, PyAny>,
        block: bool,
        timeout: Option<f64>,
    ) -> PyResult<()> {
        let data = dumps(obj)?;
        self.core.put(py, data.as_bytes(), block, timeout)
    }

    /// Removes and returns the oldest item (unpickled). Waits while the
    /// queue is empty (for ever, or up to ``timeout`` seconds), then raises
    /// ``queue.Empty``; with ``block=False``, raises it at once. Once the
    /// queue was shut down, returns what is left, then raises
    /// ``mmring.ShutDown``.
    #[pyo3(signature = (block=true, timeout=None))]
    fn get<'py>(
        &self,
        py: Python<'py>,
        block: bool,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.core.get(py, block, timeout, |b| loads(py, b))
    }

    /// ``put(obj, block=False)``.
    fn put_nowait(&self, py: Python<'_>, obj: &Bound<'_, PyAny>) -> PyResult<()> {
        self.put(py, obj, false, None)
    }

    /// ``get(block=False)``.
    fn get_nowait<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.get(py, false, None)
    }

    /// Puts a bytes-like object as it is (no pickling), as ``put`` does
    /// an object; ``get_bytes`` takes it out. Up to ``item_size`` bytes.
    #[pyo3(signature = (data, block=true, timeout=None))]
    fn put_bytes(
        &self,
        py: Python<'_>,
        data: &Bound<'_, PyAny>,
        block: bool,
        timeout: Option<f64>,
    ) -> PyResult<()> {
        with_bytes(data, |b| self.core.put(py, b, block, timeout))
    }

    /// Removes and returns the oldest item as ``bytes`` (no unpickling),
    /// as ``get`` does.
    #[pyo3(signature = (block=true, timeout=None))]
    fn get_bytes<'py>(
        &self,
        py: Python<'py>,
        block: bool,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        self.core
            .get(py, block, timeout, |b| Ok(PyBytes::new(py, b)))
    }

    /// Items in the queue now (a snapshot, out of date as soon as it
    /// returns; puts still being written are not counted). Never above
    /// ``maxsize``.
    fn qsize(&self) -> PyResult<usize> {
        Ok(self.core.q()?.len())
    }

    /// Whether the queue holds no item now (a snapshot).
    fn empty(&self) -> PyResult<bool> {
        Ok(self.core.q()?.is_empty())
    }

    /// Whether the queue holds ``maxsize`` items now, so that ``put``
    /// would wait (a snapshot).
    fn full(&self) -> PyResult<bool> {
        Ok(self.core.q()?.is_full())
    }

    /// The most items the queue holds at once (fixed at creation).
    #[getter]
    fn maxsize(&self) -> PyResult<usize> {
        Ok(self.core.q()?.bound())
    }

    /// The longest item, pickled, in bytes (fixed at creation).
    #[getter]
    fn item_size(&self) -> PyResult<usize> {
        Ok(self.core.q()?.max_len())
    }

    /// Shuts the queue down for every process (``queue.Queue.shutdown``):
    /// ``put`` raises ``mmring.ShutDown`` from now on; ``get`` returns
    /// what is left, then raises it; blocked calls wake. Final: a queue
    /// cannot be reopened for puts. With ``immediate=True``, the items
    /// still queued are thrown away (for a ``JoinableQueue``, counted as
    /// done), so getters raise ``ShutDown`` at once (a getter running at
    /// the same time may still get some of them).
    #[pyo3(signature = (immediate=false))]
    fn shutdown(&self, py: Python<'_>, immediate: bool) -> PyResult<()> {
        self.core.shutdown(py, immediate)
    }

    /// Whether the queue was shut down (by any process).
    #[getter]
    fn is_shutdown(&self) -> PyResult<bool> {
        Ok(self.core.q()?.is_closed())
    }

    /// Lets go of this process's handle; this object's later calls raise
    /// ``ValueError``. The queue itself and every other handle (other
    /// processes, other objects) go on; see ``shutdown`` to end it. Items
    /// already put are in the queue: nothing is left to flush.
    fn close(&self) {
        self.core.local.close();
    }

    /// Does nothing (``multiprocessing.Queue.join_thread``): there is no
    /// feeder thread; a ``put`` that returned is in the queue.
    fn join_thread(&self) {}

    /// Does nothing (``multiprocessing.Queue.cancel_join_thread``): there
    /// is no feeder thread to wait for at exit.
    fn cancel_join_thread(&self) {}

    /// The name given at creation.
    #[getter]
    fn name(&self) -> &str {
        &self.core.local.target.name
    }

    /// The file's path.
    #[getter]
    fn path(&self) -> String {
        self.core.local.target.path_str()
    }

    fn __reduce__<'py>(
        slf: &Bound<'py, Self>,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyTuple>)> {
        Core::reduce(slf.as_any(), slf.get().core.local.target.shared_path())
    }

    fn __repr__(&self) -> String {
        self.core.repr()
    }
}

impl Queue {
    fn make(
        name: Option<&Bound<'_, PyAny>>,
        maxsize: Option<i64>,
        item_size: Option<i64>,
        flavor: Flavor,
    ) -> PyResult<Self> {
        let (name, maxsize) = name_arg(name, maxsize, flavor)?;
        let core = Core::create(
            name.as_deref(),
            flavor,
            maxsize_arg(maxsize)?,
            item_size_arg(item_size)?,
        )?;
        Ok(Self { core })
    }
}

/// A ``Queue`` that counts its items until they are marked done, as
/// ``multiprocessing.JoinableQueue``: ``task_done()`` after processing an
/// item got, ``join()`` waits until every item put was marked done.
///
/// ``JoinableQueue(name, maxsize=None, item_size=None)``: as ``Queue``.
/// A name that holds a plain ``Queue`` is refused with
/// ``mmring.WrongKindError`` (and the other way round). A consumer that
/// dies between ``get`` and ``task_done`` leaves its item unfinished for
/// good: give ``join`` a timeout where workers may die.
#[pyclass(module = "mmring", frozen, extends = Queue)]
pub struct JoinableQueue {}

#[pymethods]
impl JoinableQueue {
    #[new]
    #[pyo3(signature = (name=None, maxsize=None, item_size=None))]
    fn new(
        name: Option<&Bound<'_, PyAny>>,
        maxsize: Option<i64>,
        item_size: Option<i64>,
    ) -> PyResult<PyClassInitializer<Self>> {
        let base = Queue::make(name, maxsize, item_size, Flavor::Joinable)?;
        Ok(PyClassInitializer::from(base).add_subclass(Self {}))
    }

    /// Opens an existing joinable queue; ``FileNotFoundError`` if there is
    /// none, ``mmring.WrongKindError`` if the name holds something else
    /// (a plain ``Queue`` too).
    #[classmethod]
    fn open<'py>(cls: &Bound<'py, PyType>, name: &str) -> PyResult<Bound<'py, Self>> {
        let base = Queue {
            core: Core::open(name, Flavor::Joinable)?,
        };
        Bound::new(
            cls.py(),
            PyClassInitializer::from(base).add_subclass(Self {}),
        )
    }

    /// The joinable queue at ``name``, opened on first use (what
    /// unpickling makes).
    #[staticmethod]
    fn _attach<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, Self>> {
        let base = Queue {
            core: Core::attach(name, Flavor::Joinable)?,
        };
        Bound::new(py, PyClassInitializer::from(base).add_subclass(Self {}))
    }

    /// Marks one item got as processed. ``ValueError`` if called more
    /// times than items were put.
    fn task_done(slf: &Bound<'_, Self>) -> PyResult<()> {
        match slf.as_super().get().core.q()?.task_done() {
            Ok(()) => Ok(()),
            Err(TaskError::TooManyDone) => {
                Err(PyValueError::new_err("task_done() called too many times"))
            }
            Err(e) => Err(Error::new_err(e.to_string())),
        }
    }

    /// Waits until every item put has been marked done by ``task_done``
    /// (for ever, or up to ``timeout`` seconds); ``True`` if they all
    /// were, ``False`` on timeout.
    #[pyo3(signature = (timeout=None))]
    fn join(slf: &Bound<'_, Self>, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        let timeout = timeout_arg(timeout)?;
        let base = slf.as_super().get();
        let q = base.core.q()?;
        if q.unfinished() == 0 {
            return Ok(true);
        }
        let q = &*q;
        let done = wait_for(py, timeout, |slice| match q.join_timeout(slice) {
            Ok(()) => Some(Ok(())),
            Err(JoinTimeoutError::Timeout(_)) => None,
            Err(e) => Some(Err(e)),
        })?;
        match done {
            Some(Ok(())) => Ok(true),
            Some(Err(e)) => Err(Error::new_err(e.to_string())),
            None => Ok(false),
        }
    }

    /// Items put and not yet marked done (a snapshot).
    #[getter]
    fn unfinished_tasks(slf: &Bound<'_, Self>) -> PyResult<u64> {
        Ok(slf.as_super().get().core.q()?.unfinished())
    }
}

/// A queue with ``multiprocessing.SimpleQueue``'s few calls: ``put``,
/// ``get`` (both blocking), ``empty`` and ``close``, over the same file as
/// a ``Queue`` (a ``SimpleQueue`` may open a ``Queue``'s name, and the
/// other way round).
///
/// ``SimpleQueue(name=None, maxsize=None, item_size=None)``: as ``Queue``
/// (``put`` waits while ``maxsize`` items are queued, as
/// ``multiprocessing``'s waits while its pipe is full).
#[pyclass(module = "mmring", frozen)]
pub struct SimpleQueue {
    core: Core,
}

#[pymethods]
impl SimpleQueue {
    #[new]
    #[pyo3(signature = (name=None, maxsize=None, item_size=None))]
    fn new(
        name: Option<&Bound<'_, PyAny>>,
        maxsize: Option<i64>,
        item_size: Option<i64>,
    ) -> PyResult<Self> {
        let flavor = Flavor::Simple;
        let (name, maxsize) = name_arg(name, maxsize, flavor)?;
        Ok(Self {
            core: Core::create(
                name.as_deref(),
                flavor,
                maxsize_arg(maxsize)?,
                item_size_arg(item_size)?,
            )?,
        })
    }

    /// Opens an existing queue; ``FileNotFoundError`` if there is none.
    #[classmethod]
    fn open(_cls: &Bound<'_, PyType>, name: &str) -> PyResult<Self> {
        Ok(Self {
            core: Core::open(name, Flavor::Simple)?,
        })
    }

    /// The queue at ``name``, opened on first use (what unpickling makes).
    #[staticmethod]
    fn _attach(name: &str) -> PyResult<Self> {
        Ok(Self {
            core: Core::attach(name, Flavor::Simple)?,
        })
    }

    /// Puts ``obj`` (pickled), waiting while the queue is full.
    /// ``ValueError`` if the pickled item is longer than ``item_size``;
    /// ``mmring.ShutDown`` if the queue was shut down (through a ``Queue``
    /// on the same name).
    fn put(&self, py: Python<'_>, obj: &Bound<'_, PyAny>) -> PyResult<()> {
        let data = dumps(obj)?;
        self.core.put(py, data.as_bytes(), true, None)
    }

    /// Removes and returns the oldest item, waiting while there is none.
    fn get<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.core.get(py, true, None, |b| loads(py, b))
    }

    /// Whether the queue holds no item now (a snapshot).
    fn empty(&self) -> PyResult<bool> {
        Ok(self.core.q()?.is_empty())
    }

    /// Lets go of this process's handle (later calls raise ``ValueError``);
    /// the queue goes on for everyone else.
    fn close(&self) {
        self.core.local.close();
    }

    /// The name given at creation.
    #[getter]
    fn name(&self) -> &str {
        &self.core.local.target.name
    }

    /// The file's path.
    #[getter]
    fn path(&self) -> String {
        self.core.local.target.path_str()
    }

    fn __reduce__<'py>(
        slf: &Bound<'py, Self>,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyTuple>)> {
        Core::reduce(slf.as_any(), slf.get().core.local.target.shared_path())
    }

    fn __repr__(&self) -> String {
        self.core.repr()
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Queue>()?;
    m.add_class::<JoinableQueue>()?;
    m.add_class::<SimpleQueue>()?;
    Ok(())
}
