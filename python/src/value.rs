//! `mmring.Value` and `mmring.Array`: `multiprocessing.Value` and `Array`
//! over the library's [`Counter`](mmring::Counter) and
//! [`AtomicArray`](mmring::AtomicArray), with atomic read-modify-write
//! instead of `get_lock()`.
//!
//! A typecode names an element type as `ctypes` does on this platform
//! (`'i'` is C's `int`, `'l'` C's `long`). A `Value` of a 64-bit signed
//! typecode (`'q'`, and `'l'` where `long` is 64 bits) is a counter file,
//! the one a Rust `mmring::Counter` opens; a `Value` of any other typecode
//! is a one-element atomic array (so `Array.open` opens it as an `Array` of
//! length 1). The file records the element type, never the typecode, so
//! a name opened without one gets the canonical typecode of its type
//! (`'q'` for a 64-bit integer; `'l'` and `'q'` are the same type here and
//! either opens it).
//!
//! Conversions: a store (`.value = x`, `arr[i] = x`, `compare_exchange`,
//! what `update`'s function returns) refuses an integer outside the
//! type's range with `OverflowError`, and anything that is not an integer
//! (`__index__`) with `TypeError`, where `ctypes` would silently truncate;
//! nothing is stored then. `fetch_add`/`fetch_sub` wrap around as C's
//! fixed-width arithmetic does: `n` is taken modulo 2**bits, and must fit
//! in the width as a signed or an unsigned number. Floats take any real
//! number (`'f'` rounds to single precision, too large becomes infinity,
//! as `ctypes` does); `compare_exchange` compares floats bit for bit.

use std::ffi::{c_int, c_long, c_short};
use std::path::Path;

use mmring::{Atomic, AtomicArray, Counter, CreateOptions, Element, OpenError, Region, Zeroable};
use pyo3::exceptions::{PyAttributeError, PyOverflowError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyList, PySlice, PyString, PyTuple, PyType};

use crate::common::{Error, Local, Target, WrongKindError, open_error};

/// The element types, one per width and signedness, and the two floats.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Elem {
    I8,
    U8,
    I16,
    U16,
    I32,
    U32,
    I64,
    U64,
    F32,
    F64,
}

/// Every typecode, in `array`'s order (for messages).
const TYPECODES: &str = "b, B, h, H, i, I, l, L, q, Q, f or d";

impl Elem {
    /// The signed (or unsigned) integer type of `size` bytes.
    fn int(size: usize, signed: bool) -> Self {
        match (size, signed) {
            (1, true) => Self::I8,
            (1, false) => Self::U8,
            (2, true) => Self::I16,
            (2, false) => Self::U16,
            (4, true) => Self::I32,
            (4, false) => Self::U32,
            (_, true) => Self::I64,
            (_, false) => Self::U64,
        }
    }

    /// The type a `multiprocessing`/`ctypes` typecode names on this
    /// platform.
    fn of_typecode(tc: char) -> Option<Self> {
        use std::mem::size_of;
        Some(match tc {
            'b' => Self::I8,
            'B' => Self::U8,
            'h' => Self::int(size_of::<c_short>(), true),
            'H' => Self::int(size_of::<c_short>(), false),
            'i' => Self::int(size_of::<c_int>(), true),
            'I' => Self::int(size_of::<c_int>(), false),
            'l' => Self::int(size_of::<c_long>(), true),
            'L' => Self::int(size_of::<c_long>(), false),
            'q' => Self::I64,
            'Q' => Self::U64,
            'f' => Self::F32,
            'd' => Self::F64,
            _ => return None,
        })
    }

    /// The typecode given to a file opened without one.
    fn typecode(self) -> char {
        match self {
            Self::I8 => 'b',
            Self::U8 => 'B',
            Self::I16 => 'h',
            Self::U16 => 'H',
            Self::I32 => 'i',
            Self::U32 => 'I',
            Self::I64 => 'q',
            Self::U64 => 'Q',
            Self::F32 => 'f',
            Self::F64 => 'd',
        }
    }

    /// The library's payload name of the type (what the file records).
    fn of_payload(name: &str) -> Option<Self> {
        Some(match name {
            "i8" => Self::I8,
            "u8" => Self::U8,
            "i16" => Self::I16,
            "u16" => Self::U16,
            "i32" => Self::I32,
            "u32" => Self::U32,
            "i64" => Self::I64,
            "u64" => Self::U64,
            "f32" => Self::F32,
            "f64" => Self::F64,
            _ => return None,
        })
    }
}

/// A typecode argument: a one-character string, or a `ctypes` type
/// (`ctypes.c_int`), whose `_type_` is its typecode. Answers the typecode
/// as given and its element type.
fn typecode_arg(obj: &Bound<'_, PyAny>) -> PyResult<(char, Elem)> {
    let code = if let Ok(s) = obj.cast::<PyString>() {
        s.to_cow()?.into_owned()
    } else if obj.is_instance_of::<PyType>() && obj.hasattr("_type_")? {
        match obj.getattr("_type_")?.extract::<String>() {
            Ok(s) => s,
            Err(_) => {
                return Err(PyTypeError::new_err(format!(
                    "{} is not a ctypes type of a number",
                    obj.repr()?
                )));
            }
        }
    } else {
        return Err(PyTypeError::new_err(format!(
            "a typecode is a one-character string ({TYPECODES}) or a ctypes type, not {}",
            obj.get_type().name()?
        )));
    };
    let mut chars = code.chars();
    match (chars.next(), chars.next()) {
        (Some(tc), None) => match Elem::of_typecode(tc) {
            Some(elem) => Ok((tc, elem)),
            None => Err(PyValueError::new_err(format!(
                "unsupported typecode {code:?}: it must be one of {TYPECODES}"
            ))),
        },
        _ => Err(PyValueError::new_err(format!(
            "bad typecode {code:?}: it must be one character, one of {TYPECODES}"
        ))),
    }
}

