//! `mmring.Dict`: `Manager().dict()` over a shared byte map
//! ([`mmring::map::ByteMap`]), with no server process and no lock.
//!
//! Keys are `str`, `bytes` or `int`, stored as a tag byte and a canonical
//! encoding (so equal keys are equal bytes); values are pickled (protocol
//! 5) into byte strings of up to `value_size` bytes.
//!
//! # Waiting, the GIL and `update_key`
//!
//! The map's writers take an entry's write lock; readers never wait for
//! it. A lock is held for nanoseconds, except by `update_key`, which runs
//! the user's Python function while it holds the entry. So no operation
//! waits for an entry with the GIL held: the thread holding the entry may
//! need the GIL to finish its function. Every operation first tries once
//! with the GIL held through a handle that never waits (the common,
//! uncontended case costs no GIL round trip); if an entry is busy it tries
//! again with the GIL released, through a handle that waits a slice at a
//! time (taking over the lock of a writer that died), checking for signals
//! between slices (see [`wait_for`]). A busy entry never means anything
//! was done, so trying again is safe.
//!
//! `update_key`'s function runs exactly once per call that succeeds, under
//! the entry's lock; if it raises (or its result does not pickle, or is too
//! large) nothing is written and the exception propagates. A process killed
//! inside it leaves the value as it was; the next writer takes the lock
//! over (the library's crash rule).

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mmring::map::{ByteMap, MapError, MapOptions};
use mmring::{OpenError, Patience};
use pyo3::exceptions::{PyKeyError, PyMemoryError, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyInt, PyList, PyString, PyTuple, PyType};

use crate::common::{Error, Local, SLICE, Target, dumps, loads, open_error, wait_for};

pyo3::create_exception!(
    mmring,
    DictFullError,
    PyMemoryError,
    "A new key for a Dict whose every entry holds a key (its capacity is the most keys present at once); nothing was stored."
);

/// Tag byte of a `str` key (then its UTF-8).
const TAG_STR: u8 = b's';
/// Tag byte of a `bytes` key (then the bytes).
const TAG_BYTES: u8 = b'b';
/// Tag byte of an `int` key (then its shortest big-endian two's complement).
const TAG_INT: u8 = b'i';

/// Defaults of `Dict(...)`.
const DEFAULT_CAPACITY: usize = 1024;
const DEFAULT_KEY_SIZE: usize = 64;
const DEFAULT_VALUE_SIZE: usize = 1024;

/// The largest capacity the library takes (2^24 entries).
const MAX_CAPACITY: usize = 1 << 24;

/// One process's view of a dict file: the same map twice, with two
/// patiences (see the module docs).
struct Maps {
    /// Never waits for a busy entry (tried with the GIL held).
    quick: ByteMap<[u8]>,
    /// Waits for a busy entry a slice at a time (tried with the GIL
    /// released), taking over the lock of a writer that died.
    patient: ByteMap<[u8]>,
}

impl Maps {
    fn pair(mut quick: ByteMap<[u8]>, path: &Path) -> Result<Self, OpenError> {
        let mut patient = ByteMap::<[u8]>::open(path)?;
        quick.set_patience(Patience::timeout(Duration::ZERO));
        patient.set_patience(Patience::timeout(SLICE));
        Ok(Self { quick, patient })
    }

    /// The longest key, without its tag byte.
    fn key_size(&self) -> usize {
        self.quick.max_key_len().saturating_sub(1)
    }

    fn value_size(&self) -> usize {
        self.quick.max_value_len()
    }
}

fn open(path: &Path) -> Result<Maps, OpenError> {
    Maps::pair(ByteMap::<[u8]>::open(path)?, path)
}

thread_local! {
    /// The dicts (by path) whose `update_key` function this thread is
    /// running: writing to one of them from inside would wait for the
    /// entry the thread itself holds.
    static UPDATING: RefCell<Vec<PathBuf>> = const { RefCell::new(Vec::new()) };
}

/// Marks a dict as being updated by this thread while it lives.
struct Updating;

impl Updating {
    fn enter(path: &Path) -> Self {
        UPDATING.with(|u| u.borrow_mut().push(path.to_path_buf()));
        Updating
    }
}

