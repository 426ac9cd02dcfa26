//! [`Counter`] (one shared `i64`) and [`AtomicArray<T>`] (a fixed-length
//! shared array of 8-, 16-, 32- or 64-bit integers, signed or unsigned,
//! `f32` or `f64`): what `multiprocessing.Value` and `Array` do, without
//! `get_lock()`.
//!
//! Every operation is one atomic instruction or one compare-and-swap loop on
//! the shared memory itself. There is no lock, so there is no lock for a dead
//! process to hold.
//!
//! The element and its operations are [`Atomic<T>`](crate::Atomic), in
//! [`crate::raw::atomic`] with the memory orderings they use.

use std::ops::Deref;
use std::path::Path;

use crate::error::OpenError;
use crate::handle::{Mapped, Shape};
use crate::layout::Kind;
use crate::pod::TypeInfo;
pub use crate::raw::atomic::{Atomic, Element};
use crate::region::{CreateOptions, Expect, Region};

fn expect<T: Element>(kind: Kind) -> Expect {
    Expect {
        kind,
        elem: TypeInfo::of::<T>(),
        any_size: false,
    }
}

/// A counter file: one element at the start of the body.
struct CounterShape;

impl Shape for CounterShape {
    /// The initial value.
    type Spec = i64;
    type Geometry = ();
    type Head = Atomic<i64>;
    type Elem = Atomic<i64>;

    fn expect(_: Option<&i64>) -> Expect {
        expect::<i64>(Kind::Counter)
    }

    fn capacity(_: &i64) -> u64 {
        1
    }

    fn init(region: &Region, initial: &i64) {
        region.body::<Atomic<i64>>(0, 1)[0].store(*initial);
    }

    fn geometry(_: &Region) -> Result<(), OpenError> {
        Ok(())
    }

    fn elems(_: &()) -> usize {
        0
    }
}

/// An array file: the body is all elements.
struct ArrayShape<T>(std::marker::PhantomData<T>);

/// What `AtomicArray::create` asks for: a length, and the elements'
/// values: `values[i]` where there is one, `initial` after them.
struct ArraySpec<T> {
    len: usize,
    initial: T,
    values: Vec<T>,
}

impl<T: Element> ArraySpec<T> {
    fn from_values(values: &[T]) -> Self {
        Self {
            len: values.len(),
            initial: T::zeroed(),
            values: values.to_vec(),
        }
    }
}

impl<T: Element> Shape for ArrayShape<T> {
    type Spec = ArraySpec<T>;
    /// The length.
    type Geometry = usize;
    type Head = [Atomic<T>; 0];
    type Elem = Atomic<T>;

    fn expect(_: Option<&ArraySpec<T>>) -> Expect {
        expect::<T>(Kind::AtomicArray)
    }

    fn capacity(spec: &ArraySpec<T>) -> u64 {
        spec.len as u64
    }

    fn init(region: &Region, spec: &ArraySpec<T>) {
        let values = spec.values.iter().chain(std::iter::repeat(&spec.initial));
        for (e, v) in region.body::<Atomic<T>>(0, spec.len).iter().zip(values) {
            e.store(*v);
        }
    }

    fn geometry(region: &Region) -> Result<usize, OpenError> {
        // Validated at open: at most MAX_BODY / size elements, all in the
        // body (the element type's size is T's: the payload matched).
        Ok(region.descriptor().capacity as usize)
    }

    fn elems(len: &usize) -> usize {
        *len
    }

    fn matches(len: &usize, spec: &ArraySpec<T>, path: &Path) -> Result<(), OpenError> {
        if *len != spec.len {
            return Err(OpenError::InvalidCapacity {
                path: path.to_path_buf(),
                expected: format!("length {} as asked", spec.len),
                found: *len as u64,
            });
        }
        Ok(())
    }
}

/// A shared `i64` in its own file: `multiprocessing.Value('i')` with no
/// lock needed.
///
/// Dereferences to [`Atomic<i64>`], which has the operations:
/// [`load`](Atomic::load), [`store`](Atomic::store),
/// [`fetch_add`](Atomic::fetch_add), [`fetch_sub`](Atomic::fetch_sub),
/// [`compare_exchange`](Atomic::compare_exchange),
/// [`fetch_update`](Atomic::fetch_update), [`fetch_max`](Atomic::fetch_max),
/// [`fetch_min`](Atomic::fetch_min), [`swap`](Atomic::swap).
///
/// # Examples
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// # let path = dir.path().join("count");
/// use mmring::Counter;
/// let count = Counter::create(&path, 20_000)?;
/// // ... in any number of processes:
/// let same = Counter::open(&path)?;
/// same.fetch_sub(1);
/// assert_eq!(count.load(), 19_999);
/// # Ok::<(), mmring::OpenError>(())
/// ```
pub struct Counter {
    mapped: Mapped<CounterShape>,
}

