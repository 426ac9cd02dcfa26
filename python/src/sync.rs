//! `mmring.Semaphore`, `mmring.BoundedSemaphore`, `mmring.Lock` and
//! `mmring.Barrier`: `multiprocessing`'s synchronization types over the
//! library's semaphore and barrier files.
//!
//! Semaphores: `Semaphore` and `BoundedSemaphore` keep `multiprocessing`'s
//! semantics: a permit taken is taken until someone releases it, even if
//! the process that took it is gone (a semaphore is also a signal channel:
//! one process releases, another acquires and keeps it). `Lock` recovers:
//! it is a bounded semaphore of one permit whose release is refused to a
//! process that does not hold it, so its holder record is exact, and a
//! blocked `acquire` (and a failed non-blocking one) takes back a lock
//! whose holder is gone (killed, or exited holding it): a process killed
//! inside `with lock:` never freezes the others. (The Rust
//! `mmring::Semaphore::acquire` recovers for every semaphore.)
//!
//! Barrier: `threading.Barrier`'s rules. A party arrives once, then waits
//! in slices (the GIL released, signals checked between them) without ever
//! withdrawing its arrival; a timeout, an interrupted wait, a party that
//! died without arriving, or `abort()` breaks the round for every party,
//! until `reset()`.

use mmring::sync::{AtomicU32, Ordering};
use std::path::Path;
use std::sync::{Arc, Mutex, Weak};

use mmring::barrier::BarrierTimeoutError;
use pyo3::exceptions::{PyNotImplementedError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::pyclass_init::PyClassInitializer;
use pyo3::types::{PyTuple, PyType};

use crate::common::{
    BrokenBarrierError, Local, Target, WrongKindError, open_error, timeout_arg, wait_for,
};

/// multiprocessing's message for a release past the bound.
const TOO_MANY: &str = "semaphore or lock released too many times";

fn open_semaphore(path: &Path) -> Result<mmring::Semaphore, mmring::OpenError> {
    mmring::Semaphore::open(path)
}

/// Refuses a semaphore file of another flavour (`bound`: `None` for an
/// unbounded one, `Some(0)` for any bound, `Some(n)` for exactly `n`):
/// `mmring.WrongKindError` naming both, or `ValueError` for a
/// `BoundedSemaphore` of another bound (a shape, as a `Queue`'s size).
fn check_bound(
    s: &mmring::Semaphore,
    target: &Target,
    class: &str,
    bound: Option<u64>,
) -> PyResult<()> {
    let max = s.words().max();
    let ok = match bound {
        None => max == 0,
        Some(0) => max != 0,
        Some(n) => max == n,
    };
    if ok {
        return Ok(());
    }
    let found = match max {
        0 => "an unbounded Semaphore".to_string(),
        1 => "a Lock or a BoundedSemaphore of 1".to_string(),
        n => format!("a BoundedSemaphore of {n}"),
    };
    let asked = match bound {
        Some(n) if n > 0 && class == "BoundedSemaphore" => format!("{class} of {n}"),
        _ => class.to_string(),
    };
    let msg = format!("{:?} holds {found}, not a {asked}", target.name);
    Err(if max != 0 && class == "BoundedSemaphore" {
        PyValueError::new_err(msg)
    } else {
        WrongKindError::new_err(msg)
    })
}

/// `__new__`'s open-or-create: a file of another flavour is refused by
/// [`check_bound`] (the library answers `InvalidCapacity` for it).
fn open_or_create(
    target: &Target,
    class: &str,
    bound: Option<u64>,
    make: impl FnOnce(&Path) -> Result<mmring::Semaphore, mmring::OpenError>,
) -> PyResult<mmring::Semaphore> {
    match make(&target.path) {
        Ok(s) => Ok(s),
        Err(e @ mmring::OpenError::InvalidCapacity { .. }) => {
            // Not for a bounded semaphore of 0 permits (refused before
            // the file is looked at).
            if bound != Some(0)
                && let Ok(s) = open_semaphore(&target.path)
            {
                check_bound(&s, target, class, bound)?;
            }
            Err(open_error(e))
        }
        Err(e) => Err(open_error(e)),
    }
}

/// `acquire(block, timeout)` for every semaphore class; `recover`: give
/// back the permits of processes that are gone (`Lock` only).
fn acquire(
    py: Python<'_>,
    local: &Local<mmring::Semaphore>,
    kind: &str,
    recover: bool,
    block: bool,
    timeout: Option<f64>,
) -> PyResult<bool> {
    let timeout = if block { timeout_arg(timeout)? } else { None };
    let s = local.get(kind)?;
    if s.try_acquire() {
        return Ok(true);
    }
    // A lock held by a dead process is given back even to a caller that
    // does not wait (a blocked acquire does this every 50 ms).
    if recover && s.recover_dead_holders() > 0 && s.try_acquire() {
        return Ok(true);
    }
    if !block {
        return Ok(false);
    }
    let s = &*s;
    Ok(wait_for(py, timeout, |slice| {
        let got = if recover {
            s.acquire_timeout(slice)
        } else {
            s.acquire_timeout_without_recovery(slice)
        };
        got.then_some(())
    })?
    .is_some())
}

fn reduce<'py, T: pyo3::PyClass>(
    slf: &Bound<'py, T>,
    path: String,
) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyTuple>)> {
    let attach = slf.as_any().get_type().getattr("_attach")?;
    Ok((attach, PyTuple::new(slf.py(), [path])?))
}

