//! [`Counter`] (one shared `i64`) and [`AtomicArray<T>`] (a fixed-length
//! shared array of `u32`, `i32`, `u64`, `i64` or `f64`): what
//! `multiprocessing.Value` and `Array` do, without `get_lock()`.
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

/// What `AtomicArray::create` asks for: a length, every element `initial`.
struct ArraySpec<T> {
    len: usize,
    initial: T,
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
        for e in region.body::<Atomic<T>>(0, spec.len) {
            e.store(spec.initial);
        }
    }

    fn geometry(region: &Region) -> Result<usize, OpenError> {
        // Validated at open: at most MAX_BODY / 4 elements, all in the body.
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
    /// only when the file is created.
    ///
    /// # Errors
    ///
    /// As [`Counter::open`] and [`Counter::create`].
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
/// with no lock needed. Elements are `u32`, `i32`, `u64`, `i64` or `f64`.
///
/// Dereferences to `[Atomic<T>]`: index it (`array[3].fetch_add(1)`),
/// iterate it, take its `len()`.
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
        Mapped::create(path, &ArraySpec { len, initial }, opts).map(|mapped| Self { mapped })
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
    /// Opening an existing array never resets it: its values are kept.
    ///
    /// # Errors
    ///
    /// As [`AtomicArray::open`] and [`AtomicArray::create`], and
    /// [`OpenError::InvalidCapacity`] if an existing array has another
    /// length.
    pub fn open_or_create(path: impl AsRef<Path>, len: usize) -> Result<Self, OpenError> {
        let spec = ArraySpec {
            len,
            initial: T::zeroed(),
        };
        Mapped::open_or_create(path, &spec, &CreateOptions::default()).map(|mapped| Self { mapped })
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