impl std::fmt::Debug for Counter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Counter")
            .field("path", &self.mapped.region().path())
            .field("value", &self.load())
            .finish()
    }
}

impl Counter {
    /// Creates a counter file holding `initial`.
    ///
    /// A bare name (`"count"`) is placed in `/dev/shm`; any path with a
    /// directory part is used as given.
    ///
    /// # Errors
    ///
    /// [`OpenError::AlreadyExists`] if something is at the path; the
    /// other [`OpenError`]s for a missing directory, permissions, space.
    pub fn create(path: impl AsRef<Path>, initial: i64) -> Result<Self, OpenError> {
        Self::create_with(path, initial, &CreateOptions::default())
    }

    /// [`Counter::create`] with a mode and label.
    ///
    /// # Errors
    ///
    /// As [`Counter::create`].
    pub fn create_with(
        path: impl AsRef<Path>,
        initial: i64,
        opts: &CreateOptions,
    ) -> Result<Self, OpenError> {
        Mapped::create(path, &initial, opts).map(|mapped| Self { mapped })
    }

    /// Opens an existing counter file.
    ///
    /// # Errors
    ///
    /// An [`OpenError`] naming what is wrong with the file.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, OpenError> {
        Mapped::open(path).map(|mapped| Self { mapped })
    }

    /// Opens the counter at `path`, creating it with `initial` if there
    /// is none; racing processes all end up with the same counter (one
    /// creator wins the name, the others open its file).
    ///
    /// Opening an existing counter never resets it: `initial` applies
    /// only when the file is created, and an existing counter is attached
    /// as it is, with the value it has now. A counter has one shape, so
    /// what is checked is that the file is a counter
    /// ([`OpenError::WrongKind`] otherwise, the file left alone).
    ///
    /// # Errors
    ///
    /// As [`Counter::open`] and [`Counter::create`].
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let path = dir.path().join("hits");
    /// use mmring::Counter;
    /// let hits = Counter::open_or_create(&path, 100)?; // creates it: 100
    /// hits.fetch_add(1);
    /// // Any process, later, whatever initial value it passes:
    /// assert_eq!(Counter::open_or_create(&path, 0)?.load(), 101);
    /// # Ok::<(), mmring::OpenError>(())
    /// ```
    pub fn open_or_create(path: impl AsRef<Path>, initial: i64) -> Result<Self, OpenError> {
        Mapped::open_or_create(path, &initial, &CreateOptions::default())
            .map(|mapped| Self { mapped })
    }

    /// The mapped file (path, descriptor, status, flush).
    pub fn region(&self) -> &Region {
        self.mapped.region()
    }
}

impl Deref for Counter {
    type Target = Atomic<i64>;

    #[inline]
    fn deref(&self) -> &Atomic<i64> {
        self.mapped.head()
    }
}

