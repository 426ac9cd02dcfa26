//! [`Counter`] (one shared `i64`) and [`AtomicArray<T>`] (a fixed-length
//! shared array of `u32`, `i32`, `u64`, `i64` or `f64`): what
//! `multiprocessing.Value` and `Array` do, without `get_lock()`.
//!
//! Every operation is one atomic instruction or one compare-and-swap loop on
//! the shared memory itself. There is no lock, so there is no lock for a dead
//! process to hold.
//!
//! # Memory ordering
//!
//! Loads are `Acquire`, stores `Release`, read-modify-writes `AcqRel`: a
//! process that loads a value written by another also sees everything that
//! process wrote before it (each `Acquire` pairs with the `Release` half of
//! the store or read-modify-write whose value it reads). The algorithms are
//! [`Atomic<T>`] methods, so they run unchanged over a mapping, the heap and
//! loom.

use std::fmt;

use crate::pod::Payload;
use crate::sync::{AtomicI32, AtomicI64, AtomicU32, AtomicU64, Ordering};

mod private {
    pub trait Sealed {}
}

/// An element type of [`Counter`] and [`AtomicArray`]: `u32`, `i32`, `u64`,
/// `i64` or `f64`.
///
/// Integer arithmetic wraps on overflow (as `std`'s atomics do). `f64`
/// arithmetic and `fetch_max`/`fetch_min` are compare-and-swap loops, and
/// `compare_exchange` on `f64` compares bit patterns (`-0.0 != 0.0`, and a
/// NaN equals itself only bit for bit).
pub trait Element:
    Payload + PartialOrd + fmt::Debug + fmt::Display + Send + Sync + private::Sealed
{
    /// The atomic that holds this element.
    #[doc(hidden)]
    type Repr: Send + Sync;
    #[doc(hidden)]
    fn new_repr(v: Self) -> Self::Repr;
    #[doc(hidden)]
    fn load(r: &Self::Repr, o: Ordering) -> Self;
    #[doc(hidden)]
    fn store(r: &Self::Repr, v: Self, o: Ordering);
    #[doc(hidden)]
    fn swap(r: &Self::Repr, v: Self, o: Ordering) -> Self;
    #[doc(hidden)]
    fn cas(r: &Self::Repr, cur: Self, new: Self, s: Ordering, f: Ordering) -> Result<Self, Self>;
    #[doc(hidden)]
    fn cas_weak(
        r: &Self::Repr,
        cur: Self,
        new: Self,
        s: Ordering,
        f: Ordering,
    ) -> Result<Self, Self>;
    #[doc(hidden)]
    fn fetch_add(r: &Self::Repr, v: Self, o: Ordering) -> Self;
    #[doc(hidden)]
    fn fetch_sub(r: &Self::Repr, v: Self, o: Ordering) -> Self;
    #[doc(hidden)]
    fn fetch_max(r: &Self::Repr, v: Self, o: Ordering) -> Self;
    #[doc(hidden)]
    fn fetch_min(r: &Self::Repr, v: Self, o: Ordering) -> Self;
}

macro_rules! int_element {
    ($t:ty, $atomic:ty) => {
        impl private::Sealed for $t {}
        impl Element for $t {
            type Repr = $atomic;
            fn new_repr(v: Self) -> $atomic {
                <$atomic>::new(v)
            }
            fn load(r: &$atomic, o: Ordering) -> Self {
                r.load(o)
            }
            fn store(r: &$atomic, v: Self, o: Ordering) {
                r.store(v, o)
            }
            fn swap(r: &$atomic, v: Self, o: Ordering) -> Self {
                r.swap(v, o)
            }
            fn cas(r: &$atomic, c: Self, n: Self, s: Ordering, f: Ordering) -> Result<Self, Self> {
                r.compare_exchange(c, n, s, f)
            }
            fn cas_weak(
                r: &$atomic,
                c: Self,
                n: Self,
                s: Ordering,
                f: Ordering,
            ) -> Result<Self, Self> {
                r.compare_exchange_weak(c, n, s, f)
            }
            fn fetch_add(r: &$atomic, v: Self, o: Ordering) -> Self {
                r.fetch_add(v, o)
            }
            fn fetch_sub(r: &$atomic, v: Self, o: Ordering) -> Self {
                r.fetch_sub(v, o)
            }
            fn fetch_max(r: &$atomic, v: Self, o: Ordering) -> Self {
                r.fetch_max(v, o)
            }
            fn fetch_min(r: &$atomic, v: Self, o: Ordering) -> Self {
                r.fetch_min(v, o)
            }
        }
    };
}