/// An element type as the bindings convert it to and from Python.
trait PyElem: Element {
    /// `obj` as this type exactly: `OverflowError` if out of range,
    /// `TypeError` if not a number of the right sort.
    fn from_py(obj: &Bound<'_, PyAny>, tc: char) -> PyResult<Self>;
    /// `obj` as an addend: integers modulo 2**bits (but one that fits
    /// neither the signed nor the unsigned type is refused), floats as
    /// [`PyElem::from_py`].
    fn delta_from_py(obj: &Bound<'_, PyAny>, tc: char) -> PyResult<Self>;
    /// The value as a Python `int` or `float`.
    fn to_py(self, py: Python<'_>) -> PyResult<Bound<'_, PyAny>>;
}

/// A Python integer (anything with `__index__`) as an `i128`: every `i64`
/// and `u64` fits; larger ones are `OverflowError`.
fn int_of(obj: &Bound<'_, PyAny>) -> PyResult<i128> {
    match obj.extract::<i64>() {
        Ok(v) => Ok(i128::from(v)),
        Err(e) if e.is_instance_of::<PyOverflowError>(obj.py()) => obj.extract::<i128>(),
        Err(e) => Err(e),
    }
}

fn out_of_range(v: &dyn std::fmt::Display, tc: char, lo: i128, hi: i128) -> PyErr {
    PyOverflowError::new_err(format!(
        "{v} is out of range for typecode '{tc}' ({lo} to {hi})"
    ))
}

/// The integer in `obj`, if it is within `lo..=hi`.
fn int_in(obj: &Bound<'_, PyAny>, tc: char, lo: i128, hi: i128) -> PyResult<i128> {
    match int_of(obj) {
        Ok(v) if (lo..=hi).contains(&v) => Ok(v),
        Ok(v) => Err(out_of_range(&v, tc, lo, hi)),
        Err(e) if e.is_instance_of::<PyOverflowError>(obj.py()) => {
            // (`str` of a huge int can itself fail: Python's digit limit.)
            let text = obj
                .str()
                .map_or_else(|_| "an integer".into(), |s| s.to_string());
            Err(out_of_range(&text, tc, lo, hi))
        }
        Err(e) => Err(e),
    }
}

macro_rules! int_elem {
    ($($t:ty: $unsigned:ty);* $(;)?) => {$(
        impl PyElem for $t {
            fn from_py(obj: &Bound<'_, PyAny>, tc: char) -> PyResult<Self> {
                let v = int_in(obj, tc, i128::from(<$t>::MIN), i128::from(<$t>::MAX))?;
                // In range: checked just above.
                Ok(v as $t)
            }

            fn delta_from_py(obj: &Bound<'_, PyAny>, tc: char) -> PyResult<Self> {
                let lo = -(1i128 << (<$t>::BITS - 1));
                let v = int_in(obj, tc, lo, i128::from(<$unsigned>::MAX))?;
                // Modulo 2**bits: the low bits, as two's complement.
                Ok(v as $unsigned as $t)
            }

            fn to_py(self, py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
                Ok(self.into_pyobject(py)?.into_any())
            }
        }
    )*};
}

int_elem!(
    i8: u8;
    u8: u8;
    i16: u16;
    u16: u16;
    i32: u32;
    u32: u32;
    i64: u64;
    u64: u64;
);

impl PyElem for f64 {
    fn from_py(obj: &Bound<'_, PyAny>, _tc: char) -> PyResult<Self> {
        obj.extract::<f64>()
    }

    fn delta_from_py(obj: &Bound<'_, PyAny>, tc: char) -> PyResult<Self> {
        Self::from_py(obj, tc)
    }

    fn to_py(self, py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
        Ok(self.into_pyobject(py)?.into_any())
    }
}

impl PyElem for f32 {
    fn from_py(obj: &Bound<'_, PyAny>, _tc: char) -> PyResult<Self> {
        // Rounded to the nearest single, infinity beyond its range (as
        // ctypes.c_float does).
        Ok(obj.extract::<f64>()? as f32)
    }

    fn delta_from_py(obj: &Bound<'_, PyAny>, tc: char) -> PyResult<Self> {
        Self::from_py(obj, tc)
    }

    fn to_py(self, py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
        Ok(f64::from(self).into_pyobject(py)?.into_any())
    }
}

/// An open file of elements: a counter, or an atomic array of one type.
enum Cells {
    Counter(Counter),
    I8(AtomicArray<i8>),
    U8(AtomicArray<u8>),
    I16(AtomicArray<i16>),
    U16(AtomicArray<u16>),
    I32(AtomicArray<i32>),
    U32(AtomicArray<u32>),
    I64(AtomicArray<i64>),
    U64(AtomicArray<u64>),
    F32(AtomicArray<f32>),
    F64(AtomicArray<f64>),
}

/// Runs `$body` with `$s` bound to the elements of `$cells` as a slice
/// of `Atomic<T>` for its own `T` (the body is compiled once per type).
macro_rules! on_cells {
    ($cells:expr, $s:ident => $body:expr) => {
        match $cells {
            Cells::Counter(c) => {
                let $s: &[Atomic<i64>] = std::slice::from_ref(&**c);
                $body
            }
            Cells::I8(a) => {
                let $s: &[Atomic<i8>] = a;
                $body
            }
            Cells::U8(a) => {
                let $s: &[Atomic<u8>] = a;
                $body
            }
            Cells::I16(a) => {
                let $s: &[Atomic<i16>] = a;
                $body
            }
            Cells::U16(a) => {
                let $s: &[Atomic<u16>] = a;
                $body
            }
            Cells::I32(a) => {
                let $s: &[Atomic<i32>] = a;
                $body
            }
            Cells::U32(a) => {
                let $s: &[Atomic<u32>] = a;
                $body
            }
            Cells::I64(a) => {
                let $s: &[Atomic<i64>] = a;
                $body
            }
            Cells::U64(a) => {
                let $s: &[Atomic<u64>] = a;
                $body
            }
            Cells::F32(a) => {
                let $s: &[Atomic<f32>] = a;
                $body
            }
            Cells::F64(a) => {
                let $s: &[Atomic<f64>] = a;
                $body
            }
        }
    };
}

/// Runs `$body` with the type alias `$t` set to `$elem`'s Rust type.
macro_rules! on_elem {
    ($elem:expr, $t:ident => $body:expr) => {
        match $elem {
            Elem::I8 => {
                type $t = i8;
                $body
            }
            Elem::U8 => {
                type $t = u8;
                $body
            }
            Elem::I16 => {
                type $t = i16;
                $body
            }
            Elem::U16 => {
                type $t = u16;
                $body
            }
            Elem::I32 => {
                type $t = i32;
                $body
            }
            Elem::U32 => {
                type $t = u32;
                $body
            }
            Elem::I64 => {
                type $t = i64;
                $body
            }
            Elem::U64 => {
                type $t = u64;
                $body
            }
            Elem::F32 => {
                type $t = f32;
                $body
            }
            Elem::F64 => {
                type $t = f64;
                $body
            }
        }
    };
}

/// How the files of an element type become [`Cells`].
trait IntoCells: PyElem {
    /// An open array of this type.
    fn cells(a: AtomicArray<Self>) -> Cells;

    /// Opens the `Value` file at `path`, or creates it holding `initial`:
    /// a one-element array (a counter for `i64`).
    fn open_or_create_value(path: &Path, initial: Self) -> Result<Cells, OpenError> {
        AtomicArray::<Self>::open_or_create_with(path, 1, initial, &CreateOptions::default())
            .map(Self::cells)
    }
}

macro_rules! into_cells {
    ($($t:ty: $v:ident),*) => {$(
        impl IntoCells for $t {
            fn cells(a: AtomicArray<Self>) -> Cells {
                Cells::$v(a)
            }
        }
    )*};
}

into_cells!(i8: I8, u8: U8, i16: I16, u16: U16, i32: I32, u32: U32, u64: U64, f32: F32, f64: F64);

impl IntoCells for i64 {
    fn cells(a: AtomicArray<Self>) -> Cells {
        Cells::I64(a)
    }

    fn open_or_create_value(path: &Path, initial: Self) -> Result<Cells, OpenError> {
        Counter::open_or_create(path, initial).map(Cells::Counter)
    }
}

impl Cells {
    fn elem(&self) -> Elem {
        match self {
            Self::Counter(_) | Self::I64(_) => Elem::I64,
            Self::I8(_) => Elem::I8,
            Self::U8(_) => Elem::U8,
            Self::I16(_) => Elem::I16,
            Self::U16(_) => Elem::U16,
            Self::I32(_) => Elem::I32,
            Self::U32(_) => Elem::U32,
            Self::U64(_) => Elem::U64,
            Self::F32(_) => Elem::F32,
            Self::F64(_) => Elem::F64,
        }
    }

    fn len(&self) -> usize {
        on_cells!(self, s => s.len())
    }
}

/// What a file holds, in Python's words (`Value('i')`, `Array('d', 10)`,
/// or the library's name of another kind), for messages; `None` if it
/// cannot be read.
fn describe(path: &Path) -> Option<String> {
    let region = Region::open_any(path).ok()?;
    let desc = region.descriptor();
    let elem = desc.payload_name().ok().and_then(Elem::of_payload);
    Some(match (desc.kind(), elem) {
        (Some(mmring::layout::Kind::Counter), _) => "Value('q') (a counter)".to_string(),
        (Some(mmring::layout::Kind::AtomicArray), Some(e)) if desc.capacity == 1 => {
            format!("Value('{0}') (an Array('{0}', 1))", e.typecode())
        }
        (Some(mmring::layout::Kind::AtomicArray), Some(e)) => {
            format!("Array('{}', {})", e.typecode(), desc.capacity)
        }
        (Some(kind), _) => format!("{} (not a Value or Array)", kind.name()),
        (None, _) => format!("an object of unknown kind {}", desc.kind),
    })
}

/// The element type of the atomic array or counter at `path`, and its
/// length, from its descriptor.
fn probe(path: &Path) -> Result<(mmring::layout::Kind, Elem, u64), OpenError> {
    let region = Region::open_any(path)?;
    let desc = region.descriptor();
    let wrong = |expected: &str| OpenError::WrongKind {
        path: path.to_path_buf(),
        expected: expected.to_string(),
        found: describe(path).unwrap_or_else(|| "another kind".into()),
    };
    let kind = desc
        .kind()
        .ok_or_else(|| wrong("a counter or an atomic array"))?;
    let elem = desc
        .payload_name()
        .ok()
        .and_then(Elem::of_payload)
        .ok_or_else(|| wrong("an element type of Python's typecodes"))?;
    Ok((kind, elem, desc.capacity))
}

fn open_array_of<T: IntoCells>(path: &Path) -> Result<Cells, OpenError> {
    AtomicArray::<T>::open(path).map(T::cells)
}

/// Opens a `Value`'s file, whatever its type: a counter, or an atomic
/// array of one element (what `Local` reopens in another process).
fn open_value(path: &Path) -> Result<Cells, OpenError> {
    let (kind, elem, len) = probe(path)?;
    match kind {
        mmring::layout::Kind::Counter => Counter::open(path).map(Cells::Counter),
        mmring::layout::Kind::AtomicArray if len == 1 => {
            on_elem!(elem, T => open_array_of::<T>(path))
        }
        _ => Err(OpenError::WrongKind {
            path: path.to_path_buf(),
            expected: "a Value (a counter or a one-element atomic array)".into(),
            found: describe(path).unwrap_or_else(|| kind.name().into()),
        }),
    }
}

/// Opens an `Array`'s file, whatever its element type.
fn open_array(path: &Path) -> Result<Cells, OpenError> {
    let (kind, elem, _) = probe(path)?;
    match kind {
        mmring::layout::Kind::AtomicArray => on_elem!(elem, T => open_array_of::<T>(path)),
        _ => Err(OpenError::WrongKind {
            path: path.to_path_buf(),
            expected: "an Array (an atomic array)".into(),
            found: describe(path).unwrap_or_else(|| kind.name().into()),
        }),
    }
}

/// The error for an existing file that is not what `asked` describes:
/// `WrongKindError` for another kind or element type, `mmring.Error` for
/// another length; other errors as [`open_error`] maps them.
fn mismatch(err: OpenError, path: &Path, asked: &str) -> PyErr {
    let found = || describe(path).unwrap_or_else(|| "something else".into());
    match err {
        OpenError::WrongKind { .. } | OpenError::WrongPayload { .. } => {
            WrongKindError::new_err(format!("{} holds {}, not {asked}", path.display(), found()))
        }
        OpenError::InvalidCapacity { .. } if path.exists() => {
            Error::new_err(format!("{} holds {}, not {asked}", path.display(), found()))
        }
        e => open_error(e),
    }
}

/// The element at `index` (negative counts from the end), or `IndexError`.
fn at<T: Element>(s: &[Atomic<T>], index: isize) -> PyResult<&Atomic<T>> {
    let len = s.len() as isize;
    let i = if index < 0 { index + len } else { index };
    if (0..len).contains(&i) {
        Ok(&s[i as usize])
    } else {
        Err(pyo3::exceptions::PyIndexError::new_err(
            "Array index out of range",
        ))
    }
}

/// `fn` applied atomically to `cell` by a compare-and-swap loop (`fn` may
/// run more than once); its result is stored exactly as a store would,
/// and returned. An exception from `fn` or its result stores nothing.
fn update_cell<'py, T: PyElem>(
    py: Python<'py>,
    cell: &Atomic<T>,
    f: &Bound<'py, PyAny>,
    tc: char,
) -> PyResult<Bound<'py, PyAny>> {
    let mut failed = None;
    let mut installed = None;
    let done = cell.fetch_update(|old| {
        let new = old
            .to_py(py)
            .and_then(|o| f.call1((o,)))
            .and_then(|n| T::from_py(&n, tc));
        match new {
            Ok(n) => {
                installed = Some(n);
                Some(n)
            }
            Err(e) => {
                failed = Some(e);
                None
            }
        }
    });
    match (done, failed, installed) {
        (Ok(_), _, Some(new)) => new.to_py(py),
        (_, Some(e), _) => Err(e),
        _ => unreachable!("fetch_update stops only on success or when the closure declines"),
    }
}

/// The read-modify-write operations of one element, shared by `Value`
/// and `Array` (which picks the element first).
enum Op<'a, 'py> {
    FetchAdd(&'a Bound<'py, PyAny>),
    FetchSub(&'a Bound<'py, PyAny>),
    Swap(&'a Bound<'py, PyAny>),
    FetchMax(&'a Bound<'py, PyAny>),
    FetchMin(&'a Bound<'py, PyAny>),
    Store(&'a Bound<'py, PyAny>),
    Load,
    Update(&'a Bound<'py, PyAny>),
    CompareExchange(&'a Bound<'py, PyAny>, &'a Bound<'py, PyAny>),
}

fn apply<'py, T: PyElem>(
    py: Python<'py>,
    cell: &Atomic<T>,
    op: Op<'_, 'py>,
    tc: char,
) -> PyResult<Bound<'py, PyAny>> {
    match op {
        Op::Load => cell.load().to_py(py),
        Op::Store(v) => {
            cell.store(T::from_py(v, tc)?);
            Ok(py.None().into_bound(py))
        }
        Op::FetchAdd(n) => cell.fetch_add(T::delta_from_py(n, tc)?).to_py(py),
        Op::FetchSub(n) => cell.fetch_sub(T::delta_from_py(n, tc)?).to_py(py),
        Op::Swap(v) => cell.swap(T::from_py(v, tc)?).to_py(py),
        Op::FetchMax(v) => cell.fetch_max(T::from_py(v, tc)?).to_py(py),
        Op::FetchMin(v) => cell.fetch_min(T::from_py(v, tc)?).to_py(py),
        Op::Update(f) => update_cell(py, cell, f, tc),
        Op::CompareExchange(old, new) => {
            let (old, new) = (T::from_py(old, tc)?, T::from_py(new, tc)?);
            Ok(
                pyo3::types::PyBool::new(py, cell.compare_exchange(old, new).is_ok())
                    .to_owned()
                    .into_any(),
            )
        }
    }
}