/// A fixed-length shared array in its own file: `multiprocessing.Array`
/// with no lock needed.
///
/// Elements are any [`Element`]: `u8`, `i8`, `u16`, `i16`, `u32`, `i32`,
/// `u64`, `i64`, `f32` or `f64`, every one lock-free (integers are the
/// native atomic of their width, floats the bits of an `AtomicU32` or
/// `AtomicU64` with compare-and-swap loops for arithmetic). Elements are
/// packed at their natural size, so an array of 10 `u8` is 10 bytes, and
/// an operation on one never disturbs its neighbours, even those that
/// share its machine word.
///
/// Python's `array`/`multiprocessing.Array` typecodes (and C's types) map
/// to them as:
///
/// | typecode | C type | element |
/// |---|---|---|
/// | `'b'` | `int8_t`, `signed char` | `i8` |
/// | `'B'` | `uint8_t`, `unsigned char` | `u8` |
/// | `'h'` | `int16_t`, `short` | `i16` |
/// | `'H'` | `uint16_t`, `unsigned short` | `u16` |
/// | `'i'` | `int32_t`, `int` | `i32` |
/// | `'I'` | `uint32_t`, `unsigned int` | `u32` |
/// | `'l'`, `'q'` | `int64_t`, `long long` | `i64` |
/// | `'L'`, `'Q'` | `uint64_t`, `unsigned long long` | `u64` |
/// | `'f'` | `float` | `f32` |
/// | `'d'` | `double` | `f64` |
///
/// (`'l'` and `'L'` are 64-bit on the 64-bit Unix systems mmring runs on.)
///
/// Dereferences to `[Atomic<T>]`: index it (`array[3].fetch_add(1)`),
/// iterate it, take its `len()`. Every element has the operations of
/// [`Atomic`]: [`load`](Atomic::load), [`store`](Atomic::store),
/// [`swap`](Atomic::swap), [`fetch_add`](Atomic::fetch_add) and
/// [`fetch_sub`](Atomic::fetch_sub) (wrapping for integers),
/// [`compare_exchange`](Atomic::compare_exchange),
/// [`fetch_update`](Atomic::fetch_update),
/// [`fetch_max`](Atomic::fetch_max), [`fetch_min`](Atomic::fetch_min).
///
/// # Examples
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// # let path = dir.path().join("hist");
/// use mmring::AtomicArray;
/// let hist = AtomicArray::<u64>::create(&path, 10)?;
/// hist[3].fetch_add(1);
/// assert_eq!(AtomicArray::<u64>::open(&path)?.snapshot()[3], 1);
/// # Ok::<(), mmring::OpenError>(())
/// ```
///
/// Bytes and halves, as `Array('B', 4)` and `Array('f', 2)` would be:
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// use mmring::AtomicArray;
/// let flags = AtomicArray::<u8>::create(dir.path().join("flags"), 4)?;
/// assert_eq!(flags[1].fetch_add(255), 0);
/// assert_eq!(flags[1].fetch_add(2), 255, "wraps like u8");
/// assert_eq!(flags.snapshot(), [0, 1, 0, 0]);
/// let temps = AtomicArray::<f32>::create(dir.path().join("temps"), 2)?;
/// temps[0].fetch_add(21.5);
/// assert_eq!(temps[0].fetch_max(19.0), 21.5);
/// # Ok::<(), mmring::OpenError>(())
/// ```
pub struct AtomicArray<T: Element> {
    mapped: Mapped<ArrayShape<T>>,
}

impl<T: Element> std::fmt::Debug for AtomicArray<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AtomicArray")
            .field("path", &self.mapped.region().path())
            .field("len", &self.len())
            .finish()
    }
}

impl<T: Element> AtomicArray<T> {
    /// Creates an array file of `len` elements, all zero.
    ///
    /// # Errors
    ///
    /// [`OpenError::InvalidCapacity`] for a zero or absurd length; the
    /// errors of [`Counter::create`].
    pub fn create(path: impl AsRef<Path>, len: usize) -> Result<Self, OpenError> {
        Self::create_with(path, len, T::zeroed(), &CreateOptions::default())
    }

    /// Creates an array file of `len` elements, all `initial`.
    ///
    /// # Errors
    ///
    /// As [`AtomicArray::create`].
    pub fn create_with(
        path: impl AsRef<Path>,
        len: usize,
        initial: T,
        opts: &CreateOptions,
    ) -> Result<Self, OpenError> {
        let spec = ArraySpec {
            len,
            initial,
            values: Vec::new(),
        };
        Mapped::create(path, &spec, opts).map(|mapped| Self { mapped })
    }

    /// Creates an array file holding `values` (its length is theirs), as
    /// `multiprocessing.Array('d', [1.0, 2.0])` does: no process ever
    /// sees the file before every element has its value.
    ///
    /// # Errors
    ///
    /// As [`AtomicArray::create`] (an empty `values` is a zero length).
    pub fn create_from(
        path: impl AsRef<Path>,
        values: &[T],
        opts: &CreateOptions,
    ) -> Result<Self, OpenError> {
        Mapped::create(path, &ArraySpec::from_values(values), opts).map(|mapped| Self { mapped })
    }

    /// Opens an existing array file, whatever its length.
    ///
    /// # Errors
    ///
    /// An [`OpenError`] naming what is wrong with the file
    /// ([`OpenError::WrongPayload`] for an array of another element
    /// type).
    pub fn open(path: impl AsRef<Path>) -> Result<Self, OpenError> {
        Mapped::open(path).map(|mapped| Self { mapped })
    }