fn initial_value(value: i64) -> PyResult<u64> {
    u64::try_from(value).map_err(|_| PyValueError::new_err("semaphore initial value must be >= 0"))
}

/// A counting semaphore shared by processes, as ``multiprocessing.Semaphore``.
///
/// ``Semaphore("slots", 3)`` creates the file with 3 permits, or opens the
/// one already there (its permits now are kept: ``value`` applies only when
/// the file is created). ``Semaphore.open("slots")`` opens only.
///
/// As ``multiprocessing``'s, a permit taken stays taken until someone
/// releases it, whichever process that is: a semaphore can *signal* (one
/// process releases, another acquires and keeps the permit). So permits
/// held by a process that exits or is killed are not given back (a
/// ``Lock``'s are). ``mmring.WrongKindError`` if the name holds a
/// ``Lock`` or a ``BoundedSemaphore``.
#[pyclass(module = "mmring", frozen, subclass)]
pub struct Semaphore {
    local: Local<mmring::Semaphore>,
    /// The class's name, in messages and `repr`: `"Semaphore"` or
    /// `"BoundedSemaphore"`.
    kind: &'static str,
}

impl Semaphore {
    fn opened(target: Target, handle: mmring::Semaphore, kind: &'static str) -> Self {
        Self {
            local: Local::opened(target, handle, open_semaphore),
            kind,
        }
    }

    fn attached(name: &str, kind: &'static str) -> PyResult<Self> {
        Ok(Self {
            local: Local::lazy(Target::named(name)?, open_semaphore),
            kind,
        })
    }
}

#[pymethods]
impl Semaphore {
    #[new]
    #[pyo3(signature = (name=None, value=1))]
    fn new(name: Option<&str>, value: i64) -> PyResult<Self> {
        let value = initial_value(value)?;
        let target = Target::new(name, "semaphore")?;
        let handle = open_or_create(&target, "Semaphore", None, |p| {
            mmring::Semaphore::open_or_create(p, value)
        })?;
        Ok(Self::opened(target, handle, "Semaphore"))
    }

    /// Opens an existing semaphore; ``FileNotFoundError`` if there is none,
    /// ``mmring.WrongKindError`` if it is bounded.
    #[classmethod]
    fn open(_cls: &Bound<'_, PyType>, name: &str) -> PyResult<Self> {
        let target = Target::named(name)?;
        let handle = open_semaphore(&target.path).map_err(open_error)?;
        check_bound(&handle, &target, "Semaphore", None)?;
        Ok(Self::opened(target, handle, "Semaphore"))
    }

