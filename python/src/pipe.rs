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

use std::mem::ManuallyDrop;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use mmring::spsc::{ByteConsumer, ByteProducer, MAX_MESSAGE_LEN};
use mmring::sync::{AtomicU32, Ordering};
use mmring::{BytePushTimeoutError, OpenError, PopTimeoutError, TryPopError};
use pyo3::exceptions::{PyBrokenPipeError, PyEOFError, PyOSError, PyValueError};
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

/// A pipe's name and files, shared by the ends made together; the files of
/// an unnamed pipe are removed once both ends made in the creating process
/// are collected there.
struct Files {
    name: String,
    base: PathBuf,
    /// The pid that made the name up and removes the files.
    remove_in: Option<u32>,
}

impl Drop for Files {
    fn drop(&mut self) {
        if self.remove_in == Some(mmring::pid::current()) {
            let _ = std::fs::remove_file(ring_path(&self.base, End::A));
            let _ = std::fs::remove_file(ring_path(&self.base, End::B));
        }
    }
}

/// A handle opened by one process: used and dropped only there (a child
/// made by `fork` forgets the one it inherited; dropping it would give
/// its parent's role back).
struct Mine<H> {
    pid: u32,
    handle: ManuallyDrop<H>,
}

impl<H> Mine<H> {
    fn new(handle: H) -> Self {
        Self {
            pid: mmring::pid::current(),
            handle: ManuallyDrop::new(handle),
        }
    }
}

impl<H> Drop for Mine<H> {
    fn drop(&mut self) {
        if self.pid == mmring::pid::current() {
            // SAFETY: dropped once, here, in the process that opened it;
            // the field is never used again.
            unsafe { ManuallyDrop::drop(&mut self.handle) };
        }
    }
}

/// This process's handle in `slot`, forgetting one another process left
/// there (a forked child's inheritance).
fn mine<H>(slot: &mut Option<Mine<H>>) -> Option<&mut H> {
    let me = mmring::pid::current();
    if slot.as_ref().is_some_and(|m| m.pid != me) {
        *slot = None;
    }
    slot.as_mut().map(|m| &mut *m.handle)
}

/// The receiving side of an end, per process: its ring handle and a
/// message taken by `poll` (or refused by `recv_bytes(maxlength)`) that
/// the next receive returns first.
#[derive(Default)]
struct Rx {
    ring: Option<Mine<ByteConsumer>>,
    pending: Option<(u32, Vec<u8>)>,
}

impl Rx {
    fn take_pending(&mut self) -> Option<Vec<u8>> {
        match self.pending.take() {
            Some((pid, msg)) if pid == mmring::pid::current() => Some(msg),
            _ => None,
        }
    }
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

/// Locks `m`, waiting with the GIL released if another thread holds it
/// (one blocked in a receive, say, which needs the GIL to come back).
fn lock<'a, T: Send>(py: Python<'_>, m: &'a Mutex<T>) -> MutexGuard<'a, T> {
    loop {
        match m.try_lock() {
            Ok(g) => return g,
            Err(std::sync::TryLockError::Poisoned(p)) => return p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => {
                py.detach(|| drop(m.lock()));
            }
        }
    }
}

/// Why a send or receive stopped.
enum Stop {
    Closed,
    Eof,
    Broken,
    SelfHeld,
    TooLong(usize),
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
/// exits. There is no ``fileno()``: the ends are shared memory, not file
/// descriptors, so ``multiprocessing.connection.wait`` cannot take them
/// (use ``poll``).
#[pyclass(module = "mmring", frozen)]
pub struct Connection {
    /// The holder lock's descriptor (`None` once closed). First, so that a
    /// collected end lets go of it before its rings wake their peers.
    holder: Mutex<Option<OwnedFd>>,
    tx: Mutex<Option<Mine<ByteProducer>>>,
    rx: Mutex<Rx>,
    files: Arc<Files>,
    end: End,
    readable: bool,
    writable: bool,
    /// 1 once `close()` was called (in the process that called it, and in
    /// children forked after).
    closed: AtomicU32,
}

impl Connection {
    fn make(files: Arc<Files>, end: End, readable: bool, writable: bool, fd: OwnedFd) -> Self {
        Self {
            holder: Mutex::new(Some(fd)),
            tx: Mutex::new(None),
            rx: Mutex::new(Rx::default()),
            files,
            end,
            readable,
            writable,
            closed: AtomicU32::new(0),
        }
    }