    /// Opens the array at `path`, or creates it with `len` zeroes;
    /// racing processes all end up with the same array.
    ///
    /// Opening an existing array never resets it: the zeroes apply only
    /// when the file is created, and an existing array is attached as it
    /// is, its values kept. What is checked is its shape: the element type
    /// ([`OpenError::WrongPayload`], naming both) and the length
    /// ([`OpenError::InvalidCapacity`], naming both); a mismatch leaves
    /// the file alone.
    ///
    /// # Errors
    ///
    /// As [`AtomicArray::open`] and [`AtomicArray::create`], and
    /// [`OpenError::InvalidCapacity`] if an existing array has another
    /// length.
    pub fn open_or_create(path: impl AsRef<Path>, len: usize) -> Result<Self, OpenError> {
        Self::open_or_create_with(path, len, T::zeroed(), &CreateOptions::default())
    }

    /// [`AtomicArray::open_or_create`] creating, if there is no file, an
    /// array of `len` elements all `initial`, with a mode and label.
    ///
    /// `initial` and `opts` apply only when the file is created: an
    /// existing array of the same element type and length is attached as
    /// it is, never reset.
    ///
    /// # Errors
    ///
    /// As [`AtomicArray::open_or_create`].
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let path = dir.path().join("levels");
    /// use mmring::{AtomicArray, CreateOptions};
    /// let opts = CreateOptions::default();
    /// let levels = AtomicArray::<i16>::open_or_create_with(&path, 3, -1, &opts)?;
    /// levels[0].store(7);
    /// // Another process asks for other initial values: it gets the array.
    /// let again = AtomicArray::<i16>::open_or_create_with(&path, 3, 0, &opts)?;
    /// assert_eq!(again.snapshot(), [7, -1, -1]);
    /// # Ok::<(), mmring::OpenError>(())
    /// ```
    pub fn open_or_create_with(
        path: impl AsRef<Path>,
        len: usize,
        initial: T,
        opts: &CreateOptions,
    ) -> Result<Self, OpenError> {
        let spec = ArraySpec {
            len,
            initial,
            values: Vec::new(),
        };
        Mapped::open_or_create(path, &spec, opts).map(|mapped| Self { mapped })
    }

    /// Opens the array at `path`, or creates it holding `values` if there
    /// is none; racing processes all end up with the same array.
    ///
    /// `values` and `opts` apply only when the file is created: an
    /// existing array of the same element type and of `values.len()`
    /// elements is attached as it is, never reset (another length is
    /// [`OpenError::InvalidCapacity`], another type
    /// [`OpenError::WrongPayload`]; the file is left alone).
    ///
    /// # Errors
    ///
    /// As [`AtomicArray::open_or_create`].
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let path = dir.path().join("prices");
    /// use mmring::{AtomicArray, CreateOptions};
    /// let opts = CreateOptions::default();
    /// let prices = AtomicArray::<f64>::open_or_create_from(&path, &[1.5, 2.5], &opts)?;
    /// prices[1].fetch_add(1.0);
    /// // Another process passes the initial values too: it gets the array.
    /// let again = AtomicArray::<f64>::open_or_create_from(&path, &[1.5, 2.5], &opts)?;
    /// assert_eq!(again.snapshot(), [1.5, 3.5]);
    /// # Ok::<(), mmring::OpenError>(())
    /// ```
    pub fn open_or_create_from(
        path: impl AsRef<Path>,
        values: &[T],
        opts: &CreateOptions,
    ) -> Result<Self, OpenError> {
        Mapped::open_or_create(path, &ArraySpec::from_values(values), opts)
            .map(|mapped| Self { mapped })
    }

    /// Every element's current value (each read atomically; the whole is
    /// not a consistent snapshot while others write).
    pub fn snapshot(&self) -> Vec<T> {
        self.iter().map(Atomic::load).collect()
    }

    /// The mapped file (path, descriptor, status, flush).
    pub fn region(&self) -> &Region {
        self.mapped.region()
    }
}

impl<T: Element> Deref for AtomicArray<T> {
    type Target = [Atomic<T>];