impl Drop for Updating {
    fn drop(&mut self) {
        UPDATING.with(|u| u.borrow_mut().pop());
    }
}

/// A dict shared by processes, as ``multiprocessing.Manager().dict()``, with
/// no server process and no lock.
///
/// ``Dict(name, capacity=1024, key_size=64, value_size=1024)`` creates the
/// file or opens the one already there with the same shape (its contents
/// are kept, never reset); another shape raises ``ValueError`` naming
/// both. ``Dict.open(name)`` opens only. ``capacity`` bounds the keys
/// present **at once** (removed keys free their entry for any other key);
/// it is rounded up to a power of two, and the key size up so that a key
/// and its tag fill whole 8-byte words: ``d.capacity`` and ``d.key_size``
/// are the real bounds. A new key in a full table raises
/// ``mmring.DictFullError`` (a ``MemoryError``), and nothing is stored.
///
/// Keys are ``str``, ``bytes`` or ``int`` (another type raises
/// ``TypeError``). They are stored as a tag byte (``s``, ``b``, ``i``) and
/// the key's UTF-8, its bytes, or its shortest big-endian two's
/// complement, so equal keys are equal bytes; ``'1'``, ``b'1'`` and ``1``
/// are three keys. ``True`` and ``False`` are the keys ``1`` and ``0``, as
/// in a dict (``1 == True``): they come back as ints. ``key_size`` counts
/// those bytes without the tag; a longer key raises ``ValueError`` in
/// every method.
///
/// Values are pickled (protocol 5) and may take up to ``value_size``
/// bytes (at most 4096): a larger one raises ``ValueError`` naming both
/// sizes, and nothing is stored. Each read unpickles a fresh copy.
///
/// Each entry is read and written whole (never torn); ``update_key`` is an
/// atomic read-modify-write of one entry. ``keys()``, ``values()`` and
/// ``items()`` are lists, each entry read whole (not the whole dict at one
/// instant while others write); ``update``, ``clear`` and ``popitem`` are
/// entry by entry, not atomic as a whole. The dict pickles as its path.
#[pyclass(module = "mmring", frozen)]
pub struct Dict {
    local: Local<Maps>,
}

/// A `ValueError` naming both sizes if a pickled value of `len` bytes is
/// longer than `max`.
fn check_value_len(len: usize, max: usize) -> PyResult<()> {
    if len > max {
        return Err(PyValueError::new_err(format!(
            "the value pickles to {len} bytes, more than the dict's value_size of {max} bytes; nothing was stored"
        )));
    }
    Ok(())
}

/// The shortest big-endian two's complement of `v` (at least one byte).
fn int_bytes(v: i64) -> Vec<u8> {
    let b = v.to_be_bytes();
    let mut i = 0;
    while i < 7 && ((b[i] == 0 && b[i + 1] < 0x80) || (b[i] == 0xff && b[i + 1] >= 0x80)) {
        i += 1;
    }
    b[i..].to_vec()
}

/// `key` as the map's key bytes: a tag, then the canonical bytes, at most
/// `max` of them.
fn encode_key(key: &Bound<'_, PyAny>, max: usize) -> PyResult<Vec<u8>> {
    let too_long = |len: usize, what: &str| {
        PyValueError::new_err(format!(
            "the key is {len} bytes long{what}, more than the dict's key_size of {max}"
        ))
    };
    let (tag, body) = if let Ok(s) = key.cast::<PyString>() {
        let s = s.to_cow()?;
        if s.len() > max {
            return Err(too_long(s.len(), " in UTF-8"));
        }
        (TAG_STR, s.as_bytes().to_vec())
    } else if let Ok(b) = key.cast::<PyBytes>() {
        let b = b.as_bytes();
        if b.len() > max {
            return Err(too_long(b.len(), ""));
        }
        (TAG_BYTES, b.to_vec())
    } else if let Ok(i) = key.cast::<PyInt>() {
        let body = match i.extract::<i64>() {
            Ok(v) => int_bytes(v),
            Err(_) => {
                // Beyond 64 bits: the same shortest two's complement,
                // sized before any bytes are made (a huge int is refused
                // without building it).
                let py = key.py();
                let neg = i.lt(0)?;
                let magnitude = if neg {
                    i.call_method0("__invert__")?
                } else {
                    i.clone().into_any()
                };
                let bits: usize = magnitude.call_method0("bit_length")?.extract()?;
                let len = bits / 8 + 1;
                if len > max {
                    return Err(too_long(len, " as a signed integer"));
                }
                let kwargs = PyDict::new(py);
                kwargs.set_item("signed", true)?;
                i.call_method("to_bytes", (len, "big"), Some(&kwargs))?
                    .cast_into::<PyBytes>()?
                    .as_bytes()
                    .to_vec()
            }
        };
        if body.len() > max {
            return Err(too_long(body.len(), " as a signed integer"));
        }
        (TAG_INT, body)
    } else {
        return Err(PyTypeError::new_err(format!(
            "mmring.Dict keys are str, bytes or int, not {}",
            key.get_type().name()?
        )));
    };
    let mut out = Vec::with_capacity(body.len() + 1);
    out.push(tag);
    out.extend_from_slice(&body);
    Ok(out)
}