    /// The semaphore at ``name``, opened on first use (what unpickling makes).
    #[staticmethod]
    fn _attach(name: &str) -> PyResult<Self> {
        Self::attached(name, "Semaphore")
    }

    /// Takes a permit; waits (the GIL released) while none is free, for at
    /// most ``timeout`` seconds (``None``: for ever). ``block=False`` never
    /// waits. Returns whether a permit was taken.
    #[pyo3(signature = (block=true, timeout=None))]
    fn acquire(&self, py: Python<'_>, block: bool, timeout: Option<f64>) -> PyResult<bool> {
        acquire(py, &self.local, self.kind, false, block, timeout)
    }

    /// Gives a permit back and wakes a waiter; for a ``BoundedSemaphore``,
    /// ``ValueError`` if every permit is already free (nothing changes then).
    fn release(&self) -> PyResult<()> {
        self.local
            .get(self.kind)?
            .release()
            .map_err(|_| PyValueError::new_err(TOO_MANY))
    }

    /// The number of free permits now (a snapshot).
    fn get_value(&self) -> PyResult<u64> {
        Ok(self.local.get(self.kind)?.available())
    }

    fn __enter__(&self, py: Python<'_>) -> PyResult<bool> {
        self.acquire(py, true, None)
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, _args: &Bound<'_, PyTuple>) -> PyResult<()> {
        self.release()
    }

    /// The name given at creation.
    #[getter]
    fn name(&self) -> &str {
        &self.local.target.name
    }

    /// The file's path.
    #[getter]
    fn path(&self) -> String {
        self.local.target.path_str()
    }

    fn __reduce__<'py>(
        slf: &Bound<'py, Self>,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyTuple>)> {
        reduce(slf, slf.get().local.target.shared_path())
    }

    fn __repr__(&self) -> String {
        let value = self
            .local
            .get(self.kind)
            .map_or_else(|_| "closed".to_string(), |s| s.available().to_string());
        format!(
            "mmring.{}({:?}, value={value})",
            self.kind, self.local.target.name
        )
    }
}

/// A semaphore whose permits never exceed the initial value, as
/// ``multiprocessing.BoundedSemaphore`` (a subclass of ``Semaphore``, as
/// there): a release past it raises ``ValueError``.
///
/// ``BoundedSemaphore("b", 2)`` creates the file or opens the one already
/// there (with the same bound, else ``ValueError``; its permits now are
/// kept; ``mmring.WrongKindError`` if it holds an unbounded ``Semaphore``).
/// As ``Semaphore`` (and ``multiprocessing``), permits held by a process
/// that exits or is killed are not given back: a release need not come
/// from the process that acquired, so nothing tells a permit lost from one
/// handed on. Use a ``Lock`` where a dead holder must be recovered.
#[pyclass(module = "mmring", frozen, extends = Semaphore)]
pub struct BoundedSemaphore {}

impl BoundedSemaphore {
    fn wrap(py: Python<'_>, base: Semaphore) -> PyResult<Bound<'_, Self>> {
        Bound::new(py, PyClassInitializer::from(base).add_subclass(Self {}))
    }
}

#[pymethods]
impl BoundedSemaphore {
    #[new]
    #[pyo3(signature = (name=None, value=1))]
    fn new(name: Option<&str>, value: i64) -> PyResult<PyClassInitializer<Self>> {
        let value = initial_value(value)?;
        let target = Target::new(name, "bsemaphore")?;
        let handle = open_or_create(&target, "BoundedSemaphore", Some(value), |p| {
            mmring::Semaphore::open_or_create_bounded(p, value)
        })?;
        let base = Semaphore::opened(target, handle, "BoundedSemaphore");
        Ok(PyClassInitializer::from(base).add_subclass(Self {}))
    }