int_element!(u32, AtomicU32);
int_element!(i32, AtomicI32);
int_element!(u64, AtomicU64);
int_element!(i64, AtomicI64);

impl private::Sealed for f64 {}

/// A compare-and-swap loop applying `f` to the bits of an `f64`.
fn f64_rmw(r: &AtomicU64, o: Ordering, f: impl Fn(f64) -> f64) -> f64 {
    // The failure ordering of a CAS may not be stronger than needed for a
    // load; Acquire (or Relaxed for Release/Relaxed) is what `o` implies.
    let fail = match o {
        Ordering::AcqRel | Ordering::Acquire | Ordering::SeqCst => Ordering::Acquire,
        _ => Ordering::Relaxed,
    };
    let mut cur = r.load(fail);
    loop {
        let new = f(f64::from_bits(cur)).to_bits();
        match r.compare_exchange_weak(cur, new, o, fail) {
            Ok(prev) => return f64::from_bits(prev),
            Err(now) => cur = now,
        }
    }
}

impl Element for f64 {
    type Repr = AtomicU64;
    fn new_repr(v: Self) -> AtomicU64 {
        AtomicU64::new(v.to_bits())
    }
    fn load(r: &AtomicU64, o: Ordering) -> Self {
        f64::from_bits(r.load(o))
    }
    fn store(r: &AtomicU64, v: Self, o: Ordering) {
        r.store(v.to_bits(), o)
    }
    fn swap(r: &AtomicU64, v: Self, o: Ordering) -> Self {
        f64::from_bits(r.swap(v.to_bits(), o))
    }
    fn cas(r: &AtomicU64, c: Self, n: Self, s: Ordering, f: Ordering) -> Result<Self, Self> {
        r.compare_exchange(c.to_bits(), n.to_bits(), s, f)
            .map(f64::from_bits)
            .map_err(f64::from_bits)
    }
    fn cas_weak(r: &AtomicU64, c: Self, n: Self, s: Ordering, f: Ordering) -> Result<Self, Self> {
        r.compare_exchange_weak(c.to_bits(), n.to_bits(), s, f)
            .map(f64::from_bits)
            .map_err(f64::from_bits)
    }
    fn fetch_add(r: &AtomicU64, v: Self, o: Ordering) -> Self {
        f64_rmw(r, o, |x| x + v)
    }
    fn fetch_sub(r: &AtomicU64, v: Self, o: Ordering) -> Self {
        f64_rmw(r, o, |x| x - v)
    }
    fn fetch_max(r: &AtomicU64, v: Self, o: Ordering) -> Self {
        f64_rmw(r, o, |x| x.max(v))
    }
    fn fetch_min(r: &AtomicU64, v: Self, o: Ordering) -> Self {
        f64_rmw(r, o, |x| x.min(v))
    }
}

/// One shared element: the unit [`Counter`] and [`AtomicArray`] are made of.
///
/// Has the size, alignment and bytes of a plain `T`, so it is laid directly
/// over the mapping; [`Atomic::new`] makes one on the heap (tests, loom).
#[repr(transparent)]
pub struct Atomic<T: Element> {
    repr: T::Repr,
}

#[cfg(not(loom))]
// SAFETY: `repr(transparent)` over `T::Repr`, which is one of the std atomic
// integers (the `Element` impls above, sealed), so an `Atomic<T>` has its
// layout and accepts every bit pattern, exactly as that atomic does.
unsafe impl<T: Element> crate::region::MappedAtomic for Atomic<T> {}

impl<T: Element> fmt::Debug for Atomic<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.load(), f)
    }
}

impl<T: Element> Atomic<T> {
    /// A new element on the heap (the mapped ones come from [`Counter`] and
    /// [`AtomicArray`]).
    pub fn new(v: T) -> Self {
        Self {
            repr: T::new_repr(v),
        }
    }

    /// The current value.
    ///
    /// It may be out of date as soon as it returns: other processes keep
    /// changing it.
    #[inline]
    pub fn load(&self) -> T {
        // Acquire pairs with the Release half of whichever store or
        // read-modify-write wrote the value we read.
        T::load(&self.repr, Ordering::Acquire)
    }

    /// Replaces the value.
    #[inline]
    pub fn store(&self, v: T) {
        // Release pairs with the Acquire load (or RMW) that reads this value.
        T::store(&self.repr, v, Ordering::Release)
    }

    /// Replaces the value, returning the old one.
    #[inline]
    pub fn swap(&self, v: T) -> T {
        // AcqRel: reads like `load`, publishes like `store`.
        T::swap(&self.repr, v, Ordering::AcqRel)
    }