/// The error for the names of `multiprocessing`'s synchronized wrappers
/// (`get_lock`, `get_obj`, `acquire`, `release`) on a `Value` or `Array`.
fn no_lock(kind: &str, name: &str) -> PyErr {
    match name {
        "get_obj" => PyAttributeError::new_err(format!(
            "'mmring.{kind}' object has no attribute 'get_obj': there is no ctypes object; \
             use the mmring.{kind} itself"
        )),
        _ => PyAttributeError::new_err(format!(
            "'mmring.{kind}' object has no attribute '{name}': mmring.{kind} has no lock, \
             and needs none: use fetch_add, fetch_sub, compare_exchange or update, \
             which are atomic across processes"
        )),
    }
}

/// A shared number, as ``multiprocessing.Value``, with atomic operations
/// instead of ``get_lock()``.
///
/// ``Value(typecode, value=0, name=None)`` creates the file holding
/// ``value``, or opens the one already at ``name`` without resetting it
/// (``value`` applies only when the file is created). ``typecode`` is one
/// of ``b B h H i I l L q Q f d`` (C's types, as ``ctypes`` sizes them on
/// this platform) or a ``ctypes`` type such as ``ctypes.c_int``. An
/// existing file of another type raises ``mmring.WrongKindError``.
/// ``Value.open(name)`` opens only, and takes the typecode from the file.
///
/// ``v.value`` reads and ``v.value = x`` writes (each atomic; ``v.value +=
/// 1`` is a read then a write, not atomic: use ``fetch_add``). Storing an
/// integer outside the type's range raises ``OverflowError`` (ctypes
/// would truncate); ``fetch_add``/``fetch_sub`` wrap around as C does.
/// There is no ``get_lock()``: every operation is atomic without one
/// (``lock=`` is accepted, for ported code, and changes nothing).
#[pyclass(module = "mmring", frozen)]
pub struct Value {
    local: Local<Cells>,
    typecode: char,
    elem: Elem,
}