    fn is_closed(&self) -> bool {
        // Relaxed: a flag this process sets; the mutexes order the rest.
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

    fn holder_fd(&self) -> Option<RawFd> {
        self.holder
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|f| f.as_raw_fd())
    }

    fn stop_err(&self, stop: Stop) -> PyErr {
        match stop {
            Stop::Closed => PyOSError::new_err("handle is closed"),
            Stop::Eof => PyEOFError::new_err(()),
            Stop::Broken => PyBrokenPipeError::new_err(format!(
                "no one holds end {} of pipe {:?} any more",
                self.end.other().letter(),
                self.files.name
            )),
            Stop::SelfHeld => PyOSError::new_err(format!(
                "end {} of pipe {:?} is in use by another Connection of this process",
                self.end.letter(),
                self.files.name
            )),
            Stop::TooLong(len) => PyValueError::new_err(format!(
                "a message of {len} bytes is longer than a pipe carries ({MAX_MESSAGE_LEN} bytes)"
            )),
            Stop::Open(e) => open_error(e),
            Stop::Os(e) => PyOSError::new_err(e.to_string()),
        }
    }

    /// Sends one message: once with the GIL held, then in slices with it
    /// released (a long message resumes where the last slice stopped).
    fn send_raw(&self, py: Python<'_>, msg: &[u8]) -> PyResult<()> {
        self.check(false)?;
        if msg.len() > MAX_MESSAGE_LEN {
            return Err(self.stop_err(Stop::TooLong(msg.len())));
        }
        let mut guard = lock(py, &self.tx);
        let slot: &mut Option<Mine<ByteProducer>> = &mut guard;
        let Some(fd) = self.holder_fd() else {
            return Err(self.stop_err(Stop::Closed));
        };
        let path = ring_path(&self.files.base, self.end.other());
        let peer = self.end.other();
        let closed = &self.closed;
        let mut sent = 0usize;
        let mut step = |slice: Duration| -> Option<Result<(), Stop>> {
            // Relaxed: see `is_closed`.
            if closed.load(Ordering::Relaxed) != 0 {
                return Some(Err(Stop::Closed));
            }
            if mine(slot).is_none() {
                match ByteProducer::open(&path) {
                    Ok(h) => *slot = Some(Mine::new(h)),
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
            let tx = mine(slot)?;
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
            Some(r) => r,
            None => match wait_for(py, None, step)? {
                Some(r) => r,
                None => unreachable!("a wait without a timeout cannot time out"),
            },
        };
        done.map_err(|s| self.stop_err(s))
    }

    /// Receives one message within `timeout` (`None`: for ever): `Ok(None)`
    /// when the time passed. With `keep`, the message stays pending for the
    /// next receive (what `poll` does).
    fn recv_raw(
        &self,
        py: Python<'_>,
        timeout: Option<Duration>,
        keep: bool,
    ) -> PyResult<Option<Result<Vec<u8>, Stop>>> {
        self.check(true)?;
        let mut guard = lock(py, &self.rx);
        let rx: &mut Rx = &mut guard;
        if let Some(msg) = rx.take_pending() {
            if keep {
                rx.pending = Some((mmring::pid::current(), msg));
                return Ok(Some(Ok(Vec::new())));
            }
            return Ok(Some(Ok(msg)));
        }
        let Some(fd) = self.holder_fd() else {
            return Err(self.stop_err(Stop::Closed));
        };
        let path = ring_path(&self.files.base, self.end);
        let peer = self.end.other();
        let closed = &self.closed;
        let slot = &mut rx.ring;
        let mut step = |slice: Duration| -> Option<Result<Vec<u8>, Stop>> {
            // Relaxed: see `is_closed`.
            if closed.load(Ordering::Relaxed) != 0 {
                return Some(Err(Stop::Closed));
            }
            if mine(slot).is_none() {
                match ByteConsumer::open(&path) {
                    Ok(h) => *slot = Some(Mine::new(h)),
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
            let ring = mine(slot)?;
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
        let got = match step(Duration::ZERO) {
            Some(r) => Some(r),
            None if timeout == Some(Duration::ZERO) => None,
            None => wait_for(py, timeout, step)?,
        };
        if keep && let Some(Ok(msg)) = got {
            rx.pending = Some((mmring::pid::current(), msg));
            return Ok(Some(Ok(Vec::new())));
        }
        Ok(got)
    }

    /// A message, or the error that ends the receive.
    fn recv_message(&self, py: Python<'_>) -> PyResult<Vec<u8>> {
        match self.recv_raw(py, None, false)? {
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
        let files = Arc::new(Files {
            name: name.to_owned(),
            base,
            remove_in: None,
        });
        let fd = hold(&files.base, end)?;
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
        let files = Arc::new(Files {
            name,
            base: PathBuf::from(path),
            remove_in: None,
        });
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
        let msg = self.recv_message(py)?;
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
        let msg = self.recv_message(py)?;
        if let Some(m) = maxlength
            && msg.len() > m as usize
        {
            let len = msg.len();
            lock(py, &self.rx).pending = Some((mmring::pid::current(), msg));
            return Err(PyOSError::new_err(format!(
                "bad message length: {len} bytes, maxlength {m}"
            )));
        }
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
        let msg = self.recv_message(py)?;
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
        match self.recv_raw(py, timeout, true)? {
            None => Ok(false),
            Some(Ok(_)) | Some(Err(Stop::Eof)) => Ok(true),
            Some(Err(s)) => Err(self.stop_err(s)),
        }
    }

    /// Lets go of this handle in this process: its roles go back and its
    /// hold on the end ends (other processes' handles are untouched).
    /// Idempotent.
    fn close(&self, py: Python<'_>) {
        // Relaxed: see `is_closed`.
        self.closed.store(1, Ordering::Relaxed);
        // A send or receive blocked in another thread sees the flag within
        // a slice and lets go of its side; the descriptor is closed only
        // then (it uses it), and before the rings wake their peers, so a
        // woken reader finds this holder gone.
        let mut tx = lock(py, &self.tx);
        let mut rx = lock(py, &self.rx);
        drop(lock(py, &self.holder).take());
        *tx = None;
        *rx = Rx::default();
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

    /// Which end this is: ``'a'`` or ``'b'``.
    #[getter]
    fn end(&self) -> &'static str {
        self.end.letter()
    }

    /// The pipe's name.
    #[getter]
    fn name(&self) -> &str {
        &self.files.name
    }

    /// The pipe's path: its files are this path plus ``.a`` and ``.b``.
    #[getter]
    fn path(&self) -> String {
        self.files.base.to_string_lossy().into_owned()
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
        let Some(fd) = this.holder_fd() else {
            return Err(PyOSError::new_err("handle is closed"));
        };
        let dupfd = py
            .import("multiprocessing.reduction")?
            .getattr("DupFd")?
            .call1((fd,))?;
        let rebuild = slf.get_type().getattr("_rebuild")?;
        let args = (
            this.files.name.clone(),
            this.path(),
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
            self.files.name,
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
    let files = Arc::new(Files {
        name: target.name.clone(),
        base: target.path.clone(),
        remove_in: target.is_anonymous().then(mmring::pid::current),
    });
    let create = |end: End| -> PyResult<bool> {
        match mmring::spsc::create_bytes(ring_path(&files.base, end), capacity, slot_size) {
            Ok(()) => Ok(true),
            Err(OpenError::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(open_error(e)),
        }
    };
    // `NAME.b` first: once `NAME.a` exists, whether the pipe is duplex is
    // settled.
    let a_exists = ring_path(&files.base, End::A).exists();
    let b_exists = ring_path(&files.base, End::B).exists();
    let exists_as = |was: bool| {
        PyValueError::new_err(format!(
            "pipe {:?} exists with duplex={}",
            files.name,
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
    let fa = hold(&files.base, End::A)?;
    let fb = hold(&files.base, End::B)?;
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