    /// Opens an existing bounded semaphore; ``FileNotFoundError`` if there
    /// is none, ``mmring.WrongKindError`` if it is unbounded.
    #[classmethod]
    fn open<'py>(cls: &Bound<'py, PyType>, name: &str) -> PyResult<Bound<'py, Self>> {
        let target = Target::named(name)?;
        let handle = open_semaphore(&target.path).map_err(open_error)?;
        check_bound(&handle, &target, "BoundedSemaphore", Some(0))?;
        Self::wrap(
            cls.py(),
            Semaphore::opened(target, handle, "BoundedSemaphore"),
        )
    }

    /// The bounded semaphore at ``name``, opened on first use (what
    /// unpickling makes).
    #[staticmethod]
    fn _attach<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, Self>> {
        Self::wrap(py, Semaphore::attached(name, "BoundedSemaphore")?)
    }
}

/// A lock shared by processes, as ``multiprocessing.Lock``.
///
/// ``Lock("l")`` creates the file (unlocked) or opens the one already
/// there. The lock belongs to the process that acquired it (any of its
/// threads may release it). If that process dies (killed, or exits)
/// holding it, the lock is recovered: the next ``acquire`` that finds it
/// taken gives it back and takes it — no lock a dead process can hold.
///
/// ``release()`` raises ``ValueError`` when this process does not hold the
/// lock: ``"semaphore or lock released too many times"`` when it is free
/// (as ``multiprocessing``), and a message naming the holder when another
/// process holds it (``multiprocessing`` would let it release; mmring
/// refuses, so that the holder's record, which recovery relies on, stays
/// true). The file is a bounded semaphore of one permit: it opens as a
/// ``BoundedSemaphore`` of 1 too (which does not recover); a name holding
/// a ``Semaphore`` or a ``BoundedSemaphore`` of another bound raises
/// ``mmring.WrongKindError``.
#[pyclass(module = "mmring", frozen)]
pub struct Lock {
    local: Local<mmring::Semaphore>,
}

#[pymethods]
impl Lock {
    #[new]
    #[pyo3(signature = (name=None))]
    fn new(name: Option<&str>) -> PyResult<Self> {
        let target = Target::new(name, "lock")?;
        let handle = open_or_create(&target, "Lock", Some(1), |p| {
            mmring::Semaphore::open_or_create_bounded(p, 1)
        })?;
        Ok(Self {
            local: Local::opened(target, handle, open_semaphore),
        })
    }

    /// Opens an existing lock; ``FileNotFoundError`` if there is none,
    /// ``mmring.WrongKindError`` if the name holds another semaphore.
    #[classmethod]
    fn open(_cls: &Bound<'_, PyType>, name: &str) -> PyResult<Self> {
        let target = Target::named(name)?;
        let handle = open_semaphore(&target.path).map_err(open_error)?;
        check_bound(&handle, &target, "Lock", Some(1))?;
        Ok(Self {
            local: Local::opened(target, handle, open_semaphore),
        })
    }

    /// The lock at ``name``, opened on first use (what unpickling makes).
    #[staticmethod]
    fn _attach(name: &str) -> PyResult<Self> {
        Ok(Self {
            local: Local::lazy(Target::named(name)?, open_semaphore),
        })
    }

    /// Takes the lock; waits (the GIL released) while another holds it, for
    /// at most ``timeout`` seconds (``None``: for ever), recovering it if
    /// its holder died. ``block=False`` never waits. Returns whether it
    /// was taken. Not reentrant: a second acquire by the holder waits.
    #[pyo3(signature = (block=true, timeout=None))]
    fn acquire(&self, py: Python<'_>, block: bool, timeout: Option<f64>) -> PyResult<bool> {
        acquire(py, &self.local, "Lock", true, block, timeout)
    }