/// An existing file that is not a `Value` of `tc` (an array of another
/// length is another kind here, not another shape).
fn value_error(err: OpenError, path: &Path, tc: char) -> PyErr {
    let err = match err {
        OpenError::InvalidCapacity { path, expected, .. } => OpenError::WrongKind {
            path,
            expected,
            found: String::new(),
        },
        e => e,
    };
    mismatch(err, path, &format!("Value('{tc}')"))
}

impl Value {
    fn cells(&self) -> PyResult<std::sync::Arc<Cells>> {
        let cells = self.local.get("Value")?;
        if cells.elem() != self.elem || cells.len() != 1 {
            return Err(WrongKindError::new_err(format!(
                "{} now holds {}, not Value('{}')",
                self.local.target.name,
                describe(&self.local.target.path).unwrap_or_else(|| "something else".into()),
                self.typecode
            )));
        }
        Ok(cells)
    }

    fn op<'py>(&self, py: Python<'py>, op: Op<'_, 'py>) -> PyResult<Bound<'py, PyAny>> {
        let cells = self.cells()?;
        let tc = self.typecode;
        on_cells!(&*cells, s => apply(py, &s[0], op, tc))
    }

    fn opened(target: Target, cells: Cells, typecode: Option<char>) -> Self {
        let elem = cells.elem();
        Self {
            typecode: typecode.unwrap_or(elem.typecode()),
            elem,
            local: Local::opened(target, cells, open_value),
        }
    }
}