/// The key back from its bytes.
fn decode_key<'py>(py: Python<'py>, bytes: &[u8]) -> PyResult<Bound<'py, PyAny>> {
    let foreign = || {
        Error::new_err(format!(
            "a key not written by mmring.Dict: {:?}",
            PyBytes::new(py, bytes)
        ))
    };
    let Some((&tag, body)) = bytes.split_first() else {
        return Err(foreign());
    };
    match tag {
        TAG_STR => match std::str::from_utf8(body) {
            Ok(s) => Ok(PyString::new(py, s).into_any()),
            Err(_) => Err(foreign()),
        },
        TAG_BYTES => Ok(PyBytes::new(py, body).into_any()),
        TAG_INT if body.is_empty() => Err(foreign()),
        TAG_INT if body.len() <= 8 => {
            // Sign-extend the big-endian bytes.
            let fill = if body[0] >= 0x80 { 0xff } else { 0 };
            let mut b = [fill; 8];
            b[8 - body.len()..].copy_from_slice(body);
            Ok(i64::from_be_bytes(b).into_pyobject(py)?.into_any())
        }
        TAG_INT => {
            let kwargs = PyDict::new(py);
            kwargs.set_item("signed", true)?;
            py.get_type::<PyInt>().call_method(
                "from_bytes",
                (PyBytes::new(py, body), "big"),
                Some(&kwargs),
            )
        }
        _ => Err(foreign()),
    }
}

/// What one try of `update_key` on a map came to.
enum Attempt {
    /// The function ran and its result is stored: the result.
    Done(Py<PyAny>),
    /// The key is absent and no default was given to start from.
    Absent,
    /// An entry was busy: nothing was done, the function did not run.
    Busy,
    /// The function (or pickling its result) raised, or the map refused:
    /// nothing was written.
    Failed(PyErr),
}

/// Runs `func` on the pickled `old` value and pickles the result into
/// `room`: the result and its pickled length.
fn call_into(
    py: Python<'_>,
    func: &Py<PyAny>,
    old: &[u8],
    room: &mut [u8],
) -> PyResult<(Py<PyAny>, usize)> {
    let old = loads(py, old)?;
    let new = func.bind(py).call1((old,))?;
    let data = dumps(&new)?;
    let data = data.as_bytes();
    check_value_len(data.len(), room.len())?;
    room[..data.len()].copy_from_slice(data);
    Ok((new.unbind(), data.len()))
}

/// What `update_key` runs on an entry: the old pickled value in, the new
/// one written into the room; the new object and its pickled length.
type Call<'a> = dyn FnMut(&[u8], &mut [u8]) -> PyResult<(Py<PyAny>, usize)> + 'a;