    #[inline]
    fn deref(&self) -> &[Atomic<T>] {
        self.mapped.elems()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// An array opened as another element type is refused, naming both
    /// types; so is one of the same size but another name (`u8` as `i8`,
    /// `u32` as `f32`): the name is part of the identity.
    #[test]
    fn wrong_element_type_names_both_sides() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bytes");
        let a = AtomicArray::<u8>::create(&p, 10).unwrap();
        a[3].store(9);
        let e = AtomicArray::<u16>::open(&p).unwrap_err();
        assert!(matches!(e, OpenError::WrongPayload { .. }), "{e:?}");
        let msg = e.to_string();
        assert!(msg.contains("expected u16 (2 B, align 2)"), "{msg}");
        assert!(msg.contains("found u8 (1 B, align 1)"), "{msg}");
        let e = AtomicArray::<i8>::open(&p).unwrap_err().to_string();
        assert!(e.contains("expected i8") && e.contains("found u8"), "{e}");
        let e = AtomicArray::<u16>::open_or_create(&p, 10).unwrap_err();
        assert!(matches!(e, OpenError::WrongPayload { .. }), "{e:?}");
        assert_eq!(AtomicArray::<u8>::open(&p).unwrap().snapshot()[3], 9);

        let p = dir.path().join("words");
        drop(AtomicArray::<u32>::create(&p, 2).unwrap());
        let e = AtomicArray::<f32>::open(&p).unwrap_err().to_string();
        assert!(e.contains("expected f32") && e.contains("found u32"), "{e}");
        let e = Counter::open(&p).unwrap_err();
        assert!(matches!(e, OpenError::WrongKind { .. }), "{e:?}");
    }

    /// An array made from values holds them from the moment it can be
    /// opened; `open_or_create_from` attaches an existing one without
    /// resetting it and refuses another length or type, leaving it alone.
    #[test]
    fn create_from_values_and_attach_without_reset() {
        let dir = tempfile::tempdir().unwrap();
        let opts = CreateOptions::default();
        let p = dir.path().join("from");
        let a = AtomicArray::<i16>::create_from(&p, &[-3, 0, 7], &opts).unwrap();
        assert_eq!(AtomicArray::<i16>::open(&p).unwrap().snapshot(), [-3, 0, 7]);
        a[1].store(5);
        let e = AtomicArray::<i16>::create_from(&p, &[1, 2, 3], &opts).unwrap_err();
        assert!(matches!(e, OpenError::AlreadyExists { .. }), "{e:?}");
        let b = AtomicArray::<i16>::open_or_create_from(&p, &[1, 2, 3], &opts).unwrap();
        assert_eq!(b.snapshot(), [-3, 5, 7], "attached, not reset");
        let e = AtomicArray::<i16>::open_or_create_from(&p, &[1, 2], &opts).unwrap_err();
        assert!(matches!(e, OpenError::InvalidCapacity { .. }), "{e:?}");
        let e = AtomicArray::<u16>::open_or_create_from(&p, &[1, 2, 3], &opts).unwrap_err();
        assert!(matches!(e, OpenError::WrongPayload { .. }), "{e:?}");
        assert_eq!(a.snapshot(), [-3, 5, 7]);

        let q = dir.path().join("fresh");
        let c = AtomicArray::<f64>::open_or_create_from(&q, &[0.5, -1.0], &opts).unwrap();
        assert_eq!(c.snapshot(), [0.5, -1.0]);
        let e = AtomicArray::<u8>::create_from(dir.path().join("empty"), &[], &opts).unwrap_err();
        assert!(matches!(e, OpenError::InvalidCapacity { .. }), "{e:?}");
        assert!(!dir.path().join("empty").exists());
    }

    /// Every element type makes a file of the packed size and opens as
    /// itself.
    #[test]
    fn every_element_type_round_trips_through_a_file() {
        fn round_trip<T: Element>(dir: &Path, v: T, twice: T) {
            let name = TypeInfo::of::<T>().name().to_string();
            let p = dir.join(&name);
            let a = AtomicArray::<T>::create_with(&p, 5, v, &CreateOptions::default()).unwrap();
            let size = size_of::<T>() as u64;
            assert_eq!(a.region().descriptor().slot_size, size, "{name}");
            assert_eq!(a.region().descriptor().body_size, 64, "{name}");
            a[4].fetch_add(v);
            let b = AtomicArray::<T>::open(&p).unwrap();
            assert_eq!(b.len(), 5);
            assert_eq!(b[0].load(), v, "{name}");
            assert_eq!(b[4].load(), twice, "{name}");
        }
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        round_trip(d, 3u8, 6);
        round_trip(d, -3i8, -6);
        round_trip(d, 300u16, 600);
        round_trip(d, -300i16, -600);
        round_trip(d, 7u32, 14);
        round_trip(d, -7i32, -14);
        round_trip(d, 1u64 << 40, 1 << 41);
        round_trip(d, -(1i64 << 40), -(1 << 41));
        round_trip(d, 0.75f32, 1.5);
        round_trip(d, -0.75f64, -1.5);
    }
}