#[pymethods]
impl Value {
    #[new]
    #[pyo3(signature = (typecode, value=None, name=None, *, lock=None))]
    fn new(
        typecode: &Bound<'_, PyAny>,
        value: Option<&Bound<'_, PyAny>>,
        name: Option<&str>,
        lock: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        // `lock=` is accepted for ported code and means nothing: there is
        // no lock to take or leave out.
        let _ = lock;
        let (tc, elem) = typecode_arg(typecode)?;
        let target = Target::new(name, "value")?;
        let path = target.path.clone();
        let cells = on_elem!(elem, T => {
            let initial = match value {
                Some(v) => T::from_py(v, tc)?,
                None => T::zeroed(),
            };
            match T::open_or_create_value(&path, initial) {
                Ok(cells) => cells,
                // Another process's `Value(...)` of the same type may be a
                // one-element array of i64 (Array('q', 1)): take it too.
                Err(e @ OpenError::WrongKind { .. }) => match open_value(&path) {
                    Ok(cells) if cells.elem() == elem => cells,
                    _ => return Err(value_error(e, &path, tc)),
                },
                Err(e) => return Err(value_error(e, &path, tc)),
            }
        });
        Ok(Self::opened(target, cells, Some(tc)))
    }

    /// Opens an existing value, of whatever type its file holds;
    /// ``FileNotFoundError`` if there is none.
    #[classmethod]
    fn open(_cls: &Bound<'_, PyType>, name: &str) -> PyResult<Self> {
        let target = Target::named(name)?;
        let cells = open_value(&target.path).map_err(|e| match e {
            OpenError::WrongKind { .. } | OpenError::WrongPayload { .. } => {
                WrongKindError::new_err(format!(
                    "{} holds {}, not a Value",
                    target.path.display(),
                    describe(&target.path).unwrap_or_else(|| "something else".into())
                ))
            }
            e => open_error(e),
        })?;
        Ok(Self::opened(target, cells, None))
    }

    /// The value at ``name``, opened on first use (what unpickling makes).
    #[staticmethod]
    fn _attach(name: &str, typecode: &Bound<'_, PyAny>) -> PyResult<Self> {
        let (tc, elem) = typecode_arg(typecode)?;
        Ok(Self {
            local: Local::lazy(Target::named(name)?, open_value),
            typecode: tc,
            elem,
        })
    }