/// One try of `update_key` on `map`: `call` makes the new value from the
/// old; with `init`, an absent key starts from it (and is inserted).
fn try_update(
    map: &ByteMap<[u8]>,
    name: &str,
    key: &[u8],
    init: Option<&[u8]>,
    call: &mut Call<'_>,
) -> Attempt {
    let mut out: Option<PyResult<(Py<PyAny>, usize)>> = None;
    // A call that raised answers one byte more than the room: the map
    // refuses the length and writes nothing (its documented rule for
    // `update_with`/`update_or_insert`), and the exception is kept here.
    let r = match init {
        None => map
            .update_with(key, |old, room| {
                let res = call(old, room);
                let len = match &res {
                    Ok((_, len)) => *len,
                    Err(_) => room.len() + 1,
                };
                out = Some(res);
                len
            })
            .map(|ran| ran.is_some()),
        Some(init) => {
            let max = map.max_value_len();
            map.update_or_insert(key, init, |v| {
                let mut room = vec![0; max];
                let res = call(v, &mut room);
                match &res {
                    Ok((_, len)) => room.truncate(*len),
                    Err(_) => room.push(0),
                }
                *v = room;
                out = Some(res);
            })
            .map(|_| true)
        }
    };
    match (out, r) {
        (Some(Ok((new, _))), Ok(_)) => Attempt::Done(new),
        (Some(Err(e)), _) => Attempt::Failed(e),
        // After the function ran the map refuses only a length past its
        // room, which `call` never answers with a result; reported anyway.
        (Some(Ok(_)), Err(e)) => Attempt::Failed(map_error(name, e)),
        (None, Ok(false)) => Attempt::Absent,
        (None, Err(MapError::Busy(_))) => Attempt::Busy,
        (None, Err(e)) => Attempt::Failed(map_error(name, e)),
        (None, Ok(true)) => Attempt::Failed(Error::new_err(
            "update_key: the map stored a value without running the function",
        )),
    }
}

/// A map error as the Python exception a user would look for.
fn map_error(name: &str, err: MapError) -> PyErr {
    match err {
        MapError::Full { capacity } => DictFullError::new_err(format!(
            "Dict {name:?} is full: all {capacity} entries hold keys (its capacity); remove keys or create it with a larger capacity"
        )),
        MapError::KeyTooLong { .. } | MapError::ValueTooLong { .. } => {
            PyValueError::new_err(format!("Dict {name:?}: {err}"))
        }
        _ => Error::new_err(format!("Dict {name:?}: {err}")),
    }
}

impl Dict {
    fn maps(&self) -> PyResult<std::sync::Arc<Maps>> {
        self.local.get("Dict")
    }

    fn name_str(&self) -> &str {
        &self.local.target.name
    }

    /// Runs a map operation: once with the GIL held through the handle
    /// that never waits, then, if an entry was busy, with the GIL released
    /// through the patient one until it is not (signals checked between
    /// slices).
    fn run<R: Send>(
        &self,
        py: Python<'_>,
        maps: &Maps,
        op: impl Fn(&ByteMap<[u8]>) -> Result<R, MapError> + Sync,
    ) -> PyResult<R> {
        match op(&maps.quick) {
            Err(MapError::Busy(_)) => {}
            r => return r.map_err(|e| map_error(self.name_str(), e)),
        }
        let patient = &maps.patient;
        let r = wait_for(py, None, |_| match op(patient) {
            Err(MapError::Busy(_)) => None,
            r => Some(r),
        })?;
        match r {
            Some(r) => r.map_err(|e| map_error(self.name_str(), e)),
            None => Err(Error::new_err("a wait without a timeout timed out")),
        }
    }

    /// Refuses a write to this dict from inside its own `update_key`
    /// function (the entry it holds would never be released).
    fn writable(&self) -> PyResult<()> {
        let path = &self.local.target.path;
        if UPDATING.with(|u| u.borrow().iter().any(|p| p == path)) {
            return Err(PyRuntimeError::new_err(format!(
                "Dict {:?} cannot be changed from inside its own update_key function (the entry stays locked until the function returns): return the new value instead",
                self.name_str()
            )));
        }
        Ok(())
    }

    fn key(&self, maps: &Maps, key: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
        encode_key(key, maps.key_size())
    }

    fn value(&self, maps: &Maps, value: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
        let data = dumps(value)?;
        check_value_len(data.as_bytes().len(), maps.value_size())?;
        Ok(data.as_bytes().to_vec())
    }