    /// Adds `v` (wrapping for integers), returning the previous value.
    #[inline]
    pub fn fetch_add(&self, v: T) -> T {
        // AcqRel: reads like `load`, publishes like `store`.
        T::fetch_add(&self.repr, v, Ordering::AcqRel)
    }

    /// Subtracts `v` (wrapping for integers), returning the previous value.
    #[inline]
    pub fn fetch_sub(&self, v: T) -> T {
        // AcqRel: reads like `load`, publishes like `store`.
        T::fetch_sub(&self.repr, v, Ordering::AcqRel)
    }

    /// Stores the maximum of the value and `v`, returning the previous value.
    #[inline]
    pub fn fetch_max(&self, v: T) -> T {
        // AcqRel: reads like `load`, publishes like `store`.
        T::fetch_max(&self.repr, v, Ordering::AcqRel)
    }

    /// Stores the minimum of the value and `v`, returning the previous value.
    #[inline]
    pub fn fetch_min(&self, v: T) -> T {
        // AcqRel: reads like `load`, publishes like `store`.
        T::fetch_min(&self.repr, v, Ordering::AcqRel)
    }

    /// Stores `new` if the value is `current`: `Ok(previous)` if it was,
    /// `Err(actual)` if not.
    #[inline]
    pub fn compare_exchange(&self, current: T, new: T) -> Result<T, T> {
        // Success AcqRel: reads like `load`, publishes like `store`. Failure
        // Acquire: the value returned in `Err` is read like `load`.
        T::cas(
            &self.repr,
            current,
            new,
            Ordering::AcqRel,
            Ordering::Acquire,
        )
    }

    /// Applies `f` to the value until the compare-and-swap that installs
    /// its result succeeds (or `f` returns `None`): `Ok(previous)` on
    /// success, `Err(current)` if `f` declined.
    ///
    /// `f` may run several times when other processes race: it must be a
    /// pure function of its argument.
    ///
    /// # Examples
    ///
    /// Take a ticket if any are left (never below zero, however many
    /// processes race):
    ///
    /// ```
    /// use mmring::counter::Atomic;
    /// let stock = Atomic::new(1i64);
    /// assert_eq!(stock.fetch_update(|n| (n > 0).then(|| n - 1)), Ok(1));
    /// assert_eq!(stock.fetch_update(|n| (n > 0).then(|| n - 1)), Err(0));
    /// ```
    pub fn fetch_update(&self, mut f: impl FnMut(T) -> Option<T>) -> Result<T, T> {
        let mut prev = self.load();
        while let Some(next) = f(prev) {
            // Success AcqRel: reads like `load`, publishes like `store`.
            // Failure Acquire: the fresh value is read like `load`, and `f`
            // runs again on it.
            match T::cas_weak(&self.repr, prev, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(p) => return Ok(p),
                Err(now) => prev = now,
            }
        }
        Err(prev)
    }
}

#[cfg(not(loom))]
pub use mapped::{AtomicArray, Counter};

#[cfg(not(loom))]
mod mapped {
    use std::ops::Deref;
    use std::path::Path;

    use super::{Atomic, Element};
    use crate::error::OpenError;
    use crate::layout::Kind;
    use crate::pod::TypeInfo;
    use crate::region::{self, CreateOptions, Expect, Region, View};

    fn expect<T: Element>(kind: Kind) -> Expect {
        Expect {
            kind,
            elem: TypeInfo::of::<T>(),
            any_size: false,
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
        view: View<Atomic<i64>>,
    }

    impl std::fmt::Debug for Counter {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("Counter")
                .field("path", &self.view.region().path())
                .field("value", &self.load())
                .finish()
        }
    }

    impl Counter {
        fn from_region(region: Region) -> Self {
            Self {
                view: View::new(region, |r| &r.body::<Atomic<i64>>(0, 1)[0]),
            }
        }

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
            let path = region::resolve(path);
            Region::create(&path, expect::<i64>(Kind::Counter), 1, opts, |r| {
                r.body::<Atomic<i64>>(0, 1)[0].store(initial)
            })
            .map(Self::from_region)
        }

        /// Opens an existing counter file.
        ///
        /// # Errors
        ///
        /// An [`OpenError`] naming what is wrong with the file.
        pub fn open(path: impl AsRef<Path>) -> Result<Self, OpenError> {
            let path = region::resolve(path);
            Region::open(&path, expect::<i64>(Kind::Counter)).map(Self::from_region)
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
            let path = region::resolve(path);
            Region::open_or_create(
                &path,
                expect::<i64>(Kind::Counter),
                1,
                &CreateOptions::default(),
                |r| r.body::<Atomic<i64>>(0, 1)[0].store(initial),
            )
            .map(Self::from_region)
        }