    /// Releases the lock held by this process; ``ValueError`` if this
    /// process does not hold it (see the class's doc).
    fn release(&self) -> PyResult<()> {
        let s = self.local.get("Lock")?;
        let me = mmring::pid::current();
        let holder = || {
            s.words()
                .holders()
                .into_iter()
                .find(|h| h.0 != me && h.1 > 0)
        };
        let mine = || {
            s.words()
                .holders()
                .into_iter()
                .any(|h| h.0 == me && h.1 > 0)
        };
        if !mine() && holder().is_some() {
            // A dead holder's lock is recovered first: then it is free.
            s.recover_dead_holders();
            if let Some((pid, _)) = holder() {
                return Err(PyValueError::new_err(format!(
                    "Lock {:?} is held by process {pid}, not this one ({me})",
                    self.local.target.name
                )));
            }
        }
        s.release().map_err(|_| PyValueError::new_err(TOO_MANY))
    }

    /// Whether the lock is held now (by any process; a snapshot).
    fn locked(&self) -> PyResult<bool> {
        Ok(self.local.get("Lock")?.available() == 0)
    }

    fn __enter__(&self, py: Python<'_>) -> PyResult<bool> {
        self.acquire(py, true, None)
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, _args: &Bound<'_, PyTuple>) -> PyResult<()> {
        self.release()
    }

    /// The name given at creation.
    #[getter]
    fn name(&self) -> &str {
        &self.local.target.name
    }

    /// The file's path.
    #[getter]
    fn path(&self) -> String {
        self.local.target.path_str()
    }

    fn __reduce__<'py>(
        slf: &Bound<'py, Self>,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyTuple>)> {
        reduce(slf, slf.get().local.target.shared_path())
    }

    fn __repr__(&self) -> String {
        let state = match self.local.get("Lock") {
            Ok(s) if s.available() == 0 => "locked",
            Ok(_) => "unlocked",
            Err(_) => "closed",
        };
        format!("<mmring.Lock({:?}) {state}>", self.local.target.name)
    }
}

/// This process's barrier handles, for the exit hook (weak: a handle
/// collected before exit has unregistered itself).
static PARTIES: Mutex<Vec<Weak<mmring::Barrier>>> = Mutex::new(Vec::new());

/// The pid whose exit hook is registered (0: none yet).
static HOOKED: AtomicU32 = AtomicU32::new(0);

fn open_barrier(path: &Path) -> Result<Arc<mmring::Barrier>, mmring::OpenError> {
    mmring::Barrier::open(path).map(remember)
}

fn remember(b: mmring::Barrier) -> Arc<mmring::Barrier> {
    let b = Arc::new(b);
    let mut parties = PARTIES.lock().unwrap_or_else(|e| e.into_inner());
    parties.retain(|w| w.strong_count() > 0);
    parties.push(Arc::downgrade(&b));
    b
}

/// Registers, once per process, the exit hook that unregisters this
/// process as a party of every barrier it uses
/// (`multiprocessing.util.Finalize`, which runs at a child's normal end
/// and, through `atexit`, at the main process's): a process that exits
/// normally leaves; one that is killed breaks the rounds it misses.
fn hook(py: Python<'_>) -> PyResult<()> {
    let me = mmring::pid::current();
    // Relaxed: a per-process flag; the worst case is two hooks.
    if HOOKED.swap(me, Ordering::Relaxed) != me {
        let leave = py.import("mmring._native")?.getattr("_barrier_exit")?;
        let kwargs = pyo3::types::PyDict::new(py);
        kwargs.set_item("exitpriority", 0)?;
        py.import("multiprocessing.util")?
            .getattr("Finalize")?
            .call((py.None(), leave), Some(&kwargs))?;
    }
    Ok(())
}

/// Unregisters this process from every barrier it holds a handle of (the
/// exit hook).
#[pyfunction]
fn _barrier_exit() {
    let me = mmring::pid::current();
    let parties = PARTIES.lock().unwrap_or_else(|e| e.into_inner());
    for b in parties.iter().filter_map(Weak::upgrade) {
        b.words().unregister(me);
    }
}

fn broken(msg: &str) -> PyErr {
    BrokenBarrierError::new_err(msg.to_owned())
}