    fn lookup<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let maps = self.maps()?;
        let k = self.key(&maps, key)?;
        match self.run(py, &maps, |m| m.get(&k))? {
            Some(v) => Ok(Some(loads(py, &v)?)),
            None => Ok(None),
        }
    }

    fn snapshot(&self, py: Python<'_>) -> PyResult<Vec<(Vec<u8>, Vec<u8>)>> {
        let maps = self.maps()?;
        self.run(py, &maps, |m| m.snapshot())
    }

    /// Every live entry, keys and values decoded.
    fn pairs<'py>(&self, py: Python<'py>) -> PyResult<Vec<(Bound<'py, PyAny>, Bound<'py, PyAny>)>> {
        self.snapshot(py)?
            .into_iter()
            .map(|(k, v)| Ok((decode_key(py, &k)?, loads(py, &v)?)))
            .collect()
    }

    /// Removes `key`; its value, unpickled, if it was there.
    fn take<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.writable()?;
        let maps = self.maps()?;
        let k = self.key(&maps, key)?;
        match self.run(py, &maps, |m| m.remove(&k))? {
            Some(v) => Ok(Some(loads(py, &v)?)),
            None => Ok(None),
        }
    }

    /// An existing map of another shape than asked, as a `ValueError`
    /// naming both; any other open error as usual.
    fn shape_error(target: &Target, err: OpenError, asked: (usize, usize, usize)) -> PyErr {
        match err {
            OpenError::InvalidCapacity { .. }
            | OpenError::InvalidOption { .. }
            | OpenError::WrongPayload { .. } => match open(&target.path) {
                Ok(found) => PyValueError::new_err(format!(
                    "Dict {:?} exists with capacity={}, key_size={}, value_size={}; asked for capacity={}, key_size={}, value_size={} (Dict.open opens it as it is)",
                    target.name,
                    found.quick.capacity(),
                    found.key_size(),
                    found.value_size(),
                    asked.0,
                    asked.1,
                    asked.2
                )),
                Err(_) => open_error(err),
            },
            _ => open_error(err),
        }
    }
}

#[pymethods]
impl Dict {
    #[new]
    #[pyo3(signature = (name=None, capacity=DEFAULT_CAPACITY as i64, key_size=DEFAULT_KEY_SIZE as i64, value_size=DEFAULT_VALUE_SIZE as i64))]
    fn new(name: Option<&str>, capacity: i64, key_size: i64, value_size: i64) -> PyResult<Self> {
        if capacity < 1 || capacity as u64 > MAX_CAPACITY as u64 {
            return Err(PyValueError::new_err(format!(
                "capacity must be 1 to {MAX_CAPACITY}, not {capacity}"
            )));
        }
        let max_key = mmring::map::MAX_KEY_LEN - 1;
        if key_size < 1 || key_size as u64 > max_key as u64 {
            return Err(PyValueError::new_err(format!(
                "key_size must be 1 to {max_key}, not {key_size}"
            )));
        }
        let max_value = mmring::map::MAX_VALUE_SIZE;
        if value_size < 1 || value_size as u64 > max_value as u64 {
            return Err(PyValueError::new_err(format!(
                "value_size must be 1 to {max_value}, not {value_size}"
            )));
        }
        let (capacity, key_size, value_size) = (
            (capacity as usize).next_power_of_two(),
            key_size as usize,
            value_size as usize,
        );
        let target = Target::new(name, "dict")?;
        let opts = MapOptions::new().max_key_len(key_size + 1);
        let map = ByteMap::<[u8]>::open_or_create(&target.path, capacity, value_size, &opts)
            .map_err(|e| Self::shape_error(&target, e, (capacity, key_size, value_size)))?;
        let maps = Maps::pair(map, &target.path).map_err(open_error)?;
        Ok(Self {
            local: Local::opened(target, maps, open),
        })
    }

    /// Opens an existing dict as it is; ``FileNotFoundError`` if there is none.
    #[classmethod]
    fn open(_cls: &Bound<'_, PyType>, name: &str) -> PyResult<Self> {
        let target = Target::named(name)?;
        let maps = open(&target.path).map_err(open_error)?;
        Ok(Self {
            local: Local::opened(target, maps, open),
        })
    }