    /// The value (one atomic load; it may change as soon as it is read).
    #[getter]
    fn get_value<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.op(py, Op::Load)
    }

    /// Stores a value (one atomic store): ``OverflowError`` if an integer
    /// is outside the type's range, ``TypeError`` if it is not a number
    /// of the type's sort; nothing is stored then.
    #[setter]
    fn set_value(&self, py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        self.op(py, Op::Store(value)).map(drop)
    }

    /// Adds ``n`` atomically and returns the value before. Integers wrap
    /// around as C's do (``n`` is taken modulo 2**bits).
    fn fetch_add<'py>(
        &self,
        py: Python<'py>,
        n: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.op(py, Op::FetchAdd(n))
    }

    /// Subtracts ``n`` atomically and returns the value before (wrapping,
    /// as ``fetch_add``).
    fn fetch_sub<'py>(
        &self,
        py: Python<'py>,
        n: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.op(py, Op::FetchSub(n))
    }

    /// Stores ``value`` and returns the value before, atomically.
    fn swap<'py>(&self, py: Python<'py>, value: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        self.op(py, Op::Swap(value))
    }

    /// Stores the larger of the value and ``value``; returns the value before.
    fn fetch_max<'py>(
        &self,
        py: Python<'py>,
        value: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.op(py, Op::FetchMax(value))
    }

    /// Stores the smaller of the value and ``value``; returns the value before.
    fn fetch_min<'py>(
        &self,
        py: Python<'py>,
        value: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.op(py, Op::FetchMin(value))
    }

    /// Stores ``new`` if the value is ``old``, atomically; returns whether
    /// it did. Floats are compared bit for bit (a NaN matches itself,
    /// ``-0.0`` does not match ``0.0``).
    fn compare_exchange(
        &self,
        py: Python<'_>,
        old: &Bound<'_, PyAny>,
        new: &Bound<'_, PyAny>,
    ) -> PyResult<bool> {
        self.op(py, Op::CompareExchange(old, new))?.extract()
    }

    /// Replaces the value ``x`` with ``fn(x)`` atomically and returns the
    /// new value. ``fn`` runs with the GIL held and may run more than once
    /// (when another process changed the value meanwhile, it runs again on
    /// the fresh one): keep it a pure function of its argument. If ``fn``
    /// raises, or returns what cannot be stored, nothing is stored.
    fn update<'py>(
        &self,
        py: Python<'py>,
        r#fn: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.op(py, Op::Update(r#fn))
    }

    /// The typecode (as given; from the file's type when opened without one).
    #[getter]
    fn typecode(&self) -> String {
        self.typecode.to_string()
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

    // multiprocessing's lock methods, as attributes that are not there
    // with a message saying what to use instead. Getters rather than a
    // `__getattr__`: a type with its own attribute lookup loses CPython's
    // method-call shortcut, which costs every `v.fetch_add(1)` ~45 ns.
    #[getter(get_lock)]
    fn get_lock(&self) -> PyResult<Py<PyAny>> {
        Err(no_lock("Value", "get_lock"))
    }

    #[getter(get_obj)]
    fn get_obj(&self) -> PyResult<Py<PyAny>> {
        Err(no_lock("Value", "get_obj"))
    }

    #[getter]
    fn acquire(&self) -> PyResult<Py<PyAny>> {
        Err(no_lock("Value", "acquire"))
    }

    #[getter]
    fn release(&self) -> PyResult<Py<PyAny>> {
        Err(no_lock("Value", "release"))
    }

    fn __reduce__<'py>(
        slf: &Bound<'py, Self>,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyTuple>)> {
        let py = slf.py();
        let attach = slf.get_type().getattr("_attach")?;
        let me = slf.get();
        Ok((
            attach,
            PyTuple::new(py, [me.local.target.shared_path(), me.typecode.to_string()])?,
        ))
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let value = self
            .op(py, Op::Load)
            .and_then(|v| v.repr().map(|r| r.to_string()))
            .unwrap_or_else(|_| "?".into());
        format!(
            "mmring.Value('{}', {value}, name={:?})",
            self.typecode, self.local.target.name
        )
    }
}

/// A shared fixed-length array of numbers, as ``multiprocessing.Array``,
/// with atomic operations on each element instead of ``get_lock()``.
///
/// ``Array(typecode, size_or_initializer, name=None)`` creates the file,
/// ``size`` zeros or holding the initializer's values, or opens the one
/// already at ``name`` without resetting it (the initializer applies only
/// when the file is created). An existing array of another element type
/// raises ``mmring.WrongKindError``, of another length ``mmring.Error``.
/// ``Array.open(name)`` opens only, and takes the typecode and length from
/// the file.
///
/// ``a[i]``, ``a[i] = x`` (negative indices count from the end;
/// ``IndexError`` beyond), ``len(a)``, ``a[i:j:k]`` (a list), slice
/// assignment (a sequence of the slice's length), iteration. Each element
/// is read and written atomically; a slice or an iteration is not one
/// atomic snapshot while others write. ``fetch_add(i, n)``,
/// ``compare_exchange(i, old, new)``, ``update(i, fn)`` ... are atomic on
/// element ``i``. Stores and wrapping as ``mmring.Value``; no
/// ``get_lock()`` (``lock=`` is accepted and changes nothing).
#[pyclass(module = "mmring", frozen)]
pub struct Array {
    local: Local<Cells>,
    typecode: char,
    elem: Elem,
}

/// A whole-array operation's items: an index, or a slice's positions.
enum Items {
    One(isize),
    Slice(Vec<usize>),
}

fn items(index: &Bound<'_, PyAny>, len: usize) -> PyResult<Items> {
    if let Ok(slice) = index.cast::<PySlice>() {
        let ix = slice.indices(len as isize)?;
        let pos = (0..ix.slicelength)
            .map(|k| (ix.start + k as isize * ix.step) as usize)
            .collect();
        return Ok(Items::Slice(pos));
    }
    index_arg(index).map(Items::One)
}

/// An element's index: an integer (`__index__`); one too large for any
/// array is `IndexError`, anything else `TypeError`.
fn index_arg(index: &Bound<'_, PyAny>) -> PyResult<isize> {
    match index.extract::<isize>() {
        Ok(i) => Ok(i),
        Err(e) if e.is_instance_of::<PyOverflowError>(index.py()) => Err(
            pyo3::exceptions::PyIndexError::new_err("Array index out of range"),
        ),
        Err(_) => Err(PyTypeError::new_err(format!(
            "Array indices must be integers or slices, not {}",
            index.get_type().name()?
        ))),
    }
}