fn broken_for(e: BarrierTimeoutError) -> PyErr {
    match e {
        BarrierTimeoutError::Broken { pid } => broken(&format!(
            "party pid {pid} died without arriving: the barrier is broken"
        )),
        BarrierTimeoutError::Aborted => broken(
            "the barrier is broken (a party timed out, was interrupted, died or aborted; or it was reset)",
        ),
        BarrierTimeoutError::Timeout => broken("timed out: the barrier is broken for every party"),
    }
}

/// A barrier for a fixed number of processes, as ``multiprocessing.Barrier``
/// (``threading.Barrier``'s rules).
///
/// ``Barrier("meet", parties=4)`` creates the file or opens the one already
/// there (for the same number of parties; its round in progress is kept).
/// ``Barrier.open("meet")`` opens only. ``timeout`` is the default for
/// ``wait()`` in this handle. ``action`` is not supported (raise
/// ``NotImplementedError``): run it where ``wait()`` returned 0, after the
/// barrier.
///
/// Every process that uses the barrier (by creating, opening, unpickling or
/// inheriting it, on first use) is registered; one that dies without
/// arriving in a round breaks that round, so the others raise
/// ``threading.BrokenBarrierError`` instead of hanging. A process that exits
/// normally is unregistered at exit (``multiprocessing``'s finalizers,
/// ``atexit`` in the main process).
#[pyclass(module = "mmring", frozen)]
pub struct Barrier {
    local: Local<Arc<mmring::Barrier>>,
    timeout: Option<f64>,
}

impl Barrier {
    fn make(local: Local<Arc<mmring::Barrier>>, timeout: Option<f64>) -> PyResult<Self> {
        timeout_arg(timeout)?;
        Ok(Self { local, timeout })
    }

    /// This process's handle (opened, and the process registered as a
    /// party, on its first use here).
    fn handle(&self, py: Python<'_>) -> PyResult<Arc<mmring::Barrier>> {
        let lent = self.local.get("Barrier")?;
        hook(py)?;
        Ok(Arc::clone(&lent))
    }
}

#[pymethods]
impl Barrier {
    #[new]
    #[pyo3(signature = (name=None, parties=None, action=None, timeout=None))]
    fn new(
        py: Python<'_>,
        name: Option<&str>,
        parties: Option<i64>,
        action: Option<&Bound<'_, PyAny>>,
        timeout: Option<f64>,
    ) -> PyResult<Self> {
        if action.is_some_and(|a| !a.is_none()) {
            return Err(PyNotImplementedError::new_err(
                "mmring.Barrier has no action: call it in the process whose wait() returned 0",
            ));
        }
        let Some(parties) = parties else {
            return Err(PyTypeError::new_err(
                "Barrier() needs parties= (use Barrier.open(name) to open an existing one)",
            ));
        };
        let max = mmring::barrier::MAX_PARTIES as i64;
        if !(1..=max).contains(&parties) {
            return Err(PyValueError::new_err(format!(
                "parties must be 1 to {max}, not {parties}"
            )));
        }
        timeout_arg(timeout)?;
        let target = Target::new(name, "barrier")?;
        let handle =
            mmring::Barrier::open_or_create(&target.path, parties as u32).map_err(open_error)?;
        hook(py)?;
        let handle = remember(handle);
        Self::make(Local::opened(target, handle, open_barrier), timeout)
    }

    /// Opens an existing barrier; ``FileNotFoundError`` if there is none.
    #[classmethod]
    #[pyo3(signature = (name, timeout=None))]
    fn open(cls: &Bound<'_, PyType>, name: &str, timeout: Option<f64>) -> PyResult<Self> {
        let target = Target::named(name)?;
        let handle = open_barrier(&target.path).map_err(open_error)?;
        hook(cls.py())?;
        Self::make(Local::opened(target, handle, open_barrier), timeout)
    }

    /// The barrier at ``name``, opened on first use (what unpickling makes).
    #[staticmethod]
    #[pyo3(signature = (name, timeout=None))]
    fn _attach(name: &str, timeout: Option<f64>) -> PyResult<Self> {
        Self::make(Local::lazy(Target::named(name)?, open_barrier), timeout)
    }