    /// The dict at ``name``, opened on first use (what unpickling makes).
    #[staticmethod]
    fn _attach(name: &str) -> PyResult<Self> {
        Ok(Self {
            local: Local::lazy(Target::named(name)?, open),
        })
    }

    /// ``d[key]``: the value, unpickled; ``KeyError`` if absent.
    fn __getitem__<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.lookup(py, key)?
            .ok_or_else(|| PyKeyError::new_err(key.clone().unbind()))
    }

    /// ``d[key] = value``: pickled; ``ValueError`` if larger than value_size,
    /// ``mmring.DictFullError`` for a new key in a full dict (nothing stored).
    fn __setitem__(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        self.writable()?;
        let maps = self.maps()?;
        let k = self.key(&maps, key)?;
        let v = self.value(&maps, value)?;
        self.run(py, &maps, |m| m.insert(&k, &v))?;
        Ok(())
    }

    /// ``del d[key]``; ``KeyError`` if absent. Its entry is free for any key.
    fn __delitem__(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<()> {
        self.writable()?;
        let maps = self.maps()?;
        let k = self.key(&maps, key)?;
        match self.run(py, &maps, |m| m.remove(&k))? {
            Some(_) => Ok(()),
            None => Err(PyKeyError::new_err(key.clone().unbind())),
        }
    }

    /// ``key in d``.
    fn __contains__(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        let maps = self.maps()?;
        let k = self.key(&maps, key)?;
        self.run(py, &maps, |m| m.contains_key(&k))
    }

    /// ``len(d)``: the keys present (out of date as soon as it returns).
    fn __len__(&self) -> PyResult<usize> {
        Ok(self.maps()?.quick.len())
    }

    /// Iterates over a list of the keys (taken when iteration starts).
    fn __iter__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        Ok(self.keys(py)?.as_any().try_iter()?.into_any())
    }

    /// The value of ``key``, or ``default`` if absent.
    #[pyo3(signature = (key, default=None))]
    fn get<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
        default: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        Ok(match self.lookup(py, key)? {
            Some(v) => v,
            None => default.unwrap_or_else(|| py.None().into_bound(py)),
        })
    }

    /// Atomically: the value of ``key`` if present, else sets it to
    /// ``default`` and returns ``default``.
    #[pyo3(signature = (key, default=None))]
    fn setdefault<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
        default: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.writable()?;
        let default = default.unwrap_or_else(|| py.None().into_bound(py));
        let maps = self.maps()?;
        let k = self.key(&maps, key)?;
        let v = self.value(&maps, &default)?;
        match self.run(py, &maps, |m| m.insert_if_absent(&k, &v))? {
            Some(old) => loads(py, &old),
            None => Ok(default),
        }
    }

    /// Removes ``key`` and returns its value; ``default`` if absent, or
    /// ``KeyError`` if no default was given.
    #[pyo3(signature = (key, *default))]
    fn pop<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
        default: &Bound<'py, PyTuple>,
    ) -> PyResult<Bound<'py, PyAny>> {
        if default.len() > 1 {
            return Err(PyTypeError::new_err(format!(
                "pop expected at most 2 arguments, got {}",
                default.len() + 1
            )));
        }
        match self.take(py, key)? {
            Some(v) => Ok(v),
            None if default.len() == 1 => default.get_item(0),
            None => Err(PyKeyError::new_err(key.clone().unbind())),
        }
    }

    /// Removes some key and returns ``(key, value)`` (which key is
    /// arbitrary, not the last inserted); ``KeyError`` if empty.
    fn popitem<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        self.writable()?;
        let maps = self.maps()?;
        for (k, _) in self.snapshot(py)? {
            // Another process may take it first: then the next one.
            if let Some(v) = self.run(py, &maps, |m| m.remove(&k))? {
                return PyTuple::new(py, [decode_key(py, &k)?, loads(py, &v)?]);
            }
        }
        Err(PyKeyError::new_err("popitem(): dictionary is empty"))
    }

    /// A list of the keys.
    fn keys<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let keys = self
            .snapshot(py)?
            .into_iter()
            .map(|(k, _)| decode_key(py, &k))
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, keys)
    }

    /// A list of the values, each read whole.
    fn values<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let values = self
            .snapshot(py)?
            .into_iter()
            .map(|(_, v)| loads(py, &v))
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, values)
    }

    /// A list of ``(key, value)`` pairs, each entry read whole.
    fn items<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let items = self
            .pairs(py)?
            .into_iter()
            .map(|(k, v)| PyTuple::new(py, [k, v]))
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, items)
    }

    /// A plain ``dict`` of the entries, each read whole.
    fn copy<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (k, v) in self.pairs(py)? {
            d.set_item(k, v)?;
        }
        Ok(d)
    }

    /// Sets the entries of ``other`` (a mapping, or an iterable of
    /// ``(key, value)`` pairs) and of ``kwargs``, as ``dict.update``. Every
    /// key and value is checked (and pickled) before the first is stored,
    /// so bad input stores nothing; the stores themselves are one by one
    /// (a full dict stops them part way, with ``mmring.DictFullError``).
    #[pyo3(signature = (other=None, **kwargs))]
    fn update(
        &self,
        py: Python<'_>,
        other: Option<&Bound<'_, PyAny>>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<()> {
        self.writable()?;
        let maps = self.maps()?;
        let mut entries = Vec::new();
        let mut add = |k: &Bound<'_, PyAny>, v: &Bound<'_, PyAny>| -> PyResult<()> {
            entries.push((self.key(&maps, k)?, self.value(&maps, v)?));
            Ok(())
        };
        if let Some(other) = other {
            if let Ok(d) = other.cast::<Dict>() {
                for (k, v) in d.get().pairs(py)? {
                    add(&k, &v)?;
                }
            } else if other.hasattr("keys")? {
                for k in other.call_method0("keys")?.try_iter()? {
                    let k = k?;
                    add(&k, &other.get_item(&k)?)?;
                }
            } else {
                for (i, pair) in other.try_iter()?.enumerate() {
                    let pair = pair?;
                    let items: Vec<Bound<'_, PyAny>> = pair
                        .try_iter()
                        .map_err(|_| {
                            PyTypeError::new_err(format!(
                                "cannot convert dictionary update sequence element #{i} to a sequence"
                            ))
                        })?
                        .collect::<PyResult<_>>()?;
                    if items.len() != 2 {
                        return Err(PyValueError::new_err(format!(
                            "dictionary update sequence element #{i} has length {}; 2 is required",
                            items.len()
                        )));
                    }
                    add(&items[0], &items[1])?;
                }
            }
        }
        if let Some(kwargs) = kwargs {
            for (k, v) in kwargs.iter() {
                add(&k, &v)?;
            }
        }
        for (k, v) in &entries {
            self.run(py, &maps, |m| m.insert(k, v))?;
        }
        Ok(())
    }

    /// Removes every key present (one by one: a key another process adds
    /// meanwhile may stay).
    fn clear(&self, py: Python<'_>) -> PyResult<()> {
        self.writable()?;
        let maps = self.maps()?;
        for (k, _) in self.snapshot(py)? {
            self.run(py, &maps, |m| m.remove(&k))?;
        }
        Ok(())
    }

    /// Atomically replaces the value of ``key`` with ``fn(value)`` and
    /// returns it; an absent key starts from ``default`` (and is added).
    ///
    /// ``fn`` runs exactly once, with the entry locked against other
    /// writers (readers are never blocked): the read-modify-write that
    /// ``d[k] += 1`` or ``d["a"]["x"] += 1`` needs a lock for in
    /// ``multiprocessing``, e.g.
    /// ``d.update_key("a", lambda m: {**m, "x": m["x"] + 1})``.
    /// ``fn`` gets a fresh, unpickled copy of the value (or of ``default``).
    /// If ``fn`` raises, or its result does not pickle or is larger than
    /// ``value_size``, nothing is written and the exception propagates. A
    /// process killed inside ``fn`` leaves the value as it was. Keep ``fn``
    /// short: other writers of the entry wait for it; changing this dict
    /// from inside it raises ``RuntimeError``.
    #[pyo3(signature = (key, r#fn, default=None))]
    fn update_key<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
        r#fn: &Bound<'py, PyAny>,
        default: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let func = r#fn;
        self.writable()?;
        if !func.is_callable() {
            return Err(PyTypeError::new_err(format!(
                "update_key needs a callable, not {}",
                func.get_type().name()?
            )));
        }
        let maps = self.maps()?;
        let k = self.key(&maps, key)?;
        let default = default.unwrap_or_else(|| py.None().into_bound(py));
        let func: Py<PyAny> = func.clone().unbind();
        let name = self.name_str();
        let _updating = Updating::enter(&self.local.target.path);

        // With the GIL held, waiting for nothing: the common case.
        let mut call = |old: &[u8], room: &mut [u8]| call_into(py, &func, old, room);
        let mut init = None;
        let mut attempt = try_update(&maps.quick, name, &k, None, &mut call);
        if let Attempt::Absent = attempt {
            let data = dumps(&default)?;
            init = Some(data.as_bytes().to_vec());
            attempt = try_update(&maps.quick, name, &k, init.as_deref(), &mut call);
        }
        match attempt {
            Attempt::Done(new) => return Ok(new),
            Attempt::Failed(e) => return Err(e),
            Attempt::Absent | Attempt::Busy => {}
        }

        // An entry was busy: wait for it with the GIL released, and take
        // the GIL back only to run the function.
        let init = match init {
            Some(init) => init,
            None => dumps(&default)?.as_bytes().to_vec(),
        };
        let patient = &maps.patient;
        let func = &func;
        let done = wait_for(py, None, |_| {
            let mut call =
                |old: &[u8], room: &mut [u8]| Python::attach(|py| call_into(py, func, old, room));
            match try_update(patient, name, &k, Some(&init), &mut call) {
                Attempt::Busy => None,
                other => Some(other),
            }
        })?;
        match done {
            Some(Attempt::Done(new)) => Ok(new),
            Some(Attempt::Failed(e)) => Err(e),
            _ => Err(Error::new_err(
                "update_key: the map neither ran the function nor reported why",
            )),
        }
    }

    /// ``d == other``: the same entries as a ``dict`` or another ``Dict``
    /// (each read whole).
    fn __eq__(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let theirs = if let Ok(d) = other.cast::<Dict>() {
            d.get().copy(py)?.into_any()
        } else if other.cast::<PyDict>().is_ok() {
            other.clone()
        } else {
            return Ok(py.NotImplemented());
        };
        Ok(self
            .copy(py)?
            .as_any()
            .eq(theirs)?
            .into_pyobject(py)?
            .to_owned()
            .into_any()
            .unbind())
    }

    /// ``d != other``.
    fn __ne__(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let eq = self.__eq__(py, other)?;
        if eq.is(py.NotImplemented()) {
            return Ok(eq);
        }
        let ne = !eq.bind(py).is_truthy()?;
        Ok(ne.into_pyobject(py)?.to_owned().into_any().unbind())
    }

    /// The most keys present at once (a power of two).
    #[getter]
    fn capacity(&self) -> PyResult<usize> {
        Ok(self.maps()?.quick.capacity())
    }

    /// The longest key, in bytes (UTF-8 for a str, two's complement for an int).
    #[getter]
    fn key_size(&self) -> PyResult<usize> {
        Ok(self.maps()?.key_size())
    }

    /// The longest pickled value, in bytes.
    #[getter]
    fn value_size(&self) -> PyResult<usize> {
        Ok(self.maps()?.value_size())
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
        Ok((
            attach,
            PyTuple::new(py, [slf.get().local.target.shared_path()])?,
        ))
    }

    fn __repr__(&self) -> String {
        format!("mmring.Dict({:?})", self.local.target.name)
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add_class::<Dict>()?;
    m.add("DictFullError", py.get_type::<DictFullError>())?;
    // A mapping to isinstance(), as dict is; unhashable, as dict is (it
    // compares equal to dicts).
    let cls = py.get_type::<Dict>();
    cls.setattr("__hash__", py.None())?;
    py.import("collections.abc")?
        .getattr("MutableMapping")?
        .call_method1("register", (cls,))?;
    Ok(())
}