fn get_items<'py, T: PyElem>(
    py: Python<'py>,
    s: &[Atomic<T>],
    items: Items,
) -> PyResult<Bound<'py, PyAny>> {
    match items {
        Items::One(i) => at(s, i)?.load().to_py(py),
        Items::Slice(pos) => {
            let values = pos
                .into_iter()
                .map(|p| s[p].load().to_py(py))
                .collect::<PyResult<Vec<_>>>()?;
            Ok(PyList::new(py, values)?.into_any())
        }
    }
}

fn set_items<T: PyElem>(
    s: &[Atomic<T>],
    items: Items,
    value: &Bound<'_, PyAny>,
    tc: char,
) -> PyResult<()> {
    match items {
        Items::One(i) => {
            let v = T::from_py(value, tc)?;
            at(s, i)?.store(v);
        }
        Items::Slice(pos) => {
            // Every value converted before any is stored: bad input stores nothing.
            let values = value
                .try_iter()
                .map_err(|_| {
                    PyTypeError::new_err("can only assign an iterable of numbers to an Array slice")
                })?
                .map(|v| T::from_py(&v?, tc))
                .collect::<PyResult<Vec<T>>>()?;
            if values.len() != pos.len() {
                return Err(PyValueError::new_err(format!(
                    "can only assign a sequence of the same length to an Array slice \
                     ({} values to {} elements)",
                    values.len(),
                    pos.len()
                )));
            }
            for (p, v) in pos.into_iter().zip(values) {
                s[p].store(v);
            }
        }
    }
    Ok(())
}

/// The initializer's values as `T`, all converted before anything is made.
fn values_of<T: PyElem>(init: &Bound<'_, PyAny>, tc: char) -> PyResult<Vec<T>> {
    init.try_iter()
        .map_err(|_| {
            PyTypeError::new_err(format!(
                "size_or_initializer must be an int or an iterable of numbers, not {}",
                init.get_type()
                    .name()
                    .map_or_else(|_| "?".into(), |n| n.to_string())
            ))
        })?
        .map(|v| T::from_py(&v?, tc))
        .collect()
}

fn array_open_or_create<T: IntoCells>(
    path: &Path,
    init: Init<'_, '_>,
    tc: char,
) -> PyResult<Cells> {
    let opts = CreateOptions::default();
    let made = match init {
        Init::Size(len) => AtomicArray::<T>::open_or_create(path, len),
        Init::Values(values) => {
            let values = values_of::<T>(values, tc)?;
            if values.is_empty() {
                return Err(PyValueError::new_err(
                    "an Array needs at least one element (the initializer is empty)",
                ));
            }
            AtomicArray::<T>::open_or_create_from(path, &values, &opts)
        }
    };
    made.map(T::cells).map_err(|e| {
        let len = match init {
            Init::Size(len) => len.to_string(),
            Init::Values(v) => v.len().map_or_else(|_| "?".into(), |n| n.to_string()),
        };
        mismatch(e, path, &format!("Array('{tc}', {len})"))
    })
}

#[derive(Clone, Copy)]
enum Init<'a, 'py> {
    Size(usize),
    Values(&'a Bound<'py, PyAny>),
}

impl Array {
    fn cells(&self) -> PyResult<std::sync::Arc<Cells>> {
        let cells = self.local.get("Array")?;
        if cells.elem() != self.elem {
            return Err(WrongKindError::new_err(format!(
                "{} now holds {}, not an Array('{}')",
                self.local.target.name,
                describe(&self.local.target.path).unwrap_or_else(|| "something else".into()),
                self.typecode
            )));
        }
        Ok(cells)
    }

    fn op<'py>(
        &self,
        py: Python<'py>,
        index: &Bound<'py, PyAny>,
        op: Op<'_, 'py>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let index = index_arg(index)?;
        let cells = self.cells()?;
        let tc = self.typecode;
        on_cells!(&*cells, s => apply(py, at(s, index)?, op, tc))
    }

    fn opened(target: Target, cells: Cells, typecode: Option<char>) -> Self {
        let elem = cells.elem();
        Self {
            typecode: typecode.unwrap_or(elem.typecode()),
            elem,
            local: Local::opened(target, cells, open_array),
        }
    }
}

#[pymethods]
impl Array {
    #[new]
    #[pyo3(signature = (typecode, size_or_initializer, name=None, *, lock=None))]
    fn new(
        typecode: &Bound<'_, PyAny>,
        size_or_initializer: &Bound<'_, PyAny>,
        name: Option<&str>,
        lock: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        // `lock=` is accepted for ported code and means nothing.
        let _ = lock;
        let (tc, elem) = typecode_arg(typecode)?;
        let init = if size_or_initializer.is_instance_of::<pyo3::types::PyInt>() {
            let size = size_or_initializer.extract::<i128>()?;
            if size < 1 {
                return Err(PyValueError::new_err(format!(
                    "an Array needs at least one element, not {size}"
                )));
            }
            Init::Size(usize::try_from(size).map_err(|_| {
                PyValueError::new_err(format!("an Array of {size} elements is too large"))
            })?)
        } else {
            Init::Values(size_or_initializer)
        };
        let target = Target::new(name, "array")?;
        let cells = on_elem!(elem, T => array_open_or_create::<T>(&target.path, init, tc)?);
        Ok(Self::opened(target, cells, Some(tc)))
    }