    /// Waits (the GIL released) until every party has called ``wait``;
    /// returns this party's arrival index, 0 to ``parties - 1``, distinct in
    /// each round (the last to arrive gets ``parties - 1``).
    ///
    /// Raises ``threading.BrokenBarrierError`` if the round breaks: after
    /// ``timeout`` seconds (``None``: the handle's default) — which breaks
    /// it for every party, as ``threading.Barrier`` does — or when another
    /// party timed out, was interrupted, died without arriving, or called
    /// ``abort()``/``reset()``. A broken barrier refuses every ``wait``
    /// until ``reset()``. A signal that interrupts the wait (Ctrl-C) breaks
    /// the round too, then raises.
    #[pyo3(signature = (timeout=None))]
    fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<u32> {
        let timeout = timeout_arg(timeout.or(self.timeout))?;
        let b = self.handle(py)?;
        let arrival = b.arrive().map_err(broken_for)?;
        if arrival.is_leader {
            return Ok(arrival.index);
        }
        let generation = arrival.generation;
        let b = &*b;
        let waited = wait_for(py, timeout, |slice| {
            match b.await_round(generation, slice) {
                Err(BarrierTimeoutError::Timeout) => None,
                done => Some(done),
            }
        });
        match waited {
            Ok(Some(Ok(()))) => Ok(arrival.index),
            Ok(Some(Err(e))) => Err(broken_for(e)),
            // Gave up: the round breaks for everyone, unless it passed.
            Ok(None) => b
                .break_round(generation)
                .map(|()| arrival.index)
                .map_err(|_| broken_for(BarrierTimeoutError::Timeout)),
            Err(interrupted) => {
                let _ = b.break_round(generation);
                Err(interrupted)
            }
        }
    }

    /// Breaks the barrier: the waiting parties and every later ``wait``
    /// raise ``threading.BrokenBarrierError`` until ``reset()``.
    fn abort(&self, py: Python<'_>) -> PyResult<()> {
        self.handle(py)?.abort();
        Ok(())
    }

    /// Returns the barrier to a fresh round; parties waiting in the round
    /// in progress raise ``threading.BrokenBarrierError``.
    fn reset(&self, py: Python<'_>) -> PyResult<()> {
        self.handle(py)?.reset();
        Ok(())
    }

    /// The number of parties.
    #[getter]
    fn parties(&self, py: Python<'_>) -> PyResult<u32> {
        Ok(self.handle(py)?.parties())
    }

    /// The number of parties waiting in the round in progress (a snapshot;
    /// 0 while the barrier is broken, as ``threading.Barrier``).
    #[getter]
    fn n_waiting(&self, py: Python<'_>) -> PyResult<u32> {
        let b = self.handle(py)?;
        Ok(if b.is_broken() {
            0
        } else {
            b.words().state().1
        })
    }

    /// Whether the barrier is broken (a snapshot).
    #[getter]
    fn broken(&self, py: Python<'_>) -> PyResult<bool> {
        Ok(self.handle(py)?.is_broken())
    }

    /// The name given at creation.
    #[getter]
    fn name(&self) -> &str {
        &self.local.target.name
    }

    /// The file's path.
    #[getter]
    fn path(&self) -> String {
        self.local.target.path_str()
    }

    fn __reduce__<'py>(
        slf: &Bound<'py, Self>,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyTuple>)> {
        let py = slf.py();
        let attach = slf.get_type().getattr("_attach")?;
        let this = slf.get();
        let args = (this.local.target.shared_path(), this.timeout).into_pyobject(py)?;
        Ok((attach, args))
    }

    fn __repr__(&self) -> String {
        format!("mmring.Barrier({:?})", self.local.target.name)
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Semaphore>()?;
    m.add_class::<BoundedSemaphore>()?;
    m.add_class::<Lock>()?;
    m.add_class::<Barrier>()?;
    m.add_function(wrap_pyfunction!(_barrier_exit, m)?)
}