        /// The mapped file (path, descriptor, status, flush).
        pub fn region(&self) -> &Region {
            self.view.region()
        }
    }

    impl Deref for Counter {
        type Target = Atomic<i64>;

        fn deref(&self) -> &Atomic<i64> {
            &self.view
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
        view: View<[Atomic<T>]>,
    }

    impl<T: Element> std::fmt::Debug for AtomicArray<T> {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("AtomicArray")
                .field("path", &self.view.region().path())
                .field("len", &self.len())
                .finish()
        }
    }

    impl<T: Element> AtomicArray<T> {
        fn from_region(region: Region) -> Self {
            let len = region.descriptor().capacity as usize;
            Self {
                view: View::new(region, |r| r.body::<Atomic<T>>(0, len)),
            }
        }

        fn fill(len: usize, initial: T) -> impl Fn(&Region) {
            move |r| {
                for e in r.body::<Atomic<T>>(0, len) {
                    e.store(initial);
                }
            }
        }

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
            let path = region::resolve(path);
            Region::create(
                &path,
                expect::<T>(Kind::AtomicArray),
                len as u64,
                opts,
                Self::fill(len, initial),
            )
            .map(Self::from_region)
        }

        /// Opens an existing array file, whatever its length.
        ///
        /// # Errors
        ///
        /// An [`OpenError`] naming what is wrong with the file
        /// ([`OpenError::WrongPayload`] for an array of another element
        /// type).
        pub fn open(path: impl AsRef<Path>) -> Result<Self, OpenError> {
            let path = region::resolve(path);
            Region::open(&path, expect::<T>(Kind::AtomicArray)).map(Self::from_region)
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
            let path = region::resolve(path);
            let region = Region::open_or_create(
                &path,
                expect::<T>(Kind::AtomicArray),
                len as u64,
                &CreateOptions::default(),
                Self::fill(len, T::zeroed()),
            )?;
            let found = region.descriptor().capacity;
            if found != len as u64 {
                return Err(OpenError::InvalidCapacity {
                    path,
                    expected: format!("length {len} as asked"),
                    found,
                });
            }
            Ok(Self::from_region(region))
        }

        /// Every element's current value (each read atomically; the whole is
        /// not a consistent snapshot while others write).
        pub fn snapshot(&self) -> Vec<T> {
            self.iter().map(Atomic::load).collect()
        }

        /// The mapped file (path, descriptor, status, flush).
        pub fn region(&self) -> &Region {
            self.view.region()
        }
    }

    impl<T: Element> Deref for AtomicArray<T> {
        type Target = [Atomic<T>];

        fn deref(&self) -> &[Atomic<T>] {
            &self.view
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn integer_operations_match_std() {
        let a = Atomic::new(5i64);
        assert_eq!(a.fetch_add(3), 5);
        assert_eq!(a.fetch_sub(10), 8);
        assert_eq!(a.load(), -2);
        assert_eq!(a.fetch_max(7), -2);
        assert_eq!(a.fetch_min(1), 7);
        assert_eq!(a.compare_exchange(0, 9), Err(1));
        assert_eq!(a.compare_exchange(1, 9), Ok(1));
        assert_eq!(a.swap(4), 9);
        let u = Atomic::new(u32::MAX);
        assert_eq!(u.fetch_add(1), u32::MAX);
        assert_eq!(u.load(), 0, "integer arithmetic wraps");
    }

    #[test]
    fn float_operations_are_cas_loops() {
        let f = Atomic::new(1.5f64);
        assert_eq!(f.fetch_add(2.25), 1.5);
        assert_eq!(f.fetch_sub(0.75), 3.75);
        assert_eq!(f.fetch_max(10.0), 3.0);
        assert_eq!(f.fetch_min(-1.0), 10.0);
        assert_eq!(f.load(), -1.0);
        assert_eq!(f.compare_exchange(-1.0, 2.0), Ok(-1.0));
        assert_eq!(f.fetch_update(|x| (x > 1.0).then_some(x / 2.0)), Ok(2.0));
        assert_eq!(f.fetch_update(|x| (x > 1.0).then_some(x / 2.0)), Err(1.0));
    }

    #[test]
    fn fetch_update_never_goes_below_zero_under_thread_contention() {
        let stock = std::sync::Arc::new(Atomic::new(1000i64));
        let sold: i64 = (0..4)
            .map(|_| {
                let stock = stock.clone();
                std::thread::spawn(move || {
                    (0..600)
                        .filter(|_| stock.fetch_update(|n| (n > 0).then(|| n - 1)).is_ok())
                        .count() as i64
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().unwrap())
            .sum();
        assert_eq!(sold, 1000);
        assert_eq!(stock.load(), 0);
    }
}