    /// Opens an existing array, of whatever type and length its file
    /// holds; ``FileNotFoundError`` if there is none.
    #[classmethod]
    fn open(_cls: &Bound<'_, PyType>, name: &str) -> PyResult<Self> {
        let target = Target::named(name)?;
        let cells = open_array(&target.path).map_err(|e| match e {
            OpenError::WrongKind { .. } | OpenError::WrongPayload { .. } => {
                WrongKindError::new_err(format!(
                    "{} holds {}, not an Array",
                    target.path.display(),
                    describe(&target.path).unwrap_or_else(|| "something else".into())
                ))
            }
            e => open_error(e),
        })?;
        Ok(Self::opened(target, cells, None))
    }

    /// The array at ``name``, opened on first use (what unpickling makes).
    #[staticmethod]
    fn _attach(name: &str, typecode: &Bound<'_, PyAny>) -> PyResult<Self> {
        let (tc, elem) = typecode_arg(typecode)?;
        Ok(Self {
            local: Local::lazy(Target::named(name)?, open_array),
            typecode: tc,
            elem,
        })
    }

    fn __len__(&self) -> PyResult<usize> {
        Ok(self.cells()?.len())
    }

    fn __getitem__<'py>(
        &self,
        py: Python<'py>,
        index: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let cells = self.cells()?;
        let items = items(index, cells.len())?;
        on_cells!(&*cells, s => get_items(py, s, items))
    }

    fn __setitem__(&self, index: &Bound<'_, PyAny>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let cells = self.cells()?;
        let items = items(index, cells.len())?;
        let tc = self.typecode;
        on_cells!(&*cells, s => set_items(s, items, value, tc))
    }

    fn __delitem__(&self, _index: &Bound<'_, PyAny>) -> PyResult<()> {
        Err(PyTypeError::new_err(
            "an Array has a fixed length: its elements cannot be deleted",
        ))
    }

    fn __iter__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let all = PySlice::full(py);
        let list = slf.get().__getitem__(py, all.as_any())?;
        Ok(list.try_iter()?.into_any())
    }

    /// Adds ``n`` to element ``i`` atomically and returns its value
    /// before. Integers wrap around as C's do.
    fn fetch_add<'py>(
        &self,
        py: Python<'py>,
        i: &Bound<'py, PyAny>,
        n: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.op(py, i, Op::FetchAdd(n))
    }

    /// Subtracts ``n`` from element ``i`` atomically and returns its value
    /// before (wrapping, as ``fetch_add``).
    fn fetch_sub<'py>(
        &self,
        py: Python<'py>,
        i: &Bound<'py, PyAny>,
        n: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.op(py, i, Op::FetchSub(n))
    }

    /// Stores ``value`` in element ``i`` and returns its value before.
    fn swap<'py>(
        &self,
        py: Python<'py>,
        i: &Bound<'py, PyAny>,
        value: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.op(py, i, Op::Swap(value))
    }

    /// Stores the larger of element ``i`` and ``value``; returns its value before.
    fn fetch_max<'py>(
        &self,
        py: Python<'py>,
        i: &Bound<'py, PyAny>,
        value: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.op(py, i, Op::FetchMax(value))
    }

    /// Stores the smaller of element ``i`` and ``value``; returns its value before.
    fn fetch_min<'py>(
        &self,
        py: Python<'py>,
        i: &Bound<'py, PyAny>,
        value: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.op(py, i, Op::FetchMin(value))
    }

    /// Stores ``new`` in element ``i`` if it is ``old``, atomically;
    /// returns whether it did (floats compared bit for bit).
    fn compare_exchange<'py>(
        &self,
        py: Python<'py>,
        i: &Bound<'py, PyAny>,
        old: &Bound<'py, PyAny>,
        new: &Bound<'py, PyAny>,
    ) -> PyResult<bool> {
        self.op(py, i, Op::CompareExchange(old, new))?.extract()
    }

    /// Replaces element ``i``'s value ``x`` with ``fn(x)`` atomically and
    /// returns the new value; ``fn`` may run more than once (see
    /// ``Value.update``).
    fn update<'py>(
        &self,
        py: Python<'py>,
        i: &Bound<'py, PyAny>,
        r#fn: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.op(py, i, Op::Update(r#fn))
    }

    /// The typecode (as given; from the file's type when opened without one).
    #[getter]
    fn typecode(&self) -> String {
        self.typecode.to_string()
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

    // multiprocessing's lock methods, as attributes that are not there
    // with a message saying what to use instead. Getters rather than a
    // `__getattr__`: a type with its own attribute lookup loses CPython's
    // method-call shortcut, which costs every `v.fetch_add(1)` ~45 ns.
    #[getter(get_lock)]
    fn get_lock(&self) -> PyResult<Py<PyAny>> {
        Err(no_lock("Array", "get_lock"))
    }

    #[getter(get_obj)]
    fn get_obj(&self) -> PyResult<Py<PyAny>> {
        Err(no_lock("Array", "get_obj"))
    }

    #[getter]
    fn acquire(&self) -> PyResult<Py<PyAny>> {
        Err(no_lock("Array", "acquire"))
    }

    #[getter]
    fn release(&self) -> PyResult<Py<PyAny>> {
        Err(no_lock("Array", "release"))
    }

    fn __reduce__<'py>(
        slf: &Bound<'py, Self>,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyTuple>)> {
        let py = slf.py();
        let attach = slf.get_type().getattr("_attach")?;
        let me = slf.get();
        Ok((
            attach,
            PyTuple::new(py, [me.local.target.shared_path(), me.typecode.to_string()])?,
        ))
    }

    fn __repr__(&self) -> String {
        let len = self
            .cells()
            .map_or_else(|_| "?".into(), |c| c.len().to_string());
        format!(
            "mmring.Array('{}', {len}, name={:?})",
            self.typecode, self.local.target.name
        )
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Value>()?;
    m.add_class::<Array>()
}
